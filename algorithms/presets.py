"""Theory presets: parameter choices of the papers' theorems, computed from a problem's constants.

Where a theorem fixes a quantity only up to Theta(.), the preset takes the hidden constant as an
explicit argument (``c``, ``c_N``, ``c_Q``, ``c_beta``), default 1, and says so. The Loops paper's
Theorems 1 and 3 define beta through Theta(.) expressions (w~, w); we evaluate them with every hidden
constant set to 1.

Each preset names the theorem it follows with ``cites``, together with that theorem's step-size conditions
(inner step alpha, solver step eta, outer step beta against 1/(8 L_Phi) (ICML Thm 1), 1/(4 L_Phi) (ICML Thm
2/3, arXiv Thm 1/2, Loops Thm 2), ...); ``base.run`` checks them on every run and lists the broken ones in
``Trace.outside_theory`` (a preset's own values are inside them: tests/algorithms/test_driver.py).
"""

from __future__ import annotations

import math

__all__ = ["AID_PRESETS", "BA_PRESETS", "ITD_PRESETS", "DETERBIO_PRESETS", "STEP_CHECKS",
           "one_over_L", "icml21_beta", "loops_thm1_beta", "loops_thm3_w", "cites", "at_most"]


# ---------------------------------------------------------------------- theorem conditions
def cites(theorem: str, **conditions):
    """Decorator of a preset: it follows ``theorem``, whose step-size conditions are ``conditions`` (name ->
    fn(problem, params) returning a message when the run's parameters break it, else None). ``base.run``
    checks them (``base.theory_conditions``) and lists the broken ones in ``Trace.outside_theory``."""
    def mark(fn):
        fn.theorem = theorem
        fn.conditions = dict(conditions)
        return fn
    return mark


def _constants(problem):
    try:
        return problem.constants
    except NotImplementedError:
        return None


def at_most(name: str, bound, text: str, source: str, applies=None):
    """The condition params[name] <= bound(constants, params) (``text`` names the bound, ``source`` the
    theorem), with a relative slack of 1e-12 so that a preset's own value, computed by the same closed form,
    is inside; ``applies(params)`` restricts it (e.g. eta matters for the GD/Neumann solvers only)."""
    def check(problem, params):
        k = _constants(problem)
        value = params.get(name)
        if k is None or value is None or (applies is not None and not applies(params)):
            return None
        limit = bound(k, params)
        if value > limit * (1 + 1e-12):
            return f"{name}={value:.6g} > {text}={limit:.6g} ({source})"
        return None
    return check


def _uses_eta(params) -> bool:
    return params.get("solver") in ("gd", "neumann")


def _alpha_1L(source):
    return at_most("alpha", lambda k, p: 1.0 / k.L, "1/L", source)


def _eta_1L(source):
    return at_most("eta", lambda k, p: 1.0 / k.L, "1/L", source, applies=_uses_eta)


def _beta(c: float, source: str):
    """beta <= 1/(c L_Phi)."""
    text = "1/L_Phi" if c == 1 else f"1/({c:g} L_Phi)"
    return at_most("beta", lambda k, p: 1.0 / (c * k.L_phi), text, source)


def one_over_L(problem) -> float:
    """1/L"""
    return 1.0 / problem.constants.L


def icml21_beta(problem) -> float:
    """1/(8 L_Phi)"""
    return 1.0 / (8.0 * problem.constants.L_phi)


def _ceil(v: float) -> int:
    return max(1, math.ceil(v - 1e-12))


def _klnk(kappa: float) -> float:
    """kappa ln kappa, floored at 1 so that kappa = 1 still gives one step."""
    return max(1.0, kappa * math.log(kappa)) if kappa > 1 else 1.0


# ---------------------------------------------------------------------- ICML 2021
@cites("ICML 2021 Theorem 1", alpha=_alpha_1L("ICML 2021 Thm 1"), beta=_beta(8, "ICML 2021 Thm 1"))
def icml21_thm1(problem, c: float = 1.0):
    """ICML 2021 Theorem 1 (AID-BiO): alpha = 1/L, beta = 1/(8 L_Phi), D = ceil(c kappa) inner GD steps,
    N = ceil(c sqrt kappa) CG steps (here N and Q), warm starts on y and v; c is the Theta(.) constant."""
    k = problem.constants
    return {"alpha": 1.0 / k.L, "beta": 1.0 / (8.0 * k.L_phi), "N": _ceil(c * k.kappa),
            "Q": _ceil(c * math.sqrt(k.kappa)), "solver": "cg", "warm_y": True, "warm_v": True}


@cites("ICML 2021 Theorem 2", alpha=_alpha_1L("ICML 2021 Thm 2"), beta=_beta(4, "ICML 2021 Thm 2"))
def icml21_thm2(problem, eps: float = 1e-4, c: float = 1.0):
    """ICML 2021 Theorem 2 (ITD-BiO): alpha = 1/L, beta = 1/(4 L_Phi), D = ceil(c kappa ln(1/eps))."""
    k = problem.constants
    return {"alpha": 1.0 / k.L, "beta": 1.0 / (4.0 * k.L_phi),
            "N": _ceil(c * k.kappa * math.log(1.0 / eps))}


# ---------------------------------------------------------------------- arXiv (deterBiO)
@cites("arXiv Theorem 1", alpha=_alpha_1L("arXiv Prop. 3 / Thm 1"), beta=_beta(4, "arXiv Thm 1"))
def arxiv20_thm1(problem, eps: float = 1e-4, delta: float | None = None, alpha: float | None = None):
    """arXiv Theorem 1 (deterBiO): beta = 1/(4 L_Phi) and
    T = log(max{3LM/mu, 9 Delta L^2 (1 + L/mu)^2, 36 Delta M^2 (tau mu + L rho)^2 / ((1 - alpha mu) mu^4)}
            * 9/(2 eps)) / log(1/(1 - alpha mu)),
    Delta = max_k ||y_k^0 - y*(x_k)||^2. Without ``delta`` we use (2 r)^2 for the radius r of the
    problem's declared region (y^0 and y* both lie in it), a valid upper bound there."""
    k = problem.constants
    alpha = 1.0 / k.L if alpha is None else alpha
    if delta is None:
        radius = k.extra.get("radius", None)
        if radius is None:
            raise ValueError("delta must be given: the problem declares no region radius")
        delta = (2.0 * radius) ** 2
    am = alpha * k.mu
    big = max(3 * k.L * k.M / k.mu, 9 * delta * k.L**2 * (1 + k.L / k.mu) ** 2,
              36 * delta * k.M**2 * (k.tau * k.mu + k.L * k.rho) ** 2 / ((1 - am) * k.mu**4))
    T = math.log(big * 9 / (2 * eps)) / math.log(1 / (1 - am)) if am < 1 else 1.0
    return {"alpha": alpha, "beta": 1.0 / (4.0 * k.L_phi), "N": _ceil(T), "warm_y": False}


# ---------------------------------------------------------------------- Loops (NeurIPS 2022)
def loops_thm1_beta(problem, alpha: float, eta: float, lam: float, Q: int) -> float:
    """beta = min{1/L_Phi, sqrt(eta mu / w~)} of Loops Theorem 1 with every Theta(.) constant = 1:
    C_Q = (1-eta mu)^(Q-1) eta Q/mu + (1 - (1-eta mu)^Q (1 + eta Q mu))/mu^2 + (1 - (1-eta mu)^Q) L/mu,
    r = mu^2 C_Q^2, w~ = eta mu kappa^4/(lam r) + kappa^4/(eta mu) ((1-eta mu)^(2Q)/mu^2 + eta mu/lam)."""
    k = problem.constants
    em = eta * k.mu
    CQ = ((1 - em) ** (Q - 1) * eta * Q / k.mu + (1 - (1 - em) ** Q * (1 + eta * Q * k.mu)) / k.mu**2
          + (1 - (1 - em) ** Q) * k.L / k.mu)
    r = k.mu**2 * CQ**2
    w = em * k.kappa**4 / (lam * r) + k.kappa**4 / em * ((1 - em) ** (2 * Q) / k.mu**2 + em / lam)
    return min(1.0 / k.L_phi, math.sqrt(em / w))


@cites("Loops Theorem 1 / Corollary 1", alpha=_alpha_1L("Loops Cor. 1"), eta=_eta_1L("Loops Cor. 1"),
       beta=_beta(1, "Loops Thm 1: beta = min{1/L_Phi, ...}"))
def loops_cor1(problem, c_N: float = 1.0, Q: int = 1):
    """Loops Corollary 1 (N-loop AID): N = ceil(c_N kappa ln kappa), Q = Theta(1) (given), eta = alpha = 1/L,
    lambda = 1, beta of Theorem 1; GD linear solver with warm start."""
    k = problem.constants
    a = 1.0 / k.L
    return {"alpha": a, "eta": a, "N": _ceil(c_N * _klnk(k.kappa)), "Q": Q, "solver": "gd",
            "warm_y": True, "warm_v": True, "beta": loops_thm1_beta(problem, a, a, 1.0, Q)}


def _cor2_eta(k, alpha: float, Q: int) -> float:
    """min{alpha mu^2/(128 Q^2 L^2), alpha/4, 1/(mu Q)} (Loops Corollary 2)."""
    return min(alpha * k.mu**2 / (128 * Q**2 * k.L**2), alpha / 4, 1 / (k.mu * Q))


@cites("Loops Theorem 1 / Corollary 2", alpha=_alpha_1L("Loops Cor. 2"),
       eta=at_most("eta", lambda k, p: _cor2_eta(k, p["alpha"], p["Q"]),
                   "min{alpha mu^2/(128 Q^2 L^2), alpha/4, 1/(mu Q)}", "Loops Cor. 2", applies=_uses_eta),
       beta=_beta(1, "Loops Thm 1: beta = min{1/L_Phi, ...}"))
def loops_cor2(problem, Q: int = 1):
    """Loops Corollary 2 (No-loop AID): N = 1, Q = Theta(1) (given), alpha = 1/L, lambda = alpha mu/2,
    eta = min{alpha mu^2/(128 Q^2 L^2), alpha/4, 1/(mu Q)}, beta of Theorem 1."""
    k = problem.constants
    a = 1.0 / k.L
    eta = _cor2_eta(k, a, Q)
    return {"alpha": a, "eta": eta, "N": 1, "Q": Q, "solver": "gd", "warm_y": True, "warm_v": True,
            "beta": loops_thm1_beta(problem, a, eta, a * k.mu / 2, Q)}


@cites("Loops Theorem 2 / Corollary 3", alpha=_alpha_1L("Loops Cor. 3"), eta=_eta_1L("Loops Cor. 3"),
       beta=_beta(4, "Loops Thm 2: beta L_Phi + w beta^2 (...) <= 1/4"))
def loops_cor3(problem, eps: float = 1e-4, c_N: float = 1.0, c_Q: float = 1.0, c_beta: float = 0.25):
    """Loops Corollary 3 (N-Q-loop AID): N = ceil(c_N kappa ln kappa), Q = ceil(c_Q kappa ln(kappa/eps)),
    eta = alpha = 1/L, lambda = 1, beta = Theta(kappa^-3) = c_beta / L_Phi, v_k^0 = 0 (Theorem 2).
    c_beta = 1/4 by default: Theorem 2 requires beta L_Phi + w beta^2 (1/2 + beta L_Phi)/(1 - tau) <= 1/4, so
    beta <= 1/(4 L_Phi) whatever its Theta(.)-defined w (c_beta = 1 would break it)."""
    k = problem.constants
    a = 1.0 / k.L
    return {"alpha": a, "eta": a, "N": _ceil(c_N * _klnk(k.kappa)),
            "Q": _ceil(c_Q * k.kappa * math.log(k.kappa / eps)), "solver": "gd", "warm_y": True,
            "warm_v": False, "beta": c_beta / k.L_phi}


@cites("Loops Theorem 2 / Corollary 4", alpha=_alpha_1L("Loops Cor. 4"), eta=_eta_1L("Loops Cor. 4"),
       beta=_beta(4, "Loops Thm 2: beta L_Phi + w beta^2 (...) <= 1/4"))
def loops_cor4(problem, eps: float = 1e-4, c_Q: float = 1.0, c_beta: float = 0.25):
    """Loops Corollary 4 (Q-loop AID): N = 1, Q = ceil(c_Q kappa ln(kappa/eps)), alpha = eta = 1/L,
    lambda = alpha mu/2, beta = Theta(kappa^-4) = c_beta / (kappa L_Phi), v_k^0 = 0 (Theorem 2). c_beta = 1/4
    by default, so that beta <= 1/(4 L_Phi), the part of Theorem 2's condition free of Theta constants, holds at
    every kappa >= 1 (c_beta = 1 breaks it for kappa < 4)."""
    k = problem.constants
    a = 1.0 / k.L
    return {"alpha": a, "eta": a, "N": 1, "Q": _ceil(c_Q * k.kappa * math.log(k.kappa / eps)),
            "solver": "gd", "warm_y": True, "warm_v": False, "beta": c_beta / (k.kappa * k.L_phi)}


def loops_thm3_w(problem, alpha: float, N: int) -> float:
    """w of Loops Theorem 3 with every Theta(.) constant = 1:
    w_N = (1 + a_N) a_N (1 - alpha mu)^(N/2 - 1), a_N = alpha (1 - (1-alpha mu)^(N/2))/(1 - sqrt(1-alpha mu)),
    lambda_N = (w_N^2 + (1 + alpha L N)^2)/(1 - alpha mu/4 - (1-alpha mu)^N (1 + alpha mu/2)),
    w = kappa^2/(alpha mu) (1 - alpha mu)^N lambda_N + w_N^2/mu^2."""
    k = problem.constants
    am = alpha * k.mu
    aN = alpha * (1 - (1 - am) ** (N / 2)) / (1 - math.sqrt(1 - am))
    wN = (1 + aN) * aN * (1 - am) ** (N / 2 - 1)
    lamN = (wN**2 + (1 + alpha * k.L * N) ** 2) / (1 - am / 4 - (1 - am) ** N * (1 + am / 2))
    return k.kappa**2 / am * (1 - am) ** N * lamN + wN**2 / k.mu**2


def _loops_itd_beta(problem, alpha, N):
    """beta = min{sqrt(alpha mu/(40 w)), sqrt((1 - alpha mu)/(2 w)), 1/(8 L_Phi)} (Loops Cor. 5 and 6)."""
    k = problem.constants
    w = loops_thm3_w(problem, alpha, N)
    am = alpha * k.mu
    return min(math.sqrt(am / (40 * w)), math.sqrt((1 - am) / (2 * w)), 1.0 / (8 * k.L_phi))


@cites("Loops Theorem 3 / Corollary 5", alpha=at_most("alpha", lambda k, p: 0.5 / k.L, "1/(2L)", "Loops Thm 3"),
       beta=_beta(8, "Loops Cor. 5: beta = min{..., 1/(8 L_Phi)}"))
def loops_cor5(problem, eps: float = 1e-4, c: float = 1.0):
    """Loops Corollary 5 (N-N-loop ITD): N = ceil(c kappa ln(kappa/eps)), alpha = 1/(2L), beta as stated."""
    k = problem.constants
    a = 1.0 / (2 * k.L)
    N = _ceil(c * k.kappa * math.log(k.kappa / eps))
    return {"alpha": a, "N": N, "warm_y": True, "beta": _loops_itd_beta(problem, a, N)}


@cites("Loops Theorem 3 / Corollary 6", alpha=at_most("alpha", lambda k, p: 0.5 / k.L, "1/(2L)", "Loops Thm 3"),
       beta=_beta(8, "Loops Cor. 6: beta = min{..., 1/(8 L_Phi)}"))
def loops_cor6(problem, N: int = 1):
    """Loops Corollary 6 (No-loop ITD): N = Theta(1) (given), alpha = 1/(2 N L), beta as stated."""
    k = problem.constants
    a = 1.0 / (2 * N * k.L)
    return {"alpha": a, "N": N, "warm_y": True, "beta": _loops_itd_beta(problem, a, N)}


@cites("ICML 2021 Theorem 1 (steps of AID-BiO; BA's schedule of Loops Table 1)", alpha=_alpha_1L("ICML 2021 Thm 1"),
       eta=_eta_1L("Ghadimi-Wang eta <= 1/L"), beta=_beta(8, "ICML 2021 Thm 1"))
def ba_table1(problem, c: float = 1.0, warm_y: bool = True):
    """BA (Ghadimi and Wang 2018) as in the Loops paper's Table 1: Q = ceil(c kappa ln kappa) Neumann terms,
    N_k = ceil((k+1)^(1/4)/2); alpha = eta = 1/L; beta = 1/(8 L_Phi) as for AID-BiO (our choice, so the
    two differ only in the schedule). ``warm_y=False`` restarts every inner loop from y0, the setting of
    Ghadimi and Wang's analysis that ICML 2021 contrasts with its warm starts (Sec. 1, Sec. 2.1)."""
    k = problem.constants
    a = 1.0 / k.L
    return {"alpha": a, "eta": a, "Q": _ceil(c * _klnk(k.kappa)), "solver": "neumann",
            "schedule": "increasing", "beta": 1.0 / (8 * k.L_phi), "warm_y": warm_y}


AID_PRESETS = {"icml21.thm1": icml21_thm1, "loops22.cor1": loops_cor1, "loops22.cor2": loops_cor2,
               "loops22.cor3": loops_cor3, "loops22.cor4": loops_cor4, "ba": ba_table1}
BA_PRESETS = {"loops22.table1": ba_table1}
ITD_PRESETS = {"icml21.thm2": icml21_thm2, "loops22.cor5": loops_cor5, "loops22.cor6": loops_cor6}
DETERBIO_PRESETS = {"arxiv20.thm1": arxiv20_thm1}


# The checks of a run without a preset: alpha, eta <= 1/L (every theorem's inner and solver steps) and the
# outer step against the loosest bound any of the deterministic theorems allows, beta <= 1/L_Phi (Loops
# Theorems 1 and 4); a preset adds its own theorem's (``cites``).
STEP_CHECKS = {"alpha": _alpha_1L("the theorems require alpha <= 1/L"),
               "eta": _eta_1L("the theorems require eta <= 1/L"),
               "beta": _beta(1, "no theorem allows an outer step above 1/L_Phi")}
