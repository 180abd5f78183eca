"""Validation of OCPP payloads against the JSON schemas that ship inside the `ocpp` package.

Each schema is compiled with fastjsonschema the first time its action is seen, once per process,
and shared by every connection of that version. This module reads schema files; it sends nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import fastjsonschema
import ocpp
from ocpp.v16.enums import Action as V16Action
from ocpp.v201.enums import Action as V201Action

_SCHEMA_ROOT = Path(ocpp.__file__).resolve().parent
_DIRS = {"1.6": "v16", "2.0.1": "v201"}
# 1.6 names a request schema after the action; 2.0.1 adds "Request".
_REQUEST_SUFFIX = {"1.6": "", "2.0.1": "Request"}

Check = Callable[[Any], Any]

# The calls a virtual charger makes, in either version. Both ends compile their schemas before
# the first connection, so compiling does not show as a latency spike on a first call.
CHARGER_ACTIONS: tuple[str, ...] = tuple(
    dict.fromkeys(
        a.value
        for a in (
            V16Action.boot_notification,
            V16Action.heartbeat,
            V16Action.status_notification,
            V16Action.authorize,
            V16Action.start_transaction,
            V16Action.stop_transaction,
            V16Action.meter_values,
            V201Action.transaction_event,
        )
    )
)


def schema_path(version: str, action: str, response: bool) -> Path:
    """The schema file of an action's request or response in the `ocpp` package."""
    suffix = "Response" if response else _REQUEST_SUFFIX[version]
    return _SCHEMA_ROOT / _DIRS[version] / "schemas" / f"{action}{suffix}.json"


class UnknownAction(LookupError):
    """The version has no such action (no schema ships for it)."""


@dataclass(frozen=True, slots=True)
class Violation:
    """Why a payload fails its schema: the JSON Schema keyword that failed (`rule`: type,
    required, enum, maxLength, minItems, additionalProperties, ...) and a one-line message.
    The rpc layer picks the CALLERROR code from the rule."""

    rule: str
    message: str


class FrameValidator:
    """Checks request and response payloads of one OCPP version; compiled validators are cached
    per action and kind and shared by every connection (about 100 small functions at most)."""

    _cache: ClassVar[dict[tuple[str, str, bool], Check]] = {}
    # Top-level field names of each schema that forbids others (for `request_violation`).
    _fields: ClassVar[dict[tuple[str, str, bool], frozenset[str]]] = {}
    _known: ClassVar[dict[tuple[str, str], bool]] = {}

    def __init__(self, version: str) -> None:
        if version not in _DIRS:
            raise ValueError(f"unsupported OCPP version {version!r}")
        self.version = version

    def _check(self, action: str, response: bool) -> Check:
        key = (self.version, action, response)
        check = self._cache.get(key)
        if check is None:
            if not self.knows(action):
                raise UnknownAction(f"OCPP {self.version} has no action {action!r}")
            path = schema_path(self.version, action, response)
            try:
                schema = json.loads(path.read_text(encoding="utf-8-sig"))
            except FileNotFoundError:
                raise UnknownAction(f"OCPP {self.version} has no action {action!r}") from None
            # The 2.0.1 schemas carry a "$id" URN that fastjsonschema would try to resolve as a
            # remote reference; the definitions are all local, so it is not needed.
            schema.pop("$id", None)
            if schema.get("additionalProperties") is False:
                self._fields[key] = frozenset(schema.get("properties", {}))
            check = fastjsonschema.compile(schema)
            self._cache[key] = check
        return check

    def warm(self, actions: Iterable[str]) -> None:
        """Compile the request and response schemas of `actions` now. Compiling one takes
        milliseconds (TransactionEvent tens of them): done lazily, it would show up as a latency
        spike on the first call of each action."""
        for action in actions:
            if self.knows(action):
                self._check(action, False)
                self._check(action, True)

    def knows(self, action: str) -> bool:
        """Whether the version defines `action` (answered from a cache: this is asked of every
        incoming CALL, and a file-system check costs more than validating the payload)."""
        key = (self.version, action)
        known = self._known.get(key)
        if known is None:
            # Only plain names reach the file system: an action is a peer's input, and
            # "../x" must not open some other file.
            known = action.isascii() and action.isalnum()
            known = known and schema_path(self.version, action, False).exists()
            if len(self._known) < 4096:  # a peer inventing names cannot grow this forever
                self._known[key] = known
        return known

    def request_problem(self, action: str, payload: Any) -> str | None:
        """None if `payload` is a valid request of `action`, else what is wrong (one line).

        Raises UnknownAction if the version has no such action."""
        return self._problem(self._check(action, False), payload)

    def response_problem(self, action: str, payload: Any) -> str | None:
        """None if `payload` is a valid response to `action`, else what is wrong (one line)."""
        return self._problem(self._check(action, True), payload)

    def request_violation(self, action: str, payload: Any) -> Violation | None:
        """Like `request_problem`, with the rule that failed. The validator checks required
        fields before unknown ones; a payload with fields its schema does not have is reported
        as additionalProperties even when a required field is missing too (it is the wrong
        message, not an incomplete one). Raises UnknownAction like `request_problem`."""
        check = self._check(action, False)
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            rule = str(exc.rule or "")
            fields = self._fields.get((self.version, action, False))
            if (
                rule == "required"
                and exc.name == "data"
                and isinstance(payload, dict)
                and fields is not None
                and any(name not in fields for name in payload)
            ):
                rule = "additionalProperties"
            return Violation(rule, exc.message)
        return None

    @staticmethod
    def _problem(check: Check, payload: Any) -> str | None:
        try:
            check(payload)
        except fastjsonschema.JsonSchemaValueException as exc:
            return exc.message
        return None
