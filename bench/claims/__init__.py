"""The claims registry: one entry per ID of the claims catalogues (shared/claims.md, shared/claims-modern.md).

A claim = statement + the experiments it judges (``bench.experiments``, by name) + the bounds that give its
prediction (names in ``bilevelbench.bounds.BOUNDS``, checked at registration: a dangling name fails at
import) + a judge. ``judge(results, env)`` receives the experiments' tidy tables (name -> DataFrame) and
returns a :class:`~bilevelbench.bench.judging.Verdict` built by a rule of ``bench.judging``; it never runs
an experiment. The roles a claim audits are those of its experiments' audited arms (and the components
their algorithms call): a plug-in of one of them reaches the claim.

One module per paper registers its claims (:mod:`.icml21`, :mod:`.arxiv20`, :mod:`.loops22`, :mod:`.sid21`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

import pandas as pd

from ..experiments import EXPERIMENTS, Experiment
from ..experiments import load as load_experiments
from ..judging import Verdict

__all__ = ["Claim", "CLAIMS", "register_claim", "all_claims", "get_claim", "KINDS", "PAPERS", "CATALOGUE",
           "CATALOGUE_MODERN", "CONTRACT"]

KINDS = ("identity", "inequality", "lower-bound", "scaling", "comparison")
PAPERS = {
    "icml21": "Ji, Yang, Liang. Bilevel Optimization: Convergence Analysis and Enhanced Design. ICML 2021",
    "arxiv20": "Ji, Yang, Liang. Provably Faster Algorithms for Bilevel Optimization and Applications to "
               "Meta-Learning. arXiv",
    "loops22": "Ji, Liu, Liang, Ying. Will Bilevel Optimizers Benefit from Loops. NeurIPS 2022",
    "sid21": "Grazzi, Pontil, Salzo. Convergence Properties of Stochastic Hypergradients. AISTATS 2021",
    # the second catalogue (shared/claims-modern.md): the solvers users compare against today
    "bsa18": "Ghadimi, Wang. Approximation Methods for Bilevel Programming. arXiv 1802.02246 (BSA)",
    "ttsa20": "Hong, Wai, Wang, Yang. A Two-Timescale Framework for Bilevel Optimization. SIAM J. Optim. 2023 (TTSA)",
    "soba22": "Dagreou, Ablin, Vaiter, Moreau. A Framework for Bilevel Optimization that Enables Stochastic and "
              "Global Variance Reduction Algorithms. NeurIPS 2022 (SOBA)",
    "saba22": "Dagreou, Ablin, Vaiter, Moreau. NeurIPS 2022 (SABA)",
    "srba24": "Dagreou, Moreau, Vaiter, Ablin. A Lower Bound and a Near-Optimal Algorithm for Bilevel Empirical Risk "
              "Minimization. AISTATS 2024 (SRBA)",
    "amigo22": "Arbel, Mairal. Amortized Implicit Differentiation for Stochastic Bilevel Optimization. ICLR 2022",
    "f2sa23": "Kwon, Kwon, Wright, Nowak. A Fully First-Order Method for Stochastic Bilevel Optimization. ICML 2023",
    "f2sap26": "Chen, Li, Chayti, Zhang. F2SA-p: finite differences of order p. ICLR 2026",
    "f2ba25": "Chen, Ma, Zhang. Near-Optimal Nonconvex-Strongly-Convex Bilevel Optimization with Fully First-Order "
              "Oracles. JMLR 2025 (F2BA)",
    "mrbo21": "Yang, Ji, Liang. Provably Faster Algorithms for Bilevel Optimization. NeurIPS 2021 (MRBO)",
    "vrbo21": "Yang, Ji, Liang. Provably Faster Algorithms for Bilevel Optimization. NeurIPS 2021 (VRBO)",
}
#: every claim ID of the catalogue (shared/claims.md), in its order: the contract the registry is held to
CATALOGUE = (
    "icml21.prop1", "icml21.prop2", "icml21.thm1.bound", "icml21.thm1.rates", "icml21.thm2.bound",
    "icml21.thm2.rates", "icml21.aid-vs-itd", "icml21.warm-start", "icml21.prop3", "icml21.batch-schedule",
    "icml21.thm3.rates", "icml21.thm3.floor", "icml21.thm4", "icml21.table2",
    "arxiv20.lemma2", "arxiv20.prop3", "arxiv20.prop3.rate", "arxiv20.thm1.bound", "arxiv20.prop4",
    "arxiv20.thm2.bound", "arxiv20.thm3.bound",
    "loops22.cor1", "loops22.cor2", "loops22.cor3", "loops22.cor4", "loops22.n-loop-helps", "loops22.cor5",
    "loops22.cor6", "loops22.thm4", "loops22.thm4.scaling", "loops22.thm3-vs-thm4", "loops22.table3",
    "sid21.thm3.1", "sid21.thm3.2", "sid21.thm3.3", "sid21.thm3.4", "sid21.eq14", "sid21.thm4.1",
    "sid21.thm4.2", "sid21.thm4.2.rate", "sid21.cor4.1", "sid21.rem4.1", "sid21.thm4.3", "sid21.thm5.1",
    "sid21.fig1",
)
#: every claim ID of the second catalogue (shared/claims-modern.md), in its order
CATALOGUE_MODERN = (
    "bsa18.estimator", "bsa18.bias", "bsa18.rate", "ttsa20.rate", "soba22.lemma3.8", "soba22.lemma3.9",
    "soba22.thm1", "saba22.thm4", "saba22.vs-soba", "saba22.memory-init", "srba24.scaling", "amigo22.warm-start",
    "f2sa23.identity", "f2sap26.fd-bias", "f2ba25.bias", "f2ba25.rate", "f2ba25.vs-f2sa23", "f2ba25.public-variant",
    "f2sa23.rate", "mrbo21.rate", "vrbo21.rate",
)
#: both catalogues: the contract the registry is held to
CONTRACT = CATALOGUE + CATALOGUE_MODERN
#: the modules that register the claims of each paper, in catalogue order
_MODULES = ("icml21", "icml21_stochastic", "arxiv20", "arxiv20_stochastic", "loops22", "sid21",
            "modern_stochastic", "modern_soba", "modern_penalty")

Results = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Claim:
    """One claim of the catalogue: what is claimed (statement, kind, bounds) and how it is judged.

    ``experiments``: names of the registered experiments whose tables the judge reads; ``bounds``: the
    ``bounds.BOUNDS`` functions giving its prediction (empty only for identities and comparisons without
    a formula); ``setup``: the experiment as the report describes it; ``audits``: what the report says a
    plug-in is audited against when the claim compares arms (e.g. "the increasing-D baseline stays the
    paper's")."""

    id: str
    paper: str
    kind: str
    statement: str
    setup: str
    experiments: tuple[str, ...]
    judge: Callable[[Results, Any], Verdict]
    bounds: tuple[str, ...] = ()
    audits: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def experiment_objects(self) -> list[Experiment]:
        load_experiments()
        return [EXPERIMENTS[n] for n in self.experiments]

    @property
    def roles(self) -> tuple[str, ...]:
        """Audited roles of its experiments, in order."""
        return tuple(dict.fromkeys(r for e in self.experiment_objects() for r in e.roles))

    @property
    def reach(self) -> set[str]:
        return set().union(*(e.reach for e in self.experiment_objects())) if self.experiments else set()

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "paper": self.paper, "kind": self.kind, "statement": self.statement,
                "setup": self.setup, "experiments": list(self.experiments), "roles": list(self.roles),
                "bounds": list(self.bounds), "audits": self.audits}


CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
    """Add a claim; its kind, paper, ID (in the catalogue), experiments and bounds are checked here."""
    from bilevelbench.bounds import BOUNDS

    if claim.kind not in KINDS:
        raise ValueError(f"claim {claim.id}: kind must be one of {KINDS}, got {claim.kind!r}")
    if claim.paper not in PAPERS:
        raise ValueError(f"claim {claim.id}: unknown paper {claim.paper!r}")
    if claim.id not in CONTRACT:
        raise ValueError(f"claim {claim.id!r} is not in the catalogues")
    if claim.id in CLAIMS:
        raise ValueError(f"claim {claim.id!r} registered twice")
    load_experiments()
    missing = [e for e in claim.experiments if e not in EXPERIMENTS]
    if missing or not claim.experiments:
        raise ValueError(f"claim {claim.id}: unknown experiment(s) {missing or '(none given)'}")
    dangling = [b for b in claim.bounds if b not in BOUNDS]
    if dangling:
        raise ValueError(f"claim {claim.id}: unknown bound(s) {dangling} (bounds.BOUNDS)")
    CLAIMS[claim.id] = claim
    return claim


def _load():
    for m in _MODULES:
        import_module(f"{__name__}.{m}")


def all_claims() -> list[Claim]:
    """Every registered claim, in catalogue order."""
    _load()
    rank = {cid: i for i, cid in enumerate(CONTRACT)}
    return sorted(CLAIMS.values(), key=lambda c: rank.get(c.id, len(rank)))


def get_claim(cid: str) -> Claim:
    _load()
    if cid not in CLAIMS:
        raise ValueError(f"unknown claim ID {cid!r}; see 'bilevelbench list claims'")
    return CLAIMS[cid]
