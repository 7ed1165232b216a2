"""SID: stochastic implicit differentiation (Grazzi, Pontil, Salzo, AISTATS 2021, Alg. 1).

In the bilevel notation of the other papers: E(w, lambda) = f(x, y) with w = y, lambda = x, and the
fixed-point map of the lower level is the gradient step
  Phi^(w, lambda, zeta) = w - alpha grad_y G(x, w; zeta)   (SID eq. 3 with alpha_lambda = alpha),
a contraction with q = max(|1 - alpha mu|, |1 - alpha L|) (q = (L-mu)/(L+mu) at alpha = 2/(L+mu)).
Per outer step (x fixed):
  w_{t+1} = w_t + eta_t (Phi^(w_t, x, zeta_t) - w_t),  t < T                        (eq. 28; T S Gc(g))
  v_{k+1} = v_k + eta_k (Psi^_w(v_k, x, zeta^_k) - v_k),  k < K,
      Psi^_w(v, x, z) = d1 Phi^(w, x, z)' v + grad_1 E(w, x) = v - alpha grad_yy G(x, w; z) v + grad_y f (eq. 29;
      K S HV, 1 Gc(f))
  est = grad_2 E(w_T, x) + d2 Phi^(w_T, x, zeta)' v_K = grad_x f - alpha grad_x grad_y G(x, w_T; zeta) v_K
      (eq. 8; 1 Gc(f), S JV),
  x <- x - beta est (beta = 0: estimation only; SID itself has no outer loop).
The fixed point of (29) is v = (alpha H)^-1 grad_y f, so est -> grad_x f - grad_x grad_y g H^-1 grad_y f =
grad Phi (ICML 2021 eq. 4). E is deterministic in SID: grad f is the full one (exact). The map's
randomness enters through G only; with jv='exact' the final product uses d2 Phi (the full mean): the
separable case of SID eq. (15), m2 = 0; with jv='sampled' it uses a fresh batch zeta of size S (m2 > 0
unless the family's grad_x grad_y G does not depend on the sample).
Variants of SID Sec. 6: Batch (S = None: the full map, eta_t = 1), Stoch const (mini-batches, eta_t = 1),
Stoch dec (mini-batches, eta_t = beta/(gamma + t), beta = 2/(1 - q^2), gamma = beta): presets.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import presets as det_presets
from . import stochastic_presets as sp
from .base import Algorithm, Param, register
from .stochastic import check_batch_sizes, require_stochastic
from .stochastic_solvers import draw_batches, step_size_policy, stochastic_fixed_point

__all__ = ["SIDState", "sid_estimate"]


@dataclass
class SIDState:
    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor | None = None
    estimate: torch.Tensor | None = None


def _steps(problem, p):
    """eta_t of the chosen policy; the decreasing defaults (None) are SID Sec. 6's beta = 2/(1 - q^2),
    gamma = beta with q the contraction constant of the map at the chosen alpha."""
    beta, gamma = p["eta_beta"], p["eta_gamma"]
    if p["policy"] == "decreasing" and beta is None:
        q = sp.sid_q(problem, p["alpha"])
        beta = 2.0 / (1.0 - q * q)
    if gamma is None:
        gamma = beta
    return step_size_policy(p["policy"], p["eta"], beta, gamma)


def _batches(oracle, streams, S, n: int, replace: bool):
    """n batches of size S for G, or n times None (the full map) when S is None."""
    if S is None:
        return [None] * n
    return draw_batches(oracle, "g", [S] * n, streams, replace)


def sid_estimate(oracle, streams, x, w0, v0, p, fixed_point=stochastic_fixed_point):
    """SID Alg. 1 at x: returns (estimate (eq. 8), w_T, v_K). ``fixed_point`` runs iteration (17) for both
    chains (28) and (29): the component role ``sid.fixed-point`` (default: ``stochastic_fixed_point``)."""
    problem = oracle.problem
    alpha, S, replace = p["alpha"], p["S"], p["replace"]
    eta_t = _steps(problem, p)
    zw = _batches(oracle, streams, S, p["t"], replace)
    w = fixed_point(lambda w, t: w - alpha * oracle.grad_y_g(x, w, zw[t]), w0, p["t"], eta_t)
    b = oracle.grad_y_f(x, w)
    zv = _batches(oracle, streams, S, p["k"], replace)
    v = fixed_point(lambda v, t: v - alpha * oracle.hvp(x, w, v, zv[t]) + b, v0, p["k"], eta_t)
    (z,) = [None] if p["jv"] == "exact" else _batches(oracle, streams, S, 1, replace)
    est = oracle.grad_x_f(x, w) - alpha * oracle.jvp(x, w, v, z)
    return est, w, v


def _init(ctx):
    problem, p = ctx.oracle.problem, ctx.params
    if p["S"] is not None:
        require_stochastic(problem, "sid (S given: mini-batch maps)")
        check_batch_sizes(problem, p["replace"], S=("g", p["S"]))
    q = sp.sid_q(problem, p["alpha"])
    if q >= 1:
        raise ValueError(f"alpha={p['alpha']:.6g} makes the map w - alpha grad_y g a non-contraction "
                         f"(q = max|1 - alpha a| = {q:.6g} >= 1 over [mu, L]); SID needs 0 < alpha < 2/L")
    return SIDState(x=ctx.x0.clone(), y=ctx.y0.clone(), v=torch.zeros_like(ctx.y0))


def _step(ctx, s: SIDState, k: int) -> SIDState:
    p = ctx.params
    w0 = s.y if p["warm_w"] else ctx.y0
    v0 = s.v if p["warm_v"] else torch.zeros_like(ctx.y0)
    est, w, v = sid_estimate(ctx.oracle, ctx.streams, s.x, w0, v0, p, ctx.component("sid.fixed-point"))
    return SIDState(x=s.x - p["beta"] * est, y=w, v=v, estimate=est)


_POS = dict(kind=float, minimum=0.0)
register(Algorithm(
    name="sid", paper="sid21",
    reference="Grazzi, Pontil, Salzo AISTATS 2021, Alg. 1 with the stochastic fixed-point iterations "
    "(28)-(29) (eq. 17), estimate eq. (8); variants of Sec. 6 as presets", stochastic=True, kind="sid",
    summary="SID: t stochastic fixed-point steps on w, k on v (constant or decreasing eta_t), estimate "
    "eq. (8); optional outer step beta",
    params={
        "alpha": Param(sp.sid_alpha, "step of the map w - alpha grad_y G (default 2/(L+mu), SID Sec. 6)",
                       **_POS),
        "S": Param(None, "mini-batch of the map (None: the full map, the 'Batch' variant)", kind=int,
                   minimum=1, strict=False, optional=True),
        "t": Param(30, "iterations of (28) for w", kind=int, minimum=0, strict=False),
        "k": Param(30, "iterations of (29) for v", kind=int, minimum=0, strict=False),
        "policy": Param("constant", "step policy of (28)-(29)", choices=("constant", "decreasing")),
        "eta": Param(1.0, "constant step eta_t = eta (Thm 4.1 needs eta <= 1/(1 + sigma2))", **_POS),
        "eta_beta": Param(None, "decreasing steps beta/(gamma + t): beta (None: 2/(1 - q^2))", **_POS,
                          optional=True),
        "eta_gamma": Param(None, "decreasing steps: gamma (None: = beta)", kind=float, minimum=0.0,
                           strict=False, optional=True),
        "jv": Param("sampled", "d2 Phi^ in eq. (8): 'sampled' (fresh batch of size S) or 'exact' (full mean: "
                    "separable case, m2 = 0)", choices=("sampled", "exact")),
        "beta": Param(det_presets.icml21_beta, "outer step x <- x - beta est (0: estimate only)", kind=float,
                      minimum=0.0, strict=False),
        "warm_w": Param(False, "start (28) from the previous w (SID: w_0 = 0)", kind=bool),
        "warm_v": Param(False, "start (29) from the previous v (SID: v_0 = 0)", kind=bool),
        "replace": Param(True, "sample mini-batches with replacement", kind=bool),
    },
    init=_init, step=_step, presets=sp.SID_PRESETS, roles=("sid",), components=("sid.fixed-point",),
))
