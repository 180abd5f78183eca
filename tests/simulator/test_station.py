"""Station model: OCPP status sequences, queueing, limits and coherent meter samples."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from models.demand import EvDemand
from models.physics import ChargePlan, ChargingLimit, CurrentType, EvseRating
from models.vehicles import vehicle_by_name
from simulator.events import AcceptAll, MeterSample, StopReason
from simulator.station import (
    Connector,
    ConnectorStatus,
    IllegalTransition,
    Site,
    Station,
    StationSpec,
    Transaction,
)

S = ConnectorStatus
AC11 = EvseRating(CurrentType.AC, 11.0, 3)


class Recorder:
    """A sink that remembers every event as (kind, charger/evse, time, payload)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, float, Any]] = []

    def _add(self, kind: str, connector: Connector, t: float, payload: Any = None) -> None:
        self.events.append(
            (kind, f"{connector.station.charger_id}/{connector.evse_id}", t, payload)
        )

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        self._add("status", connector, t, status)

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self._add("started", connector, t, tx)

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        self._add("plan", connector, t, plan)

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        self._add("meter", connector, t, sample)

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        self._add("ended", connector, t, tx)

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        self._add("left", connector, t, ev)

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        self.events.append(("turned_away", site.name, t, ev))

    def statuses(self, where: str) -> list[ConnectorStatus]:
        return [p for k, w, _, p in self.events if k == "status" and w == where]

    def of(self, kind: str) -> list[tuple[str, str, float, Any]]:
        return [e for e in self.events if e[0] == kind]


def ev(
    arrival: float,
    dwell_h: float = 8.0,
    energy: float = 20.0,
    *,
    patience: float = 0.0,
    vehicle: str = "Volkswagen ID.3",
    when_charged: bool = False,
) -> EvDemand:
    car = vehicle_by_name(vehicle)
    soc_target = 0.9
    return EvDemand(
        arrival_s=arrival,
        vehicle=car,
        vehicle_index=0,
        soc_arrival=soc_target - energy / car.battery_kwh,
        soc_target=soc_target,
        energy_wanted_kwh=energy,
        dwell_s=dwell_h * 3600,
        leave_when_charged=when_charged,
        handling_s=120.0,
        ac_taper_soc=0.8,
        patience_s=patience,
        id_tag="0123456789abcdef",
    )


def build(
    demands: list[list[EvDemand]],
    connectors: int = 1,
    rating: EvseRating = AC11,
    meter_interval_s: float | None = None,
    private: bool = False,
) -> tuple[simpy.Environment, Site, Recorder]:
    env = simpy.Environment()
    sink = Recorder()
    site = Site(env, "test", 0, sink, private=private)
    spec = StationSpec(rating, connectors, unplug_delay_s=30.0, meter_interval_s=meter_interval_s)
    for i, d in enumerate(demands):
        Station(env, site, i, f"cs{i}", spec, sink, AcceptAll(), d)
    return env, site, sink


def test_a_full_session_walks_the_ocpp_status_diagram() -> None:
    env, _, sink = build([[ev(3600.0, dwell_h=8, energy=20)]])
    env.run(until=86400)
    assert sink.statuses("cs0/1") == [
        S.PREPARING,
        S.CHARGING,
        S.SUSPENDED_EV,
        S.FINISHING,
        S.AVAILABLE,
    ]
    ((_, _, t_start, tx),) = sink.of("started")
    ((_, _, t_end, tx_end),) = sink.of("ended")
    assert tx is tx_end and t_start == 3600.0
    assert t_end == pytest.approx(3600.0 + 8 * 3600)
    assert tx.meter_stop_wh - tx.meter_start_wh == pytest.approx(20_000.0, rel=1e-9)
    # Idle time emerges: 14.2 kWh at 11 kW to SoC 0.8 (1.29 h), then the taper to 0.9 with
    # tau = 58 kWh * 0.2 / 11 kW (0.69 tau = 0.73 h): about 2 h of an 8 h stay.
    assert tx.charge_end_s - tx.charge_start_s == pytest.approx(2.02 * 3600, rel=0.01)
    ((_, _, t_left, _),) = sink.of("left")
    assert t_left == pytest.approx(t_end + 30.0)


def test_a_driver_who_leaves_early_takes_less_energy() -> None:
    env, _, sink = build([[ev(0.0, dwell_h=1, energy=30)]])
    env.run(until=86400)
    assert S.SUSPENDED_EV not in sink.statuses("cs0/1")
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.meter_stop_wh - tx.meter_start_wh == pytest.approx(11_000.0, rel=1e-6)


def test_a_busy_charger_sends_the_ev_to_a_free_one_then_the_queue_then_away() -> None:
    first, second = ev(0.0, dwell_h=2), ev(60.0, dwell_h=2, patience=3 * 3600)
    third = ev(120.0, patience=600.0)  # gives up after 10 min
    env, site, sink = build([[first, second, third], []])
    env.run(until=86400)
    # The second EV finds the first charger busy and plugs into the idle one at the same site.
    starts = {w: t for k, w, t, _ in sink.of("started")}
    assert starts["cs1/1"] == 60.0
    # The third finds both busy, waits 10 minutes, and leaves without charging.
    assert [t for k, _, t, _ in sink.of("turned_away")] == [720.0]
    assert site.turned_away == 1 and len(sink.of("started")) == 2


def test_on_a_private_site_an_ev_only_ever_uses_its_own_charger() -> None:
    own = [ev(0.0, dwell_h=2), ev(60.0, dwell_h=1, patience=3 * 3600), ev(9000.0, dwell_h=1)]
    other = [ev(3000.0, dwell_h=1, patience=3 * 3600)]
    env, site, sink = build([own, other, []], private=True)
    env.run(until=86400)
    starts = [(w, t) for _, w, t, _ in sink.of("started")]
    # The arrival at charger 0 while its car is plugged in ignores the idle chargers 1 and 2:
    # it is that same car, so it is absorbed, not queued and not counted as turned away.
    assert starts == [("cs0/1", 0.0), ("cs1/1", 3000.0), ("cs0/1", 9000.0)]
    assert site.absorbed == 1 and site.turned_away == 0 and site.waited == 0


def test_a_waiting_ev_takes_the_connector_when_it_frees() -> None:
    env, site, sink = build([[ev(0.0, dwell_h=1), ev(60.0, dwell_h=1, patience=7200.0)]])
    env.run(until=86400)
    starts = [t for _, _, t, _ in sink.of("started")]
    assert starts == [0.0, pytest.approx(3600.0 + 30.0)]  # after the first unplugs
    assert site.waited == 1 and site.turned_away == 0


def test_a_limit_change_replans_and_power_obeys_it() -> None:
    env, site, sink = build([[ev(0.0, dwell_h=10, energy=30)]], meter_interval_s=60.0)
    connector = site.stations[0].connectors[0]

    def operator() -> Any:
        yield env.timeout(1800)
        connector.set_limit(ChargingLimit(0.0))  # pause
        yield env.timeout(1800)
        connector.set_limit(ChargingLimit(6.0, "A"))  # resume at 6 A x 3 phases

    env.process(operator())
    env.run(until=86400)
    assert sink.statuses("cs0/1")[:4] == [S.PREPARING, S.CHARGING, S.SUSPENDED_EVSE, S.CHARGING]
    samples = [(t, s) for _, _, t, s in sink.of("meter")]
    for t, s in samples:
        if 1800 < t < 3600:
            assert s.power_w == 0.0
        if t > 3600:
            assert s.power_w <= 6.0 * 230 * 3 + 1e-6
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.meter_stop_wh - tx.meter_start_wh == pytest.approx(30_000.0, rel=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    st.floats(1.0, 60.0),
    st.floats(0.5, 14.0),
    st.integers(30, 900),
    st.sampled_from(["Nissan Leaf", "Tesla Model 3", "Renault Zoe", "Volkswagen Golf"]),
)
def test_meter_samples_are_physically_coherent(
    energy: float, dwell_h: float, interval: int, vehicle: str
) -> None:
    car = vehicle_by_name(vehicle)
    energy = min(energy, 0.85 * car.battery_kwh)
    env, _, sink = build([[ev(0.0, dwell_h, energy, vehicle=vehicle)]], meter_interval_s=interval)
    env.run(until=86400)
    samples = [(t, s) for _, _, t, s in sink.of("meter")]
    assert samples, "a session of at least half an hour has meter samples"
    for (t0, a), (t1, b) in itertools.pairwise(samples):
        assert b.energy_wh >= a.energy_wh  # the register never decreases
        # Power x time = energy: the energy between two samples lies between the two powers
        # times the interval (power is monotone within a piece), with rounding slack.
        lo, hi = sorted((a.power_w, b.power_w))
        de = (b.energy_wh - a.energy_wh) * 3600 / (t1 - t0)
        assert lo - 1.0 <= de <= max(hi, AC11.max_kw * 1000) + 1.0
        # SoC moves exactly with the energy delivered into the battery.
        assert (b.soc - a.soc) * car.battery_kwh * 1000 == pytest.approx(
            b.energy_wh - a.energy_wh, abs=1e-6
        )
        if b.power_w > 0:
            assert b.current_a == pytest.approx(b.power_w / (b.voltage_v * b.phases))
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.meter_stop_wh - tx.meter_start_wh <= energy * 1000 + 1e-6


def test_a_deferred_authorisation_is_awaited_and_a_rejection_ends_the_visit() -> None:
    env = simpy.Environment()
    sink = Recorder()
    site = Site(env, "test", 0, sink)

    class SlowRejecter:
        def authorize(self, connector: Connector, id_tag: str) -> simpy.Event:
            answer = env.event()
            env.process(self._answer(answer))
            return answer

        def _answer(self, answer: simpy.Event) -> Any:
            yield env.timeout(5.0)
            answer.succeed(False)

    Station(env, site, 0, "cs0", StationSpec(AC11), sink, SlowRejecter(), [ev(10.0)])
    env.run(until=3600)
    assert sink.statuses("cs0/1") == [S.PREPARING, S.AVAILABLE]
    assert not sink.of("started")
    assert sink.of("left")[0][2] == pytest.approx(10.0 + 5.0 + 30.0)


def test_an_illegal_transition_raises_at_once() -> None:
    _env, site, _ = build([[]])
    connector = site.stations[0].connectors[0]
    with pytest.raises(IllegalTransition):
        connector._set_status(S.FINISHING)  # Available -> Finishing is not in the diagram


def test_leave_when_charged_unplugs_after_handling_time() -> None:
    dc = EvseRating(CurrentType.DC, 150.0)
    env, _, sink = build([[ev(0.0, dwell_h=3, energy=30, when_charged=True)]], rating=dc)
    env.run(until=86400)
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.stop_s == pytest.approx(tx.charge_end_s + 120.0)
    assert not math.isnan(tx.charge_start_s)
    assert max(p.power_at(0.0) for _, _, _, p in sink.of("plan")) <= 150.0 + 1e-9


@pytest.mark.parametrize("stop_at_h", [0.5, 4.0])  # while charging, and while full and idle
def test_a_stopped_transaction_ends_at_once_and_the_car_stays_until_departure(
    stop_at_h: float,
) -> None:
    env, site, sink = build([[ev(0.0, dwell_h=8, energy=20)]])
    connector = site.stations[0].connectors[0]
    env.run(until=stop_at_h * 3600)
    assert connector.end_transaction(StopReason.REMOTE)
    assert not connector.end_transaction(StopReason.REMOTE)  # already stopping
    env.run(until=86400)
    ((_, _, t_end, tx),) = sink.of("ended")
    assert t_end == stop_at_h * 3600
    assert tx.stop_reason is StopReason.REMOTE
    delivered = tx.meter_stop_wh - tx.meter_start_wh
    if stop_at_h < 1.0:
        assert delivered == pytest.approx(11_000.0 * stop_at_h, rel=1e-6)
    else:
        assert delivered == pytest.approx(20_000.0, rel=1e-6)
    assert sink.statuses("cs0/1")[-2:] == [S.FINISHING, S.AVAILABLE]
    ((_, _, t_left, _),) = sink.of("left")
    assert t_left == pytest.approx(8 * 3600 + 30.0)
    assert connector.register_wh == tx.meter_stop_wh
    assert not connector.end_transaction(StopReason.REMOTE)  # nothing to stop


def test_end_transaction_without_a_transaction_is_refused() -> None:
    _, site, _ = build([[]])
    assert not site.stations[0].connectors[0].end_transaction(StopReason.OTHER)
