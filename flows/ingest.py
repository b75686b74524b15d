"""Ingest folders of Markdown, text, HTML and PDF into the knowledge base.

python -m flows.ingest data/kb            # add, update, remove what changed
python -m flows.ingest data/kb --rebuild  # start over
python -m flows.ingest --status           # documents, chunks, version
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact
from pydantic import BaseModel, Field

from ragreel.cli import run_command
from ragreel.errors import InputError, KnowledgeBaseError
from ragreel.kb.embedding import get_embedder
from ragreel.kb.store import KnowledgeBase
from ragreel.prefect_server import temporary_prefect_server
from ragreel.settings import get_settings
from tasks.ingest import FileReport, IngestPlan, ingest_file_task, plan_ingest


class IngestReport(BaseModel):
    roots: list[str]
    files: list[FileReport] = Field(default_factory=list)
    rebuilt: bool = False
    version: str = ""
    documents: int = 0
    chunks: int = 0
    embedded: int = Field(0, description="Chunks embedded by this run.")
    embed_seconds: float = 0.0
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for f in self.files if f.status == status)

    @property
    def chunks_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds else 0.0

    def summary_line(self) -> str:
        return (
            f"{self.count('added')} added, {self.count('updated')} updated, {self.count('removed')} removed, "
            f"{self.count('unchanged')} unchanged, {self.count('skipped')} skipped; "
            f"{self.embedded} chunks embedded ({self.chunks_per_second:.1f} chunks/s); "
            f"knowledge base {self.version}: {self.documents} documents, {self.chunks} chunks"
        )

    def to_markdown(self) -> str:
        lines = ["# Ingest summary", "", self.summary_line(), ""]
        changed = [f for f in self.files if f.status != "unchanged"]
        if changed:
            lines += ["| file | status | chunks | note |", "|---|---|---|---|"]
            lines += [f"| {f.source} | {f.status} | {f.chunks} | {f.reason} |" for f in changed]
        return "\n".join(lines)


def _check_paths(paths: list[str]) -> list[Path]:
    if not paths:
        raise InputError("no folder or file given", stage="ingest", hint="python -m flows.ingest data/kb")
    missing = [p for p in paths if not Path(p).exists()]
    if missing:
        raise InputError(f"not found: {', '.join(missing)}", stage="ingest")
    return [Path(p) for p in paths]


def _check_writable(folder: Path) -> None:
    """The knowledge base folder, or the nearest folder above it that exists, must be writable."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not os.access(existing, os.W_OK):
        raise InputError(
            f"cannot write the knowledge base at {folder}: {existing} is not writable",
            stage="ingest",
            hint="set RAGREEL_HOME to a folder you can write to",
        )


@flow(name="ingest-knowledge-base", log_prints=True)
def ingest_knowledge_base(paths: list[str], rebuild: bool = False) -> IngestReport:
    """Bring the knowledge base in line with the files under ``paths``."""
    logger = get_run_logger()
    started = time.perf_counter()
    settings = get_settings()
    roots = _check_paths(paths)
    kb = KnowledgeBase(settings)
    _check_writable(kb.path)
    report = IngestReport(roots=[str(r.resolve()) for r in roots])

    stored_meta = kb.stored_meta() or {}
    changed_settings = {k: v for k, v in kb.pipeline_meta().items() if stored_meta.get(k) != v}
    if "embedding_model" in changed_settings and kb.exists() and not rebuild:
        # Re-embedding everything can take a long time: do it only when asked, never by accident.
        raise KnowledgeBaseError(
            f"the knowledge base at {kb.uri} was built with the embedding model "
            f"{stored_meta.get('embedding_model')!r} ({stored_meta.get('dimension', '?')}-d vectors), "
            f"but RAGREEL_EMBEDDING_MODEL is {settings.embedding_model!r}",
            stage="ingest",
            hint="rebuild it with that model: python -m flows.ingest PATH --rebuild "
            "(or set RAGREEL_EMBEDDING_MODEL back)",
        )
    if rebuild or not kb.exists() or changed_settings:
        why = (
            "asked to" if rebuild else ("new" if not kb.exists() else f"settings changed: {changed_settings}")
        )
        logger.info("Creating the knowledge base at %s (%s)", kb.uri, why)
        kb.create(get_embedder(settings.embedding_model).dimension)
        report.rebuilt = True

    stored = kb.documents()
    plans: list[IngestPlan] = [plan_ingest(root, stored) for root in roots]
    todo = sum(len(p.new) + len(p.changed) for p in plans)
    total = todo + sum(len(p.unchanged) + len(p.removed) for p in plans)
    logger.info(
        "%d files to read, %d unchanged, %d removed",
        todo,
        sum(len(p.unchanged) for p in plans),
        sum(len(p.removed) for p in plans),
    )
    progress = create_progress_artifact(0.0, key="ingest-progress", description="Files ingested")
    done = 0

    for plan in plans:
        kb.remove_documents(plan.root, plan.removed)
        report.files += [FileReport(root=plan.root, source=s, status="removed") for s in plan.removed]
        report.files += [FileReport(root=plan.root, source=s, status="unchanged") for s in plan.unchanged]
        done += len(plan.removed) + len(plan.unchanged)
        work = [(s, "added") for s in plan.new] + [(s, "updated") for s in plan.changed]
        for source, status in work:
            state = ingest_file_task(plan.root, source, status, return_state=True)
            if state.is_completed():
                file_report = state.result()
            else:  # one bad file never sinks the ingest
                error = state.result(raise_on_failure=False)
                file_report = FileReport(root=plan.root, source=source, status="skipped", reason=str(error))
            report.files.append(file_report)
            done += 1
            if file_report.status == "skipped":
                logger.warning("[%d/%d] %s skipped: %s", done, total, source, file_report.reason)
            else:
                logger.info(
                    "[%d/%d] %s %s: %d chunks", done, total, source, file_report.status, file_report.chunks
                )
            update_progress_artifact(progress, 100.0 * done / max(total, 1))

    if todo or any(p.removed for p in plans):
        kb.optimize()
    kb.record_contents()  # what later runs key their caches on, without opening the table
    update_progress_artifact(progress, 100.0)
    status = kb.status()
    report.version, report.documents, report.chunks = status.version, status.documents, status.chunks
    report.embedded = sum(f.embedded for f in report.files)
    report.embed_seconds = round(sum(f.embed_seconds for f in report.files), 3)
    report.seconds = round(time.perf_counter() - started, 2)
    logger.info("Ingest done in %.1fs: %s", report.seconds, report.summary_line())
    create_markdown_artifact(report.to_markdown(), key="ingest-summary", description="Ingest summary")
    return report


def print_status() -> int:
    settings = get_settings()
    status = KnowledgeBase(settings).status()
    print(json.dumps(status.__dict__, indent=2, ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.ingest",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="*", help="folders or files to ingest (Markdown, text, HTML, PDF)")
    parser.add_argument("--rebuild", action="store_true", help="drop the knowledge base and ingest anew")
    parser.add_argument("--status", action="store_true", help="show documents, chunks and version, then exit")
    parser.add_argument("--json", action="store_true", help="print the ingest report as JSON")
    args = parser.parse_args(argv)
    return run_command(lambda: _ingest(args), "ingest")


def _ingest(args: argparse.Namespace) -> int:
    if args.status:
        return print_status()
    # What can be checked is refused before a flow (and a temporary Prefect server) starts.
    _check_paths(args.paths)
    _check_writable(KnowledgeBase(get_settings()).path)
    with temporary_prefect_server():
        report = ingest_knowledge_base(args.paths, rebuild=args.rebuild)
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        print(report.summary_line())
        for f in report.files:
            if f.status == "skipped":
                print(f"  skipped {f.source}: {f.reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
