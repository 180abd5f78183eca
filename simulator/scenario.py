"""Scenario files: YAML validated by pydantic, with errors that name the file, field and problem.

A scenario names a seed, a start, a time zone, the EV mix and the sites (archetype, charger
count, charger model, overrides of any demand parameter). Every field has a default, so a
three-line file runs. This module reads files and validates; it builds nothing.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

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
    ca_file: Path | None = Field(None, description="CA bundle for wss:// (default: system CAs)")

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

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
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
        try:
            a, b = value.format(site="s", index=1), value.format(site="s", index=2)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"pattern {value!r} does not format with {{site}} and {{index}}: {exc}"
            ) from None
        if a == b:
            raise ValueError(f"pattern {value!r} must contain {{index}} so charger ids differ")
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


def _path(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
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
        shown = repr(error["input"])
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return f"{msg} (got {shown})"
    return msg


def _problems(source: str, exc: ValidationError, prefix: Sequence[int | str] = ()) -> list[str]:
    return [f"{source}: {_path([*prefix, *e['loc']])}: {_describe(e)}" for e in exc.errors()]


def parse_scenario(data: Any, source: str = "<scenario>", name: str | None = None) -> Scenario:
    """Validate already-parsed YAML data; raises ScenarioError listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError(
            [
                f"{source}: (top level): expected a mapping of scenario fields, "
                f"got {type(data).__name__}"
            ]
        )
    if name and "name" not in data:
        data = {**data, "name": name}
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise ScenarioError(_problems(source, exc)) from None
    problems: list[str] = []
    for i, site in enumerate(scenario.sites):
        try:
            resolve_site(site)
        except ValidationError as exc:
            problems += _problems(source, exc, ("sites", i, "demand"))
        except ValueError as exc:
            problems.append(f"{source}: sites[{i}].charger: {exc}")
    if problems:
        raise ScenarioError(problems)
    return scenario


def bundled_scenarios() -> list[Path]:
    """The scenario files shipped in the repository's scenarios/ folder."""
    return sorted(BUNDLED_DIR.glob("*.yaml"))


def find_scenario(ref: str | Path) -> Path:
    """A path as given, or the bundled scenario of that name (`quickstart` or `home.yaml`)."""
    path = Path(ref)
    if path.exists() or path.suffix or "/" in str(ref):
        return path
    bundled = BUNDLED_DIR / f"{ref}.yaml"
    return bundled if bundled.exists() else path


def load_scenario(ref: str | Path) -> Scenario:
    """Read and validate a scenario file (or a bundled scenario by name)."""
    path = find_scenario(ref)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        known = ", ".join(p.stem for p in bundled_scenarios())
        raise ScenarioError(
            [f"{source}: cannot read: no such file (bundled scenarios: {known})"]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ScenarioError([f"{source}: cannot read: {reason}"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError([f"{source}: {where}invalid YAML: {problem}"]) from None
    return parse_scenario(data, source, name=path.stem)


def describe(path: Path) -> str:
    """The one-line description of a scenario file (its `description`, else its first comment)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return "(unreadable)"
    if isinstance(data, dict) and data.get("description"):
        return str(data["description"]).strip().splitlines()[0]
    return ""
