"""Fault draws: deterministic for a seed, exponential with the configured means, never negative,
and the downtime of overlapping repairs counted once."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.faults import ConnectorFault, connector_faults, downtime_s, failure_times, next_failure

CODES = ("GroundFailure", "OverCurrentFailure", "HighTemperature")
seeds = st.integers(0, 2**63 - 1)
mtbfs = st.floats(1.0, 1e9, allow_nan=False, allow_infinity=False)


def first(seed: int, n: int, mtbf_s: float = 86400.0, evses: tuple[int, ...] = (1, 2)) -> list:
    rng = np.random.default_rng(seed)
    return list(itertools.islice(connector_faults(rng, mtbf_s, 7200.0, CODES, evses), n))


@given(seed=seeds)
def test_the_same_seed_gives_the_same_faults_and_another_seed_does_not(seed: int) -> None:
    assert first(seed, 50) == first(seed, 50)
    assert first(seed, 50) != first(seed + 1, 50)
    # Reading further changes nothing already drawn (four draws a fault, whatever the outcome).
    assert first(seed, 80)[:50] == first(seed, 50)


# Derandomized: the same examples every run, so the statistical bounds below cannot flake.
@settings(max_examples=30, deadline=None, derandomize=True)
@given(seed=seeds, mtbf_s=mtbfs)
def test_the_mean_time_between_failures_is_the_mtbf(seed: int, mtbf_s: float) -> None:
    rng = np.random.default_rng(seed)
    n = 20_000
    gaps = np.array([next_failure(rng, mtbf_s) for _ in range(n)])
    assert (gaps > 0).all() and np.isfinite(gaps).all()
    # The mean of n exponentials has a relative standard deviation of 1/sqrt(n) = 0.7 %:
    # 5 % is seven of them (odds of a miss ~1e-12), while a wrong rate is off by far more.
    assert gaps.mean() == pytest.approx(mtbf_s, rel=0.05)
    # Exponential, not merely the right mean: the median is ln 2 of the mean.
    assert np.median(gaps) == pytest.approx(math.log(2) * mtbf_s, rel=0.05)


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=seeds, connectors=st.integers(1, 6))
def test_each_connector_fails_once_per_mtbf_and_repairs_take_their_mean(
    seed: int, connectors: int
) -> None:
    rng = np.random.default_rng(seed)
    mtbf_s, repair_s, horizon = 1000.0, 50.0, 1_000_000.0
    evses = tuple(range(1, connectors + 1))
    faults = list(connector_faults(rng, mtbf_s, repair_s, CODES, evses, horizon))
    # 1,000 faults expected per connector, Poisson: a relative standard deviation of 3.2 %,
    # so 16 % is five of them. (A rate counted for the station, not per connector, is off
    # by the number of connectors.)
    for evse in evses:
        times = [f.at_s for f in faults if f.evse_id == evse]
        assert len(times) == pytest.approx(horizon / mtbf_s, rel=0.16)
        assert np.diff(times).mean() == pytest.approx(mtbf_s, rel=0.16)
    repairs = np.array([f.repair_s for f in faults])
    assert repairs.mean() == pytest.approx(repair_s, rel=0.16)
    # Each code a third of the faults: standard deviation under 1.5 % of the total.
    counts = {c: sum(f.error_code == c for f in faults) for c in CODES}
    assert all(abs(n / len(faults) - 1 / 3) < 0.075 for n in counts.values())


@given(
    seed=seeds,
    mtbf_s=mtbfs,
    start=st.floats(0.0, 1e6),
    evses=st.lists(st.integers(1, 16), min_size=1, max_size=4, unique=True),
)
def test_faults_come_in_order_after_the_start_and_are_never_negative(
    seed: int, mtbf_s: float, start: float, evses: list[int]
) -> None:
    rng = np.random.default_rng(seed)
    draws = connector_faults(rng, mtbf_s, 3600.0, CODES, evses, start_s=start)
    faults = list(itertools.islice(draws, 200))
    assert len(faults) == 200  # no horizon: for ever
    times = [f.at_s for f in faults]
    assert times[0] > start and all(b > a for a, b in itertools.pairwise(times))
    for fault in faults:
        assert isinstance(fault, ConnectorFault)
        assert fault.repair_s > 0 and math.isfinite(fault.repair_s)
        assert fault.evse_id in evses and fault.error_code in CODES
    power = list(itertools.islice(failure_times(rng, mtbf_s, start_s=start), 200))
    assert power[0] > start and all(b > a for a, b in itertools.pairwise(power))


@given(seed=seeds, horizon=st.floats(1.0, 1e5))
def test_nothing_is_drawn_past_the_horizon(seed: int, horizon: float) -> None:
    rng = np.random.default_rng(seed)
    assert all(f.at_s < horizon for f in connector_faults(rng, 500.0, 60.0, CODES, [1], horizon))
    assert all(t < horizon for t in failure_times(rng, 500.0, horizon))


def test_a_zero_draw_is_never_a_zero_gap() -> None:
    class Zero:
        def exponential(self, scale: float) -> float:
            return 0.0

    assert 0.0 < next_failure(Zero(), 10.0) < 1e-12  # type: ignore[arg-type]


@pytest.mark.parametrize("mtbf_s", [0.0, -1.0, math.inf, math.nan])
def test_a_meaningless_mtbf_is_refused(mtbf_s: float) -> None:
    with pytest.raises(ValueError, match="mtbf_s"):
        next_failure(np.random.default_rng(0), mtbf_s)


def test_impossible_connector_fault_arguments_are_refused() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="connectors"):
        next(connector_faults(rng, 10.0, 10.0, CODES, []))
    with pytest.raises(ValueError, match="error_codes"):
        next(connector_faults(rng, 10.0, 10.0, [], [1]))
    with pytest.raises(ValueError, match="mean_repair_s"):
        next(connector_faults(rng, 10.0, 0.0, CODES, [1]))


intervals = st.lists(st.tuples(st.integers(-20, 120), st.integers(0, 60)), max_size=12)


@given(spans=intervals, lo=st.integers(-10, 50), width=st.integers(0, 100))
def test_downtime_counts_overlapping_repairs_once_within_the_window(
    spans: list[tuple[int, int]], lo: int, width: int
) -> None:
    pairs = [(float(a), float(a + d)) for a, d in spans]
    hi = lo + width
    # Whole-second cells covered by any interval: the union, counted one by one.
    cells = {t for a, b in pairs for t in range(int(a), int(b)) if lo <= t < hi}
    assert downtime_s(pairs, lo, hi) == len(cells)
