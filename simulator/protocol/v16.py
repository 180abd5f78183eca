"""OCPP 1.6J adapter: turns one charger's station events into 1.6 CALL payloads and reads the
CSMS's answers. Sans-I/O: it never sends, queues, times or validates anything (the link does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ocpp.v16.enums import (
    Action,
    AuthorizationStatus,
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
_FAULTED = ChargePointStatus.faulted.value
_AVAILABLE = ChargePointStatus.available.value
_UNAVAILABLE = ChargePointStatus.unavailable.value
_FIRMWARE_STATUS = Action.firmware_status_notification.value
_DIAGNOSTICS_STATUS = Action.diagnostics_status_notification.value
_ENERGY = Measurand.energy_active_import_register.value
_POWER = Measurand.power_active_import.value
_CURRENT = Measurand.current_import.value
_VOLTAGE = Measurand.voltage.value
_SOC = Measurand.soc.value
_PERIODIC = ReadingContext.sample_periodic.value
_CLOCK = ReadingContext.sample_clock.value
_TRIGGER = ReadingContext.trigger.value
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

# Every measurand `sampled_values` can produce (what MeterValuesSampledData may select).
MEASURANDS: tuple[str, ...] = (_ENERGY, _POWER, _CURRENT, _VOLTAGE, _SOC)
# Aligned readings kept per transaction for StopTransaction.transactionData (StopTxnAlignedData):
# a day of quarter hours, so a transaction that never ends cannot grow without bound.
MAX_STOP_READINGS = 96
_ENERGY_ONLY: frozenset[str] = frozenset({_ENERGY})
_ACCEPTED = AuthorizationStatus.accepted.value

# BootNotification field limits (CiString20/25/50 in the 1.6 schema).
_VENDOR_MAX, _MODEL_MAX, _SERIAL_MAX, _FIRMWARE_MAX = 20, 20, 25, 50

# StopTransaction requires an integer transactionId even when the CSMS never acknowledged the
# StartTransaction (so no id was assigned): 0 stands for "unknown". Issue 5 revisits this.
UNKNOWN_TRANSACTION_ID = 0


def sampled_values(
    kind: CurrentType,
    sample: MeterSample,
    context: str = _PERIODIC,
    measurands: frozenset[str] | None = None,
) -> list[dict[str, str]]:
    """The sampledValue list of one meter reading, values as 1.6 strings: every measurand, or
    only those in `measurands` (MeterValuesSampledData and its kin)."""
    values = _all_values(kind, sample, context)
    if measurands is None:
        return values
    return [v for v in values if v["measurand"] in measurands]


def _all_values(kind: CurrentType, sample: MeterSample, context: str) -> list[dict[str, str]]:
    values = [
        {
            "value": f"{sample.energy_wh:.1f}",
            "context": context,
            "measurand": _ENERGY,
            "location": _OUTLET,
            "unit": _WH,
        },
        {"value": f"{sample.power_w:.1f}", "context": context, "measurand": _POWER, "unit": _W},
    ]
    if kind is CurrentType.DC:
        # DC has one current and one voltage, neither belonging to a phase.
        values.append(
            {
                "value": f"{sample.current_a:.2f}",
                "context": context,
                "measurand": _CURRENT,
                "unit": _A,
            }
        )
        values.append(
            {
                "value": f"{sample.voltage_v:.1f}",
                "context": context,
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
                    "context": context,
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
                    "context": context,
                    "measurand": _VOLTAGE,
                    "phase": phase,
                    "unit": _V,
                }
            )
    if not math.isnan(sample.soc):
        values.append(_soc_value(sample.soc, context))
    return values


class V16Adapter:
    """The OCPP 1.6J face of one charger.

    Its only per-transaction state is the transactionId each StartTransaction was given, keyed
    by the station's transaction number (`Transaction` is an unhashable dataclass) and dropped
    once the StopTransaction has been accepted; `_seqs` is the reverse map, so that a CSMS's
    RemoteStopTransaction or SetChargingProfile can name a transaction by its id.

    The operations (simulator.protocol.ops16) tune it through its public attributes: the
    firmware version reported at boot, the measurands of periodic meter values
    (MeterValuesSampledData, None = all), those of StopTransaction's readings
    (StopTxnSampledData), and `start_rejected`, told when the CSMS answers a StartTransaction
    with an idTagInfo that is not Accepted (StopTransactionOnInvalidId).
    """

    __slots__ = (
        "_cp_status",
        "_identity",
        "_seqs",
        "_stamps",
        "_stop_readings",
        "_tx_ids",
        "boot_reason",
        "firmware",
        "measurands",
        "start_rejected",
        "stop_measurands",
    )

    version = "1.6"
    subprotocol = "ocpp1.6"

    def __init__(self, identity: ChargerIdentity, stamps: Timestamps) -> None:
        self._identity = identity
        self._stamps = stamps
        self._tx_ids: dict[int, int] = {}
        self._seqs: dict[int, int] = {}
        self._cp_status = _AVAILABLE  # connector 0 as last reported
        # Aligned readings of running transactions for StopTransaction (made on first use).
        self._stop_readings: dict[int, list[dict[str, Any]]] | None = None
        self.firmware = identity.firmware
        # Set by the link before every boot, as for 2.0.1; a 1.6 BootNotification has no field
        # for it (the status notifications after the boot tell what happened).
        self.boot_reason = "PowerUp"
        self.measurands: frozenset[str] | None = None
        self.stop_measurands: frozenset[str] = _ENERGY_ONLY
        self.start_rejected: Callable[[Transaction], None] | None = None

    @property
    def stamps(self) -> Timestamps:
        return self._stamps

    # -- charger-level messages ----------------------------------------------------------------

    def boot_notification(self, t: float) -> Outbound:
        identity = self._identity
        payload = {
            "chargePointVendor": identity.vendor[:_VENDOR_MAX],
            "chargePointModel": identity.model[:_MODEL_MAX],
            "chargePointSerialNumber": identity.serial[:_SERIAL_MAX],
            "firmwareVersion": self.firmware[:_FIRMWARE_MAX],
        }
        return Outbound(_BOOT, payload, t)

    def heartbeat(self, t: float) -> Outbound:
        return Outbound(_HEARTBEAT, {}, t)

    def connector_statuses(self, station: Station, t: float) -> list[Outbound]:
        """Connector 0 (the charge point as a whole) first, then every connector."""
        stamp = self._stamps.iso(t)
        self._cp_status = _charge_point_status(station)
        out = [self._status(0, self._cp_status, stamp, t)]
        for connector in station.connectors:
            status = connector.status
            out.append(
                self._status(
                    connector.evse_id,
                    _STATUS_VALUE[status],
                    stamp,
                    t,
                    _error_code(connector, status),
                )
            )
        return out

    def connector_status(self, station: Station, connector_id: int, t: float) -> Outbound:
        """The StatusNotification of one connector (0: the charge point), as TriggerMessage
        asks for it."""
        stamp = self._stamps.iso(t)
        if connector_id == 0:
            self._cp_status = _charge_point_status(station)
            return self._status(0, self._cp_status, stamp, t)
        connector = station.connectors[connector_id - 1]
        status = connector.status
        return self._status(
            connector_id, _STATUS_VALUE[status], stamp, t, _error_code(connector, status)
        )

    def status_changed(
        self, connector: Connector, status: ConnectorStatus, t: float
    ) -> list[Outbound]:
        stamp = self._stamps.iso(t)
        out = [
            self._status(
                connector.evse_id, _STATUS_VALUE[status], stamp, t, _error_code(connector, status)
            )
        ]
        # Connector 0 is Unavailable exactly when every connector is (ChangeAvailability of
        # the whole charge point); only a move to or from Unavailable can change that.
        if status == _UNAVAILABLE or self._cp_status == _UNAVAILABLE:
            cp_status = _charge_point_status(connector.station)
            if cp_status != self._cp_status:
                self._cp_status = cp_status
                out.append(self._status(0, cp_status, stamp, t))
        return out

    def authorize(self, connector: Connector, id_tag: str, t: float) -> Outbound:
        return Outbound(_AUTHORIZE, {"idTag": id_tag}, t)

    def firmware_status(self, status: str, t: float) -> Outbound:
        """FirmwareStatusNotification (`status` a 1.6 FirmwareStatus value)."""
        return Outbound(_FIRMWARE_STATUS, {"status": status}, t)

    def diagnostics_status(self, status: str, t: float) -> Outbound:
        """DiagnosticsStatusNotification (`status` a 1.6 DiagnosticsStatus value)."""
        return Outbound(_DIAGNOSTICS_STATUS, {"status": status}, t)

    # -- transactions --------------------------------------------------------------------------

    def transaction_started(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        payload: dict[str, Any] = {
            "connectorId": connector.evse_id,
            "idTag": tx.id_tag,
            "meterStart": round(tx.meter_start_wh),
            "timestamp": self._stamps.iso(t),
        }
        if tx.reservation_id is not None:
            payload["reservationId"] = tx.reservation_id
        return [Outbound(_START, payload, t, True, tx)]

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> list[Outbound]:
        # 1.6 reports the charging state through StatusNotification: status_changed did it.
        return []

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        values = sampled_values(
            connector.station.spec.rating.kind, sample, _PERIODIC, self.measurands
        )
        if not values:
            return []  # MeterValuesSampledData selects nothing this connector measures
        payload = {
            "connectorId": connector.evse_id,
            "meterValue": [{"timestamp": self._stamps.iso(t), "sampledValue": values}],
        }
        return [Outbound(_METER, payload, t, True, tx)]

    def triggered_meter_values(
        self, connector: Connector, sample: MeterSample, t: float
    ) -> list[Outbound]:
        """MeterValues asked for by TriggerMessage (context Trigger). Not a transaction message:
        the CSMS wants the value now, not replayed after an outage; it still names the running
        transaction, if any."""
        values = sampled_values(
            connector.station.spec.rating.kind, sample, _TRIGGER, self.measurands
        )
        if not values:
            return []
        payload = {
            "connectorId": connector.evse_id,
            "meterValue": [{"timestamp": self._stamps.iso(t), "sampledValue": values}],
        }
        tx = connector.tx
        return [Outbound(_METER, payload, t, False, tx if tx is not None and tx.open else None)]

    def aligned_meter_values(
        self, connector: Connector, sample: MeterSample, t: float, measurands: frozenset[str]
    ) -> list[Outbound]:
        """Clock-aligned MeterValues (context Sample.Clock, MeterValuesAlignedData). Those of a
        running transaction are transaction messages, as 1.6 says; the others may be lost."""
        values = sampled_values(connector.station.spec.rating.kind, sample, _CLOCK, measurands)
        if not values:
            return []
        payload = {
            "connectorId": connector.evse_id,
            "meterValue": [{"timestamp": self._stamps.iso(t), "sampledValue": values}],
        }
        tx = connector.tx
        if tx is not None and tx.open:
            return [Outbound(_METER, payload, t, True, tx)]
        return [Outbound(_METER, payload, t)]

    def record_stop_reading(
        self, tx: Transaction, sample: MeterSample, t: float, measurands: frozenset[str]
    ) -> None:
        """Keep a clock-aligned reading of a running transaction for its StopTransaction
        (StopTxnAlignedData); at most MAX_STOP_READINGS per transaction."""
        values = sampled_values(tx.connector.station.spec.rating.kind, sample, _CLOCK, measurands)
        if not values:
            return
        readings = self._stop_readings
        if readings is None:
            readings = self._stop_readings = {}
        kept = readings.setdefault(tx.seq, [])
        if len(kept) < MAX_STOP_READINGS:
            kept.append({"timestamp": self._stamps.iso(t), "sampledValue": values})

    def transaction_ended(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        stamps = self._stamps
        reason = _REASON_VALUE[tx.stop_reason or StopReason.OTHER]
        payload: dict[str, Any] = {
            "transactionId": UNKNOWN_TRANSACTION_ID,  # replaced by prepare() at send time
            "meterStop": round(tx.meter_stop_wh),
            "timestamp": stamps.iso(t),
            "reason": reason,
            "idTag": tx.id_tag,
        }
        data = self._transaction_data(connector, tx, sample, t)
        if data:
            payload["transactionData"] = data
        return [Outbound(_STOP, payload, t, True, tx)]

    def _transaction_data(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[dict[str, Any]]:
        """StopTransaction.transactionData: the StopTxnSampledData measurands at the start and
        the end of the transaction, with the StopTxnAlignedData readings in between."""
        stamps = self._stamps
        measurands = self.stop_measurands
        aligned = None if self._stop_readings is None else self._stop_readings.pop(tx.seq, None)
        if aligned is None and measurands == _ENERGY_ONLY:
            # The default: the energy register at both ends, as the CSMS bills it.
            return [
                _register(stamps.iso(tx.start_s), tx.meter_start_wh, _TX_BEGIN),
                _register(stamps.iso(t), tx.meter_stop_wh, _TX_END),
            ]
        data: list[dict[str, Any]] = []
        # Only the register and the EV's SoC are known for the start of the transaction.
        begin = [
            v
            for v in (
                _register(stamps.iso(tx.start_s), tx.meter_start_wh, _TX_BEGIN)["sampledValue"][0],
                _soc_value(tx.ev.soc_arrival, _TX_BEGIN),
            )
            if v["measurand"] in measurands
        ]
        if begin:
            data.append({"timestamp": stamps.iso(tx.start_s), "sampledValue": begin})
        if aligned:
            data.extend(aligned)
        kind = connector.station.spec.rating.kind
        end_sample = replace(sample, energy_wh=tx.meter_stop_wh)
        end = sampled_values(kind, end_sample, _TX_END, measurands)
        if end:
            data.append({"timestamp": stamps.iso(t), "sampledValue": end})
        return data

    # -- sending and answers -------------------------------------------------------------------

    def reported_energy_wh(self, tx: Transaction) -> float:
        """Energy as the CSMS computes it from the registers this adapter sends."""
        return float(round(tx.meter_stop_wh) - round(tx.meter_start_wh))

    def transaction_seq(self, transaction_id: int) -> int | None:
        """The station's number of the transaction the CSMS calls `transaction_id` (None if
        it names no transaction this charger has reported and not yet closed)."""
        return self._seqs.get(transaction_id)

    def transaction_id(self, seq: int) -> int | None:
        """The CSMS's id of the station's transaction `seq`, once StartTransaction was answered."""
        return self._tx_ids.get(seq)

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
            tx_id = int(response["transactionId"])
            self._tx_ids[tx.seq] = tx_id
            self._seqs[tx_id] = tx.seq
            rejected = self.start_rejected
            if rejected is not None and response["idTagInfo"]["status"] != _ACCEPTED:
                rejected(tx)
        elif message.action == _STOP:
            known = self._tx_ids.pop(tx.seq, None)
            if known is not None:
                self._seqs.pop(known, None)

    @staticmethod
    def boot_outcome(response: dict[str, Any]) -> tuple[str, float]:
        return response["status"], float(response["interval"])

    @staticmethod
    def authorize_outcome(response: dict[str, Any]) -> bool:
        return bool(response["idTagInfo"]["status"] == "Accepted")

    # -- helpers -------------------------------------------------------------------------------

    @staticmethod
    def _status(
        connector_id: int, status: str, stamp: str, t: float, error_code: str = _NO_ERROR
    ) -> Outbound:
        payload = {
            "connectorId": connector_id,
            "errorCode": error_code,
            "status": status,
            "timestamp": stamp,
        }
        return Outbound(_STATUS, payload, t)


def _error_code(connector: Connector, status: ConnectorStatus) -> str:
    """The errorCode of a connector's StatusNotification: its fault's while Faulted."""
    return connector.error_code if status == _FAULTED else _NO_ERROR


def _charge_point_status(station: Station) -> str:
    """Connector 0's status: Unavailable when every connector is, else Available."""
    connectors = station.connectors
    if connectors and all(c.status == _UNAVAILABLE for c in connectors):
        return _UNAVAILABLE
    return _AVAILABLE


def _soc_value(soc: float, context: str) -> dict[str, str]:
    # The model's SoC is a 0..1 fraction; OCPP reports percent.
    return {
        "value": f"{soc * 100.0:.0f}",
        "context": context,
        "measurand": _SOC,
        "location": _EV,
        "unit": _PERCENT,
    }


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
