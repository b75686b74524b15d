"""A temporary Prefect server that dies with the command that started it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server (a uvicorn subprocess) for each
command and stops it at exit, but not when the command is killed (SIGTERM, SIGKILL): the server
then runs on under PID 1. The commands start that server themselves, with the command Prefect uses,
and hand its process id to a small watchdog process that holds a pipe from the command: when the
command ends, however it ends, the pipe closes and the watchdog stops the server. The server runs in a session of its own, so a
Ctrl-C in the terminal stops the command (which then finishes cleanly) and not the server.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

from ragreel.llm.local_server import free_port

log = logging.getLogger(__name__)

# Runs in its own session (so a Ctrl-C to the command's group does not stop it first): reads the
# process ids to watch, one a line, until the pipe closes, then stops them, gently and then for good.
_WATCHDOG = """
import os, signal, sys, time
pids = [int(line) for line in sys.stdin.buffer.read().split()]
for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 0.0)):
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + wait
    while pids and time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                os.kill(pid, 0)
                alive.append(pid)
            except ProcessLookupError:
                pass
        pids = alive
        time.sleep(0.1)
"""


class Watchdog:
    """A process that stops the processes it is told about once this process has exited."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def watch(self, pid: int) -> None:
        self._process.stdin.write(f"{pid}\n".encode())
        self._process.stdin.flush()


# What Prefect's own temporary server runs (prefect.server.api.server.SubprocessASGIServer, pinned
# prefect): the API without its UI, as an ephemeral server. Started here rather than through that
# class because importing its module loads the whole server (2.4 s here) into a command that only
# talks to it.
_SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
}
_PORT_IN_USE = 3  # uvicorn's exit status when the port was taken in the meantime


def _launch(port: int, watchdog: Watchdog) -> subprocess.Popen:
    import prefect
    from prefect.settings import get_current_settings

    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env={
            **os.environ,
            **_SERVER_ENVIRONMENT,
            **get_current_settings().to_environment_variables(exclude_unset=True),
        },
        # In a session of its own, so that Ctrl-C in a terminal (sent to the whole foreground process
        # group) reaches the command, which stops cleanly, and not the server it still needs.
        start_new_session=True,
    )
    watchdog.watch(process.pid)  # watched from the moment it exists: a kill during start-up is covered
    return process


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextlib.contextmanager
def temporary_prefect_server() -> Iterator[str | None]:
    """Point Prefect at a temporary server that cannot outlive this process; yields its API URL.

    With ``PREFECT_API_URL`` set (a real server), nothing is started and None is yielded.
    """
    import httpx
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield None
        return
    log.info("Starting a temporary Prefect server (set PREFECT_API_URL to use a running one)")
    watchdog = Watchdog()
    port = free_port()
    process = _launch(port, watchdog)
    deadline = time.monotonic() + PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS.value()
    with httpx.Client() as client:
        while True:
            status = process.poll()
            if status == _PORT_IN_USE:
                port = free_port()
                process = _launch(port, watchdog)
            elif status is not None:
                raise RuntimeError(f"the temporary Prefect server exited with status {status}")
            try:
                if client.get(f"http://127.0.0.1:{port}/api/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                _stop(process)
                raise RuntimeError(
                    "the temporary Prefect server did not start in time "
                    "(raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS, or set PREFECT_API_URL)"
                )
            time.sleep(0.1)
    # Not stopped when the block ends: Prefect still sends buffered logs and events to it while the
    # interpreter exits. It is stopped at exit, as Prefect stops its own; by the watchdog if killed.
    atexit.register(_stop, process)
    api_url = f"http://127.0.0.1:{port}/api"
    with temporary_settings(updates={PREFECT_API_URL: api_url}):
        yield api_url
