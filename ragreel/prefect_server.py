"""A temporary Prefect server that dies with the command that started it.

Without ``PREFECT_API_URL``, Prefect starts a temporary server (a uvicorn subprocess) for each
command and stops it at exit, but not when the command is killed (SIGTERM, SIGKILL): the server
then runs on under PID 1. The commands start that server themselves, the same way Prefect does,
and hand its process id to a small watchdog process that holds a pipe from the command: when the
command ends, however it ends, the pipe closes and the watchdog stops the server. The server runs in a session of its own, so a
Ctrl-C in the terminal stops the command (which then finishes cleanly) and not the server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator

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


class _NewSessionSubprocess:
    """The subprocess module, except that Popen starts its process in a new session."""

    def __getattr__(self, name: str):
        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args, **kwargs):  # noqa: N802 - stands in for subprocess.Popen
        return subprocess.Popen(*args, start_new_session=True, **kwargs)


@contextlib.contextmanager
def temporary_prefect_server() -> Iterator[str | None]:
    """Point Prefect at a temporary server that cannot outlive this process; yields its API URL.

    With ``PREFECT_API_URL`` set (a real server), nothing is started and None is yielded.
    """
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL"):
        yield None
        return
    import prefect.server.api.server as server_module
    from prefect.server.api.server import SubprocessASGIServer

    watchdog = Watchdog()
    server = SubprocessASGIServer()
    launch = server._run_uvicorn_command

    def launch_watched():
        # In a session of its own, so that Ctrl-C in a terminal (sent to the whole foreground
        # process group) reaches the command, which stops cleanly, and not the server it still needs.
        server_module.subprocess = _NewSessionSubprocess()
        try:
            process = launch()
        finally:
            server_module.subprocess = subprocess
        # Watched from the moment it exists: a kill during the server's start-up is covered too.
        watchdog.watch(process.pid)
        return process

    server._run_uvicorn_command = launch_watched
    server.start()  # Prefect's own start-up, health wait, and stop at exit
    # The server is not stopped when the block ends: Prefect still sends buffered logs and events
    # to it while the interpreter exits. Prefect stops it then; the watchdog, if the process is killed.
    with temporary_settings(updates={PREFECT_API_URL: server.api_url}):
        yield server.api_url
