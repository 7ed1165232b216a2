"""ICML 2021 stochastic claims (stocBiO's estimators and batch schedule, Theorems 3 and 4, Table 2).

* The exact moments of the paper's estimators (``bench.experiments.estimators``) against brute-force Monte Carlo
  of the algorithms' own estimators through the problem's counted oracle (an independent path), and the batched
  Monte Carlo machinery (count batches, batched Hessian products) against the oracle.
* The judges on synthetic tables: each can hold and each can fail.
* The claims on the quick profile: real verdicts with figures, the paper's estimators matching their exact
  moments, and budgets at least 3x what the paper's algorithms need.
"""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.algorithms.stochastic_solvers import decaying_batches, draw_batches, hinv_horner, vq_recursion
from bilevelbench.analytic.rng import as_streams
from bilevelbench.bench.claims import all_claims, get_claim
from bilevelbench.bench.claims import icml21_stochastic as C
from bilevelbench.bench.experiments import estimators as E
from bilevelbench.bench.experiments import stochastic as S
from bilevelbench.bench.experiments.stochastic_common import per_sample, region_point, stoch_problem
from bilevelbench.bench.sweep import Env

IDS = ["icml21.prop3", "icml21.batch-schedule", "icml21.thm3.rates", "icml21.thm3.floor", "icml21.thm4",
       "icml21.table2"]


# ====================================================================== exact moments
@pytest.fixture(scope="module")
def instance():
    """Two instances of the estimator family, per-sample Hessians and F-gradients at a region point."""
    p = stoch_problem(Env(), 3, 2, 2.0, 5, 0.6, 0.3, 16)
    L, mu, _ = per_sample(p)
    x, y = region_point(p, 3)
    Hs, Gf = E.sample_hessians(p, x, y), E.sample_grads_f(p, x, y)
    return p, L, mu, x, y, Hs, Gf


def test_per_sample_pieces_average_to_the_mean_problem(instance):
    p, _, _, x, y, Hs, Gf = instance
    # float64 round-off of means of 16 terms of O(L) entries
    assert torch.allclose(Hs.mean(1), p._hess_yy(x, y), atol=1e-12)
    assert torch.allclose(Gf.mean(1), p._grad_y_f(x, y), atol=1e-12)


def _brute(p, x, y, estimator, v0_of, sizes, eta, n, seed):
    """n independent draws of an algorithm's estimator through the counted oracle (index batches drawn with
    replacement, as stocBiO draws them): per instance, the Monte Carlo mean and second moment and the standard
    errors of their entries."""
    o = CountedOracle(p)
    streams = as_streams(seed, p.R, p.device)
    draws = []
    for _ in range(n):
        v0 = v0_of(o, streams)
        batches = draw_batches(o, "g", sizes, streams)
        draws.append(estimator(lambda u, idx: o.hvp(x, y, u, idx), v0, batches, eta))
    v = torch.stack(draws)  # (n, R, d)
    vv = v.unsqueeze(-1) * v.unsqueeze(-2)
    return v.mean(0), vv.mean(0), v.std(0) / math.sqrt(n), vv.std(0) / math.sqrt(n)


def _check_moments(mc, mean, second):
    """Exact mean and second moment within 5 Monte Carlo standard errors, entry by entry (a false alarm has
    probability ~6e-7 per entry)."""
    mc_mean, mc_second, se_mean, se_second = mc
    assert ((mc_mean - mean).abs() <= 5 * se_mean).all(), ((mc_mean - mean) / se_mean).abs().max()
    assert ((mc_second - second).abs() <= 5 * se_second).all(), ((mc_second - second) / se_second).abs().max()


def test_vq_moments_match_brute_force(instance):
    p, L, mu, x, y, Hs, Gf = instance
    eta, Q, D_f, n = 1.0 / L, 3, 2, 4000
    sizes = decaying_batches(2.0, Q, eta, mu)[::-1]
    g = Gf.mean(1)
    dev = Gf - g.unsqueeze(1)
    Cf = torch.einsum("rni,rnj->rij", dev, dev) / Gf.shape[1]
    mean, second = E.vq_moments(Hs, g, Cf, D_f, eta, sizes)

    def v0_of(o, streams):
        (idx,) = draw_batches(o, "f", [D_f], streams)
        return o.grad_y_f(x, y, idx)

    _check_moments(_brute(p, x, y, vq_recursion, v0_of, sizes, eta, n, 11), mean, second)


def test_hinv_moments_match_brute_force(instance):
    p, L, mu, x, y, Hs, _ = instance
    eta, Q, n = 1.0 / L, 4, 4000
    sizes = decaying_batches(1.0, Q, eta, mu)
    b = p._grad_y_f(x, y)
    mean, second = E.hinv_moments(Hs, b.unsqueeze(-1), eta, sizes)
    _check_moments(_brute(p, x, y, hinv_horner, lambda o, s: b, sizes, eta, n, 12), mean.squeeze(-1), second)


def test_moments_without_noise_are_the_truncated_neumann_series():
    """noise = 0: every sample Hessian is the mean one, so both estimators are deterministic: mean = eta
    sum_{q<=Q} (I - eta A)^q b, zero variance (float64 round-off of Q matrix products)."""
    from bilevelbench.algorithms.solvers import neumann

    p = stoch_problem(Env(), 1, 2, 2.0, 5, 0.0, 0.0, 16)
    x, y = region_point(p, 1)
    Hs = E.sample_hessians(p, x, y)
    A, b, eta, Q = Hs.mean(1), p._grad_y_f(x, y), 0.5 / p.constants.L, 6
    ref = neumann(lambda u: (A @ u.unsqueeze(-1)).squeeze(-1), b, Q, eta)
    m, S2 = E.vq_moments(Hs, b, torch.zeros_like(A), 1, eta, [3] * Q)
    assert torch.allclose(m, ref, rtol=1e-12, atol=1e-13)
    assert float(E.moment_errors(m, S2, ref)["var"].abs().max()) < 1e-12 * float((ref**2).sum(-1).max())
    m2, S3 = E.hinv_moments(Hs, b.unsqueeze(-1), eta, [3] * Q)
    assert torch.allclose(m2.squeeze(-1), ref, rtol=1e-12, atol=1e-13)


def test_smallest_batch_scale_of_prop3():
    from bilevelbench.bounds.arxiv20 import prop4_batch_sizes
    from bilevelbench.bounds.icml21 import prop3_min_B

    # 1/(Q (1 - eta mu)^(Q-1)) = 1/(3 * 0.25) at Q = 3, eta mu = 0.5; the smallest batch is then one sample
    assert prop3_min_B(3, 1.0, 0.5) == pytest.approx(4 / 3, rel=1e-15)
    assert prop4_batch_sizes(prop3_min_B(8, 0.3, 0.5), 8, 0.3, 0.5)[-1] == pytest.approx(1.0, rel=1e-14)
    with pytest.raises(ValueError):
        prop3_min_B(3, 2.0, 0.5)


def test_predicted_exponents_come_from_the_bounds():
    # eq. (9): (1 - eta mu)^(2Q) in Q, 1/b in each batch size; Theorem 4: 1/|B|
    assert C._floor_exponent("Q", 0.25) == pytest.approx(2 * math.log(0.75), rel=1e-9)
    for p in ("S", "D_g", "D_f", "B"):
        assert C._floor_exponent(p, 0.25) == pytest.approx(-1.0, rel=1e-9)
    assert C.bound_slope("icml21.thm4", "batch", 2, K=10**15, kappa=2.0) == pytest.approx(-1.0, rel=1e-9)


def test_randomized_neumann_spread():
    """BSA/TTSA spend B p Hessian samples a step, p uniform on {0..b-1}: standard deviation B sqrt((b^2 - 1)/12)
    a step, sqrt(steps) times that over independent steps."""
    from bilevelbench.bounds.costs import randomized_sd

    p = {"b": 3, "B": 2, "eta": 1.0, "mu": 0.5}
    assert randomized_sd(p, 1) == pytest.approx(2 * float(np.std([0, 1, 2])), rel=1e-12)
    assert randomized_sd(p, 25) == pytest.approx(5 * randomized_sd(p, 1), rel=1e-12)


def test_paper_sizes_are_the_algorithms_schedule():
    for B, Q, eta, mu in ((8.0, 2, 0.4, 0.5), (1.0, 8, 0.4, 0.5), (3.3, 20, 0.2, 0.5), (64 / 8, 8, 0.1, 0.0001)):
        assert E.paper_sizes(B, Q, eta, mu) == decaying_batches(B, Q, eta, mu)


def test_batched_hvp_and_count_batches_match_the_oracle(instance):
    p, _, _, x, y, Hs, _ = instance
    gen = torch.Generator().manual_seed(0)
    R, d, n, m = p.R, p.dim_y, p.n_g, 3
    idx = torch.randint(n, (R * m, 7), generator=gen)
    counts = torch.zeros(R * m, n, dtype=x.dtype).scatter_add_(1, idx, torch.ones(R * m, 7, dtype=x.dtype))
    u = torch.randn(R * m, d, generator=gen, dtype=x.dtype)
    got = E._batch_hvp(Hs)(u, E.CountBatch(counts, 7)).reshape(R, m, d)
    o = CountedOracle(p)
    for j in range(m):
        rows = [r * m + j for r in range(R)]
        want = o.hvp(x, y, u[rows], idx[rows])
        assert torch.allclose(got[:, j], want, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("size", [5, 300])
def test_count_batches_are_multinomial(size):
    """Both sampling paths (indices, sequential binomials): counts sum to the batch size, each count (a
    binomial(size, 1/n)) has mean size/n and variance size p (1 - p), within 5 standard errors over 4000 rows
    (the sample variance's from the binomial's fourth central moment size p q (1 + 3 p q (size - 2)))."""
    n, rows = 16, 4000
    c = E.draw_counts(torch.Generator().manual_seed(1), rows, n, size, torch.float64, "cpu").counts
    assert torch.equal(c.sum(1), torch.full((rows,), float(size), dtype=torch.float64))
    p = 1.0 / n
    var = size * p * (1 - p)
    mu4 = var * (1 + 3 * p * (1 - p) * (size - 2))
    assert float((c.mean(0) - size * p).abs().max()) <= 5 * math.sqrt(var / rows)
    assert float((c.var(0) - var).abs().max()) <= 5 * math.sqrt((mu4 - var**2) / rows)


def test_norm_half_width_covers_gaussian_means():
    """The Laurent-Massart bound at alpha = 1% covers ||mean - E|| in at least 99% of Gaussian trials (less 3
    binomial standard errors over 3000 trials)."""
    gen = torch.Generator().manual_seed(0)
    scale = torch.tensor([3.0, 1.0, 0.5, 0.1, 0.1], dtype=torch.float64)
    n, trials = 40, 3000
    err = (torch.randn(trials, n, 5, generator=gen, dtype=torch.float64) * scale).mean(1).norm(dim=-1)
    var = scale**2
    h = C.norm_half_width(float(var.sum()), float((var**2).sum()), float(var.max()), n, 0.01)
    assert float((err <= h).double().mean()) >= 0.99 - 3 * math.sqrt(0.99 * 0.01 / trials)


# ====================================================================== judges on synthetic tables
def _est_frame(**over):
    base = dict(estimator="vq", instance=0, Q=2, B=8.0, D_f=4, noise_f=0.3, n_mc=1000, eta=0.4, L=2.5, mu=0.5,
                M=30.0, samples=29, paper_samples=29, mean_dev=0.01, mean_norm=1.5, cov_tr=0.3, cov_tr2=0.03,
                cov_top=0.15, bias_mc=0.5, bias_exact=0.5, bias_bound=30.0, mse_mc=0.55, mse_sd=0.5, mse_exact=0.55,
                mse_bound=9000.0, var_mc=0.3, var_sd=0.3, var_exact=0.3, mse_spec_mc=math.nan, mse_spec_sd=math.nan)
    rows = [{**base, "instance": r, **over} for r in range(4)]
    return {C.VQ: pd.DataFrame(rows)}


def test_prop3_judge_holds_and_sees_each_defect():
    assert C._judge_prop3(_est_frame(), Env()).verdict == "holds"
    # the mean off by 20% of ||E|| (far outside its Monte Carlo bound)
    assert C._judge_prop3(_est_frame(mean_dev=0.3), Env()).verdict == "violated"
    # variance doubled, MSE doubled
    assert C._judge_prop3(_est_frame(var_mc=0.6), Env()).verdict == "violated"
    assert C._judge_prop3(_est_frame(mse_mc=1.1), Env()).verdict == "violated"
    # above the paper's bound
    assert C._judge_prop3(_est_frame(bias_mc=40.0), Env()).verdict == "violated"
    # too few draws to see a 10% error of the mean: inconclusive, not holds
    assert C._judge_prop3(_est_frame(n_mc=20), Env()).verdict == "inconclusive"


def _sched_frame(dec_mse_at_probe, dec_mse_at_neq):
    rows = []
    for eps, n_eq in ((1e-4, 1000),):
        for total, mse, at in ((600, dec_mse_at_probe, False), (1000, dec_mse_at_neq, True)):
            for r in range(4):
                rows.append(dict(eps=eps, Q=20, instance=r, total=total, paper_total=total, B=1.0, n_mc=200,
                                 mse_mc=mse, mse_sd=0.5 * mse, mse_exact=mse, mse_equal=2 * mse, n_equal=n_eq,
                                 at_n_equal=at))
    return {C.SCHEDULE: pd.DataFrame(rows)}


def test_schedule_judge_holds_and_fails():
    assert C._judge_schedule(_sched_frame(5e-5, 3e-5), Env()).verdict == "holds"
    # the decaying arm misses eps at the total where equal batches meet it
    assert C._judge_schedule(_sched_frame(3e-4, 2e-4), Env()).verdict == "violated"
    # its Monte Carlo MSE off its exact value by a factor 3
    f = _sched_frame(5e-5, 3e-5)
    f[C.SCHEDULE]["mse_mc"] *= 3
    assert C._judge_schedule(f, Env()).verdict == "violated"


def _floor(slope, diverged=False):
    rows = []
    for p, grid in (("Q", (1, 2, 3, 4)), ("S", (4, 16, 64)), ("D_f", (2, 4, 8))):
        for v in grid:
            for r in range(4):
                f = 0.25 ** v if p == "Q" else v ** slope
                rows.append(dict(param=p, value=float(v), instance=r, floor=f * (1 + 0.01 * r), eta_mu=0.5, beta=0.1,
                                 Q=8, diverged_at=7 if diverged and r == 0 and v == 4 else -1))
    return {S.FLOOR: pd.DataFrame(rows)}


def test_floor_judge_consistent_and_violated():
    assert C._judge_floor(_floor(-1.0), Env()).verdict == "consistent"
    assert C._judge_floor(_floor(0.5), Env()).verdict == "violated"  # a floor growing with the batch size
    assert C._judge_floor(_floor(-0.5), Env()).verdict == "inconclusive"  # flatter: other terms of eq. (9)
    assert C._judge_floor(_floor(-1.0, diverged=True), Env()).verdict == "violated"


def _table2(stoc=100.0, other=1000.0, status="reached"):
    frames = {}
    for role, n in (("stocbio", stoc), ("bsa", other), ("ttsa", other)):
        st_ = status if role == "bsa" else "reached"
        rows = [dict(role=role, algorithm=role, instance=r, status=st_, K=10 if st_ == "reached" else -1, eps=0.5,
                     kappa=2.0, samples=n * (1 + 0.01 * r) if st_ == "reached" else math.nan,
                     struct_samples=n * (1 + 0.01 * r), struct_sd=0.0, spent=1e5, horizon=1000, budget=2000,
                     steps_run=64, avg_grad_phi_sq=0.4 if st_ == "reached" else 2.0, min_grad_phi_sq=0.1,
                     diverged_at=-1) for r in range(8)]
        frames[S.table2_name(role)] = pd.DataFrame(rows)
    return frames


def test_table2_judge():
    assert C._judge_table2(_table2(), Env()).verdict == "holds"
    assert C._judge_table2(_table2(stoc=5000.0), Env()).verdict == "inconclusive"
    # an audited arm that does not reach eps within an ample budget
    assert C._judge_table2(_table2(status="budget"), Env()).verdict == "violated"
    # an arm counting fewer samples than its parameters spend
    f = _table2()
    f[S.table2_name("stocbio")]["samples"] *= 0.5
    assert C._judge_table2(f, Env()).verdict == "violated"


# ====================================================================== the claims on quick
@pytest.fixture(scope="module")
def quick(run_quick):
    verdicts, results = run_quick(IDS)
    return {v.id: v for v in verdicts}, results


def test_order_after_warm_start():
    ids = [c.id for c in all_claims()]
    i = ids.index("icml21.warm-start")
    assert ids[i + 1: i + 7] == IDS


@pytest.mark.parametrize("cid", IDS)
def test_claims_run_on_quick(quick, cid):
    v = quick[0][cid]
    assert v.verdict in ("holds", "consistent", "inconclusive"), v.reason  # the paper's algorithms: never violated
    figs = v.details.get("figures") or [v.details["figure"]]
    assert figs and all(f["series"] for f in figs)
    assert get_claim(cid).roles


@pytest.mark.parametrize("cid", ["icml21.prop3", "icml21.batch-schedule"])
def test_paper_estimators_match_their_exact_moments(quick, cid):
    """The paper's estimators agree with their exact moments, at the stated resolution (holds, not merely
    not violated)."""
    assert quick[0][cid].verdict == "holds", quick[0][cid].reason


def _frame(results, name):
    return results[results["experiment"] == name]


def test_stocbio_rate_cap_is_ample(quick):
    df = _frame(quick[1], S.RATE)
    assert (df["status"] == "reached").all()
    assert int(df["budget"].iloc[0]) == S.RATE_CAP["quick"] >= 3 * int(df["K"].max())


def test_table2_budgets_are_ample(quick):
    for role in S.TABLE2_ARMS:
        df = _frame(quick[1], S.table2_name(role))
        assert (df["status"] == "reached").all(), role
        assert int(df["budget"].iloc[0]) == S.TABLE2_BUDGET["quick"][role] >= 3 * C.TABLE2_NEED[role]
        assert C.TABLE2_NEED[role] >= int(df["K"].max()), role  # the stated need covers this profile's runs
