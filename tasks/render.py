"""The render stage: narration WAV + sentence timeline + question + sources -> MP4, SRT, PNG, WAV.

Time layout of the video: the title card for ``title_seconds``, then the narration with its
subtitles (the narration audio starts as the title card ends), then the sources card for
``sources_seconds``. Every length is a whole number of frames, and the audio is the narration
padded with silence to exactly the video's length.

``render_video`` is the stage's function; ``render_stage`` is the Prefect task the generate flow
calls, cached on its inputs (the aspect among them) and the video settings.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from ragreel.errors import InputError
from ragreel.schemas import Answer, Aspect, Language, Narration, RenderedVideo, Slide, Source
from ragreel.settings import Settings, get_settings
from tasks.stage import code_version, file_signature, short_hash, stage_task

logger = logging.getLogger(__name__)

# A narration WAV may end a little before the last sentence's stated end (trimmed silence).
_TIMELINE_TOLERANCE_S = 0.25


def render_video(
    narration: Narration,
    question: str,
    sources: list[Source],
    out_dir: Path,
    language: str,
    stem: str = "video",
    settings: Settings | None = None,
    slides: Sequence[Slide] = (),
) -> RenderedVideo:
    """Render ``<stem>.mp4`` with ``<stem>.srt``, ``<stem>.png`` (thumbnail) and ``<stem>.wav`` in ``out_dir``.

    With ``slides`` (see :func:`slides_for`) each scene is shown as a slide: its key point, its
    quoted evidence and where it comes from, above the subtitles; without, the subtitles alone.

    All four files appear together at the end; a failed or killed render leaves none of them
    under their final names.
    """
    from ragreel.video.encode import AtomicOutputs, encode_stills, probe_audio
    from ragreel.video.fonts import find_font
    from ragreel.video.frames import PALETTES, draw_title, plan_stills
    from ragreel.video.layout import Typesetter, build_pages, geometry_for, slide_subtitle_lines
    from ragreel.video.subtitles import compose_srt, compose_vtt

    settings = settings or get_settings()
    started = time.monotonic()
    question = " ".join(question.split())
    if not question:
        raise InputError(
            "the question is empty", stage="render", hint="pass the question the answer replies to"
        )
    wav_path = Path(narration.wav_path)
    if not wav_path.is_file():
        raise InputError(
            f"narration audio {wav_path} does not exist",
            stage="render",
            hint="run the speech stage first; it writes the WAV this stage renders",
        )
    audio = probe_audio(wav_path)
    last_end = max((sentence.end for sentence in narration.sentences), default=0.0)
    if last_end > audio.duration + _TIMELINE_TOLERANCE_S:
        logger.warning(
            "sentence timeline ends at %.2f s but %s lasts %.2f s; the video covers both",
            last_end, wav_path.name, audio.duration,
        )  # fmt: skip

    geometry = geometry_for(settings.aspect)
    typesetter = Typesetter(find_font(settings))
    fps = settings.fps
    title_frames = max(0, round(settings.title_seconds * fps))
    answer_frames = max(1, math.ceil(max(audio.duration, last_end) * fps - 1e-6))
    closing_frames = max(0, round(settings.sources_seconds * fps))

    pages = build_pages(
        narration.sentences,
        typesetter.measure("subtitle", geometry.subtitle_px),
        geometry.text_width,
        slide_subtitle_lines(geometry) if slides else geometry.subtitle_lines,
    )
    _warn_missing_glyphs(typesetter, question, [s.text for s in narration.sentences], sources)

    background = settings.background_image
    if background is not None and not background.expanduser().is_file():
        raise InputError(
            f"background image {background} does not exist",
            stage="render",
            hint="set RAGREEL_BACKGROUND_IMAGE to an existing PNG/JPEG, or unset it",
        )
    palette = PALETTES[settings.theme]
    title_image = draw_title(
        question, typesetter, geometry, language, background.expanduser() if background else None, palette
    )
    stills = plan_stills(
        question=question,
        pages=pages,
        sources=sources,
        language=language,
        typesetter=typesetter,
        geometry=geometry,
        fps=fps,
        title_frames=title_frames,
        answer_frames=answer_frames,
        closing_frames=closing_frames,
        title_image=title_image,
        slides=slides,
        palette=palette,
    )
    total_frames = stills[-1].end
    title_offset = title_frames / fps
    logger.info(
        "render %s: %dx%d at %d fps, %.2f s (title %.2f s, narration %.2f s, sources %.2f s), "
        "%d subtitle pages on %d slides, voice %s",
        stem, geometry.width, geometry.height, fps, total_frames / fps, title_offset,
        answer_frames / fps, closing_frames / fps, len(pages), len(slides), narration.voice,
    )  # fmt: skip

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    mp4_path, srt_path, vtt_path = (out_dir / f"{stem}.{kind}" for kind in ("mp4", "srt", "vtt"))
    png_path, wav_copy = out_dir / f"{stem}.png", out_dir / f"{stem}.wav"
    with AtomicOutputs() as outputs:
        title_image.save(outputs.temp(png_path), format="PNG")
        outputs.temp(srt_path).write_text(compose_srt(pages, offset=title_offset), encoding="utf-8")
        outputs.temp(vtt_path).write_text(compose_vtt(pages, offset=title_offset), encoding="utf-8")
        if not _same_file(wav_path, wav_copy):
            shutil.copyfile(wav_path, outputs.temp(wav_copy))
        encode_stills(
            stills,
            size=geometry.size,
            fps=fps,
            audio=audio,
            audio_delay=title_offset,
            out_path=outputs.temp(mp4_path),
            label=mp4_path.name,
        )
    logger.info("rendered %s in %.1f s", mp4_path, time.monotonic() - started)
    return RenderedVideo(
        mp4_path=str(mp4_path),
        srt_path=str(srt_path),
        vtt_path=str(vtt_path),
        thumbnail_path=str(png_path),
        wav_path=str(wav_copy),
        duration=total_frames / fps,
        width=geometry.width,
        height=geometry.height,
        fps=fps,
    )


def slides_for(answer: Answer, settings: Settings | None = None) -> list[Slide]:
    """One slide per scene of ``answer``: its key point, and its main quote between the passage's
    sentences around it, with the document and section it comes from. A quote from a PDF is shown
    as the region of its page (when it can be found there), and a picture the passage shows is
    shown beside it. An answer without scenes (not covered) has none."""
    from ragreel.kb.store import KnowledgeBase
    from ragreel.llm.evidence import main_evidence
    from ragreel.video.pdf_page import quote_on_page

    kb = KnowledgeBase(settings or get_settings())  # with RAGREEL_STORE, files come from the store once
    slides = []
    for scene in answer.scenes:
        evidence = main_evidence(scene.narration, scene.evidence)
        cited = answer.citations[evidence.passage - 1] if evidence.passage <= len(answer.citations) else None
        before, after = _around(evidence.quote, cited.text) if cited else ("", "")
        pdf = kb.kept_file(cited.pdf) if cited and cited.pdf and cited.page else None
        shows_page = pdf is not None and quote_on_page(pdf, cited.page, evidence.quote)
        picture = cited.pictures[0] if cited and cited.pictures else None
        slides.append(
            Slide(
                key_point=scene.key_point,
                narration=scene.narration,
                quote=evidence.quote,
                before=before,
                after=after,
                quote_title=cited.title if cited else "",
                quote_heading=cited.heading if cited and cited.heading != cited.title else "",
                page_pdf=str(pdf) if shows_page else "",
                page=cited.page if shows_page else 0,
                picture=str(kb.kept_file(picture.file)) if picture else "",
                picture_caption=picture.caption if picture else "",
            )
        )
    return slides


def _around(quote: str, passage: str) -> tuple[str, str]:
    """The passage's sentence just before ``quote`` and just after it ('' where there is none, or
    where the quote is not the passage's own words)."""
    from ragreel.text import split_sentences

    flat, quote = " ".join(passage.split()), " ".join(quote.split())
    at = flat.find(quote)
    if at < 0 or not quote:
        return "", ""
    before = split_sentences(flat[:at])
    after = split_sentences(flat[at + len(quote) :])
    return (before[-1] if before else ""), (after[0] if after else "")


def _warn_missing_glyphs(
    typesetter, question: str, sentences: Sequence[str], sources: Sequence[Source]
) -> None:
    from ragreel.video.fonts import missing_glyphs

    text = "".join([question, *sentences, *(f"{s.title}{s.source}" for s in sources)])
    missing = missing_glyphs(typesetter.font("subtitle", 32), text)
    if missing:
        logger.warning(
            "font %s has no glyph for %s: they will show as boxes", typesetter.face.family, " ".join(missing)
        )


def _same_file(first: Path, second: Path) -> bool:
    try:
        return second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def render_cache_key(settings: Settings, parameters: dict) -> str:
    return "|".join(
        [
            code_version("tasks.render", "ragreel.video"),
            _portable_slides(parameters.get("slides"), settings),
            str(settings.fps),
            settings.theme,
            file_signature(settings.background_image),
            file_signature(settings.font_path),
            str(settings.title_seconds),
            str(settings.sources_seconds),
        ]
    )


def _portable_slides(slides: list[Slide] | None, settings: Settings) -> str:
    """The slides as a key part, with their pictures and PDFs named relative to the knowledge base
    folder: that folder is under RAGREEL_HOME, which differs from host to host, and the files in it
    are named by their content."""
    kb_dir = str(settings.kb_dir)
    portable = []
    for slide in slides or ():
        slide = Slide.model_validate(slide)
        fields = {"picture": slide.picture, "page_pdf": slide.page_pdf}
        portable.append(
            slide.model_copy(
                update={name: value.removeprefix(kb_dir) for name, value in fields.items()}
            ).model_dump_json()
        )
    return short_hash(portable)


@stage_task(
    name="render",
    timeout_seconds=1800,
    settings_key=render_cache_key,
    run_name=lambda p: f"render {p['aspect']} video",
    outputs=lambda video: [video.mp4_path, video.srt_path, video.vtt_path, video.thumbnail_path],
    keyed_elsewhere=("slides",),
)
def render_stage(
    narration: Narration,
    title: str,
    sources: list[Source],
    out_dir: str,
    language: Language,
    aspect: Aspect,
    slides: list[Slide] | None = None,
) -> RenderedVideo:
    """``out_dir`` is a folder, or with RAGREEL_STORE an s3:// URL: the video is rendered into this
    host's scratch copy of it, and its files are published there once all of them are complete."""
    from ragreel.outputs import local_copy, publish, scratch_folder

    settings = get_settings(aspect=aspect)
    stem = "video" if aspect == "landscape" else f"video-{aspect}"
    narration = narration.model_copy(update={"wav_path": str(local_copy(narration.wav_path, settings))})
    video = render_video(
        narration,
        title,
        sources,
        scratch_folder(out_dir, settings),
        language,
        stem=stem,
        settings=settings,
        slides=slides or (),
    )
    # The MP4 last: once it is there, so is everything else it goes with.
    published = {
        name: publish(getattr(video, name), out_dir, settings)
        for name in ("wav_path", "srt_path", "vtt_path", "thumbnail_path", "mp4_path")
    }
    return video.model_copy(update=published)
