"""Offline site control: a scenario's static charging profiles and its load management policy,
run in-process by `fleetsim simulate`.

Static profiles are installed on every station of their site before the run starts. Load
management watches the site's station events through a sink wrapped around the recorder
(transaction started or ended, EV full) and answers each with new TxProfiles installed through
`Station.install_profile`, exactly the profiles the embedded CSMS pushes online
(simulator.csms.load_manager). Offline the controller knows what the CSMS cannot: each EV's
planned departure and the power it can draw. It builds and wires; it writes no files.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import simpy

from models.demand import EvDemand
from models.load_management import (
    LoadPolicy,
    SessionNeed,
    ac_min_power_w,
    allocate,
    round_down,
    safe_default_profile,
    safe_default_w,
    tx_profile,
)
from models.physics import (
    ChargePlan,
    ChargingCurve,
    CurrentType,
    EvseRating,
    charging_curve,
    plan_charge,
)
from simulator.events import MeterSample, StationSink
from simulator.fleet import Fleet
from simulator.records import SiteInfo
from simulator.scenario import LoadManagementConfig, Scenario
from simulator.station import Connector, ConnectorStatus, Site, Station, Transaction


def controlled_sites(scenario: Scenario) -> frozenset[int]:
    """Indexes of the sites with load management or static charging profiles."""
    return frozenset(
        i
        for i, site in enumerate(scenario.sites)
        if site.load_management is not None or site.charging_profiles
    )


def unrestricted_energy_kwh(ev: EvDemand, rating: EvseRating, duration_s: float) -> float:
    """What `ev` would have taken in `duration_s` from its arrival SoC on an EVSE of `rating`
    with no limit but the EVSE's and its own: the yardstick of "fully served"."""
    if not duration_s > 0.0:
        return 0.0
    curve = charging_curve(ev.vehicle, rating, None, ev.ac_taper_soc)
    plan = plan_charge(curve, ev.vehicle.battery_kwh, ev.soc_arrival, ev.soc_target)
    return plan.energy_at(duration_s)


def _peak_w(curve: ChargingCurve, soc: float, soc_end: float) -> float:
    """The most `curve` draws anywhere on [soc, soc_end] (piecewise linear: at an end or a
    knot), in W."""
    if soc >= soc_end:
        return 0.0
    best = max(curve.power_kw(soc), curve.power_kw(soc_end))
    for s, p in curve.knots:
        if soc < s < soc_end and p > best:
            best = p
    return best * 1000.0


@dataclass(slots=True, eq=False)
class _Running:
    """A session the controller shares the site's limit with."""

    key: str
    connector: Connector
    tx: Transaction
    curve: ChargingCurve  # unrestricted: the EVSE's rating and the vehicle's own limits only
    soc_end: float
    min_w: float
    departure_s: float
    # The EV's acceptance when it is the same all the way to soc_end (an AC charge that ends
    # before the taper): no SoC to work out at each reallocation.
    flat_w: float | None = None
    full: bool = False

    def need(self, now: float) -> SessionNeed:
        if self.full:
            max_w = 0.0
        else:
            peak = self.flat_w
            if peak is None:
                peak = _peak_w(self.curve, self.tx.soc_at(now), self.soc_end)
            # An EV in its taper may accept less than the least rate the EVSE can signal; it
            # still charges under that pilot, drawing only what it accepts.
            max_w = max(peak, self.min_w) if peak > 0.0 else 0.0
        return SessionNeed(self.key, max_w, self.min_w, self.tx.start_s, self.departure_s)


class SiteController:
    """One site's load management offline: keeps the site's draw under its grid limit by
    giving every running transaction a TxProfile from the policy's allocation.

    It reallocates whenever a transaction starts or ends and when an EV is full (it then needs
    nothing), after `reaction_s` (0: in the same simulated instant). Caps that fall are
    installed before caps that rise, as online, and a session whose cap did not change is
    left alone, so no charge is re-planned for nothing. Every station also carries a safe
    TxDefaultProfile (the limit split over all the site's connectors) that holds a new session
    until its TxProfile arrives.
    """

    __slots__ = (
        "_applied",
        "_due",
        "_running",
        "default_w",
        "env",
        "limit_w",
        "policy",
        "profiles_installed",
        "reaction_s",
        "reallocations",
        "site",
    )

    def __init__(self, env: simpy.Environment, site: Site, config: LoadManagementConfig) -> None:
        self.env = env
        self.site = site
        self.policy = LoadPolicy(config.policy)
        self.limit_w = config.grid_limit_kw * 1000.0
        self.reaction_s = config.reaction_s
        connectors = sum(len(station.connectors) for station in site.stations)
        self.default_w = safe_default_w(self.limit_w, connectors)
        self._running: dict[Connector, _Running] = {}
        self._applied: dict[Connector, float] = {}
        self._due = False
        self.reallocations = 0
        self.profiles_installed = 0

    def attach(self) -> None:
        """Install the safe TxDefaultProfile on every station of the site."""
        default = safe_default_profile(self.default_w)
        for station in self.site.stations:
            if not station.install_profile(default):
                raise RuntimeError(f"{station!r} refused the load manager's TxDefaultProfile")

    # -- station events --------------------------------------------------------------------

    def started(self, connector: Connector, tx: Transaction) -> None:
        ev = tx.ev
        rating = connector.station.spec.rating
        curve = charging_curve(ev.vehicle, rating, None, ev.ac_taper_soc)
        soc_end = max(min(ev.soc_target, curve.full_soc), ev.soc_arrival)
        min_w = (
            ac_min_power_w(curve.phases, rating.voltage_v) if curve.kind is CurrentType.AC else 0.0
        )
        key = f"{connector.station.charger_id}/{connector.evse_id}"
        departure = tx.plug_in_s + ev.dwell_s
        running = _Running(key, connector, tx, curve, soc_end, min_w, departure)
        if curve.kind is CurrentType.AC and soc_end > ev.soc_arrival:
            knee = curve.knots[1][0] if len(curve.knots) > 2 else 1.0
            if soc_end <= knee:
                running.flat_w = curve.knots[0][1] * 1000.0
        self._running[connector] = running
        self._changed()

    def full(self, connector: Connector) -> None:
        running = self._running.get(connector)
        if running is not None and not running.full:
            running.full = True
            self._changed()

    def ended(self, connector: Connector) -> None:
        if self._running.pop(connector, None) is not None:
            # The station dropped the TxProfile with the transaction.
            self._applied.pop(connector, None)
            self._changed()

    # -- allocation ------------------------------------------------------------------------

    def _changed(self) -> None:
        if self.reaction_s <= 0.0:
            self.reallocate()
        elif not self._due:
            # One pending reallocation sees every change made before it runs.
            self._due = True
            self.env.process(self._reallocate_later())

    def _reallocate_later(self) -> Generator[simpy.Event, Any, None]:
        yield self.env.timeout(self.reaction_s)
        self._due = False
        self.reallocate()

    def allocation(self) -> dict[Connector, float]:
        """The cap the policy gives each running session now, in W (rounded down)."""
        now = self.env.now
        running = list(self._running.values())
        shares = allocate(self.policy, self.limit_w, [r.need(now) for r in running])
        return {r.connector: round_down(shares[r.key]) for r in running}

    def reallocate(self) -> None:
        """Share the limit anew and install the TxProfiles that change, lower ones first."""
        self.reallocations += 1
        changes = [
            (watts, connector)
            for connector, watts in self.allocation().items()
            if self._applied.get(connector) != watts
        ]
        # Falling caps first: the site stays under its limit while the others rise.
        changes.sort(
            key=lambda c: (c[0] >= self._applied.get(c[1], self.default_w), c[1].station.index)
        )
        for watts, connector in changes:
            station = connector.station
            tx = self._running[connector].tx
            if not station.install_profile(tx_profile(connector.evse_id, watts, str(tx.seq))):
                raise RuntimeError(f"{station!r} refused a TxProfile for {tx.seq}")
            self._applied[connector] = watts
            self.profiles_installed += 1


class ControlledSink:
    """A StationSink in front of the recorder that also tells each controlled site's
    controller about its transactions; every event reaches the recorder unchanged."""

    __slots__ = ("_inner", "controllers")

    def __init__(self, inner: StationSink) -> None:
        self._inner = inner
        self.controllers: dict[Site, SiteController] = {}

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        self._inner.status_changed(connector, status, t)
        if status is ConnectorStatus.SUSPENDED_EV:
            controller = self.controllers.get(connector.station.site)
            if controller is not None:
                controller.full(connector)

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self._inner.transaction_started(connector, tx, t)
        controller = self.controllers.get(connector.station.site)
        if controller is not None:
            controller.started(connector, tx)

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        self._inner.charge_planned(connector, tx, plan, t)

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        self._inner.meter_sampled(connector, tx, sample, t)

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        self._inner.transaction_ended(connector, tx, t)
        controller = self.controllers.get(connector.station.site)
        if controller is not None:
            controller.ended(connector)

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        self._inner.session_ended(connector, ev, t)

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        self._inner.ev_turned_away(site, ev, t)


def _install_static(stations: list[Station], fleet: Fleet, origin: datetime) -> None:
    scenario = fleet.scenario
    for site_index, resolved in enumerate(fleet.resolved):
        configs = resolved.config.charging_profiles
        if not configs:
            continue
        mine = [s for s in stations if s.site.index == site_index]
        for j, config in enumerate(configs):
            where = f"sites[{site_index}].charging_profiles[{j}]"
            if config.evse > resolved.connectors:
                raise ValueError(
                    f"{where}.evse: the site's chargers have {resolved.connectors} EVSE(s), "
                    f"got {config.evse}"
                )
            profile = config.to_profile(j + 1, origin, scenario.timezone)
            for station in mine:
                if not station.install_profile(profile):
                    raise ValueError(
                        f"{where}: the chargers refuse it (stack_level {config.stack_level}; "
                        "too many profiles?)"
                    )


def install(fleet: Fleet, sink: ControlledSink, origin: datetime) -> dict[Site, SiteController]:
    """Install the scenario's static profiles and start the load management of every site
    that has it. `origin` is the instant of simulated time 0; `sink` must be the sink the
    fleet's stations report to. Raises ValueError for a profile the chargers refuse."""
    _install_static(fleet.stations, fleet, origin)
    for site, resolved in zip(fleet.sites, fleet.resolved, strict=True):
        config = resolved.config.load_management
        if config is None:
            continue
        controller = SiteController(fleet.env, site, config)
        controller.attach()
        sink.controllers[site] = controller
    return sink.controllers


def describe(fleet: Fleet, infos: list[SiteInfo]) -> list[SiteInfo]:
    """The sites' infos with their control (policy, grid limit, profiles) filled in."""
    out = []
    for info, resolved in zip(infos, fleet.resolved, strict=True):
        lm = resolved.config.load_management
        out.append(
            replace(
                info,
                load_policy=None if lm is None else lm.policy,
                grid_limit_kw=None if lm is None else lm.grid_limit_kw,
                charging_profiles=len(resolved.config.charging_profiles),
            )
        )
    return out
