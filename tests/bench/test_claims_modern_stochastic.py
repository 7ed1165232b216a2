"""Claims of the modern stochastic solvers (bsa18.estimator, bsa18.bias, bsa18.rate, ttsa20.rate, mrbo21.rate,
vrbo21.rate, amigo22.warm-start): the quick profile's verdicts, the bounds against brute force, the budgets of the
non-convergence rule, and judges that fail on planted errors in the quick results."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import bilevelbench.bounds as bd
from bilevelbench.bench.claims import all_claims, get_claim
from bilevelbench.bench.claims import modern_stochastic as C
from bilevelbench.bench.experiments import modern_stochastic as E
from bilevelbench.bench.sweep import Env
from bilevelbench.bounds import modern as bm
from bilevelbench.bounds.tables import eps_exponent, rows_where

IDS = ["bsa18.estimator", "bsa18.bias", "bsa18.rate", "ttsa20.rate", "mrbo21.rate", "vrbo21.rate",
       "amigo22.warm-start"]
EXPECTED = {"bsa18.estimator": "holds", "bsa18.bias": "holds", "bsa18.rate": "consistent",
            "ttsa20.rate": "consistent", "mrbo21.rate": "consistent", "vrbo21.rate": "consistent",
            "amigo22.warm-start": "holds"}
ENV = Env(profile="quick")


@pytest.fixture(scope="module")
def quick(run_quick):
    verdicts, results = run_quick(IDS)
    frames = {name: g.dropna(axis=1, how="all").reset_index(drop=True) for name, g in results.groupby("experiment")}
    return {v.id: v for v in verdicts}, frames


def _judge(cid, frames):
    c = get_claim(cid)
    return c.judge({n: frames[n] for n in c.experiments}, ENV)


# ---------------------------------------------------------------------- registry and quick verdicts
def test_registered_with_their_roles():
    reach = {c.id: c.reach for c in all_claims() if c.id in IDS}
    assert sorted(reach) == sorted(IDS)
    assert reach["bsa18.estimator"] == reach["bsa18.bias"] == {"neumann.randomized"}
    assert reach["bsa18.rate"] == {"bsa", "neumann.randomized"}
    assert reach["ttsa20.rate"] == {"ttsa", "neumann.randomized"}
    assert reach["mrbo21.rate"] == {"mrbo", "storm.direction", "stocbio.hinv"}
    assert reach["vrbo21.rate"] == {"vrbo", "sarah.direction", "stocbio.hinv"}
    assert reach["amigo22.warm-start"] == {"amigo"}  # the restarted arm is a baseline: not audited
    assert get_claim("amigo22.warm-start").roles == ("amigo",)


def test_quick_profile_verdicts(quick):
    verdicts, _ = quick
    assert {k: v.verdict for k, v in verdicts.items()} == EXPECTED, {k: v.reason for k, v in verdicts.items()}
    for v in verdicts.values():
        figs = v.details.get("figures") or [v.details["figure"]]
        for fig in figs:
            assert fig["series"] and all(len(s["x"]) == len(s["y"]) > 0 for s in fig["series"])
    for cid in ("bsa18.rate", "ttsa20.rate", "mrbo21.rate", "vrbo21.rate"):
        exps = verdicts[cid].details["exponents"]
        assert all(math.isfinite(e["fitted"]) and e["ci"][0] <= e["fitted"] <= e["ci"][1] for e in exps.values())
    assert "NOT FOUND" in verdicts["bsa18.rate"].reason and "NOT FOUND" in verdicts["ttsa20.rate"].reason
    assert verdicts["amigo22.warm-start"].measured > 1.0


def test_exponents_are_table_2s():
    """bounds.modern states the exponents ICML 2021 Table 2 restates for BSA and TTSA."""
    bsa = {r.metric: eps_exponent(r) for r in rows_where(*C.BSA_ROWS)}
    assert bsa["Gc(F)"] == bm.order_exponent(bd.BOUNDS["bsa18.samples_f"]) == 2.0
    assert max(bsa.values()) == bm.order_exponent(bd.BOUNDS["bsa18.samples_g"]) == 3.0
    assert {eps_exponent(r) for r in rows_where(*C.TTSA_ROWS)} == {bm.order_exponent(bd.BOUNDS["ttsa20.samples"])}
    assert bm.order_exponent(bd.BOUNDS["ttsa20.rate"]) == -0.4
    assert bm.order_exponent(bd.BOUNDS["mrbo21.samples"]) == bm.order_exponent(bd.BOUNDS["vrbo21.samples"]) == 1.5


# ---------------------------------------------------------------------- bounds against brute force
def _tiny(seed=0, n=3, d=3, dx=2):
    """n random per-sample SPD Hessians with spectra in [mu, L], their mean, a cross derivative, a vector."""
    g = torch.Generator().manual_seed(seed)
    Hs = []
    for _ in range(n):
        Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
        Hs.append(Q @ torch.diag(torch.rand(d, generator=g, dtype=torch.float64) * 1.5 + 0.5) @ Q.T)
    Hs = torch.stack(Hs)
    J = torch.randn(dx, d, generator=g, dtype=torch.float64)
    v = torch.randn(d, generator=g, dtype=torch.float64)
    L = float(torch.linalg.eigvalsh(Hs).max())
    return Hs, Hs.mean(0), J, v, L


@pytest.mark.parametrize("b", [1, 2, 3, 4])
def test_neumann_mean_is_the_estimators_expectation(b):
    """bsa18.neumann.mean equals the average over every p in {0..b-1} and every sequence of per-sample factors of
    b eta prod_(i<=p) (I - eta H_i) v, independent of the algorithm's code (float64 round-off)."""
    Hs, H, _, v, L = _tiny()
    eta, n, d = 1.0 / L, Hs.shape[0], Hs.shape[1]
    acc, N = torch.zeros_like(v), 0
    for seq in itertools.product(range(n), repeat=b - 1):
        for p in range(b):
            u = v
            for i in range(p):
                u = u - eta * Hs[seq[i]] @ u
            acc, N = acc + b * eta * u, N + 1
    got = bm.neumann_mean(H[None], v[None], eta, b)[0]
    assert torch.allclose(acc / N, got, rtol=1e-13, atol=0)
    # and the closed form H^-1 (I - (I - eta H)^b) v
    closed = torch.linalg.solve(H, v - torch.linalg.matrix_power(torch.eye(d, dtype=H.dtype) - eta * H, b) @ v)
    assert torch.allclose(got, closed, rtol=1e-12, atol=0)


@pytest.mark.parametrize("seed", range(5))
def test_bias_exact_and_bound(seed):
    """bsa18.bias.exact is J (H^-1 - eta sum_(j<b) (I - eta H)^j) v, and bsa18.bias bounds its norm with C_gxy =
    ||J||, C = ||v||, mu = lambda_min(H), L >= every sample's curvature."""
    Hs, H, J, v, L = _tiny(seed)
    eta = 1.0 / L
    mu = float(torch.linalg.eigvalsh(H).min())
    for b in range(0, 7):
        ex = bm.bias_exact(H[None], J[None], v[None], eta, b)[0]
        want = J @ (torch.linalg.solve(H, v) - (bm.neumann_mean(H[None], v[None], eta, b)[0] if b else 0))
        assert torch.allclose(ex, want, rtol=1e-12, atol=1e-14)
        assert float(ex.norm()) <= bm.bias_bound(float(torch.linalg.matrix_norm(J, 2)), float(v.norm()), mu, L, b) \
            * (1 + 1e-12)


def test_bias_bound_is_attained_along_the_mu_direction():
    """The bound is tight: J along the mu-eigenvector's image, v the mu-eigenvector."""
    H = torch.diag(torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64))
    v = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    J = torch.tensor([[3.0, 0.0, 0.0]], dtype=torch.float64)
    for b in (1, 3, 6):
        ex = float(bm.bias_exact(H[None], J[None], v[None], 0.5, b)[0].norm())
        assert ex == pytest.approx(bm.bias_bound(3.0, 1.0, 0.5, 2.0, b), rel=1e-14)


# ---------------------------------------------------------------------- budgets of the non-convergence rule
def test_horizon_targets_are_met_at_a_third_of_the_largest_horizon(quick):
    """The paper's BSA and TTSA meet the convergence target at a grid horizon <= K_max/3 (>= 3x budget)."""
    _, frames = quick
    for role, name in (("bsa", E.BSA), ("ttsa", E.TTSA)):
        df = frames[name]
        Kmax = int(df["horizon"].max())
        K3 = max(k for k in df["horizon"].unique() if 3 * k <= Kmax)
        crit = float(df[df["horizon"] == K3]["avg"].mean())
        assert crit <= C.HORIZON_TARGET[role]["quick"], (role, K3, crit)
        assert (df["diverged_at"] < 0).all()


@pytest.mark.parametrize("name", [E.MRBO, E.VRBO, E.AMIGO_WARM])
def test_eps_caps_are_ample(quick, name):
    """Each point's cap is >= 3x the iterations the paper's algorithm needed to meet eps (mean criterion)."""
    _, frames = quick
    for pt in C._eps_points(frames[name]):
        K, _, cens = C._to_eps(pt, np.arange(pt["grad_sq"].shape[1]), "samples_f")
        assert not cens and 3 * K <= pt["cap"], (name, pt["eps"], K, pt["cap"])


def test_points_share_their_instances(quick):
    """Common random numbers: the first record (x_0) of run r is the same at every grid point and in both AmIGO arms."""
    _, frames = quick
    for names in ((E.MRBO,), (E.VRBO,), (E.AMIGO_WARM, E.AMIGO_COLD)):
        first = {tuple(np.round([row[0] for row in f.sort_values("instance")["grad_sq"]], 12))
                 for n in names for _, f in frames[n].groupby("eps")}
        assert len(first) == 1, names


# ---------------------------------------------------------------------- judges that can fail
def test_estimator_judge_sees_a_small_mean_error(quick):
    _, frames = quick
    f = {E.NEUMANN: frames[E.NEUMANN].assign(err_v=frames[E.NEUMANN]["err_v"] + 1e-6)}
    assert _judge("bsa18.estimator", f).verdict == "violated"


def test_bias_judge_sees_a_bias_above_the_bound(quick):
    _, frames = quick
    df = frames[E.NEUMANN]
    assert _judge("bsa18.bias", {E.NEUMANN: df}).verdict == "holds"
    worse = df.assign(bias_measured=df["bound_point"] * 1.01, bias_exact=df["bound_point"] * 1.01)
    v = _judge("bsa18.bias", {E.NEUMANN: worse})
    assert v.verdict == "violated" and "pointwise: violated" in v.reason
    off = df.assign(bias_measured=df["bias_measured"] * (1 + 1e-9))
    assert "exact: violated" in _judge("bsa18.bias", {E.NEUMANN: off}).reason


def test_horizon_judges_fail_on_a_slow_decay_and_an_undercount(quick):
    _, frames = quick
    for cid, name in (("bsa18.rate", E.BSA), ("ttsa20.rate", E.TTSA)):
        df = frames[name]
        K = df["horizon"].astype(float)
        slow = df.assign(avg=df["avg"] * (K / 16.0) ** 0.3)  # decays 0.3 slower in K
        assert _judge(cid, {name: slow}).verdict == "violated", cid
        under = df.assign(samples_g=df["samples_g"] * (16.0 / K) ** 0.5)
        v = _judge(cid, {name: under})
        assert v.verdict == "violated" and "BELOW" in v.reason, cid
        div = df.assign(diverged_at=np.where(df["instance"] == 0, 3, df["diverged_at"]))
        assert _judge(cid, {name: div}).verdict == "violated", cid


def test_eps_judges_fail_on_a_faster_growth_and_on_a_missed_eps(quick):
    _, frames = quick
    for cid, name in (("mrbo21.rate", E.MRBO), ("vrbo21.rate", E.VRBO)):
        df = frames[name]
        # every count multiplied by (1/eps)^1.5: the exponent grows by 1.5
        grow = df.assign(samples_f=[list(np.array(s) * e ** -1.5) for s, e in zip(df["samples_f"], df["eps"],
                                                                                   strict=True)])
        v = _judge(cid, {name: grow})
        assert v.verdict == "violated" and "samples_f: violated" in v.reason, cid
        # the smallest eps out of reach: every run's criterion doubled there
        small = df["eps"] == df["eps"].min()
        miss = df.assign(grad_sq=[list(np.array(g) * (10.0 if s else 1.0)) for g, s in zip(df["grad_sq"], small,
                                                                                            strict=True)])
        v = _judge(cid, {name: miss})
        assert v.verdict == "violated" and "convergence: violated" in v.reason, cid


def test_amigo_judge_fails_when_the_arms_swap(quick):
    _, frames = quick
    swapped = {E.AMIGO_WARM: frames[E.AMIGO_COLD], E.AMIGO_COLD: frames[E.AMIGO_WARM]}
    assert _judge("amigo22.warm-start", swapped).verdict == "violated"
    same = {E.AMIGO_WARM: frames[E.AMIGO_WARM], E.AMIGO_COLD: frames[E.AMIGO_WARM]}
    assert _judge("amigo22.warm-start", same).verdict == "inconclusive"  # a ratio of exactly 1 decides nothing


def test_first_hit_and_mean_criterion():
    g = np.array([[4.0, 2.0], [2.0, 0.0], [0.0, 0.0], [9.0, 9.0]])  # records 0..3 of 2 runs
    crit = E.mean_criterion(g)  # K = 1, 2, 3: averages of records 0..K-1
    assert np.allclose(crit, [3.0, 2.0, 4.0 / 3.0])
    assert E.first_hit(crit, 2.0) == 2 and E.first_hit(crit, 1.0) == -1
