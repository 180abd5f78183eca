"""Load management: every policy respects the limit, each session's range, and its own order."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.load_management import (
    LoadPolicy,
    SessionNeed,
    ac_min_power_w,
    allocate,
    departure_order,
    start_order,
)

POLICIES = list(LoadPolicy)
# Allocations are compared with a tolerance this small relative to the limit (float sums).
TOL = 1e-9


def need(key: str, max_w: float, min_w: float = 0.0, start: float = 0.0, dep: float | None = None):
    return SessionNeed(key, max_w, min_w, start, dep)


watts = st.floats(min_value=0.0, max_value=50_000.0, allow_nan=False)


@st.composite
def site(draw: st.DrawFn) -> tuple[float, list[SessionNeed]]:
    n = draw(st.integers(0, 12))
    sessions = []
    for i in range(n):
        max_w = draw(st.one_of(watts, st.sampled_from([3680.0, 7360.0, 11040.0, 22080.0])))
        min_w = draw(st.one_of(st.just(0.0), st.sampled_from([1380.0, 4140.0]), watts))
        start = draw(st.sampled_from([0.0, 10.0, 20.0, 30.0]))
        dep = draw(st.one_of(st.none(), st.sampled_from([100.0, 200.0, 300.0])))
        sessions.append(need(f"s{i}", max_w, min_w, start, dep))
    limit = draw(st.one_of(watts, st.floats(0.0, 200_000.0), st.just(0.0)))
    return limit, sessions


def check_basics(limit: float, sessions: list[SessionNeed], out: dict[str, float]) -> None:
    assert set(out) == {s.key for s in sessions}
    assert math.fsum(out.values()) <= limit
    for s in sessions:
        a = out[s.key]
        assert 0.0 <= a <= s.max_w
        assert a == 0.0 or a >= s.min_w


@settings(max_examples=150, deadline=None)
@given(site(), st.sampled_from(POLICIES))
def test_never_above_the_limit_nor_a_session_range(
    case: tuple[float, list[SessionNeed]], policy: LoadPolicy
) -> None:
    limit, sessions = case
    check_basics(limit, sessions, allocate(policy, limit, sessions))


@settings(max_examples=80, deadline=None)
@given(site(), st.sampled_from(POLICIES), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(
    case: tuple[float, list[SessionNeed]], policy: LoadPolicy, rnd: random.Random
) -> None:
    limit, sessions = case
    shuffled = list(sessions)
    rnd.shuffle(shuffled)
    assert allocate(policy, limit, sessions) == allocate(policy, limit, shuffled)


@settings(max_examples=150, deadline=None)
@given(site())
def test_equal_share_is_max_min_fair(case: tuple[float, list[SessionNeed]]) -> None:
    limit, sessions = case
    out = allocate(LoadPolicy.EQUAL_SHARE, limit, sessions)
    served = [s for s in sessions if out[s.key] > 0.0]
    # Nobody could be raised by taking from someone richer: a session below another is at
    # its maximum, or the richer one is held at its own minimum.
    for i in served:
        for j in served:
            if out[i.key] < out[j.key] - TOL * max(limit, 1.0):
                assert out[i.key] == i.max_w or out[j.key] == j.min_w
    # Work-conserving: capacity is left over only when every served session has its maximum.
    if math.fsum(out.values()) < limit - TOL * max(limit, 1.0):
        assert all(out[s.key] == s.max_w for s in served)
    # A session left out could not charge, or its minimum did not fit beside those served.
    served_min = math.fsum(s.min_w for s in served if s.min_w > 0)
    for s in sessions:
        if out[s.key] == 0.0 and s.can_charge and s.min_w > 0.0:
            assert served_min + s.min_w > limit or s.max_w == 0.0
        if out[s.key] == 0.0 and s.can_charge and s.min_w == 0.0:
            # Minimum zero always fits: it gets nothing only when nothing is left at all.
            assert math.fsum(out.values()) >= limit - TOL * max(limit, 1.0)
    # Who is left out follows the start order: a served session never started after an
    # excluded one that needed no more than it did.
    for s in sessions:
        if out[s.key] == 0.0 and s.can_charge and s.min_w > 0.0:
            for t in served:
                if (t.started_s, t.key) > (s.started_s, s.key):
                    assert t.min_w < s.min_w


@pytest.mark.parametrize("policy", [LoadPolicy.FCFS, LoadPolicy.EDF])
@settings(max_examples=100, deadline=None)
@given(case=site())
def test_ordered_policies_serve_earlier_sessions_first(
    policy: LoadPolicy, case: tuple[float, list[SessionNeed]]
) -> None:
    limit, sessions = case
    out = allocate(policy, limit, sessions)
    if policy is LoadPolicy.FCFS:
        order = sorted(sessions, key=lambda s: (s.started_s, s.key))
    else:
        order = sorted(
            sessions,
            key=lambda s: (s.departure_s is None, s.departure_s or 0.0, s.started_s, s.key),
        )
    assert order == (start_order if policy is LoadPolicy.FCFS else departure_order)(sessions)
    leftover = limit - math.fsum(out.values())
    for i, first in enumerate(order):
        if not first.can_charge:
            continue
        for later in order[i + 1 :]:
            if out[later.key] > 0.0:
                # The earlier one is full, or what was left for it was below its minimum.
                a = out[first.key]
                slack = TOL * max(limit, 1.0)
                assert a == first.max_w or (
                    a == 0.0 and first.min_w > out[later.key] + leftover - slack
                )


def test_equal_share_water_fills_what_one_session_cannot_use() -> None:
    sessions = [need("a", 3000.0), need("b", 20000.0), need("c", 20000.0)]
    assert allocate("equal_share", 23000.0, sessions) == {"a": 3000.0, "b": 10000.0, "c": 10000.0}
    # Under no pressure everyone gets its maximum.
    assert allocate("equal_share", 1e6, sessions) == {"a": 3000.0, "b": 20000.0, "c": 20000.0}


def test_minimums_decide_who_charges_when_not_all_fit() -> None:
    m = ac_min_power_w(3, 230.0)
    assert m == 4140.0
    # Five 11 kW sessions on 10 kW: only two minimums fit; the earliest two share equally.
    sessions = [need(f"s{i}", 11040.0, m, start=float(i)) for i in range(5)]
    out = allocate("equal_share", 10000.0, sessions)
    assert out == {"s0": 5000.0, "s1": 5000.0, "s2": 0.0, "s3": 0.0, "s4": 0.0}
    # A later single-phase car with a lower minimum still fits beside the first two.
    low = need("one-phase", 3680.0, ac_min_power_w(1, 230.0), start=9.0)
    out = allocate("equal_share", 10000.0, [*sessions[:3], low])
    assert out["s2"] == 0.0 and out["one-phase"] > 0.0
    assert math.fsum(out.values()) == pytest.approx(10000.0)
    # Mixed minimums: max-min fair keeps the higher minimum at its floor.
    out = allocate("equal_share", 11.0, [need("x", 100.0, 1.0), need("y", 100.0, 10.0, 1.0)])
    assert out == {"x": 1.0, "y": 10.0}


def test_fcfs_and_edf_orders() -> None:
    sessions = [
        need("early-late", 11000.0, 4140.0, start=0.0, dep=900.0),
        need("mid-soon", 11000.0, 4140.0, start=10.0, dep=100.0),
        need("late-unknown", 11000.0, 4140.0, start=20.0, dep=None),
        need("last-mid", 11000.0, 4140.0, start=30.0, dep=500.0),
    ]
    assert allocate("fcfs", 18000.0, sessions) == {
        "early-late": 11000.0,
        "mid-soon": 7000.0,
        "late-unknown": 0.0,
        "last-mid": 0.0,
    }
    assert allocate("edf", 18000.0, sessions) == {
        "early-late": 0.0,
        "mid-soon": 11000.0,
        "late-unknown": 0.0,
        "last-mid": 7000.0,
    }
    # What is left below one's minimum skips it, and a later session may take it.
    out = allocate("fcfs", 14000.0, [*sessions[:2], need("small", 3000.0, 0.0, start=40.0)])
    assert out == {"early-late": 11000.0, "mid-soon": 0.0, "small": 3000.0}


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError):
        allocate("equal_share", -1.0, [])
    with pytest.raises(ValueError):
        allocate("round_robin", 1.0, [])
    with pytest.raises(ValueError):
        allocate("fcfs", 1.0, [need("a", 1.0), need("a", 2.0)])
    with pytest.raises(ValueError):
        need("a", math.inf)
