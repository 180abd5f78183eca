"""OCPP smart charging: charging profiles, their storage rules, and the composite limit/schedule.

Implements OCPP 1.6 §3.13 / 2.0.1 K01-K08 semantics on one simulated time axis (seconds). Pure
data and functions: no I/O, no SimPy, no ocpp imports (protocol adapters convert payloads).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum

from models.physics import ChargingLimit

SECONDS_PER_DAY = 86400.0
SECONDS_PER_WEEK = 7 * SECONDS_PER_DAY


class ChargingRateUnit(StrEnum):
    """Unit of a schedule's limits: total power (W) or current per phase (A)."""

    W = "W"
    A = "A"


class ChargingProfilePurpose(StrEnum):
    """What a profile limits. 1.6 ChargePointMaxProfile and 2.0.1 ChargingStationMaxProfile are
    the same thing here: the station-wide cap."""

    STATION_MAX = "ChargingStationMaxProfile"
    TX_DEFAULT = "TxDefaultProfile"
    TX = "TxProfile"

    @classmethod
    def parse(cls, name: str) -> ChargingProfilePurpose:
        """The purpose for an OCPP 1.6 or 2.0.1 purpose name."""
        if name == "ChargePointMaxProfile":
            return cls.STATION_MAX
        return cls(name)


class ChargingProfileKind(StrEnum):
    """How a schedule is anchored in time."""

    ABSOLUTE = "Absolute"
    RECURRING = "Recurring"
    RELATIVE = "Relative"


class RecurrencyKind(StrEnum):
    """Repetition period of a recurring profile."""

    DAILY = "Daily"
    WEEKLY = "Weekly"

    @property
    def period_s(self) -> float:
        return SECONDS_PER_DAY if self is RecurrencyKind.DAILY else SECONDS_PER_WEEK


@dataclass(frozen=True, slots=True)
class SchedulePeriod:
    """One step of a schedule: `limit` from `start_s` seconds after the schedule start."""

    start_s: float
    limit: float
    number_phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingSchedule:
    """A piecewise-constant limit. `start_s` is the absolute start (Absolute/Recurring kinds);
    without `duration_s` the last period runs on indefinitely."""

    unit: ChargingRateUnit
    periods: tuple[SchedulePeriod, ...]
    duration_s: float | None = None
    start_s: float | None = None
    min_charging_rate: float | None = None
    _starts: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.periods:
            raise ValueError("a charging schedule needs at least one period")
        if self.periods[0].start_s != 0:
            raise ValueError("the first schedule period must start at 0")
        starts = tuple(p.start_s for p in self.periods)
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError("schedule period starts must be strictly increasing")
        for p in self.periods:
            if not p.limit >= 0:
                raise ValueError(f"schedule limit must be >= 0, got {p.limit}")
            if p.number_phases not in (None, 1, 2, 3):
                raise ValueError(f"number_phases must be 1, 2 or 3, got {p.number_phases}")
        if self.duration_s is not None and not self.duration_s >= 0:
            raise ValueError("schedule duration must be >= 0")
        object.__setattr__(self, "_starts", starts)

    def period_at(self, offset_s: float) -> SchedulePeriod:
        """The period in force `offset_s` (>= 0) seconds into the schedule."""
        return self.periods[bisect.bisect_right(self._starts, offset_s) - 1]


@dataclass(frozen=True, slots=True)
class ChargingProfile:
    """A SetChargingProfile payload in simulator terms. `evse_id` 0 means the whole station.

    Absolute schedules without `schedule.start_s` run from the transaction start (1.6: "if
    absent the schedule will be relative to start of charging"); Recurring ones need a start.
    """

    profile_id: int
    stack_level: int
    purpose: ChargingProfilePurpose
    kind: ChargingProfileKind
    schedule: ChargingSchedule
    recurrency: RecurrencyKind | None = None
    valid_from_s: float | None = None
    valid_to_s: float | None = None
    transaction_id: str | None = None
    evse_id: int = 0

    def __post_init__(self) -> None:
        if self.stack_level < 0:
            raise ValueError("stack level must be >= 0")
        if self.evse_id < 0:
            raise ValueError("evse id must be >= 0")
        if (self.kind is ChargingProfileKind.RECURRING) != (self.recurrency is not None):
            raise ValueError("recurrency is required for, and only for, Recurring profiles")
        if self.kind is ChargingProfileKind.RECURRING and self.schedule.start_s is None:
            raise ValueError("a Recurring profile needs schedule.start_s")
        if self.kind is ChargingProfileKind.RELATIVE and self.schedule.start_s is not None:
            raise ValueError("a Relative profile must not have schedule.start_s")
        if self.transaction_id is not None and self.purpose is not ChargingProfilePurpose.TX:
            raise ValueError("only a TxProfile carries a transaction id")
        if (
            self.valid_from_s is not None
            and self.valid_to_s is not None
            and self.valid_to_s < self.valid_from_s
        ):
            raise ValueError("valid_to_s is before valid_from_s")


@dataclass(frozen=True, slots=True)
class Limit:
    """A composite limit: `value` in `unit` (W total, or A per phase), at most `phases` phases."""

    value: float
    unit: ChargingRateUnit
    phases: int | None = None

    def watts(self, voltage_v: float, default_phases: int = 3) -> float:
        """Total power this limit allows (A limits over `phases`, else `default_phases`)."""
        if self.unit is ChargingRateUnit.W:
            return self.value
        return self.value * voltage_v * (self.phases or default_phases)


def to_charging_limit(limit: Limit | None) -> ChargingLimit | None:
    """The physics layer's form of a composite limit (None stays None: no limit)."""
    if limit is None:
        return None
    if limit.unit is ChargingRateUnit.W:
        return ChargingLimit(limit.value, "W", limit.phases)
    return ChargingLimit(limit.value, "A", limit.phases)


class ProfileStore:
    """The charging profiles installed on one station, with the SetChargingProfile /
    ClearChargingProfile rules. Mutable; everything else in this module is pure."""

    def __init__(self, max_stack_level: int | None = None, max_profiles: int | None = None):
        self.max_stack_level = max_stack_level
        self.max_profiles = max_profiles
        self._profiles: dict[int, ChargingProfile] = {}

    def __len__(self) -> int:
        return len(self._profiles)

    def set(
        self, profile: ChargingProfile, active_tx: str | None = None, keep_disjoint: bool = False
    ) -> bool:
        """Install a profile (SetChargingProfile); False means Rejected.

        `active_tx` is the transaction running on `profile.evse_id`, if any. A TxProfile needs
        one (and must name it, if it names a transaction); a TxProfile without a transaction id
        is bound to it. Station-max profiles belong on evse 0, TxProfiles on a real evse. A
        profile replaces one with the same id, and one with the same stack level and purpose
        on the same evse (1.6 §3.13.2). With `keep_disjoint` (2.0.1, K01.FR.05/39) the latter
        is replaced only where their validity periods overlap: disjoint ones coexist.
        """
        purpose = profile.purpose
        if purpose is ChargingProfilePurpose.STATION_MAX and profile.evse_id != 0:
            return False
        if self.max_stack_level is not None and profile.stack_level > self.max_stack_level:
            return False
        if purpose is ChargingProfilePurpose.TX:
            if profile.evse_id == 0 or active_tx is None:
                return False
            if profile.transaction_id is None:
                profile = dataclasses.replace(profile, transaction_id=active_tx)
            elif profile.transaction_id != active_tx:
                return False
        replaced = [
            pid
            for pid, p in self._profiles.items()
            if pid == profile.profile_id
            or (
                p.evse_id == profile.evse_id
                and p.purpose is purpose
                and p.stack_level == profile.stack_level
                and (not keep_disjoint or validity_overlaps(p, profile))
            )
        ]
        if (
            self.max_profiles is not None
            and len(self._profiles) - len(replaced) >= self.max_profiles
        ):
            return False
        for pid in replaced:
            del self._profiles[pid]
        self._profiles[profile.profile_id] = profile
        return True

    def clear(
        self,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """ClearChargingProfile: remove by id if given (other criteria then ignored), else every
        profile matching all given criteria (none given: all). Returns how many were removed;
        0 is the protocol's "Unknown"."""
        if profile_id is not None:
            return 1 if self._profiles.pop(profile_id, None) is not None else 0
        doomed = [p.profile_id for p in self.profiles(evse_id, purpose, stack_level)]
        for pid in doomed:
            del self._profiles[pid]
        return len(doomed)

    def profiles(
        self,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> tuple[ChargingProfile, ...]:
        """Installed profiles matching the given criteria, ordered by evse, stack level, id."""
        found = [
            p
            for p in self._profiles.values()
            if (evse_id is None or p.evse_id == evse_id)
            and (purpose is None or p.purpose is purpose)
            and (stack_level is None or p.stack_level == stack_level)
        ]
        return tuple(sorted(found, key=lambda p: (p.evse_id, p.stack_level, p.profile_id)))

    def end_transaction(self, evse_id: int) -> int:
        """Drop the evse's TxProfiles: they end with their transaction. Returns how many."""
        return self.clear(evse_id=evse_id, purpose=ChargingProfilePurpose.TX)


def validity_overlaps(a: ChargingProfile, b: ChargingProfile) -> bool:
    """Whether the validity periods [valid_from, valid_to) of two profiles share an instant
    (an open end reaches to infinity)."""
    a0 = -math.inf if a.valid_from_s is None else a.valid_from_s
    a1 = math.inf if a.valid_to_s is None else a.valid_to_s
    b0 = -math.inf if b.valid_from_s is None else b.valid_from_s
    b1 = math.inf if b.valid_to_s is None else b.valid_to_s
    return a0 < b1 and b0 < a1


# --- composite limit ------------------------------------------------------------------------


def _offset(p: ChargingProfile, t: float, tx_start_s: float | None) -> float | None:
    """Seconds into p's schedule at time t, or None where p does not apply at t."""
    if p.valid_from_s is not None and t < p.valid_from_s:
        return None
    if p.valid_to_s is not None and t >= p.valid_to_s:
        return None
    schedule = p.schedule
    if p.kind is ChargingProfileKind.RECURRING:
        assert schedule.start_s is not None and p.recurrency is not None
        if t < schedule.start_s:
            return None
        offset = (t - schedule.start_s) % p.recurrency.period_s
    else:
        anchor = tx_start_s if schedule.start_s is None else schedule.start_s
        if anchor is None:
            # Relative (or start-less Absolute) schedules only run during a transaction.
            return None
        offset = t - anchor
        if offset < 0:
            return None
    if schedule.duration_s is not None and offset >= schedule.duration_s:
        return None
    return offset


@dataclass(frozen=True, slots=True)
class _Stacks:
    """The profiles relevant to one evse, grouped by how they combine, highest stack first."""

    station: tuple[ChargingProfile, ...]
    tx: tuple[ChargingProfile, ...]
    default_evse: tuple[ChargingProfile, ...]
    default_station: tuple[ChargingProfile, ...]

    def all(self) -> Iterator[ChargingProfile]:
        yield from self.station
        yield from self.tx
        yield from self.default_evse
        yield from self.default_station


def _stacks(
    profiles: Iterable[ChargingProfile],
    evse_id: int,
    tx_start_s: float | None,
    tx_id: str | None,
) -> _Stacks:
    station: list[ChargingProfile] = []
    tx: list[ChargingProfile] = []
    default_evse: list[ChargingProfile] = []
    default_station: list[ChargingProfile] = []
    for p in profiles:
        if p.purpose is ChargingProfilePurpose.STATION_MAX:
            if p.evse_id == 0:
                station.append(p)
        elif evse_id == 0:
            # Evse 0 is the grid connection: only the station-wide cap describes it.
            continue
        elif p.purpose is ChargingProfilePurpose.TX:
            running = tx_start_s is not None
            mine = tx_id is None or p.transaction_id in (None, tx_id)
            if p.evse_id == evse_id and running and mine:
                tx.append(p)
        elif p.evse_id == evse_id:
            default_evse.append(p)
        elif p.evse_id == 0:
            default_station.append(p)

    def order(ps: list[ChargingProfile]) -> tuple[ChargingProfile, ...]:
        return tuple(sorted(ps, key=lambda p: (p.stack_level, p.profile_id), reverse=True))

    return _Stacks(order(station), order(tx), order(default_evse), order(default_station))


def _top(
    stack: tuple[ChargingProfile, ...], t: float, tx_start_s: float | None
) -> tuple[ChargingRateUnit, SchedulePeriod] | None:
    """The period of the highest-stack profile that applies at t (lower ones fill its gaps)."""
    for p in stack:
        offset = _offset(p, t, tx_start_s)
        if offset is not None:
            return p.schedule.unit, p.schedule.period_at(offset)
    return None


_State = tuple[
    tuple[ChargingRateUnit, SchedulePeriod] | None, tuple[ChargingRateUnit, SchedulePeriod] | None
]


def _state(stacks: _Stacks, t: float, tx_start_s: float | None) -> _State:
    """(station-max period, Tx-or-TxDefault period) in force at t."""
    station = _top(stacks.station, t, tx_start_s)
    # TxProfile over TxDefault; an evse's own TxDefault over the station-wide one. Each falls
    # back to the next wherever it has no applicable profile.
    tx = (
        _top(stacks.tx, t, tx_start_s)
        or _top(stacks.default_evse, t, tx_start_s)
        or _top(stacks.default_station, t, tx_start_s)
    )
    return station, tx


def _combine(
    state: _State, voltage_v: float, default_phases: int, evse_max: ChargingLimit | None
) -> Limit | None:
    components = [
        Limit(item[1].limit, item[0], item[1].number_phases) for item in state if item is not None
    ]
    if evse_max is not None:
        unit = ChargingRateUnit.W if evse_max.unit == "W" else ChargingRateUnit.A
        components.append(Limit(evse_max.value, unit, evse_max.phases))
    if not components:
        return None
    # The EV can use no more phases than any limit allows, so every amp limit is converted
    # (and the result reported) at that phase count.
    allowed = [c.phases for c in components if c.phases is not None]
    phases = min(allowed) if allowed else None
    best: Limit | None = None
    best_w = math.inf
    for c in components:
        w = Limit(c.value, c.unit, phases).watts(voltage_v, default_phases)
        if best is None or w < best_w:
            best, best_w = c, w
    assert best is not None
    return Limit(best.value, best.unit, phases)


def limit_at(
    t: float,
    evse_id: int,
    profiles: Iterable[ChargingProfile],
    tx_start_s: float | None,
    voltage_v: float,
    default_phases: int = 3,
    *,
    tx_id: str | None = None,
    evse_max: ChargingLimit | None = None,
) -> Limit | None:
    """The composite limit in force on an evse at time t; None means unlimited.

    Per purpose the highest-stack applicable profile wins; TxProfile (only while a transaction
    runs, `tx_start_s` set; only `tx_id`'s if given) overrides TxDefault; the result is the
    lower, in watts, of that and the station max (and `evse_max`). Evse 0 reports the station
    max alone.
    """
    stacks = _stacks(profiles, evse_id, tx_start_s, tx_id)
    return _combine(_state(stacks, t, tx_start_s), voltage_v, default_phases, evse_max)


# --- breakpoints ----------------------------------------------------------------------------


def _profile_breakpoints(
    p: ChargingProfile, lo: float, hi: float, tx_start_s: float | None
) -> Iterator[float]:
    """Times in [lo, hi] at which p may start or stop applying or change period."""
    schedule = p.schedule
    for bound in (p.valid_from_s, p.valid_to_s):
        if bound is not None:
            yield bound
    starts = [period.start_s for period in schedule.periods]
    if schedule.duration_s is not None:
        starts = [s for s in starts if s < schedule.duration_s]
        starts.append(schedule.duration_s)
    if p.kind is ChargingProfileKind.RECURRING:
        assert schedule.start_s is not None and p.recurrency is not None
        period = p.recurrency.period_s
        starts = [s for s in starts if s < period]
        first = max(0, math.floor((lo - schedule.start_s) / period) - 1)
        last = math.floor((hi - schedule.start_s) / period) + 1
        for n in range(first, last + 1):
            base = schedule.start_s + n * period
            for s in starts:
                yield base + s
        return
    anchor = tx_start_s if schedule.start_s is None else schedule.start_s
    if anchor is not None:
        for s in starts:
            yield anchor + s


def _breakpoints(stacks: _Stacks, lo: float, hi: float, tx_start_s: float | None) -> list[float]:
    """Sorted distinct times in (lo, hi) where the composite may change."""
    points = {
        b for p in stacks.all() for b in _profile_breakpoints(p, lo, hi, tx_start_s) if lo < b < hi
    }
    return sorted(points)


def _horizon(stacks: _Stacks, tx_start_s: float | None) -> tuple[float, float]:
    """(B, P): past B every profile is periodic with a period dividing P (0: constant)."""
    last = -math.inf
    period = 0.0
    for p in stacks.all():
        if p.kind is ChargingProfileKind.RECURRING:
            assert p.recurrency is not None
            period = max(period, p.recurrency.period_s)
        for b in _profile_breakpoints(p, 0.0, 0.0, tx_start_s):
            if p.kind is not ChargingProfileKind.RECURRING:
                last = max(last, b)
        for bound in (p.valid_from_s, p.valid_to_s, p.schedule.start_s):
            if bound is not None:
                last = max(last, bound)
    return last, period


def _segments(
    stacks: _Stacks, lo: float, hi: float, tx_start_s: float | None
) -> list[tuple[float, float, _State]]:
    """[lo, hi) cut at every breakpoint, each piece with its (constant) state."""
    cuts = [lo, *_breakpoints(stacks, lo, hi, tx_start_s), hi]
    # Probe mid-piece: robust to rounding in anchor + start_s at the piece's edges.
    return [
        (a, b, _state(stacks, a + (b - a) / 2, tx_start_s)) for a, b in itertools.pairwise(cuts)
    ]


def composite_schedule(
    start_s: float,
    duration_s: float,
    evse_id: int,
    profiles: Iterable[ChargingProfile],
    tx_start_s: float | None,
    unit: ChargingRateUnit,
    voltage_v: float,
    default_phases: int = 3,
    evse_max: ChargingLimit | None = None,
    *,
    tx_id: str | None = None,
) -> ChargingSchedule:
    """GetCompositeSchedule: the limit over [start_s, start_s + duration_s) as a schedule.

    Periods start relative to `start_s`, adjacent equal periods are merged, limits are in
    `unit` (A <-> W at `voltage_v` over the period's phases, else `default_phases`). Stretches
    with no limit at all carry `math.inf`; pass `evse_max` to cap them at the EVSE's rating.
    """
    if not duration_s > 0:
        raise ValueError("duration must be > 0")
    stacks = _stacks(profiles, evse_id, tx_start_s, tx_id)
    periods: list[SchedulePeriod] = []
    for a, _b, state in _segments(stacks, start_s, start_s + duration_s, tx_start_s):
        limit = _combine(state, voltage_v, default_phases, evse_max)
        if limit is None:
            period = SchedulePeriod(a - start_s, math.inf)
        elif limit.unit is unit:
            period = SchedulePeriod(a - start_s, limit.value, limit.phases)
        else:
            watts = limit.watts(voltage_v, default_phases)
            value = (
                watts
                if unit is ChargingRateUnit.W
                else (watts / (voltage_v * (limit.phases or default_phases)))
            )
            period = SchedulePeriod(a - start_s, value, limit.phases)
        last = periods[-1] if periods else None
        if last is None or (last.limit, last.number_phases) != (period.limit, period.number_phases):
            periods.append(period)
    return ChargingSchedule(unit, tuple(periods), duration_s=duration_s, start_s=start_s)


def next_change_s(
    t: float,
    evse_id: int,
    profiles: Iterable[ChargingProfile],
    tx_start_s: float | None,
    *,
    tx_id: str | None = None,
) -> float | None:
    """The first time after t at which the profile in force for some purpose changes, i.e. the
    composite limit may change (it is constant on [t, result)); None if it never does."""
    stacks = _stacks(profiles, evse_id, tx_start_s, tx_id)
    current = _state(stacks, t, tx_start_s)
    last, period = _horizon(stacks, tx_start_s)
    # Past `last` the state repeats every `period`: one full period without change means never.
    hi = max(t, last) + period
    cuts = _breakpoints(stacks, t, hi + period + 1.0, tx_start_s)
    for i, c in enumerate(cuts):
        if c > hi:
            break
        probe = (c + cuts[i + 1]) / 2 if i + 1 < len(cuts) else c + 1.0
        if _state(stacks, probe, tx_start_s) != current:
            return c
    return None
