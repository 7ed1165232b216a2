"""Per-iteration oracle costs of the papers' algorithms, as their listings spend them (Definition 2 of
ICML 2021: a partial gradient counts one Gc, a Jacobian- or Hessian-vector product one JV or HV, and a
stochastic call on a batch of S samples counts S).

These are the structure of each algorithm: given its parameters, outer step k costs exactly (or, for the
randomized Neumann length of BSA/TTSA, in expectation) what is listed. The scaling claims use them to
check the lower side of a measured count: counts to eps cannot grow slower in kappa than the measured
iterations times these per-step costs, unless calls are under-counted or work the parameters prescribe is
skipped. Each function takes the run's resolved parameters and an array of outer steps ``k`` and returns
kind -> array of per-step costs (kinds 'gc_f', 'gc_g', 'jv', 'hv', 'samples_f', 'samples_g'; MV = JV + HV).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["COSTS", "SAMPLE_AWARE", "step_costs", "cumulative", "randomized_sd"]


def _const(k: np.ndarray, **costs: float) -> dict[str, np.ndarray]:
    return {kind: np.full(k.shape, float(v)) for kind, v in costs.items()}


def _ba_inner(k: np.ndarray) -> np.ndarray:
    """N_k = ceil((k+1)^(1/4)/2) (Loops 2022 Table 1's reading of Ghadimi and Wang's schedule)."""
    return np.maximum(1, np.ceil((k + 1.0) ** 0.25 / 2 - 1e-12))


def aid(params: Mapping, k: np.ndarray) -> dict[str, np.ndarray]:
    """AID-BiO (ICML 2021 Alg. 1, Loops 2022 Alg. 1) and BA, per outer step: N (or N_k) Gc(g) for the inner
    GD, 2 Gc(f) (grad_y f, grad_x f), 1 JV, and the linear solve: Q HV, plus one for the initial residual
    b - H v_0 of a warm-started CG (from step 1 on; none from v_0 = 0)."""
    N = _ba_inner(k) if params.get("schedule") == "increasing" else np.full(k.shape, float(params["N"]))
    hv = np.full(k.shape, float(params["Q"]))
    if params["solver"] == "cg" and params.get("warm_v", False):
        hv = hv + (k >= 1)
    return {"gc_f": np.full(k.shape, 2.0), "gc_g": N, "jv": np.ones(k.shape), "hv": hv}


def itd(params: Mapping, k: np.ndarray) -> dict[str, np.ndarray]:
    """ITD-BiO / deterBiO (ICML 2021 Prop. 2, arXiv Alg. 1): N Gc(g) for the inner GD, 2 Gc(f), and the
    backward pass: N JV and N - 1 HV."""
    N = float(params["N"])
    return _const(k, gc_f=2, gc_g=N, jv=N, hv=max(N - 1, 0))


def stocbio(params: Mapping, k: np.ndarray, hessian_samples: float) -> dict[str, np.ndarray]:
    """stocBiO (ICML 2021 Alg. 2 + 3): N S Gc(G) (inner SGD), 2 D_f Gc(F), D_g JV, sum_j |B_j| HV; samples
    D_f of F and N S + sum_j |B_j| + D_g of G. ``hessian_samples`` = sum_j |B_j| (the schedule's total)."""
    N, S, Df, Dg = (float(params[n]) for n in ("N", "S", "D_f", "D_g"))
    return _const(k, gc_f=2 * Df, gc_g=N * S, jv=Dg, hv=hessian_samples, samples_f=Df,
                  samples_g=N * S + hessian_samples + Dg)


def randomized(params: Mapping, k: np.ndarray, b: int, inner: np.ndarray) -> dict[str, np.ndarray]:
    """BSA (Ghadimi and Wang 2018 Alg. 2 + 3) and TTSA (Hong et al. 2020 Alg. 1), in expectation over the
    Neumann length p uniform on {0..b-1}: ``inner`` SGD steps of batch S, 2 D_f Gc(F), D_g JV, E[p] B =
    (b - 1) B / 2 HV; samples D_f of F and inner S + (b - 1) B / 2 + D_g of G."""
    S, Df, Dg, B = (float(params[n]) for n in ("S", "D_f", "D_g", "B"))
    hv = (b - 1) * B / 2
    return {"gc_f": np.full(k.shape, 2 * Df), "gc_g": inner * S, "jv": np.full(k.shape, Dg),
            "hv": np.full(k.shape, hv), "samples_f": np.full(k.shape, Df), "samples_g": inner * S + hv + Dg}


def _stocbio(params, k):
    from bilevelbench.algorithms.stochastic import stocbio_batch_sizes

    return stocbio(params, k, float(sum(stocbio_batch_sizes(params))))


def _neumann_terms(params, horizon: int) -> int:
    """b of BSA/TTSA: the parameter, or ceil(c_b ln(K+1)/(eta mu)) (``algorithms.stochastic.neumann_terms``)."""
    if params.get("b") is not None:
        return int(params["b"])
    return max(1, math.ceil(params.get("c_b", 1.0) * math.log(horizon + 1) / (params["eta"] * params["mu"]) - 1e-9))


def _bsa(params, k, horizon):
    """t_k as ``algorithms.stochastic.bsa_inner_steps``: 'sqrt' ceil(sqrt(k+1)), 'horizon' ceil(c_t sqrt(K)),
    'constant' N."""
    if params["schedule"] == "sqrt":
        inner = np.ceil(np.sqrt(k + 1.0) - 1e-12)
    elif params["schedule"] == "horizon":
        inner = np.full(k.shape, float(max(1, math.ceil(params["c_t"] * math.sqrt(horizon) - 1e-12))))
    else:
        inner = np.full(k.shape, float(params["N"]))
    return randomized(params, k, _neumann_terms(params, horizon), inner)


def _ttsa(params, k, horizon):
    return randomized(params, k, _neumann_terms(params, horizon), np.ones(k.shape))


# ---------------------------------------------------------------------- the modern solvers
# Batch sizes None mean the full objective: n (m) samples on a finite sum, one deterministic call (no sample)
# otherwise; ``n``, ``m`` are the problem's numbers of G and F samples (None for a deterministic problem).
def _b(size, n):
    """Gradient count of one call on a batch of ``size`` (None: the full objective)."""
    return float(size) if size is not None else float(n if n is not None else 1)


def _s(size, n):
    """Samples drawn for one batch of ``size`` (the full objective of a finite sum uses all n; none otherwise)."""
    return float(size) if size is not None else float(n if n is not None else 0)


def _add(out: dict, mask, **costs) -> dict:
    for kind, v in costs.items():
        out[kind] = out.get(kind, 0.0) + np.where(mask, float(v), 0.0)
    return out


def _v_solve(params, k, n, m) -> dict:
    """v_init='solve' at step 0: the full-batch grad_y f and cg_steps full-batch HV (SOBA framework)."""
    out = {}
    if params.get("v_init") == "solve":
        _add(out, k == 0, gc_f=_b(None, m), hv=params["cg_steps"] * _b(None, n), samples_f=_s(None, m),
             samples_g=_s(None, n))
    return out


def _merge(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for kind, v in part.items():
            out[kind] = out.get(kind, 0.0) + v
    return out


def soba(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """SOBA (Dagreou et al. 2022): S_g Gc(g), S_g HV, S_g JV, 2 S_f Gc(f); samples S_g of G, S_f of F."""
    Sg, Sf = params["S_g"], params["S_f"]
    base = _const(k, gc_g=_b(Sg, n), hv=_b(Sg, n), jv=_b(Sg, n), gc_f=2 * _b(Sf, m), samples_g=_s(Sg, n),
                  samples_f=_s(Sf, m))
    return _merge(base, _v_solve(params, k, n, m))


def saba(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """SABA: SOBA's per-step costs; at step 0 with memories at the initial point (variant 'paper') one full
    pass: n Gc(g), n HV, n JV, 2m Gc(f), all n + m samples."""
    out = soba(params, k, horizon, n, m)
    if params["variant"] == "paper":
        _add(out, k == 0, gc_g=n, hv=n, jv=n, gc_f=2 * m, samples_g=n, samples_f=m)
    return out


def srba(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """SRBA: at k mod q = 0 the full-batch directions (n Gc(g), n HV, n JV, 2m Gc(f)); otherwise the SARAH
    differences, both points on one batch: 2 S_g Gc(g), 2 S_g HV, 2 S_g JV, 4 S_f Gc(f)."""
    Sg, Sf = params["S_g"], params["S_f"]
    full = (k % params["q"]) == 0
    out: dict = {}
    _add(out, full, gc_g=_b(None, n), hv=_b(None, n), jv=_b(None, n), gc_f=2 * _b(None, m), samples_g=_s(None, n),
         samples_f=_s(None, m))
    _add(out, ~full, gc_g=2 * _b(Sg, n), hv=2 * _b(Sg, n), jv=2 * _b(Sg, n), gc_f=4 * _b(Sf, m),
         samples_g=_s(Sg, n), samples_f=_s(Sf, m))
    return _merge(out, _v_solve(params, k, n, m))


def fsla(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """FSLA: S Gc(g) (y step), S HV and S_f Gc(f) (v step), S_f Gc(f) and S JV (estimate), and from step 1 on the
    STORM correction at the previous point on the same samples (S_f Gc(f), S JV); samples 3 S of G, 2 S_f of F."""
    S, Sf = params["S"], params["S_f"]
    out = _const(k, gc_g=_b(S, n), hv=_b(S, n), jv=_b(S, n), gc_f=2 * _b(Sf, m), samples_g=3 * _s(S, n),
                 samples_f=2 * _s(Sf, m))
    return _add(out, k >= 1, gc_f=_b(Sf, m), jv=_b(S, n))


def amigo(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """AmIGO: T S Gc(g), M S HV, 2 S_f Gc(f), S JV; samples (T + M + 1) S of G, S_f of F."""
    S, Sf, T, M = params["S"], params["S_f"], params["T"], params["M"]
    return _const(k, gc_g=T * _b(S, n), hv=M * _b(S, n), gc_f=2 * _b(Sf, m), jv=_b(S, n),
                  samples_g=(T + M + 1) * _s(S, n), samples_f=_s(Sf, m))


def _penalty_costs(params, k, n, m, nodes, inner: int, public: bool = False) -> dict[str, np.ndarray]:
    """Penalty methods: per inner step, each node one G batch and (nonzero nodes) one F batch; the
    hypergradient one grad_x g per node and one grad_x f per nonzero node. Samples: independent batches per call,
    or one G and one F batch per inner step and for the hypergradient (shared_batch)."""
    S, Sf = params["S"], params["S_f"]
    J, Jf = len(nodes), sum(s != 0 for s in nodes)
    gc_g = inner * J * _b(S, n) + J * _b(S, n)
    gc_f = inner * Jf * _b(Sf, m) + Jf * _b(Sf, m)
    if public:  # F2BA's public variant: one grad_y g per inner step (at z), read by both updates
        gc_g = inner * _b(S, n) + J * _b(S, n)
    if params["shared_batch"] and not public:
        sg, sf = (inner + 1) * _s(S, n), (inner + 1) * min(Jf, 1) * _s(Sf, m)
    else:
        per_g = 1 if public else J
        sg, sf = inner * per_g * _s(S, n) + (1 if params["shared_batch"] else J) * _s(S, n), \
            inner * Jf * _s(Sf, m) + (min(Jf, 1) if params["shared_batch"] else Jf) * _s(Sf, m)
    return _const(k, gc_g=gc_g, gc_f=gc_f, hv=0, jv=0, samples_g=sg, samples_f=sf)


def f2sa(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """F2SA: nodes (0, 1): T inner steps of 2 grad_y g and 1 grad_y f, then 2 grad_x g and 1 grad_x f."""
    return _penalty_costs(params, k, n, m, (0, 1), params["T"])


def f2ba(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """F2BA: as F2SA with K inner steps; the public variant evaluates one grad_y g per inner step."""
    return _penalty_costs(params, k, n, m, (0, 1), params["K"], public=params["variant"] == "public")


def f2sap(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """F2SA-p: the stencil's nodes (``algorithms.penalty.fd_stencil``), T inner steps each."""
    from bilevelbench.algorithms.penalty import fd_stencil

    return _penalty_costs(params, k, n, m, fd_stencil(params["p"])[0], params["T"])


def _neumann_estimate(S, Q, n, m) -> dict:
    """One Neumann hypergradient estimate and one grad_y g on a sample set of size S: 2 S Gc(f), Q S HV, S JV,
    S Gc(g); samples (2 + Q) S of G, S of F."""
    return dict(gc_g=_b(S, n), gc_f=2 * _b(S, m), hv=Q * _b(S, n), jv=_b(S, n), samples_g=(2 + Q) * _s(S, n),
                samples_f=_s(S, m))


def mrbo(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """MRBO: one sample set per step, evaluated at one point at k = 0 and at two (STORM) from k = 1 on."""
    one = _neumann_estimate(params["S"], params["Q"], n, m)
    twice = np.where(k >= 1, 2.0, 1.0)
    return {kind: twice * v if kind not in ("samples_g", "samples_f") else np.full(k.shape, v)
            for kind, v in one.items()}


def vrbo(params: Mapping, k: np.ndarray, horizon=None, n=None, m=None) -> dict[str, np.ndarray]:
    """VRBO: a large sample set S1 at k mod q = 0 (one point), then m inner SARAH steps on sets of S2 (two
    points each)."""
    big = _neumann_estimate(params["S1"], params["Q"], n, m)
    small = _neumann_estimate(params["S2"], params["Q"], n, m)
    restart = (k % params["q"]) == 0
    out = {}
    for kind in big:
        factor = 1 if kind.startswith("samples") else 2
        out[kind] = np.where(restart, big[kind], 0.0) + params["m"] * factor * small[kind]
    return out


#: algorithm role -> cost(params, k, horizon) (the deterministic ones ignore the horizon); the modern solvers'
#: take the problem's sample counts n, m as keywords as well
COSTS: dict[str, Callable] = {
    "aid-bio": lambda p, k, h=None: aid(p, k),
    "ba": lambda p, k, h=None: aid(p, k),
    "itd-bio": lambda p, k, h=None: itd(p, k),
    "deterbio": lambda p, k, h=None: itd(p, k),
    "stocbio": lambda p, k, h=None: _stocbio(p, k),
    "bsa": _bsa,
    "ttsa": _ttsa,
    "soba": soba, "saba": saba, "srba": srba, "fsla": fsla, "amigo": amigo, "f2sa": f2sa, "f2ba": f2ba,
    "f2sa-p": f2sap, "mrbo": mrbo, "vrbo": vrbo,
}
#: the roles whose costs depend on the numbers of samples n, m (full passes)
SAMPLE_AWARE = ("soba", "saba", "srba", "fsla", "amigo", "f2sa", "f2ba", "f2sa-p", "mrbo", "vrbo")


def step_costs(role: str, params: Mapping, k, horizon: int | None = None, n: int | None = None,
               m: int | None = None) -> dict[str, np.ndarray]:
    """Per-step costs of ``role`` with ``params`` at outer steps ``k`` (MV added as JV + HV). ``n``, ``m``: the
    numbers of G and F samples of a finite-sum problem (the modern solvers' full passes cost n, m)."""
    if role not in COSTS:
        raise ValueError(f"no cost model for {role!r}; known: {', '.join(COSTS)}")
    k = np.asarray(k, dtype=float)
    sizes = {"n": n, "m": m} if role in SAMPLE_AWARE else {}
    out = {kind: np.broadcast_to(np.asarray(v, dtype=float), k.shape).copy()
           for kind, v in COSTS[role](params, k, horizon, **sizes).items()}
    for kind in ("gc_f", "gc_g", "jv", "hv"):
        out.setdefault(kind, np.zeros(k.shape))
    out["mv"] = out["jv"] + out["hv"]
    return out


def cumulative(role: str, params: Mapping, steps: int, horizon: int | None = None, n: int | None = None,
               m: int | None = None) -> dict[str, float]:
    """Total cost of outer steps 0..steps-1 (to have produced x_0..x_steps)."""
    costs = step_costs(role, params, np.arange(max(int(steps), 0)), horizon, n, m)
    return {kind: float(v.sum()) for kind, v in costs.items()}


def randomized_sd(params: Mapping, steps: int, horizon: int | None = None) -> float:
    """Standard deviation of the Hessian samples (HV) BSA or TTSA spend over outer steps 0..steps-1: each step
    spends B p_k with p_k uniform on {0..b-1}, independent (Ghadimi and Wang 2018 Alg. 3), so the total has
    variance steps B^2 (b^2 - 1)/12 around the expected cost of ``randomized`` (b as the run sets it)."""
    b = _neumann_terms(params, horizon if horizon is not None else steps)
    return float(params["B"]) * math.sqrt(max(int(steps), 0) * (b * b - 1) / 12.0)
