"""Stochastic linear-system solvers and the stochastic fixed-point iteration (batched over instances).

Every estimator takes ``hvp(u, idx)``: the mini-batch Hessian-vector product grad_yy G(x, y; idx) u for
u (R, d) and an index tensor idx (R, S) (one counted HV per sample), and the list of mini-batches it
uses, drawn beforehand by :func:`draw_batches`. Notation: H = grad_yy g, v a vector (R, d), eta the
Neumann step, Q the number of factors.

Expectations (independent batches, E H_B = H):
- :func:`vq_recursion` (ICML 2021 Alg. 3) and :func:`hinv_horner` (arXiv eq. 5, applied to v) both have
  E = eta sum_{q=0}^{Q} (I - eta H)^q v (the truncated Neumann series, ``solvers.neumann``);
- :func:`randomized_neumann` (Ghadimi and Wang 2018 Alg. 3) has
  E = eta sum_{q=0}^{b-1} (I - eta H)^q v (b terms: p uniform on {0, ..., b-1}, scale b eta).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

from ..analytic.base import split_draw

__all__ = ["decaying_batches", "equal_batches", "draw_batches", "vq_recursion", "hinv_horner",
           "randomized_neumann", "neumann_factors", "draw_p", "stochastic_fixed_point", "step_size_policy",
           "check_neumann_step"]


# ---------------------------------------------------------------------- batch schedules
def decaying_batches(B: float, Q: int, eta: float, mu: float) -> list[int]:
    """Batch sizes s_j = ceil(B Q (1 - eta mu)^(j-1)), j = 1..Q (returned in that order).

    arXiv Prop. 4 uses |B_j| = s_j; ICML 2021 Prop. 3 uses |B_{Q+1-j}| = s_j (the batch applied first to
    v_0 in Alg. 3 is the largest). Both require B >= 1/(Q (1 - eta mu)^(Q-1)) so that the smallest is
    >= 1; we round up (ceil, never below 1), so every batch is at least the paper's real-valued size.
    The 1e-9 slack keeps an exact integer (e.g. B Q = 64) from rounding up by float round-off.
    """
    if Q == 0:
        return []
    c = 1.0 - eta * mu
    return [max(1, math.ceil(B * Q * c ** (j - 1) - 1e-9)) for j in range(1, Q + 1)]


def equal_batches(total: int, Q: int) -> list[int]:
    """Q batch sizes as equal as integers allow (differing by at most 1) with the given total: the
    equal-batch variant of the schedule comparison (ICML 2021 after Prop. 3: "the uniform choice of
    all |B_j| would yield a worse complexity")."""
    if Q == 0:
        return []
    base, extra = divmod(int(total), Q)
    return [base + (1 if j < extra else 0) for j in range(Q)]


def draw_batches(oracle, which: str, sizes: Sequence[int], streams, replace: bool = True,
                 active: Sequence[torch.Tensor | None] | None = None) -> list:
    """Independent mini-batches of the given sizes for F ('f') or G ('g'), each (R, size).

    ``active`` (one (R,) bool mask or None per batch): batch i is drawn for every instance (the draws do
    not depend on the mask), but only the instances of ``active[i]`` use it; the others are charged nothing
    for it (the oracle records them as idle, ``CountedOracle.charge``).

    With replacement, one draw of sum(sizes) i.i.d. indices split into consecutive pieces is the same
    law as independent draws (and one hash call instead of len(sizes)); without replacement every batch
    is drawn on its own (distinct indices within a batch, batches independent of each other). An
    oracle with a ``minibatches`` method (``CountedOracle``: the problem's) turns the indices into its
    mini-batch objects (``MiniBatch``, rows gathered once per draw); otherwise batches are index tensors.
    """
    sizes = [int(s) for s in sizes]
    if not sizes:
        return []
    split = getattr(oracle, "minibatches", None) or (lambda which, idx, sizes: split_draw(idx, sizes))
    if replace:
        out = split(which, oracle.sample(which, sum(sizes), streams, replace=True), sizes)
    else:
        out = [split(which, oracle.sample(which, s, streams, replace=False), [s])[0] for s in sizes]
    if active is not None:
        kind = "samples_f" if which == "f" else "samples_g"
        for size, mask in zip(sizes, active, strict=True):
            if mask is not None:  # drawn (charged above) for all; not needed outside the mask
                oracle.release(kind, size, mask)
    return out



def check_neumann_step(eta: float, L: float, name: str = "eta"):
    """Raise ValueError when eta >= 2/L: then ||I - eta H|| can reach |1 - eta L| >= 1 and the Neumann
    series eta sum_q (I - eta H)^q does not converge (it needs 0 < eta < 2/||H||)."""
    if eta >= 2.0 / L:
        raise ValueError(f"{name}={eta:.6g} >= 2/L={2.0 / L:.6g}: the Neumann series diverges "
                         f"(it needs 0 < {name} < 2/L; the theorems take {name} <= 1/L)")


# ---------------------------------------------------------------------- stocBiO's estimators
def vq_recursion(hvp: Callable, v0: torch.Tensor, batches: Sequence[torch.Tensor], eta: float) -> torch.Tensor:
    """v_Q of ICML 2021 Alg. 3 (eq. 5 of that paper): r_Q = v_0, r_{i-1} = r_i - eta H_{B_i} r_i for
    i = Q, ..., 1, v_Q = eta sum_{i=0}^{Q} r_i, with ``batches[i-1]`` = B_i.

    So r_{Q-m} = (I - eta H_{B_{Q-m+1}}) ... (I - eta H_{B_Q}) v_0 and, the batches being independent
    and unbiased, E v_Q = eta sum_{q=0}^{Q} (I - eta H)^q v_0 (the paper's sum; a public implementation
    instead returns a sum tending to H^-1 v/eta - v). Cost: sum_i |B_i| HV.
    """
    r = v0
    acc = v0.clone()
    for i in range(len(batches), 0, -1):
        r = r - eta * hvp(r, batches[i - 1])
        acc = acc + r
    return eta * acc


def hinv_horner(hvp: Callable, v: torch.Tensor, batches: Sequence[torch.Tensor], eta: float) -> torch.Tensor:
    """H_inv(D_H) v for arXiv eq. (5), H_inv = eta sum_{q=0}^{Q} prod_{j=1}^{q} (I - eta H_{B_j}),
    with ``batches[j-1]`` = B_j, by Horner's scheme:
    u_Q = v, u_{j-1} = v + (I - eta H_{B_j}) u_j (j = Q, ..., 1), H_inv v = eta u_0.

    The product prod_{j=1}^{q} is ordered (I - eta H_{B_1}) ... (I - eta H_{B_q}), so B_1 (the largest
    batch of Prop. 4) multiplies every term q >= 1. Cost: sum_j |B_j| HV, no matrix formed.
    """
    u = v
    for j in range(len(batches), 0, -1):
        u = v + u - eta * hvp(u, batches[j - 1])
    return eta * u


# ---------------------------------------------------------------------- BSA / TTSA estimator
def draw_p(streams, b: int) -> torch.Tensor:
    """p uniform on {0, ..., b-1}, one per instance: (R, 1) int64 (floor(b U), U uniform on [0, 1), i.e.
    ``Streams.integers(b, 1)``)."""
    return streams.integers(b, 1)


def randomized_neumann(hvp: Callable, v: torch.Tensor, p: torch.Tensor, batches: Sequence[torch.Tensor],
                       eta: float, factors: int | None = None) -> torch.Tensor:
    """Ghadimi and Wang 2018 Alg. 3 (also Hong et al. 2020, TTSA): b eta prod_{i=1}^{p} (I - eta H_{B_i}) v
    with b = len(batches) + 1 and p (R, 1) uniform on {0, ..., b-1}.

    E over p: b eta (1/b) sum_{p=0}^{b-1} (I - eta H)^p v = eta sum_{q=0}^{b-1} (I - eta H)^q v, the
    truncated series of b terms (Ghadimi and Wang take eta = 1/L_g). Instances draw different p; the
    batched computation applies factors 1..``factors`` (at least max p; default b-1), factor i with the step
    eta [i <= p]: an instance whose product has ended steps by 0, u - 0 (H u) = u exactly, so the result
    does not depend on ``factors`` (the compute, ``factors`` HV batches, is the most any instance needs).
    The steps of all factors are formed at once: one dispatch instead of a mask per factor. ``hvp(u, idx,
    active)`` is called with the mask of the instances whose product still runs (counted for them only).
    """
    b = len(batches) + 1
    factors = b - 1 if factors is None else factors
    if not 0 <= factors <= b - 1:
        raise ValueError(f"factors must be in [0, b-1] = [0, {b - 1}], got {factors}")
    u = v
    running = p >= torch.arange(1, b, device=p.device)  # (R, b-1): factor i applies to instance r
    steps = eta * running.to(v.dtype)
    for i in range(1, factors + 1):
        u = u - steps[:, i - 1:i] * hvp(u, batches[i - 1], running[:, i - 1])
    return (b * eta) * u


def neumann_factors(p: torch.Tensor, b: int) -> int:
    """How many factors the batch must apply: max p where p is on the CPU (free to read), else b-1 (reading
    a GPU tensor would synchronise the device once per step). Inside a compiled step (``algorithms.compiled``)
    b-1: a graph cannot read p's value, and factors past an instance's p step by exactly 0."""
    if torch.compiler.is_compiling():
        return b - 1
    return int(p.max()) if p.device.type == "cpu" and p.numel() else b - 1


# ---------------------------------------------------------------------- SID paper, section 4
def step_size_policy(policy: str, eta: float = 1.0, beta: float | None = None, gamma: float | None = None):
    """eta_t for t = 0, 1, ...: 'constant' (eta_t = eta, SID Thm 4.1) or 'decreasing'
    (eta_t = beta/(gamma + t), SID Thm 4.2 and Section 6 "Stoch dec")."""
    if policy == "constant":
        return lambda t: eta
    if policy == "decreasing":
        if beta is None or gamma is None or beta <= 0 or gamma < 0:
            raise ValueError(f"decreasing steps need beta > 0 and gamma >= 0, got beta={beta}, gamma={gamma}")
        return lambda t: beta / (gamma + t)
    raise ValueError(f"policy must be 'constant' or 'decreasing', got {policy!r}")


def stochastic_fixed_point(T_hat: Callable, w0: torch.Tensor, steps: int, eta_t: Callable) -> torch.Tensor:
    """Stochastic Krasnoselskii-Mann iteration, SID paper eq. (17):
    w_{t+1} = w_t + eta_t (T^(w_t, zeta_t) - w_t), t = 0, ..., steps - 1.

    ``T_hat(w, t)`` returns one draw of the stochastic map at w (it draws its own sample zeta_t, so
    successive calls are independent); ``eta_t(t)`` is the step. SGD on l is the case
    T^(w, zeta) = w - alpha grad l^(w, zeta) (eq. 21); SID's (28) and (29) are two instances.
    """
    w = w0
    for t in range(steps):
        eta = eta_t(t)
        w = w + eta * (T_hat(w, t) - w)
    return w
