"""Site load management: share a grid connection's limit among the sessions charging behind it.

`allocate` turns a site limit and the running sessions into one power cap per session, under
one of three policies used in charging research (ACN-Sim, SpiceEV):

- equal share: max-min fair water-filling. Every session gets the same level, except one that
  cannot use that much (it gets its maximum, and what it leaves goes to the others) and one
  that cannot charge that slowly (it gets its minimum).
- first come, first served (FCFS): in order of transaction start, each takes what it can.
- earliest departure first (EDF): the same, in order of announced departure; sessions whose
  departure is unknown come last, among themselves by start.

A session cannot charge below its minimum (IEC 61851: 6 A per phase on AC), so one that would
get less gets nothing and its share goes to the others; which sessions are left out when the
minimums do not all fit is decided by the policy's order (by start for equal share). The caps
always add up to at most the limit. Pure functions: no I/O, no SimPy, no OCPP.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from models.smart_charging import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    ChargingRateUnit,
    ChargingSchedule,
    SchedulePeriod,
)

# IEC 61851-1: the lowest current a Mode 3 EVSE may signal (PWM duty cycle 10 %).
AC_MIN_CURRENT_A = 6.0
# The profiles a load manager installs, offline and online alike. Ids are kept clear of the
# small ids a scenario's static profiles or a person using the CSMS would pick; a TxProfile's
# id names its EVSE, because a profile replaces any other with the same id on the station.
SAFE_DEFAULT_PROFILE_ID = 900_000
TX_PROFILE_ID_BASE = 900_000
SAFE_DEFAULT_STACK_LEVEL = 0
TX_PROFILE_STACK_LEVEL = 1
# OCPP 1.6 and 2.0.1 give a limit with one decimal: caps are rounded down to it.
LIMIT_DECIMALS = 1


class LoadPolicy(StrEnum):
    """How a site's limit is shared among its sessions."""

    EQUAL_SHARE = "equal_share"
    FCFS = "fcfs"
    EDF = "edf"


@dataclass(frozen=True, slots=True)
class SessionNeed:
    """What the load manager knows about one running session.

    `max_w` is the most it can draw (EVSE rating, vehicle limit, as far as known); `min_w` the
    least it can charge at (0 for none); `started_s` when its transaction started and
    `departure_s` when the driver is expected to leave (None: unknown). Times are seconds on
    any common axis.
    """

    key: str
    max_w: float
    min_w: float = 0.0
    started_s: float = 0.0
    departure_s: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.max_w) and self.max_w >= 0.0):
            raise ValueError(f"session {self.key!r}: max_w must be finite and >= 0")
        if not (math.isfinite(self.min_w) and self.min_w >= 0.0):
            raise ValueError(f"session {self.key!r}: min_w must be finite and >= 0")
        if not math.isfinite(self.started_s):
            raise ValueError(f"session {self.key!r}: started_s must be finite")
        if self.departure_s is not None and not math.isfinite(self.departure_s):
            raise ValueError(f"session {self.key!r}: departure_s must be finite or None")

    @property
    def can_charge(self) -> bool:
        """False when no allocation can make it charge (its maximum is below its minimum)."""
        return self.max_w > 0.0 and self.max_w >= self.min_w


def ac_min_power_w(phases: int, voltage_v: float) -> float:
    """The least power an AC session on `phases` phases can charge at (6 A per phase),
    rounded up to the precision of a profile's limit."""
    return round_up(AC_MIN_CURRENT_A * phases * voltage_v)


def round_down(watts: float, decimals: int = LIMIT_DECIMALS) -> float:
    """`watts` rounded down to `decimals` decimals (never up: caps must still fit)."""
    if not watts > 0.0:
        return 0.0
    scale = 10**decimals
    # The nudge keeps 0.3 at 0.3 (0.3 * 10 is 2.9999...); the loop undoes any overshoot.
    steps = math.floor(watts * scale + 1e-6)
    while steps > 0 and steps / scale > watts:
        steps -= 1
    return steps / scale


def round_up(watts: float, decimals: int = LIMIT_DECIMALS) -> float:
    """`watts` rounded up to `decimals` decimals: a minimum that round_down never undercuts."""
    if not watts > 0.0:
        return 0.0
    scale = 10**decimals
    steps = math.ceil(watts * scale - 1e-6)
    while steps / scale < watts:
        steps += 1
    return steps / scale


def safe_default_w(limit_w: float, connectors: int) -> float:
    """The TxDefault cap that keeps a site under `limit_w` whatever starts before the load
    manager has reacted: the limit split evenly over every connector of the site."""
    return round_down(limit_w / max(connectors, 1))


def safe_default_profile(limit_w: float) -> ChargingProfile:
    """The station-wide TxDefaultProfile (evse 0) capping every session at `limit_w`."""
    return ChargingProfile(
        profile_id=SAFE_DEFAULT_PROFILE_ID,
        stack_level=SAFE_DEFAULT_STACK_LEVEL,
        purpose=ChargingProfilePurpose.TX_DEFAULT,
        kind=ChargingProfileKind.RELATIVE,
        schedule=ChargingSchedule(ChargingRateUnit.W, (SchedulePeriod(0.0, limit_w),)),
        evse_id=0,
    )


def tx_profile(evse_id: int, limit_w: float, transaction_id: str | None = None) -> ChargingProfile:
    """The TxProfile holding the session on `evse_id` at `limit_w` until told otherwise."""
    return ChargingProfile(
        profile_id=TX_PROFILE_ID_BASE + evse_id,
        stack_level=TX_PROFILE_STACK_LEVEL,
        purpose=ChargingProfilePurpose.TX,
        kind=ChargingProfileKind.RELATIVE,
        schedule=ChargingSchedule(ChargingRateUnit.W, (SchedulePeriod(0.0, limit_w),)),
        transaction_id=transaction_id,
        evse_id=evse_id,
    )


def start_order(sessions: Iterable[SessionNeed]) -> list[SessionNeed]:
    """Sessions by transaction start, ties by key (FCFS order; equal share's priority)."""
    return sorted(sessions, key=lambda s: (s.started_s, s.key))


def departure_order(sessions: Iterable[SessionNeed]) -> list[SessionNeed]:
    """Sessions by departure, unknown departures last, ties by start then key (EDF order)."""
    return sorted(
        sessions,
        key=lambda s: (
            s.departure_s is None,
            math.inf if s.departure_s is None else s.departure_s,
            s.started_s,
            s.key,
        ),
    )


def allocate(
    policy: LoadPolicy | str, limit_w: float, sessions: Iterable[SessionNeed]
) -> dict[str, float]:
    """A power cap in watts for every session (0 = may not charge now); they sum to at most
    `limit_w`, none exceeds its session's `max_w`, and each is 0 or at least its `min_w`.
    The result depends only on the sessions given, not on their order."""
    policy = LoadPolicy(policy)
    if not limit_w >= 0.0 or math.isinf(limit_w):
        raise ValueError(f"limit_w must be finite and >= 0, got {limit_w}")
    needs = list(sessions)
    out = {s.key: 0.0 for s in needs}
    if len(out) != len(needs):
        raise ValueError("session keys must be unique")
    if policy is LoadPolicy.EQUAL_SHARE:
        out.update(_equal_share(limit_w, start_order(needs)))
    elif policy is LoadPolicy.FCFS:
        out.update(_in_order(limit_w, start_order(needs)))
    else:
        out.update(_in_order(limit_w, departure_order(needs)))
    return out


def _in_order(limit_w: float, ordered: Sequence[SessionNeed]) -> dict[str, float]:
    """Greedy: each session in turn takes what it can of what is left. One whose minimum no
    longer fits gets nothing, and a later one with a lower minimum may still fit."""
    out: dict[str, float] = {}
    taken: list[float] = []
    for s in ordered:
        if not s.can_charge:
            continue
        # What is left, from the exact sum: repeated subtraction would drift by ulps.
        share = min(s.max_w, limit_w - math.fsum(taken))
        while share > 0.0 and math.fsum([*taken, share]) > limit_w:
            share = math.nextafter(share, 0.0)
        if share <= 0.0 or share < s.min_w:
            continue
        out[s.key] = share
        taken.append(share)
        if share < s.max_w:
            break  # it took everything that was left
    return out


def _equal_share(limit_w: float, ordered: Sequence[SessionNeed]) -> dict[str, float]:
    """Max-min fair shares. Sessions join in start order while their minimums all fit; the
    level L then solves sum(clamp(L, min_i, max_i)) = limit (or everyone gets its maximum)."""
    served: list[SessionNeed] = []
    mins: list[float] = []
    for s in ordered:
        if s.can_charge and math.fsum([*mins, s.min_w]) <= limit_w:
            served.append(s)
            mins.append(s.min_w)
    if not served:
        return {}
    lows = [s.min_w for s in served]
    highs = [s.max_w for s in served]
    if math.fsum(highs) <= limit_w:
        return {s.key: s.max_w for s in served}
    level = _water_level(lows, highs, limit_w)
    return {s.key: min(max(level, lo), hi) for s, lo, hi in zip(served, lows, highs, strict=True)}


def _filled(level: float, lows: Sequence[float], highs: Sequence[float]) -> float:
    return math.fsum(min(max(level, lo), hi) for lo, hi in zip(lows, highs, strict=True))


def _water_level(lows: Sequence[float], highs: Sequence[float], limit_w: float) -> float:
    """The level L with sum(clamp(L, low_i, high_i)) == limit_w, rounded so that the sum never
    exceeds it. Needs sum(lows) <= limit_w < sum(highs)."""
    # The fill is piecewise linear in L with corners at every low and high: find the last
    # corner at or below the limit, then solve the linear piece after it.
    corners = sorted(set(lows) | set(highs))
    lo, hi = 0, len(corners) - 1
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _filled(corners[mid], lows, highs) <= limit_w:
            lo = mid
        else:
            hi = mid - 1
    base = corners[lo]
    if _filled(base, lows, highs) > limit_w:
        # Below every corner the fill is sum(lows), which fits by precondition.
        return -math.inf
    rising = sum(1 for a, b in zip(lows, highs, strict=True) if a <= base < b)
    level = base + (limit_w - _filled(base, lows, highs)) / max(rising, 1)
    # Rounding may leave the sum an ulp or two over the limit: step the level down until not.
    for _ in range(64):
        excess = _filled(level, lows, highs) - limit_w
        if excess <= 0.0:
            return level
        level = math.nextafter(level - excess / max(rising, 1), -math.inf)
    return base
