"""Quantile-interpolated distributions and the Gaussian copula."""

from __future__ import annotations

import itertools
import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from models.distributions import QuantileDistribution, correlated_normals
from models.profiles import (
    DC_FAST_SHARES,
    HOME_WEEKDAY_SHARES,
    WORKPLACE_WEEKDAY_SHARES,
    HourlyProfile,
)


@st.composite
def quantile_specs(draw: st.DrawFn) -> tuple[list[tuple[float, float]], float, float]:
    n = draw(st.integers(2, 6))
    probs = sorted(
        draw(
            st.lists(
                st.floats(0.001, 0.999), min_size=n, max_size=n, unique_by=lambda p: round(p, 4)
            )
        )
    )
    assume(all(b - a > 1e-4 for a, b in itertools.pairwise(probs)))
    first = draw(st.floats(0.01, 1000.0))
    steps = draw(st.lists(st.floats(0.0, 2.0), min_size=n - 1, max_size=n - 1))
    values = [first]
    for step in steps:
        values.append(values[-1] * math.exp(step))
    lower = draw(st.sampled_from([0.0, values[0] * 0.5, values[0]]))
    upper = draw(st.sampled_from([math.inf, values[-1] * 2.0, values[-1]]))
    return list(zip(probs, values, strict=True)), lower, upper


@settings(max_examples=150, deadline=None)
@given(spec=quantile_specs())
def test_reproduces_its_quantiles(spec: tuple[list[tuple[float, float]], float, float]) -> None:
    points, lower, upper = spec
    dist = QuantileDistribution(points, lower, upper)
    for p, v in points:
        assert dist.quantile(p) == pytest.approx(v, rel=1e-12)


@settings(max_examples=150, deadline=None)
@given(
    spec=quantile_specs(),
    z=st.lists(st.floats(-12.0, 12.0), min_size=2, max_size=50),
)
def test_monotone_in_z_and_within_bounds(
    spec: tuple[list[tuple[float, float]], float, float], z: list[float]
) -> None:
    points, lower, upper = spec
    dist = QuantileDistribution(points, lower, upper)
    zs = np.sort(np.array(z))
    v = dist.from_z(zs)
    # Monotone up to floating-point rounding: np.interp may land one ulp either side of a knot
    # for scores a hair apart (hypothesis found z = 0 and z = -5e-292).
    assert np.all(np.diff(v) >= -1e-12 * v[1:])
    assert np.all(v >= lower)
    assert np.all(v <= upper)
    assert np.all(np.isfinite(v))


def test_two_points_give_a_lognormal() -> None:
    dist = QuantileDistribution([(0.25, 2.0), (0.75, 8.0)])
    # log X ~ N(mu, sigma): mu = log 4 (geometric mean), sigma = log 2 / z75.
    mu, sigma = math.log(4.0), math.log(2.0) / NormalDist().inv_cdf(0.75)
    for p in (0.01, 0.1, 0.5, 0.9, 0.99):
        want = math.exp(mu + sigma * NormalDist().inv_cdf(p))
        assert dist.quantile(p) == pytest.approx(want, rel=1e-12)


def test_tails_continue_the_end_segments() -> None:
    dist = QuantileDistribution([(0.1, 7.1), (0.5, 19.1), (0.9, 40.8)])
    z90 = NormalDist().inv_cdf(0.9)
    slope_hi = math.log(40.8 / 19.1) / z90
    z99 = NormalDist().inv_cdf(0.99)
    assert dist.quantile(0.99) == pytest.approx(40.8 * math.exp(slope_hi * (z99 - z90)))


def test_clamps_to_bounds() -> None:
    dist = QuantileDistribution([(0.25, 8.2), (0.5, 19.4), (0.75, 35.8)], lower=5.0, upper=60.0)
    assert dist.quantile(0.001) == pytest.approx(5.0)
    assert dist.quantile(0.999) == pytest.approx(60.0)
    assert dist.quantile(0.5) == pytest.approx(19.4)


def test_sample_matches_quantiles() -> None:
    dist = QuantileDistribution([(0.25, 8.2), (0.5, 19.4), (0.75, 35.8), (0.9, 51.4)])
    x = dist.sample(np.random.default_rng(0), 100_000)
    # 100k draws: each empirical quantile is within ~1 % of the truth (sd of a sample quantile
    # is sqrt(p(1-p)/n)/f(q), here < 0.4 % relative), so 3 % flags a wrong mapping.
    for p, v in dist.points:
        assert np.quantile(x, p) == pytest.approx(v, rel=0.03)


@pytest.mark.parametrize(
    ("points", "lower", "upper"),
    [
        ([(0.5, 1.0)], 0.0, math.inf),  # one point
        ([(0.5, 1.0), (0.5, 2.0)], 0.0, math.inf),  # duplicate probability
        ([(0.0, 1.0), (0.5, 2.0)], 0.0, math.inf),  # p = 0
        ([(0.2, 3.0), (0.5, 2.0)], 0.0, math.inf),  # decreasing values
        ([(0.2, 0.0), (0.5, 2.0)], 0.0, math.inf),  # non-positive value
        ([(0.2, 1.0), (0.5, 2.0)], 1.5, math.inf),  # bound inside the data
    ],
)
def test_rejects_bad_specs(points: list[tuple[float, float]], lower: float, upper: float) -> None:
    with pytest.raises(ValueError):
        QuantileDistribution(points, lower, upper)


@pytest.mark.parametrize("rho", [-0.8, 0.0, 0.4, 0.95])
def test_correlated_normals(rho: float) -> None:
    z1, z2 = correlated_normals(np.random.default_rng(1), 50_000, rho)
    # 50k pairs: the sample correlation's sd is (1 - rho²)/sqrt(n) < 0.005; 0.02 is 4+ sigma.
    assert np.corrcoef(z1, z2)[0, 1] == pytest.approx(rho, abs=0.02)
    assert z2.std() == pytest.approx(1.0, abs=0.02)


def test_correlated_normals_rejects_bad_rho() -> None:
    with pytest.raises(ValueError):
        correlated_normals(np.random.default_rng(1), 3, 1.5)


def test_hourly_profiles_match_source_tables() -> None:
    home = HourlyProfile(HOME_WEEKDAY_SHARES)
    assert home.peak_hour == 18
    assert home.probabilities.sum() == pytest.approx(1.0)
    assert HourlyProfile(WORKPLACE_WEEKDAY_SHARES).peak_hour == 8
    assert HourlyProfile(DC_FAST_SHARES).peak_hour == 18
    # A trailing empty hour can never be drawn: the cumulative is exactly 1 before it.
    work = HourlyProfile(WORKPLACE_WEEKDAY_SHARES)
    assert work.cumulative[18] == 1.0
    with pytest.raises(ValueError):
        HourlyProfile([1.0] * 23)
    with pytest.raises(ValueError):
        HourlyProfile([0.0] * 24)
