"""Reference convergence curves: every algorithm role under its theory preset, one small instance.

Not a claim: a picture of how the algorithms compare on common axes (||grad Phi(x_k)||^2 against the
oracle counts of Definition 2 of ICML 2021: MV = JV + HV, and Gc(g)). Deterministic algorithms run on the
nonconvex quadratic (the rate claims' family), stochastic ones on the stochastic quadratic with the same
spectrum, the meta-learning ones on the meta-learning family. Every run of the quadratic families starts at
Phi(x0) - inf Phi = ``GAP``. Each role runs with the preset of the theorem it is verified against
(``THEORY``), so a divergence would be a finding about that preset (flagged in the rows), not a default's
accident. One sweep point per role; plug-ins replace their roles, and a role that cannot run yields one
row with the error, never a failed sweep. Sized to take a few seconds on one CPU core.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..roles import ALGORITHM_ROLES
from . import Arm, Experiment, Key, Row, register_experiment
from .common import COUNT_KINDS, cast_of, make, run_role, start_at_gap
from .rates import FAMILY, GAP

__all__ = ["NAME", "INSTANCE", "THEORY", "ReferenceKey", "ReferenceRow"]

NAME = "reference/curves"
#: the reference instance: small and mildly conditioned
INSTANCE = {"kappa": 4.0, "dim": 4, "R": 2, "params": dict(FAMILY["params"])}
#: role -> (family, preset, preset arguments, outer steps): the theorem each role is verified against
THEORY = {
    "aid-bio": ("quadratic", "icml21.thm1", {}, 40),
    "ba": ("quadratic", "loops22.table1", {}, 40),
    "itd-bio": ("quadratic", "icml21.thm2", {"eps": 0.1}, 40),
    "deterbio": ("quadratic", "arxiv20.thm1", {"eps": 0.1}, 40),
    "stocbio": ("stochastic-quadratic", "icml21.thm3", {"eps": 1.0, "c_S": 0.01}, 30),
    "bsa": ("stochastic-quadratic", "gw18", {}, 30),
    "ttsa": ("stochastic-quadratic", "hong20", {}, 30),
    "sid": ("stochastic-quadratic", "sid21.stoch-dec", {"factor": 2}, 10),
    "meta-itd-bio": ("meta-learning", "icml21.thm4", {}, 4),
    "meta-aid-bio": ("meta-learning", "icml21.thm4", {}, 4),
    # the solvers users compare against today (claims-modern.md), on the finite-sum quadratic
    "soba": ("finite-sum-quadratic", "soba22.thm1", {}, 30),
    "saba": ("finite-sum-quadratic", "saba22.thm3", {}, 30),
    "srba": ("finite-sum-quadratic", "srba24", {}, 30),
    "fsla": ("finite-sum-quadratic", "practical", {}, 30),
    "amigo": ("finite-sum-quadratic", "amigo22", {}, 30),
    "f2sa": ("finite-sum-quadratic", "kwon23", {}, 30),
    "f2ba": ("finite-sum-quadratic", "chen25", {}, 30),
    "f2sa-p": ("finite-sum-quadratic", "chen26", {}, 30),
    "mrbo": ("finite-sum-quadratic", "yang21", {}, 30),
    "vrbo": ("finite-sum-quadratic", "yang21", {}, 30),
}


@dataclass(frozen=True)
class ReferenceKey(Key):
    role: str
    family: str
    preset: str
    steps: int
    kappa: float
    dim: int
    R: int
    preset_args: dict = field(default_factory=dict)
    family_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ReferenceRow(Row):
    role: str
    algorithm: str
    family: str
    preset: str
    stochastic: bool
    kappa: float
    instance: int
    k: int
    grad_phi_sq: float
    gc_f: float
    gc_g: float
    jv: float
    hv: float
    mv: float
    samples_f: float
    samples_g: float
    time: float
    diverged_at: int
    outside_theory: str
    error: str


def _problem(key: ReferenceKey, env, seed):
    if key.family == "meta-learning":
        return make(key.family, env, batch=key.R, seed=seed, kappa=2.0, tasks=4, p=2, d=3, n=6)
    return make(key.family, env, kappa=key.kappa, dim_x=key.dim, dim_y=key.dim, batch=key.R, seed=seed,
                **key.family_params)


def measure(key: ReferenceKey, env, seed: int) -> list[ReferenceRow]:
    """Run ``key.role``'s player with its theory preset for ``key.steps`` steps; one row per (instance, k).

    The instance, the start and the algorithm's random streams come from the base seed ``env.seed``, not
    from the point's ``seed`` (a hash of the role): every algorithm sees the same instance."""
    seed = env.seed
    cast = cast_of(env)
    base = {"role": key.role, "family": key.family, "preset": key.preset, "kappa": key.kappa}
    try:
        algorithm = cast.algorithm(key.role)
        problem = _problem(key, env, seed)
        # the meta-learning family has no closed-form inf Phi: a fixed start off its symmetric point x = 0
        x0 = start_at_gap(problem, GAP, seed=seed) if problem.phi_star is not None else problem.default_x0() + 0.5
        trace = run_role(key.role, problem, key.steps, env, preset=key.preset, preset_args=dict(key.preset_args),
                         x0=x0, generator=seed)
    except Exception as exc:  # report it on the figure, never fail the sweep (plug-ins, missing parameters)
        return [ReferenceRow(**base, algorithm=str(key.role), stochastic=False, instance=-1, k=-1,
                             grad_phi_sq=float("nan"), **dict.fromkeys(COUNT_KINDS, float("nan")), time=0.0,
                             diverged_at=-1, outside_theory="", error=f"{type(exc).__name__}: {exc}")]
    g = trace.metrics["grad_phi_sq"].numpy()
    own = {c: trace.per_instance(c).numpy() for c in COUNT_KINDS}  # (n, R): each instance's own counts
    rows = []
    for i, k in enumerate(trace.iterations):
        for r in range(problem.R):
            rows.append(ReferenceRow(
                **base, algorithm=algorithm.name, stochastic=bool(algorithm.stochastic), instance=r, k=k,
                grad_phi_sq=float(g[i, r]), **{c: float(own[c][i, r]) for c in COUNT_KINDS},
                time=float(trace.time[i]), diverged_at=int(trace.diverged_at[r]),
                outside_theory="; ".join(trace.outside_theory), error=""))
    return rows


def _grid(profile: str) -> tuple[ReferenceKey, ...]:
    return tuple(ReferenceKey(role=role, family=fam, preset=preset, steps=steps, kappa=INSTANCE["kappa"],
                              dim=INSTANCE["dim"], R=INSTANCE["R"], preset_args=dict(args),
                              family_params=dict(INSTANCE["params"]) if fam != "meta-learning" else {})
                 for role, (fam, preset, args, steps) in THEORY.items())


register_experiment(Experiment(
    name=NAME, measure=measure, grid=_grid, key_type=ReferenceKey, row_type=ReferenceRow,
    arms=tuple(Arm(role, preset=THEORY[role][1], preset_args=THEORY[role][2], family=THEORY[role][0])
               for role in ALGORITHM_ROLES),
    summary="every algorithm role under its theory preset on one small instance (the report's reference curves)"))

