"""Offline simulator speed: one year of a 1,000-charger mixed network, figures printed as JSON.

Target (issue 2): under 30 s of wall time on one core of the reference machine (2 cores). Run
with `make bench` or `python benchmarks/simulate.py --chargers 1000 --days 365`.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time

from simulator.offline import simulate
from simulator.scenario import parse_scenario

# A mixed network: shares of chargers per archetype, as a regional operator might run.
MIX = {"home": 0.40, "workplace": 0.25, "public_ac": 0.25, "dc_fast": 0.05, "depot_van": 0.05}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--days", type=float, default=365.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--resolution", default="15min")
    args = parser.parse_args(argv)

    scenario = parse_scenario(
        {
            "name": "bench-mixed",
            "seed": args.seed,
            "timezone": "Europe/Amsterdam",
            "sites": [
                {"archetype": a, "chargers": round(share * 1000)} for a, share in MIX.items()
            ],
        },
        "benchmarks/simulate.py",
    )
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = simulate(scenario, days=args.days, chargers=args.chargers, resolution=args.resolution)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    sessions = len(result.sessions)
    figures = {
        "benchmark": "simulate",
        "chargers": sum(s.chargers for s in result.sites),
        "days": args.days,
        "resolution": args.resolution,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "sessions": sessions,
        "sessions_per_s": round(sessions / wall, 1),
        "simulated_events": result.events_processed,
        "simulated_events_per_s": round(result.events_processed / wall, 1),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "target_wall_s": 30.0,
        "meets_target": wall < 30.0,
    }
    json.dump(figures, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
