"""Experiments: what is run and measured (``bench/claims`` says what is claimed about it).

An :class:`Experiment` is a sweep: a typed key per grid point (a frozen dataclass, :class:`Key`), a
``measure(key, env, seed) -> list[Row]`` that runs one point and returns typed rows (a dataclass per
experiment, :class:`Row`), the grid of each profile, and the **arms** it runs (:class:`Arm`): the algorithm
or component roles whose players a plug-in may replace, or pinned baseline arms that always run the
paper's implementation. Experiments are registered once by name; several claims may judge one experiment
(e.g. the AID-BiO rate sweep serves the rate, the bound and two comparisons), and it runs once.

Modules (one per kind of sweep): :mod:`.common` (scoring with the truth, complexity to eps, start points),
:mod:`.identities`, :mod:`.rates` (deterministic complexity-to-eps sweeps), :mod:`.reference` (the report's
convergence curves), and the paper-specific ones registered by :func:`load`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

__all__ = ["Key", "Row", "Arm", "Experiment", "ExperimentMeasure", "EXPERIMENTS", "register_experiment",
           "get_experiment", "load"]


@dataclass(frozen=True)
class Key:
    """Base of typed sweep keys: a frozen dataclass of JSON-able fields (its canonical JSON is hashed into
    the point's seed and digest)."""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_SCALARS = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}


@dataclass(frozen=True)
class Row:
    """Base of typed result rows: one dataclass per experiment; field names are the columns of the point's
    table. Scalar fields are checked on construction (an int or float field given a string, or a str field
    given a number, is a TypeError naming the field)."""

    def __post_init__(self):
        hints = _hints_of(type(self))
        for f in dataclasses.fields(self):
            want = hints.get(f.name)
            ok = _SCALARS.get(want)
            v = getattr(self, f.name)
            if ok is None or v is None:
                continue
            if want is not bool and isinstance(v, bool):
                raise TypeError(f"{type(self).__name__}.{f.name}: expected {want.__name__}, got bool {v!r}")
            if not isinstance(v, ok) and not _numpy_scalar(v, want):
                raise TypeError(f"{type(self).__name__}.{f.name}: expected {want.__name__}, got "
                                f"{type(v).__name__} {v!r}")

    @classmethod
    def columns(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))


def _numpy_scalar(v, want) -> bool:
    import numpy as np

    if want is float:
        return isinstance(v, np.floating | np.integer)
    if want is int:
        return isinstance(v, np.integer)
    if want is bool:
        return isinstance(v, np.bool_)
    return False


def _hints_of(cls) -> dict:
    cache = cls.__dict__.get("_hint_cache")
    if cache is None:
        raw = typing.get_type_hints(cls)
        cache = {k: (v if not isinstance(v, types.UnionType) else None) for k, v in raw.items()}
        cls._hint_cache = cache
    return cache


@dataclass(frozen=True)
class Arm:
    """An algorithm an experiment runs.

    ``role``: an algorithm role (``roles.ALGORITHM_ROLES``) or a component role
    (``algorithms.components``); ``audited``: a plug-in of that role replaces the paper's implementation
    in this arm (False: a baseline arm, always the paper's); ``preset`` / ``preset_args``: the theory
    preset the arm runs with, and ``params`` the parameter names it sets explicitly (a plug-in must
    declare them all: checked before anything runs); ``family``: a problem family the preset can be
    evaluated on (to learn which parameters it sets); ``label``: how the report names the arm."""

    role: str
    audited: bool = True
    preset: str | None = None
    preset_args: Mapping[str, Any] = field(default_factory=dict)
    params: tuple[str, ...] = ()
    family: str = "quadratic"
    label: str = ""

    @property
    def reach(self) -> set[str]:
        """The arm's role and the components its algorithm calls in this arm. A component role named
        ``<param>.<choice>`` (``solver.neumann``) is called only where the algorithm's parameter ``<param>`` takes
        ``<choice>``: the value the arm's preset gives on its family (the default without a preset); when the
        experiment sets that parameter itself (``params``), every choice is reachable."""
        return _arm_reach(self.role, self.preset, json.dumps(dict(self.preset_args), sort_keys=True), self.params,
                          self.family)


@dataclass(frozen=True)
class Experiment:
    """A registered sweep (see the module docstring)."""

    name: str
    summary: str
    measure: Callable
    grid: Callable[[str], tuple]  # profile -> keys
    key_type: type
    row_type: type
    arms: tuple[Arm, ...] = ()

    def keys(self, profile: str) -> tuple:
        keys = tuple(self.grid(profile))
        for k in keys:
            if not isinstance(k, self.key_type):
                raise TypeError(f"experiment {self.name}: key {k!r} is not a {self.key_type.__name__}")
        return keys

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles of the audited arms (a plug-in of one of them, or of a component they call, reaches
        every claim judging this experiment)."""
        return tuple(dict.fromkeys(a.role for a in self.arms if a.audited))

    @property
    def reach(self) -> set[str]:
        return set().union(*(a.reach for a in self.arms if a.audited)) if self.arms else set()

    def run_point(self, key, env, seed: int) -> list:
        """``measure`` with its output checked: every row an instance of the experiment's row type."""
        rows = self.measure(key, env, seed)
        for r in rows:
            if not isinstance(r, self.row_type):
                raise TypeError(f"experiment {self.name}: measure returned {type(r).__name__}, expected "
                                f"{self.row_type.__name__}")
        return rows


@functools.cache
def _arm_reach(role: str, preset: str | None, preset_args: str, params: tuple[str, ...], family: str) -> frozenset:
    import bilevelbench.algorithms as al
    from bilevelbench.analytic import make_problem

    from ..roles import ALGORITHM_ROLES

    if role not in ALGORITHM_ROLES:
        return frozenset({role})
    algo = al.get(role)
    selectors = {c.rpartition(".")[0] for c in algo.components} & set(algo.params) - set(params)
    chosen = {}
    if selectors:
        problem = make_problem(family)
        chosen = {k: algo.params[k].default_for(problem) for k in selectors}
        if preset is not None:
            # the arm's preset_args may hold placeholders the key fills (eps = 0): then the preset's defaults
            # (no preset selects a component by its arguments); where neither evaluates, every choice
            values = None
            for args in (json.loads(preset_args), {}):
                try:
                    values = algo.presets[preset](problem, **args)
                    break
                except (ArithmeticError, ValueError):
                    continue
            if values is None:
                return frozenset({role, *algo.components})
            chosen.update({k: v for k, v in values.items() if k in selectors})
    called = set()
    for c in algo.components:
        head, _, choice = c.rpartition(".")
        if head not in chosen or chosen[head] == choice:
            called.add(c)
    return frozenset({role} | called)


EXPERIMENTS: dict[str, Experiment] = {}


def register_experiment(exp: Experiment) -> Experiment:
    if exp.name in EXPERIMENTS and EXPERIMENTS[exp.name] is not exp:
        raise ValueError(f"experiment {exp.name!r} registered twice")
    if not (isinstance(exp.key_type, type) and issubclass(exp.key_type, Key)):
        raise TypeError(f"experiment {exp.name}: key_type must subclass experiments.Key")
    if not (isinstance(exp.row_type, type) and issubclass(exp.row_type, Row)):
        raise TypeError(f"experiment {exp.name}: row_type must subclass experiments.Row")
    from ..roles import all_roles

    bad = [a.role for a in exp.arms if a.role not in all_roles()]
    if bad:
        raise ValueError(f"experiment {exp.name}: unknown role(s) {bad}")
    EXPERIMENTS[exp.name] = exp
    return exp


def get_experiment(name: str) -> Experiment:
    load()
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}")
    return EXPERIMENTS[name]


@dataclass(frozen=True)
class ExperimentMeasure:
    """The ``measure`` of the registered experiment ``name``, by name: it pickles as its name, so a worker
    process (``sweep.ProcessExecutor``) or a Dask worker runs the experiment of its own registry."""

    name: str

    def __call__(self, key, env, seed: int) -> list:
        return get_experiment(self.name).run_point(key, env, seed)


#: the modules that register experiments
_MODULES = ("identities", "rates", "reference", "stochastic", "estimators", "arxiv", "loops", "sid",
            "modern_stochastic", "modern_soba", "modern_penalty")


def load() -> None:
    for m in _MODULES:
        import_module(f"{__name__}.{m}")
