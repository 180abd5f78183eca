"""Garbage from the CSMS never crashes a charger nor loses a queued transaction message.

A real charger (station, ChargerControl, ChargerLink, OCPP operations, wired by
simulator.run.networked_charger) has a whole transaction queued while offline (StartTransaction,
MeterValues, StopTransaction; 2.0.1 TransactionEvents). A fake CSMS on 127.0.0.1 answers each
of its CALLs correctly but first sends what hypothesis draws: random bytes and text, random
JSON, frames cut short, wrong types, huge numbers, deep nesting, unknown message types and
actions, known actions with invalid payloads, results and errors for unknown ids, a broken
answer to the pending CALL, a frame over the websocket limit, or a closed connection. The
charger must stay alive, send only schema-valid frames, and deliver every queued transaction
message in order, none dropped, across any reconnects.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import numpy as np
import pytest
import simpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from models.demand import EvDemand
from models.physics import CurrentType, EvseRating
from models.vehicles import vehicle_by_name
from simulator.backoff import RetryBackoff
from simulator.charger import ChargerBehaviour, ChargerControl, ChargerSettings
from simulator.clock import OnlineClock
from simulator.link import ChargerLink, LinkContext, LinkState
from simulator.online import OnlineSink
from simulator.protocol.base import ChargerIdentity, Outbound, ProtocolAdapter, Timestamps
from simulator.protocol.v16 import V16Adapter
from simulator.protocol.v201 import V201Adapter
from simulator.run import networked_charger
from simulator.schemas import FrameValidator
from simulator.station import Site, Station, StationSpec
from simulator.transport import MAX_FRAME_BYTES, ConnectionRamp, ConnectSettings
from tests.simulator.test_rpc import ERROR_CODES  # the codes each version defines

VERSIONS = ("1.6", "2.0.1")
SUBPROTOCOL = {"1.6": "ocpp1.6", "2.0.1": "ocpp2.0.1"}
SPEED = 3600.0  # one simulated hour per wall second
START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
NOW = "2025-03-03T08:00:00.000Z"
EPISODE_TIMEOUT_S = 30.0
MAX_DISCONNECTS = 3  # per episode: each costs a reconnect backoff
TRANSACTIONAL = {"StartTransaction", "StopTransaction", "MeterValues", "TransactionEvent"}
# CSMS-initiated actions that cannot start a transaction, reboot or otherwise change what the
# charger has to send: the fuzz sends them with valid and invalid payloads.
HARMLESS: dict[str, dict[str, dict[str, Any]]] = {
    "1.6": {
        "GetConfiguration": {"key": ["HeartbeatInterval"]},
        "GetLocalListVersion": {},
        "DataTransfer": {"vendorId": "org.fuzz", "messageId": "ping"},
        "ClearCache": {},
        "TriggerMessage": {"requestedMessage": "Heartbeat"},
        "GetCompositeSchedule": {"connectorId": 1, "duration": 600},
        "ClearChargingProfile": {"id": 12345},
        "CancelReservation": {"reservationId": 77},
    },
    "2.0.1": {
        "GetVariables": {
            "getVariableData": [
                {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
            ]
        },
        "GetLocalListVersion": {},
        "DataTransfer": {"vendorId": "org.fuzz", "messageId": "ping"},
        "ClearCache": {},
        "TriggerMessage": {"requestedMessage": "Heartbeat"},
        "GetCompositeSchedule": {"evseId": 1, "duration": 600},
        "ClearChargingProfile": {"chargingProfileId": 12345},
        "CancelReservation": {"reservationId": 77},
    },
}
ANSWERS: dict[str, dict[str, dict[str, Any]]] = {
    "1.6": {
        "BootNotification": {"status": "Accepted", "currentTime": NOW, "interval": 86400},
        "Heartbeat": {"currentTime": NOW},
        "StatusNotification": {},
        "Authorize": {"idTagInfo": {"status": "Accepted"}},
        "StopTransaction": {"idTagInfo": {"status": "Accepted"}},
        "MeterValues": {},
        "DataTransfer": {"status": "UnknownVendorId"},
    },
    "2.0.1": {
        "BootNotification": {"status": "Accepted", "currentTime": NOW, "interval": 86400},
        "Heartbeat": {"currentTime": NOW},
        "StatusNotification": {},
        "Authorize": {"idTokenInfo": {"status": "Accepted"}},
        "TransactionEvent": {},
        "NotifyEvent": {},
        "NotifyReport": {},
        "DataTransfer": {"status": "UnknownVendorId"},
    },
}


# -- what the fake CSMS does before answering a CALL ----------------------------------------------


@dataclass(frozen=True)
class Step:
    """One thing the fake CSMS does before it answers the charger's current CALL: send a frame
    (`data`, text or bytes), close the connection, send a frame over the websocket limit, or
    answer the current CALL with a broken frame (and not answer it properly)."""

    kind: str  # "frame" | "close" | "oversize" | "broken_answer"
    data: str | bytes = ""


json_leaves = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    json_leaves,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)
# Ids of the fake CSMS's own frames never look like the charger's ("1", "2", ...), so garbage
# can never answer the charger's pending CALL by accident.
fuzz_ids = st.builds(lambda n, t: f"g{n}{t}", st.integers(0, 10**6), st.text(max_size=6))
odd_ids = (
    st.integers()
    | st.none()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(min_size=37, max_size=50).map(lambda t: "g" + t)
    | st.lists(st.integers(), max_size=2)
)
kinds = st.sampled_from([2, 2, 3, 4]) | st.sampled_from([0, 1, 5, 6, -1, 2.0, "2", None, True])
unknown_actions = st.sampled_from(["Frobnicate", "../v16/schemas/Reset", "Reset.json", "réset", ""])


def _dump(frame: Any) -> str:
    return json.dumps(frame, allow_nan=False)


@st.composite
def ocpp_shaped(draw: st.DrawFn, version: str) -> str:
    """Arrays that look like OCPP-J, each part possibly wrong, cut to any length."""
    harmless = sorted(HARMLESS[version])
    frame = [
        draw(kinds),
        draw(fuzz_ids | odd_ids),
        draw(st.sampled_from(harmless) | unknown_actions | json_values),
        draw(json_values),
        draw(json_values),
    ]
    return _dump(frame[: draw(st.integers(0, 5))])


@st.composite
def calls(draw: st.DrawFn, version: str) -> str:
    """CALLs the charger must answer: known harmless actions with valid or invalid payloads,
    unknown actions, and answers and errors for ids it never used."""
    action = draw(st.sampled_from(sorted(HARMLESS[version])))
    message_id = draw(fuzz_ids)
    choice = draw(st.integers(0, 4))
    if choice == 0:
        return _dump([2, message_id, action, HARMLESS[version][action]])
    if choice == 1:
        return _dump(
            [
                2,
                message_id,
                action,
                draw(st.dictionaries(st.text(max_size=10), json_values, max_size=4)),
            ]
        )
    if choice == 2:
        return _dump([2, message_id, draw(unknown_actions), {}])
    if choice == 3:
        return _dump([3, message_id, draw(json_values)])
    code = draw(st.sampled_from(sorted(ERROR_CODES[version])) | st.text(max_size=10))
    return _dump([4, message_id, code, draw(st.text(max_size=20)), draw(json_values)])


@st.composite
def special(draw: st.DrawFn, version: str) -> str:
    """Numbers JSON parsers choke on, nesting deeper than they go, cut-off frames."""
    message_id = draw(fuzz_ids)
    which = draw(st.integers(0, 3))
    if which == 0:
        number = draw(st.sampled_from(["1e400", "-1e400", "9" * 400, "NaN", "Infinity", "0x10"]))
        return f'[2, {json.dumps(message_id)}, "DataTransfer", {{"vendorId": {number}}}]'
    if which == 1:
        depth = draw(st.integers(50, 3000))
        return "[" * depth + "]" * draw(st.integers(0, depth))
    if which == 2:
        action = draw(st.sampled_from(sorted(HARMLESS[version])))
        text = _dump([2, message_id, action, HARMLESS[version][action]])
        return text[: draw(st.integers(0, len(text) - 1))]
    return _dump([3, message_id, {"pad": "x" * draw(st.integers(0, 5000))}])


def steps(version: str) -> st.SearchStrategy[Step]:
    frames = st.one_of(
        st.binary(max_size=64).map(lambda b: Step("frame", b)),
        st.text(max_size=64).map(lambda t: Step("frame", t)),
        json_values.map(lambda v: Step("frame", _dump(v))),
        ocpp_shaped(version).map(lambda t: Step("frame", t)),
        calls(version).map(lambda t: Step("frame", t)),
        calls(version).map(lambda t: Step("frame", t)),
        special(version).map(lambda t: Step("frame", t)),
    )
    rare = st.sampled_from([Step("close"), Step("oversize"), Step("broken_answer")])
    return st.one_of(frames, frames, frames, frames, frames, rare)


def scripts(version: str) -> st.SearchStrategy[list[list[Step]]]:
    """What to do before each of the charger's CALLs, in order (then nothing more)."""
    return st.lists(st.lists(steps(version), max_size=4), min_size=1, max_size=25)


# -- the fake CSMS -------------------------------------------------------------------------------


@dataclass
class FuzzCsms:
    """Answers the charger's CALLs correctly after running the script's steps, and checks
    every frame the charger sends against the OCPP schemas (problems go to `problems`)."""

    version: str
    script: list[list[Step]]
    validator: FrameValidator = field(init=False)
    received: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    # id -> our CALLs with that id not answered yet, in order: the action of a valid one, None
    # for an invalid one (a fuzzed id may repeat, on a valid CALL and on garbage alike).
    our_calls: dict[str, list[str | None]] = field(default_factory=dict)
    disconnects: int = 0
    connections: int = 0
    broken_keys: set[str] = field(default_factory=set)  # messages answered broken (once each)
    # (connection, message id) of the CALLs answered broken: not answered properly after.
    broken_calls: set[tuple[int, str]] = field(default_factory=set)
    answered: set[tuple[int, str]] = field(default_factory=set)  # (connection, message key)
    tx_ids: count[int] = field(default_factory=lambda: count(100))
    last_tx_id: int | None = None  # the transactionId of the StartTransaction answered
    server: Server | None = None

    def __post_init__(self) -> None:
        self.validator = FrameValidator(self.version)

    async def start(self) -> str:
        self.server = await serve(
            self._session,
            "127.0.0.1",
            0,
            subprotocols=[Subprotocol(SUBPROTOCOL[self.version])],
            compression=None,
            ping_interval=None,
            max_size=2**20,
        )
        return f"ws://127.0.0.1:{next(iter(self.server.sockets)).getsockname()[1]}"

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _session(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            async for data in ws:
                if not isinstance(data, str):
                    self.problems.append(f"binary frame from the charger: {data[:60]!r}")
                    continue
                if not await self._receive(ws, json.loads(data)):
                    return
        except ConnectionClosed:
            pass

    async def _receive(self, ws: ServerConnection, frame: list[Any]) -> bool:
        """Check one frame of the charger; answer it if it is a CALL. False: connection ended."""
        kind, message_id = frame[0], frame[1]
        if kind == 3:
            problem = self._settle_result(message_id, frame[2])
            if problem is not None:
                self.problems.append(f"CALLRESULT {frame!r}: {problem}")
            return True
        if kind == 4:
            well_formed = (
                len(frame) == 5
                and isinstance(message_id, str)
                and frame[2] in ERROR_CODES[self.version]
                and isinstance(frame[3], str)
                and len(frame[3]) <= 255
                and isinstance(frame[4], dict)
            )
            if not well_formed:
                self.problems.append(f"CALLERROR {frame!r}")
            self._settle_error(message_id)
            return True
        if kind != 2 or len(frame) != 4:
            self.problems.append(f"not an OCPP-J frame: {frame!r}")
            return True
        _, message_id, action, payload = frame
        problem = self.validator.request_problem(action, payload)
        if problem is not None:
            self.problems.append(f"CALL {action}: {problem}")
        self.received.append((action, copy.deepcopy(payload)))
        key = _key(self.version, action, payload)
        if (self.connections, key) in self.answered and action != "Heartbeat":
            # It had its proper answer on this connection: only an answer matched to the wrong
            # CALL (garbage taken for it) makes a charger send it again.
            self.problems.append(f"{action} sent again after its answer: {payload!r}")
        for step in self.script.pop(0) if self.script else []:
            if not await self._run(ws, step, message_id, action, payload):
                return False
        if (self.connections, message_id) in self.broken_calls:
            return True  # answered with a broken frame instead
        await ws.send(_dump([3, message_id, self._answer(action)]))
        self.answered.add((self.connections, key))
        return True

    async def _run(
        self, ws: ServerConnection, step: Step, message_id: str, action: str, payload: Any
    ) -> bool:
        if step.kind == "frame":
            try:
                parsed = json.loads(step.data)
            except (ValueError, RecursionError):
                parsed = None
            if (
                isinstance(parsed, list)
                and len(parsed) == 4
                and parsed[0] == 2
                and isinstance(parsed[1], str)
                and isinstance(parsed[2], str)
                and parsed[2] in HARMLESS[self.version]
                and isinstance(parsed[3], dict)
                and self.validator.request_problem(parsed[2], copy.deepcopy(parsed[3])) is None
            ):
                # A valid CALL: the charger must answer it with a valid CALLRESULT (or refuse it
                # with a CALLERROR); an invalid one only ever with a CALLERROR.
                self.our_calls.setdefault(parsed[1], []).append(parsed[2])
            else:
                # Garbage that starts like a CALL: the charger may answer it with the id it
                # can read there.
                head = _CALL_ID.match(step.data if isinstance(step.data, str) else "")
                if head is not None:
                    try:
                        garbage_id = json.loads(head.group(1))
                    except ValueError:
                        garbage_id = None
                    if isinstance(garbage_id, str):
                        self.our_calls.setdefault(garbage_id, []).append(None)
            await ws.send(step.data)
            return True
        if step.kind == "broken_answer":
            key = _key(self.version, action, payload)
            if key not in self.broken_keys and (self.connections, message_id) not in (
                self.broken_calls
            ):
                # Once per message: three broken answers would exhaust its attempts.
                self.broken_keys.add(key)
                self.broken_calls.add((self.connections, message_id))
                # Cut after the message id, so the charger can tell which CALL it answered (an
                # answer whose id cannot be read leaves the CALL to time out).
                text = _dump([3, message_id, self._answer(action)])
                cut = max(len(text) // 2, text.index('",') + 2)
                await ws.send(text[:cut])
            return True
        if self.disconnects >= MAX_DISCONNECTS:
            return True
        self.disconnects += 1
        if step.kind == "oversize":
            # Over transport.MAX_FRAME_BYTES: the charger's websocket closes with 1009.
            await ws.send(_dump([3, "g-big", {"pad": "x" * (MAX_FRAME_BYTES + 1024)}]))
            return True
        await ws.close(1011, "fuzz: going away without an answer")
        return False

    # A fuzzed id may repeat, so an answer is matched to the CALL it can be for: a CALLRESULT
    # to the first valid CALL with that id whose response schema it meets, a CALLERROR to an
    # invalid one if any waits, else to the latest valid one (a repeated id is refused).

    def _settle_result(self, message_id: Any, payload: Any) -> str | None:
        """None if the CALLRESULT answers one of our valid CALLs correctly, else the problem."""
        calls = self.our_calls.get(message_id) if isinstance(message_id, str) else None
        problem = "no valid CALL of ours has this id"
        if not calls:
            return problem
        for i, action in enumerate(calls):
            if action is None:
                continue
            problem = self.validator.response_problem(action, copy.deepcopy(payload)) or ""
            if not problem:
                del calls[i]
                return None
        return problem

    def _settle_error(self, message_id: Any) -> None:
        calls = self.our_calls.get(message_id) if isinstance(message_id, str) else None
        if not calls:
            return
        if None in calls:
            calls.remove(None)
        else:
            calls.pop()

    def _answer(self, action: str) -> dict[str, Any]:
        if action == "StartTransaction":
            self.last_tx_id = next(self.tx_ids)
            return {"transactionId": self.last_tx_id, "idTagInfo": {"status": "Accepted"}}
        return dict(ANSWERS[self.version].get(action, {}))

    def transaction_messages(self) -> list[str]:
        """The transaction messages received, each once: a message the charger sent again after
        a reconnect (it had no answer) appears once, in its place."""
        keys: list[str] = []
        for action, payload in self.received:
            if action in TRANSACTIONAL:
                key = _key(self.version, action, payload)
                if not keys or keys[-1] != key:
                    keys.append(key)
        return keys


_CALL_ID = re.compile(r'^\s*\[\s*2\s*,\s*("(?:[^"\\]|\\.)*")')


def _key(version: str, action: str, payload: Any) -> str:
    """A transaction message's identity, whatever was filled in at send time (1.6's late
    transactionId, 2.0.1's offline flag)."""
    if not isinstance(payload, dict):
        return f"{action} {payload!r}"
    stable = {k: v for k, v in payload.items() if k not in ("transactionId", "offline")}
    return f"{action} {json.dumps(stable, sort_keys=True)}"


# -- the charger ---------------------------------------------------------------------------------


class Observer:
    """Counts what the charger's link and rpc layer report."""

    def __init__(self) -> None:
        self.invalid: list[tuple[str, str | None, str]] = []
        self.reconnects = 0

    def connect_attempt(self) -> None:
        pass

    def connected(self, duration_s: float, reconnect: bool) -> None:
        self.reconnects += reconnect

    def connect_failed(self, reason: str) -> None:
        pass

    def disconnected(self) -> None:
        pass

    def call_done(self, *args: Any) -> None:
        pass

    def call_handled(self, *args: Any) -> None:
        pass

    def invalid_frame(self, version: str, direction: str, action: str | None, reason: str) -> None:
        self.invalid.append((direction, action, reason))

    def transaction_started(self) -> None:
        pass

    def transaction_ended(self, energy_wh: float) -> None:
        pass


def _driver(arrival_s: float) -> EvDemand:
    car = vehicle_by_name("Volkswagen ID.3")
    return EvDemand(
        arrival_s=arrival_s,
        vehicle=car,
        vehicle_index=0,
        soc_arrival=0.4,
        soc_target=0.9,
        energy_wanted_kwh=20.0,
        dwell_s=3600.0,
        leave_when_charged=False,
        handling_s=60.0,
        ac_taper_soc=0.8,
        patience_s=0.0,
        id_tag="FUZZ0001",
    )


@dataclass
class Rig:
    link: ChargerLink
    ctx: LinkContext
    clock: OnlineClock
    observer: Observer
    queued: list[Outbound]


def build_charger(version: str, url: str) -> Rig:
    """A charger that has lived through one whole transaction while offline: its transaction
    messages wait in the link's queue, in order, for the first connection."""
    env = simpy.Environment()
    observer = Observer()
    sink = OnlineSink(observer)
    site = Site(env, "fuzz", 0, sink)
    spec = StationSpec(
        EvseRating(CurrentType.AC, 11.0, 3), 1, unplug_delay_s=30.0, meter_interval_s=600.0
    )
    station = Station(
        env, site, 0, "fuzz-cp", spec, sink, sink, [_driver(60.0)], rng=np.random.default_rng(3)
    )
    clock = OnlineClock(env, SPEED)
    ctx = LinkContext(
        clock=clock,
        settings=ConnectSettings(base_url=url, ping_interval_s=None),
        ramp=ConnectionRamp(1000.0),
        observer=observer,
        call_timeout_s=2.0,
        heartbeat_s=86400.0,
        backoff=RetryBackoff(wait_minimum_s=0.02, random_range_s=0.02, max_s=0.1),
    )
    identity = ChargerIdentity("fuzz-cp", "Fleetsim", "Fuzz", "SN-FUZZ", "1.0.0")
    stamps = Timestamps(START)
    adapter: ProtocolAdapter = (
        V16Adapter(identity, stamps) if version == "1.6" else V201Adapter(identity, stamps)
    )
    settings = ChargerSettings(heartbeat_s=86400.0, meter_interval_s=600.0)
    control = ChargerControl(station, ChargerBehaviour(), settings, np.random.default_rng(4))
    link = networked_charger(station, adapter, ctx, control)
    sink.attach(link)
    # The whole session happens before the first connection (the EV leaves after an hour).
    env.run(until=2 * 3600.0)
    clock.sim0 = env.now
    queued = [m for m in link.queue if m.transactional]
    return Rig(link, ctx, clock, observer, queued)


async def episode(version: str, script: list[list[Step]]) -> None:
    csms = FuzzCsms(version, [list(group) for group in script])
    url = await csms.start()
    rig = build_charger(version, url)
    link, ctx, clock = rig.link, rig.ctx, rig.clock
    assert len(rig.queued) >= 3  # start, meter values, stop

    def expected() -> list[str]:
        # From the payloads as they are now: validation fills in schema defaults when a
        # message is sent (fastjsonschema), and 1.6 adds the transactionId it learnt.
        return [_key(version, m.action, m.payload) for m in rig.queued]

    clock_task: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(EPISODE_TIMEOUT_S):
            clock.start()
            link.start()
            clock_task = asyncio.create_task(clock.run())
            # Until the charger has delivered everything: booted, and its queue empty (a
            # message leaves the queue only once its CALL had an outcome).
            while link.queue or link.state is not LinkState.READY:
                assert link.task is not None and not link.task.done(), "the link task died"
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # answers to the last garbage CALLs
        assert link.task is not None and not link.task.done()
        assert ctx.dropped == 0
        assert csms.problems == [], csms.problems
        assert [i for i in rig.observer.invalid if i[0] == "out"] == []
        # The final payloads are what went out last: in order, complete, nothing extra.
        assert csms.transaction_messages() == expected()
        # A transaction message answered with a broken frame was sent again (OCPP's
        # TransactionMessageAttempts / MessageAttempts), not given up on.
        for key in csms.broken_keys:
            if key.split(" ", 1)[0] in TRANSACTIONAL:
                sent = [p for a, p in csms.received if _key(version, a, p) == key]
                assert len(sent) >= 2, key
        if version == "1.6":
            # The transactionId the CSMS gave the (last answered) StartTransaction reached the
            # StopTransaction, even though it was assigned after the transaction ended.
            stops = [p for a, p in csms.received if a == "StopTransaction"]
            assert stops and stops[-1]["transactionId"] == csms.last_tx_id
    finally:
        ctx.closing = True
        clock.stop()
        await link.close()
        if clock_task is not None:
            await clock_task
        await csms.stop()


def _run(version: str, script: list[list[Step]]) -> None:
    asyncio.run(episode(version, script))


FUZZ_SETTINGS = settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@FUZZ_SETTINGS
@given(script=scripts("1.6"))
def test_garbage_never_crashes_a_16_charger_nor_loses_a_transaction_message(
    script: list[list[Step]],
) -> None:
    _run("1.6", script)


@FUZZ_SETTINGS
@given(script=scripts("2.0.1"))
def test_garbage_never_crashes_a_201_charger_nor_loses_a_transaction_message(
    script: list[list[Step]],
) -> None:
    _run("2.0.1", script)


@pytest.mark.parametrize("version", VERSIONS)
def test_every_kind_of_garbage_at_once(version: str) -> None:
    """One fixed episode with each kind of step, so every path runs whatever hypothesis draws."""
    harmless = HARMLESS[version]
    action = sorted(harmless)[0]
    script = [
        [Step("frame", b"\xff\x00binary"), Step("frame", "not json {")],
        [Step("frame", '{"an": "object"}'), Step("frame", "[]"), Step("frame", '[7, "g1"]')],
        [Step("frame", _dump([2, "g2", action, harmless[action]]))],
        [Step("frame", _dump([2, "g3", action, {"bogus": [1, 2]}]))],
        [Step("frame", _dump([2, "g4", "Frobnicate", {}])), Step("frame", "[" * 3000)],
        [Step("frame", _dump([3, "g5", {}])), Step("frame", _dump([4, "g6", "X", "", {}]))],
        [Step("frame", '[2, "g7", "DataTransfer", {"vendorId": 1e400}]')],
        [Step("broken_answer")],
        [Step("close")],
        [Step("frame", _dump([2, "g8", action, harmless[action]])[:20])],
        [Step("oversize")],
        [
            Step("frame", _dump([2, 17, action, {}])),
            Step("frame", _dump([2, "g" * 40, action, {}])),
        ],
    ]
    _run(version, script)
