"""The real deployment round trip: server, work pool, prefect.yaml deployments, two workers, a batch.

The test starts a Prefect server on a free 127.0.0.1 port (SQLite, or a PostgreSQL cluster it
creates), ingests the sample knowledge base, runs ``deployments/deploy.sh``, starts two process
workers, triggers the batch deployment with a 3-row spreadsheet fanned out as runs of the
generate deployment, and checks the manifest, the videos and which worker ran what. The LLM is
the OpenAI-protocol stub served from this process (real HTTP that the workers' flow runs reach)
and the voices are espeak, so the time measured is orchestration, not inference.

Everything started is stopped in the fixture's teardown (workers before the server), and the
teardown fails if any process it started is still alive.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import yaml

from tests.conftest import _stub_reply, decodes_fully
from tests.openai_stub_server import StubServer, is_translation
from tests.prefect_server import (
    POSTGRES_MISSING,
    PREFECT,
    REPO,
    ManagedProcess,
    PostgresCluster,
    PrefectServer,
    clean_environment,
    log_tail,
    pool_workers,
    postgres_bin,
    start_worker,
    stop_all,
    tagged_processes,
    wait_until,
)
from tests.s3_server import S3Server

POOL = "ragreel"
BATCH_DEPLOYMENT = "batch-videos/ragreel-batch"
GENERATE_DEPLOYMENT = "generate-video/ragreel-generate"
WORKERS = ("w1", "w2")
FINAL_STATES = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# Generous: the batch took about a minute on 2 busy cores. Raise it on slower machines.
BATCH_TIMEOUT_S = float(os.environ.get("RAGREEL_ROUND_TRIP_TIMEOUT_S", 900))


@dataclass
class RoundTrip:
    """What the fixture started, and how to reach it."""

    database: str
    tmp: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex)
    env: dict[str, str] = field(default_factory=dict)
    stub: StubServer | None = None
    cluster: PostgresCluster | None = None
    s3: S3Server | None = None  # "object-store": the only thing the workers share besides the server
    server: PrefectServer | None = None
    processes: list[ManagedProcess] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def home(self) -> Path:
        return self.tmp / "ragreel-home"

    def worker_home(self, name: str) -> Path:
        return self.tmp / f"home-{name}"

    @property
    def log_dir(self) -> Path:
        return self.tmp / "logs"

    @property
    def workers(self) -> list[ManagedProcess]:
        return [p for p in self.processes if p.name.startswith("worker-")]

    def run_command(self, args: list[str], what: str, timeout: float = 300) -> str:
        done = subprocess.run(args, cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, (
            f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
        return done.stdout

    def flow_run(self, run_id: str) -> dict:
        return self.server.api("GET", f"/flow_runs/{run_id}").json()

    def deployment(self, name: str) -> dict:
        return self.server.api("GET", f"/deployments/name/{name}").json()

    def flow_runs_of(self, deployment: dict) -> list[dict]:
        body = {"flow_runs": {"deployment_id": {"any_": [deployment["id"]]}}}
        return self.server.api("POST", "/flow_runs/filter", json=body).json()

    def diagnostics(self, run_id: str | None = None) -> str:
        """Worker logs and the run's own logs, for a failure message."""
        parts = [f"--- {p.name} log ---\n{log_tail(p.log_path, 3000)}" for p in self.workers]
        if run_id and self.server is not None:
            body = {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC"}
            try:
                logs = self.server.api("POST", "/logs/filter", json=body).json()
                parts.append("--- batch run logs ---\n" + "\n".join(entry["message"] for entry in logs[-40:]))
            except Exception as exc:  # noqa: BLE001 - diagnostics must not hide the failure
                parts.append(f"(could not read the run's logs: {exc})")
        return "\n".join(parts)

    def stop(self) -> list[str]:
        """Workers first, then the rest, the server, the database; returns what is still alive."""
        for proc in self.workers:
            proc.stop()
        for proc in self.processes:
            if proc not in self.workers:
                proc.stop()
        if self.server is not None:
            self.server.process.stop()
        if self.cluster is not None:
            self.cluster.stop()
        if self.stub is not None:
            self.stub.stop()
        if self.s3 is not None:
            self.s3.stop()
        started = self.processes + ([self.server.process] if self.server else [])
        alive = {p.pid: f"{proc.name}'s pid {p.pid}" for proc in started for p in proc.leftovers()}
        if self.cluster is not None:
            alive |= {p.pid: f"postgres pid {p.pid}" for p in self.cluster.leftovers()}
        if self.s3 is not None and self.s3.popen.poll() is None:
            alive[self.s3.popen.pid] = f"moto pid {self.s3.popen.pid}"
        strays = tagged_processes(self.tag)
        alive |= {p.pid: f"pid {p.pid} ({' '.join(p.cmdline()[:4])})" for p in strays if p.pid not in alive}
        stop_all(strays, timeout=5)  # don't leave them to the next test
        return sorted(alive.values())


def _mark(trip: RoundTrip, phase: str, since: float) -> float:
    now = time.perf_counter()
    trip.timings[phase] = round(now - since, 1)
    return now


@pytest.fixture(params=["sqlite", "postgresql"])
def round_trip(request, tmp_path):
    """A running server with both deployments and two workers on pool ``ragreel``; stopped afterwards.

    "object-store" (asked for by its test) is SQLite plus an S3 server as RAGREEL_STORE, and each
    worker, and the ingest, has its own empty RAGREEL_HOME: hosts that share no disk."""
    database = request.param
    if database == "postgresql" and postgres_bin() is None:
        if os.environ.get("RAGREEL_SKIP_POSTGRES") == "1":
            pytest.skip("RAGREEL_SKIP_POSTGRES=1")
        pytest.fail(POSTGRES_MISSING)

    trip = RoundTrip(database, tmp_path)
    trip.log_dir.mkdir()
    started = clock = time.perf_counter()
    try:
        if database == "postgresql":
            trip.cluster = PostgresCluster.start()
            clock = _mark(trip, "postgres", clock)
        if database == "object-store":
            trip.s3 = S3Server(bucket="ragreel").start()
            clock = _mark(trip, "s3", clock)
        trip.server = PrefectServer.start(
            tmp_path / "prefect-home",
            trip.log_dir,
            trip.tag,
            database_url=trip.cluster.url if trip.cluster else None,
        )
        clock = _mark(trip, "server", clock)

        trip.stub = StubServer(api_key="sk-test-deploy", reply=_stub_reply).start()
        trip.env = clean_environment(trip.tag) | {
            "PREFECT_HOME": str(tmp_path / "prefect-home"),
            "PREFECT_API_URL": trip.server.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "PREFECT_WORKER_QUERY_SECONDS": "2",
            "RAGREEL_HOME": str(trip.home),
            "OPENAI_BASE_URL": trip.stub.url,
            "OPENAI_API_KEY": "sk-test-deploy",
            "RAGREEL_LLM_MODEL": "stub-model",
            "RAGREEL_VOICE_EN": "espeak",
            "RAGREEL_VOICE_ZH": "espeak",
            # one request per row: the stub's canned replies may be short for a question they don't fit
            "RAGREEL_ANSWER_MIN_SECONDS": "0",
        }
        if trip.s3 is not None:
            trip.env |= trip.s3.environment() | {
                "RAGREEL_STORE": f"s3://{trip.s3.bucket}/shared",
                "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
            }
        # The ingest (embedding model, LanceDB) runs while the pool, deployments and workers come up.
        ingest = ManagedProcess.start(
            "ingest", [sys.executable, "-m", "flows.ingest", "data/kb"], trip.env, trip.log_dir
        )
        trip.processes.append(ingest)
        trip.run_command(["bash", "deployments/deploy.sh"], "deployments/deploy.sh")
        clock = _mark(trip, "pool+deploy", clock)
        # A limit of 2 each: the worker that runs the batch flow keeps one slot for a row, so the
        # three rows cannot all land on one worker: the fan-out reaches both.
        for name in WORKERS:
            env = trip.env | ({"RAGREEL_HOME": str(trip.worker_home(name))} if trip.s3 else {})
            trip.processes.append(start_worker(name, POOL, env, trip.log_dir, limit=2))
        wait_until(
            lambda: pool_workers(trip.server, POOL) >= set(WORKERS),
            120,
            "both workers to register",
            watch=trip.workers,
        )
        clock = _mark(trip, "workers", clock)
        wait_until(lambda: ingest.popen.poll() is not None, 600, "the ingest to finish")
        assert ingest.popen.returncode == 0, f"ingest failed:\n{log_tail(ingest.log_path)}"
        clock = _mark(trip, "ingest (after workers)", clock)
        trip.timings["setup"] = round(clock - started, 1)
        yield trip
    finally:
        stop_started = time.perf_counter()
        alive = trip.stop()
        trip.timings["teardown"] = round(time.perf_counter() - stop_started, 1)
        trip.timings["total"] = round(time.perf_counter() - started, 1)
        print(f"\n[{database}] round trip timings (s): {json.dumps(trip.timings)}")
        assert not alive, f"processes left running after teardown: {alive}"


def _three_row_sheet(path: Path) -> list[dict]:
    """The first rows of data/questions.csv that give two languages, three rows in all."""
    with open(REPO / "data" / "questions.csv", encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))[:3]
    assert {r["language"] for r in rows} == {"en", "zh"}
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "question", "language"])
        writer.writeheader()
        writer.writerows(rows)
    return rows


@pytest.mark.slow
def test_batch_deployment_fans_out_across_two_workers(round_trip):
    trip = round_trip
    rows, batch = _three_row_batch(trip)

    # The deployments are the ones prefect.yaml describes.
    declared = {d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]}
    batch_deployment = trip.deployment(BATCH_DEPLOYMENT)
    assert batch_deployment["work_pool_name"] == POOL
    assert batch["parameters"]["fan_out"] is declared["ragreel-batch"]["parameters"]["fan_out"] is True
    crons = [s["schedule"].get("cron") for s in batch_deployment["schedules"]]
    assert crons == [s["cron"] for s in declared["ragreel-batch"]["schedules"]]

    # The manifest: one batch folder, three succeeded rows with answers and whole videos.
    manifests = list((trip.home / "batches").glob("*/manifest.json"))
    assert len(manifests) == 1, manifests
    entries = json.loads(manifests[0].read_text(encoding="utf-8"))
    assert [e["id"] for e in entries] == [r["id"] for r in rows]
    with open(manifests[0].with_suffix(".csv"), encoding="utf-8-sig", newline="") as f:
        assert [r["id"] for r in csv.DictReader(f)] == [r["id"] for r in rows]
    for entry, row in zip(entries, rows, strict=True):
        assert entry["status"] == "succeeded", entry
        assert entry["question"] == row["question"] and entry["language"] == row["language"]
        assert entry["answer"].strip() and entry["sources"], entry
        video = Path(entry["video"])
        assert video.is_relative_to(manifests[0].parent), video
        assert video.stat().st_size > 0 and decodes_fully(video), video
    assert _scripts_asked(trip) == 3, "each row asks the LLM for its script once, from a worker's flow run"

    # Three generate runs, one per row, children of the batch run, shared by both workers.
    generate_runs = trip.flow_runs_of(trip.deployment(GENERATE_DEPLOYMENT))
    assert len(generate_runs) == 3
    assert sorted(r["parameters"]["question"] for r in generate_runs) == sorted(r["question"] for r in rows)
    assert all(r["state"]["type"] == "COMPLETED" for r in generate_runs)
    assert all(r["parent_task_run_id"] for r in generate_runs), "rows are linked to the batch run in the UI"
    row_workers = sorted(r["labels"].get("prefect.worker.name") for r in generate_runs)
    batch_worker = batch["labels"].get("prefect.worker.name")
    print(
        f"\n[{trip.database}] batch ran on {batch_worker}; rows ran on {row_workers}; "
        f"batch run {trip.timings['batch run']}s"
    )
    assert set(row_workers) == set(WORKERS), (
        f"rows ran on {row_workers}; the fan-out should reach both workers"
    )


@pytest.mark.slow
@pytest.mark.parametrize("round_trip", ["object-store"], indirect=True)
def test_workers_that_share_only_the_object_store_run_a_batch(round_trip):
    """The sheet goes in through the API, which keeps it on the store; the API's own host, too,
    has nothing on disk: the batch's progress, links and manifests come from the store."""
    trip = round_trip
    rows, batch = _three_row_batch(trip, through_api=True)
    assert batch["parameters"]["spreadsheet"].startswith("s3://ragreel/shared/uploads/")

    shown = _api(trip, "get", batch["id"])
    assert shown["batch"]["status"] == "completed" and shown["batch"]["progress"] == 1.0
    assert [(r["id"], r["status"]) for r in shown["batch"]["rows"]] == [(r["id"], "succeeded") for r in rows]
    link = shown["batch"]["rows"][0]["video"]
    assert link, shown
    assert link.startswith(trip.s3.endpoint_url) and "X-Amz-Signature" in link, link
    linked = trip.tmp / "linked.mp4"
    linked.write_bytes(httpx.get(link).raise_for_status().content)
    assert decodes_fully(linked)
    assert [e["id"] for e in shown["manifest.json"]] == [r["id"] for r in rows]
    assert shown["manifest.csv"].startswith("row,") and shown["manifest.xlsx"] == [r["id"] for r in rows]
    assert not list((trip.tmp / "api-host").rglob("manifest.*")), "the API host keeps no copy"

    keys = trip.s3.keys("shared/")
    assert not [k for k in keys if ".part" in k], "only whole files are published"
    assert any(k.startswith("shared/kb/") for k in keys) and any(
        k.startswith("shared/results/") for k in keys
    )
    [manifest] = [k for k in keys if k.startswith("shared/batches/") and k.endswith("/manifest.json")]
    entries = json.loads(trip.s3.client().get_object(Bucket="ragreel", Key=manifest)["Body"].read())
    assert [e["id"] for e in entries] == [r["id"] for r in rows]
    for entry in entries:
        assert entry["status"] == "succeeded", entry
        assert entry["video"].startswith("s3://ragreel/shared/batches/"), entry["video"]
        key = entry["video"].removeprefix("s3://ragreel/")
        assert key in keys
        local = trip.tmp / Path(key).name
        trip.s3.client().download_file("ragreel", key, str(local))
        assert decodes_fully(local), key
    # Nothing the rows made lies in the ingest's folder: each worker wrote in its own.
    assert not (trip.home / "batches").exists() and not (trip.home / "results").exists()
    row_workers = {
        r["labels"].get("prefect.worker.name")
        for r in trip.flow_runs_of(trip.deployment(GENERATE_DEPLOYMENT))
    }
    assert row_workers == set(WORKERS), f"rows ran on {row_workers}; the fan-out should reach both workers"
    assert _scripts_asked(trip) == 3


def _three_row_batch(trip: RoundTrip, through_api: bool = False) -> tuple[list[dict], dict]:
    """Run the batch deployment on a 3-row sheet (uploaded to the API, or named to ``prefect
    deployment run``) and wait: its rows and its finished, whole run."""
    sheet = trip.tmp / "three questions.csv"
    rows = _three_row_sheet(sheet)
    clock = time.perf_counter()
    run_id = _api(trip, "post", str(sheet))["id"] if through_api else _run_batch_deployment(trip, sheet)
    _wait_for_run(trip, run_id, "the batch run to finish", watch=trip.workers)
    trip.timings["batch run"] = round(time.perf_counter() - clock, 1)
    batch = trip.flow_run(run_id)
    assert batch["state"]["type"] == "COMPLETED", (
        f"batch ended {batch['state']['type']}: {batch['state']['message']}\n{trip.diagnostics(run_id)}"
    )
    assert batch["state"]["message"] == "3 succeeded, 0 failed, 0 skipped"
    return rows, batch


def _scripts_asked(trip: RoundTrip) -> int:
    """Requests for a script (a follow-up, such as the yes-or-no the stub's script doesn't begin
    with, carries the earlier turns too)."""
    return sum(len(r.body["messages"]) == 2 for r in trip.stub.script_requests())


# The HTTP API in a process of its own, on a host with its own empty RAGREEL_HOME.
API_CALL = """
import io, json, sys
import openpyxl
from fastapi.testclient import TestClient
from ragreel.api.app import create_app

client = TestClient(create_app())
if sys.argv[1] == "post":
    with open(sys.argv[2], "rb") as sheet:
        files = {"spreadsheet": ("three questions.csv", sheet, "text/csv")}
        answer = client.post("/v1/batches", files=files, data={"concurrency": "3"})
    print(json.dumps(answer.raise_for_status().json()))
else:
    batch = client.get(f"/v1/batches/{sys.argv[2]}").raise_for_status().json()
    manifest = {kind: client.get(url).raise_for_status() for kind, url in batch["manifest"].items()}
    workbook = openpyxl.load_workbook(io.BytesIO(manifest["xlsx"].content)).active
    print(json.dumps({
        "batch": batch,
        "manifest.json": manifest["json"].json(),
        "manifest.csv": manifest["csv"].content.decode("utf-8-sig"),
        "manifest.xlsx": [row[1].value for row in workbook.iter_rows(min_row=2)],
    }))
"""


def _api(trip: RoundTrip, *args: str) -> dict:
    env = trip.env | {"RAGREEL_HOME": str(trip.tmp / "api-host")}
    done = subprocess.run(
        [sys.executable, "-c", API_CALL, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"the API call {args} failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_batch_deployment(trip: RoundTrip, sheet: Path) -> str:
    output = trip.run_command(
        [
            str(PREFECT),
            "deployment",
            "run",
            BATCH_DEPLOYMENT,
            "--param",
            f"spreadsheet={json.dumps(str(sheet))}",
            "--param",
            "concurrency=3",
        ],
        "prefect deployment run",
    )
    return re.search(r"UUID:\s*([0-9a-f-]{36})", output).group(1)


def _wait_for_run(trip: RoundTrip, run_id: str, what: str, watch: list[ManagedProcess] = ()) -> None:
    """Until the flow run ends; on a timeout, the workers' and the run's logs in the failure."""
    try:
        wait_until(
            lambda: trip.flow_run(run_id)["state"]["type"] in FINAL_STATES,
            BATCH_TIMEOUT_S,
            what,
            interval=1,
            watch=watch,
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trip.diagnostics(run_id)}") from None


def _kill_tree(process: ManagedProcess) -> None:
    """SIGKILL a worker and every flow run under it, as when its host goes down."""
    import psutil

    tree = [psutil.Process(process.popen.pid), *process.descendants()]
    for proc in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            proc.kill()
    psutil.wait_procs(tree, timeout=20)
    process.popen.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("round_trip", ["sqlite"], indirect=True)
def test_workers_killed_mid_batch_then_a_rerun_finishes_every_row_whole(round_trip):
    trip = round_trip
    sheet = trip.tmp / "three questions.csv"
    rows = _three_row_sheet(sheet)
    # The first row's answer comes at once; the others wait, so the kill lands mid-batch.
    release, asked = threading.Event(), itertools.count()

    def first_at_once_then_held(body: dict) -> str:
        if not is_translation(body) and next(asked) > 0:  # a translation for search is never held
            release.wait(120)
        return _stub_reply(body)

    trip.stub.reply = first_at_once_then_held
    first = _run_batch_deployment(trip, sheet)
    generate = trip.deployment(GENERATE_DEPLOYMENT)

    def completed_rows() -> list[dict]:
        return [r for r in trip.flow_runs_of(generate) if r["state"]["type"] == "COMPLETED"]

    try:
        wait_until(lambda: completed_rows(), BATCH_TIMEOUT_S, "a first row to finish", interval=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{trip.diagnostics(first)}") from None
    for worker in trip.workers:
        _kill_tree(worker)
    trip.stub.reply = _stub_reply
    release.set()
    finished_before = {r["parameters"]["question"] for r in completed_rows()}
    assert len(finished_before) == 1 and trip.flow_run(first)["state"]["type"] != "COMPLETED"

    # New workers (the host came back); the same batch is run again.
    for name in WORKERS:
        trip.processes.append(start_worker(f"{name}-again", POOL, trip.env, trip.log_dir, limit=2))
    rerun = _run_batch_deployment(trip, sheet)
    _wait_for_run(trip, rerun, "the rerun to finish")
    again = trip.flow_run(rerun)
    assert again["state"]["type"] == "COMPLETED", f"{again['state']}\n{trip.diagnostics(rerun)}"
    assert again["state"]["message"] == "3 succeeded, 0 failed, 0 skipped"

    manifests = list((trip.home / "batches").glob("*/manifest.json"))
    assert len(manifests) == 1, manifests
    entries = json.loads(manifests[0].read_text(encoding="utf-8"))
    assert [e["status"] for e in entries] == ["succeeded"] * len(rows)
    for entry in entries:
        video = Path(entry["video"])
        assert decodes_fully(video), video
        assert len(list(video.parent.glob("*.mp4"))) == 1 and not list(video.parent.glob(".*.part*"))
        if entry["question"] in finished_before:
            assert "generate" in entry["from_cache"], entry  # finished before the kill: not asked again
