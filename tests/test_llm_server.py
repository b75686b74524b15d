"""The built-in local model: assembling the GGUF, and the llama.cpp server's lifecycle."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
import pytest

from ragreel.errors import DependencyMissing, InputError, PermanentError
from ragreel.llm import local_server
from ragreel.llm.local_server import PackagedModel, assemble_packaged_model
from ragreel.schemas import Passage
from ragreel.settings import get_settings
from tasks.answer import answer_question

LLM_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "RAGREEL_OPENAI_API_KEY",
    "RAGREEL_OPENAI_BASE_URL",
    "RAGREEL_LLM_MODEL",
    "RAGREEL_LLM_LOCAL_MODEL",
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for name in LLM_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


# --- assembling the packaged model (small fake parts) -----------------------------------------------------


@pytest.fixture
def fake_parts(tmp_path, monkeypatch):
    contents = [os.urandom(3000), os.urandom(5000), b"tail"]
    paths = []
    for index, content in enumerate(contents, start=1):
        path = tmp_path / "site" / f"part{index:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
    joined = b"".join(contents)
    model = PackagedModel(
        filename="fake.gguf",
        alias="fake",
        size=len(joined),
        sha256=hashlib.sha256(joined).hexdigest(),
        distributions=("fake-part1", "fake-part3"),
    )
    monkeypatch.setattr(local_server, "packaged_parts", lambda _model: list(paths))
    return model, joined


def test_parts_are_joined_in_order_verified_and_not_redone(fake_parts, tmp_path, monkeypatch):
    model, joined = fake_parts
    cache = tmp_path / "cache"
    path = assemble_packaged_model(cache, model)
    assert path == cache / "fake.gguf" and path.read_bytes() == joined
    assert sorted(p.name for p in cache.iterdir()) == ["fake.gguf", "fake.gguf.verified"]  # no temp file left

    # A later process trusts the marker: neither re-joining nor re-hashing.
    monkeypatch.setattr(local_server, "packaged_parts", lambda _model: pytest.fail("re-assembled"))
    monkeypatch.setattr(local_server, "_sha256_of", lambda _path: pytest.fail("re-hashed"))
    assert assemble_packaged_model(cache, model) == path


def test_a_present_unverified_file_is_hashed_once(fake_parts, tmp_path, monkeypatch):
    model, joined = fake_parts
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "fake.gguf").write_bytes(joined)  # e.g. copied in by hand
    monkeypatch.setattr(local_server, "packaged_parts", lambda _model: pytest.fail("re-assembled"))
    assert assemble_packaged_model(cache, model).read_bytes() == joined
    assert (cache / "fake.gguf.verified").is_file()


def test_a_changed_file_is_assembled_again(fake_parts, tmp_path):
    model, joined = fake_parts
    cache = tmp_path / "cache"
    path = assemble_packaged_model(cache, model)
    path.write_bytes(b"x" * len(joined))  # same size, other bytes, new mtime: the marker no longer applies
    assert assemble_packaged_model(cache, model).read_bytes() == joined


def test_wrong_checksum_fails_and_leaves_nothing(fake_parts, tmp_path):
    model, _ = fake_parts
    bad = PackagedModel(model.filename, model.alias, model.size, "0" * 64, model.distributions)
    cache = tmp_path / "cache"
    with pytest.raises(DependencyMissing, match="sha256") as caught:
        assemble_packaged_model(cache, bad)
    assert "--force-reinstall" in caught.value.hint
    assert list(cache.iterdir()) == []


def test_missing_part_package_says_what_to_install(tmp_path):
    model = PackagedModel("x.gguf", "x", 1, "0" * 64, ("ragreel-no-such-part1", "ragreel-no-such-part2"))
    with pytest.raises(DependencyMissing, match="ragreel-no-such-part1 is not installed") as caught:
        assemble_packaged_model(tmp_path, model)
    assert "RAGREEL_LLM_LOCAL_MODEL" in caught.value.hint


def test_packaged_parts_are_found_in_order():
    parts = local_server.packaged_parts()
    assert [p.name for p in parts] == [f"part{i:02d}.bin" for i in range(1, 23)]
    assert sum(p.stat().st_size for p in parts) == local_server.QWEN_1_5B.size


def test_local_model_setting_must_be_a_file(clean_env, tmp_path):
    with pytest.raises(InputError, match="not a file"):
        local_server.local_model(get_settings(llm_local_model=tmp_path / "missing.gguf"))
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert local_server.local_model(get_settings(llm_local_model=gguf)) == (gguf, "mine")


# --- the server process (real llama.cpp) ----------------------------------------------------------------------


def gone(pid: int, within_s: float = 15.0) -> bool:
    """True once ``pid`` has exited (a zombie no one reaped counts as exited)."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def local_settings(clean_env):
    yield get_settings(answer_min_seconds=5, answer_max_seconds=15)
    local_server.stop_local_server()


PASSAGE = Passage(
    chunk_id="b#0",
    source="brewing.md",
    title="Brewing oolong",
    text=(
        "Oolong tea is best brewed with water between 90 and 95 degrees Celsius, steeped for about one minute."
    ),
    language="en",
    score=0.9,
    rank=1,
)


@pytest.mark.slow
def test_server_is_started_once_reused_and_stopped(local_settings):
    first = answer_question("How hot should the water be for oolong?", [PASSAGE], settings=local_settings)
    server = local_server.running_local_server()
    assert server is not None and first.server == server.base_url
    second = answer_question("How long should oolong steep?", [PASSAGE], settings=local_settings)
    assert second.server == first.server
    assert local_server.ensure_local_server(local_settings) is server  # same process, same port
    assert psutil.Process(server.pid).is_running()
    command = " ".join(psutil.Process(server.pid).cmdline())
    assert str(server.model_path) in command
    # As many threads as this process may use, for generation and for reading the prompt alike.
    cores = len(os.sched_getaffinity(0))
    assert f"--n_threads {cores} " in command and f"--n_threads_batch {cores}" in command

    local_server.stop_local_server()
    assert gone(server.pid)
    assert local_server.running_local_server() is None


@pytest.mark.slow
def test_a_dead_server_is_started_again(local_settings):
    server = local_server.ensure_local_server(local_settings)
    os.kill(server.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while local_server.running_local_server() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local_server.running_local_server() is None

    # Started again, once, by whichever of several worker threads asks first; it outlives them
    # (as it must when a Prefect task thread starts it).
    with ThreadPoolExecutor(max_workers=3) as pool:
        servers = list(pool.map(lambda _: local_server.ensure_local_server(local_settings), range(3)))
    assert len({s.pid for s in servers}) == 1
    again = servers[0]
    assert again.pid != server.pid
    time.sleep(0.5)
    assert psutil.Process(again.pid).is_running() and local_server.running_local_server() == again


def test_missing_server_package_says_what_to_install(clean_env, monkeypatch, tmp_path):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llama_cpp" else real_find_spec(name, *a),
    )
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(DependencyMissing, match="llama_cpp") as caught:
        local_server.ensure_local_server(get_settings(llm_local_model=gguf, model_cache=tmp_path))
    assert "llama-cpp-python[server]" in caught.value.hint and "OPENAI_BASE_URL" in caught.value.hint


@pytest.mark.slow
def test_a_model_that_cannot_load_fails_with_the_server_log(clean_env, tmp_path):
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + os.urandom(4096))
    with pytest.raises(PermanentError, match="exited with code") as caught:
        local_server.ensure_local_server(get_settings(llm_local_model=broken, model_cache=tmp_path))
    assert "log" in str(caught.value) and str(broken) in str(caught.value)
    assert local_server.running_local_server() is None


CHILD = textwrap.dedent("""
    import sys, time
    from ragreel.llm.local_server import ensure_local_server
    server = ensure_local_server()
    print(server.pid, flush=True)
    if sys.argv[1] == "raise":
        raise RuntimeError("the flow failed")
    if sys.argv[1] == "hang":
        time.sleep(600)
""")


@pytest.mark.slow
@pytest.mark.parametrize("ending", ["exit", "raise", "sigterm", "sigkill"])
def test_server_dies_with_the_process_that_started_it(clean_env, ending):
    mode = "hang" if ending.startswith("sig") else ending
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if k not in LLM_ENV},
    )
    try:
        line = child.stdout.readline()
        assert line.strip().isdigit(), child.stderr.read() if child.poll() is not None else line
        server_pid = int(line)
        assert psutil.Process(server_pid).is_running()
        if ending == "sigterm":
            child.send_signal(signal.SIGTERM)
        elif ending == "sigkill":
            child.kill()
        child.wait(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert (child.returncode != 0) == (ending != "exit")
    assert gone(server_pid), f"the server (pid {server_pid}) outlived its parent ({ending})"


@pytest.mark.slow
def test_a_server_killed_mid_answer_is_started_again_and_the_stage_answers(
    clean_env, monkeypatch, prefect_harness, caplog
):
    """The built-in server dying while it answers (the OOM killer, say): the stage's retry starts a new one."""
    import logging
    import threading

    from tasks.answer import generate_stage

    monkeypatch.setenv("RAGREEL_ANSWER_MAX_SECONDS", "15")
    killed: list[int] = []

    def kill_once_answering() -> None:
        deadline = time.monotonic() + 300
        while local_server.running_local_server() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # the first request is in the server's hands by now
        server = local_server.running_local_server()
        if server is not None:
            killed.append(server.pid)
            os.kill(server.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_answering, daemon=True)
    killer.start()
    try:
        with caplog.at_level(logging.INFO):
            # Never from Prefect's cache (an earlier run may have stored this answer): the server must answer.
            fresh = generate_stage.task.with_options(refresh_cache=True)
            answer = fresh("How hot should the water be for oolong?", [PASSAGE], "en")
        killer.join(timeout=5)
        assert killed, "the server was never seen running"
        server = local_server.running_local_server()
        assert server is not None and server.pid != killed[0]
        assert answer.server == server.base_url and answer.scenes
        assert re.search(r"9[05]", answer.text), answer.text
        assert any("retrying starts a new local server" in r.getMessage() for r in caplog.records)
    finally:
        local_server.stop_local_server()
