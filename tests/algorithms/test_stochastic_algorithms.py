"""Tests of the stochastic optimizers (stocBiO both forms, BSA, TTSA, SID, meta-learning variants).

Problems: ``ToyStochasticQuadratic`` below, a tiny finite-sum quadratic following the stochastic-problem
interface (defined here until the shared stochastic families land), and the shared families once
registered. Monte Carlo tests use the instance dimension for i.i.d. replicates (``same_data=True``: every
instance holds the same data, each has its own stream) and Bonferroni 99% intervals per coordinate with
the standard deviation estimated from the same draws (R >= 1000 replicates: the t quantile is within 0.3% of
the normal one); the seeds
are fixed, not chosen.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import pytest
import torch

from bilevelbench.algorithms import get, run, stochastic
from bilevelbench.algorithms.base import DivergenceWarning, resolve_params
from bilevelbench.algorithms.deterministic import aid_estimate, inner_gd
from bilevelbench.algorithms.oracle import CountedOracle
from bilevelbench.algorithms.sid import sid_estimate
from bilevelbench.algorithms.solvers import neumann
from bilevelbench.algorithms.stochastic import stocbio_batch_sizes
from bilevelbench.analytic import make_problem
from bilevelbench.analytic.base import BilevelProblem, Constants, lemma2_L_phi
from bilevelbench.analytic.rng import Streams


class ToyStochasticQuadratic(BilevelProblem):
    """G(x, y; i) = 1/2 y'A_i y - y'(B_i x + e_i), F(x, y; j) = 1/2||y - c_j||^2 + lam/2||x||^2 (see above)."""

    name = "toy-stochastic-quadratic"
    stochastic = True

    def __init__(self, *, dim_x=2, dim_y=3, seed=0, dtype=torch.float64, device="cpu", batch=None, n_g=16,
                 n_f=8, hess_noise=0.6, coupling_noise=0.0, e_noise=0.5, c_noise=0.5, lam=0.1,
                 same_data=False, kappa=None):
        super().__init__(dim_x=dim_x, dim_y=dim_y, batch=batch, dtype=dtype, device=device, seed=seed)
        self.n_g, self.n_f = n_g, n_f
        self.hp = dict(n_g=n_g, n_f=n_f, hess_noise=hess_noise, coupling_noise=coupling_noise,
                       e_noise=e_noise, c_noise=c_noise, lam=lam)
        self.lam, self.same_data = lam, same_data
        data = [self._draw(0 if same_data else r) for r in range(self.R)]
        for key in data[0]:
            setattr(self, key, self._t(torch.stack([d[key] for d in data])))
        self.Abar = torch.diag_embed(self.D) + torch.einsum("rni,rnj->rij", self.U, self.U) / n_g
        self.Bbar = self.B + torch.einsum("rni,rnj->rij", self.W, self.Z) / n_g
        self.ebar, self.cbar = self.E.mean(1), self.C.mean(1)
        self._constants = self._make_constants()

    def family_params(self):
        return dict(self.hp)

    def _draw(self, r):
        g = self.instance_generator(r)
        dx, dy, hp = self.dim_x, self.dim_y, self.hp

        def rn(*s):
            return torch.randn(*s, generator=g, dtype=torch.float64)

        return {"D": torch.linspace(0.5, 1.0, dy, dtype=torch.float64),
                "U": hp["hess_noise"] * rn(hp["n_g"], dy) / dy**0.5,
                "B": 0.5 * rn(dy, dx) / dx**0.5,
                "W": hp["coupling_noise"] * rn(hp["n_g"], dy) / dy**0.5,
                "Z": rn(hp["n_g"], dx) / dx**0.5,
                "E": rn(dy) + hp["e_noise"] * rn(hp["n_g"], dy),
                "C": rn(dy) + hp["c_noise"] * rn(hp["n_f"], dy)}

    def _make_constants(self):
        # exact joint smoothness over samples: per-sample Hessians of G in (x, y) and of F
        dx = self.dim_x
        A = torch.diag_embed(self.D).unsqueeze(1) + torch.einsum("rni,rnj->rnij", self.U, self.U)
        Bi = self.B.unsqueeze(1) + torch.einsum("rni,rnj->rnij", self.W, self.Z)
        top = torch.cat([torch.zeros(*Bi.shape[:2], dx, dx, dtype=A.dtype), -Bi.transpose(-1, -2)], -1)
        joint = torch.cat([top, torch.cat([-Bi, A], -1)], -2)
        L = max(float(torch.linalg.matrix_norm(joint, ord=2).max()), 1.0, self.lam)
        mu = float(torch.linalg.eigvalsh(self.Abar)[..., 0].min())
        M = 10.0  # unused by the tests' assertions (presets only need a finite L_Phi)
        return Constants(L=L, mu=mu, kappa=L / mu, M=M, tau=0.0, rho=0.0,
                         L_phi=lemma2_L_phi(L, mu, M, 0.0, 0.0))

    # ---------------------------------------------------------------- sampling
    def sample(self, which, size, streams, replace=True):
        n = self.n_f if which == "f" else self.n_g
        if not replace and size > n:
            raise ValueError(f"size={size} exceeds n={n}")
        assert isinstance(streams, Streams) and streams.R == self.R
        return streams.integers(n, size, replace=replace)

    def _take(self, T, idx):
        return T[torch.arange(T.shape[0]).unsqueeze(1), idx]  # (R, S, d)

    # ---------------------------------------------------------------- mini-batch means
    def _hvp_G(self, x, y, v, idx):
        Us = self._take(self.U, idx)
        return self.D * v + torch.einsum("rsi,rs->ri", Us, torch.einsum("rsi,ri->rs", Us, v)) / idx.shape[1]

    def _Bx(self, x, idx):
        Ws, Zs = self._take(self.W, idx), self._take(self.Z, idx)
        extra = torch.einsum("rsi,rs->ri", Ws, torch.einsum("rsj,rj->rs", Zs, x)) / idx.shape[1]
        return torch.einsum("rij,rj->ri", self.B, x) + extra

    def _jvp_G(self, x, y, v, idx):
        Ws, Zs = self._take(self.W, idx), self._take(self.Z, idx)
        extra = torch.einsum("rsj,rs->rj", Zs, torch.einsum("rsi,ri->rs", Ws, v)) / idx.shape[1]
        return -(torch.einsum("rij,ri->rj", self.B, v) + extra)

    def _grad_y_G(self, x, y, idx):
        return self._hvp_G(x, y, y, idx) - self._Bx(x, idx) - self._take(self.E, idx).mean(1)

    def _grad_x_G(self, x, y, idx):
        return self._jvp_G(x, y, y, idx)

    def _G(self, x, y, idx):
        Us = self._take(self.U, idx)
        quad = 0.5 * (self.D * y * y).sum(-1) + 0.5 * (torch.einsum("rsi,ri->rs", Us, y) ** 2).mean(1)
        return quad - (y * (self._Bx(x, idx) + self._take(self.E, idx).mean(1))).sum(-1)

    def _F(self, x, y, idx):
        d = y.unsqueeze(1) - self._take(self.C, idx)
        return 0.5 * (d * d).sum(-1).mean(1) + 0.5 * self.lam * (x * x).sum(-1)

    def _grad_y_F(self, x, y, idx):
        return y - self._take(self.C, idx).mean(1)

    def _grad_x_F(self, x, y, idx):
        return self.lam * x

    # ---------------------------------------------------------------- full means (closed form)
    def _mv(self, Mat, v):
        return torch.einsum("rij,rj->ri", Mat, v)

    def _f(self, x, y):
        d = y.unsqueeze(1) - self.C
        return 0.5 * (d * d).sum(-1).mean(1) + 0.5 * self.lam * (x * x).sum(-1)

    def _g(self, x, y):
        return 0.5 * (y * self._mv(self.Abar, y)).sum(-1) - (y * (self._mv(self.Bbar, x) + self.ebar)).sum(-1)

    def _grad_x_f(self, x, y):
        return self.lam * x

    def _grad_y_f(self, x, y):
        return y - self.cbar

    def _grad_y_g(self, x, y):
        return self._mv(self.Abar, y) - self._mv(self.Bbar, x) - self.ebar

    def _grad_x_g(self, x, y):
        return -torch.einsum("rij,ri->rj", self.Bbar, y)

    def _hvp(self, x, y, v):
        return self._mv(self.Abar, v)

    def _jvp(self, x, y, v):
        return -torch.einsum("rij,ri->rj", self.Bbar, v)

    def _hess_yy(self, x, y):
        return self.Abar.expand(x.shape[0], -1, -1)

    def _jac_xy(self, x, y):
        return -self.Bbar.transpose(-1, -2).expand(x.shape[0], -1, -1)

    def _y_star(self, x):
        return torch.linalg.solve(self.Abar, (self._mv(self.Bbar, x) + self.ebar).unsqueeze(-1)).squeeze(-1)

    def _hypergradient(self, x):
        v = torch.linalg.solve(self.Abar, (self._y_star(x) - self.cbar).unsqueeze(-1)).squeeze(-1)
        return self.lam * x + torch.einsum("rij,ri->rj", self.Bbar, v)


# ====================================================================== helpers
def rel(a, b):
    return float((a - b).norm() / max(float(b.norm()), 1e-300))


def ci_ok(samples, expected):
    """Bonferroni 99%: every coordinate of the mean within z s/sqrt(R) of ``expected``."""
    m = expected.numel()
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * m))
    half = z * samples.std(0) / math.sqrt(samples.shape[0])
    dev = (samples.mean(0) - expected).abs()
    return bool((dev <= half).all()), float((dev / half).max())


def toy(**kw):
    return ToyStochasticQuadratic(**kw)


FIXED = dict(alpha=0.3, eta=0.4, beta=0.05)  # within 1/L of the toy (L ~ 2.2), explicit so that single
# runs of instance r use exactly the batched run's parameters (defaults depend on the batch's constants)
CONFIGS = {
    "stocbio-icml": ("stocbio", dict(FIXED, N=3, Q=3, B=1.0, S=2, D_f=2, D_g=3)),
    "stocbio-arxiv": ("stocbio", dict(FIXED, N=3, Q=3, B=1.0, S=2, D_f=2, D_g=3, form="arxiv")),
    "stocbio-equal": ("stocbio", dict(FIXED, N=2, Q=4, B=2.0, form="arxiv", schedule="equal")),
    "stocbio-norepl": ("stocbio", dict(FIXED, N=2, Q=2, B=2.0, S=4, replace=False)),
    "bsa": ("bsa", dict(alpha=0.3, gamma=4.0, eta=0.4, beta=0.05, b=4, S=2, B=2)),
    "ttsa": ("ttsa", dict(alpha=0.3, eta=0.4, beta=0.05, b=4, D_f=2)),
    # the variants: BSA's inner loop set by the horizon [INF]; TTSA as the public benchmark runs it [CODE]
    "bsa-horizon": ("bsa", dict(alpha=0.3, gamma=4.0, eta=0.4, beta=0.05, b=3, S=2, schedule="horizon",
                                c_t=1.5)),
    "ttsa-public": ("ttsa", dict(alpha=0.3, eta=0.4, beta=0.05, b=4, S=3, D_f=2, step_rule="decaying",
                                 jv_batch="reuse")),
    "sid-stoch": ("sid", dict(alpha=0.5, S=3, t=6, k=5, beta=0.05)),
    "sid-dec": ("sid", dict(alpha=0.5, S=3, t=6, k=5, beta=0.05, policy="decreasing", eta_beta=2.5)),
    "sid-batch": ("sid", dict(alpha=0.5, t=6, k=5, beta=0.05)),
}


# ====================================================================== the toy's oracles
def test_toy_minibatch_oracles_are_unbiased_by_enumeration():
    """The mean of a stochastic oracle over all n components (idx = every index once) is the full one;
    uniform sampling then makes each oracle unbiased. float64 round-off of ~n d terms: 1e-13."""
    p = toy(batch=3, coupling_noise=0.4)
    g = torch.Generator().manual_seed(0)
    x, y, v = (torch.randn(3, d, generator=g, dtype=torch.float64) for d in (2, 3, 3))
    ig, jf = torch.arange(p.n_g).expand(3, -1), torch.arange(p.n_f).expand(3, -1)
    pairs = [(p._grad_y_G(x, y, ig), p._grad_y_g(x, y)), (p._grad_x_G(x, y, ig), p._grad_x_g(x, y)),
             (p._hvp_G(x, y, v, ig), p._hvp(x, y, v)), (p._jvp_G(x, y, v, ig), p._jvp(x, y, v)),
             (p._G(x, y, ig), p._g(x, y)), (p._F(x, y, jf), p._f(x, y)), (p._grad_y_F(x, y, jf), p._grad_y_f(x, y))]
    for a, b in pairs:
        assert float((a - b).abs().max()) <= 1e-13 * (1 + float(b.abs().max()))


# ====================================================================== unbiasedness of each estimator
def _twin(name, p, params, x, y0):
    """E[estimate of the first step] in closed form: on a quadratic every random matrix (batch Hessian,
    batch Jacobian, batch gradient map) is independent of the state it multiplies, so the expectation of
    the whole first step is the same algorithm run with the full (mean) oracles; BSA/TTSA's random p is
    averaged into the truncated series of b terms (``solvers.neumann`` with b - 1 steps)."""
    o = CountedOracle(p)
    if name == "stocbio":
        y = inner_gd(o, x, y0, params["N"], params["alpha"])
        return aid_estimate(o, x, y, None, solver="neumann", Q=params["Q"], eta=params["eta"])[0]
    if name in ("bsa", "ttsa"):
        if name == "bsa":  # k = 0: t_0 = ceil(sqrt 1) = 1 step of alpha gamma/(gamma + 0) = alpha
            y = y0 - params["alpha"] * o.grad_y_g(x, y0)
        else:  # horizon K = 1: one step alpha K^(-2/5) = alpha
            y = y0 - params["alpha"] * o.grad_y_g(x, y0)
        return aid_estimate(o, x, y, None, solver="neumann", Q=params["b"] - 1, eta=params["eta"])[0]
    full = dict(params, S=None)
    return sid_estimate(o, None, x, y0, torch.zeros_like(y0), _sid_params(full))[0]


def _sid_params(params):
    return resolve_params(get("sid"), toy(), None, params)


@pytest.mark.parametrize("cfg", ["stocbio-icml", "stocbio-arxiv", "stocbio-equal", "bsa", "ttsa", "sid-stoch",
                                 "sid-dec"])
def test_first_step_estimate_is_unbiased_for_its_twin(cfg):
    """Monte Carlo mean of the first-step estimate over R replicates equals the closed-form expectation
    (``_twin``) within Bonferroni 99% intervals. This checks every stochastic oracle a method uses
    (inner SGD, grad F, Hessian batches and their schedule, JV batch, p) and the sums' term counts."""
    name, params = CONFIGS[cfg]
    R = 1000
    p = toy(batch=R, same_data=True, coupling_noise=0.4)
    x0 = torch.full((R, p.dim_x), 0.3, dtype=torch.float64)
    tr = run(name, p, 1, x0=x0, generator=1000, **params)
    est = tr.estimates[1]
    one = toy(coupling_noise=0.4)
    expected = _twin(name, one, tr.params, x0[:1], torch.zeros(1, 3, dtype=torch.float64))[0]
    ok, worst = ci_ok(est, expected)
    assert ok, (cfg, worst)


# ====================================================================== counts
def _per_step_counts(name, params, k, p, neumann_p=None):
    """Closed forms of the counts of outer step k (module docstrings of stochastic.py / sid.py): what the
    batch executes, and for BSA/TTSA each instance's own counts given its Neumann lengths ``neumann_p`` (R,)
    (p_r B Hessian samples; the batch applies max_r p_r factors and draws all b - 1)."""
    P = dict(params)
    if name == "stocbio":
        hv = sum(stocbio_batch_sizes(P))
        return dict(gc_g=P["N"] * P["S"], gc_f=2 * P["D_f"], hv=hv, jv=P["D_g"], samples_f=P["D_f"],
                    samples_g=P["N"] * P["S"] + hv + P["D_g"])
    if name in ("bsa", "ttsa"):
        # t_k: ceil(sqrt(k+1)) ('sqrt') or ceil(c_t sqrt(K)) ('horizon', K = 4 steps); TTSA one step
        N = (math.ceil(math.sqrt(k + 1)) if P["schedule"] == "sqrt" else math.ceil(P["c_t"] * 2)) \
            if name == "bsa" else 1
        # the cross term's batch: D_g fresh samples, or TTSA's y-step batch reused (S JV, nothing drawn)
        jv, drawn_g = (P["S"], 0) if P.get("jv_batch") == "reuse" else (P["D_g"], P["D_g"])
        executed = dict(gc_g=N * P["S"], gc_f=2 * P["D_f"], hv=max(neumann_p) * P["B"], jv=jv,
                        samples_f=P["D_f"], samples_g=N * P["S"] + (P["b"] - 1) * P["B"] + drawn_g)
        own = [dict(executed, hv=q * P["B"], samples_g=N * P["S"] + q * P["B"] + drawn_g) for q in neumann_p]
        return executed, own
    S = 1 if P["S"] is None else P["S"]
    drawn = 0 if P["S"] is None else S * (P["t"] + P["k"] + (P["jv"] == "sampled"))
    return dict(gc_g=P["t"] * S, gc_f=2, hv=P["k"] * S, jv=S if P["jv"] == "sampled" else 1, samples_f=0,
                samples_g=drawn)


@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_counts_per_outer_step_match_closed_form(cfg, monkeypatch):
    """Executed counts per step, and (BSA/TTSA) each instance's own counts ``Trace.per_instance`` from the
    Neumann lengths p the run drew (recorded by a spy on ``draw_p``). Every other method's instances spend
    what the batch executes."""
    name, params = CONFIGS[cfg]
    drawn = []
    real = stochastic.draw_p
    monkeypatch.setattr(stochastic, "draw_p", lambda *a: drawn.append(real(*a)) or drawn[-1])
    p = toy(batch=3)
    tr = run(name, p, 4, generator=5, **params)
    for k in range(4):
        got = {key: tr.counts[key][k + 1] - tr.counts[key][k] for key in tr.counts}
        own = {key: (tr.per_instance(key)[k + 1] - tr.per_instance(key)[k]).tolist() for key in tr.counts}
        if name in ("bsa", "ttsa"):
            want, want_own = _per_step_counts(name, tr.params, k, p, drawn[k].squeeze(-1).tolist())
            for r in range(3):
                want_own[r]["mv"] = want_own[r]["hv"] + want_own[r]["jv"]
                assert {key: v[r] for key, v in own.items()} == want_own[r], (cfg, k, r)
        else:
            want = _per_step_counts(name, tr.params, k, p)
            assert all(v == [got[key]] * 3 for key, v in own.items()), (cfg, k, own)
        assert {key: got[key] for key in want} == want, (cfg, k, got, want)
        assert got["mv"] == got["hv"] + got["jv"]


def test_stocbio_schedules():
    """Decaying: ICML |B_{Q+1-j}| = ceil(B Q (1 - eta mu)^(j-1)) (consumed B_1..B_Q, i.e. increasing);
    arXiv |B_j| the same list in decreasing order; equal: same total, sizes within one."""
    P = dict(B=2.0, Q=3, eta=0.5, mu=1.0, schedule="decaying", form="icml")
    assert stocbio_batch_sizes(P) == [2, 3, 6]
    assert stocbio_batch_sizes(dict(P, form="arxiv")) == [6, 3, 2]
    assert stocbio_batch_sizes(dict(P, form="arxiv", schedule="equal")) == [4, 4, 3]


# ====================================================================== reproducibility
def _same(a, b):
    # record 0 of ``estimates`` is NaN by the Trace's convention (no step yet): compared from record 1
    return (torch.equal(a.x, b.x) and torch.equal(a.y, b.y) and torch.equal(a.estimates[1:], b.estimates[1:])
            and a.counts == b.counts)


@pytest.mark.parametrize("cfg", sorted(CONFIGS))
def test_equal_seeds_give_bitwise_equal_traces_and_batched_equals_single(cfg):
    name, params = CONFIGS[cfg]
    p = toy(batch=3, coupling_noise=0.3)
    a = run(name, p, 4, generator=11, **params)
    assert _same(a, run(name, p, 4, generator=11, **params))
    if not (name == "sid" and params.get("S") is None):  # the Batch variant of SID draws nothing
        assert not torch.equal(a.x, run(name, p, 4, generator=12, **params).x)
    for r in range(3):  # instance r alone, seed 11 + r (as_streams: seeds s..s+R-1), with the batched
        # run's resolved parameters (defaults such as mu depend on the constants of the whole batch)
        s = run(name, p.instance(r), 4, generator=11 + r, **a.params)
        assert torch.equal(s.x[:, 0], a.x[:, r]) and torch.equal(s.estimates[1:, 0], a.estimates[1:, r])
        # each instance's own counts do not depend on the batch it ran in (the executed ones may: BSA/TTSA
        # apply max_r p_r Neumann factors)
        assert all(torch.equal(s.per_instance(k)[:, 0], a.per_instance(k)[:, r]) for k in a.counts), (cfg, r)
        if name not in ("bsa", "ttsa"):
            assert s.counts == a.counts
        else:  # a single run applies exactly its own p factors (it draws all b - 1 batches)
            assert all(torch.equal(s.per_instance(k)[:, 0], s.count(k)) for k in ("hv", "mv"))


# ====================================================================== SID exactness
@pytest.mark.parametrize("family", ["toy", "quadratic", "stochastic-quadratic"])
def test_sid_batch_reproduces_true_hypergradient(family):
    """Batch SID (full maps, eta_t = 1, alpha = 2/(L+mu)): both iterations contract with
    q = (L-mu)/(L+mu) <= 9/11 (kappa <= 10), so after t = k = 400 steps the truncation error is
    q^400 < 1e-34 relative; what remains is float64 round-off of a few hundred affine steps
    (~1e-14 kappa), well inside the 1e-10 the issue fixes."""
    if family == "toy":
        p = toy(batch=2, coupling_noise=0.3)
    else:
        import bilevelbench.analytic as an
        if family not in an.names():
            pytest.skip(f"{family} not registered yet")
        p = make_problem(family, dim_x=4, dim_y=5, batch=2, kappa=10.0)
    x0 = 0.3 * torch.ones(2, p.dim_x, dtype=torch.float64)
    # the full map needs no per-sample contraction: the paper's alpha = 2/(L+mu) of the mean (SID Sec. 6)
    alpha = 2.0 / (p.constants.L + p.constants.mu)
    tr = run("sid", p, 1, x0=x0, t=400, k=400, jv="exact", alpha=alpha)
    assert rel(tr.estimates[1], p.hypergradient(x0)) <= 1e-10


# ====================================================================== bad input
def test_bad_input_raises_naming_the_parameter():
    p = toy(batch=2)
    with pytest.raises(ValueError, match="S=20 exceeds"):
        run("stocbio", p, 1, S=20, replace=False, **FIXED)
    with pytest.raises(ValueError, match="D_f=9 exceeds"):
        run("bsa", p, 1, D_f=9, replace=False)
    with pytest.raises(ValueError, match="parameter Q must be >= 0"):
        run("stocbio", p, 1, Q=-1)
    with pytest.raises(ValueError, match="eta=.* >= 2/L"):
        run("stocbio", p, 1, eta=2.0 / p.constants.L)
    with pytest.raises(ValueError, match="eta=.* >= 2/L"):
        run("ttsa", p, 1, eta=1.0)
    with pytest.raises(ValueError, match="alpha=.*non-contraction"):
        run("sid", p, 1, alpha=2.0 / p.constants.L * 1.01)
    for name in ("stocbio", "bsa", "ttsa"):  # the message names the algorithm that was asked for
        with pytest.raises(TypeError, match=f"^{name} needs a stochastic problem"):
            run(name, make_problem("quadratic", batch=2), 1)
    meta = make_problem("meta-learning", batch=2)
    with pytest.raises(ValueError, match=f"tasks={meta.tasks + 1} exceeds"):
        run("meta-itd-bio", meta, 1, tasks=meta.tasks + 1, replace=False)


def test_too_large_outer_step_is_reported_as_diverged():
    """beta far above 2/L_Phi(true) makes x blow up geometrically: the driver reports the divergence
    (Trace.diverged) instead of returning NaN silently."""
    p = toy(batch=2)
    with pytest.warns(DivergenceWarning, match="stocbio: 2 of 2"):
        tr = run("stocbio", p, 100, N=2, Q=2, alpha=0.3, eta=0.4, beta=1e4)
    assert tr.diverged is not None and bool((tr.diverged_at > 0).all())
    assert tr.iterations[-1] < 100  # the run ended when every instance had diverged


# ====================================================================== convergence below a derived level
def _quadratic_phi(p):
    """Phi(x) = lam/2||x||^2 + 1/2||y*(x) - cbar||^2 + const (f's mean): Hessian P = lam I + C'C with
    C = Abar^-1 Bbar, so L_Phi(true) = ||P|| and inf Phi = Phi(x*) with P x* = -C'(Abar^-1 ebar - cbar)."""
    A, B = p.Abar[0], p.Bbar[0]
    C = torch.linalg.solve(A, B)
    P = p.lam * torch.eye(p.dim_x, dtype=torch.float64) + C.T @ C
    x_star = torch.linalg.solve(P, -C.T @ (torch.linalg.solve(A, p.ebar[0]) - p.cbar[0]))
    def phi(x):  # Phi at one point x (dim_x,), evaluated on instance 0
        return float(p.phi(x.expand(p.R, -1))[0])
    return P, x_star, phi


def _gd_moments(A, steps, cov):
    """y_{t+1} = (I - a_t A) y_t + a_t (B x + e + xi_t) from y_0 = 0, Cov(xi_t) = cov: returns P with
    E y_T = (I - P) y*(x) and Cov(y_T) = sum_t a_t^2 Phi_t cov Phi_t' (Phi_t = prod_{s>t} (I - a_s A))."""
    eye = torch.eye(A.shape[0], dtype=torch.float64)
    P, Sig = eye.clone(), torch.zeros_like(A)
    for a in steps:
        M = eye - a * A
        P, Sig = M @ P, M @ Sig @ M.T + a * a * cov
    return P, Sig


def _sup_mse(p, Gs, P, Sig, cov_c, rho):
    """sup_{||x|| <= rho} E||est(x) - grad Phi(x)||^2 for est = lam x + G (y_T - c_batch), G drawn
    uniformly from ``Gs`` (p of BSA; one G otherwise), y_T with mean (I - P) y*(x) and covariance Sig,
    c_batch with mean cbar and covariance cov_c, all independent; grad Phi = lam x + B'A^-1 (y* - cbar).
    est - grad Phi = d_G(x) + G (noise_y - noise_c), d_G(x) = (G (I - P) - K) y*(x) - (G - K) cbar with
    K = B'A^-1 and y*(x) = A^-1 (B x + e): affine in x, so ||d_G(x)|| <= ||D_G|| rho + ||d_G(0)||."""
    A, B, e, c = p.Abar[0], p.Bbar[0], p.ebar[0], p.cbar[0]
    K = B.T @ torch.linalg.inv(A)
    eye = torch.eye(A.shape[0], dtype=torch.float64)
    ys_lin, ys_0 = torch.linalg.solve(A, B), torch.linalg.solve(A, e)
    total = 0.0
    for G in Gs:
        W = G @ (eye - P) - K
        Dm, d0 = W @ ys_lin, W @ ys_0 - (G - K) @ c
        bias = float(torch.linalg.matrix_norm(Dm, ord=2)) * rho + float(d0.norm())
        total += bias**2 + float(torch.trace(G @ (Sig + cov_c) @ G.T))
    return total / len(Gs)


def _covs(p, S, D_f):
    """Population covariances of e_i and c_j over their finite sets, divided by the batch sizes
    (the mean of S i.i.d. uniform draws with replacement)."""
    E, Cc = p.E[0], p.C[0]
    ce = (E - E.mean(0)).T @ (E - E.mean(0)) / E.shape[0]
    cc = (Cc - Cc.mean(0)).T @ (Cc - Cc.mean(0)) / Cc.shape[0]
    return ce / S, (cc / D_f if D_f else torch.zeros_like(cc))


@pytest.mark.parametrize("method", ["stocbio", "bsa", "sid"])
def test_mean_squared_hypergradient_falls_below_derived_level(method):
    """Derivation (descent lemma, pathwise): for beta <= 1/L_Phi(true),
    Phi(x_{k+1}) <= Phi(x_k) - beta grad'(grad + e_k) + beta/2 ||grad + e_k||^2
               = Phi(x_k) - beta/2 ||grad Phi(x_k)||^2 + beta/2 ||e_k||^2,  e_k = est_k - grad Phi(x_k);
    summing, (1/K) sum_k ||grad Phi(x_k)||^2 <= 2 (Phi(x_0) - inf Phi)/(beta_eff K) + (1/K) sum ||e_k||^2.
    With a fresh inner start (y_k^0 = 0, warm_y=False / warm_w=False) the error of step k depends on the
    past only through x_k, so E||e_k||^2 = E[MSE(x_k)] <= sup_{||x|| <= rho} MSE(x) as long as the iterates
    stay in the ball (asserted). On the toy with exact Hessians and Jacobians (hess_noise = coupling_noise
    = 0; noise in e_i and c_j only) MSE(x) is explicit (``_sup_mse``): stocBiO G = B' eta sum_{q<=Q}
    (I - eta A)^q; BSA G_p = B' b eta (I - eta A)^p, p uniform; SID G = alpha B' V_k with v_k = V_k b
    from the deterministic (29). beta_eff: beta (stocBiO, SID), beta/sqrt(K) (BSA).
    Check: the Monte Carlo average of (1/K) sum ||grad Phi(x_k)||^2 over R runs is not significantly above
    the level (its one-sided 99% lower confidence bound is below it), and it is below ||grad Phi(x_0)||^2.
    """
    R, K, rho = 100, 40, 6.0
    p = toy(batch=R, same_data=True, hess_noise=0.0, coupling_noise=0.0, e_noise=0.4, c_noise=0.4)
    P_hess, x_star, phi = _quadratic_phi(p)
    L_true = float(torch.linalg.eigvalsh(P_hess)[-1])
    A = p.Abar[0]
    eye = torch.eye(3, dtype=torch.float64)
    beta = 1.0 / L_true
    if method == "stocbio":
        prm = dict(alpha=0.4, eta=0.4, N=8, Q=6, B=1.0, S=2, D_f=2, D_g=1, beta=beta, warm_y=False)
        Pm, Sig = _gd_moments(A, [prm["alpha"]] * prm["N"], _covs(p, prm["S"], 0)[0])
        NQ = neumann(lambda u: u @ A, eye, prm["Q"], prm["eta"])
        Gs, beta_eff, cov_c = [p.Bbar[0].T @ NQ], beta, _covs(p, 1, prm["D_f"])[1]
    elif method == "bsa":
        prm = dict(alpha=0.4, gamma=6.0, eta=0.4, b=8, schedule="constant", N=8, S=2, D_f=2, B=1,
                   beta=beta * math.sqrt(K), warm_y=False)
        steps = [prm["alpha"] * prm["gamma"] / (prm["gamma"] + t) for t in range(prm["N"])]
        Pm, Sig = _gd_moments(A, steps, _covs(p, prm["S"], 0)[0])
        M = eye - prm["eta"] * A
        Gs = [p.Bbar[0].T @ (prm["b"] * prm["eta"] * torch.linalg.matrix_power(M, q)) for q in range(prm["b"])]
        beta_eff, cov_c = beta, _covs(p, 1, prm["D_f"])[1]
    else:
        prm = dict(alpha=0.5, S=2, t=12, k=12, beta=beta, policy="decreasing", jv="exact")
        q = max(abs(1 - 0.5 * p.constants.mu), abs(1 - 0.5 * float(torch.linalg.eigvalsh(A)[-1])))
        bb = 2 / (1 - q * q)
        eta_t = [bb / (bb + t) for t in range(12)]
        Pm, Sig = _gd_moments(A, [e * prm["alpha"] for e in eta_t], _covs(p, prm["S"], 0)[0])
        V = torch.zeros_like(A)
        for e in eta_t:  # v_{k+1} = v_k + eta_k (-alpha A v_k + b): v_k = V_k b
            V = V + e * (eye - prm["alpha"] * A @ V)
        Gs, beta_eff, cov_c = [prm["alpha"] * p.Bbar[0].T @ V], beta, torch.zeros_like(A)
    x0 = torch.zeros(R, 2, dtype=torch.float64)
    tr = run(method, p, K, x0=x0, generator=2024, scorer=lambda x, y: {"g2": (p._hypergradient(x) ** 2).sum(-1)},
             **prm)
    assert tr.diverged is None and float(tr.x.norm(dim=-1).max()) <= rho
    phi0, phi_star = phi(x0[0]), phi(x_star)
    level = 2 * (phi0 - phi_star) / (beta_eff * K) + _sup_mse(p, Gs, Pm, Sig, cov_c, rho)
    avg = tr.metrics["g2"][:K].mean(0)  # (1/K) sum_{k<K} ||grad Phi(x_k)||^2 per run
    lcb = float(avg.mean() - 2.33 * avg.std() / math.sqrt(R))
    assert lcb <= level, (method, lcb, level)
    assert float(tr.metrics["g2"][-10:].mean()) < float(tr.metrics["g2"][0].mean())


def _ttsa_moments(p, prm, K):
    """Exact E||grad Phi(x_k)||^2, k = 0..K, of TTSA on the toy with exact Hessians and Jacobians.

    Derivation. With hess_noise = coupling_noise = 0 the toy has A_i = A, B_i = B, and one TTSA step
    (Hong et al. 2020 Alg. 1 as in ``algorithms.stochastic._ttsa_step``: step sizes a = alpha K^-exp_y,
    s = beta K^-exp_x) reads, with xi = e_S - ebar (Cov ce/S) and zeta = c_D - cbar (Cov cc/D_f),
        y' = (I - aA) y + a B x + a ebar + a xi,
        x' = x - s (lam x + G_p (y' - cbar - zeta)),   G_p = B' b eta (I - eta A)^p,  p uniform on {0..b-1}.
    So z = (x, y, 1) evolves as z' = T_p z + N_p w with w = (xi, zeta). (p, w) is drawn afresh and
    independently of z, and E[w | p] = 0, so the cross terms vanish and the second moment follows
        E[z'z''] = (1/b) sum_p (T_p E[zz'] T_p' + N_p Cov(w) N_p').
    grad Phi(x) = P x + g0 (P = lam I + B'A^-2 B, g0 = B'A^-1 (A^-1 ebar - cbar)) is linear in z:
    E||grad Phi(x_k)||^2 = tr(Gam E[z_k z_k'] Gam') with Gam = [P, 0, g0]. Unlike the level of
    ``test_mean_squared_hypergradient_falls_below_derived_level`` this needs no fresh inner start: TTSA
    carries y across steps, and the recursion carries its correlation with x exactly."""
    A, B, e, c = p.Abar[0], p.Bbar[0], p.ebar[0], p.cbar[0]
    dx, dy = B.shape[1], B.shape[0]
    n = dx + dy + 1
    a = prm["alpha"] * K ** (-prm["exp_y"])
    s = prm["beta"] * K ** (-prm["exp_x"])
    b, eta, lam = prm["b"], prm["eta"], p.lam
    Ix, Iy = torch.eye(dx, dtype=torch.float64), torch.eye(dy, dtype=torch.float64)
    Ma = Iy - a * A
    ce, cc = _covs(p, prm["S"], prm["D_f"])
    cov_w = torch.block_diag(ce, cc)
    Ts, Ns = [], []
    for q in range(b):
        G = B.T @ (b * eta * torch.linalg.matrix_power(Iy - eta * A, q))
        T = torch.zeros(n, n, dtype=torch.float64)
        T[dx:dx + dy, :dx], T[dx:dx + dy, dx:dx + dy], T[dx:dx + dy, -1] = a * B, Ma, a * e
        T[:dx, :dx] = (1 - s * lam) * Ix - s * a * G @ B
        T[:dx, dx:dx + dy] = -s * G @ Ma
        T[:dx, -1] = -s * G @ (a * e - c)
        T[-1, -1] = 1.0
        N = torch.zeros(n, 2 * dy, dtype=torch.float64)
        N[:dx, :dy], N[:dx, dy:], N[dx:dx + dy, :dy] = -s * a * G, s * G, a * Iy
        Ts.append(T)
        Ns.append(N)
    Ainv = torch.linalg.inv(A)
    Gam = torch.cat([lam * Ix + B.T @ Ainv @ Ainv @ B, torch.zeros(dx, dy, dtype=torch.float64),
                     (B.T @ Ainv @ (Ainv @ e - c)).unsqueeze(1)], 1)
    z0 = torch.zeros(n, dtype=torch.float64)
    z0[-1] = 1.0
    Sm = torch.outer(z0, z0)
    out = [float(torch.trace(Gam @ Sm @ Gam.T))]
    for _ in range(K):
        Sm = sum(T @ Sm @ T.T + N @ cov_w @ N.T for T, N in zip(Ts, Ns, strict=True)) / b
        out.append(float(torch.trace(Gam @ Sm @ Gam.T)))
    return torch.tensor(out, dtype=torch.float64)


def test_ttsa_mean_squared_hypergradient_matches_its_exact_second_moment():
    """TTSA carries y across steps, so the fresh-start level above does not apply; on the toy the whole
    iteration is linear in (x, y) with independent random coefficients, and E||grad Phi(x_k)||^2 is exact
    (``_ttsa_moments``). Check: over R i.i.d. runs, the Monte Carlo mean of ||grad Phi(x_K)||^2 and of the
    time average (1/K) sum_{k<K} ||grad Phi(x_k)||^2 each lie in their two-sided 99% Bonferroni interval
    (2 statistics) around the exact value; and the exact level at K is below ||grad Phi(x_0)||^2, i.e. the
    parameters make TTSA decrease E||grad Phi||^2 (a property of the derivation, checked before the run)."""
    R, K = 2000, 60
    p = toy(batch=R, same_data=True, hess_noise=0.0, coupling_noise=0.0, e_noise=0.8, c_noise=0.8)
    prm = dict(alpha=0.8, beta=4.0, exp_y=0.4, exp_x=0.6, eta=0.4, b=5, S=2, D_f=2, D_g=1, B=1)
    exact = _ttsa_moments(p, prm, K)
    assert exact[K] < 0.5 * exact[0]
    x0 = torch.zeros(R, 2, dtype=torch.float64)
    tr = run("ttsa", p, K, x0=x0, y0=torch.zeros(R, 3, dtype=torch.float64), generator=7,
             scorer=lambda x, y: {"g2": (p._hypergradient(x) ** 2).sum(-1)}, **prm)
    assert tr.diverged is None
    g2 = tr.metrics["g2"]  # (K+1, R): row k is ||grad Phi(x_k)||^2 of every run
    z = NormalDist().inv_cdf(1 - 0.01 / (2 * 2))
    for samples, value in ((g2[K], exact[K]), (g2[:K].mean(0), exact[:K].mean())):
        half = z * float(samples.std()) / math.sqrt(R)
        assert abs(float(samples.mean()) - float(value)) <= half, (float(samples.mean()), float(value), half)


# ====================================================================== meta-learning and shared families
def test_meta_learning_variants_run_and_count_tasks():
    """ITD-BiO / AID-BiO with |B| tasks per outer step: every oracle call costs |B| (one task batch drawn
    per step, tallied in samples_g); both decrease ||grad Phi||^2 on the shared meta-learning family."""
    an = pytest.importorskip("bilevelbench.analytic")
    if "meta-learning" not in an.names():
        pytest.skip("meta-learning family not registered yet")
    p = make_problem("meta-learning", batch=2)
    def scorer(x, y):
        return ({"g2": (p.hypergradient(x) ** 2).sum(-1)})
    for name, N, extra in (("meta-itd-bio", 5, {}), ("meta-aid-bio", 5, {"Q": 4})):
        tr = run(name, p, 3, generator=1, tasks=3, N=N, scorer=scorer, **extra)
        d = {k: tr.counts[k][1] - tr.counts[k][0] for k in tr.counts}
        assert d["samples_g"] == 3 and d["gc_g"] == 3 * N
        if name == "meta-itd-bio":
            assert d["jv"] == 3 * N and d["hv"] == 3 * (N - 1) and d["gc_f"] == 6
        else:
            assert d["jv"] == 3 and d["hv"] == 3 * 4 and d["gc_f"] == 6
        assert tr.diverged is None


@pytest.mark.parametrize("name", ["stocbio", "bsa", "ttsa", "sid"])
def test_shared_stochastic_quadratic(name):
    """Once the shared family exists: every method runs without divergence from its defaults, and equal
    seeds reproduce."""
    import bilevelbench.analytic as an
    if "stochastic-quadratic" not in an.names():
        pytest.skip("stochastic-quadratic family not registered yet")
    p = make_problem("stochastic-quadratic", batch=2)
    kw = {"S": 4} if name == "sid" else {}
    a = run(name, p, 3, generator=3, **kw)
    assert a.diverged is None and _same(a, run(name, p, 3, generator=3, **kw))
