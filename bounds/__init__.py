"""The papers' predictions as code: explicit-constant bounds and complexity tables.

One module per paper (PEPit style: pure functions of floats, each citing theorem and equation):
:mod:`.icml21` (Ji, Yang, Liang, ICML 2021), :mod:`.arxiv20` (the arXiv version with proofs),
:mod:`.loops22` (Ji, Liu, Liang, Ying, NeurIPS 2022, and the exact ITD lower-bound floor),
:mod:`.sid21` (Grazzi, Pontil, Salzo, AISTATS 2021), :mod:`.sid_constants` (SID's constants of a
problem) and :mod:`.modern` (BSA, TTSA, MRBO, VRBO of claims-modern.md); :mod:`.tables` holds the
complexity tables as sympy data.

``BOUNDS[name]`` is every bound function (``fn.info`` gives source, kind and statement; kinds
``order-*`` take the hidden Theta constant ``c``, default 1); ``CLAIM_BOUNDS[claim_id]`` lists the
bound names that give a claim of ``claims.md`` its prediction. ``evaluate(fn, constants, **params)``
fills L, mu, kappa, M, tau, rho, L_phi, sigma2 from a problem's Constants.
"""

from __future__ import annotations

from collections.abc import Callable

from . import arxiv20, icml21, loops22, modern, sid21, sid_constants, tables
from ._common import REGISTRY, BoundInfo, evaluate
from .tables import format_table, row_bound_name, rows_where, table_rows, to_records

__all__ = [
    "BOUNDS",
    "CLAIM_BOUNDS",
    "BoundInfo",
    "arxiv20",
    "icml21",
    "loops22",
    "modern",
    "sid21",
    "sid_constants",
    "tables",
    "table_rows",
    "format_table",
    "to_records",
    "bounds_for",
    "evaluate",
]

#: every bound function by name
BOUNDS: dict[str, Callable] = dict(REGISTRY)


def _rows(**where) -> list[str]:
    names = [row_bound_name(r) for r in rows_where(**where)]
    if not names:  # pragma: no cover - guards the mapping below
        raise RuntimeError(f"no complexity rows match {where}")
    return names


def _claim_bounds() -> dict[str, list[str]]:
    icml_aid = _rows(paper="icml21", item="Table 1", algorithm="AID-BiO (this paper)")
    icml_itd = _rows(paper="icml21", item="Table 1", algorithm="ITD-BiO (this paper)")
    cor = {i: _rows(paper="loops22", item=f"Corollary {i}") for i in range(1, 7)}
    cor4_1 = ["sid21.cor4.1", "sid21.cor4.1.r1", "sid21.cor4.1.r2", "sid21.cor4.1.r3",
              "sid21.cor4.1.decreasing"]
    return {
        "icml21.thm1.bound": ["icml21.thm1.bound", "arxiv20.lemma2"],
        "icml21.thm1.rates": icml_aid,
        "icml21.thm2.bound": ["icml21.thm2.bound", "arxiv20.lemma2", "arxiv20.thm1.T"],
        "icml21.thm2.rates": icml_itd,
        "icml21.aid-vs-itd": icml_aid + icml_itd,
        "icml21.warm-start": _rows(paper="icml21", item="Table 1", metric="Gc(g)")[:2],
        "icml21.prop3": ["icml21.prop3.bias", "icml21.prop3.mse"],
        "icml21.batch-schedule": (_rows(paper="icml21", item="Proposition 3")
                                  + ["icml21.prop3.samples", "icml21.prop3.samples.uniform"]),
        "icml21.thm3.rates": _rows(paper="icml21", item="Table 2", algorithm="stocBiO (this paper)"),
        "icml21.thm3.floor": ["icml21.thm3.floor", "arxiv20.thm2.bound"],
        "icml21.thm4": ["icml21.thm4"],
        "icml21.table2": _rows(paper="icml21", item="Table 2"),
        "arxiv20.lemma2": ["arxiv20.lemma2", "arxiv20.lemma2.rederived"],
        "arxiv20.prop3": ["arxiv20.prop3"],
        "arxiv20.prop3.rate": ["arxiv20.prop3.rate", "arxiv20.prop3"],
        "arxiv20.thm1.bound": ["arxiv20.thm1.bound", "arxiv20.thm1.T", "arxiv20.thm1.explicit",
                               "arxiv20.lemma2"],
        "arxiv20.prop4": ["arxiv20.prop4.bias", "arxiv20.prop4.mse"],
        "arxiv20.thm2.bound": ["arxiv20.thm2.bound", "arxiv20.thm2.T", "arxiv20.lemma2"],
        "arxiv20.thm3.bound": ["arxiv20.thm3.bound", "arxiv20.lemma2"],
        "loops22.cor1": cor[1],
        "loops22.cor2": cor[2],
        "loops22.cor3": cor[3],
        "loops22.cor4": cor[4],
        "loops22.n-loop-helps": [n for i in range(1, 5) for n in cor[i] if not n.endswith(":rate")],
        "loops22.cor5": cor[5] + ["loops22.cor5"],
        "loops22.cor6": cor[6] + ["loops22.cor6"],
        "loops22.thm4": ["loops22.thm4", "loops22.itd_floor", "loops22.itd_trajectory"],
        "loops22.thm4.scaling": ["loops22.thm4", "loops22.itd_floor"],
        "loops22.thm3-vs-thm4": ["loops22.thm3.error", "loops22.thm4", "loops22.itd_floor"],
        "sid21.thm3.1": ["sid21.thm3.1", "sid21.c1"],
        "sid21.thm3.2": ["sid21.thm3.2"],
        "sid21.thm3.3": ["sid21.thm3.3", "sid21.c1"],
        "sid21.thm3.4": ["sid21.thm3.4", "sid21.c1"],
        "sid21.eq14": ["sid21.eq14", "sid21.thm3.4", "sid21.thm5.1.w", "sid21.thm5.1.v"],
        "sid21.thm4.1": ["sid21.thm4.1", "sid21.rate.batch"],
        "sid21.thm4.2": ["sid21.thm4.2", "sid21.thm4.2.c"],
        "sid21.thm4.2.rate": ["sid21.thm4.2"],
        "sid21.cor4.1": cor4_1,
        "sid21.rem4.1": cor4_1 + ["sid21.bottou", "sid21.bottou.r1", "sid21.bottou.r2"],
        "sid21.thm4.3": ["sid21.thm4.3"],
        "sid21.thm5.1": ["sid21.thm5.1.w", "sid21.thm5.1.v", "sid21.thm5.1.dw", "sid21.thm5.1.dv",
                         "sid21.thm5.1.sigma2"],
    }


#: claim ID -> names in BOUNDS that give its prediction
CLAIM_BOUNDS: dict[str, list[str]] = _claim_bounds()

_missing = sorted({n for names in CLAIM_BOUNDS.values() for n in names} - set(BOUNDS))
if _missing:  # pragma: no cover - guards the mapping above
    raise RuntimeError(f"CLAIM_BOUNDS names unknown bounds: {_missing}")


def bounds_for(claim_id: str) -> list[Callable]:
    """The bound functions of a claim (empty for claims with no formula: identities, comparisons)."""
    return [BOUNDS[n] for n in CLAIM_BOUNDS.get(claim_id, [])]
