"""The algorithm registry, the shared driver and the Trace.

An algorithm is its update rule (optax/jaxopt style): ``init(ctx) -> state`` and
``step(ctx, state, k) -> state`` where ``state.x`` is the outer iterate; the driver owns looping,
timing, scoring, divergence detection and the Trace. Algorithms see the problem only through the
counted oracle in ``ctx.oracle``; the truth (grad Phi, y*) is read by the caller's ``scorer`` between
iterations, outside the counts and outside the timer (design.md: "algorithms never see the truth").
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..analytic.rng import Streams, as_streams
from .oracle import BACKENDS, CountedOracle, Counts

__all__ = [
    "DivergenceWarning",
    "DIVERGENCE_FACTOR",
    "theory_conditions",
    "Param",
    "Algorithm",
    "Context",
    "Trace",
    "REGISTRY",
    "register",
    "names",
    "get",
    "run",
    "resolve_params",
]


class DivergenceWarning(UserWarning):
    """Issued once by ``run`` when some instance of the run diverged (see ``Trace.diverged_at``)."""


#: the growth factor of the divergence rule (``run``, ``Trace``): an instance is flagged when its state
#: z = (x, y) leaves the ball of radius DIVERGENCE_FACTOR (||z_0|| + r), r the problem's region radius
DIVERGENCE_FACTOR = 1e6


def theory_conditions(algo: Algorithm, preset: str | None) -> dict[str, Callable]:
    """The step-size conditions a run is checked against (``Trace.outside_theory``): the algorithm's own
    (``Algorithm.theory``, its main theorem) and, with a preset, those of the theorem the preset cites (the
    preset function's ``conditions`` attribute, set by ``presets.cites``); the preset's replace the
    algorithm's of the same name."""
    out = dict(algo.theory)
    if preset is not None and preset in algo.presets:
        out.update(getattr(algo.presets[preset], "conditions", {}))
    return out


@dataclass(frozen=True)
class Param:
    """One hyperparameter: default, meaning, type and allowed range (validated at ``run``)."""

    default: Any
    meaning: str
    kind: type = float
    minimum: float | None = None
    strict: bool = True  # minimum excluded (e.g. step sizes > 0)
    choices: tuple | None = None
    maximum: float | None = None
    optional: bool = False  # None is an allowed value (e.g. "no tolerance")

    def default_for(self, problem):
        """The default, evaluated on the problem when it is a function of it (e.g. alpha = 1/L)."""
        if callable(self.default):
            try:
                return self.default(problem)
            except NotImplementedError as exc:
                raise ValueError(f"this parameter's default needs the problem's constants: {exc}") from exc
        return self.default

    def validate(self, name: str, value):
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"parameter {name} must be given (it has no default for this problem)")
        if self.choices is not None:
            if value not in self.choices:
                raise ValueError(f"parameter {name} must be one of {self.choices}, got {value!r}")
            return value
        if self.kind is bool:
            if not isinstance(value, bool):
                raise TypeError(f"parameter {name} must be a bool, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"parameter {name} must be a number, got {value!r} ({type(value).__name__})")
        if self.kind is int:
            if float(value) != int(value):
                raise TypeError(f"parameter {name} must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"parameter {name} must be finite, got {value}")
        if self.minimum is not None:
            bad = value <= self.minimum if self.strict else value < self.minimum
            if bad:
                rel = ">" if self.strict else ">="
                raise ValueError(f"parameter {name} must be {rel} {self.minimum}, got {value}")
        if self.maximum is not None and value > self.maximum:
            raise ValueError(f"parameter {name} must be <= {self.maximum}, got {value}")
        return value


@dataclass
class Context:
    """What an algorithm's init/step may use: the counted oracle, validated parameters, random streams
    (one per instance), the starting point, and a list to record out-of-theory notes."""

    oracle: CountedOracle
    params: Mapping[str, Any]
    streams: Streams
    x0: torch.Tensor
    y0: torch.Tensor
    steps: int
    #: run the steps under ``torch.inference_mode`` (the driver sets it for the closed-form backend)
    inference: bool = False
    #: component role -> implementation replacing the default (``algorithms.components``)
    components: Mapping[str, Callable] = field(default_factory=dict)

    @property
    def R(self) -> int:
        return self.x0.shape[0]

    def component(self, role: str) -> Callable:
        """The implementation of component role ``role`` for this run (a plug-in's, or the default)."""
        from .components import resolve

        return resolve(role, self.components)


@dataclass(frozen=True)
class Algorithm:
    """A registered optimizer: metadata, parameters, theory presets and its update rule.

    ``init(ctx)`` returns the state, ``step(ctx, state, k)`` the next one: any object with ``x`` (R, dim_x)
    and optionally ``y`` (R, dim_y) and ``estimate`` (the hypergradient estimate that moved x).

    ``roles``: the algorithm roles it can fill (a seed algorithm fills its own name; a user plug-in
    declares the seed algorithm it implements, e.g. ``('aid-bio',)``); ``components``: the component
    roles its step calls through ``ctx.component`` (``algorithms.components``)."""

    name: str
    paper: str
    reference: str
    stochastic: bool
    kind: str  # 'aid', 'itd', 'stochastic-aid', 'sid', ... (claims select algorithms by kind)
    params: Mapping[str, Param]
    init: Callable
    step: Callable
    presets: Mapping[str, Callable] = field(default_factory=dict)
    summary: str = ""
    #: theory conditions checked at run: name -> fn(problem, params) returning a message when outside
    theory: Mapping[str, Callable] = field(default_factory=dict)
    roles: tuple[str, ...] = ()
    components: tuple[str, ...] = ()

    def advance(self, ctx: Context, state, k: int):
        """Outer step k as the driver runs it: under ``torch.inference_mode`` when ``ctx.inference``.

        The closed-form oracles never build an autograd graph, and inference mode skips autograd's
        bookkeeping on every dispatch (about 20% of a stochastic outer step at d = 100 on the CPU, where
        each of ~300 small ops costs a few microseconds). Code that needs autograd inside a step leaves
        the mode itself (``itd_autograd``)."""
        with torch.inference_mode(ctx.inference):
            return self.step(ctx, state, k)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "paper": self.paper, "reference": self.reference,
            "stochastic": self.stochastic, "kind": self.kind, "summary": self.summary,
            "params": {k: {"default": getattr(p.default, "__doc__", None) if callable(p.default)
                           else p.default, "meaning": p.meaning} for k, p in self.params.items()},
            "presets": sorted(self.presets), "roles": list(self.roles), "components": list(self.components),
        }


REGISTRY: dict[str, Algorithm] = {}


def register(algo: Algorithm) -> Algorithm:
    """Add an algorithm to the registry (a user plug-in calls this too)."""
    if not isinstance(algo, Algorithm):
        raise TypeError(f"register takes an Algorithm, got {type(algo).__name__}")
    if algo.name in REGISTRY and REGISTRY[algo.name] is not algo:
        raise ValueError(f"algorithm {algo.name!r} registered twice")
    REGISTRY[algo.name] = algo
    return algo


def names() -> list[str]:
    """Names of all registered algorithms, sorted."""
    return sorted(REGISTRY)


def get(name: str) -> Algorithm:
    if not isinstance(name, str):
        raise TypeError(f"algorithm name must be a string, got {type(name).__name__}")
    if name not in REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(names())}")
    return REGISTRY[name]


@dataclass
class Trace:
    """What a run produced, per recorded outer iteration k (every ``record_every`` steps and the last).

    ``iterations`` (n,) the k of each record; ``x`` (n, R, dim_x) iterates x_k (None unless
    ``keep_iterates``); ``y`` likewise for the inner iterate the algorithm holds at x_k; ``estimates``
    (n, R, dim_x): at record i the estimate of step iterations[i] - 1, the one that moved the iterate to
    x_{iterations[i]} (NaN at record 0); ``counts`` per type
    (n,) cumulative oracle counts before step k (Gc(f), Gc(g), JV, HV, MV, samples) that the lockstep batch
    executed; ``time`` (n,) wall seconds before step k (scoring excluded); ``idle`` kind -> (n, R): the part
    of those counts instance r did not need (the oracle's ``active`` masks; see ``per_instance``; empty for
    methods whose instances all spend the same); ``metrics`` name -> (n, R) from
    the scorer; ``diverged_at`` (R,) first checked k at which instance r diverged (-1: never), with
    ``diverged_reason`` (R,) 'non-finite' or 'growth' ('' for the others), and ``diverged`` the first such k
    over instances or None; ``outside_theory`` messages for parameters outside the range the theorem of the
    algorithm, or of the preset, requires (``theory_conditions``).

    Divergence rule (``run``). Instance r is flagged at a check k when x_k or y_k holds NaN or inf, or when
    ||z_k|| > F (||z_0|| + r0), z = (x, y) the outer and inner iterates, F = ``divergence_factor`` (default
    DIVERGENCE_FACTOR = 1e6) and r0 the radius of the problem's declared region (``region_radius``; 1 when
    it declares none). The rule cannot fire on a run whose iterates stay within 10^6 times the problem's own
    scale: the families declare their constants on a ball that holds the start and the solutions they are
    built around, so a run converging to one of them stays within a few r0 of the origin, six orders of
    magnitude below the threshold, while a diverging run grows geometrically and reaches it a few steps
    (log of 10^6 in its growth rate) before it would overflow. A flagged instance is frozen at its last state
    before the flag (no NaN or inf reaches the records) and ``run`` warns once (``DivergenceWarning``).
    """

    algorithm: str
    params: dict[str, Any]
    iterations: list[int]
    counts: dict[str, list[int]]
    time: list[float]
    x: torch.Tensor | None
    y: torch.Tensor | None
    estimates: torch.Tensor | None
    metrics: dict[str, torch.Tensor]
    diverged_at: torch.Tensor
    outside_theory: list[str]
    x_last: torch.Tensor
    y_last: torch.Tensor | None
    #: the algorithm's last state (its tensors may be inference tensors: read-only outside inference mode)
    state_last: Any = None
    idle: dict[str, torch.Tensor] = field(default_factory=dict)
    diverged_reason: list[str] = field(default_factory=list)

    @property
    def diverged(self) -> int | None:
        d = self.diverged_at[self.diverged_at >= 0]
        return None if d.numel() == 0 else int(d.min())

    def count(self, kind: str) -> torch.Tensor:
        """Cumulative counts of ``kind`` ('gc_f', 'gc_g', 'jv', 'hv', 'mv', 'samples_f', 'samples_g'): what
        the lockstep batch executed, the same for every instance."""
        return torch.tensor(self.counts[kind], dtype=torch.float64)

    def per_instance(self, kind: str) -> torch.Tensor:
        """(n, R) cumulative counts of ``kind`` that each instance's own run spends: ``count(kind)`` less
        what the instance was idle for. They differ where instances draw different amounts of work and the
        batch executes the most any of them needs (BSA's and TTSA's randomized Neumann length p); they are
        the counts to compare with a paper's complexity. MV = JV + HV."""
        executed = self.count(kind)[:, None].expand(len(self.iterations), self.diverged_at.shape[0])
        parts = ("jv", "hv") if kind == "mv" else (kind,)
        idle = sum(self.idle[k].to(torch.float64) for k in parts if k in self.idle)
        return executed - idle if torch.is_tensor(idle) else executed.clone()


def resolve_params(algo: Algorithm, problem, preset: str | None, params: Mapping[str, Any]) -> dict:
    """Defaults < preset(problem, **preset_args) < explicit params; every value validated."""
    unknown = set(params) - set(algo.params) - {"preset_args"}
    if unknown:
        raise ValueError(f"unknown parameter(s) {sorted(unknown)} for {algo.name}; "
                         f"allowed: {sorted(algo.params)}")
    values = {k: p.default_for(problem) for k, p in algo.params.items() if k not in params}
    if preset is not None:
        if preset not in algo.presets:
            raise ValueError(f"unknown preset {preset!r} for {algo.name}; known: {sorted(algo.presets)}")
        values.update(algo.presets[preset](problem, **dict(params.get("preset_args") or {})))
    values.update({k: v for k, v in params.items() if k != "preset_args"})
    return {k: algo.params[k].validate(k, v) for k, v in values.items()}


def _batched(problem, t: torch.Tensor | None, dim: int, name: str) -> torch.Tensor:
    """A start point as (R, dim): None gives zeros, a (dim,) vector is broadcast to every instance."""
    if t is None:
        return torch.zeros(problem.R, dim, dtype=problem.dtype, device=problem.device)
    if isinstance(t, torch.Tensor) and t.dim() == 1 and problem.batch is not None:
        problem._in(name, t.expand(problem.R, -1), dim)  # validates dtype, device and length
        t = t.expand(problem.R, -1)
    else:
        t = problem._in(name, t, dim)[0]
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains non-finite values")
    return t.clone()


def _snapshot(counts: Counts, out: dict[str, list[int]]):
    for k, v in counts.as_dict().items():
        out.setdefault(k, []).append(v)


def _snapshot_idle(oracle: CountedOracle, n_before: int, out: dict[str, list]):
    """Append the oracle's idle counts (kind -> (R,)) to ``out``; a kind first seen now was 0 before."""
    for k, v in oracle.idle.items():
        out.setdefault(k, [torch.zeros_like(v)] * n_before).append(v.clone())
    for k, v in out.items():
        if k not in oracle.idle:
            v.append(torch.zeros_like(v[-1]))


def _freeze(state, prev, bad: torch.Tensor):
    """Keep the state ``prev`` (the last checked one) of the instances flagged ``bad`` (so no NaN reaches the
    records; their divergence is in ``diverged_at``). Fields that are (R, ...) tensors are frozen, others left
    as they are."""
    if not dataclasses.is_dataclass(state):
        return state
    R = bad.shape[0]
    updates = {}
    for f in dataclasses.fields(state):
        new, old = getattr(state, f.name), getattr(prev, f.name, None)
        if isinstance(new, torch.Tensor) and isinstance(old, torch.Tensor) and new.shape == old.shape \
                and new.dim() >= 1 and new.shape[0] == R:
            mask = bad.to(new.device).view(R, *([1] * (new.dim() - 1)))
            updates[f.name] = torch.where(mask, old, new)
    return dataclasses.replace(state, **updates)


def _state_norm(state) -> torch.Tensor:
    """(R,) ||(x, y)|| of a state (x alone when it has no y); NaN/inf propagate (the non-finite test)."""
    sq = (state.x * state.x).sum(-1)
    y = getattr(state, "y", None)
    if isinstance(y, torch.Tensor) and y.dim() >= 1 and y.shape[0] == sq.shape[0]:
        sq = sq + (y * y).reshape(y.shape[0], -1).sum(-1)
    return sq.sqrt()


def _stack(items):
    return torch.stack(items) if items else None


def _sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(name: str, problem, steps: int, x0=None, preset: str | None = None, generator=None, *,
        y0=None, backend: str = "closed", record_every: int = 1, scorer: Callable | None = None,
        keep_iterates: bool = True, check_every: int | None = None, stop: Callable | None = None,
        components: Mapping[str, Callable] | None = None,
        divergence_factor: float | None = DIVERGENCE_FACTOR, compile: bool | str | None = None,
        **params) -> Trace:
    """Run algorithm ``name`` for ``steps`` outer iterations on ``problem``; returns a Trace.

    ``preset`` names a theory preset (parameters set from the problem's constants); explicit ``params``
    override it. ``generator``: int seed, torch.Generator or ``analytic.rng.Streams`` (one stream per
    instance). ``scorer(x, y) -> dict[str, (R,) tensor]`` is evaluated at every record with the timer
    paused and outside the oracle counts; ``stop(metrics)`` (metrics: name -> list of (R,) records so
    far) is called after each record and ends the run when it returns True. ``components`` (component
    role -> implementation, ``algorithms.components``) replaces pieces of the step. ``x0``/``y0`` of shape
    (dim,) are broadcast to every instance. A diverging instance (non-finite iterate, or ||(x, y)|| beyond
    ``divergence_factor`` times its start scale: the rule of ``Trace``; None keeps the non-finite test only)
    is recorded in ``diverged_at`` and frozen; the run warns once (``DivergenceWarning``), ends early when
    every instance diverged, and raises no exception for it. ``compile``: run the outer steps as one compiled
    graph where the algorithm has a compiled form (``algorithms.compiled``: True, False, 'auto' = only runs long
    enough to pay for building the graph, or None = the process default, 'auto' unless ``compiled.using`` sets
    another); the results equal the eager steps' to float64 round-off and the counts are identical.
    """
    algo = get(name)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a non-negative integer, got {steps!r}")
    if isinstance(record_every, bool) or not isinstance(record_every, int) or record_every < 1:
        raise ValueError(f"record_every must be a positive integer, got {record_every!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if divergence_factor is not None and (isinstance(divergence_factor, bool)
                                          or not isinstance(divergence_factor, int | float)
                                          or not math.isfinite(divergence_factor) or divergence_factor <= 1):
        raise ValueError(f"divergence_factor must be a finite number > 1 or None, got {divergence_factor!r}")
    values = resolve_params(algo, problem, preset, params)
    outside = [msg for check in theory_conditions(algo, preset).values() if (msg := check(problem, values))]
    overrides = dict(components or {})
    if overrides:
        from .components import check as check_component

        for role, fn in overrides.items():
            check_component(role, fn)
    ctx = Context(oracle=CountedOracle(problem, backend), params=values,
                  streams=as_streams(generator, problem.R, problem.device),
                  x0=_batched(problem, x0, problem.dim_x, "x0"),
                  y0=_batched(problem, y0, problem.dim_y, "y0"), steps=steps, inference=backend == "closed",
                  components=overrides)
    if check_every is None:
        check_every = 1 if problem.device.type == "cpu" else 16
    state = algo.init(ctx)
    from .compiled import stepper as _compiled_stepper  # noqa: PLC0415 (compiled imports this module)

    advance = _compiled_stepper(algo, ctx, compile) or (lambda st, k: algo.advance(ctx, st, k))
    R = problem.R
    diverged_at = torch.full((R,), -1, dtype=torch.int64)
    reasons = [""] * R
    limit = None  # (R,) on the device: F (||z_0|| + r0), the growth threshold of the divergence rule
    if divergence_factor is not None:
        radius = problem.region_radius()
        r0 = radius if math.isfinite(radius) else 1.0
        limit = divergence_factor * (_state_norm(state) + r0)
    iters, times, counts, idle = [], [], {}, {}
    xs, ys, ests, metrics = [], [], [], {}
    # The clock runs between records only: the device is synchronised when a record starts (so the time
    # covers the finished work) and again after scoring (so the scorer's work is excluded); no
    # synchronisation happens between records.
    clock = {"elapsed": 0.0, "resumed": 0.0}

    def record(k, est):
        _sync(problem.device)
        now = time.perf_counter()
        if k > 0:
            clock["elapsed"] += now - clock["resumed"]
        _snapshot_idle(ctx.oracle, len(iters), idle)
        iters.append(k)
        times.append(clock["elapsed"])
        _snapshot(ctx.oracle.counts, counts)
        y = getattr(state, "y", None)
        if keep_iterates:
            xs.append(state.x.detach().clone())
            if y is not None:
                ys.append(y.detach().clone())
            ests.append(est.detach().clone() if est is not None else torch.full_like(state.x, math.nan))
        if scorer is not None:
            with torch.no_grad():
                for key, val in scorer(state.x, y).items():
                    metrics.setdefault(key, []).append(val.detach())  # stays on the device
        _sync(problem.device)
        clock["resumed"] = time.perf_counter()

    record(0, None)
    kept = state  # the state at the last check (every instance finite and within the growth threshold)
    any_dead = False
    for k in range(steps):
        state = advance(state, k)
        if (k + 1) % check_every == 0 or k + 1 == steps:
            nonfinite = ~torch.isfinite(state.x).all(dim=-1)
            y = getattr(state, "y", None)
            if y is not None:
                nonfinite |= ~torch.isfinite(y).all(dim=-1)
            grown = _state_norm(state) > limit if limit is not None else torch.zeros_like(nonfinite)
            flags = torch.stack([nonfinite, grown]).cpu()  # one synchronisation per check
            if any_dead or bool(flags.any()):
                new_nonfinite, new_grown = flags[0] & (diverged_at < 0), flags[1] & (diverged_at < 0)
                for r in torch.nonzero(new_nonfinite | new_grown).flatten().tolist():
                    reasons[r] = "non-finite" if bool(new_nonfinite[r]) else "growth"
                diverged_at[new_nonfinite | new_grown] = k + 1
                # flagged now or before: held at the state of the last check they passed
                state = _freeze(state, kept, (diverged_at >= 0).to(state.x.device))
                any_dead = True
            kept = state
        est = getattr(state, "estimate", None)
        if (k + 1) % record_every == 0 or k + 1 == steps:
            record(k + 1, est)
        if bool((diverged_at >= 0).all()):
            break
        if stop is not None and iters[-1] == k + 1 and stop(metrics):
            break
    if bool((diverged_at >= 0).any()):
        bad = torch.nonzero(diverged_at >= 0).flatten().tolist()
        warnings.warn(f"{name}: {len(bad)} of {R} instance(s) diverged (instances {bad[:10]}"
                      f"{' ...' if len(bad) > 10 else ''}; first at step {int(diverged_at[bad].min())}: "
                      f"{', '.join(sorted({reasons[r] for r in bad}))}); see Trace.diverged_at",
                      DivergenceWarning, stacklevel=2)
    return Trace(algorithm=name, params=values, iterations=iters, counts=counts, time=times,
                 x=_stack(xs), y=_stack(ys), estimates=_stack(ests),
                 metrics={k: torch.stack(v).to("cpu", torch.float64) for k, v in metrics.items()},
                 diverged_at=diverged_at,
                 outside_theory=outside, x_last=_plain(state.x), y_last=_plain(getattr(state, "y", None)),
                 state_last=state, idle={k: torch.stack(v).cpu() for k, v in idle.items()},
                 diverged_reason=reasons)


def _plain(t):
    """A copy outside inference mode (an ordinary tensor the caller may modify in place or differentiate)
    of a step's output, which may be an inference tensor."""
    return t.clone() if isinstance(t, torch.Tensor) and t.is_inference() else t
