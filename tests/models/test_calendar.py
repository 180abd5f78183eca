"""Local calendar: hour boundaries exact across DST, day lookup, vectorised local hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.calendar import Calendar

AMS = ZoneInfo("Europe/Amsterdam")
ZONES = ["Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


def _cal(start: datetime, tz: str = "Europe/Amsterdam") -> Calendar:
    return Calendar(start, tz)


def test_naive_start_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Calendar(datetime(2025, 1, 1), "Europe/Amsterdam")


@pytest.mark.parametrize(
    ("date", "hours"),
    [
        (datetime(2025, 3, 29), 24),
        (datetime(2025, 3, 30), 23),  # spring forward: 02:00 -> 03:00
        (datetime(2025, 3, 31), 24),
        (datetime(2025, 10, 25), 24),
        (datetime(2025, 10, 26), 25),  # fall back: 03:00 -> 02:00
        (datetime(2025, 10, 27), 24),
    ],
)
def test_day_span_follows_dst(date: datetime, hours: int) -> None:
    cal = _cal(datetime(2025, 3, 1, 12, tzinfo=AMS))
    day = (date.date() - cal.day0).days
    hs = cal.hour_starts_s(day)
    assert hs.shape == (25,)
    assert hs[24] - hs[0] == hours * 3600.0
    assert cal.day_bounds_s(day) == (hs[0], hs[24])


def test_spring_forward_hour_is_zero_length_and_fall_back_hour_is_doubled() -> None:
    cal = _cal(datetime(2025, 3, 1, tzinfo=AMS))
    spring = np.diff(cal.hour_starts_s((datetime(2025, 3, 30).date() - cal.day0).days))
    fall = np.diff(cal.hour_starts_s((datetime(2025, 10, 26).date() - cal.day0).days))
    assert spring[2] == 0.0 and np.all(np.delete(spring, 2) == 3600.0)
    assert fall[2] == 7200.0 and np.all(np.delete(fall, 2) == 3600.0)


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    zone=st.sampled_from(ZONES),
    day=st.integers(-3, 400),
)
def test_hour_starts_are_ordered_real_local_hours(start: datetime, zone: str, day: int) -> None:
    cal = Calendar(start, zone)
    hs = cal.hour_starts_s(day)
    assert np.all(np.diff(hs) >= 0.0)
    span_h = (hs[24] - hs[0]) / 3600.0
    assert 22.5 <= span_h <= 25.0
    tz = ZoneInfo(zone)
    assert cal.to_datetime(hs[0]).astimezone(tz).date() == cal.local_date(day)
    assert cal.to_datetime(hs[24]).astimezone(tz).date() == cal.local_date(day + 1)
    for h in range(24):
        if hs[h + 1] > hs[h]:  # a real hour: its boundary reads h o'clock (or later, in a gap)
            local = cal.to_datetime(hs[h]).astimezone(tz)
            assert local.date() == cal.local_date(day)
            assert local.hour >= h
    assert cal.day_of(hs[0]) == day
    assert cal.day_of(hs[24] - 0.001) == day
    assert cal.day_of(hs[24]) == day + 1


def test_day_zero_contains_start() -> None:
    start = datetime(2025, 6, 1, 23, 30, tzinfo=AMS)
    cal = _cal(start)
    lo, hi = cal.day_bounds_s(0)
    assert lo <= 0.0 < hi
    assert lo == -23.5 * 3600.0
    # The start in another zone still puts day 0 on the site's local date.
    cal_utc_start = Calendar(start.astimezone(UTC), "Europe/Amsterdam")
    assert cal_utc_start.day_bounds_s(0) == (lo, hi)


def test_weekday_and_weekend() -> None:
    cal = _cal(datetime(2025, 1, 1, 9, tzinfo=AMS))  # a Wednesday
    assert [cal.weekday(d) for d in range(7)] == [2, 3, 4, 5, 6, 0, 1]
    assert [cal.is_weekend(d) for d in range(7)] == [False, False, False, True, True, False, False]


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    offsets=st.lists(st.floats(-2 * 86400, 400 * 86400), min_size=1, max_size=40),
)
def test_local_hour_matches_zoneinfo(zone: str, offsets: list[float]) -> None:
    cal = Calendar(datetime(2025, 1, 1, 6, tzinfo=UTC), zone)
    t = np.array(offsets)
    got = cal.local_hour(t)
    assert isinstance(got, np.ndarray)
    tz = ZoneInfo(zone)
    for ti, hi in zip(offsets, got, strict=True):
        local = cal.to_datetime(ti).astimezone(tz)
        want = local.hour + local.minute / 60 + (local.second + local.microsecond / 1e6) / 3600
        assert hi == pytest.approx(want, abs=1e-6)
        assert cal.day_of(ti) == (local.date() - cal.day0).days
    np.testing.assert_array_equal(cal.days_of(t), [cal.day_of(x) for x in offsets])


def test_local_hour_scalar_and_dst_days() -> None:
    spring = _cal(datetime(2025, 3, 30, tzinfo=AMS))  # local midnight = 23:00 UTC the day before
    assert isinstance(spring.local_hour(0.0), float)
    assert spring.local_hour(0.0) == 0.0
    # 00:30 UTC is 01:30 CET; an hour later, 01:30 UTC, the clocks have jumped to 03:30 CEST.
    assert spring.local_hour(1.5 * 3600) == pytest.approx(1.5)
    assert spring.local_hour(2.5 * 3600) == pytest.approx(3.5)
    fall = _cal(datetime(2025, 10, 26, tzinfo=AMS))  # local midnight = 22:00 UTC the day before
    # 00:30 UTC is 02:30 CEST and 01:30 UTC is 02:30 CET: both read 2.5 on the wall clock.
    first, second = fall.local_hour(np.array([2.5 * 3600, 3.5 * 3600]))
    assert first == pytest.approx(2.5) and second == pytest.approx(2.5)
    assert fall.local_hour(4.5 * 3600) == pytest.approx(3.5)


def test_to_datetime_is_utc_aware() -> None:
    cal = _cal(datetime(2025, 7, 1, 12, tzinfo=AMS))
    dt = cal.to_datetime(3600.0)
    assert dt.tzinfo is not None and dt.utcoffset() == timedelta(0)
    assert dt == datetime(2025, 7, 1, 11, tzinfo=UTC)


def test_hour_starts_are_cached_and_read_only() -> None:
    cal = _cal(datetime(2025, 7, 1, tzinfo=AMS))
    a = cal.hour_starts_s(5)
    assert cal.hour_starts_s(5) is a
    with pytest.raises(ValueError):
        a[0] = 1.0
