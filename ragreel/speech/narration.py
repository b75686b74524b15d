"""Narration: answer text in, one WAV and the timeline of its subtitles out.

Each subtitle sentence is split at clause marks when too long for the voice, each piece is split
by script so that every run goes to a voice that can say it (Chinese characters inside English text
to the Mandarin voice, Latin words inside Chinese to the English one), and the runs are resampled,
trimmed, levelled and joined; the sentence's timing comes from its own audio.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from ragreel.errors import InputError, PermanentError, RagreelError, TransientError
from ragreel.schemas import LANGUAGES, Language, Narration, parse_language
from ragreel.settings import Settings, get_settings
from ragreel.speech.base import Voice
from ragreel.speech.prepare import speech_runs, split_by_script, split_clauses, subtitle_sentences
from ragreel.speech.timeline import (
    Clip,
    as_float_mono,
    assemble,
    concatenate,
    level,
    resample,
    trim_silence,
    write_wav,
)
from ragreel.speech.voices import resolve_voice
from ragreel.speech.words import time_words

log = logging.getLogger(__name__)

CLAUSE_PAUSE_S = 0.15  # between the pieces of a sentence too long for the voice
RUN_GAP_S = 0.05  # where a mixed sentence changes script (and maybe voice)


def narrate(
    text: str,
    language: str,
    wav_path: Path,
    voice: str | None = None,
    settings: Settings | None = None,
) -> Narration:
    """Speak ``text`` into a mono 16-bit WAV at ``settings.sample_rate`` and time each subtitle.

    ``language`` is 'en' or 'zh'; ``voice`` (auto, bark, piper, kokoro, espeak, optionally
    ``kind:variant``) overrides ``RAGREEL_VOICE_EN``/``RAGREEL_VOICE_ZH``. Each timed entry is a
    sentence as the subtitle shows it (citation markers, markdown and URLs removed, nothing rewritten
    for speech); a sentence longer than the voice can take in one go is split at clause marks and
    becomes one entry per piece, each timed by its own audio. The first entry starts at 0 and the last
    ends at the end of the WAV.
    """
    settings = settings or get_settings()
    if not text or not text.strip():
        raise InputError("there is no text to narrate", stage="speak", hint="pass the answer's text")
    language = parse_language(language, stage="speak")
    sentences = subtitle_sentences(text)
    if not sentences:
        raise InputError(
            "nothing speakable is left once citation markers, markdown and URLs are removed",
            stage="speak",
            hint="pass the answer's text, not only links or markers",
        )
    started = time.perf_counter()
    primary = resolve_voice(language, voice, settings)
    speaker = _Speaker(primary, language, settings)
    clips: list[Clip] = []
    for sentence in sentences:
        pieces = split_clauses(sentence, primary.max_chars(language))
        for index, piece in enumerate(pieces):
            audio = speaker.speak(piece)
            if audio.size == 0:
                log.warning("nothing to say for %r; left out of the narration", piece)
                continue
            last = index == len(pieces) - 1
            pause = settings.sentence_pause_s if last else min(CLAUSE_PAUSE_S, settings.sentence_pause_s)
            clips.append(Clip(piece, audio, pause))
    if not clips:
        raise InputError(
            "the voice produced no audio for any sentence",
            stage="speak",
            hint="check that the text is in the narration language",
        )
    samples, timeline = assemble(clips, settings.sample_rate)
    timeline = time_words(samples, settings.sample_rate, timeline, language, settings)
    write_wav(Path(wav_path), samples, settings.sample_rate)
    duration = samples.size / settings.sample_rate
    elapsed = time.perf_counter() - started
    log.info(
        "narrated %d subtitles, %.1f s of audio, with %s in %.1f s (%.2f s per second of audio) -> %s",
        len(timeline),
        duration,
        "+".join(speaker.spoke),
        elapsed,
        elapsed / max(duration, 1e-9),
        wav_path,
    )
    return Narration(
        wav_path=str(wav_path),
        sample_rate=settings.sample_rate,
        duration=duration,
        language=language,
        voice="+".join(speaker.spoke),
        sentences=timeline,
    )


class _Speaker:
    """Speaks one subtitle piece: each script run by a voice that can say it, resampled, trimmed, levelled."""

    def __init__(self, primary: Voice, language: str, settings: Settings):
        self.primary = primary
        self.language = language
        self.settings = settings
        self.others: dict[str, Voice] = {}
        self.spoke: list[str] = []

    def _voice_for(self, run_language: str) -> Voice:
        if run_language in self.primary.languages:
            return self.primary
        if run_language not in self.others:
            # e.g. Chinese characters inside English text read by Piper: the Mandarin voice says them.
            self.others[run_language] = resolve_voice(run_language, None, self.settings)
        return self.others[run_language]

    def speak(self, piece: str) -> np.ndarray:
        rate = self.settings.sample_rate
        parts = []
        for run in speech_runs(piece, self.language):
            voice = self._voice_for(run.language)
            raw = self._synthesize(voice, run.text, run.language)
            audio = trim_silence(resample(as_float_mono(raw), voice.sample_rate, rate), rate)
            if audio.size == 0:
                continue
            if voice.name not in self.spoke:
                self.spoke.append(voice.name)
            parts.append(level(audio))
        return concatenate(parts, rate, RUN_GAP_S)

    def _synthesize(self, voice: Voice, text: str, language: str) -> np.ndarray:
        """One run through the voice, tried twice: a glitch (a killed espeak process, a runtime
        hiccup) passes on the second try, while a voice that fails on this text fails fast."""
        for attempt in (1, 2):
            try:
                return voice.synthesize(text, language)
            except RagreelError:
                raise
            except Exception as exc:  # noqa: BLE001 - every voice library has its own error types
                if isinstance(exc, MemoryError) or "out of memory" in str(exc).lower():
                    raise TransientError(
                        f"{voice.name} ran out of memory",
                        stage="speak",
                        hint="retry, or choose a lighter voice",
                    ) from exc
                if attempt == 1:
                    log.warning("%s failed on %r (%s); trying once more", voice.name, text, exc)
                    continue
                raise PermanentError(
                    f"{voice.name} failed twice on {text!r}: {exc}",
                    stage="speak",
                    hint="try another voice with RAGREEL_VOICE_EN/ZH",
                ) from exc
        raise AssertionError("unreachable")


def voice_settings_used(text: str, language: Language, voice: str | None, settings: Settings) -> list[str]:
    """The voice choices a narration of ``text`` may use: the primary one, and the other language's
    setting when the text has runs in that script (what :class:`_Speaker` hands to another voice)."""
    by_language = {"en": settings.voice_en, "zh": settings.voice_zh}
    used = [voice if voice and voice != "auto" else by_language[language]]
    scripts = {script for script, _ in split_by_script(text) if script}
    used += [by_language[other] for other in LANGUAGES if other != language and other in scripts]
    return used
