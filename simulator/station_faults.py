"""Station faults in a run: SimPy processes that fail connectors and stations' power as the
scenario's `faults` say, and a log of what they did for the summary.

They drive Station.fault_connector and Station.power_loss from the draws of models.faults, on
the simulated clock, online and offline alike. Each station's draws come from its own streams
(models.rng.site_seed(seed, site, "faults", index)), created only when faults are configured,
so demand and every other stream are untouched. Knows nothing of OCPP, sockets or files.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy

from models.faults import connector_faults, downtime_s, failure_times
from models.rng import site_seed
from simulator.scenario import ConnectorFaultsConfig, FaultsConfig, PowerLossConfig
from simulator.station import Station

HOURS_DECIMALS = 4


@dataclass
class FaultLog:
    """Every station fault of a run, in simulated seconds: connector faults as (site index,
    time) and, per connector, the intervals it was meant to be down (overlapping ones are one
    longer repair), power losses as (site index, time). A few tuples a fault: faults are rare.
    """

    connector_faults: list[tuple[int, float]] = field(default_factory=list)
    down: dict[tuple[int, int, int], list[tuple[float, float]]] = field(default_factory=dict)
    power_losses: list[tuple[int, float]] = field(default_factory=list)
    # Told of each fault as it happens, with its kind and a one-line description (an online
    # run logs and counts them there).
    listener: Callable[[str, str], None] | None = None

    def connector_fault(self, station: Station, evse_id: int, at_s: float, repair_s: float) -> None:
        if self.listener is not None:
            self.listener(
                "connector_fault",
                f"{station.charger_id} EVSE {evse_id} faulted for {repair_s:.0f} simulated s",
            )
        site = station.site.index
        self.connector_faults.append((site, at_s))
        key = (site, station.index, evse_id)
        self.down.setdefault(key, []).append((at_s, at_s + repair_s))

    def power_loss(self, station: Station, at_s: float) -> None:
        if self.listener is not None:
            self.listener("power_loss", f"{station.charger_id} lost power")
        self.power_losses.append((station.site.index, at_s))

    def summary(
        self, site_names: Sequence[str], start_s: float, horizon_s: float
    ) -> dict[str, Any]:
        """The summary's `faults` block over [start_s, start_s + horizon_s) of simulated time:
        connector faults and power losses (one per charger) that began in it, and the
        connector-hours spent Faulted inside it, for the network and per site."""
        end_s = start_s + horizon_s
        n = len(site_names)
        faults = [0] * n
        losses = [0] * n
        down = [0.0] * n
        for site, at in self.connector_faults:
            if start_s <= at < end_s:
                faults[site] += 1
        for site, at in self.power_losses:
            if start_s <= at < end_s:
                losses[site] += 1
        for (site, _, _), intervals in self.down.items():
            down[site] += downtime_s(intervals, start_s, end_s)

        def block(f: int, p: int, d: float) -> dict[str, Any]:
            return {
                "connector_faults": f,
                "power_losses": p,
                "connector_downtime_h": round(d / 3600.0, HOURS_DECIMALS) + 0.0,
            }

        return {
            **block(sum(faults), sum(losses), sum(down)),
            "sites": {
                name: block(faults[i], losses[i], down[i]) for i, name in enumerate(site_names)
            },
        }


def _applies(sites: Sequence[str] | None, site: str) -> bool:
    return sites is None or site in sites


def install_station_faults(
    env: simpy.Environment,
    stations: Sequence[Station],
    faults: FaultsConfig,
    seed: int,
    start_s: float = 0.0,
) -> FaultLog | None:
    """Start the fault processes of `stations` (one per station and kind of random fault, and
    one for the fixed power losses) and return their log; None when no station fault is
    configured. `start_s` is the simulated time of the scenario's start, from which fixed
    power-loss offsets count (offline: the end of the warm-up)."""
    if not faults.station_faults:
        return None
    log = FaultLog()
    cf, pl = faults.connector_faults, faults.power_loss
    fixed: list[Station] = []
    for station in stations:
        site = station.site.name
        # Two streams per station, so that enabling power loss shifts no connector fault.
        connector_seq, power_seq = site_seed(seed, site, "faults", station.index).spawn(2)
        if cf is not None and _applies(cf.sites, site):
            rng = np.random.default_rng(connector_seq)
            env.process(_connector_faults(env, station, cf, rng, log))
        if pl is not None and _applies(None if pl.site is None else [pl.site], site):
            if pl.mtbf is not None:
                rng = np.random.default_rng(power_seq)
                env.process(_random_power_losses(env, station, pl, rng, log))
            if pl.at:
                fixed.append(station)
    if pl is not None and fixed:
        env.process(_fixed_power_losses(env, fixed, pl, start_s, log))
    return log


def _connector_faults(
    env: simpy.Environment,
    station: Station,
    config: ConnectorFaultsConfig,
    rng: np.random.Generator,
    log: FaultLog,
) -> Generator[simpy.Event, Any, None]:
    evse_ids = [c.evse_id for c in station.connectors]
    if not evse_ids:
        return
    draws = connector_faults(
        rng, config.mtbf_s(), config.repair_s(), config.error_codes, evse_ids, start_s=env.now
    )
    for fault in draws:
        yield env.timeout(max(fault.at_s - env.now, 0.0))
        station.fault_connector(fault.evse_id, fault.error_code, fault.repair_s)
        log.connector_fault(station, fault.evse_id, fault.at_s, fault.repair_s)


def _random_power_losses(
    env: simpy.Environment,
    station: Station,
    config: PowerLossConfig,
    rng: np.random.Generator,
    log: FaultLog,
) -> Generator[simpy.Event, Any, None]:
    mtbf_s = config.mtbf_s()
    assert mtbf_s is not None
    downtime = config.downtime_s()
    for at in failure_times(rng, mtbf_s, math.inf, env.now):
        yield env.timeout(max(at - env.now, 0.0))
        station.power_loss(downtime)
        log.power_loss(station, at)


def _fixed_power_losses(
    env: simpy.Environment,
    stations: Sequence[Station],
    config: PowerLossConfig,
    start_s: float,
    log: FaultLog,
) -> Generator[simpy.Event, Any, None]:
    downtime = config.downtime_s()
    for offset in config.at_s():
        at = start_s + offset
        if at < env.now:
            continue
        yield env.timeout(max(at - env.now, 0.0))
        for station in stations:
            station.power_loss(downtime)
            log.power_loss(station, at)
