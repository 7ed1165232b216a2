"""Experiments of the deterministic claims of Ji, Yang, Liang, arXiv (Lemma 2, Proposition 3).

* ``lipschitz/grad-phi`` (Lemma 2): the largest ratio ||grad Phi(x) - grad Phi(x')|| / ||x - x'|| found on
  the declared region, by random pairs, pairs along the top eigenvector of the Hessian of Phi and a few
  projected-ascent steps on that eigenvalue. Every reported ratio is a true pair ratio (a lower bound on the
  Lipschitz constant). ``logistic-lower`` has exact tau, rho > 0 on a box (x) x ball (y) region whose x-part
  is convex, so every pair of the box is covered by the lemma. A ``quadratic`` configuration with an
  affine grad Phi (nonconvex = 0) is the instrument's anchor: there the Lipschitz constant is exactly
  ||grad^2 Phi||_2 (autograd of the closed-form hypergradient), and the search must find it.
  Analytic: no algorithm, no role.
* ``itd-error/fresh-start`` (Proposition 3): the ITD hypergradient d f(x, y^T(x))/dx after T = 0..T_max inner
  GD steps (alpha = 1/L) from a y_0 independent of x, computed by the audited reverse recursion (component
  role ``itd.hypergradient``), against the exact grad Phi(x) and against the exact value of the same
  quantity by the forward recursion of the proof, eq. (17) (dense Jacobians and Hessians of the problem),
  so a wrong recursion shows at every T, not only where the bound is tight.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

import bilevelbench.bounds as bd
from bilevelbench.algorithms.deterministic import inner_gd
from bilevelbench.algorithms.oracle import CountedOracle

from . import Arm, Experiment, Key, Row, register_experiment
from .common import cast_of, make
from .stochastic_common import region_point

__all__ = ["LipschitzKey", "LipschitzRow", "ItdErrorKey", "ItdErrorRow", "LIPSCHITZ", "ITD_ERROR",
           "LEMMA2_CONFIGS", "PROP3_FAMILIES", "itd_exact", "roundoff_allowance"]

LIPSCHITZ = "lipschitz/grad-phi"
ITD_ERROR = "itd-error/fresh-start"
_EPS64 = float(np.finfo(np.float64).eps)

# ---------------------------------------------------------------------- Lemma 2
#: logistic-lower: w = 0.2 gives M < 1, where the printed tau M^2/mu is the smaller form; quadratic with
#: nonconvex = 0 (Phi quadratic): the anchor whose Lipschitz constant is known exactly
LEMMA2_CONFIGS = (("logistic-lower", {"dim_x": 2, "dim_y": 4, "kappa": 10.0, "w": 1.0}),
                  ("logistic-lower", {"dim_x": 3, "dim_y": 3, "kappa": 20.0, "w": 0.2}),
                  ("quadratic", {"dim_x": 3, "dim_y": 4, "kappa": 10.0}))


@dataclass(frozen=True)
class LipschitzKey(Key):
    family: str
    R: int
    pairs: int
    starts: int
    ascent: int
    family_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class LipschitzRow(Row):
    family: str
    config: str
    instance: int
    kappa: float
    M: float
    tau: float
    rho: float
    sup_ratio: float
    random_ratio: float
    exact: float  # the exact Lipschitz constant where grad Phi is affine, else NaN
    printed: float
    rederived: float


class _Region:
    """Sampling and projection on the x-part of a family's declared region: the box of ``logistic-lower``,
    the ball ||x|| <= r/2 of ``quadratic`` (r the radius of its (x, y) ball; any x works for an affine
    grad Phi, the ball keeps the points where M is declared)."""

    def __init__(self, p):
        self.p = p
        self.box = p.name == "logistic-lower"

    def sample(self, n, gen):
        p = self.p
        if self.box:
            u = torch.rand(n, p.R, p.dim_x, generator=gen, dtype=torch.float64)
            return (p.x_min + (p.x_max - p.x_min) * u).to(p.dtype)
        z = torch.randn(n, p.R, p.dim_x, generator=gen, dtype=torch.float64)
        r = 0.5 * p.radius * torch.rand(n, p.R, 1, generator=gen, dtype=torch.float64)
        return (r * z / z.norm(dim=-1, keepdim=True)).to(p.dtype)

    def clamp(self, x):
        if self.box:
            return x.clamp(self.p.x_min, self.p.x_max)
        n = x.norm(dim=-1, keepdim=True)
        return x * (0.5 * self.p.radius / n).clamp(max=1.0)

    @property
    def width(self) -> float:
        return (self.p.x_max - self.p.x_min) if self.box else 0.5 * self.p.radius


def _ratio(p, x, xp):
    return (p._hypergradient(x) - p._hypergradient(xp)).norm(dim=-1) / (x - xp).norm(dim=-1)


def _exact_lipschitz(p) -> torch.Tensor:
    """||grad^2 Phi||_2 per instance for a quadratic Phi (``quadratic`` with nonconvex = 0): the Hessian is
    constant, taken by autograd of the closed-form hypergradient at x = 0."""
    out = []
    for r in range(p.R):
        q = p.instance(r)
        H = torch.autograd.functional.jacobian(lambda x, q=q: q._hypergradient(x[None])[0],
                                               torch.zeros(p.dim_x, dtype=p.dtype, device=p.device))
        out.append(torch.linalg.matrix_norm(0.5 * (H + H.T), ord=2))
    return torch.stack(out)


def lipschitz_measure(key: LipschitzKey, env, seed: int) -> list[LipschitzRow]:
    """Lemma 2: the largest ||grad Phi(x) - grad Phi(x')|| / ||x - x'|| over (a) random pairs of the region,
    (b) pairs (x, x + s v) with v the top eigenvector of the Hessian of Phi (central differences of the
    exact hypergradient) at the random points, (c) the same after a few steps of projected ascent of that
    eigenvalue (finite-difference gradient). Every ratio is a true pair ratio, never a finite difference."""
    p = make(key.family, env, batch=key.R, seed=seed, **key.family_params)
    reg = _Region(p)
    gen = torch.Generator().manual_seed(seed)
    xs, xps = reg.sample(key.pairs, gen), reg.sample(key.pairs, gen)
    best = torch.zeros(p.R, dtype=p.dtype)
    for x, xp in zip(xs, xps, strict=True):
        best = torch.maximum(best, _ratio(p, x, xp))
    rand_best = best.clone()
    h, s = 1e-5, 1e-3
    eye = torch.eye(p.dim_x, dtype=p.dtype)

    def top(x):
        Hm = torch.stack([(p._hypergradient(x + h * e) - p._hypergradient(x - h * e)) / (2 * h) for e in eye], -1)
        ev, vec = torch.linalg.eigh(0.5 * (Hm + Hm.transpose(-1, -2)))
        i = ev.abs().argmax(-1)
        return ev.abs().gather(-1, i[:, None]).squeeze(-1), vec[torch.arange(p.R), :, i]

    for x in xs[: key.starts]:
        for _ in range(key.ascent + 1):
            _, v = top(x)
            xa = reg.clamp(x - s / 2 * v)
            best = torch.maximum(best, _ratio(p, xa, reg.clamp(xa + s * v)))
            grad = torch.stack([(top(reg.clamp(x + 10 * h * e))[0] - top(reg.clamp(x - 10 * h * e))[0]) / (20 * h)
                                for e in eye], -1)
            x = reg.clamp(x + 0.1 * reg.width * grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-300))
    affine = key.family == "quadratic" and float(key.family_params.get("nonconvex", 0.0)) == 0.0
    exact = _exact_lipschitz(p) if affine else torch.full((p.R,), float("nan"), dtype=p.dtype)
    c = p.constants
    printed = bd.BOUNDS["arxiv20.lemma2"](c.L, c.mu, c.M, c.tau, c.rho)
    rederived = bd.BOUNDS["arxiv20.lemma2.rederived"](c.L, c.mu, c.M, c.tau, c.rho)
    config = f"{key.family} " + " ".join(f"{k}={v:g}" for k, v in sorted(key.family_params.items()))
    return [LipschitzRow(family=key.family, config=config, instance=r, kappa=c.kappa, M=c.M, tau=c.tau, rho=c.rho,
                         sup_ratio=float(best[r]), random_ratio=float(rand_best[r]), exact=float(exact[r]),
                         printed=printed, rederived=rederived) for r in range(p.R)]


def _lipschitz_grid(profile: str) -> tuple[LipschitzKey, ...]:
    quick = profile == "quick"
    return tuple(LipschitzKey(family=f, family_params=dict(pr), R=2 if quick else 4, pairs=32 if quick else 128,
                              starts=2 if quick else 6, ascent=2 if quick else 5) for f, pr in LEMMA2_CONFIGS)


register_experiment(Experiment(
    name=LIPSCHITZ, measure=lipschitz_measure, grid=_lipschitz_grid, key_type=LipschitzKey, row_type=LipschitzRow,
    summary="largest pair ratio ||grad Phi(x) - grad Phi(x')||/||x - x'|| on the declared region (random pairs, "
            "top Hessian eigenvector, projected ascent); logistic-lower (tau, rho > 0) and an affine-gradient "
            "quadratic whose exact constant anchors the search"))


# ---------------------------------------------------------------------- Proposition 3
#: logistic-lower: tau, rho > 0 (every term of the bound is active; a recursion evaluating its Jacobians
#: at the wrong iterate shows only there); quadratic: tau = rho = 0, the reference
PROP3_FAMILIES = (("logistic-lower", {"dim_x": 2, "dim_y": 4, "kappa": 10.0}),
                  ("logistic-lower", {"dim_x": 3, "dim_y": 3, "kappa": 20.0}),
                  ("quadratic", {"dim_x": 5, "dim_y": 5, "kappa": 10.0}))


@dataclass(frozen=True)
class ItdErrorKey(Key):
    family: str
    R: int
    T_max: int
    family_params: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ItdErrorRow(Row):
    family: str
    config: str
    instance: int
    T: int
    err: float  # ||ITD estimate (audited) - grad Phi||
    err_exact: float  # ||ITD estimate (forward recursion, eq. (17)) - grad Phi||
    dev: float  # ||ITD estimate (audited) - ITD estimate (forward recursion)||
    dev_tol: float  # round-off allowance of dev
    tol: float  # round-off allowance of err (dev_tol and the truth's own round-off)
    bound: float
    dist0: float
    alpha_mu: float
    in_region: bool


def _start(p, seed):
    """x and y_0 in the region where the constants hold, and whether every GD iterate stays in it:
    ||y_t - y*|| <= ||y_0 - y*|| (GD with alpha <= 1/L on a mu-strongly convex g), so ||y_t|| <=
    ||y*|| + ||y_0 - y*|| must lie in the y-ball (logistic-lower, x in its box) or, with x, in the (x, y)
    ball (quadratic)."""
    gen = torch.Generator().manual_seed(seed)
    if p.name == "logistic-lower":
        x = _Region(p).sample(1, gen)[0]
        room = p.radius - 2 * p.constants.extra["y_star_sup"]
        d = torch.randn(p.R, p.dim_y, generator=gen, dtype=torch.float64)
        y0 = (room * torch.rand(p.R, 1, generator=gen, dtype=torch.float64) * d / d.norm(dim=-1, keepdim=True))
        y0 = y0.to(p.dtype)
        reach = lambda ys, d0: ys.norm(dim=-1) + d0  # noqa: E731 - the y-ball only: x is in the box
    else:
        x, dy = region_point(p, seed, scale=0.2)
        y0 = p._y_star(x) + dy
        reach = lambda ys, d0: torch.sqrt((x * x).sum(-1) + (ys.norm(dim=-1) + d0) ** 2)  # noqa: E731
    ys = p._y_star(x)
    d0 = (y0 - ys).norm(dim=-1)
    return x, y0, d0, reach(ys, d0) <= p.constants.extra["radius"] * (1 + 1e-12)


def itd_exact(p, x, ys: list, alpha: float) -> list[torch.Tensor]:
    """The exact ITD estimate d f(x, y^T(x))/dx for T = 0..len(ys) - 1 (y_0 independent of x), by the
    forward recursion of arXiv eq. (17): Z_0 = 0, Z_{t+1} = Z_t - alpha (grad_y grad_x g(x, y^t) +
    grad_yy g(x, y^t) Z_t) with Z_t = d y^t/dx (R, d_y, d_x); estimate_T = grad_x f(x, y^T) + Z_T' grad_y f(x,
    y^T). Dense Jacobians and Hessians of the problem: a computation independent of the reverse recursion."""
    Z = torch.zeros(p.R, p.dim_y, p.dim_x, dtype=p.dtype, device=p.device)
    out = []
    for t, y in enumerate(ys):
        out.append(p._grad_x_f(x, y) + (Z.transpose(-1, -2) @ p._grad_y_f(x, y).unsqueeze(-1)).squeeze(-1))
        if t + 1 < len(ys):
            Z = Z - alpha * (p._jac_xy(x, y).transpose(-1, -2) + p._hess_yy(x, y) @ Z)
    return out


def roundoff_allowance(T: int, d: int, scale: torch.Tensor) -> torch.Tensor:
    """Float64 round-off allowance of a T-step ITD estimate, by either recursion: each of the T + 1 steps
    adds a matrix-vector product of size d (normwise relative error gamma_d ~ d eps) and a few vector
    operations, relative to ``scale`` = ||grad_x f|| + (L/mu) ||grad_y f|| (the largest the estimate's
    terms can be: the products (I - alpha grad_yy g) contract, sum_t alpha ||J|| q^t <= L/mu); no step
    amplifies an earlier error. Two computations compared: twice that."""
    return 2 * (T + 1) * (d + 2) * _EPS64 * scale


def itd_error_measure(key: ItdErrorKey, env, seed: int) -> list[ItdErrorRow]:
    """Prop. 3: the ITD error after T = 0..T_max inner GD steps (alpha = 1/L) from y_0, the audited reverse
    recursion (``itd.hypergradient``) against the exact grad Phi(x) and against the forward recursion; the
    bound of Prop. 3 at ||y_0 - y*(x)||."""
    p = make(key.family, env, batch=key.R, seed=seed, **key.family_params)
    c = p.constants
    reverse = cast_of(env).component("itd.hypergradient")
    x, y0, dist0, in_region = _start(p, seed)
    alpha = 1.0 / c.L
    truth = p._hypergradient(x)
    o = CountedOracle(p)
    y_last, ys = inner_gd(o, x, y0, key.T_max, alpha, keep=True)
    ys = ys + [y_last]  # y^0 .. y^T_max
    exact = itd_exact(p, x, ys, alpha)
    d = max(p.dim_x, p.dim_y)
    # the truth: Newton to round-off (or a closed form) and one dense solve with condition number <= kappa
    truth_tol = 2 * c.kappa * (d + 2) * _EPS64 * truth.norm(dim=-1)
    rows = []
    for T in range(key.T_max + 1):
        est = reverse(o, x, ys[:T], ys[T], alpha)
        scale = p._grad_x_f(x, ys[T]).norm(dim=-1) + c.kappa * p._grad_y_f(x, ys[T]).norm(dim=-1)
        dev_tol = roundoff_allowance(T, d, scale)
        err, err_exact = (est - truth).norm(dim=-1), (exact[T] - truth).norm(dim=-1)
        dev = (est - exact[T]).norm(dim=-1)
        for r in range(p.R):
            rows.append(ItdErrorRow(
                family=key.family, config=f"{key.family} d_x={p.dim_x} d_y={p.dim_y} kappa={c.kappa:g}", instance=r,
                T=T, err=float(err[r]), err_exact=float(err_exact[r]), dev=float(dev[r]), dev_tol=float(dev_tol[r]),
                tol=float(dev_tol[r] + truth_tol[r]),
                bound=bd.BOUNDS["arxiv20.prop3"](c.L, c.mu, c.M, c.tau, c.rho, alpha, T, float(dist0[r])),
                dist0=float(dist0[r]), alpha_mu=alpha * c.mu, in_region=bool(in_region[r])))
    return rows


def _itd_grid(profile: str) -> tuple[ItdErrorKey, ...]:
    quick = profile == "quick"
    return tuple(ItdErrorKey(family=f, family_params=dict(pr), R=4 if quick else 16, T_max=40 if quick else 120)
                 for f, pr in PROP3_FAMILIES)


register_experiment(Experiment(
    name=ITD_ERROR, measure=itd_error_measure, grid=_itd_grid, key_type=ItdErrorKey, row_type=ItdErrorRow,
    arms=(Arm("itd.hypergradient", label="ITD reverse recursion"),),
    summary="ITD hypergradient after T = 0..T_max inner GD steps (alpha = 1/L) from a fresh y_0, audited reverse "
            "recursion against the exact grad Phi and the forward recursion eq. (17); logistic-lower (tau, rho > "
            "0) and quadratic"))
