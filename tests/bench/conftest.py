"""One quick-profile results folder per test session: every claim test and the rate regression resume
from it, so each sweep point runs once (the runs are deterministic, so sharing changes no number).

``tests/`` is put on sys.path so that the plug-ins of the audit tests (``bbplugins``) import by name, as a
user's ``--plugin module:attr`` does."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bilevelbench.bench.sweep import Env
from bilevelbench.bench.verify import verify


@pytest.fixture(scope="session")
def quick_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("quick-profile")


@pytest.fixture(scope="session")
def run_quick(quick_dir):
    """run_quick(ids) -> (verdicts, results) on the quick profile, sharing finished sweep points."""

    def run(ids):
        return verify(list(ids), Env(profile="quick"), quick_dir, resume=True, progress=False)

    return run
