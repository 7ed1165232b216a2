"""Compiled outer steps: the numerical body of a step as one ``torch.compile`` graph, draws and counts outside it.

An outer step of the stochastic methods is a few hundred small tensor operations (d = 100: 2-20 us of dispatch
each around ~20 us of arithmetic), so eager PyTorch spends most of a step dispatching. Compiling the whole step
removes that, but two things in a step cannot enter a graph: the counting oracle's Python integers (Dynamo
specialises on them, so every step would recompile) and the counter-based streams (NumPy hashing,
``analytic/rng.py``). This module moves both out:

- **draws ahead**: a step's random calls are structural: ``Spec.draws`` lists them (``Streams.integers(high, size,
  replace)`` in the order the eager step makes them); a chunk of steps' calls is drawn at once with
  ``Streams.integers_ahead`` (bitwise the numbers of the one-by-one calls) and handed to the graph as inputs;
  the stream's counter advances step by step as the eager step would advance it (an interrupted run leaves it
  where eager would);
- **counts from structure**: ``Spec.charge`` charges one step's oracle counts through the oracle's own ``charge``
  and ``release`` (``active`` masks included), as functions of the parameters and the draws (BSA's and TTSA's
  Neumann length p); ``tests/algorithms/test_compiled.py`` checks them against the eager step's, executed and
  per instance, kind by kind;
- **the body is the algorithm's own step**: the graph traces ``algo.step`` itself, with an oracle that calls the
  problem's closed forms without counting and streams that replay the drawn indices (``_ReplayOracle``,
  ``_ReplayStreams``). Nothing of the step is written twice; a replayed call that is not the planned one (the
  spec and the step disagree) raises ``PlanError`` while tracing.

Graphs: ``fullgraph=True, dynamic=False``, one per (algorithm, step structure, parameters, problem configuration,
thread count), each on its own code object so that graphs of different runs never share Dynamo's cache; the
guards are on shapes and on the constants the step reads (its parameters), never on k or on counts. A run
whose graph recompiles after its first compiled step (something the step reads changes between steps) finishes
eagerly, with a warning. Matrix products stay MKL calls (inductor's default on the CPU; the previous pass
measured fused loops slower for stocBiO's step at d = 100). Inductor runs without in-place buffers
(``INDUCTOR_OPTIONS``: a miscompile of torch 2.13 at batch 1).

Which steps compile (``SPECS``): stocBiO, BSA (schedules 'constant' and 'horizon'), TTSA, AID-BiO (solvers
without a tolerance) and ITD-BiO / deterBiO (reverse mode), on the closed-form backend, without component
overrides, on the CPU. Everything else runs eagerly: plug-in algorithms and components (their code is not ours
to trace), CUDA (not built without a GPU to test it), BSA's 'sqrt' schedule and BA's increasing loop (the
inner loop's length changes with k, so each new length is a new graph), CG with a tolerance (a data-dependent
stop), ITD through autograd. The step where a run starts compiling (step 0, or ``AUTO_START`` under 'auto')
runs eagerly and is checked against the spec (it warms the problem's caches and, for AID, starts from
v = None).

When it pays: a graph costs ~5-60 s to build (inductor's on-disk cache makes a repeat 1-5 s) against a saving
of ~0.1-1 ms per step at d = 100 (``bench/benchmarks/test_bench_compiled.py``), so ``compile='auto'`` compiles
only runs whose budget is at least ``AUTO_MIN_STEPS`` steps, and only once they have run ``AUTO_START`` steps
eagerly: most long-budget runs of the profiles stop at their criterion long before the budget, and those never
pay for a graph. ``compile=True`` compiles every supported run from step 1, ``False`` none.
The results equal the eager step's up to float64 round-off (kernels sum in other orders), which warm-started
CG with Q < d amplifies geometrically over long runs (``solvers.cg``: both runs accurate, not equal).
"""

from __future__ import annotations

import dataclasses
import time
import types
import warnings
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..analytic.base import split_draw

__all__ = ["Draw", "Spec", "SPECS", "PlanError", "CompileFallbackWarning", "CompiledStepper", "stepper", "support",
           "AUTO_MIN_STEPS", "AUTO_START", "CHUNK_STEPS", "MODES", "clear_cache", "compile_stats", "default_mode",
           "using"]

#: budget (steps) from which ``compile='auto'`` compiles a supported run: a cold graph costs 3-33 s to build and a
#: step saves ~0.1-1 ms at d = 100, so a run pays for its graph only past ~10^5 steps. At 20000 the quick profile
#: compiled two graphs and ran 153 s of sweep against 133 s eagerly (cold inductor cache, idle machine, the same
#: 66 verdicts and values): the profiles' runs are too short to pay, so 'auto' leaves them eager
AUTO_MIN_STEPS = 100_000
#: the step from which a run under ``compile='auto'`` runs compiled (the steps before are eager)
AUTO_START = 5000
#: steps whose draws are made at once (``Streams.integers_ahead``); fewer when their indices would exceed
#: ``CHUNK_NUMBERS``
CHUNK_STEPS = 64
CHUNK_NUMBERS = 1 << 20
#: compiled steps kept (least recently used dropped)
CACHE_SIZE = 16
#: torch.compile's backend: 'inductor' (fused C++ kernels, the speed); the default test run uses 'aot_eager'
#: (the same Dynamo trace and graph, run by eager kernels: seconds to build instead of ~20 s on a cold cache)
BACKEND = "inductor"
#: inductor options of every graph. ``inplace_buffers`` off: with it, torch 2.13's CPU inductor miscompiles
#: y <- y - a (bmm(cat([y, x]), M) - e) applied twice to a batch of one (the stacked lower-level gradient,
#: ``quadratic._lower_grad``, in ITD's and AID's inner loops at R = 1): results off by ~1e-3 relative,
#: reproduced outside this package in 8 lines; every other option left at its default
INDUCTOR_OPTIONS = {"inplace_buffers": False}


class PlanError(RuntimeError):
    """A compiled step asked for a draw the spec did not plan (the spec and the step disagree)."""


class CompileFallbackWarning(UserWarning):
    """A run's graph could not be built or recompiled between steps: the rest of the run is eager (exact)."""


#: the values of ``run(compile=...)`` (None: the process default, ``default_mode``)
MODES = (True, False, "auto")
_DEFAULT = ["auto"]


def default_mode():
    """The mode of runs that pass ``compile=None`` (the default of ``algorithms.run``): 'auto' unless set by
    ``using`` (``bench.sweep.measure_point`` sets the sweep's ``Env.compile`` around each point)."""
    return _DEFAULT[-1]


class using:
    """``with using(mode):`` runs with ``compile=None`` use ``mode`` (nested uses stack)."""

    def __init__(self, mode):
        if mode not in MODES:
            raise ValueError(f"compile must be True, False or 'auto', got {mode!r}")
        self.mode = mode

    def __enter__(self):
        _DEFAULT.append(self.mode)
        return self

    def __exit__(self, *exc):
        _DEFAULT.pop()
        return False


@dataclass(frozen=True)
class Draw:
    """One call of a step to its streams: ``integers(high, size, replace)`` (``Streams``; every sample of a
    problem and BSA's/TTSA's Neumann length p are drawn this way)."""

    high: int
    size: int
    replace: bool = True


@dataclass(frozen=True)
class Spec:
    """How a registered algorithm's step runs compiled.

    ``unsupported(ctx) -> str | None``: why a run must stay eager (None: it compiles); ``draws(ctx, k)``: the
    step's stream calls in order; ``charge(oracle, ctx, k, state, draws)``: its oracle counts (the draws as
    drawn, so that counts depending on them, BSA's p, are exact); ``k_tensor``: the step reads k only as a
    number in its arithmetic (TTSA's decaying steps), so k enters the graph as a 0-d tensor instead of a
    constant Dynamo would specialise on; ``structure(ctx, state, k)``: what else the graph is specialised on
    (e.g. whether AID's v is None)."""

    unsupported: Callable
    draws: Callable
    charge: Callable
    k_tensor: Callable = lambda ctx: False
    structure: Callable = lambda ctx, state, k: ()


# ---------------------------------------------------------------------------------------------- replay
class _ReplayStreams:
    """Streams inside the graph: hand out the drawn tensors in order, checking each call against the plan."""

    def __init__(self, draws: Sequence[torch.Tensor], plan: Sequence[Draw]):
        self.draws, self.plan, self.pos = draws, plan, 0

    def integers(self, high: int, size: int, replace: bool = True) -> torch.Tensor:
        want = Draw(int(high), int(size), bool(replace))
        if self.pos >= len(self.plan) or self.plan[self.pos] != want:
            got = self.plan[self.pos] if self.pos < len(self.plan) else "nothing"
            raise PlanError(f"the step drew {want} where the plan has {got} (draw {self.pos})")
        out = self.draws[self.pos]
        self.pos += 1
        return out


class _ReplayOracle:
    """The counted oracle's interface on the problem's closed forms, without counting (``Spec.charge`` counts
    outside the graph); samples come from ``_ReplayStreams``; mini-batches are index slices."""

    def __init__(self, problem, streams: _ReplayStreams):
        self.problem, self.streams = problem, streams

    def charge(self, kind, n, active=None):
        pass

    def release(self, kind, n, active):
        pass

    def sample(self, which: str, size: int, streams, replace: bool = True) -> torch.Tensor:
        n = self.problem.n_f if which == "f" else self.problem.n_g
        return self.streams.integers(n, size, replace)

    def minibatches(self, which: str, idx: torch.Tensor, sizes: list[int]) -> list:
        return split_draw(idx, sizes)

    def grad_x_f(self, x, y, idx=None, active=None):
        return self.problem._grad_x_f(x, y) if idx is None else self.problem._grad_x_F(x, y, idx)

    def grad_y_f(self, x, y, idx=None, active=None):
        return self.problem._grad_y_f(x, y) if idx is None else self.problem._grad_y_F(x, y, idx)

    def grad_x_g(self, x, y, idx=None, active=None):
        return self.problem._grad_x_g(x, y) if idx is None else self.problem._grad_x_G(x, y, idx)

    def grad_y_g(self, x, y, idx=None, active=None):
        return self.problem._grad_y_g(x, y) if idx is None else self.problem._grad_y_G(x, y, idx)

    def hvp(self, x, y, v, idx=None, active=None):
        return self.problem._hvp(x, y, v) if idx is None else self.problem._hvp_G(x, y, v, idx)

    def jvp(self, x, y, v, idx=None, active=None):
        return self.problem._jvp(x, y, v) if idx is None else self.problem._jvp_G(x, y, v, idx)


def _body(step, ctx, problem, state, k, draws, plan):
    """The graph: ``step`` on a context whose oracle and streams replay ``draws``; returns the new state's
    fields as a tuple (None where a field is None)."""
    streams = _ReplayStreams(draws, plan)
    cctx = dataclasses.replace(ctx, oracle=_ReplayOracle(problem, streams), streams=streams)
    new = step(cctx, state, k)
    if streams.pos != len(plan):
        raise PlanError(f"the step drew {streams.pos} times, the plan has {len(plan)} draws")
    return tuple(getattr(new, f.name) for f in dataclasses.fields(new))


# ---------------------------------------------------------------------------------------------- specs
def _stochastic_unsupported(ctx) -> str | None:
    if not getattr(ctx.oracle.problem, "stochastic", False):
        return "not a stochastic problem"
    return None


def _batch(ctx, which: str, sizes: Sequence[int], replace: bool) -> list[Draw]:
    """The calls of ``draw_batches(oracle, which, sizes, streams, replace)``: one draw of sum(sizes) with
    replacement, one per batch without, none for no batch."""
    sizes = [int(s) for s in sizes]
    if not sizes:
        return []
    p = ctx.oracle.problem
    n = p.n_f if which == "f" else p.n_g
    if replace:
        return [Draw(n, sum(sizes), True)]
    return [Draw(n, s, False) for s in sizes]


def _charge_batch(o, which: str, sizes: Sequence[int], replace: bool, active=None):
    """The counts ``draw_batches`` charges: samples at draw, ``release`` for the batches outside ``active``."""
    sizes = [int(s) for s in sizes]
    if not sizes:
        return
    kind = "samples_f" if which == "f" else "samples_g"
    for s in ([sum(sizes)] if replace else sizes):
        o.charge(kind, s)
    if active is not None:
        for s, mask in zip(sizes, active, strict=True):
            if mask is not None:
                o.release(kind, s, mask)


# stocBiO (stochastic.py: _stocbio_step = inner_sgd + stocbio_estimate)
def _stocbio_sizes(ctx):
    from .stochastic import stocbio_batch_sizes

    return stocbio_batch_sizes(ctx.params, ctx.component("stocbio.batch-schedule"))


def _stocbio_draws(ctx, k):
    p = ctx.params
    return (_batch(ctx, "g", [p["S"]] * p["N"], p["replace"]) + _batch(ctx, "f", [p["D_f"]], p["replace"])
            + _batch(ctx, "g", _stocbio_sizes(ctx), p["replace"]) + _batch(ctx, "g", [p["D_g"]], p["replace"]))


def _stocbio_charge(o, ctx, k, state, draws):
    p, rep = ctx.params, ctx.params["replace"]
    _charge_batch(o, "g", [p["S"]] * p["N"], rep)
    o.charge("gc_g", p["N"] * p["S"])
    _charge_batch(o, "f", [p["D_f"]], rep)
    o.charge("gc_f", 2 * p["D_f"])
    sizes = _stocbio_sizes(ctx)
    _charge_batch(o, "g", sizes, rep)
    o.charge("hv", sum(sizes))
    _charge_batch(o, "g", [p["D_g"]], rep)
    o.charge("jv", p["D_g"])


# BSA and TTSA (randomized_estimate)
def _neumann_b(ctx):
    from .stochastic import _horizon, neumann_terms

    return neumann_terms(ctx.params, _horizon(ctx))


def _randomized_draws(ctx, fresh_g: bool):
    p, rep = ctx.params, ctx.params["replace"]
    b = _neumann_b(ctx)
    out = _batch(ctx, "f", [p["D_f"]], rep) + [Draw(b, 1, True)] + _batch(ctx, "g", [p["B"]] * (b - 1), rep)
    return out + (_batch(ctx, "g", [p["D_g"]], rep) if fresh_g else [])


def _idle(o, kind: str, amount: torch.Tensor) -> None:
    """Add (R,) int64 idle units of ``kind``: the sum of the eager step's ``release`` calls in one operation."""
    prev = o.idle.get(kind)
    o.idle[kind] = amount if prev is None else prev + amount


def _charge_randomized(o, ctx, p_drawn: torch.Tensor, fresh_g: bool, jv_size: int):
    """randomized_estimate's counts for the drawn p (R, 1): batch i (1..b-1) is needed by the instances with
    p >= i; the eager step applies m = ``neumann_factors(p, b)`` factors (max p on the CPU, b-1 elsewhere), each
    charged B HV with the mask of the instances whose product still runs. The graph applies all b-1 (factors
    past an instance's p step by exactly 0); the counts are the eager step's on the same device.

    The eager step releases batch by batch (one mask each); summed, an instance with p is idle for the
    b-1-p batches past p and for the max(m-p, 0) factors past p, B units each: charged here in one operation
    per kind, the same integers."""
    from .stochastic_solvers import neumann_factors

    p, rep = ctx.params, ctx.params["replace"]
    b = _neumann_b(ctx)
    B = int(p["B"])
    _charge_batch(o, "f", [p["D_f"]], rep)
    o.charge("gc_f", 2 * p["D_f"])
    pr = p_drawn.reshape(-1).to(torch.int64)
    if b > 1:
        _charge_batch(o, "g", [B] * (b - 1), rep)
        _idle(o, "samples_g", B * (b - 1 - pr))
    m = neumann_factors(p_drawn, b)
    if m > 0:
        o.charge("hv", m * B)
        _idle(o, "hv", B * (m - pr).clamp_min(0))
    if fresh_g:
        _charge_batch(o, "g", [p["D_g"]], rep)
    o.charge("jv", jv_size)


def _bsa_unsupported(ctx):
    if ctx.params["schedule"] == "sqrt":
        return "schedule 'sqrt': the inner loop grows with k (a graph per length)"
    return _stochastic_unsupported(ctx)


def _bsa_inner(ctx, k):
    from .stochastic import _horizon, bsa_inner_steps

    return bsa_inner_steps(ctx.params, k, _horizon(ctx))


def _bsa_draws(ctx, k):
    p = ctx.params
    return _batch(ctx, "g", [p["S"]] * _bsa_inner(ctx, k), p["replace"]) + _randomized_draws(ctx, True)


def _bsa_charge(o, ctx, k, state, draws):
    p = ctx.params
    N = _bsa_inner(ctx, k)
    _charge_batch(o, "g", [p["S"]] * N, p["replace"])
    o.charge("gc_g", N * p["S"])
    _charge_randomized(o, ctx, draws[len(_batch(ctx, "g", [p["S"]] * N, p["replace"])) + 1], True, p["D_g"])


def _ttsa_draws(ctx, k):
    p = ctx.params
    return _batch(ctx, "g", [p["S"]], p["replace"]) + _randomized_draws(ctx, p["jv_batch"] == "fresh")


def _ttsa_charge(o, ctx, k, state, draws):
    p = ctx.params
    _charge_batch(o, "g", [p["S"]], p["replace"])
    o.charge("gc_g", p["S"])
    fresh = p["jv_batch"] == "fresh"
    _charge_randomized(o, ctx, draws[2], fresh, p["D_g"] if fresh else p["S"])


# AID-BiO and ITD-BiO (deterministic.py)
def _aid_unsupported(ctx):
    p = ctx.params
    if p.get("schedule") == "increasing":
        return "schedule 'increasing': the inner loop grows with k (a graph per length)"
    if p["solver"] == "cg" and p["tol"] is not None:
        return "CG with a tolerance stops on a data-dependent test"
    return None


def _aid_v0(ctx, state) -> bool:
    p = ctx.params
    return p["warm_v"] and p["solver"] != "neumann" and getattr(state, "v", None) is not None


def _aid_charge(o, ctx, k, state, draws):
    p = ctx.params
    o.charge("gc_g", p["N"])
    o.charge("gc_f", 2)
    o.charge("hv", p["Q"] + (1 if p["solver"] == "cg" and _aid_v0(ctx, state) else 0))
    o.charge("jv", 1)


def _itd_unsupported(ctx):
    if ctx.params["mode"] == "autograd":
        return "mode 'autograd' differentiates through autograd, outside the closed-form oracles"
    return None


def _itd_charge(o, ctx, k, state, draws):
    N = ctx.params["N"]
    o.charge("gc_g", N)
    o.charge("gc_f", 2)
    o.charge("jv", N)
    if N > 1:
        o.charge("hv", N - 1)


def _no_draws(ctx, k):
    return []


#: algorithm name -> how its step compiles (only the seed algorithms registered under these names, whose step
#: is the function named here, use it: ``support``)
SPECS: dict[str, Spec] = {
    "stocbio": Spec(_stochastic_unsupported, _stocbio_draws, _stocbio_charge),
    "bsa": Spec(_bsa_unsupported, _bsa_draws, _bsa_charge),
    "ttsa": Spec(_stochastic_unsupported, _ttsa_draws, _ttsa_charge,
                 k_tensor=lambda ctx: ctx.params["step_rule"] == "decaying"),
    "aid-bio": Spec(_aid_unsupported, _no_draws, _aid_charge,
                    structure=lambda ctx, state, k: (_aid_v0(ctx, state),)),
    "itd-bio": Spec(_itd_unsupported, _no_draws, _itd_charge),
    "deterbio": Spec(_itd_unsupported, _no_draws, _itd_charge),
}


def _seed_steps() -> dict[str, Callable]:
    from . import deterministic, stochastic

    return {"stocbio": stochastic._stocbio_step, "bsa": stochastic._bsa_step, "ttsa": stochastic._ttsa_step,
            "aid-bio": deterministic._aid_step, "itd-bio": deterministic._itd_step,
            "deterbio": deterministic._itd_step}


def support(algo, ctx) -> str | None:
    """None when ``algo``'s step on ``ctx`` compiles, else why it runs eagerly."""
    if SPECS.get(algo.name) is None or _seed_steps().get(algo.name) is not algo.step:
        return "no compiled form (plug-in algorithms and the other seed algorithms run eagerly)"
    if ctx.components:
        return "component plug-ins run eagerly"
    if ctx.oracle.backend != "closed":
        return "the autograd backend runs eagerly"
    if ctx.oracle.problem.device.type != "cpu":
        # CUDA graphs (mode 'reduce-overhead') overwrite a graph's outputs at its next replay, and a step's
        # output is the next step's input and the Trace's record: not built until it can be tested on a GPU
        return "the compiled step is built and tested on the CPU only (no GPU was available to test one)"
    return SPECS[algo.name].unsupported(ctx)


# ---------------------------------------------------------------------------------------------- graphs
_CACHE: OrderedDict = OrderedDict()
_STATS = {"compiles": 0, "compile_seconds": 0.0, "compiled_steps": 0, "fallbacks": 0}


def clear_cache() -> None:
    """Forget the compiled steps of this process (Dynamo's and inductor's on-disk caches are kept)."""
    _CACHE.clear()


def compile_stats() -> dict:
    """Process totals: graphs built (``compiles``) and their seconds, steps run compiled, runs that fell back."""
    return dict(_STATS)


def _fresh(fn: Callable, name: str) -> Callable:
    """A copy of ``fn`` with its own code object, so that its graphs have their own Dynamo cache."""
    code = fn.__code__.replace(co_name=name)
    return types.FunctionType(code, fn.__globals__, name, fn.__defaults__, fn.__closure__)


def _key(algo, ctx, structure, k_tensor: bool):
    problem = ctx.oracle.problem
    config = {k: v for k, v in problem.params().items() if k != "seed"}
    return (algo.name, BACKEND, structure, k_tensor, type(problem).__qualname__, repr(sorted(config.items())),
            repr(sorted(ctx.params.items())), ctx.steps, torch.get_num_threads())


def _graph(algo, ctx, structure, k_tensor: bool):
    key = _key(algo, ctx, structure, k_tensor)
    fn = _CACHE.get(key)
    if fn is None:
        fn = torch.compile(_fresh(_body, f"compiled_step_{len(_CACHE)}_{algo.name.replace('-', '_')}"),
                           fullgraph=True, dynamic=False, backend=BACKEND,
                           **({"options": dict(INDUCTOR_OPTIONS)} if BACKEND == "inductor" else {}))
        _CACHE[key] = fn
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    _CACHE.move_to_end(key)
    return fn


def _graphs_built() -> int:
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


# ---------------------------------------------------------------------------------------------- the stepper
class CompiledStepper:
    """Runs a run's outer steps compiled (``__call__(state, k) -> state``, the driver's loop body).

    Steps before ``start`` run eagerly; step ``start`` too, checking the spec against it: the stream calls it
    made must be ``Spec.draws`` and its counts (executed and idle, kind by kind) those ``Spec.charge`` predicts,
    else ``PlanError``. Later steps take their indices from a chunk drawn ahead, run the graph and charge the
    counts. A graph that cannot be
    built, or that recompiles during the run, sends the rest of the run to the eager step (warning once)."""

    def __init__(self, algo, ctx, start: int = 0):
        self.algo, self.ctx, self.spec, self.start = algo, ctx, SPECS[algo.name], start
        self.eager = False
        self._ahead: list[tuple[list, list[torch.Tensor], int]] = []  # per step: plan, draws, counter after it
        self._k_tensor = bool(self.spec.k_tensor(ctx))
        self._seen: set = set()
        self._fns: dict = {}  # structure -> graph (the cache key is computed once per structure, not per step)

    def _draws(self, k: int) -> tuple[list, list[torch.Tensor]]:
        """Step k's (plan, draws); a chunk of steps is drawn at once, and the streams' counter is left where the eager
        step k would leave it (so an interrupted run, or a caller reusing the streams, sees eager's counter)."""
        ctx = self.ctx
        streams = ctx.streams
        if not self._ahead:
            c0, plans, numbers = streams.counter, [], 0
            for j in range(min(CHUNK_STEPS, ctx.steps - k)):
                plan = self.spec.draws(ctx, k + j)
                numbers += sum(d.size if d.replace else d.high for d in plan) * ctx.R
                if plans and numbers > CHUNK_NUMBERS:
                    break
                plans.append(plan)
            flat = streams.integers_ahead([(d.high, d.size, d.replace) for plan in plans for d in plan])
            device = ctx.oracle.problem.device
            if device.type != "cpu":
                flat = [t.to(device) for t in flat]
            pos, counter = 0, c0
            for plan in plans:
                counter += 2 * len(plan)
                self._ahead.append((plan, flat[pos:pos + len(plan)], counter))
                pos += len(plan)
            self._ahead.reverse()  # popped from the end
            streams.counter = c0
        plan, draws, streams.counter = self._ahead.pop()
        return plan, draws

    def _checked_eager(self, state, k: int):
        """The eager step k, checked against the spec (draws and counts)."""
        ctx, o = self.ctx, self.ctx.oracle
        calls, streams = [], ctx.streams
        real = streams.integers

        def recording(high, size, replace=True):
            calls.append(Draw(int(high), int(size), bool(replace)))
            return real(high, size, replace)

        before = o.counts.as_dict()
        idle_before = {kind: v.clone() for kind, v in o.idle.items()}
        structure = self.spec.structure(ctx, state, k)
        streams.integers = recording
        try:
            new = self.algo.advance(ctx, state, k)
        finally:
            del streams.integers
        plan = self.spec.draws(ctx, k)
        if calls != plan:
            raise PlanError(f"{self.algo.name}: the eager step drew {calls}, the spec plans {plan}")
        from .oracle import CountedOracle

        scratch = CountedOracle(o.problem, o.backend)
        # the spec's charge reads the draws (BSA's and TTSA's p): drawn again from the counters just used
        draws = self._replay_draws(calls) if calls else []
        self.spec.charge(scratch, ctx, k, state, draws)
        got = {kind: v - before[kind] for kind, v in o.counts.as_dict().items()}
        want = scratch.counts.as_dict()
        kinds = set(o.idle) | set(scratch.idle)
        zero = torch.zeros(ctx.R, dtype=torch.int64)
        idle_got = {kind: o.idle.get(kind, zero) - idle_before.get(kind, zero) for kind in kinds}
        idle_want = {kind: scratch.idle.get(kind, zero) for kind in kinds}
        if got != want or any(not torch.equal(idle_got[kind].cpu(), idle_want[kind].cpu()) for kind in kinds):
            raise PlanError(f"{self.algo.name}: the eager step spent {got} (idle {idle_got}), the spec charges "
                            f"{want} (idle {idle_want}) at structure {structure}")
        return new

    def _replay_draws(self, calls):
        """The tensors of the calls just made (the counter is after them): drawn again from their counters."""
        streams = self.ctx.streams
        c = streams.counter
        streams.counter = c - 2 * len(calls)
        out = streams.integers_ahead([(d.high, d.size, d.replace) for d in calls])
        streams.counter = c
        return out

    def __call__(self, state, k: int):
        algo, ctx = self.algo, self.ctx
        if self.eager or k < self.start:
            return algo.advance(ctx, state, k)
        if k == self.start:
            return self._checked_eager(state, k)
        structure = self.spec.structure(ctx, state, k)
        counter = ctx.streams.counter
        plan, draws = self._draws(k)
        fn = self._fns.get(structure)
        if fn is None:
            fn = self._fns[structure] = _graph(algo, ctx, structure, self._k_tensor)
        kk = torch.tensor(float(k), dtype=torch.float64) if self._k_tensor else k
        first = (structure, id(fn)) not in self._seen
        before = _graphs_built()
        t0 = time.perf_counter()
        try:
            with torch.inference_mode(ctx.inference):
                out = fn(algo.step, ctx, ctx.oracle.problem, state, kk, draws, plan)
        except Exception as exc:  # noqa: BLE001 - a graph that cannot be built: the eager step is exact
            if "PlanError" in repr(exc) or isinstance(exc, PlanError):
                raise PlanError(f"{algo.name}: the compiled step and its spec disagree: {exc}") from exc
            msg = str(exc).splitlines()[0] if str(exc) else ""
            return self._fall_back(state, k, counter, f"the step could not be compiled ({type(exc).__name__}: "
                                   f"{msg})")
        built = _graphs_built() - before
        if first and built:
            _STATS["compiles"] += built
            _STATS["compile_seconds"] += time.perf_counter() - t0
        elif built:
            # recompiled mid-run: the step reads something that changes between steps; this result is right,
            # but every later step would compile again
            self._finish_eagerly("the step recompiled between steps")
        self._seen.add((structure, id(fn)))
        self.spec.charge(ctx.oracle, ctx, k, state, draws)
        _STATS["compiled_steps"] += 1
        return type(state)(**{f.name: v for f, v in zip(dataclasses.fields(state), out, strict=True)})

    def _fall_back(self, state, k, counter, reason):
        self.ctx.streams.counter = counter
        self._finish_eagerly(reason)
        return self.algo.advance(self.ctx, state, k)

    def _finish_eagerly(self, reason):
        self.eager = True
        self._ahead.clear()
        _STATS["fallbacks"] += 1
        warnings.warn(f"{self.algo.name}: {reason}; the run continues with the eager step",
                      CompileFallbackWarning, stacklevel=4)


def stepper(algo, ctx, mode=None) -> CompiledStepper | None:
    """The compiled stepper of a run, or None when it runs eagerly: ``mode`` False (never), True (whenever
    ``support`` allows), 'auto' (supported, one torch thread, a budget of at least ``AUTO_MIN_STEPS`` steps,
    compiled from step ``AUTO_START``) or None (``default_mode``)."""
    if mode is None:
        mode = default_mode()
    if mode is False:
        return None
    if mode not in (True, "auto"):
        raise ValueError(f"compile must be True, False or 'auto', got {mode!r}")
    if support(algo, ctx) is not None:
        return None
    if mode == "auto":
        # one torch thread only: inductor's kernels open an OpenMP region per loop, and on this shared 2-core
        # machine a compiled step at 2 threads ran 3-150x slower than the eager one (a region waits for its
        # descheduled thread; eager torch keeps small operations on one thread) - bench/benchmarks/
        # test_bench_compiled.py, README Performance. Sweeps run one thread per point (``Env.threads``)
        if ctx.steps < AUTO_MIN_STEPS or torch.get_num_threads() != 1:
            return None
        return CompiledStepper(algo, ctx, start=AUTO_START)
    return CompiledStepper(algo, ctx)
