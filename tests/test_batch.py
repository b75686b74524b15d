"""Batches from spreadsheets through the real flows: bad rows, a failing row, the manifest, reruns."""

import json
from pathlib import Path

import pandas as pd
import pytest

from flows.batch import BatchSummary, batch_videos, main
from tests.conftest import decodes_fully

QUESTION_EN = "What water temperature should I use for oolong tea?"

pytestmark = [pytest.mark.usefixtures("prefect_harness", "use_ingested_home"), pytest.mark.slow]

CSV = """id,question,language,voice,owner
tea-water,What water temperature should I use for oolong tea?,en,,Lin
../escape,高山烏龍茶要種在多高的地方？,zh,espeak,Chen
blank,   ,en,,Wu
tea-water,Duplicate id?,en,,Wu
needs-bark,Who decides whether there is a typhoon day off?,en,bark,Lee
=cmd,How do garbage trucks in Taipei let people know they are coming?,en,espeak,Ho
"""


@pytest.fixture(autouse=True)
def own_result_cache(tmp_path, monkeypatch):
    """Each test starts with an empty stage cache (the knowledge base is shared by the session)."""
    monkeypatch.setenv("RAGREEL_RESULTS_STORAGE", str(tmp_path / "results"))


def run_batch(path: Path, **options):
    state = batch_videos(str(path), return_state=True, **options)
    summary = state.result(raise_on_failure=False)
    assert isinstance(summary, BatchSummary), summary
    return state, summary


@pytest.fixture
def batch_run(stub_llm, tmp_path, monkeypatch):
    monkeypatch.delenv("RAGREEL_BARK_MODEL", raising=False)  # the 'bark' row must fail in speak
    sheet = tmp_path / "questions.csv"
    sheet.write_text(CSV, encoding="utf-8")
    state, summary = run_batch(sheet, concurrency=2)
    return sheet, state, summary


def test_a_failing_row_never_sinks_the_batch(batch_run):
    sheet, state, summary = batch_run
    assert state.is_failed() and "3 succeeded, 1 failed, 2 skipped" in state.message
    assert (summary.succeeded, summary.failed, summary.skipped) == (3, 1, 2)
    assert any("row 4, column question" in p for p in summary.problems)
    assert any("row 5, column id" in p and "already used on row 2" in p for p in summary.problems)

    manifest = pd.read_csv(summary.manifest_csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    by_row = {int(r["row"]): r for r in manifest.to_dict("records")}
    assert [by_row[n]["status"] for n in sorted(by_row)] == [
        "succeeded",
        "succeeded",
        "skipped",
        "skipped",
        "failed",
        "succeeded",
    ]
    failed = by_row[6]
    assert failed["failed_stage"] == "speak" and "Bark" in failed["error"]
    assert by_row[7]["id"] == "'=cmd"  # written as text, never run as a formula
    assert by_row[2]["owner"] == "Lin"  # other columns are carried along
    assert "Brewing Oolong Tea at Home" in by_row[2]["sources"]

    folder = Path(summary.folder).resolve()
    for number in (2, 3, 7):
        video = Path(by_row[number]["video"]).resolve()
        assert folder in video.parents and decodes_fully(video)
    assert Path(by_row[3]["video"]).parent.name == "_escape"  # '../escape' stays inside the batch folder
    entries = json.loads(Path(summary.manifest_json).read_text(encoding="utf-8"))
    assert [e["status"] for e in entries] == list(manifest["status"])


def test_a_rerun_redoes_only_what_was_not_finished(batch_run, stub_llm):
    sheet, _, first = batch_run
    asked = len(stub_llm.chat_requests())
    state, summary = run_batch(sheet)
    assert summary.folder == first.folder
    manifest = pd.read_csv(summary.manifest_csv, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    done = manifest[manifest["status"] == "succeeded"]
    assert len(done) == 3 and set(done["from_cache"]) == {"retrieve, generate, speak, render"}
    assert len(stub_llm.chat_requests()) == asked  # no row asked the LLM again


def test_xlsx_review_manifest_without_video(stub_llm, tmp_path, capsys):
    sheet = tmp_path / "review.xlsx"
    pd.DataFrame(
        {
            "question": ["What water temperature should I use for oolong tea?", "珍珠奶茶起源於哪裡？"],
            "id": ["en-1", "zh-1"],
        }
    ).to_excel(sheet, index=False)
    assert main([str(sheet), "--no-video", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["succeeded"], summary["failed"], summary["skipped"]) == (2, 0, 0)
    manifest = json.loads(Path(summary["manifest_json"]).read_text(encoding="utf-8"))
    assert all(entry["answer"] and not entry["video"] for entry in manifest)
    assert not list(Path(summary["folder"]).rglob("*.mp4"))


def test_a_reviewed_manifest_fed_back_renders_the_reviewed_scripts(stub_llm, tmp_path, capsys):
    sheet = tmp_path / "questions.csv"
    pd.DataFrame(
        {
            "id": ["en-1", "zh-1"],
            "question": [QUESTION_EN, "高山烏龍茶要種在多高的地方？"],
            "owner": ["ann", "bo"],
        }
    ).to_csv(sheet, index=False)
    assert main([str(sheet), "--no-video", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    asked = len(stub_llm.chat_requests())
    reviewed = pd.read_csv(summary["manifest_csv"], encoding="utf-8-sig", dtype=str, keep_default_na=False)
    assert set(reviewed.columns) >= {"script", "checks", "answer", "owner"}
    script = json.loads(reviewed.loc[0, "script"])
    script["scenes"][0]["narration"] = "Reviewed. " + script["scenes"][0]["narration"]
    reviewed.loc[0, "script"] = json.dumps(script, ensure_ascii=False)
    reviewed.to_csv(tmp_path / "reviewed.csv", index=False, encoding="utf-8-sig")

    assert main([str(tmp_path / "reviewed.csv"), "--no-video", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["succeeded"], again["failed"]) == (2, 0)
    assert len(stub_llm.chat_requests()) == asked  # what was reviewed is rendered; nothing re-asked
    entries = {e["id"]: e for e in json.loads(Path(again["manifest_json"]).read_text(encoding="utf-8"))}
    assert entries["en-1"]["answer"].startswith("Reviewed. ")
    assert entries["zh-1"]["answer"] == reviewed.loc[1, "answer"]
    assert entries["en-1"]["owner"] == "ann" and "edited by hand" in entries["en-1"]["checks"]


def test_a_broken_script_cell_is_a_row_problem(stub_llm, tmp_path, capsys):
    sheet = tmp_path / "bad-script.csv"
    pd.DataFrame(
        {"question": [QUESTION_EN, QUESTION_EN + " Really?"], "script": ['{"scenes": [', ""]}
    ).to_csv(sheet, index=False)
    assert main([str(sheet), "--no-video", "--json"]) == 0  # skipped rows are reported, not failed
    summary = json.loads(capsys.readouterr().out)
    assert (summary["succeeded"], summary["skipped"]) == (1, 1)
    entries = json.loads(Path(summary["manifest_json"]).read_text(encoding="utf-8"))
    assert entries[0]["status"] == "skipped" and "script: the script is not valid JSON" in entries[0]["error"]


def test_malformed_spreadsheet_fails_before_any_work(stub_llm, tmp_path, capsys):
    sheet = tmp_path / "bad.csv"
    sheet.write_text("id,text\n1,hello\n", encoding="utf-8")
    assert main([str(sheet)]) == 2
    assert "no 'question' column" in capsys.readouterr().err
    assert stub_llm.chat_requests() == []
