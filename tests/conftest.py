"""Shared fixtures: an isolated RAGREEL_HOME per test, one Prefect test server per session,
and a knowledge base ingested from the sample documents under ``data/kb``."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# Models come from installed packages; a hub lookup would hang without a network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Cross-lingual search asks the LLM to translate each question; tests that retrieve without an LLM
# configured would start the 1.1 GB local model for it. Tests of it switch it on (test_retrieve.py).
os.environ.setdefault("RAGREEL_CROSS_LINGUAL", "false")

REPO = Path(__file__).resolve().parent.parent
SAMPLE_KB = REPO / "data" / "kb"


@pytest.fixture
def ragreel_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "ragreel-home"
    monkeypatch.setenv("RAGREEL_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (SQLite) for the whole session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def sample_kb_copy(tmp_path) -> Path:
    """A writable copy of the sample documents."""
    target = tmp_path / "kb"
    shutil.copytree(SAMPLE_KB, target)
    return target


@pytest.fixture(scope="session")
def ingested_home(tmp_path_factory, prefect_harness) -> Path:
    """RAGREEL_HOME holding the sample knowledge base, ingested once per session."""
    from flows.ingest import ingest_knowledge_base

    home = tmp_path_factory.mktemp("ingested") / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGREEL_HOME", str(home))
        report = ingest_knowledge_base([str(SAMPLE_KB)])
    from ragreel.kb.loaders import is_supported

    assert report.count("added") == len([path for path in SAMPLE_KB.rglob("*") if is_supported(path)])
    return home


@pytest.fixture
def use_ingested_home(ingested_home, monkeypatch) -> Path:
    monkeypatch.setenv("RAGREEL_HOME", str(ingested_home))
    return ingested_home


def _stub_reply(body: dict) -> str:
    """Deterministic grounded scripts: the first sentences of the first passage, narrated as they are."""
    from tests.openai_stub_server import grounded_script

    return grounded_script(body)


@pytest.fixture
def stub_llm(monkeypatch):
    """An OpenAI-protocol server on 127.0.0.1 (real HTTP, deterministic replies) configured as the LLM."""
    from tests.openai_stub_server import StubServer

    with StubServer(api_key="sk-test-flow", reply=_stub_reply) as stub:
        monkeypatch.setenv("OPENAI_BASE_URL", stub.url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-flow")
        monkeypatch.setenv("RAGREEL_LLM_MODEL", "stub-model")
        yield stub


def decodes_fully(path: str | Path) -> bool:
    """A full decode with the bundled ffmpeg: the proof that a video file is whole."""
    import subprocess

    import imageio_ffmpeg

    done = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    return done.returncode == 0 and not done.stderr.strip()
