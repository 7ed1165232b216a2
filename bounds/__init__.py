"""The papers' predictions as code: explicit-constant bounds and complexity tables.

One module per paper (PEPit style: pure functions of floats, each citing theorem and equation):
:mod:`.icml21` (Ji, Yang, Liang, ICML 2021), :mod:`.arxiv20` (the arXiv version with proofs),
:mod:`.loops22` (Ji, Liu, Liang, Ying, NeurIPS 2022, and the exact ITD lower-bound floor),
:mod:`.sid21` (Grazzi, Pontil, Salzo, AISTATS 2021), :mod:`.sid_constants` (SID's constants of a
problem), :mod:`.soba22` (SOBA, SABA, SRBA), :mod:`.penalty` (F2SA, F2BA, F2SA-p) and :mod:`.modern` (BSA,
TTSA, MRBO, VRBO of claims-modern.md); :mod:`.tables` holds the complexity tables as sympy data.

``BOUNDS[name]`` is every bound function (``fn.info`` gives source, kind and statement; kinds
``order-*`` take the hidden Theta constant ``c``, default 1); each claim of ``bench.claims`` names the
bounds that give its prediction (checked at registration). ``evaluate(fn, constants, **params)``
fills L, mu, kappa, M, tau, rho, L_phi, sigma2 from a problem's Constants.
"""

from __future__ import annotations

from collections.abc import Callable

from . import arxiv20, icml21, loops22, modern, penalty, sid21, sid_constants, soba22, tables
from ._common import REGISTRY, BoundInfo, evaluate
from .tables import format_table, table_rows, to_records

__all__ = [
    "BOUNDS",
    "BoundInfo",
    "arxiv20",
    "icml21",
    "loops22",
    "modern",
    "penalty",
    "sid21",
    "sid_constants",
    "soba22",
    "tables",
    "table_rows",
    "format_table",
    "to_records",
    "evaluate",
]

#: every bound function by name
BOUNDS: dict[str, Callable] = dict(REGISTRY)


