"""Prefect's per-task cost: the generate flow vs its stage functions called directly, in one warm process.

    python -m bench.orchestration_bench [--question "..."] [--runs 3]

Both sides do the same real work on the sample knowledge base: retrieve, check a script, speak and
render a video. The script is the extractive answer (passage sentences quoted as they are), so no
model is asked and the figure is not hidden in a minute of LLM time. Models, voices and the Prefect
server are warmed up first; every flow run recomputes its stages (Prefect's refresh-cache setting)
so both sides do the same work. The difference is what the flow adds: task runs, result storage,
cache lookups, artifacts, logs and the result.json.
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

REPO = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.orchestration_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--question", default="What water temperature should I use for oolong tea?")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each side (the median counts)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ragreel-orchestration-bench-") as home:
        os.environ["RAGREEL_HOME"] = home
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
        from prefect.settings import PREFECT_TASKS_REFRESH_CACHE, temporary_settings

        from flows.generate import _sources_card, generate_video
        from flows.ingest import ingest_knowledge_base
        from ragreel.llm.evidence import best_sentences
        from ragreel.prefect_server import temporary_prefect_server
        from ragreel.schemas import Script
        from ragreel.settings import get_settings
        from ragreel.text import detect_language
        from tasks.answer import generate_stage
        from tasks.render import render_stage, slides_for
        from tasks.retrieve import retrieve_passages, retrieve_stage
        from tasks.speak import speak_stage

        question = args.question
        language = detect_language(question)
        out = Path(home) / "out"

        def direct(run: int) -> None:
            """What the flow runs, as plain calls of the stage functions."""
            settings = get_settings()
            location = str(out / f"direct-{run}")
            Path(location).mkdir(parents=True)
            passages = retrieve_stage.task.fn(question, settings.top_k)
            answer = generate_stage.task.fn(question, passages, language, script)
            narration = speak_stage.task.fn(answer.text, language, "auto", location)
            render_stage.task.fn(
                narration,
                question,
                _sources_card(answer),
                location,
                language,
                settings.aspect,
                slides_for(answer),
            )

        def through_flow(run: int) -> None:
            generate_video(question, script=script, output_dir=str(out / f"flow-{run}"))

        with temporary_prefect_server():
            ingest_knowledge_base([str(REPO / "data" / "kb")])
            passages = retrieve_passages(question)
            script = Script(scenes=best_sentences(question, passages, language))
            print(f"warming up ({len(script.scenes)} extractive scenes)...", flush=True)
            direct(0)
            through_flow(0)
            seconds: dict[str, list[float]] = {"direct": [], "flow": []}
            with temporary_settings(updates={PREFECT_TASKS_REFRESH_CACHE: True}):
                for run in range(1, args.runs + 1):
                    for side, call in (("direct", direct), ("flow", through_flow)):
                        started = time.perf_counter()
                        call(run)
                        seconds[side].append(time.perf_counter() - started)
                        print(f"run {run} {side:<7} {seconds[side][-1]:6.2f}s", flush=True)

    flow, plain = statistics.median(seconds["flow"]), statistics.median(seconds["direct"])
    print(
        f"\nflow {flow:.2f}s vs stage functions {plain:.2f}s: {flow / plain:.2f}x, {flow - plain:.2f}s per run"
    )
    record(
        Figure(
            name="orchestration: generate flow vs its stage functions called directly (warm)",
            value=round(flow, 2),
            unit="s",
            baseline=round(plain, 2),
            note=f"{flow - plain:.2f} s of Prefect per run of 4 tasks; scripted answer, no model asked",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
