"""A spreadsheet of questions in, a folder of videos and a manifest out.

    python -m flows.batch data/questions.csv
    python -m flows.batch questions.xlsx --no-video     # a review manifest of answers only
    python -m flows.batch questions.csv --json          # the summary as JSON on stdout

Every good row runs the generate-video flow (as a subflow here, or, with ``--fan-out``, as a
run of the generate deployment that any worker of its pool may pick up). Bad rows are
reported by row and column and skipped; one failing row never stops the others; the batch
ends Failed when any row failed, after every row has run. Rerunning the same spreadsheet
reuses every finished row from cache.
"""

from __future__ import annotations

import argparse
import contextvars
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.states import Cancelled, Completed, Failed, State
from pydantic import BaseModel, Field

from flows.generate import generate_video
from ragreel.cli import run_command
from ragreel.errors import RagreelError
from ragreel.flow_runs import cancelled_before_start
from ragreel.outputs import publish, read_text, scratch_folder, share_link
from ragreel.prefect_server import temporary_prefect_server
from ragreel.schemas import GENERATE_DEPLOYMENT, Scene, Script, VideoResult
from ragreel.settings import get_settings
from ragreel.storage import is_url
from tasks.batch import (
    BatchRow,
    RowProblem,
    batch_location,
    read_spreadsheet,
    safe_names,
    write_manifest,
)
from tasks.stage import one_line

INTERRUPTED = "interrupted before it finished; rerun the batch to finish it"


class RowOutcome(BaseModel):
    row: BatchRow
    status: str  # succeeded | failed | cancelled
    result: VideoResult | None = None
    failed_stage: str | None = None
    error: str | None = None
    flow_run_id: str | None = None


class BatchSummary(BaseModel):
    spreadsheet: str
    folder: str
    manifest_csv: str
    manifest_json: str
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = Field(0, description="Rows an interrupt stopped before they finished.")
    problems: list[str] = Field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False

    def line(self) -> str:
        line = f"{self.succeeded} succeeded, {self.failed} failed, {self.skipped} skipped"
        return line + (f", {self.cancelled} cancelled" if self.cancelled else "")


# --- one row ------------------------------------------------------------------------------------


def _row_parameters(row: BatchRow, output_dir: str, video: bool) -> dict:
    return {
        "question": row.question,
        "language": row.language,
        "top_k": row.top_k,
        "voice": row.voice or "auto",
        "aspect": row.aspect,
        "title": row.title,
        "script": row.script.model_dump(mode="json") if row.script else None,
        "output_dir": str(output_dir),
        "video": video,
    }


def _failure(row: BatchRow, exc: BaseException | None, flow_run_id: str | None = None) -> RowOutcome:
    stage = exc.stage if isinstance(exc, RagreelError) else "generate-video"
    message = exc.message if isinstance(exc, RagreelError) else f"{type(exc).__name__}: {exc}"
    return RowOutcome(row=row, status="failed", failed_stage=stage, error=message, flow_run_id=flow_run_id)


def run_row_here(row: BatchRow, output_dir: str, video: bool) -> RowOutcome:
    state = generate_video(**_row_parameters(row, output_dir, video), return_state=True)
    if state.is_completed():
        return RowOutcome(row=row, status="succeeded", result=state.result())
    return _failure(row, state.result(raise_on_failure=False))


def run_row_on_worker(row: BatchRow, output_dir: str, video: bool, deployment: str) -> RowOutcome:
    """Run the row as a run of the generate deployment and wait for it: any worker may take it."""
    from prefect.deployments import run_deployment

    flow_run = run_deployment(
        deployment,
        parameters=_row_parameters(row, output_dir, video),
        timeout=None,
        poll_interval=2,
        flow_run_name=f"{one_line(row.id)}: {one_line(row.question, 50)}",
    )
    run_id = str(flow_run.id)
    if flow_run.state is None or not flow_run.state.is_completed():
        error = flow_run.state.result(raise_on_failure=False) if flow_run.state else None
        if not isinstance(error, BaseException):
            error = RuntimeError(flow_run.state.message if flow_run.state else "no state")
        return _failure(row, error, run_id)
    try:
        result = VideoResult.model_validate(flow_run.state.result())
    except Exception:  # noqa: BLE001 - results stored where this host can't read them
        text = read_text(f"{output_dir}/result.json", get_settings())  # a shared folder, or the store
        if text is None:
            return _failure(row, RuntimeError(f"the run left no result.json in {output_dir}"), run_id)
        result = VideoResult.model_validate_json(text)
    return RowOutcome(row=row, status="succeeded", result=result, flow_run_id=run_id)


# --- manifest ----------------------------------------------------------------------------------


def manifest_entry(outcome: RowOutcome) -> dict:
    row, result = outcome.row, outcome.result
    entry = {
        "row": row.row,
        "id": row.id,
        "question": row.question,
        "status": outcome.status,
        "language": result.language if result else row.language,
        "answer": result.answer if result else "",
        "sources": "; ".join(f"[{c.number}] {c.title} ({c.source})" for c in result.sources)
        if result
        else "",
        # The reviewable script: edit a narration or key point, feed the manifest back as the sheet,
        # and that script is rendered without asking the model again.
        "script": script_cell(result.scenes) if result and result.scenes else "",
        "checks": "; ".join(result.checks) if result else "",
        "video": result.mp4_path or "" if result else "",
        "subtitles": result.srt_path or "" if result else "",
        "thumbnail": result.thumbnail_path or "" if result else "",
        "narration_seconds": result.narration_seconds if result else None,
        "video_seconds": result.video_seconds if result else None,
        "llm": result.llm if result else "",
        "voice": (result.voice or "") if result else "",
        "from_cache": ", ".join(result.cached_stages) if result else "",
        "failed_stage": outcome.failed_stage or "",
        "error": outcome.error or "",
    }
    return {**entry, **row.extra}


def script_cell(scenes: list[Scene]) -> str:
    """A row's scenes as one JSON cell, readable in a spreadsheet (Chinese as characters)."""
    return json.dumps(Script(scenes=scenes).model_dump(mode="json"), ensure_ascii=False)


def _skipped_entry(problem_rows: dict[int, list[RowProblem]], number: int) -> dict:
    problems = problem_rows[number]
    return {
        "row": number,
        "id": problems[0].id,
        "question": problems[0].question,
        "status": "skipped",
        "error": "; ".join(f"{p.column}: {p.message}" for p in problems),
    }


class Manifest:
    """The batch's manifest, kept current on disk (and on the store, with one): every row, pending
    until its outcome is recorded."""

    def __init__(self, location: str, rows: list[BatchRow], problems: list[RowProblem]):
        self.location = location
        self.folder = scratch_folder(location, get_settings())
        self.rows = rows
        self.outcomes: dict[int, RowOutcome] = {}
        self._problem_rows: dict[int, list[RowProblem]] = {}
        for problem in problems:
            self._problem_rows.setdefault(problem.row, []).append(problem)
        self._lock = threading.Lock()

    def record(self, outcome: RowOutcome) -> None:
        with self._lock:
            self.outcomes[outcome.row.row] = outcome
            self._write_locked()

    def entries(self) -> list[dict]:
        pending = [RowOutcome(row=row, status="pending") for row in self.rows if row.row not in self.outcomes]
        outcomes = [*self.outcomes.values(), *pending]
        skipped = [_skipped_entry(self._problem_rows, number) for number in self._problem_rows]
        return sorted([manifest_entry(o) for o in outcomes] + skipped, key=lambda e: e["row"])

    def counts(self) -> dict[str, int]:
        statuses = [o.status for o in self.outcomes.values()]
        return {status: statuses.count(status) for status in ("succeeded", "failed", "cancelled")}

    def write(self) -> tuple[str, str]:
        with self._lock:
            return self._write_locked()

    def _write_locked(self) -> tuple[str, str]:
        """Where the manifest is now: its local paths, or its URLs once published whole."""
        settings = get_settings()
        written = write_manifest(self.entries(), self.folder)
        csv_at, json_at = (publish(path, self.location, settings) for path in written)
        return csv_at, json_at


def _summary_markdown(summary: BatchSummary, entries: list[dict]) -> str:
    lines = [
        f"# Batch {Path(summary.spreadsheet).name}",
        "",
        f"**{summary.line()}** in {summary.seconds:.0f}s",
        "",
        f"Manifest: `{summary.manifest_csv}`",
        "",
    ]
    if summary.problems:
        lines += ["## Rows skipped", ""] + [f"- {p}" for p in summary.problems] + [""]
    failed = [e for e in entries if e["status"] == "failed"]
    if failed:
        lines += ["## Rows failed", ""] + [
            f"- {e['id']} (row {e['row']}): [{e['failed_stage']}] {e['error']}" for e in failed
        ]
    return "\n".join(lines)


# --- the flow ------------------------------------------------------------------------------------


def _batch_run_name() -> str:
    from prefect.runtime import flow_run

    return f"batch: {one_line(flow_run.parameters.get('spreadsheet', ''), 80)}"


@flow(name="batch-videos", flow_run_name=_batch_run_name)
def batch_videos(
    spreadsheet: str = "data/questions.csv",
    video: bool = True,
    fan_out: bool = False,
    deployment: str = GENERATE_DEPLOYMENT,
    concurrency: int | None = None,
    sheet_name: str | None = None,
) -> BatchSummary | State:
    """Turn every good row of ``spreadsheet`` (CSV or .xlsx) into a video and write a manifest.

    ``fan_out`` runs rows as runs of ``deployment`` (workers on several hosts share them)
    instead of subflows here; ``concurrency`` rows run at once (default RAGREEL_BATCH_CONCURRENCY);
    ``sheet_name`` picks a sheet of a workbook (default: the first).
    """
    if cancelled_before_start():
        return Cancelled(message="Cancelled before its process started: nothing was run.")
    logger = get_run_logger()
    started = time.perf_counter()
    settings = get_settings()
    sheet = read_spreadsheet(spreadsheet, settings, sheet=sheet_name)
    for note in sheet.notes:
        logger.warning(note)
    location = batch_location(spreadsheet, sheet.content_hash, settings)
    names = safe_names(sheet.rows)
    for problem in sheet.problems:
        logger.warning("Skipping %s", problem)
    logger.info(
        "%d rows to run, %d skipped; outputs in %s",
        len(sheet.rows),
        len({p.row for p in sheet.problems}),
        location,
    )

    progress = create_progress_artifact(0.0, description=f"Rows done of {len(sheet.rows)}")
    manifest = Manifest(location, sheet.rows, sheet.problems)
    manifest.write()  # every row listed as pending from the start
    workers = concurrency or settings.batch_concurrency
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="batch-row")
    futures = {}
    for row in sheet.rows:
        output_dir = f"{location}/videos/{names[row.id]}"
        if fan_out:
            call = (run_row_on_worker, row, output_dir, video, deployment)
        else:
            call = (run_row_here, row, output_dir, video)
        # Each thread runs in a copy of this flow's context, so rows show up as its subflows.
        futures[pool.submit(contextvars.copy_context().run, *call)] = row

    def finish(future) -> None:
        row = futures[future]
        try:
            outcome = future.result()
        except Exception as exc:  # noqa: BLE001 - a row's failure is recorded, never raised
            outcome = _failure(row, exc)
        manifest.record(outcome)  # written as each row finishes: an interrupted batch keeps its rows
        done = len(manifest.outcomes)
        update_progress_artifact(progress, 100.0 * done / max(len(sheet.rows), 1))
        if outcome.status == "succeeded":
            where = outcome.result.mp4_path or "answer only"
            logger.info("[%d/%d] %s done: %s", done, len(sheet.rows), row.id, where)
        else:
            logger.error(
                "[%d/%d] %s failed in %s: %s",
                done,
                len(sheet.rows),
                row.id,
                outcome.failed_stage,
                outcome.error,
            )

    interrupted = False
    try:
        for future in as_completed(futures):
            finish(future)
    except KeyboardInterrupt:
        interrupted = True
        cancelled = [futures[f] for f in futures if f.cancel()]
        running = [f for f in futures if not f.done()]
        for row in cancelled:
            manifest.record(RowOutcome(row=row, status="cancelled", error=INTERRUPTED))
        logger.warning(
            "Interrupted: %d queued rows cancelled; waiting for the %d running (Ctrl-C again to "
            "stop at once; a rerun finishes the rest)",
            len(cancelled),
            len(running),
        )
        try:
            for future in as_completed(running):
                finish(future)
        except KeyboardInterrupt:
            for future in running:
                if not future.done():
                    manifest.record(RowOutcome(row=futures[future], status="cancelled", error=INTERRUPTED))
    finally:
        pool.shutdown(wait=False, cancel_futures=True)

    entries = manifest.entries()
    manifest_csv, manifest_json = manifest.write()
    counts = manifest.counts()
    summary = BatchSummary(
        spreadsheet=str(spreadsheet),
        folder=location,
        manifest_csv=str(manifest_csv),
        manifest_json=str(manifest_json),
        succeeded=counts["succeeded"],
        failed=counts["failed"],
        cancelled=counts["cancelled"],
        skipped=len({p.row for p in sheet.problems}),
        problems=[str(p) for p in sheet.problems],
        seconds=round(time.perf_counter() - started, 2),
        interrupted=interrupted,
    )
    update_progress_artifact(progress, 100.0)
    create_table_artifact(entries, key="batch-manifest", description=f"Manifest of {Path(spreadsheet).name}")
    create_markdown_artifact(
        _summary_markdown(summary, entries), key="batch-summary", description=summary.line()
    )
    logger.info("Batch done in %.0fs: %s. Manifest: %s", summary.seconds, summary.line(), manifest_csv)
    if interrupted:
        return Cancelled(message=f"interrupted: {summary.line()}; see {manifest_csv}", data=summary)
    if summary.failed:
        return Failed(message=f"{summary.line()}; see {manifest_csv}", data=summary)
    return Completed(message=summary.line(), data=summary)


# --- command line -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.batch",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "spreadsheet",
        help="CSV (comma, semicolon or tab; any common encoding) or .xlsx, "
        "with a 'question' column; optional id, language, voice, title, "
        "top_k, aspect",
    )
    parser.add_argument("--no-video", action="store_true", help="answers and sources only: a review manifest")
    parser.add_argument(
        "--fan-out",
        action="store_true",
        help=f"run rows as runs of the {GENERATE_DEPLOYMENT} deployment (needs workers)",
    )
    parser.add_argument("--concurrency", type=int, help="rows at once (default RAGREEL_BATCH_CONCURRENCY)")
    parser.add_argument("--sheet", help="which sheet of an .xlsx workbook to read (default: the first)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON, nothing else")
    args = parser.parse_args(argv)
    return run_command(lambda: _batch(args), "batch")


def _batch(args: argparse.Namespace) -> int:
    # A file that cannot be read is refused before a flow (and a temporary Prefect server) starts.
    sheet = read_spreadsheet(args.spreadsheet, sheet=args.sheet)
    for note in sheet.notes:
        print(f"note: {note}", file=sys.stderr)
    with temporary_prefect_server():
        state = batch_videos(
            args.spreadsheet,
            video=not args.no_video,
            fan_out=args.fan_out,
            concurrency=args.concurrency,
            sheet_name=args.sheet,
            return_state=True,
        )
    summary = state.result(raise_on_failure=False)
    if not isinstance(summary, BatchSummary):
        raise summary if isinstance(summary, BaseException) else RuntimeError(state.message)
    if args.json:
        print(json.dumps(summary.model_dump(), ensure_ascii=False, indent=2))
    else:
        manifest = summary.manifest_csv
        settings = get_settings()
        print(
            f"\n{summary.line()}\nManifest: {share_link(manifest, settings) if is_url(manifest) else manifest}"
        )
        for problem in summary.problems:
            print(f"  skipped {problem}")
    if summary.interrupted:
        if any(t.name.startswith("batch-row") and t.is_alive() for t in threading.enumerate()):
            # Rows abandoned by a second Ctrl-C: their outputs appear atomically or not at all, so
            # leaving now loses nothing, and waiting for them is what the user asked not to do.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(130)
        return 130
    return 0 if state.is_completed() else 1


if __name__ == "__main__":
    sys.exit(main())
