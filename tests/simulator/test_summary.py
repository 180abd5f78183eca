"""Summary figures on a small hand-made run whose every number is worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from simulator.loadcurve import bin_load
from simulator.records import (
    SESSION_COLUMNS,
    PieceTable,
    SessionTable,
    SimulationResult,
    SiteInfo,
)
from simulator.summary import format_utc, summarise

START = datetime(2025, 1, 6, tzinfo=UTC)
NAN = float("nan")
H = 3600.0


def build(
    sessions: list[dict[str, float]],
    piece_rows: list[tuple[float, ...]],
    sites: list[SiteInfo] | None = None,
    days: int = 1,
) -> SimulationResult:
    """A run from session dicts (SESSION_COLUMNS keys) and (site, t0, t1, a, b, cap, soc0) rows."""
    sites = (
        sites
        if sites is not None
        else [
            SiteInfo("Depot", "depot", chargers=2, connectors=4, installed_kw=44.0),
            SiteInfo("Office", "office", chargers=1, connectors=2, installed_kw=22.0),
            SiteInfo("Empty", "retail", chargers=1, connectors=1, installed_kw=11.0),
        ]
    )
    columns = {
        name: np.array([s.get(name, 0) for s in sessions], dtype=dtype)
        for name, dtype in SESSION_COLUMNS.items()
    }
    table = SessionTable(columns, ["Model Y"], [["D1", "D2"], ["O1"], ["E1"]][: len(sites)])
    cols = list(zip(*piece_rows, strict=True)) if piece_rows else [()] * 7
    pieces = PieceTable(
        np.array(cols[0], dtype="i4"), *(np.array(c, dtype=float) for c in cols[1:])
    )
    load = bin_load(pieces, len(sites), days * 86400.0, 900, START)
    return SimulationResult(
        scenario_name="hand-made",
        seed=42,
        start=START,
        timezone="Europe/Berlin",
        days=days,
        sites=sites,
        sessions=table,
        pieces=pieces,
        load=load,
        turned_away=np.array([3, 1, 0][: len(sites)]),
    )


def session(
    site: int,
    plug_in: float,
    plug_out: float,
    charge: tuple[float, float] | None,
    wanted: float,
    delivered: float,
) -> dict[str, float]:
    start, end = charge if charge is not None else (NAN, NAN)
    return {
        "site": site,
        "charger": 0,
        "evse_id": 1,
        "vehicle": 0,
        "arrival_s": plug_in - 60,
        "plug_in_s": plug_in,
        "plug_out_s": plug_out,
        "charge_start_s": start,
        "charge_end_s": end,
        "energy_wanted_kwh": wanted,
        "energy_delivered_kwh": delivered,
        "max_power_kw": 11.0,
        "soc_arrival": 0.2,
        "soc_departure": 0.5,
    }


@pytest.fixture()
def result() -> SimulationResult:
    return build(
        [
            # Depot: plugged 01:00-05:00, charging 11 kW for an hour (11 kWh of 20 wanted).
            session(0, 1 * H, 5 * H, (1 * H, 2 * H), wanted=20.0, delivered=11.0),
            # Depot: plugged 02:00-03:00, charging 22 kW for half an hour (11 kWh of 11).
            session(0, 2 * H, 3 * H, (2 * H, 2.5 * H), wanted=11.0, delivered=11.0),
            # Office: plugged 10:00-11:00, never charged (5 kWh wanted).
            session(1, 10 * H, 11 * H, None, wanted=5.0, delivered=0.0),
        ],
        [(0, 1 * H, 2 * H, 11.0, 0.0, 60.0, 0.2), (0, 2 * H, 2.5 * H, 22.0, 0.0, 60.0, 0.2)],
    )


def test_top_level_describes_the_run(result: SimulationResult) -> None:
    s = summarise(result)
    assert {
        k: s[k]
        for k in (
            "scenario",
            "seed",
            "start",
            "days",
            "timezone",
            "resolution_s",
            "chargers",
            "connectors",
            "installed_kw",
        )
    } == {
        "scenario": "hand-made",
        "seed": 42,
        "start": "2025-01-06T00:00:00Z",
        "days": 1,
        "timezone": "Europe/Berlin",
        "resolution_s": 900,
        "chargers": 4,
        "connectors": 7,
        "installed_kw": 77.0,
    }
    assert list(s["sites"]) == ["Depot", "Office", "Empty"]


def test_site_figures_match_the_hand_computation(result: SimulationResult) -> None:
    depot = summarise(result)["sites"]["Depot"]
    assert depot["sessions"] == 2
    assert depot["sessions_per_charger_per_day"] == 1.0
    assert depot["energy_kwh"] == {"total": 22.0, "mean": 11.0, "median": 11.0, "p90": 11.0}
    assert depot["connection_h"] == {"mean": 2.5, "median": 2.5}
    assert depot["charging_h"] == {"mean": 0.75, "median": 0.75}
    assert depot["idle_share"] == pytest.approx(1 - 1.5 / 5)  # 1.5 h charging of 5 h plugged
    # 22 kW in the quarters from 02:00 and 02:15: the first one is the peak's time.
    assert depot["peak_kw"] == 22.0
    assert depot["peak_time"] == "2025-01-06T02:00:00Z"
    assert depot["coincidence_factor"] == 0.5
    assert depot["utilisation"] == round(5 / (4 * 24), 6)
    assert depot["capacity_factor"] == round(22 / (44 * 24), 6)
    assert depot["turned_away"] == 3
    assert depot["energy_wanted_kwh"] == 31.0
    assert depot["energy_served_share"] == round(22 / 31, 6)
    assert (depot["archetype"], depot["chargers"], depot["connectors"], depot["installed_kw"]) == (
        "depot",
        2,
        4,
        44.0,
    )


def test_a_site_that_never_charged_has_zero_energy_and_full_idle_share(
    result: SimulationResult,
) -> None:
    office = summarise(result)["sites"]["Office"]
    assert office["sessions"] == 1
    assert office["energy_kwh"] == {"total": 0.0, "mean": 0.0, "median": 0.0, "p90": 0.0}
    assert office["connection_h"] == {"mean": 1.0, "median": 1.0}
    assert office["charging_h"] == {"mean": None, "median": None}
    assert office["idle_share"] == 1.0
    assert office["peak_kw"] == 0.0
    assert office["peak_time"] is None
    assert office["energy_served_share"] == 0.0
    assert office["utilisation"] == round(1 / (2 * 24), 6)


def test_a_site_without_sessions_has_zeros_for_sums_and_null_for_undefined_statistics(
    result: SimulationResult,
) -> None:
    empty = summarise(result)["sites"]["Empty"]
    assert empty == {
        "archetype": "retail",
        "chargers": 1,
        "connectors": 1,
        "installed_kw": 11.0,
        "sessions": 0,
        "sessions_per_charger_per_day": 0.0,
        "energy_kwh": {"total": 0.0, "mean": None, "median": None, "p90": None},
        "connection_h": {"mean": None, "median": None},
        "charging_h": {"mean": None, "median": None},
        "idle_share": None,
        "peak_kw": 0.0,
        "peak_time": None,
        "coincidence_factor": 0.0,
        "utilisation": 0.0,
        "capacity_factor": 0.0,
        "turned_away": 0,
        "waited": 0,
        "wait_h": {"mean": None, "max": None},
        "energy_wanted_kwh": 0.0,
        "energy_served_share": None,
    }


def test_total_aggregates_all_sites(result: SimulationResult) -> None:
    total = summarise(result)["total"]
    assert total["sessions"] == 3
    assert total["sessions_per_charger_per_day"] == 0.75
    assert total["energy_kwh"] == {
        "total": 22.0,
        "mean": round(22 / 3, 3),
        "median": 11.0,
        "p90": 11.0,
    }
    assert total["connection_h"] == {"mean": 2.0, "median": 1.0}
    assert total["idle_share"] == round(1 - 1.5 / 6, 6)
    assert total["peak_kw"] == 22.0
    assert total["peak_time"] == "2025-01-06T02:00:00Z"
    assert total["coincidence_factor"] == round(22 / 77, 6)
    assert total["utilisation"] == round(6 / (7 * 24), 6)
    assert total["turned_away"] == 4
    assert total["energy_wanted_kwh"] == 36.0


def test_summary_is_plain_json_without_nan(result: SimulationResult) -> None:
    s = summarise(result)
    text = json.dumps(s, allow_nan=False, sort_keys=True)
    assert json.loads(text) == s
    assert summarise(result) == s


def _floats(node: Any) -> list[float]:
    if isinstance(node, dict):
        return [f for v in node.values() for f in _floats(v)]
    return [node] if isinstance(node, float) else []


def test_floats_are_rounded_to_fixed_decimals() -> None:
    r = build(
        [session(0, 0.0, 7 * H / 3, (0.0, H / 3), wanted=10 / 3, delivered=10 / 3)],
        [(0, 0.0, H / 3, 10.0, 0.0, 60.0, 0.2)],
    )
    s = summarise(r)
    assert s["sites"]["Depot"]["energy_kwh"]["total"] == 3.333
    assert s["sites"]["Depot"]["connection_h"]["mean"] == 2.3333
    assert all(len(repr(f).split(".")[-1]) <= 6 for f in _floats(s))


def test_an_unfinished_session_counts_as_plugged_until_the_horizon_for_utilisation() -> None:
    # Plugged in at 20:00 and still there when the one-day run ends: 4 h of connector time,
    # but no complete connection to average.
    r = build(
        [session(1, 20 * H, NAN, (20 * H, NAN), wanted=30.0, delivered=0.0)],
        [(1, 20 * H, 30 * H, 11.0, 0.0, 60.0, 0.2)],
    )
    office = summarise(r)["sites"]["Office"]
    assert office["utilisation"] == round(4 / (2 * 24), 6)
    assert office["connection_h"] == {"mean": None, "median": None}
    assert office["idle_share"] == 0.0  # charging all of its 4 h inside the horizon
    assert office["capacity_factor"] == round(44 / (22 * 24), 6)  # only the 4 h in the horizon


def test_duplicate_site_names_are_refused() -> None:
    twin = SiteInfo("Twin", "depot", 1, 1, 11.0)
    with pytest.raises(ValueError, match="Twin"):
        summarise(build([], [], sites=[twin, twin]))


def test_format_utc_converts_to_utc_and_drops_fractions() -> None:
    from zoneinfo import ZoneInfo

    moment = datetime(2025, 7, 1, 9, 30, 15, 999_000, tzinfo=ZoneInfo("Europe/Berlin"))
    assert format_utc(moment) == "2025-07-01T07:30:15Z"
    with pytest.raises(ValueError):
        format_utc(datetime(2025, 7, 1))


def test_sessions_interleaved_across_sites_are_attributed_to_their_site(
    result: SimulationResult,
) -> None:
    expected = summarise(result)
    order = np.array([2, 0, 1])  # the Office session first, as sorting by arrival could give
    cols = result.sessions.columns
    result.sessions.columns = {k: v[order] for k, v in cols.items()}
    assert summarise(result) == expected


def test_evs_that_queued_are_counted_with_their_wait() -> None:
    # Two sessions at the depot: one plugged in on arrival, one queued for 30 min.
    on_time = session(0, 1 * H, 3 * H, (1 * H, 2 * H), 10.0, 10.0)
    queued = session(0, 2.5 * H, 4 * H, (2.5 * H, 3 * H), 5.0, 5.0)
    on_time["arrival_s"], queued["arrival_s"] = 1 * H, 2 * H
    depot = summarise(build([on_time, queued], []))["sites"]["Depot"]
    assert depot["waited"] == 1
    assert depot["wait_h"] == {"mean": 0.5, "max": 0.5}
    assert summarise(build([on_time], []))["sites"]["Depot"]["wait_h"]["mean"] is None
