"""Validation helpers shared by the public constructors of bilevelbench (clear errors, never NaN)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real

import torch

__all__ = [
    "NumericLimits",
    "numeric_limits",
    "check_kappa",
    "check_scale",
    "scale_bounds",
    "check_count",
    "check_int",
    "check_real",
    "check_dtype",
    "check_device",
    "check_tensor",
    "check_finite",
]


def check_int(name: str, value, *, minimum: int | None = None, allow_none: bool = False):
    """Return ``value`` as int; raise TypeError/ValueError naming ``name`` otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_real(
    name: str,
    value,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict_min: bool = False,
    allow_none: bool = False,
):
    """Return ``value`` as a finite float within the stated range; raise naming ``name`` otherwise."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None:
        if strict_min and value <= minimum:
            raise ValueError(f"{name} must be > {minimum}, got {value}")
        if not strict_min and value < minimum:
            raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value


def check_dtype(name: str, dtype) -> torch.dtype:
    """Accept torch.float64/float32 (or their names); raise TypeError naming ``name`` otherwise."""
    if isinstance(dtype, str):
        dtype = {"float64": torch.float64, "double": torch.float64, "float32": torch.float32,
                 "float": torch.float32}.get(dtype, dtype)
    if dtype not in (torch.float64, torch.float32):
        raise TypeError(f"{name} must be torch.float64 or torch.float32, got {dtype!r}")
    return dtype


def check_device(name: str, device) -> torch.device:
    """Return a torch.device; raise ValueError naming ``name`` for an unknown or unavailable device."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={device!r} asks for CUDA, which is not available on this machine")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{name} must be 'cpu' or 'cuda', got {device!r}")
    return dev


def check_finite(name: str, tensor: torch.Tensor) -> torch.Tensor:
    """Raise ValueError naming ``name`` when ``tensor`` holds NaN or inf."""
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    return tensor


def check_tensor(name: str, value, *, dtype: torch.dtype, device: torch.device, shapes) -> torch.Tensor:
    """Check that ``value`` is a tensor of ``dtype`` on ``device`` with one of the allowed ``shapes``."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype != dtype:
        raise TypeError(f"{name} has dtype {value.dtype}, the problem uses {dtype}")
    if value.device.type != device.type or (
        device.index is not None and value.device.index not in (None, device.index)
    ):
        raise ValueError(f"{name} is on device {value.device}, the problem is on {device}")
    if tuple(value.shape) not in [tuple(s) for s in shapes]:
        allowed = " or ".join(str(tuple(s)) for s in shapes)
        raise ValueError(f"{name} has shape {tuple(value.shape)}, expected {allowed}")
    return value


# ---------------------------------------------------------------------------------- dtype-derived ranges
@dataclass(frozen=True)
class NumericLimits:
    """The parameter ranges a floating-point dtype represents accurately, derived from its eps and max.

    kappa_max = eps^(-1/2): a linear solve (or an inverse applied to a vector) with condition number kappa
      has relative error of order kappa eps (Higham, "Accuracy and Stability of Numerical Algorithms", 2nd
      ed., Sec. 7.1-7.2: backward-stable solves); kappa <= eps^(-1/2) keeps that error <= sqrt(eps), i.e. at
      least half of the dtype's significant digits (float64: kappa <= 6.7e7, float32: kappa <= 2.9e3).
    count_max = floor(eps^(-1/2)): an inner product or sum of n terms has relative error bound gamma_n ~ n eps
      (Higham Sec. 3.1); n <= eps^(-1/2) keeps it <= sqrt(eps) as well (dimensions and sample counts that
      the closed forms sum over; float64: 6.7e7, float32: 2896).
    scale_max = 2^(e/8 - 1) for max < 2^e (about max^(1/8)/2), scale_min = 1/scale_max: a scale parameter s
      (L, M, a, lam, a radius) enters the closed forms and constants of the quadratic, logistic and ITD
      families through products of at most 8 factors of s (Lemma 2's rho L^2 M/mu^3 has degree 4 in a common
      scale of L, M, mu at fixed kappa), so s in [scale_min, scale_max] keeps every such product finite and
      above the smallest normal number (float64: [5.9e-39, 1.7e38], float32: [3.1e-5, 3.3e4]). The data scale
      of hyper-representation and meta-learning (noise, radius) enters Lemma 2 with degree 8 and kappa^3 beside
      it: those families bound it with degree 16 (``scale_bounds``), which leaves room for kappa^3 <=
      eps^(-3/2) (float64: 9.2e18, float32: 128).
    """

    dtype: torch.dtype
    eps: float
    max: float
    kappa_max: float
    count_max: int
    scale_min: float
    scale_max: float


def numeric_limits(dtype: torch.dtype) -> NumericLimits:
    """The ranges of :class:`NumericLimits` for ``dtype`` (torch.float64 or torch.float32)."""
    fi = torch.finfo(dtype)
    # max < 2^e: 8 factors of 2^(e/8 - 1) give 2^(e - 8) < max exactly (powers of two multiply without
    # rounding), and 8 factors of its inverse 2^(8 - e) stay above the smallest normal number 2^(3 - e)
    e = math.frexp(fi.max)[1]
    return NumericLimits(dtype=dtype, eps=fi.eps, max=fi.max, kappa_max=fi.eps ** -0.5,
                         count_max=math.floor(fi.eps ** -0.5), scale_min=2.0 ** (1 - e / 8),
                         scale_max=2.0 ** (e / 8 - 1))


def _dtype_name(dtype) -> str:
    return str(dtype).replace("torch.", "")


def _range_error(name, value, lo, hi, dtype, why, lo_open=False):
    left = "(" if lo_open else "["
    return ValueError(f"{name}={value:.6g} is outside {left}{lo:.6g}, {hi:.6g}], the range {_dtype_name(dtype)} "
                      f"represents accurately ({why})")


def check_kappa(name: str, value, dtype: torch.dtype, *, minimum: float = 1.0, strict_min: bool = False) -> float:
    """A condition number in [minimum, eps^(-1/2)] (``NumericLimits.kappa_max``); ValueError naming ``name``,
    the value and the range otherwise (TypeError for a non-number)."""
    value = check_real(name, value)
    lim = numeric_limits(dtype)
    low = value <= minimum if strict_min else value < minimum
    if low or value > lim.kappa_max:
        raise _range_error(name, value, minimum, lim.kappa_max, dtype,
                           f"a solve with condition number {name} keeps half of the digits: {name} * eps <= "
                           f"sqrt(eps), eps = {lim.eps:.3g}", lo_open=strict_min)
    return value


def scale_bounds(dtype: torch.dtype, degree: int = 8) -> tuple[float, float]:
    """[2^(1 - e/degree), 2^(e/degree - 1)] for max < 2^e: products of ``degree`` factors in that range stay
    finite and normal (``NumericLimits``; degree 8 gives scale_min, scale_max)."""
    e = math.frexp(torch.finfo(dtype).max)[1]
    return 2.0 ** (1 - e / degree), 2.0 ** (e / degree - 1)


def check_scale(name: str, value, dtype: torch.dtype, *, positive: bool = True, maximum: float | None = None,
                allow_none: bool = False, degree: int = 8):
    """A scale parameter in [scale_min, scale_max] (``positive``) or [0, scale_max] (``NumericLimits``; a
    family whose closed forms have a higher total degree in it passes ``degree``), and below ``maximum`` when
    given (a family's own bound, e.g. w <= L); ValueError naming ``name``, the value and the range otherwise."""
    if value is None and allow_none:
        return None
    value = check_real(name, value)
    smin, smax = scale_bounds(dtype, degree)
    lo = smin if positive else 0.0
    hi = smax if maximum is None else min(smax, maximum)
    if maximum is not None and maximum < smax and lo <= value and value > maximum:
        raise ValueError(f"{name}={value:.6g} is outside [{lo:.6g}, {maximum:.6g}]: the family requires "
                         f"{name} <= {maximum:.6g}")
    if value < lo or value > hi or (positive and value <= 0):
        raise _range_error(name, value, lo, hi, dtype, f"products of up to {degree} such factors stay finite and "
                           f"normal: {smax:.3g}^{degree} < max = {torch.finfo(dtype).max:.3g}")
    return value


def check_count(name: str, value, dtype: torch.dtype, *, minimum: int = 1) -> int:
    """A dimension or sample count in [minimum, floor(eps^(-1/2))] (``NumericLimits.count_max``); TypeError
    for a non-integer, ValueError naming ``name``, the value and the range otherwise."""
    value = check_int(name, value, minimum=minimum)
    lim = numeric_limits(dtype)
    if value > lim.count_max:
        raise ValueError(f"{name}={value} is outside [{minimum}, {lim.count_max}], the range "
                         f"{_dtype_name(dtype)} represents accurately (sums of {name} terms keep half of the "
                         f"digits: {name} * eps <= sqrt(eps), eps = {lim.eps:.3g}; use float64)")
    return value
