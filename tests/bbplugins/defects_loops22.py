"""Defects planted in copies of the Loops paper's algorithms (Ji, Liu, Liang, Ying, NeurIPS 2022: AID-BiO Alg. 1
with the GD linear solver, ITD-BiO Alg. 2): realistic bugs of research code, each a plug-in, each listed in
``DEFECTS`` with the quick-profile claims that must catch it.
"""

from __future__ import annotations

import dataclasses

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.deterministic import AIDState, aid_estimate, inner_gd, itd_reverse


# ---------------------------------------------------------------------- No-loop AID without the warm start of v
def _aid_cold_v_step(ctx, s, k):
    """AID-BiO whose linear solve restarts from v = 0 at every outer step (the previous v_k^Q is not carried):
    with Q = Theta(1) GD steps of a small eta (Corollary 2), v stays near eta Q grad_y f, far from the solution;
    the Loops paper notes the warm start of v is what makes small Q converge."""
    p, o = ctx.params, ctx.oracle
    y = inner_gd(o, s.x, s.y if p["warm_y"] else ctx.y0, p["N"], p["alpha"])
    est, v = aid_estimate(o, s.x, y, None, solver=p["solver"], Q=p["Q"], eta=p["eta"], tol=p["tol"],
                          solve=ctx.component(f"solver.{p['solver']}"))
    return AIDState(x=s.x - p["beta"] * est, y=y, v=v, estimate=est)


AID_COLD_V = dataclasses.replace(al.get("aid-bio"), name="defect-aid-cold-v", step=_aid_cold_v_step, presets={},
                                 roles=("aid-bio",))


# ---------------------------------------------------------------------- GD linear solver off by one
def _gd_off_by_one(matvec, b, v0=None, steps=10, eta=1.0):
    """GD on the linear system whose loop runs ``range(steps - 1)``: one step short, so Q = 1 (N-loop and No-loop
    AID) never updates v, and larger Q spend (and count) one HV fewer than the preset prescribes."""
    import torch

    v = torch.zeros_like(b) if v0 is None else v0.clone()
    for _ in range(steps - 1):
        v = v - eta * (matvec(v) - b)
    return v


GD_OFF_BY_ONE = Component("solver.gd", _gd_off_by_one, name="defect-gd-off-by-one")


# ---------------------------------------------------------------------- ITD: one factor too many
def _itd_extra_factor(oracle, x, ys, y_N, alpha):
    """ITD's reverse recursion with the update of u moved before its use: every Jacobian term gets one factor
    (I - alpha grad_yy g) more than Prop. 2's sum, so the estimate's bias, and the floor it leaves, are wrong
    (on the lower-bound construction the bias becomes (alpha mu + q^(N+1)) c M/mu instead of q^N c M/mu)."""
    u = oracle.grad_y_f(x, y_N)
    out = oracle.grad_x_f(x, y_N)
    for t in range(len(ys) - 1, -1, -1):
        u = u - alpha * oracle.hvp(x, ys[t], u)
        out = out - alpha * oracle.jvp(x, ys[t], u)
    return out


ITD_EXTRA_FACTOR = Component("itd.hypergradient", _itd_extra_factor, name="defect-itd-extra-factor")


# ---------------------------------------------------------------------- ITD without the warm start of y
def _itd_cold_y_step(ctx, s, k):
    """ITD-BiO whose inner loop restarts from y0 at every outer step (Alg. 2 line 3's warm start dropped): the
    estimate keeps the term P (y0 - y*(x)) of the unfinished inner loop, so on quadratics whose minimiser has
    grad_y f = 0 it settles at a positive floor where warm-started ITD reaches zero."""
    p, o = ctx.params, ctx.oracle
    y, ys = inner_gd(o, s.x, ctx.y0, p["N"], p["alpha"], keep=True)
    est = ctx.component("itd.hypergradient")(o, s.x, ys, y, p["alpha"])
    return AIDState(x=s.x - p["beta"] * est, y=y, estimate=est)


ITD_COLD_Y = dataclasses.replace(al.get("itd-bio"), name="defect-itd-cold-y", step=_itd_cold_y_step, presets={},
                                 roles=("itd-bio",))


# ---------------------------------------------------------------------- ITD with uncounted Hessian products
def _itd_uncounted_step(ctx, s, k):
    """ITD-BiO whose backward pass applies the Hessian through the problem directly (a 'fast path' around the
    counted oracle): its N - 1 HV per step go uncounted, so its MV to eps grows slower than its own parameters
    spend."""
    p, o = ctx.params, ctx.oracle

    class _Fast:  # the oracle, with hvp routed around the counter
        def __getattr__(self, name):
            return getattr(o, name)

        @staticmethod
        def hvp(x, y, v):
            return o.problem._hvp(x, y, v)

    y, ys = inner_gd(o, s.x, s.y if p["warm_y"] else ctx.y0, p["N"], p["alpha"], keep=True)
    est = itd_reverse(_Fast(), s.x, ys, y, p["alpha"])
    return AIDState(x=s.x - p["beta"] * est, y=y, estimate=est)


ITD_UNCOUNTED = dataclasses.replace(al.get("itd-bio"), name="defect-itd-uncounted-hv", step=_itd_uncounted_step,
                                    presets={}, roles=("itd-bio",))


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "AID_COLD_V": (("loops22.cor1", "loops22.cor2"), "AID-BiO without the warm start of v (No-loop and N-loop)"),
    "GD_OFF_BY_ONE": (("loops22.cor1",), "GD linear solver runs Q - 1 steps"),
    "ITD_EXTRA_FACTOR": (("loops22.thm4", "loops22.cor6"), "ITD reverse recursion applies one factor too many"),
    "ITD_COLD_Y": (("loops22.thm3-vs-thm4",), "ITD-BiO without the warm start of y"),
    "ITD_UNCOUNTED": (("loops22.cor5",), "ITD's Hessian products bypass the counted oracle"),
}
