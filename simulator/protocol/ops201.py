"""OCPP 2.0.1 CSMS-initiated operations of one virtual charger: every action a CSMS may send,
answered as the specification says and carried out on the station through its ChargerControl.

Handlers parse the (already schema-valid) payload, translate OCPP ids and timestamps into the
station's terms, run the command inside the simulation (`clock.execute`), and answer. Messages
an operation causes by itself (NotifyReport, ReportChargingProfiles, triggered messages,
FirmwareStatusNotification, LogStatusNotification, ReservationStatusUpdate, SignCertificate)
are queued on the link after the answer has gone out; everything the station does as a
consequence (StatusNotification, TransactionEvent) flows from its own events as usual.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import orjson
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from ocpp.v201.enums import (
    CertificateSigningUseEnumType,
    ChargingLimitSourceEnumType,
    FirmwareStatusEnumType,
    MessageTriggerEnumType,
    UploadLogStatusEnumType,
)

from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    RecurrencyKind,
    SchedulePeriod,
    validity_overlaps,
)
from simulator.charger import FirmwareStatus, ResetKind, UploadStatus
from simulator.link import LinkState
from simulator.protocol import device_model as dm
from simulator.protocol.base import ChargerIdentity, Outbound, Timestamps
from simulator.protocol.v201 import METER_MEASURANDS, V201Adapter
from simulator.rpc import Handler, OcppError, RpcConnection

if TYPE_CHECKING:
    from simulator.charger import ChargerControl, ChargerSettings
    from simulator.link import ChargerLink
    from simulator.station import Connector, Station

T = TypeVar("T")
Payload = dict[str, Any]

_ACCEPTED = "Accepted"
_REJECTED = "Rejected"
_EXTERNAL = "ChargingStationExternalConstraints"
_CSO = ChargingLimitSourceEnumType.cso.value
_M = MessageTriggerEnumType

# Firmware states after which an update is over: a triggered notification then says Idle (L01).
_FIRMWARE_DONE = frozenset(
    {
        FirmwareStatus.IDLE,
        FirmwareStatus.INSTALLED,
        FirmwareStatus.DOWNLOAD_FAILED,
        FirmwareStatus.INSTALLATION_FAILED,
    }
)
_FIRMWARE_STATUS_VALUES = frozenset(s.value for s in FirmwareStatusEnumType)
# The charger's upload states in 2.0.1 words (UploadLogStatusEnumType).
_UPLOAD_STATUS: dict[UploadStatus, str] = {
    UploadStatus.IDLE: UploadLogStatusEnumType.idle.value,
    UploadStatus.UPLOADING: UploadLogStatusEnumType.uploading.value,
    UploadStatus.UPLOADED: UploadLogStatusEnumType.uploaded.value,
    UploadStatus.UPLOAD_FAILED: UploadLogStatusEnumType.upload_failure.value,
}

# When UpdateFirmware / GetLog leave retries and retryInterval to the charger.
DEFAULT_RETRIES = 2
DEFAULT_RETRY_INTERVAL_S = 60.0


# -- charging profiles: payload <-> model ----------------------------------------------------------


class ProfileError(ValueError):
    """A charging profile the charger refuses; the message is the statusInfo reasonCode."""


def _seconds(stamps: Timestamps, stamp: str) -> float:
    try:
        return stamps.seconds(stamp)
    except ValueError:
        raise ProfileError("InvalidSchedule") from None


def profile_from_payload(
    payload: Payload, evse_id: int, stamps: Timestamps, tx_key: str | None
) -> ChargingProfile:
    """The model's ChargingProfile for a 2.0.1 ChargingProfileType on `evse_id`.

    `tx_key` is the station's key (str(seq)) of the transaction the profile names, if any.
    Raises ProfileError for what K01 makes the charger reject: the CSMS-forbidden purpose
    ChargingStationExternalConstraints, more than one schedule (only ISO 15118 chargers take
    three), phaseToUse (this charger cannot switch 3 to 1 phase), an Absolute or Recurring
    profile without startSchedule or a Relative one with it (K01.FR.40/41), and anything the
    model finds inconsistent (periods not starting at 0 or not increasing, negative limits)."""
    purpose_name = payload["chargingProfilePurpose"]
    if purpose_name == _EXTERNAL:
        raise ProfileError("InvalidProfile")
    purpose = ChargingProfilePurpose.parse(purpose_name)
    kind = ChargingProfileKind(payload["chargingProfileKind"])
    schedules = payload["chargingSchedule"]
    if len(schedules) != 1:
        raise ProfileError("InvalidSchedule")
    schedule = schedules[0]
    start = schedule.get("startSchedule")
    if (kind is ChargingProfileKind.RELATIVE) == (start is not None):
        raise ProfileError("InvalidSchedule")
    periods = []
    for period in schedule["chargingSchedulePeriod"]:
        if "phaseToUse" in period:
            raise ProfileError("InvalidSchedule")
        periods.append(
            SchedulePeriod(
                float(period["startPeriod"]), float(period["limit"]), period.get("numberPhases")
            )
        )
    recurrency = payload.get("recurrencyKind")
    valid_from = payload.get("validFrom")
    valid_to = payload.get("validTo")
    duration = schedule.get("duration")
    try:
        return ChargingProfile(
            profile_id=payload["id"],
            stack_level=payload["stackLevel"],
            purpose=purpose,
            kind=kind,
            schedule=ChargingSchedule(
                ChargingRateUnit(schedule["chargingRateUnit"]),
                tuple(periods),
                duration_s=None if duration is None else float(duration),
                start_s=None if start is None else _seconds(stamps, start),
                min_charging_rate=schedule.get("minChargingRate"),
            ),
            recurrency=None if recurrency is None else RecurrencyKind(recurrency),
            valid_from_s=None if valid_from is None else _seconds(stamps, valid_from),
            valid_to_s=None if valid_to is None else _seconds(stamps, valid_to),
            transaction_id=tx_key,
            evse_id=evse_id,
        )
    except ProfileError:
        raise
    except ValueError:
        raise ProfileError("InvalidSchedule") from None


def _periods(schedule: ChargingSchedule, composite: bool) -> list[Payload]:
    """ChargingSchedulePeriodType list with whole-second starts (the schema's integers).

    A composite schedule's limits are rounded down to 0.1 (what the charger reports must never
    allow more than it draws), a period starting in the same second as the one before replaces
    it, and neighbours that became equal merge. An installed profile's limits are reported as
    the CSMS set them."""
    out: list[Payload] = []
    for period in schedule.periods:
        limit = period.limit
        if composite:
            limit = math.floor(limit * 10.0 + 1e-9) / 10.0
        item: Payload = {"startPeriod": round(period.start_s), "limit": limit}
        if period.number_phases is not None:
            item["numberPhases"] = period.number_phases
        if out and out[-1]["startPeriod"] == item["startPeriod"]:
            out.pop()
        if composite and out and _same_limit(out[-1], item):
            continue
        out.append(item)
    return out


def _same_limit(a: Payload, b: Payload) -> bool:
    return bool(a["limit"] == b["limit"] and a.get("numberPhases") == b.get("numberPhases"))


def profile_to_payload(
    profile: ChargingProfile, schedule_id: int, stamps: Timestamps, transaction_id: str | None
) -> Payload:
    """The ChargingProfileType of an installed profile (ReportChargingProfiles)."""
    schedule = profile.schedule
    sched: Payload = {
        "id": schedule_id,
        "chargingRateUnit": schedule.unit.value,
        "chargingSchedulePeriod": _periods(schedule, False),
    }
    if schedule.start_s is not None:
        sched["startSchedule"] = stamps.iso(schedule.start_s)
    if schedule.duration_s is not None:
        sched["duration"] = round(schedule.duration_s)
    if schedule.min_charging_rate is not None:
        sched["minChargingRate"] = schedule.min_charging_rate
    out: Payload = {
        "id": profile.profile_id,
        "stackLevel": profile.stack_level,
        "chargingProfilePurpose": profile.purpose.value,
        "chargingProfileKind": profile.kind.value,
        "chargingSchedule": [sched],
    }
    if profile.recurrency is not None:
        out["recurrencyKind"] = profile.recurrency.value
    if profile.valid_from_s is not None:
        out["validFrom"] = stamps.iso(profile.valid_from_s)
    if profile.valid_to_s is not None:
        out["validTo"] = stamps.iso(profile.valid_to_s)
    if transaction_id is not None:
        out["transactionId"] = transaction_id
    return out


def composite_payload(
    schedule: ChargingSchedule, evse_id: int, duration: int, stamps: Timestamps, now: float
) -> Payload:
    """CompositeScheduleType of a composite schedule computed from `now`."""
    return {
        "evseId": evse_id,
        "duration": duration,
        "scheduleStart": stamps.iso(now),
        "chargingRateUnit": schedule.unit.value,
        "chargingSchedulePeriod": _periods(schedule, True),
    }


def _status(status: str, reason: str | None = None) -> Payload:
    out: Payload = {"status": status}
    if reason is not None:
        out["statusInfo"] = {"reasonCode": reason}
    return out


# -- the operations --------------------------------------------------------------------------------


class _Handlers(Mapping[str, Handler]):
    """The handler table of one connection: a view onto the class-level action table that
    binds methods on lookup, so a charger costs one small object instead of a dict."""

    __slots__ = ("_ops",)

    def __init__(self, ops: V201Operations) -> None:
        self._ops = ops

    def __getitem__(self, action: str) -> Handler:
        name = V201Operations.ACTIONS[action]
        handler: Handler = getattr(self._ops, name)
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(V201Operations.ACTIONS)

    def __len__(self) -> int:
        return len(V201Operations.ACTIONS)


class V201Operations:
    """Answers every CSMS-initiated OCPP 2.0.1 action for one charger and turns the charger's
    own reports (firmware, log upload, reservation end, reboot) into messages on its link.

    It is the charger's `ChargerListener` and the `DeviceHost` of its device model. Per-charger
    state is a handful of slots: values the device model keeps that have no settings field
    (created on the first write), the last firmware and log request ids, the schedule ids of
    installed profiles (the model does not keep them), and the EC key of certificate signing
    requests (made on the first request).
    """

    __slots__ = (
        "_cancelling",
        "_firmware_request",
        "_kept",
        "_key",
        "_log_request",
        "_reboot_rpc",
        "_schedule_ids",
        "adapter",
        "control",
        "link",
    )

    ACTIONS: ClassVar[dict[str, str]] = {
        "RequestStartTransaction": "request_start_transaction",
        "RequestStopTransaction": "request_stop_transaction",
        "Reset": "reset",
        "ChangeAvailability": "change_availability",
        "UnlockConnector": "unlock_connector",
        "ClearCache": "clear_cache",
        "GetVariables": "get_variables",
        "SetVariables": "set_variables",
        "GetBaseReport": "get_base_report",
        "TriggerMessage": "trigger_message",
        "ReserveNow": "reserve_now",
        "CancelReservation": "cancel_reservation",
        "SendLocalList": "send_local_list",
        "GetLocalListVersion": "get_local_list_version",
        "UpdateFirmware": "update_firmware",
        "GetLog": "get_log",
        "DataTransfer": "data_transfer",
        "SetChargingProfile": "set_charging_profile",
        "ClearChargingProfile": "clear_charging_profile",
        "GetChargingProfiles": "get_charging_profiles",
        "GetCompositeSchedule": "get_composite_schedule",
    }

    def __init__(self, link: ChargerLink, control: ChargerControl) -> None:
        adapter = link.adapter
        if not isinstance(adapter, V201Adapter):
            raise TypeError("V201Operations needs a link with a V201Adapter")
        self.link = link
        self.control = control
        self.adapter = adapter
        self._kept: dict[str, str] | None = None
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._firmware_request: int | None = None
        self._log_request: int | None = None
        self._schedule_ids: dict[int, int] | None = None
        self._reboot_rpc: RpcConnection | None = None
        self._cancelling: int | None = None
        self._apply_measurands(control.settings.measurands)

    def handlers(self) -> Mapping[str, Handler]:
        return _Handlers(self)

    # -- DeviceHost --------------------------------------------------------------------------------

    @property
    def settings(self) -> ChargerSettings:
        return self.control.settings

    @property
    def station(self) -> Station:
        return self.control.station

    @property
    def identity(self) -> ChargerIdentity:
        return self.adapter.identity

    def now_iso(self) -> str:
        return self.adapter.stamps.iso(self.station.env.now)

    def heartbeat_s(self) -> float:
        return self.link.heartbeat_s

    def set_heartbeat(self, seconds: float) -> None:
        self.link.set_heartbeat(seconds)

    def set_meter_interval(self, seconds: float) -> None:
        self.control.set_meter_interval(seconds)

    def set_measurands(self, measurands: tuple[str, ...]) -> None:
        self.control.settings.measurands = measurands
        self._apply_measurands(measurands)

    def profile_count(self) -> int:
        return len(self.control.profiles())

    def kept(self, key: str, default: str) -> str:
        kept = self._kept
        return default if kept is None else kept.get(key, default)

    def keep(self, key: str, value: str) -> None:
        if self._kept is None:
            self._kept = {}
        self._kept[key] = value

    def _apply_measurands(self, measurands: tuple[str, ...]) -> None:
        # None is the adapter's fast path: every measurand, no filtering per sample.
        everything = set(measurands) >= set(METER_MEASURANDS)
        self.adapter.measurands = None if everything else frozenset(measurands)

    # -- ChargerListener ---------------------------------------------------------------------------

    def firmware_status(self, status: FirmwareStatus, request_id: int | None, t: float) -> None:
        if request_id is not None:
            self._firmware_request = request_id
        if status.value in _FIRMWARE_STATUS_VALUES:
            self._notify(self.adapter.firmware_status(status.value, request_id, t))

    def upload_status(self, status: UploadStatus, request_id: int | None, t: float) -> None:
        if request_id is not None:
            self._log_request = request_id
        self._notify(self.adapter.log_status(_UPLOAD_STATUS[status], request_id, t))

    def reservation_ended(self, reservation_id: int, reason: str, t: float) -> None:
        if reservation_id == self._cancelling:
            # H02: the CSMS cancelled it and knows; ReservationStatusUpdate is for reservations
            # that end on the charger's side (expired, or removed by the charger).
            return
        self._notify(self.adapter.reservation_status(reservation_id, reason, t))

    def rebooting(self, downtime_s: float) -> None:
        # The connection in use now is the one the reboot closes: whatever the charger reports
        # from here on waits for the next boot, even if the (wall-clock) close comes later than
        # the end of a short (simulated) reboot.
        self._reboot_rpc = self.link.rpc
        self.link.rebooting(downtime_s)

    def settings_changed(self) -> None:
        settings = self.control.settings
        if settings.heartbeat_s != self.link.heartbeat_s:
            self.link.set_heartbeat(settings.heartbeat_s)
        self._apply_measurands(settings.measurands)

    def _notify(self, message: Outbound) -> None:
        """A notification of the charger's own: now if booted, else right after the next boot
        (a firmware update reports Installed once the new firmware has booted)."""
        link = self.link
        if self._reboot_rpc is not None and link.rpc is not self._reboot_rpc:
            self._reboot_rpc = None  # up again on a new connection
        if link.state is LinkState.READY and self._reboot_rpc is None:
            link.send([message])
        else:
            link.send_after_boot([message])

    # -- helpers -----------------------------------------------------------------------------------

    def _run(self, command: Callable[[], T]) -> asyncio.Future[T]:
        """Run `command` inside the simulation; await the result."""
        return self.link.ctx.clock.execute(command)

    def _later(self, command: Callable[[], None]) -> None:
        """Run `command` inside the simulation once the current answer is out: follow-up
        messages must reach the CSMS after the response that announces them (F06.FR.04)."""
        self.link.ctx.clock.call_soon(command)

    def _connector(self, evse_id: int) -> Connector | None:
        connectors = self.station.connectors
        if 1 <= evse_id <= len(connectors):
            return connectors[evse_id - 1]
        return None

    def _send_now(self, messages: list[Outbound]) -> None:
        self.link.send(messages)

    # -- transactions (F01-F05) --------------------------------------------------------------------

    async def request_start_transaction(self, p: Payload) -> Payload:
        evse_id: int | None = p.get("evseId")
        if evse_id is not None and self._connector(evse_id) is None:
            return _status(_REJECTED, "UnknownEvse")
        profile: ChargingProfile | None = None
        given = p.get("chargingProfile")
        if given is not None and self.settings.smart_charging_enabled:
            # F01.FR.26 / K05: only a TxProfile, not naming a transaction (there is none yet).
            if given["chargingProfilePurpose"] != "TxProfile" or "transactionId" in given:
                return _status(_REJECTED, "InvalidProfile")
            try:
                profile = profile_from_payload(given, evse_id or 0, self.adapter.stamps, None)
            except ProfileError as exc:
                return _status(_REJECTED, str(exc))
            if not self._profile_limits_ok(profile):
                return _status(_REJECTED, "InvalidProfile")
        remote_id: int = p["remoteStartId"]
        id_tag: str = p["idToken"]["idToken"]

        def start() -> tuple[int | None, str | None]:
            chosen = self.control.remote_start(id_tag, evse_id, profile, remote_id)
            if chosen is None:
                return None, None
            connector = self._connector(chosen)
            tx = None if connector is None else connector.tx
            # F01: an EV already plugged in starts at once; the answer then names the
            # transaction.
            if tx is not None and tx.remote_id == remote_id:
                return chosen, self.adapter.transaction_id(tx)
            return chosen, None

        chosen, transaction_id = await self._run(start)
        if chosen is None:
            return _status(_REJECTED)
        if profile is not None and given is not None:
            self._remember_schedule(profile.profile_id, given["chargingSchedule"][0]["id"])
        out = _status(_ACCEPTED)
        if transaction_id is not None:
            out["transactionId"] = transaction_id
        return out

    async def request_stop_transaction(self, p: Payload) -> Payload:
        seq = self.adapter.transaction_seq(p["transactionId"])
        if seq is None:
            return _status(_REJECTED)  # F03.FR.08: not one of ours
        stopped: bool = await self._run(lambda: self.control.remote_stop(seq))
        return _status(_ACCEPTED if stopped else _REJECTED)

    async def unlock_connector(self, p: Payload) -> Payload:
        evse_id: int = p["evseId"]
        if self._connector(evse_id) is None or p["connectorId"] != 1:
            return _status("UnknownConnector")
        # F05: a 2.0.1 unlock never ends a transaction; one in progress refuses it.
        status: str = await self._run(lambda: self.control.unlock(evse_id, False))
        return _status(status)

    # -- provisioning and availability (B11-B12, G03, C11) -----------------------------------------

    async def reset(self, p: Payload) -> Payload:
        evse_id: int | None = p.get("evseId")
        if evse_id is not None and self._connector(evse_id) is None:
            return _status(_REJECTED, "UnknownEvse")
        kind: ResetKind = "immediate" if p["type"] == "Immediate" else "on_idle"
        status: str = await self._run(lambda: self.control.reset(kind, evse_id))
        return _status(status)

    async def change_availability(self, p: Payload) -> Payload:
        operative = p["operationalStatus"] == "Operative"
        evse = p.get("evse")
        evse_id: int | None = None
        if evse is not None and evse["id"] != 0:
            evse_id = evse["id"]
            if self._connector(evse["id"]) is None or evse.get("connectorId", 1) != 1:
                return _status(_REJECTED, "UnknownEvse")
        status: str = await self._run(lambda: self.control.change_availability(evse_id, operative))
        return _status(status)

    async def clear_cache(self, p: Payload) -> Payload:
        cleared: bool = await self._run(self.control.clear_cache)
        return _status(_ACCEPTED if cleared else _REJECTED)

    # -- device model (B05-B08) --------------------------------------------------------------------

    @staticmethod
    def _check_size(p: Payload, items: int, max_items: int) -> None:
        if items > max_items:
            raise OcppError("OccurrenceConstraintViolation", f"more than {max_items} items")
        if len(orjson.dumps(p)) > dm.BYTES_PER_MESSAGE:
            raise OcppError("FormatViolation", f"longer than {dm.BYTES_PER_MESSAGE} bytes")

    async def get_variables(self, p: Payload) -> Payload:
        items = p["getVariableData"]
        self._check_size(p, len(items), dm.ITEMS_PER_GET_VARIABLES)
        results = await self._run(lambda: [dm.get_variable(self, item) for item in items])
        return {"getVariableResult": results}

    async def set_variables(self, p: Payload) -> Payload:
        items = p["setVariableData"]
        self._check_size(p, len(items), dm.ITEMS_PER_SET_VARIABLES)
        results = await self._run(lambda: [dm.set_variable(self, item) for item in items])
        return {"setVariableResult": results}

    async def get_base_report(self, p: Payload) -> Payload:
        request_id: int = p["requestId"]
        base = dm.ReportBase(p["reportBase"])
        data: list[Payload] = await self._run(lambda: dm.report_data(self, base))
        if not data:
            return _status("EmptyResultSet")

        def send() -> None:
            now = self.station.env.now
            self._send_now(self.adapter.notify_reports(request_id, data, dm.ITEMS_PER_REPORT, now))

        self._later(send)
        return _status(_ACCEPTED)

    # -- TriggerMessage (F06) ----------------------------------------------------------------------

    async def trigger_message(self, p: Payload) -> Payload:
        requested = p["requestedMessage"]
        evse = p.get("evse")
        if requested == _M.publish_firmware_status_notification.value:
            # Only a Local Controller publishes firmware (L03); a charger does not.
            return _status("NotImplemented")
        if requested == _M.boot_notification.value:
            if self.link.state is LinkState.READY:
                return _status(_REJECTED)  # F06.FR.17: already accepted
            # Pending: boot again now, saying it was triggered.
            self.control.boot_reason = "Triggered"
            self.link.boot_now()
            return _status(_ACCEPTED)
        status: str = await self._run(lambda: self._trigger_check(requested, evse))
        if status == _ACCEPTED:
            self._later(lambda: self._trigger_send(requested, evse))
        return _status(status)

    def _triggered_connectors(self, evse: Payload | None) -> list[Connector]:
        if evse is None:
            return list(self.station.connectors)
        connector = self._connector(evse["id"])
        return [] if connector is None else [connector]

    def _aligned_measurands(self) -> frozenset[str]:
        text = self.kept(dm.ALIGNED_MEASURANDS_KEY, dm.DEFAULT_ALIGNED_MEASURANDS)
        return frozenset(m for m in text.split(",") if m)

    def _trigger_check(self, requested: str, evse: Payload | None) -> str:
        """Whether the requested message can be sent now (inside the simulation)."""
        if requested == _M.status_notification.value:
            # F06.FR.12: a connector must be named.
            if evse is None or evse.get("connectorId") != 1 or self._connector(evse["id"]) is None:
                return _REJECTED
            return _ACCEPTED
        if requested == _M.meter_values.value:
            connectors = self._triggered_connectors(evse)
            if not connectors or not self._aligned_measurands():
                return _REJECTED
            return _ACCEPTED
        if requested == _M.transaction_event.value:
            connectors = self._triggered_connectors(evse)
            running = any(c.tx is not None and c.tx.open for c in connectors)
            return _ACCEPTED if running else _REJECTED
        return _ACCEPTED  # Heartbeat, status notifications, certificate requests

    def _trigger_send(self, requested: str, evse: Payload | None) -> None:
        adapter, now = self.adapter, self.station.env.now
        out: list[Outbound] = []
        if requested == _M.heartbeat.value:
            out.append(adapter.heartbeat(now))
        elif requested == _M.status_notification.value:
            out.extend(adapter.connector_status(c, now) for c in self._triggered_connectors(evse))
        elif requested == _M.meter_values.value:
            measurands = self._aligned_measurands()
            for connector in self._triggered_connectors(evse):
                message = adapter.meter_values(connector, connector.sample(now), measurands, now)
                if message is not None:
                    out.append(message)
        elif requested == _M.transaction_event.value:
            for connector in self._triggered_connectors(evse):
                tx = connector.tx
                if tx is not None and tx.open:
                    sample = connector.sample(now)
                    out.append(adapter.triggered_transaction_event(connector, tx, sample, now))
        elif requested == _M.firmware_status_notification.value:
            state = self.control.firmware_state
            if state in _FIRMWARE_DONE:
                out.append(adapter.firmware_status(FirmwareStatus.IDLE.value, None, now))
            else:
                out.append(adapter.firmware_status(state.value, self._firmware_request, now))
        elif requested == _M.log_status_notification.value:
            if self.control.upload_state is UploadStatus.UPLOADING:
                uploading = _UPLOAD_STATUS[UploadStatus.UPLOADING]
                out.append(adapter.log_status(uploading, self._log_request, now))
            else:
                out.append(adapter.log_status(_UPLOAD_STATUS[UploadStatus.IDLE], None, now))
        elif requested == _M.sign_charging_station_certificate.value:
            use = CertificateSigningUseEnumType.charging_station_certificate.value
            out.append(adapter.sign_certificate(self.csr(use), use, now))
        elif requested == _M.sign_v2g_certificate.value:
            use = CertificateSigningUseEnumType.v2g_certificate.value
            out.append(adapter.sign_certificate(self.csr(use), use, now))
        elif requested == _M.sign_combined_certificate.value:
            out.append(adapter.sign_certificate(self.csr(None), None, now))
        self._send_now(out)

    def csr(self, use: str | None) -> str:
        """A PEM certificate signing request made with this charger's EC P-256 key (A02/A03):
        the station certificate names its serial number, a V2G one the charger id with the
        CPO domain component; both carry SecurityCtrlr.OrganizationName."""
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
        organization = self.kept(dm.ORGANIZATION_KEY, dm.DEFAULT_ORGANIZATION)
        v2g = use == CertificateSigningUseEnumType.v2g_certificate.value
        common_name = self.identity.charger_id if v2g else self.identity.serial
        names = [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization[:64]),
        ]
        if v2g:
            names.append(x509.NameAttribute(NameOID.DOMAIN_COMPONENT, "CPO"))
        request = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name(names))
            .sign(self._key, hashes.SHA256())
        )
        return request.public_bytes(serialization.Encoding.PEM).decode("ascii")

    # -- reservations (H01-H04) --------------------------------------------------------------------

    async def reserve_now(self, p: Payload) -> Payload:
        evse_id: int | None = p.get("evseId")
        if evse_id is not None and self._connector(evse_id) is None:
            return _status(_REJECTED, "UnknownEvse")
        wanted_type = p.get("connectorType")
        if wanted_type is not None and wanted_type != dm.connector_type(self.station):
            return _status(_REJECTED, "UnknownConnectorType")
        reservation_id: int = p["id"]
        id_tag: str = p["idToken"]["idToken"]
        try:
            expiry_s = self.adapter.stamps.seconds(p["expiryDateTime"])
        except ValueError:
            return _status(_REJECTED, "InvalidValue")

        def reserve() -> str:
            if expiry_s <= self.station.env.now:
                return _REJECTED  # already expired
            return self.control.reserve(reservation_id, evse_id, id_tag, expiry_s)

        status: str = await self._run(reserve)
        return _status(status)

    async def cancel_reservation(self, p: Payload) -> Payload:
        reservation_id: int = p["reservationId"]

        def cancel() -> bool:
            self._cancelling = reservation_id
            try:
                return self.control.cancel_reservation(reservation_id)
            finally:
                self._cancelling = None

        removed = await self._run(cancel)
        return _status(_ACCEPTED if removed else _REJECTED)

    # -- local authorisation list (D01-D02) --------------------------------------------------------

    async def send_local_list(self, p: Payload) -> Payload:
        entries_in = p.get("localAuthorizationList") or []
        if len(entries_in) > dm.LOCAL_LIST_ITEMS_PER_MESSAGE:
            raise OcppError(
                "OccurrenceConstraintViolation",
                f"more than {dm.LOCAL_LIST_ITEMS_PER_MESSAGE} entries",
            )
        full = p["updateType"] == "Full"
        entries: dict[str, str | None] = {}
        for entry in entries_in:
            info = entry.get("idTokenInfo")
            entries[entry["idToken"]["idToken"]] = None if info is None else info["status"]
        version: int = p["versionNumber"]
        status: str = await self._run(lambda: self.control.send_local_list(version, full, entries))
        if status == "NotSupported":
            return _status("Failed", "NotEnabled")  # LocalAuthListCtrlr.Enabled is false
        return _status(status)

    async def get_local_list_version(self, p: Payload) -> Payload:
        version: int = await self._run(self.control.local_list_version)
        return {"versionNumber": version}

    # -- firmware and logs (L01, N01) --------------------------------------------------------------

    async def update_firmware(self, p: Payload) -> Payload:
        firmware = p["firmware"]
        stamps = self.adapter.stamps
        certificate = firmware.get("signingCertificate")
        if certificate is not None and not self._certificate_valid(certificate):
            return _status("InvalidCertificate")  # L01.FR.02
        try:
            retrieve_s = stamps.seconds(firmware["retrieveDateTime"])
            install = firmware.get("installDateTime")
            install_s = None if install is None else stamps.seconds(install)
        except ValueError:
            return _status(_REJECTED, "InvalidValue")
        request_id: int = p["requestId"]
        retries: int = p.get("retries", DEFAULT_RETRIES)
        interval = float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S))
        signed = certificate is not None or "signature" in firmware
        location: str = firmware["location"]

        def update() -> str:
            return self.control.update_firmware(
                location, retrieve_s, install_s, retries, interval, request_id, signed
            )

        status: str = await self._run(update)
        if status != _REJECTED:
            self._firmware_request = request_id
        return _status(status)

    def _certificate_valid(self, pem: str) -> bool:
        """A signing certificate must be a PEM X.509 certificate valid at the charger's time."""
        try:
            cert = x509.load_pem_x509_certificate(pem.encode())
        except ValueError:
            return False
        now = datetime.fromisoformat(self.now_iso().replace("Z", "+00:00"))
        return bool(cert.not_valid_before_utc <= now.astimezone(UTC) <= cert.not_valid_after_utc)

    async def get_log(self, p: Payload) -> Payload:
        request_id: int = p["requestId"]
        location: str = p["log"]["remoteLocation"]
        retries: int = p.get("retries", DEFAULT_RETRIES)
        interval = float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S))
        kind: str = p["logType"]

        def upload() -> tuple[bool, str]:
            busy = self.control.upload_state is UploadStatus.UPLOADING
            name = self.control.upload_logs(location, request_id, retries, interval, kind)
            return busy, name

        busy, name = await self._run(upload)
        self._log_request = request_id
        # N01.FR.12: a new request while an upload runs cancels that one.
        out = _status("AcceptedCanceled" if busy else _ACCEPTED)
        out["filename"] = name[:255]
        return out

    # -- DataTransfer (P01) ------------------------------------------------------------------------

    async def data_transfer(self, p: Payload) -> Payload:
        data = p.get("data")
        text = data if data is None or isinstance(data, str) else orjson.dumps(data).decode()
        vendor_id: str = p["vendorId"]
        message_id: str | None = p.get("messageId")
        status, answer = await self._run(
            lambda: self.control.data_transfer(vendor_id, message_id, text)
        )
        out = _status(status)
        if answer is not None:
            out["data"] = answer
        return out

    # -- smart charging (K01, K05, K08-K10) --------------------------------------------------------

    @staticmethod
    def _profile_limits_ok(profile: ChargingProfile) -> bool:
        return (
            profile.stack_level <= dm.PROFILE_STACK_LEVEL
            and len(profile.schedule.periods) <= dm.PERIODS_PER_SCHEDULE
        )

    async def set_charging_profile(self, p: Payload) -> Payload:
        if not self.settings.smart_charging_enabled:
            return _status(_REJECTED, "NotEnabled")
        evse_id: int = p["evseId"]
        if evse_id != 0 and self._connector(evse_id) is None:
            return _status(_REJECTED, "UnknownEvse")
        given = p["chargingProfile"]
        tx_key: str | None = None
        if given["chargingProfilePurpose"] == "TxProfile" and "transactionId" not in given:
            # A TxProfile names the transaction it is for (K01.FR.03 in libocpp's reading).
            return _status(_REJECTED, "MissingParam")
        if "transactionId" in given:
            seq = self.adapter.transaction_seq(given["transactionId"])
            if seq is None or given["chargingProfilePurpose"] != "TxProfile":
                return _status(_REJECTED, "TxNotFound")
            tx_key = str(seq)
        try:
            profile = profile_from_payload(given, evse_id, self.adapter.stamps, tx_key)
        except ProfileError as exc:
            return _status(_REJECTED, str(exc))
        if not self._profile_limits_ok(profile):
            return _status(_REJECTED, "InvalidProfile")
        schedule_id: int = given["chargingSchedule"][0]["id"]

        def install() -> str | None:
            control = self.control
            same = control.profiles(evse_id, profile.purpose, profile.stack_level)
            # K01.FR.39: two profiles of one purpose and stack level on one EVSE must not be
            # valid at the same time (the same id replaces its old self).
            pid = profile.profile_id
            if any(o.profile_id != pid and validity_overlaps(o, profile) for o in same):
                return "DuplicateProfile"
            if not control.install_profile(profile, keep_disjoint=True):
                return "InvalidProfile"
            return None

        refused = await self._run(install)
        if refused is not None:
            return _status(_REJECTED, refused)
        self._remember_schedule(profile.profile_id, schedule_id)
        return _status(_ACCEPTED)

    def _remember_schedule(self, profile_id: int, schedule_id: int) -> None:
        # The model keeps no schedule ids; a report must give back the one the CSMS sent.
        if self._schedule_ids is None:
            self._schedule_ids = {}
        self._schedule_ids[profile_id] = schedule_id

    async def clear_charging_profile(self, p: Payload) -> Payload:
        profile_id: int | None = p.get("chargingProfileId")
        criteria = p.get("chargingProfileCriteria") or {}
        purpose_name = criteria.get("chargingProfilePurpose")
        if profile_id is None and purpose_name == _EXTERNAL:
            return _status("Unknown")  # never installed by a CSMS
        purpose = None if purpose_name is None else ChargingProfilePurpose.parse(purpose_name)
        evse_id: int | None = criteria.get("evseId")
        stack_level: int | None = criteria.get("stackLevel")
        cleared: int = await self._run(
            lambda: self.control.clear_profiles(profile_id, evse_id, purpose, stack_level)
        )
        if profile_id is not None and cleared and self._schedule_ids is not None:
            self._schedule_ids.pop(profile_id, None)
        return _status(_ACCEPTED if cleared else "Unknown")

    async def get_charging_profiles(self, p: Payload) -> Payload:
        request_id: int = p["requestId"]
        evse_id: int | None = p.get("evseId")
        criterion = p["chargingProfile"]
        sources = criterion.get("chargingLimitSource")
        purpose_name = criterion.get("chargingProfilePurpose")
        ids = criterion.get("chargingProfileId")
        if (sources is not None and _CSO not in sources) or purpose_name == _EXTERNAL:
            return _status("NoProfiles")  # every installed profile came from the CSMS
        purpose = None if purpose_name is None else ChargingProfilePurpose.parse(purpose_name)
        stack_level: int | None = criterion.get("stackLevel")
        wanted = None if ids is None else tuple(ids)
        found: tuple[ChargingProfile, ...] = await self._run(
            lambda: self.control.profiles(evse_id, purpose, stack_level, wanted)
        )
        if not found:
            return _status("NoProfiles")
        by_evse: dict[int, list[Payload]] = {}
        for profile in found:
            by_evse.setdefault(profile.evse_id, []).append(self._profile_payload(profile))

        def send() -> None:
            now = self.station.env.now
            last = len(by_evse) - 1
            self._send_now(
                [
                    self.adapter.report_charging_profiles(request_id, evse, items, i < last, now)
                    for i, (evse, items) in enumerate(sorted(by_evse.items()))
                ]
            )

        self._later(send)
        return _status(_ACCEPTED)

    def _profile_payload(self, profile: ChargingProfile) -> Payload:
        ids = self._schedule_ids
        schedule_id = profile.profile_id if ids is None else ids.get(profile.profile_id, 0)
        key = profile.transaction_id
        tx_id = None if key is None else self.adapter.transaction_id_of(key)
        return profile_to_payload(profile, schedule_id, self.adapter.stamps, tx_id)

    async def get_composite_schedule(self, p: Payload) -> Payload:
        evse_id: int = p["evseId"]
        if evse_id != 0 and self._connector(evse_id) is None:
            return _status(_REJECTED, "UnknownEvse")
        duration: int = p["duration"]
        if duration <= 0:
            return _status(_REJECTED, "InvalidValue")
        unit_name = p.get("chargingRateUnit")
        if unit_name is None:
            # The charger's own unit: current per phase for AC, power for DC.
            dc = dm.connector_type(self.station) == "cCCS2"
            unit = ChargingRateUnit.W if dc else ChargingRateUnit.A
        else:
            unit = ChargingRateUnit(unit_name)

        def compose() -> Payload | None:
            schedule = self.control.composite_schedule(evse_id, float(duration), unit)
            if schedule is None:
                return None
            now = self.station.env.now
            return composite_payload(schedule, evse_id, duration, self.adapter.stamps, now)

        schedule = await self._run(compose)
        if schedule is None:
            return _status(_REJECTED, "UnknownEvse")
        out = _status(_ACCEPTED)
        out["schedule"] = schedule
        return out
