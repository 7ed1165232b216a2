"""Helpers shared by the stochastic experiments (ICML 2021 Sec. 4.2 and 5, arXiv Props. 4 and Theorems 2-3).

Families and why. ``stochastic-quadratic`` (analytic/stochastic.py): finite sums whose mean problem is the
``quadratic`` family, with exact per-sample constants (``extra['L_sample_yy']``, ``M_assumption2``) and
independent noise levels for G (``noise``) and F (``noise_f``), so each term of the papers' bounds can be
isolated (noise = 0 makes S, D_g and B irrelevant, noise_f = 0 makes D_f irrelevant). The papers' Assumption
2 holds "for any given zeta": a sample Hessian can exceed the mean's L, so step sizes and bounds of the
estimator claims use the per-sample L (``L_sample_yy``) and M (``M_assumption2``) of the instance.
``meta-learning`` (analytic/meta.py): the tasks are the samples (ICML Theorem 4, arXiv Theorem 3).

Monte Carlo. Expectations over draws are estimated from independent draws (per-instance Streams, seeded
from the sweep point's seed); one-sided 99% bounds (``bench.stats.mean_bound``) and, for the norm of a
mean vector, a Laurent-Massart bound (``LM99``).
"""

from __future__ import annotations

import math

import torch

from .common import make

__all__ = ["EST_FAMILY", "LM99", "stoch_problem", "region_point", "per_sample", "mc_bias", "meta_problem", "META",
           "local_smoothness", "descend_to_stationary"]

#: Laurent-Massart (2000): for a Gaussian vector e with covariance C, ||e||^2 <= tr C (1 + 2 sqrt(x) + 2 x)
#: with probability >= 1 - exp(-x) (using ||C||_F, ||C||_2 <= tr C); x = ln 100 gives the one-sided 99%
#: factor on the Monte Carlo error ||mean - E|| of a sample mean of n draws, tr C = E||draw - E||^2 / n.
LM99 = math.sqrt(1 + 2 * math.sqrt(math.log(100)) + 2 * math.log(100))

#: the finite-sum family of the estimator claims: kappa small so that per-sample steps eta = 1/L_sample
#: still give eta mu large enough for the bias to decay within a few dozen factors
EST_FAMILY = {"kappa": 2.0, "dim": 5, "noise": 0.3, "noise_f": 0.3, "n": 64}

#: the meta-learning instance of ICML Theorem 4 / arXiv Theorem 3
META = {"kappa": 2.0, "tasks": 16, "p": 2, "d": 3, "n": 6}


def stoch_problem(env, seed, R, kappa, dim, noise, noise_f, n=64, family="stochastic-quadratic", n_g=None,
                  **extra):
    if family == "stochastic-quadratic":
        extra["noise_f"] = noise_f  # stochastic-logistic's F noise is its per-sample logistic loss
    return make(family, env, kappa=kappa, dim_x=dim, dim_y=dim, batch=R, seed=seed, noise=noise, n_f=n,
                n_g=n if n_g is None else n_g, **extra)


def region_point(problem, seed, scale=0.25):
    """A point (x, y) with ||(x, y)|| <= scale * radius on every instance (inside the ball where the
    constants hold)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(problem.R, problem.dim_x + problem.dim_y, generator=gen, dtype=torch.float64)
    z = scale * problem.constants.extra["radius"] * z / z.norm(dim=-1, keepdim=True)
    z = z.to(problem.x_opt)
    return z[:, :problem.dim_x], z[:, problem.dim_x:]


def per_sample(problem):
    """(L, mu, M) of Assumptions 1-2 read per sample (the papers assume them for every zeta)."""
    c = problem.constants
    return float(c.extra["L_sample_yy"]), c.mu, float(c.extra.get("M_assumption2", c.M))


def mc_bias(draws_sum, draws_sq_dev_sum, n, target):
    """||mean - target|| and the one-sided 99% Monte Carlo half-width LM99 sqrt(V/n) of ||mean - E||,
    V = E||draw - E||_F^2 estimated without bias. ``draws_sum`` (R, ...) sum of draws; returns (R,) each."""
    mean = draws_sum / n
    dims = tuple(range(1, mean.dim()))
    V = draws_sq_dev_sum / (n - 1)
    err = mean - target
    norm = torch.linalg.matrix_norm(err, ord=2) if mean.dim() == 3 else err.norm(dim=-1)
    return norm, LM99 * torch.sqrt(V / n), dims


def meta_problem(env, seed, R, kappa=None):
    k = dict(META)
    if kappa is not None:
        k["kappa"] = kappa
    return make("meta-learning", env, batch=R, seed=seed, **k)


def local_smoothness(p, x, h=1e-4, iters=20):
    """Largest |eigenvalue| of the Hessian of Phi at x (per instance) by power iteration on central
    differences of the exact hypergradient; a step-size scale for the floor runs, not a claimed constant."""
    gen = torch.Generator().manual_seed(0)
    v = torch.randn(p.R, p.dim_x, generator=gen, dtype=torch.float64).to(x)
    lam = torch.zeros(p.R, dtype=x.dtype, device=x.device)
    for _ in range(iters):
        v = v / v.norm(dim=-1, keepdim=True)
        hv = (p._hypergradient(x + h * v) - p._hypergradient(x - h * v)) / (2 * h)
        lam = hv.norm(dim=-1)
        v = hv
    return lam


def descend_to_stationary(p, x, steps, beta):
    """x after ``steps`` of exact gradient descent on Phi (the truth, not an algorithm): a start near a
    stationary point, so that floor runs show the noise floor, not the transient."""
    for _ in range(steps):
        x = x - beta * p._hypergradient(x)
    return x


