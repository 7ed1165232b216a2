"""Verdicts and the verdict rules of the claims catalogue (shared/claims.md, "Kinds and verdicts").

A rule turns measurements into a :class:`Verdict`; claims (``bench/claims``) pick the rule of their kind
and never decide a verdict by hand. Rules:

- :func:`judge_identity`: two computations of one quantity agree within a round-off tolerance;
- :func:`judge_upper` / :func:`judge_lower`: a measured quantity (with its confidence interval) against a
  bound, ``inconclusive`` when the bound lies inside the interval;
- :func:`judge_exact`: a Monte Carlo mean against its exact expectation, two-sided (an estimator whose
  mean is wrong by more than the interval's resolution is ``violated``);
- :func:`judge_scaling`: a fitted exponent against a predicted one (upper and, where the algorithm's own
  structure implies an order, lower side);
- :func:`judge_converged`: runs that a theorem says converge, and did not within an ample budget;
- :func:`combine`: one verdict from the verdicts of a claim's parts (the worst decides).

``error`` is the verdict of a claim whose experiment or judge raised: it carries the traceback, and
``bilevelbench verify`` exits 3 when any claim ends in it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

__all__ = ["Verdict", "VERDICTS", "SEVERITY", "judge_upper", "judge_lower", "judge_scaling", "judge_identity",
           "judge_exact", "judge_converged", "combine", "error_verdict", "judge_rates", "fit_counts",
           "instance_exponent", "structural_exponent", "convergence_failures", "undercounts", "report_columns",
           "REPORT_COLUMNS", "COLUMN_LEGEND"]

VERDICTS = ("holds", "consistent", "violated", "inconclusive", "error")
#: how bad a verdict is, for combining parts: the most severe part decides
SEVERITY = {"error": 4, "violated": 3, "inconclusive": 2, "consistent": 1, "holds": 0}


@dataclass(kw_only=True)
class Verdict:
    """One claim's verdict with the evidence a reader needs.

    ``predicted`` / ``measured`` are the compared numbers (a bound and a measured value, or a predicted
    and a fitted exponent); ``ci_low``/``ci_high`` the interval of the measurement (99% one-sided bounds
    for Monte Carlo means, 95% bootstrap for exponents, equal to ``measured`` for exact quantities);
    ``tightness`` = predicted - measured for scaling claims (how much room the bound leaves), the ratio
    measured/bound for inequalities; ``details`` holds everything else (instance exponent, figure series);
    ``traceback`` the Python traceback of an ``error``.
    """

    id: str
    verdict: str
    predicted: float = math.nan
    measured: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    tightness: float = math.nan
    reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    traceback: str = ""

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")

    def row(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("details")
        return d


def error_verdict(cid: str, where: str, exc: BaseException, tb: str) -> Verdict:
    """The verdict of a claim whose experiment or judge raised ``exc`` (``where``: 'experiment X', 'judge')."""
    return Verdict(id=cid, verdict="error", reason=f"{where} raised {type(exc).__name__}: {exc}", traceback=tb)


def combine(cid: str, parts: dict[str, Verdict], *, headline: str | None = None, reason: str | None = None,
            details: dict | None = None) -> Verdict:
    """One verdict from named parts: the most severe part's verdict (error > violated > inconclusive >
    consistent > holds); the numbers shown are those of ``headline`` (default: the most severe part).
    The reason lists every part."""
    if not parts:
        raise ValueError(f"claim {cid}: combine needs at least one part")
    worst = max(parts.values(), key=lambda v: SEVERITY[v.verdict])
    head = parts[headline] if headline is not None else worst
    text = reason if reason is not None else " | ".join(f"{k}: {v.verdict}: {v.reason}" for k, v in parts.items())
    return Verdict(id=cid, verdict=worst.verdict, predicted=head.predicted, measured=head.measured,
                   ci_low=head.ci_low, ci_high=head.ci_high, tightness=head.tightness, reason=text,
                   details={"parts": {k: v.row() for k, v in parts.items()}, **(details or {})})


def judge_identity(cid: str, err: float, tol: float, what: str, **details) -> Verdict:
    """identity: holds when the relative discrepancy ``err`` is within the round-off tolerance ``tol``."""
    if not math.isfinite(err):
        return Verdict(id=cid, verdict="violated", predicted=tol, measured=err, ci_low=err, ci_high=err,
                       reason=f"{what}: non-finite discrepancy {err}", details=details)
    ok = err <= tol
    reason = f"{what}: max relative discrepancy {err:.3g} {'<=' if ok else '>'} tolerance {tol:.3g}"
    return Verdict(id=cid, verdict="holds" if ok else "violated", predicted=tol, measured=err, ci_low=err,
                   ci_high=err, tightness=err / tol if tol > 0 else math.nan, reason=reason, details=details)


def _interval_verdict(cid, bound, measured, low, high, ratio, what, ok: bool, bad: bool, rel_ok: str,
                      rel_bad: str, details) -> Verdict:
    if ok:
        v, rel = "holds", rel_ok
    elif bad:
        v, rel = "violated", rel_bad
    else:
        return Verdict(id=cid, verdict="inconclusive", predicted=bound, measured=measured, ci_low=low, ci_high=high,
                       tightness=ratio, reason=f"{what}: bound {bound:.4g} lies inside the confidence interval "
                       f"[{low:.4g}, {high:.4g}]", details=details)
    return Verdict(id=cid, verdict=v, predicted=bound, measured=measured, ci_low=low, ci_high=high, tightness=ratio,
                   reason=f"{what}: measured {measured:.4g} (interval [{low:.4g}, {high:.4g}]) {rel} bound "
                   f"{bound:.4g}", details=details)


def judge_upper(cid: str, bound: float, measured: float, low: float, high: float, what: str,
                rtol: float = 0.0, **details) -> Verdict:
    """inequality (measured <= bound): holds when the upper confidence bound ``high`` is <= bound (1 + rtol),
    violated when the lower confidence bound ``low`` exceeds it, inconclusive in between (interval too
    wide to decide). For exact quantities pass low = high = measured. ``rtol`` is float round-off only.
    A non-finite measurement (a diverged run) is a violation: no finite bound admits it."""
    lim = bound * (1 + rtol) if bound >= 0 else bound * (1 - rtol)
    ratio = measured / bound if bound not in (0.0,) and math.isfinite(bound) else math.nan
    if not math.isfinite(bound):
        return Verdict(id=cid, verdict="inconclusive", predicted=bound, measured=measured, ci_low=low, ci_high=high,
                       reason=f"{what}: non-finite bound {bound}", details=details)
    if not math.isfinite(measured):
        return Verdict(id=cid, verdict="violated", predicted=bound, measured=measured, ci_low=low, ci_high=high,
                       reason=f"{what}: non-finite measurement {measured} against the finite bound {bound:.4g}",
                       details=details)
    return _interval_verdict(cid, bound, measured, low, high, ratio, what, high <= lim, low > lim, "<=", ">",
                             details)


def judge_lower(cid: str, bound: float, measured: float, low: float, high: float, what: str,
                rtol: float = 0.0, **details) -> Verdict:
    """lower-bound (measured >= bound): holds when ``low`` >= bound (1 - rtol), violated when ``high`` is
    below it, inconclusive in between."""
    lim = bound * (1 - rtol)
    ratio = measured / bound if bound and math.isfinite(bound) else math.nan
    return _interval_verdict(cid, bound, measured, low, high, ratio, what, low >= lim, high < lim, ">=", "<",
                             details)


def judge_exact(cid: str, measured: float, half_width: float, exact: float, what: str, *,
                resolution: float | None = None, **details) -> Verdict:
    """A Monte Carlo estimate ``measured`` (two-sided 99% half-width ``half_width``) of a quantity whose
    exact value on the instance is ``exact`` (a closed-form expectation of the paper's estimator): holds
    when |measured - exact| <= half_width, violated otherwise. ``resolution`` (e.g. 0.1 for "a 10% error
    is detected") is checked against the interval: a half-width above resolution |exact| / 2 cannot see
    an error of that size, so the verdict is inconclusive with that reason."""
    dev = abs(measured - exact)
    rel = dev / abs(exact) if exact else math.inf
    details = {**details, "exact": exact, "half_width": half_width, "relative_error": rel}
    if not math.isfinite(measured):
        return Verdict(id=cid, verdict="violated", predicted=exact, measured=measured, reason=f"{what}: non-finite "
                       f"estimate {measured} (exact {exact:.4g})", details=details)
    base = dict(id=cid, predicted=exact, measured=measured, ci_low=measured - half_width,
                ci_high=measured + half_width, tightness=rel, details=details)
    if dev > half_width:
        return Verdict(verdict="violated", reason=f"{what}: Monte Carlo {measured:.5g} +- {half_width:.2g} (99%) "
                       f"misses the exact expectation {exact:.5g} (relative error {rel:.3g})", **base)
    if resolution is not None and half_width > resolution * abs(exact) / 2:
        return Verdict(verdict="inconclusive", reason=f"{what}: Monte Carlo {measured:.5g} +- {half_width:.2g} "
                       f"agrees with the exact {exact:.5g}, but the interval is too wide to see a "
                       f"{resolution:.0%} error", **base)
    return Verdict(verdict="holds", reason=f"{what}: Monte Carlo {measured:.5g} +- {half_width:.2g} (99%) "
                   f"contains the exact expectation {exact:.5g} (relative deviation {rel:.2g})", **base)


#: what a scaling tolerance can come from, by the name a caller passes as ``tol_from`` (any other name is
#: written as given)
TOLERANCE_FROM = {
    "log factor": "the local slope over the grid of the log factor the O~ hides",
    "pre-asymptotic": "the local slope over the grid of the preset's own Theta(1) factors (instance-implied minus "
                      "paper exponent)",
}


def judge_scaling(cid: str, predicted: float, fit, what: str, *, upper: bool = True, tol: float = 0.0,
                  tol_from: str = "log factor", instance_exponent: float | None = None,
                  structural: float | None = None, structural_tol: float = 0.0, note: str = "",
                  **details) -> Verdict:
    """scaling: an upper-bound exponent is ``consistent`` unless the whole 95% interval of the fitted
    exponent lies above predicted + tol (then ``violated``); a lower-bound exponent the other way round.
    ``tol`` (0 for a plain O) comes from ``tol_from``, which the reason names: by default the local slope
    of a log factor the O~ hides (``TOLERANCE_FROM``). tightness = predicted - slope.

    ``structural``: the exponent the algorithm's own structure implies on this instance (its measured
    iterations times the per-step cost its parameters fix). A fit whose whole interval lies below it minus
    ``structural_tol`` is ``violated``: the counts grow slower than the algorithm can spend, i.e. they are
    under-counted (or the algorithm skips work its parameters prescribe)."""
    details = {**details, "instance_exponent": instance_exponent, "structural_exponent": structural,
               "fit_points": fit.n_points, "tol": tol}
    base = dict(id=cid, predicted=predicted, measured=fit.slope, ci_low=fit.low, ci_high=fit.high)
    if not math.isfinite(fit.slope):
        return Verdict(verdict="inconclusive", reason=f"{what}: not enough finite points to fit an exponent. "
                       f"{note}".strip(), details=details, **base)
    inst = f"; instance-implied exponent {instance_exponent:.3g}" if instance_exponent is not None else ""
    if upper:
        bad = fit.low > predicted + tol
        rel = "above" if bad else "not above"
    else:
        bad = fit.high < predicted - tol
        rel = "below" if bad else "not below"
    logtol = (f" {'+' if upper else '-'} tolerance {tol:.2g} (from {TOLERANCE_FROM.get(tol_from, tol_from)})"
              if tol else "")
    reason = (f"{what}: fitted exponent {fit.slope:.3g} (95% CI [{fit.low:.3g}, {fit.high:.3g}]) {rel} "
              f"predicted {predicted:.3g}{logtol}{inst}")
    if structural is not None and math.isfinite(structural):
        under = fit.high < structural - structural_tol
        reason += (f"; {'BELOW' if under else 'not below'} the exponent {structural:.3g} its own structure "
                   f"implies (iterations x per-step cost of its parameters"
                   + (f", tolerance {structural_tol:.2g}" if structural_tol else "") + ")")
        if under:
            reason += ": the counts grow slower than the algorithm can spend (under-counted or skipped work)"
        bad = bad or under
    groups = getattr(fit, "n_groups", None)
    if groups is not None and groups < 4:
        reason += f"; fitted from only {groups} grid values (low power: a wrong exponent may pass)"
    reason = f"{reason}. {note}".strip()
    return Verdict(verdict="violated" if bad else "consistent", tightness=predicted - fit.slope, reason=reason,
                   details=details, **base)


def judge_converged(cid: str, failures: list[dict], runs: int, what: str) -> Verdict | None:
    """Runs a theorem says converge (reach its criterion) under the parameters the claim runs. ``failures``:
    one dict per run that did not (keys: 'where' (e.g. 'kappa 4, instance 2'), 'status' ('diverged',
    'hopeless', 'budget'), 'last' (the criterion's last value), 'target', 'steps', 'budget'). None when
    every run converged; else ``violated`` with the evidence. The budgets are ample by construction (at
    least 3x what the paper's algorithm needs on the instance, checked by a test), so a run that misses
    the criterion within its budget contradicts the theorem."""
    if not failures:
        return None
    first = failures[0]
    listed = "; ".join(f"{f['where']}: {f['status']} (criterion {f['last']:.3g} > {f['target']:.3g} after "
                       f"{int(f['steps'])} of {int(f['budget'])} steps)" for f in failures[:4])
    more = f" and {len(failures) - 4} more" if len(failures) > 4 else ""
    return Verdict(id=cid, verdict="violated", predicted=first["target"], measured=first["last"],
                   ci_low=first["last"], ci_high=first["last"],
                   reason=f"{what}: {len(failures)} of {runs} runs did not converge where the theorem says they do: "
                   f"{listed}{more}", details={"non_converged": failures[:50]})


# ====================================================================== rate tables (complexity to eps)
#: count kinds whose structure (bounds.costs) is exact per step for the deterministic roles
EXACT_COST_ROLES = ("aid-bio", "ba", "itd-bio", "deterbio")


def fit_counts(df, kind: str, over: str = "kappa", seed: int = 0):
    """log-log fit of the count ``kind`` to eps against ``over`` ('kappa' or 'inv_eps'), bootstrapping runs
    within each grid value. Runs that did not reach eps are dropped (their number is returned)."""
    from .stats import loglog_fit

    ok = df["K"] > 0
    x = df["kappa"] if over == "kappa" else 1.0 / df["eps"]
    return loglog_fit(x[ok].to_numpy(), df.loc[ok, kind].to_numpy(), groups=x[ok].to_numpy(), seed=seed), \
        int((~ok).sum())


def instance_exponent(df, kind: str, over: str = "kappa") -> float:
    """Exponent implied by the instance's constants: K ~ gap/(beta eps), so count ~ per-step count / beta
    (at fixed eps); against 1/eps it is 1 whatever the constants."""
    from .stats import loglog_fit

    if over != "kappa":
        return 1.0
    g = df.groupby("kappa").agg(ps=(f"per_step_{kind}", "mean"), beta=("beta", "mean")).reset_index()
    return loglog_fit(g["kappa"].to_numpy(), (g["ps"] / g["beta"]).to_numpy(), n_boot=0).slope


def structural_exponent(df, kind: str, over: str = "kappa") -> float | None:
    """Exponent of the structural count to eps (measured iterations x per-step cost of the parameters,
    ``bounds.costs``) over the grid; None where the table has no structural column for ``kind``."""
    from .stats import loglog_fit

    col = f"struct_{kind}"
    if col not in df:
        return None
    ok = (df["K"] > 0) & np.isfinite(df[col]) & (df[col] > 0)
    if not ok.any():
        return None
    x = df.loc[ok, "kappa"] if over == "kappa" else 1.0 / df.loc[ok, "eps"]
    return loglog_fit(x.to_numpy(), df.loc[ok, col].to_numpy(), n_boot=0).slope


def convergence_failures(df, where=("kappa",)) -> list[dict]:
    """Runs of a rate table that did not reach eps (status other than 'reached'), as evidence dicts."""
    bad = df[df["status"] != "reached"]
    return [{"where": ", ".join(f"{w} {r[w]:g}" for w in where) + f", instance {int(r['instance'])}",
             "status": r["status"], "last": float(r["avg_grad_phi_sq"]), "target": float(r["eps"]),
             "steps": int(r["steps_run"]), "budget": int(r["budget"])} for _, r in bad.iterrows()]


def undercounts(df, kinds) -> list[str]:
    """Runs whose count to eps is below what their own parameters prescribe for the iterations they ran
    (deterministic roles, whose per-step cost is exact): one line per (kind, kappa)."""
    out = []
    for kind in kinds:
        col = f"struct_{kind}"
        if col not in df:
            continue
        ok = (df["K"] > 0) & np.isfinite(df[col])
        low = df[ok & (df[kind] < df[col] * (1 - 1e-9))]
        for kappa, g in low.groupby("kappa"):
            out.append(f"{kind} at kappa {kappa:g}: {len(g)} runs count {g[kind].min():.4g} < {g[col].min():.4g} "
                       f"that K = {int(g['K'].min())} iterations of its parameters spend")
    return out


def judge_rates(cid: str, df, predicted: dict[str, float], *, over: str = "kappa", log_hidden: bool = False,
                note: str = "", pre_asymptotic: bool = False, role: str | None = None,
                structural_tol: float = 0.05) -> Verdict:
    """Judge each count kind against its table exponent; the verdict row shows the first kind, the
    details all of them. ``log_hidden``: the O~ hides a log(kappa/eps) factor, whose local slope over the
    grid is the tolerance.

    Runs that did not converge (``status`` other than 'reached': diverged, hopeless or out of an ample
    budget) make the claim ``violated`` (``judge_converged``). The lower side: a fitted exponent below the
    structural one (iterations x per-step cost of the run's parameters) and, for the deterministic roles
    whose per-step cost is exact, any run counting less than its parameters prescribe, are violations too.

    ``pre_asymptotic``: the preset's own parameter formulas (N, Q, beta as printed, Theta constants 1)
    contain factors that are Theta(1) as kappa grows but not constant on a small grid (ceil of kappa ln
    kappa, (1 - eta mu)^(2Q), ...). Their local slope is instance exponent - table exponent; when positive
    it is taken as the tolerance (if larger than the log factor's), so the verdict asks whether the
    counts grow no faster than the paper's parameters imply, and the reason says so."""
    from .figures import rate_figure

    if df.empty:
        return Verdict(id=cid, verdict="inconclusive", reason="no sweep results")
    failed = judge_converged(cid, convergence_failures(df, ("kappa",) if over == "kappa" else ("eps",)), len(df),
                             f"{role or 'the algorithm'} on its preset")
    verdicts, parts, figures = {}, [], []
    grid = df["kappa"] if over == "kappa" else 1.0 / df["eps"]
    lo, hi = float(grid.min()), float(grid.max())
    tol = 0.0
    if log_hidden:
        # slope of log(kappa/eps) against the swept variable between the grid's ends
        ke = (df["kappa"] / df["eps"]).to_numpy()
        tol = float(np.log(np.log(ke.max()) / np.log(ke.min())) / np.log(hi / lo)) if hi > lo else 0.0
    for kind, p in predicted.items():
        fit, dropped = fit_counts(df, kind, over)
        inst = instance_exponent(df, kind, over)
        ktol = max(tol, inst - p) if pre_asymptotic and math.isfinite(inst) else tol
        v = judge_scaling(cid, p, fit, f"{kind} vs {'kappa' if over == 'kappa' else '1/eps'}", tol=ktol,
                          tol_from="log factor" if ktol == tol else "pre-asymptotic",
                          instance_exponent=inst, structural=structural_exponent(df, kind, over),
                          structural_tol=structural_tol)
        verdicts[kind] = v
        figures.append(rate_figure(cid, df, kind, fit, p, over))
        parts.append(f"{kind}: {v.reason}" + (f" ({dropped} runs did not reach eps)" if dropped else ""))
    under = undercounts(df, list(predicted)) if role in EXACT_COST_ROLES else []
    first = next(iter(verdicts.values()))
    if failed is not None or under or any(v.verdict == "violated" for v in verdicts.values()):
        final = "violated"
    elif all(v.verdict == "consistent" for v in verdicts.values()):
        final = "consistent"
    else:
        final = "inconclusive"
    details = {"exponents": {k: {"predicted": v.predicted, "fitted": v.measured, "ci": [v.ci_low, v.ci_high],
                                 "instance": v.details["instance_exponent"],
                                 "structural": v.details["structural_exponent"],
                                 "over": "kappa" if over == "kappa" else "1/eps"} for k, v in verdicts.items()},
               "over": over, "grid": sorted(set(grid.tolist())), "tol": tol, "figures": figures,
               "experiment": str(df["experiment"].iloc[0]) if "experiment" in df else None}
    tight = min(v.tightness for v in verdicts.values())
    reason = " | ".join(parts) + (f" {note}" if note else "")
    if under:
        reason = "Under-counted: " + "; ".join(under) + ". " + reason
    if failed is not None:
        reason = failed.reason + ". " + reason
        details["non_converged"] = failed.details["non_converged"]
    if final == "consistent" and tight > 0.5:
        reason += (" The measured growth is well below the table's: the bound is not tight on this instance "
                   "(the instance-implied exponents explain how much).")
    return Verdict(id=cid, verdict=final, predicted=first.predicted, measured=first.measured, ci_low=first.ci_low,
                   ci_high=first.ci_high, tightness=tight, reason=reason, details=details)


# ====================================================================== one meaning per column
#: the columns of claims.csv, the console and the report whose meaning does not change with the kind
REPORT_COLUMNS = ("bound", "measured_value", "ratio", "exponent_paper", "exponent_instance", "exponent_fit",
                  "fit_low", "fit_high")
COLUMN_LEGEND = {
    "bound": "identity: the round-off tolerance of the discrepancy; inequality / lower-bound: the bound, "
             "evaluated with the instance's exact constants; comparison: the threshold the compared quantity "
             "must pass",
    "measured_value": "the measured quantity that is compared with the bound (identity: the discrepancy; "
                      "inequality: the measured side, a Monte Carlo mean where random; comparison: the compared "
                      "quantity)",
    "ratio": "measured_value / bound (identity, inequality: <= 1 holds; lower-bound: >= 1 holds)",
    "exponent_paper": "scaling: the exponent the paper states (an O() upper bound unless said otherwise)",
    "exponent_instance": "scaling: the exponent the instance's own constants imply (e.g. L_Phi ~ kappa^2 where "
                         "tau = rho = 0); a bound can be loose on an instance without being wrong",
    "exponent_fit": "scaling: the fitted exponent; fit_low/fit_high its 95% bootstrap interval",
    "tolerance": "scaling: how far exponent_fit may lie beyond exponent_paper; each reason says what it comes "
                 "from: where the paper writes O~, the local slope of the hidden log factor over the grid, "
                 "otherwise the slope of the preset's Theta(1) factors, a pre-asymptotic deviation, K's rounding "
                 "or round-off",
}


def report_columns(v: Verdict, kind: str) -> dict:
    """The one-meaning columns of a verdict (``REPORT_COLUMNS``), NaN where they do not apply."""
    out = dict.fromkeys(REPORT_COLUMNS, math.nan)
    if kind == "scaling":
        inst = v.details.get("instance_exponent") if isinstance(v.details, dict) else None
        exps = v.details.get("exponents") if isinstance(v.details, dict) else None
        if inst is None and exps:
            inst = next(iter(exps.values())).get("instance")
        out.update(exponent_paper=v.predicted, exponent_fit=v.measured, fit_low=v.ci_low, fit_high=v.ci_high,
                   exponent_instance=math.nan if inst is None else float(inst))
        return out
    out.update(bound=v.predicted, measured_value=v.measured)
    if kind != "comparison" and math.isfinite(v.predicted) and v.predicted != 0 and math.isfinite(v.measured):
        out["ratio"] = v.measured / v.predicted
    return out
