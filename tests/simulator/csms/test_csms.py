"""The embedded CSMS over real websockets on 127.0.0.1: both OCPP versions end to end, what lands
in its database, malformed frames, subprotocol negotiation, reconnects, the process entry point
and a burst of concurrent chargers.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.server import charger_id_of
from simulator.csms.store import CsmsStore, MeterRow
from simulator.rpc import CallError, CallOutcome, CallResult, RpcConnection
from simulator.schemas import FrameValidator

REPO = Path(__file__).resolve().parents[3]
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
TAGS = frozenset({"TAG-OK"})
STAMP = "2025-01-06T08:00:00.000Z"
METER_SQL = (
    "SELECT transaction_id, measurand, value, unit, context FROM meter_values ORDER BY rowid"
)


@asynccontextmanager
async def running(tmp_path: Path, **options: Any) -> AsyncIterator[CsmsServer]:
    server = CsmsServer(CsmsConfig(port=0, db_path=tmp_path / "csms.db", **options))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def open_ws(url: str, version: str) -> ClientConnection:
    return await connect(
        url, subprotocols=[Subprotocol(SUBPROTOCOL[version])], compression=None, proxy=None
    )


@asynccontextmanager
async def charger(
    server: CsmsServer, charger_id: str, version: str
) -> AsyncIterator[RpcConnection]:
    ws = await open_ws(f"{server.url}/{charger_id}", version)
    rpc = RpcConnection(ws, version, validator=FrameValidator(version), call_timeout_s=5.0)
    task = asyncio.create_task(rpc.serve())
    try:
        yield rpc
    finally:
        await ws.close()
        await task


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server side to catch up (callers bound the wait with asyncio.timeout)."""
    while not condition():
        await asyncio.sleep(0.005)


def ok(outcome: CallOutcome) -> dict[str, Any]:
    assert isinstance(outcome, CallResult), outcome
    return outcome.payload


def sampled16(value: str, context: str, measurand: str = "Energy.Active.Import.Register") -> Any:
    return {"value": value, "context": context, "measurand": measurand, "unit": "Wh"}


# -- OCPP 1.6 --------------------------------------------------------------------------------------


async def test_v16_full_flow_is_answered_and_recorded(tmp_path: Path) -> None:
    async with asyncio.timeout(10), running(tmp_path, id_tags=TAGS, heartbeat_interval_s=120) as s:
        async with charger(s, "CP-1", "1.6") as cp:
            boot = ok(
                await cp.call(
                    "BootNotification",
                    {
                        "chargePointVendor": "Acme",
                        "chargePointModel": "W11",
                        "chargePointSerialNumber": "SN-1",
                        "firmwareVersion": "1.2.3",
                    },
                )
            )
            assert boot["status"] == "Accepted" and boot["interval"] == 120
            assert boot["currentTime"].endswith("Z")
            assert ok(await cp.call("Heartbeat", {}))["currentTime"].endswith("Z")
            for status in ("Available", "Preparing"):
                status_payload = {"connectorId": 1, "errorCode": "NoError", "status": status}
                assert ok(await cp.call("StatusNotification", status_payload)) == {}
            auth_ok = ok(await cp.call("Authorize", {"idTag": "TAG-OK"}))
            assert auth_ok == {"idTagInfo": {"status": "Accepted"}}
            auth_bad = ok(await cp.call("Authorize", {"idTag": "TAG-BAD"}))
            assert auth_bad == {"idTagInfo": {"status": "Invalid"}}

            start = {"connectorId": 1, "idTag": "TAG-OK", "meterStart": 1000, "timestamp": STAMP}
            started = ok(await cp.call("StartTransaction", start))
            tx_id = started["transactionId"]
            assert isinstance(tx_id, int) and started["idTagInfo"]["status"] == "Accepted"
            other = ok(await cp.call("StartTransaction", {**start, "connectorId": 2}))
            assert other["transactionId"] == tx_id + 1

            meter = {
                "connectorId": 1,
                "transactionId": tx_id,
                "meterValue": [
                    {
                        "timestamp": STAMP,
                        "sampledValue": [
                            sampled16("2500.5", "Sample.Periodic"),
                            sampled16("7200.0", "Sample.Periodic", "Power.Active.Import"),
                        ],
                    }
                ],
            }
            assert ok(await cp.call("MeterValues", meter)) == {}
            stop = {
                "transactionId": tx_id,
                "meterStop": 5250,
                "timestamp": "2025-01-06T09:00:00.000Z",
                "reason": "EVDisconnected",
                "idTag": "TAG-OK",
                "transactionData": [
                    {"timestamp": STAMP, "sampledValue": [sampled16("1000", "Transaction.Begin")]}
                ],
            }
            assert ok(await cp.call("StopTransaction", stop)) == {
                "idTagInfo": {"status": "Accepted"}
            }
            unknown = {"transactionId": 987654, "meterStop": 1, "timestamp": STAMP}
            assert ok(await cp.call("StopTransaction", unknown)) == {}
            transfer = ok(await cp.call("DataTransfer", {"vendorId": "acme"}))
            assert transfer == {"status": "UnknownVendorId"}
            fw = ok(await cp.call("FirmwareStatusNotification", {"status": "Installed"}))
            assert fw == {}

            row = s.store.query(
                "SELECT vendor, model, serial, firmware, boots, connected, version"
                " FROM chargers WHERE charger_id = 'CP-1'"
            )
            assert row == [("Acme", "W11", "SN-1", "1.2.3", 1, 1, "1.6")]

        txs = {tx.transaction_id: tx for tx in s.store.transactions()}
        done = txs[str(tx_id)]
        assert done.id == tx_id and done.version == "1.6" and done.connector_id == 1
        assert done.meter_start_wh == 1000 and done.meter_stop_wh == 5250
        assert done.energy_wh == 5250 - 1000
        assert done.stop_reason == "EVDisconnected" and done.id_tag == "TAG-OK"
        assert done.started_at == STAMP and done.stopped_at == "2025-01-06T09:00:00.000Z"
        still_open = txs[str(tx_id + 1)]
        assert still_open.stopped_at is None and still_open.energy_wh is None
        assert s.store.energy_by_charger() == {"CP-1": 4250.0}

        values = s.store.query(METER_SQL)
        assert values == [
            (str(tx_id), "Energy.Active.Import.Register", 2500.5, "Wh", "Sample.Periodic"),
            (str(tx_id), "Power.Active.Import", 7200.0, "Wh", "Sample.Periodic"),
            (str(tx_id), "Energy.Active.Import.Register", 1000.0, "Wh", "Transaction.Begin"),
        ]
        statuses = s.store.query("SELECT connector_id, status, count FROM statuses")
        assert statuses == [(1, "Preparing", 2)]
        counts = s.store.counts()
        assert counts["anomaly.unknown_transaction_stop"] == 1
        assert counts["notifications"] == 2 and counts["status_notifications"] == 2
        assert s.stats()["messages"]["Heartbeat"] == 1
        assert s.stats()["unknown_charger_messages"] == 0
        # After the disconnect has been flushed the charger is no longer marked connected.
        await until(lambda: not s.connections)
        assert s.store.query("SELECT connected FROM chargers") == [(0,)]


async def test_v16_transaction_ids_survive_a_restart(tmp_path: Path) -> None:
    start = {"connectorId": 1, "idTag": "T", "meterStart": 10, "timestamp": STAMP}
    async with asyncio.timeout(10):
        async with running(tmp_path) as s, charger(s, "CP-9", "1.6") as cp:
            first = ok(await cp.call("StartTransaction", start))["transactionId"]
        async with running(tmp_path) as s, charger(s, "CP-9", "1.6") as cp:
            # A later start: the same one again would be a retry, answered with the same id.
            later = {**start, "timestamp": "2025-01-06T09:00:00.000Z"}
            second = ok(await cp.call("StartTransaction", later))["transactionId"]
            # The transaction opened before the restart can still be stopped.
            stop = {"transactionId": first, "meterStop": 35, "timestamp": STAMP}
            assert ok(await cp.call("StopTransaction", stop)) == {}
            assert second == first + 1
            (done,) = [tx for tx in s.store.transactions() if tx.id == first]
            assert done.energy_wh == 25
            counts = s.store.counts()
            # It never booted: answered anyway, but counted.
            assert s.stats()["unknown_charger_messages"] == 2
            assert not any(k.startswith("anomaly.") for k in counts)


# -- OCPP 2.0.1 ------------------------------------------------------------------------------------


def energy201(value: float, context: str, unit: str = "Wh") -> dict[str, Any]:
    return {
        "value": value,
        "context": context,
        "measurand": "Energy.Active.Import.Register",
        "unitOfMeasure": {"unit": unit},
    }


async def test_v201_full_flow_is_answered_and_recorded(tmp_path: Path) -> None:
    token = {"idToken": "TAG-OK", "type": "ISO14443"}
    base = {"timestamp": STAMP, "evse": {"id": 1, "connectorId": 1}}
    async with asyncio.timeout(10), running(tmp_path, id_tags=TAGS) as s:
        async with charger(s, "CS-201", "2.0.1") as cs:
            station = {"vendorName": "Acme", "model": "DC50", "firmwareVersion": "9"}
            boot = ok(
                await cs.call("BootNotification", {"chargingStation": station, "reason": "PowerUp"})
            )
            assert boot["status"] == "Accepted" and boot["interval"] == 300
            assert "currentTime" in ok(await cs.call("Heartbeat", {}))
            status = {
                "timestamp": STAMP,
                "connectorStatus": "Occupied",
                "evseId": 1,
                "connectorId": 1,
            }
            assert ok(await cs.call("StatusNotification", status)) == {}
            assert ok(await cs.call("Authorize", {"idToken": token})) == {
                "idTokenInfo": {"status": "Accepted"}
            }
            bad = {"idToken": {"idToken": "NOPE", "type": "ISO14443"}}
            assert ok(await cs.call("Authorize", bad))["idTokenInfo"]["status"] == "Invalid"

            started = ok(
                await cs.call(
                    "TransactionEvent",
                    {
                        **base,
                        "eventType": "Started",
                        "triggerReason": "Authorized",
                        "seqNo": 0,
                        "transactionInfo": {
                            "transactionId": "tx-abc",
                            "chargingState": "EVConnected",
                        },
                        "idToken": token,
                        "meterValue": [
                            {
                                "timestamp": STAMP,
                                "sampledValue": [energy201(1000.5, "Transaction.Begin")],
                            }
                        ],
                    },
                )
            )
            assert started == {"idTokenInfo": {"status": "Accepted"}}
            updated = {
                **base,
                "eventType": "Updated",
                "triggerReason": "MeterValuePeriodic",
                "seqNo": 1,
                "transactionInfo": {"transactionId": "tx-abc", "chargingState": "Charging"},
                "meterValue": [
                    {
                        "timestamp": STAMP,
                        "sampledValue": [
                            energy201(1.5, "Sample.Periodic", unit="kWh"),
                            {
                                "value": 7.4,
                                "measurand": "Power.Active.Import",
                                "unitOfMeasure": {"unit": "W", "multiplier": 3},
                            },
                        ],
                    }
                ],
            }
            assert ok(await cs.call("TransactionEvent", updated)) == {}
            ended = {
                **base,
                "eventType": "Ended",
                "triggerReason": "EVCommunicationLost",
                "seqNo": 2,
                "transactionInfo": {"transactionId": "tx-abc", "stoppedReason": "EVDisconnected"},
                "meterValue": [
                    {"timestamp": STAMP, "sampledValue": [energy201(12345.25, "Transaction.End")]}
                ],
            }
            assert ok(await cs.call("TransactionEvent", ended)) == {}

            meter = {
                "evseId": 1,
                "meterValue": [{"timestamp": STAMP, "sampledValue": [{"value": 3}]}],
            }
            assert ok(await cs.call("MeterValues", meter)) == {}
            event = {
                "generatedAt": STAMP,
                "seqNo": 0,
                "eventData": [
                    {
                        "eventId": 1,
                        "timestamp": STAMP,
                        "trigger": "Alerting",
                        "actualValue": "Faulted",
                        "eventNotificationType": "HardWiredNotification",
                        "component": {"name": "Connector"},
                        "variable": {"name": "Problem"},
                    }
                ],
            }
            assert ok(await cs.call("NotifyEvent", event)) == {}
            security = {"type": "StartupOfTheDevice", "timestamp": STAMP}
            assert ok(await cs.call("SecurityEventNotification", security)) == {}
            assert ok(await cs.call("LogStatusNotification", {"status": "Idle"})) == {}
            transfer = ok(await cs.call("DataTransfer", {"vendorId": "acme"}))
            assert transfer == {"status": "UnknownVendorId"}

        (tx,) = s.store.transactions()
        assert (tx.charger_id, tx.version, tx.transaction_id) == ("CS-201", "2.0.1", "tx-abc")
        assert tx.meter_start_wh == 1000.5 and tx.meter_stop_wh == 12345.25
        assert tx.energy_wh == 12345.25 - 1000.5
        assert tx.stop_reason == "EVDisconnected" and tx.seq_no_last == 2
        assert tx.evse_id == 1 and tx.connector_id == 1 and tx.id_tag == "TAG-OK"
        assert s.store.energy_by_charger() == {"CS-201": 12345.25 - 1000.5}
        values = s.store.query(METER_SQL)
        assert values == [
            ("tx-abc", "Energy.Active.Import.Register", 1000.5, "Wh", "Transaction.Begin"),
            ("tx-abc", "Energy.Active.Import.Register", 1.5, "kWh", "Sample.Periodic"),
            ("tx-abc", "Power.Active.Import", 7400.0, "W", "Sample.Periodic"),
            ("tx-abc", "Energy.Active.Import.Register", 12345.25, "Wh", "Transaction.End"),
            (None, "Energy.Active.Import.Register", 3.0, "Wh", "Sample.Periodic"),
        ]
        assert s.store.query("SELECT evse_id, connector_id, status FROM statuses") == [
            (1, 1, "Occupied")
        ]
        notes = s.store.query("SELECT action, payload FROM notifications ORDER BY rowid")
        assert [a for a, _ in notes] == [
            "NotifyEvent",
            "SecurityEventNotification",
            "LogStatusNotification",
            "DataTransfer",
        ]
        assert orjson.loads(notes[1][1]) == security
        counts = s.store.counts()
        assert counts["transactions_open"] == 0
        assert not any(k.startswith("anomaly.") for k in counts)


# -- malformed frames, negotiation, reconnects -----------------------------------------------------


@pytest.mark.parametrize(
    ("version", "code"), [("1.6", "FormationViolation"), ("2.0.1", "FormatViolation")]
)
async def test_schema_invalid_call_gets_a_callerror_and_the_server_carries_on(
    tmp_path: Path, version: str, code: str
) -> None:
    async with asyncio.timeout(5), running(tmp_path) as s:
        ws = await open_ws(f"{s.url}/CP-X", version)
        # BootNotification without its required fields, in either version.
        await ws.send(orjson.dumps([2, "m1", "BootNotification", {"bogus": 1}]).decode())
        error = orjson.loads(await ws.recv())
        assert error[:3] == [4, "m1", code]
        await ws.send(orjson.dumps([2, "m2", "Heartbeat", {}]).decode())
        result = orjson.loads(await ws.recv())
        assert result[:2] == [3, "m2"] and "currentTime" in result[2]
        await ws.close()
        assert s.stats()["invalid_frames"] == 1
        assert s.stats()["errors"] == {"BootNotification": 1}


async def test_invalid_payload_without_validation_is_a_format_error_not_a_crash(
    tmp_path: Path,
) -> None:
    async with asyncio.timeout(5), running(tmp_path, validate=False) as s:
        ws = await open_ws(f"{s.url}/CP-X", "1.6")
        await ws.send(orjson.dumps([2, "m1", "StartTransaction", {"idTag": "x"}]).decode())
        assert orjson.loads(await ws.recv())[:3] == [4, "m1", "FormationViolation"]
        await ws.send(orjson.dumps([2, "m2", "Heartbeat", {}]).decode())
        assert orjson.loads(await ws.recv())[:2] == [3, "m2"]
        await ws.close()


async def test_connection_without_a_known_subprotocol_is_refused(tmp_path: Path) -> None:
    async with asyncio.timeout(5), running(tmp_path) as s:
        with pytest.raises(InvalidStatus) as missing:
            await connect(f"{s.url}/CP-1", compression=None, proxy=None)
        assert missing.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as unknown:
            await connect(
                f"{s.url}/CP-1", subprotocols=[Subprotocol("ocpp2.1")], compression=None, proxy=None
            )
        assert unknown.value.response.status_code == 400
        with pytest.raises(InvalidStatus) as no_id:
            await open_ws(f"{s.url}/", "1.6")
        assert no_id.value.response.status_code == 404
        assert s.stats()["connects_total"] == 0


def test_charger_id_is_the_last_path_segment_url_decoded() -> None:
    assert charger_id_of("/ocpp/CP%201") == "CP 1"
    assert charger_id_of("/CP-7/") == "CP-7"
    assert charger_id_of("/CP-7?x=1") == "CP-7"
    assert charger_id_of("/") == ""


async def test_reconnect_with_the_same_id_replaces_the_old_connection(tmp_path: Path) -> None:
    async with asyncio.timeout(10), running(tmp_path) as s:
        old_ws = await open_ws(f"{s.url}/CP-R", "1.6")
        old = RpcConnection(old_ws, "1.6")
        old_task = asyncio.create_task(old.serve())
        assert isinstance(await old.call("Heartbeat", {}), CallResult)
        first = s.connections["CP-R"]
        async with charger(s, "CP-R", "1.6") as new:
            assert await old_task == "closed by peer (1000)"
            assert list(s.connections) == ["CP-R"] and s.connections["CP-R"] is not first
            await until(lambda: first.closed)
            ok(await new.call("Heartbeat", {}))
            stats = s.stats()
            assert stats["replaced"] == 1 and stats["connects_total"] == 2
            assert stats["connections_open"] == 1
            # The old connection's end did not mark the charger disconnected.
            assert s.store.query("SELECT connected FROM chargers") == [(1,)]
        await until(lambda: not s.connections)


async def test_csms_initiated_call_through_connections(tmp_path: Path) -> None:
    async with asyncio.timeout(5), running(tmp_path) as s:
        ws = await open_ws(f"{s.url}/CP-C", "1.6")
        cp = RpcConnection(
            ws,
            "1.6",
            handlers={"Reset": lambda p: {"status": "Accepted"}},
            validator=FrameValidator("1.6"),
        )
        task = asyncio.create_task(cp.serve())
        ok(await cp.call("Heartbeat", {}))
        outcome = await s.connections["CP-C"].call("Reset", {"type": "Soft"})
        assert outcome == CallResult({"status": "Accepted"})
        rejected = await s.connections["CP-C"].call("UnlockConnector", {"connectorId": 1})
        assert isinstance(rejected, CallError) and rejected.code == "NotSupported"
        await ws.close()
        await task


# -- load and the process entry point --------------------------------------------------------------


async def test_500_chargers_with_20_heartbeats_each(tmp_path: Path) -> None:
    chargers, beats = 500, 20

    async def one(i: int) -> int:
        async with charger(s, f"LOAD-{i}", "1.6" if i % 2 else "2.0.1") as cp:
            answered = 0
            for _ in range(beats):
                answered += isinstance(await cp.call("Heartbeat", {}), CallResult)
            return answered

    async with running(tmp_path) as s, asyncio.timeout(12):
        answered = await asyncio.gather(*(one(i) for i in range(chargers)))
        assert sum(answered) == chargers * beats
        assert s.stats()["messages"]["Heartbeat"] == chargers * beats
        assert s.store.counts()["chargers"] == chargers


async def test_process_entry_point_prints_port_and_stops_cleanly_on_sigterm(
    tmp_path: Path,
) -> None:
    db = tmp_path / "proc.db"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator.csms",
        "--port",
        "0",
        "--db",
        str(db),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(10):
            assert proc.stdout is not None and proc.stderr is not None
            line = (await proc.stdout.readline()).decode()
            word, port = line.split()
            assert word == "FLEETSIM_CSMS_LISTENING" and int(port) > 0
            ws = await open_ws(f"ws://127.0.0.1:{port}/CP-P", "1.6")
            cp = RpcConnection(ws, "1.6", validator=FrameValidator("1.6"))
            task = asyncio.create_task(cp.serve())
            boot = {"chargePointVendor": "V", "chargePointModel": "M"}
            assert ok(await cp.call("BootNotification", boot))["status"] == "Accepted"
            proc.terminate()
            # The server closes the charger's connection as part of its shutdown.
            assert (await task).startswith("closed by peer")
            assert await proc.wait() == 0
            assert await proc.stdout.read() == b""
            await proc.stderr.read()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT charger_id, boots, connected FROM chargers").fetchall()
    assert rows == [("CP-P", 1, 0)]


async def test_background_flusher_writes_meter_values_in_slices(tmp_path: Path) -> None:
    store = CsmsStore(tmp_path / "s.db", flush_interval_s=0.01, batch_rows=5, slice_rows=3)
    store.start()
    rows: list[MeterRow] = [
        ("CP", "1", STAMP, "Energy.Active.Import.Register", None, float(i), "Wh", "Sample.Periodic")
        for i in range(10)
    ]
    try:
        store.meter_rows(rows)
        # Read through another connection: only the background flusher can have written them.
        with sqlite3.connect(tmp_path / "s.db") as reader:
            async with asyncio.timeout(5):
                await until(
                    lambda: reader.execute("SELECT count(*) FROM meter_values").fetchone()[0] == 10
                )
            values = [v for (v,) in reader.execute("SELECT value FROM meter_values ORDER BY rowid")]
        assert values == [float(i) for i in range(10)]
    finally:
        await store.close()
