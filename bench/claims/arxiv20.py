"""Deterministic claims of Ji, Yang, Liang, "Provably Faster Algorithms for Bilevel Optimization and Applications
to Meta-Learning", arXiv (shared/papers/ji-yang-liang-arxiv-provably-faster-deterbio-stocbio.txt): Lemma 2,
Proposition 3 (bound and rate) and Theorem 1. The stochastic claims (Prop. 4, Theorems 2 and 3) are in
:mod:`.arxiv20_stochastic`.
"""

from __future__ import annotations

import math

import numpy as np

import bilevelbench.bounds as bd

from ..experiments.arxiv import ITD_ERROR, LIPSCHITZ
from ..figures import centred_intercept, fit_line, series, spec
from ..judging import (
    SEVERITY,
    Verdict,
    combine,
    convergence_failures,
    judge_converged,
    judge_identity,
    judge_scaling,
    judge_upper,
)
from ..stats import Fit
from . import Claim, register_claim
from .icml21 import judge_16_lphi_bound

P = "arxiv20"
DETERBIO = "rate/deterbio/arxiv20.thm1"

#: relative round-off of a pair ratio ||grad Phi(x) - grad Phi(x')|| / ||x - x'||: the hypergradient is exact
#: to ~1e-12 relative (a closed form, or Newton to round-off and a dense solve with condition number
#: <= kappa = 20) and the pairs are >= 1e-3 apart, so the ratio carries at most ~1e-9 relative error
RATIO_RTOL = 1e-6


# ---------------------------------------------------------------------- Lemma 2
def _judge_lemma2(frames, env) -> Verdict:
    """holds when the largest measured pair ratio stays below eq. (11) as printed on every instance;
    the search must also attain the exact constant where grad Phi is affine (else the measured sup could
    be far below the true one, and the verdict is inconclusive)."""
    cid = "arxiv20.lemma2"
    df = frames[LIPSCHITZ]
    ratio = (df["sup_ratio"] / df["printed"]).to_numpy()
    w = int(np.argmax(ratio))
    sup = float(df["sup_ratio"].iloc[w])
    bound = judge_upper(cid, float(df["printed"].iloc[w]), sup, sup, sup,
                        "largest measured ||grad Phi(x) - grad Phi(x')||/||x - x'|| against eq. (11) as printed "
                        f"(worst: {df['config'].iloc[w]})", rtol=RATIO_RTOL)
    anchor = df[np.isfinite(df["exact"])]
    parts = {"bound": bound}
    if len(anchor):
        miss = float(((anchor["exact"] - anchor["sup_ratio"]).abs() / anchor["exact"]).max())
        found = judge_identity(cid, miss, RATIO_RTOL,
                               f"search against the exact Lipschitz constant ||grad^2 Phi||_2 of the affine-gradient "
                               f"quadratic ({len(anchor)} instances)")
        if found.verdict != "holds":  # the instrument failed: the sup elsewhere may be far too low to judge
            found.verdict = "inconclusive"
            found.reason += "; the search misses a known constant, so its sup elsewhere is not a reliable bound"
        parts["search"] = found
    re = float((df["sup_ratio"] / df["rederived"]).max())
    per = df.groupby("config").agg(sup=("sup_ratio", "max"), rnd=("random_ratio", "max"), exact=("exact", "max"),
                                   printed=("printed", "max"), rederived=("rederived", "max"), M=("M", "max"),
                                   tau=("tau", "max"))
    text = " | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
    text += (f". Re-derived form (tau M/mu): worst ratio {re:.3g} "
             f"({'violated' if re > 1 + RATIO_RTOL else 'holds'}). "
             + "; ".join(f"{k}: sup {r.sup:.4g} (random pairs {r.rnd:.4g}"
                         + (f", exact {r.exact:.4g}" if math.isfinite(r.exact) else "")
                         + f"), printed {r.printed:.4g}, re-derived {r.rederived:.4g}, M {r.M:.3g}, tau {r.tau:.3g}"
                         for k, r in per.iterrows())
             + ". On logistic-lower (tau, rho > 0) the measured sup is orders of magnitude below either form, so the "
               "tau M^2/mu vs tau M/mu discrepancy cannot show there; on the quadratic (tau = rho = 0, both forms "
               "equal) the exact constant is within a small factor of eq. (11).")
    figure = spec("semilogy", f"{cid}: Lipschitz constant of grad Phi", "configuration", "Lipschitz constant", [
        series("measured sup", range(len(per)), per["sup"]),
        series("exact (affine grad Phi)", range(len(per)), per["exact"]),
        series("bound: eq. (11) as printed (judged)", range(len(per)), per["printed"], style="bound"),
        series("bound: re-derived, tau M/mu (reported)", range(len(per)), per["rederived"], style="bound")])
    figure["xticklabels"] = list(per.index)
    return combine(cid, parts, headline="bound", reason=text,
                   details={"figure": figure, "rederived_worst_ratio": re})


register_claim(Claim(
    id="arxiv20.lemma2", paper=P, kind="inequality",
    statement="||grad Phi(x) - grad Phi(x')|| <= L_Phi ||x - x'|| with L_Phi = L + (2L^2 + tau M^2)/mu + (rho L M + "
              "L^3 + tau M L)/mu^2 + rho L^2 M/mu^3 (eq. 11); printed form judged, re-derived tau M/mu reported",
    setup="logistic-lower (tau, rho > 0, exact on a box x ball; the x-box is convex so every pair is covered), two "
          "configurations (one with w = 0.2 so that M < 1 and the printed form is the smaller), and a quadratic with "
          "an affine grad Phi whose exact constant ||grad^2 Phi||_2 the search must attain; R instances: random "
          "pairs, pairs along the top Hessian eigenvector, a few projected-ascent steps on that eigenvalue",
    experiments=(LIPSCHITZ,), judge=_judge_lemma2, bounds=("arxiv20.lemma2", "arxiv20.lemma2.rederived")))


# ---------------------------------------------------------------------- Proposition 3
def _error_figure(cid, df) -> dict:
    s = []
    for cfg, g in df.groupby("config"):
        by = g.groupby("T")
        # one colour per configuration, the bound in that colour with the line style of 'Prop. 3 bound'
        s.append(series(f"{cfg}: audited ITD (max over runs)", by["err"].max().index, by["err"].max().values,
                        group=cfg))
        s.append(series(f"{cfg}: exact ITD (max)", by["err_exact"].max().index, by["err_exact"].max().values,
                        style="line", group=cfg))
        s.append(series(f"{cfg}: Prop. 3 bound (max)", by["bound"].max().index, by["bound"].max().values,
                        style="bound", group=cfg, bound="Prop. 3"))
    return spec("semilogy", f"{cid}: ITD hypergradient error against T", "T (inner GD steps)",
                "||d f(x, y^T)/dx - grad Phi(x)||", s)


def _judge_prop3(frames, env) -> Verdict:
    """Headline: the audited ITD error (minus its round-off allowance) over the Prop. 3 bound, worst row of
    the region. Also: the audited estimate equals the exact ITD estimate (forward recursion, eq. (17)) at
    every T within round-off, so a wrong recursion fails even where the bound is loose (rows of the region:
    there ||I - alpha grad_yy g|| <= 1, which the allowance assumes). As T grows both tend to grad Phi, so
    this is also the check that the audited estimate has the exact limit."""
    cid = "arxiv20.prop3"
    all_rows = frames[ITD_ERROR]
    df = all_rows[all_rows["in_region"]]
    parts = {}
    if df.empty:
        parts["bound"] = Verdict(id=cid, verdict="inconclusive", reason="no start has its GD path inside the region")
    else:
        m = ((df["err"] - df["tol"]).clip(lower=0) / df["bound"]).to_numpy()
        m = np.where(np.isfinite(df["err"].to_numpy()), m, np.inf)
        w = int(np.argmax(m))
        parts["bound"] = judge_upper(
            cid, 1.0, float(m[w]), float(m[w]), float(m[w]),
            f"ITD error minus its round-off allowance over the Prop. 3 bound, worst of {len(df)} (T, x, y_0) rows on "
            f"{df['config'].nunique()} configurations (worst at {df['config'].iloc[w]}, T = {int(df['T'].iloc[w])})")
    if df.empty:
        parts["exact"] = Verdict(id=cid, verdict="inconclusive", reason="no start inside the region, where the "
                                 "round-off allowance holds")
    else:
        r = (df["dev"] / df["dev_tol"]).to_numpy()
        r = np.where(np.isfinite(r), r, np.inf)
        w = int(np.argmax(r))
        parts["exact"] = judge_identity(
            cid, float(r[w]), 1.0,
            "audited ITD estimate against the exact ITD estimate (forward recursion of eq. (17)) at every T, in "
            "units of the round-off allowance 2 (T+1)(d+2) eps (||grad_x f|| + kappa ||grad_y f||) (worst at "
            f"{df['config'].iloc[w]}, T = {int(df['T'].iloc[w])}, discrepancy {df['dev'].iloc[w]:.3g})")
    return combine(cid, parts, headline="bound", details={"figure": _error_figure(cid, all_rows)})


register_claim(Claim(
    id="arxiv20.prop3", paper=P, kind="inequality",
    statement="deterBiO/ITD hypergradient error <= (L(L+mu)(1-alpha mu)^(T/2)/mu + 2M(tau mu + L rho)/mu^2 "
              "(1-alpha mu)^((T-1)/2)) ||y_0 - y*|| + L M (1-alpha mu)^T/mu, for every T, x, y_0",
    setup="logistic-lower (two configurations, tau, rho > 0) and quadratic (tau = rho = 0), R random x and y_0 in the "
          "region (every GD iterate stays in it); T = 0..T_max inner GD steps (alpha = 1/L) and the audited ITD "
          "reverse recursion (role itd.hypergradient); error against the exact grad Phi, and the estimate against "
          "the exact ITD estimate by the forward recursion eq. (17); round-off allowances from the recursions' length "
          "and dimension",
    experiments=(ITD_ERROR,), judge=_judge_prop3, bounds=("arxiv20.prop3",)))


#: the log of an error must be well above round-off to carry a rate: the window keeps T where the exact
#: ITD error exceeds its round-off allowance 1e3 times (a choice of the instance, not of the estimator)
ABOVE_ROUNDOFF = 1e3


def _semilog_fit(T, le, inst, n_boot: int = 300, seed: int = 0) -> Fit:
    """Least-squares slope of log error against T, 95% bootstrap interval over instances."""
    A = np.vstack([T, np.ones_like(T)]).T
    slope, icpt = (float(v) for v in np.linalg.lstsq(A, le, rcond=None)[0])
    rng, ids = np.random.default_rng(seed), np.unique(inst)
    boots = []
    for _ in range(n_boot):
        pick = np.concatenate([np.flatnonzero(inst == i) for i in rng.choice(ids, ids.size)])
        if np.unique(T[pick]).size > 1:
            boots.append(float(np.linalg.lstsq(A[pick], le[pick], rcond=None)[0][0]))
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (math.nan, math.nan)
    return Fit(slope, float(lo), float(hi), icpt, int(T.size))


def _judge_prop3_rate(frames, env) -> Verdict:
    """Per configuration: slope of log(audited error) against T on the second half of the T range, where the
    exact ITD error is well above round-off, against log sqrt(1 - alpha mu) (upper bound on the slope). An
    estimator that stalls (its error levels off while the exact one keeps decaying) has a slope near 0 and is
    violated; a non-finite error in the window is violated."""
    cid = "arxiv20.prop3.rate"
    df = frames[ITD_ERROR]
    df = df[df["in_region"]]
    fits, lines = {}, []
    for cfg, g in df.groupby("config"):
        g = g[(g["T"] >= g["T"].max() / 2) & (g["err_exact"] > ABOVE_ROUNDOFF * g["tol"])]
        if g["T"].nunique() < 3:
            continue
        if not np.isfinite(g["err"]).all():
            bad = g[~np.isfinite(g["err"])]
            fits[cfg] = Verdict(id=cid, verdict="violated", measured=math.nan,
                                reason=f"{cfg}: non-finite ITD error at T = {int(bad['T'].iloc[0])}")
            continue
        T, inst = g["T"].to_numpy(float), g["instance"].to_numpy()
        fit = _semilog_fit(T, np.log(np.maximum(g["err"].to_numpy(), 1e-300)), inst)
        exact = _semilog_fit(T, np.log(g["err_exact"].to_numpy()), inst, n_boot=0)
        pred = math.log(bd.BOUNDS["arxiv20.prop3.rate"](float(g["alpha_mu"].iloc[0]), 1.0))
        fits[cfg] = judge_scaling(cid, pred, fit, f"{cfg}: slope of log error in T over T = {int(T.min())}.."
                                  f"{int(T.max())} (predicted log sqrt(1 - alpha mu))", instance_exponent=exact.slope)
        # the judged slope over its window, through the window's mean errors (the fit pools the instances)
        m = g.groupby("T")["err"].mean()
        lines.append(fit_line(f"{cfg}: fitted slope {fit.slope:.3g} [{fit.low:.3g}, {fit.high:.3g}]", fit,
                              (T.min(), T.max()), pred, group=cfg,
                              intercept=centred_intercept("semilogy", fit.slope, m.index, m.values)))
    if not fits:
        return Verdict(id=cid, verdict="inconclusive",
                       reason="the exact ITD error reaches round-off before the second half of the T range on every "
                              "configuration: no rate to fit")

    def closeness(k):  # the most severe fit, then the one closest to the predicted rate
        t = fits[k].tightness
        return SEVERITY[fits[k].verdict], -(t if math.isfinite(t) else -math.inf)

    inst = [(f.details.get("instance_exponent"), f.predicted) for f in fits.values() if f.verdict != "violated"]
    note = ""
    if inst and all(e is not None and e <= 2 * p for e, p in inst):  # 2 log sqrt(1 - alpha mu) = log(1 - alpha mu)
        note = (" The exact ITD error decays at least as fast as (1 - alpha mu) per step on every configuration (the "
                "instance exponents; the y-error enters linearly), faster than the bound's square root: the bound's "
                "rate is not tight.")
    # one colour per configuration: the audited ITD's points, the exact ITD's line, the judged slope
    names = {"err": "audited ITD", "err_exact": "exact ITD"}
    figs = [spec("semilogy", f"{cid}: error decay in T", "T (inner GD steps)", "mean ITD error",
                 [series(f"{cfg}: {names[col]}", g.groupby("T")[col].mean().index, g.groupby("T")[col].mean().values,
                         style="line" if col == "err_exact" else "points", group=cfg)
                  for cfg, g in frames[ITD_ERROR].groupby("config") for col in ("err", "err_exact")], lines)]
    return combine(cid, fits, headline=max(fits, key=closeness),
                   reason=" | ".join(f"{f.verdict}: {f.reason}" for f in fits.values()) + note,
                   details={"figures": figs})


register_claim(Claim(
    id="arxiv20.prop3.rate", paper=P, kind="scaling",
    statement="that error decays geometrically in T at a rate no slower than (1 - alpha mu)^(1/2) per step",
    setup="the itd-error/fresh-start runs (audited itd.hypergradient): least-squares slope of log error against T on "
          "the second half of the T range where the exact ITD error is 1e3 times above round-off, bootstrap over "
          "instances, per configuration, against log sqrt(1 - alpha mu); the exact error's slope reported",
    experiments=(ITD_ERROR,), judge=_judge_prop3_rate, bounds=("arxiv20.prop3.rate",)))


# ---------------------------------------------------------------------- Theorem 1
def _judge_thm1(frames, env) -> Verdict:
    """ICML Thm 2's rule (every K of every run against 16 L_Phi gap/K + 2 eps/3) and convergence: Theorem 1
    says deterBiO reaches the averaged criterion eps with its T and beta, so a run that diverged, stalled
    (hopeless) or used up a budget >= 3x what the paper's algorithm needs is violated."""
    cid = "arxiv20.thm1.bound"
    df = frames[DETERBIO]
    v = judge_16_lphi_bound(cid, df, "arxiv20.thm1.bound")
    v.reason += (f"; eps = {df['eps'].iloc[0]:g}, T = {', '.join(f'{int(n)}' for n in sorted(df['N'].unique()))} "
                 f"inner steps (kappa {', '.join(f'{k:g}' for k in sorted(df['kappa'].unique()))})")
    failed = judge_converged(cid, convergence_failures(df), len(df), "deterBiO on preset arxiv20.thm1")
    if failed is None:
        return v
    return combine(cid, {"bound": v, "convergence": failed}, headline="bound",
                   details={"figure": v.details["figure"], "non_converged": failed.details["non_converged"]})


register_claim(Claim(
    id="arxiv20.thm1.bound", paper=P, kind="inequality",
    statement="deterBiO with beta = 1/(4 L_Phi) and T as in Theorem 1: (1/K) sum ||grad Phi||^2 <= 16 L_Phi "
              "(Phi(x_0) - inf Phi)/K + 2 eps/3",
    setup="nonconvex quadratic, kappa grid (<= 8), R seeds, Phi(x0) - inf Phi = 1, y_k^0 = 0 (fresh start), preset "
          "arxiv20.thm1 (T from eq. (26) with Delta = (2 radius)^2), eps the profile's target; every K checked, and "
          "every run must reach eps within its budget (>= 3x what deterBiO needs)",
    experiments=(DETERBIO,), judge=_judge_thm1,
    bounds=("arxiv20.thm1.bound", "arxiv20.lemma2", "arxiv20.thm1.T")))
