"""Vehicle catalogue: battery, on-board AC charger and DC charging curve of each EV model.

Pure data plus weighted sampling. Sources: EV2Gym `ev2gym/data/ev_specs.json` (Dutch 2023
registrations, battery and AC/DC limits) and chargeprice/open-ev-data (DC curves).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Generic NMC cell at 2C, kW per kWh of capacity against SoC (INL Caldera). Used for models whose
# measured DC curve is not published; scaled by capacity and capped at the model's DC maximum.
GENERIC_DC_KW_PER_KWH: tuple[tuple[float, float], ...] = (
    (0.0, 1.75),
    (0.785, 2.42),
    (0.93, 0.595),
    (1.0, 0.06),
)


# eq=False: vehicles are catalogue singletons, compared and hashed by identity. Hashing every
# field (the DC curve included) on each curve-cache lookup cost more than the lookup saved.
@dataclass(frozen=True, slots=True, eq=False)
class Vehicle:
    """One EV model: what the battery holds and how fast it accepts AC and DC power.

    `dc_curve` is a piecewise-linear map from SoC (0..1, first knot at 0, last at 1) to the kW the
    car accepts on an unrestricted DC charger. `ac_phases` is the number of phases the on-board
    charger uses; on a 3-phase EVSE a 1-phase car draws on one phase only.
    """

    name: str
    battery_kwh: float
    ac_max_kw: float
    ac_phases: int
    dc_max_kw: float
    dc_curve: tuple[tuple[float, float], ...]
    weight: float = 1.0


def generic_dc_curve(battery_kwh: float, dc_max_kw: float) -> tuple[tuple[float, float], ...]:
    """The INL generic NMC curve scaled to a battery, capped at the car's DC maximum."""
    return _cap_curve(tuple((s, k * battery_kwh) for s, k in GENERIC_DC_KW_PER_KWH), dc_max_kw)


def _cap_curve(
    curve: tuple[tuple[float, float], ...], cap_kw: float
) -> tuple[tuple[float, float], ...]:
    """Clip a piecewise-linear curve at `cap_kw`, inserting the knots where it crosses the cap."""
    out: list[tuple[float, float]] = []
    for (s0, p0), (s1, p1) in itertools.pairwise(curve):
        if not out:
            out.append((s0, min(p0, cap_kw)))
        if (p0 - cap_kw) * (p1 - cap_kw) < 0:
            s_cross = s0 + (cap_kw - p0) * (s1 - s0) / (p1 - p0)
            out.append((s_cross, cap_kw))
        out.append((s1, min(p1, cap_kw)))
    return tuple(out)


def _ev(
    name: str,
    registrations: int,
    battery_kwh: float,
    ac_kw: float,
    ac_phases: int,
    dc_kw: float,
    dc_curve: tuple[tuple[float, float], ...] | None = None,
) -> Vehicle:
    curve = _cap_curve(dc_curve, dc_kw) if dc_curve else generic_dc_curve(battery_kwh, dc_kw)
    return Vehicle(name, battery_kwh, ac_kw, ac_phases, dc_kw, curve, float(registrations))


# Measured DC curves (kW at SoC), chargeprice/open-ev-data, as summarised in demand-defaults.md.
_TESLA_M3_CURVE = ((0.0, 180.0), (0.4, 195.0), (0.6, 110.0), (1.0, 12.0))
_ID3_CURVE = ((0.0, 100.0), (0.3, 100.0), (0.7, 50.0), (0.8, 50.0), (1.0, 20.0))
_KONA_CURVE = (
    (0.0, 70.0),
    (0.53, 77.0),
    (0.54, 57.0),
    (0.71, 57.0),
    (0.72, 38.0),
    (0.76, 38.0),
    (0.77, 25.0),
    (0.88, 25.0),
    (1.0, 8.0),
)

# The 13 best-registered EVs in the Netherlands in 2023 (EV2Gym ev_specs.json), weighted by
# registrations. AC phases follow the on-board charger: 11/22 kW three-phase, 7.4 and 3.6 kW
# single-phase, the e-Golf's 7.2 kW two-phase.
CATALOGUE: tuple[Vehicle, ...] = (
    _ev("Tesla Model 3", 45545, 57.5, 11.0, 3, 170.0, _TESLA_M3_CURVE),
    _ev("Kia Niro", 23105, 64.8, 11.0, 3, 80.0),
    _ev("Volkswagen ID.3", 19950, 58.0, 11.0, 3, 120.0, _ID3_CURVE),
    _ev("Hyundai Kona", 17752, 64.0, 11.0, 3, 77.0, _KONA_CURVE),
    _ev("Tesla Model Y", 16186, 57.5, 11.0, 3, 170.0, _TESLA_M3_CURVE),
    _ev("Skoda Enyaq", 16165, 58.0, 11.0, 3, 124.0),
    _ev("Peugeot 208", 14017, 46.3, 7.4, 1, 101.0),
    _ev("Renault Zoe", 14008, 52.0, 22.0, 3, 46.0),
    _ev("Volkswagen ID.4", 13283, 77.0, 11.0, 3, 135.0),
    _ev("Volvo XC40", 12520, 66.0, 11.0, 3, 135.0),
    _ev("Nissan Leaf", 11977, 39.0, 3.6, 1, 46.0),
    _ev("Tesla Model S", 10899, 75.0, 11.0, 3, 250.0),
    _ev("Volkswagen Golf", 10019, 32.0, 7.2, 2, 40.0),
)

# Depot vehicles (scheduled fleets, not part of the passenger mix).
# Van: SpiceEV example, 76 kWh, 11 kW on-board. Bus: SimBA example, curve 0 -> 450 kW,
# 0.8 -> 296, 0.9 -> 210, 1.0 -> 20 kW (battery size chosen in the 250-400 kWh range).
DELIVERY_VAN = _ev("Delivery van", 1, 76.0, 11.0, 3, 50.0)
CITY_BUS = _ev(
    "Battery bus", 1, 350.0, 22.0, 3, 450.0, ((0.0, 450.0), (0.8, 296.0), (0.9, 210.0), (1.0, 20.0))
)
DEPOT_VEHICLES: dict[str, Vehicle] = {"van": DELIVERY_VAN, "bus": CITY_BUS}

_BY_NAME: dict[str, Vehicle] = {v.name: v for v in (*CATALOGUE, *DEPOT_VEHICLES.values())}


def vehicle_by_name(name: str) -> Vehicle:
    """Look a vehicle up by its catalogue name; KeyError names the known ones."""
    try:
        return _BY_NAME[name]
    except KeyError:
        known = ", ".join(sorted(_BY_NAME))
        raise KeyError(f"unknown vehicle {name!r}; known: {known}") from None


def vehicle_names() -> list[str]:
    """Every name `vehicle_by_name` accepts."""
    return sorted(_BY_NAME)


class VehicleMix:
    """Draws vehicles from a weighted set of models (by default the 2023 Dutch registrations)."""

    __slots__ = ("_cumulative", "vehicles")

    def __init__(self, vehicles: Sequence[Vehicle], weights: Sequence[float] | None = None):
        if not vehicles:
            raise ValueError("a vehicle mix needs at least one vehicle")
        w = np.asarray([v.weight for v in vehicles] if weights is None else weights, dtype=float)
        if w.shape != (len(vehicles),) or np.any(w < 0) or w.sum() <= 0:
            raise ValueError("vehicle weights must be non-negative and not all zero")
        self.vehicles: tuple[Vehicle, ...] = tuple(vehicles)
        self._cumulative = np.cumsum(w / w.sum())

    @classmethod
    def default(cls) -> VehicleMix:
        return cls(CATALOGUE)

    def indices(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Indices into `self.vehicles` of n independent draws."""
        idx = np.searchsorted(self._cumulative, rng.random(n), side="right")
        return np.minimum(idx, len(self.vehicles) - 1)

    def mean_battery_kwh(self) -> float:
        p = np.diff(self._cumulative, prepend=0.0)
        return float(sum(pi * v.battery_kwh for pi, v in zip(p, self.vehicles, strict=True)))
