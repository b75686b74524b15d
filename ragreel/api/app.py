"""The HTTP API and web page: jobs in, progress and files out.

    POST   /v1/videos              a question (the generate flow's parameters) -> 202, job id
    GET    /v1/videos              recent video jobs
    GET    /v1/videos/{id}         state, stage, progress; when done the answer, scenes, sources, file URLs
    GET    /v1/videos/{id}/events  the same as server-sent events, until the run ends
    DELETE /v1/videos/{id}         cancel
    POST   /v1/batches             a CSV or XLSX upload -> 202, job id (422 with row and column first)
    GET    /v1/batches/{id}        progress per row; the manifest's URLs when done
    GET    /v1/batches/{id}/manifest.{csv,json,xlsx}
    GET    /files/{path}           videos and batch outputs under RAGREEL_HOME (range requests: seeking works)
    GET    /healthz                the API, the Prefect server, the pool's workers
    GET    /                       the web page; /docs the OpenAPI docs

Work runs on the pool's workers (see :mod:`ragreel.api.jobs`); the API only creates runs and
reads them back, so it can restart at any time without losing a job.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import tempfile
import threading
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import quote, unquote
from uuid import UUID

from anyio import to_thread
from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from ragreel import outputs, storage
from ragreel.api import jobs
from ragreel.errors import InputError
from ragreel.files import write_bytes_atomic
from ragreel.outputs import share_link
from ragreel.schemas import (
    BATCH_DEPLOYMENT,
    GENERATE_DEPLOYMENT,
    STAGES,
    Aspect,
    VideoRequest,
    VideoResult,
)
from ragreel.settings import Settings, get_settings
from ragreel.storage import is_url

STATIC = Path(__file__).parent / "static"
EVENT_POLL_S = 1.0
KEEPALIVE_S = 15.0
MANIFEST_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
TOKEN_COOKIE = "ragreel_token"
# What anyone may fetch: the page, its files, the docs and the health check.
PUBLIC_PATHS = {"/", "/healthz", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}


# --- what goes in and out -------------------------------------------------------------------------


class VideoJobRequest(BaseModel):
    """The generate flow's parameters (see ``python -m flows.generate --help``)."""

    question: str = Field(description="The question, in English or Chinese.")
    language: str | None = Field(None, description="en or zh; default: the question's language.")
    voice: str = Field("auto", description="auto, bark, piper, kokoro or espeak.")
    aspect: Aspect | None = Field(None, description="landscape, portrait or square.")
    top_k: int | None = Field(None, description="Passages to retrieve.")
    title: str | None = Field(None, description="Title card text instead of the question.")
    script: dict[str, Any] | str | None = Field(
        None, description="A reviewed script ({'scenes': [...]}, as in a result.json) to render as it is."
    )
    video: bool = Field(True, description="False: the answer and its sources only.")


class JobCreated(BaseModel):
    id: UUID
    status: str
    status_url: str
    events_url: str | None = None


class StageProgress(BaseModel):
    name: str
    status: str  # pending | running | completed | failed | ...


class JobError(BaseModel):
    stage: str
    message: str


class VideoFiles(BaseModel):
    video: str | None = None
    srt: str | None = None
    vtt: str | None = None
    thumbnail: str | None = None
    result: str | None = None


class VideoJob(BaseModel):
    id: UUID
    status: str = Field(description="scheduled, running, cancelling, completed, failed or cancelled.")
    stage: str | None = Field(None, description="The stage running now (or that failed).")
    progress: float = Field(description="Share of the stages done, 0 to 1.")
    stages: list[StageProgress]
    question: str
    parameters: dict[str, Any]
    created: str | None = None
    error: JobError | None = None
    result: VideoResult | None = None
    files: VideoFiles = Field(default_factory=VideoFiles)


class BatchRowProgress(BaseModel):
    row: int | None = None
    id: str
    question: str
    status: str
    video: str | None = None
    thumbnail: str | None = None
    error: str | None = None


class BatchJob(BaseModel):
    id: UUID
    status: str
    message: str | None = None
    spreadsheet: str
    progress: float
    rows: list[BatchRowProgress]
    manifest: dict[str, str] = Field(default_factory=dict, description="URLs of the manifest, per format.")


# --- the app -----------------------------------------------------------------------------------


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    home = settings.home.resolve()
    # Only what the flows make for people: not the knowledge base, uploads or a stack's Prefect database.
    served = (settings.videos_dir.resolve(), settings.batches_dir.resolve())
    client_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
    app = FastAPI(
        title="ragreel",
        summary="Questions in, narrated videos grounded in your documents out.",
        version="0.1.0",
    )

    def presents_token(request: Request) -> bool:
        expected = settings.api_token.get_secret_value().encode()
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            return secrets.compare_digest(header[7:].encode(), expected)
        # A <video>, <track>, <img> or EventSource cannot send a header: the page's cookie stands in,
        # for reading only, so that no other page on this host can make jobs with it.
        if request.method in ("GET", "HEAD"):
            return secrets.compare_digest(unquote(request.cookies.get(TOKEN_COOKIE, "")).encode(), expected)
        return False

    @app.middleware("http")
    async def _guard(request: Request, call_next):
        # Before anything reads the body: the token, then the body's size.
        path = request.url.path
        public = path in PUBLIC_PATHS or path.startswith("/static/")
        if settings.api_token and not public and not presents_token(request):
            return JSONResponse(
                {"detail": "a bearer token is required: send 'Authorization: Bearer <RAGREEL_API_TOKEN>'"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length", "")
            if not length.isdigit():
                return JSONResponse(
                    {"detail": "send the body with a Content-Length (chunked uploads are not accepted)"},
                    status_code=411,
                )
            if int(length) > settings.api_max_upload_mb * 1024 * 1024:
                return JSONResponse(
                    {
                        "detail": f"the request is larger than {settings.api_max_upload_mb:g} MB (RAGREEL_API_MAX_UPLOAD_MB)"
                    },
                    status_code=413,
                )
        return await call_next(request)

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": exc.message, "stage": exc.stage, "hint": exc.hint}, status_code=422)

    @app.exception_handler(jobs.PrefectUnavailable)
    async def _unavailable(request: Request, exc: jobs.PrefectUnavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.message, "hint": exc.hint}, status_code=503, headers={"Retry-After": "10"}
        )

    # --- video jobs ----------------------------------------------------------------------------

    def video_parameters(body: VideoJobRequest) -> dict[str, Any]:
        from flows.generate import output_location
        from tasks.stage import short_hash

        request = VideoRequest.checked(
            settings.max_question_chars,
            question=body.question,
            language=body.language,
            top_k=body.top_k,
            voice=body.voice,
            aspect=body.aspect,
            title=body.title,
            script=body.script,
        )
        language = request.answer_language()
        script = request.script.model_dump(mode="json") if request.script else None
        # One folder per distinct job: the same job again is the same folder (and cache hits), while
        # another shape or voice of the same question does not overwrite it.
        shape = short_hash(request.aspect, request.voice, request.title, request.top_k, script, body.video)
        folder = f"{output_location(request.question, language, settings)}-{shape}"
        return {
            "question": request.question,
            "language": language,
            "top_k": request.top_k,
            "voice": request.voice,
            "aspect": request.aspect,
            "title": request.title,
            "script": script,
            "video": body.video,
            "output_dir": folder if is_url(folder) else str(Path(folder).resolve()),
        }

    def refuse_when_busy(deployment: str, client: str) -> None:
        deployment_uuid = jobs.deployment_id(deployment)
        active = jobs.active_count(deployment_uuid, jobs.client_tag(client))
        if active >= settings.api_max_active_jobs:
            raise HTTPException(
                429,
                f"{active} of your jobs are still queued or running (RAGREEL_API_MAX_ACTIVE_JOBS="
                f"{settings.api_max_active_jobs}); try again when one has finished",
                headers={"Retry-After": "30"},
            )

    def refuse_without_worker() -> None:
        health = jobs.pool_health(settings)
        if health["prefect"] != "up":
            raise jobs.PrefectUnavailable(
                "the Prefect server cannot be reached", hint="start it (make up) or set PREFECT_API_URL"
            )
        if not health["workers_online"]:
            raise jobs.PrefectUnavailable(
                f"no worker of the work pool {settings.work_pool!r} is online, so nothing would run the job",
                hint=f"start one: deployments/worker.sh (or make up); pool status: {health.get('pool_status')}",
            )

    def client_address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def create_video(body: VideoJobRequest, request: Request) -> JobCreated:
        parameters = video_parameters(body)
        refuse_without_worker()
        client = client_address(request)
        with client_locks[client]:  # counted and created together: parallel requests cannot overshoot
            refuse_when_busy(GENERATE_DEPLOYMENT, client)
            run_id = jobs.submit(GENERATE_DEPLOYMENT, parameters, [jobs.API_TAG, jobs.client_tag(client)])
        return JobCreated(
            id=run_id,
            status="scheduled",
            status_url=f"/v1/videos/{run_id}",
            events_url=f"/v1/videos/{run_id}/events",
        )

    @app.post("/v1/videos", status_code=202, response_model=JobCreated)
    async def post_video(body: VideoJobRequest, request: Request, response: Response) -> JobCreated:
        created = await to_thread.run_sync(create_video, body, request)
        response.headers["Location"] = created.status_url
        return created

    def file_url(path: str | None) -> str | None:
        """The API's own URL of a file under RAGREEL_HOME, or a presigned link to an object on the store."""
        if not path:
            return None
        if is_url(path):
            return share_link(path, settings)
        try:
            relative = Path(path).resolve().relative_to(home)
        except ValueError:
            return None
        return "/files/" + quote(relative.as_posix())

    def read_result(parameters: dict[str, Any]) -> VideoResult | None:
        """The run's result.json, if it is there, readable and this question's."""
        from flows.generate import output_location

        question = " ".join(str(parameters.get("question", "")).split())
        folder = parameters.get("output_dir")
        if not folder:  # a run started elsewhere (the Prefect UI): the flow's own default folder
            try:
                request = VideoRequest.checked(
                    settings.max_question_chars, question=question, language=parameters.get("language")
                )
                folder = output_location(request.question, request.answer_language(), settings)
            except InputError:
                return None
        if is_url(folder):  # with RAGREEL_STORE, the worker published it there
            text = outputs.read_text(f"{folder}/result.json", settings)
        else:
            text = jobs.read_json_file(Path(folder) / "result.json")
        try:
            result = VideoResult.model_validate_json(text) if text else None
        except ValueError:  # half-edited or from an older version: no result rather than an error
            return None
        return result if result and result.question == question else None

    def video_job(run: Any) -> VideoJob:
        status = jobs.STATUS.get(run.state.type.value, "scheduled") if run.state else "scheduled"
        names = list(STAGES if run.parameters.get("video", True) else STAGES[:2])
        reached = jobs.stage_states(run.id)
        stages = [StageProgress(name=name, status=reached.get(name, "pending")) for name in names]
        done = sum(1 for s in stages if s.status == "completed")
        current = next((s.name for s in stages if s.status in ("running", "failed")), None)
        job = VideoJob(
            id=run.id,
            status=status,
            stage=current if status not in ("completed",) else None,
            progress=1.0 if status == "completed" else round(done / len(stages), 3),
            stages=stages,
            question=str(run.parameters.get("question", "")),
            parameters={k: v for k, v in run.parameters.items() if k != "output_dir"},
            created=run.created.isoformat() if run.created else None,
        )
        if status == "failed":
            job.error = JobError(**jobs.failure(run.state, reached))
            job.stage = job.error.stage
        if status == "completed":
            job.result = read_result(run.parameters)
            if job.result:
                r = job.result
                job.files = VideoFiles(
                    video=file_url(r.mp4_path),
                    srt=file_url(r.srt_path),
                    vtt=file_url(r.vtt_path),
                    thumbnail=file_url(r.thumbnail_path),
                    result=file_url(
                        f"{r.output_dir}/result.json"
                        if is_url(r.output_dir)
                        else str(Path(r.output_dir) / "result.json")
                    ),
                )
        return job

    def find_run(run_id: UUID, deployment: str, kind: str) -> Any:
        run = jobs.flow_run(run_id, deployment)
        if run is None:
            raise HTTPException(404, f"no {kind} job {run_id}")
        return run

    def find_video(run_id: UUID) -> Any:
        return find_run(run_id, GENERATE_DEPLOYMENT, "video")

    @app.get("/v1/videos/{run_id}", response_model=VideoJob)
    async def get_video(run_id: UUID) -> VideoJob:
        return await to_thread.run_sync(lambda: video_job(find_video(run_id)))

    @app.get("/v1/videos", response_model=list[VideoJob])
    async def list_videos(limit: int = 20) -> list[VideoJob]:
        def recent() -> list[VideoJob]:
            return [video_job(run) for run in jobs.recent_runs(GENERATE_DEPLOYMENT, min(max(limit, 1), 100))]

        return await to_thread.run_sync(recent)

    @app.get("/v1/videos/{run_id}/events")
    async def video_events(run_id: UUID, request: Request) -> StreamingResponse:
        await to_thread.run_sync(find_video, run_id)  # 404 before the stream starts

        async def events():
            last, quiet = None, 0.0
            while not await request.is_disconnected():
                try:
                    job = await to_thread.run_sync(lambda: video_job(find_video(run_id)))
                except jobs.PrefectUnavailable:  # a restart of the server: keep the stream, try again
                    yield ": the Prefect server is not answering\n\n"
                    await asyncio.sleep(EVENT_POLL_S * 5)
                    continue
                except HTTPException:  # the run was deleted
                    yield f"event: end\ndata: {json.dumps({'status': 'gone'})}\n\n"
                    return
                data = job.model_dump_json()
                if data != last:
                    yield f"event: status\ndata: {data}\n\n"
                    last, quiet = data, 0.0
                elif quiet >= KEEPALIVE_S:
                    yield ": still working\n\n"
                    quiet = 0.0
                if job.status in jobs.FINAL:
                    yield f"event: end\ndata: {json.dumps({'status': job.status})}\n\n"
                    return
                await asyncio.sleep(EVENT_POLL_S)
                quiet += EVENT_POLL_S

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    @app.delete("/v1/videos/{run_id}", status_code=202, response_model=VideoJob)
    async def cancel_video(run_id: UUID) -> VideoJob:
        def cancel() -> VideoJob:
            run = find_video(run_id)
            if jobs.STATUS.get(run.state.type.value) not in jobs.FINAL:
                jobs.cancel(run_id, run.state.type.value)
            return video_job(find_video(run_id))

        return await to_thread.run_sync(cancel)

    # --- batches -------------------------------------------------------------------------------

    def create_batch(
        name: str, data: bytes, video: bool, concurrency: int | None, skip_bad_rows: bool, request: Request
    ) -> JobCreated:
        from tasks.batch import file_hash, read_spreadsheet

        suffix = Path(name).suffix.lower()
        if suffix not in (".csv", ".tsv", ".txt", ".xlsx", ".xlsm"):
            raise InputError(f"{name}: upload a .csv or .xlsx spreadsheet", stage="batch")
        with tempfile.TemporaryDirectory() as scratch:
            probe = Path(scratch) / f"upload{suffix}"
            probe.write_bytes(data)
            sheet = read_spreadsheet(probe, settings)  # whole-file problems raise InputError (422)
            stored = settings.home / "uploads" / file_hash(probe) / f"{_safe_stem(name)}{suffix}"
        rows = len(sheet.rows) + len({p.row for p in sheet.problems})
        if rows > settings.api_max_batch_rows:
            raise HTTPException(
                413,
                f"{rows} rows; a batch may have at most {settings.api_max_batch_rows} (RAGREEL_API_MAX_BATCH_ROWS)",
            )
        if sheet.problems and not skip_bad_rows:
            raise HTTPException(
                422,
                [{"row": p.row, "column": p.column, "msg": p.message, "id": p.id} for p in sheet.problems],
            )
        refuse_without_worker()
        if settings.store:  # where a worker on any host can read it
            spreadsheet = f"{settings.store}/{stored.relative_to(settings.home).as_posix()}"
            storage.write_bytes(spreadsheet, data, settings)
        else:
            stored.parent.mkdir(parents=True, exist_ok=True)
            write_bytes_atomic(stored, data)
            spreadsheet = str(stored.resolve())
        parameters = {"spreadsheet": spreadsheet, "video": video, "fan_out": True}
        if concurrency:
            parameters["concurrency"] = concurrency
        client = client_address(request)
        with client_locks[client]:
            refuse_when_busy(BATCH_DEPLOYMENT, client)
            run_id = jobs.submit(BATCH_DEPLOYMENT, parameters, [jobs.API_TAG, jobs.client_tag(client)])
        return JobCreated(id=run_id, status="scheduled", status_url=f"/v1/batches/{run_id}")

    @app.post("/v1/batches", status_code=202, response_model=JobCreated)
    async def post_batch(
        request: Request,
        response: Response,
        spreadsheet: Annotated[UploadFile, File(description="CSV or XLSX with a 'question' column.")],
        # Text, not bool: FastAPI reads a bool form field that is left out as False (an unticked
        # checkbox), and a sheet posted without the field is meant to become videos.
        video: Annotated[str, Form(description="false: answers only, for review.")] = "true",
        concurrency: Annotated[int | None, Form(ge=1, le=16, description="Rows at once.")] = None,
        skip_bad_rows: Annotated[bool, Form(description="Run the good rows even if some are bad.")] = False,
    ) -> JobCreated:
        limit = int(settings.api_max_upload_mb * 1024 * 1024)
        data = await spreadsheet.read(limit + 1)
        if len(data) > limit:
            raise HTTPException(413, f"the spreadsheet is larger than {settings.api_max_upload_mb:g} MB")
        try:
            wants_video = TypeAdapter(bool).validate_python(video)
        except ValidationError:
            raise HTTPException(422, f"video must be true or false, not {video[:20]!r}") from None
        created = await to_thread.run_sync(
            create_batch,
            spreadsheet.filename or "questions.csv",
            data,
            wants_video,
            concurrency,
            skip_bad_rows,
            request,
        )
        response.headers["Location"] = created.status_url
        return created

    def batch_manifests(run: Any) -> dict[str, str]:
        """The batch's manifests by kind: local paths, or their URLs on the store."""
        from tasks.batch import batch_location, file_hash, sheet_copy

        spreadsheet = str(run.parameters.get("spreadsheet", ""))
        try:
            location = batch_location(spreadsheet, file_hash(sheet_copy(spreadsheet, settings)), settings)
        except (OSError, InputError):
            raise HTTPException(410, f"the spreadsheet of batch {run.id} is gone") from None
        return {kind: f"{location}/manifest.{kind}" for kind in MANIFEST_TYPES}

    def batch_job(run: Any) -> BatchJob:
        manifests = batch_manifests(run)
        status = jobs.STATUS.get(run.state.type.value, "scheduled") if run.state else "scheduled"
        text = outputs.read_text(manifests["json"], settings)
        try:
            entries = json.loads(text) if text else []
        except ValueError:
            entries = []
        # The same sheet always has the same folder: a manifest from before this run started is an
        # earlier run's, so its rows are shown as still to do.
        started = run.start_time.timestamp() if run.start_time else None
        written = outputs.modified(manifests["json"], settings) if entries else None
        if entries and (started is None or written is None or written < started):
            entries = [
                {**entry, "status": "pending", "video": None, "thumbnail": None, "error": None}
                for entry in entries
            ]
            text = None
        rows = [
            BatchRowProgress(
                row=entry.get("row"),
                id=str(entry.get("id", "")),
                question=str(entry.get("question", "")),
                status=str(entry.get("status", "pending")),
                video=file_url(entry.get("video")),
                thumbnail=file_url(entry.get("thumbnail")),
                error=entry.get("error") or None,
            )
            for entry in entries
        ]
        finished = sum(1 for r in rows if r.status not in ("pending", "running"))
        job = BatchJob(
            id=run.id,
            status=status,
            message=run.state.message if run.state else None,
            spreadsheet=Path(run.parameters.get("spreadsheet", "")).name,
            progress=1.0 if status == "completed" else round(finished / len(rows), 3) if rows else 0.0,
            rows=rows,
        )
        if status in jobs.FINAL and text:
            job.manifest = {kind: f"/v1/batches/{run.id}/manifest.{kind}" for kind in MANIFEST_TYPES}
        return job

    def find_batch(run_id: UUID) -> Any:
        return find_run(run_id, BATCH_DEPLOYMENT, "batch")

    @app.get("/v1/batches/{run_id}", response_model=BatchJob)
    async def get_batch(run_id: UUID) -> BatchJob:
        return await to_thread.run_sync(lambda: batch_job(find_batch(run_id)))

    @app.get("/v1/batches/{run_id}/manifest.{kind}")
    async def get_manifest(run_id: UUID, kind: Literal["csv", "json", "xlsx"]) -> Response:
        def manifest() -> bytes:
            from tasks.batch import write_manifest_xlsx

            source = batch_manifests(find_batch(run_id))["json" if kind == "xlsx" else kind]
            data = outputs.read_bytes(source, settings)
            if data is None:
                raise HTTPException(404, f"batch {run_id} has no manifest yet")
            if kind == "xlsx":  # made from the JSON, the whole manifest, when asked for
                with tempfile.TemporaryDirectory() as scratch:
                    json_copy = Path(scratch) / "manifest.json"
                    json_copy.write_bytes(data)
                    data = write_manifest_xlsx(json_copy).read_bytes()
            return data

        data = await to_thread.run_sync(manifest)
        disposition = f'attachment; filename="manifest.{kind}"'
        return Response(data, media_type=MANIFEST_TYPES[kind], headers={"Content-Disposition": disposition})

    # --- files, health, page -------------------------------------------------------------------

    @app.get("/files/{path:path}")
    async def get_file(path: str) -> FileResponse:
        target = (home / path).resolve()
        if not any(target.is_relative_to(folder) for folder in served) or not target.is_file():
            raise HTTPException(404, "no such file")
        return FileResponse(target)  # content type from the name; Range requests answered with 206

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        report = await to_thread.run_sync(jobs.pool_health, settings)
        ok = report["prefect"] == "up" and report["workers_online"] > 0
        return JSONResponse({"api": "up", **report, "ok": ok}, status_code=200 if ok else 503)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _safe_stem(name: str) -> str:
    from pathvalidate import sanitize_filename

    return sanitize_filename(Path(name).stem, replacement_text="_")[:60] or "questions"
