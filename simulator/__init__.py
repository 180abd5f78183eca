"""fleetsim: charger-fleet simulator. The Python API mirrors the CLI.

`load_scenario` reads and validates a scenario; `simulate` runs it offline and returns plain
numpy tables (sessions, load curve) and a summary.
"""

from typing import Any

from simulator.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

__all__ = ["Scenario", "ScenarioError", "load_scenario", "parse_scenario", "simulate"]


def __getattr__(name: str) -> Any:
    # The runner pulls in SimPy, the writers and matplotlib: import it only when asked for, so
    # `fleetsim validate` and `import simulator` stay quick.
    if name == "simulate":
        from simulator.offline import simulate

        return simulate
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")
