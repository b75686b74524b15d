"""Intelligibility, measured: offline Whisper base transcribes each voice's narration of a reference
paragraph; English is scored by word error rate, Mandarin by character error rate (one script).

Bounds sit well above what was measured (see ``bench/speech_bench.py``: Piper WER 0.00, Kokoro
English WER 0.05, espeak-ng English WER 0.11, Kokoro Mandarin CER 0.02 on this paragraph and 0.06-0.14
on two others) and well below what a
voice that mumbles scores (the controls at the end). espeak-ng's Mandarin is not held to a bound:
Whisper hears it at CER 0.48-1.0 from one run to the next (and sometimes as no speech at all), so it
only has to be audible (tests/test_speech.py); it is the last fallback, never the default.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from bench.asr import SAMPLE_PARAGRAPHS, character_error_rate, transcribe, word_error_rate
from ragreel.settings import get_settings
from tasks.speak import narrate

pytestmark = pytest.mark.slow

BOUNDS = {
    ("piper", "en"): 0.10,
    ("kokoro", "en"): 0.15,
    ("espeak", "en"): 0.25,
    ("kokoro", "zh"): 0.15,
}
OTHER_ENGLISH = (
    "Mountains cool the air at night, so the leaves grow slowly and keep more of their sweetness. "
    "Farmers pick them by hand in spring and again in winter."
)


@pytest.fixture(scope="module")
def settings():
    return get_settings(voice_en="auto", voice_zh="auto", bark_model=None, piper_voice=None)


@pytest.fixture(scope="module")
def narrated(settings, tmp_path_factory):
    """Each voice's WAV of the reference paragraph in its language, made once for the module."""
    folder = tmp_path_factory.mktemp("intelligibility")
    wavs = {}
    for voice, language in BOUNDS:
        wav = folder / f"{voice}-{language}.wav"
        narration = narrate(SAMPLE_PARAGRAPHS[language], language, wav, voice=voice, settings=settings)
        assert narration.voice.startswith(voice)
        wavs[voice, language] = wav
    return wavs


def error_rate(language: str, reference: str, heard: str) -> float:
    return (word_error_rate if language == "en" else character_error_rate)(reference, heard)


@pytest.mark.parametrize(("voice", "language"), list(BOUNDS))
def test_voice_is_understood(narrated, settings, voice, language):
    heard = transcribe(narrated[voice, language], language, settings.model_cache_dir)
    rate = error_rate(language, SAMPLE_PARAGRAPHS[language], heard)
    assert rate <= BOUNDS[voice, language], (
        f"{voice} [{language}] error rate {rate:.3f}; Whisper heard: {heard!r}"
    )


def test_wrong_audio_fails_the_bounds(narrated, settings, tmp_path):
    """The bounds are tight enough to catch a voice that says the wrong thing or mumbles."""
    cache = settings.model_cache_dir
    # Clear English speech checked against another English text, and against the Mandarin one.
    heard_en = transcribe(narrated["piper", "en"], "en", cache)
    assert word_error_rate(OTHER_ENGLISH, heard_en) > BOUNDS["espeak", "en"]
    assert character_error_rate(SAMPLE_PARAGRAPHS["zh"], heard_en) > BOUNDS["kokoro", "zh"]
    # Mumbling: the Mandarin narration played backwards has the voice's sound but no words.
    with wave.open(str(narrated["kokoro", "zh"]), "rb") as source:
        params, frames = source.getparams(), source.readframes(source.getnframes())
    reversed_wav = tmp_path / "reversed.wav"
    with wave.open(str(reversed_wav), "wb") as target:
        target.setparams(params)
        target.writeframes(np.frombuffer(frames, dtype="<i2")[::-1].tobytes())
    heard = transcribe(reversed_wav, "zh", cache, temperature=0.0)
    assert character_error_rate(SAMPLE_PARAGRAPHS["zh"], heard) > BOUNDS["kokoro", "zh"], heard


def test_whisper_folder_is_assembled_and_checked(settings):
    from ragreel.speech.whisper import WHISPER_BASE_SIZE, whisper_base_folder

    folder = whisper_base_folder(settings.model_cache_dir)
    assert (folder / "model.bin").stat().st_size == WHISPER_BASE_SIZE
    assert (folder / "tokenizer.json").is_file()
    assert not list(Path(folder).glob("*.part"))
