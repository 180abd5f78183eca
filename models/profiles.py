"""Hourly arrival-share profiles: the published tables, and a normalised profile type.

Percent of a day-type's arrivals in each local hour, hour 00 first, as listed in
docs `demand-defaults.md`. Data only: sampling arrival times is `models.demand`'s job.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# ElaadNL (Dutch public and semi-public charge points), as packaged with EV2Gym `ev2gym/data`.
HOME_WEEKDAY_SHARES: tuple[float, ...] = (
    2, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 4, 6, 12, 17, 12, 9, 9, 9, 7,
)  # fmt: skip
HOME_WEEKEND_SHARES: tuple[float, ...] = (
    4, 2, 1, 0, 0, 0, 0, 0, 1, 2, 3, 5, 6, 6, 6, 7, 9, 10, 8, 6, 7, 6, 6, 4,
)  # fmt: skip
WORKPLACE_WEEKDAY_SHARES: tuple[float, ...] = (
    0, 0, 0, 0, 0, 1, 4, 14, 27, 18, 8, 5, 5, 5, 4, 3, 2, 1, 1, 0, 0, 0, 0, 0,
)  # fmt: skip
PUBLIC_AC_WEEKDAY_SHARES: tuple[float, ...] = (
    1, 0, 0, 0, 0, 0, 1, 3, 8, 8, 5, 5, 5, 5, 5, 5, 6, 8, 11, 8, 5, 4, 3, 2,
)  # fmt: skip
PUBLIC_AC_WEEKEND_SHARES: tuple[float, ...] = (
    2, 1, 1, 0, 0, 0, 0, 1, 2, 4, 6, 7, 8, 8, 8, 8, 8, 8, 7, 6, 5, 4, 3, 2,
)  # fmt: skip
# One public 50 kW DC charger in ACN-Data (Caltech), 2020-21; the same shape on every day.
DC_FAST_SHARES: tuple[float, ...] = (
    1, 0, 0, 0, 0, 1, 3, 4, 5, 4, 5, 5, 4, 5, 7, 7, 8, 8, 9, 8, 8, 4, 2, 2,
)  # fmt: skip


class HourlyProfile:
    """A day's arrival-time shape: the probability that an arrival falls in each local hour.

    Built from 24 non-negative shares in any unit (the tables above are percent and do not sum to
    exactly 100 because of rounding); they are normalised to probabilities.
    """

    __slots__ = ("cumulative", "probabilities")

    def __init__(self, shares: Sequence[float]) -> None:
        w = np.asarray(shares, dtype=float)
        if w.shape != (24,):
            raise ValueError(f"an hourly profile needs exactly 24 shares, got {w.shape}")
        if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("hourly shares must be finite, non-negative and not all zero")
        self.probabilities: np.ndarray = w / w.sum()
        cumulative = np.cumsum(self.probabilities)
        # Rounding can leave the total a hair below 1; samplers rely on it being exactly 1 from
        # the last non-empty hour on, so that no draw can land in a trailing empty hour.
        cumulative[int(np.flatnonzero(w)[-1]) :] = 1.0
        self.cumulative: np.ndarray = cumulative
        self.probabilities.setflags(write=False)
        self.cumulative.setflags(write=False)

    def __repr__(self) -> str:
        return f"HourlyProfile(peak_hour={self.peak_hour})"

    @property
    def peak_hour(self) -> int:
        """The hour with the largest share (the earliest one on a tie)."""
        return int(np.argmax(self.probabilities))
