"""The knowledge base on an S3-compatible object store (RAGREEL_STORE), against a real one: moto
in server mode on 127.0.0.1. One host ingests; another, with an empty RAGREEL_HOME, answers from it."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import shutil
import textwrap

import httpx
import pytest

from ragreel.errors import InputError, PermanentError
from ragreel.settings import get_settings
from tests.conftest import SAMPLE_KB
from tests.s3_server import SECRET_ACCESS_KEY, S3Server

STORE = "s3://bucket/kb-test"
PREFIX = "kb-test/kb/"
# Other AWS settings of the machine that could point boto3 or LanceDB elsewhere.
FOREIGN_AWS_VARIABLES = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)


@pytest.fixture(scope="module")
def s3_server():
    with S3Server(bucket="bucket") as server:
        yield server


@pytest.fixture
def aws_environment(s3_server, monkeypatch, tmp_path):
    for name in FOREIGN_AWS_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    return s3_server


def printed(call) -> tuple[object, str]:
    """Run ``call`` with stdout captured: its return value and what it printed.

    Not capsys: the first test to use the Prefect harness has Prefect's console log handler bound
    to the stream in place when it starts, and capsys closes its stream when the test ends."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        value = call()
    return value, buffer.getvalue()


@pytest.fixture
def documents(tmp_path):
    """English and Traditional Chinese Markdown, two of them with a picture."""
    folder = tmp_path / "documents"
    shutil.copytree(SAMPLE_KB / "tea", folder / "tea")
    for name in ("typhoons.md", "night-markets.md"):
        shutil.copy(SAMPLE_KB / name, folder / name)
    return folder


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_one_host_ingests_to_the_store_and_another_retrieves_from_it(
    aws_environment, documents, tmp_path, monkeypatch, caplog
):
    from flows.ingest import ingest_knowledge_base, main
    from ragreel.kb.store import KnowledgeBase
    from tasks.retrieve import retrieve_passages

    caplog.set_level(logging.INFO)
    for name in ("ragreel", "tasks", "flows"):  # all of ours; botocore's debug lines only cost time
        caplog.set_level(logging.DEBUG, logger=name)
    s3 = aws_environment
    monkeypatch.setenv("RAGREEL_STORE", STORE)
    ingesting_home = tmp_path / "ingesting-host"
    monkeypatch.setenv("RAGREEL_HOME", str(ingesting_home))

    first = ingest_knowledge_base([str(documents)])
    assert first.count("added") == 4 and first.embedded == first.chunks > 0

    keys = s3.keys(PREFIX)
    assert PREFIX + "kb.json" in keys
    assert any(key.startswith(PREFIX + "chunks.lance/_versions/") for key in keys)
    assert any(key.startswith(PREFIX + "chunks.lance/_indices/") for key in keys)  # the full-text index
    pictures = [key for key in keys if key.startswith(PREFIX + "pictures/")]
    assert len(pictures) == 2
    meta = json.loads(s3.client().get_object(Bucket="bucket", Key=PREFIX + "kb.json")["Body"].read())
    assert meta["embedding_model"] == get_settings().embedding_model
    # Locally only the copies of the kept pictures: the table and its metadata are on the store.
    local_kb = ingesting_home / "kb"
    assert not (local_kb / "kb.json").exists() and not (local_kb / "chunks.lance").exists()

    # Unchanged documents: nothing embedded, nothing written.
    second = ingest_knowledge_base([str(documents)])
    assert second.embedded == 0 and second.count("unchanged") == 4
    assert (second.version, second.chunks) == (first.version, first.chunks)
    assert s3.keys(PREFIX) == keys

    # Another host: an empty RAGREEL_HOME and the same store.
    answering_home = tmp_path / "answering-host"
    monkeypatch.setenv("RAGREEL_HOME", str(answering_home))
    kb = KnowledgeBase(get_settings())
    assert kb.version() == first.version  # caches key on it, on every host alike
    [top] = retrieve_passages("What water temperature should I use for oolong tea?", top_k=1)
    assert top.source == "tea/brewing-guide.md"
    [top_zh] = retrieve_passages("高山烏龍茶要種在多高的地方？", top_k=1)
    assert top_zh.source == "tea/high-mountain-oolong.md"
    [top_typhoon] = retrieve_passages("Who decides whether there is a typhoon day off?", top_k=1)
    assert top_typhoon.source == "typhoons.md"

    # A slide's picture is fetched from the store the first time this host needs it.
    picture = next(p for p in [top, top_zh] if p.pictures).pictures[0]
    local = kb.kept_file(picture.file)
    assert local.is_relative_to(answering_home)
    stored = s3.client().get_object(Bucket="bucket", Key=PREFIX + picture.file)["Body"].read()
    assert local.read_bytes() == stored == (ingesting_home / "kb" / picture.file).read_bytes()

    code, status_output = printed(lambda: main(["--status"]))
    assert code == 0
    status = json.loads(status_output)
    assert status["path"] == f"{STORE}/kb" and status["documents"] == 4
    assert status["version"] == first.version

    # A document gone from the folder loses its chunks, and its picture leaves the store.
    (documents / "tea" / "brewing-guide.md").unlink()
    third = ingest_knowledge_base([str(documents)])
    assert third.count("removed") == 1 and third.documents == 3
    assert len([key for key in s3.keys(PREFIX) if key.startswith(PREFIX + "pictures/")]) == 1

    settings = get_settings()
    assert SECRET_ACCESS_KEY not in str(settings) + repr(settings) + status_output
    assert SECRET_ACCESS_KEY not in caplog.text
    assert SECRET_ACCESS_KEY not in json.dumps(KnowledgeBase(settings).status().__dict__)


def test_storage_helpers_round_trip_and_keep_the_secret_out_of_errors(aws_environment, tmp_path):
    from ragreel import storage

    settings = get_settings(store=STORE)
    options = storage.lancedb_storage_options(settings)
    assert options["aws_endpoint"] == aws_environment.endpoint_url and options["allow_http"] == "true"
    assert options["aws_secret_access_key"] == SECRET_ACCESS_KEY  # LanceDB needs it, and only it sees it

    local = tmp_path / "clip.txt"
    local.write_text("雙語 bilingual")
    url = f"{STORE}/helpers/clip.txt"
    assert not storage.exists(url, settings)
    storage.upload_file(local, url, settings)
    assert storage.exists(url, settings) and storage.exists(f"{STORE}/helpers", settings)
    assert storage.list_files(f"{STORE}/helpers", settings) == [url]
    copy = storage.download_file(url, tmp_path / "copy" / "clip.txt", settings)
    assert copy.read_text() == "雙語 bilingual"
    signed = storage.presigned_url(url, 60, settings)
    assert httpx.get(signed).content == local.read_bytes()
    assert SECRET_ACCESS_KEY not in signed and "***" in storage.redact(signed, settings)
    storage.delete_file(url, settings)
    assert not storage.exists(url, settings) and storage.read_text(url, settings) is None

    with pytest.raises(PermanentError) as missing_bucket:
        storage.upload_file(local, "s3://no-such-bucket/x.txt", settings)
    assert "no-such-bucket" in str(missing_bucket.value)
    assert storage.redact(f"key {SECRET_ACCESS_KEY} leaked", settings) == "key *** leaked"
    assert SECRET_ACCESS_KEY not in storage.fingerprint(settings)


@pytest.mark.parametrize(
    "value",
    [
        "bucket/kb",
        "s3://",
        "s3://Upper-Case/kb",
        "s3://ab",
        "http://bucket/kb",
        "s3://bucket//kb",
        "s3://AKIAX:hunter2secret@bucket/kb",
        "s3://bucket/kb?versionId=1",
    ],
)
def test_an_invalid_store_url_is_a_clear_input_error(value, monkeypatch):
    monkeypatch.setenv("RAGREEL_STORE", value)
    with pytest.raises(InputError) as error:
        get_settings()
    message = str(error.value)
    assert "RAGREEL_STORE" in message and "s3://bucket" in message
    assert "hunter2secret" not in message


def test_store_urls_and_the_local_default(monkeypatch, ragreel_home):
    monkeypatch.delenv("RAGREEL_STORE", raising=False)
    local = get_settings()
    assert local.store is None and local.kb_uri == str(ragreel_home / "kb") == str(local.kb_dir)
    monkeypatch.setenv("RAGREEL_STORE", "")
    assert get_settings().store is None
    monkeypatch.setenv("RAGREEL_STORE", "s3://my.bucket-1/teams/video/")
    remote = get_settings()
    assert remote.kb_uri == "s3://my.bucket-1/teams/video/kb"
    assert remote.kb_dir == ragreel_home / "kb"  # still the local scratch and cache folder
    monkeypatch.setenv("AWS_ENDPOINT_URL", "ftp://example")
    with pytest.raises(InputError, match="AWS_ENDPOINT_URL"):
        get_settings()


# --- outputs and the Prefect cache on the store (part 2) -----------------------------------------

OUTPUTS_STORE = "s3://bucket/outputs-test"
OUTPUTS_PREFIX = "outputs-test/"


def _artifact_links(flow_run_id) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return [str(artifact.data) for artifact in artifacts]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_outputs_and_the_cache_are_on_the_store_for_every_host(
    aws_environment, documents, stub_llm, tmp_path, monkeypatch, caplog
):
    from flows.generate import _print_result, generate_video
    from flows.ingest import ingest_knowledge_base
    from ragreel import outputs
    from tests.conftest import decodes_fully

    for name in ("ragreel", "tasks", "flows", "prefect"):
        # Ours and Prefect's; not the root logger, whose httpx lines about shipping logs to the
        # Prefect server would be shipped there in turn.
        caplog.set_level(logging.INFO, logger=name)
    s3 = aws_environment
    monkeypatch.setenv("RAGREEL_STORE", OUTPUTS_STORE)
    monkeypatch.delenv("RAGREEL_RESULTS_STORAGE", raising=False)  # the default: <store>/results
    monkeypatch.setenv("RAGREEL_WORD_TIMING", "even")
    monkeypatch.setenv("RAGREEL_LINK_SECONDS", str(30 * 24 * 3600))  # capped at S3's seven days
    first_home = tmp_path / "first-host"
    monkeypatch.setenv("RAGREEL_HOME", str(first_home))
    ingest_knowledge_base([str(documents)])

    question = "What water temperature should I use for oolong tea?"

    def generate():
        state = generate_video(question, voice="espeak", return_state=True)
        assert state.is_completed(), state.message
        return state.result(), state.state_details.flow_run_id

    first, first_run = generate()
    assert first.cached_stages == []
    folder = first.output_dir
    assert folder.startswith(f"{OUTPUTS_STORE}/videos/")
    for path in (first.mp4_path, first.srt_path, first.vtt_path, first.thumbnail_path, first.wav_path):
        assert path.startswith(folder + "/"), path
    keys = set(s3.keys(OUTPUTS_PREFIX + "videos/"))
    folder_key = folder.removeprefix("s3://bucket/")
    names = {"video.mp4", "video.srt", "video.vtt", "video.png", "video.wav", "result.json"}
    assert {f"{folder_key}/{name}" for name in names} <= keys
    assert not any(".part" in key for key in keys)
    stored = json.loads(storage_text(s3, f"{folder_key}/result.json"))
    assert stored["mp4_path"] == first.mp4_path and stored["output_dir"] == folder
    assert s3.keys(OUTPUTS_PREFIX + "results/")  # Prefect's cached stage results, on the store
    assert not (first_home / "results").exists()

    # A presigned link opens without credentials, and the video in it decodes.
    settings = get_settings()
    assert outputs.link_seconds(settings) == 7 * 24 * 3600
    link = outputs.share_link(first.mp4_path, settings)
    assert link.startswith(s3.endpoint_url) and "X-Amz-Expires=604800" in link
    downloaded = tmp_path / "downloaded.mp4"
    downloaded.write_bytes(httpx.get(link).raise_for_status().content)
    assert decodes_fully(downloaded)
    assert any(s3.endpoint_url in text and "video.mp4" in text for text in _artifact_links(first_run))
    _, shown = printed(lambda: _print_result(first, settings))
    assert f"Video: {s3.endpoint_url}/" in shown and "X-Amz-Signature" in shown

    # Another host, with an empty RAGREEL_HOME: every stage from the cache on the store.
    second_home = tmp_path / "second-host"
    monkeypatch.setenv("RAGREEL_HOME", str(second_home))
    asked = len(stub_llm.chat_requests())
    second, _ = generate()
    assert second.cached_stages == ["retrieve", "generate", "speak", "render"]
    assert second.mp4_path == first.mp4_path and len(stub_llm.chat_requests()) == asked
    assert not list(second_home.rglob("*.mp4"))  # nothing rendered here

    # The video's object gone: the second host renders it again (from the narration on the store).
    s3.client().delete_object(Bucket="bucket", Key=first.mp4_path.removeprefix("s3://bucket/"))
    third, _ = generate()
    assert third.cached_stages == ["retrieve", "generate", "speak"]
    assert outputs.is_present(third.mp4_path, settings) and list(second_home.rglob("video.mp4"))
    again = tmp_path / "again.mp4"
    again.write_bytes(httpx.get(outputs.share_link(third.mp4_path, settings)).content)
    assert decodes_fully(again)

    # No secret in logs, results, artifacts, the objects' names or the result storage block.
    from prefect import get_client

    with get_client(sync_client=True) as client:
        blocks = [str(block.data) for block in client.read_block_documents()]
    texts = [caplog.text, json.dumps(stored), *_artifact_links(first_run), *keys, *blocks]
    assert not [text for text in texts if SECRET_ACCESS_KEY in text]


def storage_text(s3: S3Server, key: str) -> str:
    return s3.client().get_object(Bucket="bucket", Key=key)["Body"].read().decode("utf-8")


def test_a_render_killed_mid_way_publishes_nothing(aws_environment, tmp_path, monkeypatch):
    """Files go to the store only once complete: a render process killed in the middle of its
    encode leaves no object, and a file still under its temporary name is never published."""
    from ragreel import outputs
    from tests.test_render import EN_SENTENCES, kill_once_writing, make_narration

    monkeypatch.setenv("RAGREEL_STORE", OUTPUTS_STORE)
    monkeypatch.setenv("RAGREEL_HOME", str(tmp_path / "home"))
    settings = get_settings()
    location = f"{OUTPUTS_STORE}/videos/killed"
    scratch = outputs.scratch_folder(location, settings)
    narration = make_narration(tmp_path / "in", EN_SENTENCES * 4, seconds=2.0)
    script = textwrap.dedent(
        f"""
        from ragreel.schemas import Narration
        from tasks.render import render_stage
        narration = Narration.model_validate_json({narration.model_dump_json()!r})
        render_stage.task.fn(narration, "Killed?", [], {location!r}, "en", "landscape")
        """
    )
    kill_once_writing(script, scratch, ".video.*.part.mp4")
    assert aws_environment.keys("outputs-test/videos/killed") == []
    [partial] = list(scratch.glob(".video.*.part.mp4"))
    with pytest.raises(ValueError, match="not a finished file"):
        outputs.publish(partial, location, settings)
    assert aws_environment.keys("outputs-test/videos/killed") == []

    finished = partial.with_name("video.mp4")
    finished.write_bytes(b"whole")
    url = outputs.publish(finished, location, settings)
    assert url == f"{location}/video.mp4" and outputs.is_present(url, settings)
    assert outputs.publish(finished, str(tmp_path / "local"), settings) == str(finished)  # local: as it was


def test_a_spreadsheet_on_the_store_is_read_afresh_and_a_missing_one_is_a_clear_error(
    aws_environment, tmp_path, monkeypatch
):
    from ragreel import storage
    from tasks.batch import batch_location, read_spreadsheet

    monkeypatch.setenv("RAGREEL_STORE", OUTPUTS_STORE)
    monkeypatch.setenv("RAGREEL_HOME", str(tmp_path / "home"))
    settings = get_settings()
    url = f"{OUTPUTS_STORE}/uploads/questions.csv"
    storage.write_text(url, "id,question\ntea,How hot should the water be?\n", settings)
    first = read_spreadsheet(url, settings)
    assert first.path == url and [row.id for row in first.rows] == ["tea"]
    assert batch_location(url, first.content_hash, settings) == (
        f"{OUTPUTS_STORE}/batches/questions-{first.content_hash}"
    )

    storage.write_text(url, "id,question\ntea,How hot?\ncoffee,How fine a grind?\n", settings)
    second = read_spreadsheet(url, settings)  # replaced on the store: not this host's old copy
    assert [row.id for row in second.rows] == ["tea", "coffee"] and second.content_hash != first.content_hash

    with pytest.raises(InputError, match="no such object"):
        read_spreadsheet(f"{OUTPUTS_STORE}/uploads/gone.csv", settings)
