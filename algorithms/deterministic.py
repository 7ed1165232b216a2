"""Deterministic bilevel optimizers: AID-BiO (all loop regimes), BA, ITD-BiO and deterBiO.

Naming: N = inner GD steps on y (ICML 2021 calls them D, arXiv calls them T), Q = steps of the
linear-system solver (ICML 2021 calls the CG steps N). Per outer step k (x_k fixed):
  y_k^t = y_k^{t-1} - alpha grad_y g(x_k, y_k^{t-1}),  t = 1..N                  (N Gc(g))
AID:  v_k^Q ~ (grad_yy g)^-1 grad_y f by Q steps of CG / GD / Neumann from v_k^0      (Q HV, +1 for CG warm)
      est = grad_x f(x_k, y_k^N) - grad_x grad_y g(x_k, y_k^N) v_k^Q  (eq. 3)          (2 Gc(f), 1 JV)
ITD:  est = d f(x_k, y_k^N(x_k)) / d x_k with y_k^0 independent of x_k (ICML 2021 Prop. 2)
                                                                                    (2 Gc(f), N JV, N-1 HV)
  x_{k+1} = x_k - beta est.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import presets
from .base import Algorithm, Param, register
from .solvers import cg, gd, neumann

__all__ = ["AIDState", "inner_gd", "aid_estimate", "itd_reverse", "itd_autograd"]


@dataclass
class AIDState:
    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor | None = None
    estimate: torch.Tensor | None = None


def inner_gd(oracle, x, y, steps: int, alpha: float, keep: bool = False):
    """N steps of GD on g(x, .) from y (Alg. 1 line 5 of both papers); with ``keep`` also returns the
    iterates y^0..y^{N-1} that ITD's reverse recursion needs (O(N d) memory)."""
    ys = []
    for _ in range(steps):
        if keep:
            ys.append(y)
        y = y - alpha * oracle.grad_y_g(x, y)
    return (y, ys) if keep else y


def aid_estimate(oracle, x, y, v0, *, solver: str, Q: int, eta: float, tol: float | None = None,
                 solve=None):
    """AID hypergradient estimate eq. (3): grad_x f - grad_x grad_y g v_Q, with v_Q from ``solver``
    ('cg', 'gd' or 'neumann'; ``solve`` replaces its implementation: component role 'solver.<solver>').

    Returns (estimate, v_Q)."""
    b = oracle.grad_y_f(x, y)

    def H(u):
        return oracle.hvp(x, y, u)

    if solver == "cg":
        v, _ = (solve or cg)(H, b, v0, Q, tol)
    elif solver == "gd":
        v = (solve or gd)(H, b, v0, Q, eta)
    else:  # 'neumann': the series of Q + 1 terms needs Q HV and has no warm start
        v = (solve or neumann)(H, b, Q, eta)
    return oracle.grad_x_f(x, y) - oracle.jvp(x, y, v), v


def itd_reverse(oracle, x, ys, y_N, alpha: float):
    """ITD estimate by the reverse recursion of ICML 2021 Prop. 2 over stored inner iterates.

    d f(x, y^N)/dx = grad_x f(x, y^N) - alpha sum_{t=0}^{N-1} grad_x grad_y g(x, y^t)
                     prod_{j=t+1}^{N-1} (I - alpha grad_yy g(x, y^j)) grad_y f(x, y^N).
    Cost: 2 Gc(f), N JV, N - 1 HV (the product for t = 0 needs no further HV).
    """
    u = oracle.grad_y_f(x, y_N)
    out = oracle.grad_x_f(x, y_N)
    for t in range(len(ys) - 1, -1, -1):
        out = out - alpha * oracle.jvp(x, ys[t], u)
        if t > 0:
            u = u - alpha * oracle.hvp(x, ys[t], u)
    return out


def itd_autograd(oracle, x, y0, steps: int, alpha: float):
    """ITD estimate by torch autograd through the unrolled inner loop (same count as the reverse mode,
    which is what backpropagation performs: N JV and N - 1 HV)."""
    p = oracle.problem
    # the driver may run the step in inference mode, whose tensors autograd cannot record: leave it and
    # differentiate ordinary copies
    with torch.inference_mode(False), torch.enable_grad():
        xg = x.detach().clone().requires_grad_(True)
        y = y0.detach().clone()
        for _ in range(steps):
            y = y - alpha * p._grad_y_g(xg, y)
        val = p._f(xg, y).sum()
        # allow_unused: f(x, y^N(x)) may not depend on x at all (e.g. B = 0 and no h(x)); d/dx is then 0
        (grad,) = torch.autograd.grad(val, xg, allow_unused=True)
    grad = torch.zeros_like(x) if grad is None else grad
    oracle.charge("gc_g", steps)
    oracle.charge("gc_f", 2)
    oracle.charge("jv", steps)
    oracle.charge("hv", max(steps - 1, 0))
    return grad.detach(), y.detach()


# ---------------------------------------------------------------------- AID-BiO and BA
def _aid_init(ctx):
    return AIDState(x=ctx.x0.clone(), y=ctx.y0.clone())


def _ba_inner_steps(k: int) -> int:
    """Ghadimi and Wang's growing inner loop as in the Loops paper's Table 1: N_k = ceil((k+1)^(1/4)/2)."""
    return max(1, math.ceil((k + 1) ** 0.25 / 2))


def _aid_step(ctx, s: AIDState, k: int) -> AIDState:
    p, o = ctx.params, ctx.oracle
    N = _ba_inner_steps(k) if p.get("schedule") == "increasing" else p["N"]
    y = s.y if p["warm_y"] else ctx.y0
    y = inner_gd(o, s.x, y, N, p["alpha"])
    v0 = s.v if (p["warm_v"] and p["solver"] != "neumann") else None
    est, v = aid_estimate(o, s.x, y, v0, solver=p["solver"], Q=p["Q"], eta=p["eta"], tol=p["tol"],
                          solve=ctx.component(f"solver.{p['solver']}"))
    return AIDState(x=s.x - p["beta"] * est, y=y, v=v, estimate=est)


_STEP = dict(kind=float, minimum=0.0)
_COMMON = {
    "alpha": Param(presets.one_over_L, "inner GD step size on y (default 1/L; theory: alpha <= 1/L)", **_STEP),
    "beta": Param(presets.icml21_beta, "outer step size on x (default 1/(8 L_Phi), ICML 2021 Thm 1)", **_STEP),
    # N, Q >= 1: the papers' loops run t = 1..N and Q solver steps; 0 would silently drop a loop.
    "N": Param(10, "inner GD steps per outer step (ICML: D, arXiv: T), >= 1", kind=int, minimum=0),
    "warm_y": Param(True, "warm start y_k^0 = y_{k-1}^N", kind=bool),
}
_AID_PARAMS = {
    **_COMMON,
    "Q": Param(10, "linear-system solver steps per outer step (ICML: N CG steps), >= 1", kind=int, minimum=0),
    "solver": Param("cg", "linear-system solver", choices=("cg", "gd", "neumann")),
    "eta": Param(presets.one_over_L, "step of the GD/Neumann solver (default 1/L; theory: eta <= 1/L)",
                 **_STEP),
    "warm_v": Param(True, "warm start v_k^0 = v_{k-1}^Q (CG and GD)", kind=bool),
    "tol": Param(None, "optional CG residual tolerance (relative); None runs exactly Q steps", **_STEP,
                 optional=True),
}


_SOLVERS = ("solver.cg", "solver.gd", "solver.neumann")

register(Algorithm(
    name="aid-bio", paper="icml21, loops22", reference="Ji, Yang, Liang ICML 2021 Alg. 1; Ji, Liu, Liang, "
    "Ying NeurIPS 2022 Alg. 1", stochastic=False, kind="aid",
    summary="AID-BiO: N inner GD steps, Q CG/GD steps on the linear system, double warm starts",
    params={**_AID_PARAMS, "schedule": Param("constant", "inner-loop schedule",
                                             choices=("constant", "increasing"))},
    init=_aid_init, step=_aid_step, presets=presets.AID_PRESETS, theory=presets.STEP_CHECKS,
    roles=("aid-bio",), components=_SOLVERS,
))

register(Algorithm(
    name="ba", paper="arxiv20, loops22", reference="Ghadimi and Wang 2018 (BA) as in the Loops paper's "
    "Table 1: N_k = ceil((k+1)^(1/4)/2), Q = Theta(kappa ln kappa)", stochastic=False, kind="aid",
    summary="BA / AID-BiO-increasing: AID with a growing inner loop and a Neumann linear solve",
    params={**_AID_PARAMS, "solver": Param("neumann", "linear-system solver", choices=("cg", "gd", "neumann")),
            "schedule": Param("increasing", "inner-loop schedule", choices=("constant", "increasing"))},
    init=_aid_init, step=_aid_step, presets=presets.BA_PRESETS, theory=presets.STEP_CHECKS,
    roles=("ba",), components=_SOLVERS,
))


# ---------------------------------------------------------------------- ITD-BiO and deterBiO
def _itd_step(ctx, s: AIDState, k: int) -> AIDState:
    p, o = ctx.params, ctx.oracle
    y0 = s.y if p["warm_y"] else ctx.y0
    if p["mode"] == "autograd":
        est, y = itd_autograd(o, s.x, y0, p["N"], p["alpha"])
    else:
        y, ys = inner_gd(o, s.x, y0, p["N"], p["alpha"], keep=True)
        est = ctx.component("itd.hypergradient")(o, s.x, ys, y, p["alpha"])
    return AIDState(x=s.x - p["beta"] * est, y=y, estimate=est)


_ITD_PARAMS = {**_COMMON, "mode": Param("reverse", "how d f(x, y^N(x))/dx is computed",
                                        choices=("reverse", "autograd"))}

register(Algorithm(
    name="itd-bio", paper="icml21, loops22", reference="Ji, Liu, Liang, Ying NeurIPS 2022 Alg. 2; ITD branch "
    "of Ji, Yang, Liang ICML 2021 Alg. 1", stochastic=False, kind="itd",
    summary="ITD-BiO: N warm-started inner GD steps, backpropagation through them (Prop. 2)",
    params=_ITD_PARAMS, init=_aid_init, step=_itd_step, presets=presets.ITD_PRESETS,
    theory=presets.STEP_CHECKS, roles=("itd-bio",), components=("itd.hypergradient",),
))

register(Algorithm(
    name="deterbio", paper="arxiv20", reference="Ji, Yang, Liang arXiv Alg. 1 (deterBiO)", stochastic=False,
    kind="itd", summary="deterBiO: ITD with a fresh inner start y_k^0 = y0 at every outer step",
    params={**_ITD_PARAMS, "warm_y": Param(False, "warm start (deterBiO: fresh start y_k^0 = y0)", kind=bool)},
    init=_aid_init, step=_itd_step, presets=presets.DETERBIO_PRESETS, theory=presets.STEP_CHECKS,
    roles=("deterbio",), components=("itd.hypergradient",),
))
