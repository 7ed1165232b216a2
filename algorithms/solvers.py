"""Linear-system solvers and fixed-point iterations shared by the algorithms (batched over instances).

Each solves H v = b for R instances at once, with ``matvec(v)`` applying H (one counted HV per call).
"""

from __future__ import annotations

import torch

__all__ = ["cg", "gd", "neumann"]


def _dot(a, b):
    return (a * b).sum(-1, keepdim=True)


def cg(matvec, b, v0=None, steps: int = 10, tol: float | None = None):
    """Conjugate gradient (Hestenes and Stiefel 1952) for SPD H, ``steps`` iterations from ``v0``.

    ICML 2021 Alg. 1 solves grad_yy g v = grad_y f with N CG steps and warm start v0 = v_{k-1}.
    Cost: ``steps`` HV, plus one for the initial residual when v0 is given (none from zero).
    With ``tol``, instances whose residual norm falls to ``tol * ||b||`` stop updating; the iterate
    returned is the LATEST one (a popular implementation returns the previous iterate when its residual
    test fires; that is a defect). Instances whose residual is exactly zero are frozen (no 0/0).
    Returns (v, number of iterations run).
    Note: restarted from a warm start with steps < d, CG is not round-off stable across restarts: a
    component that the residual lacks is multiplied by |R_steps(lambda)| > 1 (the CG residual polynomial)
    at each restart, so two runs that differ at round-off drift apart geometrically (both stay accurate).
    """
    v = torch.zeros_like(b) if v0 is None else v0.clone()
    r = b.clone() if v0 is None else b - matvec(v)
    p = r.clone()
    rs = _dot(r, r)
    bnorm2 = _dot(b, b)
    one = torch.ones_like(rs)
    zero = torch.zeros_like(rs) if tol is not None else None
    it = 0
    for it in range(1, steps + 1):  # noqa: B007 (the count is returned)
        Hp = matvec(p)
        pHp = _dot(p, Hp)
        active = rs > 0
        if tol is not None:
            active &= rs > (tol * tol) * bnorm2
        # Without tol an inactive instance has rs = 0 exactly, so alpha = 0/1 = 0, r stays, rs_new = 0 and
        # beta = 0/1 = 0: the masks on alpha, beta and rs are needed only with tol (fewer dispatches per step).
        alpha = rs / torch.where(active, pHp, one)
        if tol is not None:
            alpha = torch.where(active, alpha, zero)
        v = v + alpha * p
        r = r - alpha * Hp
        rs_new = _dot(r, r)
        beta = rs_new / torch.where(active, rs, one)
        if tol is not None:
            beta = torch.where(active, beta, zero)
            rs_new = torch.where(active, rs_new, rs)
        p = r + beta * p
        rs = rs_new
        if tol is not None and not bool(((rs > (tol * tol) * bnorm2) & (rs > 0)).any()):
            break
    return v, it


def gd(matvec, b, v0=None, steps: int = 10, eta: float = 1.0):
    """Gradient descent on 1/2 v'Hv - b'v (the fixed-point iteration v <- v - eta (H v - b)).

    The linear-system solver of the Loops paper's Alg. 1 ("Q steps of GD iterations", step eta).
    From v0 = 0 after Q steps: v_Q = eta sum_{q=0}^{Q-1} (I - eta H)^q b (truncated Neumann series).
    Cost: ``steps`` HV.
    """
    v = torch.zeros_like(b) if v0 is None else v0.clone()
    for _ in range(steps):
        v = v - eta * (matvec(v) - b)
    return v


def neumann(matvec, b, steps: int = 10, eta: float = 1.0):
    """Truncated Neumann series eta sum_{q=0}^{Q} (I - eta H)^q b (Q = ``steps``).

    H^-1 = eta sum_{q>=0} (I - eta H)^q for 0 < eta < 2/||H|| (the series diverges for eta >= 2/L).
    This is the deterministic counterpart of stocBiO's v_Q (ICML 2021 eq. 5) and of the Ghadimi-Wang
    estimator. Cost: ``steps`` HV.
    """
    term = b.clone()
    total = b.clone()
    for _ in range(steps):
        term = term - eta * matvec(term)
        total = total + term
    return eta * total
