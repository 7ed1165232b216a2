"""Defects planted in copies of the modern stochastic pieces: BSA/TTSA's randomized truncated Neumann product (Ghadimi
and Wang 2018 Alg. 3), BSA's inner loop, TTSA's step schedule, MRBO's STORM directions, VRBO's SARAH directions and
AmIGO's warm starts (Yang, Ji, Liang 2021; Arbel and Mairal 2022): realistic bugs of research code, each a plug-in,
each listed in ``DEFECTS`` with the quick-profile claims that must find it violated.
"""

from __future__ import annotations

import dataclasses
import math

import torch

import bilevelbench.algorithms as al
from bilevelbench.algorithms.amigo import AmigoState
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.directions import draw, draw_many
from bilevelbench.algorithms.momentum import MomentumState, _samples, mrbo_eta, neumann_hypergradient
from bilevelbench.algorithms.stochastic import StochState, bsa_inner_steps, neumann_terms, randomized_estimate
from bilevelbench.algorithms.stochastic_solvers import draw_batches, randomized_neumann


# ---------------------------------------------------------------------- Neumann product without random truncation
def _neumann_untruncated(hvp, v, p, batches, eta, factors=None):
    """The randomized product with its random length p ignored: every instance applies every factor the batch runs,
    b eta prod_(i <= factors) (I - eta H_(B_i)) v, a vanishing (biased) Hessian-inverse estimate."""
    b = len(batches) + 1
    factors = b - 1 if factors is None else factors
    u = v
    for i in range(1, factors + 1):
        u = u - eta * hvp(u, batches[i - 1], None)
    return (b * eta) * u


NEUMANN_UNTRUNCATED = Component("neumann.randomized", _neumann_untruncated, name="defect-neumann-untruncated")


# ---------------------------------------------------------------------- one Hessian sample for every factor
def _neumann_one_sample(hvp, v, p, batches, eta, factors=None):
    """The randomized product that draws b - 1 Hessian batches but applies the first in every factor (a loop index
    that never moves; some public code reuses one mini-batch Hessian): E_i[(I - eta H_i)^p] != (I - eta H)^p."""
    return randomized_neumann(hvp, v, p, [batches[0]] * len(batches) if batches else [], eta, factors)


NEUMANN_ONE_SAMPLE = Component("neumann.randomized", _neumann_one_sample, name="defect-neumann-one-sample")


# ---------------------------------------------------------------------- BSA's inner SGD outside the counted oracle
def _bsa_uncounted_step(ctx, s, k):
    """BSA whose inner SGD loop calls the problem's mini-batch gradient directly (a 'fast path' around the counted
    oracle): its t_k samples and gradients per outer step are spent but never counted."""
    p, o = ctx.params, ctx.oracle
    K = max(1, p["horizon"] if p["horizon"] is not None else ctx.steps)
    a, g = p["alpha"], p["gamma"]
    y = s.y if p["warm_y"] else ctx.y0
    steps = bsa_inner_steps(p, k, K)
    for t in range(steps):
        idx = o.problem.sample("g", p["S"], ctx.streams)
        y = y - a * g / (g + t) * o.problem._grad_y_G(s.x, y, idx)
    est, _ = randomized_estimate(o, ctx.streams, s.x, y, p, neumann_terms(p, K), ctx.component("neumann.randomized"))
    return StochState(x=s.x - p["beta"] / math.sqrt(K) * est, y=y, estimate=est)


BSA_UNCOUNTED = dataclasses.replace(al.get("bsa"), name="defect-bsa-uncounted", step=_bsa_uncounted_step, presets={},
                                    roles=("bsa",))


# ---------------------------------------------------------------------- TTSA's x step with a slower decay
def _ttsa_slow_x_step(ctx, s, k):
    """TTSA whose x step decays as K^-4/5 (an exponent typo, 4/5 for 3/5): the slow time scale becomes too slow and
    the stationarity decays as K^-1/5 only."""
    p, o = ctx.params, ctx.oracle
    K = max(1, p["horizon"] if p["horizon"] is not None else ctx.steps)
    n = K if p["step_rule"] == "horizon" else k + 1
    (idx_y,) = draw_batches(o, "g", [p["S"]], ctx.streams, p["replace"])
    y = s.y - p["alpha"] * n ** (-p["exp_y"]) * o.grad_y_g(s.x, s.y, idx_y)
    est, _ = randomized_estimate(o, ctx.streams, s.x, y, p, neumann_terms(p, K), ctx.component("neumann.randomized"),
                                 idx_g=idx_y if p["jv_batch"] == "reuse" else None)
    return StochState(x=s.x - p["beta"] * n ** (-0.8) * est, y=y, estimate=est)


TTSA_SLOW_X = dataclasses.replace(al.get("ttsa"), name="defect-ttsa-slow-x", step=_ttsa_slow_x_step, presets={},
                                  roles=("ttsa",))


# ---------------------------------------------------------------------- STORM correction on fresh samples (MRBO)
def _mrbo_fresh_step(ctx, s, k):
    """MRBO whose STORM corrections grad(z_(k-1)) are evaluated on a fresh sample set instead of the step's own: the
    difference new - old no longer cancels the noise, and the direction's error grows like 1/alpha_k."""
    p, o = ctx.params, ctx.oracle
    hinv = ctx.component("stocbio.hinv")
    ((bG, batches),) = _samples(ctx, p["S"])
    u = o.grad_y_g(s.x, s.y, bG)
    d = neumann_hypergradient(o, s.x, s.y, batches, p["eta_h"], hinv)
    if k > 0:
        storm = ctx.component("storm.direction")
        e2 = mrbo_eta(p, k - 1) ** 2
        xp, yp = s.prev
        ((bG2, batches2),) = _samples(ctx, p["S"])
        u = storm(s.u, u, o.grad_y_g(xp, yp, bG2), p["c2"] * e2)
        d = storm(s.estimate, d, neumann_hypergradient(o, xp, yp, batches2, p["eta_h"], hinv), p["c1"] * e2)
    eta = mrbo_eta(p, k)
    return MomentumState(x=s.x - p["lam"] * eta * d, y=s.y - p["gam"] * eta * u, estimate=d, u=u, prev=(s.x, s.y))


MRBO_FRESH_STORM = dataclasses.replace(al.get("mrbo"), name="defect-mrbo-fresh-storm", step=_mrbo_fresh_step,
                                       presets={}, roles=("mrbo",))


# ---------------------------------------------------------------------- STORM with a missing parenthesis
def _storm_parenthesis(D, new, old, a):
    """STORM written new + (1 - a) * D - old (the parentheses around D - old lost): the recursion becomes
    D_t = (1 - a) D_(t-1) + phi(y_t) - phi(y_(t-1)), which forgets the gradient's level (it decays to zero wherever the
    gradient stops changing)."""
    return new + (1.0 - a) * D - old


STORM_PARENTHESIS = Component("storm.direction", _storm_parenthesis, name="defect-storm-parenthesis")


# ---------------------------------------------------------------------- SARAH difference with the wrong sign
def _sarah_sign_slip(D, new, old):
    """SARAH with the difference subtracted: D - (phi_B(y_t) - phi_B(y_(t-1)))."""
    return D - (new - old)


SARAH_SIGN_SLIP = Component("sarah.direction", _sarah_sign_slip, name="defect-sarah-sign-slip")


# ---------------------------------------------------------------------- AmIGO that ignores its warm start
def _amigo_cold_step(ctx, s, k):
    """AmIGO that restarts y from y_0 and z from 0 at every outer step whatever ``warm`` says (the warm-start state is
    carried but never read)."""
    p, o = ctx.params, ctx.oracle
    x, S = s.x, p["S"]
    y = ctx.y0
    for b in draw_many(ctx, "g", S, p["T"]):
        y = y - p["alpha"] * o.grad_y_g(x, y, b)
    bf = draw(ctx, "f", p["S_f"])
    gy, gx = o.grad_y_f(x, y, bf), o.grad_x_f(x, y, bf)
    z = torch.zeros_like(s.z)
    for b in draw_many(ctx, "g", S, p["M"]):
        z = z - p["eta"] * (o.hvp(x, y, z, b) - gy)
    est = gx - o.jvp(x, y, z, draw(ctx, "g", S))
    return AmigoState(x=x - p["gamma"] * est, y=y, z=z, estimate=est)


AMIGO_NO_WARM = dataclasses.replace(al.get("amigo"), name="defect-amigo-no-warm", step=_amigo_cold_step, presets={},
                                    roles=("amigo",))


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "NEUMANN_UNTRUNCATED": (("bsa18.estimator", "bsa18.bias"), "BSA/TTSA's Neumann product ignores its random "
                                                               "length p"),
    "NEUMANN_ONE_SAMPLE": (("bsa18.estimator", "bsa18.bias"), "one Hessian sample reused for every Neumann factor"),
    "BSA_UNCOUNTED": (("bsa18.rate",), "BSA's inner SGD outside the counted oracle"),
    "TTSA_SLOW_X": (("ttsa20.rate",), "TTSA's x step decays as K^-4/5 instead of K^-3/5"),
    "MRBO_FRESH_STORM": (("mrbo21.rate",), "MRBO's STORM correction evaluated on fresh samples"),
    "STORM_PARENTHESIS": (("mrbo21.rate",), "STORM's correction (1 - a)(D - old) written (1 - a) D - old"),
    "SARAH_SIGN_SLIP": (("vrbo21.rate",), "SARAH's difference subtracted instead of added"),
    "AMIGO_NO_WARM": (("amigo22.warm-start",), "AmIGO restarts its inner solvers whatever warm says"),
}
