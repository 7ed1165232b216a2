"""The report's headline figures: what a reader wants to know first, in three pictures.

(a) :func:`exponent_chart`: for every scaling claim and every counted quantity, the fitted exponent with its
    95% interval (coloured by the claim's verdict), the paper's exponent and the instance-implied one,
    grouped by paper; each row names the variable its exponent is fitted against (kappa, 1/eps, nu, lambda,
    K, ...: an exponent's entry says it as ``over``, else its claim's details do).
(b) :func:`rate_figures`: oracle counts to eps against kappa on log-log axes (the exponents fitted over kappa
    only), every algorithm of a setting
    (deterministic; stochastic) on one figure per count kind, each with its fitted line and the paper's
    slope drawn from the same anchor (the fit's geometric centre). Runs that did not reach eps are drawn as
    censored points (lower bounds).
(c) :func:`verdict_matrix`: claims x verdicts (the HTML report adds links to each claim).

Pure functions of the report model (``render.load``): the verdicts' details and ``results.parquet``;
every plotted point traces to rows of the results (``rate_points`` returns them).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from .style import CENSORED, MARKERS, NEUTRAL, VERDICT_COLOURS, colour, styled

__all__ = ["exponent_rows", "row_label", "exponent_chart", "kappa_exponents", "rate_points", "rate_figures",
           "verdict_matrix", "KIND_LABELS"]

KIND_LABELS = {"gc_f": "Gc(f): gradients of f", "gc_g": "Gc(g): gradients of g", "jv": "JV: Jacobian-vector products",
               "hv": "HV: Hessian-vector products", "mv": "MV = JV + HV", "gc": "Gc = Gc(f) + Gc(g)"}
RATE_COLUMNS = {"K", "kappa", "status", "algorithm", "preset", "experiment"}


def _finite(x) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return math.nan
    return x if math.isfinite(x) else math.nan


def exponent_rows(model) -> pd.DataFrame:
    """One row per (scaling claim, counted quantity) with a fitted exponent: paper, claim, verdict, kind,
    over (the swept variable), column (its results column, where the exponent names one), exponent_paper,
    exponent_fit, fit_low, fit_high, exponent_instance, experiment."""
    rows = []
    for r in model["claims"]:
        details = r.get("details") or {}
        for kind, e in (details.get("exponents") or {}).items():
            ci = e.get("ci") or [math.nan, math.nan]
            rows.append({"paper": r["paper"], "claim": r["id"], "verdict": r["verdict"], "kind": kind,
                         "over": str(e.get("over") or details.get("over") or ""),
                         "column": str(e.get("column") or ""),
                         "exponent_paper": _finite(e.get("predicted")), "exponent_fit": _finite(e.get("fitted")),
                         "fit_low": _finite(ci[0]), "fit_high": _finite(ci[1]),
                         "exponent_instance": _finite(e.get("instance")),
                         "experiment": details.get("experiment")})
    return pd.DataFrame(rows)


def row_label(r) -> str:
    """'claim: quantity vs variable' (the variable left out where the quantity's name already says it)."""
    kind, over = str(r["kind"]), str(r["over"])
    return f"{r['claim']}: {kind}" + (f" vs {over}" if over and " vs " not in kind else "")


@styled
def exponent_chart(model) -> Figure | None:
    """(a): one horizontal row per (claim, quantity), grouped by paper."""
    df = exponent_rows(model)
    if df.empty:
        return None
    n = len(df)
    fig = Figure(figsize=(7.5, 1.2 + 0.22 * n))
    fig.subplots_adjust(left=0.34, right=0.78, top=1 - 0.5 / (1.2 + 0.22 * n), bottom=0.6 / (1.2 + 0.22 * n))
    ax = fig.add_subplot()
    ys = np.arange(n)[::-1]
    labels = []
    seen = set()
    for y, (_, r) in zip(ys, df.iterrows(), strict=True):
        col = VERDICT_COLOURS.get(r["verdict"], NEUTRAL)
        lab = f"fit, claim {r['verdict']}" if r["verdict"] not in seen else None
        seen.add(r["verdict"])
        if math.isfinite(r["exponent_fit"]):
            lo = r["exponent_fit"] - r["fit_low"] if math.isfinite(r["fit_low"]) else 0.0
            hi = r["fit_high"] - r["exponent_fit"] if math.isfinite(r["fit_high"]) else 0.0
            ax.errorbar([r["exponent_fit"]], [y], xerr=[[max(lo, 0)], [max(hi, 0)]], fmt="o", color=col,
                        markersize=4, capsize=2, label=lab)
        labels.append(row_label(r))
    ax.scatter(df["exponent_paper"], ys, marker="D", facecolor="none", edgecolor=NEUTRAL, s=28, label="paper")
    inst = df["exponent_instance"].to_numpy(dtype=float)
    ok = np.isfinite(inst)
    ax.scatter(inst[ok], ys[ok], marker="|", color=NEUTRAL, s=60, label="instance-implied")
    ax.set_yticks(ys, labels, fontsize=6.5)
    # paper separators
    papers = df["paper"].tolist()
    for i in range(1, n):
        if papers[i] != papers[i - 1]:
            ax.axhline(ys[i] + 0.5, color="#999999", linewidth=0.6)
    ax.set_xlabel("fitted exponent p (quantity ~ x^p, x the swept variable each row names after 'vs')")
    ax.set_title("Scaling claims: fitted exponents (95% CI) against the papers' and the instances'")
    ax.set_ylim(-0.7, n - 0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    return fig


def rate_points(model) -> pd.DataFrame:
    """The rows of results.parquet behind figure (b): runs of the rate sweeps judged by a scaling claim over
    kappa, with the setting (deterministic / stochastic) and ``x``, the condition number the claim fitted
    against (the exponent's ``column``: kappa, or e.g. kappa_s where a claim fits the per-sample one).
    Sums the suite's claims count (Gc = Gc(f) + Gc(g), MV = JV + HV) are formed where a sweep stores only
    their parts."""
    res = model["results"]
    ex = kappa_exponents(model)
    if res.empty or ex.empty or not RATE_COLUMNS <= set(res.columns):
        return pd.DataFrame()
    rows = res[res["experiment"].isin(set(ex["experiment"]))].copy()
    if rows.empty:
        return rows
    rows["setting"] = np.where(rows["family"].astype(str).str.startswith("stochastic"), "stochastic",
                               "deterministic")
    # results.parquet stores a column that is empty in some experiments as text: counts are numbers here
    parts = {p for pair in SUMS.values() for p in pair}
    numeric = {"K", "steps_run", *set(ex["column"]), *ex["kind"], *parts,
               *(f"per_step_{k}" for k in set(ex["kind"]) | parts)}
    for col in numeric & set(rows.columns):
        rows[col] = pd.to_numeric(rows[col], errors="coerce")
    for total, (a, b) in SUMS.items():
        for pre in ("", "per_step_"):
            if {pre + a, pre + b} <= set(rows.columns):
                summed = rows[pre + a] + rows[pre + b]
                rows[pre + total] = rows[pre + total].fillna(summed) if pre + total in rows else summed
    column = ex.groupby("experiment")["column"].first()
    rows["x"] = [float(r[column[e]]) for e, (_, r) in zip(rows["experiment"], rows.iterrows(), strict=True)]
    return rows


#: count kinds that are sums of stored ones
SUMS = {"gc": ("gc_f", "gc_g"), "mv": ("jv", "hv")}


def kappa_exponents(model) -> pd.DataFrame:
    """The exponent rows fitted over a condition number (kappa, kappa_s) from a rate sweep: figure (b)'s
    subjects, with ``column`` the results column of that variable."""
    ex = exponent_rows(model)
    if ex.empty:
        return ex
    ex = ex[ex["over"].str.startswith("kappa") & ex["experiment"].notna() & ex["kind"].isin(KIND_LABELS)].copy()
    ex["column"] = [c or "kappa" for c in ex["column"]]
    return ex


def _line_label(df: pd.DataFrame, claims: str) -> str:
    return f"{df['algorithm'].iloc[0]}, {df['preset'].iloc[0]} ({claims})"


def censored_counts(d: pd.DataFrame, kind: str) -> pd.Series:
    """Per x, the largest count a run that did not reach eps spent (its steps times its per-step count): a
    lower bound on its count to eps."""
    cens = d[d["K"] <= 0]
    if cens.empty or f"per_step_{kind}" not in cens:
        return pd.Series(dtype=float)
    c = (cens[f"per_step_{kind}"] * cens["steps_run"]).groupby(cens["x"]).max()
    return c[c > 0]


@styled
def rate_figures(model) -> list[tuple[str, Figure]]:
    """(b): (name, figure) per (setting, count kind) with data. Each sweep: mean count of the runs that
    reached eps per x, its least-squares line over those runs, and the paper's slope from the same anchor
    (the fit's value at the grid's geometric centre); runs that did not reach eps as open triangles."""
    from bilevelbench.bench.stats import loglog_fit

    from .style import series_colours

    pts = rate_points(model)
    if pts.empty:
        return []
    ex = kappa_exponents(model)
    out = []
    for setting in ("deterministic", "stochastic"):
        sub = pts[pts["setting"] == setting]
        for kind in [k for k in KIND_LABELS if k in set(ex["kind"]) and k in sub.columns]:
            rows_k = ex[ex["kind"] == kind]
            paper = rows_k.groupby("experiment")["exponent_paper"].first()
            claims = rows_k.groupby("experiment")["claim"].agg(lambda c: ", ".join(sorted(set(c))))
            exps = sorted(e for e in sub["experiment"].unique() if e in paper.index
                          and (sub.loc[sub["experiment"] == e, kind] > 0).any())
            if not exps:
                continue
            fig = Figure(figsize=(5.0, 3.5))
            fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.88)
            ax = fig.add_subplot()
            algos = [str(sub.loc[sub["experiment"] == e, "algorithm"].iloc[0]) for e in exps]
            spare = iter(series_colours(len(exps), {colour(a) for a in algos}))
            for i, (e, algo) in enumerate(zip(exps, algos, strict=True)):
                d = sub[sub["experiment"] == e]
                name = f"{algo}, {d['preset'].iloc[0]}"
                # one colour per sweep: the algorithm's, unless an earlier sweep of this figure took it
                col = colour(algo) if algos.index(algo) == i else next(spare)
                marker = MARKERS[i % len(MARKERS)]
                ok = d[(d["K"] > 0) & (d[kind] > 0)]
                m = ok.groupby("x")[kind].mean()
                ax.plot(m.index, m.values, marker=marker, linestyle="none", color=col, markersize=4.5,
                        label=_line_label(d, claims[e]))
                c = censored_counts(d, kind)
                if len(c):
                    n = int((d["K"] <= 0).sum())
                    ax.plot(c.index, c.values, marker=CENSORED["marker"], linestyle="none",
                            markerfacecolor=CENSORED["facecolor"], markeredgecolor=col, markersize=6,
                            label=f"{name}: {n} censored runs (lower bounds: count spent)")
                if len(m) >= 2:
                    fit = loglog_fit(ok["x"].to_numpy(float), ok[kind].to_numpy(float), n_boot=0)
                    xs = np.geomspace(m.index.min(), m.index.max(), 20)
                    ax.plot(xs, np.exp(fit.intercept) * xs**fit.slope, color=col, linewidth=1.0,
                            label=f"{name}: fit, slope {fit.slope:.2f}")
                    # the paper's slope through the same anchor: the fit's value at the grid's geometric centre
                    xc = math.sqrt(m.index.min() * m.index.max())
                    yc = math.exp(fit.intercept) * xc**fit.slope
                    p = float(paper[e])
                    ax.plot(xs, yc * (xs / xc) ** p, color=col, linestyle=":", linewidth=1.3,
                            label=f"{name}: paper's slope {p:g}")
            ax.set_xscale("log")
            ax.set_yscale("log")
            grid = np.unique(sub.loc[sub["experiment"].isin(exps), "x"].to_numpy(float))
            if grid.size <= 10 and (np.diff(np.log(grid)) > math.log(1.15)).all():
                ax.xaxis.set_major_locator(ticker.FixedLocator(grid))
                ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.3g}"))
                ax.xaxis.set_minor_locator(ticker.NullLocator())
            names = sorted(set(ex.loc[ex["experiment"].isin(exps), "column"]))
            ax.set_xlabel("kappa = L/mu" if names == ["kappa"] else
                          " or ".join(names) + " (the condition number each claim fits against)")
            ax.set_ylabel(f"{kind} to eps (count)")
            ax.set_title(f"{setting}: {KIND_LABELS[kind]} to eps against kappa")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, fontsize=6)
            out.append((f"headline-rates-{setting}-{kind}", fig))
    return out


@styled
def verdict_matrix(model) -> Figure | None:
    """(c): one row per claim (grouped by paper), one column per verdict, the claim's verdict filled."""
    from .documents import VERDICT_ORDER

    rows = model["claims"]
    if not rows:
        return None
    n = len(rows)
    fig = Figure(figsize=(4.6, 0.9 + 0.16 * n))
    fig.subplots_adjust(left=0.42, right=0.98, top=1 - 0.55 / (0.9 + 0.16 * n), bottom=0.25 / (0.9 + 0.16 * n))
    ax = fig.add_subplot()
    ys = np.arange(n)[::-1]
    for y, r in zip(ys, rows, strict=True):
        j = VERDICT_ORDER.index(r["verdict"]) if r["verdict"] in VERDICT_ORDER else None
        for i in range(len(VERDICT_ORDER)):
            ax.add_patch(_cell(i, y, VERDICT_COLOURS[VERDICT_ORDER[i]] if i == j else "#f3f4f6"))
    ax.set_xlim(-0.5, len(VERDICT_ORDER) - 0.5)
    ax.set_ylim(-0.5, n - 0.5)
    ax.set_xticks(range(len(VERDICT_ORDER)), VERDICT_ORDER, rotation=30, ha="left")
    ax.xaxis.tick_top()
    ax.set_yticks(ys, [r["id"] for r in rows], fontsize=6)
    ax.grid(False)
    ax.set_title("verdict of every claim", pad=28)
    return fig


def _cell(i, y, col):
    from matplotlib.patches import Rectangle

    return Rectangle((i - 0.45, y - 0.4), 0.9, 0.8, facecolor=col, edgecolor="none")
