"""The chargers of a scenario as SimPy stations, each fed by its own seeded demand stream.

Builds sites and stations from a validated scenario; a charger's identity and random streams
derive only from (seed, site name, index within the site), so the fleet is the same however it
is split or rescaled elsewhere. Builds and wires; does not run the clock or write files.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import simpy

from models.calendar import Calendar
from models.demand import DemandStream, SiteDayFactors
from models.rng import charger_streams
from models.vehicles import VehicleMix
from simulator.events import Authorizer, StationSink
from simulator.records import SiteInfo
from simulator.scenario import ResolvedSite, Scenario, resolve_site
from simulator.station import Site, Station, StationSpec
from simulator.station_faults import FaultLog, install_station_faults


def charger_id(pattern: str, site: str, index: int) -> str:
    """The identity of charger `index` (0-based) of a site; ids count from 1."""
    return pattern.format(site=site, index=index + 1)


@dataclass(frozen=True, slots=True)
class FleetOptions:
    """How the stations are built for a particular clock (offline or online)."""

    meter_interval_s: float | None = None
    # Simulated time of the scenario's start (offline: the end of the warm-up), from which
    # fixed fault offsets count.
    start_s: float = 0.0


class Fleet:
    """The sites and stations of one scenario on one SimPy environment."""

    def __init__(
        self,
        scenario: Scenario,
        env: simpy.Environment,
        calendar: Calendar,
        sink: StationSink,
        authorizer: Authorizer,
        options: FleetOptions | None = None,
        owns: Callable[[int, int], bool] | None = None,
    ) -> None:
        """`owns(site_index, charger_index)` selects the chargers this process runs (a shard);
        by default all of them."""
        options = options or FleetOptions()
        self.scenario = scenario
        self.env = env
        self.calendar = calendar
        self.mix: VehicleMix = scenario.vehicle_mix()
        self.resolved: list[ResolvedSite] = [resolve_site(s) for s in scenario.sites]
        self.sites: list[Site] = []
        self.stations: list[Station] = []
        for site_index, resolved in enumerate(self.resolved):
            site = Site(env, resolved.name, site_index, sink, private=resolved.private)
            self.sites.append(site)
            spec = StationSpec(
                rating=resolved.rating,
                connectors=resolved.connectors,
                unplug_delay_s=resolved.config.charger.unplug_delay_s,
                meter_interval_s=options.meter_interval_s,
            )
            day_factor = self._day_factor(resolved)
            for index in range(resolved.config.chargers):
                if owns is not None and not owns(site_index, index):
                    continue
                streams = charger_streams(scenario.seed, resolved.name, index)
                demand = DemandStream(resolved.params, calendar, streams, self.mix, day_factor)
                cid = charger_id(scenario.charger_id_pattern, resolved.name, index)
                station = Station(
                    env, site, index, cid, spec, sink, authorizer, demand, rng=streams.misc
                )
                self.stations.append(station)
        # Station faults (connector faults, power loss) when the scenario has them; their
        # streams exist only then, so a scenario without faults draws exactly as before.
        self.fault_log: FaultLog | None = install_station_faults(
            env, self.stations, scenario.faults, scenario.seed, options.start_s
        )

    def _day_factor(self, resolved: ResolvedSite) -> Callable[[int], float] | None:
        k = getattr(resolved.params, "overdispersion_k", None)
        if k is None:
            return None
        return SiteDayFactors(self.scenario.seed, resolved.name, k)

    def site_infos(self) -> list[SiteInfo]:
        """Name, archetype and installed capacity of every site (all chargers, not the shard)."""
        return [
            SiteInfo(
                name=r.name,
                archetype=r.archetype.name,
                chargers=r.config.chargers,
                connectors=r.config.chargers * r.connectors,
                installed_kw=r.config.chargers * r.connectors * r.rating.max_kw,
            )
            for r in self.resolved
        ]

    def charger_ids(self) -> list[list[str]]:
        """Every charger id, per site, by charger index."""
        pattern = self.scenario.charger_id_pattern
        return [
            [charger_id(pattern, r.name, i) for i in range(r.config.chargers)]
            for r in self.resolved
        ]
