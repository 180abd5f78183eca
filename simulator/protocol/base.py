"""What every protocol adapter shares: the outbound message, the charger's identity, the
adapter interface, and OCPP timestamps. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import simpy

from models.physics import ChargePlan
from simulator.events import MeterSample

if TYPE_CHECKING:
    from simulator.station import Connector, ConnectorStatus, Station, Transaction


@dataclass(slots=True)
class Outbound:
    """One charger-initiated CALL waiting to be sent.

    `due_s` is the simulated time at which the message became due: latency is measured from
    there, so a generator that falls behind cannot hide the delay (no coordinated omission).
    Transactional messages (1.6 Start/StopTransaction and transaction MeterValues, 2.0.1
    TransactionEvent) are never dropped: while offline they wait in order and are replayed.
    `tx` ties the message to the station's transaction, so the payload can be completed at send
    time (1.6: the transactionId the CSMS assigned to StartTransaction arrives later).
    `waiter` is the SimPy event a station is waiting on for the answer (Authorize);
    `attempts` counts failed deliveries of a transactional message; `on_result` learns from
    the CALLRESULT of a message the protocol operations sent (a triggered BootNotification).
    """

    action: str
    payload: dict[str, Any]
    due_s: float
    transactional: bool = False
    tx: Transaction | None = None
    waiter: simpy.Event | None = None
    attempts: int = 0
    on_result: Callable[[dict[str, Any]], None] | None = None


@dataclass(frozen=True, slots=True)
class ChargerIdentity:
    """Who a charger says it is in BootNotification."""

    charger_id: str
    vendor: str
    model: str
    serial: str
    firmware: str


class Timestamps:
    """Turns simulated seconds into OCPP timestamps (RFC 3339, UTC, millisecond precision)."""

    __slots__ = ("_start",)

    def __init__(self, start: datetime) -> None:
        self._start = start.replace(tzinfo=None) - (start.utcoffset() or timedelta(0))

    def iso(self, t: float) -> str:
        return (self._start + timedelta(seconds=t)).isoformat(timespec="milliseconds") + "Z"

    def seconds(self, stamp: str) -> float:
        """The simulated time of an OCPP timestamp (the inverse of `iso`); a timestamp without
        a zone is read as UTC. Raises ValueError for text that is not a timestamp."""
        moment = datetime.fromisoformat(stamp.strip().replace("z", "Z"))
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return (moment - self._start).total_seconds()


class ProtocolAdapter(Protocol):
    """Maps one charger's station events to OCPP messages of one version, and reads answers.

    Every method that returns messages returns them in the order they must be sent; an empty
    list means the event has no message in this version.
    """

    version: str  # "1.6" or "2.0.1"
    subprotocol: str  # "ocpp1.6" or "ocpp2.0.1"

    def boot_notification(self, t: float) -> Outbound: ...

    def heartbeat(self, t: float) -> Outbound: ...

    def connector_statuses(self, station: Station, t: float) -> list[Outbound]:
        """StatusNotification of every connector (and 1.6 connector 0), sent after a boot."""
        ...

    def status_changed(
        self, connector: Connector, status: ConnectorStatus, t: float
    ) -> list[Outbound]: ...

    def authorize(self, connector: Connector, id_tag: str, t: float) -> Outbound: ...

    def transaction_started(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]: ...

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> list[Outbound]: ...

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]: ...

    def transaction_ended(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]: ...

    def reported_energy_wh(self, tx: Transaction) -> float:
        """The energy of an ended transaction as a CSMS computes it from the registers this
        version sends (1.6: whole watt-hours), so the ledger can match the CSMS exactly."""
        ...

    def prepare(self, message: Outbound) -> dict[str, Any]:
        """The payload to send now (fills in what was not known when the message was made)."""
        ...

    def accepted(self, message: Outbound, response: dict[str, Any]) -> None:
        """Learn from a CALLRESULT (1.6: the transactionId of a StartTransaction)."""
        ...

    @staticmethod
    def boot_outcome(response: dict[str, Any]) -> tuple[str, float]:
        """(status, interval_s) of a BootNotification response."""
        ...

    @staticmethod
    def authorize_outcome(response: dict[str, Any]) -> bool:
        """Whether an Authorize response lets the id tag charge."""
        ...
