"""`fleetsim run` and `fleetsim csms` as a user runs them: real processes on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.sync.client import connect

from tests.conftest import busy_scenario

FLEETSIM = [sys.executable, "-m", "simulator.cli"]


def _scenario_file(tmp_path: Path, **online: Any) -> Path:
    data = busy_scenario(**online).model_dump(mode="json", exclude_defaults=True)
    path = tmp_path / "busy.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--duration", "soon"], "--duration: cannot read duration 'soon'"),
        (["--speed", "0"], "--speed"),
        (["--chargers", "0"], "--chargers"),
        (["--target", "http://127.0.0.1:9000"], "--target: expected a ws:// or wss:// URL"),
        (["--target", "ws://cp:secret@127.0.0.1:9000"], "remove the user:password part"),
        (["--metrics-port", "70000"], "--metrics-port"),
    ],
)
def test_run_mistakes_are_one_line_and_exit_2(args: list[str], words: str) -> None:
    proc = subprocess.run(
        [*FLEETSIM, "run", "quickstart", *args], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2, proc.stderr
    assert words in proc.stderr
    assert "secret" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_run_against_the_embedded_csms_writes_a_report_and_keeps_the_database(
    tmp_path: Path,
) -> None:
    scenario = _scenario_file(tmp_path, duration="3s")
    report_path, db = tmp_path / "out" / "report.json", tmp_path / "csms.db"
    proc = subprocess.run(
        [
            *FLEETSIM,
            "run",
            str(scenario),
            "--metrics-port",
            "0",
            "-q",
            "--report",
            str(report_path),
            "--csms-db",
            str(db),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["target"] == "embedded CSMS"
    assert report["chargers"]["connected_end"] == 6
    assert report["actions"]["StartTransaction"]["count"] > 0
    assert report["actions"]["TransactionEvent"]["count"] > 0
    assert "StatusNotification" in proc.stdout and "SLO" in proc.stdout
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("select count(*) from transactions").fetchone()
        (energy,) = conn.execute("select sum(energy_wh) from transactions").fetchone()
    assert count == report["ledger"]["transactions_started"]
    assert energy == pytest.approx(report["ledger"]["energy_wh"], abs=1e-3)


def test_a_broken_slo_exits_1(tmp_path: Path) -> None:
    scenario = _scenario_file(tmp_path, duration="2s")
    data = yaml.safe_load(scenario.read_text(encoding="utf-8"))
    data["slo"] = {"p99_ms": {"Heartbeat": 0.000001}}
    scenario.write_text(yaml.safe_dump(data), encoding="utf-8")
    proc = subprocess.run(
        [*FLEETSIM, "run", str(scenario), "--metrics-port", "0", "-q"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "FAIL p99_ms[Heartbeat]" in proc.stdout


def test_an_unreachable_csms_is_reported_and_fails_the_run(tmp_path: Path) -> None:
    scenario = _scenario_file(tmp_path, duration="2s")
    # Port 9 on loopback: nothing listens there, so every connection is refused at once.
    proc = subprocess.run(
        [
            *FLEETSIM,
            "run",
            str(scenario),
            "--target",
            "ws://127.0.0.1:9",
            "--metrics-port",
            "0",
            "-q",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no charger could connect: cannot connect" in proc.stderr
    assert "Traceback" not in proc.stderr


def _wait_for_a_transaction(db: Path, proc: subprocess.Popen[str], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it was signalled"
        if db.exists():
            try:
                with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                    if conn.execute("SELECT COUNT(*) FROM transactions").fetchone()[0] > 0:
                        return
            except sqlite3.Error:
                pass  # not created yet, or being written: look again
        time.sleep(0.2)
    raise AssertionError("no transaction reached the CSMS in time")


@pytest.mark.parametrize(
    "how",
    [
        "sigterm",  # a supervisor stops the run
        # A terminal's Ctrl-C signals every process of the foreground group, the embedded CSMS
        # included: the run must still stop its transactions cleanly against a live CSMS.
        "ctrl-c to the group",
    ],
)
def test_a_signal_ends_a_run_cleanly_and_delivers_the_last_messages(
    tmp_path: Path, how: str
) -> None:
    scenario = _scenario_file(tmp_path, duration="10m")
    report_path = tmp_path / "report.json"
    db = tmp_path / "csms.db"
    proc = subprocess.Popen(
        [
            *FLEETSIM,
            "run",
            str(scenario),
            "--metrics-port",
            "0",
            "-q",
            "--report",
            str(report_path),
            "--csms-db",
            str(db),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, like a terminal job
    )
    try:
        # Signal once transactions are under way (start-up time varies with the machine's
        # load): the CSMS's database shows the first one.
        _wait_for_a_transaction(db, proc)
        if how == "sigterm":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, out + err
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert report["interrupted"] is True
    assert report["wall_s"] < 30
    assert report["ledger"]["transactions_started"] > 0
    assert report["ledger"]["transactions_open"] == 0
    assert report["ledger"]["messages_unsent"] == 0


def test_fleetsim_csms_serves_until_terminated(tmp_path: Path) -> None:
    db = tmp_path / "csms.db"
    proc = subprocess.Popen(
        [*FLEETSIM, "csms", "--port", "0", "--db", str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "listening on ws://127.0.0.1:" in line, line
        port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        with connect(
            f"ws://127.0.0.1:{port}/CP-9",
            subprotocols=["ocpp1.6"],
            proxy=None,  # type: ignore[list-item]
        ) as ws:
            ws.send(json.dumps([2, "1", "Heartbeat", {}]))
            answer = json.loads(ws.recv(timeout=5))
        assert answer[0] == 3 and answer[1] == "1" and "currentTime" in answer[2]
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        assert proc.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def _csms_children(pid: int) -> list[int]:
    """Processes whose parent is `pid` and whose command line runs the embedded CSMS."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"simulator.csms" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process table from /proc")
def test_the_embedded_csms_does_not_outlive_a_killed_run(tmp_path: Path) -> None:
    scenario = _scenario_file(tmp_path, duration="10m")
    proc = subprocess.Popen(
        [*FLEETSIM, "run", str(scenario), "--metrics-port", "0", "-q"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not children and time.monotonic() < deadline:
            time.sleep(0.2)
            children = _csms_children(proc.pid)
        assert children, "the embedded CSMS never started"
        time.sleep(3.0)  # let it come up and the run start (a dying parent breaks its pipe)
        proc.kill()
        proc.wait(timeout=10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
            time.sleep(0.2)
        alive = [c for c in children if Path(f"/proc/{c}/stat").exists()]
        # A zombie (state Z) has exited; only its parent's reaping is missing.
        running = [c for c in alive if Path(f"/proc/{c}/stat").read_text().split()[2] != "Z"]
        assert running == []
    finally:
        if proc.poll() is None:
            proc.kill()
        for child in children:  # only the CSMS this test started, should it have survived
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)
