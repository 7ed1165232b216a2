"""Claims of Ji, Liu, Liang, Ying, NeurIPS 2022 (shared/papers/ji-liu-liang-ying-2022-neurips-loops.txt).

What each claim runs is in :mod:`bench.experiments.loops`: the AID regimes (role ``aid-bio``, GD linear solver
``solver.gd``) and N-N-loop ITD are complexity-to-eps sweeps with budgets >= 3x what the paper's algorithm
needs, so a run that misses eps is a violation; every ITD claim runs ``itd-bio`` through the cast and compares
what it measures with the exact value of the paper's algorithm on the instance (trajectory and floor on the
lower-bound construction, the linear fixed point on random quadratics), two-sided, to float round-off.
"""

from __future__ import annotations

import math

import numpy as np

from bilevelbench.bounds.tables import kappa_exponent, kappa_exponents, row_names, rows_where

from ..experiments.loops import AID_PRESETS, AID_RATE, COR6, FLOOR_GAP, ITD_RATE, LOWER_BOUND, NOLOOP_CENSORED, TABLE3
from ..figures import centred_intercept, fit_line, series, spec
from ..judging import (
    Verdict,
    combine,
    convergence_failures,
    judge_converged,
    judge_identity,
    judge_lower,
    judge_rates,
    judge_scaling,
    judge_upper,
)
from ..stats import Fit, loglog_fit, mean_bound
from . import Claim, register_claim

__all__ = ["AID_CLAIMS", "ORDERINGS", "with_gc", "count_to_eps"]

P = "loops22"
#: claim -> (the regime's preset, its Corollary, its row name in the paper's tables)
AID_CLAIMS = {"loops22.cor1": ("loops22.cor1", "Corollary 1", "N-loop AID"),
              "loops22.cor2": ("loops22.cor2", "Corollary 2", "No-loop AID"),
              "loops22.cor3": ("loops22.cor3", "Corollary 3", "N-Q-loop AID"),
              "loops22.cor4": ("loops22.cor4", "Corollary 4", "Q-loop AID")}
ITD_ROW = ("loops22", "Corollary 5", "N-N-loop ITD")


def with_gc(df):
    """The Loops paper's Gc = Gc(f) + Gc(g) (counts to eps, per step and structural) added to a rate table."""
    return df.assign(gc=df["gc_f"] + df["gc_g"], per_step_gc=df["per_step_gc_f"] + df["per_step_gc_g"],
                     struct_gc=df["struct_gc_f"] + df["struct_gc_g"])


# ====================================================================== AID regimes (Corollaries 1-4)
def _judge_aid(cid):
    preset, item, algo = AID_CLAIMS[cid]

    def judge(frames, env) -> Verdict:
        return judge_rates(cid, with_gc(frames[AID_RATE[preset]]), kappa_exponents(P, item, algo), log_hidden=True,
                           pre_asymptotic=True, role="aid-bio")

    return judge


_AID_SETUP = ("nonconvex quadratic (dim 8 quick / 16 full, Phi nonconvex, exact constants, Phi(x0) - inf Phi = 1), "
              "kappa grid {grid}, R seeds batched; aid-bio (audited; its GD linear solver is the component "
              "solver.gd) with preset {p} (eta, lambda, N, Q, beta as printed, every Theta constant 1). Gc(f)+Gc(g) "
              "and JV+HV at the first K meeting the averaged criterion <= eps, fitted in kappa against the "
              "Corollary's exponents (bounds.tables), the O~ log factor and the preset's Theta(1) factors (ceil, "
              "(1 - eta mu)^(2Q)) as tolerance. Every run must reach eps within a step cap >= 3x what the paper's "
              "algorithm needs (non-convergence is a violation), and the counts must grow at least as the "
              "iterations times the per-step cost of the preset's parameters (bounds.costs)")
_STATEMENTS = {
    "loops22.cor1": "N-loop AID (N = Theta(kappa ln kappa), Q = Theta(1)): Gc = ~O(kappa^5/eps), MV = ~O(kappa^4/eps)",
    "loops22.cor2": "No-loop AID (N = 1, Q = Theta(1)): Gc = MV = ~O(kappa^6/eps)",
    "loops22.cor3": "N-Q-loop AID (N = Theta(kappa ln kappa), Q = Theta(kappa ln kappa/eps)): Gc = MV = "
                    "~O(kappa^4/eps)",
    "loops22.cor4": "Q-loop AID (N = 1, Q = Theta(kappa ln kappa/eps)): Gc = ~O(kappa^5/eps), MV = ~O(kappa^6/eps)",
}
for _cid, (_preset, _item, _algo) in AID_CLAIMS.items():
    _grid = ("1.5, 1.75 (quick; + 2 full): Theorem 1's beta ~ 6e-4 .. 1e-4 needs ~gap/(beta eps) steps"
             if _preset == "loops22.cor2" else "2, 3, 4 (quick; + 6, 8 full)")
    register_claim(Claim(id=_cid, paper=P, kind="scaling", statement=_STATEMENTS[_cid],
                         setup=_AID_SETUP.format(grid=_grid, p=_preset), experiments=(AID_RATE[_preset],),
                         judge=_judge_aid(_cid), bounds=tuple(row_names(P, _item))))


# ====================================================================== n-loop-helps
#: (fewer, more, kind): the paper's orderings (Sec. 4.2). MV: with Q fixed, the N-loop variants below Q-loop
#: and No-loop; Gc: with N fixed, the larger Q (Q-loop, N-Q-loop) below Q = Theta(1)
ORDERINGS = (("loops22.cor1", "loops22.cor2", "mv"), ("loops22.cor1", "loops22.cor4", "mv"),
             ("loops22.cor3", "loops22.cor2", "mv"), ("loops22.cor3", "loops22.cor4", "mv"),
             ("loops22.cor4", "loops22.cor2", "gc"), ("loops22.cor3", "loops22.cor1", "gc"))


def count_to_eps(df, kind):
    """Per kappa: (mean count to eps, whether it is a lower bound). A run that reached eps counts exactly; a
    run stopped earlier (the fixed-step No-loop sweep) counts by a lower bound: the first K with (1/K) S_K <= eps
    (S_K = sum_{k<K} ||grad Phi(x_k)||^2, nondecreasing) exceeds the steps run and is >= S_run/eps, and the count
    to eps is that of the K - 1 steps producing x_0..x_{K-1} (the presets' per-step counts are constant): so it
    is >= per-step count x max(steps run, S_run/eps - 1)."""
    out = {}
    for kappa, g in df.groupby("kappa"):
        reached = g["K"] > 0
        lower = g[f"per_step_{kind}"] * np.maximum(g["steps_run"], g["cum_sum"] / g["eps"] - 1)
        out[float(kappa)] = (float(g[kind].where(reached, lower).mean()), not bool(reached.all()))
    return out


def _judge_n_loop(frames, env) -> Verdict:
    cid = "loops22.n-loop-helps"
    regime = {p: name for p, (name, _) in AID_PRESETS.items()}
    d = {p: with_gc(frames[AID_RATE[p]]) for p in AID_PRESETS}
    censored = with_gc(frames[NOLOOP_CENSORED])
    failures = [dict(f, where=f"{regime[p]}: {f['where']}") for p in AID_PRESETS
                for f in convergence_failures(d[p])]
    failed = judge_converged(cid, failures, sum(len(t) for t in d.values()),
                             "the four AID regimes on their presets (counts to eps need every run to reach it)")
    counts = {}
    for p in AID_PRESETS:
        for kind in ("mv", "gc"):
            c = count_to_eps(d[p], kind)
            if p == "loops22.cor2":  # No-loop at the other regimes' kappas: lower bounds, unless it reached eps
                c = {**count_to_eps(censored, kind), **c}
            counts[(p, kind)] = c
    rows, lines, reversed_, undecided = [], [], [], []
    for a, b, kind in ORDERINGS:
        ca, cb = counts[(a, kind)], counts[(b, kind)]
        common = sorted(k for k in set(ca) & set(cb) if not ca[k][1])
        if not common:
            undecided.append(f"{regime[a]} vs {regime[b]} ({kind}): no common kappa")
            continue
        kap = common[-1]  # the orderings are asymptotic: judged at the largest common kappa
        va, (vb, lower) = ca[kap][0], cb[kap]
        ratio = vb / va
        rows.append({"fewer": a, "more": b, "kind": kind, "kappa": kap, "fewer_count": va, "more_count": vb,
                     "more_is_lower_bound": lower, "ratio": ratio,
                     "all": {str(k): [ca[k][0], cb[k][0], cb[k][1]] for k in common}})
        lines.append(f"{kind.upper()} {regime[b]}/{regime[a]} at kappa {kap:g}: {ratio:.3g}"
                     + (" (>=: lower bound on No-loop's count)" if lower else ""))
        if ratio <= 1:
            (undecided if lower else reversed_).append(f"{regime[a]} vs {regime[b]} ({kind})")
    ratios = [r["ratio"] for r in rows]
    mv2, mv4 = counts[("loops22.cor2", "mv")], counts[("loops22.cor4", "mv")]
    same = sorted(k for k in set(mv2) & set(mv4) if not mv4[k][1])
    note = (" 'With N fixed, Q does not change the dominant MV' is an order statement (both kappa^6 for N = 1, "
            "both kappa^4 for N large) judged by the exponents of loops22.cor1..cor4; MV No-loop/Q-loop here: "
            + ", ".join(f"kappa {k:g}: {mv2[k][0] / mv4[k][0]:.3g}{' (>=)' if mv2[k][1] else ''}" for k in same) + ".")
    reason = "count ratio (more/fewer) per ordering of the paper: " + "; ".join(lines) + "." + note
    if reversed_:
        reason += " Reversed: " + ", ".join(reversed_) + "."
    if undecided:
        reason += " Undecided: " + ", ".join(undecided) + "."

    def _series(p, kind):
        # a count that is a lower bound (fixed steps, eps not reached) is drawn censored; one colour per regime
        c = counts[(p, kind)]
        return series(regime[p], list(c), [v[0] for v in c.values()], censored=[bool(v[1]) for v in c.values()])

    figs = [spec("loglog", f"{cid}: {kind.upper()} to eps by regime", "kappa = L/mu", f"{kind} to eps (count)",
                 [_series(p, kind) for p in AID_PRESETS]) for kind in ("mv", "gc")]
    measured = min(ratios) if ratios else math.nan
    if failed is not None:
        verdict, reason = "violated", failed.reason + ". " + reason
    else:
        verdict = "violated" if reversed_ else ("holds" if not undecided else "inconclusive")
    return Verdict(id=cid, verdict=verdict, predicted=1.0, measured=measured, tightness=measured - 1.0,
                   reason=reason, details={"pairs": rows, "figures": figs,
                                           **({"non_converged": failed.details["non_converged"]} if failed else {})})


register_claim(Claim(
    id="loops22.n-loop-helps", paper=P, kind="comparison",
    statement="with Q fixed, the N-loop variants (N-Q-loop, N-loop) need fewer MV than Q-loop and No-loop; with N "
              "fixed, Q changes Gc but not the dominant MV",
    setup="the four AID regime sweeps (loops22.cor1..cor4, audited aid-bio with the GD solver) on the nonconvex "
          "quadratic: mean MV and Gc to eps per kappa, every run required to reach eps. No-loop AID reaches eps only "
          "at kappa <= 1.75 within the quick budget, so at the other regimes' kappas the paper's No-loop runs a fixed "
          "number of steps and counts by a lower bound on its count to eps (enough to confirm 'more', never to "
          "refute). Orderings "
          "judged at the largest common kappa (the statements are asymptotic), all kappas reported",
    experiments=tuple(AID_RATE.values()) + (NOLOOP_CENSORED,), judge=_judge_n_loop,
    audits="the four regime sweeps are audited (aid-bio with the GD solver; a run that misses eps is a violation); "
           "No-loop's fixed-step lower bound at the N-loop grid's kappas is the paper's No-loop (a baseline: its "
           "runs stop short of eps by design)",
    bounds=tuple(n for cor in ("Corollary 1", "Corollary 2", "Corollary 3", "Corollary 4")
                 for n in row_names(P, cor) if not n.endswith(":rate"))))


# ====================================================================== N-N-loop ITD (Corollary 5)
register_claim(Claim(
    id="loops22.cor5", paper=P, kind="scaling",
    statement="N-N-loop ITD (N = Theta(kappa ln(kappa/eps))): rate O(kappa^3/K + eps), Gc = MV = ~O(kappa^4/eps)",
    setup="nonconvex quadratic, kappa 2, 3 (quick; + 4 full), R seeds; itd-bio (audited; its reverse recursion is the "
          "component itd.hypergradient) with preset loops22.cor5 (alpha = 1/(2L), N = ceil(kappa ln(kappa/eps)), beta "
          "of Cor. 5 with Theta constants 1); Gc and MV to eps fitted in kappa against Corollary 5's exponents (O~ "
          "log and preset Theta(1) factors as tolerance); every run must reach eps within >= 3x the paper's steps, "
          "and the counts must match the preset's per-step cost",
    experiments=(ITD_RATE,), bounds=tuple(row_names(*ITD_ROW[:2])) + ("loops22.cor5",),
    judge=lambda frames, env: judge_rates("loops22.cor5", with_gc(frames[ITD_RATE]), kappa_exponents(*ITD_ROW),
                                          log_hidden=True, pre_asymptotic=True, role="itd-bio")))


# ====================================================================== exact comparisons on the construction
def _worst(df, err: str, tol: str):
    """The row where ``err`` is largest relative to its own tolerance ``tol``."""
    return df.iloc[int(np.argmax((df[err] / df[tol]).to_numpy()))]


def _exact_parts(cid, df, what) -> dict[str, Verdict]:
    """Two-sided exact checks of an ITD run on the construction: the measured floor (squared bias of the
    estimate) against ``bounds.loops22.itd_floor`` and the measured ||grad Phi(x_k)||^2 against
    ``bounds.loops22.itd_trajectory``, each to its round-off tolerance."""
    df = df.assign(floor_err=(df["bias_sq"] / df["floor"] - 1).abs())
    wf, wt = _worst(df, "floor_err", "floor_rtol"), _worst(df, "traj_err", "traj_rtol")
    return {
        "floor": judge_identity(cid, float(wf["floor_err"]), float(wf["floor_rtol"]),
                                f"{what}: measured floor (squared bias of the audited estimate) vs exact floor "
                                f"L(L-mu)M^2(1-alpha mu)^(2N)/mu^2 (worst: kappa {wf['kappa']:g}, N {int(wf['N'])}, "
                                f"alpha mu {wf['alpha'] * wf['mu']:.3g}), two-sided"),
        "trajectory": judge_identity(cid, float(wt["traj_err"]), float(wt["traj_rtol"]),
                                     f"{what}: ||grad Phi(x_k)||^2 vs its exact trajectory, max over k (worst: kappa "
                                     f"{wt['kappa']:g}, N {int(wt['N'])}), two-sided"),
    }


# ---------------------------------------------------------------------- No-loop ITD (Corollary 6)
COR6_ROW = rows_where(paper=P, item="Corollary 6", metric="rate")[0]
LOWER_ROW = rows_where(paper=P, item="Table 2", algorithm="Lower bound")[0]


def _judge_cor6(frames, env) -> Verdict:
    cid = "loops22.cor6"
    df = frames[COR6]
    low = df["min_avg"] / df["floor"]
    w = df.iloc[int(np.argmin(low.to_numpy()))]
    parts = {"non-vanishing": judge_lower(
        cid, 1.0, float(low.min()), float(low.min()), float(low.min()),
        "min over K of (1/K) sum_{k<K} ||grad Phi(x_k)||^2 / exact floor (> 0: the error does not vanish)",
        rtol=float(w["traj_rtol"]), runs=len(df))}
    parts.update(_exact_parts(cid, df, "No-loop ITD"))
    g = df.groupby("kappa")[["bias_sq", "floor"]].mean().reset_index()
    fit = loglog_fit(g["kappa"], g["bias_sq"], n_boot=0)
    fit = Fit(fit.slope, fit.slope, fit.slope, fit.intercept, fit.n_points)  # exact values: no sampling interval
    # the exact floor is Theorem 4's kappa^2 (Table 2) times the Theta(1) factor (1 - 1/kappa)(1 - 1/(2N kappa))^(2N)
    # (L = M = 1, alpha = 1/(2NL)); that factor's local slope over the grid is the tolerance of the order statement
    kk = g["kappa"].to_numpy(dtype=float)
    exact_slope = loglog_fit(kk, g["floor"].to_numpy(), n_boot=0).slope if len(kk) > 1 else math.nan
    theta_tol = max(0.0, exact_slope - kappa_exponent(LOWER_ROW)) if len(kk) > 1 else 0.0
    parts["shape"] = judge_scaling(
        cid, kappa_exponent(COR6_ROW), fit, "measured floor vs kappa against the error term M^2 L^2/(alpha mu^3) "
        "(Corollary 6's kappa^3 at fixed M, alpha = 1/(2NL)); tolerance: local slope of the floor's Theta(1) factor "
        "(1 - 1/kappa)(1 - alpha mu)^(2N)", tol=theta_tol,
        tol_from="the local slope of the floor's Theta(1) factor (1 - 1/kappa)(1 - alpha mu)^(2N), no O~ log factor")
    upper_c1 = float(df["max_avg_over_bound"].max())
    up = judge_upper(cid, 1.0, upper_c1, upper_c1, upper_c1, "max over K of the average / [kappa^3/K + M^2 L^2/"
                     "(alpha mu^3)] with the O(.)'s hidden constant set to 1")
    if up.verdict == "violated":  # an unstated constant: above c = 1 is no contradiction
        up = Verdict(id=cid, verdict="inconclusive", predicted=1.0, measured=upper_c1,
                     reason=up.reason + "; a larger hidden constant would cover it")
    parts["upper (c = 1)"] = up
    figs = [spec("loglog", f"{cid}: No-loop ITD floor vs the error term's shape", "kappa", "||grad Phi||^2",
                 [series("measured floor (squared bias)", g["kappa"], g["bias_sq"], algorithm="itd-bio"),
                  series("exact floor", g["kappa"], g["floor"], style="bound"),
                  series("error term M^2 L^2/(alpha mu^3) (c = 1)", df.groupby("kappa")["error_term"].mean().index,
                         df.groupby("kappa")["error_term"].mean().to_numpy(), style="bound")],
                 [fit_line(f"fit slope {fit.slope:.2f}", fit, (kk.min(), kk.max()), kappa_exponent(COR6_ROW))])]
    v = combine(cid, parts, headline="non-vanishing",
                details={"figures": figs, "floor_exponent": fit.slope, "max_avg_over_bound_c1": upper_c1})
    if v.verdict == "consistent":  # the shape part is a scaling rule: consistent is its 'holds'
        v.verdict = "holds"
    return v


register_claim(Claim(
    id="loops22.cor6", paper=P, kind="inequality",
    statement="No-loop ITD (N = Theta(1)): non-vanishing error, (1/K) sum ||grad Phi||^2 stays above zero and below "
              "O(kappa^3/K + M^2 L^2/(alpha mu^3))",
    setup="itd-lower-bound construction (exact trajectory and floor; Loops M = ||grad_y f|| exact), kappa 2, 4 (quick; "
          "+ 8 and N = 2 full); audited itd-bio with the paper's preset loops22.cor6 mapped by parameter name (N = 1, "
          "alpha = 1/(2NL), beta of Cor. 6), x0 = 0, min(cap, 3/(beta a)) steps: the averaged criterion against the "
          "exact floor (lower side), the trajectory and the measured floor against their exact values (two-sided, "
          "round-off), the floor's kappa exponent against Corollary 6's, the bound with constant 1 (upper side)",
    experiments=(COR6,), judge=_judge_cor6,
    bounds=tuple(row_names(P, "Corollary 6")) + ("loops22.cor6", "loops22.itd_floor", "loops22.itd_trajectory")))


# ---------------------------------------------------------------------- Theorem 4 (lower bound)
def _judge_thm4(frames, env) -> Verdict:
    cid = "loops22.thm4"
    df = frames[LOWER_BOUND]
    ratio = df["min_grad_sq"] / df["floor"]
    i = int(np.argmin(ratio.to_numpy()))
    w = df.iloc[i]
    lower = judge_lower(cid, 1.0, float(ratio.iloc[i]), float(ratio.iloc[i]), float(ratio.iloc[i]),
                        "min over 1 <= k <= K of ||grad Phi(x_k)||^2 / exact floor L(L-mu)M^2(1-alpha mu)^(2N)/mu^2",
                        rtol=float(w["traj_rtol"]), runs=len(df))
    c_eff = (df["floor"] / df["thm4_c1"]).min()
    lower.reason += (f" (worst: kappa {w['kappa']:g}, N {int(w['N'])}, alpha mu {w['alpha_mu']:.3g}; {len(df)} runs of "
                     f"K = {int(w['K'])} steps, beta = 1/L_Phi). The exact floor is Theorem 4's "
                     f"Theta(L^2 M^2 (1-alpha mu)^(2N)/mu^2) with constant >= {c_eff:.3g}; the construction is ours "
                     "(the paper's appendix is not at hand)")
    parts = {"lower bound": lower, **_exact_parts(cid, df, "ITD-BiO")}
    sub = df[(df["rule"] == "1/L") & (df["instance"] == 0)]
    figs = [spec("semilogy", f"{cid}: ITD-BiO floor against N (alpha = 1/L)", "N", "||grad Phi||^2",
                 [s for k, g in sub.groupby("kappa") for s in (
                     series(f"kappa {k:g}: min_k measured", g["N"], g["min_grad_sq"], group=f"kappa {k:g}"),
                     series(f"kappa {k:g}: exact floor", g["N"], g["floor"], style="bound", group=f"kappa {k:g}",
                            bound="exact floor"))])]
    return combine(cid, parts, headline="lower bound", details={"figures": figs, "constant": float(c_eff)})


register_claim(Claim(
    id="loops22.thm4", paper=P, kind="lower-bound",
    statement="on the paper's construction, ITD-BiO with alpha <= 1/L, beta <= 1/L_Phi, N = O(1): ||grad Phi(x_K)||^2 "
              ">= Theta(L^2 M^2/mu^2 (1 - alpha mu)^(2N)) for every K >= 1",
    setup="itd-lower-bound construction (g = 1/2 y'Ay - y'Bx, f = m'y + a/2||x||^2, exact trajectory and floor), "
          "kappa 2, 4, 8 and N 1, 2, 4, 8 (quick), alpha in {1/L, 1/(2L), fixed alpha mu}, beta = 1/L_Phi, x0 = 0, "
          "K steps of the audited itd-bio: min_k ||grad Phi(x_k)||^2 against the exact floor "
          "(bounds.loops22.itd_floor); the measured floor (squared bias of the estimate) and the whole trajectory "
          "against their exact values, two-sided: an ITD with another floor is violated even where its floor is higher",
    experiments=(LOWER_BOUND,), judge=_judge_thm4,
    bounds=("loops22.thm4", "loops22.itd_floor", "loops22.itd_trajectory")))


# ---------------------------------------------------------------------- Theorem 4's scaling


def _slope_and_tol(x, y, rel_err):
    """Least-squares slope of log y against x and the most it can move when each log y_i moves by at most
    ``rel_err[i]`` (|d slope| <= sum_i |w_i| rel_err_i, w_i the slope's weights)."""
    x, ly = np.asarray(x, dtype=float), np.log(np.asarray(y, dtype=float))
    w = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    return float(w @ ly), float(np.abs(w) @ np.asarray(rel_err, dtype=float))


def _two_sided(cid, predicted, slope, what, tol, why="the round-off bound of the slope") -> Verdict:
    """An exponent that is exact (Theta on both sides): consistent unless it leaves predicted +- tol (``why``
    says where the tolerance comes from; here it is no O~ log factor)."""
    fit = Fit(slope, slope, slope, math.nan, 0)
    hi = judge_scaling(cid, predicted, fit, what, upper=True, tol=tol, tol_from=why)
    lo = judge_scaling(cid, predicted, fit, what, upper=False, tol=tol, tol_from=why)
    return hi if hi.verdict == "violated" else lo


def _judge_thm4_scaling(frames, env) -> Verdict:
    cid = "loops22.thm4.scaling"
    df = frames[LOWER_BOUND]
    df = df.assign(rel=df["floor_rtol"])
    parts, figs, by_n, n_fits = {}, [], [], []
    for kappa, g in df[df["rule"] == "1/L"].groupby("kappa"):
        g = g.groupby("N").agg(bias_sq=("bias_sq", "mean"), rel=("rel", "max"), thm4=("thm4_c1", "mean"))
        slope, tol = _slope_and_tol(g.index, g["bias_sq"], g["rel"])
        # the judged slope, drawn through the means it was fitted on (one colour per kappa)
        grp = f"kappa {kappa:g}"
        by_n.append(series(f"{grp} (mean over instances)", g.index, g["bias_sq"], group=grp))
        pred = _slope_and_tol(g.index, g["thm4"], np.zeros(len(g)))[0]
        n_fits.append(fit_line(f"{grp}: slope {slope:.3g}", Fit(slope, slope, slope, math.nan, len(g)),
                               (g.index.min(), g.index.max()), pred, group=grp,
                               intercept=centred_intercept("semilogy", slope, g.index, g["bias_sq"])))
        # Theorem 4's shape evaluated over the same N grid (bounds.loops22.thm4_floor): 2 ln(1 - alpha mu)
        pred = _slope_and_tol(g.index, g["thm4"], np.zeros(len(g)))[0]
        parts[f"N at kappa {kappa:g}"] = _two_sided(
            cid, pred, slope, f"log floor vs N at kappa {kappa:g} against Theorem 4's (1 - alpha mu)^(2N), slope "
            "2 ln(1 - alpha mu) (alpha = 1/L)", tol)
    g = df[df["rule"] == "fixed alpha mu"].groupby("kappa").agg(
        bias_sq=("bias_sq", "mean"), floor=("floor", "mean"), rel=("rel", "max"))
    lk = np.log(g.index.to_numpy(dtype=float))
    slope, tol = _slope_and_tol(lk, g["bias_sq"], g["rel"])
    exact_slope = _slope_and_tol(lk, g["floor"], np.zeros(len(g)))[0]
    table = kappa_exponent(LOWER_ROW)
    parts["kappa (exact)"] = _two_sided(cid, exact_slope, slope, "floor vs kappa (fixed M, alpha mu, N = 2) against "
                                        "the slope of the exact floor over the same grid", tol)
    # the construction's floor is kappa^2 (1 - 1/kappa) L^2 M^2 q^(2N): the Theta(1) factor's local slope over
    # the grid is how far the order kappa^2 of Table 2 can be from the grid's slope
    parts["kappa (Table 2)"] = _two_sided(cid, table, slope, "floor vs kappa (fixed M, alpha mu, N = 2) against Table "
                                          "2's Omega(kappa^2)", abs(exact_slope - table) + tol,
                                          why="the local slope of the construction's Theta(1) factor (1 - 1/kappa) "
                                              "plus the slope's round-off bound")
    kmin, kmax = float(g.index.min()), float(g.index.max())
    fk = Fit(slope, slope, slope, float(np.mean(np.log(g["bias_sq"])) - slope * lk.mean()), len(g))
    figs.append(spec("loglog", f"{cid}: floor against kappa (fixed alpha mu, N = 2)", "kappa = L/mu", "floor",
                     [series("measured floor", g.index, g["bias_sq"], algorithm="itd-bio"),
                      series("exact floor", g.index, g["floor"], style="bound")],
                     [fit_line(f"fit slope {slope:.3f}", fk, (kmin, kmax), table)]))
    figs.append(spec("semilogy", f"{cid}: floor against N (alpha = 1/L)", "N (inner steps)", "floor", by_n, n_fits))
    return combine(cid, parts, headline="kappa (Table 2)", details={"figures": figs})


register_claim(Claim(
    id="loops22.thm4.scaling", paper=P, kind="scaling",
    statement="that floor scales as (1 - alpha mu)^(2N) in N and as kappa^2 in kappa (for fixed M, alpha mu)",
    setup="the loops22.thm4 sweep (audited itd-bio): log measured floor fitted linearly in N (alpha = 1/L, per kappa) "
          "against 2 ln(1 - alpha mu); log floor against log kappa at fixed alpha mu = 1/(2 kappa_max), N = 2, M = 1 "
          "against the exact floor's slope and against Table 2's 2 (tolerance: the local slope of the "
          "construction's Theta(1) factor (1 - 1/kappa)); round-off of the measured floors bounds each slope's "
          "tolerance",
    experiments=(LOWER_BOUND,), judge=_judge_thm4_scaling,
    bounds=("loops22.thm4", "loops22.itd_floor", f"table:{LOWER_ROW.key}")))


# ====================================================================== Theorem 3 vs Theorem 4
def _judge_gap(frames, env) -> Verdict:
    cid = "loops22.thm3-vs-thm4"
    df = frames[FLOOR_GAP].copy()
    dev = (np.sqrt(df["floor"]) - np.sqrt(df["exact_floor"])).abs()
    bad = df[~df["settled"]]
    failures = [{"where": f"{r.family}, alpha mu {r.alpha_mu:.3g}, instance {int(r.instance)}",
                 "status": "budget" if math.isfinite(r.floor) else "diverged", "last": float(r.floor),
                 "target": float(r.exact_floor), "steps": int(r.steps), "budget": int(r.budget)}
                for r in bad.itertuples()]
    parts = {}
    conv = judge_converged(cid, failures, len(df), "||grad Phi(x_k)||^2 of the audited ITD-BiO did not settle within "
                           "round-off of the exact floor of warm-started ITD-BiO (the linear fixed point)")
    i = int(np.argmax((dev / df["amp_tol"]).to_numpy()))
    w = df.iloc[i]
    parts["exact floor"] = conv or judge_identity(
        cid, float(dev.iloc[i]), float(w["amp_tol"]), f"| ||grad Phi|| at the measured floor - at the exact floor | "
        f"(worst: {w['family']}, alpha mu {w['alpha_mu']:.3g}; every run settled within its budget, >= 3x what the "
        "paper's algorithm needs)")
    figs, lines, position = [], [], {}
    for fam, g in df.groupby("family"):
        extra = []  # the judged exponent's figure, after the family's floors
        pos = np.log(g["floor"].clip(lower=1e-300) / g["lower_c1"]) / np.log(g["upper_c1"] / g["lower_c1"])
        above = int((g["floor"] > g["upper_c1"]).sum())
        ex = g.groupby("alpha_mu")["exact_floor"].max()
        line = (f"{fam}: exact floor {ex.min():.3g}..{ex.max():.3g}, measured/lower(c=1) "
                f"{(g['floor'] / g['lower_c1']).min():.3g}..{(g['floor'] / g['lower_c1']).max():.3g}; above the c = 1 "
                f"Thm 3 term: {above}/{len(g)}")
        if bool((g["exact_floor"] <= (df["amp_tol"].max() ** 2)).all()):
            line += ("; the exact floor is 0 (warm-started ITD's fixed point is the minimiser x_c, where grad_y f(x_c, "
                     "y*(x_c)) = 0): below Theorem 4's existential lower bound, no contradiction; the measured floor "
                     "must be round-off")
        else:
            by = g.assign(pos=pos).groupby("alpha_mu")
            position.update({f"{fam} alpha_mu={a:.4g}": float(p) for a, p in by["pos"].mean().items()})
            line += ("; position between lower (0) and Thm 3 term (1) by alpha mu: "
                     + ", ".join(f"{a:.3g}: {p:.2f}" for a, p in by["pos"].mean().items()))
            # floor/lower ~ (alpha mu)^e: the upper term is lower times (alpha mu)^s with s the slope of the two
            # bounds' ratio (-1: Theorem 3 leaves a gap of order alpha mu), so Theorem 3 allows e >= s
            s = loglog_fit(g["alpha_mu"], g["upper_c1"] / g["lower_c1"], n_boot=0).slope
            fit = loglog_fit(g["alpha_mu"], g["floor"] / g["lower_c1"], groups=g["alpha_mu"])
            parts[f"exponent ({fam})"] = judge_scaling(
                cid, s, fit, f"{fam}: measured floor/lower-bound shape against alpha mu (Theorem 3 allows an "
                "exponent >= that of its error term over Theorem 4's shape; 0 means the floor has the lower bound's "
                "order)", upper=False)
            extra.append(spec("loglog", f"{cid}: {fam}, floor over Theorem 4's shape", "alpha mu",
                             "measured floor / Thm 4 shape (c = 1)",
                             [series("measured floor / Thm 4 shape", g["alpha_mu"],
                                     (g["floor"] / g["lower_c1"]).clip(lower=1e-300), algorithm="itd-bio"),
                              series("Thm 3 term / Thm 4 shape (c = 1)", g["alpha_mu"], g["upper_c1"] / g["lower_c1"],
                                     style="bound")],
                             [fit_line(f"fit slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}] (Thm 3 allows "
                                       f">= {s:.2f})", fit, (g["alpha_mu"].min(), g["alpha_mu"].max()), s,
                                       algorithm="itd-bio")]))
        lines.append(line)
        figs.append(spec("loglog", f"{cid}: {fam}", "alpha mu", "||grad Phi||^2 at the limit",
                         [series("measured floor", g["alpha_mu"], g["floor"].clip(lower=1e-300), algorithm="itd-bio"),
                          series("exact floor", g["alpha_mu"], g["exact_floor"].clip(lower=1e-300), style="bound"),
                          series("Thm 4 shape (c = 1)", g["alpha_mu"], g["lower_c1"], style="bound"),
                          series("Thm 3 term (c = 1)", g["alpha_mu"], g["upper_c1"], style="bound")]))
        figs += extra
    head = next((k for k in parts if k.startswith("exponent")), "exact floor")
    v = combine(cid, parts, headline=head, details={"figures": figs, "position": position})
    v.reason = " | ".join(lines) + " || " + v.reason
    return v


register_claim(Claim(
    id="loops22.thm3-vs-thm4", paper=P, kind="scaling",
    statement="measured ITD floor on random instances sits between the lower bound (Thm 4) and the upper error term "
              "M^2 L^2 (1-alpha mu)^(2N)/(alpha mu^3) (Thm 3); report where, as a function of alpha mu (the paper "
              "leaves a gap of order alpha mu)",
    setup="kappa 4 (quick; 8 full), N = 1, alpha = a/L on a halving grid from 1/(2L) (Thm 3), beta = 1/L_Phi, audited "
          "itd-bio (warm start) from x0 = 0 until ||grad Phi(x_k)|| stays within round-off of the exact floor of "
          "warm-started ITD-BiO on the instance (the linear fixed point, bounds.loops22.itd_quadratic_floor), within "
          "a step cap >= 3x the paper's: itd-lower-bound with random rotations (positive floor) and ridge quadratics "
          "(lam = 1; exact floor 0). Position of the floor on the log scale between the c = 1 Theorem 4 shape and "
          "Theorem 3 term, and the exponent of floor/lower against alpha mu (0: the lower bound's order; -1: "
          "Theorem 3's)",
    experiments=(FLOOR_GAP,), judge=_judge_gap,
    bounds=("loops22.thm3.error", "loops22.thm4", "loops22.itd_floor", "loops22.itd_quadratic_floor")))


# ====================================================================== Table 3 (hyper-representation)
def _judge_table3(frames, env) -> Verdict:
    cid = "loops22.table3"
    df = frames[TABLE3]
    a = df[df["N"] == 1].set_index("instance")
    b = df[df["N"] == 20].set_index("instance")
    K = int(df["K"].iloc[0])
    cps = list(df["checkpoints"].iloc[0])
    at = {n: np.array([list(v) for v in t["phi_at"]]) for n, t in ((1, a), (20, b))}
    figs = [spec("semilogy", f"{cid}: validation loss vs iterations", "k", "Phi (validation loss)",
                 [series(f"ITD N = {n}", cps, np.nanmean(at[n], 0), ylow=np.nanmin(at[n], 0), yhigh=np.nanmax(at[n], 0),
                         algorithm=f"itd-bio N={n}") for n in (1, 20)])]
    diverged = df[(df["diverged"] >= 0) | ~np.isfinite(df["phi_K"])]
    if len(diverged):
        runs = ", ".join(f"N = {int(r.N)} instance {int(r.instance)} (step {int(r.diverged)})"
                         for r in diverged.itertuples())
        return Verdict(id=cid, verdict="violated", predicted=0.0, measured=math.nan,
                       reason=f"the audited ITD-BiO diverged ({runs}) with alpha = 1/(2 L_yy(x0)), beta = "
                              f"{df['beta'].iloc[0]:g}, where the paper's runs all stay finite",
                       details={"figures": figs})
    diff = (a["phi_K"] - b["phi_K"]).to_numpy()
    mb = mean_bound(diff)
    # plateau: No-loop's decrease over the second half of the run against the gap that remains
    tail = mean_bound((a["phi_half"] - a["phi_K"]).to_numpy())
    plateau = tail.mean < abs(mb.mean)
    if not plateau:
        verdict = "inconclusive"  # No-loop still descending: the run is too short to compare end values
    elif mb.low > 0:
        verdict = "holds"
    elif mb.high < 0:
        verdict = "violated"
    else:
        verdict = "inconclusive"
    reason = (f"validation loss Phi after K = {K}: No-loop (N = 1) {a['phi_K'].mean():.4g}, N-N-loop (N = 20) "
              f"{b['phi_K'].mean():.4g}; paired difference {mb.mean:.3g} (99% one-sided bounds [{mb.low:.3g}, "
              f"{mb.high:.3g}], R = {mb.n}); No-loop's decrease over the second half {tail.mean:.3g} "
              f"{'<' if plateau else '>='} remaining gap (plateau {'yes' if plateau else 'no'}"
              f"{'' if plateau else ': the run is too short to compare the values it settles at'}). Means by k: "
              + ", ".join(f"k={k}: {np.mean(at[1][:, i]):.3g} vs {np.mean(at[20][:, i]):.3g}"
                          for i, k in enumerate(cps))
              + ". Paper (Table 3, its data and tuned steps): 0.04 vs 0.004 at k = 500")
    return Verdict(id=cid, verdict=verdict, predicted=0.0, measured=mb.mean, ci_low=mb.low, ci_high=mb.high,
                   tightness=mb.mean, reason=reason, details={"figures": figs})


register_claim(Claim(
    id="loops22.table3", paper=P, kind="comparison",
    statement="hyper-representation (synthetic linear h): N-N-loop ITD (N = 20) reaches a lower validation loss than "
              "No-loop ITD (N = 1), which plateaus",
    setup="hyper-representation family (p = 8, d = 6, n = 40, kappa = 3 at the start point), R seeds; audited itd-bio "
          "with N = 20 and N = 1 from the reference point, alpha = 1/(2 L_yy(x0)) (half the start point's inner "
          "smoothness: L_yy grows with the representation, and the paper's N = 20 runs diverge at 1/L_yy(x0)), the "
          "same beta = 0.5, K = 100 (quick) / 500 (full): paired difference of Phi(x_K) with a 99% Monte Carlo bound, "
          "plateau of No-loop over the second half; a diverged audited run is a violation",
    experiments=(TABLE3,), judge=_judge_table3))

