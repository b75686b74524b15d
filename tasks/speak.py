"""The speech stage: answer text in, one WAV and the timeline of its subtitles out.

``narrate`` (from :mod:`ragreel.speech.narration`) is the stage's function; ``speak_stage`` is the
Prefect task the generate flow calls. Its cache key holds every voice the narration may use: the
primary one, and the other language's voice when the text has words in that script.
"""

from __future__ import annotations

from pathlib import Path

from ragreel.schemas import Language, Narration
from ragreel.settings import Settings, get_settings
from ragreel.speech.narration import narrate, voice_settings_used
from tasks.stage import code_version, file_signature, short_hash, stage_task

__all__ = ["narrate", "speak_cache_key", "speak_stage"]


def speak_cache_key(settings: Settings, parameters: dict) -> str:
    voices = voice_settings_used(parameters["text"], parameters["language"], parameters["voice"], settings)
    return "|".join(
        [
            code_version("tasks.speak", "ragreel.speech"),
            *voices,
            str(settings.bark_model),
            file_signature(settings.piper_voice),
            str(settings.sample_rate),
            str(settings.sentence_pause_s),
            settings.word_timing,
        ]
    )


def narration_path(out_dir: str, text: str, language: Language, voice: str, settings: Settings) -> Path:
    """Where a narration goes: named by what shapes it, so two narrations in one folder never collide."""
    key = speak_cache_key(settings, {"text": text, "language": language, "voice": voice})
    return Path(out_dir) / f"narration-{short_hash(key, text, language)}.wav"


@stage_task(
    name="speak",
    timeout_seconds=1800,
    settings_key=speak_cache_key,
    run_name=lambda p: f"speak {len(p['text'])} characters in {p['language']}",
    outputs=lambda narration: [narration.wav_path],
)
def speak_stage(text: str, language: Language, voice: str, out_dir: str) -> Narration:
    """``out_dir`` is a folder, or with RAGREEL_STORE an s3:// URL: the WAV is spoken into this
    host's scratch copy of it, then published there, so a later render on any host finds it."""
    from ragreel.outputs import publish, scratch_folder

    settings = get_settings()
    folder = scratch_folder(out_dir, settings)
    narration = narrate(
        text,
        language,
        narration_path(str(folder), text, language, voice, settings),
        voice=voice,
        settings=settings,
    )
    return narration.model_copy(update={"wav_path": publish(narration.wav_path, out_dir, settings)})
