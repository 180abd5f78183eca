"""The OCPP 1.6 configuration keys a virtual charger exposes (GetConfiguration /
ChangeConfiguration), each with its type, whether it is read-only, how a value is parsed, and
where it lives: a ChargerSettings field, the station, or the 1.6 operations object.

Pure table and parsers; the operations (simulator.protocol.ops16) run the setters inside the
simulation. Key names are matched case-insensitively (CiString50Type).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from models.physics import CurrentType
from simulator.protocol.v16 import MEASURANDS
from simulator.station import PROFILE_MAX_INSTALLED, PROFILE_MAX_STACK_LEVEL

if TYPE_CHECKING:
    from simulator.protocol.ops16 import V16Operations

# Limits the charger declares through its read-only keys and enforces (the profile store's
# limits are the station's own).
MAX_STACK_LEVEL = PROFILE_MAX_STACK_LEVEL  # ChargeProfileMaxStackLevel
MAX_PROFILES = PROFILE_MAX_INSTALLED  # MaxChargingProfilesInstalled
MAX_PERIODS = 24  # ChargingScheduleMaxPeriods
LOCAL_LIST_MAX = 1000  # LocalAuthListMaxLength
SEND_LOCAL_LIST_MAX = 100  # SendLocalListMaxLength
MEASURANDS_MAX = len(MEASURANDS)  # *DataMaxLength: every measurand the meter has, once
FEATURE_PROFILES = (
    "Core",
    "FirmwareManagement",
    "LocalAuthListManagement",
    "Reservation",
    "SmartCharging",
    "RemoteTrigger",
)
FILE_TRANSFER_PROTOCOLS = ("FTP", "FTPS", "HTTP", "HTTPS")
VALUE_MAX = 500  # ChangeConfiguration.value and KeyValue.value are CiString500Type

# A year in seconds: the upper bound of every interval key (a larger one is a typo).
_YEAR_S = 366 * 86400
_INTEGER = re.compile(r"[+-]?\d{1,12}")


class BadValue(ValueError):
    """A ChangeConfiguration value the key does not accept (answered Rejected)."""


# -- value parsers (raise BadValue) ---------------------------------------------------------------


def integer(lo: int, hi: int) -> Callable[[str], int]:
    """A parser of decimal integers in [lo, hi]."""

    def parse(text: str) -> int:
        text = text.strip()
        if not _INTEGER.fullmatch(text):
            raise BadValue(f"{text!r} is not an integer")
        value = int(text)
        if not lo <= value <= hi:
            raise BadValue(f"{value} is outside [{lo}, {hi}]")
        return value

    return parse


def boolean(text: str) -> bool:
    """1.6 booleans are the strings "true" and "false" (any case)."""
    lowered = text.strip().lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise BadValue(f"{text!r} is not true or false")


def measurand_list(text: str) -> tuple[str, ...]:
    """A comma-separated list of measurands this meter samples (empty: none), duplicates
    dropped, order kept. A measurand the meter cannot measure is a bad value."""
    found: list[str] = []
    for item in text.split(","):
        name = item.strip()
        if not name:
            continue
        if name not in MEASURANDS:
            raise BadValue(f"measurand {name!r} is not sampled by this charger")
        if name not in found:
            found.append(name)
    if len(found) > MEASURANDS_MAX:
        raise BadValue(f"at most {MEASURANDS_MAX} measurands")
    return tuple(found)


def _yes(value: bool) -> str:
    return "true" if value else "false"


def _whole(seconds: float) -> str:
    return str(round(seconds))


# -- the table ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConfigKey:
    """One configuration key: its read accessor and, for a writable key, a parser (raises
    BadValue) and a setter run inside the simulation. `reboot_required` keys store the value
    at once but take effect at the next reboot (ChangeConfiguration answers RebootRequired)."""

    name: str
    get: Callable[[V16Operations], str]
    parse: Callable[[str], Any] | None = None
    apply: Callable[[V16Operations, Any], None] | None = None
    reboot_required: bool = False

    @property
    def readonly(self) -> bool:
        return self.apply is None


def _set_field(field: str) -> Callable[[V16Operations, Any], None]:
    """The setter of a key that is just a ChargerSettings field (read where it is used)."""

    def apply(ops: V16Operations, value: Any) -> None:
        setattr(ops.control.settings, field, value)

    return apply


def _bool_setting(name: str, field: str) -> ConfigKey:
    return ConfigKey(
        name, lambda ops: _yes(getattr(ops.control.settings, field)), boolean, _set_field(field)
    )


def _phase_rotation(ops: V16Operations) -> str:
    rating = ops.control.station.spec.rating
    # Three-phase AC wired in the standard order; phase rotation means nothing otherwise.
    three_phase = rating.kind is CurrentType.AC and rating.phases == 3
    rotation = "RST" if three_phase else "NotApplicable"
    count = len(ops.control.station.connectors)
    return ",".join(f"{i}.{rotation}" for i in range(count + 1))


def _set_heartbeat(ops: V16Operations, value: int) -> None:
    # The link re-arms its timer at once and keeps ChargerSettings.heartbeat_s in step.
    ops.link.set_heartbeat(float(value))


def _set_meter_interval(ops: V16Operations, value: int) -> None:
    ops.control.set_meter_interval(float(value))


def _set_sampled(ops: V16Operations, value: tuple[str, ...]) -> None:
    ops.control.settings.measurands = value
    ops.settings_changed()


def _set_stop_sampled(ops: V16Operations, value: tuple[str, ...]) -> None:
    ops.stop_sampled = value
    ops.adapter.stop_measurands = frozenset(value)


def _set_aligned_interval(ops: V16Operations, value: int) -> None:
    ops.set_aligned_interval(value)


def _set_aligned(ops: V16Operations, value: tuple[str, ...]) -> None:
    ops.aligned_measurands = value


def _set_stop_aligned(ops: V16Operations, value: tuple[str, ...]) -> None:
    ops.stop_aligned = value


def _set_attr(attr: str) -> Callable[[V16Operations, Any], None]:
    def apply(ops: V16Operations, value: Any) -> None:
        setattr(ops, attr, value)

    return apply


def _set_seconds(field: str) -> Callable[[V16Operations, int], None]:
    def apply(ops: V16Operations, value: int) -> None:
        setattr(ops.control.settings, field, float(value))

    return apply


def _constant(value: str) -> Callable[[V16Operations], str]:
    return lambda ops: value


_KEYS: tuple[ConfigKey, ...] = (
    # Core profile
    _bool_setting("AllowOfflineTxForUnknownId", "allow_offline_unknown"),
    _bool_setting("AuthorizationCacheEnabled", "auth_cache_enabled"),
    _bool_setting("AuthorizeRemoteTxRequests", "authorize_remote_start"),
    ConfigKey(
        "ClockAlignedDataInterval",
        lambda ops: str(ops.aligned_interval_s),
        integer(0, _YEAR_S),
        _set_aligned_interval,
    ),
    ConfigKey(
        "ConnectionTimeOut",
        lambda ops: _whole(ops.control.settings.connection_timeout_s),
        integer(1, 3600),
        _set_seconds("connection_timeout_s"),
    ),
    ConfigKey("ConnectorPhaseRotation", _phase_rotation),
    ConfigKey("GetConfigurationMaxKeys", lambda ops: str(len(_KEYS))),
    ConfigKey(
        "HeartbeatInterval",
        lambda ops: _whole(ops.link.heartbeat_s),
        integer(0, _YEAR_S),
        _set_heartbeat,
    ),
    _bool_setting("LocalAuthorizeOffline", "local_authorize_offline"),
    _bool_setting("LocalPreAuthorize", "local_pre_authorize"),
    ConfigKey(
        "MeterValuesAlignedData",
        lambda ops: ",".join(ops.aligned_measurands),
        measurand_list,
        _set_aligned,
    ),
    ConfigKey("MeterValuesAlignedDataMaxLength", _constant(str(MEASURANDS_MAX))),
    ConfigKey(
        "MeterValuesSampledData",
        lambda ops: ",".join(ops.control.settings.measurands),
        measurand_list,
        _set_sampled,
    ),
    ConfigKey("MeterValuesSampledDataMaxLength", _constant(str(MEASURANDS_MAX))),
    ConfigKey(
        "MeterValueSampleInterval",
        lambda ops: _whole(ops.control.settings.meter_interval_s),
        integer(0, _YEAR_S),
        _set_meter_interval,
    ),
    # Every status change is reported as it happens: nothing is debounced.
    ConfigKey("MinimumStatusDuration", _constant("0")),
    ConfigKey("NumberOfConnectors", lambda ops: str(len(ops.control.station.connectors))),
    # A simulated reset never fails, so retries are never needed; the value is kept.
    ConfigKey(
        "ResetRetries",
        lambda ops: str(ops.reset_retries),
        integer(0, 10),
        _set_attr("reset_retries"),
    ),
    _bool_setting("StopTransactionOnEVSideDisconnect", "stop_tx_on_ev_disconnect"),
    ConfigKey(
        "StopTransactionOnInvalidId",
        lambda ops: _yes(ops.stop_on_invalid_id),
        boolean,
        _set_attr("stop_on_invalid_id"),
    ),
    ConfigKey(
        "StopTxnAlignedData",
        lambda ops: ",".join(ops.stop_aligned),
        measurand_list,
        _set_stop_aligned,
    ),
    ConfigKey("StopTxnAlignedDataMaxLength", _constant(str(MEASURANDS_MAX))),
    ConfigKey(
        "StopTxnSampledData",
        lambda ops: ",".join(ops.stop_sampled),
        measurand_list,
        _set_stop_sampled,
    ),
    ConfigKey("StopTxnSampledDataMaxLength", _constant(str(MEASURANDS_MAX))),
    ConfigKey("SupportedFeatureProfiles", _constant(",".join(FEATURE_PROFILES))),
    ConfigKey(
        "TransactionMessageAttempts",
        lambda ops: str(ops.control.settings.message_attempts),
        integer(1, 100),
        _set_field("message_attempts"),
    ),
    ConfigKey(
        "TransactionMessageRetryInterval",
        lambda ops: _whole(ops.control.settings.message_retry_s),
        integer(0, 86400),
        _set_seconds("message_retry_s"),
    ),
    # The simulated connector has no lock that could stay shut once the EV has gone.
    ConfigKey("UnlockConnectorOnEVSideDisconnect", _constant("true")),
    # Stored and reported (RebootRequired, per 1.6); the ping interval a connection really
    # uses is the run's ConnectSettings.ping_interval_s, shared by every charger's link.
    ConfigKey(
        "WebSocketPingInterval",
        lambda ops: str(ops.ping_interval_s),
        integer(0, 86400),
        _set_attr("ping_interval_s"),
        reboot_required=True,
    ),
    # LocalAuthListManagement profile
    _bool_setting("LocalAuthListEnabled", "local_auth_list_enabled"),
    ConfigKey("LocalAuthListMaxLength", _constant(str(LOCAL_LIST_MAX))),
    ConfigKey("SendLocalListMaxLength", _constant(str(SEND_LOCAL_LIST_MAX))),
    # Reservation profile: connector 0 reserves the first available connector.
    ConfigKey("ReserveConnectorZeroSupported", _constant("true")),
    # SmartCharging profile
    ConfigKey("ChargeProfileMaxStackLevel", _constant(str(MAX_STACK_LEVEL))),
    ConfigKey("ChargingScheduleAllowedChargingRateUnit", _constant("Current,Power")),
    ConfigKey("ChargingScheduleMaxPeriods", _constant(str(MAX_PERIODS))),
    ConfigKey("ConnectorSwitch3to1PhaseSupported", _constant("false")),
    ConfigKey("MaxChargingProfilesInstalled", _constant(str(MAX_PROFILES))),
    # FirmwareManagement profile
    ConfigKey("SupportedFileTransferProtocols", _constant(",".join(FILE_TRANSFER_PROTOCOLS))),
)

KEYS: dict[str, ConfigKey] = {key.name.lower(): key for key in _KEYS}
KEY_NAMES: tuple[str, ...] = tuple(key.name for key in _KEYS)


def lookup(name: str) -> ConfigKey | None:
    """The key called `name` (any case), or None if the charger has no such key."""
    return KEYS.get(name.lower())
