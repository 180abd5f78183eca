"""Station commands a CSMS (or an offline policy) invokes, on the SimPy model alone: availability,
reservations, remote start, reboot, unlock, meter interval and smart charging."""

from __future__ import annotations

import math
from collections.abc import Callable, Generator
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
import simpy

from models.archetypes import get_archetype
from models.calendar import Calendar
from models.demand import DemandStream, EvDemand
from models.physics import CurrentType, EvseRating
from models.rng import charger_streams
from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    SchedulePeriod,
)
from models.vehicles import VehicleMix
from simulator.events import AcceptAll, StopReason
from simulator.station import (
    MIN_AC_CURRENT_A,
    Connector,
    ConnectorStatus,
    RemoteStartModel,
    Site,
    Station,
    StationSpec,
)
from tests.simulator.test_station import AC11, Recorder, ev

S = ConnectorStatus
P = ChargingProfilePurpose
VOLTS = 230.0


def station(
    demand: list[EvDemand] | None = None,
    connectors: int = 1,
    rating: EvseRating = AC11,
    meter_interval_s: float | None = None,
    authorizer: Any = None,
    unplug_delay_s: float = 30.0,
) -> tuple[simpy.Environment, Station, Recorder]:
    env = simpy.Environment()
    sink = Recorder()
    site = Site(env, "test", 0, sink)
    spec = StationSpec(rating, connectors, unplug_delay_s, meter_interval_s)
    st_ = Station(
        env, site, 0, "cs0", spec, sink, authorizer or AcceptAll(), demand or [], rng=rng()
    )
    return env, st_, sink


def rng(seed: int = 3) -> np.random.Generator:
    return np.random.default_rng(seed)


def at(env: simpy.Environment, t: float, fn: Callable[[], Any]) -> list[Any]:
    """Run fn at simulated time t; its result lands in the returned list."""
    out: list[Any] = []

    def proc() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(t - env.now)
        out.append(fn())

    env.process(proc())
    return out


def tx_profile(
    limit: float,
    unit: ChargingRateUnit = ChargingRateUnit.A,
    *,
    evse: int = 1,
    pid: int = 1,
    periods: tuple[SchedulePeriod, ...] | None = None,
    purpose: ChargingProfilePurpose = P.TX,
    min_rate: float | None = None,
    phases: int | None = None,
) -> ChargingProfile:
    # Relative schedules run from the transaction start; a station-wide cap is absolute.
    absolute = purpose is P.STATION_MAX
    schedule = ChargingSchedule(
        unit,
        periods or (SchedulePeriod(0.0, limit, phases),),
        start_s=0.0 if absolute else None,
        min_charging_rate=min_rate,
    )
    kind = ChargingProfileKind.ABSOLUTE if absolute else ChargingProfileKind.RELATIVE
    return ChargingProfile(pid, 0, purpose, kind, schedule, evse_id=evse)


def statuses(sink: Recorder, where: str = "cs0/1") -> list[Any]:
    return sink.statuses(where)


class Refuser:
    """Refuses every tag of its own; a remote start still works (authorize=False)."""

    def authorize(self, connector: Connector, id_tag: str) -> bool:
        return id_tag == "GOOD"


# -- availability ------------------------------------------------------------------------------


def test_inoperative_while_charging_is_scheduled_and_applied_when_the_session_ends() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=2), ev(4 * 3600.0, dwell_h=1)])
    answer = at(env, 600.0, lambda: st_.change_availability(1, False))
    env.run(until=3 * 3600)
    assert answer == ["Scheduled"]
    c = st_.connectors[0]
    assert not c.operative and c.status is S.UNAVAILABLE
    assert statuses(sink)[-2:] == [S.FINISHING, S.UNAVAILABLE]
    ((_, _, t_end, _),) = sink.of("ended")
    assert t_end == pytest.approx(2 * 3600)  # the transaction ran to its natural end
    env.run(until=10 * 3600)
    assert len(sink.of("started")) == 1  # the later EV found it unavailable and left
    assert st_.site.turned_away == 1


def test_an_idle_connector_goes_unavailable_at_once_and_back_on_request() -> None:
    env, st_, sink = station([ev(3600.0, dwell_h=1, patience=7200.0)], connectors=2)
    assert st_.change_availability(None, False) == "Accepted"  # the whole station
    assert [c.status for c in st_.connectors] == [S.UNAVAILABLE, S.UNAVAILABLE]
    assert st_.change_availability(3, True) == "Rejected"  # no such EVSE
    env.run(until=5400)
    assert not sink.of("started")  # the EV waits in the queue
    assert st_.change_availability(2, True) == "Accepted"
    env.run(until=5400.001)
    # The waiting EV takes connector 2 the moment it is operative again; 1 stays Unavailable.
    assert [(w, t) for _, w, t, _ in sink.of("started")] == [("cs0/2", 5400.0)]
    assert st_.connectors[0].status is S.UNAVAILABLE
    assert statuses(sink, "cs0/2")[:3] == [S.UNAVAILABLE, S.AVAILABLE, S.PREPARING]


def test_operative_again_before_the_session_ends_cancels_the_scheduled_change() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=1)])
    at(env, 60.0, lambda: st_.change_availability(0, False))
    at(env, 120.0, lambda: st_.change_availability(0, True))
    env.run(until=3 * 3600)
    assert st_.connectors[0].operative
    assert statuses(sink)[-1] is S.AVAILABLE


# -- reservations ------------------------------------------------------------------------------


def test_a_reservation_expires_and_says_so() -> None:
    env, st_, sink = station()
    ended: list[tuple[int, str, float]] = []
    st_.on_reservation_ended = lambda rid, reason: ended.append((rid, reason, env.now))
    assert st_.reserve(7, 1, "TAG", 600.0) == "Accepted"
    assert st_.connectors[0].status is S.RESERVED
    env.run(until=3600)
    assert ended == [(7, "Expired", 600.0)]
    assert statuses(sink) == [S.RESERVED, S.AVAILABLE]
    assert st_.reservations() == []


def test_a_reserved_connector_refuses_other_evs_and_takes_the_holder() -> None:
    other = ev(100.0, dwell_h=1)  # a random driver: tag 0123456789abcdef
    holder = ev(200.0, dwell_h=1)
    holder.id_tag = "HOLDER"
    env, st_, sink = station([other, holder])
    assert st_.reserve(5, None, "HOLDER", 3600.0) == "Accepted"
    env.run(until=3 * 3600)
    assert st_.site.turned_away == 1  # the random driver
    ((_, _, t_start, tx),) = sink.of("started")
    assert t_start == 200.0 and tx.id_tag == "HOLDER" and tx.reservation_id == 5
    assert not tx.started_remotely
    assert statuses(sink)[:2] == [S.RESERVED, S.PREPARING]


def test_cancel_replace_and_refusals() -> None:
    env, st_, _ = station([ev(0.0, dwell_h=1)], connectors=2)
    ended: list[tuple[int, str]] = []
    st_.on_reservation_ended = lambda rid, reason: ended.append((rid, reason))
    env.run(until=60)  # the EV took connector 1
    assert st_.reserve(1, 1, "A", 600.0) == "Occupied"
    assert st_.reserve(1, 9, "A", 600.0) == "Rejected"  # no such EVSE
    assert st_.reserve(1, 2, "A", 30.0) == "Rejected"  # already expired
    assert st_.reserve(1, None, "A", 600.0) == "Accepted"  # the first Available: 2
    assert st_.connectors[1].reservation is not None
    assert st_.reserve(1, None, "B", 900.0) == "Accepted"  # same id: replaced in place
    (held,) = st_.reservations()
    assert (held.id_tag, held.expiry_s) == ("B", 900.0)
    assert st_.reserve(2, None, "C", 600.0) == "Occupied"  # nothing else free
    env.run(until=700)
    assert ended == []  # the replaced reservation's first expiry does not fire
    assert st_.cancel_reservation(1) and not st_.cancel_reservation(1)
    assert ended == [(1, "Removed")]
    assert st_.connectors[1].status is S.AVAILABLE
    st_.change_availability(2, False)
    assert st_.reserve(3, 2, "D", 2000.0) == "Unavailable"


def test_an_inoperative_change_removes_the_reservation() -> None:
    _env, st_, _ = station()
    ended: list[tuple[int, str]] = []
    st_.on_reservation_ended = lambda rid, reason: ended.append((rid, reason))
    st_.reserve(4, 1, "A", 600.0)
    assert st_.change_availability(1, False) == "Accepted"
    assert ended == [(4, "Removed")]
    assert st_.connectors[0].status is S.UNAVAILABLE


# -- remote start ------------------------------------------------------------------------------


def test_remote_start_with_an_ev_plugged_in_starts_it_with_the_given_tag() -> None:
    # The driver's own card is refused; the hotline starts the charge remotely before they go.
    env, st_, sink = station([ev(0.0, dwell_h=2)], authorizer=Refuser())
    answer = at(env, 10.0, lambda: st_.remote_start("HOTLINE", None, remote_id=42))
    env.run(until=4 * 3600)
    assert answer == [1]
    ((_, _, t_start, tx),) = sink.of("started")
    assert t_start == 10.0 and tx.id_tag == "HOTLINE"
    assert tx.started_remotely and tx.remote_id == 42
    assert statuses(sink)[:2] == [S.PREPARING, S.CHARGING]


def test_remote_start_with_authorisation_asks_first() -> None:
    env, st_, sink = station(authorizer=Refuser())
    st_.walk_in = lambda t, _rng: ev(t, dwell_h=1)
    assert st_.remote_start("BAD", 1, authorize=True) == 1
    env.run(until=3600)
    assert not sink.of("started")  # the walk-in plugged in, the tag was refused
    assert st_.remote_start("GOOD", 1, authorize=True) == 1
    env.run(until=7200)
    ((_, _, _, tx),) = sink.of("started")
    assert tx.id_tag == "GOOD"


def _stream(seed: int = 11) -> DemandStream:
    archetype = get_archetype("public_ac")
    calendar = Calendar(datetime(2025, 3, 3, 9, tzinfo=UTC), "Europe/Amsterdam")
    return DemandStream(
        archetype.params, calendar, charger_streams(seed, "s", 0), VehicleMix.default()
    )


def test_remote_start_without_an_ev_waits_for_a_walk_in_driver_from_the_demand_model() -> None:
    env, st_, sink = station()
    st_.walk_in = _stream().walk_in
    st_.remote_start_model = RemoteStartModel(plug_in_s=40.0, connection_timeout_s=120.0)
    assert st_.remote_start("REMOTE", None) == 1
    assert st_.connectors[0].status is S.PREPARING
    assert not st_.connectors[0].free  # no other EV may take it meanwhile
    env.run(until=2 * 86400)
    ((_, _, t_start, tx),) = sink.of("started")
    assert 20.0 <= t_start <= 60.0  # uniform on [0.5, 1.5] x 40 s
    assert tx.id_tag == "REMOTE" and tx.started_remotely and tx.ev.arrival_s == t_start
    assert statuses(sink)[:2] == [S.PREPARING, S.CHARGING]


def test_a_driver_who_never_comes_frees_the_connector_at_the_connection_timeout() -> None:
    env, st_, sink = station()
    st_.walk_in = lambda t, _rng: ev(t)
    st_.remote_start_model = RemoteStartModel(30.0, no_show_p=1.0, connection_timeout_s=90.0)
    assert st_.remote_start("REMOTE", 1) == 1
    env.run(until=89.0)
    assert st_.connectors[0].status is S.PREPARING
    env.run(until=3600)
    assert not sink.of("started")
    assert [(t, s) for k, _, t, s in sink.events if k == "status"] == [
        (0.0, S.PREPARING),
        (90.0, S.AVAILABLE),
    ]
    assert st_.connectors[0].free


def test_remote_start_refusals() -> None:
    env, st_, _ = station([ev(0.0, dwell_h=2)], connectors=3)
    env.run(until=60)  # connector 1 is charging
    assert st_.remote_start("T", 1) is None  # in a transaction
    assert st_.remote_start("T", 4) is None  # no such EVSE
    st_.change_availability(2, False)
    assert st_.remote_start("T", 2) is None  # inoperative
    st_.reserve(9, 3, "SOMEONE", 3600.0)
    assert st_.remote_start("T", 3) is None  # reserved for another tag
    assert st_.remote_start("T", None) is None  # nothing left to choose
    assert st_.remote_start("T", 3, profile=tx_profile(10.0, purpose=P.TX_DEFAULT)) is None
    assert st_.remote_start("SOMEONE", 3) == 3  # the holder may
    assert st_.reservations() == []  # consumed
    st_.reboot(StopReason.HARD_RESET, 60.0)
    assert st_.remote_start("T", 2) is None  # down


def test_a_remote_start_profile_becomes_the_transactions_tx_profile() -> None:
    env, st_, sink = station(meter_interval_s=60.0)
    st_.walk_in = lambda t, _rng: ev(t, dwell_h=4, energy=30.0)
    profile = tx_profile(10.0, evse=0, pid=77)  # 10 A x 3 phases = 6.9 kW
    assert st_.remote_start("REMOTE", 1, profile=profile) == 1
    env.run(until=1800)
    (installed,) = st_.profiles.profiles()
    ((_, _, _, tx),) = sink.of("started")
    assert installed.profile_id == 77 and installed.evse_id == 1
    assert installed.transaction_id == str(tx.seq)
    assert st_.connectors[0].sample(env.now).power_w == pytest.approx(10.0 * VOLTS * 3)
    env.run(until=86400)
    assert len(st_.profiles) == 0  # dropped with its transaction


# -- reboot ------------------------------------------------------------------------------------


def test_a_reboot_ends_transactions_with_its_reason_and_evs_wait_until_it_is_up() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=1), ev(1900.0, dwell_h=1)], connectors=2)
    hooks: list[tuple[str, float]] = []
    st_.on_down = lambda: hooks.append(("down", env.now))
    st_.on_up = lambda: hooks.append(("up", env.now))
    at(env, 1800.0, lambda: st_.reboot(StopReason.HARD_RESET, 300.0))
    env.run(until=1850)
    ((_, where, t_end, tx),) = sink.of("ended")
    assert (where, t_end, tx.stop_reason) == ("cs0/1", 1800.0, StopReason.HARD_RESET)
    assert not st_.up
    env.run(until=2099)
    assert st_.connectors[1].status is S.PREPARING  # plugged in at 1900, waiting
    assert len(sink.of("started")) == 1
    env.run(until=8000)
    starts = [(w, t) for _, w, t, _ in sink.of("started")]
    assert starts == [("cs0/1", 0.0), ("cs0/2", 2100.0)]
    assert hooks == [("down", 1800.0), ("up", 2100.0)]


# -- unlock ------------------------------------------------------------------------------------


def test_unlock_stops_the_transaction_in_16_and_refuses_in_201() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=2)])
    env.run(until=600)
    assert st_.unlock(2, True) == "UnknownConnector"
    assert st_.unlock(1, False) == "OngoingAuthorizedTransaction"
    env.run(until=700)
    assert not sink.of("ended")
    assert st_.unlock(1, True) == "Unlocked"
    env.run(until=800)
    ((_, _, t_end, tx),) = sink.of("ended")
    assert t_end == 700.0 and tx.stop_reason is StopReason.UNLOCK_COMMAND
    assert st_.unlock(1, False) == "Unlocked"  # no transaction any more


# -- meter interval ----------------------------------------------------------------------------


def test_a_new_meter_interval_takes_effect_at_once() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=2)], meter_interval_s=300.0)
    at(env, 700.0, lambda: st_.set_meter_interval(60.0))
    at(env, 1010.0, lambda: st_.set_meter_interval(0))
    env.run(until=4 * 3600)
    times = [t for _, _, t, _ in sink.of("meter")]
    assert times == [300.0, 600.0, 760.0, 820.0, 880.0, 940.0, 1000.0]
    assert st_.meter_interval_s is None


# -- smart charging ----------------------------------------------------------------------------


def power(st_: Station, evse: int = 1) -> float:
    return st_.connectors[evse - 1].sample(st_.env.now).power_w


def test_a_profile_limits_power_and_clearing_it_lifts_the_limit() -> None:
    env, st_, _ = station([ev(0.0, dwell_h=5, energy=40.0)])
    env.run(until=60)
    assert power(st_) == pytest.approx(11_000.0, rel=1e-3)
    assert st_.install_profile(tx_profile(5000.0, ChargingRateUnit.W))
    env.run(until=120)
    assert power(st_) == pytest.approx(5000.0)
    assert st_.clear_profiles(profile_id=1) == 1 and st_.clear_profiles(profile_id=1) == 0
    env.run(until=180)
    assert power(st_) == pytest.approx(11_000.0, rel=1e-3)


def test_a_tx_profile_without_a_transaction_is_rejected_and_unknown_evse_too() -> None:
    _env, st_, _ = station()
    assert not st_.install_profile(tx_profile(10.0))
    assert not st_.install_profile(tx_profile(10.0, evse=2, purpose=P.TX_DEFAULT))
    assert st_.install_profile(tx_profile(10.0, evse=1, purpose=P.TX_DEFAULT))


def test_a_schedule_with_several_periods_is_replanned_at_each_change() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=6, energy=40.0)])
    periods = (
        SchedulePeriod(0.0, 16.0),
        SchedulePeriod(1800.0, 8.0),
        SchedulePeriod(3600.0, 0.0),
        SchedulePeriod(5400.0, 12.0),
    )
    env.run(until=1)
    assert st_.install_profile(tx_profile(0.0, periods=periods))
    expected = {900: AC11.max_current_a, 2700: 8.0, 4500: 0.0, 6300: 12.0}
    seen = {}
    for t in expected:
        env.run(until=t)
        seen[t] = power(st_) / (VOLTS * 3)
    assert seen == pytest.approx(expected)
    # A plan at each period start (tx start is 0: the relative schedule's anchor).
    plan_times = [t for _, _, t, _ in sink.of("plan")]
    assert {1800.0, 3600.0, 5400.0} <= set(plan_times)
    assert S.SUSPENDED_EVSE in statuses(sink)


def test_the_tx_profile_ends_with_its_transaction_and_tx_default_applies_to_the_next() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=1), ev(7200.0, dwell_h=1)])
    env.run(until=10)
    assert st_.install_profile(tx_profile(8.0, pid=1))
    assert st_.install_profile(tx_profile(10.0, pid=2, purpose=P.TX_DEFAULT, evse=0))
    env.run(until=20)
    assert power(st_) == pytest.approx(8.0 * VOLTS * 3)
    env.run(until=7300)
    assert [p.profile_id for p in st_.profiles.profiles()] == [2]
    assert power(st_) == pytest.approx(10.0 * VOLTS * 3)
    assert len(sink.of("started")) == 2


def test_the_station_max_is_shared_among_running_transactions() -> None:
    env, st_, _ = station(
        [ev(0.0, dwell_h=3, energy=30.0), ev(1800.0, dwell_h=3, energy=30.0)], connectors=2
    )
    station_max = tx_profile(24.0, purpose=P.STATION_MAX, evse=0, pid=9)
    assert st_.install_profile(station_max)
    env.run(until=60)
    assert power(st_, 1) == pytest.approx(11_000.0)  # alone: its rating
    env.run(until=1900)
    assert power(st_, 1) == pytest.approx(12.0 * VOLTS * 3)
    assert power(st_, 2) == pytest.approx(12.0 * VOLTS * 3)
    schedule = st_.composite_schedule(0, 3600.0, ChargingRateUnit.A)
    assert [p.limit for p in schedule.periods] == [24.0]


def test_below_six_amps_the_evse_pauses_instead_of_trickling() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=5, energy=30.0)])
    env.run(until=60)
    assert st_.install_profile(tx_profile(MIN_AC_CURRENT_A - 0.5))
    env.run(until=120)
    assert power(st_) == 0.0
    assert statuses(sink)[-1] is S.SUSPENDED_EVSE
    assert st_.install_profile(tx_profile(MIN_AC_CURRENT_A))  # replaces profile 1
    env.run(until=180)
    assert power(st_) == pytest.approx(MIN_AC_CURRENT_A * VOLTS * 3)
    # A schedule's minChargingRate raises the floor.
    assert st_.install_profile(tx_profile(8.0, min_rate=9.0))
    env.run(until=240)
    assert power(st_) == 0.0
    assert statuses(sink)[-3:] == [S.SUSPENDED_EVSE, S.CHARGING, S.SUSPENDED_EVSE]


def test_the_composite_schedule_is_capped_by_the_rating_never_infinite() -> None:
    env, st_, _ = station([ev(0.0, dwell_h=5, energy=30.0)], connectors=2)
    env.run(until=100)
    schedule = st_.composite_schedule(1, 7200.0, ChargingRateUnit.W)
    assert [p.limit for p in schedule.periods] == [pytest.approx(11_000.0, rel=1e-3)]
    st_.install_profile(
        tx_profile(0.0, periods=(SchedulePeriod(0, 10.0), SchedulePeriod(3600, 20.0)))
    )
    schedule = st_.composite_schedule(1, 7200.0, ChargingRateUnit.A)
    assert schedule.start_s == 100.0
    limits = [(p.start_s, p.limit) for p in schedule.periods]
    assert limits == [(0.0, 10.0), (3500.0, pytest.approx(11_000.0 / (VOLTS * 3)))]
    assert all(
        math.isfinite(p.limit) for p in st_.composite_schedule(0, 60.0, ChargingRateUnit.W).periods
    )


def test_dc_limits_follow_watts_and_skip_the_ac_floor() -> None:
    dc = EvseRating(CurrentType.DC, 150.0)
    env, st_, _ = station([ev(0.0, dwell_h=2, energy=30.0)], rating=dc)
    env.run(until=10)
    assert st_.install_profile(tx_profile(3000.0, ChargingRateUnit.W))
    env.run(until=20)
    assert power(st_) == pytest.approx(3000.0)


# -- the walk-in draw --------------------------------------------------------------------------


def test_walk_in_draws_from_the_session_model_without_touching_the_stream() -> None:
    plain, probed = _stream(), _stream()
    first = [next(plain) for _ in range(30)]
    other = rng(5)
    walk_ins = []
    second = []
    for _ in range(30):
        walk_ins.append(probed.walk_in(5000.0, other))
        second.append(next(probed))
    assert [e.arrival_s for e in first] == [e.arrival_s for e in second]
    assert [e.id_tag for e in first] == [e.id_tag for e in second]
    for w in walk_ins:
        assert w.arrival_s == 5000.0 and w.dwell_s > 0
        assert w.energy_wanted_kwh == pytest.approx(
            (w.soc_target - w.soc_arrival) * w.vehicle.battery_kwh
        )
    assert len({w.id_tag for w in walk_ins}) == 30
    # Deterministic for the rng's seed.
    assert _stream().walk_in(5000.0, rng(5)) == _stream().walk_in(5000.0, rng(5))


def test_a_depot_walk_in_is_the_depot_vehicle_staying_until_its_next_departure() -> None:
    archetype = get_archetype("depot_van")
    calendar = Calendar(datetime(2025, 3, 3, tzinfo=UTC), "UTC")  # a Monday
    stream = DemandStream(
        archetype.params, calendar, charger_streams(1, "d", 0), VehicleMix.default()
    )
    w = stream.walk_in(12 * 3600.0, rng())
    assert w.vehicle.name == next(stream).vehicle.name
    leave = w.arrival_s + w.dwell_s
    assert 86400 + 6 * 3600 < leave < 86400 + 11 * 3600  # Tuesday morning's departure
