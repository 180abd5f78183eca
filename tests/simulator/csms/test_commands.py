"""CSMS-initiated operations (simulator.csms.commands) against a scripted charger over real
websockets on 127.0.0.1, for both OCPP versions: every command's request passes the charger's
schema validation and carries the translated fields; failures are typed one-line errors;
operations are recorded; listeners hear of boots and transactions; reports are collected; and
the charger-initiated 2.0.1 messages of smart charging, reservations and certificates are
answered and recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.commands import (
    BadArguments,
    CallFailed,
    CommandError,
    NotConnected,
    UnknownCharger,
)
from simulator.csms.handlers import V16Session
from simulator.csms.store import CsmsStore, TxState
from tests.simulator.csms.scripted_charger import STAMP, ScriptedCharger, scripted, until


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[CsmsServer]:
    csms = CsmsServer(CsmsConfig(port=0, db_path=tmp_path / "csms.db", call_timeout_s=5.0))
    await csms.start()
    try:
        yield csms
    finally:
        await csms.stop()


async def seed_clock(cp: ScriptedCharger) -> None:
    """A StatusNotification stamped STAMP: the charger's clock is in 2030 from now on."""
    if cp.version == "1.6":
        status: dict[str, Any] = {"connectorId": 1, "errorCode": "NoError", "status": "Available"}
        await cp.send("StatusNotification", {**status, "timestamp": STAMP})
    else:
        status = {"connectorStatus": "Available", "evseId": 1, "connectorId": 1}
        await cp.send("StatusNotification", {**status, "timestamp": STAMP})


@pytest.mark.parametrize("version", ["1.6", "2.0.1"])
async def test_every_command_sends_a_schema_valid_translated_request(
    server: CsmsServer, version: str
) -> None:
    v16 = version == "1.6"
    c = server.commands
    async with asyncio.timeout(15), scripted(server, "CP-1", version) as cp:
        await seed_clock(cp)
        assert c.version("CP-1") == version
        tx_profile = {
            "purpose": "TxDefaultProfile",
            "unit": "A",
            "stack_level": 1,
            "periods": [
                {"start_s": 0, "limit": 16.04},
                {"start_s": 3600, "limit": 8, "number_phases": 1},
            ],
            "duration_s": 7200,
            "min_charging_rate": 6,
        }
        station_max = {
            "purpose": "ChargingStationMaxProfile",
            "recurrency": "Daily",
            "start_schedule": "2030-01-01T00:00:00Z",
            "unit": "W",
            "periods": [{"start_s": 0, "limit": 22000}],
            "valid_from": 0,
            "valid_to": 86400,
        }
        answers = [
            await c.reset("CP-1", "hard"),
            await c.remote_start(
                "CP-1", "TAG-1", 1, {"unit": "W", "periods": [{"start_s": 0, "limit": 7400}]}
            ),
            await c.remote_stop("CP-1", "17" if v16 else "tx-17"),
            await c.set_charging_profile("CP-1", 1, tx_profile),
            await c.set_charging_profile("CP-1", 0, station_max),
            await c.clear_charging_profile("CP-1", evse_id=1, purpose="TxDefaultProfile"),
            await c.clear_charging_profile("CP-1", profile_id=4),
            await c.get_composite_schedule("CP-1", 1, 3600, "W"),
            await c.change_availability("CP-1", False, evse_id=1),
            await c.change_availability("CP-1", True),
            await c.unlock("CP-1", 1),
            await c.clear_cache("CP-1"),
            await c.trigger_message("CP-1", "DiagnosticsStatusNotification", evse_id=1),
            await c.reserve_now("CP-1", "TAG-2", expiry=600, evse_id=1),
            await c.cancel_reservation("CP-1", 99),
            await c.send_local_list("CP-1", 2, {"TAG-1": "Accepted", "TAG-9": None}, full=False),
            await c.send_local_list("CP-1", 3, {}, full=True),
            await c.get_local_list_version("CP-1"),
            await c.update_firmware("CP-1", "https://fw.example/v2.bin", 60, None, 2, 30),
            await c.get_diagnostics("CP-1", "https://logs.example/up", since=-3600, until=0),
            await c.data_transfer("CP-1", "acme", "ping", {"a": 1}),
            await c.call("CP-1", "ClearCache", {}),
        ]
        if v16:
            answers += [
                await c.get_configuration("CP-1", ["HeartbeatInterval"]),
                await c.change_configuration("CP-1", "HeartbeatInterval", 60),
            ]
        else:
            answers += [
                await c.get_variables(
                    "CP-1",
                    [
                        "OCPPCommCtrlr.HeartbeatInterval",
                        {"component": "EVSE", "evse_id": 1, "variable": "Power"},
                    ],
                ),
                await c.set_variables(
                    "CP-1", {"OCPPCommCtrlr.HeartbeatInterval": 60, "AuthCtrlr.Enabled": True}
                ),
                await c.get_base_report("CP-1"),
                await c.get_log("CP-1", "https://logs.example/up", "SecurityLog"),
                await c.get_charging_profiles("CP-1", evse_id=1, purpose="TxProfile"),
            ]
        # Each call was checked by the charger's validator (an invalid one would have been
        # answered with a CALLERROR, failing the command) and by the CSMS's own on the way out.
        assert cp.invalid == []
        assert server.counters.invalid_frames == 0
        assert [dict(a) for a in answers[:2]] == [{"status": "Accepted"}] * 2
        common = [
            "Reset",
            "RemoteStartTransaction" if v16 else "RequestStartTransaction",
            "RemoteStopTransaction" if v16 else "RequestStopTransaction",
            "SetChargingProfile",
            "SetChargingProfile",
            "ClearChargingProfile",
            "ClearChargingProfile",
            "GetCompositeSchedule",
            "ChangeAvailability",
            "ChangeAvailability",
            "UnlockConnector",
            "ClearCache",
            "TriggerMessage",
            "ReserveNow",
            "CancelReservation",
            "SendLocalList",
            "SendLocalList",
            "GetLocalListVersion",
            "UpdateFirmware",
            "GetDiagnostics" if v16 else "GetLog",
            "DataTransfer",
            "ClearCache",
        ]
        specific = (
            ["GetConfiguration", "ChangeConfiguration"]
            if v16
            else ["GetVariables", "SetVariables", "GetBaseReport", "GetLog", "GetChargingProfiles"]
        )
        assert cp.actions() == common + specific
        calls = cp.calls

    reset, start, stop, tx_set, max_set, clear, clear_id, composite = (p for _, p in calls[:8])
    off, on, unlock, _, trigger, reserve, cancel, diff, full = (p for _, p in calls[8:17])
    firmware, diagnostics, transfer = calls[18][1], calls[19][1], calls[20][1]
    if v16:
        assert reset == {"type": "Hard"}
        assert start["idTag"] == "TAG-1" and start["connectorId"] == 1
        assert start["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        assert stop == {"transactionId": 17}
        assert tx_set["connectorId"] == 1
        wire = tx_set["csChargingProfiles"]
        assert wire["chargingProfileKind"] == "Relative" and wire["stackLevel"] == 1
        schedule = wire["chargingSchedule"]
        # 1.6 limits are multiples of 0.1.
        assert schedule["chargingSchedulePeriod"] == [
            {"startPeriod": 0, "limit": 16.0},
            {"startPeriod": 3600, "limit": 8.0, "numberPhases": 1},
        ]
        assert schedule["duration"] == 7200 and schedule["minChargingRate"] == 6.0
        max_wire = max_set["csChargingProfiles"]
        assert max_wire["chargingProfilePurpose"] == "ChargePointMaxProfile"
        assert clear == {"connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile"}
        assert clear_id == {"id": 4}
        assert composite == {"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"}
        assert off == {"connectorId": 1, "type": "Inoperative"}
        assert on == {"connectorId": 0, "type": "Operative"}
        assert unlock == {"connectorId": 1}
        assert trigger == {"requestedMessage": "DiagnosticsStatusNotification", "connectorId": 1}
        assert reserve["connectorId"] == 1 and reserve["idTag"] == "TAG-2"
        expiry = reserve["expiryDate"]
        assert cancel == {"reservationId": 99}
        assert diff == {
            "listVersion": 2,
            "updateType": "Differential",
            "localAuthorizationList": [
                {"idTag": "TAG-1", "idTagInfo": {"status": "Accepted"}},
                {"idTag": "TAG-9"},
            ],
        }
        assert full == {"listVersion": 3, "updateType": "Full"}
        assert firmware["retries"] == 2 and firmware["retryInterval"] == 30
        retrieve = firmware["retrieveDate"]
        assert diagnostics["startTime"].startswith("2030-01-01T11:00")
        assert transfer == {"vendorId": "acme", "messageId": "ping", "data": '{"a":1}'}
        assert calls[-1][1] == {"key": "HeartbeatInterval", "value": "60"}
        profile_ids = [start["chargingProfile"]["chargingProfileId"], wire["chargingProfileId"]]
    else:
        assert reset == {"type": "Immediate"}
        assert start["idToken"] == {"idToken": "TAG-1", "type": "Central"}
        assert start["evseId"] == 1 and isinstance(start["remoteStartId"], int)
        assert start["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        assert stop == {"transactionId": "tx-17"}
        assert tx_set["evseId"] == 1
        wire = tx_set["chargingProfile"]
        (schedule,) = wire["chargingSchedule"]
        assert schedule["chargingSchedulePeriod"][0] == {"startPeriod": 0, "limit": 16.04}
        assert schedule["id"] == wire["id"]
        max_wire = max_set["chargingProfile"]
        assert max_wire["chargingProfilePurpose"] == "ChargingStationMaxProfile"
        assert clear == {
            "chargingProfileCriteria": {"evseId": 1, "chargingProfilePurpose": "TxDefaultProfile"}
        }
        assert clear_id == {"chargingProfileId": 4}
        assert composite == {"evseId": 1, "duration": 3600, "chargingRateUnit": "W"}
        assert off == {"operationalStatus": "Inoperative", "evse": {"id": 1}}
        assert on == {"operationalStatus": "Operative"}
        assert unlock == {"evseId": 1, "connectorId": 1}
        assert trigger == {"requestedMessage": "LogStatusNotification", "evse": {"id": 1}}
        assert reserve["evseId"] == 1 and reserve["idToken"]["idToken"] == "TAG-2"
        expiry = reserve["expiryDateTime"]
        assert diff["versionNumber"] == 2 and diff["updateType"] == "Differential"
        assert diff["localAuthorizationList"][1] == {
            "idToken": {"idToken": "TAG-9", "type": "ISO14443"}
        }
        assert full == {"versionNumber": 3, "updateType": "Full"}
        assert isinstance(firmware["requestId"], int)
        retrieve = firmware["firmware"]["retrieveDateTime"]
        assert diagnostics["logType"] == "DiagnosticsLog"
        assert diagnostics["log"]["oldestTimestamp"].startswith("2030-01-01T11:00")
        assert transfer["data"] == {"a": 1}
        get_vars, set_vars = calls[-5][1], calls[-4][1]
        assert get_vars["getVariableData"][1] == {
            "component": {"name": "EVSE", "evse": {"id": 1}},
            "variable": {"name": "Power"},
        }
        assert set_vars["setVariableData"][1] == {
            "component": {"name": "AuthCtrlr"},
            "variable": {"name": "Enabled"},
            "attributeValue": "true",
        }
        assert calls[-3][1]["reportBase"] == "FullInventory"
        assert calls[-1][1]["chargingProfile"] == {"chargingProfilePurpose": "TxProfile"}
        profile_ids = [start["chargingProfile"]["id"], wire["id"]]
    # Relative times are counted on the charger's clock (2030 here), not the CSMS's.
    assert expiry.startswith("2030-01-01T12:10")
    assert retrieve.startswith("2030-01-01T12:01")
    assert max_wire["validFrom"].startswith("2030-01-01T12:00")
    assert max_wire["validTo"].startswith("2030-01-02T12:00")
    # Ids the CSMS hands out are distinct and increasing.
    assert profile_ids[0] < profile_ids[1] < max_wire.get("chargingProfileId", max_wire.get("id"))


async def test_failures_are_typed_one_line_errors_and_bad_arguments_send_nothing(
    server: CsmsServer,
) -> None:
    c = server.commands
    async with asyncio.timeout(10):
        with pytest.raises(UnknownCharger, match="unknown charger 'NOPE'"):
            await c.reset("NOPE")
        async with scripted(server, "CP-GONE", "1.6"):
            pass
        await until(lambda: "CP-GONE" not in server.connections)
        with pytest.raises(NotConnected, match="'CP-GONE' is not connected"):
            await c.clear_cache("CP-GONE")

        async with (
            scripted(server, "CP-16", "1.6") as cp16,
            scripted(server, "CP-2", "2.0.1") as cp,
        ):
            bad: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
                ("kind: OCPP 2.0.1 Reset takes", lambda: c.reset("CP-2", "sideways")),
                ("OCPP 1.6 Reset takes", lambda: c.reset("CP-16", "on_idle")),
                ("evse_id: OCPP 1.6 resets", lambda: c.reset("CP-16", "soft", evse_id=1)),
                (
                    "profile: unknown field 'limit'",
                    lambda: c.set_charging_profile("CP-2", 1, {"limit": 1}),
                ),
                (
                    "profile.periods: expected",
                    lambda: c.set_charging_profile(
                        "CP-2", 1, {"purpose": "TxProfile", "periods": []}
                    ),
                ),
                (
                    "profile.periods[0].limit: expected a number",
                    lambda: c.set_charging_profile(
                        "CP-2",
                        1,
                        {
                            "purpose": "TxProfile",
                            "unit": "A",
                            "periods": [{"start_s": 0, "limit": "x"}],
                        },
                    ),
                ),
                (
                    "chargingRateUnit",  # caught by the schema, not by our own checks
                    lambda: c.set_charging_profile(
                        "CP-2",
                        1,
                        {
                            "purpose": "TxProfile",
                            "unit": "kW",
                            "periods": [{"start_s": 0, "limit": 1}],
                        },
                    ),
                ),
                ("GetVariables is OCPP 2.0.1", lambda: c.get_variables("CP-16", "A.B")),
                ("GetConfiguration is OCPP 1.6", lambda: c.get_configuration("CP-2")),
                ("transaction_id: expected an integer", lambda: c.remote_stop("CP-16", "tx-1")),
                ("Reset request:", lambda: c.call("CP-2", "Reset", {"type": "Sideways"})),
                ("OCPP 2.0.1 has no action 'Fly'", lambda: c.call("CP-2", "Fly", {})),
                ("variable 'nodot'", lambda: c.get_variables("CP-2", "nodot")),
            ]
            for words, attempt in bad:
                with pytest.raises(BadArguments) as caught:
                    await attempt()
                assert words in str(caught.value) and "\n" not in str(caught.value)
            assert cp.calls == [] and cp16.calls == []

            cp.errors["Reset"] = "NotSupported"
            with pytest.raises(CallFailed) as failed:
                await c.reset("CP-2")
            message = str(failed.value)
            assert message.startswith("charger 'CP-2' answered Reset with CALLERROR NotSupported")
            assert failed.value.operation.outcome == "error"
            assert failed.value.operation.response is not None
            assert failed.value.operation.response["code"] == "NotSupported"
        assert cp.invalid == [] and cp16.invalid == []
    # Every failure is a CommandError: one `except` covers them.
    assert issubclass(CallFailed, CommandError) and issubclass(NotConnected, CommandError)


async def test_a_charger_that_does_not_answer_times_out(tmp_path: Path) -> None:
    config = CsmsConfig(port=0, db_path=tmp_path / "csms.db", call_timeout_s=0.3)
    async with asyncio.timeout(10), CsmsServer(config) as server:
        async with scripted(server, "CP-MUTE", "2.0.1") as cp:
            cp.silent.add("ClearCache")
            with pytest.raises(CallFailed, match=r"did not answer ClearCache within 0\.3 s") as exc:
                await server.commands.clear_cache("CP-MUTE")
            assert exc.value.operation.outcome == "timeout"
        (op,) = server.store.operations("CP-MUTE")
        assert (op.action, op.outcome, op.response) == ("ClearCache", "timeout", None)


async def test_operations_are_recorded_and_handed_out_ids_continue_after_a_restart(
    tmp_path: Path,
) -> None:
    config = CsmsConfig(port=0, db_path=tmp_path / "csms.db")
    profile = {"purpose": "TxDefaultProfile", "unit": "W", "periods": [{"start_s": 0, "limit": 1}]}
    async with asyncio.timeout(10):
        async with CsmsServer(config) as server, scripted(server, "CP-1", "1.6") as cp:
            await server.commands.set_charging_profile("CP-1", 1, profile)
            first = cp.last("SetChargingProfile")["csChargingProfiles"]["chargingProfileId"]
            reply = await server.commands.get_local_list_version("CP-1")
            assert reply == {"listVersion": 3} and reply.operation.action == "GetLocalListVersion"
            ops = server.store.operations()
            assert [(o.charger_id, o.action, o.outcome) for o in ops] == [
                ("CP-1", "SetChargingProfile", "result"),
                ("CP-1", "GetLocalListVersion", "result"),
            ]
            assert orjson.loads(ops[0].request)["csChargingProfiles"]["chargingProfileId"] == first
            assert orjson.loads(ops[1].response or "null") == {"listVersion": 3}
            assert ops[0].ref_id == first and ops[1].id == reply.operation.id
            assert [o.action for o in server.store.operations(limit=1)] == ["GetLocalListVersion"]
        async with CsmsServer(config) as server, scripted(server, "CP-1", "1.6") as cp:
            await server.commands.set_charging_profile("CP-1", 1, profile)
            again = cp.last("SetChargingProfile")["csChargingProfiles"]["chargingProfileId"]
            assert again > first
            assert len(server.store.operations("CP-1")) == 3


class Recorder:
    """A CsmsListener that writes down what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple[Any, ...]] = []

    def booted(self, charger_id: str, version: str) -> None:
        self.heard.append(("booted", charger_id, version))

    def transaction_started(self, charger_id: str, tx: TxState) -> None:
        self.heard.append(("started", charger_id, tx.transaction_id, tx.evse_id, tx.id_tag))

    def transaction_ended(self, charger_id: str, tx: TxState) -> None:
        self.heard.append(("ended", charger_id, tx.transaction_id, tx.stop_reason))

    def charging_state(self, charger_id: str, evse_id: int, state: str) -> None:
        self.heard.append(("state", charger_id, evse_id, state))


class Broken(Recorder):
    def booted(self, charger_id: str, version: str) -> None:
        raise RuntimeError("listener bug")


async def test_listeners_hear_boots_transactions_and_charging_states(server: CsmsServer) -> None:
    recorder = Recorder()
    # A failing listener is logged and skipped; the others and the charger carry on.
    server.listeners.extend([Broken(), recorder])
    async with asyncio.timeout(10):
        async with scripted(server, "CP-16", "1.6") as cp:
            start = {"connectorId": 2, "idTag": "T1", "meterStart": 0, "timestamp": STAMP}
            tx_id = (await cp.send("StartTransaction", start))["transactionId"]
            for status in ("Charging", "SuspendedEV", "Finishing"):
                status_payload = {"connectorId": 2, "errorCode": "NoError", "status": status}
                await cp.send("StatusNotification", status_payload)
            stop = {"transactionId": tx_id, "meterStop": 10, "timestamp": STAMP, "reason": "Local"}
            await cp.send("StopTransaction", stop)
        async with scripted(server, "CS-2", "2.0.1") as cs:
            base = {"timestamp": STAMP, "triggerReason": "Authorized", "evse": {"id": 1}}
            for seq, (event, info) in enumerate(
                [
                    ("Started", {"chargingState": "EVConnected"}),
                    ("Updated", {"chargingState": "Charging"}),
                    ("Updated", {}),
                    ("Ended", {"chargingState": "Idle", "stoppedReason": "EVDisconnected"}),
                ]
            ):
                event_payload = {
                    **base,
                    "eventType": event,
                    "seqNo": seq,
                    "transactionInfo": {"transactionId": "tx-9", **info},
                }
                if event == "Started":
                    event_payload["idToken"] = {"idToken": "T2", "type": "ISO14443"}
                await cs.send("TransactionEvent", event_payload)
    assert recorder.heard == [
        ("booted", "CP-16", "1.6"),
        ("started", "CP-16", str(tx_id), 2, "T1"),
        ("state", "CP-16", 2, "Charging"),
        ("state", "CP-16", 2, "SuspendedEV"),
        ("ended", "CP-16", str(tx_id), "Local"),
        ("booted", "CS-2", "2.0.1"),
        ("started", "CS-2", "tx-9", 1, "T2"),
        ("state", "CS-2", 1, "EVConnected"),
        ("state", "CS-2", 1, "Charging"),
        ("state", "CS-2", 1, "Idle"),
        ("ended", "CS-2", "tx-9", "EVDisconnected"),
    ]


async def test_reports_that_answer_a_request_are_collected(server: CsmsServer) -> None:
    c = server.commands
    async with asyncio.timeout(10), scripted(server, "CS-R", "2.0.1") as cs:
        cs.reports = True
        profiles = await c.get_charging_profiles("CS-R", request_id=41, wait_s=3)
        assert profiles == {"status": "Accepted"}
        assert [(p["requestId"], p["evseId"], p.get("tbc")) for p in profiles.reports] == [
            (41, 1, True),
            (41, 2, False),  # the schema's default, filled in by validation
        ]
        report = await c.get_base_report("CS-R", "ConfigurationInventory", wait_s=3)
        assert [p["seqNo"] for p in report.reports] == [0, 1]
        quick = await c.get_base_report("CS-R", wait_s=0)
        assert quick.reports == []
        await until(lambda: len(server.store.query("SELECT 1 FROM notifications")) == 6)
        assert not server.hooks.reports  # nothing left waiting
        assert cs.invalid == []


async def test_charger_initiated_201_messages_are_answered_and_recorded(
    server: CsmsServer,
) -> None:
    schedule = {
        "id": 1,
        "chargingRateUnit": "W",
        "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
    }
    messages: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("ReservationStatusUpdate", {"reservationId": 3, "reservationUpdateStatus": "Expired"}, {}),
        ("NotifyChargingLimit", {"chargingLimit": {"chargingLimitSource": "EMS"}}, {}),
        ("ClearedChargingLimit", {"chargingLimitSource": "EMS"}, {}),
        (
            "NotifyEVChargingNeeds",
            {"evseId": 1, "chargingNeeds": {"requestedEnergyTransfer": "AC_three_phase"}},
            {"status": "Accepted"},
        ),
        (
            "NotifyEVChargingSchedule",
            {"timeBase": STAMP, "evseId": 1, "chargingSchedule": schedule},
            {"status": "Accepted"},
        ),
        ("NotifyMonitoringReport", {"requestId": 1, "seqNo": 0, "generatedAt": STAMP}, {}),
        (
            "NotifyCustomerInformation",
            {"data": "none", "seqNo": 0, "generatedAt": STAMP, "requestId": 2},
            {},
        ),
        ("NotifyDisplayMessages", {"requestId": 3}, {}),
        ("SignCertificate", {"csr": "-----BEGIN CERTIFICATE REQUEST-----"}, {"status": "Accepted"}),
        ("ReportChargingProfiles", _report_part(), {}),
    ]
    async with asyncio.timeout(10), scripted(server, "CS-N", "2.0.1") as cs:
        for action, payload, answer in messages:
            assert await cs.send(action, payload) == answer, action
        assert cs.invalid == [] and server.counters.invalid_frames == 0
    rows = server.store.query("SELECT action, payload FROM notifications ORDER BY rowid")
    assert [a for a, _ in rows] == [a for a, _, _ in messages]
    assert orjson.loads(rows[0][1]) == messages[0][1]


def _report_part() -> dict[str, Any]:
    from tests.simulator.csms.scripted_charger import report_parts

    return report_parts("ReportChargingProfiles", 7)[1]


def test_charger_clock_estimate_follows_the_chargers_speed() -> None:
    session = V16Session("CP", CsmsStore(None), None, None)  # type: ignore[arg-type]
    assert session.charger_time() is None
    # Two marks ten wall seconds apart, ten simulated minutes apart: speed 60.
    session.clock_anchor = (100.0, "2030-01-01T00:00:00.000Z")
    session.clock_last = (110.0, "2030-01-01T00:10:00.000Z")
    estimate = session.charger_time(wall_now=111.0)
    assert estimate is not None and estimate.isoformat() == "2030-01-01T00:11:00+00:00"
    # A replayed, older timestamp does not move the clock back.
    session._stamp("2029-12-31T23:00:00.000Z")
    assert session.clock_last == (110.0, "2030-01-01T00:10:00.000Z")
    session._stamp("2030-01-01T00:10:30.000Z")
    assert session.clock_last is not None and session.clock_last[1] == "2030-01-01T00:10:30.000Z"
