"""Network-level faults of an online run, on the wall clock: connection drops with a mean time
between failures, outages of a site or of the whole fleet, and restarts of the embedded CSMS.

The injector only breaks things, through the links' fault hooks and the CSMS process; it logs
and counts every fault, and opens a recovery episode for each outage and restart. Station
faults (connector faults, power loss) are physical, on the simulated clock: the fleet's fault
processes drive them (models.faults).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from simulator.link import ChargerLink, LinkContext
from simulator.recovery import RecoveryTracker
from simulator.scenario import FaultsConfig, parse_duration, parse_offset

if TYPE_CHECKING:
    from simulator.run import CsmsProcess

log = logging.getLogger(__name__)


class FaultCounter(Protocol):
    """Where injected faults are counted (the run's metrics)."""

    def fault_injected(self, kind: str) -> None: ...


class FaultInjector:
    """Runs a scenario's wall-clock faults against the links of a run."""

    def __init__(
        self,
        faults: FaultsConfig,
        links: Sequence[ChargerLink],
        ctx: LinkContext,
        tracker: RecoveryTracker,
        counter: FaultCounter,
        csms: CsmsProcess | None = None,
        seed: int = 0,
    ) -> None:
        self.faults = faults
        self.links = links
        self.ctx = ctx
        self.tracker = tracker
        self.counter = counter
        self.csms = csms
        self.rng = random.Random(seed)

    def tasks(self) -> list[asyncio.Task[None]]:
        """Start every fault's task (the caller cancels them when the run ends)."""
        out: list[asyncio.Task[None]] = []
        create = asyncio.get_running_loop().create_task
        for at_s, duration_s, site in self.faults.wall_outages():
            out.append(create(self._outage(at_s, duration_s, site)))
        for restart in self.faults.csms_restarts:
            out.append(
                create(
                    self._csms_restart(
                        parse_offset(restart.at), parse_duration(restart.down), restart.signal
                    )
                )
            )
        drops = self.faults.connection_drops
        if drops is not None:
            out.append(create(self._drops(parse_duration(drops.mtbf), drops.sites)))
        return out

    def _in(self, site: str | None) -> list[ChargerLink]:
        if site is None:
            return list(self.links)
        return [link for link in self.links if link.station.site.name == site]

    async def _outage(self, at_s: float, duration_s: float, site: str | None) -> None:
        await asyncio.sleep(at_s)
        loop = asyncio.get_running_loop()
        scope = site or "fleet"
        links = self._in(site)
        self.ctx.network.down(site, loop.time() + duration_s)
        episode = self.tracker.begin("outage", scope, links)
        dropped = sum(1 for link in links if link.drop_connection())
        self.counter.fault_injected("outage")
        log.warning(
            "fault: network outage of %s for %.1f s (%d connections dropped)",
            scope,
            duration_s,
            dropped,
        )
        await asyncio.sleep(duration_s)
        self.tracker.restored(episode)
        log.warning("fault: network outage of %s over", scope)

    async def _csms_restart(self, at_s: float, down_s: float, signal: str) -> None:
        csms = self.csms
        if csms is None:
            return  # the scenario check refuses restarts without the embedded CSMS
        await asyncio.sleep(at_s)
        hard = signal == "kill"
        episode = self.tracker.begin("csms_restart", "fleet", self.links)
        await csms.kill(hard=hard)
        self.counter.fault_injected("csms_restart")
        log.warning(
            "fault: embedded CSMS %s, restarting in %.1f s", "killed" if hard else "stopped", down_s
        )
        await asyncio.sleep(down_s)
        await csms.restart()
        self.tracker.restored(episode)
        log.warning("fault: embedded CSMS listening again")

    async def _drops(self, mtbf_s: float, sites: list[str] | None) -> None:
        """Every charger loses its connection after exponentially distributed times of mean
        `mtbf_s`: together a Poisson process of rate n / mtbf, each drop hitting a charger
        drawn at random, which needs one timer instead of one per charger."""
        links = [link for link in self.links if sites is None or link.station.site.name in sites]
        if not links:
            return
        rng = self.rng
        mean_gap_s = mtbf_s / len(links)
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / mean_gap_s))
            link = links[rng.randrange(len(links))]
            if link.drop_connection():
                self.counter.fault_injected("connection_drop")
                log.info("fault: %s connection dropped", link.charger_id)
