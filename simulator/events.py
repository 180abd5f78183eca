"""What a station tells the outside world, and what it asks of it.

A station emits its events to a `StationSink` and asks an `Authorizer` about id tags. Offline,
the sink records and the authorizer is an in-process policy; online (OCPP) the sink turns the
events into messages and the authorizer asks the CSMS. The station never knows which.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

import simpy

from models.physics import ChargePlan

if TYPE_CHECKING:
    from models.demand import EvDemand
    from simulator.station import Connector, ConnectorStatus, Site, Transaction


# The answer to an Authorize the CSMS never gave (the connection dropped, or the call timed
# out): the charger decided locally, as if offline. Truthy, so the driver may charge; it is not
# the CSMS's verdict, so it must not enter the authorisation cache.
LOCAL_DECISION = "local"


class StopReason(StrEnum):
    """Why a transaction ended; values are OCPP 1.6 Reason names (2.0.1 adapters map them)."""

    LOCAL = "Local"
    EV_DISCONNECTED = "EVDisconnected"
    REMOTE = "Remote"
    DE_AUTHORIZED = "DeAuthorized"
    POWER_LOSS = "PowerLoss"
    REBOOT = "Reboot"
    HARD_RESET = "HardReset"  # 1.6 Reset Hard; 2.0.1 Reset Immediate
    SOFT_RESET = "SoftReset"
    UNLOCK_COMMAND = "UnlockCommand"
    OTHER = "Other"


@dataclass(frozen=True, slots=True)
class MeterSample:
    """One coherent meter reading: every value derives from the same charge plan at one instant."""

    energy_wh: float  # the connector's energy register
    power_w: float
    current_a: float  # per phase in use (AC) or DC current
    phases: int
    voltage_v: float
    soc: float


class StationSink(Protocol):
    """Receives a station's events in the order they happen, at simulated time `t` (s)."""

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None: ...

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None: ...

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None: ...

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None: ...

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None: ...

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None: ...

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None: ...


class Authorizer(Protocol):
    """Decides whether an id tag may charge.

    Returns the answer at once (offline policies) or a SimPy event whose value is the answer
    (online: the rpc layer succeeds it when the CSMS responds).
    """

    def authorize(self, connector: Connector, id_tag: str) -> bool | simpy.Event: ...


class AcceptAll:
    """Offline authorisation policy: every id tag is accepted."""

    def authorize(self, connector: Connector, id_tag: str) -> bool:
        return True


class NullSink:
    """A sink that ignores everything (for stations under test that only need the model)."""

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        pass

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        pass

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        pass

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        pass

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        pass

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        pass

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        pass
