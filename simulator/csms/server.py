"""The embedded CSMS's websocket server: accepts chargers on ws://host:port/{charger_id},
negotiates ocpp1.6 / ocpp2.0.1, and runs one RpcConnection per charger over the shared store.

It neither frames nor validates OCPP (that is simulator.rpc) nor picks an event loop: uvloop is
chosen only by `run_csms`, the process entry point.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import NegotiationError
from websockets.http11 import Request, Response
from websockets.typing import Subprotocol

from simulator.csms.handlers import CsmsCounters, Policy, Session, V16Session, V201Session
from simulator.csms.store import CsmsStore
from simulator.rpc import RpcConnection
from simulator.schemas import CHARGER_ACTIONS, FrameValidator
from simulator.signals import stop_on_signals

log = logging.getLogger(__name__)

# Subprotocol -> OCPP version; the order is the server's preference when a client offers both.
_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1"}
_SESSIONS: dict[str, type[Session]] = {"1.6": V16Session, "2.0.1": V201Session}
_MAX_FRAME = 64 * 1024


@dataclass(frozen=True)
class CsmsConfig:
    """How to run the embedded CSMS. `port` 0 picks a free port; `db_path` None keeps the
    database in memory; `id_tags` None accepts every tag."""

    host: str = "127.0.0.1"
    port: int = 9000
    db_path: Path | None = None
    heartbeat_interval_s: int = 300
    id_tags: frozenset[str] | None = None
    validate: bool = True
    call_timeout_s: float = 30.0


def charger_id_of(path: str) -> str:
    """The charger id in a request path: its last non-empty segment, url-decoded."""
    segments = [s for s in urlsplit(path).path.split("/") if s]
    return unquote(segments[-1]) if segments else ""


def _select_subprotocol(
    connection: ServerConnection, offered: Sequence[Subprotocol]
) -> Subprotocol | None:
    # The client's order wins (it knows which version it prefers); no match is an HTTP 400.
    for subprotocol in offered:
        if subprotocol in _VERSIONS:
            return subprotocol
    raise NegotiationError("expected subprotocol ocpp1.6 or ocpp2.0.1")


def _process_request(connection: ServerConnection, request: Request) -> Response | None:
    if not charger_id_of(request.path):
        return connection.respond(HTTPStatus.NOT_FOUND, "expected ws://host:port/{charger_id}\n")
    return None


class CsmsServer:
    """A small but real CSMS for OCPP 1.6J and 2.0.1 chargers.

    One RpcConnection per charger in `connections` (CSMS-initiated calls go through it); a
    second connection with the same charger id replaces the first, which is closed. Everything
    runs on the loop that called `start`.
    """

    def __init__(self, config: CsmsConfig) -> None:
        self.config = config
        self.store = CsmsStore(config.db_path)
        self.connections: dict[str, RpcConnection] = {}
        self.counters = CsmsCounters()
        self._policy = Policy(config.heartbeat_interval_s, config.id_tags)
        self._validators = (
            {v: FrameValidator(v) for v in _VERSIONS.values()} if config.validate else {}
        )
        for validator in self._validators.values():
            # Compiled now, not on the first message: compiling TransactionEvent's schema takes
            # tens of milliseconds, which would show as a latency spike in the first run.
            validator.warm(CHARGER_ACTIONS)
        self._server: Server | None = None
        self._closing: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (returns once the socket is bound) and start the store's flusher."""
        if self._server is not None:
            raise RuntimeError("CsmsServer already started")
        self.store.start()
        self._server = await serve(
            self._serve_charger,
            self.config.host,
            self.config.port,
            subprotocols=[Subprotocol(s) for s in _VERSIONS],
            select_subprotocol=_select_subprotocol,
            process_request=_process_request,
            compression=None,
            # OCPP's Heartbeat is the liveness check; websocket pings would add a timer and a
            # frame per charger for nothing.
            ping_interval=None,
            max_size=_MAX_FRAME,
            close_timeout=5,
            # A fleet reconnecting at once (after a CSMS restart) must not overflow the accept
            # queue: the default 100 would turn a burst into SYN retries seconds apart.
            backlog=4096,
        )
        log.info("CSMS listening on %s", self.url)

    async def stop(self) -> None:
        """Close every connection, stop listening, flush and close the store."""
        server = self._server
        if server is not None:
            server.close(close_connections=True)
            await server.wait_closed()
        for task in list(self._closing):
            task.cancel()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        await self.store.close()
        log.info("CSMS stopped: %s", self.stats())

    async def __aenter__(self) -> CsmsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The bound port (the real one when configured with port 0)."""
        if self._server is None:
            raise RuntimeError("CsmsServer not started")
        for sock in self._server.sockets:
            return int(sock.getsockname()[1])
        raise RuntimeError("CsmsServer has no socket")

    @property
    def url(self) -> str:
        host = self.config.host
        if ":" in host:
            host = f"[{host}]"
        return f"ws://{host}:{self.port}"

    def stats(self) -> dict[str, Any]:
        c = self.counters
        return {
            "connections_open": len(self.connections),
            "connects_total": c.connects_total,
            "replaced": c.replaced,
            "messages": dict(c.messages),
            "errors": dict(c.errors),
            "invalid_frames": c.invalid_frames,
            "unknown_charger_messages": c.unknown_charger_messages,
            "transactions_open": self.store.open_transactions,
        }

    # -- one charger ---------------------------------------------------------------------------

    async def _serve_charger(self, ws: ServerConnection) -> None:
        charger_id = charger_id_of(ws.request.path if ws.request is not None else "")
        version = _VERSIONS[ws.subprotocol or ""]  # select_subprotocol guaranteed one
        config = self.config
        session = _SESSIONS[version](
            charger_id, self.store, self._policy, self.counters, config.validate
        )
        rpc = RpcConnection(
            ws,
            version,
            handlers=session.handlers(),
            validator=self._validators.get(version),
            observer=session,
            call_timeout_s=config.call_timeout_s,
        )
        old = self.connections.get(charger_id)
        self.connections[charger_id] = rpc
        self.counters.connects_total += 1
        self.store.connected(charger_id, version, True)
        if old is not None:
            # The newest connection wins (a charger reconnecting after a half-open drop);
            # closing the old one may wait for its close handshake, so not here.
            self.counters.replaced += 1
            task = asyncio.create_task(old.ws.close(1000, "replaced by a new connection"))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        log.debug("charger %s connected (OCPP %s) from %s", charger_id, version, ws.remote_address)
        reason = "closed"
        try:
            reason = await rpc.serve()
        finally:
            if self.connections.get(charger_id) is rpc:
                del self.connections[charger_id]
                self.store.connected(charger_id, version, False)
            log.debug("charger %s disconnected: %s", charger_id, reason)


async def _serve_until_signalled(config: CsmsConfig, ready: Callable[[int], None] | None) -> None:
    stop = asyncio.Event()
    server = CsmsServer(config)
    with stop_on_signals(asyncio.get_running_loop(), stop.set):
        try:
            await server.start()
            if ready is not None:
                ready(server.port)
            await stop.wait()
            log.info("CSMS shutting down")
        finally:
            await server.stop()


def run_csms(config: CsmsConfig, ready: Callable[[int], None] | None = None) -> None:
    """Run the CSMS until SIGINT or SIGTERM, then close every connection and flush the store.

    `ready(port)` is called once the socket listens. Uses uvloop where it is installed."""
    try:
        import uvloop
    except ImportError:  # Windows
        asyncio.run(_serve_until_signalled(config, ready))
    else:
        uvloop.run(_serve_until_signalled(config, ready))
