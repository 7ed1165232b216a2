"""Bounds of the fully first-order penalty methods: F2SA (Kwon, Kwon, Wright, Nowak, ICML 2023), F2BA (Chen, Ma,
Zhang, JMLR 2025) and F2SA-p (Chen, Li, Chayti, Zhang, ICLR 2026), and the numerical-analysis bounds their claims
are checked with.

Grades (``shared/papers/modern-solvers.md``): [R] read, [M] recalled (the theorem's text was not available), [D]
derived. Where a theorem's constant is [M] or not found, the function states the ORDER only, with the hidden
constant ``c`` (default 1): a claim built on it checks an exponent, never the constant.

Notation: l_nu(x) = min_y nu f(x, y) + g(x, y) (F2SA-p eq. 8), y_nu its minimiser, lambda = 1/nu the penalty of
F2SA/F2BA, L*_lambda(x) = min_y f + lambda (g - min_z g) (F2BA), whose gradient is the forward difference of
grad_x l_nu with spacing nu = 1/lambda. A finite difference of order p (nodes s_j, weights c_j, sum_j c_j s_j^q =
[q = 1] for q = 0..p) applied to grad_x l_nu errs by O(nu^p).
"""

from __future__ import annotations

import math
from fractions import Fraction

from ._common import bound, count, nonneg, pos, theta

__all__ = [
    "fd_bias",
    "fd_quadratic_residual",
    "fd_roundoff",
    "gd_contraction",
    "contraction_factor",
    "estimate_error",
    "f2ba_bias",
    "f2ba_calls",
    "f2sa_rate",
    "f2sa_deterministic_rate",
    "f2sa_deterministic_schedule",
]


def _stencil(p: int) -> tuple[tuple[int, ...], tuple[Fraction, ...]]:
    """Nodes -floor(p/2)..ceil(p/2) and the exact weights of the order-p first-derivative difference at 0
    (Fornberg 1988: the Vandermonde system sum_j c_j s_j^q = [q = 1], q = 0..p, solved in rationals). Written
    here independently of ``algorithms.penalty.fd_stencil`` (whose weights the solvers use), so that the
    bounds do not inherit an error of the code they judge."""
    p = count("p", p, minimum=1)
    nodes = list(range(-(p // 2), (p + 1) // 2 + 1))
    size = len(nodes)
    A = [[Fraction(s) ** q for s in nodes] + [Fraction(int(q == 1))] for q in range(size)]
    for col in range(size):
        piv = next(r for r in range(col, size) if A[r][col] != 0)
        A[col], A[piv] = A[piv], A[col]
        A[col] = [a / A[col][col] for a in A[col]]
        for r in range(size):
            if r != col and A[r][col] != 0:
                A[r] = [a - A[r][col] * b for a, b in zip(A[r], A[col], strict=True)]
    return tuple(nodes), tuple(A[r][size] for r in range(size))


@bound("f2sap26.bias", "F2SA-p (Chen, Li, Chayti, Zhang, ICLR 2026), bias of the order-p difference [R; constant "
       "not read: order only, hidden constant c]", "order-upper",
       "||sum_j c_j grad_x l_{s_j nu}(x)/nu - grad Phi(x)|| <= c nu^p for nu <= 1/(2 kappa)")
def fd_bias(nu, p, kappa, c=1.0) -> float:
    """The order-p finite difference in nu of grad_x l_nu errs by O(nu^p) (forward p = 1: Theta(nu), F2SA/F2BA;
    central p = 2: Theta(nu^2)), in the range nu <= 1/(2 kappa) where every node's nu_j f + g is strongly convex."""
    nu, kappa = pos("nu", nu), pos("kappa", kappa)
    if nu > 1.0 / (2.0 * kappa) * (1 + 1e-12):
        raise ValueError(f"nu must be <= 1/(2 kappa) = {1.0 / (2.0 * kappa):.6g} (F2SA-p's range), got {nu}")
    return theta(c) * nu ** count("p", p, minimum=1)


@bound("f2sap26.linear", "ours [D] (notes: 'if f is linear in y the forward error is exactly linear in nu and the "
       "central error exactly 0')", "exact",
       "f linear in y and g quadratic in y: grad_x l_nu = G0 + nu G1 + nu^2 G2 exactly, so the order-p difference "
       "errs by exactly nu (sum_j c_j s_j^2) G2: nu G2 for p = 1, 0 for p >= 2")
def fd_quadratic_residual(p) -> float:
    """sum_j c_j s_j^2 of the order-p stencil: with f linear in y and g quadratic in y, y_nu is affine in nu
    (the minimiser of a fixed quadratic plus nu times a linear term) and grad_x l_nu = nu grad_x f(x, y_nu) +
    grad_x g(x, y_nu) is a polynomial of degree 2 in nu; the difference reproduces G0 and G1 exactly (its
    moment conditions q = 0, 1) and leaves nu (sum_j c_j s_j^2) G2. The weights are exact rationals, so the
    value is exact: 1 for p = 1, 0 for every p >= 2 (moment condition q = 2)."""
    nodes, coefs = _stencil(p)
    return float(sum(c * Fraction(s) ** 2 for s, c in zip(nodes, coefs, strict=True)))


def stencil_weight(p) -> float:
    """sum_j |c_j| of the order-p stencil (the factor by which a finite difference amplifies absolute errors in
    its nodes, before the division by nu)."""
    return float(sum(abs(c) for c in _stencil(p)[1]))


@bound("penalty.fd_roundoff", "ours: floating-point error of a finite difference of solutions of linear systems "
       "(Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed. 2002, Thm 7.2 and Sec. 1.14)", "upper",
       "|fl(D) - D| <= w u (d kappa + d) G/h: weights w = sum_j |c_j|, unit round-off u, dimension d, condition "
       "number kappa, node values of size G, spacing h")
def fd_roundoff(weight, u, d, kappa, scale, h) -> float:
    """Absolute round-off of sum_j c_j G_j/h where each G_j is computed from the solution of a d x d system with
    condition number kappa (relative forward error <= d kappa u to first order, Higham Thm 7.2 with a backward
    stable solve) and a few matrix-vector products and additions (relative error <= d u, Higham Sec. 3.5):
    ``weight`` = sum_j |c_j| times (d kappa + d) u ``scale``/h, ``scale`` = max_j ||G_j||."""
    return (nonneg("weight", weight) * pos("u", u) * (pos("d", d) * pos("kappa", kappa) + d)
            * nonneg("scale", scale) / pos("h", h))


@bound("penalty.gd_contraction", "gradient descent on a mu-strongly convex, L-smooth function (Polyak, Introduction "
       "to Optimization 1987, Sec. 1.4, Thm 3; Nesterov, Lectures on Convex Optimization 2018, Thm 2.1.15)", "upper",
       "||y_T - y*|| <= max(|1 - gamma mu|, |1 - gamma L|)^T ||y_0 - y*|| for 0 < gamma < 2/L")
def gd_contraction(step, mu, L, T, dist0) -> float:
    """Distance to the minimiser after T gradient steps of size ``step``: the step map y - step grad h(y) is a
    contraction with factor max(|1 - step mu|, |1 - step L|) (mean-value theorem with the integrated Hessian,
    whose spectrum lies in [mu, L])."""
    if pos("mu", mu) > pos("L", L) * (1 + 1e-12):
        raise ValueError(f"mu must be <= L, got mu={mu}, L={L}")
    return contraction_factor(step, mu, L) ** count("T", T) * nonneg("dist0", dist0)


def contraction_factor(step, mu, L) -> float:
    """max(|1 - step mu|, |1 - step L|): the factor of one gradient step on a mu-strongly convex, L-smooth
    function (``gd_contraction``)."""
    return max(abs(1.0 - pos("step", step) * pos("mu", mu)), abs(1.0 - step * pos("L", L)))


@bound("penalty.estimate_error", "ours: Lipschitz propagation through the finite difference (F2SA-p eq. 8 form)",
       "upper", "||sum_j c_j (s_j nu grad_x f(y'_j) + grad_x g(y'_j))/nu - the same at y_j|| <= sum_j |c_j|/nu "
       "(|s_j| nu L_fx + L_gx) ||y'_j - y_j||")
def estimate_error(nodes, coefs, nu, L_fx, L_gx, node_errors) -> float:
    """How far the penalty hypergradient moves when its node iterates y'_j are off the exact minimisers y_j by
    ``node_errors`` (grad_x f is L_fx-, grad_x g L_gx-Lipschitz in y): for F2SA/F2BA's forward difference (nodes 0,
    1, nu = 1/lambda) lambda L_gx ||z - y*|| + (L_fx + lambda L_gx) ||y - y_lambda||."""
    nu, L_fx, L_gx = pos("nu", nu), nonneg("L_fx", L_fx), nonneg("L_gx", L_gx)
    return sum(abs(float(c)) / nu * (abs(s) * nu * L_fx + L_gx) * nonneg("node error", e)
               for s, c, e in zip(nodes, coefs, node_errors, strict=True))


@bound("f2ba25.bias", "F2BA (Chen, Ma, Zhang, JMLR 2025): lambda ||grad L*_lambda - grad phi|| <= C l kappa^3 for "
       "lambda >= 2 L_f/mu [M; order only, hidden constant c; l the common smoothness and Lipschitz constant]",
       "order-upper", "||grad L*_lambda(x) - grad phi(x)|| <= c l kappa^3/lambda")
def f2ba_bias(lam, l, kappa, c=1.0) -> float:
    """The O(1/lambda) bias of F2BA's (and F2SA's) penalty hypergradient, kappa^3 in the condition number [M]."""
    return theta(c) * pos("l", l) * pos("kappa", kappa) ** 3 / pos("lam", lam)


@bound("f2ba25.rate", "F2BA (Chen, Ma, Zhang, JMLR 2025), deterministic: lambda ~ l kappa^3/eps, constant outer step "
       "~ 1/(l kappa^3) [M; R for the order O~(eps^-2)]", "order-upper",
       "first-order calls to ||grad phi|| <= eps (unsquared) <= c eps^-2 (log factors hidden)")
def f2ba_calls(eps, c=1.0) -> float:
    """O~(eps^-2) first-order oracle calls to an eps-stationary point, eps UNSQUARED (||grad phi|| <= eps); the
    kappa dependence is [M] and not stated here."""
    return theta(c) * pos("eps", eps) ** -2


@bound("f2sa23.rate", "F2SA (Kwon, Kwon, Wright, Nowak, ICML 2023), noise in both levels: lambda_k ~ k^(1/7), "
       "alpha_k ~ k^(-5/7), gamma_k ~ k^(-4/7) [R abstract: eps^-7/2 iterations, squared eps; schedule M/D]",
       "order-upper", "(1/K) sum_{k<K} E||grad phi(x_k)||^2 <= c K^(-2/7) (log factors hidden)")
def f2sa_rate(K, c=1.0) -> float:
    """O~(K^(-2/7)) for the averaged squared stationarity: eps^-7/2 iterations to eps, SQUARED eps."""
    return theta(c) * count("K", K, minimum=1) ** (-2.0 / 7.0)


@bound("f2sa23.rate.deterministic", "F2SA (Kwon et al. 2023), deterministic oracles [R abstract: eps^-3/2 "
       "iterations, squared eps]", "order-upper",
       "(1/K) sum_{k<K} ||grad phi(x_k)||^2 <= c K^(-2/3); first-order calls to ||grad phi|| <= eps: O(eps^-3) "
       "unsquared")
def f2sa_deterministic_rate(K, c=1.0) -> float:
    """O(K^(-2/3)): eps^-3/2 iterations for the squared criterion, i.e. eps^-3 for ||grad phi|| <= eps."""
    return theta(c) * count("K", K, minimum=1) ** (-2.0 / 3.0)


@bound("f2sa23.schedule.deterministic", "ours [D] from Kwon et al. 2023's deterministic rate: the schedule that "
       "balances the descent term 1/(K alpha) against the squared bias 1/lambda^2 under the y-step condition "
       "alpha lambda <= 1/L", "parameter",
       "lambda_k ~ k^a, alpha_k ~ k^-b with b = a (alpha lambda constant) and 1 - b = 2a: a = b = 1/3, gamma constant")
def f2sa_deterministic_schedule() -> dict[str, float]:
    """Exponents (lam_power, alpha_power, gamma_power) of deterministic F2SA: the averaged squared stationarity is
    O(1/sum_k alpha_k + (1/K) sum_k lambda_k^-2) = O(K^(b-1) + K^(-2a)); the y step alpha_k on f + lambda_k g must
    stay below 1/L, so b >= a; the best exponent, 2/3, is at a = b = 1/3 (the eps^-3/2 of the abstract)."""
    a = 1.0 / 3.0
    return {"lam_power": a, "alpha_power": a, "gamma_power": 0.0}


def log_slope(fn, xs, **kw) -> float:
    """The log-log slope of ``fn`` (a bound above) between the ends of the grid ``xs``: the exponent a claim
    fits against, read off the bound itself rather than retyped."""
    lo, hi = min(xs), max(xs)
    return math.log(fn(hi, **kw) / fn(lo, **kw)) / math.log(hi / lo)
