"""Tests of the compiled outer step (``algorithms/compiled.py``): draws, counts and results against the eager step.

Two compiler backends are used. ``eager`` (Dynamo traces the step into one graph, which then runs the same
ATen kernels in the same order as the eager step) must reproduce the eager run **bitwise**: it checks the whole
machinery of the compiled step (draws made ahead, the replay oracle and streams, counts charged from
structure, the state rebuilt from the graph's outputs) without the cost of generating kernels, so it runs in
the default test run. ``inductor`` (the backend runs use: fused C++ kernels) sums in other orders, so it is
compared within the round-off bound ``_roundoff_tol``; those tests build C++ kernels (~20 s each on a cold
cache) and are marked ``slow``.

Sizes are small (d = 6..10, batches of 4..8, R = 2 instances so that per-instance counts and idle masks are
exercised); seeds are fixed, not chosen.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from bilevelbench.algorithms import compiled, run
from bilevelbench.algorithms.base import Context, get, resolve_params
from bilevelbench.algorithms.compiled import SPECS, CompileFallbackWarning, stepper, support
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.analytic import make_problem
from bilevelbench.analytic.rng import Streams, as_streams

EPS64 = torch.finfo(torch.float64).eps
KINDS = ("gc_f", "gc_g", "jv", "hv", "mv", "samples_f", "samples_g")
STEPS = 12


def _stoch(d=6, n=16, R=2):
    return make_problem("stochastic-quadratic", dim_x=d, dim_y=d, n_f=n, n_g=n, batch=R, seed=3)


def _quad(d=6, R=2):
    return make_problem("quadratic", dim_x=d, dim_y=d, batch=R, seed=3)


#: name -> (problem builder, params, P): P bounds the reductions one step chains (inner steps + solver steps
#: + the outer gradient, the cross term and the x update), the depth that enters ``_roundoff_tol``
CASES = {
    "stocbio": (_stoch, dict(S=4, D_f=4, D_g=4, N=3, Q=3), 3 + 3 + 3),
    "stocbio-noreplace": (_stoch, dict(S=4, D_f=4, D_g=4, N=3, Q=3, replace=False), 3 + 3 + 3),
    "bsa": (_stoch, dict(S=4, D_f=4, D_g=4, N=3, schedule="constant", b=4, B=4), 3 + 3 + 3),
    "ttsa": (_stoch, dict(S=4, D_f=4, D_g=4, b=4, B=4, step_rule="decaying"), 1 + 3 + 3),
    "aid-bio": (_quad, dict(N=3, Q=3, solver="gd"), 3 + 3 + 3),
    # warm-started CG with Q < d is not round-off stable across restarts (``solvers.cg``: runs that differ at
    # round-off drift apart geometrically, both accurate), so it is compared with Q = d, where each solve is
    # exact up to round-off; Q < d is covered bitwise by the traced test
    "aid-bio-cg": (_quad, dict(N=3, Q=6), 3 + 6 + 3),
    "itd-bio": (_quad, dict(N=3), 3 + 3 + 3),
    # a batch of one: the shape at which inductor's in-place buffers miscompiled the inner loop
    # (``compiled.INDUCTOR_OPTIONS``)
    "itd-bio-r1": (lambda: _quad(d=20, R=None), dict(N=3), 3 + 3 + 3),
}
#: traced-only case (bitwise against eager): AID-BiO's default warm-started CG with Q < d
TRACED = {"aid-bio-q3": (_quad, dict(N=3, Q=3), 3 + 3 + 3)}


def _algo(case: str) -> str:
    return case.removesuffix("-noreplace").removesuffix("-cg").removesuffix("-q3").removesuffix("-r1")


def _run(case: str, mode, steps: int = STEPS):
    build, params, _ = {**CASES, **TRACED}[case]
    return run(_algo(case), build(), steps, generator=5, compile=mode, **params)


def _roundoff_tol(case: str, steps: int, scale: float) -> float:
    """Bound on |compiled - eager| after ``steps`` steps (float64).

    Each entry a step computes is a chain of at most P reductions of at most m terms (m = the largest of d and
    the batch); evaluating a reduction in another order (or with fused multiply-adds) changes it by at most
    gamma_m sum |terms| <= m eps |terms| (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed.,
    eq. (3.5): |fl(x'y) - x'y| <= gamma_m |x|'|y|, gamma_m = m u / (1 - m u), u = eps/2; both evaluations
    round, hence 2 gamma_m ~ m eps). On these instances the data are O(1) (unit-norm samples, curvature <= L),
    so |terms| <= scale, the largest entry of the state. The steps (1/L-sized) are non-expansive, so the
    differences of successive steps add: steps * P * m * eps * scale."""
    build, params, P = CASES[case]
    p = build()
    m = max(p.dim_y, p.dim_x, *(v for k, v in params.items() if k in ("S", "D_f", "D_g", "B")))
    return steps * P * m * EPS64 * max(1.0, scale)


@pytest.fixture
def eager_backend(monkeypatch):
    """Graphs traced by Dynamo and run with the eager kernels (``compiled.BACKEND``)."""
    monkeypatch.setattr(compiled, "BACKEND", "eager")


# ---------------------------------------------------------------------------------------------- draws
@pytest.mark.parametrize("sizes", [(1, 3), (3, 40)])
def test_integers_ahead_equals_one_by_one(sizes):
    """integers_ahead is bitwise the sequence of integers() calls, and leaves the counter where they do; the
    mix covers both widths paths of the CPU hash (few numbers in Python integers, many in NumPy), with and
    without replacement, and repeated widths hashed together."""
    R, big = sizes
    calls = [(7, 1, True), (16, 5, True), (big + 4, big, False), (100, big, True), (16, 5, True), (3, 3, False),
             (1, 4, True), (16, 0, True)]
    one, ahead = Streams(list(range(10, 10 + R))), Streams(list(range(10, 10 + R)))
    one.counter = ahead.counter = 17
    want = [one.integers(h, s, rep) for h, s, rep in calls]
    got = ahead.integers_ahead(calls)
    assert ahead.counter == one.counter
    for w, g in zip(want, got, strict=True):
        assert w.dtype == g.dtype and torch.equal(w, g)
    # and the streams go on identically afterwards
    assert torch.equal(one.integers(50, 9), ahead.integers(50, 9))


def test_integers_ahead_rejects_invalid_calls():
    with pytest.raises(ValueError):
        Streams([0]).integers_ahead([(4, 5, False)])


# ---------------------------------------------------------------------------------------------- fallbacks
def _ctx(name, problem, backend="closed", components=None, **params):
    algo = get(name)
    values = resolve_params(algo, problem, None, params)
    z = torch.zeros(problem.R, problem.dim_y, dtype=problem.dtype)
    ctx = Context(oracle=CountedOracle(problem, backend), params=values, streams=as_streams(0, problem.R),
                  x0=z, y0=z, steps=10**5, components=components or {})
    return algo, ctx


@pytest.mark.parametrize("name, problem, params, why", [
    ("bsa", _stoch, dict(schedule="sqrt"), "sqrt"),
    ("aid-bio", _quad, dict(tol=1e-8), "tolerance"),
    ("itd-bio", _quad, dict(mode="autograd"), "autograd"),
    ("stocbio", _quad, {}, "not a stochastic problem"),
    ("sid", _stoch, {}, "no compiled form"),
])
def test_unsupported_configurations_run_eagerly(name, problem, params, why):
    algo, ctx = _ctx(name, problem(), **params)
    reason = support(algo, ctx)
    assert reason is not None and why in reason
    assert stepper(algo, ctx, True) is None


def test_autograd_backend_and_components_run_eagerly():
    from bilevelbench.algorithms.components import resolve

    algo, ctx = _ctx("aid-bio", _quad(), backend="autograd")
    assert "autograd backend" in support(algo, ctx)
    algo, ctx = _ctx("aid-bio", _quad(), components={"solver.cg": resolve("solver.cg", {})})
    assert "component" in support(algo, ctx)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_auto_compiles_long_runs_only(one_thread):
    algo, ctx = _ctx("aid-bio", _quad())
    ctx.steps = compiled.AUTO_MIN_STEPS - 1
    assert stepper(algo, ctx, "auto") is None and stepper(algo, ctx, None) is None
    assert stepper(algo, ctx, True) is not None and stepper(algo, ctx, False) is None
    ctx.steps = compiled.AUTO_MIN_STEPS
    # 'auto' runs the first AUTO_START steps eagerly (runs that stop early never build a graph), True from step 1
    assert stepper(algo, ctx, "auto").start == compiled.AUTO_START and stepper(algo, ctx, True).start == 0
    with compiled.using(False):
        assert stepper(algo, ctx, None) is None
    torch.set_num_threads(2)  # 'auto' compiles at one thread only (its OpenMP kernels lost at two here)
    assert stepper(algo, ctx, "auto") is None and stepper(algo, ctx, True) is not None
    with pytest.raises(ValueError):
        stepper(algo, ctx, "yes")


def test_a_graph_that_cannot_be_built_falls_back_to_eager(monkeypatch):
    """A failure to build the graph (here: a backend that raises) warns once and the run finishes eagerly,
    bitwise the eager run (the step whose graph failed is rerun eagerly from the same stream counter)."""

    def broken(*args, **kwargs):
        def fn(*a, **k):
            raise RuntimeError("no compiler here")
        return fn

    monkeypatch.setattr(compiled, "_graph", broken)
    eager = _run("ttsa", False)
    with pytest.warns(CompileFallbackWarning, match="could not be compiled"):
        fell = _run("ttsa", True)
    assert torch.equal(fell.x, eager.x) and torch.equal(fell.y, eager.y)
    for kind in KINDS:
        assert torch.equal(fell.per_instance(kind), eager.per_instance(kind))


# ---------------------------------------------------------------------------------------------- equal to eager
def _assert_counts_equal(got, want):
    """Counts identical per instance and kind at every record (executed and idle)."""
    assert got.iterations == want.iterations
    for kind in KINDS:
        assert got.counts[kind] == want.counts[kind], kind
        assert torch.equal(got.per_instance(kind), want.per_instance(kind)), kind


@pytest.mark.parametrize("case", ["ttsa", "aid-bio-q3"])
def test_traced_step_is_bitwise_eager(eager_backend, case):
    """The traced step (Dynamo graph, eager kernels) reproduces the eager run bitwise: iterates, estimates,
    counts per instance; one graph for the whole run (no recompile across steps). TTSA covers draws ahead,
    the randomized Neumann length with its idle masks and k as a tensor (decaying steps); AID-BiO covers a
    structure change (v is None at step 0) and warm-started CG."""
    before = compiled.compile_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)
        got = _run(case, True)
    after = compiled.compile_stats()
    want = _run(case, False)
    assert after["compiled_steps"] - before["compiled_steps"] == STEPS - 1  # step 0 runs eagerly (checked)
    assert after["fallbacks"] == before["fallbacks"]
    assert torch.equal(got.x, want.x) and torch.equal(got.y, want.y)
    assert torch.equal(torch.nan_to_num(got.estimates), torch.nan_to_num(want.estimates))
    _assert_counts_equal(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_compiled_step_equals_eager(case):
    """Inductor's kernels: iterates within the round-off bound of ``_roundoff_tol``, counts identical per
    instance and kind, no recompile across steps (exactly one graph built by the run, none on a rerun)."""
    compiled.clear_cache()
    before = compiled.compile_stats()
    with warnings.catch_warnings():
        warnings.simplefilter("error", CompileFallbackWarning)
        got = _run(case, True)
    mid = compiled.compile_stats()
    assert mid["compiles"] - before["compiles"] == 1 and mid["fallbacks"] == before["fallbacks"]
    again = _run(case, True)  # the same configuration reuses its graph
    assert compiled.compile_stats()["compiles"] == mid["compiles"]
    want = _run(case, False)
    scale = float(torch.cat([want.x.abs().flatten(), want.y.abs().flatten()]).max())
    tol = _roundoff_tol(case, STEPS, scale)
    assert float((got.x - want.x).abs().max()) <= tol
    assert float((got.y - want.y).abs().max()) <= tol
    assert torch.equal(again.x, got.x)  # the same graph on the same draws: bitwise
    _assert_counts_equal(got, want)


def test_specs_cover_the_seed_steps():
    """Every spec's algorithm has a case in the tests above (deterBiO is ITD-BiO's step with other defaults)."""
    assert {_algo(c) for c in CASES} | {"deterbio"} == set(SPECS)
