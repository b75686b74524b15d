"""`make demo`: ingest the sample knowledge base and render three sample videos.

One answered from Markdown (the quote on a card), one from the sample PDF (its page region,
the quote marked), both landscape; and one in Chinese, portrait, with the picture its document
shows.

Runs in one process, so the Prefect server, the embedding model and the local LLM start once.
"""

from __future__ import annotations

import sys
from pathlib import Path

from flows.generate import generate_video
from flows.ingest import ingest_knowledge_base
from ragreel.cli import run_command
from ragreel.prefect_server import temporary_prefect_server
from ragreel.schemas import Aspect

SAMPLE_KB = Path(__file__).resolve().parent.parent / "data" / "kb"
QUESTIONS: list[tuple[str, Aspect]] = [
    ("What water temperature should I use for oolong tea?", "landscape"),
    ("How many stations does Taiwan High Speed Rail have?", "landscape"),
    ("高山烏龍茶要種在多高的地方？", "portrait"),
]


def main() -> int:
    return run_command(_demo, "demo")


def _demo() -> int:
    with temporary_prefect_server():
        report = ingest_knowledge_base([str(SAMPLE_KB)])
        print(f"\nKnowledge base: {report.summary_line()}")
        results = [generate_video(question, aspect=aspect) for question, aspect in QUESTIONS]
    print("\nDone. Your videos:")
    for result in results:
        print(
            f"\n  {result.question}\n  {result.answer}\n  -> {result.mp4_path} ({result.video_seconds:.0f}s, "
            f"{result.llm}, voice {result.voice})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
