"""How long a charger waits before its next connection attempt, per charger model.

Mirrors the OCPP 2.0.1 OCPPCommCtrlr variables RetryBackOffWaitMinimum, RetryBackOffRandomRange
and RetryBackOffRepeatTimes (1.6 has no equivalent, and real 1.6 firmware does much the same),
with a cap. The synchronised mode has no random part: every charger that lost its connection
at the same moment comes back at the same moments, the thundering herd a fleet without jitter
causes after a backend outage.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from simulator.scenario import ReconnectConfig


class BackoffPolicy(Protocol):
    """Anything that says how long to wait before reconnect attempt number `attempt`."""

    def delay(self, attempt: int, rng: random.Random) -> float: ...


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """The wait before reconnect attempt `attempt` (0: the first retry after a failure):
    `wait_minimum_s` doubled for each earlier attempt, at most `repeat_times` times, plus a
    uniform draw from [0, `random_range_s`) unless synchronised, all capped at `max_s`."""

    wait_minimum_s: float = 1.0
    random_range_s: float = 10.0
    repeat_times: int = 6
    max_s: float = 600.0
    synchronised: bool = False

    @classmethod
    def from_config(cls, config: ReconnectConfig) -> RetryBackoff:
        return cls(
            wait_minimum_s=config.wait_minimum_s,
            random_range_s=config.random_range_s,
            repeat_times=config.repeat_times,
            max_s=config.max_s,
            synchronised=config.mode == "synchronised",
        )

    def delay(self, attempt: int, rng: random.Random) -> float:
        base = self.wait_minimum_s * 2.0 ** min(max(attempt, 0), self.repeat_times)
        if not self.synchronised and self.random_range_s > 0:
            base += self.random_range_s * rng.random()
        return min(self.max_s, base)
