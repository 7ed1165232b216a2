"""Experiments of the SOBA framework: SOBA and SABA (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022) and SRBA
(Dagreou, Moreau, Vaiter, Ablin, AISTATS 2024), on ``finite-sum-quadratic`` (analytic/finite_sum.py).

Why this family: every sample is indexed (SAGA memories and SARAH differences are well defined), y*, v*, h = Phi,
grad h are closed forms, and the constants the theorems are stated in are exact (mu_G, L* = ||grad y*||, L_F,
L^G_11 = 0 since every Hessian is constant, L_h and, with a ridge lam > 0, mu_h). Its mean problem is the
``quadratic`` instance of the same seed whatever n and m, so a sweep over the numbers of samples changes the
samples only. Every algorithm runs through the cast (``common.run_role``) and is declared as an arm.

- ``soba/one-step`` (Lemmas 3.8, 3.9): SOBA's expected one-step errors computed EXACTLY, by enumerating every
  sample pair (i, j) in [n] x [m] (``EnumerationStreams`` pins the draws of a run), at states reached by one step
  of the algorithm, against the lemmas' right-hand sides with the instance's exact constants and the directions'
  exact second moments (by enumeration over the per-sample closed forms).
- ``soba/thm1-horizons`` (Theorem 1): SOBA with Theorem 1's constant steps for horizons T, the averaged
  squared hypergradient norm over the T steps; the public code's t^-1/2 schedule alongside (a baseline).
- ``saba/pl`` (Theorem 4, SABA against SOBA): SABA with Theorem 4's start (z_0 = z*(x_0), v_0 = v*(x_0), every
  memory at y_0) on a strongly convex h, run until machine precision; SOBA with constant steps (scaled copies of
  SABA's) until its noise floor.
- ``saba/memory-init``: SABA with Theorem 4's memories against the public code's zero memories, paired (same
  instances, same draws), from starts at several distances to the solution.
- ``srba/samples``: SRBA (preset ``srba24``) to eps over the numbers of samples n = m, oracle calls counted.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

import bilevelbench.analytic as an
from bilevelbench.analytic.rng import Streams
from bilevelbench.bounds.costs import cumulative
from bilevelbench.bounds.soba22 import lemma38, lemma39

from ..sweep import canon, point_seed
from . import Arm, Experiment, Key, Row, register_experiment
from .common import COUNT_KINDS, cast_of, complexity_to_eps, make, run_role, start_at_gap

__all__ = ["SOBA", "FAMILY", "EnumerationStreams", "v_star", "v_star_lipschitz", "machine_precision", "ONE_STEP",
           "THM1", "PL", "MEMORY", "SRBA", "CALL_KINDS", "decay_rate"]

FAMILY = "finite-sum-quadratic"
#: what an oracle call is in SRBA's complexity: a per-sample gradient, Hessian- or Jacobian-vector product
CALL_KINDS = ("gc_f", "gc_g", "hv", "jv")

#: per profile. Instances (why): ``onestep`` n != m (the enumeration tells the two draws apart by their range),
#: small n m (every pair is one run of the audited algorithm); ``thm1`` kappa 2 and L_h ~ 1, so that Theorem 1's
#: literal steps rho = T^-2/5, gamma = T^-3/5 are stable from T = 64 on (gamma/rho = T^-1/5 <= 0.44 while SOBA's
#: joint dynamics need it below ~ 2 mu/L_h = 1); ``pl`` a ridge lam = 1 (h strongly convex, mu_h = 1) and
#: batches of 4 of 16 samples (SAGA's rate is capped near S/n per step, so SABA reaches machine precision in
#: ~600 steps); ``memory`` the same instance with single samples of 32 (a memory takes ~n ln n steps to fill,
#: the phase the two starts differ in); ``srba`` starts at a gap 1e-2 with eps 1e-3, so that a SARAH estimator
#: that does not reduce the variance stalls above eps. Budgets: >= 3x the steps of the paper's algorithm (quick,
#: measured: SABA 600 steps to machine precision, SRBA K <= 330 at n = 256; tests check the ratio).
SOBA = {
    "quick": {"onestep": {"n": 6, "m": 5, "dim": 4, "kappa": 4.0, "noise": 0.5, "R": 4, "gap": 1.0, "delta": 1.0,
                          "steps": [{"T": 1000, "c_rho": 1.0, "c_gamma": 1.0}, {"T": 1000}, {"T": 10}]},
              "thm1": {"Ts": [64, 128, 256, 512, 1024], "R": 16},
              "pl": {"R": 8, "budget": 2400, "soba_steps": 800, "scales": [1.0, 0.5, 0.25]},
              "memory": {"R": 16, "gaps": [1.0, 1e-2], "epochs": 8},
              "srba": {"ns": [16, 64, 256], "R": 8, "max_steps": 1200}},
    "full": {"onestep": {"n": 8, "m": 6, "dim": 4, "kappa": 4.0, "noise": 0.5, "R": 8, "gap": 1.0, "delta": 1.0,
                         "steps": [{"T": 1000, "c_rho": 1.0, "c_gamma": 1.0}, {"T": 10000, "c_rho": 1.0,
                                                                               "c_gamma": 1.0},
                                   {"T": 1000}, {"T": 10}]},
             "thm1": {"Ts": [64, 128, 256, 512, 1024, 2048, 4096, 8192], "R": 32},
             "pl": {"R": 16, "budget": 3000, "soba_steps": 2400, "scales": [1.0, 0.5, 0.25, 0.125]},
             "memory": {"R": 32, "gaps": [1.0, 1e-2, 1e-4], "epochs": 8},
             "srba": {"ns": [16, 64, 256, 1024, 4096], "R": 16, "max_steps": 2000}},
}
#: the instances (family parameters besides n, m, batch, seed)
THM1_FAMILY = {"dim_x": 4, "dim_y": 4, "n": 32, "m": 32, "kappa": 2.0, "lam": 0.5, "coupling": 0.5, "noise": 0.25}
PL_FAMILY = {"dim_x": 4, "dim_y": 4, "kappa": 1.5, "lam": 1.0, "coupling": 0.25, "noise": 0.5}


def _eps(env) -> float:
    return float(np.finfo(np.float64 if env.dtype == "float64" else np.float32).eps)


def _instance_seed(env, name: str, config: dict) -> int:
    """The problem seed shared by every point of ``name`` with the same instance ``config``: the arms (and the
    sweeps over n) compared on one instance run on the same instances; the draws use each point's own seed."""
    return point_seed(env.seed, name, config) % (2**31)


# ====================================================================== the truth (bench side)
def v_star(problem, x):
    """v*(x) = -[grad_yy g]^-1 grad_y f at (x, y*(x)) (SOBA Sec. 2), from the problem's closed forms."""
    y = problem._y_star(x)
    return -torch.linalg.solve(problem._hess_yy(x, y), problem._grad_y_f(x, y).unsqueeze(-1)).squeeze(-1)


def v_star_lipschitz(problem) -> float:
    """||grad v*||: on the quadratic family v*(x) = -A^-1 (w (y*(x) - c) + l (c + B x)) is affine in x, so its
    Jacobian is read exactly (to round-off) by differences at the origin along the unit vectors; the worst
    instance's spectral norm."""
    x = torch.zeros(problem.R, problem.dim_x, dtype=problem.dtype, device=problem.device)
    base = v_star(problem, x)
    eye = torch.eye(problem.dim_x, dtype=problem.dtype, device=problem.device)
    J = torch.stack([v_star(problem, x + eye[k]) - base for k in range(problem.dim_x)], -1)
    return float(torch.linalg.matrix_norm(J, ord=2).max())


def machine_precision(problem, eps: float) -> float:
    """The level of ||grad h||^2 that counts as machine precision: (10^3 eps L_h (1 + ||x*||))^2. At the solution the
    representable iterates are spaced by eps ||x*|| per coordinate, so grad h can only be resolved to L_h eps
    (1 + ||x*||) up to the O(1) factors of rounding accumulated in a contracting recursion (its stationary
    amplitude is sqrt(d / (2 gamma mu_h)) ~ 10 rounding units here); 10^3 leaves another factor ~10 (and stays
    >= 10^19 below SOBA's floors)."""
    L_h = problem.constants.extra["L_h"]
    xn = float(problem.x_opt.norm(dim=-1).max())
    return (1e3 * eps * L_h * (1.0 + xn)) ** 2


# ====================================================================== Lemmas 3.8 / 3.9: exact one step
class EnumerationStreams(Streams):
    """Random streams whose draws are prescribed: the k-th G draw returns sample ``g[k]`` and the k-th F draw
    sample ``f[k]`` on every instance (a draw is G or F by its range: needs n != m). Running the algorithm once per
    pair (i, j) with the last draws pinned to (i, j) enumerates the expectation over one uniform pair exactly.
    Each draw must be of one sample (SOBA Alg. 1: one pair per step): anything else raises."""

    def __init__(self, R: int, n_g: int, n_f: int, g, f, device="cpu"):
        if n_g == n_f:
            raise ValueError("EnumerationStreams tells G and F draws apart by their range: needs n != m")
        super().__init__(list(range(R)), device=device)
        self.n_g, self.n_f = n_g, n_f
        self.plan = {"g": [int(i) for i in g], "f": [int(j) for j in f]}
        self.used = {"g": 0, "f": 0}

    def integers(self, high: int, size: int, replace: bool = True) -> torch.Tensor:
        which = {self.n_g: "g", self.n_f: "f"}.get(high)
        if which is None:
            raise ValueError(f"a draw from range {high} is neither G ({self.n_g}) nor F ({self.n_f})")
        if size != 1:
            raise ValueError(f"the enumeration needs one sample per draw (SOBA's one pair per step); got {size}")
        k = self.used[which]
        if k >= len(self.plan[which]):
            raise ValueError(f"more {which.upper()} draws than planned ({len(self.plan[which])}): the step draws "
                             "more than one sample pair (the lemmas are about SOBA's one pair (i, j) per step)")
        self.used[which] += 1
        return torch.full((self.R, 1), self.plan[which][k], dtype=torch.int64, device=self.device)

    def to(self, device):
        """The same plan on another device (the counters stay with the original: a run moves its streams once,
        before it draws)."""
        if torch.device(device) == self.device:
            return self
        out = EnumerationStreams(self.R, self.n_g, self.n_f, self.plan["g"], self.plan["f"], device=device)
        out.used = self.used  # shared, so that ``check_used`` on the original sees the run's draws
        return out

    def check_used(self):
        if self.used != {w: len(p) for w, p in self.plan.items()}:
            raise ValueError(f"the run drew {self.used} samples, planned {[len(p) for p in self.plan.values()]}: "
                             "not SOBA's one pair per step")


@dataclass(frozen=True)
class OneStepKey(Key):
    n: int
    m: int
    dim: int
    kappa: float
    noise: float
    R: int
    gap: float
    delta: float
    states: list
    steps: list


@dataclass(frozen=True)
class OneStepRow(Row):
    state: str
    steps: str
    instance: int
    rho: float
    gamma: float
    mu_G: float
    L_z_star: float
    L_v_star: float
    L_star: float
    L_F: float
    L11_G: float
    d_z: float
    d_v: float
    V_z: float
    V_v: float
    V_x: float
    lhs_z: float
    rhs_z: float
    lhs_v: float
    rhs_v: float
    tol_z: float
    tol_v: float
    pairs: int
    algorithm: str


#: the states of the one-step check: (name, direction of y0 - y*(x0), v_init). 'z-off-min': the inner error
#: along the eigenvector of grad_yy g with the smallest eigenvalue and v_0 solving the system at (x0, y0), so
#: that v's error is large against the d_z term of Lemma 3.9 (b_vz d_z); 'z-on': y0 = y*(x0), v_0 = v*(x0),
#: the errors are the noise of one step; 'z-off-max': the inner error along the top eigenvector, v_0 = 0
ONE_STEP_STATES = [["z-off-min", "min", "solve"], ["z-on", "none", "solve"], ["z-off-max", "max", "zero"]]


def _steps_label(pa: dict) -> str:
    lit = pa.get("c_rho") == 1.0 and pa.get("c_gamma") == 1.0
    return f"T={pa['T']}" + (" (c = c' = 1)" if lit else " (preset constants)")


def _second_moments(problem, x, z, v):
    """Exact E||D_z||^2, E||D_v||^2, E||D_x||^2 of SOBA's directions at (x, z, v) over one uniform pair (i, j)
    (SOBA eqs. 6-8), by enumeration of the per-sample closed forms: (R,) each."""
    ig, jf = problem.all_samples("g"), problem.all_samples("f")
    dz = problem.per_sample("grad_y_g", x, z, ig)
    hv, fy = problem.per_sample("hvp", x, z, ig, v), problem.per_sample("grad_y_f", x, z, jf)
    jv, fx = problem.per_sample("jvp", x, z, ig, v), problem.per_sample("grad_x_f", x, z, jf)
    Dv = hv[:, :, None, :] + fy[:, None, :, :]
    Dx = jv[:, :, None, :] + fx[:, None, :, :]
    return (dz**2).sum(-1).mean(1), (Dv**2).sum(-1).mean((1, 2)), (Dx**2).sum(-1).mean((1, 2))


def _roundoff(lhs, scale, factor, eps):
    """Absolute round-off bound of a mean of squared distances ||a - b||^2 whose vectors have norms <= scale:
    each difference is off by at most delta = factor eps scale (``factor`` = 4 (dim_x + dim_y) kappa for z*(x),
    one solve with condition number kappa; kappa^2 for v*(x), two nested solves), so its square by at most
    2 sqrt(lhs) delta + delta^2."""
    delta = factor * eps * scale
    return 2 * math.sqrt(max(lhs, 0.0)) * delta + delta * delta


def _measure_one_step(key: OneStepKey, env, seed: int) -> list[OneStepRow]:
    """For every state and step choice: one step of the audited SOBA from (x0, y0) with the prefix pair (i0, j0)
    gives the state (x, z, v) = the algorithm's own (``Trace.state_last``); then, for every pair (i, j), the
    same prefix and one more step pinned to (i, j): the mean over the n m pairs of ||z+ - z*(x+)||^2 and
    ||v+ - v*(x+)||^2 is the exact expectation of the lemmas' left-hand sides."""
    problem = make(FAMILY, env, dim_x=key.dim, dim_y=key.dim, n=key.n, m=key.m, kappa=key.kappa, noise=key.noise,
                   batch=key.R, seed=seed)
    c, e = problem.constants, problem.constants.extra
    n, m, R = problem.n_g, problem.n_f, problem.R
    eps = _eps(env)
    mu_G, L_F, L11 = e["mu_G"], e["L_F"], e["L_G_hess"]
    L_z, L_v = e["L_star"], v_star_lipschitz(problem)
    # the notes write one L* for z* and v*: the larger, which makes both lemmas' statements hold under either reading
    L_star = max(L_z, L_v)
    x0 = start_at_gap(problem, key.gap, seed=seed)
    ys = problem._y_star(x0)
    evecs = torch.linalg.eigh(problem._hess_yy(x0, ys))[1]
    dirs = {"none": torch.zeros_like(ys), "min": evecs[..., 0], "max": evecs[..., -1]}
    i0, j0 = seed % n, (seed // n) % m
    rows = []
    for name, direction, v_init in key.states:
        y0 = ys + key.delta * dirs[direction]
        for pa in key.steps:
            run = {"preset": "soba22.thm1", "preset_args": dict(pa), "x0": x0, "y0": y0, "score": False,
                   "v_init": v_init}
            pre = EnumerationStreams(R, n, m, [i0], [j0])
            tr = run_role("soba", problem, 1, env, generator=pre, **run)
            pre.check_used()
            x, z, v = (t.clone() for t in (tr.state_last.x, tr.state_last.y, tr.state_last.v))
            rho, gamma = tr.params["rho"], tr.params["gamma"]
            d_z = ((z - problem._y_star(x)) ** 2).sum(-1)
            d_v = ((v - v_star(problem, x)) ** 2).sum(-1)
            V_z, V_v, V_x = _second_moments(problem, x, z, v)
            lz = torch.zeros(R, dtype=torch.float64)
            lv = torch.zeros(R, dtype=torch.float64)
            sz = torch.zeros(R, dtype=torch.float64)
            sv = torch.zeros(R, dtype=torch.float64)
            for i in range(n):
                for j in range(m):
                    streams = EnumerationStreams(R, n, m, [i0, i], [j0, j])
                    s = run_role("soba", problem, 2, env, generator=streams, **run).state_last
                    streams.check_used()
                    zs, vs = problem._y_star(s.x), v_star(problem, s.x)
                    lz += ((s.y - zs) ** 2).sum(-1).to(lz)
                    lv += ((s.v - vs) ** 2).sum(-1).to(lv)
                    sz = torch.maximum(sz, (s.y.norm(dim=-1) + zs.norm(dim=-1)).to(sz))
                    sv = torch.maximum(sv, (s.v.norm(dim=-1) + vs.norm(dim=-1)).to(sv))
            lz, lv = lz / (n * m), lv / (n * m)
            fz = 4 * (problem.dim_x + problem.dim_y) * c.kappa
            for r in range(R):
                rz = lemma38(float(d_z[r]), rho, gamma, mu_G, L_star, float(V_z[r]), float(V_x[r]))
                rv = lemma39(float(d_v[r]), float(d_z[r]), rho, gamma, mu_G, L_star, L_F, L11, float(V_v[r]),
                             float(V_x[r]))
                rows.append(OneStepRow(
                    state=name, steps=_steps_label(pa), instance=r, rho=rho, gamma=gamma, mu_G=mu_G, L_z_star=L_z,
                    L_v_star=L_v, L_star=L_star, L_F=L_F, L11_G=L11, d_z=float(d_z[r]), d_v=float(d_v[r]),
                    V_z=float(V_z[r]), V_v=float(V_v[r]), V_x=float(V_x[r]), lhs_z=float(lz[r]), rhs_z=rz,
                    lhs_v=float(lv[r]), rhs_v=rv, tol_z=_roundoff(float(lz[r]), float(sz[r]), fz, eps),
                    tol_v=_roundoff(float(lv[r]), float(sv[r]), fz * c.kappa, eps), pairs=n * m,
                    algorithm=tr.algorithm))
    return rows


def _one_step_grid(profile):
    p = SOBA[profile]["onestep"]
    return (OneStepKey(n=p["n"], m=p["m"], dim=p["dim"], kappa=p["kappa"], noise=p["noise"], R=p["R"], gap=p["gap"],
                       delta=p["delta"], states=[list(s) for s in ONE_STEP_STATES],
                       steps=[dict(s) for s in p["steps"]]),)


ONE_STEP = "soba/one-step"
register_experiment(Experiment(
    name=ONE_STEP, measure=_measure_one_step, grid=_one_step_grid, key_type=OneStepKey, row_type=OneStepRow,
    arms=(Arm("soba", preset="soba22.thm1", preset_args={"T": 1000, "c_rho": 1.0, "c_gamma": 1.0},
              params=("v_init",), family=FAMILY, label="SOBA, one step (every sample pair)"),),
    summary="soba (preset soba22.thm1) one step from states reached by one step of the algorithm, the expectation "
            "over the sample pair computed exactly by enumerating every (i, j) on finite-sum-quadratic"))


# ====================================================================== Theorem 1: horizons T
@dataclass(frozen=True)
class Thm1Key(Key):
    Ts: list
    R: int
    family: dict
    gap: float
    c_rho: float
    c_gamma: float


@dataclass(frozen=True)
class Thm1Row(Row):
    arm: str
    T: int
    instance: int
    rho: float
    gamma: float
    avg_grad_sq: float
    last_grad_sq: float
    grad0_sq: float
    diverged_at: int
    audited: bool
    algorithm: str


def _measure_thm1(key: Thm1Key, env, seed: int) -> list[Thm1Row]:
    """SOBA with Theorem 1's steps (rho = c_rho T^-2/5, gamma = c_gamma T^-3/5, one sample pair per step) for
    each horizon T, from x0 at h(x0) - h* = gap and y0 = 0, v0 = 0: (1/T) sum_{t<T} ||grad h(x_t)||^2 per run.
    Alongside (a baseline, the paper's code): the public schedule rho_t = c_rho (t+1)^-1/2, gamma_t = c_gamma
    (t+1)^-1/2 for the longest T, its running averages read at every T."""
    problem = make(FAMILY, env, batch=key.R, seed=seed, **key.family)
    x0 = start_at_gap(problem, key.gap, seed=seed)
    y0 = torch.zeros(problem.R, problem.dim_y, dtype=problem.dtype, device=problem.device)
    rows = []
    for T in key.Ts:
        tr = run_role("soba", problem, T, env, preset="soba22.thm1",
                      preset_args={"T": T, "c_rho": key.c_rho, "c_gamma": key.c_gamma}, x0=x0, y0=y0,
                      generator=seed + T)
        g = tr.metrics["grad_phi_sq"].numpy()
        for r in range(problem.R):
            rows.append(Thm1Row(arm="thm1", T=T, instance=r, rho=tr.params["rho"], gamma=tr.params["gamma"],
                                avg_grad_sq=float(g[:T, r].mean()), last_grad_sq=float(g[-1, r]),
                                grad0_sq=float(g[0, r]), diverged_at=int(tr.diverged_at[r]), audited=True,
                                algorithm=tr.algorithm))
    Tmax = max(key.Ts)
    tr = run_role("soba", problem, Tmax, env, audited=False, x0=x0, y0=y0, generator=seed, rho=key.c_rho,
                  gamma=key.c_gamma, schedule="decreasing", variant="public", S_g=1, S_f=1)
    g = tr.metrics["grad_phi_sq"].numpy()
    for T in key.Ts:
        for r in range(problem.R):
            rows.append(Thm1Row(arm="public", T=T, instance=r, rho=key.c_rho, gamma=key.c_gamma,
                                avg_grad_sq=float(g[:T, r].mean()), last_grad_sq=float(g[T, r]),
                                grad0_sq=float(g[0, r]), diverged_at=int(tr.diverged_at[r]), audited=False,
                                algorithm=tr.algorithm))
    return rows


def _thm1_grid(profile):
    p = SOBA[profile]["thm1"]
    return (Thm1Key(Ts=list(p["Ts"]), R=p["R"], family=dict(THM1_FAMILY), gap=1.0, c_rho=1.0, c_gamma=1.0),)


THM1 = "soba/thm1-horizons"
register_experiment(Experiment(
    name=THM1, measure=_measure_thm1, grid=_thm1_grid, key_type=Thm1Key, row_type=Thm1Row,
    arms=(Arm("soba", preset="soba22.thm1", preset_args={"T": 1000, "c_rho": 1.0, "c_gamma": 1.0}, family=FAMILY,
              label="SOBA, Theorem 1 steps (c = c' = 1)"),
          Arm("soba", audited=False, params=("rho", "gamma", "schedule", "variant", "S_g", "S_f"), family=FAMILY,
              label="SOBA, public t^-1/2 schedule (baseline)")),
    summary="soba with Theorem 1's constant steps rho = T^-2/5, gamma = T^-3/5 for horizons T on finite-sum-quadratic "
            "(kappa 2): averaged ||grad h||^2 over T steps; the public t^-1/2 schedule alongside (baseline)"))


# ====================================================================== SABA Theorem 4 and SOBA's floors
@dataclass(frozen=True)
class PLKey(Key):
    arm: str
    scale: float
    audited: bool
    n: int
    m: int
    S: int
    R: int
    family: dict
    gap: float
    steps: int


@dataclass(frozen=True)
class PLRow(Row):
    arm: str
    scale: float
    instance: int
    rho: float
    gamma: float
    S: int
    mu_h: float
    L_h: float
    gap0: float
    mp_threshold: float
    status: str
    K: int
    steps_run: int
    budget: int
    final_grad_sq: float
    final_gap: float
    floor: float
    rate: float
    rate_points: int
    bound_ratio_max: float
    diverged_at: int
    t: list
    grad_sq: list
    gap: list
    algorithm: str


#: records every this many steps (the rate fit and the figures need no more)
PL_RECORD = 4


def decay_rate(t: np.ndarray, gap: np.ndarray) -> tuple[float, int]:
    """-slope of the least-squares line through (t, ln gap): the measured exponential decay rate per step, and the
    number of points it rests on (NaN with fewer than 3)."""
    ok = np.isfinite(gap) & (gap > 0)
    if ok.sum() < 3:
        return math.nan, int(ok.sum())
    A = np.vstack([t[ok], np.ones(ok.sum())]).T
    slope = float(np.linalg.lstsq(A, np.log(gap[ok]), rcond=None)[0][0])
    return -slope, int(ok.sum())


def _pl_problem(key, env):
    config = {"family": key.family, "n": key.n, "m": key.m, "R": key.R}
    return make(FAMILY, env, n=key.n, m=key.m, batch=key.R, seed=_instance_seed(env, PL, config), **key.family)


def _measure_pl(key: PLKey, env, seed: int) -> list[PLRow]:
    """SABA (preset saba22.thm4: memories at y_0, z_0 = z*(x_0), v_0 = v*(x_0) by CG, batches of S distinct samples)
    until ||grad h||^2 is at machine precision on every instance (or the budget); or SOBA with SABA's steps times
    ``scale`` and the same start (v_0 = v*(x_0)) for a fixed number of steps, its floor the mean ||grad h||^2 over
    the second half. Rate: the decay of ln(h - h*) per step, fitted on the records before machine precision."""
    problem = _pl_problem(key, env)
    e = problem.constants.extra
    x0 = start_at_gap(problem, key.gap, seed=0)
    y0 = problem._y_star(x0)
    mp = machine_precision(problem, _eps(env))
    thm4 = {"preset": "saba22.thm4", "preset_args": {"S_g": key.S, "S_f": key.S}}
    if key.arm == "saba":
        def stop(metrics):
            g = metrics["grad_phi_sq"]
            return len(g) % 8 == 0 and bool((torch.stack(g) <= mp).any(0).all())

        tr = run_role("saba", problem, key.steps, env, audited=key.audited, x0=x0, y0=y0, generator=seed, stop=stop,
                      record_every=PL_RECORD, **thm4)
    else:
        base = cast_of(env, False).resolved("saba", problem, **thm4)
        tr = run_role("soba", problem, key.steps, env, audited=key.audited, x0=x0, y0=y0, generator=seed,
                      record_every=PL_RECORD, rho=key.scale * base["rho"], gamma=key.scale * base["gamma"],
                      S_g=key.S, S_f=key.S, v_init="solve")
    t = np.asarray(tr.iterations, dtype=float)
    g = tr.metrics["grad_phi_sq"].numpy()
    gap = tr.metrics["phi"].numpy() - problem.phi_star
    gamma, mu_h = tr.params["gamma"], e["mu_h"]
    q = 1 - gamma * mu_h / 4
    rows = []
    for r in range(problem.R):
        hit = np.flatnonzero(g[:, r] <= mp)
        K = int(t[hit[0]]) if hit.size else -1
        end = hit[0] if hit.size else len(t)
        rate, pts = decay_rate(t[:end], gap[:end, r])
        if K >= 0:
            status = "reached"
        elif int(tr.diverged_at[r]) >= 0 or not np.isfinite(g[-1, r]):
            status = "diverged"
        else:
            status = "budget" if key.arm == "saba" else "floor"
        half = len(t) // 2
        rows.append(PLRow(
            arm=key.arm, scale=key.scale, instance=r, rho=tr.params["rho"], gamma=gamma, S=key.S, mu_h=mu_h,
            L_h=e["L_h"], gap0=float(gap[0, r]), mp_threshold=mp, status=status, K=K, steps_run=int(t[-1]),
            budget=key.steps, final_grad_sq=float(g[-1, r]), final_gap=float(gap[-1, r]),
            floor=float(g[half:, r].mean()), rate=rate, rate_points=pts,
            bound_ratio_max=float(np.max(gap[:end, r] / (q ** t[:end] * gap[0, r]))),
            diverged_at=int(tr.diverged_at[r]), t=[int(v) for v in t], grad_sq=[float(v) for v in g[:, r]],
            gap=[float(v) for v in gap[:, r]], algorithm=tr.algorithm))
    return rows


def _pl_grid(profile):
    p = SOBA[profile]["pl"]
    common = {"n": 16, "m": 16, "S": 4, "R": p["R"], "family": dict(PL_FAMILY), "gap": 1.0}
    keys = [PLKey(arm="saba", scale=1.0, audited=True, steps=p["budget"], **common)]
    keys += [PLKey(arm="soba", scale=s, audited=False, steps=p["soba_steps"], **common) for s in p["scales"]]
    return tuple(keys)


PL = "saba/pl"
register_experiment(Experiment(
    name=PL, measure=_measure_pl, grid=_pl_grid, key_type=PLKey, row_type=PLRow,
    arms=(Arm("saba", preset="saba22.thm4", preset_args={"S_g": 4, "S_f": 4}, family=FAMILY,
              label="SABA, Theorem 4 start (memories at y_0, C_0 = 0)"),
          Arm("soba", audited=False, params=("rho", "gamma", "S_g", "S_f", "v_init"), family=FAMILY,
              label="SOBA, constant steps (baseline)")),
    summary="saba (preset saba22.thm4, batches 4 of n = m = 16) on finite-sum-quadratic with a ridge (mu_h = 1) until "
            "machine precision; soba with SABA's steps times 1, 1/2, 1/4 (baseline) until its noise floor"))


# ====================================================================== SABA memory initialisation
@dataclass(frozen=True)
class MemoryKey(Key):
    gap: float
    n: int
    m: int
    S: int
    R: int
    family: dict
    epochs: int


@dataclass(frozen=True)
class MemoryRow(Row):
    arm: str
    gap0: float
    instance: int
    n: int
    S: int
    epoch: int
    t: list
    gap: list
    calls: list
    audited: bool
    algorithm: str


def _measure_memory(key: MemoryKey, env, seed: int) -> list[MemoryRow]:
    """SABA with Theorem 4's start (memories at y_0, audited) and the public code's (every memory at zero, the
    paper's implementation: a baseline), both with z_0 = z*(x_0), v_0 = v*(x_0), on the same instances with the same
    draws (paired), for ``epochs`` passes of n/S steps: h(x_t) - h* and the oracle calls spent (the paper's start
    pays one full pass at step 0)."""
    config = {"family": key.family, "n": key.n, "m": key.m, "R": key.R}
    problem = make(FAMILY, env, n=key.n, m=key.m, batch=key.R, seed=_instance_seed(env, MEMORY, config), **key.family)
    x0 = start_at_gap(problem, key.gap, seed=0)
    y0 = problem._y_star(x0)
    epoch = key.n // key.S
    steps = key.epochs * epoch
    rows = []
    for arm, audited, extra in (("paper", True, {}), ("zero", False, {"variant": "public"})):
        tr = run_role("saba", problem, steps, env, audited=audited, preset="saba22.thm4",
                      preset_args={"S_g": key.S, "S_f": key.S}, x0=x0, y0=y0, generator=seed, **extra)
        gap = tr.metrics["phi"].numpy() - problem.phi_star
        calls = sum(tr.per_instance(k).numpy() for k in CALL_KINDS)
        for r in range(problem.R):
            rows.append(MemoryRow(arm=arm, gap0=key.gap, instance=r, n=key.n, S=key.S, epoch=epoch,
                                  t=[int(v) for v in tr.iterations], gap=[float(v) for v in gap[:, r]],
                                  calls=[float(v) for v in calls[:, r]], audited=audited, algorithm=tr.algorithm))
    return rows


def _memory_grid(profile):
    p = SOBA[profile]["memory"]
    return tuple(MemoryKey(gap=g, n=32, m=32, S=1, R=p["R"], family=dict(PL_FAMILY), epochs=p["epochs"])
                 for g in p["gaps"])


MEMORY = "saba/memory-init"
register_experiment(Experiment(
    name=MEMORY, measure=_measure_memory, grid=_memory_grid, key_type=MemoryKey, row_type=MemoryRow,
    arms=(Arm("saba", preset="saba22.thm4", preset_args={"S_g": 1, "S_f": 1}, family=FAMILY,
              label="SABA, memories at y_0 (Theorem 4)"),
          Arm("saba", audited=False, preset="saba22.thm4", preset_args={"S_g": 1, "S_f": 1}, params=("variant",),
              family=FAMILY, label="SABA, memories at zero (public code, baseline)")),
    summary="saba (preset saba22.thm4, one sample per step, n = m = 32) with memories at y_0 against at zero "
            "(variant 'public', baseline), paired, from starts at h(x0) - h* = 1 and 1e-2 (1e-4 full)"))


# ====================================================================== SRBA over the numbers of samples
@dataclass(frozen=True)
class SrbaKey(Key):
    n: int
    m: int
    grid: list
    R: int
    family: dict
    gap: float
    eps: float
    max_steps: int
    audited: bool = True


@dataclass(frozen=True)
class SrbaRow(Row):
    n: int
    m: int
    instance: int
    status: str
    K: int
    eps: float
    gap: float
    rho: float
    gamma: float
    q: int
    S_g: int
    L_sample_yy: float
    L_ref: float
    steps_run: int
    budget: int
    calls: float
    per_step_calls: float
    struct_calls: float
    avg_grad_phi_sq: float
    last_grad_phi_sq: float
    diverged_at: int
    algorithm: str


@lru_cache(maxsize=64)
def _L_sample_yy(device: str, dtype: str, seed: int, n: int, R: int, family: str) -> float:
    """L_sample_yy of the grid's instance with n = m samples (built once per process: every point of the sweep
    reads the whole grid's)."""
    torch_dtype = {"float64": torch.float64, "float32": torch.float32}[dtype]
    problem = an.make_problem(FAMILY, device=device, dtype=torch_dtype, n=n, m=n, batch=R, seed=seed,
                              **json.loads(family))
    return float(problem.constants.extra["L_sample_yy"])


def _measure_srba(key: SrbaKey, env, seed: int) -> list[SrbaRow]:
    """SRBA (preset srba24: batches and restart period ceil(sqrt(n + m))) from h(x0) - h* = gap, y0 = y*(x0), until
    the averaged criterion (1/K) sum_{k<K} ||grad h(x_k)||^2 <= eps (squared eps, the paper's) on every instance or
    the budget: the oracle calls (per-sample gradients, HV, JV) spent to produce x_0..x_{K-1}.

    Steps. The O((n + m)^1/2 eps^-1) statement holds the smoothness constants fixed as n + m grows; on this family
    the per-sample smoothness L_sample_yy is a max over the n samples and grows with n, and the preset's step
    1/(3 L_sample_yy) with it would put 1/step's growth into the exponent. So every n of the grid runs the step
    of the grid's largest L_sample_yy (preset argument c_rho = L_sample_yy(n) / max over the grid <= 1: inside the
    preset's range at every n); batches and restart period stay the preset's ceil(sqrt(n + m))."""
    config = {"family": key.family, "R": key.R}  # the same mean problem (and x0) at every n
    seed_i = _instance_seed(env, SRBA, config)
    L_ref = max(_L_sample_yy(env.device, env.dtype, seed_i, n, key.R, canon(key.family)) for n in key.grid)
    problem = make(FAMILY, env, n=key.n, m=key.m, batch=key.R, seed=seed_i, **key.family)
    x0 = start_at_gap(problem, key.gap, seed=0)
    y0 = problem._y_star(x0)
    eps = key.eps
    L_n = problem.constants.extra["L_sample_yy"]

    def stop(metrics):
        g = metrics["grad_phi_sq"]
        if len(g) % 32:
            return False
        S = torch.stack(g).to(torch.float64).cumsum(0)
        avg = S / torch.arange(1, len(g) + 1, dtype=torch.float64)[:, None]
        return bool(((avg <= eps).any(0) | ~torch.isfinite(S[-1])).all())

    tr = run_role("srba", problem, key.max_steps, env, audited=key.audited, preset="srba24",
                  preset_args={"c_rho": L_n / L_ref}, x0=x0, y0=y0, generator=seed, stop=stop)
    res = complexity_to_eps(tr, eps)
    steps_run = tr.iterations[-1]
    own = {k: tr.per_instance(k).numpy() for k in COUNT_KINDS}
    per_step = sum((own[k][-1] - own[k][0]) for k in CALL_KINDS) / max(steps_run, 1)
    rows = []
    for r, row in enumerate(res):
        if row["K"] > 0:
            status = "reached"
        elif row["diverged_at"] >= 0 or not math.isfinite(row["last_grad_phi_sq"]):
            status = "diverged"
        else:
            status = "budget"
        struct = cumulative("srba", tr.params, row["K"] - 1, n=problem.n_g, m=problem.n_f) if row["K"] > 0 else {}
        rows.append(SrbaRow(
            n=key.n, m=key.m, instance=r, status=status, K=row["K"], eps=eps, gap=key.gap, rho=tr.params["rho"],
            gamma=tr.params["gamma"], q=int(tr.params["q"]), S_g=int(tr.params["S_g"]),
            L_sample_yy=L_n, L_ref=L_ref, steps_run=steps_run, budget=key.max_steps,
            calls=float(sum(row[k] for k in CALL_KINDS)), per_step_calls=float(per_step[r]),
            struct_calls=float(sum(struct.get(k, math.nan) for k in CALL_KINDS)) if struct else math.nan,
            avg_grad_phi_sq=row["avg_grad_phi_sq"], last_grad_phi_sq=row["last_grad_phi_sq"],
            diverged_at=row["diverged_at"], algorithm=tr.algorithm))
    return rows


def _srba_grid(profile):
    p = SOBA[profile]["srba"]
    return tuple(SrbaKey(n=n, m=n, grid=list(p["ns"]), R=p["R"], family=dict(PL_FAMILY), gap=1e-2, eps=1e-3,
                         max_steps=p["max_steps"]) for n in p["ns"])


SRBA = "srba/samples"
register_experiment(Experiment(
    name=SRBA, measure=_measure_srba, grid=_srba_grid, key_type=SrbaKey, row_type=SrbaRow,
    arms=(Arm("srba", preset="srba24", preset_args={"c_rho": 1.0}, family=FAMILY,
              label="SRBA (batches and period ceil(sqrt(n + m)), one step for the grid)"),),
    summary="srba (preset srba24) on finite-sum-quadratic with n = m samples: oracle calls to the averaged "
            "criterion E||grad h||^2 <= eps over n + m"))
