"""Ingestion through the real flow: idempotent, incremental, and tolerant of bad files."""

import json
import subprocess
import sys

import pytest

from flows.ingest import ingest_knowledge_base, main
from ragreel.kb.store import KnowledgeBase
from ragreel.settings import get_settings
from tasks.retrieve import retrieve_passages

pytestmark = pytest.mark.usefixtures("prefect_harness")


def test_ingest_is_idempotent_incremental_and_skips_bad_files(ragreel_home, sample_kb_copy):
    (sample_kb_copy / "broken.pdf").write_bytes(b"%PDF-1.4 not a pdf at all")
    (sample_kb_copy / "binary.txt").write_bytes(bytes(range(256)) * 4)
    (sample_kb_copy / ".hidden").mkdir()
    (sample_kb_copy / ".hidden" / "secret.md").write_text("# not ingested")

    first = ingest_knowledge_base([str(sample_kb_copy)])
    assert first.count("added") == 7
    assert {f.source: f.reason for f in first.files if f.status == "skipped"}.keys() == {
        "broken.pdf",
        "binary.txt",
    }
    assert "binary" in next(f.reason for f in first.files if f.source == "binary.txt")
    assert first.embedded == first.chunks > 0
    assert first.documents == 7

    # Nothing changed: no embedding work at all, same version.
    second = ingest_knowledge_base([str(sample_kb_copy)])
    assert second.embedded == 0
    assert second.count("unchanged") == 7 and second.count("added") == second.count("updated") == 0
    assert second.version == first.version

    # A changed file replaces its chunks; a removed file loses them.
    guide = sample_kb_copy / "tea" / "brewing-guide.md"
    guide.write_text(
        "# Brewing Oolong Tea at Home\n\nAlways use water from the Zhuoshui river, cooled to 80 degrees.\n"
    )
    (sample_kb_copy / "typhoons.md").unlink()
    third = ingest_knowledge_base([str(sample_kb_copy)])
    statuses = {f.source: f.status for f in third.files}
    assert statuses["tea/brewing-guide.md"] == "updated" and statuses["typhoons.md"] == "removed"
    assert third.embedded == next(f.chunks for f in third.files if f.source == "tea/brewing-guide.md")
    assert third.version != second.version and third.documents == 6

    kb = KnowledgeBase(get_settings())
    texts = [row["text"] for row in kb.table().search().select(["text", "source"]).limit(1000).to_list()]
    assert not any("Lightly oxidised oolongs" in t for t in texts)  # old chunks gone
    assert any("Zhuoshui" in t for t in texts)
    passages = retrieve_passages("typhoon day off", top_k=5)
    assert all(p.source != "typhoons.md" for p in passages)


def test_single_file_ingest_does_not_remove_its_neighbours(ragreel_home, sample_kb_copy):
    ingest_knowledge_base([str(sample_kb_copy)])
    report = ingest_knowledge_base([str(sample_kb_copy / "typhoons.md")])
    assert [f.status for f in report.files] == ["unchanged"]
    assert report.documents == 7


def test_status_and_missing_paths(ragreel_home, sample_kb_copy, capsys):
    assert main(["does/not/exist"]) == 2
    assert "not found: does/not/exist" in capsys.readouterr().err
    assert main([str(sample_kb_copy), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["documents"] == 7
    assert main(["--status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["documents"] == 7 and status["version"] == report["version"]


def test_a_knowledge_base_built_with_another_model_is_refused_until_rebuilt(
    ragreel_home, sample_kb_copy, monkeypatch, capsys
):
    from ragreel.errors import KnowledgeBaseError

    monkeypatch.setenv("RAGREEL_EMBEDDING_MODEL", "all-MiniLM-L6-v2")
    assert main([str(sample_kb_copy / "typhoons.md")]) == 0
    capsys.readouterr()
    meta = json.loads((ragreel_home / "kb" / "kb.json").read_text())
    assert (meta["embedding_model"], meta["dimension"]) == ("all-MiniLM-L6-v2", 384)

    monkeypatch.setenv("RAGREEL_EMBEDDING_MODEL", "multilingual-e5-small")
    # Ingesting more with the other model would mix vectors of two models: refused, with the fix.
    assert main([str(sample_kb_copy)]) == 2
    error = capsys.readouterr().err
    assert "all-MiniLM-L6-v2" in error and "multilingual-e5-small" in error and "--rebuild" in error
    with pytest.raises(KnowledgeBaseError, match="--rebuild"):
        retrieve_passages("typhoon day off")
    assert KnowledgeBase(get_settings()).stored_meta()["embedding_model"] == "all-MiniLM-L6-v2"  # untouched

    assert main([str(sample_kb_copy / "typhoons.md"), "--rebuild"]) == 0
    assert (
        json.loads((ragreel_home / "kb" / "kb.json").read_text())["embedding_model"]
        == "multilingual-e5-small"
    )
    assert retrieve_passages("typhoon day off", top_k=1)[0].source == "typhoons.md"


def test_a_file_name_with_braces_is_ingested_like_any_other(ragreel_home, sample_kb_copy):
    (sample_kb_copy / "b {name} {}.md").write_text("# Braces\n\nCurly braces in a file name are just text.\n")
    (sample_kb_copy / "zz-after.md").write_text("# After\n\nThe file after it is ingested too.\n")
    report = ingest_knowledge_base([str(sample_kb_copy)])
    statuses = {f.source: f.status for f in report.files}
    assert statuses["b {name} {}.md"] == "added" and statuses["zz-after.md"] == "added"


def test_a_file_over_the_size_limit_is_skipped_with_the_reason(ragreel_home, sample_kb_copy, monkeypatch):
    monkeypatch.setenv("RAGREEL_MAX_DOCUMENT_MB", "0.002")
    (sample_kb_copy / "big.txt").write_text("Tea. " * 600)  # 3 kB; typhoons.md is about 1 kB
    report = ingest_knowledge_base([str(sample_kb_copy / "big.txt"), str(sample_kb_copy / "typhoons.md")])
    statuses = {f.source: f for f in report.files}
    assert statuses["big.txt"].status == "skipped" and "RAGREEL_MAX_DOCUMENT_MB" in statuses["big.txt"].reason
    assert statuses["typhoons.md"].status == "added" and report.documents == 1


def test_the_version_caches_key_on_is_recorded_by_ingest_and_forgotten_by_any_write(
    ragreel_home, sample_kb_copy
):
    report = ingest_knowledge_base([str(sample_kb_copy)])
    kb = KnowledgeBase(get_settings())
    recorded = kb.stored_meta()["contents"]
    assert recorded == kb._contents_hash() and kb.version() == report.version

    # A write that no ingest finished (as when one is killed): the record goes, the version is
    # read from the table instead, and it is the new one.
    kb.remove_documents(str(sample_kb_copy.resolve()), ["typhoons.md"])
    assert "contents" not in kb.stored_meta()
    assert kb.version() != report.version
    # The next ingest puts the document back and records what the table holds again.
    again = ingest_knowledge_base([str(sample_kb_copy)])
    assert again.version == report.version and kb.stored_meta()["contents"] == recorded


def test_a_cached_rerun_checks_and_keys_the_knowledge_base_without_loading_lancedb(use_ingested_home):
    # LanceDB's import alone costs about 1.8 s here: a rerun served from cache should not pay it.
    probe = (
        "import sys\n"
        "from ragreel.kb.store import KnowledgeBase\n"
        "from ragreel.settings import get_settings\n"
        "from tasks.retrieve import retrieve_cache_key\n"
        "KnowledgeBase(get_settings()).check()\n"
        "print(retrieve_cache_key(get_settings(), {}))\n"
        "assert 'lancedb' not in sys.modules, 'lancedb was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert KnowledgeBase(get_settings()).version() in done.stdout
