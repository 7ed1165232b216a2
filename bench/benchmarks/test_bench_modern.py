"""Cost of one outer iteration of the solvers users compare against today, at the peer benchmark's defaults.

Settings (benchopt/benchmark_bilevel defaults, issue 20 item 6): ``finite-sum-quadratic`` with d = 100 at both
levels, n = m = 128 samples, float64 on the CPU; batch 64, 10 inner steps, 10 Neumann/solver steps: every
solver with a ``peer`` preset runs it (``algorithms/modern_presets.py``: the public defaults, steps scaled by
1/L_sample_yy); BSA, TTSA and stocBiO run the parameters of ``conftest.PEER``. Timed: one
``algo.advance`` at outer index k = 1 after an untimed step k = 0 (which fills SABA's memories and starts
SRBA's and VRBO's estimators with their full passes: those periodic passes, every q = 16 (SRBA) or 512 (VRBO)
steps, are a separate cost), for R = 1 and R = 64 instances in lockstep; ``extra_info`` has the oracle
counts of that step and ``per_instance_ms`` (the median divided by R).

The peer's own times for these solvers are not measured here (they need benchopt's runner and the peer's JAX
solvers); the README's table gives ours, and the peer's figures where they were measured (stocBiO, BSA, TTSA).
"""

from __future__ import annotations

import pytest
import torch
from conftest import PEER, counts_of, make_context

K = 1
SOLVERS = ("soba", "saba", "srba", "amigo", "f2sa", "mrbo", "vrbo", "fsla", "bsa", "ttsa", "stocbio")
#: FSLA has no public-default preset: its practical preset is batch 64 with steps 1/L_sample_yy
PRESET = {"fsla": "practical"}


def _context(name: str, problem):
    if name in PEER:
        algo, ctx, state = make_context(name, problem, steps=1000, **PEER[name][1])
    else:
        algo, ctx, state = make_context(name, problem, steps=1000, preset=PRESET.get(name, "peer"))
    return algo, ctx, algo.advance(ctx, state, K - 1)


def _cases():
    # VRBO's 64-instance step took 5.5-7.8 s here (its full passes run per instance), 40 s of the suite's
    # rounds on its own: kept out of the default run (``slow``) so that the suite stays within its 3 minutes
    for name in SOLVERS:
        for R in (1, 64):
            slow = (name, R) == ("vrbo", 64)
            yield pytest.param(name, R, marks=pytest.mark.slow if slow else (), id=f"{name}-{R}")


@pytest.mark.parametrize("name, R", list(_cases()))
def test_modern_outer_iteration(timed, benchmark, problems, name, R):
    benchmark.group = f"modern solvers, peer defaults (d=100, batch 64, 10 inner/Neumann steps), R={R}"
    problem = problems("finite-sum-quadratic", dim_x=100, dim_y=100, n=128, m=128, **({"batch": R} if R > 1 else {}))
    algo, ctx, state = _context(name, problem)
    step = lambda: algo.advance(ctx, state, K)  # noqa: E731
    _, counts = counts_of(ctx.oracle, step)
    new = timed(step, problem.device, rounds=5 if R == 1 else 3, R=R, d=100, counts=counts,
                preset=PRESET.get(name, "peer"))
    assert bool(torch.isfinite(new.x).all()) and bool(torch.isfinite(new.y).all())
    assert sum(counts.values()) > 0
    benchmark.extra_info["per_instance_ms"] = benchmark.stats.stats.median * 1e3 / R
