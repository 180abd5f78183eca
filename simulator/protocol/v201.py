"""OCPP 2.0.1 adapter: turns one charger's station events into 2.0.1 CALL payloads (transactions
as TransactionEvent) and reads the CSMS's answers. Sans-I/O: it never sends, queues or times.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from ocpp.v16.enums import ChargePointStatus
from ocpp.v201.enums import (
    Action,
    BootReasonEnumType,
    ChargingLimitSourceEnumType,
    ChargingStateEnumType,
    ConnectorStatusEnumType,
    IdTokenEnumType,
    LocationEnumType,
    MeasurandEnumType,
    PhaseEnumType,
    ReadingContextEnumType,
    ReasonEnumType,
    StandardizedUnitsOfMeasureType,
    TransactionEventEnumType,
    TriggerReasonEnumType,
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
_TX_EVENT = Action.transaction_event.value
_METER_VALUES = Action.meter_values.value
_FIRMWARE_STATUS = Action.firmware_status_notification.value
_LOG_STATUS = Action.log_status_notification.value
_NOTIFY_REPORT = Action.notify_report.value
_REPORT_PROFILES = Action.report_charging_profiles.value
_RESERVATION_STATUS = Action.reservation_status_update.value
_SIGN_CERTIFICATE = Action.sign_certificate.value

_POWER_UP = BootReasonEnumType.power_up.value
_ISO14443 = IdTokenEnumType.iso14443.value
_STARTED = TransactionEventEnumType.started.value
_UPDATED = TransactionEventEnumType.updated.value
_ENDED = TransactionEventEnumType.ended.value
_T = TriggerReasonEnumType
_AUTHORIZED = _T.authorized.value
_STATE_CHANGED = _T.charging_state_changed.value
_PERIODIC_TRIGGER = _T.meter_value_periodic.value
_REMOTE_START = _T.remote_start.value
_TRIGGER = _T.trigger.value
_CSO = ChargingLimitSourceEnumType.cso.value
_EV_CONNECTED = ChargingStateEnumType.ev_connected.value
_IDLE = ChargingStateEnumType.idle.value

_ENERGY = MeasurandEnumType.energy_active_import_register.value
_POWER = MeasurandEnumType.power_active_import.value
_CURRENT = MeasurandEnumType.current_import.value
_VOLTAGE = MeasurandEnumType.voltage.value
_SOC = MeasurandEnumType.soc.value
_PERIODIC = ReadingContextEnumType.sample_periodic.value
_TX_BEGIN = ReadingContextEnumType.transaction_begin.value
_TX_END = ReadingContextEnumType.transaction_end.value
_TRIGGER_CONTEXT = ReadingContextEnumType.trigger.value
_OUTLET = LocationEnumType.outlet.value
_EV = LocationEnumType.ev.value
_U = StandardizedUnitsOfMeasureType
_WH, _W, _A, _V, _PERCENT = _U.wh.value, _U.w.value, _U.a.value, _U.v.value, _U.percent.value

_P = PhaseEnumType
# AC phases in use, indexed by the number of phases: current is per line, voltage line-neutral.
_CURRENT_PHASES: tuple[tuple[str, ...], ...] = (
    (),
    (_P.l1.value,),
    (_P.l1.value, _P.l2.value),
    (_P.l1.value, _P.l2.value, _P.l3.value),
)
_VOLTAGE_PHASES: tuple[tuple[str, ...], ...] = (
    (),
    (_P.l1_n.value,),
    (_P.l1_n.value, _P.l2_n.value),
    (_P.l1_n.value, _P.l2_n.value, _P.l3_n.value),
)

_C = ConnectorStatusEnumType
_S = ChargePointStatus  # the station's statuses carry 1.6 names
# 2.0.1 keeps only whether the connector is in use: the 1.6 session phases all become Occupied
# (the charging phase moves to TransactionEvent.chargingState instead).
_CONNECTOR_STATUS: dict[str, str] = {
    _S.available.value: _C.available.value,
    _S.preparing.value: _C.occupied.value,
    _S.charging.value: _C.occupied.value,
    _S.suspended_ev.value: _C.occupied.value,
    _S.suspended_evse.value: _C.occupied.value,
    _S.finishing.value: _C.occupied.value,
    _S.reserved.value: _C.reserved.value,
    _S.unavailable.value: _C.unavailable.value,
    _S.faulted.value: _C.faulted.value,
}
# The charging state a connector status implies while a transaction is open; the other
# statuses (Preparing, Finishing, ...) say nothing new about it.
_CHARGING_STATE: dict[str, str] = {
    _S.charging.value: ChargingStateEnumType.charging.value,
    _S.suspended_ev.value: ChargingStateEnumType.suspended_ev.value,
    _S.suspended_evse.value: ChargingStateEnumType.suspended_evse.value,
}

_R = ReasonEnumType
_STOPPED_REASON: dict[StopReason, str] = {
    StopReason.LOCAL: _R.local.value,
    StopReason.EV_DISCONNECTED: _R.ev_disconnected.value,
    StopReason.REMOTE: _R.remote.value,
    StopReason.DE_AUTHORIZED: _R.de_authorized.value,
    StopReason.POWER_LOSS: _R.power_loss.value,
    StopReason.REBOOT: _R.reboot.value,
    StopReason.HARD_RESET: _R.immediate_reset.value,
    StopReason.SOFT_RESET: _R.immediate_reset.value,
    # 2.0.1 UnlockConnector never stops a transaction (F05); a 1.6-style unlock stop is "Other".
    StopReason.UNLOCK_COMMAND: _R.other.value,
    StopReason.OTHER: _R.other.value,
}
# The triggerReason of the Ended event, per the 2.0.1 TriggerReasonEnumType definitions and the
# stop use cases (E06-E10, F03): a local stop is the driver ending it at the charger
# (StopAuthorized, E07, with the idToken used); an unplugged cable is "EVCommunicationLost"
# (E10; EVDeparted is for leaving a parking bay, which a charger cannot see); a reboot is a
# ResetCommand; power loss and anything unexplained are an AbnormalCondition.
_STOP_TRIGGER: dict[StopReason, str] = {
    StopReason.LOCAL: _T.stop_authorized.value,
    StopReason.EV_DISCONNECTED: _T.ev_communication_lost.value,
    StopReason.REMOTE: _T.remote_stop.value,
    StopReason.DE_AUTHORIZED: _T.deauthorized.value,
    StopReason.POWER_LOSS: _T.abnormal_condition.value,
    StopReason.REBOOT: _T.reset_command.value,
    StopReason.HARD_RESET: _T.reset_command.value,
    StopReason.SOFT_RESET: _T.reset_command.value,
    StopReason.UNLOCK_COMMAND: _T.unlock_command.value,
    StopReason.OTHER: _T.abnormal_condition.value,
}

# Schema limits: transactionId and idToken are CiString36, model CiString20, serial 25,
# vendorName and firmwareVersion 50.
_TX_ID_MAX = 36
_MODEL_MAX, _SERIAL_MAX, _VENDOR_MAX, _FIRMWARE_MAX = 20, 25, 50, 50
# A charger id longer than this is shortened for transaction ids so "<prefix>-<seq>" always
# fits 36 characters with up to 11 digits of sequence number.
_PREFIX_MAX = _TX_ID_MAX - 12


def transaction_id_prefix(charger_id: str) -> str:
    """The charger part of its transaction ids: the id itself if short enough, otherwise its
    head plus a hash of the whole id, so it stays deterministic and (practically) unique."""
    if len(charger_id) <= _PREFIX_MAX:
        return charger_id
    digest = hashlib.blake2b(charger_id.encode(), digest_size=8).hexdigest()
    return f"{charger_id[: _PREFIX_MAX - len(digest) - 1]}~{digest}"


def sampled_values(
    kind: CurrentType,
    sample: MeterSample,
    measurands: Collection[str] | None = None,
    context: str = _PERIODIC,
) -> list[dict[str, Any]]:
    """The sampledValue list of one meter reading, values as JSON numbers.

    `measurands` (SampledDataCtrlr.TxUpdatedMeasurands and the like) keeps only the listed
    measurands; None keeps every one the meter has. `context` is the reading context
    (Sample.Periodic, or Trigger for a TriggerMessage)."""
    values: list[dict[str, Any]] = []
    if measurands is None or _ENERGY in measurands:
        values.append(
            {
                "value": round(sample.energy_wh, 1),
                "context": context,
                "measurand": _ENERGY,
                "location": _OUTLET,
                "unitOfMeasure": {"unit": _WH},
            }
        )
    if measurands is None or _POWER in measurands:
        values.append(
            {
                "value": round(sample.power_w, 1),
                "context": context,
                "measurand": _POWER,
                "unitOfMeasure": {"unit": _W},
            }
        )
    with_current = measurands is None or _CURRENT in measurands
    with_voltage = measurands is None or _VOLTAGE in measurands
    if kind is CurrentType.DC:
        # DC has one current and one voltage, neither belonging to a phase.
        if with_current:
            values.append(
                {
                    "value": round(sample.current_a, 2),
                    "context": context,
                    "measurand": _CURRENT,
                    "unitOfMeasure": {"unit": _A},
                }
            )
        if with_voltage:
            values.append(
                {
                    "value": round(sample.voltage_v, 1),
                    "context": context,
                    "measurand": _VOLTAGE,
                    "unitOfMeasure": {"unit": _V},
                }
            )
    else:
        phases = min(max(sample.phases, 0), 3)
        if with_current:
            current = round(sample.current_a, 2)
            for phase in _CURRENT_PHASES[phases]:
                values.append(
                    {
                        "value": current,
                        "context": context,
                        "measurand": _CURRENT,
                        "phase": phase,
                        "unitOfMeasure": {"unit": _A},
                    }
                )
        if with_voltage:
            voltage = round(sample.voltage_v, 1)
            for phase in _VOLTAGE_PHASES[phases]:
                values.append(
                    {
                        "value": voltage,
                        "context": context,
                        "measurand": _VOLTAGE,
                        "phase": phase,
                        "unitOfMeasure": {"unit": _V},
                    }
                )
    if not math.isnan(sample.soc) and (measurands is None or _SOC in measurands):
        # The model's SoC is a 0..1 fraction; OCPP reports percent.
        values.append(
            {
                "value": round(sample.soc * 100.0, 1),
                "context": context,
                "measurand": _SOC,
                "location": _EV,
                "unitOfMeasure": {"unit": _PERCENT},
            }
        )
    return values


# The measurands this meter can report, in the order sampled_values lists them.
METER_MEASURANDS: tuple[str, ...] = (_ENERGY, _POWER, _CURRENT, _VOLTAGE, _SOC)


class _TxState:
    """What a transaction's later events need: the next seqNo and the last charging state."""

    __slots__ = ("charging_state", "seq_no")

    def __init__(self) -> None:
        self.seq_no = 0
        self.charging_state = _EV_CONNECTED


class V201Adapter:
    """The OCPP 2.0.1 face of one charger.

    Per-charger state is kept tiny: the last connector status sent per EVSE (2.0.1 has far fewer
    statuses, so most 1.6 transitions send nothing) and, per open transaction (keyed by the
    station's transaction number, `Transaction` being unhashable), its seqNo counter and last
    reported charging state, dropped when the Ended event is made.

    Three attributes are set from outside: `firmware` and `boot_reason` (the link sets them
    from the charger's control before each boot: a firmware update changes the version, a
    reset makes the next boot a RemoteReset), and `measurands` (the operations set it from
    SampledDataCtrlr.TxUpdatedMeasurands; None reports every measurand the meter has).
    """

    __slots__ = (
        "_identity",
        "_sent_status",
        "_stamps",
        "_tx_prefix",
        "_txs",
        "boot_reason",
        "firmware",
        "measurands",
    )

    version = "2.0.1"
    subprotocol = "ocpp2.0.1"

    def __init__(self, identity: ChargerIdentity, stamps: Timestamps) -> None:
        self._identity = identity
        self._stamps = stamps
        self._tx_prefix = transaction_id_prefix(identity.charger_id)
        # Indexed by EVSE id (index 0 unused): grown on first use, None = nothing sent yet.
        self._sent_status: list[str | None] = []
        self._txs: dict[int, _TxState] = {}
        self.firmware = identity.firmware
        self.boot_reason = _POWER_UP
        self.measurands: Collection[str] | None = None

    @property
    def identity(self) -> ChargerIdentity:
        return self._identity

    @property
    def stamps(self) -> Timestamps:
        return self._stamps

    # -- charger-level messages ----------------------------------------------------------------

    def boot_notification(self, t: float) -> Outbound:
        identity = self._identity
        payload = {
            "reason": self.boot_reason,
            "chargingStation": {
                "model": identity.model[:_MODEL_MAX],
                "vendorName": identity.vendor[:_VENDOR_MAX],
                "serialNumber": identity.serial[:_SERIAL_MAX],
                "firmwareVersion": self.firmware[:_FIRMWARE_MAX],
            },
        }
        return Outbound(_BOOT, payload, t)

    def heartbeat(self, t: float) -> Outbound:
        return Outbound(_HEARTBEAT, {}, t)

    def connector_statuses(self, station: Station, t: float) -> list[Outbound]:
        """One StatusNotification per EVSE (2.0.1 has no connector 0); resets the memory of
        what was sent, since after a boot the CSMS knows only what it is told now."""
        stamp = self._stamps.iso(t)
        sent: list[str | None] = [None] * (len(station.connectors) + 1)
        out = []
        for connector in station.connectors:
            status = _CONNECTOR_STATUS[connector.status]
            sent = self._grow(sent, connector.evse_id)
            sent[connector.evse_id] = status
            out.append(self._status(connector.evse_id, status, stamp, t))
        self._sent_status = sent
        return out

    def status_changed(
        self, connector: Connector, status: ConnectorStatus, t: float
    ) -> list[Outbound]:
        out: list[Outbound] = []
        evse_id = connector.evse_id
        mapped = _CONNECTOR_STATUS[status]
        sent = self._sent_status = self._grow(self._sent_status, evse_id)
        if sent[evse_id] != mapped:
            sent[evse_id] = mapped
            out.append(self._status(evse_id, mapped, self._stamps.iso(t), t))
        # A full EV goes SuspendedEV without a new plan, so the charging state must be reported
        # from here too; charge_planned then finds it unchanged and stays silent.
        tx = connector.tx
        if tx is not None:
            state = _CHARGING_STATE.get(status)
            if state is not None:
                out.extend(self._charging_state(tx, state, t))
        return out

    def authorize(self, connector: Connector, id_tag: str, t: float) -> Outbound:
        return Outbound(_AUTHORIZE, {"idToken": {"idToken": id_tag, "type": _ISO14443}}, t)

    # -- transactions --------------------------------------------------------------------------

    def transaction_started(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        state = self._txs[tx.seq] = _TxState()
        state.seq_no = 1
        stamp = self._stamps.iso(t)
        info: dict[str, Any] = {
            "transactionId": self.transaction_id(tx),
            "chargingState": _EV_CONNECTED,
        }
        payload: dict[str, Any] = {
            "eventType": _STARTED,
            "timestamp": stamp,
            "triggerReason": _AUTHORIZED,
            "seqNo": 0,
            "transactionInfo": info,
            "evse": {"id": connector.evse_id, "connectorId": 1},
            "idToken": {"idToken": tx.id_tag, "type": _ISO14443},
            "meterValue": [_register(stamp, tx.meter_start_wh, _TX_BEGIN)],
        }
        if tx.started_remotely:
            # F01/F02: the first event after a RequestStartTransaction says so and carries
            # its remoteStartId, which is how the CSMS matches the two.
            payload["triggerReason"] = _REMOTE_START
            if tx.remote_id is not None:
                info["remoteStartId"] = tx.remote_id
        if tx.reservation_id is not None:
            # H03: the transaction consumed this reservation.
            payload["reservationId"] = tx.reservation_id
        return [Outbound(_TX_EVENT, payload, t, True, tx)]

    def charge_planned(
        self, connector: Connector, tx: Transaction, plan: ChargePlan, t: float
    ) -> list[Outbound]:
        state = _CHARGING_STATE.get(connector.status)
        if state is None:
            return []
        return self._charging_state(tx, state, t)

    def meter_sampled(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        values = sampled_values(connector.station.spec.rating.kind, sample, self.measurands)
        if not values:
            # TxUpdatedMeasurands is empty: a periodic event would carry nothing.
            return []
        stamp = self._stamps.iso(t)
        payload = {
            "eventType": _UPDATED,
            "timestamp": stamp,
            "triggerReason": _PERIODIC_TRIGGER,
            "seqNo": self._next_seq_no(tx),
            "transactionInfo": {"transactionId": self.transaction_id(tx)},
            "meterValue": [{"timestamp": stamp, "sampledValue": values}],
        }
        return [Outbound(_TX_EVENT, payload, t, True, tx)]

    def transaction_ended(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> list[Outbound]:
        seq_no = self._next_seq_no(tx)
        del self._txs[tx.seq]
        reason = tx.stop_reason or StopReason.OTHER
        stamp = self._stamps.iso(t)
        payload: dict[str, Any] = {
            "eventType": _ENDED,
            "timestamp": stamp,
            "triggerReason": _STOP_TRIGGER[reason],
            "seqNo": seq_no,
            "transactionInfo": {
                "transactionId": self.transaction_id(tx),
                "stoppedReason": _STOPPED_REASON[reason],
                # The station ends the transaction before the driver unplugs (Finishing), so
                # the EV is still connected unless the unplugging is what ended it.
                "chargingState": _IDLE if reason is StopReason.EV_DISCONNECTED else _EV_CONNECTED,
            },
            "meterValue": [_register(stamp, tx.meter_stop_wh, _TX_END)],
        }
        if reason is StopReason.LOCAL:
            # E07: a transaction stopped by presenting an idToken carries that idToken.
            payload["idToken"] = {"idToken": tx.id_tag, "type": _ISO14443}
        return [Outbound(_TX_EVENT, payload, t, True, tx)]

    def transaction_id(self, tx: Transaction) -> str:
        """The charger-generated transactionId: unique per charger and transaction, <= 36."""
        return f"{self._tx_prefix}-{tx.seq}"

    def transaction_id_of(self, seq: int | str) -> str:
        """The transactionId of the station's transaction number `seq` (an int, or the
        station's profile key str(seq))."""
        return f"{self._tx_prefix}-{seq}"

    def transaction_seq(self, transaction_id: str) -> int | None:
        """The station's transaction number behind one of this charger's transactionIds, or
        None if the id is not of the form this charger makes."""
        prefix = self._tx_prefix
        if len(transaction_id) <= len(prefix) + 1 or not transaction_id.startswith(prefix):
            return None
        if transaction_id[len(prefix)] != "-":
            return None
        digits = transaction_id[len(prefix) + 1 :]
        if not (digits.isascii() and digits.isdigit()) or (len(digits) > 1 and digits[0] == "0"):
            return None
        return int(digits)

    # -- messages the CSMS asked for (operations) ----------------------------------------------

    def triggered_transaction_event(
        self, connector: Connector, tx: Transaction, sample: MeterSample, t: float
    ) -> Outbound:
        """F06: an Updated event with triggerReason Trigger, the current charging state and a
        reading of the TxUpdatedMeasurands (context Trigger)."""
        stamp = self._stamps.iso(t)
        state = self._txs.get(tx.seq)
        info: dict[str, Any] = {"transactionId": self.transaction_id(tx)}
        if state is not None:
            info["chargingState"] = state.charging_state
        payload: dict[str, Any] = {
            "eventType": _UPDATED,
            "timestamp": stamp,
            "triggerReason": _TRIGGER,
            "seqNo": self._next_seq_no(tx),
            "transactionInfo": info,
            "evse": {"id": connector.evse_id, "connectorId": 1},
        }
        kind = connector.station.spec.rating.kind
        values = sampled_values(kind, sample, self.measurands, _TRIGGER_CONTEXT)
        if values:
            payload["meterValue"] = [{"timestamp": stamp, "sampledValue": values}]
        return Outbound(_TX_EVENT, payload, t, True, tx)

    def meter_values(
        self,
        connector: Connector,
        sample: MeterSample,
        measurands: Collection[str] | None,
        t: float,
    ) -> Outbound | None:
        """F06: a MeterValues request for one EVSE (AlignedDataCtrlr.Measurands, context
        Trigger); None if none of the measurands can be read now."""
        kind = connector.station.spec.rating.kind
        values = sampled_values(kind, sample, measurands, _TRIGGER_CONTEXT)
        if not values:
            return None
        payload = {
            "evseId": connector.evse_id,
            "meterValue": [{"timestamp": self._stamps.iso(t), "sampledValue": values}],
        }
        return Outbound(_METER_VALUES, payload, t)

    def connector_status(self, connector: Connector, t: float) -> Outbound:
        """F06: the StatusNotification of one EVSE's connector, as it is now."""
        status = _CONNECTOR_STATUS[connector.status]
        sent = self._sent_status = self._grow(self._sent_status, connector.evse_id)
        sent[connector.evse_id] = status
        return self._status(connector.evse_id, status, self._stamps.iso(t), t)

    def firmware_status(self, status: str, request_id: int | None, t: float) -> Outbound:
        """L01: FirmwareStatusNotification (requestId of the UpdateFirmware, when known)."""
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        return Outbound(_FIRMWARE_STATUS, payload, t)

    def log_status(self, status: str, request_id: int | None, t: float) -> Outbound:
        """N01: LogStatusNotification (requestId of the GetLog, when known)."""
        payload: dict[str, Any] = {"status": status}
        if request_id is not None:
            payload["requestId"] = request_id
        return Outbound(_LOG_STATUS, payload, t)

    def notify_reports(
        self, request_id: int, report_data: list[dict[str, Any]], per_message: int, t: float
    ) -> list[Outbound]:
        """B07/B08: a report as NotifyReport messages of at most `per_message` items
        (DeviceDataCtrlr.ItemsPerMessage), seqNo counting from 0, tbc on all but the last."""
        per_message = max(1, per_message)
        generated = self._stamps.iso(t)
        chunks = [
            report_data[i : i + per_message] for i in range(0, len(report_data), per_message)
        ] or [[]]
        out = []
        for seq_no, chunk in enumerate(chunks):
            payload: dict[str, Any] = {
                "requestId": request_id,
                "generatedAt": generated,
                "seqNo": seq_no,
                "tbc": seq_no < len(chunks) - 1,
            }
            if chunk:
                payload["reportData"] = chunk
            out.append(Outbound(_NOTIFY_REPORT, payload, t))
        return out

    def report_charging_profiles(
        self,
        request_id: int,
        evse_id: int,
        profiles: list[dict[str, Any]],
        tbc: bool,
        t: float,
    ) -> Outbound:
        """K09: the installed profiles of one EVSE (all set by the CSMS: source CSO)."""
        payload = {
            "requestId": request_id,
            "chargingLimitSource": _CSO,
            "chargingProfile": profiles,
            "tbc": tbc,
            "evseId": evse_id,
        }
        return Outbound(_REPORT_PROFILES, payload, t)

    def reservation_status(self, reservation_id: int, status: str, t: float) -> Outbound:
        """H01/H04: ReservationStatusUpdate (Expired or Removed)."""
        payload = {"reservationId": reservation_id, "reservationUpdateStatus": status}
        return Outbound(_RESERVATION_STATUS, payload, t)

    def sign_certificate(self, csr: str, certificate_type: str | None, t: float) -> Outbound:
        """A02/A03: SignCertificateRequest; no certificateType asks for one certificate for
        both uses (the combined certificate)."""
        payload: dict[str, Any] = {"csr": csr}
        if certificate_type is not None:
            payload["certificateType"] = certificate_type
        return Outbound(_SIGN_CERTIFICATE, payload, t)

    # -- sending and answers -------------------------------------------------------------------

    def reported_energy_wh(self, tx: Transaction) -> float:
        """Energy as the CSMS computes it from the registers this adapter sends."""
        return round(tx.meter_stop_wh, 1) - round(tx.meter_start_wh, 1)

    def prepare(self, message: Outbound) -> dict[str, Any]:
        # Every 2.0.1 payload is complete when made: the charger names its own transactions.
        return message.payload

    def accepted(self, message: Outbound, response: dict[str, Any]) -> None:
        # Nothing to learn: per-transaction state is already dropped when Ended is made.
        return None

    @staticmethod
    def boot_outcome(response: dict[str, Any]) -> tuple[str, float]:
        return response["status"], float(response["interval"])

    @staticmethod
    def authorize_outcome(response: dict[str, Any]) -> bool:
        return bool(response["idTokenInfo"]["status"] == "Accepted")

    # -- helpers -------------------------------------------------------------------------------

    def _next_seq_no(self, tx: Transaction) -> int:
        state = self._txs.get(tx.seq)
        if state is None:
            # An event for a transaction whose Started this adapter did not make (e.g. an
            # adapter swapped in mid-session): number on from 1, Started having been 0.
            state = self._txs[tx.seq] = _TxState()
            state.seq_no = 1
        seq_no = state.seq_no
        state.seq_no = seq_no + 1
        return seq_no

    def _charging_state(self, tx: Transaction, charging_state: str, t: float) -> list[Outbound]:
        """An Updated ChargingStateChanged event, or nothing if that state was already sent."""
        state = self._txs.get(tx.seq)
        if state is not None and state.charging_state == charging_state:
            return []
        seq_no = self._next_seq_no(tx)
        self._txs[tx.seq].charging_state = charging_state
        payload = {
            "eventType": _UPDATED,
            "timestamp": self._stamps.iso(t),
            "triggerReason": _STATE_CHANGED,
            "seqNo": seq_no,
            "transactionInfo": {
                "transactionId": self.transaction_id(tx),
                "chargingState": charging_state,
            },
        }
        return [Outbound(_TX_EVENT, payload, t, True, tx)]

    @staticmethod
    def _grow(sent: list[str | None], evse_id: int) -> list[str | None]:
        if len(sent) <= evse_id:
            sent.extend([None] * (evse_id + 1 - len(sent)))
        return sent

    @staticmethod
    def _status(evse_id: int, status: str, stamp: str, t: float) -> Outbound:
        payload = {
            "timestamp": stamp,
            "connectorStatus": status,
            "evseId": evse_id,
            "connectorId": 1,
        }
        return Outbound(_STATUS, payload, t)


def _register(stamp: str, energy_wh: float, context: str) -> dict[str, Any]:
    """A meterValue holding only the energy register (transaction begin and end)."""
    return {
        "timestamp": stamp,
        "sampledValue": [
            {
                "value": round(energy_wh, 1),
                "context": context,
                "measurand": _ENERGY,
                "location": _OUTLET,
                "unitOfMeasure": {"unit": _WH},
            }
        ],
    }
