"""OCPP 2.0.1 CSMS-initiated operations: the device model, payload conversions, and every
operation end to end over real websockets against the embedded CSMS."""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, TypeVar, cast

import numpy as np
import pytest
import simpy
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from models.demand import EvDemand
from models.physics import CurrentType
from models.smart_charging import (
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    RecurrencyKind,
    SchedulePeriod,
)
from simulator.backoff import RetryBackoff
from simulator.charger import (
    ChargerBehaviour,
    ChargerControl,
    ChargerSettings,
    DataTransferRule,
)
from simulator.clock import OnlineClock
from simulator.csms import CsmsServer
from simulator.csms.handlers import V201Session
from simulator.events import MeterSample
from simulator.link import ChargerLink, LinkContext, LinkState
from simulator.online import OnlineSink
from simulator.protocol import device_model as dm
from simulator.protocol.base import ChargerIdentity
from simulator.protocol.ops201 import (
    ProfileError,
    V201Operations,
    composite_payload,
    profile_from_payload,
    profile_to_payload,
)
from simulator.protocol.v201 import V201Adapter, sampled_values
from simulator.rpc import CallResult
from simulator.run import networked_charger
from simulator.station import ConnectorStatus, Site, Station, StationSpec
from simulator.transport import ConnectionRamp, ConnectSettings

from .harness import (
    AC11,
    STAMPS,
    Harness,
    ev,
    identity,
    station,
    validate_request,
    validate_response,
)

T = TypeVar("T")
Payload = dict[str, Any]


def iso(seconds: float) -> str:
    return STAMPS.iso(seconds)


# -- charging profiles: payload <-> model ----------------------------------------------------------


def profile_payload(**changes: Any) -> Payload:
    payload: Payload = {
        "id": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "validFrom": iso(60),
        "validTo": iso(7200),
        "chargingSchedule": [
            {
                "id": 70,
                "startSchedule": iso(120),
                "duration": 3600,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [
                    {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                    {"startPeriod": 900, "limit": 8.5},
                ],
                "minChargingRate": 6.1,
            }
        ],
    }
    payload.update(changes)
    return payload


def schedule_of(payload: Payload, **changes: Any) -> Payload:
    """`payload` with its (only) schedule changed."""
    return {**payload, "chargingSchedule": [{**payload["chargingSchedule"][0], **changes}]}


def test_a_profile_payload_becomes_the_profile_and_reports_back_the_same() -> None:
    payload = profile_payload()
    validate_request("2.0.1", "SetChargingProfile", {"evseId": 1, "chargingProfile": payload})
    profile = profile_from_payload(payload, 1, STAMPS, None)
    assert (profile.profile_id, profile.stack_level, profile.evse_id) == (7, 2, 1)
    assert profile.purpose is ChargingProfilePurpose.TX_DEFAULT
    assert profile.kind is ChargingProfileKind.ABSOLUTE
    assert (profile.valid_from_s, profile.valid_to_s) == (60.0, 7200.0)
    schedule = profile.schedule
    assert schedule.unit is ChargingRateUnit.A
    assert (schedule.start_s, schedule.duration_s, schedule.min_charging_rate) == (120, 3600, 6.1)
    assert schedule.periods == (SchedulePeriod(0.0, 16.0, 3), SchedulePeriod(900.0, 8.5, None))
    back = profile_to_payload(profile, 70, STAMPS, None)
    assert back == payload
    report = {"requestId": 1, "chargingLimitSource": "CSO", "chargingProfile": [back], "evseId": 1}
    validate_request("2.0.1", "ReportChargingProfiles", report)


def test_tx_profiles_recurring_and_relative_profiles_translate() -> None:
    tx = profile_from_payload(
        profile_payload(chargingProfilePurpose="TxProfile", transactionId="cs0-4"), 1, STAMPS, "4"
    )
    assert tx.purpose is ChargingProfilePurpose.TX and tx.transaction_id == "4"
    assert profile_to_payload(tx, 70, STAMPS, "cs0-4")["transactionId"] == "cs0-4"
    recurring = profile_from_payload(
        profile_payload(chargingProfileKind="Recurring", recurrencyKind="Weekly"), 0, STAMPS, None
    )
    assert recurring.recurrency is RecurrencyKind.WEEKLY and recurring.schedule.start_s == 120
    relative = schedule_of(profile_payload(chargingProfileKind="Relative"), startSchedule=None)
    del relative["chargingSchedule"][0]["startSchedule"]
    profile = profile_from_payload(relative, 1, STAMPS, None)
    assert profile.kind is ChargingProfileKind.RELATIVE and profile.schedule.start_s is None
    station_max = profile_from_payload(
        profile_payload(chargingProfilePurpose="ChargingStationMaxProfile"), 0, STAMPS, None
    )
    assert station_max.purpose is ChargingProfilePurpose.STATION_MAX


def _two_schedules() -> Payload:
    payload = profile_payload()
    payload["chargingSchedule"] = payload["chargingSchedule"] * 2
    return payload


def _without_start() -> Payload:
    payload = profile_payload()
    del payload["chargingSchedule"][0]["startSchedule"]
    return payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (
            profile_payload(chargingProfilePurpose="ChargingStationExternalConstraints"),
            "InvalidProfile",
        ),
        (_two_schedules(), "InvalidSchedule"),  # only ISO 15118 chargers take three
        (_without_start(), "InvalidSchedule"),  # K01.FR.40: Absolute needs startSchedule
        (profile_payload(chargingProfileKind="Relative"), "InvalidSchedule"),  # K01.FR.41
        (profile_payload(chargingProfileKind="Recurring"), "InvalidSchedule"),  # no recurrency
        (
            schedule_of(profile_payload(), chargingSchedulePeriod=[{"startPeriod": 5, "limit": 1}]),
            "InvalidSchedule",
        ),
        (
            schedule_of(
                profile_payload(),
                chargingSchedulePeriod=[{"startPeriod": 0, "limit": 9, "phaseToUse": 1}],
            ),
            "InvalidSchedule",
        ),
        (
            schedule_of(
                profile_payload(), chargingSchedulePeriod=[{"startPeriod": 0, "limit": -1}]
            ),
            "InvalidSchedule",
        ),
    ],
)
def test_profiles_the_charger_refuses_say_why(payload: Payload, reason: str) -> None:
    with pytest.raises(ProfileError) as raised:
        profile_from_payload(payload, 1, STAMPS, None)
    assert str(raised.value) == reason


def test_composite_payload_has_whole_second_starts_and_limits_never_rounded_up() -> None:
    schedule = ChargingSchedule(
        ChargingRateUnit.W,
        (
            SchedulePeriod(0.0, 11040.0, 3),
            SchedulePeriod(99.6, 7359.99, 3),  # rounds to 100 s: replaced by the next one
            SchedulePeriod(100.2, 7000.0, 3),  # the same second: the later period wins
            SchedulePeriod(250.0, 7000.04, 3),  # equal to the previous once rounded: merged
            SchedulePeriod(400.0, 2.3, None),  # 2.3 * 10 is 22.999...: still 2.3
            SchedulePeriod(500.0, 7359.99, None),  # 7359.9, never up to 7360
        ),
        duration_s=900.0,
        start_s=1234.5,
    )
    payload = composite_payload(schedule, 2, 900, STAMPS, 1234.5)
    validate_response("2.0.1", "GetCompositeSchedule", {"status": "Accepted", "schedule": payload})
    assert payload["scheduleStart"] == iso(1234.5)
    assert (payload["evseId"], payload["duration"], payload["chargingRateUnit"]) == (2, 900, "W")
    assert payload["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 11040.0, "numberPhases": 3},
        {"startPeriod": 100, "limit": 7000.0, "numberPhases": 3},
        {"startPeriod": 400, "limit": 2.3},
        {"startPeriod": 500, "limit": 7359.9},
    ]


# -- the adapter's additions -----------------------------------------------------------------------


def test_transaction_ids_map_to_station_numbers_and_nothing_else() -> None:
    adapter = V201Adapter(identity("cs-7"), STAMPS)
    assert adapter.transaction_id_of(12) == "cs-7-12" == adapter.transaction_id_of("12")
    assert adapter.transaction_seq("cs-7-12") == 12
    for foreign in ("cs-7-", "cs-7-012", "cs-7-1x", "cs-8-12", "cs-712", "12", "cs-7-+1"):
        assert adapter.transaction_seq(foreign) is None, foreign


def test_meter_values_keep_only_the_measurands_asked_for() -> None:
    sample = MeterSample(1234.5, 7000.0, 10.1, 3, 230.0, 0.5)
    every = sampled_values(CurrentType.AC, sample)
    assert {v["measurand"] for v in every} == set(dm.MEASURANDS)
    power_soc = sampled_values(CurrentType.AC, sample, frozenset({"Power.Active.Import", "SoC"}))
    assert [v["measurand"] for v in power_soc] == ["Power.Active.Import", "SoC"]
    assert sampled_values(CurrentType.DC, sample, frozenset()) == []
    trigger = sampled_values(CurrentType.DC, sample, None, "Trigger")
    assert {v["context"] for v in trigger} == {"Trigger"}


def test_a_remote_start_is_announced_with_its_id_and_reservation() -> None:
    adapter = V201Adapter(identity(), STAMPS)
    connector = SimpleNamespace(evse_id=2)
    tx = SimpleNamespace(
        seq=3,
        id_tag="TAG1",
        meter_start_wh=0.0,
        started_remotely=True,
        remote_id=41,
        reservation_id=9,
    )
    sample = MeterSample(0.0, 0.0, 0.0, 0, 230.0, math.nan)
    (started,) = adapter.transaction_started(cast(Any, connector), cast(Any, tx), sample, 5.0)
    validate_request("2.0.1", "TransactionEvent", started.payload)
    assert started.payload["triggerReason"] == "RemoteStart"
    assert started.payload["transactionInfo"]["remoteStartId"] == 41
    assert started.payload["reservationId"] == 9
    tx.started_remotely, tx.remote_id, tx.reservation_id = False, None, None
    (local,) = adapter.transaction_started(cast(Any, connector), cast(Any, tx), sample, 6.0)
    assert local.payload["triggerReason"] == "Authorized"
    assert "remoteStartId" not in local.payload["transactionInfo"]
    assert "reservationId" not in local.payload


def test_boot_says_why_and_which_firmware() -> None:
    adapter = V201Adapter(identity(), STAMPS)
    assert adapter.boot_notification(0.0).payload["reason"] == "PowerUp"
    adapter.firmware, adapter.boot_reason = "fw-2.0", "FirmwareUpdate"
    payload = adapter.boot_notification(0.0).payload
    validate_request("2.0.1", "BootNotification", payload)
    assert (payload["reason"], payload["chargingStation"]["firmwareVersion"]) == (
        "FirmwareUpdate",
        "fw-2.0",
    )


def test_reports_split_into_numbered_parts() -> None:
    adapter = V201Adapter(identity(), STAMPS)
    items = [
        {
            "component": {"name": "OCPPCommCtrlr"},
            "variable": {"name": "HeartbeatInterval", "instance": str(i)},
            "variableAttribute": [{"value": str(i)}],
        }
        for i in range(45)
    ]
    parts = adapter.notify_reports(3, items, 20, 10.0)
    assert [p.payload["seqNo"] for p in parts] == [0, 1, 2]
    assert [p.payload["tbc"] for p in parts] == [True, True, False]
    assert [len(p.payload["reportData"]) for p in parts] == [20, 20, 5]
    assert [d for p in parts for d in p.payload["reportData"]] == items
    for part in parts:
        validate_request("2.0.1", "NotifyReport", part.payload)
    (empty,) = adapter.notify_reports(4, [], 20, 10.0)
    assert "reportData" not in empty.payload and empty.payload["tbc"] is False


# -- the device model ------------------------------------------------------------------------------


class FakeHost:
    """A DeviceHost over a real station, recording the side effects it is asked for."""

    def __init__(self, station: Station) -> None:
        self._station = station
        self._settings = ChargerSettings()
        self.heartbeat = 300.0
        self.meter: float | None = None
        self.values: dict[str, str] = {}

    @property
    def settings(self) -> ChargerSettings:
        return self._settings

    @property
    def station(self) -> Station:
        return self._station

    @property
    def identity(self) -> ChargerIdentity:
        return identity()

    def now_iso(self) -> str:
        return STAMPS.iso(self._station.env.now)

    def heartbeat_s(self) -> float:
        return self.heartbeat

    def set_heartbeat(self, seconds: float) -> None:
        self.heartbeat = seconds

    def set_meter_interval(self, seconds: float) -> None:
        self._settings.meter_interval_s = seconds
        self.meter = seconds

    def set_measurands(self, measurands: tuple[str, ...]) -> None:
        self._settings.measurands = measurands

    def profile_count(self) -> int:
        return 0

    def kept(self, key: str, default: str) -> str:
        return self.values.get(key, default)

    def keep(self, key: str, value: str) -> None:
        self.values[key] = value


@pytest.fixture
def host() -> FakeHost:
    _, two_evses = station(Harness(V201Adapter(identity(), STAMPS)), [], AC11, connectors=2)
    return FakeHost(two_evses)


def get(host: FakeHost, component: Payload, variable: Payload, **extra: Any) -> Payload:
    result = dm.get_variable(host, {"component": component, "variable": variable, **extra})
    validate_response("2.0.1", "GetVariables", {"getVariableResult": [result]})
    return result


def put(host: FakeHost, component: Payload, variable: Payload, value: str, **extra: Any) -> Payload:
    item = {"component": component, "variable": variable, "attributeValue": value, **extra}
    validate_request("2.0.1", "SetVariables", {"setVariableData": [item]})
    result = dm.set_variable(host, item)
    validate_response("2.0.1", "SetVariables", {"setVariableResult": [result]})
    return result


COMM = {"name": "OCPPCommCtrlr"}
HEARTBEAT = {"name": "HeartbeatInterval"}


def test_variables_read_what_the_charger_has(host: FakeHost) -> None:
    assert get(host, COMM, HEARTBEAT)["attributeValue"] == "300"
    host.heartbeat = 45.0
    # Names are case-insensitive; instances are not optional where a variable has them.
    assert (
        get(host, {"name": "ocppcommctrlr"}, {"name": "heartbeatinterval"})["attributeValue"]
        == "45"
    )
    attempts = get(host, COMM, {"name": "MessageAttempts", "instance": "TransactionEvent"})
    assert attempts["attributeValue"] == "3"
    assert get(host, COMM, {"name": "MessageAttempts"})["attributeStatus"] == "UnknownVariable"
    evse2 = {"name": "EVSE", "evse": {"id": 2}}
    assert get(host, evse2, {"name": "AvailabilityState"})["attributeValue"] == "Available"
    rated = get(host, evse2, {"name": "Power"}, attributeType="MaxSet")
    assert (rated["attributeStatus"], rated["attributeValue"]) == ("Accepted", "11000")
    assert rated["attributeType"] == "MaxSet"
    connector = {"name": "Connector", "evse": {"id": 1, "connectorId": 1}}
    assert get(host, connector, {"name": "ConnectorType"})["attributeValue"] == "sType2"
    assert get(host, {"name": "ChargingStation"}, {"name": "SupplyPhases"})["attributeValue"] == "3"


@pytest.mark.parametrize(
    ("component", "variable", "attribute", "status"),
    [
        ({"name": "Nonsense"}, HEARTBEAT, None, "UnknownComponent"),
        ({"name": "EVSE", "evse": {"id": 3}}, {"name": "Power"}, None, "UnknownComponent"),
        ({"name": "EVSE"}, {"name": "Power"}, None, "UnknownComponent"),  # which EVSE?
        ({"name": "OCPPCommCtrlr", "evse": {"id": 1}}, HEARTBEAT, None, "UnknownComponent"),
        ({"name": "Connector", "evse": {"id": 1, "connectorId": 2}}, {"name": "Available"}, None,
         "UnknownComponent"),
        (COMM, {"name": "Nonsense"}, None, "UnknownVariable"),
        (COMM, HEARTBEAT, "Target", "NotSupportedAttributeType"),
        (COMM, HEARTBEAT, "MaxSet", "NotSupportedAttributeType"),
    ],
)  # fmt: skip
def test_get_variables_statuses(
    host: FakeHost, component: Payload, variable: Payload, attribute: str | None, status: str
) -> None:
    extra = {} if attribute is None else {"attributeType": attribute}
    result = get(host, component, variable, **extra)
    assert result["attributeStatus"] == status
    assert "attributeValue" not in result
    assert (result["component"], result["variable"]) == (component, variable)


def test_set_variables_write_through_and_check_every_value(host: FakeHost) -> None:
    assert put(host, COMM, HEARTBEAT, "60")["attributeStatus"] == "Accepted"
    assert host.heartbeat == 60.0
    sampled = {"name": "SampledDataCtrlr"}
    assert put(host, sampled, {"name": "TxUpdatedInterval"}, "0")["attributeStatus"] == "Accepted"
    assert host.meter == 0.0
    measurands = {"name": "TxUpdatedMeasurands"}
    assert (
        put(host, sampled, measurands, "SoC,Power.Active.Import")["attributeStatus"] == "Accepted"
    )
    assert host.settings.measurands == ("SoC", "Power.Active.Import")
    assert get(host, sampled, measurands)["attributeValue"] == "SoC,Power.Active.Import"
    auth = {"name": "AuthCtrlr"}
    assert (
        put(host, auth, {"name": "AuthorizeRemoteStart"}, "TRUE")["attributeStatus"] == "Accepted"
    )
    assert host.settings.authorize_remote_start is True
    org = {"name": "OrganizationName"}
    assert put(host, {"name": "SecurityCtrlr"}, org, "ACME")["attributeStatus"] == "Accepted"
    assert host.values[dm.ORGANIZATION_KEY] == "ACME"

    def refused(component: Payload, variable: Payload, value: str) -> str:
        result = put(host, component, variable, value)
        assert result["attributeStatus"] == "Rejected"
        return str(result["attributeStatusInfo"]["reasonCode"])

    assert refused(COMM, HEARTBEAT, "0") == "ValueOutOfRange"
    assert refused(COMM, HEARTBEAT, "1.5") == "InvalidValue"
    assert refused(COMM, HEARTBEAT, "soon") == "InvalidValue"
    assert refused(auth, {"name": "AuthorizeRemoteStart"}, "1") == "InvalidValue"
    assert refused(sampled, measurands, "SoC,Temperature") == "InvalidValue"
    assert refused(sampled, measurands, "SoC,SoC") == "InvalidValue"
    assert refused({"name": "SmartChargingCtrlr"}, {"name": "ProfileStackLevel"}, "9") == "ReadOnly"
    rated = put(
        host, {"name": "EVSE", "evse": {"id": 1}}, {"name": "Power"}, "1", attributeType="MaxSet"
    )
    assert rated["attributeStatus"] == "Rejected"
    unknown = put(host, COMM, HEARTBEAT, "60", attributeType="MinSet")
    assert unknown["attributeStatus"] == "NotSupportedAttributeType"
    # Nothing refused changed anything.
    assert host.heartbeat == 60.0 and host.settings.measurands == ("SoC", "Power.Active.Import")


def test_base_reports_cover_the_model_and_fit_the_schema(host: FakeHost) -> None:
    full = dm.report_data(host, dm.ReportBase.FULL)
    adapter = V201Adapter(identity(), STAMPS)
    for part in adapter.notify_reports(1, full, dm.ITEMS_PER_REPORT, 0.0):
        validate_request("2.0.1", "NotifyReport", part.payload)
    per_evse = [v for v in dm.VARIABLES if v.scope is not dm.Scope.STATION]
    assert len(full) == len(dm.VARIABLES) + len(per_evse)  # two EVSEs: one extra instance each
    evses = {d["component"]["evse"]["id"] for d in full if "evse" in d["component"]}
    assert evses == {1, 2}
    config = dm.report_data(host, dm.ReportBase.CONFIGURATION)
    assert config and all(d["variableAttribute"][0]["mutability"] == "ReadWrite" for d in config)
    assert {"HeartbeatInterval", "TxUpdatedInterval"} <= {d["variable"]["name"] for d in config}
    summary = dm.report_data(host, dm.ReportBase.SUMMARY)
    assert {d["variable"]["name"] for d in summary} == {"AvailabilityState"}
    assert len(summary) == 1 + 2 + 2  # the station, two EVSEs, two connectors
    # Every variable a report lists can be read back with the value reported.
    for data in full:
        result = dm.get_variable(
            host, {"component": data["component"], "variable": data["variable"]}
        )
        assert result["attributeStatus"] == "Accepted"
        if data["variable"]["name"] not in ("DateTime",):
            assert result["attributeValue"] == data["variableAttribute"][0]["value"]


# -- end to end: a charger on the embedded CSMS ----------------------------------------------------


SPEED = 600.0  # ten simulated minutes per wall second
WAIT_S = 15.0  # wall seconds: generous, the machine running the tests may be loaded
TAG = "TAG-0001"


class Observer:
    """LinkObserver + TransactionObserver that keeps what a test checks."""

    def __init__(self) -> None:
        self.invalid: list[tuple[str, str | None, str]] = []
        self.connects = 0

    def connect_attempt(self) -> None:
        pass

    def connected(self, duration_s: float, reconnect: bool) -> None:
        self.connects += 1

    def connect_failed(self, reason: str) -> None:
        pass

    def disconnected(self) -> None:
        pass

    def call_done(
        self, version: str, action: str, outcome: str, latency_s: float, rtt_s: float
    ) -> None:
        pass

    def call_handled(self, version: str, action: str, outcome: str) -> None:
        pass

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.invalid.append((direction, action, reason))

    def transaction_started(self) -> None:
        pass

    def transaction_ended(self, energy_wh: float) -> None:
        pass


@dataclass
class Rig:
    """One 2.0.1 charger (two AC EVSEs) connected to the embedded CSMS, and what the CSMS
    received from it, in order (`wire`)."""

    csms: CsmsServer
    env: simpy.Environment
    station: Station
    control: ChargerControl
    link: ChargerLink
    ops: V201Operations
    clock: OnlineClock
    observer: Observer
    wire: list[tuple[str, Payload]]
    cid: str = "cs201"
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def call(self, action: str, payload: Payload) -> Payload:
        outcome = await self.csms.connections[self.cid].call(action, payload)
        assert isinstance(outcome, CallResult), outcome
        return outcome.payload

    def sent(self, action: str) -> list[Payload]:
        return [p for a, p in self.wire if a == action]

    def events(self, trigger: str | None = None) -> list[Payload]:
        return [
            p
            for p in self.sent("TransactionEvent")
            if trigger is None or p["triggerReason"] == trigger
        ]

    async def until(self, predicate: Callable[[], object], what: str = "") -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S
        while not predicate():
            assert loop.time() < deadline, f"timed out waiting for {what or predicate}"
            await asyncio.sleep(0.01)

    async def sim(self, command: Callable[[], T]) -> T:
        return await self.clock.execute(command)

    async def ready(self) -> None:
        await self.until(
            lambda: self.link.state is LinkState.READY and self.cid in self.csms.connections,
            "the charger to boot",
        )

    def connector(self, evse_id: int) -> Any:
        return self.station.connectors[evse_id - 1]

    def power_w(self, evse_id: int) -> float:
        return float(self.connector(evse_id).sample(self.env.now).power_w)

    def csms_status(self, evse_id: int) -> str | None:
        rows = self.csms.store.query(
            "SELECT status FROM statuses WHERE charger_id = ? AND evse_id = ?", (self.cid, evse_id)
        )
        return None if not rows else str(rows[0][0])

    def notes(self, action: str) -> list[str]:
        rows = self.csms.store.query(
            "SELECT payload FROM notifications WHERE charger_id = ? AND action = ?",
            (self.cid, action),
        )
        return [str(row[0]) for row in rows]

    def assert_clean(self) -> None:
        assert self.observer.invalid == []
        assert self.csms.counters.invalid_frames == 0
        assert not self.csms.counters.errors, self.csms.counters.errors


def charging(rig: Rig, evse_id: int) -> bool:
    connector = rig.connector(evse_id)
    return connector.tx is not None and connector.status is ConnectorStatus.CHARGING


BEHAVIOUR = ChargerBehaviour(
    reboot_s=20.0,
    firmware_download_s=30.0,
    firmware_install_s=30.0,
    upload_s=20.0,
    remote_start_plug_in_s=20.0,
    data_transfer_rules=(DataTransferRule("org.fleetsim", "ping", "Accepted", "pong"),),
    firmware="1.0.0",
)


async def start_rig(
    csms: CsmsServer,
    wire: list[tuple[str, Payload]],
    demand: Iterable[EvDemand] = (),
    settings: ChargerSettings | None = None,
) -> Rig:
    env = simpy.Environment()
    observer = Observer()
    sink = OnlineSink(observer)
    site = Site(env, "site", 0, sink)
    spec = StationSpec(AC11, connectors=2, unplug_delay_s=30.0, meter_interval_s=300.0)
    rng = np.random.default_rng(5)
    cid = "cs201"
    the_station = Station(env, site, 0, cid, spec, sink, sink, list(demand), rng=rng)
    the_station.walk_in = lambda t, _rng: ev(t, dwell_h=4.0, energy=30.0, tag="WALK-IN")
    clock = OnlineClock(env, SPEED)
    ctx = LinkContext(
        clock=clock,
        settings=ConnectSettings(base_url=csms.url, ping_interval_s=None),
        ramp=ConnectionRamp(1000.0),
        observer=observer,
        call_timeout_s=5.0,
        backoff=RetryBackoff(),
    )
    adapter = V201Adapter(ChargerIdentity(cid, "Fleetsim", "Sim-AC", "SN-201", "1.0.0"), STAMPS)
    control = ChargerControl(the_station, BEHAVIOUR, settings or ChargerSettings(), rng)
    link = networked_charger(the_station, adapter, ctx, control)
    ops = link.operations
    assert isinstance(ops, V201Operations)
    sink.attach(link)
    rig = Rig(csms, env, the_station, control, link, ops, clock, observer, wire, cid)
    clock.start()
    link.start()
    rig.tasks.append(asyncio.create_task(clock.run()))
    await rig.ready()
    return rig


@pytest.fixture
def wire(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Payload]]:
    """Every message the CSMS receives from a 2.0.1 charger, as (action, payload)."""
    seen: list[tuple[str, Payload]] = []
    original = V201Session.handlers

    def spying(self: V201Session) -> dict[str, Any]:
        table = original(self)

        def spy(action: str, handler: Callable[[Payload], Any]) -> Callable[[Payload], Any]:
            def record(payload: Payload) -> Any:
                seen.append((action, payload))
                return handler(payload)

            return record

        return {action: spy(action, handler) for action, handler in table.items()}

    monkeypatch.setattr(V201Session, "handlers", spying)
    return seen


@pytest.fixture
async def rig(csms: CsmsServer, wire: list[tuple[str, Payload]]) -> AsyncIterator[Rig]:
    """A charger whose first EVSE gets a car (plugging in at 60 s, charging for hours)."""
    started = await start_rig(csms, wire, [ev(60.0, dwell_h=8.0, energy=40.0, tag=TAG)])
    try:
        yield started
    finally:
        await stop_rig(started)


@pytest.fixture
async def idle_rig(csms: CsmsServer, wire: list[tuple[str, Payload]]) -> AsyncIterator[Rig]:
    """A charger nobody comes to (unless a test sends someone)."""
    started = await start_rig(csms, wire)
    try:
        yield started
    finally:
        await stop_rig(started)


async def stop_rig(rig: Rig) -> None:
    rig.link.ctx.closing = True
    rig.clock.stop()
    await rig.link.close()
    for task in rig.tasks:
        task.cancel()
    await asyncio.gather(*rig.tasks, return_exceptions=True)


# -- remote start and stop (F01-F03) ---------------------------------------------------------------


async def test_request_start_with_a_profile_limits_the_walk_in_session(idle_rig: Rig) -> None:
    rig = idle_rig
    profile = {
        "id": 31,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": [
            {
                "id": 310,
                "chargingRateUnit": "A",
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}],
            }
        ],
    }
    answer = await rig.call(
        "RequestStartTransaction",
        {
            "idToken": {"idToken": "REMOTE-1", "type": "Central"},
            "remoteStartId": 4711,
            "evseId": 2,
            "chargingProfile": profile,
        },
    )
    assert answer == {"status": "Accepted"}
    await rig.until(lambda: charging(rig, 2), "the walk-in driver to charge")
    await rig.until(lambda: rig.events("RemoteStart"), "the Started event at the CSMS")
    (started,) = rig.events("RemoteStart")
    assert started["eventType"] == "Started"
    assert started["transactionInfo"]["remoteStartId"] == 4711
    assert started["evse"]["id"] == 2 and started["idToken"]["idToken"] == "REMOTE-1"
    tx = rig.connector(2).tx
    assert tx.started_remotely and tx.remote_id == 4711
    # The profile is the transaction's TxProfile: 8 A on three phases, not the EVSE's 16 A.
    assert 0.0 < rig.power_w(2) <= 8.0 * 230.0 * 3 + 1e-6
    (installed,) = rig.control.profiles(2)
    assert installed.transaction_id == str(tx.seq)
    await rig.until(lambda: rig.csms.store.transactions(rig.cid), "the CSMS to record it")
    (record,) = rig.csms.store.transactions(rig.cid)
    assert record.transaction_id == f"{rig.cid}-{tx.seq}" and record.id_tag == "REMOTE-1"
    # The EVSE is busy now: a second start there is refused.
    again = {"idToken": {"idToken": "X", "type": "Central"}, "remoteStartId": 1, "evseId": 2}
    assert (await rig.call("RequestStartTransaction", again))["status"] == "Rejected"
    unknown = dict(again, evseId=7)
    assert (await rig.call("RequestStartTransaction", unknown))["status"] == "Rejected"
    wrong = dict(
        again, evseId=1, chargingProfile=dict(profile, chargingProfilePurpose="TxDefaultProfile")
    )
    refused = await rig.call("RequestStartTransaction", wrong)
    assert refused == {"status": "Rejected", "statusInfo": {"reasonCode": "InvalidProfile"}}
    assert rig.connector(1).tx is None
    rig.assert_clean()


async def test_request_stop_ends_the_named_transaction(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    tx = rig.connector(1).tx
    tx_id = f"{rig.cid}-{tx.seq}"
    assert await rig.call("RequestStopTransaction", {"transactionId": "other-1"}) == {
        "status": "Rejected"
    }
    assert await rig.call("RequestStopTransaction", {"transactionId": tx_id}) == {
        "status": "Accepted"
    }
    await rig.until(lambda: rig.events("RemoteStop"), "the Ended event")
    (ended,) = rig.events("RemoteStop")
    assert ended["eventType"] == "Ended"
    assert ended["transactionInfo"]["stoppedReason"] == "Remote"
    assert not tx.open and rig.power_w(1) == 0.0
    await rig.until(lambda: rig.csms.store.transactions(rig.cid)[0].stop_reason, "the record")
    assert rig.csms.store.transactions(rig.cid)[0].stop_reason == "Remote"
    # Stopped already: a second request finds nothing to stop.
    assert (await rig.call("RequestStopTransaction", {"transactionId": tx_id}))["status"] == (
        "Rejected"
    )
    rig.assert_clean()


# -- reset, availability, unlock, cache (B11-B12, G03, F05, C11) -----------------------------------


async def test_reset_immediate_ends_the_transaction_and_boots_again(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    tx = rig.connector(1).tx
    assert (await rig.call("Reset", {"type": "Immediate", "evseId": 9}))["status"] == "Rejected"
    assert await rig.call("Reset", {"type": "Immediate"}) == {"status": "Accepted"}
    await rig.until(lambda: len(rig.sent("BootNotification")) == 2, "the second boot")
    first, second = rig.sent("BootNotification")
    assert (first["reason"], second["reason"]) == ("PowerUp", "RemoteReset")
    (ended,) = rig.events("ResetCommand")
    assert ended["eventType"] == "Ended"
    assert ended["transactionInfo"]["stoppedReason"] == "ImmediateReset"
    assert not tx.open and rig.observer.connects == 2
    # The Ended event went out before the connection closed: nothing waits to be replayed.
    assert wire_index(rig, "TransactionEvent", ended) < wire_index(rig, "BootNotification", second)
    await rig.ready()
    rig.assert_clean()


def wire_index(rig: Rig, action: str, payload: Payload) -> int:
    return next(i for i, (a, p) in enumerate(rig.wire) if a == action and p is payload)


async def test_reset_on_idle_waits_for_the_transaction(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    tx = rig.connector(1).tx
    assert await rig.call("Reset", {"type": "OnIdle"}) == {"status": "Scheduled"}
    await asyncio.sleep(0.2)  # two simulated minutes: still charging, still connected
    assert tx.open and len(rig.sent("BootNotification")) == 1
    stop = {"transactionId": f"{rig.cid}-{tx.seq}"}
    assert (await rig.call("RequestStopTransaction", stop))["status"] == "Accepted"
    await rig.until(lambda: len(rig.sent("BootNotification")) == 2, "the reset once idle")
    assert rig.sent("BootNotification")[1]["reason"] == "RemoteReset"
    rig.assert_clean()


async def test_change_availability_of_an_evse_and_of_the_station(
    csms: CsmsServer, wire: list[tuple[str, Payload]]
) -> None:
    # A short visit: the driver leaves twelve simulated minutes after plugging in.
    rig = await start_rig(csms, wire, [ev(60.0, dwell_h=0.2, energy=40.0, tag=TAG)])
    try:
        await rig.until(lambda: charging(rig, 1), "the car to charge")
        inoperative = {"operationalStatus": "Inoperative"}
        answer = await rig.call("ChangeAvailability", {**inoperative, "evse": {"id": 2}})
        assert answer == {"status": "Accepted"}
        await rig.until(lambda: rig.csms_status(2) == "Unavailable", "EVSE 2 Unavailable")
        assert not rig.connector(2).operative
        # EVSE 1 charges: it goes Unavailable once its session is over.
        answer = await rig.call("ChangeAvailability", {**inoperative, "evse": {"id": 1}})
        assert answer == {"status": "Scheduled"}
        assert rig.connector(1).tx is not None and rig.csms_status(1) == "Occupied"
        bad = {**inoperative, "evse": {"id": 1, "connectorId": 2}}
        assert (await rig.call("ChangeAvailability", bad))["status"] == "Rejected"
        await rig.until(lambda: rig.csms_status(1) == "Unavailable", "EVSE 1 Unavailable")
        assert rig.events("StopAuthorized") or rig.events("EVCommunicationLost")
        # The whole station (no evse) comes back.
        operative = {"operationalStatus": "Operative"}
        assert await rig.call("ChangeAvailability", operative) == {"status": "Accepted"}
        await rig.until(
            lambda: rig.csms_status(1) == rig.csms_status(2) == "Available", "the station back"
        )
        assert all(c.operative for c in rig.station.connectors)
        rig.assert_clean()
    finally:
        await stop_rig(rig)


async def test_unlock_connector_never_ends_a_transaction(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    answer = await rig.call("UnlockConnector", {"evseId": 1, "connectorId": 1})
    assert answer == {"status": "OngoingAuthorizedTransaction"}
    assert rig.connector(1).tx is not None and rig.connector(1).tx.open
    assert await rig.call("UnlockConnector", {"evseId": 2, "connectorId": 1}) == {
        "status": "Unlocked"
    }
    for evse, connector in ((3, 1), (2, 2)):
        answer = await rig.call("UnlockConnector", {"evseId": evse, "connectorId": connector})
        assert answer == {"status": "UnknownConnector"}
    rig.assert_clean()


async def test_clear_cache_forgets_answers_unless_the_cache_is_off(rig: Rig) -> None:
    await rig.until(lambda: rig.control.cached(TAG) == "Accepted", "the CSMS's answer cached")
    assert rig.sent("Authorize")
    assert await rig.call("ClearCache", {}) == {"status": "Accepted"}
    assert rig.control.cached(TAG) is None
    off = {
        "component": {"name": "AuthCacheCtrlr"},
        "variable": {"name": "Enabled"},
        "attributeValue": "false",
    }
    answer = await rig.call("SetVariables", {"setVariableData": [off]})
    assert answer["setVariableResult"][0]["attributeStatus"] == "Accepted"
    assert await rig.call("ClearCache", {}) == {"status": "Rejected"}
    rig.assert_clean()


# -- device model over the wire (B05-B07) ----------------------------------------------------------


def setting(component: str, variable: str, value: str, **extra: Any) -> Payload:
    return {
        "component": {"name": component},
        "variable": {"name": variable, **extra},
        "attributeValue": value,
    }


async def test_set_variables_change_the_traffic_at_once(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    changes = [
        setting("OCPPCommCtrlr", "HeartbeatInterval", "20"),
        setting("SampledDataCtrlr", "TxUpdatedInterval", "30"),
        setting("SampledDataCtrlr", "TxUpdatedMeasurands", "Energy.Active.Import.Register"),
        setting("SmartChargingCtrlr", "ProfileStackLevel", "3"),
        setting("OCPPCommCtrlr", "HeartbeatInterval", "0", instance="x"),
        setting("TxCtrlr", "EVConnectionTimeOut", "soon"),
    ]
    answer = await rig.call("SetVariables", {"setVariableData": changes})
    statuses = [r["attributeStatus"] for r in answer["setVariableResult"]]
    assert statuses == [
        "Accepted",
        "Accepted",
        "Accepted",
        "Rejected",
        "UnknownVariable",
        "Rejected",
    ]
    assert rig.link.heartbeat_s == 20.0 and rig.control.settings.meter_interval_s == 30.0
    heartbeats, periodic = len(rig.sent("Heartbeat")), len(rig.events("MeterValuePeriodic"))
    began = rig.clock.sim_now()
    await rig.until(lambda: len(rig.sent("Heartbeat")) >= heartbeats + 5, "five heartbeats")
    # Five heartbeats at the old 600 s interval would take 3000 s.
    assert rig.clock.sim_now() - began < 600.0
    await rig.until(lambda: len(rig.events("MeterValuePeriodic")) >= periodic + 4, "samples")
    new_periodic = rig.events("MeterValuePeriodic")[periodic:]
    stamps = [STAMPS.seconds(e["timestamp"]) for e in new_periodic]
    # The first sample comes 30 s after the change, the next ones 30 s apart.
    assert [round(b - a, 3) for a, b in itertools.pairwise(stamps)] == [30.0] * (len(stamps) - 1)
    for event in new_periodic:
        (meter_value,) = event["meterValue"]
        assert [v["measurand"] for v in meter_value["sampledValue"]] == [
            "Energy.Active.Import.Register"
        ]
    read = await rig.call(
        "GetVariables",
        {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}},
                {
                    "component": {"name": "EVSE", "evse": {"id": 1}},
                    "variable": {"name": "AvailabilityState"},
                },
                {"component": {"name": "EVSE", "evse": {"id": 1}}, "variable": {"name": "Power"}},
            ]
        },
    )
    values = [r.get("attributeValue") for r in read["getVariableResult"]]
    assert values[:2] == ["20", "Occupied"]
    assert float(values[2]) == pytest.approx(rig.power_w(1), rel=0.01) and float(values[2]) > 0
    rig.assert_clean()


async def test_too_many_variables_in_one_request_is_an_error(idle_rig: Rig) -> None:
    item = {"component": {"name": "ClockCtrlr"}, "variable": {"name": "DateTime"}}
    outcome = await idle_rig.csms.connections[idle_rig.cid].call(
        "GetVariables", {"getVariableData": [item] * (dm.ITEMS_PER_GET_VARIABLES + 1)}
    )
    assert not isinstance(outcome, CallResult)
    assert getattr(outcome, "code", None) == "OccurrenceConstraintViolation"
    answer = await idle_rig.call("GetVariables", {"getVariableData": [item]})
    (result,) = answer["getVariableResult"]
    # The charger's clock is the simulated one.
    assert STAMPS.seconds(result["attributeValue"]) == pytest.approx(idle_rig.env.now, abs=60.0)


async def test_get_base_report_arrives_in_numbered_parts(idle_rig: Rig) -> None:
    rig = idle_rig
    assert await rig.call("GetBaseReport", {"requestId": 77, "reportBase": "FullInventory"}) == {
        "status": "Accepted"
    }
    await rig.until(
        lambda: any(not p.get("tbc", False) for p in rig.sent("NotifyReport")), "the last part"
    )
    parts = rig.sent("NotifyReport")
    assert [p["seqNo"] for p in parts] == list(range(len(parts)))
    assert all(p["requestId"] == 77 for p in parts) and len(parts) > 1
    assert all(len(p["reportData"]) <= dm.ITEMS_PER_REPORT for p in parts)
    items = [d for p in parts for d in p["reportData"]]
    heartbeat = next(d for d in items if d["variable"]["name"] == "HeartbeatInterval")
    assert heartbeat["variableAttribute"][0]["value"] == "600"  # the CSMS's boot interval
    assert len(rig.notes("NotifyReport")) == len(parts)
    summary = await rig.call("GetBaseReport", {"requestId": 78, "reportBase": "SummaryInventory"})
    assert summary == {"status": "Accepted"}
    await rig.until(lambda: any(p["requestId"] == 78 for p in rig.sent("NotifyReport")), "it")
    (part,) = [p for p in rig.sent("NotifyReport") if p["requestId"] == 78]
    assert {d["variable"]["name"] for d in part["reportData"]} == {"AvailabilityState"}
    rig.assert_clean()


# -- TriggerMessage (F06) --------------------------------------------------------------------------


async def trigger(rig: Rig, message: str, evse: Payload | None = None) -> str:
    payload: Payload = {"requestedMessage": message}
    if evse is not None:
        payload["evse"] = evse
    return str((await rig.call("TriggerMessage", payload))["status"])


async def test_trigger_message_sends_every_message_it_accepts(rig: Rig) -> None:
    # Before any transaction: no TransactionEvent to trigger, and the boot was accepted.
    assert await trigger(rig, "TransactionEvent") == "Rejected"
    assert await trigger(rig, "BootNotification") == "Rejected"  # F06.FR.17
    assert await trigger(rig, "PublishFirmwareStatusNotification") == "NotImplemented"
    assert await trigger(rig, "StatusNotification") == "Rejected"  # F06.FR.12: which one?
    assert await trigger(rig, "StatusNotification", {"id": 3, "connectorId": 1}) == "Rejected"
    await rig.until(lambda: charging(rig, 1), "the car to charge")

    heartbeats = len(rig.sent("Heartbeat"))
    assert await trigger(rig, "Heartbeat", {"id": 1}) == "Accepted"  # evse is irrelevant here
    await rig.until(lambda: len(rig.sent("Heartbeat")) > heartbeats, "the Heartbeat")

    statuses = len(rig.sent("StatusNotification"))
    assert await trigger(rig, "StatusNotification", {"id": 2, "connectorId": 1}) == "Accepted"
    await rig.until(lambda: len(rig.sent("StatusNotification")) > statuses, "the status")
    status = rig.sent("StatusNotification")[-1]
    assert (status["evseId"], status["connectorStatus"]) == (2, "Available")

    assert await trigger(rig, "MeterValues", {"id": 1}) == "Accepted"
    await rig.until(lambda: rig.sent("MeterValues"), "the meter values")
    (meter,) = rig.sent("MeterValues")
    assert meter["evseId"] == 1
    values = meter["meterValue"][0]["sampledValue"]
    assert {v["context"] for v in values} == {"Trigger"}
    # AlignedDataCtrlr.Measurands by default: the register and the power.
    assert [v["measurand"] for v in values] == [
        "Energy.Active.Import.Register",
        "Power.Active.Import",
    ]
    assert values[1]["value"] > 0

    assert await trigger(rig, "TransactionEvent", {"id": 2}) == "Rejected"  # nothing on EVSE 2
    assert await trigger(rig, "TransactionEvent") == "Accepted"
    await rig.until(lambda: rig.events("Trigger"), "the triggered event")
    (event,) = rig.events("Trigger")
    assert event["eventType"] == "Updated"
    assert event["transactionInfo"]["chargingState"] == "Charging"
    seq_nos = [e["seqNo"] for e in rig.events()]
    assert seq_nos == list(range(len(seq_nos)))  # numbered in line with the others

    assert await trigger(rig, "FirmwareStatusNotification") == "Accepted"
    assert await trigger(rig, "LogStatusNotification") == "Accepted"
    await rig.until(lambda: rig.sent("FirmwareStatusNotification"), "the firmware status")
    await rig.until(lambda: rig.sent("LogStatusNotification"), "the log status")
    assert rig.sent("FirmwareStatusNotification") == [{"status": "Idle"}]
    assert rig.sent("LogStatusNotification") == [{"status": "Idle"}]
    rig.assert_clean()


async def test_triggered_certificate_requests_carry_a_real_csr(idle_rig: Rig) -> None:
    rig = idle_rig
    org = setting("SecurityCtrlr", "OrganizationName", "ACME Charging")
    await rig.call("SetVariables", {"setVariableData": [org]})
    for message in (
        "SignChargingStationCertificate",
        "SignV2GCertificate",
        "SignCombinedCertificate",
    ):
        assert await trigger(rig, message) == "Accepted"
    await rig.until(lambda: len(rig.sent("SignCertificate")) == 3, "three signing requests")
    station_req, v2g_req, combined_req = rig.sent("SignCertificate")
    assert station_req["certificateType"] == "ChargingStationCertificate"
    assert v2g_req["certificateType"] == "V2GCertificate"
    assert "certificateType" not in combined_req
    keys = set()
    for request in (station_req, v2g_req, combined_req):
        csr = x509.load_pem_x509_csr(request["csr"].encode())
        assert csr.is_signature_valid
        organization = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        assert organization[0].value == "ACME Charging"
        key = csr.public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
        keys.add(key.public_numbers())
    assert len(keys) == 1  # one key per charger
    cn = x509.load_pem_x509_csr(station_req["csr"].encode()).subject
    assert cn.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "SN-201"
    assert len(rig.notes("SignCertificate")) == 3
    rig.assert_clean()


# -- reservations (H01-H04) ------------------------------------------------------------------------


def reservation(rig: Rig, reservation_id: int, in_s: float, **extra: Any) -> Payload:
    return {
        "id": reservation_id,
        "expiryDateTime": STAMPS.iso(rig.clock.sim_now() + in_s),
        "idToken": {"idToken": "RES-TAG", "type": "ISO14443"},
        **extra,
    }


async def test_a_reservation_expires_and_says_so(idle_rig: Rig) -> None:
    rig = idle_rig
    assert await rig.call("ReserveNow", reservation(rig, 5, 240.0, evseId=1)) == {
        "status": "Accepted"
    }
    await rig.until(lambda: rig.csms_status(1) == "Reserved", "EVSE 1 Reserved")
    await rig.until(lambda: rig.sent("ReservationStatusUpdate"), "the expiry")
    assert rig.sent("ReservationStatusUpdate") == [
        {"reservationId": 5, "reservationUpdateStatus": "Expired"}
    ]
    await rig.until(lambda: rig.csms_status(1) == "Available", "EVSE 1 Available again")
    assert len(rig.notes("ReservationStatusUpdate")) == 1
    refused = [
        reservation(rig, 6, 240.0, evseId=4),
        reservation(rig, 7, 240.0, connectorType="cCCS2"),  # an AC charger
        reservation(rig, 8, -60.0),  # already over
    ]
    for payload in refused:
        assert (await rig.call("ReserveNow", payload))["status"] == "Rejected"
    rig.assert_clean()


async def test_cancel_a_reservation_and_use_one(idle_rig: Rig) -> None:
    rig = idle_rig
    assert (await rig.call("ReserveNow", reservation(rig, 9, 3600.0)))["status"] == "Accepted"
    await rig.until(lambda: "Reserved" in (rig.csms_status(1), rig.csms_status(2)), "a reserve")
    assert await rig.call("CancelReservation", {"reservationId": 9}) == {"status": "Accepted"}
    await rig.until(
        lambda: rig.csms_status(1) == rig.csms_status(2) == "Available", "both Available"
    )
    assert await rig.call("CancelReservation", {"reservationId": 9}) == {"status": "Rejected"}
    assert rig.sent("ReservationStatusUpdate") == []  # H02: the CSMS knows it cancelled it
    # A reservation is consumed by a start with its tag; a random driver cannot take it.
    assert (await rig.call("ReserveNow", reservation(rig, 10, 3600.0, evseId=2)))[
        "status"
    ] == "Accepted"
    start = {
        "idToken": {"idToken": "RES-TAG", "type": "ISO14443"},
        "remoteStartId": 12,
        "evseId": 2,
    }
    assert (await rig.call("RequestStartTransaction", start))["status"] == "Accepted"
    await rig.until(lambda: rig.events("RemoteStart"), "the transaction")
    (started,) = rig.events("RemoteStart")
    assert started["reservationId"] == 10 and started["evse"]["id"] == 2
    rig.assert_clean()


# -- local authorisation list (D01-D02) ------------------------------------------------------------


async def test_the_local_list_decides_before_the_csms(
    csms: CsmsServer, wire: list[tuple[str, Payload]]
) -> None:
    # Two drivers arrive after the list is sent: a blocked one and an accepted one.
    rig = await start_rig(
        csms,
        wire,
        [
            ev(600.0, dwell_h=2.0, energy=10.0, tag="BLOCKED-1"),
            ev(660.0, dwell_h=2.0, energy=10.0, tag="LISTED-1"),
        ],
    )
    try:
        assert await rig.call("GetLocalListVersion", {}) == {"versionNumber": 0}

        def entry(tag: str, status: str | None) -> Payload:
            item: Payload = {"idToken": {"idToken": tag, "type": "ISO14443"}}
            if status is not None:
                item["idTokenInfo"] = {"status": status}
            return item

        full = {
            "versionNumber": 3,
            "updateType": "Full",
            "localAuthorizationList": [
                entry("BLOCKED-1", "Blocked"),
                entry("LISTED-1", "Accepted"),
                entry("GONE-1", "Accepted"),
            ],
        }
        assert await rig.call("SendLocalList", full) == {"status": "Accepted"}
        assert await rig.call("GetLocalListVersion", {}) == {"versionNumber": 3}
        stale = {"versionNumber": 3, "updateType": "Differential"}
        assert await rig.call("SendLocalList", stale) == {"status": "VersionMismatch"}
        remove = {
            "versionNumber": 4,
            "updateType": "Differential",
            "localAuthorizationList": [entry("GONE-1", None)],
        }
        assert await rig.call("SendLocalList", remove) == {"status": "Accepted"}
        assert rig.control.local_list() == {"BLOCKED-1": "Blocked", "LISTED-1": "Accepted"}
        await rig.until(lambda: rig.events("Authorized"), "the listed driver's transaction")
        (started,) = rig.events("Authorized")
        assert started["idToken"]["idToken"] == "LISTED-1"
        # Both were decided on the charger: the CSMS was never asked about either.
        assert rig.sent("Authorize") == []
        assert all(c.tx is None or c.tx.id_tag == "LISTED-1" for c in rig.station.connectors)
        rig.assert_clean()
    finally:
        await stop_rig(rig)


# -- firmware, logs, data transfer (L01, N01, P01) -------------------------------------------------


async def test_update_firmware_reports_each_step_and_boots_the_new_version(idle_rig: Rig) -> None:
    rig = idle_rig
    update = {
        "requestId": 21,
        "firmware": {
            "location": "https://firmware.example/sim-ac/fw-2.1.0.bin",
            "retrieveDateTime": STAMPS.iso(rig.clock.sim_now() + 60.0),
        },
    }
    assert await rig.call("UpdateFirmware", update) == {"status": "Accepted"}
    await rig.until(lambda: {"status": "Installed", "requestId": 21} in rig.sent(
        "FirmwareStatusNotification"), "Installed")  # fmt: skip
    statuses = [p["status"] for p in rig.sent("FirmwareStatusNotification")]
    assert statuses == [
        "DownloadScheduled",
        "Downloading",
        "Downloaded",
        "Installing",
        "InstallRebooting",
        "Installed",
    ]
    assert {p["requestId"] for p in rig.sent("FirmwareStatusNotification")} == {21}
    _, second = rig.sent("BootNotification")
    assert second["reason"] == "FirmwareUpdate"
    assert second["chargingStation"]["firmwareVersion"] == "fw-2.1.0"
    # Installed is reported by the new firmware, after its boot.
    installed = rig.sent("FirmwareStatusNotification")[-1]
    assert wire_index(rig, "BootNotification", second) < wire_index(
        rig, "FirmwareStatusNotification", installed
    )
    rows = rig.csms.store.query(
        "SELECT firmware, boots FROM chargers WHERE charger_id = ?", (rig.cid,)
    )
    assert rows == [("fw-2.1.0", 2)]
    rig.assert_clean()


async def test_a_bad_signing_certificate_is_refused(idle_rig: Rig) -> None:
    update = {
        "requestId": 22,
        "firmware": {
            "location": "ftp://firmware.example/fw.bin",
            "retrieveDateTime": STAMPS.iso(0.0),
            "signingCertificate": "-----BEGIN CERTIFICATE-----\nbm9uc2Vuc2U=\n"
            "-----END CERTIFICATE-----",
            "signature": "c2lnbmF0dXJl",
        },
    }
    assert await idle_rig.call("UpdateFirmware", update) == {"status": "InvalidCertificate"}
    await asyncio.sleep(0.1)
    assert idle_rig.sent("FirmwareStatusNotification") == []
    idle_rig.assert_clean()


async def test_get_log_uploads_and_reports_it(idle_rig: Rig) -> None:
    rig = idle_rig
    request = {
        "requestId": 5,
        "logType": "DiagnosticsLog",
        "log": {"remoteLocation": "sftp://logs.example/incoming/"},
    }
    answer = await rig.call("GetLog", request)
    assert answer["status"] == "Accepted" and answer["filename"].endswith(".log")
    # A second request while the first uploads cancels it.
    second = await rig.call("GetLog", dict(request, requestId=6))
    assert second["status"] == "AcceptedCanceled"
    await rig.until(lambda: {"status": "Uploaded", "requestId": 6} in rig.sent(
        "LogStatusNotification"), "Uploaded")  # fmt: skip
    assert {"status": "Uploading", "requestId": 5} in rig.sent("LogStatusNotification")
    assert {"status": "Uploaded", "requestId": 5} not in rig.sent("LogStatusNotification")
    (upload,) = rig.control.uploads
    assert upload[1:] == ("sftp://logs.example/incoming/", second["filename"])
    rig.assert_clean()


async def test_data_transfer_answers_by_vendor_rule(idle_rig: Rig) -> None:
    ping = {"vendorId": "org.fleetsim", "messageId": "ping", "data": {"n": 1}}
    assert await idle_rig.call("DataTransfer", ping) == {"status": "Accepted", "data": "pong"}
    other = {"vendorId": "org.fleetsim", "messageId": "reboot"}
    assert await idle_rig.call("DataTransfer", other) == {"status": "UnknownMessageId"}
    assert await idle_rig.call("DataTransfer", {"vendorId": "com.acme"}) == {
        "status": "UnknownVendorId"
    }
    idle_rig.assert_clean()


# -- smart charging (K01, K08-K10) -----------------------------------------------------------------


def charging_profile(
    profile_id: int,
    purpose: str,
    limit: float,
    unit: str = "A",
    stack_level: int = 0,
    **extra: Any,
) -> Payload:
    return {
        "id": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": "Absolute",
        "chargingSchedule": [
            {
                "id": profile_id * 10,
                "startSchedule": STAMPS.iso(0.0),
                "chargingRateUnit": unit,
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": limit}],
            }
        ],
        **extra,
    }


async def set_profile(rig: Rig, evse_id: int, profile: Payload) -> Payload:
    return await rig.call("SetChargingProfile", {"evseId": evse_id, "chargingProfile": profile})


async def test_profiles_limit_the_power_drawn_and_clearing_restores_it(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    full_w = rig.power_w(1)
    assert full_w > 10_000.0  # 16 A on three phases
    # A station-wide TxDefaultProfile of 10 A per phase.
    assert await set_profile(rig, 0, charging_profile(1, "TxDefaultProfile", 10.0)) == {
        "status": "Accepted"
    }
    await rig.until(lambda: rig.power_w(1) <= 10.0 * 230.0 * 3 + 1e-6, "10 A")
    assert rig.power_w(1) > 0.0
    # The meter values the CSMS receives from now on follow the limit.
    interval = setting("SampledDataCtrlr", "TxUpdatedInterval", "30")
    await rig.call("SetVariables", {"setVariableData": [interval]})
    seen = len(rig.events("MeterValuePeriodic"))
    await rig.until(lambda: len(rig.events("MeterValuePeriodic")) > seen, "a meter value")
    (power,) = [
        v["value"]
        for v in rig.events("MeterValuePeriodic")[seen]["meterValue"][0]["sampledValue"]
        if v["measurand"] == "Power.Active.Import"
    ]
    assert 0.0 < power <= 6900.0 + 0.1
    composite = await rig.call(
        "GetCompositeSchedule", {"evseId": 1, "duration": 600, "chargingRateUnit": "A"}
    )
    assert composite["status"] == "Accepted"
    schedule = composite["schedule"]
    assert (schedule["evseId"], schedule["duration"], schedule["chargingRateUnit"]) == (1, 600, "A")
    assert [p["limit"] for p in schedule["chargingSchedulePeriod"]] == [10.0]
    assert STAMPS.seconds(schedule["scheduleStart"]) == pytest.approx(rig.env.now, abs=60.0)
    in_watts = await rig.call(
        "GetCompositeSchedule", {"evseId": 1, "duration": 60, "chargingRateUnit": "W"}
    )
    assert in_watts["schedule"]["chargingSchedulePeriod"][0]["limit"] == pytest.approx(
        6900.0, abs=0.1
    )
    unknown = await rig.call("GetCompositeSchedule", {"evseId": 3, "duration": 60})
    assert unknown["status"] == "Rejected" and "schedule" not in unknown

    # The running transaction's own TxProfile, in watts, overrides the default.
    tx = rig.connector(1).tx
    tx_profile = charging_profile(2, "TxProfile", 6000.0, "W", transactionId=f"{rig.cid}-{tx.seq}")
    assert (await set_profile(rig, 1, tx_profile))["status"] == "Accepted"
    await rig.until(lambda: rig.power_w(1) <= 6000.0 + 1e-6, "6 kW")
    # A station maximum below that caps it further (above 6 A per phase, the least an AC EV
    # can be given: below it, charging would pause).
    station_max = charging_profile(3, "ChargingStationMaxProfile", 5000.0, "W")
    assert (await set_profile(rig, 0, station_max))["status"] == "Accepted"
    await rig.until(lambda: rig.power_w(1) <= 5000.0 + 1e-6, "5 kW")
    assert rig.power_w(1) > 0.0

    # Clearing by id, then by criteria, gives the power back step by step.
    assert await rig.call("ClearChargingProfile", {"chargingProfileId": 3}) == {
        "status": "Accepted"
    }
    await rig.until(lambda: rig.power_w(1) > 5500.0, "6 kW again")
    assert rig.power_w(1) <= 6000.0 + 1e-6
    purpose = {"chargingProfileCriteria": {"chargingProfilePurpose": "TxProfile", "evseId": 1}}
    assert await rig.call("ClearChargingProfile", purpose) == {"status": "Accepted"}
    await rig.until(lambda: rig.power_w(1) > 6500.0, "10 A again")
    assert await rig.call("ClearChargingProfile", {}) == {"status": "Accepted"}  # everything
    await rig.until(lambda: rig.power_w(1) == pytest.approx(full_w, rel=0.05), "full power")
    assert await rig.call("ClearChargingProfile", {"chargingProfileId": 1}) == {"status": "Unknown"}
    rig.assert_clean()


async def test_profiles_are_checked_reported_and_refused_as_k01_says(rig: Rig) -> None:
    await rig.until(lambda: charging(rig, 1), "the car to charge")
    default = charging_profile(11, "TxDefaultProfile", 12.0, stack_level=1, validTo=STAMPS.iso(9e5))
    assert (await set_profile(rig, 1, default))["status"] == "Accepted"
    station_max = charging_profile(12, "ChargingStationMaxProfile", 20000.0, "W")
    assert (await set_profile(rig, 0, station_max))["status"] == "Accepted"

    def refused(answer: Payload) -> str:
        assert answer["status"] == "Rejected"
        return str(answer.get("statusInfo", {}).get("reasonCode"))

    # K01.FR.39: same purpose and stack level on one EVSE, valid at the same time.
    clash = charging_profile(13, "TxDefaultProfile", 8.0, stack_level=1)
    assert refused(await set_profile(rig, 1, clash)) == "DuplicateProfile"
    above = dict(clash, stackLevel=2)  # one level up it stacks on top
    assert (await set_profile(rig, 1, above))["status"] == "Accepted"
    # A TxProfile names its transaction, which must be running on that EVSE.
    assert refused(await set_profile(rig, 1, charging_profile(14, "TxProfile", 8.0))) == (
        "MissingParam"
    )
    tx_id = f"{rig.cid}-{rig.connector(1).tx.seq}"
    elsewhere = charging_profile(15, "TxProfile", 8.0, transactionId=tx_id)
    assert refused(await set_profile(rig, 2, elsewhere)) == "InvalidProfile"
    unknown_tx = charging_profile(16, "TxProfile", 8.0, transactionId="someone-else-1")
    assert refused(await set_profile(rig, 1, unknown_tx)) == "TxNotFound"
    misplaced = charging_profile(17, "ChargingStationMaxProfile", 8.0)
    assert refused(await set_profile(rig, 1, misplaced)) == "InvalidProfile"
    external = charging_profile(18, "ChargingStationExternalConstraints", 8.0)
    assert refused(await set_profile(rig, 0, external)) == "InvalidProfile"
    too_high = charging_profile(19, "TxDefaultProfile", 8.0, stack_level=dm.PROFILE_STACK_LEVEL + 1)
    assert refused(await set_profile(rig, 0, too_high)) == "InvalidProfile"
    assert refused(await set_profile(rig, 5, charging_profile(20, "TxDefaultProfile", 8.0))) == (
        "UnknownEvse"
    )

    answer = await rig.call("GetChargingProfiles", {"requestId": 40, "chargingProfile": {}})
    assert answer == {"status": "Accepted"}
    await rig.until(
        lambda: any(not p["tbc"] for p in rig.sent("ReportChargingProfiles")), "the last report"
    )
    reports = rig.sent("ReportChargingProfiles")
    assert [(r["evseId"], r["tbc"]) for r in reports] == [(0, True), (1, False)]
    assert all(r["requestId"] == 40 and r["chargingLimitSource"] == "CSO" for r in reports)
    assert [p["id"] for p in reports[0]["chargingProfile"]] == [12]
    on_evse = {p["id"]: p for p in reports[1]["chargingProfile"]}
    assert set(on_evse) == {11, 13}
    assert on_evse[11] == dict(default)  # reported as it was sent, schedule id included
    assert len(rig.notes("ReportChargingProfiles")) == 2

    by_id = {"requestId": 41, "chargingProfile": {"chargingProfileId": [13]}}
    assert await rig.call("GetChargingProfiles", by_id) == {"status": "Accepted"}
    await rig.until(
        lambda: any(r["requestId"] == 41 for r in rig.sent("ReportChargingProfiles")), "41"
    )
    (only,) = [r for r in rig.sent("ReportChargingProfiles") if r["requestId"] == 41]
    assert [p["id"] for p in only["chargingProfile"]] == [13] and only["tbc"] is False
    for criterion in (
        {"chargingLimitSource": ["EMS", "SO"]},
        {"chargingProfilePurpose": "TxProfile"},
        {"stackLevel": 7},
    ):
        none = await rig.call(
            "GetChargingProfiles", {"requestId": 42, "chargingProfile": criterion}
        )
        assert none == {"status": "NoProfiles"}
    off = setting("SmartChargingCtrlr", "Enabled", "false")
    await rig.call("SetVariables", {"setVariableData": [off]})
    assert refused(await set_profile(rig, 0, charging_profile(21, "TxDefaultProfile", 8.0))) == (
        "NotEnabled"
    )
    rig.assert_clean()
