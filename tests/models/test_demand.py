"""Demand streams and archetype parameters: invariants, determinism, validation, depots."""

from __future__ import annotations

import itertools
from dataclasses import astuple
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

import models.demand as demand_module
from models.archetypes import (
    ARCHETYPES,
    DC_FAST,
    DEPOT_BUS,
    DEPOT_VAN,
    HOME,
    WORKPLACE,
    DemandParams,
    DepotParams,
    UniformHours,
    get_archetype,
    with_overrides,
)
from models.calendar import Calendar
from models.demand import DemandStream, EvDemand, SiteDayFactors
from models.rng import charger_streams
from models.vehicles import DEPOT_VEHICLES, VehicleMix

AMS = ZoneInfo("Europe/Amsterdam")
MIX = VehicleMix.default()
DAY = 86400.0


def _calendar(start: datetime | None = None) -> Calendar:
    return Calendar(start or datetime(2025, 3, 3, 7, 30, tzinfo=AMS), "Europe/Amsterdam")


def _stream(
    params: DemandParams | DepotParams,
    seed: int = 1,
    site: str = "site",
    index: int = 0,
    calendar: Calendar | None = None,
    block_days: int = 7,
) -> DemandStream:
    k = getattr(params, "overdispersion_k", None)
    factors = SiteDayFactors(seed, site, k) if k else None
    return DemandStream(
        params,
        calendar or _calendar(),
        charger_streams(seed, site, index),
        MIX,
        factors,
        block_days,
    )


def _until(stream: DemandStream, t_end: float) -> list[EvDemand]:
    return list(itertools.takewhile(lambda ev: ev.arrival_s < t_end, stream))


def _check_invariants(evs: list[EvDemand], params: DemandParams | DepotParams) -> None:
    arrivals = [ev.arrival_s for ev in evs]
    assert arrivals == sorted(arrivals)
    for ev in evs:
        assert ev.arrival_s >= 0.0
        assert params.min_soc_arrival - 1e-12 <= ev.soc_arrival < ev.soc_target <= 1.0
        want = (ev.soc_target - ev.soc_arrival) * ev.vehicle.battery_kwh
        assert ev.energy_wanted_kwh == pytest.approx(want, rel=1e-12, abs=1e-12)
        assert ev.energy_wanted_kwh > 0.0
        assert ev.dwell_s > 0.0
        assert ev.patience_s == params.patience_min * 60.0
        assert len(ev.id_tag) == 16 and int(ev.id_tag, 16) >= 0
        assert 0.0 < ev.ac_taper_soc <= 1.0
        if isinstance(params, DemandParams):
            assert MIX.vehicles[ev.vehicle_index] is ev.vehicle
            assert params.soc_target_min <= ev.soc_target <= params.soc_target_max
            assert params.ac_taper_soc_min <= ev.ac_taper_soc <= params.ac_taper_soc_max
        else:
            assert ev.vehicle is DEPOT_VEHICLES[params.vehicle] and ev.vehicle_index == 0


@settings(max_examples=30, deadline=None)
@given(
    name=st.sampled_from(sorted(ARCHETYPES)),
    seed=st.integers(0, 2**63),
    index=st.integers(0, 100_000),
    start=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2026, 12, 31), timezones=st.just(UTC)
    ),
    block_days=st.integers(1, 10),
)
def test_ev_demand_invariants(
    name: str, seed: int, index: int, start: datetime, block_days: int
) -> None:
    params = ARCHETYPES[name].params
    cal = Calendar(start, "Europe/Amsterdam")
    evs = _until(_stream(params, seed, name, index, cal, block_days), 40 * DAY)
    assert evs, "40 days of any archetype bring at least one EV"
    _check_invariants(evs, params)


@pytest.mark.parametrize("name", sorted(ARCHETYPES))
def test_same_key_gives_identical_sequence(name: str) -> None:
    params = ARCHETYPES[name].params
    a = [astuple(ev) for ev in _until(_stream(params, 5, name, 2), 60 * DAY)]
    b = [astuple(ev) for ev in _until(_stream(params, 5, name, 2), 60 * DAY)]
    assert a == b and len(a) > 10
    other_index = [astuple(ev) for ev in _until(_stream(params, 5, name, 3), 60 * DAY)]
    other_seed = [astuple(ev) for ev in _until(_stream(params, 6, name, 2), 60 * DAY)]
    assert other_index != a
    assert other_seed != a


def test_small_and_large_block_paths_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    # The per-block mapping runs in plain Python for small blocks and in numpy for large ones;
    # both must give the very same EVs, or results would hinge on a performance threshold.
    for params in (HOME, WORKPLACE, DC_FAST):
        runs = []
        for threshold in (0, 10**9):
            monkeypatch.setattr(demand_module, "_SMALL_BLOCK", threshold)
            runs.append([astuple(ev) for ev in _until(_stream(params, 9, "s", 1), 90 * DAY)])
        assert runs[0] == runs[1]


def test_stream_leaves_misc_alone() -> None:
    streams = charger_streams(1, "s", 0)
    before = streams.misc.bit_generator.state
    stream = DemandStream(HOME, _calendar(), streams, MIX)
    _until(stream, 30 * DAY)
    assert streams.misc.bit_generator.state == before


def test_first_arrivals_are_not_before_start() -> None:
    # Day 0 began 19 h before the start; its earlier arrivals are dropped, later ones kept.
    cal = _calendar(datetime(2025, 3, 4, 19, tzinfo=AMS))
    evs = _until(_stream(DC_FAST, calendar=cal), DAY)
    assert evs and evs[0].arrival_s >= 0.0
    assert any(ev.arrival_s < 5 * 3600 for ev in evs)


def test_when_charged_override_sets_flags() -> None:
    params = with_overrides(DC_FAST, {"departure": "when_charged", "handling_min": 4})
    evs = _until(_stream(params), 2 * DAY)
    assert evs and all(ev.leave_when_charged and ev.handling_s == 240.0 for ev in evs)
    assert not any(ev.leave_when_charged for ev in _until(_stream(DC_FAST), 2 * DAY))


def test_zero_rate_site_stops_instead_of_searching_forever() -> None:
    assert list(_stream(with_overrides(HOME, {"sessions_per_charger_day": 0}))) == []


def test_fallback_day_factor_is_drawn_per_charger() -> None:
    # Without a SiteDayFactors the charger still gets negative-binomial day counts.
    cal = _calendar(datetime(2025, 1, 6, tzinfo=AMS))
    stream = DemandStream(DC_FAST, cal, charger_streams(2, "s", 0), MIX)
    days = np.array([cal.day_of(ev.arrival_s) for ev in _until(stream, 400 * DAY)])
    counts = np.bincount(days, minlength=400)[:400]
    # NB(mean 8, k 4) has variance/mean 3; Poisson 1. 400 days put the estimate within ~0.4.
    assert counts.var() / counts.mean() > 1.8


# -- depots ------------------------------------------------------------------------------


def test_van_returns_on_weekdays_and_stays_until_next_departure() -> None:
    cal = _calendar(datetime(2025, 3, 3, tzinfo=AMS))  # a Monday, local midnight
    evs = _until(_stream(DEPOT_VAN, calendar=cal), 28 * DAY)
    days = [cal.day_of(ev.arrival_s) for ev in evs]
    assert days == [d for d in range(28) if not cal.is_weekend(d)]
    assert len({ev.id_tag for ev in evs}) == 1
    for ev, nxt in itertools.pairwise(evs):
        leave = ev.arrival_s + ev.dwell_s
        assert leave < nxt.arrival_s
        # It leaves on the next operating day: Friday's van waits over the weekend.
        assert cal.day_of(leave) == cal.day_of(nxt.arrival_s)
        assert 6.5 < cal.local_hour(leave) < 10.0


def test_bus_returns_every_evening_and_leaves_before_five() -> None:
    cal = _calendar(datetime(2025, 3, 3, tzinfo=AMS))
    evs = _until(_stream(DEPOT_BUS, calendar=cal), 21 * DAY)
    assert [cal.day_of(ev.arrival_s) for ev in evs] == list(range(21))
    for ev in evs:
        assert 19.75 <= cal.local_hour(ev.arrival_s) <= 22.0 + 43 / 60
        assert 3.0 <= cal.local_hour(ev.arrival_s + ev.dwell_s) <= 4.85
        assert ev.soc_target == 1.0
    _check_invariants(evs, DEPOT_BUS)


def test_depot_with_overnight_return_clock() -> None:
    # A night shift: out at 20:00, back at 04:00 the next morning.
    params = with_overrides(
        DEPOT_BUS,
        {
            "departure_h": {"low_h": 19.5, "high_h": 20.5},
            "return_h": {"low_h": 3.5, "high_h": 4.5},
        },
    )
    cal = _calendar(datetime(2025, 3, 3, tzinfo=AMS))
    evs = _until(_stream(params, calendar=cal), 20 * DAY)
    _check_invariants(evs, params)
    for ev in evs:
        assert 3.5 <= cal.local_hour(ev.arrival_s) <= 4.5
        assert 19.5 <= cal.local_hour(ev.arrival_s + ev.dwell_s) <= 20.5


# -- archetypes and parameter validation --------------------------------------------------


def test_archetype_names_and_hardware() -> None:
    assert set(ARCHETYPES) == {
        "home",
        "workplace",
        "public_ac",
        "dc_fast",
        "depot_van",
        "depot_bus",
    }
    hw = {name: a.default_charger for name, a in ARCHETYPES.items()}
    assert (hw["home"].kind, hw["home"].power_kw, hw["home"].connectors) == ("ac", 11.0, 1)
    assert (hw["workplace"].power_kw, hw["workplace"].connectors) == (11.0, 2)
    assert (hw["public_ac"].power_kw, hw["public_ac"].phases, hw["public_ac"].connectors) == (
        22.0,
        3,
        2,
    )
    assert (hw["dc_fast"].kind, hw["dc_fast"].power_kw) == ("dc", 50.0)
    assert (hw["depot_bus"].kind, hw["depot_bus"].power_kw) == ("dc", 150.0)
    for name, archetype in ARCHETYPES.items():
        assert archetype.name == name and archetype.description and archetype.sources
    assert get_archetype("home") is ARCHETYPES["home"]


def test_unknown_archetype_lists_known_names() -> None:
    with pytest.raises(KeyError, match=r"depot_bus.*workplace"):
        get_archetype("office")


def test_overrides_deep_merge_and_keep_class() -> None:
    bus = with_overrides(DEPOT_BUS, {"return_h": {"high_h": 23.0}, "patience_min": 5})
    assert isinstance(bus, DepotParams)
    assert bus.return_h == UniformHours(low_h=19.75, high_h=23.0)
    assert bus.patience_min == 5.0 and bus.vehicle == "bus"
    # Switching a nested distribution's kind replaces it instead of merging stale fields.
    van = with_overrides(DEPOT_VAN, {"departure_h": {"kind": "uniform", "low_h": 6, "high_h": 7}})
    assert van.departure_h == UniformHours(low_h=6, high_h=7)
    home = with_overrides(HOME, {"overdispersion_k": 2.5})
    assert isinstance(home, DemandParams) and home.overdispersion_k == 2.5
    assert HOME.overdispersion_k is None  # the original is untouched


@pytest.mark.parametrize(
    ("params", "override", "loc"),
    [
        (HOME, {"sessions_per_charger_day": -1}, ("sessions_per_charger_day",)),
        (HOME, {"sessions_per_charger_day": "lots"}, ("sessions_per_charger_day",)),
        (HOME, {"weekday_shares": [1.0] * 23}, ("weekday_shares",)),
        (HOME, {"weekend_shares": [1.0] * 23 + [-1.0]}, ("weekend_shares", 23)),
        (HOME, {"energy_kwh": [[0.5, -3.0], [0.9, 10.0]]}, ("energy_kwh", 0, 1)),
        (HOME, {"overdispersion_k": 0}, ("overdispersion_k",)),
        (HOME, {"departure": "whenever"}, ("departure",)),
        (HOME, {"colour": "red"}, ("colour",)),
        (WORKPLACE, {"connection_mixture": [{"weight": -1}]}, ("connection_mixture", 0, "weight")),
        (DEPOT_VAN, {"vehicle": "tram"}, ("vehicle",)),
        (DEPOT_VAN, {"trip_h": {"sd_h": -0.5}}, ("trip_h", "normal", "sd_h")),
    ],
)
def test_bad_overrides_fail_with_field_paths(
    params: DemandParams | DepotParams, override: dict[str, object], loc: tuple[object, ...]
) -> None:
    with pytest.raises(ValidationError) as info:
        with_overrides(params, override)
    assert loc in [err["loc"] for err in info.value.errors()]


@pytest.mark.parametrize(
    ("params", "override", "message"),
    [
        (HOME, {"weekday_shares": [0.0] * 24}, "positive sum"),
        (HOME, {"soc_target_min": 0.95, "soc_target_max": 0.9}, "soc_target_min"),
        (HOME, {"energy_kwh": [[0.5, 10.0]]}, "at least two"),
        (HOME, {"energy_kwh": [[0.5, 10.0], [0.4, 12.0]]}, "strictly increase"),
        (DEPOT_VAN, {"return_h": {"kind": "uniform"}}, "exactly one"),
    ],
)
def test_inconsistent_params_are_rejected(
    params: DemandParams | DepotParams, override: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        with_overrides(params, override)


def test_params_are_frozen() -> None:
    with pytest.raises(ValidationError):
        HOME.sessions_per_charger_day = 3.0  # type: ignore[misc]
