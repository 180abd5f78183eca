"""What the embedded CSMS remembers: chargers, latest connector statuses, transactions, meter
values, notifications and anomalies, in SQLite. Writes are buffered in memory and flushed in
one batched transaction by a background task; no handler runs SQL per message (only for what
memory cannot know after a restart: a transaction opened before it). A handler whose answer
promises that something is stored (a transaction message) awaits `durable()`: the next group
commit, at most `commit_interval_s` away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chargers (
    charger_id TEXT PRIMARY KEY,
    version TEXT,
    vendor TEXT,
    model TEXT,
    serial TEXT,
    firmware TEXT,
    boots INTEGER NOT NULL DEFAULT 0,
    first_boot TEXT,
    last_boot TEXT,
    last_seen TEXT,
    connected INTEGER NOT NULL DEFAULT 0
);
-- Only the latest status of each connector; `count` says how many notifications it took.
-- 1.6 has no EVSEs: its connectorId is stored as both evse_id and connector_id.
CREATE TABLE IF NOT EXISTS statuses (
    charger_id TEXT NOT NULL,
    evse_id INTEGER NOT NULL,
    connector_id INTEGER NOT NULL,
    status TEXT,
    error_code TEXT,
    timestamp TEXT,
    count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (charger_id, evse_id, connector_id)
);
CREATE TABLE IF NOT EXISTS transactions (
    id INTEGER PRIMARY KEY,
    charger_id TEXT NOT NULL,
    version TEXT NOT NULL,
    transaction_id TEXT NOT NULL,
    evse_id INTEGER,
    connector_id INTEGER,
    id_tag TEXT,
    meter_start_wh REAL,
    meter_stop_wh REAL,
    energy_wh REAL,
    started_at TEXT,
    stopped_at TEXT,
    stop_reason TEXT,
    seq_no_last INTEGER,
    UNIQUE (charger_id, transaction_id)
);
-- Finds the original of a repeated 1.6 StartTransaction (a charger's retry) once it has left
-- memory: one row per transaction, so the index costs little on the hot path.
CREATE INDEX IF NOT EXISTS transactions_start
    ON transactions (charger_id, connector_id, started_at);
-- What looked wrong, and injected faults (chaos_*), summed over every run on this database.
CREATE TABLE IF NOT EXISTS anomalies (
    kind TEXT PRIMARY KEY,
    count INTEGER NOT NULL
);
-- No index: inserts are the hot path, reads are rare reports that may scan.
CREATE TABLE IF NOT EXISTS meter_values (
    charger_id TEXT NOT NULL,
    transaction_id TEXT,
    timestamp TEXT,
    measurand TEXT,
    phase TEXT,
    value REAL,
    unit TEXT,
    context TEXT
);
-- Everything else a charger reports (firmware, diagnostics, log, security, events, reports,
-- data transfers), as the JSON payload it sent.
CREATE TABLE IF NOT EXISTS notifications (
    charger_id TEXT NOT NULL,
    action TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload TEXT NOT NULL
);
-- Every CSMS-initiated call: the request, how it ended (result, error, timeout, closed), the
-- charger's answer (a response payload, or the CALLERROR as {code, description, details}), and
-- the profile, reservation or request id it named (ids the CSMS hands out continue after it).
CREATE TABLE IF NOT EXISTS operations (
    id INTEGER PRIMARY KEY,
    charger_id TEXT NOT NULL,
    version TEXT NOT NULL,
    action TEXT NOT NULL,
    request TEXT NOT NULL,
    outcome TEXT NOT NULL,
    response TEXT,
    ref_id INTEGER,
    sent_at TEXT NOT NULL,
    answered_at TEXT NOT NULL
);
"""

# ?11 is the `connected` flag: -1 leaves the stored value alone.
_UPSERT_CHARGER = """
INSERT INTO chargers (charger_id, version, vendor, model, serial, firmware, boots, first_boot,
                      last_boot, last_seen, connected)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, max(?11, 0))
ON CONFLICT (charger_id) DO UPDATE SET
    version = coalesce(excluded.version, version),
    vendor = coalesce(excluded.vendor, vendor),
    model = coalesce(excluded.model, model),
    serial = coalesce(excluded.serial, serial),
    firmware = coalesce(excluded.firmware, firmware),
    boots = boots + excluded.boots,
    first_boot = coalesce(first_boot, excluded.first_boot),
    last_boot = coalesce(excluded.last_boot, last_boot),
    last_seen = coalesce(excluded.last_seen, last_seen),
    connected = CASE WHEN ?11 < 0 THEN connected ELSE ?11 END
"""
_UPSERT_STATUS = """
INSERT INTO statuses (charger_id, evse_id, connector_id, status, error_code, timestamp, count)
VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (charger_id, evse_id, connector_id) DO UPDATE SET
    status = excluded.status,
    error_code = excluded.error_code,
    timestamp = excluded.timestamp,
    count = count + excluded.count
"""
_TX_COLUMNS = (
    "id, charger_id, version, transaction_id, evse_id, connector_id, id_tag, meter_start_wh, "
    "meter_stop_wh, energy_wh, started_at, stopped_at, stop_reason, seq_no_last"
)
_UPSERT_TX = f"""
INSERT INTO transactions ({_TX_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (charger_id, transaction_id) DO UPDATE SET
    evse_id = excluded.evse_id,
    connector_id = excluded.connector_id,
    id_tag = excluded.id_tag,
    meter_start_wh = excluded.meter_start_wh,
    meter_stop_wh = excluded.meter_stop_wh,
    energy_wh = excluded.energy_wh,
    started_at = excluded.started_at,
    stopped_at = excluded.stopped_at,
    stop_reason = excluded.stop_reason,
    seq_no_last = excluded.seq_no_last
"""
_INSERT_METER = "INSERT INTO meter_values VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_NOTE = "INSERT INTO notifications VALUES (?, ?, ?, ?)"
_OP_COLUMNS = (
    "id, charger_id, version, action, request, outcome, response, ref_id, sent_at, answered_at"
)
_INSERT_OP = f"INSERT INTO operations ({_OP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_ADD_ANOMALY = """
INSERT INTO anomalies (kind, count) VALUES (?, ?)
ON CONFLICT (kind) DO UPDATE SET count = count + excluded.count
"""
_FIND_START = """
SELECT transaction_id FROM transactions
WHERE charger_id = ? AND connector_id = ? AND started_at = ? AND id_tag = ?
    AND meter_start_wh = ? AND version = '1.6' AND stopped_at IS NULL
ORDER BY id DESC LIMIT 1
"""

# How a 1.6 transaction started: charger_id, connector_id, timestamp, idTag, meterStart (Wh).
StartKey = tuple[str, int | None, str | None, str | None, float | None]

# One meter_values row: charger_id, transaction_id, timestamp, measurand, phase, value, unit,
# context.
MeterRow = tuple[str, str | None, str | None, str, str | None, float | None, str | None, str]


def iso_utc(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp with millisecond precision."""
    stamp = datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class TxState:
    """A transaction as the CSMS tracks it while it is open (or until its last change is
    flushed). Handlers change fields in place and then call `CsmsStore.touch`."""

    __slots__ = (
        "charger_id",
        "connector_id",
        "evse_id",
        "id",
        "id_tag",
        "meter_last_wh",
        "meter_start_wh",
        "meter_stop_wh",
        "seq_no_last",
        "started_at",
        "stop_reason",
        "stopped_at",
        "transaction_id",
        "version",
    )

    def __init__(self, id: int, charger_id: str, version: str, transaction_id: str) -> None:
        self.id = id
        self.charger_id = charger_id
        self.version = version
        self.transaction_id = transaction_id
        self.evse_id: int | None = None
        self.connector_id: int | None = None
        self.id_tag: str | None = None
        self.meter_start_wh: float | None = None
        self.meter_stop_wh: float | None = None
        self.started_at: str | None = None
        self.stopped_at: str | None = None
        self.stop_reason: str | None = None
        self.seq_no_last: int | None = None
        # The latest energy register heard while open (memory only): the stop reading of last
        # resort.
        self.meter_last_wh: float | None = None

    @property
    def energy_wh(self) -> float | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh

    def row(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.charger_id,
            self.version,
            self.transaction_id,
            self.evse_id,
            self.connector_id,
            self.id_tag,
            self.meter_start_wh,
            self.meter_stop_wh,
            self.energy_wh,
            self.started_at,
            self.stopped_at,
            self.stop_reason,
            self.seq_no_last,
        )


class StoreFailed(Exception):
    """A commit failed: what a `durable()` waiter was promised is lost (the batch was dropped)."""


@dataclass(frozen=True, slots=True)
class OperationRecord:
    """One CSMS-initiated call as recorded: `request` and `response` are the JSON texts."""

    id: int
    charger_id: str
    version: str
    action: str
    request: str
    outcome: str
    response: str | None
    ref_id: int | None
    sent_at: str
    answered_at: str


@dataclass(frozen=True, slots=True)
class TransactionRecord:
    """One row of the transactions table, as read back for tests and reports."""

    id: int
    charger_id: str
    version: str
    transaction_id: str
    evse_id: int | None
    connector_id: int | None
    id_tag: str | None
    meter_start_wh: float | None
    meter_stop_wh: float | None
    energy_wh: float | None
    started_at: str | None
    stopped_at: str | None
    stop_reason: str | None
    seq_no_last: int | None


class _ChargerDelta:
    """What changed about one charger since the last flush (None = unchanged)."""

    __slots__ = (
        "boots",
        "connected",
        "firmware",
        "first_boot",
        "last_boot",
        "model",
        "serial",
        "vendor",
        "version",
    )

    def __init__(self) -> None:
        self.version: str | None = None
        self.vendor: str | None = None
        self.model: str | None = None
        self.serial: str | None = None
        self.firmware: str | None = None
        self.boots = 0
        self.first_boot: float | None = None
        self.last_boot: float | None = None
        self.connected = -1


class CsmsStore:
    """The CSMS's SQLite database behind in-memory write batches.

    Everything runs on the event-loop thread. Recording methods only touch dicts and lists;
    `flush` writes pending rows with executemany, in one transaction, with no fsync per commit
    (WAL with synchronous=NORMAL syncs only at checkpoints). What a flush costs the loop:
    about 4 µs per row, measured (meter values dominate: 50 000 rows ≈ 200 ms). So the
    background flusher runs every `flush_interval_s`, or early once a batch holds `batch_rows`
    rows, and writes meter values in slices of `slice_rows` (one transaction each, ≈ 20 ms),
    yielding to the loop between slices so that chargers' calls are not stalled behind it.
    A crash loses at most the unflushed rows.

    Durable acknowledgements (`durable`, on for a database file): a handler that must not
    answer before its rows are stored awaits `durable()`, which resolves once a commit has
    left nothing buffered. While anyone waits, the flusher commits at most every
    `commit_interval_s` (group commit: every answer that became due in those 20 ms shares one
    commit), so a waiter waits one interval at worst, plus the commit. "Stored" means in the
    WAL file: a CSMS process killed right after answering loses nothing it answered; the
    machine losing power may (synchronous=NORMAL does not fsync each commit).
    """

    def __init__(
        self,
        path: Path | None = None,
        *,
        flush_interval_s: float = 0.5,
        batch_rows: int = 20_000,
        slice_rows: int = 5_000,
        durable: bool = True,
        commit_interval_s: float = 0.02,
    ) -> None:
        self.path = path
        self.flush_interval_s = flush_interval_s
        self.batch_rows = batch_rows
        self.slice_rows = slice_rows
        self.commit_interval_s = commit_interval_s
        # An in-memory database dies with the process: waiting for its commits buys nothing.
        self.durable_acks = durable and path is not None
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, once per flush.
        self._db = sqlite3.connect(":memory:" if path is None else str(path), isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        # A previous run that crashed may have left chargers marked connected.
        self._db.execute("UPDATE chargers SET connected = 0")
        (max_id,) = self._db.execute("SELECT coalesce(max(id), 0) FROM transactions").fetchone()
        # Transaction ids (the 1.6 wire id, and the row id of every transaction) come from this
        # counter, so StartTransaction is answered without waiting for an INSERT.
        self._last_tx_id: int = max_id
        self._last_op_id: int
        self.last_ref_id: int
        self._last_op_id, self.last_ref_id = self._db.execute(
            "SELECT coalesce(max(id), 0), coalesce(max(ref_id), 0) FROM operations"
        ).fetchone()
        self._booted: set[str] = {
            row[0] for row in self._db.execute("SELECT charger_id FROM chargers WHERE boots > 0")
        }
        self._chargers: dict[str, _ChargerDelta] = {}
        self._seen: dict[str, float] = {}
        # (charger_id, evse_id, connector_id) -> [status, error_code, timestamp, count]
        self._statuses: dict[tuple[str, int, int], list[Any]] = {}
        self._open: dict[tuple[str, str], TxState] = {}
        self._dirty_tx: dict[tuple[str, str], TxState] = {}
        self._meter: list[MeterRow] = []
        self._notes: list[tuple[str, str, str, str]] = []
        self._ops: list[tuple[Any, ...]] = []
        # 1.6 open transactions by how they started (StartKey): where a repeated
        # StartTransaction finds its original (about 250 bytes per open transaction).
        self._starts: dict[StartKey, TxState] = {}
        # Chargers with 1.6 transactions left open in the database by an earlier run: only
        # theirs can be a retry that memory does not know of.
        self._open_before: set[str] = {
            row[0]
            for row in self._db.execute(
                "SELECT DISTINCT charger_id FROM transactions"
                " WHERE stopped_at IS NULL AND version = '1.6'"
            )
        }
        self.anomalies: Counter[str] = Counter()
        # What of `anomalies` the database already holds (its table sums over runs).
        self._anomalies_saved: Counter[str] = Counter()
        # Futures of `durable()` callers, resolved by the commit that leaves nothing buffered.
        self._waiters: list[asyncio.Future[None]] = []
        self._last_commit = 0.0
        self._last_seen_flush = 0.0
        self.commits = 0  # how many flushes committed something (the group commit's measure)
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background flusher (needs a running loop)."""
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_loop(), name="csms-store-flush"
            )

    async def close(self) -> None:
        """Stop the flusher, write what is pending and close the database."""
        if self._closed:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        try:
            self.flush()
        finally:
            self._closed = True
            self._db.close()
            # Nothing can be stored any more: whoever still waits is told so (no-op if none).
            self._fail_waiters("the CSMS store is closed")

    async def _flush_loop(self) -> None:
        while True:
            if not self._waiters:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.flush_interval_s):
                        await self._wake.wait()
            if self._waiters:
                # Group commit: at most one commit per interval while answers wait, so that
                # under load every answer that became due meanwhile shares it; a lone waiter
                # after a quiet spell is committed at once.
                delay = self._last_commit + self.commit_interval_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            self._wake.clear()
            # Chargers' last_seen (a row per charger heard from) promises nothing: it keeps the
            # flush cadence, or every group commit would rewrite a row per busy charger.
            seen = time.monotonic() - self._last_seen_flush >= self.flush_interval_s
            try:
                self.flush(self.slice_rows, seen=seen)
                while len(self._meter) > 0:
                    await asyncio.sleep(0)
                    self.flush(self.slice_rows, seen=seen)
            except sqlite3.Error:
                # The batch is lost (its waiters were told); the CSMS keeps answering chargers.
                log.exception("CSMS store flush failed")
                self.anomalies["flush_failed"] += 1

    def durable(self) -> asyncio.Future[None]:
        """Resolves once everything recorded so far is committed (at most one
        `commit_interval_s` plus a commit away); fails with StoreFailed if that commit fails.
        Call it right after recording, with no await in between. Already resolved when
        acknowledgements are not durable (`durable_acks` False)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.durable_acks:
            future.set_result(None)
        elif self._closed:
            future.set_exception(StoreFailed("the CSMS store is closed"))
        else:
            if not self._waiters:
                self._wake.set()
            self._waiters.append(future)
        return future

    def _release_waiters(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_result(None)

    def _fail_waiters(self, reason: str) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            if not future.done():
                future.set_exception(StoreFailed(reason))

    def _grew(self, rows: int) -> None:
        if rows >= self.batch_rows:
            self._wake.set()

    # -- recording (cheap: memory only) --------------------------------------------------------

    def is_booted(self, charger_id: str) -> bool:
        """Whether the charger ever sent a BootNotification (in this db)."""
        return charger_id in self._booted

    def _delta(self, charger_id: str) -> _ChargerDelta:
        delta = self._chargers.get(charger_id)
        if delta is None:
            delta = self._chargers[charger_id] = _ChargerDelta()
        return delta

    def connected(self, charger_id: str, version: str, connected: bool) -> None:
        delta = self._delta(charger_id)
        delta.version = version
        delta.connected = int(connected)
        self._seen[charger_id] = time.time()

    def booted(
        self,
        charger_id: str,
        version: str,
        vendor: str | None,
        model: str | None,
        serial: str | None,
        firmware: str | None,
    ) -> None:
        now = time.time()
        delta = self._delta(charger_id)
        delta.version = version
        delta.vendor = vendor
        delta.model = model
        delta.serial = serial
        delta.firmware = firmware
        delta.boots += 1
        if delta.first_boot is None:
            delta.first_boot = now
        delta.last_boot = now
        self._booted.add(charger_id)

    def seen(self, charger_id: str, epoch_s: float) -> None:
        self._seen[charger_id] = epoch_s

    def status(
        self,
        charger_id: str,
        evse_id: int,
        connector_id: int,
        status: str,
        error_code: str | None,
        timestamp: str | None,
    ) -> None:
        key = (charger_id, evse_id, connector_id)
        entry = self._statuses.get(key)
        if entry is None:
            self._statuses[key] = [status, error_code, timestamp, 1]
        else:
            entry[0] = status
            entry[1] = error_code
            entry[2] = timestamp
            entry[3] += 1

    def meter_rows(self, rows: list[MeterRow]) -> None:
        self._meter.extend(rows)
        self._grew(len(self._meter))

    def notification(self, charger_id: str, action: str, payload_json: str) -> None:
        self._notes.append((charger_id, action, iso_utc(time.time()), payload_json))
        self._grew(len(self._notes))

    def anomaly(self, kind: str) -> None:
        self.anomalies[kind] += 1

    def operation(
        self,
        charger_id: str,
        version: str,
        action: str,
        request_json: str,
        outcome: str,
        response_json: str | None,
        ref_id: int | None,
        sent_at: float,
        answered_at: float,
    ) -> int:
        """Record a CSMS-initiated call once it has ended; returns its id (times: epoch s)."""
        self._last_op_id += 1
        if ref_id is not None and ref_id > self.last_ref_id:
            self.last_ref_id = ref_id
        self._ops.append(
            (
                self._last_op_id,
                charger_id,
                version,
                action,
                request_json,
                outcome,
                response_json,
                ref_id,
                iso_utc(sent_at),
                iso_utc(answered_at),
            )
        )
        self._grew(len(self._ops))
        return self._last_op_id

    # -- transactions --------------------------------------------------------------------------

    def new_transaction(
        self, charger_id: str, version: str, transaction_id: str | None = None
    ) -> TxState:
        """A new open transaction with the next id; `transaction_id` None (1.6) means the wire
        id is that integer id."""
        self._last_tx_id += 1
        tx_id = self._last_tx_id
        wire_id = str(tx_id) if transaction_id is None else transaction_id
        tx = TxState(tx_id, charger_id, version, wire_id)
        key = (charger_id, tx.transaction_id)
        self._open[key] = tx
        self._dirty_tx[key] = tx
        return tx

    def find_transaction(self, charger_id: str, transaction_id: str) -> TxState | None:
        """The transaction with this wire id: open ones from memory, else (after a restart, or
        once stopped) from the database: a rare, indexed SELECT."""
        key = (charger_id, transaction_id)
        tx = self._open.get(key) or self._dirty_tx.get(key)
        if tx is not None:
            return tx
        row = self._db.execute(
            f"SELECT {_TX_COLUMNS} FROM transactions WHERE charger_id = ? AND transaction_id = ?",
            key,
        ).fetchone()
        if row is None:
            return None
        tx = TxState(row[0], row[1], row[2], row[3])
        (
            tx.evse_id,
            tx.connector_id,
            tx.id_tag,
            tx.meter_start_wh,
            tx.meter_stop_wh,
            _energy,
            tx.started_at,
            tx.stopped_at,
            tx.stop_reason,
            tx.seq_no_last,
        ) = row[4:]
        if tx.stopped_at is None:
            self._open[key] = tx
        return tx

    @staticmethod
    def _start_key(tx: TxState) -> StartKey:
        return (tx.charger_id, tx.connector_id, tx.started_at, tx.id_tag, tx.meter_start_wh)

    def remember_start(self, tx: TxState) -> None:
        """Index a new 1.6 transaction by how it started, for `find_start`."""
        self._starts[self._start_key(tx)] = tx

    def find_start(self, key: StartKey) -> TxState | None:
        """The open 1.6 transaction that started so (charger_id, connector_id, timestamp,
        idTag, meterStart): the original of a charger's retry. From memory, else, for a
        charger that had transactions open before a restart, from the database (an indexed
        SELECT). Stopped ones are left out: a charger retries a Start before it sends that
        transaction's Stop, so the same start after a stop is a new transaction (a rerun of a
        scenario with a fixed start time)."""
        tx = self._starts.get(key)
        if tx is not None or key[0] not in self._open_before:
            return tx
        row = self._db.execute(_FIND_START, key).fetchone()
        if row is None:
            return None
        # Memory holds the newer state when it has one (a stop not yet flushed).
        tx = self.find_transaction(key[0], row[0])
        return tx if tx is not None and tx.stopped_at is None else None

    def touch(self, tx: TxState) -> None:
        """Mark a changed transaction for the next flush."""
        self._dirty_tx[(tx.charger_id, tx.transaction_id)] = tx

    def end_transaction(self, tx: TxState) -> None:
        """The transaction is over: forget it once flushed."""
        key = (tx.charger_id, tx.transaction_id)
        self._open.pop(key, None)
        self._dirty_tx[key] = tx
        start = self._start_key(tx)
        if self._starts.get(start) is tx:
            del self._starts[start]

    @property
    def open_transactions(self) -> int:
        return len(self._open)

    # -- flushing ------------------------------------------------------------------------------

    def flush(self, max_meter_rows: int | None = None, *, seen: bool = True) -> None:
        """Write pending changes in one transaction (see the class docstring for the cost):
        everything, or everything but the meter values beyond the first `max_meter_rows`, and
        without chargers' last_seen times when `seen` is False."""
        if self._closed:
            return
        chargers, self._chargers = self._chargers, {}
        if seen:
            seen_at, self._seen = self._seen, {}
            self._last_seen_flush = time.monotonic()
        else:
            seen_at = {}
        statuses, self._statuses = self._statuses, {}
        txs, self._dirty_tx = self._dirty_tx, {}
        if max_meter_rows is None or len(self._meter) <= max_meter_rows:
            meter, self._meter = self._meter, []
        else:
            meter, self._meter = self._meter[:max_meter_rows], self._meter[max_meter_rows:]
        notes, self._notes = self._notes, []
        ops, self._ops = self._ops, []
        anomalies = self.anomalies - self._anomalies_saved
        if not (chargers or seen_at or statuses or txs or meter or notes or ops or anomalies):
            # Nothing buffered: whatever a waiter recorded is committed already.
            self._release_waiters()
            return
        charger_rows = []
        for charger_id in chargers.keys() | seen_at.keys():
            d = chargers.get(charger_id) or _ChargerDelta()
            last_seen = seen_at.get(charger_id)
            charger_rows.append(
                (
                    charger_id,
                    d.version,
                    d.vendor,
                    d.model,
                    d.serial,
                    d.firmware,
                    d.boots,
                    None if d.first_boot is None else iso_utc(d.first_boot),
                    None if d.last_boot is None else iso_utc(d.last_boot),
                    None if last_seen is None else iso_utc(last_seen),
                    d.connected,
                )
            )
        db = self._db
        db.execute("BEGIN")
        try:
            if charger_rows:
                db.executemany(_UPSERT_CHARGER, charger_rows)
            if statuses:
                db.executemany(_UPSERT_STATUS, [(*k, *v) for k, v in statuses.items()])
            if txs:
                db.executemany(_UPSERT_TX, [tx.row() for tx in txs.values()])
            if meter:
                db.executemany(_INSERT_METER, meter)
            if notes:
                db.executemany(_INSERT_NOTE, notes)
            if ops:
                db.executemany(_INSERT_OP, ops)
            if anomalies:
                db.executemany(_ADD_ANOMALY, anomalies.items())
            db.execute("COMMIT")
        except BaseException as exc:
            db.execute("ROLLBACK")
            # The batch is dropped: answers waiting for it must not claim it was stored. Its
            # transactions are written again next time (they are live objects, few, and a
            # charger's retry of one is answered from memory as a duplicate: it must reach
            # the database before that answer).
            self._fail_waiters(f"commit failed: {exc!r}")
            self._last_commit = time.monotonic()  # retried after an interval, not at once
            for key, tx in txs.items():
                self._dirty_tx.setdefault(key, tx)
            raise
        self._last_commit = time.monotonic()
        self.commits += 1
        self._anomalies_saved.update(anomalies)
        if not self._meter:
            self._release_waiters()

    # -- reads (tests, reports): flush first ---------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Run a read-only query after flushing (for tests and reports)."""
        self.flush()
        return self._db.execute(sql, params).fetchall()

    def transactions(self, charger_id: str | None = None) -> list[TransactionRecord]:
        sql = f"SELECT {_TX_COLUMNS} FROM transactions"
        params: tuple[Any, ...] = ()
        if charger_id is not None:
            sql += " WHERE charger_id = ?"
            params = (charger_id,)
        return [TransactionRecord(*row) for row in self.query(sql + " ORDER BY id", params)]

    def operations(
        self, charger_id: str | None = None, limit: int | None = None
    ) -> list[OperationRecord]:
        """CSMS-initiated calls, oldest first: all, or the latest `limit`."""
        sql = f"SELECT {_OP_COLUMNS} FROM operations"
        params: tuple[Any, ...] = ()
        if charger_id is not None:
            sql += " WHERE charger_id = ?"
            params = (charger_id,)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params = (*params, limit)
        return [OperationRecord(*row) for row in reversed(self.query(sql, params))]

    def energy_by_charger(self) -> dict[str, float]:
        """Energy of completed transactions (Wh) per charger."""
        rows = self.query(
            "SELECT charger_id, sum(energy_wh) FROM transactions"
            " WHERE energy_wh IS NOT NULL AND stopped_at IS NOT NULL"
            " GROUP BY charger_id ORDER BY charger_id"
        )
        return {charger_id: float(energy) for charger_id, energy in rows}

    def counts(self) -> dict[str, int]:
        """Row counts per table, notifications per connector status, and anomalies."""
        self.flush()
        db = self._db
        out: dict[str, int] = {}
        tables = ("chargers", "statuses", "transactions", "meter_values", "notifications")
        for table in (*tables, "operations"):
            out[table] = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        out["status_notifications"] = db.execute(
            "SELECT coalesce(sum(count), 0) FROM statuses"
        ).fetchone()[0]
        out["transactions_open"] = len(self._open)
        for kind, n in sorted(self.anomalies.items()):
            out[f"anomaly.{kind}"] = n
        return out
