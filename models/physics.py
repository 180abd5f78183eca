"""Charging physics in closed form: how much power an EV draws, and how SoC and energy evolve.

Power is a piecewise-linear function of SoC (the vehicle's curve, clipped at every limit), so
on each piece dSoC/dt = (a + b*SoC) / capacity integrates exactly. A session is planned once per
limit change; nothing here ticks per second. Pure functions and plain data, no I/O, no SimPy.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

import numpy as np

from models.vehicles import Vehicle

SECONDS_PER_HOUR = 3600.0
NOMINAL_VOLTAGE_V = 230.0
# DC limits given in amps (a charging profile in A on a DC charger) are converted at this
# nominal battery voltage: a 400 V-class pack is what the catalogue's cars carry.
NOMINAL_DC_VOLTAGE_V = 400.0
# An EV ends its charge once the power it would accept falls below this share of its
# unrestricted peak: a linear taper to zero would otherwise never finish.
FULL_POWER_FRACTION = 0.05
_EPS = 1e-12


class CurrentType(StrEnum):
    """Whether an EVSE delivers alternating current (via the car's on-board charger) or DC."""

    AC = "ac"
    DC = "dc"


@dataclass(frozen=True, slots=True)
class EvseRating:
    """What one EVSE can deliver: AC or DC, its power rating, and (AC) the phases wired."""

    kind: CurrentType
    max_kw: float
    phases: int = 3
    voltage_v: float = NOMINAL_VOLTAGE_V

    @property
    def max_current_a(self) -> float:
        """AC current per phase at full rating (DC: at the nominal DC voltage)."""
        if self.kind is CurrentType.DC:
            return self.max_kw * 1000.0 / NOMINAL_DC_VOLTAGE_V
        return self.max_kw * 1000.0 / (self.voltage_v * self.phases)


@dataclass(frozen=True, slots=True)
class ChargingLimit:
    """A limit imposed from outside the EV, e.g. the active charging-profile period.

    `unit` "W" limits total power, "A" limits current per phase. `phases`, when given, caps the
    number of phases the EVSE may use (a profile's numberPhases).
    """

    value: float
    unit: Literal["W", "A"] = "W"
    phases: int | None = None


@dataclass(frozen=True, slots=True)
class ChargingCurve:
    """Power the EV draws as a piecewise-linear function of SoC, every limit already applied.

    `knots` are (soc, kW) pairs from SoC 0 to 1. `full_soc` is where the vehicle considers
    itself full (its own acceptance fell below FULL_POWER_FRACTION of its peak), independent of
    any external limit. `phases` is the number of phases in use (AC) and `voltage_v` the
    phase voltage, so meter values can report current per phase.
    """

    knots: tuple[tuple[float, float], ...]
    full_soc: float
    phases: int
    voltage_v: float
    kind: CurrentType

    def power_kw(self, soc: float) -> float:
        """Power drawn at a given SoC."""
        knots = self.knots
        for (s0, p0), (s1, p1) in itertools.pairwise(knots):
            if soc <= s1:
                if s1 <= s0:
                    return p1
                # No V2G: power is never negative, whatever the rounding at a knot says.
                return max(p0 + (p1 - p0) * (soc - s0) / (s1 - s0), 0.0)
        return knots[-1][1]

    @property
    def max_kw(self) -> float:
        return max(p for _, p in self.knots)


def _clip(knots: tuple[tuple[float, float], ...], cap: float) -> tuple[tuple[float, float], ...]:
    out: list[tuple[float, float]] = [(knots[0][0], min(knots[0][1], cap))]
    for (s0, p0), (s1, p1) in itertools.pairwise(knots):
        if (p0 - cap) * (p1 - cap) < 0:
            out.append((s0 + (cap - p0) * (s1 - s0) / (p1 - p0), cap))
        out.append((s1, min(p1, cap)))
    return tuple(out)


def _soc_where_power_falls_to(knots: tuple[tuple[float, float], ...], level: float) -> float:
    """The first SoC after the peak at which the curve drops to `level` (1.0 if it never does)."""
    peak_index = max(range(len(knots)), key=lambda i: knots[i][1])
    for (s0, p0), (s1, p1) in zip(knots[peak_index:], knots[peak_index + 1 :], strict=False):
        if p1 <= level:
            if p0 <= level or p0 == p1:
                return s0
            return s0 + (p0 - level) * (s1 - s0) / (p0 - p1)
    return 1.0


def charging_curve(
    vehicle: Vehicle,
    evse: EvseRating,
    limit: ChargingLimit | None = None,
    ac_taper_soc: float = 0.8,
) -> ChargingCurve:
    """The power curve an EV follows on an EVSE under an optional external limit.

    AC: the car uses min(EVSE phases, on-board phases, profile phases); current per phase is the
    least of the EVSE's, the on-board charger's and the profile's; a watt limit caps the total.
    DC: the vehicle's DC curve clipped at the EVSE rating and the limit.
    """
    if evse.kind is CurrentType.AC:
        return _ac_curve(vehicle, evse, limit, ac_taper_soc)
    return _dc_curve(vehicle, evse, limit)


def _ac_curve(
    vehicle: Vehicle, evse: EvseRating, limit: ChargingLimit | None, taper_soc: float
) -> ChargingCurve:
    # Built in closed form rather than by the generic clip: this runs once per AC session.
    phases = min(evse.phases, vehicle.ac_phases)
    if limit is not None and limit.phases is not None:
        phases = min(phases, max(limit.phases, 1))
    volts = evse.voltage_v
    vehicle_amps = vehicle.ac_max_kw * 1000.0 / (volts * vehicle.ac_phases)
    peak = min(evse.max_current_a, vehicle_amps) * volts * phases / 1000.0
    cap = peak
    if limit is not None:
        if limit.unit == "A":
            cap = min(cap, max(limit.value, 0.0) * volts * phases / 1000.0)
        else:
            cap = min(cap, max(limit.value, 0.0) / 1000.0)
    taper_soc = min(max(taper_soc, 0.0), 1.0 - 1e-6)
    # Two-stage model (ACN-Sim): constant to taper_soc, then linear to zero at full; a cap
    # below the peak moves the knee later, to where the taper line meets the cap.
    if peak <= 0.0:
        knee = 1.0
    elif cap >= peak:
        knee = taper_soc
    else:
        knee = 1.0 - (cap / peak) * (1.0 - taper_soc)
    knots = ((0.0, cap), (knee, cap), (1.0, 0.0)) if knee < 1.0 else ((0.0, cap), (1.0, cap))
    full_soc = 1.0 - FULL_POWER_FRACTION * (1.0 - taper_soc)
    return ChargingCurve(knots, full_soc, phases, volts, CurrentType.AC)


@functools.lru_cache(maxsize=4096)
def _dc_curve(vehicle: Vehicle, evse: EvseRating, limit: ChargingLimit | None) -> ChargingCurve:
    # DC curves depend on nothing drawn per session, so a fleet needs only a few: cache them.
    unrestricted = vehicle.dc_curve
    peak = max(p for _, p in unrestricted)
    cap = evse.max_kw
    if limit is not None:
        if limit.unit == "A":
            cap = min(cap, max(limit.value, 0.0) * NOMINAL_DC_VOLTAGE_V / 1000.0)
        else:
            cap = min(cap, max(limit.value, 0.0) / 1000.0)
    full_soc = _soc_where_power_falls_to(unrestricted, FULL_POWER_FRACTION * peak)
    return ChargingCurve(
        _clip(unrestricted, max(cap, 0.0)), full_soc, 1, NOMINAL_DC_VOLTAGE_V, CurrentType.DC
    )


def _piece_duration(a: float, b: float, cap_kwh: float, s0: float, s1: float) -> float:
    """Seconds to go from SoC s0 to s1 while power is a + b*SoC kW."""
    if s1 <= s0:
        return 0.0
    p0, p1 = a + b * s0, a + b * s1
    if p0 <= _EPS or p1 <= _EPS:
        return math.inf
    if abs(b) < _EPS:
        return (s1 - s0) * cap_kwh * SECONDS_PER_HOUR / a
    return cap_kwh * SECONDS_PER_HOUR / b * math.log(p1 / p0)


def _piece_soc(a: float, b: float, cap_kwh: float, s0: float, dt: float) -> float:
    """SoC after dt seconds on a piece starting at s0 (exact solution of dSoC/dt = p/C)."""
    if abs(b) < _EPS:
        return s0 + a * dt / (cap_kwh * SECONDS_PER_HOUR)
    return (s0 + a / b) * math.exp(b * dt / (cap_kwh * SECONDS_PER_HOUR)) - a / b


def piece_soc_array(
    a: np.ndarray, b: np.ndarray, cap_kwh: np.ndarray, s0: np.ndarray, dt: np.ndarray
) -> np.ndarray:
    """Vectorised `_piece_soc`: SoC after dt seconds on pieces p = a + b*SoC starting at s0."""
    flat = np.abs(b) < _EPS
    safe_b = np.where(flat, 1.0, b)
    grown = (s0 + a / safe_b) * np.exp(b * dt / (cap_kwh * SECONDS_PER_HOUR)) - a / safe_b
    linear = s0 + a * dt / (cap_kwh * SECONDS_PER_HOUR)
    return np.where(flat, linear, grown)


@dataclass(slots=True)
class ChargePlan:
    """The exact trajectory of one charge from `soc0` until `soc_end` or the plan is replaced.

    Piece i runs from time `t_knots[i]` to `t_knots[i+1]` (seconds after the plan started) with
    power a[i] + b[i]*SoC kW, starting at SoC `soc_knots[i]`. `duration_s` is when soc_end is
    reached; it is infinite when some limit stops the car first (power zero).
    """

    capacity_kwh: float
    soc0: float
    soc_end: float
    soc_knots: list[float]
    t_knots: list[float]
    a: list[float]
    b: list[float]
    phases: int
    voltage_v: float

    @property
    def duration_s(self) -> float:
        return self.t_knots[-1]

    def _locate(self, dt: float) -> int:
        t = self.t_knots
        for i in range(len(self.a)):
            if dt < t[i + 1]:
                return i
        return len(self.a) - 1

    def soc_at(self, dt: float) -> float:
        """SoC dt seconds after the plan started (held at soc_end once reached)."""
        if not self.a or dt <= 0.0:
            return self.soc0
        if dt >= self.t_knots[-1]:
            return self.soc_end
        i = self._locate(dt)
        soc = _piece_soc(
            self.a[i], self.b[i], self.capacity_kwh, self.soc_knots[i], dt - self.t_knots[i]
        )
        return min(max(soc, self.soc_knots[i]), self.soc_knots[i + 1])

    def energy_at(self, dt: float) -> float:
        """kWh delivered in the first dt seconds of the plan."""
        return (self.soc_at(dt) - self.soc0) * self.capacity_kwh

    def power_at(self, dt: float) -> float:
        """kW drawn dt seconds after the plan started (zero once soc_end is reached)."""
        if not self.a or dt < 0.0 or dt >= self.t_knots[-1]:
            return 0.0
        i = self._locate(dt)
        soc = self.soc_at(dt)
        return max(self.a[i] + self.b[i] * soc, 0.0)

    def time_to_energy(self, energy_kwh: float) -> float:
        """Seconds until `energy_kwh` has been delivered (inf if the plan never gets there)."""
        target = self.soc0 + energy_kwh / self.capacity_kwh
        if target <= self.soc0:
            return 0.0
        if target > self.soc_end + 1e-12:
            return math.inf
        for i in range(len(self.a)):
            if target <= self.soc_knots[i + 1]:
                return self.t_knots[i] + _piece_duration(
                    self.a[i], self.b[i], self.capacity_kwh, self.soc_knots[i], target
                )
        return self.t_knots[-1]


def plan_charge(
    curve: ChargingCurve, capacity_kwh: float, soc0: float, soc_target: float
) -> ChargePlan:
    """Plan a charge from soc0 towards soc_target (never past the vehicle's full point)."""
    soc_end = max(min(soc_target, curve.full_soc), soc0)
    soc_knots = [soc0]
    t_knots = [0.0]
    a_list: list[float] = []
    b_list: list[float] = []
    knots = curve.knots
    t = 0.0
    lo = soc0
    s0, p0 = knots[0]
    for s1, p1 in knots[1:]:
        if s1 > lo and s1 > s0:
            hi = s1 if s1 < soc_end else soc_end
            if hi > lo:
                b = (p1 - p0) / (s1 - s0)
                a = p0 - b * s0
                t += _piece_duration(a, b, capacity_kwh, lo, hi)
                a_list.append(a)
                b_list.append(b)
                soc_knots.append(hi)
                t_knots.append(t)
                lo = hi
                if t == math.inf or hi >= soc_end:
                    break
        s0, p0 = s1, p1
    if not a_list:
        soc_end = soc0
    return ChargePlan(
        capacity_kwh,
        soc0,
        soc_end,
        soc_knots,
        t_knots,
        a_list,
        b_list,
        curve.phases,
        curve.voltage_v,
    )
