"""Identity experiments run on every registered problem family (small instances, several seeds).

* ``identity/prop1`` (ICML 2021 Prop. 1, eq. (4)): the closed-form grad Phi against central finite
  differences of Phi, against eq. (4) with autograd's dense Hessian and Jacobian and a direct solve, and
  against the AID estimate of eq. (3) at y*(x) through the counted oracle, with the linear system solved by
  the AID solver (role ``solver.cg``, run to convergence: 4 d_y steps).
* ``identity/prop2`` (ICML 2021 Prop. 2): ITD's reverse recursion (role ``itd.hypergradient``) against
  backpropagation through the unrolled inner loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

import bilevelbench.analytic as an
from bilevelbench.algorithms.deterministic import aid_estimate, inner_gd
from bilevelbench.algorithms.oracle import CountedOracle

from . import Arm, Experiment, Key, Row, register_experiment
from .common import cast_of, make

__all__ = ["families", "IdentityKey", "Prop1Row", "Prop2Row", "CG_STEPS_PER_DIM"]

#: CG steps per lower-level dimension for the AID route of Prop. 1: exact arithmetic needs d_y; 4 d_y
#: brings the float64 residual to round-off on every family (kappa <= 1e3)
CG_STEPS_PER_DIM = 4


def families() -> list[str]:
    return an.names()


@dataclass(frozen=True)
class IdentityKey(Key):
    family: str
    h: float | None = None  # central-difference step (Prop. 1)
    N: int | None = None  # inner steps (Prop. 2)


@dataclass(frozen=True)
class Prop1Row(Row):
    family: str
    kappa: float
    err_fd: float
    err_eq4: float
    err_aid: float


@dataclass(frozen=True)
class Prop2Row(Row):
    family: str
    N: int
    err: float


def _points(problem, seed, n=3):
    gen = torch.Generator().manual_seed(seed)
    return [0.5 * torch.randn(problem.R, problem.dim_x, generator=gen, dtype=torch.float64).to(problem.dtype)
            for _ in range(n)]


def hypergradient_identity(key: IdentityKey, env, seed: int) -> list[Prop1Row]:
    """ICML 2021 Prop. 1 / eq. (4): closed-form grad Phi against (a) central finite differences of Phi,
    (b) eq. (4) with autograd's dense Hessian and Jacobian and a direct solve at y*(x), (c) the AID estimate
    eq. (3) at y*(x) with the audited CG (``solver.cg``) run for 4 d_y steps from v_0 = 0."""
    p = make(key.family, env, seed=seed)
    cg = cast_of(env).component("solver.cg")
    rows = []
    h = key.h
    for x in _points(p, seed):
        g = p._hypergradient(x)
        fd = torch.zeros_like(x)
        for i in range(p.dim_x):
            e = torch.zeros_like(x)
            e[:, i] = h
            fd[:, i] = (p._phi(x + e) - p._phi(x - e)) / (2 * h)
        y = p._y_star(x)
        H = an.BilevelProblem._hess_yy(p, x, y)
        J = an.BilevelProblem._jac_xy(p, x, y)
        v = torch.linalg.solve(H, an.BilevelProblem._grad_y_f(p, x, y).unsqueeze(-1))
        eq4 = an.BilevelProblem._grad_x_f(p, x, y) - (J @ v).squeeze(-1)
        aid, _ = aid_estimate(CountedOracle(p), x, y, None, solver="cg", Q=CG_STEPS_PER_DIM * p.dim_y, eta=0.0,
                              solve=cg)
        scale = float(g.norm())
        rows.append(Prop1Row(family=key.family, kappa=p.constants.kappa, err_fd=float((g - fd).norm()) / scale,
                             err_eq4=float((g - eq4).norm()) / scale, err_aid=float((g - aid).norm()) / scale))
    return rows


def itd_identity(key: IdentityKey, env, seed: int) -> list[Prop2Row]:
    """ICML 2021 Prop. 2: the reverse recursion over stored inner iterates (the audited
    ``itd.hypergradient``) against backpropagation through the unrolled loop (torch.autograd on the
    problem's closed-form grad_y g)."""
    p = make(key.family, env, seed=seed)
    reverse = cast_of(env).component("itd.hypergradient")
    alpha = 1.0 / p.constants.L
    rows = []
    for x in _points(p, seed):
        y0 = torch.zeros(p.R, p.dim_y, dtype=p.dtype, device=p.device)
        oracle = CountedOracle(p)
        yN, ys = inner_gd(oracle, x, y0, key.N, alpha, keep=True)
        rev = reverse(oracle, x, ys, yN, alpha)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            y = y0
            for _ in range(key.N):
                y = y - alpha * p._grad_y_g(xg, y)
            (auto,) = torch.autograd.grad(p._f(xg, y).sum(), xg)
        rows.append(Prop2Row(family=key.family, N=key.N,
                             err=float((rev - auto).norm()) / max(float(auto.norm()), 1e-300)))
    return rows


#: Prop. 1's central-difference step: truncation h^2 |Phi'''|/6 and cancellation eps |Phi|/h are both far
#: below 1e-6 relative on these instances (|Phi'''|, |Phi| are O(kappa^3), O(kappa^2) at kappa = 10)
FD_H = 1e-5

register_experiment(Experiment(
    name="identity/prop1", measure=hypergradient_identity,
    grid=lambda profile: tuple(IdentityKey(family=f, h=FD_H) for f in families()),
    key_type=IdentityKey, row_type=Prop1Row, arms=(Arm("solver.cg", label="AID linear solver (CG)"),),
    summary="every family, 3 points per seed: closed-form grad Phi vs central differences, vs eq. (4) by dense "
            "solve, and vs the AID estimate at y* with the audited CG run to convergence"))

register_experiment(Experiment(
    name="identity/prop2", measure=itd_identity,
    grid=lambda profile: tuple(IdentityKey(family=f, N=20) for f in families()),
    key_type=IdentityKey, row_type=Prop2Row, arms=(Arm("itd.hypergradient", label="ITD reverse recursion"),),
    summary="every family: N = 20 inner GD steps (alpha = 1/L) from y0 = 0; the audited reverse recursion vs "
            "torch.autograd through the unrolled loop"))
