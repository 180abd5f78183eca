"""A charging station as SimPy processes: connectors with explicit OCPP statuses living the day.

Each connector runs one process: an EV plugs in, is authorised, charges along a closed-form plan,
stops drawing when full, and leaves. Everything the station does goes to a `StationSink`; it never
touches a socket, a file or the wall clock, so the same code runs offline and online.

The operations a CSMS can invoke (smart-charging profiles, availability, reservations, remote
start, reboot, unlock, meter interval) live here too, version-agnostic, so that offline policies
and both OCPP versions drive the same model. Their state is created on first use: a station that
never sees one pays a few attribute checks per session, nothing more. The faults a station
suffers (a connector fault, a power loss) live here too; simulator.station_faults schedules them.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import simpy

from models.demand import EvDemand
from models.physics import (
    NOMINAL_DC_VOLTAGE_V,
    ChargePlan,
    ChargingLimit,
    CurrentType,
    EvseRating,
    charging_curve,
    plan_charge,
)
from models.smart_charging import (
    ChargingProfile,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    Limit,
    ProfileStore,
    composite_schedule,
    limit_at,
    next_change_s,
)
from simulator.events import Authorizer, MeterSample, StationSink, StopReason

# What a station's profile store accepts (1.6 ChargeProfileMaxStackLevel and
# MaxChargingProfilesInstalled; the protocol parts report these read-only values).
PROFILE_MAX_STACK_LEVEL = 8
PROFILE_MAX_INSTALLED = 24
# IEC 61851-1: an AC EVSE signals at least 6 A per phase; below that it cannot deliver at all,
# so a smaller limit pauses the charge (SuspendedEVSE) instead of charging slower.
MIN_AC_CURRENT_A = 6.0
_EPS = 1e-9

# StatusNotification errorCode of a connector that is not faulted (1.6 ChargePointErrorCode).
NO_ERROR = "NoError"
# How a connector fault ends a transaction: 1.6 has no fault reason ("Other"); 2.0.1 maps it
# to stoppedReason Other with triggerReason AbnormalCondition.
FAULT_STOP_REASON = StopReason.OTHER
# The cause of the interrupt that tells a connector's process a fault ended its session.
_FAULT = "fault"

Availability = Literal["Accepted", "Scheduled", "Rejected"]
ReserveStatus = Literal["Accepted", "Faulted", "Occupied", "Rejected", "Unavailable"]
UnlockStatus = Literal["Unlocked", "OngoingAuthorizedTransaction", "UnknownConnector"]


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
    exactly from the charge plans instead); online it is the MeterValueSampleInterval. It is
    the initial value of `Station.meter_interval_s`, which a CSMS may change.
    """

    rating: EvseRating
    connectors: int = 1
    unplug_delay_s: float = 30.0
    meter_interval_s: float | None = None


@dataclass(slots=True)
class Transaction:
    """One transaction on one connector, from authorisation to stop, with its energy ledger.

    `started_remotely` and `remote_id` (2.0.1 remoteStartId) say a CSMS started it;
    `reservation_id` names the reservation it consumed.
    """

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
    remote_id: int | None = None
    started_remotely: bool = False
    reservation_id: int | None = None

    def soc_at(self, t: float) -> float:
        """The EV's SoC at simulated time t (within the current plan)."""
        if self.plan is None:
            return self.ev.soc_arrival
        return self.plan.soc_at(t - self.plan_start_s)

    def energy_wh_at(self, t: float) -> float:
        """The connector's energy register at time t."""
        capacity = self.ev.vehicle.battery_kwh
        return self.meter_start_wh + (self.soc_at(t) - self.ev.soc_arrival) * capacity * 1000.0


@dataclass(slots=True)
class Reservation:
    """A ReserveNow held on one connector for `id_tag` until `expiry_s` (simulated s)."""

    reservation_id: int
    connector: Connector
    id_tag: str
    expiry_s: float


@dataclass(frozen=True, slots=True)
class StartClaim:
    """How the next transaction on a connector starts when it is not the driver's own tag:
    a remote start (tag, TxProfile, remoteStartId) or an EV that holds the reservation.
    `authorize` False means the tag is taken as given (no Authorize)."""

    id_tag: str
    authorize: bool
    profile: ChargingProfile | None = None
    remote_id: int | None = None
    reservation_id: int | None = None
    remote: bool = True


@dataclass(frozen=True, slots=True)
class RemoteStartModel:
    """What happens after a remote start on a connector without an EV: the driver plugs in
    after ~`plug_in_s` (drawn uniform on [0.5, 1.5] x mean), unless they never come (with
    probability `no_show_p`) or take longer than `connection_timeout_s`, at which point the
    connector gives up and is Available again (1.6 ConnectionTimeOut)."""

    plug_in_s: float = 30.0
    no_show_p: float = 0.0
    connection_timeout_s: float = 120.0


class Connector:
    """One EVSE with one connector: its status, energy register, limit and the serving process.

    Besides the EV's session it holds what a CSMS set on it: whether it is operative, its
    reservation, and a pending start claim (a remote start waiting for its driver).
    """

    __slots__ = (
        "_claim",
        "_env",
        "_fault_until",
        "_faulted",
        "_interruptible",
        "_operative",
        "_out",
        "_pending_inoperative",
        "_plain",
        "_plugged",
        "_sampler",
        "_sink",
        "_wake",
        "error_code",
        "ev",
        "evse_id",
        "free",
        "limit",
        "process",
        "register_wh",
        "reservation",
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
        self._operative = True
        self.reservation: Reservation | None = None
        self._wake: simpy.Event | None = None
        self._interruptible = False
        self._claim: StartClaim | None = None
        # Succeeded with a StartClaim by a remote start while an EV is plugged in without a
        # transaction (its own tag still being authorised, or just refused).
        self._plugged: simpy.Event | None = None
        self._pending_inoperative = False
        self._out = False  # this EVSE alone is rebooting (2.0.1 Reset with evseId)
        # A fault: Faulted with `error_code` until `_fault_until` (see Station.fault_connector).
        self._faulted = False
        self._fault_until = math.nan
        self.error_code = NO_ERROR
        # Operative, not rebooting alone, nothing scheduled: the per-session fast path (during
        # a session there is never a reservation or a start claim, so nothing else matters).
        self._plain = True
        self._sampler: simpy.Process | None = None
        # Waiting for an EV from the start, so that commands given before the simulation runs
        # (an offline policy, a test) find the connector idle.
        self._wake = station.env.event()
        station.site.mark_free(self)
        self.process = station.env.process(self._serve())

    def __repr__(self) -> str:
        return f"<Connector {self.station.charger_id}/{self.evse_id} {self.status}>"

    # -- what the connector is doing -------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """No EV: the connector's process waits for one (it may still be reserved, inoperative
        or waiting for a remotely started driver)."""
        wake = self._wake
        return wake is not None and not wake.triggered

    @property
    def busy(self) -> bool:
        """An EV is plugged in, a transaction runs, or a remote start waits for its driver."""
        return self.ev is not None or self.tx is not None or self._claim is not None

    @property
    def operative(self) -> bool:
        """False after ChangeAvailability Inoperative: Unavailable, takes no EV."""
        return self._operative

    @operative.setter
    def operative(self, value: bool) -> None:
        self._operative = value
        self._sync()

    @property
    def faulted(self) -> bool:
        """A fault keeps the connector Faulted, closed to EVs, until it is repaired."""
        return self._faulted

    def _sync(self) -> None:
        """Recompute `_plain` after `operative`, `_out`, `_pending_inoperative` or `_faulted`
        changed."""
        self._plain = self._operative and not (
            self._out or self._pending_inoperative or self._faulted
        )

    def _open_to_all(self) -> bool:
        """Whether any arriving EV may take this connector."""
        return (
            self.operative
            and not self._out
            and not self._faulted
            and self.reservation is None
            and self._claim is None
        )

    def _idle_status(self) -> ConnectorStatus:
        if self._faulted:
            return ConnectorStatus.FAULTED
        if not self.operative or self._out:
            return ConnectorStatus.UNAVAILABLE
        if self.reservation is not None:
            return ConnectorStatus.RESERVED
        if self._claim is not None:
            return ConnectorStatus.PREPARING
        return ConnectorStatus.AVAILABLE

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
        self._nudge("limit")

    def end_transaction(self, reason: StopReason) -> bool:
        """Stop the running transaction now (remote stop, end of a run); the EV stays plugged
        in until its driver comes back. False if there is no transaction to stop."""
        tx = self.tx
        if tx is None or not tx.open or self.stop_requested is not None or self._faulted:
            return False  # (a fault is ending it already)
        self.stop_requested = reason
        self._nudge("stop")
        return True

    def _nudge(self, why: str) -> None:
        # One interrupt at a time: the process re-reads the limit and the stop request when it
        # resumes, so a second request in the same instant needs none, and an extra interrupt
        # would land on a wait that does not expect one.
        if self._interruptible:
            self._interruptible = False
            self.process.interrupt(why)

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

    def _go_idle(self) -> None:
        """Take the status of a connector without an EV, applying a scheduled Inoperative."""
        if self._pending_inoperative:
            self._pending_inoperative = False
            self.operative = False
        target = self._idle_status()
        if target is not self.status and target not in LEGAL_TRANSITIONS[self.status]:
            # e.g. Preparing -> Unavailable is not in the diagram: pass through Available.
            self._set_status(ConnectorStatus.AVAILABLE)
        self._set_status(target)

    def _refresh_idle(self) -> None:
        """An idle connector's availability changed: new status, and open it to arriving
        EVs (the first one waiting on the site takes it) or close it to them."""
        if not self.idle:
            return
        self._go_idle()
        site = self.station.site
        if self._open_to_all():
            if not self.free:
                ev = site.next_waiting(self)
                if ev is not None:
                    self.accept(ev)
                else:
                    site.mark_free(self)
        elif self.free:
            site.unmark_free(self)

    def _serve(self) -> Generator[simpy.Event, Any, None]:
        site = self.station.site
        ev: EvDemand | None = None
        while True:
            if ev is None:
                if self._wake is None:
                    self._wake = self.station.env.event()
                    if self._plain or self._open_to_all():
                        site.mark_free(self)
                try:
                    ev = yield self._wake
                except simpy.Interrupt:
                    wake = self._wake
                    if wake is None or not wake.triggered:
                        continue  # no EV was handed over: nothing to end, wait on
                    # A fault after an EV was handed over, before it plugged in: it leaves.
                    self._wake = None
                    handed = wake.value
                    assert handed is not None
                    self._end_by_fault(handed)
                    continue
                self._wake = None
            assert ev is not None
            # Only a fault interrupts the process outside the waits that expect a limit change
            # or a stop (Station.fault_connector), wherever the session is: it ends here.
            try:
                yield from self._session(ev)
            except simpy.Interrupt:
                self._end_by_fault(ev)
                ev = None
                continue
            ev = site.next_waiting(self) if self._plain or self._open_to_all() else None

    def _end_by_fault(self, ev: EvDemand) -> None:
        """A fault ended the session of `ev` wherever it was: the connector is Faulted, a
        running transaction stops now (the energy delivered so far is kept), and the EV
        leaves at once: its driver cannot charge here."""
        env, sink, station = self._env, self._sink, self.station
        now = env.now
        self._plugged = None  # no remote start can take over a faulted connector
        self.stop_requested = None  # a stop asked for in the same instant: the fault ends it
        tx = self.tx
        # Faulted first: a charger reports the fault, then the transaction it ended.
        self._go_idle()
        if tx is not None:
            if math.isnan(tx.charge_end_s):
                tx.charge_end_s = now
            tx.stop_s = now
            tx.stop_reason = FAULT_STOP_REASON
            tx.meter_stop_wh = self.register_wh = tx.energy_wh_at(now)
            tx.open = False
            sink.transaction_ended(self, tx, now)
            self.tx = None
            station._open_tx -= 1
            station._transaction_ended(self, tx)
        self.ev = None
        sink.session_ended(self, ev, now)

    def _session(self, ev: EvDemand) -> Generator[simpy.Event, Any, None]:
        station = self.station
        env, sink = self._env, self._sink
        plug_in = env.now
        self.ev = ev
        self._set_status(ConnectorStatus.PREPARING)
        claim = self._claim
        self._claim = None
        if station._blocked:
            yield station.when_ready()  # a rebooting station: the EV waits, plugged in

        id_tag = ev.id_tag
        while True:
            if claim is not None:
                id_tag = claim.id_tag
                if not claim.authorize:
                    break
            answer = station.authorizer.authorize(self, id_tag)
            if isinstance(answer, bool):
                accepted = answer
            elif claim is None:
                # While the driver's own tag is being authorised, a remote start may take over.
                plugged = self._plugged = env.event()
                yield answer | plugged
                self._plugged = None
                if plugged.triggered:
                    claim = plugged.value
                    continue
                accepted = bool(answer.value)
            else:
                accepted = bool((yield answer))
            if accepted:
                break
            # Refused: the driver gives up and unplugs, unless a remote start comes first.
            plugged = self._plugged = env.event()
            yield env.timeout(station.spec.unplug_delay_s) | plugged
            self._plugged = None
            if not plugged.triggered:
                self.ev = None
                self._go_idle()
                sink.session_ended(self, ev, env.now)
                return
            claim = plugged.value
        if station._blocked:
            yield station.when_ready()  # the answer came while the station went down

        tx = Transaction(
            station.next_tx_seq(), self, ev, id_tag, env.now, self.register_wh, plug_in
        )
        if claim is not None:
            tx.started_remotely = claim.remote
            tx.remote_id = claim.remote_id
            tx.reservation_id = claim.reservation_id
        self.tx = tx
        station._open_tx += 1
        sink.transaction_started(self, tx, env.now)
        if claim is not None and claim.profile is not None:
            station._install_tx_profile(self, tx, claim.profile)
        if station._profiles is not None:
            station.apply_limits()
        interval = station.meter_interval_s
        if interval:
            self._sampler = env.process(self._sample_meter(tx, interval))

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
                except simpy.Interrupt as interrupt:
                    if interrupt.cause is _FAULT:
                        raise
                finally:
                    self._interruptible = False

        now = tx.stop_s = env.now
        tx.stop_reason = self.stop_requested or StopReason.LOCAL
        tx.meter_stop_wh = self.register_wh = tx.energy_wh_at(now)
        tx.open = False
        self._set_status(ConnectorStatus.FINISHING)
        sink.transaction_ended(self, tx, now)
        self.tx = None
        station._open_tx -= 1
        if station._watched or not self._plain:
            station._transaction_ended(self, tx)
        if self.stop_requested is not None:
            self.stop_requested = None
            # Stopped from outside: the car stays until its driver returns.
            if departure > now:
                yield env.timeout(departure - now)
        yield env.timeout(station.spec.unplug_delay_s)
        self.ev = None
        if self._plain:
            self._set_status(ConnectorStatus.AVAILABLE)
        else:
            self._go_idle()
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
        except simpy.Interrupt as interrupt:
            if interrupt.cause is _FAULT:
                raise
            return True
        finally:
            self._interruptible = False

    def _sample_meter(self, tx: Transaction, interval: float) -> Generator[simpy.Event, Any, None]:
        env, sink = self.station.env, self.station.sink
        try:
            while True:
                yield env.timeout(interval)
                if not tx.open:
                    return
                sink.meter_sampled(self, tx, self.sample(env.now), env.now)
        except simpy.Interrupt:
            return  # the interval changed: a new sampler runs from now

    def _restart_sampler(self, interval: float | None) -> None:
        sampler = self._sampler
        if sampler is not None and sampler.is_alive:
            sampler.interrupt("interval")
        self._sampler = None
        tx = self.tx
        if tx is not None and tx.open and interval:
            self._sampler = self._env.process(self._sample_meter(tx, interval))


class Station:
    """One charging station (charge point): identity, connectors, and the EVs that come to it,
    and the operations a CSMS (or an offline policy) invokes on it.

    Smart charging: `profiles` holds the installed charging profiles; `apply_limits` turns them
    into each connector's limit and re-applies them, from one SimPy process per station, when
    the composite limit next changes. A station-wide maximum (ChargingStationMaxProfile) is
    shared equally among the connectors with a running transaction: it protects the station's
    own supply, and an equal split is what a charger does without knowing what each EV would
    take (an idle connector draws nothing, so it needs no share).
    """

    __slots__ = (
        "_blocked",
        "_boot_token",
        "_holds",
        "_idle_event",
        "_limit_at",
        "_limit_timer",
        "_open_tx",
        "_profiles",
        "_ready_event",
        "_reservations",
        "_rng",
        "_tx_seq",
        "_tx_waiters",
        "_up_event",
        "_watched",
        "authorizer",
        "charger_id",
        "connectors",
        "env",
        "index",
        "meter_interval_s",
        "on_down",
        "on_power_loss",
        "on_reservation_ended",
        "on_up",
        "remote_start_model",
        "sink",
        "site",
        "spec",
        "up",
        "walk_in",
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
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        """`rng` is the charger's `misc` stream (walk-in drivers after a remote start); by
        default one seeded from the charger id is made when first needed."""
        self.env = env
        self.site = site
        self.index = index
        self.charger_id = charger_id
        self.spec = spec
        self.sink = sink
        self.authorizer = authorizer
        self._tx_seq = 0
        self._rng = rng
        self.meter_interval_s = spec.meter_interval_s
        self.up = True
        self.on_down: Callable[[], None] | None = None
        self.on_up: Callable[[], None] | None = None
        # Called with the downtime after a power loss (online: the link loses its connection).
        self.on_power_loss: Callable[[float], None] | None = None
        self.on_reservation_ended: Callable[[int, str], None] | None = None
        self.remote_start_model = RemoteStartModel()
        # A remote start without an EV plugged in gets a driver from the charger's own demand
        # model (a DemandStream's walk_in); None: nobody comes, the start times out.
        self.walk_in: Callable[[float, np.random.Generator], EvDemand] | None = getattr(
            demand, "walk_in", None
        )
        self._profiles: ProfileStore | None = None
        self._limit_timer: simpy.Process | None = None
        self._limit_at = math.inf
        self._reservations: dict[int, Reservation] | None = None
        self._open_tx = 0
        self._holds = 0
        self._ready_event: simpy.Event | None = None
        self._up_event: simpy.Event | None = None
        self._idle_event: simpy.Event | None = None
        self._tx_waiters: dict[int, simpy.Event] | None = None
        self._boot_token = 0
        # Fast-path flags read on every session: down or holding (`_blocked`), and whether
        # any operation waits on transaction ends or profiles exist (`_watched`).
        self._blocked = False
        self._watched = False
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

    @property
    def rng(self) -> np.random.Generator:
        """The station's own random stream (the charger's `misc` stream when given)."""
        if self._rng is None:
            self._rng = np.random.default_rng(zlib.crc32(self.charger_id.encode("utf-8")))
        return self._rng

    def connector(self, evse_id: int) -> Connector | None:
        """The connector of EVSE `evse_id` (1-based), None if there is no such EVSE."""
        if 1 <= evse_id <= len(self.connectors):
            return self.connectors[evse_id - 1]
        return None

    def transactions(self) -> list[Transaction]:
        """The transactions running now (not yet ended), by EVSE."""
        return [c.tx for c in self.connectors if c.tx is not None and c.tx.open]

    # -- readiness: rebooting, and holds while an operation waits for the station to idle -----

    @property
    def ready(self) -> bool:
        """Up and not holding new transactions back."""
        return self.up and not self._holds

    def when_ready(self) -> simpy.Event:
        """An event that fires once the station is up and holds nothing back."""
        if self.ready:
            return self.env.event().succeed()
        if self._ready_event is None:
            self._ready_event = self.env.event()
        return self._ready_event

    def when_up(self) -> simpy.Event:
        """An event that fires once the station is up (holds or not)."""
        if self.up:
            return self.env.event().succeed()
        if self._up_event is None:
            self._up_event = self.env.event()
        return self._up_event

    def _check_ready(self) -> None:
        up = self._up_event
        if up is not None and self.up:
            self._up_event = None
            up.succeed()
        event = self._ready_event
        if event is not None and self.ready:
            self._ready_event = None
            event.succeed()

    def hold(self) -> None:
        """Start no new transaction until `release` (an EV that plugs in waits, Preparing):
        used by a reset OnIdle and a firmware installation waiting for the station to idle."""
        self._holds += 1
        self._blocked = True

    def release(self) -> None:
        self._holds = max(self._holds - 1, 0)
        self._blocked = not self.ready
        self._check_ready()

    def when_idle(self) -> simpy.Event:
        """An event that fires once no transaction runs."""
        if self._open_tx == 0:
            return self.env.event().succeed()
        if self._idle_event is None:
            self._idle_event = self.env.event()
            self._watched = True
        return self._idle_event

    def when_transaction_ends(self, tx: Transaction) -> simpy.Event:
        """An event that fires once `tx` has ended."""
        if not tx.open:
            return self.env.event().succeed()
        if self._tx_waiters is None:
            self._tx_waiters = {}
            self._watched = True
        event = self._tx_waiters.get(tx.seq)
        if event is None:
            event = self._tx_waiters[tx.seq] = self.env.event()
        return event

    def _transaction_ended(self, connector: Connector, tx: Transaction) -> None:
        """What follows a transaction's end once an operation watches the station or the
        connector is not plain (the connector has already counted it out of `_open_tx`)."""
        if self._tx_waiters:
            waiter = self._tx_waiters.pop(tx.seq, None)
            if waiter is not None:
                waiter.succeed()
        if self._open_tx == 0 and self._idle_event is not None:
            event, self._idle_event = self._idle_event, None
            event.succeed()
        if self._profiles is not None:
            # TxProfiles end with their transaction; the others' share of the station max grows.
            self._profiles.end_transaction(connector.evse_id)
            self.apply_limits()
        if connector._pending_inoperative:
            connector._pending_inoperative = False
            connector.operative = False  # the car is still there: Unavailable when it leaves

    # -- reset / reboot ------------------------------------------------------------------------

    def reboot(self, reason: StopReason, downtime_s: float) -> None:
        """Reboot: every running transaction ends with `reason`, remote starts waiting for their
        driver are dropped, and the station is down for `downtime_s`; EVs arriving meanwhile
        plug in and wait (Preparing) until it is up. `on_down` / `on_up` are called."""
        for connector in self.connectors:
            connector.end_transaction(reason)
            if connector._claim is not None and connector.ev is None:
                connector._claim = None
                connector._refresh_idle()
        self.up = False
        self._blocked = True
        self._boot_token += 1
        if self.on_down is not None:
            self.on_down()
        self.env.process(self._boot_after(self._boot_token, downtime_s))

    def _boot_after(self, token: int, downtime_s: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(downtime_s, 0.0))
        if token != self._boot_token:
            return  # rebooted again meanwhile: that reboot's timer brings it up
        self.up = True
        self._blocked = not self.ready
        self._check_ready()
        if self.on_up is not None:
            self.on_up()

    def reboot_evse(self, evse_id: int, reason: StopReason, downtime_s: float) -> bool:
        """Reset one EVSE (2.0.1 Reset with evseId): its transaction ends with `reason`, and an
        EVSE without an EV is Unavailable for `downtime_s`. False if there is no such EVSE."""
        connector = self.connector(evse_id)
        if connector is None:
            return False
        connector.end_transaction(reason)
        if connector.idle and connector._claim is None:
            connector._out = True
            connector._sync()
            connector._refresh_idle()
            self.env.process(self._evse_back(connector, downtime_s))
        return True

    def _evse_back(
        self, connector: Connector, downtime_s: float
    ) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(max(downtime_s, 0.0))
        connector._out = False
        connector._sync()
        connector._refresh_idle()

    # -- faults --------------------------------------------------------------------------------

    def power_loss(self, downtime_s: float) -> None:
        """The station loses power for `downtime_s`: a hard reboot (see `reboot`) whose
        transactions end with reason PowerLoss; then `on_power_loss(downtime_s)` is called.
        Connector faults outlast it."""
        self.reboot(StopReason.POWER_LOSS, downtime_s)
        if self.on_power_loss is not None:
            self.on_power_loss(downtime_s)

    def fault_connector(self, evse_id: int, error_code: str, repair_s: float) -> bool:
        """EVSE `evse_id` fails with `error_code` (a 1.6 ChargePointErrorCode) until repaired
        `repair_s` later: it goes Faulted and takes no EV; a running transaction ends (reason
        FAULT_STOP_REASON) and the plugged-in EV leaves; a reservation waits for the repair, a
        remote start waiting for its driver is dropped. Repaired, it takes its idle status
        again. A fault of a faulted connector extends the repair (the first error code
        stays). False if there is no such EVSE."""
        connector = self.connector(evse_id)
        if connector is None:
            return False
        if self.env.active_process is connector.process:
            # Called from the connector's own process (a sink callback): a process cannot
            # interrupt itself, so the fault strikes in the same instant from one of its own.
            self.env.process(self._fault_now(evse_id, error_code, repair_s))
            return True
        until = self.env.now + max(repair_s, 0.0)
        if connector._faulted:
            if until > connector._fault_until:
                connector._fault_until = until
                self.env.process(self._repair(connector, until))
            return True
        connector._faulted = True
        connector._fault_until = until
        connector.error_code = error_code
        connector._sync()
        # No limit change or stop request may interrupt the process from now on: its next
        # interrupt is the fault's, whatever wait it lands on (the process clears the flag
        # again only inside a session, which the fault ends first).
        connector._interruptible = False
        if connector.idle:
            connector._claim = None
            connector._refresh_idle()  # Faulted, and closed to arriving EVs
        else:
            connector.process.interrupt(_FAULT)
        self.env.process(self._repair(connector, until))
        return True

    def _fault_now(
        self, evse_id: int, error_code: str, repair_s: float
    ) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(0.0)
        self.fault_connector(evse_id, error_code, repair_s)

    def _repair(self, connector: Connector, until: float) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(until - self.env.now)
        if not connector._faulted or connector._fault_until != until:
            return  # extended meanwhile: a later repair process ends the fault
        connector._faulted = False
        connector._fault_until = math.nan
        connector.error_code = NO_ERROR
        connector._sync()
        connector._refresh_idle()

    # -- availability --------------------------------------------------------------------------

    def change_availability(self, evse_id: int | None, operative: bool) -> Availability:
        """ChangeAvailability of one EVSE, or the whole station (None or 0). Inoperative while
        an EV is there (a transaction, or one about to start) is "Scheduled": applied when it
        ends. An inoperative connector is Unavailable and takes no EV."""
        if evse_id:
            connector = self.connector(evse_id)
            if connector is None:
                return "Rejected"
            targets = [connector]
        else:
            targets = self.connectors
        result: Availability = "Accepted"
        for connector in targets:
            if operative:
                connector._pending_inoperative = False
                if not connector.operative:
                    connector.operative = True
                    connector._refresh_idle()
                connector._sync()
                continue
            if not connector.operative:
                continue
            if connector.busy or not connector.idle:
                connector._pending_inoperative = True
                connector._sync()
                result = "Scheduled"
                continue
            connector.operative = False
            if connector.reservation is not None:
                self._end_reservation(connector.reservation, "Removed")
            connector._refresh_idle()
        return result

    # -- reservations --------------------------------------------------------------------------

    def reserve(
        self, reservation_id: int, evse_id: int | None, id_tag: str, expiry_s: float
    ) -> ReserveStatus:
        """ReserveNow: hold a connector (EVSE `evse_id`, or the first Available one) for
        `id_tag` until `expiry_s`. A reservation with the same id is replaced."""
        if evse_id:
            connector = self.connector(evse_id)
            if connector is None:
                return "Rejected"
            candidates = [connector]
        else:
            candidates = self.connectors
        if expiry_s <= self.env.now:
            return "Rejected"
        old = self._reservations.get(reservation_id) if self._reservations else None
        for connector in candidates:
            if old is not None and old.connector is connector:
                # The same reservation again: renew it in place (a new object, so that the old
                # expiry timer finds itself superseded).
                self._place(Reservation(reservation_id, connector, id_tag, expiry_s))
                return "Accepted"
        for connector in candidates:
            if self.up and connector.idle and connector._open_to_all():
                if old is not None:
                    self._end_reservation(old, None)
                self._place(Reservation(reservation_id, connector, id_tag, expiry_s))
                return "Accepted"
        statuses = [c.status for c in candidates]
        if all(s is ConnectorStatus.FAULTED for s in statuses):
            return "Faulted"
        if all(not c.operative or c._out for c in candidates) or not self.up:
            return "Unavailable"
        return "Occupied"

    def _place(self, reservation: Reservation) -> None:
        if self._reservations is None:
            self._reservations = {}
        self._reservations[reservation.reservation_id] = reservation
        connector = reservation.connector
        connector.reservation = reservation
        connector._refresh_idle()
        self.env.process(self._expire(reservation))

    def _expire(self, reservation: Reservation) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(reservation.expiry_s - self.env.now)
        if self._reservations and self._reservations.get(reservation.reservation_id) is reservation:
            self._end_reservation(reservation, "Expired")

    def _end_reservation(self, reservation: Reservation, reason: str | None) -> None:
        """Remove a reservation; `reason` ("Expired", "Removed") is reported, None is silent
        (replaced or consumed)."""
        if self._reservations is not None:
            self._reservations.pop(reservation.reservation_id, None)
        connector = reservation.connector
        if connector.reservation is reservation:
            connector.reservation = None
            connector._refresh_idle()
        if reason is not None and self.on_reservation_ended is not None:
            self.on_reservation_ended(reservation.reservation_id, reason)

    def cancel_reservation(self, reservation_id: int) -> bool:
        """CancelReservation: False if there is no such reservation. The connector is
        Available again and `on_reservation_ended(id, "Removed")` is called."""
        reservation = self._reservations.get(reservation_id) if self._reservations else None
        if reservation is None:
            return False
        self._end_reservation(reservation, "Removed")
        return True

    def reservations(self) -> list[Reservation]:
        """The reservations held now."""
        return list(self._reservations.values()) if self._reservations else []

    def claim_reservation(self, ev: EvDemand) -> bool:
        """An arriving EV whose tag holds a reservation here takes the reserved connector."""
        for reservation in list(self._reservations.values()) if self._reservations else []:
            connector = reservation.connector
            if reservation.id_tag == ev.id_tag and connector.idle and not connector._faulted:
                # Claimed first, so that the connector goes Reserved -> Preparing directly.
                connector._claim = StartClaim(
                    ev.id_tag, True, reservation_id=reservation.reservation_id, remote=False
                )
                self._end_reservation(reservation, None)
                connector.accept(ev)
                return True
        return False

    # -- remote start ---------------------------------------------------------------------------

    def remote_start(
        self,
        id_tag: str,
        evse_id: int | None,
        profile: ChargingProfile | None = None,
        remote_id: int | None = None,
        authorize: bool = False,
    ) -> int | None:
        """RemoteStartTransaction / RequestStartTransaction: the EVSE chosen, None = Rejected.

        The EVSE is the one given, else one whose EV is plugged in without a transaction, else
        the first Available one. A plugged-in EV starts at once with `id_tag`; otherwise the
        connector is Preparing until a walk-in driver plugs in (see RemoteStartModel). With
        `authorize` the tag is first authorised like a local one. `profile` (a TxProfile)
        becomes the transaction's profile when it starts.
        """
        if not self.ready:
            return None
        if profile is not None and profile.purpose is not ChargingProfilePurpose.TX:
            return None
        if evse_id:
            connector = self.connector(evse_id)
            if connector is None:
                return None
        else:
            connector = next(
                (
                    c
                    for c in self.connectors
                    if c._plugged is not None
                    and not c._plugged.triggered
                    and self._may_start(c, id_tag)
                ),
                None,
            ) or next((c for c in self.connectors if c.idle and self._may_start(c, id_tag)), None)
            if connector is None:
                return None
        if not self._may_start(connector, id_tag):
            return None
        reservation = connector.reservation
        claim = StartClaim(
            id_tag,
            authorize,
            profile,
            remote_id,
            reservation.reservation_id if reservation is not None else None,
        )
        plugged = connector._plugged
        if plugged is not None and not plugged.triggered:
            plugged.succeed(claim)
            return connector.evse_id
        if not connector.idle:
            return None  # an EV is there but cannot start now (e.g. Finishing)
        connector._claim = claim
        if reservation is not None:
            self._end_reservation(reservation, None)  # consumed by this start
        connector._refresh_idle()  # Preparing, closed to other EVs
        self.env.process(self._walk_in(connector, claim))
        return connector.evse_id

    def _may_start(self, connector: Connector, id_tag: str) -> bool:
        if not connector.operative or connector._pending_inoperative or connector._out:
            return False
        if connector._faulted or connector.tx is not None:
            return False
        if connector._claim is not None:
            return False
        reservation = connector.reservation
        return reservation is None or reservation.id_tag == id_tag

    def _walk_in(
        self, connector: Connector, claim: StartClaim
    ) -> Generator[simpy.Event, Any, None]:
        """The driver of a remote start: plugs in after a drawn delay, or never comes."""
        model, rng, env = self.remote_start_model, self.rng, self.env
        # Both draws always happen, so the stream's sequence does not depend on the outcome.
        no_show = rng.random() < model.no_show_p
        delay = model.plug_in_s * rng.uniform(0.5, 1.5)
        source = self.walk_in
        if no_show or source is None or delay >= model.connection_timeout_s:
            yield env.timeout(model.connection_timeout_s)
            if connector._claim is claim and connector.idle:
                connector._claim = None  # ConnectionTimeOut: the start is given up
                connector._refresh_idle()
            return
        yield env.timeout(delay)
        if connector._claim is claim and connector.idle:
            connector.accept(source(env.now, rng))

    # -- unlock, meter interval ----------------------------------------------------------------

    def unlock(self, evse_id: int, stop_transaction: bool) -> UnlockStatus:
        """UnlockConnector. With `stop_transaction` (1.6) a running transaction ends with
        UnlockCommand; without it (2.0.1) a running transaction refuses. The car stays until
        its driver returns either way."""
        connector = self.connector(evse_id)
        if connector is None:
            return "UnknownConnector"
        tx = connector.tx
        if tx is not None and tx.open and connector.stop_requested is None:
            if not stop_transaction:
                return "OngoingAuthorizedTransaction"
            connector.end_transaction(StopReason.UNLOCK_COMMAND)
        return "Unlocked"

    def set_meter_interval(self, seconds: float) -> None:
        """Meter samples every `seconds` of a transaction (0: none), from now on: running
        samplers restart, so the first sample comes `seconds` after the change."""
        interval = seconds if seconds > 0 else None
        self.meter_interval_s = interval
        for connector in self.connectors:
            connector._restart_sampler(interval)

    # -- smart charging ------------------------------------------------------------------------

    @property
    def profiles(self) -> ProfileStore:
        """The installed charging profiles (created on first use)."""
        if self._profiles is None:
            self._profiles = ProfileStore(PROFILE_MAX_STACK_LEVEL, PROFILE_MAX_INSTALLED)
            self._watched = True
        return self._profiles

    def install_profile(self, profile: ChargingProfile, keep_disjoint: bool = False) -> bool:
        """SetChargingProfile; False = Rejected (unknown EVSE, a TxProfile without a running
        transaction, or the store's limits). Limits change at once. `keep_disjoint`: see
        ProfileStore.set (2.0.1 replacement rule)."""
        if profile.evse_id > len(self.connectors):
            return False
        active: str | None = None
        if profile.evse_id:
            tx = self.connectors[profile.evse_id - 1].tx
            if tx is not None and tx.open:
                active = str(tx.seq)
        if not self.profiles.set(profile, active, keep_disjoint):
            return False
        self.apply_limits()
        return True

    def _install_tx_profile(
        self, connector: Connector, tx: Transaction, profile: ChargingProfile
    ) -> None:
        # A remote start's profile: bound to the transaction it started, on its EVSE.
        bound = dataclasses.replace(profile, evse_id=connector.evse_id, transaction_id=None)
        self.profiles.set(bound, str(tx.seq))

    def clear_profiles(
        self,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: ChargingProfilePurpose | None = None,
        stack_level: int | None = None,
    ) -> int:
        """ClearChargingProfile: how many were removed (0: "Unknown"). Limits change at once."""
        if self._profiles is None:
            return 0
        removed = self._profiles.clear(profile_id, evse_id, purpose, stack_level)
        if removed:
            self.apply_limits()
        return removed

    def _electrics(self, connector: Connector | None) -> tuple[float, int]:
        """(voltage, phases) to convert amps and watts on an EVSE: the phases its EV actually
        uses while one charges, else those wired. DC: nominal battery voltage, one "phase"."""
        rating = self.spec.rating
        if rating.kind is CurrentType.DC:
            return NOMINAL_DC_VOLTAGE_V, 1
        phases = rating.phases
        if connector is not None:
            tx = connector.tx
            if tx is not None and tx.open:
                phases = min(phases, tx.ev.vehicle.ac_phases)
        return rating.voltage_v, phases

    def _evse_max(self, evse_id: int) -> ChargingLimit:
        """The EVSE's rating (evse 0: the station, all connectors) as a limit."""
        rating = self.spec.rating
        n = len(self.connectors) if evse_id == 0 else 1
        if rating.kind is CurrentType.AC:
            return ChargingLimit(rating.max_current_a * n, "A")
        return ChargingLimit(rating.max_kw * 1000.0 * n, "W")

    def composite_schedule(
        self, evse_id: int, duration_s: float, unit: ChargingRateUnit
    ) -> ChargingSchedule:
        """GetCompositeSchedule from now for `duration_s`, capped by the EVSE rating (evse 0:
        the station's, rating x connectors), so no period is unlimited."""
        connector = self.connector(evse_id) if evse_id else None
        if evse_id and connector is None:
            raise ValueError(f"{self!r} has no EVSE {evse_id}")
        tx = connector.tx if connector is not None else None
        if tx is not None and not tx.open:
            tx = None
        voltage, phases = self._electrics(connector)
        installed = self._profiles.profiles() if self._profiles is not None else ()
        return composite_schedule(
            self.env.now,
            duration_s,
            evse_id,
            installed,
            tx.start_s if tx is not None else None,
            unit,
            voltage,
            phases,
            self._evse_max(evse_id),
            tx_id=str(tx.seq) if tx is not None else None,
        )

    def apply_limits(self) -> None:
        """Recompute every connector's limit from the profiles in force now, set the ones that
        changed (a running charge re-plans), and wake again when the composite next changes."""
        store = self._profiles
        if store is None:
            return
        now = self.env.now
        installed = store.profiles()
        station_max = [p for p in installed if p.purpose is ChargingProfilePurpose.STATION_MAX]
        others = [p for p in installed if p.purpose is not ChargingProfilePurpose.STATION_MAX]
        running = sum(1 for c in self.connectors if c.tx is not None and c.tx.open)
        shared: Limit | None = None
        if station_max:
            voltage, phases = self._electrics(None)
            whole = limit_at(now, 0, station_max, None, voltage, phases)
            if whole is not None:
                shared = Limit(whole.value / max(running, 1), whole.unit, whole.phases)
        dc = self.spec.rating.kind is CurrentType.DC
        wake = math.inf
        for connector in self.connectors:
            tx = connector.tx
            if tx is not None and not tx.open:
                tx = None
            tx_start = tx.start_s if tx is not None else None
            tx_id = str(tx.seq) if tx is not None else None
            voltage, phases = self._electrics(connector)
            own = (
                limit_at(now, connector.evse_id, others, tx_start, voltage, phases, tx_id=tx_id)
                if others
                else None
            )
            combined = _lower(own, shared, voltage, phases, dc)
            limit = self._deliverable(connector, combined, others, voltage, phases)
            if limit != connector.limit:
                connector.set_limit(limit)
            change = next_change_s(now, connector.evse_id, installed, tx_start, tx_id=tx_id)
            if change is not None and change < wake:
                wake = change
        self._arm_limits(wake)

    def _deliverable(
        self,
        connector: Connector,
        limit: Limit | None,
        profiles: list[ChargingProfile],
        voltage: float,
        phases: int,
    ) -> ChargingLimit | None:
        """The physics limit for a composite one: paused (0 W) when below the least rate the
        EVSE can deliver (AC 6 A per phase; a schedule's minChargingRate when higher)."""
        if limit is None:
            return None
        used = min(phases, limit.phases) if limit.phases else phases
        amps = limit.value if limit.unit is ChargingRateUnit.A else limit.value / (voltage * used)
        floor = MIN_AC_CURRENT_A if self.spec.rating.kind is CurrentType.AC else 0.0
        for p in profiles:
            rate = p.schedule.min_charging_rate
            if rate is None or not _applies(p, connector.evse_id, self.env.now):
                continue
            rate_a = rate if p.schedule.unit is ChargingRateUnit.A else rate / (voltage * used)
            floor = max(floor, rate_a)
        if amps < floor - _EPS:
            return ChargingLimit(0.0, "W", limit.phases)
        return ChargingLimit(
            limit.value, "A" if limit.unit is ChargingRateUnit.A else "W", limit.phases
        )

    def _arm_limits(self, at: float) -> None:
        """Keep one process that re-applies the limits at `at` (inf: none needed)."""
        timer = self._limit_timer
        if timer is not None and timer.is_alive:
            if self._limit_at == at:
                return
            if timer is not self.env.active_process:
                timer.interrupt("profiles changed")
        self._limit_timer = None
        self._limit_at = at
        if at < math.inf:
            self._limit_timer = self.env.process(self._reapply_at(at))

    def _reapply_at(self, at: float) -> Generator[simpy.Event, Any, None]:
        try:
            yield self.env.timeout(max(at - self.env.now, 0.0))
        except simpy.Interrupt:
            return
        self._limit_at = math.inf
        self.apply_limits()


def _applies(profile: ChargingProfile, evse_id: int, t: float) -> bool:
    """Whether a profile concerns an EVSE and is within its validity window at t."""
    if profile.evse_id not in (0, evse_id):
        return False
    if profile.valid_from_s is not None and t < profile.valid_from_s:
        return False
    return profile.valid_to_s is None or t < profile.valid_to_s


def _lower(a: Limit | None, b: Limit | None, voltage: float, phases: int, dc: bool) -> Limit | None:
    """The tighter of two composite limits, compared in watts at the phases the EV would use
    under both (`phases`, capped by any numberPhases). DC has no phases: amps are converted
    at the nominal battery voltage, as the physics does."""
    if a is None:
        return b
    if b is None:
        return a
    allowed = [p for p in (a.phases, b.phases) if p is not None]
    cap = None if dc or not allowed else min(allowed)
    used = phases if cap is None else min(phases, cap)

    def watts(limit: Limit) -> float:
        return limit.value if limit.unit is ChargingRateUnit.W else limit.value * voltage * used

    best = a if watts(a) <= watts(b) else b
    return Limit(best.value, best.unit, cap)


@dataclass(eq=False)
class Site:
    """A group of stations in one place. An EV that finds its charger busy takes any free
    connector of the site, or queues for one up to its patience, or leaves (turned away).
    On a private site (one car per charger) an EV only ever uses its own charger.

    A connector is free while idle and open to anyone: not reserved, not inoperative, not
    waiting for a remotely started driver. An EV whose tag holds a reservation at its station
    takes the reserved connector."""

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

    def unmark_free(self, connector: Connector) -> None:
        connector.free = False
        self._free.pop(connector, None)

    def arrive(self, ev: EvDemand, station: Station) -> None:
        """An EV arrives at `station`: plug in there, elsewhere on the site, queue, or leave."""
        if station._reservations and station.claim_reservation(ev):
            return
        for connector in station.connectors:
            if connector.free:
                del self._free[connector]
                connector.accept(ev)
                return
        if self.private:
            if any(c._faulted for c in station.connectors):
                # Its own charger is broken: the car cannot charge anywhere.
                self._turn_away(ev, self.env.now)
            else:
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
