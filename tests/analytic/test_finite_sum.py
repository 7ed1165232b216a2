"""Tests of the finite-sum families (analytic/finite_sum.py): per-sample oracles, the SOBA-framework constants,
the penalty function l_nu and memory at scale. The families also run the contract tests of test_families.py.

Tolerances (float64, eps = 2.2e-16):
- two exact formulas for the same finite sum or the same matrix (closed form against autograd or brute
  force over the samples): 1e-10 relative, the round-off O(d eps cond) ~ 1e-13 with a wide margin;
- central differences with step h of a smooth function: truncation h^2 |l'''|/6 plus cancellation
  eps |l|/h; h = 1e-4 gives ~1e-9 relative for the families' O(1)-O(100) derivatives: 1e-6 (as
  test_families.py);
- an exact finite difference (central difference of a quadratic in nu): only the cancellation,
  1e3 eps ||G|| / h.
"""

import math

import pytest
import torch

import bilevelbench.analytic as an
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.analytic.finite_sum import PER_SAMPLE

FAMS = ["finite-sum-quadratic", "finite-sum-logistic"]
EPS = torch.finfo(torch.float64).eps


def point(p, seed=0, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    return tuple(scale * torch.randn(p.R, d, generator=gen, dtype=torch.float64) for d in (p.dim_x, p.dim_y, p.dim_y))


def rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def mean_oracle(o, name, x, y, v, idx):
    args = (x, y, v, idx) if PER_SAMPLE[name][1] else (x, y, idx)
    return getattr(o, name)(*args)


# ------------------------------------------------------------------------------------ per-sample oracles
@pytest.mark.parametrize("name", FAMS)
@pytest.mark.parametrize("backend", ["closed", "autograd"])
def test_per_sample_rows_equal_single_sample_oracles(name, backend):
    """Row s of ``per_sample`` on a batch equals the (closed-form or autograd) oracle on the one-index batch
    [idx[:, s]]: two independent computations of each component."""
    p = an.make_problem(name, batch=2, seed=3, n=20, m=24)
    x, y, v = point(p, 3)
    o = CountedOracle(p, backend)
    for oracle, (_which, takes_v) in PER_SAMPLE.items():
        idx = torch.tensor([[0, 5, 5, 19], [3, 1, 11, 2]])
        vals = p.per_sample(oracle, x, y, idx, v if takes_v else None)
        assert vals.shape == (2, 4, p.dim_x if oracle in ("grad_x_f", "grad_x_g", "jvp") else p.dim_y)
        for s in range(4):
            ref = mean_oracle(o, oracle, x, y, v, idx[:, s:s + 1])
            assert rel(vals[:, s], ref) <= 1e-10, (oracle, s)


@pytest.mark.parametrize("name", FAMS)
def test_per_sample_mean_over_all_samples_is_the_full_oracle(name):
    p = an.make_problem(name, batch=2, seed=4)
    x, y, v = point(p, 4)
    for oracle, (which, takes_v) in PER_SAMPLE.items():
        vals = p.per_sample(oracle, x, y, p.all_samples(which), v if takes_v else None)
        full = getattr(p, f"_{oracle}")(*((x, y, v) if takes_v else (x, y)))
        # a mean of n rank-one terms: round-off (n + d) eps times the largest term
        assert float((vals.mean(1) - full).abs().max()) <= 100 * (vals.shape[1] + p.dim_y) * EPS * float(
            vals.abs().max()), oracle


@pytest.mark.parametrize("name", FAMS)
def test_per_sample_reads_minibatch_rows_and_rejects_bad_indices(name):
    p = an.make_problem(name, batch=2, seed=2)
    x, y, v = point(p, 2)
    idx = torch.tensor([[1, 2, 3], [4, 5, 6]])
    mb = p.minibatches("g", idx, [3])[0]
    assert torch.equal(p.per_sample("hvp", x, y, mb, v), p.per_sample("hvp", x, y, idx, v))
    with pytest.raises(ValueError, match="outside"):
        p.per_sample("grad_y_g", x, y, torch.tensor([[0], [p.n_g]]))
    with pytest.raises(ValueError, match="name"):
        p.per_sample("hessian", x, y, idx)
    with pytest.raises(ValueError, match="vector v"):
        p.per_sample("jvp", x, y, idx)
    one = p.instance(1)
    assert torch.equal(one.per_sample("grad_x_g", x[1], y[1], idx[1]), p.per_sample("grad_x_g", x, y, idx)[1])


@pytest.mark.parametrize("name", FAMS)
def test_oracle_variance_is_the_enumerated_variance(name):
    """oracle_variance by enumeration; for grad G it must equal the closed-form quadratic variance of
    stochastic.py (independent formula): E||grad G_i - grad g||^2 = Var(grad_x G_i) + Var(grad_y G_i)."""
    p = an.make_problem(name, batch=2, seed=5, noise=0.7)
    x, y, v = point(p, 5)
    joint = p.oracle_variance("grad_x_g", x, y) + p.oracle_variance("grad_y_g", x, y)
    assert rel(joint, p.grad_variance("g", x, y)) <= 1e-10
    vals = p.per_sample("hvp", x, y, p.all_samples("g"), v)
    brute = ((vals - vals.mean(1, keepdim=True)) ** 2).sum(-1).mean(1)
    assert rel(p.oracle_variance("hvp", x, y, v), brute) <= 1e-10


# ----------------------------------------------------------------------------------------- constants
def joint_hessians(p, which, z):
    """Dense joint Hessian in z = (x, y) of every component at z (R = 1), by forward-over-reverse autograd."""
    fn, n = (p._F, p.n_f) if which == "f" else (p._G, p.n_g)
    idx = torch.arange(n).unsqueeze(1)
    D = p.dim_x + p.dim_y

    def grads(Z):
        return torch.func.grad(lambda W: fn(W[:, : p.dim_x], W[:, p.dim_x:], idx).sum())(Z)

    Z = z.expand(n, D).clone()
    eye = torch.eye(D, dtype=torch.float64)
    return torch.stack([torch.func.jvp(grads, (Z,), (eye[k].expand(n, D),))[1] for k in range(D)], -1)


def ms_brute(J, P):
    """sqrt(lambda_max(E_i J_i P J_i)): mean-squared smoothness from dense per-sample Hessians J (n, D, D)."""
    S = (J * P) @ J
    return math.sqrt(float(torch.linalg.eigvalsh(S.mean(0))[-1]))


@pytest.mark.parametrize("name,kw", [("finite-sum-quadratic", {}), ("finite-sum-quadratic", {"noise": 0.4}),
                                     ("finite-sum-logistic", {}),
                                     ("finite-sum-quadratic", {"w": 0.0, "linear_y": 0.6, "lam": 0.3})])
def test_smoothness_constants_against_dense_hessians(name, kw):
    """Mean-squared smoothness of grad G_i, grad_y G_i, grad_x G_i and grad F_j, the per-block Lipschitz
    constants, against dense per-sample Hessians (autograd). G's Hessians are constant; F's y block peaks at
    y = 0 for the logistic loss (sigma(1 - sigma) = 1/4 there), and h'' = lam is constant when nc = 0, so
    z = 0 attains every supremum. With linear_y the F constants are bounds."""
    p = an.make_problem(name, seed=7, dim_x=4, dim_y=5, n=12, m=9, **kw)
    c, dx, D = p.constants.extra, p.dim_x, p.dim_x + p.dim_y
    z = torch.zeros(D, dtype=torch.float64)
    J = joint_hessians(p, "g", z)
    Px, Py = (torch.arange(D) < dx).double(), (torch.arange(D) >= dx).double()
    for key, P in (("L_G_ms", torch.ones(D, dtype=torch.float64)), ("L_Gx_ms", Px), ("L_Gy_ms", Py)):
        assert c[key] == pytest.approx(ms_brute(J, P), rel=1e-10), key
    Jbar = J.mean(0)
    assert c["L_G_xy"] == pytest.approx(float(torch.linalg.matrix_norm(Jbar[dx:, :dx], ord=2)), rel=1e-10)
    assert c["L_G_grad_y"] == pytest.approx(float(torch.linalg.matrix_norm(Jbar[dx:], ord=2)), rel=1e-10)
    assert float(torch.linalg.matrix_norm(J[:, dx:, :dx], ord=2).max()) <= c["L_G_xy_sample"] * (1 + 1e-12)
    assert c["mu_G"] == p.constants.mu
    H = joint_hessians(p, "f", z)
    exact = "linear_y" not in kw
    ms_f = ms_brute(H, torch.ones(D, dtype=torch.float64))
    yy = float(torch.linalg.matrix_norm(H[:, dx:, dx:], ord=2).max())
    norm_f = float(torch.linalg.matrix_norm(H.mean(0), ord=2))
    if exact:
        assert c["L_F_ms"] == pytest.approx(ms_f, rel=1e-10)
        assert c["L_Fy_sample"] == pytest.approx(yy, rel=1e-10)
        assert c["L_F"] == pytest.approx(norm_f, rel=1e-10)
    else:
        assert ms_f <= c["L_F_ms"] * (1 + 1e-12) and norm_f <= c["L_F"] * (1 + 1e-12)


@pytest.mark.parametrize("name", FAMS)
def test_mean_squared_smoothness_holds_on_random_pairs(name):
    """The definition itself: E_i ||grad G_i(z) - grad G_i(z')||^2 <= L_G_ms^2 ||z - z'||^2 (and for F)."""
    p = an.make_problem(name, seed=8, batch=2)
    c = p.constants.extra
    gen = torch.Generator().manual_seed(8)
    for _ in range(8):
        x1, y1, _ = point(p, int(torch.randint(1000, (1,), generator=gen)))
        x2, y2, _ = point(p, int(torch.randint(1000, (1,), generator=gen)), scale=2.0)
        dz2 = ((x1 - x2) ** 2).sum(-1) + ((y1 - y2) ** 2).sum(-1)
        for which, key in (("g", "L_G_ms"), ("f", "L_F_ms")):
            idx = p.all_samples(which)
            d = [p.per_sample(f"grad_{a}_{which}", x1, y1, idx) - p.per_sample(f"grad_{a}_{which}", x2, y2, idx)
                 for a in ("x", "y")]
            ms = sum((t * t).sum(-1) for t in d).mean(1)
            assert bool((ms <= c[key] ** 2 * dz2 * (1 + 1e-10)).all()), key


@pytest.mark.parametrize("kw,exact", [({"lam": 0.2}, True), ({"w": 0.0, "linear_y": 0.5, "lam": 0.3}, True),
                                      ({"lam": 0.1, "nonconvex": 0.3}, False)])
def test_phi_curvature_L_h_and_mu_h(kw, exact):
    """L_h and mu_h against the autograd Hessian of Phi (constant when nc = 0); a bound when nc > 0."""
    p = an.make_problem("finite-sum-quadratic", seed=9, dim_x=6, dim_y=5, **kw)
    c = p.constants.extra
    gen = torch.Generator().manual_seed(9)
    for _ in range(4):
        x = torch.randn(p.dim_x, generator=gen, dtype=torch.float64)
        eig = torch.linalg.eigvalsh(torch.autograd.functional.hessian(p.phi, x))
        if exact:
            assert c["L_h"] == pytest.approx(float(eig.abs().max()), rel=1e-10)
            assert c["mu_h"] == pytest.approx(float(eig[0]), abs=1e-10 * c["L_h"])
        else:
            assert "mu_h" not in c and float(eig.abs().max()) <= c["L_h"] * (1 + 1e-12)


def test_logistic_L_h_is_a_bound():
    p = an.make_problem("finite-sum-logistic", seed=10, dim_x=4, dim_y=5, lam=0.2)
    gen = torch.Generator().manual_seed(10)
    for _ in range(4):
        x = torch.randn(p.dim_x, generator=gen, dtype=torch.float64)
        H = torch.autograd.functional.hessian(p.phi, x)
        assert float(torch.linalg.matrix_norm(H, ord=2)) <= p.constants.extra["L_h"] * (1 + 1e-12)
    assert "mu_h" not in p.constants.extra


# ---------------------------------------------------------------------------------------- penalty l_nu
@pytest.mark.parametrize("name,kw", [("finite-sum-quadratic", {"lam": 0.1, "nonconvex": 0.2}),
                                     ("finite-sum-logistic", {"lam": 0.1}),
                                     ("finite-sum-quadratic", {"w": 0.0, "linear_y": 0.5})])
def test_penalty_solution_is_stationary_and_identities_hold(name, kw):
    """y_nu solves grad_y (nu f + g) = 0; d/dnu l_nu = Phi and d/dnu grad_x l_nu = grad Phi at nu = 0
    (Kwon et al. 2023 Lemma 3.1, F2SA-p eq. 8), by central differences; grad_x l_nu is the x-gradient of
    l_nu (envelope theorem), by central differences in x."""
    p = an.make_problem(name, seed=11, batch=2, **kw)
    x, _, _ = point(p, 11)
    for nu in (-0.05, 0.0, 0.3, 2.0):
        y = p.penalty_solution(x, nu)
        res = nu * p._grad_y_f(x, y) + p._grad_y_g(x, y)
        assert float(res.norm()) <= 1e3 * EPS * p.constants.kappa * (1 + float(y.norm())) * p.constants.L
    h = 1e-4
    assert rel((p.penalty_value(x, h) - p.penalty_value(x, -h)) / (2 * h), p.phi(x)) <= 1e-6
    assert rel((p.penalty_gradient(x, h) - p.penalty_gradient(x, -h)) / (2 * h), p.hypergradient(x)) <= 1e-6
    nu, hx = 0.4, 1e-5
    fd = torch.zeros_like(x)
    for i in range(p.dim_x):
        e = torch.zeros_like(x)
        e[:, i] = hx
        fd[:, i] = (p.penalty_value(x + e, nu) - p.penalty_value(x - e, nu)) / (2 * hx)
    assert rel(p.penalty_gradient(x, nu), fd) <= 1e-6
    assert p.penalty_value(x, 0.0).shape == (2,) and torch.allclose(p.penalty_value(x, 0.0), p.g(x, p.y_star(x)),
                                                                    rtol=1e-12, atol=0)


def test_penalty_finite_differences_exact_when_f_is_linear_in_y():
    """f = h(x) + l y'(c + B x) (w = 0): y_nu is affine in nu and grad_x l_nu quadratic, so the central
    difference is exact and the forward error is exactly linear in nu (slope 1, constant error/nu)."""
    p = an.make_problem("finite-sum-quadratic", seed=12, w=0.0, linear_y=0.5)
    x = torch.randn(p.dim_x, generator=torch.Generator().manual_seed(12), dtype=torch.float64)
    G, truth = (lambda t: p.penalty_gradient(x, t)), p.hypergradient(x)
    for nu in (1e-2, 1e-3):
        central = (G(nu) - G(-nu)) / (2 * nu)
        assert float((central - truth).norm()) <= 1e3 * EPS * float(G(nu).norm()) / nu
    e1 = (G(1e-2) - G(0.0)) / 1e-2 - truth
    e2 = (G(1e-3) - G(0.0)) / 1e-3 - truth
    assert float((e1 / 1e-2 - e2 / 1e-3).norm()) <= 1e3 * EPS * float(G(1e-2).norm()) / 1e-3 ** 2
    assert float(e1.norm()) > 1e3 * 1e3 * EPS * float(G(1e-2).norm()) / 1e-2  # the forward error is not 0


def test_penalty_rejects_nu_below_the_strong_convexity_limit():
    p = an.make_problem("finite-sum-quadratic", seed=1)
    x = torch.zeros(p.dim_x, dtype=torch.float64)
    with pytest.raises(ValueError, match="nu"):
        p.penalty_solution(x, -p.constants.mu / p.w)


# --------------------------------------------------------------------------------------- construction
def test_sizes_and_parameters_are_named_and_round_trip():
    p = an.make_problem("finite-sum-quadratic", n=30, m=40, batch=2, w=0.5, linear_y=0.2)
    assert (p.n_g, p.n_f) == (30, 40) and p.params()["n"] == 30 and p.params()["m"] == 40
    q = an.make_problem(**{k: v for k, v in p.params().items() if k != "dtype"})
    assert torch.equal(q._XQE, p._XQE) and q.constants == p.constants
    for name in FAMS:
        with pytest.raises(ValueError, match="n must be"):
            an.make_problem(name, n=9)
        with pytest.raises(ValueError, match="m must be"):
            an.make_problem(name, m=5)
        with pytest.raises(TypeError, match="n"):
            an.make_problem(name, n=64.0)
    with pytest.raises(ValueError, match="linear_y"):
        an.make_problem("finite-sum-quadratic", linear_y=5.0)


def _tensor_bytes(obj, seen=None, depth=0) -> int:
    """Bytes of every distinct tensor storage reachable from obj's attributes (dicts, lists, tuples)."""
    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        st = obj.untyped_storage()
        if st.data_ptr() in seen:
            return 0
        seen.add(st.data_ptr())
        return st.nbytes()
    if depth > 4:
        return 0
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return sum(_tensor_bytes(v, seen, depth + 1) for v in vars(obj).values())
    return 0


@pytest.mark.parametrize("name", FAMS)
def test_memory_at_n_m_ten_thousand_and_d_hundred(name):
    """Per-sample data is rank-one rows (O((n + m) d)), never dense per-sample matrices: an instance at
    n = m = 10^4, d = 100 holds well under 100 MB (the issue's limit); per-sample oracles work at that size."""
    p = an.make_problem(name, dim_x=100, dim_y=100, n=10_000, m=10_000)
    assert _tensor_bytes(p) < 100e6, _tensor_bytes(p) / 1e6
    x, y, v = point(p, 1)
    idx = torch.tensor([[0, 9_999, 4_321]])
    assert p.per_sample("jvp", x, y, idx, v).shape == (1, 3, 100)
