"""Columnar records of what an offline run produced: sessions, charging pieces, sites.

Plain numpy columns so that a notebook can wrap them in a DataFrame and the output writers can
work vectorised. Filled by the offline recorder; read by the load-curve, summary and writers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """One site of the simulated network: its name, archetype and installed capacity."""

    name: str
    archetype: str
    chargers: int
    connectors: int
    installed_kw: float  # sum of EVSE ratings
    # Offline site control (scenario `load_management` / `charging_profiles`): the policy
    # sharing the grid limit (None: no load management) and the static profiles installed.
    load_policy: str | None = None
    grid_limit_kw: float | None = None
    charging_profiles: int = 0

    @property
    def controlled(self) -> bool:
        """Whether anything but the chargers' ratings limits the site's power."""
        return self.load_policy is not None or self.charging_profiles > 0


# Column name -> numpy dtype of the sessions table. Times are seconds after the run's start;
# NaN where a session never reached that point (e.g. charge_start of a session that was
# refused authorisation).
SESSION_COLUMNS: dict[str, str] = {
    "site": "i4",  # index into SimulationResult.sites
    "charger": "i4",  # index of the charger within its site
    "evse_id": "i2",
    "vehicle": "i2",  # index into SessionTable.vehicle_names
    "arrival_s": "f8",
    "plug_in_s": "f8",
    "plug_out_s": "f8",
    "charge_start_s": "f8",
    "charge_end_s": "f8",
    "energy_wanted_kwh": "f8",
    "energy_delivered_kwh": "f8",
    "max_power_kw": "f8",
    "soc_arrival": "f8",
    "soc_departure": "f8",
}
# An extra column, present only when some site is controlled (see SiteInfo.controlled): the
# energy the session's EV would have taken in the same stay with no limit but its EVSE's
# rating and its own (NaN on uncontrolled sites). The summary's "fully served" rests on it.
UNRESTRICTED_COLUMN = "energy_unrestricted_kwh"


@dataclass(slots=True)
class SessionTable:
    """Every finished charging session, one row per session, sorted by arrival then site."""

    columns: dict[str, np.ndarray]
    vehicle_names: list[str]
    charger_ids: list[list[str]]  # per site, per charger index: the charger's identity

    def __len__(self) -> int:
        return int(self.columns["arrival_s"].shape[0])

    @classmethod
    def empty(cls, vehicle_names: list[str], charger_ids: list[list[str]]) -> SessionTable:
        cols = {k: np.empty(0, dtype=t) for k, t in SESSION_COLUMNS.items()}
        return cls(cols, vehicle_names, charger_ids)


@dataclass(slots=True)
class PieceTable:
    """Charging pieces: intervals during which one connector drew a + b*SoC kW.

    Piece k runs from `t0_s[k]` to `t1_s[k]` (seconds after the run's start), starting at SoC
    `soc0[k]` on a battery of `capacity_kwh[k]`; SoC follows the exact solution of
    dSoC/dt = (a + b*SoC) / capacity (see models.physics.piece_soc_array), so the energy drawn
    between two instants of the piece is capacity * (SoC(t) - SoC(t')).
    """

    site: np.ndarray  # i4
    t0_s: np.ndarray
    t1_s: np.ndarray
    a: np.ndarray
    b: np.ndarray
    capacity_kwh: np.ndarray
    soc0: np.ndarray

    def __len__(self) -> int:
        return int(self.t0_s.shape[0])


@dataclass(slots=True)
class LoadCurve:
    """Average kW per site over consecutive intervals of `resolution_s` from the run's start."""

    start: datetime
    resolution_s: int
    site_kw: np.ndarray  # shape (n_sites, n_intervals)

    @property
    def total_kw(self) -> np.ndarray:
        return self.site_kw.sum(axis=0)

    @property
    def n_intervals(self) -> int:
        return int(self.site_kw.shape[1])


@dataclass(slots=True)
class SimulationResult:
    """Everything an offline run produced, ready for the writers or a notebook."""

    scenario_name: str
    seed: int
    start: datetime
    timezone: str
    days: float
    sites: list[SiteInfo]
    sessions: SessionTable
    pieces: PieceTable
    load: LoadCurve
    turned_away: np.ndarray  # per site: EVs that found no free connector within their patience
    events_processed: int = 0
    summary: dict[str, object] = field(default_factory=dict)
    # The summary's `faults` block (station_faults.FaultLog.summary) when the scenario has
    # station faults; None otherwise, and the summary has no such block.
    faults: dict[str, Any] | None = None

    @property
    def horizon_s(self) -> float:
        return self.days * 86400.0
