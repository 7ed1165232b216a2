"""The algorithm driver (algorithms/base.py run, Trace, registry), validation, theory presets and the
autograd backend, exercised through the deterministic optimizers."""

import math

import pytest
import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an
from bilevelbench.algorithms.base import DivergenceWarning
from bilevelbench.analytic import Constants, FunctionProblem

DETERMINISTIC = [n for n in al.names() if not al.get(n).stochastic]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def quad(kappa=10.0, d=6, device="cpu", **kw):
    return an.make_problem("quadratic", dim_x=d, dim_y=d, kappa=kappa, device=device, **kw)


def test_registry_metadata():
    assert {"aid-bio", "ba", "itd-bio", "deterbio"} <= set(DETERMINISTIC)
    for name in DETERMINISTIC:
        meta = al.get(name).describe()
        assert meta["name"] == name and meta["paper"] and meta["reference"] and meta["summary"]
        assert meta["stochastic"] is False and meta["kind"] in ("aid", "itd")
        assert all(p["meaning"] for p in meta["params"].values())


# ---------------------------------------------------------------------- divergence
def _diverging_run():
    # alpha = 3/L: on the eigen-direction of A with eigenvalue L the inner GD map is 1 - 3 = -2, so the
    # tracking error doubles per inner step (N = 10: x 1024 per outer step); the growth rule flags it once
    # ||(x, y)|| passes 1e6 times its start scale (a few outer steps), long before float64 (max ~2^1024)
    # would overflow (~1024/10 + 1 = 104 outer steps); 300 leave margin.
    p = quad(batch=2)

    def score(x, y):
        return {"grad_phi2": (p.hypergradient(x) ** 2).sum(-1)}
    with pytest.warns(DivergenceWarning, match="aid-bio: 2 of 2 instance"):
        return al.run("aid-bio", p, 300, alpha=3.0 / p.constants.L, N=10, scorer=score)


def test_divergence_is_reported_not_raised():
    t = _diverging_run()
    assert t.diverged is not None and 1 <= t.diverged <= 300
    assert bool((t.diverged_at >= 1).all())
    assert t.iterations[-1] < 300  # every instance diverged: the run stopped early
    assert any("alpha" in msg for msg in t.outside_theory)
    # every record strictly before an instance's divergence index is finite
    its = torch.tensor(t.iterations)
    for r in range(2):
        ok = its < t.diverged_at[r]
        assert bool(ok.any())
        for arr in (t.x[ok, r], t.y[ok, r], t.estimates[ok, r][1:], t.metrics["grad_phi2"][ok, r]):
            assert bool(torch.isfinite(arr).all())


def test_divergence_leaves_no_nonfinite_record():
    t = _diverging_run()
    assert bool(torch.isfinite(t.x).all()) and bool(torch.isfinite(t.metrics["grad_phi2"]).all())


# ---------------------------------------------------------------------- validation
@pytest.mark.parametrize("kwargs, exc, word", [
    ({"alpha": 0.0}, ValueError, "alpha"), ({"alpha": -1.0}, ValueError, "alpha"),
    ({"beta": 0.0}, ValueError, "beta"), ({"eta": -0.5}, ValueError, "eta"),
    ({"N": 0}, ValueError, "N"), ({"Q": 0}, ValueError, "Q"), ({"Q": -3}, ValueError, "Q"),
    ({"tol": 0.0}, ValueError, "tol"), ({"Q": 2.5}, TypeError, "Q"), ({"alpha": math.inf}, ValueError, "alpha"),
    ({"solver": "lu"}, ValueError, "solver"), ({"gamma": 1.0}, ValueError, "gamma"),
    ({"preset": "no-such-preset"}, ValueError, "no-such-preset"),
    ({"steps": -1}, ValueError, "steps"), ({"backend": "jax"}, ValueError, "backend"),
])
def test_bad_parameters_raise_naming_them(kwargs, exc, word):
    kwargs = {"steps": 2, **kwargs}
    with pytest.raises(exc, match=word):
        al.run("aid-bio", quad(), **kwargs)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_nonpositive_counts_rejected_for_every_algorithm(name):
    for count in ("N", "Q"):
        if count in al.get(name).params:
            with pytest.raises(ValueError, match=count):
                al.run(name, quad(), 1, **{count: 0})


def test_outside_theory_allowed_and_recorded():
    p = quad()
    L = p.constants.L
    t = al.run("itd-bio", p, 3, alpha=2.0 / L)  # outside alpha <= 1/L, still runs
    assert len(t.iterations) == 4 and any("alpha" in m for m in t.outside_theory)
    assert al.run("itd-bio", p, 1, alpha=1.0 / L).outside_theory == []
    t = al.run("aid-bio", p, 1, solver="gd", eta=1.5 / L)
    assert any("eta" in m for m in t.outside_theory)
    # CG does not use eta, so an eta outside the range is irrelevant there
    assert al.run("aid-bio", p, 1, solver="cg", eta=1.5 / L).outside_theory == []


# ---------------------------------------------------------------------- presets
def _toy():
    """A user problem with hand-set constants: L = 1, mu = 0.5 (kappa = 2), M = 1, tau = rho = 0,
    L_Phi = L + 2L^2/mu + L^3/mu^2 = 1 + 4 + 4 = 9 (Lemma 2 with tau = rho = 0), region radius 1."""
    c = Constants(L=1.0, mu=0.5, kappa=2.0, M=1.0, tau=0.0, rho=0.0, L_phi=9.0, extra={"radius": 1.0})
    return FunctionProblem(lambda x, y: 0.5 * (y * y).sum(-1) + (x * x).sum(-1),
                           lambda x, y: 0.5 * ((y - x) ** 2).sum(-1), dim_x=2, dim_y=2, constants=c)


PRESET_EXAMPLES = [
    # ICML Thm 1: alpha = 1/L = 1, beta = 1/(8 L_Phi) = 1/72, D = ceil(kappa) = 2, N_CG = ceil(sqrt 2) = 2
    ("aid-bio", "icml21.thm1", {}, {"alpha": 1.0, "beta": 1 / 72, "N": 2, "Q": 2, "solver": "cg",
                                    "warm_y": True, "warm_v": True}),
    # ICML Thm 2: beta = 1/(4 L_Phi) = 1/36, D = ceil(kappa ln(1/eps)) = ceil(2 * 9.2103) = 19
    ("itd-bio", "icml21.thm2", {"eps": 1e-4}, {"alpha": 1.0, "beta": 1 / 36, "N": 19}),
    # arXiv Thm 1: Delta = (2 r)^2 = 4; max{3LM/mu = 6, 9 Delta L^2 (1 + kappa)^2 = 324, 0 (tau = rho = 0)}
    # = 324; T = ln(324 * 9 / (2e-4)) / ln(1/(1 - alpha mu)) = ln(1.458e7)/ln 2 = 23.797 -> 24
    ("deterbio", "arxiv20.thm1", {"eps": 1e-4}, {"alpha": 1.0, "beta": 1 / 36, "N": 24, "warm_y": False}),
    # Loops Cor. 1 (Q = 1): N = ceil(kappa ln kappa = 1.386) = 2, eta = alpha = 1, lambda = 1;
    # C_Q = 1 * 1 * 1/0.5 + (1 - 0.5 * 1.5)/0.25 + 0.5 * 1/0.5 = 2 + 1 + 1 = 4, r = mu^2 C_Q^2 = 4,
    # w~ = 0.5 * 16/(1 * 4) + 16/0.5 * (0.25/0.25 + 0.5/1) = 2 + 48 = 50, beta = min{1/9, sqrt(0.5/50)} = 0.1
    ("aid-bio", "loops22.cor1", {}, {"alpha": 1.0, "eta": 1.0, "N": 2, "Q": 1, "solver": "gd",
                                     "warm_v": True, "beta": 0.1}),
    # Loops Cor. 2 (Q = 1): eta = min{alpha mu^2/(128 Q^2 L^2) = 1/512, alpha/4, 1/(mu Q) = 2} = 1/512,
    # lambda = alpha mu/2 = 1/4; eta mu = 1/1024, C_Q = 1/256 + 4/1024^2 + 2/1024 = 0.0058632,
    # r = 0.25 C_Q^2 = 8.594e-6, w~ = (1/1024) 16/(r/4) + 16 * 1024 ((1 - 1/1024)^2/0.25 + 1/256) = 72744.4,
    # beta = min{1/9, sqrt((1/1024)/72744.4)} = 1.15864e-4
    ("aid-bio", "loops22.cor2", {}, {"alpha": 1.0, "eta": 1 / 512, "N": 1, "Q": 1, "solver": "gd",
                                     "beta": 1.1586448457e-4}),
    # Loops Cor. 3: N = 2, Q = ceil(kappa ln(kappa/eps)) = ceil(2 * 9.9035) = 20, beta = c_beta/L_Phi with
    # c_beta = 1/4 (Theorem 2: beta L_Phi <= 1/4) = 1/36, v^0 = 0
    ("aid-bio", "loops22.cor3", {"eps": 1e-4}, {"alpha": 1.0, "eta": 1.0, "N": 2, "Q": 20, "warm_v": False,
                                                "beta": 1 / 36}),
    # Loops Cor. 4: N = 1, Q = 20, beta = c_beta/(kappa L_Phi) = 1/(4 * 2 * 9) = 1/72
    ("aid-bio", "loops22.cor4", {"eps": 1e-4}, {"N": 1, "Q": 20, "warm_v": False, "beta": 1 / 72}),
    # Loops Cor. 5 (c = 0.1): alpha = 1/(2L) = 0.5, N = ceil(0.1 * 2 ln(2e4)) = ceil(1.981) = 2;
    # alpha mu = 1/4, a_N = 0.5 (1 - 0.75)/(1 - sqrt .75) = 0.93301, w_N = 1.93301 * 0.93301 * 0.75^0 = 1.80353,
    # lambda_N = (1.80353^2 + (1 + 1)^2)/(1 - 1/16 - 0.5625 * 1.125) = 23.8037,
    # w = 4/0.25 * 0.5625 * 23.8037 + 1.80353^2/0.25 = 227.2445,
    # beta = min{sqrt(0.25/(40 w)) = 5.24437e-3, sqrt(0.75/(2 w)) = 0.0406, 1/72} = 5.24437e-3
    ("itd-bio", "loops22.cor5", {"eps": 1e-4, "c": 0.1}, {"alpha": 0.5, "N": 2, "beta": 5.244369578e-3}),
    # Loops Cor. 6 (N = 1): alpha = 1/(2 N L) = 0.5; a_N = alpha (N/2 = 1/2 makes the fraction 1) = 0.5,
    # w_N = 1.5 * 0.5 * 0.75^(-1/2) = sqrt(0.75), lambda_N = (0.75 + 1.5^2)/(0.9375 - 0.84375) = 32,
    # w = 16 * 0.75 * 32 + 0.75/0.25 = 387, beta = min{sqrt(0.25/(40 * 387)), sqrt(0.75/774), 1/72}
    ("itd-bio", "loops22.cor6", {}, {"alpha": 0.5, "N": 1, "beta": math.sqrt(0.25 / (40 * 387))}),
    # BA (Loops Table 1): Q = ceil(kappa ln kappa) = ceil(1.386) = 2, alpha = eta = 1, beta = 1/72
    ("ba", "loops22.table1", {}, {"alpha": 1.0, "eta": 1.0, "Q": 2, "solver": "neumann",
                                  "schedule": "increasing", "beta": 1 / 72}),
    ("aid-bio", "ba", {}, {"Q": 2, "solver": "neumann", "schedule": "increasing", "beta": 1 / 72}),
]


def test_every_preset_has_an_example():
    covered = {(n, pre) for n, pre, _, _ in PRESET_EXAMPLES}
    assert covered == {(n, pre) for n in DETERMINISTIC for pre in al.get(n).presets}


@pytest.mark.parametrize("name, preset, args, expected", PRESET_EXAMPLES)
def test_preset_values(name, preset, args, expected):
    t = al.run(name, _toy(), 0, preset=preset, preset_args=args)
    for key, val in expected.items():
        if isinstance(val, float):
            # the preset evaluates the same closed forms; the worked numbers above carry 10 digits
            assert t.params[key] == pytest.approx(val, rel=1e-9), key
        else:
            assert t.params[key] == val, key
    # every preset is inside the step-size conditions of the theorem it cites (alpha, eta and beta)
    assert t.outside_theory == []


def test_explicit_params_override_preset():
    t = al.run("aid-bio", _toy(), 0, preset="icml21.thm1", Q=7)
    assert t.params["Q"] == 7 and t.params["N"] == 2


# ---------------------------------------------------------------------- autograd backend
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_autograd_backend_same_trace(name, device):
    # The autograd backend differentiates g = 1/2 y'Ay - y'(Bx + e) with torch.func: grad_y g =
    # (A + A')/2 y - (Bx + e), which differs from the closed form A y by the asymmetry of A at round-off
    # (~EPS64 ||A||). Over K = 10 contracting steps these per-step round-off differences stay
    # <= K * c * d * kappa * EPS64 ~ 10 * 6 * 10 * 2.2e-16 * c ~ 1e-13 c; 1e-10 is the bound.
    # Q = d: warm-started CG with Q < d is NOT round-off stable across outer steps (an eigen-component
    # absent from the residual is multiplied by |R_Q(lambda)| > 1, the CG residual polynomial, at every
    # restart; we measured ~100x per outer step at Q = 4, d = 6, so two backends drift to 1e-5 in 10 steps
    # while both stay accurate). With Q = d CG is exact at every outer step and the bound above holds.
    p = quad(batch=2, device=device)
    kw = {k: v for k, v in {"N": 4, "Q": 6}.items() if k in al.get(name).params}
    tc = al.run(name, p, 10, **kw)
    ta = al.run(name, p, 10, backend="autograd", **kw)
    assert ta.counts == tc.counts
    for a, b in ((ta.x, tc.x), (ta.y, tc.y), (ta.estimates[1:], tc.estimates[1:])):
        assert float((a - b).norm() / b.norm()) <= 1e-10


@pytest.mark.parametrize("name", [n for n in DETERMINISTIC if al.get(n).kind == "itd"])
def test_itd_autograd_mode_same_trace(name):
    # Prop. 2 at the algorithm level: the reverse recursion and backprop through the unrolled loop give
    # the same Trace (re-association round-off only; same bound as above) and the same counts.
    p = quad(batch=2)
    tr = al.run(name, p, 10, mode="reverse")
    ta = al.run(name, p, 10, mode="autograd")
    assert ta.counts == tr.counts
    for a, b in ((ta.x, tr.x), (ta.y, tr.y), (ta.estimates[1:], tr.estimates[1:])):
        assert float((a - b).norm() / b.norm()) <= 1e-10


def test_user_function_problem_runs():
    # An autograd-only user problem runs through every deterministic algorithm with either backend.
    p = _toy()
    for name in DETERMINISTIC:
        modes = [{"mode": "reverse"}, {"mode": "autograd"}] if "mode" in al.get(name).params else [{}]
        for mode in modes:
            t = al.run(name, p, 3, backend="autograd", **mode)
            assert t.diverged is None and torch.isfinite(t.x).all()


# ---------------------------------------------------------------------- inference mode
@pytest.mark.parametrize("backend", ["closed", "autograd"])
def test_steps_run_in_inference_mode_only_with_closed_forms_and_results_are_ordinary(backend):
    """The driver runs the closed-form backend's steps under torch.inference_mode (less dispatch work);
    what it hands back must still be ordinary tensors that the caller may modify and differentiate."""
    p = quad(batch=2)
    seen = []
    algo = al.get("aid-bio")

    def spy(x, y):
        seen.append(torch.is_inference_mode_enabled())
        return {}
    tr = al.run("aid-bio", p, 3, scorer=spy)  # the scorer runs between steps, outside the mode
    assert seen and not any(seen)
    assert not tr.x.is_inference() and not tr.x_last.is_inference()
    tr.x_last.add_(1.0)  # in place: refused on an inference tensor outside inference mode
    x = tr.x_last.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(p.phi(x).sum(), x)
    assert torch.isfinite(g).all()
    ctx = al.Context(oracle=al.CountedOracle(p, backend), params=tr.params, streams=None, x0=tr.x[0],
                     y0=torch.zeros(2, p.dim_y, dtype=torch.float64), steps=1, inference=backend == "closed")
    state = algo.advance(ctx, algo.init(ctx), 0)
    assert state.x.is_inference() == (backend == "closed")
