"""Analytic bilevel problems: exact truth (y*, Phi, grad Phi) and exact constants.

``make_problem(name, ...)`` builds any registered family; ``names()`` lists them.
"""

from __future__ import annotations

import torch

# Family modules register themselves on import.
from . import finite_sum, hyperrep, logistic, lower_bound, meta, quadratic, stochastic  # noqa: F401
from .base import FAMILIES, AssumptionReport, BilevelProblem, Constants, FunctionProblem, lemma2_L_phi

__all__ = [
    "AssumptionReport",
    "BilevelProblem",
    "Constants",
    "FunctionProblem",
    "FAMILIES",
    "lemma2_L_phi",
    "make_problem",
    "names",
]


def names() -> list[str]:
    """Names of every registered problem family, sorted."""
    return sorted(FAMILIES)


def make_problem(name: str, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64,
                 device="cpu", batch=None, **family_params) -> BilevelProblem:
    """Build problem family ``name`` (None for any argument means the family's default)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a string, got {type(name).__name__}")
    if name not in FAMILIES:
        raise ValueError(f"unknown problem family {name!r}; known: {', '.join(names())}")
    return FAMILIES[name](dim_x=dim_x, dim_y=dim_y, kappa=kappa, seed=seed, dtype=dtype, device=device,
                          batch=batch, **family_params)
