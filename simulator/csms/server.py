"""The embedded CSMS's websocket server: accepts chargers on ws://host:port/{charger_id},
negotiates ocpp1.6 / ocpp2.0.1, and runs one RpcConnection per charger over the shared store.
It also owns what drives chargers from the CSMS side: `commands` (CSMS-initiated operations),
`listeners` (told about boots and transactions, e.g. the site load manager) and, when asked
for, the loopback HTTP API.

It neither frames nor validates OCPP (that is simulator.rpc) nor picks an event loop: uvloop is
chosen only by `run_csms`, the process entry point.
"""

from __future__ import annotations

import asyncio
import inspect
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

from simulator.csms.commands import CsmsCommands
from simulator.csms.handlers import (
    CsmsCounters,
    CsmsListener,
    Policy,
    Session,
    SessionHooks,
    V16Session,
    V201Session,
)
from simulator.csms.http_api import ApiBindError, CsmsHttpApi
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
    database in memory; `id_tags` None accepts every tag; `api_port` (0: a free one) serves the
    HTTP API on `api_host` (loopback only); `sites_path` names the sites file of the site load
    manager (grid limits and policies)."""

    host: str = "127.0.0.1"
    port: int = 9000
    db_path: Path | None = None
    heartbeat_interval_s: int = 300
    id_tags: frozenset[str] | None = None
    validate: bool = True
    call_timeout_s: float = 30.0
    api_port: int | None = None
    api_host: str = "127.0.0.1"
    sites_path: Path | None = None


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

    One RpcConnection per charger in `connections`; a second connection with the same charger
    id replaces the first, which is closed. CSMS-initiated operations go through `commands`;
    `listeners` hear of boots, transactions and charging states. Everything runs on the loop
    that called `start` (the HTTP API's threads hand their work to it).
    """

    def __init__(self, config: CsmsConfig) -> None:
        self.config = config
        self.store = CsmsStore(config.db_path)
        self.connections: dict[str, RpcConnection] = {}
        self.counters = CsmsCounters()
        self.hooks = SessionHooks()
        self.commands = CsmsCommands(self)
        self.api: CsmsHttpApi | None = None
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

    @property
    def listeners(self) -> list[CsmsListener]:
        """Told about every charger's boot, transactions and charging states (append to it)."""
        return self.hooks.listeners

    def known(self, charger_id: str) -> bool:
        """Whether this charger has ever connected to this CSMS (this database)."""
        if charger_id in self.connections or self.store.is_booted(charger_id):
            return True
        found = self.store.query("SELECT 1 FROM chargers WHERE charger_id = ?", (charger_id,))
        return bool(found)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (returns once the socket is bound), start the store's flusher, the site load
        manager (`sites_path`) and the HTTP API (`api_port`)."""
        if self._server is not None:
            raise RuntimeError("CsmsServer already started")
        api: CsmsHttpApi | None = None
        if self.config.api_port is not None:
            # Checked before anything binds: a non-loopback address is refused outright.
            api = CsmsHttpApi(self, self.config.api_host, self.config.api_port)
        if self.config.sites_path is not None:
            from simulator.csms.load_manager import LoadManager

            self.listeners.append(LoadManager.from_file(self, self.config.sites_path))
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
        if api is not None:
            try:
                api.start()
            except ApiBindError:
                self._server.close()
                await self._server.wait_closed()
                raise
            self.api = api
            log.info("CSMS HTTP API on %s", api.url)
        log.info("CSMS listening on %s", self.url)

    async def stop(self) -> None:
        """Stop the HTTP API, close the listeners that have a `close` (sync or async), close
        every connection, stop listening, flush and close the store."""
        if self.api is not None:
            await self.api.stop()
            self.api = None
        for listener in self.listeners:
            # A listener with work in flight (the load manager's pushes) may end it here.
            close = getattr(listener, "close", None)
            if close is not None:
                try:
                    pending = close()
                    if inspect.isawaitable(pending):
                        await pending
                except Exception:
                    log.exception("closing CSMS listener %r failed", listener)
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
            charger_id, self.store, self._policy, self.counters, config.validate, self.hooks
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


async def _serve_until_signalled(
    config: CsmsConfig, ready: Callable[[CsmsServer], None] | None
) -> None:
    stop = asyncio.Event()
    server = CsmsServer(config)
    with stop_on_signals(asyncio.get_running_loop(), stop.set):
        try:
            await server.start()
            if ready is not None:
                ready(server)
            await stop.wait()
            log.info("CSMS shutting down")
        finally:
            await server.stop()


def run_csms(config: CsmsConfig, ready: Callable[[CsmsServer], None] | None = None) -> None:
    """Run the CSMS until SIGINT or SIGTERM, then close every connection and flush the store.

    `ready(server)` is called once it listens (`server.port`, and `server.api` when the HTTP
    API runs). Uses uvloop where it is installed. Raises OSError when a port cannot be bound
    and ApiBindError for a non-loopback API address."""
    try:
        import uvloop
    except ImportError:  # Windows
        asyncio.run(_serve_until_signalled(config, ready))
    else:
        uvloop.run(_serve_until_signalled(config, ready))
