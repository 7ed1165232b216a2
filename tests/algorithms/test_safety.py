"""Safe, honest defaults (issue 18 item 6) and faithful BSA/TTSA (issue 20 item 3).

- Steps that must contract for every sample use the per-sample curvature L_s (``stochastic_presets.sample_L``):
  the defaults and the theory presets of stocBiO, BSA, TTSA, SID and meta-learning.
- The driver flags divergence per instance (non-finite, or growth beyond DIVERGENCE_FACTOR times the start
  scale: the rule of ``base.Trace``) and warns once (``DivergenceWarning``).
- ``outside_theory`` checks the step-size conditions of the theorem a preset cites, the outer step included.
- Every algorithm under its theory preset on the reference instance (``bench.experiments.reference.THEORY``,
  read only) neither diverges nor leaves the region where the problem declares its constants.
"""

from __future__ import annotations

import math
import warnings

import pytest
import torch

import bilevelbench.algorithms as al
import bilevelbench.analytic as an
from bilevelbench.algorithms import stochastic_presets as sp
from bilevelbench.algorithms.base import DIVERGENCE_FACTOR, DivergenceWarning
from bilevelbench.algorithms.stochastic import bsa_inner_steps, neumann_terms


@pytest.fixture
def one_thread():
    """The reference runs are many small products: on a shared 2-core machine two intra-op threads contend
    (a (2, 1, 4) x (2, 4, 600) bmm took 2.4 ms with two threads, 9 us with one); the numbers are the same."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def sq(kappa=3.0, batch=2, **kw):
    """The issue's instance: stochastic-quadratic at kappa = 3 (defaults: d = 10, n = 64, noise 1), where a
    single sample's curvature (L_s = 7.3) is far above the mean's L = 1."""
    return an.make_problem("stochastic-quadratic", kappa=kappa, batch=batch, **kw)


def _z_max_over_region(trace, problem) -> float:
    """max_k max_r ||(x_k, y_k)|| / r0, r0 the radius of the ball on which the problem declares its constants."""
    z = torch.cat([trace.x, trace.y], -1).norm(dim=-1)
    return float(z.max()) / problem.region_radius()


# ====================================================================== per-sample defaults
def test_per_sample_curvature_is_the_familys_exact_one():
    p = sq()
    c = p.constants
    assert sp.sample_L(p) == c.extra["L_sample_yy"] > 5 * c.L  # the instance the issue describes
    q = an.make_problem("quadratic", kappa=3.0)
    assert sp.sample_L(q) == q.constants.L  # no samples: the mean's L
    m = an.make_problem("meta-learning", batch=2)
    assert sp.sample_L(m) == max(m.constants.L, m.constants.extra["L_task"])


@pytest.mark.parametrize("name", ["stocbio", "bsa", "ttsa", "sid"])
def test_default_steps_use_the_per_sample_curvature(name):
    p = sq()
    Ls, mu = sp.sample_L(p), p.constants.mu
    params = al.run(name, p, 0).params
    want = {"stocbio": {"alpha": 2 / (Ls + mu), "eta": 1 / Ls},
            "bsa": {"alpha": 1 / Ls, "eta": 1 / Ls, "gamma": 2 * Ls / mu},
            "ttsa": {"alpha": 1 / Ls, "eta": 1 / Ls},
            "sid": {"alpha": 2 / (Ls + mu)}}[name]
    for key, value in want.items():
        assert params[key] == pytest.approx(value, rel=1e-15), key


@pytest.mark.parametrize("name, kw", [("stocbio", {}), ("bsa", {}), ("ttsa", {}), ("sid", {"S": 1}),
                                      ("sid", {"S": 4})])
def test_defaults_stay_in_the_region_on_the_issue_instance(name, kw):
    """Before: the default stocBiO reached ||(x, y)|| ~ 1e13 r0 in 30 steps (1e41 in the issue's run), BSA
    3e3 r0, SID with single samples 6e45 r0, all without a flag. With every single-sample map a contraction the
    iterates stay inside the ball where the constants hold (r0 holds the start and the solution)."""
    p = sq()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        tr = al.run(name, p, 30, generator=0, **kw)
    assert tr.diverged is None
    assert _z_max_over_region(tr, p) <= 1.0, name


def test_meta_learning_defaults_are_per_task():
    m = an.make_problem("meta-learning", batch=2)
    params = al.run("meta-aid-bio", m, 0).params
    L_task = m.constants.extra["L_task"]
    assert params["alpha"] == params["eta"] == 1 / L_task and params["tasks"] == m.tasks


# ====================================================================== theory presets read per sample
def test_stocbio_presets_read_the_constants_per_sample():
    p = sq(kappa=2.0, dim_x=5, dim_y=5, noise=0.3, noise_f=0.3)
    c = p.constants
    Ls, mu = sp.sample_L(p), c.mu
    ks = Ls / mu
    for preset in ("icml21.thm3", "arxiv20.thm2"):
        t = al.run("stocbio", p, 0, preset=preset, preset_args={"eps": 0.5})
        v = t.params
        assert v["eta"] == pytest.approx(1 / Ls) and v["alpha"] == pytest.approx(2 / (Ls + mu))
        assert v["beta"] == pytest.approx(1 / (4 * c.L_phi))  # the mean problem's L_Phi (smoothness of Phi)
        # Q = ceil(kappa_s ln(kappa_s^2/eps)) keeps Prop. 3's bias (1 - eta mu)^(Q+1) M/mu at the theorem's order
        assert v["Q"] == math.ceil(ks * math.log(ks**2 / 0.5))
        assert v["S"] == math.ceil(c.kappa**5 / 0.5) and v["D_g"] == math.ceil(c.kappa**2 / 0.5)
        assert v["B"] >= 1 / (v["Q"] * (1 - v["eta"] * mu) ** (v["Q"] - 1))  # Prop. 3's condition
        assert t.outside_theory == []
    v = al.run("stocbio", p, 0, preset="icml21.thm3", preset_args={"eps": 0.5}).params
    assert v["N"] == math.ceil(ks * math.log(ks))
    lit = al.run("stocbio", p, 0, preset="icml21.thm3", preset_args={"eps": 0.5, "kappa_batches": "sample"})
    assert lit.params["S"] == math.ceil(ks**5 / 0.5)


def test_bsa_and_ttsa_presets():
    p = sq()
    c = p.constants
    Ls = sp.sample_L(p)
    b = al.run("bsa", p, 0, preset="gw18").params
    assert (b["alpha"], b["eta"], b["gamma"], b["beta"]) == pytest.approx((1 / Ls, 1 / Ls, 2 * Ls / c.mu, 1 / c.L_phi))
    assert (b["S"], b["D_f"], b["D_g"], b["B"], b["schedule"]) == (1, 1, 1, 1, "sqrt")
    t = al.run("ttsa", p, 0, preset="hong20").params
    assert (t["alpha"], t["eta"], t["beta"]) == pytest.approx((1 / Ls, 1 / Ls, 1 / c.L_phi))
    assert (t["exp_y"], t["exp_x"], t["step_rule"], t["jv_batch"]) == (0.4, 0.6, "horizon", "fresh")
    pub = al.run("ttsa", p, 0, preset="benchopt").params
    assert (pub["step_rule"], pub["jv_batch"]) == ("decaying", "reuse")
    assert {k: v for k, v in pub.items() if k not in ("step_rule", "jv_batch")} == \
        {k: v for k, v in t.items() if k not in ("step_rule", "jv_batch")}


def test_neumann_length_and_bsa_inner_schedule():
    """b = ceil(c_b ln(K+1)/(eta mu)) = Theta(kappa_s log K) [INF]; t_k = ceil(sqrt(k+1)) [UNV] or
    ceil(c_t sqrt(K)) [INF]."""
    P = {"b": None, "c_b": 1.0, "eta": 0.1, "mu": 0.25}
    assert neumann_terms(P, 30) == math.ceil(math.log(31) / 0.025)
    assert neumann_terms(dict(P, c_b=0.5), 30) == math.ceil(0.5 * math.log(31) / 0.025)
    assert neumann_terms(dict(P, b=7), 30) == 7
    assert [bsa_inner_steps({"schedule": "sqrt"}, k, 100) for k in (0, 1, 3, 4, 8)] == [1, 2, 2, 3, 3]
    assert bsa_inner_steps({"schedule": "horizon", "c_t": 0.5}, 5, 100) == 5
    assert bsa_inner_steps({"schedule": "constant", "N": 4}, 5, 100) == 4


# ====================================================================== outside_theory: every step condition
def _quad():
    return an.make_problem("quadratic", dim_x=4, dim_y=4, kappa=4.0)


@pytest.mark.parametrize("name, preset, c", [("aid-bio", "icml21.thm1", 8), ("itd-bio", "icml21.thm2", 4),
                                             ("deterbio", "arxiv20.thm1", 4), ("aid-bio", "loops22.cor3", 4),
                                             ("itd-bio", "loops22.cor5", 8), ("ba", "loops22.table1", 8)])
def test_outer_step_checked_against_the_cited_theorem(name, preset, c):
    """Before: a beta far above the theorem's 1/(8 L_Phi) or 1/(4 L_Phi) went unflagged."""
    p = _quad()
    L_phi = p.constants.L_phi
    assert al.run(name, p, 0, preset=preset).outside_theory == []
    t = al.run(name, p, 0, preset=preset, beta=1.5 / (c * L_phi))
    assert any(m.startswith("beta=") and f"1/({c} L_Phi)" in m for m in t.outside_theory), t.outside_theory


def test_outer_step_checked_without_a_preset():
    p = _quad()
    assert al.run("aid-bio", p, 0).outside_theory == []
    t = al.run("aid-bio", p, 0, beta=2.0 / p.constants.L_phi)
    assert any(m.startswith("beta=") and "1/L_Phi" in m for m in t.outside_theory)


def test_loops_itd_inner_step_condition():
    """Loops Theorem 3 requires alpha <= 1/(2L): flagged under its presets, not under ICML Theorem 2's."""
    p = _quad()
    t = al.run("itd-bio", p, 0, preset="loops22.cor5", alpha=0.9 / p.constants.L)
    assert any(m.startswith("alpha=") and "1/(2L)" in m for m in t.outside_theory)
    assert al.run("itd-bio", p, 0, preset="icml21.thm2", alpha=0.9 / p.constants.L).outside_theory == []


def test_stochastic_steps_checked_per_sample():
    p = sq()
    c = p.constants
    t = al.run("stocbio", p, 0, preset="icml21.thm3", eta=1 / c.L, alpha=2 / (c.L + c.mu))  # the mean's steps
    assert any(m.startswith("eta=") and "1/L_s" in m for m in t.outside_theory)
    assert any(m.startswith("alpha=") and "2/(L_s+mu)" in m for m in t.outside_theory)
    t = al.run("stocbio", p, 0, preset="icml21.thm3", beta=1 / c.L_phi)
    assert any(m.startswith("beta=") and "1/(4 L_Phi)" in m for m in t.outside_theory)
    t = al.run("ttsa", p, 0, preset="hong20", exp_x=0.5, beta=2 / c.L_phi)
    assert any(m.startswith("exp_x=") for m in t.outside_theory)
    assert any(m.startswith("beta=") for m in t.outside_theory)
    assert any(m.startswith("eta=") for m in al.run("bsa", p, 0, eta=1 / c.L).outside_theory)


@pytest.mark.parametrize("name", ["stocbio", "bsa", "ttsa", "meta-itd-bio", "meta-aid-bio"])
def test_every_stochastic_preset_is_inside_its_theorem(name):
    p = an.make_problem("meta-learning", batch=2) if name.startswith("meta") else sq()
    for preset in al.get(name).presets:
        assert al.run(name, p, 0, preset=preset).outside_theory == [], preset


# ====================================================================== divergence rule and warning
def test_growth_is_flagged_before_overflow_and_warned_once():
    """stocBiO with the mean's steps (the old defaults) on the issue's instance grows geometrically: the rule
    flags it ('growth') while the iterates are still finite, freezes it and warns once. Before: no flag (the
    issue's run ended at 1e41)."""
    p = sq()
    c = p.constants
    with pytest.warns(DivergenceWarning, match="stocbio: 2 of 2 instance") as rec:
        tr = al.run("stocbio", p, 30, generator=0, alpha=2 / (c.L + c.mu), eta=1 / c.L)
    assert len([w for w in rec if issubclass(w.category, DivergenceWarning)]) == 1
    assert bool((tr.diverged_at > 0).all()) and tr.diverged_reason == ["growth", "growth"]
    assert bool(torch.isfinite(tr.x).all()) and bool(torch.isfinite(tr.y).all())
    start = torch.cat([tr.x[0], tr.y[0]], -1).norm(dim=-1) + p.region_radius()
    z = torch.cat([tr.x, tr.y], -1).norm(dim=-1)
    # frozen at the last state within the threshold: no record exceeds it
    assert bool((z <= DIVERGENCE_FACTOR * start).all())
    assert tr.iterations[-1] < 30  # every instance flagged: the run ended early
    assert issubclass(DivergenceWarning, UserWarning) and not issubclass(DivergenceWarning, RuntimeWarning)


def test_rule_does_not_fire_on_a_converging_run_from_far_away():
    """The threshold scales with the start: a run converging from 1e4 region radii away is not flagged."""
    p = an.make_problem("quadratic", dim_x=4, dim_y=4, kappa=4.0, batch=2)
    x0 = torch.full((2, 4), 1e4 * p.region_radius(), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        tr = al.run("aid-bio", p, 200, x0=x0, preset="icml21.thm1")
    assert tr.diverged is None and float(tr.x[-1].norm()) < float(tr.x[0].norm())


def test_nonfinite_reason_and_bad_factor():
    p = an.make_problem("quadratic", dim_x=4, dim_y=4, kappa=4.0, batch=2)
    with pytest.warns(DivergenceWarning, match="non-finite"):
        tr = al.run("aid-bio", p, 300, alpha=3.0, N=10, divergence_factor=None)  # growth rule off
    assert tr.diverged_reason == ["non-finite", "non-finite"]
    for bad in (1.0, 0.5, math.inf, "big", True):
        with pytest.raises((ValueError, TypeError), match="divergence_factor"):
            al.run("aid-bio", p, 1, divergence_factor=bad)


# ====================================================================== broadcasting and family checks
def test_start_points_of_shape_dim_broadcast_to_every_instance():
    p = an.make_problem("quadratic", dim_x=3, dim_y=4, kappa=4.0, batch=3)
    x0, y0 = torch.tensor([0.1, -0.2, 0.3], dtype=torch.float64), torch.full((4,), 0.5, dtype=torch.float64)
    a = al.run("aid-bio", p, 3, x0=x0, y0=y0)
    b = al.run("aid-bio", p, 3, x0=x0.expand(3, -1), y0=y0.expand(3, -1))
    assert torch.equal(a.x[0], x0.expand(3, -1)) and torch.equal(a.y[0], y0.expand(3, -1))
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    with pytest.raises(ValueError, match="x0"):
        al.run("aid-bio", p, 1, x0=torch.zeros(4, dtype=torch.float64))


@pytest.mark.parametrize("name", ["meta-itd-bio", "meta-aid-bio"])
@pytest.mark.parametrize("family", ["quadratic", "stochastic-quadratic"])
def test_meta_learning_algorithms_name_the_families_they_accept(name, family):
    """Before: AttributeError ('Quadratic' object has no attribute 'n_g') on a quadratic family; the stochastic
    quadratic ran with its samples taken for tasks."""
    p = an.make_problem(family, dim_x=3, dim_y=3, kappa=3.0)
    for kw in ({}, {"tasks": 2}):
        with pytest.raises(TypeError, match=f"^{name} needs a problem with meta-learning tasks .*meta-learning"):
            al.run(name, p, 1, **kw)


# ====================================================================== the reference instance
def _reference_run(role):
    """The reference curves' run of ``role`` (bench/experiments/reference.py, its THEORY and INSTANCE read
    only): the same family, instance, start and seed as ``reference.measure``."""
    from bilevelbench.bench.experiments.common import start_at_gap
    from bilevelbench.bench.experiments.rates import GAP
    from bilevelbench.bench.experiments.reference import INSTANCE, THEORY

    family, preset, args, steps = THEORY[role]
    if family == "meta-learning":
        p = an.make_problem(family, batch=INSTANCE["R"], seed=0, kappa=2.0, tasks=4, p=2, d=3, n=6)
        x0 = p.default_x0() + 0.5
    else:
        p = an.make_problem(family, kappa=INSTANCE["kappa"], dim_x=INSTANCE["dim"], dim_y=INSTANCE["dim"],
                            batch=INSTANCE["R"], seed=0, **INSTANCE["params"])
        x0 = start_at_gap(p, GAP, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DivergenceWarning)
        return p, al.run(role, p, steps, x0=x0, preset=preset, preset_args=dict(args), generator=0)


def _theory_roles():
    from bilevelbench.bench.experiments.reference import THEORY

    return sorted(THEORY)


@pytest.mark.parametrize("role", _theory_roles())
def test_reference_theory_presets_do_not_diverge(role, one_thread):
    """Every algorithm under its theory preset on the reference instance: no divergence flag (nor warning),
    its preset inside its theorem's step conditions, and every iterate inside the ball where the problem
    declares its constants (on which the theorems' constants hold). Before: BSA under gw18 left it (x to 5.6
    r0, (x, y) to 10.7 r0; ||grad Phi||^2 from 23 to 1.6e3), stocBiO under icml21.thm3 too (y to 1.6 r0)."""
    p, tr = _reference_run(role)
    assert tr.diverged is None and tr.outside_theory == []
    assert _z_max_over_region(tr, p) <= 1.0
