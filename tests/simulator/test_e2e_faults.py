"""End to end on loopback: 2,000 chargers in the middle of their transactions lose their CSMS
(killed, then restarted 30 s later) or their network (an injected outage); all reconnect and
boot, their queued messages arrive in order, and the ledger reconciles with the CSMS's database.

Each run is about a minute of wall time: the two biggest tests of the suite, and the ones that
prove the issue's central promise, so they stay in it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from simulator.run import Runner, RunOptions, RunResult
from simulator.scenario import Scenario, parse_scenario

CHARGERS = 2000
RUN_TIMEOUT_S = 240.0
# Fast backoff so that a fleet is back within seconds of the fault ending; jitter spreads it.
RECONNECT = {"wait_minimum_s": 0.5, "random_range_s": 2.0, "repeat_times": 2, "max_s": 4.0}


def _scenario(duration_s: float, faults: dict[str, Any]) -> Scenario:
    """Half 1.6, half 2.0.1 DC chargers, each busy enough to be in a transaction most of the
    time; one simulated minute per wall second keeps the message rate modest."""
    busy = {"sessions_per_charger_day": 40.0, "departure": "when_charged"}
    charger = {"reconnect": RECONNECT, "message_retry_s": 30.0}
    return parse_scenario(
        {
            "name": "e2e-faults",
            "seed": 11,
            "start": "2025-01-07T10:00:00",
            "timezone": "Europe/Amsterdam",
            "sites": [
                {
                    "name": "dc16",
                    "archetype": "dc_fast",
                    "chargers": CHARGERS // 2,
                    "demand": busy,
                    "charger": {"ocpp_version": "1.6", **charger},
                },
                {
                    "name": "dc201",
                    "archetype": "dc_fast",
                    "chargers": CHARGERS // 2,
                    "demand": busy,
                    "charger": {"ocpp_version": "2.0.1", **charger},
                },
            ],
            "online": {
                "speed": 60,
                "duration": f"{duration_s:g}s",
                "meter_interval_s": 600,
                "heartbeat_s": 3600,
                "ramp": 2000,
                "ping_interval_s": None,
                "call_timeout_s": 20,
            },
            "faults": faults,
        },
        "e2e-faults",
    )


async def _run(scenario: Scenario, db: Path) -> RunResult:
    options = RunOptions(metrics_port=None, live=False, csms_db=db)
    async with asyncio.timeout(RUN_TIMEOUT_S):
        return await Runner(scenario, options).run()


def _check_nothing_lost(result: RunResult, db: Path, episode_kind: str) -> dict[str, Any]:
    report = result.report
    ledger = report["ledger"]
    # Mid-transaction when it struck: transactions were open and messages queued offline.
    assert ledger["messages_queued_offline"] > 500, ledger
    assert ledger["transactions_started"] > 1000, ledger
    # Zero lost: every transactional message was delivered; nothing dropped or left over.
    assert ledger["messages_dropped"] == 0, ledger
    assert ledger["messages_unsent"] == 0, ledger
    assert ledger["messages_delivered"] == ledger["messages_queued"], ledger
    assert ledger["transactions_open"] == 0
    # The ledger reconciles with the CSMS's database, transaction by transaction.
    verdict = ledger["reconciliation"]
    assert verdict["csms_checked"] is True
    assert verdict["ok"] is True, verdict
    assert verdict["matched"] >= ledger["transactions_started"], verdict
    assert result.passed
    # Every charger came back and booted.
    assert report["chargers"]["connected_end"] == CHARGERS
    [episode] = [e for e in report["recovery"] if e["kind"] == episode_kind]
    assert episode["chargers"] == CHARGERS
    assert episode["recovered"] is True, episode
    for key in ("time_to_50pct_s", "time_to_99pct_s", "time_to_100pct_s"):
        assert episode[key] is not None and episode[key] < 30.0, episode
    assert episode["time_to_50pct_s"] <= episode["time_to_99pct_s"] <= episode["time_to_100pct_s"]
    assert episode["time_to_queues_drained_s"] is not None, episode
    assert episode["reconnect_attempts"]["mean"] >= 1.0, episode
    # In order: the CSMS saw no stop before its start, no gap in a 2.0.1 seqNo, no twice-ended
    # transaction (duplicates of a message whose answer was lost are not anomalies).
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        anomalies = dict(conn.execute("SELECT kind, count FROM anomalies").fetchall())
        open_rows = conn.execute(
            "SELECT count(*) FROM transactions WHERE stopped_at IS NULL"
        ).fetchone()[0]
    for kind in (
        "unknown_transaction_stop",
        "transaction_event_unknown_transaction",
        "transaction_started_twice",
        "transaction_seq_no_gap",
        "transaction_stopped_twice",
    ):
        assert anomalies.get(kind, 0) == 0, anomalies
    assert open_rows == 0
    return report


async def test_csms_killed_and_restarted_after_30_s_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    scenario = _scenario(70, {"csms_restarts": [{"at": "12s", "down": "30s", "signal": "kill"}]})
    result = await _run(scenario, db)
    report = _check_nothing_lost(result, db, "csms_restart")
    assert report["faults"]["csms_restart"] == 1
    [episode] = [e for e in report["recovery"] if e["kind"] == "csms_restart"]
    assert 29.0 <= episode["disrupted_s"] <= 40.0, episode


async def test_network_outage_of_the_fleet_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    scenario = _scenario(55, {"outages": [{"at": "12s", "duration": "25s"}]})
    result = await _run(scenario, db)
    report = _check_nothing_lost(result, db, "outage")
    assert report["faults"]["outage"] == 1
    assert report["connect_errors"].get("network unreachable (injected outage)", 0) >= CHARGERS
