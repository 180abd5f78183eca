"""The offline demand simulator: a scenario run as fast as the CPU allows, no network.

`simulate()` is the Python API behind `fleetsim simulate`: it builds the fleet on an unpaced
clock, records sessions and exact charging pieces through a sink, and returns plain numpy
tables and the load curve. Writing files is the output module's job, not this one's.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import simpy

from models.calendar import Calendar
from models.demand import EvDemand
from models.physics import ChargePlan
from models.vehicles import vehicle_names
from simulator.clock import OfflineClock, quiet_gc
from simulator.events import AcceptAll, MeterSample
from simulator.fleet import Fleet, FleetOptions
from simulator.loadcurve import bin_load, parse_resolution
from simulator.records import (
    SESSION_COLUMNS,
    UNRESTRICTED_COLUMN,
    PieceTable,
    SessionTable,
    SimulationResult,
)
from simulator.scenario import Scenario
from simulator.site_policy import (
    ControlledSink,
    controlled_sites,
    describe,
    install,
    unrestricted_energy_kwh,
)
from simulator.station import Connector, ConnectorStatus, Site, Transaction
from simulator.summary import summarise


class SessionRecorder:
    """Offline sink: turns station events into session rows and exact charging pieces.

    Times are shifted by `offset_s` (the warm-up) so that 0 is the reported start. Sessions
    count when they arrive within [0, horizon); energy counts wherever it falls in the window.
    For the sites in `controlled` each row also gets the energy its EV would have taken
    unrestricted in the same stay (records.UNRESTRICTED_COLUMN).
    """

    def __init__(
        self, offset_s: float, horizon_s: float, controlled: frozenset[int] = frozenset()
    ) -> None:
        self.offset_s = offset_s
        self.horizon_s = horizon_s
        self.controlled = controlled
        # Only allocated when some site is controlled: other runs pay one None check a row.
        self._unrestricted: array[float] | None = array("d") if controlled else None
        self.vehicle_names = vehicle_names()
        self._vehicle_index = {name: i for i, name in enumerate(self.vehicle_names)}
        # Rows and pieces as flat C doubles (SESSION_COLUMNS order; 7 per piece): a year of a
        # large network keeps millions of values, which as Python objects would cost ~10x the
        # memory and keep the garbage collector busy; numpy reads these buffers without a copy.
        self._rows = array("d")
        self._open_plans: dict[Connector, tuple[ChargePlan, float]] = {}
        self._peak_kw: dict[Connector, float] = {}
        self._ended: dict[Connector, Transaction] = {}
        self._pieces = array("d")
        self.turned_away: dict[int, int] = {}
        self.station_events = 0

    # -- StationSink ---------------------------------------------------------------------------

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        self.station_events += 1

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.station_events += 1
        self._peak_kw[connector] = 0.0

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        self.station_events += 1
        self._close_plan(connector, t)
        self._open_plans[connector] = (plan, t)

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        self.station_events += 1

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.station_events += 1
        self._close_plan(connector, t)
        self._ended[connector] = tx

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        self.station_events += 1
        tx = self._ended.pop(connector, None)
        self._add_row(connector, ev, tx, plug_out=t, now=t)

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        self.station_events += 1
        if 0.0 <= ev.arrival_s - self.offset_s < self.horizon_s:
            self.turned_away[site.index] = self.turned_away.get(site.index, 0) + 1

    # -- bookkeeping ---------------------------------------------------------------------------

    def _close_plan(self, connector: Connector, t: float) -> None:
        entry = self._open_plans.pop(connector, None)
        if entry is None:
            return
        plan, t0 = entry
        site = connector.station.site.index
        cap = plan.capacity_kwh
        shift = self.offset_s
        extend = self._pieces.extend
        peak = self._peak_kw.get(connector, 0.0)
        socs, times = plan.soc_knots, plan.t_knots
        for a, b, s_lo, s_hi, t_lo, t_hi in zip(
            plan.a, plan.b, socs, socs[1:], times, times[1:], strict=False
        ):
            start = t0 + t_lo
            if start >= t:
                break
            power_start = a + b * s_lo
            end = t0 + t_hi
            # Power is linear in SoC on a piece: its maximum is at one end of what was drawn.
            if power_start > peak:
                peak = power_start
            if b > 0.0:
                power_end = a + b * (s_hi if end <= t else plan.soc_at(t - t0))
                if power_end > peak:
                    peak = power_end
            if end > t:
                end = t
            if end > start and power_start > 0.0:
                extend((site, start - shift, end - shift, a, b, cap, s_lo))
        self._peak_kw[connector] = peak

    def _add_row(
        self,
        connector: Connector,
        ev: EvDemand,
        tx: Transaction | None,
        plug_out: float,
        now: float,
    ) -> None:
        """One session row; `plug_out` is NaN for a car still plugged in at `now` (the end)."""
        shift = self.offset_s
        arrival = ev.arrival_s - shift
        if not 0.0 <= arrival < self.horizon_s:
            return
        station = connector.station
        if self._unrestricted is not None:
            self._unrestricted.append(self._unrestricted_kwh(connector, ev, tx, now))
        head = (
            station.site.index,
            station.index,
            connector.evse_id,
            self._vehicle_index[ev.vehicle.name],
            arrival,
        )
        if tx is None:
            self._rows.extend(
                (
                    *head,
                    math.nan,
                    plug_out - shift,
                    math.nan,
                    math.nan,
                    ev.energy_wanted_kwh,
                    0.0,
                    0.0,
                    ev.soc_arrival,
                    ev.soc_arrival,
                )
            )
            return
        end = now if math.isnan(tx.stop_s) else min(now, tx.stop_s)
        soc_end = tx.soc_at(end)
        charge_start = tx.charge_start_s
        charge_end = math.nan
        if not math.isnan(charge_start):
            charge_end = (end if math.isnan(tx.charge_end_s) else tx.charge_end_s) - shift
        self._rows.extend(
            (
                *head,
                tx.plug_in_s - shift,
                plug_out - shift,
                charge_start - shift,
                charge_end,
                ev.energy_wanted_kwh,
                (soc_end - ev.soc_arrival) * ev.vehicle.battery_kwh,
                self._peak_kw.pop(connector, 0.0),
                ev.soc_arrival,
                soc_end,
            )
        )

    def _unrestricted_kwh(
        self, connector: Connector, ev: EvDemand, tx: Transaction | None, now: float
    ) -> float:
        station = connector.station
        if station.site.index not in self.controlled:
            return math.nan
        if tx is None:
            return 0.0
        end = now if math.isnan(tx.stop_s) else min(now, tx.stop_s)
        return unrestricted_energy_kwh(ev, station.spec.rating, end - tx.start_s)

    def finish(self, sites: list[Site], t_end: float) -> None:
        """Close what is still open at the end: plans up to t_end, sessions without plug-out."""
        for site in sites:
            site.expire_waiting(t_end)
            for connector in site.connectors:
                self._close_plan(connector, t_end)
                tx = connector.tx
                if tx is not None and connector.ev is not None:
                    self._add_row(connector, connector.ev, tx, plug_out=math.nan, now=t_end)

    def sessions(self, charger_ids: list[list[str]]) -> SessionTable:
        table = np.frombuffer(self._rows, dtype=float).reshape(-1, len(SESSION_COLUMNS))
        cols = {
            k: table[:, j].astype(dtype) for j, (k, dtype) in enumerate(SESSION_COLUMNS.items())
        }
        if self._unrestricted is not None:
            cols[UNRESTRICTED_COLUMN] = np.frombuffer(self._unrestricted, dtype=float).copy()
        order = np.lexsort((cols["evse_id"], cols["charger"], cols["site"], cols["arrival_s"]))
        cols = {k: v[order] for k, v in cols.items()}
        return SessionTable(cols, self.vehicle_names, charger_ids)

    def pieces(self) -> PieceTable:
        table = np.frombuffer(self._pieces, dtype=float).reshape(-1, 7)
        p = [np.ascontiguousarray(table[:, j]) for j in range(7)]
        return PieceTable(p[0].astype(np.int32), p[1], p[2], p[3], p[4], p[5], p[6])


def simulate(
    scenario: Scenario,
    *,
    days: float | None = None,
    seed: int | None = None,
    chargers: int | None = None,
    start: datetime | None = None,
    resolution: str | int = "15min",
    on_progress: Callable[[float, float], None] | None = None,
) -> SimulationResult:
    """Run a scenario offline and return its sessions, charging pieces, load curve and summary.

    Arguments override the scenario's own values. `on_progress(done_s, total_s)` is called as
    simulated time advances (for a progress bar).
    """
    updates: dict[str, object] = {}
    if seed is not None:
        updates["seed"] = seed
    if days is not None:
        updates["days"] = days
    if start is not None:
        updates["start"] = start
    if updates:
        scenario = scenario.model_copy(update=updates)
    if chargers is not None:
        scenario = scenario.rescaled(chargers)
    resolution_s = parse_resolution(resolution) if isinstance(resolution, str) else resolution

    start_utc = scenario.start_utc()
    warmup_s = scenario.warmup_days * 86400.0
    horizon_s = scenario.days * 86400.0
    env = simpy.Environment()
    origin = start_utc - timedelta(seconds=warmup_s)  # simulated time 0
    calendar = Calendar(origin, scenario.timezone)
    controlled = controlled_sites(scenario)
    recorder = SessionRecorder(offset_s=warmup_s, horizon_s=horizon_s, controlled=controlled)
    # Only a scenario with site control puts a sink in front of the recorder: the others keep
    # the direct path, event for event.
    sink = ControlledSink(recorder) if controlled else None
    fleet = Fleet(
        scenario, env, calendar, sink or recorder, AcceptAll(), FleetOptions(start_s=warmup_s)
    )
    if sink is not None:
        install(fleet, sink, origin)

    clock = OfflineClock(env)
    total = warmup_s + horizon_s
    progress = None if on_progress is None else (lambda t: on_progress(t, total))
    with quiet_gc():
        clock.run_until(total, progress)
    recorder.finish(fleet.sites, total)

    pieces = recorder.pieces()
    result = SimulationResult(
        scenario_name=scenario.name,
        seed=scenario.seed,
        start=start_utc,
        timezone=scenario.timezone,
        days=scenario.days,
        sites=describe(fleet, fleet.site_infos()) if controlled else fleet.site_infos(),
        sessions=recorder.sessions(fleet.charger_ids()),
        pieces=pieces,
        load=bin_load(pieces, len(fleet.sites), horizon_s, resolution_s, start_utc),
        turned_away=np.asarray(
            [recorder.turned_away.get(i, 0) for i in range(len(fleet.sites))], dtype=np.int64
        ),
        events_processed=clock.events_scheduled,
    )
    if fleet.fault_log is not None:
        names = [site.name for site in fleet.sites]
        result.faults = fleet.fault_log.summary(names, warmup_s, horizon_s)
    result.summary = summarise(result)
    return result
