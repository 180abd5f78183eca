"""Load curves: exact average kW per site and interval from closed-form charging pieces.

Integrates every piece analytically (never samples power at instants, never loops over pieces in
Python) and reduces a curve by the site's local clock for reports. Must not read or write files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from models.calendar import Calendar
from models.physics import piece_soc_array
from simulator.records import LoadCurve, PieceTable

RESOLUTIONS: dict[str, int] = {"1min": 60, "5min": 300, "15min": 900, "1h": 3600}

# Upper bound on (piece, interval-boundary) rows expanded at once: ~10 float64 temporaries per
# row keeps a chunk near 200-300 MB however long the run is.
MAX_EXPANDED_ROWS = 2_000_000

# Below this |b| (kW per unit SoC) a piece is constant power; the same threshold at which
# models.physics.piece_soc_array switches to its linear solution.
FLAT_SLOPE = 1e-12

SECONDS_PER_DAY = 86400
# Offsets are looked up once per UTC quarter hour: every UTC offset in use today, and every
# transition instant, is a whole multiple of 15 minutes.


def parse_resolution(text: str) -> int:
    """Seconds per interval for a resolution name such as "15min"."""
    try:
        return RESOLUTIONS[text.strip()]
    except KeyError:
        accepted = ", ".join(RESOLUTIONS)
        raise ValueError(f"unknown resolution {text!r}; expected one of: {accepted}") from None


def n_intervals(horizon_s: float, resolution_s: int) -> int:
    """Number of intervals of `resolution_s` needed to cover [0, horizon_s)."""
    if resolution_s <= 0:
        raise ValueError(f"resolution must be a positive number of seconds, got {resolution_s}")
    return max(math.ceil(horizon_s / resolution_s), 0)


def bin_load(
    pieces: PieceTable,
    n_sites: int,
    horizon_s: float,
    resolution_s: int,
    start: datetime,
    *,
    max_rows: int = MAX_EXPANDED_ROWS,
) -> LoadCurve:
    """Average kW per site over [k*res, (k+1)*res) for every interval of the horizon.

    Each piece is clipped to [0, horizon_s) and cut at the interval boundaries it crosses; the
    energy of each cut is capacity * (SoC(t_hi) - SoC(t_lo)) from the exact SoC solution, so
    sum(kW) * res / 3600 equals the energy the pieces deliver inside the horizon. A last,
    partial interval (horizon not a multiple of res) is still averaged over the full res.
    """
    n_int = n_intervals(horizon_s, resolution_s)
    if n_sites < 0:
        raise ValueError(f"n_sites must be >= 0, got {n_sites}")
    # Time-major layout (interval * n_sites + site): chunks sorted by start time then touch one
    # contiguous band of the accumulator.
    acc = np.zeros(n_int * n_sites, dtype=np.float64)
    if n_int and n_sites and len(pieces):
        _accumulate_pieces(pieces, acc, n_sites, n_int, float(horizon_s), resolution_s, max_rows)
    site_kw = acc.reshape(n_int, n_sites).T * (3600.0 / resolution_s)
    return LoadCurve(start=start, resolution_s=resolution_s, site_kw=np.ascontiguousarray(site_kw))


def _accumulate_pieces(
    pieces: PieceTable,
    acc: np.ndarray,
    n_sites: int,
    n_int: int,
    horizon_s: float,
    resolution_s: int,
    max_rows: int,
) -> None:
    """Add every piece's kWh per (interval, site) into `acc`."""
    t0_all = np.asarray(pieces.t0_s, dtype=np.float64)
    lo = np.maximum(t0_all, 0.0)
    hi = np.minimum(np.asarray(pieces.t1_s, dtype=np.float64), horizon_s)
    keep = np.flatnonzero(hi > lo)  # also drops NaN times
    if keep.size == 0:
        return
    site = np.asarray(pieces.site)[keep].astype(np.int64)
    if site.min() < 0 or site.max() >= n_sites:
        raise ValueError(f"piece site index out of range [0, {n_sites})")
    lo, hi = lo[keep], hi[keep]
    res = float(resolution_s)
    last = n_int - 1
    k0 = np.clip(np.floor(lo / res), 0, last).astype(np.int64)
    # Rounding may put hi/res a hair below lo/res's interval; never let a piece touch zero
    # intervals, or its energy would vanish.
    k1 = np.maximum(np.clip(np.ceil(hi / res) - 1, 0, last).astype(np.int64), k0)
    b = np.asarray(pieces.b, dtype=np.float64)[keep]
    flat = np.abs(b) < FLAT_SLOPE
    for group in (np.flatnonzero(flat), np.flatnonzero(~flat)):
        if group.size == 0:
            continue
        # Sorted by first interval, a chunk touches one narrow band of the accumulator.
        group = group[np.argsort(k0[group], kind="stable")]
        rows = keep[group]
        cuts = _Cuts(
            site=site[group],
            lo=lo[group],
            hi=hi[group],
            k0=k0[group],
            k1=k1[group],
            t0=t0_all[rows],
            a=np.asarray(pieces.a, dtype=np.float64)[rows],
            b=b[group],
            cap=np.asarray(pieces.capacity_kwh, dtype=np.float64)[rows],
            soc0=np.asarray(pieces.soc0, dtype=np.float64)[rows],
        )
        energy = _flat_energy if flat[group[0]] else _curved_energy
        # Both expansions need at most (intervals touched + 1) rows per piece.
        ends = np.cumsum(cuts.k1 - cuts.k0 + 2)
        first = 0
        while first < group.size:
            done = int(ends[first - 1]) if first else 0
            stop = max(int(np.searchsorted(ends, done + max_rows, side="right")), first + 1)
            cell, kwh = energy(n_sites, res, cuts.slice(first, stop))
            base = int(cell.min())
            binned = np.bincount(cell - base, weights=kwh)
            acc[base : base + binned.size] += binned
            first = stop


@dataclass(frozen=True, slots=True)
class _Cuts:
    """Pieces clipped to [lo, hi) inside the horizon, touching intervals k0 .. k1."""

    site: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    k0: np.ndarray
    k1: np.ndarray
    t0: np.ndarray
    a: np.ndarray
    b: np.ndarray
    cap: np.ndarray
    soc0: np.ndarray

    def slice(self, first: int, stop: int) -> _Cuts:
        sl = slice(first, stop)
        return _Cuts(
            self.site[sl],
            self.lo[sl],
            self.hi[sl],
            self.k0[sl],
            self.k1[sl],
            self.t0[sl],
            self.a[sl],
            self.b[sl],
            self.cap[sl],
            self.soc0[sl],
        )


def _flat_energy(n_sites: int, res: float, cuts: _Cuts) -> tuple[np.ndarray, np.ndarray]:
    """Cells and kWh of constant-power pieces: one row per interval touched.

    The exact SoC is linear in time, so capacity * dSoC is a * dt / 3600: whole intervals get
    a * res / 3600 and only the two end intervals need their overlap, with no exponential.
    """
    m = cuts.k1 - cuts.k0 + 1
    first = np.cumsum(m) - m
    last = first + m - 1
    # Row r of a piece lies in interval k0 + (r - first); built without a per-row gather.
    cell = np.repeat((cuts.k0 - first) * n_sites + cuts.site, m)
    cell += np.arange(cell.size, dtype=np.int64) * n_sites
    kw_to_kwh = cuts.a * (1.0 / 3600.0)
    kwh = np.repeat(kw_to_kwh * res, m)
    kwh[last] = kw_to_kwh * (cuts.hi - np.maximum(cuts.k1 * res, cuts.lo))
    multi = m > 1
    kwh[first[multi]] = (kw_to_kwh * ((cuts.k0 + 1) * res - cuts.lo))[multi]
    return cell, kwh


def _curved_energy(n_sites: int, res: float, cuts: _Cuts) -> tuple[np.ndarray, np.ndarray]:
    """Cells and kWh of pieces whose power changes with SoC, from the exact SoC at each cut.

    A piece touching m intervals is cut at m + 1 instants (lo, the inner interval boundaries,
    hi); the energy between consecutive cuts is capacity * (SoC(t_hi) - SoC(t_lo)).
    """
    points = cuts.k1 - cuts.k0 + 2
    first = np.cumsum(points) - points
    last = first + points - 1
    owner = np.repeat(np.arange(points.size), points)
    k = np.repeat(cuts.k0 - first, points) + np.arange(owner.size, dtype=np.int64)
    t = k * res
    t[first] = cuts.lo
    t[last] = cuts.hi
    cap = cuts.cap[owner]
    soc = piece_soc_array(cuts.a[owner], cuts.b[owner], cap, cuts.soc0[owner], t - cuts.t0[owner])
    # Row r closes the cut that began at row r - 1, inside interval k - 1; the rows that open
    # a piece instead pair with the previous piece's end and carry no energy.
    kwh = cap[1:] * np.diff(soc)
    opening = first[1:] - 1
    kwh[opening] = 0.0
    k_closed = k[1:] - 1
    k_closed[opening] += 1  # any valid cell will do for a zero weight
    cell = k_closed * n_sites + cuts.site[owner[1:]]
    return cell, kwh


def interval_starts_s(curve: LoadCurve) -> np.ndarray:
    """Seconds after the run's start at which each interval of `curve` begins."""
    return np.arange(curve.n_intervals, dtype=np.float64) * curve.resolution_s


@dataclass(frozen=True, slots=True)
class DailyProfile:
    """Average load of each site by local time of day, weekdays and weekend days apart.

    `hours` holds the centre of each time-of-day bin in local hours; the kW arrays have shape
    (n_sites, n_bins) and are NaN where no interval of that kind of day fell in the bin.
    """

    bin_s: int
    hours: np.ndarray
    weekday_kw: np.ndarray
    weekend_kw: np.ndarray


def daily_profile(curve: LoadCurve, timezone: str, bin_s: int = 900) -> DailyProfile:
    """Mean kW per site by local time of day (bins of max(bin_s, resolution)), Mon-Fri vs Sat-Sun.

    Each interval is placed by the local clock time at its start, so a DST change moves the
    instants that land in a bin but never the bin itself.
    """
    width = max(bin_s, curve.resolution_s)
    n_bins = math.ceil(SECONDS_PER_DAY / width)
    calendar = Calendar(curve.start, timezone)
    starts = interval_starts_s(curve)
    tod_bin = (calendar.local_hour(starts) * 3600.0 // width).astype(np.int64)
    days = calendar.days_of(starts)
    unique, inverse = np.unique(days, return_inverse=True)
    weekend = np.array([calendar.is_weekend(int(d)) for d in unique], dtype=bool)[inverse]
    n_sites = curve.site_kw.shape[0]
    means = []
    for mask in (~weekend, weekend):
        counts = np.bincount(tod_bin[mask], minlength=n_bins).astype(np.float64)
        sums = np.zeros((n_sites, n_bins))
        for i in range(n_sites):
            sums[i] = np.bincount(tod_bin[mask], weights=curve.site_kw[i][mask], minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            means.append(np.where(counts > 0, sums / counts, np.nan))
    hours = (np.arange(n_bins) + 0.5) * width / 3600.0
    return DailyProfile(width, hours, means[0], means[1])


@dataclass(frozen=True, slots=True)
class DailyStats:
    """Mean and peak of the total load for each local calendar day the run touches."""

    days: np.ndarray  # datetime64[D], local dates
    mean_kw: np.ndarray
    peak_kw: np.ndarray


def daily_stats(curve: LoadCurve, timezone: str) -> DailyStats:
    """Per local day: mean and maximum of the total kW over the intervals starting that day."""
    calendar = Calendar(curve.start, timezone)
    day = calendar.days_of(interval_starts_s(curve))
    if day.size == 0:
        empty = np.zeros(0)
        return DailyStats(np.zeros(0, dtype="datetime64[D]"), empty, empty)
    unique, inverse = np.unique(day, return_inverse=True)
    total = curve.total_kw
    counts = np.bincount(inverse)
    mean = np.bincount(inverse, weights=total) / counts
    peak = np.full(unique.size, -np.inf)
    np.maximum.at(peak, inverse, total)
    dates = np.array([calendar.local_date(int(d)) for d in unique], dtype="datetime64[D]")
    return DailyStats(dates, mean, peak)
