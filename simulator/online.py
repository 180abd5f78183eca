"""The online station sink: station events become OCPP messages on each charger's link, and the
ledger keeps what the fleet reported so it can be checked against what the CSMS recorded.

It wires the station (which knows nothing of OCPP) to its protocol adapter and link; it opens no
sockets itself and decides nothing the station model decides.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import simpy

from models.demand import EvDemand
from models.physics import ChargePlan
from simulator.events import MeterSample
from simulator.link import ChargerLink
from simulator.site_power import SitePowerMeter
from simulator.station import ConnectorStatus

if TYPE_CHECKING:
    from simulator.station import Connector, Site, Station, Transaction

_NOT_DRAWING = frozenset(
    {
        ConnectorStatus.SUSPENDED_EV,
        ConnectorStatus.SUSPENDED_EVSE,
        ConnectorStatus.FINISHING,
        ConnectorStatus.AVAILABLE,
    }
)


class TransactionObserver(Protocol):
    """Counts transactions as they start and end (the run's metrics implement it)."""

    def transaction_started(self) -> None: ...

    def transaction_ended(self, energy_wh: float) -> None: ...


@dataclass
class Ledger:
    """Everything the fleet told the CSMS about transactions and energy, as the wire carried it.

    Energy is taken from the meter readings exactly as sent (1.6 sends whole watt-hours), so a
    CSMS that recorded every message agrees with it to the watt-hour."""

    started: int = 0
    ended: int = 0
    sessions: int = 0
    turned_away: int = 0
    energy_wh: float = 0.0
    energy_by_charger: dict[str, float] = field(default_factory=dict)

    def record_end(self, charger_id: str, energy: float) -> float:
        self.ended += 1
        self.energy_wh += energy
        self.energy_by_charger[charger_id] = self.energy_by_charger.get(charger_id, 0.0) + energy
        return energy

    @property
    def open(self) -> int:
        return self.started - self.ended


class OnlineSink:
    """Station sink and authoriser of an online run: each event goes to its charger's adapter,
    and the messages it makes go to the charger's link."""

    def __init__(self, observer: TransactionObserver, power: SitePowerMeter | None = None) -> None:
        self.links: dict[Station, ChargerLink] = {}
        self.ledger = Ledger()
        self.observer = observer
        self.power = power

    def attach(self, link: ChargerLink) -> None:
        self.links[link.station] = link

    # -- StationSink ---------------------------------------------------------------------------

    def status_changed(self, connector: Connector, status: ConnectorStatus, t: float) -> None:
        if self.power is not None and status in _NOT_DRAWING:
            # A full EV (SuspendedEV) ends its plan without a new one: it draws nothing now.
            self.power.planned(connector, 0.0, t)
        link = self.links.get(connector.station)
        if link is not None:
            link.send(link.adapter.status_changed(connector, status, t))

    def transaction_started(self, connector: Connector, tx: Transaction, t: float) -> None:
        self.ledger.started += 1
        self.observer.transaction_started()
        link = self.links[connector.station]
        link.send(link.adapter.transaction_started(connector, tx, connector.sample(t), t))

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> None:
        if self.power is not None:
            self.power.planned(connector, plan.power_at(0.0) * 1000.0, t)
        link = self.links[connector.station]
        link.send(link.adapter.charge_planned(connector, tx, plan, t))

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> None:
        link = self.links[connector.station]
        link.send(link.adapter.meter_sampled(connector, tx, sample, t))

    def transaction_ended(self, connector: Connector, tx: Transaction, t: float) -> None:
        if self.power is not None:
            self.power.planned(connector, 0.0, t)
        link = self.links[connector.station]
        energy = self.ledger.record_end(link.charger_id, link.adapter.reported_energy_wh(tx))
        self.observer.transaction_ended(energy)
        link.send(link.adapter.transaction_ended(connector, tx, connector.sample(t), t))

    def session_ended(self, connector: Connector, ev: EvDemand, t: float) -> None:
        self.ledger.sessions += 1

    def ev_turned_away(self, site: Site, ev: EvDemand, t: float) -> None:
        self.ledger.turned_away += 1

    # -- Authorizer ----------------------------------------------------------------------------

    def authorize(self, connector: Connector, id_tag: str) -> bool | simpy.Event:
        link = self.links[connector.station]
        control = link.control
        if control is None:
            return link.authorize(connector, id_tag)
        # The charger's own authorisation logic (local list, cache, offline rules) decides
        # first and asks the CSMS through the link only when it has to.
        return control.authorize(connector, id_tag)
