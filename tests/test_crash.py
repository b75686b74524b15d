"""Killed commands leave nothing running: the temporary Prefect server dies with its command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from tests.conftest import REPO, SAMPLE_KB

pytestmark = pytest.mark.slow


def _temporary_servers(parent: psutil.Process) -> list[psutil.Process]:
    found = []
    for child in parent.children(recursive=True):
        try:
            if "prefect.server.api.server:create_app" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_temporary_prefect_server_dies_with_a_killed_command(tmp_path, kill):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(RAGREEL_HOME=str(tmp_path / "home"), PREFECT_LOGGING_LEVEL="WARNING")
    command = subprocess.Popen(
        [sys.executable, "-m", "flows.ingest", str(SAMPLE_KB)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        parent = psutil.Process(command.pid)
        deadline = time.monotonic() + 120
        servers: list[psutil.Process] = []
        while not servers and time.monotonic() < deadline and command.poll() is None:
            servers = _temporary_servers(parent)
            time.sleep(0.2)
        assert servers, "the command never started a temporary Prefect server"
        os.kill(command.pid, kill)
        command.wait(timeout=30)
        gone, alive = psutil.wait_procs(servers, timeout=20)
        assert not alive, f"still running after the command was killed: {[p.pid for p in alive]}"
    finally:
        if command.poll() is None:
            command.kill()
