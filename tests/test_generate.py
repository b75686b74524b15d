"""The generate flow end to end: question -> MP4, artifacts, caching, and the CLI.

The LLM is the OpenAI-protocol stub (real HTTP, deterministic); retrieval, voices and rendering
are real. The built-in local model is exercised in test_answer.py.
"""

import json
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterId,
)

from flows.generate import generate_video, main
from tests.conftest import decodes_fully

pytestmark = [pytest.mark.usefixtures("prefect_harness", "use_ingested_home"), pytest.mark.slow]

QUESTION = "What water temperature should I use for oolong tea?"


@pytest.fixture(autouse=True)
def own_result_cache(tmp_path, monkeypatch):
    """Each test starts with an empty stage cache (the knowledge base is shared by the session)."""
    monkeypatch.setenv("RAGREEL_RESULTS_STORAGE", str(tmp_path / "results"))


def run(question=QUESTION, **parameters):
    state = generate_video(question, return_state=True, **parameters)
    assert state.is_completed(), state.message
    return state.result(), state.state_details.flow_run_id


def task_states(flow_run_id) -> dict[str, str]:
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {run.task_key.split("-")[0].replace("_stage", ""): run.state.name for run in runs}


@pytest.fixture
def first_video(stub_llm, tmp_path):
    result, flow_run_id = run(output_dir=str(tmp_path / "out"))
    return result, flow_run_id


def test_question_becomes_a_valid_video_with_artifacts(first_video, stub_llm):
    result, flow_run_id = first_video
    assert result.cached_stages == []
    assert result.llm == "openai:stub-model" and result.voice.startswith("piper:")
    assert result.sources and result.sources[0].source == "tea/brewing-guide.md"
    for path in (result.mp4_path, result.srt_path, result.thumbnail_path, result.wav_path):
        assert Path(path).is_file(), path
    assert decodes_fully(result.mp4_path)
    assert abs(result.video_seconds - result.narration_seconds - 7.0) < 0.2  # title 3 s + sources card 4 s
    assert json.loads((Path(result.output_dir) / "result.json").read_text())["mp4_path"] == result.mp4_path

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    by_key = {a.key: a for a in artifacts if a.key}
    assert {"answer", "retrieved-passages", "video"} <= set(by_key)
    answer = by_key["answer"].data
    assert "Brewing Oolong Tea at Home" in answer and "> Use fresh, soft water." in answer
    # The scenes with their evidence and what the check did, for a reviewer in the UI.
    assert "## Scenes" in answer and "| 1 |" in answer and "- scene 1: passed" in answer
    # The stub's three scenes, and after the first any passage sentence close to the question they leave unsaid.
    assert [s.origin for s in result.scenes].count("model") == 3 and result.checks[:3] == [
        "scene 1: passed",
        "scene 2: passed",
        "scene 3: passed",
    ]
    assert by_key["retrieved-passages"].type == "table"
    assert "video.mp4" in by_key["video"].data  # a link artifact (it reads back as markdown)
    assert [a.data for a in artifacts if a.type == "progress"] == [100.0]


def test_second_run_is_served_from_cache(first_video, stub_llm, tmp_path):
    asked = len(stub_llm.chat_requests())
    result, flow_run_id = run(output_dir=str(tmp_path / "out"))
    assert result.cached_stages == ["retrieve", "generate", "speak", "render"]
    assert set(task_states(flow_run_id).values()) == {"Cached"}
    assert len(stub_llm.chat_requests()) == asked  # the LLM was not asked again


def test_a_cached_result_whose_file_is_gone_is_recomputed(first_video, tmp_path):
    first, _ = first_video
    Path(first.mp4_path).unlink()
    result, _ = run(output_dir=str(tmp_path / "out"))
    assert result.cached_stages == ["retrieve", "generate", "speak"]
    assert decodes_fully(result.mp4_path)


def test_a_changed_render_setting_rerenders_only(first_video, stub_llm, tmp_path):
    import av

    asked = len(stub_llm.chat_requests())
    result, _ = run(output_dir=str(tmp_path / "out"), aspect="square")
    assert result.cached_stages == ["retrieve", "generate", "speak"]
    assert len(stub_llm.chat_requests()) == asked
    with av.open(result.mp4_path) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (1080, 1080)


def test_chinese_question_gets_a_chinese_video(stub_llm, tmp_path):
    result, _ = run("高山烏龍茶要種在多高的地方？", output_dir=str(tmp_path / "zh"), voice="espeak")
    assert result.language == "zh" and "海拔" in result.answer
    assert result.sources[0].source == "tea/high-mountain-oolong.md"
    assert "海拔" in Path(result.srt_path).read_text(encoding="utf-8")
    assert decodes_fully(result.mp4_path)


def test_cli_json_prints_only_the_result(stub_llm, tmp_path, capsys):
    assert main([QUESTION, "--json", "--output-dir", str(tmp_path / "cli")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["question"] == QUESTION and Path(result["mp4_path"]).is_file()


def test_cli_no_video_prints_answer_and_sources(stub_llm, tmp_path, capsys):
    assert main([QUESTION, "--no-video", "--output-dir", str(tmp_path / "review")]) == 0
    out = capsys.readouterr().out
    assert "90 to 95 degrees" in out and "Brewing Oolong Tea at Home" in out and "Video:" not in out
    assert not list((tmp_path / "review").glob("*.mp4"))


def test_cli_fails_with_a_one_line_reason_naming_the_stage(stub_llm, capsys):
    assert main(["   "]) == 2  # bad input: the same code in every command
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: [retrieve]") and "empty" in err[-1]


def test_a_rejected_api_key_fails_at_once_without_retries(stub_llm, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-key-123")
    assert main(["What is oolong?", "--output-dir", str(tmp_path / "denied")]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: [generate]") and "sk-wrong-key-123" not in last
    assert len(stub_llm.chat_requests()) == 1  # a permanent error is not retried


@pytest.mark.parametrize(
    "question", ["What does {} mean in oolong {name} brewing?", "烏龍茶 {0} 要泡幾分鐘？%s \\n"]
)
def test_braces_and_format_marks_in_a_question_are_just_text(stub_llm, tmp_path, question):
    result, flow_run_id = run(question, output_dir=str(tmp_path / "braces"), video=False)
    assert result.question == question.strip() and result.answer
    with get_client(sync_client=True) as client:
        names = [
            r.name
            for r in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        ]
    assert any(question[:10] in name for name in names), names


def test_a_reviewed_script_is_rendered_without_asking_the_model(stub_llm, tmp_path, capsys):
    review = tmp_path / "review"
    assert main([QUESTION, "--no-video", "--output-dir", str(review)]) == 0
    assert "Scenes: " in capsys.readouterr().out
    asked = len(stub_llm.chat_requests())
    result = json.loads((review / "result.json").read_text(encoding="utf-8"))
    assert result["scenes"] and all(s["evidence"] for s in result["scenes"])
    # A reviewer rewrites the first scene in their own words (its numbers still from its quote).
    first = result["scenes"][0]
    first["narration"] = "Reviewed: " + first["narration"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(result), encoding="utf-8")

    assert main([QUESTION, "--script", str(edited), "--output-dir", str(tmp_path / "video"), "--json"]) == 0
    rendered = json.loads(capsys.readouterr().out)
    assert len(stub_llm.chat_requests()) == asked  # the model was not asked again
    assert rendered["scenes"][0]["narration"].startswith("Reviewed: ")
    assert {s["origin"] for s in rendered["scenes"]} == {"edited"} and rendered["llm"] == "script:edited"
    assert "Reviewed:" in Path(rendered["srt_path"]).read_text(encoding="utf-8")
    assert decodes_fully(rendered["mp4_path"])

    first["narration"] = "Brew it at 42 degrees."  # a number its evidence does not have
    edited.write_text(json.dumps(result), encoding="utf-8")
    assert main([QUESTION, "--script", str(edited), "--no-video", "--output-dir", str(tmp_path / "bad")]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("error: [generate] scene 1 of the script:") and "42" in last
    assert len(stub_llm.chat_requests()) == asked


def test_a_script_file_that_is_not_json_is_refused_before_any_work(stub_llm, tmp_path, capsys):
    bad = tmp_path / "script.json"
    bad.write_bytes(b"\x00\x01binary")
    assert main([QUESTION, "--script", str(bad), "--no-video"]) == 2
    assert "is not JSON text" in capsys.readouterr().err
    assert stub_llm.chat_requests() == []


def test_a_deployment_run_cancelled_while_its_process_started_stays_cancelled(stub_llm, tmp_path):
    """The API cancels a run whose worker has already started its process (still importing): the
    server lets a Cancelled run go to Running, so the flow itself must stop, not answer anyway."""
    from prefect.flow_engine import run_flow
    from prefect.states import Cancelled, Scheduled

    parameters = {"question": QUESTION, "video": False, "output_dir": str(tmp_path / "out")}
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(client.create_flow(generate_video), "cancel-while-starting")
        cancelled = client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
        client.set_flow_run_state(
            cancelled.id, Cancelled(message="cancelled through the ragreel API"), force=True
        )
        state = run_flow(
            generate_video,
            flow_run=client.read_flow_run(cancelled.id),
            parameters=parameters,
            return_type="state",
        )
        assert state.is_cancelled(), state
        assert client.read_flow_run(cancelled.id).state.is_cancelled()
        assert task_states(cancelled.id) == {} and not stub_llm.chat_requests()

        # Scheduled again after the cancel (a retry from the UI), the same run does its work.
        client.set_flow_run_state(cancelled.id, Scheduled(), force=True)
        state = run_flow(
            generate_video,
            flow_run=client.read_flow_run(cancelled.id),
            parameters=parameters,
            return_type="state",
        )
    assert state.is_completed(), state.message
    assert set(task_states(cancelled.id)) == {"retrieve", "generate"} and stub_llm.chat_requests()
