"""Word timing: which unit a subtitle lights, and when the narration says it (heard by Whisper base)."""

from __future__ import annotations

import numpy as np
import pytest

from ragreel.schemas import TimedSentence
from ragreel.settings import get_settings
from ragreel.speech.timeline import as_float_mono, resample, trim_silence
from ragreel.speech.voices import resolve_voice
from ragreel.speech.words import even_words, match_heard, place_words, time_words, word_units


def test_units_are_latin_words_and_single_chinese_characters_with_their_punctuation():
    assert word_units("Oolong grows above 1,000 metres (about $5), really.") == [
        "Oolong", "grows", "above", "1,000", "metres", "(about", "$5),", "really.",
    ]  # fmt: skip
    assert word_units("「高山茶」用 Python 寫，3.5 公尺。") == [
        "「高", "山", "茶」", "用", "Python", "寫，", "3.5", "公", "尺。",
    ]  # fmt: skip
    assert word_units("的API與high-mountain茶") == ["的", "API", "與", "high-mountain", "茶"]
    assert word_units("   ") == []
    text = "「高山茶」用 Python 寫，then it's done."
    assert "".join(word_units(text)) == text.replace(" ", "")


def test_heard_words_are_matched_by_their_characters_even_when_split_or_in_another_script():
    units = word_units("Taiwan grows 1,000 teas")
    heard = [
        (" Taiwan", 0.0, 0.4),
        (" grows", 0.4, 0.7),
        (" 1", 0.7, 0.9),
        (",000", 0.9, 1.2),
        (" teas.", 1.2, 1.5),
    ]
    assert match_heard(units, heard) == [(0.0, 0.4), (0.4, 0.7), (0.7, 1.2), (1.2, 1.5)]
    # Whisper writes Simplified characters; the subtitle keeps Traditional ones.
    spans = match_heard(word_units("臺灣烏龍"), [("台湾", 0.0, 0.4), ("乌龙", 0.4, 0.8)])
    assert [value for span in spans for value in span] == pytest.approx(
        [0.0, 0.2, 0.2, 0.4, 0.4, 0.6, 0.6, 0.8]
    )
    assert match_heard(units, [("Thanks for watching", 2.0, 3.0)]) == [None] * 4


def test_words_not_heard_are_placed_between_their_neighbours_and_stay_inside_the_sentence():
    sentence = TimedSentence(text="one two three four five", start=10.0, end=15.0)
    # "two" unheard, "three" heard, "four" heard far outside the sentence (a wrong match).
    words = place_words(sentence, [(10.2, 10.6), None, (12.0, 12.5), (30.0, 31.0), (14.0, 14.8)])
    starts = [word.start for word in words]
    assert [word.text for word in words] == ["one", "two", "three", "four", "five"]
    assert starts[0] == 10.0  # the first word lights up with its sentence
    assert starts[1] == pytest.approx(11.0, abs=0.01)  # "one" and "two" share 10-12 by length
    assert starts[2] == 12.0 and starts[4] == 14.0
    assert 12.0 < starts[3] < 14.0  # placed between, not at 30 s
    assert words[-1].end == 15.0
    assert all(word.end == after.start for word, after in zip(words, words[1:], strict=False))
    # Heard times that run backwards are kept in order.
    backwards = place_words(TimedSentence(text="a b c", start=0, end=3), [(0, 1), (2.0, 2.5), (1.5, 2.0)])
    assert [word.start for word in backwards] == [0.0, 2.0, 2.0]


def test_even_timing_shares_a_sentence_by_length():
    words = even_words(TimedSentence(text="tea teapot", start=1.0, end=4.0))
    assert [(w.text, w.start, w.end) for w in words] == [("tea", 1.0, 2.0), ("teapot", 2.0, 4.0)]


def spoken_word_by_word(words: list[str], gaps: list[float], language: str, settings):
    """Each word synthesised on its own and joined with the given silences: where every word
    starts is known from the sample counts."""
    voice = resolve_voice(language, None, settings)
    rate = settings.sample_rate
    pieces, starts, clock = [], [], 0
    for word, gap in zip(words, [*gaps, 0.0], strict=True):
        audio = trim_silence(
            resample(as_float_mono(voice.synthesize(word, language)), voice.sample_rate, rate), rate
        )
        starts.append(clock / rate)
        pieces += [audio, np.zeros(round(gap * rate), dtype=np.float32)]
        clock += audio.size + round(gap * rate)
    return np.concatenate(pieces), starts, clock / rate


@pytest.mark.parametrize(
    "language, words, separator",
    [
        ("en", ["Oolong", "tea", "grows", "above", "mountains", "in", "Taiwan."], " "),
        ("zh", ["臺灣", "高山", "烏龍茶", "很", "有名。"], ""),
    ],
)
def test_whisper_hears_when_each_word_starts(language, words, separator):
    settings = get_settings(word_timing="whisper")
    # Pauses as long as a comma's: sharing the sentence's time by length would put words far off.
    gaps = [0.05, 0.6, 0.05, 0.5, 0.05, 0.05][: len(words) - 1]
    samples, starts, duration = spoken_word_by_word(words, gaps, language, settings)
    sentence = TimedSentence(text=separator.join(words), start=0.0, end=duration)
    (timed,) = time_words(samples, settings.sample_rate, [sentence], language, settings)

    units = timed.words
    assert "".join(unit.text for unit in units) == sentence.text.replace(" ", "")
    # The first unit of each synthesised word, and when that word really starts.
    first_units, count = [], 0
    for word in words:
        first_units.append(units[count])
        count += len(word_units(word))
    errors = [abs(unit.start - start) for unit, start in zip(first_units, starts, strict=True)]
    # English words land within 0.3 s. Whisper base hears Kokoro's Mandarin less sharply: a character
    # right after a pause can still be placed up to a second early, but most land within 0.3 s.
    report = list(zip(words, starts, [unit.start for unit in first_units], strict=True))
    assert sorted(errors)[len(errors) // 2] < 0.3, report
    assert max(errors) < (0.3 if language == "en" else 1.0), report
    even = [w.start for w in even_words(sentence)]
    even_errors = [
        abs(even[units.index(unit)] - start) for unit, start in zip(first_units, starts, strict=True)
    ]
    assert max(even_errors) > 0.3  # timing by length would fail the English bound above


def test_word_timing_by_length_when_asked_or_when_whisper_is_missing(monkeypatch, caplog):
    sentence = TimedSentence(text="Tea is a drink.", start=0.0, end=2.0)
    samples = np.zeros(32000, dtype=np.float32)
    (even,) = time_words(samples, 16000, [sentence], "en", get_settings(word_timing="even"))
    assert even.words == even_words(sentence)

    from ragreel.errors import DependencyMissing
    from ragreel.speech import whisper

    def missing(_folder, cpu_threads=2):
        raise DependencyMissing("faster-whisper is not installed", stage="speak", hint=whisper.INSTALL_HINT)

    monkeypatch.setattr(whisper, "load_whisper", missing)
    (fallback,) = time_words(samples, 16000, [sentence], "en", get_settings(word_timing="whisper"))
    assert fallback.words == even.words
    assert "faster-whisper is not installed" in caplog.text and "pip install faster-whisper" in caplog.text


def test_a_whole_narration_has_every_word_timed_inside_its_sentence(tmp_path):
    from tasks.speak import narrate

    settings = get_settings(word_timing="whisper", voice_en="auto", piper_voice=None, bark_model=None)
    narration = narrate("Green tea keeps for a year. Oolong keeps longer, about two years.", "en",
                        tmp_path / "n.wav", settings=settings)  # fmt: skip
    for sentence in narration.sentences:
        assert " ".join(word.text for word in sentence.words) == " ".join(sentence.text.split())
        assert sentence.words[0].start == sentence.start and sentence.words[-1].end == sentence.end
        assert all(sentence.start <= w.start <= w.end <= sentence.end for w in sentence.words)
