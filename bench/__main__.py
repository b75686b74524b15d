"""`make bench`: every benchmark, one after the other, then one table of their figures against targets.

Each also runs alone as ``python -m bench.<name>`` and prints its own details. The table is
written to ``bench/results/latest.json`` as a list of
``{"name", "value", "unit", "baseline", "ratio", "target", "ok"}``.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import FIGURES_VARIABLE, read, table, write_json

BENCHMARKS = [
    ["bench.render_bench"],
    ["bench.llm_bench"],
    ["bench.speech_bench"],
    ["bench.flow_bench"],
    ["bench.batch_bench"],
    ["bench.time_to_video"],
    ["bench.orchestration_bench"],
    ["bench.retrieval_eval", "--models", "multilingual-e5-small"],
    ["bench.retrieval_bench"],
]
RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

if __name__ == "__main__":
    import os

    with tempfile.TemporaryDirectory(prefix="ragreel-bench-") as scratch:
        collected = Path(scratch) / "figures.jsonl"
        env = {**os.environ, FIGURES_VARIABLE: str(collected)}
        failed, started = [], time.perf_counter()
        for command in BENCHMARKS:
            print(f"\n=== {' '.join(command)} ===", flush=True)
            if subprocess.run([sys.executable, "-m", *command], env=env).returncode != 0:
                failed.append(command[0])
        figures = read(collected)
    print(f"\n=== make bench: {len(figures)} figures in {time.perf_counter() - started:.0f} s ===\n")
    print(table(figures))
    write_json(figures, RESULTS)
    print(f"\nwritten to {RESULTS}")
    misses = [f.name for f in figures if f.ok is False]
    if misses:
        print(f"targets missed: {', '.join(misses)}")
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
