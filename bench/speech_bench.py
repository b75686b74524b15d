"""Speech bench: each voice's compute time per second of audio, and how intelligible it is.

    .venv/bin/python bench/speech_bench.py [--voices piper,kokoro,espeak,bark] [--repeat 2]

For each voice and language it speaks, narrates the reference paragraphs of
``bench.asr.SAMPLE_PARAGRAPHS`` through ``tasks.speak.narrate`` (after one warm-up
call, so loading is reported apart), then transcribes the WAV with offline Whisper base and
scores it: word error rate for English, character error rate for Mandarin (both sides in one
script). The baseline, measured in the same run, is espeak-ng: ``x espeak`` is each voice's
compute per audio second divided by espeak's for the same language. Bark is measured only when
RAGREEL_BARK_MODEL points at real weights.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.asr import SAMPLE_PARAGRAPHS, character_error_rate, transcribe, word_error_rate  # noqa: E402
from bench.figures import Figure, record  # noqa: E402
from ragreel.settings import get_settings  # noqa: E402
from ragreel.speech.bark import bark_available  # noqa: E402
from ragreel.speech.voices import resolve_voice  # noqa: E402
from tasks.speak import narrate  # noqa: E402

PAIRS = {"espeak": ("en", "zh"), "piper": ("en",), "kokoro": ("en", "zh"), "bark": ("en", "zh")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--voices", default="espeak,piper,kokoro,bark")
    parser.add_argument(
        "--repeat", type=int, default=2, help="timed narrations per voice and language (median)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings()
    voices = [v.strip() for v in args.voices.split(",") if v.strip()]
    if "espeak" not in voices:
        voices.insert(0, "espeak")  # the baseline
    if "bark" in voices and not bark_available(settings.bark_model):
        print("bark: skipped (RAGREEL_BARK_MODEL is not set to real Bark weights)")
        voices.remove("bark")

    rows = []
    baseline: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for kind in voices:
            for language in PAIRS[kind]:
                started = time.perf_counter()
                voice = resolve_voice(language, kind, settings)
                narrate("Warm up.", language, Path(scratch) / "warm.wav", voice=kind, settings=settings)
                load_s = time.perf_counter() - started
                wav = Path(scratch) / f"{kind}-{language}.wav"
                timings = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    narration = narrate(
                        SAMPLE_PARAGRAPHS[language], language, wav, voice=kind, settings=settings
                    )
                    timings.append(time.perf_counter() - started)
                compute = statistics.median(timings) / narration.duration
                if kind == "espeak":
                    baseline[language] = compute
                heard = transcribe(wav, language, settings.model_cache_dir)
                score = (word_error_rate if language == "en" else character_error_rate)(
                    SAMPLE_PARAGRAPHS[language], heard
                )
                rows.append(
                    (
                        voice.name,
                        language,
                        load_s,
                        narration.duration,
                        compute,
                        compute / baseline[language],
                        "WER" if language == "en" else "CER",
                        score,
                        heard,
                    )
                )

    print(
        f"\nsample rate {settings.sample_rate} Hz; compute = narrate() seconds per second of audio "
        f"(median of {args.repeat}); baseline espeak-ng, same run"
    )
    print(
        f"{'voice':<22} {'lang':<4} {'load+1st s':>10} {'audio s':>8} {'compute':>8} {'x espeak':>9} {'error':>11}"
    )
    for name, language, load_s, duration, compute, ratio, metric, score, _ in rows:
        print(
            f"{name:<22} {language:<4} {load_s:>10.2f} {duration:>8.2f} {compute:>8.3f} {ratio:>9.1f} "
            f"{metric} {score:>6.3f}"
        )
    for name, language, _, _, compute, _, metric, score, _ in rows:
        record(
            Figure(
                name=f"speech: {name} ({language}), compute per second of audio",
                value=round(compute, 3),
                unit="s/s",
                baseline=round(baseline[language], 3),
                note=f"{metric} {score:.3f}; baseline espeak-ng",
            ),
            Figure(
                name=f"speech: {name} ({language}), {metric} heard by Whisper",
                value=round(score, 3),
                unit=metric,
            ),
        )
    print("\nwhat Whisper heard:")
    for name, language, *_, heard in rows:
        print(f"  {name} [{language}]: {heard}")


if __name__ == "__main__":
    main()
