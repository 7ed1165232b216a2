"""The ``hyper-representation`` family: linear representation, ridge head (Ji, Liu, Liang, Ying, NeurIPS
2022, Sec. 6 "Experiments on hyper-representation", Table 3; problem of Sow, Ji, Liang 2021, their [39]).

The paper's problem (Loops paper, display before Table 3):
    min_lambda Phi(lambda) = 1/(2 p_V) ||h(X_V; lambda) w* - Y_V||^2,
    w* = argmin_w 1/(2 q) ||h(X_T; lambda) w - Y_T||^2 + gamma/2 ||w||^2,   h(X; lambda) = X lambda.
Here (our names): X_T in R^(n x d) (n training rows, d features), X_V in R^(n_val x d), the representation
lambda = Phi in R^(d x p) (p = width of the representation), the head w in R^p.
  upper variable x = vec(Phi) (row-major, Phi = x.view(d, p)),  dim_x = d * p;
  lower variable y = w,                                          dim_y = p.
With A = X_T/sqrt(n), b = Y_T/sqrt(n), C = X_V/sqrt(n_val), c = Y_V/sqrt(n_val):
  g(x, y) = 1/2 ||A Phi w - b||^2 + gamma/2 ||w||^2,   f(x, y) = 1/2 ||C Phi w - c||^2,
  y*(x) = (K'K + gamma I)^-1 K'b with K = A Phi (closed form; one p x p Cholesky solve).
The public setup uses p, d, n = 64, 128, 500 with standard normal data (pass p=64, d=128, n=500); the
defaults p, d, n = 8, 6, 40 are small for tests (p > d makes K'K singular, so mu below holds everywhere).

What we chose or changed (the paper defers data and gamma to [39]; every choice is stated):
- data: X_T, X_V standard normal; responses Y = X theta + noise * eps with one planted teacher theta ~
  N(0, I/d) shared by training and validation (so a good representation exists) and eps standard normal;
- gamma is not free: it is set by ``kappa`` at a reference point (below), so kappa sweeps are possible;
- constants hold on a declared region, the ball ||(x, y)|| <= radius around the origin (f and g are
  quartic in z = (x, y), so no finite L, M exists globally).

Constants (the engine below treats m >= 1 tasks; here m = 1). Write a_T = ||A||_2, beta_T = ||A'b||,
a_V = ||C||_2, beta_V = ||C'c||, rad = radius:
- mu = gamma / m: exact and global; attained at x = 0, and at every x when p > d (K'K singular);
- L_yy(x) = lambda_max(grad_yy g(x)) = (||A Phi||_2^2 + gamma)/m, sup over the ball (a_T^2 rad^2 + gamma)/m,
  exact, attained at Phi = rad v1 e_1' (v1 the top right singular vector of A), w = 0;
- kappa (parameter) = L_yy(x_ref)/mu exactly, at the reference point x_ref = Phi_ref (entries N(0, 1/d),
  drawn with the data; ``default_x0`` returns it). So gamma = ||A Phi_ref||_2^2/(kappa - 1), kappa > 1.
  ``constants.kappa`` = L/mu with the joint L below is larger: see ``extra['kappa_ref']`` for the parameter;
- L (Assumption 2: joint Lipschitz constant of grad f and grad g in z): a rigorous bound on the ball, NOT
  attained (derivation in ``_bounds``): L_g = lambda_max([[P, P + beta_T], [P + beta_T, P + gamma]])/m with
  P = a_T^2 rad^2, L_f = (2 a_V^2 rad^2 + beta_V)/m, L = max(L_f, L_g);
- M = rad (a_V^2 rad^2/2 + beta_V)/m: bound on ||grad f|| on the ball;
- tau = rho = 2 a_T^2 rad/m: exact Lipschitz constants of grad_x grad_y g and grad_yy g on the ball
  (sup of the third derivative; rho attained at Phi = rad v1 e_1', w = 0; tau at Phi = 0, ||w|| = rad).
"""

from __future__ import annotations

import math

import torch

from ._validate import check_count, check_finite, check_int, check_kappa, check_scale
from .base import BilevelProblem, Constants, lemma2_L_phi, register

__all__ = ["HyperRepresentation", "RidgeRepresentation", "lambda_max_2x2"]


def lambda_max_2x2(p, r, s):
    """Largest eigenvalue of the symmetric matrix [[p, r], [r, s]] (tensors or floats)."""
    return (p + s) / 2 + torch.sqrt(((p - s) / 2) ** 2 + r**2)


class RidgeRepresentation(BilevelProblem):
    """m ridge-regression tasks on a shared linear representation Phi (the engine of both families).

    x = vec(Phi), Phi in R^(d x p); y = (w_1, ..., w_m) stacked, w_t in R^p;
    g = (1/m) sum_t [1/2 ||A_t Phi w_t - b_t||^2 + gamma/2 ||w_t||^2],  f = (1/m) sum_t 1/2 ||C_t Phi w_t - c_t||^2.
    Every formula takes an optional index tensor idx (R, S) of tasks: None is the full mean over the m
    tasks, otherwise the mean over the S sampled tasks (the stochastic oracles of meta-learning).
    Data: A, C (R, m, n, d), b, c (R, m, n); gamma (R,).
    """

    tasks: int = 1

    def _setup(self, *, p, d, n, n_val, kappa, noise, radius, dim_x, dim_y, shared_teacher):
        """Validate the family parameters, draw the data, set gamma from kappa and the constants."""
        dt = self.dtype
        self.p = check_count("p", p, dt)
        self.d = check_count("d", d, dt)
        self.n = check_count("n", n, dt)
        self.n_val = check_count("n_val", n_val, dt)
        self.kappa = check_kappa("kappa", 10.0 if kappa is None else kappa, dt, strict_min=True)
        # noise sets the data scale s (targets, heads, the default radius); Lemma 2's rho L^2 M/mu^3 has degree
        # 8 in s and 3 in kappa (<= eps^(-3/2)): degree 16 leaves the kappa factor and the data's constants room
        self.noise = check_scale("noise", noise, dt, positive=False, degree=16)
        for name, given, derived, how in (("dim_x", dim_x, self.d * self.p, "d*p (x = vec(Phi))"),
                                          ("dim_y", dim_y, self.tasks * self.p, "m*p (y = stacked heads)")):
            if given is not None and check_int(name, given, minimum=1) != derived:
                raise ValueError(f"{name}={given} is inconsistent with {how} = {derived}; pass {name}=None")
        radius = check_scale("radius", radius, dt, allow_none=True, degree=16)
        # Everything below runs once in float64 on the CPU (the data are drawn there), so that a seed gives
        # the same gamma, radius and constants on every device and dtype; then the data move.
        dtype, device = self.dtype, self.device
        self.dtype, self.device = torch.float64, torch.device("cpu")
        self._draw(shared_teacher)
        ref = self.A @ self.x_ref.view(self.R, 1, self.d, self.p)
        self.gamma = torch.linalg.matrix_norm(ref, ord=2).amax(dim=1) ** 2 / (self.kappa - 1.0)
        self.radius = radius if radius is not None else self._default_radius()
        self.phi_star = None
        self._constants = self._make_constants()
        self.dtype, self.device = dtype, device
        self.A, self.b, self.C, self.c, self.x_ref, self.gamma = (
            self._t(t) for t in (self.A, self.b, self.C, self.c, self.x_ref, self.gamma))

    # ------------------------------------------------------------------ data
    def _draw(self, shared_teacher: bool):
        """Data of every instance from its own generator (instance r == unbatched seed + r).

        Per instance, in this order: for each task X_T (n x d), X_V (n_val x d) standard normal; the
        teacher (one theta ~ N(0, I/d), or a shared embedding B0 (d x p, N(0, 1/d)) and per task
        theta_t = B0 c_t, c_t ~ N(0, I_p)); the noises; then Phi_ref with N(0, 1/d) entries.
        """
        m, d, p = self.tasks, self.d, self.p
        As, bs, Cs, cs, refs = [], [], [], [], []
        for r in range(self.R):
            gen = self.instance_generator(r)

            def randn(*shape, gen=gen):
                return torch.randn(*shape, generator=gen, dtype=torch.float64)

            XT, XV = randn(m, self.n, d), randn(m, self.n_val, d)
            if shared_teacher:
                theta = (randn(d, p) / math.sqrt(d) @ randn(m, p, 1)).squeeze(-1)
            else:
                theta = (randn(d) / math.sqrt(d)).expand(m, d)
            YT = (XT @ theta.unsqueeze(-1)).squeeze(-1) + self.noise * randn(m, self.n)
            YV = (XV @ theta.unsqueeze(-1)).squeeze(-1) + self.noise * randn(m, self.n_val)
            refs.append(randn(d * p) / math.sqrt(d))
            As.append(XT / math.sqrt(self.n))
            bs.append(YT / math.sqrt(self.n))
            Cs.append(XV / math.sqrt(self.n_val))
            cs.append(YV / math.sqrt(self.n_val))
        for name, t in (("X_train", As), ("Y_train", bs), ("X_val", Cs), ("Y_val", cs)):
            for item in t:
                check_finite(name, item)
        self.A, self.b, self.C, self.c, self.x_ref = (self._t(torch.stack(t)) for t in (As, bs, Cs, cs, refs))

    def default_x0(self) -> torch.Tensor:
        """The reference point x_ref = vec(Phi_ref) at which kappa is exact (sweeps start there)."""
        return self.x_ref.clone() if self.batch is not None else self.x_ref[0].clone()

    def _default_radius(self) -> float:
        # Twice the largest ||(x_ref, y*(x_ref))||: the ball holds the origin (where mu is attained),
        # the reference point and its lower-level solution with the same margin again around them.
        z = torch.cat([self.x_ref, self._y_star(self.x_ref)], -1)
        return 2.0 * float(z.norm(dim=-1).max())

    # ------------------------------------------------------------------ constants
    def _norms(self):
        """Per instance: a_T = max_t ||A_t||_2, a_V = max_t ||C_t||_2, and per task ||A_t'b_t||, ||C_t'c_t||."""
        a_T = torch.linalg.matrix_norm(self.A, ord=2).amax(dim=1)
        a_V = torch.linalg.matrix_norm(self.C, ord=2).amax(dim=1)
        beta_T = (self.A.transpose(-1, -2) @ self.b.unsqueeze(-1)).squeeze(-1).norm(dim=-1)
        beta_V = (self.C.transpose(-1, -2) @ self.c.unsqueeze(-1)).squeeze(-1).norm(dim=-1)
        return a_T, a_V, beta_T, beta_V

    def _bounds(self, rad: float):
        """Rigorous bounds on the ball ||z|| <= rad (u_t = ||w_t||, t = ||Phi||_2, sum u_t^2 + t^2 <= rad^2).

        Joint Hessian of g, direction (D, e_1..e_m), ||D||_F^2 + sum ||e_t||^2 = 1, r_t = A_t Phi w_t - b_t:
          Q = (1/m) sum_t [||A_t (D w_t + Phi e_t)||^2 + 2 r_t'A_t D e_t + gamma ||e_t||^2].
        With ||A_t' r_t|| <= a^2 t u_t + beta_t, sigma = ||D||, tau = ||(||e_t||)_t||, Cauchy-Schwarz gives
        Q <= [sigma, tau] [[P, R], [R, S]] [sigma, tau]' with P = a^2 sum u_t^2/m <= a^2 rad^2/m,
        R = (1/m) ||(2 a^2 t u_t + beta_t)_t|| <= (a^2 rad^2 + ||beta||)/m (2 t ||u|| <= rad^2),
        S = (a^2 t^2 + gamma)/m <= (a^2 rad^2 + gamma)/m; lambda_max of a nonnegative 2x2 matrix grows with
        its entries, and -Q <= (a^2 rad^2/2 + ||beta||)/m <= R. Same for f with C, c and gamma = 0.
        ||grad f||^2 <= ||q||^2 (||u||^2 + t^2)/m^2, q_t = ||C_t' rho_t|| <= a_V^2 t u_t + beta_V,t: M below.
        Third derivatives of g: |d^3 g| <= 2 a^2 sqrt(||u||^2 + t^2)/m, so tau = rho = 2 a^2 rad/m (attained).
        """
        m = self.tasks
        a_T, a_V, beta_T, beta_V = self._norms()
        bT, bV = beta_T.norm(dim=-1), beta_V.norm(dim=-1)
        P = a_T**2 * rad**2
        L_g = lambda_max_2x2(P, P + bT, P + self.gamma) / m
        L_f = (2 * a_V**2 * rad**2 + bV) / m
        M = rad * (a_V**2 * rad**2 / 2 + bV) / m
        tau = 2 * a_T**2 * rad / m
        L_yy = (P + self.gamma) / m
        # one task alone (the per-task constants of arXiv Theorem 3 / ICML Theorem 4): m = 1, its own beta
        bT1, bV1 = beta_T.amax(dim=-1), beta_V.amax(dim=-1)
        L_task = torch.maximum(lambda_max_2x2(P, P + bT1, P + self.gamma), 2 * a_V**2 * rad**2 + bV1)
        M_task = rad * (a_V**2 * rad**2 / 2 + bV1)
        return {"L_g": L_g, "L_f": L_f, "M": M, "tau": tau, "L_yy": L_yy, "L_task": L_task,
                "M_task": M_task, "a_T": a_T, "a_V": a_V, "beta_T": beta_T, "beta_V": beta_V}

    def _make_constants(self) -> Constants:
        rad, m = self.radius, self.tasks
        bd = self._bounds(rad)
        L = float(torch.maximum(bd["L_g"], bd["L_f"]).max())
        mu = float(self.gamma.min()) / m
        M, tau = float(bd["M"].max()), float(bd["tau"].max())
        ball = f"the ball ||(x, y)|| <= {rad:.6g}"
        regions = {
            "L": f"rigorous bound on {ball} (joint Hessians of f and g), not attained",
            "mu": "global and exact: gamma/m, attained at x = 0 (at every x when p > d)",
            "M": f"bound on ||grad f|| on {ball}",
            "tau": f"exact sup on {ball}, attained at Phi = 0, one head of norm {rad:.6g}",
            "rho": f"exact sup on {ball}, attained at Phi = {rad:.6g} v1 e_1', w = 0",
            "kappa": "L/mu with the region's L; the parameter kappa = L_yy(x_ref)/mu is extra['kappa_ref']",
            "L_phi": "Lemma 2 (arXiv eq. 11) with the constants above, on the ball",
        }
        extra = {"kappa_ref": self.kappa, "radius": rad, "gamma_min": float(self.gamma.min()),
                 "gamma_max": float(self.gamma.max()), "L_g": float(bd["L_g"].max()),
                 "L_f": float(bd["L_f"].max()), "L_yy": float(bd["L_yy"].max()),
                 "mu_task": float(self.gamma.min()), "L_task": float(bd["L_task"].max()),
                 "M_task": float(bd["M_task"].max()), "phi_lower_bound": 0.0}
        extra.update(self._extra_constants(bd))
        regions.update(self._extra_regions(ball))
        return Constants(L=L, mu=mu, kappa=L / mu, M=M, tau=tau, rho=tau, L_phi=lemma2_L_phi(L, mu, M, tau, tau),
                         sigma2=extra.pop("sigma2", None), hess_var=extra.pop("hess_var", None),
                         regions=regions, extra=extra)

    def _extra_constants(self, bounds) -> dict[str, float]:
        """Family-specific additions to ``extra`` (stochastic variance bounds in meta-learning)."""
        return {}

    def _extra_regions(self, ball: str) -> dict[str, str]:
        """Family-specific additions to ``regions``."""
        return {}

    def region_radius(self) -> float:
        return self.radius

    def _attained(self, rtol):
        """Where the exact constants are attained, measured (not assumed):
        mu: lambda_min(grad_yy g) at x = 0; L_yy: lambda_max(grad_yy g) at Phi* = rad v1 e_1', w = 0 (v1 the
        top right singular vector of the A_t of largest norm); rho: ||d grad_yy g[D]|| at Phi*, D = v1 e_1';
        tau: ||d grad_x grad_y g[D]|| at Phi = 0, w_t = rad e_1 for that task. grad_yy g and grad_x grad_y g
        are quadratic in z, so a central difference with step 1 is their exact derivative.
        L is a bound, not attained: False (see ``regions``)."""
        c, R, rad = self.constants, self.R, self.radius
        y0 = torch.zeros(R, self.dim_y, dtype=self.dtype, device=self.device)
        zero = torch.zeros(R, self.d, self.p, dtype=self.dtype, device=self.device)
        mu_at = float(torch.linalg.eigvalsh(self._hess_yy(zero.reshape(R, -1), y0))[..., 0].min())
        _, s, vh = torch.linalg.svd(self.A)
        t = s[..., 0].argmax(dim=1)
        D = zero.clone()
        D[..., 0] = vh[torch.arange(R), t, 0]
        phi_star, D = (rad * D).reshape(R, -1), D.reshape(R, -1)
        top = float(torch.linalg.eigvalsh(self._hess_yy(phi_star, y0))[..., -1].max())
        dH = (self._hess_yy(phi_star + D, y0) - self._hess_yy(phi_star - D, y0)) / 2
        w = y0.view(R, self.tasks, self.p).clone()
        w[torch.arange(R), t, 0] = rad
        w = w.reshape(R, -1)
        dJ = (self._jac_xy(D, w) - self._jac_xy(-D, w)) / 2
        rho_at = float(torch.linalg.matrix_norm(dH, ord=2).max())
        tau_at = float(torch.linalg.matrix_norm(dJ, ord=2).max())

        def close(a, b):
            return abs(a - b) <= rtol * b

        return {"mu": close(mu_at, c.mu), "L": False, "L_yy": close(top, c.extra["L_yy"]),
                "rho": close(rho_at, c.rho), "tau": close(tau_at, c.tau)}

    # ------------------------------------------------------------------ task sets
    def _data(self, which: str, idx):
        """(features, responses) of the upper ('f') or lower ('g') level for the tasks idx (None: all)."""
        X, Y = (self.C, self.c) if which == "f" else (self.A, self.b)
        if idx is None:
            return X, Y
        rows = torch.arange(self.R, device=idx.device).unsqueeze(1)
        return X[rows, idx], Y[rows, idx]

    def _heads(self, y, idx):
        """The heads w_t of the tasks idx: (R, T, p)."""
        W = y.view(self.R, self.tasks, self.p)
        if idx is None:
            return W
        return torch.gather(W, 1, idx.unsqueeze(-1).expand(-1, -1, self.p))

    def _scatter(self, per_task, idx):
        """Mean over the T tasks of per-task head vectors (R, T, p), placed in their blocks: (R, m p)."""
        T = per_task.shape[1]
        if idx is None:
            return (per_task / T).reshape(self.R, -1)
        out = torch.zeros(self.R, self.tasks, self.p, dtype=per_task.dtype, device=per_task.device)
        out.scatter_add_(1, idx.unsqueeze(-1).expand(-1, -1, self.p), per_task / T)
        return out.reshape(self.R, -1)

    def _parts(self, which, x, y, idx):
        """X (R,T,n,d), Phi (R,d,p), W (R,T,p), K = X Phi (R,T,n,p), residual r = K w - Y (R,T,n)."""
        X, Y = self._data(which, idx)
        Phi = x.view(self.R, self.d, self.p)
        W = self._heads(y, idx)
        K = torch.einsum("rtnd,rdp->rtnp", X, Phi)
        r = torch.einsum("rtnp,rtp->rtn", K, W) - Y
        return X, Phi, W, K, r

    def _gam(self, which):
        return self.gamma.view(self.R, 1, 1) if which == "g" else 0.0

    # ------------------------------------------------------------------ losses and derivatives (idx: tasks)
    def _loss(self, which, x, y, idx=None):
        """f or g (mean over the tasks idx): 1/2||X Phi w - Y||^2 (+ gamma/2 ||w||^2 for g)."""
        _, _, W, _, r = self._parts(which, x, y, idx)
        per = 0.5 * (r * r).sum(-1)
        if which == "g":
            per = per + 0.5 * self.gamma.view(self.R, 1) * (W * W).sum(-1)
        return per.mean(dim=1)

    def _grad_x(self, which, x, y, idx=None):
        """grad_Phi = mean_t X_t' r_t w_t' (the ridge term does not depend on Phi), flattened."""
        X, _, W, _, r = self._parts(which, x, y, idx)
        return torch.einsum("rtnd,rtn,rtp->rdp", X, r, W).reshape(self.R, -1) / W.shape[1]

    def _grad_y(self, which, x, y, idx=None):
        """grad_{w_t} = (K_t' r_t + gamma w_t)/T in block t (gamma = 0 for f)."""
        _, _, W, K, r = self._parts(which, x, y, idx)
        return self._scatter(torch.einsum("rtnp,rtn->rtp", K, r) + self._gam(which) * W, idx)

    def _hvp_tasks(self, x, y, v, idx=None):
        """grad_yy g v: block t is (K_t'K_t + gamma I) v_t / T."""
        _, _, _, K, _ = self._parts("g", x, y, idx)
        V = self._heads(v, idx)
        Kv = torch.einsum("rtnp,rtp->rtn", K, V)
        return self._scatter(torch.einsum("rtnp,rtn->rtp", K, Kv) + self._gam("g") * V, idx)

    def _jvp_tasks(self, x, y, v, idx=None):
        """grad_x grad_y g v = mean_t [A_t' r_t v_t' + A_t' K_t v_t w_t'] (derivative of <grad_w g, v> in Phi)."""
        X, _, W, K, r = self._parts("g", x, y, idx)
        V = self._heads(v, idx)
        Kv = torch.einsum("rtnp,rtp->rtn", K, V)
        out = torch.einsum("rtnd,rtn,rtp->rdp", X, r, V) + torch.einsum("rtnd,rtn,rtp->rdp", X, Kv, W)
        return out.reshape(self.R, -1) / W.shape[1]

    # ------------------------------------------------------------------ deterministic closed forms
    def _f(self, x, y):
        return self._loss("f", x, y)

    def _g(self, x, y):
        return self._loss("g", x, y)

    def _grad_x_f(self, x, y):
        return self._grad_x("f", x, y)

    def _grad_y_f(self, x, y):
        return self._grad_y("f", x, y)

    def _grad_x_g(self, x, y):
        return self._grad_x("g", x, y)

    def _grad_y_g(self, x, y):
        return self._grad_y("g", x, y)

    def _hvp(self, x, y, v):
        return self._hvp_tasks(x, y, v)

    def _jvp(self, x, y, v):
        return self._jvp_tasks(x, y, v)

    def _blocks(self, x):
        """Per-task lower Hessians H_t = K_t'K_t + gamma I (R, m, p, p) and K_t = A_t Phi."""
        K = torch.einsum("rtnd,rdp->rtnp", self.A, x.view(self.R, self.d, self.p))
        eye = torch.eye(self.p, dtype=x.dtype, device=x.device)
        return K.transpose(-1, -2) @ K + self.gamma.view(self.R, 1, 1, 1) * eye, K

    def _hess_yy(self, x, y):
        """Block diagonal (1/m) diag(H_1, ..., H_m): (R, m p, m p)."""
        H, _ = self._blocks(x)
        eye_m = torch.eye(self.tasks, dtype=x.dtype, device=x.device)
        return torch.einsum("rtpq,ts->rtpsq", H, eye_m).reshape(self.R, self.dim_y, self.dim_y) / self.tasks

    def _jac_xy(self, x, y):
        """d^2 g/dPhi_ab dw_tc = (1/m)[(A_t'r_t)_a delta_bc + (A_t'K_t)_ac w_tb]: (R, d p, m p)."""
        X, _, W, K, r = self._parts("g", x, y, None)
        Ar = torch.einsum("rtnd,rtn->rtd", X, r)
        AK = torch.einsum("rtnd,rtnp->rtdp", X, K)
        eye_p = torch.eye(self.p, dtype=x.dtype, device=x.device)
        J = torch.einsum("rta,bc->rabtc", Ar, eye_p) + torch.einsum("rtac,rtb->rabtc", AK, W)
        return J.reshape(self.R, self.dim_x, self.dim_y) / self.tasks

    def _solve_blocks(self, x, rhs):
        """H_t^-1 rhs_t for every task (Cholesky; H_t is SPD with lambda_min >= gamma > 0)."""
        H, _ = self._blocks(x)
        return torch.cholesky_solve(rhs.unsqueeze(-1), torch.linalg.cholesky(H)).squeeze(-1)

    def _y_star(self, x):
        """w_t*(Phi) = (K_t'K_t + gamma I)^-1 K_t' b_t (normal equations of the ridge problem)."""
        _, K = self._blocks(x)
        return self._solve_blocks(x, torch.einsum("rtnp,rtn->rtp", K, self.b)).reshape(self.R, -1)

    def _hypergradient(self, x):
        """grad Phi = grad_x f - grad_x grad_y g v*, v*_t = H_t^-1 (C_t Phi)'(C_t Phi w_t* - c_t) (ICML Prop. 1;
        the 1/m of grad_yy g and of grad_y f cancel)."""
        y = self._y_star(x)
        _, _, _, Kf, rf = self._parts("f", x, y, None)
        v = self._solve_blocks(x, torch.einsum("rtnp,rtn->rtp", Kf, rf)).reshape(self.R, -1)
        return self._grad_x_f(x, y) - self._jvp(x, y, v)


@register
class HyperRepresentation(RidgeRepresentation):
    """Hyper-representation of the Loops paper's Table 3: linear representation Phi, ridge head w."""

    name = "hyper-representation"
    kappa_exact = False  # L is a rigorous bound on the region (the Hessian moves with x); kappa exact at x_ref
    summary = ("linear representation x = vec(Phi), ridge head y = w: g = 1/2||A Phi w - b||^2 + gamma/2||w||^2,"
               " f = 1/2||C Phi w - c||^2 (Loops Table 3); kappa exact at x_ref, constants on a ball")
    param_doc = {
        "dim_x": (None, "derived: d * p (x = vec(Phi)); an explicit value must match"),
        "dim_y": (None, "derived: p (y = w); an explicit value must match"),
        "kappa": (10.0, "L_yy(x_ref)/mu, exact at the reference point x_ref; sets gamma; > 1"),
        "p": (8, "width of the representation (columns of Phi) = dim_y; public setup 64"),
        "d": (6, "number of input features (rows of Phi); public setup 128"),
        "n": (40, "training rows of X_T; public setup 500"),
        "n_val": (None, "validation rows of X_V (default n)"),
        "noise": (0.1, "standard deviation of the response noise, Y = X theta + noise * eps"),
        "radius": (None, "radius of the ball in z = (x, y) where the constants hold (default 2||z_ref||)"),
    }

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, p=8, d=6, n=40, n_val=None, noise=0.1, radius=None):
        p_, d_ = check_int("p", p, minimum=1), check_int("d", d, minimum=1)
        super().__init__(dim_x=d_ * p_, dim_y=p_, batch=batch, dtype=dtype, device=device, seed=seed)
        self._setup(p=p_, d=d_, n=n, n_val=n if n_val is None else n_val, kappa=kappa, noise=noise,
                    radius=radius, dim_x=dim_x, dim_y=dim_y, shared_teacher=False)

    def family_params(self):
        return {"kappa": self.kappa, "p": self.p, "d": self.d, "n": self.n, "n_val": self.n_val,
                "noise": self.noise, "radius": self.radius}
