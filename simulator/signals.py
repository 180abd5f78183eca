"""Clean shutdown on SIGINT and SIGTERM for the processes fleetsim runs (a run, the CSMS).

Installs asyncio signal handlers for the length of a block; it decides nothing about what
stopping means (the caller's callback does).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager


@contextmanager
def stop_on_signals(
    loop: asyncio.AbstractEventLoop, callback: Callable[[], object]
) -> Iterator[None]:
    """Call `callback` on SIGINT or SIGTERM while the block runs.

    Only the main thread of a POSIX process can take signal handlers; elsewhere (Windows, a
    loop in another thread, as in some notebooks) the block runs without them."""
    usable = sys.platform != "win32" and threading.current_thread() is threading.main_thread()
    installed = (signal.SIGINT, signal.SIGTERM) if usable else ()
    for sig in installed:
        loop.add_signal_handler(sig, callback)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
