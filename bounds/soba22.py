"""Bounds of the SOBA framework: SOBA and SABA (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022) and SRBA with its lower
bound (Dagreou, Moreau, Vaiter, Ablin, AISTATS 2024).

Source: the research notes ``shared/papers/modern-solvers.md`` (grades [R] read in the paper, [M] recalled). The
notes state Lemmas 3.8/3.9, Theorems 1 and 4 as read ([R]); the appendix constants rho*, xi* of SABA and the step
constants of SRBA were not read, and SRBA's rate and lower bound are read in the abstract / a summary only, so
those are orders (kind ``order-*``, hidden constant ``c``, default 1).

Notation of the papers (this package's y is their z): d_z = ||z - z*(x)||^2, d_v = ||v - v*(x)||^2 with
v* = -[grad^2_11 G]^-1 grad_1 F; V_z, V_v, V_x the second moments E||D_z||^2, E||D_v||^2, E||D_x||^2 of the
directions at the state (one sample pair); mu_G the strong convexity of G in z; L* a Lipschitz constant of the
solution maps x -> z*(x), v*(x); L^F the smoothness of F; L^G_11 the Lipschitz constant of grad^2_11 G.
"""

from __future__ import annotations

import math

from ._common import bound, count, nonneg, pos, theta

__all__ = ["lemma38", "lemma39", "b_vz", "thm1", "thm1_steps", "thm4", "thm4_rate", "srba_upper", "srba_lower",
           "THM1_EXPONENT", "SRBA_EXPONENT"]

#: exponent of T in SOBA Theorem 1's rate: (1/T) sum E||grad h||^2 = O(T^(-2/5))
THM1_EXPONENT = -0.4
#: exponent of n + m in SRBA's oracle complexity O((n + m)^(1/2) eps^-1)
SRBA_EXPONENT = 0.5


def _steps(rho, gamma, mu_G):
    rho, gamma, mu_G = pos("rho", rho), nonneg("gamma", gamma), pos("mu_G", mu_G)
    return rho, gamma, mu_G


@bound("soba22.lemma3.8", "SOBA, Dagreou et al. NeurIPS 2022, Lemma 3.8 (one step of the inner variable)", "upper",
       "E d_z+ <= (1 - rho mu_G/2) d_z + 2 rho^2 V_z + 4 (L*^2/mu_G)(gamma^2/rho) V_x")
def lemma38(d_z, rho, gamma, mu_G, L_star, V_z, V_x) -> float:
    """SOBA Lemma 3.8 [R]: the expected distance of the next inner iterate to z*(x+) after one step with steps
    (rho, gamma), given the state's d_z and the second moments V_z, V_x of the directions. One step of the proof
    (expand ||z - rho D_z - z*(x)||^2, strong convexity of G, Young's inequality on the move of z*(x) by at most
    L* gamma ||D_x||) holds for any state once rho mu_G <= 1, so the bound is checked conditionally on a state."""
    rho, gamma, mu_G = _steps(rho, gamma, mu_G)
    d_z, L_star, V_z, V_x = nonneg("d_z", d_z), nonneg("L_star", L_star), nonneg("V_z", V_z), nonneg("V_x", V_x)
    return (1 - rho * mu_G / 2) * d_z + 2 * rho**2 * V_z + 4 * (L_star**2 / mu_G) * (gamma**2 / rho) * V_x


@bound("soba22.lemma3.9.b_vz", "SOBA, Dagreou et al. NeurIPS 2022, Lemma 3.9 (constant of the d_z term)",
       "parameter", "b_vz = (L^F mu_G + L^G_11)^2 / mu_G^3")
def b_vz(L_F, L11_G, mu_G) -> float:
    """The coupling constant b_vz of SOBA Lemma 3.9 [R]: how much the inner error d_z feeds the error of v."""
    L_F, L11_G, mu_G = nonneg("L_F", L_F), nonneg("L11_G", L11_G), pos("mu_G", mu_G)
    return (L_F * mu_G + L11_G) ** 2 / mu_G**3


@bound("soba22.lemma3.9", "SOBA, Dagreou et al. NeurIPS 2022, Lemma 3.9 (one step of the linear-system variable)",
       "upper", "E d_v+ <= (1 - rho mu_G/4) d_v + rho b_vz d_z + 2 rho^2 V_v + 8 (L*^2/mu_G)(gamma^2/rho) V_x")
def lemma39(d_v, d_z, rho, gamma, mu_G, L_star, L_F, L11_G, V_v, V_x) -> float:
    """SOBA Lemma 3.9 [R] with b_vz of :func:`b_vz`: the expected distance of the next v to v*(x+) after one
    step, given the state's d_v, d_z and the second moments V_v, V_x of the directions."""
    rho, gamma, mu_G = _steps(rho, gamma, mu_G)
    d_v, d_z = nonneg("d_v", d_v), nonneg("d_z", d_z)
    L_star, V_v, V_x = nonneg("L_star", L_star), nonneg("V_v", V_v), nonneg("V_x", V_x)
    return ((1 - rho * mu_G / 4) * d_v + rho * b_vz(L_F, L11_G, mu_G) * d_z + 2 * rho**2 * V_v
            + 8 * (L_star**2 / mu_G) * (gamma**2 / rho) * V_x)


@bound("soba22.thm1", "SOBA, Dagreou et al. NeurIPS 2022, Theorem 1 (constant steps; order only, hidden constant c)",
       "order-upper", "(1/T) sum_{t<T} E||grad h(x_t)||^2 <= c T^(-2/5)")
def thm1(T, c=1.0) -> float:
    """SOBA Theorem 1 [R]: with rho = T^-2/5, gamma = T^-3/5 (T large enough for the step conditions), the
    averaged squared hypergradient norm over T steps is O(T^-2/5); the theorem's constant (initial gap, variances,
    smoothness) is the hidden ``c``."""
    return theta(c) * count("T", T, minimum=1) ** THM1_EXPONENT


@bound("soba22.thm1.steps", "SOBA, Dagreou et al. NeurIPS 2022, Theorem 1 (its step sizes)", "parameter",
       "rho = c_rho T^(-2/5), gamma = c_gamma T^(-3/5) (c_rho = c_gamma = 1 in the theorem)")
def thm1_steps(T, c_rho=1.0, c_gamma=1.0) -> tuple[float, float]:
    """SOBA Theorem 1's constant steps for a horizon of T steps [R]: (rho, gamma)."""
    T = count("T", T, minimum=1)
    return pos("c_rho", c_rho) * T**-0.4, pos("c_gamma", c_gamma) * T**-0.6


@bound("saba22.thm4", "SABA, Dagreou et al. NeurIPS 2022, Theorem 4 (PL: linear convergence)", "upper",
       "E h(x_T) - h* <= (1 - gamma mu_h/4)^T (h(x_0) - h* + C_0), C_0 = 0 for z_0 = z*(x_0), v_0 = v*(x_0) "
       "and every memory at y_0")
def thm4(T, gamma, mu_h, gap0, C0=0.0) -> float:
    """SABA Theorem 4 [R] for gamma <= min(rho xi*, 1/(8 L^h)) (xi*, rho* in the appendix, not read)."""
    T = count("T", T, minimum=0)
    q = 1 - pos("gamma", gamma) * pos("mu_h", mu_h) / 4
    if q <= 0:
        raise ValueError(f"gamma mu_h/4 = {1 - q:.6g} >= 1: outside Theorem 4 (gamma <= 1/(8 L^h) <= 1/(8 mu_h))")
    return q**T * (nonneg("gap0", gap0) + nonneg("C0", C0))


@bound("saba22.thm4.rate", "SABA, Dagreou et al. NeurIPS 2022, Theorem 4 (its rate per step)", "rate",
       "-ln(1 - gamma mu_h/4) per step: the exponential decay rate of the bound")
def thm4_rate(gamma, mu_h) -> float:
    """The decay rate per step of SABA Theorem 4's bound, -ln(1 - gamma mu_h/4) [R]."""
    q = 1 - pos("gamma", gamma) * pos("mu_h", mu_h) / 4
    if q <= 0:
        raise ValueError("gamma mu_h/4 >= 1: outside Theorem 4")
    return -math.log(q)


@bound("srba24.upper", "SRBA, Dagreou et al. AISTATS 2024, abstract (order only, hidden constant c)", "order-upper",
       "oracle calls to E||grad h||^2 <= eps: c (n + m)^(1/2) eps^-1")
def srba_upper(n, m, eps, c=1.0) -> float:
    """SRBA's oracle complexity O((n + m)^1/2 eps^-1) [R abstract], squared eps (E||grad h||^2 <= eps)."""
    return theta(c) * (count("n", n, minimum=1) + count("m", m, minimum=1)) ** SRBA_EXPONENT / pos("eps", eps)


@bound("srba24.lower", "Dagreou et al. AISTATS 2024, lower bound for bilevel ERM (order only, hidden constant c)",
       "order-lower", "oracle calls to E||grad h||^2 <= eps: at least c m^(1/2) eps^-1 on the worst instance")
def srba_lower(m, eps, c=1.0) -> float:
    """The Omega(m^1/2 eps^-1) lower bound [R summary] (m upper-level samples, squared eps): it holds on the
    paper's hard instances, which were not read, so on other instances it is shown, not judged."""
    return theta(c) * count("m", m, minimum=1) ** 0.5 / pos("eps", eps)
