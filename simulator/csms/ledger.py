"""What the embedded CSMS's database says it acknowledged: its transactions and its anomaly
counts, read back after the CSMS has exited, for reconciliation with the chargers' ledger.

Read-only: it opens the database with SQLite's `mode=ro`, so it never writes, migrates or
checkpoints it (a database left by a killed CSMS is read with its WAL as it stands; SQLite may
leave empty -wal/-shm companions beside a cleanly closed one).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote


@dataclass(frozen=True)
class CsmsTransaction:
    """One transaction as the CSMS stored it (energies in Wh, times as the charger sent them)."""

    charger_id: str
    transaction_id: str
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_wh: float | None
    started_at: str | None
    stopped_at: str | None
    stop_reason: str | None


@dataclass(frozen=True)
class CsmsLedger:
    """Every transaction by (charger_id, transaction_id), and anomaly counts summed over every
    run on the database (duplicate_*, transaction_*, chaos_*, ...)."""

    transactions: dict[tuple[str, str], CsmsTransaction]
    anomalies: dict[str, int]


def read_csms_ledger(db_path: Path, after_row: int = 0) -> CsmsLedger:
    """Read a CSMS database (after the CSMS exited, or was killed): the transactions whose row
    id is above `after_row` (a database reused across runs: those of the latest run), and the
    anomalies of every run (subtract an earlier reading for one run's). Raises sqlite3.Error
    when it cannot be opened or is not a CSMS database (no transactions table); a database
    written before anomalies were stored has none."""
    # A URI, so that mode=ro applies; the path is quoted (spaces, '?' and '#' are legal there).
    uri = f"file:{quote(str(Path(db_path).resolve()))}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:
        rows = db.execute(
            "SELECT charger_id, transaction_id, meter_start_wh, meter_stop_wh, energy_wh,"
            " started_at, stopped_at, stop_reason FROM transactions WHERE id > ? ORDER BY id",
            (after_row,),
        ).fetchall()
        transactions = {
            (str(row[0]), str(row[1])): CsmsTransaction(str(row[0]), str(row[1]), *row[2:])
            for row in rows
        }
        has_anomalies = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'anomalies'"
        ).fetchone()
        anomalies: dict[str, int] = {}
        if has_anomalies:
            anomalies = {
                str(kind): int(count)
                for kind, count in db.execute("SELECT kind, count FROM anomalies ORDER BY kind")
            }
    return CsmsLedger(transactions, anomalies)
