"""`python -m simulator.csms`: run the embedded CSMS as a process until SIGINT/SIGTERM.

Prints exactly one stdout line, `FLEETSIM_CSMS_LISTENING <port>`, once listening (a parent
process reads it to learn the port); everything else is logging on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from simulator.csms.server import CsmsConfig, run_csms

READY_LINE = "FLEETSIM_CSMS_LISTENING"


def read_id_tags(path: Path) -> frozenset[str]:
    """One accepted tag per line; blank lines and lines starting with # are skipped."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(s for line in lines if (s := line.strip()) and not s.startswith("#"))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simulator.csms", description="Run the embedded OCPP CSMS."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000, help="0 picks a free port")
    parser.add_argument("--db", type=Path, default=None, help="SQLite file (default: memory)")
    parser.add_argument("--heartbeat", type=int, default=300, help="interval handed out, s")
    parser.add_argument("--id-tags", type=Path, default=None, help="file of accepted tags")
    parser.add_argument("--no-validate", action="store_true", help="skip schema validation")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument(
        "--exit-with-parent",
        action="store_true",
        help="stop cleanly when stdin closes (the parent process ended, however it ended)",
    )
    return parser.parse_args(argv)


def _stop_when_stdin_closes() -> None:
    """A child started in its own session is out of reach of the terminal's signals, so it
    would outlive a parent killed with SIGKILL; the parent's end of the pipe closing tells."""

    def watch() -> None:
        while sys.stdin.buffer.read(4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready(port: int) -> None:
    print(f"{READY_LINE} {port}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config = CsmsConfig(
        host=args.host,
        port=args.port,
        db_path=args.db,
        heartbeat_interval_s=args.heartbeat,
        id_tags=None if args.id_tags is None else read_id_tags(args.id_tags),
        validate=not args.no_validate,
    )
    if args.exit_with_parent:
        _stop_when_stdin_closes()
    run_csms(config, _ready)


if __name__ == "__main__":
    main()
