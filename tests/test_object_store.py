"""The knowledge base on an S3-compatible object store (RAGREEL_STORE), against a real one: moto
in server mode on 127.0.0.1. One host ingests; another, with an empty RAGREEL_HOME, answers from it."""

from __future__ import annotations

import json
import logging
import shutil

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
    aws_environment, documents, tmp_path, monkeypatch, caplog, capsys
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

    assert main(["--status"]) == 0
    status_output = capsys.readouterr().out
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
