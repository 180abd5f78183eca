"""The embedded CSMS misbehaving on purpose (simulator.csms.chaos): the `--chaos` value and its
errors, seeded draws in the configured proportions, and over real websockets on 127.0.0.1 a
slow answer, a CALLERROR InternalError and a connection closed with 1011 instead of an answer,
each counted and persisted as an anomaly. Test chargers validate every frame.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from simulator.cli import app
from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.chaos import CsmsChaos, parse_chaos
from simulator.csms.ledger import read_csms_ledger
from simulator.rpc import CallError, CallResult, CallTimeout, ConnectionLost, RpcConnection
from tests.simulator.csms.scripted_charger import ScriptedCharger, scripted

REPO = Path(__file__).resolve().parents[3]
STAMP = "2030-01-01T12:00:00.000Z"
START = {"connectorId": 1, "idTag": "TAG-1", "meterStart": 100, "timestamp": STAMP}


@asynccontextmanager
async def running(db: Path, chaos: CsmsChaos) -> AsyncIterator[CsmsServer]:
    server = CsmsServer(CsmsConfig(port=0, db_path=db, chaos=chaos))
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def rpc(charger: ScriptedCharger) -> RpcConnection:
    assert charger.rpc is not None
    return charger.rpc


# -- the --chaos value -----------------------------------------------------------------------------


def test_a_chaos_value_sets_every_key_and_round_trips() -> None:
    chaos = parse_chaos(
        " slow_p=0.05, slow_s=2.5,error_p=0.01,close_p=0.001,actions=StartTransaction+Heartbeat,"
        "seed=7"
    )
    assert (chaos.slow_p, chaos.slow_s, chaos.error_p, chaos.close_p, chaos.seed) == (
        0.05,
        2.5,
        0.01,
        0.001,
        7,
    )
    assert chaos.actions == {"StartTransaction", "Heartbeat"}
    again = parse_chaos(chaos.option())
    assert again.option() == chaos.option()
    assert (again.slow_p, again.actions, again.seed) == (0.05, chaos.actions, 7)
    # Every key is optional; defaults: no fault, 2 s slow answers, every action, seed 0.
    only = parse_chaos("error_p=0.5")
    assert (only.slow_p, only.slow_s, only.close_p, only.actions, only.seed) == (
        0.0,
        2.0,
        0.0,
        None,
        0,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slow_p=2", "--chaos: slow_p: expected a probability from 0 to 1 (got 2.0)"),
        ("error_p=-0.1", "--chaos: error_p: expected a probability from 0 to 1 (got -0.1)"),
        ("close_p=x", "--chaos: close_p: expected a number (got 'x')"),
        ("slow_p=nan", "--chaos: slow_p: expected a finite number (got 'nan')"),
        ("slow_s=0", "--chaos: slow_s: expected seconds above 0, at most 600 (got 0.0)"),
        ("slow_s=601", "--chaos: slow_s: expected seconds above 0, at most 600 (got 601.0)"),
        ("slow_p=0.6,error_p=0.6", "--chaos: slow_p + error_p + close_p: must not exceed 1"),
        ("bogus=1", "--chaos: bogus: unknown key (expected one of slow_p, slow_s, error_p,"),
        ("actions=Heartbeat+Nope", "--chaos: actions: unknown OCPP action 'Nope'"),
        ("actions=+", "--chaos: actions: expected at least one action name"),
        ("slow_p", "--chaos: 'slow_p': expected key=value"),
        ("seed=1.5", "--chaos: seed: expected an integer (got '1.5')"),
        ("slow_p=0.1,slow_p=0.2", "--chaos: slow_p: given twice"),
        ("", "--chaos: expected key=value pairs"),
    ],
)
def test_a_bad_chaos_value_is_one_line_naming_the_key(text: str, expected: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_chaos(text)
    message = str(caught.value)
    assert message.startswith(expected) and "\n" not in message


def test_both_command_lines_refuse_a_bad_chaos_value_with_exit_2() -> None:
    result = CliRunner().invoke(app, ["csms", "--port", "0", "--chaos", "close_p=1.5"])
    assert result.exit_code == 2
    assert "fleetsim: error: --chaos: close_p: expected a probability" in result.output
    assert "Traceback" not in result.output
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.csms", "--port", "0", "--chaos", "actions=Nope"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        "python -m simulator.csms: error: --chaos: actions: unknown OCPP action 'Nope'"
    ]


# -- draws -----------------------------------------------------------------------------------------


def test_draws_are_seeded_and_in_the_configured_proportions() -> None:
    def draws(seed: int, n: int = 20_000) -> list[str | None]:
        chaos = CsmsChaos(slow_p=0.2, error_p=0.1, close_p=0.05, seed=seed)
        return [chaos.draw("Heartbeat") for _ in range(n)]

    first = draws(1)
    assert draws(1) == first and draws(2) != first
    counts = Counter(first)
    for fault, p in (("slow", 0.2), ("error", 0.1), ("close", 0.05), (None, 0.65)):
        assert abs(counts[fault] / len(first) - p) < 0.015, (fault, counts)


def test_draws_spare_other_actions_and_never_close_on_boot() -> None:
    chaos = CsmsChaos(close_p=1.0, actions=["Heartbeat", "BootNotification"])
    assert chaos.draw("Heartbeat") == "close"
    assert chaos.draw("StatusNotification") is None
    # A charger that cannot boot never gets anywhere: BootNotification is answered.
    assert {chaos.draw("BootNotification") for _ in range(100)} == {None}
    errors = CsmsChaos(error_p=1.0)
    assert errors.draw("BootNotification") == "error"


# -- over real websockets --------------------------------------------------------------------------


async def test_an_injected_error_is_a_callerror_and_nothing_is_recorded(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    chaos = CsmsChaos(error_p=1.0, actions=["StartTransaction"])
    async with asyncio.timeout(10), running(db, chaos) as s, scripted(s, "CP-1", "1.6") as cp:
        outcome = await rpc(cp).call("StartTransaction", START)
        assert isinstance(outcome, CallError) and outcome.code == "InternalError"
        assert isinstance(await rpc(cp).call("Heartbeat", {}), CallResult)
        assert s.store.transactions() == []
        assert chaos.counts == {"error": 1} and cp.invalid == []
    assert read_csms_ledger(db).anomalies == {"chaos_error": 1}


async def test_an_injected_close_is_code_1011_after_processing(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    chaos = CsmsChaos(close_p=1.0, actions=["BootNotification", "StartTransaction"], seed=3)
    async with asyncio.timeout(10), running(db, chaos) as s:
        # Booting (never closed on) works; the StartTransaction is processed, then unanswered.
        async with scripted(s, "CP-1", "1.6") as cp:
            outcome = await rpc(cp).call("StartTransaction", START)
            assert isinstance(outcome, ConnectionLost), outcome
            assert cp.ws is not None and cp.ws.close_code == 1011
            assert cp.invalid == []
        (tx,) = s.store.transactions()
        assert (tx.charger_id, tx.meter_start_wh) == ("CP-1", 100.0)
        # The charger reconnects and sends it again: the same transaction.
        chaos.close_p = 0.0
        async with scripted(s, "CP-1", "1.6") as cp:
            again = await rpc(cp).call("StartTransaction", START)
            assert isinstance(again, CallResult) and again.payload["transactionId"] == tx.id
        assert chaos.counts == {"close": 1}
    assert read_csms_ledger(db).anomalies == {"chaos_close": 1, "duplicate_start": 1}


async def test_a_slow_answer_comes_late_and_the_retry_is_the_same_transaction(
    tmp_path: Path,
) -> None:
    db = tmp_path / "csms.db"
    chaos = CsmsChaos(slow_p=1.0, slow_s=0.4, actions=["Heartbeat", "StartTransaction"])
    async with asyncio.timeout(10), running(db, chaos) as s, scripted(s, "CP-1", "1.6") as cp:
        sent = time.monotonic()
        assert isinstance(await rpc(cp).call("Heartbeat", {}), CallResult)
        assert time.monotonic() - sent >= 0.4
        # A charger that waits less than that times out, and sends the message again.
        rpc(cp).call_timeout_s = 0.15
        first = await rpc(cp).call("StartTransaction", START)
        assert isinstance(first, CallTimeout)
        chaos.slow_p = 0.0
        retry = await rpc(cp).call("StartTransaction", START)
        assert isinstance(retry, CallResult)
        (tx,) = s.store.transactions()
        assert retry.payload["transactionId"] == tx.id
        # The late answer to the first arrives for a message id the charger gave up on.
        await asyncio.sleep(0.4)
        assert cp.invalid == ["in None: CALLRESULT for an unknown or expired message id"]
        assert chaos.counts == {"slow": 2}
    anomalies: dict[str, Any] = read_csms_ledger(db).anomalies
    assert anomalies == {"chaos_slow": 2, "duplicate_start": 1}
