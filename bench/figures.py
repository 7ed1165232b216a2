"""Figure specifications: what a verdict asks the report to draw (data only; ``reports`` renders).

A spec is a JSON-able dict stored in ``Verdict.details['figure']``:
``{"type": "loglog" | "semilogy" | "linear", "title", "xlabel", "ylabel",
   "series": [{"label", "x", "y", "ylow"?, "yhigh"?, "style": "points" | "line" | "band" | "bound",
               "algorithm"?, "group"?, "censored"?}],
   "fits": [{"label", "slope", "low", "high", "intercept", "predicted"?, "x": [lo, hi], "algorithm"?, "group"?}],
   "xticklabels"?: [names of x = 0, 1, ...] for a categorical x axis}``
``algorithm`` fixes the colour (one colour per algorithm across all figures); ``group`` (e.g. "kappa 4")
gives one colour per swept value within the figure instead; ``censored`` (one bool per point) marks runs
that did not reach their criterion, whose values are lower bounds (drawn open and counted in the legend).
Different ``bound`` series of one figure get distinct line styles (``reports.style``); bound series that
draw one bound for several groups share a ``bound`` name (e.g. "Thm 5.1 rates") and so a line style, and
take their group's colour. Several figures
may be given as ``details['figures']`` (a list).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["spec", "series", "fit_line", "centred_intercept", "rate_figure", "identity_figure", "ratio_figure"]


def _clean(values):
    return [None if (v is None or (isinstance(v, float) and not math.isfinite(v))) else float(v) for v in values]


def series(label, x, y, *, ylow=None, yhigh=None, style="points", algorithm=None, group=None,
           censored=None, bound=None) -> dict:
    out = {"label": label, "x": _clean(x), "y": _clean(y), "style": style}
    if bound is not None:
        out["bound"] = str(bound)
    if ylow is not None:
        out["ylow"], out["yhigh"] = _clean(ylow), _clean(yhigh)
    if algorithm:
        out["algorithm"] = algorithm
    if group is not None:
        out["group"] = str(group)
    if censored is not None:
        flags = [bool(c) for c in censored]
        if len(flags) != len(out["x"]):
            raise ValueError(f"series {label!r}: {len(flags)} censored flags for {len(out['x'])} points")
        out["censored"] = flags
    return out


def fit_line(label, fit, x_range, predicted=None, *, algorithm=None, group=None, intercept=None) -> dict:
    """A fitted line over ``x_range`` (its colour: ``algorithm`` or ``group`` when given). ``intercept``
    replaces the fit's own where that is not in the figure's coordinates (see :func:`centred_intercept`)."""
    out = {"label": label, "slope": fit.slope, "low": fit.low, "high": fit.high,
           "intercept": fit.intercept if intercept is None else float(intercept), "predicted": predicted,
           "x": [float(x_range[0]), float(x_range[1])]}
    if algorithm:
        out["algorithm"] = algorithm
    if group is not None:
        out["group"] = str(group)
    return out


def centred_intercept(kind: str, slope: float, x, y) -> float:
    """The intercept that puts a line of ``slope`` through the centre of the plotted points (x, y), in the
    coordinates of figure type ``kind``: for fits made on other data than the points drawn (within-instance
    fits, fits on normalised values), whose own intercept would not sit on the figure."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    if kind in ("loglog", "semilogy"):
        ok &= y > 0
    if kind == "loglog":
        ok &= x > 0
    x, y = x[ok], y[ok]
    if not len(x):
        return math.nan
    lx = np.log(x) if kind == "loglog" else x
    ly = np.log(y) if kind in ("loglog", "semilogy") else y
    return float(ly.mean() - slope * lx.mean())


def spec(kind, title, xlabel, ylabel, series_list, fits=()) -> dict:
    return {"type": kind, "title": title, "xlabel": xlabel, "ylabel": ylabel, "series": list(series_list),
            "fits": list(fits)}


def rate_figure(cid: str, df: pd.DataFrame, kind: str, fit, predicted: float, over: str = "kappa") -> dict:
    """Counts to eps against kappa (or 1/eps): per-grid mean with min-max over runs, the fitted line and the
    predicted slope drawn through the data's geometric centre."""
    ok = df[df["K"] > 0]
    xcol = ok["kappa"] if over == "kappa" else 1.0 / ok["eps"]
    g = ok.assign(_x=xcol).groupby("_x")[kind].agg(["mean", "min", "max"]).reset_index()
    algo = str(df["algorithm"].iloc[0]) if "algorithm" in df else None
    xlabel = "kappa = L/mu" if over == "kappa" else "1/eps"
    s = [series(f"{algo}: measured", g["_x"], g["mean"], ylow=g["min"], yhigh=g["max"], algorithm=algo)]
    if len(g):
        lx = np.log(g["_x"].to_numpy())
        ly = np.log(g["mean"].to_numpy())
        centre = float(np.mean(ly) - predicted * np.mean(lx))
        fits = [fit_line(f"fit: slope {fit.slope:.2f} [{fit.low:.2f}, {fit.high:.2f}]", fit,
                         (g["_x"].min(), g["_x"].max()), predicted),
                {"label": f"predicted slope {predicted:g}", "slope": predicted, "low": None, "high": None,
                 "intercept": centre, "predicted": predicted,
                 "x": [float(g["_x"].min()), float(g["_x"].max())]}]
    else:
        fits = []
    return spec("loglog", f"{cid}: {kind.upper()} to eps", xlabel, f"{kind} (count to eps)", s, fits)


#: where exact zeros are drawn on a log axis (below float64 round-off of O(1) quantities, 1.1e-16)
ZERO_FLOOR = 1e-18


def identity_figure(cid: str, df: pd.DataFrame, errors: dict[str, str], tol: dict[str, float]) -> dict:
    """Identity claims: the worst relative error per problem family (categorical x) for each compared
    quantity ``errors`` (column -> label), each against its tolerance ``tol`` (column -> value); exact
    zeros are drawn at ``ZERO_FLOOR`` so that they stay on the log axis. Quantities sharing one tolerance
    value share one tolerance line, labelled with all of them (two identical lines would hide each other)."""
    worst = df.groupby("family")[list(errors)].max()
    fams = list(worst.index)
    xs = list(range(len(fams)))
    s = [series(label, xs, np.maximum(worst[col].to_numpy(), ZERO_FLOOR)) for col, label in errors.items()]
    shared: dict[float, list[str]] = {}
    for col, label in errors.items():
        shared.setdefault(float(tol[col]), []).append(label)
    for value, labels in shared.items():
        s.append(series(f"tolerance {value:.2g} of {' and of '.join(labels)}", xs, [value] * len(xs), style="bound"))
    out = spec("semilogy", f"{cid}: worst relative error per family (zeros drawn at {ZERO_FLOOR:g})",
               "problem family", "relative error", s)
    out["xticklabels"] = fams
    return out


def ratio_figure(cid: str, x, lhs, rhs, xlabel: str, what: str, algorithm: str | None = None) -> dict:
    """Inequality claims checked run by run: the ratio of the left- to the right-hand side per run
    against x (e.g. kappa), with the bound (ratio 1) drawn; a ratio above 1 is a violation."""
    x = np.asarray(x, dtype=float)
    ratio = np.asarray(lhs, dtype=float) / np.asarray(rhs, dtype=float)
    s = [series(f"{what} (one point per run)", x, ratio, algorithm=algorithm),
         series("bound (ratio 1)", [x.min(), x.max()], [1.0, 1.0], style="bound")]
    return spec("loglog", f"{cid}: left- over right-hand side", xlabel, "ratio of sides (<= 1: holds)", s)
