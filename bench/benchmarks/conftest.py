"""Fixtures of the pytest-benchmark suite (``pytest bench --benchmark-only`` from the repository root).

Every benchmark times a device-synchronised callable (``bench.memory.synchronized``) with pedantic
rounds after untimed warm-up rounds, asserts the value it returns, and stores oracle counts, device, R
and d in ``extra_info``. Benchmarks marked ``gpu`` (or taking the ``cuda`` fixture) skip without CUDA.
Problems are built once per session (``problems``): building batches of random orthogonal matrices costs
more than most of what is timed.
"""

from __future__ import annotations

import copy

import pytest
import torch

from bilevelbench.algorithms.base import Context, get, resolve_params
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.analytic import make_problem
from bilevelbench.analytic.rng import as_streams
from bilevelbench.bench.memory import synchronized

#: rounds and warm-up of the pedantic benchmarks: a warm-up round absorbs first-call costs (allocator,
#: lazy initialisation); 5 timed rounds keep the default run of the suite within a few minutes
ROUNDS, WARMUP = 5, 1

#: the peer benchmark's default configuration (benchopt's bilevel benchmark: d = 100, batch 64, 10 inner steps,
#: 10 Neumann steps, float64), per algorithm: (problem family, parameters). stocBiO: Q = 10 Hessian batches of
#: 64 (B = 6.4 with mu -> 0 in the schedule, so ceil(B Q (1 - eta mu)^(j-1)) = 64); BSA: N = 10 SGD steps,
#: b = 11 Neumann terms (p uniform on {0..10} Hessian batches of 64); TTSA: one SGD step, the same estimator;
#: AID-BiO: N = 10 GD steps, Q = 10 CG steps; ITD-BiO: N = 10 GD steps. n_f = n_g = 128 samples (the cost of an
#: iteration does not depend on n)
PEER_D, PEER_N = 100, 128
PEER = {
    "stocbio": ("stochastic-quadratic", dict(S=64, D_f=64, D_g=64, N=10, Q=10, B=6.4, mu=1e-12)),
    "bsa": ("stochastic-quadratic", dict(S=64, D_f=64, D_g=64, N=10, schedule="constant", b=11, B=64)),
    "ttsa": ("stochastic-quadratic", dict(S=64, D_f=64, D_g=64, b=11, B=64)),
    "aid-bio": ("quadratic", dict(N=10, Q=10)),
    "itd-bio": ("quadratic", dict(N=10)),
}


def peer_problem(problems, name: str):
    """The peer configuration's problem for ``name`` (d = 100; n = 128 samples for the stochastic ones)."""
    family = PEER[name][0]
    if family == "quadratic":
        return problems(family, dim_x=PEER_D, dim_y=PEER_D)
    return problems(family, dim_x=PEER_D, dim_y=PEER_D, n_f=PEER_N, n_g=PEER_N)


#: tensors of the quadratic family with the instance dimension first (sliced by ``sub_batch``)
_QUADRATIC_DATA = ("A", "A_inv", "B", "_AB", "c", "x_opt", "e")


#: seconds a benchmark may run (pytest-timeout, a dev dependency): the slowest takes ~25 s on this 2-core machine
#: under load (a graph built on a cold inductor cache), so a benchmark past this is stuck, not slow
TIMEOUT_S = 150


def pytest_collection_modifyitems(config, items):
    if config.pluginmanager.hasplugin("timeout"):
        for item in items:
            if item.get_closest_marker("timeout") is None:
                item.add_marker(pytest.mark.timeout(TIMEOUT_S))
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (marker gpu); none on this machine")
    for item in items:
        if "gpu" in item.keywords or "cuda" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture
def cuda():
    """The CUDA device (tests taking it are skipped without one)."""
    return torch.device("cuda")


def sub_batch(problem, lo: int, hi: int | None = None):
    """Instances lo..hi-1 of a batched ``quadratic`` problem as a problem sharing its data (views; the
    constants are those of the whole batch, so default parameters are equal). ``hi=None``: instance lo
    alone, unbatched-shaped (R = 1). Building 256 instances of d = 256 takes seconds; slicing is free."""
    out = copy.copy(problem)
    hi_ = lo + 1 if hi is None else hi
    for name in _QUADRATIC_DATA:
        setattr(out, name, getattr(problem, name)[lo:hi_])
    out.batch = None if hi is None else hi_ - lo
    return out


class ProblemCache:
    """make_problem with memoisation over the session."""

    def __init__(self):
        self._cache = {}

    def __call__(self, name: str, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in self._cache:
            self._cache[key] = make_problem(name, **kwargs)
        return self._cache[key]

    def instances(self, problem, n: int) -> list:
        """Instances 0..n-1 of ``problem`` as unbatched problems (``BilevelProblem.instance``), memoised."""
        key = ("instances", id(problem), n)
        if key not in self._cache:
            self._cache[key] = [problem.instance(r) for r in range(n)]
        return self._cache[key]


@pytest.fixture(scope="session")
def problems():
    return ProblemCache()


def make_context(name: str, problem, seed: int = 0, steps: int = 100, preset: str | None = None, **params):
    """(algorithm, Context, initial state) for one algorithm on ``problem``, parameters resolved (defaults <
    ``preset`` < ``params``) and validated as ``algorithms.run`` does (for timing single outer iterations
    without the driver)."""
    algo = get(name)
    values = resolve_params(algo, problem, preset, params)
    x0 = torch.zeros(problem.R, problem.dim_x, dtype=problem.dtype, device=problem.device)
    y0 = torch.zeros(problem.R, problem.dim_y, dtype=problem.dtype, device=problem.device)
    ctx = Context(oracle=CountedOracle(problem), params=values, streams=as_streams(seed, problem.R, problem.device),
                  x0=x0, y0=y0, steps=steps, inference=True)  # the driver's setting for the closed-form backend
    return algo, ctx, algo.init(ctx)


def counts_of(oracle: CountedOracle, fn):
    """(fn(), the oracle counts that one call of fn spent) - counts per instance, Definition 2."""
    before = oracle.counts.as_dict()
    out = fn()
    return out, {k: v - before[k] for k, v in oracle.counts.as_dict().items()}


@pytest.fixture
def timed(benchmark):
    """timed(fn, device, **info) -> fn's result: pedantic rounds of the synchronised fn after warm-up,
    ``info`` (counts, device, R, d, ...) stored in extra_info."""

    def run(fn, device, *, rounds: int = ROUNDS, warmup: int = WARMUP, **info):
        benchmark.extra_info.update({"device": str(device), **info})
        return benchmark.pedantic(synchronized(fn, device), rounds=rounds, warmup_rounds=warmup, iterations=1)

    return run
