"""Maps simulated seconds to a site's local calendar: local days, hour boundaries, weekdays.

Exact across daylight-saving changes (zoneinfo, IANA database from `tzdata`). Pure arithmetic on
datetimes and numpy arrays: it never reads the wall clock and holds no simulation state.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import overload
from zoneinfo import ZoneInfo

import numpy as np

SECONDS_PER_HOUR = 3600.0
_DAY = timedelta(days=1)


class Calendar:
    """The local calendar of one site, with simulated time `t_s` in seconds after `start`.

    Local day 0 is the local calendar day containing `start`, so day 0 usually begins before
    t_s = 0. Hour boundaries are real instants: on a spring-forward day the skipped local hour is
    zero-length, on a fall-back day the repeated hour lasts two hours, so the 24 hourly slots of
    any day always cover exactly that day's real span (23, 24 or 25 hours).
    """

    __slots__ = ("_day_start_cache", "_hour_cache", "day0", "start_utc", "timezone", "tz")

    def __init__(self, start: datetime, timezone: str) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError(f"calendar start must be timezone-aware, got naive {start!r}")
        self.timezone = timezone
        self.tz = ZoneInfo(timezone)
        self.start_utc = start.astimezone(UTC)
        self.day0: date = self.start_utc.astimezone(self.tz).date()
        self._hour_cache: dict[int, np.ndarray] = {}
        self._day_start_cache: dict[int, float] = {}

    def __repr__(self) -> str:
        return f"Calendar(start={self.start_utc.isoformat()}, timezone={self.timezone!r})"

    def _local_to_s(self, day: date, hour: int) -> float:
        # fold=0 resolves a nonexistent local time with the offset in force before the gap, which
        # lands exactly on the transition instant; an ambiguous one resolves to its first pass.
        # Both are what makes the skipped hour zero-length and the repeated hour two hours long.
        local = datetime(day.year, day.month, day.day, hour, tzinfo=self.tz)
        return (local.astimezone(UTC) - self.start_utc).total_seconds()

    def local_date(self, day: int) -> date:
        """The local calendar date of local day `day`."""
        return self.day0 + timedelta(days=int(day))

    def hour_starts_s(self, day: int) -> np.ndarray:
        """Sim seconds of the 25 local hour boundaries of `day` (index 24: next local midnight).

        The returned array is cached and read-only.
        """
        cached = self._hour_cache.get(day)
        if cached is not None:
            return cached
        day = int(day)
        d = self.local_date(day)
        bounds = [self._local_to_s(d, h) for h in range(24)]
        bounds.append(self._local_to_s(d + _DAY, 0))
        # Guards against zones whose transitions are not on the hour (e.g. a 30-minute shift
        # at 02:00): there a boundary could otherwise precede the one before it.
        arr = np.maximum.accumulate(np.asarray(bounds, dtype=float))
        arr.setflags(write=False)
        self._hour_cache[day] = arr
        self._day_start_cache[day] = float(arr[0])
        return arr

    def _day_start_s(self, day: int) -> float:
        cached = self._day_start_cache.get(day)
        if cached is None:
            day = int(day)
            cached = self._local_to_s(self.local_date(day), 0)
            self._day_start_cache[day] = cached
        return cached

    def day_bounds_s(self, day: int) -> tuple[float, float]:
        """Sim seconds of the local midnight starting `day` and the one ending it."""
        return self._day_start_s(day), self._day_start_s(day + 1)

    def weekday(self, day: int) -> int:
        """Day of the week of local day `day`, Monday = 0."""
        return self.local_date(day).weekday()

    def is_weekend(self, day: int) -> bool:
        """Whether local day `day` is a Saturday or Sunday."""
        return self.local_date(day).weekday() >= 5

    def _days_of(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Local day index of each element, plus the day-start table used and its first day."""
        # A day is 86400 s give or take the DST shifts, so the naive estimate from day 0's start
        # is off by at most one; bracket it and let searchsorted pick the exact day.
        d0_start = self._day_start_s(0)
        approx = np.floor((t - d0_start) / 86400.0)
        lo = int(approx.min()) - 1
        hi = int(approx.max()) + 2
        starts = np.fromiter(
            (self._day_start_s(d) for d in range(lo, hi + 1)), dtype=float, count=hi - lo + 1
        )
        pos = np.searchsorted(starts, t, side="right") - 1
        return pos + lo, starts, lo

    def day_of(self, t_s: float) -> int:
        """The local day containing sim time `t_s` (a day owns its starting midnight)."""
        days, _, _ = self._days_of(np.asarray([t_s], dtype=float))
        return int(days[0])

    def days_of(self, t_s: np.ndarray) -> np.ndarray:
        """`day_of` of every element, vectorised."""
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        if t.size == 0:
            return np.zeros(0, dtype=np.intp)
        days, _, _ = self._days_of(t)
        return days

    @overload
    def local_hour(self, t_s: float) -> float: ...
    @overload
    def local_hour(self, t_s: np.ndarray) -> np.ndarray: ...
    def local_hour(self, t_s: np.ndarray | float) -> np.ndarray | float:
        """Local wall-clock time of day in hours, 0 <= h < 24.

        Vectorised; on a DST change the reading follows the wall clock (it jumps at the change,
        and the repeated hour of a fall-back day reads the same twice).
        Returns a float for a scalar argument and an array for an array.
        """
        scalar = np.ndim(t_s) == 0
        t = np.atleast_1d(np.asarray(t_s, dtype=float))
        if t.size == 0:
            return t.copy()
        days, starts, lo = self._days_of(t)
        idx = days - lo
        hours = (t - starts[idx]) / SECONDS_PER_HOUR
        # A day whose span is not 24 h contains an offset change; such days are rare, so their
        # elements go through zoneinfo one by one.
        span = starts[idx + 1] - starts[idx]
        odd = np.flatnonzero(span != 86400.0)
        for i in odd.tolist():
            local = self.to_datetime(float(t[i])).astimezone(self.tz)
            midnight = datetime.combine(local.date(), datetime.min.time())
            hours[i] = (local.replace(tzinfo=None) - midnight).total_seconds() / SECONDS_PER_HOUR
        return float(hours[0]) if scalar else hours

    def to_datetime(self, t_s: float) -> datetime:
        """The UTC-aware instant of sim time `t_s`."""
        return self.start_utc + timedelta(seconds=float(t_s))
