"""CSMS-side misbehaviour for fault tests: the embedded CSMS answers some charger-initiated
CALLs late, with a CALLERROR, or closes the connection instead of answering.

It wraps a session's handler table and decides per call from a seeded random stream; it knows
nothing of what any action means, and counts every fault it injects.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from ocpp.v16.enums import Action as Action16
from ocpp.v201.enums import Action as Action201
from websockets.asyncio.connection import Connection

from simulator.rpc import Handler, OcppError

# Every action name of either version: what `actions` may name.
KNOWN_ACTIONS = frozenset(a.value for a in Action16) | frozenset(a.value for a in Action201)
# Closing on it would keep a charger from ever booting (it reconnects and boots again).
_NEVER_CLOSED = "BootNotification"
# The websocket close code of a server failing (RFC 6455 §7.4.1: "unexpected condition").
CLOSE_CODE = 1011
MAX_SLOW_S = 600.0
_KEYS = ("slow_p", "slow_s", "error_p", "close_p", "actions", "seed")

Answer = dict[str, Any] | Awaitable[dict[str, Any]]


class CsmsChaos:
    """Decides, per charger-initiated CALL, whether the CSMS misbehaves, and how.

    One uniform draw per CALL of an action in `actions` (None: every action) picks at most one
    fault: close the connection with code 1011 instead of answering (`close_p`; the handler
    still runs, as in a CSMS that processed the message and failed before answering, except
    for BootNotification, which is never closed on), answer CALLERROR InternalError without
    processing (`error_p`), or answer after `slow_s` more wall seconds (`slow_p`). The stream
    is seeded; which charger gets which fault depends on the order calls arrive in. `counts`
    holds slow, error and close; `record` (given to `wrap`) hears "chaos_<kind>" too.
    """

    __slots__ = ("_rng", "actions", "close_p", "counts", "error_p", "seed", "slow_p", "slow_s")

    def __init__(
        self,
        slow_p: float = 0.0,
        slow_s: float = 2.0,
        error_p: float = 0.0,
        close_p: float = 0.0,
        actions: Iterable[str] | None = None,
        seed: int = 0,
    ) -> None:
        for name, p in (("slow_p", slow_p), ("error_p", error_p), ("close_p", close_p)):
            if not (isinstance(p, int | float) and 0.0 <= p <= 1.0):
                raise ValueError(f"{name}: expected a probability from 0 to 1 (got {p!r})")
        if slow_p + error_p + close_p > 1.0 + 1e-9:
            raise ValueError("slow_p + error_p + close_p: must not exceed 1")
        if not (isinstance(slow_s, int | float) and 0.0 < slow_s <= MAX_SLOW_S):
            raise ValueError(f"slow_s: expected seconds above 0, at most 600 (got {slow_s!r})")
        names = None if actions is None else frozenset(actions)
        if names is not None:
            unknown = sorted(names - KNOWN_ACTIONS)
            if unknown:
                raise ValueError(f"actions: unknown OCPP action {unknown[0]!r}")
            if not names:
                raise ValueError("actions: expected at least one action name")
        self.slow_p = float(slow_p)
        self.slow_s = float(slow_s)
        self.error_p = float(error_p)
        self.close_p = float(close_p)
        self.actions = names
        self.seed = seed
        self._rng = random.Random(seed)
        self.counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"CsmsChaos({self.option()})"

    def option(self) -> str:
        """These settings as a `--chaos` value (what `parse_chaos` reads back)."""
        text = (
            f"slow_p={self.slow_p:g},slow_s={self.slow_s:g},error_p={self.error_p:g},"
            f"close_p={self.close_p:g},seed={self.seed}"
        )
        if self.actions is not None:
            text += ",actions=" + "+".join(sorted(self.actions))
        return text

    def draw(self, action: str) -> str | None:
        """The fault for one CALL of `action`: "close", "error", "slow" or None."""
        if self.actions is not None and action not in self.actions:
            return None
        u = self._rng.random()
        if u < self.close_p:
            return None if action == _NEVER_CLOSED else "close"
        u -= self.close_p
        if u < self.error_p:
            return "error"
        if u - self.error_p < self.slow_p:
            return "slow"
        return None

    def wrap(
        self,
        handlers: Mapping[str, Handler],
        ws: Connection,
        record: Callable[[str], None] | None = None,
    ) -> dict[str, Handler]:
        """`handlers` with faults injected; `ws` is the connection to close, `record` is told
        "chaos_slow", "chaos_error" or "chaos_close" for each fault (the store's anomalies)."""
        return {action: self._chaotic(action, h, ws, record) for action, h in handlers.items()}

    def _chaotic(
        self,
        action: str,
        handler: Handler,
        ws: Connection,
        record: Callable[[str], None] | None,
    ) -> Handler:
        def handle(payload: dict[str, Any]) -> Answer:
            fault = self.draw(action)
            if fault is None:
                return handler(payload)
            self.counts[fault] += 1
            if record is not None:
                record(f"chaos_{fault}")
            if fault == "error":
                raise OcppError("InternalError", "injected fault: the CSMS failed")
            answer = handler(payload)
            if fault == "slow":
                return self._late(answer)
            return self._close_instead(answer, ws)

        return handle

    async def _late(self, answer: Answer) -> dict[str, Any]:
        response = answer if isinstance(answer, dict) else await answer
        await asyncio.sleep(self.slow_s)
        return response

    @staticmethod
    async def _close_instead(answer: Answer, ws: Connection) -> dict[str, Any]:
        if inspect.isawaitable(answer):
            # Processed (and stored, when acknowledgements are durable), then never answered.
            await answer
        await ws.close(CLOSE_CODE, "injected fault: closed instead of answering")
        # The rpc layer's answer to this goes nowhere: the connection is closed.
        raise OcppError("InternalError", "closed instead of answering")


def _number(key: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{key}: expected a number (got {text!r})") from None
    if not math.isfinite(value):
        raise ValueError(f"{key}: expected a finite number (got {text!r})")
    return value


def parse_chaos(text: str) -> CsmsChaos:
    """A `--chaos` value: "slow_p=0.05,slow_s=2,error_p=0.01,close_p=0.001[,actions=A+B]
    [,seed=N]" (every key optional; actions separated by '+'). Raises ValueError("--chaos:
    <key>: <problem>") on a bad one."""
    values: dict[str, Any] = {}
    try:
        for item in text.split(","):
            item = item.strip()
            if not item:
                continue
            key, sep, raw = item.partition("=")
            key, raw = key.strip(), raw.strip()
            if not sep:
                raise ValueError(f"{item!r}: expected key=value")
            if key not in _KEYS:
                raise ValueError(f"{key}: unknown key (expected one of {', '.join(_KEYS)})")
            if key in values:
                raise ValueError(f"{key}: given twice")
            if key == "actions":
                values[key] = [a.strip() for a in raw.split("+") if a.strip()]
            elif key == "seed":
                if not raw.lstrip("-").isdigit():
                    raise ValueError(f"seed: expected an integer (got {raw!r})")
                values[key] = int(raw)
            else:
                values[key] = _number(key, raw)
        if not values:
            raise ValueError("expected key=value pairs, e.g. slow_p=0.05,slow_s=2")
        return CsmsChaos(**values)
    except ValueError as exc:
        raise ValueError(f"--chaos: {exc}") from None
