"""Clocks that drive the SimPy environment: offline, as fast as the CPU allows.

The offline clock runs the environment in slices so a progress bar can follow; the online
clock (scaled real time on asyncio) joins it here. Stations never see which clock drives them.
"""

from __future__ import annotations

from collections.abc import Callable

import simpy


class OfflineClock:
    """Runs a SimPy environment unpaced up to a horizon, reporting progress between slices."""

    def __init__(self, env: simpy.Environment, slice_s: float = 86400.0) -> None:
        if slice_s <= 0:
            raise ValueError("slice_s must be positive")
        self.env = env
        self.slice_s = slice_s

    def run_until(self, until: float, on_progress: Callable[[float], None] | None = None) -> None:
        """Process every event before `until`; `on_progress(t)` after each slice."""
        env = self.env
        t = env.now
        while t < until:
            t = min(t + self.slice_s, until)
            env.run(until=t)
            if on_progress is not None:
                on_progress(t)

    @property
    def events_scheduled(self) -> int:
        """How many events the environment has scheduled so far (SimPy's own event counter)."""
        counter = getattr(self.env, "_eid", None)
        if counter is None:
            return 0
        # itertools.count has no peek; its repr carries the next value.
        text = repr(counter)
        return int(text[text.index("(") + 1 : text.index(")")])
