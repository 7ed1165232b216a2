"""Base class, constants and registry of the analytic bilevel problems.

A problem is  min_x Phi(x) = f(x, y*(x)),  y*(x) = argmin_y g(x, y)  with g mu-strongly convex in y
(Assumption 1 of Ji, Yang, Liang, ICML 2021). Every problem may carry a leading batch dimension R of
independent instances; internally all tensors are (R, d) and the public methods also accept (d,) when
the problem is unbatched.

Subclasses implement ``_f`` and ``_g`` on batched tensors and, where known, closed forms of the
derivatives and of the truth; anything not overridden falls back to ``torch.func`` autograd (for the
derivatives) or to Newton's method plus exact implicit differentiation (for the truth), so a user
problem given only f and g works everywhere.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import torch
from torch.func import grad as _fgrad
from torch.func import vjp as _fvjp

from ._validate import check_count, check_device, check_dtype, check_int, check_tensor

__all__ = [
    "Constants",
    "AssumptionReport",
    "BilevelProblem",
    "MiniBatch",
    "lemma2_L_phi",
    "register",
    "FAMILIES",
]


def lemma2_L_phi(L: float, mu: float, M: float, tau: float, rho: float) -> float:
    """L_Phi of Lemma 2 (Ji, Yang, Liang, arXiv, eq. 11; = L_Phi of ICML 2021 Theorem 1), as printed.

    L_Phi = L + (2 L^2 + tau M^2)/mu + (rho L M + L^3 + tau M L)/mu^2 + rho L^2 M/mu^3.
    (bounds.arxiv20 also gives the re-derived variant with tau M / mu.)
    """
    return (
        L
        + (2 * L**2 + tau * M**2) / mu
        + (rho * L * M + L**3 + tau * M * L) / mu**2
        + rho * L**2 * M / mu**3
    )


@dataclass(frozen=True)
class Constants:
    """The constants of Assumptions 1-4 (ICML 2021 Sec. 3) of one problem, valid for every instance.

    L: Lipschitz constant of grad f and grad g in z = (x, y) jointly (Assumption 2);
    mu: strong-convexity modulus of g in y (Assumption 1); kappa = L / mu;
    M: Lipschitz constant of f (Assumption 2), on ``regions['M']``;
    tau, rho: Lipschitz constants of grad_x grad_y g and grad_yy g (Assumption 3);
    L_phi: Lemma 2 of the arXiv paper (eq. 11) evaluated with these constants;
    sigma2: bound on E||grad G(z; zeta) - grad g(z)||^2 (Assumption 4), stochastic families only;
    hess_var: E||grad_yy G(z; zeta) - grad_yy g(z)||_F^2 (single sample), stochastic families only;
    regions: where each constant holds (a sentence per constant);
    extra: family-specific exact quantities (e.g. the Hessian spectrum of the lower level).
    For a batch of instances each number is the largest (smallest for mu) over the batch.
    """

    L: float
    mu: float
    kappa: float
    M: float
    tau: float
    rho: float
    L_phi: float
    sigma2: float | None = None
    hess_var: float | None = None
    regions: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for JSON and tables)."""
        out = asdict(self)
        out["regions"] = dict(self.regions)
        out["extra"] = dict(self.extra)
        return out


@dataclass
class AssumptionReport:
    """Outcome of :meth:`BilevelProblem.check_assumptions`: measured ratios against declared constants.

    ``measured[name]`` is the largest observed ratio (e.g. ||grad g(z) - grad g(z')|| / ||z - z'||), or
    for ``mu`` the smallest observed eigenvalue; ``violations`` lists the constants the data broke.
    """

    declared: dict[str, float]
    measured: dict[str, float]
    attained: dict[str, bool]
    violations: list[str]
    n_pairs: int

    @property
    def ok(self) -> bool:
        return not self.violations


FAMILIES: dict[str, type[BilevelProblem]] = {}


def register(cls):
    """Class decorator: add a problem family to the registry under ``cls.name``."""
    if cls.name in FAMILIES:
        raise ValueError(f"problem family {cls.name!r} registered twice")
    FAMILIES[cls.name] = cls
    return cls


def split_draw(idx: torch.Tensor, sizes: list[int]) -> list[torch.Tensor]:
    """Consecutive index tensors (R, size) of one draw idx (R, sum(sizes)): mini-batches as plain indices."""
    return list(torch.split(idx, sizes, dim=1))


class MiniBatch:
    """A drawn mini-batch: columns lo..hi-1 of one draw of sample indices (R, total), whose rows of a
    problem's per-sample tables are gathered once for the whole draw, on first use
    (``BilevelProblem.minibatches``).

    The closed-form oracles of a finite-sum family read ``rows(table)`` instead of gathering on every call:
    an inner loop of N steps on one draw costs one gather instead of N. Only the tables an oracle reads are
    gathered (an HVP reads x_i alone, a third of the G table's width). ``shape`` (R, size) is that of the
    index tensor, so a MiniBatch counts like one (|batch| = shape[-1]).
    """

    __slots__ = ("_draw", "lo", "hi", "shape")

    def __init__(self, draw: _Draw, lo: int, hi: int):
        self._draw, self.lo, self.hi = draw, lo, hi
        self.shape = torch.Size((draw.idx.shape[0], hi - lo))

    @property
    def idx(self) -> torch.Tensor:
        """The sample indices (R, size)."""
        return self._draw.idx[:, self.lo:self.hi]

    def rows(self, table: torch.Tensor) -> torch.Tensor:
        """table[r, idx[r, s]] (R, size, ...) for a per-sample table (R, n, ...) of the problem."""
        return self._draw.rows(table, self.lo, self.hi)

    def __repr__(self) -> str:
        return f"MiniBatch(shape={tuple(self.shape)}, columns {self.lo}..{self.hi - 1} of a draw)"


#: the most bytes of gathered rows a draw keeps per table. A longer draw (SID's t = 4096 steps of R = 1024
#: instances drawn at once: 2 GB of rows) is gathered block by block, each block whole mini-batches of at most
#: this size (or one mini-batch), and only the block in use is kept: a loop that reads its mini-batches in
#: order gathers each row once, as with one gather, in bounded memory
GATHER_BYTES = 32 * 2**20


class _Draw:
    """One draw of indices (R, total) and its gathered table rows, cached per table (by identity: the
    tables are fixed attributes of the problem): all of it, or the block of mini-batches in use where all of
    it would exceed ``GATHER_BYTES``."""

    __slots__ = ("idx", "_gather", "_cache", "_ends")

    def __init__(self, idx: torch.Tensor, gather):
        self.idx, self._gather, self._cache, self._ends = idx, gather, {}, [idx.shape[1]]

    def rows(self, table: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """Rows of ``table`` for the draw's columns lo..hi-1 (those of one mini-batch)."""
        key = id(table)
        hit = self._cache.get(key)
        if hit is None or not (hit[0] <= lo and hi <= hit[1]):
            blo, bhi = self._block(table, lo, hi)
            hit = self._cache[key] = (blo, bhi, self._gather(table, self.idx[:, blo:bhi]))
        blo, bhi, rows = hit
        return rows if (blo, bhi) == (lo, hi) else rows[:, lo - blo:hi - blo]

    def _block(self, table: torch.Tensor, lo: int, hi: int) -> tuple[int, int]:
        """Columns to gather for a mini-batch lo..hi-1: the whole draw if its rows fit ``GATHER_BYTES``, else
        from lo the most whole mini-batches that fit (at least this one)."""
        total = self.idx.shape[1]
        col_bytes = self.idx.shape[0] * table[0, 0].numel() * table.element_size()
        budget = max(1, GATHER_BYTES // max(1, col_bytes))
        if total <= budget:
            return 0, total
        # the last batch end within the budget (ends increase), and at least this batch's
        return lo, max(hi, self._ends[bisect.bisect_right(self._ends, lo + budget) - 1])

    def split(self, sizes: list[int]) -> list[MiniBatch]:
        out, lo = [], 0
        for size in sizes:
            out.append(MiniBatch(self, lo, lo + size))
            lo += size
        self._ends = [b.hi for b in out]
        return out


class BilevelProblem:
    """A bilevel problem (possibly a batch of R independent instances) with exact truth.

    Public methods take x, y of shape (dim_x,), (dim_y,) for an unbatched problem or (R, dim_x),
    (R, dim_y); scalars come back as () or (R,).
    """

    name: ClassVar[str] = "problem"
    stochastic: ClassVar[bool] = False
    #: a one-line description for ``bilevelbench list problems``
    summary: ClassVar[str] = ""
    #: family parameters and their meaning, for listings: {param: (default, meaning)}
    param_doc: ClassVar[Mapping[str, tuple[Any, str]]] = {}
    #: True when L and mu are exact and attained, so kappa = L/mu is exact. A family whose lower-level
    #: Hessian moves with x (hyper-representation, meta-learning) can only bound L on its region; it sets
    #: False and says in ``constants.regions`` what is exact where.
    kappa_exact: ClassVar[bool] = True

    def __init__(self, *, dim_x, dim_y, batch=None, dtype=torch.float64, device="cpu", seed=0):
        self.dtype = check_dtype("dtype", dtype)
        # dimensions bounded by the dtype (``_validate.NumericLimits.count_max``): sums over them keep digits
        self.dim_x = check_count("dim_x", dim_x, self.dtype)
        self.dim_y = check_count("dim_y", dim_y, self.dtype)
        self.batch = check_int("batch", batch, minimum=1, allow_none=True)
        self.device = check_device("device", device)
        self.seed = check_int("seed", seed, minimum=0)
        self.phi_star: float | None = None
        self._constants: Constants | None = None

    # ------------------------------------------------------------------ bookkeeping
    @property
    def R(self) -> int:
        """Number of instances (1 for an unbatched problem)."""
        return 1 if self.batch is None else self.batch

    @property
    def constants(self) -> Constants:
        if self._constants is None:
            raise NotImplementedError(f"{type(self).__name__} declares no constants")
        return self._constants

    def params(self) -> dict[str, Any]:
        """The configuration that rebuilds this problem through ``make_problem``."""
        return {"name": self.name, "dim_x": self.dim_x, "dim_y": self.dim_y, "seed": self.seed,
                "batch": self.batch, "dtype": str(self.dtype).replace("torch.", ""),
                "device": str(self.device), **self.family_params()}

    def family_params(self) -> dict[str, Any]:
        """Family-specific parameters (overridden by families)."""
        return {}

    def instance_generator(self, r: int = 0) -> torch.Generator:
        """CPU generator for the data of instance r: seeded by ``seed + r``, so instance r of a batch
        equals the unbatched problem with seed ``seed + r``. Data is drawn on the CPU in float64 so
        that a seed gives the same instance on every device and dtype."""
        return torch.Generator(device="cpu").manual_seed(1_000_003 * (self.seed + r) + 17)

    def instance(self, r: int) -> BilevelProblem:
        """Instance r of the batch as an unbatched problem of the same family."""
        r = check_int("r", r, minimum=0)
        if r >= self.R:
            raise ValueError(f"r must be < batch={self.R}, got {r}")
        return type(self)(dim_x=self.dim_x, dim_y=self.dim_y, seed=self.seed + r, dtype=self.dtype,
                          device=self.device, **self.family_params())

    def minibatches(self, which: str, idx: torch.Tensor, sizes: list[int]) -> list:
        """Consecutive mini-batches of the sizes ``sizes`` out of one draw ``idx`` (R, sum(sizes)) for F
        (``'f'``) or G (``'g'``): index tensors (R, size) here; finite-sum families return ``MiniBatch``
        objects whose rows are gathered once for the whole draw."""
        return split_draw(idx, sizes)

    def _t(self, tensor: torch.Tensor) -> torch.Tensor:
        """Move CPU float64 data to the problem's dtype and device."""
        return tensor.to(dtype=self.dtype, device=self.device)

    def default_x0(self) -> torch.Tensor:
        """Starting point used by sweeps: zeros, (R, dim_x) batched or (dim_x,)."""
        shape = (self.dim_x,) if self.batch is None else (self.R, self.dim_x)
        return torch.zeros(shape, dtype=self.dtype, device=self.device)

    # ------------------------------------------------------------------ shape handling
    def _in(self, name: str, t, dim: int) -> tuple[torch.Tensor, bool]:
        shapes = [(self.R, dim)] + ([(dim,)] if self.batch is None else [])
        check_tensor(name, t, dtype=self.dtype, device=self.device, shapes=shapes)
        return (t.unsqueeze(0), True) if t.dim() == 1 else (t, False)

    @staticmethod
    def _out(t: torch.Tensor, squeeze: bool) -> torch.Tensor:
        return t.squeeze(0) if squeeze else t

    def _xy(self, x, y):
        xb, sq = self._in("x", x, self.dim_x)
        yb, sq_y = self._in("y", y, self.dim_y)
        if sq != sq_y:
            raise ValueError(f"x and y must both be batched or both unbatched, got {tuple(x.shape)}"
                             f" and {tuple(y.shape)}")
        return xb, yb, sq

    # ------------------------------------------------------------------ public API
    def f(self, x, y):
        """Upper-level objective f(x, y): () or (R,)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._f(xb, yb), sq)

    def g(self, x, y):
        """Lower-level objective g(x, y): () or (R,)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._g(xb, yb), sq)

    def grad_x_f(self, x, y):
        """Partial gradient grad_x f(x, y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._grad_x_f(xb, yb), sq)

    def grad_y_f(self, x, y):
        """Partial gradient grad_y f(x, y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._grad_y_f(xb, yb), sq)

    def grad_x_g(self, x, y):
        """Partial gradient grad_x g(x, y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._grad_x_g(xb, yb), sq)

    def grad_y_g(self, x, y):
        """Partial gradient grad_y g(x, y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._grad_y_g(xb, yb), sq)

    def hvp(self, x, y, v):
        """Hessian-vector product grad_yy g(x, y) v (HV of Definition 2)."""
        xb, yb, sq = self._xy(x, y)
        vb, _ = self._in("v", v, self.dim_y)
        return self._out(self._hvp(xb, yb, vb), sq)

    def jvp(self, x, y, v):
        """Jacobian-vector product grad_x grad_y g(x, y) v, shape like x (JV of Definition 2)."""
        xb, yb, sq = self._xy(x, y)
        vb, _ = self._in("v", v, self.dim_y)
        return self._out(self._jvp(xb, yb, vb), sq)

    def hessian_yy(self, x, y):
        """Dense grad_yy g(x, y): (dim_y, dim_y) or (R, dim_y, dim_y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._hess_yy(xb, yb), sq)

    def jacobian_xy(self, x, y):
        """Dense grad_x grad_y g(x, y): (dim_x, dim_y) or (R, dim_x, dim_y)."""
        xb, yb, sq = self._xy(x, y)
        return self._out(self._jac_xy(xb, yb), sq)

    def y_star(self, x):
        """The lower-level solution y*(x)."""
        xb, sq = self._in("x", x, self.dim_x)
        return self._out(self._y_star(xb), sq)

    def phi(self, x):
        """Phi(x) = f(x, y*(x))."""
        xb, sq = self._in("x", x, self.dim_x)
        return self._out(self._phi(xb), sq)

    def hypergradient(self, x):
        """The true hypergradient grad Phi(x) (ICML 2021 Prop. 1, eq. 4)."""
        xb, sq = self._in("x", x, self.dim_x)
        return self._out(self._hypergradient(xb), sq)

    # ------------------------------------------------------------------ to implement
    def _f(self, x, y):  # pragma: no cover - abstract
        raise NotImplementedError

    def _g(self, x, y):  # pragma: no cover - abstract
        raise NotImplementedError

    # ------------------------------------------------------------------ autograd fallbacks
    def _grad_x_f(self, x, y):
        return _fgrad(lambda a: self._f(a, y).sum())(x)

    def _grad_y_f(self, x, y):
        return _fgrad(lambda b: self._f(x, b).sum())(y)

    def _grad_x_g(self, x, y):
        return _fgrad(lambda a: self._g(a, y).sum())(x)

    def _grad_y_g(self, x, y):
        return _fgrad(lambda b: self._g(x, b).sum())(y)

    def _hvp(self, x, y, v):
        # grad_yy g is symmetric, so the vector-Jacobian product of grad_y g is H v.
        _, pull = _fvjp(lambda b: self._grad_y_g(x, b), y)
        return pull(v)[0]

    def _jvp(self, x, y, v):
        return _fgrad(lambda a: (self._grad_y_g(a, y) * v).sum())(x)

    def _hess_yy(self, x, y):
        return _columns(lambda v: self._hvp(x, y, v), y)

    def _jac_xy(self, x, y):
        return _columns(lambda v: self._jvp(x, y, v), y)

    # ------------------------------------------------------------------ truth fallbacks
    def _y_star(self, x, *, tol: float | None = None, max_iter: int = 100):
        """Newton's method on grad_y g = 0 from y = 0 (quadratic convergence, g strongly convex)."""
        y = torch.zeros(x.shape[0], self.dim_y, dtype=x.dtype, device=x.device)
        tol = tol if tol is not None else 1e3 * torch.finfo(x.dtype).eps
        for _ in range(max_iter):
            grad = self._grad_y_g(x, y)
            step = torch.linalg.solve(self._hess_yy(x, y), grad.unsqueeze(-1)).squeeze(-1)
            y = y - step
            if float(step.norm(dim=-1).max()) <= tol * (1.0 + float(y.norm(dim=-1).max())):
                break
        return y

    def _phi(self, x):
        return self._f(x, self._y_star(x))

    def _hypergradient(self, x):
        """grad Phi = grad_x f - grad_x grad_y g v*, grad_yy g v* = grad_y f at y*(x) (ICML Prop. 1)."""
        y = self._y_star(x)
        v = torch.linalg.solve(self._hess_yy(x, y), self._grad_y_f(x, y).unsqueeze(-1))
        return self._grad_x_f(x, y) - (self._jac_xy(x, y) @ v).squeeze(-1)

    # ------------------------------------------------------------------ assumptions
    def region_radius(self) -> float:
        """Radius of the ball in z = (x, y) (around the origin) on which the constants are declared."""
        return math.inf

    def sample_region(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n points (per instance) in the declared region: returns x (n, R, dim_x), y (n, R, dim_y)."""
        radius = self.region_radius()
        radius = 10.0 if not math.isfinite(radius) else radius
        d = self.dim_x + self.dim_y
        z = torch.randn(n, self.R, d, generator=generator, dtype=torch.float64)
        z = z / z.norm(dim=-1, keepdim=True)
        r = radius * torch.rand(n, self.R, 1, generator=generator, dtype=torch.float64) ** (1.0 / d)
        z = self._t(z * r)
        return z[..., : self.dim_x], z[..., self.dim_x:]

    def check_assumptions(self, n_pairs: int = 64, seed: int = 0,
                          rtol: float | None = None) -> AssumptionReport:
        """Check the declared constants on random pairs of points of the region.

        Lipschitz ratios ||grad h(z) - grad h(z')|| / ||z - z'|| for h = f, g must not exceed L; the
        joint Hessian norms of f and g (which bound those ratios) must not exceed L; |f(z) - f(z')| /
        ||z - z'|| and ||grad f(z)|| must not exceed M; ratios of grad_x grad_y g and grad_yy g (operator
        norm) must not exceed tau and rho; eigenvalues of grad_yy g lie in [mu, L_yy]. ``rtol`` defaults
        to 1e-8 (float64) / 1e-4 (float32): the round-off of the eigen- and norm computations.
        """
        c = self.constants
        rtol = rtol if rtol is not None else (1e-8 if self.dtype == torch.float64 else 1e-4)
        gen = torch.Generator().manual_seed(seed)
        xs, ys = self.sample_region(2 * n_pairs, gen)
        meas = {"L": 0.0, "M": 0.0, "tau": 0.0, "rho": 0.0, "mu": math.inf, "L_yy": 0.0}
        for i in range(n_pairs):
            x1, y1, x2, y2 = xs[2 * i], ys[2 * i], xs[2 * i + 1], ys[2 * i + 1]
            dz = torch.cat([x1 - x2, y1 - y2], -1).norm(dim=-1)
            for grad_pair in ((self._grad_x_f, self._grad_y_f), (self._grad_x_g, self._grad_y_g)):
                g1 = torch.cat([grad_pair[0](x1, y1), grad_pair[1](x1, y1)], -1)
                g2 = torch.cat([grad_pair[0](x2, y2), grad_pair[1](x2, y2)], -1)
                meas["L"] = max(meas["L"], float(((g1 - g2).norm(dim=-1) / dz).max()))
            df = (self._f(x1, y1) - self._f(x2, y2)).abs() / dz
            gf = torch.cat([self._grad_x_f(x1, y1), self._grad_y_f(x1, y1)], -1).norm(dim=-1)
            meas["M"] = max(meas["M"], float(df.max()), float(gf.max()))
            dj = torch.linalg.matrix_norm(self._jac_xy(x1, y1) - self._jac_xy(x2, y2), ord=2) / dz
            dh = torch.linalg.matrix_norm(self._hess_yy(x1, y1) - self._hess_yy(x2, y2), ord=2) / dz
            meas["tau"] = max(meas["tau"], float(dj.max()))
            meas["rho"] = max(meas["rho"], float(dh.max()))
            eig = torch.linalg.eigvalsh(self._hess_yy(x1, y1))
            meas["mu"] = min(meas["mu"], float(eig[..., 0].min()))
            meas["L_yy"] = max(meas["L_yy"], float(eig[..., -1].max()))
            meas["L"] = max(meas["L"], self._joint_hessian_norm(x1, y1))
        declared = {"L": c.L, "M": c.M, "tau": c.tau, "rho": c.rho, "mu": c.mu}
        violations = []
        for k in ("L", "M", "tau", "rho"):
            if meas[k] > declared[k] * (1 + rtol) + rtol * c.L * (k in ("tau", "rho")):
                violations.append(k)
        if meas["mu"] < c.mu * (1 - rtol):
            violations.append("mu")
        if meas["L_yy"] > c.L * (1 + rtol):
            violations.append("L_yy")
        attained = self._attained(rtol)
        return AssumptionReport(declared, meas, attained, violations, n_pairs)

    def _joint_hessian_norm(self, x, y) -> float:
        """Largest spectral norm over instances of the joint Hessians of f and of g at (x, y)."""
        best = 0.0
        z = torch.cat([x, y], -1)
        for fn in (self._f, self._g):
            def h(zz, fn=fn):
                return fn(zz[..., : self.dim_x], zz[..., self.dim_x:]).sum()
            _, pull = _fvjp(_fgrad(h), z)
            hess = _columns(lambda v, pull=pull: pull(v)[0], z)
            best = max(best, float(torch.linalg.matrix_norm(hess, ord=2).max()))
        return best

    def _attained(self, rtol: float) -> dict[str, bool]:
        """Whether mu and L are attained as eigenvalues of grad_yy g; families override where the
        extremes are attained at known points (default: checked at the origin)."""
        x = torch.zeros(self.R, self.dim_x, dtype=self.dtype, device=self.device)
        y = torch.zeros(self.R, self.dim_y, dtype=self.dtype, device=self.device)
        eig = torch.linalg.eigvalsh(self._hess_yy(x, y))
        c = self.constants
        return {
            "mu": bool(((eig[..., 0] - c.mu).abs() <= rtol * c.L).all()),
            "L": bool(((eig[..., -1] - c.L).abs() <= rtol * c.L).all()),
        }


def _columns(apply, like: torch.Tensor) -> torch.Tensor:
    """Dense (R, m, d) matrix whose column i is ``apply(e_i)`` for the unit vectors e_i of size d (batched
    like ``like``, (R, d)): one vectorised call (torch.func.vmap) instead of d separate ones; falls back to a
    loop for functions vmap cannot trace."""
    d = like.shape[-1]
    basis = torch.eye(d, dtype=like.dtype, device=like.device).unsqueeze(1).expand(d, *like.shape)
    try:
        cols = torch.func.vmap(apply)(basis)  # (d, R, m)
    except (RuntimeError, NotImplementedError):
        cols = torch.stack([apply(basis[i]) for i in range(d)])
    return cols.permute(1, 2, 0)


class FunctionProblem(BilevelProblem):
    """A user problem given only f(x, y) and g(x, y) as batched torch functions (autograd everything).

    ``f`` and ``g`` map x (R, dim_x), y (R, dim_y) to (R,). Truth by Newton's method and exact implicit
    differentiation; ``constants`` may be passed when known.
    """

    name = "function"

    def __init__(self, f: Callable, g: Callable, *, dim_x, dim_y, batch=None, dtype=torch.float64,
                 device="cpu", constants: Constants | None = None):
        super().__init__(dim_x=dim_x, dim_y=dim_y, batch=batch, dtype=dtype, device=device, seed=0)
        if not callable(f) or not callable(g):
            raise TypeError("f and g must be callables f(x, y) -> (R,)")
        self._user_f, self._user_g = f, g
        self._constants = constants

    def _f(self, x, y):
        return self._user_f(x, y)

    def _g(self, x, y):
        return self._user_g(x, y)
