"""Finite-sum families ``finite-sum-quadratic`` and ``finite-sum-logistic`` for the SOBA-framework solvers.

Bilevel empirical risk minimisation (Dagreou, Ablin, Vaiter, Moreau, NeurIPS 2022, eq. 1):
    min_x h(x) = F(z*(x), x),  F = (1/m) sum_{j<m} F_j,   z*(x) = argmin_z G(z, x),  G = (1/n) sum_{i<n} G_i,
with n lower-level and m upper-level samples. In this package's notation z is y, G is g, F is f; the
sample sets are the ones of ``stochastic-quadratic`` and ``stochastic-logistic`` (analytic/stochastic.py,
whose construction, exact means and exact variances these families reuse: n = n_g, m = n_f), so y*(x),
Phi = h and grad Phi are the quadratic family's closed forms, exact at every n, m >= dim_y. What the two
families add:

1. Oracles by sample index (``per_sample``): the value of each component of a mini-batch, (R, S, k), not
   their mean, so that SAGA memories (one entry per sample) and SARAH/STORM differences can be formed.
   Per sample (module docstring of stochastic.py; r_i = x_i'y - q_i'x, w_i = (-q_i; x_i)):
     grad_y G_i = H0 y - B x - e + t (r_i x_i - eps_i),       grad_x G_i = -t Gam x - B'y - t r_i q_i,
     grad_yy G_i v = H0 v + t x_i (x_i'v),                     grad_x grad_y G_i v = -B'v - t q_i (x_i'v),
     quadratic F_j: grad_y F_j = w [(1 - t_f) u + t_f a_j (a_j'u)] + l c (u = y - c), grad_x F_j = grad h + t_f xi_j,
     logistic F_j:  grad_y F_j = -b_j sigma(-b_j a_j'y) a_j,                          grad_x F_j = grad h.
   Memory is O((n + m) d): rank-one factors per sample, never a dense per-sample matrix (at n = m = 10^4,
   d = 100 an instance holds about 45 MB; the float64 construction copies are released).
2. The constants the SOBA/SABA/SRBA, MRBO/VRBO, F2SA/F2BA theorems are stated in (``constants.extra``;
   every number is the worst case over the batch of instances):
     mu_G = mu (every G_i is mu-strongly convex in y: ``mu_sample``);
     L_G_yy = L (population ||grad_yy g||, exact), L_G_yy_sample (= L_sample_yy, exact);
     L_G_xy = ||B||_2 = max_k b_k (population ||grad_x grad_y g||, exact), L_G_xy_sample: the bound
       ||B||_2 + t max_i ||q_i|| ||x_i|| (triangle inequality on B' + t q_i x_i');
     L_G_grad_y = ||[-B, A]||_2 (Lipschitz constant of grad_y g in (x, y), exact);
     L_G_hess = 0 (grad^2 G_i is constant for every sample: rho = tau = 0 per sample, exact);
     L_G_ms, L_Gy_ms, L_Gx_ms: mean-squared smoothness sup E_i ||D G_i(z) - D G_i(z')||^2 / ||z - z'||^2 of
       D = grad, grad_y, grad_x (z = (x, y)), EXACT: with J_i the joint Hessian of G_i and P a coordinate
       projection, E_i ||P J_i dz||^2 = dz' E_i[J_i P J_i] dz and, since E_i J_i = J (the mean) and
       J_i - J = t (w_i w_i' - Sig), Sig = E w_i w_i', E_i[J_i P J_i] = J P J + t^2 (E[(w_i'P w_i) w_i w_i']
       - Sig P Sig): the square root of its top eigenvalue;
     L_F (population joint smoothness of f, exact), L_F_sample (= L_sample_f), L_Fy_sample (per-sample
       smoothness of grad_y F_j, exact), L_F_ms (mean-squared smoothness of grad F_j, exact: the x block is
       sample-free with sup |h''| = L_hx, the y block is w^2 E[((1 - t_f) I + t_f a a')^2] (quadratic) or
       E[||a||^2 a a']/16 (logistic, attained at y = 0 where every sigma(1 - sigma) = 1/4));
     L_star = ||grad y*|| (= y_star_lipschitz, exact);
     L_h: smoothness of h = Phi. Quadratic family with nc = 0: Phi is quadratic, Hess Phi = lam I + w M'M
       + l (M'B + B'M) with M = A^-1 B, so L_h = max |eig| and mu_h = its smallest eigenvalue (the PL constant
       of SABA Thm 4 when positive) are exact; with nc > 0, L_h is the bound L_hx + w L_star^2 + 2 |l| L_star
       ||B|| and mu_h is not declared. Logistic family: the bound L_hx + w L_star^2 (grad_yy f <= w I);
     variances sigma2, sigma2_f, hess_var, jac_var as in stochastic.py; the exact variance of any oracle at
       a point, by enumeration over the samples: ``oracle_variance``.
3. The penalty function of the fully first-order methods (Kwon et al. 2023 Lemma 3.1; F2SA-p eq. 8):
     l_nu(x) = min_y nu f(x, y) + g(x, y),  y_nu(x) its minimiser (``penalty_solution``),
     grad_x l_nu(x) = nu grad_x f(x, y_nu) + grad_x g(x, y_nu) (envelope theorem; ``penalty_gradient``),
   with d/dnu l_nu(x) at 0 = Phi(x) and d/dnu grad_x l_nu(x) at 0 = grad Phi(x). nu f + g is strongly
   convex for nu > -mu/L_fy (L_fy the smoothness of f in y), negative nu included (central differences).
   Quadratic family: y_nu = (A + nu w I)^-1 (B x + e + nu (w c - l c)) in closed form (one solve);
   logistic family: damped Newton's method to round-off.
4. ``finite-sum-quadratic`` takes ``linear_y`` = l: every F_j gains the sample-free term l y'(c + B x), so
   with w = 0 the upper level is linear in y while grad_x f = grad h + l B'y still depends on y (F2SA-p: the
   forward difference in nu then errs exactly linearly in nu and the central difference is exact). The term
   adds l [[0, B'], [B, 0]] to the joint Hessians of f and F_j: L_f, L_F, L_F_sample, L_F_ms become bounds
   (+ |l| ||B||), required to keep L_f <= L; M grows accordingly; inf Phi is then not declared.
"""

from __future__ import annotations

import dataclasses
import math

import torch

from ._validate import check_int, check_real
from .base import MiniBatch, lemma2_L_phi, register
from .stochastic import StochasticLogistic, StochasticQuadratic

__all__ = ["FiniteSumQuadratic", "FiniteSumLogistic", "PER_SAMPLE"]

#: oracle name -> (sample set, takes a vector v)
PER_SAMPLE = {"grad_x_f": ("f", False), "grad_y_f": ("f", False), "grad_x_g": ("g", False),
              "grad_y_g": ("g", False), "hvp": ("g", True), "jvp": ("g", True)}
#: per-sample float64 construction tables: only read while the constants are computed
_PER_SAMPLE_TABLES = ("Xg", "Qg", "Eg", "Af", "Xif", "bf")


def _top_eig(S: torch.Tensor) -> torch.Tensor:
    """Largest eigenvalue of symmetric (R, D, D) matrices (R,)."""
    return torch.linalg.eigvalsh(0.5 * (S + S.transpose(-1, -2)))[..., -1]


class _FiniteSum:
    """Per-sample oracles, SOBA-framework constants and the penalty function (module docstring); mixed into a
    family of analytic/stochastic.py."""

    def _init_sizes(self, n, m, dim_y):
        n = check_int("n", n, minimum=1)
        m = check_int("m", m, minimum=1)
        dy = 10 if dim_y is None else dim_y
        for name, val in (("n", n), ("m", m)):
            if isinstance(dy, int) and val < dy:
                raise ValueError(f"{name} must be >= dim_y={dy} (the per-sample design has orthonormal columns "
                                 f"in R^{name}), got {name}={val}")
        return n, m

    def family_params(self):
        out = {k: v for k, v in super().family_params().items() if k not in ("n_g", "n_f")}
        return {**out, "n": self.n_g, "m": self.n_f}

    def _release_tables(self):
        """Drop the float64 per-sample construction copies (the oracles read the stored row tables)."""
        for key in _PER_SAMPLE_TABLES:
            self._d64.pop(key, None)

    # ------------------------------------------------------------------ samples by index
    def all_samples(self, which: str) -> torch.Tensor:
        """Every sample index once, (R, n) for ``'g'`` or (R, m) for ``'f'``: a mini-batch whose mean is the
        full-batch function (one full pass; a counted oracle charges n or m for it)."""
        n = self._n(which)
        return torch.arange(n, device=self.device).expand(self.R, n)

    def per_sample(self, name: str, x, y, idx, v=None) -> torch.Tensor:
        """The oracle ``name`` (one of PER_SAMPLE) of every component of the mini-batch idx, not their mean:
        (R, S, k) (or (S, k) unbatched) for x (R, dim_x), y (R, dim_y), idx (R, S) (a tensor or a MiniBatch)."""
        if name not in PER_SAMPLE:
            raise ValueError(f"name must be one of {sorted(PER_SAMPLE)}, got {name!r}")
        xb, yb, sq = self._xy(x, y)
        ib = idx.idx if isinstance(idx, MiniBatch) else idx
        if not isinstance(ib, torch.Tensor) or ib.dtype not in (torch.int64, torch.int32):
            raise TypeError("idx must be an integer index tensor or a MiniBatch")
        ib = ib.unsqueeze(0) if ib.dim() == 1 else ib
        if ib.dim() != 2 or ib.shape[0] != self.R:
            raise ValueError(f"idx must have shape (R={self.R}, S), got {tuple(ib.shape)}")
        n = self._n(PER_SAMPLE[name][0])
        if bool(((ib < 0) | (ib >= n)).any()):
            raise ValueError(f"idx holds indices outside [0, {n})")
        batch = idx if isinstance(idx, MiniBatch) else ib
        if PER_SAMPLE[name][1]:
            if v is None:
                raise ValueError(f"{name} needs a vector v")
            vb, _ = self._in("v", v, self.dim_y)
            out = getattr(self, f"_each_{name}")(xb, yb, vb, batch)
        else:
            out = getattr(self, f"_each_{name}")(xb, yb, batch)
        return out.squeeze(0) if sq else out

    def _each_grad_y_g(self, x, y, idx):
        """H0 y - B x - e + t (r_i x_i - eps_i) per sample (R, S, dy)."""
        t, dy, dx = self.noise, self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQE, idx)
        r = self._proj(rows[..., :dy + dx], torch.cat([y, x], -1))  # x_i'y - q_i'x, (R, S)
        base = torch.bmm(torch.cat([y, x, self._one], -1).unsqueeze(1), self._H0B)  # H0 y - B x - e, (R, 1, dy)
        return base + t * (r.unsqueeze(-1) * rows[..., :dy] - rows[..., dy + dx:])

    def _each_grad_x_g(self, x, y, idx):
        """-t Gam x - B'y - t r_i q_i per sample (the stored rows hold -q_i)."""
        t, dy, dx = self.noise, self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQE, idx)
        r = self._proj(rows[..., :dy + dx], torch.cat([y, x], -1))
        base = -t * self._mv(self.Gam, x) - self._mtv(self.B, y)
        return base.unsqueeze(1) + t * r.unsqueeze(-1) * rows[..., dy:dy + dx]

    def _each_hvp(self, x, y, v, idx):
        """H0 v + t x_i (x_i'v) per sample."""
        X = self._sample_rows(self.Xg, idx)
        return self._smv(self.H0, v).unsqueeze(1) + self.noise * self._proj(X, v).unsqueeze(-1) * X

    def _each_jvp(self, x, y, v, idx):
        """-B'v - t q_i (x_i'v) per sample."""
        dy, dx = self.dim_y, self.dim_x
        rows = self._sample_rows(self._XQ, idx)
        w = self._proj(rows[..., :dy], v)
        return -self._mtv(self.B, v).unsqueeze(1) + self.noise * w.unsqueeze(-1) * rows[..., dy:dy + dx]

    # ------------------------------------------------------------------ exact variances by enumeration
    def oracle_variance(self, name: str, x, y, v=None) -> torch.Tensor:
        """E_i ||o_i - mean_i o_i||^2 for the oracle ``name`` at (x, y) (and v), one uniform sample: exact, by
        enumeration over every sample (chunks of 4096); () or (R,)."""
        if name not in PER_SAMPLE:
            raise ValueError(f"name must be one of {sorted(PER_SAMPLE)}, got {name!r}")
        xb, yb, sq = self._xy(x, y)
        vb = self._in("v", v, self.dim_y)[0] if v is not None else None
        which = PER_SAMPLE[name][0]
        n = self._n(which)
        first = second = None
        for lo in range(0, n, 4096):
            idx = self.all_samples(which)[:, lo:lo + 4096]
            vals = self.per_sample(name, xb, yb, idx, vb)
            s1, s2 = vals.sum(1), (vals * vals).sum((1, 2))
            first, second = (s1, s2) if first is None else (first + s1, second + s2)
        mean = first / n
        return self._out(second / n - (mean * mean).sum(-1), sq)

    # ------------------------------------------------------------------ the penalty function
    def _nu_check(self, nu) -> float:
        nu = check_real("nu", nu)
        L_fy = self._L_fy()
        limit = self.mu / L_fy if L_fy > 0 else math.inf
        if nu <= -limit:
            raise ValueError(f"nu={nu:.6g} must be > -mu/L_fy = {-limit:.6g} (nu f + g strongly convex in y)")
        return nu

    def penalty_solution(self, x, nu):
        """y_nu(x) = argmin_y nu f(x, y) + g(x, y) (module docstring, item 3)."""
        nu = self._nu_check(nu)
        xb, sq = self._in("x", x, self.dim_x)
        return self._out(self._penalty_y(xb, nu), sq)

    def penalty_value(self, x, nu):
        """l_nu(x) = min_y nu f(x, y) + g(x, y)."""
        nu = self._nu_check(nu)
        xb, sq = self._in("x", x, self.dim_x)
        y = self._penalty_y(xb, nu)
        return self._out(nu * self._f(xb, y) + self._g(xb, y), sq)

    def penalty_gradient(self, x, nu):
        """grad_x l_nu(x) = nu grad_x f(x, y_nu) + grad_x g(x, y_nu) (envelope theorem)."""
        nu = self._nu_check(nu)
        xb, sq = self._in("x", x, self.dim_x)
        y = self._penalty_y(xb, nu)
        return self._out(nu * self._grad_x_f(xb, y) + self._grad_x_g(xb, y), sq)

    # ------------------------------------------------------------------ constants
    def _ms_lower(self) -> dict[str, float]:
        """Exact mean-squared smoothness of grad G_i, grad_y G_i, grad_x G_i (module docstring, item 2)."""
        d, t, n, dx, dy = self._d64, self.noise, self.n_g, self.dim_x, self.dim_y
        W = torch.cat([-d["Qg"], d["Xg"]], -1)  # w_i = (-q_i; x_i), coordinates (x, y)
        J = torch.cat([torch.cat([torch.zeros_like(d["Gam"]), -d["B"].transpose(1, 2)], -1),
                       torch.cat([-d["B"], d["A"]], -1)], -2)  # the mean joint Hessian
        Sig = W.transpose(1, 2) @ W / n
        out = {}
        for key, mask in (("L_G_ms", slice(0, dx + dy)), ("L_Gx_ms", slice(0, dx)), ("L_Gy_ms", slice(dx, dx + dy))):
            P = torch.zeros(dx + dy, dtype=torch.float64)
            P[mask] = 1.0
            c = (W * W * P).sum(-1)
            second = (W * c.unsqueeze(-1)).transpose(1, 2) @ W / n - (Sig * P) @ Sig
            out[key] = math.sqrt(float(_top_eig((J * P) @ J + t * t * second).clamp_min(0.0).max()))
        return out

    def _finite_sum_constants(self, base) -> dict[str, float]:
        d, t = self._d64, self.noise
        Bn = float(torch.linalg.matrix_norm(d["B"], ord=2).max())
        X, Qm = d["Xg"], d["Qg"]
        qx = float((Qm.norm(dim=-1) * X.norm(dim=-1)).max())
        grad_y = torch.cat([-d["B"], d["A"]], -1)
        y_lip = base.extra["y_star_lipschitz"]
        out = {"mu_G": self.mu, "L_G_yy": self.L, "L_G_yy_sample": base.extra["L_sample_yy"],
               "L_G_xy": Bn, "L_G_xy_sample": Bn + t * qx,
               "L_G_grad_y": float(torch.linalg.matrix_norm(grad_y, ord=2).max()), "L_G_hess": 0.0,
               "L_star": y_lip, "L_F_sample": base.extra["L_sample_f"], **self._ms_lower(),
               **self._upper_smoothness()}
        out.update(self._phi_curvature(d, y_lip))
        return out

    def _constants_regions(self) -> dict[str, str]:
        regions = {
            "mu_G": "global, exact (every G_i and g)",
            "L_G_xy_sample": "global bound (triangle inequality over the rank-one per-sample term)",
            "L_G_ms": "global, exact (mean-squared smoothness of grad G_i in (x, y))",
            "L_Gy_ms": "global, exact (mean-squared smoothness of grad_y G_i in (x, y))",
            "L_Gx_ms": "global, exact (mean-squared smoothness of grad_x G_i in (x, y))",
            "L_F_ms": "global, exact (mean-squared smoothness of grad F_j in (x, y))",
            "L_h": ("global, exact (Hess Phi is constant)" if "mu_h" in self._fs_extra
                    else "global bound (Phi nonconvex or its Hessian varies with x)"),
        }
        if "mu_h" in self._fs_extra:
            regions["mu_h"] = ("global, exact (smallest eigenvalue of the constant Hess Phi; the PL constant when "
                               "positive)")
        return {**regions, **getattr(self, "_fs_regions", {})}

    def _make_constants(self):
        base = super()._make_constants()
        self._fs_extra = self._finite_sum_constants(base)
        base = self._adjust_constants(base)
        return dataclasses.replace(base, extra={**base.extra, **self._fs_extra, "n": float(self.n_g),
                                                "m": float(self.n_f)},
                                   regions={**base.regions, **self._constants_regions()})

    def _adjust_constants(self, base):
        return base


@register
class FiniteSumQuadratic(_FiniteSum, StochasticQuadratic):
    """Finite-sum quadratic bilevel ERM (n lower-, m upper-level samples) with per-sample oracles, the SOBA
    framework's constants and the penalty function in closed form; mean = ``quadratic`` of the same seed."""

    name = "finite-sum-quadratic"
    summary = ("bilevel ERM, n lower- and m upper-level rank-one quadratic samples (stochastic-quadratic's); "
               "per-sample oracles, exact mean-squared smoothness, L_h/mu_h, penalty l_nu in closed form")
    param_doc = {
        **{k: v for k, v in StochasticQuadratic.param_doc.items() if k not in ("n_g", "n_f")},
        "n": (64, "number of lower-level samples G_i, >= dim_y"),
        "m": (64, "number of upper-level samples F_j, >= dim_y"),
        "linear_y": (0.0, "l: every F_j gains l c'y (w = 0: f linear in y)"),
    }

    def __init__(self, *, n=64, m=64, linear_y=0.0, dim_y=None, **kwargs):
        n, m = self._init_sizes(n, m, dim_y)
        self.linear_y = check_real("linear_y", linear_y)
        super().__init__(n_g=n, n_f=m, dim_y=dim_y, **kwargs)
        if self.linear_y != 0.0:
            self.phi_star = None
            L_f = max(self.w, self._L_h()) + abs(self.linear_y) * self._L_B()
            if L_f > self.L * (1 + 1e-12):
                raise ValueError(f"linear_y={self.linear_y}: max(w, L_hx) + |linear_y| ||B|| = {L_f:.6g} must be <= "
                                 f"L={self.L} (f must be L-smooth)")
        self._release_tables()

    def family_params(self):
        return {**super().family_params(), "linear_y": self.linear_y}

    # ------------------------------------------------------------------ the linear term l y'(c + B x)
    def _lin(self, x):
        return self.c + self._mv(self.B, x)

    def _f(self, x, y):
        out = super()._f(x, y)
        return out if self.linear_y == 0.0 else out + self.linear_y * (y * self._lin(x)).sum(-1)

    def _grad_x_f(self, x, y):
        out = super()._grad_x_f(x, y)
        return out if self.linear_y == 0.0 else out + self.linear_y * self._mtv(self.B, y)

    def _grad_y_f(self, x, y):
        out = super()._grad_y_f(x, y)
        return out if self.linear_y == 0.0 else out + self.linear_y * self._lin(x)

    def _F(self, x, y, idx):
        out = super()._F(x, y, idx)
        return out if self.linear_y == 0.0 else out + self.linear_y * (y * self._lin(x)).sum(-1)

    def _grad_y_F(self, x, y, idx):
        out = super()._grad_y_F(x, y, idx)
        return out if self.linear_y == 0.0 else out + self.linear_y * self._lin(x)

    def _L_B(self) -> float:
        """||B||_2 = max_k b_k (quadratic.py), exact."""
        k = min(self.dim_x, self.dim_y)
        a = self.spectrum
        return float((self.coupling * torch.sqrt((self.L * (self.L - a[:k])).clamp_min(0.0))).max()) if k else 0.0

    def _adjust_constants(self, base):
        """The linear term l y'(c + B x) adds l [[0, B'], [B, 0]] (norm |l| ||B||) to every joint Hessian of F_j
        and of f: L_f, L_F, L_F_sample, L_F_ms grow by at most |l| ||B|| (bounds); ||grad f|| on the ball by at
        most |l| (||c|| + ||B|| r) in y and |l| ||B|| r in x."""
        if self.linear_y == 0.0:
            return base
        lB, rad = abs(self.linear_y) * self._L_B(), self.radius
        c_n = float(self.c.norm(dim=-1).max())
        gx = self._grad_h_bound(rad) + lB * rad
        M = math.hypot(gx, self.w * (rad + c_n) + abs(self.linear_y) * c_n + lB * rad)
        Ms = base.extra["M_sample_f"] + abs(self.linear_y) * c_n + 2 * lB * rad
        for key in ("L_F", "L_F_sample", "L_F_ms"):
            self._fs_extra[key] += lB
        extra = {**base.extra, "L_f": base.extra["L_f"] + lB, "L_sample_f": base.extra["L_sample_f"] + lB,
                 "M_sample_f": Ms, "M_assumption2": max(M, Ms),
                 "L_assumption2": max(base.extra["L_assumption2"], base.extra["L_sample_f"] + lB)}
        regions = {"L_F": "global bound (linear_y != 0)", "L_F_sample": "global bound (linear_y != 0)",
                   "L_F_ms": "global bound (linear_y != 0)"}
        self._fs_regions = regions
        return dataclasses.replace(base, M=M, L_phi=lemma2_L_phi(base.L, base.mu, M, 0.0, 0.0), extra=extra)

    # ------------------------------------------------------------------ per-sample upper level
    def _each_grad_y_f(self, x, y, idx):
        """w [(1 - t_f) u + t_f a_j (a_j'u)] + l c per sample, u = y - c."""
        tf, dy = self.noise_f, self.dim_y
        Af = self._sample_rows(self._Ftab, idx)[..., :dy]
        u = y - self.c
        out = self.w * (1 - tf) * u
        out = (out if self.linear_y == 0.0 else out + self.linear_y * self._lin(x)).unsqueeze(1)
        return out + self.w * tf * self._proj(Af, u).unsqueeze(-1) * Af

    def _each_grad_x_f(self, x, y, idx):
        """grad h(x) + t_f xi_j per sample."""
        Xi = self._sample_rows(self._Ftab, idx)[..., self.dim_y:]
        return self._grad_x_f(x, y).unsqueeze(1) + self.noise_f * Xi

    # ------------------------------------------------------------------ constants of the upper level
    def _L_fy(self) -> float:
        return self.w

    def _phi_curvature(self, d, y_lip) -> dict[str, float]:
        """Hess Phi = lam I + w M'M + l (M'B + B'M), M = A^-1 B, when nc = 0 (Phi is then quadratic): L_h and
        mu_h exact from its spectrum; with nc > 0 the bound L_hx + w L_star^2 + 2 |l| L_star ||B||."""
        if self.nc != 0.0:
            return {"L_h": self._L_h() + self.w * y_lip * y_lip + 2 * abs(self.linear_y) * y_lip * self._L_B()}
        Mx = d["A_inv"] @ d["B"]
        H = self.lam * torch.eye(self.dim_x, dtype=torch.float64) + self.w * Mx.transpose(1, 2) @ Mx
        H = H + self.linear_y * (Mx.transpose(1, 2) @ d["B"] + d["B"].transpose(1, 2) @ Mx)
        eig = torch.linalg.eigvalsh(0.5 * (H + H.transpose(1, 2)))
        return {"L_h": float(eig.abs().amax()), "mu_h": float(eig[:, 0].min())}

    def _upper_smoothness(self) -> dict[str, float]:
        """L_F (population), L_Fy_sample and L_F_ms (exact; module docstring)."""
        Af, tf, w = self._d64["Af"], self.noise_f, self.w
        m, dy = self.n_f, self.dim_y
        a2 = (Af * Af).sum(-1)
        eye = torch.eye(dy, dtype=torch.float64)
        EaaT = Af.transpose(1, 2) @ Af / m
        second = (Af * a2.unsqueeze(-1)).transpose(1, 2) @ Af / m
        Hy2 = w * w * ((1 - tf) ** 2 * eye + 2 * tf * (1 - tf) * EaaT + tf * tf * second)
        L_hx = self._L_h()
        return {"L_F": max(w, L_hx), "L_Fy_sample": w * ((1 - tf) + tf * float(a2.max())),
                "L_F_ms": math.sqrt(max(L_hx * L_hx, float(_top_eig(Hy2).max())))}

    # ------------------------------------------------------------------ penalty (closed form)
    def _penalty_y(self, x, nu: float):
        """(A + nu w I)^-1 (B x + e + nu (w c - l (c + B x))): the mean f is w/2 ||y - c||^2 + l y'(c + B x) + h(x)."""
        eye = torch.eye(self.dim_y, dtype=self.dtype, device=self.device)
        rhs = self._mv(self.B, x) + self.e + nu * (self.w * self.c - self.linear_y * self._lin(x))
        return torch.linalg.solve(self.A + nu * self.w * eye, rhs.unsqueeze(-1)).squeeze(-1)


@register
class FiniteSumLogistic(_FiniteSum, StochasticLogistic):
    """Finite-sum bilevel ERM with the ridge-type lower level of stochastic-logistic (n samples) and a
    logistic validation loss (m samples): per-sample oracles, SOBA-framework constants, penalty by Newton."""

    name = "finite-sum-logistic"
    summary = ("bilevel ERM, n ridge-type lower-level samples, m logistic validation samples "
               "(stochastic-logistic's); per-sample oracles, exact mean-squared smoothness, penalty l_nu by Newton")
    param_doc = {
        **{k: v for k, v in StochasticLogistic.param_doc.items() if k not in ("n_g", "n_f")},
        "n": (64, "number of lower-level samples G_i, >= dim_y"),
        "m": (64, "number of validation samples F_j, >= dim_y"),
    }
    _NEWTON_MAX = 50

    def __init__(self, *, n=64, m=64, dim_y=None, **kwargs):
        n, m = self._init_sizes(n, m, dim_y)
        super().__init__(n_g=n, n_f=m, dim_y=dim_y, **kwargs)
        self._release_tables()

    def _each_grad_y_f(self, x, y, idx):
        """-b_j sigma(-b_j a_j'y) a_j per sample."""
        rows = self._sample_rows(self._Ftab, idx)
        Af, bf = rows[..., :-1], rows[..., -1]
        coef = -bf * torch.sigmoid(-bf * self._proj(Af, y))
        return coef.unsqueeze(-1) * Af

    def _each_grad_x_f(self, x, y, idx):
        """grad h(x): F_j depends on x through the sample-free h only."""
        S = idx.shape[-1]
        return self._grad_x_f(x, y).unsqueeze(1).expand(-1, S, -1)

    def _L_fy(self) -> float:
        return self.w  # grad_yy f = (1/m) sum s(1-s) a a' <= (1/4)(4 w I) (stochastic.py)

    def _phi_curvature(self, d, y_lip) -> dict[str, float]:
        """Hess Phi = M' grad_yy f(y*) M + h'' with grad_yy f <= w I: the bound L_hx + w L_star^2."""
        return {"L_h": self._L_h() + self.w * y_lip * y_lip}

    def _upper_smoothness(self) -> dict[str, float]:
        """L_F = max(w, L_hx) (exact, attained at y = 0), L_Fy_sample = max ||a_j||^2/4, L_F_ms exact."""
        Af, m = self._d64["Af"], self.n_f
        a2 = (Af * Af).sum(-1)
        second = (Af * a2.unsqueeze(-1)).transpose(1, 2) @ Af / m
        L_hx = self._L_h()
        return {"L_F": max(self.w, L_hx), "L_Fy_sample": float(a2.max()) / 4,
                "L_F_ms": math.sqrt(max(L_hx * L_hx, float(_top_eig(second).max()) / 16))}

    def _hess_yy_f(self, y):
        """(1/m) sum_j s_j (1 - s_j) a_j a_j', s_j = sigma(b_j a_j'y)."""
        s = torch.sigmoid(self.bf * self._proj(self.Af, y))
        return (self.Af * (s * (1 - s)).unsqueeze(-1)).transpose(1, 2) @ self.Af / self.n_f

    def _penalty_y(self, x, nu: float):
        """Damped Newton's method on nu f + g from y*(x) (strongly convex for nu > -mu/w); stops after the
        second step below sqrt(eps)(1 + ||y||): quadratic convergence puts the next one at round-off."""
        y = self._y_star(x)
        tol = math.sqrt(torch.finfo(x.dtype).eps)
        small = 0
        for _ in range(self._NEWTON_MAX):
            grad = nu * self._grad_y_f(x, y) + self._grad_y_g(x, y)
            H = nu * self._hess_yy_f(y) + self.A
            step = torch.linalg.solve(H, grad.unsqueeze(-1)).squeeze(-1)
            t = self._penalty_armijo(x, y, step, (grad * step).sum(-1), nu)
            y = y - t.unsqueeze(-1) * step
            if bool((step.norm(dim=-1) <= tol * (1 + y.norm(dim=-1))).all()):
                small += 1
                if small == 2:
                    break
        return y

    def _penalty_armijo(self, x, y, step, decrement, nu):
        def obj(yy):
            return nu * self._f(x, yy) + self._g(x, yy)

        g0 = obj(y)
        t = torch.ones_like(g0)
        done = decrement <= 1e3 * torch.finfo(y.dtype).eps * (1 + g0.abs())
        for _ in range(60):
            done = done | (obj(y - t.unsqueeze(-1) * step) <= g0 - 0.25 * t * decrement)
            if bool(done.all()):
                break
            t = torch.where(done, t, 0.5 * t)
        return t

