"""A PDF source on a slide: the region of its page around the quote, with the quote marked.

pypdfium2 (PDFium, Apache-2.0/BSD) finds the quote among the page's characters, gives the
rectangles of its lines, and renders just that region at the size the slide needs. The quote
is matched ignoring whitespace and case, since a PDF's text stream breaks lines where the
quoted passage has spaces. Anything that goes wrong (the file gone, the quote not on the page,
a damaged PDF) returns None and the slide shows the quote as text instead.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

log = logging.getLogger(__name__)

PAGE_PAPER = (255, 255, 255)
# A region at most this tall for its width: in a tall panel a taller one would shrink the page's
# text to fit in more of the page, instead of showing the lines around the quote legibly.
MAX_TALL = 0.55


def _comparable(char: str) -> str:
    return "" if char.isspace() else char.casefold()


def _find(textpage, quote: str) -> tuple[int, int] | None:
    """Indices of the quote's first and last characters on the page, whitespace ignored."""
    import pypdfium2.raw as pdfium_c

    kept: list[tuple[str, int]] = []
    for index in range(textpage.count_chars()):
        code = pdfium_c.FPDFText_GetUnicode(textpage.raw, index)
        char = _comparable(chr(code)) if 0 < code < 0x110000 else ""
        kept.extend((c, index) for c in char)
    wanted = "".join(_comparable(c) for c in quote)
    at = "".join(c for c, _ in kept).find(wanted) if wanted else -1
    if at < 0:
        return None
    return kept[at][1], kept[at + len(wanted) - 1][1]


def _text_column(textpage) -> tuple[float, float]:
    """Left and right edge of the page's text, in PDF units."""
    boxes = [textpage.get_charbox(i) for i in range(textpage.count_chars())]
    boxes = [box for box in boxes if box[2] > box[0]]  # generated spaces and line ends have none
    return min(box[0] for box in boxes), max(box[2] for box in boxes)


@contextlib.contextmanager
def _page(pdf_path: Path, page_number: int):
    """The page ``page_number`` (1-based) of the PDF and its text, or None when the file cannot be
    opened or has no such page; the document is closed afterwards."""
    import pypdfium2

    try:
        pdf = pypdfium2.PdfDocument(str(pdf_path))
    except (pypdfium2.PdfiumError, OSError) as exc:
        log.info("no page region: cannot open %s (%s)", pdf_path, exc)
        yield None
        return
    try:
        if 1 <= page_number <= len(pdf):
            page = pdf[page_number - 1]
            yield page, page.get_textpage()
        else:
            yield None
    finally:
        pdf.close()


def quote_on_page(pdf_path: Path, page_number: int, quote: str) -> bool:
    """Whether ``quote`` can be found on page ``page_number`` (1-based) of the PDF."""
    import pypdfium2

    try:
        with _page(pdf_path, page_number) as opened:
            return opened is not None and _find(opened[1], quote) is not None
    except pypdfium2.PdfiumError:
        return False


def quote_region(
    pdf_path: Path, page_number: int, quote: str, size: tuple[int, int], marker: tuple[int, int, int]
):
    """``size`` pixels (width, height) of page ``page_number`` (1-based) around ``quote``, the
    quote's lines marked with ``marker`` as a highlighter would (multiplied, so ink stays dark);
    None when it cannot be drawn."""
    import pypdfium2
    from PIL import Image, ImageChops, ImageDraw

    width, height = size
    try:
        with _page(pdf_path, page_number) as opened:
            if opened is None:
                return None
            page, textpage = opened
            span = _find(textpage, quote)
            if span is None:
                log.info("no page region: the quote is not on page %d of %s", page_number, pdf_path.name)
                return None
            first, last = span
            rects = [textpage.get_rect(i) for i in range(textpage.count_rects(first, last - first + 1))]
            page_width, page_height = page.get_size()
            # The region: as wide as the page's text (whole lines read better than a zoom into a
            # few words), as tall as the slide's panel shape allows, centred on the quote (PDF
            # units: origin bottom left).
            column_left, column_right = _text_column(textpage)
            left = max(0.0, min(column_left, *(r[0] for r in rects)) - page_width * 0.02)
            right = min(page_width, max(column_right, *(r[2] for r in rects)) + page_width * 0.02)
            quote_bottom, quote_top = min(r[1] for r in rects), max(r[3] for r in rects)
            shape = min(height / width, MAX_TALL)
            region_height = max((right - left) * shape, quote_top - quote_bottom + 24)
            middle = (quote_bottom + quote_top) / 2
            bottom = min(max(0.0, middle - region_height / 2), max(0.0, page_height - region_height))
            top = min(page_height, bottom + region_height)
            scale = min(width / (right - left), height / (top - bottom))
            bitmap = page.render(
                scale=scale,
                crop=(left, bottom, page_width - right, page_height - top),
                fill_color=(*PAGE_PAPER, 255),
            )
            region = bitmap.to_pil().convert("RGB")
    except pypdfium2.PdfiumError as exc:
        log.info("no page region: %s page %d could not be drawn (%s)", pdf_path.name, page_number, exc)
        return None
    marks = Image.new("RGB", region.size, (255, 255, 255))
    draw = ImageDraw.Draw(marks)
    pad = 0.15 * (quote_top - quote_bottom) / max(1, len(rects))
    for r_left, r_bottom, r_right, r_top in rects:
        draw.rectangle(
            [
                (r_left - left - pad) * scale,
                (top - r_top - pad) * scale,
                (r_right - left + pad) * scale,
                (top - r_bottom + pad) * scale,
            ],
            fill=marker,
        )
    return ImageChops.multiply(region, marks)
