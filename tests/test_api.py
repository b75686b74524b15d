"""The HTTP API and the web page, on the stack that ``make up`` starts, stopped by ``make down``.

One stack serves the whole module: ``make up`` with a temporary RAGREEL_HOME and free ports
starts a real Prefect server, creates the pool and deployments, ingests the sample knowledge
base, and runs one worker and the API under supervisord. The LLM is the OpenAI-protocol stub
served from this process (the worker's flow runs reach it over HTTP) and the voice is espeak, so
a video takes seconds. The token is set, so every request here carries it.

The browser test drives Debian's chromium through Playwright (``executable_path``: no browser
download). The teardown runs ``make down`` and fails if any process of the stack is still alive.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import _stub_reply, decodes_fully
from tests.openai_stub_server import StubServer, is_translation
from tests.prefect_server import REPO, clean_environment, free_port, log_tail, tagged_processes, wait_until

TOKEN = "test-token-" + uuid.uuid4().hex[:8]
CHROMIUM = os.environ.get("RAGREEL_CHROMIUM", "/usr/bin/chromium")
FINAL = {"completed", "failed", "cancelled"}
JOB_TIMEOUT_S = float(os.environ.get("RAGREEL_API_JOB_TIMEOUT_S", 300))
OOLONG = "What water temperature should I use for oolong tea?"


@dataclass
class Stack:
    home: Path
    env: dict[str, str]
    api: str
    prefect: str
    stub: StubServer
    tag: str
    shots: Path
    up_output: str = ""
    held: threading.Event = field(default_factory=threading.Event)

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def logs(self) -> str:
        folder = self.home / "stack" / "logs"
        return "\n".join(
            f"--- {name} ---\n{log_tail(folder / f'{name}.log', 2500)}" for name in ("worker", "api")
        )

    def wait_for(self, path: str, statuses: set[str] = FINAL, timeout: float = JOB_TIMEOUT_S) -> dict:
        seen: dict = {}

        def reached() -> bool:
            seen.update(self.client().get(path).json())
            return seen.get("status") in statuses

        try:
            wait_until(reached, timeout, f"{path} to reach {statuses}", interval=1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; last seen {seen}\n{self.logs()}") from None
        return seen

    def generate_runs(self) -> int:
        body = {"deployments": {"name": {"any_": ["ragreel-generate"]}}}
        return httpx.post(f"{self.prefect}/flow_runs/count", json=body, timeout=30).json()


def make(target: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", target], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("stack")
    tag = uuid.uuid4().hex
    stub = StubServer(api_key="sk-test-api", reply=_stub_reply).start()
    api_port, prefect_port = free_port(), free_port()
    env = clean_environment(tag) | {
        "RAGREEL_HOME": str(tmp / "home"),
        "RAGREEL_PREFECT_PORT": str(prefect_port),
        "RAGREEL_API_PORT": str(api_port),
        "RAGREEL_API_TOKEN": TOKEN,
        "RAGREEL_API_MAX_ACTIVE_JOBS": "2",
        "RAGREEL_API_MAX_UPLOAD_MB": "0.05",
        "RAGREEL_API_MAX_BATCH_ROWS": "5",
        # Two runs at once: a fanned-out batch holds one slot while its rows run in the other.
        "RAGREEL_WORKER_LIMIT": "2",
        "RAGREEL_STACK_WORKER": f"api-test-{tag[:6]}",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "OPENAI_BASE_URL": stub.url,
        "OPENAI_API_KEY": "sk-test-api",
        "RAGREEL_LLM_MODEL": "stub-model",
        "RAGREEL_VOICE_EN": "espeak",
        "RAGREEL_VOICE_ZH": "espeak",
        "RAGREEL_WORD_TIMING": "even",
        "RAGREEL_ANSWER_MIN_SECONDS": "0",
    }
    shots = Path(os.environ.get("RAGREEL_TEST_SCREENSHOTS", tmp / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        tmp / "home",
        env,
        f"http://127.0.0.1:{api_port}",
        f"http://127.0.0.1:{prefect_port}/api",
        stub,
        tag,
        shots,
    )
    try:
        up = make("up", env, timeout=600)
        stack.up_output = up.stdout
        assert up.returncode == 0, f"make up failed:\n{up.stdout[-3000:]}\n{up.stderr[-3000:]}"
        yield stack
    finally:
        stack.held.set()
        down = make("down", env, timeout=180)
        stub.stop()
        alive = [f"{p.pid} {' '.join(p.cmdline()[:4])}" for p in tagged_processes(tag)]
        for proc in tagged_processes(tag):
            proc.kill()
        assert down.returncode == 0, f"make down failed:\n{down.stdout}\n{down.stderr}"
        assert not alive, f"make down left processes running: {alive}"


# --- the stack ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_make_up_prints_the_page_and_serves_health_page_and_docs(stack):
    assert f"{stack.api}/" in stack.up_output
    health = httpx.get(f"{stack.api}/healthz", timeout=10).json()
    assert (
        health | {"ok": True, "prefect": "up", "pool": "ragreel"} == health and health["workers_online"] == 1
    )
    page = httpx.get(f"{stack.api}/", timeout=10)
    assert page.status_code == 200 and "<title>ragreel</title>" in page.text
    paths = httpx.get(f"{stack.api}/openapi.json", timeout=10).json()["paths"]
    assert {"/v1/videos", "/v1/videos/{run_id}", "/v1/videos/{run_id}/events", "/v1/batches"} <= set(paths)
    assert httpx.get(f"{stack.api}/docs", timeout=10).status_code == 200


@pytest.mark.slow
def test_without_the_token_requests_get_401_and_nothing_runs(stack):
    before = stack.generate_runs()
    for token in (None, "wrong"):
        with stack.client(token) as client:
            refused = client.post("/v1/videos", json={"question": OOLONG})
            assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
            assert client.get("/v1/videos").status_code == 401
            assert client.get("/files/videos/x/video.mp4").status_code == 401
    assert stack.generate_runs() == before


@pytest.mark.slow
def test_bad_requests_are_refused_with_a_reason_before_anything_runs(stack):
    before = stack.generate_runs()
    with stack.client() as client:
        empty = client.post("/v1/videos", json={"question": "  "})
        assert empty.status_code == 422 and "question" in empty.json()["detail"]
        long = client.post("/v1/videos", json={"question": "tea " * 600})
        assert long.status_code == 422 and "the limit is 2,000" in long.json()["detail"]
        shape = client.post("/v1/videos", json={"question": OOLONG, "aspect": "round"})
        assert shape.status_code == 422
        huge = client.post("/v1/videos", json={"question": OOLONG, "title": "x" * 60_000})
        assert huge.status_code == 413 and "RAGREEL_API_MAX_UPLOAD_MB" in huge.json()["detail"]
        assert client.get(f"/v1/videos/{uuid.uuid4()}").status_code == 404
        chunked = client.post(
            "/v1/videos",
            content=iter([b'{"question": "', b'tea?"}']),
            headers={"Content-Type": "application/json"},
        )
        assert chunked.status_code == 411, "a body with no length is refused before it is read"
        assert client.get("/v1/videos/not-an-id").status_code == 422
    assert stack.generate_runs() == before


# --- one video ------------------------------------------------------------------------------------


def _events(stack: Stack, run_id: str) -> list[tuple[str, dict]]:
    events, name = [], None
    with (
        stack.client() as client,
        client.stream("GET", f"/v1/videos/{run_id}/events", timeout=JOB_TIMEOUT_S) as stream,
    ):
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
    return events


@pytest.mark.slow
def test_a_video_job_from_question_to_a_seekable_mp4(stack):
    with stack.client() as client:
        created = client.post("/v1/videos", json={"question": OOLONG, "aspect": "square"})
        assert created.status_code == 202, created.text
        run_id = created.json()["id"]
        assert created.headers["location"] == f"/v1/videos/{run_id}" == created.json()["status_url"]

        events = _events(stack, run_id)
        assert events[-1] == ("end", {"status": "completed"}), f"{events[-3:]}\n{stack.logs()}"
        statuses = [e["status"] for name, e in events if name == "status"]
        assert statuses[-1] == "completed" and "running" in statuses
        stages_seen = [e["stage"] for name, e in events if name == "status" and e["stage"]]
        order = ["retrieve", "generate", "speak", "render"]
        assert [order.index(s) for s in stages_seen] == sorted(order.index(s) for s in stages_seen), (
            stages_seen
        )
        assert "render" in stages_seen, stages_seen  # the slowest stage is seen running (polled every second)
        progress = [e["progress"] for name, e in events if name == "status"]
        assert progress == sorted(progress) and progress[-1] == 1.0

        job = client.get(f"/v1/videos/{run_id}").json()
        assert [s["status"] for s in job["stages"]] == ["completed"] * 4
        result = job["result"]
        assert result["question"] == OOLONG and result["covered"] and result["scenes"] and result["sources"]
        assert "90" in result["answer"], result["answer"]
        assert job["parameters"]["aspect"] == "square" and "output_dir" not in job["parameters"]

        # The MP4 is served whole, and in ranges (a browser's player seeks with them).
        video = client.get(job["files"]["video"])
        assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
        part = client.get(job["files"]["video"], headers={"Range": "bytes=1000-1999"})
        assert part.status_code == 206 and part.content == video.content[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(video.content)}"
        downloaded = stack.home / "downloaded.mp4"
        downloaded.write_bytes(video.content)
        assert decodes_fully(downloaded)
        vtt = client.get(job["files"]["vtt"])
        assert vtt.text.startswith("WEBVTT") and vtt.headers["content-type"].startswith("text/vtt")
        assert client.get(job["files"]["srt"]).text.startswith("1\n")
        assert client.get(job["files"]["thumbnail"]).headers["content-type"] == "image/png"
        # Nothing outside the videos and batches is served: not the Prefect database, not the KB.
        kb_file = next(p for p in (stack.home / "kb").rglob("*") if p.is_file()).relative_to(stack.home)
        prefect_db = next((stack.home / "stack").rglob("*.db")).relative_to(stack.home)
        for outside in (kb_file, prefect_db, "videos/%2e%2e/%2e%2e/%2e%2e/etc/passwd"):
            assert (stack.home / "videos").exists() and client.get(f"/files/{outside}").status_code == 404, (
                outside
            )
        # The page's cookie stands in for the token when reading files (a <video> sends no header), but
        # never makes a job.
        with httpx.Client(base_url=stack.api, cookies={"ragreel_token": TOKEN}, timeout=30) as browser:
            assert browser.get(job["files"]["thumbnail"]).status_code == 200
            assert browser.post("/v1/videos", json={"question": OOLONG}).status_code == 401

        # The same run is in Prefect, and its video artifact links to the API's URL of the file.
        run = httpx.get(f"{stack.prefect}/flow_runs/{run_id}", timeout=10).json()
        assert run["deployment_id"] and run["state"]["type"] == "COMPLETED"
        body = {"artifacts": {"key": {"any_": ["video"]}, "flow_run_id": {"any_": [run_id]}}}
        links = httpx.post(f"{stack.prefect}/artifacts/filter", json=body, timeout=10).json()
        assert links and links[0]["data"].endswith(f"({stack.api}{job['files']['video']})"), links
        body["artifacts"]["key"]["any_"] = ["answer"]
        answers = httpx.post(f"{stack.prefect}/artifacts/filter", json=body, timeout=10).json()
        newest = max(answers, key=lambda a: a["created"])["data"]
        assert f"[![thumbnail]({stack.api}{job['files']['thumbnail']})]" in newest

        # Asked again: the same folder, every stage from cache.
        again = client.post("/v1/videos", json={"question": OOLONG, "aspect": "square"}).json()
        repeat = stack.wait_for(f"/v1/videos/{again['id']}")
        assert repeat["status"] == "completed"
        assert set(repeat["result"]["cached_stages"]) == {"retrieve", "generate", "speak", "render"}
        assert repeat["files"]["video"] == job["files"]["video"]


@pytest.mark.slow
def test_a_failing_run_reports_its_stage_and_message(stack):
    script = {
        "scenes": [
            {
                "narration": "Tea is brewed on the moon.",
                "evidence": [{"passage": 1, "quote": "Tea is made on the moon."}],
            }
        ]
    }
    with stack.client() as client:
        created = client.post("/v1/videos", json={"question": OOLONG, "script": script, "video": False})
        assert created.status_code == 202, created.text
        job = stack.wait_for(created.json()["status_url"])
    assert job["status"] == "failed" and job["result"] is None
    assert job["error"]["stage"] == "generate" == job["stage"]
    assert "scene 1 of the script" in job["error"]["message"] and "[generate]" not in job["error"]["message"]
    assert [s["name"] for s in job["stages"]] == ["retrieve", "generate"]


@pytest.mark.slow
def test_queued_jobs_are_bounded_per_client_and_can_be_cancelled(stack):
    stack.held.clear()

    def held_reply(body: dict) -> str:
        if not is_translation(body):  # the question's translation for search is not held: its script is
            stack.held.wait(JOB_TIMEOUT_S)
        return _stub_reply(body)

    stack.stub.reply = held_reply
    try:
        with stack.client() as client:
            first = client.post("/v1/videos", json={"question": "How is oolong tea rolled?", "video": False})
            url = first.json()["status_url"]
            wait_until(
                lambda: client.get(url).json()["stage"] == "generate", 120, "the first job to wait on the LLM"
            )
            assert client.get(url).json()["status"] == "running"
            second = client.post(
                "/v1/videos", json={"question": "Where does oolong tea grow?", "video": False}
            )
            assert second.status_code == 202
            third = client.post("/v1/videos", json={"question": "Who picks oolong tea?", "video": False})
            assert third.status_code == 429 and int(third.headers["retry-after"]) > 0
            assert "RAGREEL_API_MAX_ACTIVE_JOBS=2" in third.json()["detail"]

            # Cancelled whether still queued, starting or running (then its worker stops the flow run).
            for job in (second, first):
                assert client.delete(job.json()["status_url"]).status_code == 202
            for job in (second, first):
                url = job.json()["status_url"]
                seen = stack.wait_for(url, FINAL | {"cancelling"}, timeout=30)
                if seen["status"] == "cancelling":
                    try:
                        seen = stack.wait_for(url, timeout=60)
                    except AssertionError:  # caught while its process started: asked again, it settles
                        assert client.delete(url).status_code == 202
                        seen = stack.wait_for(url, timeout=30)
                assert seen["status"] == "cancelled", seen
            # Room again: a new job is accepted.
            stack.held.set()
            fourth = client.post("/v1/videos", json={"question": "Who picks oolong tea?", "video": False})
            assert fourth.status_code == 202
            assert stack.wait_for(fourth.json()["status_url"])["status"] == "completed"
            # The cancelled ones stayed cancelled once the LLM answered again.
            for job in (first, second):
                assert client.get(job.json()["status_url"]).json()["status"] == "cancelled"
    finally:
        stack.held.set()
        stack.stub.reply = _stub_reply


# --- batches ------------------------------------------------------------------------------------


def _sheet(rows: list[dict]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.slow
def test_a_batch_upload_with_a_bad_row_is_refused_with_row_and_column_then_a_good_one_runs(stack):
    bad = _sheet(
        [
            {"id": "tea", "question": OOLONG, "language": "en"},
            {"id": "typhoon", "question": "What is a typhoon?", "language": "fr"},
        ]
    )
    with stack.client() as client:
        refused = client.post("/v1/batches", files={"spreadsheet": ("questions.csv", bad, "text/csv")})
        assert refused.status_code == 422
        assert refused.json()["detail"] == [
            {"row": 3, "column": "language", "msg": refused.json()["detail"][0]["msg"], "id": "typhoon"}
        ]
        too_many = _sheet([{"question": f"Question {n} about tea?"} for n in range(6)])
        assert client.post("/v1/batches", files={"spreadsheet": ("many.csv", too_many)}).status_code == 413
        not_a_sheet = client.post("/v1/batches", files={"spreadsheet": ("notes.pdf", b"%PDF-1.4")})
        assert not_a_sheet.status_code == 422
        assert not list((stack.home / "batches").glob("*")), "nothing ran"

        good = _sheet(
            [
                {"id": "tea", "question": OOLONG, "language": "en"},
                {"id": "山茶", "question": "高山烏龍茶要種在多高的地方？", "language": "zh"},
            ]
        )
        created = client.post(
            "/v1/batches", files={"spreadsheet": ("two questions.csv", good)}, data={"video": "false"}
        )
        assert created.status_code == 202, created.text
        batch = stack.wait_for(created.json()["status_url"])
        assert batch["status"] == "completed", batch
        assert [(r["id"], r["status"]) for r in batch["rows"]] == [
            ("tea", "succeeded"),
            ("山茶", "succeeded"),
        ]
        assert batch["progress"] == 1.0
        manifest = client.get(batch["manifest"]["json"]).json()
        assert [e["id"] for e in manifest] == ["tea", "山茶"] and all(e["answer"] for e in manifest)
        assert client.get(batch["manifest"]["csv"]).content.decode("utf-8-sig").startswith("row,")
        workbook = client.get(batch["manifest"]["xlsx"])
        assert workbook.status_code == 200
        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(workbook.content)).active
        assert [c.value for c in sheet[1]][:2] == ["row", "id"] and sheet["B3"].value == "山茶"


# --- the web page in a browser ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_web_page_asks_shows_the_stages_and_plays_the_video(stack):
    if not Path(CHROMIUM).exists():
        if os.environ.get("RAGREEL_SKIP_BROWSER") == "1":
            pytest.skip("RAGREEL_SKIP_BROWSER=1")
        pytest.fail(f"no browser at {CHROMIUM}: apt-get install chromium (or .ci/install-browser.sh)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900}, locale="en-US")
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(stack.api + "/")
            # The server wants a token: the page asks for it, then works.
            expect(page.locator("#token-panel")).to_be_visible()
            page.fill("#token", TOKEN)
            page.click("#save-token")
            expect(page.locator("#token-panel")).to_be_hidden()

            page.fill("#question", "How many stations does Taiwan High Speed Rail have?")
            page.select_option("#aspect", "landscape")
            page.click("#ask-button")
            expect(page.locator("#stages li")).to_have_count(4)
            page.wait_for_selector("#stages li.running, #stages li.completed", timeout=60_000)
            page.screenshot(path=str(stack.shots / "page-working.png"), full_page=True)

            expect(page.locator("#job-result")).to_be_visible(timeout=JOB_TIMEOUT_S * 1000)
            expect(page.locator("#stages li.completed")).to_have_count(4)
            # The player has read the MP4's header through the API (so range requests work) and its
            # subtitles track, sent with the token cookie.
            page.wait_for_function("document.querySelector('#player').readyState >= 1", timeout=60_000)
            duration = page.evaluate("document.querySelector('#player').duration")
            assert duration > 5, duration
            page.wait_for_function(
                "document.querySelector('#player track') && document.querySelector('#player track').readyState === 2",
                timeout=30_000,
            )
            assert "Nangang" in page.locator("#answer").inner_text()  # the stub narrates the passage
            expect(page.locator("#sources li")).not_to_have_count(0)
            expect(page.locator("#scenes blockquote").first).to_be_visible()
            expect(page.locator("#recent li a").first).to_have_text(
                "How many stations does Taiwan High Speed Rail have?"
            )
            page.screenshot(path=str(stack.shots / "page-done.png"), full_page=True)

            # The interface in Chinese.
            page.click("#ui-language")
            expect(page.locator("#ask-button")).to_have_text("製作影片")
            expect(page.locator("#stages li").first).to_have_text("檢索")
            expect(page.locator("#recent .badge").first).to_have_text("完成")
            expect(page.locator("#scenes .origin").first).not_to_have_text("model")
            page.screenshot(path=str(stack.shots / "page-zh.png"), full_page=True)
            assert not errors, errors
        finally:
            browser.close()


# --- agents ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_agent_makes_a_video_through_the_mcp_server(stack):
    """``python -m ragreel.mcp`` over stdio, as an agent's MCP client starts it: tools return at once."""
    import anyio
    from mcp.client.session import ClientSession
    from mcp.client.stdio import StdioServerParameters, stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "ragreel.mcp"],
        env=stack.env | {"RAGREEL_API_URL": stack.api},
        cwd=str(REPO),
    )

    def content(result) -> dict | list:
        assert not result.is_error, result
        return result.structured_content.get("result", result.structured_content)

    async def session_run() -> tuple[list[str], dict, float, dict]:
        async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            started = time.perf_counter()
            created = content(await session.call_tool("make_video", {"question": OOLONG, "video": False}))
            answered_in = time.perf_counter() - started
            deadline = time.monotonic() + JOB_TIMEOUT_S
            while True:
                status = content(await session.call_tool("video_status", {"job_id": created["id"]}))
                if status["status"] in FINAL or time.monotonic() > deadline:
                    return tools, created, answered_in, status
                await anyio.sleep(1)

    tools, created, answered_in, status = anyio.run(session_run)
    assert tools == ["cancel_video", "make_video", "recent_videos", "video_status"]
    assert created["status"] == "scheduled" and answered_in < 20, "make_video returns at once"
    assert status["status"] == "completed", status
    assert status["covered"] and "90" in status["answer"] and status["sources"][0]["title"]


# --- the process manager ---------------------------------------------------------------------------


@pytest.mark.slow
def test_a_crashed_api_is_restarted_by_supervisord(stack):
    def api_pid() -> int:
        done = subprocess.run(
            ["bash", "-c", "source deployments/stack-env.sh && supervisorctl pid api"],
            cwd=REPO,
            env=stack.env,
            capture_output=True,
            text=True,
        )
        return int(done.stdout.strip())

    pid = api_pid()
    psutil.Process(pid).kill()

    def back() -> bool:
        try:
            return httpx.get(f"{stack.api}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    time.sleep(1)
    wait_until(back, 60, "the API to come back")
    assert api_pid() != pid


def test_the_api_will_not_listen_beyond_loopback_without_a_token(tmp_path):
    env = clean_environment("no-token") | {"RAGREEL_HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "ragreel.api", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "RAGREEL_API_TOKEN" in done.stderr, done.stderr


def test_with_the_prefect_server_down_the_api_answers_503_and_says_what_to_start(tmp_path):
    port, dead = free_port(), free_port()  # nothing listens on ``dead``
    env = clean_environment("prefect-down") | {
        "RAGREEL_HOME": str(tmp_path),
        "PREFECT_API_URL": f"http://127.0.0.1:{dead}/api",
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "ragreel.api", "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def listening() -> bool:
            try:
                return httpx.get(f"{base}/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(listening, 60, "the API to listen")
        health = httpx.get(f"{base}/healthz", timeout=30)
        assert health.status_code == 503 and health.json()["prefect"] == "down"
        refused = httpx.post(f"{base}/v1/videos", json={"question": OOLONG}, timeout=30)
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert "cannot be reached" in refused.json()["detail"] and "make up" in refused.json()["hint"]
        assert httpx.get(f"{base}/v1/videos/{uuid.uuid4()}", timeout=30).status_code == 503
    finally:
        api.terminate()
        api.wait(20)


def test_an_empty_token_setting_means_no_token(monkeypatch):
    from ragreel.settings import get_settings

    monkeypatch.setenv("RAGREEL_API_TOKEN", "  ")
    assert get_settings().api_token is None
