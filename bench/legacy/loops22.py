"""Claims of Ji, Liu, Liang, Ying, NeurIPS 2022 (shared/papers/ji-liu-liang-ying-2022-neurips-loops.txt).

AID regimes (Corollaries 1-4) and N-N-loop ITD (Corollary 5): complexity-to-eps sweeps of ``rates`` on the
nonconvex quadratic family (Phi nonconvex, exact constants) with the paper's parameter choices as printed
(presets ``loops22.cor1..cor5``, every Theta(.) constant 1). The Loops paper counts Gc = Gc(f) + Gc(g) and
MV = JV + HV. Theorem 1's beta (Cor. 1, 2) and Theorem 3's (Cor. 5) are tiny and fall fast with kappa, so
the grids are small kappas; where the step cap is hit the claim ends ``inconclusive`` with what was
measured at the cap.

No-loop ITD (Corollary 6) and the lower bound (Theorem 4) run ITD-BiO on the ``itd-lower-bound``
construction, whose floor is known exactly (``bounds.loops22.itd_floor``). Theorem 3 against Theorem 4
measures the ITD floor on random instances. Table 3 runs ITD-BiO with N = 20 and N = 1 on the
``hyper-representation`` family.
"""

from __future__ import annotations

import math

import numpy as np
import torch

import bilevelbench.algorithms as al
from bilevelbench.bounds.loops22 import cor6_bound, itd_floor, thm3_error_term, thm4_floor

from .claims import Claim, Sweep, register_claim
from .experiment import make, run_scored
from .figures import fit_line, series, spec
from .rates import algorithm_for, judge_rates, rate_sweep
from .result import Verdict, judge_lower, judge_scaling
from .stats import loglog_fit, mean_bound

P = "loops22"

#: per profile: kappa grids and step caps of the Loops sweeps (their presets' beta falls like kappa^-4 or
#: faster, so the ICML grids are out of reach); R, dim and eps come from ``rates.PROFILES``.
LOOPS = {
    "quick": {"aid": (2.0, 3.0, 4.0), "aid_cap": 4000, "noloop": (2.0, 3.0), "noloop_cap": 1500,
              "itd": (2.0, 3.0), "itd_cap": 4000,
              "lb_kappas": (2.0, 4.0, 8.0), "lb_N": (1, 2, 4, 8), "lb_K": 50,
              "cor6_kappas": (2.0, 4.0), "cor6_cap": 4000,
              "gap_kappa": 8.0, "gap_alphas": (0.5, 0.25, 0.125, 0.0625), "gap_cap": 3000, "gap_R": 8,
              "hr_R": 16, "hr_K": 100},
    "full": {"aid": (2.0, 3.0, 4.0, 6.0, 8.0), "aid_cap": 30_000, "noloop": (1.5, 2.0, 2.5), "noloop_cap": 40_000,
             "itd": (2.0, 3.0, 4.0), "itd_cap": 30_000,
             "lb_kappas": (2.0, 4.0, 8.0, 16.0, 32.0), "lb_N": (1, 2, 4, 8, 16), "lb_K": 200,
             "cor6_kappas": (2.0, 4.0, 8.0), "cor6_cap": 40_000,
             "gap_kappa": 8.0, "gap_alphas": (0.5, 0.25, 0.125, 0.0625, 0.03125), "gap_cap": 20_000, "gap_R": 32,
             "hr_R": 32, "hr_K": 500},
}

#: table exponents (Loops Corollaries 1-5; Gc = Gc(f) + Gc(g), MV = JV + HV)
AID_RATES = {"loops22.cor1": {"gc": 5.0, "mv": 4.0}, "loops22.cor2": {"gc": 6.0, "mv": 6.0},
             "loops22.cor3": {"gc": 4.0, "mv": 4.0}, "loops22.cor4": {"gc": 5.0, "mv": 6.0}}
REGIMES = {"loops22.cor1": "N-loop", "loops22.cor2": "No-loop", "loops22.cor3": "N-Q-loop", "loops22.cor4": "Q-loop"}


# ---------------------------------------------------------------------- AID regimes (Corollaries 1-4)
def _aid_sweep(cid: str, env) -> Sweep:
    lp = LOOPS[env.profile]
    noloop = cid == "loops22.cor2"
    pa = {"eps": 0.0} if cid in ("loops22.cor3", "loops22.cor4") else {}  # eps set per point by rate_sweep
    return rate_sweep(f"rate/aid-{cid}", role="aid", algorithm="aid-bio", preset=cid, env=env, preset_args=pa,
                      kappas=lp["noloop" if noloop else "aid"], max_steps=lp["noloop_cap" if noloop else "aid_cap"])


def _with_gc(df):
    """Add the Loops paper's Gc = Gc(f) + Gc(g) (counts to eps and per step)."""
    return df.assign(gc=df["gc_f"] + df["gc_g"], per_step_gc=df["per_step_gc_f"] + df["per_step_gc_g"])


def _cap_note(df) -> tuple[list[float], str]:
    """kappas where some run hit the step cap, and a sentence with what was measured there."""
    miss = df[df["K"] <= 0]
    if miss.empty:
        return [], ""
    parts = []
    for kappa, g in miss.groupby("kappa"):
        beta, eps = float(g["beta"].iloc[0]), float(g["eps"].iloc[0])
        parts.append(f"kappa {kappa:g}: {len(g)}/{int((df['kappa'] == kappa).sum())} runs did not reach eps within "
                     f"{int(g['steps_run'].max())} steps (beta = {beta:.3g}; averaged criterion at the cap "
                     f"{g['avg_grad_phi_sq'].min():.3g}..{g['avg_grad_phi_sq'].max():.3g} > eps "
                     f"{eps:g}; gap/(beta eps) ~ {float(g['gap'].iloc[0]) / (beta * eps):.3g} steps "
                     f"needed; MV at the cap {float((g['per_step_mv'] * g['steps_run']).min()):.3g})")
    return sorted(miss["kappa"].unique().tolist()), "; ".join(parts)


def _cap_figure(cid, df) -> dict:
    """Averaged criterion at the end of each run against kappa, with the target eps (capped sweeps)."""
    g = df.groupby("kappa").agg(m=("avg_grad_phi_sq", "mean"), lo=("avg_grad_phi_sq", "min"),
                                hi=("avg_grad_phi_sq", "max"), eps=("eps", "first")).reset_index()
    return spec("loglog", f"{cid}: averaged criterion at the step cap", "kappa", "(1/K) sum ||grad Phi||^2",
                [series("measured at the last step", g["kappa"], g["m"], ylow=g["lo"], yhigh=g["hi"],
                        algorithm=str(df["algorithm"].iloc[0])),
                 series("eps", g["kappa"], g["eps"], style="bound")])


def _judge_aid(cid):
    def judge(frames, env) -> Verdict:
        df = _with_gc(frames[f"rate/aid-{cid}/kappa"])
        capped, note = _cap_note(df)
        full = sorted(set(df["kappa"]) - set(capped))
        if len(full) < 2:
            return Verdict(cid, "inconclusive", predicted=AID_RATES[cid]["gc"],
                           reason=f"{REGIMES[cid]} AID: step cap of the '{env.profile}' profile hit, fewer than two "
                                  f"kappas measured to eps (no exponent can be fitted). {note}",
                           details={"capped_kappas": capped, "measured_kappas": full,
                                    "figures": [_cap_figure(cid, df)]})
        v = judge_rates(cid, df[df["kappa"].isin(full)], AID_RATES[cid], log_hidden=True, pre_asymptotic=True,
                        note=(f"Capped (excluded): {note}." if note else ""))
        if capped and v.verdict == "consistent":
            v.verdict = "inconclusive"
            v.reason += " Inconclusive: part of the grid hit the step cap."
        return v
    return judge


_AID_EXPERIMENT = ("nonconvex quadratic (dim 8/16, Phi nonconvex, exact constants, Phi(x0) - inf Phi = 1), "
                   "small-kappa grid, R seeds batched; aid-bio with preset {p} (GD linear solver, paper's eta, "
                   "lambda, beta with every Theta constant 1); Gc(f)+Gc(g) and JV+HV at the first K meeting the "
                   "averaged criterion <= eps, fitted in kappa. The O~ log factor and the preset's Theta(1) "
                   "factors (ceil, (1 - eta mu)^(2Q)) give the tolerance; table and instance exponents reported")

for _cid, _stmt in (
        ("loops22.cor1", "N-loop AID (N = Theta(kappa ln kappa), Q = Theta(1)): Gc = ~O(kappa^5/eps), "
                         "MV = ~O(kappa^4/eps)"),
        ("loops22.cor2", "No-loop AID (N = 1, Q = Theta(1)): Gc = MV = ~O(kappa^6/eps)"),
        ("loops22.cor3", "N-Q-loop AID (N = Theta(kappa ln kappa), Q = Theta(kappa ln kappa/eps)): Gc = MV = "
                         "~O(kappa^4/eps)"),
        ("loops22.cor4", "Q-loop AID (N = 1, Q = Theta(kappa ln kappa/eps)): Gc = ~O(kappa^5/eps), "
                         "MV = ~O(kappa^6/eps)")):
    register_claim(Claim(id=_cid, paper=P, kind="scaling", statement=_stmt,
                         experiment=_AID_EXPERIMENT.format(p=_cid),
                         sweeps=(lambda c: lambda env: [_aid_sweep(c, env)])(_cid), judge=_judge_aid(_cid),
                         roles=("aid",), bound="tables"))


def _mean_counts(df, kind):
    """Per kappa: mean count to eps over runs that reached it, or (when some run hit the cap) the count at
    the cap, which is a lower bound on the count to eps; returns {kappa: (value, is_lower_bound)}."""
    out = {}
    for kappa, g in df.groupby("kappa"):
        if bool((g["K"] > 0).all()):
            out[float(kappa)] = (float(g[kind].mean()), False)
        else:
            out[float(kappa)] = (float((g[f"per_step_{kind}"] * g["steps_run"]).min()), True)
    return out


def _judge_n_loop(frames, env) -> Verdict:
    cid = "loops22.n-loop-helps"
    d = {c: _with_gc(frames[f"rate/aid-{c}/kappa"]) for c in AID_RATES}
    # (fewer, more, kind): the paper's orderings. MV: N-loop variants below Q-loop and No-loop (Q fixed);
    # Gc: with N fixed, the larger Q (Q-loop, N-Q-loop) needs fewer Gc than Q = Theta(1).
    pairs = [("loops22.cor1", "loops22.cor2", "mv"), ("loops22.cor1", "loops22.cor4", "mv"),
             ("loops22.cor3", "loops22.cor2", "mv"), ("loops22.cor3", "loops22.cor4", "mv"),
             ("loops22.cor4", "loops22.cor2", "gc"), ("loops22.cor3", "loops22.cor1", "gc")]
    rows, decided, bad, lines = [], 0, [], []
    for a, b, kind in pairs:
        ca, cb = _mean_counts(d[a], kind), _mean_counts(d[b], kind)
        common = sorted(k for k in set(ca) & set(cb) if not ca[k][1])  # the 'fewer' side must be measured
        if not common:
            lines.append(f"{REGIMES[a]} vs {REGIMES[b]} ({kind}): no common kappa")
            continue
        kap = common[-1]  # the orders are asymptotic: judged at the largest common kappa
        va, (vb, lower) = ca[kap][0], cb[kap]
        ratio = vb / va
        rows.append({"fewer": a, "more": b, "kind": kind, "kappa": kap, "a": va, "b": vb, "b_is_lower_bound": lower,
                     "ratio": ratio, "all": {str(k): [ca[k][0], cb[k][0]] for k in common}})
        if ratio > 1:
            decided += 1
        elif not lower:
            bad.append(f"{REGIMES[a]} vs {REGIMES[b]} {kind}")
        lines.append(f"{kind.upper()} {REGIMES[b]}/{REGIMES[a]} at kappa {kap:g}: {ratio:.3g}"
                     + (" (>=, count at the step cap)" if lower else ""))
    if bad:
        verdict = "violated"
    elif decided == len(pairs):
        verdict = "holds"
    else:
        verdict = "inconclusive"
    mv1, mv2 = _mean_counts(d["loops22.cor2"], "mv"), _mean_counts(d["loops22.cor4"], "mv")
    same = sorted(set(mv1) & set(mv2))
    note = ("; 'with N fixed, Q does not change the dominant MV' is an order statement (both kappa^6) that needs "
            "the No-loop exponent; measured MV No-loop/Q-loop " + ", ".join(
                f"kappa {k:g}: {mv1[k][0] / mv2[k][0]:.3g}{' (>=)' if mv1[k][1] else ''}" for k in same)
            + " (not judged)")
    ratios = [r["ratio"] for r in rows]
    def _series(c, kind):
        m = _mean_counts(d[c], kind)
        capped = " (cap: lower bound)" if any(v[1] for v in m.values()) else ""
        return series(f"{REGIMES[c]}{capped}", list(m), [v[0] for v in m.values()], algorithm=f"aid-bio {REGIMES[c]}")

    figs = [spec("loglog", f"{cid}: {kind.upper()} to eps by regime", "kappa", f"{kind} to eps",
                 [_series(c, kind) for c in AID_RATES]) for kind in ("mv", "gc")]
    return Verdict(cid, verdict, 1.0, min(ratios) if ratios else math.nan, math.nan, math.nan,
                   (min(ratios) - 1.0) if ratios else math.nan,
                   "count ratio (more/fewer) per paper ordering: " + "; ".join(lines)
                   + (f". Reversed: {', '.join(bad)}" if bad else "") + note,
                   {"pairs": rows, "figures": figs})


register_claim(Claim(
    id="loops22.n-loop-helps", paper=P, kind="comparison",
    statement="with Q fixed, the N-loop variants (N-Q-loop, N-loop) need fewer MV than Q-loop and No-loop; with N "
              "fixed, Q changes Gc but not the dominant MV",
    experiment="the four AID regime sweeps (loops22.cor1..cor4) on the nonconvex quadratic: mean MV and Gc to eps "
               "per kappa; a regime that hit the step cap contributes its count at the cap (a lower bound). "
               "Orderings judged at the largest common kappa (the statements are asymptotic), all kappas reported",
    sweeps=lambda env: [_aid_sweep(c, env) for c in AID_RATES], judge=_judge_n_loop, roles=("aid",)))


# ---------------------------------------------------------------------- N-N-loop ITD (Corollary 5)
def _cor5_sweep(env):
    lp = LOOPS[env.profile]
    return rate_sweep("rate/itd-loops22.cor5", role="itd", algorithm="itd-bio", preset="loops22.cor5", env=env,
                      preset_args={"eps": 0.0}, kappas=lp["itd"], max_steps=lp["itd_cap"])


def _judge_cor5(frames, env) -> Verdict:
    cid = "loops22.cor5"
    df = _with_gc(frames["rate/itd-loops22.cor5/kappa"])
    capped, note = _cap_note(df)
    full = sorted(set(df["kappa"]) - set(capped))
    if len(full) < 2:
        return Verdict(cid, "inconclusive", predicted=4.0,
                       reason=f"N-N-loop ITD: step cap hit, fewer than two kappas measured to eps. {note}",
                       details={"figures": [_cap_figure(cid, df)]})
    v = judge_rates(cid, df[df["kappa"].isin(full)], {"gc": 4.0, "mv": 4.0}, log_hidden=True, pre_asymptotic=True,
                    note=(f"Capped (excluded): {note}." if note else ""))
    if capped and v.verdict == "consistent":
        v.verdict = "inconclusive"
    return v


register_claim(Claim(
    id="loops22.cor5", paper=P, kind="scaling",
    statement="N-N-loop ITD (N = Theta(kappa ln(kappa/eps))): rate O(kappa^3/K + eps), Gc = MV = ~O(kappa^4/eps)",
    experiment="nonconvex quadratic, small-kappa grid, R seeds; itd-bio preset loops22.cor5 (alpha = 1/(2L), "
               "N = ceil(kappa ln(kappa/eps)), beta of Cor. 5 with Theta constants 1); Gc and MV to eps fitted "
               "in kappa (O~ log and preset Theta(1) factors as tolerance)",
    sweeps=lambda env: [_cor5_sweep(env)], judge=_judge_cor5, roles=("itd",), bound="tables"))


# ---------------------------------------------------------------------- the ITD construction (Thm 4, Cor 6)
def _lb_problem(key, env, seed, kappa=None):
    return make("itd-lower-bound", env, kappa=kappa or key["kappa"], dim_x=4, dim_y=4, batch=key["R"], seed=seed)


def _grad_sq(problem, x):
    return (problem._hypergradient(x) ** 2).sum(-1)


def _bias_sq(problem, algorithm, x0, **params):
    """||ITD estimate - grad Phi||^2 at x0, the estimate read from one step of the algorithm (no truth
    inside the algorithm: est = (x0 - x1)/beta)."""
    tr = al.run(algorithm, problem, 1, x0=x0, keep_iterates=False, **params)
    est = (x0 - tr.x_last) / tr.params["beta"]
    return ((est - problem._hypergradient(x0)) ** 2).sum(-1).cpu().numpy()


# ---------------------------------------------------------------------- No-loop ITD (Corollary 6)
def _measure_cor6(key: dict, env, seed: int) -> list[dict]:
    problem = _lb_problem(key, env, seed)
    c = problem.constants
    algorithm = algorithm_for("itd", "itd-bio", env)
    params = al.get("itd-bio").presets["loops22.cor6"](problem, N=key["N"])
    # enough steps for the transient (1 - beta a)^k to fall below e^-3, capped by the profile
    steps = min(key["cap"], math.ceil(3.0 / (params["beta"] * problem.a)))
    x0 = torch.zeros(problem.R, problem.dim_x, dtype=problem.dtype, device=problem.device)
    tr = run_scored(algorithm, problem, steps, env, x0=x0, preset="loops22.cor6", preset_args={"N": key["N"]})
    g = tr.metrics["grad_phi_sq"].numpy()  # k = 0..steps
    avg = np.cumsum(g, 0) / np.arange(1, g.shape[0] + 1)[:, None]
    Ks = np.arange(1, g.shape[0] + 1)
    M = c.extra["M_y"]
    bound = np.array([cor6_bound(int(k), c.L, c.mu, M, params["alpha"]) for k in Ks])
    bias = _bias_sq(problem, algorithm, x0, **params)
    floor = itd_floor(c.L, c.mu, M, params["alpha"], key["N"])
    return [{"kappa": key["kappa"], "N": key["N"], "instance": r, "steps": steps, "alpha": params["alpha"],
             "beta": params["beta"], "floor": floor, "bias_sq": float(bias[r]), "min_avg": float(avg[:, r].min()),
             "last_avg": float(avg[-1, r]), "last_grad_sq": float(g[-1, r]),
             "max_avg_over_bound": float((avg[:, r] / bound).max()),
             "error_term": float(bound[-1] - (c.L / c.mu) ** 3 / Ks[-1]),
             "algorithm": algorithm} for r in range(problem.R)]


def _cor6_sweep(env):
    lp = LOOPS[env.profile]
    return Sweep("loops22/cor6", _measure_cor6,
                 tuple({"kappa": k, "N": 1, "R": 2, "cap": lp["cor6_cap"]} for k in lp["cor6_kappas"]))


def _judge_cor6(frames, env) -> Verdict:
    cid = "loops22.cor6"
    df = frames["loops22/cor6"]
    rt = _rtol(env)
    low = (df["min_avg"] / df["floor"]).min()
    # non-vanishing: every average >= the exact floor (to round-off) and the measured limit (squared bias of
    # the estimate) equals that floor, which is positive
    floor_ok = bool(low >= 1 - rt) and bool((df["floor"] > 0).all()) and bool(
        ((df["bias_sq"] / df["floor"] - 1).abs() <= rt).all())
    upper_c1 = float(df["max_avg_over_bound"].max())
    g = df.groupby("kappa")["bias_sq"].mean().reset_index()
    fit = loglog_fit(g["kappa"], g["bias_sq"], n_boot=0)
    fit = type(fit)(fit.slope, fit.slope, fit.slope, fit.intercept, fit.n_points)
    # the exact floor is kappa^2 times the Theta(1) factor (1 - 1/kappa)(1 - 1/(2 kappa))^(2N) (L = M = 1,
    # alpha = 1/(2L)); that factor's local slope over the grid is the tolerance
    ex = df.groupby("kappa")["floor"].mean()
    kk = ex.index.to_numpy(dtype=float)
    theta_tol = max(0.0, loglog_fit(kk, ex.to_numpy() / kk**2, n_boot=0).slope) if len(kk) > 1 else 0.0
    shape = judge_scaling(cid, 3.0, fit, "measured floor vs kappa against the error term M^2 L^2/(alpha mu^3) "
                          "(kappa^3 at fixed M, alpha = 1/(2L)); tolerance: local slope of the floor's Theta(1) "
                          "factor (1 - 1/kappa)(1 - alpha mu)^(2N)", tol=theta_tol)
    reason = (f"lower side: min over K of (1/K) sum_k ||grad Phi(x_k)||^2 / exact floor = {low:.6g} (>= 1 - {rt:.1g} "
              f"needed; floors {df['floor'].min():.3g}..{df['floor'].max():.3g} > 0, non-vanishing); last average / "
              f"floor {(df['last_avg'] / df['floor']).max():.3g} after {int(df['steps'].max())} steps. Upper side: "
              f"max_K average / [kappa^3/K + M^2 L^2/(alpha mu^3)] = {upper_c1:.3g} with the hidden constant set to 1 "
              f"(the O(.) constant is not stated, so this side cannot be violated as an absolute number). Shape: "
              f"{shape.reason}")
    if not floor_ok or shape.verdict == "violated":
        verdict = "violated"
    elif upper_c1 <= 1:
        verdict = "holds"
    else:
        verdict = "inconclusive"
        reason += " Inconclusive: above the c = 1 bound, a larger hidden constant would cover it."
    figs = [spec("loglog", f"{cid}: No-loop ITD floor vs the error term's shape", "kappa", "||grad Phi||^2",
                 [series("measured floor (limit)", g["kappa"], g["bias_sq"], algorithm="itd-bio"),
                  series("error term M^2 L^2/(alpha mu^3) (c = 1)", df.groupby("kappa")["error_term"].mean().index,
                         df.groupby("kappa")["error_term"].mean().to_numpy(), style="bound")],
                 [fit_line(f"fit slope {fit.slope:.2f}", fit, (g["kappa"].min(), g["kappa"].max()), 3.0)])]
    return Verdict(cid, verdict, 1.0, float(low), float(low), float(low), upper_c1, reason,
                   {"figures": figs, "floor_exponent": fit.slope, "max_avg_over_bound_c1": upper_c1})


register_claim(Claim(
    id="loops22.cor6", paper=P, kind="inequality",
    statement="No-loop ITD (N = Theta(1)): non-vanishing error, (1/K) sum ||grad Phi||^2 stays above zero and below "
              "O(kappa^3/K + M^2 L^2/(alpha mu^3))",
    experiment="itd-lower-bound family (exact floor; Loops M = ||grad_y f|| exact), kappa grid, itd-bio preset "
               "loops22.cor6 (N = 1, alpha = 1/(2L), beta of Cor. 6), x0 = 0, about 3/(beta a) steps: the averaged "
               "criterion against the exact floor (lower side), against the bound with constant 1 (upper side), "
               "and the floor's kappa exponent against the error term's 3",
    sweeps=lambda env: [_cor6_sweep(env)], judge=_judge_cor6, roles=("itd",), bound="loops22.cor6"))


def _measure_lb(key: dict, env, seed: int) -> list[dict]:
    """Theorem 4 on the construction: ITD-BiO from x0 = 0 for K steps with alpha in {1/L, 1/(2L), am/mu},
    beta = 1/L_Phi (the largest the theorem allows), N over the grid; min_{1<=k<=K} ||grad Phi(x_k)||^2, the
    measured floor (squared bias of the estimate, the limit of ||grad Phi(x_k)||^2 here) and the exact floor."""
    problem = _lb_problem(key, env, seed)
    c = problem.constants
    algorithm = algorithm_for("itd", "itd-bio", env)
    x0 = torch.zeros(problem.R, problem.dim_x, dtype=problem.dtype, device=problem.device)
    rows = []
    for rule in ("1/L", "1/(2L)", "fixed alpha mu"):
        alpha = {"1/L": 1.0 / c.L, "1/(2L)": 0.5 / c.L, "fixed alpha mu": key["alpha_mu"] / c.mu}[rule]
        for N in key["Ns"]:
            if rule == "fixed alpha mu" and N != key["N_kappa"]:
                continue
            params = {"alpha": alpha, "beta": 1.0 / c.L_phi, "N": N}
            tr = run_scored(algorithm, problem, key["K"], env, x0=x0, **params)
            g = tr.metrics["grad_phi_sq"].numpy()[1:]  # k = 1..K
            bias = _bias_sq(problem, algorithm, x0, **params)
            floor = itd_floor(c.L, c.mu, c.extra["M_y"], alpha, N)
            for r in range(problem.R):
                rows.append({"kappa": key["kappa"], "rule": rule, "alpha": alpha, "alpha_mu": alpha * c.mu, "N": N,
                             "beta": params["beta"], "K": key["K"], "instance": r, "L": c.L, "mu": c.mu,
                             "M": c.extra["M_y"], "min_grad_sq": float(g[:, r].min()), "last_grad_sq": float(g[-1, r]),
                             "bias_sq": float(bias[r]), "floor": floor,
                             "thm4_c1": thm4_floor(c.L, c.mu, c.extra["M_y"], alpha, N),
                             "algorithm": algorithm})
    return rows


def _lb_sweep(env):
    lp = LOOPS[env.profile]
    R = 4  # the floor does not depend on the random rotations; 4 seeds show that
    am = 0.5 / max(lp["lb_kappas"])  # alpha = am/mu <= 1/(2L) on the whole grid
    return Sweep("loops22/itd-lower-bound", _measure_lb,
                 tuple({"kappa": k, "Ns": list(lp["lb_N"]), "K": lp["lb_K"], "R": R, "alpha_mu": am, "N_kappa": 2}
                       for k in lp["lb_kappas"]))


#: round-off: ||grad Phi||^2 at the floor is a sum of d squares of O(cM/mu) numbers computed through N
#: products with the d x d iteration matrix; 1e3 d (N + 1) machine eps relative covers it.
def _rtol(env, d=4, N=16):
    return 1e3 * d * (N + 1) * float(np.finfo(np.float64 if env.dtype == "float64" else np.float32).eps)


def _judge_thm4(frames, env) -> Verdict:
    df = frames["loops22/itd-lower-bound"]
    ratio = df["min_grad_sq"] / df["floor"]
    worst = int(np.argmin(ratio.to_numpy()))
    w = df.iloc[worst]
    v = judge_lower("loops22.thm4", 1.0, float(ratio.iloc[worst]), float(ratio.iloc[worst]), float(ratio.iloc[worst]),
                    "min over 1 <= k <= K of ||grad Phi(x_k)||^2 / exact floor L(L-mu)M^2(1-alpha mu)^(2N)/mu^2",
                    rtol=_rtol(env), runs=len(df))
    c_eff = (df["floor"] / df["thm4_c1"]).min()
    v.reason += (f" (worst: kappa {w['kappa']:g}, N {int(w['N'])}, alpha mu {w['alpha_mu']:.3g}; {len(df)} runs of "
                 f"K = {int(w['K'])} steps, beta = 1/L_Phi). The exact floor is Theorem 4's "
                 f"Theta(L^2 M^2 (1-alpha mu)^(2N)/mu^2) with constant >= {c_eff:.3g}; the construction is ours "
                 "(the paper's appendix is not at hand)")
    sub = df[(df["rule"] == "1/L") & (df["instance"] == 0)]
    figs = [spec("semilogy", "loops22.thm4: ITD-BiO floor against N (alpha = 1/L)", "N", "||grad Phi||^2",
                 [s for k, g in sub.groupby("kappa") for s in (
                     series(f"kappa {k:g}: min_k measured", g["N"], g["min_grad_sq"], algorithm="itd-bio"),
                     series(f"kappa {k:g}: exact floor", g["N"], g["floor"], style="bound"))])]
    v.details["figures"] = figs
    return v


register_claim(Claim(
    id="loops22.thm4", paper=P, kind="lower-bound",
    statement="on the paper's construction, ITD-BiO with alpha <= 1/L, beta <= 1/L_Phi, N = O(1): ||grad Phi(x_K)||^2 "
              ">= Theta(L^2 M^2/mu^2 (1 - alpha mu)^(2N)) for every K >= 1",
    experiment="itd-lower-bound family (g = 1/2 y'Ay - y'Bx, f = m'y + a/2||x||^2, exact floor), kappa and N grids, "
               "alpha in {1/L, 1/(2L), fixed alpha mu}, beta = 1/L_Phi, x0 = 0, K steps; min_k ||grad Phi(x_k)||^2 "
               "against the exact floor (bounds.loops22.itd_floor), float round-off tolerance",
    sweeps=lambda env: [_lb_sweep(env)], judge=_judge_thm4, roles=("itd",), bound="loops22.itd_floor"))


def _exp_fit(x, y):
    """Slope of log y against x (linear in x): loglog_fit on exp(x)."""
    return loglog_fit(np.exp(np.asarray(x, dtype=float)), np.asarray(y, dtype=float), groups=np.asarray(x, float))


def _two_sided(cid, predicted, fit, what, tol, **kw):
    """Theta(.) exponent: consistent unless the fit's interval lies wholly above or below predicted +- tol."""
    hi = judge_scaling(cid, predicted, fit, what, upper=True, tol=tol, **kw)
    lo = judge_scaling(cid, predicted, fit, what, upper=False, tol=tol, **kw)
    return hi if hi.verdict == "violated" else lo


def _judge_thm4_scaling(frames, env) -> Verdict:
    cid = "loops22.thm4.scaling"
    df = frames["loops22/itd-lower-bound"]
    tol_r = 1e-6  # exact geometric decay on the construction; slopes agree to round-off of log ratios
    parts, verdicts, figs = [], [], []
    for kappa, g in df[df["rule"] == "1/L"].groupby("kappa"):
        am = float(g["alpha_mu"].iloc[0])
        fit = _exp_fit(g["N"], g["bias_sq"])
        v = _two_sided(cid, 2 * math.log(1 - am), fit, f"log floor vs N at kappa {kappa:g}", tol_r)
        verdicts.append(v)
        parts.append(f"kappa {kappa:g}: slope {fit.slope:.6g} vs 2 ln(1 - alpha mu) = {2 * math.log(1 - am):.6g}")
    g = df[df["rule"] == "fixed alpha mu"].groupby("kappa")["bias_sq"].mean().reset_index()
    fit_k = loglog_fit(g["kappa"], g["bias_sq"], n_boot=0)
    kmin, kmax = float(g["kappa"].min()), float(g["kappa"].max())
    # the construction's floor is L (L - mu) M^2 q^(2N)/mu^2 = kappa^2 (1 - 1/kappa) L^2 M^2 q^(2N): the
    # Theta(1) factor (1 - 1/kappa) has local slope tol_k over the grid
    tol_k = math.log((1 - 1 / kmax) / (1 - 1 / kmin)) / math.log(kmax / kmin) + tol_r
    fit_k = type(fit_k)(fit_k.slope, fit_k.slope, fit_k.slope, fit_k.intercept, fit_k.n_points)
    vk = _two_sided(cid, 2.0, fit_k, "floor vs kappa (fixed M, alpha mu, N = 2)", tol_k)
    verdicts.append(vk)
    parts.append(vk.reason)
    bad = [v for v in verdicts if v.verdict == "violated"]
    out = bad[0] if bad else vk
    figs.append(spec("loglog", f"{cid}: floor against kappa (fixed alpha mu, N = 2)", "kappa", "floor",
                     [series("measured floor", g["kappa"], g["bias_sq"], algorithm="itd-bio")],
                     [fit_line(f"fit slope {fit_k.slope:.3f}", fit_k, (kmin, kmax), 2.0)]))
    sub = df[(df["rule"] == "1/L") & (df["instance"] == 0)]
    figs.append(spec("semilogy", f"{cid}: floor against N (alpha = 1/L)", "N", "floor",
                     [series(f"kappa {k:g}", h["N"], h["bias_sq"], algorithm="itd-bio")
                      for k, h in sub.groupby("kappa")]))
    return Verdict(cid, "violated" if bad else "consistent", out.predicted, out.measured, out.ci_low, out.ci_high,
                   out.tightness, "; ".join(parts) + ". Floor measured as ||ITD estimate - grad Phi||^2, the limit of "
                   "||grad Phi(x_K)||^2 on this construction (constant bias)", {"figures": figs})


register_claim(Claim(
    id="loops22.thm4.scaling", paper=P, kind="scaling",
    statement="that floor scales as (1 - alpha mu)^(2N) in N and as kappa^2 in kappa (for fixed M, alpha mu)",
    experiment="the loops22.thm4 sweep: log floor fitted linearly in N (alpha = 1/L, per kappa) against "
               "2 ln(1 - alpha mu); log floor against log kappa at fixed alpha mu = 1/(2 kappa_max), N = 2, M = 1 "
               "against 2 (tolerance: the local slope of the construction's Theta(1) factor (1 - 1/kappa))",
    sweeps=lambda env: [_lb_sweep(env)], judge=_judge_thm4_scaling, roles=("itd",), bound="loops22.thm4"))


# ---------------------------------------------------------------------- Theorem 3 vs Theorem 4
def _measure_gap(key: dict, env, seed: int) -> list[dict]:
    """ITD floor (limit of ||grad Phi(x_K)||^2, constant N, beta = 1/L_Phi) on random instances."""
    kw = dict(kappa=key["kappa"], batch=key["R"], seed=seed, **key["family_params"])
    problem = make(key["family"], env, **kw)
    c = problem.constants
    M = c.extra.get("M_y", c.M)  # Loops Assumption 4's M where the family states it, else ICML's bound
    algorithm = algorithm_for("itd", "itd-bio", env)
    rows = []
    for a in key["alphas"]:
        alpha = a / c.L

        def stop(metrics):  # stop once ||grad Phi||^2 changes by < 1e-9 relative over 64 steps
            g = metrics["grad_phi_sq"]
            if len(g) % 64 or len(g) < 128:
                return False
            return bool(((g[-1] - g[-65]).abs() <= 1e-9 * g[-1].abs() + 1e-300).all())

        tr = run_scored(algorithm, problem, key["cap"], env, alpha=alpha, beta=1.0 / c.L_phi, N=key["N"], stop=stop)
        g = tr.metrics["grad_phi_sq"].numpy()
        conv = np.abs(g[-1] - g[-65]) / np.maximum(g[-1], 1e-300) if g.shape[0] > 65 else np.full(problem.R, np.inf)
        for r in range(problem.R):
            rows.append({"family": key["family"], "kappa": key["kappa"], "alpha": alpha, "alpha_mu": alpha * c.mu,
                         "N": key["N"], "instance": r, "floor": float(g[-1, r]), "steps": tr.iterations[-1],
                         "converged": bool(conv[r] <= 1e-6),
                         "lower_c1": thm4_floor(c.L, c.mu, M, alpha, key["N"]),
                         "upper_c1": thm3_error_term(c.L, c.mu, M, alpha, key["N"]), "algorithm": algorithm})
    return rows


GAP_FAMILIES = ({"family": "itd-lower-bound", "family_params": {"dim_x": 4, "dim_y": 4}},
                {"family": "quadratic", "family_params": {"dim_x": 6, "dim_y": 6, "lam": 0.5}})


def _gap_sweep(env):
    lp = LOOPS[env.profile]
    return Sweep("loops22/thm3-vs-thm4", _measure_gap,
                 tuple({**f, "kappa": lp["gap_kappa"], "alphas": list(lp["gap_alphas"]), "N": 1, "R": lp["gap_R"],
                        "cap": lp["gap_cap"]} for f in GAP_FAMILIES))


def _judge_gap(frames, env) -> Verdict:
    cid = "loops22.thm3-vs-thm4"
    df = frames["loops22/thm3-vs-thm4"].copy()
    df["pos"] = np.log(df["floor"].clip(lower=1e-300) / df["lower_c1"]) / np.log(df["upper_c1"] / df["lower_c1"])
    parts, figs, verdict, out = [], [], "consistent", None
    for fam, g in df.groupby("family"):
        above = int((g["floor"] > g["upper_c1"]).sum())
        pos = g.groupby("alpha_mu")["pos"].mean()
        # a floor 12 orders below the lower bound's shape and still falling is zero (the run converges to
        # an exact stationary point geometrically; no positive floor of the bounds' order is that small)
        zero = bool((g["floor"] <= 1e-12 * g["lower_c1"]).all())
        rel = g["floor"] / g["lower_c1"]
        txt = (f"{fam}: floor/lower(c=1) {np.nanmin(rel):.3g}..{np.nanmax(rel):.3g}, "
               f"position between lower (0) and Thm 3 term (1) by alpha mu: "
               + ", ".join(f"{k:.3g}: {v:.2f}" for k, v in pos.items())
               + f"; above the c = 1 Thm 3 term: {above}/{len(g)}; not converged: {int((~g['converged']).sum())}")
        if zero:
            txt += (" — the floor is 0 (the runs still fall geometrically, 12+ orders below the lower-bound shape): "
                    "ITD's estimate is exact at this family's minimiser "
                    "(grad_y f(x_c, y*(x_c)) = 0), so it sits below Thm 4's existential lower bound (no contradiction)")
        else:
            # floor/lower ~ (alpha mu)^e; Thm 3 allows e >= -1 (the upper term is lower/(alpha mu))
            fit = loglog_fit(g["alpha_mu"], g["floor"] / g["lower_c1"], groups=g["alpha_mu"])
            v = judge_scaling(cid, -1.0, fit, f"{fam}: floor/lower-bound shape against alpha mu (Thm 3 allows "
                              "exponent >= -1; 0 means the floor has the lower bound's order)", upper=False)
            txt += f"; {v.reason}"
            if v.verdict == "violated":
                verdict = "violated"
            out = out or v
        parts.append(txt)
        figs.append(spec("loglog", f"{cid}: {fam}", "alpha mu", "||grad Phi||^2 at the limit",
                         [series("measured floor", g["alpha_mu"], g["floor"], algorithm="itd-bio"),
                          series("Thm 4 shape (c = 1)", g["alpha_mu"], g["lower_c1"], style="bound"),
                          series("Thm 3 term (c = 1)", g["alpha_mu"], g["upper_c1"], style="bound")]))
    nz = df.groupby("family")["floor"].transform(lambda f: bool((f > 0).any()))
    zero_fam = df["floor"] <= 1e-12 * df["lower_c1"]
    if bool((~df["converged"] & ~zero_fam & nz).any()) and verdict != "violated":
        verdict = "inconclusive"
        parts.append("inconclusive: some runs did not settle within the step cap")
    out = out or Verdict(cid, "inconclusive")
    return Verdict(cid, verdict, -1.0, out.measured, out.ci_low, out.ci_high, out.tightness, " | ".join(parts),
                   {"figures": figs, "position": {f"{f} alpha_mu={a:.4g}": float(p) for (f, a), p in
                                                  df.groupby(["family", "alpha_mu"])["pos"].mean().items()}})


register_claim(Claim(
    id="loops22.thm3-vs-thm4", paper=P, kind="scaling",
    statement="measured ITD floor on random instances sits between the lower bound (Thm 4) and the upper error term "
              "M^2 L^2 (1-alpha mu)^(2N)/(alpha mu^3) (Thm 3); report where, as a function of alpha mu (the paper "
              "leaves a gap of order alpha mu)",
    experiment="kappa 8, N = 1, alpha = a/L for a in a halving grid (alpha <= 1/(2L), Thm 3), beta = 1/L_Phi, run "
               "until ||grad Phi(x_K)||^2 settles: itd-lower-bound with random rotations, and the quadratic family "
               "(random spectrum directions, ridge lam = 0.5); position of the floor on the log scale between the "
               "c = 1 lower bound and Thm 3 term, and the exponent of floor/lower against alpha mu (0: lower bound's "
               "order; -1: Thm 3's)",
    sweeps=lambda env: [_gap_sweep(env)], judge=_judge_gap, roles=("itd",), bound="loops22.thm3.error"))


# ---------------------------------------------------------------------- Table 3 (hyper-representation)
HR_CHECKPOINTS = (10, 50, 100, 500, 1000)


def _phi_or_nan(problem, x, r):
    """Phi of instance r alone (its lower-level solve may fail once its iterate has diverged)."""
    xr = torch.full_like(x, math.nan)
    xr[r] = x[r]
    ok = torch.isfinite(x[r]).all()
    if not bool(ok):
        return torch.tensor(math.nan, dtype=x.dtype, device=x.device)
    try:
        return problem._phi(torch.where(torch.isfinite(xr), xr, x[r].expand_as(x)))[r]
    except torch.linalg.LinAlgError:
        return torch.tensor(math.nan, dtype=x.dtype, device=x.device)


def _measure_hr(key: dict, env, seed: int) -> list[dict]:
    problem = make("hyper-representation", env, batch=key["R"], seed=seed, kappa=key["kappa"])
    e = problem.constants.extra
    # alpha: 1/L_yy at the start point for every instance (kappa_ref gamma_max), the inner step a tuned
    # implementation would use (the ball's sup L_yy is far larger); the same beta for both N
    alpha = 1.0 / (key["kappa"] * e["gamma_max"])
    x0 = problem.default_x0()
    algorithm = algorithm_for("itd", "itd-bio", env)

    def score(x, y):  # the validation loss only (grad Phi is not needed and costs a solve per step)
        try:
            return {"phi": problem._phi(x)}
        except torch.linalg.LinAlgError:  # an instance left the region (diverged): NaN for it, not a crash
            return {"phi": torch.stack([_phi_or_nan(problem, x, r) for r in range(x.shape[0])])}

    rows = []
    for N in (1, 20):
        tr = al.run(algorithm, problem, key["K"], x0=x0, alpha=alpha, beta=key["beta"], N=N, scorer=score,
                    keep_iterates=False)
        phi = tr.metrics["phi"].numpy()
        for r in range(problem.R):
            row = {"N": N, "instance": r, "alpha": alpha, "beta": key["beta"], "K": key["K"],
                   "phi_K": float(phi[-1, r]), "phi_half": float(phi[key["K"] // 2, r]),
                   "diverged": int(tr.diverged_at[r]), "algorithm": algorithm}
            row.update({f"phi_{k}": float(phi[k, r]) for k in HR_CHECKPOINTS if k <= key["K"]})
            rows.append(row)
    return rows


def _hr_sweep(env):
    lp = LOOPS[env.profile]
    return Sweep("loops22/table3", _measure_hr, ({"R": lp["hr_R"], "K": lp["hr_K"], "kappa": 3.0, "beta": 0.5},))


def _judge_table3(frames, env) -> Verdict:
    cid = "loops22.table3"
    df = frames["loops22/table3"]
    a = df[df["N"] == 1].set_index("instance")
    b = df[df["N"] == 20].set_index("instance")
    diff = (a["phi_K"] - b["phi_K"]).to_numpy()
    finite = np.isfinite(diff)
    if finite.sum() < 2:
        return Verdict(cid, "inconclusive", reason=f"fewer than two seeds with finite Phi for both N ({len(diff)} run)")
    dropped = int((~finite).sum())
    a, b, diff = a[finite], b[finite], diff[finite]
    mb = mean_bound(diff)
    K = int(df["K"].iloc[0])
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
    cps = [k for k in HR_CHECKPOINTS if f"phi_{k}" in df]
    reason = (f"validation loss Phi after K = {K}: No-loop (N = 1) {a['phi_K'].mean():.4g}, N-N-loop (N = 20) "
              f"{b['phi_K'].mean():.4g}; paired difference {mb.mean:.3g} (99% one-sided bounds [{mb.low:.3g}, "
              f"{mb.high:.3g}], R = {mb.n}); No-loop's decrease over the second half {tail.mean:.3g} "
              f"{'<' if plateau else '>='} remaining gap (plateau {'yes' if plateau else 'no'}). Means by k: "
              + ", ".join(f"k={k}: {a[f'phi_{k}'].mean():.3g} vs {b[f'phi_{k}'].mean():.3g}" for k in cps)
              + ". Paper (Table 3, its data and tuned steps): 0.04 vs 0.004 at k = 500"
              + (f". {dropped} seed(s) dropped: non-finite Phi (diverged with beta = {df['beta'].iloc[0]:g})"
                 if dropped else ""))
    figs = [spec("semilogy", f"{cid}: validation loss vs iterations", "k", "Phi (validation loss)",
                 [series(f"ITD N = {n}", cps, [g[f"phi_{k}"].mean() for k in cps],
                         ylow=[g[f"phi_{k}"].min() for k in cps], yhigh=[g[f"phi_{k}"].max() for k in cps],
                         algorithm=f"itd-bio N={n}") for n, g in ((1, a), (20, b))])]
    return Verdict(cid, verdict, 0.0, mb.mean, mb.low, mb.high, mb.mean, reason, {"figures": figs})


register_claim(Claim(
    id="loops22.table3", paper=P, kind="comparison",
    statement="hyper-representation (synthetic linear h): N-N-loop ITD (N = 20) reaches a lower validation loss than "
              "No-loop ITD (N = 1), which plateaus",
    experiment="hyper-representation family (defaults p = 8, d = 6, n = 40, kappa = 3 at the start point), R seeds; "
               "itd-bio with N = 20 and N = 1 from the reference point, alpha = 1/L_yy(x0), the same beta = 0.5; "
               "paired difference of Phi(x_K) with a 99% Monte Carlo bound, plateau of No-loop over the second half",
    sweeps=lambda env: [_hr_sweep(env)], judge=_judge_table3, roles=("itd",)))
