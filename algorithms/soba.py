"""The SOBA framework: SOBA, SABA (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022), SRBA (Dagreou, Moreau,
Vaiter, Ablin, AISTATS 2024) and FSLA (Li, Gu, Huang, AAAI 2022).

Notation: y is SOBA's z (the inner variable), v approximates v* = -[grad_yy g]^-1 grad_y f, so that
grad Phi = grad_x f + grad_x grad_y g v* (SOBA Sec. 2). With one batch of G samples (i) and one of F samples
(j), all three directions at the same point (y, x, v) (SOBA Alg. 1, eqs. 6-8):
    D_z = grad_y G_i(y, x),   D_v = grad_yy G_i(y, x) v + grad_y F_j(y, x),
    D_x = grad_x grad_y G_i(y, x) v + grad_x F_j(y, x),
    y+ = y - rho D_z,   v+ = v - rho D_v,   x+ = x - gamma D_x.
SOBA: D_* plain mini-batch estimates. SABA: each of the five sampled terms replaced by its SAGA estimate with
one memory per sample (component ``saga.direction``). SRBA: SARAH directions (component ``sarah.direction``),
full-batch every q steps. FSLA (notes, [C]): one SGD step on y, one on v at the new y, and the hypergradient
estimate with a STORM correction (component ``storm.direction``).

A batch size None means the full objective: on a finite sum the batch of all n (m) samples, counted n (m),
as are SABA's memory initialisation and SRBA's restarts; on a deterministic problem the deterministic oracle
(one call counts 1).

Per outer step costs (``bounds.costs``): SOBA S_g Gc(g) + S_g HV + S_g JV + 2 S_f Gc(f); SABA the same (its
step 0 with memories at the initial point adds one full pass: n Gc(g), n HV, n JV, 2m Gc(f)); SRBA a full
pass every q steps and twice SOBA's batches otherwise; FSLA S Gc(g), S HV, S JV, 2 S_f Gc(f), plus the STORM
correction from step 1 on (S_f Gc(f), S JV).
v_init = 'solve' adds at step 0: the full-batch grad_y f and ``cg_steps`` full-batch HV (CG on the mean
system, SABA Thm 4's v_0 = v*(x_0) when y_0 = y*(x_0)).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from . import modern_presets as mp
from .base import Algorithm, Param, register
from .directions import check_batches, draw, full, full_batch, indices, per_sample, saga_init, saga_zero
from .solvers import cg

__all__ = ["SobaState", "soba_directions", "solve_v", "step_schedule"]


@dataclass
class SobaState:
    x: torch.Tensor
    y: torch.Tensor
    v: torch.Tensor
    estimate: torch.Tensor | None = None
    #: SABA: term -> SagaMemory; SRBA/FSLA: the directions and the previous point
    memory: dict = field(default_factory=dict)
    prev: tuple | None = None
    D: tuple | None = None


# ---------------------------------------------------------------------- shared pieces
def soba_directions(o, x, y, v, bg, bf):
    """(D_z, D_v, D_x) at (y, x, v) on the G batch bg and the F batch bf (SOBA eqs. 6-8)."""
    dz = o.grad_y_g(x, y, bg)
    dv = o.hvp(x, y, v, bg) + o.grad_y_f(x, y, bf)
    dx = o.jvp(x, y, v, bg) + o.grad_x_f(x, y, bf)
    return dz, dv, dx


def solve_v(ctx, x, y):
    """v_0 = -[grad_yy g]^-1 grad_y f at (x, y) by ``cg_steps`` CG steps on the full-batch system (counted)."""
    o = ctx.oracle
    bg, bf = full(o, "g"), full(o, "f")
    b = -o.grad_y_f(x, y, bf)
    return cg(lambda u: o.hvp(x, y, u, bg), b, steps=ctx.params["cg_steps"])[0]


def step_schedule(c: float, exponent: float, t: int) -> float:
    """c (t + 1)^(-exponent) (exponent 0: constant)."""
    return c if exponent == 0 else c * (t + 1.0) ** (-exponent)


def _start(ctx, state: SobaState, k: int) -> SobaState:
    if k == 0 and ctx.params["v_init"] == "solve":
        return dataclasses.replace(state, v=solve_v(ctx, state.x, state.y))
    return state


def _init(name: str, finite_sum: bool = False, distinct: bool = False):
    def init(ctx):
        p, problem = ctx.params, ctx.oracle.problem
        for key in ("S_g", "S_f"):
            if key in p and p[key] is None and distinct:
                raise ValueError(f"{name} needs a batch size {key} (a memory per sample); got None")
        if finite_sum and not getattr(problem, "stochastic", False):
            raise TypeError(f"{name} needs a finite-sum problem (stochastic = True); {type(problem).__name__} is not")
        for key, which in (("S_g", "g"), ("S_f", "f")):
            size = p.get(key)
            if distinct and size is not None:
                n = problem.n_g if which == "g" else problem.n_f
                if size > n:
                    raise ValueError(f"{key}={size} exceeds the number of samples {n} (SAGA draws distinct samples)")
        check_batches(problem, p, name)
        if p.get("variant") == "public" and p.get("schedule") == "constant":
            raise ValueError(f"{name}: variant='public' is the t^-1/2 schedule of the public code; it needs "
                             "schedule='decreasing'")
        v0 = torch.zeros_like(ctx.y0)
        return SobaState(x=ctx.x0.clone(), y=ctx.y0.clone(), v=v0)
    return init


def _move(s: SobaState, dirs, rho: float, gamma: float, **extra) -> SobaState:
    dz, dv, dx = dirs
    return SobaState(x=s.x - gamma * dx, y=s.y - rho * dz, v=s.v - rho * dv, estimate=dx, **extra)


# ---------------------------------------------------------------------- SOBA
def soba_steps(p, t: int) -> tuple[float, float]:
    """(rho_t, gamma_t): constant (Thm 1: rho = c T^-2/5, gamma = c' T^-3/5 set by the preset), decreasing
    (Thm 2: rho (t+1)^-2/5, gamma (t+1)^-3/5) or the public code's (t+1)^-1/2 for both (variant 'public')."""
    if p["variant"] == "public":
        return step_schedule(p["rho"], 0.5, t), step_schedule(p["gamma"], 0.5, t)
    if p["schedule"] == "decreasing":
        return step_schedule(p["rho"], 0.4, t), step_schedule(p["gamma"], 0.6, t)
    return p["rho"], p["gamma"]


def _soba_step(ctx, s: SobaState, k: int) -> SobaState:
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    bg, bf = draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"])
    rho, gamma = soba_steps(p, k)
    return _move(s, soba_directions(o, s.x, s.y, s.v, bg, bf), rho, gamma)


_POS = dict(kind=float, minimum=0.0)
_BATCH1 = dict(kind=int, minimum=1, strict=False, optional=True)
_COMMON = {
    "rho": Param(mp.soba_rho, "inner step on y and v (rho)", **_POS),
    "gamma": Param(mp.soba_gamma, "outer step on x (gamma)", **_POS),
    "S_g": Param(1, "batch of G samples per step (None: the full objective)", **_BATCH1),
    "S_f": Param(1, "batch of F samples per step (None: the full objective)", **_BATCH1),
    "v_init": Param("zero", "v_0: 'zero' (both papers' code) or 'solve' (v*(x_0, y_0) by CG on the full batch, "
                    "SABA Thm 4's C_0 = 0 when y_0 = y*(x_0))", choices=("zero", "solve")),
    "cg_steps": Param(lambda pr: 2 * pr.dim_y, "CG steps of v_init='solve' (default 2 dim_y: round-off)",
                      kind=int, minimum=1, strict=False),
}

register(Algorithm(
    name="soba", paper="soba22",
    reference="Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022, Alg. 1 with SGD directions (eqs. 6-8); Thm 1 "
    "(constant steps rho = T^-2/5, gamma = T^-3/5), Thm 2 (rho_t = t^-2/5, gamma_t = t^-3/5)",
    stochastic=True, kind="stochastic-single-loop",
    summary="SOBA: one sample pair per step, joint SGD steps on y, v (rho) and x (gamma) along D_z, D_v, D_x",
    params={**_COMMON,
            "schedule": Param("constant", "'constant' (Thm 1) or 'decreasing' (Thm 2: (t+1)^-2/5, (t+1)^-3/5)",
                              choices=("constant", "decreasing")),
            "variant": Param("paper", "'paper' (the theorems' steps) or 'public' (the public code: rho (t+1)^-1/2, "
                             "gamma (t+1)^-1/2; needs schedule='decreasing')", choices=("paper", "public"))},
    init=_init("soba"), step=_soba_step, presets=mp.SOBA_PRESETS, theory=mp.SOBA_CHECKS, roles=("soba",),
))


# ---------------------------------------------------------------------- SABA
_SABA_TERMS = (("grad_y_g", "g"), ("hvp", "g"), ("jvp", "g"), ("grad_y_f", "f"), ("grad_x_f", "f"))


def _saba_memories(ctx, s: SobaState) -> dict:
    """Thm 4's start (variant 'paper': every memory at y_0 = (y_0, x_0, v_0), one full pass) or the public
    code's (variant 'public': all memories at zero)."""
    o, problem = ctx.oracle, ctx.oracle.problem
    if ctx.params["variant"] == "public":
        return {name: saga_zero(problem, name, which) for name, which in _SABA_TERMS}
    batches = {"g": full_batch(o, "g"), "f": full_batch(o, "f")}
    return {name: saga_init(o, name, s.x, s.y, batches[which], s.v if name in ("hvp", "jvp") else None)
            for name, which in _SABA_TERMS}


def _saba_step(ctx, s: SobaState, k: int) -> SobaState:
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    mem = _saba_memories(ctx, s) if k == 0 else s.memory
    saga = ctx.component("saga.direction")
    bg = draw(ctx, "g", p["S_g"], replace=p["S_g"] == 1)  # distinct samples within a batch
    bf = draw(ctx, "f", p["S_f"], replace=p["S_f"] == 1)
    out = {}
    for name, which in _SABA_TERMS:
        batch = bg if which == "g" else bf
        vals = per_sample(o, name, s.x, s.y, batch, s.v if name in ("hvp", "jvp") else None)
        out[name], mem[name] = saga(mem[name], indices(batch), vals)
    D = (out["grad_y_g"], out["hvp"] + out["grad_y_f"], out["jvp"] + out["grad_x_f"])
    return _move(s, D, p["rho"], p["gamma"], memory=mem)


register(Algorithm(
    name="saba", paper="saba22",
    reference="Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022, SABA (Sec. 3.2: SAGA on each sampled term); Thm 3 "
    "(constant steps, O(1/T)), Thm 4 (PL: linear rate, memories at y_0 and z_0 = z*(x_0), v_0 = v*(x_0))",
    stochastic=True, kind="stochastic-single-loop",
    summary="SABA: SOBA's directions with SAGA variance reduction per sample (memories for i in [n], j in [m]), "
    "constant steps",
    params={**_COMMON,
            "rho": Param(mp.saba_rho, "inner step on y and v (constant)", **_POS),
            "gamma": Param(mp.saba_gamma, "outer step on x (constant)", **_POS),
            "S_g": Param(1, "distinct G samples per step", kind=int, minimum=1, strict=False),
            "S_f": Param(1, "distinct F samples per step", kind=int, minimum=1, strict=False),
            "variant": Param("paper", "'paper': memories at the initial point (Thm 4); 'public': memories at zero "
                             "(the public code)", choices=("paper", "public"))},
    init=_init("saba", finite_sum=True, distinct=True), step=_saba_step, presets=mp.SABA_PRESETS, theory=mp.SOBA_CHECKS,
    roles=("saba",), components=("saga.direction",),
))


# ---------------------------------------------------------------------- SRBA
def _srba_step(ctx, s: SobaState, k: int) -> SobaState:
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    if k % p["q"] == 0:
        D = soba_directions(o, s.x, s.y, s.v, full(o, "g"), full(o, "f"))
    else:
        bg, bf = draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"])
        new = soba_directions(o, s.x, s.y, s.v, bg, bf)
        old = soba_directions(o, *s.prev, bg, bf)
        sarah = ctx.component("sarah.direction")
        D = tuple(sarah(d, a, b) for d, a, b in zip(s.D, new, old, strict=True))
    return _move(s, D, p["rho"], p["gamma"], prev=(s.x, s.y, s.v), D=D)


register(Algorithm(
    name="srba", paper="srba24",
    reference="Dagreou, Moreau, Vaiter, Ablin, AISTATS 2024, SRBA: SARAH directions of the SOBA framework, full "
    "batch every q steps; O((n + m)^1/2 eps^-1) oracle calls (abstract); step presets [M]",
    stochastic=True, kind="stochastic-single-loop",
    summary="SRBA: SARAH recursion on D_z, D_v, D_x (same batch at the current and previous point), full-batch "
    "restart every q steps, constant steps",
    params={**_COMMON,
            "rho": Param(mp.srba_rho, "inner step on y and v (constant)", **_POS),
            "gamma": Param(mp.srba_gamma, "outer step on x (constant)", **_POS),
            "S_g": Param(mp.sqrt_n_plus_m, "G batch of the recursion (default ceil(sqrt(n + m)))",
                         **_BATCH1),
            "S_f": Param(mp.sqrt_n_plus_m, "F batch of the recursion (default ceil(sqrt(n + m)))",
                         **_BATCH1),
            "q": Param(mp.sqrt_n_plus_m, "period of the full-batch restarts (default ceil(sqrt(n + m)))",
                       kind=int, minimum=1, strict=False)},
    init=_init("srba", finite_sum=True), step=_srba_step, presets=mp.SRBA_PRESETS, theory=mp.SOBA_CHECKS,
    roles=("srba",), components=("sarah.direction",),
))


# ---------------------------------------------------------------------- FSLA
def _fsla_step(ctx, s: SobaState, k: int) -> SobaState:
    """FSLA (notes [C]; v approximates +[grad_yy g]^-1 grad_y f here, as in the paper):
    y+ = y - beta grad_y G(x, y);  v+ = v - eta (grad_yy G(x, y+) v - grad_y F(x, y+));
    g^ = grad_x F(x, y+) - grad_x grad_y G(x, y+) v+;  w = g^ + (1 - rho)(w_prev - g^(previous point, same
    samples));  x+ = x - alpha w.  At k = 0, w = g^."""
    p, o = ctx.params, ctx.oracle
    S, Sf = p["S"], p["S_f"]
    y = s.y - p["beta"] * o.grad_y_g(s.x, s.y, draw(ctx, "g", S))
    bg, bf = draw(ctx, "g", S), draw(ctx, "f", Sf)
    v = s.v - p["eta"] * (o.hvp(s.x, y, s.v, bg) - o.grad_y_f(s.x, y, bf))
    bF, bJ = draw(ctx, "f", Sf), draw(ctx, "g", S)

    def ghat(x, yy, vv):
        return o.grad_x_f(x, yy, bF) - o.jvp(x, yy, vv, bJ)

    new = ghat(s.x, y, v)
    w = new if k == 0 else ctx.component("storm.direction")(s.estimate, new, ghat(*s.prev), p["rho_m"])
    return SobaState(x=s.x - p["alpha"] * w, y=y, v=v, estimate=w, prev=(s.x, y, v))


register(Algorithm(
    name="fsla", paper="fsla22",
    reference="Li, Gu, Huang, AAAI 2022, A Fully Single Loop Algorithm for Bilevel Optimization without Hessian "
    "Inverse (FSLA); update as in the research notes [C]; rate and step constants [M]",
    stochastic=True, kind="stochastic-single-loop",
    summary="FSLA: SGD steps on y and on v (linear system), STORM momentum on the hypergradient estimate",
    params={"alpha": Param(mp.fsla_alpha, "outer step on x", **_POS),
            "beta": Param(mp.one_over_L_sample_yy, "inner step on y", **_POS),
            "eta": Param(mp.one_over_L_sample_yy, "step on v", **_POS),
            "rho_m": Param(0.1, "STORM weight rho in (0, 1]", kind=float, minimum=0.0, maximum=1.0),
            "S": Param(1, "G batch size (None: the full objective)", **_BATCH1),
            "S_f": Param(1, "F batch size (None: the full objective)", **_BATCH1)},
    init=_init("fsla"), step=_fsla_step, presets=mp.FSLA_PRESETS, theory=mp.SOBA_CHECKS,
    roles=("fsla",), components=("storm.direction",),
))
