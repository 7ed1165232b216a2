"""Bounds and orders of the modern stochastic solvers of claims-modern.md: BSA (Ghadimi and Wang 2018, arXiv
1802.02246), TTSA (Hong, Wai, Wang, Yang, SIAM J. Optim. 2023), MRBO and VRBO (Yang, Ji, Liang, NeurIPS 2021).

The originals of BSA and TTSA could not be read; what is known of them is graded in
``papers/bsa-ttsa-parameters.md``: [ORIG] the original's abstract, [SEC] restated by a later paper (ALSET = Chen,
Sun, Yin 2021, Table 1; Huang et al., "Enhanced bilevel optimization via Bregman distance", Lemma 3, restating
TTSA's Lemma 11), [INF] derived from those, [UNV] recalled and not found. MRBO/VRBO: ``papers/modern-solvers.md``,
[R] read (via later papers' tables), [M] recalled. Where only an order is known, the function is of kind
``order-*`` and takes the hidden constant ``c`` (default 1); its exponent is the attribute ``exponent`` (of the
variable named by ``variable``: '1/eps' or 'K') so that a claim reads the exponent here instead of retyping it,
and ``log_hidden`` says whether the paper writes O~. eps is squared throughout (E||grad Phi||^2 <= eps).

Notation of the randomized truncated Neumann estimator (BSA Alg. 3, TTSA's estimator): L = L_g the curvature
bound that scales the factors (eta = 1/L; the per-sample curvature where a sample exceeds the mean's), mu = mu_g,
b the number of terms, p uniform on {0, ..., b-1}, H = E H_i the mean lower-level Hessian.
"""

from __future__ import annotations

import math

import torch

from ._common import bound, count, nonneg, pos, theta

__all__ = ["neumann_mean", "bias_bound", "bias_exact", "bsa_samples_f", "bsa_samples_g", "ttsa_rate",
           "ttsa_samples", "mrbo_samples", "vrbo_samples", "order_exponent"]


def _order(name: str, source: str, statement: str, exponent: float, variable: str = "1/eps",
           log_hidden: bool = False):
    """``bound`` of kind order-upper, recording the exponent of ``variable`` the order states."""
    def deco(fn):
        fn = bound(name, source, "order-upper", statement)(fn)
        fn.exponent, fn.variable, fn.log_hidden = float(exponent), variable, log_hidden
        return fn
    return deco


def order_exponent(fn) -> float:
    """The exponent an order bound states (``fn.exponent``)."""
    return float(fn.exponent)


# ---------------------------------------------------------------------- the randomized Neumann estimator
def _powers_sum(H: torch.Tensor, v: torch.Tensor, eta: float, b: int) -> torch.Tensor:
    """eta sum_{j<b} (I - eta H)^j v by the recursion u_{j+1} = (I - eta H) u_j (batched (R, d, d), (R, d))."""
    u, acc = v, torch.zeros_like(v)
    for _ in range(b):
        acc = acc + u
        u = u - eta * torch.einsum("rij,rj->ri", H, u)
    return eta * acc


@bound("bsa18.neumann.mean", "Ghadimi and Wang 2018, Alg. 3 [SEC: Huang et al. Lemma 3 = TTSA Lemma 11; INF]",
       "exact", "E[(b/L) prod_{i=1}^{p} (I - H_i/L)] v = (1/L) sum_{j=0}^{b-1} (I - H/L)^j v, p ~ U{0..b-1}, "
       "H_i independent with mean H")
def neumann_mean(H, v, eta, b) -> torch.Tensor:
    """The exact expectation of the randomized truncated Neumann estimator applied to v: with p uniform on
    {0..b-1} and independent factors, E[b eta prod_{i<=p} (I - eta H_i)] = b eta (1/b) sum_p (I - eta H)^p. H (R, d, d),
    v (R, d), eta = 1/L > 0, b >= 1 terms."""
    return _powers_sum(H, v, pos("eta", eta), count("b", b, minimum=1))


@bound("bsa18.bias", "Ghadimi and Wang 2018 (BSA) [SEC: Huang et al. Lemma 3 = TTSA (Hong et al.) Lemma 11]",
       "upper", "||E h(x, y) - grad-bar f(x, y)|| <= (C_gxy C/mu)(1 - mu/L)^b")
def bias_bound(C_gxy, C, mu, L, b) -> float:
    """Bias of the hypergradient estimate h = grad_x F - grad_xy G v, v the randomized Neumann estimate with b
    terms, against grad-bar f(x, y) = grad_x f - grad_xy g [grad_yy g]^-1 grad_y f at the same point (= grad Phi(x)
    at y = y*(x)): C_gxy >= ||E grad_xy G||, C >= ||grad_y f||, mu <= lambda_min(H), L >= every sample's curvature
    (so that every factor contracts; the notes' [INF] reading where a sample exceeds the mean's L_g). Follows from
    E v = H^-1 (I - (I - H/L)^b) grad_y f and ||H^-1 (I - H/L)^b|| <= (1 - mu/L)^b/mu."""
    mu, L = pos("mu", mu), pos("L", L)
    if mu > L:
        raise ValueError(f"mu must be <= L={L}, got {mu}")
    return nonneg("C_gxy", C_gxy) * nonneg("C", C) / mu * (1.0 - mu / L) ** count("b", b, minimum=0)


@bound("bsa18.bias.exact", "Ghadimi and Wang 2018 (BSA), the estimator's exact mean [INF from Alg. 3]", "exact",
       "E h - grad-bar f = J H^-1 (I - H/L)^b grad_y f, J = E grad_xy G (as the map v -> grad_x grad_y g v)")
def bias_exact(H, J, gy, eta, b) -> torch.Tensor:
    """The exact bias vector E h(x, y) - grad-bar f(x, y) on an instance: J H^-1 (I - eta H)^b gy, with H (R, d, d) the
    mean Hessian, J (R, dx, d) the mean cross derivative (J v = grad_x grad_y g v), gy = grad_y f (R, d). (The
    estimator's mean is grad_x f - J eta sum_{j<b} (I - eta H)^j gy and eta sum_{j<b} (I - eta H)^j = H^-1 (I -
    (I - eta H)^b).)"""
    eta, b = pos("eta", eta), count("b", b, minimum=0)
    u = gy
    for _ in range(b):
        u = u - eta * torch.einsum("rij,rj->ri", H, u)
    w = torch.linalg.solve(H, u.unsqueeze(-1)).squeeze(-1)
    return torch.einsum("rij,rj->ri", J, w)


# ---------------------------------------------------------------------- orders (sample complexities, rates)
@_order("bsa18.samples_f", "Ghadimi and Wang 2018, BSA complexity [SEC: ALSET Table 1; ICML 2021 Table 2]",
        "upper-level samples to E||grad Phi||^2 <= eps: O(eps^-2) at fixed kappa", 2.0)
def bsa_samples_f(eps, c=1.0) -> float:
    """Upper-level (F) samples of BSA to E||grad Phi(x_R)||^2 <= eps, x_R uniform among the N = Theta(eps^-2)
    iterates, one F sample per outer step [SEC]; the constant of GW18's theorem is NOT FOUND (``c``)."""
    return theta(c) * pos("eps", eps) ** -2


@_order("bsa18.samples_g", "Ghadimi and Wang 2018, BSA complexity [SEC: ALSET Table 1; ICML 2021 Table 2]",
        "lower-level samples to E||grad Phi||^2 <= eps: O(eps^-3) at fixed kappa", 3.0)
def bsa_samples_g(eps, c=1.0) -> float:
    """Lower-level (G) samples of BSA: t_k = Theta(eps^-1) SGD samples in each of the N = Theta(eps^-2) outer
    steps (the Neumann estimate adds O(kappa log N) per step, of lower order) [SEC]; constant NOT FOUND (``c``)."""
    return theta(c) * pos("eps", eps) ** -3


@_order("ttsa20.rate", "Hong, Wai, Wang, Yang 2020/2023, TTSA, nonconvex outer problem [ORIG abstract v3+; SEC]",
        "(1/K) sum_{k<K} E||grad Phi(x_k)||^2 = O(K^-2/5) with alpha ~ K^-3/5 (x), beta ~ K^-2/5 (y)", -0.4,
        variable="K")
def ttsa_rate(K, c=1.0) -> float:
    """TTSA's stationarity after K iterations with constant steps of orders K^-3/5 (x) and K^-2/5 (y); the
    constants c_alpha, c_beta and their conditions were NOT FOUND ([UNV]): only the exponent is checked."""
    return theta(c) * count("K", K, minimum=1) ** -0.4


@_order("ttsa20.samples", "Hong, Wai, Wang, Yang, TTSA [ORIG abstract; SEC: ALSET Table 1, ICML 2021 Table 2]",
        "samples at both levels to E||grad Phi||^2 <= eps: O(eps^-5/2) (K = O(eps^-5/2) single-sample iterations)",
        2.5)
def ttsa_samples(eps, c=1.0) -> float:
    """Samples of TTSA at either level: K = O(eps^-5/2) iterations of O(1) samples (the Neumann estimate's
    Theta(kappa log K) Hessian samples per step [INF] add a log factor to the lower level)."""
    return theta(c) * pos("eps", eps) ** -2.5


@_order("mrbo21.samples", "Yang, Ji, Liang, NeurIPS 2021, MRBO [R via later papers' tables; constants M]",
        "samples to E||grad Phi||^2 <= eps: O~(eps^-1.5) at fixed kappa (O(1) batches, O~(eps^-1.5) iterations, "
        "Q = Theta(kappa log 1/eps) Hessian samples per estimate)", 1.5, log_hidden=True)
def mrbo_samples(eps, c=1.0) -> float:
    """MRBO's sample complexity; the log factor is the Neumann series' Q = Theta(kappa log(1/eps)) (``c`` the
    hidden constant, not available)."""
    e = pos("eps", eps)
    return theta(c) * e ** -1.5 * max(math.log(1.0 / e), 1.0)


@_order("vrbo21.samples", "Yang, Ji, Liang, NeurIPS 2021, VRBO [R via later papers' tables; constants M]",
        "samples to E||grad Phi||^2 <= eps: O~(eps^-1.5) at fixed kappa (restart batch S1 = O(eps^-1) every "
        "q = O(eps^-1/2) steps, small batches S2 = O(eps^-1/2), K = O(eps^-1) outer steps)", 1.5, log_hidden=True)
def vrbo_samples(eps, c=1.0) -> float:
    """VRBO's sample complexity: K (S1/q + m S2) = O(eps^-1.5) for m inner steps independent of eps (O~: the
    Neumann series' Q = Theta(kappa log 1/eps))."""
    e = pos("eps", eps)
    return theta(c) * e ** -1.5 * max(math.log(1.0 / e), 1.0)
