"""Real Prefect servers, workers and throwaway PostgreSQL clusters for the deployment tests.

Everything here starts real processes on 127.0.0.1 and stops them again: a process and every
process it spawned (workers start flow runs in their own sessions, so signalling a process
group would miss them) are terminated, then killed after a timeout. ``leftovers()`` says
what is still alive afterwards, so that a test can prove it left nothing behind.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PREFECT = BIN / "prefect"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, chars: int = 4000) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return text[-chars:]


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    interval: float = 0.5,
    watch: list[ManagedProcess] = (),
) -> None:
    """Poll ``condition`` until it holds; fail early, with its log, if a watched process dies."""
    deadline = time.monotonic() + timeout
    while True:
        for proc in watch:
            if proc.popen.poll() is not None:
                raise AssertionError(
                    f"{proc.name} exited with {proc.popen.returncode} while waiting for "
                    f"{what}; its log ends:\n{log_tail(proc.log_path)}"
                )
        if condition():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop_all(processes: list[psutil.Process], timeout: float) -> None:
    for proc in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _living(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running. A daemon (pg_ctl's postmaster) exits to PID 1, which may leave its
    zombie unreaped: a zombie has exited, so it does not count."""
    living = []
    for proc in processes:
        try:
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                living.append(proc)
        except psutil.NoSuchProcess:
            pass
    return living


@dataclass
class ManagedProcess:
    """A long-running command whose output goes to a log file."""

    name: str
    popen: subprocess.Popen
    log_path: Path
    seen: list[psutil.Process] = field(default_factory=list)

    @classmethod
    def start(
        cls, name: str, args: list[str], env: dict[str, str], log_dir: Path, cwd: Path = REPO
    ) -> ManagedProcess:
        log_path = log_dir / f"{name}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return cls(name, popen, log_path, [psutil.Process(popen.pid)])

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.popen.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (a graceful shutdown), SIGKILL after ``timeout``; then the same for its children."""
        children = self.descendants()
        self.seen.extend(children)
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        # Flow runs (own sessions) and server helpers that outlived their parent.
        stop_all([p for p in children if p.is_running()], timeout=10)

    def leftovers(self) -> list[psutil.Process]:
        return _living(self.seen)


# --- PostgreSQL ---------------------------------------------------------------------------------

POSTGRES_MISSING = (
    "PostgreSQL is not installed: the PostgreSQL-backed round trip needs initdb and pg_ctl "
    "(Debian: `apt-get install -y postgresql`, or run .ci/install-postgres.sh; elsewhere set "
    "RAGREEL_PG_BIN to the folder holding initdb). Set RAGREEL_SKIP_POSTGRES=1 to skip this case."
)


def postgres_bin() -> Path | None:
    """The folder with initdb and pg_ctl (RAGREEL_PG_BIN, Debian's newest, or the PATH), if any."""
    if os.environ.get("RAGREEL_PG_BIN"):
        configured = Path(os.environ["RAGREEL_PG_BIN"])
        return configured if (configured / "initdb").exists() else None
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PostgresCluster:
    """A throwaway cluster in a temporary folder, listening on 127.0.0.1 only, trust auth.

    initdb refuses to run as root, so as root the cluster belongs to the ``postgres`` user.
    Durability is switched off: it is a test database.
    """

    bin_dir: Path
    base: Path
    port: int
    database: str = "prefect"
    postmaster: psutil.Process | None = None

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{self.database}"

    @staticmethod
    def _as_owner() -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str, owner: bool = True, timeout: float = 120) -> None:
        command = (self._as_owner() if owner else []) + list(args)
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
                f"\n{log_tail(self.base / 'postgres.log')}"
            )

    @classmethod
    def start(cls) -> PostgresCluster:
        bin_dir = postgres_bin()
        if bin_dir is None:
            raise RuntimeError(POSTGRES_MISSING)
        base = Path(tempfile.mkdtemp(prefix="ragreel-pg-"))
        cluster = cls(bin_dir, base, free_port())
        if os.geteuid() == 0:
            shutil.chown(base, "postgres", "postgres")
        try:
            cluster._run(
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            )
            options = (
                f"-p {cluster.port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off"
            )
            cluster._run(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(cluster.data_dir),
                "-l",
                str(base / "postgres.log"),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "start",
            )
            pid = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
            cluster.postmaster = psutil.Process(pid)
            cluster._run(
                str(bin_dir / "createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(cluster.port),
                "-U",
                "postgres",
                cluster.database,
                owner=False,
            )
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            try:
                self._run(
                    str(self.bin_dir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                )
            except (RuntimeError, subprocess.TimeoutExpired):
                if self.postmaster is not None:
                    stop_all([self.postmaster, *self.postmaster.children(recursive=True)], timeout=10)
        shutil.rmtree(self.base, ignore_errors=True)

    def leftovers(self) -> list[psutil.Process]:
        return [] if self.postmaster is None else _living([self.postmaster])


# --- Prefect ------------------------------------------------------------------------------------

# Every process a test starts carries this variable (flow runs inherit it from their worker), so
# that whatever outlived the teardown is found by its environment, whoever its parent is now.
TAG_VARIABLE = "RAGREEL_TEST_TAG"


def clean_environment(tag: str) -> dict[str, str]:
    """This process's environment without Prefect, ragreel or OpenAI settings (a test sets its own), tagged."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "RAGREEL_", "OPENAI_"))}
    return env | {TAG_VARIABLE: tag}


def tagged_processes(tag: str) -> list[psutil.Process]:
    """Living processes whose environment carries ``tag``."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and proc.environ().get(TAG_VARIABLE) == tag:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return _living(found)


@dataclass
class PrefectServer:
    process: ManagedProcess
    api_url: str

    @classmethod
    def start(
        cls, home: Path, log_dir: Path, tag: str, database_url: str | None = None, timeout: float = 180
    ) -> PrefectServer:
        port = free_port()
        env = clean_environment(tag) | {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            # The tests never open the UI; not serving it saves copying its build at start-up.
            "PREFECT_SERVER_UI_ENABLED": "false",
            # No scheduled runs: a deployment's cron (ragreel-batch's 06:00) must not start a
            # batch of its own in the middle of a test.
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
        }
        if database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
        process = ManagedProcess.start(
            "server",
            [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env,
            log_dir,
        )
        server = cls(process, f"http://127.0.0.1:{port}/api")
        try:
            wait_until(
                server.healthy, timeout, f"the Prefect server's /api/health on port {port}", watch=[process]
            )
        except BaseException:
            process.stop()
            raise
        return server

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        response = httpx.request(method, f"{self.api_url}{path}", timeout=30, **kwargs)
        response.raise_for_status()
        return response


def start_worker(
    name: str, pool: str, env: dict[str, str], log_dir: Path, limit: int | None = None
) -> ManagedProcess:
    args = [str(PREFECT), "worker", "start", "--pool", pool, "--name", name, "--type", "process"]
    if limit:
        args += ["--limit", str(limit)]
    return ManagedProcess.start(f"worker-{name}", args, env, log_dir)


def pool_workers(server: PrefectServer, pool: str) -> set[str]:
    """Names of the workers that have sent the pool a heartbeat."""
    return {w["name"] for w in server.api("POST", f"/work_pools/{pool}/workers/filter", json={}).json()}
