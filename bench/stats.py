"""Statistics behind the verdicts: Monte Carlo confidence bounds, log-log fits with bootstrap intervals.

All intervals are computed from the data of the run; the confidence levels are those fixed by the claims
catalogue (one-sided 99% for expectations, 95% bootstrap for fitted exponents).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["MeanBound", "mean_bound", "Fit", "loglog_fit", "Z99"]

#: one-sided 99% normal quantile
Z99 = float(_st.norm.ppf(0.99))


@dataclass(frozen=True)
class MeanBound:
    """Monte Carlo mean of R draws with one-sided 99% bounds (Student t, R - 1 degrees of freedom)."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def width(self) -> float:
        return self.high - self.low


def mean_bound(samples, level: float = 0.99) -> MeanBound:
    """Mean of ``samples`` with one-sided ``level`` lower and upper confidence bounds (t interval;
    valid for finite-variance samples by the central limit theorem at the R we use, >= 64)."""
    a = np.asarray(samples, dtype=np.float64).ravel()
    n = a.size
    if n == 0:
        raise ValueError("mean_bound needs at least one sample")
    m = float(a.mean())
    if n == 1:
        return MeanBound(m, -math.inf, math.inf, 1)
    half = float(_st.t.ppf(level, n - 1)) * float(a.std(ddof=1)) / math.sqrt(n)
    return MeanBound(m, m - half, m + half, n)


@dataclass(frozen=True)
class Fit:
    """Least-squares slope of log(y) against log(x) with a bootstrap 95% interval."""

    slope: float
    low: float
    high: float
    intercept: float
    n_points: int
    #: distinct x values (grid points) the fit rests on; None when not known
    n_groups: int | None = None


def _slope(lx, ly):
    A = np.vstack([lx, np.ones_like(lx)]).T
    coef, *_ = np.linalg.lstsq(A, ly, rcond=None)
    return float(coef[0]), float(coef[1])


def loglog_fit(x, y, groups=None, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Fit:
    """Fit log y = s log x + c. ``x``, ``y``: 1-D arrays (one entry per run). With ``groups`` (the x value
    of each run, typically), the bootstrap resamples runs within each x (over seeds); without, it
    resamples the points. Deterministic given ``seed``."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ok = np.isfinite(x) & np.isfinite(y) & (x > 0) & (y > 0)
    x, y = x[ok], y[ok]
    if np.unique(x).size < 2:
        return Fit(math.nan, math.nan, math.nan, math.nan, int(x.size), int(np.unique(x).size))
    lx, ly = np.log(x), np.log(y)
    s, c = _slope(lx, ly)
    rng = np.random.default_rng(seed)
    keys = np.unique(x) if groups is None else np.unique(np.asarray(groups)[ok])
    g = x if groups is None else np.asarray(groups)[ok]
    idx_by = [np.flatnonzero(g == k) for k in keys]
    boots = []
    for _ in range(n_boot):
        if groups is None:
            pick = rng.integers(0, x.size, x.size)
        else:
            pick = np.concatenate([ix[rng.integers(0, ix.size, ix.size)] for ix in idx_by])
        if np.unique(lx[pick]).size < 2:
            continue
        boots.append(_slope(lx[pick], ly[pick])[0])
    lo, hi = np.quantile(boots, [(1 - level) / 2, 1 - (1 - level) / 2]) if boots else (math.nan, math.nan)
    return Fit(s, float(lo), float(hi), c, int(x.size), int(np.unique(x).size))
