"""`python -m simulator.csms`: run the embedded CSMS as a process until SIGINT/SIGTERM.

Prints exactly one stdout line once listening, `FLEETSIM_CSMS_LISTENING <port>`, followed by
` <api port>` when the HTTP API runs (a parent process reads it to learn the ports); everything
else is logging on stderr. A port that cannot be bound, or an API address that is not
loopback, is one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from simulator.csms.http_api import ApiBindError, loopback_family
from simulator.csms.server import CsmsConfig, CsmsServer, run_csms

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
    parser.add_argument(
        "--api-port", type=int, default=None, help="serve the HTTP API here (0: a free port)"
    )
    parser.add_argument("--api-host", default="127.0.0.1", help="loopback address of the API")
    parser.add_argument(
        "--sites", type=Path, default=None, help="sites file: grid limits for load management"
    )
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
        # os.read on the descriptor, not sys.stdin: a daemon thread blocked inside the buffered
        # reader holds its lock, and the interpreter's shutdown then aborts on it ("Fatal
        # Python error: _enter_buffered_busy").
        fd = sys.stdin.fileno()
        while os.read(fd, 4096):
            pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _ready(server: CsmsServer) -> None:
    api = "" if server.api is None else f" {server.api.port}"
    print(f"{READY_LINE} {server.port}{api}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        loopback_family(args.api_host)
    except ApiBindError as exc:
        print(f"python -m simulator.csms: error: --api-host: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
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
        api_port=args.api_port,
        api_host=args.api_host,
        sites_path=args.sites,
    )
    if args.exit_with_parent:
        _stop_when_stdin_closes()
    try:
        run_csms(config, _ready)
    except ApiBindError as exc:
        print(f"python -m simulator.csms: error: --api-port: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    except OSError as exc:
        message = f"--port {args.port}: cannot listen on {args.host}: {exc.strerror or exc}"
        print(f"python -m simulator.csms: error: {message}", file=sys.stderr, flush=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
