"""fleetsim: charger-fleet simulator. The Python API mirrors the CLI.

`load_scenario` reads and validates a scenario; `simulate` runs it offline and returns plain
numpy tables (sessions, load curve) and a summary; `Runner(scenario, RunOptions(...)).run()`
runs it online (await it inside a running loop, as in a notebook) and `run_scenario` does the
same from plain code on uvloop, as `fleetsim run` does.
"""

from typing import Any

from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = [
    "RunOptions",
    "Runner",
    "Scenario",
    "ScenarioError",
    "load_scenario",
    "parse_scenario",
    "run_scenario",
    "simulate",
]
_ONLINE = ("RunOptions", "Runner", "run_scenario")


def __getattr__(name: str) -> Any:
    # The runner pulls in SimPy, the writers and matplotlib: import it only when asked for, so
    # `fleetsim validate` and `import simulator` stay quick.
    if name == "simulate":
        from simulator.offline import simulate

        return simulate
    if name in _ONLINE:
        from simulator import run

        return getattr(run, name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
