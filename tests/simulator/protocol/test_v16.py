"""OCPP 1.6J adapter: schema-valid payloads, message order over whole sessions, transactionIds."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.physics import ChargingLimit
from simulator.events import MeterSample, StopReason
from simulator.protocol.base import ChargerIdentity, Outbound
from simulator.protocol.v16 import UNKNOWN_TRANSACTION_ID, V16Adapter
from simulator.station import ConnectorStatus, Transaction

from .harness import (
    AC_CONNECTOR,
    DC50,
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


def adapter(charger_id: str = "cs0") -> V16Adapter:
    return V16Adapter(identity(charger_id), STAMPS)


def energy_values(payload: dict[str, Any]) -> list[float]:
    """The Energy.Active.Import.Register values of a MeterValues/StopTransaction payload."""
    key = "meterValue" if "meterValue" in payload else "transactionData"
    return [
        float(v["value"])
        for mv in payload[key]
        for v in mv["sampledValue"]
        if v["measurand"] == "Energy.Active.Import.Register"
    ]


def tokens(h: Harness) -> list[str]:
    """The sent messages as "Action" or "StatusNotification:<status>", MeterValues runs merged."""
    out: list[str] = []
    for message, payload in h.sent:
        token = message.action
        if token == "StatusNotification":
            token += ":" + payload["status"]
        if token == "MeterValues" and out and out[-1] == "MeterValues*":
            continue
        out.append("MeterValues*" if token == "MeterValues" else token)
    return out


SESSION = [
    "StatusNotification:Preparing",
    "Authorize",
    "StartTransaction",
    "StatusNotification:Charging",
    "MeterValues*",
    "StatusNotification:SuspendedEV",
    "MeterValues*",
    "StatusNotification:Finishing",
    "StopTransaction",
    "StatusNotification:Available",
]


def test_boot_heartbeat_and_connector_statuses_are_valid_and_truncated() -> None:
    long = ChargerIdentity("cs-long", "V" * 30, "M" * 30, "S" * 30, "F" * 60)
    a = V16Adapter(long, STAMPS)
    assert (a.version, a.subprotocol) == ("1.6", "ocpp1.6")
    boot = a.boot_notification(5.0)
    validate_request("1.6", boot.action, boot.payload)
    assert boot.action == "BootNotification" and not boot.transactional
    assert boot.payload == {
        "chargePointVendor": "V" * 20,
        "chargePointModel": "M" * 20,
        "chargePointSerialNumber": "S" * 25,
        "firmwareVersion": "F" * 50,
    }
    beat = a.heartbeat(6.0)
    assert (beat.action, beat.payload, beat.due_s) == ("Heartbeat", {}, 6.0)

    h = Harness(a)
    _, st_ = station(h, [], connectors=2)
    st_.connectors[1].status = S.FAULTED  # as if it had failed before the boot
    h.send(a.connector_statuses(st_, 60.0))
    assert [
        (p["connectorId"], p["status"], p["errorCode"]) for p in h.payloads("StatusNotification")
    ] == [
        (0, "Available", "NoError"),
        (1, "Available", "NoError"),
        (2, "Faulted", "NoError"),
    ]
    assert {p["timestamp"] for _, p in h.sent} == {"2025-03-01T00:01:00.000Z"}


def test_outcomes_read_the_csms_answers() -> None:
    assert V16Adapter.boot_outcome({"status": "Pending", "currentTime": "x", "interval": 30}) == (
        "Pending",
        30.0,
    )
    assert V16Adapter.authorize_outcome({"idTagInfo": {"status": "Accepted"}})
    assert not V16Adapter.authorize_outcome({"idTagInfo": {"status": "Blocked"}})


def test_two_whole_sessions_send_the_ocpp_sequence_with_coherent_energy() -> None:
    a = adapter()
    h = Harness(a)
    env, _ = station(h, [ev(3600.0, dwell_h=8, energy=20), ev(12 * 3600, dwell_h=6, energy=10)])
    env.run(until=86400)
    assert tokens(h) == SESSION + SESSION

    first, second = transactions(h)
    starts, stops = h.payloads("StartTransaction"), h.payloads("StopTransaction")
    assert [s["meterStart"] for s in starts] == [0, 20000]
    assert [s["meterStop"] for s in stops] == [20000, 30000]
    for tx, start, stop in zip((first, second), starts, stops, strict=True):
        delivered = tx.meter_stop_wh - tx.meter_start_wh
        assert abs((stop["meterStop"] - start["meterStart"]) - round(delivered)) <= 1
        assert start == {
            "connectorId": 1,
            "idTag": "0123ABCD",
            "meterStart": round(tx.meter_start_wh),
            "timestamp": STAMPS.iso(tx.start_s),
        }
        assert stop["reason"] == "Local" and stop["idTag"] == "0123ABCD"
        assert stop["timestamp"] == STAMPS.iso(tx.stop_s)
        assert [v["sampledValue"][0]["context"] for v in stop["transactionData"]] == [
            "Transaction.Begin",
            "Transaction.End",
        ]
        assert energy_values(stop) == pytest.approx([tx.meter_start_wh, tx.meter_stop_wh], abs=0.05)

    # The CSMS numbered the transactions 17 and 18: every later message carries the right one.
    by_tx: dict[int, list[dict[str, Any]]] = {first.seq: [], second.seq: []}
    for message, payload in h.sent:
        if message.action in ("MeterValues", "StopTransaction"):
            assert message.transactional and message.tx is not None
            by_tx[message.tx.seq].append(payload)
    for tx, tx_id in ((first, 17), (second, 18)):
        assert {p["transactionId"] for p in by_tx[tx.seq]} == {tx_id}
        registers = [e for p in by_tx[tx.seq][:-1] for e in energy_values(p)]
        assert len(registers) > 100  # a sample a minute for hours
        assert registers == sorted(registers)
        assert tx.meter_start_wh - 0.05 <= registers[0] and registers[-1] <= tx.meter_stop_wh + 0.05
    assert a._tx_ids == {}  # forgotten once each StopTransaction was accepted


def test_meter_values_are_coherent_with_the_sample() -> None:
    h = Harness(adapter())
    env, _ = station(h, [ev(0.0, dwell_h=3, energy=20)])
    env.run(until=1801)  # mid-charge, at full 11 kW on three phases
    message, payload = [(m, p) for m, p in h.sent if m.action == "MeterValues"][-1]
    values = payload["meterValue"][0]["sampledValue"]
    assert payload["meterValue"][0]["timestamp"] == STAMPS.iso(1800.0)
    assert payload["connectorId"] == 1 and payload["transactionId"] == 17
    by = {(v["measurand"], v.get("phase")): v for v in values}
    assert set(by) == {
        ("Energy.Active.Import.Register", None),
        ("Power.Active.Import", None),
        ("Current.Import", "L1"),
        ("Current.Import", "L2"),
        ("Current.Import", "L3"),
        ("Voltage", "L1-N"),
        ("Voltage", "L2-N"),
        ("Voltage", "L3-N"),
        ("SoC", None),
    }
    assert by["Power.Active.Import", None]["value"] == "11000.0"
    assert by["Power.Active.Import", None]["unit"] == "W"
    assert by["Current.Import", "L2"]["value"] == "15.94"  # 11 kW / (3 x 230 V)
    assert by["Voltage", "L3-N"]["value"] == "230.0"
    energy = by["Energy.Active.Import.Register", None]
    assert (energy["unit"], energy["context"], energy["location"]) == (
        "Wh",
        "Sample.Periodic",
        "Outlet",
    )
    # 30 min at 11 kW from an empty register.
    assert float(energy["value"]) == pytest.approx(5500.0, abs=0.1)
    soc = by["SoC", None]
    tx = message.tx
    assert tx is not None
    assert (soc["unit"], soc["location"]) == ("Percent", "EV")
    assert soc["value"] == f"{tx.soc_at(1800.0) * 100:.0f}" == "65"  # 0.555 + 5.5 kWh / 58 kWh


def test_dc_reports_one_current_and_one_voltage_without_phase() -> None:
    h = Harness(adapter())
    env, _ = station(h, [ev(0.0, dwell_h=2, energy=20)], rating=DC50)
    env.run(until=600)
    payload = h.payloads("MeterValues")[-1]
    values = payload["meterValue"][0]["sampledValue"]
    currents = [v for v in values if v["measurand"] == "Current.Import"]
    voltages = [v for v in values if v["measurand"] == "Voltage"]
    assert len(currents) == 1 and len(voltages) == 1
    assert "phase" not in currents[0] and "phase" not in voltages[0]
    power = float(next(v["value"] for v in values if v["measurand"] == "Power.Active.Import"))
    assert power == pytest.approx(50_000.0)
    assert float(currents[0]["value"]) * float(voltages[0]["value"]) == pytest.approx(
        power, rel=1e-3
    )


def test_a_paused_charge_reports_suspended_evse_and_no_extra_messages() -> None:
    h = Harness(adapter())
    env, st_ = station(h, [ev(0.0, dwell_h=8, energy=20)])
    connector = st_.connectors[0]

    def operator() -> Any:
        yield env.timeout(1800)
        connector.set_limit(ChargingLimit(0.0))
        yield env.timeout(1800)
        connector.set_limit(None)

    env.process(operator())
    env.run(until=86400)
    statuses = [p["status"] for p in h.payloads("StatusNotification")]
    assert statuses == [
        "Preparing",
        "Charging",
        "SuspendedEVSE",
        "Charging",
        "SuspendedEV",
        "Finishing",
        "Available",
    ]
    assert h.actions().count("StartTransaction") == h.actions().count("StopTransaction") == 1


def test_unacknowledged_start_leaves_meter_values_without_id_and_stop_with_zero() -> None:
    h = Harness(adapter(), online=False)
    env, _ = station(h, [ev(0.0, dwell_h=1, energy=5)])
    env.run(until=86400)
    meters = h.payloads("MeterValues")
    assert meters and all("transactionId" not in p for p in meters)
    (stop,) = h.payloads("StopTransaction")
    assert stop["transactionId"] == UNKNOWN_TRANSACTION_ID == 0


def test_prepare_completes_a_queued_message_once_the_start_is_answered() -> None:
    """Messages made while offline are completed at send time with the id learned since."""
    a = adapter()
    h = Harness(a, online=False)
    env, _ = station(h, [ev(0.0, dwell_h=1, energy=5)])
    env.run(until=86400)
    start = next(m for m, _ in h.sent if m.action == "StartTransaction")
    meter = next(m for m, _ in h.sent if m.action == "MeterValues")
    stop = next(m for m, _ in h.sent if m.action == "StopTransaction")
    assert "transactionId" not in a.prepare(meter)
    a.accepted(start, {"transactionId": 17, "idTagInfo": {"status": "Accepted"}})
    assert a.prepare(meter)["transactionId"] == 17
    assert a.prepare(stop)["transactionId"] == 17
    validate_request("1.6", "MeterValues", a.prepare(meter))
    a.accepted(stop, {"idTagInfo": {"status": "Accepted"}})
    assert a._tx_ids == {}
    # Non-transactional messages pass through untouched.
    beat = a.heartbeat(0.0)
    assert a.prepare(beat) is beat.payload


@pytest.mark.parametrize("reason", list(StopReason))
def test_every_stop_reason_is_a_valid_1_6_reason(reason: StopReason) -> None:
    h = Harness(adapter())
    _, st_ = station(h, [])
    connector = st_.connectors[0]
    tx = Transaction(3, connector, ev(0.0), "TAG", 10.0, 1000.4, 0.0)
    tx.stop_s, tx.meter_stop_wh, tx.stop_reason, tx.open = 70.0, 2500.6, reason, False
    h.send(h.adapter.transaction_started(connector, tx, connector.sample(10.0), 10.0))
    h.send(h.adapter.transaction_ended(connector, tx, connector.sample(70.0), 70.0))
    (stop,) = h.payloads("StopTransaction")
    assert stop["reason"] == reason.value
    assert (stop["transactionId"], stop["meterStop"]) == (17, 2501)
    assert h.payloads("StartTransaction")[0]["meterStart"] == 1000


@settings(max_examples=300, deadline=None)
@given(sample=meter_samples, dc=st.booleans(), acknowledged=st.booleans())
def test_any_meter_sample_makes_valid_meter_values(
    sample: MeterSample, dc: bool, acknowledged: bool
) -> None:
    a = adapter()
    connector: Any = DC_CONNECTOR if dc else AC_CONNECTOR
    tx: Any = SimpleNamespace(seq=5)
    if acknowledged:
        start = Outbound("StartTransaction", {}, 0.0, True, tx)
        a.accepted(start, {"transactionId": 99, "idTagInfo": {"status": "Accepted"}})
    (message,) = a.meter_sampled(connector, tx, sample, 42.0)
    payload = a.prepare(message)
    validate_request("1.6", "MeterValues", payload)
    assert payload.get("transactionId") == (99 if acknowledged else None)
    assert payload["connectorId"] == connector.evse_id
    values = payload["meterValue"][0]["sampledValue"]
    assert float(values[0]["value"]) == pytest.approx(sample.energy_wh, abs=0.051)
    assert float(values[1]["value"]) == pytest.approx(sample.power_w, abs=0.051)
    currents = [v for v in values if v["measurand"] == "Current.Import"]
    assert len(currents) == (1 if dc else sample.phases)
    assert all(float(v["value"]) == pytest.approx(sample.current_a, abs=0.0051) for v in currents)
    socs = [float(v["value"]) for v in values if v["measurand"] == "SoC"]
    assert socs == ([] if math.isnan(sample.soc) else [pytest.approx(sample.soc * 100, abs=0.51)])
