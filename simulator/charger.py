"""The charger's brain as a CSMS sees it, independent of the OCPP version.

`ChargerControl` is what both protocol parts call when a CSMS invokes an operation: it wraps
the station model (remote start, reset, availability, reservations, smart charging, meter
interval), owns what a real charger keeps beside it (local authorisation list, authorisation
cache, firmware and log-upload state machines, vendor data-transfer rules), and reports what
happens to a `ChargerListener` (the version's operations object, which turns it into messages).
Everything here runs inside the SimPy simulation: protocol handlers reach it through
`OnlineClock.execute`. Offline runs may use it the same way, without a listener.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

import numpy as np
import simpy

from models.smart_charging import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
)
from simulator.events import LOCAL_DECISION, Authorizer, StopReason
from simulator.station import (
    Availability,
    Connector,
    RemoteStartModel,
    ReserveStatus,
    Station,
    Transaction,
    UnlockStatus,
)

if TYPE_CHECKING:
    from simulator.scenario import ChargerModel

ResetKind = Literal["hard", "soft", "immediate", "on_idle"]
ResetStatus = Literal["Accepted", "Scheduled", "Rejected"]
FirmwareAnswer = Literal["Accepted", "AcceptedCanceled", "Rejected"]
LocalListStatus = Literal["Accepted", "Failed", "VersionMismatch", "NotSupported"]
DataTransferStatus = Literal["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"]

# A charger's memory for ids: LocalAuthListMaxLength, and how many answers its cache keeps
# (oldest dropped first). Bounded because every random driver brings a new tag.
LOCAL_LIST_MAX_LENGTH = 1000
AUTH_CACHE_SIZE = 64
FIRMWARE_VERSION_MAX = 50  # 1.6 firmwareVersion / 2.0.1 firmwareVersion string length
_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,3}")


@dataclass(slots=True)
class ChargerSettings:
    """The configuration a CSMS reads and changes, version-agnostic: the 1.6 configuration keys
    and the 2.0.1 device-model variables map onto these fields (comments name both)."""

    heartbeat_s: float = 300.0  # HeartbeatInterval / OCPPCommCtrlr.HeartbeatInterval
    meter_interval_s: float = 300.0  # MeterValueSampleInterval / SampledDataCtrlr.TxUpdatedInterval
    measurands: tuple[str, ...] = (
        "Energy.Active.Import.Register",
        "Power.Active.Import",
        "Current.Import",
        "Voltage",
        "SoC",
    )
    connection_timeout_s: float = 120.0  # ConnectionTimeOut / TxCtrlr.EVConnectionTimeOut
    authorize_remote_start: bool = (
        False  # AuthorizeRemoteTxRequests / AuthCtrlr.AuthorizeRemoteStart
    )
    local_auth_list_enabled: bool = True
    local_pre_authorize: bool = True
    local_authorize_offline: bool = True
    allow_offline_unknown: bool = True  # AllowOfflineTxForUnknownId / OfflineTxForUnknownIdEnabled
    auth_cache_enabled: bool = True
    message_attempts: int = 3  # TransactionMessageAttempts / MessageAttempts
    message_retry_s: float = 60.0  # TransactionMessageRetryInterval / MessageAttemptInterval
    stop_tx_on_ev_disconnect: bool = True
    reservation_enabled: bool = True
    smart_charging_enabled: bool = True


class FirmwareStatus(StrEnum):
    """Firmware update progress, 2.0.1 names (a superset: the 1.6 part drops what 1.6 lacks)."""

    IDLE = "Idle"
    DOWNLOAD_SCHEDULED = "DownloadScheduled"
    DOWNLOADING = "Downloading"
    DOWNLOADED = "Downloaded"
    DOWNLOAD_FAILED = "DownloadFailed"
    SIGNATURE_VERIFIED = "SignatureVerified"
    INSTALL_SCHEDULED = "InstallScheduled"
    INSTALLING = "Installing"
    INSTALL_REBOOTING = "InstallRebooting"
    INSTALLED = "Installed"
    INSTALLATION_FAILED = "InstallationFailed"


class UploadStatus(StrEnum):
    """Diagnostics (1.6) / log (2.0.1) upload progress."""

    IDLE = "Idle"
    UPLOADING = "Uploading"
    UPLOADED = "Uploaded"
    UPLOAD_FAILED = "UploadFailed"


class ChargerListener(Protocol):
    """Told what a charger's operations do over time; the version's operations object
    implements it and turns each call into messages (or connection actions)."""

    def firmware_status(self, status: FirmwareStatus, request_id: int | None, t: float) -> None:
        """A new firmware status (Installed comes at the end of the reboot that installs)."""
        ...

    def upload_status(self, status: UploadStatus, request_id: int | None, t: float) -> None:
        """A new diagnostics/log upload status."""
        ...

    def reservation_ended(self, reservation_id: int, reason: str, t: float) -> None:
        """A reservation ended without being used: "Expired" or "Removed"."""
        ...

    def rebooting(self, downtime_s: float) -> None:
        """The charger reboots: close the connection, reconnect after `downtime_s` simulated s."""
        ...

    def settings_changed(self) -> None:
        """Heartbeat or meter interval (or other settings) changed: re-arm timers."""
        ...


class NullListener:
    """A listener that ignores everything (offline, or before the protocol part is wired)."""

    def firmware_status(self, status: FirmwareStatus, request_id: int | None, t: float) -> None:
        pass

    def upload_status(self, status: UploadStatus, request_id: int | None, t: float) -> None:
        pass

    def reservation_ended(self, reservation_id: int, reason: str, t: float) -> None:
        pass

    def rebooting(self, downtime_s: float) -> None:
        pass

    def settings_changed(self) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DataTransferRule:
    """How the charger answers a DataTransfer: the first rule whose vendor id matches and
    whose message id matches (None: any) gives the status and the data returned."""

    vendor_id: str
    message_id: str | None
    status: DataTransferStatus
    data: str | None = None


@dataclass(frozen=True, slots=True)
class ChargerBehaviour:
    """The stochastic behaviour of a charger model for CSMS operations. Durations are means
    in simulated seconds; each draw is uniform on [0.5, 1.5] x mean from the charger's rng."""

    reboot_s: float = 30.0
    firmware_download_s: float = 60.0
    firmware_install_s: float = 120.0
    firmware_download_failure_p: float = 0.0
    firmware_install_failure_p: float = 0.0
    upload_s: float = 30.0
    upload_failure_p: float = 0.0
    remote_start_plug_in_s: float = 30.0
    remote_start_no_show_p: float = 0.0
    data_transfer_rules: tuple[DataTransferRule, ...] = ()
    firmware: str = "1.0.0"

    @classmethod
    def from_model(cls, model: ChargerModel) -> ChargerBehaviour:
        """The behaviour a scenario's charger model describes."""
        return cls(
            reboot_s=model.reboot_s,
            firmware_download_s=model.firmware_download_s,
            firmware_install_s=model.firmware_install_s,
            firmware_download_failure_p=model.firmware_download_failure_p,
            firmware_install_failure_p=model.firmware_install_failure_p,
            upload_s=model.upload_s,
            upload_failure_p=model.upload_failure_p,
            remote_start_plug_in_s=model.remote_start_plug_in_s,
            remote_start_no_show_p=model.remote_start_no_show_p,
            data_transfer_rules=tuple(
                DataTransferRule(r.vendor_id, r.message_id, r.status, r.data)
                for r in model.data_transfer
            ),
            firmware=model.firmware,
        )


def firmware_name(location: str) -> str:
    """The version a firmware file installs: the last path segment of its location without
    its extension (".bin", ".tar.gz"; a version's own dots stay), at most 50 characters."""
    path = urlsplit(location).path or location
    stem = posixpath.basename(path.rstrip("/"))
    while True:
        head, ext = posixpath.splitext(stem)
        if not head or not _EXTENSION.fullmatch(ext):
            break
        stem = head
    return (stem or location)[:FIRMWARE_VERSION_MAX]


@dataclass(slots=True)
class _Operation:
    """A running firmware update or upload: its request id, process, and whether it holds
    new transactions back."""

    request_id: int | None
    process: simpy.Process | None = None
    holding: bool = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive


def _always_online() -> bool:
    return True


class ChargerControl:
    """One charger's operations as a CSMS can invoke them, independent of OCPP version.

    Every method runs inside the simulation (protocol handlers call it via clock.execute). It is
    also the station's `Authorizer` online: local list and cache first, then `remote` (the link).
    """

    def __init__(
        self,
        station: Station,
        behaviour: ChargerBehaviour,
        settings: ChargerSettings,
        rng: np.random.Generator,
    ) -> None:
        self.station = station
        self.behaviour = behaviour
        self.settings = settings
        self.rng = rng
        self.listener: ChargerListener = NullListener()
        self.firmware_version = behaviour.firmware
        # 2.0.1 BootReasonEnumType of the next boot; the link reads it before each boot.
        self.boot_reason = "PowerUp"
        self.remote: Authorizer | None = None
        self.online: Callable[[], bool] = _always_online
        self.firmware_state = FirmwareStatus.IDLE
        self.upload_state = UploadStatus.IDLE
        self.uploads: list[tuple[float, str, str]] = []
        self._local_list: dict[str, str] = {}
        self._list_version = 0
        self._cache: dict[str, str] = {}
        self._firmware: _Operation | None = None
        self._upload: _Operation | None = None
        self._reset_token = 0
        station.remote_start_model = RemoteStartModel(
            behaviour.remote_start_plug_in_s,
            behaviour.remote_start_no_show_p,
            settings.connection_timeout_s,
        )
        station.on_reservation_ended = self._reservation_ended

    def __repr__(self) -> str:
        return f"<ChargerControl {self.station.charger_id}>"

    @property
    def env(self) -> simpy.Environment:
        return self.station.env

    def draw(self, mean_s: float) -> float:
        """A duration around `mean_s`: uniform on [0.5, 1.5] x mean."""
        return mean_s * float(self.rng.uniform(0.5, 1.5))

    # -- authorisation -------------------------------------------------------------------------

    def authorize(self, connector: Connector, id_tag: str) -> bool | simpy.Event:
        """Whether `id_tag` may charge: the local list (if enabled), then the cache; an
        Accepted entry is used without asking when LocalPreAuthorize is set or the charger is
        offline (and LocalAuthorizeOffline allows it), any other entry refuses. Unknown tags go
        to the CSMS (`remote`) when online, whose answer is cached; offline they are accepted
        if AllowOfflineTxForUnknownId and LocalAuthorizeOffline are both set."""
        settings = self.settings
        online = self.remote is not None and self.online()
        entry: str | None = None
        if online or settings.local_authorize_offline:
            if settings.local_auth_list_enabled:
                entry = self._local_list.get(id_tag)
            if entry is None and settings.auth_cache_enabled:
                entry = self._cache.get(id_tag)
        if entry is not None:
            if entry != "Accepted":
                return False
            if not online or settings.local_pre_authorize:
                return True
        if not online:
            return settings.allow_offline_unknown and settings.local_authorize_offline
        assert self.remote is not None
        answer = self.remote.authorize(connector, id_tag)
        if isinstance(answer, bool):
            self._remember(id_tag, answer)
        elif answer.callbacks is not None:
            answer.callbacks.append(lambda event: self._remember(id_tag, event.value))
        else:
            self._remember(id_tag, answer.value)
        return answer

    def _remember(self, id_tag: str, accepted: object) -> None:
        if accepted == LOCAL_DECISION:
            return  # decided without the CSMS: nothing learnt about the tag
        if not self.settings.auth_cache_enabled or id_tag in self._local_list:
            return  # 1.6: ids on the local list are not cached
        cache = self._cache
        cache.pop(id_tag, None)
        if len(cache) >= AUTH_CACHE_SIZE:
            del cache[next(iter(cache))]
        cache[id_tag] = "Accepted" if accepted else "Invalid"

    def clear_cache(self) -> bool:
        """ClearCache; False (Rejected) when the cache is disabled."""
        if not self.settings.auth_cache_enabled:
            return False
        self._cache.clear()
        return True

    def cached(self, id_tag: str) -> str | None:
        """The cache's entry for a tag, if any."""
        return self._cache.get(id_tag)

    def send_local_list(self, version: int, full: bool, entries: dict[str, str | None]) -> str:
        """SendLocalList. `entries` maps tag -> status ("Accepted", "Blocked", "Expired",
        "Invalid", ...), None removing the tag (differential updates). A differential update
        must carry a version above the installed one ("VersionMismatch"); a list longer than
        LOCAL_LIST_MAX_LENGTH fails; a disabled list is "NotSupported"."""
        if not self.settings.local_auth_list_enabled:
            return "NotSupported"
        if full:
            updated = {tag: status for tag, status in entries.items() if status is not None}
        else:
            if version <= self._list_version:
                return "VersionMismatch"
            updated = dict(self._local_list)
            for tag, status in entries.items():
                if status is None:
                    updated.pop(tag, None)
                else:
                    updated[tag] = status
        if len(updated) > LOCAL_LIST_MAX_LENGTH:
            return "Failed"
        self._local_list = updated
        self._list_version = version
        for tag in updated:
            self._cache.pop(tag, None)
        return "Accepted"

    def local_list_version(self) -> int:
        """GetLocalListVersion: 0 if no list was ever installed."""
        return self._list_version

    def local_list(self) -> dict[str, str]:
        """A copy of the local authorisation list (tag -> status)."""
        return dict(self._local_list)

    # -- transactions --------------------------------------------------------------------------

    def remote_start(
        self,
        id_tag: str,
        evse_id: int | None,
        profile: ChargingProfile | None = None,
        remote_id: int | None = None,
    ) -> int | None:
        """Remote start (see Station.remote_start); the EVSE chosen, None = Rejected. The tag
        is authorised first when AuthorizeRemoteTxRequests is set; a profile needs smart
        charging enabled."""
        if profile is not None and not self.settings.smart_charging_enabled:
            return None
        model = self.station.remote_start_model
        if model.connection_timeout_s != self.settings.connection_timeout_s:
            self.station.remote_start_model = RemoteStartModel(
                model.plug_in_s, model.no_show_p, self.settings.connection_timeout_s
            )
        return self.station.remote_start(
            id_tag, evse_id, profile, remote_id, self.settings.authorize_remote_start
        )

    def remote_stop(self, tx_seq: int) -> bool:
        """Remote stop of the running transaction with station key `tx_seq`; False if none."""
        tx = self.transaction_by_seq(tx_seq)
        return tx is not None and tx.connector.end_transaction(StopReason.REMOTE)

    def transaction_by_seq(self, seq: int) -> Transaction | None:
        """The running transaction with station key `seq`, if any."""
        for tx in self.station.transactions():
            if tx.seq == seq:
                return tx
        return None

    # -- reset ---------------------------------------------------------------------------------

    def reset(self, kind: ResetKind, evse_id: int | None = None) -> ResetStatus:
        """Reset. hard/immediate end transactions with HardReset, soft with SoftReset; the
        station is down for a drawn reboot time and the listener closes the connection.
        on_idle with transactions running is "Scheduled": no new one starts, and the reset
        happens when the last ends. With `evse_id` (2.0.1) only that EVSE resets."""
        station = self.station
        if not station.up or self._installing():
            return "Rejected"
        reason = StopReason.SOFT_RESET if kind == "soft" else StopReason.HARD_RESET
        if evse_id:
            connector = station.connector(evse_id)
            if connector is None:
                return "Rejected"
            tx = connector.tx
            if kind == "on_idle" and tx is not None and tx.open:
                self.env.process(self._evse_reset_when_idle(evse_id, tx))
                return "Scheduled"
            station.reboot_evse(evse_id, reason, self.draw(self.behaviour.reboot_s))
            return "Accepted"
        self._reset_token += 1
        if kind == "on_idle" and station.transactions():
            station.hold()
            self.env.process(self._reset_when_idle(self._reset_token))
            return "Scheduled"
        self._reboot(reason, "RemoteReset")
        return "Accepted"

    def _reboot(self, reason: StopReason, boot_reason: str) -> float:
        downtime = self.draw(self.behaviour.reboot_s)
        self.boot_reason = boot_reason
        self.station.reboot(reason, downtime)
        self.listener.rebooting(downtime)
        return downtime

    def power_lost(self, downtime_s: float) -> None:
        """The station lost power (Station.power_loss): whatever reboot was under way, the
        next boot is a PowerUp (2.0.1 BootReason). Wired with the link to on_power_loss."""
        self.boot_reason = "PowerUp"

    def _reset_when_idle(self, token: int) -> Any:
        try:
            yield self.station.when_idle()
        finally:
            self.station.release()
        if token == self._reset_token and self.station.up:
            self._reboot(StopReason.SOFT_RESET, "RemoteReset")

    def _evse_reset_when_idle(self, evse_id: int, tx: Transaction) -> Any:
        yield self.station.when_transaction_ends(tx)
        self.station.reboot_evse(evse_id, StopReason.SOFT_RESET, self.draw(self.behaviour.reboot_s))

    def _installing(self) -> bool:
        return self.firmware_state in (FirmwareStatus.INSTALLING, FirmwareStatus.INSTALL_REBOOTING)

    # -- availability, unlock, reservations ----------------------------------------------------

    def change_availability(self, evse_id: int | None, operative: bool) -> Availability:
        """ChangeAvailability (see Station.change_availability)."""
        return self.station.change_availability(evse_id, operative)

    def unlock(self, evse_id: int, stop_transaction: bool) -> UnlockStatus:
        """UnlockConnector (see Station.unlock)."""
        return self.station.unlock(evse_id, stop_transaction)

    def reserve(
        self, reservation_id: int, evse_id: int | None, id_tag: str, expiry_s: float
    ) -> ReserveStatus:
        """ReserveNow; Rejected when reservations are disabled."""
        if not self.settings.reservation_enabled:
            return "Rejected"
        return self.station.reserve(reservation_id, evse_id, id_tag, expiry_s)

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation; False (Rejected) for an unknown id."""
        return self.station.cancel_reservation(reservation_id)

    def _reservation_ended(self, reservation_id: int, reason: str) -> None:
        self.listener.reservation_ended(reservation_id, reason, self.env.now)

    # -- smart charging ------------------------------------------------------------------------

    def install_profile(self, profile: ChargingProfile, keep_disjoint: bool = False) -> bool:
        """SetChargingProfile; False = Rejected (also when smart charging is disabled).
        `keep_disjoint`: 2.0.1's rule, where profiles of one purpose and stack level coexist
        when their validity periods do not overlap."""
        if not self.settings.smart_charging_enabled:
            return False
        return self.station.install_profile(profile, keep_disjoint)

    def clear_profiles(
        self,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """ClearChargingProfile: how many were removed (0 = Unknown)."""
        return self.station.clear_profiles(profile_id, evse_id, purpose, stack_level)

    def composite_schedule(
        self, evse_id: int, duration_s: float, unit: ChargingRateUnit
    ) -> ChargingSchedule | None:
        """GetCompositeSchedule from now; None (Rejected) for an unknown EVSE."""
        if evse_id and self.station.connector(evse_id) is None:
            return None
        return self.station.composite_schedule(evse_id, duration_s, unit)

    def profiles(
        self,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
        profile_ids: tuple[int, ...] | None = None,
    ) -> tuple[ChargingProfile, ...]:
        """Installed profiles matching every criterion given (GetChargingProfiles)."""
        if self.station._profiles is None:
            return ()
        found = self.station.profiles.profiles(evse_id, purpose, stack_level)
        if profile_ids is not None:
            found = tuple(p for p in found if p.profile_id in profile_ids)
        return found

    # -- settings that act at once -------------------------------------------------------------

    def set_meter_interval(self, seconds: float) -> None:
        """Meter samples every `seconds` (0: none), from now on."""
        self.settings.meter_interval_s = seconds
        self.station.set_meter_interval(seconds)
        self.listener.settings_changed()

    def set_heartbeat(self, seconds: float) -> None:
        """Heartbeat every `seconds` (simulated); the listener re-arms the timer."""
        self.settings.heartbeat_s = seconds
        self.listener.settings_changed()

    # -- firmware ------------------------------------------------------------------------------

    def update_firmware(
        self,
        location: str,
        retrieve_s: float,
        install_s: float | None = None,
        retries: int = 0,
        retry_interval_s: float = 60.0,
        request_id: int | None = None,
        signed: bool = False,
    ) -> FirmwareAnswer:
        """UpdateFirmware: download from `retrieve_s` (simulated s; DownloadScheduled if
        later), retry a failed download `retries` times after `retry_interval_s`, verify the
        signature if `signed`, wait for `install_s` (InstallScheduled) and for the station to
        idle (no new transaction starts meanwhile), install, reboot, and report Installed once
        up with the new version. A request while one runs cancels it ("AcceptedCanceled"),
        unless it is already installing ("Rejected")."""
        if self._installing():
            return "Rejected"
        answer: FirmwareAnswer = "Accepted"
        running = self._firmware
        if running is not None and running.process is not None and running.process.is_alive:
            running.process.interrupt("superseded")
            answer = "AcceptedCanceled"
        operation = _Operation(request_id)
        operation.process = self.env.process(
            self._firmware_run(
                operation, location, retrieve_s, install_s, retries, retry_interval_s, signed
            )
        )
        self._firmware = operation
        return answer

    def _firmware_status(self, status: FirmwareStatus, request_id: int | None) -> None:
        self.firmware_state = status
        self.listener.firmware_status(status, request_id, self.env.now)

    def _firmware_run(
        self,
        op: _Operation,
        location: str,
        retrieve_s: float,
        install_s: float | None,
        retries: int,
        retry_interval_s: float,
        signed: bool,
    ) -> Any:
        env, behaviour, station = self.env, self.behaviour, self.station
        rid = op.request_id
        try:
            if retrieve_s > env.now:
                self._firmware_status(FirmwareStatus.DOWNLOAD_SCHEDULED, rid)
                yield env.timeout(retrieve_s - env.now)
            attempts = max(retries, 0) + 1
            for attempt in range(attempts):
                self._firmware_status(FirmwareStatus.DOWNLOADING, rid)
                yield env.timeout(self.draw(behaviour.firmware_download_s))
                if self.rng.random() >= behaviour.firmware_download_failure_p:
                    break
                self._firmware_status(FirmwareStatus.DOWNLOAD_FAILED, rid)
                if attempt + 1 == attempts:
                    return
                yield env.timeout(max(retry_interval_s, 0.0))
            self._firmware_status(FirmwareStatus.DOWNLOADED, rid)
            if signed:
                self._firmware_status(FirmwareStatus.SIGNATURE_VERIFIED, rid)
            if install_s is not None and install_s > env.now:
                self._firmware_status(FirmwareStatus.INSTALL_SCHEDULED, rid)
                yield env.timeout(install_s - env.now)
            station.hold()
            op.holding = True
            # Installs once no transaction runs and the station is up (a reset may intervene).
            while station.transactions() or not station.up:
                yield station.when_idle() if station.up else station.when_up()
            self._firmware_status(FirmwareStatus.INSTALLING, rid)
        except simpy.Interrupt:
            if op.holding:
                op.holding = False
                station.release()
            return
        # Installing is not interrupted: a new request is refused meanwhile.
        yield env.timeout(self.draw(behaviour.firmware_install_s))
        if self.rng.random() < behaviour.firmware_install_failure_p:
            op.holding = False
            station.release()
            self._firmware_status(FirmwareStatus.INSTALLATION_FAILED, rid)
            return
        self._firmware_status(FirmwareStatus.INSTALL_REBOOTING, rid)
        self.firmware_version = firmware_name(location)
        downtime = self._reboot(StopReason.REBOOT, "FirmwareUpdate")
        op.holding = False
        station.release()  # the reboot keeps new transactions out until it is up
        yield env.timeout(downtime)
        self._firmware_status(FirmwareStatus.INSTALLED, rid)

    # -- diagnostics / logs --------------------------------------------------------------------

    @property
    def upload_busy(self) -> bool:
        """An upload is under way (a new request cancels it: 2.0.1 AcceptedCanceled)."""
        return self._upload is not None and self._upload.alive

    def upload_logs(
        self,
        location: str,
        request_id: int | None = None,
        retries: int = 0,
        retry_interval_s: float = 60.0,
        kind: str = "Diagnostics",
    ) -> str:
        """GetDiagnostics / GetLog: returns the file name. Uploading, then Uploaded or (after
        `retries` more attempts) UploadFailed after drawn durations. The target is recorded in
        `uploads` as (t, location, file name); nothing is ever sent anywhere."""
        running = self._upload
        if running is not None and running.process is not None and running.process.is_alive:
            running.process.interrupt("superseded")
        stamp = int(self.env.now)
        file_name = f"{self.station.charger_id}-{kind}-{stamp}.log"
        operation = _Operation(request_id)
        operation.process = self.env.process(
            self._upload_run(operation, location, file_name, retries, retry_interval_s)
        )
        self._upload = operation
        return file_name

    def _upload_status(self, status: UploadStatus, request_id: int | None) -> None:
        self.upload_state = status
        self.listener.upload_status(status, request_id, self.env.now)

    def _upload_run(
        self,
        op: _Operation,
        location: str,
        file_name: str,
        retries: int,
        retry_interval_s: float,
    ) -> Any:
        env, behaviour = self.env, self.behaviour
        try:
            attempts = max(retries, 0) + 1
            for attempt in range(attempts):
                self._upload_status(UploadStatus.UPLOADING, op.request_id)
                yield env.timeout(self.draw(behaviour.upload_s))
                if self.rng.random() >= behaviour.upload_failure_p:
                    self.uploads.append((env.now, location, file_name))
                    self._upload_status(UploadStatus.UPLOADED, op.request_id)
                    return
                if attempt + 1 < attempts:
                    yield env.timeout(max(retry_interval_s, 0.0))
            self._upload_status(UploadStatus.UPLOAD_FAILED, op.request_id)
        except simpy.Interrupt:
            return

    # -- data transfer -------------------------------------------------------------------------

    def data_transfer(
        self, vendor_id: str, message_id: str | None, data: str | None
    ) -> tuple[DataTransferStatus, str | None]:
        """DataTransfer: (status, data) of the first matching rule; UnknownMessageId when
        rules name the vendor but not the message, else UnknownVendorId."""
        vendor_known = False
        for rule in self.behaviour.data_transfer_rules:
            if rule.vendor_id != vendor_id:
                continue
            vendor_known = True
            if rule.message_id is None or rule.message_id == message_id:
                return rule.status, rule.data
        return ("UnknownMessageId" if vendor_known else "UnknownVendorId"), None
