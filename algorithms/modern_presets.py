"""Presets of the modern solvers (SOBA, SABA, SRBA, FSLA, AmIGO, F2SA, F2BA, F2SA-p, MRBO, VRBO): a theory preset
per theorem and a practical preset, computed from a problem's constants.

Grades of what a preset encodes (``papers/modern-solvers.md``): [R] read in the paper, [C] read in public code,
[M] recalled (the theorem's text was not available), [D] derived, "ours" a choice of this package. Where a
theorem states a quantity only as an order, or its constant was not available ([M] / not found), the preset
takes the constant as an argument ``c_*`` (default 1 unless said otherwise) and the docstring says so; no
invented constant is presented as the paper's.

Practical presets ("practical") are ours: steps scaled by the problem's constants so that one preset means
the same on every instance (inner steps c/L_sample_yy; outer steps a two-time-scale ratio mu/L_h below the
inner ones: on a quadratic the y and v errors contract by 1 - rho mu per step while y*(x) moves by up to
L_star gamma ||D_x||, and we measured SOBA's deterministic dynamics unstable at gamma ~ 2 rho mu/L_h and stable
at gamma ~ rho mu/(2 L_h)), batch 64, 10 inner steps. "peer" presets are the public benchmark's defaults
(benchopt/benchmark_bilevel, solvers/*.py: step 0.1, outer_ratio 1, batch 64, 10 inner/Neumann steps,
its step schedules [C]) with the absolute steps divided by L_sample_yy (our scaling); they are what users
run, not tuned for these families, and with outer_ratio 1 they can diverge where kappa is large.

Constants read (``constants.extra`` of the finite-sum families, with the mean problem's L where a family does
not declare them): L_sample_yy (per-sample smoothness of G in y), L_h (smoothness of Phi; L_phi of Lemma 2
where not declared), L_f, mu_G = mu.
"""

from __future__ import annotations

import math

__all__ = ["SOBA_PRESETS", "SABA_PRESETS", "SRBA_PRESETS", "FSLA_PRESETS", "AMIGO_PRESETS", "F2SA_PRESETS",
           "F2BA_PRESETS", "F2SAP_PRESETS", "MRBO_PRESETS", "VRBO_PRESETS", "SOBA_CHECKS", "PENALTY_CHECKS",
           "MRBO_CHECKS"]

PEER_STEP, PEER_BATCH, PEER_INNER = 0.1, 64, 10


def _ceil(v: float) -> int:
    return max(1, math.ceil(v - 1e-12))


def _extra(problem, key: str, fallback: float) -> float:
    value = problem.constants.extra.get(key)
    return float(fallback if value is None else value)


def _L_yy(problem) -> float:
    """Per-sample smoothness of G in y (L_sample_yy), or L on a deterministic problem."""
    return _extra(problem, "L_sample_yy", problem.constants.L)


def _L_h(problem) -> float:
    """Smoothness of Phi: the family's exact L_h, or L_phi of Lemma 2 (a bound)."""
    return _extra(problem, "L_h", problem.constants.L_phi)


def _L_f(problem) -> float:
    return _extra(problem, "L_f", problem.constants.L)


def _ratio(problem) -> float:
    """mu/L_h: the two-time-scale ratio of the outer to the inner step (ours, module docstring)."""
    return problem.constants.mu / _L_h(problem)


def _n_plus_m(problem) -> int:
    return int(problem.n_g + problem.n_f) if getattr(problem, "stochastic", False) else 1


def _cap(problem, which: str, size: int) -> int:
    n = (problem.n_g if which == "g" else problem.n_f) if getattr(problem, "stochastic", False) else size
    return min(size, n)


# ---------------------------------------------------------------------- defaults (functions of the problem)
def one_over_L_sample_yy(problem) -> float:
    """1/L_sample_yy (1/L on a deterministic problem)"""
    return 1.0 / _L_yy(problem)


def peer_step(problem) -> float:
    """0.1/L_sample_yy (the public default step 0.1, scaled)"""
    return PEER_STEP / _L_yy(problem)


def soba_rho(problem) -> float:
    """0.5/L_sample_yy"""
    return 0.5 / _L_yy(problem)


def soba_gamma(problem) -> float:
    """rho mu/(2 L_h) (two-time-scale ratio, ours)"""
    return soba_rho(problem) * _ratio(problem) / 2.0


def saba_rho(problem) -> float:
    """1/(3 L_sample_yy) (SAGA's step, our stand-in for Thm 3's rho*)"""
    return 1.0 / (3.0 * _L_yy(problem))


def saba_gamma(problem) -> float:
    """min(rho mu/(2 L_h), 1/(8 L_h)) (our stand-in for Thm 3's rho xi*)"""
    return min(saba_rho(problem) * _ratio(problem) / 2.0, 1.0 / (8.0 * _L_h(problem)))


def srba_rho(problem) -> float:
    """1/(3 L_sample_yy)"""
    return saba_rho(problem)


def srba_gamma(problem) -> float:
    """min(rho mu/(2 L_h), 1/(8 L_h))"""
    return saba_gamma(problem)


def sqrt_n_plus_m(problem) -> int:
    """ceil(sqrt(n + m))"""
    return _ceil(math.sqrt(_n_plus_m(problem)))


def fsla_alpha(problem) -> float:
    """mu/(2 L_h L_sample_yy) (the inner step 1/L_sample_yy times the two-time-scale ratio)"""
    return _ratio(problem) / (2.0 * _L_yy(problem))


def amigo_gamma(problem) -> float:
    """1/(8 L_h)"""
    return 1.0 / (8.0 * _L_h(problem))


def f2sa_alpha(problem) -> float:
    """1/(lambda_0 L_sample_yy) with lambda_0 = 1"""
    return 1.0 / _L_yy(problem)


def f2sa_xi(problem) -> float:
    """mu/(2 L_h) (the x step xi alpha_k at the two-time-scale ratio of the y step, with lambda_0 = 1)"""
    return _ratio(problem) / 2.0


def f2ba_lam(problem) -> float:
    """10 L_f/mu (lambda >= 2 L_f/mu keeps f/lambda + g (mu/2)-strongly convex)"""
    k = problem.constants
    return 10.0 * _L_f(problem) / k.mu


def f2ba_eta(problem) -> float:
    """1/(8 L_h)"""
    return 1.0 / (8.0 * _L_h(problem))


def f2ba_tau(problem) -> float:
    """1/(L_f/lambda + L_sample_yy) at the default lambda"""
    return 1.0 / (_L_f(problem) / f2ba_lam(problem) + _L_yy(problem))


def f2sap_nu(problem) -> float:
    """1/(4 kappa) (inside the notes' nu <= 1/(2 kappa))"""
    return 1.0 / (4.0 * problem.constants.kappa)


def f2sap_eta(problem) -> float:
    """1/(8 L_h)"""
    return 1.0 / (8.0 * _L_h(problem))


def mrbo_c(problem) -> float:
    """10"""
    return 10.0


def mrbo_m0(problem) -> float:
    """c^(3/2) with c = 10 and t = 1, so alpha_1 = c eta_0^2 = 1"""
    return 10.0 ** 1.5


def mrbo_lam(problem) -> float:
    """mu/(2 L_h L_sample_yy) (the y scale 1/L_sample_yy times the two-time-scale ratio)"""
    return _ratio(problem) / (2.0 * _L_yy(problem))


def vrbo_alpha(problem) -> float:
    """mu/(2 L_h L_sample_yy) (the y step 1/L_sample_yy times the two-time-scale ratio)"""
    return _ratio(problem) / (2.0 * _L_yy(problem))


def vrbo_S1(problem) -> int | None:
    """None: the full objective (all n samples on a finite sum)"""
    return None


# ---------------------------------------------------------------------- SOBA, SABA, SRBA
def _soba_c(problem, c_rho, c_gamma):
    c_rho = 1.0 / _L_yy(problem) if c_rho is None else c_rho
    return c_rho, (c_rho * _ratio(problem) / 2.0 if c_gamma is None else c_gamma)


def soba22_thm1(problem, T: int = 1000, c_rho: float | None = None, c_gamma: float | None = None, S_g: int = 1,
                S_f: int = 1):
    """SOBA Thm 1 [R]: constant steps rho = T^-2/5, gamma = T^-3/5 for a horizon of T steps, one sample pair per
    step; (1/T) sum E||grad h(x_t)||^2 = O(T^-2/5). c_rho = c_gamma = 1 is the theorem's literal choice (for
    T large enough that rho <= min(mu_G/(8 L_z^2 B_z^2), mu_G/(16 L_v^2 B_v^2), 2/mu_G), with B's the
    Assumption 3.6 bounds on the directions' second moments, not computed here: only rho <= 2/mu_G is checked,
    ``SOBA_CHECKS``). The defaults are ours: c_rho = 1/L_sample_yy and c_gamma = c_rho mu/(2 L_h) (the
    two-time-scale ratio), so that moderate T already satisfies the stability the theorem assumes."""
    c_rho, c_gamma = _soba_c(problem, c_rho, c_gamma)
    return {"rho": c_rho * T ** -0.4, "gamma": c_gamma * T ** -0.6, "schedule": "constant", "variant": "paper",
            "S_g": S_g, "S_f": S_f}


def soba22_thm2(problem, c_rho: float | None = None, c_gamma: float | None = None, S_g: int = 1, S_f: int = 1):
    """SOBA Thm 2 [R]: decreasing steps rho_t = t^-2/5, gamma_t = t^-3/5 (here (t+1) from t = 0), one sample
    pair per step; c_rho = c_gamma = 1 the theorem's literal choice, defaults ours as in ``soba22_thm1``."""
    c_rho, c_gamma = _soba_c(problem, c_rho, c_gamma)
    return {"rho": c_rho, "gamma": c_gamma, "schedule": "decreasing", "variant": "paper", "S_g": S_g, "S_f": S_f}


def soba_practical(problem):
    """Ours: Thm 2's decreasing schedule with rho = 0.5/L_sample_yy, gamma = rho mu/(2 L_h), batch 64."""
    return {"rho": soba_rho(problem), "gamma": soba_gamma(problem), "schedule": "decreasing", "variant": "paper",
            "S_g": PEER_BATCH, "S_f": PEER_BATCH}


def soba_peer(problem):
    """The public benchmark's SOBA [C]: step 0.1 (here 0.1/L_sample_yy) decaying as (t+1)^-1/2 for both steps
    (variant 'public'), outer_ratio 1, batch 64."""
    s = peer_step(problem)
    return {"rho": s, "gamma": s, "schedule": "decreasing", "variant": "public", "S_g": PEER_BATCH,
            "S_f": PEER_BATCH}


def saba22_thm3(problem, c_rho: float = 1.0, c_xi: float = 1.0, S_g: int = 1, S_f: int = 1):
    """SABA Thm 3 [R]: constant rho <= rho*, gamma <= min(rho xi*, 1/(8 L^h)); O(1/T). rho* and xi* are in the
    paper's appendix, which was not read: rho = c_rho/(3 L_sample_yy) (SAGA's step for L_max-smooth
    components, Defazio et al. 2014: our stand-in for rho*) and gamma = min(c_xi rho mu/(2 L_h), 1/(8 L_h))
    (xi* replaced by the two-time-scale ratio mu/(2 L_h), ours); L_h the family's smoothness of Phi (Lemma 2's
    bound where not declared). Memories at the initial point (variant 'paper')."""
    rho = c_rho / (3.0 * _L_yy(problem))
    return {"rho": rho, "gamma": min(c_xi * rho * _ratio(problem) / 2.0, 1.0 / (8.0 * _L_h(problem))),
            "variant": "paper", "v_init": "zero", "S_g": S_g, "S_f": S_f}


def saba22_thm4(problem, c_rho: float = 1.0, c_xi: float = 1.0, S_g: int = 1, S_f: int = 1):
    """SABA Thm 4 [R] (PL): Thm 3's steps; C_0 = 0 needs z_0 = z*(x_0) (the caller's y0), v_0 = v*(x_0)
    (v_init='solve': CG on the full-batch system at (x_0, y_0)) and every memory at y_0 (variant 'paper').
    Then E h(x_T) - h* <= (1 - gamma mu_h/4)^T (h(x_0) - h*)."""
    return {**saba22_thm3(problem, c_rho, c_xi, S_g, S_f), "v_init": "solve"}


def saba_practical(problem):
    """Ours: Thm 3's steps (rho = 1/(3 L_sample_yy), gamma = min(rho mu/(2 L_h), 1/(8 L_h))), batches of 8
    distinct samples (capped at n, m), memories at the initial point."""
    return {**saba22_thm3(problem), "S_g": _cap(problem, "g", 8), "S_f": _cap(problem, "f", 8)}


def saba_peer(problem):
    """The public benchmark's SABA [C]: constant step 0.1 (here 0.1/L_sample_yy), outer_ratio 1, batch 64
    (capped at n, m: distinct samples), memories at zero (variant 'public')."""
    s = peer_step(problem)
    return {"rho": s, "gamma": s, "variant": "public", "S_g": _cap(problem, "g", PEER_BATCH),
            "S_f": _cap(problem, "f", PEER_BATCH)}


def srba24(problem, c_rho: float = 1.0, c_xi: float = 1.0, c_q: float = 1.0):
    """SRBA [R abstract: O((n + m)^1/2 eps^-1) oracle calls; step presets M]: batch sizes and restart period
    ceil(c_q sqrt(n + m)) (the SARAH/SPIDER choice that gives the (n + m)^1/2 rate, ours), steps as SABA's
    Thm 3 preset (ours: the theorem's step constants were not available)."""
    b = _ceil(c_q * math.sqrt(_n_plus_m(problem)))
    rho = c_rho / (3.0 * _L_yy(problem))
    return {"rho": rho, "gamma": min(c_xi * rho * _ratio(problem) / 2.0, 1.0 / (8.0 * _L_h(problem))),
            "S_g": b, "S_f": b, "q": b}


def srba_peer(problem):
    """The public benchmark's SRBA [C]: step 0.1 (here 0.1/L_sample_yy), batch 64, period (n + m) 0.5/64."""
    s = peer_step(problem)
    return {"rho": s, "gamma": s, "S_g": PEER_BATCH, "S_f": PEER_BATCH,
            "q": max(1, int(_n_plus_m(problem) * 0.5 / PEER_BATCH))}


SOBA_PRESETS = {"soba22.thm1": soba22_thm1, "soba22.thm2": soba22_thm2, "practical": soba_practical,
                "peer": soba_peer}
SABA_PRESETS = {"saba22.thm3": saba22_thm3, "saba22.thm4": saba22_thm4, "practical": saba_practical,
                "peer": saba_peer}
SRBA_PRESETS = {"srba24": srba24, "practical": srba24, "peer": srba_peer}


# ---------------------------------------------------------------------- FSLA, AmIGO
def fsla_practical(problem):
    """Ours: constant steps beta = eta = 1/L_sample_yy, alpha = mu/(2 L_h L_sample_yy), STORM weight 0.1,
    batch 64. FSLA's theorem and its constants were not available (notes: rate [M]): FSLA has no theory
    preset."""
    return {"alpha": fsla_alpha(problem), "beta": one_over_L_sample_yy(problem),
            "eta": one_over_L_sample_yy(problem), "rho_m": 0.1, "S": PEER_BATCH, "S_f": PEER_BATCH}


def amigo22(problem, c_T: float = 1.0, S: int = 1, S_f: int = 1):
    """AmIGO (Arbel and Mairal 2022) [R abstract: T, M constant, independent of eps; theorem constants M]:
    steps alpha = eta = 1/L_sample_yy, T = M = ceil(c_T kappa) (ours: SGD with step 1/L contracts by
    1 - 1/kappa per step, so Theta(kappa) steps give a constant contraction per outer step, what the
    amortised analysis needs), outer step 1/(8 L_h) (ours)."""
    T = _ceil(c_T * problem.constants.kappa)
    return {"alpha": one_over_L_sample_yy(problem), "eta": one_over_L_sample_yy(problem),
            "gamma": amigo_gamma(problem), "T": T, "M": T, "S": S, "S_f": S_f, "warm": True}


def amigo_practical(problem):
    """Ours: steps 1/L_sample_yy on y and z, outer step 1/(8 L_h), 10 inner steps, batch 64, warm starts."""
    return {**amigo22(problem), "T": PEER_INNER, "M": PEER_INNER, "S": PEER_BATCH, "S_f": PEER_BATCH}


def amigo_peer(problem):
    """The public benchmark's AmIGO [C]: step 0.1 (here 0.1/L_sample_yy) for y, z and x, 10 inner steps,
    batch 64, warm starts."""
    s = peer_step(problem)
    return {"alpha": s, "eta": s, "gamma": s, "T": PEER_INNER, "M": PEER_INNER, "S": PEER_BATCH,
            "S_f": PEER_BATCH, "warm": True}


FSLA_PRESETS = {"practical": fsla_practical}
AMIGO_PRESETS = {"amigo22": amigo22, "practical": amigo_practical, "peer": amigo_peer}


# ---------------------------------------------------------------------- penalty methods
def kwon23(problem, c_lam: float = 1.0, c_alpha: float = 1.0, c_gamma: float = 1.0, c_xi: float | None = None,
           T: int = 10, S: int = 1, S_f: int = 1):
    """F2SA (Kwon et al. 2023), noise in both levels: lambda_k = c_lam (k+1)^(1/7), alpha_k = c_alpha
    (k+1)^(-5/7)/(c_lam L_sample_yy), gamma_k = c_gamma (k+1)^(-4/7)/L_sample_yy, x step xi alpha_k [M/D: the
    exponents are the notes' preset; the constants are ours: the y step on f + lambda g, alpha lambda ~
    (k+1)^(-4/7)/L, stays below 1/L, and xi = c_lam mu/(2 L_h) (default) puts the x step at the two-time-scale
    ratio of the z step]; T inner steps (T [M], default 10)."""
    xi = c_lam * _ratio(problem) / 2.0 if c_xi is None else c_xi
    return {"lam0": c_lam, "lam_power": 1.0 / 7.0, "alpha": c_alpha / (c_lam * _L_yy(problem)),
            "alpha_power": 5.0 / 7.0, "gamma": c_gamma / _L_yy(problem), "gamma_power": 4.0 / 7.0, "xi": xi,
            "T": T, "variant": "paper", "S": S, "S_f": S_f}


def f2sa_practical(problem):
    """Ours: ``kwon23`` with batch 64."""
    return {**kwon23(problem), "S": PEER_BATCH, "S_f": PEER_BATCH}


def f2sa_peer(problem):
    """The public benchmark's F2SA [C]: step 0.01 (here 0.01/L_sample_yy) with exponents 5/7 (y), 4/7 (z),
    lambda_0 = 1 incremented by 0.1 (k+1)^(-1/7) (variant 'public'), 10 inner steps, batch 64. The public
    outer step 0.01 (k+1)^(-4/7) is represented as xi alpha_k with xi = 1 (exponent 5/7: the paper's form)."""
    s = 0.01 / _L_yy(problem)
    return {"lam0": 1.0, "delta": 0.1, "alpha": s, "alpha_power": 5.0 / 7.0, "gamma": s, "gamma_power": 4.0 / 7.0,
            "xi": 1.0, "T": PEER_INNER, "variant": "public", "S": PEER_BATCH, "S_f": PEER_BATCH}


def chen25(problem, eps: float = 1e-2, c_lam: float = 1.0, c_eta: float = 1.0, c_K: float = 1.0):
    """F2BA (Chen, Ma, Zhang 2025), deterministic [M: orders from the notes]: lambda = c_lam L kappa^3/eps
    (floored at 2 L_f/mu, where L*_lambda's Hessian is bounded uniformly), outer step eta = c_eta/(L kappa^3)
    independent of lambda, inner steps tau = 1/(L_f/lambda + L_sample_yy) on y and 1/L_sample_yy on z,
    K = ceil(c_K kappa ln(lambda kappa)) warm-started inner steps (ours: the contraction needed per outer
    step); unsquared eps (||grad phi|| <= eps). The constants c_* are not the paper's (not available)."""
    k = problem.constants
    lam = max(c_lam * k.L * k.kappa ** 3 / eps, 2.0 * _L_f(problem) / k.mu)
    return {"lam": lam, "eta": c_eta / (k.L * k.kappa ** 3), "tau": 1.0 / (_L_f(problem) / lam + _L_yy(problem)),
            "tau_z": one_over_L_sample_yy(problem), "K": _ceil(c_K * k.kappa * math.log(max(lam * k.kappa, math.e))),
            "variant": "paper", "S": None, "S_f": None}


def f2ba_practical(problem):
    """Ours: deterministic F2BA with lambda = 10 L_f/mu, eta = 1/(8 L_h), K = 10 (the F2BA repository's
    defaults, lmbd 10 and steps tuned for its data set [C], do not transfer across L)."""
    lam = f2ba_lam(problem)
    return {"lam": lam, "eta": f2ba_eta(problem), "tau": 1.0 / (_L_f(problem) / lam + _L_yy(problem)),
            "tau_z": one_over_L_sample_yy(problem), "K": PEER_INNER, "variant": "paper", "S": None, "S_f": None}


def chen26(problem, p: int = 2, eps: float = 1e-2, c_nu: float = 1.0, c_eta: float = 1.0, c_T: float = 1.0,
           S: int | None = None, S_f: int | None = None):
    """F2SA-p (Chen, Li, Chayti, Zhang 2026) [R: order-p difference, bias O(nu^p) for nu <= 1/(2 kappa);
    constants not read]: nu = min(c_nu eps^(1/p), 1/(2 kappa)) (bias O(eps), [D]), inner step 1/L_sample_yy,
    T = ceil(c_T kappa ln(1/eps)) inner steps (ours), outer step c_eta/(8 L_h) (ours)."""
    k = problem.constants
    return {"p": p, "nu": min(c_nu * eps ** (1.0 / p), 1.0 / (2.0 * k.kappa)),
            "gamma": one_over_L_sample_yy(problem), "eta": c_eta / (8.0 * _L_h(problem)),
            "T": _ceil(c_T * k.kappa * math.log(1.0 / eps)), "S": S, "S_f": S_f}


def f2sap_practical(problem, p: int = 2):
    """Ours: nu = 1/(4 kappa), 10 inner steps, batch 64, one batch pair shared by the nodes (common random
    numbers: the difference quotient's noise then scales with nu), outer step 1/(8 L_h)."""
    return {"p": p, "nu": f2sap_nu(problem), "gamma": one_over_L_sample_yy(problem), "eta": f2sap_eta(problem),
            "T": PEER_INNER, "S": PEER_BATCH, "S_f": PEER_BATCH, "shared_batch": True}


F2SA_PRESETS = {"kwon23": kwon23, "practical": f2sa_practical, "peer": f2sa_peer}
F2BA_PRESETS = {"chen25": chen25, "practical": f2ba_practical}
F2SAP_PRESETS = {"chen26": chen26, "practical": f2sap_practical}


# ---------------------------------------------------------------------- MRBO, VRBO
def yang21_mrbo(problem, eps: float = 1e-2, c: float = 10.0, t: float = 1.0, S: int = 1, c_Q: float = 1.0):
    """MRBO (Yang, Ji, Liang 2021) [M]: eta_k = t/(m + k)^(1/3), alpha_{k+1} = c1 eta_k^2, beta_{k+1} = c2 eta_k^2
    with c1 = c2 = c (default 10, ours: the theorem's lower bounds on c1, c2 were not available) and
    m = max(2, (c t^2)^(3/2)) so that both weights are <= 1; y scale 1/L_sample_yy, x scale mu/(2 L_h
    L_sample_yy) (two-time-scale ratio, ours), Neumann step 1/L_sample_yy and Q = ceil(c_Q kappa ln(1/eps))
    factors (bias O(eps), [D]); batch O(1)."""
    k = problem.constants
    return {"c_eta": t, "m0": max(2.0, (c * t * t) ** 1.5), "c1": c, "c2": c, "lam": mrbo_lam(problem),
            "gam": one_over_L_sample_yy(problem), "eta_h": one_over_L_sample_yy(problem),
            "Q": _ceil(c_Q * k.kappa * math.log(1.0 / eps)), "S": S, "variant": "paper"}


def mrbo_practical(problem):
    """Ours: ``yang21`` with Q = 10 and batch 64."""
    return {**yang21_mrbo(problem), "Q": PEER_INNER, "S": PEER_BATCH}


def mrbo_peer(problem):
    """The public benchmark's MRBO [C]: x and y steps 0.1/(k+1)^(1/3) (here eta_k = 0.1/(1 + k)^(1/3) times the
    scales lam = gam = 1/L_sample_yy), momentum weights 0.5/(k+1)^(2/3) (c1 = c2 = 50: c eta_{k-1}^2 =
    0.5/k^(2/3)), Neumann step 0.1 (here 0.1/L_sample_yy), 10 Neumann steps, batch 64."""
    s = one_over_L_sample_yy(problem)
    return {"c_eta": 0.1, "m0": 1.0, "c1": 50.0, "c2": 50.0, "lam": s, "gam": s, "eta_h": PEER_STEP * s,
            "Q": PEER_INNER, "S": PEER_BATCH, "variant": "paper"}


def yang21_vrbo(problem, eps: float = 1e-2, c: float = 1.0, c_Q: float = 1.0):
    """VRBO (Yang, Ji, Liang 2021) [M: orders]: q = m = ceil(c eps^-1/2), S1 = ceil(c eps^-1), S2 = ceil(c
    eps^-1/2), constant steps beta = 1/L_sample_yy and alpha = beta mu/(2 L_h) (ours), Neumann step
    1/L_sample_yy and Q = ceil(c_Q kappa ln(1/eps)) factors."""
    k = problem.constants
    r = _ceil(c * eps ** -0.5)
    return {"q": r, "m": r, "S1": _ceil(c / eps), "S2": r, "alpha": vrbo_alpha(problem),
            "beta": one_over_L_sample_yy(problem), "eta_h": one_over_L_sample_yy(problem),
            "Q": _ceil(c_Q * k.kappa * math.log(1.0 / eps))}


def vrbo_practical(problem):
    """Ours: ``yang21`` steps, Q = 10, restarts every 10 steps on the full objective, 3 inner steps, batch 64."""
    return {**yang21_vrbo(problem), "q": 10, "m": 3, "S1": None, "S2": PEER_BATCH, "Q": PEER_INNER}


def vrbo_peer(problem):
    """The public benchmark's VRBO [C]: step 0.1 (here 0.1/L_sample_yy) for x, y and the Neumann series,
    full-batch restarts every (n + m) 128/64 steps, 10 inner steps, batch 64."""
    s = peer_step(problem)
    return {"alpha": s, "beta": s, "eta_h": s, "q": max(1, int(_n_plus_m(problem) * 128 / PEER_BATCH)),
            "m": PEER_INNER, "S1": None, "S2": PEER_BATCH, "Q": PEER_INNER}


MRBO_PRESETS = {"yang21": yang21_mrbo, "practical": mrbo_practical, "peer": mrbo_peer}
VRBO_PRESETS = {"yang21": yang21_vrbo, "practical": vrbo_practical, "peer": vrbo_peer}


# ---------------------------------------------------------------------- theory checks (messages)
def _check_rho(problem, params):
    rho = params.get("rho")
    mu = problem.constants.mu
    if rho is not None and rho > 2.0 / mu * (1 + 1e-12):
        return f"rho={rho:.6g} > 2/mu_G={2.0 / mu:.6g} (SOBA Thm 1's condition)"
    return None


def _check_nu(problem, params):
    nu, p = params.get("nu"), params.get("p")
    if nu is None or p is None or p < 2:
        return None
    kappa = problem.constants.kappa
    if nu > 1.0 / (2.0 * kappa) * (1 + 1e-12):
        return f"nu={nu:.6g} > 1/(2 kappa)={1.0 / (2.0 * kappa):.6g} (F2SA-p's range for negative nodes)"
    return None


def _check_lam(problem, params):
    lam = params.get("lam")
    if lam is None:
        return None
    need = 2.0 * _L_f(problem) / problem.constants.mu
    if lam < need * (1 - 1e-12):
        return f"lam={lam:.6g} < 2 L_f/mu={need:.6g} (F2BA: f/lambda + g strongly convex, L*_lambda smooth)"
    return None


def _check_storm(problem, params):
    if "c1" not in params:
        return None
    e2 = (params["c_eta"] / params["m0"] ** (1.0 / 3.0)) ** 2
    big = max(params["c1"], params["c2"]) * e2
    if big > 1 + 1e-12:
        return f"STORM weight max(c1, c2) eta_0^2={big:.6g} > 1 (the momentum (1 - a) turns negative)"
    return None


def _check_eta_h(problem, params):
    eta = params.get("eta_h")
    if eta is not None and eta > 1.0 / _L_yy(problem) * (1 + 1e-12):
        return f"eta_h={eta:.6g} > 1/L_sample_yy={1.0 / _L_yy(problem):.6g} (Neumann factors not contractions)"
    return None


SOBA_CHECKS = {"rho": _check_rho}
PENALTY_CHECKS = {"nu": _check_nu, "lam": _check_lam}
MRBO_CHECKS = {"storm": _check_storm, "eta_h": _check_eta_h}
