"""Figures: the generic renderer of ``bench.figures`` specs and the reference convergence curves.

Pure functions from data to a matplotlib ``Figure`` (no pyplot state), saved byte-reproducibly: fixed
``svg.hashsalt``, no dates or software versions in the PNG/SVG metadata.

Fitted lines (``spec['fits']``) are read in the coordinates of the figure type: loglog
``log y = intercept + slope log x`` (natural logs, as ``bench.stats.loglog_fit``), semilogy
``log y = intercept + slope x``, linear ``y = intercept + slope x``.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from .style import BOUND_STYLES, CENSORED, MARKERS, NEUTRAL, RC, colour, group_colours, styled

__all__ = ["RC", "draw_spec", "reference_figure", "save", "REFERENCE_SWEEP"]

REFERENCE_SWEEP = "reference/curves"
TYPES = ("loglog", "semilogy", "linear")


def _arr(values) -> np.ndarray:
    """A float array with None -> NaN (specs are JSON: missing values are null)."""
    return np.array([math.nan if v is None else float(v) for v in (values or [])], dtype=np.float64)


def _visible(kind: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Mask of points drawable on the axes: finite, and positive on logarithmic axes."""
    ok = np.isfinite(x) & np.isfinite(y)
    if kind in ("loglog", "semilogy"):
        ok &= np.where(ok, y, 1.0) > 0
    if kind == "loglog":
        ok &= np.where(ok, x, 1.0) > 0
    return ok


def _line(kind: str, slope: float, intercept: float, x: np.ndarray) -> np.ndarray:
    """The fitted line's y at x in the figure type's coordinates (module docstring)."""
    if kind == "loglog":
        return np.exp(intercept + slope * np.log(x))
    if kind == "semilogy":
        return np.exp(intercept + slope * x)
    return intercept + slope * x


def _grid(kind: str, lo: float, hi: float) -> np.ndarray:
    return np.geomspace(lo, hi, 50) if kind == "loglog" and lo > 0 else np.linspace(lo, hi, 50)


def _draw_series(ax, kind: str, s: dict, col: str, marker: str = "o", linestyle="--"):
    x, y = _arr(s.get("x")), _arr(s.get("y"))
    style = s.get("style", "points")
    label = s.get("label", "")
    cens = np.array(s.get("censored") or [False] * len(x), dtype=bool)
    if style in ("points", "line") and cens.any():
        # censored runs: their values are lower bounds; drawn open, apart from the measured ones
        okc = _visible(kind, x, y) & cens
        ax.plot(x[okc], y[okc], linestyle="none", marker=CENSORED["marker"], markerfacecolor=CENSORED["facecolor"],
                markeredgecolor=col, markersize=6, label=f"{label}: {int(cens.sum())} censored (lower bounds)")
        x, y = np.where(cens, np.nan, x), np.where(cens, np.nan, y)
        if s.get("ylow") is not None:
            s = {**s, "ylow": [None if c else v for v, c in zip(s["ylow"], cens, strict=True)],
                 "yhigh": [None if c else v for v, c in zip(s["yhigh"], cens, strict=True)]}
    if style == "band":
        lo, hi = _arr(s.get("ylow")), _arr(s.get("yhigh"))
        ok = _visible(kind, x, lo) & _visible(kind, x, hi)
        ax.fill_between(x[ok], lo[ok], hi[ok], color=col, alpha=0.2, linewidth=0, label=label if not len(y) else None)
        if len(y):
            ok = _visible(kind, x, y)
            ax.plot(x[ok], y[ok], color=col, linewidth=1.2, label=label)
        return
    ok = _visible(kind, x, y)
    if style == "points":
        err = None
        if s.get("ylow") is not None:
            lo, hi = _arr(s["ylow"])[ok], _arr(s["yhigh"])[ok]
            # min-max (or interval) bars; a missing end draws no bar on that side
            err = np.vstack([np.nan_to_num(y[ok] - lo, nan=0.0).clip(0), np.nan_to_num(hi - y[ok], nan=0.0).clip(0)])
            if kind in ("loglog", "semilogy"):  # a bar reaching 0 cannot be drawn on log axes: stop it short
                err[0] = np.minimum(err[0], 0.999 * y[ok])
        ax.errorbar(x[ok], y[ok], yerr=err, fmt=marker, color=col, markersize=4, capsize=2.5, elinewidth=0.9,
                    label=label)
    elif style == "bound":
        ax.plot(x[ok], y[ok], color=col, linestyle=linestyle, linewidth=1.6, label=label)
    else:  # "line" (and any unknown style: drawn as a line rather than dropped)
        ax.plot(x[ok], y[ok], color=col, linewidth=1.3, label=label)


def _fit_label(f: dict) -> str:
    label = f.get("label") or "fit"
    lo, hi, s = f.get("low"), f.get("high"), f.get("slope")
    if lo is not None and hi is not None and "[" not in label and math.isfinite(lo) and math.isfinite(hi):
        label += f" (slope {s:.2f}, 95% CI [{lo:.2f}, {hi:.2f}])"
    return label


def _draw_fits(ax, kind: str, fits: list[dict], col: str):
    """Fitted lines (solid) and predicted slopes (dotted). A fit carrying ``predicted`` without a
    predicted-slope line of its own in the spec gets one drawn through the fit's middle."""
    drawn_predicted = {f.get("slope") for f in fits if f.get("low") is None and f.get("high") is None}
    for f in fits:
        slope, icpt = f.get("slope"), f.get("intercept")
        x0, x1 = (f.get("x") or [math.nan, math.nan])[:2]
        if any(v is None or not math.isfinite(v) for v in (slope, icpt, x0, x1)):
            continue
        xs = _grid(kind, float(x0), float(x1))
        is_pred = f.get("low") is None and f.get("high") is None
        ax.plot(xs, _line(kind, slope, icpt, xs), color=NEUTRAL if is_pred else col,
                linestyle=":" if is_pred else "-", linewidth=1.4 if is_pred else 1.1, label=_fit_label(f))
        p = f.get("predicted")
        if not is_pred and p is not None and math.isfinite(p) and p not in drawn_predicted:
            xm = math.sqrt(x0 * x1) if kind == "loglog" else (x0 + x1) / 2
            ym = float(_line(kind, slope, icpt, np.array([xm]))[0])
            anchor = {"loglog": math.log(ym) - p * math.log(xm) if ym > 0 else math.nan,
                      "semilogy": math.log(ym) - p * xm if ym > 0 else math.nan,
                      "linear": ym - p * xm}[kind]
            if math.isfinite(anchor):
                ax.plot(xs, _line(kind, p, anchor, xs), color=NEUTRAL, linestyle=":", linewidth=1.4,
                        label=f"predicted slope {p:g}")
            drawn_predicted.add(p)


def _grid_ticks(ax, series: list[dict]):
    """On a log x axis over a short sweep grid (kappa = 2, 4, 8...), tick the grid values themselves in
    plain numbers: '2, 4, 8' reads better than '2 x 10^0'."""
    xs = np.unique(np.concatenate([_arr(s.get("x")) for s in series if s.get("style", "points") == "points"]
                                  or [np.empty(0)]))
    xs = xs[np.isfinite(xs) & (xs > 0)]
    if 2 <= xs.size <= 10 and xs.max() / xs.min() < 1e3:
        ax.xaxis.set_major_locator(ticker.FixedLocator(xs))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_locator(ticker.NullLocator())


@styled
def draw_spec(spec: dict, cid: str) -> Figure:
    """One ``bench.figures`` spec as a Figure, titled with the claim ID. Colour: a series' ``group`` (one
    colour per swept value), else its ``algorithm`` (palette), else its label (fallback colours); bounds
    without an algorithm in near-black, each bound of the figure in its own line style; fits take the
    colour of the spec's only algorithm when it has one, else near-black."""
    kind = spec.get("type", "linear")
    if kind not in TYPES:
        raise ValueError(f"figure type must be one of {TYPES}, got {kind!r}")
    series = list(spec.get("series") or [])
    algos = sorted({s["algorithm"] for s in series if s.get("algorithm")})
    fig = Figure(figsize=(5.0, 3.6))
    # fixed margins, not a layout engine: constrained layout doubles the time of every save
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.87)
    ax = fig.add_subplot()
    groups = group_colours(s["group"] for s in series if s.get("group") is not None)
    bounds = 0
    for i, s in enumerate(series):
        if s.get("group") is not None:
            col = groups[s["group"]]
        elif s.get("algorithm"):
            col = colour(s["algorithm"])
        elif s.get("style") == "bound":
            col = NEUTRAL
        else:
            col = colour(f"series:{s.get('label', i)}")
        # comparison figures: one marker shape per algorithm too, so they read apart in grey print
        marker = MARKERS[algos.index(s["algorithm"]) % len(MARKERS)] if s.get("algorithm") in algos else "o"
        linestyle = BOUND_STYLES[bounds % len(BOUND_STYLES)]
        bounds += s.get("style") == "bound"
        _draw_series(ax, kind, s, col, marker, linestyle)
    _draw_fits(ax, kind, list(spec.get("fits") or []), colour(algos[0]) if len(algos) == 1 else NEUTRAL)
    if kind in ("loglog", "semilogy"):
        ax.set_yscale("log")
    if kind == "loglog":
        ax.set_xscale("log")
        _grid_ticks(ax, series)
    title = spec.get("title") or cid
    if cid not in title:
        title = f"{cid}: {title}"
    ax.set_title("\n".join(textwrap.wrap(title, 70)))
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel(spec.get("ylabel", ""))
    if spec.get("xticklabels"):  # categorical x (e.g. problem families at x = 0, 1, ...)
        labels = list(spec["xticklabels"])
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize="small")
        fig.subplots_adjust(bottom=0.3)
    if ax.has_data():
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", frameon=False)
    else:
        ax.text(0.5, 0.5, "no finite data to draw", ha="center", va="center", transform=ax.transAxes)
    return fig


@styled
def reference_figure(results: pd.DataFrame) -> tuple[Figure | None, list[str]]:
    """||grad Phi(x_k)||^2 against MV and against Gc(g) for every algorithm of the reference sweep
    (median over the instances, band min-max). Returns the figure (None without data) and the
    algorithms that failed with their error."""
    if results.empty or "experiment" not in results:
        return None, []
    df = results[results["experiment"] == REFERENCE_SWEEP]
    if df.empty:
        return None, []
    err = df["error"].fillna("").astype(str) if "error" in df else pd.Series("", index=df.index)
    bad = df[err.ne("") & err.ne("nan")]
    failures = sorted(f"{a}: {e}" for a, e in bad.groupby("algorithm")["error"].first().items())
    ok = df.drop(bad.index)
    if ok.empty:
        return None, failures
    # verify writes object columns as strings ('True'/'False'); a folder without the column: deterministic
    stoch = (ok["stochastic"].astype(str).isin(["True", "1", "1.0"]) if "stochastic" in ok
             else pd.Series(False, index=ok.index))
    fig = Figure(figsize=(10.0, 3.8))
    fig.subplots_adjust(left=0.07, right=0.81, bottom=0.13, top=0.88, wspace=0.06)
    axes = fig.subplots(1, 2, sharey=True)
    panels = (("mv", "matrix-vector products MV = JV + HV (count)"), ("gc_g", "Gc(g): gradients of g (count)"))
    for ax, (count, xlabel) in zip(axes, panels, strict=True):
        for name in sorted(ok["algorithm"].unique()):
            rows = ok[ok["algorithm"] == name]
            g = rows.groupby("k").agg(x=(count, "mean"), y=("grad_phi_sq", "median"), lo=("grad_phi_sq", "min"),
                                      hi=("grad_phi_sq", "max")).reset_index().sort_values("k")
            g = g[(g["x"] > 0) & (g["lo"] > 0) & np.isfinite(g["hi"])]
            is_stoch = bool(stoch[rows.index].iloc[0])
            col = colour(name)
            ax.plot(g["x"], g["y"], color=col, linestyle="--" if is_stoch else "-", linewidth=1.3,
                    label=f"{name}{' (stochastic)' if is_stoch else ''}")
            ax.fill_between(g["x"], g["lo"], g["hi"], color=col, alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("||grad Phi(x_k)||^2 (median, band min-max)")
    first = ok.iloc[0]
    fams = ", ".join(sorted(ok["family"].astype(str).unique()))
    fig.suptitle(f"reference curves: every algorithm with its default parameters ({fams}, kappa = "
                 f"{float(first['kappa']):g}, Phi(x0) - inf Phi = 1)", fontsize=9)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig, failures


def save(fig: Figure, stem: Path, *, svg: bool, dpi: int) -> list[Path]:
    """Write ``stem``.png (and .svg) reproducibly; returns the files written."""
    out = [stem.parent / f"{stem.name}.png"]  # not with_suffix: claim IDs contain dots
    with matplotlib.rc_context(RC):
        fig.savefig(out[0], dpi=dpi, metadata={"Software": None})
        if svg:
            out.append(stem.parent / f"{stem.name}.svg")
            fig.savefig(out[1], metadata={"Date": None, "Creator": None})
    return out
