"""Stochastic bilevel optimizers: stocBiO (both forms), BSA, TTSA and meta-learning with task sampling.

Naming as in ``deterministic.py``: alpha = inner (y) step, beta = outer (x) step, N = inner steps,
Q = Neumann factors, eta = Neumann step; batch sizes S (inner SGD), D_f (grad F), D_g (JV), B (Hessians).
Every random draw goes through ``ctx.streams`` (one counter-based stream per instance), so equal seeds
give equal Traces and a batched run of R instances equals R single runs.

Per outer step k (x_k fixed), closed-form counts (a batch of S samples counts S):
stocBiO (ICML 2021 Alg. 2 + 3 / arXiv Alg. 2 + 3 with eq. 5):
  y^t = y^{t-1} - alpha grad_y G(x_k, y^{t-1}; S_{t-1}), t = 1..N               Gc(g) += N S
  v_0 = grad_y F(x_k, y^N; D_F), v_Q by Alg. 3 (ICML) or H_inv(D_H) v_0 (arXiv eq. 5)  Gc(f) += 2 D_f,
  est = grad_x F(x_k, y^N; D_F) - grad_x grad_y G(x_k, y^N; D_G) v_Q (eq. 6 / eq. 3)  HV += sum|B_j|, JV += D_g
  samples_f += D_f, samples_g += N S + sum_j |B_j| + D_g.
BSA (Ghadimi and Wang 2018, Alg. 2 + 3): t_k SGD steps with decreasing steps (t_k growing), then the
  randomized truncated Neumann estimate with b terms (p ~ U{0..b-1}, scale b eta = b/L_g, one fresh Hessian
  batch per factor, the per-sample curvature L_s standing in for L_g by default):
  Gc(g) += t_k S, Gc(f) += 2 D_f, JV += D_g, HV += p_r B, samples_g += t_k S + p_r B + D_g for instance r,
  whose Neumann length is p_r. The lockstep batch draws all b-1 Hessian batches and applies m = max_r p_r
  factors (b-1 on a GPU, see ``neumann_factors``); the factors and batches past an instance's p_r are charged
  with an ``active`` mask, so the oracle counts them as idle for that instance and ``Trace.per_instance``
  gives each instance's own counts.
TTSA (Hong, Wai, Wang, Yang 2020): one SGD step on y (fast time scale), then the same estimate at
  (x_k, y_{k+1}) and one x step (slow time scale); with ``jv_batch='reuse'`` (the public benchmark's variant)
  the cross term uses the y step's batch: JV += S and no D_g samples are drawn.
The constants of BSA and TTSA that their originals fix but we could not read are parameters with defaults
of the orders in ``papers/bsa-ttsa-parameters.md`` (grades [SEC]/[INF]/[UNV]/[CODE] in the presets).
Meta-learning (ICML 2021 Thm 4, arXiv Thm 3): a task batch of |B| tasks per outer step; ITD-BiO or AID-BiO
  on the mini-batch functions L_S(.; B), L_D(.; B): every oracle call costs |B|.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import presets as det_presets
from . import stochastic_presets as sp
from .base import Algorithm, Param, register
from .deterministic import AIDState, aid_estimate, inner_gd
from .stochastic_solvers import (
    check_neumann_step,
    decaying_batches,
    draw_batches,
    draw_p,
    equal_batches,
    hinv_horner,
    neumann_factors,
    randomized_neumann,
    vq_recursion,
)

#: default implementations of the component roles the stochastic estimators use (``algorithms.components``)
_DEFAULTS = {"stocbio.batch-schedule": decaying_batches, "stocbio.vq": vq_recursion, "stocbio.hinv": hinv_horner,
             "neumann.randomized": randomized_neumann}

__all__ = ["StochState", "inner_sgd", "stocbio_batch_sizes", "stocbio_estimate", "neumann_terms",
           "randomized_estimate", "bsa_inner_steps", "TaskBatchOracle", "require_stochastic", "require_tasks",
           "task_families", "check_batch_sizes"]


@dataclass
class StochState:
    x: torch.Tensor
    y: torch.Tensor
    estimate: torch.Tensor | None = None


# ---------------------------------------------------------------------- validation
def require_stochastic(problem, algorithm: str):
    """Raise TypeError unless the problem is a stochastic family (has ``sample`` and finite sums)."""
    if not getattr(problem, "stochastic", False):
        raise TypeError(f"{algorithm} needs a stochastic problem (class attribute stochastic = True); "
                        f"{type(problem).__name__} is deterministic")


def task_families() -> list[str]:
    """The registered problem families whose samples are meta-learning tasks (a ``tasks`` count and task
    sampling): the families the meta-learning algorithms accept."""
    from ..analytic import FAMILIES

    return sorted(n for n, cls in FAMILIES.items() if cls.stochastic and isinstance(getattr(cls, "tasks", None),
                                                                                     property | int))


def require_tasks(problem, algorithm: str):
    """Raise TypeError unless the problem has meta-learning tasks (``task_families``: stochastic, with an
    integer ``tasks``, the samples of both levels): the meta-learning algorithms draw task batches, and their
    default inner step is one task's 1/L_task (``extra['L_task']``)."""
    if not (getattr(problem, "stochastic", False) and isinstance(getattr(problem, "tasks", None), int)):
        raise TypeError(f"{algorithm} needs a problem with meta-learning tasks (accepted families: "
                        f"{', '.join(task_families())}); {getattr(problem, 'name', type(problem).__name__)!r} "
                        f"has none")


def check_batch_sizes(problem, replace: bool, **sizes):
    """Without replacement a batch cannot exceed the data: ValueError naming the parameter.

    ``sizes``: name -> (which, size) with which in {'f', 'g'}."""
    if replace:
        return
    for name, (which, size) in sizes.items():
        n = problem.n_f if which == "f" else problem.n_g
        if size > n:
            raise ValueError(f"{name}={size} exceeds the number of components n_{which}={n} "
                             f"(sampling without replacement, replace=False)")


def _L(problem) -> float:
    return problem.constants.L


# ---------------------------------------------------------------------- shared pieces
def inner_sgd(oracle, streams, x, y, steps: int, step, S: int, replace: bool = True):
    """``steps`` SGD steps y <- y - step(t) grad_y G(x, y; S_t) on independent batches of size S
    (ICML 2021 Alg. 2 lines 4-7; ``step`` a float or a function of t). Cost: steps * S Gc(g)."""
    step_fn = step if callable(step) else (lambda t: step)
    for t, idx in enumerate(draw_batches(oracle, "g", [S] * steps, streams, replace)):
        y = y - step_fn(t) * oracle.grad_y_g(x, y, idx)
    return y


def stocbio_batch_sizes(params, schedule=decaying_batches) -> list[int]:
    """Hessian batch sizes in the order the estimator consumes them (``batches[i-1]`` = B_i):
    arXiv: |B_j| = s_j; ICML: |B_{Q+1-j}| = s_j, i.e. the reversed list; s_j = ceil(B Q (1-eta mu)^(j-1))
    from ``schedule`` (component role 'stocbio.batch-schedule').
    'equal' spreads the same total over Q batches (sizes differ by at most one)."""
    s = schedule(params["B"], params["Q"], params["eta"], params["mu"])
    if params["schedule"] == "equal":
        s = equal_batches(sum(s), params["Q"])
    return list(reversed(s)) if params["form"] == "icml" else s


def stocbio_estimate(oracle, streams, x, y, params, component=None):
    """stocBiO's hypergradient estimate at (x, y): ICML eq. (6) with v_Q of Alg. 3, or arXiv eq. (3)
    with H_inv of eq. (5). Draws D_F, then D_H = {B_j}, then D_G (Alg. 2 line 8). ``component(role)``
    gives the implementations of 'stocbio.batch-schedule', 'stocbio.vq' and 'stocbio.hinv' (``ctx.component``;
    None: the defaults)."""
    component = component or (lambda role: _DEFAULTS[role])
    replace = params["replace"]
    (idx_f,) = draw_batches(oracle, "f", [params["D_f"]], streams, replace)
    v0 = oracle.grad_y_f(x, y, idx_f)
    gx = oracle.grad_x_f(x, y, idx_f)
    sizes = stocbio_batch_sizes(params, component("stocbio.batch-schedule"))
    batches = draw_batches(oracle, "g", sizes, streams, replace)

    def hvp(u, idx):
        return oracle.hvp(x, y, u, idx)

    solve = component("stocbio.vq" if params["form"] == "icml" else "stocbio.hinv")
    v = solve(hvp, v0, batches, params["eta"])
    (idx_g,) = draw_batches(oracle, "g", [params["D_g"]], streams, replace)
    return gx - oracle.jvp(x, y, v, idx_g)


def neumann_terms(params, K: int) -> int:
    """b, the number of terms of the randomized Neumann series: the parameter, or by default
    ceil(c_b ln(K+1)/(eta mu)) = Theta(kappa log K) [INF, ``papers/bsa-ttsa-parameters.md``], so that at c_b = 1
    the bias ||H^-1 (I - eta H)^b|| <= (1 - eta mu)^b/mu <= 1/(mu (K+1)) (with eta = 1/L_s, 1/(eta mu) is the
    per-sample kappa_s)."""
    if params["b"] is not None:
        return params["b"]
    return max(1, math.ceil(params["c_b"] * math.log(K + 1) / (params["eta"] * params["mu"]) - 1e-9))


def randomized_estimate(oracle, streams, x, y, params, b: int, product=randomized_neumann, idx_g=None):
    """grad_x F(D_f) - grad_x grad_y G(D_g) [b eta prod_{i=1}^{p} (I - eta H_{B_i})] grad_y F(D_f), p
    uniform on {0..b-1} (Ghadimi and Wang 2018 Alg. 3; Hong et al. 2020 eq. for h_f): one fresh Hessian batch
    per factor, the same F batch in both F terms, scale b eta = b/L_g. All b-1 Hessian batches are drawn (the
    draw's numbers do not depend on p); batch i is charged only to the instances with p >= i (``active``),
    and m = ``neumann_factors(p, b)`` of them are applied by ``product`` (component role 'neumann.randomized').
    ``idx_g``: the batch of the cross term when it is not drawn afresh (TTSA's public variant reuses the y
    step's). Returns (estimate, p (R, 1))."""
    replace = params["replace"]
    (idx_f,) = draw_batches(oracle, "f", [params["D_f"]], streams, replace)
    gy = oracle.grad_y_f(x, y, idx_f)
    gx = oracle.grad_x_f(x, y, idx_f)
    p = draw_p(streams, b)
    used = [(p >= i).squeeze(-1) for i in range(1, b)]  # instance r uses the first p_r batches
    batches = draw_batches(oracle, "g", [params["B"]] * (b - 1), streams, replace, active=used)
    m = neumann_factors(p, b)
    v = product(lambda u, idx, active=None: oracle.hvp(x, y, u, idx, active=active), gy, p, batches,
                params["eta"], m)
    if idx_g is None:
        (idx_g,) = draw_batches(oracle, "g", [params["D_g"]], streams, replace)
    return gx - oracle.jvp(x, y, v, idx_g), p


def _neumann_init(ctx, name: str, **batches):
    problem, p = ctx.oracle.problem, ctx.params
    require_stochastic(problem, name)
    check_neumann_step(p["eta"], _L(problem))
    check_batch_sizes(problem, p["replace"], **batches)
    return StochState(x=ctx.x0.clone(), y=ctx.y0.clone())


# ---------------------------------------------------------------------- stocBiO
def _stocbio_init(ctx):
    p = ctx.params
    sizes = stocbio_batch_sizes(p, ctx.component("stocbio.batch-schedule"))
    big = max(sizes) if sizes else 0
    return _neumann_init(ctx, "stocbio", S=("g", p["S"]), D_f=("f", p["D_f"]), D_g=("g", p["D_g"]),
                         B=("g", big))


def _stocbio_step(ctx, s: StochState, k: int) -> StochState:
    p, o = ctx.params, ctx.oracle
    y = s.y if p["warm_y"] else ctx.y0
    y = inner_sgd(o, ctx.streams, s.x, y, p["N"], p["alpha"], p["S"], p["replace"])
    est = stocbio_estimate(o, ctx.streams, s.x, y, p, ctx.component)
    return StochState(x=s.x - p["beta"] * est, y=y, estimate=est)


_INT0 = dict(kind=int, minimum=0, strict=False)
_INT1 = dict(kind=int, minimum=1, strict=False)
_POS = dict(kind=float, minimum=0.0)
_BATCH = {
    "S": Param(1, "inner SGD batch size |S_t|", **_INT1),
    "D_f": Param(1, "batch size of grad F (|D_F|)", **_INT1),
    "D_g": Param(1, "batch size of the Jacobian-vector product (|D_G|)", **_INT1),
    "replace": Param(True, "sample mini-batches with replacement (False: distinct indices in a batch)",
                     kind=bool),
    "warm_y": Param(True, "warm start y_k^0 = y_{k-1} (Alg. 2 line 3)", kind=bool),
    "mu": Param(sp.mu_of, "strong-convexity modulus used by the schedules (default: the problem's mu)",
                **_POS),
    "eta": Param(sp.one_over_Ls, "Neumann step (default 1/L_s, the per-sample curvature, so that every factor "
                 "I - eta H(zeta) contracts; must be < 2/L; theory <= 1/L)", **_POS),
}

register(Algorithm(
    name="stocbio", paper="icml21, arxiv20",
    reference="Ji, Yang, Liang ICML 2021 Alg. 2 + Alg. 3 (form='icml'); arXiv Alg. 2 + Alg. 3 with the "
    "Hessian-inverse estimator eq. (5) (form='arxiv')", stochastic=True, kind="stochastic-aid",
    summary="stocBiO: N inner SGD steps (batch S), Neumann-type v_Q with exponentially decaying Hessian "
    "batches, mini-batch JV; E[v_Q] = eta sum_{q=0}^{Q} (I - eta H)^q v",
    params={
        "alpha": Param(sp.two_over_Ls_plus_mu, "inner SGD step (default 2/(L_s+mu), arXiv App. F with the "
                       "per-sample curvature L_s: every single-sample step contracts)", **_POS),
        "beta": Param(det_presets.icml21_beta, "outer step (default 1/(8 L_Phi); theorems: 1/(4 L_Phi))",
                      **_POS),
        "N": Param(10, "inner SGD steps per outer step (ICML: D, arXiv: T)", **_INT0),
        "Q": Param(10, "Neumann factors (Hessian batches B_1..B_Q)", **_INT0),
        "B": Param(1.0, "batch scale B: |B_j| = ceil(B Q (1 - eta mu)^(j-1))", **_POS),
        "form": Param("icml", "'icml': Alg. 3 r-recursion applied to v_0; 'arxiv': eq. (5) H_inv v_0",
                      choices=("icml", "arxiv")),
        "schedule": Param("decaying", "Hessian batch sizes: 'decaying' (the papers) or 'equal' (same total)",
                          choices=("decaying", "equal")),
        **_BATCH,
    },
    init=_stocbio_init, step=_stocbio_step, presets=sp.STOCBIO_PRESETS, theory=sp.STOCBIO_CHECKS,
    roles=("stocbio",), components=("stocbio.batch-schedule", "stocbio.vq", "stocbio.hinv"),
))


# ---------------------------------------------------------------------- BSA
def _horizon(ctx) -> int:
    return max(1, ctx.params["horizon"] if ctx.params["horizon"] is not None else ctx.steps)


def _randomized_init(name: str):
    """init of BSA / TTSA (``name`` for the error messages)."""
    def init(ctx):
        p = ctx.params
        return _neumann_init(ctx, name, S=("g", p["S"]), D_f=("f", p["D_f"]), D_g=("g", p["D_g"]),
                             B=("g", p["B"]))
    return init


def bsa_inner_steps(params, k: int, K: int) -> int:
    """t_k, BSA's inner SGD steps at outer step k: 'sqrt' ceil(sqrt(k+1)) (growing [UNV]), 'horizon'
    ceil(c_t sqrt(K)) (Theta(sqrt N) over a horizon of N = K outer steps [INF]), 'constant' N."""
    if params["schedule"] == "sqrt":
        return math.ceil(math.sqrt(k + 1) - 1e-12)
    if params["schedule"] == "horizon":
        return max(1, math.ceil(params["c_t"] * math.sqrt(K) - 1e-12))
    return params["N"]


def _bsa_step(ctx, s: StochState, k: int) -> StochState:
    p, o = ctx.params, ctx.oracle
    K = _horizon(ctx)
    N = bsa_inner_steps(p, k, K)
    a, g = p["alpha"], p["gamma"]
    y = s.y if p["warm_y"] else ctx.y0
    y = inner_sgd(o, ctx.streams, s.x, y, N, lambda t: a * g / (g + t), p["S"], p["replace"])
    b = neumann_terms(p, K)
    est, _ = randomized_estimate(o, ctx.streams, s.x, y, p, b, ctx.component("neumann.randomized"))
    x = s.x - p["beta"] / math.sqrt(K) * est
    return StochState(x=x, y=y, estimate=est)


_NEUMANN_COMMON = {
    "B": Param(1, "batch size of each Hessian factor (1: one fresh sample per factor)", **_INT1),
    "b": Param(None, "terms of the randomized Neumann series (p uniform on {0..b-1}); None: "
                     "ceil(c_b ln(K+1)/(eta mu)) = Theta(kappa log K) [INF]", **_INT1, optional=True),
    "c_b": Param(1.0, "Theta constant of the default b", **_POS),
    "horizon": Param(None, "horizon K of the step sizes (None: the run's number of steps)", **_INT1,
                     optional=True),
    **_BATCH,
}

register(Algorithm(
    name="bsa", paper="icml21, arxiv20 (baseline)",
    reference="Ghadimi and Wang 2018, Approximation Methods for Bilevel Programming, Alg. 2 (BSA) + Alg. 3 "
    "(randomized truncated Neumann series); step sizes: our reading, see stochastic_presets.gw18_bsa",
    stochastic=True, kind="stochastic-aid",
    summary="BSA: growing inner SGD loop (t_k = ceil(sqrt(k+1))) with decreasing steps, single samples, "
    "randomized Neumann Hessian-inverse estimate, outer step beta/sqrt(K)",
    params={
        "alpha": Param(sp.one_over_Ls, "initial inner step: alpha_t = alpha gamma/(gamma + t) (default 1/L_s, "
                       "per-sample curvature)", **_POS),
        "gamma": Param(sp.two_kappa_s, "offset of the inner steps (default 2 kappa_s = 2 L_s/mu)",
                       kind=float, minimum=0.0, strict=False),
        "beta": Param(sp.one_over_L_phi, "outer step scale: beta_k = beta/sqrt(K) (default 1/L_Phi)", **_POS),
        "schedule": Param("sqrt", "inner steps per outer step: 'sqrt' t_k = ceil(sqrt(k+1)) [UNV], 'horizon' "
                          "ceil(c_t sqrt(K)) [INF] or 'constant' N", choices=("sqrt", "horizon", "constant")),
        "c_t": Param(1.0, "Theta constant of schedule='horizon'", **_POS),
        "N": Param(1, "inner steps when schedule='constant'", **_INT0),
        **_NEUMANN_COMMON,
    },
    init=_randomized_init("bsa"), step=_bsa_step, presets=sp.BSA_PRESETS, theory=sp.NEUMANN_CHECKS,
    roles=("bsa",), components=("neumann.randomized",),
))


# ---------------------------------------------------------------------- TTSA
def _ttsa_step(ctx, s: StochState, k: int) -> StochState:
    """One TTSA iteration (Hong et al., Alg. 1): y_{k+1} = y_k - a_k grad_y G(x_k, y_k; zeta_k), the randomized
    Neumann estimate at (x_k, y_{k+1}), x_{k+1} = x_k - s_k h_k; a_k = alpha n^(-exp_y), s_k = beta n^(-exp_x)
    with n = K (``step_rule='horizon'``, constant steps set by the horizon) or n = k + 1 ('decaying', the public
    benchmark's). The cross term uses an independent batch (``jv_batch='fresh'``, the paper) or the y step's
    ('reuse', the public benchmark's)."""
    p, o = ctx.params, ctx.oracle
    K = _horizon(ctx)
    n = K if p["step_rule"] == "horizon" else k + 1
    (idx_y,) = draw_batches(o, "g", [p["S"]], ctx.streams, p["replace"])
    y = s.y - p["alpha"] * n ** (-p["exp_y"]) * o.grad_y_g(s.x, s.y, idx_y)
    b = neumann_terms(p, K)
    est, _ = randomized_estimate(o, ctx.streams, s.x, y, p, b, ctx.component("neumann.randomized"),
                                 idx_g=idx_y if p["jv_batch"] == "reuse" else None)
    x = s.x - p["beta"] * n ** (-p["exp_x"]) * est
    return StochState(x=x, y=y, estimate=est)


register(Algorithm(
    name="ttsa", paper="icml21, arxiv20 (baseline)",
    reference="Hong, Wai, Wang, Yang 2020, A Two-Timescale Framework for Bilevel Optimization, Alg. 1 "
    "(TTSA), nonconvex case: steps of order K^(-2/5) (y) and K^(-3/5) (x); constants: our reading, see "
    "stochastic_presets.hong20_ttsa", stochastic=True, kind="stochastic-aid",
    summary="TTSA: single loop, one SGD step on y (fast time scale) and one x step (slow) per iteration, "
    "randomized Neumann Hessian-inverse estimate",
    params={
        "alpha": Param(sp.one_over_Ls, "y step scale: alpha K^(-exp_y) (default 1/L_s, per-sample curvature)",
                       **_POS),
        "beta": Param(sp.one_over_L_phi, "x step scale: beta K^(-exp_x)", **_POS),
        "step_rule": Param("horizon", "step rule: 'horizon' constant steps alpha K^(-exp_y), beta K^(-exp_x) [UNV] "
                       "or 'decaying' alpha (k+1)^(-exp_y), beta (k+1)^(-exp_x) (public benchmark [CODE])",
                       choices=("horizon", "decaying")),
        "jv_batch": Param("fresh", "batch of the cross term grad_xy G v: 'fresh' (independent, the paper) or "
                          "'reuse' (the y step's, public benchmark [CODE]; D_g unused)", choices=("fresh", "reuse")),
        "exp_y": Param(0.4, "exponent of the y step (2/5 in the nonconvex case)", kind=float, minimum=0.0,
                       strict=False),
        "exp_x": Param(0.6, "exponent of the x step (3/5 in the nonconvex case)", kind=float, minimum=0.0,
                       strict=False),
        **{k: v for k, v in _NEUMANN_COMMON.items() if k != "warm_y"},  # single loop: y carries over
    },
    init=_randomized_init("ttsa"), step=_ttsa_step, presets=sp.TTSA_PRESETS, theory=sp.NEUMANN_CHECKS,
    roles=("ttsa",), components=("neumann.randomized",),
))


# ---------------------------------------------------------------------- meta-learning with task sampling
class TaskBatchOracle:
    """The counted oracle restricted to one task batch: every call uses the mini-batch functions
    L_S(.; B) (for g) and L_D(.; B) (for f) of ICML 2021 Sec. 5, so the deterministic AID/ITD pieces run
    unchanged on them. Costs |B| per call (the counted oracle's rule)."""

    def __init__(self, oracle, idx):
        self.oracle, self.idx, self.counts = oracle, idx, oracle.counts

    def grad_x_f(self, x, y):
        return self.oracle.grad_x_f(x, y, self.idx)

    def grad_y_f(self, x, y):
        return self.oracle.grad_y_f(x, y, self.idx)

    def grad_y_g(self, x, y):
        return self.oracle.grad_y_g(x, y, self.idx)

    def hvp(self, x, y, v):
        return self.oracle.hvp(x, y, v, self.idx)

    def jvp(self, x, y, v):
        return self.oracle.jvp(x, y, v, self.idx)


def _meta_init(name: str):
    """init of the meta-learning algorithms (``name`` for the error messages)."""
    def init(ctx):
        problem, p = ctx.oracle.problem, ctx.params
        require_tasks(problem, name)
        check_batch_sizes(problem, p["replace"], tasks=("g", p["tasks"]))
        return AIDState(x=ctx.x0.clone(), y=ctx.y0.clone())
    return init


def _all_tasks(name: str):
    """The default task batch |B| = m (every task), after checking the problem has tasks (the defaults are
    evaluated before ``init``)."""
    def default(problem):
        require_tasks(problem, name)
        return problem.tasks
    default.__doc__ = "m (all tasks)"
    return default


def _task_batch(ctx):
    """One batch of |B| tasks per outer step; the same tasks define L_S(.; B) and L_D(.; B) (the task
    is the sample of both levels), so it is drawn once and tallied in samples_g."""
    (idx,) = draw_batches(ctx.oracle, "g", [ctx.params["tasks"]], ctx.streams, ctx.params["replace"])
    return TaskBatchOracle(ctx.oracle, idx)


def _meta_itd_step(ctx, s: AIDState, k: int) -> AIDState:
    p = ctx.params
    o = _task_batch(ctx)
    y0 = s.y if p["warm_y"] else ctx.y0
    y, ys = inner_gd(o, s.x, y0, p["N"], p["alpha"], keep=True)
    est = ctx.component("itd.hypergradient")(o, s.x, ys, y, p["alpha"])
    return AIDState(x=s.x - p["beta"] * est, y=y, estimate=est)


def _meta_aid_step(ctx, s: AIDState, k: int) -> AIDState:
    p = ctx.params
    o = _task_batch(ctx)
    y = inner_gd(o, s.x, s.y if p["warm_y"] else ctx.y0, p["N"], p["alpha"])
    est, _ = aid_estimate(o, s.x, y, None, solver=p["solver"], Q=p["Q"], eta=p["eta"], tol=None,
                          solve=ctx.component(f"solver.{p['solver']}"))
    return AIDState(x=s.x - p["beta"] * est, y=y, estimate=est)


def _meta_params(name: str) -> dict:
    return {"tasks": Param(_all_tasks(name), "task batch size |B| per outer step (default: all m tasks)", **_INT1),
            **_META}


_META = {
    "alpha": Param(sp.meta_alpha, "inner GD step on the task heads (default 1/L_task: a task batch "
                   "weights one task by up to 1, so the mean's 1/L would be too large)", **_POS),
    "beta": Param(det_presets.icml21_beta, "outer step (default 1/(8 L_Phi); theorems: 1/(4 L_Phi))", **_POS),
    "N": Param(10, "inner GD steps per outer step", **_INT0),
    "warm_y": Param(True, "warm start the heads y_k^0 = y_{k-1}^N", kind=bool),
    "replace": Param(True, "draw tasks with replacement (i.i.d. tasks, ICML 2021 Sec. 5)", kind=bool),
}

register(Algorithm(
    name="meta-itd-bio", paper="icml21, arxiv20",
    reference="Ji, Yang, Liang ICML 2021 Sec. 5 and Theorem 4 (ITD-BiO with task sampling); arXiv Sec. 5.1 "
    "and Theorem 3 (deterBiO with task sampling, warm_y=False)", stochastic=True, kind="stochastic-itd",
    summary="ITD-BiO on the task-batch functions L_S(.; B), L_D(.; B), |B| tasks drawn per outer step",
    params=_meta_params("meta-itd-bio"), init=_meta_init("meta-itd-bio"), step=_meta_itd_step,
    presets=sp.META_ITD_PRESETS,
    roles=("meta-itd-bio",), components=("itd.hypergradient",),
))

register(Algorithm(
    name="meta-aid-bio", paper="icml21",
    reference="Ji, Yang, Liang ICML 2021 Sec. 5 (AID-BiO with task sampling, 'similarly derived' after "
    "Theorem 4)", stochastic=True, kind="stochastic-aid",
    summary="AID-BiO (CG/GD/Neumann linear solve) on the task-batch functions, |B| tasks per outer step",
    params={**_meta_params("meta-aid-bio"),
            "Q": Param(10, "linear-system solver steps", **_INT0),
            "solver": Param("cg", "linear-system solver (v_0 = 0 each step: the task batch changes)",
                            choices=("cg", "gd", "neumann")),
            "eta": Param(sp.meta_alpha, "GD/Neumann solver step (default 1/L_task)", **_POS)},
    init=_meta_init("meta-aid-bio"), step=_meta_aid_step, presets=sp.META_AID_PRESETS,
    roles=("meta-aid-bio",), components=("solver.cg", "solver.gd", "solver.neumann"),
))
