"""`billing serve`: one API process, or N sharing one listening socket (`--workers N`, uvicorn's supervisor).

Graceful shutdown: on SIGTERM (or Ctrl-C) each API process stops accepting connections, lets the requests in
flight finish (up to `--graceful-timeout` seconds), then closes its pools. From the signal on, /ready answers 503
"draining" on connections still open, so a load balancer probing it takes the process out of rotation.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from billing.api.app import create_app_from_env
from billing.api.health import start_draining
from billing.api.middleware import ASGIApp
from billing.config import load_settings

# The import string of the application factory each worker process calls (settings from its environment).
APP_FACTORY = "billing.runtime.serving:app_from_environment"


def app_from_environment() -> ASGIApp:
    """The API of one worker process of `billing serve --workers N`, configured from the environment it was
    started with (the parent's, with BILLING_PUBLIC_URL set to the address bound)."""
    return create_app_from_env(load_settings(), on_startup=drain_on_stop_signals)


def drain_on_stop_signals() -> None:
    """Make SIGTERM and SIGINT also mark this process draining (/ready 503), then do what the server's own
    handlers do (stop accepting, finish the requests in flight). Installed once the server has put in its
    handlers: called from the application's startup, in the server's main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(stop_signal)
        if not callable(previous):
            continue
        signal.signal(stop_signal, _draining_then(previous))


def _draining_then(previous: Any) -> Any:
    def handler(signum: int, frame: FrameType | None) -> None:
        start_draining()
        previous(signum, frame)

    return handler
