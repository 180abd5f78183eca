"""The CSMS's answers to charger-initiated OCPP 1.6J and 2.0.1 calls, one session per connection.

Handlers build camelCase payload dicts directly and record what they hear in the `CsmsStore`
(memory only: no SQL on the hot path, no I/O). A transaction message is answered once what it
produced is committed (`CsmsStore.durable`), and a charger's retry of one already recorded is
answered as the original was, without recording it twice. Framing and schema validation belong
to the rpc layer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import orjson
from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import AuthorizationStatus, DataTransferStatus, RegistrationStatus
from ocpp.v201.enums import Action as Action201
from ocpp.v201.enums import (
    AuthorizationStatusEnumType,
    DataTransferStatusEnumType,
    ReadingContextEnumType,
    RegistrationStatusEnumType,
    TransactionEventEnumType,
)

from simulator.csms.store import CsmsStore, MeterRow, StoreFailed, TxState
from simulator.rpc import Handler, OcppError

log = logging.getLogger(__name__)

_ENERGY = "Energy.Active.Import.Register"  # the default measurand in both versions
_PERIODIC = "Sample.Periodic"  # the default context in both versions
_BEGIN = ReadingContextEnumType.transaction_begin.value
_END = ReadingContextEnumType.transaction_end.value
_STARTED = TransactionEventEnumType.started.value
_ENDED = TransactionEventEnumType.ended.value
_ACCEPTED = AuthorizationStatus.accepted.value
_INVALID = AuthorizationStatus.invalid.value
_INVALID_201 = AuthorizationStatusEnumType.invalid
# 2.0.1 tokens that identify nobody (free vend): nothing to look up, always accepted.
_NO_AUTH_TYPES = frozenset({"NoAuthorization"})
_OK = {"status": "Accepted"}
# 1.6 connector statuses that are also charging states (2.0.1 reports those in TransactionEvent).
_CHARGING_STATES_16 = frozenset({"Charging", "SuspendedEV", "SuspendedEVSE"})
# How long the older of a session's two clock marks may age before it is moved up (wall s): the
# charger's speed is estimated over this window, so queued messages replayed after a reconnect
# (old timestamps) stop mattering once it has passed.
_CLOCK_WINDOW_S = 60.0

# What a handler returns: the answer, or an awaitable of it (answered once it is stored).
Answer = dict[str, Any] | Awaitable[dict[str, Any]]


def utc_now_iso() -> str:
    """Now, as an OCPP timestamp (UTC, milliseconds, "Z")."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _parse_stamp(stamp: str) -> datetime:
    """An OCPP timestamp as an aware UTC datetime (naive ones are read as UTC)."""
    moment = datetime.fromisoformat(stamp.strip().replace("z", "Z"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Policy:
    """What the CSMS decides: the heartbeat interval it hands out and which tags it accepts."""

    heartbeat_interval_s: int = 300
    id_tags: frozenset[str] | None = None  # None: accept every tag

    def accepts(self, tag: str) -> bool:
        return self.id_tags is None or tag in self.id_tags


class CsmsListener(Protocol):
    """Told about chargers' boots, transactions and charging states in version-neutral terms
    (the site load manager is one). Methods run on the event loop inside a charger's handler:
    they must be quick and must not block; anything slow is scheduled as a task."""

    def booted(self, charger_id: str, version: str) -> None: ...

    def transaction_started(self, charger_id: str, tx: TxState) -> None: ...

    def transaction_ended(self, charger_id: str, tx: TxState) -> None: ...

    def charging_state(self, charger_id: str, evse_id: int, state: str) -> None:
        """`state`: "Charging", "SuspendedEV", "SuspendedEVSE", "EVConnected" or "Idle"."""


class ReportCollector:
    """Gathers the multi-part report that answers one CSMS request (ReportChargingProfiles or
    NotifyReport with the request's requestId) until a part says tbc false."""

    __slots__ = ("done", "parts")

    def __init__(self) -> None:
        self.parts: list[dict[str, Any]] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def add(self, payload: dict[str, Any]) -> None:
        self.parts.append(payload)
        if not payload.get("tbc", False) and not self.done.done():
            self.done.set_result(None)


class SessionHooks:
    """What every session shares with the server beyond the store: the listeners to tell about
    transactions, and the collectors waiting for reports (both empty unless used, so a session
    checks one truth value per message and does nothing more)."""

    __slots__ = ("listeners", "reports")

    def __init__(self) -> None:
        self.listeners: list[CsmsListener] = []
        # (charger id, action, requestId) -> the collector of that request's report parts
        self.reports: dict[tuple[str, str, int], ReportCollector] = {}

    def tell(self, method: str, *args: Any) -> None:
        """Call `method` on every listener; one that fails is logged, never the charger's
        problem (the charger still gets its answer)."""
        for listener in self.listeners:
            try:
                getattr(listener, method)(*args)
            except Exception:
                log.exception("CSMS listener %r failed in %s", listener, method)

    def data_transfer(self, charger_id: str, payload: dict[str, Any]) -> str | None:
        """The status of the first listener that answers a DataTransfer (one with a
        `data_transfer(charger_id, vendor_id, message_id, data) -> str | None` method, such as
        the load manager's DepartureTime); None: no listener knows it."""
        for listener in self.listeners:
            answer = getattr(listener, "data_transfer", None)
            if answer is None:
                continue
            try:
                status = answer(
                    charger_id, payload["vendorId"], payload.get("messageId"), payload.get("data")
                )
            except Exception:
                log.exception("CSMS listener %r failed in data_transfer", listener)
                continue
            if status is not None:
                return str(status)
        return None

    def report(self, charger_id: str, action: str, payload: dict[str, Any]) -> None:
        collector = self.reports.get((charger_id, action, payload.get("requestId", -1)))
        if collector is not None:
            collector.add(payload)


NO_HOOKS = SessionHooks()


@dataclass(slots=True)
class CsmsCounters:
    """Server-wide counters (plain ints and a Counter: one increment per message)."""

    connects_total: int = 0
    replaced: int = 0
    invalid_frames: int = 0
    unknown_charger_messages: int = 0
    messages: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def _float(value: Any) -> float | None:
    """A sampled value as a number; None for what is not one (1.6 SignedData, garbage)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _lenient(handler: Callable[[dict[str, Any]], Answer], code: str) -> Handler:
    """Without schema validation a malformed payload reaches the handler: answer it with a
    format CALLERROR instead of an InternalError with a stack trace in the log."""

    def guarded(payload: dict[str, Any]) -> Answer:
        try:
            return handler(payload)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise OcppError(code, f"malformed payload: {exc!r}") from None

    return guarded


class Session(ABC):
    """One charger's connection as the CSMS sees it; also the rpc observer of that connection,
    which is where messages are counted and `last_seen` is refreshed.

    Lenient by design: a charger that has not booted is answered normally, only counted.
    """

    __slots__ = (
        "charger_id",
        "clock_anchor",
        "clock_last",
        "counters",
        "hooks",
        "known",
        "policy",
        "store",
        "validated",
    )

    version = ""
    format_violation = ""

    def __init__(
        self,
        charger_id: str,
        store: CsmsStore,
        policy: Policy,
        counters: CsmsCounters,
        validated: bool = True,
        hooks: SessionHooks = NO_HOOKS,
    ) -> None:
        self.charger_id = charger_id
        self.store = store
        self.policy = policy
        self.counters = counters
        self.validated = validated
        self.hooks = hooks
        self.known = store.is_booted(charger_id)
        # Two (wall monotonic s, charger timestamp) marks, for estimating the charger's clock:
        # under an accelerated run it is ahead of ours and runs faster (see `charger_time`).
        self.clock_anchor: tuple[float, str] | None = None
        self.clock_last: tuple[float, str] | None = None

    @abstractmethod
    def _table(self) -> Mapping[str, Callable[[dict[str, Any]], Answer]]:
        """The version's handlers by action name."""

    def handlers(self) -> dict[str, Handler]:
        """The handler table to give RpcConnection (built once per connection)."""
        table = self._table()
        if self.validated:
            return dict(table)
        return {action: _lenient(fn, self.format_violation) for action, fn in table.items()}

    # -- RpcObserver ---------------------------------------------------------------------------

    def call_handled(self, version: str, action: str, outcome: str) -> None:
        counters = self.counters
        counters.messages[action] += 1
        if outcome != "handled":
            counters.errors[action] += 1
        if not self.known:
            counters.unknown_charger_messages += 1
        self.store.seen(self.charger_id, time.time())

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None:
        """CSMS-initiated calls are not measured here (the chargers' side measures)."""
        return None

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.counters.invalid_frames += 1

    # -- shared helpers ------------------------------------------------------------------------

    def _durable(self, answer: dict[str, Any]) -> Answer:
        """`answer`, once everything recorded so far is committed (at once when the store's
        acknowledgements are not durable)."""
        store = self.store
        if not store.durable_acks:
            return answer
        return _when_stored(store.durable(), answer)

    def _note(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        self.store.notification(self.charger_id, action, orjson.dumps(payload).decode())
        return {}

    def _booted(self) -> None:
        self.known = True
        if self.hooks.listeners:
            self.hooks.tell("booted", self.charger_id, self.version)

    def _stamp(self, stamp: str | None) -> None:
        """Remember a timestamp the charger sent (its simulated now, or close to it). Cheap: no
        parsing here; a stamp older than the latest (a replayed queued message) is skipped by
        comparing strings, which order like times in the one format chargers here send."""
        if stamp is None:
            return
        last = self.clock_last
        if last is not None and stamp < last[1]:
            return
        now = time.monotonic()
        anchor = self.clock_anchor
        if anchor is None or now - anchor[0] > _CLOCK_WINDOW_S:
            self.clock_anchor = last or (now, stamp)
        self.clock_last = (now, stamp)

    def charger_time(self, wall_now: float | None = None) -> datetime | None:
        """The charger's current time, estimated from the timestamps it sent: its latest, moved
        on by the wall time since then times its speed (simulated s per wall s, measured between
        the two marks; 1 until they are a second apart). None before any timestamp."""
        last = self.clock_last
        if last is None:
            return None
        now = time.monotonic() if wall_now is None else wall_now
        try:
            t_last = _parse_stamp(last[1])
            speed = 1.0
            anchor = self.clock_anchor
            if anchor is not None and last[0] - anchor[0] >= 1.0:
                t_anchor = _parse_stamp(anchor[1])
                speed = (t_last - t_anchor).total_seconds() / (last[0] - anchor[0])
                speed = min(max(speed, 0.0), 1e6)
        except ValueError:
            return None
        return t_last + timedelta(seconds=speed * (now - last[0]))


async def _when_stored(commit: Awaitable[None], answer: dict[str, Any]) -> dict[str, Any]:
    try:
        await commit
    except StoreFailed as exc:
        # Not stored, so not acknowledged: the charger will send it again.
        raise OcppError("InternalError", f"not stored: {exc}") from None
    return answer


class V16Session(Session):
    """OCPP 1.6J: the CSMS side of every charger-initiated action."""

    __slots__ = ()

    version = "1.6"
    format_violation = "FormationViolation"

    def _table(self) -> Mapping[str, Callable[[dict[str, Any]], Answer]]:
        A = Action16
        return {
            A.boot_notification.value: self.boot_notification,
            A.heartbeat.value: self.heartbeat,
            A.status_notification.value: self.status_notification,
            A.authorize.value: self.authorize,
            A.start_transaction.value: self.start_transaction,
            A.stop_transaction.value: self.stop_transaction,
            A.meter_values.value: self.meter_values,
            A.data_transfer.value: self.data_transfer,
            A.firmware_status_notification.value: self.firmware_status_notification,
            A.diagnostics_status_notification.value: self.diagnostics_status_notification,
        }

    def _tag_info(self, tag: str) -> dict[str, Any]:
        return {"status": _ACCEPTED if self.policy.accepts(tag) else _INVALID}

    def boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        self.store.booted(
            self.charger_id,
            self.version,
            p["chargePointVendor"],
            p["chargePointModel"],
            p.get("chargePointSerialNumber"),
            p.get("firmwareVersion"),
        )
        self._booted()
        return {
            "status": RegistrationStatus.accepted.value,
            "currentTime": utc_now_iso(),
            "interval": self.policy.heartbeat_interval_s,
        }

    def heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": utc_now_iso()}

    def status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        connector = int(p["connectorId"])
        status = p["status"]
        stamp = p.get("timestamp")
        self.store.status(self.charger_id, connector, connector, status, p["errorCode"], stamp)
        self._stamp(stamp)
        if self.hooks.listeners and connector > 0 and status in _CHARGING_STATES_16:
            self.hooks.tell("charging_state", self.charger_id, connector, status)
        return {}

    def authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"idTagInfo": self._tag_info(p["idTag"])}

    def start_transaction(self, p: dict[str, Any]) -> Answer:
        store = self.store
        tag = p["idTag"]
        connector = int(p["connectorId"])
        meter_start = float(p["meterStart"])
        stamp = p["timestamp"]
        known = store.find_start((self.charger_id, connector, stamp, tag, meter_start))
        if known is not None:
            # The charger's retry (its answer was lost or late): the same transaction again.
            store.anomaly("duplicate_start")
            return self._durable({"transactionId": known.id, "idTagInfo": self._tag_info(tag)})
        tx = store.new_transaction(self.charger_id, self.version)
        tx.evse_id = tx.connector_id = connector
        tx.id_tag = tag
        tx.meter_start_wh = meter_start
        tx.started_at = stamp
        store.remember_start(tx)
        self._stamp(stamp)
        if self.hooks.listeners:
            self.hooks.tell("transaction_started", self.charger_id, tx)
        return self._durable({"transactionId": tx.id, "idTagInfo": self._tag_info(tag)})

    def stop_transaction(self, p: dict[str, Any]) -> Answer:
        store = self.store
        transaction_id = str(p["transactionId"])
        tag = p.get("idTag")
        answer = {} if tag is None else {"idTagInfo": self._tag_info(tag)}
        tx = store.find_transaction(self.charger_id, transaction_id)
        if (
            tx is not None
            and tx.stopped_at is not None
            and tx.stopped_at == p["timestamp"]
            and tx.meter_stop_wh == float(p["meterStop"])
        ):
            # The charger's retry: stopped already with these figures; record nothing again.
            store.anomaly("duplicate_stop")
            return self._durable(answer)
        data = p.get("transactionData")
        if data:
            store.meter_rows(_rows16(self.charger_id, transaction_id, data))
        if tx is None:
            # The charger stops something we never started (or a replay from another db):
            # OCPP still wants an answer, or the charger would retry it forever.
            store.anomaly("unknown_transaction_stop")
            return self._durable({})
        if tx.stopped_at is not None:
            store.anomaly("transaction_stopped_twice")
        tx.meter_stop_wh = float(p["meterStop"])
        tx.stopped_at = p["timestamp"]
        tx.stop_reason = p.get("reason", "Local")  # 1.6: absent reason means Local
        store.end_transaction(tx)
        self._stamp(tx.stopped_at)
        if self.hooks.listeners:
            self.hooks.tell("transaction_ended", self.charger_id, tx)
        return self._durable(answer)

    def meter_values(self, p: dict[str, Any]) -> Answer:
        tx_id = p.get("transactionId")
        values = p["meterValue"]
        self.store.meter_rows(
            _rows16(self.charger_id, None if tx_id is None else str(tx_id), values)
        )
        if values:
            self._stamp(values[-1].get("timestamp"))
        # Transaction meter values are transaction messages: stored before acknowledged.
        return {} if tx_id is None else self._durable({})

    def data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        self._note(Action16.data_transfer.value, p)
        status = self.hooks.data_transfer(self.charger_id, p) if self.hooks.listeners else None
        return {"status": status or DataTransferStatus.unknown_vendor_id.value}

    def firmware_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._note(Action16.firmware_status_notification.value, p)

    def diagnostics_status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        return self._note(Action16.diagnostics_status_notification.value, p)


def _rows16(charger_id: str, tx_id: str | None, meter_values: list[Any]) -> list[MeterRow]:
    rows: list[MeterRow] = []
    for mv in meter_values:
        stamp = mv.get("timestamp")
        for sv in mv["sampledValue"]:
            get = sv.get
            rows.append(
                (
                    charger_id,
                    tx_id,
                    stamp,
                    get("measurand", _ENERGY),
                    get("phase"),
                    _float(sv["value"]),
                    get("unit", "Wh"),
                    get("context", _PERIODIC),
                )
            )
    return rows


class _Registers:
    """Energy register readings found in one 2.0.1 message, in Wh."""

    __slots__ = ("begin", "end", "first", "last")

    def __init__(self) -> None:
        self.begin: float | None = None
        self.end: float | None = None
        self.first: float | None = None
        self.last: float | None = None


def _rows201(
    charger_id: str, tx_id: str | None, meter_values: list[Any], registers: _Registers | None
) -> list[MeterRow]:
    """meter_values rows (value scaled by the unit's multiplier) and, when asked, the energy
    register readings converted to Wh."""
    rows: list[MeterRow] = []
    for mv in meter_values:
        stamp = mv.get("timestamp")
        for sv in mv["sampledValue"]:
            get = sv.get
            unit_of_measure = get("unitOfMeasure")
            if unit_of_measure is None:
                unit = "Wh"
                value = _float(sv["value"])
            else:
                unit = unit_of_measure.get("unit", "Wh")
                value = _float(sv["value"])
                multiplier = unit_of_measure.get("multiplier", 0)
                if multiplier and value is not None:
                    value *= 10.0**multiplier
            measurand = get("measurand", _ENERGY)
            context = get("context", _PERIODIC)
            rows.append((charger_id, tx_id, stamp, measurand, get("phase"), value, unit, context))
            if registers is not None and measurand == _ENERGY and value is not None:
                wh = value * 1000.0 if unit == "kWh" else value
                if context == _BEGIN:
                    registers.begin = wh
                elif context == _END:
                    registers.end = wh
                if registers.first is None:
                    registers.first = wh
                registers.last = wh
    return rows


class V201Session(Session):
    """OCPP 2.0.1: the CSMS side of every charger-initiated action."""

    __slots__ = ()

    version = "2.0.1"
    format_violation = "FormatViolation"

    def _table(self) -> Mapping[str, Callable[[dict[str, Any]], Answer]]:
        A = Action201
        table: dict[str, Callable[[dict[str, Any]], Answer]] = {
            A.boot_notification.value: self.boot_notification,
            A.heartbeat.value: self.heartbeat,
            A.status_notification.value: self.status_notification,
            A.authorize.value: self.authorize,
            A.transaction_event.value: self.transaction_event,
            A.meter_values.value: self.meter_values,
            A.data_transfer.value: self.data_transfer,
            # Reports answering a CSMS request: recorded, and handed to whoever waits for them.
            A.notify_report.value: self._reporter(A.notify_report.value),
            A.report_charging_profiles.value: self._reporter(A.report_charging_profiles.value),
            # Recorded, then answered with a status: the CSMS has processed them (which, as the
            # schemas say, neither meets the EV's needs nor approves its schedule) and will
            # have the certificate signed (this CSMS has no CA: the request is only recorded).
            A.notify_ev_charging_needs.value: self._recorder(A.notify_ev_charging_needs.value, _OK),
            A.notify_ev_charging_schedule.value: self._recorder(
                A.notify_ev_charging_schedule.value, _OK
            ),
            A.sign_certificate.value: self._recorder(A.sign_certificate.value, _OK),
        }
        # Actions whose only effect is to be recorded, answered with an empty object.
        for action in (
            A.notify_event,
            A.firmware_status_notification,
            A.log_status_notification,
            A.security_event_notification,
            A.reservation_status_update,
            A.notify_charging_limit,
            A.cleared_charging_limit,
            A.notify_monitoring_report,
            A.notify_customer_information,
            A.notify_display_messages,
        ):
            table[action.value] = self._recorder(action.value)
        return table

    def _recorder(
        self, action: str, answer: Mapping[str, Any] | None = None
    ) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def record(p: dict[str, Any]) -> dict[str, Any]:
            self._note(action, p)
            return {} if answer is None else dict(answer)

        return record

    def _reporter(self, action: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
        def record(p: dict[str, Any]) -> dict[str, Any]:
            self._note(action, p)
            if self.hooks.reports:
                self.hooks.report(self.charger_id, action, p)
            return {}

        return record

    def _token_info(self, token: dict[str, Any]) -> dict[str, Any]:
        accepted = token.get("type") in _NO_AUTH_TYPES or self.policy.accepts(token["idToken"])
        status = AuthorizationStatusEnumType.accepted if accepted else _INVALID_201
        return {"status": status.value}

    def boot_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        station = p["chargingStation"]
        self.store.booted(
            self.charger_id,
            self.version,
            station["vendorName"],
            station["model"],
            station.get("serialNumber"),
            station.get("firmwareVersion"),
        )
        self._booted()
        return {
            "status": RegistrationStatusEnumType.accepted.value,
            "currentTime": utc_now_iso(),
            "interval": self.policy.heartbeat_interval_s,
        }

    def heartbeat(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"currentTime": utc_now_iso()}

    def status_notification(self, p: dict[str, Any]) -> dict[str, Any]:
        stamp = p["timestamp"]
        self.store.status(
            self.charger_id,
            int(p["evseId"]),
            int(p["connectorId"]),
            p["connectorStatus"],
            None,
            stamp,
        )
        self._stamp(stamp)
        return {}

    def authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"idTokenInfo": self._token_info(p["idToken"])}

    def transaction_event(self, p: dict[str, Any]) -> Answer:
        store = self.store
        info = p["transactionInfo"]
        transaction_id: str = info["transactionId"]
        event = p["eventType"]
        seq_no = int(p["seqNo"])
        token = p.get("idToken")
        tx = store.find_transaction(self.charger_id, transaction_id)
        if (
            tx is not None
            and seq_no == tx.seq_no_last
            and (event == _ENDED) == (tx.stopped_at is not None)
        ):
            # The last event heard again: the charger's retry of an event whose answer it did
            # not get (it sends nothing newer until answered). Answered again, recorded once.
            # An older seqNo is no retry (a replay, or a rerun reusing transaction ids): it is
            # processed and counted as before.
            store.anomaly("duplicate_event")
            return self._durable({} if token is None else {"idTokenInfo": self._token_info(token)})
        registers = _Registers()
        meter = p.get("meterValue")
        if meter:
            store.meter_rows(_rows201(self.charger_id, transaction_id, meter, registers))
        created = tx is None
        if tx is None:
            tx = store.new_transaction(self.charger_id, self.version, transaction_id)
            tx.started_at = p["timestamp"]
            if event != _STARTED:
                # We missed its Started (lost, or sent to another CSMS): track it from here.
                store.anomaly("transaction_event_unknown_transaction")
        elif event == _STARTED:
            store.anomaly("transaction_started_twice")
        if tx.seq_no_last is not None and seq_no != tx.seq_no_last + 1:
            store.anomaly("transaction_seq_no_gap")
        tx.seq_no_last = seq_no
        evse = p.get("evse")
        if evse is not None:
            tx.evse_id = evse["id"]
            tx.connector_id = evse.get("connectorId", tx.connector_id)
        if token is not None:
            tx.id_tag = token["idToken"]
        # The start register is the Transaction.Begin reading; lacking one, the first energy
        # register the CSMS heard of. Likewise the stop register: Transaction.End, else the last.
        if tx.meter_start_wh is None:
            tx.meter_start_wh = registers.begin if registers.begin is not None else registers.first
        self._stamp(p["timestamp"])
        hooks = self.hooks
        if hooks.listeners:
            # A transaction first heard of in an Updated event (its Started was lost) is still
            # one that runs; one first heard of in its Ended event never ran for the listeners.
            if created and event != _ENDED:
                hooks.tell("transaction_started", self.charger_id, tx)
            state = info.get("chargingState")
            if state is not None and tx.evse_id is not None:
                hooks.tell("charging_state", self.charger_id, tx.evse_id, state)
        if event == _ENDED:
            stop = registers.end if registers.end is not None else registers.last
            if stop is None:
                stop = tx.meter_last_wh
            if stop is not None:
                tx.meter_stop_wh = stop
            if tx.stopped_at is not None:
                store.anomaly("transaction_stopped_twice")
            tx.stopped_at = p["timestamp"]
            tx.stop_reason = info.get("stoppedReason", "Local")  # 2.0.1: absent means Local
            store.end_transaction(tx)
            if hooks.listeners:
                hooks.tell("transaction_ended", self.charger_id, tx)
        else:
            if registers.last is not None:
                # Kept so that an Ended without registers still has an energy.
                tx.meter_last_wh = registers.last
            store.touch(tx)
        if token is not None:
            return self._durable({"idTokenInfo": self._token_info(token)})
        return self._durable({})

    def meter_values(self, p: dict[str, Any]) -> dict[str, Any]:
        values = p["meterValue"]
        self.store.meter_rows(_rows201(self.charger_id, None, values, None))
        if values:
            self._stamp(values[-1].get("timestamp"))
        return {}

    def data_transfer(self, p: dict[str, Any]) -> dict[str, Any]:
        self._note(Action201.data_transfer.value, p)
        status = self.hooks.data_transfer(self.charger_id, p) if self.hooks.listeners else None
        return {"status": status or DataTransferStatusEnumType.unknown_vendor_id.value}
