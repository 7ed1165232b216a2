"""The claims registry: one entry per ID of the claims catalogue (shared/claims.md).

A claim = statement + the sweeps it needs + a verdict rule. Sweeps are shared between claims by name
(e.g. the AID-BiO rate sweep serves the rate, the bound and the AID-vs-ITD comparison), run once by the
verification engine and stored per point. ``judge(frames, env)`` turns the sweeps' tidy tables into a
:class:`~bilevelbench.bench.result.Verdict`; it never runs an experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import pandas as pd

from .result import Verdict
from .sweep import Env, Point

__all__ = ["Sweep", "Claim", "CLAIMS", "register_claim", "all_claims", "get_claim", "KINDS", "PAPERS"]

KINDS = ("identity", "inequality", "lower-bound", "scaling", "comparison")
PAPERS = {
    "icml21": "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
    "arxiv20": "Ji, Yang, Liang. Provably Faster Algorithms for Bilevel Optimization and Applications to "
               "Meta-Learning. arXiv",
    "loops22": "Ji, Liu, Liang, Ying. Will Bilevel Optimizers Benefit from Loops. NeurIPS 2022",
    "sid21": "Grazzi, Pontil, Salzo. Convergence Properties of Stochastic Hypergradients. AISTATS 2021",
}
#: every claim ID of the catalogue (shared/claims.md), in its order: the contract the registry is held to
CATALOGUE = (
    "icml21.prop1",
    "icml21.prop2",
    "icml21.thm1.bound",
    "icml21.thm1.rates",
    "icml21.thm2.bound",
    "icml21.thm2.rates",
    "icml21.aid-vs-itd",
    "icml21.warm-start",
    "icml21.prop3",
    "icml21.batch-schedule",
    "icml21.thm3.rates",
    "icml21.thm3.floor",
    "icml21.thm4",
    "icml21.table2",
    "arxiv20.lemma2",
    "arxiv20.prop3",
    "arxiv20.prop3.rate",
    "arxiv20.thm1.bound",
    "arxiv20.prop4",
    "arxiv20.thm2.bound",
    "arxiv20.thm3.bound",
    "loops22.cor1",
    "loops22.cor2",
    "loops22.cor3",
    "loops22.cor4",
    "loops22.n-loop-helps",
    "loops22.cor5",
    "loops22.cor6",
    "loops22.thm4",
    "loops22.thm4.scaling",
    "loops22.thm3-vs-thm4",
    "loops22.table3",
    "sid21.thm3.1",
    "sid21.thm3.2",
    "sid21.thm3.3",
    "sid21.thm3.4",
    "sid21.eq14",
    "sid21.thm4.1",
    "sid21.thm4.2",
    "sid21.thm4.2.rate",
    "sid21.cor4.1",
    "sid21.rem4.1",
    "sid21.thm4.3",
    "sid21.thm5.1",
    "sid21.fig1",
)
#: the modules that register the claims of each paper, in catalogue order
_MODULES = ("icml21", "arxiv20", "loops22", "sid21")


@dataclass(frozen=True)
class Sweep:
    """A named sweep: ``measure(key, env, seed) -> list[dict]`` run at every key of ``keys``."""

    name: str
    measure: Callable[[dict, Env, int], list[dict]]
    keys: tuple

    def points(self) -> list[Point]:
        return [Point(self.name, dict(k)) for k in self.keys]


@dataclass(frozen=True)
class Claim:
    """One claim of the catalogue with its experiment and verdict rule.

    ``roles`` names the algorithm roles the experiment uses (e.g. 'aid', 'itd', 'stochastic-aid'); a
    plug-in algorithm of one of these kinds replaces the default of that role (``verify --plugin``).
    """

    id: str
    paper: str
    kind: str
    statement: str
    experiment: str
    sweeps: Callable[[Env], list[Sweep]]
    judge: Callable[[dict[str, pd.DataFrame], Env], Verdict]
    roles: tuple[str, ...] = ()
    bound: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "paper": self.paper, "kind": self.kind, "statement": self.statement,
                "experiment": self.experiment, "roles": list(self.roles), "bound": self.bound}


CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    if claim.kind not in KINDS:
        raise ValueError(f"claim {claim.id}: kind must be one of {KINDS}, got {claim.kind!r}")
    if claim.paper not in PAPERS:
        raise ValueError(f"claim {claim.id}: unknown paper {claim.paper!r}")
    if claim.id not in CATALOGUE:
        raise ValueError(f"claim {claim.id!r} is not in the catalogue")
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} registered twice")
    CLAIMS[claim.id] = claim
    return claim


def _load():
    for m in _MODULES:
        import_module(f"bilevelbench.bench.{m}")


def all_claims() -> list[Claim]:
    """Every registered claim, in catalogue order."""
    _load()
    rank = {cid: i for i, cid in enumerate(CATALOGUE)}
    return sorted(CLAIMS.values(), key=lambda c: rank.get(c.id, len(rank)))


def get_claim(cid: str) -> Claim:
    _load()
    if cid not in CLAIMS:
        raise ValueError(f"unknown claim ID {cid!r}; see 'bilevelbench list claims'")
    return CLAIMS[cid]
