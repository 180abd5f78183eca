"""Charging physics: limits respected, energy conserved, closed form equal to integration."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.physics import (
    ChargingLimit,
    CurrentType,
    EvseRating,
    charging_curve,
    piece_soc_array,
    plan_charge,
)
from models.vehicles import CATALOGUE, CITY_BUS, DEPOT_VEHICLES, Vehicle, vehicle_by_name

VEHICLES = [*CATALOGUE, *DEPOT_VEHICLES.values()]

vehicles = st.sampled_from(VEHICLES)
evses = st.one_of(
    st.builds(EvseRating, st.just(CurrentType.AC), st.floats(1.4, 43.0), st.sampled_from([1, 3])),
    st.builds(EvseRating, st.just(CurrentType.DC), st.floats(20.0, 400.0)),
)
limits = st.one_of(
    st.none(),
    st.builds(
        ChargingLimit, st.floats(0.0, 400_000.0), st.just("W"), st.sampled_from([None, 1, 3])
    ),
    st.builds(ChargingLimit, st.floats(0.0, 80.0), st.just("A"), st.sampled_from([None, 1, 3])),
)
socs = st.floats(0.0, 0.99)


def _limit_kw(limit: ChargingLimit | None, evse: EvseRating, phases: int) -> float:
    if limit is None:
        return math.inf
    if limit.unit == "W":
        return limit.value / 1000
    volts = evse.voltage_v if evse.kind is CurrentType.AC else 400.0
    return limit.value * volts * (phases if evse.kind is CurrentType.AC else 1) / 1000


@settings(max_examples=300, deadline=None)
@given(vehicles, evses, limits, st.floats(0.7, 0.9))
def test_power_never_exceeds_any_limit(
    vehicle: Vehicle, evse: EvseRating, limit: ChargingLimit | None, taper: float
) -> None:
    curve = charging_curve(vehicle, evse, limit, taper)
    vehicle_max = vehicle.ac_max_kw if evse.kind is CurrentType.AC else vehicle.dc_max_kw
    bound = min(evse.max_kw, vehicle_max, _limit_kw(limit, evse, curve.phases))
    for soc in np.linspace(0, 1, 101):
        assert 0.0 <= curve.power_kw(float(soc)) <= bound + 1e-9
    if evse.kind is CurrentType.AC:
        assert curve.phases <= min(evse.phases, vehicle.ac_phases)


@settings(max_examples=200, deadline=None)
@given(vehicles, evses, limits, socs, socs)
def test_plan_conserves_energy_and_respects_battery(
    vehicle: Vehicle, evse: EvseRating, limit: ChargingLimit | None, soc0: float, extra: float
) -> None:
    target = min(soc0 + extra, 1.0)
    curve = charging_curve(vehicle, evse, limit)
    plan = plan_charge(curve, vehicle.battery_kwh, soc0, target)
    wanted = max(target - soc0, 0.0) * vehicle.battery_kwh
    horizon = plan.duration_s if math.isfinite(plan.duration_s) else 48 * 3600.0
    times = np.linspace(0.0, horizon, 2001)
    energy = np.array([plan.energy_at(float(t)) for t in times])
    power = np.array([plan.power_at(float(t)) for t in times])
    # The energy register never decreases and never delivers more than was wanted.
    assert np.all(np.diff(energy) >= -1e-9)
    assert energy[-1] <= wanted + 1e-6
    assert np.all(power <= curve.max_kw + 1e-9)
    # Power x time = energy: the closed form agrees with integrating the power it reports.
    integrated = float(np.sum((power[1:] + power[:-1]) / 2 * np.diff(times))) / 3600
    assert integrated == pytest.approx(energy[-1], rel=2e-3, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(vehicles, evses, socs, st.floats(0.01, 1.0))
def test_time_to_energy_inverts_energy_at(
    vehicle: Vehicle, evse: EvseRating, soc0: float, fraction: float
) -> None:
    plan = plan_charge(charging_curve(vehicle, evse), vehicle.battery_kwh, soc0, 1.0)
    if not plan.a or not math.isfinite(plan.duration_s):
        return
    t = plan.duration_s * fraction
    assert plan.time_to_energy(plan.energy_at(t)) == pytest.approx(t, rel=1e-6, abs=1e-3)


def test_single_phase_car_on_three_phase_16a_draws_one_phase() -> None:
    peugeot = vehicle_by_name("Peugeot 208")  # 7.4 kW on one phase (32 A)
    evse = EvseRating(CurrentType.AC, 11.04, 3)
    limited = charging_curve(peugeot, evse, ChargingLimit(16.0, "A"))
    assert limited.phases == 1
    assert limited.power_kw(0.2) == pytest.approx(3.68, abs=0.01)
    # Unlimited, the 16 A per phase of an 11 kW EVSE still caps the single phase it uses.
    assert charging_curve(peugeot, evse).power_kw(0.2) == pytest.approx(3.68, abs=0.01)
    tesla = vehicle_by_name("Tesla Model 3")
    # A three-phase car under the same limit uses all three phases, up to its own 11 kW.
    assert charging_curve(tesla, evse, ChargingLimit(16.0, "A")).power_kw(0.2) == pytest.approx(
        11.0, abs=0.01
    )
    assert charging_curve(tesla, evse, ChargingLimit(8.0, "A")).power_kw(0.2) == pytest.approx(
        5.52, abs=0.01
    )


def test_pilot_below_maximum_moves_the_taper_later() -> None:
    car = vehicle_by_name("Tesla Model 3")
    evse = EvseRating(CurrentType.AC, 11.04, 3)
    tsoc, pilot = 0.8, 5.52
    curve = charging_curve(car, evse, ChargingLimit(pilot * 1000, "W"), ac_taper_soc=tsoc)
    expected = tsoc + (pilot - 11.0) / 11.0 * (tsoc - 1)  # ACN-Sim's rule; car max 11 kW
    knee = [s for s, p in curve.knots if p == pytest.approx(pilot)][-1]
    assert knee == pytest.approx(expected, abs=1e-9)


def test_ac_taper_follows_the_exponential_solution() -> None:
    car = vehicle_by_name("Volkswagen ID.3")
    curve = charging_curve(car, EvseRating(CurrentType.AC, 11.04, 3), ac_taper_soc=0.8)
    plan = plan_charge(curve, car.battery_kwh, 0.8, 0.95)
    tau = car.battery_kwh * 0.2 / 11.0 * 3600  # seconds: the car's own 11 kW is the peak
    t = 1800.0
    assert plan.soc_at(t) == pytest.approx(1 - 0.2 * math.exp(-t / tau), rel=1e-9)


def test_zero_limit_suspends_and_a_plan_never_completes() -> None:
    car = vehicle_by_name("Kia Niro")
    curve = charging_curve(car, EvseRating(CurrentType.AC, 22.0, 3), ChargingLimit(0.0))
    plan = plan_charge(curve, car.battery_kwh, 0.3, 0.9)
    assert plan.power_at(0.0) == 0.0
    assert math.isinf(plan.duration_s)
    assert plan.energy_at(10 * 3600) == 0.0


def test_dc_curve_clipped_at_charger_and_full_point() -> None:
    curve = charging_curve(CITY_BUS, EvseRating(CurrentType.DC, 150.0))
    assert curve.max_kw == pytest.approx(150.0)
    assert curve.power_kw(0.95) == pytest.approx(115.0)  # 210 -> 20 kW between 0.9 and 1.0
    assert 0.99 < curve.full_soc <= 1.0


@settings(max_examples=100, deadline=None)
@given(vehicles, evses, socs, st.floats(0.0, 1.0))
def test_vectorised_piece_soc_matches_the_plan(
    vehicle: Vehicle, evse: EvseRating, soc0: float, fraction: float
) -> None:
    plan = plan_charge(charging_curve(vehicle, evse), vehicle.battery_kwh, soc0, 1.0)
    if not plan.a or not math.isfinite(plan.duration_s):
        return
    t = plan.duration_s * fraction
    i = max(k for k in range(len(plan.a)) if plan.t_knots[k] <= t)
    got = piece_soc_array(
        np.array([plan.a[i]]),
        np.array([plan.b[i]]),
        np.array([plan.capacity_kwh]),
        np.array([plan.soc_knots[i]]),
        np.array([t - plan.t_knots[i]]),
    )
    assert float(got[0]) == pytest.approx(plan.soc_at(t), abs=1e-9)
