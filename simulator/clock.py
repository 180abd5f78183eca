"""Clocks that drive the SimPy environment: offline as fast as the CPU allows, or online in
scaled real time on asyncio.

The offline clock runs the environment in slices so a progress bar can follow; the online clock
steps it from one asyncio task. Stations never see which clock drives them.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import simpy

T = TypeVar("T")

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


class OnlineClock:
    """Steps a SimPy environment from one asyncio task in scaled real time.

    Simulated time = sim0 + speed x (wall - wall0). The task sleeps until the wall time of the
    next event (or until `call_soon` wakes it with an inbound command), then processes every
    event that is due. `simpy.rt.RealtimeEnvironment` would block the thread with time.sleep.

    Schedule lag is how late, in wall seconds, the earliest due event was processed: a
    generator that cannot keep up shows a growing lag instead of silently slowing time down.
    """

    # Events processed before the task yields to the event loop, so sockets are served even
    # while a burst of simultaneous events is worked through.
    BATCH = 2_000

    def __init__(
        self,
        env: simpy.Environment,
        speed: float,
        on_lag: Callable[[float], None] | None = None,
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.env = env
        self.speed = speed
        self.on_lag = on_lag
        self.sim0 = env.now
        self.wall0 = 0.0
        self.max_lag_s = 0.0
        self._inbox: deque[Callable[[], object]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- time conversions ----------------------------------------------------------------------

    # Wall time is time.monotonic(), not loop.time(): uvloop's loop time is whole milliseconds
    # cached per loop iteration, too coarse for latency on loopback. Both read CLOCK_MONOTONIC.

    def start(self) -> None:
        """Pin simulated time sim0 to the wall clock's now (called by `run`, or earlier)."""
        self._loop = asyncio.get_running_loop()
        self.wall0 = time.monotonic()

    def sim_now(self) -> float:
        """The simulated time the wall clock says it is now."""
        return self.sim0 + (time.monotonic() - self.wall0) * self.speed

    def wall_of(self, t: float) -> float:
        """The monotonic wall time at which simulated time `t` is (was) due."""
        return self.wall0 + (t - self.sim0) / self.speed

    # -- control -------------------------------------------------------------------------------

    def call_soon(self, callback: Callable[[], object]) -> None:
        """Run `callback` inside the simulation at the current simulated time (for example to
        succeed a SimPy event with a CSMS answer), waking the clock task if it sleeps."""
        self._inbox.append(callback)
        self._wake()

    def execute(self, command: Callable[[], T]) -> asyncio.Future[T]:
        """Run `command` inside the simulation at the current simulated time (like
        `call_soon`) and return a future of its result, for protocol handlers that answer a
        CSMS from the station's state. An exception in `command` fails the future."""
        loop = self._loop or asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def run() -> None:
            if future.cancelled():
                return
            try:
                result = command()
            except Exception as exc:  # handed to whoever awaits the answer
                future.set_exception(exc)
            else:
                future.set_result(result)

        self.call_soon(run)
        return future

    def stop(self) -> None:
        """Make `run` return after the events now due."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run(self, until: float | None = None) -> None:
        """Step the environment in real time until `stop()` or simulated time `until`."""
        if self._loop is None:
            self.start()
        loop = self._loop
        assert loop is not None
        env = self.env
        self._stopping = False
        while not self._stopping:
            now = self.sim_now()
            if until is not None and now >= until:
                now = until
                self._stopping = True
            first_due = env.peek()
            if first_due <= now:
                lag = (now - first_due) / self.speed
                if lag > self.max_lag_s:
                    self.max_lag_s = lag
                if self.on_lag is not None:
                    self.on_lag(lag)
            steps = 0
            while env.peek() < now and steps < self.BATCH:
                env.step()
                steps += 1
            if steps >= self.BATCH:
                self._stopping = self._stopping and until is None
                await asyncio.sleep(0)
                continue
            if now > env.now:
                env.run(until=now)  # nothing is left before `now`: this only moves time on
            inbox = self._inbox
            while inbox:
                inbox.popleft()()
            while env.peek() <= env.now:
                env.step()
            if self._stopping:
                break
            await self._sleep(loop, self.wall_of(env.peek()))

    async def _sleep(self, loop: asyncio.AbstractEventLoop, deadline: float) -> None:
        if self._inbox or self._stopping:
            return
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiter = waiter
        timer = (
            None
            if math.isinf(deadline)
            else loop.call_later(max(0.0, deadline - time.monotonic()), _release, waiter)
        )
        try:
            await waiter
        finally:
            self._waiter = None
            if timer is not None:
                timer.cancel()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
