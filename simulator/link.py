"""One virtual charger on the network: connect, boot, heartbeat, and send its messages in order.

A link takes the OCPP messages its protocol adapter made from station events, queues them, and
delivers them one CALL at a time over its connection, reconnecting when the connection drops.
Transactional messages survive a disconnect and are replayed in order; the rest are dropped,
because the statuses sent after the next boot supersede them. No station logic lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, Protocol

import simpy
from ocpp.v16.enums import Action as V16Action

from simulator.backoff import BackoffPolicy, RetryBackoff
from simulator.clock import OnlineClock
from simulator.events import LOCAL_DECISION
from simulator.ledger import MessageLedger
from simulator.protocol.base import Outbound, ProtocolAdapter
from simulator.rpc import (
    CallError,
    CallOutcome,
    CallResult,
    CallTimeout,
    ConnectionLost,
    Handler,
    RpcConnection,
    RpcObserver,
)
from simulator.schemas import CHARGER_ACTIONS, FrameValidator
from simulator.transport import (
    MAX_MESSAGE_BYTES,
    ConnectionRamp,
    ConnectSettings,
    TransportError,
)
from simulator.transport import open_connection as _open_connection

if TYPE_CHECKING:
    from simulator.charger import ChargerControl
    from simulator.station import Connector, Station

log = logging.getLogger(__name__)
_HEARTBEAT = V16Action.heartbeat.value  # the same name in 2.0.1
_TX_EVENT = "TransactionEvent"
_METER_VALUES = V16Action.meter_values.value
OUTAGE_REASON = "network unreachable (injected outage)"
QueuePolicy = Literal["drop_meter_values", "drop_oldest", "drop_newest"]


class LinkObserver(RpcObserver, Protocol):
    """What a link reports about its connection (the run's metrics implement it)."""

    def connect_attempt(self) -> None: ...

    def connected(self, duration_s: float, reconnect: bool) -> None: ...

    def connect_failed(self, reason: str) -> None: ...

    def disconnected(self) -> None: ...


class Operations(Protocol):
    """The CSMS-initiated side of a charger: its handlers, one table per connection."""

    def handlers(self) -> Mapping[str, Handler]: ...


# How long a rebooting charger waits, in wall seconds, for its last transaction messages (the
# StopTransactions of the reset) to be delivered before it closes the connection.
REBOOT_DRAIN_S = 2.0
# ...and at least this long, so the answer to the Reset itself goes out first.
REBOOT_GRACE_S = 0.05


class LinkState(IntEnum):
    """Where a link is in its connection's life."""

    OFFLINE = 0  # no connection (not yet, or between attempts)
    BOOTING = 1  # connected, BootNotification not yet accepted
    READY = 2  # booted: every message may be sent
    CLOSED = 3  # the run is over


@dataclass(frozen=True, slots=True)
class LinkPolicy:
    """How the chargers of one charger model reconnect and keep their offline queue.

    The queue holds at most `queue_limit` messages. When it is full, messages that are not
    transactional go first (the statuses sent after the next boot supersede them); then
    `queue_policy` decides: "drop_meter_values" drops the oldest periodic transaction meter
    value (1.6 MeterValues, 2.0.1 TransactionEvent Updated) and only when none is left the
    oldest message; "drop_oldest" drops the oldest message; "drop_newest" refuses the new one.
    Every transactional message dropped is counted in the ledger."""

    backoff: BackoffPolicy
    queue_limit: int = 10_000
    queue_policy: QueuePolicy = "drop_meter_values"


class NetworkFaults:
    """Injected network outages (wall clock): the whole fleet, or one site, unreachable until
    a given loop time. A charger inside an outage fails every connection attempt at once."""

    __slots__ = ("fleet_until", "site_until")

    def __init__(self) -> None:
        self.fleet_until = 0.0
        self.site_until: dict[str, float] = {}

    def down(self, site: str | None, until: float) -> None:
        if site is None:
            self.fleet_until = max(self.fleet_until, until)
        else:
            self.site_until[site] = max(self.site_until.get(site, 0.0), until)

    def blocked(self, site: str, now: float) -> bool:
        return now < self.fleet_until or now < self.site_until.get(site, 0.0)


@dataclass
class LinkContext:
    """What every link of a run shares: clock, connection settings, policies, observer."""

    clock: OnlineClock
    settings: ConnectSettings
    ramp: ConnectionRamp
    observer: LinkObserver
    validate: bool = True
    call_timeout_s: float = 30.0
    heartbeat_s: float = 300.0  # simulated seconds, until the CSMS says otherwise
    boot_retry_s: float = 60.0  # simulated seconds, when a boot answer gives no interval
    backoff: BackoffPolicy = field(default_factory=RetryBackoff)  # links without a policy
    # 1.6 TransactionMessageAttempts / TransactionMessageRetryInterval (simulated seconds).
    message_attempts: int = 3
    message_retry_s: float = 60.0
    queue_limit: int = 10_000
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    closing: bool = False
    draining: bool = False  # the run is ending: deliver what is queued, add no heartbeats
    ledger: MessageLedger = field(default_factory=MessageLedger)
    network: NetworkFaults = field(default_factory=NetworkFaults)
    connect_errors: dict[str, int] = field(default_factory=dict)
    _validators: dict[str, FrameValidator] = field(default_factory=dict)

    def validator(self, version: str) -> FrameValidator | None:
        if not self.validate:
            return None
        found = self._validators.get(version)
        if found is None:
            found = self._validators[version] = FrameValidator(version)
            found.warm(CHARGER_ACTIONS)
        return found

    def wall_delay(self, sim_seconds: float) -> float:
        """Wall seconds of a protocol interval given in simulated seconds."""
        return sim_seconds / self.clock.speed

    @property
    def dropped(self) -> int:
        """Transactional messages given up on (attempts exhausted or queue full)."""
        return self.ledger.dropped_total

    def default_policy(self) -> LinkPolicy:
        return LinkPolicy(self.backoff, self.queue_limit)


class ChargerLink:
    """One charger's connection and outbound queue.

    The queue holds at most `policy.queue_limit` messages (about 1 KB each with their
    payloads); what goes when it is full is the policy's `queue_policy` (see LinkPolicy), so
    memory stays bounded through a long outage and the ledger says exactly what was lost.
    `connect_attempts` counts every attempt to connect, for the recovery report.
    """

    __slots__ = (
        "_after_boot",
        "_boot_now",
        "_kick",
        "_reboot_until",
        "_sending",
        "_timer",
        "adapter",
        "attempts",
        "connect_attempts",
        "control",
        "ctx",
        "heartbeat_s",
        "operations",
        "policy",
        "queue",
        "rpc",
        "state",
        "station",
        "task",
    )

    def __init__(
        self,
        station: Station,
        adapter: ProtocolAdapter,
        ctx: LinkContext,
        control: ChargerControl | None = None,
        operations: Operations | None = None,
        policy: LinkPolicy | None = None,
    ) -> None:
        self.station = station
        self.adapter = adapter
        self.ctx = ctx
        self.control = control
        self.operations = operations
        self.policy = policy if policy is not None else ctx.default_policy()
        self.state = LinkState.OFFLINE
        self.queue: deque[Outbound] = deque()
        self.rpc: RpcConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.heartbeat_s = ctx.heartbeat_s if control is None else control.settings.heartbeat_s
        self.attempts = 0
        self.connect_attempts = 0
        self._sending: Outbound | None = None  # the message whose CALL is outstanding
        self._kick: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._after_boot: list[Outbound] | None = None
        self._reboot_until = 0.0  # loop time before which a rebooting charger stays away
        self._boot_now = False

    def __repr__(self) -> str:
        return f"<ChargerLink {self.station.charger_id} {self.state.name}>"

    @property
    def charger_id(self) -> str:
        return self.station.charger_id

    # -- called from inside the simulation (synchronous) ---------------------------------------

    def send(self, messages: list[Outbound]) -> None:
        """Queue messages for delivery in order. While not booted, only transactional ones are
        kept: the statuses sent after the boot describe the station as it is then."""
        if not messages:
            return
        state = self.state
        ready = state is LinkState.READY
        queue = self.queue
        ledger = self.ctx.ledger
        limit = self.policy.queue_limit
        for message in messages:
            if not message.transactional:
                if not ready:
                    continue
            else:
                offline = state is LinkState.OFFLINE
                ledger.queued_message(self.charger_id, self.adapter.version, message, offline)
                if offline and message.action == _TX_EVENT:
                    message.payload["offline"] = True  # 2.0.1: it happened while offline
            if len(queue) >= limit and not self._make_room(message):
                continue
            queue.append(message)
        self._wake()

    def send_after_boot(self, messages: list[Outbound]) -> None:
        """Send messages right after the next accepted boot, behind the connector statuses
        (a firmware update's Installed, which a charger reports once it is up again)."""
        if messages:
            if self._after_boot is None:
                self._after_boot = []
            self._after_boot.extend(messages)

    def set_heartbeat(self, seconds: float) -> None:
        """A new heartbeat interval (simulated s) takes effect at once: the next heartbeat is
        due `seconds` from now. 0 or less turns heartbeats off, as OCPP allows."""
        self.heartbeat_s = seconds
        if self.control is not None:
            self.control.settings.heartbeat_s = seconds
        if self.state is LinkState.READY:
            self._arm_heartbeat()

    def boot_now(self) -> None:
        """A CSMS triggered a BootNotification while the boot is Pending: send it now rather
        than at the end of the retry interval (just after the trigger's own answer)."""
        if self.state is LinkState.BOOTING:
            asyncio.get_running_loop().call_later(REBOOT_GRACE_S, self._interrupt_boot_wait)

    def _interrupt_boot_wait(self) -> None:
        self._boot_now = True
        self._wake()

    def rebooting(self, downtime_s: float) -> None:
        """The charger restarts: deliver what the reset produced (its StopTransactions) for a
        moment, close the connection, and stay away for `downtime_s` simulated seconds before
        connecting and booting again. Transaction messages still queued survive, as always."""
        loop = asyncio.get_running_loop()
        self._reboot_until = loop.time() + self.ctx.wall_delay(max(downtime_s, 0.0))
        self.attempts = 0
        self._cancel_timer()
        rpc = self.rpc
        if rpc is not None and not rpc.closed:
            task = loop.create_task(self._close_for_reboot(rpc))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)

    async def _close_for_reboot(self, rpc: RpcConnection) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        await asyncio.sleep(REBOOT_GRACE_S)
        # Everything the reset produced goes out first: the StopTransactions, and a firmware
        # update's InstallRebooting, which is not transactional but must not be lost.
        while loop.time() - began < REBOOT_DRAIN_S and not rpc.closed and self.queue:
            await asyncio.sleep(0.01)
        if self.state is LinkState.READY:
            self.state = LinkState.BOOTING  # nothing new goes out while shutting down
        await rpc.ws.close(1000, "rebooting")

    # -- injected faults -----------------------------------------------------------------------

    def drop_connection(self) -> bool:
        """The network drops the connection: abort it at once, without a close handshake, as a
        lost TCP connection would; the link reconnects after its backoff. False if there was
        no connection to drop."""
        rpc = self.rpc
        return rpc is not None and rpc.abort()

    def power_lost(self, downtime_s: float) -> None:
        """The station lost power: the connection dies with it (nothing is drained, there is no
        time to), and the charger is back `downtime_s` simulated seconds later. Its queued
        transaction messages survive, as a real charger keeps them in non-volatile memory."""
        loop = asyncio.get_running_loop()
        self._reboot_until = loop.time() + self.ctx.wall_delay(max(downtime_s, 0.0))
        self.attempts = 0
        self._cancel_timer()
        self.drop_connection()

    def authorize(self, connector: Connector, id_tag: str) -> bool | simpy.Event:
        """Ask the CSMS about an id tag; offline, the charger authorises locally (1.6
        LocalAuthorizeOffline), as chargers do so drivers are not stranded by an outage."""
        if self.state is not LinkState.READY:
            return True
        message = self.adapter.authorize(connector, id_tag, self.ctx.clock.env.now)
        message.waiter = self.ctx.clock.env.event()
        self.queue.append(message)
        self._wake()
        return message.waiter

    # -- lifetime ------------------------------------------------------------------------------

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._live())

    async def close(self) -> None:
        """End the link: close the connection and stop its task."""
        self.state = LinkState.CLOSED
        self._cancel_timer()
        if self.rpc is not None:
            await self.rpc.ws.close()
        task = self.task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @property
    def idle(self) -> bool:
        """Nothing left to send (or nowhere to send it)."""
        return not self.queue or self.state is not LinkState.READY

    async def _live(self) -> None:
        ctx, loop = self.ctx, asyncio.get_running_loop()
        observer = ctx.observer
        reconnect = False
        site = self.station.site.name
        first = True
        while not ctx.closing:
            if self._reboot_until > loop.time():
                await asyncio.sleep(self._reboot_until - loop.time())
                if ctx.closing:
                    return
            if first:
                # Only the fleet's first connections are paced: reconnects after an outage
                # follow each charger's backoff alone, as a real fleet's do.
                first = False
                await ctx.ramp.acquire()
                if ctx.closing:
                    return
            observer.connect_attempt()
            self.connect_attempts += 1
            began = loop.time()
            try:
                if ctx.network.blocked(site, began):
                    raise TransportError(OUTAGE_REASON)
                ws = await _open_connection(ctx.settings, self.charger_id, self.adapter.subprotocol)
            except TransportError as exc:
                observer.connect_failed(str(exc))
                reason = str(exc)
                if reason not in ctx.connect_errors:
                    log.warning("%s: %s", self.charger_id, reason)
                ctx.connect_errors[reason] = ctx.connect_errors.get(reason, 0) + 1
                await self._back_off()
                continue
            connected_at = loop.time()
            observer.connected(connected_at - began, reconnect)
            reconnect = True
            rpc = RpcConnection(
                ws,
                self.adapter.version,
                handlers=None if self.operations is None else self.operations.handlers(),
                validator=ctx.validator(self.adapter.version),
                observer=observer,
                call_timeout_s=ctx.call_timeout_s,
                max_message_bytes=MAX_MESSAGE_BYTES,
            )
            self.rpc = rpc
            reader = loop.create_task(rpc.serve())
            reader.add_done_callback(self._reader_done)
            try:
                await self._online(rpc)
            finally:
                self._offline()
                observer.disconnected()
                if not reader.done():
                    await ws.close()
                    await asyncio.wait([reader], timeout=ctx.settings.open_timeout_s)
                    reader.cancel()
            if ctx.closing:
                return
            if self._reboot_until > loop.time():
                continue  # a reboot: reconnect when it is over, not after a backoff
            # A connection that held for a while resets the backoff: the next drop is news.
            if loop.time() - connected_at > 60.0:
                self.attempts = 0
            await self._back_off()

    async def _back_off(self) -> None:
        delay = self.policy.backoff.delay(self.attempts, self.ctx.rng)
        self.attempts += 1
        await asyncio.sleep(delay)

    def _reader_done(self, _: object) -> None:
        self._wake()

    def _offline(self) -> None:
        """The connection is gone: keep transactional messages, settle the rest."""
        self.state = LinkState.OFFLINE if not self.ctx.closing else LinkState.CLOSED
        self.rpc = None
        self._cancel_timer()
        kept: deque[Outbound] = deque()
        for message in self.queue:
            if message.transactional:
                kept.append(message)
            elif message.waiter is not None:
                self._answer(message.waiter, LOCAL_DECISION)  # offline: authorise locally
        self.queue = kept

    async def _online(self, rpc: RpcConnection) -> None:
        self.state = LinkState.BOOTING
        if not await self._boot(rpc):
            return
        self.state = LinkState.READY
        # Outside a simulation step env.now is the time of the last event; the wall clock
        # says what simulated time it is now.
        self.queue.extend(self.adapter.connector_statuses(self.station, self.ctx.clock.sim_now()))
        if self._after_boot:
            self.queue.extend(self._after_boot)
            self._after_boot = None
        self._arm_heartbeat()
        await self._deliver(rpc)

    async def _boot(self, rpc: RpcConnection) -> bool:
        """BootNotification until Accepted; Pending and Rejected retry after their interval."""
        ctx = self.ctx
        control = self.control
        adapter: Any = self.adapter
        while not rpc.closed and not ctx.closing:
            if control is not None:
                # What this boot says about itself: the firmware now installed and (2.0.1) why
                # the charger (re)started.
                adapter.firmware = control.firmware_version
                adapter.boot_reason = control.boot_reason
            message = self.adapter.boot_notification(ctx.clock.sim_now())
            outcome = await rpc.call(message.action, message.payload)
            retry_s = ctx.boot_retry_s
            if isinstance(outcome, ConnectionLost):
                return False
            if isinstance(outcome, CallResult):
                status, interval = self.adapter.boot_outcome(outcome.payload)
                if status == "Accepted":
                    if interval > 0:
                        self.heartbeat_s = interval
                        if control is not None:
                            control.settings.heartbeat_s = interval
                    if control is not None:
                        control.boot_reason = "PowerUp"  # a later reconnect is no reboot
                    return True
                if interval > 0:
                    retry_s = interval
            self._boot_now = False
            if not await self._pause(rpc, ctx.wall_delay(retry_s), boot_trigger=True):
                return False
        return False

    async def _pause(self, rpc: RpcConnection, seconds: float, boot_trigger: bool = False) -> bool:
        """Sleep `seconds`, but give up when the connection drops; False if it did. New
        messages wake the task but do not end the pause; with `boot_trigger` a triggered
        BootNotification (`boot_now`) does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while loop.time() < deadline:
            if boot_trigger and self._boot_now:
                break
            if rpc.closed or self.ctx.closing:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._kick = waiter
            timer = loop.call_at(deadline, _release, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self._kick = None
        return not rpc.closed and not self.ctx.closing

    async def _deliver(self, rpc: RpcConnection) -> None:
        """Send queued messages one CALL at a time until the connection closes."""
        ctx = self.ctx
        clock = ctx.clock
        loop = asyncio.get_running_loop()
        while not rpc.closed:
            if not self.queue:
                waiter: asyncio.Future[None] = loop.create_future()
                self._kick = waiter
                try:
                    await waiter
                finally:
                    self._kick = None
                continue
            message = self.queue[0]
            payload = self.adapter.prepare(message)
            self._sending = message
            try:
                outcome = await rpc.call(message.action, payload, due=clock.wall_of(message.due_s))
            finally:
                self._sending = None
            if isinstance(outcome, ConnectionLost):
                return  # the message stays at the head and is replayed after reconnecting
            if self.queue and self.queue[0] is message:
                self.queue.popleft()
            retry = self._settle(message, outcome, payload)
            if retry:
                self.queue.appendleft(message)
                control = self.control
                retry_s = (
                    ctx.message_retry_s if control is None else control.settings.message_retry_s
                )
                # OCPP: the n-th retry waits n times the retry interval.
                if not await self._pause(rpc, ctx.wall_delay(retry_s * message.attempts)):
                    return

    def _settle(self, message: Outbound, outcome: CallOutcome, payload: dict[str, Any]) -> bool:
        """Act on a CALL's outcome; True if a transactional message must be sent again."""
        if isinstance(outcome, CallResult):
            if message.transactional:
                self.ctx.ledger.delivered_message(
                    self.charger_id, self.adapter.version, message, payload, outcome.payload
                )
            self.adapter.accepted(message, outcome.payload)
            if message.on_result is not None:
                message.on_result(outcome.payload)
            if message.waiter is not None:
                self._answer(message.waiter, self.adapter.authorize_outcome(outcome.payload))
            return False
        if message.waiter is not None:
            # A CALLERROR is a refusal; silence is treated like being offline.
            self._answer(
                message.waiter, LOCAL_DECISION if isinstance(outcome, CallTimeout) else False
            )
        if message.transactional and isinstance(outcome, CallError | CallTimeout):
            message.attempts += 1
            control = self.control
            attempts = (
                self.ctx.message_attempts if control is None else control.settings.message_attempts
            )
            if message.attempts < attempts:
                return True
            self.ctx.ledger.dropped_message(
                self.charger_id, self.adapter.version, message, overflow=False
            )
            log.warning(
                "%s: %s given up after %d attempts",
                self.charger_id,
                message.action,
                message.attempts,
            )
        return False

    def _answer(self, waiter: simpy.Event, accepted: bool | str) -> None:
        if not waiter.triggered:
            self.ctx.clock.call_soon(partial(_succeed, waiter, accepted))

    def _make_room(self, incoming: Outbound) -> bool:
        """The queue is full: drop a message as the policy says; False if `incoming` is the
        one dropped. The message whose CALL is outstanding is never dropped."""
        queue = self.queue
        sending = self._sending
        for i, message in enumerate(queue):
            if not message.transactional and message.waiter is None and message is not sending:
                del queue[i]
                return True
        policy = self.policy.queue_policy
        if policy == "drop_newest":
            self._overflowed(incoming)
            return False
        if policy == "drop_meter_values":
            for i, message in enumerate(queue):
                if message is not sending and _is_meter_update(message):
                    del queue[i]
                    self._overflowed(message)
                    return True
        for i, message in enumerate(queue):
            if message is not sending and message.waiter is None:
                del queue[i]
                if message.transactional:
                    self._overflowed(message)
                return True
        return True  # nothing may go: the queue grows by one beyond its limit

    def _overflowed(self, message: Outbound) -> None:
        if message.transactional:
            self.ctx.ledger.dropped_message(
                self.charger_id, self.adapter.version, message, overflow=True
            )

    # -- heartbeat -----------------------------------------------------------------------------

    def _arm_heartbeat(self) -> None:
        self._cancel_timer()
        if self.heartbeat_s <= 0:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.ctx.wall_delay(self.heartbeat_s), self._heartbeat)

    def _heartbeat(self) -> None:
        self._timer = None
        if self.state is not LinkState.READY or self.ctx.draining:
            return
        # A charger that is behind (a slow CSMS, a saturated generator) has one heartbeat
        # waiting at most: a real one would not send a backlog of them.
        if not any(message.action == _HEARTBEAT for message in self.queue):
            self.queue.append(self.adapter.heartbeat(self.ctx.clock.sim_now()))
            self._wake()
        self._arm_heartbeat()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _wake(self) -> None:
        kick = self._kick
        if kick is not None and not kick.done():
            kick.set_result(None)


def _is_meter_update(message: Outbound) -> bool:
    """A periodic transaction meter value: what a full queue may lose first."""
    if message.action == _METER_VALUES:
        return message.transactional
    payload = message.payload
    return (
        message.action == _TX_EVENT
        and payload.get("eventType") == "Updated"
        and payload.get("triggerReason") == "MeterValuePeriodic"
    )


# Strong references to fire-and-forget tasks (the loop only keeps weak ones).
_BACKGROUND: set[asyncio.Task[None]] = set()


def _release(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _succeed(waiter: simpy.Event, value: bool | str) -> None:
    if not waiter.triggered:
        waiter.succeed(value)
