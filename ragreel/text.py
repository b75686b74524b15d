"""The one text toolbox: scripts, languages, sentences, Chinese conversion and byte decoding.

Shared by ingestion, answers, speech and subtitles, so that "is this Chinese?", "where does
this sentence end?" and "what encoding is this file in?" get one answer everywhere.
"""

from __future__ import annotations

import re
from functools import lru_cache

# Han ideographs: the unified blocks, extension A, the compatibility block and the extensions
# beyond the BMP. For regular expressions, as the inside of a character class.
HAN_CLASS = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f"
_HAN = re.compile(f"[{HAN_CLASS}]")

# Sentence ends: Chinese full-width marks end a sentence wherever they stand; Latin marks
# only when followed by whitespace (so 3.14, e.g. and file.md stay whole).
_CJK_END = "。！？；!?"
_CLOSERS = "」』）》〉】”’\"')]"
_ABBREVIATIONS = {
    "e.g.",
    "i.e.",
    "etc.",
    "mr.",
    "mrs.",
    "ms.",
    "dr.",
    "prof.",
    "st.",
    "vs.",
    "no.",
    "fig.",
    "approx.",
    "inc.",
    "ltd.",
    "jr.",
    "sr.",
    "u.s.",
    "u.k.",
    "a.m.",
    "p.m.",
    "cf.",
    "al.",
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
    """Whether ``text`` holds a Han character (the test for "has Chinese in it")."""
    return bool(_HAN.search(text))


_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff]")
# Terminal escape sequences (CSI, OSC) and other control characters: never part of a question.
_ESCAPE_SEQUENCE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b.")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def has_kana(text: str) -> bool:
    """Whether ``text`` has hiragana or katakana: Japanese, which shares Han characters with Chinese."""
    return bool(_KANA.search(text))


def strip_control(text: str) -> str:
    """``text`` without terminal escape sequences and control characters (tabs and newlines stay)."""
    return _CONTROL.sub("", _ESCAPE_SEQUENCE.sub("", text))


def is_han(char: str) -> bool:
    return bool(_HAN.fullmatch(char))


def is_cjk_wide(char: str) -> bool:
    """Broader than :func:`is_han`, for line breaking: any East Asian wide character (ideographs,
    kana, Hangul, CJK punctuation and full-width forms), between which a line may break."""
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # radicals, CJK punctuation, kana, ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul
        or 0xF900 <= code <= 0xFAFF  # compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms
        or 0x20000 <= code <= 0x3FFFF  # ideograph extensions
    )


_NUMBER_MARKER = re.compile(r"(?:#+\s*)?\d{1,2}(?:\.\d{1,2})*")  # as many digits as a list item's (evidence)


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
            if mark in ".…!?" and not has_han(line[max(0, match.start() - 1) : match.start()]):
                # Latin end: needs whitespace (or end of line) after, and no abbreviation before.
                if end < len(line) and not line[end].isspace():
                    continue
                word = line[start : match.start() + 1].split()[-1].lower() if line[start:end].split() else ""
                if mark == "." and (word in _ABBREVIATIONS or re.fullmatch(r"\W*[a-z]\.", word)):
                    continue
                # A list item's or a heading's number ("2. Run it", "### 2. 避免收錄") is not a sentence.
                if mark == "." and start == 0 and _NUMBER_MARKER.fullmatch(line[: match.start()]):
                    continue
                # Inside brackets: "some (most?) authorities" or "(see e.g. RFC 5280.)" go on.
                if line.count("(", start, match.start()) > line.count(")", start, match.start()):
                    continue
            piece = line[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        rest = line[start:].strip()
        if rest:
            sentences.append(rest)
    return sentences


# --- Simplified and Traditional Chinese ----------------------------------------------------------

TRADITIONAL = "s2t"  # characters only: for comparing and searching
TAIWAN = "s2twp"  # Traditional as written in Taiwan, vocabulary included: for what people read
SIMPLIFIED = "t2s"


@lru_cache(maxsize=4)
def _opencc(config: str):
    import opencc

    return opencc.OpenCC(config)


def convert_chinese(text: str, config: str = TRADITIONAL) -> str:
    """Convert Chinese text with an OpenCC config (:data:`TRADITIONAL`, :data:`TAIWAN`, :data:`SIMPLIFIED`);
    text without Han characters comes back as it is."""
    return _opencc(config).convert(text) if has_han(text) else text


def convert_chinese_keeping(text: str, source: str, config: str = TAIWAN) -> str:
    """Convert ``text`` as :func:`convert_chinese` does, except the runs of two or more characters
    copied from ``source``: they stay as the source wrote them. A narration quoting a text about
    characters ("「干」本意為盾牌") would otherwise have its quoted characters converted (干 to 幹)."""
    if not has_han(text) or _simplified(source):  # a quote in Simplified sets no example
        return convert_chinese(text, config)
    kept, start, position = [], 0, 0
    while position < len(text):
        length = _copied_length(text, position, source)
        if length >= 2:
            kept.append(convert_chinese(text[start:position], config) + text[position : position + length])
            position += length
            start = position
        else:
            position += 1
    return "".join(kept) + convert_chinese(text[start:], config)


def _simplified(text: str) -> bool:
    """Whether ``text`` is written in Simplified characters (Traditional converts it; Simplified doesn't)."""
    return convert_chinese(text, TRADITIONAL) != text and convert_chinese(text, SIMPLIFIED) == text


def _copied_length(text: str, position: int, source: str) -> int:
    """The length of the longest run of ``text`` from ``position`` that ``source`` contains."""
    length = 0
    while position + length < len(text) and text[position : position + length + 1] in source:
        length += 1
    return length


# --- bytes to text ---------------------------------------------------------------------------------

# Files and spreadsheets come from Taiwanese, mainland, Western, Japanese and Korean systems: the
# guess is kept to their encodings, as a short sample fits many exotic code pages equally well.
COMMON_ENCODINGS = ["cp950", "big5", "gb18030", "cp1252", "shift_jis", "euc_kr"]


class UndecodableText(ValueError):
    """The bytes are binary, or no encoding fits them; the message says which."""


def decode_bytes(data: bytes) -> str:
    """Text from bytes: UTF-16 with a BOM, UTF-8 (BOM or not), else a confidently detected common
    encoding such as Big5. Raises :class:`UndecodableText` for binary data or mojibake."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    if b"\x00" in data[:8192]:
        raise UndecodableText("binary content, not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    best = from_bytes(data, cp_isolation=COMMON_ENCODINGS).best()
    # A high chaos ratio means the bytes decode to mojibake in every encoding tried.
    if best is None or best.chaos > 0.2:
        raise UndecodableText("not valid UTF-8 and no other common text encoding fits")
    return str(best)


# --- Markdown to plain text --------------------------------------------------------------------------


def inline_text(token, join_lines: bool = False) -> str:
    """The text of a markdown-it inline token: words, code spans, link text and image alt text,
    without markup; line breaks kept as newlines. With ``join_lines`` a paragraph's soft line
    breaks (a source wrapped at 80 columns) join its lines as a reader sees them: with a space,
    or with nothing between Chinese characters."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type == "softbreak" and join_lines:
            parts.append("\0")  # decided below, once the text after it is known
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content)
    text = "".join(parts)
    if not join_lines:
        return text
    return re.sub(
        r"\s*\0\s*", lambda m: line_joint(text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]), text
    )


def line_joint(before: str, after: str) -> str:
    """What joins two wrapped lines, given the last character of one and the first of the next:
    nothing between wide (Chinese) characters or next to wide punctuation ("。", "「"), else one
    space (between words, and between a Chinese character and a Latin word: "使用 twstock")."""
    if not before or not after:
        return " "
    if is_cjk_wide(before) and is_cjk_wide(after):
        return ""
    return "" if _is_wide_punctuation(before) or _is_wide_punctuation(after) else " "


def _is_wide_punctuation(char: str) -> bool:
    code = ord(char)
    return 0x3000 <= code <= 0x303F or (0xFF00 <= code <= 0xFFEF and not char.isalnum())


_DUNDER = re.compile(r"(?<![\w`])__([A-Za-z][A-Za-z0-9_]*?)__(?![\w`])")


@lru_cache(maxsize=1)
def _markdown_parser():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark").enable(["table", "strikethrough"])


def parse_markdown(text: str) -> list:
    """markdown-it tokens of ``text`` (CommonMark with tables and strikethrough): the one parser."""
    # __enter__ is a Python name, not bold "enter": an identifier between double underscores stays.
    return _markdown_parser().parse(_DUNDER.sub(r"\_\_\1\_\_", text))


def markdown_to_text(text: str) -> str:
    """Markdown as the plain text a reader hears: one line per heading, paragraph line, list item
    and table row (cells joined by commas); emphasis, links and quotes reduced to their words;
    code blocks and HTML left out. Text that is not Markdown comes back with its lines as they were.
    """
    tokens = parse_markdown(text)
    lines: list[str] = []
    row: list[str] | None = None
    for token in tokens:
        if token.type == "tr_open":
            row = []
        elif token.type == "tr_close" and row is not None:
            lines.append(", ".join(cell for cell in row if cell))
            row = None
        elif token.type == "inline":
            content = inline_text(token).strip()
            if row is not None:
                row.append(" ".join(content.split()))
            else:
                lines.extend(line.strip() for line in content.split("\n") if line.strip())
    return "\n".join(lines)
