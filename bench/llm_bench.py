"""Speed of the built-in local model: time to first token, tokens/s and total answer time.

    python -m bench.llm_bench            # English and Chinese, one answer each
    python -m bench.llm_bench --runs 3   # median of three

Passages are the sections of the sample tea documents in ``data/kb/tea`` (no knowledge base
needed). For each language the same prompt is first streamed straight through the OpenAI client
(the baseline: the script request exactly as the answer stage first sends it, schema and token
limit included: time to first token, generated pieces per second, which llama.cpp sends one token
each) and then answered by ``tasks.answer.answer_question`` end to end; the ratio shows what
ragreel's own work (prompt, clean-up, a possible second ask) adds to the model's time. The line
above the table gives the server's cold start in this process (model check, start, warm-up).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

from bench.figures import Figure, record

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "kb" / "tea"
CASES = [
    (
        "en",
        "brewing-guide.md",
        "What water temperature should I use for oolong tea, and how long should it steep?",
    ),
    ("zh", "high-mountain-oolong.md", "高山烏龍茶要種在多高的地方？要用幾度的水沖泡？"),
]


def sample_passages(path: Path, language: str):
    """One passage for the introduction and one per '## ' section of a sample document, in order."""
    from ragreel.schemas import Passage

    text = path.read_text(encoding="utf-8")
    intro, *sections = re.split(r"^## ", text, flags=re.MULTILINE)
    title, _, intro_body = intro.strip().partition("\n")
    title = title.lstrip("# ").strip()
    pieces = [("", intro_body), *(section.partition("\n")[::2] for section in sections)]
    passages = []
    for rank, (heading, body) in enumerate(pieces, start=1):
        passages.append(
            Passage(
                chunk_id=f"{path.name}#{rank}",
                source=f"tea/{path.name}",
                title=title,
                heading=heading.strip(),
                text=body.strip(),
                language=language,
                score=1.0 / rank,
                similarity=0.9,  # all of them relevant, whatever RAGREEL_MIN_RELEVANCE is
                rank=rank,
            )
        )
    return passages


def forget_prompt(settings, endpoint) -> None:
    """llama.cpp reuses the cached start of the previous prompt: a tiny unrelated request clears
    it, so every measurement pays for its whole prompt as a new question would."""
    from ragreel.llm.client import complete_chat

    complete_chat([{"role": "user", "content": "ok"}], max_tokens=1, settings=settings, endpoint=endpoint)


def stream_once(messages, max_tokens, settings, endpoint) -> dict[str, float]:
    """The script request as the answer stage first sends it (same prompt, schema, token limit and
    temperature), streamed: the model's own time for one script."""
    from ragreel.llm.client import stream_chat
    from ragreel.llm.script import script_schema

    started = time.perf_counter()
    first = last = None
    pieces = 0
    schema = script_schema()
    for _piece in stream_chat(
        messages,
        max_tokens=max_tokens,
        temperature=0.2,
        settings=settings,
        endpoint=endpoint,
        json_schema=schema,
    ):
        last = time.perf_counter()
        first = first or last
        pieces += 1
    if first is None:
        raise SystemExit("the model streamed nothing")
    generation_s = last - first
    return {
        "ttft": first - started,
        "tokens": pieces,
        "tokens_per_s": (pieces - 1) / generation_s if generation_s > 0 else float("nan"),
        "total": last - started,
    }


class RequestLog:
    """The answer stage's own requests to the model, each with its seconds, while installed."""

    def __init__(self) -> None:
        import tasks.answer

        self._module, self._original, self.seconds = tasks.answer, tasks.answer.complete_chat, []

    def __enter__(self) -> RequestLog:
        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                return self._original(*args, **kwargs)
            finally:
                self.seconds.append(time.perf_counter() - began)

        self._module.complete_chat = timed
        return self

    def __exit__(self, *exc_info) -> None:
        self._module.complete_chat = self._original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="repeat each measurement, report the median")
    args = parser.parse_args(argv)

    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "RAGREEL_OPENAI_API_KEY", "RAGREEL_OPENAI_BASE_URL"):
        os.environ.pop(name, None)  # the bench is about the built-in local model
    from ragreel.llm.client import resolve_endpoint
    from ragreel.llm.local_server import stop_local_server
    from ragreel.llm.prompt import LengthTarget, spoken_seconds
    from ragreel.llm.script import script_messages
    from ragreel.settings import get_settings
    from tasks.answer import answer_question, script_max_tokens

    settings = get_settings()
    started = time.perf_counter()
    endpoint = resolve_endpoint(settings)  # assembles the model if needed, starts and warms the server
    cold_start = time.perf_counter() - started
    print(
        f"local model {endpoint.model} at {endpoint.base_url}: cold start {cold_start:.1f} s "
        f"(model check + server start + warm-up), {os.cpu_count()} CPUs, runs={args.runs}, "
        f"load average {os.getloadavg()[0]:.1f} (other work on the machine slows every figure)"
    )

    header = (
        f"{'lang':4} {'prompt chars':>12} {'TTFT s':>7} {'tokens':>6} {'tok/s':>6} {'stream s':>8} "
        f"{'answer s':>8} {'ratio':>5} {'spoken s':>8} {'cites':>5}"
    )
    print(header)
    print("-" * len(header))
    try:
        for language, filename, question in CASES:
            passages = sample_passages(SAMPLES / filename, language)
            target = LengthTarget(language, settings.answer_min_seconds, settings.answer_max_seconds)
            messages = script_messages(question, passages, language, target)
            streams, answers, requests = [], [], []
            answer = None
            for _ in range(args.runs):
                forget_prompt(settings, endpoint)
                streams.append(stream_once(messages, script_max_tokens(target), settings, endpoint))
                forget_prompt(settings, endpoint)
                began = time.perf_counter()
                with RequestLog() as log:
                    answer = answer_question(question, passages, settings=settings)
                answers.append(time.perf_counter() - began)
                requests.append(log.seconds)

            def median(key: str, runs=streams) -> float:
                return statistics.median(run[key] for run in runs)

            answer_s = statistics.median(answers)
            # The run whose answer time is the median: how many requests it made, and their seconds.
            made = requests[answers.index(sorted(answers)[(len(answers) - 1) // 2])]
            first_s, more_s = (made[0] if made else 0.0), sum(made[1:])
            print(
                f"{language:4} {sum(len(m['content']) for m in messages):>12} {median('ttft'):>7.2f} "
                f"{median('tokens'):>6.0f} {median('tokens_per_s'):>6.1f} {median('total'):>8.2f} "
                f"{answer_s:>8.2f} {answer_s / median('total'):>5.2f} "
                f"{spoken_seconds(answer.text, language):>8.1f} {len(answer.citations):>5}"
            )
            print(f"     {answer.text[:150]}{'…' if len(answer.text) > 150 else ''}")
            record(
                Figure(
                    name=f"answer ({language}): generate stage vs one raw request, same prompt",
                    value=round(answer_s, 2),
                    unit="s",
                    baseline=round(median("total"), 2),
                    target=("<=", 1.15),
                    note=f"{len(made)} request(s): the first {first_s:.1f} s, the others {more_s:.1f} s "
                    f"(a reply that was no script, scenes asked again); checks and the rest "
                    f"{answer_s - first_s - more_s:.1f} s",
                ),
                Figure(
                    name=f"answer ({language}): local model speed",
                    value=round(median("tokens_per_s"), 1),
                    unit="tokens/s",
                ),
            )
    finally:
        stop_local_server()
    return 0


if __name__ == "__main__":
    sys.exit(main())
