"""Direction estimators of the modern stochastic solvers (SAGA, SARAH, STORM) and the oracle pieces they share.

Component roles (``algorithms.components``), each replaceable by a plug-in:
- ``saga.direction`` (:func:`saga_direction`): SAGA (Defazio, Bach, Lacoste-Julien 2014, eq. 1) over a per-sample
  memory: with memory values phi_i(w_i) and the batch B of distinct samples at the current point y_t,
      D = (1/|B|) sum_{i in B} [phi_i(y_t) - phi_i(w_i)] + (1/n) sum_{i'} phi_{i'}(w_{i'}),  then w_i <- y_t (i in B);
  SABA applies it to each of SOBA's five sampled terms (Dagreou et al. 2022, Sec. 3.2).
- ``sarah.direction`` (:func:`sarah_direction`): SARAH / SPIDER (Nguyen et al. 2017; Fang et al. 2018)
      D_t = D_{t-1} + phi_B(y_t) - phi_B(y_{t-1}),  the same batch B at both points (SRBA, VRBO).
- ``storm.direction`` (:func:`storm_direction`): STORM (Cutkosky and Orabona 2019)
      D_t = phi_B(y_t) + (1 - a_t) (D_{t-1} - phi_B(y_{t-1})),  the same batch B at both points (MRBO, FSLA).
The estimators take values (the algorithms evaluate the oracles on the batches the paper prescribes), so a
plug-in replaces the recursion itself.

Shared pieces: :func:`per_sample` (an oracle's value on each sample of a batch, counted one per sample), batch
draws where a size ``None`` means the full objective: on a finite sum every sample once (:func:`full_batch`:
an oracle call counts n, as n per-sample gradients), on a deterministic problem the deterministic oracle (one
call counts 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..analytic.base import MiniBatch
from .stochastic_solvers import draw_batches

__all__ = ["SagaMemory", "saga_direction", "sarah_direction", "storm_direction", "per_sample", "draw", "full",
           "draw_many", "full_batch", "check_batches", "saga_init", "saga_zero", "n_samples", "indices", "KIND"]

#: oracle name -> the count it charges (Definition 2 of ICML 2021)
KIND = {"grad_x_f": "gc_f", "grad_y_f": "gc_f", "grad_x_g": "gc_g", "grad_y_g": "gc_g", "hvp": "hv", "jvp": "jv"}
_TAKES_V = ("hvp", "jvp")


@dataclass
class SagaMemory:
    """SAGA memory of one sampled term: ``table`` (R, n, k) holds phi_i(w_i) for every sample i, ``mean``
    (R, k) their average. The table is updated in place (it is the size of the data)."""

    table: torch.Tensor
    mean: torch.Tensor


def saga_direction(memory: SagaMemory, idx: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, SagaMemory]:
    """SAGA estimate from the values (R, S, k) of the batch idx (R, S) of distinct samples at the current
    point; returns (direction (R, k), the memory with w_i = current point for i in idx) (module docstring)."""
    n, k = memory.table.shape[1], memory.table.shape[2]
    where = idx.unsqueeze(-1).expand(-1, -1, k)
    diff = values - memory.table.gather(1, where)
    direction = diff.mean(1) + memory.mean
    memory.table.scatter_(1, where, values)
    return direction, SagaMemory(memory.table, memory.mean + diff.sum(1) / n)


def sarah_direction(D: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """SARAH: D + phi_B(y_t) - phi_B(y_{t-1}) (``new``, ``old``: one batch at the two points)."""
    return D + (new - old)


def storm_direction(D: torch.Tensor, new: torch.Tensor, old: torch.Tensor, a: float) -> torch.Tensor:
    """STORM: phi_B(y_t) + (1 - a) (D - phi_B(y_{t-1})) (``new``, ``old``: one batch at the two points)."""
    return new + (1.0 - a) * (D - old)


# ---------------------------------------------------------------------- oracle pieces
def n_samples(problem, which: str) -> int:
    """n (G samples, 'g') or m (F samples, 'f') of a finite-sum problem; TypeError for another problem."""
    if not getattr(problem, "stochastic", False):
        raise TypeError(f"{type(problem).__name__} is not a finite sum (stochastic = True with n_g, n_f samples)")
    return problem.n_f if which == "f" else problem.n_g


def full(oracle, which: str):
    """The full objective: every sample once on a finite sum (``full_batch``, counts n), None (the
    deterministic oracle, counts 1) on a deterministic problem."""
    return full_batch(oracle, which) if getattr(oracle.problem, "stochastic", False) else None


def check_batches(problem, params, name: str, keys=("S", "S_f", "S_g", "S1", "S2")) -> None:
    """TypeError when a batch size is set on a problem without samples (a deterministic family: only the full
    objective, batch None, exists there)."""
    if getattr(problem, "stochastic", False):
        return
    set_ = [k for k in keys if params.get(k) is not None]
    if set_:
        raise TypeError(f"{name}: {type(problem).__name__} is deterministic (no samples to draw); set "
                        f"{', '.join(f'{k}=None' for k in set_)} (the full objective) or use a finite-sum family")


def draw(ctx, which: str, size: int | None, replace: bool = True):
    """One mini-batch of ``size`` samples of F ('f') or G ('g'); size None: the full objective (``full``)."""
    if size is None:
        return full(ctx.oracle, which)
    return draw_batches(ctx.oracle, which, [size], ctx.streams, replace)[0]


def draw_many(ctx, which: str, size: int | None, count: int, replace: bool = True) -> list:
    """``count`` independent mini-batches of one size (one draw split, with replacement); size None: the full
    objective each time."""
    if size is None:
        return [full(ctx.oracle, which) for _ in range(count)]
    return draw_batches(ctx.oracle, which, [size] * count, ctx.streams, replace)


def full_batch(oracle, which: str):
    """Every sample of F or G once, as one mini-batch: an oracle call on it is the full-batch mean and counts
    n (or m), and the n samples are tallied as used."""
    p = oracle.problem
    n = n_samples(p, which)
    idx = torch.arange(n, device=p.device).expand(p.R, n)
    oracle.charge("samples_f" if which == "f" else "samples_g", n)
    return oracle.minibatches(which, idx, [n])[0]


def per_sample(oracle, name: str, x, y, batch, v=None) -> torch.Tensor:
    """The oracle ``name`` on each sample of ``batch``: (R, S, k), counted S (one per sample). The closed
    backend reads the problem's per-sample closed forms (``analytic.finite_sum``) where it has them; otherwise
    S counted calls on one-sample batches (any stochastic problem, any backend)."""
    p = oracle.problem
    each = getattr(p, f"_each_{name}", None)
    S = int(batch.shape[-1])
    if oracle.backend == "closed" and each is not None:
        oracle.charge(KIND[name], S)
        return each(x, y, v, batch) if name in _TAKES_V else each(x, y, batch)
    idx = batch.idx if isinstance(batch, MiniBatch) else batch
    call = getattr(oracle, name)
    cols = [call(x, y, v, idx[:, s:s + 1]) if name in _TAKES_V else call(x, y, idx[:, s:s + 1]) for s in range(S)]
    return torch.stack(cols, 1)


def indices(batch) -> torch.Tensor:
    """The (R, S) sample indices of a mini-batch (a MiniBatch or an index tensor)."""
    return batch.idx if isinstance(batch, MiniBatch) else batch


def saga_init(oracle, name: str, x, y, batch, v=None) -> SagaMemory:
    """A SAGA memory with every w_i at (x, y): the per-sample values on ``batch`` = ``full_batch`` (n values,
    counted), their mean the exact full-batch value."""
    table = per_sample(oracle, name, x, y, batch, v).clone()  # clone: a per-sample form may return a view
    return SagaMemory(table, table.mean(1))


def saga_zero(problem, name: str, which: str) -> SagaMemory:
    """A SAGA memory at zero (no oracle call): phi_i(w_i) = 0 for every sample until it is first drawn."""
    n = n_samples(problem, which)
    k = problem.dim_x if name in ("grad_x_f", "grad_x_g", "jvp") else problem.dim_y
    table = torch.zeros(problem.R, n, k, dtype=problem.dtype, device=problem.device)
    return SagaMemory(table, torch.zeros(problem.R, k, dtype=problem.dtype, device=problem.device))
