"""Colours: one fixed colour per algorithm across every figure, and the verdict colours of the report."""

from __future__ import annotations

import hashlib

__all__ = ["PALETTE", "FALLBACK", "VERDICT_COLOURS", "colour"]

#: the registered algorithms (``bilevelbench list algorithms``); families share hues (AID blues, ITD
#: oranges, stochastic AID greens/purples) so a figure reads at a glance
PALETTE = {
    "aid-bio": "#1f77b4",
    "ba": "#17becf",
    "itd-bio": "#ff7f0e",
    "deterbio": "#d62728",
    "stocbio": "#2ca02c",
    "bsa": "#9467bd",
    "ttsa": "#8c564b",
    "sid": "#e377c2",
    "meta-aid-bio": "#bcbd22",
    "meta-itd-bio": "#7f7f7f",
}
#: colours for names not in PALETTE (plug-ins); chosen by a hash of the name, so fixed across runs
FALLBACK = ("#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d", "#31a354",
            "#756bb1", "#636363", "#ad494a", "#a55194")
VERDICT_COLOURS = {"holds": "#1a7f37", "consistent": "#0969da", "violated": "#cf222e",
                   "inconclusive": "#9a6700", "error": "#6e40c9"}


def colour(name: str) -> str:
    """The colour of algorithm (or series) ``name``: PALETTE, else a hash-chosen FALLBACK entry."""
    if name in PALETTE:
        return PALETTE[name]
    h = int.from_bytes(hashlib.sha256(str(name).encode()).digest()[:4], "little")
    return FALLBACK[h % len(FALLBACK)]
