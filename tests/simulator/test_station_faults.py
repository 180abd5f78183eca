"""Station faults: connector faults (Faulted with an error code, the transaction ends, the EV
leaves, repair), power loss, the fault processes of a fleet and the offline summary."""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.demand import EvDemand
from models.physics import ChargingLimit
from simulator.charger import ChargerBehaviour, ChargerControl, ChargerSettings
from simulator.events import AcceptAll, StopReason
from simulator.offline import simulate
from simulator.output import write_all
from simulator.protocol.v16 import V16Adapter
from simulator.protocol.v201 import V201Adapter
from simulator.scenario import FaultsConfig, Scenario, load_scenario, parse_scenario
from simulator.station import (
    FAULT_STOP_REASON,
    LEGAL_TRANSITIONS,
    NO_ERROR,
    Connector,
    ConnectorStatus,
    RemoteStartModel,
    Site,
    Station,
    StationSpec,
)
from tests.simulator.protocol.harness import STAMPS, Harness, identity
from tests.simulator.protocol.harness import station as protocol_station
from tests.simulator.test_station import AC11, Recorder, ev

S = ConnectorStatus
H = 3600.0


def station(
    demand: list[EvDemand] | None = None,
    connectors: int = 1,
    authorizer: Any = None,
    private: bool = False,
    meter_interval_s: float | None = None,
) -> tuple[simpy.Environment, Station, Recorder]:
    env = simpy.Environment()
    sink = Recorder()
    site = Site(env, "test", 0, sink, private=private)
    spec = StationSpec(AC11, connectors, 30.0, meter_interval_s)
    st_ = Station(env, site, 0, "cs0", spec, sink, authorizer or AcceptAll(), demand or [])
    return env, st_, sink


def at(env: simpy.Environment, t: float, fn: Callable[[], Any]) -> list[Any]:
    """Run fn at simulated time t; its result lands in the returned list."""
    out: list[Any] = []

    def proc() -> Generator[simpy.Event, Any, None]:
        yield env.timeout(t - env.now)
        out.append(fn())

    env.process(proc())
    return out


def kinds(sink: Recorder, where: str = "cs0/1") -> list[tuple[str, float, Any]]:
    """(kind, time, payload) of one connector's events, without plans and meter samples."""
    return [(k, t, p) for k, w, t, p in sink.events if w == where and k not in ("plan", "meter")]


# -- connector faults ----------------------------------------------------------------------------


def test_a_fault_while_charging_ends_the_transaction_sends_the_ev_away_and_is_repaired() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8, energy=30)])
    c = st_.connectors[0]
    answer = at(env, 1 * H, lambda: st_.fault_connector(1, "GroundFailure", 2 * H))
    seen: list[tuple[str, bool]] = []
    at(env, 2 * H, lambda: seen.append((c.error_code, c.faulted)))
    env.run(until=1 * H)
    tx = c.tx
    assert tx is not None and c.status is S.CHARGING
    env.run(until=10 * H)
    assert answer == [True]
    assert sink.statuses("cs0/1") == [S.PREPARING, S.CHARGING, S.FAULTED, S.AVAILABLE]
    events = kinds(sink)
    # Faulted first, then the transaction it ended, then the EV leaves: all at the fault.
    assert [(k, t) for k, t, _ in events][3:7] == [
        ("status", 1 * H),
        ("ended", 1 * H),
        ("left", 1 * H),
        ("status", 3 * H),
    ]
    assert tx.stop_reason is FAULT_STOP_REASON is StopReason.OTHER
    assert tx.stop_s == tx.charge_end_s == 1 * H and not tx.open and c.tx is None and c.ev is None
    assert st_.when_idle().triggered  # no transaction counts as running any more
    # One hour at 11 kW, not the 30 kWh the driver wanted.
    assert (tx.meter_stop_wh - tx.meter_start_wh) / 1000 == pytest.approx(11.0, rel=1e-6)
    assert c.register_wh == tx.meter_stop_wh
    assert seen == [("GroundFailure", True)]
    assert (c.error_code, c.faulted, c.status) == (NO_ERROR, False, S.AVAILABLE)
    assert st_.transactions() == []


def test_a_faulted_connector_takes_no_ev_until_repaired() -> None:
    env, st_, sink = station([ev(1 * H, dwell_h=1), ev(4 * H, dwell_h=1)])
    at(env, 0.5 * H, lambda: st_.fault_connector(1, "HighTemperature", 2 * H))
    env.run(until=3 * H)
    assert st_.site.turned_away == 1 and sink.of("started") == []
    assert sink.statuses("cs0/1") == [S.FAULTED, S.AVAILABLE]
    env.run(until=8 * H)
    assert len(sink.of("started")) == 1  # the EV after the repair charges
    assert sink.statuses("cs0/1")[-1] is S.AVAILABLE


def test_a_waiting_ev_takes_the_connector_when_it_is_repaired() -> None:
    env, st_, sink = station([ev(1 * H, dwell_h=5, patience=4 * H)])
    at(env, 0.5 * H, lambda: st_.fault_connector(1, "OtherError", 1 * H))
    env.run(until=2 * H)
    ((_, _, t, _),) = sink.of("started")
    assert t == 1.5 * H and st_.site.waited == 1


def test_a_fault_during_a_fault_extends_the_repair_and_keeps_the_first_error() -> None:
    env, st_, sink = station()
    c = st_.connectors[0]
    at(env, 1 * H, lambda: st_.fault_connector(1, "GroundFailure", 2 * H))
    at(env, 2 * H, lambda: st_.fault_connector(1, "OverCurrentFailure", 3 * H))
    at(env, 2.5 * H, lambda: st_.fault_connector(1, "OverVoltage", 0.1 * H))  # ends earlier
    env.run(until=4.9 * H)
    assert c.status is S.FAULTED and c.error_code == "GroundFailure"
    env.run(until=6 * H)
    assert c.status is S.AVAILABLE
    assert [(k, t, p) for k, t, p in kinds(sink)] == [
        ("status", 1 * H, S.FAULTED),
        ("status", 5 * H, S.AVAILABLE),
    ]


def test_a_fault_while_preparing_sends_the_ev_away_without_a_transaction() -> None:
    class Silent:
        """Never answers: the driver waits for the CSMS."""

        def authorize(self, connector: Connector, id_tag: str) -> simpy.Event:
            return connector.station.env.event()

    env, st_, sink = station([ev(1 * H)], authorizer=Silent())
    at(env, 1.5 * H, lambda: st_.fault_connector(1, "ReaderFailure", 1 * H))
    env.run(until=5 * H)
    assert sink.statuses("cs0/1") == [S.PREPARING, S.FAULTED, S.AVAILABLE]
    assert sink.of("started") == [] and [t for _, _, t, _ in sink.of("left")] == [1.5 * H]
    # Nothing of the abandoned session lingers: a remote start now waits for a new driver.
    assert st_.remote_start("TAG", 1) == 1
    assert st_.connectors[0].status is S.PREPARING


def test_a_fault_while_finishing_sends_the_waiting_car_away() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8)])
    at(env, 1 * H, lambda: st_.connectors[0].end_transaction(StopReason.REMOTE))
    at(env, 2 * H, lambda: st_.fault_connector(1, "GroundFailure", 1 * H))
    env.run(until=5 * H)
    (ended,) = sink.of("ended")
    assert ended[3].stop_reason is StopReason.REMOTE
    assert sink.statuses("cs0/1")[-3:] == [S.FINISHING, S.FAULTED, S.AVAILABLE]
    assert [t for _, _, t, _ in sink.of("left")] == [2 * H]


def test_a_fault_while_the_car_is_full_keeps_the_energy_it_got() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8, energy=5)])
    at(env, 3 * H, lambda: st_.fault_connector(1, "GroundFailure", 1 * H))
    env.run(until=5 * H)
    assert sink.statuses("cs0/1") == [
        S.PREPARING,
        S.CHARGING,
        S.SUSPENDED_EV,
        S.FAULTED,
        S.AVAILABLE,
    ]
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.stop_s == 3 * H and tx.charge_end_s < 1 * H
    assert tx.meter_stop_wh - tx.meter_start_wh == pytest.approx(5000.0, rel=1e-6)


def test_a_fault_in_the_instant_an_ev_is_handed_over_sends_it_away() -> None:
    env, st_, sink = station()
    car = ev(1 * H)

    def arrive_and_fail() -> bool:
        st_.site.arrive(car, st_)
        return st_.fault_connector(1, "GroundFailure", 1 * H)

    at(env, 1 * H, arrive_and_fail)
    env.run(until=3 * H)
    assert sink.statuses("cs0/1") == [S.FAULTED, S.AVAILABLE]
    assert sink.of("started") == []
    assert [(t, p) for _, _, t, p in sink.of("left")] == [(1 * H, car)]


def test_a_fault_in_the_instant_of_a_stop_and_a_limit_change_is_still_clean() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8)])
    c = st_.connectors[0]

    def everything() -> None:
        c.set_limit(ChargingLimit(8.0, "A"))  # interrupts the charge before the fault
        st_.fault_connector(1, "GroundFailure", 1 * H)
        c.end_transaction(StopReason.REMOTE)  # too late: the fault ends the transaction
        c.set_limit(None)

    at(env, 1 * H, everything)
    env.run(until=3 * H)
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.stop_reason is FAULT_STOP_REASON and tx.stop_s == 1 * H
    assert c.status is S.AVAILABLE and c.stop_requested is None


def test_a_limit_change_in_the_instant_after_a_fault_is_harmless() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8)])
    c = st_.connectors[0]

    def fault_then_limit() -> None:
        st_.fault_connector(1, "GroundFailure", 1 * H)
        c.set_limit(ChargingLimit(8.0, "A"))

    at(env, 1 * H, fault_then_limit)
    env.run(until=3 * H)
    assert sink.statuses("cs0/1") == [S.PREPARING, S.CHARGING, S.FAULTED, S.AVAILABLE]
    ((_, _, _, tx),) = sink.of("ended")
    assert tx.stop_reason is FAULT_STOP_REASON


def test_a_fault_from_the_connector_s_own_process_strikes_in_the_same_instant() -> None:
    class FailsWhenCharging(Recorder):
        """A sink that faults the connector the moment it reports Charging."""

        def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
            super().status_changed(connector, status, t)
            if status is S.CHARGING:
                connector.station.fault_connector(connector.evse_id, "OtherError", H)

    env = simpy.Environment()
    sink = FailsWhenCharging()
    site = Site(env, "test", 0, sink)
    st_ = Station(env, site, 0, "cs0", StationSpec(AC11), sink, AcceptAll(), [ev(60.0)])
    env.run(until=3 * H)
    assert sink.statuses("cs0/1") == [S.PREPARING, S.CHARGING, S.FAULTED, S.AVAILABLE]
    ((_, _, t, tx),) = sink.of("ended")
    assert t == 60.0 and tx.stop_reason is FAULT_STOP_REASON and not st_.connectors[0].faulted


def test_a_reservation_waits_for_the_repair_and_its_holder_cannot_take_a_faulted_connector() -> (
    None
):
    env, st_, sink = station([ev(2 * H)])  # the reservation's holder (same tag) arrives
    assert st_.reserve(7, 1, ev(0).id_tag, 5 * H) == "Accepted"
    at(env, 1 * H, lambda: st_.fault_connector(1, "GroundFailure", 2 * H))
    env.run(until=2.5 * H)
    assert sink.of("started") == [] and st_.site.turned_away == 1
    assert st_.reserve(8, 1, "OTHER", 6 * H) == "Faulted"
    env.run(until=4 * H)
    assert sink.statuses("cs0/1") == [S.RESERVED, S.FAULTED, S.RESERVED]


def test_remote_starts_refuse_a_faulted_connector_and_a_waiting_one_is_dropped() -> None:
    env, st_, sink = station()
    # The driver of the remote start would plug in 5-15 minutes later, during the fault.
    st_.remote_start_model = RemoteStartModel(600.0, 0.0, 3600.0)
    st_.walk_in = lambda now, rng: ev(now)
    at(env, 1 * H, lambda: st_.remote_start("TAG", 1))
    at(env, 1 * H + 10, lambda: st_.fault_connector(1, "GroundFailure", 1 * H))
    refused = at(env, 1.5 * H, lambda: st_.remote_start("TAG", 1))
    env.run(until=3 * H)
    assert refused == [None]
    assert sink.statuses("cs0/1") == [S.PREPARING, S.FAULTED, S.AVAILABLE]
    assert sink.of("started") == [] and st_.connectors[0]._claim is None


def test_inoperative_while_faulted_is_unavailable_after_the_repair() -> None:
    env, st_, sink = station()
    at(env, 1 * H, lambda: st_.fault_connector(1, "GroundFailure", 1 * H))
    answer = at(env, 1.5 * H, lambda: st_.change_availability(1, False))
    env.run(until=3 * H)
    assert answer == ["Accepted"]
    assert sink.statuses("cs0/1") == [S.FAULTED, S.UNAVAILABLE]


def test_other_connectors_keep_working_and_unknown_evses_are_refused() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=4), ev(0.5 * H, dwell_h=4)], connectors=2)
    assert st_.fault_connector(3, "GroundFailure", 1 * H) is False
    at(env, 1 * H, lambda: st_.fault_connector(2, "GroundFailure", 1 * H))
    env.run(until=6 * H)
    assert S.FAULTED not in sink.statuses("cs0/1")
    assert sink.statuses("cs0/2")[-2:] == [S.FAULTED, S.AVAILABLE]
    reasons = {w: p.stop_reason for k, w, _, p in sink.events if k == "ended"}
    assert reasons == {"cs0/1": StopReason.LOCAL, "cs0/2": FAULT_STOP_REASON}


def test_a_private_charger_that_is_faulted_turns_its_car_away() -> None:
    env, st_, _ = station([ev(1 * H)], private=True)
    at(env, 0.5 * H, lambda: st_.fault_connector(1, "GroundFailure", 2 * H))
    env.run(until=2 * H)
    assert st_.site.turned_away == 1 and st_.site.absorbed == 0


# -- power loss ----------------------------------------------------------------------------------


def test_a_power_loss_ends_transactions_with_power_loss_and_calls_the_hook() -> None:
    env, st_, sink = station([ev(0.0, dwell_h=8), ev(0.1 * H, dwell_h=8)], connectors=2)
    calls: list[tuple[float, float]] = []
    st_.on_power_loss = lambda downtime: calls.append((env.now, downtime))
    downs: list[float] = []
    st_.on_down = lambda: downs.append(env.now)
    at(env, 1 * H, lambda: st_.power_loss(600.0))
    up: list[bool] = []
    at(env, 1 * H + 300, lambda: up.append(st_.up))
    env.run(until=2 * H)
    assert calls == [(1 * H, 600.0)] and downs == [1 * H]
    ended = sink.of("ended")
    assert len(ended) == 2
    assert {p.stop_reason for *_, p in ended} == {StopReason.POWER_LOSS}
    assert {t for _, _, t, _ in ended} == {1 * H}
    assert up == [False] and st_.up
    # Like a reboot, the cars stay plugged in until their drivers return.
    assert sink.of("left") == []


def test_a_power_loss_makes_the_next_2_0_1_boot_a_power_up() -> None:
    _, st_, _ = station()
    control = ChargerControl(st_, ChargerBehaviour(), ChargerSettings(), np.random.default_rng(1))
    assert control.reset("hard") == "Accepted"
    assert control.boot_reason == "RemoteReset"
    st_.on_power_loss = control.power_lost
    st_.power_loss(60.0)
    assert control.boot_reason == "PowerUp"


# -- protocol ------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
def test_statuses_carry_the_error_code_in_1_6_and_every_frame_is_valid(version: str) -> None:
    adapter = (V16Adapter if version == "1.6" else V201Adapter)(identity(), STAMPS)
    harness = Harness(adapter)  # validates every frame against the ocpp package's schemas
    env, st_ = protocol_station(harness, [ev(0.0, dwell_h=8)])
    at(env, 1 * H, lambda: st_.fault_connector(1, "OverCurrentFailure", 1 * H))
    env.run(until=3 * H)
    if version == "1.6":
        statuses = [(p["status"], p["errorCode"]) for p in harness.payloads("StatusNotification")]
        assert statuses == [
            ("Preparing", "NoError"),
            ("Charging", "NoError"),
            ("Faulted", "OverCurrentFailure"),
            ("Available", "NoError"),
        ]
        (stop,) = harness.payloads("StopTransaction")
        assert stop["reason"] == "Other"
        sent = [(m.action, p) for m, p in harness.sent]
        faulted = next(i for i, (_, p) in enumerate(sent) if p.get("status") == "Faulted")
        assert sent.index(("StopTransaction", stop)) > faulted
        # A boot or a TriggerMessage while faulted reports the error code too.
        at(env, 3.5 * H, lambda: st_.fault_connector(1, "GroundFailure", 1 * H))
        env.run(until=3.6 * H)
        (*_, one) = adapter.connector_statuses(st_, env.now)
        assert (one.payload["status"], one.payload["errorCode"]) == ("Faulted", "GroundFailure")
        assert adapter.connector_status(st_, 1, env.now).payload["errorCode"] == "GroundFailure"
    else:
        statuses = [p["connectorStatus"] for p in harness.payloads("StatusNotification")]
        assert statuses == ["Occupied", "Faulted", "Available"]
        ended = harness.payloads("TransactionEvent")[-1]
        assert ended["eventType"] == "Ended"
        assert ended["triggerReason"] == "AbnormalCondition"
        assert ended["transactionInfo"]["stoppedReason"] == "Other"


# -- random faults on a busy station ---------------------------------------------------------------


class Checked(Recorder):
    """A recorder that checks each connector's status sequence against the diagram itself."""

    def __init__(self) -> None:
        super().__init__()
        self.last: dict[str, ConnectorStatus] = {}

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        where = f"{connector.station.charger_id}/{connector.evse_id}"
        before = self.last.get(where, S.AVAILABLE)
        assert status in LEGAL_TRANSITIONS[before], (where, before, status)
        assert (status is S.FAULTED) == (connector.error_code != NO_ERROR)
        self.last[where] = status
        super().status_changed(connector, status, t)


events = st.lists(
    st.tuples(
        st.floats(0.0, 30 * H),
        st.sampled_from(["fault", "power", "stop", "limit", "unavailable", "available"]),
        st.integers(1, 2),
        st.floats(0.0, 4 * H),
    ),
    max_size=25,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=events, seed=st.integers(0, 2**32 - 1))
def test_random_faults_on_a_busy_station_never_break_the_status_diagram(
    events: list[tuple[float, str, int, float]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    arrivals = np.sort(rng.uniform(0, 30 * H, 30))
    demand = [
        ev(
            float(a),
            dwell_h=float(rng.uniform(0.2, 6)),
            energy=float(rng.uniform(1, 40)),
            patience=float(rng.choice([0.0, 1 * H])),
        )
        for a in arrivals
    ]
    env = simpy.Environment()
    sink = Checked()
    site = Site(env, "test", 0, sink)
    spec = StationSpec(AC11, 2, 30.0, 900.0)
    st_ = Station(env, site, 0, "cs0", spec, sink, AcceptAll(), demand)
    Station(env, site, 1, "cs1", spec, sink, AcceptAll(), [])  # somewhere else to go

    def act(kind: str, evse: int, length: float) -> None:
        c = st_.connectors[evse - 1]
        if kind == "fault":
            st_.fault_connector(evse, "GroundFailure", length)
        elif kind == "power":
            st_.power_loss(length)
        elif kind == "stop":
            c.end_transaction(StopReason.REMOTE)
        elif kind == "limit":
            c.set_limit(ChargingLimit(length % 32, "A"))
        else:
            st_.change_availability(evse, kind == "available")

    for t, kind, evse, length in events:
        at(env, t, lambda k=kind, e=evse, n=length: act(k, e, n))
    env.run(until=40 * H)  # every repair and reboot is over by then
    site.expire_waiting(env.now)
    for c in st_.connectors:
        assert not c.faulted and c.error_code == NO_ERROR and c.status is not S.FAULTED
    # Every transaction that started ended once, and every EV that plugged in left once.
    started = [p for k, _, _, p in sink.events if k == "started"]
    ended = [p for k, _, _, p in sink.events if k == "ended"]
    assert len({id(t) for t in ended}) == len(ended)
    open_now = [t for t in started if t.open]
    assert len(ended) + len(open_now) == len(started)
    plugged = sum(1 for c in site.connectors if c.ev is not None)
    came = sum(1 for k, *_ in sink.events if k in ("left", "turned_away")) + plugged
    assert came + site.absorbed == len(demand)
    faults = sum(1 for _, kind, *_ in events if kind == "fault")
    assert (S.FAULTED in sink.statuses("cs0/1") + sink.statuses("cs0/2")) == (faults > 0)
    for tx in ended:
        assert tx.stop_s >= tx.start_s and tx.meter_stop_wh >= tx.meter_start_wh


# -- the fleet and the offline summary ------------------------------------------------------------


def small(faults: dict[str, Any] | None = None, days: float = 3.0) -> Scenario:
    data: dict[str, Any] = {
        "seed": 5,
        "days": days,
        "sites": [
            {"name": "street", "archetype": "public_ac", "chargers": 4},
            {"name": "homes", "archetype": "home", "chargers": 3},
        ],
    }
    if faults is not None:
        data["faults"] = faults
    return parse_scenario(data)


def output_bytes(scenario: Scenario, **kwargs: Any) -> bytes:
    result = simulate(scenario, **kwargs)
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_all(result, Path(tmp), 900)
        return b"".join(p.read_bytes() for p in paths[:3])


# sha256 of sessions.csv + load.csv + summary.json, made with the code before station faults
# existed: a scenario without faults must still give exactly these bytes.
BEFORE_FAULTS = {
    ("quickstart", 3, 12): "7bfbfd5dc84073013b219ac78c4123583372e0ec21e029433a459a0ad5e8fe40",
    ("retail", 2, 6): "657fc6ca44ec1020540a2f5d17433289ccfce0d342e277976da9a7426ea1ba1f",
    ("depot", 2, 4): "7d961d9e8f2c9265fe5913adc181cfba3805a9e0e5051c971748dcb6a49dc6c7",
}


@pytest.mark.parametrize(("name", "days", "chargers"), list(BEFORE_FAULTS))
def test_a_scenario_without_faults_gives_the_bytes_it_gave_before_faults(
    name: str, days: int, chargers: int
) -> None:
    data = output_bytes(load_scenario(name), days=days, chargers=chargers)
    assert hashlib.sha256(data).hexdigest() == BEFORE_FAULTS[(name, days, chargers)]


def test_faults_that_never_happen_change_no_byte_but_the_summary_block() -> None:
    plain = simulate(small())
    idle = simulate(small({"connector_faults": {"mtbf": "100000d"}, "power_loss": {"at": ["99d"]}}))
    assert "faults" not in plain.summary
    assert idle.summary.pop("faults") == {
        "connector_faults": 0,
        "power_losses": 0,
        "connector_downtime_h": 0.0,
        "sites": {
            s: {"connector_faults": 0, "power_losses": 0, "connector_downtime_h": 0.0}
            for s in ("street", "homes")
        },
    }
    assert idle.summary == plain.summary
    for key, column in plain.sessions.columns.items():
        assert np.array_equal(column, idle.sessions.columns[key], equal_nan=True), key


def test_faults_are_the_same_for_a_seed_and_show_in_the_summary() -> None:
    faults = {
        "connector_faults": {"mtbf": "1d", "repair": "3h", "sites": ["street"]},
        "power_loss": {"mtbf": "2d", "at": ["12h"], "downtime": "10m", "site": "homes"},
    }
    a, b = simulate(small(faults)), simulate(small(faults))
    assert a.summary == b.summary
    block = a.summary["faults"]
    assert block["sites"]["homes"]["connector_faults"] == 0  # not a site with connector faults
    assert block["sites"]["street"]["power_losses"] == 0
    assert block["sites"]["street"]["connector_faults"] > 0
    # The fixed loss hits all 3 home chargers at 12 h, plus random ones.
    assert block["sites"]["homes"]["power_losses"] > 3
    assert 0 < block["connector_downtime_h"] <= 4 * 3 * 24
    assert block["connector_faults"] == sum(s["connector_faults"] for s in block["sites"].values())
    # The sessions that met a fault lost energy: less was served than without faults.
    plain = simulate(small())
    served = a.summary["sites"]["street"]["energy_served_share"]
    assert served < plain.summary["sites"]["street"]["energy_served_share"]
    other = simulate(small(faults).model_copy(update={"seed": 6}))
    assert other.summary["faults"] != block


def test_fixed_power_losses_count_from_the_start_after_the_warm_up() -> None:
    # One day of warm-up, one reported: 20 h after the start is inside the horizon, on all 7
    # chargers; 30 h is past it.
    inside = simulate(small({"power_loss": {"at": ["20h"], "downtime": "5m"}}, days=1))
    assert inside.summary["faults"]["power_losses"] == 7
    past = simulate(small({"power_loss": {"at": ["30h"], "downtime": "5m"}}, days=1))
    assert past.summary["faults"]["power_losses"] == 0
    block = inside.summary["faults"]
    assert block["connector_downtime_h"] == 0.0


def test_connector_downtime_is_the_union_of_overlapping_repairs_within_the_horizon() -> None:
    from simulator.station_faults import FaultLog

    log = FaultLog()
    env = simpy.Environment()
    site = Site(env, "a", 0, Recorder())
    st_ = Station(env, site, 0, "cs0", StationSpec(AC11, 2), Recorder(), AcceptAll())
    log.connector_fault(st_, 1, 10.0, 100.0)  # 10-110
    log.connector_fault(st_, 1, 50.0, 100.0)  # 50-150: extends to 150
    log.connector_fault(st_, 2, 50.0, 100.0)  # another connector: counts on its own
    log.connector_fault(st_, 1, 190.0, 100.0)  # 190-290, cut at 200
    log.power_loss(st_, 250.0)  # outside the window
    block = log.summary(["a"], 0.0, 200.0)
    assert block["connector_faults"] == 4 and block["power_losses"] == 0
    assert block["connector_downtime_h"] == round((140 + 100 + 10) / 3600, 4)


def test_faults_are_not_drawn_on_connectors_of_a_site_they_do_not_name() -> None:
    faults = FaultsConfig.model_validate({"connector_faults": {"mtbf": "1h", "sites": ["homes"]}})
    scenario = small().model_copy(update={"faults": faults})
    block = simulate(scenario, days=1).summary["faults"]
    assert block["sites"]["street"]["connector_faults"] == 0
    # 3 home chargers, one connector each, one fault an hour for a day: about 72.
    assert 30 < block["sites"]["homes"]["connector_faults"] < 130
    assert math.isfinite(block["connector_downtime_h"])


def test_power_losses_draw_from_their_own_stream_and_shift_no_connector_fault() -> None:
    from models.calendar import Calendar
    from simulator.fleet import Fleet
    from simulator.offline import SessionRecorder
    from simulator.scenario import DEFAULT_OFFLINE_START

    def fault_times(faults: dict[str, Any]) -> list[tuple[int, float]]:
        return fault_log(faults).connector_faults

    def fault_log(faults: dict[str, Any]) -> Any:
        scenario = small(faults)
        env = simpy.Environment()
        fleet = Fleet(
            scenario,
            env,
            Calendar(DEFAULT_OFFLINE_START, "UTC"),
            SessionRecorder(0, 1e9),
            AcceptAll(),
        )
        env.run(until=5 * 86400)
        assert fleet.fault_log is not None
        return fleet.fault_log

    alone = fault_times({"connector_faults": {"mtbf": "1d"}})
    with_power = fault_times({"connector_faults": {"mtbf": "1d"}, "power_loss": {"mtbf": "1d"}})
    assert len(alone) > 10 and alone == with_power
    # Not a copy of the connector stream either: the home chargers have one connector each,
    # so with the same MTBF the same stream would fail both at the same moments.
    power = fault_log({"connector_faults": {"mtbf": "1d"}, "power_loss": {"mtbf": "1d"}})
    homes = 1
    assert {t for s, t in power.power_losses if s == homes}
    assert not {t for s, t in power.power_losses if s == homes} & {
        t for s, t in power.connector_faults if s == homes
    }
