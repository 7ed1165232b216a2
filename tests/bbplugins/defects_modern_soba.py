"""Defects planted in copies of the SOBA-framework pieces (SOBA Alg. 1 eqs. 6-8, SABA's SAGA directions, SRBA's SARAH
recursion): realistic bugs of research code, each a plug-in, each listed in ``DEFECTS`` with the quick-profile claims
that must catch it.
"""

from __future__ import annotations

import dataclasses

import torch

import bilevelbench.algorithms as al
import bilevelbench.algorithms.soba as _soba
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.directions import SagaMemory, draw, full, indices, per_sample
from bilevelbench.algorithms.soba import SobaState, _move, _start, soba_directions, soba_steps


# ---------------------------------------------------------------------- SOBA: sign of the Hessian term in D_v
def _soba_v_sign_step(ctx, s, k):
    """SOBA whose v direction subtracts the Hessian term: D_v = -grad_yy G_i v + grad_y F_j (eq. 7 adds it), a sign
    slip that turns v's contraction I - rho H into an expansion I + rho H."""
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    bg, bf = draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"])
    rho, gamma = soba_steps(p, k)
    dz = o.grad_y_g(s.x, s.y, bg)
    dv = o.grad_y_f(s.x, s.y, bf) - o.hvp(s.x, s.y, s.v, bg)
    dx = o.jvp(s.x, s.y, s.v, bg) + o.grad_x_f(s.x, s.y, bf)
    return _move(s, (dz, dv, dx), rho, gamma)


SOBA_V_SIGN = dataclasses.replace(al.get("soba"), name="defect-soba-v-sign", step=_soba_v_sign_step, presets={},
                                  roles=("soba",))


# ---------------------------------------------------------------------- SOBA: the two steps swapped
def _soba_swapped_step(ctx, s, k):
    """SOBA that moves the inner variables (y, v) with the outer step gamma and x with the inner step rho (the two
    step sizes passed in the wrong order)."""
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    bg, bf = draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"])
    rho, gamma = soba_steps(p, k)
    return _move(s, soba_directions(o, s.x, s.y, s.v, bg, bf), gamma, rho)


SOBA_SWAPPED_STEPS = dataclasses.replace(al.get("soba"), name="defect-soba-swapped-steps", step=_soba_swapped_step,
                                         presets={}, roles=("soba",))


# ---------------------------------------------------------------------- SAGA: memory never updated
def _saga_stale(memory, idx, values):
    """SAGA whose memory is never written back (the scatter into the table is missing): every sample keeps its
    value at the initial point, so the estimate's variance no longer vanishes at the solution."""
    where = idx.unsqueeze(-1).expand(-1, -1, memory.table.shape[2])
    direction = (values - memory.table.gather(1, where)).mean(1) + memory.mean
    return direction, SagaMemory(memory.table, memory.mean)


SAGA_STALE_MEMORY = Component("saga.direction", _saga_stale, name="defect-saga-stale-memory")


# ---------------------------------------------------------------------- SABA: memories at y_0 without their mean
def _saba_mean_zero_step(ctx, s, k):
    """SABA whose memories are filled at y_0 (Theorem 4's start) but whose running means start at zero (the table is
    initialised, its average is not): every SAGA estimate is then off by -mean_i phi_i(y_0) for good, since the
    incremental mean update never recomputes it."""
    if k == 0:
        mem = _soba._saba_memories(ctx, _soba._start(ctx, s, 0))
        s = dataclasses.replace(s, memory={name: SagaMemory(m.table, torch.zeros_like(m.mean))
                                           for name, m in mem.items()})
    return _saba_cached_step(ctx, s, k)


def _saba_cached_step(ctx, s, k):
    """SABA's step with the memories already in the state (so step 0 does not rebuild them)."""
    p, o = ctx.params, ctx.oracle
    s = _soba._start(ctx, s, k)
    mem = s.memory
    saga = ctx.component("saga.direction")
    bg = draw(ctx, "g", p["S_g"], replace=p["S_g"] == 1)
    bf = draw(ctx, "f", p["S_f"], replace=p["S_f"] == 1)
    out = {}
    for name, which in _soba._SABA_TERMS:
        batch = bg if which == "g" else bf
        vals = per_sample(o, name, s.x, s.y, batch, s.v if name in ("hvp", "jvp") else None)
        out[name], mem[name] = saga(mem[name], indices(batch), vals)
    D = (out["grad_y_g"], out["hvp"] + out["grad_y_f"], out["jvp"] + out["grad_x_f"])
    return _move(s, D, p["rho"], p["gamma"], memory=mem)


SABA_MEAN_ZERO = dataclasses.replace(al.get("saba"), name="defect-saba-mean-zero", step=_saba_mean_zero_step,
                                     presets={}, roles=("saba",))


# ---------------------------------------------------------------------- SRBA: fresh samples at the previous point
def _srba_fresh_step(ctx, s, k):
    """SRBA whose SARAH correction evaluates the previous point on a fresh mini-batch instead of the current one:
    D_t = D_{t-1} + phi_B(y_t) - phi_B'(y_{t-1}), so the differences carry the full sampling noise and D random-walks
    between restarts."""
    p, o = ctx.params, ctx.oracle
    s = _start(ctx, s, k)
    if k % p["q"] == 0:
        D = soba_directions(o, s.x, s.y, s.v, full(o, "g"), full(o, "f"))
    else:
        new = soba_directions(o, s.x, s.y, s.v, draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"]))
        old = soba_directions(o, *s.prev, draw(ctx, "g", p["S_g"]), draw(ctx, "f", p["S_f"]))
        sarah = ctx.component("sarah.direction")
        D = tuple(sarah(d, a, b) for d, a, b in zip(s.D, new, old, strict=True))
    return _move(s, D, p["rho"], p["gamma"], prev=(s.x, s.y, s.v), D=D)


SRBA_FRESH_PREVIOUS = dataclasses.replace(al.get("srba"), name="defect-srba-fresh-previous", step=_srba_fresh_step,
                                          presets={}, roles=("srba",))


# ---------------------------------------------------------------------- SARAH: difference reversed
def _sarah_reversed(D, new, old):
    """SARAH with its two points swapped (the component called as (D, old, new)): D - (phi_B(y_t) - phi_B(y_{t-1}))."""
    return D + (old - new)


SARAH_REVERSED = Component("sarah.direction", _sarah_reversed, name="defect-sarah-reversed")

__all__ = ["SobaState", "SOBA_V_SIGN", "SOBA_SWAPPED_STEPS", "SAGA_STALE_MEMORY", "SABA_MEAN_ZERO",
           "SRBA_FRESH_PREVIOUS", "SARAH_REVERSED", "DEFECTS"]

#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "SOBA_V_SIGN": (("soba22.lemma3.9", "soba22.thm1"), "SOBA's v direction with the wrong sign of the Hessian term"),
    "SOBA_SWAPPED_STEPS": (("soba22.lemma3.8", "soba22.lemma3.9"), "SOBA with the inner and outer steps swapped"),
    "SAGA_STALE_MEMORY": (("saba22.thm4", "saba22.vs-soba"), "SAGA memory never updated"),
    "SABA_MEAN_ZERO": (("saba22.memory-init", "saba22.thm4"), "SABA's memories at y_0 with their means left at zero"),
    "SRBA_FRESH_PREVIOUS": (("srba24.scaling",), "SARAH correction at the previous point on fresh samples"),
    "SARAH_REVERSED": (("srba24.scaling",), "SARAH difference with its two points swapped"),
}
