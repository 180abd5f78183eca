"""Offline site control: load management keeps a site under its grid limit in the exact load
curve, the three policies differ as they should, static profiles cap the stations, and the
summary's control figures are right on a hand-checkable case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
import simpy

from models.demand import EvDemand
from models.physics import CurrentType, EvseRating
from models.vehicles import vehicle_by_name
from simulator.events import AcceptAll
from simulator.loadcurve import bin_load
from simulator.offline import SessionRecorder, simulate
from simulator.records import PieceTable, SimulationResult, SiteInfo
from simulator.scenario import LoadManagementConfig, ScenarioError, parse_scenario
from simulator.site_policy import ControlledSink, SiteController
from simulator.station import Site, Station, StationSpec
from simulator.summary import site_peak_kw, summarise

POLICIES = ("equal_share", "fcfs", "edf")
START = datetime(2025, 1, 6, tzinfo=UTC)


def workplace(**site: Any) -> dict[str, Any]:
    return {
        "name": "lm",
        "seed": 11,
        "days": 3,
        "timezone": "Europe/Amsterdam",
        "sites": [
            {
                "name": "office",
                "archetype": "workplace",
                "chargers": 12,
                "demand": {"sessions_per_charger_day": 4.0},
                **site,
            }
        ],
    }


@pytest.fixture(scope="module")
def runs() -> dict[str | None, SimulationResult]:
    out: dict[str | None, SimulationResult] = {None: simulate(parse_scenario(workplace(), "t"))}
    for policy in POLICIES:
        lm = {"grid_limit_kw": 40.0, "policy": policy}
        out[policy] = simulate(parse_scenario(workplace(load_management=lm), "t"))
    return out


def test_the_site_never_draws_more_than_its_limit(
    runs: dict[str | None, SimulationResult],
) -> None:
    free = runs[None]
    free_peak, _ = site_peak_kw(free.pieces, 0, free.horizon_s)
    assert free_peak > 60.0  # unmanaged, the same demand goes well over the limit
    for policy in POLICIES:
        result = runs[policy]
        peak, when = site_peak_kw(result.pieces, 0, result.horizon_s)
        assert peak <= 40.0 * (1 + 1e-9), policy
        assert peak > 39.0 and when is not None  # and it does use what it has
        # The exact peak bounds every interval average from above.
        assert result.load.site_kw.max() <= peak * (1 + 1e-9)
        control = result.summary["sites"]["office"]["control"]
        assert control["policy"] == policy and control["grid_limit_kw"] == 40.0
        assert control["peak_kw"] == pytest.approx(peak, abs=1e-3)


def test_policies_give_different_sensible_outcomes(
    runs: dict[str | None, SimulationResult],
) -> None:
    assert "control" not in runs[None].summary["sites"]["office"]
    figures = {p: runs[p].summary["sites"]["office"]["control"] for p in POLICIES}
    # The same EVs arrive in every run: requested and unrestricted energy do not depend on
    # the policy, delivered energy does.
    wanted = runs[None].summary["sites"]["office"]["energy_wanted_kwh"]
    assert {f["energy_requested_kwh"] for f in figures.values()} == {wanted}
    assert len({f["energy_unrestricted_kwh"] for f in figures.values()}) == 1
    for policy in POLICIES:
        f = figures[policy]
        assert 0.0 < f["energy_unrestricted_share"] < 1.0
        assert 0.0 < f["sessions_fully_served_share"] < 1.0
        cols = runs[policy].sessions.columns
        delivered, unrestricted_kwh = cols["energy_delivered_kwh"], cols["energy_unrestricted_kwh"]
        assert np.all(delivered <= unrestricted_kwh + 1e-6)
        assert np.all(delivered <= cols["energy_wanted_kwh"] + 1e-9)
    served = {p: figures[p]["sessions_fully_served"] for p in POLICIES}
    energy = {p: figures[p]["energy_delivered_kwh"] for p in POLICIES}
    # EDF knows (offline) when each driver leaves and serves the soonest first: it completes
    # the most sessions and, wasting least on cars that stay long anyway, delivers the most.
    assert served["edf"] > max(served["fcfs"], served["equal_share"])
    assert energy["edf"] > max(energy["fcfs"], energy["equal_share"])
    assert len(set(energy.values())) == 3
    assert len({runs[p].pieces.t0_s.size for p in POLICIES}) == 3


def test_static_profiles_cap_every_station(runs: dict[str | None, SimulationResult]) -> None:
    profile = {
        "purpose": "ChargingStationMaxProfile",
        "recurrency": "Daily",
        "start": "08:00",
        "unit": "A",
        "periods": [{"start": "0s", "limit": 8}, {"start": "4h", "limit": 32}],
    }
    result = simulate(parse_scenario(workplace(charging_profiles=[profile]), "t"))
    # 08:00-12:00 Amsterdam time (the run starts at local midnight): each of the 12 stations
    # is held at 8 A x 3 phases x 230 V, shared by its two connectors.
    cap_kw = 12 * 8 * 3 * 230 / 1000
    steps = result.load.site_kw[0]
    for day in range(3):
        window = slice(day * 96 + 8 * 4, day * 96 + 12 * 4)
        assert steps[window].max() <= cap_kw + 1e-9
    assert runs[None].load.site_kw[0].max() > cap_kw  # the cap binds
    control = result.summary["sites"]["office"]["control"]
    assert control["charging_profiles"] == 1 and control["policy"] is None
    assert control["energy_unrestricted_share"] < 1.0


# -- a hand-checkable site ---------------------------------------------------------------------

ID4 = vehicle_by_name("Volkswagen ID.4")  # 77 kWh, 11 kW on three phases
RATING = EvseRating(CurrentType.AC, 11.0, 3, 230.0)
HOUR = 3600.0


def ev(arrival_s: float, dwell_s: float, tag: str) -> EvDemand:
    """An ID.4 wanting 11 kWh (one hour at full power, far from its taper)."""
    soc0 = 0.2
    return EvDemand(
        arrival_s=arrival_s,
        vehicle=ID4,
        vehicle_index=0,
        soc_arrival=soc0,
        soc_target=soc0 + 11.0 / ID4.battery_kwh,
        energy_wanted_kwh=11.0,
        dwell_s=dwell_s,
        leave_when_charged=False,
        handling_s=0.0,
        ac_taper_soc=0.8,
        patience_s=0.0,
        id_tag=tag,
    )


def hand_run(policy: str, reaction_s: float = 0.0) -> tuple[SimulationResult, SiteController]:
    """Two 11 kW chargers behind an 11 kW grid limit. EV 1 arrives at 0 and stays 4 h; EV 2
    arrives at 0.5 h and leaves at 1.5 h. Each wants one hour at full power."""
    env = simpy.Environment()
    horizon = 6 * HOUR
    recorder = SessionRecorder(0.0, horizon, controlled=frozenset({0}))
    sink = ControlledSink(recorder)
    site = Site(env, "pair", 0, sink)
    spec = StationSpec(RATING)
    demands = [[ev(0.0, 4 * HOUR, "ev1")], [ev(0.5 * HOUR, 1 * HOUR, "ev2")]]
    for i, demand in enumerate(demands):
        Station(env, site, i, f"P{i + 1}", spec, sink, AcceptAll(), demand)
    config = LoadManagementConfig(grid_limit_kw=11.0, policy=policy, reaction_s=reaction_s)
    controller = SiteController(env, site, config)
    controller.attach()
    sink.controllers[site] = controller
    env.run(until=horizon)
    recorder.finish([site], horizon)
    pieces = recorder.pieces()
    info = SiteInfo("pair", "test", 2, 2, 22.0, policy, 11.0, 0)
    result = SimulationResult(
        scenario_name="hand",
        seed=0,
        start=START,
        timezone="UTC",
        days=horizon / 86400.0,
        sites=[info],
        sessions=recorder.sessions([["P1", "P2"]]),
        pieces=pieces,
        load=bin_load(pieces, 1, horizon, 900, START),
        turned_away=np.zeros(1, dtype=np.int64),
    )
    result.summary = summarise(result)
    return result, controller


@pytest.mark.parametrize(
    ("policy", "delivered", "served", "ends_h"),
    [
        # Equal share: 5.5 kW each from 0.5 h; EV 1 completes at 1.5 h, EV 2 leaves half done.
        ("equal_share", 16.5, 1, (1.5, 1.5)),
        # FCFS: EV 1 at full power to 1 h, EV 2 waits, then charges 0.5 h before it leaves.
        ("fcfs", 16.5, 1, (1.0, 1.5)),
        # EDF: EV 2 leaves first, so it charges at once; EV 1 pauses, then finishes at 2 h.
        ("edf", 22.0, 2, (2.0, 1.5)),
    ],
)
def test_hand_checkable_figures(
    policy: str, delivered: float, served: int, ends_h: tuple[float, float]
) -> None:
    result, _ = hand_run(policy)
    control = result.summary["sites"]["pair"]["control"]
    assert control["peak_kw"] == pytest.approx(11.0, abs=1e-6)
    assert control["energy_requested_kwh"] == pytest.approx(22.0)
    # Unrestricted, EV 1 takes its 11 kWh in its stay; EV 2, one hour at 11 kW, too.
    assert control["energy_unrestricted_kwh"] == pytest.approx(22.0, abs=1e-6)
    assert control["energy_delivered_kwh"] == pytest.approx(delivered, abs=1e-3)
    assert control["energy_delivered_share"] == pytest.approx(delivered / 22.0, abs=1e-5)
    assert control["sessions_fully_served"] == served
    assert control["sessions_fully_served_share"] == pytest.approx(served / 2)
    cols = result.sessions.columns
    assert cols["charge_end_s"] / HOUR == pytest.approx(ends_h, abs=1e-6)


def test_a_reaction_delay_lets_the_site_overshoot_by_the_safe_default() -> None:
    # EV 2 starts under the safe TxDefault (11 kW / 2 connectors) while EV 1 still draws
    # 11 kW: 16.5 kW until the controller reacts a minute later.
    result, controller = hand_run("equal_share", reaction_s=60.0)
    peak, when = site_peak_kw(result.pieces, 0, result.horizon_s)
    assert peak == pytest.approx(16.5, abs=1e-6)
    assert when == pytest.approx(0.5 * HOUR)
    assert controller.default_w == 5500.0
    # Once it has reacted the site is back under its limit.
    late = result.pieces.t0_s >= 0.5 * HOUR + 60.0
    assert np.all(result.pieces.a[late] <= 11.0 + 1e-9)


def test_profile_config_errors_name_the_file_and_field() -> None:
    def problems(**site: Any) -> str:
        with pytest.raises(ScenarioError) as error:
            parse_scenario(workplace(**site), "lm.yaml")
        return str(error.value)

    default = {"purpose": "TxDefaultProfile", "recurrency": "Daily", "start": "17:00"}
    text = problems(
        load_management={"grid_limit_kw": 10},
        charging_profiles=[{**default, "periods": [{"limit": 1}]}],
    )
    assert "lm.yaml: sites[0]: charging_profiles[0]: a TxDefaultProfile never applies" in text
    text = problems(charging_profiles=[{**default, "periods": [{"start": "1h", "limit": 1}]}])
    assert "lm.yaml: sites[0].charging_profiles[0]: the first period must start at 0s" in text
    text = problems(charging_profiles=[{**default, "start": "7pm", "periods": [{"limit": 1}]}])
    assert "sites[0].charging_profiles[0]: start '7pm'" in text
    text = problems(load_management={"grid_limit_kw": 10, "policy": "round_robin"})
    assert "lm.yaml: sites[0].load_management.policy" in text
    evse = {**default, "evse": 3, "periods": [{"limit": 1}]}
    with pytest.raises(ValueError, match=r"sites\[0\]\.charging_profiles\[0\]\.evse"):
        simulate(parse_scenario(workplace(charging_profiles=[evse]), "lm.yaml"), days=0.01)


def test_recurring_start_is_the_last_local_occurrence_before_the_run() -> None:
    scenario = parse_scenario(
        workplace(
            charging_profiles=[
                {
                    "purpose": "ChargingStationMaxProfile",
                    "recurrency": "Weekly",
                    "start": "Sun 17:00",
                    "periods": [{"limit": 5000}],
                }
            ]
        ),
        "t",
    )
    origin = datetime(2025, 1, 6, tzinfo=UTC)  # Monday 01:00 in Amsterdam
    profile = scenario.sites[0].charging_profiles[0].to_profile(7, origin, "Europe/Amsterdam")
    assert profile.profile_id == 7
    # Sunday 5 January, 17:00 CET = 16:00 UTC: eight hours before the origin.
    assert profile.schedule.start_s == -(timedelta(hours=8).total_seconds())


def test_exact_peak_takes_both_limits_and_rising_pieces() -> None:
    # Site 0: a constant 5 kW over [0, 2 h); a rising piece p = 10 + 10 SoC on 10 kWh from
    # SoC 0, i.e. 10 e^(t/3600) kW, over [0, 1 h); then 3 kW over [1 h, 3 h). The peak is the
    # rising piece's left limit at 1 h: 5 + 10 e. Site 1 shows pieces clipped to the horizon.
    rows = [
        (0, 0.0, 2 * HOUR, 5.0, 0.0, 50.0, 0.1),
        (0, 0.0, HOUR, 10.0, 10.0, 10.0, 0.0),
        (0, HOUR, 3 * HOUR, 3.0, 0.0, 50.0, 0.2),
        (1, -HOUR, 2 * HOUR, 10.0, 10.0, 10.0, 0.0),
    ]
    cols = list(zip(*rows, strict=True))
    pieces = PieceTable(np.array(cols[0], dtype="i4"), *(np.array(c) for c in cols[1:]))
    peak, when = site_peak_kw(pieces, 0, 4 * HOUR)
    assert peak == pytest.approx(5.0 + 10.0 * np.e, rel=1e-12)
    assert when == HOUR
    # Site 1 started before the run: inside [0, 1.5 h] it peaks at the horizon, 10 e^2.5.
    assert site_peak_kw(pieces, 1, 1.5 * HOUR) == pytest.approx((10.0 * np.e**2.5, 1.5 * HOUR))
    assert site_peak_kw(pieces, 2, 4 * HOUR) == (0.0, None)
