"""Render speed and memory: ragreel's renderer against ffmpeg's concat demuxer on the same frames.

    .venv/bin/python bench/render_bench.py            # 60 s 1280x720, 2 repeats, RSS at 60 s and 300 s
    .venv/bin/python bench/render_bench.py --sheets bench/results   # and contact sheets per aspect

It renders a synthetic 60 s English answer (a WAV of tones with 12 timed sentences) as slides
through ``render_video``: four scenes quoting the sample knowledge base, one as its PDF page
region (with the PDF's figure beside it where there is room), one with a picture zooming, every
word lit as it is said. Then it renders the very same
distinct frames (drawn and saved as PNGs beforehand, untimed) with ``ffmpeg -f concat`` and the
same encoder settings, and prints the time ratio (target: at most 1.5 with motion), and the
same render with the pictures held still, which is what the motion costs. For reference it also
times moviepy's plain ``write_videofile`` with cached RGB frames, the approach the renderer does
not use. Runs alternate so machine load hits both sides alike. Peak RSS of a whole render
(Python and ffmpeg separately) is measured in fresh subprocesses for a 60 s and a 300 s video.

``--sheets FOLDER`` also renders an English and a Chinese sample in every aspect and writes one
contact sheet per aspect (``contact-<aspect>.png``): a frame from the middle of every scene.
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

from bench.figures import Figure, record  # noqa: E402
from ragreel.schemas import Narration, Slide, Source, TimedSentence  # noqa: E402
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

KB = ROOT / "data" / "kb"
RAIL_PDF = KB / "high-speed-rail.pdf"
ALTITUDE = KB / "tea" / "high-mountain-altitude.png"
TEMPERATURE = KB / "tea" / "oolong-water-temperature.png"
# Sample answers from the sample knowledge base: per scene, its three sentences and its slide.
SAMPLES = {
    "en": (
        "How many stations does Taiwan High Speed Rail have, and how fast is it?",
        [
            (["The Taiwan High Speed Rail has 12 stations.", "They run from Nangang in Taipei to Zuoying.",
              "Many of them connect to the MRT."],
             dict(key_point="12 stations", page=1, picture="rail-figure",
                  quote="The line has 12 stations: Nangang, Taipei, Banqiao, Taoyuan, Hsinchu, Miaoli, Taichung, "
                        "Changhua, Yunlin, Chiayi, Tainan and Zuoying.", quote_title="Taiwan High Speed Rail")),
            (["Trains run at up to 300 kilometres per hour.", "The fastest reach Zuoying in under two hours.",
              "The old railway takes more than four hours."],
             dict(key_point="Up to 300 km/h", page=1, quote="Trains run at up to 300 kilometres per hour.",
                  quote_title="Taiwan High Speed Rail")),
            (["Oolong leaves are partly oxidised.", "Usually somewhere between 15 and 70 percent.",
              "Light ones taste floral, roasted ones of honey."],
             dict(key_point="15 to 70 percent oxidised",
                  quote="Oolong sits between green and black tea: the leaves are partly oxidised, usually "
                        "somewhere between 15 and 70 percent.", quote_title="Brewing Oolong Tea at Home")),
            (["Brew it with water at 90 to 95 degrees.", "Dark, roasted oolongs can take boiling water.",
              "Hard water dulls the aroma."],
             dict(key_point="90 to 95 °C", picture=str(TEMPERATURE), picture_caption="Water temperature for oolong",
                  quote="Lightly oxidised oolongs brew best at 90 to 95 degrees Celsius;",
                  quote_title="Brewing Oolong Tea at Home", quote_heading="Water",
                  before="Use fresh, soft water.")),
        ],
    ),
    "zh": (
        "高山烏龍茶要種在多高的地方？",
        [
            (["高山茶生長在海拔一千公尺以上的茶園。", "梨山茶園的海拔可達兩千公尺以上。", "產量少，價格也最高。"],
             dict(key_point="海拔一千公尺以上", picture=str(ALTITUDE), picture_caption="高山茶與海拔",
                  quote="一般來說，生長在海拔一千公尺以上茶園的烏龍茶，才稱為高山茶。", quote_title="台灣高山烏龍茶")),
            (["高山地區日夜溫差大。", "午後常有雲霧籠罩。", "茶樹生長緩慢，葉片肥厚。"],
             dict(key_point="日夜溫差大", quote="高山地區日夜溫差大，午後常有雲霧籠罩，茶樹生長緩慢，葉片肥厚。",
                  quote_title="台灣高山烏龍茶", quote_heading="產地與氣候")),
            (["沖泡要用九十到九十五度的熱水。", "每一百五十毫升放五公克茶葉。", "好茶可以回沖五到七次。"],
             dict(key_point="九十到九十五度", quote="建議使用攝氏九十到九十五度的熱水。",
                  quote_title="台灣高山烏龍茶", quote_heading="沖泡方法", after="每一百五十毫升的水，放入約五公克的茶葉。")),
        ],
    ),
}  # fmt: skip


SAMPLE_SOURCES = {
    "en": [
        Source(title="Taiwan High Speed Rail", source="high-speed-rail.pdf"),
        Source(title="台灣高山烏龍茶", source="tea/high-mountain-oolong.md"),
        Source(title="Brewing Oolong Tea at Home", source="tea/brewing-guide.md"),
    ],
    "zh": [Source(title="台灣高山烏龍茶", source="tea/high-mountain-oolong.md")],
}


def sample_slides(folder: Path, language: str) -> tuple[str, list[str], list[Slide]]:
    """A sample answer's question, sentences and slides; the PDF's figure saved into ``folder``."""
    from ragreel.kb.loaders import load_document

    figure = folder / "rail-figure.png"
    if not figure.exists():
        figure.write_bytes(load_document(RAIL_PDF).sections[0].pictures[0].data)
    question, scenes = SAMPLES[language]
    sentences, slides = [], []
    for texts, fields in scenes:
        fields = dict(fields)
        if fields.get("picture") == "rail-figure":
            fields["picture"] = str(figure)
        if fields.get("page"):
            fields["page_pdf"] = str(RAIL_PDF)
        sentences += texts
        slides.append(Slide(narration=" ".join(texts), **fields))
    return question, sentences, slides


def synthetic_narration(
    folder: Path,
    seconds: float,
    sample_rate: int = 24000,
    sentences: list[str] = SENTENCES,
    language: str = "en",
) -> Narration:
    """A mono WAV of ``seconds`` with tones per sentence and short pauses, and its timeline (words
    timed by their length, as the fallback timing does)."""
    import numpy as np

    from ragreel.speech.words import even_words

    texts = [sentences[i % len(sentences)] for i in range(max(1, round(len(sentences) * seconds / 60)))]
    pause = 0.35
    speech = (seconds - pause * len(texts)) / len(texts)
    timed, chunks, clock = [], [], 0.0
    for number, text in enumerate(texts):
        samples = int(speech * sample_rate)
        tone = np.sin(np.arange(samples) * 2 * np.pi * (180 + 20 * (number % 8)) / sample_rate)
        chunks.append((tone * 5000).astype(np.int16))
        sentence = TimedSentence(text=text, start=clock, end=clock + samples / sample_rate)
        timed.append(sentence.model_copy(update={"words": even_words(sentence)}))
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
        wav_path=str(path), sample_rate=sample_rate, duration=clock, language=language, voice="bench:tones",
        sentences=timed,
    )  # fmt: skip


def plan(narration: Narration, settings, slides: list[Slide], question: str = QUESTION):
    """The same stills, frame counts and audio ``render_video`` uses (through its own modules)."""
    import math

    from ragreel.video.encode import probe_audio
    from ragreel.video.fonts import find_font
    from ragreel.video.frames import plan_stills
    from ragreel.video.layout import Typesetter, build_pages, geometry_for, slide_subtitle_lines

    geometry = geometry_for(settings.aspect)
    typesetter = Typesetter(find_font(settings))
    audio = probe_audio(Path(narration.wav_path))
    fps = settings.fps
    pages = build_pages(
        narration.sentences, typesetter.measure("subtitle", geometry.subtitle_px), geometry.text_width,
        slide_subtitle_lines(geometry) if slides else geometry.subtitle_lines,
    )  # fmt: skip
    title_frames = round(settings.title_seconds * fps)
    stills = plan_stills(
        question=question, pages=pages, sources=SOURCES, language=narration.language, typesetter=typesetter,
        geometry=geometry, fps=fps, title_frames=title_frames,
        answer_frames=math.ceil(audio.duration * fps - 1e-6), closing_frames=round(settings.sources_seconds * fps),
        slides=slides,
    )  # fmt: skip
    return geometry, audio, stills, title_frames / fps


def concat_baseline(
    folder: Path, narration: Narration, settings, slides: list[Slide]
) -> tuple[list[str], Path]:
    """PNGs of every still and the ffmpeg concat-demuxer command that renders them."""
    from ragreel.video.encode import audio_output_args, ffmpeg_exe, video_output_args

    geometry, audio, stills, title_offset = plan(narration, settings, slides)
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


def moviepy_rgb_reference(folder: Path, narration: Narration, settings, slides: list[Slide]) -> float:
    """moviepy's own write_videofile over cached RGB frames: what the renderer avoids."""
    import bisect

    import numpy as np
    from moviepy import VideoClip

    from ragreel.video.encode import audio_output_args

    geometry, audio, stills, title_offset = plan(narration, settings, slides)
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


def timed_render(
    narration: Narration, folder: Path, settings, slides: list[Slide], *, motion: bool = True
) -> tuple[float, float]:
    from ragreel.video import encode
    from tasks.render import render_video

    step = encode.MOTION_STEP
    encode.MOTION_STEP = step if motion else 10**9  # held still: drawn once per still
    try:
        return timed(
            lambda: render_video(
                narration,
                QUESTION,
                SOURCES,
                folder,
                narration.language,
                stem="bench",
                settings=settings,
                slides=slides,
            )  # fmt: skip
        )
    finally:
        encode.MOTION_STEP = step


def contact_sheets(folder: Path, out: Path) -> list[Path]:
    """Render the English and the Chinese sample in each aspect; a sheet per aspect with a frame
    from the middle of every scene."""
    from bench.contact_sheet import contact_sheet
    from ragreel.video.layout import scenes_of_pages
    from tasks.render import render_video

    out.mkdir(parents=True, exist_ok=True)
    sheets = []
    for aspect in ("landscape", "portrait", "square"):
        settings = get_settings(aspect=aspect, fps=30)
        videos, times = [], []
        for language in ("en", "zh"):
            question, sentences, slides = sample_slides(folder, language)
            # A minute holds each sentence once (the synthetic narration fills it with the list).
            narration = synthetic_narration(folder, 60.0, sentences=sentences, language=language)
            result = render_video(narration, question, SAMPLE_SOURCES[language], folder / f"{aspect}-{language}",
                                  language, settings=settings, slides=slides)  # fmt: skip
            scene_of = scenes_of_pages([s.text for s in narration.sentences], [s.narration for s in slides])
            middles = []
            for scene in range(len(slides)):
                spans = [s for s, n in zip(narration.sentences, scene_of, strict=True) if n == scene]
                middles.append(settings.title_seconds + (spans[0].start + spans[-1].end) / 2)
            videos.append(Path(result.mp4_path))
            times.append(
                [settings.title_seconds / 2, *middles, result.duration - settings.sources_seconds / 2]
            )
        height = 300 if aspect == "landscape" else 480
        sheets.append(
            contact_sheet(videos, out / f"contact-{aspect}.png", height=height, columns=6, times=times)
        )
    return sheets


def rss_child(seconds: float) -> None:
    """Run in a fresh process: one render, then print peak RSS of Python and of ffmpeg."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        narration = synthetic_narration(folder, seconds)
        _, _, slides = sample_slides(folder, "en")
        elapsed, _ = timed_render(narration, folder / "out", get_settings(aspect="landscape", fps=30), slides)
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
    parser.add_argument("--sheets", type=Path, help="also write contact sheets per aspect into this folder")
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
        _, sentences, slides = sample_slides(folder, "en")
        narration = synthetic_narration(folder, args.seconds, sentences=sentences)
        command, _ = concat_baseline(folder, narration, settings, slides)
        runs: dict[str, list[tuple[float, float]]] = {"concat": [], "render": [], "still": []}
        for repeat in range(args.repeats):
            runs["concat"].append(timed(lambda: subprocess.run(command, check=True)))
            runs["render"].append(timed_render(narration, folder / f"out{repeat}", settings, slides))
            runs["still"].append(
                timed_render(narration, folder / f"still{repeat}", settings, slides, motion=False)
            )
            print(
                "run {}: ffmpeg concat {:.2f} s ({:.2f} s CPU), render_video {:.2f} s ({:.2f} s CPU), "
                "pictures held still {:.2f} s".format(repeat + 1, *runs["concat"][-1], *runs["render"][-1],
                                                       runs["still"][-1][0]),
                flush=True,
            )  # fmt: skip

        def ratio(side: str, index: int = 0) -> float:
            return statistics.median(
                o[index] / b[index] for o, b in zip(runs[side], runs["concat"], strict=True)
            )

        median = {side: statistics.median(run[0] for run in values) for side, values in runs.items()}
        print(
            f"{args.seconds:.0f} s 1280x720@30 as {len(slides)} slides (a PDF page, pictures zooming, words lit): "
            f"render_video {median['render']:.2f} s, ffmpeg concat of its distinct frames {median['concat']:.2f} s: "
            f"ratio {ratio('render'):.2f}x wall (target <= 1.50), {ratio('render', 1):.2f}x CPU time; "
            f"with the pictures held still {ratio('still'):.2f}x, so the motion costs "
            f"{median['render'] - median['still']:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
        record(
            Figure(
                name=f"render: {args.seconds:.0f} s 720p answer, slides and motion, vs ffmpeg concat",
                value=round(median["render"], 2),
                unit="s",
                baseline=round(median["concat"], 2),
                target=("<=", 1.5),
                note=f"pictures held still: {median['still']:.2f} s",
            )
        )
        if not args.skip_moviepy:
            reference = moviepy_rgb_reference(folder, narration, settings, slides)  # wall seconds
            print(
                f"reference: moviepy write_videofile with cached RGB frames {reference:.2f} s, "
                f"{reference / median['concat']:.2f}x the concat baseline"
            )
        if args.sheets:
            for sheet in contact_sheets(folder, args.sheets):
                print(f"contact sheet: {sheet}")
    if not args.skip_rss:
        peaks = {}
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
            peaks[seconds] = rss["python_mib"] + rss["ffmpeg_mib"]
        record(
            Figure(
                name="render: peak memory, 300 s of video vs 60 s",
                value=round(peaks[300.0]),
                unit="MiB",
                baseline=round(peaks[60.0]),
                target=("<=", 1.1),
                note="python and ffmpeg together: flat means no growth with length",
            )
        )


if __name__ == "__main__":
    main()
