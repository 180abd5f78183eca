"""ChargerControl: authorisation (local list, cache, offline rules), local list versions,
firmware and upload state machines, resets, data transfer, and the scenario's charger model."""

from __future__ import annotations

import socket
from typing import Any

import numpy as np
import pytest
import simpy
from pydantic import ValidationError

from models.demand import EvDemand
from simulator.charger import (
    AUTH_CACHE_SIZE,
    ChargerBehaviour,
    ChargerControl,
    ChargerSettings,
    DataTransferRule,
    FirmwareStatus,
    UploadStatus,
    firmware_name,
)
from simulator.events import LOCAL_DECISION, StopReason
from simulator.scenario import ChargerModel
from simulator.station import Connector, Site, Station, StationSpec
from tests.simulator.test_station import AC11, Recorder, ev

F = FirmwareStatus
U = UploadStatus


class Listener:
    """Records every call a ChargerControl makes on its listener, with the time."""

    def __init__(self, env: simpy.Environment) -> None:
        self.env = env
        self.firmware: list[tuple[FirmwareStatus, int | None, float]] = []
        self.uploads: list[tuple[UploadStatus, int | None, float]] = []
        self.reservations: list[tuple[int, str, float]] = []
        self.reboots: list[tuple[float, float]] = []
        self.settings = 0

    def firmware_status(self, status: FirmwareStatus, request_id: int | None, t: float) -> None:
        self.firmware.append((status, request_id, t))

    def upload_status(self, status: UploadStatus, request_id: int | None, t: float) -> None:
        self.uploads.append((status, request_id, t))

    def reservation_ended(self, reservation_id: int, reason: str, t: float) -> None:
        self.reservations.append((reservation_id, reason, t))

    def rebooting(self, downtime_s: float) -> None:
        self.reboots.append((self.env.now, downtime_s))

    def settings_changed(self) -> None:
        self.settings += 1

    def statuses(self) -> list[FirmwareStatus]:
        return [s for s, _, _ in self.firmware]


class Remote:
    """A CSMS stand-in: answers Authorize with `answers` (default refuse), counting the asks;
    `deferred` answers through a SimPy event 5 s later, as the link does."""

    def __init__(self, env: simpy.Environment, deferred: bool = False) -> None:
        self.env = env
        self.deferred = deferred
        self.answers: dict[str, bool | str] = {}
        self.asked: list[str] = []

    def authorize(self, connector: Connector, id_tag: str) -> bool | simpy.Event:
        self.asked.append(id_tag)
        answer = self.answers.get(id_tag, False)
        if not self.deferred:
            return bool(answer)
        event = self.env.event()

        def later() -> Any:
            yield self.env.timeout(5.0)
            event.succeed(answer)

        self.env.process(later())
        return event


def build(
    demand: list[EvDemand] | None = None,
    connectors: int = 1,
    behaviour: ChargerBehaviour | None = None,
    settings: ChargerSettings | None = None,
    seed: int = 1,
) -> tuple[simpy.Environment, ChargerControl, Listener, Recorder]:
    env = simpy.Environment()
    sink = Recorder()
    site = Site(env, "t", 0, sink)
    spec = StationSpec(AC11, connectors, 30.0)
    station = Station(env, site, 0, "cs0", spec, sink, None, demand or [])  # type: ignore[arg-type]
    control = ChargerControl(
        station,
        behaviour or ChargerBehaviour(),
        settings or ChargerSettings(),
        np.random.default_rng(seed),
    )
    station.authorizer = control
    listener = Listener(env)
    control.listener = listener
    return env, control, listener, sink


def connector_of(control: ChargerControl) -> Connector:
    return control.station.connectors[0]


# -- authorisation -----------------------------------------------------------------------------


def test_the_local_list_answers_first_and_the_csms_only_for_unknown_tags() -> None:
    env, control, _, _ = build()
    remote = control.remote = Remote(env)
    remote.answers["NEW"] = True
    c = connector_of(control)
    assert control.send_local_list(1, True, {"A": "Accepted", "B": "Blocked"}) == "Accepted"
    assert control.authorize(c, "A") is True
    assert control.authorize(c, "B") is False
    assert remote.asked == []  # LocalPreAuthorize: the list decides without asking
    control.settings.local_pre_authorize = False
    assert control.authorize(c, "A") is False  # asked, and this CSMS does not know A
    assert control.authorize(c, "NEW") is True
    assert remote.asked == ["A", "NEW"]
    control.settings.local_auth_list_enabled = False
    control.settings.local_pre_authorize = True
    assert control.authorize(c, "B") is False  # the list is off: the CSMS is asked
    assert remote.asked[-1] == "B"


def test_answers_are_cached_and_clear_cache_forgets_them() -> None:
    env, control, _, _ = build()
    remote = control.remote = Remote(env)
    remote.answers["OK"] = True
    c = connector_of(control)
    assert control.authorize(c, "OK") is True
    assert control.authorize(c, "BAD") is False
    assert (control.cached("OK"), control.cached("BAD")) == ("Accepted", "Invalid")
    assert control.authorize(c, "OK") is True and control.authorize(c, "BAD") is False
    assert remote.asked == ["OK", "BAD"]  # the second time the cache answered
    assert control.clear_cache()
    assert control.authorize(c, "OK") is True
    assert remote.asked == ["OK", "BAD", "OK"]
    for i in range(AUTH_CACHE_SIZE + 10):
        control.authorize(c, f"T{i}")
    assert control.cached("T0") is None and control.cached(f"T{AUTH_CACHE_SIZE + 9}") == "Invalid"
    control.settings.auth_cache_enabled = False
    assert not control.clear_cache()


def test_a_deferred_answer_is_cached_when_it_arrives() -> None:
    env, control, _, _ = build()
    remote = control.remote = Remote(env, deferred=True)
    remote.answers["OK"] = True
    answer = control.authorize(connector_of(control), "OK")
    assert isinstance(answer, simpy.Event) and control.cached("OK") is None
    env.run(until=10)
    assert answer.value is True and control.cached("OK") == "Accepted"


def test_a_local_decision_after_a_timeout_lets_the_driver_charge_but_is_not_cached() -> None:
    env, control, _, _ = build()
    remote = control.remote = Remote(env, deferred=True)
    remote.answers["SILENT"] = LOCAL_DECISION  # what the link answers when the CSMS is silent
    answer = control.authorize(connector_of(control), "SILENT")
    assert isinstance(answer, simpy.Event)
    env.run(until=10)
    assert answer.value  # the driver charges...
    assert control.cached("SILENT") is None  # ...but nothing was learnt about the tag
    control.authorize(connector_of(control), "SILENT")
    assert remote.asked == ["SILENT", "SILENT"]


@pytest.mark.parametrize(
    ("allow_unknown", "authorize_offline", "known", "unknown"),
    [(True, True, True, True), (False, True, True, False), (True, False, False, False)],
)
def test_offline_rules(
    allow_unknown: bool, authorize_offline: bool, known: bool, unknown: bool
) -> None:
    env, control, _, _ = build()
    remote = control.remote = Remote(env)
    control.online = lambda: False
    control.settings.allow_offline_unknown = allow_unknown
    control.settings.local_authorize_offline = authorize_offline
    control.settings.local_pre_authorize = False  # offline, Accepted entries still count
    control.send_local_list(1, True, {"KNOWN": "Accepted", "GONE": "Expired"})
    c = connector_of(control)
    assert control.authorize(c, "KNOWN") is known
    assert control.authorize(c, "STRANGER") is unknown
    assert control.authorize(c, "GONE") is False
    assert remote.asked == []


def test_a_refused_tag_ends_the_visit_through_the_station() -> None:
    env, control, _, sink = build([ev(0.0)])
    control.remote = Remote(env)
    env.run(until=3600)
    assert not sink.of("started")


# -- local list versions -----------------------------------------------------------------------


def test_send_local_list_full_differential_and_version_mismatch() -> None:
    _, control, _, _ = build()
    assert control.local_list_version() == 0
    assert control.send_local_list(3, True, {"A": "Accepted", "B": "Accepted", "X": None}) == (
        "Accepted"
    )
    assert control.local_list() == {"A": "Accepted", "B": "Accepted"}
    assert control.send_local_list(3, False, {"C": "Accepted"}) == "VersionMismatch"
    assert control.send_local_list(2, False, {"C": "Accepted"}) == "VersionMismatch"
    assert control.send_local_list(4, False, {"A": None, "B": "Blocked", "C": "Accepted"}) == (
        "Accepted"
    )
    assert control.local_list() == {"B": "Blocked", "C": "Accepted"}
    assert control.local_list_version() == 4
    assert control.send_local_list(1, True, {"Z": "Accepted"}) == "Accepted"  # full: any version
    assert control.local_list() == {"Z": "Accepted"} and control.local_list_version() == 1
    too_many: dict[str, str | None] = {f"T{i}": "Accepted" for i in range(1001)}
    assert control.send_local_list(2, True, too_many) == "Failed"
    assert control.local_list_version() == 1
    control.settings.local_auth_list_enabled = False
    assert control.send_local_list(5, True, {}) == "NotSupported"


# -- firmware ----------------------------------------------------------------------------------


def test_a_firmware_update_walks_every_status_and_reboots_into_the_new_version() -> None:
    behaviour = ChargerBehaviour(firmware_download_s=100.0, firmware_install_s=200.0, reboot_s=40.0)
    env, control, listener, _ = build(behaviour=behaviour)
    answer = control.update_firmware(
        "https://fw.example/cs/fleet-2.4.1.bin", retrieve_s=500.0, signed=True, request_id=7
    )
    assert answer == "Accepted"
    env.run(until=5000)
    assert listener.statuses() == [
        F.DOWNLOAD_SCHEDULED,
        F.DOWNLOADING,
        F.DOWNLOADED,
        F.SIGNATURE_VERIFIED,
        F.INSTALLING,
        F.INSTALL_REBOOTING,
        F.INSTALLED,
    ]
    times = {s: t for s, _, t in listener.firmware}
    assert {rid for _, rid, _ in listener.firmware} == {7}
    assert times[F.DOWNLOADING] == 500.0
    assert 50.0 <= times[F.DOWNLOADED] - 500.0 <= 150.0
    assert 100.0 <= times[F.INSTALL_REBOOTING] - times[F.INSTALLING] <= 300.0
    ((t_reboot, downtime),) = listener.reboots
    assert t_reboot == times[F.INSTALL_REBOOTING] and 20.0 <= downtime <= 60.0
    assert times[F.INSTALLED] == pytest.approx(t_reboot + downtime)
    assert control.firmware_version == "fleet-2.4.1"
    assert control.boot_reason == "FirmwareUpdate"
    assert control.firmware_state is F.INSTALLED


def test_installation_waits_for_the_transaction_to_end_and_holds_new_ones_back() -> None:
    behaviour = ChargerBehaviour(firmware_download_s=60.0, firmware_install_s=60.0)
    env, control, listener, sink = build(
        [ev(0.0, dwell_h=1), ev(3000.0, dwell_h=1)], connectors=2, behaviour=behaviour
    )
    env.run(until=10)
    control.update_firmware("fw/v2.bin", retrieve_s=0.0, install_s=1000.0)
    env.run(until=20_000)
    times = {s: t for s, _, t in listener.firmware}
    assert F.INSTALL_SCHEDULED in times
    ended = [t for _, _, t, _ in sink.of("ended")]
    assert times[F.INSTALLING] == pytest.approx(ended[0])  # once the first session's tx ends
    starts = [t for _, _, t, _ in sink.of("started")]
    # The EV arriving at 3000 (connector 2 free) waited for the install and the reboot.
    assert starts[1] == pytest.approx(times[F.INSTALLED]) and starts[1] > 3000.0


def test_download_failures_retry_then_give_up() -> None:
    behaviour = ChargerBehaviour(firmware_download_failure_p=1.0, firmware_download_s=10.0)
    env, control, listener, _ = build(behaviour=behaviour)
    control.update_firmware("fw/v2.bin", retrieve_s=0.0, retries=2, retry_interval_s=100.0)
    env.run(until=5000)
    assert listener.statuses() == [F.DOWNLOADING, F.DOWNLOAD_FAILED] * 3
    starts = [t for s, _, t in listener.firmware if s is F.DOWNLOADING]
    fails = [t for s, _, t in listener.firmware if s is F.DOWNLOAD_FAILED]
    assert [b - a for a, b in zip(fails, starts[1:], strict=False)] == pytest.approx([100.0, 100.0])
    assert listener.reboots == [] and control.firmware_version == "1.0.0"


def test_an_installation_failure_does_not_reboot_and_releases_the_station() -> None:
    behaviour = ChargerBehaviour(firmware_install_failure_p=1.0)
    env, control, listener, sink = build([ev(1000.0, dwell_h=1)], behaviour=behaviour)
    control.update_firmware("fw/v2.bin", retrieve_s=0.0)
    env.run(until=5000)
    assert listener.statuses()[-2:] == [F.INSTALLING, F.INSTALLATION_FAILED]
    assert listener.reboots == [] and control.firmware_version == "1.0.0"
    assert [t for _, _, t, _ in sink.of("started")] == [1000.0]


def test_a_new_request_cancels_a_download_but_not_an_installation() -> None:
    behaviour = ChargerBehaviour(firmware_download_s=100.0, firmware_install_s=1000.0)
    env, control, listener, _ = build(behaviour=behaviour)
    assert control.update_firmware("fw/a.bin", retrieve_s=0.0, request_id=1) == "Accepted"
    env.run(until=10)
    assert control.update_firmware("fw/b.bin", retrieve_s=0.0, request_id=2) == "AcceptedCanceled"
    env.run(until=300)  # the second download is done; installing
    assert control.firmware_state is F.INSTALLING
    assert control.update_firmware("fw/c.bin", retrieve_s=0.0, request_id=3) == "Rejected"
    env.run(until=5000)
    assert [rid for s, rid, _ in listener.firmware if s is F.DOWNLOADED] == [2]
    assert control.firmware_version == "b"


def test_firmware_names_come_from_the_location() -> None:
    assert firmware_name("https://h/path/charger-2.1.0.bin") == "charger-2.1.0"
    assert firmware_name("ftp://h/fw-1.2.tar.gz?x=1") == "fw-1.2"
    assert firmware_name("fw-3.0.1") == "fw-3.0.1"
    assert len(firmware_name("https://h/" + "x" * 80 + ".bin")) == 50


# -- uploads -----------------------------------------------------------------------------------


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an upload tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.usefixtures("no_network")
def test_an_upload_is_recorded_and_never_sent() -> None:
    env, control, listener, _ = build(behaviour=ChargerBehaviour(upload_s=20.0))
    env.run(until=100)
    name = control.upload_logs("ftp://192.0.2.7/logs/", request_id=4, kind="DiagnosticsLog")
    assert name == "cs0-DiagnosticsLog-100.log"
    assert control.upload_busy
    env.run(until=1000)
    assert [(s, rid) for s, rid, _ in listener.uploads] == [(U.UPLOADING, 4), (U.UPLOADED, 4)]
    ((t, location, file_name),) = control.uploads
    assert 110.0 <= t <= 130.0 and location == "ftp://192.0.2.7/logs/" and file_name == name
    assert not control.upload_busy and control.upload_state is U.UPLOADED


@pytest.mark.usefixtures("no_network")
def test_a_failing_upload_retries_and_reports_failure() -> None:
    env, control, listener, _ = build(behaviour=ChargerBehaviour(upload_failure_p=1.0))
    control.upload_logs("ftp://192.0.2.7/", retries=1, retry_interval_s=50.0)
    env.run(until=1000)
    assert [s for s, _, _ in listener.uploads] == [U.UPLOADING, U.UPLOADING, U.UPLOAD_FAILED]
    assert control.uploads == []


# -- resets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("hard", StopReason.HARD_RESET),
        ("soft", StopReason.SOFT_RESET),
        ("immediate", StopReason.HARD_RESET),
    ],
)
def test_a_reset_ends_transactions_and_reboots(kind: Any, reason: StopReason) -> None:
    env, control, listener, sink = build([ev(0.0, dwell_h=2)])
    env.run(until=600)
    assert control.reset(kind) == "Accepted"
    assert control.boot_reason == "RemoteReset" and not control.station.up
    assert control.reset("hard") == "Rejected"  # already down
    env.run(until=700)
    ((_, _, t_end, tx),) = sink.of("ended")
    assert (t_end, tx.stop_reason) == (600.0, reason)
    ((t, downtime),) = listener.reboots
    assert t == 600.0 and 15.0 <= downtime <= 45.0
    assert control.station.up


def test_reset_on_idle_is_scheduled_until_the_transactions_end() -> None:
    env, control, listener, sink = build([ev(0.0, dwell_h=1), ev(1800.0, dwell_h=1)], connectors=2)
    env.run(until=600)
    assert control.reset("on_idle") == "Scheduled"
    env.run(until=3599)
    assert listener.reboots == []
    assert len(sink.of("started")) == 1  # the EV of 1800 waits
    env.run(until=20_000)
    ((t, downtime),) = listener.reboots
    assert t == pytest.approx(3600.0)
    starts = [t for _, _, t, _ in sink.of("started")]
    assert starts[1] == pytest.approx(3600.0 + downtime)
    assert control.reset("on_idle") == "Accepted"  # idle: at once
    assert len(listener.reboots) == 2


def test_an_evse_reset_ends_only_its_transaction_without_reconnecting() -> None:
    env, control, listener, sink = build([ev(0.0, dwell_h=2), ev(10.0, dwell_h=2)], connectors=2)
    env.run(until=600)
    assert control.reset("immediate", evse_id=2) == "Accepted"
    assert control.reset("immediate", evse_id=3) == "Rejected"
    env.run(until=700)
    ((_, where, _, tx),) = sink.of("ended")
    assert where == "cs0/2" and tx.stop_reason is StopReason.HARD_RESET
    assert listener.reboots == [] and control.station.up
    assert control.reset("on_idle", evse_id=1) == "Scheduled"


# -- other operations --------------------------------------------------------------------------


def test_remote_stop_and_transaction_lookup() -> None:
    env, control, _, sink = build([ev(0.0, dwell_h=2)])
    env.run(until=60)
    (tx,) = control.station.transactions()
    assert control.transaction_by_seq(tx.seq) is tx
    assert control.transaction_by_seq(99) is None and not control.remote_stop(99)
    assert control.remote_stop(tx.seq)
    env.run(until=120)
    assert sink.of("ended")[0][3].stop_reason is StopReason.REMOTE
    assert control.transaction_by_seq(tx.seq) is None


def test_settings_gate_operations_and_changes_reach_the_listener() -> None:
    env, control, listener, sink = build([ev(0.0, dwell_h=2)])
    control.settings.reservation_enabled = False
    assert control.reserve(1, 1, "A", 100.0) == "Rejected"
    control.settings.reservation_enabled = True
    env.run(until=60)
    assert control.reserve(1, 1, "A", 100.0) == "Occupied"
    control.set_meter_interval(30.0)
    control.set_heartbeat(60.0)
    assert listener.settings == 2
    assert (control.settings.meter_interval_s, control.settings.heartbeat_s) == (30.0, 60.0)
    env.run(until=121)
    assert [t for _, _, t, _ in sink.of("meter")] == [90.0, 120.0]


def test_a_reservation_ending_reaches_the_listener() -> None:
    env, control, listener, _ = build()
    assert control.reserve(3, None, "A", 100.0) == "Accepted"
    env.run(until=200)
    assert listener.reservations == [(3, "Expired", 100.0)]


def test_data_transfer_rules() -> None:
    rules = (
        DataTransferRule("acme", "ping", "Accepted", "pong"),
        DataTransferRule("acme", None, "Rejected"),
        DataTransferRule("beta", "only", "Accepted"),
    )
    _, control, _, _ = build(behaviour=ChargerBehaviour(data_transfer_rules=rules))
    assert control.data_transfer("acme", "ping", None) == ("Accepted", "pong")
    assert control.data_transfer("acme", "other", "x") == ("Rejected", None)
    assert control.data_transfer("beta", "nope", None) == ("UnknownMessageId", None)
    assert control.data_transfer("gamma", "ping", None) == ("UnknownVendorId", None)


def test_the_behaviour_comes_from_the_scenario_charger_model() -> None:
    model = ChargerModel.model_validate(
        {
            "reboot_s": 5,
            "firmware_download_failure_p": 0.25,
            "remote_start_no_show_p": 0.1,
            "firmware": "7.0",
            "data_transfer": [{"vendor_id": "acme", "status": "Accepted", "data": "hi"}],
        }
    )
    behaviour = ChargerBehaviour.from_model(model)
    assert behaviour.reboot_s == 5.0 and behaviour.firmware_download_failure_p == 0.25
    assert behaviour.remote_start_no_show_p == 0.1 and behaviour.firmware == "7.0"
    assert behaviour.data_transfer_rules == (DataTransferRule("acme", None, "Accepted", "hi"),)
    assert ChargerBehaviour.from_model(ChargerModel()) == ChargerBehaviour()
    with pytest.raises(ValidationError):
        ChargerModel.model_validate({"upload_failure_p": 1.5})
    with pytest.raises(ValidationError):
        ChargerModel.model_validate({"data_transfer": [{"vendor_id": "a", "status": "Maybe"}]})
