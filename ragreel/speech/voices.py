"""Which voice speaks: the voice interface, the ``kind[:variant]`` choice, ``auto`` and its fallbacks.

A choice (``RAGREEL_VOICE_EN`` / ``RAGREEL_VOICE_ZH`` or the ``voice`` argument of ``narrate``)
is ``auto``, ``bark``, ``piper``, ``kokoro`` or ``espeak``, optionally with a variant after a
colon: a Bark preset (``bark:v2/en_speaker_9``), a Kokoro voice (``kokoro:jf_nezumi``), a Piper
``.onnx`` path (``piper:/voices/en_GB-alan-medium.onnx``) or an espeak-ng voice (``espeak:en-gb``).

``auto`` picks Bark when its weights are configured, else Piper for English and Kokoro for
Mandarin, and falls back to espeak-ng when that voice fails to load. A voice named explicitly
is not replaced: if it cannot load, the error says how to install it.

Voices load once per process and are reused (:data:`_loaded`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import numpy as np

from ragreel.errors import DependencyMissing, InputError, PermanentError
from ragreel.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("auto", "bark", "piper", "kokoro", "espeak")
LANGUAGES = ("en", "zh")


class Voice:
    """A loaded voice. ``synthesize`` returns float32 mono samples at ``sample_rate``."""

    kind: str = ""
    name: str = ""  # e.g. "piper:joe-us", shown in Narration.voice
    sample_rate: int = 0
    languages: frozenset[str] = frozenset()  # languages it can say itself

    def max_chars(self, language: str) -> int:
        """Longest text one call should get; longer sentences are split at clause marks first."""
        raise NotImplementedError

    def synthesize(self, text: str, language: str) -> np.ndarray:
        raise NotImplementedError


@dataclass(frozen=True)
class VoiceChoice:
    kind: str
    variant: str | None = None

    def __str__(self) -> str:
        return f"{self.kind}:{self.variant}" if self.variant else self.kind


def parse_choice(text: str) -> VoiceChoice:
    kind, _, variant = text.strip().partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise InputError(
            f"unknown voice {text!r}", stage="speak",
            hint=f"use one of {', '.join(KINDS)}, optionally with a variant, e.g. kokoro:jf_alpha",
        )
    return VoiceChoice(kind, variant.strip() or None)


def normalize_language(language: str) -> str:
    code = language.strip().lower().replace("_", "-")
    if code in ("zh", "cmn") or code.startswith(("zh-", "cmn-")):
        return "zh"
    if code == "en" or code.startswith("en-"):
        return "en"
    raise InputError(
        f"narration language {language!r} is not supported", stage="speak", hint="use 'en' or 'zh'"
    )


# --- loading -------------------------------------------------------------------------------------

_loaded: dict[tuple, Voice] = {}
_load_lock = threading.Lock()
_bark_hint_logged = False


def _load(choice: VoiceChoice, language: str, settings: Settings) -> Voice:
    """Load (or reuse) one voice; errors are DependencyMissing/PermanentError with a hint."""
    if choice.kind == "espeak":
        from ragreel.speech.espeak import EspeakVoice

        key: tuple = ("espeak", language, choice.variant)
        factory = lambda: EspeakVoice(language, choice.variant)  # noqa: E731
    elif choice.kind == "piper":
        from ragreel.speech.piper import PiperVoice, piper_model_path

        model = piper_model_path(choice.variant, settings)
        key = ("piper", str(model))
        factory = lambda: PiperVoice(model)  # noqa: E731
    elif choice.kind == "kokoro":
        from ragreel.speech.kokoro import DEFAULT_KOKORO_VOICE, KokoroVoice

        key = ("kokoro", choice.variant or DEFAULT_KOKORO_VOICE)
        factory = lambda: KokoroVoice(  # noqa: E731
            choice.variant or DEFAULT_KOKORO_VOICE, settings.model_cache_dir / "kokoro"
        )
    elif choice.kind == "bark":
        from ragreel.speech.bark import BarkVoice, bark_available, bark_device

        if not settings.bark_model:
            raise DependencyMissing("Bark was chosen but no weights are configured", stage="speak",
                                    hint=bark_how_to())
        if not bark_available(settings.bark_model):  # said before torch is imported
            raise DependencyMissing(f"Bark weights not found at {settings.bark_model!r}", stage="speak",
                                    hint=bark_how_to())
        # A preset variant applies to this language only, so it is part of what was loaded.
        key = ("bark", settings.bark_model, bark_device(), choice.variant and (choice.variant, language))
        factory = lambda: BarkVoice(settings.bark_model, choice.variant, language)  # noqa: E731
    else:  # pragma: no cover - parse_choice rejects anything else
        raise InputError(f"unknown voice {choice}", stage="speak")

    with _load_lock:
        voice = _loaded.get(key)
        if voice is None:
            started = time.perf_counter()
            voice = factory()
            _loaded[key] = voice
            log.info("voice %s ready in %.2f s", voice.name, time.perf_counter() - started)
    if language not in voice.languages:
        raise PermanentError(
            f"voice {voice.name} cannot speak {language!r}", stage="speak",
            hint=f"choose another voice for {language}, e.g. RAGREEL_VOICE_{language.upper()}=auto",
        )
    return voice


def bark_how_to() -> str:
    return (
        "download Bark once where there is a network (huggingface-cli download suno/bark-small --local-dir "
        "/models/bark-small) and set RAGREEL_BARK_MODEL=/models/bark-small (a folder, or a Hugging Face cache "
        "name such as suno/bark-small)"
    )


def _auto_candidates(language: str, settings: Settings) -> list[VoiceChoice]:
    from ragreel.speech.bark import bark_available

    global _bark_hint_logged
    candidates = []
    if bark_available(settings.bark_model):
        candidates.append(VoiceChoice("bark"))
    elif not _bark_hint_logged:
        _bark_hint_logged = True
        if settings.bark_model:
            log.warning("Bark weights not found at %r; using the offline voices. To enable Bark: %s",
                        settings.bark_model, bark_how_to())
        else:
            log.info("Bark is not configured; using the offline voices. To enable Bark: %s", bark_how_to())
    candidates.append(VoiceChoice("piper") if language == "en" else VoiceChoice("kokoro"))
    candidates.append(VoiceChoice("espeak"))
    return candidates


def resolve_voice(language: str, choice: str | None = None, settings: Settings | None = None) -> Voice:
    """The voice for ``language``: ``choice``, else the language's setting; ``auto`` falls back."""
    from ragreel.settings import get_settings

    settings = settings or get_settings()
    language = normalize_language(language)
    parsed = parse_choice(choice or (settings.voice_zh if language == "zh" else settings.voice_en))
    if parsed.kind != "auto":
        return _load(parsed, language, settings)
    failures = []
    for candidate in _auto_candidates(language, settings):
        try:
            return _load(candidate, language, settings)
        except Exception as exc:  # noqa: BLE001 - any load failure moves auto on to the next voice
            failures.append(f"{candidate}: {exc}")
            log.warning("voice %s failed to load for %s (%s); trying the next one", candidate, language, exc)
    raise DependencyMissing(
        f"no voice could be loaded for {language}: " + "; ".join(failures), stage="speak",
        hint="pip install espeakng-loader (the last fallback) or see the errors above",
    )
