"""Claims of the SOBA framework (bench/claims/modern_soba.py, bench/experiments/modern_soba.py): every claim gives a
real verdict on the quick profile with its figures, the budgets are ample for the paper's algorithms, the exact
enumeration of SOBA's one step is exact, and the verdict rules can fail (synthetic frames that hold and violate)."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an
from bilevelbench.bench.claims import all_claims
from bilevelbench.bench.claims import modern_soba as C
from bilevelbench.bench.experiments import modern_soba as X
from bilevelbench.bench.judging import VERDICTS
from bilevelbench.bench.sweep import Env
from bilevelbench.bounds import soba22 as B

IDS = ["soba22.lemma3.8", "soba22.lemma3.9", "soba22.thm1", "saba22.thm4", "saba22.vs-soba", "saba22.memory-init",
       "srba24.scaling"]


@pytest.fixture(scope="module")
def quick(run_quick):
    verdicts, results = run_quick(IDS)
    return {v.id: v for v in verdicts}, results


def _figures(v):
    return v.details.get("figures") or [v.details["figure"]]


def test_claims_are_registered_with_roles_components_and_bounds():
    claims = {c.id: c for c in all_claims()}
    assert [c for c in IDS if c in claims] == IDS
    for cid in IDS[:3]:
        assert claims[cid].roles == ("soba",)
    for cid in IDS[3:6]:
        assert claims[cid].roles == ("saba",) and "saga.direction" in claims[cid].reach
    assert claims["srba24.scaling"].roles == ("srba",) and "sarah.direction" in claims["srba24.scaling"].reach
    for cid in IDS:
        assert claims[cid].bounds, cid
    # the baseline arms are the paper's (not audited) and say so
    for cid in ("soba22.thm1", "saba22.vs-soba", "saba22.memory-init"):
        assert "baseline" in claims[cid].audits


def test_quick_verdicts_of_the_papers_algorithms(quick):
    verdicts, _ = quick
    want = {"soba22.lemma3.8": "holds", "soba22.lemma3.9": "holds", "soba22.thm1": "consistent",
            "saba22.thm4": "holds", "saba22.vs-soba": "holds", "saba22.memory-init": "holds",
            "srba24.scaling": "consistent"}
    for cid, verdict in want.items():
        v = verdicts[cid]
        assert v.verdict in VERDICTS and v.verdict == verdict, (cid, v.verdict, v.reason, v.traceback)
        for f in _figures(v):
            assert f["series"], (cid, f["title"])
            for s in f["series"]:
                assert len(s["x"]) == len(s["y"]) > 0, (cid, s["label"])
    # the scaling claims report their exponents for the report's headline
    for cid in ("soba22.thm1", "srba24.scaling"):
        assert verdicts[cid].details["exponents"] and verdicts[cid].details["experiment"]


def test_budgets_are_at_least_three_times_what_the_papers_algorithms_need(quick):
    _, results = quick
    saba = results[(results["experiment"] == X.PL) & (results["arm"] == "saba")]
    assert len(saba) and (saba["status"] == "reached").all()
    assert 3 * saba["K"].max() <= saba["budget"].min()
    srba = results[results["experiment"] == X.SRBA]
    assert len(srba) and (srba["status"] == "reached").all()
    assert 3 * srba["K"].max() <= srba["budget"].min()
    # SOBA's floors are measured where the transient is over: the last quarter within a factor 3 of the second half
    soba = results[(results["experiment"] == X.PL) & (results["arm"] == "soba")]
    for _, r in soba.iterrows():
        g = np.asarray(r["grad_sq"])
        assert g[3 * len(g) // 4:].mean() < 3 * r["floor"], (r["scale"], r["instance"])


# ---------------------------------------------------------------------- the enumeration is exact
def _small(R=2, n=6, m=5):
    return an.make_problem(X.FAMILY, dim_x=4, dim_y=4, n=n, m=m, kappa=4.0, noise=0.5, batch=R, seed=3)


def test_pinned_draws_enumerate_the_expectation_of_one_step():
    """The mean over every pinned pair (i, j) of SOBA's next iterate is the full-batch step (the step is affine in
    the sampled terms), and a pinned pair's step is the one written out from the per-sample closed forms."""
    p = _small()
    n, m, R = p.n_g, p.n_f, p.R
    x0 = torch.randn(R, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y0 = p._y_star(x0) + 0.3
    kw = dict(x0=x0, y0=y0, rho=0.2, gamma=0.05, v_init="solve", keep_iterates=False)
    acc = None
    for i in range(n):
        for j in range(m):
            st = X.EnumerationStreams(R, n, m, [i], [j])
            s = al.run("soba", p, 1, generator=st, **kw).state_last
            st.check_used()
            vec = torch.cat([s.x, s.y, s.v], -1)
            acc = vec if acc is None else acc + vec
    full = al.run("soba", p, 1, S_g=None, S_f=None, **kw).state_last
    assert torch.allclose(acc / (n * m), torch.cat([full.x, full.y, full.v], -1), rtol=1e-12, atol=1e-12)
    # one pinned pair against the written-out step
    i, j = 4, 2
    s = al.run("soba", p, 1, generator=X.EnumerationStreams(R, n, m, [i], [j]), **kw).state_last
    ii, jj = torch.full((R, 1), i), torch.full((R, 1), j)
    # v_0 = v*(x0, y0), solved at step 0 (CG to round-off; here a dense solve)
    vs = -torch.linalg.solve(p._hess_yy(x0, y0), p._grad_y_f(x0, y0).unsqueeze(-1)).squeeze(-1)
    dz = p.per_sample("grad_y_g", x0, y0, ii)[:, 0]
    dv = p.per_sample("hvp", x0, y0, ii, vs)[:, 0] + p.per_sample("grad_y_f", x0, y0, jj)[:, 0]
    dx = p.per_sample("jvp", x0, y0, ii, vs)[:, 0] + p.per_sample("grad_x_f", x0, y0, jj)[:, 0]
    assert torch.allclose(s.y, y0 - 0.2 * dz, atol=1e-10) and torch.allclose(s.x, x0 - 0.05 * dx, atol=1e-10)
    assert torch.allclose(s.v, vs - 0.2 * dv, atol=1e-8)


def test_enumeration_streams_refuse_what_they_cannot_enumerate():
    p = _small()
    with pytest.raises(ValueError, match="n != m"):
        X.EnumerationStreams(2, 5, 5, [0], [0])
    st = X.EnumerationStreams(2, p.n_g, p.n_f, [0], [0])
    with pytest.raises(ValueError, match="more G draws"):  # two steps, one planned pair
        al.run("soba", p, 2, generator=st, keep_iterates=False)
    with pytest.raises(ValueError, match="one sample per draw"):
        al.run("soba", p, 1, generator=X.EnumerationStreams(2, p.n_g, p.n_f, [0], [0]), S_g=2, keep_iterates=False)
    st = X.EnumerationStreams(2, p.n_g, p.n_f, [0, 1], [0, 1])
    al.run("soba", p, 1, generator=st, keep_iterates=False)
    with pytest.raises(ValueError, match="planned"):
        st.check_used()


def test_second_moments_and_v_star_lipschitz_are_exact():
    p = _small()
    gen = torch.Generator().manual_seed(1)
    x, z, v = (torch.randn(p.R, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    Vz, Vv, Vx = X._second_moments(p, x, z, v)
    bz, bv, bx = (torch.zeros(p.R, dtype=torch.float64) for _ in range(3))
    for i in range(p.n_g):
        ii = torch.full((p.R, 1), i)
        bz += (p.per_sample("grad_y_g", x, z, ii)[:, 0] ** 2).sum(-1) / p.n_g
        for j in range(p.n_f):
            jj = torch.full((p.R, 1), j)
            dv = p.per_sample("hvp", x, z, ii, v)[:, 0] + p.per_sample("grad_y_f", x, z, jj)[:, 0]
            dx = p.per_sample("jvp", x, z, ii, v)[:, 0] + p.per_sample("grad_x_f", x, z, jj)[:, 0]
            bv += (dv**2).sum(-1) / (p.n_g * p.n_f)
            bx += (dx**2).sum(-1) / (p.n_g * p.n_f)
    for a, b in ((Vz, bz), (Vv, bv), (Vx, bx)):
        assert torch.allclose(a, b, rtol=1e-12)
    # v*(x) = -A^-1 w (A^-1 (B x + e) - c) on the quadratic family: Jacobian -w A^-2 B
    J = -p.w * torch.linalg.solve(p.A, torch.linalg.solve(p.A, p.B))
    want = float(torch.linalg.matrix_norm(J, ord=2).max())
    assert X.v_star_lipschitz(p) == pytest.approx(want, rel=1e-10)


def test_lemma_bounds_hold_for_gradient_descent_worst_cases():
    """Lemma 3.8 with noise-free directions on a 1-D quadratic (G = mu/2 (z - a x)^2): the bound holds for every
    state and is nearly tight as rho -> 0 when z*(x) does not move."""
    mu, rho = 0.5, 0.01
    d = 2.0
    lhs = (1 - rho * mu) ** 2 * d
    rhs = B.lemma38(d, rho, 0.0, mu, 1.0, mu**2 * d, 0.0)
    assert lhs <= rhs and rhs - lhs < 2 * rho * mu * d
    assert B.b_vz(2.0, 0.0, 0.5) == pytest.approx(8.0)
    assert B.thm4(0, 0.1, 1.0, 2.0) == 2.0 and B.thm4_rate(0.1, 1.0) == pytest.approx(-math.log(1 - 0.025))


# ---------------------------------------------------------------------- the rules can fail
def _one_step_frame(factor_z=0.5, factor_v=0.5):
    rows = [{"state": s, "steps": "T=10", "instance": r, "lhs_z": factor_z, "rhs_z": 1.0, "lhs_v": factor_v,
             "rhs_v": 1.0, "tol_z": 1e-13, "tol_v": 1e-13, "pairs": 30, "L_z_star": 1.0, "L_v_star": 2.0,
             "L_star": 2.0} for s in ("a", "b") for r in range(2)]
    return {X.ONE_STEP: pd.DataFrame(rows)}


def test_lemma_rules_hold_and_fail():
    env = Env()
    j38, j39 = C._judge_lemma("soba22.lemma3.8", "z", "z"), C._judge_lemma("soba22.lemma3.9", "v", "v")
    assert j38(_one_step_frame(), env).verdict == "holds"
    assert j39(_one_step_frame(), env).verdict == "holds"
    # 1e-6 above the bound is far outside the round-off tolerance
    assert j38(_one_step_frame(factor_z=1 + 1e-6), env).verdict == "violated"
    assert j39(_one_step_frame(factor_v=1.2), env).verdict == "violated"


def _thm1_frame(exponent=-0.5, diverged=-1, rho_factor=1.0):
    rng = np.random.default_rng(0)
    rows = []
    for arm in ("thm1", "public"):
        for T in (64, 128, 256, 512):
            for r in range(8):
                rows.append({"arm": arm, "T": T, "instance": r, "rho": T**-0.4 * rho_factor, "gamma": T**-0.6,
                             "avg_grad_sq": T**exponent * math.exp(rng.normal(0, 0.05)), "last_grad_sq": 0.1,
                             "grad0_sq": 1.0, "diverged_at": diverged if (arm, r) == ("thm1", 0) else -1,
                             "audited": arm == "thm1", "algorithm": "soba"})
    return {X.THM1: pd.DataFrame(rows)}


def test_thm1_rule_holds_and_fails():
    env = Env()
    assert C._judge_thm1(_thm1_frame(), env).verdict == "consistent"
    assert C._judge_thm1(_thm1_frame(exponent=-0.1), env).verdict == "violated"  # slower than T^-2/5
    assert C._judge_thm1(_thm1_frame(diverged=30), env).verdict == "violated"
    assert C._judge_thm1(_thm1_frame(rho_factor=2.0), env).verdict == "violated"  # not Theorem 1's steps


def _pl_frame(saba_status="reached", rate=0.1, soba_floor_power=1.0, soba_status="floor"):
    rows = []
    base = {"rho": 0.15, "gamma": 0.05, "S": 4, "mu_h": 1.0, "L_h": 1.0, "gap0": 1.0, "mp_threshold": 1e-25,
            "rate_points": 100, "diverged_at": -1, "t": [0, 4, 8], "gap": [1.0, 0.5, 0.2], "algorithm": "x"}
    for r in range(8):
        reached = saba_status == "reached"
        rows.append({**base, "arm": "saba", "scale": 1.0, "instance": r, "status": saba_status,
                     "K": 500 if reached else -1, "steps_run": 520 if reached else 2400, "budget": 2400,
                     "final_grad_sq": 1e-26 if reached else 1e-5, "final_gap": 1e-26, "floor": 1e-15,
                     "rate": rate * (1 + 0.01 * r), "bound_ratio_max": 1.0, "grad_sq": [2.0, 1.0, 1e-26]})
        for s in (1.0, 0.5, 0.25):
            fl = 1e-3 * s**soba_floor_power * (1 + 0.05 * r)
            rows.append({**base, "arm": "soba", "scale": s, "instance": r, "status": soba_status,
                         "K": 100 if soba_status == "reached" else -1, "steps_run": 800, "budget": 800,
                         "final_grad_sq": fl, "final_gap": fl, "floor": fl, "rate": 0.01, "bound_ratio_max": 2.0,
                         "grad_sq": [2.0, fl, fl]})
    return {X.PL: pd.DataFrame(rows)}


def test_thm4_and_vs_soba_rules_hold_and_fail():
    env = Env()
    assert C._judge_thm4(_pl_frame(), env).verdict == "holds"
    assert C._judge_thm4(_pl_frame(rate=0.005), env).verdict == "violated"  # slower than -ln(1 - gamma mu_h/4)
    assert C._judge_thm4(_pl_frame(saba_status="budget"), env).verdict == "violated"
    assert C._judge_vs_soba(_pl_frame(), env).verdict == "holds"
    assert C._judge_vs_soba(_pl_frame(saba_status="budget"), env).verdict == "violated"
    assert C._judge_vs_soba(_pl_frame(soba_status="reached"), env).verdict == "violated"
    assert C._judge_vs_soba(_pl_frame(soba_floor_power=-1.0), env).verdict == "violated"


def _memory_frame(loss=2.0, gain_at_1=False, diverge=False):
    rows = []
    t = list(range(0, 257, 8))
    rng = np.random.default_rng(1)
    for gap0 in (1.0, 1e-2):
        for r in range(16):
            paper = [gap0 * math.exp(-0.05 * k) for k in t]
            shift = (-loss if gain_at_1 and gap0 == 1.0 else (loss if gap0 < 1 else 0.0)) + rng.normal(0, 0.05)
            zero = [g * math.exp(shift) if k else g for g, k in zip(paper, t, strict=True)]
            if diverge and r == 0:
                paper[-1] = math.nan
            calls = [5.0 * k + 160 for k in t]
            for arm, gap in (("paper", paper), ("zero", zero)):
                rows.append({"arm": arm, "gap0": gap0, "instance": r, "n": 32, "S": 1, "epoch": 32, "t": t,
                             "gap": gap, "calls": calls if arm == "paper" else [5.0 * k for k in t],
                             "audited": arm == "paper", "algorithm": "saba"})
    return {X.MEMORY: pd.DataFrame(rows)}


def test_memory_init_rule_holds_fails_and_stays_undecided():
    env = Env()
    v = C._judge_memory(_memory_frame(), env)
    assert v.verdict == "holds" and v.measured == pytest.approx(2.0, abs=0.1)
    assert C._judge_memory(_memory_frame(gain_at_1=True), env).verdict == "violated"
    assert C._judge_memory(_memory_frame(loss=0.0), env).verdict == "inconclusive"
    assert C._judge_memory(_memory_frame(diverge=True), env).verdict == "violated"


def _srba_frame(exponent=0.5, k_exponent=0.0, status="reached"):
    """Counts = K x per-step calls with the preset's structure 3 sqrt(n + m) per step (``struct_calls``); the
    measured per-step cost grows like (n + m)^exponent and K like (n + m)^k_exponent."""
    rows = []
    for n in (16, 64, 256):
        nm = 2 * n
        K = round(300 * (nm / 32) ** k_exponent)
        for r in range(4):
            rows.append({"n": n, "m": n, "instance": r, "status": status, "K": K if status == "reached" else -1,
                         "eps": 1e-3, "gap": 1e-2, "rho": 0.1, "gamma": 0.03, "q": 6, "S_g": 6, "L_sample_yy": 3.0,
                         "L_ref": 3.0, "steps_run": K, "budget": 4 * K, "calls": K * 3 * nm**exponent * (1 + 1e-3 * r),
                         "per_step_calls": 3 * nm**exponent, "struct_calls": K * 3 * nm**0.5,
                         "avg_grad_phi_sq": 1e-3, "last_grad_phi_sq": 1e-20, "diverged_at": -1, "algorithm": "srba"})
    return {X.SRBA: pd.DataFrame(rows)}


def test_srba_rule_holds_and_fails():
    env = Env()
    assert C._judge_srba(_srba_frame(), env).verdict == "consistent"
    assert C._judge_srba(_srba_frame(exponent=1.0), env).verdict == "violated"  # a full pass per step
    assert C._judge_srba(_srba_frame(k_exponent=0.25), env).verdict == "violated"  # iterations growing with n
    assert C._judge_srba(_srba_frame(exponent=0.3), env).verdict == "violated"  # counted below its own structure
    assert C._judge_srba(_srba_frame(status="budget"), env).verdict == "violated"
