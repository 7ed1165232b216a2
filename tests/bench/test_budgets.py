"""Budgets and seeds of the non-convergence rule (issue 17).

* A run that misses its criterion within its step budget is ``violated``: that is fair only where the budget is
  ample for the paper's algorithm. On the quick profile every audited point of every rate table (an experiment
  whose rows carry ``K`` and ``budget``; other helpers' sweeps are picked up from the registry) must give the
  paper's algorithm at least three times the iterations its slowest run needed, and every run must reach eps.
* The correct twins of every role violate no claim on other base seeds than the default (seed 0 is
  ``test_audit``'s): the verdicts do not hang on a lucky seed. Slow: the whole quick profile, once per seed.
"""

from __future__ import annotations

import pytest
from bbplugins import twins

from bilevelbench.algorithms.components import COMPONENTS
from bilevelbench.bench.claims import all_claims
from bilevelbench.bench.experiments import EXPERIMENTS, load
from bilevelbench.bench.roles import ALGORITHM_ROLES, Cast, load_plugin
from bilevelbench.bench.sweep import Env, canon
from bilevelbench.bench.verify import plan, verify

#: the budget must be at least this multiple of the iterations the paper's algorithm needed (issue 17)
AMPLE = 3


def _rate_tables() -> list[str]:
    load()
    return sorted(n for n, e in EXPERIMENTS.items() if {"K", "budget", "status"} <= set(e.row_type.columns()))


def test_rate_tables_are_found():
    assert "rate/deterbio/arxiv20.thm1" in _rate_tables()


@pytest.mark.parametrize("name", _rate_tables())
def test_budget_is_ample_for_the_papers_algorithm(name, run_quick):
    users = [c.id for c in all_claims() if name in c.experiments]
    if not users:
        pytest.skip(f"no claim judges {name}: it does not run")
    audited = {canon(k.as_dict()): k for k in EXPERIMENTS[name].keys("quick") if getattr(k, "audited", True)}
    if not audited:
        pytest.skip(f"{name} is a baseline arm only (audited=False): the non-convergence rule does not judge it")
    _, results = run_quick(users)
    rows = results[(results["experiment"] == name) & results["point_key"].isin(audited)]
    assert set(rows["point_key"]) == set(audited), f"{name}: audited points without results"
    short = []
    for key, g in rows.groupby("point_key"):
        stuck = g[g["status"] != "reached"]
        if len(stuck):
            short.append(f"{key}: {len(stuck)} runs of the paper's algorithm ended {sorted(set(stuck['status']))}")
        elif int(g["budget"].min()) < AMPLE * int(g["K"].max()):
            short.append(f"{key}: budget {int(g['budget'].min())} < {AMPLE} x K = {int(g['K'].max())}")
    assert not short, f"{name}: " + "; ".join(short)


# ---------------------------------------------------------------------- twins on other seeds
#: algorithm roles first: a component called inside an algorithm is covered by that algorithm's twin
ROLES = list(ALGORITHM_ROLES) + sorted(COMPONENTS)
SEEDS = (1, 2, 3, 4)
ANALYTIC = "analytic"


def _twin(role):
    return load_plugin(f"bbplugins.twins:{twins.TWINS[role]}")


def _assignment() -> dict[str, list[str]]:
    """Each claim once per seed: to the first role (in ``ROLES`` order) whose twin reaches it, or to
    ``ANALYTIC`` when none does. The twins are verbatim copies (bitwise equal runs, ``test_audit``), so running
    a claim again under a second role that reaches it would repeat the same numbers."""
    ids = [c.id for c in all_claims()]
    out, seen = {}, set()
    for role in ROLES:
        mine = [c.id for c in plan(ids, Cast([_twin(role)]), reference=False).claims if c.id not in seen]
        out[role] = mine
        seen.update(mine)
    out[ANALYTIC] = [c for c in ids if c not in seen]
    return out


@pytest.fixture(scope="session")
def assignment():
    return _assignment()


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory):
    """One results folder per base seed, shared by the roles' runs: points a twin does not reach (baseline
    arms) are computed once per seed."""
    dirs = {}

    def get(seed):
        if seed not in dirs:
            dirs[seed] = tmp_path_factory.mktemp(f"seed-{seed}")
        return dirs[seed]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("role", ROLES + [ANALYTIC])
def test_twin_violates_no_claim_on_other_seeds(role, seed, seed_dir, assignment):
    ids = assignment[role]
    if not ids:
        pytest.skip(f"every claim {role} reaches is run under an earlier role" if role != ANALYTIC
                    else "every claim runs an algorithm or a component")
    plugins = () if role == ANALYTIC else (_twin(role)[0],)
    verdicts, _ = verify(ids, Env(seed=seed, plugins=plugins), seed_dir(seed), resume=True, progress=False)
    assert sorted(v.id for v in verdicts) == sorted(ids)
    bad = {v.id: f"{v.verdict}: {v.reason[:400]}" for v in verdicts if v.verdict in ("violated", "error")}
    assert not bad, f"twin of {role}, seed {seed}: {bad}"


def test_every_claim_is_assigned_once(assignment):
    ids = [c for v in assignment.values() for c in v]
    assert sorted(ids) == sorted(c.id for c in all_claims())
