"""OCPP 1.6J CSMS-initiated operations: payload conversions, configuration keys, and every
operation end to end over real websockets against the embedded CSMS."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import simpy

from models.demand import EvDemand
from models.physics import CurrentType, EvseRating
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
from simulator.csms import CsmsConfig, CsmsServer
from simulator.csms.store import TransactionRecord
from simulator.link import LinkContext, LinkState
from simulator.online import OnlineSink
from simulator.protocol import config16
from simulator.protocol.base import Outbound, Timestamps
from simulator.protocol.config16 import BadValue
from simulator.protocol.ops16 import (
    V16Operations,
    anchored,
    charging_profile,
    composite_payload,
    measurand_filter,
)
from simulator.protocol.v16 import MEASURANDS, V16Adapter
from simulator.rpc import CallResult
from simulator.run import networked_charger
from simulator.station import Site, Station, StationSpec
from simulator.transport import ConnectionRamp, ConnectSettings

from .harness import AC11, STAMPS, START, Harness, ev, identity, station, validate_request
from .harness import validate_response as schema_response

# -- pure conversions --------------------------------------------------------------------------


def iso(seconds: float) -> str:
    return (START + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


def profile_payload(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "chargingProfileId": 7,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "validFrom": iso(60),
        "validTo": iso(7200),
        "chargingSchedule": {
            "duration": 3600,
            "startSchedule": iso(120),
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [
                {"startPeriod": 0, "limit": 16.0, "numberPhases": 3},
                {"startPeriod": 900, "limit": 8.5},
            ],
            "minChargingRate": 6.1,
        },
    }
    payload.update(changes)
    return payload


def test_a_profile_payload_becomes_the_profile_in_simulated_seconds() -> None:
    payload = profile_payload()
    validate_request("1.6", "SetChargingProfile", {"connectorId": 1, "csChargingProfiles": payload})
    profile = charging_profile(payload, 1, STAMPS, None)
    assert (profile.profile_id, profile.stack_level, profile.evse_id) == (7, 2, 1)
    assert profile.purpose is ChargingProfilePurpose.TX_DEFAULT
    assert profile.kind is ChargingProfileKind.ABSOLUTE
    assert (profile.valid_from_s, profile.valid_to_s) == (60.0, 7200.0)
    assert profile.recurrency is None and profile.transaction_id is None
    schedule = profile.schedule
    assert schedule.unit is ChargingRateUnit.A
    assert (schedule.start_s, schedule.duration_s, schedule.min_charging_rate) == (
        120.0,
        3600.0,
        6.1,
    )
    assert schedule.periods == (SchedulePeriod(0.0, 16.0, 3), SchedulePeriod(900.0, 8.5, None))


def test_purposes_kinds_and_transactions_translate() -> None:
    station_max = charging_profile(
        profile_payload(chargingProfilePurpose="ChargePointMaxProfile"), 0, STAMPS, None
    )
    assert station_max.purpose is ChargingProfilePurpose.STATION_MAX
    tx = charging_profile(profile_payload(chargingProfilePurpose="TxProfile"), 1, STAMPS, "4")
    assert tx.purpose is ChargingProfilePurpose.TX and tx.transaction_id == "4"
    recurring = charging_profile(
        profile_payload(chargingProfileKind="Recurring", recurrencyKind="Daily"), 1, STAMPS, None
    )
    assert recurring.recurrency is RecurrencyKind.DAILY
    assert recurring.schedule.start_s == 120.0
    # A Relative schedule runs from the transaction start: a startSchedule is ignored, and so
    # is a recurrencyKind on a profile that does not recur.
    relative = charging_profile(
        profile_payload(chargingProfileKind="Relative", recurrencyKind="Weekly"), 1, STAMPS, None
    )
    assert relative.schedule.start_s is None and relative.recurrency is None


@pytest.mark.parametrize(
    "changes",
    [
        {"stackLevel": config16.MAX_STACK_LEVEL + 1},
        {"chargingProfileKind": "Recurring"},  # no recurrencyKind
        {"validFrom": "yesterday"},
    ],
)
def test_profiles_the_charger_refuses_raise(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        charging_profile(profile_payload(**changes), 1, STAMPS, None)


def test_bad_schedules_and_misplaced_transactions_raise() -> None:
    too_many = profile_payload()
    too_many["chargingSchedule"] = dict(
        too_many["chargingSchedule"],
        chargingSchedulePeriod=[
            {"startPeriod": 60 * i, "limit": 10.0} for i in range(config16.MAX_PERIODS + 1)
        ],
    )
    not_from_zero = profile_payload()
    not_from_zero["chargingSchedule"] = dict(
        not_from_zero["chargingSchedule"],
        chargingSchedulePeriod=[{"startPeriod": 10, "limit": 10.0}],
    )
    four_phases = profile_payload()
    four_phases["chargingSchedule"] = dict(
        four_phases["chargingSchedule"],
        chargingSchedulePeriod=[{"startPeriod": 0, "limit": 10.0, "numberPhases": 4}],
    )
    for payload in (too_many, not_from_zero, four_phases):
        with pytest.raises(ValueError):
            charging_profile(payload, 1, STAMPS, None)
    # Only a TxProfile names a transaction.
    with pytest.raises(ValueError):
        charging_profile(profile_payload(), 1, STAMPS, "3")
    # ...and exactly ChargingScheduleMaxPeriods is fine.
    at_limit = profile_payload()
    at_limit["chargingSchedule"] = dict(
        at_limit["chargingSchedule"],
        duration=None,
        chargingSchedulePeriod=[
            {"startPeriod": 60 * i, "limit": 10.0} for i in range(config16.MAX_PERIODS)
        ],
    )
    del at_limit["chargingSchedule"]["duration"]
    assert len(charging_profile(at_limit, 1, STAMPS, None).schedule.periods) == 24


def test_a_charge_point_maximum_without_a_start_starts_when_set() -> None:
    relative = charging_profile(
        profile_payload(
            chargingProfilePurpose="ChargePointMaxProfile", chargingProfileKind="Relative"
        ),
        0,
        STAMPS,
        None,
    )
    now = anchored(relative, 500.0)
    assert now.kind is ChargingProfileKind.ABSOLUTE and now.schedule.start_s == 500.0
    assert now.schedule.periods == relative.schedule.periods
    # A profile with its own start, and any other purpose, is left alone.
    absolute = charging_profile(
        profile_payload(chargingProfilePurpose="ChargePointMaxProfile"), 0, STAMPS, None
    )
    assert anchored(absolute, 500.0) is absolute
    default = charging_profile(profile_payload(chargingProfileKind="Relative"), 0, STAMPS, None)
    assert anchored(default, 500.0) is default


def test_composite_payload_has_whole_second_starts_and_limits_rounded_down() -> None:
    schedule = ChargingSchedule(
        ChargingRateUnit.W,
        (
            SchedulePeriod(0.0, 11040.0, 3),
            SchedulePeriod(99.6, 7359.99, 3),  # rounds to 100 s, 7359.9 W
            SchedulePeriod(100.2, 7000.0, 3),  # the same second: the later period wins
            SchedulePeriod(250.0, 7000.04, 3),  # equal to the previous once rounded: merged
            SchedulePeriod(400.0, 22080.0, None),
        ),
        duration_s=900.0,
        start_s=1234.5,
    )
    payload = composite_payload(schedule, 2, iso(1234.5))
    schema_response("1.6", "GetCompositeSchedule", payload)
    assert payload["status"] == "Accepted" and payload["connectorId"] == 2
    assert payload["scheduleStart"] == payload["chargingSchedule"]["startSchedule"]
    body = payload["chargingSchedule"]
    assert (body["duration"], body["chargingRateUnit"]) == (900, "W")
    assert body["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 11040.0, "numberPhases": 3},
        {"startPeriod": 100, "limit": 7000.0, "numberPhases": 3},
        {"startPeriod": 400, "limit": 22080.0},
    ]
    odd = ChargingSchedule(ChargingRateUnit.A, (SchedulePeriod(0.0, 13.38),), duration_s=60.0)
    (period,) = composite_payload(odd, 0, iso(0))["chargingSchedule"]["chargingSchedulePeriod"]
    assert period["limit"] == 13.3  # never more than the limit in force


# -- configuration keys ------------------------------------------------------------------------


def test_value_parsers_accept_exactly_their_values() -> None:
    parse = config16.integer(0, 3600)
    assert parse(" 300 ") == 300 and parse("0") == 0
    for bad in ("-1", "3601", "30.5", "", "ten", "1e3"):
        with pytest.raises(BadValue):
            parse(bad)
    assert config16.boolean("TRUE") is True and config16.boolean("false") is False
    for bad in ("1", "yes", ""):
        with pytest.raises(BadValue):
            config16.boolean(bad)
    assert config16.measurand_list("SoC, Energy.Active.Import.Register,SoC") == (
        "SoC",
        "Energy.Active.Import.Register",
    )
    assert config16.measurand_list("") == ()
    with pytest.raises(BadValue):
        config16.measurand_list("Energy.Active.Import.Register,Temperature")


def test_the_key_table_is_complete_and_case_insensitive() -> None:
    names = set(config16.KEY_NAMES)
    read_only = {
        "NumberOfConnectors",
        "SupportedFeatureProfiles",
        "ChargeProfileMaxStackLevel",
        "ChargingScheduleAllowedChargingRateUnit",
        "ChargingScheduleMaxPeriods",
        "MaxChargingProfilesInstalled",
        "LocalAuthListMaxLength",
        "SendLocalListMaxLength",
        "ReserveConnectorZeroSupported",
        "GetConfigurationMaxKeys",
    }
    writable = {
        "HeartbeatInterval",
        "MeterValueSampleInterval",
        "MeterValuesSampledData",
        "ConnectionTimeOut",
        "AuthorizeRemoteTxRequests",
        "LocalAuthListEnabled",
        "LocalPreAuthorize",
        "LocalAuthorizeOffline",
        "AllowOfflineTxForUnknownId",
        "AuthorizationCacheEnabled",
        "TransactionMessageAttempts",
        "TransactionMessageRetryInterval",
        "StopTransactionOnEVSideDisconnect",
        "StopTransactionOnInvalidId",
        "ClockAlignedDataInterval",
        "MeterValuesAlignedData",
        "StopTxnSampledData",
        "StopTxnAlignedData",
        "WebSocketPingInterval",
        "ResetRetries",
    }
    assert read_only | writable <= names
    for name in read_only:
        key = config16.lookup(name)
        assert key is not None and key.readonly
    for name in writable:
        key = config16.lookup(name.upper())
        assert key is not None and not key.readonly and key.name == name
    assert config16.lookup("websocketpinginterval").reboot_required  # type: ignore[union-attr]
    assert config16.lookup("NoSuchKey") is None
    assert all(len(name) <= 50 for name in names)


def test_measurand_filter_skips_filtering_when_everything_is_wanted() -> None:
    assert measurand_filter(MEASURANDS) is None
    assert measurand_filter(("SoC",)) == frozenset({"SoC"})
    assert measurand_filter(()) == frozenset()


# -- adapter additions -------------------------------------------------------------------------


def test_meter_values_honour_the_measurand_filter() -> None:
    a = V16Adapter(identity(), STAMPS)
    a.measurands = frozenset({"Power.Active.Import", "SoC"})
    h = Harness(a)
    env, _ = station(h, [ev(0.0, dwell_h=3, energy=20)])
    env.run(until=1801)
    for payload in h.payloads("MeterValues"):
        measurands = {v["measurand"] for v in payload["meterValue"][0]["sampledValue"]}
        assert measurands == {"Power.Active.Import", "SoC"}
    a.measurands = frozenset({"Temperature"})  # nothing this meter measures: no message
    before = len(h.payloads("MeterValues"))
    env.run(until=3601)
    assert len(h.payloads("MeterValues")) == before


def test_stop_transaction_data_follows_stop_txn_sampled_data() -> None:
    a = V16Adapter(identity(), STAMPS)
    a.stop_measurands = frozenset({"Energy.Active.Import.Register", "SoC", "Power.Active.Import"})
    h = Harness(a)
    env, _ = station(h, [ev(0.0, dwell_h=2, energy=10)])
    env.run(until=86400)
    (stop,) = h.payloads("StopTransaction")
    begin, end = stop["transactionData"]
    assert {v["measurand"] for v in begin["sampledValue"]} == {
        "Energy.Active.Import.Register",
        "SoC",
    }
    assert {v["context"] for v in end["sampledValue"]} == {"Transaction.End"}
    assert {v["measurand"] for v in end["sampledValue"]} == {
        "Energy.Active.Import.Register",
        "SoC",
        "Power.Active.Import",
    }
    a.stop_measurands = frozenset()
    h2 = Harness(a)
    env2, _ = station(h2, [ev(0.0, dwell_h=2, energy=10)])
    env2.run(until=86400)
    (bare,) = h2.payloads("StopTransaction")
    assert "transactionData" not in bare


def test_transaction_ids_map_both_ways_until_the_stop_is_accepted() -> None:
    a = V16Adapter(identity(), STAMPS)
    h = Harness(a)
    env, st_ = station(h, [ev(0.0, dwell_h=1, energy=5)])
    env.run(until=600)
    (tx,) = st_.transactions()
    assert a.transaction_seq(17) == tx.seq and a.transaction_id(tx.seq) == 17
    assert a.transaction_seq(18) is None
    env.run(until=86400)
    assert a.transaction_seq(17) is None


def test_a_rejected_start_is_reported_to_the_operations() -> None:
    a = V16Adapter(identity(), STAMPS)
    rejected: list[int] = []
    a.start_rejected = lambda tx: rejected.append(tx.seq)
    h = Harness(a)
    env, _ = station(h, [ev(0.0, dwell_h=1, energy=5)])
    env.run(until=60)
    start = next(m for m, _ in h.sent if m.action == "StartTransaction")
    a.accepted(start, {"transactionId": 40, "idTagInfo": {"status": "Blocked"}})
    assert rejected == [start.tx.seq]  # type: ignore[union-attr]


def test_boot_reports_the_installed_firmware() -> None:
    a = V16Adapter(identity(), STAMPS)
    assert a.boot_notification(0.0).payload["firmwareVersion"] == "1.0.0"
    a.firmware = "2.4.1"
    assert a.boot_notification(0.0).payload["firmwareVersion"] == "2.4.1"


# -- end to end: a charger on the embedded CSMS --------------------------------------------------

SPEED = 600.0  # ten simulated minutes per wall second
DC50 = EvseRating(CurrentType.DC, 50.0)


class Probe:
    """The charger side's link observer: counts connections and every invalid frame."""

    def __init__(self) -> None:
        self.invalid: list[tuple[str, str | None, str]] = []
        self.connects = 0
        self.disconnects = 0

    def connect_attempt(self) -> None:
        pass

    def connected(self, duration_s: float, reconnect: bool) -> None:
        self.connects += 1

    def connect_failed(self, reason: str) -> None:
        pass

    def disconnected(self) -> None:
        self.disconnects += 1

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


class SpyAdapter(V16Adapter):
    """A V16Adapter that records every payload the link sends through it (all but the boot),
    as sent (a replayed message appears again)."""

    __slots__ = ("sent",)

    def __init__(self, identity: Any, stamps: Timestamps) -> None:
        super().__init__(identity, stamps)
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def prepare(self, message: Outbound) -> dict[str, Any]:
        payload = super().prepare(message)
        self.sent.append((message.action, copy.deepcopy(payload)))
        return payload

    def payloads(self, action: str) -> list[dict[str, Any]]:
        return [p for a, p in self.sent if a == action]

    def statuses(self, connector_id: int) -> list[str]:
        """The statuses sent for one connector, in order."""
        return [
            p["status"]
            for p in self.payloads("StatusNotification")
            if p["connectorId"] == connector_id
        ]


class Charger:
    """One 1.6 charger (station, control, link, operations) connected to the embedded CSMS,
    built as simulator.run.build_chargers builds them, with test helpers."""

    def __init__(
        self,
        csms: CsmsServer,
        charger_id: str,
        demand: list[EvDemand],
        connectors: int,
        rating: EvseRating,
        behaviour: ChargerBehaviour,
        meter_interval_s: float,
    ) -> None:
        self.csms = csms
        self.cid = charger_id
        self.env = simpy.Environment()
        self.clock = OnlineClock(self.env, SPEED)
        self.probe = Probe()
        self.sink = OnlineSink(self.probe)
        site = Site(self.env, "site", 0, self.sink)
        spec = StationSpec(
            rating, connectors, unplug_delay_s=30.0, meter_interval_s=meter_interval_s
        )
        self.station = Station(
            self.env,
            site,
            0,
            charger_id,
            spec,
            self.sink,
            self.sink,
            demand,
            rng=np.random.default_rng(5),
        )
        # A remote start's driver: an ID.3 that wants 30 kWh and stays for hours.
        self.station.walk_in = lambda t, rng: ev(t, dwell_h=8, energy=30, tag="WALKIN")
        self.ctx = LinkContext(
            clock=self.clock,
            settings=ConnectSettings(base_url=csms.url, ping_interval_s=None),
            ramp=ConnectionRamp(1000),
            observer=self.probe,
            call_timeout_s=5.0,
            heartbeat_s=600.0,
            backoff=RetryBackoff(wait_minimum_s=0.05, random_range_s=0.05, max_s=0.2),
        )
        self.stamps = Timestamps(START)
        adapter = SpyAdapter(identity(charger_id), self.stamps)
        self.adapter = adapter
        settings = ChargerSettings(heartbeat_s=600.0, meter_interval_s=meter_interval_s)
        self.control = ChargerControl(self.station, behaviour, settings, np.random.default_rng(9))
        self.link = networked_charger(self.station, adapter, self.ctx, self.control)
        assert isinstance(self.link.operations, V16Operations)
        self.ops = self.link.operations
        self.sink.attach(self.link)
        self._task: asyncio.Task[None] | None = None

    # -- lifetime ------------------------------------------------------------------------------

    async def start(self) -> None:
        self.clock.start()
        self.link.start()
        self._task = asyncio.create_task(self.clock.run())
        await self.wait_for(lambda: self.link.state is LinkState.READY, "boot")

    async def stop(self) -> None:
        self.ctx.closing = True
        self.clock.stop()
        await self.link.close()
        if self._task is not None:
            await self._task

    # -- driving and observing -----------------------------------------------------------------

    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Send a CSMS-initiated call and return the charger's (schema-valid) answer."""
        await self.wait_for(lambda: self.cid in self.csms.connections, "connection")
        outcome = await self.csms.connections[self.cid].call(action, payload)
        assert isinstance(outcome, CallResult), outcome
        return outcome.payload

    async def wait_for(
        self, predicate: Callable[[], Any], what: str, timeout: float = 15.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
        assert predicate(), what

    async def sim_sleep(self, seconds: float) -> None:
        """Let `seconds` of simulated time pass."""
        await asyncio.sleep(seconds / SPEED)

    def notes(self, action: str) -> list[dict[str, Any]]:
        rows = self.csms.store.query(
            "SELECT payload FROM notifications WHERE charger_id = ? AND action = ? ORDER BY rowid",
            (self.cid, action),
        )
        return [json.loads(payload) for (payload,) in rows]

    def status(self, connector_id: int) -> str | None:
        rows = self.csms.store.query(
            "SELECT status FROM statuses WHERE charger_id = ? AND connector_id = ?",
            (self.cid, connector_id),
        )
        return rows[0][0] if rows else None

    def boots(self) -> int:
        rows = self.csms.store.query("SELECT boots FROM chargers WHERE charger_id = ?", (self.cid,))
        return int(rows[0][0]) if rows else 0

    def transactions(self) -> list[TransactionRecord]:
        return self.csms.store.transactions(self.cid)

    def open_tx_id(self) -> int:
        """The CSMS's id of the one transaction open on this charger."""
        (tx,) = [t for t in self.transactions() if t.stopped_at is None]
        return int(tx.transaction_id)

    def power_w(self, connector_id: int = 1) -> float:
        return self.station.connectors[connector_id - 1].sample(self.env.now).power_w


@pytest.fixture
async def charger(csms: CsmsServer) -> AsyncIterator[Callable[..., Awaitable[Charger]]]:
    """A factory of connected 1.6 chargers; each is stopped at the end, and neither side may
    have seen an invalid frame."""
    made: list[Charger] = []

    async def make(
        demand: list[EvDemand] | None = None,
        connectors: int = 1,
        rating: EvseRating = AC11,
        behaviour: ChargerBehaviour | None = None,
        meter_interval_s: float = 300.0,
        csms: CsmsServer = csms,
    ) -> Charger:
        c = Charger(
            csms,
            f"cs16-{len(made)}",
            demand or [],
            connectors,
            rating,
            behaviour or ChargerBehaviour(reboot_s=60.0, remote_start_plug_in_s=60.0),
            meter_interval_s,
        )
        made.append(c)
        await c.start()
        return c

    try:
        yield make
    finally:
        for c in made:
            await c.stop()
        for c in made:
            assert c.probe.invalid == []
        assert csms.counters.invalid_frames == 0


async def charging(c: Charger, connector_id: int = 1) -> None:
    """Wait until the CSMS knows the connector is charging and the transaction's id."""
    await c.wait_for(lambda: c.status(connector_id) == "Charging", "Charging")
    await c.wait_for(
        lambda: (
            c.ops.adapter.transaction_id(c.station.connectors[connector_id - 1].tx.seq)  # type: ignore[union-attr]
            is not None
        ),
        "StartTransaction answered",
    )


# -- Core: transactions --------------------------------------------------------------------------


async def test_remote_start_with_a_profile_starts_a_limited_transaction(charger: Any) -> None:
    c: Charger = await charger()
    profile = {
        "chargingProfileId": 1,
        "stackLevel": 0,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Relative",
        "chargingSchedule": {
            "chargingRateUnit": "A",
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}],
        },
    }
    answer = await c.call(
        "RemoteStartTransaction", {"idTag": "REMOTE1", "chargingProfile": profile}
    )
    assert answer == {"status": "Accepted"}
    await charging(c)
    (tx,) = c.transactions()
    # The walk-in driver plugged in and the transaction runs with the CSMS's tag.
    assert (tx.connector_id, tx.id_tag) == (1, "REMOTE1")
    assert c.adapter.statuses(1) == ["Available", "Preparing", "Charging"]
    assert c.adapter.payloads("Authorize") == []  # AuthorizeRemoteTxRequests is false
    # 8 A on the three phases the ID.3 uses, instead of the EVSE's 11 kW.
    assert c.power_w() == pytest.approx(8 * 230 * 3, rel=1e-3)
    (installed,) = c.control.profiles()
    assert installed.purpose is ChargingProfilePurpose.TX and installed.evse_id == 1
    # No EVSE left to start on, a bad connector, a profile that is no TxProfile: Rejected.
    assert await c.call("RemoteStartTransaction", {"idTag": "REMOTE2"}) == {"status": "Rejected"}
    assert await c.call("RemoteStartTransaction", {"idTag": "X", "connectorId": 2}) == {
        "status": "Rejected"
    }
    wrong = dict(profile, chargingProfilePurpose="TxDefaultProfile")
    assert await c.call("RemoteStartTransaction", {"idTag": "X", "chargingProfile": wrong}) == {
        "status": "Rejected"
    }


async def test_a_remote_start_is_authorised_first_when_configured(charger: Any) -> None:
    c: Charger = await charger()
    ask = {"key": "AuthorizeRemoteTxRequests", "value": "true"}
    assert await c.call("ChangeConfiguration", ask) == {"status": "Accepted"}
    assert await c.call("RemoteStartTransaction", {"idTag": "ASKME"}) == {"status": "Accepted"}
    await charging(c)
    assert c.adapter.payloads("Authorize") == [{"idTag": "ASKME"}]


async def test_a_start_the_csms_calls_invalid_ends_per_stop_on_invalid_id(
    charger: Any, tmp_path: Path
) -> None:
    # A CSMS that knows no tag, and chargers whose local list accepts "LOCALONLY" without
    # asking: the StartTransaction answer is the first the CSMS says about it.
    strict = CsmsServer(
        CsmsConfig(
            host="127.0.0.1",
            port=0,
            db_path=tmp_path / "strict.db",
            heartbeat_interval_s=600,
            id_tags=frozenset({"KNOWN"}),
        )
    )
    await strict.start()
    try:
        chargers: list[Charger] = []
        for stop in ("true", "false"):
            c: Charger = await charger(
                [ev(240.0, dwell_h=8, energy=30, tag="LOCALONLY")], csms=strict
            )
            listed = {
                "listVersion": 1,
                "updateType": "Full",
                "localAuthorizationList": [
                    {"idTag": "LOCALONLY", "idTagInfo": {"status": "Accepted"}}
                ],
            }
            assert await c.call("SendLocalList", listed) == {"status": "Accepted"}
            change = {"key": "StopTransactionOnInvalidId", "value": stop}
            assert await c.call("ChangeConfiguration", change) == {"status": "Accepted"}
            chargers.append(c)
        stopping, keeping = chargers
        await stopping.wait_for(
            lambda: stopping.transactions() and stopping.transactions()[0].stopped_at is not None,
            "deauthorized",
        )
        assert stopping.transactions()[0].stop_reason == "DeAuthorized"
        await keeping.wait_for(lambda: keeping.transactions(), "started")
        await keeping.sim_sleep(120)
        assert keeping.transactions()[0].stopped_at is None and keeping.status(1) == "Charging"
        assert stopping.adapter.payloads("Authorize") == keeping.adapter.payloads("Authorize") == []
    finally:
        for c in chargers:
            await c.stop()
        await strict.stop()
    assert strict.counters.invalid_frames == 0


async def test_remote_stop_ends_the_transaction_the_csms_names(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=30)])
    await charging(c)
    tx_id = c.open_tx_id()
    assert await c.call("RemoteStopTransaction", {"transactionId": tx_id + 100}) == {
        "status": "Rejected"
    }
    assert await c.call("RemoteStopTransaction", {"transactionId": tx_id}) == {"status": "Accepted"}
    await c.wait_for(lambda: c.transactions()[0].stopped_at is not None, "stopped")
    assert c.transactions()[0].stop_reason == "Remote"
    # The EV stays plugged in until its driver returns.
    assert c.status(1) == "Finishing" and c.station.connectors[0].tx is None
    # Stopping it again: there is nothing to stop.
    assert await c.call("RemoteStopTransaction", {"transactionId": tx_id}) == {"status": "Rejected"}


def now_iso(c: Charger, offset_s: float = 0.0) -> str:
    """A CSMS timestamp `offset_s` simulated seconds from the charger's now."""
    return c.stamps.iso(c.clock.sim_now() + offset_s)


def meter_rows(c: Charger, context: str) -> list[tuple[str, str, float]]:
    """(timestamp, measurand, value) of the meter values the CSMS stored with `context`."""
    rows = c.csms.store.query(
        "SELECT timestamp, measurand, value FROM meter_values"
        " WHERE charger_id = ? AND context = ? ORDER BY rowid",
        (c.cid, context),
    )
    return [(t, m, v) for t, m, v in rows]


# -- Core: charger -------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "reason"), [("Hard", "HardReset"), ("Soft", "SoftReset")])
async def test_reset_ends_the_transaction_and_reboots(charger: Any, kind: str, reason: str) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=30)])
    await charging(c)
    assert c.boots() == 1
    assert await c.call("Reset", {"type": kind}) == {"status": "Accepted"}
    assert not c.station.up  # down for the drawn reboot time
    await c.wait_for(lambda: c.boots() == 2, "booted again")
    await c.wait_for(lambda: c.transactions()[0].stopped_at is not None, "stop delivered")
    assert c.transactions()[0].stop_reason == reason
    # The connection was closed and opened again; the station is up.
    await c.wait_for(lambda: c.link.state is LinkState.READY, "ready again")
    assert (c.probe.connects, c.probe.disconnects) == (2, 1) and c.station.up


async def test_change_availability_of_a_connector_and_of_the_charge_point(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=0.12, energy=30)], connectors=2)
    await charging(c)
    inoperative = {"connectorId": 2, "type": "Inoperative"}
    assert await c.call("ChangeAvailability", inoperative) == {"status": "Accepted"}
    await c.wait_for(lambda: c.status(2) == "Unavailable", "connector 2 Unavailable")
    assert not c.station.connectors[1].operative and c.status(0) == "Available"
    # Connector 1 is charging: the whole charge point goes Inoperative once it is free.
    whole = {"connectorId": 0, "type": "Inoperative"}
    assert await c.call("ChangeAvailability", whole) == {"status": "Scheduled"}
    assert c.status(1) == "Charging"
    await c.wait_for(lambda: c.status(0) == "Unavailable", "charge point Unavailable")
    assert c.status(1) == "Unavailable" and c.transactions()[0].stop_reason == "Local"
    assert c.adapter.statuses(1)[-2:] == ["Finishing", "Unavailable"]
    operative = {"connectorId": 0, "type": "Operative"}
    assert await c.call("ChangeAvailability", operative) == {"status": "Accepted"}
    await c.wait_for(lambda: c.status(0) == c.status(1) == c.status(2) == "Available", "back")
    assert await c.call("ChangeAvailability", {"connectorId": 3, "type": "Operative"}) == {
        "status": "Rejected"
    }


async def test_unlock_connector_ends_the_transaction(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=30)])
    await charging(c)
    assert await c.call("UnlockConnector", {"connectorId": 1}) == {"status": "Unlocked"}
    await c.wait_for(lambda: c.transactions()[0].stopped_at is not None, "stopped")
    assert c.transactions()[0].stop_reason == "UnlockCommand"
    assert await c.call("UnlockConnector", {"connectorId": 2}) == {"status": "NotSupported"}


async def test_clear_cache_forgets_cached_tags_unless_the_cache_is_off(charger: Any) -> None:
    # It arrives once the charger is online, so the CSMS is asked and the answer cached.
    c: Charger = await charger([ev(300.0, dwell_h=0.1, energy=2, tag="CACHED1")])
    await c.wait_for(lambda: c.control.cached("CACHED1") == "Accepted", "cached")
    assert await c.call("ClearCache", {}) == {"status": "Accepted"}
    assert c.control.cached("CACHED1") is None
    off = {"key": "AuthorizationCacheEnabled", "value": "false"}
    assert await c.call("ChangeConfiguration", off) == {"status": "Accepted"}
    assert await c.call("ClearCache", {}) == {"status": "Rejected"}


async def test_data_transfer_answers_per_the_vendor_rules(charger: Any) -> None:
    rules = (
        DataTransferRule("com.acme", "ping", "Accepted", "pong"),
        DataTransferRule("com.acme", None, "Rejected"),
    )
    c: Charger = await charger(behaviour=ChargerBehaviour(data_transfer_rules=rules))
    ping = {"vendorId": "com.acme", "messageId": "ping", "data": "x"}
    assert await c.call("DataTransfer", ping) == {"status": "Accepted", "data": "pong"}
    assert await c.call("DataTransfer", {"vendorId": "com.acme", "messageId": "other"}) == {
        "status": "Rejected"
    }
    assert await c.call("DataTransfer", {"vendorId": "org.other"}) == {"status": "UnknownVendorId"}


# -- Core: configuration ---------------------------------------------------------------------------


async def test_get_configuration_reports_every_key_or_those_asked_for(charger: Any) -> None:
    c: Charger = await charger(connectors=2)
    everything = await c.call("GetConfiguration", {})
    keys = {k["key"]: k for k in everything["configurationKey"]}
    assert list(keys) == list(config16.KEY_NAMES) and "unknownKey" not in everything
    # The interval the CSMS gave at boot, the hardware, the charger's declared limits.
    assert keys["HeartbeatInterval"] == {
        "key": "HeartbeatInterval",
        "readonly": False,
        "value": "600",
    }
    assert keys["NumberOfConnectors"] == {
        "key": "NumberOfConnectors",
        "readonly": True,
        "value": "2",
    }
    assert keys["ChargeProfileMaxStackLevel"]["value"] == str(config16.MAX_STACK_LEVEL)
    assert keys["ConnectorPhaseRotation"]["value"] == "0.RST,1.RST,2.RST"
    assert keys["SupportedFeatureProfiles"]["value"].split(",") == list(config16.FEATURE_PROFILES)
    some = await c.call("GetConfiguration", {"key": ["meterValueSampleInterval", "NoSuchKey"]})
    assert some == {
        "configurationKey": [
            {"key": "MeterValueSampleInterval", "readonly": False, "value": "300"}
        ],
        "unknownKey": ["NoSuchKey"],
    }


async def test_change_configuration_changes_the_traffic_at_once(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=40)])
    await charging(c)

    async def change(key: str, value: str) -> str:
        answer = await c.call("ChangeConfiguration", {"key": key, "value": value})
        return str(answer["status"])

    # Heartbeat every 600 s (the CSMS's boot answer) -> every 30 s.
    beats = len(c.adapter.payloads("Heartbeat"))
    assert await change("HeartbeatInterval", "30") == "Accepted"
    assert c.link.heartbeat_s == c.control.settings.heartbeat_s == 30.0
    await c.sim_sleep(300)
    assert len(c.adapter.payloads("Heartbeat")) - beats >= 6
    # Meter values every 300 s -> every 60 s, with only the measurands asked for.
    assert await change("MeterValuesSampledData", "Energy.Active.Import.Register,SoC") == (
        "Accepted"
    )
    assert await change("MeterValueSampleInterval", "60") == "Accepted"
    assert c.station.meter_interval_s == c.control.settings.meter_interval_s == 60.0
    meters = len(c.adapter.payloads("MeterValues"))
    await c.sim_sleep(420)
    fresh = c.adapter.payloads("MeterValues")[meters:]
    assert len(fresh) >= 5
    for payload in fresh:
        measurands = {v["measurand"] for v in payload["meterValue"][0]["sampledValue"]}
        assert measurands == {"Energy.Active.Import.Register", "SoC"}
    # Settings the charger's logic reads.
    assert await change("TransactionMessageAttempts", "5") == "Accepted"
    assert await change("ConnectionTimeOut", "45") == "Accepted"
    assert await change("authorizeRemoteTxRequests", "TRUE") == "Accepted"
    settings = c.control.settings
    assert (settings.message_attempts, settings.connection_timeout_s) == (5, 45.0)
    assert settings.authorize_remote_start is True
    # Read-only, bad values, unknown keys; a reboot-required key.
    assert await change("NumberOfConnectors", "2") == "Rejected"
    assert await change("HeartbeatInterval", "-5") == "Rejected"
    assert await change("MeterValuesSampledData", "Temperature") == "Rejected"
    assert await change("LocalPreAuthorize", "maybe") == "Rejected"
    assert await change("NoSuchKey", "1") == "NotSupported"
    assert await change("WebSocketPingInterval", "20") == "RebootRequired"
    read = await c.call("GetConfiguration", {"key": ["WebSocketPingInterval", "HeartbeatInterval"]})
    assert [k["value"] for k in read["configurationKey"]] == ["20", "30"]


async def test_clock_aligned_data_is_sent_and_kept_for_the_stop(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=0.2, energy=40)])
    await charging(c)
    for key, value in (
        ("MeterValuesAlignedData", "Energy.Active.Import.Register,Power.Active.Import"),
        ("StopTxnAlignedData", "Energy.Active.Import.Register"),
        ("ClockAlignedDataInterval", "60"),
    ):
        answer = await c.call("ChangeConfiguration", {"key": key, "value": value})
        assert answer == {"status": "Accepted"}
    await c.wait_for(lambda: c.transactions()[0].stopped_at is not None, "stopped", timeout=8)
    aligned = meter_rows(c, "Sample.Clock")
    stamps = sorted({t for t, _, _ in aligned})
    assert len(stamps) >= 3
    # On the clock: whole minutes (the run starts at midnight UTC).
    assert all(c.stamps.seconds(t) % 60 == pytest.approx(0, abs=1e-6) for t in stamps)
    assert {m for _, m, _ in aligned} == {"Energy.Active.Import.Register", "Power.Active.Import"}
    (stop,) = c.adapter.payloads("StopTransaction")
    contexts = [mv["sampledValue"][0]["context"] for mv in stop["transactionData"]]
    assert contexts[0] == "Transaction.Begin" and contexts[-1] == "Transaction.End"
    assert contexts[1:-1] == ["Sample.Clock"] * (len(contexts) - 2) and len(contexts) >= 5
    # Interval 0 stops them.
    off = {"key": "ClockAlignedDataInterval", "value": "0"}
    assert await c.call("ChangeConfiguration", off) == {"status": "Accepted"}
    count = len(meter_rows(c, "Sample.Clock"))
    await c.sim_sleep(360)
    assert len(meter_rows(c, "Sample.Clock")) == count


# -- RemoteTrigger ---------------------------------------------------------------------------------


async def test_trigger_message_sends_every_message_it_may_ask_for(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=40)])
    await charging(c)
    # Heartbeats off, so the one that comes is the triggered one.
    off = {"key": "HeartbeatInterval", "value": "0"}
    assert await c.call("ChangeConfiguration", off) == {"status": "Accepted"}

    async def trigger(requested: str, connector_id: int | None = None) -> None:
        payload: dict[str, Any] = {"requestedMessage": requested}
        if connector_id is not None:
            payload["connectorId"] = connector_id
        assert await c.call("TriggerMessage", payload) == {"status": "Accepted"}

    await trigger("Heartbeat")
    await c.wait_for(lambda: len(c.adapter.payloads("Heartbeat")) == 1, "heartbeat")
    await trigger("StatusNotification", 1)
    await c.wait_for(lambda: c.adapter.statuses(1)[-2:] == ["Charging", "Charging"], "status")
    await trigger("StatusNotification")
    await c.wait_for(lambda: c.adapter.statuses(0) == ["Available", "Available"], "statuses")
    await trigger("MeterValues", 1)
    await c.wait_for(lambda: meter_rows(c, "Trigger"), "meter values")
    (triggered,) = [p for p in c.adapter.payloads("MeterValues") if _context(p) == "Trigger"]
    assert triggered["transactionId"] == c.open_tx_id() and triggered["connectorId"] == 1
    await trigger("FirmwareStatusNotification")
    await c.wait_for(lambda: c.notes("FirmwareStatusNotification") == [{"status": "Idle"}], "fw")
    await trigger("DiagnosticsStatusNotification")
    await c.wait_for(
        lambda: c.notes("DiagnosticsStatusNotification") == [{"status": "Idle"}], "diagnostics"
    )
    await trigger("BootNotification")
    await c.wait_for(lambda: c.boots() == 2, "boot")
    # The boot's answer sets the heartbeat interval again (the CSMS's 600 s).
    await c.wait_for(lambda: c.link.heartbeat_s == 600.0, "interval from the boot")
    assert c.probe.connects == 1  # a triggered boot is no reconnect
    assert await c.call("TriggerMessage", {"requestedMessage": "Heartbeat", "connectorId": 2}) == {
        "status": "Rejected"
    }


def _context(payload: dict[str, Any]) -> str:
    return str(payload["meterValue"][0]["sampledValue"][0]["context"])


# -- Reservation -----------------------------------------------------------------------------------


async def test_a_reservation_is_kept_for_its_tag_and_consumed_by_it(charger: Any) -> None:
    c: Charger = await charger()
    reserve = {
        "connectorId": 1,
        "expiryDate": now_iso(c, 3600),
        "idTag": "RES1",
        "reservationId": 5,
    }
    assert await c.call("ReserveNow", reserve) == {"status": "Accepted"}
    await c.wait_for(lambda: c.status(1) == "Reserved", "Reserved")
    assert await c.call("RemoteStartTransaction", {"idTag": "OTHER", "connectorId": 1}) == {
        "status": "Rejected"
    }
    assert await c.call("RemoteStartTransaction", {"idTag": "RES1"}) == {"status": "Accepted"}
    await charging(c)
    (start,) = c.adapter.payloads("StartTransaction")
    assert (start["idTag"], start["reservationId"]) == ("RES1", 5)
    assert c.adapter.statuses(1) == ["Available", "Reserved", "Preparing", "Charging"]
    # The connector is in use now.
    again = dict(reserve, reservationId=6)
    assert await c.call("ReserveNow", again) == {"status": "Occupied"}


async def test_reservations_expire_and_can_be_cancelled(charger: Any) -> None:
    c: Charger = await charger(connectors=2)
    soon = {"connectorId": 1, "expiryDate": now_iso(c, 120), "idTag": "A", "reservationId": 1}
    later = {"connectorId": 2, "expiryDate": now_iso(c, 86400), "idTag": "B", "reservationId": 2}
    assert await c.call("ReserveNow", soon) == {"status": "Accepted"}
    assert await c.call("ReserveNow", later) == {"status": "Accepted"}
    await c.wait_for(lambda: c.status(1) == c.status(2) == "Reserved", "both Reserved")
    assert await c.call("CancelReservation", {"reservationId": 2}) == {"status": "Accepted"}
    await c.wait_for(lambda: c.status(2) == "Available", "cancelled")
    assert await c.call("CancelReservation", {"reservationId": 2}) == {"status": "Rejected"}
    await c.wait_for(lambda: c.status(1) == "Available", "expired")
    assert c.adapter.statuses(1) == ["Available", "Reserved", "Available"]
    # Connector 0: whichever connector is available; an unknown connector: Rejected.
    anywhere = dict(later, connectorId=0, reservationId=3)
    assert await c.call("ReserveNow", anywhere) == {"status": "Accepted"}
    await c.wait_for(lambda: "Reserved" in (c.status(1), c.status(2)), "reserved anywhere")
    assert await c.call("ReserveNow", dict(later, connectorId=3, reservationId=4)) == {
        "status": "Rejected"
    }


# -- LocalAuthListManagement ---------------------------------------------------------------------


async def test_the_local_list_decides_without_asking_the_csms(charger: Any) -> None:
    demand = [
        ev(240.0, dwell_h=0.05, energy=1, tag="BLOCKED1"),
        ev(420.0, dwell_h=8, energy=30, tag="LOCAL1"),
    ]
    c: Charger = await charger(demand)
    assert await c.call("GetLocalListVersion", {}) == {"listVersion": 0}
    full = {
        "listVersion": 3,
        "updateType": "Full",
        "localAuthorizationList": [
            {"idTag": "BLOCKED1", "idTagInfo": {"status": "Blocked"}},
            {"idTag": "LOCAL1", "idTagInfo": {"status": "Accepted"}},
        ],
    }
    assert await c.call("SendLocalList", full) == {"status": "Accepted"}
    assert await c.call("GetLocalListVersion", {}) == {"listVersion": 3}
    stale = {"listVersion": 2, "updateType": "Differential", "localAuthorizationList": []}
    assert await c.call("SendLocalList", stale) == {"status": "VersionMismatch"}
    await charging(c)
    (tx,) = c.transactions()
    assert tx.id_tag == "LOCAL1"  # BLOCKED1 was refused on the spot
    assert c.adapter.payloads("Authorize") == []  # and neither was asked about
    remove = {
        "listVersion": 4,
        "updateType": "Differential",
        "localAuthorizationList": [{"idTag": "BLOCKED1"}],
    }
    assert await c.call("SendLocalList", remove) == {"status": "Accepted"}
    assert c.control.local_list() == {"LOCAL1": "Accepted"}
    too_long = {
        "listVersion": 5,
        "updateType": "Full",
        "localAuthorizationList": [
            {"idTag": f"T{i}", "idTagInfo": {"status": "Accepted"}}
            for i in range(config16.SEND_LOCAL_LIST_MAX + 1)
        ],
    }
    assert await c.call("SendLocalList", too_long) == {"status": "Failed"}


# -- FirmwareManagement ----------------------------------------------------------------------------


async def test_update_firmware_downloads_installs_reboots_and_reports(charger: Any) -> None:
    behaviour = ChargerBehaviour(reboot_s=60.0, firmware_download_s=60.0, firmware_install_s=60.0)
    c: Charger = await charger(behaviour=behaviour)
    request = {
        "location": "https://firmware.example.com/images/fleetsim-2.1.0.bin",
        "retrieveDate": now_iso(c),
    }
    assert await c.call("UpdateFirmware", request) == {}
    await c.wait_for(
        lambda: (
            [n["status"] for n in c.notes("FirmwareStatusNotification")]
            == ["Downloading", "Downloaded", "Installing", "Installed"]
        ),
        "firmware statuses",
    )
    assert c.boots() == 2 and c.probe.connects == 2
    (firmware,) = c.csms.store.query("SELECT firmware FROM chargers WHERE charger_id = ?", (c.cid,))
    assert firmware == ("fleetsim-2.1.0",)


async def test_a_failing_download_is_retried_then_reported(charger: Any) -> None:
    behaviour = ChargerBehaviour(firmware_download_s=30.0, firmware_download_failure_p=1.0)
    c: Charger = await charger(behaviour=behaviour)
    request = {
        "location": "ftp://firmware.example.com/fw.bin",
        "retrieveDate": now_iso(c),
        "retries": 1,
        "retryInterval": 30,
    }
    assert await c.call("UpdateFirmware", request) == {}
    expected = ["Downloading", "DownloadFailed", "Downloading", "DownloadFailed"]
    await c.wait_for(
        lambda: [n["status"] for n in c.notes("FirmwareStatusNotification")] == expected,
        "download failures",
    )
    await c.sim_sleep(300)
    assert len(c.notes("FirmwareStatusNotification")) == 4 and c.boots() == 1


@pytest.mark.parametrize("fails", [False, True])
async def test_get_diagnostics_uploads_and_reports(charger: Any, fails: bool) -> None:
    behaviour = ChargerBehaviour(upload_s=60.0, upload_failure_p=1.0 if fails else 0.0)
    c: Charger = await charger(behaviour=behaviour)
    location = "ftp://logs.example.com/uploads/"
    answer = await c.call("GetDiagnostics", {"location": location, "retries": 0})
    name = answer["fileName"]
    assert name.startswith(c.cid)
    final = "UploadFailed" if fails else "Uploaded"
    await c.wait_for(
        lambda: (
            [n["status"] for n in c.notes("DiagnosticsStatusNotification")] == ["Uploading", final]
        ),
        "upload statuses",
    )
    # The target is recorded, never contacted.
    assert [(loc, file) for _, loc, file in c.control.uploads] == (
        [] if fails else [(location, name)]
    )


# -- SmartCharging ------------------------------------------------------------------------------


def set_profile(
    connector_id: int,
    profile_id: int,
    purpose: str,
    periods: list[tuple[int, float]],
    unit: str = "A",
    stack_level: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [{"startPeriod": s, "limit": limit} for s, limit in periods],
    }
    schedule.update(extra.pop("schedule", {}))
    profile: dict[str, Any] = {
        "chargingProfileId": profile_id,
        "stackLevel": stack_level,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": extra.pop("kind", "Relative"),
        "chargingSchedule": schedule,
        **extra,
    }
    return {"connectorId": connector_id, "csChargingProfiles": profile}


async def test_set_charging_profile_limits_the_power_drawn(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=40)], meter_interval_s=60.0)
    await charging(c)
    assert c.power_w() == pytest.approx(11000.0)
    # A station-wide default of 10 A per phase.
    default = set_profile(0, 1, "TxDefaultProfile", [(0, 10.0)])
    assert await c.call("SetChargingProfile", default) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(6900.0), "10 A")
    # A charge point maximum in watts (Relative: from now on) caps below it; raised, it does
    # not (the same purpose and stack level replace it).
    cap = set_profile(0, 3, "ChargePointMaxProfile", [(0, 5000.0)], unit="W")
    assert await c.call("SetChargingProfile", cap) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(5000.0), "5 kW cap")
    raised = set_profile(0, 4, "ChargePointMaxProfile", [(0, 30000.0)], unit="W")
    assert await c.call("SetChargingProfile", raised) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(6900.0), "cap raised")
    # A TxProfile for the CSMS's transaction: 8 A now, 6 A twenty minutes after its start (two
    # wall seconds: a loaded machine must not skip the first period between two polls).
    tx_id = c.open_tx_id()
    tx = set_profile(
        1,
        2,
        "TxProfile",
        [(0, 8.0), (1200, 6.0)],
        stack_level=1,
        kind="Absolute",
        transactionId=tx_id,
        schedule={"startSchedule": now_iso(c)},
    )
    assert await c.call("SetChargingProfile", tx) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(5520.0), "8 A")
    await c.wait_for(lambda: c.power_w() == pytest.approx(4140.0), "6 A after twenty minutes")
    (installed,) = c.control.profiles(purpose=ChargingProfilePurpose.TX)
    assert installed.transaction_id == str(c.station.connectors[0].tx.seq)  # type: ignore[union-attr]
    # The CSMS sees the limit in the meter values.
    await c.sim_sleep(180)
    power = [v for _, m, v in meter_rows(c, "Sample.Periodic") if m == "Power.Active.Import"]
    assert power[-1] == pytest.approx(4140.0)
    # Below 6 A per phase (IEC 61851) an AC charge pauses instead of charging slowly.
    lower = set_profile(0, 5, "ChargePointMaxProfile", [(0, 3000.0)], unit="W")
    assert await c.call("SetChargingProfile", lower) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == 0.0, "paused")
    await c.wait_for(lambda: c.status(1) == "SuspendedEVSE", "SuspendedEVSE")
    # What the charger refuses.
    rejected = [
        set_profile(1, 6, "ChargePointMaxProfile", [(0, 10.0)]),  # not on connector 0
        set_profile(0, 6, "TxProfile", [(0, 10.0)]),  # no transaction on connector 0
        set_profile(1, 6, "TxProfile", [(0, 10.0)], transactionId=tx_id + 1),  # not running
        set_profile(1, 7, "TxDefaultProfile", [(0, 10.0)], stack_level=9),  # above the max
        set_profile(2, 8, "TxDefaultProfile", [(0, 10.0)]),  # no such connector
        set_profile(1, 9, "TxDefaultProfile", [(60 * i, 10.0) for i in range(25)]),
    ]
    for request in rejected:
        assert await c.call("SetChargingProfile", request) == {"status": "Rejected"}
    assert len(c.control.profiles()) == 3


async def test_clear_charging_profile_lifts_the_limits(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=40)])
    await charging(c)
    for request in (
        set_profile(0, 1, "TxDefaultProfile", [(0, 10.0)]),
        set_profile(1, 2, "TxProfile", [(0, 6.0)], stack_level=1),
    ):
        assert await c.call("SetChargingProfile", request) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(4140.0), "6 A")
    assert await c.call("ClearChargingProfile", {"id": 2}) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(6900.0), "back to the default")
    nothing = {"connectorId": 1, "chargingProfilePurpose": "TxProfile"}
    assert await c.call("ClearChargingProfile", nothing) == {"status": "Unknown"}
    assert await c.call("ClearChargingProfile", {"id": 2}) == {"status": "Unknown"}
    everything = {"chargingProfilePurpose": "TxDefaultProfile"}
    assert await c.call("ClearChargingProfile", everything) == {"status": "Accepted"}
    await c.wait_for(lambda: c.power_w() == pytest.approx(11000.0), "unlimited")
    assert c.control.profiles() == ()


async def test_get_composite_schedule_reports_the_limits_to_come(charger: Any) -> None:
    c: Charger = await charger([ev(0.0, dwell_h=8, energy=40)])
    await charging(c)
    start = c.clock.sim_now()
    default = set_profile(
        0,
        1,
        "TxDefaultProfile",
        [(0, 10.0), (600, 6.0)],
        kind="Absolute",
        schedule={"startSchedule": c.stamps.iso(start), "duration": 1800},
    )
    assert await c.call("SetChargingProfile", default) == {"status": "Accepted"}
    answer = await c.call(
        "GetCompositeSchedule", {"connectorId": 1, "duration": 3600, "chargingRateUnit": "A"}
    )
    assert answer["status"] == "Accepted" and answer["connectorId"] == 1
    begin = c.stamps.seconds(answer["scheduleStart"])
    body = answer["chargingSchedule"]
    assert (body["duration"], body["chargingRateUnit"]) == (3600, "A")
    # 10 A, 6 A from ten minutes after the profile's start, then the EVSE's own 15.9 A.
    periods = body["chargingSchedulePeriod"]
    assert [p["limit"] for p in periods] == [10.0, 6.0, 15.9]
    assert [begin + p["startPeriod"] for p in periods[1:]] == [
        pytest.approx(start + 600, abs=1.0),
        pytest.approx(start + 1800, abs=1.0),
    ]
    watts = await c.call("GetCompositeSchedule", {"connectorId": 1, "duration": 300})
    assert watts["chargingSchedule"]["chargingRateUnit"] == "A"  # AC: current by default
    power = await c.call(
        "GetCompositeSchedule", {"connectorId": 1, "duration": 300, "chargingRateUnit": "W"}
    )
    assert power["chargingSchedule"]["chargingSchedulePeriod"] == [
        {"startPeriod": 0, "limit": 6900.0}
    ]
    station = await c.call("GetCompositeSchedule", {"connectorId": 0, "duration": 300})
    assert station["status"] == "Accepted"
    for bad in ({"connectorId": 2, "duration": 300}, {"connectorId": 1, "duration": 0}):
        assert await c.call("GetCompositeSchedule", bad) == {"status": "Rejected"}
