"""Figures: the generic renderer of ``bench.figures`` specs and the reference convergence curves.

Pure functions from data to a matplotlib ``Figure`` (no pyplot state), saved byte-reproducibly: fixed
``svg.hashsalt``, no dates or software versions in the PNG/SVG metadata.

Fitted lines (``spec['fits']``) are read in the coordinates of the figure type: loglog
``log y = intercept + slope log x`` (natural logs, as ``bench.stats.loglog_fit``), semilogy
``log y = intercept + slope x``, linear ``y = intercept + slope x``.
"""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
from matplotlib import ticker
from matplotlib.figure import Figure

from .style import BOUND_STYLES, CENSORED, MARKERS, NEUTRAL, RC, colour, group_colours, series_colours, styled

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


def _draw_series(ax, kind: str, s: dict, col: str, marker: str = "o", linestyle="--", categorical: bool = False):
    x, y = _arr(s.get("x")), _arr(s.get("y"))
    style = s.get("style", "points")
    label = s.get("label", "")
    cens = np.array(s.get("censored") or [False] * len(x), dtype=bool)
    if style in ("points", "line") and cens.any():
        # censored runs: their values are lower bounds; drawn open, apart from the measured ones
        okc = _visible(kind, x, y) & cens
        n = int(cens.sum())
        ax.plot(x[okc], y[okc], linestyle="none", marker=CENSORED["marker"], markerfacecolor=CENSORED["facecolor"],
                markeredgecolor=col, markersize=6,
                label=f"{label}: {n} censored point{'s' if n > 1 else ''} (lower bounds)")
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
        if err is None:
            ax.plot(x[ok], y[ok], linestyle="none", marker=marker, color=col, markersize=4, label=label)
        else:
            ax.errorbar(x[ok], y[ok], yerr=err, fmt=marker, color=col, markersize=4, capsize=2.5, elinewidth=0.9,
                        label=label)
    elif style == "bound" and categorical:
        # a bound per category: a level segment across its category, never a line joining unrelated categories
        xs = np.concatenate([[v - 0.38, v + 0.38, np.nan] for v in x[ok]]) if ok.any() else np.empty(0)
        ys = np.concatenate([[v, v, np.nan] for v in y[ok]]) if ok.any() else np.empty(0)
        ax.plot(xs, ys, color=col, linestyle=linestyle, linewidth=1.6, label=label)
    elif style == "bound":
        ax.plot(x[ok], y[ok], color=col, linestyle=linestyle, linewidth=1.6, label=label)
    else:  # "line" (and any unknown style: drawn as a line rather than dropped)
        ax.plot(x[ok], y[ok], color=col, linewidth=1.3, label=label)


def _fit_label(f: dict) -> str:
    label = f.get("label") or "fit"
    lo, hi, s = f.get("low"), f.get("high"), f.get("slope")
    if lo is not None and hi is not None and "[" not in label and math.isfinite(lo) and math.isfinite(hi):
        ci = f"95% CI [{lo:.2f}, {hi:.2f}]"
        label += f" ({ci})" if "slope" in label else f" (slope {s:.2f}, {ci})"
    return label


def _fit_colour(f: dict, groups: dict, algo_col: dict, default: str) -> str:
    if f.get("group") is not None and str(f["group"]) in groups:
        return groups[str(f["group"])]
    if f.get("algorithm"):
        return algo_col.get(f["algorithm"]) or colour(f["algorithm"])
    return default


def _draw_fits(ax, kind: str, fits: list[dict], col: str, groups: dict | None = None, algo_col: dict | None = None):
    """Fitted lines (solid) and predicted slopes (dotted). A fit carrying ``predicted`` without a
    predicted-slope line of its own in the spec gets one drawn through the fit's middle, in the fit's colour.
    A fit's colour: its ``group`` or ``algorithm`` when it names one, else ``col``."""
    groups = groups or {}
    drawn_predicted = {f.get("slope") for f in fits if f.get("low") is None and f.get("high") is None}
    for f in fits:
        slope, icpt = f.get("slope"), f.get("intercept")
        x0, x1 = (f.get("x") or [math.nan, math.nan])[:2]
        if any(v is None or not math.isfinite(v) for v in (slope, icpt, x0, x1)):
            continue
        xs = _grid(kind, float(x0), float(x1))
        is_pred = f.get("low") is None and f.get("high") is None
        fcol = _fit_colour(f, groups, algo_col or {}, NEUTRAL if is_pred else col)
        ax.plot(xs, _line(kind, slope, icpt, xs), color=fcol, linestyle=":" if is_pred else "-",
                linewidth=1.4 if is_pred else 1.1, label=_fit_label(f))
        p = f.get("predicted")
        if not is_pred and p is not None and math.isfinite(p) and (p, fcol) not in drawn_predicted \
                and p not in drawn_predicted:
            xm = math.sqrt(x0 * x1) if kind == "loglog" else (x0 + x1) / 2
            ym = float(_line(kind, slope, icpt, np.array([xm]))[0])
            anchor = {"loglog": math.log(ym) - p * math.log(xm) if ym > 0 else math.nan,
                      "semilogy": math.log(ym) - p * xm if ym > 0 else math.nan,
                      "linear": ym - p * xm}[kind]
            if math.isfinite(anchor):
                ax.plot(xs, _line(kind, p, anchor, xs), color=fcol, linestyle=":", linewidth=1.4,
                        label=f"predicted slope {p:.3g}")
            drawn_predicted.add((p, fcol))


def _grid_ticks(ax, series: list[dict]):
    """On a log x axis over a short sweep grid (kappa = 2, 4, 8...), tick the grid values themselves in
    plain numbers: '2, 4, 8' reads better than '2 x 10^0'. Not when two grid values would crowd their labels."""
    xs = np.unique(np.concatenate([_arr(s.get("x")) for s in series if s.get("style", "points") == "points"]
                                  or [np.empty(0)]))
    xs = xs[np.isfinite(xs) & (xs > 0)]
    span = math.log(xs.max() / xs.min()) if xs.size else 0.0
    # labels crowd when two grid values are closer than 8% of the axis' logarithmic span
    if 2 <= xs.size <= 10 and 1.0 < xs.max() / xs.min() < 1e3 and (np.diff(np.log(xs)) > 0.08 * span).all():
        ax.xaxis.set_major_locator(ticker.FixedLocator(xs))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(_plain))
        ax.xaxis.set_minor_locator(ticker.NullLocator())


def _plain(v, _=None) -> str:
    """A grid value in plain digits: integers and values from 100 up whole (1024, 1290, not 1.02e+03), others to
    3 significant digits."""
    return f"{v:.0f}" if (v == round(v) or abs(v) >= 100) and abs(v) < 1e7 else f"{v:.3g}"


def _integer_ticks(ax, series: list[dict]):
    """On a linear x axis over a short integer grid (Q = 1, 2, 3; b = 1..5), tick the grid values only:
    ticks at 1.25 or 2.5 would suggest values that cannot be run."""
    xs = np.unique(np.concatenate([_arr(s.get("x")) for s in series if s.get("style", "points") == "points"]
                                  or [np.empty(0)]))
    xs = xs[np.isfinite(xs)]
    if 2 <= xs.size <= 12 and np.allclose(xs, np.round(xs)):
        ax.xaxis.set_major_locator(ticker.FixedLocator(xs))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:.0f}"))


def _categories(labels: list[str]) -> list[str]:
    """Category names wrapped onto lines, so that long ones neither collide nor leave the figure."""
    return ["\n".join(textwrap.wrap(str(x), 22)) or str(x) for x in labels]


def _legend(fig, ax):
    """The legend below everything the axes draw (tick labels, axis label), never over the data; one entry
    per label, long labels wrapped. Saved with a tight bounding box, so the figure grows to hold it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    handles, labels = ax.get_legend_handles_labels()
    seen, h2, l2 = set(), [], []
    for h, lab in zip(handles, labels, strict=True):
        if lab not in seen:
            seen.add(lab)
            h2.append(h)
            l2.append(lab)
    ncol = 1 if len(l2) <= 3 else 2
    l2 = ["\n".join(textwrap.wrap(lab, 95 if ncol == 1 else 48)) or lab for lab in l2]
    # text layout only (no rasterising): where the axes' labels end
    box = ax.get_tightbbox(FigureCanvasAgg(fig).get_renderer()).transformed(fig.transFigure.inverted())
    ax.legend(h2, l2, loc="upper center", bbox_to_anchor=(0.5 * (box.x0 + box.x1), box.y0 - 0.01),
              bbox_transform=fig.transFigure, frameon=False, ncol=ncol, borderaxespad=0.0, columnspacing=1.2)


@styled
def draw_spec(spec: dict, cid: str) -> Figure:
    """One ``bench.figures`` spec as a Figure, titled with the claim ID. Colour: a series' ``group`` (one
    colour per swept value), else its ``algorithm`` (palette), else distinct colours in order of
    appearance; bounds without either in near-black. Line style: one per distinct bound (its ``bound`` name,
    else its label), in order of appearance. Marker: one per algorithm of a comparison, or per series
    within one group. Fits take their own ``group``/``algorithm`` colour, else that of the spec's only
    algorithm, else near-black. The legend sits below the axes."""
    kind = spec.get("type", "linear")
    if kind not in TYPES:
        raise ValueError(f"figure type must be one of {TYPES}, got {kind!r}")
    series = list(spec.get("series") or [])
    algos = sorted({s["algorithm"] for s in series if s.get("algorithm")})
    fig = Figure(figsize=(5.0, 3.4))
    # fixed margins, not a layout engine (constrained layout doubles the time of every save); the saved
    # bounding box is tight, so long labels and the legend below are never cut
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.87)
    ax = fig.add_subplot()
    groups = group_colours([s["group"] for s in series if s.get("group") is not None]
                           + [str(f["group"]) for f in spec.get("fits") or [] if f.get("group") is not None])
    # the palette's colour per algorithm; two names hashing to one fallback colour are told apart here
    algo_col: dict[str, str] = {}
    for a in algos:
        c = colour(a)
        algo_col[a] = c if c not in algo_col.values() else series_colours(1, algo_col.values())[0]
    plain = [i for i, s in enumerate(series) if s.get("group") is None and not s.get("algorithm")
             and s.get("style") != "bound"]
    free = dict(zip(plain, series_colours(len(plain), algo_col.values()), strict=True))
    categorical = bool(spec.get("xticklabels"))
    bound_styles, in_group = {}, {}
    for i, s in enumerate(series):
        if s.get("group") is not None:
            col = groups[s["group"]]
        elif s.get("algorithm"):
            col = algo_col[s["algorithm"]]
        elif s.get("style") == "bound":
            col = NEUTRAL
        else:
            col = free[i]
        if s.get("algorithm") in algos and s.get("group") is None:
            marker = MARKERS[algos.index(s["algorithm"]) % len(MARKERS)]
        else:
            key = s.get("group") if s.get("group") is not None else "_plain"
            n = in_group.get(key, 0)
            marker = MARKERS[n % len(MARKERS)]
            if s.get("style", "points") == "points":
                in_group[key] = n + 1
        linestyle = "--"
        if s.get("style") == "bound":
            bkey = s.get("bound") or s.get("label", i)
            linestyle = bound_styles.setdefault(bkey, BOUND_STYLES[len(bound_styles) % len(BOUND_STYLES)])
        _draw_series(ax, kind, s, col, marker, linestyle, categorical)
    _draw_fits(ax, kind, list(spec.get("fits") or []), algo_col[algos[0]] if len(algos) == 1 else NEUTRAL, groups,
               algo_col)
    if kind in ("loglog", "semilogy"):
        ax.set_yscale("log")
    if kind == "loglog":
        ax.set_xscale("log")
        _grid_ticks(ax, series)
    elif not spec.get("xticklabels"):
        _integer_ticks(ax, series)
    title = spec.get("title") or cid
    if cid not in title:
        title = f"{cid}: {title}"
    ax.set_title("\n".join(textwrap.wrap(title, 70)))
    ax.set_xlabel(spec.get("xlabel", ""))
    ax.set_ylabel("\n".join(textwrap.wrap(spec.get("ylabel", ""), 45)))
    if categorical:  # categorical x (e.g. problem families, algorithms at x = 0, 1, ...)
        labels = _categories(spec["xticklabels"])
        many = len(labels) > 4
        ax.set_xticks(range(len(labels)), labels, rotation=30 if many else 0, ha="right" if many else "center",
                      fontsize="small")
        ax.set_xlim(-0.5, len(labels) - 0.5)
        ax.xaxis.grid(False)
    if ax.has_data():
        if ax.get_legend_handles_labels()[0]:
            _legend(fig, ax)
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
    names = sorted(ok["algorithm"].unique())
    # twenty algorithms on one figure: a colour each from a 20-colour map (their registry colours repeat)
    cmap = matplotlib.colormaps["tab20"]
    cols = {n: matplotlib.colors.to_hex(cmap(i % 20)) for i, n in enumerate(names)}
    for ax, (count, xlabel) in zip(axes, panels, strict=True):
        for name in names:
            rows = ok[ok["algorithm"] == name]
            g = rows.groupby("k").agg(x=(count, "mean"), y=("grad_phi_sq", "median"), lo=("grad_phi_sq", "min"),
                                      hi=("grad_phi_sq", "max")).reset_index().sort_values("k")
            g = g[(g["x"] > 0) & (g["lo"] > 0) & np.isfinite(g["hi"])]
            is_stoch = bool(stoch[rows.index].iloc[0])
            col = cols[name]
            ax.plot(g["x"], g["y"], color=col, linestyle="--" if is_stoch else "-", linewidth=1.3,
                    label=f"{name}{' (stochastic)' if is_stoch else ''}")
            ax.fill_between(g["x"], g["lo"], g["hi"], color=col, alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xlabel)
    axes[0].set_ylabel("||grad Phi(x_k)||^2 (median, band min-max)")
    first = ok.iloc[0]
    fams = ", ".join(sorted(ok["family"].astype(str).unique()))
    fig.suptitle(f"reference curves: every algorithm under its theory preset ({fams}, kappa = "
                 f"{float(first['kappa']):g}, Phi(x0) - inf Phi = 1)", fontsize=9)
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False)
    return fig, failures


#: colours of a saved PNG's palette: line art with a few dozen hues and their anti-aliased blends reads the same
#: with 64 as with millions (checked by eye on the densest figures: 8 groups, bands, error bars), at a quarter of
#: the bytes, which keeps the self-contained report.html small
PNG_COLOURS = 64


def _write_png(fig: Figure, path: Path, dpi: int) -> None:
    """The figure as a palette PNG (``PNG_COLOURS``), no metadata: deterministic bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, bbox_inches="tight", pad_inches=0.06)
    with Image.open(buf) as im:
        pal = im.convert("RGB").quantize(colors=PNG_COLOURS, method=Image.Quantize.FASTOCTREE,
                                         dither=Image.Dither.NONE)
    pal.save(path, format="PNG", optimize=True)


_SUPERSCRIPT = str.maketrans("-\u22120123456789",
                             "\u207b\u207b\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")
_SCI = re.compile(r"\$\\mathdefault\{(?:(.+?)\\times)?10\^\{(.+?)\}\}\$")


class PlainLogFormatter(ticker.LogFormatterSciNotation):
    """Matplotlib's log-axis labels (10^-3, 2 x 10^-1, the same ticks labelled) as plain Unicode text
    (10⁻³, 2×10⁻¹) instead of mathtext: parsing mathtext was a quarter of the report's drawing time (each
    figure's renderer parses its labels anew), and the glyphs are the same font's."""

    def __call__(self, x, pos=None):
        label = super().__call__(x, pos)
        m = _SCI.fullmatch(label)
        if m is None:
            return label
        power = "10" + m.group(2).translate(_SUPERSCRIPT)
        return power if m.group(1) is None else f"{m.group(1)}\u00d7{power}"


def _plain_log_labels(fig: Figure) -> None:
    """Swap every log axis's default (mathtext) formatters for :class:`PlainLogFormatter`, same settings."""
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for f in (axis.get_major_formatter(), axis.get_minor_formatter()):
                if type(f) is ticker.LogFormatterSciNotation:
                    f.__class__ = PlainLogFormatter  # a subclass adding no state: every setting is kept


def save(fig: Figure, stem: Path, *, svg: bool, dpi: int) -> list[Path]:
    """Write ``stem``.png (palette-compressed, ``PNG_COLOURS``) and .svg reproducibly; returns the files
    written. Log axes are labelled in plain text (:class:`PlainLogFormatter`)."""
    out = [stem.parent / f"{stem.name}.png"]  # not with_suffix: claim IDs contain dots
    _plain_log_labels(fig)
    with matplotlib.rc_context(RC):
        _write_png(fig, out[0], dpi)
        if svg:
            out.append(stem.parent / f"{stem.name}.svg")
            fig.savefig(out[1], metadata={"Date": None, "Creator": None}, bbox_inches="tight", pad_inches=0.06)
    return out
