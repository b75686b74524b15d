"""Wall time of the generate flow: a cold run, a cached rerun, and Prefect's fixed start-up.

    python -m bench.flow_bench [--question "..."]

Each measurement is a fresh process, as a user's command is: an empty Prefect flow (Prefect's
own temporary server, started as every command without PREFECT_API_URL starts one; ragreel's
commands start theirs without loading the server's code, so they can beat it), then
``python -m flows.generate`` on a fresh RAGREEL_HOME (cold: embedding model, local LLM server, voices, render), then the same
command again (served from cache). The knowledge base is ingested first and not timed.
Batches are ``bench.batch_bench``'s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import Figure, record

REPO = Path(__file__).resolve().parent.parent
EMPTY_FLOW = "from prefect import flow\n@flow\ndef empty():\n    return 1\nempty()\n"


def timed(command: list[str], env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flow_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--question", default="What water temperature should I use for oolong tea?")
    args = parser.parse_args(argv)
    python = sys.executable
    with tempfile.TemporaryDirectory(prefix="ragreel-bench-") as home:
        env = {**os.environ, "RAGREEL_HOME": home}
        print("ingesting data/kb (not timed)...", flush=True)
        timed([python, "-m", "flows.ingest", "data/kb"], env)
        empty, _ = timed([python, "-c", EMPTY_FLOW], env)
        print(f"empty flow: {empty:.1f}s", flush=True)
        cold, out = timed([python, "-m", "flows.generate", args.question, "--json"], env)
        result = json.loads(out)
        print(
            f"cold run: {cold:.1f}s ({result['llm']}, {result['voice']}, {result['video_seconds']:.0f}s of video)",
            flush=True,
        )
        cached, out = timed([python, "-m", "flows.generate", args.question, "--json"], env)
        assert json.loads(out)["cached_stages"] == ["retrieve", "generate", "speak", "render"]
        print(f"\n{'run':<14} {'wall s':>8} {'x empty flow':>13}")
        for name, seconds in (("empty flow", empty), ("cold", cold), ("cached rerun", cached)):
            print(f"{name:<14} {seconds:>8.1f} {seconds / empty:>13.2f}")
        print(f"cached rerun minus Prefect start-up: {cached - empty:.1f}s")
        record(
            Figure(
                name="orchestration: empty flow start-up (temporary Prefect server)",
                value=round(empty, 2),
                unit="s",
            ),
            Figure(
                name="orchestration: cached rerun, beyond an empty flow",
                value=round(cached - empty, 2),
                unit="s",
                target=("<=", 1.0),
                target_of="value",
            ),
            Figure(
                name="time to video: cold command, question to MP4",
                value=round(cold, 1),
                unit="s",
                baseline=round(empty, 2),
                note=f"{result['video_seconds']:.0f} s of video; models loaded in the run",
            ),
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
