"""What every prompt shares: the answer's length target, the passages as data, the not-covered answer.

- :class:`LengthTarget` turns the narration seconds in the settings into text lengths.
- :func:`format_passages` puts numbered passages between delimiters that text inside them cannot
  close or open, so that a passage (or a question) stays data, never instructions.
- :func:`not_covered_message` is what the answer says when retrieval found nothing relevant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ragreel.llm.evidence import lines_with_table_rows
from ragreel.schemas import Passage
from ragreel.text import HAN_CLASS

# Speaking rates used to turn narration seconds into text length: about 15 characters a second
# in English (roughly 2.5 words) and 4.5 Han characters a second in Mandarin.
CHARS_PER_SECOND = {"en": 15.0, "zh": 4.5}
# English words are about 6 characters with the space: used only to phrase the request to the model.
CHARS_PER_WORD_EN = 6.0
# Rough characters per token, to size max_tokens with headroom (the text is cut afterwards anyway).
CHARS_PER_TOKEN = {"en": 3.5, "zh": 1.0}

_HAN = HAN_CLASS
_MARKER = re.compile(r"\[(\d+)\]")
_DELIMITER_TAG = re.compile(r"<(\s*/?\s*(?:passage|passages|question)\b)", re.IGNORECASE)


@dataclass(frozen=True)
class LengthTarget:
    """How long the answer should be, derived from the narration seconds in the settings."""

    language: str
    min_seconds: float
    max_seconds: float

    @property
    def max_chars(self) -> int:
        return int(self.max_seconds * CHARS_PER_SECOND[self.language])

    @property
    def ask_range(self) -> tuple[int, int]:
        """Length to ask the model for: from the minimum up to the middle of the allowed range,
        so a talkative model still lands under the maximum."""
        low = self.min_seconds * CHARS_PER_SECOND[self.language]
        high = (self.min_seconds + self.max_seconds) / 2 * CHARS_PER_SECOND[self.language]
        if self.language == "en":
            return round(low / CHARS_PER_WORD_EN), round(high / CHARS_PER_WORD_EN)
        return round(low), round(high)

    @property
    def max_tokens(self) -> int:
        return int(self.max_chars / CHARS_PER_TOKEN[self.language]) + 48


def spoken_seconds(text: str, language: str) -> float:
    """Estimated narration time of ``text`` (citation markers are not read aloud)."""
    text = _MARKER.sub("", text)
    if language == "zh":
        # Han characters carry the time; a Latin word or a number reads like about two characters.
        units = len(re.findall(f"[{_HAN}]", text)) + 2 * len(re.findall(r"[A-Za-z0-9]+", text))
        return units / CHARS_PER_SECOND["zh"]
    return len(re.sub(r"\s+", " ", text).strip()) / CHARS_PER_SECOND["en"]


# --- the passages as the prompt shows them ---------------------------------------------------


def neutralise_delimiters(text: str) -> str:
    # Text inside a passage must not be able to close its <passage> block or open a new one.
    return _DELIMITER_TAG.sub(r"‹\1", text)


def format_passages(passages: list[Passage]) -> str:
    blocks = []
    for number, passage in enumerate(passages, start=1):
        title = neutralise_delimiters(passage.title).replace('"', "'")
        heading = f' section="{neutralise_delimiters(passage.heading)}"' if passage.heading else ""
        blocks.append(
            f'<passage number="{number}" title="{title}"{heading}>\n'
            f"{neutralise_delimiters(with_table_rows_as_sentences(passage.text.strip()))}\n</passage>"
        )
    return "\n\n".join(blocks)


def with_table_rows_as_sentences(text: str) -> str:
    """``text`` with each row of a Markdown table written as the sentence the evidence check reads
    (see :func:`~ragreel.llm.evidence.lines_with_table_rows`) and its header row left out: shown
    "| 里 | 裡 裏 里 | …", a small model quotes single cells ("里"), which are no sentence of the
    passage, and its scene is dropped."""
    return "\n".join(line for line, _ in lines_with_table_rows(text))


def not_covered_message(language: str) -> str:
    if language == "zh":
        return "知識庫裡沒有和這個問題相關的內容，所以無法根據資料回答。請加入相關文件，或換個方式提問。"
    return (
        "The knowledge base doesn't cover this question, so there is nothing to answer it from. "
        "Try adding documents about it, or ask it another way."
    )
