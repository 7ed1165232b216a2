"""The ``quadratic`` family: a quadratic lower level with exactly known spectrum and coupling.

Construction (ours; every constant exact):
  A = U diag(a) U',  a_i = geomspace(mu, L) (a_1 = mu, a_dy = L, so kappa = L/mu exactly);
  B = U[:, :k] diag(b) V[:, :k]',  k = min(dim_x, dim_y),  b_i = s sqrt(L (L - a_i)),  s in [0, 1];
  g(x, y) = 1/2 y'Ay - y'(Bx + e);
  f(x, y) = w/2 ||y - c||^2 + h(x),  h(x) = lam/2 ||x - x_c||^2 + nc sum_i s(x_i - x_c,i),
  s(t) = t^2/(1 + t^2) (smooth, bounded, s'' in [-1/2, 2], |s'| <= 9/(8 sqrt 3));
  e = A c - B x_c, so that y*(x_c) = c.
Then y*(x) = A^-1 (B x + e), Phi(x) = w/2 ||A^-1 B (x - x_c)||^2 + h(x) >= 0 = Phi(x_c): inf Phi = 0.
The joint Hessian of g is [[0, -B'], [-B, A]]; on each coupled pair its eigenvalues are
(a +- sqrt(a^2 + 4 b^2))/2, which lie in [a - L, L] because b^2 <= L (L - a): ||grad^2 g|| = L exactly.
f's joint Hessian is blockdiag(lam + nc s''(.), w I): norm max(w, lam + 2 nc, |lam - nc/2|) <= L is
required. tau = rho = 0 (all second derivatives constant). Phi is nonconvex when nc > 2 lam and some x
direction is weakly coupled (always so for the direction paired with a = L, where b = 0).
The mu-direction is coupled with b = s sqrt(L (L - mu)) so ||grad y*|| = s sqrt(L (L - mu))/mu ~ kappa,
the worst case that the papers' kappa powers describe.
"""

from __future__ import annotations

import math

import torch

from ._validate import check_kappa, check_real, check_scale
from .base import BilevelProblem, Constants, lemma2_L_phi, register

__all__ = ["Quadratic", "random_orthogonal"]

_S_PRIME_MAX = 9.0 / (8.0 * math.sqrt(3.0))  # max_t |d/dt t^2/(1+t^2)|, at t^2 = 1/3


def random_orthogonal(n: int, generator: torch.Generator) -> torch.Tensor:
    """Haar-distributed orthogonal n x n matrix (QR of a Gaussian matrix, signs fixed), float64 CPU."""
    q, r = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).unsqueeze(0)


def _symmetric(M: torch.Tensor) -> torch.Tensor:
    """(M + M')/2: U diag(a) U' formed by a product is symmetric only up to round-off; stored exactly
    symmetric, A v and v'A are the same vector (``QuadraticLowerLevel._smv``)."""
    return 0.5 * (M + M.T)


def _bounded(t):
    return t * t / (1 + t * t)


def _bounded_prime(t):
    return 2 * t / (1 + t * t) ** 2


class QuadraticLowerLevel:
    """Second-order closed forms of a lower level g(x, y) = 1/2 y'Ay - y'Bx + (terms linear in y or free of
    y): grad_yy g = A, grad_x grad_y g = -B' (shared by ``quadratic`` and ``itd-lower-bound``; subclasses
    hold ``A`` and ``B``)."""

    # The hot path of every oracle: (R, m, n) matrices times (R, n) vectors go straight to bmm (matmul's
    # broadcasting wrapper adds about five dispatches, ~10 us per call on the CPU); other shapes broadcast.
    @staticmethod
    def _mv(Mat, v):
        """Mat v: (..., m, n), (..., n) -> (..., m)."""
        if Mat.dim() == 3 and v.dim() == 2 and Mat.shape[0] == v.shape[0]:
            return torch.bmm(Mat, v.unsqueeze(2)).squeeze(2)
        return torch.matmul(Mat, v.unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def _mtv(Mat, v):
        """Mat' v: (..., m, n), (..., m) -> (..., n)."""
        if Mat.dim() == 3 and v.dim() == 2 and Mat.shape[0] == v.shape[0]:
            return torch.bmm(v.unsqueeze(1), Mat).squeeze(1)
        return torch.matmul(v.unsqueeze(-2), Mat).squeeze(-2)

    # Row form: for a symmetric H, H v is computed as v'H when R > 1. MKL's batched row-vector-times-matrix
    # reads the matrices 1.4-6x faster than its batched matrix-vector form (R x d = 256 x 256: 7.9 against
    # 11.3 ms; 16 x 256: 0.11 against 0.67 ms; 4 x 1024: 0.69 against 2.9 ms, 2-core CPU), and batched HVPs
    # are bandwidth-bound; for one matrix (R = 1) the matrix-vector form is ~10% faster. H is stored
    # exactly symmetric (``_symmetric``), so both forms compute the same vector.
    @staticmethod
    def _smv(Sym, v):
        """Sym v for an exactly symmetric Sym (row form v'Sym for a batch of matrices)."""
        if Sym.dim() == 3 and Sym.shape[0] == 1:
            return QuadraticLowerLevel._mv(Sym, v)
        return QuadraticLowerLevel._mtv(Sym, v)

    @staticmethod
    def _stack_lower(H, B):
        """[H; -B'] (R, dy + dx, dy), contiguous: ``_lower_grad`` reads it once in the row form. The sign is
        stored so that the vector is (y; x), one cat and no negation per call (negation is exact, so the
        products and their sums are bitwise those of H y - B x)."""
        return torch.cat([H, -B.transpose(-1, -2)], -2).contiguous()

    @staticmethod
    def _lower_grad(HB, x, y):
        """H y - B x = ((y; x)'[H; -B'])' for HB = ``_stack_lower(H, B)``: one matrix read, one product."""
        return QuadraticLowerLevel._mtv(HB, torch.cat([y, x], -1))

    def _hvp(self, x, y, v):
        return self._smv(self.A, v)

    def _jvp(self, x, y, v):
        return -self._mtv(self.B, v)

    def _hess_yy(self, x, y):
        return self.A.expand(x.shape[0], -1, -1)

    def _jac_xy(self, x, y):
        return -self.B.transpose(-1, -2).expand(x.shape[0], -1, -1)


@register
class Quadratic(QuadraticLowerLevel, BilevelProblem):
    """Quadratic lower level with exact spectrum [mu, L]; quadratic (optionally nonconvex) upper level."""

    name = "quadratic"
    summary = "g = 1/2 y'Ay - y'(Bx+e), f = w/2||y-c||^2 + h(x); exact kappa, tau = rho = 0, inf Phi = 0"
    param_doc = {
        "dim_x": (10, "dimension of x"),
        "dim_y": (10, "dimension of y"),
        "kappa": (10.0, "L/mu, exact: spectrum of A is geomspace(mu, L)"),
        "L": (1.0, "largest eigenvalue of A = joint smoothness constant"),
        "coupling": (1.0, "s in b_i = s sqrt(L(L-a_i)), 0 <= s <= 1"),
        "w": (1.0, "weight of the upper-level term w/2||y - c||^2 (<= L)"),
        "lam": (0.0, "ridge lam/2||x - x_c||^2 in h"),
        "nonconvex": (0.0, "nc, weight of the bounded nonconvex term (lam + 2 nc <= L)"),
        "radius": (None, "radius of the ball in z where M is declared (default from the instance)"),
    }

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, L=1.0, coupling=1.0, w=1.0, lam=0.0, nonconvex=0.0, radius=None):
        super().__init__(dim_x=10 if dim_x is None else dim_x, dim_y=10 if dim_y is None else dim_y,
                         batch=batch, dtype=dtype, device=device, seed=seed)
        kappa = 10.0 if kappa is None else kappa
        dt = self.dtype
        self.kappa = check_kappa("kappa", kappa, dt)
        self.L = check_scale("L", L, dt)
        self.coupling = check_real("coupling", coupling, minimum=0.0, maximum=1.0)
        self.w = check_scale("w", w, dt, positive=False, maximum=self.L)
        self.lam = check_scale("lam", lam, dt, positive=False)
        self.nc = check_scale("nonconvex", nonconvex, dt, positive=False)
        if self.lam + 2 * self.nc > self.L or abs(self.lam - self.nc / 2) > self.L:
            raise ValueError(f"lam + 2*nonconvex must be <= L={self.L} (f must be L-smooth), got "
                             f"lam={self.lam}, nonconvex={self.nc}")
        if self.dim_y < 2 and self.kappa != 1.0:
            raise ValueError(f"dim_y must be >= 2 for kappa={self.kappa} > 1 (mu and L both attained)")
        self.mu = self.L / self.kappa
        self._build()
        self.radius = (check_scale("radius", radius, dt) if radius is not None else self._default_radius())
        self.phi_star = 0.0
        self._constants = self._make_constants()

    def family_params(self):
        return {"kappa": self.kappa, "L": self.L, "coupling": self.coupling, "w": self.w,
                "lam": self.lam, "nonconvex": self.nc, "radius": self.radius}

    # ------------------------------------------------------------------ data
    def _build(self):
        dx, dy, k = self.dim_x, self.dim_y, min(self.dim_x, self.dim_y)
        a = torch.logspace(math.log10(self.mu), math.log10(self.L), dy, dtype=torch.float64)
        a[0], a[-1] = self.mu, self.L  # exact end points, not logspace's round-off
        b = self.coupling * torch.sqrt((self.L * (self.L - a[:k])).clamp_min(0.0))
        As, Ainvs, Bs, cs, xcs, es = [], [], [], [], [], []
        for r in range(self.R):
            gen = self.instance_generator(r)
            U = random_orthogonal(dy, gen)
            V = random_orthogonal(dx, gen)
            A = _symmetric((U * a) @ U.T)
            B = (U[:, :k] * b) @ V[:, :k].T
            c = torch.randn(dy, generator=gen, dtype=torch.float64) / math.sqrt(dy)
            xc = torch.randn(dx, generator=gen, dtype=torch.float64) / math.sqrt(dx)
            As.append(A)
            Ainvs.append((U / a) @ U.T)
            Bs.append(B)
            cs.append(c)
            xcs.append(xc)
            es.append(A @ c - B @ xc)
        self.spectrum = a
        self.A, self.A_inv, self.B = (self._t(torch.stack(t)) for t in (As, Ainvs, Bs))
        self._AB = self._stack_lower(self.A, self.B)
        self.c, self.x_opt, self.e = (self._t(torch.stack(t)) for t in (cs, xcs, es))

    def _default_radius(self) -> float:
        # A ball that holds x0 = 0, x_c, y*(0), c and the segment between them with margin.
        ys0 = self._y_star(torch.zeros(self.R, self.dim_x, dtype=self.dtype, device=self.device))
        big = max(float(self.x_opt.norm(dim=-1).max()), float(self.c.norm(dim=-1).max()),
                  float(ys0.norm(dim=-1).max()))
        return 2.0 * big + 1.0

    def _make_constants(self) -> Constants:
        rad = self.radius
        xc_n = float(self.x_opt.norm(dim=-1).max())
        c_n = float(self.c.norm(dim=-1).max())
        gx = self.lam * (rad + xc_n) + self.nc * _S_PRIME_MAX * math.sqrt(self.dim_x)
        M = math.hypot(gx, self.w * (rad + c_n))
        L_f = max(self.w, self.lam + 2 * self.nc, abs(self.lam - self.nc / 2))
        y_lip = self.coupling * math.sqrt(self.L * (self.L - self.mu)) / self.mu  # ||grad y*|| exactly
        regions = {
            "L": "global (grad g: exact, attained; grad f: L_f <= L)",
            "mu": "global, attained (smallest eigenvalue of A)",
            "M": f"bound on the ball ||(x, y)|| <= {rad:.6g} (f is not globally Lipschitz)",
            "tau": "global, exact (grad_x grad_y g = -B' is constant)",
            "rho": "global, exact (grad_yy g = A is constant)",
            "L_phi": "Lemma 2 with the constants above (on the ball)",
        }
        return Constants(L=self.L, mu=self.mu, kappa=self.kappa, M=M, tau=0.0, rho=0.0,
                         L_phi=lemma2_L_phi(self.L, self.mu, M, 0.0, 0.0), regions=regions,
                         extra={"L_f": L_f, "radius": rad, "w": self.w, "lam": self.lam, "nc": self.nc,
                                "y_star_lipschitz": y_lip})

    def region_radius(self) -> float:
        return self.radius

    # ------------------------------------------------------------------ closed forms
    def _h(self, x):
        t = x - self.x_opt
        return 0.5 * self.lam * (t * t).sum(-1) + self.nc * _bounded(t).sum(-1)

    def _f(self, x, y):
        d = y - self.c
        return 0.5 * self.w * (d * d).sum(-1) + self._h(x)

    def _g(self, x, y):
        return 0.5 * (y * self._mv(self.A, y)).sum(-1) - (y * (self._mv(self.B, x) + self.e)).sum(-1)

    def _grad_x_f(self, x, y):
        t = x - self.x_opt
        if self.nc == 0:  # the nonconvex term vanishes identically: skip its five dispatches
            return self.lam * t
        return self.lam * t + self.nc * _bounded_prime(t)

    def _grad_y_f(self, x, y):
        return self.w * (y - self.c)

    def _grad_x_g(self, x, y):
        return -self._mtv(self.B, y)

    def _grad_y_g(self, x, y):
        return self._lower_grad(self._AB, x, y) - self.e

    def _y_star(self, x):
        return self._mv(self.A_inv, self._mv(self.B, x) + self.e)

    def _hypergradient(self, x):
        y = self._y_star(x)
        v = self._mv(self.A_inv, self._grad_y_f(x, y))
        return self._grad_x_f(x, y) + self._mtv(self.B, v)

    def _attained(self, rtol):
        return {"mu": bool(self.spectrum[0] == self.mu), "L": bool(self.spectrum[-1] == self.L)}

