"""Checking narration by ear: offline Whisper base (faster-whisper) and word/character error rates.

Used by the intelligibility tests and ``bench/speech_bench.py``; the model itself is loaded by
:mod:`ragreel.speech.whisper`, which also times the narration's words.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from pathlib import Path

from ragreel.speech.whisper import load_whisper, whisper_base_folder, whisper_lock
from ragreel.text import SIMPLIFIED, convert_chinese

log = logging.getLogger(__name__)

# Reference paragraphs for intelligibility checks (no digits: Whisper writes numbers as it likes).
SAMPLE_PARAGRAPHS = {
    "en": (
        "Retrieval augmented generation answers a question with passages found in a knowledge base. "
        "The system first searches the documents, then asks a language model to write a short answer "
        "that cites its sources. A narrator reads the answer aloud, and subtitles follow each sentence."
    ),
    "zh": (
        "臺灣的茶文化歷史悠久，烏龍茶和包種茶都很有名。泡茶的時候，水溫和時間會影響茶湯的味道。"
        "許多人喜歡在下午和朋友一起喝茶聊天。"
    ),
}


def transcribe(wav_path: Path, language: str, cache_dir: Path, temperature: float | None = None) -> str:
    """What Whisper base hears in a WAV (``language`` 'en' or 'zh'), as one string.

    ``temperature=0.0`` decodes once, without Whisper's sampled retries: on audio that is not
    speech those retries cost several extra decodes and cannot make sense of it anyway.
    """
    model = load_whisper(str(whisper_base_folder(cache_dir)))
    # Without conditioning, one misheard sentence cannot derail the rest (and Mandarin stays Mandarin).
    # Clear speech decodes at temperature 0 (deterministic); Whisper samples only when that decode
    # fails, as it does on espeak-ng's Mandarin, whose scores therefore vary from run to run.
    with whisper_lock:
        options = {} if temperature is None else {"temperature": temperature}
        segments, _ = model.transcribe(
            str(wav_path), language=language, beam_size=5, condition_on_previous_text=False, **options
        )
        return " ".join(segment.text.strip() for segment in segments)


# --- scoring -------------------------------------------------------------------------------------


def _edit_distance(reference: list[str], hypothesis: list[str]) -> int:
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1]


def english_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower().replace("-", " ")
    return re.findall(r"[a-z0-9']+", text)


def chinese_characters(text: str) -> list[str]:
    """Characters to score: one script (Simplified), no punctuation or spaces; Latin words kept whole."""
    text = convert_chinese(unicodedata.normalize("NFKC", text), SIMPLIFIED).lower()
    return re.findall(r"[a-z0-9']+|[^\W\d_a-z]", text)


def word_error_rate(reference: str, hypothesis: str) -> float:
    words = english_words(reference)
    return _edit_distance(words, english_words(hypothesis)) / max(1, len(words))


def character_error_rate(reference: str, hypothesis: str) -> float:
    characters = chinese_characters(reference)
    return _edit_distance(characters, chinese_characters(hypothesis)) / max(1, len(characters))
