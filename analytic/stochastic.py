"""Stochastic families ``stochastic-quadratic`` and ``stochastic-logistic``: finite sums with exact means,
exact variances and exact per-sample constants.

Both are finite sums f = (1/n_f) sum_j F(.; xi_j), g = (1/n_g) sum_i G(.; zeta_i) whose MEAN problem is a
``quadratic`` instance (same seed, same A, B, e, c, x_c; see quadratic.py), so y*, Phi, grad Phi are the
quadratic family's closed forms. Construction (ours), with t = ``noise`` in [0, 1]:

Lower level (both families).  Mean Hessian A = U diag(a) U', a = geomspace(mu, L) (a_1 = mu, a_dy = L);
s_k^2 = a_k - mu (so s_1 = 0).  Draw P = [P_1 | P_2] (n_g x (dy + m), orthonormal columns, Haar),
m = min(dx, n_g - dy), and set
  X = sqrt(n_g) P_1 diag(s) U'   (rows x_i),   so X'X/n_g = S := U diag(s^2) U' EXACTLY, at every n_g;
  Q = sqrt(n_g) P_2 diag(gam) V_m'  (rows q_i), so Q'Q/n_g = Gam := V_m diag(gam^2) V_m' and X'Q = 0;
  gam_k^2 = L - b_k^2/L on the coupled pairs (b_k as in quadratic.py), L on uncoupled x directions;
  eps_i ~ N(0, L^2/dy I), centred (sum_i eps_i = 0).
  G(x, y; zeta_i) = 1/2 y'H0 y - t/2 x'Gam x - y'(B x + e + t eps_i) + t/2 (x_i'y - q_i'x)^2,
  H0 = A - t S.
The mean over i is g = 1/2 y'Ay - y'(Bx + e) exactly (the x'Gam x and cross terms cancel since
Q'Q/n = Gam and X'Q = 0). Per sample: grad_yy G_i = H0 + t x_i x_i' (rank-one factor x_i),
grad_x grad_y G_i = -B' - t q_i x_i' (rank-one), joint Hessian J_i = Jbar + t w_i w_i' with
w_i = (-q_i; x_i) and Jbar = [[-t Gam, -B'], [-B, H0]]. Memory O(n d): only x_i, q_i, eps_i are stored
per sample, plus the d x d matrices H0, Gam, A, B once. t = 0 gives the deterministic problem
(every sample equals g); t = 1 gives G_i = mu/2||y||^2 + 1/2 (x_i'y - q_i'x)^2 + (sample-free terms):
an l2-regularised least-squares sample with an x-dependent target q_i'x. "Exactly" means in exact
arithmetic; in float64 the identities hold to round-off (tests/analytic/test_stochastic.py).

Upper level.
  stochastic-quadratic (t_f = ``noise_f``, default t): F(x, y; xi_j) = w/2 [(1 - t_f)||y - c||^2
    + t_f (a_j'(y - c))^2] + h(x) + t_f xi_j'(x - x_c), a_j rows of sqrt(n_f) P_f (P_f'P_f = I, so
    (1/n_f) sum a_j a_j' = I exactly), xi_j ~ N(0, w^2/dx I) centred. Mean: f of quadratic.py.
  stochastic-logistic: F(x, y; xi_j) = log(1 + exp(-b_j a_j'y)) + h(x), a_j rows of 2 sqrt(w n_f) P_f
    (so (1/n_f) sum a_j a_j' = 4 w I), labels b_j = sign(a_j'theta + noise) in {-1, +1}. grad_yy f =
    (1/n_f) sum s_j(1 - s_j) a_j a_j' <= w I, attained at y = 0: L_f = max(w, L_h) exactly. inf Phi is
    not known in closed form (phi_star = None).

Constants (``constants``; every number is the worst case over the batch of instances):
  L, mu, kappa = L/mu: of the MEAN problem, exactly as in quadratic.py: spectrum of grad_yy g = A is
    exactly [mu, L], both attained, and ||grad^2 g|| = L in z = (x, y) jointly. This is the kappa the
    papers' rates are stated in and the one the sweeps set.
  tau = rho = 0 exactly, for g and for every G(.; zeta_i) (all second derivatives are constant).
  M: as quadratic.py (stochastic-quadratic) or sup ||grad f|| <= hypot(|grad h|, ||A_f||_2/sqrt(n_f))
    (stochastic-logistic, ||grad_y f|| <= 2 sqrt(w) globally); a bound on the ball of ``regions``.
  sigma2 = sup_{||z|| <= radius} E_i ||grad G(z; zeta_i) - grad g(z)||^2 (Assumption 4 of ICML 2021,
    grad in z jointly, one uniform sample): the variance is the quadratic form z'K z - 2 h'z + c0 with
    K = E[M_i^2], M_i = blockdiag(-t Gam, H0 - A) + t w_i w_i', h = t E[M_i eps~_i], c0 = t^2 E||eps_i||^2
    (eps~_i = (0; eps_i)); its sup over the ball is a trust-region problem solved exactly through its
    dual (``ball_max_quadratic``): EXACT and attained (at ``sigma2_argmax``).
  hess_var = E_i ||grad_yy G(zeta_i) - A||_F^2 = ||H0 - A||_F^2 + 2t E x_i'(H0 - A)x_i + t^2 E||x_i||^4
    (= t^2 (E||x_i||^4 - ||S||_F^2)): exact, the same at every z.
  extra['sigma2_f']: the same for grad F: exact and attained for stochastic-quadratic
    (t_f^2 (E||xi||^2 + w^2 sup (y - c)'E[(a a' - I)^2](y - c))); for stochastic-logistic the bound
    E||grad_y F||^2 <= E||a_j||^2 (not attained).
  extra['jac_var'] = E ||grad_x grad_y G(zeta_i) - grad_x grad_y g||_F^2 = t^2 E ||q_i||^2 ||x_i||^2, exact.
  Per-sample constants (the papers assume Assumptions 1-3 hold "for any given zeta"):
  extra['L_sample'] = max_i ||J_i||_2 (joint per-sample smoothness of G), EXACT: J_i = Jbar + t w_i w_i'
    is a rank-one update, its top eigenvalue is the root of the secular equation (Golub 1973) solved by
    safeguarded Newton steps, and max_i lambda_max(J_i) >= L >= -lambda_min(Jbar) >= -lambda_min(J_i) (gam keeps the
    2x2 blocks of Jbar above -L; E_i u'J_i u = L for u the L-eigenvector of A), so the norm is the top
    eigenvalue. It exceeds L: at t = 1 its mean over i is about mu + tr S.
  extra['L_sample_yy'] = max_i lambda_max(H0 + t x_i x_i') (exact, secular equation): the constant for
    per-sample steps, e.g. stocBiO's Neumann series needs eta <= 1/L_sample_yy so that
    ||I - eta grad_yy G(zeta)|| <= 1 - eta mu for every sample (ICML 2021 Prop. 3 uses eta <= 1/L with
    L valid per sample); lower-level SGD steps likewise.
  extra['mu_sample'] = mu: every G(.; zeta_i) is mu-strongly convex in y (Assumption 1 per sample), the
    direction U_1 (s_1 = 0) is an eigenvector of every grad_yy G_i with eigenvalue mu.
  extra['L_sample_f'] = max_j ||grad^2 F(.; xi_j)||_2 (exact); extra['M_sample_f']: bound on the
    per-sample Lipschitz constant of F on the ball.
  extra['L_assumption2'] = max(L, L_sample, L_sample_f): the single L of Assumption 2 read per sample,
    extra['kappa_assumption2'] = L_assumption2 / mu, extra['M_assumption2'] = max(M, M_sample_f); bounds
    that need the per-sample reading of the papers' constants (step sizes, Prop. 3's variance term
    4 eta^2 L^2 M^2/(mu^2 B)) use these. ``constants.L``, ``kappa`` and ``L_phi`` stay those of the mean.
Why the orthonormal design: with i.i.d. Gaussian rows the spectrum of X'X/n only concentrates around
the target as n grows (benchopt's bilevel benchmark measures kappa 15 for a nominal 10 at n = 1024); with
X = sqrt(n) P diag(s) U' the mean Hessian has spectrum exactly [mu, L] at every n >= dim_y.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ._validate import check_count, check_dtype, check_int, check_real
from .base import Constants, MiniBatch, _Draw, lemma2_L_phi, register
from .quadratic import _S_PRIME_MAX, Quadratic, _symmetric, random_orthogonal
from .rng import Streams

__all__ = [
    "StochasticQuadratic",
    "StochasticLogistic",
    "orthonormal_columns",
    "rank_one_top_eigenvalue",
    "ball_max_quadratic",
]


# ---------------------------------------------------------------------------------------------- helpers
def orthonormal_columns(n: int, k: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-distributed n x k matrix with orthonormal columns (k <= n): reduced QR of a Gaussian matrix,
    signs fixed (Mezzadri 2007), float64 CPU."""
    q, r = torch.linalg.qr(torch.randn(n, k, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def rank_one_top_eigenvalue(d: torch.Tensor, u: torch.Tensor, t: float, iters: int = 100) -> torch.Tensor:
    """Largest eigenvalue of diag(d) + t u u' for every row u, via the secular equation.

    Golub, "Some modified matrix eigenvalue problems" (SIAM Review 1973): for t >= 0 the top eigenvalue
    is the root in (max d, max d + t||u||^2] of phi(lam) = 1 - t sum_k u_k^2/(lam - d_k), which is
    increasing and concave there (max d itself when no root lies above it). Newton steps inside a
    bracket that only shrinks (bisection when a step leaves it) converge from the left monotonically;
    iteration stops when no root moves by more than a few ulps. d: (R, D); u: (R, n, D); returns (R, n).
    """
    w2 = t * u * u
    active = w2 > 0
    top = d.amax(-1, keepdim=True)
    lo = top.expand(w2.shape[:-1]).clone()
    hi = top + w2.sum(-1)  # Weyl's bound, where phi >= 0
    x = hi.clone()
    dd = d.unsqueeze(-2)
    for _ in range(iters):
        diff = x.unsqueeze(-1) - dd
        q = torch.where(active, w2 / torch.where(active, diff, torch.ones_like(diff)), torch.zeros_like(w2))
        phi = 1.0 - q.sum(-1)
        dphi = (q / torch.where(active, diff, torch.ones_like(diff))).sum(-1)
        right = phi >= 0
        hi = torch.where(right, x, hi)
        lo = torch.where(right, lo, x)
        step = x - phi / torch.where(dphi > 0, dphi, torch.ones_like(dphi))
        inside = (dphi > 0) & (step >= lo) & (step <= hi)
        new = torch.where(inside, step, 0.5 * (lo + hi))
        done = bool(((new - x).abs() <= 4 * torch.finfo(x.dtype).eps * x.abs().clamp_min(1e-300)).all())
        x = new
        if done:
            break
    return x


def ball_max_quadratic(K: torch.Tensor, h: torch.Tensor, c0: torch.Tensor, radius: float, iters: int = 200):
    """sup_{||z|| <= radius} z'Kz - 2h'z + c0 for symmetric PSD K (batched), and a maximiser.

    A trust-region problem (Conn, Gould, Toint, "Trust-Region Methods", Ch. 7; strong duality by the
    S-lemma): sup = min_{lam >= lam_max(K)} lam r^2 + sum_j h~_j^2/(lam - k_j) + c0, with K = V diag(k) V'
    and h~ = V'h; the dual is convex in lam, its derivative r^2 - sum h~^2/(lam - k)^2 increases, and
    the root lies in (lam_max, lam_max + ||h||/r]. Bisection on log(lam - lam_max) keeps the end with a
    non-negative derivative, so the value returned is an upper bound exact to round-off. The maximiser
    is z = -(lam - K)^-1 h, completed along the top eigenvector when ||z|| < r (the "hard case").
    K: (R, D, D), h: (R, D), c0: (R,); returns value (R,), argmax (R, D).
    """
    k, V = torch.linalg.eigh(0.5 * (K + K.transpose(-1, -2)))
    ht = torch.einsum("rij,ri->rj", V, h)
    top = k[:, -1].clamp_min(0.0)
    gap = (top.unsqueeze(-1) - k).clamp_min(0.0)
    r2 = radius * radius
    hn = ht.norm(dim=-1)
    hi = torch.where(hn > 0, hn / radius, torch.ones_like(hn))
    lo = hi * 1e-40  # log-bisection over 92 decades: 200 halvings of the log-bracket reach round-off
    hard = r2 - (ht * ht / (lo.unsqueeze(-1) + gap) ** 2).sum(-1) >= 0  # optimum at lam = lam_max
    for _ in range(iters):
        mid = torch.sqrt(lo * hi)
        slope = r2 - (ht * ht / (mid.unsqueeze(-1) + gap) ** 2).sum(-1)
        lo = torch.where(slope < 0, mid, lo)
        hi = torch.where(slope < 0, hi, mid)
    delta = torch.where(hn > 0, hi, torch.zeros_like(hi))
    denom = delta.unsqueeze(-1) + gap
    safe = torch.where(denom > 0, denom, torch.ones_like(denom))
    terms = torch.where(denom > 0, ht * ht / safe, torch.zeros_like(ht))
    value = (top + delta) * r2 + terms.sum(-1) + c0
    zt = torch.where(denom > 0, -ht / safe, torch.zeros_like(ht))
    # hard case only: elsewhere ||z|| = r up to round-off, whose square root must not be added
    fill = torch.where(hard, (r2 - (zt * zt).sum(-1)).clamp_min(0.0).sqrt(), torch.zeros_like(hn))
    zt[:, -1] = zt[:, -1] + fill
    return value, torch.einsum("rij,rj->ri", V, zt)


def _blockdiag(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched block-diagonal [[a, 0], [0, b]]."""
    za = a.new_zeros(a.shape[0], a.shape[1], b.shape[2])
    zb = b.new_zeros(b.shape[0], b.shape[1], a.shape[2])
    return torch.cat([torch.cat([a, za], -1), torch.cat([zb, b], -1)], -2)


def _weighted_gram(c: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """(1/n) sum_i c_i w_i w_i' for rows w_i of W (R, n, D): (R, D, D), without an (R, n, D, D) temporary."""
    return (W * c.unsqueeze(-1)).transpose(1, 2) @ W / W.shape[1]


def _quad_form(K, h, c0, z):
    """z'Kz - 2h'z + c0, batched over the leading dimension."""
    return (z * torch.matmul(K, z.unsqueeze(-1)).squeeze(-1)).sum(-1) - 2 * (h * z).sum(-1) + c0


# ------------------------------------------------------------------------------------- the lower level
class _FiniteSumLower(Quadratic):
    """Finite-sum lower level shared by the two stochastic families (module docstring); the mean problem
    is the ``quadratic`` instance of the same seed. Subclasses supply the upper level F."""

    stochastic = True
    #: the per-sample data of F, in the order of its row table (set by the subclasses)
    _F_TABLE: tuple[str, ...] = ()

    def __init__(self, *, n_f=64, n_g=64, noise=1.0, **kwargs):
        # the sample counts bound the sums of the closed forms (means over n): checked against the dtype
        dt = check_dtype("dtype", kwargs.get("dtype", torch.float64))
        self.n_f = check_count("n_f", n_f, dt)
        self.n_g = check_count("n_g", n_g, dt)
        self.noise = check_real("noise", noise, minimum=0.0, maximum=1.0)
        super().__init__(**kwargs)

    def family_params(self):
        return {**super().family_params(), "n_f": self.n_f, "n_g": self.n_g, "noise": self.noise}

    # ------------------------------------------------------------------ data
    def _build(self):
        dx, dy = self.dim_x, self.dim_y
        for name, n in (("n_g", self.n_g), ("n_f", self.n_f)):
            if n < dy:
                raise ValueError(f"{name} must be >= dim_y={dy} (the per-sample design has orthonormal "
                                 f"columns in R^{name}), got {name}={n}")
        k = min(dx, dy)
        self.m = min(dx, self.n_g - dy)  # number of x directions with per-sample coupling noise
        a = torch.logspace(math.log10(self.mu), math.log10(self.L), dy, dtype=torch.float64)
        a[0], a[-1] = self.mu, self.L
        b = self.coupling * torch.sqrt((self.L * (self.L - a[:k])).clamp_min(0.0))
        gam2 = torch.full((dx,), self.L, dtype=torch.float64)
        gam2[:k] = self.L - b * b / self.L  # keeps every 2x2 block of Jbar above -L (module docstring)
        self.spectrum = a
        per = [self._draw_instance(self.instance_generator(r), a, b, gam2) for r in range(self.R)]
        self._d64 = {key: torch.stack([p[key] for p in per]) for key in per[0]}
        for key, val in self._d64.items():
            if key not in ("U", "V", "Xg", "Qg", "Eg", *self._F_TABLE):
                setattr(self, key, self._t(val))
        # One table of per-sample rows [x_i | -q_i | eps_i] for G and one for F (``_F_TABLE``): a mini-batch
        # gathers all its rows with one index_select (``minibatches``); Xg, Eg and the F factors are views
        # (no second copy). q_i is stored negated so that x_i'y - q_i'x is one product with (y; x), as
        # H0 y - B x is with [H0; -B'] (``_stack_lower``); negation is exact.
        self._XQE = self._t(torch.cat([self._d64["Xg"], -self._d64["Qg"], self._d64["Eg"]], -1))
        self.Xg, _, self.Eg = self._XQE.split([dy, dx, dy], -1)
        self._XQ = self._XQE[..., :dy + dx]  # [x_i | -q_i]: what a Jacobian-vector product reads
        cols = [self._d64[k].unsqueeze(-1) if self._d64[k].dim() == 2 else self._d64[k] for k in self._F_TABLE]
        self._Ftab = self._t(torch.cat(cols, -1))
        views = self._Ftab.split([c.shape[-1] for c in cols], -1)
        for key, view in zip(self._F_TABLE, views, strict=True):
            setattr(self, key, view.squeeze(-1) if self._d64[key].dim() == 2 else view)
        # [H0; -B'; -e'] read by (y; x; 1)' gives H0 y - B x - e in one product (``_grad_y_G``)
        self._H0B = torch.cat([self._stack_lower(self.H0, self.B), -self.e.unsqueeze(1)], 1).contiguous()
        self._AB = self._stack_lower(self.A, self.B)  # the mean problem's (quadratic.py)
        self._ar = torch.arange(self.R, device=self.device).unsqueeze(1)
        self._one = torch.ones(self.R, 1, dtype=self.dtype, device=self.device)
        self._ones_rows: dict[int, torch.Tensor] = {}

    def _draw_instance(self, gen, a, b, gam2) -> dict[str, torch.Tensor]:
        """Data of one instance (float64 CPU). The first draws are those of quadratic.py, so the mean
        problem equals ``quadratic`` with the same seed."""
        dx, dy, k, m, n, t = self.dim_x, self.dim_y, min(self.dim_x, self.dim_y), self.m, self.n_g, self.noise
        U = random_orthogonal(dy, gen)
        V = random_orthogonal(dx, gen)
        c = torch.randn(dy, generator=gen, dtype=torch.float64) / math.sqrt(dy)
        xc = torch.randn(dx, generator=gen, dtype=torch.float64) / math.sqrt(dx)
        A = _symmetric((U * a) @ U.T)
        B = (U[:, :k] * b) @ V[:, :k].T
        P = orthonormal_columns(n, dy + m, gen)
        s2 = a - self.mu
        eps = torch.randn(n, dy, generator=gen, dtype=torch.float64) * (self.L / math.sqrt(dy))
        out = {
            "U": U, "V": V, "A": A, "A_inv": (U / a) @ U.T, "B": B, "c": c, "x_opt": xc, "e": A @ c - B @ xc,
            "H0": _symmetric((U * (a - t * s2)) @ U.T),
            "Gam": (V[:, :m] * gam2[:m]) @ V[:, :m].T,
            "Xg": math.sqrt(n) * (P[:, :dy] * s2.sqrt()) @ U.T,
            "Qg": math.sqrt(n) * (P[:, dy:] * gam2[:m].sqrt()) @ V[:, :m].T,
            "Eg": eps - eps.mean(0),
        }
        out.update(self._draw_upper(gen))
        return out

    def _draw_upper(self, gen) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ sampling
    def _n(self, which: str) -> int:
        if which not in ("f", "g"):
            raise ValueError(f"which must be 'f' or 'g', got {which!r}")
        return self.n_f if which == "f" else self.n_g

    def sample(self, which: str, size: int, streams, replace: bool = True) -> torch.Tensor:
        """Indices (R, size) of a mini-batch of F (``'f'``) or G (``'g'``) components, uniform, with or
        without replacement, one independent draw per instance.

        ``streams``: an ``rng.Streams`` with R streams (draws ``streams.integers``: instance r of a batch
        equals a single run with that stream's seed) or a ``torch.Generator`` (torch.randint, or the
        first ``size`` entries of a uniformly random permutation per instance: argsort of uniforms).
        """
        n = self._n(which)
        size = check_int("size", size, minimum=1)
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, got {replace!r}")
        if not replace and size > n:
            raise ValueError(f"size={size} exceeds n_{which}={n}: a batch drawn without replacement needs "
                             f"size <= n_{which}")
        if isinstance(streams, Streams):
            if streams.R != self.R:
                raise ValueError(f"streams has {streams.R} streams, the problem has R={self.R} instances")
            idx = streams.integers(n, size, replace=replace)
        elif isinstance(streams, torch.Generator):
            dev = streams.device
            if replace:
                idx = torch.randint(n, (self.R, size), generator=streams, device=dev)
            else:
                idx = torch.argsort(torch.rand(self.R, n, generator=streams, device=dev), dim=1)[:, :size]
        else:
            raise TypeError(f"streams must be an rng.Streams or a torch.Generator, got {type(streams).__name__}")
        return idx.to(self.device)

    def _rows(self, T: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Per-sample factor rows T[r, idx[r, s]]: (R, n, ...) -> (R, S, ...) (one index_select: the
        cheapest gather on CPU)."""
        R, n = T.shape[0], T.shape[1]
        flat = (self._ar * n + idx).reshape(-1) if R > 1 else idx.reshape(-1)
        return T.reshape(R * n, *T.shape[2:]).index_select(0, flat).reshape(*idx.shape, *T.shape[2:])

    def minibatches(self, which: str, idx: torch.Tensor, sizes: list[int]) -> list[MiniBatch]:
        """``MiniBatch`` objects for consecutive pieces of one draw: each table's rows are gathered with one
        index_select for the whole draw when an oracle first reads them."""
        return _Draw(idx, self._rows).split(sizes)

    def _sample_rows(self, table: torch.Tensor, idx) -> torch.Tensor:
        """Rows of a per-sample table for a batch: a MiniBatch's (gathered once per draw) or a gather."""
        return idx.rows(table) if isinstance(idx, MiniBatch) else self._rows(table, idx)

    def _ones_row(self, S: int) -> torch.Tensor:
        """(R, 1, S) ones: a batch sum of rows as one bmm (a reduction over a strided slice costs ~2x a
        bmm dispatch on the CPU)."""
        out = self._ones_rows.get(S)
        if out is None:
            with torch.inference_mode(False):  # an ordinary tensor: the cache outlives an inference-mode step
                out = self._ones_rows[S] = torch.ones(self.R, 1, S, dtype=self.dtype, device=self.device)
        return out

    @staticmethod
    def _proj(rows: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """rows[r, s]'v[r]: (R, S, d), (R, d) -> (R, S) (batch dimensions broadcast). bmm when the batch
        dimensions agree: matmul's broadcasting adds expand/reshape dispatches (~15 us a call on CPU)."""
        if rows.dim() == 3 and v.dim() == 2 and rows.shape[0] == v.shape[0]:
            return torch.bmm(rows, v.unsqueeze(2)).squeeze(2)
        return torch.matmul(rows, v.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def _bmean(coef: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(1/S) sum_s coef[r, s] rows[r, s]: the batch mean of rank-one terms (bmm as in ``_proj``)."""
        if rows.dim() == 3 and coef.dim() == 2 and rows.shape[0] == coef.shape[0]:
            return torch.bmm(coef.unsqueeze(1), rows).squeeze(1) / coef.shape[-1]
        return torch.matmul(coef.unsqueeze(-2), rows).squeeze(-2) / coef.shape[-1]

    # The per-sample oracles below are the hot path of every stochastic optimizer (tens of calls per outer
    # step, each on a (R, S, .) batch of rows). Vectors are kept as rows (R, 1, k) so that each product is
    # one bmm, and the batch mean and its weight t/S ride in baddbmm's alpha: about eight dispatches a call
    # instead of twenty (a dispatch costs 2-8 us on the CPU, the arithmetic of S = 64 rows of d = 100 ~1 us).

    # ------------------------------------------------------------------ G on a mini-batch
    def _G(self, x, y, idx):
        """Batch mean of G(x, y; zeta_i), i in idx (module docstring)."""
        t, dy, dx = self.noise, self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQE, idx)
        r = self._proj(rows[..., :dy + dx], torch.cat([y, x], -1))  # x_i'y - q_i'x
        quad = 0.5 * (y * self._mv(self.H0, y)).sum(-1) - 0.5 * t * (x * self._mv(self.Gam, x)).sum(-1)
        lin = (y * (self._mv(self.B, x) + self.e + t * rows[..., dy + dx:].mean(1))).sum(-1)
        return quad - lin + 0.5 * t * (r * r).mean(1)

    def _grad_y_G(self, x, y, idx):
        """H0 y - B x - e + t (1/S) sum_i [(x_i'y - q_i'x) x_i - eps_i]."""
        t, dy, dx = self.noise, self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQE, idx)
        S = rows.shape[1]
        z = torch.cat([y, x, self._one], -1).unsqueeze(1)  # (R, 1, dy + dx + 1)
        r = torch.bmm(z[..., :dy + dx], rows[..., :dy + dx].transpose(1, 2))  # x_i'y - q_i'x, (R, 1, S)
        g = torch.baddbmm(torch.bmm(z, self._H0B), r, rows[..., :dy], alpha=t / S)
        return torch.baddbmm(g, self._ones_row(S), rows[..., dy + dx:], alpha=-t / S).squeeze(1)

    def _grad_x_G(self, x, y, idx):
        """-t Gam x - B'y - t (1/S) sum_i (x_i'y - q_i'x) q_i."""
        t, dy, dx = self.noise, self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQE, idx)
        r = self._proj(rows[..., :dy + dx], torch.cat([y, x], -1))
        return -t * self._mv(self.Gam, x) - self._mtv(self.B, y) + t * self._bmean(r, rows[..., dy:dy + dx])

    def _hvp_G(self, x, y, v, idx):
        """Batch mean of grad_yy G v = H0 v + t x_i (x_i'v)."""
        X = self._sample_rows(self.Xg, idx)
        vr = v.unsqueeze(1)
        w = torch.bmm(vr, X.transpose(1, 2))  # x_i'v, (R, 1, S)
        return torch.baddbmm(torch.bmm(vr, self.H0), w, X, alpha=self.noise / w.shape[-1]).squeeze(1)

    def _jvp_G(self, x, y, v, idx):
        """Batch mean of grad_x grad_y G v = -B'v - t q_i (x_i'v)."""
        dy, dx = self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQ, idx)
        vr = v.unsqueeze(1)
        w = torch.bmm(vr, rows[..., :dy].transpose(1, 2))  # x_i'v, (R, 1, S)
        mBv = torch.bmm(vr, self._H0B[:, dy:dy + dx, :].transpose(1, 2))  # (-B'v)' from the stored -B'
        return torch.baddbmm(mBv, w, rows[..., dy:dy + dx], alpha=self.noise / w.shape[-1]).squeeze(1)

    # ------------------------------------------------------------------ exact variances
    def grad_variance(self, which: str, x, y):
        """E_zeta ||grad G(z; zeta) - grad g(z)||^2 (``'g'``) or the same for F (``'f'``) at z = (x, y),
        one uniform sample, grad in z jointly (ICML 2021 Assumption 4): exact, () or (R,)."""
        self._n(which)
        xb, yb, sq = self._xy(x, y)
        return self._out(self._grad_var(which, xb, yb), sq)

    def _grad_var(self, which, x, y):
        K, h, c0 = self._var_forms[which]
        return _quad_form(K, h, c0, torch.cat([x, y], -1))

    def _lower_variance_form(self):
        """(K, h, c0) of the quadratic z -> E_i||grad G_i(z) - grad g(z)||^2 (module docstring), float64."""
        d, t, n, dx = self._d64, self.noise, self.n_g, self.dim_x
        W = torch.cat([-d["Qg"], d["Xg"]], -1)
        Et = torch.cat([W.new_zeros(self.R, n, dx), d["Eg"]], -1)
        Jt = _blockdiag(-t * d["Gam"], d["H0"] - d["A"])
        Sig = W.transpose(1, 2) @ W / n
        w2 = (W * W).sum(-1)
        K = Jt @ Jt + t * (Jt @ Sig + Sig @ Jt) + t * t * _weighted_gram(w2, W)
        h = t * (self._mv(Jt, Et.mean(1)) + t * self._bmean((W * Et).sum(-1), W))
        return K, h, t * t * (Et * Et).sum(-1).mean(1)

    def _lower_constants(self, radius: float) -> dict[str, float]:
        """Exact sigma2, hess_var, jac_var and per-sample smoothness of G (module docstring)."""
        d, t, a = self._d64, self.noise, self.spectrum
        X, Qm = d["Xg"], d["Qg"]
        diag_yy = (a - t * (a - self.mu)).expand(self.R, -1)
        L_yy = rank_one_top_eigenvalue(diag_yy, X @ d["U"], t)
        Jbar = torch.cat([torch.cat([-t * d["Gam"], -d["B"].transpose(1, 2)], -1),
                          torch.cat([-d["B"], d["H0"]], -1)], -2)
        ev, evec = torch.linalg.eigh(Jbar)
        lam = rank_one_top_eigenvalue(ev, torch.cat([-Qm, X], -1) @ evec, t)
        M0 = d["H0"] - d["A"]
        x2 = (X * X).sum(-1)
        hess_var = ((M0 * M0).sum((-2, -1)) + 2 * t * ((X @ M0) * X).sum(-1).mean(1)
                    + t * t * (x2 * x2).mean(1))
        jac_var = t * t * ((Qm * Qm).sum(-1) * x2).mean(1)
        form = self._lower_variance_form()
        sigma2, self.sigma2_argmax = ball_max_quadratic(*form, radius)
        self._var64 = {"g": form}
        return {"sigma2": float(sigma2.max()), "hess_var": float(hess_var.max()),
                "jac_var": float(jac_var.max()), "L_sample_yy": float(L_yy.max()),
                "L_sample": max(float(lam.max()), float((-ev[:, 0]).max())), "mu_sample": self.mu,
                "noise": t, "n_g": float(self.n_g), "n_f": float(self.n_f), "m_coupling_noise": float(self.m)}

    def _upper_constants(self, radius: float) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _L_h(self) -> float:
        """sup |h''| = max(lam + 2 nc, |lam - nc/2|) (s'' ranges over [-1/2, 2]; quadratic.py)."""
        return max(self.lam + 2 * self.nc, abs(self.lam - self.nc / 2))

    def _grad_h_bound(self, radius: float) -> float:
        """sup ||grad h|| on the ball (quadratic.py)."""
        xc_n = float(self.x_opt.norm(dim=-1).max())
        return self.lam * (radius + xc_n) + self.nc * _S_PRIME_MAX * math.sqrt(self.dim_x)

    def _make_constants(self) -> Constants:
        base = super()._make_constants()
        rad = self.radius
        low = self._lower_constants(rad)
        up = self._upper_constants(rad)
        base = dataclasses.replace(base, **up.pop("replace", {}))
        L_all = max(base.L, low["L_sample"], up["L_sample_f"])
        extra = {**base.extra, **low, **up, "L_assumption2": L_all, "kappa_assumption2": L_all / base.mu,
                 "M_assumption2": max(base.M, up["M_sample_f"])}
        sigma2, hess_var = extra.pop("sigma2"), extra.pop("hess_var")
        self._var_forms = {key: tuple(self._t(v) for v in form) for key, form in self._var64.items()}
        regions = {
            **base.regions,
            "sigma2": f"exact and attained on the ball ||(x, y)|| <= {rad:.6g} (sup of a convex quadratic "
                      "in z, solved as a trust-region problem); attained at sigma2_argmax",
            "hess_var": "exact, the same at every (x, y) (grad_yy G is constant per sample)",
            "L_sample": "global, exact (max over samples of the joint Hessian norm of G(.; zeta_i))",
            "L_sample_yy": "global, exact (max over samples of lambda_max grad_yy G(.; zeta_i))",
            "mu_sample": "global, exact and attained for every sample",
            **up.get("regions", {}),
        }
        return dataclasses.replace(base, sigma2=sigma2, hess_var=hess_var, regions=regions,
                                   extra={k: v for k, v in extra.items() if k != "regions"})


# ------------------------------------------------------------------------------------- the families
@register
class StochasticQuadratic(_FiniteSumLower):
    """Finite-sum quadratic bilevel problem whose mean is the ``quadratic`` instance of the same seed."""

    name = "stochastic-quadratic"
    summary = ("finite sums: G_i with rank-one Hessians x_i x_i' + ridge, F_j rank-one quadratic; mean = "
               "quadratic family; exact kappa, sigma^2, Hessian variance, per-sample L")
    param_doc = {
        **Quadratic.param_doc,
        "n_g": (64, "number of lower-level samples G(.; zeta_i), >= dim_y"),
        "n_f": (64, "number of upper-level samples F(.; xi_j), >= dim_y"),
        "noise": (1.0, "t in [0, 1]: per-sample variation of G (0: every sample equals g)"),
        "noise_f": (None, "t_f in [0, 1]: per-sample variation of F (default: noise)"),
    }

    def __init__(self, *, noise=1.0, noise_f=None, **kwargs):
        noise = check_real("noise", noise, minimum=0.0, maximum=1.0)
        self.noise_f = check_real("noise_f", noise if noise_f is None else noise_f, minimum=0.0, maximum=1.0)
        super().__init__(noise=noise, **kwargs)

    _F_TABLE = ("Af", "Xif")  # rows [a_j | xi_j]

    def family_params(self):
        return {**super().family_params(), "noise_f": self.noise_f}

    def _draw_upper(self, gen):
        dx, dy, n = self.dim_x, self.dim_y, self.n_f
        xi = torch.randn(n, dx, generator=gen, dtype=torch.float64) * (self.w / math.sqrt(dx))
        return {"Af": math.sqrt(n) * orthonormal_columns(n, dy, gen), "Xif": xi - xi.mean(0)}

    def _F(self, x, y, idx):
        """Batch mean of F(x, y; xi_j) (module docstring)."""
        tf, u, dy = self.noise_f, y - self.c, self.dim_y
        rows = self._sample_rows(self._Ftab, idx)
        p = self._proj(rows[..., :dy], u)
        quad = 0.5 * self.w * ((1 - tf) * (u * u).sum(-1) + tf * (p * p).mean(1))
        return quad + self._h(x) + tf * (rows[..., dy:].mean(1) * (x - self.x_opt)).sum(-1)

    def _grad_y_F(self, x, y, idx):
        """w [(1 - t_f) u + t_f (1/S) sum_j a_j (a_j'u)], u = y - c."""
        tf, dy = self.noise_f, self.dim_y
        Af = self._sample_rows(self._Ftab, idx)[..., :dy]
        u = (y - self.c).unsqueeze(1)
        p = torch.bmm(u, Af.transpose(1, 2))  # a_j'u, (R, 1, S)
        return torch.baddbmm(u, p, Af, beta=self.w * (1 - tf), alpha=self.w * tf / p.shape[-1]).squeeze(1)

    def _grad_x_F(self, x, y, idx):
        """grad h(x) + t_f (1/S) sum_j xi_j."""
        Xi = self._sample_rows(self._Ftab, idx)[..., self.dim_y:]
        S = Xi.shape[1]
        return torch.baddbmm(self._grad_x_f(x, y).unsqueeze(1), self._ones_row(S), Xi,
                             alpha=self.noise_f / S).squeeze(1)

    def _upper_constants(self, radius):
        """sigma2_f exact (trust region over ||y|| <= radius), per-sample L_f exact, M_f a bound."""
        d, tf, w, R, dx = self._d64, self.noise_f, self.w, self.R, self.dim_x
        Af, xi = d["Af"], d["Xif"]
        a2 = (Af * Af).sum(-1)
        eye = torch.eye(self.dim_y, dtype=torch.float64)
        Kf = _weighted_gram(a2, Af) - 2 * _weighted_gram(torch.ones_like(a2), Af) + eye
        Ky = (tf * w) ** 2 * Kf
        K = _blockdiag(Ky.new_zeros(R, dx, dx), Ky)
        h = torch.cat([Ky.new_zeros(R, dx), self._mv(Ky, d["c"])], -1)
        c0 = tf * tf * (xi * xi).sum(-1).mean(1) + (d["c"] * self._mv(Ky, d["c"])).sum(-1)
        self._var64["f"] = (K, h, c0)
        sigma2_f, self.sigma2_f_argmax = ball_max_quadratic(K, h, c0, radius)
        lf = w * ((1 - tf) + tf * float(a2.max()))
        gy = lf * (radius + float(d["c"].norm(dim=-1).max()))
        gx = self._grad_h_bound(radius) + tf * float(xi.norm(dim=-1).max())
        return {"sigma2_f": float(sigma2_f.max()), "L_sample_f": max(self._L_h(), lf),
                "M_sample_f": math.hypot(gx, gy), "noise_f": tf,
                "regions": {"sigma2_f": f"exact and attained on the ball ||(x, y)|| <= {radius:.6g}",
                            "L_sample_f": "global, exact", "M_sample_f": "bound on the same ball"}}


@register
class StochasticLogistic(_FiniteSumLower):
    """Finite-sum ridge-type lower level (as stochastic-quadratic) and a per-sample logistic validation
    loss as upper level; y*(x) linear and exact, tau = rho = 0."""

    name = "stochastic-logistic"
    summary = ("finite sums: ridge-type G_i (rank-one + ridge), logistic validation loss F_j; exact kappa, "
               "sigma^2, Hessian variance, per-sample L; inf Phi unknown")
    param_doc = {
        **{k: v for k, v in Quadratic.param_doc.items() if k != "w"},
        "w": (1.0, "scale of the validation design: (1/n_f) sum a_j a_j' = 4 w I, so L_f = w (<= L)"),
        "n_g": (64, "number of lower-level samples, >= dim_y"),
        "n_f": (64, "number of validation samples, >= dim_y"),
        "noise": (1.0, "t in [0, 1]: per-sample variation of G (0: every sample equals g)"),
        "label_noise": (0.5, "sd of the Gaussian noise added to a_j'theta before taking the sign"),
    }

    def __init__(self, *, label_noise=0.5, **kwargs):
        self.label_noise = check_real("label_noise", label_noise, minimum=0.0)
        super().__init__(**kwargs)
        self.phi_star = None

    _F_TABLE = ("Af", "bf")  # rows [a_j | b_j]

    def family_params(self):
        return {**super().family_params(), "label_noise": self.label_noise}

    def _draw_upper(self, gen):
        dy, n = self.dim_y, self.n_f
        Af = 2.0 * math.sqrt(self.w * n) * orthonormal_columns(n, dy, gen)
        theta = torch.randn(dy, generator=gen, dtype=torch.float64) / math.sqrt(dy)
        z = Af @ theta + self.label_noise * torch.randn(n, generator=gen, dtype=torch.float64)
        return {"Af": Af, "bf": torch.where(z >= 0, 1.0, -1.0).to(torch.float64)}

    @classmethod
    def _logistic(cls, y, Af, bf):
        """Mean over the rows of log(1 + exp(-b_j a_j'y)) and its gradient in y (stable forms)."""
        m = bf * cls._proj(Af, y)
        # log(1 + e^-m) exactly: torch's softplus switches to the identity above its threshold (20), an
        # absolute error of e^-20 ~ 2e-9 whose autograd derivative disagrees with the sigmoid below
        zero = torch.zeros((), dtype=m.dtype, device=m.device)
        return torch.logaddexp(zero, -m).mean(1), -cls._bmean(bf * torch.sigmoid(-m), Af)

    def _f(self, x, y):
        return self._logistic(y, self.Af, self.bf)[0] + self._h(x)

    def _grad_y_f(self, x, y):
        return self._logistic(y, self.Af, self.bf)[1]

    def _F(self, x, y, idx):
        rows = self._sample_rows(self._Ftab, idx)
        return self._logistic(y, rows[..., :-1], rows[..., -1])[0] + self._h(x)

    def _grad_y_F(self, x, y, idx):
        rows = self._sample_rows(self._Ftab, idx)
        return self._logistic(y, rows[..., :-1], rows[..., -1])[1]

    def _grad_x_F(self, x, y, idx):
        return self._grad_x_f(x, y)

    def _grad_var(self, which, x, y):
        if which == "g":
            return super()._grad_var(which, x, y)
        # exact finite sum: grad_x F_j = grad h is sample-free, grad_y F_j = -b_j sigma(-m_j) a_j
        m = self.bf * self._proj(self.Af, y)
        coef = torch.sigmoid(-m)
        second = (coef * coef * (self.Af * self.Af).sum(-1)).mean(1)
        return second - (self._grad_y_f(x, y) ** 2).sum(-1)

    def _upper_constants(self, radius):
        """M and sigma2_f are bounds; L_f = w and L_sample_f are exact (attained where a_j'y = 0)."""
        Af = self._d64["Af"]
        a2 = (Af * Af).sum(-1)
        gy = float(torch.linalg.matrix_norm(Af, ord=2).max()) / math.sqrt(self.n_f)
        gx = self._grad_h_bound(radius)
        M = math.hypot(gx, gy)
        L_f = max(self.w, self._L_h())
        return {"replace": {"M": M, "L_phi": lemma2_L_phi(self.L, self.mu, M, 0.0, 0.0)},
                "L_f": L_f, "sigma2_f": float(a2.mean(1).max()),
                "L_sample_f": max(self._L_h(), float(a2.max()) / 4),
                "M_sample_f": math.hypot(gx, float(a2.max()) ** 0.5),
                "regions": {"M": f"bound on the ball ||(x, y)|| <= {radius:.6g} (||grad_y f|| <= "
                                 "||A_f||_2/sqrt(n_f) globally)",
                            "sigma2_f": "global bound E||grad_y F||^2 <= E||a_j||^2, not attained",
                            "L_sample_f": "global, exact (attained where a_j'y = 0)",
                            "M_sample_f": "global bound in y, on the ball in x"}}
