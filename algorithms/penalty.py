"""Fully first-order penalty methods: F2SA (Kwon, Kwon, Wright, Nowak, ICML 2023), F2BA (Chen, Ma, Zhang,
JMLR 2025) and F2SA-p (Chen, Li, Chayti, Zhang, ICLR 2026).

All three estimate grad Phi by finite differences in nu of grad_x l_nu(x), l_nu(x) = min_y nu f(x, y) + g(x, y)
(F2SA-p eq. 8; Kwon et al. 2023 Lemma 3.1: d/dnu grad_x l_nu at nu = 0 is grad Phi), with
grad_x l_nu(x) = nu grad_x f(x, y_nu) + grad_x g(x, y_nu) at the minimiser y_nu. With stencil nodes s_j and
weights c_j of a finite difference for a first derivative (sum_j c_j s_j^q = [q = 1]) and spacing nu,
    est = sum_j c_j (s_j nu grad_x f(x, y_j) + grad_x g(x, y_j)) / nu              (component penalty.hypergradient)
where y_j approximates y_{s_j nu}, kept by a few (stochastic) gradient steps on s_j nu f + g per outer step.
F2SA and F2BA are the forward difference (nodes 0, 1; nu = 1/lambda): est = grad_x f(x, y) + lambda
(grad_x g(x, y) - grad_x g(x, z)), z tracking y* and y tracking y_lambda = argmin f + lambda g.

F2SA (notes [M], matching the public code): T inner steps z -= gamma_k grad_y g(x, z), y -= alpha_k (grad_y f(x, y)
  + lambda_k grad_y g(x, y)); x -= xi alpha_k est; lambda_k from the component penalty.lambda-schedule
  (paper: lambda_k = lambda_0 (k+1)^(1/7), with alpha_k ~ k^(-5/7), gamma_k ~ k^(-4/7) [M/D]). Variant 'public'
  (benchopt's F2SA): lambda_{k+1} = lambda_k + delta (k+1)^(-1/7), i.e. lambda_k ~ k^(6/7).
F2BA (notes [M]): constant lambda and outer step eta, K inner gradient steps on g (z) and on f/lambda + g (y),
  warm-started across outer steps. Variant 'public' (the F2BA repository's Hpo/l2reg.py [C]): at each outer
  step z is reset to y, and y's step uses grad_y g at the z iterate: y -= tau (grad_y f(x, y)/lambda +
  grad_y g(x, z)).
F2SA-p: order-p stencil in nu (ours, the paper's coefficients were not read [D]: nodes -floor(p/2) ..
  ceil(p/2), p + 1 nodes, error O(nu^p); p = 1 forward, p = 2 central (node 0 has weight 0 and is dropped),
  p = 3 nodes -1, 0, 1, 2 with weights (-2, -3, 6, -1)/6). Inner steps y_j -= gamma (s_j nu grad_y f +
  grad_y g); x -= eta est. Negative nodes need s_j nu f + g strongly convex: nu |s_j| L_fy < mu.

Per outer step costs (``bounds.costs``; J nodes, J_f of them nonzero, inner steps T or K): T (J S Gc(g) + J_f S_f
Gc(f)) for the inner steps and J S Gc(g) + J_f S_f Gc(f) for the estimate, no HV or JV (fully first order);
F2BA's public variant evaluates one grad_y g per inner step instead of two.

``shared_batch`` draws one G batch and one F batch per inner step for every node (and one pair for the
hypergradient), common random numbers across nodes; the default draws independent batches per call, as the
public codes do. A batch size None is the full objective (all n samples on a finite sum, counted n; the
deterministic oracle, counted 1, on a deterministic problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch

from . import modern_presets as mp
from .base import Algorithm, Param, register
from .directions import check_batches, draw, draw_many

__all__ = ["PenaltyState", "fd_stencil", "penalty_hypergradient", "lambda_schedule", "PENALTY_NODES"]


@dataclass
class PenaltyState:
    x: torch.Tensor
    #: (R, J, dim_y): the inner iterate of each stencil node (y_j ~ y_{s_j nu})
    ys: torch.Tensor
    #: the iterate tracking y*(x): node 0's, or the mean over the nodes when the stencil has no node 0
    y: torch.Tensor
    estimate: torch.Tensor | None = None
    #: F2SA 'public' variant: the accumulated lambda_k
    lam: float = 0.0


def fd_stencil(p: int) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Nodes -floor(p/2)..ceil(p/2) and the weights c_j of the first-derivative finite difference at 0
    (sum_j c_j s_j^q = [q = 1], q = 0..p; exact rationals), zero-weight nodes dropped: order p."""
    nodes = list(range(-(p // 2), (p + 1) // 2 + 1))
    size = len(nodes)
    A = [[Fraction(s) ** q for s in nodes] + [Fraction(int(q == 1))] for q in range(size)]
    for col in range(size):  # Gauss-Jordan elimination on the Vandermonde system, exact
        piv = next(r for r in range(col, size) if A[r][col] != 0)
        A[col], A[piv] = A[piv], A[col]
        A[col] = [a / A[col][col] for a in A[col]]
        for r in range(size):
            if r != col and A[r][col] != 0:
                A[r] = [a - A[r][col] * b for a, b in zip(A[r], A[col], strict=True)]
    coefs = [A[r][size] for r in range(size)]
    keep = [(s, float(c)) for s, c in zip(nodes, coefs, strict=True) if c != 0]
    return tuple(s for s, _ in keep), tuple(c for _, c in keep)


def penalty_hypergradient(grad_x_f, grad_x_g, ys, nodes, coefs, nu: float) -> torch.Tensor:
    """sum_j c_j (s_j nu grad_x f(x, y_j) + grad_x g(x, y_j)) / nu: the finite difference of grad_x l_nu(x) in nu
    (module docstring). ``grad_x_f(y)``, ``grad_x_g(y)`` evaluate the counted oracles at (x, y) on the step's
    batches; ``ys`` the node iterates; terms with a zero factor are not evaluated."""
    est = None
    for y, s, c in zip(ys, nodes, coefs, strict=True):
        if c == 0:
            continue
        term = (c / nu) * grad_x_g(y)
        if s != 0:
            term = term + (c * s) * grad_x_f(y)
        est = term if est is None else est + term
    return est


def lambda_schedule(k: int, lam0: float, power: float) -> float:
    """lambda_k = lambda_0 (k + 1)^power (F2SA: power 1/7)."""
    return lam0 * (k + 1.0) ** power


#: F2SA/F2BA: the forward difference, node 0 (z, tracking y*) and node 1 (y, tracking y_lambda)
PENALTY_NODES = ((0, 1), (-1.0, 1.0))


def _state(x, ys, nodes, lam=0.0, estimate=None) -> PenaltyState:
    y = ys[:, nodes.index(0)] if 0 in nodes else ys.mean(1)
    return PenaltyState(x=x, ys=ys, y=y, estimate=estimate, lam=lam)


def _init(nodes_of):
    def init(ctx):
        check_batches(ctx.oracle.problem, ctx.params, "the penalty method")
        nodes = nodes_of(ctx.params)[0]
        ys = ctx.y0.unsqueeze(1).expand(-1, len(nodes), -1).clone()
        return _state(ctx.x0.clone(), ys, nodes, lam=ctx.params.get("lam0", 0.0))
    return init


def _oracles(ctx, x):
    """grad_x f(x, .) and grad_x g(x, .) on the hypergradient's batches: one pair for all nodes
    (shared_batch) or fresh batches per evaluation."""
    p, o = ctx.params, ctx.oracle
    if p["shared_batch"]:
        bf, bg = draw(ctx, "f", p["S_f"]), draw(ctx, "g", p["S"])
        return (lambda y: o.grad_x_f(x, y, bf)), (lambda y: o.grad_x_g(x, y, bg))
    return (lambda y: o.grad_x_f(x, y, draw(ctx, "f", p["S_f"]))), (lambda y: o.grad_x_g(x, y, draw(ctx, "g", p["S"])))


def _inner_batches(ctx, nodes, T: int) -> list[list[tuple]]:
    """For each of T inner steps and each node, its (F, G) batches (F None for node 0, whose objective is g
    alone): one pair per step shared by the nodes (shared_batch) or independent pairs. A step's batches come
    from one draw per sample set (the same law as separate draws, and one gather of the rows)."""
    p = ctx.params
    J, Jf = len(nodes), sum(s != 0 for s in nodes)
    kg, kf = (1, min(Jf, 1)) if p["shared_batch"] else (J, Jf)
    fs, gs = draw_many(ctx, "f", p["S_f"], kf * T), draw_many(ctx, "g", p["S"], kg * T)
    out = []
    for t in range(T):
        row, jf = [], 0
        for j, s in enumerate(nodes):
            bf = None if s == 0 else fs[t * kf + (jf if kf > 1 else 0)]
            jf += s != 0
            row.append((bf, gs[t * kg + (j if kg > 1 else 0)]))
        out.append(row)
    return out


# ---------------------------------------------------------------------- F2SA
def _f2sa_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    p, o = ctx.params, ctx.oracle
    lam = ctx.component("penalty.lambda-schedule")(k, p["lam0"], p["lam_power"]) if p["variant"] == "paper" else s.lam
    alpha = p["alpha"] * (k + 1.0) ** (-p["alpha_power"])
    gamma = p["gamma"] * (k + 1.0) ** (-p["gamma_power"])
    x, z, y = s.x, s.ys[:, 0], s.ys[:, 1]
    for (_, bz), (bf, bg) in _inner_batches(ctx, PENALTY_NODES[0], p["T"]):
        z = z - gamma * o.grad_y_g(x, z, bz)
        y = y - alpha * (o.grad_y_f(x, y, bf) + lam * o.grad_y_g(x, y, bg))
    gxf, gxg = _oracles(ctx, x)
    nodes, coefs = PENALTY_NODES
    est = ctx.component("penalty.hypergradient")(gxf, gxg, (z, y), nodes, coefs, 1.0 / lam)
    lam_next = s.lam + p["delta"] * (k + 1.0) ** (-1.0 / 7.0) if p["variant"] == "public" else s.lam
    return _state(x - p["xi"] * alpha * est, torch.stack([z, y], 1), nodes, lam=lam_next, estimate=est)


_POS = dict(kind=float, minimum=0.0)
_NONNEG = dict(kind=float, minimum=0.0, strict=False)
_INT1 = dict(kind=int, minimum=1, strict=False)
_BATCH = dict(kind=int, minimum=1, strict=False, optional=True)
_SAMPLING = {
    "S": Param(1, "G batch size (None: the full objective)", **_BATCH),
    "S_f": Param(1, "F batch size (None: the full objective)", **_BATCH),
    "shared_batch": Param(False, "one batch pair per inner step and for the hypergradient, shared by every node "
                          "(False: independent batches per call, as the public codes)", kind=bool),
}

register(Algorithm(
    name="f2sa", paper="f2sa23",
    reference="Kwon, Kwon, Wright, Nowak, ICML 2023, A Fully First-Order Method for Stochastic Bilevel "
    "Optimization (F2SA); update and schedules as in the research notes ([M], matching the public code)",
    stochastic=True, kind="penalty",
    summary="F2SA: T stochastic steps on z (g) and y (f + lambda_k g), outer step xi alpha_k along grad_x f(y) + "
    "lambda_k (grad_x g(y) - grad_x g(z)), lambda_k increasing",
    params={
        "lam0": Param(1.0, "lambda_0", **_POS),
        "lam_power": Param(1.0 / 7.0, "lambda_k = lambda_0 (k+1)^lam_power (paper: 1/7)", **_NONNEG),
        "delta": Param(0.1, "variant 'public': lambda_{k+1} = lambda_k + delta (k+1)^(-1/7)", **_NONNEG),
        "alpha": Param(mp.f2sa_alpha, "alpha_0: y step alpha_k = alpha_0 (k+1)^-alpha_power", **_POS),
        "alpha_power": Param(5.0 / 7.0, "exponent of alpha_k (paper: 5/7)", **_NONNEG),
        "gamma": Param(mp.one_over_L_sample_yy, "gamma_0: z step gamma_k = gamma_0 (k+1)^-gamma_power", **_POS),
        "gamma_power": Param(4.0 / 7.0, "exponent of gamma_k (paper: 4/7)", **_NONNEG),
        "xi": Param(mp.f2sa_xi, "outer step ratio: x step xi alpha_k", **_POS),
        "T": Param(10, "inner steps per outer step", **_INT1),
        "variant": Param("paper", "'paper' (lambda_k ~ k^1/7 from penalty.lambda-schedule) or 'public' "
                         "(lambda increments delta (k+1)^(-1/7), lambda_k ~ k^6/7)", choices=("paper", "public")),
        **_SAMPLING,
    },
    init=_init(lambda p: PENALTY_NODES), step=_f2sa_step, presets=mp.F2SA_PRESETS, theory=mp.PENALTY_CHECKS,
    roles=("f2sa",), components=("penalty.hypergradient", "penalty.lambda-schedule"),
))


# ---------------------------------------------------------------------- F2BA
def _f2ba_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    p, o = ctx.params, ctx.oracle
    lam, x = p["lam"], s.x
    z, y = s.ys[:, 0], s.ys[:, 1]
    if p["variant"] == "public":  # z reset to y; y's step reads grad_y g at z: one G batch per inner step
        z = y
        for bz, bf in _public_batches(ctx, p["K"]):
            gz = o.grad_y_g(x, z, bz)
            y = y - p["tau"] * (o.grad_y_f(x, y, bf) / lam + gz)
            z = z - p["tau_z"] * gz
    else:
        for (_, bz), (bf, bg) in _inner_batches(ctx, PENALTY_NODES[0], p["K"]):
            z = z - p["tau_z"] * o.grad_y_g(x, z, bz)
            y = y - p["tau"] * (o.grad_y_f(x, y, bf) / lam + o.grad_y_g(x, y, bg))
    gxf, gxg = _oracles(ctx, x)
    nodes, coefs = PENALTY_NODES
    est = ctx.component("penalty.hypergradient")(gxf, gxg, (z, y), nodes, coefs, 1.0 / lam)
    return _state(x - p["eta"] * est, torch.stack([z, y], 1), nodes, estimate=est)


register(Algorithm(
    name="f2ba", paper="f2ba25",
    reference="Chen, Ma, Zhang, JMLR 2025, Near-Optimal Nonconvex-Strongly-Convex Bilevel Optimization with Fully "
    "First-Order Oracles (F2BA): constant lambda ~ l kappa^3/eps and outer step eta ~ 1/(l kappa^3) [M]",
    stochastic=True, kind="penalty",  # deterministic by default (S = None); it takes mini-batches as well
    summary="F2BA: K warm-started gradient steps on z (g) and y (f/lambda + g), constant lambda and outer step",
    params={
        "lam": Param(mp.f2ba_lam, "penalty lambda (constant)", **_POS),
        "eta": Param(mp.f2ba_eta, "outer step (constant, independent of lambda)", **_POS),
        "tau": Param(mp.f2ba_tau, "step on y for f/lambda + g (default 1/(L_f/lambda + L))", **_POS),
        "tau_z": Param(mp.one_over_L_sample_yy, "step on z for g", **_POS),
        "K": Param(10, "inner steps per outer step", **_INT1),
        "variant": Param("paper", "'paper' or 'public' (the F2BA repository: z reset to y each outer step, y's step "
                         "uses grad_y g at z)", choices=("paper", "public")),
        **{**_SAMPLING, "S": Param(None, "G batch size (None: the full objective, the paper's setting)",
                                   **_BATCH),
           "S_f": Param(None, "F batch size (None: the full objective)", **_BATCH)},
    },
    init=_init(lambda p: PENALTY_NODES), step=_f2ba_step, presets=mp.F2BA_PRESETS, theory=mp.PENALTY_CHECKS,
    roles=("f2ba",), components=("penalty.hypergradient",),
))


def _public_batches(ctx, K: int) -> list[tuple]:
    """F2BA 'public': per inner step one G batch (z's, read by both updates) and one F batch."""
    p = ctx.params
    gs, fs = draw_many(ctx, "g", p["S"], K), draw_many(ctx, "f", p["S_f"], K)
    return list(zip(gs, fs, strict=True))


# ---------------------------------------------------------------------- F2SA-p
def _stencil(params):
    return fd_stencil(params["p"])


def _f2sap_step(ctx, s: PenaltyState, k: int) -> PenaltyState:
    p, o = ctx.params, ctx.oracle
    nodes, coefs = _stencil(p)
    nu, x = p["nu"], s.x
    ys = list(s.ys.unbind(1))
    for step in _inner_batches(ctx, nodes, p["T"]):
        for j, (bf, bg) in enumerate(step):
            d = o.grad_y_g(x, ys[j], bg)
            if nodes[j] != 0:
                d = d + (nodes[j] * nu) * o.grad_y_f(x, ys[j], bf)
            ys[j] = ys[j] - p["gamma"] * d
    gxf, gxg = _oracles(ctx, x)
    est = ctx.component("penalty.hypergradient")(gxf, gxg, ys, nodes, coefs, nu)
    return _state(x - p["eta"] * est, torch.stack(ys, 1), nodes, estimate=est)


register(Algorithm(
    name="f2sa-p", paper="f2sap26",
    reference="Chen, Li, Chayti, Zhang, ICLR 2026, Faster Gradient Methods for Highly-Smooth Stochastic Bilevel "
    "Optimization (F2SA-p): order-p finite difference in nu of grad_x l_nu (eq. 8); stencil ours [D]",
    stochastic=True, kind="penalty",
    summary="F2SA-p: one inner iterate per stencil node nu_j = s_j nu, T steps on nu_j f + g, order-p finite "
    "difference of grad_x l_nu",
    params={
        "p": Param(2, "order of the finite difference (1: forward = F2SA's, 2: central, 3)", choices=(1, 2, 3)),
        "nu": Param(mp.f2sap_nu, "spacing nu of the stencil (1/lambda; nu |s_j| L_fy < mu for negative nodes)",
                    **_POS),
        "gamma": Param(mp.one_over_L_sample_yy, "inner step on nu_j f + g", **_POS),
        "eta": Param(mp.f2sap_eta, "outer step", **_POS),
        "T": Param(10, "inner steps per node per outer step", **_INT1),
        **_SAMPLING,
    },
    init=_init(_stencil), step=_f2sap_step, presets=mp.F2SAP_PRESETS, theory=mp.PENALTY_CHECKS,
    roles=("f2sa-p",), components=("penalty.hypergradient",),
))
