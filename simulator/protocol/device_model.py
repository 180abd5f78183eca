"""The OCPP 2.0.1 device model of a virtual charger: the components and variables it exposes,
and GetVariables / SetVariables / GetBaseReport over them (use cases B05-B08).

Every variable maps onto something the simulator really has: a ChargerSettings field, the
station's state (connector statuses, rating, installed profiles) or a value the operations keep
and use (the measurands of a triggered MeterValues, the organisation in a CSR). Variables the
simulator cannot honour are not exposed, or are exposed ReadOnly with the value it behaves by.

The variable table is built once per process and shared by every charger; a charger's own
state lives behind a `DeviceHost` (its operations object), so 10,000 chargers cost nothing here.
Sans-I/O: nothing in this module sends or awaits; callers run it inside the simulation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from ocpp.v201.enums import MeasurandEnumType

from models.physics import CurrentType

if TYPE_CHECKING:
    from simulator.charger import ChargerSettings
    from simulator.protocol.base import ChargerIdentity
    from simulator.station import Connector, Station


class Mutability(StrEnum):
    """MutabilityEnumType."""

    READ_ONLY = "ReadOnly"
    WRITE_ONLY = "WriteOnly"
    READ_WRITE = "ReadWrite"


class DataType(StrEnum):
    """DataEnumType: how a variable's value is written as a string."""

    STRING = "string"
    DECIMAL = "decimal"
    INTEGER = "integer"
    DATE_TIME = "dateTime"
    BOOLEAN = "boolean"
    OPTION_LIST = "OptionList"
    SEQUENCE_LIST = "SequenceList"
    MEMBER_LIST = "MemberList"


class Attribute(StrEnum):
    """AttributeEnumType; a missing attributeType means Actual."""

    ACTUAL = "Actual"
    TARGET = "Target"
    MIN_SET = "MinSet"
    MAX_SET = "MaxSet"


class Scope(StrEnum):
    """Where a component lives: once per station, once per EVSE, or once per connector."""

    STATION = "station"
    EVSE = "evse"
    CONNECTOR = "connector"


class DeviceHost(Protocol):
    """One charger as its device model sees it: settings, station and the few values the
    protocol layer keeps. The 2.0.1 operations object implements it; every call happens inside
    the simulation."""

    @property
    def settings(self) -> ChargerSettings: ...

    @property
    def station(self) -> Station: ...

    @property
    def identity(self) -> ChargerIdentity: ...

    def now_iso(self) -> str:
        """The charger's clock (simulated time) as an OCPP timestamp."""
        ...

    def heartbeat_s(self) -> float:
        """The heartbeat interval in force (the last boot's answer, or a SetVariables)."""
        ...

    def set_heartbeat(self, seconds: float) -> None:
        """Re-arm the heartbeat at once with a new interval."""
        ...

    def set_meter_interval(self, seconds: float) -> None:
        """Sample running transactions every `seconds` from now on (0: no periodic samples)."""
        ...

    def set_measurands(self, measurands: tuple[str, ...]) -> None:
        """Report these measurands in periodic transaction meter values."""
        ...

    def profile_count(self) -> int:
        """How many charging profiles are installed."""
        ...

    def kept(self, key: str, default: str) -> str:
        """A value the protocol layer keeps for this charger (no ChargerSettings field)."""
        ...

    def keep(self, key: str, value: str) -> None: ...


# A getter reads a value for an EVSE id (0 for station-level components); a setter receives
# the value already parsed and checked against the variable's type and limits.
Getter = Callable[[DeviceHost, int], str]
Setter = Callable[[DeviceHost, int, Any], None]


@dataclass(frozen=True, slots=True)
class Variable:
    """One component variable: its characteristics, and how it reads and writes the charger.

    `set` None makes it ReadOnly. `max_set` gives a ReadOnly MaxSet attribute (an EVSE's
    rated power). For strings `max_limit` is the maximum length; for numbers the range."""

    component: str
    name: str
    data_type: DataType
    get: Getter
    set: Setter | None = None
    instance: str | None = None
    component_instance: str | None = None
    scope: Scope = Scope.STATION
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values: tuple[str, ...] | None = None
    max_set: Getter | None = None
    persistent: bool = True

    @property
    def mutability(self) -> Mutability:
        return Mutability.READ_ONLY if self.set is None else Mutability.READ_WRITE

    def attributes(self) -> tuple[Attribute, ...]:
        if self.max_set is not None:
            return (Attribute.ACTUAL, Attribute.MAX_SET)
        return (Attribute.ACTUAL,)

    def characteristics(self) -> dict[str, Any]:
        """VariableCharacteristicsType of this variable."""
        out: dict[str, Any] = {"dataType": self.data_type.value, "supportsMonitoring": False}
        if self.unit is not None:
            out["unit"] = self.unit
        if self.min_limit is not None:
            out["minLimit"] = self.min_limit
        if self.max_limit is not None:
            out["maxLimit"] = self.max_limit
        if self.values is not None:
            out["valuesList"] = ",".join(self.values)
        return out

    def parse(self, text: str) -> Any:
        """The value `text` stands for, checked against type, list and limits; raises
        ValueError with an OCPP reasonCode ("InvalidValue", "ValueOutOfRange")."""
        kind = self.data_type
        if kind is DataType.BOOLEAN:
            lowered = text.strip().lower()
            if lowered not in ("true", "false"):
                raise ValueError("InvalidValue")
            return lowered == "true"
        if kind is DataType.INTEGER:
            if not _INTEGER.fullmatch(text.strip()):
                raise ValueError("InvalidValue")
            number: float = int(text)
            self._check_range(number)
            return number
        if kind is DataType.DECIMAL:
            try:
                number = float(text)
            except ValueError:
                raise ValueError("InvalidValue") from None
            if not math.isfinite(number):
                raise ValueError("InvalidValue")
            self._check_range(number)
            return number
        if kind is DataType.DATE_TIME:
            try:
                datetime.fromisoformat(text.strip().replace("z", "Z"))
            except ValueError:
                raise ValueError("InvalidValue") from None
            return text.strip()
        if kind is DataType.OPTION_LIST:
            if self.values is not None and text not in self.values:
                raise ValueError("InvalidValue")
            return text
        if kind in (DataType.MEMBER_LIST, DataType.SEQUENCE_LIST):
            items = tuple(item.strip() for item in text.split(",")) if text.strip() else ()
            if len(set(items)) != len(items) or any(not item for item in items):
                raise ValueError("InvalidValue")
            if self.values is not None and any(item not in self.values for item in items):
                raise ValueError("InvalidValue")
            if self.max_limit is not None and len(items) > self.max_limit:
                raise ValueError("ValueOutOfRange")
            return items
        if self.max_limit is not None and len(text) > self.max_limit:
            raise ValueError("ValueOutOfRange")
        return text

    def _check_range(self, number: float) -> None:
        if self.min_limit is not None and number < self.min_limit:
            raise ValueError("ValueOutOfRange")
        if self.max_limit is not None and number > self.max_limit:
            raise ValueError("ValueOutOfRange")


_INTEGER = re.compile(r"[+-]?\d{1,12}")

# -- value formatting ------------------------------------------------------------------------------


def _bool(value: bool) -> str:
    return "true" if value else "false"


def _number(value: float) -> str:
    """Integers without a decimal point; anything else as a short decimal."""
    if value == int(value):
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _const(text: str) -> Getter:
    def get(host: DeviceHost, evse_id: int) -> str:
        return text

    return get


def _setting(name: str, kind: type) -> Getter:
    """A getter of a ChargerSettings field."""

    def get(host: DeviceHost, evse_id: int) -> str:
        value = getattr(host.settings, name)
        if kind is bool:
            return _bool(bool(value))
        return _number(float(value))

    return get


def _assign(name: str) -> Setter:
    """A setter of a ChargerSettings field whose new value needs no further action (the
    charger reads it the next time it decides: authorisation, retries, timeouts)."""

    def assign(host: DeviceHost, evse_id: int, value: Any) -> None:
        setattr(host.settings, name, value)

    return assign


# -- station state ---------------------------------------------------------------------------------

# 2.0.1 availability of an EVSE/connector from the station's (1.6-named) connector status.
_AVAILABILITY: dict[str, str] = {
    "Available": "Available",
    "Preparing": "Occupied",
    "Charging": "Occupied",
    "SuspendedEV": "Occupied",
    "SuspendedEVSE": "Occupied",
    "Finishing": "Occupied",
    "Reserved": "Reserved",
    "Unavailable": "Unavailable",
    "Faulted": "Faulted",
}
_AVAILABILITY_VALUES = ("Available", "Occupied", "Reserved", "Unavailable", "Faulted")


def _connector(host: DeviceHost, evse_id: int) -> Connector:
    return host.station.connectors[evse_id - 1]


def _evse_availability(host: DeviceHost, evse_id: int) -> str:
    return _AVAILABILITY[_connector(host, evse_id).status]


def _station_availability(host: DeviceHost, evse_id: int) -> str:
    # The station is Unavailable once every EVSE has been made inoperative (G03 on evse 0).
    operative = any(c.operative for c in host.station.connectors)
    return "Available" if operative else "Unavailable"


def _supply_phases(host: DeviceHost, evse_id: int) -> str:
    rating = host.station.spec.rating
    return "0" if rating.kind is CurrentType.DC else str(rating.phases)


def _evse_power(host: DeviceHost, evse_id: int) -> str:
    connector = _connector(host, evse_id)
    return _number(round(connector.sample(host.station.env.now).power_w, 1))


def _evse_max_power(host: DeviceHost, evse_id: int) -> str:
    return _number(round(host.station.spec.rating.max_kw * 1000.0, 1))


def _station_power(host: DeviceHost, evse_id: int) -> str:
    now = host.station.env.now
    return _number(round(sum(c.sample(now).power_w for c in host.station.connectors), 1))


def _station_max_power(host: DeviceHost, evse_id: int) -> str:
    station = host.station
    return _number(round(station.spec.rating.max_kw * 1000.0 * len(station.connectors), 1))


def connector_type(station: Station) -> str:
    """The ConnectorEnumType of the station's connectors (ReserveNow checks it): a fleetsim AC
    EVSE is a Type 2 socket, a DC one a CCS2 cable."""
    return "cCCS2" if station.spec.rating.kind is CurrentType.DC else "sType2"


def _connector_type(host: DeviceHost, evse_id: int) -> str:
    return connector_type(host.station)


# -- settings with side effects --------------------------------------------------------------------


def _get_heartbeat(host: DeviceHost, evse_id: int) -> str:
    return _number(host.heartbeat_s())


def _set_heartbeat(host: DeviceHost, evse_id: int, value: Any) -> None:
    host.set_heartbeat(float(value))


def _set_meter_interval(host: DeviceHost, evse_id: int, value: Any) -> None:
    host.set_meter_interval(float(value))


def _get_measurands(host: DeviceHost, evse_id: int) -> str:
    return ",".join(host.settings.measurands)


def _set_measurands(host: DeviceHost, evse_id: int, value: Any) -> None:
    host.set_measurands(tuple(value))


def _kept(key: str, default: str) -> Getter:
    def get(host: DeviceHost, evse_id: int) -> str:
        return host.kept(key, default)

    return get


def _keep(key: str) -> Setter:
    def keep(host: DeviceHost, evse_id: int, value: Any) -> None:
        host.keep(key, ",".join(value) if isinstance(value, tuple) else str(value))

    return keep


# -- the table -------------------------------------------------------------------------------------

# The measurands the meter model can deliver (MeasurandEnumType values).
MEASURANDS: tuple[str, ...] = (
    MeasurandEnumType.energy_active_import_register.value,
    MeasurandEnumType.power_active_import.value,
    MeasurandEnumType.current_import.value,
    MeasurandEnumType.voltage.value,
    MeasurandEnumType.soc.value,
)
ALIGNED_MEASURANDS_KEY = "AlignedDataCtrlr.Measurands"
ORGANIZATION_KEY = "SecurityCtrlr.OrganizationName"
DEFAULT_ALIGNED_MEASURANDS = ",".join(MEASURANDS[:2])
DEFAULT_ORGANIZATION = "fleetsim"

# Limits this charger announces and enforces (DeviceDataCtrlr, SmartChargingCtrlr, ...).
ITEMS_PER_REPORT = 20
ITEMS_PER_GET_VARIABLES = 32
ITEMS_PER_SET_VARIABLES = 32
BYTES_PER_MESSAGE = 16384  # below the embedded CSMS's 64 KiB frame limit
REPORTING_VALUE_SIZE = 2500
CONFIGURATION_VALUE_SIZE = 1000
PROFILE_STACK_LEVEL = 8
PERIODS_PER_SCHEDULE = 24
MAX_CHARGING_PROFILES = 16
LOCAL_LIST_ITEMS_PER_MESSAGE = 250

_I, _B, _D = DataType.INTEGER, DataType.BOOLEAN, DataType.DECIMAL
_TX = "TransactionEvent"


def _variables() -> tuple[Variable, ...]:
    """Every variable of the model, grouped by component (the order of a full report)."""
    s = Scope
    return (
        # The station itself: identity, supply and availability.
        Variable(
            "ChargingStation",
            "AvailabilityState",
            DataType.OPTION_LIST,
            _station_availability,
            values=("Available", "Unavailable"),
        ),
        Variable("ChargingStation", "Available", _B, _const("true")),
        Variable("ChargingStation", "Model", DataType.STRING, lambda h, e: h.identity.model[:20]),
        Variable(
            "ChargingStation", "VendorName", DataType.STRING, lambda h, e: h.identity.vendor[:50]
        ),
        Variable(
            "ChargingStation", "SerialNumber", DataType.STRING, lambda h, e: h.identity.serial[:25]
        ),
        Variable("ChargingStation", "SupplyPhases", _I, _supply_phases),
        Variable(
            "ChargingStation",
            "Power",
            _D,
            _station_power,
            unit="W",
            max_set=_station_max_power,
            persistent=False,
        ),
        # One EVSE component per EVSE, one Connector per EVSE (connectorId 1).
        Variable(
            "EVSE",
            "AvailabilityState",
            DataType.OPTION_LIST,
            _evse_availability,
            scope=s.EVSE,
            values=_AVAILABILITY_VALUES,
            persistent=False,
        ),
        Variable("EVSE", "Available", _B, _const("true"), scope=s.EVSE),
        Variable("EVSE", "AllowReset", _B, _const("true"), scope=s.EVSE),
        Variable(
            "EVSE",
            "Power",
            _D,
            _evse_power,
            scope=s.EVSE,
            unit="W",
            max_set=_evse_max_power,
            persistent=False,
        ),
        Variable("EVSE", "SupplyPhases", _I, _supply_phases, scope=s.EVSE),
        Variable(
            "Connector",
            "AvailabilityState",
            DataType.OPTION_LIST,
            _evse_availability,
            scope=s.CONNECTOR,
            values=_AVAILABILITY_VALUES,
            persistent=False,
        ),
        Variable("Connector", "Available", _B, _const("true"), scope=s.CONNECTOR),
        Variable("Connector", "ConnectorType", DataType.STRING, _connector_type, scope=s.CONNECTOR),
        Variable("Connector", "SupplyPhases", _I, _supply_phases, scope=s.CONNECTOR),
        # Communication.
        Variable(
            "OCPPCommCtrlr",
            "HeartbeatInterval",
            _I,
            _get_heartbeat,
            _set_heartbeat,
            unit="s",
            min_limit=1,
            max_limit=86400,
        ),
        Variable(
            "OCPPCommCtrlr",
            "MessageAttempts",
            _I,
            _setting("message_attempts", int),
            _assign("message_attempts"),
            instance=_TX,
            min_limit=1,
            max_limit=10,
        ),
        Variable(
            "OCPPCommCtrlr",
            "MessageAttemptInterval",
            _I,
            _setting("message_retry_s", float),
            _assign("message_retry_s"),
            instance=_TX,
            unit="s",
            min_limit=1,
            max_limit=86400,
        ),
        Variable(
            "OCPPCommCtrlr",
            "FileTransferProtocols",
            DataType.MEMBER_LIST,
            _const("FTP,FTPS,HTTP,HTTPS,SFTP"),
            values=("FTP", "FTPS", "HTTP", "HTTPS", "SFTP"),
        ),
        Variable("OCPPCommCtrlr", "UnlockOnEVSideDisconnect", _B, _const("true")),
        # Sampled (transaction) meter data: intervals change the traffic at once.
        Variable("SampledDataCtrlr", "Enabled", _B, _const("true")),
        Variable(
            "SampledDataCtrlr",
            "TxUpdatedInterval",
            _I,
            _setting("meter_interval_s", float),
            _set_meter_interval,
            unit="s",
            min_limit=0,
            max_limit=86400,
        ),
        Variable(
            "SampledDataCtrlr",
            "TxUpdatedMeasurands",
            DataType.MEMBER_LIST,
            _get_measurands,
            _set_measurands,
            values=MEASURANDS,
        ),
        Variable(
            "SampledDataCtrlr",
            "TxStartedMeasurands",
            DataType.MEMBER_LIST,
            _const(MEASURANDS[0]),
            values=MEASURANDS,
        ),
        Variable(
            "SampledDataCtrlr",
            "TxEndedMeasurands",
            DataType.MEMBER_LIST,
            _const(MEASURANDS[0]),
            values=MEASURANDS,
        ),
        Variable("SampledDataCtrlr", "TxEndedInterval", _I, _const("0"), unit="s"),
        # Clock-aligned data is not sampled; its measurands serve triggered MeterValues.
        Variable("AlignedDataCtrlr", "Enabled", _B, _const("false")),
        Variable("AlignedDataCtrlr", "Interval", _I, _const("0"), unit="s"),
        Variable(
            "AlignedDataCtrlr",
            "Measurands",
            DataType.MEMBER_LIST,
            _kept(ALIGNED_MEASURANDS_KEY, DEFAULT_ALIGNED_MEASURANDS),
            _keep(ALIGNED_MEASURANDS_KEY),
            values=MEASURANDS,
        ),
        # Authorisation.
        Variable("AuthCtrlr", "Enabled", _B, _const("true")),
        Variable(
            "AuthCtrlr",
            "AuthorizeRemoteStart",
            _B,
            _setting("authorize_remote_start", bool),
            _assign("authorize_remote_start"),
        ),
        Variable(
            "AuthCtrlr",
            "LocalAuthorizeOffline",
            _B,
            _setting("local_authorize_offline", bool),
            _assign("local_authorize_offline"),
        ),
        Variable(
            "AuthCtrlr",
            "LocalPreAuthorize",
            _B,
            _setting("local_pre_authorize", bool),
            _assign("local_pre_authorize"),
        ),
        Variable(
            "AuthCtrlr",
            "OfflineTxForUnknownIdEnabled",
            _B,
            _setting("allow_offline_unknown", bool),
            _assign("allow_offline_unknown"),
        ),
        Variable(
            "AuthCacheCtrlr",
            "Enabled",
            _B,
            _setting("auth_cache_enabled", bool),
            _assign("auth_cache_enabled"),
        ),
        Variable("AuthCacheCtrlr", "Available", _B, _const("true")),
        Variable(
            "LocalAuthListCtrlr",
            "Enabled",
            _B,
            _setting("local_auth_list_enabled", bool),
            _assign("local_auth_list_enabled"),
        ),
        Variable("LocalAuthListCtrlr", "Available", _B, _const("true")),
        Variable(
            "LocalAuthListCtrlr", "ItemsPerMessage", _I, _const(str(LOCAL_LIST_ITEMS_PER_MESSAGE))
        ),
        # Transactions.
        Variable(
            "TxCtrlr",
            "EVConnectionTimeOut",
            _I,
            _setting("connection_timeout_s", float),
            _assign("connection_timeout_s"),
            unit="s",
            min_limit=1,
            max_limit=3600,
        ),
        Variable(
            "TxCtrlr",
            "StopTxOnEVSideDisconnect",
            _B,
            _setting("stop_tx_on_ev_disconnect", bool),
            _assign("stop_tx_on_ev_disconnect"),
        ),
        # A transaction starts once the EV is plugged in and authorised, and ends when either
        # stops being true: the station model's fixed behaviour.
        Variable(
            "TxCtrlr",
            "TxStartPoint",
            DataType.MEMBER_LIST,
            _const("PowerPathClosed"),
            values=(
                "ParkingBayOccupancy",
                "EVConnected",
                "Authorized",
                "DataSigned",
                "PowerPathClosed",
                "EnergyTransfer",
            ),
        ),
        Variable(
            "TxCtrlr",
            "TxStopPoint",
            DataType.MEMBER_LIST,
            _const("EVConnected,Authorized"),
            values=(
                "ParkingBayOccupancy",
                "EVConnected",
                "Authorized",
                "PowerPathClosed",
                "EnergyTransfer",
            ),
        ),
        # Smart charging.
        Variable(
            "SmartChargingCtrlr",
            "Enabled",
            _B,
            _setting("smart_charging_enabled", bool),
            _assign("smart_charging_enabled"),
        ),
        Variable("SmartChargingCtrlr", "Available", _B, _const("true")),
        Variable(
            "SmartChargingCtrlr",
            "EntriesChargingProfiles",
            _I,
            lambda h, e: str(h.profile_count()),
            max_limit=MAX_CHARGING_PROFILES,
            persistent=False,
        ),
        Variable("SmartChargingCtrlr", "ProfileStackLevel", _I, _const(str(PROFILE_STACK_LEVEL))),
        Variable("SmartChargingCtrlr", "PeriodsPerSchedule", _I, _const(str(PERIODS_PER_SCHEDULE))),
        Variable(
            "SmartChargingCtrlr", "RateUnit", DataType.MEMBER_LIST, _const("A,W"), values=("A", "W")
        ),
        Variable("SmartChargingCtrlr", "Phases3to1", _B, _const("false")),
        # Reservations.
        Variable(
            "ReservationCtrlr",
            "Enabled",
            _B,
            _setting("reservation_enabled", bool),
            _assign("reservation_enabled"),
        ),
        Variable("ReservationCtrlr", "Available", _B, _const("true")),
        Variable("ReservationCtrlr", "NonEvseSpecific", _B, _const("true")),
        # The device model's own limits, enforced by the operations.
        Variable(
            "DeviceDataCtrlr",
            "ItemsPerMessage",
            _I,
            _const(str(ITEMS_PER_REPORT)),
            instance="GetReport",
        ),
        Variable(
            "DeviceDataCtrlr",
            "ItemsPerMessage",
            _I,
            _const(str(ITEMS_PER_GET_VARIABLES)),
            instance="GetVariables",
        ),
        Variable(
            "DeviceDataCtrlr",
            "ItemsPerMessage",
            _I,
            _const(str(ITEMS_PER_SET_VARIABLES)),
            instance="SetVariables",
        ),
        Variable(
            "DeviceDataCtrlr",
            "BytesPerMessage",
            _I,
            _const(str(BYTES_PER_MESSAGE)),
            instance="GetReport",
        ),
        Variable(
            "DeviceDataCtrlr",
            "BytesPerMessage",
            _I,
            _const(str(BYTES_PER_MESSAGE)),
            instance="GetVariables",
        ),
        Variable(
            "DeviceDataCtrlr",
            "BytesPerMessage",
            _I,
            _const(str(BYTES_PER_MESSAGE)),
            instance="SetVariables",
        ),
        Variable("DeviceDataCtrlr", "ReportingValueSize", _I, _const(str(REPORTING_VALUE_SIZE))),
        Variable(
            "DeviceDataCtrlr", "ConfigurationValueSize", _I, _const(str(CONFIGURATION_VALUE_SIZE))
        ),
        # The simulated clock is the charger's clock.
        Variable(
            "ClockCtrlr", "DateTime", DataType.DATE_TIME, lambda h, e: h.now_iso(), persistent=False
        ),
        Variable(
            "ClockCtrlr",
            "TimeSource",
            DataType.SEQUENCE_LIST,
            _const("Heartbeat"),
            values=(
                "Heartbeat",
                "NTP",
                "GPS",
                "RealTimeClock",
                "MobileNetwork",
                "RadioTimeTransmitter",
            ),
        ),
        # The organisation named in certificate signing requests.
        Variable(
            "SecurityCtrlr",
            "OrganizationName",
            DataType.STRING,
            _kept(ORGANIZATION_KEY, DEFAULT_ORGANIZATION),
            _keep(ORGANIZATION_KEY),
            max_limit=64,
        ),
    )


VARIABLES: tuple[Variable, ...] = _variables()

# Lookup: (component, variable, variable instance), names case-insensitive (OCPP says so),
# then the variable.
_Key = tuple[str, str | None, str, str | None]
_INDEX: dict[_Key, Variable] = {
    (v.component.lower(), v.component_instance, v.name.lower(), v.instance): v for v in VARIABLES
}
_COMPONENTS: dict[tuple[str, str | None], Scope] = {
    (v.component.lower(), v.component_instance): v.scope for v in VARIABLES
}


class Status(StrEnum):
    """Get/SetVariableStatusEnumType (the union of both)."""

    ACCEPTED = "Accepted"
    REJECTED = "Rejected"
    UNKNOWN_COMPONENT = "UnknownComponent"
    UNKNOWN_VARIABLE = "UnknownVariable"
    NOT_SUPPORTED_ATTRIBUTE_TYPE = "NotSupportedAttributeType"
    REBOOT_REQUIRED = "RebootRequired"


def _evse_of(component: dict[str, Any], scope: Scope, connectors: int) -> tuple[int, bool]:
    """(EVSE id, whether the component's `evse` field names an instance that exists)."""
    evse = component.get("evse")
    if scope is Scope.STATION:
        return 0, evse is None
    if evse is None:
        return 0, False
    evse_id = evse["id"]
    if not 1 <= evse_id <= connectors:
        return evse_id, False
    connector_id = evse.get("connectorId")
    if scope is Scope.EVSE:
        return evse_id, connector_id is None
    return evse_id, connector_id == 1


def find(
    host: DeviceHost, component: dict[str, Any], variable: dict[str, Any]
) -> tuple[Variable | None, int, Status]:
    """The variable a ComponentType/VariableType pair names, the EVSE it is on, and
    Accepted, UnknownComponent or UnknownVariable."""
    comp_key = (component["name"].lower(), component.get("instance"))
    scope = _COMPONENTS.get(comp_key)
    if scope is None:
        return None, 0, Status.UNKNOWN_COMPONENT
    evse_id, exists = _evse_of(component, scope, len(host.station.connectors))
    if not exists:
        return None, evse_id, Status.UNKNOWN_COMPONENT
    found = _INDEX.get((*comp_key, variable["name"].lower(), variable.get("instance")))
    if found is None:
        return None, evse_id, Status.UNKNOWN_VARIABLE
    return found, evse_id, Status.ACCEPTED


def get_variable(host: DeviceHost, item: dict[str, Any]) -> dict[str, Any]:
    """One GetVariableResultType for one GetVariableDataType (B06)."""
    component, variable = item["component"], item["variable"]
    result: dict[str, Any] = {"component": component, "variable": variable}
    attribute = item.get("attributeType")
    if attribute is not None:
        result["attributeType"] = attribute
    found, evse_id, status = find(host, component, variable)
    if found is not None:
        wanted = Attribute(attribute or Attribute.ACTUAL)
        if wanted not in found.attributes():
            status = Status.NOT_SUPPORTED_ATTRIBUTE_TYPE
        else:
            getter = found.max_set if wanted is Attribute.MAX_SET else found.get
            assert getter is not None
            result["attributeValue"] = getter(host, evse_id)[:REPORTING_VALUE_SIZE]
    result["attributeStatus"] = status.value
    return result


def set_variable(host: DeviceHost, item: dict[str, Any]) -> dict[str, Any]:
    """One SetVariableResultType for one SetVariableDataType (B05): the value is parsed,
    checked and written through the variable's setter, or the attempt is refused with a
    status and a reasonCode."""
    component, variable = item["component"], item["variable"]
    result: dict[str, Any] = {"component": component, "variable": variable}
    attribute = item.get("attributeType")
    if attribute is not None:
        result["attributeType"] = attribute
    found, evse_id, status = find(host, component, variable)
    reason: str | None = None
    if found is not None:
        wanted = Attribute(attribute or Attribute.ACTUAL)
        if wanted not in found.attributes():
            status = Status.NOT_SUPPORTED_ATTRIBUTE_TYPE
        elif found.set is None or wanted is not Attribute.ACTUAL:
            status, reason = Status.REJECTED, "ReadOnly"
        else:
            text = item["attributeValue"]
            try:
                if len(text) > CONFIGURATION_VALUE_SIZE:
                    raise ValueError("ValueOutOfRange")
                value = found.parse(text)
            except ValueError as exc:
                status, reason = Status.REJECTED, str(exc)
            else:
                found.set(host, evse_id, value)
    result["attributeStatus"] = status.value
    if reason is not None:
        result["attributeStatusInfo"] = {"reasonCode": reason}
    return result


class ReportBase(StrEnum):
    """ReportBaseEnumType."""

    CONFIGURATION = "ConfigurationInventory"
    FULL = "FullInventory"
    SUMMARY = "SummaryInventory"


def _instances(host: DeviceHost, variable: Variable) -> Iterator[tuple[int, dict[str, Any]]]:
    """(EVSE id, ComponentType) of every instance of the variable's component."""
    base: dict[str, Any] = {"name": variable.component}
    if variable.component_instance is not None:
        base["instance"] = variable.component_instance
    if variable.scope is Scope.STATION:
        yield 0, base
        return
    for connector in host.station.connectors:
        evse: dict[str, Any] = {"id": connector.evse_id}
        if variable.scope is Scope.CONNECTOR:
            evse["connectorId"] = 1
        yield connector.evse_id, {**base, "evse": evse}


def report_data(host: DeviceHost, base: ReportBase) -> list[dict[str, Any]]:
    """The ReportDataType items of a base report (B07).

    ConfigurationInventory holds the variables a CSMS can set; SummaryInventory the
    availability of the station, every EVSE and every connector; FullInventory everything."""
    out: list[dict[str, Any]] = []
    for variable in VARIABLES:
        if base is ReportBase.CONFIGURATION and variable.mutability is Mutability.READ_ONLY:
            continue
        if base is ReportBase.SUMMARY and variable.name != "AvailabilityState":
            continue
        var: dict[str, Any] = {"name": variable.name}
        if variable.instance is not None:
            var["instance"] = variable.instance
        for evse_id, component in _instances(host, variable):
            attributes: list[dict[str, Any]] = [
                {
                    "type": Attribute.ACTUAL.value,
                    "value": variable.get(host, evse_id)[:REPORTING_VALUE_SIZE],
                    "mutability": variable.mutability.value,
                    "persistent": variable.persistent,
                    "constant": False,
                }
            ]
            if variable.max_set is not None:
                attributes.append(
                    {
                        "type": Attribute.MAX_SET.value,
                        "value": variable.max_set(host, evse_id),
                        "mutability": Mutability.READ_ONLY.value,
                        "persistent": True,
                        "constant": True,
                    }
                )
            out.append(
                {
                    "component": component,
                    "variable": var,
                    "variableAttribute": attributes,
                    "variableCharacteristics": variable.characteristics(),
                }
            )
    return out
