"""Roles and plug-ins: who plays each part of an experiment, substituted in this one place.

A **role** is a named slot an experiment runs: an algorithm role (the seed algorithms: ``aid-bio``, ``ba``,
``itd-bio``, ``deterbio``, ``stocbio``, ``bsa``, ``ttsa``, ``sid``, ``meta-itd-bio``, ``meta-aid-bio``) or a
component role (``algorithms.components``: the AID linear solvers, ITD's reverse recursion, stocBiO's Neumann
estimators and batch schedule, BSA/TTSA's randomized Neumann product, SID's fixed-point iteration).

A **plug-in** (``bilevelbench verify --plugin module:attr``) fills roles: an ``algorithms.Algorithm`` whose
``roles`` names the algorithm role(s) it implements, or an ``algorithms.components.Component`` naming its
component role. A :class:`Cast` maps every role to its player; experiments ask the cast (``cast.run(role,
...)``, ``cast.component(role)``) and never name an implementation themselves. A baseline arm that a
comparison needs runs on :data:`PAPER` (the paper's implementations, never substituted).

A plug-in is identified by module, attribute and the SHA-256 of its module's source (:class:`PluginSpec`):
the identity enters the digest of every sweep point whose experiment reaches its roles, so ``--resume``
never reuses a point computed with another implementation.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import cache

import bilevelbench.algorithms as al
from bilevelbench.algorithms.base import resolve_params
from bilevelbench.algorithms.components import COMPONENTS, Component

__all__ = ["ALGORITHM_ROLES", "PluginError", "PluginSpec", "Cast", "PAPER", "load_plugin", "cast_for",
           "all_roles", "reach_of", "role_summary"]

#: the algorithm roles: every seed algorithm fills the role of its own name
ALGORITHM_ROLES = ("aid-bio", "ba", "itd-bio", "deterbio", "stocbio", "bsa", "ttsa", "sid", "meta-itd-bio",
                   "meta-aid-bio", "soba", "saba", "srba", "fsla", "amigo", "f2sa", "f2ba", "f2sa-p", "mrbo", "vrbo")


class PluginError(ValueError):
    """A plug-in that cannot be used as given (bad spec, import failure, wrong type, missing parameter):
    ``bilevelbench verify`` reports it as one line and exits 2."""


def all_roles() -> list[str]:
    return list(ALGORITHM_ROLES) + sorted(COMPONENTS)


def role_summary(role: str) -> str:
    if role in COMPONENTS:
        c = COMPONENTS[role]
        return f"component {role}: {c.summary} ({c.reference}); signature {c.signature}"
    a = al.get(role)
    return f"algorithm {role}: {a.summary} ({a.reference})"


def reach_of(roles: Iterable[str]) -> set[str]:
    """The roles a run of ``roles`` reaches: the roles themselves and the components their algorithms call."""
    out = set()
    for r in roles:
        out.add(r)
        if r in ALGORITHM_ROLES:
            out.update(al.get(r).components)
    return out


@dataclass(frozen=True)
class PluginSpec:
    """Identity of a plug-in: ``module:attr``, the SHA-256 of its module's source, what it is and the roles
    it fills. JSON-able: it travels in ``Env`` to distributed workers, which import it themselves."""

    module: str
    attr: str
    source_sha256: str
    kind: str  # 'algorithm' | 'component'
    name: str
    roles: tuple[str, ...]

    @property
    def ref(self) -> str:
        return f"{self.module}:{self.attr}"

    def identity(self) -> dict:
        return {"plugin": self.ref, "sha256": self.source_sha256, "roles": list(self.roles)}


def _source_sha(module) -> str:
    try:
        src = inspect.getsource(module)
    except (OSError, TypeError):
        src = repr(getattr(module, "__file__", module.__name__))
    return hashlib.sha256(src.encode()).hexdigest()


def load_plugin(ref: str) -> tuple[PluginSpec, object]:
    """Import ``module:attr`` and check it can fill the roles it declares; register an algorithm plug-in
    in ``algorithms.REGISTRY``. Raises :class:`PluginError` with a one-line message."""
    if not isinstance(ref, str) or ref.count(":") != 1 or not all(ref.split(":")):
        raise PluginError(f"--plugin {ref!r}: expected module:attribute (e.g. mypkg.opt:MY_AID)")
    mod_name, attr = ref.split(":")
    try:
        module = importlib.import_module(mod_name)
    except Exception as exc:  # any error while importing the user's module is a usage error, said in one line
        raise PluginError(f"--plugin {ref!r}: importing module {mod_name!r} failed: "
                          f"{type(exc).__name__}: {exc}".replace("\n", " ")) from None
    if not hasattr(module, attr):
        raise PluginError(f"--plugin {ref!r}: module {mod_name!r} has no attribute {attr!r}")
    obj = getattr(module, attr)
    sha = _source_sha(module)
    if isinstance(obj, al.Algorithm):
        roles = tuple(obj.roles)
        if not roles:
            raise PluginError(f"--plugin {ref!r}: algorithm {obj.name!r} declares no role; set roles=(...) to the "
                              f"seed algorithm(s) it implements, one of {', '.join(ALGORITHM_ROLES)}")
        bad = [r for r in roles if r not in ALGORITHM_ROLES]
        if bad:
            raise PluginError(f"--plugin {ref!r}: unknown algorithm role(s) {bad}; known: {', '.join(ALGORITHM_ROLES)}")
        if obj.name in ALGORITHM_ROLES:
            raise PluginError(f"--plugin {ref!r}: the plug-in's name {obj.name!r} is a seed algorithm's; give it its "
                              "own name")
        known = al.REGISTRY.get(obj.name)
        if known is not None and known is not obj and known != obj:
            raise PluginError(f"--plugin {ref!r}: another algorithm is registered as {obj.name!r}")
        if known is None:
            al.register(obj)
        return PluginSpec(mod_name, attr, sha, "algorithm", obj.name, roles), obj
    if isinstance(obj, Component):
        return PluginSpec(mod_name, attr, sha, "component", obj.name or obj.fn.__name__, (obj.role,)), obj
    raise PluginError(f"--plugin {ref!r}: {attr} is a {type(obj).__name__}; expected an algorithms.Algorithm (with "
                      "roles) or an algorithms.components.Component")


class Cast:
    """Who plays each role: the paper's implementations, with the plug-ins' substitutions."""

    def __init__(self, plugins: Iterable[tuple[PluginSpec, object]] = ()):
        self.specs: tuple[PluginSpec, ...] = ()
        self.algorithms: dict[str, al.Algorithm] = {}
        self.components: dict[str, Callable] = {}
        for spec, obj in plugins:
            for role in spec.roles:
                if role in self.algorithms or role in self.components:
                    raise PluginError(f"two plug-ins fill role {role!r}; give one plug-in per role")
                if spec.kind == "algorithm":
                    self.algorithms[role] = obj
                else:
                    self.components[role] = obj.fn
            self.specs += (spec,)

    # ------------------------------------------------------------------ what fills a role
    def fills(self, role: str) -> bool:
        return role in self.algorithms or role in self.components

    def substituted(self, reach: Iterable[str]) -> list[str]:
        """The roles among ``reach`` (a claim's or an experiment's roles and the components they call) that a
        plug-in fills."""
        return sorted(r for r in reach if self.fills(r))

    def algorithm(self, role: str) -> al.Algorithm:
        if role not in ALGORITHM_ROLES:
            raise ValueError(f"{role!r} is not an algorithm role; known: {', '.join(ALGORITHM_ROLES)}")
        return self.algorithms.get(role) or al.get(role)

    def component(self, role: str) -> Callable:
        if role not in COMPONENTS:
            raise ValueError(f"{role!r} is not a component role; known: {', '.join(sorted(COMPONENTS))}")
        return self.components.get(role, COMPONENTS[role].default)

    def identity(self, roles: Iterable[str]) -> list[dict]:
        """Identities of the plug-ins filling any role of ``roles`` (an experiment's reach: for point digests)."""
        reach = set(roles)
        return [s.identity() for s in self.specs if set(s.roles) & reach]

    # ------------------------------------------------------------------ running a role
    def params_for(self, role: str, problem, preset: str | None = None, preset_args: Mapping | None = None,
                   **params) -> dict:
        """The arguments of ``algorithms.run`` for ``role`` with the paper's ``preset``: unchanged for the
        paper's algorithm; for a plug-in without that preset, the paper's preset evaluated on ``problem`` and
        mapped onto the plug-in's parameters by name (a parameter it lacks is a :class:`PluginError`)."""
        algo = self.algorithm(role)
        paper = al.get(role)
        if algo is paper or preset is None or preset in algo.presets:
            out = dict(params)
            if preset is not None:
                out.update(preset=preset, preset_args=dict(preset_args or {}))
            self._check_names(algo, role, set(params), "the experiment sets")
            return out
        values = paper.presets[preset](problem, **dict(preset_args or {}))
        self._check_names(algo, role, set(values), f"the paper's preset {preset!r} sets")
        self._check_names(algo, role, set(params), "the experiment sets")
        return {**values, **params}

    @staticmethod
    def _check_names(algo, role, names, who):
        missing = sorted(n for n in names if n not in algo.params)
        if missing and algo.name != role:
            raise PluginError(f"plug-in {algo.name!r} (role {role}) has no parameter {missing[0]!r}, which {who}"
                              + (f" (also missing: {', '.join(missing[1:])})" if len(missing) > 1 else ""))

    def resolved(self, role: str, problem, preset=None, preset_args=None, **params) -> dict:
        """The validated parameter values ``role``'s player would run with (defaults < preset < params)."""
        algo = self.algorithm(role)
        kw = self.params_for(role, problem, preset, preset_args, **params)
        pre = kw.pop("preset", None)
        return resolve_params(algo, problem, pre, kw)

    def run(self, role: str, problem, steps: int, *, preset: str | None = None, preset_args: Mapping | None = None,
            run_args: Mapping | None = None, **params) -> al.Trace:
        """Run ``role``'s player on ``problem`` (``algorithms.run``) with the paper's ``preset`` and explicit
        ``params``; ``run_args`` are the driver's own arguments (x0, y0, generator, scorer, stop, ...). The
        component plug-ins of this cast are passed to every run."""
        algo = self.algorithm(role)
        kw = self.params_for(role, problem, preset, preset_args, **params)
        return al.run(algo.name, problem, steps, components=self.components, **dict(run_args or {}), **kw)


#: the paper's implementations: baseline arms of comparisons run on it, whatever the plug-ins
PAPER = Cast()


@cache
def _cast_cached(refs: tuple[str, ...], shas: tuple[str, ...]) -> Cast:
    loaded = [load_plugin(r) for r in refs]
    for (spec, _), sha in zip(loaded, shas, strict=True):
        if sha and spec.source_sha256 != sha:
            raise PluginError(f"plug-in {spec.ref}: its source changed since the run started (digest {sha[:12]} "
                              f"vs {spec.source_sha256[:12]}); restart the run")
    return Cast(loaded)


def cast_for(env) -> Cast:
    """The cast of an environment (``Env.plugins``: PluginSpecs); loaded once per process (workers too)."""
    specs = tuple(getattr(env, "plugins", ()) or ())
    if not specs:
        return PAPER
    return _cast_cached(tuple(s.ref for s in specs), tuple(s.source_sha256 for s in specs))
