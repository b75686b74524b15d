"""The speech stage: text preparation, timeline assembly, voice choice, and narrations by each voice."""

from __future__ import annotations

import logging
import wave
from pathlib import Path

import numpy as np
import pytest

from ragreel.errors import DependencyMissing, InputError, PermanentError
from ragreel.settings import get_settings
from ragreel.speech import voices
from ragreel.speech.kokoro import DEFAULT_KOKORO_VOICE
from ragreel.speech.narration import CLAUSE_PAUSE_S
from ragreel.speech.prepare import (
    clean_text,
    en_cardinal,
    en_ordinal,
    en_year,
    speech_runs,
    split_by_script,
    split_clauses,
    subtitle_sentences,
    zh_integer,
)
from ragreel.speech.timeline import Clip, assemble, resample, trim_silence, write_wav
from tasks.speak import narrate


def offline_settings(**overrides):
    """Settings that ignore the caller's voice environment (no Bark unless a test sets it)."""
    values = {"voice_en": "auto", "voice_zh": "auto", "bark_model": None, "piper_voice": None}
    values.update(overrides)
    return get_settings(**values)


def read_wav(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path), "rb") as wav:
        assert wav.getnchannels() == 1
        assert wav.getsampwidth() == 2
        frames = wav.readframes(wav.getnframes())
        return np.frombuffer(frames, dtype="<i2").astype(np.float32) / 32768.0, wav.getframerate()


def check_narration(narration, settings, min_s_per_char: float, max_s_per_char: float) -> np.ndarray:
    """WAV at the declared rate; timeline from 0 to the end, ordered, gaps no longer than a pause;
    every entry audible and of plausible length for its text."""
    audio, rate = read_wav(Path(narration.wav_path))
    assert rate == narration.sample_rate == settings.sample_rate
    assert narration.duration == pytest.approx(audio.size / rate, abs=1e-6)
    timeline = narration.sentences
    assert timeline[0].start == 0.0
    assert timeline[-1].end == pytest.approx(narration.duration, abs=1e-6)
    for before, after in zip(timeline, timeline[1:], strict=False):
        gap = after.start - before.end
        assert gap == pytest.approx(settings.sentence_pause_s, abs=1.5 / rate) or gap == pytest.approx(
            min(CLAUSE_PAUSE_S, settings.sentence_pause_s), abs=1.5 / rate
        )
    for entry in timeline:
        assert entry.end > entry.start
        segment = audio[round(entry.start * rate) : round(entry.end * rate)]
        assert np.sqrt(np.mean(segment**2)) > 0.02, f"silent: {entry.text!r}"
        seconds_per_char = (entry.end - entry.start) / len(entry.text)
        assert min_s_per_char <= seconds_per_char <= max_s_per_char, (entry.text, entry.end - entry.start)
    return audio


# --- text preparation -----------------------------------------------------------------------------

MARKDOWN_ANSWER = """## Brewing **green tea**

Green tea is brewed at 80°C for 2-3 min [1]. See [the guide](https://example.com/guide_(v2)) for *more* [2, 3].
- Oolong is rolled, then roasted【4】.
> Details: https://tea.example.org/oolong.html
"""


def test_subtitles_drop_markers_markdown_and_urls_but_keep_the_wording():
    sentences = subtitle_sentences(MARKDOWN_ANSWER)
    assert sentences == [
        "Brewing green tea",
        "Green tea is brewed at 80°C for 2-3 min.",
        "See the guide for more.",
        "Oolong is rolled, then roasted.",
        "Details:",
    ]
    text = clean_text(MARKDOWN_ANSWER)
    for leftover in ("[", "]", "**", "http", "##", "【", "(", "> "):
        assert leftover not in text


def test_citation_forms_are_removed_without_leaving_spaces_before_punctuation():
    assert (
        clean_text("Tea grows in hills [1][2], and [3-5] on plains [source 6].")
        == "Tea grows in hills, and on plains."
    )
    assert clean_text("臺灣茶很有名[1]，烏龍茶最好【2、3】。") == "臺灣茶很有名，烏龍茶最好。"
    assert clean_text("Oolong is roasted; see https://tea.example.org/a_(b).html.") == "Oolong is roasted."
    assert clean_text("烏龍茶很香，詳見 https://tea.example.org 。") == "烏龍茶很香。"
    # snake_case words and arithmetic are not emphasis
    assert clean_text("set max_new_tokens to 2 * 3 * 4") == "set max_new_tokens to 2 * 3 * 4"


def test_english_numbers_units_and_abbreviations_are_written_out():
    [run] = speech_runs("It costs $5.50, e.g. 3.14 GB in 1984, the 21st LLM & 1,000,000 users at -5°C.", "en")
    assert run.language == "en"
    assert run.text == (
        "It costs five dollars and fifty cents, for example three point one four gigabytes in nineteen "
        "eighty-four, the twenty-first L L M and one million users at minus five degrees Celsius."
    )
    [run] = speech_runs("Steep 2-3 min at 80% strength; No. 5 vs. Dr. Smith, 1 km.", "en")
    assert run.text == (
        "Steep two to three minutes at eighty percent strength; number five versus Doctor "
        "Smith, one kilometer."
    )
    assert en_cardinal(1_234_567) == "one million two hundred thirty-four thousand five hundred sixty-seven"
    assert [en_ordinal(n) for n in (1, 2, 3, 12, 20, 101)] == [
        "first",
        "second",
        "third",
        "twelfth",
        "twentieth",
        "one hundred first",
    ]
    assert [en_year(n) for n in (1900, 1905, 2005, 2024)] == [
        "nineteen hundred",
        "nineteen oh five",
        "two thousand five",
        "twenty twenty-four",
    ]


def test_chinese_numbers_are_read_in_chinese_and_latin_words_go_to_english():
    runs = speech_runs(
        "烏龍茶在 2023 年出口增加了 15%，用 GPT-4 和 5G網路分析，水溫 25°C，約 1,200 公尺。", "zh"
    )
    assert [run.language for run in runs] == ["zh", "en", "zh", "en", "zh"]
    assert runs[0].text == "烏龍茶在 二零二三年出口增加了 百分之十五，用"
    assert runs[1].text == "G P T-four"
    assert runs[3].text == "five G"
    assert runs[4].text == "網路分析，水溫 攝氏二十五度，約 一千二百 公尺。"
    assert [zh_integer(n) for n in (10, 15, 105, 10203, 100000, 123456789)] == [
        "十",
        "十五",
        "一百零五",
        "一萬零二百零三",
        "十萬",
        "一億二千三百四十五萬六千七百八十九",
    ]


def test_han_inside_english_is_a_mandarin_run():
    runs = speech_runs("The tea from 臺灣 is famous.", "en")
    assert [(r.language, r.text) for r in runs] == [
        ("en", "The tea from"),
        ("zh", "臺灣"),
        ("en", "is famous."),
    ]
    assert split_by_script("3張GPU卡用 Python 3 跑") == [
        ("zh", "3張"),
        ("en", "GPU"),
        ("zh", "卡用 "),
        ("en", "Python 3 "),
        ("zh", "跑"),
    ]


def test_long_sentences_split_at_clause_marks_within_the_limit():
    zh = "臺灣的茶文化歷史悠久，從清朝開始就有大量的茶葉出口，烏龍茶與包種茶最有名，至今仍是重要的產業。"
    pieces = split_clauses(zh, 20)
    assert pieces == [
        "臺灣的茶文化歷史悠久，",
        "從清朝開始就有大量的茶葉出口，",
        "烏龍茶與包種茶最有名，",
        "至今仍是重要的產業。",
    ]
    en = "Water matters, because minerals change the taste; soft water brings out sweetness: hard water mutes it"
    pieces = split_clauses(en, 40)
    assert all(len(p) <= 40 for p in pieces) and len(pieces) >= 3
    assert " ".join(pieces) == en
    unbroken = "a" * 50 + " " + "b" * 10
    assert all(len(p) <= 20 for p in split_clauses(unbroken, 20))
    assert split_clauses("Short.", 20) == ["Short."]


# --- timeline ----------------------------------------------------------------------------------------


def tone(seconds: float, rate: int, lead: float = 0.0, tail: float = 0.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    body = 0.5 * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return np.concatenate(
        [np.zeros(int(lead * rate), np.float32), body, np.zeros(int(tail * rate), np.float32)]
    )


def test_assemble_times_each_clip_from_its_samples():
    rate = 24_000
    clips = [
        Clip("one", tone(1.0, rate), 0.35),
        Clip("two", tone(0.5, rate), 0.15),
        Clip("three", tone(0.25, rate), 0.35),
    ]
    audio, timeline = assemble(clips, rate)
    assert [(t.text, t.start, t.end) for t in timeline] == [
        ("one", 0.0, 1.0),
        ("two", 1.35, 1.85),
        ("three", 2.0, 2.25),
    ]
    assert audio.size == round(2.25 * rate)  # no pause after the last clip
    assert np.all(audio[rate : round(1.35 * rate)] == 0)


def test_trim_silence_keeps_a_small_margin_and_resample_keeps_duration():
    rate = 22_050
    clip = tone(1.0, rate, lead=0.5, tail=0.8)
    trimmed = trim_silence(clip, rate, margin_s=0.02)
    assert trimmed.size / rate == pytest.approx(1.04, abs=0.011)
    resampled = resample(trimmed, rate, 24_000)
    assert resampled.size / 24_000 == pytest.approx(trimmed.size / rate, abs=1e-3)
    # A tone keeps its pitch: the spectrum peaks at 220 Hz after resampling.
    spectrum = np.abs(np.fft.rfft(resampled))
    assert np.fft.rfftfreq(resampled.size, 1 / 24_000)[spectrum.argmax()] == pytest.approx(220, abs=2)


def test_write_wav_is_atomic(tmp_path, monkeypatch):
    target = tmp_path / "out" / "narration.wav"
    write_wav(target, tone(0.2, 24_000), 24_000)
    before = target.read_bytes()
    audio, rate = read_wav(target)
    assert rate == 24_000 and audio.size == 4800

    def broken(samples):
        raise OSError("disk full")

    monkeypatch.setattr("ragreel.speech.timeline.to_pcm16", broken)
    with pytest.raises(OSError):
        write_wav(target, tone(0.4, 24_000), 24_000)
    assert target.read_bytes() == before
    assert [p.name for p in target.parent.iterdir()] == ["narration.wav"]


# --- choosing voices ---------------------------------------------------------------------------------


def test_bad_choices_and_empty_text_are_clear_errors(tmp_path):
    settings = offline_settings()
    with pytest.raises(InputError) as error:
        narrate("   \n ", "en", tmp_path / "x.wav", settings=settings)
    assert error.value.stage == "speak" and error.value.hint
    with pytest.raises(InputError):
        narrate("[1] https://example.com", "en", tmp_path / "x.wav", settings=settings)
    with pytest.raises(InputError, match="unknown voice"):
        narrate("Hello.", "en", tmp_path / "x.wav", voice="festival", settings=settings)
    with pytest.raises(InputError, match="not supported"):
        narrate("Bonjour.", "fr", tmp_path / "x.wav", settings=settings)
    assert not (tmp_path / "x.wav").exists()


def test_explicit_bark_without_weights_says_how_to_enable_it(tmp_path):
    with pytest.raises(DependencyMissing) as error:
        narrate("Hello.", "en", tmp_path / "x.wav", voice="bark", settings=offline_settings())
    assert "RAGREEL_BARK_MODEL" in error.value.hint
    with pytest.raises(DependencyMissing) as error:
        voices.resolve_voice("en", "bark", offline_settings(bark_model=str(tmp_path / "no-bark")))
    assert "huggingface-cli download suno/bark-small" in error.value.hint


def test_auto_skips_unconfigured_bark_and_logs_how_to_enable_it_once(monkeypatch, caplog):
    monkeypatch.setattr(voices, "_bark_hint_logged", False)
    with caplog.at_level(logging.INFO, logger="ragreel.speech.voices"):
        first = voices.resolve_voice("en", None, offline_settings())
        voices.resolve_voice("en", None, offline_settings())
    assert first.name == "piper:joe-us"
    hints = [r for r in caplog.records if "RAGREEL_BARK_MODEL" in r.getMessage()]
    assert len(hints) == 1


def test_auto_with_missing_bark_weights_warns_and_uses_the_offline_voice(monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(voices, "_bark_hint_logged", False)
    with caplog.at_level(logging.WARNING, logger="ragreel.speech.voices"):
        voice = voices.resolve_voice("en", None, offline_settings(bark_model=str(tmp_path / "gone")))
    assert voice.name == "piper:joe-us"
    assert any("gone" in r.getMessage() and "RAGREEL_BARK_MODEL" in r.getMessage() for r in caplog.records)


def test_auto_falls_back_to_espeak_when_a_voice_fails_to_load(tmp_path, caplog):
    settings = offline_settings(piper_voice=tmp_path / "missing.onnx")
    with caplog.at_level(logging.WARNING, logger="ragreel.speech.voices"):
        narration = narrate("Tea is a drink.", "en", tmp_path / "fallback.wav", settings=settings)
    assert narration.voice == "espeak:en-us"
    assert any("missing.onnx" in r.getMessage() for r in caplog.records)
    with pytest.raises(DependencyMissing, match="missing.onnx"):
        narrate("Tea is a drink.", "en", tmp_path / "x.wav", voice="piper", settings=settings)


def _failing(monkeypatch, failures: int) -> list[str]:
    """espeak's synthesis raising its first ``failures`` times, as a killed process would."""
    from ragreel.speech.espeak import EspeakVoice

    calls: list[str] = []
    real = EspeakVoice.synthesize

    def flaky(self, text, language):
        calls.append(text)
        if len(calls) <= failures:
            raise RuntimeError("espeak-ng exited with signal 9")
        return real(self, text, language)

    monkeypatch.setattr(EspeakVoice, "synthesize", flaky)
    return calls


def test_a_voice_failing_once_is_tried_again_and_the_narration_is_whole(monkeypatch, tmp_path, caplog):
    calls = _failing(monkeypatch, failures=1)
    with caplog.at_level(logging.WARNING, logger="ragreel.speech.narration"):
        narration = narrate("Tea is a drink. It is hot.", "en", tmp_path / "n.wav", voice="espeak")
    assert calls == ["Tea is a drink.", "Tea is a drink.", "It is hot."]
    assert [s.text for s in narration.sentences] == ["Tea is a drink.", "It is hot."]
    assert any("trying once more" in r.getMessage() for r in caplog.records)


def test_a_voice_failing_twice_on_a_text_fails_fast_as_permanent(monkeypatch, tmp_path):
    calls = _failing(monkeypatch, failures=99)
    with pytest.raises(PermanentError, match="failed twice on 'Tea is a drink.'.*signal 9") as error:
        narrate("Tea is a drink. It is hot.", "en", tmp_path / "n.wav", voice="espeak")
    assert len(calls) == 2 and error.value.stage == "speak"
    assert not (tmp_path / "n.wav").exists()


# --- narrations by each voice ------------------------------------------------------------------------

EN_TEXT = "Green tea is brewed at 80°C [1]. **Oolong** is rolled, then roasted; see https://tea.example.org."
ZH_TEXT = "臺灣的茶文化歷史悠久[1]。烏龍茶很有名。"


def test_espeak_narrates_english_and_mandarin(tmp_path):
    settings = offline_settings()
    narration = narrate(EN_TEXT, "en", tmp_path / "en.wav", voice="espeak", settings=settings)
    assert narration.voice == "espeak:en-us"
    assert [s.text for s in narration.sentences] == [
        "Green tea is brewed at 80°C.",
        "Oolong is rolled, then roasted.",
    ]
    check_narration(narration, settings, 0.03, 0.15)
    narration = narrate(ZH_TEXT, "zh-TW", tmp_path / "zh.wav", voice="espeak", settings=settings)
    assert narration.voice == "espeak:cmn" and narration.language == "zh"
    check_narration(narration, settings, 0.12, 0.6)


@pytest.mark.slow
def test_piper_narrates_english_and_hands_han_to_the_mandarin_voice(tmp_path):
    settings = offline_settings()
    narration = narrate(EN_TEXT, "en", tmp_path / "en.wav", settings=settings)
    assert narration.voice == "piper:joe-us"
    check_narration(narration, settings, 0.03, 0.15)
    narration = narrate("The tea from 臺灣 is famous.", "en", tmp_path / "mixed.wav", settings=settings)
    assert narration.voice == f"piper:joe-us+kokoro:{DEFAULT_KOKORO_VOICE}"
    check_narration(narration, settings, 0.03, 0.2)


@pytest.mark.slow
def test_kokoro_narrates_mandarin_with_english_words(tmp_path):
    settings = offline_settings()
    narration = narrate(ZH_TEXT, "zh", tmp_path / "zh.wav", settings=settings)
    assert narration.voice == f"kokoro:{DEFAULT_KOKORO_VOICE}"
    assert [s.text for s in narration.sentences] == ["臺灣的茶文化歷史悠久。", "烏龍茶很有名。"]
    check_narration(narration, settings, 0.12, 0.6)
    mixed = narrate("我們用 Python 分析市場。", "zh", tmp_path / "mixed.wav", settings=settings)
    alone = narrate("我們用分析市場。", "zh", tmp_path / "alone.wav", settings=settings)
    # The English word is spoken, not dropped: it adds audible time.
    assert mixed.duration - alone.duration > 0.25
    check_narration(mixed, settings, 0.1, 0.6)


@pytest.mark.slow
def test_a_sentence_too_long_for_the_voice_becomes_several_timed_pieces(tmp_path):
    settings = offline_settings()
    clauses = [f"clause number {n} talks about tea, water and time" for n in range(1, 12)]
    sentence = ", ".join(clauses) + "."
    assert len(sentence) > 400  # Piper's limit
    narration = narrate(sentence, "en", tmp_path / "long.wav", settings=settings)
    texts = [s.text for s in narration.sentences]
    assert len(texts) >= 2 and all(len(t) <= 400 for t in texts)
    assert " ".join(texts) == sentence
    check_narration(narration, settings, 0.03, 0.15)
    gaps = [b.start - a.end for a, b in zip(narration.sentences, narration.sentences[1:], strict=False)]
    assert gaps == pytest.approx([CLAUSE_PAUSE_S] * len(gaps), abs=1e-4)


# --- Bark, through its real loading code, on a tiny random model ---------------------------------------


@pytest.fixture(scope="module")
def tiny_bark(tmp_path_factory):
    import torch

    from tests.tiny_bark import build_tiny_bark

    # A model this small runs step by step; on a busy 2-core machine a second torch thread only
    # waits for the other (measured: 1.2-1.5 s per sentence on one thread, 5-27 s on two).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_bark(tmp_path_factory.mktemp("bark") / "tiny-bark")
    torch.set_num_threads(threads)


@pytest.mark.slow
def test_bark_speaks_sentence_by_sentence_with_one_preset(tiny_bark, tmp_path, monkeypatch):
    from ragreel.speech.bark import BarkVoice

    settings = offline_settings(bark_model=str(tiny_bark))
    calls = []
    original = BarkVoice.synthesize
    monkeypatch.setattr(
        BarkVoice,
        "synthesize",
        lambda self, text, language: (
            calls.append((text, self.presets[language])) or original(self, text, language)
        ),
    )
    narration = narrate("Hello world [1]. The tea!", "en", tmp_path / "bark.wav", settings=settings)
    assert narration.voice == f"bark:{tiny_bark}"
    assert calls == [("Hello world.", "v2/en_speaker_0"), ("The tea!", "v2/en_speaker_0")]
    assert [s.text for s in narration.sentences] == ["Hello world.", "The tea!"]
    # A random Bark makes noise, not speech, so only the shape of the result is checked.
    audio, rate = read_wav(Path(narration.wav_path))
    assert rate == settings.sample_rate and np.abs(audio).max() > 0.01
    assert narration.sentences[0].start == 0 and narration.sentences[-1].end == pytest.approx(
        narration.duration
    )
    gap = narration.sentences[1].start - narration.sentences[0].end
    assert gap == pytest.approx(settings.sentence_pause_s, abs=1e-4)
    # The loaded model is reused, and Mandarin gets its own preset.
    narration = narrate("你好。", "zh", tmp_path / "bark-zh.wav", settings=settings)
    assert calls[-1] == ("你好。", "v2/zh_speaker_0") and narration.voice == f"bark:{tiny_bark}"


@pytest.mark.slow
def test_bark_presets_are_checked_against_the_folder(tiny_bark, tmp_path):
    settings = offline_settings(bark_model=str(tiny_bark))
    with pytest.raises(DependencyMissing, match="v2/en_speaker_9"):
        voices.resolve_voice("en", "bark:v2/en_speaker_9", settings)
