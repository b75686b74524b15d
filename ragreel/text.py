"""Language and sentence helpers shared by chunking, answers, speech and subtitles."""

from __future__ import annotations

import re
from functools import lru_cache

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN = re.compile(r"[A-Za-z]")

# Sentence ends: Chinese full-width marks end a sentence wherever they stand; Latin marks
# only when followed by whitespace (so 3.14, e.g. and file.md stay whole).
_CJK_END = "。！？；!?"
_CLOSERS = "」』）》〉】”’\"')]"
_ABBREVIATIONS = {
    "e.g.", "i.e.", "etc.", "mr.", "mrs.", "ms.", "dr.", "prof.", "st.", "vs.", "no.", "fig.",
    "approx.", "inc.", "ltd.", "jr.", "sr.", "u.s.", "u.k.", "a.m.", "p.m.", "cf.", "al.",
}
_SENTENCE_END = re.compile(rf"[{re.escape(_CJK_END)}.…]+[{re.escape(_CLOSERS)}]*")


def detect_language(text: str) -> str:
    """'zh' when Han characters make up a real share of the letters, else 'en'."""
    han = len(_HAN.findall(text))
    latin_words = len(re.findall(r"[A-Za-z]+", text))
    if han == 0:
        return "en"
    # A Chinese sentence with a few English terms is still Chinese; one Chinese name in an
    # English paragraph is not.
    return "zh" if han >= latin_words else "en"


def has_han(text: str) -> bool:
    return bool(_HAN.search(text))


def split_sentences(text: str) -> list[str]:
    """Split text into sentences in English, Chinese or a mix, keeping end punctuation.

    Chinese sentences end at 。！？； (no space needed); Latin ones at . ! ? followed by
    whitespace, except after common abbreviations. Newlines end a sentence too.
    """
    sentences: list[str] = []
    for line in re.split(r"\n+", text):
        line = line.strip()
        if not line:
            continue
        start = 0
        for match in _SENTENCE_END.finditer(line):
            end = match.end()
            mark = line[match.start()]
            if mark in ".…!?" and not has_han(line[max(0, match.start() - 1):match.start()]):
                # Latin end: needs whitespace (or end of line) after, and no abbreviation before.
                if end < len(line) and not line[end].isspace():
                    continue
                word = line[start:match.start() + 1].split()[-1].lower() if line[start:end].split() else ""
                if mark == "." and (word in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", word)):
                    continue
            piece = line[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        rest = line[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


@lru_cache(maxsize=4)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def to_traditional(text: str, config: str = "s2t") -> str:
    """Simplified -> Traditional characters (``s2twp`` also swaps Taiwanese vocabulary)."""
    return _opencc(config).convert(text) if has_han(text) else text
