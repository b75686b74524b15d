"""Retrieval quality on a bilingual evaluation set: hit@1, hit@3 and MRR per language and mode.

    python -m bench.retrieval_eval                    # or: make eval (the default model and MiniLM)
    python -m bench.retrieval_eval --models multilingual-e5-small --show-misses
    python -m bench.retrieval_eval --json             # the figures as JSON

For each embedding model (in a process of its own, so its peak memory is its own), ingests
``bench/eval/docs`` (public-domain and permissively licensed documents, see
``bench/eval/SOURCES.md``) into a temporary knowledge base and asks every question in
``bench/eval/questions.jsonl`` in every search mode, measured in the same run: hybrid+translation
(what ragreel uses: hybrid search fused with a search for the question translated by the LLM into the
knowledge base's other language), hybrid alone, vector-only and full-text-only. A hit is a passage
from the document that answers the question. Questions phrased without the document's words
(paraphrases, colloquial, cross-lingual) are also scored on their own.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parent / "eval"
# "hybrid+translation" is hybrid search with RAGREEL_CROSS_LINGUAL on; the others search once.
MODES = ("hybrid+translation", "hybrid", "vector", "fts")
DEFAULT_MODE = MODES[0]
DEFAULT_MODELS = ("multilingual-e5-small", "all-MiniLM-L6-v2")
DEPTH = 10


def load_questions() -> list[dict]:
    lines = (EVAL_DIR / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def first_hit_rank(sources: list[str], answer: str) -> int | None:
    for rank, source in enumerate(sources, start=1):
        if source == answer:
            return rank
    return None


def scores(ranks: list[int | None]) -> dict[str, float]:
    n = len(ranks)
    return {
        "n": n,
        "hit@1": sum(1 for r in ranks if r == 1) / n,
        "hit@3": sum(1 for r in ranks if r and r <= 3) / n,
        "mrr": sum(1 / r for r in ranks if r) / n,
    }


def evaluate(questions: list[dict], mode: str) -> tuple[dict[str, dict[str, float]], list[dict]]:
    """Scores per group ("en", "zh", "en reworded", ...) and the questions not found at rank 1."""
    from tasks.retrieve import retrieve_passages

    ranks: dict[str, list[int | None]] = defaultdict(list)
    misses = []
    search, _, second_stage = mode.partition("+")
    for item in questions:
        passages = retrieve_passages(
            item["question"], top_k=DEPTH, mode=search, cross_lingual=second_stage == "translation"
        )
        rank = first_hit_rank([p.source for p in passages], item["answer_source"])
        ranks[item["language"]].append(rank)
        if item.get("kind", "literal") != "literal":
            ranks[f"{item['language']} reworded"].append(rank)
        if rank != 1:
            misses.append({**item, "rank": rank, "top": passages[0].source if passages else None})
    return {group: scores(values) for group, values in sorted(ranks.items())}, misses


def run_one(model: str, weights: list[float]) -> dict:
    """Ingest and evaluate with one model in this process; ``weights`` are extra hybrid vector weights."""
    questions = load_questions()
    with tempfile.TemporaryDirectory(prefix="ragreel-eval-") as home:
        os.environ["RAGREEL_HOME"] = home
        os.environ["RAGREEL_EMBEDDING_MODEL"] = model
        from flows.ingest import ingest_knowledge_base

        report = ingest_knowledge_base([str(EVAL_DIR / "docs")])
        raw_per_second = raw_encoding_speed(model)
        result = {
            "model": model,
            "documents": report.documents,
            "chunks": report.chunks,
            "embedded": report.embedded,
            "embed_seconds": report.embed_seconds,
            "chunks_per_second": round(report.chunks_per_second, 2),
            "raw_chunks_per_second": round(raw_per_second, 2),
            "modes": {},
            "misses": {},
        }
        for mode in MODES:
            started = time.perf_counter()
            metrics, misses = evaluate(questions, mode)
            result["modes"][mode] = metrics
            result["misses"][mode] = misses
            result[f"{mode}_ms_per_question"] = round(
                1000 * (time.perf_counter() - started) / len(questions), 1
            )
        for weight in weights:  # the fusion's vector weight, tuned on the same knowledge base
            os.environ["RAGREEL_HYBRID_VECTOR_WEIGHT"] = str(weight)
            result["modes"][f"{DEFAULT_MODE}@{weight}"], _ = evaluate(questions, DEFAULT_MODE)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


def raw_encoding_speed(model: str) -> float:
    """Chunks per second of the embedding model alone, on exactly the texts the ingest embedded."""
    from ragreel.kb.embedding import get_embedder
    from ragreel.kb.store import KnowledgeBase
    from ragreel.settings import get_settings

    settings = get_settings()
    rows = KnowledgeBase(settings).table().to_arrow().select(["title", "heading", "text"]).to_pylist()
    texts = [
        f"{r['title']}. {r['heading']}. {r['text']}" if r["heading"] else f"{r['title']}. {r['text']}"
        for r in rows
    ]
    embedder = get_embedder(model)
    embedder.load_bulk()
    started = time.perf_counter()
    embedder.documents(texts, settings.embed_batch_size, bulk=True)
    return len(texts) / (time.perf_counter() - started)


def record_figures(results: list[dict]) -> None:
    from bench.figures import Figure, record

    for r in results:
        default = r["model"] == DEFAULT_MODELS[0]
        record(
            Figure(
                name=f"ingestion ({r['model']}): chunks/s vs raw encoding of the same texts",
                value=r["chunks_per_second"],
                unit="chunks/s",
                baseline=r["raw_chunks_per_second"],
                target=(">=", 0.8),
            ),
            Figure(
                name=f"ingestion ({r['model']}): speed",
                value=r["chunks_per_second"],
                unit="chunks/s",
                target=(">=", 10.0) if default else None,
                target_of="value",
            ),
        )
        for language in ("en", "zh"):
            hybrid = r["modes"][DEFAULT_MODE][language]
            for metric, limit in (("hit@1", 0.85), ("hit@3", 0.97)):
                record(
                    Figure(
                        name=f"retrieval ({r['model']}, {language}): {DEFAULT_MODE} {metric}",
                        value=round(hybrid[metric], 3),
                        unit="",
                        target=(">=", limit) if default else None,
                        target_of="value",
                        note=f"{hybrid['n']} questions",
                    )
                )


def print_table(results: list[dict]) -> None:
    print(f"\n{'model':<24} {'mode':<18} {'group':<12} {'n':>3} {'hit@1':>6} {'hit@3':>6} {'MRR':>6}")
    for result in results:
        for mode in result["modes"]:
            for group, m in result["modes"][mode].items():
                print(
                    f"{result['model']:<24} {mode:<18} {group:<12} {m['n']:>3} "
                    f"{m['hit@1']:>6.3f} {m['hit@3']:>6.3f} {m['mrr']:>6.3f}"
                )
    print(
        f"\n{'model':<24} {'chunks':>6} {'chunks/s':>9} {'raw encode/s':>12} {'hybrid ms/q':>12} {'+transl. ms/q':>13} {'peak RSS MB':>12}"
    )
    for r in results:
        print(
            f"{r['model']:<24} {r['chunks']:>6} {r['chunks_per_second']:>9.1f} {r['raw_chunks_per_second']:>12.1f} "
            f"{r['hybrid_ms_per_question']:>12.1f} {r[DEFAULT_MODE + '_ms_per_question']:>13.1f} "
            f"{r['peak_rss_mb']:>12}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieval_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models", nargs="+", default=list(DEFAULT_MODELS), help="embedding models to compare"
    )
    parser.add_argument(
        "--show-misses", action="store_true", help=f"list {DEFAULT_MODE} questions not found at rank 1"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--weights", nargs="*", type=float, default=[], help="also score hybrid at these vector weights"
    )
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: evaluate one model in this process
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_one(args.one, args.weights), ensure_ascii=False))
        return 0
    results = []
    for model in args.models:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.retrieval_eval",
                "--one",
                model,
                "--weights",
                *map(str, args.weights),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "PREFECT_LOGGING_LEVEL": "WARNING"},
        )
        if done.returncode != 0:
            print(done.stderr[-3000:], file=sys.stderr)
            return 1
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    record_figures(results)
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
        return 0
    print_table(results)
    if args.show_misses:
        for result in results:
            print(f"\nNot at rank 1, {DEFAULT_MODE}, {result['model']}:")
            for miss in result["misses"][DEFAULT_MODE]:
                print(
                    f"  [{miss['language']}/{miss.get('kind', 'literal')}] rank {miss['rank']}: "
                    f"{miss['question']} -> wanted {miss['answer_source']}, got {miss['top']}"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
