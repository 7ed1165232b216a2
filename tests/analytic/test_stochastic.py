"""Tests of the stochastic families (analytic/stochastic.py): exact means, exact variances, exact per-sample
constants, sampling, and counted stochastic oracles.

Tolerances (float64, eps = 2.2e-16):
- "round-off" of a mean over n samples of d-dimensional rank-one terms: the summations and inner products
  err by at most (n + d) eps times the largest term, and the design identities X'X/n = S, X'Q = 0,
  sum eps_i = 0 hold to O(n eps) (a QR factor is orthonormal to O(n eps)); we allow 100 (n + d) eps times
  the largest per-sample magnitude (a factor 100 for the constants of those estimates);
- two exact formulas for the same finite sum (closed-form variance vs brute force, secular equation vs
  dense eigvalsh): 1e-10 relative to the magnitude of the terms (round-off O(d eps cond) ~ 1e-13);
- Monte Carlo: Bernstein's inequality for the mean of N = R_mc * S draws, with a union bound over every
  coordinate tested (module constant ALPHA is the family-wise error of each test function); see
  ``bernstein_halfwidth``.
"""

import math

import pytest
import torch

import bilevelbench.analytic as an
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.analytic.rng import Streams
from bilevelbench.analytic.stochastic import ball_max_quadratic, rank_one_top_eigenvalue

FAMS = ["stochastic-quadratic", "stochastic-logistic"]
EPS = torch.finfo(torch.float64).eps
#: stochastic method -> (which sample set, takes v, deterministic counterpart)
METHODS = {
    "_F": ("f", False, "_f"),
    "_grad_x_F": ("f", False, "_grad_x_f"),
    "_grad_y_F": ("f", False, "_grad_y_f"),
    "_G": ("g", False, "_g"),
    "_grad_x_G": ("g", False, "_grad_x_g"),
    "_grad_y_G": ("g", False, "_grad_y_g"),
    "_hvp_G": ("g", True, "_hvp"),
    "_jvp_G": ("g", True, "_jvp"),
}
ALPHA = 0.005  # family-wise error of one Monte Carlo test function (two families: 0.01 in all)


def point(p, seed=0, scale=0.5):
    gen = torch.Generator().manual_seed(seed)
    x, y, v = (scale * torch.randn(p.R, d, generator=gen, dtype=torch.float64)
               for d in (p.dim_x, p.dim_y, p.dim_y))
    return x, y, v


def call(p, method, x, y, v, idx):
    fn = getattr(p, method)
    out = fn(x, y, v, idx) if METHODS[method][1] else fn(x, y, idx)
    return out.reshape(p.R, -1)


def det(p, method, x, y, v):
    fn = getattr(p, METHODS[method][2])
    out = fn(x, y, v) if METHODS[method][1] else fn(x, y)
    return out.reshape(p.R, -1)


def n_of(p, method):
    return p.n_f if METHODS[method][0] == "f" else p.n_g


def per_sample(p, method, x, y, v):
    """(n, R, k): the value of every single component, by brute force (one call per sample)."""
    n = n_of(p, method)
    return torch.stack([call(p, method, x, y, v, torch.full((p.R, 1), i)) for i in range(n)])


def roundoff(p, vals):
    """100 (n + d) eps times the largest per-sample magnitude (module docstring)."""
    return 100 * (vals.shape[0] + p.dim_x + p.dim_y) * EPS * float(vals.abs().max())


# --------------------------------------------------------------------------------------------- means
@pytest.mark.parametrize("name", FAMS)
@pytest.mark.parametrize("method", list(METHODS))
def test_mean_over_all_samples_equals_deterministic(name, method):
    p = an.make_problem(name, batch=2, seed=1)
    x, y, v = point(p, 1)
    n = n_of(p, method)
    full = call(p, method, x, y, v, torch.arange(n).expand(p.R, n))
    vals = per_sample(p, method, x, y, v)
    ref = det(p, method, x, y, v)
    assert float((full - ref).abs().max()) <= roundoff(p, vals), method
    assert float((vals.mean(0) - ref).abs().max()) <= roundoff(p, vals), method


def bernstein_halfwidth(var, spread, N, n_tests):
    """Half-width of a two-sided (1 - ALPHA) confidence interval for the mean of N draws, per coordinate,
    Bonferroni over n_tests coordinates.

    Bernstein's inequality (Boucheron, Lugosi, Massart, Thm 2.10) for N independent draws with variance
    var and |X - EX| <= spread: P(|mean - EX| >= eps) <= 2 exp(-N eps^2 / (2 var + 2 spread eps / 3)).
    It holds without any normal approximation, and also for batches drawn without replacement: Hoeffding
    (1963, Thm 4) shows E f(sum) without replacement <= with replacement for convex f, which bounds the
    moment generating function of each batch sum by the with-replacement one (Bardenet, Maillard 2015).
    Solving 2 exp(-...) = ALPHA / n_tests for eps gives the quadratic below.
    """
    ell = math.log(2 * n_tests / ALPHA)
    b = spread * ell / 3
    return (b + torch.sqrt(b * b + 2 * N * var * ell)) / N


@pytest.mark.parametrize("name", FAMS)
def test_minibatch_means_are_unbiased_monte_carlo(name):
    """The average over R_mc mini-batches of size S of every stochastic oracle lies within the Bernstein
    half-width of the deterministic value, for batches with and without replacement (one set of R_mc
    draws per sample set and mode, shared by the oracles of that set)."""
    p = an.make_problem(name, seed=2)
    x, y, v = point(p, 2)
    R_mc, S = 200, 8
    n_tests = 2 * sum(det(p, m, x, y, v).numel() for m in METHODS)
    streams = Streams([123])
    for replace in (True, False):
        draws = {w: [p.sample(w, S, streams, replace=replace) for _ in range(R_mc)] for w in ("f", "g")}
        for method in METHODS:
            vals = per_sample(p, method, x, y, v)
            ref = det(p, method, x, y, v)
            mc = torch.stack([call(p, method, x, y, v, idx) for idx in draws[METHODS[method][0]]]).mean(0)
            var = vals.var(0, unbiased=False)
            spread = (vals - vals.mean(0)).abs().amax(0)
            half = bernstein_halfwidth(var, spread, R_mc * S, n_tests) + roundoff(p, vals)
            assert bool(((mc - ref).abs() <= half).all()), (method, replace, (mc - ref).abs() / half)


def test_monte_carlo_test_detects_a_bias():
    """Power check of the half-width above: a shift of one population standard deviation is rejected."""
    var, N = torch.tensor([1.0]), 200 * 8
    assert float(bernstein_halfwidth(var, torch.tensor([10.0]), N, 200)) < 0.25


# ------------------------------------------------------------------------------------------ variances
def brute_grad_var(p, which, x, y):
    """E_i ||grad G_i(z) - grad g(z)||^2 by brute force over every sample (joint gradient in (x, y))."""
    gx, gy = ("_grad_x_F", "_grad_y_F") if which == "f" else ("_grad_x_G", "_grad_y_G")
    v = torch.zeros_like(y)
    vals = torch.cat([per_sample(p, gx, x, y, v), per_sample(p, gy, x, y, v)], -1)
    ref = torch.cat([det(p, gx, x, y, v), det(p, gy, x, y, v)], -1)
    return ((vals - ref) ** 2).sum(-1).mean(0), float((vals ** 2).sum(-1).max())


@pytest.mark.parametrize("name", FAMS)
@pytest.mark.parametrize("which", ["g", "f"])
def test_grad_variance_is_exact_and_sigma2_is_its_sup(name, which):
    p = an.make_problem(name, seed=3, noise=0.7)
    c = p.constants
    sup = c.sigma2 if which == "g" else c.extra["sigma2_f"]
    xs, ys = p.sample_region(8, torch.Generator().manual_seed(3))
    for x, y in zip(xs, ys, strict=True):
        brute, scale = brute_grad_var(p, which, x, y)
        closed = p._grad_var(which, x, y)
        assert float((closed - brute).abs().max()) <= 1e-10 * scale, which
        assert float(brute.max()) <= sup * (1 + 1e-12)
        assert torch.equal(p.grad_variance(which, x[0], y[0]), closed[0])  # public, unbatched shapes
    # the closed form (now verified) at many more points of the region never exceeds the sup
    xs, ys = p.sample_region(512, torch.Generator().manual_seed(4))
    assert float(p._grad_var(which, xs.reshape(-1, p.dim_x), ys.reshape(-1, p.dim_y)).max()) <= sup * (1 + 1e-12)
    exact = which == "g" or name == "stochastic-quadratic"
    if exact:  # attained: brute force at the maximiser equals the declared sup
        z = p.sigma2_argmax if which == "g" else p.sigma2_f_argmax
        assert float(z.norm()) <= p.radius * (1 + 1e-12)
        brute, scale = brute_grad_var(p, which, z[:, : p.dim_x], z[:, p.dim_x:])
        assert abs(float(brute.max()) - sup) <= 1e-10 * max(scale * 1.0, sup)


@pytest.mark.parametrize("name", FAMS)
def test_hess_var_and_jac_var_match_brute_force(name):
    p = an.make_problem(name, seed=5, noise=0.6)
    x, y, _ = point(p, 5)
    eye = torch.eye(p.dim_y, dtype=torch.float64)
    Hs, Js = [], []
    for i in range(p.n_g):
        idx = torch.full((1, 1), i)
        Hs.append(torch.stack([p._hvp_G(x, y, eye[k:k + 1], idx)[0] for k in range(p.dim_y)], -1))
        Js.append(torch.stack([p._jvp_G(x, y, eye[k:k + 1], idx)[0] for k in range(p.dim_y)], -1))
    Hs, Js = torch.stack(Hs), torch.stack(Js)
    hv = float(((Hs - p._hess_yy(x, y)) ** 2).sum((-2, -1)).mean())
    jv = float(((Js - p._jac_xy(x, y)) ** 2).sum((-2, -1)).mean())
    assert hv == pytest.approx(p.constants.hess_var, rel=1e-10)
    assert jv == pytest.approx(p.constants.extra["jac_var"], rel=1e-10)


def test_noise_zero_is_deterministic():
    p = an.make_problem("stochastic-quadratic", seed=6, noise=0.0)
    c = p.constants
    assert c.sigma2 == 0.0 and c.hess_var == 0.0 and c.extra["jac_var"] == 0.0
    assert c.extra["sigma2_f"] == 0.0
    assert c.extra["L_sample"] == pytest.approx(c.L, rel=1e-12)
    assert c.extra["L_sample_yy"] == pytest.approx(c.L, rel=1e-12)
    x, y, v = point(p, 6)
    for method in METHODS:
        vals = per_sample(p, method, x, y, v)
        assert float((vals - det(p, method, x, y, v)).abs().max()) <= roundoff(p, vals), method


# ------------------------------------------------------------------------------- per-sample constants
def joint_hessians(p, which, z):
    """Dense joint Hessian in z = (x, y) of every single component at z, by autograd (brute force).

    All n components at once: for an unbatched problem (R = 1) the factors broadcast, so x, y of shape
    (n, d) with idx[i] = [i] evaluate component i at row i; the components are decoupled, so one
    forward-over-reverse directional derivative per basis vector gives column k of every Hessian.
    """
    fn, n = (p._F, p.n_f) if which == "f" else (p._G, p.n_g)
    idx = torch.arange(n).unsqueeze(1)
    D = p.dim_x + p.dim_y

    def grads(Z):
        return torch.func.grad(lambda W: fn(W[:, : p.dim_x], W[:, p.dim_x:], idx).sum())(Z)

    Z = z.expand(n, D).clone()
    eye = torch.eye(D, dtype=torch.float64)
    return torch.stack([torch.func.jvp(grads, (Z,), (eye[k].expand(n, D),))[1] for k in range(D)], -1)


@pytest.mark.parametrize("name,noise", [("stochastic-quadratic", 1.0), ("stochastic-logistic", 0.4)])
def test_per_sample_constants_are_exact(name, noise):
    p = an.make_problem(name, seed=7, noise=noise)
    c = p.constants
    z = torch.zeros(p.dim_x + p.dim_y, dtype=torch.float64)  # Hessians of G are constant; F's peak at y = 0
    HG = joint_hessians(p, "g", z)
    eig = torch.linalg.eigvalsh(HG)
    assert float(eig.abs().amax()) == pytest.approx(c.extra["L_sample"], rel=1e-10)
    eig_yy = torch.linalg.eigvalsh(HG[:, p.dim_x:, p.dim_x:])
    assert float(eig_yy[:, -1].max()) == pytest.approx(c.extra["L_sample_yy"], rel=1e-10)
    # every sample is mu-strongly convex in y, with mu attained (Assumption 1 per sample)
    assert float((eig_yy[:, 0] - c.mu).abs().max()) <= 1e-10 * c.L
    assert c.extra["L_sample"] >= c.L and c.extra["L_assumption2"] >= c.extra["L_sample"]
    HF = joint_hessians(p, "f", z)
    assert float(torch.linalg.matrix_norm(HF, ord=2).max()) == pytest.approx(c.extra["L_sample_f"], rel=1e-10)


@pytest.mark.parametrize("dim,n", [(32, 128), pytest.param(256, 1024, marks=pytest.mark.slow)])
def test_kappa_of_the_mean_is_exact_at_scale(dim, n):
    """The mean of the stored per-sample Hessians has spectrum exactly [mu, L] (issue 8's d = 256,
    n = 1024 under the slow marker)."""
    p = an.make_problem("stochastic-quadratic", dim_x=dim, dim_y=dim, n_g=n, n_f=n, kappa=10.0)
    H = p.H0 + p.noise * p.Xg.transpose(1, 2) @ p.Xg / p.n_g
    eig = torch.linalg.eigvalsh(H)[0]
    tol = 100 * (p.n_g + p.dim_y) * EPS * p.constants.extra["L_sample_yy"]
    assert abs(float(eig[0]) - p.constants.mu) <= tol and abs(float(eig[-1]) - p.constants.L) <= tol


# -------------------------------------------------------------------------------------------- helpers
def test_rank_one_top_eigenvalue_matches_eigvalsh():
    gen = torch.Generator().manual_seed(8)
    d = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    d[1, 3] = d[1, 5] = d[1].max()  # repeated top eigenvalue
    u = torch.randn(2, 40, 6, generator=gen, dtype=torch.float64)
    u[0, :5, int(d[0].argmax())] = 0.0  # no weight on the top direction
    for t in (0.0, 0.25, 1.0):
        dense = torch.diag_embed(d).unsqueeze(1) + t * u.unsqueeze(-1) * u.unsqueeze(-2)
        ref = torch.linalg.eigvalsh(dense)[..., -1]
        assert float((rank_one_top_eigenvalue(d, u, t) - ref).abs().max()) <= 1e-12 * float(ref.abs().max())


def test_ball_max_quadratic_is_the_sup():
    gen = torch.Generator().manual_seed(9)
    G = torch.randn(3, 5, 5, generator=gen, dtype=torch.float64)
    K = G @ G.transpose(1, 2)
    h = torch.randn(3, 5, generator=gen, dtype=torch.float64)
    kk, V = torch.linalg.eigh(K)
    h[2] = h[2] - (h[2] @ V[2, :, -1]) * V[2, :, -1]  # the "hard case": h orthogonal to the top eigenvector
    c0 = torch.rand(3, generator=gen, dtype=torch.float64)
    r = 1.7
    val, z = ball_max_quadratic(K, h, c0, r)
    at = (z * (K @ z.unsqueeze(-1)).squeeze(-1)).sum(-1) - 2 * (h * z).sum(-1) + c0
    assert torch.allclose(at, val, rtol=1e-10, atol=0) and bool((z.norm(dim=-1) <= r * (1 + 1e-12)).all())
    zz = torch.randn(20000, 3, 5, generator=gen, dtype=torch.float64)
    zz = r * zz / zz.norm(dim=-1, keepdim=True)
    q = (zz * (K @ zz.unsqueeze(-1)).squeeze(-1)).sum(-1) - 2 * (h * zz).sum(-1) + c0
    assert bool((q <= val * (1 + 1e-12)).all())


# --------------------------------------------------------------------------------------------- sampling
@pytest.mark.parametrize("name", FAMS)
def test_sampling(name):
    p = an.make_problem(name, seed=0)
    s = Streams([5])
    idx = p.sample("g", p.n_g, s, replace=False)
    assert idx.shape == (1, p.n_g) and sorted(idx[0].tolist()) == list(range(p.n_g))
    idx = p.sample("f", 20, s, replace=True)
    assert idx.dtype == torch.int64 and 0 <= int(idx.min()) and int(idx.max()) < p.n_f
    with pytest.raises(ValueError, match="size"):
        p.sample("g", p.n_g + 1, s, replace=False)
    with pytest.raises(ValueError, match="size"):
        p.sample("g", 0, s)
    with pytest.raises(TypeError, match="size"):
        p.sample("g", 2.5, s)
    with pytest.raises(ValueError, match="which"):
        p.sample("h", 2, s)
    with pytest.raises(ValueError, match="streams"):
        p.sample("g", 2, Streams([1, 2]))
    with pytest.raises(TypeError, match="streams"):
        p.sample("g", 2, 7)
    # same seed, same indices
    assert torch.equal(p.sample("g", 9, Streams([11])), p.sample("g", 9, Streams([11])))
    # torch.Generator path: reproducible, distinct without replacement
    a = p.sample("g", 9, torch.Generator().manual_seed(3), replace=False)
    b = p.sample("g", 9, torch.Generator().manual_seed(3), replace=False)
    assert torch.equal(a, b) and len(set(a[0].tolist())) == 9


def test_batched_streams_equal_single_streams():
    p = an.make_problem("stochastic-quadratic", batch=3, seed=0)
    seeds = [4, 9, 2]
    batched = Streams(seeds)
    singles = [Streams([s]) for s in seeds]
    instances = [p.instance(r) for r in range(3)]
    for replace, size in ((True, 7), (False, 12), (True, 3)):
        idx = p.sample("g", size, batched, replace=replace)
        for r in range(3):
            assert torch.equal(idx[r], instances[r].sample("g", size, singles[r], replace=replace)[0])
    for r in range(3):  # distinct within each instance's batch
        idx = p.sample("f", p.n_f, Streams(seeds), replace=False)
        assert len(set(idx[r].tolist())) == p.n_f


@pytest.mark.parametrize("R, n", [(1, 1), (2, 3), (1, 40), (9, 1), (3, 64)])
def test_the_three_hash_paths_draw_the_same_integers(R, n, monkeypatch):
    """A draw hashes in Python integers (a handful of numbers), in NumPy uint32 (CPU) or in torch int64
    (other devices, run here on the CPU): the three must give the same bits, so that a seed draws the same
    numbers on every device and at every size."""
    import bilevelbench.analytic.rng as rng
    seeds = [0, 7, 2**32 + 3, 2**40 + 11, 5, 6, 9, 1, 12][:R]

    def bits(force):
        s = Streams(seeds)
        s.counter = 12345
        if force == "torch":
            s._numpy = False
        return torch.as_tensor(s._bits(n, 2)).to(torch.int64)
    python = bits(None)
    monkeypatch.setattr(rng, "_FEW", 0)
    numpy = bits(None)
    assert torch.equal(python, numpy) and torch.equal(numpy, bits("torch"))
    assert python.shape == (2, R, n)


@pytest.mark.parametrize("block", [1, 5, 64])
def test_a_long_draw_hashed_in_blocks_draws_the_same_numbers(block, monkeypatch):
    """Long CPU draws are hashed block by block (``rng._BLOCK`` numbers at a time, to bound the transient
    arrays); a position's bits do not depend on the others, so the numbers, and the stream's next draws,
    are those of one block."""
    import bilevelbench.analytic.rng as rng

    def draws():
        s = Streams([3, 8, 2**33 + 1])
        return (s.integers(37, 41), s.uniform(23), s.integers(7, 5, replace=False), s.integers(9, 3))
    whole = draws()
    monkeypatch.setattr(rng, "_BLOCK", block)
    for a, b in zip(whole, draws(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", FAMS)
def test_a_long_draw_gathers_its_rows_in_blocks_with_the_same_results(name, monkeypatch):
    """A draw whose gathered rows would pass ``GATHER_BYTES`` gathers them block by block of whole
    mini-batches, keeping one block: every mini-batch reads exactly its own rows, in any order."""
    import bilevelbench.analytic.base as base

    p = an.make_problem(name, batch=2, seed=5)
    x, y, v = point(p, 5)
    sizes = [3, 5, 4, 2, 6]
    monkeypatch.setattr(base, "GATHER_BYTES", 1)  # one mini-batch per block
    for which in ("f", "g"):
        idx = p.sample(which, sum(sizes), Streams([3, 4]))
        batches = p.minibatches(which, idx, sizes)
        order = [4, 0, 1, 3, 2, 0]
        for i in order:
            piece = idx.split(sizes, 1)[i]
            for method in METHODS:
                if METHODS[method][0] == which:
                    assert torch.equal(call(p, method, x, y, v, batches[i]), call(p, method, x, y, v, piece)), method


def test_batched_instances_equal_unbatched_on_a_minibatch():
    p = an.make_problem("stochastic-logistic", batch=2, seed=3)
    x, y, v = point(p, 3)
    idx = p.sample("g", 5, Streams([1, 2]))
    jdx = p.sample("f", 5, Streams([1, 2]))
    for r in range(2):
        q = p.instance(r)
        for method in METHODS:
            ii = jdx if METHODS[method][0] == "f" else idx
            a = call(p, method, x, y, v, ii)[r]
            b = call(q, method, x[r:r + 1], y[r:r + 1], v[r:r + 1], ii[r:r + 1])[0]
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14), method
    assert p.constants.sigma2 == max(p.instance(r).constants.sigma2 for r in range(2))


@pytest.mark.parametrize("name", FAMS)
def test_minibatches_of_one_draw_equal_their_index_tensors(name):
    """A MiniBatch reads its rows from one gather of the whole draw (per table, on first use); every
    per-sample closed form must give on it exactly what it gives on the batch's index tensor: the same rows
    enter the same products, so the check is bitwise."""
    p = an.make_problem(name, batch=2, seed=5)
    x, y, v = point(p, 5)
    sizes = [3, 5, 4]
    for which in ("f", "g"):
        idx = p.sample(which, sum(sizes), Streams([3, 4]))
        batches = p.minibatches(which, idx, sizes)
        assert [tuple(b.shape) for b in batches] == [(2, s) for s in sizes]
        for b, piece in zip(batches, idx.split(sizes, 1), strict=True):
            assert torch.equal(b.idx, piece)
            for method in METHODS:
                if METHODS[method][0] == which:
                    assert torch.equal(call(p, method, x, y, v, b), call(p, method, x, y, v, piece)), method


# ------------------------------------------------------------------------------------ counted oracles
@pytest.mark.parametrize("name", FAMS)
def test_counted_oracles_count_batches_and_backends_agree(name):
    p = an.make_problem(name, batch=2, seed=4)
    x, y, v = point(p, 4)
    outs = {}
    for backend in ("closed", "autograd"):
        o = CountedOracle(p, backend)
        s = Streams([7, 8])
        ig1, ig2, ig3 = (o.sample("g", S, s) for S in (1, 5, 8))
        jf1, jf2 = (o.sample("f", S, s, replace=False) for S in (3, 6))
        res = [o.grad_y_g(x, y, ig2), o.grad_x_g(x, y, ig1), o.hvp(x, y, v, ig3), o.hvp(x, y, v, ig2),
               o.jvp(x, y, v, ig3), o.grad_x_f(x, y, jf1), o.grad_y_f(x, y, jf2), o.grad_y_f(x, y, None),
               o.hvp(x, y, v, None)]
        assert o.counts.as_dict() == {"gc_f": 3 + 6 + 1, "gc_g": 5 + 1, "jv": 8, "hv": 8 + 5 + 1,
                                      "samples_f": 3 + 6, "samples_g": 1 + 5 + 8, "mv": 8 + 8 + 5 + 1}
        outs[backend] = res
    for a, b in zip(outs["closed"], outs["autograd"], strict=True):
        assert float((a - b).norm()) <= 1e-10 * float(b.norm())  # (grad_x F is 0 when lam = nc = 0)


# ------------------------------------------------------------------------------------- construction
def test_mean_problem_is_the_quadratic_instance_of_the_same_seed():
    p = an.make_problem("stochastic-quadratic", seed=4, kappa=20.0)
    q = an.make_problem("quadratic", seed=4, kappa=20.0)
    for key in ("A", "B", "e", "c", "x_opt"):
        assert torch.equal(getattr(p, key), getattr(q, key)), key
    x, _, _ = point(p, 4)
    assert torch.equal(p.hypergradient(x[0]), q.hypergradient(x[0]))


@pytest.mark.parametrize("name", FAMS)
def test_bad_parameters_are_named(name):
    with pytest.raises(ValueError, match="n_g"):
        an.make_problem(name, dim_y=10, n_g=9)
    with pytest.raises(ValueError, match="n_f"):
        an.make_problem(name, n_f=0)
    with pytest.raises(ValueError, match="noise"):
        an.make_problem(name, noise=1.5)
    with pytest.raises(TypeError, match="n_g"):
        an.make_problem(name, n_g=64.0)


def test_float32_problem_matches_float64():
    p64 = an.make_problem("stochastic-quadratic", seed=1)
    p32 = an.make_problem("stochastic-quadratic", seed=1, dtype=torch.float32)
    x, y, v = point(p64, 1)
    idx = p64.sample("g", 6, Streams([0]))
    a = p64._hvp_G(x, y, v, idx)
    b = p32._hvp_G(x.float(), y.float(), v.float(), idx)
    # float32 round-off ~ 1e-7 relative, times the O(n + d) terms of the batch: 1e-5
    assert float((a - b.double()).norm() / a.norm()) <= 1e-5
    # constants are computed from float64 data; only the region's radius (quadratic.py computes it in the
    # problem's dtype) carries float32 round-off, and sigma2 is a quadratic in it
    assert p32.constants.sigma2 == pytest.approx(p64.constants.sigma2, rel=1e-6)
