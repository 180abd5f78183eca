"""Soak: a long online run with faults injected all along, watching memory and tasks.

A fleet runs against the embedded CSMS on 127.0.0.1 for `--minutes` (30 by default) while
connections drop at random, the whole fleet loses its network every few minutes, the CSMS is
killed and restarted half-way, misbehaves a little all the time (slow answers, CALLERRORs,
closed connections), connectors fault and stations lose power. Every `--sample-s` seconds it
records the generator's resident memory (VmRSS) and its asyncio tasks; at the end it prints one
JSON object: RSS and task counts at the start of the steady state and at the end, their
growth, the recovery of every episode, and the ledger's reconciliation with the CSMS database.

The ledger keeps one small entry per transaction of the run (about 200 bytes), so memory may
grow by that much per transaction; everything else must stay flat. Run with
`python benchmarks/soak.py` (30 minutes, 1,000 chargers) or `--minutes 3` for a smoke run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.link import LinkState  # noqa: E402
from simulator.run import Runner, RunOptions  # noqa: E402
from simulator.scenario import Scenario, parse_scenario  # noqa: E402

WARMUP_S = 60.0  # the steady state starts after the ramp and the first sessions


def rss_mb() -> float:
    """Current resident set size of this process (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def soak_scenario(chargers: int, minutes: float, speed: float) -> Scenario:
    """A mixed 1.6 / 2.0.1 fleet of busy DC chargers with every kind of fault."""
    wall_s = minutes * 60.0
    # A 20 s outage of the whole fleet every 5 minutes, but none in the last 90 s.
    outages = [{"at": f"{t:g}s", "duration": "20s"} for t in range(240, int(wall_s - 90), 300)]
    busy = {"sessions_per_charger_day": 24.0, "departure": "when_charged"}
    charger = {
        "reconnect": {"wait_minimum_s": 1.0, "random_range_s": 5.0, "repeat_times": 3},
        # A misbehaving CSMS refuses some transaction messages: enough tries that none is lost.
        "message_attempts": 10,
        "message_retry_s": 30.0,
    }
    half = chargers // 2
    return parse_scenario(
        {
            "name": "soak",
            "seed": 5,
            "start": "2025-01-07T06:00:00",
            "timezone": "Europe/Amsterdam",
            "sites": [
                {
                    "name": "soak16",
                    "archetype": "dc_fast",
                    "chargers": half,
                    "demand": busy,
                    "charger": {"ocpp_version": "1.6", **charger},
                },
                {
                    "name": "soak201",
                    "archetype": "dc_fast",
                    "chargers": chargers - half,
                    "demand": busy,
                    "charger": {"ocpp_version": "2.0.1", **charger},
                },
            ],
            "online": {
                "speed": speed,
                "duration": f"{wall_s:g}s",
                "meter_interval_s": 300,
                "heartbeat_s": 900,
                "ramp": 500,
                "ping_interval_s": 30,
                "call_timeout_s": 20,
            },
            "faults": {
                "connection_drops": {"mtbf": "60m"},
                "outages": outages,
                "csms_restarts": [{"at": f"{wall_s / 2:g}s", "down": "30s"}],
                "csms": {"slow_p": 0.01, "slow_s": 2.0, "error_p": 0.005, "close_p": 0.0005},
                "connector_faults": {"mtbf": "7d", "repair": "2h"},
                "power_loss": {"mtbf": "30d", "downtime": "5m"},
            },
        },
        "soak",
    )


async def soak(chargers: int, minutes: float, speed: float, sample_s: float) -> dict[str, Any]:
    scenario = soak_scenario(chargers, minutes, speed)
    options = RunOptions(metrics_port=None, live=False)
    runner = Runner(scenario, options)
    samples: list[dict[str, float]] = []
    began = time.monotonic()

    async def sample() -> None:
        while True:
            await asyncio.sleep(sample_s)
            links = runner_links()
            samples.append(
                {
                    "t_s": round(time.monotonic() - began, 1),
                    "rss_mb": round(rss_mb(), 1),
                    "tasks": len(asyncio.all_tasks()),
                    "booted": sum(1 for link in links if link.state is LinkState.READY),
                }
            )

    def runner_links() -> list[Any]:
        return runner.links

    sampler = asyncio.create_task(sample())
    try:
        result = await runner.run()
    finally:
        sampler.cancel()
    report = result.report
    steady = [s for s in samples if s["t_s"] >= WARMUP_S]
    first = steady[0] if steady else (samples[0] if samples else None)
    last = steady[-1] if steady else None
    all_booted = [s for s in steady if s["booted"] == chargers]
    len_s = minutes * 60.0
    ledger = report["ledger"]
    return {
        "chargers": chargers,
        "minutes": minutes,
        "speed": speed,
        "simulated_h": round(report["simulated_s"] / 3600.0, 2),
        "rss_start_mb": None if first is None else first["rss_mb"],
        "rss_end_mb": None if last is None else last["rss_mb"],
        "rss_max_mb": max((s["rss_mb"] for s in samples), default=None),
        "rss_growth_mb": None
        if first is None or last is None
        else round(last["rss_mb"] - first["rss_mb"], 1),
        "transactions": ledger["transactions_started"],
        "ledger_bytes_per_transaction_budget": 200,
        # Task counts when every charger was booted: one task per link and one reader per
        # connection, plus the run's own; a leak shows as growth between the first and last.
        "tasks_all_booted_first": all_booted[0]["tasks"] if all_booted else None,
        "tasks_all_booted_last": all_booted[-1]["tasks"] if all_booted else None,
        "tasks_median_first_5min": _median(steady, 0, 300),
        "tasks_median_last_5min": _median(steady, len_s - WARMUP_S - 300, len_s),
        "faults": report["faults"],
        "recovery": report["recovery"],
        "ledger": {k: v for k, v in ledger.items() if k != "reconciliation"},
        "reconciliation": ledger.get("reconciliation"),
        "passed": result.passed,
        "samples": samples,
    }


def _median(samples: list[dict[str, float]], lo_s: float, hi_s: float) -> float | None:
    """Median task count of the steady-state samples taken between lo_s and hi_s after the
    start of the steady state."""
    if not samples:
        return None
    origin = samples[0]["t_s"]
    window = [s["tasks"] for s in samples if lo_s <= s["t_s"] - origin < hi_s]
    return statistics.median(window) if window else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=60.0)
    parser.add_argument("--sample-s", type=float, default=15.0)
    args = parser.parse_args()
    import uvloop

    figures = uvloop.run(soak(args.chargers, args.minutes, args.speed, args.sample_s))
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
