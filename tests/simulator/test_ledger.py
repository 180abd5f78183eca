"""The run's ledger: the books balance, and it reconciles with the CSMS's records or says why."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from simulator.csms.ledger import CsmsLedger, CsmsTransaction
from simulator.ledger import MessageLedger, reconcile
from simulator.protocol.base import Outbound


def _message(action: str, payload: dict[str, Any], seq: int = 1) -> Outbound:
    return Outbound(action, payload, 0.0, True, SimpleNamespace(seq=seq))  # type: ignore[arg-type]


def _event(event: str, tx_id: str, register: float, seq_no: int) -> dict[str, Any]:
    context = {"Started": "Transaction.Begin", "Ended": "Transaction.End"}.get(event, "Sample")
    return {
        "eventType": event,
        "seqNo": seq_no,
        "transactionInfo": {"transactionId": tx_id},
        "meterValue": [
            {
                "sampledValue": [
                    {
                        "value": register,
                        "context": context,
                        "measurand": "Energy.Active.Import.Register",
                    }
                ]
            }
        ],
    }


def _ledger_16(start: float = 100.0, stop: float = 5100.0) -> MessageLedger:
    """One 1.6 transaction, started and stopped, both acknowledged (CSMS id 7)."""
    ledger = MessageLedger()
    begin = _message("StartTransaction", {"meterStart": start})
    end = _message("StopTransaction", {"meterStop": stop, "transactionId": 7})
    for message in (begin, end):
        ledger.queued_message("cp1", "1.6", message)
    ledger.delivered_message("cp1", "1.6", begin, begin.payload, {"transactionId": 7})
    ledger.delivered_message("cp1", "1.6", end, end.payload, {})
    return ledger


def _csms(*txs: CsmsTransaction, **anomalies: int) -> CsmsLedger:
    return CsmsLedger({(t.charger_id, t.transaction_id): t for t in txs}, dict(anomalies))


def _row(charger: str = "cp1", tx_id: str = "7", start: float = 100.0, stop: float | None = 5100.0):
    stopped = None if stop is None else "2025-01-07T11:00:00Z"
    energy = None if stop is None else stop - start
    return CsmsTransaction(
        charger, tx_id, start, stop, energy, "2025-01-07T10:00:00Z", stopped, "Local"
    )


def test_the_books_balance_per_action_or_say_what_is_missing() -> None:
    ledger = _ledger_16()
    assert ledger.balance() == {}
    pending = _message("MeterValues", {}, seq=2)
    ledger.queued_message("cp1", "1.6", pending, offline=True)
    assert ledger.balance() == {"MeterValues": 1}
    ledger.count_unsent([pending])
    assert ledger.balance() == {}
    summary = ledger.summary()
    assert summary["messages_queued"] == 3 and summary["messages_queued_offline"] == 1
    assert summary["messages_delivered"] == 2 and summary["messages_unsent"] == 1
    assert summary["reported_energy_wh"] == pytest.approx(5000.0)
    # A message that vanished (neither delivered, dropped nor unsent) fails the reconciliation.
    ledger.queued_message("cp1", "1.6", _message("MeterValues", {}, seq=2))
    verdict = reconcile(ledger, None)
    assert not verdict.ok and verdict.csms_checked is False
    assert "MeterValues: 1 messages queued" in verdict.mismatches[0]


def test_a_ledger_matching_the_csmss_records_reconciles() -> None:
    verdict = reconcile(_ledger_16(), _csms(_row()))
    assert verdict.ok, verdict.mismatches
    assert verdict.counts["matched"] == 1
    assert verdict.as_dict()["ok"] is True


@pytest.mark.parametrize(
    ("csms", "expected"),
    [
        (_csms(), "acknowledged, not at the CSMS"),
        (_csms(_row(start=99.0)), "meter start 100.0 vs 99.0"),
        (_csms(_row(stop=5000.0)), "meter stop 5100.0 vs 5000.0"),
        (_csms(_row(stop=None)), "stop acknowledged but open at the CSMS"),
        (_csms(_row(), _row(tx_id="8")), "cp1 transaction 8: at the CSMS, never started by it"),
        (_csms(_row(), transaction_seq_no_gap=1), "out of order: transaction_seq_no_gap x1"),
        (_csms(_row(), unknown_transaction_stop=2), "out of order: unknown_transaction_stop x2"),
    ],
)
def test_every_kind_of_mismatch_fails_and_is_named(csms: CsmsLedger, expected: str) -> None:
    verdict = reconcile(_ledger_16(), csms)
    assert not verdict.ok
    assert any(expected in line for line in verdict.mismatches), verdict.mismatches


def test_other_chargers_and_duplicates_are_not_mismatches() -> None:
    # A transaction of a charger not in this run (a shared database), and duplicate messages.
    csms = _csms(_row(), _row(charger="other", tx_id="1"), duplicate_start=3)
    assert reconcile(_ledger_16(), csms, charger_ids={"cp1"}).ok


def test_2_0_1_registers_come_from_the_begin_and_end_readings() -> None:
    ledger = MessageLedger()
    started = _message("TransactionEvent", _event("Started", "cp2-1", 10.5, 0))
    updated = _message("TransactionEvent", _event("Updated", "cp2-1", 900.0, 1))
    ended = _message("TransactionEvent", _event("Ended", "cp2-1", 1010.5, 2))
    for message in (started, updated, ended):
        ledger.queued_message("cp2", "2.0.1", message)
        ledger.delivered_message("cp2", "2.0.1", message, message.payload, {})
    [entry] = ledger.transactions.values()
    assert entry.wire_id == "cp2-1"
    assert (entry.meter_start_wh, entry.meter_stop_wh) == (10.5, 1010.5)
    assert entry.energy_wh == pytest.approx(1000.0)
    row = CsmsTransaction(
        "cp2", "cp2-1", 10.5, 1010.5, 1000.0, "2025-01-07T10:00:00Z", "x", "Local"
    )
    assert reconcile(ledger, _csms(row)).ok


def test_dropped_updates_explain_seq_no_gaps_but_nothing_else() -> None:
    ledger = _ledger_16()
    meter = _message("MeterValues", {}, seq=1)
    ledger.queued_message("cp1", "1.6", meter, offline=True)
    ledger.dropped_message("cp1", "1.6", meter, overflow=True)
    assert ledger.balance() == {}
    assert ledger.summary()["messages_dropped_overflow"] == 1
    assert reconcile(ledger, _csms(_row(), transaction_seq_no_gap=1)).ok
    assert not reconcile(ledger, _csms(_row(), transaction_seq_no_gap=2)).ok
    assert not reconcile(ledger, _csms(_row(), transaction_stopped_twice=1)).ok
