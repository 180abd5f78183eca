"""Scenario files: YAML validated by pydantic, with errors that name the file, field and problem.

A scenario names a seed, a start, a time zone, the EV mix and the sites (archetype, charger
count, charger model, overrides of any demand parameter). Every field has a default, so a
three-line file runs. This module reads files and validates; it builds nothing.
"""

from __future__ import annotations

import itertools
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ocpp.v16.enums import Action as Action16
from ocpp.v16.enums import ChargePointErrorCode
from ocpp.v201.enums import Action as Action201
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from models.archetypes import ARCHETYPES, Archetype, get_archetype, with_overrides
from models.physics import CurrentType, EvseRating
from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    RecurrencyKind,
    SchedulePeriod,
)
from models.vehicles import CATALOGUE, VehicleMix, vehicle_by_name, vehicle_names
from simulator.safe_yaml import YamlFileError, one_line, read_yaml_file, shown

BUNDLED_DIR = Path(__file__).resolve().parent.parent / "scenarios"
DEFAULT_OFFLINE_START = datetime(2025, 1, 6, tzinfo=UTC)  # a Monday: reproducible by default
_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class ScenarioError(Exception):
    """A scenario that cannot be used; `problems` holds one line per problem, each naming the
    file, the field path and what was expected."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataTransferRuleConfig(_Strict):
    """How a charger answers a DataTransfer from the CSMS: the first rule whose vendor id (and
    message id, when the rule gives one) matches decides."""

    vendor_id: str = Field(min_length=1, max_length=255, description="vendorId to match")
    message_id: str | None = Field(
        None, max_length=50, description="messageId to match (unset: any message of the vendor)"
    )
    status: Literal["Accepted", "Rejected", "UnknownMessageId", "UnknownVendorId"] = Field(
        "Accepted", description="status of the answer"
    )
    data: str | None = Field(None, description="data returned with the answer")


class ReconnectConfig(_Strict):
    """How a charger retries its connection to the CSMS after losing it, as the OCPP 2.0.1
    OCPPCommCtrlr.RetryBackOff* variables define it (1.6 firmware behaves much the same).
    Wall seconds: the wait before retry n is wait_minimum_s doubled min(n, repeat_times) times,
    plus a uniform draw from [0, random_range_s) unless synchronised, capped at max_s."""

    wait_minimum_s: float = Field(
        1.0, gt=0, le=3600, description="RetryBackOffWaitMinimum: the first wait, wall seconds"
    )
    random_range_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="RetryBackOffRandomRange: a uniform draw from [0, range) added to each wait",
    )
    repeat_times: int = Field(
        6, ge=0, le=32, description="RetryBackOffRepeatTimes: how many times the wait doubles"
    )
    max_s: float = Field(600.0, gt=0, le=86400, description="cap on the whole wait, wall seconds")
    mode: Literal["jittered", "synchronised"] = Field(
        "jittered",
        description="synchronised: no random part, so chargers that lost their connection "
        "together retry together (the thundering herd after a backend outage)",
    )


class ChargerModel(_Strict):
    """The hardware of a site's chargers, and how they behave under CSMS operations (reboot,
    firmware, uploads, remote starts, data transfer); unset hardware fields come from the
    archetype's default. Durations are means in simulated seconds: each draw is uniform on
    0.5-1.5 x the mean."""

    kind: Literal["ac", "dc"] | None = Field(None, description="AC or DC charger")
    power_kw: Annotated[float, Field(gt=0, le=1000)] | None = Field(
        None, description="rating of each EVSE in kW"
    )
    phases: Literal[1, 3] | None = Field(None, description="AC phases wired to each EVSE")
    connectors: Annotated[int, Field(ge=1, le=16)] | None = Field(
        None, description="EVSEs per charger (one connector each)"
    )
    voltage_v: float = Field(230.0, gt=0, le=1000, description="AC phase voltage")
    unplug_delay_s: float = Field(
        30.0, ge=0, le=3600, description="seconds between transaction stop and unplug"
    )
    ocpp_version: Literal["1.6", "2.0.1"] = Field("1.6", description="OCPP version it speaks")
    vendor: str = Field("fleetsim", min_length=1, max_length=20)
    model: str = Field("VirtualCharger", min_length=1, max_length=20)
    firmware: str = Field("1.0.0", min_length=1, max_length=50)
    reboot_s: float = Field(
        30.0, ge=0, le=3600, description="seconds a reset or firmware install keeps it down"
    )
    firmware_download_s: float = Field(
        60.0, ge=0, le=86400, description="seconds to download a firmware image"
    )
    firmware_install_s: float = Field(
        120.0, ge=0, le=86400, description="seconds to install a firmware image"
    )
    firmware_download_failure_p: float = Field(
        0.0, ge=0, le=1, description="probability that a firmware download attempt fails"
    )
    firmware_install_failure_p: float = Field(
        0.0, ge=0, le=1, description="probability that a firmware installation fails"
    )
    upload_s: float = Field(
        30.0, ge=0, le=86400, description="seconds to upload diagnostics or a log"
    )
    upload_failure_p: float = Field(
        0.0, ge=0, le=1, description="probability that an upload attempt fails"
    )
    remote_start_plug_in_s: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="seconds until the driver plugs in after a remote start without an EV",
    )
    remote_start_no_show_p: float = Field(
        0.0,
        ge=0,
        le=1,
        description="probability that the driver of such a remote start never plugs in",
    )
    data_transfer: tuple[DataTransferRuleConfig, ...] = Field(
        (), description="DataTransfer answers; no matching rule: UnknownVendorId"
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig,
        description="reconnect backoff after a lost connection (2.0.1 RetryBackOff*)",
    )
    offline_queue_limit: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="most transaction messages a charger queues while offline",
    )
    offline_queue_policy: Literal["drop_meter_values", "drop_oldest", "drop_newest"] = Field(
        "drop_meter_values",
        description="what a full offline queue gives up: drop_meter_values (periodic meter "
        "values first, never a start or stop), drop_oldest or drop_newest",
    )
    message_attempts: int = Field(
        3,
        ge=1,
        le=100,
        description="tries per transaction message (1.6 TransactionMessageAttempts, "
        "2.0.1 MessageAttempts)",
    )
    message_retry_s: float = Field(
        60.0,
        ge=0,
        le=86400,
        description="simulated seconds between tries of a transaction message, multiplied "
        "by the try number (1.6 TransactionMessageRetryInterval, 2.0.1 MessageAttemptInterval)",
    )


_TIME_OF_DAY = re.compile(
    r"^\s*(?:(Mon|Tue|Wed|Thu|Fri|Sat|Sun)\s+)?([01]?\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?\s*$"
)
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def parse_offset(text: str | float) -> float:
    """Seconds in an offset such as `0s`, `90m`, `4h` or `3600` (zero allowed, unlike
    `parse_duration`)."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"cannot read {text!r} (expected e.g. 0s, 90m, 4h)")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


class LoadManagementConfig(_Strict):
    """A site's grid connection limit and the policy that shares it among its sessions."""

    grid_limit_kw: float = Field(
        gt=0, le=1_000_000, description="most the site may draw from the grid, in kW"
    )
    policy: Literal["equal_share", "fcfs", "edf"] = Field(
        "equal_share",
        description="equal_share: max-min fair shares; fcfs: first come, first served; "
        "edf: earliest departure first",
    )
    reaction_s: float = Field(
        0.0,
        ge=0,
        le=3600,
        description="offline: simulated seconds between a session starting or ending and the "
        "new limits taking effect (0: at once). Online the CSMS's round trips decide it",
    )


class SchedulePeriodConfig(_Strict):
    """One step of a charging schedule: `limit` from `start` after the schedule begins."""

    start: str = Field("0s", description="offset from the schedule's start: 0s, 90m, 4h")
    limit: float = Field(ge=0, le=1_000_000, description="limit in the profile's unit")
    phases: Literal[1, 2, 3] | None = Field(None, description="phases the EVSE may use")

    @field_validator("start")
    @classmethod
    def _readable_start(cls, value: str) -> str:
        parse_offset(value)
        return value


class ChargingProfileConfig(_Strict):
    """A static charging profile installed on every station of the site (offline runs).

    Recurring profiles start at a local time of day ("17:00"; weekly: "Mon 17:00") and then
    repeat every 24 h (or 7 days) of elapsed time, as OCPP defines it; Absolute profiles start
    at an ISO date-time (naive: the scenario's time zone) or, without one, at each
    transaction's start; Relative ones at each transaction's start.
    """

    purpose: Literal["TxDefaultProfile", "ChargingStationMaxProfile", "ChargePointMaxProfile"] = (
        Field(description="TxDefaultProfile (per session) or ChargingStationMaxProfile (station)")
    )
    kind: Literal["Absolute", "Recurring", "Relative"] = Field(
        "Recurring", description="how the schedule is anchored in time"
    )
    recurrency: Literal["Daily", "Weekly"] | None = Field(
        None, description="Recurring only: how often it repeats"
    )
    start: str | None = Field(
        None,
        description="Recurring: local time of day ('17:00', weekly 'Mon 17:00'); "
        "Absolute: ISO date-time; Relative: not given",
    )
    unit: Literal["W", "A"] = Field("W", description="W: total power; A: current per phase")
    periods: list[SchedulePeriodConfig] = Field(min_length=1, max_length=1024)
    duration: str | None = Field(None, description="length of the schedule (default: open)")
    min_charging_rate: float | None = Field(
        None, ge=0, description="lowest rate the EV should charge at, in the profile's unit"
    )
    stack_level: int = Field(0, ge=0, le=1000, description="higher stack levels take precedence")
    evse: int = Field(0, ge=0, le=16, description="EVSE it applies to; 0: every EVSE / station")

    @field_validator("duration")
    @classmethod
    def _readable_duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ChargingProfileConfig:
        recurring = self.kind == "Recurring"
        if recurring != (self.recurrency is not None):
            raise ValueError("recurrency is required for, and only for, kind Recurring")
        if recurring:
            if self.start is None:
                raise ValueError("a Recurring profile needs a start ('17:00' or 'Mon 17:00')")
            match = _TIME_OF_DAY.match(self.start)
            if match is None:
                raise ValueError(f"start {self.start!r}: expected a local time such as '17:00'")
            if (match.group(1) is not None) != (self.recurrency == "Weekly"):
                raise ValueError(
                    "a Weekly profile starts at a weekday and time ('Mon 17:00'), "
                    "a Daily one at a time of day ('17:00')"
                )
        elif self.kind == "Relative" and self.start is not None:
            raise ValueError("a Relative profile starts with each transaction: remove start")
        elif self.kind == "Absolute" and self.start is not None:
            try:
                datetime.fromisoformat(self.start)
            except ValueError:
                raise ValueError(
                    f"start {self.start!r}: expected an ISO date-time such as 2025-01-06T17:00"
                ) from None
        starts = [parse_offset(p.start) for p in self.periods]
        if starts[0] != 0:
            raise ValueError("the first period must start at 0s")
        if any(b <= a for a, b in itertools.pairwise(starts)):
            raise ValueError("period starts must be strictly increasing")
        if self.purpose != "TxDefaultProfile" and self.evse != 0:
            raise ValueError("a ChargingStationMaxProfile applies to the station: evse must be 0")
        return self

    def to_profile(self, profile_id: int, origin: datetime, timezone: str) -> ChargingProfile:
        """The profile on the simulation's time axis, whose 0 is the aware instant `origin`.

        A recurring start is the last occurrence of its local time at or before `origin`, so
        the profile is in force from the first simulated second."""
        tz = ZoneInfo(timezone)
        start_s: float | None = None
        recurrency = None
        if self.kind == "Recurring":
            assert self.start is not None and self.recurrency is not None
            recurrency = RecurrencyKind(self.recurrency)
            match = _TIME_OF_DAY.match(self.start)
            assert match is not None
            day, hh, mm, ss = match.groups()
            local = origin.astimezone(tz)
            anchor = datetime(
                local.year, local.month, local.day, int(hh), int(mm), int(ss or 0), tzinfo=tz
            )
            if day is not None:
                anchor -= timedelta(days=(local.weekday() - _WEEKDAYS.index(day)) % 7)
            start_s = (anchor.astimezone(UTC) - origin).total_seconds()
            while start_s > 0:
                start_s -= recurrency.period_s
        elif self.kind == "Absolute" and self.start is not None:
            moment = datetime.fromisoformat(self.start)
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=tz)
            start_s = (moment.astimezone(UTC) - origin).total_seconds()
        schedule = ChargingSchedule(
            ChargingRateUnit(self.unit),
            tuple(SchedulePeriod(parse_offset(p.start), p.limit, p.phases) for p in self.periods),
            duration_s=None if self.duration is None else parse_duration(self.duration),
            start_s=start_s,
            min_charging_rate=self.min_charging_rate,
        )
        return ChargingProfile(
            profile_id=profile_id,
            stack_level=self.stack_level,
            purpose=ChargingProfilePurpose.parse(self.purpose),
            kind=ChargingProfileKind(self.kind),
            schedule=schedule,
            recurrency=recurrency,
            evse_id=self.evse,
        )


class SiteConfig(_Strict):
    """One site: an archetype, how many chargers, their model and any demand overrides."""

    name: str | None = Field(
        None, pattern=_NAME, description="unique site name (default: the archetype)"
    )
    archetype: str = Field(description=f"one of: {', '.join(sorted(ARCHETYPES))}")
    chargers: int = Field(1, ge=0, le=1_000_000, description="number of chargers at the site")
    charger: ChargerModel = Field(default_factory=ChargerModel)
    private: bool | None = Field(
        None,
        description="chargers belong to one car each, so an EV never takes another "
        "(default: the archetype's; homes and depots are private)",
    )
    demand: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the archetype's demand parameters"
    )
    load_management: LoadManagementConfig | None = Field(
        None, description="a grid limit for the whole site and the policy that shares it"
    )
    charging_profiles: list[ChargingProfileConfig] = Field(
        default_factory=list,
        max_length=64,
        description="static charging profiles installed on every charger of the site "
        "(offline runs)",
    )

    @field_validator("archetype")
    @classmethod
    def _known_archetype(cls, value: str) -> str:
        if value not in ARCHETYPES:
            raise ValueError(
                f"unknown archetype {value!r}; expected one of {', '.join(sorted(ARCHETYPES))}"
            )
        return value

    @model_validator(mode="after")
    def _profiles_apply(self) -> SiteConfig:
        seen: dict[tuple[str, int, int], int] = {}
        for i, p in enumerate(self.charging_profiles):
            purpose = ChargingProfilePurpose.parse(p.purpose).value
            if self.load_management is not None and purpose == "TxDefaultProfile":
                raise ValueError(
                    f"charging_profiles[{i}]: a TxDefaultProfile never applies under "
                    "load_management (every transaction gets a TxProfile, which takes "
                    "precedence); use a ChargingStationMaxProfile"
                )
            key = (purpose, p.evse, p.stack_level)
            if key in seen:
                raise ValueError(
                    f"charging_profiles[{i}] has the purpose, evse and stack_level of "
                    f"charging_profiles[{seen[key]}] and would replace it"
                )
            seen[key] = i
        return self

    @property
    def site_name(self) -> str:
        return self.name or self.archetype


_Millis = Annotated[float, Field(gt=0)]
# An OCPP action name, or "*" for every action.
_SloKey = Annotated[str, Field(pattern=r"^([A-Za-z][A-Za-z0-9]*|[*])$")]


class TargetConfig(_Strict):
    """Where an online run connects, and how it authenticates. Secrets never live here: the
    password comes from an environment variable or a file named here."""

    url: str | None = Field(
        None,
        pattern=r"^wss?://[^\s]+$",
        description="CSMS websocket base URL (ws:// or wss://); a charger connects to "
        "{url}/{charger_id}. Default: the embedded CSMS",
    )
    username: str = Field(
        "{charger_id}", description="basic-auth user name; {charger_id} is replaced"
    )
    password_env: str | None = Field(
        None, description="environment variable holding the basic-auth password"
    )
    password_file: Path | None = Field(None, description="file whose first line is the password")
    ca_file: Path | None = Field(
        None, description="CA bundle for wss:// (default: cert_dir's ca.pem, else system CAs)"
    )
    security_profile: Literal[0, 1, 2, 3] = Field(
        0,
        description="OCPP security profile: 1 basic auth, 2 TLS + basic auth, 3 mutual TLS "
        "(client certificate per charger); 0 declares none and uses what is configured",
    )
    client_cert: str | None = Field(
        None,
        description="profile 3: path of a charger's certificate (PEM); {charger_id} is "
        "replaced, e.g. certs/clients/{charger_id}.pem (default: from cert_dir)",
    )
    client_key: str | None = Field(
        None,
        description="profile 3: path of a charger's private key (PEM); {charger_id} is "
        "replaced (default: from cert_dir)",
    )
    cert_dir: Path | None = Field(
        None,
        description="profiles 2 and 3: a directory written by `fleetsim certs` (ca.pem, "
        "server.pem/.key, clients/{charger_id}.pem/.key); the embedded CSMS serves its server "
        "certificate and chargers default to its CA and client files. Default: the embedded "
        "CSMS gets a temporary one",
    )

    @field_validator("url")
    @classmethod
    def _no_credentials_in_url(cls, value: str | None) -> str | None:
        if value is not None and "@" in value.split("/")[2]:
            raise ValueError(
                "remove the user:password part of the URL; use password_env or password_file"
            )
        return value

    @model_validator(mode="after")
    def _one_password_source(self) -> TargetConfig:
        if self.password_env and self.password_file:
            raise ValueError("give either password_env or password_file, not both")
        return self

    @model_validator(mode="after")
    def _security_needs_met(self) -> TargetConfig:
        self.check_security(self.url)
        return self

    def check_security(self, url: str | None) -> None:
        """Raise ValueError (one line) when the security profile's needs are not met for a
        CSMS at `url` (None: the embedded CSMS, whose scheme follows the profile)."""
        profile = self.security_profile
        has_password = bool(self.password_env or self.password_file)
        has_client = self.client_cert is not None or self.client_key is not None
        if (self.client_cert is None) != (self.client_key is None):
            raise ValueError("give both client_cert and client_key, or neither")
        if has_client and profile != 3:
            raise ValueError("client_cert/client_key are for security_profile: 3 (mutual TLS)")
        if self.cert_dir is not None and profile not in (2, 3):
            raise ValueError("cert_dir is for security_profile 2 or 3 (TLS)")
        if profile in (1, 2) and not has_password:
            raise ValueError(
                f"security_profile {profile} authenticates with a password: "
                "set password_env or password_file"
            )
        if profile == 3 and has_password:
            raise ValueError(
                "security_profile 3 authenticates with the client certificate, not a "
                "password: remove password_env/password_file (or use profile 2)"
            )
        if profile >= 2 and url is not None and not url.startswith("wss://"):
            raise ValueError(f"security_profile {profile} needs a wss:// URL (TLS), got {url}")
        if profile == 3 and url is not None and not has_client and self.cert_dir is None:
            # The embedded CSMS (no url) generates them; a real CSMS's PKI issues them.
            raise ValueError(
                "security_profile 3 needs a client certificate per charger: set client_cert "
                "and client_key (templates with {charger_id}) or cert_dir"
            )


class OnlineConfig(_Strict):
    """How `fleetsim run` paces and connects the fleet."""

    speed: float = Field(
        1.0,
        gt=0,
        le=100_000,
        description="simulated seconds per wall second (60: one hour a minute)",
    )
    duration: str = Field("10m", description="wall-clock length of a run: 90s, 10m, 2h")
    target: TargetConfig = Field(default_factory=TargetConfig)
    ramp: float = Field(100.0, gt=0, le=1_000_000, description="new connections per second at most")
    ping_interval_s: float | None = Field(
        30.0, gt=0, description="websocket ping interval in wall seconds (null: no pings)"
    )
    call_timeout_s: float = Field(30.0, gt=0, le=3600, description="wall seconds per CALL")
    meter_interval_s: float = Field(
        300.0, gt=0, le=86400, description="MeterValueSampleInterval in simulated seconds"
    )
    heartbeat_s: float | None = Field(
        None, gt=0, description="heartbeat interval before the CSMS sets one (simulated s)"
    )
    validate_frames: bool = Field(
        True, description="check every frame against the ocpp package's JSON schemas"
    )
    on_stop: Literal["stop", "leave"] = Field(
        "stop",
        description="at the end of a run, stop open transactions (Reason Other / "
        "2.0.1 StoppedReason Other) or leave them open",
    )

    @field_validator("duration")
    @classmethod
    def _parsable_duration(cls, value: str) -> str:
        parse_duration(value)
        return value


class SloConfig(_Strict):
    """Pass/fail thresholds for an online run; a broken one makes `fleetsim run` exit 1."""

    p50_ms: dict[_SloKey, _Millis] = Field(
        default_factory=dict, description="largest median latency per action (or '*': all)"
    )
    p90_ms: dict[_SloKey, _Millis] = Field(default_factory=dict)
    p99_ms: dict[_SloKey, _Millis] = Field(
        default_factory=dict, description="largest p99 latency per action, e.g. MeterValues: 500"
    )
    p999_ms: dict[_SloKey, _Millis] = Field(default_factory=dict)
    max_error_rate: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="largest share of calls answered by CALLERROR or timing out"
    )
    max_schedule_lag_ms: _Millis | None = Field(
        None, description="largest p99 schedule lag (a saturated generator fails)"
    )
    min_connected_ratio: Annotated[float, Field(ge=0, le=1)] | None = Field(
        None, description="smallest share of chargers connected at the end of the run"
    )
    max_invalid_frames: Annotated[int, Field(ge=0)] | None = Field(
        None, description="most frames failing schema validation"
    )


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as `90s`, `10m`, `2h`, `1.5d` or `45` (seconds)."""
    match = _DURATION.match(str(text))
    if match is None:
        raise ValueError(f"cannot read duration {text!r} (expected e.g. 90s, 10m, 2h)")
    seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"duration {text!r} must be positive")
    return seconds


# -- faults ---------------------------------------------------------------------------------------
# Network-level faults (connection drops, outages, CSMS misbehaviour and restarts) are in WALL
# seconds from the start of a run; station faults (connector faults, power loss) are physical
# events in SIMULATED seconds and happen in offline runs too.

# 1.6 ChargePointErrorCode names a connector fault may report (NoError is not a fault).
FAULT_ERROR_CODES: tuple[str, ...] = tuple(
    c.value for c in ChargePointErrorCode if c is not ChargePointErrorCode.no_error
)
# Every OCPP action name of 1.6 and 2.0.1 (what CSMS misbehaviour may be restricted to).
_ACTIONS: frozenset[str] = frozenset(a.value for a in Action16) | frozenset(
    a.value for a in Action201
)
# Station faults drawn more often than this would swamp a run with events, not model a fleet.
_MIN_STATION_MTBF_S = 60.0
_MIN_DROPS_MTBF_S = 1.0


def _check_duration(value: str, least_s: float = 0.0) -> str:
    seconds = parse_duration(value)
    if seconds < least_s:
        raise ValueError(f"{value!r} is too short (at least {least_s:g} s)")
    return value


class ConnectionDropsConfig(_Strict):
    """Random connection drops: each charger loses its websocket at exponentially distributed
    intervals (wall clock) and reconnects with its backoff."""

    mtbf: str = Field(
        description="mean wall time between drops per charger, e.g. 10m (at least 1 s)"
    )
    sites: list[str] | None = Field(
        None, min_length=1, description="sites whose chargers drop (default: every site)"
    )

    @field_validator("mtbf")
    @classmethod
    def _readable_mtbf(cls, value: str) -> str:
        return _check_duration(value, _MIN_DROPS_MTBF_S)


class OutageConfig(_Strict):
    """A network outage (wall clock): every charger of a site, or of the fleet, is cut off
    from the CSMS for `duration`, then reconnects with its backoff."""

    at: str = Field(description="wall-clock offset from the run's start, e.g. 60s")
    duration: str = Field(description="how long the network is down, e.g. 30s")
    site: str | None = Field(None, description="the site cut off (default: the whole fleet)")

    @field_validator("at")
    @classmethod
    def _readable_at(cls, value: str) -> str:
        parse_offset(value)
        return value

    @field_validator("duration")
    @classmethod
    def _readable_duration(cls, value: str) -> str:
        return _check_duration(value)


class ConnectorFaultsConfig(_Strict):
    """Random connector faults (simulated clock): a connector goes Faulted with an error code,
    ending its transaction and sending its EV away, and is repaired after an exponentially
    distributed time."""

    mtbf: str = Field(
        description="mean simulated time between faults per connector, e.g. 30d (at least 1m)"
    )
    repair: str = Field("2h", description="mean repair time (exponential), e.g. 2h")
    error_codes: list[str] = Field(
        default_factory=lambda: [
            "GroundFailure",
            "OverCurrentFailure",
            "HighTemperature",
            "PowerMeterFailure",
            "OtherError",
        ],
        min_length=1,
        description="1.6 ChargePointErrorCode names drawn uniformly for each fault "
        f"(any of {', '.join(FAULT_ERROR_CODES)})",
    )
    sites: list[str] | None = Field(
        None, min_length=1, description="sites whose connectors fail (default: every site)"
    )

    @field_validator("mtbf")
    @classmethod
    def _readable_mtbf(cls, value: str) -> str:
        return _check_duration(value, _MIN_STATION_MTBF_S)

    @field_validator("repair")
    @classmethod
    def _readable_repair(cls, value: str) -> str:
        return _check_duration(value)

    @field_validator("error_codes")
    @classmethod
    def _known_codes(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in FAULT_ERROR_CODES]
        if unknown:
            raise ValueError(
                f"unknown error code(s) {', '.join(map(repr, unknown))}; "
                f"expected 1.6 ChargePointErrorCode names except NoError: "
                f"{', '.join(FAULT_ERROR_CODES)}"
            )
        return value

    def mtbf_s(self) -> float:
        return parse_duration(self.mtbf)

    def repair_s(self) -> float:
        return parse_duration(self.repair)


class PowerLossConfig(_Strict):
    """Power losses (simulated clock): a hard reboot of a charger that ends its transactions
    with reason PowerLoss, at random per charger (`mtbf`) and/or at fixed offsets for every
    charger of the fleet or of `site` at once (`at`)."""

    mtbf: str | None = Field(
        None,
        description="mean simulated time between power losses per charger, e.g. 90d "
        "(at least 1m; default: none at random)",
    )
    at: list[str] = Field(
        default_factory=list,
        max_length=10_000,
        description="simulated offsets from the start (after the warm-up) of a power loss "
        "of every charger concerned, e.g. [2h, 26h]",
    )
    downtime: str = Field("5m", description="how long the power stays off, e.g. 5m")
    site: str | None = Field(None, description="the site that loses power (default: every site)")

    @field_validator("mtbf")
    @classmethod
    def _readable_mtbf(cls, value: str | None) -> str | None:
        return None if value is None else _check_duration(value, _MIN_STATION_MTBF_S)

    @field_validator("at")
    @classmethod
    def _readable_at(cls, value: list[str]) -> list[str]:
        for item in value:
            parse_offset(item)
        return value

    @field_validator("downtime")
    @classmethod
    def _readable_downtime(cls, value: str) -> str:
        return _check_duration(value)

    @model_validator(mode="after")
    def _something_happens(self) -> PowerLossConfig:
        if self.mtbf is None and not self.at:
            raise ValueError("give mtbf (random power losses), at (fixed times), or both")
        return self

    def mtbf_s(self) -> float | None:
        return None if self.mtbf is None else parse_duration(self.mtbf)

    def at_s(self) -> list[float]:
        """The fixed offsets in simulated seconds, sorted."""
        return sorted(parse_offset(a) for a in self.at)

    def downtime_s(self) -> float:
        return parse_duration(self.downtime)


class CsmsMisbehaviourConfig(_Strict):
    """How the embedded CSMS misbehaves towards charger-initiated calls (runs with --target
    cannot have it): each call is, with these probabilities, answered late, answered with a
    CALLERROR InternalError, or met with a closed connection."""

    slow_p: float = Field(0.0, ge=0, le=1, description="probability of answering late")
    slow_s: float = Field(2.0, gt=0, le=600, description="wall seconds a late answer takes")
    error_p: float = Field(
        0.0, ge=0, le=1, description="probability of a CALLERROR InternalError instead"
    )
    close_p: float = Field(
        0.0, ge=0, le=1, description="probability of closing the connection instead"
    )
    actions: list[str] | None = Field(
        None,
        min_length=1,
        description="the OCPP actions concerned, e.g. [MeterValues, StartTransaction] "
        "(default: every charger-initiated action)",
    )

    @field_validator("actions")
    @classmethod
    def _known_actions(cls, value: list[str] | None) -> list[str] | None:
        unknown = [a for a in value or () if a not in _ACTIONS]
        if unknown:
            raise ValueError(
                f"unknown OCPP action(s) {', '.join(map(repr, unknown))} "
                "(expected names such as MeterValues, StartTransaction, TransactionEvent)"
            )
        return value

    @model_validator(mode="after")
    def _probabilities_add_up(self) -> CsmsMisbehaviourConfig:
        if self.slow_p + self.error_p + self.close_p > 1.0 + 1e-9:
            raise ValueError("slow_p + error_p + close_p must be at most 1")
        return self


class CsmsRestartConfig(_Strict):
    """A restart of the embedded CSMS (wall clock): killed or terminated at `at`, back `down`
    later with its database; chargers reconnect and deliver what they queued."""

    at: str = Field(description="wall-clock offset from the run's start, e.g. 60s")
    down: str = Field("30s", description="how long the CSMS stays down, e.g. 30s")
    signal: Literal["kill", "term"] = Field(
        "kill", description="kill: SIGKILL, no goodbye; term: SIGTERM, a clean shutdown"
    )

    @field_validator("at")
    @classmethod
    def _readable_at(cls, value: str) -> str:
        parse_offset(value)
        return value

    @field_validator("down")
    @classmethod
    def _readable_down(cls, value: str) -> str:
        return _check_duration(value)


class FaultsConfig(_Strict):
    """Faults injected into a run: network faults and CSMS misbehaviour on the wall clock
    (online runs only), station faults on the simulated clock (online and offline)."""

    connection_drops: ConnectionDropsConfig | None = Field(
        None, description="random connection drops per charger (wall clock)"
    )
    outages: list[OutageConfig] = Field(
        default_factory=list,
        max_length=10_000,
        description="network outages of a site or the whole fleet (wall clock)",
    )
    connector_faults: ConnectorFaultsConfig | None = Field(
        None, description="random connector faults with repair (simulated clock)"
    )
    power_loss: PowerLossConfig | None = Field(
        None, description="power losses: hard reboots ending transactions (simulated clock)"
    )
    csms: CsmsMisbehaviourConfig | None = Field(
        None, description="embedded CSMS: slow answers, CALLERRORs, closed connections"
    )
    csms_restarts: list[CsmsRestartConfig] = Field(
        default_factory=list,
        max_length=1000,
        description="embedded CSMS: kill/terminate and restart at these times (wall clock)",
    )

    @property
    def station_faults(self) -> bool:
        """Whether any fault happens to the stations themselves (connector faults, power loss)."""
        return self.connector_faults is not None or self.power_loss is not None

    def wall_outages(self) -> list[tuple[float, float, str | None]]:
        """(at_s, duration_s, site) of every outage, in wall seconds, sorted by start."""
        return sorted(
            ((parse_offset(o.at), parse_duration(o.duration), o.site) for o in self.outages),
            key=lambda o: (o[0], o[1], o[2] or ""),
        )

    def drops_mtbf_s(self) -> float | None:
        """Mean wall seconds between connection drops per charger (None: no drops)."""
        drops = self.connection_drops
        return None if drops is None else parse_duration(drops.mtbf)

    def site_references(self) -> list[tuple[str, str]]:
        """(field path, site name) of every site these faults name."""
        refs: list[tuple[str, str]] = []
        for field, config in (
            ("connection_drops", self.connection_drops),
            ("connector_faults", self.connector_faults),
        ):
            if config is not None and config.sites is not None:
                refs += [(f"{field}.sites[{i}]", s) for i, s in enumerate(config.sites)]
        refs += [(f"outages[{i}].site", o.site) for i, o in enumerate(self.outages) if o.site]
        if self.power_loss is not None and self.power_loss.site is not None:
            refs.append(("power_loss.site", self.power_loss.site))
        return refs


def check_fault_sites(faults: FaultsConfig, sites: Iterable[str], short: bool = False) -> None:
    """Raise ValueError (one line naming the field) when a fault names a site that does not
    exist among `sites`; `short` names the field without its section ("site", "sites[1]")."""
    known = list(sites)
    for path, name in faults.site_references():
        if name not in known:
            if short:
                path = path.rsplit(".", 1)[-1]
            raise ValueError(f"{path}: unknown site {name!r} (sites: {', '.join(known)})")


# `--fault KIND:...`: the kind, the FaultsConfig field it fills, and that field's model.
_FAULT_KINDS: dict[str, tuple[str, type[_Strict]]] = {
    "drops": ("connection_drops", ConnectionDropsConfig),
    "outage": ("outages", OutageConfig),
    "connector": ("connector_faults", ConnectorFaultsConfig),
    "power-loss": ("power_loss", PowerLossConfig),
    "csms": ("csms", CsmsMisbehaviourConfig),
    "csms-restart": ("csms_restarts", CsmsRestartConfig),
}
_FAULT_LISTS = frozenset({"outages", "csms_restarts"})


def _is_list(annotation: Any) -> bool:
    if get_origin(annotation) is list:
        return True
    return any(_is_list(arg) for arg in get_args(annotation))


def parse_fault_option(text: str, sites: Iterable[str] | None = None) -> FaultsConfig:
    """One `--fault` value, "KIND:key=value,key=value", as a FaultsConfig holding that fault.

    KIND is one of drops, outage, connector, power-loss, csms, csms-restart; keys are the
    fields of its scenario section, list items are joined with '+' ("sites=a+b"). With `sites`
    the site names are checked too. Raises ValueError("--fault <text>: <field>: <problem>").
    """
    where = f"--fault {' '.join(text.split())}"
    kind, _, rest = text.strip().partition(":")
    kind = kind.strip()
    if kind not in _FAULT_KINDS:
        raise ValueError(
            f"{where}: kind: unknown fault kind {kind!r} "
            f"(expected KIND:key=value,... with KIND one of {', '.join(_FAULT_KINDS)})"
        )
    field, model = _FAULT_KINDS[kind]
    values: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in rest.split(","))):
        key, eq, value = (part.strip() for part in pair.partition("="))
        if not eq or not key:
            raise ValueError(f"{where}: {pair}: expected key=value")
        info = model.model_fields.get(key)
        if info is None:
            raise ValueError(
                f"{where}: {key}: unknown key (expected {', '.join(model.model_fields)})"
            )
        if key in values:
            raise ValueError(f"{where}: {key}: given twice")
        values[key] = [v for v in value.split("+") if v] if _is_list(info.annotation) else value
    try:
        item = model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_path(e['loc']) if e['loc'] else kind}: {_describe(e)}" for e in exc.errors()
        )
        raise ValueError(f"{where}: {problems}") from None
    faults = FaultsConfig.model_validate({field: [item] if field in _FAULT_LISTS else item})
    if sites is not None:
        try:
            check_fault_sites(faults, sites, short=True)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    return faults


def merge_faults(base: FaultsConfig, extra: Sequence[FaultsConfig]) -> FaultsConfig:
    """The scenario's faults with those of the command line added: outages and CSMS restarts
    accumulate; a single-valued fault (drops, connector faults, power loss, CSMS
    misbehaviour) given on the command line replaces the scenario's."""
    update: dict[str, Any] = {}
    outages = list(base.outages)
    restarts = list(base.csms_restarts)
    for faults in extra:
        outages += faults.outages
        restarts += faults.csms_restarts
        for name in ("connection_drops", "connector_faults", "power_loss", "csms"):
            value = getattr(faults, name)
            if value is not None:
                update[name] = value
    update["outages"] = outages
    update["csms_restarts"] = restarts
    return base.model_copy(update=update)


class Scenario(_Strict):
    """A whole simulated network: seed, calendar, EV mix and sites."""

    name: str = Field("scenario", description="scenario name (default: the file's stem)")
    description: str = Field("", description="one line saying what the scenario models")
    seed: int = Field(1, ge=0, description="seed of every random stream")
    start: datetime | None = Field(
        None,
        description="simulated start; naive times are in `timezone` (offline default "
        "2025-01-06T00:00 local, a Monday)",
    )
    timezone: str = Field("UTC", description="IANA time zone of the sites' clocks")
    days: float = Field(7.0, gt=0, le=3660, description="offline horizon in days")
    warmup_days: float = Field(
        1.0,
        ge=0,
        le=60,
        description="days simulated before `start` and discarded, so the "
        "run starts with the cars that would already be plugged in",
    )
    charger_id_pattern: str = Field(
        "{site}-{index:05d}", description="charger identity; fields {site} and {index}"
    )
    vehicles: dict[str, Annotated[float, Field(ge=0)]] | None = Field(
        None, description="EV mix as weights by model name (default: 2023 Dutch registrations)"
    )
    sites: list[SiteConfig] = Field(min_length=1)
    online: OnlineConfig = Field(
        default_factory=OnlineConfig, description="pacing and connection of `fleetsim run`"
    )
    slo: SloConfig = Field(default_factory=SloConfig, description="pass/fail thresholds of a run")
    faults: FaultsConfig = Field(
        default_factory=FaultsConfig,
        description="faults injected: network and CSMS faults (wall clock, online runs), "
        "connector faults and power loss (simulated clock, online and offline)",
    )

    @field_validator("faults")
    @classmethod
    def _fault_sites_exist(cls, value: FaultsConfig, info: ValidationInfo) -> FaultsConfig:
        sites = info.data.get("sites")
        if sites is not None:  # else the sites are invalid, and reported as such
            check_fault_sites(value, (s.site_name for s in sites))
        return value

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: "Europe", a long name
            raise ValueError(
                f"unknown time zone {value!r} (expected an IANA name such as 'Europe/Amsterdam')"
            ) from None
        return value

    @field_validator("vehicles")
    @classmethod
    def _known_vehicles(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        if value is None:
            return value
        unknown = sorted(set(value) - set(vehicle_names()))
        if unknown:
            raise ValueError(
                f"unknown vehicle(s) {', '.join(map(repr, unknown))}; known: "
                f"{', '.join(v.name for v in CATALOGUE)}"
            )
        if sum(value.values()) <= 0:
            raise ValueError("vehicle weights must not all be zero")
        return value

    @field_validator("charger_id_pattern")
    @classmethod
    def _usable_pattern(cls, value: str) -> str:
        # Only {site} and {index}, with a short format spec: "{index[0]}" or "{index.real}"
        # would crash or surprise, and "{index:>999999999}" format a gigabyte per charger.
        try:
            fields = [
                (f, spec) for _, f, spec, _ in string.Formatter().parse(value) if f is not None
            ]
            for field, spec in fields:
                if field not in ("site", "index"):
                    raise ValueError(f"unknown field {{{field}}}")
                if spec and (
                    len(spec) > 10 or max(map(int, re.findall(r"\d+", spec)), default=0) > 64
                ):
                    raise ValueError(f"format {spec!r} is too wide (at most 64 characters)")
            a, b = value.format(site="s", index=1), value.format(site="s", index=2)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ValueError(
                f"pattern {value!r} does not format with {{site}} and {{index}}: {exc}"
            ) from None
        if a == b:
            raise ValueError(f"pattern {value!r} must contain {{index}} so charger ids differ")
        return value

    @field_validator("name")
    @classmethod
    def _usable_name(cls, value: str) -> str:
        # The name names the output folder (out/<name>) and the report: "/etc" or "../x"
        # would write elsewhere.
        if (
            not 1 <= len(value) <= 100
            or value in (".", "..")
            or "/" in value
            or "\\" in value
            or not value.isprintable()
        ):
            raise ValueError(
                "expected 1-100 printable characters without / or \\ (it names the output folder)"
            )
        return value

    @field_validator("start")
    @classmethod
    def _plausible_start(cls, value: datetime | None) -> datetime | None:
        # Dates near year 1 or 9999 overflow the calendar's arithmetic (warm-up, horizon).
        if value is not None and not 1970 <= value.year <= 2200:
            raise ValueError("expected a start between 1970 and 2200")
        return value

    @model_validator(mode="after")
    def _unique_site_names(self) -> Scenario:
        seen: set[str] = set()
        for site in self.sites:
            if site.site_name in seen:
                raise ValueError(
                    f"two sites are named {site.site_name!r}; give each a unique `name`"
                )
            seen.add(site.site_name)
        return self

    # -- derived views used by the fleet builder -----------------------------------------------

    def start_utc(self, default: datetime = DEFAULT_OFFLINE_START) -> datetime:
        """The start as an aware UTC datetime (naive values are read in the scenario's zone)."""
        start = self.start
        if start is None:
            start = default.replace(tzinfo=None)
        if start.tzinfo is None:
            start = start.replace(tzinfo=ZoneInfo(self.timezone))
        return start.astimezone(UTC)

    def vehicle_mix(self) -> VehicleMix:
        if self.vehicles is None:
            return VehicleMix.default()
        chosen = [(vehicle_by_name(n), w) for n, w in self.vehicles.items() if w > 0]
        return VehicleMix([v for v, _ in chosen], [w for _, w in chosen])

    def rescaled(self, chargers: int) -> Scenario:
        """The same network with `chargers` chargers in total, sites kept in proportion."""
        if chargers < 1:
            raise ValueError("--chargers must be at least 1")
        counts = largest_remainder([s.chargers for s in self.sites], chargers)
        sites = [
            s.model_copy(update={"chargers": n}) for s, n in zip(self.sites, counts, strict=True)
        ]
        return self.model_copy(update={"sites": sites})


@dataclass(frozen=True, slots=True)
class ResolvedSite:
    """A site with its archetype's defaults and the scenario's overrides applied."""

    config: SiteConfig
    archetype: Archetype
    params: Any  # DemandParams | DepotParams of models.archetypes
    rating: EvseRating
    connectors: int
    private: bool

    @property
    def name(self) -> str:
        return self.config.site_name


def largest_remainder(weights: Sequence[int], total: int) -> list[int]:
    """Split `total` in proportion to `weights` with whole numbers that add up exactly.

    A site that had chargers keeps at least one when `total` allows: rescaling a network down
    should shrink its sites, not silently drop one.
    """
    wsum = sum(weights)
    if wsum <= 0:
        raise ValueError("cannot rescale a scenario with no chargers")
    exact = [w * total / wsum for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: total - sum(counts)]:
        counts[i] += 1
    present = [i for i, w in enumerate(weights) if w > 0]
    if total >= len(present):
        for i in present:
            if counts[i] == 0:
                # Take from the site furthest above its exact share.
                donor = max(
                    (j for j in range(len(counts)) if counts[j] > 1),
                    key=lambda j: (counts[j] - exact[j], -j),
                )
                counts[donor] -= 1
                counts[i] = 1
    return counts


def resolve_site(site: SiteConfig) -> ResolvedSite:
    """Apply archetype defaults and overrides (raises pydantic ValidationError on bad overrides)."""
    archetype = get_archetype(site.archetype)
    params = with_overrides(archetype.params, site.demand)
    d = archetype.default_charger
    c = site.charger
    kind = CurrentType(c.kind or d.kind)
    rating = EvseRating(kind, c.power_kw or d.power_kw, c.phases or d.phases, c.voltage_v)
    if kind is CurrentType.AC:
        amps = rating.max_current_a
        if amps > 63:
            raise ValueError(
                f"an AC EVSE of {rating.max_kw} kW on {rating.phases} phase(s) "
                f"needs {amps:.0f} A per phase (at most 63 A)"
            )
    private = archetype.private_chargers if site.private is None else site.private
    return ResolvedSite(site, archetype, params, rating, c.connectors or d.connectors, private)


# -- loading ------------------------------------------------------------------------------------


_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif isinstance(part, str) and _PLAIN_KEY.match(part):
            out += f".{part}" if out else part
        else:  # a key that is no plain name (" ", "ID.3", "*", 1.5, None): quoted
            out += f"[{shown(part)}]"
    return out or "(top level)"


def _describe(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    msg = re.sub(r"^(Value|Assertion) error, ", "", msg)
    kind = error.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `fleetsim scenarios --schema`)"
    if kind == "missing":
        return "required field is missing"
    if "input" in error and kind not in {"model_type", "dict_type", "list_type"}:
        # Bounded: the input may be a huge integer, or an alias expanded a million times.
        return f"{msg} (got {shown(error['input'])})"
    return msg


def _problems(source: str, exc: ValidationError, prefix: Sequence[int | str] = ()) -> list[str]:
    return [f"{source}: {_path([*prefix, *e['loc']])}: {_describe(e)}" for e in exc.errors()]


# A file with hundreds of mistakes is the wrong file: list the first ones and say how many.
MAX_PROBLEMS = 50


def _scenario_error(source: str, problems: Sequence[str]) -> ScenarioError:
    """One printable line per problem (a value or a file name may hold newlines or control
    characters), at most MAX_PROBLEMS of them."""
    lines = [one_line(line, len(source) + 500) for line in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        lines.append(one_line(f"{source}: ... and {more} more problems"))
    return ScenarioError(lines)


def parse_scenario(data: Any, source: str = "<scenario>", name: str | None = None) -> Scenario:
    """Validate already-parsed YAML data; raises ScenarioError listing every problem."""
    if not isinstance(data, dict):
        raise _scenario_error(
            source,
            [
                f"{source}: (top level): expected a mapping of scenario fields, "
                f"got {type(data).__name__}"
            ],
        )
    if name and "name" not in data:
        data = {**data, "name": name}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _scenario_error(source, _problems(source, exc)) from None
    except RecursionError:  # data built in Python (a file's nesting is capped when read)
        raise _scenario_error(source, [f"{source}: (top level): nested too deeply"]) from None
    problems: list[str] = []
    for i, site in enumerate(scenario.sites):
        try:
            resolve_site(site)
        except ValidationError as exc:
            problems += _problems(source, exc, ("sites", i, "demand"))
        except ValueError as exc:
            problems.append(f"{source}: sites[{i}].charger: {exc}")
        except RecursionError:
            problems.append(f"{source}: sites[{i}].demand: nested too deeply")
        except Exception as exc:  # a bug below, but still the user's site: say which
            problems.append(f"{source}: sites[{i}]: cannot use: {type(exc).__name__}: {exc}")
    if problems:
        raise _scenario_error(source, problems)
    return scenario


def bundled_scenarios() -> list[Path]:
    """The scenario files shipped in the repository's scenarios/ folder."""
    return sorted(BUNDLED_DIR.glob("*.yaml"))


def find_scenario(ref: str | Path) -> Path:
    """A path as given, or the bundled scenario of that name (`quickstart` or `home.yaml`)."""
    path = Path(ref)
    try:
        if path.exists() or path.suffix or "/" in str(ref):
            return path
        bundled = BUNDLED_DIR / f"{ref}.yaml"
        return bundled if bundled.exists() else path
    except (OSError, ValueError):  # a name too long, a NUL, a folder we may not enter
        return path  # reading it says what is wrong


def load_scenario(ref: str | Path) -> Scenario:
    """Read and validate a scenario file (or a bundled scenario by name)."""
    path = find_scenario(ref)
    source = one_line(str(path), 5000)
    try:
        data = read_yaml_file(path)
    except FileNotFoundError:
        known = ", ".join(p.stem for p in bundled_scenarios())
        raise _scenario_error(
            source, [f"{source}: cannot read: no such file (bundled scenarios: {known})"]
        ) from None
    except YamlFileError as exc:
        where = f"{exc.where}: " if exc.where else ""
        raise _scenario_error(source, [f"{source}: {where}{exc.problem}"]) from None
    # The name defaults to the file's stem, made usable as a folder name (see Scenario.name).
    stem = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in path.stem)
    return parse_scenario(data, source, name=stem[:100] if stem not in ("", ".", "..") else None)


def describe(path: Path) -> str:
    """The one-line description of a scenario file (its `description`, else its first comment)."""
    try:
        data = read_yaml_file(path)
    except (OSError, YamlFileError):
        return "(unreadable)"
    if isinstance(data, dict) and data.get("description"):
        return one_line(str(data["description"]).strip().splitlines()[0])
    return ""
