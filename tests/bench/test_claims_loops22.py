"""Claims of the Loops paper (bench/claims/loops22.py, bench/experiments/loops.py): every claim gives a real verdict
on the quick profile with its figures, the budgets are ample for the paper's algorithm, the exact ITD floor is right,
and the verdict rules can fail (synthetic frames that hold and that violate)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import bilevelbench.analytic as an
from bilevelbench.bench.claims import all_claims
from bilevelbench.bench.claims import loops22 as C
from bilevelbench.bench.experiments import loops as X
from bilevelbench.bench.judging import VERDICTS
from bilevelbench.bench.sweep import Env
from bilevelbench.bounds import loops22 as B

IDS = [c.id for c in all_claims() if c.paper == "loops22"]
EPS = float(np.finfo(np.float64).eps)


def _check_figure(fig):
    assert fig["type"] in ("loglog", "semilogy", "linear")
    assert fig["series"], fig["title"]
    for s in fig["series"]:
        assert len(s["x"]) == len(s["y"]) > 0, s["label"]


@pytest.fixture(scope="module")
def quick(run_quick):
    verdicts, results = run_quick(IDS)
    return {v.id: v for v in verdicts}, results


def test_every_loops_claim_is_registered_with_its_roles_and_bounds():
    assert IDS == ["loops22.cor1", "loops22.cor2", "loops22.cor3", "loops22.cor4", "loops22.n-loop-helps",
                   "loops22.cor5", "loops22.cor6", "loops22.thm4", "loops22.thm4.scaling", "loops22.thm3-vs-thm4",
                   "loops22.table3"]
    claims = {c.id: c for c in all_claims()}
    for cid in IDS[:5]:
        assert claims[cid].roles == ("aid-bio",) and "solver.gd" in claims[cid].reach
    for cid in IDS[5:]:
        assert claims[cid].roles == ("itd-bio",) and "itd.hypergradient" in claims[cid].reach
    for cid in IDS[:-2] + ["loops22.thm3-vs-thm4"]:
        assert claims[cid].bounds, cid


def test_quick_profile_gives_real_verdicts_with_figures(quick):
    verdicts, _ = quick
    assert set(verdicts) == set(IDS)
    for cid, v in verdicts.items():
        assert v.verdict in VERDICTS and v.verdict != "error", (cid, v.reason, v.traceback)
        figs = v.details.get("figures") or [v.details["figure"]]
        for f in figs:
            _check_figure(f)


def test_quick_verdicts_of_the_papers_algorithms(quick):
    verdicts, _ = quick
    want = {"loops22.cor1": "consistent", "loops22.cor2": "consistent", "loops22.cor3": "consistent",
            "loops22.cor4": "consistent", "loops22.n-loop-helps": "holds", "loops22.cor5": "consistent",
            "loops22.cor6": "holds", "loops22.thm4": "holds", "loops22.thm4.scaling": "consistent",
            "loops22.thm3-vs-thm4": "consistent"}
    for cid, verdict in want.items():
        assert verdicts[cid].verdict == verdict, (cid, verdicts[cid].reason)
    # Table 3: after K = 100 No-loop ITD is still descending on our data, so the plateau is not seen yet
    assert verdicts["loops22.table3"].verdict == "inconclusive"
    assert "plateau no" in verdicts["loops22.table3"].reason


def test_budgets_are_at_least_three_times_what_the_papers_algorithm_needs(quick):
    """Non-convergence within the cap is a violation: the caps must be ample for the paper's algorithm (the
    issue's rule: >= 3x the steps it needs on the instance, measured)."""
    _, results = quick
    for name in [*X.AID_RATE.values(), X.ITD_RATE]:
        df = results[results["experiment"] == name]
        assert len(df) and (df["status"] == "reached").all(), name
        assert 3 * df["K"].max() <= df["budget"].min(), (name, df["K"].max(), df["budget"].min())
    gap = results[results["experiment"] == X.FLOOR_GAP]
    assert gap["settled"].astype(bool).all()
    assert 3 * gap["settled_at"].max() <= gap["budget"].min()


# ---------------------------------------------------------------------- the exact floor of ITD on quadratics
def _itd_limit(d, alpha, beta, N, steps):
    """Warm-started ITD-BiO (Loops Alg. 2) on the affine data ``d`` of a quadratic instance, written out with
    numpy: N GD steps on y, the Prop. 2 estimate through them, x <- x - beta est; returns x after ``steps``."""
    A, Bm, e = d["A"], d["B"], d["e"]
    x, y = np.zeros(Bm.shape[1]), np.zeros(A.shape[0])
    I = np.eye(A.shape[0])
    for _ in range(steps):
        ys = []
        for _ in range(N):
            ys.append(y)
            y = y - alpha * (A @ y - Bm @ x - e)
        u = d["Fxy"].T @ x + d["Fyy"] @ y + d["fy"]
        est = d["Fxx"] @ x + d["Fxy"] @ y + d["fx"]
        for _ in reversed(ys):
            est = est + alpha * Bm.T @ u
            u = (I - alpha * A) @ u
        x = x - beta * est
    return x


def test_itd_quadratic_floor_is_the_construction_floor_and_the_limit_of_the_iteration():
    p = an.make_problem("itd-lower-bound", kappa=4.0, dim_x=4, dim_y=4, batch=2, seed=3)
    c = p.constants
    for r in range(2):
        d = X.probe_quadratic(p, r, 1e3 * EPS)
        for N, alpha in ((1, 1.0), (3, 0.4)):
            got = B.itd_quadratic_floor(d["A"], d["B"], d["e"], d["Fxx"], d["Fxy"], d["Fyy"], d["fx"], d["fy"],
                                        alpha, N)
            assert got == pytest.approx(B.itd_floor(c.L, c.mu, c.extra["M_y"], alpha, N), rel=1e-12)
    # a generic quadratic instance (the ridge family with grad_y f shifted, so that the floor is positive): the
    # fixed point is where the written-out iteration goes
    q = an.make_problem("quadratic", kappa=3.0, dim_x=3, dim_y=4, lam=1.0, batch=1, seed=1)
    d = X.probe_quadratic(q, 0, 1e3 * EPS)
    d["fy"] = d["fy"] + np.array([0.3, -0.2, 0.1, 0.4])
    fp = B.itd_quadratic_fixed_point(d["A"], d["B"], d["e"], d["Fxx"], d["Fxy"], d["Fyy"], d["fx"], d["fy"], 0.5, 2)
    x = _itd_limit(d, 0.5, 1.0 / q.constants.L_phi, 2, 20_000)
    assert np.linalg.norm(x - fp.x_hat) <= 1e-9 * (1 + np.linalg.norm(fp.x_hat))
    assert float(fp.grad_phi @ fp.grad_phi) > 1e-3
    # the ridge quadratic itself: the fixed point is the minimiser x_c, floor 0 to round-off
    d0 = X.probe_quadratic(q, 0, 1e3 * EPS)
    fp0 = B.itd_quadratic_fixed_point(d0["A"], d0["B"], d0["e"], d0["Fxx"], d0["Fxy"], d0["Fyy"], d0["fx"], d0["fy"],
                                      0.5, 2)
    assert np.allclose(fp0.x_hat, q.x_opt[0].numpy(), atol=1e-12) and np.linalg.norm(fp0.grad_phi) < 1e-12


def test_probe_refuses_a_problem_that_is_not_quadratic():
    p = an.make_problem("quadratic", kappa=3.0, dim_x=3, dim_y=3, nonconvex=0.25, batch=1, seed=0)
    with pytest.raises(ValueError, match="not affine"):
        X.probe_quadratic(p, 0, 1e3 * EPS)


# ---------------------------------------------------------------------- the rules can fail
def _lb_frame(min_ratio=1.0 + 1e-9, bias_ratio=1.0, traj_err=1e-15):
    rows = []
    for kappa in (2.0, 4.0):
        for N in (1, 2, 4):
            floor = kappa**2 * 0.5 ** (2 * N)
            rows.append({"kappa": kappa, "rule": "1/L", "alpha": 1.0, "alpha_mu": 1 / kappa, "N": N, "beta": 0.1,
                         "K": 10, "instance": 0, "L": 1.0, "mu": 1 / kappa, "M": 1.0, "min_grad_sq": min_ratio * floor,
                         "last_grad_sq": floor, "bias_sq": bias_ratio * floor, "floor": floor, "thm4_c1": 2 * floor,
                         "traj_err": traj_err, "traj_rtol": 1e-12, "floor_rtol": 1e-13, "algorithm": "itd-bio"})
    return {X.LOWER_BOUND: pd.DataFrame(rows)}


def test_thm4_rule_holds_and_fails_on_both_sides():
    env = Env()
    assert C._judge_thm4(_lb_frame(), env).verdict == "holds"
    # 1% below the exact floor is far outside round-off: violated
    assert C._judge_thm4(_lb_frame(min_ratio=0.99), env).verdict == "violated"
    # a floor 1% ABOVE the exact one still satisfies the lower bound, but contradicts the algorithm's exact value
    v = C._judge_thm4(_lb_frame(bias_ratio=1.01), env)
    assert v.verdict == "violated" and "floor: violated" in v.reason
    assert C._judge_thm4(_lb_frame(traj_err=1e-6), env).verdict == "violated"


def _gap_frame(settled=True, floor_shift=0.0):
    rows = []
    for fam, exact in (("itd-lower-bound", 9.0), ("quadratic", 0.0)):
        for am in (0.125, 0.0625):
            for r in range(2):
                rows.append({"family": fam, "kappa": 4.0, "alpha": am * 4, "alpha_mu": am, "N": 1, "beta": 0.04,
                             "instance": r, "floor": exact + floor_shift, "exact_floor": exact, "amp_tol": 1e-13,
                             "settled": settled, "settled_at": 100 if settled else -1, "steps": 200, "budget": 600,
                             "lower_c1": 12.0 * (1 - am) ** 2, "upper_c1": 12.0 * (1 - am) ** 2 / am,
                             "algorithm": "itd-bio"})
    return {X.FLOOR_GAP: pd.DataFrame(rows)}


def test_thm3_vs_thm4_rule_needs_the_exact_floor():
    env = Env()
    assert C._judge_gap(_gap_frame(), env).verdict == "consistent"
    assert C._judge_gap(_gap_frame(settled=False), env).verdict == "violated"
    # a positive floor where the exact one is zero (and 1e-3 above the construction's): no zero-floor escape
    assert C._judge_gap(_gap_frame(floor_shift=1e-3), env).verdict == "violated"


def _rate_frame(counts: dict, status="reached"):
    """One run per kappa per regime; counts: preset -> (mv, gc) at every kappa."""
    frames = {}
    for preset, (mv, gc) in counts.items():
        rows = [{"kappa": k, "K": 10 if status == "reached" else -1, "status": status, "mv": mv, "gc_f": gc / 2,
                 "gc_g": gc / 2, "per_step_mv": mv / 10, "per_step_gc_f": gc / 20, "per_step_gc_g": gc / 20,
                 "struct_gc_f": gc / 2, "struct_gc_g": gc / 2, "steps_run": 10, "cum_sum": 1.0, "eps": 0.25,
                 "instance": 0, "avg_grad_phi_sq": 0.1, "budget": 100}
                for k in (2.0, 4.0)]
        frames[X.AID_RATE[preset]] = pd.DataFrame(rows)
    return frames


def _censored(mv, gc):
    rows = [{"kappa": k, "K": -1, "status": "budget", "mv": math.nan, "gc_f": math.nan, "gc_g": math.nan,
             "per_step_mv": mv / 10, "per_step_gc_f": gc / 20, "per_step_gc_g": gc / 20, "struct_gc_f": math.nan,
             "struct_gc_g": math.nan, "steps_run": 10, "cum_sum": 2.5, "eps": 0.25, "instance": 0,
             "avg_grad_phi_sq": 0.25, "budget": 10} for k in (2.0, 4.0)]
    return pd.DataFrame(rows)


def test_n_loop_rule_holds_fails_and_cannot_refute_with_a_lower_bound():
    env = Env()
    good = {"loops22.cor1": (10.0, 50.0), "loops22.cor3": (10.0, 20.0), "loops22.cor4": (100.0, 30.0),
            "loops22.cor2": (100.0, 100.0)}
    f = _rate_frame(good)
    assert C._judge_n_loop({**f, X.NOLOOP_CENSORED: _censored(100.0, 100.0)}, env).verdict == "holds"
    bad = dict(good, **{"loops22.cor4": (5.0, 30.0)})  # Q-loop needs fewer MV than N-loop: reversed
    assert C._judge_n_loop({**_rate_frame(bad), X.NOLOOP_CENSORED: _censored(100.0, 100.0)}, env).verdict == "violated"
    # No-loop's lower bound (10 steps x per-step 0.1 MV... = 1 MV) below N-loop's count: undecided, not reversed
    f2 = _rate_frame({k: v for k, v in good.items() if k != "loops22.cor2"})
    f2[X.AID_RATE["loops22.cor2"]] = _censored(1.0, 1.0).iloc[:0]
    assert C._judge_n_loop({**f2, X.NOLOOP_CENSORED: _censored(1.0, 1.0)}, env).verdict == "inconclusive"
    stuck = _rate_frame(good)
    stuck[X.AID_RATE["loops22.cor1"]] = stuck[X.AID_RATE["loops22.cor1"]].assign(status="budget", K=-1)
    assert C._judge_n_loop({**stuck, X.NOLOOP_CENSORED: _censored(100.0, 100.0)}, env).verdict == "violated"


def _cor6_frame(bias_scale=1.0, floor_power=2.0):
    k = np.array([2.0, 4.0])
    floor = k**2 * (1 - 1 / k)
    return {X.COR6: pd.DataFrame({
        "kappa": k, "N": [1, 1], "instance": [0, 0], "steps": [10, 10], "alpha": 0.5, "beta": 0.01, "L": 1.0,
        "mu": 1 / k, "M": 1.0, "a": 1.0, "floor": floor, "bias_sq": bias_scale * k**floor_power * (1 - 1 / k),
        "traj_err": 1e-15, "traj_rtol": 1e-12, "floor_rtol": 1e-13, "min_avg": floor * 1.1, "last_avg": floor * 1.2,
        "last_grad_sq": floor, "max_avg_over_bound": [0.5, 0.5], "error_term": k**3, "algorithm": "itd-bio"})}


def test_cor6_rule_holds_and_fails():
    env = Env()
    assert C._judge_cor6(_cor6_frame(), env).verdict == "holds"
    # a measured floor 2% off the exact one: violated (two-sided)
    assert C._judge_cor6(_cor6_frame(bias_scale=0.98), env).verdict == "violated"
    # a measured floor growing like kappa^5: above the error term's kappa^3 (and not the exact floor)
    assert C._judge_cor6(_cor6_frame(floor_power=5.0), env).verdict == "violated"


def _hr_frame(phi1, phi20, half1, diverged=-1):
    rng = np.random.default_rng(0)
    rows = []
    for r in range(16):
        n = rng.normal(0, 1e-4)  # paired noise, small against the differences below
        rows.append({"N": 1, "instance": r, "alpha": 0.1, "beta": 0.5, "K": 100, "phi_K": phi1 + n,
                     "phi_half": half1 + n, "diverged": -1, "phi_at": [1.0, half1, phi1 + n],
                     "checkpoints": [10, 50, 100], "algorithm": "itd-bio"})
        rows.append({"N": 20, "instance": r, "alpha": 0.1, "beta": 0.5, "K": 100,
                     "phi_K": phi20 + n + rng.normal(0, 1e-4), "phi_half": 0.1, "diverged": diverged if r == 3 else -1,
                     "phi_at": [1.0, 0.1, phi20], "checkpoints": [10, 50, 100], "algorithm": "itd-bio"})
    return {X.TABLE3: pd.DataFrame(rows)}


def test_table3_rule_holds_fails_and_waits_for_the_plateau():
    env = Env()
    assert C._judge_table3(_hr_frame(0.04, 0.004, 0.0401), env).verdict == "holds"
    assert C._judge_table3(_hr_frame(0.004, 0.04, 0.0041), env).verdict == "violated"
    # No-loop still falling faster than the gap: too early to compare
    assert C._judge_table3(_hr_frame(0.04, 0.004, 0.2), env).verdict == "inconclusive"
    # an audited N-N-loop run that diverged cannot have reached the lower loss
    assert C._judge_table3(_hr_frame(0.04, 0.004, 0.0401, diverged=50), env).verdict == "violated"


def test_trajectory_rtol_covers_the_papers_itd_on_the_construction():
    """The round-off bound is a bound: the paper's ITD-BiO stays within it over a long run at a small q^N."""
    p = an.make_problem("itd-lower-bound", kappa=2.0, dim_x=4, dim_y=4, batch=2, seed=0)
    c = p.constants
    import bilevelbench.algorithms as al

    N, K, alpha, beta = 8, 400, 1.0, 1.0 / c.L_phi
    tr = al.run("itd-bio", p, K, x0=torch.zeros(2, 4, dtype=torch.float64), alpha=alpha, beta=beta, N=N,
                scorer=lambda x, y: {"g": (p._hypergradient(x) ** 2).sum(-1)}, keep_iterates=False)
    exact = np.asarray(B.itd_trajectory(c.L, c.mu, 1.0, c.extra["a"], alpha, beta, N, K))
    err = np.max(np.abs(tr.metrics["g"].numpy() / exact[:, None] - 1))
    assert err <= X.trajectory_rtol(K, N, 4, (1 - alpha * c.mu) ** N, EPS)
