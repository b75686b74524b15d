"""Retrieval quality on a bilingual evaluation set: hit@1, hit@3 and MRR per language.

    python -m bench.retrieval_eval            # or: make eval

Ingests ``bench/eval/docs`` (public-domain and permissively licensed documents, see
``bench/eval/SOURCES.md``) into a temporary knowledge base and asks every question in
``bench/eval/questions.jsonl``. Hybrid retrieval is compared with vector-only and
full-text-only search measured in the same run. A hit is a passage from the document that
answers the question.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parent / "eval"
MODES = ("hybrid", "vector", "fts")
DEPTH = 10


def first_hit_rank(sources: list[str], answer: str) -> int | None:
    for rank, source in enumerate(sources, start=1):
        if source == answer:
            return rank
    return None


def evaluate(questions: list[dict], mode: str) -> tuple[dict[str, dict[str, float]], list[dict]]:
    from tasks.retrieve import retrieve_passages

    ranks: dict[str, list[int | None]] = defaultdict(list)
    misses = []
    for item in questions:
        passages = retrieve_passages(item["question"], top_k=DEPTH, mode=mode)
        rank = first_hit_rank([p.source for p in passages], item["answer_source"])
        ranks[item["language"]].append(rank)
        if rank != 1:
            misses.append({**item, "rank": rank, "top": passages[0].source if passages else None})
    metrics = {}
    for language, values in sorted(ranks.items()):
        n = len(values)
        metrics[language] = {
            "n": n,
            "hit@1": sum(1 for r in values if r == 1) / n,
            "hit@3": sum(1 for r in values if r and r <= 3) / n,
            "mrr": sum(1 / r for r in values if r) / n,
        }
    return metrics, misses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrieval_eval",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--show-misses", action="store_true", help="list questions not answered at rank 1")
    args = parser.parse_args(argv)
    questions = [
        json.loads(line) for line in (EVAL_DIR / "questions.jsonl").read_text().splitlines() if line.strip()
    ]
    with tempfile.TemporaryDirectory(prefix="ragreel-eval-") as home:
        os.environ["RAGREEL_HOME"] = home
        from flows.ingest import ingest_knowledge_base

        report = ingest_knowledge_base([str(EVAL_DIR / "docs")])
        print(
            f"\nIngested {report.documents} documents, {report.chunks} chunks: "
            f"{report.embedded} chunks embedded in {report.embed_seconds:.1f}s "
            f"({report.chunks_per_second:.1f} chunks/s), whole ingest {report.seconds:.1f}s"
        )
        results = {}
        for mode in MODES:
            started = time.perf_counter()
            results[mode] = evaluate(questions, mode)
            results[mode][0]["_seconds"] = time.perf_counter() - started
    print(f"\n{'mode':<8} {'lang':<5} {'n':>3} {'hit@1':>7} {'hit@3':>7} {'MRR':>7}")
    for mode in MODES:
        metrics, _ = results[mode]
        for language, m in metrics.items():
            if language.startswith("_"):
                continue
            print(
                f"{mode:<8} {language:<5} {m['n']:>3} {m['hit@1']:>7.3f} {m['hit@3']:>7.3f} {m['mrr']:>7.3f}"
            )
    hybrid, vector = results["hybrid"][0], results["vector"][0]
    for language in (k for k in hybrid if not k.startswith("_")):
        ratio = hybrid[language]["mrr"] / vector[language]["mrr"] if vector[language]["mrr"] else float("inf")
        print(f"hybrid / vector-only MRR ({language}): {ratio:.2f}x")
    if args.show_misses:
        print("\nNot at rank 1 (hybrid):")
        for miss in results["hybrid"][1]:
            print(
                f"  [{miss['language']}] rank {miss['rank']}: {miss['question']} -> wanted {miss['answer_source']},"
                f" got {miss['top']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
