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
from typing import NoReturn

from simulator.csms.chaos import CsmsChaos, parse_chaos
from simulator.csms.http_api import ApiBindError, loopback_family
from simulator.csms.server import (
    CsmsConfig,
    CsmsServer,
    SecurityError,
    run_csms,
    server_ssl_context,
)
from simulator.transport import Secret, TransportError, read_secret

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
    security = parser.add_argument_group(
        "security profiles", "passwords come from a variable or a file, never the command line"
    )
    security.add_argument(
        "--security-profile",
        type=int,
        choices=(0, 1, 2, 3),
        default=0,
        help="1 basic auth, 2 TLS + basic auth, 3 mutual TLS (client certificate CN = charger id)",
    )
    security.add_argument(
        "--password-env", metavar="VAR", help="variable holding the password ({charger_id} ok)"
    )
    security.add_argument(
        "--password-file", type=Path, metavar="FILE", help="file whose first line is the password"
    )
    security.add_argument(
        "--username", default="{charger_id}", help="expected basic-auth user (template)"
    )
    security.add_argument(
        "--cert-dir",
        type=Path,
        default=None,
        help="profiles 2/3: ca.pem, server.pem and server.key as `fleetsim certs` writes them",
    )
    parser.add_argument(
        "--no-durable",
        action="store_true",
        help="answer transaction messages before they are committed (faster; a crash loses them)",
    )
    parser.add_argument(
        "--chaos",
        default=None,
        metavar="SETTINGS",
        help="misbehave towards chargers: slow_p=P,slow_s=S,error_p=P,close_p=P[,actions=A+B]"
        "[,seed=N]",
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


def _fail(message: str) -> NoReturn:
    print(f"python -m simulator.csms: error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def security_password(args: argparse.Namespace) -> Secret | None:
    """The password of --password-env / --password-file; exits 2 with one line when it cannot
    be read or does not fit the security profile."""
    if args.password_env and args.password_file:
        _fail("give either --password-env or --password-file, not both")
    try:
        password = read_secret(args.password_env, args.password_file)
    except TransportError as exc:
        _fail(str(exc))
    if password is not None and args.security_profile not in (1, 2):
        _fail(f"--security-profile {args.security_profile} takes no password (1 and 2 do)")
    return password


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        loopback_family(args.api_host)
    except ApiBindError as exc:
        print(f"python -m simulator.csms: error: --api-host: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)
    chaos: CsmsChaos | None = None
    if args.chaos is not None:
        try:
            chaos = parse_chaos(args.chaos)
        except ValueError as exc:
            print(f"python -m simulator.csms: error: {exc}", file=sys.stderr, flush=True)
            sys.exit(2)
    password = security_password(args)
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
        durable=not args.no_durable,
        chaos=chaos,
        security_profile=args.security_profile,
        password=password,
        username=args.username,
        cert_dir=args.cert_dir,
    )
    try:
        server_ssl_context(config)  # certificates and password checked before listening
    except SecurityError as exc:
        _fail(str(exc))
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
