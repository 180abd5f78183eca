"""OCPP-J over one websocket: framing, call correlation, one outstanding CALL, timeouts, validation.

Both ends use it: a virtual charger's link and the embedded CSMS. Outcomes of a CALL are typed
values (result, CALLERROR, timeout, connection lost), never exceptions, so a misbehaving peer
cannot kill a charger. This module knows frames, not what any action means.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

import orjson
from websockets.asyncio.connection import Connection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from simulator.schemas import FrameValidator, UnknownAction, Violation

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

# What to answer to a frame from the peer, per OCPP-J (1.6 section 4, 2.0.1 part 4 section 4):
# - not JSON, or over `max_message_bytes`: a CALL whose message id can still be read gets a
#   CALLERROR FormationViolation (1.6) / FormatViolation (2.0.1) with that id; when the id
#   cannot be read, 2.0.1 answers RpcFrameworkError with message id "-1" (part 4 4.2.3), 1.6
#   has no such rule and stays silent.
# - a message type other than 2, 3, 4: 2.0.1 answers MessageTypeNotSupported (part 4 4.4);
#   1.6 "SHALL ignore the message payload" (4.1.3).
# - a CALL that is not [2, id, action, payload], or whose id is longer than 36 characters:
#   ProtocolError (1.6) / RpcFrameworkError (2.0.1), the id echoed.
# - an action the version does not define: NotImplemented; one it defines but nobody here
#   handles: NotSupported.
# - a payload that fails its schema: the code of the rule that failed (see _RULE_CODES).
# - a CALLRESULT or CALLERROR is never answered: a malformed one for a pending CALL ends that
#   CALL as an invalid CallError at once; one for an unknown id is only counted.
# Every one is counted through observer.invalid_frame, and the connection carries on.
# The spellings differ: 1.6 FormationViolation and OccurenceConstraintViolation (both kept in
# its errata as known issues), 2.0.1 FormatViolation and OccurrenceConstraintViolation.
_FORMAT_VIOLATION = {"1.6": "FormationViolation", "2.0.1": "FormatViolation"}
_FRAMEWORK_ERROR = {"1.6": "ProtocolError", "2.0.1": "RpcFrameworkError"}
_OCCURRENCE = {"1.6": "OccurenceConstraintViolation", "2.0.1": "OccurrenceConstraintViolation"}
# JSON Schema rule that failed -> CALLERROR code, by the code descriptions of both versions:
# a field of the wrong type (OCPP's CiStringNType includes its length) is a type constraint, a
# value outside its enum or range a property constraint, a list of the wrong length an
# occurrence constraint, a missing required field "incomplete" (ProtocolError, as the ocpp
# package answers it); anything else (unknown fields) a formation/format violation.
_RULE_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",
    "minLength": "TypeConstraintViolation",
    "enum": "PropertyConstraintViolation",
    "const": "PropertyConstraintViolation",
    "pattern": "PropertyConstraintViolation",
    "format": "PropertyConstraintViolation",
    "minimum": "PropertyConstraintViolation",
    "maximum": "PropertyConstraintViolation",
    "exclusiveMinimum": "PropertyConstraintViolation",
    "exclusiveMaximum": "PropertyConstraintViolation",
    "multipleOf": "PropertyConstraintViolation",
    "required": "ProtocolError",
}
_OCCURRENCE_RULES = frozenset({"minItems", "maxItems", "uniqueItems"})
MAX_MESSAGE_ID = 36  # characters: string[36] in both versions
# The start of a frame that failed to parse: its message type and, if readable, its id.
_HEAD = re.compile(rb'^\s*\[\s*(\d{1,3})\s*(?:,\s*"((?:[^"\\\x00-\x1f]|\\.){0,72})")?')


class RpcConnection:
    """One OCPP-J connection: sends CALLs one at a time and answers the peer's CALLs.

    Bounds: at most one outgoing CALL is in flight (the OCPP-J rule), so `_pending` holds at
    most one future; callers queue on a lock, and the link above bounds its own queue. Incoming
    CALLs are answered in arrival order by `handlers`; a missing handler answers NotSupported.
    """

    __slots__ = (
        "_closed_reason",
        "_handling",
        "_lock",
        "_next_id",
        "_pending",
        "call_timeout_s",
        "handlers",
        "max_message_bytes",
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
        max_message_bytes: int | None = None,
    ) -> None:
        self.ws = ws
        self.version = version
        self.handlers: Mapping[str, Handler] = handlers or {}
        self.validator = validator
        self.observer: RpcObserver = observer or NULL_OBSERVER
        self.call_timeout_s = call_timeout_s
        # The largest message this end processes (2.0.1 DeviceDataCtrlr.BytesPerMessage): a
        # larger CALL is answered with a format violation, not parsed. None: the websocket's
        # own limit decides (websockets closes the connection with 1009 above it).
        self.max_message_bytes = max_message_bytes
        self._lock = asyncio.Lock()
        self._next_id = 0
        self._pending: dict[str, tuple[str, asyncio.Future[CallOutcome]]] = {}
        # Ids of the peer's CALLs whose asynchronous handler has not answered yet: a second
        # CALL with one of them is refused (OCPP-J names it as a CALLERROR case). At most one
        # per asynchronous handler in flight.
        self._handling: set[str] = set()
        self._closed_reason: str | None = None

    @property
    def closed(self) -> bool:
        return self._closed_reason is not None

    def abort(self) -> bool:
        """Drop the connection at once, without a close handshake, as a lost network would
        (an injected fault); False if it was already closing."""
        transport = self.ws.transport
        if self.closed or transport is None or transport.is_closing():
            return False
        transport.abort()
        return True

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
                try:
                    reply = self._on_frame(data)
                except Exception:  # our bug: it must not end the connection's reads
                    log.exception("handling a frame from the peer failed")
                    self._invalid(None, "frame could not be handled (internal error)")
                    continue
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
        limit = self.max_message_bytes
        if limit is not None and len(data) > limit:
            return self._unreadable(data, f"message of {len(data)} bytes exceeds {limit}")
        try:
            frame = orjson.loads(data)
        except orjson.JSONDecodeError:
            return self._unreadable(data, "frame is not valid JSON")
        if not isinstance(frame, list) or not frame:
            self._invalid(None, "frame is not an OCPP-J array [type, id, ...]")
            return self._no_id("frame is not an OCPP-J array")
        kind = frame[0]
        message_id = frame[1] if len(frame) > 1 else None
        readable = isinstance(message_id, str) and len(message_id) <= MAX_MESSAGE_ID
        if type(kind) is not int or kind not in _KINDS:
            self._invalid(None, f"unknown message type {_short(kind)}")
            if self.version == "1.6":
                return None  # 1.6 4.1.3: the message SHALL be ignored
            return _error_frame(
                message_id if readable and isinstance(message_id, str) else "-1",
                "MessageTypeNotSupported",
                f"message type {_short(kind)} is not supported",
            )
        if not isinstance(message_id, str):
            self._invalid(None, "message id is not a string")
            return self._no_id("message id is not a string") if kind == MessageType.CALL else None
        if kind == MessageType.CALLRESULT:
            if len(frame) == 3:
                self._on_result(message_id, {} if frame[2] is None else frame[2])
            else:
                self._unusable_answer(message_id, "CALLRESULT is not [3, id, payload]")
            return None
        if kind == MessageType.CALLERROR:
            if len(frame) >= 3 and isinstance(frame[2], str):
                self._on_error(message_id, frame)
            else:
                self._unusable_answer(message_id, "CALLERROR is not [4, id, code, ...]")
            return None
        # A CALL.
        if not readable:
            self._invalid(None, f"message id longer than {MAX_MESSAGE_ID} characters")
            return _error_frame(
                message_id, _FRAMEWORK_ERROR[self.version], "message id is too long"
            )
        if len(frame) != 4 or not isinstance(frame[2], str):
            self._invalid(None, "CALL is not [2, id, action, payload]")
            return _error_frame(message_id, _FRAMEWORK_ERROR[self.version], "malformed CALL")
        if message_id in self._handling:
            self._invalid(frame[2], "CALL with the id of a CALL still being handled")
            return _error_frame(
                message_id, _FRAMEWORK_ERROR[self.version], "message id is already in use"
            )
        # Both versions allow null for an empty payload (though {} is good practice).
        return self._on_call(message_id, frame[2], {} if frame[3] is None else frame[3])

    def _no_id(self, reason: str) -> bytes | None:
        """The answer to a frame whose message id cannot be read: 2.0.1 answers with "-1"."""
        if self.version == "2.0.1":
            return _error_frame("-1", "RpcFrameworkError", reason)
        return None

    def _unreadable(self, data: str | bytes, reason: str) -> bytes | None:
        """A frame that cannot be parsed (or may not be): answer by what its start says."""
        self._invalid(None, reason)
        head = _HEAD.match(data[:200] if isinstance(data, bytes) else data[:200].encode())
        message_id: str | None = None
        kind = None
        if head is not None:
            kind = int(head.group(1))
            if head.group(2) is not None:
                try:
                    decoded = orjson.loads(b'"' + head.group(2) + b'"')
                except orjson.JSONDecodeError:
                    decoded = None
                if isinstance(decoded, str) and len(decoded) <= MAX_MESSAGE_ID:
                    message_id = decoded
        if message_id is None:
            if kind in (MessageType.CALLRESULT, MessageType.CALLERROR):
                # An answer to nobody knows which CALL: never answered; if it was the pending
                # one, that CALL times out (guessing could resend a message that arrived).
                return None
            return self._no_id(reason)
        if kind == MessageType.CALL:
            return _error_frame(message_id, _FORMAT_VIOLATION[self.version], reason)
        if kind in (MessageType.CALLRESULT, MessageType.CALLERROR):
            self._fail_pending(message_id, reason)
            return None
        if self.version == "2.0.1":
            return _error_frame(message_id, "MessageTypeNotSupported", reason)
        return None

    def _unusable_answer(self, message_id: str, reason: str) -> None:
        """A CALLRESULT or CALLERROR that is not well formed: never answered (OCPP-J does not
        answer answers), counted, and the CALL it answers ends now instead of timing out."""
        self._invalid(None, reason)
        self._fail_pending(message_id, reason)

    def _fail_pending(self, message_id: str, reason: str) -> None:
        entry = self._pending.get(message_id)
        if entry is not None and not entry[1].done():
            entry[1].set_result(
                CallError(_FORMAT_VIOLATION[self.version], reason, None, invalid=True)
            )

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
        code = frame[2]
        description = frame[3] if len(frame) > 3 and isinstance(frame[3], str) else ""
        details = frame[4] if len(frame) > 4 else None
        if not entry[1].done():
            entry[1].set_result(CallError(code, description, details))

    def _violation_code(self, violation: Violation) -> str:
        if violation.rule in _OCCURRENCE_RULES:
            return _OCCURRENCE[self.version]
        return _RULE_CODES.get(violation.rule) or _FORMAT_VIOLATION[self.version]

    def _on_call(
        self, message_id: str, action: str, payload: Any
    ) -> bytes | Awaitable[None] | None:
        version = self.version
        handler = self.handlers.get(action)
        if self.validator is not None:
            if not self.validator.knows(action):
                self._invalid(action, f"unknown action {_short(action)}")
                self.observer.call_handled(version, action, "error")
                return _error_frame(
                    message_id, "NotImplemented", f"unknown action {_short(action)}"
                )
            if isinstance(payload, dict):
                violation = self.validator.request_violation(action, payload)
                code = None if violation is None else self._violation_code(violation)
                problem = None if violation is None else violation.message
            else:
                code, problem = _FORMAT_VIOLATION[version], "payload is not an object"
            if code is not None and problem is not None:
                self._invalid(action, f"{action}: {problem}")
                self.observer.call_handled(version, action, "error")
                return _error_frame(message_id, code, problem)
        if handler is None:
            self.observer.call_handled(version, action, "error")
            code = "NotSupported" if self.validator is not None else "NotImplemented"
            return _error_frame(message_id, code, f"{_short(action)} is not supported")
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
        self._handling.add(message_id)
        return self._answer_later(message_id, action, response)

    def _result_frame(self, message_id: str, action: str, response: dict[str, Any]) -> bytes:
        if self.validator is not None:
            problem = self.validator.response_problem(action, response)
            if problem is not None:
                log.warning("our %s response fails its schema: %s", action, problem)
                self.observer.invalid_frame(self.version, "out", action, problem)
        try:
            frame = orjson.dumps([3, message_id, response])
        except TypeError:  # our bug: a value JSON cannot carry; the peer still gets an answer
            log.exception("the %s response cannot be serialised", action)
            self.observer.call_handled(self.version, action, "error")
            return _error_frame(message_id, "InternalError", f"{action} handler failed")
        self.observer.call_handled(self.version, action, "handled")
        return frame

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
        finally:
            self._handling.discard(message_id)
        try:
            await _send(self.ws, frame)
        except ConnectionClosed as exc:
            self._lost(_close_reason(exc))


_KINDS = frozenset(MessageType)


def _short(value: Any) -> str:
    """A peer's value in a log line or CALLERROR description: repr, at most 60 characters."""
    shown = repr(value) if not isinstance(value, str) else repr(value[:61])
    return shown if len(shown) <= 60 else shown[:57] + "..."


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
    # ErrorDescription is string[255]; ErrorDetails must be an object ({} when there are none).
    return orjson.dumps(
        [4, message_id, code, description[:255], details if isinstance(details, dict) else {}]
    )


def _close_reason(exc: ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is not None:
        return f"closed by peer ({rcvd.code})"
    return "connection lost"
