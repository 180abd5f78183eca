"""OCPP 2.0.1 adapter: schema-valid payloads, status mapping, TransactionEvent sequences."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.physics import ChargingLimit
from simulator.events import MeterSample, StopReason
from simulator.protocol.base import ChargerIdentity
from simulator.protocol.v201 import V201Adapter, transaction_id_prefix
from simulator.station import ConnectorStatus, Transaction

from .harness import (
    AC_CONNECTOR,
    DC_CONNECTOR,
    STAMPS,
    Harness,
    ev,
    identity,
    meter_samples,
    station,
    transactions,
    validate_request,
)

S = ConnectorStatus


def adapter(charger_id: str = "cs0") -> V201Adapter:
    return V201Adapter(identity(charger_id), STAMPS)


def tokens(h: Harness) -> list[str]:
    """Sent messages as "StatusNotification:<status>", "<eventType>:<triggerReason>[:<state>]"
    or "Authorize", with runs of periodic meter events merged into one "MeterValuePeriodic*"."""
    out: list[str] = []
    for message, p in h.sent:
        if message.action == "StatusNotification":
            token = "StatusNotification:" + p["connectorStatus"]
        elif message.action == "TransactionEvent":
            token = f"{p['eventType']}:{p['triggerReason']}"
            if p["triggerReason"] == "ChargingStateChanged":
                token += ":" + p["transactionInfo"]["chargingState"]
            elif p["triggerReason"] == "MeterValuePeriodic":
                token = "MeterValuePeriodic*"
                if out and out[-1] == token:
                    continue
        else:
            token = message.action
        out.append(token)
    return out


SESSION = [
    "StatusNotification:Occupied",
    "Authorize",
    "Started:Authorized",
    "Updated:ChargingStateChanged:Charging",
    "MeterValuePeriodic*",
    "Updated:ChargingStateChanged:SuspendedEV",
    "MeterValuePeriodic*",
    "Ended:StopAuthorized",
    "StatusNotification:Available",
]


def events_by_tx(h: Harness) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for message, p in h.sent:
        if message.action == "TransactionEvent":
            assert message.transactional and message.tx is not None
            out.setdefault(p["transactionInfo"]["transactionId"], []).append(p)
    return out


def energy_values(payload: dict[str, Any]) -> list[float]:
    return [
        v["value"]
        for mv in payload.get("meterValue", [])
        for v in mv["sampledValue"]
        if v["measurand"] == "Energy.Active.Import.Register"
    ]


def test_boot_heartbeat_authorize_and_outcomes() -> None:
    long = ChargerIdentity("cs-long", "V" * 60, "M" * 30, "S" * 30, "F" * 60)
    a = V201Adapter(long, STAMPS)
    assert (a.version, a.subprotocol) == ("2.0.1", "ocpp2.0.1")
    boot = a.boot_notification(0.0)
    validate_request("2.0.1", boot.action, boot.payload)
    assert boot.payload == {
        "reason": "PowerUp",
        "chargingStation": {
            "model": "M" * 20,
            "vendorName": "V" * 50,
            "serialNumber": "S" * 25,
            "firmwareVersion": "F" * 50,
        },
    }
    beat = a.heartbeat(1.0)
    validate_request("2.0.1", beat.action, beat.payload)
    assert beat.payload == {}
    _, st_ = station(Harness(a), [])
    auth = a.authorize(st_.connectors[0], "0123ABCD", 2.0)
    validate_request("2.0.1", auth.action, auth.payload)
    assert auth.payload == {"idToken": {"idToken": "0123ABCD", "type": "ISO14443"}}
    assert V201Adapter.boot_outcome({"status": "Accepted", "currentTime": "x", "interval": 60}) == (
        "Accepted",
        60.0,
    )
    assert V201Adapter.authorize_outcome({"idTokenInfo": {"status": "Accepted"}})
    assert not V201Adapter.authorize_outcome({"idTokenInfo": {"status": "Invalid"}})


def test_statuses_map_to_2_0_1_and_repeat_only_when_they_change() -> None:
    a = adapter()
    h = Harness(a)
    _, st_ = station(h, [], connectors=2)
    one, two = st_.connectors
    h.send(a.connector_statuses(st_, 0.0))
    assert [(p["evseId"], p["connectorId"], p["connectorStatus"]) for _, p in h.sent] == [
        (1, 1, "Available"),
        (2, 1, "Available"),
    ]
    # No transaction open: only the connector status counts.
    sent = {
        status: [m.payload["connectorStatus"] for m in a.status_changed(one, status, 1.0)]
        for status in (
            S.AVAILABLE,  # already sent by connector_statuses
            S.PREPARING,
            S.CHARGING,
            S.SUSPENDED_EV,
            S.SUSPENDED_EVSE,
            S.FINISHING,
            S.RESERVED,
            S.UNAVAILABLE,
            S.FAULTED,
            S.AVAILABLE,
        )
    }
    assert sent == {
        S.AVAILABLE: ["Available"],  # the second Available, after Faulted
        S.PREPARING: ["Occupied"],
        S.CHARGING: [],
        S.SUSPENDED_EV: [],
        S.SUSPENDED_EVSE: [],
        S.FINISHING: [],
        S.RESERVED: ["Reserved"],
        S.UNAVAILABLE: ["Unavailable"],
        S.FAULTED: ["Faulted"],
    }
    # EVSE 2 has its own memory; a new connector_statuses resets both.
    assert [m.payload["evseId"] for m in a.status_changed(two, S.PREPARING, 2.0)] == [2]
    assert a.status_changed(two, S.CHARGING, 2.0) == []
    assert len(a.connector_statuses(st_, 3.0)) == 2
    (again,) = a.status_changed(two, S.PREPARING, 4.0)
    validate_request("2.0.1", again.action, again.payload)
    assert again.payload == {
        "timestamp": STAMPS.iso(4.0),
        "connectorStatus": "Occupied",
        "evseId": 2,
        "connectorId": 1,
    }


def test_two_whole_sessions_send_the_transaction_event_sequence() -> None:
    a = adapter("cs7")
    h = Harness(a)
    env, _ = station(
        h, [ev(3600.0, dwell_h=8, energy=20), ev(12 * 3600, dwell_h=6, energy=10)], charger_id="cs7"
    )
    env.run(until=86400)
    assert tokens(h) == SESSION + SESSION

    first, second = transactions(h)
    by_tx = events_by_tx(h)
    assert list(by_tx) == [f"cs7-{first.seq}", f"cs7-{second.seq}"] == ["cs7-1", "cs7-2"]
    for tx, events in zip((first, second), by_tx.values(), strict=True):
        assert [e["seqNo"] for e in events] == list(range(len(events)))
        assert len(events) > 100  # a sample a minute for hours
        started, ended = events[0], events[-1]
        assert started["evse"] == {"id": 1, "connectorId": 1}
        assert started["idToken"] == {"idToken": "0123ABCD", "type": "ISO14443"}
        assert started["transactionInfo"]["chargingState"] == "EVConnected"
        assert started["timestamp"] == STAMPS.iso(tx.start_s)
        assert ended["timestamp"] == STAMPS.iso(tx.stop_s)
        assert ended["transactionInfo"] == {
            "transactionId": f"cs7-{tx.seq}",
            "stoppedReason": "Local",
            "chargingState": "EVConnected",
        }
        contexts = [e["meterValue"][0]["sampledValue"][0]["context"] for e in (started, ended)]
        assert contexts == ["Transaction.Begin", "Transaction.End"]
        begin, end = energy_values(started)[0], energy_values(ended)[0]
        assert (begin, end) == (round(tx.meter_start_wh, 1), round(tx.meter_stop_wh, 1))
        assert abs((end - begin) - round(tx.meter_stop_wh - tx.meter_start_wh)) <= 1
        registers = [e for ev_ in events for e in energy_values(ev_)]
        assert registers == sorted(registers)
        assert begin <= min(registers) and max(registers) <= end
        states = [
            e["transactionInfo"]["chargingState"]
            for e in events
            if e["triggerReason"] == "ChargingStateChanged"
        ]
        assert states == ["Charging", "SuspendedEV"]
    assert (energy_values(by_tx["cs7-1"][-1]), energy_values(by_tx["cs7-2"][0])) == (
        [20000.0],
        [20000.0],
    )
    assert a._txs == {}  # per-transaction memory dropped at Ended


def test_a_paused_charge_reports_each_charging_state_change_once() -> None:
    h = Harness(adapter())
    env, st_ = station(h, [ev(0.0, dwell_h=8, energy=20)])
    connector = st_.connectors[0]

    def operator() -> Any:
        yield env.timeout(1800)
        connector.set_limit(ChargingLimit(0.0))  # pause: SuspendedEVSE
        yield env.timeout(600)
        connector.set_limit(ChargingLimit(8000.0))  # a new plan, still Charging: no event
        yield env.timeout(600)
        connector.set_limit(None)
        yield env.timeout(600)
        connector.set_limit(ChargingLimit(0.0))

    env.process(operator())
    env.run(until=86400)
    (events,) = events_by_tx(h).values()
    states = [
        (e["timestamp"], e["transactionInfo"]["chargingState"])
        for e in events
        if e["triggerReason"] == "ChargingStateChanged"
    ]
    assert states == [
        (STAMPS.iso(0.0), "Charging"),
        (STAMPS.iso(1800.0), "SuspendedEVSE"),
        (STAMPS.iso(2400.0), "Charging"),
        (STAMPS.iso(3600.0), "SuspendedEVSE"),
    ]
    assert [e["seqNo"] for e in events] == list(range(len(events)))
    assert [p["connectorStatus"] for p in h.payloads("StatusNotification")] == [
        "Occupied",
        "Available",
    ]


def test_charge_planned_reports_a_state_the_status_did_not() -> None:
    a = adapter()
    h = Harness(a)
    _, st_ = station(h, [])
    connector = st_.connectors[0]
    tx = Transaction(1, connector, ev(0.0), "TAG", 0.0, 0.0, 0.0)
    h.send(a.transaction_started(connector, tx, connector.sample(0.0), 0.0))
    connector.status = S.CHARGING  # as if the status change had gone elsewhere
    plan: Any = None  # the adapter reads the charging state off the connector, not the plan
    (event,) = a.charge_planned(connector, tx, plan, 5.0)
    h.send(event)
    assert (event.payload["seqNo"], event.payload["transactionInfo"]["chargingState"]) == (
        1,
        "Charging",
    )
    assert a.charge_planned(connector, tx, plan, 6.0) == []
    connector.tx = tx
    # The status later: its (first) StatusNotification, but no second ChargingStateChanged.
    assert [m.action for m in a.status_changed(connector, S.CHARGING, 7.0)] == [
        "StatusNotification"
    ]
    connector.status = S.PREPARING
    assert a.charge_planned(connector, tx, plan, 8.0) == []  # no charging state implied


@pytest.mark.parametrize(
    ("reason", "trigger", "stopped", "state"),
    [
        (StopReason.LOCAL, "StopAuthorized", "Local", "EVConnected"),
        (StopReason.EV_DISCONNECTED, "EVCommunicationLost", "EVDisconnected", "Idle"),
        (StopReason.REMOTE, "RemoteStop", "Remote", "EVConnected"),
        (StopReason.DE_AUTHORIZED, "Deauthorized", "DeAuthorized", "EVConnected"),
        (StopReason.POWER_LOSS, "AbnormalCondition", "PowerLoss", "EVConnected"),
        (StopReason.REBOOT, "ResetCommand", "Reboot", "EVConnected"),
        (StopReason.OTHER, "AbnormalCondition", "Other", "EVConnected"),
    ],
)
def test_every_stop_reason_maps_to_a_valid_ended_event(
    reason: StopReason, trigger: str, stopped: str, state: str
) -> None:
    a = adapter()
    h = Harness(a)
    _, st_ = station(h, [])
    connector = st_.connectors[0]
    tx = Transaction(4, connector, ev(0.0), "TAG", 10.0, 1000.44, 0.0)
    tx.stop_s, tx.meter_stop_wh, tx.stop_reason, tx.open = 70.0, 2500.66, reason, False
    h.send(a.transaction_started(connector, tx, connector.sample(10.0), 10.0))
    h.send(a.transaction_ended(connector, tx, connector.sample(70.0), 70.0))
    started, ended = h.payloads("TransactionEvent")
    assert (started["seqNo"], ended["seqNo"]) == (0, 1)
    assert ended["triggerReason"] == trigger
    assert ended["transactionInfo"] == {
        "transactionId": "cs0-4",
        "stoppedReason": stopped,
        "chargingState": state,
    }
    assert (energy_values(started), energy_values(ended)) == ([1000.4], [2500.7])
    assert ("idToken" in ended) == (reason is StopReason.LOCAL)
    assert a._txs == {}


def test_transaction_ids_fit_36_characters_and_stay_distinct() -> None:
    long_a, long_b = "site-" + "a" * 40 + "-1", "site-" + "a" * 40 + "-2"
    prefix_a = transaction_id_prefix(long_a)
    assert prefix_a == transaction_id_prefix(long_a)  # deterministic
    assert prefix_a != transaction_id_prefix(long_b)
    assert transaction_id_prefix("cs0") == "cs0"
    a = adapter(long_a)
    ids = {a.transaction_id(SimpleNamespace(seq=seq)) for seq in (1, 2, 10**10)}  # type: ignore[arg-type]
    assert len(ids) == 3 and all(len(i) <= 36 for i in ids)
    h = Harness(a)
    env, _ = station(h, [ev(0.0, dwell_h=1, energy=5)], charger_id=long_a)
    env.run(until=86400)
    assert len(events_by_tx(h)) == 1  # validated against the schema's maxLength on the way


@settings(max_examples=200, deadline=None)
@given(first=meter_samples, rest=st.lists(meter_samples, max_size=4), dc=st.booleans())
def test_any_meter_samples_make_valid_transaction_events(
    first: MeterSample, rest: list[MeterSample], dc: bool
) -> None:
    a = adapter()
    connector: Any = DC_CONNECTOR if dc else AC_CONNECTOR
    tx: Any = SimpleNamespace(
        seq=3,
        id_tag="0123ABCD",
        meter_start_wh=first.energy_wh,
        started_remotely=False,
        remote_id=None,
        reservation_id=None,
    )
    (started,) = a.transaction_started(connector, tx, first, 0.0)
    events = [started.payload]
    for i, sample in enumerate(rest, start=1):
        (message,) = a.meter_sampled(connector, tx, sample, 60.0 * i)
        assert a.prepare(message) is message.payload
        events.append(message.payload)
        values = message.payload["meterValue"][0]["sampledValue"]
        assert values[0]["value"] == pytest.approx(sample.energy_wh, abs=0.051)
        assert values[1]["value"] == pytest.approx(sample.power_w, abs=0.051)
        currents = [v for v in values if v["measurand"] == "Current.Import"]
        assert len(currents) == (1 if dc else sample.phases)
        assert all(("phase" in v) != dc for v in currents)
        socs = [v["value"] for v in values if v["measurand"] == "SoC"]
        assert socs == (
            [] if math.isnan(sample.soc) else [pytest.approx(sample.soc * 100, abs=0.051)]
        )
    for payload in events:
        validate_request("2.0.1", "TransactionEvent", payload)
    assert [e["seqNo"] for e in events] == list(range(len(events)))
