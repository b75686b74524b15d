"""Drawing: each distinct frame of a video is painted once, with Pillow.

A video is a short list of :class:`Still` images, each held for a run of frames: the title
card, one frame per subtitle page, the closing sources card. The encoder repeats them; it
never composites text per frame (that was 7-11x slower, see the project's models notes).
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ragreel.errors import InputError
from ragreel.schemas import Slide, Source
from ragreel.video.layout import (
    Card,
    Geometry,
    SubtitlePage,
    Typesetter,
    header_lines,
    layout_answer,
    layout_slide,
    layout_sources,
    layout_title,
    scenes_of_pages,
)

logger = logging.getLogger(__name__)

# Dark navy ground, white type with a dark outline, amber accents: legible over any
# background image once it is darkened.
BACKGROUND_TOP = (11, 18, 32)
BACKGROUND_BOTTOM = (27, 42, 65)
WHITE = (255, 255, 255)
MUTED = (170, 186, 207)
ACCENT = (245, 185, 66)
OUTLINE = (0, 0, 0)
PANEL = (36, 54, 84)  # a slide's quote card, a shade lighter than the ground
CONTEXT_TEXT = (128, 146, 172)  # the passage around a quote, dimmed so the quote stands out
ROLE_COLORS = {
    "subtitle": WHITE,
    "title": WHITE,
    "heading": ACCENT,
    "label": ACCENT,
    "header": MUTED,
    "source_title": WHITE,
    "source_file": MUTED,
    "key_point": ACCENT,
    "quote": WHITE,
    "context": CONTEXT_TEXT,
}
OUTLINED_ROLES = {"subtitle", "title"}
BACKGROUND_IMAGE_DIM = 0.45  # share of the picture's brightness kept behind the title


@functools.lru_cache(maxsize=4)
def _gradient(width: int, height: int):
    from PIL import Image

    column = Image.linear_gradient("L").resize((1, height))
    top = Image.new("RGB", (1, height), BACKGROUND_TOP)
    bottom = Image.new("RGB", (1, height), BACKGROUND_BOTTOM)
    return Image.composite(bottom, top, column).resize((width, height))


def plain_background(geometry: Geometry):
    return _gradient(geometry.width, geometry.height).copy()


def image_background(path: Path, geometry: Geometry):
    """``path`` scaled to cover the frame, centre-cropped and darkened for contrast."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as picture:
            picture = ImageOps.exif_transpose(picture).convert("RGB")
            covered = ImageOps.fit(picture, geometry.size, method=Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError) as exc:
        raise InputError(
            f"cannot read background image {path}: {exc}",
            stage="render",
            hint="set RAGREEL_BACKGROUND_IMAGE to a PNG or JPEG, or unset it",
        ) from exc
    return Image.eval(covered, lambda value: int(value * BACKGROUND_IMAGE_DIM))


def draw_card(card: Card, typesetter: Typesetter, geometry: Geometry, background=None):
    """Paint ``card`` over ``background`` (default: the plain gradient); returns an RGB image."""
    from PIL import ImageDraw

    image = background.copy() if background is not None else plain_background(geometry)
    draw = ImageDraw.Draw(image)
    for panel in card.panels:
        draw.rectangle(panel, fill=PANEL)
    for rule in card.rules:
        draw.rectangle(rule, fill=ACCENT)
    for line in card.lines:
        outlined = line.role in OUTLINED_ROLES
        draw.text(
            (line.x, line.y),
            line.text,
            font=typesetter.font(line.role, line.size),
            fill=ROLE_COLORS[line.role],
            anchor="la",
            stroke_width=geometry.stroke_px if outlined else 0,
            stroke_fill=OUTLINE,
        )
    return image


def draw_title(
    question: str, typesetter: Typesetter, geometry: Geometry, language: str, background_image=None
):
    background = image_background(background_image, geometry) if background_image else None
    return draw_card(layout_title(question, typesetter, geometry, language), typesetter, geometry, background)


def draw_answer(header: Sequence[str], page: Sequence[str], typesetter: Typesetter, geometry: Geometry):
    return draw_card(layout_answer(header, page, typesetter, geometry), typesetter, geometry)


def draw_slide(
    slide: Slide,
    page: Sequence[str],
    typesetter: Typesetter,
    geometry: Geometry,
    language: str,
    position: tuple[int, int] = (1, 1),
):
    return draw_card(
        layout_slide(slide, page, typesetter, geometry, language, position), typesetter, geometry
    )


def draw_sources(sources: Sequence[Source], typesetter: Typesetter, geometry: Geometry, language: str):
    return draw_card(layout_sources(sources, typesetter, geometry, language), typesetter, geometry)


@dataclass(frozen=True)
class Still:
    """One distinct frame, drawn on demand, shown for video frames [start, end)."""

    name: str
    start: int
    end: int
    draw: Callable[[], object]

    @property
    def frames(self) -> int:
        return self.end - self.start


def plan_stills(
    *,
    question: str,
    pages: Sequence[SubtitlePage],
    sources: Sequence[Source],
    language: str,
    typesetter: Typesetter,
    geometry: Geometry,
    fps: int,
    title_frames: int,
    answer_frames: int,
    closing_frames: int,
    title_image=None,
    slides: Sequence[Slide] = (),
) -> list[Still]:
    """The video as stills in order: title, subtitle pages, sources card.

    With ``slides`` (one per scene of the answer), each page is drawn on the slide of the scene it
    narrates: the scene's key point and quoted evidence above the subtitle.

    A page is shown from its start until the next page starts, so the pauses between
    sentences hold the last subtitle instead of flashing an empty frame; before the first
    page (leading silence) only the question header shows. ``title_image`` reuses an
    already drawn title card (the thumbnail) instead of drawing it twice.
    """
    header = header_lines(question, typesetter, geometry)
    answer_end = title_frames + answer_frames
    stills: list[Still] = []

    def add(name: str, start: int, end: int, draw: Callable[[], object]) -> None:
        if end > start:
            stills.append(Still(name, start, end, draw))

    add(
        "title",
        0,
        title_frames,
        (lambda: title_image)
        if title_image is not None
        else (lambda: draw_title(question, typesetter, geometry, language)),
    )

    # Frame where each page appears; never earlier than the page before it.
    starts = list(
        itertools.accumulate(
            (min(answer_end, title_frames + round(page.start * fps)) for page in pages),
            max,
            initial=title_frames,
        )
    )
    ends = [*starts[2:], answer_end]
    if slides:
        scene_of = scenes_of_pages([page.text for page in pages], [slide.narration for slide in slides])

        def draw_page(number: int, lines: Sequence[str]):
            scene = scene_of[number] if pages else 0
            return draw_slide(slides[scene], lines, typesetter, geometry, language, (scene + 1, len(slides)))
    else:

        def draw_page(number: int, lines: Sequence[str]):
            return draw_answer(header, lines, typesetter, geometry)

    add("answer-lead", title_frames, starts[1] if pages else answer_end, functools.partial(draw_page, 0, ()))
    for number, (page, start, end) in enumerate(zip(pages, starts[1:], ends, strict=True), start=1):
        add(f"page-{number}", start, end, functools.partial(draw_page, number - 1, page.lines))
    add(
        "sources",
        answer_end,
        answer_end + closing_frames,
        lambda: draw_sources(sources, typesetter, geometry, language),
    )
    return stills
