"""The LanceDB table of chunks: one row per chunk, a vector column and a full-text index.

A :class:`KnowledgeBase` is opened from settings wherever it is needed; it is never passed
into a Prefect task (tasks take the knowledge-base *version*, a string, instead). It lives in
the local folder ``RAGREEL_HOME/kb``, or, with RAGREEL_STORE, at ``<store>/kb`` on an object
store that workers on several hosts share: the table, its metadata and the kept pictures and PDFs
are all there, and the local folder only holds copies of the pictures and PDFs a host has used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ragreel import storage
from ragreel.errors import KnowledgeBaseError
from ragreel.kb.chunking import chunking_signature
from ragreel.kb.loaders import LOADERS_VERSION
from ragreel.kb.pictures import DOCUMENTS_DIR, PICTURES_DIR, remove_unreferenced
from ragreel.schemas import Passage, Picture
from ragreel.settings import Settings
from ragreel.text import convert_chinese

log = logging.getLogger(__name__)

META_FILE = "kb.json"
# The metadata entry where ingest records a hash of the documents the table holds (see version()).
CONTENTS_KEY = "contents"
# ... and the languages its chunks are written in (what cross-lingual search translates questions into).
LANGUAGES_KEY = "languages"
# The table's columns; a knowledge base written with other ones is rebuilt by the next ingest.
TABLE_LAYOUT = "chunks-v2-pictures"
SearchMode = Literal["hybrid", "vector", "fts"]
INGEST_HINT = "run: python -m flows.ingest data/kb  (or your own folder)"


# LanceDB searches a table flat until it has a vector index; from this many chunks, optimize() makes one.
VECTOR_INDEX_MIN_ROWS = 50_000
# What kept pictures and PDFs are called (hash-named, see ragreel.kb.pictures): nothing else is fetched
# from the store into the local folder.
KEPT_FILE = re.compile(rf"({PICTURES_DIR}|{DOCUMENTS_DIR})/[0-9a-f]{{16,64}}\.(png|jpg|pdf)")

# (folder or URL, hash of the store's configuration) -> LanceDB connection
_connections: dict[tuple[str, str], Any] = {}


def _connection(uri: str, settings: Settings):
    """One LanceDB connection per folder or URL and process: its cache keeps the indices a search has
    read (a fresh connection reads the vector index again, tens of ms at 100,000 chunks). Tables are
    still opened afresh from it, so they are never a stale version. The key holds a hash of the store's
    credentials, not the credentials: changed ones get a new connection."""
    remote = uri.startswith("s3://")
    key = (uri, storage.fingerprint(settings) if remote else "")
    if key not in _connections:
        # lance warns on every hybrid query about a future change of projected columns
        os.environ.setdefault("LANCEDB_LOG", "error")
        import lancedb

        options = storage.lancedb_storage_options(settings) if remote else None
        _connections[key] = lancedb.connect(uri, storage_options=options)
    return _connections[key]


def _all_rows(table, columns: list[str]) -> list[dict]:
    """``columns`` of every row of ``table`` (a search without a limit returns only the first 10)."""
    count = table.count_rows()
    return table.search().select(columns).limit(count).to_list() if count else []


def search_form(text: str) -> str:
    """What the full-text index sees: Chinese folded to Traditional so either script matches."""
    return convert_chinese(text)


def sql_quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@dataclass
class KBStatus:
    path: str
    documents: int
    chunks: int
    version: str
    embedding_model: str
    roots: list[str]


class KnowledgeBase:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = settings.kb_uri  # where the table and its metadata are, as users are told
        self.remote = settings.store is not None
        # the local folder: the whole knowledge base, or the copies of kept files fetched from the store
        self.path = Path(settings.kb_dir)
        self._db = None
        self._meta: dict | None = None  # read by table(), for the searches on the table it opened

    # --- opening --------------------------------------------------------------------------
    @property
    def meta_path(self) -> Path:
        """The metadata file of a local knowledge base."""
        return self.path / META_FILE

    @property
    def meta_url(self) -> str:
        return f"{self.uri}/{META_FILE}"

    def pipeline_meta(self) -> dict:
        return {
            "embedding_model": self.settings.embedding_model,
            "chunking": chunking_signature(self.settings),
            "loaders": LOADERS_VERSION,
            "fts_tokenizer": self.settings.fts_tokenizer,
            "table": TABLE_LAYOUT,
        }

    def stored_meta(self) -> dict | None:
        if self.remote:
            text = storage.read_text(self.meta_url, self.settings)
        else:
            text = self.meta_path.read_text() if self.meta_path.exists() else None
        return json.loads(text) if text is not None else None

    def _write_meta(self, meta: dict) -> None:
        text = json.dumps(meta, indent=2)
        if self.remote:
            storage.write_text(self.meta_url, text, self.settings)
        else:
            self.meta_path.write_text(text)

    def _table_exists(self) -> bool:
        name = f"{self.settings.table_name}.lance"
        if self.remote:
            return storage.exists(f"{self.uri}/{name}", self.settings)
        return (self.path / name).exists()

    def exists(self) -> bool:
        if self.remote:
            return storage.exists(self.meta_url, self.settings) and self._table_exists()
        return self.meta_path.exists() and self._table_exists()

    def _connect(self):
        if self._db is None:
            if self.remote:
                self._db = _connection(self.uri, self.settings)
            else:
                self.path.mkdir(parents=True, exist_ok=True)
                self._db = _connection(str(self.path.resolve()), self.settings)
        return self._db

    def check(self) -> dict:
        """The knowledge base's metadata, once it is known to be there and built as the settings say;
        else a clear error. Reads only the metadata, so a command can check before LanceDB loads."""
        meta = self.stored_meta()
        if meta is None or not self._table_exists():
            raise KnowledgeBaseError(f"no knowledge base at {self.uri}", hint=INGEST_HINT)
        if meta.get("embedding_model") != self.settings.embedding_model:
            raise KnowledgeBaseError(
                f"the knowledge base at {self.uri} was embedded with {meta.get('embedding_model')!r}, "
                f"but RAGREEL_EMBEDDING_MODEL is {self.settings.embedding_model!r}",
                hint="rebuild it: python -m flows.ingest PATH --rebuild (or set RAGREEL_EMBEDDING_MODEL back)",
            )
        if meta.get("table") != TABLE_LAYOUT:
            raise KnowledgeBaseError(
                f"the knowledge base at {self.uri} was written by an older ragreel (it lacks pages and pictures)",
                hint="rebuild it: python -m flows.ingest PATH --rebuild",
            )
        return meta

    def table(self):
        """The chunks table at its latest version; a clear error when nothing was ingested yet.

        Opened afresh on each call (cheap) because tasks write through their own handles and
        a kept handle would read a stale version.
        """
        self._meta = self.check()
        return self._connect().open_table(self.settings.table_name)

    def create(self, dimension: int) -> None:
        """A new, empty table (dropping an old one) and its metadata."""
        import pyarrow as pa

        db = self._connect()
        schema = pa.schema(
            [
                pa.field("chunk_id", pa.string()),
                pa.field("root", pa.string()),
                pa.field("source", pa.string()),
                pa.field("title", pa.string()),
                pa.field("heading", pa.string()),
                pa.field("text", pa.string()),
                pa.field("search_text", pa.string()),
                pa.field("language", pa.string()),
                pa.field("content_hash", pa.string()),
                pa.field("position", pa.int32()),
                pa.field("page", pa.int32()),
                pa.field("pdf", pa.string()),
                pa.field("pictures", pa.string()),
                pa.field("vector", pa.list_(pa.float32(), dimension)),
            ]
        )
        table = db.create_table(self.settings.table_name, schema=schema, mode="overwrite")
        self._create_fts_index(table)
        self._write_meta({**self.pipeline_meta(), "dimension": dimension})

    def _create_fts_index(self, table) -> None:
        from lancedb.index import FTS

        # Stemming and stop words are English-only rules; ICU segments Chinese into words.
        table.create_index(
            "search_text",
            config=FTS(base_tokenizer=self.settings.fts_tokenizer, stem=True, remove_stop_words=True),
            replace=True,
        )

    # --- documents ------------------------------------------------------------------------
    def documents(self) -> dict[tuple[str, str], str]:
        """(root, source) -> content hash for every stored document."""
        rows = _all_rows(self.table(), ["root", "source", "content_hash"])
        return {(row["root"], row["source"]): row["content_hash"] for row in rows}

    def replace_document(self, root: str, source: str, rows: list[dict]) -> None:
        """Swap in a document's new chunks and drop its old ones in one commit."""
        table = self.table()
        self._forget_contents()
        (
            table.merge_insert("chunk_id")
            .when_matched_update_all()
            .when_not_matched_insert_all()
            .when_not_matched_by_source_delete(f"root = {sql_quote(root)} AND source = {sql_quote(source)}")
            .execute(rows)
        )

    def remove_documents(self, root: str, sources: list[str]) -> None:
        if sources:
            listed = ", ".join(sql_quote(s) for s in sources)
            self._forget_contents()
            self.table().delete(f"root = {sql_quote(root)} AND source IN ({listed})")

    def optimize(self) -> None:
        """Compact the many small versions an ingest writes and fold new rows into the indices.

        Old versions are kept for LanceDB's default week, so that a run reading the table
        while an ingest commits is never cut off. Kept pictures and PDFs that no chunk refers to
        any more are removed.
        """
        table = self.table()
        table.optimize()
        count = table.count_rows()
        if count >= VECTOR_INDEX_MIN_ROWS and not any(
            index.columns == ["vector"] for index in table.list_indices()
        ):
            # Past this size a flat scan costs tens of ms a question; later optimize() calls fold new
            # rows into the index.
            table.create_index(metric="l2", vector_column_name="vector", index_type="IVF_HNSW_SQ")
        rows = _all_rows(table, ["pdf", "pictures"])
        referenced = {row["pdf"] for row in rows if row["pdf"]}
        referenced |= {picture["file"] for row in rows for picture in json.loads(row["pictures"])}
        remove_unreferenced(self.path, referenced)
        if self.remote:
            self._remove_unreferenced_shared(referenced)

    # --- kept pictures and PDFs -----------------------------------------------------------
    def share_kept(self, name: str) -> None:
        """Put a picture or PDF just kept in the local folder on the store too, for every other host.

        Names are hashes of the bytes, so one already there is the same file and is left alone."""
        if self.remote and not storage.exists(f"{self.uri}/{name}", self.settings):
            storage.upload_file(self.path / name, f"{self.uri}/{name}", self.settings)

    def kept_file(self, name: str) -> Path:
        """The local path of a kept picture or PDF, fetched from the store the first time this host
        needs it (a hash-named file never changes, so a local copy is never stale)."""
        local = self.path / name
        if self.remote and not local.exists():
            if not KEPT_FILE.fullmatch(name):
                raise KnowledgeBaseError(f"the knowledge base at {self.uri} names an unexpected file")
            storage.download_file(f"{self.uri}/{name}", local, self.settings)
        return local

    def _remove_unreferenced_shared(self, referenced: set[str]) -> None:
        removed = 0
        for folder in (PICTURES_DIR, DOCUMENTS_DIR):
            for url in storage.list_files(f"{self.uri}/{folder}", self.settings):
                if url.removeprefix(f"{self.uri}/") not in referenced:
                    storage.delete_file(url, self.settings)
                    removed += 1
        if removed:
            log.info("removed %d pictures and documents no chunk refers to from the store", removed)

    # --- status ---------------------------------------------------------------------------
    def version(self) -> str:
        """A short hash of what the knowledge base holds and how it was built: what caches key on.

        What it holds is read from the metadata, where the last ingest recorded it, so that a cached
        rerun never opens the table; it is read from the table where it is not recorded (after an
        ingest that was killed, say).
        """
        contents = (self.stored_meta() or {}).get(CONTENTS_KEY) or self._contents_hash()
        digest = hashlib.sha256(json.dumps(self.pipeline_meta(), sort_keys=True).encode())
        digest.update(contents.encode())
        return digest.hexdigest()[:12]

    def record_contents(self) -> None:
        """Record in the metadata a hash of the documents the table holds; ingest does, once done.

        Every write through this class forgets it first, so the record is never stale for a table
        written only through here; whatever writes to the table directly must call this after.
        """
        meta, contents, languages = self.check(), self._contents_hash(), self._chunk_languages()
        if (meta.get(CONTENTS_KEY), meta.get(LANGUAGES_KEY)) != (contents, languages):
            self._write_meta({**meta, CONTENTS_KEY: contents, LANGUAGES_KEY: languages})

    def _forget_contents(self) -> None:
        meta = self.stored_meta()
        if meta and (CONTENTS_KEY in meta or LANGUAGES_KEY in meta):
            self._write_meta({k: v for k, v in meta.items() if k not in (CONTENTS_KEY, LANGUAGES_KEY)})

    def languages(self) -> list[str]:
        """The languages the chunks are written in, as the last ingest recorded them (read from the
        table where it did not)."""
        meta = self._meta or self.stored_meta() or {}
        return meta[LANGUAGES_KEY] if LANGUAGES_KEY in meta else self._chunk_languages()

    def _chunk_languages(self) -> list[str]:
        return sorted({row["language"] for row in _all_rows(self.table(), ["language"])})

    def _contents_hash(self) -> str:
        digest = hashlib.sha256()
        for (root, source), content_hash in sorted(self.documents().items()):
            digest.update(f"{root}\0{source}\0{content_hash}\n".encode())
        return digest.hexdigest()

    def status(self) -> KBStatus:
        docs = self.documents()
        return KBStatus(
            path=self.uri,
            documents=len(docs),
            chunks=self.table().count_rows(),
            version=self.version(),
            embedding_model=self.settings.embedding_model,
            roots=sorted({root for root, _ in docs}),
        )

    # --- search ---------------------------------------------------------------------------
    def search(
        self,
        question: str,
        vector: list[float],
        top_k: int,
        mode: SearchMode = "hybrid",
        vector_weight: float = 0.5,
        table=None,
    ) -> list[Passage]:
        """Hybrid search: vector and full-text candidates fused by weighted reciprocal rank.

        ``vector_weight`` (0..1, full text gets the rest) says how far to trust the vectors;
        ``mode`` "vector" or "fts" runs one side alone (for evaluation and debugging); ``table``, one
        that the caller has just opened with :meth:`table` (opening it again costs a few ms).
        """
        table = table if table is not None else self.table()
        if table.count_rows() == 0:
            raise KnowledgeBaseError(f"the knowledge base at {self.uri} is empty", hint=INGEST_HINT)
        stored_dimension = (self._meta or self.stored_meta() or {}).get("dimension")
        if stored_dimension and len(vector) != stored_dimension:
            raise KnowledgeBaseError(
                f"the knowledge base at {self.uri} holds {stored_dimension}-d vectors, but the embedding "
                f"model gave a {len(vector)}-d one",
                hint="rebuild it: python -m flows.ingest PATH --rebuild",
            )
        columns = [
            "chunk_id",
            "source",
            "title",
            "heading",
            "text",
            "language",
            "page",
            "pdf",
            "pictures",
            "vector",
        ]
        if mode == "vector":
            rows = table.search(vector, query_type="vector").select(columns).limit(top_k).to_list()
            scores = [1.0 - row["_distance"] / 2 for row in rows]  # unit vectors: L2² -> cosine
        elif mode == "fts":
            rows = (
                table.search(search_form(question), query_type="fts", fts_columns="search_text")
                .select(columns)
                .limit(top_k)
                .to_list()
            )
            scores = [row["_score"] for row in rows]
        else:
            from lancedb.rerankers import MRRReranker

            rows = (
                table.search(query_type="hybrid", fts_columns="search_text")
                .vector(vector)
                .text(search_form(question))
                .select(columns)
                .limit(max(top_k * 4, 20))  # a deeper candidate pool on each side makes fusion fairer
                .rerank(
                    MRRReranker(weight_vector=round(vector_weight, 6), weight_fts=round(1 - vector_weight, 6))
                )
                .to_list()
            )[:top_k]
            scores = [row["_relevance_score"] for row in rows]
        # Fused scores rank; the cosine to the question says how close a passage is in absolute terms,
        # which is what "is this covered at all" needs (RAGREEL_MIN_RELEVANCE).
        import numpy as np

        query = np.asarray(vector, dtype=np.float32)
        similarities = [float(np.dot(query, np.asarray(row["vector"], dtype=np.float32))) for row in rows]
        return [
            Passage(
                chunk_id=row["chunk_id"],
                source=row["source"],
                title=row["title"],
                heading=row["heading"],
                text=row["text"],
                language=row["language"],
                page=row["page"],
                pdf=row["pdf"],
                pictures=[Picture(**picture) for picture in json.loads(row["pictures"])],
                score=round(float(score), 6),
                similarity=round(similarity, 6),
                rank=rank,
            )
            for rank, (row, score, similarity) in enumerate(
                zip(rows, scores, similarities, strict=True), start=1
            )
        ]
