"""Where text goes on a frame: sizes per aspect, line wrapping, subtitle pages, card layouts.

Nothing here draws. Layout functions measure text with the real font and return
:class:`Card` objects (text lines with positions) that :mod:`ragreel.video.frames` paints,
so wrapping and margins can be tested without pixels.

Wrapping follows the script, not a language flag: a line may break at whitespace, or next
to a CJK character (so Chinese breaks between any two characters and English only
between words), except before closing punctuation or after opening punctuation (kinsoku:
no line starts with "，。」" and none ends with "「（"). Long sentences become several
subtitle pages instead of a smaller font.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ragreel.schemas import Aspect, Slide, Source, TimedSentence
from ragreel.text import is_cjk_wide
from ragreel.video.fonts import FontFace, load_font

Measure = Callable[[str], float]

ELLIPSIS = "…"
# Characters that must not begin a line (closing brackets and quotes, sentence and clause
# marks, iteration marks, small kana) and ones that must not end it (opening brackets).
NO_LINE_START = set(
    "、。，．・：；？！）］｝〕〉》」』】〙〗〟’”｠»‐–〜～…‥ー"
    "ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶ々〻ゝゞヽヾ"
    ",.;:!?)]}%"
)
NO_LINE_END = set("（［｛〔〈《「『【〘〖〝‘“｟«([{")
# Runs of these stay together ("——", "……").
_UNBREAKABLE_PAIRS = set("—…‥")


def _can_break_between(before: str, after: str) -> bool:
    if not (is_cjk_wide(before) or is_cjk_wide(after)):
        return False
    if after in NO_LINE_START or before in NO_LINE_END:
        return False
    return not (before == after and before in _UNBREAKABLE_PAIRS)


def break_units(text: str) -> list[tuple[str, bool]]:
    """Split text into pieces a line may not break inside, each with 'a space came before it'."""
    units: list[tuple[str, bool]] = []
    current = ""
    space_before = False
    pending_space = False
    previous = ""
    for char in text:
        if char.isspace():
            if current:
                units.append((current, space_before))
                current = ""
            pending_space = True
            previous = char
            continue
        if current and _can_break_between(previous, char):
            units.append((current, space_before))
            current = ""
            space_before = False
        if not current:
            space_before = pending_space and bool(units)
            pending_space = False
        current += char
        previous = char
    if current:
        units.append((current, space_before))
    return units


def wrap_text(text: str, measure: Measure, max_width: float) -> list[str]:
    """Greedy line breaking of ``text`` into lines no wider than ``max_width``.

    A single unit wider than a whole line (a long URL, a very long CJK run without a break
    opportunity) is the only thing ever cut inside, character by character.
    """
    lines: list[str] = []
    line = ""
    for unit, space_before in break_units(text):
        candidate = f"{line} {unit}" if (line and space_before) else line + unit
        if measure(candidate) <= max_width:
            line = candidate
            continue
        if line:
            lines.append(line)
        line = unit
        if measure(unit) > max_width:
            *full, line = _split_by_character(unit, measure, max_width)
            lines.extend(full)
    if line:
        lines.append(line)
    return lines


def balanced_wrap(text: str, measure: Measure, max_width: float) -> list[str]:
    """As many lines as :func:`wrap_text` needs, but of even length: no one-word last line.

    Finds the narrowest width that still gives the same number of lines.
    """
    lines = wrap_text(text, measure, max_width)
    if len(lines) < 2:
        return lines
    low, high = int(max_width / len(lines)), int(max_width)
    while low < high:
        middle = (low + high) // 2
        if len(wrap_text(text, measure, middle)) <= len(lines):
            high = middle
        else:
            low = middle + 1
    return wrap_text(text, measure, high)


def _split_by_character(unit: str, measure: Measure, max_width: float) -> list[str]:
    pieces = [""]
    for char in unit:
        if pieces[-1] and measure(pieces[-1] + char) > max_width:
            pieces.append("")
        pieces[-1] += char
    return pieces


def paginate(lines: Sequence[str], max_lines: int) -> list[list[str]]:
    """Lines grouped into pages of at most ``max_lines``, balanced so no page is a lone stub."""
    if not lines:
        return []
    page_count = math.ceil(len(lines) / max_lines)
    per_page = math.ceil(len(lines) / page_count)
    return [list(lines[i : i + per_page]) for i in range(0, len(lines), per_page)]


def ellipsize(text: str, measure: Measure, max_width: float, *, keep_end: bool = False) -> str:
    """``text`` cut to ``max_width`` with an ellipsis; ``keep_end`` keeps the tail (file paths)."""
    if measure(text) <= max_width:
        return text
    low, high = 0, len(text)
    while low < high:  # longest prefix (or suffix) that fits beside the ellipsis
        middle = (low + high + 1) // 2
        piece = text[len(text) - middle :] if keep_end else text[:middle]
        candidate = ELLIPSIS + piece if keep_end else piece + ELLIPSIS
        if measure(candidate) <= max_width:
            low = middle
        else:
            high = middle - 1
    if keep_end:
        return ELLIPSIS + text[len(text) - low :].lstrip()
    return text[:low].rstrip() + ELLIPSIS


# --- geometry ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Frame size, safe margins and type sizes (pixels) for one aspect."""

    width: int
    height: int
    margin_x: int
    margin_top: int
    margin_bottom: int
    subtitle_px: int
    subtitle_lines: int
    title_px: int
    header_px: int
    label_px: int
    source_px: int
    source_file_px: int
    stroke_px: int

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def safe_box(self) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of the area text stays inside."""
        return self.margin_x, self.margin_top, self.width - self.margin_x, self.height - self.margin_bottom

    @property
    def text_width(self) -> int:
        return self.width - 2 * self.margin_x


# Margins keep text clear of player controls; portrait (shorts) leaves the bottom fifth to the
# app's caption and buttons.
GEOMETRIES: dict[Aspect, Geometry] = {
    "landscape": Geometry(
        width=1280,
        height=720,
        margin_x=96,
        margin_top=54,
        margin_bottom=54,
        subtitle_px=46,
        subtitle_lines=3,
        title_px=58,
        header_px=28,
        label_px=24,
        source_px=34,
        source_file_px=24,
        stroke_px=3,
    ),
    "portrait": Geometry(
        width=1080,
        height=1920,
        margin_x=86,
        margin_top=192,
        margin_bottom=346,
        subtitle_px=62,
        subtitle_lines=5,
        title_px=76,
        header_px=38,
        label_px=32,
        source_px=46,
        source_file_px=32,
        stroke_px=4,
    ),
    "square": Geometry(
        width=1080,
        height=1080,
        margin_x=86,
        margin_top=80,
        margin_bottom=80,
        subtitle_px=58,
        subtitle_lines=4,
        title_px=70,
        header_px=34,
        label_px=30,
        source_px=42,
        source_file_px=28,
        stroke_px=4,
    ),
}


def geometry_for(aspect: Aspect) -> Geometry:
    return GEOMETRIES[aspect]


def line_pitch(size: int) -> int:
    """Distance between baselines: Noto CJK's ascender plus descender is 1.45 em."""
    return math.ceil(size * 1.45)


# --- fonts by role ------------------------------------------------------------------------

ROLE_WEIGHTS = {
    "subtitle": "Bold",
    "title": "Bold",
    "heading": "Bold",
    "label": "Bold",
    "header": "Regular",
    "source_title": "Medium",
    "source_file": "Regular",
    "key_point": "Bold",
    "quote": "Regular",
    "context": "Regular",  # the same weight as "quote": they share lines, measured as one
    "spoken": "Bold",  # the subtitle's weight: a lit word covers the plain one exactly
}


class Typesetter:
    """Fonts of one face by role and size, and text measurement with them."""

    def __init__(self, face: FontFace):
        self.face = face

    def font(self, role: str, size: int):
        return load_font(self.face, size, ROLE_WEIGHTS[role])

    def measure(self, role: str, size: int) -> Measure:
        return self.font(role, size).getlength


# --- cards ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextLine:
    """One line of text: its top-left corner (the ascender line), advance width and box height."""

    text: str
    x: int
    y: int
    width: int
    height: int
    role: str
    size: int


@dataclass(frozen=True)
class Card:
    """Everything printed on one frame, plus accent rules as (x0, y0, x1, y1) boxes."""

    lines: tuple[TextLine, ...]
    rules: tuple[tuple[int, int, int, int], ...] = ()
    panels: tuple[tuple[int, int, int, int], ...] = ()  # boxes behind the text (a slide's quote card)
    media: tuple[Media, ...] = ()  # pictures and PDF page regions, painted by the drawing code

    def texts(self, role: str | None = None) -> list[str]:
        return [line.text for line in self.lines if role is None or line.role == role]


LABELS = {
    "en": {
        "question": "QUESTION",
        "sources": "Sources",
        "none": "No sources were cited.",
        "more": "+ {n} more",
        "quote": "{}",  # the card marks it as a quote; curly quotes are full-width in a CJK face
        "page": "page {}",
    },
    "zh": {
        "question": "問題",
        "sources": "資料來源",
        "none": "沒有引用資料來源。",
        "more": "另有 {n} 項",
        "quote": "「{}」",
        "page": "第 {} 頁",
    },
}


def labels(language: str) -> dict[str, str]:
    return LABELS.get(language, LABELS["en"])


@dataclass(frozen=True)
class Block:
    """Consecutive lines of one role and size, followed by ``gap_after`` pixels."""

    lines: Sequence[str]
    role: str
    size: int
    gap_after: int = 0
    indent: int = 0

    @property
    def height(self) -> int:
        return len(self.lines) * line_pitch(self.size) + self.gap_after


def _stack(
    blocks: Sequence[Block], typesetter: Typesetter, top: int, *, left: int, width: int, centered: bool
) -> tuple[list[TextLine], int]:
    """Lay blocks out downwards from ``top``; returns the placed lines and the bottom edge."""
    placed: list[TextLine] = []
    y = top
    for block in blocks:
        measure = typesetter.measure(block.role, block.size)
        pitch = line_pitch(block.size)
        for text in block.lines:
            advance = math.ceil(measure(text))
            x = left + (width - advance) // 2 if centered else left + block.indent
            placed.append(TextLine(text, x, y, advance, pitch, block.role, block.size))
            y += pitch
        y += block.gap_after
    return placed, y


def layout_title(question: str, typesetter: Typesetter, geometry: Geometry, language: str) -> Card:
    """The opening card: a small label over the question, centred in the safe area.

    A long question first gets a smaller size (down to the subtitle size), then is cut
    with an ellipsis: it is a title, the full text is in the subtitles' header anyway.
    """
    left, top, right, bottom = geometry.safe_box
    # Only the start can show; wrapping a 2,000-character question at several sizes is slow.
    question = question[:600]
    label_px = geometry.label_px
    label_gap = label_px
    available = bottom - top - line_pitch(label_px) - label_gap
    size = geometry.title_px
    while True:
        lines = balanced_wrap(question, typesetter.measure("title", size), geometry.text_width)
        max_lines = max(1, available // line_pitch(size))
        if len(lines) <= max_lines or size <= geometry.subtitle_px:
            break
        size = max(geometry.subtitle_px, round(size * 0.9))
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = ellipsize(lines[-1] + ELLIPSIS, typesetter.measure("title", size), geometry.text_width)
    blocks = [
        Block([labels(language)["question"]], "label", label_px, label_gap),
        Block(lines, "title", size),
    ]
    block_top = top + (bottom - top - sum(block.height for block in blocks)) // 2
    placed, _ = _stack(blocks, typesetter, block_top, left=left, width=geometry.text_width, centered=True)
    label = placed[0]
    rule_y = label.y + label.height + label_gap // 3
    rule = (geometry.width // 2 - 2 * label_px, rule_y, geometry.width // 2 + 2 * label_px, rule_y + 3)
    return Card(tuple(placed), (rule,))


def header_lines(question: str, typesetter: Typesetter, geometry: Geometry, max_lines: int = 2) -> list[str]:
    """The question as a small header above the subtitles: at most two lines, then an ellipsis."""
    measure = typesetter.measure("header", geometry.header_px)
    lines = wrap_text(question, measure, geometry.text_width)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = ellipsize(lines[-1] + ELLIPSIS, measure, geometry.text_width)
    return lines


def layout_answer(
    header: Sequence[str], page: Sequence[str], typesetter: Typesetter, geometry: Geometry
) -> Card:
    """A narration frame: the question as a header, then one subtitle page centred below it."""
    left, top, right, bottom = geometry.safe_box
    header_placed, header_bottom = _stack(
        [Block(header, "header", geometry.header_px)],
        typesetter,
        top,
        left=left,
        width=geometry.text_width,
        centered=False,
    )
    rule_top = header_bottom + geometry.header_px // 3
    rule = (left, rule_top, left + geometry.text_width // 6, rule_top + 4)
    region_top = rule_top + geometry.header_px
    blocks = [Block(page, "subtitle", geometry.subtitle_px)]
    block_top = region_top + max(0, (bottom - region_top - blocks[0].height) // 2)
    subtitle_placed, _ = _stack(
        blocks, typesetter, block_top, left=left, width=geometry.text_width, centered=True
    )
    return Card(tuple(header_placed + subtitle_placed), (rule,))


def slide_subtitle_lines(geometry: Geometry) -> int:
    """Subtitle lines under a slide: one fewer than on a plain frame, leaving room for the slide."""
    return max(2, geometry.subtitle_lines - 1)


def layout_slide(
    slide: Slide,
    page: Sequence[str],
    typesetter: Typesetter,
    geometry: Geometry,
    language: str,
    position: tuple[int, int] = (1, 1),
) -> Card:
    """A scene's frame: its key point as the headline, the quoted evidence on a card with the
    document it comes from, and the subtitle page at the bottom. ``position`` (scene n of m) shows
    in the top corner when there is more than one scene.

    The quote is cut with an ellipsis where the card is full; the whole quote is in result.json.
    """
    left, top, right, bottom = geometry.safe_box
    width = geometry.text_width
    headline_px = round(geometry.title_px * 0.8)
    quote_px = round(geometry.subtitle_px * 0.7)
    attribution_px = geometry.source_file_px
    gap = geometry.header_px

    placed: list[TextLine] = []
    headline_width = width
    number, count = position
    if count > 1:
        counter = f"{number} / {count}"
        advance = math.ceil(typesetter.measure("header", geometry.header_px)(counter))
        baseline_shift = (line_pitch(headline_px) - line_pitch(geometry.header_px)) // 2
        placed.append(
            TextLine(counter, right - advance, top + baseline_shift, advance, line_pitch(geometry.header_px),
                     "header", geometry.header_px)
        )  # fmt: skip
        headline_width = width - advance - gap

    headline = slide.key_point.strip() or slide.narration.strip()
    headline_measure = typesetter.measure("key_point", headline_px)
    headline_lines = wrap_text(headline, headline_measure, headline_width)
    if len(headline_lines) > 2:
        rest = headline[len(headline_lines[0]) :].strip()
        headline_lines = [headline_lines[0], ellipsize(rest, headline_measure, headline_width)]
    headline_placed, headline_bottom = _stack(
        [Block(headline_lines, "key_point", headline_px)],
        typesetter,
        top,
        left=left,
        width=headline_width,
        centered=False,
    )
    placed += headline_placed
    rule_top = headline_bottom + gap // 4
    rules = [(left, rule_top, left + width // 6, rule_top + 4)]

    subtitle_pitch = line_pitch(geometry.subtitle_px)
    subtitle_height = slide_subtitle_lines(geometry) * subtitle_pitch
    subtitle_top = bottom - subtitle_height
    subtitle_block = Block(page, "subtitle", geometry.subtitle_px)
    subtitle_placed, _ = _stack(
        [subtitle_block],
        typesetter,
        subtitle_top + (subtitle_height - subtitle_block.height) // 2,
        left=left,
        width=width,
        centered=True,
    )

    content = (left, rule_top + gap, right, subtitle_top - gap)
    wide = width > 1.3 * (content[3] - content[1])
    # A PDF page region needs the whole width of a wide frame to be legible; a picture beside it
    # would shrink its text to a few pixels, so there it shows only in tall frames.
    show_picture = bool(slide.picture) and not (slide.page_pdf and wide)
    evidence, picture = _split_for_picture(content, gap) if show_picture else (content, None)
    attribution = " › ".join(part for part in (slide.quote_title, slide.quote_heading) if part)
    if slide.page_pdf:
        page_label = labels(language)["page"].format(slide.page)
        attribution = f"{attribution} · {page_label}" if attribution else page_label
        media = [_framed("page", _page_box(evidence, attribution_px, quote_px), attribution, typesetter,
                         attribution_px, quote_px)]  # fmt: skip
        quote_lines, quote_rules, quote_panels = [], [], [media[0].panel]
    else:
        media = []
        quote_lines, quote_rules, quote_panels = _quote_card(
            slide, evidence, attribution, typesetter, quote_px, attribution_px, language
        )
    if picture is not None:
        media.append(_framed("picture", picture, slide.picture_caption, typesetter, attribution_px, quote_px))
        quote_panels.append(media[-1].panel)
    return Card(
        tuple(placed + quote_lines + [line for m in media for line in m.lines] + subtitle_placed),
        tuple(rules + quote_rules),
        tuple(quote_panels),
        tuple(media),
    )


def _page_box(box: tuple[int, int, int, int], caption_px: int, padding: int) -> tuple[int, int, int, int]:
    """``box`` cut to the height a PDF page region of its width takes (see ``MAX_TALL``), centred."""
    from ragreel.video.pdf_page import MAX_TALL

    left, top, right, bottom = box
    height = min(bottom - top, round((right - left - padding) * MAX_TALL) + line_pitch(caption_px) + padding)
    top += (bottom - top - height) // 2
    return left, top, right, top + height


def _split_for_picture(box: tuple[int, int, int, int], gap: int):
    """The evidence's box and the picture's: side by side in a wide area, stacked in a tall one."""
    left, top, right, bottom = box
    if right - left > 1.3 * (bottom - top):  # the same test as ``wide`` in layout_slide
        middle = left + round((right - left) * 0.55)
        return (left, top, middle - gap // 2, bottom), (middle + gap // 2, top, right, bottom)
    middle = top + round((bottom - top) * 0.45)
    return (left, middle + gap // 2, right, bottom), (left, top, right, middle - gap // 2)


@dataclass(frozen=True)
class Media:
    """A picture on a slide: a source's picture, or a PDF page region (``kind`` "page"); drawn
    into ``box`` on a ``panel``, with its caption lines below."""

    kind: str
    box: tuple[int, int, int, int]
    panel: tuple[int, int, int, int]
    lines: tuple[TextLine, ...] = ()


def _framed(kind: str, box, caption: str, typesetter: Typesetter, caption_px: int, padding: int) -> Media:
    left, top, right, bottom = box
    inner = (left + padding // 2, top + padding // 2, right - padding // 2, bottom - padding // 2)
    lines: tuple[TextLine, ...] = ()
    if caption.strip():
        measure = typesetter.measure("source_file", caption_px)
        text = ellipsize(" ".join(caption.split()), measure, inner[2] - inner[0])
        pitch = line_pitch(caption_px)
        y = inner[3] - pitch
        lines = (TextLine(text, inner[0], y, math.ceil(measure(text)), pitch, "source_file", caption_px),)
        inner = (inner[0], inner[1], inner[2], y - padding // 4)
    return Media(kind, inner, box, lines)


def _quote_card(
    slide: Slide,
    box: tuple[int, int, int, int],
    attribution: str,
    typesetter: Typesetter,
    quote_px: int,
    attribution_px: int,
    language: str,
) -> tuple[list[TextLine], list[tuple[int, int, int, int]], list[tuple[int, int, int, int]]]:
    """The quote between its neighbouring sentences on a panel, centred in ``box``, with where it
    comes from below: (lines, rules, panels); nothing when there is no quote or no room."""
    left, card_top, right, card_bottom = box
    padding = quote_px
    inner_left, inner_width = left + padding, right - left - 2 * padding
    room = card_bottom - card_top - 2 * padding - line_pitch(attribution_px) - quote_px // 2
    if not slide.quote.strip() or room < line_pitch(quote_px):
        return [], [], []
    placed, rules = [], []
    quote_measure = typesetter.measure("quote", quote_px)
    pitch = line_pitch(quote_px)
    lines = _quote_in_context(slide, quote_measure, inner_width, room // pitch, language)
    box_height = len(lines) * pitch + quote_px // 2 + 2 * padding
    if attribution:
        box_height += line_pitch(attribution_px)
    box_top = card_top + max(0, (card_bottom - card_top - box_height) // 2)
    y = box_top + padding
    for segments in lines:
        x = inner_left
        for text, role in segments:
            advance = math.ceil(quote_measure(text))
            placed.append(TextLine(text, x, y, advance, pitch, role, quote_px))
            if role == "quote" and text.strip():  # the quoted words underlined in the accent
                underline = y + round(quote_px * 1.3)
                rules.append((x, underline, x + advance, underline + max(2, quote_px // 16)))
            x += advance
        y += pitch
    y += quote_px // 2
    if attribution:
        attribution_measure = typesetter.measure("source_file", attribution_px)
        text = ellipsize(f"— {attribution}", attribution_measure, inner_width)
        placed.append(
            TextLine(text, inner_left, y, math.ceil(attribution_measure(text)), line_pitch(attribution_px),
                     "source_file", attribution_px)
        )  # fmt: skip
        y += line_pitch(attribution_px)
    rules.append((left, box_top, left + max(4, quote_px // 6), y + padding))
    return placed, rules, [(left, box_top, right, y + padding)]


def _quote_in_context(
    slide: Slide, measure: Measure, width: float, max_lines: int, language: str
) -> list[list[tuple[str, str]]]:
    """The quote between its passage's neighbouring sentences, wrapped: lines of (text, role)
    pieces, role 'quote' for the quoted words and 'context' around them.

    The context goes first when it does not fit (the sentence after, then the one before, then
    both); a quote alone too long for the card is cut with an ellipsis.
    """
    joiner = "" if language == "zh" else " "
    quote = labels(language)["quote"].format(" ".join(slide.quote.split()))
    before, after = " ".join(slide.before.split()), " ".join(slide.after.split())
    for keep_before, keep_after in ((True, True), (True, False), (False, True), (False, False)):
        head = before + joiner if keep_before and before else ""
        tail = joiner + after if keep_after and after else ""
        text = head + quote + tail
        lines = wrap_text(text, measure, width)
        if len(lines) <= max_lines:
            return _pieces(text, lines, len(head), len(head) + len(quote))
    lines = wrap_text(quote, measure, width)[:max_lines]
    lines[-1] = ellipsize(lines[-1] + ELLIPSIS, measure, width)
    return [[(line, "quote")] for line in lines]


def _pieces(text: str, lines: Sequence[str], start: int, end: int) -> list[list[tuple[str, str]]]:
    """Each wrapped line of ``text`` cut where the span [start, end) begins and ends."""
    result, cursor = [], 0
    for line in lines:
        at = text.find(line, cursor)
        at = cursor if at < 0 else at
        cursor = at + len(line)
        cuts = sorted({0, len(line), *(min(max(point - at, 0), len(line)) for point in (start, end))})
        pieces = []
        for a, b in itertools.pairwise(cuts):
            if b > a:
                inside = start <= at + a < end
                pieces.append((line[a:b], "quote" if inside else "context"))
        result.append(pieces)
    return result


def scenes_of_pages(page_texts: Sequence[str], scene_texts: Sequence[str]) -> list[int]:
    """For each subtitle page, the index of the scene it narrates.

    Pages are the scenes' narration, in order, cut into sentences and pages (citation markers and
    markdown removed on the way), so each page goes to the scene its middle falls in, by the share
    of letters and characters before it.
    """

    def letters(text: str) -> int:
        return sum(ch.isalnum() for ch in text)

    if not scene_texts:
        return [0] * len(page_texts)
    scene_ends = list(itertools.accumulate(letters(t) for t in scene_texts))
    page_sizes = [letters(t) for t in page_texts]
    pages_total, scenes_total = max(1, sum(page_sizes)), max(1, scene_ends[-1])
    assigned, before = [], 0
    for size in page_sizes:
        middle = (before + size / 2) / pages_total * scenes_total
        before += size
        assigned.append(next((i for i, end in enumerate(scene_ends) if middle <= end), len(scene_texts) - 1))
    return assigned


def layout_sources(
    sources: Sequence[Source], typesetter: Typesetter, geometry: Geometry, language: str
) -> Card:
    """The closing card: a heading, then each source's title (up to two lines) with its file below.

    As many sources as fit are listed; the rest are counted in a final '+ n more' line.
    """
    words = labels(language)
    left, top, right, bottom = geometry.safe_box
    width = geometry.text_width
    heading_px = round(geometry.title_px * 0.8)
    title_measure = typesetter.measure("source_title", geometry.source_px)
    file_measure = typesetter.measure("source_file", geometry.source_file_px)
    unique = list({source.source: source for source in sources}.values())
    entry_gap = geometry.source_px // 2
    indent = geometry.source_px  # the file sits indented under its title

    entries: list[list[Block]] = []
    for number, source in enumerate(unique, start=1):
        hanging = math.ceil(title_measure(f"{number}. "))  # continuation lines align after "2. "
        full_title = f"{number}. {source.title or source.source}"
        title = wrap_text(full_title, title_measure, width - hanging)
        if len(title) > 2:
            rest = full_title[len(title[0]) :].strip()
            title = [title[0], ellipsize(rest, title_measure, width - hanging)]
        path = ellipsize(source.source, file_measure, width - indent, keep_end=True)
        entries.append(
            [
                Block(title[:1], "source_title", geometry.source_px),
                Block(title[1:], "source_title", geometry.source_px, indent=hanging),
                Block([path], "source_file", geometry.source_file_px, entry_gap, indent=indent),
            ]
        )

    heading_gap = geometry.source_px
    heading_block = Block([words["sources"]], "heading", heading_px, heading_gap)
    more_height = line_pitch(geometry.source_px)
    room = bottom - top - heading_block.height
    blocks = [heading_block]
    for shown, entry in enumerate(entries):
        height = sum(block.height for block in entry)
        needs_more_line = shown + 1 < len(entries)
        if height + (more_height if needs_more_line else 0) > room:
            blocks.append(
                Block([words["more"].format(n=len(entries) - shown)], "source_file", geometry.source_px)
            )
            break
        blocks.extend(entry)
        room -= height
    if not entries:
        blocks.append(Block([words["none"]], "source_title", geometry.source_px))

    block_top = top + max(0, (bottom - top - sum(block.height for block in blocks)) // 2)
    placed, _ = _stack(blocks, typesetter, block_top, left=left, width=width, centered=False)
    heading = placed[0]
    rule_y = heading.y + heading.height + heading_gap // 4
    return Card(tuple(placed), ((left, rule_y, left + width // 6, rule_y + 4),))


# --- subtitle pages ------------------------------------------------------------------------


@dataclass(frozen=True)
class PageWord:
    """A word on a subtitle page: its line, its characters there [begin, end), and when it is said."""

    line: int
    begin: int
    end: int
    start: float
    stop: float


@dataclass(frozen=True)
class SubtitlePage:
    """Lines shown together, with their time span in narration time (seconds) and their words."""

    lines: tuple[str, ...]
    start: float
    end: float
    sentence: int
    words: tuple[PageWord, ...] = ()

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


# Clause ends where a subtitle page may end: after a Chinese clause mark, or a Latin one
# followed by a space (so 3,000 and 10:30 stay whole), with any closing quote or bracket.
_CLAUSE_END = re.compile(r"(?<=[，、；：—])[」』）”’]*\s*|(?<=[,;:])[”’\")\]]*\s+")


def split_pages(text: str, measure: Measure, max_width: float, max_lines: int) -> list[list[str]]:
    """``text`` as pages of wrapped lines, at most ``max_lines`` each.

    A text that needs several pages is cut at clause marks (commas, semicolons...) where it
    can be, so a page ends on a pause rather than mid-phrase; a clause too long for one page
    is paginated by lines.
    """
    lines = balanced_wrap(text, measure, max_width)
    if len(lines) <= max_lines:
        return [lines] if lines else []
    pages: list[list[str]] = []
    current = ""
    for piece in _split_keeping(_CLAUSE_END, text):
        candidate = current + piece
        if len(wrap_text(candidate.strip(), measure, max_width)) <= max_lines:
            current = candidate
            continue
        if current.strip():
            pages.append(balanced_wrap(current.strip(), measure, max_width))
        current = piece
        piece_lines = wrap_text(piece.strip(), measure, max_width)
        if len(piece_lines) > max_lines:
            pages.extend(paginate(piece_lines, max_lines))
            current = ""
    if current.strip():
        pages.append(balanced_wrap(current.strip(), measure, max_width))
    return pages


def _split_keeping(pattern: re.Pattern[str], text: str) -> list[str]:
    """``text`` cut after each match of ``pattern``; the pieces join back to ``text``."""
    pieces, start = [], 0
    for match in pattern.finditer(text):
        if match.end() > start:
            pieces.append(text[start : match.end()])
            start = match.end()
    pieces.append(text[start:])
    return pieces


def build_pages(
    sentences: Sequence[TimedSentence], measure: Measure, max_width: float, max_lines: int
) -> list[SubtitlePage]:
    """Each sentence split into pages. A sentence with timed words shows each page from its first
    word on and places every word on its page; without them, pages share the sentence's time in
    proportion to their length."""
    pages: list[SubtitlePage] = []
    for number, sentence in enumerate(sentences):
        text = " ".join(sentence.text.split())
        if not text:
            continue
        groups = split_pages(text, measure, max_width, max_lines)
        if sentence.words:
            pages += _pages_of_words(groups, sentence, number)
            continue
        weights = [max(1, sum(len(line.replace(" ", "")) for line in group)) for group in groups]
        for group, (start, end) in zip(groups, sentence.shared(weights), strict=True):
            pages.append(SubtitlePage(tuple(group), start, end, number))
    return pages


def _pages_of_words(
    groups: Sequence[Sequence[str]], sentence: TimedSentence, number: int
) -> list[SubtitlePage]:
    """The pages of one sentence with its timed words placed on them.

    Words and lines are matched by counting the characters that are not spaces (line breaks drop
    spaces, nothing else), so a word split over two lines is placed by its first character.
    """
    places: list[tuple[int, int, int]] = []  # (page, line, column) of each non-space character
    for page_number, group in enumerate(groups):
        for line_number, line in enumerate(group):
            places += [
                (page_number, line_number, column) for column, char in enumerate(line) if not char.isspace()
            ]
    on_page: list[list[PageWord]] = [[] for _ in groups]
    cursor = 0
    for word in sentence.words:
        length = sum(not char.isspace() for char in word.text)
        if length == 0 or cursor >= len(places):
            continue
        page_number, line_number, begin = places[cursor]
        last = min(cursor + length, len(places)) - 1
        end = (
            places[last][2] + 1
            if places[last][:2] == (page_number, line_number)
            else len(groups[page_number][line_number])
        )
        on_page[page_number].append(PageWord(line_number, begin, end, word.start, word.end))
        cursor += length
    pages = []
    for index, (group, words) in enumerate(zip(groups, on_page, strict=True)):
        start = words[0].start if words else (pages[-1].end if pages else sentence.start)
        pages.append(SubtitlePage(tuple(group), start, sentence.end, number, tuple(words)))
        if index:  # the page before ends where this one begins
            pages[-2] = dataclasses.replace(pages[-2], end=start)
    return pages
