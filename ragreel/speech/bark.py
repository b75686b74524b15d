"""Bark (suno/bark, suno/bark-small) through transformers, from a local folder or the Hugging Face cache.

The weights are not shipped with ragreel: download them once where there is a network and set
``RAGREEL_BARK_MODEL`` (see :func:`ragreel.speech.voices.bark_how_to`). Nothing is fetched at run
time (``local_files_only``). Bark caps one generation at about 13-14 s and sometimes drops words,
so ragreel feeds it one sentence (or clause) at a time with one voice preset, and joins the clips.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from pathlib import Path

import numpy as np

from ragreel.errors import DependencyMissing
from ragreel.speech.base import Voice, bark_how_to

log = logging.getLogger(__name__)

# Presets used when the weights folder ships speaker embeddings (suno/bark and bark-small do).
PREFERRED_PRESETS = {"en": "v2/en_speaker_6", "zh": "v2/zh_speaker_4"}
SEMANTIC_TOKENS_PER_SECOND = 49.9
_CHARS_PER_SECOND = {"en": 14.0, "zh": 4.5}
_MAX_SECONDS = 14.0


def bark_available(model: str | None) -> bool:
    """True when ``model`` names a folder with Bark weights or a repository in the local HF cache."""
    if not model:
        return False
    folder = Path(model).expanduser()
    if folder.is_dir():
        return (folder / "config.json").is_file()
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    try:
        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # noqa: BLE001 - a name that is not a valid repo id is simply not there
        return False


def bark_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def choose_preset(available: list[str], language: str, requested: str | None = None) -> str | None:
    """``requested`` if given (and present), else the preferred preset, else the first of the language."""
    if requested:
        if requested not in available:
            raise DependencyMissing(
                f"Bark voice preset {requested!r} is not in the weights folder",
                stage="speak",
                hint=f"available presets: {', '.join(sorted(available)) or 'none'}",
            )
        return requested
    if PREFERRED_PRESETS.get(language) in available:
        return PREFERRED_PRESETS[language]
    own = sorted(p for p in available if p.startswith((f"v2/{language}_speaker_", f"{language}_speaker_")))
    return own[0] if own else None


def semantic_token_cap(text: str, language: str) -> int:
    """Room for about twice the expected speech (plus 2 s), so a babbling generation stops early."""
    expected = len(text) / _CHARS_PER_SECOND.get(language, 14.0)
    return max(32, int(SEMANTIC_TOKENS_PER_SECOND * min(_MAX_SECONDS, 2 * expected + 2)))


class BarkVoice(Voice):
    """One Bark model (``BarkModel`` + ``AutoProcessor``), on the GPU when there is one."""

    kind = "bark"
    languages = frozenset({"en", "zh"})

    def __init__(self, model: str, preset: str | None = None, language: str | None = None):
        if not bark_available(model):
            raise DependencyMissing(f"Bark weights not found at {model!r}", stage="speak", hint=bark_how_to())
        try:
            import torch
            from transformers import AutoProcessor, BarkModel
        except ImportError as exc:
            raise DependencyMissing(
                "transformers and torch are needed for Bark",
                stage="speak",
                hint="pip install torch transformers",
            ) from exc
        started = time.perf_counter()
        self.device = bark_device()
        self._torch = torch
        try:
            self.processor = AutoProcessor.from_pretrained(model, local_files_only=True)
            self.model = BarkModel.from_pretrained(model, local_files_only=True).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise DependencyMissing(
                f"Bark weights at {model!r} could not be loaded: {exc}", stage="speak", hint=bark_how_to()
            ) from exc
        self.sample_rate = int(self.model.generation_config.sample_rate)
        available = list(self.processor.available_voice_presets)
        self.presets = {
            lang: choose_preset(available, lang, preset if lang == language else None)
            for lang in self.languages
        }
        self.name = f"bark:{model}"
        # Seeding touches torch's global random state: one generation at a time.
        self._lock = threading.Lock()
        log.info(
            "Bark loaded from %s on %s in %.1f s (presets: %s)",
            model,
            self.device,
            time.perf_counter() - started,
            self.presets,
        )

    def max_chars(self, language: str) -> int:
        return int(_CHARS_PER_SECOND.get(language, 14.0) * 13)

    def synthesize(self, text: str, language: str) -> np.ndarray:
        torch = self._torch
        preset = self.presets.get(language)
        inputs = self.processor(text, voice_preset=preset, return_tensors="pt")
        history = inputs.pop("history_prompt", None)
        inputs = {key: value.to(self.device) for key, value in inputs.items()}
        if history is not None:
            inputs["history_prompt"] = {key: value.to(self.device) for key, value in history.items()}
        devices = [torch.cuda.current_device()] if self.device == "cuda" else []
        # Bark samples; seeding from the text makes the same sentence come out the same (cacheable)
        # without disturbing the caller's random state.
        with self._lock, torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(zlib.crc32(f"{preset}|{text}".encode()))
            audio = self.model.generate(
                **inputs, do_sample=True, semantic_max_new_tokens=semantic_token_cap(text, language)
            )
        return audio.float().cpu().numpy().reshape(-1)
