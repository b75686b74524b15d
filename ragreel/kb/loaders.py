"""Read Markdown, plain text, HTML and PDF into titled sections.

Each loader returns a :class:`Document`: its title and a list of sections, each with the
heading path it sits under. A file that cannot be read raises :class:`UnreadableFile` with
a reason a person can act on; ingestion reports it and goes on with the other files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from ragreel.text import UndecodableText, decode_bytes, inline_text, parse_markdown

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


@dataclass
class Section:
    heading: str  # heading path, e.g. "Brewing > Water temperature"; "" before the first heading
    text: str


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

    def heading(self, level: int, text: str) -> None:
        self._flush()
        if level == 1 and not self.title:
            self.title = text  # the first top-level heading names the document
        elif level > 1 or text != self.title:
            self._headings = [(lv, h) for lv, h in self._headings if lv < level] + [(level, text)]

    def block(self, text: str) -> None:
        if text:
            self._blocks.append(text)

    def document(self, path: Path) -> Document:
        self._flush()
        return Document(self.title or _title_from_path(path), self.sections)

    def _flush(self) -> None:
        if self._blocks:
            self.sections.append(Section(" > ".join(h for _, h in self._headings), "\n\n".join(self._blocks)))
            self._blocks = []


def _title_from_path(path: Path) -> str:
    return path.stem.replace("_", " ").replace("-", " ").strip() or path.name


# --- Markdown ---------------------------------------------------------------------------------


def _load_markdown(data: bytes, path: Path) -> Document:
    source = decode_text(data)
    source = re.sub(r"\A---\n.*?\n---\n", "", source, flags=re.S)  # YAML front matter is metadata
    tokens = parse_markdown(source)
    builder = _SectionBuilder()
    for index, token in enumerate(tokens):
        if token.type == "heading_open":
            builder.heading(int(token.tag[1]), inline_text(tokens[index + 1]).strip())
        elif token.type == "inline" and tokens[index - 1].type != "heading_open":
            builder.block(inline_text(token).strip())
        elif token.type in ("fence", "code_block"):
            builder.block(token.content.strip())
    return builder.document(path)


# --- plain text -------------------------------------------------------------------------------


def _load_text(data: bytes, path: Path) -> Document:
    text = decode_text(data).replace("\r\n", "\n")
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", text) if p.strip()]
    if not paragraphs:
        return Document(_title_from_path(path))
    first_line = paragraphs[0].split("\n", 1)[0].strip()
    # A short first line standing alone reads as the document's title.
    if len(first_line) <= 80 and "\n" not in paragraphs[0]:
        title, paragraphs = first_line, paragraphs[1:]
    else:
        title = _title_from_path(path)
    return Document(title, [Section("", "\n\n".join(paragraphs))])


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
    for element in body.find_all(_HTML_BLOCKS):
        if element.name[0] == "h" and element.name[1:].isdigit():
            builder.heading(int(element.name[1]), element.get_text(" ", strip=True))
        elif not element.find(_HTML_BLOCKS):  # nested blocks (a <p> in an <li>) count once, innermost
            builder.block(
                element.get_text().strip() if element.name == "pre" else element.get_text(" ", strip=True)
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
            text = (page.extract_text() or "").strip()
            if text:
                sections.append(Section(heading, text))
        title = (reader.metadata.title if reader.metadata else None) or ""
    except UnreadableFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnreadableFile(f"damaged PDF ({exc})") from exc
    if not title.strip() and sections:
        first_line = sections[0].text.split("\n", 1)[0].strip()
        title = first_line if len(first_line) <= 80 else ""
    return Document(title.strip() or _title_from_path(path), sections)


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
