"""The online clock: scaled real time, early wake-up by inbound commands, schedule lag."""

from __future__ import annotations

import asyncio
import time

import pytest
import simpy

from simulator.clock import OnlineClock


def _ticker(env: simpy.Environment, every: float, seen: list[tuple[float, float]]):  # type: ignore[no-untyped-def]
    while True:
        yield env.timeout(every)
        seen.append((env.now, time.monotonic()))


async def test_events_fire_at_their_scaled_wall_time() -> None:
    env = simpy.Environment()
    seen: list[tuple[float, float]] = []
    env.process(_ticker(env, 10.0, seen))
    clock = OnlineClock(env, speed=200.0)
    clock.start()
    task = asyncio.create_task(clock.run())
    await asyncio.sleep(0.26)
    clock.stop()
    await asyncio.wait_for(task, 1)
    assert [t for t, _ in seen] == [10.0, 20.0, 30.0, 40.0, 50.0]
    for t, wall in seen:
        # Each event is processed no earlier than its wall time, and promptly after it.
        assert wall >= clock.wall_of(t) - 1e-6
        assert wall - clock.wall_of(t) < 0.05


async def test_call_soon_runs_at_the_current_simulated_time() -> None:
    env = simpy.Environment()
    clock = OnlineClock(env, speed=1000.0)
    clock.start()
    task = asyncio.create_task(clock.run())
    await asyncio.sleep(0.1)  # no events at all: the clock sleeps until woken
    answered = env.event()
    times: list[float] = []
    answered.callbacks.append(lambda _: times.append(env.now))
    clock.call_soon(lambda: answered.succeed(True))
    await asyncio.sleep(0.02)
    clock.stop()
    await asyncio.wait_for(task, 1)
    assert len(times) == 1
    # 0.1 wall seconds at speed 1000 is ~100 simulated seconds.
    assert 95.0 <= times[0] <= 130.0


async def test_a_stalled_loop_shows_as_schedule_lag() -> None:
    env = simpy.Environment()
    seen: list[tuple[float, float]] = []
    env.process(_ticker(env, 1.0, seen))
    lags: list[float] = []
    clock = OnlineClock(env, speed=10.0, on_lag=lags.append)
    clock.start()
    task = asyncio.create_task(clock.run())
    await asyncio.sleep(0.05)
    time.sleep(0.3)  # the generator's thread is busy: due events wait
    await asyncio.sleep(0.05)
    clock.stop()
    await asyncio.wait_for(task, 1)
    assert clock.max_lag_s >= 0.2
    assert max(lags) == pytest.approx(clock.max_lag_s)
    # Time did not slow down: the events that were due all ran, late.
    assert [t for t, _ in seen][:3] == [1.0, 2.0, 3.0]


async def test_run_until_stops_at_the_horizon() -> None:
    env = simpy.Environment()
    seen: list[tuple[float, float]] = []
    env.process(_ticker(env, 5.0, seen))
    clock = OnlineClock(env, speed=1000.0)
    await asyncio.wait_for(clock.run(until=22.0), 1)
    assert [t for t, _ in seen] == [5.0, 10.0, 15.0, 20.0]
    assert env.now == 22.0


def test_speed_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OnlineClock(simpy.Environment(), speed=0)
