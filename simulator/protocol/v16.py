"""OCPP 1.6J adapter: turns one charger's station events into 1.6 CALL payloads and reads the
CSMS's answers. Sans-I/O: it never sends, queues, times or validates anything (the link does).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ocpp.v16.enums import (
    Action,
    ChargePointErrorCode,
    ChargePointStatus,
    Location,
    Measurand,
    Phase,
    ReadingContext,
    Reason,
    UnitOfMeasure,
)

from models.physics import ChargePlan, CurrentType
from simulator.events import MeterSample, StopReason
from simulator.protocol.base import ChargerIdentity, Outbound, Timestamps

if TYPE_CHECKING:
    from simulator.station import Connector, ConnectorStatus, Station, Transaction

# Plain `str` values resolved once: payloads are built for every event of 10,000 chargers.
_BOOT = Action.boot_notification.value
_HEARTBEAT = Action.heartbeat.value
_STATUS = Action.status_notification.value
_AUTHORIZE = Action.authorize.value
_START = Action.start_transaction.value
_METER = Action.meter_values.value
_STOP = Action.stop_transaction.value

_NO_ERROR = ChargePointErrorCode.no_error.value
_AVAILABLE = ChargePointStatus.available.value
_ENERGY = Measurand.energy_active_import_register.value
_POWER = Measurand.power_active_import.value
_CURRENT = Measurand.current_import.value
_VOLTAGE = Measurand.voltage.value
_SOC = Measurand.soc.value
_PERIODIC = ReadingContext.sample_periodic.value
_TX_BEGIN = ReadingContext.transaction_begin.value
_TX_END = ReadingContext.transaction_end.value
_OUTLET = Location.outlet.value
_EV = Location.ev.value
_WH = UnitOfMeasure.wh.value
_W = UnitOfMeasure.w.value
_A = UnitOfMeasure.a.value
_V = UnitOfMeasure.v.value
_PERCENT = UnitOfMeasure.percent.value

# AC phases in use, indexed by the number of phases: current is per line, voltage line-neutral.
_CURRENT_PHASES: tuple[tuple[str, ...], ...] = (
    (),
    (Phase.l1.value,),
    (Phase.l1.value, Phase.l2.value),
    (Phase.l1.value, Phase.l2.value, Phase.l3.value),
)
_VOLTAGE_PHASES: tuple[tuple[str, ...], ...] = (
    (),
    (Phase.l1_n.value,),
    (Phase.l1_n.value, Phase.l2_n.value),
    (Phase.l1_n.value, Phase.l2_n.value, Phase.l3_n.value),
)

# The station's names are 1.6 names already; going through the ocpp enums checks that at import.
_STATUS_VALUE: dict[str, str] = {
    s.value: ChargePointStatus(s.value).value for s in ChargePointStatus
}
_REASON_VALUE: dict[StopReason, str] = {r: Reason(r.value).value for r in StopReason}

# BootNotification field limits (CiString20/25/50 in the 1.6 schema).
_VENDOR_MAX, _MODEL_MAX, _SERIAL_MAX, _FIRMWARE_MAX = 20, 20, 25, 50

# StopTransaction requires an integer transactionId even when the CSMS never acknowledged the
# StartTransaction (so no id was assigned): 0 stands for "unknown". Issue 5 revisits this.
UNKNOWN_TRANSACTION_ID = 0


def sampled_values(kind: CurrentType, sample: MeterSample) -> list[dict[str, str]]:
    """The periodic sampledValue list of one meter reading, values as 1.6 strings."""
    values = [
        {
            "value": f"{sample.energy_wh:.1f}",
            "context": _PERIODIC,
            "measurand": _ENERGY,
            "location": _OUTLET,
            "unit": _WH,
        },
        {"value": f"{sample.power_w:.1f}", "context": _PERIODIC, "measurand": _POWER, "unit": _W},
    ]
    if kind is CurrentType.DC:
        # DC has one current and one voltage, neither belonging to a phase.
        values.append(
            {
                "value": f"{sample.current_a:.2f}",
                "context": _PERIODIC,
                "measurand": _CURRENT,
                "unit": _A,
            }
        )
        values.append(
            {
                "value": f"{sample.voltage_v:.1f}",
                "context": _PERIODIC,
                "measurand": _VOLTAGE,
                "unit": _V,
            }
        )
    else:
        phases = min(max(sample.phases, 0), 3)
        current = f"{sample.current_a:.2f}"
        for phase in _CURRENT_PHASES[phases]:
            values.append(
                {
                    "value": current,
                    "context": _PERIODIC,
                    "measurand": _CURRENT,
                    "phase": phase,
                    "unit": _A,
                }
            )
        voltage = f"{sample.voltage_v:.1f}"
        for phase in _VOLTAGE_PHASES[phases]:
            values.append(
                {
                    "value": voltage,
                    "context": _PERIODIC,
                    "measurand": _VOLTAGE,
                    "phase": phase,
                    "unit": _V,
                }
            )
    if not math.isnan(sample.soc):
        # The model's SoC is a 0..1 fraction; OCPP reports percent.
        values.append(
            {
                "value": f"{sample.soc * 100.0:.0f}",
                "context": _PERIODIC,
                "measurand": _SOC,
                "location": _EV,
                "unit": _PERCENT,
            }
        )
    return values


class V16Adapter:
    """The OCPP 1.6J face of one charger.

    Its only per-transaction state is the transactionId each StartTransaction was given, keyed
    by the station's transaction number (`Transaction` is an unhashable dataclass) and dropped
    once the StopTransaction has been accepted.
    """

    __slots__ = ("_identity", "_stamps", "_tx_ids")

    version = "1.6"
    subprotocol = "ocpp1.6"

    def __init__(self, identity: ChargerIdentity, stamps: Timestamps) -> None:
        self._identity = identity
        self._stamps = stamps
        self._tx_ids: dict[int, int] = {}

    # -- charger-level messages ----------------------------------------------------------------

    def boot_notification(self, t: float) -> Outbound:
        identity = self._identity
        payload = {
            "chargePointVendor": identity.vendor[:_VENDOR_MAX],
            "chargePointModel": identity.model[:_MODEL_MAX],
            "chargePointSerialNumber": identity.serial[:_SERIAL_MAX],
            "firmwareVersion": identity.firmware[:_FIRMWARE_MAX],
        }
        return Outbound(_BOOT, payload, t)

    def heartbeat(self, t: float) -> Outbound:
        return Outbound(_HEARTBEAT, {}, t)

    def connector_statuses(self, station: Station, t: float) -> list[Outbound]:
        """Connector 0 (the charge point as a whole) first, then every connector."""
        stamp = self._stamps.iso(t)
        out = [self._status(0, _AVAILABLE, stamp, t)]
        for connector in station.connectors:
            out.append(self._status(connector.evse_id, _STATUS_VALUE[connector.status], stamp, t))
        return out

    def status_changed(
        self, connector: Connector, status: ConnectorStatus, t: float
    ) -> list[Outbound]:
        return [self._status(connector.evse_id, _STATUS_VALUE[status], self._stamps.iso(t), t)]

    def authorize(self, connector: Connector, id_tag: str, t: float) -> Outbound:
        return Outbound(_AUTHORIZE, {"idTag": id_tag}, t)

    # -- transactions --------------------------------------------------------------------------

    def transaction_started(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        payload = {
            "connectorId": connector.evse_id,
            "idTag": tx.id_tag,
            "meterStart": round(tx.meter_start_wh),
            "timestamp": self._stamps.iso(t),
        }
        return [Outbound(_START, payload, t, True, tx)]

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> list[Outbound]:
        # 1.6 reports the charging state through StatusNotification: status_changed did it.
        return []

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        values = sampled_values(connector.station.spec.rating.kind, sample)
        payload = {
            "connectorId": connector.evse_id,
            "meterValue": [{"timestamp": self._stamps.iso(t), "sampledValue": values}],
        }
        return [Outbound(_METER, payload, t, True, tx)]

    def transaction_ended(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        stamps = self._stamps
        reason = _REASON_VALUE[tx.stop_reason or StopReason.OTHER]
        payload = {
            "transactionId": UNKNOWN_TRANSACTION_ID,  # replaced by prepare() at send time
            "meterStop": round(tx.meter_stop_wh),
            "timestamp": stamps.iso(t),
            "reason": reason,
            "idTag": tx.id_tag,
            "transactionData": [
                _register(stamps.iso(tx.start_s), tx.meter_start_wh, _TX_BEGIN),
                _register(stamps.iso(t), tx.meter_stop_wh, _TX_END),
            ],
        }
        return [Outbound(_STOP, payload, t, True, tx)]

    # -- sending and answers -------------------------------------------------------------------

    def reported_energy_wh(self, tx: Transaction) -> float:
        """Energy as the CSMS computes it from the registers this adapter sends."""
        return float(round(tx.meter_stop_wh) - round(tx.meter_start_wh))

    def prepare(self, message: Outbound) -> dict[str, Any]:
        """Fill in the transactionId the CSMS assigned (known only once StartTransaction was
        answered). The payload is updated in place, so a replayed message is completed afresh."""
        tx = message.tx
        if tx is None:
            return message.payload
        payload = message.payload
        action = message.action
        if action == _METER:
            tx_id = self._tx_ids.get(tx.seq)
            if tx_id is None:
                # transactionId is optional in MeterValues: better none than a wrong one.
                payload.pop("transactionId", None)
            else:
                payload["transactionId"] = tx_id
        elif action == _STOP:
            payload["transactionId"] = self._tx_ids.get(tx.seq, UNKNOWN_TRANSACTION_ID)
        return payload

    def accepted(self, message: Outbound, response: dict[str, Any]) -> None:
        tx = message.tx
        if tx is None:
            return
        if message.action == _START:
            self._tx_ids[tx.seq] = int(response["transactionId"])
        elif message.action == _STOP:
            self._tx_ids.pop(tx.seq, None)

    @staticmethod
    def boot_outcome(response: dict[str, Any]) -> tuple[str, float]:
        return response["status"], float(response["interval"])

    @staticmethod
    def authorize_outcome(response: dict[str, Any]) -> bool:
        return bool(response["idTagInfo"]["status"] == "Accepted")

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _status(connector_id: int, status: str, stamp: str, t: float) -> Outbound:
        payload = {
            "connectorId": connector_id,
            "errorCode": _NO_ERROR,
            "status": status,
            "timestamp": stamp,
        }
        return Outbound(_STATUS, payload, t)


def _register(stamp: str, energy_wh: float, context: str) -> dict[str, Any]:
    """One meterValue holding only the energy register, for StopTransaction.transactionData."""
    return {
        "timestamp": stamp,
        "sampledValue": [
            {
                "value": f"{energy_wh:.1f}",
                "context": context,
                "measurand": _ENERGY,
                "location": _OUTLET,
                "unit": _WH,
            }
        ],
    }
