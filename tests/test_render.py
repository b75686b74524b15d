"""The render stage: fonts, wrapping, layout, subtitles, and real MP4s decoded back."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from ragreel.errors import DependencyMissing, InputError
from ragreel.schemas import Narration, Slide, Source, TimedSentence
from ragreel.settings import get_settings
from ragreel.video import encode
from ragreel.video.fonts import choose_face, find_font, load_font, missing_glyphs
from ragreel.video.frames import (
    draw_answer,
    draw_card,
    draw_slide,
    draw_sources,
    draw_title,
    plain_background,
    plan_stills,
)
from ragreel.video.layout import (
    NO_LINE_END,
    NO_LINE_START,
    Typesetter,
    build_pages,
    geometry_for,
    header_lines,
    layout_answer,
    layout_slide,
    layout_sources,
    scenes_of_pages,
    slide_subtitle_lines,
    wrap_text,
)
from ragreel.video.subtitles import compose_srt, compose_vtt
from tasks.render import render_video

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16000

EN_SENTENCES = [
    "Store green tea in an airtight, opaque container [1].",
    "Keep it away from light, heat and strong smells.",
    "Let a refrigerated container warm up before opening it [2].",
]
ZH_SENTENCES = [
    "綠茶應存放在密封、不透光的容器中[1]。",
    "臺灣的高山茶「冷藏」保存，風味最好。",
]
SOURCES = [
    Source(title="Storing tea at home", source="guides/tea/storage.md"),
    Source(title="Refrigerating tea", source="articles/refrigerating-tea.pdf"),
]
LONG_EN = (
    "For longer storage, many tea shops recommend the refrigerator, but only if the container is "
    "sealed tightly, because tea readily absorbs odours from other foods and moisture condenses on "
    "the leaves whenever a cold container is opened in a warm and humid kitchen during the summer months."
)
LONG_ZH = (
    "若要長期保存，許多茶行建議放進冰箱，但容器必須完全密封，因為茶葉很容易吸收其他食物的氣味，"
    "而且在溫暖的廚房打開冰冷的容器時，水氣會凝結在茶葉上，使茶葉受潮變質（尤其是夏天）、風味流失……"
    "所以「少量購買、盡快喝完」才是上策！"
)


def assert_inside_safe_box(card, geometry) -> None:
    left, top, right, bottom = geometry.safe_box
    for line in card.lines:
        assert (
            left <= line.x
            and line.x + line.width <= right
            and top <= line.y
            and line.y + line.height <= bottom
        )


@pytest.fixture(scope="module")
def typesetter() -> Typesetter:
    return Typesetter(find_font(get_settings()))


def ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def make_narration(folder: Path, texts: list[str], seconds: float = 1.2, pause: float = 0.3, language="en"):
    """A WAV with one tone per sentence (different pitches) and its timeline."""
    chunks, sentences, clock = [], [], 0.0
    for number, text in enumerate(texts):
        samples = int(seconds * SAMPLE_RATE)
        tone = np.sin(np.arange(samples) * 2 * np.pi * (300 + 100 * number) / SAMPLE_RATE)
        chunks.append((tone * 8000).astype(np.int16))
        sentences.append(TimedSentence(text=text, start=clock, end=clock + seconds))
        chunks.append(np.zeros(int(pause * SAMPLE_RATE), dtype=np.int16))
        clock += seconds + pause
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "narration.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes(np.concatenate(chunks).tobytes())
    return Narration(
        wav_path=str(path), sample_rate=SAMPLE_RATE, duration=clock, language=language, voice="test:tones",
        sentences=sentences,
    )  # fmt: skip


def decode_frames(path: Path, times: list[float]) -> list[np.ndarray]:
    """RGB frames of ``path`` shown at each time (the last frame that starts at or before it)."""
    import av

    wanted = sorted(times)
    found: dict[float, np.ndarray] = {}
    with av.open(str(path)) as container:
        previous = None
        for frame in container.decode(video=0):
            while wanted and frame.time > wanted[0] + 1e-6:
                found[wanted.pop(0)] = previous
            previous = frame.to_ndarray(format="rgb24")
            if not wanted:
                break
        for time_left in wanted:
            found[time_left] = previous
    return [found[t] for t in times]


def difference(first, second) -> float:
    return float(np.abs(np.asarray(first, dtype=np.int16) - np.asarray(second, dtype=np.int16)).mean())


def streams(path: Path) -> dict:
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        return {
            "video_codec": video.codec_context.name,
            "audio_codec": audio.codec_context.name,
            "pix_fmt": video.codec_context.pix_fmt,
            "size": (video.width, video.height),
            "video_duration": float(video.duration * video.time_base),
            "audio_duration": float(audio.duration * audio.time_base),
            "frames": video.frames,
        }


def audio_rms(path: Path, start: float, end: float) -> float:
    import av

    samples = []
    with av.open(str(path)) as container:
        for frame in container.decode(audio=0):
            data = frame.to_ndarray().astype(np.float64)
            times = frame.time + np.arange(data.shape[-1]) / frame.sample_rate
            keep = (times >= start) & (times < end)
            samples.append(data[..., keep].ravel())
    joined = np.concatenate(samples)
    return float(np.sqrt(np.mean(joined**2))) if joined.size else 0.0


def assert_decodes(path: Path) -> None:
    result = subprocess.run(
        [ffmpeg(), "-v", "error", "-xerror", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


# --- fonts ------------------------------------------------------------------------------


def test_packaged_font_is_the_traditional_chinese_face(typesetter):
    face = typesetter.face
    assert face.family == "Noto Sans CJK TC"
    # The same collection's Simplified face draws 骨 differently: the TC face was chosen by
    # name, not by luck of the index.
    simplified = next(
        index for index in range(8)
        if load_font(face.__class__(face.path, index, "", face.variable), 20).getname()[0] == "Noto Sans CJK SC"
    )  # fmt: skip
    tc = load_font(face, 64)
    sc = load_font(face.__class__(face.path, simplified, "Noto Sans CJK SC", True), 64)
    assert bytes(tc.getmask("骨")) != bytes(sc.getmask("骨"))
    assert tc.getlength("Latin text") > 0


def test_chinese_characters_render_as_glyphs_not_the_missing_glyph_box(typesetter):
    font = typesetter.font("subtitle", 48)
    notdef = bytes(font.getmask("\uffff"))
    for char in "臺灣綠茶保存「」，。":
        assert bytes(font.getmask(char)) != notdef, char
    assert missing_glyphs(font, "臺灣 tea 綠茶。") == []
    assert missing_glyphs(font, "tea 😀") == ["😀"]


def test_missing_font_package_says_what_to_install(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "manimgx_fonts_cjk" else real_find_spec(name, *a),
    )
    with pytest.raises(DependencyMissing) as caught:
        find_font(get_settings(font_path=None))
    assert "pip install manimgx-fonts-cjk" in str(caught.value)


def test_configured_font_path_must_exist(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        find_font(get_settings(font_path=tmp_path / "nope.ttc"))
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    with pytest.raises(InputError, match="not a font"):
        choose_face(tmp_path / "broken.ttf")


# --- wrapping and pages ------------------------------------------------------------------


@pytest.mark.parametrize("width", [290, 333, 520, 1088])
def test_english_wraps_between_words_only(typesetter, width):
    measure = typesetter.measure("subtitle", 46)
    lines = wrap_text(LONG_EN, measure, width)
    assert len(lines) > 1
    assert " ".join(lines) == LONG_EN  # every break replaced exactly one space
    assert all(measure(line) <= width for line in lines)
    assert all(line == line.strip() for line in lines)


def test_only_a_unit_wider_than_the_line_is_cut(typesetter):
    measure = typesetter.measure("subtitle", 46)
    url = "https://example.org/" + "a" * 80
    lines = wrap_text(f"See {url} now", measure, 400)
    assert lines[0] == "See" and lines[-1].endswith("now")
    assert "".join(line.removesuffix(" now") for line in lines[1:] if line != "now") == url
    assert all(measure(line) <= 400 for line in lines)


def test_chinese_wraps_by_character_without_punctuation_at_line_start(typesetter):
    measure = typesetter.measure("subtitle", 46)
    for width in range(200, 900, 37):  # many widths, so breaks land next to every mark
        lines = wrap_text(LONG_ZH, measure, width)
        assert "".join(lines) == LONG_ZH
        assert all(measure(line) <= width for line in lines), width
        assert not [line for line in lines[1:] if line[0] in NO_LINE_START], (width, lines)
        assert not [line for line in lines[:-1] if line[-1] in NO_LINE_END], (width, lines)
        assert not any(a.endswith("…") and b.startswith("…") for a, b in zip(lines, lines[1:], strict=False))


def test_mixed_text_keeps_latin_words_whole(typesetter):
    measure = typesetter.measure("subtitle", 46)
    text = "使用 LanceDB 與 sentence-transformers 建立全文索引，再以 Python 查詢。"
    widest = int(measure("sentence-transformers")) + 1
    for width in range(widest, widest + 500, 23):
        lines = wrap_text(text, measure, width)
        words = " ".join(lines).split()
        for word in ("LanceDB", "sentence-transformers", "Python"):
            assert any(word in w for w in words), (width, lines)


def test_long_sentence_becomes_pages_inside_the_safe_area(typesetter):
    geometry = geometry_for("landscape")
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    sentence = TimedSentence(text=LONG_EN, start=2.0, end=14.0)
    pages = build_pages([sentence], measure, geometry.text_width, geometry.subtitle_lines)
    assert len(pages) >= 2
    assert all(1 <= len(page.lines) <= geometry.subtitle_lines for page in pages)
    assert " ".join(" ".join(page.lines) for page in pages) == LONG_EN
    assert pages[0].start == 2.0 and pages[-1].end == pytest.approx(14.0)
    assert all(a.end == pytest.approx(b.start) for a, b in zip(pages, pages[1:], strict=False))
    assert pages[0].lines[-1].endswith(",")  # pages end at a clause mark when they can
    header = header_lines("How should I store green tea?", typesetter, geometry)
    left, top, right, bottom = geometry.safe_box
    for page in pages:
        card = layout_answer(header, page.lines, typesetter, geometry)
        assert_inside_safe_box(card, geometry)
        # And in pixels: everything drawn (text with its outline) stays inside the margins.
        drawn = np.asarray(draw_card(card, typesetter, geometry), dtype=np.int16)
        ink = np.argwhere(
            np.abs(drawn - np.asarray(plain_background(geometry), dtype=np.int16)).sum(axis=2) > 0
        )
        (y0, x0), (y1, x1) = ink.min(axis=0), ink.max(axis=0)
        stroke = geometry.stroke_px
        assert x0 >= left - stroke and x1 < right + stroke and y0 >= top - stroke and y1 < bottom + stroke


@pytest.mark.parametrize("aspect", ["landscape", "portrait", "square"])
def test_chinese_pages_fit_each_aspect(typesetter, aspect):
    geometry = geometry_for(aspect)
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    pages = build_pages([TimedSentence(text=LONG_ZH, start=0, end=9)], measure, geometry.text_width, 2)
    assert len(pages) >= 2
    assert "".join("".join(page.lines) for page in pages) == LONG_ZH
    for page in pages:
        assert all(measure(line) <= geometry.text_width for line in page.lines)
        assert page.lines[0][0] not in NO_LINE_START


def test_aspect_sizes():
    assert geometry_for("landscape").size == (1280, 720)
    assert geometry_for("portrait").size == (1080, 1920)
    assert geometry_for("square").size == (1080, 1080)


# --- cards --------------------------------------------------------------------------------


def test_sources_card_lists_titles_and_files(typesetter):
    geometry = geometry_for("landscape")
    long_path = "archive/" + "/".join(["very-long-folder-name"] * 8) + "/brewing-guide.md"
    sources = [*SOURCES, Source(title="Brewing", source=long_path), SOURCES[0]]  # duplicate listed once
    card = layout_sources(sources, typesetter, geometry, "en")
    assert card.texts("heading") == ["Sources"]
    assert card.texts("source_title") == ["1. Storing tea at home", "2. Refrigerating tea", "3. Brewing"]
    files = card.texts("source_file")
    assert files[:2] == ["guides/tea/storage.md", "articles/refrigerating-tea.pdf"]
    assert files[2].startswith("…") and files[2].endswith("/brewing-guide.md")  # the file name stays visible
    left, top, right, bottom = geometry.safe_box
    assert all(left <= line.x and line.x + line.width <= right and top <= line.y for line in card.lines)
    assert all(line.y + line.height <= bottom for line in card.lines)
    with_sources = np.asarray(draw_sources(sources, typesetter, geometry, "en"))
    without = np.asarray(draw_sources([], typesetter, geometry, "en"))
    assert difference(with_sources, without) > 1.0
    assert layout_sources([], typesetter, geometry, "zh").texts() == ["資料來源", "沒有引用資料來源。"]


def test_long_source_titles_take_two_lines_at_most(typesetter):
    geometry = geometry_for("portrait")
    long_title = "Refrigerating tea: the moisture problem and what to do about it " * 3
    card = layout_sources([Source(title=long_title, source="b.md")], typesetter, geometry, "en")
    first, second = card.texts("source_title")
    assert first.startswith("1. Refrigerating") and second.endswith("…")
    left, _, right, _ = geometry.safe_box
    assert all(left <= line.x and line.x + line.width <= right for line in card.lines)


def test_sources_card_counts_what_does_not_fit(typesetter):
    geometry = geometry_for("landscape")
    many = [Source(title=f"Document {n}", source=f"docs/{n}.md") for n in range(1, 21)]
    card = layout_sources(many, typesetter, geometry, "en")
    titles = card.texts("source_title")
    assert 1 <= len(titles) < 20
    assert card.texts("source_file")[-1] == f"+ {20 - len(titles)} more"
    assert all(line.y + line.height <= geometry.safe_box[3] for line in card.lines)


def test_title_card_uses_the_background_image(typesetter, tmp_path):
    from PIL import Image

    geometry = geometry_for("landscape")
    picture = tmp_path / "bg.jpg"
    Image.new("RGB", (640, 480), (200, 40, 40)).save(picture)
    plain = np.asarray(draw_title("Why?", typesetter, geometry, "en"))
    pictured = np.asarray(draw_title("Why?", typesetter, geometry, "en", picture))
    assert pictured.shape == plain.shape
    assert pictured[5, 5, 0] > pictured[5, 5, 2] + 20  # the red picture, darkened, shows behind
    (tmp_path / "bad.png").write_text("not an image")
    with pytest.raises(InputError):
        draw_title("Why?", typesetter, geometry, "en", tmp_path / "bad.png")


def test_stills_tile_the_video_and_pages_start_on_time(typesetter, tmp_path):
    geometry = geometry_for("landscape")
    narration = make_narration(tmp_path, EN_SENTENCES)
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    pages = build_pages(narration.sentences, measure, geometry.text_width, geometry.subtitle_lines)
    stills = plan_stills(
        question="Q?", pages=pages, sources=SOURCES, language="en", typesetter=typesetter, geometry=geometry,
        fps=10, title_frames=20, answer_frames=45, closing_frames=30,
    )  # fmt: skip
    assert stills[0].start == 0 and stills[-1].end == 95
    assert all(a.end == b.start for a, b in zip(stills, stills[1:], strict=False))
    assert [s.name for s in stills] == ["title", "page-1", "page-2", "page-3", "sources"]
    assert [s.start for s in stills[1:4]] == [20 + round(page.start * 10) for page in pages]


def test_stills_tile_the_video_even_with_odd_timelines(typesetter):
    from ragreel.video.layout import SubtitlePage

    geometry = geometry_for("square")
    odd = [  # leading silence, a zero-length page, a page that claims to start before its predecessor
        SubtitlePage(("a",), 0.5, 1.0, 0),
        SubtitlePage(("b",), 1.0, 1.0, 1),
        SubtitlePage(("c",), 0.8, 2.0, 2),
        SubtitlePage(("d",), 2.0, 9.0, 3),  # runs past the narration's end
    ]
    stills = plan_stills(
        question="Q?", pages=odd, sources=[], language="zh", typesetter=typesetter, geometry=geometry,
        fps=10, title_frames=0, answer_frames=30, closing_frames=0,
    )  # fmt: skip
    assert stills[0].start == 0 and stills[-1].end == 30
    assert all(a.end == b.start and a.frames > 0 for a, b in zip(stills, stills[1:], strict=False))
    assert [s.name for s in stills] == ["answer-lead", "page-1", "page-3", "page-4"]


def test_yuv_conversion_is_bt709_limited_range():
    from PIL import Image

    def planes(color):
        data = np.frombuffer(encode.rgb_to_yuv420p(Image.new("RGB", (4, 2), color)).tobytes(), np.uint8)
        return data[0], data[8], data[10]  # Y, Cb, Cr of a 4x2 frame

    assert planes((255, 255, 255)) == (235, 128, 128)
    assert planes((0, 0, 0)) == (16, 128, 128)
    y, cb, cr = planes((255, 0, 0))
    assert (y, cr) == (63, 240) and abs(int(cb) - 102) <= 1


# --- subtitles ----------------------------------------------------------------------------


def test_srt_parses_and_matches_the_timeline(typesetter, tmp_path):
    import srt

    geometry = geometry_for("landscape")
    narration = make_narration(tmp_path, [EN_SENTENCES[0], LONG_EN, EN_SENTENCES[1]], seconds=3.0)
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    pages = build_pages(narration.sentences, measure, geometry.text_width, geometry.subtitle_lines)
    cues = list(srt.parse(compose_srt(pages, offset=3.0)))
    assert len(cues) == len(pages) > len(narration.sentences)
    for sentence_number, sentence in enumerate(narration.sentences):
        own = [cue for cue, page in zip(cues, pages, strict=True) if page.sentence == sentence_number]
        assert own[0].start.total_seconds() == pytest.approx(3.0 + sentence.start, abs=1e-3)
        assert own[-1].end.total_seconds() == pytest.approx(3.0 + sentence.end, abs=1e-3)
        assert " ".join(cue.content.replace("\n", " ") for cue in own) == sentence.text

    # The WebVTT file is the same cues, as a web player reads them.
    import io

    import webvtt

    def seconds(stamp: str) -> float:
        hours, minutes, rest = stamp.split(":")
        return round(int(hours) * 3600 + int(minutes) * 60 + float(rest), 3)

    captions = webvtt.from_buffer(io.StringIO(compose_vtt(pages, offset=3.0))).captions
    assert [(seconds(c.start), seconds(c.end), c.text) for c in captions] == [
        (cue.start.total_seconds(), cue.end.total_seconds(), cue.content) for cue in cues
    ]


# --- whole videos ----------------------------------------------------------------------------


def render(tmp_path, texts, language="en", aspect="landscape", fps=10, **overrides):
    narration = make_narration(tmp_path / "in", texts, language=language)
    settings = get_settings(aspect=aspect, fps=fps, title_seconds=1.0, sources_seconds=1.0, **overrides)
    question = "How should I store green tea?" if language == "en" else "綠茶應該如何保存？"
    result = render_video(
        narration, question, SOURCES, tmp_path / "out", language, stem="answer", settings=settings
    )
    return narration, settings, result


def test_english_video_is_whole_in_sync_and_shows_each_sentence(tmp_path, typesetter, caplog):
    import srt

    caplog.set_level(logging.INFO, logger="ragreel.video.encode")
    narration, settings, result = render(tmp_path, EN_SENTENCES)
    mp4 = Path(result.mp4_path)
    assert sorted(p.name for p in mp4.parent.iterdir()) == [
        "answer.mp4",
        "answer.png",
        "answer.srt",
        "answer.vtt",
        "answer.wav",
    ]
    assert_decodes(mp4)
    info = streams(mp4)
    assert (info["video_codec"], info["audio_codec"], info["pix_fmt"]) == ("h264", "aac", "yuv420p")
    assert info["size"] == (1280, 720) == (result.width, result.height)
    frame = 1 / settings.fps
    assert abs(info["video_duration"] - info["audio_duration"]) <= frame
    assert info["video_duration"] == pytest.approx(result.duration, abs=frame)
    assert result.duration == pytest.approx(1.0 + narration.duration + 1.0, abs=frame)

    # The frame at each sentence's midpoint is that sentence's page, as drawn.
    geometry = geometry_for("landscape")
    header = header_lines("How should I store green tea?", typesetter, geometry)
    midpoints = [1.0 + (s.start + s.end) / 2 for s in narration.sentences]
    title, *middles, closing = decode_frames(mp4, [0.5, *midpoints, result.duration - 0.3])
    for sentence, shown in zip(narration.sentences, middles, strict=True):
        lines = build_pages([sentence], typesetter.measure("subtitle", 46), geometry.text_width, 3)[0].lines
        expected = np.asarray(draw_answer(header, lines, typesetter, geometry))
        assert difference(shown, expected) < 2.0
    assert difference(middles[0], middles[1]) > 0.5 and difference(middles[1], middles[2]) > 0.5
    assert all(difference(title, middle) > 2.0 for middle in middles)
    expected_sources = np.asarray(draw_sources(SOURCES, typesetter, geometry, "en"))
    assert difference(closing, expected_sources) < 2.0

    # Narration audio starts when the title card ends; the title card and the end are silent.
    # (AAC decodes to floats: the test tone's RMS is 0.17.)
    assert audio_rms(mp4, 0.0, 0.95) < 0.005
    assert audio_rms(mp4, 1.1, 2.1) > 0.1
    assert audio_rms(mp4, result.duration - 0.9, result.duration) < 0.005

    cues = list(srt.parse(Path(result.srt_path).read_text(encoding="utf-8")))
    assert [cue.content for cue in cues] == [
        "\n".join(build_pages([s], typesetter.measure("subtitle", 46), geometry.text_width, 3)[0].lines)
        for s in narration.sentences
    ]
    assert [round(cue.start.total_seconds(), 3) for cue in cues] == [
        round(1.0 + s.start, 3) for s in narration.sentences
    ]
    assert Path(result.wav_path).read_bytes() == Path(narration.wav_path).read_bytes()
    from PIL import Image

    with Image.open(result.thumbnail_path) as thumbnail:
        assert thumbnail.size == (1280, 720)
        assert difference(np.asarray(thumbnail.convert("RGB")), title) < 2.0
    progress = [r.getMessage() for r in caplog.records if "frame_index" in r.getMessage()]
    assert progress and "(100%" in progress[-1]


# --- slides -------------------------------------------------------------------------------------

SLIDES = [
    Slide(
        key_point="Airtight and dark",
        narration=EN_SENTENCES[0] + " " + EN_SENTENCES[1],
        quote="Green tea keeps best in an airtight, opaque container, away from light, heat and smells.",
        quote_title="Storing tea at home",
        quote_heading="Containers",
    ),
    Slide(
        key_point="Warm it before opening",
        narration=EN_SENTENCES[2],
        quote="A refrigerated container must warm to room temperature before it is opened. " * 6,
        quote_title="Refrigerating tea",
    ),
]


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_each_theme_keeps_text_legible_on_its_ground(typesetter, theme):
    from ragreel.video.frames import PALETTES

    palette = PALETTES[theme]
    geometry = geometry_for("landscape")
    frame = np.asarray(draw_slide(SLIDES[0], ["Seal it."], typesetter, geometry, "en", (1, 2), palette))
    ground = np.asarray(plain_background(geometry, palette)).mean()
    assert (ground < 60) if theme == "dark" else (ground > 200)

    def luminance(color) -> float:
        return 0.2126 * color[0] + 0.7152 * color[1] + 0.0722 * color[2]

    # Text, accents and quotes stand well apart from the ground and the quote card they sit on.
    for role in ("subtitle", "key_point", "quote", "header", "context"):
        for behind in (palette.ground_top, palette.ground_bottom, palette.panel):
            assert abs(luminance(palette.color(role)) - luminance(behind)) > 60, (role, behind)
    assert np.abs(frame.astype(int) - np.asarray(plain_background(geometry, palette), dtype=int)).sum() > 0


def test_pages_go_to_the_scene_they_narrate():
    scenes = ["One two three. Four five.", "六七八九十。", "Eleven [2]."]
    pages = ["One two three.", "Four five.", "六七八", "九十。", "Eleven."]
    assert scenes_of_pages(pages, scenes) == [0, 0, 1, 1, 2]
    assert scenes_of_pages(["a", "b"], []) == [0, 0]
    assert scenes_of_pages([], scenes) == []


@pytest.mark.parametrize("aspect", ["landscape", "portrait", "square"])
@pytest.mark.parametrize("slide", SLIDES, ids=["short quote", "long quote"])
def test_a_slide_shows_the_key_point_the_quote_and_its_source_inside_the_frame(typesetter, aspect, slide):
    geometry = geometry_for(aspect)
    page = ["Store green tea in an airtight,", "opaque container."]
    card = layout_slide(slide, page, typesetter, geometry, "en", (2, 3))
    assert " ".join(card.texts("key_point")) == slide.key_point
    (counter,) = [line for line in card.lines if line.role == "header"]  # scene 2 of 3, top right
    assert counter.text == "2 / 3" and counter.x + counter.width == geometry.safe_box[2]
    assert all(line.x + line.width < counter.x for line in card.lines if line.role == "key_point")
    quote = " ".join(card.texts("quote"))
    assert quote == " ".join(slide.quote.split()) or (
        quote.endswith("…") and slide.quote.startswith(quote[:40])
    )
    assert card.texts("source_file")[0].startswith(f"— {slide.quote_title}")
    assert card.texts("subtitle") == page
    assert_inside_safe_box(card, geometry)
    # Headline above the card above the subtitles; the quote sits on its panel.
    (panel,) = card.panels
    quote_lines = [line for line in card.lines if line.role in ("quote", "source_file")]
    assert max(line.y + line.height for line in card.lines if line.role == "key_point") < panel[1]
    assert all(panel[1] < line.y and line.y + line.height <= panel[3] for line in quote_lines)
    assert panel[3] < min(line.y for line in card.lines if line.role == "subtitle")


def test_a_chinese_slide_quotes_in_corner_brackets(typesetter):
    slide = Slide(
        key_point="密封保存",
        narration=ZH_SENTENCES[0],
        quote="綠茶應存放在密封的容器中。",
        quote_title="茶的保存",
    )
    card = layout_slide(slide, ["綠茶應存放在密封的容器中。"], typesetter, geometry_for("landscape"), "zh")
    assert card.texts("quote") == ["「綠茶應存放在密封的容器中。」"]
    assert card.texts("source_file") == ["— 茶的保存"]


def card_words(card, role: str | None = None) -> list[str]:
    """The words of a card's quote and context (or one of them), read line by line: the pieces of a
    line join as they are, lines with a space."""
    by_line: dict[int, str] = {}
    for piece in card.lines:
        if piece.role in ("quote", "context") and role in (None, piece.role):
            by_line[piece.y] = by_line.get(piece.y, "") + piece.text
    return " ".join(by_line.values()).split()


def test_the_quote_is_shown_lit_between_its_passages_dimmed_sentences(typesetter):
    geometry = geometry_for("landscape")
    slide = SLIDES[0].model_copy(update={"before": "Tea goes stale.", "after": "Buy a little at a time."})
    card = layout_slide(slide, ["Seal it."], typesetter, geometry, "en")
    pieces = [line for line in card.lines if line.role in ("quote", "context")]
    assert card_words(card) == f"{slide.before} {slide.quote} {slide.after}".split()
    assert card_words(card, "quote") == slide.quote.split()
    # Each quoted piece is underlined: an accent rule just below it, as wide as it.
    for piece in (p for p in pieces if p.role == "quote" and p.text.strip()):
        assert any(r[0] == piece.x and r[2] == piece.x + piece.width and piece.y < r[1] < piece.y + piece.height
                   for r in card.rules)  # fmt: skip

    # No room for the context: the sentence after goes first, then the one before; the quote stays.
    crowded = slide.model_copy(update={"after": "Buy a little at a time. " * 20, "before": "Stale. " * 40})
    card = layout_slide(crowded, ["Seal it."], typesetter, geometry, "en")
    assert card_words(card, "context") == [] and card_words(card, "quote") == slide.quote.split()


def test_slide_context_is_the_passages_sentences_around_the_quote():
    from tasks.render import _around

    assert _around("Seal it.", "Keep it dark.  Seal it.\nDrink it soon. More.") == (
        "Keep it dark.",
        "Drink it soon.",
    )
    assert _around("密封保存。", "放在暗處。密封保存。盡快喝完。") == ("放在暗處。", "盡快喝完。")
    assert _around("Seal it.", "Seal it.") == ("", "")
    assert _around("Not there.", "Keep it dark.") == ("", "")


def test_with_slides_each_page_is_drawn_on_its_scenes_slide(typesetter, tmp_path):
    geometry = geometry_for("landscape")
    narration = make_narration(tmp_path, EN_SENTENCES)
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    pages = build_pages(narration.sentences, measure, geometry.text_width, slide_subtitle_lines(geometry))
    stills = plan_stills(
        question="Q?", pages=pages, sources=SOURCES, language="en", typesetter=typesetter, geometry=geometry,
        fps=10, title_frames=20, answer_frames=45, closing_frames=30, slides=SLIDES,
    )  # fmt: skip
    assert [s.name for s in stills] == ["title", "page-1", "page-2", "page-3", "sources"]
    for still, page, scene in zip(stills[1:4], pages, [0, 0, 1], strict=True):
        expected = draw_slide(SLIDES[scene], page.lines, typesetter, geometry, "en", (scene + 1, 2))
        assert difference(np.asarray(still.draw()), np.asarray(expected)) == 0


def test_slides_for_an_answer_take_each_scenes_first_quote_and_its_document():
    from ragreel.schemas import Answer, Citation, Evidence, Scene
    from tasks.render import slides_for

    citations = [
        Citation(
            number=1, source="a.md", title="Storing tea", heading="Containers", text="Keep it dark. Seal it."
        ),
        Citation(number=2, source="b.md", title="Fridge", heading="Fridge", text="Warm it first."),
    ]
    scenes = [
        Scene(
            narration="Keep tea dark.",
            key_point="Dark",
            evidence=[Evidence(passage=1, quote="Keep it dark.")],
        ),
        Scene(narration="Warm it first.", evidence=[Evidence(passage=2, quote="Warm it first.")]),
    ]
    answer = Answer(
        question="How?",
        language="en",
        text="…",
        citations=citations,
        scenes=scenes,
        backend="openai",
        model="m",
        server="",
    )
    assert slides_for(answer) == [
        Slide(key_point="Dark", narration="Keep tea dark.", quote="Keep it dark.", after="Seal it.",
              quote_title="Storing tea", quote_heading="Containers"),
        Slide(narration="Warm it first.", quote="Warm it first.", quote_title="Fridge"),  # heading = title
    ]  # fmt: skip
    assert slides_for(answer.model_copy(update={"scenes": []})) == []


def test_a_video_with_slides_shows_them_and_keeps_its_subtitles(tmp_path, typesetter):
    narration = make_narration(tmp_path, EN_SENTENCES)
    settings = get_settings(aspect="landscape", fps=10, title_seconds=1.0, sources_seconds=1.0)
    result = render_video(
        narration,
        "How should I store green tea?",
        SOURCES,
        tmp_path / "out",
        "en",
        settings=settings,
        slides=SLIDES,
    )
    geometry = geometry_for("landscape")
    midpoints = [1.0 + (s.start + s.end) / 2 for s in narration.sentences]
    shown = decode_frames(Path(result.mp4_path), midpoints)
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    for sentence, frame, scene in zip(narration.sentences, shown, [0, 0, 1], strict=True):
        lines = build_pages([sentence], measure, geometry.text_width, 2)[0].lines
        expected = draw_slide(SLIDES[scene], lines, typesetter, geometry, "en", (scene + 1, 2))
        assert difference(frame, np.asarray(expected)) < 2.0
    assert Path(result.srt_path).read_text(encoding="utf-8").count("-->") == len(EN_SENTENCES)


@pytest.mark.parametrize("aspect", ["portrait", "square"])
def test_chinese_video_in_portrait_and_square(tmp_path, typesetter, aspect):
    narration, settings, result = render(tmp_path, ZH_SENTENCES, language="zh", aspect=aspect, fps=5)
    mp4 = Path(result.mp4_path)
    assert_decodes(mp4)
    info = streams(mp4)
    geometry = geometry_for(aspect)
    assert info["size"] == geometry.size == (result.width, result.height)
    assert abs(info["video_duration"] - info["audio_duration"]) <= 1 / settings.fps
    header = header_lines("綠茶應該如何保存？", typesetter, geometry)
    sentence = narration.sentences[1]
    (shown,) = decode_frames(mp4, [1.0 + (sentence.start + sentence.end) / 2])
    measure = typesetter.measure("subtitle", geometry.subtitle_px)
    lines = build_pages([sentence], measure, geometry.text_width, geometry.subtitle_lines)[0].lines
    assert difference(shown, np.asarray(draw_answer(header, lines, typesetter, geometry))) < 2.0
    # Against the same frame with every character replaced by the missing-glyph box.
    boxes = ["\uffff" * len(line) for line in lines]
    assert difference(shown, np.asarray(draw_answer(header, boxes, typesetter, geometry))) > 1.0


# --- failures leave nothing behind ---------------------------------------------------------


def test_bad_inputs_are_input_errors(tmp_path):
    narration = make_narration(tmp_path, EN_SENTENCES)
    with pytest.raises(InputError, match="empty"):
        render_video(narration, "   ", SOURCES, tmp_path / "out", "en")
    missing = narration.model_copy(update={"wav_path": str(tmp_path / "gone.wav")})
    with pytest.raises(InputError, match="does not exist"):
        render_video(missing, "Why?", SOURCES, tmp_path / "out", "en")
    (tmp_path / "noise.wav").write_bytes(b"RIFF garbage")
    broken = narration.model_copy(update={"wav_path": str(tmp_path / "noise.wav")})
    with pytest.raises(InputError, match="cannot read"):
        render_video(broken, "Why?", SOURCES, tmp_path / "out", "en")


def test_a_failure_while_encoding_leaves_no_files(tmp_path, monkeypatch):
    base = encode._progress_logger_class()

    class FailingProgress(base):
        def bars_callback(self, bar, attr, value, old_value=None):
            if attr == "index" and value >= 5:
                raise RuntimeError("injected failure at frame 5")

    monkeypatch.setattr(encode, "progress_logger", lambda label, step=10: FailingProgress(label, step))
    with pytest.raises(RuntimeError, match="injected"):
        render(tmp_path, EN_SENTENCES)
    assert list((tmp_path / "out").iterdir()) == []


def kill_once_writing(script: str, folder: Path, part_glob: str, timeout: float = 120) -> None:
    """Run a render ``script`` in its own process and SIGKILL it once a file matching ``part_glob``
    in ``folder`` has bytes in it: a render killed in the middle of its encode."""
    process = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            parts = list(folder.glob(part_glob)) if folder.exists() else []
            if parts and parts[0].stat().st_size > 0:
                break
            assert process.poll() is None, "the render ended before it could be killed"
            time.sleep(0.05)
        else:
            pytest.fail("the render never started writing")
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()


def test_a_render_killed_mid_way_leaves_nothing_under_the_final_name(tmp_path):
    narration = make_narration(tmp_path / "in", EN_SENTENCES * 4, seconds=2.0)
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        from pathlib import Path
        from ragreel.schemas import Narration, Source
        from ragreel.settings import get_settings
        from tasks.render import render_video
        narration = Narration.model_validate_json({narration.model_dump_json()!r})
        render_video(narration, "Killed?", [], Path({str(out)!r}), "en", stem="killed",
                     settings=get_settings(fps=30))
        """
    )
    kill_once_writing(script, out, ".killed.*.part.mp4")
    names = [path.name for path in out.iterdir()]
    assert not any(name.startswith("killed.") for name in names), names
    assert all(name.startswith(".killed.") and ".part." in name for name in names)


def test_leftovers_of_a_killed_render_are_swept_by_the_next_one(tmp_path):
    from ragreel.video.encode import AtomicOutputs

    stale = tmp_path / ".video.deadbeef.part.mp4"
    fresh = tmp_path / ".video.cafebabe.part.mp4"  # another render, still running
    for path in (stale, fresh):
        path.write_bytes(b"half a video")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    final = tmp_path / "video.mp4"
    with AtomicOutputs() as outputs:
        outputs.temp(final).write_bytes(b"whole video")
    assert final.read_bytes() == b"whole video"
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("language, text", [("en", "Seal green tea tightly."), ("zh", "綠茶要密封。")])
def test_the_word_being_said_lights_up_and_the_vtt_carries_its_time(tmp_path, typesetter, language, text):
    from ragreel.speech.words import even_words
    from ragreel.video.frames import PALETTES

    narration = make_narration(tmp_path, [text], seconds=2.0, language=language)
    sentence = narration.sentences[0]
    narration.sentences[0] = sentence.model_copy(update={"words": even_words(sentence)})
    settings = get_settings(aspect="landscape", fps=10, title_seconds=1.0, sources_seconds=1.0)
    result = render_video(narration, "Q?", SOURCES, tmp_path / "out", language, settings=settings)
    words = narration.sentences[0].words
    frames = decode_frames(Path(result.mp4_path), [1.0 + (w.start + w.end) / 2 for w in words])
    accent = np.asarray(PALETTES["dark"].accent, dtype=int)
    geometry = geometry_for("landscape")
    band = slice(geometry.height // 3, geometry.height)  # the subtitle area, below the header

    def lit_columns(frame) -> np.ndarray:
        near = np.abs(frame[band].astype(int) - accent).sum(axis=2) < 60
        return np.flatnonzero(near.sum(axis=0) > 0)

    lit = [lit_columns(frame) for frame in frames]
    assert all(columns.size for columns in lit)  # some word is lit in every word's time
    centres = [columns.mean() for columns in lit]
    assert centres == sorted(centres) and len(set(np.round(centres))) == len(words)  # left to right
    vtt = Path(result.vtt_path).read_text(encoding="utf-8")
    assert vtt.count("<00:00:0") == len(words) - 1  # one timestamp tag per word after the first

    import io

    import webvtt

    (caption,) = webvtt.from_buffer(io.StringIO(vtt)).captions
    assert caption.text.replace("\n", " " if language == "en" else "") == text


def test_vtt_escapes_markup_in_the_narration():
    from ragreel.video.layout import SubtitlePage

    page = SubtitlePage(("if a < b & c > d",), 0.0, 1.0, 0)
    assert "if a &lt; b &amp; c &gt; d" in compose_vtt([page])
