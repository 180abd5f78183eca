"""The run's ledger of transaction messages, and its reconciliation with what the CSMS recorded.

Every transactional message a charger queues is counted once, and ends in exactly one of
delivered (the CSMS answered it with a CALLRESULT), dropped (a queue overflowed as configured,
or its attempts ran out) or unsent (still queued when the run ended): the books must balance.
Every transaction keeps the figures the wire carried (its CSMS id, start and stop registers)
and whether the CSMS acknowledged its start and its stop, so that, at the end, it can be held
against the CSMS's own database: an acknowledged transaction the CSMS does not have, or has
with other figures, is a lost or corrupted message, and fails the run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.csms.ledger import CsmsLedger
    from simulator.protocol.base import Outbound

# What a CSMS's register may differ by from the charger's (1.6 sends whole Wh, 2.0.1 0.1 Wh).
_REGISTER_TOLERANCE_WH = 0.05
# CSMS anomalies that mean messages arrived out of order or were missed.
ORDER_ANOMALIES = (
    "unknown_transaction_stop",
    "transaction_event_unknown_transaction",
    "transaction_started_twice",
    "transaction_seq_no_gap",
    "transaction_stopped_twice",
)
MAX_LISTED_MISMATCHES = 20

_START_16 = "StartTransaction"
_STOP_16 = "StopTransaction"
_EVENT_201 = "TransactionEvent"


@dataclass(slots=True)
class LedgerTransaction:
    """What one transaction's messages told the CSMS, and what it acknowledged."""

    charger_id: str
    version: str
    wire_id: str | None = None  # the CSMS's id (1.6: assigned in the StartTransaction answer)
    meter_start_wh: float | None = None
    meter_stop_wh: float | None = None
    start_acked: bool = False
    stop_made: bool = False  # the station ended it: its stop message was queued
    stop_acked: bool = False
    dropped: int = 0  # its messages that were dropped

    @property
    def energy_wh(self) -> float | None:
        if self.meter_start_wh is None or self.meter_stop_wh is None:
            return None
        return self.meter_stop_wh - self.meter_start_wh


@dataclass
class MessageLedger:
    """Counts of transactional messages by fate, and every transaction's acknowledged figures.

    The links call `queued`, `delivered` and `dropped`; the runner sets `unsent` at the end.
    Memory: one small entry per transaction of the run (about 200 bytes)."""

    queued: Counter[str] = field(default_factory=Counter)
    queued_offline: Counter[str] = field(default_factory=Counter)  # of which while offline
    delivered: Counter[str] = field(default_factory=Counter)
    dropped_overflow: Counter[str] = field(default_factory=Counter)
    dropped_attempts: Counter[str] = field(default_factory=Counter)
    unsent: Counter[str] = field(default_factory=Counter)
    transactions: dict[tuple[str, int], LedgerTransaction] = field(default_factory=dict)

    def _entry(self, charger_id: str, version: str, message: Outbound) -> LedgerTransaction | None:
        tx = message.tx
        if tx is None:
            return None
        key = (charger_id, tx.seq)
        entry = self.transactions.get(key)
        if entry is None:
            entry = self.transactions[key] = LedgerTransaction(charger_id, version)
        return entry

    def queued_message(
        self, charger_id: str, version: str, message: Outbound, offline: bool = False
    ) -> None:
        self.queued[message.action] += 1
        if offline:
            self.queued_offline[message.action] += 1
        entry = self._entry(charger_id, version, message)
        if entry is not None and _is_stop(message):
            entry.stop_made = True

    def delivered_message(
        self,
        charger_id: str,
        version: str,
        message: Outbound,
        payload: dict[str, Any],
        response: dict[str, Any],
    ) -> None:
        """A CALLRESULT `response` came back for a transactional message sent with `payload`."""
        self.delivered[message.action] += 1
        entry = self._entry(charger_id, version, message)
        if entry is None:
            return
        action = message.action
        if action == _START_16:
            entry.wire_id = str(response["transactionId"])
            entry.start_acked = True
            entry.meter_start_wh = float(payload["meterStart"])
        elif action == _STOP_16:
            entry.stop_acked = True
            entry.meter_stop_wh = float(payload["meterStop"])
        elif action == _EVENT_201:
            entry.wire_id = payload["transactionInfo"]["transactionId"]
            event = payload.get("eventType")
            if event == "Started":
                entry.start_acked = True
                entry.meter_start_wh = _register(payload, "Transaction.Begin")
            elif event == "Ended":
                entry.stop_acked = True
                entry.meter_stop_wh = _register(payload, "Transaction.End")

    def dropped_message(
        self, charger_id: str, version: str, message: Outbound, overflow: bool
    ) -> None:
        (self.dropped_overflow if overflow else self.dropped_attempts)[message.action] += 1
        entry = self._entry(charger_id, version, message)
        if entry is not None:
            entry.dropped += 1

    def count_unsent(self, messages: list[Outbound]) -> None:
        for message in messages:
            if message.transactional:
                self.unsent[message.action] += 1

    # -- reading -------------------------------------------------------------------------------

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped_overflow.values()) + sum(self.dropped_attempts.values())

    def balance(self) -> dict[str, int]:
        """queued == delivered + dropped + unsent, per action; the difference of each action
        that does not balance (empty: the books balance)."""
        out: dict[str, int] = {}
        for action in sorted(self.queued.keys() | self.delivered.keys() | self.unsent.keys()):
            settled = (
                self.delivered[action]
                + self.dropped_overflow[action]
                + self.dropped_attempts[action]
                + self.unsent[action]
            )
            if settled != self.queued[action]:
                out[action] = self.queued[action] - settled
        return out

    def summary(self) -> dict[str, Any]:
        txs = self.transactions.values()
        return {
            "messages_queued": sum(self.queued.values()),
            "messages_queued_offline": sum(self.queued_offline.values()),
            "messages_delivered": sum(self.delivered.values()),
            "messages_dropped": self.dropped_total,
            "messages_dropped_overflow": sum(self.dropped_overflow.values()),
            "messages_dropped_attempts": sum(self.dropped_attempts.values()),
            "messages_unsent": sum(self.unsent.values()),
            "transactions": len(self.transactions),
            "starts_acknowledged": sum(1 for t in txs if t.start_acked),
            "stops_acknowledged": sum(1 for t in txs if t.stop_acked),
            "reported_energy_wh": round(
                sum(e for t in txs if t.stop_acked and (e := t.energy_wh) is not None), 3
            ),
        }


def _is_stop(message: Outbound) -> bool:
    if message.action == _STOP_16:
        return True
    return message.action == _EVENT_201 and message.payload.get("eventType") == "Ended"


def _register(payload: dict[str, Any], context: str) -> float | None:
    """The energy register with `context` in a TransactionEvent's meter values."""
    for meter_value in payload.get("meterValue") or ():
        for sampled in meter_value.get("sampledValue") or ():
            if sampled.get("context") == context and sampled.get("measurand", "").startswith(
                "Energy.Active.Import.Register"
            ):
                return float(sampled["value"])
    return None


@dataclass
class Reconciliation:
    """The verdict of holding the ledger against itself and, when known, the CSMS's records."""

    csms_checked: bool
    mismatches: list[str]
    counts: dict[str, int]

    @property
    def ok(self) -> bool:
        return not self.mismatches and not self.counts.get("mismatches", 0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "csms_checked": self.csms_checked,
            **self.counts,
            "mismatches": self.mismatches[:MAX_LISTED_MISMATCHES],
        }


def reconcile(
    ledger: MessageLedger, csms: CsmsLedger | None, charger_ids: set[str] | None = None
) -> Reconciliation:
    """Check the books balance and, given the CSMS's ledger, that it holds every acknowledged
    transaction with the figures the charger sent, and no transaction the chargers never
    started. `charger_ids` limits the CSMS side to this run's chargers."""
    mismatches: list[str] = []
    for action, missing in ledger.balance().items():
        mismatches.append(
            f"{action}: {missing} messages queued but neither delivered, dropped nor unsent"
        )
    counts = {"matched": 0, "missing_at_csms": 0, "figures_differ": 0, "unknown_to_chargers": 0}
    if csms is None:
        counts["mismatches"] = len(mismatches)
        return Reconciliation(False, mismatches, counts)
    expected: set[tuple[str, str]] = set()
    for entry in ledger.transactions.values():
        if not entry.start_acked and not entry.stop_acked:
            continue
        wire_id = entry.wire_id
        if wire_id is None:
            mismatches.append(f"{entry.charger_id}: an acknowledged transaction without an id")
            continue
        key = (entry.charger_id, wire_id)
        expected.add(key)
        record = csms.transactions.get(key)
        if record is None:
            counts["missing_at_csms"] += 1
            mismatches.append(
                f"{entry.charger_id} transaction {wire_id}: acknowledged, not at the CSMS"
            )
            continue
        problems = []
        if entry.start_acked and not _same(entry.meter_start_wh, record.meter_start_wh):
            problems.append(f"meter start {entry.meter_start_wh} vs {record.meter_start_wh}")
        if entry.stop_acked:
            if record.stopped_at is None:
                problems.append("stop acknowledged but open at the CSMS")
            elif not _same(entry.meter_stop_wh, record.meter_stop_wh):
                problems.append(f"meter stop {entry.meter_stop_wh} vs {record.meter_stop_wh}")
        elif record.stopped_at is not None and not entry.stop_made:
            problems.append("stopped at the CSMS but never stopped by the charger")
        if problems:
            counts["figures_differ"] += 1
            mismatches.append(f"{entry.charger_id} transaction {wire_id}: {'; '.join(problems)}")
        else:
            counts["matched"] += 1
    # 1.6 chargers with a start never acknowledged: the CSMS may have processed it and its
    # answer been lost (timeout, closed connection), so the charger cannot know the id. A CSMS
    # that deduplicates retried starts answers a retry with the same id, so this only covers a
    # start given up on, or one still unsent at the end.
    unanswered = {
        t.charger_id
        for t in ledger.transactions.values()
        if not t.start_acked and t.version == "1.6"
    }
    for key in csms.transactions:
        if key in expected or (charger_ids is not None and key[0] not in charger_ids):
            continue
        if key[0] in unanswered:
            continue
        counts["unknown_to_chargers"] += 1
        mismatches.append(f"{key[0]} transaction {key[1]}: at the CSMS, never started by it")
    order = {k: n for k, n in csms.anomalies.items() if k in ORDER_ANOMALIES and n}
    overflowed = sum(ledger.dropped_overflow.values())
    for kind, n in sorted(order.items()):
        if kind == "transaction_seq_no_gap" and n <= overflowed:
            continue  # the queue overflowed by configuration: gaps are the dropped updates
        mismatches.append(f"CSMS saw messages out of order: {kind} x{n}")
    counts["mismatches"] = len(mismatches)
    return Reconciliation(True, mismatches, counts)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= _REGISTER_TOLERANCE_WH
