"""CSMS-initiated operations: what a person, a test or the load manager asks a connected charger
to do, in version-neutral terms, turned into the OCPP 1.6J or 2.0.1 request the charger speaks.

Every operation builds its payload from plain arguments, checks it against the official schema
before sending (a bad argument is the caller's mistake, reported as such, never put on the
wire), sends it over the charger's connection, records it in the store's `operations` table, and
returns the charger's response payload. Anything that keeps the charger from answering normally
(not connected, CALLERROR, invalid answer, timeout) raises a `CommandError` whose message is one
line. Times may be given as ISO-8601 strings or as seconds from the charger's own current time
(under an accelerated run the charger's clock is ahead of the CSMS's; see `charger_time`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson

from simulator.csms.handlers import ReportCollector, Session
from simulator.rpc import CallError, CallResult, CallTimeout, RpcConnection, outcome_label
from simulator.schemas import FrameValidator

if TYPE_CHECKING:
    from simulator.csms.server import CsmsServer

V16 = "1.6"
V201 = "2.0.1"

# Version-neutral names that differ between the versions: the station-wide profile purpose and
# the trigger of the diagnostics/log upload status.
_PURPOSE = {
    V16: {"ChargingStationMaxProfile": "ChargePointMaxProfile"},
    V201: {"ChargePointMaxProfile": "ChargingStationMaxProfile"},
}
_TRIGGER = {
    V16: {"LogStatusNotification": "DiagnosticsStatusNotification"},
    V201: {"DiagnosticsStatusNotification": "LogStatusNotification"},
}
_RESET = {
    V16: {"soft": "Soft", "hard": "Hard", "immediate": "Hard"},
    # 2.0.1 has no soft/hard distinction: Immediate ends the transactions and reboots (what a
    # 1.6 Soft reset does too); OnIdle waits for them to end.
    V201: {"soft": "Immediate", "hard": "Immediate", "immediate": "Immediate", "on_idle": "OnIdle"},
}
# "Component[:instance][@evse[:connector]].Variable[:instance]", e.g. "OCPPCommCtrlr.Heartbeat
# Interval", "EVSE@1.Power", "Connector@1:1.AvailabilityState", "SampledDataCtrlr.TxUpdated
# Measurands".
_VARIABLE = re.compile(
    r"(?P<component>[^.:@\s]+)(?::(?P<component_instance>[^.@\s]+))?"
    r"(?:@(?P<evse>\d+)(?::(?P<connector>\d+))?)?"
    r"\.(?P<variable>[^.:\s]+)(?::(?P<variable_instance>\S+))?"
)
# Request fields that carry an id the CSMS may have handed out (profile, reservation, request,
# remote start): the highest ever sent is where the CSMS's own numbering continues.
_REF_FIELDS = ("chargingProfileId", "reservationId", "requestId", "remoteStartId")
_PROFILE_FIELDS = ("csChargingProfiles", "chargingProfile")


class CommandError(Exception):
    """A CSMS-initiated operation that could not be done or was not answered; one line."""


class BadArguments(CommandError):
    """The caller's arguments make no valid request (wrong type, not in this OCPP version,
    fails the schema). Nothing was sent."""


class UnknownCharger(CommandError):
    """No charger with this id has ever connected to this CSMS."""


class NotConnected(CommandError):
    """The charger is known but has no open connection now. Nothing was sent."""


class CallFailed(CommandError):
    """The charger answered with a CALLERROR or an invalid response, did not answer in time,
    or its connection closed before it answered. `operation` is the recorded attempt."""

    def __init__(self, message: str, operation: Operation) -> None:
        super().__init__(message)
        self.operation = operation


@dataclass(frozen=True, slots=True)
class Operation:
    """One CSMS-initiated call as sent and ended. `outcome` is result, error, timeout or closed;
    `response` the CALLRESULT payload, or {code, description, details} of a CALLERROR."""

    id: int
    charger_id: str
    version: str
    action: str
    request: dict[str, Any]
    outcome: str
    response: dict[str, Any] | None
    sent_at: float
    answered_at: float


class Reply(dict[str, Any]):
    """The charger's response payload (read it as the dict it is), with the `operation` that got
    it and, for requests answered by reports (GetChargingProfiles, GetBaseReport), the report
    `reports` parts collected after it."""

    __slots__ = ("operation", "reports")

    def __init__(self, payload: Mapping[str, Any], operation: Operation) -> None:
        super().__init__(payload)
        self.operation = operation
        self.reports: list[dict[str, Any]] = []


# -- argument checks (one-line BadArguments) ------------------------------------------------------


def _int(name: str, value: Any) -> int:
    """An integer argument; integral floats and digit strings (ids read from a URL, a 1.6
    transaction id kept as text) are accepted."""
    if isinstance(value, bool):
        raise BadArguments(f"{name}: expected an integer (got {value!r})")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
        return int(value)
    raise BadArguments(f"{name}: expected an integer (got {value!r})")


def _opt_int(name: str, value: Any) -> int | None:
    return None if value is None else _int(name, value)


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadArguments(f"{name}: expected a number (got {value!r})")
    return float(value)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise BadArguments(f"{name}: expected a non-empty string (got {value!r})")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadArguments(f"{name}: expected true or false (got {value!r})")
    return value


def _mapping(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadArguments(f"{name}: expected an object (got {type(value).__name__})")
    return value


def _names(name: str, value: Any) -> list[str]:
    """One name or a list of them."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    raise BadArguments(f"{name}: expected a string or a list of strings (got {value!r})")


def _limit(value: float, version: str) -> float:
    # 1.6 limits are multipleOf 0.1; 2.0.1 takes any number (tenths still say enough).
    rounded = round(value, 1)
    return rounded if version == V16 or rounded == value else value


def config_value(value: Any) -> str:
    """A configuration key's or variable's value as OCPP text: booleans "true"/"false",
    integral numbers without ".0", lists comma-separated."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list | tuple):
        return ",".join(config_value(v) for v in value)
    if isinstance(value, int | float | str):
        return str(value)
    raise BadArguments(f"value: expected text, a number, true/false or a list (got {value!r})")


def iso(moment: datetime) -> str:
    """A datetime as an OCPP timestamp (UTC, milliseconds, "Z")."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def variable_ref(item: Any, with_value: bool = False) -> dict[str, Any]:
    """A 2.0.1 GetVariableData / SetVariableData entry from version-neutral input: the text
    "Component[:instance][@evse[:connector]].Variable[:instance]", or an object {component,
    variable, component_instance?, variable_instance?, evse_id?, connector_id?, attribute_type?
    (, value)}."""
    fields = _split(item) if isinstance(item, str) else dict(_mapping("variable", item))
    known = {
        "component",
        "variable",
        "component_instance",
        "variable_instance",
        "evse",
        "evse_id",
        "connector",
        "connector_id",
        "attribute_type",
    }
    if with_value:
        known.add("value")
    unknown = sorted(set(fields) - known)
    if unknown:
        raise BadArguments(f"variable: unknown field {unknown[0]!r}")
    component: dict[str, Any] = {"name": _text("component", fields.get("component"))}
    if fields.get("component_instance") is not None:
        component["instance"] = _text("component_instance", fields["component_instance"])
    evse = fields.get("evse_id", fields.get("evse"))
    if evse is not None:
        component["evse"] = {"id": _int("evse_id", evse)}
        connector = fields.get("connector_id", fields.get("connector"))
        if connector is not None:
            component["evse"]["connectorId"] = _int("connector_id", connector)
    variable: dict[str, Any] = {"name": _text("variable", fields.get("variable"))}
    if fields.get("variable_instance") is not None:
        variable["instance"] = _text("variable_instance", fields["variable_instance"])
    entry: dict[str, Any] = {"component": component, "variable": variable}
    if fields.get("attribute_type") is not None:
        entry["attributeType"] = _text("attribute_type", fields["attribute_type"])
    if with_value:
        if "value" not in fields:
            raise BadArguments(f"variable {variable['name']!r}: no value given")
        entry["attributeValue"] = config_value(fields["value"])
    return entry


def _refs(payload: Mapping[str, Any]) -> Iterable[int]:
    for key in _REF_FIELDS:
        value = payload.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            yield value
    for key in _PROFILE_FIELDS:
        profile = payload.get(key)
        if isinstance(profile, Mapping):
            for field in ("chargingProfileId", "id"):
                value = profile.get(field)
                if isinstance(value, int) and not isinstance(value, bool):
                    yield value
    if "idToken" in payload and isinstance(payload.get("id"), int):  # 2.0.1 ReserveNow
        yield payload["id"]


# -- the commands ---------------------------------------------------------------------------------


class CsmsCommands:
    """Sends CSMS-initiated operations to the chargers connected to one `CsmsServer`.

    One method per operation of OCPP 1.6J and 2.0.1; the charger's version comes from its
    connection. Ids the CSMS hands out (charging profiles, reservations, requests, remote starts)
    come from one increasing sequence that continues across restarts with the same database.
    Must be used on the server's event loop.
    """

    def __init__(self, server: CsmsServer) -> None:
        self.server = server

    # -- plumbing ------------------------------------------------------------------------------

    def connection(self, charger_id: str) -> RpcConnection:
        """The charger's open connection; UnknownCharger or NotConnected otherwise."""
        conn = self.server.connections.get(charger_id)
        if conn is not None and not conn.closed:
            return conn
        if self.server.known(charger_id):
            raise NotConnected(f"charger {charger_id!r} is not connected")
        raise UnknownCharger(f"unknown charger {charger_id!r}")

    def version(self, charger_id: str) -> str:
        """The OCPP version the connected charger speaks ("1.6" or "2.0.1")."""
        return self.connection(charger_id).version

    def new_id(self) -> int:
        """The next id of the CSMS's own sequence (profiles, reservations, requests)."""
        store = self.server.store
        store.last_ref_id += 1
        return store.last_ref_id

    def charger_time(self, charger_id: str) -> datetime:
        """The charger's current time as estimated from the timestamps it sent (its simulated
        time under `fleetsim run`); the CSMS's own clock before it sent any."""
        conn = self.server.connections.get(charger_id)
        if conn is not None and isinstance(conn.observer, Session):
            estimate = conn.observer.charger_time()
            if estimate is not None:
                return estimate
        return datetime.now(UTC)

    def when(self, charger_id: str, name: str, value: Any) -> str:
        """A time argument as an OCPP timestamp: ISO-8601 text is passed on (the schema checks
        it), a number is that many seconds from the charger's current time."""
        if isinstance(value, str):
            return value.strip()
        seconds = _number(name, value)
        return iso(self.charger_time(charger_id) + timedelta(seconds=seconds))

    async def call(self, charger_id: str, action: str, payload: Mapping[str, Any]) -> Reply:
        """Send any action with a ready-made payload (checked against the request schema) and
        return the charger's response; the basis of every other method."""
        action = _text("action", action)
        request = dict(_mapping("payload", payload))
        conn = self.connection(charger_id)
        version = conn.version
        validator = FrameValidator(version)
        if not validator.knows(action):
            raise BadArguments(f"OCPP {version} has no action {action!r}")
        problem = validator.request_problem(action, request)
        if problem is not None:
            raise BadArguments(f"{action} request: {problem}")
        sent = time.time()
        outcome = await conn.call(action, request)
        answered = time.time()
        response: dict[str, Any] | None = None
        if isinstance(outcome, CallResult):
            response = outcome.payload
        elif isinstance(outcome, CallError):
            response = {
                "code": outcome.code,
                "description": outcome.description,
                "details": outcome.details,
            }
        label = outcome_label(outcome)
        op_id = self.server.store.operation(
            charger_id,
            version,
            action,
            orjson.dumps(request).decode(),
            label,
            None if response is None else orjson.dumps(response).decode(),
            max(_refs(request), default=None),
            sent,
            answered,
        )
        operation = Operation(
            op_id, charger_id, version, action, request, label, response, sent, answered
        )
        if isinstance(outcome, CallResult):
            return Reply(outcome.payload, operation)
        who = f"charger {charger_id!r}"
        if isinstance(outcome, CallError):
            if outcome.invalid:
                message = f"{who} answered {action} with an invalid response: {outcome.description}"
            else:
                message = f"{who} answered {action} with CALLERROR {outcome.code}"
                if outcome.description:
                    message += f": {outcome.description}"
        elif isinstance(outcome, CallTimeout):
            message = f"{who} did not answer {action} within {outcome.after_s:g} s"
        else:
            message = f"{who}: connection closed before {action} was answered ({outcome.reason})"
        raise CallFailed(" ".join(message.split()), operation)

    def _only(self, charger_id: str, version: str, action: str, hint: str = "") -> None:
        spoken = self.version(charger_id)
        if spoken != version:
            tail = f"; {hint}" if hint else ""
            raise BadArguments(
                f"{action} is OCPP {version}, and charger {charger_id!r} speaks {spoken}{tail}"
            )

    async def _with_reports(
        self,
        charger_id: str,
        action: str,
        payload: dict[str, Any],
        report_action: str,
        wait_s: float,
    ) -> Reply:
        """Send a request that a report answers and, if accepted and `wait_s` > 0, collect the
        report's parts (until one has tbc false, or `wait_s` passes) into `Reply.reports`."""
        wait_s = _number("wait_s", wait_s)
        if wait_s <= 0:
            return await self.call(charger_id, action, payload)
        reports = self.server.hooks.reports
        # Registered before sending: the first part can be handled before the response is.
        key = (charger_id, report_action, payload["requestId"])
        collector = reports[key] = ReportCollector()
        try:
            reply = await self.call(charger_id, action, payload)
            if reply.get("status") == "Accepted":
                await asyncio.wait([collector.done], timeout=wait_s)
            reply.reports = list(collector.parts)
            return reply
        finally:
            if reports.get(key) is collector:
                del reports[key]

    # -- profiles ------------------------------------------------------------------------------

    def profile(
        self, charger_id: str, profile: Mapping[str, Any], default_purpose: str | None = None
    ) -> dict[str, Any]:
        """A charging profile in the charger's version from the version-neutral form {purpose,
        kind?, stack_level?, unit, periods: [{start_s, limit, number_phases?}], recurrency?,
        valid_from?, valid_to?, start_schedule?, duration_s?, transaction_id?,
        min_charging_rate?, id?}. The id is handed out when not given; kind defaults to
        Recurring with a recurrency, Absolute with a start_schedule, else Relative."""
        version = self.version(charger_id)
        p = dict(_mapping("profile", profile))
        known = {
            "id",
            "purpose",
            "kind",
            "stack_level",
            "unit",
            "periods",
            "recurrency",
            "valid_from",
            "valid_to",
            "start_schedule",
            "duration_s",
            "transaction_id",
            "min_charging_rate",
        }
        unknown = sorted(set(p) - known)
        if unknown:
            raise BadArguments(
                f"profile: unknown field {unknown[0]!r} (expected {', '.join(sorted(known))})"
            )
        purpose = _text("profile.purpose", p.get("purpose", default_purpose))
        purpose = _PURPOSE[version].get(purpose, purpose)
        if "kind" in p:
            kind = _text("profile.kind", p["kind"])
        elif p.get("recurrency") is not None:
            kind = "Recurring"
        elif p.get("start_schedule") is not None:
            kind = "Absolute"
        else:
            kind = "Relative"
        periods = p.get("periods")
        if not isinstance(periods, list) or not periods:
            raise BadArguments("profile.periods: expected a non-empty list of {start_s, limit}")
        wire_periods = []
        for i, period in enumerate(periods):
            period = _mapping(f"profile.periods[{i}]", period)
            extra = sorted(set(period) - {"start_s", "limit", "number_phases"})
            if extra:
                raise BadArguments(f"profile.periods[{i}]: unknown field {extra[0]!r}")
            wire: dict[str, Any] = {
                "startPeriod": _int(f"profile.periods[{i}].start_s", period.get("start_s")),
                "limit": _limit(
                    _number(f"profile.periods[{i}].limit", period.get("limit")), version
                ),
            }
            if period.get("number_phases") is not None:
                wire["numberPhases"] = _int(
                    f"profile.periods[{i}].number_phases", period["number_phases"]
                )
            wire_periods.append(wire)
        profile_id = _int("profile.id", p["id"]) if p.get("id") is not None else self.new_id()
        schedule: dict[str, Any] = {
            "chargingRateUnit": _text("profile.unit", p.get("unit")),
            "chargingSchedulePeriod": wire_periods,
        }
        if p.get("duration_s") is not None:
            schedule["duration"] = _int("profile.duration_s", p["duration_s"])
        if p.get("start_schedule") is not None:
            schedule["startSchedule"] = self.when(
                charger_id, "profile.start_schedule", p["start_schedule"]
            )
        if p.get("min_charging_rate") is not None:
            rate = _number("profile.min_charging_rate", p["min_charging_rate"])
            schedule["minChargingRate"] = _limit(rate, version)
        out: dict[str, Any] = {
            "stackLevel": _int("profile.stack_level", p.get("stack_level", 0)),
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": kind,
        }
        if p.get("recurrency") is not None:
            out["recurrencyKind"] = _text("profile.recurrency", p["recurrency"])
        for key, wire_key in (("valid_from", "validFrom"), ("valid_to", "validTo")):
            if p.get(key) is not None:
                out[wire_key] = self.when(charger_id, f"profile.{key}", p[key])
        tx = p.get("transaction_id")
        if version == V16:
            out["chargingProfileId"] = profile_id
            if tx is not None:
                out["transactionId"] = _int("profile.transaction_id", tx)
            out["chargingSchedule"] = schedule
        else:
            out["id"] = profile_id
            if tx is not None:
                out["transactionId"] = tx if isinstance(tx, str) else str(_int("tx", tx))
            # One schedule per profile; its id only has to be unique within the profile.
            out["chargingSchedule"] = [{"id": profile_id, **schedule}]
        return out

    async def set_charging_profile(
        self, charger_id: str, evse_id: int, profile: Mapping[str, Any]
    ) -> Reply:
        """SetChargingProfile on an EVSE (1.6 connector; 0 = the whole station)."""
        wire = self.profile(charger_id, profile)
        evse = _int("evse_id", evse_id)
        if self.version(charger_id) == V16:
            payload = {"connectorId": evse, "csChargingProfiles": wire}
        else:
            payload = {"evseId": evse, "chargingProfile": wire}
        return await self.call(charger_id, "SetChargingProfile", payload)

    async def clear_charging_profile(
        self,
        charger_id: str,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
    ) -> Reply:
        """ClearChargingProfile by id, or by any of EVSE, purpose and stack level (none of
        them: every profile)."""
        version = self.version(charger_id)
        criteria: dict[str, Any] = {}
        if evse_id is not None:
            criteria["connectorId" if version == V16 else "evseId"] = _int("evse_id", evse_id)
        if purpose is not None:
            name = _text("purpose", purpose)
            criteria["chargingProfilePurpose"] = _PURPOSE[version].get(name, name)
        if stack_level is not None:
            criteria["stackLevel"] = _int("stack_level", stack_level)
        payload: dict[str, Any]
        if version == V16:
            payload = criteria
            if profile_id is not None:
                payload["id"] = _int("profile_id", profile_id)
        else:
            payload = {}
            if profile_id is not None:
                payload["chargingProfileId"] = _int("profile_id", profile_id)
            if criteria:
                payload["chargingProfileCriteria"] = criteria
        return await self.call(charger_id, "ClearChargingProfile", payload)

    async def get_composite_schedule(
        self, charger_id: str, evse_id: int, duration_s: int, unit: str | None = None
    ) -> Reply:
        """GetCompositeSchedule of an EVSE (0 = the station) for `duration_s` from now."""
        version = self.version(charger_id)
        payload: dict[str, Any] = {
            "connectorId" if version == V16 else "evseId": _int("evse_id", evse_id),
            "duration": _int("duration_s", duration_s),
        }
        if unit is not None:
            payload["chargingRateUnit"] = _text("unit", unit)
        return await self.call(charger_id, "GetCompositeSchedule", payload)

    async def get_charging_profiles(
        self,
        charger_id: str,
        request_id: int | None = None,
        evse_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
        profile_ids: list[int] | None = None,
        sources: list[str] | None = None,
        wait_s: float = 0.0,
    ) -> Reply:
        """2.0.1 GetChargingProfiles; with `wait_s` the ReportChargingProfiles parts that follow
        are collected into `Reply.reports`."""
        self._only(charger_id, V201, "GetChargingProfiles")
        criterion: dict[str, Any] = {}
        if purpose is not None:
            name = _text("purpose", purpose)
            criterion["chargingProfilePurpose"] = _PURPOSE[V201].get(name, name)
        if stack_level is not None:
            criterion["stackLevel"] = _int("stack_level", stack_level)
        if profile_ids is not None:
            if not isinstance(profile_ids, list | tuple):
                raise BadArguments(f"profile_ids: expected a list of integers ({profile_ids!r})")
            criterion["chargingProfileId"] = [_int("profile_ids", i) for i in profile_ids]
        if sources is not None:
            criterion["chargingLimitSource"] = _names("sources", sources)
        payload: dict[str, Any] = {
            "requestId": self.new_id() if request_id is None else _int("request_id", request_id),
            "chargingProfile": criterion,
        }
        if evse_id is not None:
            payload["evseId"] = _int("evse_id", evse_id)
        return await self._with_reports(
            charger_id, "GetChargingProfiles", payload, "ReportChargingProfiles", wait_s
        )

    # -- transactions --------------------------------------------------------------------------

    async def remote_start(
        self,
        charger_id: str,
        id_tag: str,
        evse_id: int | None = None,
        profile: Mapping[str, Any] | None = None,
        remote_id: int | None = None,
        token_type: str = "Central",
    ) -> Reply:
        """1.6 RemoteStartTransaction / 2.0.1 RequestStartTransaction for `id_tag` (on an EVSE,
        or one the charger picks), optionally with a charging profile (purpose defaults to
        TxProfile). 2.0.1: `remote_id` (remoteStartId) is handed out when not given, the token
        has type `token_type`."""
        version = self.version(charger_id)
        tag = _text("id_tag", id_tag)
        payload: dict[str, Any]
        if version == V16:
            if remote_id is not None:
                raise BadArguments("remote_id: OCPP 1.6 RemoteStartTransaction has none")
            payload = {"idTag": tag}
            if evse_id is not None:
                payload["connectorId"] = _int("evse_id", evse_id)
        else:
            payload = {
                "idToken": {"idToken": tag, "type": _text("token_type", token_type)},
                "remoteStartId": self.new_id()
                if remote_id is None
                else _int("remote_id", remote_id),
            }
            if evse_id is not None:
                payload["evseId"] = _int("evse_id", evse_id)
        if profile is not None:
            payload["chargingProfile"] = self.profile(charger_id, profile, "TxProfile")
        action = "RemoteStartTransaction" if version == V16 else "RequestStartTransaction"
        return await self.call(charger_id, action, payload)

    async def remote_stop(self, charger_id: str, transaction_id: str | int) -> Reply:
        """1.6 RemoteStopTransaction (an integer id) / 2.0.1 RequestStopTransaction."""
        if self.version(charger_id) == V16:
            payload: dict[str, Any] = {"transactionId": _int("transaction_id", transaction_id)}
            return await self.call(charger_id, "RemoteStopTransaction", payload)
        if isinstance(transaction_id, int) and not isinstance(transaction_id, bool):
            transaction_id = str(transaction_id)
        payload = {"transactionId": _text("transaction_id", transaction_id)}
        return await self.call(charger_id, "RequestStopTransaction", payload)

    # -- station control -----------------------------------------------------------------------

    async def reset(self, charger_id: str, kind: str = "soft", evse_id: int | None = None) -> Reply:
        """Reset. `kind`: soft, hard, immediate or on_idle (or the OCPP names). 1.6: soft ->
        Soft, hard/immediate -> Hard, no on_idle; 2.0.1: on_idle -> OnIdle, else Immediate;
        `evse_id` (2.0.1 only) resets one EVSE."""
        version = self.version(charger_id)
        name = _text("kind", kind)
        key = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()  # OnIdle -> on_idle
        wire = _RESET[version].get(key)
        if wire is None:
            choices = ", ".join(_RESET[version])
            raise BadArguments(f"kind: OCPP {version} Reset takes {choices} (got {kind!r})")
        payload: dict[str, Any] = {"type": wire}
        if evse_id is not None:
            if version == V16:
                raise BadArguments("evse_id: OCPP 1.6 resets the whole charge point only")
            payload["evseId"] = _int("evse_id", evse_id)
        return await self.call(charger_id, "Reset", payload)

    async def change_availability(
        self,
        charger_id: str,
        operative: bool,
        evse_id: int | None = None,
        connector_id: int | None = None,
    ) -> Reply:
        """ChangeAvailability of the station (no EVSE, or 0), an EVSE (1.6: a connector), or a
        2.0.1 EVSE's connector."""
        version = self.version(charger_id)
        status = "Operative" if _bool("operative", operative) else "Inoperative"
        evse = _opt_int("evse_id", evse_id)
        connector = _opt_int("connector_id", connector_id)
        if version == V16:
            if connector is not None and evse is not None and connector != evse:
                raise BadArguments("OCPP 1.6 has connectors only: give evse_id (the connector)")
            target = evse if evse is not None else (connector or 0)
            payload: dict[str, Any] = {"connectorId": target, "type": status}
            return await self.call(charger_id, "ChangeAvailability", payload)
        payload = {"operationalStatus": status}
        if evse:
            payload["evse"] = {"id": evse}
            if connector is not None:
                payload["evse"]["connectorId"] = connector
        elif connector is not None:
            raise BadArguments("connector_id needs evse_id")
        return await self.call(charger_id, "ChangeAvailability", payload)

    async def unlock(self, charger_id: str, evse_id: int, connector_id: int = 1) -> Reply:
        """UnlockConnector (1.6: the connector `evse_id`; 2.0.1: EVSE and connector)."""
        evse = _int("evse_id", evse_id)
        if self.version(charger_id) == V16:
            return await self.call(charger_id, "UnlockConnector", {"connectorId": evse})
        payload = {"evseId": evse, "connectorId": _int("connector_id", connector_id)}
        return await self.call(charger_id, "UnlockConnector", payload)

    async def clear_cache(self, charger_id: str) -> Reply:
        """ClearCache: empty the charger's authorisation cache."""
        return await self.call(charger_id, "ClearCache", {})

    async def trigger_message(
        self,
        charger_id: str,
        message: str,
        evse_id: int | None = None,
        connector_id: int | None = None,
    ) -> Reply:
        """TriggerMessage for `message` (the version's MessageTrigger name; 1.6
        DiagnosticsStatusNotification and 2.0.1 LogStatusNotification stand for each other)."""
        version = self.version(charger_id)
        name = _text("message", message)
        payload: dict[str, Any] = {"requestedMessage": _TRIGGER[version].get(name, name)}
        evse = _opt_int("evse_id", evse_id)
        if version == V16:
            if evse is not None:
                payload["connectorId"] = evse
        elif evse is not None:
            payload["evse"] = {"id": evse}
            if connector_id is not None:
                payload["evse"]["connectorId"] = _int("connector_id", connector_id)
        return await self.call(charger_id, "TriggerMessage", payload)

    # -- configuration -------------------------------------------------------------------------

    async def get_configuration(
        self, charger_id: str, keys: str | list[str] | None = None
    ) -> Reply:
        """1.6 GetConfiguration of `keys` (none: every key)."""
        self._only(charger_id, V16, "GetConfiguration", "use get_variables")
        payload: dict[str, Any] = {}
        if keys is not None:
            payload["key"] = _names("keys", keys)
        return await self.call(charger_id, "GetConfiguration", payload)

    async def change_configuration(self, charger_id: str, key: str, value: Any) -> Reply:
        """1.6 ChangeConfiguration of one key (the value as OCPP text, see `config_value`)."""
        self._only(charger_id, V16, "ChangeConfiguration", "use set_variables")
        payload = {"key": _text("key", key), "value": config_value(value)}
        return await self.call(charger_id, "ChangeConfiguration", payload)

    async def get_variables(self, charger_id: str, variables: Any) -> Reply:
        """2.0.1 GetVariables: one variable or a list (see `variable_ref` for the forms)."""
        self._only(charger_id, V201, "GetVariables", "use get_configuration")
        items = variables if isinstance(variables, list | tuple) else [variables]
        if not items:
            raise BadArguments("variables: name at least one Component.Variable")
        payload = {"getVariableData": [variable_ref(item) for item in items]}
        return await self.call(charger_id, "GetVariables", payload)

    async def set_variables(self, charger_id: str, values: Any) -> Reply:
        """2.0.1 SetVariables: {"Component.Variable": value, ...} or a list of objects with a
        `value` (see `variable_ref`)."""
        self._only(charger_id, V201, "SetVariables", "use change_configuration")
        if isinstance(values, Mapping):
            entries = [
                variable_ref({**_split(_text("values", name)), "value": value}, True)
                for name, value in values.items()
            ]
        elif isinstance(values, list | tuple):
            entries = [variable_ref(item, True) for item in values]
        else:
            raise BadArguments("values: expected {Component.Variable: value} or a list")
        if not entries:
            raise BadArguments("values: set at least one variable")
        return await self.call(charger_id, "SetVariables", {"setVariableData": entries})

    async def get_base_report(
        self,
        charger_id: str,
        report_base: str = "FullInventory",
        request_id: int | None = None,
        wait_s: float = 0.0,
    ) -> Reply:
        """2.0.1 GetBaseReport (FullInventory, ConfigurationInventory or SummaryInventory); with
        `wait_s` the NotifyReport parts that follow are collected into `Reply.reports`."""
        self._only(charger_id, V201, "GetBaseReport", "use get_configuration")
        payload = {
            "requestId": self.new_id() if request_id is None else _int("request_id", request_id),
            "reportBase": _text("report_base", report_base),
        }
        return await self._with_reports(
            charger_id, "GetBaseReport", payload, "NotifyReport", wait_s
        )

    # -- reservations and local authorisation --------------------------------------------------

    async def reserve_now(
        self,
        charger_id: str,
        id_tag: str,
        expiry: str | float = 900.0,
        evse_id: int | None = None,
        reservation_id: int | None = None,
        parent_id_tag: str | None = None,
        token_type: str = "ISO14443",
        connector_type: str | None = None,
    ) -> Reply:
        """ReserveNow for `id_tag` until `expiry` (ISO-8601, or seconds from the charger's now;
        default 15 min) on an EVSE (none: any; 1.6 connector 0). The reservation id is handed
        out when not given."""
        version = self.version(charger_id)
        tag = _text("id_tag", id_tag)
        rid = self.new_id() if reservation_id is None else _int("reservation_id", reservation_id)
        until = self.when(charger_id, "expiry", expiry)
        evse = _opt_int("evse_id", evse_id)
        payload: dict[str, Any]
        if version == V16:
            if connector_type is not None:
                raise BadArguments("connector_type: OCPP 1.6 ReserveNow has none")
            payload = {
                "connectorId": evse or 0,
                "expiryDate": until,
                "idTag": tag,
                "reservationId": rid,
            }
            if parent_id_tag is not None:
                payload["parentIdTag"] = _text("parent_id_tag", parent_id_tag)
        else:
            payload = {
                "id": rid,
                "expiryDateTime": until,
                "idToken": {"idToken": tag, "type": _text("token_type", token_type)},
            }
            if evse:
                payload["evseId"] = evse
            if connector_type is not None:
                payload["connectorType"] = _text("connector_type", connector_type)
            if parent_id_tag is not None:
                group = _text("parent_id_tag", parent_id_tag)
                payload["groupIdToken"] = {"idToken": group, "type": "Central"}
        return await self.call(charger_id, "ReserveNow", payload)

    async def cancel_reservation(self, charger_id: str, reservation_id: int) -> Reply:
        """CancelReservation."""
        payload = {"reservationId": _int("reservation_id", reservation_id)}
        return await self.call(charger_id, "CancelReservation", payload)

    async def send_local_list(
        self,
        charger_id: str,
        version: int,
        entries: Mapping[str, str | None] | None = None,
        full: bool = True,
        token_type: str = "ISO14443",
    ) -> Reply:
        """SendLocalList: `entries` maps id tags to a status (Accepted, Blocked, Expired,
        Invalid, ...) or None (a differential update removes that tag); `full` replaces the
        whole list (an empty one clears it)."""
        ocpp = self.version(charger_id)
        listed = _mapping("entries", entries or {})
        update = "Full" if _bool("full", full) else "Differential"
        items: list[dict[str, Any]] = []
        for tag, status in listed.items():
            tag = _text("entries", tag)
            if ocpp == V16:
                item: dict[str, Any] = {"idTag": tag}
                if status is not None:
                    item["idTagInfo"] = {"status": _text(f"entries[{tag}]", status)}
            else:
                item = {"idToken": {"idToken": tag, "type": _text("token_type", token_type)}}
                if status is not None:
                    item["idTokenInfo"] = {"status": _text(f"entries[{tag}]", status)}
            items.append(item)
        payload: dict[str, Any]
        if ocpp == V16:
            payload = {"listVersion": _int("version", version), "updateType": update}
            if items:
                payload["localAuthorizationList"] = items
        else:
            payload = {"versionNumber": _int("version", version), "updateType": update}
            if items:  # 2.0.1 wants the field absent, not empty, for an empty list
                payload["localAuthorizationList"] = items
        return await self.call(charger_id, "SendLocalList", payload)

    async def get_local_list_version(self, charger_id: str) -> Reply:
        """GetLocalListVersion."""
        return await self.call(charger_id, "GetLocalListVersion", {})

    # -- firmware, diagnostics, data -----------------------------------------------------------

    async def update_firmware(
        self,
        charger_id: str,
        location: str,
        retrieve: str | float = 0.0,
        install: str | float | None = None,
        retries: int | None = None,
        retry_interval_s: int | None = None,
        request_id: int | None = None,
        signing_certificate: str | None = None,
        signature: str | None = None,
    ) -> Reply:
        """UpdateFirmware from `location`, retrieved at `retrieve` (ISO-8601, or seconds from
        the charger's now; default now). 2.0.1 only: `install` time, request id (handed out when
        not given), signing certificate and signature."""
        version = self.version(charger_id)
        where = _text("location", location)
        at = self.when(charger_id, "retrieve", retrieve)
        payload: dict[str, Any]
        if version == V16:
            extras = {
                "install": install,
                "request_id": request_id,
                "signing_certificate": signing_certificate,
                "signature": signature,
            }
            given = [name for name, value in extras.items() if value is not None]
            if given:
                raise BadArguments(f"{given[0]}: OCPP 1.6 UpdateFirmware has none")
            payload = {"location": where, "retrieveDate": at}
        else:
            firmware: dict[str, Any] = {"location": where, "retrieveDateTime": at}
            if install is not None:
                firmware["installDateTime"] = self.when(charger_id, "install", install)
            if signing_certificate is not None:
                firmware["signingCertificate"] = _text("signing_certificate", signing_certificate)
            if signature is not None:
                firmware["signature"] = _text("signature", signature)
            payload = {
                "requestId": self.new_id()
                if request_id is None
                else _int("request_id", request_id),
                "firmware": firmware,
            }
        _retries(payload, retries, retry_interval_s)
        return await self.call(charger_id, "UpdateFirmware", payload)

    async def get_diagnostics(
        self,
        charger_id: str,
        location: str,
        since: str | float | None = None,
        until: str | float | None = None,
        retries: int | None = None,
        retry_interval_s: int | None = None,
    ) -> Reply:
        """Upload diagnostics to `location`: 1.6 GetDiagnostics, 2.0.1 GetLog of the
        DiagnosticsLog. `since`/`until` bound the period (ISO-8601, or seconds from the charger's
        now: -3600 is an hour ago)."""
        if self.version(charger_id) == V201:
            return await self.get_log(
                charger_id, location, "DiagnosticsLog", None, since, until, retries,
                retry_interval_s,
            )  # fmt: skip
        payload: dict[str, Any] = {"location": _text("location", location)}
        if since is not None:
            payload["startTime"] = self.when(charger_id, "since", since)
        if until is not None:
            payload["stopTime"] = self.when(charger_id, "until", until)
        _retries(payload, retries, retry_interval_s)
        return await self.call(charger_id, "GetDiagnostics", payload)

    async def get_log(
        self,
        charger_id: str,
        location: str,
        log_type: str = "DiagnosticsLog",
        request_id: int | None = None,
        since: str | float | None = None,
        until: str | float | None = None,
        retries: int | None = None,
        retry_interval_s: int | None = None,
    ) -> Reply:
        """2.0.1 GetLog (DiagnosticsLog or SecurityLog) uploaded to `location`."""
        self._only(charger_id, V201, "GetLog", "use get_diagnostics")
        log: dict[str, Any] = {"remoteLocation": _text("location", location)}
        if since is not None:
            log["oldestTimestamp"] = self.when(charger_id, "since", since)
        if until is not None:
            log["latestTimestamp"] = self.when(charger_id, "until", until)
        payload: dict[str, Any] = {
            "log": log,
            "logType": _text("log_type", log_type),
            "requestId": self.new_id() if request_id is None else _int("request_id", request_id),
        }
        _retries(payload, retries, retry_interval_s)
        return await self.call(charger_id, "GetLog", payload)

    async def data_transfer(
        self,
        charger_id: str,
        vendor_id: str,
        message_id: str | None = None,
        data: Any = None,
    ) -> Reply:
        """DataTransfer. 1.6 data is text: anything else is sent as its JSON text; 2.0.1 takes
        any JSON value."""
        payload: dict[str, Any] = {"vendorId": _text("vendor_id", vendor_id)}
        if message_id is not None:
            payload["messageId"] = _text("message_id", message_id)
        if data is not None:
            if self.version(charger_id) == V16 and not isinstance(data, str):
                data = orjson.dumps(data).decode()
            payload["data"] = data
        return await self.call(charger_id, "DataTransfer", payload)


def _retries(payload: dict[str, Any], retries: Any, interval: Any) -> None:
    if retries is not None:
        payload["retries"] = _int("retries", retries)
    if interval is not None:
        payload["retryInterval"] = _int("retry_interval_s", interval)


def _split(name: str) -> dict[str, Any]:
    match = _VARIABLE.fullmatch(name.strip())
    if match is None:
        raise BadArguments(
            f"variable {name!r}: expected Component[:instance][@evse[:connector]]"
            ".Variable[:instance]"
        )
    return {k: v for k, v in match.groupdict().items() if v is not None}


__all__ = [
    "BadArguments",
    "CallFailed",
    "CommandError",
    "CsmsCommands",
    "NotConnected",
    "Operation",
    "Reply",
    "UnknownCharger",
    "config_value",
    "variable_ref",
]
