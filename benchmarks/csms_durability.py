"""What durable acknowledgements cost the embedded CSMS: calls per second, CSMS CPU per call and
answer latency, with and without `--no-durable`, on transaction traffic only (the worst case:
every call waits for a commit; Heartbeats and statuses never wait).

`python -m simulator.csms` runs as a child process with a database file in a temporary folder;
this process drives N 1.6 chargers over raw websockets on 127.0.0.1 (pre-serialised frames, no
validation, so that the client stays cheap), each looping StartTransaction, 8 transaction
MeterValues and StopTransaction with one CALL outstanding (closed loop). One JSON object per
configuration goes to stdout. Run with `python benchmarks/csms_durability.py` (about a minute),
`--chargers 100 1000 --seconds 10`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

REPO = Path(__file__).resolve().parents[1]
STAMP = "2030-01-01T12:00:00.000Z"
METER_PER_TX = 8


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _charger(url: str, index: int, latencies: list[float], ready: asyncio.Barrier) -> None:
    """One charger's closed loop of transactions, until cancelled."""
    ws = await connect(
        f"{url}/BENCH-{index}",
        subprotocols=[Subprotocol("ocpp1.6")],
        compression=None,
        proxy=None,
        max_queue=None,
    )
    next_id = 0

    async def call(action: str, payload: dict[str, Any]) -> Any:
        nonlocal next_id
        next_id += 1
        sent = time.perf_counter()
        await ws.send(orjson.dumps([2, str(next_id), action, payload]).decode())
        answer = orjson.loads(await ws.recv())
        latencies.append(time.perf_counter() - sent)
        assert answer[0] == 3, answer
        return answer[2]

    await call("BootNotification", {"chargePointVendor": "Bench", "chargePointModel": "B"})
    await ready.wait()
    register = 0
    while True:
        start = {"connectorId": 1, "idTag": "T", "meterStart": register, "timestamp": STAMP}
        tx = (await call("StartTransaction", start))["transactionId"]
        for _ in range(METER_PER_TX):
            register += 100
            sample = {"value": str(register), "context": "Sample.Periodic"}
            meter = {
                "connectorId": 1,
                "transactionId": tx,
                "meterValue": [{"timestamp": STAMP, "sampledValue": [sample]}],
            }
            await call("MeterValues", meter)
        stop = {"transactionId": tx, "meterStop": register, "timestamp": STAMP}
        await call("StopTransaction", stop)


async def _one(chargers: int, seconds: float, durable: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="fleetsim-bench-") as tmp:
        args = [sys.executable, "-m", "simulator.csms", "--port", "0", "--db", f"{tmp}/b.db"]
        args += ["--log-level", "WARNING"] + ([] if durable else ["--no-durable"])
        proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            port = int(proc.stdout.readline().split()[1])
            url = f"ws://127.0.0.1:{port}"
            ready = asyncio.Barrier(chargers + 1)
            latencies: list[float] = []
            tasks = [
                asyncio.create_task(_charger(url, i, latencies, ready)) for i in range(chargers)
            ]
            await ready.wait()  # everyone connected and booted
            latencies.clear()
            cpu0, wall0 = _cpu_s(proc.pid), time.monotonic()
            await asyncio.sleep(seconds)
            calls_in_window = len(latencies)
            cpu1, wall1 = _cpu_s(proc.pid), time.monotonic()
            window = sorted(latencies[:calls_in_window])
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    wall = wall1 - wall0
    cpu = cpu1 - cpu0

    def pct(q: float) -> float:
        return round(window[min(len(window) - 1, int(q * len(window)))] * 1000.0, 2)

    return {
        "durable": durable,
        "chargers": chargers,
        "seconds": round(wall, 2),
        "calls": calls_in_window,
        "calls_per_s": round(calls_in_window / wall),
        "csms_cpu_share": round(cpu / wall, 2),
        "csms_cpu_us_per_call": round(cpu / max(calls_in_window, 1) * 1e6, 1),
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": pct(1.0)},
    }


def _run(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chargers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    for chargers in args.chargers:
        for durable in (False, True):
            result = _run(_one(chargers, args.seconds, durable))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
