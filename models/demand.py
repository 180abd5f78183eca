"""Lazy, seeded streams of `EvDemand` (when an EV comes, what it wants, how long it stays) for
one charger, drawn a block of local days at a time with numpy. Pure: no SimPy, no clock, no I/O;
it plans visits only, what actually happens to each EV is the station's business.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from models.archetypes import (
    DemandParams,
    DepotParams,
    MixtureComponent,
    NormalHours,
    UniformHours,
)
from models.calendar import Calendar
from models.distributions import QuantileDistribution, correlated_normals
from models.profiles import HourlyProfile
from models.rng import ChargerStreams, site_seed
from models.vehicles import DEPOT_VEHICLES, Vehicle, VehicleMix

SECONDS_PER_HOUR = 3600.0
# Clamps on the quantile tails: below 0.5 kWh or 5 minutes a session is noise in the sources,
# above 250 kWh / 72 h the lognormal extrapolation has left anything the data supports. The
# battery cap (energy <= (target - min SoC) × capacity) is usually the tighter upper bound.
ENERGY_BOUNDS_KWH = (0.5, 250.0)
CONNECTION_BOUNDS_H = (5.0 / 60.0, 72.0)
MIN_STAY_H = 0.25  # truncation point of mixture stays
# Depot vehicles are plugged in for at least this long before their next departure.
MIN_DEPOT_DWELL_S = 900.0
# Sessions are drawn this many at a time, independent of the arrival blocks: it amortises numpy
# call overhead over enough EVs while keeping a charger's buffer to a few kB.
_SESSION_CHUNK = 64
# Blocks with at most this many arrivals are mapped to times in plain Python, larger ones with
# numpy: below it numpy's fixed cost per call outweighs its per-element speed. Both paths do the
# same float operations in the same order, so the results do not depend on which one ran.
_SMALL_BLOCK = 24
# Mixture component probabilities are tabulated per minute of the local day (evaluated at the
# minute's midpoint): the start-hour spreads are >= 45 min, so the rounding is immaterial.
_MIXTURE_CELLS_PER_HOUR = 60
# Depot departures are drawn this many days ahead of the block being built, enough to find the
# next operating day after any day of the block (Friday -> Monday is 3 days).
_DEPOT_LOOKAHEAD_DAYS = 8


@dataclass(slots=True)
class EvDemand:
    """One EV's visit to a charger as the demand model plans it (the station plays it out).

    `dwell_s` is the planned connection time counted from plug-in. With `leave_when_charged`
    the driver instead unplugs `handling_s` after charging ends, or at `dwell_s`, whichever
    comes first. `patience_s` is how long the EV waits for a free connector before giving up.
    `energy_wanted_kwh` == (soc_target - soc_arrival) × vehicle.battery_kwh.
    """

    arrival_s: float
    vehicle: Vehicle
    vehicle_index: int
    soc_arrival: float
    soc_target: float
    energy_wanted_kwh: float
    dwell_s: float
    leave_when_charged: bool
    handling_s: float
    ac_taper_soc: float
    patience_s: float
    id_tag: str


class SiteDayFactors:
    """Per-day multipliers of a site's arrival rate, ~ Gamma(k, 1/k) (mean 1, variance 1/k).

    Shared by all chargers of a site, so busy and quiet days hit the whole site together and
    one charger's day count is negative binomial. Deterministic per (seed, site, day) whatever
    the call order: days are drawn in blocks, each block from its own seed.
    """

    __slots__ = ("_blocks", "k", "seed", "site")
    _BLOCK_DAYS = 64

    def __init__(self, seed: int, site: str, k: float) -> None:
        if not k > 0 or not math.isfinite(k):
            raise ValueError(f"overdispersion k must be a positive number, got {k}")
        self.seed = seed
        self.site = site
        self.k = float(k)
        self._blocks: dict[int, list[float]] = {}

    def __call__(self, day: int) -> float:
        block, offset = divmod(day, self._BLOCK_DAYS)
        values = self._blocks.get(block)
        if values is None:
            # Spawn keys must be non-negative: interleave negative blocks with positive ones.
            key = 2 * block if block >= 0 else -2 * block - 1
            rng = np.random.default_rng(site_seed(self.seed, self.site, "day_factor", key))
            values = rng.gamma(self.k, 1.0 / self.k, self._BLOCK_DAYS).tolist()
            self._blocks[block] = values
        return values[offset]


@dataclass(frozen=True, eq=False)
class _StochasticModel:
    """Everything derived once from a DemandParams, shared by every charger using it.

    Compared and hashed by identity: it is a cache key for the block tables below.
    """

    weekday: HourlyProfile
    weekend: HourlyProfile
    rate: float
    weekend_factor: float
    energy: QuantileDistribution
    connection: QuantileDistribution
    # Mixture (empty arrays when the params have none): per component the stay mean and sd, and
    # per minute of the local day the cumulative probability of choosing each component.
    mix_stay_mean: np.ndarray
    mix_stay_sd: np.ndarray
    mix_cum: np.ndarray
    mix_cum_rows: list[list[float]]

    @property
    def n_components(self) -> int:
        return self.mix_stay_mean.size


def _mixture_table(comps: tuple[MixtureComponent, ...]) -> np.ndarray:
    """(cells, components) cumulative probability of each component by local arrival time."""
    if not comps:
        return np.zeros((0, 0))
    hours = (np.arange(24 * _MIXTURE_CELLS_PER_HOUR) + 0.5) / _MIXTURE_CELLS_PER_HOUR
    mean = np.array([c.start_hour_mean for c in comps])
    sd = np.array([c.start_hour_sd for c in comps])
    # weight × normal pdf, in logs; log(sd) because the pdf's normaliser differs by component.
    z = (hours[:, None] - mean) / sd
    logit = np.log([c.weight for c in comps]) - np.log(sd) - 0.5 * z * z
    # Subtracting the row maximum keeps exp() finite far from every component's centre.
    w = np.exp(logit - logit.max(axis=1, keepdims=True))
    cum = np.cumsum(w, axis=1) / w.sum(axis=1, keepdims=True)
    cum[:, -1] = 1.0
    return cum


@lru_cache(maxsize=64)
def _compile(params: DemandParams) -> _StochasticModel:
    comps = params.connection_mixture or ()
    mix_cum = _mixture_table(comps)
    return _StochasticModel(
        weekday=HourlyProfile(params.weekday_shares),
        weekend=HourlyProfile(params.weekend_shares),
        rate=params.sessions_per_charger_day,
        weekend_factor=params.weekend_factor,
        energy=QuantileDistribution(
            params.energy_kwh, *_widen(params.energy_kwh, ENERGY_BOUNDS_KWH)
        ),
        connection=QuantileDistribution(
            params.connection_h, *_widen(params.connection_h, CONNECTION_BOUNDS_H)
        ),
        mix_stay_mean=np.array([c.stay_h_mean for c in comps]),
        mix_stay_sd=np.array([c.stay_h_sd for c in comps]),
        mix_cum=mix_cum,
        mix_cum_rows=mix_cum.tolist(),
    )


def _widen(
    points: tuple[tuple[float, float], ...], bounds: tuple[float, float]
) -> tuple[float, float]:
    # A scenario may publish quantiles outside the default clamps; never clip its own data.
    values = [v for _, v in points]
    return min(bounds[0], min(values)), max(bounds[1], max(values))


# The caches below are shared by all chargers with the same calendar (and params, day factor):
# chargers walk through the same blocks at about the same simulated time, so each block's tables
# are built once per site, not once per charger. Keys hold objects compared by identity, so
# sites that share one Calendar object share entries. The size bounds memory (a 7-day table is
# ~20 kB) and is ample while fewer than ~1000 distinct sites are in flight; beyond that entries
# are rebuilt, which costs time, never correctness.
@lru_cache(maxsize=1024)
def _days(calendar: Calendar, d0: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hour boundaries (n, 25) and weekend flags (n,) of local days d0 .. d0+n-1."""
    days = range(d0, d0 + n)
    hs = np.stack([calendar.hour_starts_s(d) for d in days])
    weekend = np.fromiter((calendar.is_weekend(d) for d in days), dtype=bool, count=n)
    return hs, weekend


@dataclass(frozen=True, eq=False)
class _ArrivalTable:
    """Inverse CDF of the arrival time within one block, over flat (day, hour) bins.

    An arrival with uniform u falls in bin i = searchsorted(cum, u, "right") at time
    base[i] + u * scale[i]; `lo` and `inv_p` give its position within the hour.
    """

    expected: float  # mean number of arrivals in the block
    weights: np.ndarray  # (days, 24) expected arrivals per bin
    hs: np.ndarray
    cum: np.ndarray
    lo: np.ndarray
    inv_p: np.ndarray
    base: np.ndarray
    scale: np.ndarray

    @classmethod
    def build(cls, weights: np.ndarray, hs: np.ndarray) -> _ArrivalTable:
        w = weights.ravel()
        expected = float(w.sum())
        if expected <= 0.0:
            empty = np.zeros(0)
            return cls(0.0, weights, hs, empty, empty, empty, empty, empty)
        p = w / expected
        cum = np.cumsum(p)
        # Exactly 1 from the last non-empty bin on: a draw must never land in a trailing
        # empty bin because rounding left the total a hair below 1.
        cum[int(np.flatnonzero(w)[-1]) :] = 1.0
        lo = np.concatenate(([0.0], cum[:-1]))
        inv_p = np.divide(1.0, p, out=np.zeros_like(p), where=p > 0.0)
        starts = hs[:, :24].ravel()
        scale = (hs[:, 1:] - hs[:, :24]).ravel() * inv_p
        return cls(expected, weights, hs, cum, lo, inv_p, starts - lo * scale, scale)

    @cached_property
    def lists(self) -> tuple[list[float], list[float], list[float], list[float], list[float]]:
        """cum, lo, inv_p, base, scale as Python lists, for the small-block path."""
        return (
            self.cum.tolist(),
            self.lo.tolist(),
            self.inv_p.tolist(),
            self.base.tolist(),
            self.scale.tolist(),
        )


@lru_cache(maxsize=1024)
def _arrival_table(
    calendar: Calendar,
    model: _StochasticModel,
    day_factor: Callable[[int], float] | None,
    d0: int,
    n: int,
) -> _ArrivalTable:
    hs, weekend = _days(calendar, d0, n)
    rates = np.where(weekend, model.rate * model.weekend_factor, model.rate)
    if day_factor is not None:
        rates = rates * np.array([day_factor(d) for d in range(d0, d0 + n)])
    shares = np.where(weekend[:, None], model.weekend.probabilities, model.weekday.probabilities)
    # Splitting one Poisson count over the block's (day, hour) bins by these weights is the
    # same as independent Poisson counts per day, each spread by its hourly profile.
    return _ArrivalTable.build(rates[:, None] * shares, hs)


class DemandStream:
    """The endless, time-ordered sequence of EVs that come to one charger.

    Iterating yields `EvDemand` in non-decreasing `arrival_s` (all >= 0), drawing `block_days`
    local days at a time, without end (a site whose rate is zero yields nothing and stops).
    Arrival times come from `streams.arrivals`, what each EV wants from `streams.sessions`;
    `streams.misc` is left to the caller. The sequence is a deterministic function of the
    streams' seeds, the params, the calendar and `block_days`. Larger blocks cost less per EV
    (numpy's fixed cost per call is spread over more EVs) and hold more EVs in memory.

    For stochastic params, `day_factor(day)` multiplies each day's rate (pass one
    `SiteDayFactors` per site to share busy days across its chargers). If the params set
    `overdispersion_k` but no `day_factor` is given, a per-charger Gamma(k, 1/k) factor is drawn
    instead: the same negative-binomial day counts, but not synchronised across the site.
    For depot params `mix` is ignored: the vehicle is `DEPOT_VEHICLES[params.vehicle]`.
    """

    def __init__(
        self,
        params: DemandParams | DepotParams,
        calendar: Calendar,
        streams: ChargerStreams,
        mix: VehicleMix,
        day_factor: Callable[[int], float] | None = None,
        block_days: int = 7,
    ) -> None:
        if block_days < 1:
            raise ValueError(f"block_days must be at least 1, got {block_days}")
        self.params = params
        self.calendar = calendar
        self.streams = streams
        self.mix = mix
        self.day_factor = day_factor
        self.block_days = int(block_days)
        self._next_day = 0
        self._pending: list[EvDemand] = []
        self._pos = 0
        # A site with no demand at all ends at once rather than searching the future forever.
        self._empty = isinstance(params, DemandParams) and params.sessions_per_charger_day == 0
        if isinstance(params, DemandParams):
            self._model = _compile(params)
            self._vehicles = mix.vehicles
            self._battery = np.array([v.battery_kwh for v in mix.vehicles])
            self._chunk = np.empty((0, 0))
            self._chunk_vidx = np.empty(0, dtype=np.intp)
            self._chunk_tags = ""  # 16 hex digits per buffered session
            self._chunk_pos = 0
        else:
            self._depot_vehicle = DEPOT_VEHICLES[params.vehicle]
            self._depot_tag = _hex_text(streams.sessions, 1)
            self._dep_first = 0  # local day of self._dep_h[0]
            self._dep_h: list[float] = []  # departure clock hours, drawn ahead of the blocks
            self._last_arrival = 0.0

    def __iter__(self) -> DemandStream:
        return self

    def __next__(self) -> EvDemand:
        while self._pos >= len(self._pending):
            if self._empty:
                raise StopIteration
            d0 = self._next_day
            self._next_day += self.block_days
            if isinstance(self.params, DemandParams):
                self._pending = self._stochastic_block(self.params, d0, self._next_day)
            else:
                self._pending = self._depot_block(self.params, d0, self._next_day)
            self._pos = 0
        ev = self._pending[self._pos]
        self._pos += 1
        return ev

    # -- one driver outside the stream -------------------------------------------------------

    def walk_in(self, t: float, rng: np.random.Generator) -> EvDemand:
        """One EV arriving at simulated time `t`, outside the stream: what it wants and how long
        it stays are drawn from the same session model as the stream's EVs, but from `rng`, so
        the stream's own draws are untouched (a remotely started driver who walks up).

        Depot params give the depot vehicle, wanting a day's kilometres and staying until its
        next departure.
        """
        if isinstance(self.params, DemandParams):
            return self._walk_in_session(self.params, t, rng)
        return self._walk_in_depot(self.params, t, rng)

    def _walk_in_session(self, p: DemandParams, t: float, rng: np.random.Generator) -> EvDemand:
        cols, vidx, tag = self._draw_sessions(p, 1, rng)
        m = self._model
        if m.n_components:
            # The component by local arrival time, as the stream chooses it (one-minute cells).
            cells = _MIXTURE_CELLS_PER_HOUR
            cell = min(int(self.calendar.local_hour(t) * cells), 24 * cells - 1)
            comp = bisect_right(m.mix_cum_rows[cell], float(cols[4, 0]))
            dwell = float(cols[5 + min(comp, m.n_components - 1), 0])
        else:
            dwell = float(cols[4, 0])
        vi = int(vidx[0])
        return EvDemand(
            t,
            self._vehicles[vi],
            vi,
            float(cols[0, 0]),
            float(cols[1, 0]),
            float(cols[2, 0]),
            dwell,
            p.departure == "when_charged",
            p.handling_min * 60.0,
            float(cols[3, 0]),
            p.patience_min * 60.0,
            tag,
        )

    def _walk_in_depot(self, p: DepotParams, t: float, rng: np.random.Generator) -> EvDemand:
        vehicle = self._depot_vehicle
        battery = vehicle.battery_kwh
        km = p.daily_km_mean + p.daily_km_sd * float(rng.standard_normal())
        energy = min(
            max(km, 0.05 * p.daily_km_mean) * p.consumption_kwh_per_km,
            (p.soc_target - p.min_soc_arrival) * battery,
        )
        soc_arr = max(p.soc_target - energy / battery, p.min_soc_arrival)
        # Stays until the next departure on an operating day at least the minimum dwell away.
        day = self.calendar.day_of(t)
        hs, operating, _ = _depot_window(
            self.calendar, day, _DEPOT_LOOKAHEAD_DAYS, p.operating_days
        )
        dep_h = _hours(p.departure_h, rng, _DEPOT_LOOKAHEAD_DAYS)
        leave = t + SECONDS_PER_HOUR * 24.0
        for i in range(_DEPOT_LOOKAHEAD_DAYS):
            dep = _clock(hs[i], dep_h[i])
            if operating[i] and dep >= t + MIN_DEPOT_DWELL_S:
                leave = dep
                break
        return EvDemand(
            t,
            vehicle,
            0,
            soc_arr,
            p.soc_target,
            (p.soc_target - soc_arr) * battery,
            leave - t,
            False,
            0.0,
            p.ac_taper_soc,
            p.patience_min * 60.0,
            _hex_text(rng, 1),
        )

    # -- stochastic (passenger-car) sites ----------------------------------------------------

    def _stochastic_block(self, p: DemandParams, d0: int, d1: int) -> list[EvDemand]:
        m = self._model
        arrivals = self.streams.arrivals
        table = _arrival_table(self.calendar, m, self.day_factor, d0, d1 - d0)
        if self.day_factor is None and p.overdispersion_k is not None:
            k = p.overdispersion_k
            factors = arrivals.gamma(k, 1.0 / k, d1 - d0)
            table = _ArrivalTable.build(table.weights * factors[:, None], table.hs)
        if table.expected <= 0.0:
            return []
        n = int(arrivals.poisson(table.expected))
        if n == 0:
            return []
        # Sorted uniforms through a monotone inverse CDF give sorted times without an argsort.
        u = arrivals.random(n)
        u.sort()
        if n <= _SMALL_BLOCK:
            t, dwell = self._map_small(p, table, u.tolist())
        else:
            t, dwell = self._map_large(p, table, u)
        n = len(t)
        if n == 0:
            return []
        start = self._chunk_pos - n
        soc_arr, soc_tgt, energy, taper = self._chunk[:4, start : start + n].tolist()
        vidx = self._chunk_vidx[start : start + n].tolist()
        text = self._chunk_tags
        tags = [text[k : k + 16] for k in range(16 * start, 16 * (start + n), 16)]
        vehicles = self._vehicles
        when_charged = p.departure == "when_charged"
        handling = p.handling_min * 60.0
        patience = p.patience_min * 60.0
        return [
            EvDemand(a, vehicles[vi], vi, sa, st, e, dw, when_charged, handling, tp, patience, tag)
            for a, vi, sa, st, e, dw, tp, tag in zip(
                t, vidx, soc_arr, soc_tgt, energy, dwell, taper, tags, strict=True
            )
        ]

    def _map_small(
        self, p: DemandParams, table: _ArrivalTable, u: list[float]
    ) -> tuple[list[float], list[float]]:
        """Arrival times (>= 0) and dwell seconds, in plain Python.

        Reserves the sessions it uses; mirrors `_map_large` operation for operation.
        """
        cum, lo, inv_p, base, scale = table.lists
        t: list[float] = []
        bins: list[int] = []
        prev = -math.inf
        for x in u:
            i = bisect_right(cum, x)
            ti = base[i] + x * scale[i]
            # Only absorbs rounding at bin edges (~1e-9 s), which could swap neighbours.
            if ti < prev:
                ti = prev
            prev = ti
            t.append(ti)
            bins.append(i)
        if t[0] < 0.0:  # day 0 starts at local midnight, before the simulation does
            first = bisect_left(t, 0.0)
            t, u, bins = t[first:], u[first:], bins[first:]
        n = len(t)
        if n == 0:
            return t, []
        start = self._reserve_sessions(p, n)
        m = self._model
        if not m.n_components:
            return t, self._chunk[4, start : start + n].tolist()
        rows = self._chunk[4:, start : start + n].tolist()
        choice = rows[0]
        cells = _MIXTURE_CELLS_PER_HOUR
        last_cell = 24 * cells - 1
        last_comp = m.n_components - 1
        cum_rows = m.mix_cum_rows
        dwell = []
        for j, i in enumerate(bins):
            frac = (u[j] - lo[i]) * inv_p[i]
            cell = int((i % 24 + (frac if frac < 1.0 else 1.0)) * cells)
            comp = bisect_right(cum_rows[cell if cell < last_cell else last_cell], choice[j])
            dwell.append(rows[1 + (comp if comp < last_comp else last_comp)][j])
        return t, dwell

    def _map_large(
        self, p: DemandParams, table: _ArrivalTable, u: np.ndarray
    ) -> tuple[list[float], list[float]]:
        """Arrival times (>= 0) and dwell seconds, vectorised with numpy."""
        idx = np.searchsorted(table.cum, u, side="right")
        t = table.base[idx] + u * table.scale[idx]
        # Only absorbs rounding at bin edges (~1e-9 s), which could swap neighbours.
        np.maximum.accumulate(t, out=t)
        if t[0] < 0.0:  # day 0 starts at local midnight, before the simulation does
            first = int(np.searchsorted(t, 0.0, side="left"))
            t, u, idx = t[first:], u[first:], idx[first:]
        n = t.size
        if n == 0:
            return [], []
        start = self._reserve_sessions(p, n)
        m = self._model
        if not m.n_components:
            dwell = self._chunk[4, start : start + n]
        else:
            hour = idx % 24 + np.minimum((u - table.lo[idx]) * table.inv_p[idx], 1.0)
            cells = np.minimum(
                (hour * _MIXTURE_CELLS_PER_HOUR).astype(np.intp),
                24 * _MIXTURE_CELLS_PER_HOUR - 1,
            )
            choice = self._chunk[4, start : start + n]
            comp = (choice[:, None] >= m.mix_cum[cells]).sum(axis=1)
            np.minimum(comp, m.n_components - 1, out=comp)
            dwell = self._chunk[5:, start : start + n][comp, np.arange(n)]
        return t.tolist(), dwell.tolist()

    def _reserve_sessions(self, p: DemandParams, n: int) -> int:
        """Column index of the next n buffered sessions, refilling the buffer if needed."""
        start = self._chunk_pos
        left = self._chunk_vidx.size - start
        if n > left:
            # Busy chargers refill for about two blocks at once, quiet ones for several.
            cols, vidx, tags = self._draw_sessions(p, max(_SESSION_CHUNK, 2 * n - left))
            if left:
                cols = np.concatenate([self._chunk[:, start:], cols], axis=1)
                vidx = np.concatenate([self._chunk_vidx[start:], vidx])
                tags = self._chunk_tags[16 * start :] + tags
            self._chunk, self._chunk_vidx, self._chunk_tags = cols, vidx, tags
            start = 0
        self._chunk_pos = start + n
        return start

    def _draw_sessions(
        self, p: DemandParams, n: int, rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray, str]:
        """n sessions: float rows, vehicle indices and their id tags (16 hex digits each).

        Rows: soc_arrival, soc_target, energy, taper, then either the connection time in
        seconds (no mixture), or the component-choice uniform followed by one stay in seconds
        per mixture component (chosen once the arrival hour is known). Drawn from `rng`, by
        default the sessions stream.
        """
        if rng is None:
            rng = self.streams.sessions
        m = self._model
        vidx = self.mix.indices(rng, n)
        battery = self._battery[vidx]
        z_energy, z_conn = correlated_normals(rng, n, p.energy_connection_correlation)
        soc_tgt = rng.uniform(p.soc_target_min, p.soc_target_max, n)
        taper = rng.uniform(p.ac_taper_soc_min, p.ac_taper_soc_max, n)
        energy = np.minimum(m.energy.from_z(z_energy), (soc_tgt - p.min_soc_arrival) * battery)
        # max() only absorbs rounding: the cap above already keeps the SoC at or above the floor.
        soc_arr = np.maximum(soc_tgt - energy / battery, p.min_soc_arrival)
        n_comp = m.n_components
        cols = np.empty((5 + n_comp, n))
        cols[0], cols[1], cols[3] = soc_arr, soc_tgt, taper
        cols[2] = (soc_tgt - soc_arr) * battery
        if n_comp == 0:
            cols[4] = m.connection.from_z(z_conn) * SECONDS_PER_HOUR
        else:
            cols[4] = rng.random(n)
            # Every component's stay shares the copula score, so whichever is chosen keeps the
            # energy/connection correlation; draws under the truncation point are redrawn.
            stays = m.mix_stay_mean[:, None] + m.mix_stay_sd[:, None] * z_conn[None, :]
            low = stays < MIN_STAY_H
            while low.any():
                rows, where = np.nonzero(low)
                fresh = rng.standard_normal(rows.size)
                stays[rows, where] = m.mix_stay_mean[rows] + m.mix_stay_sd[rows] * fresh
                low = stays < MIN_STAY_H
            cols[5:] = np.minimum(stays, CONNECTION_BOUNDS_H[1]) * SECONDS_PER_HOUR
        return cols, vidx, _hex_text(rng, n)

    # -- scheduled depot fleets ------------------------------------------------------------
    # One vehicle, one return a day: a handful of values per block, where plain Python over
    # lists beats numpy's per-call overhead.

    def _depot_block(self, p: DepotParams, d0: int, d1: int) -> list[EvDemand]:
        n_days = d1 - d0
        span = n_days + _DEPOT_LOOKAHEAD_DAYS
        hs, operating, next_op = _depot_window(self.calendar, d0, span, p.operating_days)
        arrivals = self.streams.arrivals

        # Departure clock hours are drawn once per day, as the lookahead first reaches the day.
        dep_h = self._dep_h[d0 - self._dep_first :]
        if len(dep_h) < span:
            dep_h += _hours(p.departure_h, arrivals, span - len(dep_h))
        self._dep_h, self._dep_first = dep_h, d0
        # Drawn for every day, used on operating days only, so that the draws do not depend on
        # the operating pattern.
        by_trip = p.trip_h is not None
        back_dist = p.trip_h if p.trip_h is not None else p.return_h
        if back_dist is None:  # DepotParams' validator makes this unreachable
            raise ValueError("depot params need trip_h or return_h")
        back = _hours(back_dist, arrivals, n_days)
        km_z = self.streams.sessions.standard_normal(n_days).tolist()

        vehicle = self._depot_vehicle
        battery = vehicle.battery_kwh
        target = p.soc_target
        floor = p.min_soc_arrival
        max_energy = (target - floor) * battery
        km_mean, km_sd, min_km = p.daily_km_mean, p.daily_km_sd, 0.05 * p.daily_km_mean
        per_km = p.consumption_kwh_per_km
        patience = p.patience_min * 60.0
        taper = p.ac_taper_soc
        tag = self._depot_tag
        last = self._last_arrival
        out: list[EvDemand] = []
        for i in range(n_days):
            j = next_op[i]
            if not operating[i] or j >= span:  # j >= span cannot happen with the lookahead
                continue
            dep = _clock(hs[i], dep_h[i])
            nxt = _clock(hs[j], dep_h[j]) - MIN_DEPOT_DWELL_S
            if by_trip:
                trip = back[i]
                ret = dep + (trip if trip > MIN_STAY_H else MIN_STAY_H) * SECONDS_PER_HOUR
            else:
                ret = _clock(hs[i], back[i])
                if ret <= dep:  # a return clock time before departure: out overnight
                    ret = _clock(hs[i + 1], back[i])
            # Back before the next departure (an overrunning trip is cut short), after its own,
            # and never before the previous arrival, whatever the schedule says.
            if ret > nxt:
                ret = nxt
            if ret < dep:
                ret = dep
            if ret < last:
                ret = last
            if ret < 0.0:
                continue
            km = km_mean + km_sd * km_z[i]
            energy = (km if km > min_km else min_km) * per_km
            if energy > max_energy:
                energy = max_energy
            soc_arr = target - energy / battery
            if soc_arr < floor:  # rounding only: energy is capped above
                soc_arr = floor
            dwell = nxt + MIN_DEPOT_DWELL_S - ret
            out.append(
                EvDemand(
                    ret,
                    vehicle,
                    0,
                    soc_arr,
                    target,
                    (target - soc_arr) * battery,
                    dwell if dwell > MIN_DEPOT_DWELL_S else MIN_DEPOT_DWELL_S,
                    False,
                    0.0,
                    taper,
                    patience,
                    tag,
                )
            )
            last = ret
        self._last_arrival = last
        return out


@lru_cache(maxsize=1024)
def _depot_window(
    calendar: Calendar, d0: int, n: int, operating_days: str
) -> tuple[list[list[float]], list[bool], list[int]]:
    """Hour boundaries, operating flags and the index of the next operating day (n if none
    in the window) of local days d0 .. d0+n-1, as Python lists for the depot's scalar loop."""
    hs, weekend = _days(calendar, d0, n)
    operating = [True] * n if operating_days == "all" else (~weekend).tolist()
    next_op = [n] * n
    following = n
    for i in range(n - 1, -1, -1):
        next_op[i] = following
        if operating[i]:
            following = i
    return hs.tolist(), operating, next_op


def _clock(hour_starts: list[float], hours: float) -> float:
    """Sim seconds of local clock time `hours` (0-24) on the day with these hour boundaries."""
    if hours < 0.0:
        hours = 0.0
    elif hours > 24.0:
        hours = 24.0
    h = int(hours)
    if h > 23:
        h = 23
    start = hour_starts[h]
    return start + (hours - h) * (hour_starts[h + 1] - start)


def _hours(dist: NormalHours | UniformHours, rng: np.random.Generator, n: int) -> list[float]:
    """n draws of a time in hours."""
    if isinstance(dist, UniformHours):
        return rng.uniform(dist.low_h, dist.high_h, n).tolist()
    # Clipped at 3 sd so that a schedule never produces a nonsense time of day.
    z = rng.standard_normal(n)
    np.clip(z, -3.0, 3.0, out=z)
    return (dist.mean_h + dist.sd_h * z).tolist()


def _hex_text(rng: np.random.Generator, n: int) -> str:
    """n id tags of 16 upper-case hex digits (64 random bits each), concatenated."""
    # The bit generator's raw words: an order of magnitude faster than Generator.bytes.
    return rng.bit_generator.random_raw(n).tobytes().hex().upper()
