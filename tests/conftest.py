"""Shared fixtures: an embedded CSMS on a free loopback port, and small online scenarios."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from simulator.csms import CsmsConfig, CsmsServer
from simulator.scenario import Scenario, parse_scenario


@pytest.fixture
async def csms(tmp_path: Path) -> AsyncIterator[CsmsServer]:
    """The embedded CSMS on 127.0.0.1, a free port and a fresh SQLite file."""
    server = CsmsServer(
        CsmsConfig(host="127.0.0.1", port=0, db_path=tmp_path / "csms.db", heartbeat_interval_s=600)
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def busy_scenario(**online: Any) -> Scenario:
    """Three 1.6 and three 2.0.1 fast chargers, busy enough that a few wall seconds at one
    simulated hour per second hold whole sessions, heartbeats and meter values."""
    busy = {"sessions_per_charger_day": 48.0, "departure": "when_charged"}
    # Reconnects within a second, so that a few-second run sees a dropped charger come back.
    reconnect = {"wait_minimum_s": 0.2, "random_range_s": 0.5}
    return parse_scenario(
        {
            "name": "busy",
            "seed": 7,
            "start": "2025-01-07T10:00:00",
            "timezone": "Europe/Amsterdam",
            "sites": [
                {
                    "name": "dc16",
                    "archetype": "dc_fast",
                    "chargers": 3,
                    "demand": busy,
                    "charger": {"ocpp_version": "1.6", "reconnect": reconnect},
                },
                {
                    "name": "dc201",
                    "archetype": "dc_fast",
                    "chargers": 3,
                    "demand": busy,
                    "charger": {"ocpp_version": "2.0.1", "reconnect": reconnect},
                },
            ],
            "online": {
                "speed": 3600,
                "duration": "4s",
                "meter_interval_s": 120,
                "ramp": 1000,
                "ping_interval_s": None,
                **online,
            },
        },
        "busy-scenario",
    )
