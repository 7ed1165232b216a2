"""Component roles: the pieces of the papers' algorithms that claims are about, replaceable one at a time.

A component role names a function the algorithms call through ``ctx.component(role)`` (and the estimator
experiments of ``bench`` call directly): the AID linear solvers, ITD's reverse recursion, stocBiO's Neumann
estimators and batch schedule, the randomized truncated Neumann product of BSA/TTSA, SID's stochastic
fixed-point iteration, the SAGA / SARAH / STORM direction estimators of the modern solvers and the penalty
methods' finite-difference hypergradient and lambda schedule. A user's implementation of one
(``Component(role, fn)``, passed to ``run(..., components=...)`` or to ``bilevelbench verify --plugin``)
replaces the default everywhere that role is used, and nowhere else. Its signature must accept the default's
arguments (checked by :func:`check`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .deterministic import itd_reverse
from .directions import saga_direction, sarah_direction, storm_direction
from .penalty import lambda_schedule, penalty_hypergradient
from .solvers import cg, gd, neumann
from .stochastic_solvers import decaying_batches, hinv_horner, randomized_neumann, stochastic_fixed_point, vq_recursion

__all__ = ["ComponentRole", "Component", "COMPONENTS", "check", "resolve"]


@dataclass(frozen=True)
class ComponentRole:
    """A replaceable piece: its default implementation, what it computes and where it comes from."""

    name: str
    default: Callable
    summary: str
    reference: str
    #: the algorithm roles whose steps call it (so a component plug-in reaches every claim running them)
    used_by: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        return f"{self.default.__name__}{inspect.signature(self.default)}"


@dataclass(frozen=True)
class Component:
    """A user's implementation ``fn`` of the component role ``role`` (a component plug-in)."""

    role: str
    fn: Callable
    name: str = ""
    meta: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        check(self.role, self.fn)


def _roles(*rs: ComponentRole) -> dict[str, ComponentRole]:
    return {r.name: r for r in rs}


_AID = ("aid-bio", "ba", "meta-aid-bio")
COMPONENTS: dict[str, ComponentRole] = _roles(
    ComponentRole("solver.cg", cg, "conjugate gradient for grad_yy g v = grad_y f: (v, iterations)",
                  "ICML 2021 Alg. 1 (N CG steps, warm start v_{k-1})", _AID),
    ComponentRole("solver.gd", gd, "gradient descent / fixed-point iteration on the linear system",
                  "Loops 2022 Alg. 1 (Q GD steps, step eta)", _AID),
    ComponentRole("solver.neumann", neumann, "truncated Neumann series eta sum_{q<=Q} (I - eta H)^q b",
                  "Ghadimi and Wang 2018 (BA); ICML 2021 eq. (5) deterministic form", _AID),
    ComponentRole("itd.hypergradient", itd_reverse, "ITD estimate d f(x, y^N(x))/dx by the reverse recursion",
                  "ICML 2021 Prop. 2", ("itd-bio", "deterbio", "meta-itd-bio")),
    ComponentRole("stocbio.vq", vq_recursion, "stocBiO's v_Q (r-recursion applied to v_0)",
                  "ICML 2021 Alg. 3", ("stocbio",)),
    ComponentRole("stocbio.hinv", hinv_horner, "stocBiO's Hessian-inverse estimator H_inv applied to v",
                  "arXiv eq. (5); MRBO/VRBO's Neumann hypergradient (Yang, Ji, Liang 2021)",
                  ("stocbio", "mrbo", "vrbo")),
    ComponentRole("stocbio.batch-schedule", decaying_batches,
                  "Hessian batch sizes s_j = ceil(B Q (1 - eta mu)^(j-1)), j = 1..Q",
                  "ICML 2021 Prop. 3, arXiv Prop. 4", ("stocbio",)),
    ComponentRole("neumann.randomized", randomized_neumann,
                  "b eta prod_{i<=p} (I - eta H_{B_i}) v, p uniform on {0..b-1}",
                  "Ghadimi and Wang 2018 Alg. 3; Hong et al. 2020", ("bsa", "ttsa")),
    ComponentRole("saga.direction", saga_direction,
                  "SAGA estimate over per-sample memories: mean_B(phi_i(y) - phi_i(w_i)) + mean_i phi_i(w_i); w_i <- y",
                  "Defazio, Bach, Lacoste-Julien 2014; SABA (Dagreou et al. 2022, Sec. 3.2)", ("saba",)),
    ComponentRole("sarah.direction", sarah_direction, "SARAH recursion D + phi_B(y_t) - phi_B(y_{t-1})",
                  "Nguyen et al. 2017; SRBA (Dagreou et al. 2024), VRBO (Yang, Ji, Liang 2021)", ("srba", "vrbo")),
    ComponentRole("storm.direction", storm_direction, "STORM recursion phi_B(y_t) + (1 - a)(D - phi_B(y_{t-1}))",
                  "Cutkosky and Orabona 2019; MRBO (Yang, Ji, Liang 2021), FSLA (Li, Gu, Huang 2022)",
                  ("mrbo", "fsla")),
    ComponentRole("penalty.hypergradient", penalty_hypergradient,
                  "finite difference in nu of grad_x l_nu: sum_j c_j (s_j nu grad_x f(y_j) + grad_x g(y_j))/nu",
                  "F2SA-p eq. 8 (Chen et al. 2026); F2SA (Kwon et al. 2023), F2BA (Chen, Ma, Zhang 2025)",
                  ("f2sa", "f2ba", "f2sa-p")),
    ComponentRole("penalty.lambda-schedule", lambda_schedule, "lambda_k = lambda_0 (k+1)^power",
                  "F2SA (Kwon et al. 2023): lambda_k ~ k^(1/7)", ("f2sa",)),
    ComponentRole("sid.fixed-point", stochastic_fixed_point,
                  "stochastic fixed-point iteration w <- w + eta_t (T^(w, zeta_t) - w)", "SID eq. (17)",
                  ("sid",)),
)


def check(role: str, fn) -> None:
    """Raise ValueError/TypeError unless ``fn`` can fill component role ``role`` (callable with the
    default's positional and keyword arguments)."""
    if role not in COMPONENTS:
        raise ValueError(f"unknown component role {role!r}; known: {', '.join(sorted(COMPONENTS))}")
    if not callable(fn):
        raise TypeError(f"component {role!r} must be callable, got {type(fn).__name__}")
    want = inspect.signature(COMPONENTS[role].default)
    try:
        got = inspect.signature(fn)
    except (TypeError, ValueError):  # builtins without a signature: trust them
        return
    # the algorithms call components with every positional argument of the default given by position
    pos = [p for p in want.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    kw = {p.name: None for p in want.parameters.values() if p.kind is p.KEYWORD_ONLY}
    try:
        got.bind(*([None] * len(pos)), **kw)
    except TypeError as exc:
        raise TypeError(f"component for {role!r} must accept the arguments of {COMPONENTS[role].signature}: "
                        f"{exc}") from None


def resolve(role: str, overrides: Mapping[str, Callable] | None) -> Callable:
    """The implementation of ``role``: the override when given, else the default."""
    if overrides and role in overrides:
        return overrides[role]
    return COMPONENTS[role].default
