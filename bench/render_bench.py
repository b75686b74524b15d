"""Render speed and memory: ragreel's renderer against ffmpeg's concat demuxer on the same frames.

    .venv/bin/python bench/render_bench.py            # 60 s 1280x720, 2 repeats, RSS at 60 s and 300 s

It renders a synthetic 60 s English answer (a WAV of tones with 12 timed sentences) through
``render_video``, then renders the very same pre-drawn frames (saved as PNGs beforehand,
untimed) with ``ffmpeg -f concat`` and the same encoder settings, and prints the time ratio
(target: at most 1.2). For reference it also times moviepy's plain ``write_videofile`` with
cached RGB frames, the approach the renderer does not use. Runs alternate so machine load
hits both sides alike. Peak RSS of a whole render (Python and ffmpeg separately) is
measured in fresh subprocesses for a 60 s and a 300 s video.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ragreel.schemas import Narration, Source, TimedSentence  # noqa: E402
from ragreel.settings import get_settings  # noqa: E402

SENTENCES = [
    "Green tea keeps its flavour best in an airtight, opaque container.",
    "Light, heat, moisture and strong smells are its four enemies [1].",
    "A cool cupboard is enough for tea you will finish within a month.",
    "For longer storage many shops recommend the refrigerator, sealed tightly.",
    "Let a cold container reach room temperature before you open it.",
    "Otherwise moisture condenses on the leaves and spoils them quickly [2].",
    "Buy small amounts, and check the harvest date on the package.",
    "Spring harvests are prized for their sweetness and fresh aroma.",
    "Brew with water around seventy to eighty degrees Celsius.",
    "Boiling water scalds the leaves and draws out bitter compounds [3].",
    "Steep for one to three minutes, then taste and adjust.",
    "Good leaves can be steeped two or three times in a row.",
]
SOURCES = [
    Source(title="Storing tea at home", source="guides/tea/storage.md"),
    Source(title="Refrigerating tea: the moisture problem", source="articles/refrigerating-tea.pdf"),
    Source(title="Brewing temperatures", source="guides/tea/brewing.md"),
]
QUESTION = "How should I store and brew green tea so that it keeps its flavour?"


def synthetic_narration(folder: Path, seconds: float, sample_rate: int = 24000) -> Narration:
    """A mono WAV of ``seconds`` with tones per sentence and short pauses, and its timeline."""
    import numpy as np

    texts = [SENTENCES[i % len(SENTENCES)] for i in range(max(1, round(len(SENTENCES) * seconds / 60)))]
    pause = 0.35
    speech = (seconds - pause * len(texts)) / len(texts)
    sentences, chunks, clock = [], [], 0.0
    for number, text in enumerate(texts):
        samples = int(speech * sample_rate)
        tone = np.sin(np.arange(samples) * 2 * np.pi * (180 + 20 * (number % 8)) / sample_rate)
        chunks.append((tone * 5000).astype(np.int16))
        sentences.append(TimedSentence(text=text, start=clock, end=clock + samples / sample_rate))
        clock += samples / sample_rate
        gap = int(pause * sample_rate)
        chunks.append(np.zeros(gap, dtype=np.int16))
        clock += gap / sample_rate
    path = folder / "narration.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate)
        wav.writeframes(np.concatenate(chunks).tobytes())
    return Narration(
        wav_path=str(path), sample_rate=sample_rate, duration=clock, language="en", voice="bench:tones",
        sentences=sentences,
    )  # fmt: skip


def plan(narration: Narration, settings):
    """The same stills, frame counts and audio ``render_video`` uses (through its own modules)."""
    import math

    from ragreel.video.encode import probe_audio
    from ragreel.video.fonts import find_font
    from ragreel.video.frames import plan_stills
    from ragreel.video.layout import Typesetter, build_pages, geometry_for

    geometry = geometry_for(settings.aspect)
    typesetter = Typesetter(find_font(settings))
    audio = probe_audio(Path(narration.wav_path))
    fps = settings.fps
    pages = build_pages(
        narration.sentences, typesetter.measure("subtitle", geometry.subtitle_px), geometry.text_width,
        geometry.subtitle_lines,
    )  # fmt: skip
    title_frames = round(settings.title_seconds * fps)
    stills = plan_stills(
        question=QUESTION, pages=pages, sources=SOURCES, language="en", typesetter=typesetter,
        geometry=geometry, fps=fps, title_frames=title_frames,
        answer_frames=math.ceil(audio.duration * fps - 1e-6), closing_frames=round(settings.sources_seconds * fps),
    )  # fmt: skip
    return geometry, audio, stills, title_frames / fps


def concat_baseline(folder: Path, narration: Narration, settings) -> tuple[list[str], Path]:
    """PNGs of every still and the ffmpeg concat-demuxer command that renders them."""
    from ragreel.video.encode import audio_output_args, ffmpeg_exe, video_output_args

    geometry, audio, stills, title_offset = plan(narration, settings)
    fps = settings.fps
    listing = []
    for number, still in enumerate(stills):
        png = folder / f"still-{number:03d}.png"
        still.draw().save(png)
        listing.append(f"file '{png}'\nduration {still.frames / fps:.6f}\n")
    listing.append(
        f"file '{folder / f'still-{len(stills) - 1:03d}.png'}'\n"
    )  # concat needs the last one twice
    (folder / "stills.txt").write_text("".join(listing))
    total = stills[-1].end / fps
    out = folder / "baseline.mp4"
    command = [
        ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "concat", "-safe", "0", "-i", str(folder / "stills.txt"),
        "-i", narration.wav_path, "-map", "0:v:0", "-map", "1:a:0",
        *video_output_args(fps), *audio_output_args(title_offset, total),
        "-t", f"{total:.6f}", "-movflags", "+faststart", "-f", "mp4", str(out),
    ]  # fmt: skip
    return command, out


def moviepy_rgb_reference(folder: Path, narration: Narration, settings) -> float:
    """moviepy's own write_videofile over cached RGB frames: what the renderer avoids."""
    import bisect

    import numpy as np
    from moviepy import VideoClip

    from ragreel.video.encode import audio_output_args

    geometry, audio, stills, title_offset = plan(narration, settings)
    fps = settings.fps
    frames = [np.asarray(still.draw().convert("RGB")) for still in stills]
    ends = [still.end for still in stills]
    total = stills[-1].end / fps

    def frame_at(t: float):
        return frames[min(len(frames) - 1, bisect.bisect_right(ends, round(t * fps)))]

    clip = VideoClip(frame_function=frame_at, duration=total)
    started = time.perf_counter()
    clip.write_videofile(
        str(folder / "moviepy-rgb.mp4"), fps=fps, codec="libx264", audio=narration.wav_path, audio_codec="aac",
        preset="veryfast", logger=None,
        ffmpeg_params=["-tune", "stillimage", "-crf", "20", *audio_output_args(title_offset, total)[:2],
                       "-movflags", "+faststart"],
    )  # fmt: skip
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """CPU time used so far by this process and its finished children (ffmpeg), user + system."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(action) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process and its children) of ``action()``."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    action()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def timed_render(narration: Narration, folder: Path, settings) -> tuple[float, float]:
    from tasks.render import render_video

    return timed(
        lambda: render_video(narration, QUESTION, SOURCES, folder, "en", stem="bench", settings=settings)
    )


def rss_child(seconds: float) -> None:
    """Run in a fresh process: one render, then print peak RSS of Python and of ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        narration = synthetic_narration(folder, seconds)
        elapsed, _ = timed_render(narration, folder / "out", get_settings(aspect="landscape", fps=30))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "python_mib": own, "ffmpeg_mib": children, "elapsed": elapsed}))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="narration length (default 60)")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each side (default 2)")
    parser.add_argument("--skip-rss", action="store_true", help="skip the 60 s / 300 s memory runs")
    parser.add_argument(
        "--skip-moviepy", action="store_true", help="skip the plain write_videofile reference"
    )
    parser.add_argument("--rss-child", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child)
        return
    logging.basicConfig(level=logging.WARNING)
    settings = get_settings(aspect="landscape", fps=30)

    import moviepy  # noqa: F401  (imported before timing: a first import costs about a second)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        narration = synthetic_narration(folder, args.seconds)
        command, _ = concat_baseline(folder, narration, settings)
        ours, baseline, ours_cpu, baseline_cpu = [], [], [], []
        for repeat in range(args.repeats):
            wall, cpu = timed(lambda: subprocess.run(command, check=True))
            baseline.append(wall)
            baseline_cpu.append(cpu)
            wall, cpu = timed_render(narration, folder / f"out{repeat}", settings)
            ours.append(wall)
            ours_cpu.append(cpu)
            print(
                f"run {repeat + 1}: ffmpeg concat {baseline[-1]:.2f} s ({baseline_cpu[-1]:.2f} s CPU), "
                f"render_video {ours[-1]:.2f} s ({ours_cpu[-1]:.2f} s CPU)",
                flush=True,
            )
        ratio = statistics.median(o / b for o, b in zip(ours, baseline, strict=True))
        cpu_ratio = statistics.median(o / b for o, b in zip(ours_cpu, baseline_cpu, strict=True))
        print(
            f"{args.seconds:.0f} s 1280x720@30: render_video {statistics.median(ours):.2f} s, "
            f"ffmpeg concat of the same frames {statistics.median(baseline):.2f} s: "
            f"ratio {ratio:.2f}x wall (target <= 1.20), {cpu_ratio:.2f}x CPU time; "
            f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        if not args.skip_moviepy:
            reference = moviepy_rgb_reference(folder, narration, settings)  # wall seconds
            print(
                f"reference: moviepy write_videofile with cached RGB frames {reference:.2f} s, "
                f"{reference / statistics.median(baseline):.2f}x the concat baseline"
            )
    if not args.skip_rss:
        for seconds in (60.0, 300.0):
            result = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(seconds)],
                check=True,
                capture_output=True,
                text=True,
            )
            rss = json.loads(result.stdout.strip().splitlines()[-1])
            print(
                f"peak RSS, {seconds:.0f} s video: python {rss['python_mib']:.0f} MiB, "
                f"ffmpeg {rss['ffmpeg_mib']:.0f} MiB (render {rss['elapsed']:.1f} s)"
            )


if __name__ == "__main__":
    main()
