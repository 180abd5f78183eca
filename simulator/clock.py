"""Clocks that drive the SimPy environment: offline, as fast as the CPU allows.

The offline clock runs the environment in slices so a progress bar can follow; the online
clock (scaled real time on asyncio) joins it here. Stations never see which clock drives them.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import simpy

# Young-generation threshold while a run is in progress. A run allocates millions of small
# acyclic objects (events, rows); CPython's default of 700 makes the collector walk them
# over and over for nothing. Cycles are still collected, just less often.
RUN_GC_THRESHOLD = 50_000


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Freeze what exists now (the built fleet) and collect less often until the block ends."""
    saved = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(RUN_GC_THRESHOLD, saved[1], saved[2])
    try:
        yield
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()


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
        # SimPy numbers every scheduled event with an itertools.count and has no public
        # counter; count() cannot be peeked, but its repr carries the next value. Report 0
        # rather than fail if a SimPy release changes this.
        text = repr(getattr(self.env, "_eid", ""))
        if not (text.startswith("count(") and text.endswith(")")):
            return 0
        try:
            return int(text[len("count(") : -1])
        except ValueError:
            return 0
