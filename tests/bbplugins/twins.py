"""Verbatim copies of every seed algorithm and component role, as plug-ins (``TWIN_<ROLE>``).

An algorithm twin is the seed algorithm under another name with no presets of its own (the paper's preset
is mapped onto its parameters by name) whose step counts its calls in ``CALLS``; a component twin wraps the
default implementation the same way. Numbers are bitwise those of the paper's implementation.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import bilevelbench.algorithms as al
from bilevelbench.algorithms.components import COMPONENTS, Component
from bilevelbench.bench.roles import ALGORITHM_ROLES

CALLS: Counter = Counter()


def _counting(role, fn):
    def call(*args, **kwargs):
        CALLS[role] += 1
        return fn(*args, **kwargs)

    call.__name__ = getattr(fn, "__name__", role)
    return call


def _attr(role: str) -> str:
    return "TWIN_" + role.upper().replace("-", "_").replace(".", "_")


TWINS: dict[str, str] = {}
for _role in ALGORITHM_ROLES:
    _seed = al.get(_role)
    globals()[_attr(_role)] = dataclasses.replace(_seed, name=f"twin-{_role}", presets={}, roles=(_role,),
                                                  step=_counting(_role, _seed.step))
    TWINS[_role] = _attr(_role)
for _role, _c in COMPONENTS.items():
    globals()[_attr(_role)] = Component(_role, _counting(_role, _c.default), name=f"twin-{_role}")
    TWINS[_role] = _attr(_role)
