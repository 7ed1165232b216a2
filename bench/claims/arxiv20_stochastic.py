"""Stochastic claims of Ji, Yang, Liang, "Provably Faster Algorithms for Bilevel Optimization and Applications to
Meta-Learning", arXiv (shared/papers/ji-yang-liang-arxiv-provably-faster-deterbio-stocbio.txt): Proposition 4
(the Hessian-inverse estimator), Theorem 2 (stocBiO) and Theorem 3 (meta-learning with task sampling).

The estimator claim follows :mod:`.icml21_stochastic` (paper's bounds as headline, Monte Carlo moments against
the paper's estimator's exact moments).
"""

from __future__ import annotations

import math

import numpy as np

from ..experiments import stochastic as st
from ..figures import series, spec
from ..judging import Verdict, combine, judge_converged
from ..stats import mean_bound
from . import Claim, register_claim
from .icml21_stochastic import estimator_figures, estimator_parts, judge_bound_rows

P = "arxiv20"
HINV = "mc/stocbio-hinv"


def _judge_prop4(frames, env) -> Verdict:
    cid = "arxiv20.prop4"
    df = frames[HINV]
    parts = estimator_parts(cid, df, "H_inv", "eq. (6) bias bound", "eq. (7) MSE bound", spectral=True)
    r0 = df.iloc[0]
    q = 1 - r0["mu"] * r0["eta"]
    spread = float((df["mse_spec_sd"] / df["mse_spec_mc"]).max())
    reason = (" | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
              + f". Per-sample L = {r0['L']:.3g}, eta = 1/L. The exact bias is (1 - eta mu)^(Q+1)/mu (proof, eq. (28)),"
              f" a factor (1 - eta mu) = {q:.3g} below the printed eq. (6). The spectral error ||H_inv - H^-1||_2^2 "
              f"varies by at most {spread:.2g} (relative standard deviation) over the draws: on this family the "
              "bias lies along the mu-eigenvector of the mean Hessian, which no sample perturbs, so the spectral MSE "
              "is the squared bias up to round-off and its interval is honestly narrow; it cannot see the estimator's"
              " noise, which the Frobenius variance and MSE against their exact values do.")
    if (df["samples"] != df["paper_samples"]).any():
        reason += (f" The audited schedule spends {int(df['samples'].iloc[0])} Hessian samples per estimate where "
                   f"the paper's spends {int(df['paper_samples'].iloc[0])}.")
    return combine(cid, parts, headline="eq. (7) MSE bound", reason=reason,
                   details={"figures": estimator_figures(cid, df, "H_inv", spectral=True)})


register_claim(Claim(
    id="arxiv20.prop4", paper=P, kind="inequality",
    statement="Hessian-inverse estimator eq. (5), |B_j| = B Q (1 - eta mu)^(j-1): ||E H_inv - H^-1|| <= mu^-1 "
              "(1 - eta mu)^Q; E||H_inv - H^-1||^2 <= 2 eta^2 L^2/(mu^2 B) + 2 (1 - eta mu)^(2Q+2)/mu^2",
    setup="stochastic-quadratic (kappa 2, d = 5, n = 64, noise 0.3 in G), a fixed (x, y) in the region; eta = 1/L "
          "with L the exact per-sample Hessian bound; (Q, B) in {(2, 8), (8, 8), (8, 1)} (B raised to Prop. 4's "
          "smallest allowed where an instance needs more); the audited H_inv (stocbio.hinv) with the audited "
          "schedule (stocbio.batch-schedule), formed column by column with shared batches, on R instances x n_mc "
          "draws: spectral bias and spectral MSE against eqs. (6)-(7) (one-sided 99%), and the Monte Carlo mean, "
          "Frobenius variance and Frobenius MSE against the paper's H_inv's exact moments (Horner second-moment "
          "recursion over the 64 per-sample Hessians)",
    experiments=(HINV,), judge=_judge_prop4, bounds=("arxiv20.prop4.bias", "arxiv20.prop4.mse")))


# ====================================================================== Theorems 2 and 3: averaged stationarity
def judge_avg_bound(cid: str, df, what: str) -> tuple[dict, dict]:
    """The averaged criterion (1/K) sum E||grad Phi(x_k)||^2, Monte Carlo over the runs (one-sided 99% t bounds),
    against the theorem's right-hand side at every K; and the runs themselves: a run that diverged (a non-finite
    iterate) left every bound, a violation with its evidence."""
    items = []
    for K, g in df.groupby("K"):
        a = g["avg"].to_numpy()
        if np.isfinite(a).all():
            mb = mean_bound(a)
            items.append((mb.mean, mb.low, mb.high, float(g["bound"].iloc[0]), f"K = {int(K)}"))
        else:  # a run left every bound: the expectation is not finite
            items.append((math.inf, math.inf, math.inf, float(g["bound"].iloc[0]), f"K = {int(K)}"))
    parts = {"bound": judge_bound_rows(cid, items, what)}
    last = df[df["K"] == df["K"].max()]
    bad = last[(last["diverged_at"] >= 0) | ~np.isfinite(last["avg"])]
    conv = judge_converged(cid, [{"where": f"instance {int(r.instance)}", "status": "diverged", "last": float(r.avg),
                                  "target": float(r.bound), "steps": int(r.diverged_at), "budget": int(r.K)}
                                 for r in bad.itertuples()], len(last), "runs of the theorem's algorithm")
    if conv is not None:
        parts["convergence"] = conv
    g = df.groupby("K").agg(mean=("avg", "mean"), low=("avg", "min"), high=("avg", "max"), bound=("bound", "max"))
    fig = {"K": g.index.tolist(), "mean": g["mean"].tolist(), "low": g["low"].tolist(), "high": g["high"].tolist(),
           "bound": g["bound"].tolist()}
    return parts, fig


def _avg_figure(cid, fig, label, algorithm, bound_label):
    return spec("loglog", f"{cid}: averaged stationarity against K", "K", "(1/K) sum E||grad Phi||^2",
                [series(f"{label} (runs: mean, min-max)", fig["K"], fig["mean"], ylow=fig["low"], yhigh=fig["high"],
                        style="band", algorithm=algorithm),
                 series(bound_label, fig["K"], fig["bound"], style="bound")])


def _judge_thm2(frames, env) -> Verdict:
    cid = "arxiv20.thm2.bound"
    df = frames[st.THM2]
    parts, fig = judge_avg_bound(cid, df, "(1/K) sum E||grad Phi(x_k)||^2 (Monte Carlo over the runs) against eq. "
                                 "(8), every K")
    r0 = df.iloc[0]
    reason = (" | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
              + f". Constants read per sample: L = {r0['L']:.3g}, M = {r0['M']:.3g}, L_Phi = {r0['L_phi']:.4g}, T = "
              f"{int(r0['N'])}; eq. (8)'s explicit constants (52, 40, 44, ...) and the per-sample L_Phi make it loose "
              "by the ratio shown, so only a run that leaves every bound (diverges) can fail it here.")
    return combine(cid, parts, headline="bound", reason=reason,
                   details={"figure": _avg_figure(cid, fig, "stocBiO", "stocbio", "eq. (8)")})


register_claim(Claim(
    id="arxiv20.thm2.bound", paper=P, kind="inequality",
    statement="stocBiO eq. (8), in expectation, with all constants explicit",
    setup="stochastic-quadratic (kappa 2, d = 5, noise 0.3 in G and F, gap 1, y_0 = 0), stocBiO (role stocbio, arXiv "
          "form) with the Theorem 2 parameters computed from the per-sample constants (beta = 1/(4 L_Phi), eta = "
          "0.999/L, alpha = 2/(L + mu), T from the theorem); S = D_g = D_f = 16, B = 4, Q = 8; R runs batched; every K "
          "of the averaged criterion against eq. (8) with sigma^2 of the region; a diverged run is a violation",
    experiments=(st.THM2,), judge=_judge_thm2, bounds=("arxiv20.thm2.bound", "arxiv20.thm2.T", "arxiv20.lemma2")))


def _judge_thm3(frames, env) -> Verdict:
    cid = "arxiv20.thm3.bound"
    df = frames[st.THM3]
    parts, fig = judge_avg_bound(cid, df, "(1/K) sum E||grad Phi(x_k)||^2 (Monte Carlo over the runs) against "
                                 "Theorem 3, every K")
    T_th, T_run = int(df["T_theorem"].iloc[0]), int(df["N"].iloc[0])
    reason = (" | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
              + f". Task batch |B| = 4, T = {T_run}; on this family the region's L_Phi is {df['L_phi'].iloc[0]:.3g}, "
              "so beta = 1/(4 L_Phi) barely moves x and the bound is loose by the ratio shown.")
    if T_run < T_th and parts["bound"].verdict == "holds":
        parts["hypothesis"] = Verdict(
            id=cid, verdict="inconclusive", reason=f"Theorem 3 needs T = {T_th} inner steps per outer step on this "
            f"family (alpha mu = mu/L_task ~ 1e-4): too costly for the profile, so the runs used T = {T_run} and the "
            "theorem's hypothesis is not met; the measured values are shown anyway")
        reason = parts["hypothesis"].reason + ". " + reason
    return combine(cid, parts, headline="bound", reason=reason,
                   details={"figure": _avg_figure(cid, fig, "deterBiO with task sampling", "meta-itd-bio",
                                                  "Theorem 3")})


register_claim(Claim(
    id="arxiv20.thm3.bound", paper=P, kind="inequality",
    statement="meta-learning with task sampling: (1/K) sum E||grad Phi||^2 <= 16 L_Phi (Phi_0 - inf Phi)/K + 2 eps/3 "
              "+ (1 + L/mu)^2 M^2/(8 |B|)",
    setup="meta-learning family (16 tasks, p = 2, d = 3, kappa_ref 2), deterBiO with task sampling (role meta-itd-bio, "
          "preset arxiv20.thm3, eps = 1: T from Theorem 1 with alpha = 1/L_task, capped at 200 (quick) / 2000 (full): "
          "the theorem's T is ~2.5e5 here, and a capped run ends inconclusive unless it violates the bound), |B| = 4 "
          "tasks per step, R runs; M = max(M, M_task) (the theorem takes M per task)",
    experiments=(st.THM3,), judge=_judge_thm3, bounds=("arxiv20.thm3.bound", "arxiv20.lemma2")))
