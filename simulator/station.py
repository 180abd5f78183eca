"""A charging station as SimPy processes: connectors with explicit OCPP statuses living the day.

Each connector runs one process: an EV plugs in, is authorised, charges along a closed-form plan,
stops drawing when full, and leaves. Everything the station does goes to a `StationSink`; it never
touches a socket, a file or the wall clock, so the same code runs offline and online.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import simpy

from models.demand import EvDemand
from models.physics import ChargePlan, ChargingLimit, EvseRating, charging_curve, plan_charge
from simulator.events import Authorizer, MeterSample, StationSink, StopReason


class ConnectorStatus(StrEnum):
    """Connector status as OCPP 1.6 names it (the 2.0.1 adapter maps these to its own)."""

    AVAILABLE = "Available"
    PREPARING = "Preparing"
    CHARGING = "Charging"
    SUSPENDED_EV = "SuspendedEV"
    SUSPENDED_EVSE = "SuspendedEVSE"
    FINISHING = "Finishing"
    RESERVED = "Reserved"
    UNAVAILABLE = "Unavailable"
    FAULTED = "Faulted"


_S = ConnectorStatus
# The transitions of the OCPP 1.6 connector status diagram (section 4.9): anything else is a bug
# in the station model and raises at once rather than sending a CSMS an impossible sequence.
LEGAL_TRANSITIONS: dict[ConnectorStatus, frozenset[ConnectorStatus]] = {
    _S.AVAILABLE: frozenset(
        {
            _S.PREPARING,
            _S.CHARGING,
            _S.SUSPENDED_EV,
            _S.SUSPENDED_EVSE,
            _S.RESERVED,
            _S.UNAVAILABLE,
            _S.FAULTED,
        }
    ),
    _S.PREPARING: frozenset(
        {_S.AVAILABLE, _S.CHARGING, _S.SUSPENDED_EV, _S.SUSPENDED_EVSE, _S.FINISHING, _S.FAULTED}
    ),
    _S.CHARGING: frozenset(
        {_S.AVAILABLE, _S.SUSPENDED_EV, _S.SUSPENDED_EVSE, _S.FINISHING, _S.UNAVAILABLE, _S.FAULTED}
    ),
    _S.SUSPENDED_EV: frozenset(
        {_S.AVAILABLE, _S.CHARGING, _S.SUSPENDED_EVSE, _S.FINISHING, _S.UNAVAILABLE, _S.FAULTED}
    ),
    _S.SUSPENDED_EVSE: frozenset(
        {_S.AVAILABLE, _S.CHARGING, _S.SUSPENDED_EV, _S.FINISHING, _S.UNAVAILABLE, _S.FAULTED}
    ),
    _S.FINISHING: frozenset({_S.AVAILABLE, _S.PREPARING, _S.UNAVAILABLE, _S.FAULTED}),
    _S.RESERVED: frozenset({_S.AVAILABLE, _S.PREPARING, _S.UNAVAILABLE, _S.FAULTED}),
    _S.UNAVAILABLE: frozenset(
        {_S.AVAILABLE, _S.PREPARING, _S.CHARGING, _S.SUSPENDED_EV, _S.SUSPENDED_EVSE, _S.FAULTED}
    ),
    _S.FAULTED: frozenset(
        {
            _S.AVAILABLE,
            _S.PREPARING,
            _S.CHARGING,
            _S.SUSPENDED_EV,
            _S.SUSPENDED_EVSE,
            _S.FINISHING,
            _S.RESERVED,
            _S.UNAVAILABLE,
        }
    ),
}


class IllegalTransition(RuntimeError):
    """A connector was asked to move between two statuses the OCPP diagram does not connect."""


@dataclass(frozen=True, slots=True)
class StationSpec:
    """The hardware and behaviour of one charger model: EVSE rating, connectors, timings.

    `meter_interval_s` None means no periodic meter samples (offline runs integrate the load
    exactly from the charge plans instead); online it is the MeterValueSampleInterval.
    """

    rating: EvseRating
    connectors: int = 1
    unplug_delay_s: float = 30.0
    meter_interval_s: float | None = None


@dataclass(slots=True)
class Transaction:
    """One transaction on one connector, from authorisation to stop, with its energy ledger."""

    seq: int
    connector: Connector
    ev: EvDemand
    id_tag: str
    start_s: float
    meter_start_wh: float
    plug_in_s: float
    plan: ChargePlan | None = None
    plan_start_s: float = 0.0
    charge_start_s: float = math.nan
    charge_end_s: float = math.nan
    stop_s: float = math.nan
    meter_stop_wh: float = math.nan
    stop_reason: StopReason | None = None
    open: bool = True

    def soc_at(self, t: float) -> float:
        """The EV's SoC at simulated time t (within the current plan)."""
        if self.plan is None:
            return self.ev.soc_arrival
        return self.plan.soc_at(t - self.plan_start_s)

    def energy_wh_at(self, t: float) -> float:
        """The connector's energy register at time t."""
        capacity = self.ev.vehicle.battery_kwh
        return self.meter_start_wh + (self.soc_at(t) - self.ev.soc_arrival) * capacity * 1000.0


class Connector:
    """One EVSE with one connector: its status, energy register, limit and the serving process."""

    __slots__ = (
        "_env",
        "_interruptible",
        "_sink",
        "_wake",
        "ev",
        "evse_id",
        "free",
        "limit",
        "process",
        "register_wh",
        "station",
        "status",
        "stop_requested",
        "tx",
    )

    def __init__(self, station: Station, evse_id: int) -> None:
        self.station = station
        self._env = station.env  # held directly: read on every event of every session
        self._sink = station.sink
        self.evse_id = evse_id
        self.status = ConnectorStatus.AVAILABLE
        self.register_wh = 0.0
        self.limit: ChargingLimit | None = None
        self.ev: EvDemand | None = None
        self.tx: Transaction | None = None
        self.free = False
        self.stop_requested: StopReason | None = None
        self._wake: simpy.Event | None = None
        self._interruptible = False
        self.process = station.env.process(self._serve())

    def __repr__(self) -> str:
        return f"<Connector {self.station.charger_id}/{self.evse_id} {self.status}>"

    # -- commands from the site or the outside world -------------------------------------------

    def accept(self, ev: EvDemand) -> None:
        """Hand an arriving EV to this (free, idle) connector."""
        if self._wake is None or self._wake.triggered:
            raise RuntimeError(f"{self!r} is not waiting for an EV")
        self.free = False
        self._wake.succeed(ev)

    def set_limit(self, limit: ChargingLimit | None) -> None:
        """Apply an external power/current limit; a running charge is re-planned at once."""
        self.limit = limit
        if self._interruptible:
            self.process.interrupt("limit")

    def end_transaction(self, reason: StopReason) -> bool:
        """Stop the running transaction now (remote stop, end of a run); the EV stays plugged
        in until its driver comes back. False if there is no transaction to stop."""
        tx = self.tx
        if tx is None or not tx.open or self.stop_requested is not None:
            return False
        self.stop_requested = reason
        if self._interruptible:
            self.process.interrupt("stop")
        return True

    def sample(self, t: float) -> MeterSample:
        """A coherent meter reading at time t (register, power, current, voltage, SoC)."""
        tx = self.tx
        if tx is None or tx.plan is None:
            return MeterSample(
                self.register_wh,
                0.0,
                0.0,
                0,
                self.station.spec.rating.voltage_v,
                math.nan if tx is None else tx.ev.soc_arrival,
            )
        plan = tx.plan
        dt = t - tx.plan_start_s
        power_w = plan.power_at(dt) * 1000.0
        current = power_w / (plan.voltage_v * plan.phases) if plan.phases else 0.0
        return MeterSample(
            tx.energy_wh_at(t), power_w, current, plan.phases, plan.voltage_v, plan.soc_at(dt)
        )

    # -- the connector's life ------------------------------------------------------------------

    def _set_status(self, status: ConnectorStatus) -> None:
        if status is self.status:
            return
        if status not in LEGAL_TRANSITIONS[self.status]:
            raise IllegalTransition(f"{self!r}: {self.status} -> {status}")
        self.status = status
        self._sink.status_changed(self, status, self._env.now)

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        site = self.station.site
        ev: EvDemand | None = None
        while True:
            if ev is None:
                self._wake = self.station.env.event()
                site.mark_free(self)
                ev = yield self._wake
                self._wake = None
            assert ev is not None
            yield from self._session(ev)
            ev = site.next_waiting(self)

    def _session(self, ev: EvDemand) -> Generator[simpy.Event, Any, None]:
        station = self.station
        env, sink = self._env, self._sink
        plug_in = env.now
        self.ev = ev
        self._set_status(ConnectorStatus.PREPARING)

        answer = station.authorizer.authorize(self, ev.id_tag)
        accepted = answer if isinstance(answer, bool) else bool((yield answer))
        if not accepted:
            yield env.timeout(station.spec.unplug_delay_s)
            self._set_status(ConnectorStatus.AVAILABLE)
            self.ev = None
            sink.session_ended(self, ev, env.now)
            return

        tx = Transaction(
            station.next_tx_seq(), self, ev, ev.id_tag, env.now, self.register_wh, plug_in
        )
        self.tx = tx
        sink.transaction_started(self, tx, env.now)
        if station.spec.meter_interval_s:
            env.process(self._sample_meter(tx, station.spec.meter_interval_s))

        departure = plug_in + ev.dwell_s
        soc = ev.soc_arrival
        while (yield from self._charge_until(tx, soc, departure)):
            if self.stop_requested is not None:
                break
            soc = tx.soc_at(env.now)
        now = tx.charge_end_s = env.now
        if ev.leave_when_charged:
            departure = min(departure, now + ev.handling_s)
        if now < departure and self.stop_requested is None:
            self._set_status(ConnectorStatus.SUSPENDED_EV)
            # Full: idle until the driver comes back; limit changes now change nothing.
            while env.now < departure and self.stop_requested is None:
                self._interruptible = True
                try:
                    yield env.timeout(departure - env.now)
                except simpy.Interrupt:
                    pass
                finally:
                    self._interruptible = False

        now = tx.stop_s = env.now
        tx.stop_reason = self.stop_requested or StopReason.LOCAL
        tx.meter_stop_wh = self.register_wh = tx.energy_wh_at(now)
        tx.open = False
        self._set_status(ConnectorStatus.FINISHING)
        sink.transaction_ended(self, tx, now)
        self.tx = None
        if self.stop_requested is not None:
            self.stop_requested = None
            # Stopped from outside: the car stays until its driver returns.
            if departure > now:
                yield env.timeout(departure - now)
        yield env.timeout(station.spec.unplug_delay_s)
        self._set_status(ConnectorStatus.AVAILABLE)
        self.ev = None
        sink.session_ended(self, ev, env.now)

    def _charge_until(
        self, tx: Transaction, soc: float, departure: float
    ) -> Generator[simpy.Event, Any, bool]:
        """Charge along a fresh plan until full or departure; True if a limit change cut it
        short, so the caller re-plans from the SoC reached (the energy delivered is kept)."""
        env = self._env
        now = env.now
        ev = tx.ev
        curve = charging_curve(ev.vehicle, self.station.spec.rating, self.limit, ev.ac_taper_soc)
        plan = plan_charge(curve, ev.vehicle.battery_kwh, soc, ev.soc_target)
        tx.plan, tx.plan_start_s = plan, now
        if plan.duration_s > 0.0:
            if plan.a[0] + plan.b[0] * soc > 0.0:
                if math.isnan(tx.charge_start_s):
                    tx.charge_start_s = now
                self._set_status(ConnectorStatus.CHARGING)
            else:
                self._set_status(ConnectorStatus.SUSPENDED_EVSE)
        self._sink.charge_planned(self, tx, plan, now)
        end = min(now + plan.duration_s, departure)
        if end <= now:
            return False
        self._interruptible = True
        try:
            yield env.timeout(end - now)
            return False
        except simpy.Interrupt:
            return True
        finally:
            self._interruptible = False

    def _sample_meter(self, tx: Transaction, interval: float) -> Generator[simpy.Event, Any, None]:
        env, sink = self.station.env, self.station.sink
        while True:
            yield env.timeout(interval)
            if not tx.open:
                return
            sink.meter_sampled(self, tx, self.sample(env.now), env.now)


class Station:
    """One charging station (charge point): identity, connectors, and the EVs that come to it."""

    __slots__ = (
        "_tx_seq",
        "authorizer",
        "charger_id",
        "connectors",
        "env",
        "index",
        "sink",
        "site",
        "spec",
    )

    def __init__(
        self,
        env: simpy.Environment,
        site: Site,
        index: int,
        charger_id: str,
        spec: StationSpec,
        sink: StationSink,
        authorizer: Authorizer,
        demand: Iterable[EvDemand] | None = None,
    ) -> None:
        self.env = env
        self.site = site
        self.index = index
        self.charger_id = charger_id
        self.spec = spec
        self.sink = sink
        self.authorizer = authorizer
        self._tx_seq = 0
        site.stations.append(self)
        self.connectors = [Connector(self, evse_id) for evse_id in range(1, spec.connectors + 1)]
        if demand is not None:
            env.process(self._arrivals(iter(demand)))

    def __repr__(self) -> str:
        return f"<Station {self.charger_id}>"

    def next_tx_seq(self) -> int:
        self._tx_seq += 1
        return self._tx_seq

    def _arrivals(self, demand: Iterator[EvDemand]) -> Generator[simpy.Event, Any, None]:
        env, site = self.env, self.site
        for ev in demand:
            delay = ev.arrival_s - env.now
            if delay > 0.0:
                yield env.timeout(delay)
            site.arrive(ev, self)


@dataclass(eq=False)
class Site:
    """A group of stations in one place. An EV that finds its charger busy takes any free
    connector of the site, or queues for one up to its patience, or leaves (turned away).
    On a private site (one car per charger) an EV only ever uses its own charger."""

    env: simpy.Environment
    name: str
    index: int
    sink: StationSink
    private: bool = False
    stations: list[Station] = field(default_factory=list)
    turned_away: int = 0
    waited: int = 0
    # Private sites: arrivals that found their own charger still occupied. A private charger
    # serves one car, so such an arrival is that same car's stream running ahead, not a
    # second EV queueing; it is dropped and counted here rather than as turned away.
    absorbed: int = 0
    # Free connectors in the order they became free: a dict is an insertion-ordered set, which
    # keeps the choice deterministic for a seed.
    _free: dict[Connector, None] = field(default_factory=dict)
    _waiting: deque[tuple[EvDemand, float, Station]] = field(default_factory=deque)

    def mark_free(self, connector: Connector) -> None:
        connector.free = True
        self._free[connector] = None

    def arrive(self, ev: EvDemand, station: Station) -> None:
        """An EV arrives at `station`: plug in there, elsewhere on the site, queue, or leave."""
        for connector in station.connectors:
            if connector.free:
                del self._free[connector]
                connector.accept(ev)
                return
        if self.private:
            self.absorbed += 1
            return
        if self._free:
            connector = next(iter(self._free))
            del self._free[connector]
            connector.accept(ev)
            return
        if ev.patience_s <= 0.0:
            self._turn_away(ev, self.env.now)
            return
        self._waiting.append((ev, self.env.now + ev.patience_s, station))

    def next_waiting(self, connector: Connector) -> EvDemand | None:
        """The EV that takes a connector that just freed up, if one is still waiting."""
        self.expire_waiting(self.env.now, strictly_before=True)
        if not self._waiting:
            return None
        ev, _, _ = self._waiting.popleft()
        self.waited += 1
        return ev

    def expire_waiting(self, now: float, strictly_before: bool = False) -> None:
        """Turn away the EVs whose patience ran out by `now`."""
        if not self._waiting:
            return
        keep: deque[tuple[EvDemand, float, Station]] = deque()
        for ev, deadline, station in self._waiting:
            if deadline < now or (deadline == now and not strictly_before):
                self._turn_away(ev, deadline)
            else:
                keep.append((ev, deadline, station))
        self._waiting = keep

    def _turn_away(self, ev: EvDemand, t: float) -> None:
        self.turned_away += 1
        self.sink.ev_turned_away(self, ev, t)

    @property
    def connectors(self) -> list[Connector]:
        return [c for s in self.stations for c in s.connectors]
