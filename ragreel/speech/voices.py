"""Which voice speaks: loading voices once per process, `auto` and its fallbacks.

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

from ragreel.errors import DependencyMissing, InputError, PermanentError
from ragreel.schemas import parse_language
from ragreel.settings import Settings, get_settings
from ragreel.speech.base import Voice, VoiceChoice, bark_how_to, parse_choice

log = logging.getLogger(__name__)

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
            raise DependencyMissing(
                "Bark was chosen but no weights are configured", stage="speak", hint=bark_how_to()
            )
        if not bark_available(settings.bark_model):  # said before torch is imported
            raise DependencyMissing(
                f"Bark weights not found at {settings.bark_model!r}", stage="speak", hint=bark_how_to()
            )
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
            f"voice {voice.name} cannot speak {language!r}",
            stage="speak",
            hint=f"choose another voice for {language}, e.g. RAGREEL_VOICE_{language.upper()}=auto",
        )
    return voice


def _auto_candidates(language: str, settings: Settings) -> list[VoiceChoice]:
    from ragreel.speech.bark import bark_available

    global _bark_hint_logged
    candidates = []
    if bark_available(settings.bark_model):
        candidates.append(VoiceChoice("bark"))
    elif not _bark_hint_logged:
        _bark_hint_logged = True
        if settings.bark_model:
            log.warning(
                "Bark weights not found at %r; using the offline voices. To enable Bark: %s",
                settings.bark_model,
                bark_how_to(),
            )
        else:
            log.info("Bark is not configured; using the offline voices. To enable Bark: %s", bark_how_to())
    candidates.append(VoiceChoice("piper") if language == "en" else VoiceChoice("kokoro"))
    candidates.append(VoiceChoice("espeak"))
    return candidates


def resolve_voice(language: str, choice: str | None = None, settings: Settings | None = None) -> Voice:
    """The voice for ``language``: ``choice``, else the language's setting; ``auto`` falls back."""
    settings = settings or get_settings()
    language = parse_language(language, stage="speak")
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
        f"no voice could be loaded for {language}: " + "; ".join(failures),
        stage="speak",
        hint="pip install espeakng-loader (the last fallback) or see the errors above",
    )
