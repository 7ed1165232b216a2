"""Experiments of the modern stochastic claims (claims-modern.md): BSA's randomized truncated Neumann estimator by
exact enumeration, BSA and TTSA over a grid of horizons, MRBO, VRBO and AmIGO to a grid of targets.

Family and why. ``finite-sum-quadratic`` (analytic/finite_sum.py): exact per-sample oracles and constants, the mean
problem a ``quadratic`` instance, and the exact smoothness L_h of Phi (Hess Phi constant when the upper level is
convex). The rate instances take dim 2 (the rates in eps do not depend on d, and every oracle call is then a few
microseconds of dispatch), kappa = 2, noise 0.3 at both levels (per-sample curvature L_s = 2.5 L, so the Neumann
series needs Theta(kappa_s log K) = a few dozen factors, not hundreds), a ridge lam = 1 and coupling 0.5 in the upper
level so that Phi is strongly convex with L_h/mu_h = 1.5 (Phi's transient, gap/(step K), ends within a few dozen
steps at the x steps below, so that the grids see the rates' asymptotic regime, not the transient). Every run starts
at Phi(x_0) - inf Phi = 1 (``start_at_gap``), y_0 = 0.

Common random numbers. Every point of a horizon or eps sweep, and both arms of the AmIGO comparison, run the same R
instances with the same random streams (``shared_seed``: derived from the base seed and the instance only), so that
the grid's variable is the only difference between points; the judges resample runs paired across points.

Criterion. The papers' E||grad Phi(x_R)||^2 <= eps with R uniform over the iterates (squared eps): the mean over the
R independent runs (different instances and random streams) of (1/K) sum_{k<K} ||grad Phi(x_k)||^2, read from the
exact hypergradient between iterations (``common.scorer``).

- ``enum/neumann-randomized`` (bsa18.estimator, bsa18.bias): the component ``neumann.randomized`` (audited) applied
  to grad_y F(x, y; xi_j) for every upper sample j, every sequence of single Hessian samples (zeta_1..zeta_{b-1}) in
  {0..n-1}^(b-1) and every p in {0..b-1} (rotated over the instances, so that instances of one call hold different
  p), n = 3, m = 3 (dim 3: the per-sample Hessians differ in every direction but the mu one, and two directions are
  coupled to x), the same instances for every b: the exact expectation over the estimator's law, no Monte Carlo.
  The component is called as BSA calls it (``algorithms.stochastic.randomized_estimate``: one mini-batch object
  per factor, the counted HVP with the instances' active masks) with ``factors = b - 1`` (the GPU path: the result
  may not depend on it).
- ``horizon/bsa/gw18`` and ``horizon/ttsa/hong20``: one run of K steps per horizon K (their steps depend on K), R
  runs per horizon; rows per run: the averaged criterion, the per-instance sample counts and the structural ones
  (``bounds.costs``: iterations x per-step cost of the run's parameters, in expectation over p).
- ``eps/mrbo/yang21``, ``eps/vrbo/yang21``, ``eps/amigo/*``: one point per target eps (the presets depend on eps),
  run until the mean criterion is met (then 10% further, so that a bootstrap over runs rarely runs out) or the cap;
  rows per run with the whole trajectory (lists) so that the judges can bootstrap the mean criterion over runs.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.bounds import modern as bm
from bilevelbench.bounds.costs import cumulative, step_costs

from ..sweep import point_seed
from . import Arm, Experiment, Key, Row, register_experiment
from .common import cast_of, make, run_role, start_at_gap
from .stochastic_common import region_point

__all__ = ["FAMILY", "RATE_FAMILY", "ENUM", "NEUMANN", "BSA", "TTSA", "MRBO", "VRBO", "AMIGO_WARM", "AMIGO_COLD",
           "HORIZONS", "EPS", "EnumKey", "EnumRow", "HorizonKey", "HorizonRow", "EpsKey", "EpsRow",
           "mean_criterion", "first_hit"]

FAMILY = "finite-sum-quadratic"
#: the rate instance (module docstring)
RATE_FAMILY = {"kappa": 2.0, "dim": 2, "noise": 0.3, "n": 64, "lam": 1.0, "coupling": 0.5}
GAP = 1.0

NEUMANN = "enum/neumann-randomized"
BSA = "horizon/bsa/gw18"
TTSA = "horizon/ttsa/hong20"
MRBO = "eps/mrbo/yang21"
VRBO = "eps/vrbo/yang21"
AMIGO_WARM = "eps/amigo/warm"
AMIGO_COLD = "eps/amigo/restarted"

#: enumeration sizes: n lower samples, m upper samples, the b grid, R instances (points x)
ENUM = {"quick": {"n": 3, "m": 3, "bs": (1, 2, 3, 4, 5), "R": 4},
        "full": {"n": 3, "m": 3, "bs": (1, 2, 3, 4, 5, 6), "R": 8}}
#: horizon grids (x2 steps) and runs per horizon
HORIZONS = {"quick": {"Ks": (16, 32, 64, 128, 256), "R": 16},
            "full": {"Ks": (16, 32, 64, 128, 256, 512, 1024), "R": 32}}
#: eps grids (Phi(x_0) - inf Phi = 1), runs per point, step caps (>= 3x the paper's measured need: claims module)
EPS = {
    "mrbo": {"quick": {"eps": (0.4, 0.2, 0.1), "R": 16, "cap": 2400},
             "full": {"eps": (0.4, 0.2, 0.1, 0.05, 0.025), "R": 32, "cap": 8000}},
    "vrbo": {"quick": {"eps": (0.4, 0.2, 0.1), "R": 16, "cap": 600},
             "full": {"eps": (0.4, 0.2, 0.1, 0.05, 0.025), "R": 32, "cap": 2400}},
    "amigo": {"quick": {"eps": (0.1, 0.04), "R": 16, "cap": 1500},
              "full": {"eps": (0.1, 0.05), "R": 32, "cap": 3000}},
}


def shared_seed(env, R: int, fam: dict | None = None) -> int:
    """The seed of the rate instances and of the runs' random streams: the same at every grid point of a sweep (and
    in every arm of a comparison), derived from the base seed and the instance's description only. Common random
    numbers: the runs at two grid points differ only by the grid's variable, so the fits see the variable's effect,
    not a fresh draw of instances per point, and the judges bootstrap the runs paired across points."""
    return point_seed(env.seed, "modern-stochastic/rate-instances", {"R": R, "family": {**RATE_FAMILY, **(fam or {})}})


def rate_problem(env, seed: int, R: int, fam: dict | None = None):
    """The rate instance (module docstring) with R instances."""
    f = {**RATE_FAMILY, **(fam or {})}
    return make(FAMILY, env, kappa=f["kappa"], dim_x=f["dim"], dim_y=f["dim"], batch=R, seed=seed, noise=f["noise"],
                noise_f=f["noise"], n=f["n"], m=f["n"], lam=f["lam"], coupling=f["coupling"])


def _c_beta(problem, rel: float) -> float:
    """The preset constant c_beta that puts the x-step scale at rel/L_h (the presets scale it by 1/L_Phi, Lemma 2's
    bound, here 6x the exact L_h): the originals' constant was not available (claims module)."""
    return rel * problem.constants.L_phi / float(problem.constants.extra["L_h"])


# ====================================================================== exact enumeration of the estimator
@dataclass(frozen=True)
class EnumKey(Key):
    n: int
    m: int
    bs: tuple
    R: int
    dim: int = 3
    kappa: float = 2.0
    noise: float = 1.0
    scale: float = 0.2


@dataclass(frozen=True)
class EnumRow(Row):
    instance: int
    b: int
    n: int
    m: int
    terms: int
    d: int
    eta: float
    mu: float
    L_sample: float
    err_v: float
    cond_v: float
    bias_measured: float
    bias_exact: float
    bias_scale: float
    bound_family: float
    bound_point: float
    C: float
    C_gxy: float
    C_point: float
    C_gxy_point: float
    inside: bool


def _enum_measure(key: EnumKey, env, seed: int) -> list[EnumRow]:
    p = make(FAMILY, env, kappa=key.kappa, dim_x=key.dim, dim_y=key.dim, batch=key.R, seed=seed, noise=key.noise,
             noise_f=key.noise, n=key.n, m=key.m)
    c = p.constants
    x, y = region_point(p, seed, key.scale)
    inside = (torch.cat([x, y], -1).norm(dim=-1) <= c.extra["radius"]).cpu()
    Ls = float(c.extra["L_sample_yy"])
    eta, R = 1.0 / Ls, key.R
    oracle = CountedOracle(p)
    product = cast_of(env).component("neumann.randomized")

    def hvp(u, idx, active=None):
        return oracle.hvp(x, y, u, idx, active=active)

    rot = torch.arange(R, device=p.device)
    H, J = p._hess_yy(x, y), p._jac_xy(x, y)  # the mean Hessian A and the mean cross derivative -B'
    gy_mean = p._grad_y_f(x, y)
    Jn = torch.linalg.matrix_norm(J, ord=2)
    C, C_gxy = float(c.M), float(c.extra["L_G_xy"])
    rows = []
    for b in key.bs:
        total = torch.zeros_like(y)
        norms = torch.zeros(R, dtype=y.dtype, device=y.device)
        gx_mean = torch.zeros_like(x)
        terms = 0
        for j in range(key.m):
            (bf,) = oracle.minibatches("f", torch.full((R, 1), j, device=p.device), [1])
            gy, gx = oracle.grad_y_f(x, y, bf), oracle.grad_x_f(x, y, bf)
            gx_mean = gx_mean + gx / key.m
            for seq in itertools.product(range(key.n), repeat=b - 1):
                idx = torch.tensor(seq, dtype=torch.int64, device=p.device).expand(R, b - 1)
                batches = oracle.minibatches("g", idx, [1] * (b - 1)) if b > 1 else []
                for q in range(b):
                    pr = ((rot + q) % b).unsqueeze(-1)
                    v = product(hvp, gy, pr, batches, eta, b - 1)
                    total, norms, terms = total + v, norms + v.norm(dim=-1), terms + 1
        Ev = total / terms
        target = bm.neumann_mean(H, gy_mean, eta, b)
        err_v = (Ev - target).norm(dim=-1) / target.norm(dim=-1)
        cond = norms / terms / target.norm(dim=-1)
        gbar = gx_mean - torch.einsum("rij,rj->ri", J, torch.linalg.solve(H, gy_mean.unsqueeze(-1)).squeeze(-1))
        Eh = gx_mean - torch.einsum("rij,rj->ri", J, Ev)
        bias_meas = (Eh - gbar).norm(dim=-1)
        bias_ex = bm.bias_exact(H, J, gy_mean, eta, b).norm(dim=-1)
        scale = Jn * target.norm(dim=-1)  # the size of the terms whose difference is the bias
        for r in range(R):
            Cp, Jp = float(gy_mean[r].norm()), float(Jn[r])
            rows.append(EnumRow(
                instance=r, b=b, n=key.n, m=key.m, terms=terms, d=key.dim, eta=eta, mu=c.mu, L_sample=Ls,
                err_v=float(err_v[r]), cond_v=float(cond[r]), bias_measured=float(bias_meas[r]),
                bias_exact=float(bias_ex[r]), bias_scale=float(scale[r]),
                bound_family=bm.bias_bound(C_gxy, C, c.mu, Ls, b), bound_point=bm.bias_bound(Jp, Cp, c.mu, Ls, b),
                C=C, C_gxy=C_gxy, C_point=Cp, C_gxy_point=Jp, inside=bool(inside[r])))
    return rows


register_experiment(Experiment(
    name=NEUMANN, measure=_enum_measure, key_type=EnumKey, row_type=EnumRow,
    grid=lambda profile: (EnumKey(n=ENUM[profile]["n"], m=ENUM[profile]["m"], bs=tuple(ENUM[profile]["bs"]),
                                  R=ENUM[profile]["R"]),),
    arms=(Arm("neumann.randomized", family=FAMILY, label="randomized truncated Neumann product (audited)"),),
    summary="the randomized truncated Neumann estimator (component neumann.randomized, audited) by exact enumeration: "
            "finite-sum-quadratic (dim 3, kappa 2, noise 1 at both levels, n = 3 lower and m = 3 upper samples), "
            "eta = 1/L_s (per-sample curvature), b = 1..5 (quick) or 1..6 (full), every upper sample, every sequence "
            "of single Hessian samples and every p in {0..b-1}; at a random point (x, y) of the constants' ball (0.2 "
            "of its radius); R = 4 (quick) or 8 (full) instances, the same for every b"))


# ====================================================================== horizon sweeps (BSA, TTSA)
@dataclass(frozen=True)
class HorizonKey(Key):
    role: str
    preset: str
    horizon: int
    R: int
    c_beta_rel: float = 1.0
    preset_args: dict = field(default_factory=dict)
    family: dict = field(default_factory=dict)
    gap: float = GAP


@dataclass(frozen=True)
class HorizonRow(Row):
    instance: int
    horizon: int
    algorithm: str
    avg: float
    last: float
    samples_f: float
    samples_g: float
    gc_f: float
    gc_g: float
    struct_samples_f: float
    struct_samples_g: float
    struct_gc_f: float
    struct_gc_g: float
    b: int
    x_step: float
    diverged_at: int
    outside_theory: str


def _horizon_measure(key: HorizonKey, env, seed: int) -> list[HorizonRow]:
    from bilevelbench.algorithms.stochastic import neumann_terms

    seed = shared_seed(env, key.R, key.family)
    p = rate_problem(env, seed, key.R, key.family)
    x0 = start_at_gap(p, key.gap, seed=seed)
    cast = cast_of(env)
    args = {**key.preset_args, "c_beta": _c_beta(p, key.c_beta_rel)}
    K = key.horizon
    trace = run_role(key.role, p, K, env, preset=key.preset, preset_args=args, x0=x0, generator=seed)
    g = trace.metrics["grad_phi_sq"].numpy()  # (K + 1, R): records 0..K
    n = g.shape[0] - 1
    avg = g[:K].mean(0) if n == K else np.full(g.shape[1], math.inf)  # a diverged run is frozen, never averaged
    own = {k: trace.per_instance(k).numpy()[-1] for k in ("samples_f", "samples_g", "gc_f", "gc_g")}
    params = trace.params
    struct = cumulative(key.role, params, K, horizon=K)
    b = neumann_terms(params, K)
    x_step = params["beta"] / math.sqrt(K) if key.role == "bsa" else params["beta"] * K ** (-params["exp_x"])
    name = cast.algorithm(key.role).name
    return [HorizonRow(instance=r, horizon=K, algorithm=name, avg=float(avg[r]), last=float(g[-1, r]),
                       **{k: float(v[r]) for k, v in own.items()},
                       **{f"struct_{k}": struct[k] for k in own}, b=int(b), x_step=float(x_step),
                       diverged_at=int(trace.diverged_at[r]), outside_theory="; ".join(trace.outside_theory))
            for r in range(g.shape[1])]


def _horizon_experiment(name: str, role: str, preset: str, summary: str, preset_args: dict | None = None):
    pa = dict(preset_args or {})

    def grid(profile):
        h = HORIZONS[profile]
        return tuple(HorizonKey(role=role, preset=preset, horizon=K, R=h["R"], preset_args=pa) for K in h["Ks"])

    return register_experiment(Experiment(
        name=name, measure=_horizon_measure, grid=grid, key_type=HorizonKey, row_type=HorizonRow,
        arms=(Arm(role, preset=preset, preset_args={**pa, "c_beta": 1.0}, family=FAMILY, label=f"{role} (audited)"),),
        summary=summary))


_RATE_TXT = ("finite-sum-quadratic (dim 2, kappa 2, noise 0.3, n = m = 64, lam 1, coupling 0.5: L_h/mu_h = 1.5), "
             "Phi(x_0) - inf Phi = 1, y_0 = 0")
_horizon_experiment(
    BSA, "bsa", "gw18",
    "BSA (gw18 preset: t_k = ceil(sqrt(k+1)) SGD steps, b = ceil(kappa_s ln(K+1)) Neumann terms, single samples) "
    "with x step c_beta/(L_Phi sqrt K), c_beta = L_Phi/L_h; one run of K steps per horizon K (quick 16..256, full "
    f"16..1024, x2), R runs (quick 16, full 32); {_RATE_TXT}")
_horizon_experiment(
    TTSA, "ttsa", "hong20",
    "TTSA (hong20 preset: y step K^-2/5/L_s, x step c_beta K^-3/5/L_Phi, b = ceil(kappa_s ln(K+1)), fresh cross-term "
    "sample) with c_beta = L_Phi/L_h; one run of K steps per horizon K (quick 16..256, full 16..1024, x2), R runs "
    f"(quick 16, full 32); {_RATE_TXT}")


# ====================================================================== eps sweeps (MRBO, VRBO, AmIGO)
@dataclass(frozen=True)
class EpsKey(Key):
    role: str
    preset: str
    eps: float
    R: int
    cap: int
    preset_eps: bool = True
    preset_args: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    audited: bool = True
    family: dict = field(default_factory=dict)
    gap: float = GAP


@dataclass(frozen=True)
class EpsRow(Row):
    instance: int
    eps: float
    algorithm: str
    steps_run: int
    cap: int
    reached: bool
    K: int
    diverged_at: int
    grad_sq: list
    samples_f: list
    samples_g: list
    calls: list
    struct_samples_f: list
    struct_samples_g: list
    struct_calls: list
    outside_theory: str


def mean_criterion(grad_sq: np.ndarray) -> np.ndarray:
    """The mean over runs of (1/K) sum_{k<K} ||grad Phi(x_k)||^2, K = 1..steps: grad_sq (steps + 1, R) -> (steps,)."""
    g = grad_sq[:-1] if grad_sq.shape[0] > 1 else grad_sq
    return (np.cumsum(g, axis=0) / np.arange(1, g.shape[0] + 1)[:, None]).mean(1)


def first_hit(curve: np.ndarray, eps: float) -> int:
    """The first K (1-based) with curve[K-1] <= eps, or -1."""
    hit = np.flatnonzero(curve <= eps)
    return int(hit[0]) + 1 if hit.size else -1


def _eps_measure(key: EpsKey, env, seed: int) -> list[EpsRow]:
    seed = shared_seed(env, key.R, key.family)
    p = rate_problem(env, seed, key.R, key.family)
    x0 = start_at_gap(p, key.gap, seed=seed)
    cast = cast_of(env, key.audited)
    args = {**key.preset_args, **({"eps": key.eps} if key.preset_eps else {})}
    state = {"S": None, "n": 0, "hit": None}

    def stop(metrics):
        # the criterion averages x_0..x_{K-1}: record k = K holds x_K, which is not averaged yet
        g = metrics["grad_phi_sq"]
        while state["n"] < len(g) - 1:
            v = g[state["n"]].to(torch.float64)
            state["S"] = v if state["S"] is None else state["S"] + v
            state["n"] += 1
            if state["hit"] is None and float((state["S"] / state["n"]).mean()) <= key.eps:
                state["hit"] = state["n"]
        return state["hit"] is not None and state["n"] >= max(state["hit"] + 1, math.ceil(1.1 * state["hit"]))

    trace = run_role(key.role, p, key.cap, env, audited=key.audited, preset=key.preset, preset_args=args, x0=x0,
                     generator=seed, stop=stop, **key.params)
    g = trace.metrics["grad_phi_sq"].numpy()
    steps = trace.iterations[-1]
    K = first_hit(mean_criterion(g), key.eps)
    own = {k: trace.per_instance(k).numpy() for k in ("samples_f", "samples_g", "gc_f", "gc_g", "jv", "hv")}
    calls = own["gc_f"] + own["gc_g"] + own["jv"] + own["hv"]
    cost = step_costs(key.role, trace.params, np.arange(steps), n=p.n_g, m=p.n_f)
    struct = {k: np.concatenate([[0.0], np.cumsum(v)]) for k, v in cost.items()}
    s_calls = struct["gc_f"] + struct["gc_g"] + struct["jv"] + struct["hv"]
    name = cast.algorithm(key.role).name
    out = []
    for r in range(g.shape[1]):
        out.append(EpsRow(
            instance=r, eps=key.eps, algorithm=name, steps_run=steps, cap=key.cap, reached=K > 0, K=K,
            diverged_at=int(trace.diverged_at[r]), grad_sq=g[:, r].tolist(), samples_f=own["samples_f"][:, r].tolist(),
            samples_g=own["samples_g"][:, r].tolist(), calls=calls[:, r].tolist(),
            struct_samples_f=struct["samples_f"].tolist(), struct_samples_g=struct["samples_g"].tolist(),
            struct_calls=s_calls.tolist(), outside_theory="; ".join(trace.outside_theory)))
    return out


def _eps_experiment(name: str, role: str, preset: str, which: str, summary: str, *, preset_eps: bool = True,
                    preset_args: dict | None = None, params: dict | None = None, audited: bool = True,
                    label: str = ""):
    pa, pr = dict(preset_args or {}), dict(params or {})

    def grid(profile):
        e = EPS[which][profile]
        return tuple(EpsKey(role=role, preset=preset, eps=eps, R=e["R"], cap=e["cap"], preset_eps=preset_eps,
                            preset_args=pa, params=pr, audited=audited) for eps in e["eps"])

    arm = Arm(role, audited=audited, preset=preset, preset_args={**pa, **({"eps": 0.1} if preset_eps else {})},
              params=tuple(pr), family=FAMILY, label=label or f"{role} ({'audited' if audited else 'baseline'})")
    return register_experiment(Experiment(name=name, measure=_eps_measure, grid=grid, key_type=EpsKey,
                                          row_type=EpsRow, arms=(arm,), summary=summary))


_eps_experiment(
    MRBO, "mrbo", "yang21", "mrbo",
    "MRBO (yang21 preset: eta_k = 1/(m0 + k)^(1/3), STORM weights 10 eta^2, Q = ceil(kappa ln(1/eps)), single samples) "
    f"to each eps of the grid (quick 0.4, 0.2, 0.1; full down to 0.05), R runs (quick 16, full 32); {_RATE_TXT}")
_eps_experiment(
    VRBO, "vrbo", "yang21", "vrbo",
    "VRBO (yang21 preset: restart batch S1 = ceil(1/eps) every q = ceil(eps^-1/2) steps, small batches S2 = "
    "ceil(eps^-1/2), Q = ceil(kappa ln(1/eps))) with m = 3 inner steps (independent of eps; see vrbo21.rate) to each "
    f"eps of the grid (quick 0.4, 0.2, 0.1; full down to 0.025), R runs (quick 16, full 32); {_RATE_TXT}",
    params={"m": 3})
_eps_experiment(
    AMIGO_WARM, "amigo", "amigo22", "amigo",
    "AmIGO (amigo22 preset: T = M = ceil(kappa) SGD steps on y and z, steps 1/L_s, outer step 1/(8 L_h), single "
    f"samples), warm-started (audited), to eps (quick 0.1 and 0.04, full 0.1 and 0.05), R runs; {_RATE_TXT}",
    preset_eps=False, params={"warm": True}, label="AmIGO warm-started (audited)")
_eps_experiment(
    AMIGO_COLD, "amigo", "amigo22", "amigo",
    "AmIGO as eps/amigo/warm but restarted from y_0 = 0 and z = 0 at every outer step (warm = False; the paper's "
    "implementation, a baseline arm)", preset_eps=False, params={"warm": False}, audited=False,
    label="AmIGO restarted from zero (baseline)")
