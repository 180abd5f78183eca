"""How the fleet came back after a disruption: the recovery report.

A disruption (an injected network outage, a restart of the embedded CSMS, or a mass disconnect
noticed while the run goes on) opens an episode over the chargers it touched. From the moment
its cause ended, the tracker measures how long until 50 %, 99 % and 100 % of those chargers
had come back (connected and booted), and until every one of them had emptied its offline queue
(booted, no transaction message left), and counts each charger's connection attempts
meanwhile. Each charger counts from the first moment it is back: a charger that comes back and
then loses its connection again to an unrelated fault (a random drop) has still recovered from
this disruption. It reads the links; it injects nothing.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.link import ChargerLink, LinkState

# Each poll reads every link (10,000 of them: about a millisecond), so ten a second keep the
# tracker under 1 % of a core while timing recovery to a tenth of a second.
POLL_S = 0.1
# A mass disconnect: this share of the booted fleet lost within one detection window.
DETECT_SHARE = 0.1
DETECT_WINDOW_S = 2.0
DETECT_MIN_CHARGERS = 5
_DECIMALS = 3


@dataclass
class Episode:
    """One disruption and the recovery of the chargers it touched (times are loop times)."""

    kind: str  # outage, csms_restart, detected
    scope: str  # "fleet" or a site name
    began: float
    links: Sequence[ChargerLink]
    attempts_before: list[int]
    restored: float | None = None  # when the cause ended
    reached: dict[str, float] = field(default_factory=dict)  # "50", "99", "100" -> loop time
    drained: float | None = None
    ended: float | None = None  # all booted and drained, or the run ended
    attempts: list[int] = field(default_factory=list)  # per charger, while it lasted
    back: list[bool] = field(default_factory=list)  # per charger: booted since `restored`
    emptied: list[bool] = field(default_factory=list)  # ...and its queue drained since
    n_back: int = 0
    n_emptied: int = 0

    @property
    def open(self) -> bool:
        return self.ended is None

    def report(self) -> dict[str, Any]:
        anchor = self.restored if self.restored is not None else self.began

        def after(t: float | None) -> float | None:
            return None if t is None else round(max(t - anchor, 0.0), _DECIMALS)

        attempts = sorted(self.attempts)
        return {
            "kind": self.kind,
            "scope": self.scope,
            "chargers": len(self.links),
            "disrupted_s": (
                None if self.restored is None else round(self.restored - self.began, _DECIMALS)
            ),
            "recovered": "100" in self.reached and self.drained is not None,
            "time_to_50pct_s": after(self.reached.get("50")),
            "time_to_99pct_s": after(self.reached.get("99")),
            "time_to_100pct_s": after(self.reached.get("100")),
            "time_to_queues_drained_s": after(self.drained),
            "reconnect_attempts": _spread(attempts),
        }


def _spread(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "p50": None, "p99": None, "max": None}

    def pick(q: float) -> int:
        return values[min(len(values) - 1, max(0, math.ceil(q * len(values)) - 1))]

    return {
        "mean": round(sum(values) / len(values), _DECIMALS),
        "p50": pick(0.5),
        "p99": pick(0.99),
        "max": values[-1],
    }


def _booted(link: ChargerLink) -> bool:
    return link.state is LinkState.READY


def _drained(link: ChargerLink) -> bool:
    return not any(message.transactional for message in link.queue)


class RecoveryTracker:
    """Watches the links through disruptions and reports each episode's recovery."""

    def __init__(self, links: Sequence[ChargerLink], detect: bool = True) -> None:
        self.links = links
        self.detect = detect
        self.episodes: list[Episode] = []
        self._recent: list[tuple[float, int]] = []  # (time, booted) over the detection window

    def begin(self, kind: str, scope: str, links: Sequence[ChargerLink]) -> Episode:
        """A disruption starts now over `links`."""
        now = asyncio.get_running_loop().time()
        episode = Episode(kind, scope, now, links, [link.connect_attempts for link in links])
        self.episodes.append(episode)
        return episode

    def restored(self, episode: Episode) -> None:
        """The disruption's cause has ended (the network is back, the CSMS listens again)."""
        episode.restored = asyncio.get_running_loop().time()

    async def run(self, poll_s: float = POLL_S) -> None:
        """Poll the open episodes (and look for mass disconnects) until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            now = loop.time()
            for episode in self.episodes:
                if episode.open and episode.restored is not None:
                    self._observe(episode, now)
            if self.detect and not any(e.open for e in self.episodes):
                self._detect(now)
            await asyncio.sleep(poll_s)

    def close(self) -> None:
        """The run ends: every open episode ends with what it reached."""
        now = asyncio.get_running_loop().time()
        for episode in self.episodes:
            if episode.open:
                if episode.restored is not None:
                    self._observe(episode, now)
                if episode.open:
                    self._end(episode, now)

    def report(self) -> list[dict[str, Any]]:
        return [episode.report() for episode in self.episodes]

    # -- internals -----------------------------------------------------------------------------

    def _observe(self, episode: Episode, now: float) -> None:
        links = episode.links
        total = len(links)
        if not episode.back:
            episode.back = [False] * total
            episode.emptied = [False] * total
        back, emptied = episode.back, episode.emptied
        for i, link in enumerate(links):
            if emptied[i] or not _booted(link):
                continue
            if not back[i]:
                back[i] = True
                episode.n_back += 1
            if _drained(link):
                emptied[i] = True
                episode.n_emptied += 1
        share = 1.0 if total == 0 else episode.n_back / total
        for key, threshold in (("50", 0.5), ("99", 0.99), ("100", 1.0)):
            if key not in episode.reached and share >= threshold:
                episode.reached[key] = now
        if episode.drained is None and episode.n_emptied == total:
            episode.drained = now
        if "100" in episode.reached and episode.drained is not None:
            self._end(episode, now)

    def _end(self, episode: Episode, now: float) -> None:
        episode.ended = now
        episode.attempts = [
            link.connect_attempts - before
            for link, before in zip(episode.links, episode.attempts_before, strict=True)
        ]

    def _detect(self, now: float) -> None:
        """Open a `detected` episode when a tenth of the booted fleet dropped within a couple
        of seconds: a CSMS restart or a network failure the run did not inject itself."""
        booted = sum(1 for link in self.links if _booted(link))
        recent = self._recent
        recent.append((now, booted))
        while recent and recent[0][0] < now - DETECT_WINDOW_S:
            recent.pop(0)
        peak = max(b for _, b in recent)
        lost = peak - booted
        if lost >= max(DETECT_MIN_CHARGERS, DETECT_SHARE * peak):
            episode = self.begin("detected", "fleet", self.links)
            episode.began = recent[0][0]
            # The cause is unknown: recovery is measured from when the drop was noticed.
            episode.restored = now
            recent.clear()
