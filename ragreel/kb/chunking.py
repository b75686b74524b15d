"""Split documents into overlapping chunks that respect headings, paragraphs and sentences.

Sections never share a chunk, so every chunk carries one heading path. Inside a section,
LangChain's recursive splitter tries paragraph breaks first, then line breaks, then sentence
ends (Chinese 。！？； as well as Latin . ! ?), then clauses, and cuts mid-text only for a run
with no punctuation at all. Chinese is sized by characters with a smaller budget, since one
Han character carries about as much as a short English word.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from ragreel.kb.loaders import Document, Picture
from ragreel.settings import Settings
from ragreel.text import detect_language

# Ordered from the strongest boundary to the weakest; each kept at the end of its piece.
_SEPARATORS = [
    "\n\n",
    "\n",
    "。",
    "！",
    "？",
    "；",
    ". ",
    "! ",
    "? ",
    "; ",
    "，",
    "、",
    ", ",
    "：",
    ": ",
    " ",
    "",
]


@dataclass(frozen=True)
class Chunk:
    position: int  # order within the document
    heading: str
    text: str
    language: str
    page: int = 0
    pictures: tuple[Picture, ...] = ()


@lru_cache(maxsize=8)
def _splitter(chunk_size: int, overlap: int):
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        separators=_SEPARATORS,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=overlap,
    )


def chunk_size_for(language: str, settings: Settings) -> int:
    return settings.chunk_chars_zh if language == "zh" else settings.chunk_chars_en


def chunk_document(document: Document, settings: Settings) -> list[Chunk]:
    chunks: list[Chunk] = []
    for section in document.sections:
        language = detect_language(section.text)
        size = chunk_size_for(language, settings)
        splitter = _splitter(size, int(size * settings.chunk_overlap))
        pieces = [piece.strip() for piece in splitter.split_text(section.text)]
        pieces = [piece for piece in pieces if piece]
        shown = _pictures_of_pieces(section.text, pieces, section.pictures)
        for piece, pictures in zip(pieces, shown, strict=True):
            chunks.append(Chunk(len(chunks), section.heading, piece, language, section.page, pictures))
    return chunks


def _pictures_of_pieces(text: str, pieces: list[str], pictures: list[Picture]) -> list[tuple[Picture, ...]]:
    """Which pictures each piece of ``text`` shows: a placed picture goes to the first piece that
    reaches its place (the text just before it), an unplaced one (a PDF page's) to every piece."""
    ends, cursor = [], 0
    for piece in pieces:
        at = text.find(piece, cursor)
        at = cursor if at < 0 else at
        ends.append(at + len(piece))
        cursor = at + 1
    shown: list[list[Picture]] = [[] for _ in pieces]
    for picture in pictures:
        if picture.offset is None:
            for found in shown:
                found.append(picture)
        elif pieces:
            index = next((i for i, end in enumerate(ends) if end >= picture.offset), len(pieces) - 1)
            shown[index].append(picture)
    return [tuple(found) for found in shown]


def chunking_signature(settings: Settings) -> str:
    """Everything that changes how a file becomes chunks; part of the knowledge-base version."""
    return f"en{settings.chunk_chars_en}-zh{settings.chunk_chars_zh}-ov{settings.chunk_overlap}-v1"
