"""Batch throughput: videos per hour of a batch against separate commands, and its memory per row.

    python -m bench.batch_bench                 # 6 separate commands; 6 rows at concurrency 1 and 2; 24 at 2
    python -m bench.batch_bench --full          # also 24 rows at concurrency 1 (about 5 more minutes)

The rows are questions of the evaluation set (half English, half Chinese) over its documents, each
with a reviewed script: the passage sentences closest to the question, as ``--script`` and a review
manifest carry them. So every row retrieves, checks its script against the passages, speaks, times
its words and renders, and no model is asked (the model's time per answer is ``bench.llm_bench``'s
figure; here it would only add the same seconds to every configuration). The baseline is the same
first 6 rows as separate ``python -m flows.generate --script`` commands, one after the other, as a
user without the batch command would run them: each pays its own start-up and model loading.

Every run has a fresh RAGREEL_HOME (a copy of the ingested knowledge base) and its own Prefect
result folder, so nothing comes from cache. Peak memory is the whole process tree's (the command,
its Prefect server, ffmpeg), as proportional set size so that pages shared between processes count
once, sampled twice a second: a batch whose peak at 24 rows matches its peak at 6 does not grow
per row.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench.figures import Figure, record
from bench.retrieval_eval import EVAL_DIR, load_questions

REPO = Path(__file__).resolve().parent.parent
# Short answers keep the benchmark inside `make bench`'s time; every configuration renders the same.
ANSWER_SENTENCES = 2


def rows_with_scripts(count: int) -> list[dict]:
    """The first ``count`` questions, alternating English and Chinese, each with its extractive script."""
    from ragreel.llm.evidence import best_sentences
    from tasks.retrieve import retrieve_passages

    by_language = {"en": [], "zh": []}
    for item in load_questions():
        if item.get("kind", "literal") == "literal":
            by_language[item["language"]].append(item)
    rows = []
    for number, (en, zh) in enumerate(zip(by_language["en"], by_language["zh"], strict=False), start=1):
        for item in (en, zh):
            passages = retrieve_passages(item["question"])
            scenes = best_sentences(item["question"], passages, item["language"], count=ANSWER_SENTENCES)
            if scenes:
                script = {"scenes": [s.model_dump(mode="json") for s in scenes]}
                rows.append({"id": f"{item['language']}-{number}", "question": item["question"], "language": item["language"],
                             "script": json.dumps(script, ensure_ascii=False)})  # fmt: skip
    if len(rows) < count:
        sys.exit(f"only {len(rows)} evaluation questions have a script, {count} wanted")
    return rows[:count]


def write_sheet(rows: list[dict], path: Path) -> Path:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=["id", "question", "language", "script"])
        writer.writeheader()
        writer.writerows(rows)
    return path


class PeakMemory:
    """The highest proportional set size (PSS) of a process and all its descendants, sampled until stopped."""

    def __init__(self, pid: int) -> None:
        import psutil

        self._root, self._psutil, self.peak_mb = psutil.Process(pid), psutil, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.5):
            try:
                tree = [self._root, *self._root.children(recursive=True)]
            except self._psutil.NoSuchProcess:
                return
            total = 0
            for process in tree:
                # PSS shares each shared page among its processes: a forked child (ffmpeg, before it
                # execs) would otherwise count its parent's whole resident set a second time
                with contextlib.suppress(self._psutil.NoSuchProcess, self._psutil.AccessDenied):
                    total += process.memory_full_info().pss
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


def run(command: list[str], kb: Path, scratch: Path, name: str) -> tuple[float, float, str]:
    """Seconds and peak memory (MB) of ``command`` on a fresh home holding a copy of ``kb``."""
    home = scratch / name
    shutil.copytree(kb, home / "kb")
    env = {
        **os.environ,
        "RAGREEL_HOME": str(home),
        "PREFECT_RESULTS_LOCAL_STORAGE_PATH": str(home / "prefect-results"),
    }
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    memory = PeakMemory(process.pid)
    out, err = process.communicate()
    seconds, peak = time.perf_counter() - started, memory.stop()
    if process.returncode != 0:
        sys.exit(f"{name}: {' '.join(command[:4])} failed ({process.returncode}):\n{err[-3000:]}")
    return seconds, peak, out


def batch(sheet: Path, concurrency: int, kb: Path, scratch: Path) -> tuple[float, float, int]:
    name = f"batch-{sheet.stem}-c{concurrency}"
    seconds, peak, out = run(
        [sys.executable, "-m", "flows.batch", str(sheet), "--concurrency", str(concurrency), "--json"],
        kb,
        scratch,
        name,
    )
    summary = json.loads(out)
    if summary["failed"] or summary["skipped"]:
        sys.exit(
            f"{name}: {summary['failed']} rows failed, {summary['skipped']} skipped: see {summary['manifest_json']}"
        )
    manifest = json.loads(Path(summary["manifest_json"]).read_text(encoding="utf-8"))
    cached = [entry for entry in manifest if entry.get("from_cache")]
    if cached:
        sys.exit(f"{name}: rows came from cache ({cached[0]['from_cache']}): the figure would not be work")
    print(f"{name}: {summary['succeeded']} videos in {seconds:.0f} s, peak {peak:.0f} MB", flush=True)
    return seconds, peak, summary["succeeded"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.batch_bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--full", action="store_true", help="also run 24 rows at concurrency 1")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="ragreel-batch-bench-") as scratch_name:
        scratch = Path(scratch_name)
        os.environ["RAGREEL_HOME"] = str(scratch / "source")
        from flows.ingest import ingest_knowledge_base

        print("ingesting the evaluation documents and writing scripts (not timed)...", flush=True)
        ingest_knowledge_base([str(EVAL_DIR / "docs")])
        rows = rows_with_scripts(24)
        kb = scratch / "source" / "kb"
        six, twenty_four = write_sheet(rows[:6], scratch / "six.csv"), write_sheet(rows, scratch / "all.csv")

        separate_seconds, separate_peak = 0.0, 0.0
        for number, row in enumerate(rows[:6], start=1):
            script = scratch / f"script-{number}.json"
            script.write_text(row["script"], encoding="utf-8")
            command = [sys.executable, "-m", "flows.generate", row["question"], "--language", row["language"]]
            seconds, peak, _ = run(
                [*command, "--script", str(script), "--json"], kb, scratch, f"separate-{number}"
            )
            separate_seconds, separate_peak = separate_seconds + seconds, max(separate_peak, peak)
        print(f"6 separate commands: {separate_seconds:.0f} s, peak {separate_peak:.0f} MB", flush=True)
        separate_rate = 3600 * 6 / separate_seconds

        results = {}  # (rows, concurrency) -> (seconds, peak MB, videos)
        results[6, 1] = batch(six, 1, kb, scratch)
        results[6, 2] = batch(six, 2, kb, scratch)
        results[24, 2] = batch(twenty_four, 2, kb, scratch)
        if args.full:
            results[24, 1] = batch(twenty_four, 1, kb, scratch)

    figures = [
        Figure(name="batch: 6 separate generate commands", value=round(separate_rate), unit="videos/hour",
               note=f"{ANSWER_SENTENCES}-sentence reviewed scripts, no model asked; peak {separate_peak:.0f} MB"),
    ]  # fmt: skip
    for (count, concurrency), (seconds, peak, videos) in results.items():
        figures.append(
            Figure(
                name=f"batch: {count} rows at concurrency {concurrency} vs 6 separate commands",
                value=round(3600 * videos / seconds),
                unit="videos/hour",
                baseline=round(separate_rate),
                target=(">=", 1.0),
                note=f"{seconds:.0f} s, peak {peak:.0f} MB",
            )
        )
    for concurrency in (1, 2):
        if (6, concurrency) in results and (24, concurrency) in results:
            figures.append(
                Figure(
                    name=f"batch: peak memory, 24 rows vs 6 (concurrency {concurrency})",
                    value=round(results[24, concurrency][1]),
                    unit="MB",
                    baseline=round(results[6, concurrency][1]),
                    target=("<=", 1.1),
                    note="the whole process tree (PSS); flat means no growth per row",
                )
            )
    print(f"\n{'run':<44} {'videos/hour':>11} {'peak MB':>8}")
    print(f"{'6 separate commands':<44} {separate_rate:>11.0f} {separate_peak:>8.0f}")
    for (count, concurrency), (seconds, peak, videos) in results.items():
        print(
            f"{f'batch of {count} at concurrency {concurrency}':<44} {3600 * videos / seconds:>11.0f} {peak:>8.0f}"
        )
    record(*figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
