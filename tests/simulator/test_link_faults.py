"""A charger's link through faults: its backoff, its bounded offline queue, the 2.0.1 offline flag,
transaction ids assigned after a reconnect, and fleet-wide outages in both reconnect modes."""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace
from typing import Any

import pytest
import simpy
from hypothesis import given
from hypothesis import strategies as st

from models.calendar import Calendar
from simulator.backoff import RetryBackoff
from simulator.clock import OnlineClock
from simulator.fleet import Fleet
from simulator.ledger import MessageLedger
from simulator.link import ChargerLink, LinkContext, LinkPolicy, LinkState
from simulator.metrics import FleetMetrics
from simulator.online import OnlineSink
from simulator.protocol.base import Outbound, Timestamps
from simulator.run import Runner, RunOptions, build_chargers
from simulator.transport import ConnectionRamp, ConnectSettings
from tests.conftest import busy_scenario
from tests.simulator.test_run_faults import RUN_TIMEOUT_S, FakeCsms

# -- backoff ------------------------------------------------------------------------------------


@given(
    attempt=st.integers(0, 50),
    wait=st.floats(0.1, 100),
    spread=st.floats(0, 100),
    repeat=st.integers(0, 10),
    cap=st.floats(0.1, 5000),
    seed=st.integers(0, 2**32),
)
def test_backoff_doubles_a_bounded_number_of_times_adds_jitter_and_caps(
    attempt: int, wait: float, spread: float, repeat: int, cap: float, seed: int
) -> None:
    jittered = RetryBackoff(wait, spread, repeat, cap)
    delay = jittered.delay(attempt, random.Random(seed))
    base = wait * 2 ** min(attempt, repeat)
    assert min(cap, base) <= delay <= min(cap, base + spread)
    herd = RetryBackoff(wait, spread, repeat, cap, synchronised=True)
    # Synchronised: no random part at all, whatever the generator says.
    assert herd.delay(attempt, random.Random(seed)) == min(cap, base)
    assert herd.delay(attempt, random.Random(seed + 1)) == min(cap, base)


def test_backoff_follows_the_2_0_1_retry_variables() -> None:
    backoff = RetryBackoff(wait_minimum_s=3, random_range_s=0, repeat_times=2, max_s=100)
    rng = random.Random(1)
    assert [backoff.delay(n, rng) for n in range(5)] == [3, 6, 12, 12, 12]
    draws = [RetryBackoff(1, 10).delay(0, random.Random(s)) for s in range(200)]
    assert min(draws) < 2 and max(draws) > 10  # spread over [1, 11)


# -- the offline queue --------------------------------------------------------------------------


def _offline_link(policy: LinkPolicy, version: str = "1.6") -> ChargerLink:
    """One charger's link, never started (so offline), with `policy`."""
    scenario = busy_scenario()
    env = simpy.Environment()
    metrics = FleetMetrics()
    sink = OnlineSink(metrics)
    start = scenario.start_utc()
    fleet = Fleet(scenario, env, Calendar(start, scenario.timezone), sink, sink)
    ctx = LinkContext(
        clock=OnlineClock(env, 60.0),
        settings=ConnectSettings("ws://127.0.0.1:9"),
        ramp=ConnectionRamp(100.0),
        observer=metrics,
    )
    links = build_chargers(fleet, Timestamps(start), ctx, scenario.online)
    link = next(x for x in links if x.adapter.version == version)
    link.policy = policy
    return link


def _meter(seq: int) -> Outbound:
    return Outbound("MeterValues", {"n": seq}, 0.0, True, SimpleNamespace(seq=seq))  # type: ignore[arg-type]


def _start(seq: int) -> Outbound:
    return Outbound("StartTransaction", {"n": seq}, 0.0, True, SimpleNamespace(seq=seq))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "kept"),
    [
        # Meter values go first, oldest first; starts and stops stay.
        ("drop_meter_values", ["S1", "S2", "M3", "S4"]),
        ("drop_oldest", ["S2", "M2", "M3", "S4"]),
        ("drop_newest", ["S1", "M1", "S2", "M2"]),
    ],
)
def test_a_full_offline_queue_drops_what_its_policy_says_and_counts_it(
    policy: Any, kept: list[str]
) -> None:
    link = _offline_link(LinkPolicy(RetryBackoff(), queue_limit=4, queue_policy=policy))
    sent = [_start(1), _meter(1), _start(2), _meter(2), _meter(3), _start(4)]
    link.send(sent)
    # A heartbeat while offline is not kept at all: the boot supersedes it.
    link.send([Outbound("Heartbeat", {}, 0.0)])
    names = [
        ("S" if m.action == "StartTransaction" else "M") + str(m.payload["n"]) for m in link.queue
    ]
    assert names == kept
    ledger = link.ctx.ledger
    assert sum(ledger.dropped_overflow.values()) == 2 == link.ctx.dropped
    assert sum(ledger.queued_offline.values()) == 6
    ledger.count_unsent(list(link.queue))
    assert ledger.balance() == {}


def test_transaction_events_made_offline_say_so() -> None:
    link = _offline_link(LinkPolicy(RetryBackoff()), version="2.0.1")
    offline = Outbound("TransactionEvent", {"eventType": "Updated"}, 0.0, True)
    link.send([offline])
    assert offline.payload["offline"] is True
    link.state = LinkState.READY
    online = Outbound("TransactionEvent", {"eventType": "Updated"}, 0.0, True)
    link.send([online])
    assert "offline" not in online.payload


# -- outages and reconnect modes, end to end against a fake CSMS --------------------------------


async def _outage_run(mode: str) -> tuple[FakeCsms, dict[str, Any], MessageLedger]:
    """Six chargers, a 2 s fleet outage from 1.5 s; reconnect waits of 1 s (+ up to 3 s), so
    all are back well before the 9 s run ends."""
    csms = FakeCsms()
    reconnect = {"wait_minimum_s": 1.0, "random_range_s": 3.0, "repeat_times": 0, "mode": mode}
    base = busy_scenario(duration="9s")
    data = base.model_dump(mode="json", exclude_none=True)
    for site in data["sites"]:
        site["charger"]["reconnect"] = reconnect
    data["faults"] = {"outages": [{"at": "1.5s", "duration": "2s"}]}
    from simulator.scenario import parse_scenario

    scenario = parse_scenario(data, "outage")
    async with asyncio.timeout(RUN_TIMEOUT_S), csms:
        options = RunOptions(target=csms.url, metrics_port=None, live=False)
        result = await Runner(scenario, options).run()
    assert result.ledger is not None
    return csms, result.report, result.ledger


async def test_an_outage_drops_every_connection_and_all_come_back() -> None:
    csms, report, ledger_ = await _outage_run("jittered")
    assert report["faults"]["outage"] == 1
    assert report["connect_errors"]["network unreachable (injected outage)"] >= 1
    [episode] = report["recovery"]
    assert episode["kind"] == "outage" and episode["chargers"] == 6
    assert episode["recovered"] and 1.9 <= episode["disrupted_s"] <= 3.0
    assert report["chargers"]["connected_end"] == 6
    for charger, boots in csms.boots.items():
        assert boots == 2, charger  # booted again after the outage
    ledger = report["ledger"]
    assert ledger["messages_dropped"] == 0 and ledger["messages_unsent"] == 0
    assert ledger["reconciliation"]["ok"] and not ledger["reconciliation"]["csms_checked"]
    # 1.6 transactions began and ended while offline: their StartTransaction was answered only
    # after the reconnect, and the transactionId it assigned is the one their StopTransaction
    # carried (transactions_16 checks each stop names an id this CSMS gave that charger).
    assert ledger_.queued_offline["StartTransaction"] > 0
    assert ledger_.queued_offline["StopTransaction"] > 0
    started, stopped = csms.transactions_16()
    assert stopped == started
    # 2.0.1 events made offline say so; none made online does.
    events = [p for _, p in csms.received("TransactionEvent")]
    flagged = sum(1 for p in events if p.get("offline") is True)
    assert flagged == ledger_.queued_offline["TransactionEvent"] > 0


async def test_synchronised_chargers_come_back_together_and_jittered_ones_spread() -> None:
    herd, _, _ = await _outage_run("synchronised")
    spread, _, _ = await _outage_run("jittered")

    def second_boots(csms: FakeCsms) -> list[float]:
        return sorted(times[1] for times in csms.boot_times.values())

    together = second_boots(herd)
    apart = second_boots(spread)
    assert len(together) == len(apart) == 6
    # Same attempts at the same instants: the herd reconnects within a few milliseconds.
    assert together[-1] - together[0] < 0.25, together
    assert apart[-1] - apart[0] > 0.4, apart


async def test_a_power_loss_cuts_the_connection_and_the_stops_arrive_after_the_boot() -> None:
    """Every station loses power 30 simulated minutes in (half a wall second at 3600x) for ten
    minutes: its transactions end with PowerLoss, the connection dies without a goodbye, and
    after the downtime the charger boots again and delivers the stops it kept."""
    csms = FakeCsms()
    base = busy_scenario(duration="4s")
    data = base.model_dump(mode="json", exclude_none=True)
    data["faults"] = {"power_loss": {"at": ["30m"], "downtime": "10m"}}
    from simulator.scenario import parse_scenario

    scenario = parse_scenario(data, "power-loss")
    async with asyncio.timeout(RUN_TIMEOUT_S), csms:
        options = RunOptions(target=csms.url, metrics_port=None, live=False)
        result = await Runner(scenario, options).run()
    report = result.report
    assert report["faults"]["power_loss"] == 6
    for charger in csms.connects:
        assert csms.boots[charger] == 2, charger
    stops16 = [p["reason"] for _, p in csms.received("StopTransaction")]
    ended201 = [
        p["transactionInfo"]["stoppedReason"]
        for _, p in csms.received("TransactionEvent")
        if p["eventType"] == "Ended"
    ]
    assert "PowerLoss" in stops16 and "PowerLoss" in ended201
    ledger = report["ledger"]
    assert ledger["messages_dropped"] == 0 and ledger["messages_unsent"] == 0
    assert ledger["reconciliation"]["ok"]
    assert report["chargers"]["connected_end"] == 6


async def test_an_oversized_call_is_refused_and_the_connection_stays_up() -> None:
    """A CALL over MAX_MESSAGE_BYTES (but under the websocket's frame limit) from the CSMS is
    answered with a format-violation CALLERROR, as a charger advertising BytesPerMessage does;
    the same connection then carries on."""
    import orjson
    from websockets.asyncio.server import ServerConnection, serve

    from simulator.transport import MAX_FRAME_BYTES, MAX_MESSAGE_BYTES

    answers: list[Any] = []
    done = asyncio.Event()

    async def csms(ws: ServerConnection) -> None:
        boot = orjson.loads(await ws.recv())
        assert boot[2] == "BootNotification"
        reply = {"status": "Accepted", "currentTime": "2025-01-07T10:00:00Z", "interval": 3600}
        await ws.send(orjson.dumps([3, boot[1], reply]).decode())
        big = {"vendorId": "fuzz", "data": "x" * (MAX_MESSAGE_BYTES + 100)}
        assert len(orjson.dumps(big)) < MAX_FRAME_BYTES
        await ws.send(orjson.dumps([2, "big", "DataTransfer", big]).decode())
        small = {"vendorId": "fuzz", "data": "x"}
        await ws.send(orjson.dumps([2, "small", "DataTransfer", small]).decode())
        while len(answers) < 2:
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2:  # the charger's StatusNotifications: answered as a CSMS would
                await ws.send(orjson.dumps([3, frame[1], {}]).decode())
            elif frame[1] in ("big", "small"):
                answers.append(frame)
        done.set()
        await asyncio.sleep(10)

    async with serve(csms, "127.0.0.1", 0, subprotocols=["ocpp1.6"]) as server:  # type: ignore[list-item]
        port = next(iter(server.sockets)).getsockname()[1]
        link = _offline_link(LinkPolicy(RetryBackoff()))
        link.ctx.settings = ConnectSettings(f"ws://127.0.0.1:{port}", ping_interval_s=None)
        clock = link.ctx.clock
        clock.start()
        ticking = asyncio.create_task(clock.run())  # operations act through the simulation
        link.start()
        try:
            async with asyncio.timeout(20):
                await done.wait()
        finally:
            await link.close()
            clock.stop()
            await ticking
    big_answer, small_answer = answers
    assert big_answer[0] == 4 and big_answer[2] == "FormationViolation", big_answer[:3]
    assert small_answer[0] == 3  # answered normally on the same connection
