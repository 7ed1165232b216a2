"""Counted oracles: the only door an algorithm has to a problem.

Counting follows Definition 2 of Ji, Yang, Liang (ICML 2021): Gc(f), Gc(g) count partial gradients
(grad_x and grad_y each count one), JV counts grad_x grad_y g v, HV counts grad_yy g v; for the
stochastic oracles every sample of a mini-batch counts (a batch of S samples costs S). Samples drawn for F
and G are tallied separately in ``samples_f`` / ``samples_g`` (a sample used in several products is
counted once per product in Gc/JV/HV, as the papers do, and once per draw in samples).

Per instance. All R instances of a batched problem advance in lockstep, so ``counts`` (Python integers)
is what the batch executed. Where instances need different amounts of work (BSA's and TTSA's Neumann length
p), the algorithm passes ``active`` (an (R,) bool mask) to the call: the call is executed for the whole
batch, and the instances outside the mask are recorded as idle for it. ``per_instance(kind)`` is then each
instance's own count, executed - idle; algorithms keep no count bookkeeping of their own.

Two backends return the same numbers: ``closed`` calls the problem's closed forms, ``autograd``
differentiates the problem's f and g (F and G on a batch) with ``torch.func``, so it runs any problem
that defines only function values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch.func import grad as _fgrad
from torch.func import vjp as _fvjp

__all__ = ["Counts", "CountedOracle", "BACKENDS"]

BACKENDS = ("closed", "autograd")
#: oracle name -> the problem's closed form on a mini-batch (built once: this lookup is on the hot path)
_STOCHASTIC = {"grad_x_f": "_grad_x_F", "grad_y_f": "_grad_y_F", "grad_x_g": "_grad_x_G",
               "grad_y_g": "_grad_y_G", "hvp": "_hvp_G", "jvp": "_jvp_G"}


@dataclass
class Counts:
    """Cumulative oracle counts per instance (Definition 2 of the papers)."""

    gc_f: int = 0
    gc_g: int = 0
    jv: int = 0
    hv: int = 0
    samples_f: int = 0
    samples_g: int = 0

    @property
    def mv(self) -> int:
        """MV = JV + HV (matrix-vector products, Ji, Liu, Liang, Ying 2022)."""
        return self.jv + self.hv

    def as_dict(self) -> dict[str, int]:
        out = asdict(self)
        out["mv"] = self.mv
        return out

    def copy(self) -> Counts:
        return Counts(**asdict(self))


class CountedOracle:
    """Counted first- and second-order oracles of a problem, deterministic or on a mini-batch.

    Every method takes batched tensors x (R, dim_x), y (R, dim_y) (v (R, dim_y)); ``idx`` is an index
    tensor (R, S) from ``problem.sample`` for the stochastic versions (None: the full f or g).
    Inputs are trusted (validated once by the algorithm driver).
    """

    def __init__(self, problem, backend: str = "closed"):
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.problem = problem
        self.backend = backend
        self.counts = Counts()
        #: kind -> (R,) int64: what the batch executed that instance r did not need (``active`` masks)
        self.idle: dict[str, torch.Tensor] = {}

    # ------------------------------------------------------------------ counting
    def charge(self, kind: str, n: int, active: torch.Tensor | None = None) -> None:
        """Add ``n`` to the count ``kind`` ('gc_f', 'gc_g', 'jv', 'hv', 'samples_f', 'samples_g'); with
        ``active`` ((R,) or (R, 1) bool) only the instances in the mask needed it (the others are idle).
        Code that computes through the problem outside these methods (``itd_autograd``) charges here."""
        setattr(self.counts, kind, getattr(self.counts, kind) + n)
        if active is not None:
            self.release(kind, n, active)

    def release(self, kind: str, n: int, active: torch.Tensor) -> None:
        """Record ``n`` units of ``kind``, already executed, as not needed by the instances outside
        ``active`` (e.g. a Hessian batch drawn for all but used only by some: ``draw_batches(active=...)``)."""
        off = (~active.reshape(-1)).to(torch.int64) * n
        prev = self.idle.get(kind)
        self.idle[kind] = off if prev is None else prev + off

    def per_instance(self, kind: str) -> torch.Tensor:
        """(R,) float64 counts of ``kind`` each instance needed (executed less idle; MV = JV + HV)."""
        parts = ("jv", "hv") if kind == "mv" else (kind,)
        total = float(sum(getattr(self.counts, k) for k in parts))
        out = torch.full((self.problem.R,), total, dtype=torch.float64)
        for k in parts:
            if k in self.idle:
                out -= self.idle[k].to("cpu", torch.float64)
        return out

    def _cost(self, idx) -> int:
        return 1 if idx is None else int(idx.shape[-1])

    def _count(self, kind: str, idx, active) -> None:
        if active is None:  # the hot path: one Python addition
            setattr(self.counts, kind, getattr(self.counts, kind) + self._cost(idx))
        else:
            self.charge(kind, self._cost(idx), active)

    def _fn(self, which: str, idx):
        p = self.problem
        if idx is None:
            return p._f if which == "f" else p._g
        fn = p._F if which == "f" else p._G
        return lambda x, y: fn(x, y, idx)

    def _closed(self, name: str, idx, *args):
        """The problem's closed form ``name`` at ``args`` (on the batch idx when given)."""
        if idx is None:
            return getattr(self.problem, f"_{name}")(*args)
        return getattr(self.problem, _STOCHASTIC[name])(*args, idx)

    # ------------------------------------------------------------------ first order
    def grad_x_f(self, x, y, idx=None, active=None):
        """grad_x f(x, y) (or grad_x F on the batch idx); Gc(f) += |batch|."""
        self._count("gc_f", idx, active)
        if self.backend == "closed":
            return self._closed("grad_x_f", idx, x, y)
        fn = self._fn("f", idx)
        return _fgrad(lambda a: fn(a, y).sum())(x)

    def grad_y_f(self, x, y, idx=None, active=None):
        """grad_y f(x, y) (or grad_y F on the batch idx); Gc(f) += |batch|."""
        self._count("gc_f", idx, active)
        if self.backend == "closed":
            return self._closed("grad_y_f", idx, x, y)
        fn = self._fn("f", idx)
        return _fgrad(lambda b: fn(x, b).sum())(y)

    def grad_x_g(self, x, y, idx=None, active=None):
        """grad_x g(x, y) (or grad_x G on the batch idx); Gc(g) += |batch|."""
        self._count("gc_g", idx, active)
        if self.backend == "closed":
            return self._closed("grad_x_g", idx, x, y)
        fn = self._fn("g", idx)
        return _fgrad(lambda a: fn(a, y).sum())(x)

    def grad_y_g(self, x, y, idx=None, active=None):
        """grad_y g(x, y) (or grad_y G on the batch idx); Gc(g) += |batch|."""
        self._count("gc_g", idx, active)
        if self.backend == "closed":
            return self._closed("grad_y_g", idx, x, y)
        return self._auto_grad_y_g(x, y, idx)

    def _auto_grad_y_g(self, x, y, idx):
        fn = self._fn("g", idx)
        return _fgrad(lambda b: fn(x, b).sum())(y)

    # ------------------------------------------------------------------ second order
    def hvp(self, x, y, v, idx=None, active=None):
        """grad_yy g(x, y) v (or of G on the batch idx); HV += |batch|."""
        self._count("hv", idx, active)
        if self.backend == "closed":
            return self._closed("hvp", idx, x, y, v)
        _, pull = _fvjp(lambda b: self._auto_grad_y_g(x, b, idx), y)
        return pull(v)[0]

    def jvp(self, x, y, v, idx=None, active=None):
        """grad_x grad_y g(x, y) v, shape like x (or of G on the batch idx); JV += |batch|."""
        self._count("jv", idx, active)
        if self.backend == "closed":
            return self._closed("jvp", idx, x, y, v)
        return _fgrad(lambda a: (self._auto_grad_y_g(a, y, idx) * v).sum())(x)

    # ------------------------------------------------------------------ sampling
    def minibatches(self, which: str, idx: torch.Tensor, sizes: list[int]) -> list:
        """Consecutive mini-batches of one draw, as the problem represents them (free: counted at draw)."""
        return self.problem.minibatches(which, idx, sizes)

    def sample(self, which: str, size: int, streams, replace: bool = True) -> torch.Tensor:
        """Draw a mini-batch of ``size`` sample indices (R, size) for F (``'f'``) or G (``'g'``)."""
        idx = self.problem.sample(which, size, streams, replace=replace)
        self.charge("samples_f" if which == "f" else "samples_g", int(size))
        return idx
