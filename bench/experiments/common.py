"""Measurement helpers shared by the experiments: scoring with the truth, complexity to eps, start points.

The truth (grad Phi, y*, Phi) is read here, never inside an algorithm: ``scorer(problem)`` is passed to
``algorithms.run`` which calls it between iterations, outside the counts and the timer. Algorithms are run
through the cast of the environment (``roles``): :func:`run_role` runs whoever plays a role.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an

from ..roles import PAPER, Cast, cast_for

__all__ = ["scorer", "complexity_to_eps", "start_at_gap", "make", "run_role", "cast_of", "COUNT_KINDS"]

COUNT_KINDS = ("gc_f", "gc_g", "jv", "hv", "mv", "samples_f", "samples_g")


def _truth(problem, x, y) -> dict:
    out = {"grad_phi_sq": (problem._hypergradient(x) ** 2).sum(-1), "phi": problem._phi(x)}
    if y is not None:
        out["y_err_sq"] = ((y - problem._y_star(x)) ** 2).sum(-1)
    return out


def scorer(problem):
    """Metrics of an iterate from the problem's exact truth: ||grad Phi(x)||^2, Phi(x), ||y - y*(x)||^2.

    An iterate the truth cannot be evaluated at (non-finite, or outside the region where the exact y*
    exists: a failed Cholesky on a diverging run) scores NaN for its instance, so the run reads as
    diverged, a result, never as an error of the experiment."""

    def score(x, y):
        try:
            if bool(torch.isfinite(x).all()) and (y is None or bool(torch.isfinite(y).all())):
                return _truth(problem, x, y)
        except (torch.linalg.LinAlgError, RuntimeError, ValueError):
            pass
        rows = []
        for r in range(x.shape[0]):
            try:
                if not bool(torch.isfinite(x[r]).all()):
                    raise ValueError("non-finite iterate")
                inst = problem.instance(r)
                vals = _truth(inst, x[r:r + 1], None if y is None else y[r:r + 1])
                rows.append({k: v.reshape(()) for k, v in vals.items()})
            except (torch.linalg.LinAlgError, RuntimeError, ValueError):
                nan = torch.tensor(math.nan, dtype=x.dtype, device=x.device)
                rows.append({k: nan for k in ("grad_phi_sq", "phi", *(() if y is None else ("y_err_sq",)))})
        return {k: torch.stack([r[k] for r in rows]) for k in rows[0]}

    return score


def make(name: str, env, **kw):
    """Build a problem on the environment's device and dtype."""
    return an.make_problem(name, device=env.device, dtype=env.torch_dtype(), **kw)


def cast_of(env, audited: bool = True) -> Cast:
    """The players of an arm: the environment's cast (plug-ins substituted) or, for a baseline arm, the
    paper's implementations."""
    return cast_for(env) if audited else PAPER


def run_role(role: str, problem, steps: int, env, *, audited: bool = True, preset: str | None = None,
             preset_args: dict | None = None, x0=None, y0=None, generator=None, stop=None, score: bool = True,
             record_every: int = 1, scorer_fn=None, **params) -> al.Trace:
    """Run whoever plays ``role`` (``cast_of(env, audited)``) with the paper's ``preset`` and ``params``,
    scored with the truth (or ``scorer_fn``) and keeping no iterates (sweeps need metrics and counts)."""
    run_args = {"x0": x0, "y0": y0, "generator": generator, "stop": stop, "keep_iterates": False,
                "record_every": record_every}
    if score:
        run_args["scorer"] = scorer_fn or scorer(problem)
    return cast_of(env, audited).run(role, problem, steps, preset=preset, preset_args=preset_args,
                                     run_args=run_args, **params)


def complexity_to_eps(trace: al.Trace, eps: float) -> list[dict]:
    """Per instance: the first K with (1/K) sum_{k<K} ||grad Phi(x_k)||^2 <= eps (the papers' criterion),
    and the oracle counts spent to produce x_0..x_{K-1} (counts recorded before step K-1... i.e. at record
    K-1, since x_{K-1} is the last iterate averaged). Needs ``record_every=1``. K = -1 (counts NaN) when
    the criterion is not met within the run; also reports min_k ||grad Phi||^2 and the last value."""
    if trace.iterations != list(range(len(trace.iterations))):
        raise ValueError("complexity_to_eps needs a trace recorded at every iteration (record_every=1)")
    g = trace.metrics["grad_phi_sq"].numpy()  # (n, R)
    n, R = g.shape
    avg = np.cumsum(g, axis=0) / np.arange(1, n + 1)[:, None]
    counts = {kind: trace.per_instance(kind).numpy() for kind in COUNT_KINDS}  # each instance's own run
    out = []
    for r in range(R):
        hit = np.flatnonzero(avg[:, r] <= eps)
        K = int(hit[0]) + 1 if hit.size else -1
        row = {"instance": r, "K": K, "min_grad_phi_sq": float(np.nanmin(g[:, r])),
               "last_grad_phi_sq": float(g[-1, r]), "avg_grad_phi_sq": float(avg[-1, r]),
               "diverged_at": int(trace.diverged_at[r])}
        for kind in COUNT_KINDS:
            row[kind] = float(counts[kind][K - 1, r]) if K > 0 else math.nan
        out.append(row)
    return out


def start_at_gap(problem, gap: float, seed: int = 0) -> torch.Tensor:
    """A start x0 with Phi(x0) - inf Phi = gap on every instance (the tables treat Phi(x0) - inf Phi as a
    constant, so sweeps over kappa fix it): x0 = x_opt + t d along a random unit direction d, t found by
    bisection on the exact Phi (monotone along the ray for the quadratic families' convex part; the
    bisection finds a root of Phi(x_opt + t d) - phi_star - gap on [0, t_max] in any case)."""
    if problem.phi_star is None or not hasattr(problem, "x_opt"):
        raise ValueError(f"start_at_gap needs a problem with known phi_star and x_opt ({problem.name})")
    gen = torch.Generator().manual_seed(seed)
    d = torch.randn(problem.R, problem.dim_x, generator=gen, dtype=torch.float64).to(problem.x_opt)
    d = d / d.norm(dim=-1, keepdim=True)

    def excess(t):
        return problem._phi(problem.x_opt + t[:, None] * d) - problem.phi_star - gap

    lo = torch.zeros(problem.R, dtype=d.dtype, device=d.device)
    hi = torch.ones_like(lo)
    for _ in range(200):
        neg = excess(hi) < 0
        if not bool(neg.any()):
            break
        hi = torch.where(neg, 2 * hi, hi)
    for _ in range(100):
        mid = (lo + hi) / 2
        below = excess(mid) < 0
        lo = torch.where(below, mid, lo)
        hi = torch.where(below, hi, mid)
    return problem.x_opt + hi[:, None] * d
