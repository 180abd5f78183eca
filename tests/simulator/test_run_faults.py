"""A misbehaving CSMS: the chargers carry on, and the report counts what went wrong.

The fake CSMS below is a websockets server on 127.0.0.1 that answers with canned, valid
payloads through RpcConnection handlers, records what it hears, and misbehaves on request:
CALLERRORs for some actions, silence for others, or one dropped connection per charger.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter, defaultdict
from collections.abc import Awaitable
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.typing import Subprotocol

from simulator.rpc import CallResult, Handler, OcppError, RpcConnection
from simulator.run import Runner, RunOptions, RunResult
from simulator.schemas import FrameValidator
from tests.conftest import busy_scenario

NOW = "2025-01-07T10:00:00.000Z"
VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
TRANSACTIONAL = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}
RUN_TIMEOUT_S = 40.0


class FakeCsms:
    """A small CSMS that answers every charger-initiated action with a canned payload.

    error_actions: answered with CALLERROR InternalError. silent_actions: never answered.
    close_after: close each charger's connection (once per charger, without answering) on
    its first transactional message at or after its close_after-th message.
    """

    def __init__(
        self,
        *,
        heartbeat_s: int = 600,
        error_actions: frozenset[str] = frozenset(),
        silent_actions: frozenset[str] = frozenset(),
        close_after: int | None = None,
        pending_boots: int = 0,
        trigger_pending_boots: bool = False,
    ) -> None:
        self.heartbeat_s = heartbeat_s
        self.pending_boots = pending_boots
        # 2.0.1 only: after a Pending answer, TriggerMessage BootNotification at once.
        self.trigger_pending_boots = trigger_pending_boots
        self.rpcs: dict[str, RpcConnection] = {}
        self.trigger_answers: list[Any] = []
        self.boots: Counter[str] = Counter()
        self.boot_times: dict[str, list[float]] = defaultdict(list)
        self.error_actions = error_actions
        self.silent_actions = silent_actions
        self.close_after = close_after
        self.validators = {v: FrameValidator(v) for v in VERSIONS.values()}
        self.messages: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        self.counts: Counter[str] = Counter()  # action -> CALLs received
        self.connects: Counter[str] = Counter()
        self.closed: set[str] = set()
        self.invalid: list[str] = []
        self.never_answered: list[asyncio.Future[dict[str, Any]]] = []
        self._tx_ids = itertools.count(1)
        self.tx_keys: dict[int, tuple[str, int, str]] = {}  # 1.6 transactionId -> start key
        # 1.6, per charger in arrival order: (action, transactionId) of every transaction CALL.
        self.tx_log: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        self.cut: dict[str, tuple[str, dict[str, Any]]] = {}  # the CALL each close dropped
        self._server: Server | None = None

    async def __aenter__(self) -> FakeCsms:
        self._server = await serve(
            self._accept,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(s) for s in VERSIONS],
            compression=None,
            ping_interval=None,
        )
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        for future in self.never_answered:
            future.cancel()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"ws://127.0.0.1:{next(iter(self._server.sockets)).getsockname()[1]}"

    # -- observer: the fake CSMS validates what it receives (and what it answers) --------------

    def call_done(self, *args: Any) -> None:
        pass

    def call_handled(self, *args: Any) -> None:
        pass

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.invalid.append(f"{version} {direction} {action}: {reason}")

    # -- one charger ---------------------------------------------------------------------------

    async def _accept(self, ws: ServerConnection) -> None:
        assert ws.request is not None and ws.subprotocol is not None
        charger = ws.request.path.rsplit("/", 1)[-1]
        version = VERSIONS[ws.subprotocol]
        self.connects[charger] += 1
        answers = ANSWERS[version]
        handlers: dict[str, Handler] = {
            action: self._handler(ws, charger, version, action, answer)
            for action, answer in answers.items()
        }
        rpc = RpcConnection(
            ws, version, handlers=handlers, validator=self.validators[version], observer=self
        )
        self.rpcs[charger] = rpc
        await rpc.serve()

    async def _trigger_boot(self, charger: str) -> None:
        await asyncio.sleep(0.05)  # after the Pending answer has gone out
        outcome = await self.rpcs[charger].call(
            "TriggerMessage", {"requestedMessage": "BootNotification"}
        )
        self.trigger_answers.append(outcome)

    def _handler(
        self, ws: ServerConnection, charger: str, version: str, action: str, answer: Any
    ) -> Handler:
        def handle(payload: dict[str, Any]) -> dict[str, Any] | Awaitable[dict[str, Any]]:
            self.messages[charger].append((action, payload))
            self.counts[action] += 1
            if action == "BootNotification":
                self.boots[charger] += 1
                self.boot_times[charger].append(asyncio.get_running_loop().time())
                if self.boots[charger] <= self.pending_boots:
                    if self.trigger_pending_boots and version == "2.0.1":
                        task = asyncio.get_running_loop().create_task(self._trigger_boot(charger))
                        self.never_answered.append(task)  # type: ignore[arg-type]
                    # Pending, come back in an hour (one wall second at 3600x).
                    return {"status": "Pending", "currentTime": NOW, "interval": 3600}
            if (
                self.close_after is not None
                and charger not in self.closed
                and len(self.messages[charger]) >= self.close_after
                and action in TRANSACTIONAL
            ):
                self.closed.add(charger)
                self.cut[charger] = (action, payload)
                return self._close(ws)
            if action in ("MeterValues", "StopTransaction"):
                self.tx_log[charger].append((action, payload.get("transactionId")))
            if action in self.error_actions:
                raise OcppError("InternalError", f"{action} is broken today")
            if action in self.silent_actions:
                future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
                self.never_answered.append(future)
                return future
            if action == "StartTransaction":
                tx_id = next(self._tx_ids)
                start = (charger, payload["connectorId"], payload["timestamp"])
                self.tx_keys[tx_id] = start
                self.tx_log[charger].append((action, tx_id))
                return {"transactionId": tx_id, "idTagInfo": {"status": "Accepted"}}
            return dict(answer(self) if callable(answer) else answer)

        return handle

    @staticmethod
    async def _close(ws: ServerConnection) -> dict[str, Any]:
        # Drop the connection with this CALL unanswered: the charger must send it again.
        await ws.close(1011, "CSMS restarting")
        raise OcppError("InternalError", "closed")

    # -- what was heard ------------------------------------------------------------------------

    def received(self, action: str) -> list[tuple[str, dict[str, Any]]]:
        return [(c, p) for c, msgs in self.messages.items() for a, p in msgs if a == action]

    def transactions_16(self) -> tuple[set[tuple[str, int, str]], set[tuple[str, int, str]]]:
        """1.6 transactions (charger, connector, start timestamp) started and stopped."""
        started = {
            (c, p["connectorId"], p["timestamp"]) for c, p in self.received("StartTransaction")
        }
        stopped = set()
        for charger, payload in self.received("StopTransaction"):
            key = self.tx_keys.get(payload["transactionId"])
            assert key is not None and key[0] == charger, payload  # an id this CSMS assigned
            stopped.add(key)
        return started, stopped

    def transactions_201(self) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        """2.0.1 transactions (charger, transactionId) started and ended."""
        started, ended = set(), set()
        for charger, payload in self.received("TransactionEvent"):
            key = (charger, payload["transactionInfo"]["transactionId"])
            if payload["eventType"] == "Started":
                started.add(key)
            elif payload["eventType"] == "Ended":
                ended.add(key)
        return started, ended


def _boot(csms: FakeCsms) -> dict[str, Any]:
    return {"status": "Accepted", "currentTime": NOW, "interval": csms.heartbeat_s}


ANSWERS: dict[str, dict[str, Any]] = {
    "1.6": {
        "BootNotification": _boot,
        "Heartbeat": {"currentTime": NOW},
        "StatusNotification": {},
        "Authorize": {"idTagInfo": {"status": "Accepted"}},
        "StartTransaction": {},  # made by the handler: it assigns the transactionId
        "StopTransaction": {},
        "MeterValues": {},
    },
    "2.0.1": {
        "BootNotification": _boot,
        "Heartbeat": {"currentTime": NOW},
        "StatusNotification": {},
        "Authorize": {"idTokenInfo": {"status": "Accepted"}},
        "TransactionEvent": {},
    },
}


async def _run(csms: FakeCsms, **online: Any) -> RunResult:
    """A 3-second busy run against `csms`, bounded together with the fake CSMS's shutdown."""
    scenario = busy_scenario(duration="3s", **online)
    async with asyncio.timeout(RUN_TIMEOUT_S), csms:
        options = RunOptions(target=csms.url, metrics_port=None, live=False)
        return await Runner(scenario, options).run()


def _check_common(csms: FakeCsms, result: RunResult) -> None:
    report = result.report
    assert csms.invalid == []
    assert report["invalid_frames"]["in"] == 0 and report["invalid_frames"]["out"] == 0
    assert report["chargers"]["connected_end"] == 6
    ledger = report["ledger"]
    assert ledger["transactions_started"] > 0
    assert ledger["transactions_open"] == 0
    assert ledger["messages_unsent"] == 0
    # Every transaction the simulator ended reached the CSMS, and nothing else did.
    started16, stopped16 = csms.transactions_16()
    started201, ended201 = csms.transactions_201()
    assert stopped16 == started16
    assert ended201 == started201
    assert len(started16) + len(started201) == ledger["transactions_started"]
    assert len(stopped16) + len(ended201) == ledger["transactions_ended"]
    assert started16 and started201


async def test_callerrors_are_counted_and_the_chargers_carry_on() -> None:
    csms = FakeCsms(error_actions=frozenset({"MeterValues", "Heartbeat"}))
    result = await _run(csms)
    report = result.report
    actions = report["actions"]
    for action in ("MeterValues", "Heartbeat"):
        row = actions[action]
        assert row["count"] > 0 and row["errors"] == row["count"] - row["closed"], (action, row)
        assert row["errors"] > 0 and row["timeouts"] == 0
        # The CSMS answered, so there is a round trip to measure.
        assert row["rtt"]["p50_ms"] is not None
    for action, row in actions.items():
        if action not in ("MeterValues", "Heartbeat"):
            assert row["errors"] == 0 and row["timeouts"] == 0, (action, row)
            assert row["count"] > 0, action
    totals = report["totals"]
    errors = actions["MeterValues"]["errors"] + actions["Heartbeat"]["errors"]
    assert totals["errors"] == errors
    assert totals["error_rate"] == round(errors / totals["calls"], 6) > 0
    assert actions["StopTransaction"]["count"] > 0
    assert report["chargers"]["reconnects"] == 0
    # Refused 1.6 MeterValues are transactional: tried message_attempts (3) times, then given
    # up on and counted; every attempt reached the CSMS.
    dropped = report["ledger"]["messages_dropped"]
    assert dropped > 0
    assert actions["MeterValues"]["errors"] == 3 * dropped
    assert csms.counts["MeterValues"] == actions["MeterValues"]["count"]
    _check_common(csms, result)


async def test_an_unanswered_heartbeat_times_out_and_the_queue_moves_on() -> None:
    # Heartbeats every simulated hour (one wall second); each one blocks its charger's queue
    # for one call timeout, half a second.
    csms = FakeCsms(heartbeat_s=3600, silent_actions=frozenset({"Heartbeat"}))
    result = await _run(csms, call_timeout_s=0.5)
    report = result.report
    actions = report["actions"]
    heartbeat = actions["Heartbeat"]
    assert heartbeat["timeouts"] > 0
    assert heartbeat["timeouts"] == heartbeat["count"] - heartbeat["closed"]
    assert heartbeat["errors"] == 0
    # A timeout's latency is what the charger waited: the call timeout.
    assert heartbeat["p50_ms"] is not None and heartbeat["p50_ms"] >= 500.0
    assert csms.counts["Heartbeat"] == heartbeat["count"]
    for action, row in actions.items():
        if action != "Heartbeat":
            assert row["errors"] == 0 and row["timeouts"] == 0, (action, row)
            # Behind a silent heartbeat a message waits one call timeout, not several.
            assert row["p99_ms"] is not None and row["p99_ms"] < 2000.0, (action, row)
    assert report["totals"]["timeouts"] == heartbeat["timeouts"]
    assert report["totals"]["error_rate"] > 0
    assert actions["StopTransaction"]["count"] > 0
    assert actions["TransactionEvent"]["count"] > 0
    assert report["sessions"] > 0
    assert report["ledger"]["messages_dropped"] == 0
    _check_common(csms, result)


async def test_dropped_connections_reconnect_and_replay_transactions_in_order() -> None:
    csms = FakeCsms(close_after=5)
    result = await _run(csms)
    report = result.report
    chargers = sorted(csms.connects)
    assert len(chargers) == 6
    # Every charger lost its connection once, came back and booted again.
    assert csms.closed == set(chargers)
    assert report["chargers"]["reconnects"] >= 6
    for charger in chargers:
        assert csms.connects[charger] >= 2, charger
        boots = [a for a, _ in csms.messages[charger] if a == "BootNotification"]
        assert len(boots) == csms.connects[charger], charger
        assert csms.messages[charger][0][0] == "BootNotification"
    assert report["ledger"]["messages_dropped"] == 0
    # The CALL the CSMS dropped with the connection shows as "closed", not as an error.
    closed = sum(row["closed"] for row in report["actions"].values())
    assert closed >= 6
    for action, row in report["actions"].items():
        assert row["errors"] == 0 and row["timeouts"] == 0, (action, row)
    _check_common(csms, result)

    # 2.0.1: each transaction's events arrived in seqNo order, none missing; a replay may
    # repeat the event that was in flight when the connection dropped, nothing else.
    events: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for charger, payload in csms.received("TransactionEvent"):
        events[(charger, payload["transactionInfo"]["transactionId"])].append(payload)
    assert events
    replayed = 0
    for key, payloads in events.items():
        unique: list[dict[str, Any]] = []
        for payload in payloads:
            if payload in unique:
                assert payload == unique[-1], key  # a duplicate is the one just before
                replayed += 1
                continue
            unique.append(payload)
        seq = [p["seqNo"] for p in unique]
        assert seq == list(range(len(seq))), (key, seq)
        assert unique[0]["eventType"] == "Started" and unique[-1]["eventType"] == "Ended", key
    # 1.6: per transaction, StartTransaction, then its MeterValues, then StopTransaction.
    for charger in chargers:
        phase: dict[int | None, str] = {}
        for action, tx_id in csms.tx_log[charger]:
            if action == "StartTransaction":
                assert tx_id not in phase
                phase[tx_id] = "started"
            elif action == "MeterValues" and tx_id is not None:
                assert phase.get(tx_id) == "started", (charger, action, tx_id)
            elif action == "StopTransaction":
                assert phase.get(tx_id) == "started", (charger, action, tx_id)
                phase[tx_id] = "stopped"
        assert all(state == "stopped" for state in phase.values()), (charger, phase)
    # The CALL each close dropped was sent again after the reconnect (and counted once more).
    assert replayed >= sum(1 for a, _ in csms.cut.values() if a == "TransactionEvent")
    for charger, (action, payload) in csms.cut.items():
        again = [p for a, p in csms.messages[charger] if a == action and p == payload]
        assert len(again) == 2, (charger, action, payload)


async def test_a_pending_boot_is_retried_after_its_interval_and_nothing_else_is_sent() -> None:
    csms = FakeCsms(pending_boots=1)
    result = await _run(csms)
    _check_common(csms, result)
    assert result.report["actions"]["BootNotification"]["count"] == 12
    for charger, messages in csms.messages.items():
        actions = [action for action, _ in messages]
        # While Pending a charger sends nothing but its next BootNotification.
        assert actions[:2] == ["BootNotification", "BootNotification"], (charger, actions[:3])
        assert "BootNotification" not in actions[2:]
    # The retry waited for the interval: one simulated hour, one wall second at this speed.
    for charger, (first, second) in csms.boot_times.items():
        assert 0.95 <= second - first <= 1.5, charger
    assert result.report["actions"]["StatusNotification"]["count"] > 0


async def test_a_triggered_boot_while_pending_is_sent_at_once_and_says_so() -> None:
    csms = FakeCsms(pending_boots=1, trigger_pending_boots=True)
    result = await _run(csms)
    _check_common(csms, result)
    assert len(csms.trigger_answers) == 3  # the three 2.0.1 chargers
    assert all(
        isinstance(a, CallResult) and a.payload == {"status": "Accepted"}
        for a in csms.trigger_answers
    )
    for charger, times in csms.boot_times.items():
        boots = [p for a, p in csms.messages[charger] if a == "BootNotification"]
        if "reason" in boots[0]:  # 2.0.1: booted again on the trigger, well before the hour
            assert times[1] - times[0] < 0.5, charger
            assert boots[1]["reason"] == "Triggered"
        else:  # 1.6 waited for the interval (one wall second)
            assert times[1] - times[0] >= 0.95, charger
