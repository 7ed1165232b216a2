"""The bound registry: every bound names its source, kind and statement (claims name their bounds in
the claims registry: tests/bench/test_engine.py)."""

import inspect

import pytest

import bilevelbench.bounds as bb
from bilevelbench.bounds._common import KINDS


def test_every_bound_carries_its_source():
    for name, fn in bb.BOUNDS.items():
        info = fn.info
        assert info.name == name
        assert info.kind in KINDS
        assert info.source and info.statement
        assert fn.__doc__, name
        if info.theta_constant:  # order-only statements take the hidden constant c
            assert "c" in inspect.signature(fn).parameters, name


def test_evaluate_fills_the_constants():
    import bilevelbench.analytic as an

    p = an.make_problem("quadratic", kappa=4.0, seed=0)
    c = p.constants
    got = bb.evaluate(bb.BOUNDS["arxiv20.prop3"], c, alpha=1.0 / c.L, T=5, dist0=2.0)
    assert got == bb.arxiv20.prop3_error(c.L, c.mu, c.M, c.tau, c.rho, 1.0 / c.L, 5, 2.0)
    assert bb.evaluate(bb.arxiv20.lemma2_L_phi, c) == pytest.approx(c.L_phi, rel=1e-14)
    # an explicit argument wins over the constants
    assert bb.evaluate(bb.loops22.thm4_floor, c, M=1.0, alpha=0.5, N=2) == bb.loops22.thm4_floor(
        c.L, c.mu, 1.0, 0.5, 2)
