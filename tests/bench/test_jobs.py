"""Sweep points and report figures on worker processes (``--jobs``): the same rows, verdicts and files as one
process, a failing point stops only its own sweep, and plug-ins reach the workers."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from bilevelbench.bench.distributed import probe_measure
from bilevelbench.bench.sweep import Env, LocalExecutor, Point, ProcessExecutor, Sweep, SweepStore, run_sweeps
from bilevelbench.cli import main as cli
from bilevelbench.reports.plots import _plain_log_labels

#: columns that measure the machine, not the method: wall-clock seconds and memory
MACHINE_COLUMNS = ["point_seconds", "process_peak_rss_mb", "time"]


def _sweeps(fail_at=None):
    def pts(name, n):
        return [Point(name, {"i": i, **({"fail": True} if (name, i) == fail_at else {})}) for i in range(n)]

    return {"a": Sweep(pts("a", 5), probe_measure), "b": Sweep(pts("b", 4), probe_measure)}


@pytest.mark.parametrize("executor", [LocalExecutor(), ProcessExecutor(2)], ids=["local", "processes"])
def test_worker_processes_give_the_rows_of_one_process(executor, tmp_path):
    env = Env(seed=5)
    ref = run_sweeps(_sweeps(), env, SweepStore(tmp_path / "ref"))
    got = run_sweeps(_sweeps(), env, SweepStore(tmp_path / "got"), executor=executor)
    for name in ("a", "b"):
        assert got[name].error is None and got[name].computed == len(_sweeps()[name].points)
        pd.testing.assert_frame_equal(got[name].frame.drop(columns=MACHINE_COLUMNS[:2]),
                                      ref[name].frame.drop(columns=MACHINE_COLUMNS[:2]), check_exact=True)
    assert len(list((tmp_path / "got" / "points").rglob("*.parquet"))) == 9


@pytest.mark.parametrize("executor", [LocalExecutor(), ProcessExecutor(2)], ids=["local", "processes"])
def test_a_failing_point_stops_its_own_sweep_only(executor, tmp_path):
    outs = run_sweeps(_sweeps(fail_at=("a", 1)), Env(), SweepStore(tmp_path), executor=executor)
    assert isinstance(outs["a"].error, RuntimeError) and "probe point 1 fails" in str(outs["a"].error)
    assert outs["b"].error is None and outs["b"].computed == 4 and len(outs["b"].frame) == 4
    # the failed sweep's finished points are on disk, and no more: in one process, point 0 ran and 2-4 were
    # skipped; on workers, the points already running or done when the failure arrived finish (at most 4)
    stored_a = len(list((tmp_path / "points" / "a").glob("*.parquet")))
    assert stored_a == outs["a"].computed
    assert outs["a"].computed == 1 if isinstance(executor, LocalExecutor) else outs["a"].computed <= 4


def test_a_dead_worker_is_an_error_of_its_sweeps_not_a_hang(tmp_path):
    """A worker killed mid-point (as by the OOM killer) fails the sweeps whose points were lost with
    BrokenProcessPool; the points finished before are on disk."""
    sweeps = {"a": Sweep([Point("a", {"i": i}) for i in range(3)], probe_measure),
              "b": Sweep([Point("b", {"i": 0, "sleep": 0.5, "die": True})], probe_measure)}
    outs = run_sweeps(sweeps, Env(), SweepStore(tmp_path), executor=ProcessExecutor(2))
    assert type(outs["b"].error).__name__ == "BrokenProcessPool"
    assert outs["a"].computed == 3 or outs["a"].error is not None
    assert len(list((tmp_path / "points").rglob("*.parquet"))) == outs["a"].computed


def _machine_free(out):
    df = pd.read_parquet(out / "results.parquet")
    return df.drop(columns=[c for c in MACHINE_COLUMNS if c in df]).reset_index(drop=True)


def test_verify_on_workers_equals_one_process_with_a_plugin(tmp_path, capsys):
    """The CLI with --jobs 2 (a plug-in imported by each worker) gives the rows, verdicts and report files of
    --jobs 1, and records its memory per process."""
    runs = {}
    for jobs in (1, 2):
        out = tmp_path / f"j{jobs}"
        code = cli(["verify", "--claims", "icml21.prop2,icml21.thm2.rates", "--out", str(out), "--jobs", str(jobs),
                    "--plugin", "bbplugins.twins:TWIN_ITD_HYPERGRADIENT"])
        assert code == 0, capsys.readouterr().err
        runs[jobs] = out
    pd.testing.assert_frame_equal(_machine_free(runs[2]), _machine_free(runs[1]), check_exact=True)
    v1, v2 = (json.loads((runs[j] / "verdicts.json").read_text()) for j in (1, 2))
    strip = ("details",)
    assert [{k: v for k, v in d.items() if k not in strip} for d in v1] == \
        [{k: v for k, v in d.items() if k not in strip} for d in v2]
    figs = sorted(p.name for p in (runs[1] / "figures").iterdir())
    assert figs and figs == sorted(p.name for p in (runs[2] / "figures").iterdir())
    for name in figs:
        assert (runs[1] / "figures" / name).read_bytes() == (runs[2] / "figures" / name).read_bytes(), name
    env = json.loads((runs[2] / "environment.json").read_text())
    assert env["jobs"] == 2 and env["peak_rss_worker_mb"] > 0
    # the sampled peak of the process tree holds this process and a worker at least
    assert env["peak_pss_total_mb"] >= max(env["peak_rss_mb"], env["peak_rss_worker_mb"])
    assert json.loads((runs[1] / "environment.json").read_text())["peak_rss_worker_mb"] is None


def test_log_labels_are_plain_text():
    """The report's log axes carry matplotlib's labels, as Unicode text rather than mathtext."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    ax = fig.add_subplot()
    ax.set_yscale("log")
    ax.set_ylim(1e-3, 1e2)
    ax.set_xscale("log")
    ax.set_xlim(0.15, 0.7)
    _plain_log_labels(fig)
    FigureCanvasAgg(fig).draw()
    y = {t.get_text() for t in ax.get_yticklabels()}
    x = {t.get_text() for t in ax.get_xticklabels(which="both")}
    assert {"10\u207b\u00b3", "10\u2070", "10\u00b2"} <= y, y
    assert "2\u00d710\u207b\u00b9" in x, x
    assert not any("$" in t for t in x | y)
