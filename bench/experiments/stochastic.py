"""Experiments that run the stochastic optimizers (ICML 2021 Sec. 4.2 and 5, arXiv Theorems 2-3): stocBiO's
complexity to eps in kappa (Theorem 3), its error floor against Q and the batch sizes (eq. (9)), meta-learning's
floor against the task batch (ICML Theorem 4), samples to eps of stocBiO, BSA and TTSA (Table 2), and the
averaged stationarity of stocBiO and of deterBiO with task sampling against arXiv Theorems 2 and 3.

Every run goes through the cast (``run_role``): the algorithm roles ``stocbio``, ``bsa``, ``ttsa`` and
``meta-itd-bio`` are audited arms, and the components those algorithms call (stocBiO's Neumann estimators and
schedule, BSA/TTSA's randomized Neumann product, ITD's reverse recursion) are reached through them.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

import bilevelbench.bounds as bd
from bilevelbench.bounds.costs import cumulative, randomized_sd

from ..sweep import point_seed
from . import Arm, Experiment, Key, Row, register_experiment
from .common import cast_of, complexity_to_eps, make, run_role, start_at_gap
from .rates import GAP, RateKey, RateRow
from .rates import _measure as rate_measure
from .stochastic_common import (
    EST_FAMILY,
    META,
    descend_to_stationary,
    local_smoothness,
    meta_problem,
    per_sample,
    stoch_problem,
)

__all__ = ["STOCH_FAMILY", "RATE", "RATE_CAP", "FLOOR", "FLOOR_GRIDS", "META_FLOOR", "TABLE2_ARMS", "TABLE2_BUDGET",
           "table2_name", "THM2", "THM3", "FloorKey", "FloorRow", "MetaFloorKey", "MetaFloorRow", "Table2Key",
           "Table2Row", "AvgKey", "AvgRow"]

def shared_seed(env, experiment: str, **group) -> int:
    """A problem seed shared by every point of one group of a sweep (``point_seed`` of the group, not of the point):
    the swept values are then compared on the same instances, and only the algorithm's draws (seeded by the point)
    differ between points."""
    return point_seed(env.seed, experiment, {"shared instances": group})


#: the finite-sum family of the stochastic rate and comparison sweeps (noise in G and F)
STOCH_FAMILY = {"name": "stochastic-quadratic", "params": {"noise": 0.3, "noise_f": 0.3, "n_f": 64, "n_g": 64}}


# ====================================================================== ICML Theorem 3: counts to eps in kappa
RATE = "rate/stocbio/icml21.thm3"
#: eps of the stocBiO rate sweep: its batch sizes grow like kappa^5/eps, so a smaller eps leaves no kappa range
RATE_EPS = 0.5
#: step caps: at least 3x the most steps stocBiO's preset needs on the grid (measured on the quick profile:
#: RATE_NEEDED; tests/bench/test_claims_icml21_stochastic.py checks the ratio)
RATE_CAP = {"quick": 600, "full": 2400}


def _rate_grid(profile: str) -> tuple[RateKey, ...]:
    quick = profile == "quick"
    kappas = (1.5, 2.0, 3.0) if quick else (1.5, 2.0, 3.0, 4.0)
    return tuple(RateKey(role="stocbio", preset="icml21.thm3", kappa=k, eps=RATE_EPS * GAP, R=4 if quick else 8,
                         dim=5, gap=GAP, max_steps=RATE_CAP[profile], family=STOCH_FAMILY["name"],
                         family_params=dict(STOCH_FAMILY["params"]), preset_args={"eps": RATE_EPS * GAP})
                 for k in kappas)


@dataclass(frozen=True)
class StocRateRow(RateRow):
    """A rate row with the instance's per-sample condition number kappa_s = L_s/mu (L_s = max(L, sup_zeta
    lambda_max grad_yy G(.; zeta)), ``algorithms.stochastic_presets.sample_L``): Assumption 2 holds for every
    sample, and stocBiO's theory preset sets its loop lengths N, Q from kappa_s."""

    kappa_s: float


def stoc_rate_measure(key: RateKey, env, seed: int) -> list[StocRateRow]:
    """``rates`` complexity-to-eps sweep of stocBiO, each row with the instance's kappa_s."""
    from bilevelbench.algorithms.stochastic_presets import sample_L

    rows = rate_measure(key, env, seed)
    p = make(key.family, env, kappa=key.kappa, dim_x=key.dim, dim_y=key.dim, batch=key.R, seed=seed,
             **key.family_params)
    ks = sample_L(p) / p.constants.mu
    return [StocRateRow(**dataclasses.asdict(r), kappa_s=ks) for r in rows]


register_experiment(Experiment(
    name=RATE, measure=stoc_rate_measure, grid=_rate_grid, key_type=RateKey, row_type=StocRateRow,
    arms=(Arm("stocbio", preset="icml21.thm3", preset_args={"eps": RATE_EPS}, family=STOCH_FAMILY["name"],
              label="stocBiO"),),
    summary="stocBiO with preset icml21.thm3 (eps 0.5): oracle counts to eps over kappa on stochastic-quadratic"))


# ====================================================================== ICML Theorem 3: the error floor
FLOOR = "floor/stocbio/icml21.thm3"
#: the batch sizes and Q that are not swept (their terms of eq. (9) kept small)
FLOOR_BASE = {"S": 256, "D_f": 64, "D_g": 256, "B": 4.0, "Q": 8}
FLOOR_NF, FLOOR_NG = 64, 4096
#: swept parameter -> (values, noise of G, F exact: D_f = n_f drawn without replacement)
FLOOR_GRIDS = {
    "Q": ((1, 2, 3, 4, 5), 0.0, True),
    "S": ((4, 16, 64, 256), 0.2, True),
    "D_g": ((4, 16, 64, 256), 0.2, True),
    "B": ((0.25, 1.0, 4.0, 16.0), 0.2, True),
    "D_f": ((2, 4, 8, 16), 0.0, False),
}
#: the explicit stocBiO parameters the floor runs set (a plug-in must declare them)
FLOOR_PARAMS = ("form", "eta", "alpha", "beta", "N", "replace", "S", "D_f", "D_g", "B", "Q")


@dataclass(frozen=True)
class FloorKey(Key):
    """One swept value of one of stocBiO's parameters (the others at ``FLOOR_BASE``)."""

    param: str
    value: float
    noise: float
    exact_f: bool
    R: int
    K: int
    kappa: float
    dim: int
    c_beta: float
    N: int
    lam: float
    burn: int


@dataclass(frozen=True)
class FloorRow(Row):
    param: str
    value: float
    instance: int
    floor: float  # mean of ||grad Phi(x_k)||^2 over the last 3/4 of the run
    eta_mu: float
    beta: float
    Q: int
    diverged_at: int


def floor_measure(key: FloorKey, env, seed: int) -> list[FloorRow]:
    """stocBiO's stationary error on stochastic-logistic (lam = 1): start at a stationary point of Phi (exact
    gradient descent on the truth), y = y*(x), run K steps with a constant beta, average ||grad Phi(x_k)||^2
    over the last 3/4 of the steps (per instance). The instances are shared by the values of one parameter. The
    swept parameter takes ``value``; Q is raised to
    ceil(5/(eta mu)) when another parameter is swept, so that the squared Neumann bias (1 - eta mu)^(2Q) <= e^-10
    stays below the noise terms."""
    p = stoch_problem(env, shared_seed(env, FLOOR, param=key.param), key.R, key.kappa, key.dim, key.noise, 0.0,
                      FLOOR_NF, family="stochastic-logistic", n_g=FLOOR_NG, lam=key.lam)
    L, mu, _ = per_sample(p)
    params = dict(FLOOR_BASE)
    params[key.param] = int(key.value) if key.param != "B" else float(key.value)
    if key.param == "B":  # the Hessian-noise term is the smallest: quieten the others further
        params.update(S=4096, D_g=4096)
    if key.param != "Q":
        params["Q"] = math.ceil(5 / (mu / L))
    x0 = torch.zeros(p.R, p.dim_x, dtype=p.dtype, device=p.device)
    beta = key.c_beta / float(local_smoothness(p, x0).max())
    x0 = descend_to_stationary(p, x0, key.burn, beta)
    tr = run_role("stocbio", p, key.K, env, x0=x0, y0=p._y_star(x0), generator=seed, form="icml", eta=1.0 / L,
                  alpha=2.0 / (L + mu), beta=beta, N=key.N, replace=not key.exact_f, **params)
    g = tr.metrics["grad_phi_sq"].numpy()[key.K // 4:]
    return [FloorRow(param=key.param, value=float(key.value), instance=r, floor=float(g[:, r].mean()), eta_mu=mu / L,
                     beta=beta, Q=int(params["Q"]), diverged_at=int(tr.diverged_at[r])) for r in range(p.R)]


def _floor_grid(profile: str) -> tuple[FloorKey, ...]:
    quick = profile == "quick"
    keys = []
    for param, (grid, noise, exact_f) in FLOOR_GRIDS.items():
        if quick and param in ("B", "D_g"):
            continue  # the quietest terms need the largest other batches: full profile only
        for v in grid if not quick else grid[:3]:
            # lam = 1 (h(x) = ||x - x_c||^2/2): at the stationary point grad_y f(x, y*) != 0, so the Neumann bias
            # and the JV/Hessian noise (all proportional to v* = H^-1 grad_y f) do not vanish there
            keys.append(FloorKey(param=param, value=float(v), noise=noise, exact_f=exact_f, R=4 if quick else 8,
                                 K=60 if quick else 200, kappa=EST_FAMILY["kappa"], dim=EST_FAMILY["dim"], c_beta=0.5,
                                 N=2, lam=1.0, burn=300))
    return tuple(keys)


register_experiment(Experiment(
    name=FLOOR, measure=floor_measure, grid=_floor_grid, key_type=FloorKey, row_type=FloorRow,
    arms=(Arm("stocbio", params=FLOOR_PARAMS, family="stochastic-logistic", label="stocBiO"),),
    summary="stocBiO's stationary error against Q and the batch sizes S, D_g, D_f, B on stochastic-logistic, one "
            "parameter swept at a time with the other noise sources quietened"))


# ====================================================================== ICML Theorem 4: meta-learning floor
META_FLOOR = "floor/meta-itd-bio/icml21.thm4"
#: the explicit parameters of the meta-learning floor runs (a plug-in must declare them)
META_PARAMS = ("tasks", "beta", "N")


@dataclass(frozen=True)
class MetaFloorKey(Key):
    tasks: int
    R: int
    kappa: float
    K: int
    N: int
    burn: int
    c_beta: float


@dataclass(frozen=True)
class MetaFloorRow(Row):
    tasks: int
    kappa: float
    instance: int
    floor: float
    beta: float
    m: int
    diverged_at: int


def meta_floor_measure(key: MetaFloorKey, env, seed: int) -> list[MetaFloorRow]:
    """ICML Thm 4: ITD-BiO with |B| tasks per step (role ``meta-itd-bio``) from a near-stationary x (exact GD on
    Phi), y = y*(x); the mean of ||grad Phi(x_k)||^2 over the last 3/4 of the run is the floor. beta =
    c_beta/||Hess Phi(x_ref)|| (the theorem's 1/(4 L_Phi), with the region's L_Phi ~ 1e9, would not move x). The
    instances are shared by every |B|."""
    p = meta_problem(env, shared_seed(env, META_FLOOR, kappa=key.kappa), key.R, key.kappa)
    x = p.default_x0()
    beta = key.c_beta / float(local_smoothness(p, x).max())
    x = descend_to_stationary(p, x, key.burn, beta)
    tr = run_role("meta-itd-bio", p, key.K, env, x0=x, y0=p._y_star(x), generator=seed, tasks=key.tasks, beta=beta,
                  N=key.N)
    g = tr.metrics["grad_phi_sq"].numpy()[key.K // 4:]
    return [MetaFloorRow(tasks=key.tasks, kappa=p.constants.kappa, instance=r, floor=float(g[:, r].mean()), beta=beta,
                         m=p.tasks, diverged_at=int(tr.diverged_at[r])) for r in range(p.R)]


register_experiment(Experiment(
    name=META_FLOOR, measure=meta_floor_measure,
    grid=lambda profile: tuple(
        MetaFloorKey(tasks=t, R=4 if profile == "quick" else 16, kappa=META["kappa"],
                     K=60 if profile == "quick" else 800, N=20, burn=300, c_beta=0.25)
        for t in ((1, 2, 4, 8) if profile == "quick" else (1, 2, 4, 8, 16))),
    key_type=MetaFloorKey, row_type=MetaFloorRow,
    arms=(Arm("meta-itd-bio", params=META_PARAMS, family="meta-learning", label="ITD-BiO with task sampling"),),
    summary="meta-learning: ITD-BiO with |B| sampled tasks per step from a near-stationary point; the stationary "
            "error against |B|"))


# ====================================================================== ICML Table 2: samples to eps
#: role -> preset of the Table 2 arms (stocBiO: ICML Theorem 3; BSA: Ghadimi and Wang 2018; TTSA: Hong et al.)
TABLE2_ARMS = {"stocbio": "icml21.thm3", "bsa": "gw18", "ttsa": "hong20"}
TABLE2_EPS = 0.5
#: BSA's and TTSA's step sizes are set from a horizon K (beta/sqrt(K); K^-2/5 and K^-3/5): every run sets them
#: for this K, whatever its budget
TABLE2_HORIZON = 1000
#: step budgets: at least 3x the steps each paper arm needs to reach eps with those step sizes (measured on the
#: quick profile's instances, 8 runs x 9 seeds: stocBiO <= 78, BSA <= 897, TTSA <= 1762; the full profile's 32
#: runs get more room; tests/bench/test_claims_icml21_stochastic.py checks the ratio on quick); a run stops once
#: every instance has reached eps, so the budget costs nothing to the paper's arms
TABLE2_BUDGET = {"quick": {"stocbio": 300, "bsa": 3000, "ttsa": 6000},
                 "full": {"stocbio": 400, "bsa": 4000, "ttsa": 8000}}


def table2_name(role: str) -> str:
    return f"samples-to-eps/{role}"


@dataclass(frozen=True)
class Table2Key(Key):
    role: str
    preset: str
    kappa: float
    dim: int
    eps: float
    R: int
    horizon: int  # the K BSA/TTSA set their step sizes from (0: stocBiO, whose preset takes eps instead)
    budget: int  # outer steps at most
    preset_args: dict


@dataclass(frozen=True)
class Table2Row(Row):
    role: str
    algorithm: str
    instance: int
    status: str  # reached / diverged / budget
    K: int
    eps: float
    kappa: float
    samples: float  # samples of F and G spent to produce x_0..x_{K-1} (NaN when not reached)
    struct_samples: float  # what the run's parameters spend over those K steps (BSA/TTSA: in expectation over p)
    struct_sd: float  # standard deviation of the samples over p (BSA/TTSA's random Neumann lengths; 0 for stocBiO)
    spent: float  # every sample the run spent (a lower bound on the samples to eps of a run that did not reach it)
    horizon: int
    budget: int
    steps_run: int
    avg_grad_phi_sq: float  # the criterion at the end of the run
    min_grad_phi_sq: float
    diverged_at: int


def _stop_when_reached(eps: float):
    """stop(metrics) for ``run``: every instance has met the averaged criterion (checked every 64 records)."""
    def stop(metrics):
        g = metrics["grad_phi_sq"]
        if len(g) % 64:
            return False
        S = torch.stack(g).to(torch.float64).cumsum(0)
        avg = S / torch.arange(1, len(g) + 1, dtype=torch.float64, device=S.device)[:, None]
        return bool((avg <= eps).any(0).all())
    return stop


def table2_measure(key: Table2Key, env, seed: int) -> list[Table2Row]:
    """Samples (of F and G) to the averaged criterion (1/K) sum ||grad Phi||^2 <= eps, per run, for one Table 2
    arm with its preset (BSA/TTSA step sizes set for ``horizon``), from Phi(x0) - inf Phi = GAP, within
    ``budget`` steps. Each run's own counts (``Trace.per_instance``: BSA/TTSA instances draw their own Neumann
    lengths) and the structural count its parameters imply (``bounds.costs``)."""
    fam = STOCH_FAMILY
    p = make(fam["name"], env, kappa=key.kappa, dim_x=key.dim, dim_y=key.dim, batch=key.R, seed=seed, **fam["params"])
    x0 = start_at_gap(p, GAP, seed=seed)
    extra = {"horizon": key.horizon} if key.horizon else {}
    tr = run_role(key.role, p, key.budget, env, x0=x0, generator=seed, preset=key.preset,
                  preset_args=dict(key.preset_args), stop=_stop_when_reached(key.eps), **extra)
    algorithm = cast_of(env).algorithm(key.role).name
    rows = complexity_to_eps(tr, key.eps)
    spent = (tr.per_instance("samples_f") + tr.per_instance("samples_g"))[-1]
    out = []
    for row in rows:
        r, K = row["instance"], row["K"]
        if K > 0:
            status = "reached"
        elif row["diverged_at"] >= 0 or not math.isfinite(row["avg_grad_phi_sq"]):
            status = "diverged"
        else:
            status = "budget"
        struct = cumulative(key.role, tr.params, K - 1, key.horizon or None) if K > 0 else {}
        spread = randomized_sd(tr.params, K - 1, key.horizon) if K > 0 and key.horizon else 0.0
        out.append(Table2Row(
            role=key.role, algorithm=algorithm, instance=r, status=status, K=K, eps=key.eps, kappa=key.kappa,
            samples=row["samples_f"] + row["samples_g"],
            struct_samples=struct.get("samples_f", math.nan) + struct.get("samples_g", math.nan),
            struct_sd=spread, spent=float(spent[r]), horizon=key.horizon, budget=key.budget,
            steps_run=tr.iterations[-1], avg_grad_phi_sq=row["avg_grad_phi_sq"],
            min_grad_phi_sq=row["min_grad_phi_sq"], diverged_at=row["diverged_at"]))
    return out


def _table2_experiment(role: str, preset: str):
    pa = {"eps": TABLE2_EPS} if role == "stocbio" else {}
    horizon = 0 if role == "stocbio" else TABLE2_HORIZON

    def grid(profile):
        return (Table2Key(role=role, preset=preset, kappa=2.0, dim=5, eps=TABLE2_EPS * GAP,
                          R=8 if profile == "quick" else 32, horizon=horizon, budget=TABLE2_BUDGET[profile][role],
                          preset_args=pa),)

    register_experiment(Experiment(
        name=table2_name(role), measure=table2_measure, grid=grid, key_type=Table2Key, row_type=Table2Row,
        arms=(Arm(role, preset=preset, preset_args=pa, params=("horizon",) if horizon else (),
                  family=STOCH_FAMILY["name"], label=role),),
        summary=f"{role} with preset {preset}: samples of F and G to the averaged criterion eps on "
                "stochastic-quadratic"))


for _role, _preset in TABLE2_ARMS.items():
    _table2_experiment(_role, _preset)


# ====================================================================== arXiv Theorem 2: stocBiO's bound eq. (8)
THM2 = "avg-stationarity/stocbio/arxiv20.thm2"
#: the explicit stocBiO parameters of the Theorem 2 runs (a plug-in must declare them)
THM2_PARAMS = ("form", "beta", "eta", "alpha", "N", "mu", "S", "D_f", "D_g", "B", "Q")


@dataclass(frozen=True)
class AvgKey(Key):
    """R runs of K steps; batch sizes (stocBiO) or the task batch (meta-learning)."""

    R: int
    K: int
    S: int = 0
    D_f: int = 0
    D_g: int = 0
    B: int = 0
    Q: int = 0
    tasks: int = 0
    eps: float = 0.0
    T_cap: int = 0


@dataclass(frozen=True)
class AvgRow(Row):
    """One run and one K: (1/K) sum_{k<K} ||grad Phi(x_k)||^2 and the theorem's right-hand side at that K."""

    instance: int
    K: int
    avg: float
    bound: float
    N: int  # inner steps the run used (T)
    T_theorem: int  # inner steps the theorem asks for
    L: float
    M: float
    L_phi: float
    diverged_at: int


def _avg(trace):
    g = trace.metrics["grad_phi_sq"].numpy()[:-1]  # x_0 .. x_{K-1}
    return np.cumsum(g, 0) / np.arange(1, g.shape[0] + 1)[:, None]


def thm2_measure(key: AvgKey, env, seed: int) -> list[AvgRow]:
    """stocBiO (arXiv form, role ``stocbio``) with the Theorem 2 parameters computed from the constants read per
    sample (L = max(L, per-sample L), M likewise; Assumption 2 holds for every zeta): beta = 1/(4 L_Phi),
    eta = 0.999/L (the theorem: eta < 1/L), alpha = 2/(L + mu), T from the theorem; explicit batch sizes; every K of
    every run with eq. (8)'s right-hand side (gap 1, y_0 = 0)."""
    p = stoch_problem(env, seed, key.R, EST_FAMILY["kappa"], EST_FAMILY["dim"], EST_FAMILY["noise"],
                      EST_FAMILY["noise_f"], EST_FAMILY["n"])
    c = p.constants
    L = max(c.L, float(c.extra["L_assumption2"]))
    M, mu = max(c.M, float(c.extra["M_assumption2"])), c.mu
    L_phi = bd.BOUNDS["arxiv20.lemma2"](L, mu, M, c.tau, c.rho)
    beta = 1.0 / (4 * L_phi)
    T = max(1, math.ceil(bd.BOUNDS["arxiv20.thm2.T"](L, mu, M, c.tau, c.rho, beta) - 1e-12))
    x0 = start_at_gap(p, GAP, seed=seed)
    y0 = torch.zeros(p.R, p.dim_y, dtype=p.dtype, device=p.device)
    eta = 0.999 / L
    tr = run_role("stocbio", p, key.K, env, x0=x0, y0=y0, generator=seed, form="arxiv", beta=beta, eta=eta,
                  alpha=2.0 / (L + mu), N=T, mu=mu, S=key.S, D_f=key.D_f, D_g=key.D_g, B=key.B, Q=key.Q)
    avg = _avg(tr)
    dist0 = float(((y0 - p._y_star(x0)) ** 2).sum(-1).max())
    out = []
    for K in range(1, avg.shape[0] + 1):
        b = bd.BOUNDS["arxiv20.thm2.bound"](K, L, mu, M, c.tau, c.rho, L_phi, GAP, dist0, eta, key.Q, c.sigma2,
                                            key.S, key.D_g, key.D_f, key.B)
        out += [AvgRow(instance=r, K=K, avg=float(avg[K - 1, r]), bound=b, N=T, T_theorem=T, L=L, M=M, L_phi=L_phi,
                       diverged_at=int(tr.diverged_at[r])) for r in range(p.R)]
    return out


register_experiment(Experiment(
    name=THM2, measure=thm2_measure,
    grid=lambda profile: (AvgKey(R=16 if profile == "quick" else 64, K=100 if profile == "quick" else 400, S=16, D_f=16,
                                 D_g=16, B=4, Q=8),),
    key_type=AvgKey, row_type=AvgRow,
    arms=(Arm("stocbio", params=THM2_PARAMS, family=STOCH_FAMILY["name"], label="stocBiO (arXiv form)"),),
    summary="stocBiO with arXiv Theorem 2's parameters (per-sample constants): averaged stationarity at every K"))


# ====================================================================== arXiv Theorem 3: meta-learning bound
THM3 = "avg-stationarity/meta-itd-bio/arxiv20.thm3"


def thm3_measure(key: AvgKey, env, seed: int) -> list[AvgRow]:
    """deterBiO with task sampling (role ``meta-itd-bio``, preset arxiv20.thm3: beta = 1/(4 L_Phi), T of Theorem 1
    with alpha = 1/L_task), T capped at ``T_cap`` (the theorem's T is ~1e5 on this family); every K of every run
    with Theorem 3's right-hand side, Phi(x0) - inf Phi <= Phi(x0) - (a lower bound of Phi: the losses are >= 0)
    and M = max(M, M_task) (the theorem takes M per task)."""
    p = meta_problem(env, seed, key.R)
    x0 = p.default_x0()
    pa = {"eps": key.eps, "tasks": key.tasks}
    T_theorem = int(cast_of(env).resolved("meta-itd-bio", p, "arxiv20.thm3", pa)["N"])
    tr = run_role("meta-itd-bio", p, key.K, env, x0=x0, generator=seed, preset="arxiv20.thm3", preset_args=pa,
                  N=min(T_theorem, key.T_cap))
    c = p.constants
    gap = float(p._phi(x0).max()) - float(c.extra.get("phi_lower_bound", 0.0))
    M = max(c.M, float(c.extra.get("M_task", c.M)))
    avg = _avg(tr)
    out = []
    for K in range(1, avg.shape[0] + 1):
        b = bd.BOUNDS["arxiv20.thm3.bound"](K, c.L_phi, gap, key.eps, c.L, c.mu, M, key.tasks)
        out += [AvgRow(instance=r, K=K, avg=float(avg[K - 1, r]), bound=b, N=int(tr.params["N"]), T_theorem=T_theorem,
                       L=c.L, M=M, L_phi=c.L_phi, diverged_at=int(tr.diverged_at[r])) for r in range(p.R)]
    return out


register_experiment(Experiment(
    name=THM3, measure=thm3_measure,
    grid=lambda profile: (AvgKey(R=8 if profile == "quick" else 32, K=20 if profile == "quick" else 100, tasks=4,
                                 eps=1.0, T_cap=200 if profile == "quick" else 2000),),
    key_type=AvgKey, row_type=AvgRow,
    arms=(Arm("meta-itd-bio", preset="arxiv20.thm3", preset_args={"eps": 1.0, "tasks": 4}, params=("N",),
              family="meta-learning", label="deterBiO with task sampling"),),
    summary="deterBiO with task sampling, preset arxiv20.thm3 (T capped): averaged stationarity at every K"))
