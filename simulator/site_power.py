"""Site power during an online run: what each site draws from the grid, its peak, and how long
it spent above its grid limit, so a run's report can show whether load management held.

Power is tracked at every change of a charge plan. Within an AC plan power never rises (constant,
then tapering), so the value at a plan's start is the most the connector draws until its next
event, and the peak found this way is never below the true one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from simulator.station import Connector


@dataclass(slots=True)
class SitePower:
    """One site's draw: the running total, its peak, and the time spent over the limit."""

    name: str
    limit_w: float = math.inf
    power_w: float = 0.0
    peak_w: float = 0.0
    peak_at_s: float = 0.0
    over_since_s: float | None = None
    over_s: float = 0.0
    over_longest_s: float = 0.0
    over_worst_w: float = 0.0
    by_connector: dict[Connector, float] = field(default_factory=dict)

    def set(self, connector: Connector, power_w: float, t: float) -> None:
        old = self.by_connector.pop(connector, 0.0)
        if power_w > 0.0:
            self.by_connector[connector] = power_w
        # Re-summed rather than adjusted, so rounding never accumulates over a long run.
        total = self.power_w - old + power_w
        if abs(total) < 1e-6 or not self.by_connector:
            total = math.fsum(self.by_connector.values())
        self.power_w = total
        if total > self.peak_w:
            self.peak_w, self.peak_at_s = total, t
        # A tolerance of one watt per kW: limits pushed in whole watts meet float sums.
        over = total > self.limit_w * 1.001
        if over:
            self.over_worst_w = max(self.over_worst_w, total - self.limit_w)
            if self.over_since_s is None:
                self.over_since_s = t
        elif self.over_since_s is not None:
            self._close(t)

    def _close(self, t: float) -> None:
        assert self.over_since_s is not None
        span = t - self.over_since_s
        self.over_s += span
        self.over_longest_s = max(self.over_longest_s, span)
        self.over_since_s = None

    def summary(self, t_end: float) -> dict[str, Any]:
        if self.over_since_s is not None:
            self._close(t_end)
        return {
            "name": self.name,
            "grid_limit_kw": None if math.isinf(self.limit_w) else round(self.limit_w / 1000, 3),
            "peak_kw": round(self.peak_w / 1000, 3),
            "peak_at_s": round(self.peak_at_s, 1),
            "over_limit_s": round(self.over_s, 1),
            "over_limit_longest_s": round(self.over_longest_s, 1),
            "over_limit_worst_kw": round(self.over_worst_w / 1000, 3),
        }


class SitePowerMeter:
    """The draw of every site of a run, fed by the online sink's plan and transaction events."""

    def __init__(self, limits_w: dict[str, float]) -> None:
        self.sites: dict[str, SitePower] = {
            name: SitePower(name, limit) for name, limit in limits_w.items()
        }

    def planned(self, connector: Connector, power_w: float, t: float) -> None:
        site = connector.station.site.name
        entry = self.sites.get(site)
        if entry is None:
            entry = self.sites[site] = SitePower(site)
        entry.set(connector, power_w, t)

    def report(self, t_end: float) -> list[dict[str, Any]]:
        return [site.summary(t_end) for site in self.sites.values()]
