"""Experiments of Grazzi, Pontil, Salzo, AISTATS 2021 (SID; shared/papers/grazzi-pontil-salzo-2021-aistats-sid.txt).

Every SID run goes through the cast: the algorithm role ``sid`` (a plug-in SID is what is measured) or, for the
stochastic fixed-point claims of Section 4, the component role ``sid.fixed-point`` (iteration (17)).

* ``mc/sid-estimator``: SID (Alg. 1, eqs. 28, 29, 8) on one ``stochastic-quadratic`` instance with the
  decreasing steps of Theorem 5.1, R Monte Carlo runs (the batch holds R copies of one instance, each with its own
  random streams), t = k on a geometric grid, d2 Phi^ exact (separable, m2 = 0) or sampled (m2 > 0). Per w_t three
  independent v-chains and estimates: the first from the SID run that produced w_t (t steps of (28) from w_0 = 0,
  then k of (29) and eq. (8)), the others from SID runs restarted at that w_t (y0 = w_t, t = 0) with independent
  streams; they give unbiased estimates of both variance terms of eq. (11). Theorems 3.1-3.4 are also measured on a
  coupled finite sum around the same mean (:class:`CoupledQuadratic`) at w_t = w*. The instances' lower level is
  quadratic, so both chains are affine recursions with random matrices, and the mean and second moment of w_t,
  v_k and the estimate follow exactly from a second-moment recursion over the finite sum
  (:func:`sid_moments`): every Monte Carlo quantity has its exact value beside it. Serves thm3.1-3.4, eq14,
  thm5.1.
* ``mc/fixed-point-sgd``: iteration (17) through ``sid.fixed-point``: SGD (eq. 21) on l2-regularised logistic
  regression at one regularisation parameter (Remark 4.2's example: sigma2' = 0, sigma1' = E||a_i||^2),
  alpha = 1/L and 2/(L + tau), constant and decreasing steps; and the lower-level map of the stochastic-quadratic
  instance (Assumption D with Theorem 4.3's sigma1, sigma2), constant and decreasing steps, where the exact MSE
  of every t is known (:func:`fixed_point_moments`). Serves thm4.1, thm4.2, thm4.2.rate, cor4.1, rem4.1.
* ``exact/fixed-point-map-variance``: V[T^(w, zeta)] of T^ = w - alpha grad_y G(x, w; zeta) on the
  stochastic-quadratic instance, exact (the finite sum), at random w: no algorithm runs. Serves thm4.3.
* ``curves/sid-variants``: SID's Batch / Stoch const / Stoch dec (Sec. 6) at equal epochs on the logistic
  lower level (one and dim_y regularisation parameters). Serves fig1.

Constructions kept here (they are problem constructions of these experiments, not families): :func:`replicated`
(a family whose R instances are copies of instance 0) and :class:`MiniBatchLogistic` (``logistic-lower`` at one
regularisation vector as a finite sum with a mini-batch interface).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
from dataclasses import dataclass, field
from functools import cache

import numpy as np
import torch

import bilevelbench.analytic as an
from bilevelbench.algorithms.stochastic_presets import sid_alpha, sid_q
from bilevelbench.algorithms.stochastic_solvers import step_size_policy
from bilevelbench.analytic.base import MiniBatch, _Draw
from bilevelbench.analytic.logistic import LogisticLower, _psi1, _psi2
from bilevelbench.analytic.rng import Streams
from bilevelbench.bounds import sid21 as B
from bilevelbench.bounds.sid_constants import sid_constants

from . import Arm, Experiment, Key, Row, register_experiment
from .common import cast_of

__all__ = ["replicated", "MiniBatchLogistic", "CoupledQuadratic", "AffineMaps", "affine_maps", "fixed_point_moments",
           "sid_moments", "map_variance", "SQ", "COUPLED", "mc_setup", "mc_problem", "sq_setup", "run_sid", "SidMcKey",
           "SidMcRow", "SgdKey", "SgdRow", "MapVarKey", "MapVarRow", "Fig1Key", "Fig1Row", "MC", "SGD", "MAP_VARIANCE",
           "FIG1"]

MC = "mc/sid-estimator"
SGD = "mc/fixed-point-sgd"
MAP_VARIANCE = "exact/fixed-point-map-variance"
FIG1 = "curves/sid-variants"


# ====================================================================== shared helpers
@contextlib.contextmanager
def one_thread():
    """Run tiny batched ops on one thread: on the shared 2-core machine intra-op threading of (R, S, d) tensors
    with d = 5 costs ~50x (measured 50 ms vs 0.7 ms per SGD step); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def streams(seed: int, block: int, R: int) -> Streams:
    """Block ``block`` of R independent streams of a sweep point: seeds base + r with base a hash of (seed, block)
    in [0, 2^31), so the blocks of one point (a SID run and its restarts) and of nearby point seeds do not share
    streams (two blocks overlap with probability below R/2^30)."""
    h = hashlib.sha256(f"sid-streams|{int(seed)}|{int(block)}".encode()).digest()
    return Streams(torch.arange(R, dtype=torch.int64) + (int.from_bytes(h[:4], "little") & 0x7FFFFFFF))


def _sq(a):
    return (a * a).sum(-1)


@cache
def replicated(cls):
    """Subclass of a family whose R instances are copies of instance 0 (Monte Carlo over one instance). The
    instance's data are drawn once (``_draw_instance`` is deterministic given instance 0's generator) and shared
    by the R copies."""

    def instance_generator(self, r: int = 0):
        return cls.instance_generator(self, 0)

    def _draw_instance(self, gen, *args):
        if "_replica" not in self.__dict__:
            self._replica = cls._draw_instance(self, gen, *args)
        return self._replica

    return type(f"Replicated{cls.__name__}", (cls,), {"instance_generator": instance_generator,
                                                       "_draw_instance": _draw_instance,
                                                       "__doc__": f"{cls.__name__}, every instance = instance 0"})


class MiniBatchLogistic(LogisticLower):
    """``logistic-lower`` at one regularisation vector lam, as a finite sum for SID's mini-batch maps (SID Sec. 6,
    eq. 26): G(x, y; i) = psi(b_i a_i'y) + 1/2 sum_j lam_j(x) y_j^2, so (1/n) sum_i G_i = g exactly; the regulariser
    is sample-free, hence grad_x grad_y G_i = grad_x grad_y g (SID eq. 15: m2 = 0). All instances are copies of
    instance 0 (Monte Carlo over one instance). Not registered as a family.

    Constants. The experiments run at x = log(lam) only, so ``constants`` are those of g(x, .) there: mu = min lam
    (the infimum of the spectrum of grad_yy g over y: the data curvatures vanish as |y| grows, exact) and
    L = max lam + K (top data curvature at psi'' = 1/4, attained at y = 0, exact); kappa = L/mu. The family's other
    constants (M, tau, rho) hold on its whole box, hence here."""

    stochastic = True

    def __init__(self, *, lam, **kw):
        self.lam_at = torch.as_tensor(lam, dtype=torch.float64).reshape(-1)
        super().__init__(**kw)
        if self.lam_at.numel() != self.dim_x:
            raise ValueError(f"lam must have dim_x = {self.dim_x} entries, got {self.lam_at.numel()}")
        self.n_g, self.n_f = self.n_train, self.n_val

    def _make_constants(self):
        base = super()._make_constants()
        mu, L = float(self.lam_at.min()), float(self.lam_at.max()) + self.K
        regions = {**base.regions, "L": "exact at x = log(lam): max lam + K (attained at y = 0)",
                   "mu": "exact at x = log(lam): min lam (infimum over y of the smallest eigenvalue)"}
        return dataclasses.replace(base, L=L, mu=mu, kappa=L / mu, regions=regions)

    def x_at(self) -> torch.Tensor:
        """x = log(lam), (R, dim_x)."""
        return torch.log(self.lam_at).to(self.dtype).to(self.device).expand(self.R, self.dim_x).contiguous()

    def instance_generator(self, r: int = 0):
        return super().instance_generator(0)

    def _instance_data(self, gen):
        """Instance 0's data, drawn once and shared by the R copies."""
        if "_replica" not in self.__dict__:
            self._replica = super()._instance_data(gen)
        return self._replica

    def sample(self, which, size, streams, replace=True):
        """Indices (R, size) of training samples, uniform with replacement, from ``analytic.rng.Streams``."""
        if which != "g":
            raise ValueError(f"which must be 'g' (f is used in full by SID), got {which!r}")
        if not replace:
            raise ValueError("MiniBatchLogistic draws with replacement only")
        if not isinstance(streams, Streams):
            raise TypeError(f"streams must be an analytic.rng.Streams, got {type(streams).__name__}")
        return streams.integers(self.n_train, int(size)).to(self.device)

    @staticmethod
    def _gather(table, idx):
        """Rows of the batch idx (R, S) of a per-sample table: every instance holds instance 0's data."""
        return table[0][idx]

    def minibatches(self, which, idx, sizes):
        """``MiniBatch`` objects for consecutive pieces of one draw: rows gathered once for the whole draw."""
        return _Draw(idx, self._gather).split(sizes)

    def _rows(self, idx):
        return idx.rows(self.Xb) if isinstance(idx, MiniBatch) else self._gather(self.Xb, idx)

    def _grad_y_G(self, x, y, idx):
        X = self._rows(idx)
        s = _psi1(torch.bmm(X, y.unsqueeze(-1)))  # (R, S, 1)
        return torch.bmm(X.transpose(1, 2), s).squeeze(-1) / X.shape[1] + self._lam(x) * y

    def _hvp_G(self, x, y, v, idx):
        X = self._rows(idx)
        d = _psi2(torch.bmm(X, y.unsqueeze(-1))) * torch.bmm(X, v.unsqueeze(-1))
        return torch.bmm(X.transpose(1, 2), d).squeeze(-1) / X.shape[1] + self._lam(x) * v

    def _jvp_G(self, x, y, v, idx):
        return self._jvp(x, y, v)

    def sigma1_prime(self) -> float:
        """sigma1' = E_i ||a_i||^2 >= sup_w V[grad G_i(w)] (SID Remark 4.2, eq. 27, with Lip(psi) = 1)."""
        return float((self.Xb[0] ** 2).sum(-1).mean())


class CoupledQuadratic(an.FAMILIES["quadratic"]):
    """A finite sum around the ``quadratic`` instance whose per-sample curvature and x-coupling come from the same
    sample (as when a hyperparameter weighs or shifts the training points): with D_i = a_i a_i' - I,
      G_i(x, y) = g(x, y) + t/2 (y - C x)' D_i (y - C x),  (1/n) sum_i a_i a_i' = I exactly,
    so the mean is g exactly (y*, Phi, grad Phi are the quadratic instance's), grad_yy G_i = A + t D_i and
    grad_x grad_y G_i = -B' - t C' D_i: the sampled Jacobian and Hessian of one sample are correlated
    (E[(J_i - J)(H_i - H)] = -t^2 C' E[D_i^2], a fourth moment of the a_i). a_i = sqrt(n) rows of a Haar matrix
    with orthonormal columns (n x dim_y); C = ``c_scale`` N(0, 1/dim_y) entries. Every G_i is (mu - t)-strongly
    convex (D_i >= -I). All R instances are copies of instance 0. Not registered as a family; ``constants`` are
    the mean problem's (q of SID's map is that of A)."""

    stochastic = True

    def __init__(self, *, n_g=32, noise=0.2, c_scale=3.0, **kw):
        self.n_g, self.n_f, self.noise, self.c_scale = int(n_g), 1, float(noise), float(c_scale)
        super().__init__(**kw)

    def _build(self):
        one = an.FAMILIES["quadratic"](dim_x=self.dim_x, dim_y=self.dim_y, kappa=self.kappa, seed=self.seed, L=self.L,
                                       coupling=self.coupling, w=self.w, lam=self.lam, nonconvex=self.nc, batch=1)
        self.spectrum = one.spectrum
        for name in ("A", "A_inv", "B", "c", "x_opt", "e"):
            setattr(self, name, self._t(getattr(one, name).expand(self.R, *getattr(one, name).shape[1:])))
        self._AB = self._stack_lower(self.A, self.B)
        gen = torch.Generator().manual_seed(1_000_003 * self.seed + 29)
        q, r = torch.linalg.qr(torch.randn(self.n_g, self.dim_y, generator=gen, dtype=torch.float64))
        self.a = self._t(math.sqrt(self.n_g) * q * torch.sign(torch.diagonal(r)))
        self.C = self._t(self.c_scale * torch.randn(self.dim_y, self.dim_x, generator=gen, dtype=torch.float64)
                         / math.sqrt(self.dim_y))

    def sample(self, which, size, streams, replace=True):
        """Indices (R, size) of samples of G, uniform with replacement, from ``analytic.rng.Streams``."""
        if which != "g" or not replace:
            raise ValueError("CoupledQuadratic samples G with replacement only (SID uses f in full)")
        if not isinstance(streams, Streams):
            raise TypeError(f"streams must be an analytic.rng.Streams, got {type(streams).__name__}")
        return streams.integers(self.n_g, int(size)).to(self.device)

    def _D(self, u, idx):
        """(1/S) sum_i D_i u over the batch idx (R, S): D_B u, (R, d)."""
        X = self.a[idx]  # (R, S, d)
        return torch.bmm(X.transpose(1, 2), torch.bmm(X, u.unsqueeze(-1))).squeeze(-1) / X.shape[1] - u

    def _u(self, x, y):
        return y - self._mv(self.C, x)

    def _G(self, x, y, idx):
        u = self._u(x, y)
        return self._g(x, y) + 0.5 * self.noise * (u * self._D(u, idx)).sum(-1)

    def _grad_y_G(self, x, y, idx):
        return self._grad_y_g(x, y) + self.noise * self._D(self._u(x, y), idx)

    def _grad_x_G(self, x, y, idx):
        return self._grad_x_g(x, y) - self.noise * self._mtv(self.C, self._D(self._u(x, y), idx))

    def _hvp_G(self, x, y, v, idx):
        return self._hvp(x, y, v) + self.noise * self._D(v, idx)

    def _jvp_G(self, x, y, v, idx):
        return self._jvp(x, y, v) - self.noise * self._mtv(self.C, self._D(v, idx))


# ====================================================================== exact moments on a quadratic finite sum
@dataclass(frozen=True)
class AffineMaps:
    """The pieces of SID on a finite sum whose G_i are quadratic in y, at one x (float64 numpy, instance 0):
    grad_y G_i(x, w) = H_i w - b_i, grad_x grad_y G_i v = J_i v (J_i: dim_x x dim_y), grad_y f(x, w) = F1 w + f0,
    grad_x f(x, w) = Gx w + gx0 (f used in full, as SID does); their means H, b, J; the truth grad f(x) and
    w* = w(lambda)."""

    Hs: np.ndarray
    bs: np.ndarray
    Js: np.ndarray
    H: np.ndarray
    b: np.ndarray
    J: np.ndarray
    F1: np.ndarray
    f0: np.ndarray
    Gx: np.ndarray
    gx0: np.ndarray
    grad: np.ndarray
    w_star: np.ndarray

    @property
    def n(self) -> int:
        return self.Hs.shape[0]


def affine_maps(problem, x: torch.Tensor) -> AffineMaps:
    """:class:`AffineMaps` of a finite-sum ``problem`` (quadratic G_i in y, quadratic f in y) at x (1, dim_x),
    read from the problem's own per-sample closed forms at w = 0 and the unit vectors (exact for affine maps up to
    float64 round-off). The truth (grad f, w*) is the problem's closed form."""
    dy, n = problem.dim_y, problem.n_g
    z = torch.zeros(1, dy, dtype=torch.float64)
    eye = torch.eye(dy, dtype=torch.float64)

    def cols(fn):
        return torch.stack([fn(eye[j:j + 1])[0] for j in range(dy)], 1)

    Hs, bs, Js = [], [], []
    for i in range(n):
        idx = torch.full((1, 1), i, dtype=torch.int64)
        bs.append(-problem._grad_y_G(x, z, idx)[0])
        Hs.append(cols(lambda u, i=idx: problem._hvp_G(x, z, u, i)))
        Js.append(cols(lambda u, i=idx: problem._jvp_G(x, z, u, i)))
    f0, gx0 = problem._grad_y_f(x, z)[0], problem._grad_x_f(x, z)[0]
    out = {"Hs": torch.stack(Hs), "bs": torch.stack(bs), "Js": torch.stack(Js),
           "H": cols(lambda u: problem._hvp(x, z, u)), "b": -problem._grad_y_g(x, z)[0],
           "J": cols(lambda u: problem._jvp(x, z, u)), "F1": cols(lambda u: problem._grad_y_f(x, u)) - f0[:, None],
           "f0": f0, "Gx": cols(lambda u: problem._grad_x_f(x, u)) - gx0[:, None], "gx0": gx0,
           "grad": problem._hypergradient(x)[0], "w_star": problem._y_star(x)[0]}
    return AffineMaps(**{k: v.detach().cpu().numpy().astype(np.float64) for k, v in out.items()})


def _batch_ops(maps: AffineMaps, S: int):
    """Per-sample covariance operators of a mini-batch mean of S samples drawn uniformly with replacement:
    K(M) = (1/S) E_i[(H_i - H) M (H_i - H)] as a (d^2, d^2) matrix on row-major vec(M), X(m) = (1/S) E_i[(H_i - H)
    m (b_i - b)'] and Cbb = (1/S) E_i[(b_i - b)(b_i - b)']."""
    dH, db = maps.Hs - maps.H, maps.bs - maps.b
    K = np.einsum("nij,nkl->ikjl", dH, dH).reshape(maps.H.size, maps.H.size) / (maps.n * S)
    X = np.einsum("nij,nk->nijk", dH, db).mean(0) / S  # X(m)[i, k] = sum_j X[i, j, k] m_j
    return K, X, np.einsum("ni,nj->ij", db, db) / (maps.n * S)


def fixed_point_moments(maps: AffineMaps, alpha: float, S: int, eta, ts, w0=None) -> dict[int, tuple]:
    """Exact mean and second moment of iteration (17) with T^(w, B) = w - alpha (H_B w - b_B) (SID eq. 28; SGD
    eq. 21 on the finite sum), B a mini-batch of S samples drawn uniformly with replacement, at the ``ts``.

    With c_t = eta_t alpha: w_{t+1} = (I - c H_B) w_t + c b_B, the batch independent of w_t, so
    m' = (I - c H) m + c b and
    M' = M - c (H M + M H) + c^2 (H M H + K(M)) + c [(m b' - c (H m b' + X(m))) + transpose] + c^2 (b b' + Cbb)
    (``_batch_ops``). Returns {t: (E w_t, E w_t w_t')} (float64)."""
    d = maps.H.shape[0]
    K, X, Cbb = _batch_ops(maps, S)
    H, b = maps.H, maps.b
    m = np.zeros(d) if w0 is None else np.asarray(w0, dtype=np.float64)
    M = np.outer(m, m)
    out, want = {}, set(int(t) for t in ts)
    for t in range(max(want) + 1):
        if t in want:
            out[t] = (m.copy(), M.copy())
        c = eta(t) * alpha
        cross = np.outer(m, b) - c * (np.outer(H @ m, b) + np.einsum("ijk,j->ik", X, m))
        M = (M - c * (H @ M + M @ H) + c * c * (H @ M @ H + (K @ M.reshape(-1)).reshape(d, d))
             + c * (cross + cross.T) + c * c * (np.outer(b, b) + Cbb))
        m = m + c * (b - H @ m)
    return out


def sid_moments(maps: AffineMaps, alpha: float, S: int, eta, ts, jv: str, ks=None, w0=None) -> list[dict]:
    """Exact moments of SID's estimate (eq. 8) after t steps of (28) and k = t steps of (29) (or k = ``ks[i]`` for
    ``ts[i]``), w_0 = 0 (or ``w0``), v_0 = 0, steps eta_j for both
    chains (SID eqs. 28, 29), independent mini-batches of S samples; d2 Phi^ exact (``jv = 'exact'``) or one fresh
    batch of S (``'sampled'``).

    Given w, (29) is v' = (I - c H_B) v + eta gf(w), gf(w) = F1 w + f0 (c = eta alpha), so E[v_k | w] = N_k gf(w)
    with N' = (I - c H) N + eta I, and Q = E[v v'] (over w_t and the v-batches) follows
    Q' = Q - c (H Q + Q H) + c^2 (H Q H + K(Q)) + eta [(I - c H) N G2 + G2 N'(I - c H)] + eta^2 G2,
    G2 = E[gf(w_t) gf(w_t)'] from the w-chain's moments (:func:`fixed_point_moments`). The estimate is
    est = Gx w + gx0 - alpha J_z v with J_z the exact J or a batch mean (E[J_z] = J, D = E (J_z - J)'(J_z - J)).
    Returns one dict per t of ``ts`` (in order): ``mean`` E[est] (list), ``bias`` ||E est - grad f||, ``vm`` =
    V[E[est | w_t]] (Thm 3.3's left side), ``cond`` = E[V[est | w_t]] (Thm 3.2's), ``mse`` (Thm 3.4's), ``rho`` =
    E||w_t - w*||^2 and
    ``sigma`` = E||v_k - v(w_t)||^2 (v(w) = (alpha H)^-1 gf(w), SID eq. 5) (Assumption C's rates, averaged
    over w_t)."""
    if jv not in ("exact", "sampled"):
        raise ValueError(f"jv must be 'exact' or 'sampled', got {jv!r}")
    ts = [int(t) for t in ts]
    ks = ts if ks is None else [int(k) for k in ks]
    d = maps.H.shape[0]
    eye = np.eye(d)
    H, J, F1, f0, Gx, gx0, grad, ws = maps.H, maps.J, maps.F1, maps.f0, maps.Gx, maps.gx0, maps.grad, maps.w_star
    K, _, _ = _batch_ops(maps, S)
    dJ = maps.Js - J
    D = np.einsum("nai,naj->ij", dJ, dJ) / (maps.n * S) if jv == "sampled" else np.zeros((d, d))
    wm = fixed_point_moments(maps, alpha, S, eta, ts, w0)
    g1 = np.stack([F1 @ wm[t][0] + f0 for t in ts])
    G2 = np.stack([F1 @ wm[t][1] @ F1.T + np.outer(F1 @ wm[t][0], f0) + np.outer(f0, F1 @ wm[t][0])
                   + np.outer(f0, f0) for t in ts])
    Q, N = np.zeros_like(G2), np.zeros((d, d))
    at: dict[int, tuple] = {}
    for j in range(max(ks) + 1):
        for i, k in enumerate(ks):
            if k == j:
                at[i] = (N.copy(), Q[i].copy())
        e = eta(j)
        c = e * alpha
        IcH = eye - c * H
        NG = N @ G2  # (T, d, d): E[E[v | w] gf'] per checkpoint
        cross = IcH @ NG
        Q = (Q - c * (H @ Q + Q @ H) + c * c * (H @ Q @ H + (Q.reshape(len(ts), -1) @ K.T).reshape(Q.shape))
             + e * (cross + cross.transpose(0, 2, 1)) + e * e * G2)
        N = IcH @ N + e * eye
    Vm = np.linalg.inv(alpha * H)
    out = []
    for i, t in enumerate(ts):
        m, M = wm[t]
        N, Qt = at[i]
        cov_w = M - np.outer(m, m)
        A = Gx - alpha * J @ N @ F1  # E[est | w] = A w + a
        a = gx0 - alpha * J @ N @ f0
        mean = A @ m + a
        bias = mean - grad
        vm = float(np.trace(A @ cov_w @ A.T))
        u0 = gx0 - grad
        Euu = float(np.trace(Gx @ M @ Gx.T) + 2 * u0 @ Gx @ m + u0 @ u0)
        Evw = N @ (F1 @ M + np.outer(f0, m))  # E[v w'] = N E[gf w']
        Euv = float(np.trace(J @ (Evw @ Gx.T + np.outer(N @ g1[i], u0))))  # E[u' J v], u = Gx w + gx0 - grad
        mse = Euu - 2 * alpha * Euv + alpha**2 * float(np.trace(J.T @ J @ Qt)) + alpha**2 * float(np.trace(D @ Qt))
        sigma = float(np.trace(Qt) - 2 * np.trace(Vm @ G2[i] @ N.T) + np.trace(Vm @ G2[i] @ Vm.T))
        rho = float(np.trace(M) - 2 * m @ ws + ws @ ws)
        out.append({"mean": mean.tolist(), "bias": float(np.linalg.norm(bias)), "vm": vm,
                  "cond": mse - float(bias @ bias) - vm, "mse": mse, "rho": rho, "sigma": sigma})
    return out


def map_variance(problem, x, w, alpha):
    """V[Phi^(w, x, zeta)] for ONE uniform sample: alpha^2 (1/n) sum_i ||grad_y G_i(x, w) - grad_y g(x, w)||^2,
    exact (finite sum), (R,)."""
    mean = problem._grad_y_g(x, w)
    tot = torch.zeros(w.shape[0], dtype=w.dtype, device=w.device)
    for i in range(problem.n_g):
        idx = torch.full((w.shape[0], 1), i, dtype=torch.int64, device=w.device)
        tot = tot + _sq(problem._grad_y_G(x, w, idx) - mean)
    return alpha**2 * tot / problem.n_g


# ====================================================================== the Monte Carlo instances
#: the stochastic-quadratic instance: its mean is a ``quadratic`` instance (q, L_Phi, mu1, mu2 exact, nu1 = nu2 =
#: 0), per-sample Hessians and Jacobians vary (L_Phi~ > q, m2 > 0 with a sampled d2 Phi^), y*, v(w), grad f exact
SQ = {"dim_x": 2, "dim_y": 4, "kappa": 4.0, "n_g": 32, "n_f": 32, "noise": 0.2, "seed": 0}
SQ_S = 4  # mini-batch of the maps
#: the coupled instance (:class:`CoupledQuadratic`) around the same mean quadratic instance: one sample's Jacobian
#: and Hessian are correlated, which a SID reusing a batch for the final product d2 Phi^' v turns into a bias
COUPLED = {"dim_x": 2, "dim_y": 4, "kappa": 4.0, "seed": 0, "n_g": 32, "noise": 0.2, "c_scale": 3.0}


@dataclass(frozen=True)
class MCSetup:
    """SID's constants of a Monte Carlo instance at x = 0.5 (all coordinates), alpha = 2/(L + mu): the deterministic
    ones (q, c1, L_Phi, nu2, L_E) from ``sid_constants`` of the mean ``quadratic`` instance (exact there); L_Phi~ =
    max_i ||I - alpha grad_yy G_i|| (exact: the norm of a batch mean is at most the largest per-sample one); m2 =
    alpha^2 E||J_i - J||_F^2 (per sample; Frobenius >= spectral: a bound); sigma2 of Theorems 4.3 and 5.1; beta =
    2/(1 - q^2) (SID Sec. 4: the minimiser of c's second term), gamma = beta (1 + sigma2) (Theorem 5.1's smallest);
    var_fp = V[Phi^(w*)] for a batch of S (exact)."""

    alpha: float
    q: float
    c1: float
    L_Phi: float
    nu2: float
    L_E: float
    m2_sample: float
    L_Phi_tilde: float
    sigma2: float
    beta: float
    gamma: float
    var_fp: float
    w_norm_sq: float


def mc_problem(instance: str, R: int, env=None, **over):
    """The replicated Monte Carlo instance ``'sq'`` (stochastic-quadratic) or ``'coupled'`` with R copies."""
    dtype = env.torch_dtype() if env is not None else torch.float64
    device = env.device if env is not None else "cpu"
    if instance == "sq":
        return replicated(an.FAMILIES["stochastic-quadratic"])(**{**SQ, **over}, batch=R, dtype=dtype, device=device)
    if instance == "coupled":
        return CoupledQuadratic(**{**COUPLED, **over}, batch=R, dtype=dtype, device=device)
    raise ValueError(f"instance must be 'sq' or 'coupled', got {instance!r}")


def sq_problem(R: int, env=None, **over):
    return mc_problem("sq", R, env, **over)


def sq_x(problem) -> torch.Tensor:
    return torch.full((problem.R, problem.dim_x), 0.5, dtype=problem.dtype, device=problem.device)


@cache
def mc_setup(instance: str, S: int) -> tuple[MCSetup, AffineMaps]:
    """:class:`MCSetup` and the exact :class:`AffineMaps` of a Monte Carlo instance (float64, CPU, once)."""
    prob = mc_problem(instance, 1)
    x = sq_x(prob)
    alpha = sid_alpha(prob)  # 2/(L + mu), SID Sec. 6 footnote 3
    mean = an.make_problem("quadratic", dim_x=prob.dim_x, dim_y=prob.dim_y, kappa=prob.kappa, seed=prob.seed,
                           batch=1)
    det = sid_constants(mean, x, alpha)
    maps = affine_maps(prob, x)
    eye = np.eye(prob.dim_y)
    L_tilde = max(float(np.linalg.norm(eye - alpha * H, 2)) for H in maps.Hs)
    m2 = alpha**2 * float(((maps.Js - maps.J) ** 2).sum((1, 2)).mean())
    q = det.q
    s2 = B.thm5_1_sigma2(L_tilde, q)
    beta = 2.0 / (1.0 - q * q)
    var_fp = float(map_variance(prob, x, prob.y_star(x), alpha)[0]) / S  # batch of S, with replacement
    setup = MCSetup(alpha=alpha, q=q, c1=det.c1, L_Phi=det.L_Phi, nu2=det.nu2, L_E=det.L_E, m2_sample=m2,
                    L_Phi_tilde=L_tilde, sigma2=s2, beta=beta, gamma=beta * (1.0 + s2), var_fp=var_fp,
                    w_norm_sq=float(_sq(prob.y_star(x)[0])))
    return setup, maps


def sq_setup(S: int = SQ_S) -> tuple[MCSetup, AffineMaps]:
    return mc_setup("sq", S)


# ====================================================================== running SID through the cast
def run_sid(env, problem, x, gen, *, y0=None, **params):
    """One outer step of whoever plays ``sid`` with beta = 0 (estimation only): returns (estimate (R, dim_x),
    w_t (R, dim_y), v_k (R, dim_y) or None when the player's state holds no v)."""
    trace = cast_of(env).run("sid", problem, 1, run_args={"x0": x, "y0": y0, "generator": gen,
                                                          "keep_iterates": True}, beta=0.0, **params)
    if getattr(trace.state_last, "estimate", None) is None:
        raise ValueError(f"the player of 'sid' ({trace.algorithm}) keeps no estimate in its state (state.estimate): "
                         "SID's claims measure the hypergradient estimate of eq. (8)")
    v = getattr(trace.state_last, "v", None)
    v = v.clone() if isinstance(v, torch.Tensor) and v.shape == trace.y_last.shape else None
    return trace.estimates[-1].clone(), trace.y_last, v


# ====================================================================== mc/sid-estimator
#: R Monte Carlo runs and the grids. 'sq': t = k, Theorem 5.1's decreasing steps from w_0 = 0; 'coupled': w_t = w*
#: (t = 0), k = 2 steps with eta = 1 (Stoch const) and single-sample batches, where the correlation of a sample's
#: Jacobian and Hessian is largest and the tails are light (longer chains of products of these expansive per-sample
#: maps, k >= 8, have heavy-tailed second moments that the Monte Carlo cannot resolve). Half-widths of the
#: comparisons with the exact moments (family-wise 99.99%, quick): mean 0.1-0.6% ('sq') and 3% ('coupled') of
#: ||E grad^f||, E[V | w_t] 25-40%, V[E | w_t] (exact d2 Phi^) under 30%, MSE and rates under 8% of their exact
#: values: a 10% mean error and a factor-2 variance error are seen
MC_SIZES = {"quick": {"sq": {"R": 256, "ts": (16, 64, 256, 1024)}, "coupled": {"R": 4096, "ks": (2,)}},
            "full": {"sq": {"R": 1024, "ts": (16, 64, 256, 1024, 4096)}, "coupled": {"R": 16384, "ks": (2,)}}}
COUPLED_S = 1
#: the parameters the audited SID arm sets (a plug-in must declare them all)
SID_PARAMS = ("alpha", "S", "t", "k", "policy", "eta", "eta_beta", "eta_gamma", "jv", "beta", "warm_w")


@dataclass(frozen=True)
class SidMcKey(Key):
    instance: str  # 'sq' | 'coupled'
    jv: str
    policy: str  # 'decreasing' (Theorem 5.1's steps) | 'constant' (eta = 1)
    start: str  # 'zero' (w_0 = 0, SID's) | 'solution' (w_0 = w*, t = 0)
    R: int
    S: int
    reps: int
    ts: list = field(default_factory=list)
    ks: list = field(default_factory=list)


@dataclass(frozen=True)
class SidMcRow(Row):
    """All R runs at one checkpoint (t, k) (lists over runs): squared errors of w_t, ||grad_1 E(w_t)||^2, and per
    replicate (independent v-chains and estimates at the same w_t) the squared errors of v_k (``dv2``: reps x R;
    NaN when the player's state holds no v) and the estimates' errors est - grad f (``e``: reps x R x dim_x); the
    instance's SID constants and the exact values (``ex_*``, :func:`sid_moments`)."""

    instance: str
    jv: str
    policy: str
    t: int
    k: int
    R: int
    dw2: list
    gradE2: list
    dv2: list
    e: list
    grad: list
    q: float
    alpha: float
    c1: float
    L_Phi: float
    nu2: float
    L_E: float
    m2: float
    L_Phi_tilde: float
    beta: float
    gamma: float
    var_fp: float
    w_norm_sq: float
    S: int
    ex_mean: list
    ex_bias: float
    ex_cond: float
    ex_vm: float
    ex_mse: float
    ex_rho: float
    ex_sigma: float


def measure_sid_mc(key: SidMcKey, env, seed: int) -> list[SidMcRow]:
    """SID at the checkpoints (t, k) of ``key`` for R runs of one instance (module docstring)."""
    with one_thread():
        return _sid_mc(key, env, seed)


def _sid_mc(key, env, seed):
    R, S = key.R, key.S
    su, maps = mc_setup(key.instance, S)
    prob = mc_problem(key.instance, R, env)
    x = sq_x(prob)
    eta = step_size_policy(key.policy, 1.0, su.beta, su.gamma)
    w_star = prob.y_star(x)
    start = w_star if key.start == "solution" else None
    exact = sid_moments(maps, su.alpha, S, eta, key.ts, key.jv, ks=key.ks,
                        w0=maps.w_star if key.start == "solution" else None)
    truth = prob.hypergradient(x)
    grad = [float(g) for g in truth[0]]
    common = {"alpha": su.alpha, "S": S, "policy": key.policy, "eta": 1.0, "eta_beta": su.beta,
              "eta_gamma": su.gamma, "jv": key.jv}
    const = {"q": su.q, "alpha": su.alpha, "c1": su.c1, "L_Phi": su.L_Phi, "nu2": su.nu2, "L_E": su.L_E,
             "m2": su.m2_sample / S if key.jv == "sampled" else 0.0, "L_Phi_tilde": su.L_Phi_tilde,
             "beta": su.beta, "gamma": su.gamma, "var_fp": su.var_fp, "w_norm_sq": su.w_norm_sq, "S": S}
    rows = []
    for i, (t, k) in enumerate(zip(key.ts, key.ks, strict=True)):
        p = {**common, "k": k}
        est, w, v = run_sid(env, prob, x, streams(seed, key.reps * i, R), y0=start, t=t, warm_w=False, **p)
        ests, vs = [est], [v]
        for j in range(1, key.reps):
            # an independent v-chain and estimate at the same w_t: SID restarted from w_t with fresh streams
            est, _, v = run_sid(env, prob, x, streams(seed, key.reps * i + j, R), y0=w, t=0, warm_w=True, **p)
            ests.append(est)
            vs.append(v)
        b = prob.grad_y_f(x, w)
        v_true = torch.linalg.solve(su.alpha * prob.hessian_yy(x, w), b.unsqueeze(-1)).squeeze(-1)
        nan = torch.full((R,), math.nan, dtype=torch.float64)
        dv2 = [(_sq(v - v_true) if v is not None else nan).detach().cpu().double().tolist() for v in vs]
        cols = {"dw2": _sq(w - w_star).detach().cpu().double().tolist(),
                "gradE2": _sq(b).detach().cpu().double().tolist(), "dv2": dv2,
                "e": [(e - truth).detach().cpu().double().tolist() for e in ests]}
        ex = exact[i]
        rows.append(SidMcRow(instance=key.instance, jv=key.jv, policy=key.policy, t=int(t), k=int(k), R=R, **cols,
                             grad=grad, **const, ex_mean=ex["mean"], ex_bias=ex["bias"],
                             ex_cond=ex["cond"], ex_vm=ex["vm"], ex_mse=ex["mse"], ex_rho=ex["rho"],
                             ex_sigma=ex["sigma"]))
    return rows


def _mc_grid(profile):
    sq, co = MC_SIZES[profile]["sq"], MC_SIZES[profile]["coupled"]
    keys = [SidMcKey(instance="sq", jv=jv, policy="decreasing", start="zero", R=sq["R"], S=SQ_S, reps=3,
                     ts=list(sq["ts"]), ks=list(sq["ts"])) for jv in ("exact", "sampled")]
    keys.append(SidMcKey(instance="coupled", jv="sampled", policy="constant", start="solution", R=co["R"],
                         S=COUPLED_S, reps=2, ts=[0] * len(co["ks"]), ks=list(co["ks"])))
    return tuple(keys)


register_experiment(Experiment(
    name=MC, measure=measure_sid_mc, grid=_mc_grid, key_type=SidMcKey, row_type=SidMcRow,
    arms=(Arm("sid", params=SID_PARAMS, family="stochastic-quadratic", label="SID (audited)"),),
    summary="SID (eqs. 28, 29, 8) on one stochastic-quadratic instance (dim_x 2, dim_y 4, kappa 4, n_g 32, noise "
            "0.2), alpha = 2/(L+mu), mini-batches of 4, steps beta/(gamma + t) of Theorem 5.1 (beta = 2/(1-q^2), "
            "gamma = beta (1 + sigma_2)), t = k; d2 Phi^ exact (m2 = 0) and sampled (m2 > 0); and on a coupled "
            "finite sum around the same mean (a sample's Jacobian and Hessian correlated) at w_t = w*, k = 2, eta = 1, "
            "single-sample batches, sampled d2 Phi^; R runs (quick 256 and 4096, full 1024 and 16384); per w_t SID "
            "runs restarted at w_t give independent v-chains and estimates (3 replicates, 2 on the coupled instance); "
            "exact moments by the second-moment recursion"))


# ====================================================================== mc/fixed-point-sgd
_LOG = {"dim_x": 1, "dim_y": 5, "kappa": 20.0, "n_train": 200, "seed": 0}
SGD_LAM = 0.1  # lam = exp(x) = 0.1 in the box [0.05, 0.25]: tau = 0.1 and L = 0.85 at this x
SGD_S = 4
SGD_SIZES = {"quick": {"R": 256, "T": 1024}, "full": {"R": 1024, "T": 8192}}


@dataclass(frozen=True)
class SgdKey(Key):
    instance: str  # 'logistic' | 'quadratic'
    rule: str  # alpha = '1/L' | '2/(L+tau)' (logistic); '2/(L+mu)' (quadratic)
    policy: str  # 'constant' | 'decreasing'
    R: int
    T: int
    S: int


@dataclass(frozen=True)
class SgdRow(Row):
    """||w_t - w*||^2 of the R runs at one t (a list), the constants of Assumption D / F and the exact MSE
    (quadratic; NaN for the logistic instance, where no closed form exists)."""

    instance: str
    rule: str
    policy: str
    t: int
    err: list
    alpha: float
    q: float
    tau: float
    L: float
    sigma1p: float
    sigma1: float
    sigma2: float
    beta: float
    gamma: float
    eta: float
    mse0: float
    ex_mse: float


class BatchPool:
    """Mini-batches of S samples drawn ahead from ``streams`` in chunks (the problem's ``MiniBatch`` objects, rows
    gathered once per chunk); every call of :meth:`next` returns a new batch, so successive calls of a map are
    independent (the contract of ``sid.fixed-point``'s T^)."""

    def __init__(self, problem, streams, S: int, chunk: int):
        self.problem, self.streams, self.S, self.chunk = problem, streams, S, chunk
        self._batches, self._pos = [], chunk

    def next(self):
        if self._pos >= self.chunk:
            idx = self.problem.sample("g", self.S * self.chunk, self.streams)
            self._batches = self.problem.minibatches("g", idx, [self.S] * self.chunk)
            self._pos = 0
        self._pos += 1
        return self._batches[self._pos - 1]


def _checkpoints(T: int) -> list[int]:
    return [2**j for j in range(int(math.log2(T)) + 1)]


def chain(fp, T_hat, w0, checkpoints, eta):
    """Iterates of eq. (17) at increasing ``checkpoints`` of one chain (each recorded w_t has the law of t steps),
    through the component ``fp`` (role ``sid.fixed-point``), each segment with the schedule shifted to its start."""
    out, w, done = {0: w0}, w0, 0
    for t in checkpoints:
        w = fp(T_hat, w, t - done, lambda s, o=done: eta(o + s))
        done = t
        out[t] = w
    return out


def measure_sgd(key: SgdKey, env, seed: int) -> list[SgdRow]:
    """Iteration (17) through ``sid.fixed-point`` from one start, R runs, E||w_t - w*||^2 at t = 2^j."""
    with one_thread():
        return (_sgd_logistic if key.instance == "logistic" else _sgd_quadratic)(key, env, seed)


def _sgd_logistic(key, env, seed):
    """SGD (21) on MiniBatchLogistic at lam = 0.1: T^(w, B) = w - alpha grad l^(w; B)."""
    R, T, S = key.R, key.T, key.S
    prob = MiniBatchLogistic(**_LOG, lam=[SGD_LAM], batch=R, dtype=env.torch_dtype(), device=env.device)
    c = prob.constants
    tau, L, s1p = c.mu, c.L, prob.sigma1_prime() / S
    alpha = 1.0 / L if key.rule == "1/L" else sid_alpha(prob)  # the two steps of Corollary 4.1
    q = sid_q(prob, alpha)
    beta = 2.0 / (1.0 - q * q)  # SID Sec. 4's choice (> 1/(1 - q^2), condition (23))
    gamma = beta  # >= beta (1 + sigma2), sigma2 = 0 (Remark 4.2)
    eta = step_size_policy(key.policy, 1.0, beta, gamma)  # constant: eta = 1 = 1/(1 + sigma2)
    x = prob.x_at()
    w_star = prob.y_star(x)
    w0 = torch.zeros_like(w_star)
    if key.policy == "constant":
        # start far away (fixed direction, the same for every run) so that a transient phase, governed by r1,
        # precedes the noise floor r2: ||w_0 - w*||^2 = 1000 r2 (alpha = 1/L's r2, the larger)
        u = torch.randn(prob.dim_y, generator=torch.Generator().manual_seed(12345), dtype=torch.float64)
        r2 = B.cor4_1_r2(L, tau, 1.0, s1p, "1/L")
        w0 = w_star + math.sqrt(1000 * r2) * (u / u.norm()).to(w_star)
    pool = BatchPool(prob, streams(seed, 0, R), S, chunk=256)
    fp = cast_of(env).component("sid.fixed-point")
    ws = chain(fp, lambda w, s: w - alpha * prob._grad_y_G(x, w, pool.next()), w0, _checkpoints(T), eta)
    const = {"instance": key.instance, "rule": key.rule, "policy": key.policy, "alpha": alpha, "q": q, "tau": tau,
             "L": L, "sigma1p": s1p, "sigma1": alpha**2 * s1p, "sigma2": 0.0, "beta": beta, "gamma": gamma,
             "eta": 1.0, "mse0": float(_sq(w0[0] - w_star[0])), "ex_mse": math.nan}
    return _sgd_rows(ws, w_star, const)


def _sgd_quadratic(key, env, seed):
    """Iteration (17) with T^(w, B) = w - alpha grad_y G(x, w; B) on the stochastic-quadratic instance from
    w_0 = 0: Assumption D with sigma1 = 2 V[T^(w*)], sigma2 = 2 (L_T^2 + q^2)/(1 - q)^2 (Theorem 4.3, L_T^ =
    L_Phi~); constant eta = 1/(1 + sigma2) (Theorem 4.1's largest), decreasing beta/(gamma + t) with
    beta = 2/(1 - q^2), gamma = beta (1 + sigma2)."""
    R, T, S = key.R, key.T, key.S
    su, maps = sq_setup(S)
    prob = sq_problem(R, env)
    x = sq_x(prob)
    s1, s2 = B.thm4_3_sigmas(su.var_fp, su.L_Phi_tilde, su.q)
    eta = step_size_policy(key.policy, 1.0 / (1.0 + s2), su.beta, su.gamma)
    w_star = prob.y_star(x)
    ts = _checkpoints(T)
    exact = fixed_point_moments(maps, su.alpha, S, eta, [0, *ts])
    ex = {t: float(np.trace(M) - 2 * m @ maps.w_star + maps.w_star @ maps.w_star) for t, (m, M) in exact.items()}
    pool = BatchPool(prob, streams(seed, 0, R), S, chunk=256)
    fp = cast_of(env).component("sid.fixed-point")
    ws = chain(fp, lambda w, s: w - su.alpha * prob._grad_y_G(x, w, pool.next()), torch.zeros_like(w_star), ts, eta)
    const = {"instance": key.instance, "rule": key.rule, "policy": key.policy, "alpha": su.alpha, "q": su.q,
             "tau": prob.constants.mu, "L": prob.constants.L, "sigma1p": math.nan, "sigma1": s1, "sigma2": s2,
             "beta": su.beta, "gamma": su.gamma, "eta": 1.0 / (1.0 + s2), "mse0": su.w_norm_sq}
    return _sgd_rows(ws, w_star, const, ex)


def _sgd_rows(ws, w_star, const, exact=None):
    rows = []
    for t, w in sorted(ws.items()):
        c = {**const, "ex_mse": exact[t]} if exact is not None else const
        rows.append(SgdRow(t=int(t), err=_sq(w - w_star).detach().cpu().double().tolist(), **c))
    return rows


def _sgd_grid(profile):
    sz = SGD_SIZES[profile]
    keys = [SgdKey(instance="logistic", rule=r, policy=p, S=SGD_S, **sz) for r in ("1/L", "2/(L+tau)")
            for p in ("constant", "decreasing")]
    keys += [SgdKey(instance="quadratic", rule="2/(L+mu)", policy=p, S=SQ_S, **sz) for p in ("constant", "decreasing")]
    return tuple(keys)


register_experiment(Experiment(
    name=SGD, measure=measure_sgd, grid=_sgd_grid, key_type=SgdKey, row_type=SgdRow,
    arms=(Arm("sid.fixed-point", label="stochastic fixed-point iteration (17) (audited)"),),
    summary="iteration (17) through the audited sid.fixed-point: SGD (eq. 21, batch 4) on l2-regularised logistic "
            "regression (logistic-lower, one parameter, dim_y 5, n 200) at lam = 0.1 (tau = 0.1, L = 0.85 exact, "
            "sigma2' = 0, sigma1' = E||a_i||^2: Remark 4.2), alpha = 1/L and 2/(L + tau), eta = 1 or beta/(gamma + t) "
            "(beta = 2/(1 - q^2), gamma = beta); and the lower-level map of the stochastic-quadratic instance "
            "(Theorem 4.3's sigma1, sigma2; eta = 1/(1 + sigma2) or Theorem 5.1's decreasing steps), whose exact "
            "MSE is known; R runs (quick 256, full 1024), t = 1, 2, 4, ... T (quick 1024, full 8192)"))


# ====================================================================== exact/fixed-point-map-variance
MAP_RADII = tuple(float(r) for r in np.geomspace(1e-2, 1e2, 9))


@dataclass(frozen=True)
class MapVarKey(Key):
    instance: int
    dirs: int


@dataclass(frozen=True)
class MapVarRow(Row):
    instance: int
    radius: float
    var: float
    res2: float
    var_fp: float
    L_That: float
    q: float
    bound: float


def measure_map_variance(key: MapVarKey, env, seed: int) -> list[MapVarRow]:
    """V[T^(w, zeta)] (one sample, exact finite sum) at w = w* + r u (u random unit, ``key.dirs`` per r) on the
    stochastic-quadratic instance ``key.instance``, with the ingredients of Theorem 4.3's bound."""
    with one_thread():
        n_w = key.dirs * len(MAP_RADII)
        prob = sq_problem(n_w, env, seed=key.instance)
        x = sq_x(prob)
        alpha = sid_alpha(prob)
        sc = sid_constants(prob, x, alpha)  # L_T^ = L_Phi~ (exact per-sample sup), q exact
        w_star = prob.y_star(x)
        u = torch.randn(n_w, prob.dim_y, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        u = u.to(w_star)
        r = torch.tensor(MAP_RADII, dtype=w_star.dtype, device=w_star.device).repeat_interleave(key.dirs)
        w = w_star + r.unsqueeze(-1) * u / u.norm(dim=-1, keepdim=True)
        var = map_variance(prob, x, w, alpha)
        var_fp = float(map_variance(prob, x, w_star, alpha)[0])
        res2 = alpha**2 * _sq(prob._grad_y_g(x, w))  # ||T(w) - w||^2
        return [MapVarRow(instance=key.instance, radius=float(ri), var=float(vi), res2=float(si), var_fp=var_fp,
                          L_That=sc.L_Phi_tilde, q=sc.q, bound=B.thm4_3(var_fp, sc.L_Phi_tilde, sc.q, float(si)))
                for ri, vi, si in zip(r.cpu().numpy(), var.cpu().numpy(), res2.cpu().numpy(), strict=True)]


register_experiment(Experiment(
    name=MAP_VARIANCE, measure=measure_map_variance,
    grid=lambda profile: tuple(MapVarKey(instance=i, dirs=8) for i in range(2 if profile == "quick" else 8)),
    key_type=MapVarKey, row_type=MapVarRow, arms=(),
    summary="stochastic-quadratic (dim_x 2, dim_y 4, kappa 4, n_g 32, noise 0.2), T^(w, zeta_i) = w - alpha "
            "grad_y G(x, w; zeta_i), alpha = 2/(L+mu): the variance over the n_g samples computed exactly (finite "
            "sum) at w = w* + r u, 9 radii x 8 random directions per instance"))


# ====================================================================== curves/sid-variants
FIG1_SIZES = {"quick": {"R": 64, "n_train": 400, "S": 8, "t_batch": (1, 2, 4, 8)},
              "full": {"R": 128, "n_train": 1000, "S": 10, "t_batch": (1, 2, 4, 8, 16, 30)}}
FIG1_DIM_Y = 5
FIG1_LAM = 0.06  # one parameter: a small regularisation, an ill-conditioned lower level


@dataclass(frozen=True)
class Fig1Key(Key):
    n_reg: int
    R: int
    n_train: int
    S: int
    t_batch: list = field(default_factory=list)


@dataclass(frozen=True)
class Fig1Row(Row):
    """||grad^f - grad f||^2 of the R runs of one variant at one number of epochs (a list)."""

    variant: str
    n_reg: int
    epochs: int
    t: int
    err: list


def fig1_lam(n_reg: int, problem_box) -> list[float]:
    """lam of Fig. 1 (one parameter: 0.06) or Fig. 2 (lam_i = exp(eps_i), eps_i uniform; here uniform in log over
    the family's box, fixed draw)."""
    if n_reg == 1:
        return [FIG1_LAM]
    u = torch.rand(n_reg, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    lo, hi = problem_box
    return torch.exp(lo + (hi - lo) * u).tolist()


def measure_fig1(key: Fig1Key, env, seed: int) -> list[Fig1Row]:
    """SID's three variants (Sec. 6), run by whoever plays ``sid``, at equal epochs on MiniBatchLogistic with
    ``key.n_reg`` parameters: squared hypergradient error per run. Batch: t = k = t_B full-map steps; stochastic:
    t = k = t_B n/S mini-batch steps (one epoch = n/S steps), eta_t = 1 or beta/(gamma + t)."""
    with one_thread():
        R, n, S, n_reg = key.R, key.n_train, key.S, key.n_reg
        box = LogisticLower(dim_x=n_reg, dim_y=FIG1_DIM_Y, kappa=20.0, n_train=n, seed=0)
        prob = MiniBatchLogistic(dim_x=n_reg, dim_y=FIG1_DIM_Y, kappa=20.0, n_train=n, seed=0, batch=R,
                                 lam=fig1_lam(n_reg, (box.x_min, box.x_max)), dtype=env.torch_dtype(),
                                 device=env.device)
        alpha = sid_alpha(prob)  # SID Sec. 6, footnote 3: the optimal contraction at this lam
        q = sid_q(prob, alpha)
        beta = 2.0 / (1 - q * q)
        x = prob.x_at()
        truth = prob.hypergradient(x)
        rows, block = [], 0
        variants = (("Batch", None, "constant", 1), ("Stoch const", S, "constant", n // S),
                    ("Stoch dec", S, "decreasing", n // S))
        for variant, batch, policy, per_epoch in variants:
            for tb in key.t_batch:
                t = tb * per_epoch
                est, _, _ = run_sid(env, prob, x, streams(seed, block, R), alpha=alpha, S=batch, t=t, k=t,
                                    policy=policy, eta=1.0, eta_beta=beta, eta_gamma=beta, jv="exact")
                block += 1
                rows.append(Fig1Row(variant=variant, n_reg=n_reg, epochs=2 * tb, t=t,
                                    err=_sq(est - truth).detach().cpu().double().tolist()))
        return rows


def _fig1_grid(profile):
    sz = FIG1_SIZES[profile]
    return tuple(Fig1Key(n_reg=m, R=sz["R"], n_train=sz["n_train"], S=sz["S"], t_batch=list(sz["t_batch"]))
                 for m in (1, FIG1_DIM_Y))


register_experiment(Experiment(
    name=FIG1, measure=measure_fig1, grid=_fig1_grid, key_type=Fig1Key, row_type=Fig1Row,
    arms=(Arm("sid", params=("alpha", "S", "t", "k", "policy", "eta", "eta_beta", "eta_gamma", "jv", "beta"),
              family="stochastic-quadratic", label="SID variants (audited)"),),
    summary="logistic-lower (dim_y 5, kappa 20; n 400, batch 8 quick; n 1000, batch 10 full: n/S = 50 or 100 "
            "steps per epoch) at lam = 0.06 (one parameter) or log-uniform in the box (5 parameters), as a finite "
            "sum; SID (audited) Batch (t = k = t_B full steps, eta 1), Stoch const (t = k = t_B n/S, eta 1), "
            "Stoch dec (beta = 2/(1-q^2), gamma = beta), alpha = 2/(L+tau) at lam, d2 Phi exact (separable, "
            "m2 = 0); R runs; epochs = 2 t_B as in the paper"))
