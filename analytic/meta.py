"""The ``meta-learning`` family: few-shot linear regression with a shared linear embedding and per-task
ridge heads, stochastic over tasks (Ji, Yang, Liang, ICML 2021, Sec. 5, eq. (10) and Theorem 4; arXiv
version Sec. 5.1, eq. (9), Theorem 3 and Lemma 6).

The papers' problem: min_phi L_D(phi, w~*) = (1/m) sum_i L_Di(phi, w_i*),
w~* = argmin_w~ L_S(phi, w~) = (1/m) sum_i L_Si(phi, w_i),  L_Si = training loss + R(w_i) strongly convex;
with task sampling the mini-batch versions L_D(phi, w~; B) = (1/|B|) sum_{i in B} L_Di and likewise L_S
replace them (B: i.i.d. tasks, drawn with replacement).
Ours (linear embedding, squared loss, R = gamma/2 ||.||^2; everything in ``hyperrep.RidgeRepresentation``):
  x = vec(Phi), Phi in R^(d x p) the shared embedding, dim_x = d p;
  y = (w_1, ..., w_m) all heads stacked, w_i in R^p, dim_y = m p;
  G(x, y; i) = L_Si = 1/2 ||A_i Phi w_i - b_i||^2 + gamma/2 ||w_i||^2  (A_i = X_i^train/sqrt(n), b_i likewise),
  F(x, y; i) = L_Di = 1/2 ||C_i Phi w_i - c_i||^2                      (C_i = X_i^test/sqrt(n_val), c_i),
  g = (1/m) sum_i G(.; i), f = (1/m) sum_i F(.; i): the task is the sample (n_f = n_g = m).
grad_yy g = (1/m) blockdiag(K_i'K_i + gamma I), K_i = A_i Phi: block diagonal, and y*(x) is the ridge
solution of each task. Data: X standard normal; responses Y_i = X theta_i + noise * eps with a planted shared
embedding theta_i = B0 c_i (B0 in R^(d x p), N(0, 1/d) entries; c_i ~ N(0, I_p)), so tasks share structure.

Constants are those of g and f as written (the means), on the ball ||(x, y)|| <= radius (see hyperrep):
mu = gamma/m (exact), L a rigorous bound, tau = rho = 2 max_i ||A_i||^2 radius/m (exact). The theorems
assume each task loss L_Si is mu-strongly convex and take L, M per task: those per-task numbers are in
``extra`` (mu_task = gamma, L_task, M_task), since the block structure divides g's mu by m.
Assumption 4 (ICML 2021) for one uniformly drawn task, as rigorous bounds on the ball (E||X - EX||^2 <=
E||X||^2; u_i = ||w_i||, U^2 = sum u_i^2, t = ||Phi||_2, t^2 + U^2 <= rad^2, s_i = ||A_i'r_i|| <= a^2 t u_i + beta_i,
beta_i = ||A_i'b_i||, a = max_i ||A_i||_2; ||grad G_i||^2 = s_i^2 u_i^2 + ||Phi'A_i'r_i + gamma w_i||^2
<= s_i^2 (u_i^2 + t^2) + 2 gamma t s_i u_i + gamma^2 u_i^2, (a^2 t u_i + beta_i)^2 <= 2 a^4 t^2 u_i^2 + 2 beta_i^2,
sum u_i^4 <= U^4, t^2 U^2 <= rad^4/4):
  sigma2 <= (1/m) [a^4 rad^6/2 + 2 ||beta||^2 rad^2 + gamma (a^2 rad^4/2 + ||beta|| rad^2) + gamma^2 rad^2];
  extra['sigma2_f'] <= (1/m) [a_V^4 rad^6/2 + 2 ||beta_V||^2 rad^2] (same steps, gamma = 0);
  hess_var = sup (m-1)/m^2 sum_i ||K_i'K_i + gamma I||_F^2 <= (m-1)/m^2 sum_i (a_i^4 rad^4 + 2 gamma a_i^2 rad^2
  + p gamma^2) (the identity E||H_i e_i e_i' - (1/m) blockdiag H||_F^2 = (m-1)/m^2 sum ||H_i||_F^2 is exact).
For m = 1 all three are 0 (exactly).
"""

from __future__ import annotations

import torch

from ._validate import check_count, check_dtype, check_int
from .base import register
from .hyperrep import RidgeRepresentation
from .rng import Streams

__all__ = ["MetaLearning"]


@register
class MetaLearning(RidgeRepresentation):
    """Few-shot meta-learning: shared linear embedding, m ridge heads; stochastic over tasks."""

    name = "meta-learning"
    kappa_exact = False  # L is a rigorous bound on the region (the Hessian moves with x); kappa exact at x_ref
    stochastic = True
    summary = ("meta-learning: x = vec(Phi) shared embedding, y = m ridge heads; f, g means over tasks, task"
               " mini-batches (ICML 2021 Thm 4 / arXiv Thm 3); kappa exact at x_ref, constants on a ball")
    param_doc = {
        "dim_x": (None, "derived: d * p (x = vec(Phi)); an explicit value must match"),
        "dim_y": (None, "derived: tasks * p (y = heads stacked); an explicit value must match"),
        "kappa": (10.0, "L_yy(x_ref)/mu = 1 + max_i ||A_i Phi_ref||^2/gamma, exact at x_ref; sets gamma; > 1"),
        "tasks": (8, "number m of tasks (the samples of the stochastic oracles)"),
        "p": (3, "embedding width (columns of Phi) = size of each head"),
        "d": (5, "number of input features"),
        "n": (6, "training rows per task (support set)"),
        "n_val": (None, "test rows per task (query set; default n)"),
        "noise": (0.1, "standard deviation of the response noise"),
        "radius": (None, "radius of the ball in z = (x, y) where the constants hold (default 2||z_ref||)"),
    }

    def __init__(self, *, dim_x=None, dim_y=None, kappa=None, seed=0, dtype=torch.float64, device="cpu",
                 batch=None, tasks=8, p=3, d=5, n=6, n_val=None, noise=0.1, radius=None):
        self.tasks = check_count("tasks", tasks, check_dtype("dtype", dtype))
        p_, d_ = check_int("p", p, minimum=1), check_int("d", d, minimum=1)
        super().__init__(dim_x=d_ * p_, dim_y=self.tasks * p_, batch=batch, dtype=dtype, device=device,
                         seed=seed)
        self._setup(p=p_, d=d_, n=n, n_val=n if n_val is None else n_val, kappa=kappa, noise=noise,
                    radius=radius, dim_x=dim_x, dim_y=dim_y, shared_teacher=True)

    def family_params(self):
        return {"kappa": self.kappa, "tasks": self.tasks, "p": self.p, "d": self.d, "n": self.n,
                "n_val": self.n_val, "noise": self.noise, "radius": self.radius}

    @property
    def n_f(self) -> int:
        return self.tasks

    @property
    def n_g(self) -> int:
        return self.tasks

    # ------------------------------------------------------------------ Assumption 4 constants
    def _extra_constants(self, bd) -> dict[str, float]:
        """sigma2, hess_var and sigma2_f on the ball (formulas in the module docstring)."""
        m, rad = self.tasks, self.radius
        if m == 1:
            return {"sigma2": 0.0, "hess_var": 0.0, "sigma2_f": 0.0}
        a_t = torch.linalg.matrix_norm(self.A, ord=2)  # (R, m), per task
        a, a_V = bd["a_T"], bd["a_V"]
        bT, bV = bd["beta_T"].norm(dim=-1), bd["beta_V"].norm(dim=-1)
        gam = self.gamma
        sigma2 = (a**4 * rad**6 / 2 + 2 * bT**2 * rad**2 + gam * (a**2 * rad**4 / 2 + bT * rad**2)
                  + gam**2 * rad**2) / m
        sigma2_f = (a_V**4 * rad**6 / 2 + 2 * bV**2 * rad**2) / m
        g1 = gam.unsqueeze(-1)
        hess = (m - 1) / m**2 * (a_t**4 * rad**4 + 2 * g1 * a_t**2 * rad**2 + self.p * g1**2).sum(dim=1)
        return {"sigma2": float(sigma2.max()), "hess_var": float(hess.max()), "sigma2_f": float(sigma2_f.max())}

    def _extra_regions(self, ball: str) -> dict[str, str]:
        return {"sigma2": f"rigorous bound on {ball} (one uniformly drawn task; 0 when m = 1)",
                "hess_var": f"rigorous bound on {ball} (one uniformly drawn task; 0 when m = 1)",
                "per-task": "extra mu_task (exact), L_task, M_task (bounds): one task loss in (Phi, w_i) on the"
                            " projection of the ball, as Theorem 4 (ICML) / Theorem 3 (arXiv) assume them"}

    # ------------------------------------------------------------------ sampling
    def sample(self, which: str, size: int, streams, replace: bool = True) -> torch.Tensor:
        """Indices (R, size) of tasks drawn uniformly (with replacement by default: i.i.d. tasks as in
        ICML 2021 Sec. 5), from ``analytic.rng.Streams`` (one stream per instance) or a torch.Generator."""
        if which not in ("f", "g"):
            raise ValueError(f"which must be 'f' or 'g', got {which!r}")
        size = check_int("size", size, minimum=1)
        if not isinstance(replace, bool):
            raise TypeError(f"replace must be a bool, got {type(replace).__name__}")
        if not replace and size > self.tasks:
            raise ValueError(f"size={size} exceeds the number of tasks m={self.tasks} (replace=False)")
        if isinstance(streams, Streams):
            if streams.R != self.R:
                raise ValueError(f"streams has {streams.R} streams, the problem has batch {self.R}")
            idx = streams.integers(self.tasks, size, replace=replace)
        elif isinstance(streams, torch.Generator):
            if replace:
                idx = torch.randint(0, self.tasks, (self.R, size), generator=streams)
            else:
                idx = torch.stack([torch.randperm(self.tasks, generator=streams)[:size] for _ in range(self.R)])
        else:
            raise TypeError(f"streams must be an analytic.rng.Streams or a torch.Generator, got "
                            f"{type(streams).__name__}")
        return idx.to(self.device)

    # ------------------------------------------------------------------ mini-batch means over tasks idx (R, S)
    def _F(self, x, y, idx):
        return self._loss("f", x, y, idx)

    def _G(self, x, y, idx):
        return self._loss("g", x, y, idx)

    def _grad_x_F(self, x, y, idx):
        return self._grad_x("f", x, y, idx)

    def _grad_y_F(self, x, y, idx):
        return self._grad_y("f", x, y, idx)

    def _grad_x_G(self, x, y, idx):
        return self._grad_x("g", x, y, idx)

    def _grad_y_G(self, x, y, idx):
        return self._grad_y("g", x, y, idx)

    def _hvp_G(self, x, y, v, idx):
        return self._hvp_tasks(x, y, v, idx)

    def _jvp_G(self, x, y, v, idx):
        return self._jvp_tasks(x, y, v, idx)
