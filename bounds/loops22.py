"""Bounds of Ji, Liu, Liang, Ying, "Will Bilevel Optimizers Benefit from Loops", NeurIPS 2022.

Notation of the paper: N inner GD steps of size alpha; Q steps of the linear-system solver of size eta;
L (Assumption 2), mu (Assumption 1), rho (Assumption 3, both second derivatives), M bounds
||grad_y f(x, y*(x))|| (Assumption 4: weaker than ICML's M-Lipschitz f). The paper prints only orders
in the main text (its appendices are not at hand): every such function takes the hidden constant ``c``
(default 1). The exact ITD floor and trajectory of our lower-bound construction (the ``itd-lower-bound``
family of :mod:`bilevelbench.analytic.lower_bound`) are here too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ._common import bound, check_kappa, count, nonneg, pos, step, strong_convexity, theta

__all__ = [
    "thm4_floor",
    "thm3_error_term",
    "cor5_bound",
    "cor6_bound",
    "itd_floor",
    "itd_gradient_trajectory",
    "itd_trajectory",
    "itd_quadratic_floor",
    "itd_quadratic_fixed_point",
    "ItdFixedPoint",
]


def _itd(L, mu, M, alpha, N, max_alpha_rule="1/L", max_alpha=None):
    L, mu = strong_convexity(L, mu)
    alpha = step("alpha", alpha, (1.0 / L) if max_alpha is None else max_alpha, max_alpha_rule)
    return L, mu, nonneg("M", M), alpha, count("N", N, minimum=0)


@bound("loops22.thm4", "Loops Theorem 4 (lower bound; order only, hidden constant c)", "order-lower",
       "||grad Phi(x_K)||^2 >= c L^2 M^2 (1 - alpha mu)^(2N)/mu^2 for every K >= 1")
def thm4_floor(L, mu, M, alpha, N, c=1.0) -> float:
    """The ITD-BiO floor of Loops Theorem 4, Theta(L^2 M^2 (1 - alpha mu)^(2N)/mu^2), with its hidden
    constant ``c`` (default 1). Hypotheses: alpha <= 1/L, beta <= 1/L_Phi, N = O(1). On our
    construction :func:`itd_floor` is the exact floor, with c = (L - mu)/L >= 1/2 when L >= 2 mu."""
    L, mu, M, alpha, N = _itd(L, mu, M, alpha, N)
    return theta(c) * L**2 * M**2 * (1 - alpha * mu) ** (2 * N) / mu**2


@bound("loops22.thm3.error", "Loops Theorem 3, eq. (5), last term (K-independent; hidden constant c)",
       "order-upper", "c M^2 (1 - alpha mu)^(2N) L^2/(alpha mu^3)")
def thm3_error_term(L, mu, M, alpha, N, c=1.0) -> float:
    """The K-independent error term of Loops Theorem 3, O(M^2 L^2 (1 - alpha mu)^(2N)/(alpha mu^3)), with its
    hidden constant ``c`` (default 1); Theorem 3 asks alpha <= 1/(2L). It exceeds the Theorem 4 floor by
    the factor 1/(alpha mu) (the gap the paper notes)."""
    L, mu, M, alpha, N = _itd(L, mu, M, alpha, N, "1/(2L)", 0.5 / pos("L", L))
    return theta(c) * M**2 * (1 - alpha * mu) ** (2 * N) * L**2 / (alpha * mu**3)


@bound("loops22.cor5", "Loops Corollary 5 (N-N-loop ITD; order only, hidden constant c)", "order-upper",
       "(1/K) sum ||grad Phi||^2 <= c (kappa^3/K + eps)")
def cor5_bound(K, kappa, eps, c=1.0) -> float:
    """Loops Corollary 5: O(kappa^3/K + eps) with N = Theta(kappa ln(kappa/eps)), alpha = 1/(2L)."""
    K = count("K", K, minimum=1)
    return theta(c) * (check_kappa(kappa) ** 3 / K + nonneg("eps", eps))


@bound("loops22.cor6", "Loops Corollary 6 (No-loop ITD; order only, hidden constant c)", "order-upper",
       "(1/K) sum ||grad Phi||^2 <= c (kappa^3/K + M^2 L^2/(alpha mu^3))")
def cor6_bound(K, L, mu, M, alpha, c=1.0) -> float:
    """Loops Corollary 6: O(kappa^3/K + M^2 L^2/(alpha mu^3)) for N = Theta(1), alpha = 1/(2 N L); one
    hidden constant ``c`` for the whole O(.) (default 1). The second term is Theorem 3's error term
    with (1 - alpha mu)^(2N) <= 1; with alpha = 1/(2NL) it is 2 N M^2 kappa^3."""
    K = count("K", K, minimum=1)
    L, mu, M, alpha, _ = _itd(L, mu, M, alpha, 0, "1/(2L)", 0.5 / pos("L", L))
    return theta(c) * ((L / mu) ** 3 / K + M**2 * L**2 / (alpha * mu**3))


@bound("loops22.itd_floor", "ours: exact floor of ITD-BiO on the itd-lower-bound construction"
       " (matches the order of Loops Theorem 4)", "exact",
       "||grad Phi(x_K)||^2 >= L (L - mu) M^2 (1 - alpha mu)^(2N)/mu^2, equality from x_0 = x^")
def itd_floor(L, mu, M, alpha, N) -> float:
    """Exact K-independent floor of ITD-BiO on our construction (``itd-lower-bound`` family).

    The construction is ours (the paper's appendix is not at hand): on the coupled pair
    g = mu/2 y^2 - c x y, f = M y + a/2 x^2 with c = sqrt(L (L - mu)), ITD's estimate with N inner GD
    steps (step alpha, any y_0 held independent of x) is grad Phi(x) - (c/mu)(1 - alpha mu)^N M, a
    constant bias; so for every K >= 1, beta a <= 1 and x_0 = 0,
    ||grad Phi(x_K)||^2 >= c^2 M^2 (1 - alpha mu)^(2N)/mu^2 = L (L - mu) M^2 (1 - alpha mu)^(2N)/mu^2.
    With L >= 2 mu this is >= (1/2) L^2 M^2 (1 - alpha mu)^(2N)/mu^2: Theorem 4's order, constant 1/2.
    """
    L, mu, M, alpha, N = _itd(L, mu, M, alpha, N)
    return L * (L - mu) * M**2 * (1 - alpha * mu) ** (2 * N) / mu**2


def itd_gradient_trajectory(L, mu, M, a, alpha, beta, N, K, x0=0.0) -> list[float]:
    """Exact ITD-BiO hypergradients grad Phi(x_k), k = 0..K, on our construction, as their coordinate on
    the coupled direction (the only non-zero one when x_0 lies on it; ``x0`` is that coordinate).

    Outer GD x_{k+1} = x_k - beta (grad Phi(x_k) - e), grad Phi(x) = a x + u, u = c M/mu, bias
    e = c (1 - alpha mu)^N M/mu, so grad Phi(x_k) = e + (1 - beta a)^k (a x_0 + u - e).
    """
    L, mu, M, alpha, N = _itd(L, mu, M, alpha, N)
    a, beta, K = pos("a", a), pos("beta", beta), count("K", K, minimum=0)
    x0 = float(x0)
    c = (L * (L - mu)) ** 0.5
    u = c * M / mu
    e = u * (1 - alpha * mu) ** N
    r = 1.0 - beta * a
    return [e + r**k * (a * x0 + u - e) for k in range(K + 1)]


@bound("loops22.itd_trajectory", "ours: exact ITD-BiO trajectory on the itd-lower-bound construction",
       "exact",
       "||grad Phi(x_k)||^2 = (c M/mu)^2 [q^N + (1 - beta a)^k (1 - q^N)]^2 from x_0 = 0, c^2 = L (L - mu)")
def itd_trajectory(L, mu, M, a, alpha, beta, N, K, x0=0.0) -> list[float]:
    """||grad Phi(x_k)||^2 for k = 0..K of ITD-BiO on our construction (see :func:`itd_gradient_trajectory`).
    With x_0 = 0 and 0 < beta a <= 1 every term is >= :func:`itd_floor` and tends to it as k grows."""
    return [gk * gk for gk in itd_gradient_trajectory(L, mu, M, a, alpha, beta, N, K, x0)]


class ItdFixedPoint(NamedTuple):
    """The fixed point of warm-started ITD-BiO on a quadratic instance (:func:`itd_quadratic_fixed_point`):
    ``x_hat`` (dim_x,), ``grad_phi`` = grad Phi(x_hat), ``G`` the Jacobian of x -> ITD estimate at
    (x, y*(x)) (its fixed-point equation is G x_hat + h = 0), ``H_phi`` the Hessian of Phi."""

    x_hat: np.ndarray
    grad_phi: np.ndarray
    G: np.ndarray
    H_phi: np.ndarray


def itd_quadratic_fixed_point(A, B, e, Fxx, Fxy, Fyy, fx, fy, alpha, N) -> ItdFixedPoint:
    """Fixed point of ITD-BiO with warm start (Loops Alg. 2) on a quadratic bilevel instance (ours).

    Instance: g(x, y) = 1/2 y'Ay - y'(Bx + e) (+ terms free of y), A symmetric with spectrum in [mu, L];
    f quadratic: grad_x f = Fxx x + Fxy y + fx, grad_y f = Fxy' x + Fyy y + fy. Shapes: A (dy, dy),
    B (dy, dx), e (dy,), Fxx (dx, dx), Fxy (dx, dy), Fyy (dy, dy), fx (dx,), fy (dy,).

    Derivation. N GD steps of size alpha from y^0 give y^N = P y^0 + (I - P) y*(x), P = (I - alpha A)^N,
    y*(x) = S x + s with S = A^-1 B, s = A^-1 e; ITD differentiates y^N through the N steps only (y^0
    held fixed), d y^N/dx = (I - P) S, so its estimate is grad_x f(x, y^N) + S'(I - P) grad_y f(x, y^N)
    (A, P commute). A fixed point (x^, y^) of the warm-started iteration (y_k^0 = y_{k-1}^N,
    x_{k+1} = x_k - beta est) has y^ = P y^ + (I - P) y*(x^), i.e. y^ = y*(x^) (I - P is invertible:
    0 < alpha <= 1/L gives 0 <= 1 - alpha a_i <= 1 - alpha mu < 1), and est(x^, y*(x^)) = 0, the linear
    equation G x^ + h = 0 with
      G = Fxx + Fxy S + S'(I - P)(Fxy' + Fyy S),   h = Fxy s + fx + S'(I - P)(Fyy s + fy).
    The hypergradient there is grad Phi(x^) = grad_x f + S' grad_y f at (x^, y*(x^)) = S' P grad_y f:
    the part of the implicit term that N steps do not reach. It vanishes when grad_y f(x^, y*(x^)) = 0
    (e.g. the ``quadratic`` family, whose minimiser has y* = c: floor 0) and equals Theorem 4's order on the
    ``itd-lower-bound`` construction (where it is :func:`itd_floor`).
    """
    A, B, Fxx, Fxy, Fyy = (np.asarray(t, dtype=np.float64) for t in (A, B, Fxx, Fxy, Fyy))
    e, fx, fy = (np.asarray(t, dtype=np.float64) for t in (e, fx, fy))
    eig = np.linalg.eigvalsh(A)
    mu, L = float(eig[0]), float(eig[-1])
    if mu <= 0:
        raise ValueError(f"A must be positive definite (smallest eigenvalue {mu:.3g})")
    alpha = step("alpha", alpha, 1.0 / L, "1/L")
    N = count("N", N, minimum=1)
    dy = A.shape[0]
    P = np.linalg.matrix_power(np.eye(dy) - alpha * A, N)
    S = np.linalg.solve(A, B)
    s = np.linalg.solve(A, e)
    St = S.T
    W = St @ (np.eye(dy) - P)
    G = Fxx + Fxy @ S + W @ (Fxy.T + Fyy @ S)
    h = Fxy @ s + fx + W @ (Fyy @ s + fy)
    x_hat = -np.linalg.solve(G, h)
    y_hat = S @ x_hat + s
    grad_phi = Fxx @ x_hat + Fxy @ y_hat + fx + St @ (Fxy.T @ x_hat + Fyy @ y_hat + fy)
    H_phi = Fxx + Fxy @ S + St @ (Fxy.T + Fyy @ S)
    return ItdFixedPoint(x_hat, grad_phi, G, H_phi)


@bound("loops22.itd_quadratic_floor", "ours: exact floor of warm-started ITD-BiO (Loops Alg. 2) on a quadratic "
       "instance, the linear fixed point of its outer iteration", "exact",
       "||grad Phi(x^)||^2 = ||S'P grad_y f(x^, y*(x^))||^2, G x^ + h = 0 (see itd_quadratic_fixed_point)")
def itd_quadratic_floor(A, B, e, Fxx, Fxy, Fyy, fx, fy, alpha, N) -> float:
    """||grad Phi(x^)||^2 at the fixed point x^ of ITD-BiO with warm start on a quadratic instance
    (:func:`itd_quadratic_fixed_point`): the value ||grad Phi(x_k)||^2 settles at when the outer iteration
    converges (every K-independent error ITD keeps). On the ``itd-lower-bound`` construction it equals
    :func:`itd_floor`."""
    gp = itd_quadratic_fixed_point(A, B, e, Fxx, Fxy, Fyy, fx, fy, alpha, N).grad_phi
    return float(gp @ gp)
