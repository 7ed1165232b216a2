"""The one style of every figure: matplotlib settings, colours, markers and line styles.

Every figure of the report (claim figures, headline figures, reference curves) draws under :data:`RC` and
takes its colours and styles from here, so that an algorithm has one colour everywhere, different bounds
in one figure never share a line style, censored points look the same in every figure, and a swept value
(kappa, a batch size) has one colour per figure with a legend entry.
"""

from __future__ import annotations

import functools

import matplotlib

from .palette import FALLBACK, PALETTE, VERDICT_COLOURS, colour

__all__ = ["RC", "NEUTRAL", "MARKERS", "BOUND_STYLES", "CENSORED", "SERIES_COLOURS", "styled", "colour",
           "group_colours", "series_colours", "PALETTE", "FALLBACK", "VERDICT_COLOURS"]

#: style and reproducibility settings applied while drawing and saving
RC = {"svg.hashsalt": "bilevelbench", "font.size": 8, "axes.titlesize": 8.5, "legend.fontsize": 7,
      "axes.grid": True, "grid.alpha": 0.3, "grid.linewidth": 0.5, "path.simplify": False,
      "svg.fonttype": "none"}
#: bounds and predicted slopes
NEUTRAL = "#222222"
#: one marker shape per algorithm of a comparison, or per series sharing a colour (reads apart in grey print
#: too); no triangle: an open triangle is the censored marker
MARKERS = ("o", "s", "D", "v", "P", "X", "*", "<")
#: distinct line styles for the different bounds drawn in one figure, in order of appearance
BOUND_STYLES = ("--", "-.", ":", (0, (5, 1, 1, 1, 1, 1)), (0, (8, 2)), (0, (1, 1)))
#: series that name neither an algorithm nor a swept value: taken in order within a figure, skipping the
#: colours its algorithms already use (a hash of the label could give two series one colour)
SERIES_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                  "#bcbd22", "#7f7f7f")
#: how a censored point (a run that did not reach its criterion: its value is a lower bound) is drawn
CENSORED = {"facecolor": "none", "marker": "^", "note": "open triangles: censored runs, values are lower bounds"}


def styled(fn):
    """Draw under RC: font sizes are read when the artists are created, not when saved."""

    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with matplotlib.rc_context(RC):
            return fn(*args, **kw)

    return wrapper


def group_colours(groups) -> dict:
    """One colour per swept value (sorted numerically where possible), from a perceptually ordered map."""
    import matplotlib as mpl

    def key(g):
        try:
            return (0, float(str(g).split()[-1]))
        except ValueError:
            return (1, str(g))

    order = sorted(set(groups), key=key)
    cmap = mpl.colormaps["viridis"]
    n = max(len(order) - 1, 1)
    return {g: mpl.colors.to_hex(cmap(0.05 + 0.85 * i / n)) for i, g in enumerate(order)}


def series_colours(n: int, taken=()) -> list[str]:
    """``n`` distinct colours for unnamed series of one figure, none of them in ``taken``."""
    free = [c for c in SERIES_COLOURS if c not in set(taken)] or list(SERIES_COLOURS)
    return [free[i % len(free)] for i in range(n)]
