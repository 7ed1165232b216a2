"""The sweep runner: sweep points through an executor, each finished point written atomically.

A sweep point is one experiment at one grid point (e.g. kappa = 4 with R seeds batched). It is identified
by a **digest** of everything that changes its numbers: the experiment's name and typed key, and the run's
settings (dtype, device, base seed, profile, bilevelbench and torch versions, and the identity of every
plug-in whose roles the experiment reaches: module, attribute, SHA-256 of its source). Its rows are written
to ``OUT/points/<experiment>/<digest>.parquet`` as soon as it finishes (a temporary file renamed into place,
atomic on POSIX), so an interrupted sweep loses at most the points in flight. ``--resume`` reuses a point
only when a file with its digest exists, reads and validates (same settings, the experiment's columns);
everything else is recomputed, and a file that fails to read or validate is recomputed with a warning
naming it. Each point's seed is derived from the base seed and the point's experiment and key only, so
results never depend on scheduling (local or distributed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Point", "Env", "SweepStore", "LocalExecutor", "ProcessExecutor", "make_executor", "usable_cpus",
           "worker_context", "Sweep", "SweepOutcome", "run_sweep", "run_sweeps", "point_seed", "versions", "canon",
           "measure_point"]


def canon(obj) -> str:
    """Canonical JSON (sorted keys, no spaces): the form every digest and seed hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _plain(key) -> dict:
    return dataclasses.asdict(key) if dataclasses.is_dataclass(key) else dict(key)


def point_seed(base_seed: int, experiment: str, key) -> int:
    """Seed of a sweep point: a hash of (base seed, experiment, key), independent of scheduling."""
    h = hashlib.sha256(f"{base_seed}|{experiment}|{canon(_plain(key))}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def versions() -> dict[str, str]:
    import numpy
    import torch

    import bilevelbench

    return {"bilevelbench": bilevelbench.__version__, "torch": torch.__version__, "numpy": numpy.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


@dataclass(frozen=True)
class Env:
    """Where and how a sweep runs: device, dtype, base seed, profile and the plug-ins (``roles.PluginSpec``)
    that replace roles of the paper's algorithms."""

    device: str = "cpu"
    dtype: str = "float64"
    seed: int = 0
    profile: str = "quick"
    plugins: tuple = ()
    #: torch intra-op threads per sweep point: the sweeps' tensors are small, and on a few cores one thread
    #: runs them several times faster than two (dispatch and synchronisation dominate); in the digest,
    #: because a reduction split over threads can change the round-off
    threads: int = 1
    #: the algorithms' compiled outer step (``algorithms.compiled``): 'auto' (runs long enough to pay for a
    #: graph), True or False. In the digest, as ``threads`` is: the compiled kernels sum in other orders, so a
    #: step differs from the eager one at round-off, and a method that amplifies round-off (warm-started CG
    #: with Q < d, ``solvers.cg``) drifts from the eager run geometrically over many steps (both accurate);
    #: counts are identical (tests/algorithms/test_compiled.py)
    compile: bool | str = "auto"

    def torch_dtype(self):
        import torch

        return {"float64": torch.float64, "float32": torch.float32}[self.dtype]

    def settings(self, reach: Iterable[str] = ()) -> dict[str, Any]:
        """Everything besides the key that changes a point's numbers, for an experiment reaching ``reach``."""
        from .roles import cast_for

        v = versions()
        return {"dtype": self.dtype, "device": self.device, "seed": self.seed, "profile": self.profile,
                "threads": self.threads, "compile": self.compile,
                "versions": {"bilevelbench": v["bilevelbench"], "torch": v["torch"]},
                "plugins": cast_for(self).identity(reach)}


@dataclass(frozen=True)
class Point:
    """One sweep point: ``experiment`` (its registered name), ``key`` (a typed key dataclass or a JSON-able
    dict) and the canonical JSON of the run's ``settings`` (see :meth:`Env.settings`)."""

    experiment: str
    key: Any
    settings: str = "{}"

    @property
    def key_json(self) -> str:
        return canon(_plain(self.key))

    @property
    def digest(self) -> str:
        return hashlib.sha256(f"{self.experiment}|{self.key_json}|{self.settings}".encode()).hexdigest()[:20]

    def seed(self, base_seed: int) -> int:
        return point_seed(base_seed, self.experiment, self.key)


#: columns every stored point carries besides the experiment's own
META_COLUMNS = ("experiment", "point", "point_key", "point_seed", "settings", "device", "dtype", "profile",
                "versions", "point_seconds", "process_peak_rss_mb")


class SweepStore:
    """Finished sweep points on disk, one parquet file per point (written atomically)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.root = Path(out_dir) / "points"

    def path(self, point: Point) -> Path:
        return self.root / point.experiment / f"{point.digest}.parquet"

    def has(self, point: Point) -> bool:
        return self.path(point).exists()

    def write(self, point: Point, rows: pd.DataFrame) -> None:
        path = self.path(point)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".parquet", dir=path.parent)
        os.close(fd)
        try:
            rows.to_parquet(tmp, index=False)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def read(self, point: Point, columns: Iterable[str] = ()) -> pd.DataFrame:
        """The stored rows of ``point``; ValueError when the file does not hold this point's settings and
        the expected ``columns``."""
        df = pd.read_parquet(self.path(point))
        if df.empty:
            raise ValueError("no rows")
        if "settings" not in df or set(df["settings"]) != {point.settings}:
            raise ValueError("written with other settings")
        if "point_key" not in df or set(df["point_key"]) != {point.key_json}:
            raise ValueError("written for another key")
        missing = sorted(set(columns) - set(df.columns))
        if missing:
            raise ValueError(f"missing columns {missing}")
        return df

    def clear_partial(self) -> None:
        """Remove temporary files an interrupted run may have left (never finished points)."""
        if self.root.exists():
            for tmp in self.root.rglob(".tmp-*"):
                tmp.unlink()


def _rows_frame(point: Point, rows: list, env: Env, seed: int) -> pd.DataFrame:
    df = pd.DataFrame([dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in rows])
    df.insert(0, "experiment", point.experiment)
    df.insert(1, "point", point.digest)
    df["point_key"] = point.key_json
    df["point_seed"] = seed
    df["settings"] = point.settings
    df["device"] = env.device
    df["dtype"] = env.dtype
    df["profile"] = env.profile
    df["versions"] = canon(versions())
    return df


def measure_point(measure: Callable, point: Point, env: Env) -> pd.DataFrame:
    """Run one point (also the unit of work a distributed executor ships)."""
    import torch

    from ..algorithms.compiled import using

    seed = point.seed(env.seed)
    before = torch.get_num_threads()
    torch.set_num_threads(env.threads)
    t0 = time.perf_counter()
    try:
        with using(env.compile):
            rows = measure(point.key, env, seed)
    finally:
        torch.set_num_threads(before)
    df = _rows_frame(point, rows, env, seed)
    df["point_seconds"] = time.perf_counter() - t0  # what the point cost: for sizing profiles, not for verdicts
    df["process_peak_rss_mb"] = peak_rss_mb()  # of the process that ran it, up to its end (worker or this one)
    return df


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (NaN where the platform does not say)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return float("nan")
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if platform.system() != "Darwin" else kb / 2**20


class LocalExecutor:
    """Runs sweep points one after another in this process (the default of the Python API)."""

    def run(self, tasks: list[tuple[Callable, Point]], env: Env,
            skip: Callable[[int], bool] = lambda i: False) -> Iterator[tuple[int, pd.DataFrame | Exception]]:
        """Each task's rows, or the exception its point raised, in task order; a task for which ``skip(i)``
        holds when its turn comes is not run."""
        for i, (measure, p) in enumerate(tasks):
            if skip(i):
                continue
            try:
                yield i, measure_point(measure, p, env)
            except Exception as exc:  # reported to its sweep; a PluginError or an interrupt still propagates
                if isinstance(exc, _fatal()):
                    raise
                yield i, exc


def _fatal() -> tuple[type, ...]:
    from .roles import PluginError

    return (PluginError,)


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, else ``os.cpu_count()``)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: what each worker process imports once, in the fork server it is forked from (the sweeps' and the report's)
_PRELOAD = ("torch", "bilevelbench.bench.sweep", "bilevelbench.bench.experiments._preload",
            "bilevelbench.reports.plots")


def worker_context():
    """The ``multiprocessing`` context of bilevelbench's worker processes (sweep points, report figures):
    'forkserver', its server started now with ``_PRELOAD`` imported. Forking from that server, started
    without threads, a worker starts in milliseconds with torch and the experiments loaded, and never
    inherits a parent's OpenMP or BLAS thread state (forking a process that ran torch's threads can hang)."""
    import multiprocessing
    from multiprocessing import forkserver

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(list(_PRELOAD))
    forkserver.ensure_running()  # the server imports while this process goes on
    return ctx


class ProcessExecutor:
    """Runs sweep points on ``jobs`` worker processes of this machine (``worker_context``), one point per task.

    The points of a sweep are independent and each runs at ``Env.threads`` (1) torch threads, so on a
    machine of C cores C workers take about 1/C of the time of one process (the sweeps' tensors are too
    small for torch's intra-op threads to pay). Results do not depend on the executor: a point's seed
    comes from the base seed and its key, and its numbers from its own process. A worker that dies (killed,
    out of memory) fails its point and every point still queued with ``BrokenProcessPool``: those sweeps end
    in ``error``; finished points are already on disk.
    """

    def __init__(self, jobs: int):
        if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
            raise ValueError(f"jobs={jobs!r}: expected an integer >= 1")
        self.jobs = jobs
        self._ctx = worker_context()

    def run(self, tasks: list[tuple[Callable, Point]], env: Env,
            skip: Callable[[int], bool] = lambda i: False) -> Iterator[tuple[int, pd.DataFrame | Exception]]:
        """Each task's rows or exception as it completes; queued tasks for which ``skip(i)`` holds after a
        failure are cancelled."""
        import sys
        from concurrent.futures import ProcessPoolExecutor, as_completed

        # the fork server's sys.path is this process's when it started; plug-ins may have extended it since
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, max(1, len(tasks))), mp_context=self._ctx,
                                   initializer=_worker_init, initargs=(list(sys.path),))
        clean = False
        try:
            futures = {pool.submit(measure_point, m, p, env): i for i, (m, p) in enumerate(tasks) if not skip(i)}
            for fut in as_completed(futures):
                i = futures[fut]
                if fut.cancelled() or skip(i):
                    continue
                exc = fut.exception()
                if exc is None:
                    yield i, fut.result()
                    continue
                if isinstance(exc, _fatal()):
                    raise exc
                yield i, exc
                for f, j in futures.items():
                    if not f.done() and skip(j):
                        f.cancel()
            clean = True
        finally:
            # on an interrupt or a fatal error, the points in flight are abandoned (never written): stop them
            if not clean:
                for proc in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before 3.14
                    proc.terminate()
            pool.shutdown(wait=clean, cancel_futures=not clean)


def _worker_init(path: list[str]) -> None:
    """A sweep worker: this process's sys.path (plug-ins may have extended it); Ctrl-C is the parent's to
    handle (it stops the pool), so the worker ignores SIGINT instead of dying with a traceback."""
    import signal
    import sys

    sys.path[:] = path
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_executor(jobs: int):
    """The local executor for ``jobs`` processes: this process for 1, worker processes for more."""
    return LocalExecutor() if jobs == 1 else ProcessExecutor(jobs)


@dataclass
class SweepOutcome:
    """All rows of a sweep and what the run did: points reused from disk, computed, and unreadable files;
    ``error``: the exception that stopped the sweep (``run_sweeps`` only; ``run_sweep`` raises it)."""

    frame: pd.DataFrame
    reused: int = 0
    computed: int = 0
    invalid: list[str] = field(default_factory=list)
    error: Exception | None = None


@dataclass
class Sweep:
    """One experiment's sweep for :func:`run_sweeps`: its points, ``measure(key, env, seed)`` and its row
    ``columns`` (checked when a stored point is read)."""

    points: list[Point]
    measure: Callable
    columns: tuple[str, ...] = ()


def run_sweeps(sweeps: dict[str, Sweep], env: Env, store: SweepStore | None, executor=None, resume: bool = False,
               progress=None) -> dict[str, SweepOutcome]:
    """Run every point of every sweep not already on disk (with ``resume``), all through one executor, so
    that points of different experiments run side by side; write each as it finishes; return each sweep's
    rows in its points' order.

    A point that raises stops its own sweep (its outcome's ``error``; its queued points are cancelled) and
    no other. ``progress`` is a tqdm-like object whose ``update(1)`` is called per finished point.
    """
    executor = executor or LocalExecutor()
    outs = {name: SweepOutcome(pd.DataFrame()) for name in sweeps}
    frames: dict[str, dict[str, pd.DataFrame]] = {name: {} for name in sweeps}
    tasks, owner = [], []
    for name, sw in sweeps.items():
        for p in sw.points:
            if resume and store is not None and store.has(p):
                try:
                    frames[name][p.digest] = store.read(p, sw.columns)
                    outs[name].reused += 1
                    if progress is not None:
                        progress.update(1)
                    continue
                except Exception as exc:  # unreadable or foreign file: recompute it, say which
                    path = str(store.path(p))
                    outs[name].invalid.append(path)
                    warnings.warn(f"recomputing sweep point {path}: the stored file is unusable ({exc})",
                                  UserWarning, stacklevel=2)
            tasks.append((sw.measure, p))
            owner.append(name)

    def failed(i: int) -> bool:
        return outs[owner[i]].error is not None

    for i, res in executor.run(tasks, env, skip=failed):
        name, p = owner[i], tasks[i][1]
        if isinstance(res, Exception):
            outs[name].error = res
            continue
        if store is not None:
            store.write(p, res)
        frames[name][p.digest] = res
        outs[name].computed += 1
        if progress is not None:
            progress.update(1)
    for name, sw in sweeps.items():
        ordered = [frames[name][p.digest] for p in sw.points if p.digest in frames[name]]
        outs[name].frame = pd.concat(ordered, ignore_index=True) if ordered else pd.DataFrame()
    return outs


def run_sweep(points: Iterable[Point], measure: Callable, env: Env, store: SweepStore | None,
              executor=None, resume: bool = False, progress=None, columns: Iterable[str] = ()) -> SweepOutcome:
    """One sweep (see :func:`run_sweeps`); raises the exception of a point that failed.

    ``measure(key, env, seed) -> list[Row | dict]`` runs one point; ``columns``: the experiment's row
    columns, checked when a stored point is read.
    """
    out = run_sweeps({"": Sweep(list(points), measure, tuple(columns))}, env, store, executor, resume,
                     progress)[""]
    if out.error is not None:
        raise out.error
    return out
