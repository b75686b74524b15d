"""Killed commands leave nothing running: the temporary Prefect server dies with its command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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


QUESTIONS = [
    "What water temperature should I use for oolong tea?",
    "How long should oolong leaves steep?",
    "Who decides whether there is a typhoon day off?",
    "How do garbage trucks in Taipei let people know they are coming?",
    "What is high-mountain oolong?",
    "How do I pay for the MRT in Taipei?",
]


def _slow_reply(body: dict) -> str:
    from tests.openai_stub_server import grounded_script

    time.sleep(1.5)  # a row takes a while, so there are queued and running rows to interrupt
    return grounded_script(body, sentences=2)


def _command_env(home: Path, tmp_path: Path, stub, **extra: str) -> dict[str, str]:
    """The environment of a ragreel command run by a test: its home, results and LLM stub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(
        RAGREEL_HOME=str(home),
        RAGREEL_RESULTS_STORAGE=str(tmp_path / "results"),
        OPENAI_BASE_URL=stub.url,
        OPENAI_API_KEY=stub.api_key,
        RAGREEL_LLM_MODEL="stub-model",
        **extra,
    )
    return env


@pytest.fixture
def batch_command(ingested_home, tmp_path):
    """``python -m flows.batch`` over a six-row sheet, in a process of its own, with a slow LLM stub."""
    from tests.openai_stub_server import StubServer

    sheet = tmp_path / f"six-{tmp_path.name}.csv"
    # A column naming the test makes each test's sheet, and so its batch folder, its own.
    rows = "".join(f"q{i},{q},{tmp_path.name}\n" for i, q in enumerate(QUESTIONS))
    sheet.write_text("id,question,test\n" + rows, encoding="utf-8")
    with StubServer(api_key="sk-crash", reply=_slow_reply) as stub:
        env = _command_env(
            ingested_home, tmp_path, stub, RAGREEL_VOICE_EN="espeak", PREFECT_LOGGING_LEVEL="WARNING"
        )

        def start(*options: str) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "flows.batch", str(sheet), "--concurrency", "1", "--json", *options],
                cwd=REPO,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its own process group, as a command typed in a terminal
                # A shell runs background jobs with Ctrl-C ignored, and children inherit that: give the
                # command the default a terminal gives it, whoever started the tests.
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

        yield start, ingested_home / "batches" / sheet.stem


def _manifest(batch: Path) -> list[dict]:
    found = list(batch.parent.glob(f"{batch.name}-*/manifest.json"))
    return json.loads(found[0].read_text(encoding="utf-8")) if found else []


def _wait_for_rows(batches: Path, status: str, count: int, process: subprocess.Popen, limit_s: float = 240):
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline and process.poll() is None:
        if sum(entry["status"] == status for entry in _manifest(batches)) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"fewer than {count} rows {status}: {_manifest(batches)}")


def test_ctrl_c_stops_a_batch_promptly_and_keeps_the_finished_rows(batch_command):
    start, batches = batch_command
    process = start("--no-video")
    _wait_for_rows(batches, "succeeded", 1, process)
    os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole group, the command's children too
    out, err = process.communicate(timeout=60)  # queued rows are cancelled, the running one finishes
    assert process.returncode == 130, err
    summary = json.loads(out)
    assert summary["interrupted"] and summary["succeeded"] >= 1 and summary["cancelled"] >= 1
    statuses = [entry["status"] for entry in _manifest(batches)]
    assert set(statuses) <= {"succeeded", "cancelled"} and "pending" not in statuses

    # The rerun finishes what was cancelled and serves the finished rows from cache.
    rerun = start("--no-video")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    entries = _manifest(batches)
    assert [e["status"] for e in entries] == ["succeeded"] * len(QUESTIONS)
    assert sum("generate" in e["from_cache"] for e in entries) >= summary["succeeded"]


def test_a_killed_batch_resumes_with_every_video_whole(batch_command):
    from tests.conftest import decodes_fully

    start, batches = batch_command
    process = start()
    _wait_for_rows(batches, "succeeded", 1, process)
    process.kill()
    process.wait(timeout=30)
    finished = [e["id"] for e in _manifest(batches) if e["status"] == "succeeded"]

    rerun = start()
    out, err = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, err
    entries = _manifest(batches)
    assert [e["status"] for e in entries] == ["succeeded"] * len(QUESTIONS)
    for entry in entries:
        assert decodes_fully(entry["video"]), entry["video"]
        folder = Path(entry["video"]).parent
        assert not list(folder.glob(".*.part*")), list(folder.iterdir())  # nothing half-written left
        assert len(list(folder.glob("*.mp4"))) == 1  # and nothing twice
        if entry["id"] in finished:
            assert entry["from_cache"] == "retrieve, generate, speak, render"


def test_two_batches_over_one_sheet_at_once_both_finish_whole(batch_command):
    from tests.conftest import decodes_fully

    start, batches = batch_command
    first, second = start(), start()
    for process in (first, second):
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err
        assert json.loads(out)["succeeded"] == len(QUESTIONS)
    entries = _manifest(batches)  # the last writer's manifest, whole
    assert [e["status"] for e in entries] == ["succeeded"] * len(QUESTIONS)
    for entry in entries:
        assert decodes_fully(entry["video"]), entry["video"]
        folder = Path(entry["video"]).parent
        assert len(list(folder.glob("*.mp4"))) == 1 and not list(folder.glob(".*.part*"))
        assert json.loads((folder / "result.json").read_text(encoding="utf-8"))["mp4_path"] == entry["video"]


def _generate(env: dict, out: Path, *options: str, preexec_fn=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "flows.generate", QUESTIONS[0], "--output-dir", str(out), *options],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=preexec_fn,
    )


@pytest.fixture
def stub_env(ingested_home, tmp_path):
    """The environment of a generate command on the session's Prefect server and an LLM stub."""
    from prefect.settings import PREFECT_API_URL

    from tests.openai_stub_server import StubServer

    with StubServer(api_key="sk-disk") as stub:
        # The session's server: its database is not ours to limit or make read-only.
        yield _command_env(ingested_home, tmp_path, stub, PREFECT_API_URL=PREFECT_API_URL.value())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_full_disk_fails_with_a_clear_error_and_keeps_earlier_outputs(stub_env, tmp_path):
    """RLIMIT_FSIZE makes writes past a size fail with EFBIG, as a full disk fails them with ENOSPC."""
    import resource

    from tests.conftest import decodes_fully

    out = tmp_path / "video"
    first = _generate(stub_env, out, "--voice", "espeak")
    assert first.returncode == 0, first.stderr
    before = _files(out)

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))

    # Another voice means new narration: a WAV far over the limit.
    full = _generate(stub_env, out, "--voice", "piper", preexec_fn=limit_file_size)
    assert full.returncode == 1, full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: [speak] cannot write in {out}: File too large"), last
    assert "free some space" in last
    assert _files(out) == before  # nothing half-written, nothing earlier lost
    assert decodes_fully(out / "video.mp4")


@pytest.fixture
def freezable_folder(tmp_path):
    """A folder and a function that makes it read-only: a remounted tmpfs as root (who may write
    anywhere else), permissions otherwise."""
    folder = tmp_path / "frozen"
    folder.mkdir()
    if os.geteuid() != 0:
        yield folder, lambda: folder.chmod(0o555)
        folder.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "ragreel-test", str(folder)]).returncode:
        pytest.skip("cannot mount a tmpfs to make read-only")
    try:
        yield folder, lambda: subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    finally:
        subprocess.run(["umount", str(folder)], check=False)


def test_a_read_only_output_folder_fails_with_a_clear_error_and_keeps_earlier_outputs(
    stub_env, freezable_folder
):
    from tests.conftest import decodes_fully

    out, freeze = freezable_folder
    first = _generate(stub_env, out, "--voice", "espeak")
    assert first.returncode == 0, first.stderr
    before = _files(out)

    freeze()
    again = _generate(stub_env, out, "--voice", "piper")
    assert again.returncode == 1, again.stderr
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: [speak] cannot write in {out}: "), last
    assert ("Read-only file system" in last or "Permission denied" in last) and "writable disk" in last
    assert _files(out) == before
    assert decodes_fully(out / "video.mp4")


def test_ingest_into_a_read_only_knowledge_base_says_so_and_changes_nothing(
    ingested_home, sample_kb_copy, freezable_folder
):
    import shutil

    home, freeze = freezable_folder
    shutil.copytree(ingested_home / "kb", home / "kb")
    (sample_kb_copy / "new-notes.md").write_text("# Notes\n\nOolong is rolled.\n", encoding="utf-8")

    def tree() -> dict[str, bytes]:
        return {str(p.relative_to(home)): p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file()}

    before = tree()
    freeze()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env.update(RAGREEL_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING")
    done = subprocess.run(
        [sys.executable, "-m", "flows.ingest", str(sample_kb_copy)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"error: [ingest] cannot write the knowledge base at {home / 'kb'}: {home / 'kb'} is not writable "
        "(set RAGREEL_HOME to a folder you can write to)"
    ), last
    assert tree() == before
