"""Shared fixtures and tolerances of the bilevelbench test-suite.

Under pytest-xdist (``python -m pytest -n 2``, the README's command) each worker keeps to one torch thread:
two workers of two threads each on two cores would oversubscribe them. Each worker has its own session, so
each computes the quick-profile points its tests ask for.

One quick-profile results folder per test session: every claim test, the rate regression and the report
tests resume from it, so each sweep point runs once (the runs are deterministic, so sharing changes no
number)."""

import os

import pytest
import torch

#: float64 unit round-off
EPS64 = torch.finfo(torch.float64).eps

if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
#: the CLI's default --jobs is every usable CPU; tests already run side by side (xdist), so each command runs its
#: points in its own process unless a test asks for workers (tests/bench/test_jobs.py does)
os.environ.setdefault("BILEVELBENCH_JOBS", "1")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker gpu); none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def quick_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("quick-profile")


@pytest.fixture(scope="session")
def run_quick(quick_dir):
    """run_quick(ids) -> (verdicts, results) on the quick profile, sharing finished sweep points."""
    from bilevelbench.bench.sweep import Env
    from bilevelbench.bench.verify import verify

    def run(ids):
        return verify(list(ids), Env(profile="quick"), quick_dir, resume=True, progress=False)

    return run
