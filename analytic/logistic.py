"""The ``logistic-upper`` and ``logistic-lower`` families: logistic losses with exact constants.

Notation: psi(u) = log(1 + e^-u) (logistic loss), sigma the sigmoid; psi'(u) = -sigma(-u),
psi''(u) = sigma(u) sigma(-u) in (0, 1/4] (max at u = 0), |psi'''(u)| <= 1/(6 sqrt 3), attained at
u = +-log(2 + sqrt 3) (psi''' = s(1-s)(1-2s) with s = sigma(u), stationary at s = (3 +- sqrt 3)/6).
Both upper levels are a validation logistic loss (SID paper, Grazzi, Pontil, Salzo 2021, Sec. 6):
  f(x, y) = (1/m) sum_l psi(c_l z_l'y),  c_l in {-1, +1},  Z scaled so that ||Z||_2^2 / (4m) = w L.
Its Hessian (1/m) Z' diag(psi''(c_l z_l'y)) Z has norm <= ||Z||^2/(4m) = w L, attained at y = 0 (w <= 1,
so f is L-smooth jointly: grad_x f = 0); ||grad f(y)|| = ||Z'(c psi')||/m with |psi'(c z'y)| <= s_l :=
sigma(||z_l|| r) on ||y|| <= r (s_l = 1 globally), so M = min(||Z||_2 ||s||, sum_l ||z_l|| s_l)/m (a bound;
the supremum is approached only at infinity or not at all).

``logistic-upper`` (ours): ridge regression below, logistic validation loss above.
  Training design X (n, dy) and targets linear in x: t(x) = C x + t0; ridge lam = ridge * mu < mu;
  X = sqrt(n) W[:, :dy] diag(sqrt(a - lam)) U',  C = X (A - lam I)^-1 B,  t0 = X y_teacher + noise, with
  A = U diag(a) U', a = geomspace(mu, L) (kappa = L/mu exact, both ends attained), B = U[:, :k] diag(b) V',
  b_i = s sqrt(L (L - a_i)) exactly as in the ``quadratic`` family. Then X'X/n + lam I = A, X'C/n = B, and
    g(x, y) = 1/(2n) ||X y - t(x)||^2 + lam/2 ||y||^2 - 1/(2n) ||t(x)||^2 = 1/2 y'Ay - y'(Bx + e),
  e = X't0/n: the ridge loss minus a function of x alone, which changes neither y*(x), Phi, nor
  grad_y g, grad_yy g, grad_x grad_y g, and which removes grad_xx g = C'C/n (that term would lift the
  joint Hessian norm above L). The joint Hessian of g is [[0, -B'], [-B, A]] with norm exactly L
  (quadratic.py's derivation: b_i^2 <= L (L - a_i)); f's is blockdiag(0, <= wL). So L (joint) = top of
  grad_yy g, exact and global; tau = rho = 0 (g quadratic); M global (logistic loss is Lipschitz).
  y*(x) = A^-1 (B x + e), Phi(x) = f(y*(x)) (convex in x), grad Phi = B' A^-1 grad_y f(y*(x)).

``logistic-lower`` (SID Sec. 6): l2-regularised logistic regression below with exp-parametrised
regularisation, validation logistic loss above,
  g(x, y) = (1/n) sum_i psi(b_i a_i'y) + 1/2 sum_j lam_j(x) y_j^2,  lam_j(x) = exp(x_k(j)),
where the coordinates of y are split into dim_x contiguous groups G_k (dim_x = n_reg = 1: one
parameter, SID Fig. 1; dim_x = dim_y: one per coordinate, SID Fig. 2). Synthetic training design
(ours, chosen so that every constant is exact): in an orthonormal basis U = blockdiag_k(U_k) (random
rotations inside each group, so the regulariser is invariant), every example lies on one basis direction,
a_i = alpha_j U e_j. One direction ("dead") carries no example: X has a zero singular value. The others
carry m_j examples of scale alpha_j with data curvature K_j = m_j alpha_j^2/(4n) = K q_j, q_top = 1, the
rest in [1/4, 1/2]. In the U basis g separates over coordinates and
  grad_yy g = U diag(lam_j(x) + k_j(yt_j)) U',  k_j(t) = (m_j/n) alpha_j^2 psi''(alpha_j t) in (0, K_j],
yt = U'y. The box: x in [x_min, x_max]^dim_x with exp(x_max) = lam_max = reg_share * L, and K = L - lam_max,
exp(x_min) = mu = L/kappa. Then on the box (any y):
  mu = exp(x_min), attained at x = x_min 1 on the dead direction (exact);
  L_yy = sup lambda_max(grad_yy g) = lam_max + K = L, attained at x = x_max 1, y = 0 (exact);
  kappa = L/mu = sup lambda_max / inf lambda_min over the region (exact, the two extremes are attained at
  different x; the condition number of grad_yy g at one point x is at most (lam_max(x) + K)/lam_min(x)).
Joint smoothness (Assumption 2 of ICML 2021): grad_xx g = diag_k(exp(x_k) ||y_Gk||^2/2) and
grad_x grad_y g = exp(x_k) y_j (j in G_k) grow with y, so L is declared on the region
Omega = box x {||y|| <= r}. In the U basis, L I - grad^2 g is block-diagonal over {x_k} u G_k:
  [[L - lam s/2, -lam yt_G'], [-lam yt_G, diag(Delta_j)]],  s = ||yt_G||^2,  Delta_j = L - lam - k_j(yt_j),
positive semidefinite iff L - lam s/2 - lam^2 sum_j yt_j^2/Delta_j >= 0 (Schur complement). With
Delta_top >= K tanh^2(alpha_top t/2) (1 - 4 psi''(u) = tanh^2(u/2)), Delta_j >= K - K_j >= gap for the
others, t/tanh increasing, and lam <= lam_max, a sufficient condition is
  S(r) = lam_max r^2/2 + lam_max^2 (r^2/(K tanh^2(alpha_top r/2)) + r^2/gap) <= L,
and lambda_min(grad^2 g) >= -lam_max > -L always. So ||grad^2 g|| <= L on Omega and = L at
(x_max 1, 0): L is the exact joint constant. The default r is the largest radius with S(r) <= L; it must
hold y*(x) for every x of the box: |yt*_j| <= |log(n+_j/n-_j)|/alpha_j (the unregularised optimum, since
|yt*_j| decreases in lam), and the label counts are clamped to [3/8, 5/8] of m_j, which bounds ||y*||.
On Omega (Assumption 3):
  tau = lam_max sqrt(1 + r^2): d(grad_x grad_y g) = exp(x_k)(dx_k y_Gk + dy_Gk) row-wise (exact, attained
  at x = x_max 1, ||y_Gk|| = r);
  rho = sqrt(lam_max^2 + c^2), c = max_j (m_j/n) alpha_j^3 max_{|u| <= alpha_j r} |psi'''(u)|: in the U
  basis d(grad_yy g) = diag(lam dx_k(j) + k_j'(yt_j) dyt_j) (exact, attained).
y*(x) by damped Newton's method to round-off (``last_newton_residual``), grad Phi = -grad_x grad_y g v,
grad_yy g v = grad_y f at y*(x) (ICML 2021 Prop. 1, eq. 4) with a dense solve.
"""

from __future__ import annotations

import math

import torch

from ._validate import check_count, check_kappa, check_real, check_scale
from .base import BilevelProblem, Constants, lemma2_L_phi, register
from .quadratic import Quadratic, QuadraticLowerLevel, _symmetric, random_orthogonal

__all__ = ["LogisticUpper", "LogisticLower", "PSI3_MAX", "PSI3_ARGMAX"]

#: max_u |psi'''(u)| of the logistic loss, and where it is attained (|u|)
PSI3_MAX = 1.0 / (6.0 * math.sqrt(3.0))
PSI3_ARGMAX = math.log(2.0 + math.sqrt(3.0))
# Data curvatures of the non-top directions of logistic-lower lie in [_Q_MIN, _Q_GAP] * K: the gap
# (1 - _Q_GAP) K to the top direction keeps the Schur bound on the joint Hessian independent of dim_y.
_Q_MIN, _Q_GAP = 0.25, 0.5

_mv = Quadratic._mv
_mtv = Quadratic._mtv


def _psi(u):
    """Logistic loss psi(u) = log(1 + exp(-u)), stable for every u."""
    return torch.logaddexp(torch.zeros_like(u), -u)


def _psi1(u):
    return -torch.sigmoid(-u)


def _psi2(u):
    return torch.sigmoid(u) * torch.sigmoid(-u)


def psi3_max_on(a: float) -> float:
    """max_{|u| <= a} |psi'''(u)|: |psi'''| increases on [0, PSI3_ARGMAX], so it is |psi'''(min(a, argmax))|."""
    s = 1.0 / (1.0 + math.exp(-min(a, PSI3_ARGMAX)))
    return s * (1 - s) * abs(1 - 2 * s)


def _validation_data(gen: torch.Generator, m: int, teacher: torch.Tensor, curvature: float) -> torch.Tensor:
    """Signed validation design c * Z (m, d), float64 CPU: Gaussian Z scaled so ||Z||_2^2/(4m) = curvature
    (the exact smoothness of f), labels c ~ Bernoulli(sigma(Z teacher)) in {-1, +1}."""
    Z = torch.randn(m, teacher.numel(), generator=gen, dtype=torch.float64)
    Z = Z * math.sqrt(4 * m * curvature) / torch.linalg.matrix_norm(Z, ord=2)
    c = torch.where(torch.rand(m, generator=gen, dtype=torch.float64) < torch.sigmoid(Z @ teacher), 1.0, -1.0)
    return c.unsqueeze(-1) * Z


def _gradient_bound(Zc: torch.Tensor, radius: float) -> float:
    """Bound on sup_{||y|| <= radius} ||grad f(y)|| (module docstring), worst over the batch (R, m, d)."""
    norms = Zc.norm(dim=-1)
    s = torch.sigmoid(norms * radius) if math.isfinite(radius) else torch.ones_like(norms)
    spectral = torch.linalg.matrix_norm(Zc, ord=2) * s.norm(dim=-1)
    rows = (norms * s).sum(-1)
    return float(torch.minimum(spectral, rows).max()) / Zc.shape[-2]


def _geomspace(lo: float, hi: float, n: int) -> torch.Tensor:
    """n geometric points from lo to hi with exact end points (float64)."""
    out = torch.logspace(math.log10(lo), math.log10(hi), n, dtype=torch.float64)
    out[0], out[-1] = lo, hi
    return out


class _ValidationLoss:
    """Upper level f(x, y) = (1/m) sum_l psi(c_l z_l'y) (SID Sec. 6, validation loss); needs ``self.Zc``."""

    def _f(self, x, y):
        return _psi(_mv(self.Zc, y)).mean(-1)

    def _grad_x_f(self, x, y):
        return torch.zeros_like(x)

    def _grad_y_f(self, x, y):
        return _mtv(self.Zc, _psi1(_mv(self.Zc, y))) / self.Zc.shape[-2]


# ====================================================================== logistic-upper
@register
class LogisticUpper(_ValidationLoss, QuadraticLowerLevel, BilevelProblem):
    """Ridge regression (targets linear in x) below, validation logistic loss above; exact kappa."""

    name = "logistic-upper"
    summary = ("g = ridge loss 1/(2n)||Xy - Cx - t0||^2 + lam/2||y||^2 (- x-only term), f = validation "
               "logistic loss; exact kappa, tau = rho = 0, M global")
    param_doc = {
        "dim_x": (5, "dimension of x"),
        "dim_y": (5, "dimension of y (ridge weights)"),
        "kappa": (10.0, "L/mu, exact: spectrum of X'X/n + lam I is geomspace(mu, L)"),
        "L": (1.0, "largest eigenvalue of grad_yy g = joint smoothness constant"),
        "coupling": (1.0, "s in b_i = s sqrt(L(L-a_i)), 0 <= s <= 1 (B = X'C/n)"),
        "ridge": (0.5, "ridge parameter lam as a fraction of mu, 0 < ridge < 1"),
        "w": (1.0, "smoothness of f as a fraction of L, 0 < w <= 1 (||Z||^2/(4m) = wL)"),
        "n_train": (20, "training examples n (>= dim_y)"),
        "n_val": (20, "validation examples m"),
    }

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, L=1.0, coupling=1.0, ridge=0.5, w=1.0, n_train=20, n_val=20):
        super().__init__(dim_x=5 if dim_x is None else dim_x, dim_y=5 if dim_y is None else dim_y,
                         batch=batch, dtype=dtype, device=device, seed=seed)
        dt = self.dtype
        self.kappa = check_kappa("kappa", 10.0 if kappa is None else kappa, dt)
        self.L = check_scale("L", L, dt)
        self.coupling = check_real("coupling", coupling, minimum=0.0, maximum=1.0)
        self.ridge = check_real("ridge", ridge, minimum=0.0, strict_min=True)
        if self.ridge >= 1.0:
            raise ValueError(f"ridge must be < 1 (lam = ridge * mu < mu keeps X full rank), got {self.ridge}")
        self.w = check_scale("w", w, dt, maximum=1.0)
        self.n_train = check_count("n_train", n_train, dt, minimum=self.dim_y)
        self.n_val = check_count("n_val", n_val, dt)
        if self.dim_y < 2 and self.kappa != 1.0:
            raise ValueError(f"dim_y must be >= 2 for kappa={self.kappa} > 1 (mu and L both attained)")
        self.mu = self.L / self.kappa
        self.lam = self.ridge * self.mu
        self._build()
        self._constants = self._make_constants()

    def family_params(self):
        return {"kappa": self.kappa, "L": self.L, "coupling": self.coupling, "ridge": self.ridge,
                "w": self.w, "n_train": self.n_train, "n_val": self.n_val}

    def _build(self):
        dx, dy, n = self.dim_x, self.dim_y, self.n_train
        k = min(dx, dy)
        a = _geomspace(self.mu, self.L, dy)
        b = self.coupling * torch.sqrt((self.L * (self.L - a[:k])).clamp_min(0.0))
        data = {key: [] for key in ("A", "A_inv", "B", "e", "X", "C", "t0", "Zc")}
        for r in range(self.R):
            gen = self.instance_generator(r)
            U, V, W = random_orthogonal(dy, gen), random_orthogonal(dx, gen), random_orthogonal(n, gen)
            X = math.sqrt(n) * (W[:, :dy] * torch.sqrt(a - self.lam)) @ U.T
            B = (U[:, :k] * b) @ V[:, :k].T
            teacher = torch.randn(dy, generator=gen, dtype=torch.float64)
            t0 = X @ teacher + torch.randn(n, generator=gen, dtype=torch.float64)
            parts = {"A": _symmetric((U * a) @ U.T), "A_inv": (U / a) @ U.T, "B": B, "e": X.T @ t0 / n, "X": X,
                     "C": X @ ((U / (a - self.lam)) @ U.T) @ B, "t0": t0,
                     "Zc": _validation_data(gen, self.n_val, teacher, self.w * self.L)}
            for key, value in parts.items():
                data[key].append(value)
        self.spectrum = a
        for key, values in data.items():
            setattr(self, key, self._t(torch.stack(values)))
        self._AB = self._stack_lower(self.A, self.B)
        self._Zc64 = torch.stack(data["Zc"])

    def _make_constants(self) -> Constants:
        M = _gradient_bound(self._Zc64, math.inf)
        regions = {
            "L": "global, exact and attained: top of grad_yy g = joint norm of grad^2 g; f: L_f = wL",
            "mu": "global, attained (smallest eigenvalue of X'X/n + lam I)",
            "M": "global bound (logistic loss is 1-Lipschitz; sup approached only at infinity)",
            "tau": "global, exact (grad_x grad_y g = -B' is constant)",
            "rho": "global, exact (grad_yy g = A is constant)",
            "L_phi": "Lemma 2 with the constants above (global)",
        }
        return Constants(L=self.L, mu=self.mu, kappa=self.kappa, M=M, tau=0.0, rho=0.0,
                         L_phi=lemma2_L_phi(self.L, self.mu, M, 0.0, 0.0), regions=regions,
                         extra={"L_yy": self.L, "L_f": self.w * self.L, "ridge_lam": self.lam,
                                "y_star_lipschitz": self.coupling * math.sqrt(self.L * (self.L - self.mu))
                                / self.mu})

    def ridge_loss(self, x, y):
        """The ridge-regression loss 1/(2n)||X y - C x - t0||^2 + lam/2 ||y||^2 (equals g(x, y) plus
        1/(2n)||C x + t0||^2, a function of x alone; module docstring)."""
        xb, yb, sq = self._xy(x, y)
        res = _mv(self.X, yb) - _mv(self.C, xb) - self.t0
        return self._out(0.5 * (res * res).mean(-1) + 0.5 * self.lam * (yb * yb).sum(-1), sq)

    # The lower level is the quadratic family's g = 1/2 y'Ay - y'(Bx + e) with the same A, A_inv, B, e (and
    # _AB) attributes, and grad Phi = grad_x f + B' A^-1 grad_y f(y*) is its formula too: reuse its closed
    # forms (second order from the shared QuadraticLowerLevel).
    _g = Quadratic._g
    _grad_x_g = Quadratic._grad_x_g
    _grad_y_g = Quadratic._grad_y_g
    _y_star = Quadratic._y_star
    _hypergradient = Quadratic._hypergradient

    def _attained(self, rtol):
        return {"mu": bool(self.spectrum[0] == self.mu), "L": bool(self.spectrum[-1] == self.L)}


# ====================================================================== logistic-lower
@register
class LogisticLower(_ValidationLoss, BilevelProblem):
    """l2-regularised logistic regression below (lam = exp(x), one or many parameters), validation
    logistic loss above: the SID paper's experiment (Sec. 6) on synthetic data with exact constants."""

    name = "logistic-lower"
    summary = ("g = (1/n) sum psi(b_i a_i'y) + 1/2 sum exp(x_k(j)) y_j^2, f = validation logistic loss "
               "(SID Sec. 6); exact L, mu, tau, rho on a declared box x ball")
    param_doc = {
        "dim_x": (1, "number of regularisation parameters n_reg (1 <= dim_x <= dim_y; groups of y)"),
        "dim_y": (5, "dimension of y (logistic-regression weights), >= 2"),
        "kappa": (10.0, "L/mu over the region, exact; mu = exp(x_min) = L/kappa, must exceed 1/reg_share"),
        "L": (1.0, "joint smoothness = top of grad_yy g = lam_max + K"),
        "reg_share": (0.25, "lam_max/L = exp(x_max)/L, 0 < reg_share < 1 (the rest, K, is data curvature)"),
        "w": (1.0, "smoothness of f as a fraction of L, 0 < w <= 1"),
        "n_train": (None, "training examples n >= 2 (dim_y - 1) (default 8 (dim_y - 1))"),
        "n_val": (None, "validation examples m (default 8 dim_y)"),
        "radius": (None, "radius r of the y-ball of the region (default: largest r with joint L exact)"),
    }
    _NEWTON_MAX = 60

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, L=1.0, reg_share=0.25, w=1.0, n_train=None, n_val=None, radius=None):
        super().__init__(dim_x=1 if dim_x is None else dim_x, dim_y=5 if dim_y is None else dim_y,
                         batch=batch, dtype=dtype, device=device, seed=seed)
        if self.dim_y < 2:
            raise ValueError(f"dim_y must be >= 2 (one dead and one data direction), got {self.dim_y}")
        if self.dim_x > self.dim_y:
            raise ValueError(f"dim_x (number of regularisation parameters) must be <= dim_y={self.dim_y}, "
                             f"got {self.dim_x}")
        dt = self.dtype
        self.kappa = check_kappa("kappa", 10.0 if kappa is None else kappa, dt)
        self.L = check_scale("L", L, dt)
        self.reg_share = check_real("reg_share", reg_share, minimum=0.0, strict_min=True)
        if self.reg_share >= 1.0:
            raise ValueError(f"reg_share must be < 1 (K = (1 - reg_share) L > 0), got {self.reg_share}")
        self.w = check_scale("w", w, dt, maximum=1.0)
        nd = self.dim_y - 1
        self.n_train = check_count("n_train", 8 * nd if n_train is None else n_train, dt, minimum=2 * nd)
        self.n_val = check_count("n_val", 8 * self.dim_y if n_val is None else n_val, dt)
        self.lam_max = self.reg_share * self.L
        self.mu = self.L / self.kappa
        if self.mu >= self.lam_max:
            raise ValueError(f"kappa must be > 1/reg_share = {1 / self.reg_share:.6g} (x_min < x_max), "
                             f"got {self.kappa}")
        self.K = self.L - self.lam_max
        self.x_min, self.x_max = math.log(self.mu), math.log(self.lam_max)
        self._design()
        self.radius_max = self._max_radius()
        if radius is None:
            radius = math.floor(self.radius_max * 1e6) / 1e6
        self.radius = check_real("radius", radius, minimum=0.0, strict_min=True, maximum=self.radius_max)
        if self.y_star_bound > self.radius:
            raise ValueError(f"radius={self.radius:.6g} must be >= {self.y_star_bound:.6g}, the bound on "
                             f"||y*(x)|| over the box (for the defaults lower reg_share or raise n_train)")
        self.last_newton_residual = math.nan
        self.last_newton_iterations = 0
        self._build()
        self._constants = self._make_constants()

    def family_params(self):
        return {"kappa": self.kappa, "L": self.L, "reg_share": self.reg_share, "w": self.w,
                "n_train": self.n_train, "n_val": self.n_val, "radius": self.radius}

    # ------------------------------------------------------------------ design (deterministic)
    def _design(self):
        """Per data direction i: curvature share q_i (top last), count m_i, scale alpha_i, label clamp lo_i."""
        nd, n = self.dim_y - 1, self.n_train
        q = [1.0] if nd == 1 else _geomspace(_Q_MIN, _Q_GAP, nd - 1).tolist() + [1.0]
        self.q = q
        self.counts = [n // nd + (i < n % nd) for i in range(nd)]
        self.alphas = [math.sqrt(4 * n * self.K * qi / mi) for qi, mi in zip(q, self.counts, strict=True)]
        self.label_lo = [max(1, (3 * mi) // 8) for mi in self.counts]
        self.gap = self.K * (1.0 - (_Q_GAP if nd >= 2 else 0.0))
        # |yt*_i| <= |log(n+/n-)|/alpha_i for every lam >= 0 (the unregularised optimum).
        self.y_star_bound = math.sqrt(sum((math.log((mi - lo) / lo) / al) ** 2 for mi, lo, al
                                          in zip(self.counts, self.label_lo, self.alphas, strict=True)))

    def schur_bound(self, r: float) -> float:
        """S(r) of the module docstring: ||grad^2 g|| <= L on the region whenever S(r) <= L."""
        if r == 0.0:
            return 0.0
        lm, a = self.lam_max, self.alphas[-1]
        return lm * r * r / 2 + lm * lm * (r * r / (self.K * math.tanh(a * r / 2) ** 2) + r * r / self.gap)

    def _max_radius(self) -> float:
        """Largest r with S(r) <= L (S increases in r), by bisection to relative 1e-12."""
        if self.schur_bound(1e-12) > self.L:
            raise ValueError(f"reg_share={self.reg_share} is too large: the joint Hessian of g exceeds L at "
                             f"any y != 0 (lower reg_share)")
        lo, hi = 0.0, 1.0
        while self.schur_bound(hi) <= self.L:
            lo, hi = hi, 2 * hi
        while hi - lo > 1e-12 * hi:
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if self.schur_bound(mid) <= self.L else (lo, mid)
        return lo

    # ------------------------------------------------------------------ data
    def _groups(self) -> list[list[int]]:
        """Contiguous groups of y coordinates sharing one regularisation parameter: j in G_k iff
        floor(j dim_x / dim_y) = k."""
        out = [[] for _ in range(self.dim_x)]
        for j in range(self.dim_y):
            out[j * self.dim_x // self.dim_y].append(j)
        return out

    def _instance_data(self, gen):
        dy, nd = self.dim_y, self.dim_y - 1
        perm = torch.randperm(dy, generator=gen).tolist()  # perm[0]: dead direction, perm[-1]: top
        U = torch.zeros(dy, dy, dtype=torch.float64)
        for grp in self._groups():
            U[grp[0]: grp[-1] + 1, grp[0]: grp[-1] + 1] = random_orthogonal(len(grp), gen)
        teacher = torch.randn(dy, generator=gen, dtype=torch.float64)  # in the U basis
        rows, labels = [], []
        for i in range(nd):
            j, m, al, lo = perm[i + 1], self.counts[i], self.alphas[i], self.label_lo[i]
            draws = torch.rand(m, generator=gen, dtype=torch.float64) < torch.sigmoid(al * teacher[j])
            n_pos = min(max(int(draws.sum()), lo), m - lo)
            rows.append((al * U[:, j]).expand(m, dy))
            labels.append(torch.tensor([1.0] * n_pos + [-1.0] * (m - n_pos), dtype=torch.float64))
        Xb = torch.cat(labels).unsqueeze(-1) * torch.cat(rows)
        Xb = Xb[torch.randperm(self.n_train, generator=gen)]  # mixed rows for mini-batches
        Zc = _validation_data(gen, self.n_val, U @ teacher, self.w * self.L)
        return Xb, Zc, U[:, perm[0]], U[:, perm[-1]]

    def _build(self):
        parts = [self._instance_data(self.instance_generator(r)) for r in range(self.R)]
        Xb, Zc, dead, top = (torch.stack(t) for t in zip(*parts, strict=True))
        self._Zc64 = Zc
        self.Xb, self.Zc, self.dead_direction, self.top_direction = (self._t(t) for t in (Xb, Zc, dead, top))
        P = torch.zeros(self.dim_y, self.dim_x, dtype=torch.float64)
        for k, grp in enumerate(self._groups()):
            P[grp, k] = 1.0
        self.P = self._t(P)  # (dim_y, dim_x): lam(x) = P exp(x)

    def _make_constants(self) -> Constants:
        r, lm = self.radius, self.lam_max
        c = max((mi / self.n_train) * al ** 3 * psi3_max_on(al * r) for mi, al in zip(self.counts, self.alphas,
                                                                                          strict=True))
        tau, rho = lm * math.sqrt(1 + r * r), math.sqrt(lm * lm + c * c)
        M = _gradient_bound(self._Zc64, r)
        x_lo = torch.full((self.R, self.dim_x), self.x_min, dtype=self.dtype, device=self.device)
        y_sup = float(self._y_star(x_lo).norm(dim=-1).max())
        box = (f"Omega = [{self.x_min:.6g}, {self.x_max:.6g}]^{self.dim_x} x {{||y|| <= {r:.6g}}}")
        regions = {
            "L": f"exact on {box}: top of grad_yy g (lam_max + K), attained at (x_max 1, 0); the joint "
                 f"||grad^2 g|| <= L there by the Schur bound S(r) <= L; f: L_f = wL",
            "mu": "exact on the box (any y): exp(x_min), attained at x = x_min 1 (dead direction)",
            "kappa": "L/mu = sup lambda_max / inf lambda_min of grad_yy g over the region (exact); at one x "
                     "the condition number is at most (exp(max x) + K)/exp(min x)",
            "M": f"bound on {box} (f depends on y only)",
            "tau": f"exact Lipschitz constant on {box} (attained at x = x_max 1, ||y_G|| = r)",
            "rho": f"exact Lipschitz constant on {box} (logistic |psi'''| <= 1/(6 sqrt 3))",
            "L_phi": "Lemma 2 with the constants above (on the region)",
            "y": f"y*(x) lies in the ball for every x of the box: sup ||y*|| = {y_sup:.6g} <= {r:.6g}",
        }
        return Constants(L=self.L, mu=self.mu, kappa=self.kappa, M=M, tau=tau, rho=rho,
                         L_phi=lemma2_L_phi(self.L, self.mu, M, tau, rho), regions=regions,
                         extra={"L_yy": self.L, "L_f": self.w * self.L, "K": self.K, "lam_max": lm,
                                "x_min": self.x_min, "x_max": self.x_max, "radius": r,
                                "radius_max": self.radius_max, "schur_bound": self.schur_bound(r),
                                "y_star_sup": y_sup, "y_star_bound": self.y_star_bound})

    # ------------------------------------------------------------------ region
    def default_x0(self) -> torch.Tensor:
        """Starting point used by sweeps: the centre of the box (x = 0 lies outside it)."""
        return torch.full_like(super().default_x0(), 0.5 * (self.x_min + self.x_max))

    def region_radius(self) -> float:
        """Radius r of the y-ball of the region; x lives in the box [x_min, x_max]^dim_x (see regions)."""
        return self.radius

    def sample_region(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points per instance, uniform in the region: x in the box, y in the ball of radius r."""
        u = torch.rand(n, self.R, self.dim_x, generator=generator, dtype=torch.float64)
        x = self.x_min + (self.x_max - self.x_min) * u
        y = torch.randn(n, self.R, self.dim_y, generator=generator, dtype=torch.float64)
        rad = self.radius * torch.rand(n, self.R, 1, generator=generator, dtype=torch.float64) ** (1 / self.dim_y)
        return self._t(x), self._t(y / y.norm(dim=-1, keepdim=True) * rad)

    def _attained(self, rtol):
        """mu at x = x_min 1 and L at (x_max 1, 0), read off the computed Hessian spectra."""
        y0 = torch.zeros(self.R, self.dim_y, dtype=self.dtype, device=self.device)
        out = {}
        for key, xv, idx, target in (("mu", self.x_min, 0, self.mu), ("L", self.x_max, -1, self.L)):
            x = torch.full((self.R, self.dim_x), xv, dtype=self.dtype, device=self.device)
            eig = torch.linalg.eigvalsh(self._hess_yy(x, y0))[..., idx]
            out[key] = bool(((eig - target).abs() <= rtol * self.L).all())
        return out

    # ------------------------------------------------------------------ closed forms
    def _lam(self, x):
        return _mv(self.P, torch.exp(x))

    def _g(self, x, y):
        return _psi(_mv(self.Xb, y)).mean(-1) + 0.5 * (self._lam(x) * y * y).sum(-1)

    def _grad_x_g(self, x, y):
        return 0.5 * torch.exp(x) * _mtv(self.P, y * y)

    def _grad_y_g(self, x, y):
        return _mtv(self.Xb, _psi1(_mv(self.Xb, y))) / self.n_train + self._lam(x) * y

    def _hvp(self, x, y, v):
        d = _psi2(_mv(self.Xb, y))
        return _mtv(self.Xb, d * _mv(self.Xb, v)) / self.n_train + self._lam(x) * v

    def _jvp(self, x, y, v):
        return torch.exp(x) * _mtv(self.P, y * v)

    def _hess_yy(self, x, y):
        d = _psi2(_mv(self.Xb, y)).unsqueeze(-1)
        return self.Xb.transpose(-1, -2) @ (self.Xb * d) / self.n_train + torch.diag_embed(self._lam(x))

    def _jac_xy(self, x, y):
        return torch.exp(x).unsqueeze(-1) * self.P.T * y.unsqueeze(-2)

    # ------------------------------------------------------------------ truth
    def _y_star(self, x):
        """y*(x) by Newton's method with Armijo backtracking from y = 0 (g strongly convex: global,
        quadratic locally); stops after the second step with ||step|| <= sqrt(eps)(1 + ||y||): by quadratic
        convergence the step after the first such one lands at round-off.
        Records ``last_newton_residual`` = max ||grad_y g(x, y*)|| and ``last_newton_iterations``."""
        y = torch.zeros(x.shape[0], self.dim_y, dtype=x.dtype, device=x.device)
        tol = math.sqrt(torch.finfo(x.dtype).eps)
        small = it = 0
        while it < self._NEWTON_MAX:
            it += 1
            grad = self._grad_y_g(x, y)
            step = torch.linalg.solve(self._hess_yy(x, y), grad.unsqueeze(-1)).squeeze(-1)
            y = y - self._armijo(x, y, step, (grad * step).sum(-1)).unsqueeze(-1) * step
            if bool((step.norm(dim=-1) <= tol * (1 + y.norm(dim=-1))).all()):
                small += 1
                if small == 2:
                    break
        self.last_newton_iterations = it
        self.last_newton_residual = float(self._grad_y_g(x, y).norm(dim=-1).max())
        return y

    def _armijo(self, x, y, step, decrement):
        """Per-instance step length t in {1, 1/2, ...}: g(y - t step) <= g(y) - t decrement / 4; the full
        step once the Newton decrement is below round-off of g (no decrease left to measure)."""
        g0 = self._g(x, y)
        t = torch.ones_like(g0)
        done = decrement <= 1e3 * torch.finfo(y.dtype).eps * (1 + g0.abs())
        for _ in range(60):
            done = done | (self._g(x, y - t.unsqueeze(-1) * step) <= g0 - 0.25 * t * decrement)
            if bool(done.all()):
                break
            t = torch.where(done, t, 0.5 * t)
        return t

    def _hypergradient(self, x):
        """grad Phi = grad_x f - grad_x grad_y g v = -grad_x grad_y g v, grad_yy g v = grad_y f at y*(x)
        (ICML 2021 Prop. 1, eq. 4; exact implicit differentiation, dense solve)."""
        y = self._y_star(x)
        v = torch.linalg.solve(self._hess_yy(x, y), self._grad_y_f(x, y).unsqueeze(-1)).squeeze(-1)
        return self._grad_x_f(x, y) - self._jvp(x, y, v)
