"""Defects planted in copies of the fully first-order penalty methods (F2SA, Kwon et al. 2023; F2BA, Chen, Ma, Zhang
2025; F2SA-p, Chen et al. 2026; ``algorithms/penalty.py``) and their components (``penalty.hypergradient``,
``penalty.lambda-schedule``): realistic bugs of research code, each a plug-in, each listed in ``DEFECTS`` with the
quick-profile claims that must catch it.
"""

from __future__ import annotations

import dataclasses

import torch

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import Component
from bilevelbench.algorithms.penalty import (
    PENALTY_NODES,
    PenaltyState,
    _inner_batches,
    _oracles,
    _public_batches,
    _state,
    _stencil,
)


# ---------------------------------------------------------------------- lambda schedule with the wrong exponent
def _lambda_wrong_exponent(k, lam0, power):
    """lambda_k = lambda_0 (k+1)^(1 - power): the public benchmark's growth (increments (k+1)^(-1/7), so lambda_k ~
    k^(6/7)) written into the paper's schedule, with the paper's steps: alpha_k lambda_k then grows as k^(1/7) and
    the y step on f + lambda_k g leaves its stability range."""
    return lam0 * (k + 1.0) ** (1.0 - power)


LAMBDA_WRONG_EXPONENT = Component("penalty.lambda-schedule", _lambda_wrong_exponent, name="defect-lambda-6/7")


# ---------------------------------------------------------------------- penalty hypergradient without lambda
def _hg_no_lambda(grad_x_f, grad_x_g, ys, nodes, coefs, nu):
    """The finite difference with the 1/nu (= lambda) dropped from the grad_x g terms: F2SA's grad_x f(y) +
    (grad_x g(y) - grad_x g(z)) instead of grad_x f(y) + lambda (grad_x g(y) - grad_x g(z))."""
    est = None
    for y, s, c in zip(ys, nodes, coefs, strict=True):
        if c == 0:
            continue
        term = c * grad_x_g(y)
        if s != 0:
            term = term + (c * s) * grad_x_f(y)
        est = term if est is None else est + term
    return est


HG_NO_LAMBDA = Component("penalty.hypergradient", _hg_no_lambda, name="defect-hypergradient-no-lambda")


# ---------------------------------------------------------------------- grad_x g at the wrong point
def _hg_gxg_last_node(grad_x_f, grad_x_g, ys, nodes, coefs, nu):
    """grad_x g read at the last node's iterate for every node (F2SA's z and y swapped in the lambda term:
    grad_x g(x, y) - grad_x g(x, y)); the difference of the g terms vanishes and only grad_x f is left."""
    est = None
    for y, s, c in zip(ys, nodes, coefs, strict=True):
        if c == 0:
            continue
        term = (c / nu) * grad_x_g(ys[-1])
        if s != 0:
            term = term + (c * s) * grad_x_f(y)
        est = term if est is None else est + term
    return est


HG_GXG_WRONG_POINT = Component("penalty.hypergradient", _hg_gxg_last_node, name="defect-hypergradient-gxg-point")


# ---------------------------------------------------------------------- grad_x f at the first node
def _hg_gxf_first_node(grad_x_f, grad_x_g, ys, nodes, coefs, nu):
    """grad_x f read at the first node's iterate (``ys[0]``) for every node: harmless for the forward stencil's
    order (its f term has one node), but the central difference then errs by O(nu), not O(nu^2)."""
    est = None
    for y, s, c in zip(ys, nodes, coefs, strict=True):
        if c == 0:
            continue
        term = (c / nu) * grad_x_g(y)
        if s != 0:
            term = term + (c * s) * grad_x_f(ys[0])
        est = term if est is None else est + term
    return est


HG_GXF_FIRST_NODE = Component("penalty.hypergradient", _hg_gxf_first_node, name="defect-hypergradient-gxf-node0")


# ---------------------------------------------------------------------- F2BA copied from the public repository
def _f2ba_public_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    """F2BA as the public repository writes it, whatever ``variant`` says: z reset to y at every outer step and
    y's step reading grad_y g at z (y -= tau (grad_y f(y)/lambda + grad_y g(z))); y drifts along -grad_y f and the
    estimate lambda (grad_x g(y) - grad_x g(z)) grows with K."""
    p, o = ctx.params, ctx.oracle
    lam, x = p["lam"], s.x
    y = s.ys[:, 1]
    z = y
    for bz, bf in _public_batches(ctx, p["K"]):
        gz = o.grad_y_g(x, z, bz)
        y = y - p["tau"] * (o.grad_y_f(x, y, bf) / lam + gz)
        z = z - p["tau_z"] * gz
    gxf, gxg = _oracles(ctx, x)
    nodes, coefs = PENALTY_NODES
    est = ctx.component("penalty.hypergradient")(gxf, gxg, (z, y), nodes, coefs, 1.0 / lam)
    return _state(x - p["eta"] * est, torch.stack([z, y], 1), nodes, estimate=est)


F2BA_PUBLIC_FORM = dataclasses.replace(al.get("f2ba"), name="defect-f2ba-public-form", step=_f2ba_public_step,
                                       presets={}, roles=("f2ba",))


# ---------------------------------------------------------------------- F2BA: grad_y f outside the counted oracle
def _f2ba_uncounted_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    """F2BA whose y loop reads grad_y f through the problem directly (a 'fast path' around the counted oracle):
    the iterates are the paper's, the first-order calls of f in the inner loop are never counted."""
    p, o = ctx.params, ctx.oracle
    lam, x = p["lam"], s.x
    z, y = s.ys[:, 0], s.ys[:, 1]
    for (_, bz), (_, bg) in _inner_batches(ctx, PENALTY_NODES[0], p["K"]):
        z = z - p["tau_z"] * o.grad_y_g(x, z, bz)
        y = y - p["tau"] * (o.problem._grad_y_f(x, y) / lam + o.grad_y_g(x, y, bg))
    gxf, gxg = _oracles(ctx, x)
    nodes, coefs = PENALTY_NODES
    est = ctx.component("penalty.hypergradient")(gxf, gxg, (z, y), nodes, coefs, 1.0 / lam)
    return _state(x - p["eta"] * est, torch.stack([z, y], 1), nodes, estimate=est)


F2BA_UNDERCOUNT = dataclasses.replace(al.get("f2ba"), name="defect-f2ba-undercount", step=_f2ba_uncounted_step,
                                      presets={}, roles=("f2ba",))


# ---------------------------------------------------------------------- F2SA-p: every node on the same problem
def _f2sap_same_node_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    """F2SA-p whose inner steps weight grad_y f by nu instead of s_j nu (the node factor forgotten): every node
    with s_j != 0 tracks y_nu, so the order-p difference is taken of the wrong function values."""
    p, o = ctx.params, ctx.oracle
    nodes, coefs = _stencil(p)
    nu, x = p["nu"], s.x
    ys = list(s.ys.unbind(1))
    for step in _inner_batches(ctx, nodes, p["T"]):
        for j, (bf, bg) in enumerate(step):
            d = o.grad_y_g(x, ys[j], bg)
            if nodes[j] != 0:
                d = d + nu * o.grad_y_f(x, ys[j], bf)
            ys[j] = ys[j] - p["gamma"] * d
    gxf, gxg = _oracles(ctx, x)
    est = ctx.component("penalty.hypergradient")(gxf, gxg, ys, nodes, coefs, nu)
    return _state(x - p["eta"] * est, torch.stack(ys, 1), nodes, estimate=est)


F2SAP_SAME_NODE = dataclasses.replace(al.get("f2sa-p"), name="defect-f2sap-same-node", step=_f2sap_same_node_step,
                                      presets={}, roles=("f2sa-p",))


# ---------------------------------------------------------------------- F2SA: sign slip in the penalty term
def _f2sa_sign_slip_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    """F2SA whose estimate subtracts the penalty term, grad_x f(y) - lambda_k (grad_x g(y) - grad_x g(z)) (written
    out by hand instead of through the finite difference): the implicit part of grad phi is reversed."""
    p, o = ctx.params, ctx.oracle
    lam = ctx.component("penalty.lambda-schedule")(k, p["lam0"], p["lam_power"])
    alpha = p["alpha"] * (k + 1.0) ** (-p["alpha_power"])
    gamma = p["gamma"] * (k + 1.0) ** (-p["gamma_power"])
    x, z, y = s.x, s.ys[:, 0], s.ys[:, 1]
    for (_, bz), (bf, bg) in _inner_batches(ctx, PENALTY_NODES[0], p["T"]):
        z = z - gamma * o.grad_y_g(x, z, bz)
        y = y - alpha * (o.grad_y_f(x, y, bf) + lam * o.grad_y_g(x, y, bg))
    gxf, gxg = _oracles(ctx, x)
    est = gxf(y) - lam * (gxg(y) - gxg(z))
    return _state(x - p["xi"] * alpha * est, torch.stack([z, y], 1), PENALTY_NODES[0], lam=s.lam, estimate=est)


F2SA_SIGN_SLIP = dataclasses.replace(al.get("f2sa"), name="defect-f2sa-sign-slip", step=_f2sa_sign_slip_step,
                                     presets={}, roles=("f2sa",))


#: attribute -> (claims of the quick profile that must find it violated, what is wrong)
DEFECTS = {
    "LAMBDA_WRONG_EXPONENT": (("f2sa23.rate",), "F2SA's lambda_k ~ k^(6/7) with the paper's steps"),
    "HG_NO_LAMBDA": (("f2sa23.identity", "f2ba25.bias"), "penalty hypergradient without the lambda factor"),
    "HG_GXG_WRONG_POINT": (("f2sa23.identity", "f2sap26.fd-bias"), "grad_x g read at the last node for every node"),
    "HG_GXF_FIRST_NODE": (("f2sap26.fd-bias",), "grad_x f read at the first node: central difference only O(nu)"),
    "F2BA_PUBLIC_FORM": (("f2ba25.public-variant",), "F2BA copied from the public repository (z reset, grad at z)"),
    "F2BA_UNDERCOUNT": (("f2ba25.rate",), "F2BA's inner grad_y f outside the counted oracle"),
    "F2SAP_SAME_NODE": (("f2sap26.fd-bias",), "F2SA-p's inner steps forget the node factor s_j"),
    "F2SA_SIGN_SLIP": (("f2sa23.rate",), "F2SA's penalty term added with the wrong sign"),
}
