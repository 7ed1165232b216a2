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

__all__ = ["COSTS", "step_costs", "cumulative", "randomized_sd"]


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
    if params.get("b") is not None:
        return int(params["b"])
    return max(1, math.ceil(math.log(horizon + 1) / (params["eta"] * params["mu"]) - 1e-9))


def _bsa(params, k, horizon):
    inner = (np.ceil(np.sqrt(k + 1.0) - 1e-12) if params["schedule"] == "sqrt"
             else np.full(k.shape, float(params["N"])))
    return randomized(params, k, _neumann_terms(params, horizon), inner)


def _ttsa(params, k, horizon):
    return randomized(params, k, _neumann_terms(params, horizon), np.ones(k.shape))


#: algorithm role -> cost(params, k, horizon) (the deterministic ones ignore the horizon)
COSTS: dict[str, Callable] = {
    "aid-bio": lambda p, k, h=None: aid(p, k),
    "ba": lambda p, k, h=None: aid(p, k),
    "itd-bio": lambda p, k, h=None: itd(p, k),
    "deterbio": lambda p, k, h=None: itd(p, k),
    "stocbio": lambda p, k, h=None: _stocbio(p, k),
    "bsa": _bsa,
    "ttsa": _ttsa,
}


def step_costs(role: str, params: Mapping, k, horizon: int | None = None) -> dict[str, np.ndarray]:
    """Per-step costs of ``role`` with ``params`` at outer steps ``k`` (MV added as JV + HV)."""
    if role not in COSTS:
        raise ValueError(f"no cost model for {role!r}; known: {', '.join(COSTS)}")
    k = np.asarray(k, dtype=float)
    out = COSTS[role](params, k, horizon)
    out["mv"] = out["jv"] + out["hv"]
    return out


def cumulative(role: str, params: Mapping, steps: int, horizon: int | None = None) -> dict[str, float]:
    """Total cost of outer steps 0..steps-1 (to have produced x_0..x_steps)."""
    costs = step_costs(role, params, np.arange(max(int(steps), 0)), horizon)
    return {kind: float(v.sum()) for kind, v in costs.items()}


def randomized_sd(params: Mapping, steps: int, horizon: int | None = None) -> float:
    """Standard deviation of the Hessian samples (HV) BSA or TTSA spend over outer steps 0..steps-1: each step
    spends B p_k with p_k uniform on {0..b-1}, independent (Ghadimi and Wang 2018 Alg. 3), so the total has
    variance steps B^2 (b^2 - 1)/12 around the expected cost of ``randomized`` (b as the run sets it)."""
    b = _neumann_terms(params, horizon if horizon is not None else steps)
    return float(params["B"]) * math.sqrt(max(int(steps), 0) * (b * b - 1) / 12.0)
