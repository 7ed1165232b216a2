"""Defects planted in copies of the stochastic pieces (stocBiO's Neumann estimators and batch schedule, ICML 2021
Alg. 2-3 and arXiv eq. (5); BSA's randomized Neumann product, Ghadimi and Wang 2018 Alg. 3): realistic bugs of
research code, each a plug-in, each listed in ``DEFECTS`` with the quick-profile claims that must catch it.
"""

from __future__ import annotations

import dataclasses

import torch

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.stochastic import StochState, inner_sgd, stocbio_batch_sizes
from bilevelbench.algorithms.stochastic_solvers import decaying_batches, draw_batches, hinv_horner, vq_recursion


# ---------------------------------------------------------------------- v_Q's sum shifted by one term
def _vq_shifted(hvp, v0, batches, eta):
    """Alg. 3 with the running sum started at zero and fed after each update: eta sum_{i=0}^{Q-1} r_i, i.e. the
    Neumann terms q = 1..Q instead of q = 0..Q (the v_0 term is lost)."""
    r = v0
    acc = torch.zeros_like(v0)
    for i in range(len(batches), 0, -1):
        r = r - eta * hvp(r, batches[i - 1])
        acc = acc + r
    return eta * acc


VQ_SHIFTED = Component("stocbio.vq", _vq_shifted, name="defect-vq-shifted-sum")


# ---------------------------------------------------------------------- one Hessian batch for every factor
def _vq_one_batch(hvp, v0, batches, eta):
    """Alg. 3 that draws D_H but applies its first-used batch B_Q in every factor (a loop variable that never
    moves): the factors are no longer independent."""
    return vq_recursion(hvp, v0, [batches[-1]] * len(batches), eta)


VQ_ONE_BATCH = Component("stocbio.vq", _vq_one_batch, name="defect-vq-one-batch")


# ---------------------------------------------------------------------- the batch schedule reversed
def _schedule_reversed(B, Q, eta, mu):
    """The decaying sizes in the wrong order: the largest batch is the one used least."""
    return decaying_batches(B, Q, eta, mu)[::-1]


SCHEDULE_REVERSED = Component("stocbio.batch-schedule", _schedule_reversed, name="defect-schedule-reversed")


# ---------------------------------------------------------------------- H_inv truncated one factor early
def _hinv_truncated(hvp, v, batches, eta):
    """eq. (5) whose Horner loop skips the last factor (``range(len(batches) - 1, 0, -1)``): Q - 1 terms."""
    return hinv_horner(hvp, v, batches[:-1], eta)


HINV_TRUNCATED = Component("stocbio.hinv", _hinv_truncated, name="defect-hinv-truncated")


# ---------------------------------------------------------------------- HV charged per call (stocBiO)
def _stocbio_uncounted_step(ctx, s, k):
    """stocBiO whose Neumann products go through the problem's mini-batch Hessian directly (a 'fast path'
    around the counted oracle) and are charged one HV per call instead of one per sample."""
    p, o = ctx.params, ctx.oracle
    y = s.y if p["warm_y"] else ctx.y0
    y = inner_sgd(o, ctx.streams, s.x, y, p["N"], p["alpha"], p["S"], p["replace"])
    (idx_f,) = draw_batches(o, "f", [p["D_f"]], ctx.streams, p["replace"])
    v0, gx = o.grad_y_f(s.x, y, idx_f), o.grad_x_f(s.x, y, idx_f)
    batches = draw_batches(o, "g", stocbio_batch_sizes(p), ctx.streams, p["replace"])

    def hvp(u, idx):
        o.charge("hv", 1)
        return o.problem._hvp_G(s.x, y, u, idx)

    v = (vq_recursion if p["form"] == "icml" else hinv_horner)(hvp, v0, batches, p["eta"])
    (idx_g,) = draw_batches(o, "g", [p["D_g"]], ctx.streams, p["replace"])
    est = gx - o.jvp(s.x, y, v, idx_g)
    return StochState(x=s.x - p["beta"] * est, y=y, estimate=est)


STOCBIO_UNDERCOUNT = dataclasses.replace(al.get("stocbio"), name="defect-stocbio-undercount",
                                         step=_stocbio_uncounted_step, presets={}, roles=("stocbio",))


# ---------------------------------------------------------------------- BSA without random truncation
def _neumann_untruncated(hvp, v, p, batches, eta, factors=None):
    """Ghadimi-Wang's randomized product with the random length p ignored: every instance applies all the
    factors the batch runs, b eta prod_i (I - eta H_{B_i}) v, a biased (vanishing) Hessian-inverse estimate."""
    b = len(batches) + 1
    factors = b - 1 if factors is None else factors
    u = v
    for i in range(1, factors + 1):
        u = u - eta * hvp(u, batches[i - 1], None)
    return (b * eta) * u


NEUMANN_UNTRUNCATED = Component("neumann.randomized", _neumann_untruncated, name="defect-neumann-untruncated")


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "VQ_SHIFTED": (("icml21.prop3",), "stocBiO's Neumann sum shifted by one term (q = 1..Q)"),
    "VQ_ONE_BATCH": (("icml21.prop3",), "one Hessian batch reused for all Neumann factors"),
    "SCHEDULE_REVERSED": (("icml21.prop3", "arxiv20.prop4", "icml21.batch-schedule"), "reversed batch schedule"),
    "HINV_TRUNCATED": (("arxiv20.prop4",), "H_inv's Horner loop drops the last factor"),
    "STOCBIO_UNDERCOUNT": (("icml21.thm3.rates",), "stocBiO's Hessian products charged per call, not per sample"),
    "NEUMANN_UNTRUNCATED": (("icml21.table2",), "BSA/TTSA's Neumann product ignores the random truncation p"),
}
