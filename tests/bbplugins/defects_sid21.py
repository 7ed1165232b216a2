"""Defects planted in copies of SID (Grazzi, Pontil, Salzo, AISTATS 2021, Alg. 1 with iterations (28)-(29), estimate
eq. (8)) and of its stochastic fixed-point iteration (eq. 17): realistic bugs of research code, each a plug-in, each
listed in ``DEFECTS`` with the quick-profile claims that must catch it.
"""

from __future__ import annotations

import dataclasses

import torch

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.sid import SIDState, _batches, _steps
from bilevelbench.algorithms.stochastic_solvers import step_size_policy


def _sid(estimate):
    """A SID plug-in whose step runs ``estimate`` (the seed's step otherwise, beta = 0 keeps x)."""

    def step(ctx, s, k):
        p = ctx.params
        w0 = s.y if p["warm_w"] else ctx.y0
        est, w, v = estimate(ctx, s.x, w0, p)
        return SIDState(x=s.x - p["beta"] * est, y=w, v=v, estimate=est)

    return step


def _plug(name, estimate):
    return dataclasses.replace(al.get("sid"), name=name, step=_sid(estimate), presets={}, roles=("sid",))


# ---------------------------------------------------------------------- (a) decreasing steps on w only
def _w_dec_only(ctx, x, w0, p):
    """SID whose linear-system chain (29) keeps the constant step eta while (28) uses the decreasing schedule:
    the schedule object is built for w and a constant one is passed to v (a copy-paste of the Stoch const path)."""
    o, alpha, fp = ctx.oracle, p["alpha"], ctx.component("sid.fixed-point")
    zw = _batches(o, ctx.streams, p["S"], p["t"], p["replace"])
    w = fp(lambda w, t: w - alpha * o.grad_y_g(x, w, zw[t]), w0, p["t"], _steps(o.problem, p))
    b = o.grad_y_f(x, w)
    zv = _batches(o, ctx.streams, p["S"], p["k"], p["replace"])
    v = fp(lambda v, t: v - alpha * o.hvp(x, w, v, zv[t]) + b, torch.zeros_like(ctx.y0), p["k"],
           step_size_policy("constant", p["eta"]))
    (z,) = [None] if p["jv"] == "exact" else _batches(o, ctx.streams, p["S"], 1, p["replace"])
    return o.grad_x_f(x, w) - alpha * o.jvp(x, w, v, z), w, v


SID_W_DEC_ONLY = _plug("defect-sid-w-dec-only", _w_dec_only)


# ---------------------------------------------------------------------- (b) fixed point without the relaxation
def _no_relaxation(T_hat, w0, steps, eta_t):
    """Iteration (17) written as the plain Picard iteration w <- T^(w): the step eta_t is ignored (identical to
    (17) when eta_t = 1, wrong for every other schedule)."""
    w = w0
    for t in range(steps):
        w = T_hat(w, t)
    return w


FP_NO_RELAXATION = Component("sid.fixed-point", _no_relaxation, name="defect-fp-no-relaxation")


# ---------------------------------------------------------------------- (c) last v-batch reused for eq. (8)
def _jv_last_batch(ctx, x, w0, p):
    """SID whose final Jacobian product d2 Phi^(w_t, zeta)' v_k samples zeta as the v-chain's last batch instead of
    a fresh one (eq. (8) needs zeta independent of v_k)."""
    o, alpha, fp = ctx.oracle, p["alpha"], ctx.component("sid.fixed-point")
    eta = _steps(o.problem, p)
    zw = _batches(o, ctx.streams, p["S"], p["t"], p["replace"])
    w = fp(lambda w, t: w - alpha * o.grad_y_g(x, w, zw[t]), w0, p["t"], eta)
    b = o.grad_y_f(x, w)
    zv = _batches(o, ctx.streams, p["S"], p["k"], p["replace"])
    v = fp(lambda v, t: v - alpha * o.hvp(x, w, v, zv[t]) + b, torch.zeros_like(ctx.y0), p["k"], eta)
    z = None if p["jv"] == "exact" else (zv[-1] if zv else _batches(o, ctx.streams, p["S"], 1, p["replace"])[0])
    return o.grad_x_f(x, w) - alpha * o.jvp(x, w, v, z), w, v


SID_JV_LAST_BATCH = _plug("defect-sid-jv-last-batch", _jv_last_batch)


# ---------------------------------------------------------------------- (d) right-hand side of (29) at w_0
def _stale_rhs(ctx, x, w0, p):
    """SID that computes grad_1 E(w, lambda), the right-hand side of the linear system (29), before running (28):
    at w_0 instead of w_t (a hoisted computation), so the v-chain solves for v(w_0)."""
    o, alpha, fp = ctx.oracle, p["alpha"], ctx.component("sid.fixed-point")
    eta = _steps(o.problem, p)
    b = o.grad_y_f(x, w0)
    zw = _batches(o, ctx.streams, p["S"], p["t"], p["replace"])
    w = fp(lambda w, t: w - alpha * o.grad_y_g(x, w, zw[t]), w0, p["t"], eta)
    zv = _batches(o, ctx.streams, p["S"], p["k"], p["replace"])
    v = fp(lambda v, t: v - alpha * o.hvp(x, w, v, zv[t]) + b, torch.zeros_like(ctx.y0), p["k"], eta)
    (z,) = [None] if p["jv"] == "exact" else _batches(o, ctx.streams, p["S"], 1, p["replace"])
    return o.grad_x_f(x, w) - alpha * o.jvp(x, w, v, z), w, v


SID_STALE_RHS = _plug("defect-sid-stale-rhs", _stale_rhs)


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "SID_W_DEC_ONLY": (("sid21.thm5.1", "sid21.thm3.1"), "SID with decreasing steps on w only (v keeps eta = 1)"),
    "FP_NO_RELAXATION": (("sid21.thm4.2", "sid21.thm4.2.rate"),
                         "fixed-point iteration w <- T^(w) without the relaxation eta_t"),
    "SID_JV_LAST_BATCH": (("sid21.thm3.1",), "SID's final Jacobian product reuses the v-chain's last batch"),
    "SID_STALE_RHS": (("sid21.thm3.1", "sid21.eq14"), "SID's linear system right-hand side taken at w_0, not w_t"),
}
