"""`make bench`: every benchmark, one after the other (each also runs alone as python -m bench.<name>)."""

import subprocess
import sys

BENCHMARKS = [
    "bench.render_bench",
    "bench.speech_bench",
    "bench.llm_bench",
    "bench.flow_bench",
    "bench.retrieval_eval",
]

if __name__ == "__main__":
    failed = [name for name in BENCHMARKS if subprocess.run([sys.executable, "-m", name]).returncode != 0]
    sys.exit(f"failed: {', '.join(failed)}" if failed else 0)
