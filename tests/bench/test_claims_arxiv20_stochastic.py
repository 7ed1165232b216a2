"""arXiv (Ji, Yang, Liang) stochastic claims: Proposition 4 (the Hessian-inverse estimator) and Theorems 2 and 3.
The judges hold and fail on synthetic tables; the claims run on the quick profile to real verdicts with figures."""

import math

import pandas as pd
import pytest

from bilevelbench.bench.claims import arxiv20_stochastic as A
from bilevelbench.bench.claims import get_claim
from bilevelbench.bench.experiments import stochastic as S
from bilevelbench.bench.sweep import Env

IDS = ["arxiv20.prop4", "arxiv20.thm2.bound", "arxiv20.thm3.bound"]


def _hinv_frame(**over):
    base = dict(estimator="hinv", instance=0, Q=8, B=8.0, D_f=1, noise_f=0.0, n_mc=400, eta=0.4, L=2.5, mu=0.5,
                M=30.0, samples=242, paper_samples=242, mean_dev=0.001, mean_norm=3.0, cov_tr=0.001, cov_tr2=2e-7,
                cov_top=3e-4, bias_mc=0.18, bias_exact=0.18, bias_bound=0.235, mse_mc=0.043, mse_sd=0.002,
                mse_exact=0.043, mse_bound=1.06, var_mc=0.0012, var_sd=0.0007, var_exact=0.0012, mse_spec_mc=0.032,
                mse_spec_sd=1e-9)
    return {A.HINV: pd.DataFrame([{**base, "instance": r, **over} for r in range(4)])}


def test_prop4_judge_holds_and_sees_each_defect():
    assert A._judge_prop4(_hinv_frame(), Env()).verdict == "holds"
    assert A._judge_prop4(_hinv_frame(var_mc=0.0030), Env()).verdict == "violated"  # variance x2.5
    assert A._judge_prop4(_hinv_frame(mean_dev=0.5), Env()).verdict == "violated"  # mean off by 17% of ||E||
    assert A._judge_prop4(_hinv_frame(mse_spec_mc=1.5), Env()).verdict == "violated"  # above eq. (7)
    assert A._judge_prop4(_hinv_frame(bias_mc=0.3), Env()).verdict == "violated"  # above eq. (6)
    # the bound inside the interval of the spectral MSE: cannot decide
    assert A._judge_prop4(_hinv_frame(mse_spec_mc=1.05, mse_spec_sd=0.2), Env()).verdict == "inconclusive"


def _avg_frame(name, scale=1.0, diverge=False, T=8, T_theorem=8):
    rows = []
    for r in range(8):
        for K in range(1, 21):
            avg = scale * (1.0 + 0.01 * r) / K ** 0.1
            if diverge and r == 0 and K > 10:
                avg = math.inf
            rows.append(dict(instance=r, K=K, avg=avg, bound=10.0 / K + 1.0, N=T, T_theorem=T_theorem, L=5.0,
                             M=40.0, L_phi=900.0, diverged_at=11 if diverge and r == 0 else -1))
    return {name: pd.DataFrame(rows)}


def test_thm2_judge():
    assert A._judge_thm2(_avg_frame(S.THM2, 0.5), Env()).verdict == "holds"
    assert A._judge_thm2(_avg_frame(S.THM2, 3.0), Env()).verdict == "violated"
    v = A._judge_thm2(_avg_frame(S.THM2, 0.5, diverge=True), Env())
    assert v.verdict == "violated" and "did not converge" in v.reason


def test_thm3_judge_is_inconclusive_when_T_is_capped():
    assert A._judge_thm3(_avg_frame(S.THM3, 0.5), Env()).verdict == "holds"
    assert A._judge_thm3(_avg_frame(S.THM3, 0.5, T=200, T_theorem=10**5), Env()).verdict == "inconclusive"
    # a capped run that already exceeds the bound is a violation whatever its T
    assert A._judge_thm3(_avg_frame(S.THM3, 3.0, T=200, T_theorem=10**5), Env()).verdict == "violated"


@pytest.fixture(scope="module")
def verdicts(run_quick):
    v, _ = run_quick(IDS)
    return {x.id: x for x in v}


@pytest.mark.parametrize("cid", IDS)
def test_claim_runs_on_quick(verdicts, cid):
    v = verdicts[cid]
    assert v.verdict in ("holds", "consistent", "inconclusive"), v.reason  # the paper's algorithms: never violated
    figs = v.details.get("figures") or [v.details["figure"]]
    assert figs and all(len(s["x"]) == len(s["y"]) for f in figs for s in f["series"])
    assert get_claim(cid).roles


def test_paper_hinv_matches_its_exact_moments(verdicts):
    assert verdicts["arxiv20.prop4"].verdict == "holds", verdicts["arxiv20.prop4"].reason
