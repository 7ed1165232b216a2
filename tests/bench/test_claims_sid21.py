"""Claims of SID (Grazzi, Pontil, Salzo, AISTATS 2021): the quick profile's verdicts, the exact moments behind the
Monte Carlo comparisons (against brute-force enumeration), the problem constructions, and judges that can fail
(synthetic frames and the quick results with a planted 10% mean error or a factor-2 variance error)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch

import bilevelbench.algorithms as al
from bilevelbench.algorithms.stochastic_solvers import stochastic_fixed_point
from bilevelbench.bench.claims import all_claims, get_claim
from bilevelbench.bench.claims import sid21 as C
from bilevelbench.bench.experiments import sid as E
from bilevelbench.bench.sweep import Env

IDS = ["sid21.thm3.1", "sid21.thm3.2", "sid21.thm3.3", "sid21.thm3.4", "sid21.eq14", "sid21.thm4.1", "sid21.thm4.2",
       "sid21.thm4.2.rate", "sid21.cor4.1", "sid21.rem4.1", "sid21.thm4.3", "sid21.thm5.1", "sid21.fig1"]
#: the quick profile's verdicts (deterministic runs). thm3.1: the bias of the paper's SID is within 0.4% of the
#: bound (exact moments), which no Monte Carlo decides; fig1: Batch converges within a few epochs on this family
EXPECTED = {"sid21.thm3.1": "inconclusive", "sid21.thm3.2": "holds", "sid21.thm3.3": "holds", "sid21.thm3.4": "holds",
            "sid21.eq14": "consistent", "sid21.thm4.1": "holds", "sid21.thm4.2": "holds",
            "sid21.thm4.2.rate": "consistent", "sid21.cor4.1": "holds", "sid21.rem4.1": "holds",
            "sid21.thm4.3": "holds", "sid21.thm5.1": "holds", "sid21.fig1": "inconclusive"}


def _check_figure(fig):
    assert fig["type"] in ("loglog", "semilogy", "linear")
    assert fig["series"], "a figure needs at least one series"
    for s in fig["series"]:
        assert len(s["x"]) == len(s["y"]) > 0
        if "ylow" in s:
            assert len(s["ylow"]) == len(s["yhigh"]) == len(s["x"])


@pytest.fixture(scope="module")
def quick(run_quick):
    verdicts, results = run_quick(IDS)
    frames = {name: g.dropna(axis=1, how="all").reset_index(drop=True) for name, g in results.groupby("experiment")}
    return {v.id: v for v in verdicts}, frames


def test_every_claim_registered_once_with_its_roles():
    ids = [c.id for c in all_claims() if c.paper == "sid21"]
    assert sorted(ids) == sorted(IDS)
    reach = {c.id: c.reach for c in all_claims() if c.paper == "sid21"}
    assert reach["sid21.thm4.3"] == set()  # analytic: a property of the map, no algorithm runs
    for cid in ("sid21.thm3.1", "sid21.thm3.2", "sid21.thm3.3", "sid21.thm3.4", "sid21.eq14", "sid21.thm5.1",
                "sid21.fig1"):
        assert {"sid", "sid.fixed-point"} <= reach[cid], cid  # SID calls its fixed-point iteration as a component
    for cid in ("sid21.thm4.1", "sid21.thm4.2", "sid21.thm4.2.rate", "sid21.cor4.1", "sid21.rem4.1"):
        assert reach[cid] == {"sid.fixed-point"}, cid


def test_quick_profile_verdicts(quick):
    verdicts, _ = quick
    got = {k: v.verdict for k, v in verdicts.items()}
    # thm3.1: the paper's SID attains the bound to within 0.4% at one checkpoint (exact moments), so its 99%
    # interval straddles the bound or just clears it depending on the draws (and on the round-off of the
    # thread count): both verdicts are honest there, a violation would not be
    assert got.pop("sid21.thm3.1") in ("holds", "inconclusive"), verdicts["sid21.thm3.1"].reason
    expected = {k: v for k, v in EXPECTED.items() if k != "sid21.thm3.1"}
    assert got == expected, {k: v.reason for k, v in verdicts.items()}
    for v in verdicts.values():
        figs = v.details.get("figures") or [v.details["figure"]]
        for fig in figs:
            _check_figure(fig)
    assert "no Monte Carlo size can decide" in verdicts["sid21.thm3.1"].reason


# ---------------------------------------------------------------------- exact moments against enumeration
def _tiny_maps(seed=0, n=3, d=2, dx=2):
    """A finite sum of n affine maps with random per-sample H_i (symmetric), b_i, J_i."""
    rng = np.random.default_rng(seed)
    Hs = np.stack([(lambda a: 0.5 * (a + a.T) + 2 * np.eye(d))(rng.standard_normal((d, d))) for _ in range(n)])
    bs, Js = rng.standard_normal((n, d)), rng.standard_normal((n, dx, d))
    F1, f0 = rng.standard_normal((d, d)), rng.standard_normal(d)
    Gx, gx0 = rng.standard_normal((dx, d)), rng.standard_normal(dx)
    H, b = Hs.mean(0), bs.mean(0)
    ws = np.linalg.solve(H, b)
    return E.AffineMaps(Hs=Hs, bs=bs, Js=Js, H=H, b=b, J=Js.mean(0), F1=F1, f0=f0, Gx=Gx, gx0=gx0,
                        grad=rng.standard_normal(dx), w_star=ws)


def _enumerate(maps, alpha, eta, t, k, jv, S=1):
    """Exact expectations of SID's quantities by enumerating every sequence of single-sample batches (S = 1)."""
    n = maps.n
    draws = t + k + (1 if jv == "sampled" else 0)
    out = {"est": [], "w": [], "v": [], "mse": []}
    cond = {}
    for seq in itertools.product(range(n), repeat=draws):
        w = np.zeros(maps.H.shape[0])
        for j in range(t):
            i = seq[j]
            w = w + eta(j) * (w - alpha * (maps.Hs[i] @ w - maps.bs[i]) - w)
        gf = maps.F1 @ w + maps.f0
        v = np.zeros_like(w)
        for j in range(k):
            i = seq[t + j]
            v = v + eta(j) * (v - alpha * maps.Hs[i] @ v + gf - v)
        J = maps.Js[seq[-1]] if jv == "sampled" else maps.J
        est = maps.Gx @ w + maps.gx0 - alpha * J @ v
        out["est"].append(est)
        out["w"].append(np.sum((w - maps.w_star) ** 2))
        vw = np.linalg.solve(alpha * maps.H, gf)
        out["v"].append(np.sum((v - vw) ** 2))
        out["mse"].append(np.sum((est - maps.grad) ** 2))
        cond.setdefault(seq[:t], []).append(est)
    est = np.array(out["est"])
    cmeans = np.array([np.mean(c, 0) for c in cond.values()])
    cvars = np.array([np.mean(np.sum((np.array(c) - np.mean(c, 0)) ** 2, 1)) for c in cond.values()])
    return {"mean": est.mean(0), "rho": np.mean(out["w"]), "sigma": np.mean(out["v"]), "mse": np.mean(out["mse"]),
            "vm": np.mean(np.sum((cmeans - est.mean(0)) ** 2, 1)), "cond": cvars.mean()}


@pytest.mark.parametrize("jv", ["exact", "sampled"])
def test_sid_moments_match_enumeration(jv):
    """The second-moment recursion (sid_moments) equals the exact average over every batch sequence (3 samples,
    t = 2, k = 3: 243 or 729 equally likely sequences); decreasing steps so that every j has its own eta_j.
    Tolerance: float64 round-off of sums of a few hundred O(1) terms (1e-10 relative)."""
    maps = _tiny_maps()
    alpha, eta = 0.3, (lambda j: 0.9 / (1.0 + 0.5 * j))
    got = E.sid_moments(maps, alpha, 1, eta, [2], jv, ks=[3])[0]
    want = _enumerate(maps, alpha, eta, 2, 3, jv)
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-10)
    for key in ("rho", "sigma", "mse", "vm", "cond"):
        assert got[key] == pytest.approx(want[key], rel=1e-10), key


def test_fixed_point_moments_batches_of_two():
    """A batch of S = 2 drawn with replacement: the recursion against the enumeration of the n^2 ordered pairs per
    step (t = 2 steps of a 3-sample sum: 81 sequences)."""
    maps = _tiny_maps(seed=1)
    alpha, eta = 0.4, (lambda j: 0.7)
    m, M = E.fixed_point_moments(maps, alpha, 2, eta, [2])[2]
    ws = []
    for seq in itertools.product(range(maps.n), repeat=4):
        w = np.zeros(2)
        for j in range(2):
            i1, i2 = seq[2 * j], seq[2 * j + 1]
            HB, bB = (maps.Hs[i1] + maps.Hs[i2]) / 2, (maps.bs[i1] + maps.bs[i2]) / 2
            w = w + eta(j) * (w - alpha * (HB @ w - bB) - w)
        ws.append(w)
    ws = np.array(ws)
    np.testing.assert_allclose(m, ws.mean(0), rtol=1e-12)
    np.testing.assert_allclose(M, ws.T @ ws / len(ws), rtol=1e-12)


def test_affine_maps_reproduce_the_problems_oracles():
    """AffineMaps read from the closed forms reconstruct the per-sample maps at a random point (round-off)."""
    for instance in ("sq", "coupled"):
        prob = E.mc_problem(instance, 1)
        x = E.sq_x(prob)
        maps = E.affine_maps(prob, x)
        w = torch.randn(1, prob.dim_y, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
        v = torch.randn(1, prob.dim_y, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
        for i in (0, 7):
            idx = torch.full((1, 1), i)
            np.testing.assert_allclose(prob._grad_y_G(x, w, idx)[0].numpy(), maps.Hs[i] @ w[0].numpy() - maps.bs[i],
                                       atol=1e-12)
            np.testing.assert_allclose(prob._jvp_G(x, w, v, idx)[0].numpy(), maps.Js[i] @ v[0].numpy(), atol=1e-12)
        np.testing.assert_allclose(maps.Hs.mean(0), maps.H, atol=1e-12)  # the finite sum's mean is g exactly
        np.testing.assert_allclose(maps.Js.mean(0), maps.J, atol=1e-12)


# ---------------------------------------------------------------------- constructions
def test_replicated_family_has_identical_instances():
    prob = E.sq_problem(3)
    assert torch.equal(prob.A[0], prob.A[2]) and torch.equal(prob.Xg[0], prob.Xg[1])


def test_minibatch_logistic_is_unbiased_and_at_its_lambda():
    """The mean over all n samples of the per-sample maps equals the full gradient / Hessian product (float64
    round-off: sums of n = 16 terms of size O(1), 1e-12 leaves 3 orders of margin); the constants are those of
    g(log lam, .): mu = lam, L = lam + K."""
    prob = E.MiniBatchLogistic(dim_x=1, dim_y=3, kappa=20.0, n_train=16, batch=2, lam=[0.1])
    gen = torch.Generator().manual_seed(0)
    x = prob.x_at()
    y = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    v = torch.randn(2, 3, generator=gen, dtype=torch.float64)
    idx = torch.arange(16).expand(2, 16)
    assert torch.allclose(prob._grad_y_G(x, y, idx), prob._grad_y_g(x, y), atol=1e-12)
    assert torch.allclose(prob._hvp_G(x, y, v, idx), prob._hvp(x, y, v), atol=1e-12)
    assert prob.constants.mu == pytest.approx(0.1) and prob.constants.L == pytest.approx(0.1 + prob.K)
    assert torch.equal(prob.Xb[0], prob.Xb[1])


def test_coupled_quadratic_has_the_quadratic_mean_and_correlated_samples():
    prob = E.mc_problem("coupled", 2)
    mean = E.an.make_problem("quadratic", dim_x=2, dim_y=4, kappa=4.0, seed=0, batch=1)
    x = E.sq_x(prob)
    assert torch.allclose(prob.hypergradient(x), mean.hypergradient(x[:1]).expand(2, -1), atol=1e-12)
    maps = E.affine_maps(E.mc_problem("coupled", 1), E.sq_x(E.mc_problem("coupled", 1)))
    cjh = np.einsum("nai,nij->aj", maps.Js - maps.J, maps.Hs - maps.H) / maps.n
    assert np.linalg.norm(cjh) > 0.1 * np.linalg.norm(maps.J) * np.linalg.norm(maps.H)


# ---------------------------------------------------------------------- SID reaches its fixed-point component
def test_sid_runs_its_chains_through_the_fixed_point_component():
    calls = []

    def fp(T_hat, w0, steps, eta_t):
        calls.append(steps)
        return stochastic_fixed_point(T_hat, w0, steps, eta_t)

    prob = E.sq_problem(2)
    x = E.sq_x(prob)
    kw = dict(alpha=0.5, S=2, t=3, k=4, beta=0.0, generator=5)
    a = al.run("sid", prob, 1, x0=x, **kw)
    b = al.run("sid", prob, 1, x0=x, components={"sid.fixed-point": fp}, **kw)
    assert calls == [3, 4]
    assert torch.equal(a.state_last.estimate, b.state_last.estimate)


# ---------------------------------------------------------------------- the judges can fail
def test_mc_judges_see_a_10_percent_mean_error_and_a_2x_variance_error(quick):
    """The quick results with the estimates moved by 10% of ||E grad^f|| (thm3.1) or the replicates' spread around
    their mean scaled by sqrt 2 (E[V | w_t] doubled: thm3.2): violated."""
    _, frames = quick
    df = frames[E.MC]
    frame = {E.MC: df}
    for cid in ("sid21.thm3.1", "sid21.thm3.2", "sid21.thm3.4"):
        assert get_claim(cid).judge(frame, Env()).verdict != "violated"

    def moved(row, scale_spread=1.0, shift=0.0):
        E_ = np.stack([np.stack(rep) for rep in row["e"]]).astype(float)
        m = E_.mean(0)
        ex = np.asarray(row["ex_mean"], float)
        return list(m + (E_ - m) * scale_spread + shift * ex)

    def frame_with(**kw):
        out = df.copy()
        out["e"] = pd.Series([moved(r, **kw) for _, r in df.iterrows()], index=df.index, dtype=object)
        return {E.MC: out}

    assert C._judge_thm3("sid21.thm3.1")(frame_with(shift=0.1), Env()).verdict == "violated"
    assert C._judge_thm3("sid21.thm3.2")(frame_with(scale_spread=math.sqrt(2)), Env()).verdict == "violated"


def _sgd_frame(scale: float) -> dict[str, pd.DataFrame]:
    """Synthetic sgd frame: per-run errors = scale x the bound of Theorem 4.1 (constant steps)."""
    row = {"instance": "logistic", "rule": "1/L", "policy": "constant", "alpha": 1.0, "q": 0.5, "tau": 0.5, "L": 1.0,
           "sigma1p": 0.1, "sigma1": 0.1, "sigma2": 0.0, "beta": 8 / 3, "gamma": 8 / 3, "eta": 1.0, "mse0": 1.0,
           "ex_mse": math.nan}
    rng = np.random.default_rng(0)
    rows = [{**row, "t": t, "err": list(scale * C._sgd_bound("sid21.thm4.1", row, t)
                                         * (1 + 0.01 * rng.standard_normal(256)))} for t in (1, 2, 4, 8)]
    return {E.SGD: pd.DataFrame(rows)}


def test_thm41_judge_holds_and_fails():
    judge = C._judge_sgd_bound("sid21.thm4.1", ("constant",), ("logistic",))
    assert judge(_sgd_frame(0.5), Env()).verdict == "holds"
    assert judge(_sgd_frame(2.0), Env()).verdict == "violated"


def _rate_frame(power: float) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(1)
    rows = [{"instance": "logistic", "rule": rule, "policy": "decreasing", "gamma": 4.0, "t": t, "q": 0.5,
             "beta": 4.0, "sigma1": 0.1, "sigma2": 0.0, "mse0": 1.0, "ex_mse": math.nan,
             "err": list((4.0 + t) ** power * (1 + 0.05 * rng.standard_normal(64)))}
            for rule in ("1/L", "2/(L+tau)") for t in (128, 256, 512, 1024)]
    return {E.SGD: pd.DataFrame(rows)}


def test_rate_judge_consistent_and_violated():
    assert C._judge_rate(_rate_frame(-1.0), Env()).verdict == "consistent"
    assert C._judge_rate(_rate_frame(-0.5), Env()).verdict == "violated"
    diverged = _rate_frame(-1.0)
    errs = list(diverged[E.SGD]["err"])
    errs[7] = [math.inf] * 64  # t = 1024 of the second rule: every run diverged
    diverged[E.SGD]["err"] = pd.Series(errs, dtype=object)
    assert C._judge_rate(diverged, Env()).verdict == "violated"


def _fig1_frame(const_slope: float) -> dict[str, pd.DataFrame]:
    rng = np.random.default_rng(2)
    rows = []
    for n_reg in (1, 5):
        for ep in (2, 4, 8, 16):
            for variant, val in (("Batch", 1.0), ("Stoch const", 0.1 * ep ** const_slope), ("Stoch dec", 0.1 / ep)):
                noise = 0.0 if variant == "Batch" else 0.05
                rows.append({"variant": variant, "n_reg": n_reg, "epochs": ep, "t": ep,
                             "err": list(val * (1 + noise * rng.standard_normal(64)))})
    return {E.FIG1: pd.DataFrame(rows)}


def test_fig1_judge_holds_and_fails():
    assert C._judge_fig1(_fig1_frame(0.0), Env()).verdict == "holds"  # const plateaus
    assert C._judge_fig1(_fig1_frame(-1.0), Env()).verdict == "violated"  # const keeps decreasing


def test_thm43_judge_fails_when_variance_exceeds_bound():
    df = pd.DataFrame({"instance": [0, 0], "radius": [0.1, 1.0], "var": [1.0, 3.0], "bound": [2.0, 2.0]})
    assert C._judge_thm43({E.MAP_VARIANCE: df}, Env()).verdict == "violated"
    df["var"] = [1.0, 1.5]
    assert C._judge_thm43({E.MAP_VARIANCE: df}, Env()).verdict == "holds"
