"""The recovery report: thresholds from the end of a disruption, queues drained, attempts, and a
mass disconnect noticed without being injected."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from simulator.link import LinkState
from simulator.recovery import RecoveryTracker


@dataclass
class FakeLink:
    """What the tracker reads of a link."""

    state: LinkState = LinkState.READY
    queue: list[Any] = field(default_factory=list)
    connect_attempts: int = 0


@dataclass
class Message:
    transactional: bool = True


async def _tick(tracker: RecoveryTracker) -> None:
    task = asyncio.create_task(tracker.run(poll_s=0.01))
    await asyncio.sleep(0.05)
    task.cancel()


async def test_thresholds_queues_and_attempts_are_measured_from_the_restore() -> None:
    links = [FakeLink() for _ in range(4)]
    tracker = RecoveryTracker(links, detect=False)  # type: ignore[arg-type]
    episode = tracker.begin("outage", "fleet", links)  # type: ignore[arg-type]
    for link in links:
        link.state = LinkState.OFFLINE
        link.connect_attempts += 3
        link.queue.append(Message())
    await asyncio.sleep(0.1)
    tracker.restored(episode)
    await _tick(tracker)
    assert episode.reached == {}  # nobody is back yet
    links[0].state = links[1].state = LinkState.READY
    await _tick(tracker)
    assert set(episode.reached) == {"50"}
    # Charger 0 drops again (an unrelated random drop): it has still come back once.
    links[0].state = LinkState.OFFLINE
    links[2].state = links[3].state = LinkState.READY
    await _tick(tracker)
    assert set(episode.reached) == {"50", "99", "100"}
    assert episode.drained is None  # queues still hold transaction messages
    for link in links:
        link.queue.clear()
    await _tick(tracker)
    assert episode.drained is None  # charger 0 is offline: its queue has not gone out
    links[0].state = LinkState.READY
    await _tick(tracker)
    assert episode.drained is not None and not episode.open
    report = episode.report()
    assert report["recovered"] is True and report["chargers"] == 4
    assert 0.09 <= report["disrupted_s"] < 1.0
    t50, t99, t100 = (report[f"time_to_{k}pct_s"] for k in (50, 99, 100))
    assert 0 <= t50 <= t99 <= t100 <= report["time_to_queues_drained_s"]
    assert report["reconnect_attempts"] == {"mean": 3.0, "p50": 3, "p99": 3, "max": 3}


async def test_an_episode_open_at_the_end_reports_what_it_reached() -> None:
    links = [FakeLink(state=LinkState.OFFLINE) for _ in range(3)]
    tracker = RecoveryTracker(links, detect=False)  # type: ignore[arg-type]
    episode = tracker.begin("csms_restart", "fleet", links)  # type: ignore[arg-type]
    tracker.restored(episode)
    links[0].state = LinkState.READY
    tracker.close()
    report = tracker.report()[0]
    assert report["recovered"] is False
    assert report["time_to_50pct_s"] is None and report["time_to_100pct_s"] is None


async def test_a_mass_disconnect_opens_a_detected_episode() -> None:
    links = [FakeLink() for _ in range(50)]
    tracker = RecoveryTracker(links)  # type: ignore[arg-type]
    await _tick(tracker)
    links[0].state = LinkState.OFFLINE  # one charger: news for nobody
    await _tick(tracker)
    assert tracker.episodes == []
    for link in links[:20]:
        link.state = LinkState.OFFLINE
    await _tick(tracker)
    [episode] = tracker.episodes
    assert episode.kind == "detected" and len(episode.links) == 50
    for link in links:
        link.state = LinkState.READY
    await _tick(tracker)
    assert episode.report()["recovered"] is True
