"""Read Markdown, plain text, HTML and PDF into titled sections.

Each loader returns a :class:`Document`: its title and a list of sections, each with the
heading path it sits under, the PDF page it comes from, and the pictures it shows (a Markdown
``![alt](file)``, an HTML ``<img>``, an image embedded in a PDF page). A file that cannot be read raises :class:`UnreadableFile` with
a reason a person can act on; ingestion reports it and goes on with the other files.
"""

from __future__ import annotations

import itertools
import logging
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from ragreel.text import HAN_CLASS, UndecodableText, decode_bytes, inline_text, line_joint, parse_markdown

log = logging.getLogger(__name__)

# Changes whenever a loader reads the same file into different text; part of the knowledge
# base's pipeline, so the next ingest rereads every file.
LOADERS_VERSION = "6-numbered-text-headings"

SUPPORTED_SUFFIXES = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".txt": "text",
    ".text": "text",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}


class UnreadableFile(Exception):
    """The file can't be ingested; the message says why."""


@dataclass(frozen=True)
class Picture:
    """A picture a document shows: a file beside it, or the bytes of one embedded in a PDF.

    ``offset`` is where it stands in its section's text (the chunk holding the text before it
    gets it); ``None`` means the whole section, as for a picture on a PDF page.
    """

    caption: str
    path: Path | None = None
    data: bytes | None = None
    offset: int | None = None


@dataclass
class Section:
    heading: str  # heading path, e.g. "Brewing > Water temperature"; "" before the first heading
    text: str
    page: int = 0  # 1-based PDF page; 0 for other documents
    pictures: list[Picture] = field(default_factory=list)


@dataclass
class Document:
    title: str
    sections: list[Section] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED_SUFFIXES


def load_document(path: Path, data: bytes | None = None) -> Document:
    """Load one file by its extension. ``data`` saves a second read when the caller has the bytes."""
    kind = SUPPORTED_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise UnreadableFile(f"unsupported file type {path.suffix!r}")
    data = path.read_bytes() if data is None else data
    loader = {"markdown": _load_markdown, "text": _load_text, "html": _load_html, "pdf": _load_pdf}[kind]
    document = loader(data, path)
    document.sections = [s for s in document.sections if s.text.strip()]
    if not document.sections:
        raise UnreadableFile("no text found")
    return document


def decode_text(data: bytes) -> str:
    """The file's text (see :func:`ragreel.text.decode_bytes`), or UnreadableFile saying why not."""
    try:
        return decode_bytes(data)
    except UndecodableText as exc:
        raise UnreadableFile(f"{exc} (save it as UTF-8)") from exc


class _SectionBuilder:
    """Collects text blocks under the current heading path, for the loaders that see headings."""

    def __init__(self, title: str | None = None) -> None:
        self.title = title
        self.sections: list[Section] = []
        self._headings: list[tuple[int, str]] = []
        self._blocks: list[str] = []
        self._pictures: list[Picture] = []

    def heading(self, level: int, text: str) -> None:
        self._flush()
        if level == 1 and not self.title:
            self.title = text  # the first top-level heading names the document
        elif level > 1 or text != self.title:
            self._headings = [(lv, h) for lv, h in self._headings if lv < level] + [(level, text)]

    def block(self, text: str) -> None:
        if text:
            self._blocks.append(text)

    def picture(self, document: Path, source: str, caption: str) -> None:
        """A picture at this point of the text, when ``source`` names a local file."""
        path = _local_picture(document, source)
        if path is not None:
            offset = len("\n\n".join(self._blocks))
            self._pictures.append(Picture(caption.strip(), path=path, offset=offset))

    def document(self, path: Path) -> Document:
        self._flush()
        return Document(self.title or _title_from_path(path), self.sections)

    def _flush(self) -> None:
        if self._blocks:
            heading = " > ".join(h for _, h in self._headings)
            self.sections.append(Section(heading, "\n\n".join(self._blocks), pictures=self._pictures))
        self._blocks, self._pictures = [], []


def _local_picture(document: Path, source: str) -> Path | None:
    """The file a picture reference names, relative to its document; None for URLs and data URIs
    (nothing is downloaded) and for files that are not there."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(source.strip())
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = (document.parent / unquote(parts.path)).resolve()
    return path if path.is_file() else None


def _title_from_path(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


# --- Markdown ---------------------------------------------------------------------------------


def _load_markdown(data: bytes, path: Path) -> Document:
    source = decode_text(data)
    source = re.sub(r"\A---\n.*?\n---\n", "", source, flags=re.S)  # YAML front matter is metadata
    tokens = parse_markdown(source)
    builder = _SectionBuilder()
    row: list[str] | None = None  # the cells of the table row being read
    marker = ""  # the list item's bullet or number, for the item's first paragraph
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            builder.heading(int(token.tag[1]), inline_text(tokens[index + 1], join_lines=True).strip())
        elif token.type == "list_item_open":
            # The marker stays, so that a list under its label reads as one (see with_lists_joined);
            # only on an item that opens with a paragraph, so that no later paragraph takes it.
            opens_with_text = tokens[index + 1].type == "paragraph_open"
            marker = (f"{token.info}{token.markup} " if token.info else "- ") if opens_with_text else ""
        elif token.type == "tr_open":
            row = []
        elif token.type == "inline" and row is not None:
            row.append(inline_text(token, join_lines=True).strip().replace("|", "\\|"))
        elif token.type == "tr_close" and row is not None:
            # A row stays one line of its table, so that the words of a row stay together (a cell
            # alone, "乾燥 乾貨 幹部", says nothing); the header keeps its rule line below it.
            line = f"| {' | '.join(row)} |"
            header = tokens[index - 1].type == "th_close"
            builder.block(line + ("\n|" + " --- |" * len(row) if header else ""))
            row = None
        elif token.type == "inline" and tokens[index - 1].type != "heading_open":
            children = token.children or []
            images = [child for child in children if child.type == "image"]
            pictures_alone = all(
                c.type == "image" or (c.type == "text" and not c.content.strip()) for c in children
            )
            if not (images and pictures_alone):  # a picture's own paragraph: its alt text is its caption
                builder.block(marker + inline_text(token, join_lines=True).strip())
            marker = ""
            for image in images:
                builder.picture(path, str(image.attrGet("src") or ""), image.content)
        elif token.type in ("fence", "code_block"):
            builder.block(token.content.strip())
    return builder.document(path)


# --- plain text -------------------------------------------------------------------------------


_UNDERLINE = re.compile(r"([=\-~^*#+])\1{2,}")


def _text_block(lines: list[str], width: int) -> str:
    """A paragraph of a text file unwrapped; one indented as a whole (a literal block, an interpreter
    session, a quotation of code) keeps its lines as they are."""
    if all(line[:1].isspace() for line in lines if line.strip()):
        return textwrap.dedent("\n".join(lines)).strip()
    return _unwrap_lines("\n".join(lines), width).strip()


# A numbered heading standing alone on its line ("4. Creating a self-signed test certificate",
# "2.1 Keys", "3. 安裝"): a number with its dot (so "15 March 2024" is no heading), then a short,
# capitalised title without a sentence's end mark.
_NUMBERED_HEADING = re.compile(
    rf"(\d{{1,2}}\.(?:\d{{1,2}}\.?)*)[ \t]+([A-Z{HAN_CLASS}][^\n]{{0,70}}[^\s.,:;!?。，：；！？])"
)


def _numbered_headings(paragraphs: list[str]) -> dict[int, tuple[int, str]]:
    """Paragraph index -> (level, heading) for the one-line paragraphs that number the sections of a
    plain text file (RFCs, HOWTOs). Numbered lines next to each other are a list, not headings; a
    file needs two that stand alone to be told apart from one that numbers a single line."""
    numbered = {
        index: match
        for index, p in enumerate(paragraphs)
        if (match := _NUMBERED_HEADING.fullmatch(p.strip()))
    }
    headings = {
        index: (len(re.findall(r"\d+", match[1])) + 1, match[2].strip())  # level 1 is the title
        for index, match in numbered.items()
        if index + 1 < len(paragraphs) and index + 1 not in numbered and index - 1 not in numbered
    }
    return headings if len(headings) >= 2 else {}


def _load_text(data: bytes, path: Path) -> Document:
    """Paragraphs between blank lines, unwrapped; a line underlined with = - ~ ^ * # or + is a
    heading (reStructuredText and Setext), its level the order in which its style first appears;
    numbered lines standing alone ("4. Creating a certificate") are headings too."""
    text = decode_text(data).replace("\r\n", "\n")
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    numbered_headings = _numbered_headings(paragraphs)
    lengths = sorted(len(line.rstrip()) for p in paragraphs for line in p.split("\n") if line.strip())
    # The width the file was wrapped at: a long code line or address must not hide it.
    width = lengths[int(0.9 * (len(lengths) - 1))] if lengths else 0
    builder, styles = _SectionBuilder(), []
    for number, paragraph in enumerate(paragraphs):
        if number in numbered_headings:
            builder.heading(*numbered_headings[number])
            continue
        lines = paragraph.split("\n")
        start = 0
        for index in range(1, len(lines)):
            underline, heading = lines[index].strip(), lines[index - 1].strip()
            if not (_UNDERLINE.fullmatch(underline) and heading and not _UNDERLINE.fullmatch(heading)):
                continue
            overlined = index >= 2 and lines[index - 2].strip() == underline
            style = ("over" if overlined else "") + underline[0]
            styles += [style] if style not in styles else []
            builder.block(_text_block(lines[start : index - (2 if overlined else 1)], width))
            builder.heading(styles.index(style) + 1, heading)
            start = index + 1
        builder.block(_text_block(lines[start:], width))
    document = builder.document(path)
    # Only text before any heading can be the title ("1. Introduction" comes first in some files).
    before_headings = document.sections and not styles and not document.sections[0].heading
    first = document.sections[0].text if before_headings else ""
    first_line = first.split("\n", 1)[0]
    # Without headings, a short first line standing alone reads as the document's title (before the
    # first numbered heading, it may be all the first section holds).
    stands_alone = first.startswith(first_line + "\n\n") or (
        first == first_line and len(document.sections) > 1
    )
    if first and len(first_line) <= 80 and stands_alone:
        document.title = first_line.strip()
        document.sections[0].text = first[len(first_line) :].strip()
        document.sections = [s for s in document.sections if s.text or s.pictures]
    return document


# --- HTML -------------------------------------------------------------------------------------

_HTML_BLOCKS = [
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "p",
    "li",
    "pre",
    "blockquote",
    "td",
    "th",
    "dd",
    "dt",
    "figcaption",
    "summary",
]


def _load_html(data: bytes, path: Path) -> Document:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(decode_text(data), "html.parser")
    for tag in soup(["script", "style", "noscript", "nav", "footer", "template", "svg"]):
        tag.decompose()
    title_tag = soup.find("title")
    builder = _SectionBuilder(title_tag.get_text(" ", strip=True) if title_tag else None)
    body = soup.body or soup
    for element in body.find_all([*_HTML_BLOCKS, "img"]):
        if element.name == "img":
            figure = element.find_parent("figure")
            caption = figure.find("figcaption") if figure else None
            text = caption.get_text(" ", strip=True) if caption else str(element.get("alt") or "")
            builder.picture(path, str(element.get("src") or ""), text)
        elif element.name[0] == "h" and element.name[1:].isdigit():
            builder.heading(int(element.name[1]), element.get_text(" ", strip=True))
        elif not element.find(_HTML_BLOCKS):  # nested blocks (a <p> in an <li>) count once, innermost
            # outside <pre>, the line breaks of the HTML source are spaces, as a browser shows them
            builder.block(
                element.get_text().strip()
                if element.name == "pre"
                else " ".join(element.get_text(" ").split())
            )
    document = builder.document(path)
    if not document.sections:  # text straight in <body> or <div>s
        text = body.get_text("\n", strip=True)
        document.sections = [Section("", text)] if text else []
    return document


# --- PDF --------------------------------------------------------------------------------------


def _load_pdf(data: bytes, path: Path) -> Document:
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise UnreadableFile("encrypted PDF (save a copy without a password)")
        page_headings = _pdf_outline_headings(reader)
        sections: list[Section] = []
        heading = ""
        for number, page in enumerate(reader.pages):
            heading = page_headings.get(number, heading)
            text = _unwrap_lines((page.extract_text() or "").strip())
            if text:
                sections.append(Section(heading, text, page=number + 1))
        title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableFile(f"damaged PDF ({exc})") from exc
    if not title.strip() and sections:
        first_line = sections[0].text.split("\n", 1)[0].strip()
        title = first_line if len(first_line) <= 80 else ""
    pictures = _pdf_pictures(data)
    for section in sections:
        section.pictures = pictures.get(section.page, [])
    return Document(title.strip() or _title_from_path(path), sections)


# Smaller images in a PDF are rules, logos and icons, not figures worth a slide.
MIN_PICTURE_PX = 160


def _pdf_pictures(data: bytes) -> dict[int, list[Picture]]:
    """1-based page -> the figures embedded in it, as PNG bytes (pypdfium2 decodes them)."""
    import io

    import pypdfium2
    import pypdfium2.raw as pdfium_c

    found: dict[int, list[Picture]] = {}
    try:
        pdf = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError:
        return found  # pypdf read the text; a picture it cannot decode is only a picture lost
    try:
        for number, page in enumerate(pdf, start=1):
            for image in page.get_objects(filter=(pdfium_c.FPDF_PAGEOBJ_IMAGE,), max_depth=3):
                try:
                    width, height = image.get_px_size()
                    if min(width, height) < MIN_PICTURE_PX:
                        continue
                    buffer = io.BytesIO()
                    image.get_bitmap(render=False).to_pil().convert("RGB").save(buffer, "PNG")
                except (pypdfium2.PdfiumError, OSError, ValueError) as exc:
                    log.info("page %d: an embedded picture could not be decoded (%s)", number, exc)
                    continue
                found.setdefault(number, []).append(Picture("", data=buffer.getvalue()))
    finally:
        pdf.close()
    return found


_LINE_END = re.compile(r"[.!?:;。！？：；」』)）]$")
_LIST_ITEM = re.compile(r"\s*(?:[-*+•]|\d{1,3}[.)])\s+")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _goes_on(previous: str, line: str) -> bool:
    """Whether ``line`` is indented as the text of ``previous`` would go on: at the same indent, or
    under the words of a list item ("* The sort is stable --" / "  preserved in the list.")."""
    item = _LIST_ITEM.match(previous)
    return _indent(line) in (_indent(previous), item.end() if item else -1)


def _unwrap_lines(text: str, longest: int | None = None) -> str:
    """Join the lines a PDF page or a plain-text file wrapped mid-sentence, so a sentence is never
    cut at a line break.

    A line is a wrapped one when it is nearly as long as the longest (the page's, or ``longest``)
    and does not end a sentence; short lines (headings, a paragraph's last line), a line followed
    by one indented differently (code) and a list item keep their break. Chinese lines join
    without a space, and a word hyphenated across the break is mended.
    """
    lines = [line.rstrip() for line in text.split("\n")]
    longest = longest or max((len(line) for line in lines), default=0)
    joined = lines[0] if lines else ""
    for previous, line in itertools.pairwise(lines):
        wrapped = (
            line.strip()
            and len(previous) >= 0.7 * longest
            and not _LINE_END.search(previous)
            and _goes_on(previous, line)
            and not _LIST_ITEM.match(line)
        )
        if not wrapped:
            joined += "\n" + line
        elif previous.endswith("-") and line[:1].islower():
            joined = joined[:-1] + line.lstrip()
        else:
            joined += line_joint(previous[-1:], line.lstrip()[:1]) + line.lstrip()
    return joined


def _pdf_outline_headings(reader) -> dict[int, str]:
    """Page number -> heading path from the PDF's bookmarks, when it has any."""
    headings: dict[int, str] = {}

    def walk(items, parents: list[str]) -> None:
        last: list[str] = parents
        for item in items:
            if isinstance(item, list):
                walk(item, last)
                continue
            try:
                page = reader.get_destination_page_number(item)
            except Exception:  # noqa: BLE001 - a broken bookmark only loses its heading
                continue
            last = [*parents, str(item.title)]
            headings.setdefault(page, " > ".join(last))

    try:
        walk(reader.outline, [])
    except Exception:  # noqa: BLE001
        return {}
    return headings
