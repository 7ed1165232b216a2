"""Defects planted in copies of deterBiO (arXiv Algorithm 1) and of its ITD hypergradient (the reverse recursion
of ICML 2021 Prop. 2, which arXiv Prop. 3 bounds): realistic bugs of research code, each a plug-in, each listed
in ``DEFECTS`` with the quick-profile claims that must catch it.

Not planted, because no claim may flag them: a deterBiO that warm-starts y_k^0 = y_{k-1}^T is ICML's ITD-BiO,
which Theorem 1's proof covers too (it only needs ||y_k^0 - y*(x_k)||^2 <= Delta); a deterBiO whose estimate is
biased by a factor on the implicit term (e.g. back-propagating through the last inner step only) still
converges on the rate sweep's nonconvex quadratic, whose upper level w/2 ||y - c||^2 + h(x) makes both terms of
grad Phi vanish at the same minimiser x_c (measured: every run reaches eps at kappa 2 and 8), so Theorem 1's
criterion cannot see it; the ITD component's claims (arxiv20.prop3) do.
"""

from __future__ import annotations

import dataclasses

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.deterministic import AIDState, inner_gd, itd_reverse


# ---------------------------------------------------------------------- ITD: Jacobians at the last iterate
def _itd_at_last_iterate(oracle, x, ys, y_N, alpha):
    """ITD's reverse recursion that evaluates every Jacobian and Hessian at y^N (the iterate at hand when the
    backward pass starts) instead of at y^t: right when grad_x grad_y g and grad_yy g do not depend on y
    (quadratic g, tau = rho = 0), wrong otherwise."""
    u = oracle.grad_y_f(x, y_N)
    out = oracle.grad_x_f(x, y_N)
    for t in range(len(ys) - 1, -1, -1):
        out = out - alpha * oracle.jvp(x, y_N, u)
        if t > 0:
            u = u - alpha * oracle.hvp(x, y_N, u)
    return out


ITD_AT_LAST_ITERATE = Component("itd.hypergradient", _itd_at_last_iterate, name="defect-itd-at-last-iterate")


# ---------------------------------------------------------------------- ITD: truncated backpropagation
#: how many of the last inner iterates the truncated recursion keeps (a memory cap)
WINDOW = 8


def _itd_truncated(oracle, x, ys, y_N, alpha):
    """ITD's reverse recursion over the last ``WINDOW`` iterates only (a memory cap on the stored iterates:
    truncated back-propagation); exact for T <= WINDOW, then the error stops decaying."""
    return itd_reverse(oracle, x, ys[-WINDOW:], y_N, alpha)


ITD_TRUNCATED = Component("itd.hypergradient", _itd_truncated, name="defect-itd-truncated")


# ---------------------------------------------------------------------- deterBiO: swapped step sizes
def _deterbio_swapped_step(ctx, s, k):
    """deterBiO whose outer update uses the inner step alpha (= 1/L) instead of beta (= 1/(4 L_Phi)): the two
    learning rates swapped."""
    p, o = ctx.params, ctx.oracle
    y, ys = inner_gd(o, s.x, ctx.y0, p["N"], p["alpha"], keep=True)
    est = ctx.component("itd.hypergradient")(o, s.x, ys, y, p["alpha"])
    return AIDState(x=s.x - p["alpha"] * est, y=y, estimate=est)


DETERBIO_SWAPPED_STEPS = dataclasses.replace(al.get("deterbio"), name="defect-deterbio-swapped-steps",
                                             step=_deterbio_swapped_step, presets={}, roles=("deterbio",))


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "ITD_AT_LAST_ITERATE": (("arxiv20.prop3",), "ITD recursion evaluates its Jacobians and Hessians at y^N, not y^t"),
    "ITD_TRUNCATED": (("arxiv20.prop3", "arxiv20.prop3.rate"),
                      f"ITD back-propagates through the last {WINDOW} inner steps only"),
    "DETERBIO_SWAPPED_STEPS": (("arxiv20.thm1.bound",), "deterBiO updates x with the inner step alpha, not beta"),
}
