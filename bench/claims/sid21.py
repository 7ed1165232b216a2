"""Claims of Grazzi, Pontil, Salzo, AISTATS 2021 (shared/papers/grazzi-pontil-salzo-2021-aistats-sid.txt).

The experiments are in :mod:`bilevelbench.bench.experiments.sid`: ``mc/sid-estimator`` (the audited ``sid`` role;
thm3.1-3.4, eq14, thm5.1), ``mc/fixed-point-sgd`` (the audited ``sid.fixed-point`` component; thm4.1, thm4.2,
thm4.2.rate, cor4.1, rem4.1), ``exact/fixed-point-map-variance`` (thm4.3, analytic) and ``curves/sid-variants``
(the audited ``sid`` role; fig1).

Two kinds of checks. The paper's bound is the headline: a Monte Carlo mean with a one-sided 99% bound against
the bound evaluated with the instance's exact constants. Where the instance has a closed-form expectation (the
stochastic-quadratic instance, whose SID iterates have exact moments), the Monte Carlo mean is also compared
two-sidedly with the exact value (``judge_exact``): a player whose mean differs from the paper's algorithm's is
violated even where the loose bound cannot see it. Those comparisons use family-wise 99.99% intervals per claim
(Bonferroni over the claim's comparisons), so that a correct SID is flagged falsely in about 0.01% of runs; the
resolution asked of them is a 10% error of a mean (relative to ||E grad^f||) and a factor-2 error of a second
moment (relative error 1: the half-width must be at most half the exact value).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as st

from bilevelbench.bounds import sid21 as B

from ..experiments.sid import FIG1, MAP_VARIANCE, MC, SGD, SQ
from ..figures import fit_line, series, spec
from ..judging import SEVERITY, Verdict, combine, judge_converged, judge_exact, judge_scaling, judge_upper
from ..stats import Z99, loglog_fit, mean_bound
from . import Claim, register_claim

P = "sid21"
RTOL = 1e-9  # float64 round-off on bounds evaluated from exact constants
#: family-wise two-sided error of a claim's exact-expectation comparisons. The Monte Carlo means of squared norms at
#: R = 256 are close to normal but not exactly so far out in the tail (over 2000 repetitions of the quadratic SGD
#: point, the z-scores of E||w_2 - w*||^2 had excess kurtosis 0.15 and one |z| of 4.5 in 2300), and the audit asks
#: for no false violation over repeated seeds: 1e-4 (Bonferroni) puts the per-comparison threshold near 4.6 sigma
EXACT_LEVEL = 1e-4
#: resolution asked of the comparisons with exact expectations: a 10% error of a mean, a 2x error of a second moment
MEAN_RES, VAR_RES = 0.1, 1.0
_SETUP_MC = ("SID (eqs. 28, 29, 8; the audited sid role) on one stochastic-quadratic instance (dim_x 2, dim_y 4, "
             "kappa 4, n_g 32, noise 0.2), alpha = 2/(L+mu), mini-batches of 4, steps beta/(gamma + t) of Theorem "
             "5.1 (beta = 2/(1-q^2), gamma = beta (1 + sigma_2)), w_0 = v_0 = 0, t = k in 16, 64, 256, 1024 (full also "
             "4096); d2 Phi^ exact (m2 = 0) and sampled (m2 > 0); R = 256 Monte Carlo runs (full 1024). Per w_t two "
             "SID runs restarted at w_t (y0 = w_t, t = 0, independent streams) give independent v-chains and "
             "estimates (3 replicates). Theorems 3.1-3.4 also on a coupled finite sum around the same mean (a "
             "sample's Jacobian and Hessian correlated) at w_t = w* (t = 0), k = 2, eta = 1, single-sample batches, "
             "sampled d2 Phi^, R = 4096 (full 16384), 2 replicates. Exact constants (mean quadratic problem); exact "
             "moments of w_t, v_k and the estimate by the second-moment recursion over the finite sum")


# ====================================================================== shared helpers
def _mb(samples):
    """99% one-sided Monte Carlo bounds (bench.stats) of a sample."""
    return mean_bound(np.asarray(samples, dtype=np.float64))


def _half(samples, m: int) -> float:
    """Two-sided half-width of the mean of ``samples`` at family-wise level EXACT_LEVEL over ``m`` comparisons
    (Bonferroni; Student t with n - 1 degrees of freedom)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size < 2 or not np.isfinite(a).all():
        return math.nan
    return float(st.t.ppf(1 - EXACT_LEVEL / (2 * m), a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))


def _exact(cid, samples, exact, what, m, resolution) -> Verdict:
    """``judge_exact`` of the Monte Carlo mean of ``samples`` against the exact expectation ``exact``."""
    a = np.asarray(samples, dtype=np.float64)
    return judge_exact(cid, float(a.mean()), _half(a, m), float(exact), what, resolution=resolution)


def _worst(verdicts: list[Verdict], cid: str, what: str, details: dict | None = None) -> Verdict:
    """One verdict from per-checkpoint verdicts: the most severe decides; the numbers shown are those of the
    most severe checkpoint with the largest measured/bound ratio."""
    def rank(v):
        return SEVERITY[v.verdict], v.tightness if math.isfinite(v.tightness) else 0.0

    worst = max(verdicts, key=rank)
    counts = {k: sum(v.verdict == k for v in verdicts) for k in ("holds", "consistent", "inconclusive", "violated")}
    tally = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    return Verdict(id=cid, verdict=worst.verdict, predicted=worst.predicted, measured=worst.measured,
                   ci_low=worst.ci_low, ci_high=worst.ci_high, tightness=worst.tightness,
                   reason=f"{what}; {len(verdicts)} checks ({tally}); worst: {worst.reason}", details=details or {})


# ====================================================================== mc/sid-estimator: Theorems 3.1-3.4
def _stats_at(g: pd.Series) -> dict:
    """Monte Carlo estimates at one checkpoint (one row of the MC table: lists over runs) and their per-run
    samples: bias norm with a Bonferroni box interval, E[V[.|w_t]], V[E[.|w_t]], MSE, rho^ and sigma^."""
    E = np.stack([np.stack(rep) for rep in g["e"]]).astype(float)  # (reps, R, dim_x)
    reps, R, dim_x = E.shape
    m = E.mean(0)
    lvl = 1 - 0.01 / dim_x  # per-coordinate t bounds at level 1 - 0.01/dim_x: a 99% box (Bonferroni)
    boxes = [mean_bound(m[:, i], level=lvl) for i in range(dim_x)]
    bias = float(np.linalg.norm(m.mean(0)))
    hi = float(np.linalg.norm([max(abs(b.low), abs(b.high)) for b in boxes]))
    lo = float(np.linalg.norm([0.0 if b.low <= 0 <= b.high else min(abs(b.low), abs(b.high)) for b in boxes]))
    # the sample variance of the replicates (independent draws given w_t): unbiased for V[grad^f | w_t]
    cond = ((E - m) ** 2).sum((0, 2)) / (reps - 1)
    # V[E[.|w]] = V[m] - E[V|w]/reps; per-run unbiased terms (R/(R-1) corrects the plug-in mean)
    vm = ((m - m.mean(0)) ** 2).sum(1) * R / (R - 1) - cond / reps
    mse = (E**2).sum(2).mean(0)
    dv = np.stack([np.asarray(d, dtype=float) for d in g["dv2"]]).mean(0)
    est = m + np.asarray(g["grad"], dtype=float)
    return {"bias": (bias, lo, hi), "cond": _mb(cond), "vm": _mb(vm), "mse": _mb(mse),
            "rho": _mb(g["dw2"]), "sigma": _mb(dv) if np.isfinite(dv).all() else None,
            "gradE2": np.asarray(g["gradE2"], dtype=float),
            "samples": {"est": est, "cond": cond, "vm": vm, "mse": mse, "dw2": np.asarray(g["dw2"], dtype=float),
                        "dv2": dv}}


def _theory_rates(row, gradE2_max):
    """rho(t), sigma(k) of Theorem 5.1 (eqs. 30-31) with the point's exact constants, for the runs with its steps
    from w_0 = 0; None for the others (constant steps eta = 1 > 1/(1 + sigma2): no theorem gives their rates)."""
    if row["policy"] != "decreasing" or row["instance"] != "sq":
        return None
    rho = B.thm5_1_w(int(row["t"]), row["w_norm_sq"], row["var_fp"], row["L_Phi_tilde"], row["q"], row["beta"],
                     row["gamma"])
    sig = B.thm5_1_v(int(row["k"]), gradE2_max, row["L_Phi_tilde"], row["q"], row["beta"], row["gamma"])
    return rho, sig


def _where(g) -> str:
    return f"{g['instance']}, {g['jv']} d2 Phi^, t = {int(g['t'])}, k = {int(g['k'])}"


def _thm3_bound(cid, row, rho, sig):
    """The right-hand side of claim ``cid`` (bounds/sid21.py) at rates rho(t), sigma(k)."""
    if cid == "sid21.thm3.1":
        return B.thm3_1_bias(rho, sig, row["c1"], row["L_Phi"], row["nu2"])
    if cid == "sid21.thm3.2":
        return B.thm3_2(rho, sig, row["L_Phi"], row["m2"], row["L_E"], row["q"], row["nu2"])
    if cid == "sid21.thm3.3":
        return B.thm3_3(rho, sig, row["c1"], row["L_Phi"], row["nu2"])
    return B.thm3_4_mse(rho, sig, row["c1"], row["L_Phi"], row["m2"], row["L_E"], row["q"], row["nu2"])


_THM3 = {"sid21.thm3.1": ("bias", "||E grad^f - grad f||"), "sid21.thm3.2": ("cond", "E[V[grad^f | w_t]]"),
         "sid21.thm3.3": ("vm", "V[E[grad^f | w_t]]"), "sid21.thm3.4": ("mse", "MSE of grad^f")}


def _bound_at(cid, stat, what, row, st_) -> tuple[Verdict, float, float]:
    """Theorem 3.x at one checkpoint. The rates enter the bounds monotonically, so: ``holds`` when the measured
    quantity's upper 99% bound is below the bound evaluated with the LOWER 99% bounds of the measured rates
    rho^(t) = E||w_t - w||^2 and sigma^(k) = E||v_k(w_t) - v(w_t)||^2 (the tightest rates Assumption C allows, up
    to the average over w_t; any valid rho, sigma are larger); ``violated`` when its lower bound exceeds the bound
    with Theorem 5.1's rates (valid ones, exact constants; only where its steps run); ``inconclusive`` otherwise."""
    meas = st_[stat] if stat == "bias" else (st_[stat].mean, st_[stat].low, st_[stat].high)
    rates = _theory_rates(row, float(st_["gradE2"].max()))
    loose = _thm3_bound(cid, row, *rates) if rates is not None else math.nan
    where = _where(row)
    if st_["sigma"] is None:  # the player's state holds no v: only Theorem 5.1's rates are available
        v = judge_upper(cid, loose, *meas, f"{what} ({where}, Theorem 5.1 rates; the player exposes no v, so the "
                        "measured sigma(k) is unknown)", rtol=RTOL)
        return v, loose, loose
    tight = _thm3_bound(cid, row, max(st_["rho"].low, 0.0), max(st_["sigma"].low, 0.0))
    v = judge_upper(cid, tight, *meas, f"{what} ({where})", rtol=RTOL)
    if v.verdict in ("inconclusive", "violated"):
        v2 = (judge_upper(cid, loose, *meas, f"{what} ({where}, Theorem 5.1 rates)", rtol=RTOL)
              if rates is not None else None)
        v = v2 if v2 is not None and v2.verdict == "violated" else Verdict(
            id=cid, verdict="inconclusive", predicted=tight, measured=meas[0], ci_low=meas[1], ci_high=meas[2],
            tightness=v.tightness, reason=v.reason + (f"; not above the bound {loose:.4g} with Theorem 5.1's rates"
                                                      if rates is not None else "; no valid rates to compare with"))
    return v, tight, loose


def _exact_thm3(cid, g, st_, m) -> list[Verdict]:
    """The Monte Carlo estimate of claim ``cid``'s left side at one checkpoint against its exact value."""
    s = st_["samples"]
    where = f"({_where(g)})"
    if cid == "sid21.thm3.1":
        ex = np.asarray(g["ex_mean"], dtype=float)
        scale = float(np.linalg.norm(ex))
        return [_exact(cid, s["est"][:, i], ex[i], f"E[grad^f]_{i} {where}", m,
                       MEAN_RES * scale / abs(ex[i]) if ex[i] else math.inf) for i in range(ex.size)]
    key = {"sid21.thm3.2": "cond", "sid21.thm3.3": "vm", "sid21.thm3.4": "mse"}[cid]
    return [_exact(cid, s[key], g[f"ex_{key}"], f"{_THM3[cid][1]} {where}", m, VAR_RES)]


def _exact_rows(cid, df):
    """The checkpoints whose exact comparison has the resolution asked: V[E[grad^f | w_t]] is estimated as
    V[mean of the two estimates] - E[V | w_t]/2, which a sampled d2 Phi^ (whose variance is E[V | w_t]'s bulk)
    swamps; it is compared on the exact-d2 Phi^ runs only (the quantity does not depend on d2 Phi^'s sampling)."""
    return df[df["jv"] == "exact"] if cid == "sid21.thm3.3" else df


def _judge_thm3(cid):
    stat, what = _THM3[cid]

    def judge(frames, env) -> Verdict:
        df = frames[MC]
        bounds, exacts, curves, ratio = [], [], {}, []
        rows = _exact_rows(cid, df)
        m = len(rows) * (int(np.asarray(df["ex_mean"].iloc[0]).size) if cid == "sid21.thm3.1" else 1)
        for _, g in df.iterrows():
            st_ = _stats_at(g)
            v, tight, loose = _bound_at(cid, stat, what, g, st_)
            bounds.append(v)
            curves.setdefault((g["instance"], g["jv"]), []).append((int(g["k"]), v.measured, v.ci_low, v.ci_high,
                                                                    tight, loose))
            if g.name in rows.index:
                exacts += _exact_thm3(cid, g, st_, m)
            exact_bound = _thm3_bound(cid, g, g["ex_rho"], g["ex_sigma"])
            exact_lhs = g["ex_bias"] if cid == "sid21.thm3.1" else g[f"ex_{stat}"]
            ratio.append((exact_lhs / exact_bound, _where(g)))
        fig = []
        for (inst, jv), cs in curves.items():
            k, mm, lo, hi, tight, loose = zip(*cs, strict=True)
            # one colour per (instance, d2 Phi^); one line style per bound: with the measured rates, with Thm 5.1's
            grp = f"{inst}, {jv} d2 Phi^"
            fig += [series(f"measured ({grp})", k, mm, ylow=lo, yhigh=hi, group=grp),
                    series(f"bound with the measured rho, sigma ({grp})", k, tight, style="bound", group=grp,
                           bound="measured rates")]
            if all(math.isfinite(b) for b in loose):
                fig.append(series(f"bound with Thm 5.1's rates ({grp})", k, loose, style="bound", group=grp,
                                  bound="Thm 5.1 rates"))
        runs = ", ".join(f"{i}: R = {int(r)}" for i, r in df.groupby("instance")["R"].first().items())
        r_max, where_max = max(ratio)
        note = (f"; the paper's SID (exact moments): left side / bound at its exact rates is at most {r_max:.4g} "
                f"({where_max})")
        if r_max > 0.99:
            note += (f": the bound is attained to within {1 - r_max:.2%} by the paper's algorithm itself, so no Monte "
                     "Carlo size can decide that checkpoint (inconclusive there is the honest answer)")
        bound = _worst(bounds, cid, f"stochastic-quadratic (kappa {SQ['kappa']:g}, noise {SQ['noise']}) and the "
                       f"coupled instance ({runs}), 99% one-sided bounds" + note)
        exact = _worst(exacts, cid, f"Monte Carlo against the exact expectation (family-wise {1 - EXACT_LEVEL:.2%} "
                       f"intervals over {m} comparisons)")
        details = {"figure": spec("loglog", f"{cid}: {what} vs k", "k (= t on stochastic-quadratic)", what, fig),
                   "exact_ratio_max": r_max}
        return combine(cid, {"bound": bound, "exact": exact}, headline="bound", details=details)

    return judge


_THM3_STATEMENTS = {
    "sid21.thm3.1": "bias ||E grad^f - grad f|| <= c1 sqrt(rho(t)) + L_Phi sqrt(sigma(k)) + nu2 sqrt(rho(t)) "
                    "sqrt(sigma(k))",
    "sid21.thm3.2": "E[V[grad^f | w_t]] <= 2 m2 L_E^2/(1-q)^2 + 2 (L_Phi^2 + m2) sigma(k) + 2 nu2^2 rho(t) sigma(k)",
    "sid21.thm3.3": "V[E[grad^f | w_t]] <= 3 (c1^2 rho(t) + L_Phi^2 sigma(k) + nu2^2 rho(t) sigma(k))",
    "sid21.thm3.4": "MSE <= 2 m2 L_E^2/(1-q)^2 + 6 c1^2 rho(t) + 2 (4 L_Phi^2 + m2) sigma(k) + 8 nu2^2 rho(t) "
                    "sigma(k) (eq. 13)",
}
_THM3_EXACT = {
    "sid21.thm3.1": "E[grad^f] per coordinate against its exact value (10% of ||E grad^f|| resolved)",
    "sid21.thm3.2": "E[V[grad^f | w_t]] (the replicates' sample variance) against its exact value",
    "sid21.thm3.3": "V[E[grad^f | w_t]] against its exact value (exact d2 Phi^ runs)",
    "sid21.thm3.4": "the MSE against its exact value",
}

for _cid, _st in _THM3_STATEMENTS.items():
    register_claim(Claim(
        id=_cid, paper=P, kind="inequality", statement=_st,
        setup=_SETUP_MC + "; bound with the measured rates (tight) and Theorem 5.1's (valid); " + _THM3_EXACT[_cid],
        experiments=(MC,), judge=_judge_thm3(_cid),
        bounds=(_cid, "sid21.c1", "sid21.thm5.1.w", "sid21.thm5.1.v")))


# ---------------------------------------------------------------------- eq. (14) / Remark 5.1
def _mse_frame(df) -> pd.DataFrame:
    """One row per (jv, t, run) with the run's squared error (mean of its two estimates')."""
    out = []
    for _, g in df.iterrows():
        s = _stats_at(g)["samples"]
        out.append(pd.DataFrame({"jv": g["jv"], "t": int(g["t"]), "mse": s["mse"]}))
    return pd.concat(out, ignore_index=True)


def _judge_eq14(frames, env) -> Verdict:
    """Separable Phi^ (m2 = 0): the MSE exponent in (gamma + t) (Remark 5.1: O(1/(gamma+t) + 1/(gamma+k)), k = t)
    must not be above -1 (a SID that stalls, e.g. a chain whose steps do not decrease, has exponent near 0);
    non-separable (m2 > 0): the MSE at the largest t must not exceed eq. (14)'s limit plus the vanishing terms of
    eq. (13) at that t (Theorem 5.1 rates)."""
    df = frames[MC]
    df = df[df["instance"] == "sq"]
    mse = _mse_frame(df)
    sep = mse[mse["jv"] == "exact"]
    gamma = float(df["gamma"].iloc[0])
    fit = loglog_fit(sep["t"] + gamma, sep["mse"], groups=sep["t"])
    ex = df[df["jv"] == "exact"].sort_values("t")
    ex_fit = loglog_fit(ex["t"] + gamma, ex["ex_mse"], n_boot=0)
    v = judge_scaling("sid21.eq14", -1.0, fit, "separable Phi^ (m2 = 0): MSE against gamma + t (k = t)",
                      note=f"gamma = {gamma:.4g}; fitted over t in {sorted(sep['t'].unique().tolist())}; the paper's "
                           f"SID's exact MSE has exponent {ex_fit.slope:.3g} over the same grid")
    non = df[df["jv"] == "sampled"]
    g = non.loc[non["t"].idxmax()]
    tmax = int(g["t"])
    st_ = _stats_at(g)
    floor = B.eq14_limit(g["m2"], g["L_E"], g["q"])
    rho_t, sig_t = _theory_rates(g, float(st_["gradE2"].max()))
    lim = B.thm3_4_mse(rho_t, sig_t, g["c1"], g["L_Phi"], g["m2"], g["L_E"], g["q"], g["nu2"])
    nv = judge_upper("sid21.eq14", lim, st_["mse"].mean, st_["mse"].low, st_["mse"].high,
                     f"non-separable (m2 = {g['m2']:.3g}): MSE at t = k = {tmax} against eq. (14)'s limit "
                     f"{floor:.4g} + eq. (13)'s vanishing terms", rtol=RTOL)
    grp = sep.groupby("t")["mse"].mean()
    ngrp = mse[mse["jv"] == "sampled"].groupby("t")["mse"].mean()
    x0, x1 = float(grp.index.min() + gamma), float(grp.index.max() + gamma)
    fig = spec("loglog", "sid21.eq14: MSE vs gamma + t (k = t)", "gamma + t", "MSE",
               [series("separable (m2 = 0)", grp.index + gamma, grp.to_numpy(), algorithm="sid-exact"),
                series("non-separable (m2 > 0)", ngrp.index + gamma, ngrp.to_numpy(), algorithm="sid-sampled"),
                series("exact MSE, paper's SID (m2 = 0)", ex["t"] + gamma, ex["ex_mse"], style="line"),
                series("eq. (14) limit (m2 > 0)", [x0, x1], [floor, floor], style="bound")],
               [fit_line(f"fit: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]", fit, (x0, x1), -1.0)])
    out = combine("sid21.eq14", {"separable": v, "non-separable": nv}, headline="separable",
                  details={**v.details, "figure": fig, "limit_eq14": floor, "exact_exponent": ex_fit.slope})
    return out


register_claim(Claim(
    id="sid21.eq14", paper=P, kind="scaling",
    statement="as t, k grow the MSE tends to at most 2 m2 L_E^2/(1-q)^2; with a separable Phi^ (m2 = 0) and "
              "decreasing steps it tends to 0 as O(1/t + 1/k) (Remark 5.1)",
    setup=_SETUP_MC + "; exponent of the MSE in gamma + t (the variable of Remark 5.1's O(.)), bootstrap over runs; "
          "non-separable: MSE at the largest t against eq. (14)'s limit plus eq. (13)'s vanishing terms",
    experiments=(MC,), judge=_judge_eq14, bounds=("sid21.eq14", "sid21.thm3.4", "sid21.thm5.1.w", "sid21.thm5.1.v")))


# ---------------------------------------------------------------------- Theorem 5.1
def _judge_thm51(frames, env) -> Verdict:
    """Eq. (30) at every t (Monte Carlo mean against d_w/(gamma + t)); eq. (31) at w = w_t: per run the bound
    d_v(w_t)/(gamma + k) is paired with the run's error, so the check is E[err - bound(w_t)] <= 0 (it holds when
    the bound holds at every w). Both rates also against their exact values (the second-moment recursion)."""
    df = frames[MC]
    df = df[df["instance"] == "sq"]
    bounds, exacts, pts = [], [], []
    m = 2 * len(df)
    no_v = []
    for _, g in df.iterrows():
        t, jv = int(g["t"]), g["jv"]
        s = _stats_at(g)
        rho = s["rho"]
        bw = B.thm5_1_w(t, g["w_norm_sq"], g["var_fp"], g["L_Phi_tilde"], g["q"], g["beta"], g["gamma"])
        bounds.append(judge_upper("sid21.thm5.1", bw, rho.mean, rho.low, rho.high,
                                  f"E||w_t - w||^2 ({jv}, t = {t}) vs d_w/(gamma + t)", rtol=RTOL))
        exacts.append(_exact("sid21.thm5.1", s["samples"]["dw2"], g["ex_rho"], f"E||w_t - w||^2 ({jv}, t = {t})", m,
                             VAR_RES))
        if s["sigma"] is None:
            no_v.append(f"{jv}, k = {t}")
            pts.append((t, rho.mean, bw, math.nan, math.nan))
            continue
        bv = np.array([B.thm5_1_v(t, e, g["L_Phi_tilde"], g["q"], g["beta"], g["gamma"]) for e in s["gradE2"]])
        err = s["samples"]["dv2"]
        d = _mb(err - bv)
        bounds.append(judge_upper("sid21.thm5.1", float(bv.mean()), float(err.mean()), float(bv.mean() + d.low),
                                  float(bv.mean() + d.high),
                                  f"E||v_k(w_t) - v(w_t)||^2 ({jv}, k = {t}) vs E[d_v(w_t)]/(gamma + k)", rtol=RTOL))
        exacts.append(_exact("sid21.thm5.1", err, g["ex_sigma"], f"E||v_k(w_t) - v(w_t)||^2 ({jv}, k = {t})", m,
                             VAR_RES))
        pts.append((t, rho.mean, bw, float(err.mean()), float(bv.mean())))
    p = pd.DataFrame(pts, columns=["t", "w", "bw", "v", "bv"]).groupby("t").mean(numeric_only=True)
    fig = spec("loglog", "sid21.thm5.1: E||w_t - w||^2 and E||v_k - v||^2 vs t = k", "t = k", "mean squared error",
               [series("w: measured", p.index, p["w"], algorithm="sid-w"),
                series("w: d_w/(gamma + t)", p.index, p["bw"], style="bound"),
                series("v: measured", p.index, p["v"], algorithm="sid-v"),
                series("v: E d_v(w_t)/(gamma + k)", p.index, p["bv"], style="bound")])
    parts = {"bound": _worst(bounds, "sid21.thm5.1", "Theorem 5.1 on stochastic-quadratic, 99% one-sided bounds"),
             "exact": _worst(exacts, "sid21.thm5.1", f"Monte Carlo against the exact rates (family-wise "
                             f"{1 - EXACT_LEVEL:.2%} intervals over {m} comparisons)")}
    if no_v:
        parts["v"] = Verdict(id="sid21.thm5.1", verdict="inconclusive",
                             reason=f"the player's state holds no v (SIDState.v), so eq. (31) is not checked at "
                                    f"{', '.join(no_v)}")
    return combine("sid21.thm5.1", parts, headline="bound", details={"figure": fig})


register_claim(Claim(
    id="sid21.thm5.1", paper=P, kind="inequality",
    statement="E||w_t - w||^2 <= d_w/(gamma + t) and E||v_k - v||^2 <= d_v/(gamma + k) with the constants of "
              "Theorem 5.1",
    setup=_SETUP_MC + "; sigma_1 = 2 V[Phi^(w, lambda, zeta)] exact (finite sum, batch of 4); both mean squared "
          "errors also against their exact values",
    experiments=(MC,), judge=_judge_thm51,
    bounds=("sid21.thm5.1.w", "sid21.thm5.1.v", "sid21.thm5.1.dw", "sid21.thm5.1.dv", "sid21.thm5.1.sigma2")))


# ====================================================================== mc/fixed-point-sgd: Section 4
_SETUP_SGD = (
    "iteration (17) through the audited sid.fixed-point component. Logistic: SGD w_{t+1} = w_t - eta_t alpha "
    "grad l^(w_t; batch of 4) (eq. 21) on logistic-lower (one regularisation parameter, dim_y 5, n 200) at lam = "
    "0.1: tau = 0.1 and L = 0.85 exact, sigma2' = 0 and sigma1' = E||a_i||^2 (Remark 4.2, eq. 27), q = max|1 - "
    "alpha a| over [tau, L]; alpha = 1/L and 2/(L + tau); eta = 1 (= 1/(1 + sigma2)) and eta_t = beta/(gamma + t) "
    "with beta = 2/(1 - q^2), gamma = beta; from w_0 = 0 (decreasing) or ||w_0 - w*||^2 = 1000 r2 (constant, so that "
    "a transient precedes the noise floor). Quadratic: T^(w) = w - alpha grad_y G(w; batch of 4) of the "
    "stochastic-quadratic instance (alpha = 2/(L+mu), sigma1 = 2 V[T^(w*)], sigma2 = 2 (L_T^2 + q^2)/(1-q)^2: "
    "Theorem 4.3), eta = 1/(1 + sigma2) or Theorem 5.1's decreasing steps, from w_0 = 0, exact MSE by the "
    "second-moment recursion. R Monte Carlo runs (quick 256, full 1024), t = 1, 2, 4, ... 1024 (full 8192)")


def _sgd_frame(df) -> pd.DataFrame:
    """One row per (instance, rule, policy, t, run) from the per-t list rows."""
    lens = df["err"].map(len)
    out = df.loc[df.index.repeat(lens)].drop(columns=["err"]).reset_index(drop=True)
    out["err"] = np.concatenate([np.asarray(e, dtype=float) for e in df["err"]])
    out["run"] = np.concatenate([np.arange(n) for n in lens])
    return out


def _sgd_bound(cid: str, row, t: int) -> float:
    """Right-hand side of claim ``cid`` at t for one (instance, rule, policy) group (bounds/sid21.py)."""
    if cid == "sid21.thm4.1":
        return B.thm4_1(t, row["q"], row["eta"], row["sigma1"], row["sigma2"], row["mse0"])
    if cid == "sid21.thm4.2":
        return B.thm4_2(t, row["q"], row["beta"], row["gamma"], row["sigma1"], row["sigma2"], row["mse0"])
    if row["policy"] == "constant":
        return B.cor4_1_bound(t, row["L"], row["tau"], row["eta"], row["sigma1p"], 0.0, row["mse0"], row["rule"])
    return B.cor4_1_decreasing_bound(t, row["L"], row["tau"], row["beta"], row["gamma"], row["sigma1p"], 0.0,
                                     row["mse0"], row["rule"])


def _judge_sgd_bound(cid: str, policies: tuple[str, ...], instances: tuple[str, ...]):
    def judge(frames, env) -> Verdict:
        df = frames[SGD]
        df = df[df["policy"].isin(policies) & df["instance"].isin(instances) & (df["t"] > 0)]
        bounds, exacts, fig = [], [], []
        m = int(np.isfinite(df["ex_mse"]).sum())
        for (inst, rule, policy), sub in df.groupby(["instance", "rule", "policy"]):
            curve = []
            for _, g in sub.sort_values("t").iterrows():
                t = int(g["t"])
                err = np.asarray(g["err"], dtype=float)
                s, bound = _mb(err), _sgd_bound(cid, g, t)
                what = f"E||w_t - w*||^2 ({inst}, alpha = {rule}, {policy}, t = {t})"
                bounds.append(judge_upper(cid, bound, s.mean, s.low, s.high, what, rtol=RTOL))
                if math.isfinite(g["ex_mse"]):
                    exacts.append(_exact(cid, err, g["ex_mse"], what, m, VAR_RES))
                curve.append((t, s.mean, s.low, s.high, bound, g["ex_mse"]))
            t, mm, lo, hi, b, ex = zip(*curve, strict=True)
            # one colour per (instance, step rule, policy); the bound of each in that colour, one line style
            grp = f"{inst}, alpha = {rule}, {policy}"
            fig += [series(f"measured, {grp}", t, mm, ylow=lo, yhigh=hi, group=grp),
                    series(f"bound, {grp}", t, b, style="bound", group=grp, bound="bound")]
            if all(math.isfinite(e) for e in ex):
                fig.append(series(f"exact, {grp}", t, ex, style="line", group=grp))
        R = len(df["err"].iloc[0])
        parts = {"bound": _worst(bounds, cid, f"iteration (17) through sid.fixed-point, R = {R} runs, 99% one-sided "
                                 "bounds")}
        if exacts:
            parts["exact"] = _worst(exacts, cid, f"Monte Carlo against the exact MSE of the quadratic instance "
                                    f"(family-wise {1 - EXACT_LEVEL:.2%} intervals over {m} comparisons)")
        return combine(cid, parts, headline="bound",
                       details={"figure": spec("loglog", f"{cid}: E||w_t - w*||^2 vs t", "t", "E||w_t - w*||^2",
                                               fig)})
    return judge


register_claim(Claim(
    id="sid21.thm4.1", paper=P, kind="inequality",
    statement="stochastic fixed-point iteration, constant step eta <= 1/(1+sigma2): MSE_t <= (1 - eta(1-q^2))^t "
              "(MSE_0 - eta sigma1/(1-q^2)) + eta sigma1/(1-q^2)",
    setup=_SETUP_SGD + "; constant steps; logistic: T^(w) = w - alpha grad l^(w), sigma1 = alpha^2 sigma1', sigma2 = "
          "0; the quadratic's MSE also against its exact value",
    experiments=(SGD,), judge=_judge_sgd_bound("sid21.thm4.1", ("constant",), ("logistic", "quadratic")),
    bounds=("sid21.thm4.1", "sid21.thm4.3")))

register_claim(Claim(
    id="sid21.thm4.2", paper=P, kind="inequality",
    statement="decreasing steps eta_t = beta/(gamma + t), beta > 1/(1-q^2), gamma >= beta(1+sigma2): "
              "E||w_t - w*||^2 <= c/(gamma + t)",
    setup=_SETUP_SGD + "; decreasing steps; the quadratic's MSE also against its exact value",
    experiments=(SGD,), judge=_judge_sgd_bound("sid21.thm4.2", ("decreasing",), ("logistic", "quadratic")),
    bounds=("sid21.thm4.2", "sid21.thm4.2.c", "sid21.thm4.3")))

register_claim(Claim(
    id="sid21.cor4.1", paper=P, kind="inequality",
    statement="SGD on a tau-strongly convex L-smooth objective, alpha = 1/L and alpha = 2/(L+tau): the rates r1, "
              "r2, r3 of Corollary 4.1 hold",
    setup=_SETUP_SGD + "; the logistic instance (Assumption F); eq. (22) (constant) and eq. (24) (decreasing) for "
          "both alpha",
    experiments=(SGD,), judge=_judge_sgd_bound("sid21.cor4.1", ("constant", "decreasing"), ("logistic",)),
    bounds=("sid21.cor4.1", "sid21.cor4.1.decreasing", "sid21.cor4.1.r1", "sid21.cor4.1.r2", "sid21.cor4.1.r3")))


def _judge_rate(frames, env) -> Verdict:
    """Exponent of E||w_t - w*||^2 in gamma + t on the tail t >= T/8 (decreasing steps, every instance and rule).
    A chain that stalls (e.g. an iteration without the relaxation eta_t) has exponent near 0: violated."""
    df = _sgd_frame(frames[SGD])
    dec = df[(df["policy"] == "decreasing") & (df["t"] > 0)]
    T = int(dec["t"].max())
    verdicts, fig, fits = [], [], []
    for (inst, rule), sub in dec.groupby(["instance", "rule"]):
        gamma = float(sub["gamma"].iloc[0])
        tail = sub[sub["t"] >= T // 8]
        fit = loglog_fit(tail["t"] + gamma, tail["err"], groups=tail["t"])
        note = f"gamma = {gamma:.3g}"
        if np.isfinite(tail["ex_mse"]).all():
            ex = tail.groupby("t")["ex_mse"].first()
            slope = loglog_fit(ex.index + gamma, ex, n_boot=0).slope
            note += f"; the exact MSE's exponent over the same t: {slope:.3g}"
        verdicts.append(judge_scaling("sid21.thm4.2.rate", -1.0, fit, f"{inst}, alpha = {rule}: E||w_t - w*||^2 "
                                      f"against gamma + t, t in [{T // 8}, {T}]", note=note))
        last = sub[sub["t"] == T]
        stuck = [{"where": f"{inst}, alpha = {rule}, run {int(r.run)}", "status": "diverged", "last": float(r.err),
                  "target": B.thm4_2(T, r.q, r.beta, r.gamma, r.sigma1, r.sigma2, r.mse0), "steps": T, "budget": T}
                 for r in last.itertuples() if not math.isfinite(r.err)]
        failed = judge_converged("sid21.thm4.2.rate", stuck, len(last), "Theorem 4.2 promises convergence")
        if failed is not None:
            verdicts.append(failed)
        mm = sub.groupby("t")["err"].mean()
        fig.append(series(f"measured, {inst}, alpha = {rule}", mm.index + gamma, mm.to_numpy(),
                          algorithm=f"fp-{inst}-{rule}"))
        fits.append(fit_line(f"{inst}, alpha = {rule}: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]", fit,
                             (T // 8 + gamma, T + gamma), -1.0))
    parts = {f"{i}": v for i, v in enumerate(verdicts)}
    out = combine("sid21.thm4.2.rate", parts, reason=" | ".join(v.reason for v in verdicts),
                  details={"figure": spec("loglog", "sid21.thm4.2.rate: MSE vs gamma + t (decreasing steps)",
                                          "gamma + t", "E||w_t - w*||^2", fig, fits)})
    return out


register_claim(Claim(
    id="sid21.thm4.2.rate", paper=P, kind="scaling",
    statement="that MSE decays with exponent -1 in t",
    setup=_SETUP_SGD + "; decreasing steps; log-log fit of the Monte Carlo MSE against gamma + t on the last three "
          "octaves, bootstrap over runs",
    experiments=(SGD,), judge=_judge_rate, bounds=("sid21.thm4.2",)))


def _judge_rem41(frames, env) -> Verdict:
    """Constant steps, transient phase: at the largest t where both rules' predicted transient r1^t MSE_0 is
    >= 10 r2 (the noise floor still negligible), alpha = 2/(L+tau) must have the smaller MSE (99% bounds: upper
    bound of one below the lower bound of the other). Also reports the per-step rates implied by the measured MSE,
    and r1 of Corollary 4.1 against Bottou et al.'s r1 (eq. 25)."""
    df = _sgd_frame(frames[SGD])
    con = df[(df["policy"] == "constant") & (df["instance"] == "logistic")]
    rows = {rule: g.iloc[0] for rule, g in con.groupby("rule")}
    ok_t = []
    for t in sorted(con["t"].unique()):
        if t == 0:
            continue
        good = True
        for row in rows.values():
            r1 = B.cor4_1_r1(row["L"], row["tau"], row["eta"], row["rule"])
            r2 = B.cor4_1_r2(row["L"], row["tau"], row["eta"], row["sigma1p"], row["rule"])
            good &= r1**t * row["mse0"] >= 10 * r2
        if good:
            ok_t.append(int(t))
    t1 = max(ok_t) if ok_t else 1
    fast, slow = (_mb(con[(con["rule"] == r) & (con["t"] == t1)]["err"]) for r in ("2/(L+tau)", "1/L"))
    mse0 = rows["1/L"]["mse0"]
    rate = {r: (mm.mean / mse0) ** (1 / t1) for r, mm in (("2/(L+tau)", fast), ("1/L", slow))}
    r_l = rows["1/L"]
    r1_cor = {r: B.cor4_1_r1(row["L"], row["tau"], row["eta"], r) for r, row in rows.items()}
    r1_bot = B.bottou_r1(r_l["L"], r_l["tau"], r_l["eta"])
    # the ordering as an inequality on the difference of two independent Monte Carlo means (99% one-sided bounds
    # of the difference): holds when its upper bound is below 0, violated when its lower bound is above 0
    a, b = (con[(con["rule"] == r) & (con["t"] == t1)]["err"].to_numpy() for r in ("2/(L+tau)", "1/L"))
    diff, half = a.mean() - b.mean(), Z99 * math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    v = judge_upper("sid21.rem4.1", 0.0, diff, diff - half, diff + half,
                    f"constant steps eta = 1, t = {t1} (transient): E||w_t - w*||^2 with alpha = 2/(L+tau) "
                    f"{fast.mean:.4g} [{fast.low:.4g}, {fast.high:.4g}] minus alpha = 1/L's {slow.mean:.4g} "
                    f"[{slow.low:.4g}, {slow.high:.4g}] (99% bounds) must be negative; measured per-step rates "
                    f"{rate['2/(L+tau)']:.4f} vs {rate['1/L']:.4f}; predicted r1: Cor. 4.1 {r1_cor['2/(L+tau)']:.4f} "
                    f"(2/(L+tau)), {r1_cor['1/L']:.4f} (1/L); Bottou et al. (25) {r1_bot:.4f} (1/L)")
    curves = []
    for rule, g in con[con["t"] > 0].groupby("rule"):
        mm = g.groupby("t")["err"].mean()
        curves.append(series(f"measured, alpha = {rule}", mm.index, mm.to_numpy(), algorithm=f"sgd-{rule}"))
        row = rows[rule]
        curves.append(series(f"Cor. 4.1 bound, alpha = {rule}", mm.index,
                             [B.cor4_1_bound(int(t), row["L"], row["tau"], row["eta"], row["sigma1p"], 0.0,
                                             row["mse0"], rule) for t in mm.index], style="bound"))
    mm = con[(con["rule"] == "1/L") & (con["t"] > 0)].groupby("t")["err"].mean()
    curves.append(series("Bottou et al. (25) rate, alpha = 1/L", mm.index,
                         [B.bottou_bound(int(t), r_l["L"], r_l["tau"], r_l["eta"], r_l["sigma1p"], mse0)
                          for t in mm.index], style="line"))
    return Verdict(id="sid21.rem4.1", verdict=v.verdict, predicted=rate["1/L"], measured=rate["2/(L+tau)"],
                   tightness=rate["1/L"] - rate["2/(L+tau)"], reason=v.reason,
                   details={"t": t1, "r1_cor41": r1_cor, "r1_bottou": r1_bot,
                            "figure": spec("semilogy", "sid21.rem4.1: SGD, alpha = 2/(L+tau) vs 1/L", "t",
                                           "E||w_t - w*||^2", curves)})


register_claim(Claim(
    id="sid21.rem4.1", paper=P, kind="comparison",
    statement="alpha = 2/(L+tau) gives a faster measured rate than alpha = 1/L with Bottou et al.'s constants "
              "(eq. 25)",
    setup=_SETUP_SGD + "; constant steps, logistic instance: Monte Carlo MSE of the two alpha at a t of the "
          "transient phase",
    experiments=(SGD,), judge=_judge_rem41,
    bounds=("sid21.bottou", "sid21.bottou.r1", "sid21.cor4.1.r1", "sid21.cor4.1.r2", "sid21.cor4.1")))


# ====================================================================== Theorem 4.3 (exact variances)
def _judge_thm43(frames, env) -> Verdict:
    df = frames[MAP_VARIANCE]
    ratio = df["var"] / df["bound"]
    i = int(np.argmax(ratio.to_numpy()))
    row = df.iloc[i]
    v = judge_upper("sid21.thm4.3", float(row["bound"]), float(row["var"]), float(row["var"]), float(row["var"]),
                    f"exact finite-sum V[T^(w, zeta)] at {len(df)} points w = w* + r u (r in [1e-2, 1e2], "
                    f"{df['instance'].nunique()} instances); worst ratio at r = {row['radius']:.3g}", rtol=RTOL)
    g = df.groupby("radius")[["var", "bound"]].max()
    v.details = {"figure": spec("loglog", "sid21.thm4.3: V[T^(w, zeta)] vs ||w - w*|| (max over directions)",
                                "||w - w*||", "variance",
                                [series("exact variance", g.index, g["var"], algorithm="T-hat"),
                                 series("Theorem 4.3 bound", g.index, g["bound"], style="bound")]),
                 "max_ratio": float(ratio.max()), "min_ratio": float(ratio.min())}
    v.reason += f"; measured/bound ratios in [{ratio.min():.3g}, {ratio.max():.3g}]"
    return v


register_claim(Claim(
    id="sid21.thm4.3", paper=P, kind="inequality",
    statement="V[T^(w, zeta)] <= 2 V[T^(w*, zeta)] + 2 (L_T^2 + q^2)/(1-q)^2 ||T(w) - w||^2",
    setup="stochastic-quadratic (dim_x 2, dim_y 4, kappa 4, n_g 32, noise 0.2), T^(w, zeta_i) = w - alpha grad_y "
          "G(x, w; zeta_i), alpha = 2/(L+mu): the variance over the n_g samples computed exactly (finite sum, no "
          "Monte Carlo) at w = w* + r u, 9 radii x 8 random directions per instance; L_T^ = sup_i ||I - alpha "
          "grad_yy G_i|| and q exact (sid_constants). No algorithm runs: a property of the map",
    experiments=(MAP_VARIANCE,), judge=_judge_thm43, bounds=("sid21.thm4.3",)))


# ====================================================================== Figure 1 / Figure 2
#: "plateaus": the fitted exponent of the error in epochs over the last part is > -0.25 (less than 16% decrease per
#: doubling of epochs); "keeps decreasing": < -0.5 (Theorem 4.2 / Remark 5.1 predict -1 for Stoch dec).
PLATEAU, DECREASING = -0.25, -0.5


def _fig1_frame(df) -> pd.DataFrame:
    lens = df["err"].map(len)
    out = df.loc[df.index.repeat(lens)].drop(columns=["err"]).reset_index(drop=True)
    out["err"] = np.concatenate([np.asarray(e, dtype=float) for e in df["err"]])
    return out


def _judge_fig1(frames, env) -> Verdict:
    df = _fig1_frame(frames[FIG1])
    ok, bad, reversed_batch, parts, figs = True, False, False, [], []
    for n_reg, sub in df.groupby("n_reg"):
        last = sub["epochs"].max()
        tail = sorted(sub["epochs"].unique())[-3:]
        b = float(sub[(sub["variant"] == "Batch") & (sub["epochs"] == last)]["err"].mean())  # deterministic
        curves, fits = [], []
        for variant in ("Stoch const", "Stoch dec"):
            g = sub[sub["variant"] == variant]
            if not np.isfinite(g["err"]).all():
                bad, ok = True, False
                parts.append(f"{n_reg} reg. param(s), {variant}: {int((~np.isfinite(g['err'])).sum())} runs diverged")
                continue
            s = _mb(g[g["epochs"] == last]["err"])
            tl = g[g["epochs"].isin(tail)]
            fit = loglog_fit(tl["epochs"], tl["err"], groups=tl["epochs"])
            ok &= s.high < b
            reversed_batch |= s.low > b
            if variant == "Stoch const":
                ok &= fit.low > PLATEAU
                bad |= fit.high < DECREASING
            else:
                ok &= fit.high < DECREASING
                bad |= fit.low > PLATEAU
            parts.append(f"{n_reg} reg. param(s), {variant}: error at {last} epochs {s.mean:.3g} [{s.low:.3g}, "
                         f"{s.high:.3g}] vs Batch {b:.3g}; tail slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]")
            fits.append(fit_line(f"{variant}: slope {fit.slope:.2f}", fit, (tail[0], tail[-1]),
                                 algorithm=f"sid-{variant}"))
        for variant, g in sub.groupby("variant"):
            mm = g.groupby("epochs")["err"]
            mean = mm.mean()
            half = Z99 * mm.std() / np.sqrt(mm.count())
            curves.append(series(variant, mean.index, mean.to_numpy(), ylow=(mean - half).to_numpy(),
                                 yhigh=(mean + half).to_numpy(), algorithm=f"sid-{variant}"))
        figs.append(spec("loglog", f"sid21.fig1: {n_reg} regularisation parameter(s)", "epochs",
                         "||grad^f - grad f||^2", curves, fits))
    verdict = "holds" if ok else ("violated" if bad else "inconclusive")
    regime = ""
    if reversed_batch and not bad:
        # The Batch ordering is an observation on MNIST, where Batch is far from converged after 60 epochs. On
        # logistic-lower the data curvatures on the directions the hypergradient sees span a factor <= 4 (the
        # family's design), so Batch converges linearly within a few epochs: the paper's regime is absent.
        regime = ("Batch beats the stochastic variants here: on logistic-lower the lower level restricted to the "
                  "directions the hypergradient sees is well conditioned (data curvatures within a factor 4), so "
                  "Batch converges linearly in a few epochs; the paper's regime (MNIST, Batch far from converged "
                  "after 60 epochs) is not reproduced, hence inconclusive rather than violated. ")
    reason = (regime + f"plateau: tail slope 95% CI above {PLATEAU}; keeps decreasing: below {DECREASING}; "
              f"stochastic < Batch: 99% upper bound below Batch's (deterministic) error. " + " | ".join(parts))
    return Verdict(id="sid21.fig1", verdict=verdict, reason=reason, details={"figure": figs[0], "figures": figs})


register_claim(Claim(
    id="sid21.fig1", paper=P, kind="comparison",
    statement="on regularised logistic regression (one and many regularisation parameters): at equal epochs, the "
              "stochastic variants of SID reach a smaller hypergradient error than Batch, and Stoch dec keeps "
              "decreasing where Stoch const plateaus",
    setup="logistic-lower (dim_y 5, kappa 20; n 400, batch 8 quick; n 1000, batch 10 full: n/S = 50 or 100 steps "
          "per epoch) as a finite sum at lam = 0.06 (one parameter) or log-uniform in the box (5 parameters); the "
          "audited SID: Batch (t = k = t_B full steps, eta 1), Stoch const (t = k = t_B n/S, eta 1), Stoch dec "
          "(beta = 2/(1-q^2), gamma = beta), alpha = 2/(L+tau) at lam, d2 Phi exact (separable, m2 = 0); R runs "
          "(quick 64, full 128); epochs = 2 t_B as in the paper",
    experiments=(FIG1,), judge=_judge_fig1))
