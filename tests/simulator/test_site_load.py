"""A site under a grid limit, end to end: 50 AC chargers share 100 kW by equal share, pushed as
TxProfiles by the embedded CSMS's load manager over real websockets, and the station models
really draw less. The run's report shows the site's peak against its limit."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from simulator.run import Runner, RunOptions
from simulator.scenario import parse_scenario

LIMIT_KW = 100.0


def _scenario(policy: str) -> Any:
    return parse_scenario(
        {
            "name": "grid-limited",
            "seed": 11,
            "start": "2025-01-07T07:30:00",
            "timezone": "Europe/Amsterdam",
            "sites": [
                {
                    "name": "office",
                    "archetype": "workplace",
                    "chargers": 50,
                    # Busy mornings: far more than 100 kW of 11 kW chargers want to run at once.
                    "demand": {"sessions_per_charger_day": 6.0},
                    "charger": {"kind": "ac", "power_kw": 11, "phases": 3, "ocpp_version": "1.6"},
                    "load_management": {"grid_limit_kw": LIMIT_KW, "policy": policy},
                }
            ],
            "online": {
                "speed": 600,
                "duration": "10s",
                "meter_interval_s": 300,
                "ramp": 1000,
                "ping_interval_s": None,
            },
        },
        "grid-limited",
    )


async def test_fifty_chargers_share_a_100_kw_grid_limit_equally() -> None:
    runner = Runner(
        _scenario("equal_share"),
        RunOptions(metrics_port=None, live=False),
        console=Console(quiet=True),
    )
    result = await runner.run()
    report = result.report
    assert report["invalid_frames"]["in"] == report["invalid_frames"]["out"] == 0, report
    (site,) = report["sites"]
    assert site["name"] == "office"
    assert site["grid_limit_kw"] == LIMIT_KW
    # The limit was needed: the site ran at it, with most sessions held below their 11 kW...
    assert site["peak_kw"] > 0.8 * LIMIT_KW, site
    # A safe default at every boot, then a TxProfile per session and change, all accepted.
    profiles = report["operations"]["SetChargingProfile"]
    assert profiles["handled"] >= 50 + report["ledger"]["transactions_started"], profiles
    assert profiles["errors"] == 0
    # ...and it held: nothing above the limit beyond a reaction window of one simulated minute
    # (a tenth of a wall second at this speed: the CSMS's round trips).
    assert site["over_limit_longest_s"] <= 60.0, site
    assert site["peak_kw"] <= LIMIT_KW * 1.001 or site["over_limit_s"] <= 120.0, site
    assert report["ledger"]["transactions_started"] >= 20
    errors = {a: v["errors"] for a, v in report["actions"].items() if v.get("errors")}
    assert not errors, errors
    assert result.passed
