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
    assert report.count("added") == len(list(SAMPLE_KB.rglob("*.*")))
    return home


@pytest.fixture
def use_ingested_home(ingested_home, monkeypatch) -> Path:
    monkeypatch.setenv("RAGREEL_HOME", str(ingested_home))
    return ingested_home
