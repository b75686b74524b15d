"""See what the knowledge base returns for a question: the way to debug "why did it cite that?".

    python -m flows.retrieve "What water temperature for oolong?" "高山茶要種多高？" --top-k 3
    python -m flows.retrieve "..." --json     # one JSON list for all questions

The command searches directly, without starting Prefect, so it answers in a second or two;
the ``retrieve-passages`` flow below does the same as a Prefect run (for the UI).
"""

from __future__ import annotations

import argparse
import json
import sys

from prefect import flow

from ragreel.cli import run_command
from ragreel.schemas import Passage
from tasks.retrieve import retrieve_passages


@flow(name="retrieve-passages")
def retrieve_flow(questions: list[str], top_k: int | None = None) -> list[list[Passage]]:
    return [retrieve_passages(q, top_k) for q in questions]


def _print_passages(question: str, passages: list[Passage]) -> None:
    print(f"\n{question}")
    for p in passages:
        where = f"{p.source}" + (f" > {p.heading}" if p.heading else "")
        snippet = " ".join(p.text.split())
        print(f"  {p.rank}. [{p.score:.4f}] {p.title} ({where})")
        print(f"     {snippet[:160]}{'…' if len(snippet) > 160 else ''}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.retrieve",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("questions", nargs="+", help="one or more questions")
    parser.add_argument(
        "--top-k", type=int, default=None, help="passages per question (default RAGREEL_TOP_K)"
    )
    parser.add_argument(
        "--mode",
        choices=["hybrid", "vector", "fts"],
        default="hybrid",
        help="hybrid (default), or one side alone to see what each contributes",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON list for all questions")
    args = parser.parse_args(argv)
    return run_command(lambda: _retrieve(args), "retrieve")


def _retrieve(args: argparse.Namespace) -> int:
    results = [(q, retrieve_passages(q, args.top_k, mode=args.mode)) for q in args.questions]
    if args.json:
        print(
            json.dumps(
                [{"question": q, "passages": [p.model_dump() for p in ps]} for q, ps in results],
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for question, passages in results:
            _print_passages(question, passages)
    return 0


if __name__ == "__main__":
    sys.exit(main())
