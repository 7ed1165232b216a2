"""Bounds of Ji, Yang, Liang, "Bilevel Optimization: Convergence Analysis and Enhanced Design", ICML 2021.

Notation as in the paper: L_Phi of Theorem 1 (= arXiv Lemma 2, eq. (11)); D inner steps, N CG steps;
stocBiO's v_Q (Algorithm 3, eq. (5)) with Q Neumann steps of size eta and batches B_j; S, D_g, D_f batch
sizes. The ICML paper prints no appendix, so where a statement is an order (Theorems 3 and 4) the
function takes the hidden constant ``c`` (default 1) and says so.
"""

from __future__ import annotations

from bilevelbench.analytic.base import Constants

from ._common import bound, check_kappa, count, nonneg, pos, step, strong_convexity, theta
from .arxiv20 import _stationarity, lemma2_L_phi

__all__ = [
    "L_phi",
    "L_phi_c",
    "thm1_bound",
    "thm2_bound",
    "prop3_bias",
    "prop3_mse",
    "prop3_batch_sizes",
    "prop3_min_B",
    "prop3_total_samples",
    "uniform_total_samples",
    "thm3_floor",
    "thm4_bound",
]


def L_phi(L, mu, M, tau, rho) -> float:
    """L_Phi of ICML Theorem 1 (identical to arXiv Lemma 2, eq. (11), as printed)."""
    return lemma2_L_phi(L, mu, M, tau, rho)


def L_phi_c(c: Constants) -> float:
    """L_Phi of ICML Theorem 1 with the constants of a problem."""
    return L_phi(c.L, c.mu, c.M, c.tau, c.rho)


@bound("icml21.thm1.bound", "ICML Theorem 1 (AID-BiO)", "upper",
       "(1/K) sum_k ||grad Phi(x_k)||^2 <= (64 L_Phi (Phi(x_0) - inf Phi) + 5 Delta_0)/K,"
       " Delta_0 = ||y_0 - y*(x_0)||^2 + ||v*_0 - v_0||^2")
def thm1_bound(K, L_phi, phi_gap, Delta0) -> float:
    """Right-hand side of ICML Theorem 1: AID-BiO with alpha <= 1/L, beta = 1/(8 L_Phi), D >= Theta(kappa)
    inner steps and N >= Theta(sqrt kappa) CG steps, warm starts."""
    K = count("K", K, minimum=1)
    return (64 * pos("L_phi", L_phi) * nonneg("phi_gap", phi_gap) + 5 * nonneg("Delta0", Delta0)) / K


@bound("icml21.thm2.bound", "ICML Theorem 2 (ITD-BiO)", "upper",
       "(1/K) sum_k ||grad Phi(x_k)||^2 <= 16 L_Phi (Phi(x_0) - inf Phi)/K + 2 eps/3")
def thm2_bound(K, L_phi, phi_gap, eps) -> float:
    """Right-hand side of ICML Theorem 2: ITD-BiO with alpha <= 1/L, beta = 1/(4 L_Phi) and
    D >= Theta(kappa log 1/eps) (D is arXiv Theorem 1's T: :func:`bilevelbench.bounds.arxiv20.thm1_T`)."""
    return _stationarity(K, L_phi, phi_gap, eps, 16.0)


def _neumann(L, mu, eta, Q):
    L, mu = strong_convexity(L, mu)
    return L, mu, step("eta", eta, 1.0 / L, "1/L"), count("Q", Q, minimum=0)


@bound("icml21.prop3.bias", "ICML Proposition 3, eq. (7)", "upper",
       "||E v_Q - [grad_yy g]^-1 grad_y f|| <= (1 - eta mu)^(Q+1) M/mu")
def prop3_bias(L, mu, M, eta, Q) -> float:
    """Bias of stocBiO's v_Q (Algorithm 3) with eta <= 1/L, ICML Proposition 3, eq. (7)."""
    L, mu, eta, Q = _neumann(L, mu, eta, Q)
    return (1.0 - eta * mu) ** (Q + 1) * nonneg("M", M) / mu


@bound("icml21.prop3.mse", "ICML Proposition 3, eq. (8)", "upper",
       "E||v_Q - [grad_yy g]^-1 grad_y f||^2 <= 4 eta^2 L^2 M^2/(mu^2 B) + 4 (1-eta mu)^(2Q+2) M^2/mu^2"
       " + 2 M^2/(mu^2 D_f)")
def prop3_mse(L, mu, M, eta, Q, B, D_f) -> float:
    """Mean squared error of v_Q with |B_{Q+1-j}| = B Q (1 - eta mu)^(j-1), ICML Proposition 3, eq. (8)."""
    L, mu, eta, Q = _neumann(L, mu, eta, Q)
    M, B, D_f = nonneg("M", M), pos("B", B), count("D_f", D_f, minimum=1)
    return (4 * eta**2 * L**2 * M**2 / (mu**2 * B) + 4 * (1.0 - eta * mu) ** (2 * Q + 2) * M**2 / mu**2
            + 2 * M**2 / (mu**2 * D_f))


def prop3_batch_sizes(B, Q, eta, mu) -> list[float]:
    """|B_i| for i = 1..Q of ICML Proposition 3: |B_{Q+1-j}| = B Q (1 - eta mu)^(j-1), i.e. the batch used
    last in Algorithm 3's backward loop is the largest (real numbers, >= 1 under the hypothesis
    B >= 1/(Q (1 - eta mu)^(Q-1)), which is checked)."""
    from .arxiv20 import prop4_batch_sizes

    return prop4_batch_sizes(B, Q, eta, mu)[::-1]


@bound("icml21.prop3.B_min", "ICML Proposition 3 (hypothesis on B; arXiv Proposition 4 has the same)", "parameter",
       "B >= 1/(Q (1 - eta mu)^(Q-1)), so that every batch B Q (1 - eta mu)^(j-1) has at least one sample")
def prop3_min_B(Q, eta, mu) -> float:
    """The smallest batch scale B Proposition 3 allows: 1/(Q (1 - eta mu)^(Q-1)) (its smallest batch, j = Q, is
    then exactly one sample). Requires Q >= 1 and eta mu < 1."""
    Q, eta, mu = count("Q", Q, minimum=1), pos("eta", eta), pos("mu", mu)
    if eta * mu >= 1:
        raise ValueError(f"eta must be < 1/mu = {1 / mu:.6g}, got {eta}")
    return 1.0 / (Q * (1.0 - eta * mu) ** (Q - 1))


@bound("icml21.prop3.samples", "ICML Proposition 3 (remark after eq. (8))", "exact",
       "sum_j B Q (1 - eta mu)^(j-1) = B Q (1 - (1 - eta mu)^Q)/(eta mu)")
def prop3_total_samples(B, Q, eta, mu) -> float:
    """Hessian samples of one v_Q with the exponentially decaying schedule of Proposition 3 (before rounding
    the batch sizes up); O(eps^-1 log 1/eps) with Q = O(log 1/eps), B = O(1/eps)."""
    return float(sum(prop3_batch_sizes(B, Q, eta, mu)))


@bound("icml21.prop3.samples.uniform", "ICML Proposition 3 (remark: uniform batches)", "exact",
       "Q b samples with |B_j| = b for all j")
def uniform_total_samples(b, Q) -> float:
    """Hessian samples of one v_Q with Q equal batches of size b (the paper's comparison: the same bias and
    variance then need b = O(eps^-1 log 1/eps), so O(eps^-1 log^2 1/eps) samples in all)."""
    return float(count("Q", Q, minimum=1) * pos("b", b))


@bound("icml21.thm3.floor", "ICML Theorem 3, eq. (9) (order only; hidden constant c)", "order-upper",
       "(1/K) sum E||grad Phi||^2 <= c (L_Phi/K + kappa^2 (1-eta mu)^(2Q) + kappa^5 sigma^2/S + kappa^2/D_g"
       " + kappa^2/D_f + kappa^2/B)")
def thm3_floor(K, L_phi, kappa, eta, mu, Q, sigma2, S, D_g, D_f, B, c=1.0) -> float:
    """stocBiO's bound eq. (9), O(.) with its hidden constant ``c`` (default 1; the paper gives none;
    arXiv Theorem 2, eq. (8), is the explicit version: :func:`bilevelbench.bounds.arxiv20.thm2_bound`)."""
    K = count("K", K, minimum=1)
    kappa = check_kappa(kappa)
    eta, mu = pos("eta", eta), pos("mu", mu)
    if eta * mu > 1:
        raise ValueError(f"eta must be <= 1/mu = {1 / mu:.6g}, got {eta}")
    Q = count("Q", Q, minimum=0)
    S, D_g, D_f = (count(n, v, minimum=1) for n, v in (("S", S), ("D_g", D_g), ("D_f", D_f)))
    B = pos("B", B)
    k2 = kappa**2
    return theta(c) * (pos("L_phi", L_phi) / K + k2 * (1 - eta * mu) ** (2 * Q)
                       + kappa**5 * nonneg("sigma2", sigma2) / S + k2 / D_g + k2 / D_f + k2 / B)


@bound("icml21.thm4", "ICML Theorem 4 (meta-learning with task sampling; order only, hidden constant c)",
       "order-upper", "(1/K) sum E||grad Phi||^2 <= c (1/K + kappa^2/|B|)")
def thm4_bound(K, kappa, batch, c=1.0) -> float:
    """ICML Theorem 4: O(1/K + kappa^2/|B|) with its hidden constant ``c`` (default 1)."""
    K, batch = count("K", K, minimum=1), count("batch", batch, minimum=1)
    return theta(c) * (1.0 / K + check_kappa(kappa) ** 2 / batch)

