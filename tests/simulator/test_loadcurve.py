"""Load-curve binning: exact energy per interval, clipping, conservation, local-time views."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.physics import piece_soc_array
from simulator.loadcurve import (
    RESOLUTIONS,
    bin_load,
    daily_profile,
    daily_stats,
    parse_resolution,
)
from simulator.records import LoadCurve, PieceTable

START = datetime(2025, 1, 6, tzinfo=UTC)


def pieces(*rows: tuple[int, float, float, float, float, float, float]) -> PieceTable:
    """PieceTable from (site, t0, t1, a, b, capacity, soc0) rows."""
    cols = list(zip(*rows, strict=True)) if rows else [()] * 7
    return PieceTable(
        site=np.array(cols[0], dtype="i4"),
        t0_s=np.array(cols[1], dtype=float),
        t1_s=np.array(cols[2], dtype=float),
        a=np.array(cols[3], dtype=float),
        b=np.array(cols[4], dtype=float),
        capacity_kwh=np.array(cols[5], dtype=float),
        soc0=np.array(cols[6], dtype=float),
    )


def energy_kwh(curve: LoadCurve) -> float:
    return float(curve.site_kw.sum()) * curve.resolution_s / 3600.0


def exact_energy(p: PieceTable, horizon_s: float) -> float:
    """Σ capacity * (SoC(hi) - SoC(lo)) over each piece clipped to [0, horizon)."""
    lo = np.maximum(p.t0_s, 0.0)
    hi = np.minimum(p.t1_s, horizon_s)
    keep = hi > lo
    soc = piece_soc_array(p.a, p.b, p.capacity_kwh, p.soc0, hi - p.t0_s)
    soc_lo = piece_soc_array(p.a, p.b, p.capacity_kwh, p.soc0, lo - p.t0_s)
    return float((p.capacity_kwh * (soc - soc_lo))[keep].sum())


# --- resolutions -------------------------------------------------------------------------------


def test_parse_resolution_accepts_every_documented_name() -> None:
    assert {name: parse_resolution(name) for name in RESOLUTIONS} == {
        "1min": 60,
        "5min": 300,
        "15min": 900,
        "1h": 3600,
    }


@pytest.mark.parametrize("text", ["2min", "", "60", "1H", "15 min", "hour"])
def test_parse_resolution_rejects_anything_else_with_the_accepted_values(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_resolution(text)
    message = str(err.value)
    assert "\n" not in message
    assert all(name in message for name in RESOLUTIONS)


def test_a_non_positive_resolution_is_refused() -> None:
    with pytest.raises(ValueError):
        bin_load(pieces(), 1, 3600.0, 0, START)


# --- exact energy per interval -----------------------------------------------------------------


def test_constant_11kw_for_one_aligned_hour_fills_exactly_its_four_quarters() -> None:
    curve = bin_load(pieces((0, 1800.0, 5400.0, 11.0, 0.0, 60.0, 0.2)), 1, 4 * 3600.0, 900, START)
    expected = np.zeros(16)
    expected[2:6] = 11.0
    np.testing.assert_allclose(curve.site_kw[0], expected, rtol=1e-12, atol=1e-12)
    assert energy_kwh(curve) == pytest.approx(11.0, rel=1e-12)
    assert curve.start == START
    assert curve.resolution_s == 900


def test_constant_piece_across_boundaries_is_split_by_overlap() -> None:
    # 11 kW from 1000 s to 4600 s: 800 s in [900, 1800), three whole quarters, 100 s in [4500,...)
    curve = bin_load(pieces((0, 1000.0, 4600.0, 11.0, 0.0, 60.0, 0.2)), 1, 7200.0, 900, START)
    expected = np.zeros(8)
    expected[1] = 11.0 * 800 / 900
    expected[2:5] = 11.0
    expected[5] = 11.0 * 100 / 900
    np.testing.assert_allclose(curve.site_kw[0], expected, rtol=1e-12, atol=1e-12)
    assert energy_kwh(curve) == pytest.approx(11.0, rel=1e-12)


def test_piece_inside_one_interval_gives_its_energy_to_that_interval_only() -> None:
    curve = bin_load(pieces((0, 100.0, 400.0, 36.0, 0.0, 60.0, 0.2)), 1, 3600.0, 900, START)
    np.testing.assert_allclose(curve.site_kw[0], [36.0 * 300 / 900, 0.0, 0.0, 0.0], atol=1e-12)


def _rk4_interval_energy(
    a: float, b: float, cap: float, soc0: float, t0: float, t1: float, edges: np.ndarray
) -> np.ndarray:
    """Energy per interval by integrating dSoC/dt = (a + b SoC) / (3600 cap) with 1 s RK4 steps."""

    def f(soc: float) -> float:
        return (a + b * soc) / (3600.0 * cap)

    soc, t = soc0, t0
    soc_at = {t0: soc0}
    marks = sorted({*(e for e in edges if t0 < e < t1), t1})
    for mark in marks:
        while t < mark - 1e-9:
            h = min(1.0, mark - t)
            k1 = f(soc)
            k2 = f(soc + h * k1 / 2)
            k3 = f(soc + h * k2 / 2)
            k4 = f(soc + h * k3)
            soc += h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
            t += h
        soc_at[mark] = soc
    out = np.zeros(len(edges) - 1)
    for k in range(len(edges) - 1):
        lo, hi = max(edges[k], t0), min(edges[k + 1], t1)
        if hi > lo:
            out[k] = cap * (soc_at[hi] - soc_at[lo])
    return out


def test_declining_piece_matches_an_independent_numeric_integration() -> None:
    # AC taper: 11 kW at SoC 0.8 falling linearly to 0 at SoC 1.0 on a 60 kWh battery.
    a, b, cap, soc0, t0, t1 = 55.0, -55.0, 60.0, 0.8, 600.0, 6600.0
    curve = bin_load(pieces((0, t0, t1, a, b, cap, soc0)), 1, 7200.0, 900, START)
    edges = np.arange(0, 7201, 900, dtype=float)
    expected_kw = _rk4_interval_energy(a, b, cap, soc0, t0, t1, edges) * 3600 / 900
    np.testing.assert_allclose(curve.site_kw[0], expected_kw, rtol=1e-6, atol=1e-9)
    inside = curve.site_kw[0][1:7]
    assert np.all(np.diff(inside[1:]) < 0), "power of a taper falls interval after interval"


# --- clipping and robustness -------------------------------------------------------------------


def test_pieces_are_clipped_to_the_horizon() -> None:
    # 10 kW from half an hour before the start to half an hour after a 3 h horizon.
    curve = bin_load(
        pieces((0, -1800.0, 3 * 3600 + 1800.0, 10.0, 0.0, 80.0, 0.1)), 1, 3 * 3600.0, 3600, START
    )
    np.testing.assert_allclose(curve.site_kw[0], [10.0, 10.0, 10.0], rtol=1e-12)
    assert curve.n_intervals == 3


def test_a_partial_last_interval_is_averaged_over_the_full_resolution() -> None:
    curve = bin_load(pieces((0, 0.0, 9999.0, 10.0, 0.0, 80.0, 0.1)), 1, 5400.0, 3600, START)
    np.testing.assert_allclose(curve.site_kw[0], [10.0, 5.0], rtol=1e-12)
    assert energy_kwh(curve) == pytest.approx(15.0, rel=1e-12)


def test_pieces_outside_the_horizon_empty_or_undefined_add_nothing() -> None:
    p = pieces(
        (0, 7200.0, 9000.0, 11.0, 0.0, 60.0, 0.2),  # after the horizon
        (0, -900.0, 0.0, 11.0, 0.0, 60.0, 0.2),  # ends at the start
        (0, 1000.0, 1000.0, 11.0, 0.0, 60.0, 0.2),  # zero length
        (0, np.nan, 2000.0, 11.0, 0.0, 60.0, 0.2),  # never started
    )
    curve = bin_load(p, 2, 7200.0, 900, START)
    assert curve.site_kw.shape == (2, 8)
    assert not curve.site_kw.any()


def test_each_site_gets_only_its_own_pieces() -> None:
    p = pieces((1, 0.0, 3600.0, 7.0, 0.0, 50.0, 0.1), (2, 3600.0, 7200.0, 22.0, 0.0, 50.0, 0.1))
    curve = bin_load(p, 3, 7200.0, 3600, START)
    np.testing.assert_allclose(curve.site_kw, [[0, 0], [7, 0], [0, 22]], atol=1e-12)
    np.testing.assert_allclose(curve.total_kw, [7, 22], atol=1e-12)


def test_a_site_index_out_of_range_is_an_error() -> None:
    with pytest.raises(ValueError, match="site"):
        bin_load(pieces((3, 0.0, 60.0, 7.0, 0.0, 50.0, 0.1)), 3, 3600.0, 60, START)


def test_no_pieces_gives_a_zero_curve_of_the_right_shape() -> None:
    curve = bin_load(pieces(), 4, 86400.0, 300, START)
    assert curve.site_kw.shape == (4, 288)
    assert not curve.site_kw.any()


def _random_pieces(rng: np.random.Generator, n: int, n_sites: int, horizon: float) -> PieceTable:
    t0 = rng.uniform(-3600, horizon, n)
    flat = rng.random(n) < 0.5
    b = np.where(flat, 0.0, rng.uniform(-80, 10, n))
    soc0 = rng.uniform(0.05, 0.9, n)
    p0 = rng.uniform(1, 150, n)
    return PieceTable(
        site=rng.integers(0, n_sites, n).astype("i4"),
        t0_s=t0,
        t1_s=t0 + rng.uniform(1, 4 * 3600, n),
        a=p0 - b * soc0,
        b=b,
        capacity_kwh=rng.uniform(20, 120, n),
        soc0=soc0,
    )


def test_chunking_and_piece_order_do_not_change_the_curve() -> None:
    rng = np.random.default_rng(7)
    horizon = 2 * 86400.0
    p = _random_pieces(rng, 400, 3, horizon)
    whole = bin_load(p, 3, horizon, 60, START)
    chunked = bin_load(p, 3, horizon, 60, START, max_rows=50)
    perm = rng.permutation(len(p))
    shuffled = PieceTable(
        **{f.name: np.asarray(getattr(p, f.name))[perm] for f in dataclasses.fields(PieceTable)}
    )
    reordered = bin_load(shuffled, 3, horizon, 60, START)
    assert whole.site_kw.any()
    np.testing.assert_allclose(chunked.site_kw, whole.site_kw, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(reordered.site_kw, whole.site_kw, rtol=1e-12, atol=1e-12)


# --- properties --------------------------------------------------------------------------------

piece_rows = st.lists(
    st.tuples(
        st.integers(0, 2),  # site
        st.floats(-7200, 30000),  # t0
        st.floats(0, 20000),  # duration
        st.floats(0.5, 350),  # power at the start of the piece, kW
        # b: flat, or a slope physics would produce (a tiny non-zero b only adds rounding noise)
        st.one_of(st.just(0.0), st.floats(-200, -0.01), st.floats(0.01, 50)),
        st.floats(10, 150),  # capacity
        st.floats(0.0, 0.95),  # soc0
    ),
    min_size=1,
    max_size=25,
)


def _table(rows: list[tuple[int, float, float, float, float, float, float]]) -> PieceTable:
    # a is chosen so that power at soc0 is the drawn start power: it then stays positive.
    return pieces(
        *[(s, t0, t0 + d, p0 - b * soc0, b, cap, soc0) for s, t0, d, p0, b, cap, soc0 in rows]
    )


@settings(max_examples=150, deadline=None)
@given(
    rows=piece_rows,
    resolution=st.sampled_from([60, 300, 900, 3600, 7]),
    horizon=st.floats(600, 36000),
)
def test_binned_energy_equals_the_exact_energy_within_the_horizon(
    rows: list[tuple[int, float, float, float, float, float, float]],
    resolution: int,
    horizon: float,
) -> None:
    p = _table(rows)
    curve = bin_load(p, 3, horizon, resolution, START)
    exact = exact_energy(p, horizon)
    assert energy_kwh(curve) == pytest.approx(exact, rel=1e-6, abs=1e-9)
    assert curve.site_kw.min() >= -1e-9


@settings(max_examples=60, deadline=None)
@given(rows=piece_rows)
def test_fine_intervals_add_up_to_the_coarse_ones(
    rows: list[tuple[int, float, float, float, float, float, float]],
) -> None:
    horizon = 8 * 3600.0
    p = _table(rows)
    fine = bin_load(p, 3, horizon, 60, START).site_kw
    coarse = bin_load(p, 3, horizon, 900, START).site_kw
    regrouped = fine.reshape(3, -1, 15).mean(axis=2)
    np.testing.assert_allclose(regrouped, coarse, rtol=1e-6, atol=1e-7)


# --- local time --------------------------------------------------------------------------------


def test_daily_profile_uses_local_hours_and_local_weekdays_across_dst() -> None:
    # Saturday 2025-03-29 00:00 UTC for three days, 1 kW in the hour from 06:00 UTC each day:
    # Saturday 07:00 local (+1), Sunday 08:00 local (+2 from 01:00 UTC), Monday 08:00 local.
    start = datetime(2025, 3, 29, tzinfo=UTC)
    kw = np.zeros((1, 72))
    kw[0, [6, 30, 54]] = 1.0
    profile = daily_profile(LoadCurve(start, 3600, kw), "Europe/Berlin", bin_s=3600)
    assert profile.bin_s == 3600
    np.testing.assert_allclose(profile.hours, np.arange(24) + 0.5)
    assert profile.weekday_kw[0, 8] == pytest.approx(1.0)  # Monday only
    assert profile.weekday_kw[0, 7] == pytest.approx(0.0)
    assert profile.weekend_kw[0, 7] == pytest.approx(0.5)  # Saturday 1, Sunday 0
    assert profile.weekend_kw[0, 8] == pytest.approx(0.5)  # Saturday 0, Sunday 1
    assert np.nansum(profile.weekday_kw) + np.nansum(profile.weekend_kw) == pytest.approx(2.0)


def test_daily_profile_marks_bins_without_data_as_nan() -> None:
    # Monday to Wednesday only: there is no weekend to average.
    profile = daily_profile(LoadCurve(START, 900, np.ones((2, 3 * 96))), "UTC")
    assert np.isnan(profile.weekend_kw).all()
    np.testing.assert_allclose(profile.weekday_kw, 1.0)
    assert profile.weekday_kw.shape == (2, 96)


def test_daily_stats_gives_mean_and_peak_of_the_total_per_local_day() -> None:
    kw = np.zeros((2, 48))
    kw[0, :24] = 2.0
    kw[1, 10] = 5.0  # day one peaks at 7 kW
    kw[1, 30] = 4.0  # day two: only this hour
    stats = daily_stats(LoadCurve(START, 3600, kw), "UTC")
    np.testing.assert_array_equal(
        stats.days, np.array(["2025-01-06", "2025-01-07"], dtype="datetime64[D]")
    )
    np.testing.assert_allclose(stats.mean_kw, [2.0 + 5.0 / 24, 4.0 / 24])
    np.testing.assert_allclose(stats.peak_kw, [7.0, 4.0])
