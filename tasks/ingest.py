"""Ingestion: plan what changed under a folder, then read, chunk, embed and store each file.

Files are compared by the hash of their bytes, so unchanged files cost no embedding work;
a changed file's chunks are replaced in one commit; files gone from an ingested folder lose
their chunks.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Literal

from prefect import task
from pydantic import BaseModel, Field

from ragreel.kb.chunking import chunk_document
from ragreel.kb.embedding import get_embedder
from ragreel.kb.loaders import UnreadableFile, is_supported, load_document
from ragreel.kb.pictures import keep_pdf, keep_picture
from ragreel.kb.store import KnowledgeBase, search_form
from ragreel.schemas import Picture
from ragreel.settings import Settings, get_settings
from tasks.stage import one_line

log = logging.getLogger(__name__)

FileStatus = Literal["added", "updated", "unchanged", "removed", "skipped"]


class FileReport(BaseModel):
    root: str
    source: str
    status: FileStatus
    chunks: int = Field(0, description="Chunks now stored for the file.")
    embedded: int = Field(0, description="Chunks embedded by this run (0 for unchanged files).")
    reason: str = ""
    embed_seconds: float = Field(0.0, description="Time spent embedding (model loading excluded).")


class IngestPlan(BaseModel):
    root: str
    new: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    hashes: dict[str, str] = Field(default_factory=dict)


def file_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def scan_folder(root: Path) -> list[Path]:
    """Supported files under ``root`` (or ``root`` itself), skipping hidden folders and files."""
    if root.is_file():
        return [root] if is_supported(root) else []
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file()
        and is_supported(path)
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def root_and_files(path: Path) -> tuple[Path, list[Path]]:
    """The root that sources are relative to, and the files to look at."""
    path = path.resolve()
    if path.is_file():
        return path.parent, [path]
    return path, scan_folder(path)


def plan_ingest(path: Path, stored: dict[tuple[str, str], str]) -> IngestPlan:
    """Sort the files under ``path`` into new, changed, unchanged and removed."""
    root, files = root_and_files(path)
    plan = IngestPlan(root=str(root))
    present = set()
    for file in files:
        source = file.relative_to(root).as_posix()
        present.add(source)
        digest = file_hash(file.read_bytes())
        plan.hashes[source] = digest
        known = stored.get((plan.root, source))
        if known is None:
            plan.new.append(source)
        elif known != digest:
            plan.changed.append(source)
        else:
            plan.unchanged.append(source)
    if path.resolve().is_dir():  # a single file given alone says nothing about its neighbours
        plan.removed = sorted(s for (r, s) in stored if r == plan.root and s not in present)
    return plan


def ingest_file(
    root: str, source: str, status: Literal["added", "updated"], settings: Settings | None = None
) -> FileReport:
    """Read, chunk, embed and store one file; unreadable files come back as ``skipped``."""
    settings = settings or get_settings()
    path = Path(root) / source
    try:
        megabytes = path.stat().st_size / 1e6
        if megabytes > settings.max_document_mb:
            reason = f"{megabytes:.1f} MB, over the {settings.max_document_mb:g} MB limit (RAGREEL_MAX_DOCUMENT_MB)"
            return FileReport(root=root, source=source, status="skipped", reason=reason)
        data = path.read_bytes()
        document = load_document(path, data)
    except UnreadableFile as exc:
        return FileReport(root=root, source=source, status="skipped", reason=str(exc))
    except OSError as exc:
        return FileReport(root=root, source=source, status="skipped", reason=f"cannot read ({exc.strerror})")
    chunks = chunk_document(document, settings)
    digest = file_hash(data)
    embedder = get_embedder(settings.embedding_model)  # loading once per process is not embedding work
    embedder.load_bulk()
    started = time.perf_counter()
    vectors = embedder.documents(
        [
            f"{document.title}. {c.heading}. {c.text}" if c.heading else f"{document.title}. {c.text}"
            for c in chunks
        ],
        settings.embed_batch_size,
        bulk=True,
    )
    embed_seconds = time.perf_counter() - started  # keeping pictures and PDFs below is not embedding
    doc_id = hashlib.sha1(f"{root}\0{source}".encode()).hexdigest()[:12]
    kb = KnowledgeBase(settings)
    pdf = keep_pdf(kb.path, data, digest) if path.suffix.lower() == ".pdf" else ""
    if pdf:
        kb.share_kept(pdf)
    kept: dict[int, Picture | None] = {}  # a PDF page's pictures are shared by its chunks

    def pictures_of(chunk) -> str:
        for found in chunk.pictures:
            if id(found) not in kept:
                kept[id(found)] = keep_picture(kb.path, Path(root), found)
                if kept[id(found)]:
                    kb.share_kept(kept[id(found)].file)
        return json.dumps(
            [kept[id(f)].model_dump() for f in chunk.pictures if kept[id(f)]], ensure_ascii=False
        )

    rows = [
        {
            "chunk_id": f"{doc_id}-{digest[:8]}-{chunk.position:04d}",
            "root": root,
            "source": source,
            "title": document.title,
            "heading": chunk.heading,
            "text": chunk.text,
            "search_text": search_form(f"{document.title}\n{chunk.heading}\n{chunk.text}"),
            "language": chunk.language,
            "content_hash": digest,
            "position": chunk.position,
            "page": chunk.page,
            "pdf": pdf,
            "pictures": pictures_of(chunk),
            "vector": vector,
        }
        for chunk, vector in zip(chunks, vectors, strict=True)
    ]
    kb.replace_document(root, source, rows)
    return FileReport(
        root=root,
        source=source,
        status=status,
        chunks=len(rows),
        embedded=len(rows),
        embed_seconds=round(embed_seconds, 3),
    )


def _ingest_run_name() -> str:
    from prefect.runtime import task_run

    return f"ingest {one_line(task_run.parameters.get('source', ''), 80)}"


# The run name is a function, not a template: a file named "b {name}.md" is just a name.
@task(name="ingest-file", task_run_name=_ingest_run_name, retries=1, retry_delay_seconds=2)
def ingest_file_task(root: str, source: str, status: Literal["added", "updated"]) -> FileReport:
    return ingest_file(root, source, status)
