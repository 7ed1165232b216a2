"""The ``itd-lower-bound`` family: a problem on which ITD-BiO with constant N keeps a non-vanishing error.

Construction (ours; the Loops paper's appendix with its own construction is not at hand; it matches the
order of Loops Theorem 4). x, y in R^d (dim_x = dim_y = d >= 2), orthogonal U, V (random per seed):
  A = U diag(a) U',  a_i = geomspace(mu, L) (a_1 = mu, a_d = L exactly, so kappa = L/mu is exact);
  B = U diag(b) V',  b_i = sqrt(L (L - a_i))  (b_1 = c = sqrt(L (L - mu)) on the mu-direction, b_d = 0);
  g(x, y) = 1/2 y'Ay - y'Bx,   f(x, y) = m'y + a_x/2 ||x||^2,   m = M u_1 (u_1 = U e_1, ||m|| = M).
On the coupled pair (xi_1, eta_1) = (v_1'x, u_1'y) this is the issue's construction
g = mu/2 eta^2 - c xi eta, f = M eta + a_x/2 xi^2; the other pairs carry no upper-level signal.

Truth: y*(x) = A^-1 B x; Phi(x) = m'A^-1 B x + a_x/2 ||x||^2; grad Phi(x) = a_x x + B'A^-1 m
= a_x x + (c M/mu) v_1; inf Phi = -||B'A^-1 m||^2/(2 a_x) = -(c M/mu)^2/(2 a_x).
ITD: N GD steps y^{t+1} = y^t - alpha grad_y g from any y^0 held independent of x give
y^N(x) = (I - alpha A)^N y^0 + (I - (I - alpha A)^N) A^-1 B x, so
d f(x, y^N(x))/dx = grad Phi(x) - B'(I - alpha A)^N A^-1 m = grad Phi(x) - (c M/mu)(1 - alpha mu)^N v_1:
a constant bias (:meth:`ItdLowerBound.itd_bias`), whatever y^0 (warm starts included). The outer loop is
gradient descent on a_x/2 ||x - x^||^2 and, from x_0 = 0 with 0 < beta a_x <= 1,
||grad Phi(x_K)||^2 = (c M/mu)^2 [q^N + (1 - beta a_x)^K (1 - q^N)]^2 >= L (L - mu) M^2 q^(2N)/mu^2,
q = 1 - alpha mu, for every K (:func:`bilevelbench.bounds.loops22.itd_floor`, ``itd_trajectory``).
L >= 2 mu (kappa >= 2) makes L (L - mu) >= L^2/2: the floor is >= (1/2) L^2 M^2 q^(2N)/mu^2, Theorem 4's
Theta(L^2 M^2 (1 - alpha mu)^(2N)/mu^2) with constant 1/2.

Why grad_yy g = A with spectrum [mu, L] rather than mu I: the suite's contract asks kappa = L/mu exact
with mu and L attained as eigenvalues of grad_yy g. With A = mu I (the issue's form) only the joint
Hessian of g reaches L. Putting the coupling on the mu-direction, as the ``quadratic`` family does, keeps
the same floor (the bias lives on that direction only) and satisfies the contract.

Constants (Assumptions 1-4 of ICML 2021, Assumption 4 of Loops): the joint Hessian of g is
[[0, -B'], [-B, A]], on each pair with eigenvalues (a_i +- sqrt(a_i^2 + 4 b_i^2))/2 = (a_i +- (2L - a_i))/2
= {L, a_i - L}: norm L exactly; f's joint Hessian is blockdiag(a_x I, 0): norm a_x <= L. tau = rho = 0.
grad_y f = m: ||grad_y f(x, y*(x))|| = M for every x (Loops Assumption 4, exact, global: ``extra['M_y']``).
f is not globally Lipschitz (the a_x/2||x||^2 term), so ``constants.M`` = sqrt(M^2 + a_x^2 R^2) is the
bound on the ball ||(x, y)|| <= R that holds x_0 = 0, the ITD fixed point x^ and the y*(x) in between.
"""

from __future__ import annotations

import math

import torch

from ._validate import check_int, check_kappa, check_real, check_scale
from .base import BilevelProblem, Constants, lemma2_L_phi, register
from .quadratic import QuadraticLowerLevel, _symmetric, random_orthogonal

__all__ = ["ItdLowerBound"]


@register
class ItdLowerBound(QuadraticLowerLevel, BilevelProblem):
    """ITD lower-bound construction: g = 1/2 y'Ay - y'Bx, f = m'y + a/2 ||x||^2 (see module docstring)."""

    name = "itd-lower-bound"
    summary = ("g = 1/2 y'Ay - y'Bx, f = m'y + a/2||x||^2: ITD-BiO with constant N keeps ||grad Phi||^2 >="
               " L(L-mu)M^2(1-alpha mu)^(2N)/mu^2 (Loops Thm 4)")
    param_doc = {
        "dim_x": (4, "dimension of x (= dim_y, >= 2)"),
        "dim_y": (4, "dimension of y (= dim_x)"),
        "kappa": (10.0, "L/mu >= 2, exact: spectrum of A is geomspace(mu, L)"),
        "L": (1.0, "largest eigenvalue of A = joint smoothness constant"),
        "M": (1.0, "||m|| = ||grad_y f|| (Loops Assumption 4, exact)"),
        "a": (None, "curvature a of the upper-level term a/2||x||^2, 0 < a <= L (default L)"),
        "radius": (None, "radius of the ball in z where constants.M is declared (default from the instance)"),
    }

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, L=1.0, M=1.0, a=None, radius=None):
        if dim_x is None and dim_y is None:
            dim_x = dim_y = 4
        elif dim_x is None or dim_y is None:
            dim_x = dim_y = dim_x if dim_y is None else dim_y
        elif dim_x != dim_y:
            raise ValueError(f"dim_x and dim_y must be equal for {self.name!r}, got dim_x={dim_x}, dim_y={dim_y}")
        super().__init__(dim_x=dim_x, dim_y=dim_y, batch=batch, dtype=dtype, device=device, seed=seed)
        self.d = check_int("dim_x", self.dim_x, minimum=2)
        kappa = 10.0 if kappa is None else kappa
        dt = self.dtype
        self.kappa = check_kappa("kappa", kappa, dt, minimum=2.0)
        self.L = check_scale("L", L, dt)
        self.M_y = check_scale("M", M, dt)
        self.a = self.L if a is None else check_scale("a", a, dt, maximum=self.L)
        self.mu = self.L / self.kappa
        self.c = math.sqrt(self.L * (self.L - self.mu))
        self._build()
        self.radius = (check_scale("radius", radius, dt) if radius is not None
                       else self._default_radius())
        self.phi_star = -((self.c * self.M_y / self.mu) ** 2) / (2 * self.a)
        self._constants = self._make_constants()

    def family_params(self):
        return {"kappa": self.kappa, "L": self.L, "M": self.M_y, "a": self.a, "radius": self.radius}

    # ------------------------------------------------------------------ data
    def _build(self):
        d = self.d
        spec = torch.logspace(math.log10(self.mu), math.log10(self.L), d, dtype=torch.float64)
        spec[0], spec[-1] = self.mu, self.L  # exact end points
        b = torch.sqrt((self.L * (self.L - spec)).clamp_min(0.0))
        b[0] = self.c
        As, Ainvs, Bs, ms, us, vs = [], [], [], [], [], []
        for r in range(self.R):
            gen = self.instance_generator(r)
            U = random_orthogonal(d, gen)
            V = random_orthogonal(d, gen)
            As.append(_symmetric((U * spec) @ U.T))
            Ainvs.append((U / spec) @ U.T)
            Bs.append((U * b) @ V.T)
            ms.append(self.M_y * U[:, 0])
            us.append(U[:, 0])
            vs.append(V[:, 0])
        self.spectrum, self.coupling = spec, b
        self.A, self.A_inv, self.B = (self._t(torch.stack(t)) for t in (As, Ainvs, Bs))
        self._AB = self._stack_lower(self.A, self.B)
        self.m, self.u1, self.v1 = (self._t(torch.stack(t)) for t in (ms, us, vs))

    def _default_radius(self) -> float:
        # The ITD fixed point x^ = -(c M/(a mu))(1 - q^N) v_1 has norm <= c M/(a mu) for every alpha, N;
        # y*(x) = A^-1 B x is then within (c/mu) of it on the coupled pair. Margin as in ``quadratic``.
        x_hat = self.c * self.M_y / (self.a * self.mu)
        return 2.0 * math.hypot(x_hat, self.c / self.mu * x_hat) + 1.0

    def _make_constants(self) -> Constants:
        rad = self.radius
        M = math.hypot(self.M_y, self.a * rad)
        regions = {
            "L": "global (grad g: exact, attained; grad f: a <= L)",
            "mu": "global, attained (smallest eigenvalue of A)",
            "M": (f"bound on the ball ||(x, y)|| <= {rad:.6g} (f has a/2||x||^2); ||grad_y f|| = M_y exactly"
                  " everywhere (Loops Assumption 4)"),
            "tau": "global, exact (grad_x grad_y g = -B' is constant)",
            "rho": "global, exact (grad_yy g = A is constant)",
            "L_phi": "Lemma 2 with the constants above (on the ball); Phi itself is a-smooth",
        }
        return Constants(L=self.L, mu=self.mu, kappa=self.kappa, M=M, tau=0.0, rho=0.0,
                         L_phi=lemma2_L_phi(self.L, self.mu, M, 0.0, 0.0), regions=regions,
                         extra={"M_y": self.M_y, "a": self.a, "c": self.c, "radius": rad,
                                "L_f": self.a, "y_star_lipschitz": self.c / self.mu})

    def region_radius(self) -> float:
        return self.radius

    # ------------------------------------------------------------------ closed forms
    def _f(self, x, y):
        return (self.m * y).sum(-1) + 0.5 * self.a * (x * x).sum(-1)

    def _g(self, x, y):
        return 0.5 * (y * self._mv(self.A, y)).sum(-1) - (y * self._mv(self.B, x)).sum(-1)

    def _grad_x_f(self, x, y):
        return self.a * x

    def _grad_y_f(self, x, y):
        return self.m.expand_as(y)

    def _grad_x_g(self, x, y):
        return -self._mtv(self.B, y)

    def _grad_y_g(self, x, y):
        return self._lower_grad(self._AB, x, y)

    def _y_star(self, x):
        return self._mv(self.A_inv, self._mv(self.B, x))

    def _hypergradient(self, x):
        return self.a * x + self._mtv(self.B, self._mv(self.A_inv, self.m)).expand_as(x)

    def _attained(self, rtol):
        return {"mu": bool(self.spectrum[0] == self.mu), "L": bool(self.spectrum[-1] == self.L)}

    # ------------------------------------------------------------------ ITD truth
    def itd_bias(self, alpha: float, N: int) -> torch.Tensor:
        """Exact bias of ITD-BiO's hypergradient with N inner GD steps of size alpha, the same at every x
        and every y^0: -B'(I - alpha A)^N A^-1 m, shape (dim_x,) or (R, dim_x)."""
        alpha = check_real("alpha", alpha, minimum=0.0, maximum=1.0 / self.L, strict_min=True)
        N = check_int("N", N, minimum=0)
        eye = torch.eye(self.d, dtype=self.dtype, device=self.device)
        contraction = torch.linalg.matrix_power(eye - alpha * self.A, N)
        bias = -self._mtv(self.B, self._mv(contraction, self._mv(self.A_inv, self.m)))
        return bias.squeeze(0) if self.batch is None else bias

    def itd_fixed_point(self, alpha: float, N: int) -> torch.Tensor:
        """The limit x^ of ITD-BiO's outer gradient descent: a x^ + B'A^-1 m + bias = 0."""
        grad0 = self.hypergradient(self.default_x0())
        return -(grad0 + self.itd_bias(alpha, N)) / self.a
