"""Bad usage is one line on stderr and exit 2, and nothing outside the chosen output folder changes (issue 18).

Every flag of ``verify`` and ``report`` has a bad value here, and the public API (``make_problem``,
``algorithms.run``, components, ``verify``) refuses bad arguments with a ValueError/TypeError naming them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an
from bilevelbench.algorithms.components import Component
from bilevelbench.bench.sweep import Env
from bilevelbench.bench.verify import BASELINE_DIR, verify
from bilevelbench.cli import main as cli

REPO = Path(__file__).resolve().parents[2]


def _tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and (skip is None or skip not in p.parents):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture
def guard(tmp_path):
    """Snapshots of everything a bad command must not touch: tmp_path outside 'out', the baselines."""
    out = tmp_path / "out"
    before = (_tree(tmp_path, out), _tree(BASELINE_DIR))
    yield out
    assert (_tree(tmp_path, out), _tree(BASELINE_DIR)) == before


def _bad(argv, needle, capsys):
    code = cli(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, (argv, code, err)
    assert len(err) == 1, err
    assert needle in err[0], (needle, err[0])
    return err[0]


VERIFY_CASES = [
    (["--claims", ""], "--claims"),
    (["--claims", " , "], "--claims"),
    (["--claims", "no.such.claim"], "no.such.claim"),
    (["--claims", "icml21.prop1,bogus.claim"], "bogus.claim"),
    (["--profile", "medium"], "medium"),
    (["--dtype", "float16"], "float16"),
    (["--device", "tpu"], "tpu"),
    (["--seed", "-1"], "--seed"),
    (["--seed", "abc"], "abc"),
    (["--seed", str(2**31)], "--seed"),
    (["--executor", "spark"], "spark"),
    (["--executor", "dask"], "--scheduler"),
    (["--scheduler", "tcp://127.0.0.1:8786"], "--scheduler"),
    (["--force", "--resume"], "--force"),
    (["--baseline", "--write-baseline"], "--baseline"),
    (["--baseline", "--baseline-path", "/nonexistent/base.json"], "/nonexistent/base.json"),
    (["--write-baseline", "--claims", "icml21.prop1"], "--write-baseline"),
    (["--write-baseline", "--dtype", "float32"], "float32"),
    (["--plugin", "no_colon"], "no_colon"),
    (["--plugin", "no_such_module_xyz:THING"], "no_such_module_xyz"),
    (["--plugin", "bilevelbench.algorithms:NOPE"], "NOPE"),
    (["--plugin", "bbplugins.broken_import:X"], "bbplugins.broken_import"),
    (["--plugin", "bbplugins.bad_plugins:NOT_A_PLUGIN"], "NOT_A_PLUGIN"),
    (["--plugin", "bbplugins.bad_plugins:NO_ROLES"], "declares no role"),
    (["--plugin", "bbplugins.bad_plugins:UNKNOWN_ROLE"], "aid-bi0"),
    (["--plugin", "bbplugins.bad_plugins:SEED_NAME"], "itd-bio"),
    (["--plugin", "bbplugins.bad_plugins:MISSING_PARAM", "--claims", "icml21.thm1.bound"], "warm_v"),
    (["--plugin", "bbplugins.twins:TWIN_AID_BIO", "--plugin", "bbplugins.bad_plugins:SECOND_AID"], "aid-bio"),
    (["--plugin", "bbplugins.twins:TWIN_SID", "--claims", "icml21.prop1"], "--all-claims"),
    (["--write-baseline", "--plugin", "bbplugins.twins:TWIN_AID_BIO"], "plug-in"),
    (["--no-such-flag"], "--no-such-flag"),
    (["--dask-timeout", "0"], "--dask-timeout"),
    (["--threads", "0"], "--threads"),
    (["--dask-timeout", "soon"], "soon"),
    (["--jobs", "0"], "--jobs"),
    (["--jobs", "two"], "two"),
    (["--jobs", "2", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:1"], "--jobs"),
]


@pytest.mark.parametrize("extra, needle", VERIFY_CASES, ids=[" ".join(a) or "empty" for a, _ in VERIFY_CASES])
def test_verify_bad_usage_is_one_line_exit_2_and_writes_nothing(extra, needle, guard, capsys):
    _bad(["verify", *extra, "--out", str(guard)], needle, capsys)
    assert not guard.exists()


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1e3"])
def test_a_bad_jobs_variable_is_named(value, guard, capsys, monkeypatch):
    monkeypatch.setenv("BILEVELBENCH_JOBS", value)
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(guard)], "BILEVELBENCH_JOBS", capsys)
    assert not guard.exists()


def test_missing_parameter_names_the_parameter_and_the_claim(guard, capsys):
    line = _bad(["verify", "--plugin", "bbplugins.bad_plugins:MISSING_PARAM", "--claims", "icml21.thm1.bound",
                 "--out", str(guard)], "warm_v", capsys)
    assert "icml21.thm1.bound" in line


def test_out_is_a_file_or_under_a_file(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("mine")
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(f)], str(f), capsys)
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(f / "sub")], str(f / "sub"), capsys)
    assert f.read_text() == "mine"


def test_out_with_an_unwritable_points_folder(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "points").write_text("a file where the points folder goes")
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(out), "--resume"], "points", capsys)


def test_out_with_foreign_report_files_is_not_replaced(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "claims.csv").write_text("my own table")
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(out)], "--force", capsys)
    assert (out / "claims.csv").read_text() == "my own table"


def test_out_with_unfinished_points_needs_resume(tmp_path, capsys):
    out = tmp_path / "o"
    (out / "points").mkdir(parents=True)
    _bad(["verify", "--claims", "icml21.prop2", "--out", str(out)], "--resume", capsys)


@pytest.mark.parametrize("argv, needle", [
    (["report"], "--compare"),
    (["list", "foo"], "foo"),
    (["frobnicate"], "frobnicate"),
    (["list", "claims", "--yaml"], "--yaml"),
])
def test_other_commands_bad_usage(argv, needle, capsys):
    _bad(argv, needle, capsys)


def test_report_without_verdicts_exits_2_and_touches_nothing(tmp_path, capsys):
    d = tmp_path / "r"
    (d / "figures").mkdir(parents=True)
    for i in range(3):
        (d / "figures" / f"f{i}.png").write_bytes(b"png")
    (d / "claims.csv").write_text("id\n")
    before = _tree(tmp_path)
    _bad(["report", str(d)], str(d), capsys)
    _bad(["report", str(tmp_path / "nothing-here")], "nothing-here", capsys)
    _bad(["report", str(d / "claims.csv")], "claims.csv", capsys)
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------------- the public API
def _small():
    return an.make_problem("quadratic", kappa=2.0, dim_x=2, dim_y=2, batch=2)


API_CASES = [
    (lambda: an.make_problem("no-such-family"), ValueError, "no-such-family"),
    (lambda: an.make_problem("quadratic", kappa=0.5), ValueError, "kappa"),
    (lambda: an.make_problem("quadratic", dim_x=0), ValueError, "dim_x"),
    (lambda: an.make_problem("quadratic", batch=0), ValueError, "batch"),
    (lambda: an.make_problem("quadratic", dtype=torch.int32), (TypeError, ValueError), "dtype"),
    (lambda: al.run("no-such-algorithm", _small(), 1), ValueError, "no-such-algorithm"),
    (lambda: al.run("aid-bio", _small(), -1), ValueError, "steps"),
    (lambda: al.run("aid-bio", _small(), 1, alpha=-1.0), ValueError, "alpha"),
    (lambda: al.run("aid-bio", _small(), 1, N="ten"), TypeError, "N"),
    (lambda: al.run("aid-bio", _small(), 1, solver="lu"), ValueError, "solver"),
    (lambda: al.run("aid-bio", _small(), 1, record_every=0), ValueError, "record_every"),
    (lambda: al.run("aid-bio", _small(), 1, backend="jax"), ValueError, "backend"),
    (lambda: al.run("aid-bio", _small(), 1, x0=torch.zeros(2, 3, dtype=torch.float64)), ValueError, "x0"),
    (lambda: al.run("aid-bio", _small(), 1, x0=torch.full((2, 2), float("nan"), dtype=torch.float64)),
     ValueError, "x0"),
    (lambda: al.run("aid-bio", _small(), 1, preset="icml99"), ValueError, "icml99"),
    (lambda: al.run("aid-bio", _small(), 1, components={"solver.cg": 3}), TypeError, "solver.cg"),
    (lambda: al.run("aid-bio", _small(), 1, components={"solver.lu": lambda *a: a}), ValueError, "solver.lu"),
    (lambda: Component("solver.cg", lambda matvec: matvec), TypeError, "solver.cg"),
    (lambda: verify(["no.such.claim"], Env(), Path("/tmp/unused-bb")), ValueError, "no.such.claim"),
]


@pytest.mark.parametrize("call, exc, needle", API_CASES, ids=[str(i) for i in range(len(API_CASES))])
def test_public_api_refuses_bad_arguments_by_name(call, exc, needle):
    with pytest.raises(exc, match=needle.replace(".", r"\.")):
        call()
