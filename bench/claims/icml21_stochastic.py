"""Stochastic claims of Ji, Yang, Liang, ICML 2021 (stocBiO, Sec. 4.2 and 5; shared/papers/
ji-yang-liang-2021-icml-aid-itd-stocbio.txt): Proposition 3, the batch schedule, Theorems 3 and 4, Table 2.

The estimator claims (Prop. 3 here, arXiv Prop. 4 in :mod:`.arxiv20_stochastic`) judge three things: the
paper's bounds (the headline), and the audited estimator's Monte Carlo mean, variance and MSE against the
EXACT moments of the paper's estimator on the instance (``bench.experiments.estimators``), with intervals
sized so that a 10% error in the mean (relative to ||E u||) or a factor 2 in the variance or MSE is seen.
The exact comparisons of a claim are judged at a family-wise level of 99.9% (Bonferroni over its rows and
quantities), so the paper's estimator is flagged by chance with probability at most 0.1% per claim.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

import bilevelbench.bounds as bd
from bilevelbench.bounds.tables import kappa_exponents, row_names

from ..experiments import stochastic as st
from ..figures import centred_intercept, fit_line, series, spec
from ..judging import (
    SEVERITY,
    Verdict,
    combine,
    judge_converged,
    judge_exact,
    judge_lower,
    judge_rates,
    judge_scaling,
    judge_upper,
    undercounts,
)
from ..stats import Fit, loglog_fit, mean_bound
from . import Claim, register_claim

P = "icml21"
#: family-wise level of the exact-moment comparisons of one claim
FAMILY_ALPHA = 1e-3
#: the catalogue's one-sided level for bounds on expectations
BOUND_ALPHA = 1e-2
#: resolutions: a 10% error in the mean (relative to ||E u||); a factor 2 either way in variance and MSE
#: (|2x - x| = x and |x/2 - x| = x/2: judge_exact's resolution r detects errors above r |exact|, so 0.5)
MEAN_RESOLUTION, SPREAD_RESOLUTION = 0.1, 0.5


# ====================================================================== Monte Carlo intervals
def norm_half_width(tr: float, tr2: float, top: float, n: int, alpha: float) -> float:
    """One-sided (1 - alpha) bound on ||mean - E|| for the mean of n i.i.d. draws with covariance C (tr C,
    tr C^2, ||C||_2): the mean's error is ~ N(0, C/n) (central limit), and for e ~ N(0, S),
    ||e||^2 <= tr S + 2 sqrt(tr(S^2) x) + 2 ||S||_2 x with probability >= 1 - e^-x (Laurent and Massart 2000,
    Lemma 1; Hsu, Kakade, Zhang 2012, Prop. 1), x = ln(1/alpha)."""
    x = math.log(1.0 / alpha)
    return math.sqrt(max(tr + 2 * math.sqrt(tr2 * x) + 2 * top * x, 0.0) / n)


def t_half_width(sd: float, n: int, alpha: float, two_sided: bool = True) -> float:
    """Student-t half-width of the mean of n draws with standard deviation sd at level 1 - alpha."""
    q = 1 - alpha / 2 if two_sided else 1 - alpha
    return float(_st.t.ppf(q, n - 1)) * sd / math.sqrt(n)


def bound_slope(name: str, arg: str, at: float, *, log_x: bool = True, **fixed) -> float:
    """The exponent a bound of ``bounds`` predicts for one argument: the slope of log(bound) against log(arg)
    (``log_x``) or against arg, between ``at`` and 2 ``at`` (or ``at`` + 1), with ``fixed`` making the bound's
    other terms negligible (a K or batch size of 1e15)."""
    fn = bd.BOUNDS[name]
    hi = 2 * at if log_x else at + 1
    ratio = math.log(fn(**fixed, **{arg: type(at)(hi)}) / fn(**fixed, **{arg: at}))
    return ratio / (math.log(hi / at) if log_x else hi - at)


# ====================================================================== rules over rows
def _worst(verdicts: list[Verdict], key) -> Verdict:
    """The most severe verdict; among equals, the largest ``key``."""
    return max(verdicts, key=lambda v: (SEVERITY[v.verdict], key(v)))


def judge_bound_rows(cid: str, items, what: str) -> Verdict:
    """An upper bound checked on every row (``items``: (measured, low, high, bound, label)) with one-sided
    99% intervals (``judge_upper``): the worst row decides; numbers are ratios to the bound."""
    vs = []
    for m, lo, hi, b, label in items:
        v = judge_upper(cid, 1.0, m / b, lo / b, hi / b, f"{what} ({label})")
        vs.append(v)
    w = _worst(vs, lambda v: v.ci_high)
    w.reason += f"; ratio to the bound in the worst of {len(vs)} rows (99% one-sided interval)"
    return w


def judge_mean_vector(cid: str, dev: float, half: float, norm: float, what: str,
                      resolution: float = MEAN_RESOLUTION) -> Verdict:
    """A Monte Carlo mean vector (or matrix) against the exact expectation E: ``dev`` = ||mean - E||, ``half``
    its Monte Carlo bound (``norm_half_width``), ``norm`` = ||E||. ``judge_exact`` on the scalar ||mean - E||
    (exact value 0): violated when dev > half; a half-width above resolution ||E||/2 cannot see an error of
    resolution ||E||, then inconclusive (``judge_exact``'s resolution rule, relative to ||E||)."""
    v = judge_exact(cid, dev, half, 0.0, f"{what}: ||MC mean - exact E||")
    v.tightness = dev / norm if norm > 0 else math.inf
    v.details.update(relative_error=v.tightness, norm=norm)
    if v.verdict == "holds" and half > resolution * norm / 2:
        v.verdict = "inconclusive"
        v.reason = (f"{what}: ||MC mean - exact E|| = {dev:.3g} within its bound {half:.2g}, but the bound exceeds "
                    f"{resolution:.0%} of ||E|| = {norm:.3g} / 2: the interval cannot see a {resolution:.0%} error")
    else:
        v.reason = (f"{what}: ||MC mean - exact E|| = {dev:.3g} ({v.tightness:.2%} of ||E|| = {norm:.3g}) "
                    f"{'>' if v.verdict == 'violated' else '<='} its Monte Carlo bound {half:.2g}")
    return v


def judge_exact_rows(cid: str, verdicts: list[Verdict], what: str) -> Verdict:
    """The worst of per-row ``judge_exact`` verdicts (largest relative deviation among equals)."""
    w = _worst(verdicts, lambda v: abs(v.measured - v.predicted) / max(v.details["half_width"], 1e-300))
    rel = max(v.details.get("relative_error", 0.0) for v in verdicts)
    w.reason = f"{what}: worst of {len(verdicts)} rows: {w.reason}; largest relative deviation {rel:.3g}"
    return w


def estimator_parts(cid: str, df, label: str, bias_name: str, mse_name: str, spectral: bool = False) -> dict:
    """The parts of an estimator claim from its rows (``estimators.EstimatorRow``): the paper's bias and MSE
    bounds (one-sided 99%), and the Monte Carlo mean, variance and MSE against the exact moments (Bonferroni
    over 3 x rows comparisons at family-wise ``FAMILY_ALPHA``). ``spectral``: the MSE bound is on the
    spectral norm (arXiv eq. (7)) while the exact moments are Frobenius."""
    m = 3 * len(df)
    a = FAMILY_ALPHA / m
    rows = list(df.itertuples())

    def tag(r):
        return f"Q = {r.Q}, B = {r.B:g}, noise_f = {r.noise_f:g}, instance {r.instance}"

    bias_items, mse_items, means, vars_, mses = [], [], [], [], []
    for r in rows:
        h99 = norm_half_width(r.cov_tr, r.cov_tr2, r.cov_top, r.n_mc, BOUND_ALPHA)
        bias_items.append((r.bias_mc, max(r.bias_mc - h99, 0.0), r.bias_mc + h99, r.bias_bound, tag(r)))
        mse, sd = (r.mse_spec_mc, r.mse_spec_sd) if spectral else (r.mse_mc, r.mse_sd)
        h = t_half_width(sd, r.n_mc, BOUND_ALPHA, two_sided=False)
        mse_items.append((mse, mse - h, mse + h, r.mse_bound, tag(r)))
        means.append(judge_mean_vector(cid, r.mean_dev, norm_half_width(r.cov_tr, r.cov_tr2, r.cov_top, r.n_mc, a),
                                       r.mean_norm, f"{label} mean, {tag(r)}"))
        vars_.append(judge_exact(cid, r.var_mc, t_half_width(r.var_sd, r.n_mc, a), r.var_exact,
                                 f"{label} variance E||u - E u||^2, {tag(r)}", resolution=SPREAD_RESOLUTION))
        mses.append(judge_exact(cid, r.mse_mc, t_half_width(r.mse_sd, r.n_mc, a), r.mse_exact,
                                f"{label} MSE E||u - u*||^2{' (Frobenius)' if spectral else ''}, {tag(r)}",
                                resolution=SPREAD_RESOLUTION))
    res = (f"family-wise {1 - FAMILY_ALPHA:.1%} over {m} comparisons (per comparison {a:.2g}); resolution "
           f"{MEAN_RESOLUTION:.0%} of ||E u|| for the mean, a factor 2 for variance and MSE")
    return {
        bias_name: judge_bound_rows(cid, bias_items, f"bias ||E u - u*||{' (spectral)' if spectral else ''} "
                                    "against the paper's bound"),
        mse_name: judge_bound_rows(cid, mse_items, f"MSE E||u - u*||^2{' (spectral)' if spectral else ''} "
                                   "against the paper's bound"),
        "mean vs exact": judge_exact_rows(cid, means, f"Monte Carlo mean vs the paper's exact E u ({res})"),
        "variance vs exact": judge_exact_rows(cid, vars_, "Monte Carlo variance vs the exact variance (intervals "
                                              "at the family-wise level above, not 99% each)"),
        "MSE vs exact": judge_exact_rows(cid, mses, "Monte Carlo MSE vs the exact MSE (intervals at the family-wise "
                                         "level above)"),
    }


def estimator_figures(cid: str, df, what: str, spectral: bool = False) -> list[dict]:
    """Bias and MSE against Q, one series per (B, noise_f) point: Monte Carlo (worst instance), exact and the
    paper's bound."""
    bias, mse = [], []
    for (B, nf), g0 in df.groupby(["B", "noise_f"]):
        g = g0.groupby("Q").max(numeric_only=True).reset_index()
        at = f"B = {B:g}, noise_f = {nf:g}"
        # one colour per (B, noise_f); the paper's bound in that colour, one line style for it
        bias += [series(f"bias (MC), {at}", g["Q"], g["bias_mc"], group=at),
                 series(f"bias (exact), {at}", g["Q"], g["bias_exact"], style="line", group=at),
                 series(f"paper's bound, {at}", g["Q"], g["bias_bound"], style="bound", group=at, bound="paper")]
        mse += [series(f"MSE (MC{', Frobenius' if spectral else ''}), {at}", g["Q"], g["mse_mc"], group=at),
                series(f"MSE (exact), {at}", g["Q"], g["mse_exact"], style="line", group=at),
                series(f"paper's bound, {at}", g["Q"], g["mse_bound"], style="bound", group=at, bound="paper")]
        if spectral:
            mse.append(series(f"MSE (MC, spectral), {at}", g["Q"], g["mse_spec_mc"], group=at))
    return [spec("semilogy", f"{cid}: bias of {what} against Q", "Q", "||E u - u*||", bias),
            spec("semilogy", f"{cid}: MSE of {what} against Q", "Q", "E||u - u*||^2", mse)]


# ====================================================================== Proposition 3
VQ = "mc/stocbio-vq"


def _judge_prop3(frames, env) -> Verdict:
    cid = "icml21.prop3"
    df = frames[VQ]
    parts = estimator_parts(cid, df, "v_Q", "eq. (7) bias bound", "eq. (8) MSE bound")
    r0 = df.iloc[0]
    reason = (" | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
              + f". Per-sample L = {r0['L']:.3g} (eta = 1/L), M = {r0['M']:.3g} (the region's bound; ||grad_y f|| at "
              "the point is smaller, so the bounds are loose by the ratios shown, which is why the exact moments "
              f"are checked too). {int(r0['n_mc'])} draws per instance.")
    if (df["samples"] != df["paper_samples"]).any():
        reason += (f" The audited schedule spends {int(df['samples'].iloc[0])} Hessian samples per estimate where "
                   f"the paper's spends {int(df['paper_samples'].iloc[0])}.")
    return combine(cid, parts, headline="eq. (8) MSE bound", reason=reason,
                   details={"figures": estimator_figures(cid, df, "v_Q")})


register_claim(Claim(
    id="icml21.prop3", paper=P, kind="inequality",
    statement="stocBiO's v_Q (Alg. 3) with eta <= 1/L and |B_{Q+1-j}| = B Q (1 - eta mu)^(j-1): bias <= "
              "mu^-1 (1 - eta mu)^(Q+1) M (eq. 7); MSE <= 4 eta^2 L^2 M^2/(mu^2 B) + 4 (1 - eta mu)^(2Q+2) "
              "M^2/mu^2 + 2 M^2/(mu^2 D_f) (eq. 8)",
    setup="stochastic-quadratic (kappa 2, d = 5, n = 64, noise 0.3 in G and F), a fixed (x, y) in the region; eta = "
          "1/L with L the exact per-sample Hessian bound; (Q, B, D_f) in {(2, 8, 4), (8, 8, 4)} and (8, 1, exact F: "
          "noise_f = 0, where the Hessian batches make all the variance; B raised to Prop. 3's smallest allowed where "
          "an instance needs more); the audited v_Q (stocbio.vq) "
          "with the audited schedule (stocbio.batch-schedule) on R instances x n_mc independent draws: bias and MSE "
          "against eqs. (7)-(8) (one-sided 99%), and Monte Carlo mean, variance and MSE against the paper's v_Q's "
          "exact moments (second-moment recursion over the 64 per-sample Hessians)",
    experiments=(VQ,), judge=_judge_prop3, bounds=("icml21.prop3.bias", "icml21.prop3.mse")))


# ====================================================================== the batch schedule
SCHEDULE = "mc/batch-schedule"


def _pooled(g, col, sd_col):
    """Mean over instances of per-instance Monte Carlo means, and its standard error."""
    se = math.sqrt(float((g[sd_col] ** 2 / g["n_mc"]).sum())) / len(g)
    return float(g[col].mean()), se


def _judge_schedule(frames, env) -> Verdict:
    cid = "icml21.batch-schedule"
    df = frames[SCHEDULE]
    points = list(df.groupby(["eps", "total"]))
    a = FAMILY_ALPHA / len(points)
    exact_parts, per_eps, fig = [], {}, []
    for (eps, total), g in points:
        mse, se = _pooled(g, "mse_mc", "mse_sd")
        n = int(g["n_mc"].sum())
        h = float(_st.t.ppf(1 - a / 2, n - 1)) * se
        exact_parts.append(judge_exact(cid, mse, h, float(g["mse_exact"].mean()),
                                       f"decaying arm's MSE at eps {eps:g}, {total} samples",
                                       resolution=SPREAD_RESOLUTION))
        h99 = float(_st.t.ppf(1 - BOUND_ALPHA, n - 1)) * se
        per_eps.setdefault(eps, []).append({"total": int(total), "mse": mse, "low": mse - h99, "high": mse + h99,
                                            "equal": float(g["mse_equal"].mean()), "n_equal": int(g["n_equal"].iloc[0]),
                                            "at_n_equal": bool(g["at_n_equal"].iloc[0]), "Q": int(g["Q"].iloc[0])})
    outcomes, parts_txt, ratios = [], [], {}
    for eps, pts in sorted(per_eps.items(), reverse=True):
        n_eq = pts[0]["n_equal"]
        met = [p["total"] for p in pts if p["high"] <= eps and p["total"] < n_eq]
        last = [p for p in pts if p["at_n_equal"]]
        if met:
            outcomes.append("holds")
            ratios[eps] = n_eq / min(met)
            txt = (f"eps {eps:g} (Q = {pts[0]['Q']}): the decaying arm meets it with {min(met)} samples (99% upper "
                   f"bound {min(p['high'] for p in pts if p['total'] == min(met)):.3g}), equal batches need {n_eq} "
                   f"(exact): ratio >= {ratios[eps]:.3g}")
        elif last and last[0]["low"] > eps:
            outcomes.append("violated")
            txt = (f"eps {eps:g}: equal batches meet it with {n_eq} samples (exact), where the decaying arm provably "
                   f"misses it (99% lower bound {last[0]['low']:.3g})")
        else:
            outcomes.append("inconclusive")
            txt = (f"eps {eps:g}: the decaying arm did not meet it below {n_eq} samples (where equal batches do) "
                   "and does not provably miss it there: undecided at this Monte Carlo resolution")
        parts_txt.append(txt)
        fig += [series(f"decaying (MC), eps {eps:g}", [p["total"] for p in pts], [p["mse"] for p in pts],
                       ylow=[p["low"] for p in pts], yhigh=[p["high"] for p in pts], style="line"),
                series(f"equal (exact), eps {eps:g}", [p["total"] for p in pts], [p["equal"] for p in pts],
                       style="line"),
                series(f"target eps {eps:g}", [pts[0]["total"], n_eq], [eps, eps], style="bound")]
    worst = max(outcomes, key=lambda v: SEVERITY[v])
    grows = list(ratios.values())
    cmp = Verdict(id=cid, verdict=worst, predicted=1.0, measured=min(grows) if grows else math.nan,
                  tightness=min(grows) if grows else math.nan,
                  reason="Hessian samples to MSE <= eps (relative to ||v*||^2; Q from the bias bound so that the "
                         "squared bias is below eps/2): " + "; ".join(parts_txt)
                         + (". Sample ratio equal/decaying by eps: " + ", ".join(f"{e:g}: {r:.3g}" for e, r in
                                                                                   sorted(ratios.items(), reverse=True))
                            + " (the paper: log(1/eps) apart)" if ratios else ""))
    parts = {"comparison": cmp, "decaying arm vs exact": judge_exact_rows(
        cid, exact_parts, f"audited decaying arm's Monte Carlo MSE vs the paper's exact MSE (intervals family-wise "
                          f"{1 - FAMILY_ALPHA:.1%} over {len(points)} totals, not 99% each; resolution a factor 2)")}
    figure = spec("loglog", f"{cid}: MSE against Hessian samples", "Hessian samples", "E||v - v*||^2 / ||v*||^2", fig)
    return combine(cid, parts, headline="comparison", details={"figure": figure, "ratios": ratios})


register_claim(Claim(
    id="icml21.batch-schedule", paper=P, kind="comparison",
    statement="for the same bias and variance target, the exponentially decaying batch schedule uses fewer Hessian "
              "samples than equal batch sizes (O(eps^-1 log 1/eps) vs O(eps^-1 log^2 1/eps))",
    setup="stochastic-quadratic (kappa 2, d = 5, n = 64, noise 0.3 in G, exact grad f), H^-1 grad_y f by eq. (5) with "
          "eta = 1/L_sample; per eps, Q the fewest with squared bias bound <= eps/2; MSE relative to ||v*||^2, mean "
          "over R instances. Independent arm: n_eq, the fewest samples with which equal batches meet eps, computed "
          "exactly. Audited arm: the decaying schedule (stocbio.batch-schedule) and estimator (stocbio.hinv), n_mc "
          "draws per instance, at the total where the paper's decaying schedule meets 3/4 eps exactly (Prop. 3's "
          "hypothesis B >= 1/(Q (1 - eta mu)^(Q-1)) kept) and at n_eq; holds when it meets eps (99% upper bound) "
          "below n_eq, violated when it provably misses eps at n_eq; its Monte Carlo MSE is also checked against "
          "the paper's exact MSE at both totals",
    experiments=(SCHEDULE,), judge=_judge_schedule,
    bounds=("arxiv20.prop4.bias", "icml21.prop3.B_min", "icml21.prop3.samples", "icml21.prop3.samples.uniform",
            "table:icml21:Proposition 3:v_Q, |B_{Q+1-j}| = B Q (1-eta mu)^(j-1):HV samples",
            "table:icml21:Proposition 3:v_Q, equal batch sizes:HV samples"),
    audits="the decaying arm (schedule and estimator) is audited; the equal-batch arm is the paper's estimator's "
           "exact MSE"))

__all__ = ["norm_half_width", "t_half_width", "judge_bound_rows", "judge_mean_vector", "judge_exact_rows",
           "estimator_parts", "estimator_figures", "FAMILY_ALPHA", "BOUND_ALPHA"]


# ====================================================================== Theorem 3: rates in kappa

STOC_TABLE = ("icml21", "Table 2", "stocBiO (this paper)")


def judge_counts(cid: str, df, kinds, what: str) -> Verdict:
    """Each run's count to eps against what its own parameters spend over its iterations (``bounds.costs``;
    stocBiO's per-step cost is exact, so any shortfall beyond round-off is an under-count)."""
    under = undercounts(df, kinds)
    ok = df[(df["K"] > 0)]
    ratio = min(float((ok[k] / ok[f"struct_{k}"]).min()) for k in kinds) if len(ok) else math.nan
    return judge_lower(cid, 1.0, ratio, ratio, ratio, f"{what}: smallest ratio of a count to eps to its structural "
                       "count (iterations x the per-step cost of the run's parameters)" + (
                           "; " + "; ".join(under) if under else ""), rtol=1e-9)


def _judge_thm3_rates(frames, env) -> Verdict:
    """Counts to eps fitted against the per-sample condition number kappa_s = L_s/mu: Assumption 2 holds for every
    sample (ICML 2021 Sec. 3), and the theory preset sets N = kappa_s ln kappa_s and Q = kappa_s log(kappa_s^2/eps)
    from it. On stochastic-quadratic L_s has not saturated over the small kappa grid (kappa_s grows like kappa^1.45
    from kappa 1.5 to 3), so a fit against the mean kappa would charge that growth of the preset's loop lengths to
    the table (reported, not judged)."""
    cid = "icml21.thm3.rates"
    df = frames[st.RATE]
    pred = kappa_exponents(*STOC_TABLE)
    by_mean = judge_rates(cid, df, pred, log_hidden=True, role="stocbio")
    rates = judge_rates(cid, df.assign(kappa=df["kappa_s"]), pred, log_hidden=True, role="stocbio",
                        pre_asymptotic=True,
                        note="(kappa_s = L_s/mu over the grid: " + ", ".join(
                            f"{k:.3g}" for k in sorted(df["kappa_s"].unique())) + "; small kappa range only, where "
                        "stocBiO's kappa^5/eps batch sizes fit the profile; the eps^-2 part is not swept; the batch "
                        "sizes follow the mean kappa (preset default), tau = rho = 0 here. Against the mean kappa "
                        "(not judged): " + ", ".join(f"{k} {e['fitted']:.3g} [{e['ci'][0]:.3g}, {e['ci'][1]:.3g}]"
                                                    for k, e in by_mean.details["exponents"].items()) + ")")
    for e in rates.details["exponents"].values():  # the report's headline: fitted against kappa_s, not kappa
        e.update(over="kappa_s", column="kappa_s")
    parts = {"rates": rates, "counts": judge_counts(cid, df, list(pred), "stocBiO")}
    return combine(cid, parts, headline="rates", details={k: v for k, v in rates.details.items()})


register_claim(Claim(
    id="icml21.thm3.rates", paper=P, kind="scaling",
    statement="stocBiO: Gc(F) = O(kappa^5 eps^-2), Gc(G) = O(kappa^9 eps^-2), JV = O(kappa^5 eps^-2), "
              "HV = ~O(kappa^6 eps^-2); small kappa only",
    setup="stochastic-quadratic (noise 0.3 in G and F, d = 5), stocBiO (role stocbio) with preset icml21.thm3 (all "
          "Theta constants 1, eps = 0.5), kappa in {1.5, 2, 3} (quick; 4 added on full), Phi(x0) - inf Phi = 1; "
          "per-run counts at the first K meeting the averaged criterion, fitted in the per-sample condition number "
          "kappa_s = L_s/mu (Assumption 2 per sample; the preset's N and Q are set from it), with the preset's own "
          "pre-asymptotic growth as tolerance (judging.judge_rates). Every run must reach eps "
          "within a step cap at least 3x what the paper's stocBiO needs, and every count must be at least what the "
          "run's own parameters spend over its iterations (bounds.costs)",
    experiments=(st.RATE,), judge=_judge_thm3_rates, bounds=tuple(row_names(*STOC_TABLE))))


# ====================================================================== Theorem 3: the error floor
def _within_instance(g, x: str, y: str):
    """y divided by each instance's geometric mean over the swept values: the instances are shared by the
    values (paired design), so their levels, which differ by a constant factor, drop out of the fitted slope."""
    logy = np.log(g[y].to_numpy())
    level = g.assign(_l=logy).groupby("instance")["_l"].transform("mean").to_numpy()
    return g[x].to_numpy(dtype=float), np.exp(logy - level)


def _q_fit(g) -> Fit:
    """Slope of log floor against Q (semilog, within instance), bootstrap over the runs at each Q."""
    x, f = _within_instance(g, "value", "floor")
    lf = np.log(f)
    A = np.vstack([x, np.ones_like(x)]).T
    s = float(np.linalg.lstsq(A, lf, rcond=None)[0][0])
    rng = np.random.default_rng(0)
    idx = [np.flatnonzero(x == v) for v in np.unique(x)]
    boots = []
    for _ in range(500):
        pick = np.concatenate([i[rng.integers(0, i.size, i.size)] for i in idx])
        boots.append(float(np.linalg.lstsq(A[pick], lf[pick], rcond=None)[0][0]))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return Fit(s, float(lo), float(hi), math.nan, int(x.size))


def _loglog_within(g, x: str) -> Fit:
    """log-log slope of the floor against ``x`` within instance, bootstrap over the runs at each value."""
    xv, f = _within_instance(g, x, "floor")
    return loglog_fit(xv, f, groups=xv)


def _diverged(cid, df, where, what) -> Verdict | None:
    bad = df[(df["diverged_at"] >= 0) | ~np.isfinite(df["floor"])]
    return judge_converged(cid, [{"where": f"{r[where]} {r['value'] if 'value' in r else ''}, instance "
                                           f"{int(r['instance'])}".replace("  ", " "), "status": "diverged",
                                  "last": float(r["floor"]), "target": math.inf, "steps": int(r["diverged_at"]),
                                  "budget": 0} for _, r in bad.iterrows()], len(df), what)


#: eq. (9)'s arguments that make its terms negligible, but for the swept one
_HUGE = 10**15


def _floor_exponent(param: str, eta_mu: float) -> float:
    """The slope eq. (9) predicts for the floor: in Q, of log floor (2 log(1 - eta mu)); in a batch size, of the
    log-log floor (-1); each from ``bounds.icml21.thm3_floor`` with the other terms made negligible."""
    fixed = dict(K=_HUGE, L_phi=1.0, kappa=2.0, eta=eta_mu, mu=1.0, Q=_HUGE, sigma2=1.0, S=_HUGE, D_g=_HUGE, D_f=_HUGE,
                 B=float(_HUGE))
    if param == "Q":
        fixed.pop("Q")
        return bound_slope("icml21.thm3.floor", "Q", 1, log_x=False, **fixed)
    fixed.pop(param)
    return bound_slope("icml21.thm3.floor", param, 4.0 if param == "B" else 4, **fixed)


def _judge_floor(frames, env) -> Verdict:
    cid = "icml21.thm3.floor"
    df = frames[st.FLOOR]
    parts, figs = {}, []
    for param in st.FLOOR_GRIDS:
        g = df[df["param"] == param]
        if g.empty:
            continue
        g = g[np.isfinite(g["floor"]) & (g["floor"] > 0)]
        fit = _q_fit(g) if param == "Q" else _loglog_within(g, "value")
        pred = _floor_exponent(param, float(g["eta_mu"].iloc[0]))
        what = "log floor vs Q (predicted 2 log(1 - eta mu))" if param == "Q" else f"floor vs {param}"
        v = judge_scaling(cid, pred, fit, what)
        if param != "Q" and v.verdict == "violated" and fit.low <= 0:
            # eq. (9) bounds the floor by a sum: with the other terms a > 0, floor = a + c/b has local slopes in
            # (-1, 0]; only a floor that grows with the batch size contradicts the bound
            v.verdict = "inconclusive"
            v.reason += (" The slope is shallower than -1: the other terms of eq. (9) dominate at these sizes "
                         "(floor = a + c/b), which the bound allows; not decidable here.")
        elif param != "Q" and v.verdict == "violated":
            v.reason += " The floor grows with the batch size."
        parts[param] = v
        m = g.groupby("value")["floor"].mean().reset_index()
        kind = "semilogy" if param == "Q" else "loglog"
        # the judged slope (fitted within instance) drawn through the means' centre, the predicted one with it
        what_slope = "slope of log floor in Q" if param == "Q" else f"log-log slope in {param}"
        fl = fit_line(f"fit (within instance): {what_slope} {fit.slope:.3g} [{fit.low:.3g}, {fit.high:.3g}]", fit,
                      (m["value"].min(), m["value"].max()), pred, algorithm="stocbio",
                      intercept=centred_intercept(kind, fit.slope, m["value"], m["floor"]))
        figs.append(spec(kind, f"{cid}: floor against {param}", param + (" (Neumann terms)" if param == "Q" else
                                                                          " (batch size)"),
                         "mean ||grad Phi||^2 at stationarity",
                         [series("stocBiO (mean over instances)", m["value"], m["floor"], algorithm="stocbio")], [fl]))
    div = _diverged(cid, df, "param", "stocBiO from a stationary point")
    if div is not None:
        parts["convergence"] = div
    missing = [k for k in st.FLOOR_GRIDS if k not in parts]
    reason = (" | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
              + " (one parameter swept at a time, the others' terms quietened)"
              + (f"; not swept on this profile: {', '.join(missing)}" if missing else ""))
    return combine(cid, parts, headline="Q", reason=reason, details={"figures": figs})


register_claim(Claim(
    id="icml21.thm3.floor", paper=P, kind="scaling",
    statement="stocBiO's error floor decays exponentially in Q and as 1/S, 1/D_g, 1/D_f, 1/B in the batch sizes "
              "(eq. 9)",
    setup="stochastic-logistic (kappa 2, d = 5, lam = 1 so that v* != 0 at the stationary point; n_f = 64, n_g = "
          "4096), stocBiO (role stocbio, ICML form, eta = 1/L_sample, alpha = 2/(L+mu), N = 2, beta = 0.5/||Hess "
          "Phi||) started at a stationary point found by exact GD on Phi, y = y*; the mean of ||grad Phi||^2 over the "
          "last 3/4 of K steps is the floor. One parameter swept at a time with the other noise sources quietened: "
          "Q with G exact (noise 0) and F exact (D_f = n_f without replacement), so the floor is the squared Neumann "
          "bias; S, D_g, B with noise 0.2 in G, F exact, Q = ceil(5/(eta mu)) (bias negligible), S = D_g = 256 "
          "(4096 when B is swept); D_f with G exact, F sampled with replacement. A diverged run is a violation",
    experiments=(st.FLOOR,), judge=_judge_floor, bounds=("icml21.thm3.floor",)))


# ====================================================================== Theorem 4: meta-learning
def _judge_thm4(frames, env) -> Verdict:
    cid = "icml21.thm4"
    df = frames[st.META_FLOOR]
    ok = df[np.isfinite(df["floor"]) & (df["floor"] > 0)]
    fit = _loglog_within(ok, "tasks")
    pred = bound_slope("icml21.thm4", "batch", 2, K=_HUGE, kappa=2.0)
    v = judge_scaling(cid, pred, fit, "floor vs task batch |B|",
                      note=f"(tasks drawn with replacement; m = {int(df['m'].iloc[0])} tasks; kappa fixed, the kappa^2 "
                           "factor is not swept: its hidden constant makes it unmeasurable at one kappa)")
    if v.verdict == "violated" and fit.low <= 0:
        # O(1/K + kappa^2/|B|) bounds a sum: a floor dominated by the other part is flat in |B|, which the bound
        # allows; only growth contradicts it
        v.verdict = "inconclusive"
        v.reason += (" The floor is flatter than 1/|B|: at these settings the task-sampling variance is below the "
                     "deterministic part of the error, so its 1/|B| decay cannot be isolated (not decidable here).")
    elif v.verdict == "violated":
        v.reason += " The floor grows with |B|."
    parts = {"scaling": v}
    div = _diverged(cid, df.assign(value=df["tasks"]), "tasks", "ITD-BiO with task sampling from a stationary point")
    if div is not None:
        parts["convergence"] = div
    # one colour per kappa of the sweep (the fit is within instance, so its line is drawn through the means'
    # centre; the predicted slope from the same point)
    series_, fits = [], []
    for k, gk in ok.groupby("kappa"):
        m = gk.groupby("tasks")["floor"].agg(["mean", "min", "max"]).reset_index()
        series_.append(series(f"meta ITD-BiO, kappa {k:.3g} (mean, min-max over instances)", m["tasks"], m["mean"],
                              ylow=m["min"], yhigh=m["max"], group=f"kappa {k:.3g}"))
        fits.append(fit_line(f"fit (within instance): slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]", fit,
                             (m["tasks"].min(), m["tasks"].max()), pred, group=f"kappa {k:.3g}",
                             intercept=centred_intercept("loglog", fit.slope, m["tasks"], m["mean"])))
    fig = spec("loglog", f"{cid}: floor against the task batch", "|B| (tasks per batch)",
               "mean ||grad Phi||^2 at stationarity", series_, fits)
    return combine(cid, parts, headline="scaling", details={"figure": fig})


register_claim(Claim(
    id="icml21.thm4", paper=P, kind="scaling",
    statement="meta-learning with task sampling (batch B of tasks): error floor O(kappa^2/|B|)",
    setup="meta-learning family (16 tasks, p = 2, d = 3, kappa_ref 2), ITD-BiO with task sampling (role meta-itd-bio, "
          "N = 20 warm-started inner steps), from a near-stationary x (300 exact GD steps on Phi) with beta = "
          "0.25/||Hess Phi(x_ref)|| (the theorem's 1/(4 L_Phi) with the region's L_Phi ~ 1e9 would not move x); floor "
          "= mean ||grad Phi||^2 over the last 3/4 of the run; log-log fit against |B|. A diverged run is a violation",
    experiments=(st.META_FLOOR,), judge=_judge_thm4, bounds=("icml21.thm4",)))


# ====================================================================== Table 2
def _table2_arm(cid, df, role) -> tuple[dict, dict[str, Verdict]]:
    """Per arm: the mean samples to eps (runs not reaching eps count what they spent: a lower bound) and the
    verdicts on its runs (non-convergence within an ample budget; samples below what its parameters spend)."""
    reached = df["status"] == "reached"
    s = np.where(reached, df["samples"], df["spent"])
    mb = mean_bound(s) if np.isfinite(s).all() else mean_bound([math.inf])
    stats = {"mean": mb.mean, "low": mb.low, "high": mb.high, "reached": int(reached.sum()), "runs": len(df),
             "censored": bool((~reached).any()), "budget": int(df["budget"].iloc[0]),
             "steps_to_eps": int(df.loc[reached, "K"].max()) if reached.any() else -1}
    failures = [{"where": f"{role}, instance {int(r.instance)}", "status": r.status, "last": float(r.avg_grad_phi_sq),
                 "target": float(r.eps), "steps": int(r.steps_run), "budget": int(r.budget)}
                for r in df.itertuples() if r.status != "reached"]
    out = {}
    conv = judge_converged(cid, failures, len(df), f"{role} on its preset (budget at least 3x the steps the paper's "
                           f"{role} needs, {TABLE2_NEED[role]} on the quick profile)")
    if conv is not None:
        out[f"{role} convergence"] = conv
    ok = df[reached]
    if len(ok):
        # the samples are exact for stocBiO; for BSA/TTSA they vary with the Neumann lengths p: a one-sided
        # 99.9% normal lower bound of the structural count over p (3.09 standard deviations)
        low = ok["struct_samples"] - 3.09 * ok["struct_sd"]
        ratio = float((ok["samples"] / low).min())
        out[f"{role} counts"] = judge_lower(
            cid, 1.0, ratio, ratio, ratio, f"{role}: smallest ratio of samples to eps to the samples its parameters "
            "spend over its iterations (BSA/TTSA: 99.9% lower bound over the Neumann lengths)", rtol=1e-9)
    return stats, out


#: steps the paper's arms need to reach eps on the quick profile's instances (72 runs each; the budgets,
#: ``experiments.stochastic.TABLE2_BUDGET``, are at least 3x these)
TABLE2_NEED = {"stocbio": 78, "bsa": 897, "ttsa": 1762}


def _judge_table2(frames, env) -> Verdict:
    cid = "icml21.table2"
    stats, parts, txt = {}, {}, []
    for role in st.TABLE2_ARMS:
        df = frames[st.table2_name(role)]
        stats[role], arm_parts = _table2_arm(cid, df, role)
        parts.update(arm_parts)
        a = stats[role]
        txt.append(f"{role}: {a['mean']:.3g} samples [{a['low']:.3g}, {a['high']:.3g}], {a['reached']}/{a['runs']} "
                   f"reached (at most {a['steps_to_eps']} of {a['budget']} steps)"
                   + (" (runs not reaching eps counted at what they spent: a lower bound)" if a["censored"] else ""))
    s = stats["stocbio"]
    others = [stats[r] for r in ("bsa", "ttsa")]
    fewer = s["reached"] == s["runs"] and all(s["high"] < o["low"] for o in others)
    cmp_reason = ("Samples of F and G to (1/K) sum ||grad Phi||^2 <= eps (99% intervals over runs): " + "; ".join(txt)
                  + f" (eps {TABLE2_EPS_TEXT}, kappa 2; BSA/TTSA step sizes set for a horizon of "
                  f"{st.TABLE2_HORIZON} steps). ")
    if fewer:
        cmp = Verdict(id=cid, verdict="holds", predicted=min(o["mean"] for o in others), measured=s["mean"],
                      ci_low=s["low"], ci_high=s["high"], tightness=s["mean"] / min(o["mean"] for o in others),
                      reason=cmp_reason + "stocBiO needs fewer samples than both.")
    else:
        cmp = Verdict(id=cid, verdict="inconclusive", predicted=min(o["mean"] for o in others), measured=s["mean"],
                      ci_low=s["low"], ci_high=s["high"], tightness=s["mean"] / min(o["mean"] for o in others),
                      reason=cmp_reason + "stocBiO does not need provably fewer samples than both here. Table 2 states "
                      "orders in kappa and eps with unspecified constants (stocBiO's Theta constants are 1 in its "
                      "preset, BSA's and TTSA's step constants are our choices): at one moderate (eps, kappa) the "
                      "constants decide the order, so this point neither supports nor contradicts the table.")
    parts = {"comparison": cmp, **parts}
    # one category per arm; an arm with runs that did not reach eps has a mean that is a lower bound: drawn
    # censored (its interval is then not one of the samples to eps, so none is drawn)
    fig = spec("linear", f"{cid}: samples to eps (mean over runs, 99% interval)", "algorithm (role)",
               "samples of F and G to eps (count)",
               [series(f"{a} ({v['reached']}/{v['runs']} runs reached eps)", [i], [v["mean"]], ylow=[v["low"]],
                       yhigh=[v["high"]], algorithm=a, censored=[v["censored"]])
                for i, (a, v) in enumerate(stats.items())])
    fig["xticklabels"] = list(stats)
    return combine(cid, parts, headline="comparison", details={"figure": fig, "stats": stats})


TABLE2_EPS_TEXT = f"{st.TABLE2_EPS:g}"

register_claim(Claim(
    id="icml21.table2", paper=P, kind="comparison",
    statement="to the same eps, stocBiO needs fewer samples than BSA and TTSA",
    setup="stochastic-quadratic (kappa 2, d = 5, noise 0.3 in G and F, gap 1), three audited arms, each with its "
          "preset: stocBiO (role stocbio, icml21.thm3 with eps), BSA (role bsa, gw18) and TTSA (role ttsa, hong20), "
          "BSA/TTSA step sizes set for a horizon of 1000 steps; R runs each; samples of F and G at the first K "
          "meeting the averaged criterion eps = 0.5, each run's own (BSA/TTSA: p Hessian samples per randomized "
          "Neumann estimate; Trace.per_instance). Every run of every arm must reach eps within a step budget at "
          "least 3x what the paper's arm needs, and spend at least the samples its parameters prescribe "
          "(bounds.costs; BSA/TTSA within a 99.9% band over their random Neumann lengths)",
    experiments=tuple(st.table2_name(r) for r in st.TABLE2_ARMS), judge=_judge_table2,
    bounds=tuple(row_names("icml21", "Table 2")),
    audits="all three arms are audited: a plug-in of stocbio, bsa or ttsa (or of the components they call) replaces "
           "its arm; the other arms stay the paper's"))
