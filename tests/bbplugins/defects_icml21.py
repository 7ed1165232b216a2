"""Defects planted in copies of the AID/ITD pieces (ICML 2021 Algorithm 1, Prop. 2): realistic bugs of
research code, each a plug-in, each listed in ``DEFECTS`` with the quick-profile claims that must catch it.
"""

from __future__ import annotations

import dataclasses

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.deterministic import AIDState, inner_gd
from bilevelbench.algorithms.solvers import cg


# ---------------------------------------------------------------------- sign slip in the cross term (AID)
def _aid_plus_step(ctx, s, k):
    """AID-BiO whose estimate adds the Jacobian term: grad_x f + grad_x grad_y g v (eq. (3) has a minus)."""
    p, o = ctx.params, ctx.oracle
    y = inner_gd(o, s.x, s.y if p["warm_y"] else ctx.y0, p["N"], p["alpha"])
    b = o.grad_y_f(s.x, y)
    v, _ = cg(lambda u: o.hvp(s.x, y, u), b, s.v if p["warm_v"] else None, p["Q"], p["tol"])
    est = o.grad_x_f(s.x, y) + o.jvp(s.x, y, v)
    return AIDState(x=s.x - p["beta"] * est, y=y, v=v, estimate=est)


AID_SIGN_SLIP = dataclasses.replace(al.get("aid-bio"), name="defect-aid-sign-slip", step=_aid_plus_step,
                                    presets={}, roles=("aid-bio",))


# ---------------------------------------------------------------------- under-counted Hessian products (AID)
def _aid_uncounted_step(ctx, s, k):
    """AID-BiO whose CG applies the Hessian through the problem directly (a 'fast path' around the counted
    oracle) and charges one HV per solve, as if the solve were one call."""
    p, o = ctx.params, ctx.oracle
    y = inner_gd(o, s.x, s.y if p["warm_y"] else ctx.y0, p["N"], p["alpha"])
    b = o.grad_y_f(s.x, y)
    v, _ = cg(lambda u: o.problem._hvp(s.x, y, u), b, s.v if p["warm_v"] else None, p["Q"], p["tol"])
    o.charge("hv", 1)
    est = o.grad_x_f(s.x, y) - o.jvp(s.x, y, v)
    return AIDState(x=s.x - p["beta"] * est, y=y, v=v, estimate=est)


AID_UNDERCOUNT = dataclasses.replace(al.get("aid-bio"), name="defect-aid-undercount", step=_aid_uncounted_step,
                                     presets={}, roles=("aid-bio",))


# ---------------------------------------------------------------------- CG that exits after one step
def _cg_one_step(matvec, b, v0=None, steps=10, tol=None):
    """CG with a misplaced ``break`` (inside the loop, not under the residual test): one iteration, whatever
    ``steps`` says."""
    return cg(matvec, b, v0, min(steps, 1), tol)


CG_EARLY_EXIT = Component("solver.cg", _cg_one_step, name="defect-cg-early-exit")


# ---------------------------------------------------------------------- ITD recursion off by one
def _itd_off_by_one(oracle, x, ys, y_N, alpha):
    """ITD's reverse recursion whose loop stops at t = 1 (``range(N - 1, 0, -1)``): the t = 0 Jacobian term
    of Prop. 2 is dropped."""
    u = oracle.grad_y_f(x, y_N)
    out = oracle.grad_x_f(x, y_N)
    for t in range(len(ys) - 1, 0, -1):
        out = out - alpha * oracle.jvp(x, ys[t], u)
        u = u - alpha * oracle.hvp(x, ys[t], u)
    return out


ITD_OFF_BY_ONE = Component("itd.hypergradient", _itd_off_by_one, name="defect-itd-off-by-one")


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "AID_SIGN_SLIP": (("icml21.thm1.bound", "icml21.thm1.rates"), "sign slip in AID's cross term"),
    "AID_UNDERCOUNT": (("icml21.thm1.rates",), "Hessian products computed outside the counted oracle"),
    "CG_EARLY_EXIT": (("icml21.prop1",), "CG exits after one iteration"),
    "ITD_OFF_BY_ONE": (("icml21.prop2",), "ITD reverse recursion drops the t = 0 term"),
}

