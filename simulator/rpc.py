"""OCPP-J over one websocket: framing, call correlation, one outstanding CALL, timeouts, validation.

Both ends use it: a virtual charger's link and the embedded CSMS. Outcomes of a CALL are typed
values (result, CALLERROR, timeout, connection lost), never exceptions, so a misbehaving peer
cannot kill a charger. This module knows frames, not what any action means.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import orjson
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from simulator.schemas import FrameValidator, UnknownAction

log = logging.getLogger(__name__)


class MessageType(IntEnum):
    """The OCPP-J message type numbers (the first element of every frame)."""

    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4


@dataclass(frozen=True, slots=True)
class CallResult:
    """The peer answered with a CALLRESULT (its payload passed validation, when enabled)."""

    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallError:
    """The peer answered with a CALLERROR, or its answer failed validation (`invalid`)."""

    code: str
    description: str = ""
    details: Any = None
    invalid: bool = False


@dataclass(frozen=True, slots=True)
class CallTimeout:
    """No answer within the call timeout."""

    after_s: float


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The connection closed before the CALL was answered (or before it could be sent)."""

    reason: str


CallOutcome = CallResult | CallError | CallTimeout | ConnectionLost


def outcome_label(outcome: CallOutcome) -> str:
    """The metric label of an outcome: result, error, timeout or closed."""
    if isinstance(outcome, CallResult):
        return "result"
    if isinstance(outcome, CallError):
        return "error"
    if isinstance(outcome, CallTimeout):
        return "timeout"
    return "closed"


class OcppError(Exception):
    """Raised by a handler of an incoming CALL to answer with a CALLERROR."""

    def __init__(self, code: str, description: str = "", details: Any = None) -> None:
        super().__init__(f"{code}: {description}")
        self.code = code
        self.description = description
        self.details = details if details is not None else {}


# A handler receives the request payload and returns the response payload (or an awaitable of
# it, for the rare handler that must wait for something).
Handler = Callable[[dict[str, Any]], "dict[str, Any] | Awaitable[dict[str, Any]]"]


class RpcObserver(Protocol):
    """Receives every measurement the rpc layer makes (metrics implement it)."""

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None: ...

    def call_handled(self, version: str, action: str, outcome: str) -> None: ...

    def invalid_frame(
        self, version: str, direction: str, action: str | None, reason: str
    ) -> None: ...


class NullObserver:
    """An observer that measures nothing."""

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None:
        pass

    def call_handled(self, version: str, action: str, outcome: str) -> None:
        pass

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        pass


NULL_OBSERVER = NullObserver()
# Answers of asynchronous handlers in flight: the loop keeps only weak references to tasks.
_BACKGROUND: set[asyncio.Future[None]] = set()

# CALLERROR codes differ slightly between versions: 1.6 says FormationViolation, 2.0.1
# FormatViolation, and only 2.0.1 has RpcFrameworkError for frames that are not OCPP-J at all.
_FORMAT_VIOLATION = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}
_FRAMEWORK_ERROR = {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"}


class RpcConnection:
    """One OCPP-J connection: sends CALLs one at a time and answers the peer's CALLs.

    Bounds: at most one outgoing CALL is in flight (the OCPP-J rule), so `_pending` holds at
    most one future; callers queue on a lock, and the link above bounds its own queue. Incoming
    CALLs are answered in arrival order by `handlers`; a missing handler answers NotSupported.
    """

    __slots__ = (
        "_closed_reason",
        "_lock",
        "_next_id",
        "_pending",
        "call_timeout_s",
        "handlers",
        "observer",
        "validator",
        "version",
        "ws",
    )

    def __init__(
        self,
        ws: Connection,
        version: str,
        *,
        handlers: Mapping[str, Handler] | None = None,
        validator: FrameValidator | None = None,
        observer: RpcObserver | None = None,
        call_timeout_s: float = 30.0,
    ) -> None:
        self.ws = ws
        self.version = version
        self.handlers: Mapping[str, Handler] = handlers or {}
        self.validator = validator
        self.observer: RpcObserver = observer or NULL_OBSERVER
        self.call_timeout_s = call_timeout_s
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._pending: dict[str, tuple[str, asyncio.Future[CallOutcome]]] = {}
        self._closed_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    # -- outgoing CALLs ------------------------------------------------------------------------

    async def call(
        self, action: str, payload: dict[str, Any], due: float | None = None
    ) -> CallOutcome:
        """Send a CALL and wait for its outcome.

        `due` is the loop time at which the message became due; latency is measured from it,
        so time spent waiting behind a stalled generator or another CALL is not hidden. Times
        are time.monotonic() seconds (uvloop's loop.time() only has millisecond steps)."""
        loop = asyncio.get_running_loop()
        if due is None:
            due = time.monotonic()
        async with self._lock:
            outcome = await self._call_locked(loop, action, payload, due)
        return outcome

    async def _call_locked(
        self,
        loop: asyncio.AbstractEventLoop,
        action: str,
        payload: dict[str, Any],
        due: float,
    ) -> CallOutcome:
        if self._closed_reason is not None:
            return self._finish(action, ConnectionLost(self._closed_reason), due, time.monotonic())
        if self.validator is not None:
            self._check_out(action, payload)
        self._next_id += 1
        message_id = str(self._next_id)
        future: asyncio.Future[CallOutcome] = loop.create_future()
        self._pending[message_id] = (action, future)
        timer = loop.call_later(self.call_timeout_s, self._expire, message_id)
        sent = time.monotonic()
        try:
            await _send(self.ws, orjson.dumps([2, message_id, action, payload]))
            outcome = await future
        except ConnectionClosed as exc:
            self._lost(_close_reason(exc))
            outcome = ConnectionLost(self._closed_reason or "closed")
        finally:
            timer.cancel()
            self._pending.pop(message_id, None)
        done = time.monotonic()
        self.observer.call_done(
            self.version, action, outcome_label(outcome), done - due, done - sent
        )
        return outcome

    def _finish(self, action: str, outcome: CallOutcome, due: float, now: float) -> CallOutcome:
        self.observer.call_done(self.version, action, outcome_label(outcome), now - due, 0.0)
        return outcome

    def _check_out(self, action: str, payload: dict[str, Any]) -> None:
        assert self.validator is not None
        try:
            problem = self.validator.request_problem(action, payload)
        except UnknownAction as exc:
            problem = str(exc)
        if problem is not None:
            # Our own bug: count it loudly, but send anyway so the run shows how the peer reacts.
            log.warning("outgoing %s fails its schema: %s", action, problem)
            self.observer.invalid_frame(self.version, "out", action, problem)

    def _expire(self, message_id: str) -> None:
        entry = self._pending.pop(message_id, None)
        if entry is not None and not entry[1].done():
            entry[1].set_result(CallTimeout(self.call_timeout_s))

    # -- the read loop -------------------------------------------------------------------------

    async def serve(self) -> str:
        """Read and dispatch frames until the connection closes; returns why it closed."""
        ws = self.ws
        try:
            while True:
                data = await ws.recv(decode=False)
                reply = self._on_frame(data)
                if reply is not None:
                    if isinstance(reply, bytes):
                        await _send(ws, reply)
                    else:
                        # An asynchronous handler answers on its own, without stalling reads.
                        task = asyncio.ensure_future(reply)
                        _BACKGROUND.add(task)
                        task.add_done_callback(_BACKGROUND.discard)
        except ConnectionClosed as exc:
            self._lost(_close_reason(exc))
        except asyncio.CancelledError:
            self._lost("cancelled")
            raise
        return self._closed_reason or "closed"

    def _lost(self, reason: str) -> None:
        if self._closed_reason is None:
            self._closed_reason = reason
        for _, future in self._pending.values():
            if not future.done():
                future.set_result(ConnectionLost(reason))
        self._pending.clear()

    def _invalid(self, action: str | None, reason: str) -> None:
        self.observer.invalid_frame(self.version, "in", action, reason)

    def _on_frame(self, data: str | bytes) -> bytes | Awaitable[None] | None:
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            self._invalid(None, "frame is not JSON")
            if self.version == "2.0.1":
                return _error_frame("-1", "RpcFrameworkError", "frame is not JSON")
            return None
        if not isinstance(frame, list) or len(frame) < 2 or not isinstance(frame[1], str):
            self._invalid(None, "frame is not an OCPP-J array [type, id, ...]")
            return None
        kind, message_id = frame[0], frame[1]
        if kind == MessageType.CALLRESULT and len(frame) == 3:
            self._on_result(message_id, frame[2])
            return None
        if kind == MessageType.CALLERROR and len(frame) >= 3:
            self._on_error(message_id, frame)
            return None
        if kind == MessageType.CALL:
            if len(frame) == 4 and isinstance(frame[2], str):
                return self._on_call(message_id, frame[2], frame[3])
            self._invalid(None, "CALL is not [2, id, action, payload]")
            return _error_frame(message_id, _FRAMEWORK_ERROR[self.version], "malformed CALL")
        if kind in (MessageType.CALLRESULT, MessageType.CALLERROR):
            # OCPP-J never answers an answer, even a malformed one: count it and move on.
            self._invalid(None, f"malformed message of type {kind}")
            return None
        self._invalid(None, f"unknown message type {kind!r}")
        code = "MessageTypeNotSupported" if self.version == "2.0.1" else "ProtocolError"
        return _error_frame(message_id, code, f"message type {kind!r} is not supported")

    def _on_result(self, message_id: str, payload: Any) -> None:
        entry = self._pending.get(message_id)
        if entry is None:
            self._invalid(None, "CALLRESULT for an unknown or expired message id")
            return
        action, future = entry
        if future.done():
            return
        problem: str | None = None
        if not isinstance(payload, dict):
            problem = "CALLRESULT payload is not an object"
        elif self.validator is not None:
            problem = self.validator.response_problem(action, payload)
        if problem is not None:
            self._invalid(action, f"{action} response: {problem}")
            future.set_result(
                CallError(_FORMAT_VIOLATION[self.version], problem, None, invalid=True)
            )
            return
        future.set_result(CallResult(payload))

    def _on_error(self, message_id: str, frame: list[Any]) -> None:
        entry = self._pending.get(message_id)
        if entry is None:
            self._invalid(None, "CALLERROR for an unknown or expired message id")
            return
        code = frame[2] if isinstance(frame[2], str) else "GenericError"
        description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
        details = frame[4] if len(frame) > 4 else None
        if not entry[1].done():
            entry[1].set_result(CallError(code, description, details))

    def _on_call(
        self, message_id: str, action: str, payload: Any
    ) -> bytes | Awaitable[None] | None:
        version = self.version
        handler = self.handlers.get(action)
        if self.validator is not None:
            if not self.validator.knows(action):
                self._invalid(action, f"unknown action {action!r}")
                self.observer.call_handled(version, action, "error")
                return _error_frame(message_id, "NotImplemented", f"unknown action {action!r}")
            problem = (
                self.validator.request_problem(action, payload)
                if isinstance(payload, dict)
                else "payload is not an object"
            )
            if problem is not None:
                self._invalid(action, f"{action}: {problem}")
                self.observer.call_handled(version, action, "error")
                return _error_frame(message_id, _FORMAT_VIOLATION[version], problem)
        if handler is None:
            self.observer.call_handled(version, action, "error")
            code = "NotSupported" if self.validator is not None else "NotImplemented"
            return _error_frame(message_id, code, f"{action} is not supported")
        try:
            response = handler(payload)
        except OcppError as exc:
            self.observer.call_handled(version, action, "error")
            return _error_frame(message_id, exc.code, exc.description, exc.details)
        except Exception:
            log.exception("handler of %s failed", action)
            self.observer.call_handled(version, action, "error")
            return _error_frame(message_id, "InternalError", f"{action} handler failed")
        if isinstance(response, dict):
            return self._result_frame(message_id, action, response)
        return self._answer_later(message_id, action, response)

    def _result_frame(self, message_id: str, action: str, response: dict[str, Any]) -> bytes:
        if self.validator is not None:
            problem = self.validator.response_problem(action, response)
            if problem is not None:
                log.warning("our %s response fails its schema: %s", action, problem)
                self.observer.invalid_frame(self.version, "out", action, problem)
        self.observer.call_handled(self.version, action, "handled")
        return orjson.dumps([3, message_id, response])

    async def _answer_later(
        self, message_id: str, action: str, pending: Awaitable[dict[str, Any]]
    ) -> None:
        try:
            response = await pending
            frame = self._result_frame(message_id, action, response)
        except OcppError as exc:
            self.observer.call_handled(self.version, action, "error")
            frame = _error_frame(message_id, exc.code, exc.description, exc.details)
        except Exception:
            log.exception("handler of %s failed", action)
            self.observer.call_handled(self.version, action, "error")
            frame = _error_frame(message_id, "InternalError", f"{action} handler failed")
        try:
            await _send(self.ws, frame)
        except ConnectionClosed as exc:
            self._lost(_close_reason(exc))


async def _send(ws: Connection, frame: bytes) -> None:
    """Send one text frame.

    The common case (connection open, socket accepting writes) hands the frame straight to
    websockets' sans-I/O protocol and the transport: `Connection.send` wraps every message in
    an async context manager that costs about a fifth of a generator's CPU per call (measured
    by benchmarks/online.py). Anything else (closing, flow control, a fragmented send in
    progress, an older or newer websockets without these attributes) takes `send`, which
    handles it and raises ConnectionClosed as usual."""
    try:
        fast = (
            ws.protocol.state is State.OPEN
            and ws.send_in_progress is None
            and not ws.paused
            and not ws.transport.is_closing()
        )
    except AttributeError:
        fast = False
    if not fast:
        await ws.send(frame, text=True)
        return
    ws.protocol.send_text(frame)
    try:
        ws.send_data()
    except Exception as exc:  # the socket failed under us: as websockets would, give up on it
        ws.transport.abort()
        raise ConnectionClosed(None, None) from exc


def _error_frame(message_id: str, code: str, description: str, details: Any = None) -> bytes:
    return orjson.dumps([4, message_id, code, description[:255], details or {}])


def _close_reason(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is not None:
        return f"closed by peer ({rcvd.code})"
    return "connection lost"
