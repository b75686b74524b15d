"""Time to video in a warm process: question to finished MP4, stage by stage, as a batch row sees it.

    python -m bench.time_to_video [--question "..."]

In one process, on the sample knowledge base: a first question loads everything a batch keeps
loaded (the embedding model, the local LLM server, the voices, Whisper, the fonts), then a second
question is answered and rendered with the stage functions the generate flow runs, each timed.
Prefect's own cost per run is ``bench.orchestration_bench``'s figure; the model's speed alone is
``bench.llm_bench``'s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import Figure, record

REPO = Path(__file__).resolve().parent.parent
WARM_UP = "可以在台北捷運上喝水嗎？"
TARGET_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.time_to_video",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--question", default="What water temperature should I use for oolong tea?")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="ragreel-time-to-video-") as home:
        os.environ["RAGREEL_HOME"] = home
        from flows.generate import _sources_card
        from flows.ingest import ingest_knowledge_base
        from ragreel.prefect_server import temporary_prefect_server
        from ragreel.settings import get_settings
        from ragreel.text import detect_language
        from tasks.answer import generate_stage
        from tasks.render import render_stage, slides_for
        from tasks.retrieve import retrieve_stage
        from tasks.speak import speak_stage

        def video(question: str, location: Path) -> tuple[dict[str, float], float]:
            """Seconds per stage, and the video's length."""
            settings, language = get_settings(), detect_language(question)
            location.mkdir(parents=True)
            seconds: dict[str, float] = {}
            started = time.perf_counter()
            passages = retrieve_stage.task.fn(question, settings.top_k)
            seconds["retrieve"] = time.perf_counter() - started
            answer = generate_stage.task.fn(question, passages, language, None)
            seconds["generate"] = time.perf_counter() - started - sum(seconds.values())
            narration = speak_stage.task.fn(answer.text, language, "auto", str(location))
            seconds["speak"] = time.perf_counter() - started - sum(seconds.values())
            rendered = render_stage.task.fn(
                narration,
                question,
                _sources_card(answer),
                str(location),
                language,
                settings.aspect,
                slides_for(answer),
            )
            seconds["render"] = time.perf_counter() - started - sum(seconds.values())
            return seconds, rendered.duration

        with temporary_prefect_server():  # the stage functions log and read settings as in a flow
            ingest_knowledge_base([str(REPO / "data" / "kb")])
            print("warming up: models, voices and the LLM server load on a first question...", flush=True)
            warm_up, _ = video(WARM_UP, Path(home) / "warm-up")
            print(f"warm-up took {sum(warm_up.values()):.0f} s", flush=True)
            seconds, video_seconds = video(args.question, Path(home) / "timed")

    total = sum(seconds.values())
    stages = ", ".join(f"{stage} {value:.1f} s" for stage, value in seconds.items())
    print(f"\nquestion to MP4, warm: {total:.1f} s for {video_seconds:.0f} s of video ({stages})")
    record(
        Figure(
            name="time to video: question to MP4 in a warm process",
            value=round(total, 1),
            unit="s",
            target=("<=", TARGET_SECONDS),
            target_of="value",
            note=f"{video_seconds:.0f} s of video; {stages}",
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
