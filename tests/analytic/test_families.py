"""Contract tests run on every registered problem family (the registry drives the parametrisation).

Tolerances:
- finite differences of Phi: central differences with h = 1e-5 have truncation error O(h^2 |Phi'''|)
  ~ 1e-10 and cancellation error O(eps |Phi| / h) ~ 1e-11 relative, so 1e-6 relative leaves a wide
  margin for families with large third derivatives (issue 2 fixes 1e-6);
- closed form against autograd: both are exact formulas evaluated in float64, differing only by
  round-off of O(d eps cond) ~ 1e-13; 1e-10 relative as the issue fixes;
- grad_y g(x, y*(x)): y* exact up to the round-off of a solve, O(kappa eps) relative to ||grad_y f||.
"""

import math

import pytest
import torch

import bilevelbench.analytic as an
from bilevelbench.algorithms.oracle import CountedOracle

FAMILIES = an.names()
SEEDS = [0, 1, 2]


def small(name, seed=0, batch=None, **kw):
    """A small instance of each family (defaults of the family otherwise)."""
    return an.make_problem(name, seed=seed, batch=batch, **kw)


def rand_xy(p, gen, scale=0.5):
    x = scale * torch.randn(p.R, p.dim_x, generator=gen, dtype=torch.float64).to(p.dtype)
    y = scale * torch.randn(p.R, p.dim_y, generator=gen, dtype=torch.float64).to(p.dtype)
    return x, y


def rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_hypergradient_matches_finite_differences(name, seed):
    p = small(name, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    x, _ = rand_xy(p, gen)
    grad = p.hypergradient(x)
    h = 1e-5
    fd = torch.zeros_like(x)
    for i in range(p.dim_x):
        e = torch.zeros_like(x)
        e[:, i] = h
        fd[:, i] = (p.phi(x + e) - p.phi(x - e)) / (2 * h)
    assert rel(grad, fd) <= 1e-6, (name, rel(grad, fd))


@pytest.mark.parametrize("name", FAMILIES)
def test_hypergradient_matches_generic_implicit_differentiation(name):
    """Closed-form grad Phi against eq. (4) with dense Hessian/Jacobian from autograd and a solve."""
    p = small(name)
    gen = torch.Generator().manual_seed(5)
    x, _ = rand_xy(p, gen)
    y = p._y_star(x)
    H = an.BilevelProblem._hess_yy(p, x, y)
    J = an.BilevelProblem._jac_xy(p, x, y)
    v = torch.linalg.solve(H, an.BilevelProblem._grad_y_f(p, x, y).unsqueeze(-1))
    ref = an.BilevelProblem._grad_x_f(p, x, y) - (J @ v).squeeze(-1)
    kappa = p.constants.kappa
    assert rel(p._hypergradient(x), ref) <= 1e-10 * max(1.0, kappa), name


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("method", ["grad_x_f", "grad_y_f", "grad_x_g", "grad_y_g", "hvp", "jvp"])
def test_closed_form_equals_autograd(name, method):
    p = small(name, batch=2)
    gen = torch.Generator().manual_seed(11)
    x, y = rand_xy(p, gen)
    v = torch.randn(p.R, p.dim_y, generator=gen, dtype=torch.float64).to(p.dtype)
    closed, auto = CountedOracle(p, "closed"), CountedOracle(p, "autograd")
    args = (x, y, v) if method in ("hvp", "jvp") else (x, y)
    a, b = getattr(closed, method)(*args), getattr(auto, method)(*args)
    assert a.shape == b.shape
    assert rel(a, b) <= 1e-10, (name, method, rel(a, b))


@pytest.mark.parametrize("name", FAMILIES)
def test_dense_derivatives_equal_autograd(name):
    p = small(name)
    gen = torch.Generator().manual_seed(3)
    x, y = rand_xy(p, gen)
    assert rel(p._hess_yy(x, y), an.BilevelProblem._hess_yy(p, x, y)) <= 1e-10
    assert rel(p._jac_xy(x, y), an.BilevelProblem._jac_xy(p, x, y)) <= 1e-10


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_y_star_is_stationary(name, seed):
    p = small(name, seed=seed)
    gen = torch.Generator().manual_seed(seed + 100)
    x, _ = rand_xy(p, gen)
    y = p.y_star(x)
    res = p.grad_y_g(x, y).norm()
    scale = p.constants.L * max(1.0, float(y.norm()))
    assert float(res) <= 1e3 * torch.finfo(torch.float64).eps * p.constants.kappa * scale, float(res)


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed", SEEDS)
def test_declared_constants_hold_and_are_attained(name, seed):
    p = small(name, seed=seed)
    report = p.check_assumptions(n_pairs=16, seed=seed)
    assert report.ok, (name, report.violations, report.measured, report.declared)
    assert report.attained["mu"], report.attained
    # L is attained wherever the family declares kappa exact; otherwise L is a rigorous bound (regions say so)
    assert report.attained["L"] or not type(p).kappa_exact, report.attained
    if not type(p).kappa_exact:
        assert "bound" in p.constants.regions["L"]
    c = p.constants
    assert math.isclose(c.kappa, c.L / c.mu, rel_tol=1e-12)
    assert c.L_phi == pytest.approx(an.lemma2_L_phi(c.L, c.mu, c.M, c.tau, c.rho), rel=1e-12)


@pytest.mark.parametrize("name", FAMILIES)
def test_batch_instances_equal_unbatched(name):
    p = small(name, batch=3, seed=4)
    gen = torch.Generator().manual_seed(0)
    x, _ = rand_xy(p, gen)
    hg = p.hypergradient(x)
    for r in range(3):
        q = p.instance(r)
        assert torch.allclose(q.hypergradient(x[r]), hg[r], rtol=1e-12, atol=0), (name, r)


@pytest.mark.parametrize("name", FAMILIES)
def test_phi_star_is_a_lower_bound(name):
    p = small(name)
    if p.phi_star is None:
        pytest.skip(f"{name}: inf Phi not known in closed form")
    gen = torch.Generator().manual_seed(9)
    xs = [rand_xy(p, gen, scale=2.0)[0] for _ in range(20)]
    assert min(float(p.phi(x).min()) for x in xs) >= p.phi_star - 1e-12


@pytest.mark.parametrize("name", FAMILIES)
def test_bad_input_is_rejected_with_the_argument_named(name):
    with pytest.raises(ValueError, match="kappa"):
        an.make_problem(name, kappa=0.5)
    with pytest.raises(ValueError, match="dim_x"):
        an.make_problem(name, dim_x=0)
    with pytest.raises(ValueError, match="batch"):
        an.make_problem(name, batch=0)
    with pytest.raises(TypeError, match="dtype"):
        an.make_problem(name, dtype=torch.int32)
    p = small(name)
    x = torch.zeros(p.dim_x + 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="x"):
        p.phi(x)
    with pytest.raises(TypeError, match="x"):
        p.phi(torch.zeros(p.dim_x, dtype=torch.float32))


def test_unknown_family_named_in_error():
    with pytest.raises(ValueError, match="no-such-family"):
        an.make_problem("no-such-family")


QUADRATIC_LOWER = [n for n in FAMILIES if isinstance(small(n), an.quadratic.QuadraticLowerLevel)]


@pytest.mark.parametrize("batch", [None, 3])
@pytest.mark.parametrize("name", QUADRATIC_LOWER)
def test_quadratic_lower_levels_store_exactly_symmetric_hessians(name, batch):
    """The HVP reads A (and the stochastic families' H0) in row form, v'A (``QuadraticLowerLevel._smv``):
    that is A v only if A equals A' exactly, so the check is bitwise. The stacked [A; -B'] must hold A and -B'
    bitwise too. The HVP itself then equals A v up to the round-off of a d-term dot product (d eps)."""
    p = small(name, batch=batch)
    for key in ("A", "H0"):
        if hasattr(p, key):
            H = getattr(p, key)
            assert torch.equal(H, H.transpose(-1, -2)), (name, key)
    dy = p.dim_y
    assert torch.equal(p._AB[..., :dy, :], p.A) and torch.equal(p._AB[..., dy:, :], -p.B.transpose(-1, -2))
    gen = torch.Generator().manual_seed(3)
    x, y = rand_xy(p, gen)
    v = torch.randn(p.R, dy, generator=gen, dtype=torch.float64)
    expected = torch.einsum("rij,rj->ri", p.A.expand(p.R, -1, -1), v)
    assert rel(p._hvp(x, y, v), expected) <= 4 * dy * torch.finfo(torch.float64).eps
