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

from ragreel.kb.loaders import Document
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
        for piece in splitter.split_text(section.text):
            piece = piece.strip()
            if piece:
                chunks.append(Chunk(len(chunks), section.heading, piece, language))
    return chunks


def chunking_signature(settings: Settings) -> str:
    """Everything that changes how a file becomes chunks; part of the knowledge-base version."""
    return f"en{settings.chunk_chars_en}-zh{settings.chunk_chars_zh}-ov{settings.chunk_overlap}-v1"
