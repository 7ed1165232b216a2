"""Sweeps on a real dask.distributed LocalCluster (loopback only, bounded in time)."""

import os
import threading

import pytest

distributed = pytest.importorskip("distributed")

from bilevelbench.bench.distributed import DaskExecutor, probe_measure  # noqa: E402
from bilevelbench.bench.sweep import Env, Point, SweepStore, run_sweep  # noqa: E402
from bilevelbench.cli import main as cli  # noqa: E402


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=40) as c:
        yield c


def _points(n, sleep=0.0):
    return [Point("probe", {"i": i, "sleep": sleep}) for i in range(n)]


def test_local_cluster_equals_local_executor(cluster, tmp_path):
    env = Env(seed=3)
    local = run_sweep(_points(8), probe_measure, env, SweepStore(tmp_path / "a")).frame
    with distributed.Client(cluster) as client:
        dist = run_sweep(_points(8), probe_measure, env, SweepStore(tmp_path / "b"),
                         executor=DaskExecutor(client)).frame
    cols = ["point", "i", "value", "point_seed"]
    assert local[cols].equals(dist[cols])


def test_sweep_survives_a_killed_worker(cluster, tmp_path):
    env = Env(seed=1)
    points = _points(12, sleep=0.3)
    with distributed.Client(cluster) as client:
        ex = DaskExecutor(client)
        gen = ex.run([(probe_measure, p) for p in points], env)
        store = SweepStore(tmp_path)
        done = []
        for i, df in gen:
            assert not isinstance(df, Exception), df
            p = points[i]
            store.write(p, df)
            done.append(p)
            if len(done) == 2:
                # kill one worker process outright (os._exit shortly after the call returns); its tasks
                # are rescheduled elsewhere and the nanny restarts it
                addr = next(iter(client.scheduler_info()["workers"]))
                client.run(lambda: threading.Timer(0.05, os._exit, args=(1,)).start(), workers=[addr])
        assert len(done) == len(points)
    assert all(store.has(p) for p in points)
    # resume: nothing left to compute
    calls = []
    res = run_sweep(points, lambda k, e, s: calls.append(k) or [], env, store, resume=True)
    assert calls == [] and len(res.frame) == len(points) and res.reused == len(points)


def test_bad_scheduler_address_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "o"
    code = cli(["verify", "--claims", "icml21.prop2", "--executor", "dask", "--scheduler", "tcp://127.0.0.1:9",
                "--dask-timeout", "3", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "tcp://127.0.0.1:9" in err[0]
    assert not out.exists()


def test_scheduler_without_workers_exits_2_naming_it(tmp_path, capsys):
    with distributed.LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None, silence_logs=40) as c:
        code = cli(["verify", "--claims", "icml21.prop2", "--executor", "dask", "--scheduler", c.scheduler_address,
                    "--dask-timeout", "2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and c.scheduler_address in err[0] and "no worker" in err[0]


def test_a_verify_run_on_the_cluster_equals_the_local_one(cluster, tmp_path):
    """The engine end to end through Dask (points shipped to worker processes, which import the package
    themselves): the same verdicts and values as a local run."""
    import json

    ids = "icml21.prop2,icml21.thm1.bound"
    assert cli(["verify", "--claims", ids, "--out", str(tmp_path / "local"), "--no-report"]) == 0
    assert cli(["verify", "--claims", ids, "--out", str(tmp_path / "dask"), "--no-report", "--executor", "dask",
                "--scheduler", cluster.scheduler_address]) == 0
    a, b = (json.loads((tmp_path / d / "verdicts.json").read_text()) for d in ("local", "dask"))
    key = ("id", "verdict", "measured", "ci_low", "ci_high")
    assert [[v[k] for k in key] for v in a] == [[v[k] for k in key] for v in b]
