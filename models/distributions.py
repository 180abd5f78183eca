"""Continuous distributions built from published quantiles, and a Gaussian copula.

Everything is driven by standard normals drawn from a caller's Generator, so correlated draws
are cheap and vectorised. Pure numpy + stdlib; no fitting, no I/O, no global random state.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

_STANDARD_NORMAL = NormalDist()
# |z| of a float64 standard normal draw never comes near this (P < 1e-300).
_FAR_Z = 40.0
# Ceiling on log(value) when no upper bound is given: e^700 ~ 1e304 is beyond any real quantity
# and keeps exp() finite, even for a steep tail extrapolated from two close quantiles.
_Y_MAX = 700.0


def _tail_knot(
    z0: float, y0: float, slope: float, y_bound: float, far_z: float
) -> tuple[float, float]:
    """The outer knot of the tail leaving (z0, y0) towards far_z with `slope` in log space.

    Either a knot far beyond any draw on the extrapolated line, or the point where the line
    meets the (log) bound, beyond which np.interp holds the bound.
    """
    y_far = y0 + slope * (far_z - z0)
    outward = far_z > z0
    if (y_far <= y_bound) if outward else (y_far >= y_bound):
        return far_z, y_far
    if y0 == y_bound:  # the published end point sits on the bound: the tail is flat there
        return far_z, y_bound
    return z0 + (y_bound - y0) / slope, y_bound


class QuantileDistribution:
    """A positive distribution that passes exactly through a few published quantiles.

    log(value) is interpolated linearly in normal-score space z = Φ⁻¹(p): between two published
    quantiles the distribution is locally lognormal, and beyond the outermost ones the tails
    continue with the slope of the end segments. Values are clamped to [lower, upper]. With two
    points it is exactly a (clamped) lognormal.
    """

    __slots__ = ("_y", "_z", "lower", "points", "upper")

    def __init__(
        self,
        points: Sequence[tuple[float, float]],
        lower: float = 0.0,
        upper: float = math.inf,
    ) -> None:
        pts = sorted((float(p), float(v)) for p, v in points)
        if len(pts) < 2:
            raise ValueError("a quantile distribution needs at least two (probability, value)")
        probs = [p for p, _ in pts]
        values = [v for _, v in pts]
        if any(not 0.0 < p < 1.0 for p in probs) or len(set(probs)) != len(probs):
            raise ValueError(f"quantile probabilities must be distinct and in (0, 1): {probs}")
        if any(v <= 0.0 for v in values):
            raise ValueError(f"quantile values must be positive: {values}")
        if any(b < a for a, b in itertools.pairwise(values)):
            raise ValueError(f"quantile values must not decrease with probability: {pts}")
        if not 0.0 <= lower <= values[0] or not values[-1] <= upper:
            raise ValueError(f"bounds [{lower}, {upper}] must contain the quantile values {values}")
        self.points: tuple[tuple[float, float], ...] = tuple(pts)
        self.lower = float(lower)
        self.upper = float(upper)
        z = [_STANDARD_NORMAL.inv_cdf(p) for p in probs]
        y_lo = math.log(lower) if lower > 0.0 else -math.inf
        y_hi = min(math.log(upper), _Y_MAX) if upper > 0.0 else _Y_MAX
        y = [min(max(math.log(v), y_lo), y_hi) for v in values]
        slope_lo = (y[1] - y[0]) / (z[1] - z[0])
        slope_hi = (y[-1] - y[-2]) / (z[-1] - z[-2])
        # Tails and clamp are folded into the knot table, so from_z is little more than one
        # np.interp and one exp: np.interp holds the end value beyond the outermost knot, which
        # is the clamp (the final clip only absorbs exp's last-ulp rounding at a bound).
        lo_knot = _tail_knot(z[0], y[0], slope_lo, y_lo, -_FAR_Z)
        hi_knot = _tail_knot(z[-1], y[-1], slope_hi, y_hi, _FAR_Z)
        self._z = np.array([lo_knot[0], *z, hi_knot[0]])
        self._y = np.array([lo_knot[1], *y, hi_knot[1]])

    def __repr__(self) -> str:
        return f"QuantileDistribution({list(self.points)}, lower={self.lower}, upper={self.upper})"

    def from_z(self, z: np.ndarray) -> np.ndarray:
        """Values at standard-normal scores `z` (monotone non-decreasing in z)."""
        values = np.exp(np.interp(z, self._z, self._y))
        return np.clip(values, self.lower, self.upper, out=values)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n independent draws."""
        return self.from_z(rng.standard_normal(n))

    def quantile(self, p: float) -> float:
        """The p-quantile, 0 < p < 1."""
        if not 0.0 < p < 1.0:
            raise ValueError(f"quantile probability must be in (0, 1), got {p}")
        return float(self.from_z(np.array([_STANDARD_NORMAL.inv_cdf(p)]))[0])

    def median(self) -> float:
        """The 0.5-quantile."""
        return self.quantile(0.5)


def correlated_normals(
    rng: np.random.Generator, n: int, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of n standard normals with correlation `rho` (a Gaussian copula's scores)."""
    if not -1.0 <= rho <= 1.0:
        raise ValueError(f"correlation must be in [-1, 1], got {rho}")
    z = rng.standard_normal((2, n))
    z1 = z[0]
    z2 = rho * z1 + math.sqrt(1.0 - rho * rho) * z[1]
    return z1, z2
