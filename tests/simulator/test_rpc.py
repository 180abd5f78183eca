"""The OCPP-J layer between two real websocket ends on 127.0.0.1.

The RpcConnection under test is the client end; the server end is a scripted peer that speaks
raw frames, so it can misbehave, and checks every frame it receives against the OCPP schemas.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

import simulator.schemas as schemas
from simulator.rpc import (
    CallError,
    CallResult,
    CallTimeout,
    ConnectionLost,
    Handler,
    OcppError,
    RpcConnection,
)
from simulator.schemas import FrameValidator

VERSIONS = ("1.6", "2.0.1")
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
FORMAT_VIOLATION = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}
# The CALLERROR codes each version defines (OCPP-J 1.6 section 4.2.3, 2.0.1 part 4 4.3).
ERROR_CODES = {
    "1.6": {
        "NotImplemented",
        "NotSupported",
        "InternalError",
        "ProtocolError",
        "SecurityError",
        "FormationViolation",
        "PropertyConstraintViolation",
        "OccurenceConstraintViolation",
        "TypeConstraintViolation",
        "GenericError",
    },
    "2.0.1": {
        "FormatViolation",
        "GenericError",
        "InternalError",
        "MessageTypeNotSupported",
        "NotImplemented",
        "NotSupported",
        "OccurrenceConstraintViolation",
        "PropertyConstraintViolation",
        "ProtocolError",
        "RpcFrameworkError",
        "SecurityError",
        "TypeConstraintViolation",
    },
}
NOW = "2025-01-07T10:00:00.000Z"
HEARTBEAT_ANSWER = {"currentTime": NOW}
# A CSMS-initiated CALL of each version, and a valid answer to it.
RESET: dict[str, dict[str, Any]] = {"1.6": {"type": "Soft"}, "2.0.1": {"type": "Immediate"}}
RESET_ANSWER = {"status": "Accepted"}
BOOT: dict[str, dict[str, Any]] = {
    "1.6": {"chargePointVendor": "Acme", "chargePointModel": "DC50"},
    "2.0.1": {
        "reason": "PowerUp",
        "chargingStation": {"vendorName": "Acme", "model": "DC50"},
    },
}
BOOT_ANSWER = {"status": "Accepted", "currentTime": NOW, "interval": 300}
TIMEOUT_S = 10.0


@dataclass
class Recorder:
    """An RpcObserver that keeps every measurement."""

    done: list[tuple[str, str, str, float, float]] = field(default_factory=list)
    handled: list[tuple[str, str, str]] = field(default_factory=list)
    invalid: list[tuple[str, str, str | None, str]] = field(default_factory=list)

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None:
        self.done.append((version, action, outcome, latency_s, rtt_s))

    def call_handled(self, version: str, action: str, outcome: str) -> None:
        self.handled.append((version, action, outcome))

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.invalid.append((version, direction, action, reason))

    def invalid_in(self) -> list[tuple[str, str, str | None, str]]:
        return [entry for entry in self.invalid if entry[1] == "in"]


class Peer:
    """The server end: reads raw frames, checks each against the schemas, answers the CALLs
    named in `auto` by itself and queues every other frame for the test."""

    def __init__(self, ws: ServerConnection, version: str) -> None:
        self.ws = ws
        self.version = version
        self.validator = FrameValidator(version)
        self.auto: dict[str, dict[str, Any]] = {}
        self.inbox: asyncio.Queue[Any] = asyncio.Queue()
        self.received: list[Any] = []
        self.problems: list[str] = []
        self._sent_calls: dict[str, str] = {}  # message id -> action of the peer's own CALLs
        self._next_id = 0

    async def run(self) -> None:
        try:
            async for data in self.ws:
                self._receive(data)
        except ConnectionClosed:
            pass

    def _receive(self, data: str | bytes) -> None:
        if not isinstance(data, str):
            self.problems.append(f"binary frame {data!r}")
            data = data.decode()
        frame = json.loads(data)
        self.received.append(frame)
        self._check(frame)
        if frame[0] == 2 and frame[2] in self.auto:
            answer = [3, frame[1], self.auto[frame[2]]]
            task = asyncio.ensure_future(self.ws.send(json.dumps(answer)))
            task.add_done_callback(lambda t: t.exception())
            return
        self.inbox.put_nowait(frame)

    def _check(self, frame: Any) -> None:
        """Every CALL, CALLRESULT and CALLERROR the connection under test sends is valid."""
        kind = frame[0]
        if kind == 2:
            _, _, action, payload = frame
            if self.validator.knows(action):
                problem = self.validator.request_problem(action, payload)
                if problem is not None:
                    self.problems.append(f"CALL {action}: {problem}")
        elif kind == 3:
            action = self._sent_calls.get(frame[1])
            if action is not None and self.validator.knows(action):
                problem = self.validator.response_problem(action, frame[2])
                if problem is not None:
                    self.problems.append(f"CALLRESULT {action}: {problem}")
        elif kind == 4:
            well_formed = (
                len(frame) == 5
                and frame[2] in ERROR_CODES[self.version]
                and isinstance(frame[3], str)
                and isinstance(frame[4], dict)
            )
            if not well_formed:
                self.problems.append(f"CALLERROR {frame!r}")
        else:
            self.problems.append(f"unknown frame {frame!r}")

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def send(self, frame: list[Any]) -> None:
        if frame[0] == 2:
            self._sent_calls[frame[1]] = frame[2]
        await self.ws.send(json.dumps(frame))

    async def call(self, action: str, payload: Any) -> list[Any]:
        """Send a CALL and return the next frame (which must answer it)."""
        self._next_id += 1
        message_id = f"peer-{self._next_id}"
        await self.send([2, message_id, action, payload])
        answer = await self.next()
        assert answer[1] == message_id, answer
        return answer

    async def next(self, within_s: float = 2.0) -> Any:
        async with asyncio.timeout(within_s):
            return await self.inbox.get()

    async def quiet(self, for_s: float = 0.2) -> None:
        """Assert that nothing arrives for a while."""
        await asyncio.sleep(for_s)
        assert self.inbox.empty(), self.inbox.get_nowait()


@dataclass
class Link:
    rpc: RpcConnection
    peer: Peer
    observer: Recorder


@asynccontextmanager
async def linked(
    version: str,
    handlers: Mapping[str, Handler] | None = None,
    call_timeout_s: float = 5.0,
    max_message_bytes: int | None = None,
    ws_max_size: int | None = 2**20,
) -> AsyncIterator[Link]:
    """A validating RpcConnection (client) over a real loopback websocket to a Peer (server).

    On exit, every frame the connection sent must have passed the peer's schema checks."""
    peers: asyncio.Queue[Peer] = asyncio.Queue()

    async def accept(ws: ServerConnection) -> None:
        assert ws.subprotocol == SUBPROTOCOL[version]
        peer = Peer(ws, version)
        peers.put_nowait(peer)
        await peer.run()

    async with (
        asyncio.timeout(TIMEOUT_S),
        serve(
            accept,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(s) for s in SUBPROTOCOL.values()],
            compression=None,
            ping_interval=None,
        ) as server,
    ):
        port = next(iter(server.sockets)).getsockname()[1]
        async with connect(
            f"ws://127.0.0.1:{port}/CP-1",
            proxy=None,
            compression=None,
            subprotocols=[Subprotocol(SUBPROTOCOL[version])],
            ping_interval=None,
            max_size=ws_max_size,
        ) as ws:
            observer = Recorder()
            rpc = RpcConnection(
                ws,
                version,
                handlers=handlers,
                validator=FrameValidator(version),
                observer=observer,
                call_timeout_s=call_timeout_s,
                max_message_bytes=max_message_bytes,
            )
            reader = asyncio.create_task(rpc.serve())
            peer = await peers.get()
            try:
                yield Link(rpc, peer, observer)
            finally:
                await ws.close()
                await asyncio.wait([reader], timeout=2.0)
                reader.cancel()
        # Anything a test did not expect on purpose (it clears what it provoked).
        assert peer.problems == []


async def still_works(link: Link) -> None:
    """Both directions still carry real CALLs."""
    link.peer.auto["Heartbeat"] = HEARTBEAT_ANSWER
    outcome = await link.rpc.call("Heartbeat", {})
    assert outcome == CallResult(HEARTBEAT_ANSWER)
    if "Reset" in link.rpc.handlers:
        answer = await link.peer.call("Reset", RESET[link.rpc.version])
        assert answer[0] == 3 and answer[2] == RESET_ANSWER, answer


# -- outgoing CALLs ----------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_call_gets_its_result_and_is_measured(version: str) -> None:
    async with linked(version) as link:
        link.peer.auto["BootNotification"] = BOOT_ANSWER
        outcome = await link.rpc.call("BootNotification", BOOT[version])
        assert outcome == CallResult(BOOT_ANSWER)
        assert link.peer.received == [[2, "1", "BootNotification", BOOT[version]]]
        [(v, action, label, latency, rtt)] = link.observer.done
        assert (v, action, label) == (version, "BootNotification", "result")
        assert latency >= rtt >= 0.0
        assert rtt < 1.0

        # A message that was due half a second ago: the wait counts in the latency only.
        link.peer.auto["Heartbeat"] = HEARTBEAT_ANSWER
        outcome = await link.rpc.call("Heartbeat", {}, due=time.monotonic() - 0.5)
        assert outcome == CallResult(HEARTBEAT_ANSWER)
        _, action, label, latency, rtt = link.observer.done[-1]
        assert (action, label) == ("Heartbeat", "result")
        assert latency >= 0.5
        assert 0.0 <= rtt < 0.25
        assert latency - rtt >= 0.5 - 1e-6
        # Message ids are unique per connection.
        assert [frame[1] for frame in link.peer.received] == ["1", "2"]
        assert link.observer.invalid == []


async def test_only_one_call_is_outstanding_at_a_time() -> None:
    async with linked("1.6") as link:
        rpc, peer = link.rpc, link.peer
        first = asyncio.create_task(rpc.call("Heartbeat", {}))
        second = asyncio.create_task(rpc.call("BootNotification", BOOT["1.6"]))
        call = await peer.next()
        assert call[0] == 2 and call[2] == "Heartbeat"
        # The second CALL waits for the first one's answer, however long it takes.
        await peer.quiet(0.3)
        assert not first.done() and not second.done()
        await peer.send([3, call[1], HEARTBEAT_ANSWER])
        call2 = await peer.next()
        assert call2[0] == 2 and call2[2] == "BootNotification" and call2[1] != call[1]
        assert await first == CallResult(HEARTBEAT_ANSWER)
        assert not second.done()
        await peer.send([3, call2[1], BOOT_ANSWER])
        assert await second == CallResult(BOOT_ANSWER)
        # The second CALL's latency includes its wait behind the first.
        latencies = {action: (lat, rtt) for _, action, _, lat, rtt in link.observer.done}
        latency, rtt = latencies["BootNotification"]
        assert latency >= 0.3 > rtt


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_callerror_comes_back_as_call_error(version: str) -> None:
    async with linked(version) as link:
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        call = await link.peer.next()
        await link.peer.send([4, call[1], "InternalError", "database on fire", {"retry": False}])
        outcome = await task
        assert outcome == CallError("InternalError", "database on fire", {"retry": False})
        assert isinstance(outcome, CallError) and not outcome.invalid
        assert [d[2] for d in link.observer.done] == ["error"]
        await still_works(link)


async def test_an_unanswered_call_times_out_and_a_late_answer_is_ignored() -> None:
    async with linked("2.0.1", call_timeout_s=0.3) as link:
        began = time.monotonic()
        outcome = await link.rpc.call("Heartbeat", {})
        waited = time.monotonic() - began
        assert outcome == CallTimeout(0.3)
        assert 0.3 <= waited < 1.5
        [(_, action, label, latency, _)] = link.observer.done
        assert (action, label) == ("Heartbeat", "timeout")
        assert latency >= 0.3
        # The answer arrives after all: counted as invalid, never mistaken for the next one.
        [call] = link.peer.received
        await link.peer.send([3, call[1], {"currentTime": "2025-01-07T09:00:00.000Z"}])
        link.peer.auto["Heartbeat"] = HEARTBEAT_ANSWER
        assert await link.rpc.call("Heartbeat", {}) == CallResult(HEARTBEAT_ANSWER)
        [(_, direction, _, reason)] = link.observer.invalid
        assert direction == "in" and "unknown or expired" in reason


@pytest.mark.parametrize("version", VERSIONS)
async def test_the_peer_closing_loses_the_call_and_every_later_one(version: str) -> None:
    async with linked(version) as link:
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        await link.peer.next()
        await link.peer.ws.close(1001, "going away")
        outcome = await task
        assert isinstance(outcome, ConnectionLost)
        assert "1001" in outcome.reason
        assert link.rpc.closed
        began = time.monotonic()
        later = await link.rpc.call("Heartbeat", {})
        assert isinstance(later, ConnectionLost)
        assert time.monotonic() - began < 0.1
        assert [d[2] for d in link.observer.done] == ["closed", "closed"]


# -- validation --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_invalid_outgoing_payload_is_counted_but_sent(version: str) -> None:
    async with linked(version) as link:
        link.peer.auto["BootNotification"] = BOOT_ANSWER
        outcome = await link.rpc.call("BootNotification", {"chargePointVendor": 7})
        assert outcome == CallResult(BOOT_ANSWER)
        [(v, direction, action, _)] = link.observer.invalid
        assert (v, direction, action) == (version, "out", "BootNotification")
        assert link.peer.received == [[2, "1", "BootNotification", {"chargePointVendor": 7}]]
        # The peer saw the bad frame too: that one was provoked on purpose.
        assert len(link.peer.problems) == 1 and "BootNotification" in link.peer.problems[0]
        link.peer.problems.clear()


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_invalid_callresult_becomes_an_invalid_call_error(version: str) -> None:
    async with linked(version) as link:
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        call = await link.peer.next()
        await link.peer.send([3, call[1], {"currentTime": 5}])
        outcome = await task
        assert isinstance(outcome, CallError)
        assert outcome.invalid and outcome.code == FORMAT_VIOLATION[version]
        [(v, direction, action, _)] = link.observer.invalid
        assert (v, direction, action) == (version, "in", "Heartbeat")
        assert [d[2] for d in link.observer.done] == ["error"]
        # A CALLRESULT that is not even an object.
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        call = await link.peer.next()
        await link.peer.send([3, call[1], "Accepted"])
        outcome = await task
        assert isinstance(outcome, CallError) and outcome.invalid
        assert len(link.observer.invalid_in()) == 2
        await still_works(link)


# -- incoming CALLs ----------------------------------------------------------------------------


def _reset_handler(seen: list[dict[str, Any]]) -> Handler:
    def reset(payload: dict[str, Any]) -> dict[str, Any]:
        seen.append(payload)
        return dict(RESET_ANSWER)

    return reset


@pytest.mark.parametrize("version", VERSIONS)
async def test_incoming_calls_are_validated_and_dispatched(version: str) -> None:
    seen: list[dict[str, Any]] = []
    handlers: dict[str, Handler] = {"Reset": _reset_handler(seen)}
    async with linked(version, handlers=handlers) as link:
        peer = link.peer
        answer = await peer.call("Reset", RESET[version])
        assert answer == [3, answer[1], RESET_ANSWER]
        assert seen == [RESET[version]]

        # Schema-invalid payload: refused before the handler runs.
        answer = await peer.call("Reset", {"type": "Sideways"})
        assert answer[0] == 4 and answer[2] == "PropertyConstraintViolation", answer
        answer = await peer.call("Reset", ["Soft"])
        assert answer[0] == 4 and answer[2] == FORMAT_VIOLATION[version], answer
        assert len(seen) == 1
        # An action the version does not define.
        answer = await peer.call("Frobnicate", {})
        assert answer[0] == 4 and answer[2] == "NotImplemented", answer
        # A real action nobody handles here.
        answer = await peer.call("ClearCache", {})
        assert answer[0] == 4 and answer[2] == "NotSupported", answer

        assert link.observer.handled == [
            (version, "Reset", "handled"),
            (version, "Reset", "error"),
            (version, "Reset", "error"),
            (version, "Frobnicate", "error"),
            (version, "ClearCache", "error"),
        ]
        assert [(e[1], e[2]) for e in link.observer.invalid] == [
            ("in", "Reset"),
            ("in", "Reset"),
            ("in", "Frobnicate"),
        ]
        await still_works(link)
        assert len(seen) == 2


@pytest.mark.parametrize("version", VERSIONS)
async def test_handler_failures_become_callerrors_and_the_connection_carries_on(
    version: str,
) -> None:
    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise OcppError("SecurityError", "not from you", {"who": "csms"})

    def crash(payload: dict[str, Any]) -> dict[str, Any]:
        raise RuntimeError("bug")

    handlers: dict[str, Handler] = {
        "Reset": _reset_handler([]),
        "ClearCache": refuse,
        "TriggerMessage": crash,
    }
    trigger = {"1.6": {"requestedMessage": "Heartbeat"}, "2.0.1": {"requestedMessage": "Heartbeat"}}
    async with linked(version, handlers=handlers) as link:
        answer = await link.peer.call("ClearCache", {})
        assert answer[2:] == ["SecurityError", "not from you", {"who": "csms"}]
        answer = await link.peer.call("TriggerMessage", trigger[version])
        assert answer[0] == 4 and answer[2] == "InternalError", answer
        assert "bug" not in answer[3]  # no internals leak to the peer
        await still_works(link)
        assert [h[2] for h in link.observer.handled] == ["error", "error", "handled"]
        assert link.observer.invalid == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_an_async_handler_answers_without_stalling_reads(version: str) -> None:
    release = asyncio.Event()

    async def slow(payload: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"status": "Accepted"}

    async def slow_failure(payload: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        raise OcppError("GenericError", "changed my mind")

    handlers: dict[str, Handler] = {
        "Reset": _reset_handler([]),
        "ClearCache": slow,
        "ChangeAvailability": slow_failure,
    }
    available = {
        "1.6": {"connectorId": 0, "type": "Operative"},
        "2.0.1": {"operationalStatus": "Operative"},
    }
    async with linked(version, handlers=handlers) as link:
        peer = link.peer
        await peer.send([2, "slow", "ClearCache", {}])
        await peer.send([2, "slower", "ChangeAvailability", available[version]])
        # A later CALL is answered while the slow ones wait.
        await peer.send([2, "fast", "Reset", RESET[version]])
        assert await peer.next() == [3, "fast", RESET_ANSWER]
        await peer.quiet(0.1)
        release.set()
        answers = {frame[1]: frame for frame in [await peer.next(), await peer.next()]}
        assert answers["slow"] == [3, "slow", {"status": "Accepted"}]
        assert answers["slower"][0] == 4 and answers["slower"][2] == "GenericError"
        await still_works(link)


# -- garbage from the peer ---------------------------------------------------------------------


async def test_non_json_is_ignored_in_16_and_answered_in_201() -> None:
    handlers: dict[str, Handler] = {"Reset": _reset_handler([])}
    async with linked("1.6", handlers=handlers) as link:
        await link.peer.send_raw("this is not json{")
        await link.peer.quiet(0.2)
        [(_, direction, action, reason)] = link.observer.invalid
        assert (direction, action) == ("in", None) and "JSON" in reason
        await still_works(link)
    async with linked("2.0.1", handlers=handlers) as link:
        await link.peer.send_raw("this is not json{")
        answer = await link.peer.next()
        assert answer[:3] == [4, "-1", "RpcFrameworkError"], answer
        assert len(link.observer.invalid) == 1
        await still_works(link)


@pytest.mark.parametrize("version", VERSIONS)
async def test_malformed_frames_are_counted_and_survived(version: str) -> None:
    handlers: dict[str, Handler] = {"Reset": _reset_handler([])}
    async with linked(version, handlers=handlers) as link:
        peer = link.peer
        # A JSON object instead of an array, and arrays that are not OCPP-J: no message id to
        # answer with. 2.0.1 answers RpcFrameworkError with id "-1"; 1.6 has no such rule.
        await peer.send_raw('{"messageTypeId": 2}')
        await peer.send_raw("[]")
        await peer.send_raw('[2, 17, "Reset", {}]')
        if version == "2.0.1":
            for _ in range(3):
                answer = await peer.next()
                assert answer[:3] == [4, "-1", "RpcFrameworkError"], answer
        await peer.quiet(0.2)
        assert len(link.observer.invalid_in()) == 3
        # A message type OCPP-J does not have: 2.0.1 answers MessageTypeNotSupported, 1.6
        # ignores it (4.1.3).
        await peer.send_raw('[5, "m5", "Reset", {}]')
        if version == "2.0.1":
            answer = await peer.next()
            assert answer[:3] == [4, "m5", "MessageTypeNotSupported"], answer
        await peer.quiet(0.2)
        # A CALLRESULT and a CALLERROR for ids never used: counted, nothing else.
        await peer.send([3, "no-such-id", {"currentTime": NOW}])
        await peer.send([4, "no-such-id", "InternalError", "", {}])
        await peer.quiet(0.2)
        assert len(link.observer.invalid_in()) == 6
        # A CALL without its payload is answered; a truncated answer is never answered back.
        await peer.send_raw('[2, "m6", "Reset"]')
        answer = await peer.next()
        expected = "RpcFrameworkError" if version == "2.0.1" else "ProtocolError"
        assert answer[:3] == [4, "m6", expected], answer
        await peer.send_raw('[3, "m7"]')
        await peer.quiet(0.2)
        assert len(link.observer.invalid_in()) == 8
        assert link.observer.done == []
        await still_works(link)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_path_as_action_is_an_unknown_action_and_touches_no_file(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    real_schema_path: Callable[..., Any] = schemas.schema_path

    def spy(v: str, action: str, response: bool) -> Any:
        looked_up.append(action)
        return real_schema_path(v, action, response)

    monkeypatch.setattr(schemas, "schema_path", spy)
    handlers: dict[str, Handler] = {"Reset": _reset_handler([])}
    async with linked(version, handlers=handlers) as link:
        for action in ("../../etc/passwd", "../v16/schemas/Reset", "Reset.json", "Réset"):
            answer = await link.peer.call(action, {})
            assert answer[0] == 4 and answer[2] == "NotImplemented", (action, answer)
        assert looked_up == []
        assert len(link.observer.invalid_in()) == 4
        await still_works(link)


# -- OCPP-J's rules for bad frames, one by one (1.6 section 4, 2.0.1 part 4 section 4) ----------

FRAMEWORK_ERROR = {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"}
OCCURRENCE = {"1.6": "OccurenceConstraintViolation", "2.0.1": "OccurrenceConstraintViolation"}


async def answers_or_silence(link: Link, count: int) -> list[Any]:
    """The answers to `count` frames a 2.0.1 end answers with "-1" and a 1.6 end ignores."""
    if link.rpc.version == "1.6":
        await link.peer.quiet(0.2)
        return []
    return [await link.peer.next() for _ in range(count)]


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_broken_call_is_answered_with_its_id_or_minus_1(version: str) -> None:
    handlers: dict[str, Handler] = {"Reset": _reset_handler([])}
    async with linked(version, handlers=handlers) as link:
        peer = link.peer
        # Not JSON, but the message id can be read: a format violation with that id.
        await peer.send_raw('[2, "m1", "Reset", {"type": ')
        assert (await peer.next())[:3] == [4, "m1", FORMAT_VIOLATION[version]]
        await peer.send_raw('[2,"m\\u0032","Reset",{"type":1e999}]')  # a number JSON cannot hold
        assert (await peer.next())[:3] == [4, "m2", FORMAT_VIOLATION[version]]
        # No readable id: 2.0.1 answers RpcFrameworkError with id "-1", 1.6 stays silent.
        await peer.send_raw("[" * 2000)  # nested deeper than any parser goes
        await peer.ws.send(b"\xff\xfe[2]")  # not even UTF-8, and binary
        await peer.send_raw('{"2": "m3"}')
        await peer.send_raw('["2", 7]')
        for answer in await answers_or_silence(link, 4):
            assert answer[:2] == [4, "-1"], answer
            assert answer[2] in ("RpcFrameworkError", "MessageTypeNotSupported"), answer
        # An id longer than string[36]: refused, the id echoed so the peer can match it.
        long_id = "x" * 37
        await peer.send([2, long_id, "Reset", RESET[version]])
        assert (await peer.next())[:3] == [4, long_id, FRAMEWORK_ERROR[version]]
        assert len(link.observer.invalid_in()) == 7
        assert link.observer.handled == []  # the handler never ran
        await still_works(link)


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_message_types_are_refused_in_201_and_ignored_in_16(version: str) -> None:
    async with linked(version) as link:
        for frame in ('[5, "m5", "Reset", {}]', '[6, "m6", "Heartbeat", {}]', '[2.0, "m7"]'):
            await link.peer.send_raw(frame)
            if version == "2.0.1":
                answer = await link.peer.next()
                assert answer[0] == 4 and answer[2] == "MessageTypeNotSupported", answer
                assert answer[1] == orjson_id(frame)
        await link.peer.send_raw("[true]")
        if version == "2.0.1":
            assert (await link.peer.next())[:3] == [4, "-1", "MessageTypeNotSupported"]
        await link.peer.quiet(0.2)
        assert [reason for *_, reason in link.observer.invalid_in()] == [
            "unknown message type 5",
            "unknown message type 6",
            "unknown message type 2.0",
            "unknown message type True",
        ]
        await still_works(link)


def orjson_id(frame: str) -> str:
    return str(json.loads(frame)[1])


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_broken_answer_ends_its_call_at_once_and_is_never_answered(version: str) -> None:
    async with linked(version, call_timeout_s=5.0) as link:
        peer = link.peer
        broken = [
            '[3, "{id}", {{"currentTime": ',  # cut short
            '[3, "{id}"]',  # no payload
            '[3, "{id}", {{}}, "extra"]',
            '[4, "{id}"]',  # no error code
            '[4, "{id}", 500, "x", {{}}]',  # an error code that is no string
        ]
        for template in broken:
            task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
            call = await peer.next()
            began = time.monotonic()
            await peer.send_raw(template.format(id=call[1]))
            outcome = await task
            assert isinstance(outcome, CallError) and outcome.invalid, (template, outcome)
            assert outcome.code == FORMAT_VIOLATION[version]
            assert time.monotonic() - began < 1.0  # not the 5 s call timeout
        await peer.quiet(0.2)  # an answer is never answered
        assert [d[2] for d in link.observer.done] == ["error"] * len(broken)
        assert len(link.observer.invalid_in()) == len(broken)
        # Not even one whose message id cannot be read (no "-1" for answers).
        await peer.send_raw('[3, "no-end-to-this-id')
        await peer.send_raw("[4")
        await peer.quiet(0.2)
        assert len(link.observer.invalid_in()) == len(broken) + 2
        await still_works(link)


# A payload of a CSMS-initiated action that breaks one rule of its schema, and the CALLERROR
# code that rule calls for.
SCHEMA_CASES: dict[str, list[tuple[str, str, dict[str, Any], str]]] = {
    "1.6": [
        ("type", "Reset", {"type": 5}, "TypeConstraintViolation"),
        ("enum", "Reset", {"type": "Sideways"}, "PropertyConstraintViolation"),
        (
            "length",
            "RemoteStartTransaction",
            {"idTag": "x" * 21},
            "TypeConstraintViolation",  # CiString20Type: the length is part of the type
        ),
        (
            "date-time",
            "ReserveNow",
            {"connectorId": 1, "expiryDate": "tomorrow", "idTag": "T", "reservationId": 1},
            "PropertyConstraintViolation",
        ),
        ("items", "MeterValues", {"connectorId": 1, "meterValue": []}, OCCURRENCE["1.6"]),
        ("required", "Reset", {}, "ProtocolError"),
        ("unknown field", "Reset", {"type": "Soft", "force": True}, "FormationViolation"),
        ("unknown and missing", "Reset", {"bogus": 1}, "FormationViolation"),
    ],
    "2.0.1": [
        ("type", "Reset", {"type": 5}, "TypeConstraintViolation"),
        ("enum", "Reset", {"type": "Sideways"}, "PropertyConstraintViolation"),
        (
            "length",
            "GetVariables",
            {"getVariableData": [{"component": {"name": "x" * 51}, "variable": {"name": "v"}}]},
            "TypeConstraintViolation",
        ),
        (
            "date-time",
            "ReserveNow",
            {
                "id": 1,
                "expiryDateTime": "tomorrow",
                "idToken": {"idToken": "T", "type": "ISO14443"},
            },
            "PropertyConstraintViolation",
        ),
        ("items", "GetVariables", {"getVariableData": []}, OCCURRENCE["2.0.1"]),
        ("required", "Reset", {}, "ProtocolError"),
        ("unknown field", "Reset", {"type": "Immediate", "force": True}, "FormatViolation"),
        ("unknown and missing", "Reset", {"bogus": 1}, "FormatViolation"),
    ],
}


@pytest.mark.parametrize("version", VERSIONS)
async def test_each_schema_rule_broken_gets_its_own_callerror_code(version: str) -> None:
    seen: list[dict[str, Any]] = []
    async with linked(version, handlers={"Reset": _reset_handler(seen)}) as link:
        for case, action, payload, code in SCHEMA_CASES[version]:
            answer = await link.peer.call(action, payload)
            assert answer[0] == 4 and answer[2] == code, (case, answer)
            assert answer[2] in ERROR_CODES[version] and answer[3], (case, answer)
        assert seen == []  # no handler saw an invalid payload
        assert len(link.observer.invalid_in()) == len(SCHEMA_CASES[version])
        await still_works(link)


STATUS: dict[str, dict[str, Any]] = {
    "1.6": {"connectorId": 1, "errorCode": "NoError", "status": "Available"},
    "2.0.1": {"timestamp": NOW, "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
}


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_null_payload_is_an_empty_one(version: str) -> None:
    # OCPP-J: "If there is no payload JSON allows for two different notations: null or an
    # empty object {}" (1.6 4.2.1, 2.0.1 part 4 4.1.5).
    cleared: list[dict[str, Any]] = []

    def clear_cache(payload: dict[str, Any]) -> dict[str, Any]:
        cleared.append(payload)
        return {"status": "Accepted"}

    async with linked(version, handlers={"ClearCache": clear_cache}) as link:
        await link.peer.send([2, "n1", "ClearCache", None])
        assert await link.peer.next() == [3, "n1", {"status": "Accepted"}]
        assert cleared == [{}]
        task = asyncio.create_task(link.rpc.call("StatusNotification", STATUS[version]))
        call = await link.peer.next()
        await link.peer.send([3, call[1], None])
        assert await task == CallResult({})
        assert link.observer.invalid == []


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_call_reusing_the_id_of_one_still_being_handled_is_refused(version: str) -> None:
    release = asyncio.Event()

    async def slow(payload: dict[str, Any]) -> dict[str, Any]:
        await release.wait()
        return {"status": "Accepted"}

    async with linked(version, handlers={"ClearCache": slow}) as link:
        peer = link.peer
        await peer.send([2, "dup", "ClearCache", {}])
        await peer.send([2, "dup", "ClearCache", {}])
        assert (await peer.next())[:3] == [4, "dup", FRAMEWORK_ERROR[version]]
        release.set()
        assert await peer.next() == [3, "dup", {"status": "Accepted"}]
        # Answered: the id is free again (a retry may reuse it).
        await peer.send([2, "dup", "ClearCache", {}])
        assert await peer.next() == [3, "dup", {"status": "Accepted"}]
        assert len(link.observer.invalid_in()) == 1


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_message_over_the_size_limit_is_refused_unparsed(version: str) -> None:
    handlers: dict[str, Handler] = {"Reset": _reset_handler([])}
    async with linked(version, handlers=handlers, max_message_bytes=1000) as link:
        peer = link.peer
        big = {"type": RESET[version]["type"], "pad": "x" * 2000}
        await peer.send([2, "big", "Reset", big])
        answer = await peer.next()
        assert answer[:3] == [4, "big", FORMAT_VIOLATION[version]], answer
        assert "exceeds 1000" in answer[3]
        # An answer over the limit ends its CALL as invalid, at once.
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        call = await peer.next()
        await peer.send([3, call[1], {"currentTime": NOW, "pad": "x" * 2000}])
        outcome = await task
        assert isinstance(outcome, CallError) and outcome.invalid
        # Too big to find an id in: "-1" in 2.0.1, silence in 1.6.
        await peer.send_raw(" " * 2000 + "[]")
        for answer in await answers_or_silence(link, 1):
            assert answer[:3] == [4, "-1", "RpcFrameworkError"], answer
        assert len(link.observer.invalid_in()) == 3
        await still_works(link)


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_frame_over_the_websocket_limit_closes_the_connection_cleanly(
    version: str,
) -> None:
    # What websockets does today above transport.MAX_FRAME_BYTES: close with 1009 (message too
    # big). The call in flight ends as ConnectionLost; the link above reconnects.
    async with linked(version, ws_max_size=1000) as link:
        task = asyncio.create_task(link.rpc.call("Heartbeat", {}))
        call = await link.peer.next()
        await link.peer.send([3, call[1], {"currentTime": NOW, "pad": "x" * 5000}])
        outcome = await task
        assert isinstance(outcome, ConnectionLost)
        assert link.rpc.closed
        assert link.peer.ws.close_code == 1009


@pytest.mark.parametrize("version", VERSIONS)
async def test_a_bug_handling_one_frame_does_not_end_the_reads(
    version: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = RpcConnection._on_frame

    def flaky(self: RpcConnection, data: str | bytes) -> Any:
        if b"boom" in (data if isinstance(data, bytes) else data.encode()):
            raise RuntimeError("a bug")
        return real(self, data)

    monkeypatch.setattr(RpcConnection, "_on_frame", flaky)
    handlers: dict[str, Handler] = {
        "Reset": _reset_handler([]),
        "ClearCache": lambda payload: {"status": {1, 2}},  # a set: JSON cannot carry it
    }
    async with linked(version, handlers=handlers) as link:
        await link.peer.send([2, "boom", "Reset", RESET[version]])
        await link.peer.quiet(0.2)
        assert [r for *_, r in link.observer.invalid_in()] == [
            "frame could not be handled (internal error)"
        ]
        # A response that cannot be serialised is an InternalError, not a dead connection.
        answer = await link.peer.call("ClearCache", {})
        assert answer[:3] == [4, answer[1], "InternalError"], answer
        assert [d for _, d, _, _ in link.observer.invalid] == ["in", "out"]
        await still_works(link)


@pytest.mark.parametrize("version", VERSIONS)
async def test_callerror_details_are_always_an_object(version: str) -> None:
    def refuse(payload: dict[str, Any]) -> dict[str, Any]:
        raise OcppError("GenericError", "d" * 300, ["not", "an", "object"])

    async with linked(version, handlers={"ClearCache": refuse}) as link:
        answer = await link.peer.call("ClearCache", {})
        # ErrorDescription is string[255]; ErrorDetails "MUST" be an object, {} if none.
        assert answer[2:] == ["GenericError", "d" * 255, {}]
