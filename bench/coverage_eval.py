"""Choosing RAGREEL_MIN_RELEVANCE: how close the best passage is for questions the knowledge base
answers, and for questions it doesn't.

    python -m bench.coverage_eval

Ingests ``bench/eval/docs`` into a temporary knowledge base and retrieves for every question of
``bench/eval/questions.jsonl`` (all answerable) and for ``bench/eval/off_topic.jsonl`` (questions
the documents don't cover: other subjects, emoji, prompt injection, gibberish). Prints, per
language, the best passage's cosine to the question for both groups and, for a range of
thresholds, the share of answerable questions kept and of off-topic ones refused.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import defaultdict

from bench.retrieval_eval import EVAL_DIR, load_questions

THRESHOLDS = [round(0.70 + 0.01 * i, 2) for i in range(16)]


def off_topic_questions() -> list[dict]:
    lines = (EVAL_DIR / "off_topic.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def signals(question: str) -> tuple[float, float]:
    """The best passage's cosine to the question, and the share of the question's words in the passages."""
    from ragreel.errors import InputError
    from ragreel.llm.evidence import question_overlap
    from tasks.retrieve import retrieve_passages

    try:
        passages = retrieve_passages(question)
    except InputError:  # refused before retrieval (emoji or symbols only): as good as not covered
        return 0.0, 0.0
    best = max((p.similarity or 0.0) for p in passages) if passages else 0.0
    return best, question_overlap(question, passages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.coverage_eval", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print every similarity as JSON")
    args = parser.parse_args(argv)
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ragreel-coverage-eval-") as home:
        os.environ["RAGREEL_HOME"] = home
        from flows.ingest import ingest_knowledge_base

        ingest_knowledge_base([str(EVAL_DIR / "docs")])
        for kind, items in (("answerable", load_questions()), ("off-topic", off_topic_questions())):
            for item in items:
                similarity, overlap = signals(item["question"])
                groups[(item["language"], kind)].append(similarity)
                rows.append(
                    {
                        "kind": kind,
                        "language": item["language"],
                        "question": item["question"],
                        "best": similarity,
                        "overlap": overlap,
                    }
                )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return 0
    print(f"\n{'language':<8} {'group':<11} {'n':>3} {'min':>6} {'median':>7} {'max':>6}")
    for (language, kind), values in sorted(groups.items()):
        print(
            f"{language:<8} {kind:<11} {len(values):>3} {min(values):>6.3f} "
            f"{statistics.median(values):>7.3f} {max(values):>6.3f}"
        )
    print(
        f"\n{'threshold':>9} "
        + " ".join(f"{lang + ' kept':>8} {lang + ' refused':>10}" for lang in ("en", "zh"))
    )
    for threshold in THRESHOLDS:
        cells = []
        for language in ("en", "zh"):
            kept = [v >= threshold for v in groups[(language, "answerable")]]
            refused = [v < threshold for v in groups[(language, "off-topic")]]
            cells.append(f"{sum(kept) / len(kept):>8.3f} {sum(refused) / len(refused):>10.3f}")
        print(f"{threshold:>9.2f} " + " ".join(cells))
    for row in sorted(rows, key=lambda r: -r["best"]):
        if row["kind"] == "off-topic":
            print(f"  off-topic {row['best']:.3f} {row['question'][:70]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
