"""Sweeps beyond one machine: a Dask executor for the sweep runner (``verify --executor dask``).

Each sweep point is one task (``sweep.measure_point``), so a point's result does not depend on where or
when it runs (its seed comes from the sweep seed and the point's key). Tasks are submitted with Dask's
``retries``, so a task whose worker dies is rerun elsewhere; results are yielded as they complete and
the sweep runner writes each one atomically at once, so an interrupted distributed sweep resumes with
``--resume`` and loses nothing.
"""

from __future__ import annotations

import os
import time

from .sweep import Env, measure_point

__all__ = ["DaskExecutor", "dask_executor", "probe_measure"]


class DaskExecutor:
    """Runs sweep points on a ``distributed.Client`` (any Dask cluster; a LocalCluster on one machine)."""

    def __init__(self, client, retries: int = 3):
        self.client = client
        self.retries = retries

    def run(self, tasks, env: Env, skip=lambda i: False):
        """Each task's rows or exception as it completes (``sweep.run_sweeps``); a PluginError propagates;
        after a failure, the queued tasks for which ``skip(i)`` holds are cancelled."""
        from distributed import as_completed

        from .roles import PluginError

        futures = {}
        for i, (measure, p) in enumerate(tasks):
            if skip(i):
                continue
            fut = self.client.submit(measure_point, measure, p, env, retries=self.retries, pure=False,
                                     key=f"bilevelbench-{p.experiment}-{p.digest}-{time.monotonic_ns()}")
            futures[fut] = i
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                if skip(i):
                    continue
                try:
                    res = fut.result()
                except PluginError:
                    raise
                except Exception as exc:  # the point's own failure, reported to its sweep
                    yield i, exc
                    for f, j in futures.items():
                        if not f.done() and skip(j):
                            f.cancel()
                    continue
                yield i, res
        finally:
            self.client.cancel([f for f in futures if not f.done()])


def dask_executor(address: str | None, timeout: float = 30.0, workers_timeout: float = 60.0) -> DaskExecutor:
    """Connect to the scheduler at ``address`` (within ``timeout`` seconds) and wait up to
    ``workers_timeout`` seconds for at least one worker; raise ValueError naming the address otherwise."""
    if not address:
        raise ValueError("--executor dask needs --scheduler ADDRESS (e.g. tcp://127.0.0.1:8786)")
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ValueError("--executor dask needs the 'distributed' package") from exc
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"--scheduler {address!r}: cannot connect to a Dask scheduler there within {timeout:g} s "
                         f"({type(exc).__name__})") from None
    try:
        client.wait_for_workers(1, timeout=workers_timeout)
    except (OSError, TimeoutError) as exc:
        client.close()
        raise ValueError(f"--scheduler {address!r}: the scheduler has no worker after {workers_timeout:g} s; start "
                         f"one with 'dask worker {address}' ({type(exc).__name__})") from None
    return DaskExecutor(client)


def probe_measure(key: dict, env: Env, seed: int) -> list[dict]:
    """A cheap deterministic measurement for testing executors: sleeps ``key['sleep']`` seconds and
    returns a value computed from the key and seed only; raises RuntimeError where ``key['fail']``, and ends
    its process at once (as the kernel's OOM killer would) where ``key['die']``."""
    time.sleep(float(key.get("sleep", 0.0)))
    if key.get("die"):
        os._exit(17)
    if key.get("fail"):
        raise RuntimeError(f"probe point {key['i']} fails as asked")
    return [{"i": key["i"], "value": (seed * 2654435761 + key["i"]) % 1_000_003}]
