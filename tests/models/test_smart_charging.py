"""Smart charging: profile storage rules, stacking, purposes, units, composite schedules."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.physics import ChargingLimit
from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    Limit,
    ProfileStore,
    RecurrencyKind,
    SchedulePeriod,
    composite_schedule,
    limit_at,
    next_change_s,
    to_charging_limit,
)

A = ChargingRateUnit.A
W = ChargingRateUnit.W
MAX = ChargingProfilePurpose.STATION_MAX
DEFAULT = ChargingProfilePurpose.TX_DEFAULT
TX = ChargingProfilePurpose.TX
ABSOLUTE = ChargingProfileKind.ABSOLUTE
RECURRING = ChargingProfileKind.RECURRING
RELATIVE = ChargingProfileKind.RELATIVE
DAY = 86400.0
HOUR = 3600.0
V = 230.0


def sched(
    unit: ChargingRateUnit,
    *periods: tuple[float, float] | tuple[float, float, int],
    duration: float | None = None,
    start: float | None = None,
) -> ChargingSchedule:
    return ChargingSchedule(
        unit, tuple(SchedulePeriod(*p) for p in periods), duration_s=duration, start_s=start
    )


def profile(
    pid: int,
    purpose: ChargingProfilePurpose,
    schedule: ChargingSchedule,
    *,
    stack: int = 0,
    kind: ChargingProfileKind = ABSOLUTE,
    evse: int = 0,
    **kw: object,
) -> ChargingProfile:
    return ChargingProfile(pid, stack, purpose, kind, schedule, evse_id=evse, **kw)  # type: ignore[arg-type]


def limits(schedule: ChargingSchedule) -> list[tuple[float, float]]:
    return [(p.start_s, p.limit) for p in schedule.periods]


def value(t: float, profiles: list[ChargingProfile], tx: float | None = None, evse=1) -> float:
    limit = limit_at(t, evse, profiles, tx, V)
    return math.inf if limit is None else limit.value


# --- hand-worked cases -------------------------------------------------------------------------


def test_higher_stack_level_falls_back_to_lower_after_its_duration() -> None:
    base = profile(1, DEFAULT, sched(A, (0, 16), start=0), evse=1)
    boost = profile(2, DEFAULT, sched(A, (0, 6), duration=1800, start=HOUR), stack=1, evse=1)
    ps = [base, boost]
    assert [value(t, ps) for t in (0, 3599, 3600, 5399, 5400, 9000)] == [16, 16, 6, 6, 16, 16]
    cs = composite_schedule(0, 2 * HOUR, 1, ps, None, A, V)
    assert limits(cs) == [(0, 16), (3600, 6), (5400, 16)]
    assert cs.duration_s == 2 * HOUR and cs.start_s == 0
    assert next_change_s(0, 1, ps, None) == 3600
    assert next_change_s(3600, 1, ps, None) == 5400
    assert next_change_s(5400, 1, ps, None) is None


def test_tx_profile_overrides_tx_default_only_during_its_transaction() -> None:
    default = profile(1, DEFAULT, sched(A, (0, 16), start=0), evse=0)
    tx = profile(2, TX, sched(A, (0, 10), duration=600), kind=RELATIVE, evse=1, transaction_id="t1")
    ps = [default, tx]
    assert value(50, ps, tx=None) == 16  # no transaction: TxProfile does not apply
    assert [value(t, ps, tx=100) for t in (99, 100, 699, 700)] == [16, 10, 10, 16]
    assert limit_at(300, 1, ps, 100, V, tx_id="other") == Limit(16, A)
    assert limits(composite_schedule(0, 1000, 1, ps, 100, A, V)) == [(0, 16), (100, 10), (700, 16)]


def test_evse_tx_default_overrides_station_wide_tx_default() -> None:
    station = profile(1, DEFAULT, sched(A, (0, 32), start=0), stack=5)
    own = profile(2, DEFAULT, sched(A, (0, 8), duration=100, start=50), evse=1)
    ps = [station, own]
    assert [value(t, ps) for t in (0, 50, 149, 150)] == [32, 8, 8, 32]
    assert value(60, ps, evse=2) == 32  # another evse only sees the station-wide default


def test_station_max_caps_every_evse() -> None:
    cap = profile(1, MAX, sched(W, (0, 11000), start=0))
    high = profile(2, DEFAULT, sched(A, (0, 32, 3), start=0), evse=1)
    low = profile(3, DEFAULT, sched(A, (0, 10, 3), start=0), evse=2)
    assert limit_at(0, 1, [cap, high], None, V) == Limit(11000, W, 3)
    assert limit_at(0, 2, [cap, low], None, V) == Limit(10, A, 3)  # 6900 W is under the cap
    cs = composite_schedule(0, 60, 1, [cap, high], None, A, V)
    assert limits(cs) == [(0, pytest.approx(11000 / (3 * V)))]
    # Evse 0 (the grid connection) reports the station cap alone.
    assert limit_at(0, 0, [cap, high], None, V) == Limit(11000, W)


def test_recurring_daily_profile_across_midnight() -> None:
    base = profile(1, DEFAULT, sched(A, (0, 32), start=0), evse=1)
    night = profile(
        2,
        DEFAULT,
        sched(A, (0, 6), (2 * HOUR, 10), duration=8 * HOUR, start=22 * HOUR),
        stack=1,
        kind=RECURRING,
        recurrency=RecurrencyKind.DAILY,
        evse=1,
    )
    ps = [base, night]
    day3 = 3 * DAY
    assert value(21 * HOUR, ps) == 32  # before the recurrence has begun
    assert value(day3 + 23 * HOUR, ps) == 6
    assert value(day3 + DAY + HOUR, ps) == 10  # after midnight, still the same occurrence
    assert value(day3 + DAY + 6 * HOUR - 1, ps) == 10
    assert value(day3 + DAY + 6 * HOUR, ps) == 32  # 22:00 + 8 h
    cs = composite_schedule(day3 + 20 * HOUR, 12 * HOUR, 1, ps, None, A, V)
    assert limits(cs) == [(0, 32), (2 * HOUR, 6), (4 * HOUR, 10), (10 * HOUR, 32)]
    assert next_change_s(day3 + 20 * HOUR, 1, ps, None) == day3 + 22 * HOUR
    assert next_change_s(day3 + DAY + 6 * HOUR, 1, ps, None) == day3 + DAY + 22 * HOUR


def test_recurring_weekly_profile() -> None:
    weekly = profile(
        1,
        DEFAULT,
        sched(A, (0, 0), (DAY, 16), start=0),
        kind=RECURRING,
        recurrency=RecurrencyKind.WEEKLY,
        evse=1,
    )
    assert [value(t, [weekly]) for t in (0, DAY, 7 * DAY - 1, 7 * DAY, 8 * DAY)] == [
        0,
        16,
        16,
        0,
        16,
    ]


def test_relative_profile_runs_from_the_transaction_start() -> None:
    rel = profile(1, DEFAULT, sched(A, (0, 32), (HOUR, 6)), kind=RELATIVE, evse=1)
    assert limit_at(500, 1, [rel], None, V) is None  # no transaction, no relative schedule
    assert [value(t, [rel], tx=1000) for t in (999, 1000, 4599, 4600, 1e6)] == [
        math.inf,
        32,
        32,
        6,
        6,
    ]
    assert next_change_s(1000, 1, [rel], 1000) == 4600


def test_validity_window_with_relative_schedule() -> None:
    # The profile is valid 12:00-20:00 only; only a transaction's first hour is at 32 A.
    rel = profile(
        1,
        DEFAULT,
        sched(A, (0, 32), (HOUR, 6)),
        kind=RELATIVE,
        evse=1,
        valid_from_s=12 * HOUR,
        valid_to_s=20 * HOUR,
    )
    cap = ChargingLimit(16, "A", 3)
    early = composite_schedule(10 * HOUR, 4 * HOUR, 1, [rel], 10 * HOUR, A, V, evse_max=cap)
    assert limits(early) == [(0, 16), (2 * HOUR, 6)]
    late = composite_schedule(19 * HOUR + 50 * 60, HOUR, 1, [rel], 19 * HOUR + 50 * 60, A, V)
    assert limits(late) == [(0, 32), (600, math.inf)]


def test_amps_and_watts_with_one_and_three_phases() -> None:
    cap = profile(1, MAX, sched(W, (0, 7360), start=0))  # 32 A on one phase at 230 V
    one = profile(2, DEFAULT, sched(A, (0, 16, 1), start=0), evse=1)
    three = profile(3, DEFAULT, sched(A, (0, 16, 3), start=0), evse=2)
    assert limit_at(0, 1, [cap, one], None, V) == Limit(16, A, 1)  # 3680 W
    assert limit_at(0, 2, [cap, three], None, V) == Limit(7360, W, 3)  # 11040 W is above
    assert limits(composite_schedule(0, 10, 1, [cap, one], None, W, V)) == [(0, 3680)]
    cs3 = composite_schedule(0, 10, 2, [cap, three], None, A, V)
    assert limits(cs3) == [(0, pytest.approx(7360 / 690))]
    assert cs3.periods[0].number_phases == 3
    assert to_charging_limit(Limit(16, A, 1)) == ChargingLimit(16, "A", 1)
    assert to_charging_limit(Limit(7360, W)) == ChargingLimit(7360, "W", None)
    assert to_charging_limit(None) is None


def test_amp_limits_are_compared_at_the_fewest_phases_allowed() -> None:
    # 16 A with the EV on one phase (as the other limit demands) is 3680 W, below 5000 W.
    cap = profile(1, MAX, sched(A, (0, 16), start=0))
    one_phase = profile(2, DEFAULT, sched(W, (0, 5000, 1), start=0), evse=1)
    assert limit_at(0, 1, [cap, one_phase], None, V) == Limit(16, A, 1)


def test_octt_style_composite_of_three_purposes() -> None:
    # Modelled on OCTT TC_066_CS / TC_K_41_CS: station max 10 A for a day, a TxDefaultProfile
    # of 304 s and a TxProfile of 264 s, both started 4 s before the request (stack level 0).
    t0 = 1_000_000.0
    cap = profile(1, MAX, sched(A, (0, 10, 3), duration=86404, start=t0 - 4))
    default = profile(
        2,
        DEFAULT,
        sched(A, (0, 6, 3), (60, 12, 3), (200, 8, 3), duration=304, start=t0 - 4),
        evse=1,
    )
    periods = ((0, 8, 3), (50, 11, 3), (140, 16, 3), (200, 6, 3), (240, 12, 3))
    tx = profile(3, TX, sched(A, *periods, duration=264, start=t0 - 4), evse=1, transaction_id="t")
    cs = composite_schedule(t0, 400, 1, [cap, default, tx], t0 - 10, A, V, tx_id="t")
    assert limits(cs) == [(0, 8), (46, 10), (196, 6), (236, 10), (260, 8), (300, 10)]
    assert {p.number_phases for p in cs.periods} == {3}


def test_composite_without_any_profile_is_unlimited_unless_capped() -> None:
    assert limits(composite_schedule(0, 100, 1, [], None, W, V)) == [(0, math.inf)]
    capped = composite_schedule(0, 100, 1, [], None, W, V, evse_max=ChargingLimit(7400))
    assert limits(capped) == [(0, 7400)]
    assert limit_at(0, 1, [], None, V) is None
    assert next_change_s(0, 1, [], None) is None


# --- validation and the profile store --------------------------------------------------------


@pytest.mark.parametrize(
    "periods",
    [(), ((5, 10),), ((0, 10), (0, 5)), ((0, 10), (20, 5), (10, 1)), ((0, -1),), ((0, 5, 4),)],
)
def test_invalid_schedules_are_refused(periods: tuple[tuple[float, ...], ...]) -> None:
    with pytest.raises(ValueError):
        ChargingSchedule(A, tuple(SchedulePeriod(*p) for p in periods))  # type: ignore[arg-type]


def test_invalid_profiles_are_refused() -> None:
    s = sched(A, (0, 10), start=0)
    with pytest.raises(ValueError):
        profile(1, DEFAULT, s, kind=RECURRING)  # no recurrency
    with pytest.raises(ValueError):
        profile(1, DEFAULT, sched(A, (0, 10)), kind=RECURRING, recurrency=RecurrencyKind.DAILY)
    with pytest.raises(ValueError):
        profile(1, DEFAULT, s, kind=RELATIVE)  # relative with a start
    with pytest.raises(ValueError):
        profile(1, DEFAULT, s, transaction_id="t")
    with pytest.raises(ValueError):
        profile(1, DEFAULT, s, valid_from_s=10, valid_to_s=5)


def test_store_replaces_by_id_and_by_stack_level_purpose_and_evse() -> None:
    store = ProfileStore()
    s = sched(A, (0, 10), start=0)
    assert store.set(profile(1, DEFAULT, s, evse=1))
    assert store.set(profile(1, DEFAULT, s, stack=2, evse=1))  # same id: replaced
    assert [p.stack_level for p in store.profiles()] == [2]
    assert store.set(profile(2, DEFAULT, s, stack=2, evse=1))  # same level/purpose/evse
    assert [p.profile_id for p in store.profiles()] == [2]
    assert store.set(profile(3, DEFAULT, s, stack=2, evse=2))  # other evse: kept side by side
    assert store.set(profile(4, MAX, s, stack=2))  # other purpose: kept
    assert store.set(profile(5, DEFAULT, s, stack=1, evse=1))  # other level: kept
    assert sorted(p.profile_id for p in store.profiles()) == [2, 3, 4, 5]
    assert [p.profile_id for p in store.profiles(evse_id=1)] == [5, 2]
    assert [p.profile_id for p in store.profiles(purpose=MAX)] == [4]
    assert [p.profile_id for p in store.profiles(stack_level=2)] == [4, 2, 3]


def test_store_keeps_disjoint_validity_periods_side_by_side_under_the_2_0_1_rule() -> None:
    s = sched(A, (0, 10), start=0)
    morning = profile(1, DEFAULT, s, evse=1, valid_from_s=0, valid_to_s=100)
    afternoon = profile(2, DEFAULT, s, evse=1, valid_from_s=100, valid_to_s=200)
    overlapping = profile(3, DEFAULT, s, evse=1, valid_from_s=150)
    store = ProfileStore()
    assert store.set(morning, keep_disjoint=True)
    assert store.set(afternoon, keep_disjoint=True)
    assert [p.profile_id for p in store.profiles()] == [1, 2]
    assert store.set(overlapping, keep_disjoint=True)  # replaces only what it overlaps
    assert [p.profile_id for p in store.profiles()] == [1, 3]
    # The 1.6 rule replaces by stack level and purpose whatever the validity.
    legacy = ProfileStore()
    assert legacy.set(morning) and legacy.set(afternoon)
    assert [p.profile_id for p in legacy.profiles()] == [2]


def test_store_refusals() -> None:
    store = ProfileStore(max_stack_level=3, max_profiles=2)
    s = sched(A, (0, 10), start=0)
    assert not store.set(profile(1, TX, s, evse=1))  # no transaction
    assert not store.set(profile(1, TX, s, evse=1, transaction_id="b"), active_tx="a")
    assert not store.set(profile(1, TX, s, evse=0), active_tx="a")
    assert not store.set(profile(1, MAX, s, evse=1))  # station max only on evse 0
    assert not store.set(profile(1, DEFAULT, s, stack=4, evse=1))
    assert store.set(profile(1, TX, s, evse=1), active_tx="a")
    assert store.profiles()[0].transaction_id == "a"  # bound to the running transaction
    assert store.set(profile(2, DEFAULT, s, evse=1))
    assert not store.set(profile(3, DEFAULT, s, stack=1, evse=1))  # store full
    assert store.set(profile(3, DEFAULT, s, evse=1))  # but a replacement fits
    assert len(store) == 2


def test_clear_charging_profile_filters() -> None:
    def filled() -> ProfileStore:
        store = ProfileStore()
        s = sched(A, (0, 10), start=0)
        for pid, purpose, stack, evse in [
            (1, MAX, 0, 0),
            (2, DEFAULT, 0, 0),
            (3, DEFAULT, 1, 1),
            (4, DEFAULT, 0, 1),
            (5, TX, 1, 1),
            (6, DEFAULT, 1, 2),
        ]:
            assert store.set(profile(pid, purpose, s, stack=stack, evse=evse), active_tx="t")
        return store

    store = filled()
    assert store.clear(profile_id=3, evse_id=2) == 1  # the id wins over other criteria
    assert store.clear(profile_id=3) == 0
    assert {p.profile_id for p in store.profiles()} == {1, 2, 4, 5, 6}
    assert filled().clear(evse_id=1) == 3
    assert filled().clear(purpose=DEFAULT) == 4
    assert filled().clear(stack_level=1) == 3
    assert filled().clear(evse_id=1, purpose=DEFAULT, stack_level=1) == 1
    assert filled().clear(evse_id=0, purpose=TX) == 0
    store = filled()
    assert store.clear() == 6 and len(store) == 0


def test_tx_profiles_end_with_their_transaction() -> None:
    store = ProfileStore()
    s = sched(A, (0, 10), start=0)
    assert store.set(profile(1, TX, s, evse=1), active_tx="a")
    assert store.set(profile(2, TX, s, evse=2), active_tx="b")
    assert store.set(profile(3, DEFAULT, s, evse=1))
    assert store.end_transaction(1) == 1
    assert {p.profile_id for p in store.profiles()} == {2, 3}


# --- properties over random profile sets -------------------------------------------------------

T_MAX = 15 * 86400  # two weeks and a day: weekly recurrence wraps inside the test range


@st.composite
def schedules(draw: st.DrawFn, kind: ChargingProfileKind) -> ChargingSchedule:
    unit = draw(st.sampled_from([A, W]))
    n = draw(st.integers(1, 3))
    starts = sorted(draw(st.sets(st.integers(1, 2 * 86400), min_size=n - 1, max_size=n - 1)))
    periods = []
    for s in [0, *starts]:
        lim = draw(st.integers(0, 64)) if unit is A else draw(st.integers(0, 40)) * 1000
        periods.append(SchedulePeriod(float(s), float(lim), draw(st.sampled_from([None, 1, 3]))))
    duration = draw(st.one_of(st.none(), st.integers(1, 3 * 86400).map(float)))
    start = None if kind is RELATIVE else float(draw(st.integers(0, T_MAX)))
    if kind is ABSOLUTE and draw(st.integers(0, 5)) == 0:
        start = None  # 1.6: an Absolute schedule without a start runs from the transaction
    return ChargingSchedule(unit, tuple(periods), duration_s=duration, start_s=start)


@st.composite
def profile_sets(draw: st.DrawFn) -> list[ChargingProfile]:
    out = []
    for pid in range(draw(st.integers(0, 6))):
        purpose = draw(st.sampled_from([MAX, DEFAULT, TX]))
        kind = draw(st.sampled_from([ABSOLUTE, RECURRING, RELATIVE]))
        evse = 0 if purpose is MAX else 1 if purpose is TX else draw(st.sampled_from([0, 1, 2]))
        valid_from = draw(st.one_of(st.none(), st.integers(0, T_MAX).map(float)))
        valid_to = draw(st.one_of(st.none(), st.integers(0, T_MAX).map(float)))
        if valid_from is not None and valid_to is not None:
            valid_from, valid_to = min(valid_from, valid_to), max(valid_from, valid_to)
        out.append(
            ChargingProfile(
                pid,
                draw(st.integers(0, 3)),
                purpose,
                kind,
                draw(schedules(kind)),
                recurrency=draw(st.sampled_from(list(RecurrencyKind)))
                if kind is RECURRING
                else None,
                valid_from_s=valid_from,
                valid_to_s=valid_to,
                transaction_id=draw(st.sampled_from([None, "t", "u"])) if purpose is TX else None,
                evse_id=evse,
            )
        )
    return out


tx_starts = st.one_of(st.none(), st.integers(0, T_MAX).map(float))
instants = st.integers(0, T_MAX + 86400).map(float)


def _oracle_period(p: ChargingProfile, t: float, tx_start: float | None):
    """Spec reading, written independently: the period p imposes at t, or None."""
    if p.valid_from_s is not None and t < p.valid_from_s:
        return None
    if p.valid_to_s is not None and not t < p.valid_to_s:
        return None
    s = p.schedule
    if p.kind is RECURRING:
        assert s.start_s is not None and p.recurrency is not None
        step = 86400 if p.recurrency is RecurrencyKind.DAILY else 7 * 86400
        if t < s.start_s:
            return None
        begin = s.start_s
        while begin + step <= t:
            begin += step
    elif s.start_s is not None:
        begin = s.start_s
    elif tx_start is not None:
        begin = tx_start
    else:
        return None
    if t < begin or (s.duration_s is not None and t >= begin + s.duration_s):
        return None
    return [q for q in s.periods if q.start_s <= t - begin][-1], s.unit


def _oracle_components(ps, t, evse, tx_start, tx_id="t"):
    def winner(group):
        for p in sorted(group, key=lambda p: (-p.stack_level, -p.profile_id)):
            got = _oracle_period(p, t, tx_start)
            if got is not None:
                return got
        return None

    station = winner([p for p in ps if p.purpose is MAX and p.evse_id == 0])
    if evse == 0:
        return [c for c in [station] if c]
    txs = [
        p
        for p in ps
        if p.purpose is TX
        and p.evse_id == evse
        and tx_start is not None
        and p.transaction_id in (None, tx_id)
    ]
    own = [p for p in ps if p.purpose is DEFAULT and p.evse_id == evse]
    shared = [p for p in ps if p.purpose is DEFAULT and p.evse_id == 0]
    tx = winner(txs) or winner(own) or winner(shared)
    return [c for c in [station, tx] if c]


def _watts(period: SchedulePeriod, unit: ChargingRateUnit, phases: int | None) -> float:
    return period.limit if unit is W else period.limit * V * (phases or 3)


@settings(max_examples=150, deadline=None)
@given(profile_sets(), tx_starts, instants, st.sampled_from([0, 1, 2]))
def test_limit_never_exceeds_any_profile_in_force(ps, tx_start, t, evse) -> None:
    got = limit_at(t, evse, ps, tx_start, V, tx_id="t")
    comps = _oracle_components(ps, t, evse, tx_start)
    if not comps:
        assert got is None
        return
    assert got is not None
    phases = [q.number_phases for q, _ in comps if q.number_phases is not None]
    fewest = min(phases) if phases else None
    assert got.phases == fewest
    allowed = [_watts(q, u, fewest) for q, u in comps]
    assert got.watts(V) == pytest.approx(min(allowed))
    for w in allowed:  # never above the station max, nor the Tx/TxDefault limit, in force
        assert got.watts(V) <= w + 1e-9


@settings(max_examples=150, deadline=None)
@given(
    profile_sets(),
    tx_starts,
    instants,
    st.integers(1, 3 * 86400).map(float),
    st.sampled_from([A, W]),
    st.data(),
)
def test_composite_schedule_agrees_with_limit_at(ps, tx_start, start, duration, unit, data) -> None:
    cs = composite_schedule(start, duration, 1, ps, tx_start, unit, V, tx_id="t")
    starts = [p.start_s for p in cs.periods]
    assert starts[0] == 0 and all(b > a for a, b in itertools.pairwise(starts))
    assert starts[-1] < duration and cs.duration_s == duration and cs.start_s == start
    ends = [*starts[1:], duration]
    for i, (period, end) in enumerate(zip(cs.periods, ends, strict=True)):
        if i:  # merged: neighbours differ
            prev = cs.periods[i - 1]
            assert (prev.limit, prev.number_phases) != (period.limit, period.number_phases)
        for _ in range(3):
            # Drawn on the absolute axis: start + offset could round onto the next period.
            t = data.draw(st.floats(start + period.start_s, start + end, exclude_max=True))
            lim = limit_at(t, 1, ps, tx_start, V, tx_id="t")
            if lim is None:
                assert period.limit == math.inf
                continue
            expected = lim.watts(V)
            if unit is A:
                expected /= V * (lim.phases or 3)
            assert period.limit == pytest.approx(expected)
            assert period.number_phases == lim.phases


@settings(max_examples=150, deadline=None)
@given(profile_sets(), tx_starts, instants, st.data())
def test_next_change_never_skips_a_change(ps, tx_start, t, data) -> None:
    nxt = next_change_s(t, 1, ps, tx_start, tx_id="t")
    horizon = t + 3 * 7 * 86400 if nxt is None else nxt
    assert horizon > t
    # Exact: the composite over [t, next change) is a single period.
    cs = composite_schedule(t, horizon - t, 1, ps, tx_start, W, V, tx_id="t")
    assert len(cs.periods) == 1
    here = limit_at(t, 1, ps, tx_start, V, tx_id="t")
    for _ in range(5):
        u = data.draw(st.floats(t, horizon, exclude_max=True))
        assert limit_at(u, 1, ps, tx_start, V, tx_id="t") == here
