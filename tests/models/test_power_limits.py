"""Property tests of the power model under random charging profiles: a station driven by
profiles installed and cleared at random times never draws more than any limit, never delivers
more energy than the EV wanted, conserves energy (register = integral of power), and is
deterministic."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import simpy
from hypothesis import given, settings
from hypothesis import strategies as st

from models.demand import EvDemand
from models.physics import NOMINAL_DC_VOLTAGE_V, ChargePlan, CurrentType, EvseRating
from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    Limit,
    SchedulePeriod,
    limit_at,
)
from models.vehicles import CATALOGUE
from simulator.events import AcceptAll, MeterSample, NullSink
from simulator.station import MIN_AC_CURRENT_A, Connector, Site, Station, StationSpec, Transaction

P = ChargingProfilePurpose
RATINGS = [
    EvseRating(CurrentType.AC, 11.0, 3),
    EvseRating(CurrentType.AC, 22.0, 3),
    EvseRating(CurrentType.AC, 7.4, 1),
    EvseRating(CurrentType.DC, 50.0),
    EvseRating(CurrentType.DC, 150.0),
]
VEHICLES = list(CATALOGUE)
HORIZON_S = 40_000
# Every event that can change a limit happens at a whole second (arrivals, dwell times,
# schedule period starts, installation times); checks happen half a second off that grid, so
# the state they see is never caught between an event and its consequences.
CHECK_EVERY_S = 97


class PlanLog(NullSink):
    """Remembers every charge plan and transaction, per connector, in order."""

    def __init__(self) -> None:
        self.plans: list[tuple[int, int, float, ChargePlan]] = []  # (evse, tx seq, t, plan)
        self.transactions: list[Transaction] = []

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.transactions.append(tx)

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        self.plans.append((connector.evse_id, tx.seq, t, plan))

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        pass


@dataclass(frozen=True)
class Op:
    t: int
    profile: ChargingProfile | None  # None: clear every profile
    clear_id: int | None = None


@dataclass
class Case:
    rating: EvseRating
    connectors: int
    evs: list[EvDemand]
    ops: list[Op] = field(default_factory=list)


@st.composite
def schedules(draw: st.DrawFn, unit: ChargingRateUnit) -> ChargingSchedule:
    n = draw(st.integers(1, 3))
    gaps = draw(st.lists(st.integers(60, 7200), min_size=n - 1, max_size=n - 1))
    starts = [0]
    for g in gaps:
        starts.append(starts[-1] + g)
    top = 40.0 if unit is ChargingRateUnit.A else 60_000.0
    periods = tuple(
        SchedulePeriod(
            float(s),
            draw(st.floats(0.0, top, allow_nan=False).map(lambda x: round(x, 1))),
            draw(st.sampled_from([None, None, 1, 3])),
        )
        for s in starts
    )
    duration = draw(st.sampled_from([None, None, float(starts[-1] + 3600)]))
    return ChargingSchedule(unit, periods, duration_s=duration)


@st.composite
def profiles(draw: st.DrawFn, connectors: int) -> ChargingProfile:
    purpose = draw(st.sampled_from([P.TX, P.TX_DEFAULT, P.STATION_MAX]))
    unit = draw(st.sampled_from(list(ChargingRateUnit)))
    schedule = draw(schedules(unit))
    evse = (
        0
        if purpose is P.STATION_MAX
        else draw(st.integers(0 if purpose is P.TX_DEFAULT else 1, connectors))
    )
    absolute = purpose is P.STATION_MAX or draw(st.booleans())
    if absolute:
        start = float(draw(st.integers(0, HORIZON_S // 2)))
        schedule = ChargingSchedule(
            schedule.unit, schedule.periods, duration_s=schedule.duration_s, start_s=start
        )
    kind = ChargingProfileKind.ABSOLUTE if absolute else ChargingProfileKind.RELATIVE
    return ChargingProfile(
        draw(st.integers(1, 6)), draw(st.integers(0, 2)), purpose, kind, schedule, evse_id=evse
    )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    rating = draw(st.sampled_from(RATINGS))
    connectors = draw(st.integers(1, 3))
    evs = []
    for _ in range(draw(st.integers(1, 5))):
        car = draw(st.sampled_from(VEHICLES))
        soc0 = draw(st.floats(0.05, 0.8))
        target = draw(st.floats(soc0, 1.0))
        evs.append(
            EvDemand(
                arrival_s=float(draw(st.integers(0, HORIZON_S // 2))),
                vehicle=car,
                vehicle_index=0,
                soc_arrival=soc0,
                soc_target=target,
                energy_wanted_kwh=(target - soc0) * car.battery_kwh,
                dwell_s=float(draw(st.integers(600, HORIZON_S // 2))),
                leave_when_charged=False,
                handling_s=0.0,
                ac_taper_soc=draw(st.floats(0.6, 0.95)),
                patience_s=0.0,
                id_tag="TAG",
            )
        )
    evs.sort(key=lambda e: e.arrival_s)
    ops = []
    for _ in range(draw(st.integers(1, 8))):
        t = draw(st.integers(0, HORIZON_S))
        if draw(st.integers(0, 5)) == 0:
            ops.append(Op(t, None, draw(st.sampled_from([None, 1, 2, 3]))))
        else:
            ops.append(Op(t, draw(profiles(connectors))))
    ops.sort(key=lambda o: o.t)
    return Case(rating, connectors, evs, ops)


def _watts(limit: Limit, voltage: float, phases: int) -> float:
    """Power a composite limit allows at the phases actually in use."""
    if limit.unit is ChargingRateUnit.W:
        return limit.value
    return limit.value * voltage * phases


def _vehicle_w(ev: EvDemand, rating: EvseRating, phases: int) -> float:
    car = ev.vehicle
    if rating.kind is CurrentType.DC:
        return max(p for _, p in car.dc_curve) * 1000.0
    return car.ac_max_kw * 1000.0 / car.ac_phases * phases


def _rating_w(rating: EvseRating, phases: int) -> float:
    if rating.kind is CurrentType.DC:
        return rating.max_kw * 1000.0
    return rating.max_current_a * rating.voltage_v * phases


def run(case: Case, check: bool) -> list[tuple[Any, ...]]:
    """Drive the case; check the limits at every check time; return a trace of what happened."""
    env = simpy.Environment()
    log = PlanLog()
    site = Site(env, "p", 0, log)
    spec = StationSpec(case.rating, case.connectors, 30.0)
    station = Station(env, site, 0, "cs", spec, log, AcceptAll(), case.evs)
    dc = case.rating.kind is CurrentType.DC
    voltage = NOMINAL_DC_VOLTAGE_V if dc else case.rating.voltage_v

    def operator() -> Any:
        for op in case.ops:
            yield env.timeout(op.t - env.now)
            if op.profile is not None:
                station.install_profile(op.profile)
            else:
                station.clear_profiles(profile_id=op.clear_id)

    env.process(operator())
    t = 0.5
    while t < HORIZON_S + 5000:
        env.run(until=t)
        if check:
            _check_limits(station, voltage, dc)
        t += CHECK_EVERY_S
    env.run(until=HORIZON_S * 3)  # every EV leaves
    if check:
        _check_energy(log)
    return [
        (evse, seq, t0, plan.phases, tuple(plan.a), tuple(plan.b), tuple(plan.t_knots))
        for evse, seq, t0, plan in log.plans
    ] + [(tx.seq, tx.start_s, tx.stop_s, tx.meter_stop_wh) for tx in log.transactions]


def _check_limits(station: Station, voltage: float, dc: bool) -> None:
    now = station.env.now
    installed = station._profiles.profiles() if station._profiles is not None else ()
    caps = [p for p in installed if p.purpose is P.STATION_MAX]
    rest = [p for p in installed if p.purpose is not P.STATION_MAX]
    running = [c for c in station.connectors if c.tx is not None and c.tx.open]
    rating = station.spec.rating
    for c in running:
        tx = c.tx
        assert tx is not None
        sample = c.sample(now)
        phases = sample.phases if sample.phases else 1
        power = sample.power_w
        assert power >= 0.0
        bounds = [_rating_w(rating, phases), _vehicle_w(tx.ev, rating, phases)]
        default_phases = 1 if dc else min(rating.phases, tx.ev.vehicle.ac_phases)
        own = limit_at(now, c.evse_id, rest, tx.start_s, voltage, default_phases, tx_id=str(tx.seq))
        external = math.inf
        for limit, share in ((own, 1), (limit_at(now, 0, caps, None, voltage, 3), len(running))):
            if limit is None:
                continue
            if limit.phases is not None and not dc and power > 0.0:
                assert phases <= limit.phases  # numberPhases is obeyed
            external = min(external, _watts(limit, voltage, phases) / share)
        bounds.append(external)
        assert power <= min(bounds) * (1 + 1e-9) + 1e-6, (now, c.evse_id, power, bounds)
        if not dc and external < MIN_AC_CURRENT_A * voltage * phases * (1 - 1e-9):
            assert power == 0.0  # below 6 A per phase an AC EVSE pauses


def _check_energy(log: PlanLog) -> None:
    ends = {tx.seq: tx for tx in log.transactions}
    by_tx: dict[int, list[tuple[float, ChargePlan]]] = {}
    for _, seq, t0, plan in log.plans:
        by_tx.setdefault(seq, []).append((t0, plan))
    for seq, tx in ends.items():
        assert not tx.open
        delivered_wh = tx.meter_stop_wh - tx.meter_start_wh
        assert delivered_wh <= tx.ev.energy_wanted_kwh * 1000.0 + 1e-6
        assert delivered_wh >= -1e-9
        integral_wh = 0.0
        plans = by_tx.get(seq, [])
        for i, (t0, plan) in enumerate(plans):
            t1 = plans[i + 1][0] if i + 1 < len(plans) else tx.stop_s
            integral_wh += _integrate(plan, t1 - t0)
        assert math.isclose(integral_wh, delivered_wh, rel_tol=2e-3, abs_tol=1.0), (
            integral_wh,
            delivered_wh,
        )


def _integrate(plan: ChargePlan, span: float) -> float:
    """Wh drawn by a plan over its first `span` seconds, by the trapezoid rule on each piece
    (power is smooth within a piece, so a fine grid converges fast)."""
    if span <= 0.0:
        return 0.0
    edges = sorted({0.0, span, *(t for t in plan.t_knots if 0.0 < t < span)})
    total = 0.0
    for a, b in itertools.pairwise(edges):
        grid = np.linspace(a, b, 65)
        # Power on [a, b) belongs to the piece starting at a: sample just inside the ends.
        inner = np.clip(grid, a, np.nextafter(b, a))
        kw = np.array([plan.power_at(float(x)) for x in inner])
        total += float(np.trapezoid(kw, grid)) * 1000.0 / 3600.0
    return total


@settings(max_examples=60, deadline=None)
@given(cases())
def test_power_never_exceeds_a_limit_and_energy_is_conserved(case: Case) -> None:
    run(case, check=True)


@settings(max_examples=10, deadline=None)
@given(cases())
def test_a_run_is_deterministic(case: Case) -> None:
    assert run(case, check=False) == run(case, check=False)
