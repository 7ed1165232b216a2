"""Reference convergence curves: every registered algorithm, default parameters, one small instance.

Not a claim: a picture of how the algorithms compare on common axes (||grad Phi(x_k)||^2 against the
oracle counts of Definition 2 of ICML 2021: MV = JV + HV, and Gc(g)). Deterministic algorithms run on
the nonconvex quadratic (the rate claims' family, ``rates.FAMILY``), stochastic ones on the stochastic
quadratic with the same spectrum. Every run starts at Phi(x0) - inf Phi = ``rates.GAP`` so the curves
start from the same height. One sweep point per algorithm; an algorithm that cannot run with its defaults
(e.g. a plug-in needing a parameter) yields one row with the error, never a failed sweep. Sized to take a
few seconds on one CPU core: the engine runs it with every ``verify``.
"""

from __future__ import annotations

import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an

from .claims import Sweep
from .experiment import COUNT_KINDS, make, run_scored, start_at_gap
from .rates import FAMILY, GAP

__all__ = ["NAME", "INSTANCE", "STEPS", "reference_sweep", "measure"]

NAME = "reference/curves"
#: the reference instance: small and mildly conditioned so that every default step size is stable
INSTANCE = {"kappa": 4.0, "dim": 4, "R": 2, "params": dict(FAMILY["params"])}
#: outer steps per run (deterministic, stochastic): stochastic steps cost more oracle calls per step
STEPS = {False: 40, True: 30}
FAMILIES = {False: FAMILY["name"], True: "stochastic-quadratic"}


def measure(key: dict, env, seed: int) -> list[dict]:
    """Run ``key['algorithm']`` with its defaults for ``key['steps']`` steps; one row per (instance, k).

    The instance, the start and the algorithm's random streams come from the base seed ``env.seed``, not
    from the point's ``seed`` (a hash of the algorithm's name): every algorithm sees the same instance."""
    seed = env.seed
    name, fam = key["algorithm"], key["family"]
    base = {"algorithm": name, "family": fam, "stochastic": key["stochastic"], "kappa": key["kappa"]}
    try:
        problem = make(fam, env, kappa=key["kappa"], dim_x=key["dim"], dim_y=key["dim"], batch=key["R"],
                       seed=seed, **key["family_params"])
        x0 = start_at_gap(problem, GAP, seed=seed)
        y0 = torch.zeros(problem.R, problem.dim_y, dtype=problem.dtype, device=problem.device)
        trace = run_scored(name, problem, key["steps"], env, x0=x0, y0=y0, generator=seed)
    except Exception as exc:  # report it on the figure, never fail the sweep (plug-ins, missing defaults)
        return [{**base, "instance": -1, "k": -1, "error": f"{type(exc).__name__}: {exc}"}]
    g = trace.metrics["grad_phi_sq"].numpy()
    rows = []
    own = {c: trace.per_instance(c).numpy() for c in COUNT_KINDS}  # (n, R): each instance's own counts
    for i, k in enumerate(trace.iterations):
        for r in range(problem.R):
            counts = {c: float(own[c][i, r]) for c in COUNT_KINDS}
            rows.append({**base, "instance": r, "k": k, "grad_phi_sq": float(g[i, r]), **counts,
                         "time": float(trace.time[i]), "error": ""})
    return rows


def reference_sweep(env) -> Sweep:
    """The sweep over every registered algorithm (plug-ins included), one point each, sorted by name."""
    keys = []
    for name in al.names():
        stoch = bool(al.get(name).stochastic)
        fam = FAMILIES[stoch]
        if fam not in an.names():  # a stochastic family may be missing in a trimmed install: skip those
            continue
        keys.append({"algorithm": name, "family": fam, "stochastic": stoch, "steps": STEPS[stoch],
                     "kappa": INSTANCE["kappa"], "dim": INSTANCE["dim"], "R": INSTANCE["R"],
                     "family_params": INSTANCE["params"]})
    return Sweep(NAME, measure, tuple(keys))
