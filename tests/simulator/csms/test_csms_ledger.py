"""simulator.csms.ledger: what the embedded CSMS's database says it acknowledged, read back
read-only after the CSMS stopped: transactions of both versions, anomalies summed over runs,
`after_row` for a database reused across runs, and awkward paths. Chargers talk to the CSMS over
real websockets on 127.0.0.1 and validate every frame.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import pytest

from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.ledger import CsmsLedger, CsmsTransaction, read_csms_ledger
from simulator.rpc import CallResult
from tests.simulator.csms.scripted_charger import ScriptedCharger, scripted

STAMP = "2030-01-01T12:00:00.000Z"
LATER = "2030-01-01T14:00:00.000Z"


@asynccontextmanager
async def running(db: Path) -> AsyncIterator[CsmsServer]:
    server = CsmsServer(CsmsConfig(port=0, db_path=db))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


async def send(charger: ScriptedCharger, action: str, payload: dict[str, Any]) -> dict[str, Any]:
    assert charger.rpc is not None
    outcome = await charger.rpc.call(action, payload)
    assert isinstance(outcome, CallResult), outcome
    assert charger.invalid == []
    return outcome.payload


def event(tx_id: str, kind: str, seq_no: int, wh: float, stamp: str) -> dict[str, Any]:
    trigger = {"Started": "Authorized", "Ended": "EVDeparted"}[kind]
    info: dict[str, Any] = {"transactionId": tx_id}
    if kind == "Ended":
        info["stoppedReason"] = "Remote"
    context = "Transaction.Begin" if kind == "Started" else "Transaction.End"
    sample = {"value": wh, "context": context, "unitOfMeasure": {"unit": "kWh"}}
    return {
        "eventType": kind,
        "timestamp": stamp,
        "triggerReason": trigger,
        "seqNo": seq_no,
        "transactionInfo": info,
        "evse": {"id": 1, "connectorId": 1},
        "meterValue": [{"timestamp": stamp, "sampledValue": [sample]}],
    }


async def one_run(db: Path, meter_start: int) -> int:
    """A stopped and an open 1.6 transaction, a stopped 2.0.1 one and a retried Start (an
    anomaly); returns the 1.6 stopped transaction's id."""
    async with asyncio.timeout(10), running(db) as s:
        async with scripted(s, "CP-16", "1.6") as cp:
            start = {"connectorId": 1, "idTag": "T", "meterStart": meter_start, "timestamp": STAMP}
            tx = (await send(cp, "StartTransaction", start))["transactionId"]
            await send(cp, "StartTransaction", start)
            stop = {"transactionId": tx, "meterStop": meter_start + 250, "timestamp": LATER}
            await send(cp, "StopTransaction", stop)
            await send(cp, "StartTransaction", {**start, "connectorId": 2})
        async with scripted(s, "CS-201", "2.0.1") as cs:
            await send(cs, "TransactionEvent", event(f"e-{meter_start}", "Started", 0, 1.5, STAMP))
            await send(cs, "TransactionEvent", event(f"e-{meter_start}", "Ended", 1, 2.25, LATER))
    return int(tx)


async def test_the_ledger_holds_every_transaction_and_anomaly(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    tx = await one_run(db, 1000)
    ledger = read_csms_ledger(db)
    assert isinstance(ledger, CsmsLedger)
    assert ledger.transactions == {
        ("CP-16", str(tx)): CsmsTransaction(
            "CP-16", str(tx), 1000.0, 1250.0, 250.0, STAMP, LATER, "Local"
        ),
        ("CP-16", str(tx + 1)): CsmsTransaction(
            "CP-16", str(tx + 1), 1000.0, None, None, STAMP, None, None
        ),
        ("CS-201", "e-1000"): CsmsTransaction(
            "CS-201", "e-1000", 1500.0, 2250.0, 750.0, STAMP, LATER, "Remote"
        ),
    }
    assert ledger.anomalies == {"duplicate_start": 1}


async def test_a_reused_database_sums_anomalies_and_after_row_picks_the_latest_run(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    await one_run(db, 1000)
    with closing(sqlite3.connect(db)) as conn:
        (last_row,) = conn.execute("SELECT max(id) FROM transactions").fetchone()
    await one_run(db, 5000)
    ledger = read_csms_ledger(db, after_row=last_row)
    assert sorted(ledger.transactions) == [
        ("CP-16", str(last_row + 1)),
        ("CP-16", str(last_row + 2)),
        ("CS-201", "e-5000"),
    ]
    assert ledger.transactions[("CS-201", "e-5000")].energy_wh == 750.0
    assert ledger.anomalies == {"duplicate_start": 2}
    assert len(read_csms_ledger(db).transactions) == 6


async def test_reading_writes_nothing_and_works_on_an_awkward_path(tmp_path: Path) -> None:
    folder = tmp_path / "a dir #1?"
    folder.mkdir()
    db = folder / "csms 100%.db"
    await one_run(db, 1000)
    before = db.read_bytes()
    assert len(read_csms_ledger(db).transactions) == 3
    assert db.read_bytes() == before
    # A missing database is an error, and is not created by the attempt.
    missing = folder / "none.db"
    with pytest.raises(sqlite3.OperationalError):
        read_csms_ledger(missing)
    assert not missing.exists()


def test_a_database_from_before_anomalies_were_stored_has_none(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(
            "CREATE TABLE transactions (id INTEGER PRIMARY KEY, charger_id TEXT,"
            " transaction_id TEXT, meter_start_wh REAL, meter_stop_wh REAL, energy_wh REAL,"
            " started_at TEXT, stopped_at TEXT, stop_reason TEXT)"
        )
        conn.execute("INSERT INTO transactions VALUES (7, 'CP', 7, 1, 2, 1, 's', 't', 'Local')")
        conn.commit()
    ledger = read_csms_ledger(db)
    assert ledger.anomalies == {}
    assert ledger.transactions == {
        ("CP", "7"): CsmsTransaction("CP", "7", 1, 2, 1, "s", "t", "Local")
    }
    # Not a CSMS database at all: an error, not an empty ledger.
    other = tmp_path / "other.db"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE x (y)")
    with pytest.raises(sqlite3.OperationalError):
        read_csms_ledger(other)
