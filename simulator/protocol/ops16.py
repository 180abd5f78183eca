"""OCPP 1.6J operations a CSMS invokes on a charger: their handlers, and the messages that the
charger's own events produce on their behalf (firmware and diagnostics status notifications).

Each handler reads its (schema-valid) payload, translates OCPP ids and timestamps into the
simulation's (CSMS transaction ids into the station's transaction numbers, dateTimes into
simulated seconds), acts through the charger's ChargerControl inside the simulation
(`OnlineClock.execute`), and answers with the status 1.6 defines. Connector and transaction
messages that follow (StatusNotification, StopTransaction, ...) come from the station's own
events; only operation-specific messages are sent from here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Callable, Generator, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import simpy
from ocpp.v16.enums import Action, MessageTrigger

from models.physics import CurrentType
from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    RecurrencyKind,
    SchedulePeriod,
)
from simulator.charger import FirmwareStatus, UploadStatus
from simulator.events import StopReason
from simulator.link import LinkState
from simulator.protocol import config16
from simulator.protocol.base import Outbound, Timestamps
from simulator.protocol.config16 import BadValue
from simulator.protocol.v16 import MEASURANDS, V16Adapter

if TYPE_CHECKING:
    from simulator.charger import ChargerControl, ResetKind
    from simulator.link import ChargerLink
    from simulator.rpc import Handler
    from simulator.station import Transaction

T = TypeVar("T")
Payload = dict[str, Any]

_ACCEPTED: Payload = {"status": "Accepted"}
_REJECTED: Payload = {"status": "Rejected"}
_NOT_SUPPORTED: Payload = {"status": "NotSupported"}
_ENERGY = MEASURANDS[0]
_ALL_MEASURANDS = frozenset(MEASURANDS)
# 1.6 UpdateFirmware / GetDiagnostics leave retries and their interval to the charger when
# the CSMS does not say: one more try, a minute later.
DEFAULT_RETRIES = 1
DEFAULT_RETRY_INTERVAL_S = 60.0
# ...and GetCompositeSchedule without chargingRateUnit gets the unit the hardware regulates.
_AC_UNIT, _DC_UNIT = ChargingRateUnit.A, ChargingRateUnit.W

# What a firmware update's progress is called in a 1.6 FirmwareStatusNotification. The 2.0.1
# steps 1.6 does not have (DownloadScheduled, SignatureVerified, InstallScheduled,
# InstallRebooting) are not reported; Idle is only ever sent on request (TriggerMessage).
_FIRMWARE_NOTIFIED: dict[FirmwareStatus, str] = {
    FirmwareStatus.DOWNLOADING: "Downloading",
    FirmwareStatus.DOWNLOADED: "Downloaded",
    FirmwareStatus.DOWNLOAD_FAILED: "DownloadFailed",
    FirmwareStatus.INSTALLING: "Installing",
    FirmwareStatus.INSTALLED: "Installed",
    FirmwareStatus.INSTALLATION_FAILED: "InstallationFailed",
}
# What TriggerMessage(FirmwareStatusNotification) reports: the step in progress while busy,
# else Idle (1.6 errata: Idle only when not downloading or installing).
_FIRMWARE_TRIGGERED: dict[FirmwareStatus, str] = {
    FirmwareStatus.DOWNLOADING: "Downloading",
    FirmwareStatus.DOWNLOADED: "Downloaded",
    FirmwareStatus.SIGNATURE_VERIFIED: "Downloaded",
    FirmwareStatus.INSTALL_SCHEDULED: "Downloaded",
    FirmwareStatus.INSTALLING: "Installing",
    FirmwareStatus.INSTALL_REBOOTING: "Installing",
}
_UPLOAD_NOTIFIED: dict[UploadStatus, str] = {
    UploadStatus.UPLOADING: "Uploading",
    UploadStatus.UPLOADED: "Uploaded",
    UploadStatus.UPLOAD_FAILED: "UploadFailed",
}

_A = Action
# action -> handler method: one class-level table; each connection gets a two-slot view of it.
_HANDLERS: dict[str, str] = {
    _A.cancel_reservation.value: "cancel_reservation",
    _A.change_availability.value: "change_availability",
    _A.change_configuration.value: "change_configuration",
    _A.clear_cache.value: "clear_cache",
    _A.clear_charging_profile.value: "clear_charging_profile",
    _A.data_transfer.value: "data_transfer",
    _A.get_composite_schedule.value: "get_composite_schedule",
    _A.get_configuration.value: "get_configuration",
    _A.get_diagnostics.value: "get_diagnostics",
    _A.get_local_list_version.value: "get_local_list_version",
    _A.remote_start_transaction.value: "remote_start_transaction",
    _A.remote_stop_transaction.value: "remote_stop_transaction",
    _A.reserve_now.value: "reserve_now",
    _A.reset.value: "reset",
    _A.send_local_list.value: "send_local_list",
    _A.set_charging_profile.value: "set_charging_profile",
    _A.trigger_message.value: "trigger_message",
    _A.unlock_connector.value: "unlock_connector",
    _A.update_firmware.value: "update_firmware",
}
_T = MessageTrigger


# -- payload conversions (pure) -------------------------------------------------------------------


def charging_profile(
    payload: Payload, connector_id: int, stamps: Timestamps, transaction_key: str | None
) -> ChargingProfile:
    """A 1.6 csChargingProfiles / chargingProfile object as a ChargingProfile on EVSE
    `connector_id` (0: the whole charge point), bound to the station's transaction
    `transaction_key` (str(tx.seq)) if the CSMS named one.

    Raises ValueError for a profile the charger rejects: beyond ChargeProfileMaxStackLevel or
    ChargingScheduleMaxPeriods, a transactionId on a profile that is not a TxProfile, or one
    the profile model refuses (periods not starting at 0 or not increasing, a Recurring
    profile without startSchedule, bad timestamps, ...)."""
    stack_level = int(payload["stackLevel"])
    if stack_level > config16.MAX_STACK_LEVEL:
        raise ValueError(f"stack level {stack_level} > {config16.MAX_STACK_LEVEL}")
    purpose = ChargingProfilePurpose.parse(payload["chargingProfilePurpose"])
    if transaction_key is not None and purpose is not ChargingProfilePurpose.TX:
        raise ValueError("only a TxProfile may name a transaction")
    kind = ChargingProfileKind(payload["chargingProfileKind"])
    raw = payload["chargingSchedule"]
    raw_periods = raw["chargingSchedulePeriod"]
    if len(raw_periods) > config16.MAX_PERIODS:
        raise ValueError(f"{len(raw_periods)} periods > {config16.MAX_PERIODS}")
    periods = tuple(
        SchedulePeriod(float(p["startPeriod"]), float(p["limit"]), p.get("numberPhases"))
        for p in raw_periods
    )
    start = raw.get("startSchedule")
    # A Relative schedule starts with the transaction: a startSchedule there means nothing.
    start_s = (
        None if start is None or kind is ChargingProfileKind.RELATIVE else stamps.seconds(start)
    )
    duration = raw.get("duration")
    min_rate = raw.get("minChargingRate")
    schedule = ChargingSchedule(
        ChargingRateUnit(raw["chargingRateUnit"]),
        periods,
        duration_s=None if duration is None else float(duration),
        start_s=start_s,
        min_charging_rate=None if min_rate is None else float(min_rate),
    )
    recurrency = payload.get("recurrencyKind")
    valid_from = payload.get("validFrom")
    valid_to = payload.get("validTo")
    return ChargingProfile(
        profile_id=int(payload["chargingProfileId"]),
        stack_level=stack_level,
        purpose=purpose,
        kind=kind,
        schedule=schedule,
        # recurrencyKind only means something on a Recurring profile.
        recurrency=(
            RecurrencyKind(recurrency)
            if recurrency is not None and kind is ChargingProfileKind.RECURRING
            else None
        ),
        valid_from_s=None if valid_from is None else stamps.seconds(valid_from),
        valid_to_s=None if valid_to is None else stamps.seconds(valid_to),
        transaction_id=transaction_key,
        evse_id=connector_id,
    )


def anchored(profile: ChargingProfile, now_s: float) -> ChargingProfile:
    """A charge point maximum whose schedule has no start of its own (Relative, or Absolute
    without startSchedule) starts when it is set: the "situation-specific start" of 1.6
    §3.13.1 for a profile that belongs to no transaction. Left as it is, such a profile would
    wait for a transaction start that never comes for the charge point as a whole, and limit
    nothing. Every other profile is returned unchanged."""
    if (
        profile.purpose is not ChargingProfilePurpose.STATION_MAX
        or profile.kind is ChargingProfileKind.RECURRING
        or profile.schedule.start_s is not None
    ):
        return profile
    schedule = dataclasses.replace(profile.schedule, start_s=now_s)
    return dataclasses.replace(profile, kind=ChargingProfileKind.ABSOLUTE, schedule=schedule)


def _tenths_down(value: float) -> float:
    """A limit as the schema wants it (a multiple of 0.1), rounded down so that the schedule
    reported never allows more than the one in force."""
    return round(math.floor(value * 10.0 + 1e-6) / 10.0, 1)


def composite_payload(schedule: ChargingSchedule, connector_id: int, start_iso: str) -> Payload:
    """A GetCompositeSchedule.conf (Accepted) for a composite schedule starting now.

    1.6 periods start at whole seconds: each start is rounded, and of periods that round to
    the same second the later one is kept (the earlier lasted less than a second)."""
    periods: list[Payload] = []
    for period in schedule.periods:
        entry: Payload = {
            "startPeriod": round(period.start_s),
            "limit": _tenths_down(period.limit),
        }
        if period.number_phases is not None:
            entry["numberPhases"] = period.number_phases
        if periods and periods[-1]["startPeriod"] == entry["startPeriod"]:
            periods.pop()
        if periods and _same_limit(periods[-1], entry):
            continue
        periods.append(entry)
    if periods:
        periods[0]["startPeriod"] = 0
    body: Payload = {
        "startSchedule": start_iso,
        "chargingRateUnit": schedule.unit.value,
        "chargingSchedulePeriod": periods,
    }
    if schedule.duration_s is not None:
        body["duration"] = round(schedule.duration_s)
    if schedule.min_charging_rate is not None:
        body["minChargingRate"] = _tenths_down(schedule.min_charging_rate)
    return {
        "status": "Accepted",
        "connectorId": connector_id,
        "scheduleStart": start_iso,
        "chargingSchedule": body,
    }


def _same_limit(a: Payload, b: Payload) -> bool:
    return bool(a["limit"] == b["limit"] and a.get("numberPhases") == b.get("numberPhases"))


def measurand_filter(measurands: tuple[str, ...] | frozenset[str]) -> frozenset[str] | None:
    """The adapter's filter for a MeterValuesSampledData list: None when every measurand the
    meter has is wanted (the common case skips filtering)."""
    chosen = frozenset(measurands)
    return None if chosen >= _ALL_MEASURANDS else chosen


# -- the operations -------------------------------------------------------------------------------


class _HandlerView(Mapping[str, "Handler"]):
    """The handler table of one connection: a view of the class-level table bound to one
    charger's operations (a charger pays for one small object, not a dict of bound methods)."""

    __slots__ = ("_ops",)

    def __init__(self, ops: V16Operations) -> None:
        self._ops = ops

    def __getitem__(self, action: str) -> Handler:
        handler: Handler = getattr(self._ops, _HANDLERS[action])
        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(_HANDLERS)

    def __len__(self) -> int:
        return len(_HANDLERS)


class V16Operations:
    """One OCPP 1.6J charger's answers to CSMS-initiated calls, and its listener for the
    charger's own events (charger.ChargerListener): firmware and diagnostics progress become
    status notifications, a reboot closes and later reopens the connection.

    Also owns the 1.6-only configuration that ChargerSettings does not hold: clock-aligned
    meter values (a SimPy process per charger, only while ClockAlignedDataInterval > 0), the
    measurands of StopTransaction's transactionData, StopTransactionOnInvalidId, ResetRetries
    and WebSocketPingInterval.
    """

    __slots__ = (
        "_aligned_run",
        "adapter",
        "aligned_interval_s",
        "aligned_measurands",
        "control",
        "link",
        "ping_interval_s",
        "reset_retries",
        "stop_aligned",
        "stop_on_invalid_id",
        "stop_sampled",
    )

    # Declared here so that the configuration table (config16) can see their types.
    link: ChargerLink
    control: ChargerControl
    adapter: V16Adapter
    aligned_interval_s: int
    aligned_measurands: tuple[str, ...]
    stop_sampled: tuple[str, ...]
    stop_aligned: tuple[str, ...]
    stop_on_invalid_id: bool
    reset_retries: int
    ping_interval_s: int

    def __init__(self, link: ChargerLink, control: ChargerControl) -> None:
        adapter = link.adapter
        if not isinstance(adapter, V16Adapter):
            raise TypeError(f"V16Operations needs a V16Adapter, not {type(adapter).__name__}")
        self.link = link
        self.control = control
        self.adapter = adapter
        self.aligned_interval_s = 0
        self.aligned_measurands = (_ENERGY,)
        self.stop_sampled = (_ENERGY,)
        self.stop_aligned = ()
        self.stop_on_invalid_id = True
        self.reset_retries = 1
        ping = link.ctx.settings.ping_interval_s
        self.ping_interval_s = 0 if ping is None else round(ping)
        self._aligned_run = 0  # bumped to end the running clock-aligned process
        adapter.measurands = measurand_filter(control.settings.measurands)
        adapter.start_rejected = self._start_rejected

    def __repr__(self) -> str:
        return f"<V16Operations {self.link.charger_id}>"

    def handlers(self) -> Mapping[str, Handler]:
        return _HandlerView(self)

    # -- plumbing ------------------------------------------------------------------------------

    def _run(self, command: Callable[[], T]) -> asyncio.Future[T]:
        """Run `command` inside the simulation, now; the future holds its result."""
        return self.link.ctx.clock.execute(command)

    @property
    def _stamps(self) -> Timestamps:
        return self.adapter.stamps

    def _connectors(self) -> int:
        return len(self.control.station.connectors)

    def _send_after_answer(self, messages: list[Outbound]) -> None:
        """Queue messages once the answer to the current call has gone out (a triggered
        message follows its TriggerMessage.conf)."""
        if messages:
            asyncio.get_running_loop().call_soon(self.link.send, messages)

    def _notify(self, message: Outbound) -> None:
        """Send a status notification now, or after the next boot if the charger is not
        connected and booted (a firmware update's Installed comes after its reboot)."""
        if self.link.state is LinkState.READY:
            self.link.send([message])
        else:
            self.link.send_after_boot([message])

    # -- Core: transactions --------------------------------------------------------------------

    async def remote_start_transaction(self, p: Payload) -> Payload:
        connector_id: int | None = p.get("connectorId")
        if connector_id is not None and not 1 <= connector_id <= self._connectors():
            return _REJECTED
        profile: ChargingProfile | None = None
        raw = p.get("chargingProfile")
        if raw is not None:
            # 1.6 §5.11: only a TxProfile, and no transaction to name yet.
            if (
                not self.control.settings.smart_charging_enabled
                or raw["chargingProfilePurpose"] != ChargingProfilePurpose.TX.value
                or "transactionId" in raw
            ):
                return _REJECTED
            try:
                # The EVSE is the one the transaction starts on (0 until it is chosen).
                profile = charging_profile(raw, connector_id or 0, self._stamps, None)
            except ValueError:
                return _REJECTED
        id_tag: str = p["idTag"]
        control = self.control
        evse = await self._run(lambda: control.remote_start(id_tag, connector_id, profile, None))
        return _REJECTED if evse is None else _ACCEPTED

    async def remote_stop_transaction(self, p: Payload) -> Payload:
        seq = self.adapter.transaction_seq(int(p["transactionId"]))
        if seq is None:
            return _REJECTED
        control = self.control
        stopped = await self._run(lambda: control.remote_stop(seq))
        return _ACCEPTED if stopped else _REJECTED

    def _start_rejected(self, tx: Transaction) -> None:
        """The CSMS answered StartTransaction with an idTagInfo that is not Accepted: with
        StopTransactionOnInvalidId the charger ends the transaction (reason DeAuthorized)."""
        if self.stop_on_invalid_id:

            def deauthorize() -> None:
                if tx.open:
                    tx.connector.end_transaction(StopReason.DE_AUTHORIZED)

            self.link.ctx.clock.call_soon(deauthorize)

    # -- Core: charger ---------------------------------------------------------------------------

    async def reset(self, p: Payload) -> Payload:
        kind: ResetKind = "hard" if p["type"] == "Hard" else "soft"
        control = self.control
        status = await self._run(lambda: control.reset(kind))
        return _REJECTED if status == "Rejected" else _ACCEPTED

    async def change_availability(self, p: Payload) -> Payload:
        connector_id = int(p["connectorId"])
        if not 0 <= connector_id <= self._connectors():
            return _REJECTED
        operative = p["type"] == "Operative"
        control = self.control
        status = await self._run(lambda: control.change_availability(connector_id, operative))
        return {"status": status}

    async def unlock_connector(self, p: Payload) -> Payload:
        connector_id = int(p["connectorId"])
        if not 1 <= connector_id <= self._connectors():
            # 1.6 errata: NotSupported also stands for an unknown connector.
            return {"status": "NotSupported"}
        control = self.control
        # 1.6 unlocks even during a transaction, which then ends (reason UnlockCommand).
        result = await self._run(lambda: control.unlock(connector_id, True))
        return {"status": "Unlocked" if result == "Unlocked" else "UnlockFailed"}

    async def clear_cache(self, p: Payload) -> Payload:
        control = self.control
        cleared = await self._run(control.clear_cache)
        return _ACCEPTED if cleared else _REJECTED

    async def data_transfer(self, p: Payload) -> Payload:
        control = self.control
        vendor: str = p["vendorId"]
        message: str | None = p.get("messageId")
        data: str | None = p.get("data")
        status, answer = await self._run(lambda: control.data_transfer(vendor, message, data))
        response: Payload = {"status": status}
        if answer is not None:
            response["data"] = answer
        return response

    # -- Core: configuration ---------------------------------------------------------------------

    def get_configuration(self, p: Payload) -> Payload:
        names: list[str] | None = p.get("key")
        if not names:
            keys = [config16.KEYS[name.lower()] for name in config16.KEY_NAMES]
            unknown: list[str] = []
        else:
            keys, unknown = [], []
            for name in names:
                key = config16.lookup(name)
                if key is None:
                    unknown.append(name)
                elif key not in keys:
                    keys.append(key)
        response: Payload = {
            "configurationKey": [
                {
                    "key": key.name,
                    "readonly": key.readonly,
                    "value": key.get(self)[: config16.VALUE_MAX],
                }
                for key in keys
            ]
        }
        if unknown:
            response["unknownKey"] = unknown
        return response

    async def change_configuration(self, p: Payload) -> Payload:
        key = config16.lookup(p["key"])
        if key is None:
            return _NOT_SUPPORTED
        if key.parse is None or key.apply is None:
            return _REJECTED  # read-only
        try:
            value = key.parse(p["value"])
        except BadValue:
            return _REJECTED
        apply = key.apply
        await self._run(lambda: apply(self, value))
        return {"status": "RebootRequired"} if key.reboot_required else _ACCEPTED

    def settings_changed(self) -> None:
        """ChargerSettings changed: follow them (measurand filter, heartbeat timer)."""
        settings = self.control.settings
        self.adapter.measurands = measurand_filter(settings.measurands)
        if settings.heartbeat_s != self.link.heartbeat_s:
            self.link.set_heartbeat(settings.heartbeat_s)

    # -- clock-aligned meter values ---------------------------------------------------------------

    def set_aligned_interval(self, seconds: int) -> None:
        """ClockAlignedDataInterval (runs inside the simulation): readings at every multiple
        of `seconds` since midnight UTC; 0 stops them."""
        self.aligned_interval_s = seconds
        self._aligned_run += 1
        if seconds > 0:
            self.control.station.env.process(self._aligned(seconds, self._aligned_run))

    def _aligned(self, interval: int, run: int) -> Generator[simpy.Event, Any, None]:
        env = self.control.station.env
        # Simulated second 0 as seconds since the Unix epoch: alignment is to UTC midnight.
        epoch = -self._stamps.seconds("1970-01-01T00:00:00Z")
        while True:
            now = env.now
            due = (math.floor((now + epoch) / interval + 1e-9) + 1) * interval - epoch
            yield env.timeout(max(due - now, 0.0))
            if run != self._aligned_run:
                return  # the interval changed: a newer process took over
            self._aligned_readings(env.now)

    def _aligned_readings(self, t: float) -> None:
        station = self.control.station
        if not station.up:
            return
        adapter = self.adapter
        aligned = frozenset(self.aligned_measurands)
        stop = frozenset(self.stop_aligned)
        out: list[Outbound] = []
        for connector in station.connectors:
            sample = connector.sample(t)
            if aligned:
                out.extend(adapter.aligned_meter_values(connector, sample, t, aligned))
            tx = connector.tx
            if stop and tx is not None and tx.open:
                adapter.record_stop_reading(tx, sample, t, stop)
        self.link.send(out)

    # -- RemoteTrigger ---------------------------------------------------------------------------

    async def trigger_message(self, p: Payload) -> Payload:
        requested = p["requestedMessage"]
        connector_id: int | None = p.get("connectorId")
        if connector_id is not None and not 0 <= connector_id <= self._connectors():
            return _REJECTED
        messages = await self._run(lambda: self._triggered(requested, connector_id))
        self._send_after_answer(messages)
        return _ACCEPTED

    def _triggered(self, requested: str, connector_id: int | None) -> list[Outbound]:
        """The messages TriggerMessage asks for, made inside the simulation at its time."""
        station = self.control.station
        adapter = self.adapter
        t = station.env.now
        if requested == _T.boot_notification:
            boot = adapter.boot_notification(t)
            boot.on_result = self._boot_answered
            return [boot]
        if requested == _T.heartbeat:
            return [adapter.heartbeat(t)]
        if requested == _T.status_notification:
            if connector_id is None:
                return adapter.connector_statuses(station, t)
            return [adapter.connector_status(station, connector_id, t)]
        if requested == _T.meter_values:
            # Connector 0 has no meter of its own here: every connector reports.
            connectors = (
                station.connectors if not connector_id else [station.connectors[connector_id - 1]]
            )
            out: list[Outbound] = []
            for connector in connectors:
                out.extend(adapter.triggered_meter_values(connector, connector.sample(t), t))
            return out
        if requested == _T.firmware_status_notification:
            status = _FIRMWARE_TRIGGERED.get(self.control.firmware_state, "Idle")
            return [adapter.firmware_status(status, t)]
        # DiagnosticsStatusNotification (the schema allows nothing else)
        uploading = self.control.upload_state is UploadStatus.UPLOADING
        return [adapter.diagnostics_status("Uploading" if uploading else "Idle", t)]

    def _boot_answered(self, response: Payload) -> None:
        """A triggered BootNotification was answered: adopt the heartbeat interval it gives."""
        status, interval = self.adapter.boot_outcome(response)
        if status == "Accepted" and interval > 0:
            self.link.set_heartbeat(interval)

    # -- Reservation -----------------------------------------------------------------------------

    async def reserve_now(self, p: Payload) -> Payload:
        connector_id = int(p["connectorId"])
        if not 0 <= connector_id <= self._connectors():
            return _REJECTED
        try:
            expiry_s = self._stamps.seconds(p["expiryDate"])
        except ValueError:
            return _REJECTED
        reservation_id = int(p["reservationId"])
        id_tag: str = p["idTag"]
        control = self.control
        # Connector 0 (ReserveConnectorZeroSupported): the first available connector.
        evse = connector_id or None
        status = await self._run(lambda: control.reserve(reservation_id, evse, id_tag, expiry_s))
        return {"status": status}

    async def cancel_reservation(self, p: Payload) -> Payload:
        reservation_id = int(p["reservationId"])
        control = self.control
        cancelled = await self._run(lambda: control.cancel_reservation(reservation_id))
        return _ACCEPTED if cancelled else _REJECTED

    def reservation_ended(self, reservation_id: int, reason: str, t: float) -> None:
        """1.6 has no message for a reservation that expired or was cancelled: the
        connector's StatusNotification (Reserved -> Available), sent by the station, says it."""
        return None

    # -- LocalAuthListManagement -----------------------------------------------------------------

    async def send_local_list(self, p: Payload) -> Payload:
        items: list[Payload] = p.get("localAuthorizationList") or []
        if len(items) > config16.SEND_LOCAL_LIST_MAX:
            return {"status": "Failed"}
        # idTagInfo absent: remove the tag (a differential update) / leave it out (a full one).
        entries: dict[str, str | None] = {}
        for item in items:
            info = item.get("idTagInfo")
            entries[item["idTag"]] = None if info is None else info["status"]
        full = p["updateType"] == "Full"
        if full and sum(1 for v in entries.values() if v is not None) > config16.LOCAL_LIST_MAX:
            return {"status": "Failed"}
        version = int(p["listVersion"])
        control = self.control
        status = await self._run(lambda: control.send_local_list(version, full, entries))
        return {"status": status}

    async def get_local_list_version(self, p: Payload) -> Payload:
        control = self.control
        version = await self._run(control.local_list_version)
        return {"listVersion": version}

    # -- FirmwareManagement ----------------------------------------------------------------------

    async def update_firmware(self, p: Payload) -> Payload:
        location: str = p["location"]
        try:
            retrieve_s = self._stamps.seconds(p["retrieveDate"])
        except ValueError:
            return {}  # 1.6 has no way to refuse: a date that is no date is ignored
        retries = int(p.get("retries", DEFAULT_RETRIES))
        interval = float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S))
        control = self.control
        await self._run(
            lambda: control.update_firmware(
                location, retrieve_s, None, max(retries, 0), max(interval, 0.0), None, False
            )
        )
        return {}

    async def get_diagnostics(self, p: Payload) -> Payload:
        location: str = p["location"]
        retries = int(p.get("retries", DEFAULT_RETRIES))
        interval = float(p.get("retryInterval", DEFAULT_RETRY_INTERVAL_S))
        control = self.control
        name = await self._run(
            lambda: control.upload_logs(
                location, None, max(retries, 0), max(interval, 0.0), "Diagnostics"
            )
        )
        return {"fileName": name[:255]} if name else {}

    def firmware_status(self, status: FirmwareStatus, request_id: int | None, t: float) -> None:
        name = _FIRMWARE_NOTIFIED.get(status)
        if name is not None:
            self._notify(self.adapter.firmware_status(name, t))

    def upload_status(self, status: UploadStatus, request_id: int | None, t: float) -> None:
        name = _UPLOAD_NOTIFIED.get(status)
        if name is not None:
            self._notify(self.adapter.diagnostics_status(name, t))

    def rebooting(self, downtime_s: float) -> None:
        """The charger restarts: the link delivers what the reset produced, closes the
        connection and boots again after `downtime_s`. The configuration survives (1.6 keys
        are non-volatile)."""
        self.link.rebooting(downtime_s)

    # -- SmartCharging ---------------------------------------------------------------------------

    async def set_charging_profile(self, p: Payload) -> Payload:
        control = self.control
        if not control.settings.smart_charging_enabled:
            return _NOT_SUPPORTED
        connector_id = int(p["connectorId"])
        if not 0 <= connector_id <= self._connectors():
            return _REJECTED
        raw: Payload = p["csChargingProfiles"]
        key: str | None = None
        if "transactionId" in raw:
            seq = self.adapter.transaction_seq(int(raw["transactionId"]))
            if seq is None:
                return _REJECTED  # no such transaction running here
            key = str(seq)
        try:
            profile = charging_profile(raw, connector_id, self._stamps, key)
        except ValueError:
            return _REJECTED
        env = control.station.env
        installed = await self._run(lambda: control.install_profile(anchored(profile, env.now)))
        return _ACCEPTED if installed else _REJECTED

    async def clear_charging_profile(self, p: Payload) -> Payload:
        purpose = p.get("chargingProfilePurpose")
        profile_id: int | None = p.get("id")
        connector_id: int | None = p.get("connectorId")
        stack_level: int | None = p.get("stackLevel")
        control = self.control
        cleared = await self._run(
            lambda: control.clear_profiles(
                profile_id,
                connector_id,
                None if purpose is None else ChargingProfilePurpose.parse(purpose),
                stack_level,
            )
        )
        return _ACCEPTED if cleared else {"status": "Unknown"}

    async def get_composite_schedule(self, p: Payload) -> Payload:
        control = self.control
        connector_id = int(p["connectorId"])
        duration = int(p["duration"])
        if (
            not control.settings.smart_charging_enabled
            or not 0 <= connector_id <= self._connectors()
            or duration <= 0
        ):
            return _REJECTED
        unit_name = p.get("chargingRateUnit")
        if unit_name is None:
            dc = control.station.spec.rating.kind is CurrentType.DC
            unit = _DC_UNIT if dc else _AC_UNIT
        else:
            unit = ChargingRateUnit(unit_name)

        def composite() -> tuple[float, ChargingSchedule | None]:
            schedule = control.composite_schedule(connector_id, float(duration), unit)
            return control.station.env.now, schedule

        now, schedule = await self._run(composite)
        if schedule is None:
            return _REJECTED
        return composite_payload(schedule, connector_id, self._stamps.iso(now))


# The handler table names real methods (checked once, at import).
for _name in _HANDLERS.values():
    if not callable(getattr(V16Operations, _name, None)):
        raise AssertionError(f"V16Operations has no handler {_name}")
