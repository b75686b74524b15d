"""Retrieval latency at 1,000 and 100,000 chunks: the retrieval task against raw LanceDB hybrid search.

    python -m bench.retrieval_bench [--sizes 1000 100000] [--questions 40]

The evaluation documents (``bench/eval/docs``) are ingested once for real; the table is then grown
to each size with copies of their rows (new ids, vectors moved a little and normalised again, so
that the search has real work to do) and optimised as an ingest leaves it. Each question of
``bench/eval/questions.jsonl`` is asked of ``retrieve_passages`` (the task's function: query
embedding, hybrid search, fusion, passages) and of LanceDB directly (the same query embedding and
a plain hybrid search of the same table with its default reranker), alternately, after a warm-up.
Cross-lingual search is off here: its translation is an LLM request (about 1 s on the built-in model,
reported by ``bench.retrieval_eval``), not retrieval's own work.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import Figure, record

EVAL_DIR = Path(__file__).resolve().parent / "eval"
JITTER = 0.02


def grow(table, size: int) -> None:
    """Copies of the table's rows until it holds ``size`` of them."""
    import numpy as np
    import pyarrow as pa

    seed = table.to_arrow()
    rng = np.random.default_rng(0)
    copy = 0
    while table.count_rows() < size:
        copy += 1
        batch = seed.slice(0, min(seed.num_rows, size - table.count_rows()))
        vectors = np.stack(batch.column("vector").to_numpy(zero_copy_only=False)).astype(np.float32)
        vectors += rng.normal(0, JITTER, vectors.shape).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        ids = pa.array([f"{chunk}-copy{copy}" for chunk in batch.column("chunk_id").to_pylist()])
        batch = batch.set_column(batch.schema.get_field_index("chunk_id"), "chunk_id", ids)
        vector_type = batch.schema.field("vector").type
        batch = batch.set_column(
            batch.schema.get_field_index("vector"), "vector", pa.array(list(vectors), type=vector_type)
        )
        table.add(batch)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieval_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 100_000])
    parser.add_argument("--questions", type=int, default=40, help="questions asked at each size")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ragreel-retrieval-bench-") as home:
        os.environ["RAGREEL_HOME"] = home
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        from bench.retrieval_eval import load_questions
        from flows.ingest import ingest_knowledge_base
        from ragreel.kb.embedding import get_embedder
        from ragreel.kb.store import KnowledgeBase, search_form
        from ragreel.settings import get_settings
        from tasks.retrieve import retrieve_passages

        ingest_knowledge_base([str(EVAL_DIR / "docs")])
        settings = get_settings()
        kb = KnowledgeBase(settings)
        embedder = get_embedder(settings.embedding_model)
        questions = [q["question"] for q in load_questions()][: args.questions]

        def raw(question: str) -> None:
            [vector] = embedder.queries([question])
            (
                kb.table()
                .search(query_type="hybrid", fts_columns="search_text")
                .vector(vector)
                .text(search_form(question))
                .limit(settings.top_k)
                .to_list()
            )

        def task(question: str) -> None:
            retrieve_passages(question, settings=settings, cross_lingual=False)

        print(f"{'chunks':>8} {'side':<6} {'p50 ms':>8} {'p95 ms':>8}   (build s)")
        for size in sorted(args.sizes):
            started = time.perf_counter()
            grow(kb.table(), size)
            kb.optimize()
            built = time.perf_counter() - started
            for question in questions[:5]:  # warm-up: caches, index pages
                raw(question)
                task(question)
            times: dict[str, list[float]] = {"raw": [], "task": []}
            for question in questions:
                for side, call in (("raw", raw), ("task", task)):
                    began = time.perf_counter()
                    call(question)
                    times[side].append(1000 * (time.perf_counter() - began))
            (raw50, raw95), (task50, task95) = percentiles(times["raw"]), percentiles(times["task"])
            count = kb.table().count_rows()
            print(f"{count:>8} {'raw':<6} {raw50:>8.1f} {raw95:>8.1f}   ({built:.0f})")
            print(f"{count:>8} {'task':<6} {task50:>8.1f} {task95:>8.1f}")
            record(
                Figure(
                    name=f"retrieval at {size:,} chunks: p50 of the task vs raw LanceDB hybrid",
                    value=round(task50, 1),
                    unit="ms",
                    baseline=round(raw50, 1),
                    target=("<=", 1.2),
                ),
                Figure(
                    name=f"retrieval at {size:,} chunks: p95 of the task vs raw LanceDB hybrid",
                    value=round(task95, 1),
                    unit="ms",
                    baseline=round(raw95, 1),
                    target=("<=", 1.2),
                ),
            )
            if size >= 100_000:
                record(
                    Figure(
                        name=f"retrieval at {size:,} chunks: p95 of the task",
                        value=round(task95, 1),
                        unit="ms",
                        target=("<=", 100.0),
                        target_of="value",
                    )
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
