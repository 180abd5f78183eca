"""Test helpers for the protocol adapters: official-schema validation, fake CSMS answers, and a
station whose events go straight through an adapter (sent and answered at once, or never)."""

from __future__ import annotations

import copy
import functools
import itertools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import resources
from types import SimpleNamespace
from typing import Any

import fastjsonschema
import simpy
from hypothesis import strategies as st

from models.demand import EvDemand
from models.physics import ChargePlan, CurrentType, EvseRating
from models.vehicles import vehicle_by_name
from simulator.events import MeterSample
from simulator.protocol.base import ChargerIdentity, Outbound, ProtocolAdapter, Timestamps
from simulator.station import Connector, ConnectorStatus, Site, Station, StationSpec, Transaction

AC11 = EvseRating(CurrentType.AC, 11.0, 3)
DC50 = EvseRating(CurrentType.DC, 50.0)

# Stand-ins for a connector in the meter-value property tests: only the EVSE id and the
# station's rating are read when a sample is formatted.
AC_CONNECTOR = SimpleNamespace(
    evse_id=2,
    station=SimpleNamespace(spec=SimpleNamespace(rating=EvseRating(CurrentType.AC, 22.0))),
)
DC_CONNECTOR = SimpleNamespace(
    evse_id=1, station=SimpleNamespace(spec=SimpleNamespace(rating=DC50))
)

# Any meter sample the physics could produce, and some it could not (0 phases, NaN SoC).
meter_samples = st.builds(
    MeterSample,
    energy_wh=st.floats(0.0, 1e9),
    power_w=st.floats(0.0, 400_000.0),
    current_a=st.floats(0.0, 1000.0),
    phases=st.sampled_from([0, 1, 3]),
    voltage_v=st.floats(0.0, 1000.0),
    soc=st.one_of(st.just(math.nan), st.floats(0.0, 1.0)),
)
START = datetime(2025, 3, 1, tzinfo=UTC)
STAMPS = Timestamps(START)
NOW_ISO = "2025-03-01T00:00:00.000Z"


def identity(charger_id: str = "cs0") -> ChargerIdentity:
    return ChargerIdentity(charger_id, "Fleetsim", "Sim-AC", "SN-0001", "1.0.0")


@functools.cache
def _validator(version: str, name: str) -> Callable[[Any], Any]:
    folder = "v16" if version == "1.6" else "v201"
    text = (resources.files("ocpp") / folder / "schemas" / f"{name}.json").read_text(
        encoding="utf-8-sig"
    )
    return fastjsonschema.compile(json.loads(text))


def validate_request(version: str, action: str, payload: dict[str, Any]) -> None:
    """Raise fastjsonschema.JsonSchemaException unless payload is a valid CALL of `action`."""
    name = action if version == "1.6" else f"{action}Request"
    _validator(version, name)(payload)


def validate_response(version: str, action: str, payload: dict[str, Any]) -> None:
    _validator(version, f"{action}Response")(payload)


class FakeCsms:
    """Answers every CALL as a well-behaved CSMS would (1.6 transaction ids from 17 upwards)."""

    def __init__(self, version: str) -> None:
        self.version = version
        self._tx_ids = itertools.count(17)

    def answer(self, action: str) -> dict[str, Any]:
        v16 = self.version == "1.6"
        response: dict[str, Any]
        if action == "BootNotification":
            response = {"status": "Accepted", "currentTime": NOW_ISO, "interval": 300}
        elif action == "Heartbeat":
            response = {"currentTime": NOW_ISO}
        elif action == "Authorize":
            key = "idTagInfo" if v16 else "idTokenInfo"
            response = {key: {"status": "Accepted"}}
        elif action == "StartTransaction":
            response = {"transactionId": next(self._tx_ids), "idTagInfo": {"status": "Accepted"}}
        elif action == "StopTransaction":
            response = {"idTagInfo": {"status": "Accepted"}}
        else:  # StatusNotification, MeterValues, TransactionEvent
            response = {}
        validate_response(self.version, action, response)
        return response


class Harness:
    """A station sink and authorizer that runs every event through `adapter`, then "sends" each
    message at once: prepare, validate against the official schema, answer and accept (unless
    `online` is False, in which case nothing is ever answered)."""

    def __init__(self, adapter: ProtocolAdapter, *, online: bool = True) -> None:
        self.adapter = adapter
        self.online = online
        self.csms = FakeCsms(adapter.version)
        # Each message with its payload as prepared when sent (deep-copied).
        self.sent: list[tuple[Outbound, dict[str, Any]]] = []

    def send(self, messages: Outbound | list[Outbound]) -> None:
        for message in messages if isinstance(messages, list) else [messages]:
            payload = self.adapter.prepare(message)
            validate_request(self.adapter.version, message.action, payload)
            self.sent.append((message, copy.deepcopy(payload)))
            if self.online:
                self.adapter.accepted(message, self.csms.answer(message.action))

    def actions(self) -> list[str]:
        return [m.action for m, _ in self.sent]

    def payloads(self, action: str) -> list[dict[str, Any]]:
        return [p for m, p in self.sent if m.action == action]

    # -- StationSink -----------------------------------------------------------------------------

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        self.send(self.adapter.status_changed(connector, status, t))

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.send(self.adapter.transaction_started(connector, tx, connector.sample(t), t))

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        self.send(self.adapter.charge_planned(connector, tx, plan, t))

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        self.send(self.adapter.meter_sampled(connector, tx, sample, t))

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.send(self.adapter.transaction_ended(connector, tx, connector.sample(t), t))

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        pass

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        pass

    # -- Authorizer: the online charger asks the CSMS first --------------------------------------

    def authorize(self, connector: Connector, id_tag: str) -> bool:
        self.send(self.adapter.authorize(connector, id_tag, connector.station.env.now))
        return True


def ev(
    arrival: float, dwell_h: float = 8.0, energy: float = 20.0, tag: str = "0123ABCD"
) -> EvDemand:
    """A Volkswagen ID.3 arriving at `arrival` to charge `energy` kWh up to SoC 0.9."""
    car = vehicle_by_name("Volkswagen ID.3")
    return EvDemand(
        arrival_s=arrival,
        vehicle=car,
        vehicle_index=0,
        soc_arrival=0.9 - energy / car.battery_kwh,
        soc_target=0.9,
        energy_wanted_kwh=energy,
        dwell_s=dwell_h * 3600,
        leave_when_charged=False,
        handling_s=120.0,
        ac_taper_soc=0.8,
        patience_s=0.0,
        id_tag=tag,
    )


def station(
    harness: Harness,
    demand: list[EvDemand],
    rating: EvseRating = AC11,
    connectors: int = 1,
    charger_id: str = "cs0",
) -> tuple[simpy.Environment, Station]:
    """A station with meter samples every 60 s whose sink and authorizer are `harness`."""
    env = simpy.Environment()
    site = Site(env, "site", 0, harness)
    spec = StationSpec(rating, connectors, unplug_delay_s=30.0, meter_interval_s=60.0)
    return env, Station(env, site, 0, charger_id, spec, harness, harness, demand)


def transactions(harness: Harness) -> list[Transaction]:
    """The transactions the sent messages belong to, in the order they started."""
    out: list[Transaction] = []
    for message, _ in harness.sent:
        tx = message.tx
        if tx is not None and all(tx is not o for o in out):
            out.append(tx)
    return out
