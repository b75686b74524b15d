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
from ragreel.schemas import Slide, Source, Theme
from ragreel.video.layout import (
    Card,
    Geometry,
    PageWord,
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


@dataclass(frozen=True)
class Palette:
    """A theme's colours (RGB)."""

    ground_top: tuple[int, int, int]
    ground_bottom: tuple[int, int, int]
    text: tuple[int, int, int]
    muted: tuple[int, int, int]
    accent: tuple[int, int, int]
    outline: tuple[int, int, int]  # around subtitles and titles, for legibility over a picture
    panel: tuple[int, int, int]  # a slide's quote card
    context: tuple[int, int, int]  # the passage around a quote, dimmed so the quote stands out
    picture_keep: float  # share of a background picture kept; the rest is the ground colour
    marker: tuple[int, int, int] = (255, 214, 102)  # a highlighter on a PDF page's white paper

    def color(self, role: str) -> tuple[int, int, int]:
        if role in ("heading", "label", "key_point", "spoken"):
            return self.accent
        if role in ("header", "source_file"):
            return self.muted
        if role == "context":
            return self.context
        return self.text


PALETTES: dict[Theme, Palette] = {
    # Navy ground, white type with a dark outline, amber accents: legible over a darkened picture.
    "dark": Palette(
        ground_top=(11, 18, 32),
        ground_bottom=(27, 42, 65),
        text=(255, 255, 255),
        muted=(170, 186, 207),
        accent=(245, 185, 66),
        outline=(0, 0, 0),
        panel=(36, 54, 84),
        context=(128, 146, 172),
        picture_keep=0.45,
    ),
    # Warm paper, near-black type with a white outline, a deep amber that keeps its contrast on white.
    "light": Palette(
        ground_top=(250, 248, 243),
        ground_bottom=(234, 229, 218),
        text=(22, 28, 40),
        muted=(92, 104, 122),
        accent=(168, 96, 0),
        outline=(255, 255, 255),
        panel=(255, 255, 255),
        context=(128, 136, 150),
        picture_keep=0.3,
    ),
}
OUTLINED_ROLES = {"subtitle", "spoken", "title"}


@functools.lru_cache(maxsize=8)
def _gradient(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]):
    from PIL import Image

    column = Image.linear_gradient("L").resize((1, height))
    upper = Image.new("RGB", (1, height), top)
    lower = Image.new("RGB", (1, height), bottom)
    return Image.composite(lower, upper, column).resize((width, height))


def plain_background(geometry: Geometry, palette: Palette = PALETTES["dark"]):
    return _gradient(geometry.width, geometry.height, palette.ground_top, palette.ground_bottom).copy()


def image_background(path: Path, geometry: Geometry, palette: Palette = PALETTES["dark"]):
    """``path`` scaled to cover the frame, centre-cropped and faded towards the ground for contrast."""
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
    return Image.blend(plain_background(geometry, palette), covered, palette.picture_keep)


# A picture on a slide is never still: it zooms in by this share over its scene, drifting
# towards one side ("Ken Burns"). Slow enough to read a figure, enough not to look frozen.
ZOOM = 0.08


class SlideArt:
    """The pictures of one slide, read once: its source picture and its PDF page region.

    A file that is gone or unreadable (a cached answer whose knowledge base changed) draws
    nothing and is logged once.
    """

    def __init__(self, slide: Slide, palette: Palette, drift: float = 0.5):
        self.slide = slide
        self.palette = palette
        self.drift = drift  # 0..1: where the zoom heads horizontally
        self._fitted: dict[tuple[int, int], object] = {}
        self._regions: dict[tuple[int, int, int, int], object] = {}

    @functools.cached_property
    def _picture(self):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(self.slide.picture) as picture:
                return picture.convert("RGB")
        except (OSError, UnidentifiedImageError) as exc:
            logger.warning("slide picture %s not shown: %s", self.slide.picture, exc)
            return None

    def _fit(self, box, width: int, height: int) -> tuple[int, int, int, int]:
        """The largest rectangle of the picture's shape inside ``box``, centred."""
        left, top, right, bottom = box
        scale = min((right - left) / width, (bottom - top) / height)
        # Even sizes and corners: the encoder splices the moving picture into a converted frame,
        # whose colour planes have half the resolution.
        w, h = max(2, int(width * scale) // 2 * 2), max(2, int(height * scale) // 2 * 2)
        x, y = (left + (right - left - w) // 2) // 2 * 2, (top + (bottom - top - h) // 2) // 2 * 2
        return x, y, x + w, y + h

    def picture_at(self, box, progress: float):
        """(image, top-left corner) of the picture ``progress`` (0..1) through its zoom, fitted in
        ``box``, or None."""
        from PIL import Image

        picture = self._picture
        if picture is None:
            return None
        where = self._fit(box, *picture.size)
        w, h = where[2] - where[0], where[3] - where[1]
        key = (w, h)
        if key not in self._fitted:  # scaled once to the zoom's largest need; each frame only crops
            self._fitted[key] = picture.resize(
                (round(w * (1 + ZOOM)), round(h * (1 + ZOOM))), Image.Resampling.LANCZOS
            )
        source = self._fitted[key]
        zoom = 1 + ZOOM * min(1.0, max(0.0, progress))
        crop_w, crop_h = source.width / zoom, source.height / zoom
        x0 = (source.width - crop_w) * self.drift
        y0 = (source.height - crop_h) * 0.5
        frame = source.resize((w, h), Image.Resampling.BILINEAR, box=(x0, y0, x0 + crop_w, y0 + crop_h))
        return frame, where[:2]

    def page_region(self, box):
        """(image, top-left) of the PDF page region around the quote, fitted in ``box``, or None."""
        from ragreel.video.pdf_page import quote_region

        if box not in self._regions:
            left, top, right, bottom = box
            region = quote_region(
                Path(self.slide.page_pdf), self.slide.page, self.slide.quote, (right - left, bottom - top),
                self.palette.marker,
            )  # fmt: skip
            self._regions[box] = None
            if region is not None:
                x, y = left + (right - left - region.width) // 2, top + (bottom - top - region.height) // 2
                self._regions[box] = (region, (x, y))
        return self._regions[box]


def paint_media(image, card: Card, art: SlideArt | None, progress: float = 0.0) -> None:
    """Paint a slide's page region and picture (``progress`` through its zoom) into ``image``."""
    if art is None:
        return
    for media in card.media:
        if media.kind == "page":
            drawn = art.page_region(media.box)
            if drawn is not None:
                image.paste(*drawn)
        elif media.kind == "picture":
            drawn = art.picture_at(media.box, progress)
            if drawn is not None:
                image.paste(*drawn)


def draw_card(
    card: Card,
    typesetter: Typesetter,
    geometry: Geometry,
    background=None,
    palette=PALETTES["dark"],
    art: SlideArt | None = None,
):
    """Paint ``card`` over ``background`` (default: the theme's gradient); returns an RGB image."""
    from PIL import ImageDraw

    image = background.copy() if background is not None else plain_background(geometry, palette)
    draw = ImageDraw.Draw(image)
    for panel in card.panels:
        draw.rectangle(panel, fill=palette.panel)
    paint_media(image, card, art)
    for rule in card.rules:
        draw.rectangle(rule, fill=palette.accent)
    for line in card.lines:
        outlined = line.role in OUTLINED_ROLES
        draw.text(
            (line.x, line.y),
            line.text,
            font=typesetter.font(line.role, line.size),
            fill=palette.color(line.role),
            anchor="la",
            stroke_width=geometry.stroke_px if outlined else 0,
            stroke_fill=palette.outline,
        )
    return image


def draw_title(
    question: str,
    typesetter: Typesetter,
    geometry: Geometry,
    language: str,
    background_image=None,
    palette: Palette = PALETTES["dark"],
):
    background = image_background(background_image, geometry, palette) if background_image else None
    card = layout_title(question, typesetter, geometry, language)
    return draw_card(card, typesetter, geometry, background, palette)


def draw_answer(
    header: Sequence[str],
    page: Sequence[str],
    typesetter: Typesetter,
    geometry: Geometry,
    palette: Palette = PALETTES["dark"],
):
    return draw_card(layout_answer(header, page, typesetter, geometry), typesetter, geometry, palette=palette)


def draw_slide(
    slide: Slide,
    page: Sequence[str],
    typesetter: Typesetter,
    geometry: Geometry,
    language: str,
    position: tuple[int, int] = (1, 1),
    palette: Palette = PALETTES["dark"],
):
    card = layout_slide(slide, page, typesetter, geometry, language, position)
    return draw_card(card, typesetter, geometry, palette=palette)


def draw_spoken(
    image, card: Card, spoken: PageWord, typesetter: Typesetter, geometry: Geometry, palette: Palette
):
    """A copy of a drawn page with the word being said painted over in the accent colour.

    The word is drawn at the advance of the line's text before it, in the same face and outline,
    so it covers the plain word exactly.
    """
    from PIL import ImageDraw

    lines = [line for line in card.lines if line.role == "subtitle"]
    if spoken.line >= len(lines):
        return image
    line = lines[spoken.line]
    font = typesetter.font("spoken", line.size)
    x = line.x + typesetter.font("subtitle", line.size).getlength(line.text[: spoken.begin])
    lit = image.copy()
    ImageDraw.Draw(lit).text(
        (x, line.y),
        line.text[spoken.begin : spoken.end],
        font=font,
        fill=palette.color("spoken"),
        anchor="la",
        stroke_width=geometry.stroke_px,
        stroke_fill=palette.outline,
    )
    return lit


def draw_sources(
    sources: Sequence[Source],
    typesetter: Typesetter,
    geometry: Geometry,
    language: str,
    palette: Palette = PALETTES["dark"],
):
    card = layout_sources(sources, typesetter, geometry, language)
    return draw_card(card, typesetter, geometry, palette=palette)


@dataclass(frozen=True)
class Still:
    """One distinct frame, drawn on demand, shown for video frames [start, end)."""

    name: str
    start: int
    end: int
    draw: Callable[[], object]
    # For a still with motion (a picture zooming): the moving part at a frame, as (image, (x, y))
    # with even coordinates and size, to paint over the drawn still; None where nothing moves.
    animate: Callable[[int], tuple[object, tuple[int, int]] | None] | None = None

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
    palette: Palette = PALETTES["dark"],
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

    def add(name: str, start: int, end: int, draw: Callable[[], object], animate=None) -> None:
        if end > start:
            stills.append(Still(name, start, end, draw, animate))

    add(
        "title",
        0,
        title_frames,
        (lambda: title_image)
        if title_image is not None
        else (lambda: draw_title(question, typesetter, geometry, language, palette=palette)),
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
    scene_of = scenes_of_pages([page.text for page in pages], [slide.narration for slide in slides])
    arts = [SlideArt(slide, palette, drift=0.8 if index % 2 else 0.2) for index, slide in enumerate(slides)]
    # Each scene's frames, for its picture's zoom to run once across all of its pages.
    scene_frames: dict[int, tuple[int, int]] = {}
    for number, scene in enumerate(scene_of):
        first, last = scene_frames.get(scene, (starts[number + 1], ends[number]))
        scene_frames[scene] = (min(first, starts[number + 1]), max(last, ends[number]))

    def scene_at(number: int) -> int:
        return scene_of[number] if pages else 0

    def card_of(number: int, lines: tuple[str, ...]) -> Card:
        if not slides:
            return layout_answer(header, lines, typesetter, geometry)
        scene = scene_at(number)
        return layout_slide(slides[scene], lines, typesetter, geometry, language, (scene + 1, len(slides)))

    @functools.lru_cache(maxsize=1)  # stills are drawn in order: a page's words reuse its frame
    def drawn_page(number: int, lines: tuple[str, ...]):
        card = card_of(number, lines)
        art = arts[scene_at(number)] if slides else None
        return card, draw_card(card, typesetter, geometry, palette=palette, art=art)

    def motion(number: int, lines: tuple[str, ...]):
        """How a page's stills move: its scene's picture zooming across the scene, or None."""
        card = card_of(number, lines)
        box = next((media.box for media in card.media if media.kind == "picture"), None)
        if box is None:
            return None
        art = arts[scene_at(number)]
        first, last = scene_frames.get(scene_at(number), (0, 1))

        return lambda frame: art.picture_at(box, (frame - first) / max(1, last - first))

    def draw_page(number: int, lines: tuple[str, ...], spoken: PageWord | None = None):
        card, image = drawn_page(number, lines)
        return image if spoken is None else draw_spoken(image, card, spoken, typesetter, geometry, palette)

    def frame_at(seconds: float, low: int, high: int) -> int:
        return min(high, max(low, title_frames + round(seconds * fps)))

    add("answer-lead", title_frames, starts[1] if pages else answer_end, functools.partial(draw_page, 0, ()))
    for number, (page, start, end) in enumerate(zip(pages, starts[1:], ends, strict=True), start=1):
        moving = motion(number - 1, page.lines) if slides else None
        if not page.words:
            add(f"page-{number}", start, end, functools.partial(draw_page, number - 1, page.lines), moving)
            continue
        # The word being said lights up; after the last one (a pause) the page shows unlit.
        word_starts = [start] + [frame_at(word.start, start, end) for word in page.words[1:]]
        word_starts = list(itertools.accumulate(word_starts, max))
        word_ends = [*word_starts[1:], frame_at(page.words[-1].stop, word_starts[-1], end)]
        for index, (word, word_start, word_end) in enumerate(
            zip(page.words, word_starts, word_ends, strict=True)
        ):
            add(f"page-{number}-word-{index + 1}", word_start, word_end,
                functools.partial(draw_page, number - 1, page.lines, word), moving)  # fmt: skip
        add(f"page-{number}-after", word_ends[-1], end, functools.partial(draw_page, number - 1, page.lines),
            moving)  # fmt: skip
    add(
        "sources",
        answer_end,
        answer_end + closing_frames,
        lambda: draw_sources(sources, typesetter, geometry, language, palette),
    )
    return stills
