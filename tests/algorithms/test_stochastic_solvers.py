"""Tests of the stochastic linear-system estimators and of the stochastic fixed-point iteration.

Monte Carlo design (all mean tests): the instance dimension R carries R independent replicates of the
SAME finite family of Hessians {H_i} (each replicate has its own counter-based stream), so the R
estimates are i.i.d. For each coordinate c the 99% interval is mean_c +- z s_c/sqrt(R), s_c the sample
standard deviation of the same draws (R >= 4000: the t quantile equals the normal one to < 0.1%), and
z = Phi^-1(1 - 0.01/(2 m)) (Bonferroni over the m coordinates tested), so the joint test rejects a
correct expectation with probability <= 1%. The seeds are fixed (0); they were not chosen.
"""

import math
from statistics import NormalDist

import pytest
import torch

from bilevelbench.algorithms.solvers import neumann
from bilevelbench.algorithms.stochastic_solvers import (
    check_neumann_step,
    decaying_batches,
    draw_batches,
    draw_p,
    equal_batches,
    hinv_horner,
    neumann_factors,
    randomized_neumann,
    step_size_policy,
    stochastic_fixed_point,
    vq_recursion,
)
from bilevelbench.analytic.rng import Streams

D, N_SAMPLES, R = 4, 12, 4000


class FakeOracle:
    """Draws indices like a stochastic problem's ``sample`` (uniform, per-instance streams)."""

    def __init__(self, n):
        self.n = n

    def sample(self, which, size, streams, replace=True):
        return streams.integers(self.n, size, replace=replace)


def family(seed=0):
    """N_SAMPLES symmetric PSD matrices H_i = diag(0.3..1) + u_i u_i' (spectrum within (0, 2.2))."""
    g = torch.Generator().manual_seed(seed)
    u = 0.8 * torch.randn(N_SAMPLES, D, generator=g, dtype=torch.float64) / math.sqrt(D)
    H = torch.diag(torch.linspace(0.3, 1.0, D, dtype=torch.float64)) + torch.einsum("ni,nj->nij", u, u)
    v = torch.randn(D, generator=g, dtype=torch.float64)
    return H, v


def make_hvp(H):
    def hvp(u, idx, active=None):  # mean over the batch of H_i u, per replicate (active: counts only)
        return torch.einsum("rsij,rj->ri", H[idx], u) / idx.shape[1]
    return hvp


def ci_check(samples, expected, wrong=None):
    """Bonferroni 99% check of every coordinate of mean(samples) against ``expected``; with ``wrong``,
    also that the test has power: some coordinate of ``wrong`` falls outside the interval."""
    m = expected.numel()
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * m))
    mean = samples.mean(0)
    half = z * samples.std(0) / math.sqrt(samples.shape[0])
    dev = (mean - expected).abs()
    assert bool((dev <= half).all()), (dev / half).max()
    if wrong is not None:
        assert bool(((mean - wrong).abs() > half).any()), "test has no power against the wrong sum"


def expected_series(H, v, terms, eta):
    """eta sum_{q=0}^{terms-1} (I - eta Hbar)^q v with the family mean Hbar (solvers.neumann)."""
    Hb = H.mean(0)
    return neumann(lambda u: u @ Hb, v.unsqueeze(0), terms - 1, eta)[0]


@pytest.mark.parametrize("form", ["icml", "arxiv"])
def test_stocbio_estimator_mean_is_the_papers_sum(form):
    """E v_Q = eta sum_{q=0}^{Q} (I - eta H)^q v (ICML Alg. 3 / arXiv eq. 5), with the decaying schedule.
    Power: the sum with Q terms (one fewer) must be rejected."""
    H, v = family()
    Q, eta = 5, 0.45
    sizes = decaying_batches(2.0, Q, eta, 0.3)
    streams = Streams(torch.arange(R))
    batches = draw_batches(FakeOracle(N_SAMPLES), "g", sizes, streams)
    v0 = v.expand(R, D)
    est = (vq_recursion if form == "icml" else hinv_horner)(make_hvp(H), v0, batches, eta)
    ci_check(est, expected_series(H, v, Q + 1, eta), wrong=expected_series(H, v, Q, eta))


def test_hinv_matrix_mean():
    """E H_inv(D_H) = eta sum_{q=0}^{Q} (I - eta H)^q as a matrix (arXiv eq. 5): the columns H_inv e_c
    computed with the SAME batches (one estimator per replicate), Bonferroni over the D^2 entries."""
    H, _ = family(1)
    Q, eta = 4, 0.45
    streams = Streams(torch.arange(R) + 10_000)
    batches = draw_batches(FakeOracle(N_SAMPLES), "g", decaying_batches(1.5, Q, eta, 0.3), streams)
    eye = torch.eye(D, dtype=torch.float64)
    cols = [hinv_horner(make_hvp(H), eye[c].expand(R, D), batches, eta) for c in range(D)]
    mats = torch.stack(cols, dim=-1).reshape(R, D * D)
    Hb = H.mean(0)
    expected = neumann(lambda u: u @ Hb, eye, Q, eta).T.reshape(D * D)
    ci_check(mats, expected)


def test_randomized_neumann_mean_is_truncated_series():
    """Ghadimi-Wang Alg. 3: E[b eta prod_{i<=p}(I - eta H_i) v] = eta sum_{q=0}^{b-1} (I - eta H)^q v.
    Power: the series with b + 1 terms must be rejected."""
    H, v = family(2)
    b, eta = 6, 0.45
    streams = Streams(torch.arange(R) + 20_000)
    p = draw_p(streams, b)
    batches = draw_batches(FakeOracle(N_SAMPLES), "g", [1] * (b - 1), streams)
    est = randomized_neumann(make_hvp(H), v.expand(R, D), p, batches, eta)
    ci_check(est, expected_series(H, v, b, eta), wrong=expected_series(H, v, b + 1, eta))


def test_randomized_neumann_applies_only_the_factors_some_instance_needs():
    """Factors past every instance's p step by 0, so applying max p of them (``neumann_factors``) gives
    bitwise the result of applying all b - 1; fewer than b - 1 calls of the HVP; factors outside [0, b-1]
    are an error."""
    H, v = family(2)
    b, eta = 6, 0.45
    for R_ in (1, 3):
        streams = Streams(torch.arange(R_) + 7)
        p = draw_p(streams, b)
        batches = draw_batches(FakeOracle(N_SAMPLES), "g", [1] * (b - 1), streams)
        calls = []

        def hvp(u, idx, active=None, calls=calls):
            calls.append(1)
            return make_hvp(H)(u, idx)

        full = randomized_neumann(make_hvp(H), v.expand(R_, D), p, batches, eta)
        m = neumann_factors(p, b)
        assert m == int(p.max())
        assert torch.equal(randomized_neumann(hvp, v.expand(R_, D), p, batches, eta, m), full)
        assert len(calls) == m
    with pytest.raises(ValueError, match="factors"):
        randomized_neumann(make_hvp(H), v.expand(1, D), p[:1], batches, eta, b)


def test_draw_p_is_uniform():
    """p uniform on {0..b-1}: every value's frequency within its 99% binomial interval (Bonferroni over
    the b values; normal approximation, n p >= 1000)."""
    b, n = 5, 20000
    p = draw_p(Streams(torch.arange(n)), b).squeeze(-1)
    counts = torch.bincount(p, minlength=b).double()
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * b))
    half = z * math.sqrt(n * (1 / b) * (1 - 1 / b))
    assert int(p.min()) == 0 and int(p.max()) == b - 1
    assert bool(((counts - n / b).abs() <= half).all()), counts


def test_batch_schedules():
    # B Q = 6, 1 - eta mu = 1/2: 6, 3, 1.5 -> ceil 2
    assert decaying_batches(2.0, 3, 0.5, 1.0) == [6, 3, 2]
    # exact integers are not rounded up by float round-off: 64 * 0.9^0 = 64
    assert decaying_batches(64 / 4, 4, 0.1, 1.0)[0] == 64
    assert decaying_batches(1.0, 0, 0.5, 1.0) == []
    assert equal_batches(11, 3) == [4, 4, 3] and sum(equal_batches(11, 3)) == 11


def test_draw_batches_without_replacement_distinct():
    streams = Streams(torch.arange(50))
    (b1, b2) = draw_batches(FakeOracle(N_SAMPLES), "g", [N_SAMPLES, 3], streams, replace=False)
    assert b1.shape == (50, N_SAMPLES) and b2.shape == (50, 3)
    assert bool((b1.sort(1).values == torch.arange(N_SAMPLES)).all())  # a permutation per replicate


def test_neumann_step_check():
    check_neumann_step(0.99, 2.0)
    with pytest.raises(ValueError, match="eta=1 >= 2/L=1"):
        check_neumann_step(1.0, 2.0)


def test_fixed_point_deterministic_contraction():
    """eq. (17) with an exact contraction T(w) = M w + c (q = ||M|| = 0.5) and eta_t = 1 converges to
    w* = (I - M)^-1 c geometrically: after 80 steps the error is 0.5^80 ||w0 - w*|| ~ 1e-24 relative,
    so 1e-13 (float64 round-off of ~80 affine steps) is the tolerance."""
    g = torch.Generator().manual_seed(3)
    Q, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    M = 0.5 * Q
    c = torch.randn(1, D, generator=g, dtype=torch.float64)
    w = stochastic_fixed_point(lambda w, t: w @ M.T + c, torch.zeros(1, D, dtype=torch.float64), 80,
                               step_size_policy("constant", 1.0))
    w_star = torch.linalg.solve(torch.eye(D, dtype=torch.float64) - M, c[0])
    assert float((w[0] - w_star).norm()) <= 1e-13 * float(w_star.norm())


@pytest.mark.parametrize("policy", ["constant", "decreasing"])
def test_fixed_point_mse_within_sid_theorems(policy):
    """SID Thm 4.1 (constant eta) and 4.2 (eta_t = beta/(gamma + t)) on T^(w, z) = M w + c + z, z ~ N(0,
    s^2 I): q = 0.5, sigma1 = V[T^] = D s^2 exactly, sigma2 = 0. Bounds:
    4.1: MSE_t <= (1 - eta(1-q^2))^t (MSE_0 - eta sigma1/(1-q^2)) + eta sigma1/(1-q^2);
    4.2: MSE_t <= max{gamma MSE_0, beta^2 sigma1/(beta(1-q^2) - 1)}/(gamma + t), beta = 2/(1-q^2), gamma = beta.
    Checked with the one-sided 99% upper confidence bound of the Monte Carlo MSE below the bound
    (mean + 2.33 sd/sqrt(R)); the bounds are not tight, so this is the claim as stated."""
    g = torch.Generator().manual_seed(4)
    Qm, _ = torch.linalg.qr(torch.randn(D, D, generator=g, dtype=torch.float64))
    q, s, t_max, n = 0.5, 0.3, 40, 4000
    M, c = q * Qm, torch.randn(D, generator=g, dtype=torch.float64)
    w_star = torch.linalg.solve(torch.eye(D, dtype=torch.float64) - M, c)
    streams = Streams(torch.arange(n) + 30_000)
    sigma1 = D * s * s
    if policy == "constant":
        eta = 0.5
        steps = step_size_policy("constant", eta)
    else:
        beta = 2 / (1 - q * q)
        steps = step_size_policy("decreasing", beta=beta, gamma=beta)
    w = stochastic_fixed_point(lambda w, t: w @ M.T + c + s * streams.normal(D), torch.zeros(n, D,
                               dtype=torch.float64), t_max, steps)
    err = ((w - w_star) ** 2).sum(-1)
    ucb = float(err.mean() + 2.33 * err.std() / math.sqrt(n))
    mse0 = float((w_star**2).sum())
    if policy == "constant":
        rate = 1 - eta * (1 - q * q)
        floor = eta * sigma1 / (1 - q * q)
        bound = rate**t_max * (mse0 - floor) + floor
    else:
        bound = max(beta * mse0, beta**2 * sigma1 / (beta * (1 - q * q) - 1)) / (beta + t_max)
    assert ucb <= bound, (ucb, bound)


def test_step_policy_validation():
    with pytest.raises(ValueError, match="policy"):
        step_size_policy("cosine")
    with pytest.raises(ValueError, match="beta"):
        step_size_policy("decreasing", beta=None, gamma=1.0)
    f = step_size_policy("decreasing", beta=2.0, gamma=2.0)
    assert f(0) == 1.0 and f(2) == 0.5
