"""Claims of the SOBA framework: SOBA and SABA (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022) and SRBA (Dagreou,
Moreau, Vaiter, Ablin, AISTATS 2024); catalogue ``shared/claims-modern.md``, notes ``papers/modern-solvers.md``.

What each claim runs is in :mod:`bench.experiments.modern_soba` (finite-sum-quadratic, exact constants). eps is
squared throughout (E||grad h||^2 <= eps), the papers' convention. Where the notes give a statement without the
definitions of its symbols, the claim says which reading it checks. FSLA (role ``fsla``) has no claim: the
catalogue has none about it (its rate is [M] in the notes).
"""

from __future__ import annotations

import math

import numpy as np

from bilevelbench.bounds.soba22 import SRBA_EXPONENT, srba_lower, thm1, thm1_steps, thm4, thm4_rate

from ..experiments.modern_soba import MEMORY, ONE_STEP, PL, SRBA, THM1
from ..figures import fit_line, series, spec
from ..judging import Verdict, judge_converged, judge_lower, judge_scaling, judge_upper
from ..stats import loglog_fit, mean_bound
from . import Claim, register_claim

__all__ = ["one_step_ratios", "early_log_ratio", "delays", "SRBA_NOTE"]


# ====================================================================== Lemmas 3.8 and 3.9
def one_step_ratios(df, which: str):
    """Per row: left over right-hand side of the lemma ('z' or 'v') and the relative round-off tolerance."""
    rhs = df[f"rhs_{which}"].to_numpy()
    return df[f"lhs_{which}"].to_numpy() / rhs, df[f"tol_{which}"].to_numpy() / rhs


def _judge_lemma(cid: str, which: str, label: str):
    def judge(frames, env) -> Verdict:
        df = frames[ONE_STEP].reset_index(drop=True)
        ratio, rtol = one_step_ratios(df, which)
        worst = int(np.argmax(ratio / (1 + rtol)))
        over = int((ratio > 1 + rtol).sum())
        r = df.iloc[worst]
        what = (f"{label}: exact E over all {int(r['pairs'])} sample pairs, worst of {len(df)} (state, steps, "
                f"instance) cases: {r['state']}, {r['steps']}, instance {int(r['instance'])} (ratio of sides, bound 1;"
                f" {over} cases above)")
        v = judge_upper(cid, 1.0, float(ratio[worst]), float(ratio[worst]), float(ratio[worst]), what,
                        rtol=float(rtol[worst]))
        per = df.assign(_ratio=ratio).groupby(["state", "steps"])["_ratio"].max()
        v.details.update({"worst_ratio_per_case": {f"{s} | {t}": float(x) for (s, t), x in per.items()},
                          "L_z_star": float(df["L_z_star"].iloc[0]), "L_v_star": float(df["L_v_star"].iloc[0]),
                          "L_star": float(df["L_star"].iloc[0]), "cases_above": over,
                          "figure": _lemma_figure(cid, df, ratio)})
        return v

    return judge


def _lemma_figure(cid, df, ratio):
    cases = list(dict.fromkeys(zip(df["state"], df["steps"], strict=True)))
    pos = {c: i for i, c in enumerate(cases)}
    d = df.assign(_x=[pos[c] for c in zip(df["state"], df["steps"], strict=True)], _r=ratio)
    s = [series(f"state {st}", g["_x"], g["_r"], group=st) for st, g in d.groupby("state", sort=False)]
    s.append(series("lemma's bound (ratio 1)", [0, len(cases) - 1], [1.0, 1.0], style="bound"))
    out = spec("linear", f"{cid}: exact E(left side) / right side per state and steps (one point per instance)",
               "state, steps (categorical)", "ratio of sides (<= 1: holds)", s)
    out["xticklabels"] = [f"{a} | {b}" for a, b in cases]
    return out


_LEMMA_SETUP = (
    "finite-sum-quadratic, n = 6 G and m = 5 F samples (quick; 8, 6 full), d = 4, kappa 4, noise 0.5, R instances, "
    "x0 at h(x0) - h* = 1. States: one step of the audited soba (preset soba22.thm1, one fixed prefix pair) from "
    "y0 = y*(x0) + u_min with v0 solving the system at (x0, y0) ('z-off-min': v's error large against the d_z "
    "term), y0 = y*(x0) with v0 = v*(x0) ('z-on') and y0 = y*(x0) + u_max with v0 = 0 ('z-off-max') (u_min, u_max: "
    "unit eigenvectors of grad_yy g); the state (x, z, v) is read from the algorithm. Steps: Theorem 1's rho = "
    "T^-2/5, gamma = T^-3/5 at T = 1000 (the theorem's literal constants c = c' = 1), and the preset's constants "
    "(c_rho = 1/L_sample_yy, c_gamma = c_rho mu/(2 L_h)) at T = 1000 and T = 10. Left side: the EXACT expectation "
    "over one uniform sample pair, by running the step once for every (i, j) (the draws pinned), not Monte Carlo. "
    "Right side (bounds.soba22) with the instance's exact constants: mu_G; L* = max(||grad z*||, ||grad v*||) (the "
    "notes write one L* for both solution maps; the larger makes the statement hold under either reading); "
    "L^F = the population smoothness of f; L^G_11 = 0 (every Hessian constant); V_z, V_v, V_x the exact second "
    "moments E||D||^2 of SOBA's directions at the state (our reading: the notes do not define them; the lemmas' "
    "proof expands ||z - rho D_z - z*||^2, which needs exactly these). Tolerance: float64 round-off of the "
    "distances (one solve with condition kappa for z*, two for v*)")

register_claim(Claim(
    id="soba22.lemma3.8", paper="soba22", kind="inequality",
    statement="SOBA one step: E d_z+ <= (1 - rho mu_G/2) d_z + 2 rho^2 V_z + 4 (L*^2/mu_G)(gamma^2/rho) V_x (exact "
              "expectation by enumeration over the sample pair on a finite-sum instance)",
    setup=_LEMMA_SETUP, experiments=(ONE_STEP,), bounds=("soba22.lemma3.8",),
    judge=_judge_lemma("soba22.lemma3.8", "z", "E||z+ - z*(x+)||^2 against Lemma 3.8")))

register_claim(Claim(
    id="soba22.lemma3.9", paper="soba22", kind="inequality",
    statement="SOBA one step for v: E d_v+ <= (1 - rho mu_G/4) d_v + rho b_vz d_z + 2 rho^2 V_v + 8 (L*^2/mu_G)"
              "(gamma^2/rho) V_x, b_vz = (L^F mu_G + L^G_11)^2/mu_G^3",
    setup=_LEMMA_SETUP, experiments=(ONE_STEP,), bounds=("soba22.lemma3.9", "soba22.lemma3.9.b_vz"),
    judge=_judge_lemma("soba22.lemma3.9", "v", "E||v+ - v*(x+)||^2 against Lemma 3.9")))


# ====================================================================== Theorem 1
def _divergence_failures(df, what_col="T") -> list[dict]:
    bad = df[df["diverged_at"] >= 0]
    return [{"where": f"{what_col} {int(r[what_col])}, instance {int(r['instance'])}", "status": "diverged",
             "last": float(r["last_grad_sq"]), "target": float(r["grad0_sq"]), "steps": int(r["diverged_at"]),
             "budget": int(r[what_col])} for _, r in bad.iterrows()]


def _judge_thm1(frames, env) -> Verdict:
    cid = "soba22.thm1"
    df = frames[THM1]
    th, pub = df[df["arm"] == "thm1"], df[df["arm"] == "public"]
    failed = judge_converged(cid, _divergence_failures(th), len(th),
                             "soba with Theorem 1's steps (a diverged run's average is unbounded)")
    # the runs' steps are Theorem 1's (c = c' = 1), to round-off
    want = np.array([thm1_steps(int(t)) for t in th["T"]])
    off = np.abs(th[["rho", "gamma"]].to_numpy() / want - 1).max()
    T = th["T"].to_numpy(dtype=float)
    fit = loglog_fit(T, th["avg_grad_sq"].to_numpy(), groups=T)
    # the predicted exponent read off the bound function: slope of thm1(T) between the grid's ends
    Ts = sorted(set(th["T"].astype(int)))
    predicted = math.log(thm1(Ts[-1]) / thm1(Ts[0])) / math.log(Ts[-1] / Ts[0])
    pfit = loglog_fit(pub["T"].to_numpy(dtype=float), pub["avg_grad_sq"].to_numpy(), n_boot=0)
    note = (f"Public t^-1/2 schedule (same constants, baseline, not judged: no theorem covers it): fitted exponent "
            f"{pfit.slope:.3g}; (1/T) sum at T = {Ts[-1]}: {pub[pub['T'] == Ts[-1]]['avg_grad_sq'].mean():.3g} against "
            f"{th[th['T'] == Ts[-1]]['avg_grad_sq'].mean():.3g} with Theorem 1's steps.")
    v = judge_scaling(cid, predicted, fit, "(1/T) sum_{t<T} ||grad h(x_t)||^2 vs T (one run per instance and T)",
                      upper=True, note=note)
    if failed is not None:
        v.verdict, v.reason = "violated", failed.reason + ". " + v.reason
        v.details["non_converged"] = failed.details["non_converged"]
    if off > 1e-12:
        v.verdict = "violated"
        v.reason = (f"the runs' steps differ from Theorem 1's rho = T^-2/5, gamma = T^-3/5 by {off:.3g} (relative). "
                    + v.reason)
    exps = {"avg_grad_sq": {"predicted": predicted, "fitted": fit.slope, "ci": [fit.low, fit.high], "instance": None,
                            "over": "T"}}
    v.details.update({"steps_relative_error": float(off), "exponents": exps, "experiment": THM1,
                      "public_exponent": pfit.slope, "figure": _thm1_figure(cid, th, pub, fit, predicted)})
    return v


def _thm1_figure(cid, th, pub, fit, predicted):
    g = th.groupby("T")["avg_grad_sq"].agg(["mean", "min", "max"]).reset_index()
    gp = pub.groupby("T")["avg_grad_sq"].mean()
    s = [series("SOBA, Theorem 1 steps rho = T^-2/5, gamma = T^-3/5 (audited)", g["T"], g["mean"], ylow=g["min"],
                yhigh=g["max"], algorithm="soba"),
         series("SOBA, public schedule (t+1)^-1/2 (baseline, not judged)", list(gp.index), list(gp.values),
                style="line", algorithm="soba public")]
    lx, ly = np.log(g["T"].to_numpy(dtype=float)), np.log(g["mean"].to_numpy())
    fits = [fit_line(f"fit: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]", fit, (g["T"].min(), g["T"].max()),
                     predicted, algorithm="soba"),
            {"label": f"Theorem 1: slope {predicted:g}", "slope": predicted, "low": None, "high": None,
             "intercept": float(np.mean(ly) - predicted * np.mean(lx)), "predicted": predicted,
             "x": [float(g["T"].min()), float(g["T"].max())]}]
    return spec("loglog", f"{cid}: averaged squared hypergradient norm over the horizon", "horizon T (steps)",
                "(1/T) sum_t ||grad h(x_t)||^2", s, fits)


register_claim(Claim(
    id="soba22.thm1", paper="soba22", kind="scaling",
    statement="SOBA with rho = c T^-2/5, gamma = c' T^-3/5: (1/T) sum E||grad h(x_t)||^2 = O(T^-2/5)",
    setup="finite-sum-quadratic, n = m = 32, d = 4, kappa 2, lam 0.5, coupling 0.5, noise 0.25 (L_h = 1: Theorem 1's "
          "literal constants c = c' = 1 are stable from T = 64 on), x0 at h(x0) - h* = 1, y0 = v0 = 0, R = 16 "
          "instances (32 full), horizons T = 64 .. 1024 (quick; .. 8192 full), one sample pair per step (preset "
          "soba22.thm1 with c_rho = c_gamma = 1). (1/T) sum_{t<T} ||grad h(x_t)||^2 per run, its exponent in T "
          "fitted (95% bootstrap over instances) against -2/5 (an upper bound: a faster decay is consistent); a "
          "diverged run is a violation. The public code's schedule rho_t = gamma_t = (t+1)^-1/2 (same constants, "
          "the paper's implementation, a baseline) is shown alongside, not judged",
    experiments=(THM1,), bounds=("soba22.thm1", "soba22.thm1.steps"), judge=_judge_thm1,
    audits="the Theorem 1 arm is audited (a plug-in of soba replaces it); the public-schedule arm is the paper's "
           "soba (a baseline, shown only)"))


# ====================================================================== SABA Theorem 4
def _pl_failures(saba) -> list[dict]:
    bad = saba[saba["status"] != "reached"]
    return [{"where": f"instance {int(r['instance'])}", "status": r["status"], "last": float(r["final_grad_sq"]),
             "target": float(r["mp_threshold"]), "steps": int(r["steps_run"]), "budget": int(r["budget"])}
            for _, r in bad.iterrows()]


def _judge_thm4(frames, env) -> Verdict:
    cid = "saba22.thm4"
    df = frames[PL]
    saba = df[df["arm"] == "saba"]
    gamma, mu_h = float(saba["gamma"].iloc[0]), float(saba["mu_h"].iloc[0])
    predicted = thm4_rate(gamma, mu_h)
    failed = judge_converged(cid, _pl_failures(saba), len(saba),
                             "SABA under PL (Theorem 4: linear convergence) to machine precision, ||grad h||^2 <= "
                             f"{float(saba['mp_threshold'].iloc[0]):.3g}")
    mb = mean_bound(saba["rate"].to_numpy())
    what = (f"decay rate of ln(h(x_t) - h*) per step (least squares over each run's records before machine "
            f"precision) against Theorem 4's -ln(1 - gamma mu_h/4) with gamma = {gamma:.4g}, mu_h = {mu_h:.4g}")
    v = judge_lower(cid, predicted, mb.mean, mb.low, mb.high, what)
    ratio_max = float(saba["bound_ratio_max"].max())
    v.reason += (f". Measured/predicted rate {mb.mean / predicted:.3g}; steps to machine precision "
                 f"{int(saba['K'].min())}..{int(saba['K'].max())} of budget {int(saba['budget'].min())}; the bound's "
                 f"prefactor (C_0 = 0): max_t (h(x_t) - h*) / ((1 - gamma mu_h/4)^t (h(x_0) - h*)) = {ratio_max:.3g} "
                 "(single runs, not expectations: shown, not judged)")
    if failed is not None:
        v.verdict, v.reason = "violated", failed.reason + ". " + v.reason
        v.details["non_converged"] = failed.details["non_converged"]
    v.details.update({"bound_ratio_max": ratio_max, "rates": saba["rate"].tolist(),
                      "figure": _thm4_figure(cid, saba, gamma, mu_h)})
    return v


def _thm4_figure(cid, saba, gamma, mu_h):
    s = [series(f"SABA instance {int(r['instance'])}", r["t"], r["gap"], style="line", algorithm="saba")
         for _, r in saba.iterrows()]
    t = np.asarray(saba["t"].iloc[0], dtype=float)
    gap0 = float(saba["gap0"].max())
    s.append(series("Theorem 4: (1 - gamma mu_h/4)^t (h(x_0) - h*)", t, [thm4(int(k), gamma, mu_h, gap0) for k in t],
                    style="bound"))
    return spec("semilogy", f"{cid}: h(x_t) - h* of SABA (Theorem 4's start) and the theorem's bound", "step t",
                "h(x_t) - h*", s)


register_claim(Claim(
    id="saba22.thm4", paper="saba22", kind="inequality",
    statement="SABA under PL (strongly convex h), memories and z, v initialised as in Thm 4 (C_0 = 0): E h(x_T) - h* "
              "decays at least as (1 - gamma mu_h/4)^T",
    setup="finite-sum-quadratic with a ridge (lam 1: h strongly convex, mu_h = 1 exact), n = m = 16, batches of 4 "
          "distinct samples, d = 4, kappa 1.5, noise 0.5, R = 8 instances (16 full), x0 at h(x0) - h* = 1, y0 = "
          "y*(x0); saba with preset saba22.thm4 (v0 = v*(x0) by CG, every memory at y_0, so C_0 = 0; rho = "
          "1/(3 L_sample_yy), gamma = min(rho mu/(2 L_h), 1/(8 L_h)): our stand-ins for Theorem 3's rho*, xi*, which "
          "were not read). Every run must reach machine precision (||grad h||^2 <= (1e3 eps L_h (1 + ||x*||))^2) "
          "within a budget >= 3x what the paper's SABA needs (non-convergence: violated). The measured decay rate "
          "of ln(h - h*) per step (mean over runs, one-sided 99% bounds) must not be below -ln(1 - gamma mu_h/4): a "
          "lower-side check of the rate (the theorem's prefactor needs expectations; it is shown per run)",
    experiments=(PL,), bounds=("saba22.thm4", "saba22.thm4.rate"), judge=_judge_thm4,
    audits="the SABA arm is audited (a plug-in of saba, or of its component saga.direction, replaces it); the SOBA "
           "arms of the experiment are not used by this claim"))


# ====================================================================== SABA against SOBA
def _judge_vs_soba(frames, env) -> Verdict:
    cid = "saba22.vs-soba"
    df = frames[PL]
    saba, soba = df[df["arm"] == "saba"], df[df["arm"] == "soba"]
    mp = float(saba["mp_threshold"].iloc[0])
    failed = judge_converged(cid, _pl_failures(saba), len(saba),
                             f"SABA with constant steps to machine precision (||grad h||^2 <= {mp:.3g})")
    floors = soba.pivot(index="instance", columns="scale", values="floor")
    scales = np.asarray(floors.columns, dtype=float)
    slopes = np.array([loglog_fit(scales, row.to_numpy(), n_boot=0).slope for _, row in floors.iterrows()])
    mb = mean_bound(slopes)
    reached_soba = soba[soba["status"] == "reached"]
    sizes = ", ".join(f"step x{s:g}: {floors[s].mean():.3g}" for s in sorted(scales, reverse=True))
    saba_final = float(saba["final_grad_sq"].max())
    done = saba[saba["status"] == "reached"]
    sab = (f"every run at ||grad h||^2 <= {mp:.3g} after {int(done['K'].min())}..{int(done['K'].max())} steps"
           if len(done) == len(saba) else f"{len(done)} of {len(saba)} runs at ||grad h||^2 <= {mp:.3g}")
    reason = (f"SABA (audited): {sab} (largest final value {saba_final:.3g}). SOBA with SABA's steps times "
              f"{', '.join(f'{s:g}' for s in sorted(scales, reverse=True))} (the paper's, baseline): floors (mean "
              f"||grad h||^2 over the second half of {int(soba['steps_run'].max())} steps) {sizes}, i.e. "
              f"{floors.to_numpy().min() / max(saba_final, 1e-300):.2g}x SABA's final value or more; exponent of the "
              f"floor in the step {mb.mean:.3g} (99% [{mb.low:.3g}, {mb.high:.3g}], over instances)")
    if failed is not None:
        verdict, reason = "violated", failed.reason + ". " + reason
    elif len(reached_soba):
        verdict = "violated"
        reason = (f"{len(reached_soba)} SOBA runs reached machine precision: no noise floor. " + reason)
    elif mb.low > 0:
        verdict = "holds"
    elif mb.high < 0:
        verdict = "violated"
        reason += ": the floor shrinks as the step grows"
    else:
        verdict = "inconclusive"
        reason += ": the floor's growth with the step is not resolved at this R"
    return Verdict(id=cid, verdict=verdict, predicted=0.0, measured=mb.mean, ci_low=mb.low, ci_high=mb.high,
                   tightness=mb.mean, reason=reason,
                   details={"saba_final_max": saba_final, "soba_floors": {str(s): float(floors[s].mean())
                                                                           for s in scales},
                            "floor_exponent": mb.mean, "mp_threshold": mp,
                            **({"non_converged": failed.details["non_converged"]} if failed else {}),
                            "figures": _vs_figures(cid, saba, soba, floors, scales, mp)})


def _vs_figures(cid, saba, soba, floors, scales, mp):
    def mean_curve(rows):
        return np.mean(np.array(rows["grad_sq"].tolist()), axis=0)

    s = [series("SABA (Theorem 4 start, audited): mean over runs", saba["t"].iloc[0], mean_curve(saba), style="line",
                algorithm="saba")]
    for sc, g in soba.groupby("scale"):
        s.append(series(f"SOBA, SABA's steps x {sc:g} (baseline)", g["t"].iloc[0], mean_curve(g), style="line",
                        group=f"step x {sc:g}"))
    t_end = max(int(saba["steps_run"].max()), int(soba["steps_run"].max()))
    s.append(series("machine precision", [0, t_end], [mp, mp], style="bound"))
    curves = spec("semilogy", f"{cid}: ||grad h(x_t)||^2, SABA against constant-step SOBA", "step t",
                  "||grad h(x_t)||^2", s)
    m = floors.mean()
    fit = loglog_fit(np.repeat(scales, len(floors)), floors.to_numpy().T.ravel(), n_boot=0)
    fl = spec("loglog", f"{cid}: SOBA's floor against its step", "step (multiple of SABA's rho, gamma)",
              "floor: mean ||grad h||^2 over the second half",
              [series("SOBA floor (mean over runs)", list(m.index), list(m.values), algorithm="soba")],
              [fit_line(f"fit: slope {fit.slope:.2f}", fit, (scales.min(), scales.max()))])
    return [curves, fl]


register_claim(Claim(
    id="saba22.vs-soba", paper="saba22", kind="comparison",
    statement="on a finite-sum instance, SABA with constant steps converges to machine precision while SOBA with "
              "constant steps stalls at a noise floor that grows with its step",
    setup="the saba22.thm4 instance and SABA runs (audited; every run must reach ||grad h||^2 <= (1e3 eps L_h (1 + "
          "||x*||))^2 within >= 3x the paper's steps). SOBA (the paper's, a baseline) with constant steps equal to "
          "SABA's rho, gamma times 1, 1/2, 1/4 (and 1/8 full), the same batches and start (v0 = v*(x0)), 800 steps "
          "(2400 full); its floor = mean ||grad h||^2 over the second half. Holds when SABA reaches machine precision, "
          "no SOBA run does, and the floor's exponent in the step (per instance, mean with 99% bounds) is positive; "
          "the sizes (floors, SABA's final level, the exponent) are reported",
    experiments=(PL,), bounds=("saba22.thm4",), judge=_judge_vs_soba,
    audits="SABA is audited (a plug-in of saba or saga.direction replaces it); the SOBA arms are the paper's soba "
           "(baseline: the comparison is against the paper's SOBA)"))


# ====================================================================== SABA memory initialisation
def early_log_ratio(paper, zero, epochs: float = 4.0):
    """Per paired run: mean over the records 0 < t <= epochs x (n/S) of ln((h - h*) zero start / (h - h*) Theorem 4
    start): how much larger the zero start's gap is over the early phase (0: no difference)."""
    t = np.asarray(paper["t"].iloc[0], dtype=float)
    ep = float(paper["epoch"].iloc[0])
    P, Z = np.array(paper["gap"].tolist()), np.array(zero["gap"].tolist())
    early = (t > 0) & (t <= epochs * ep)
    return np.log(Z[:, early] / P[:, early]).mean(axis=1)


def delays(paper, zero, tau: float):
    """Per paired run reaching gap0 tau in both arms: (extra steps, extra oracle calls) of the zero start."""
    t = np.asarray(paper["t"].iloc[0])
    P, Z = np.array(paper["gap"].tolist()), np.array(zero["gap"].tolist())
    Pc, Zc = np.array(paper["calls"].tolist()), np.array(zero["calls"].tolist())
    gap0 = paper["gap0"].to_numpy()
    steps, calls = [], []
    for r in range(len(P)):
        a, b = np.flatnonzero(P[r] <= tau * gap0[r]), np.flatnonzero(Z[r] <= tau * gap0[r])
        if a.size and b.size:
            steps.append(float(t[b[0]] - t[a[0]]))
            calls.append(float(Zc[r, b[0]] - Pc[r, a[0]]))
    return np.asarray(steps), np.asarray(calls)


def _judge_memory(frames, env) -> Verdict:
    cid = "saba22.memory-init"
    df = frames[MEMORY]
    parts, lines, table, figs = {}, [], {}, []
    bad_paper = df[(df["arm"] == "paper") & ~df["gap"].map(lambda g: bool(np.isfinite(g).all()))]
    for gap0, g in sorted(df.groupby("gap0"), key=lambda kv: -kv[0]):
        paper = g[g["arm"] == "paper"].sort_values("instance")
        zero = g[g["arm"] == "zero"].sort_values("instance")
        lr = early_log_ratio(paper, zero)
        mb = mean_bound(lr)
        row = {"early_log_ratio": mb.mean, "ci": [mb.low, mb.high], "gap_ratio": math.exp(mb.mean)}
        txt = [f"start h(x0) - h* = {gap0:g}: zero/paper gap over the first 4 epochs x{math.exp(mb.mean):.3g} "
               f"(mean ln ratio {mb.mean:.3g}, 99% [{mb.low:.3g}, {mb.high:.3g}])"]
        for tau in (1e-2, 1e-4):
            st, ca = delays(paper, zero, tau)
            row[f"delay_steps_{tau:g}"] = float(st.mean()) if st.size else math.nan
            row[f"delay_calls_{tau:g}"] = float(ca.mean()) if ca.size else math.nan
            if st.size:
                txt.append(f"to reach {tau:g} x the start gap the zero start needs {st.mean():.3g} more steps "
                           f"({ca.mean():.3g} more oracle calls, the paper's full pass at step 0 included; {st.size} "
                           f"of {len(paper)} pairs reach it)")
        lines.append("; ".join(txt))
        table[f"{gap0:g}"] = row
        parts[gap0] = (mb.low, mb.high)
        t = paper["t"].iloc[0]
        figs.append(spec("semilogy", f"{cid}: h(x_t) - h* from h(x0) - h* = {gap0:g} (mean over paired runs)",
                         "step t", "h(x_t) - h*",
                         [series("SABA, memories at y_0 (Theorem 4, audited)", t,
                                 np.mean(np.array(paper["gap"].tolist()), axis=0), style="line", algorithm="saba"),
                          series("SABA, memories at zero (public code, baseline)", t,
                                 np.mean(np.array(zero["gap"].tolist()), axis=0), style="line",
                                 algorithm="saba public")]))
    closest = min(parts)
    gains = [f"h(x0) - h* = {k:g}" for k, (lo, hi) in parts.items() if hi < 0]
    reason = " | ".join(lines)
    if len(bad_paper):
        verdict = "violated"
        reason = f"{len(bad_paper)} runs of the audited SABA (Theorem 4 start) diverged. " + reason
    elif gains:
        verdict = "violated"
        reason = f"the zero start is AHEAD in the early phase from {', '.join(gains)}. " + reason
    elif parts[closest][0] > 0:
        verdict = "holds"
    else:
        verdict = "inconclusive"
        reason += (f". No loss resolved from the closest start (h(x0) - h* = {closest:g}): the 99% interval of the "
                   "mean log ratio contains 0")
    lo, hi = parts[closest]
    meas = table[f"{closest:g}"]["early_log_ratio"]
    return Verdict(id=cid, verdict=verdict, predicted=0.0, measured=meas, ci_low=lo, ci_high=hi, tightness=meas,
                   reason=reason, details={"per_start": table, "figures": figs})


register_claim(Claim(
    id="saba22.memory-init", paper="saba22", kind="comparison",
    statement="memories initialised at y_0 (Thm 4) against at zero (public code): the zero start loses the rate's "
              "early phase; report by how much",
    setup="finite-sum-quadratic (the saba22.thm4 instance with n = m = 32 and one sample per step, so a memory takes "
          "~n ln n steps to fill), R = 16 instances (32 full), starts at h(x0) - h* = 1 and 1e-2 (and 1e-4 full), y0 = "
          "y*(x0), v0 = v*(x0), 8 epochs (n steps each). SABA with every memory at y_0 (Theorem 4: C_0 = 0; audited) "
          "and with every memory at zero (variant 'public': the public code; the paper's saba, a baseline), on the "
          "same instances with the same draws (paired). Size: the mean over runs of ln(gap zero / gap paper) over the "
          "first 4 epochs (99% bounds), and the extra steps and oracle calls (the paper's start pays one full pass) "
          "to reach 1e-2 and 1e-4 of the start gap. Theorem 4's constant C_0 of the zero start grows relative to "
          "h(x0) - h* as the start nears the solution: holds when a loss is resolved from the closest start and no "
          "start shows a resolved gain; violated on a resolved gain or a diverged audited run",
    experiments=(MEMORY,), bounds=("saba22.thm4",), judge=_judge_memory,
    audits="the Theorem 4 start is audited (a plug-in of saba or saga.direction replaces it); the zero-memory start "
           "is the paper's saba with variant 'public' (baseline: the public code the paper's form is compared with)"))


# ====================================================================== SRBA
SRBA_NOTE = ("The Omega(m^1/2 eps^-1) lower bound (hidden constant 1) is drawn, not judged: it holds on the paper's "
             "hard instances, which were not read.")


def _judge_srba(frames, env) -> Verdict:
    cid = "srba24.scaling"
    df = frames[SRBA].copy()
    df["nm"] = df["n"] + df["m"]
    bad = df[df["status"] != "reached"]
    failed = judge_converged(cid, [{"where": f"n = m = {int(r['n'])}, instance {int(r['instance'])}",
                                    "status": r["status"], "last": float(r["avg_grad_phi_sq"]),
                                    "target": float(r["eps"]), "steps": int(r["steps_run"]),
                                    "budget": int(r["budget"])} for _, r in bad.iterrows()], len(df),
                             "srba (preset srba24) to the averaged criterion")
    ok = df[df["K"] > 0]
    x = ok["nm"].to_numpy(dtype=float)
    fit = loglog_fit(x, ok["calls"].to_numpy(), groups=x)
    # the instance's exponent: the preset's own cost per counted step (bounds.costs: full passes every q =
    # ceil(sqrt(n + m)) steps, ceil(K/q) of them among the K counted) over its step, i.e. what the counts grow
    # like when the iterations to eps do not depend on n + m (the theorem's content at fixed steps)
    g = ok.assign(ps=ok["struct_calls"] / ok["K"]).groupby("nm").agg(ps=("ps", "mean"), gam=("gamma", "mean"))
    inst = (loglog_fit(g.index.to_numpy(dtype=float), (g["ps"] / g["gam"]).to_numpy(), n_boot=0).slope
            if len(g) > 1 else math.nan)
    struct = (loglog_fit(x, ok["struct_calls"].to_numpy(), n_boot=0).slope if len(ok) and
              np.isfinite(ok["struct_calls"]).all() else None)
    span = float(df["nm"].max() / df["nm"].min())
    kmin = int(ok["K"].min()) if len(ok) else 1
    # K is the first integer meeting the criterion: +-1 step at the grid's ends tilts the fit by at most this
    tol_k = 2 * math.log1p(1.0 / kmin) / math.log(span) if span > 1 else 0.0
    tol = (max(0.0, inst - SRBA_EXPONENT) if math.isfinite(inst) else 0.0) + tol_k
    note = (f"Tolerance {tol:.3g} = the slope of the preset's own Theta(1) factors (ceil(sqrt(n + m)) batches and "
            f"period, ceil(K/q) full passes: the cost per counted step over the step grows with exponent "
            f"{inst:.3g}) above 1/2, plus {tol_k:.2g} for K's integer rounding. Iterations to eps: "
            + ", ".join(f"n + m = {int(k)}: {v:.1f}" for k, v in ok.groupby("nm")["K"].mean().items())
            + f". {SRBA_NOTE}")
    v = judge_scaling(cid, SRBA_EXPONENT, fit, "oracle calls to eps vs n + m", upper=True, tol=tol,
                      tol_from="the preset's Theta(1) factors and K's integer rounding (below)",
                      instance_exponent=inst, structural=struct, structural_tol=tol_k, note=note)
    if failed is not None:
        v.verdict, v.reason = "violated", failed.reason + ". " + v.reason
        v.details["non_converged"] = failed.details["non_converged"]
    v.details.update({"exponents": {"calls": {"predicted": SRBA_EXPONENT, "fitted": fit.slope,
                                              "ci": [fit.low, fit.high], "instance": inst, "structural": struct,
                                              "over": "n + m"}},
                      "experiment": SRBA, "figure": _srba_figure(cid, df, ok, fit)})
    return v


def _srba_figure(cid, df, ok, fit):
    eps = float(df["eps"].iloc[0])
    cens = df.groupby("nm")["K"].apply(lambda k: bool((k <= 0).any()))
    g = ok.groupby("nm")["calls"].agg(["mean", "min", "max"]).reindex(cens.index)
    s = [series("SRBA: oracle calls to eps (mean, min-max)", g.index, g["mean"], ylow=g["min"], yhigh=g["max"],
                algorithm="srba", censored=list(cens.values))]
    ms = df.groupby("nm")["m"].first()
    s.append(series("lower bound Omega(m^1/2 eps^-1), hidden constant 1 (shown, not judged)", list(ms.index),
                    [srba_lower(int(m), eps) for m in ms.values], style="bound"))
    fits = []
    if len(ok) and math.isfinite(fit.slope):
        lx, ly = np.log(g.dropna().index.to_numpy(dtype=float)), np.log(g["mean"].dropna().to_numpy())
        fits = [fit_line(f"fit: slope {fit.slope:.3f} [{fit.low:.3f}, {fit.high:.3f}]", fit,
                         (float(ms.index.min()), float(ms.index.max())), SRBA_EXPONENT),
                {"label": f"SRBA: slope {SRBA_EXPONENT:g}", "slope": SRBA_EXPONENT, "low": None, "high": None,
                 "intercept": float(np.mean(ly) - SRBA_EXPONENT * np.mean(lx)), "predicted": SRBA_EXPONENT,
                 "x": [float(ms.index.min()), float(ms.index.max())]}]
    return spec("loglog", f"{cid}: oracle calls to E||grad h||^2 <= eps (squared eps) against n + m",
                "n + m (numbers of samples)", "oracle calls (per-sample gradients, HV, JV)", s, fits)


register_claim(Claim(
    id="srba24.scaling", paper="srba24", kind="scaling",
    statement="SRBA: oracle calls to eps grow as (n + m)^(1/2) in the numbers of samples (exponent <= 1/2); the "
              "Omega(m^(1/2) eps^-1) lower bound shown alongside",
    setup="finite-sum-quadratic with the same mean problem at every size (the saba22.thm4 instance's parameters), "
          "n = m = 16, 64, 256 (quick; .. 4096 full), R = 8 instances (16 full), x0 at h(x0) - h* = 1e-2, y0 = "
          "y*(x0); srba with preset srba24 (batches and restart period ceil(sqrt(n + m)); the step of the grid's "
          "largest per-sample smoothness at every n, c_rho = L_sample_yy(n)/max: the theorem holds its smoothness "
          "constants fixed while n + m grows, and L_sample_yy, a max over samples, grows with n on this family). "
          "Oracle calls (per-sample gradients, HV, JV) to the averaged criterion (1/K) sum ||grad h||^2 <= eps = 1e-3 "
          "(squared eps), fitted in n + m against 1/2 (upper; tolerance: the preset's ceil factors and K's integer "
          "rounding), with the structural lower side (iterations x per-step cost of the preset, bounds.costs); every "
          "run must reach eps within >= 3x the paper's steps",
    experiments=(SRBA,), bounds=("srba24.upper", "srba24.lower"), judge=_judge_srba))

