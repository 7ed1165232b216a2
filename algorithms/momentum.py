"""Momentum and variance-reduced bilevel optimizers of Yang, Ji, Liang (NeurIPS 2021, "Provably Faster
Algorithms for Bilevel Optimization"): MRBO (Alg. 1, STORM on both levels) and VRBO (Alg. 2, SARAH/SPIDER
with large-batch restarts). Research notes: updates [M] (recalled, the paper's text was not available),
O~(eps^-1.5) samples for E||grad Phi||^2 <= eps [R via later papers' tables].

The hypergradient estimate at (x, y) on a sample set (F batch D_F, Q Hessian batches, JV batch D_G):
    hatgrad Phi(x, y) = grad_x F(x, y; D_F) - grad_x grad_y G(x, y; D_G) v_Q,
    v_Q = eta sum_{q=0}^{Q} prod_{j=1}^{q} (I - eta grad_yy G(x, y; B_j)) grad_y F(x, y; D_F)
(the arXiv stocBiO estimator eq. (5), component ``stocbio.hinv``). Every recursion evaluates its two points on
the SAME samples (that is what makes the difference small).

MRBO (arranged so that step k computes its directions, then moves; the sequence of points is the paper's):
    k = 0:  u_0 = grad_y G(x_0, y_0; B_0),  d_0 = hatgrad Phi(x_0, y_0; B_0);
    k >= 1: u_k = grad_y G(x_k, y_k; B_k) + (1 - beta_k)(u_{k-1} - grad_y G(x_{k-1}, y_{k-1}; B_k)),
            d_k = hatgrad Phi(x_k, y_k; B_k) + (1 - alpha_k)(d_{k-1} - hatgrad Phi(x_{k-1}, y_{k-1}; B_k))
            (component ``storm.direction``), alpha_k = c1 eta_{k-1}^2, beta_k = c2 eta_{k-1}^2;
    x_{k+1} = x_k - lam eta_k d_k,  y_{k+1} = y_k - gam eta_k u_k,  eta_k = c_eta/(m0 + k)^(1/3).
  Variant 'constant': eta_k, alpha_k, beta_k frozen at their k = 0 values (a public implementation, the F2BA
  repository's Hpo/l2reg.py MRBO [C], keeps them constant).
VRBO (outer step k, restart period q, m inner steps):
    if k mod q = 0: u = grad_y G(x_k, y_k; S1), d = hatgrad Phi(x_k, y_k; S1) (large batches);
    x_{k+1} = x_k - alpha d;
    m inner steps at x_{k+1}: on a fresh small batch S2, (u, d) += (grad_y G, hatgrad Phi)(current point; S2)
    - (the same)(previous evaluated point; S2) (component ``sarah.direction``), then y <- y - beta u.
  The previous evaluated point is the one of the last update of (u, d), so each difference spans exactly the
  move since then (the x step included).
Per outer step costs (``bounds.costs``): one hypergradient estimate and one grad_y g on a sample set of size S
cost S Gc(g), 2 S Gc(f), Q S HV, S JV; MRBO evaluates it at one point at k = 0 and at two from k = 1 on; VRBO
at one point (size S1) at a restart and at two points (size S2) in each of its m inner steps.
Batch sizes None mean the full objective (all n samples of a finite sum, counted n; the deterministic oracle,
counted 1, on a deterministic problem).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import modern_presets as mp
from .base import Algorithm, Param, register
from .directions import check_batches, draw_many

__all__ = ["MomentumState", "neumann_hypergradient"]


@dataclass
class MomentumState:
    x: torch.Tensor
    y: torch.Tensor
    estimate: torch.Tensor | None = None  # d: the x direction
    u: torch.Tensor | None = None  # the y direction
    prev: tuple | None = None  # the point (x, y) of the last direction update


def neumann_hypergradient(o, x, y, batches, eta: float, hinv) -> torch.Tensor:
    """hatgrad Phi(x, y) on ``batches`` = (D_F, D_G, [B_1..B_Q]) (module docstring)."""
    bF, bJ, bH = batches
    v = hinv(lambda u, idx: o.hvp(x, y, u, idx), o.grad_y_f(x, y, bF), bH, eta)
    return o.grad_x_f(x, y, bF) - o.jvp(x, y, v, bJ)


def _samples(ctx, S, count: int = 1) -> list:
    """``count`` sample sets (each for both directions: G batch for u, then (F batch, JV batch, Q Hessian
    batches) for the hypergradient), all of size S, from one draw per sample set."""
    p = ctx.params
    per = 2 + p["Q"]
    gs, fs = draw_many(ctx, "g", S, per * count), draw_many(ctx, "f", S, count)
    out = []
    for c in range(count):
        bG, bJ, *bH = gs[c * per:(c + 1) * per]
        out.append((bG, (fs[c], bJ, bH)))
    return out


def _init(ctx):
    check_batches(ctx.oracle.problem, ctx.params, "MRBO/VRBO")
    return MomentumState(x=ctx.x0.clone(), y=ctx.y0.clone())


# ---------------------------------------------------------------------- MRBO
def mrbo_eta(p, k: int) -> float:
    """eta_k = c_eta/(m0 + k)^(1/3) (variant 'constant': eta_0)."""
    kk = 0 if p["variant"] == "constant" else k
    return p["c_eta"] / (p["m0"] + kk) ** (1.0 / 3.0)


def _mrbo_step(ctx, s: MomentumState, k: int) -> MomentumState:
    p, o = ctx.params, ctx.oracle
    hinv = ctx.component("stocbio.hinv")
    ((bG, batches),) = _samples(ctx, p["S"])
    u = o.grad_y_g(s.x, s.y, bG)
    d = neumann_hypergradient(o, s.x, s.y, batches, p["eta_h"], hinv)
    if k > 0:
        storm = ctx.component("storm.direction")
        e2 = mrbo_eta(p, k - 1) ** 2
        xp, yp = s.prev
        u = storm(s.u, u, o.grad_y_g(xp, yp, bG), p["c2"] * e2)
        d = storm(s.estimate, d, neumann_hypergradient(o, xp, yp, batches, p["eta_h"], hinv), p["c1"] * e2)
    eta = mrbo_eta(p, k)
    return MomentumState(x=s.x - p["lam"] * eta * d, y=s.y - p["gam"] * eta * u, estimate=d, u=u, prev=(s.x, s.y))


_POS = dict(kind=float, minimum=0.0)
_INT0 = dict(kind=int, minimum=0, strict=False)
_INT1 = dict(kind=int, minimum=1, strict=False)
_BATCH = dict(kind=int, minimum=1, strict=False, optional=True)
_NEUMANN = {
    "Q": Param(10, "Neumann factors of the Hessian-inverse estimate", **_INT0),
    "eta_h": Param(mp.one_over_L_sample_yy, "Neumann step (<= 1/L per sample)", **_POS),
}

register(Algorithm(
    name="mrbo", paper="mrbo21",
    reference="Yang, Ji, Liang, NeurIPS 2021, Provably Faster Algorithms for Bilevel Optimization, Alg. 1 (MRBO); "
    "update and schedule eta_k = t/(m + k)^(1/3), alpha, beta = c eta^2 as in the research notes [M]",
    stochastic=True, kind="stochastic-single-loop",
    summary="MRBO: STORM momentum on the y direction and on a Neumann hypergradient estimate (same samples at "
    "both points), steps lam eta_k and gam eta_k",
    params={
        "c_eta": Param(1.0, "t in eta_k = t/(m0 + k)^(1/3)", **_POS),
        "m0": Param(mp.mrbo_m0, "m in eta_k = t/(m0 + k)^(1/3) (>= 1; keeps alpha_k, beta_k <= 1)", **_POS),
        "c1": Param(mp.mrbo_c, "alpha_{k+1} = c1 eta_k^2 (STORM weight of the x direction)", **_POS),
        "c2": Param(mp.mrbo_c, "beta_{k+1} = c2 eta_k^2 (STORM weight of the y direction)", **_POS),
        "lam": Param(mp.mrbo_lam, "x step scale: x -= lam eta_k d_k", **_POS),
        "gam": Param(mp.one_over_L_sample_yy, "y step scale: y -= gam eta_k u_k", **_POS),
        "S": Param(1, "size of every batch of a step (None: the full objective)", **_BATCH),
        "variant": Param("paper", "'paper' (decreasing eta_k) or 'constant' (eta_k, alpha_k, beta_k frozen at k = 0, "
                         "as a public implementation)", choices=("paper", "constant")),
        **_NEUMANN,
    },
    init=_init, step=_mrbo_step, presets=mp.MRBO_PRESETS, theory=mp.MRBO_CHECKS,
    roles=("mrbo",), components=("storm.direction", "stocbio.hinv"),
))


# ---------------------------------------------------------------------- VRBO
def _vrbo_step(ctx, s: MomentumState, k: int) -> MomentumState:
    p, o = ctx.params, ctx.oracle
    hinv = ctx.component("stocbio.hinv")
    u, d, prev = s.u, s.estimate, s.prev
    if k % p["q"] == 0:
        ((bG, batches),) = _samples(ctx, p["S1"])
        u = o.grad_y_g(s.x, s.y, bG)
        d = neumann_hypergradient(o, s.x, s.y, batches, p["eta_h"], hinv)
        prev = (s.x, s.y)
    x = s.x - p["alpha"] * d
    y = s.y
    sarah = ctx.component("sarah.direction")
    for bG, batches in _samples(ctx, p["S2"], p["m"]):
        xp, yp = prev
        u = sarah(u, o.grad_y_g(x, y, bG), o.grad_y_g(xp, yp, bG))
        d = sarah(d, neumann_hypergradient(o, x, y, batches, p["eta_h"], hinv),
                  neumann_hypergradient(o, xp, yp, batches, p["eta_h"], hinv))
        prev = (x, y)
        y = y - p["beta"] * u
    return MomentumState(x=x, y=y, estimate=d, u=u, prev=prev)


register(Algorithm(
    name="vrbo", paper="vrbo21",
    reference="Yang, Ji, Liang, NeurIPS 2021, Provably Faster Algorithms for Bilevel Optimization, Alg. 2 (VRBO); "
    "update as in the research notes [M] (SARAH/SPIDER, large-batch restart every q steps)",
    stochastic=True, kind="stochastic-single-loop",
    summary="VRBO: SARAH recursion on the y direction and on a Neumann hypergradient estimate, large-batch restart "
    "every q outer steps, m inner y steps per outer step",
    params={
        "alpha": Param(mp.vrbo_alpha, "outer step on x (constant)", **_POS),
        "beta": Param(mp.one_over_L_sample_yy, "inner step on y (constant)", **_POS),
        "q": Param(10, "restart period (outer steps)", **_INT1),
        "m": Param(3, "inner steps per outer step", **_INT1),
        "S1": Param(mp.vrbo_S1, "large batch of the restarts (None: the full objective)", **_BATCH),
        "S2": Param(1, "small batch of the recursion (None: the full objective)", **_BATCH),
        **_NEUMANN,
    },
    init=_init, step=_vrbo_step, presets=mp.VRBO_PRESETS, theory=mp.MRBO_CHECKS,
    roles=("vrbo",), components=("sarah.direction", "stocbio.hinv"),
))
