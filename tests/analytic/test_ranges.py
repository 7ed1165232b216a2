"""Problems reject what their dtype cannot represent (issue 18 item 5): kappa, dimensions, sample counts and
scale parameters outside the ranges derived from the dtype's eps and max (``analytic._validate.NumericLimits``)
give a ValueError naming the argument, the value and the allowed range; inside them the closed forms are finite.
"""

import math
import re

import pytest
import torch

import bilevelbench.analytic as an
from bilevelbench.analytic._validate import numeric_limits, scale_bounds

F64, F32 = torch.float64, torch.float32
#: small instances of the families whose defaults are large (the checks run before any data is drawn)
SMALL = {"hyper-representation": dict(p=2, d=2, n=4), "meta-learning": dict(tasks=2, p=2, d=2, n=3)}
KAPPA_FAMILIES = sorted(n for n in an.names() if "kappa" in an.FAMILIES[n].param_doc)


def make(name, **kw):
    return an.make_problem(name, **{**SMALL.get(name, {}), **kw})


def _names_range(exc_info, arg, value):
    """The message names the argument with its value and an interval [lo, hi]."""
    msg = str(exc_info.value)
    assert f"{arg}={value:.6g}" in msg or f"{arg}={value}" in msg, msg
    assert re.search(r"[\[(][^,\]]+, [^\]]+\]", msg), msg


def test_limits_are_derived_from_eps_and_max():
    for dt in (F64, F32):
        fi, lim = torch.finfo(dt), numeric_limits(dt)
        assert lim.kappa_max == fi.eps ** -0.5 and lim.count_max == math.floor(fi.eps ** -0.5)
        assert lim.scale_min == 1 / lim.scale_max
        # kappa_max * eps = sqrt(eps): a solve keeps half the digits
        assert lim.kappa_max * fi.eps == pytest.approx(math.sqrt(fi.eps), rel=1e-12)
        # 8 factors of scale_max stay below max (in the dtype itself), within a factor 2^9 of it; 8 factors
        # of scale_min stay normal
        top = torch.tensor(lim.scale_max, dtype=dt)
        assert bool(torch.isfinite(top ** 8)) and fi.max / 2**9 <= float(top ** 8) < fi.max
        assert float(torch.tensor(lim.scale_min, dtype=dt) ** 8) >= fi.smallest_normal


@pytest.mark.parametrize("name", KAPPA_FAMILIES)
def test_huge_kappa_rejected_in_float64(name):
    # before: ZeroDivisionError (mu**2 = 0 in Lemma 2) or OverflowError
    with pytest.raises(ValueError, match="kappa") as exc:
        make(name, kappa=1e300)
    _names_range(exc, "kappa", 1e300)
    assert "6.71089e+07" in str(exc.value) and "float64" in str(exc.value)


@pytest.mark.parametrize("name", KAPPA_FAMILIES)
def test_float32_kappa_beyond_its_digits_rejected(name):
    # before: NaN y* silently (quadratic families), LinAlgError (logistic-lower), or a problem whose solves
    # lose every digit
    with pytest.raises(ValueError, match="kappa") as exc:
        make(name, kappa=1e50, dtype=F32)
    _names_range(exc, "kappa", 1e50)
    assert "2896.31" in str(exc.value) and "float32" in str(exc.value)


@pytest.mark.parametrize("dt", [F64, F32])
def test_kappa_edge(dt):
    """kappa_max itself is accepted, the next float above it rejected (the range is closed)."""
    top = numeric_limits(dt).kappa_max
    p = an.make_problem("quadratic", kappa=top, dim_x=3, dim_y=3, dtype=dt)
    assert p.kappa == top
    with pytest.raises(ValueError, match="kappa"):
        an.make_problem("quadratic", kappa=math.nextafter(top, math.inf), dim_x=3, dim_y=3, dtype=dt)


def test_float32_closed_forms_at_the_kappa_edge_are_accurate():
    """At kappa = eps^(-1/2) the float32 instance equals the float64 one (same seed) to Higham's bound for a
    product with a condition-kappa inverse: relative error <= d kappa eps (d = 6 terms per inner product)."""
    dt, d = F32, 6
    top = numeric_limits(dt).kappa_max
    p32 = an.make_problem("quadratic", kappa=top, dim_x=d, dim_y=d, dtype=dt, batch=2)
    p64 = an.make_problem("quadratic", kappa=top, dim_x=d, dim_y=d, batch=2)
    x = 0.5 * torch.ones(2, d, dtype=F64)
    bound = d * top * torch.finfo(dt).eps
    for f32, f64 in ((p32.y_star(x.float()), p64.y_star(x)), (p32.hypergradient(x.float()), p64.hypergradient(x))):
        assert bool(torch.isfinite(f32).all())
        assert float((f32.double() - f64).norm() / f64.norm()) <= bound


@pytest.mark.parametrize("name, arg, value, dt", [
    ("quadratic", "L", 1e300, F64),           # before: OverflowError in Lemma 2 (L^3)
    ("quadratic", "L", 1e40, F32),            # before: inf data, NaN y*
    ("quadratic", "lam", 1e300, F64),
    ("stochastic-quadratic", "L", 1e40, F32),
    ("logistic-upper", "L", 1e-40, F32),      # before: NaN y* (data underflow)
    ("logistic-lower", "L", 1e40, F32),
    ("itd-lower-bound", "L", 1e-300, F64),    # before: ZeroDivisionError
    ("itd-lower-bound", "M", 1e300, F64),     # before: OverflowError
    ("itd-lower-bound", "M", 1e40, F32),
    ("hyper-representation", "noise", 1e40, F64),  # before: inf constants
    ("hyper-representation", "noise", 1e20, F32),  # before: NaN y*
    ("meta-learning", "noise", 1e40, F64),
    ("meta-learning", "noise", 1e20, F32),
    ("quadratic", "radius", 1e300, F64),
])
def test_scale_parameters_outside_range_rejected(name, arg, value, dt):
    with pytest.raises(ValueError, match=arg) as exc:
        make(name, dtype=dt, **{arg: value})
    _names_range(exc, arg, value)


@pytest.mark.parametrize("name, arg", [("quadratic", "dim_x"), ("quadratic", "dim_y"),
                                       ("stochastic-quadratic", "n_g"), ("stochastic-quadratic", "n_f"),
                                       ("logistic-upper", "n_val"), ("hyper-representation", "n"),
                                       ("meta-learning", "tasks")])
def test_counts_beyond_float32_digits_rejected(name, arg):
    """Sums over more than eps^(-1/2) terms lose half the digits in float32 (before: accepted silently)."""
    big = numeric_limits(F32).count_max + 1
    with pytest.raises(ValueError, match=arg) as exc:
        make(name, dtype=F32, **{arg: big})
    _names_range(exc, arg, big)
    assert "float64" in str(exc.value)  # says what to use instead


# Every scale parameter of every family at the ends of its range (with the largest kappa): the closed forms
# and the constants stay finite, which is what the ranges promise.
# (hyper-representation and meta-learning bound their data scale with degree 16: ``hyperrep._setup``)
_SCALES = {"quadratic": ("L", "lam", "radius"), "stochastic-quadratic": ("L",), "logistic-upper": ("L",),
           "logistic-lower": ("L",), "itd-lower-bound": ("L", "M", "radius"),
           "hyper-representation": ("noise", "radius"), "meta-learning": ("noise",)}


@pytest.mark.parametrize("dt", [F64, F32])
@pytest.mark.parametrize("name", sorted(_SCALES))
def test_range_ends_give_finite_closed_forms(name, dt):
    lim = numeric_limits(dt)
    kappa = lim.kappa_max
    smin, smax = scale_bounds(dt, 16 if name in ("hyper-representation", "meta-learning") else 8)
    for arg in _SCALES[name]:
        for value in (smin, smax):
            kw = {arg: value, "kappa": kappa}
            if arg == "L" and name in ("quadratic", "stochastic-quadratic"):
                kw["w"] = value  # w <= L
            if arg == "lam":
                kw["L"] = smax  # lam <= L
            if name == "logistic-lower" and arg == "L" and value == lim.scale_min:
                continue  # the Schur bound of the family rejects this L whatever the dtype (its own error)
            p = make(name, dtype=dt, **kw)
            c = p.constants
            assert all(math.isfinite(v) for v in (c.L, c.mu, c.M, c.L_phi, c.kappa)), (name, arg, value)
            x = p.default_x0()
            for t in (p.y_star(x), p.hypergradient(x), p.phi(x)):
                assert bool(torch.isfinite(t).all()), (name, arg, value)
