"""When each narrated word is said, heard from the narration itself.

The subtitle highlights the word (English) or character (Chinese) being spoken. Its timing comes
from the audio: Whisper base listens to each stretch of up to ~28 s of narration with the known
text as its prompt (so Chinese comes back in Traditional characters and names come back spelled
as written), and the words it hears are matched character by character to our own text. The
subtitle never shows what Whisper heard; it only lends its timestamps. A word Whisper missed or
misheard is placed between its neighbours in proportion to its length, and every word stays
inside its sentence, whose start and end come from sample counts.

Without Whisper (``RAGREEL_WORD_TIMING=even``, or faster-whisper missing) each sentence's time is
shared among its words by length: still right at every sentence boundary, approximate inside.
"""

from __future__ import annotations

import difflib
import logging
import math
import time
import unicodedata
from collections.abc import Sequence

import numpy as np

from ragreel.schemas import TimedSentence, TimedWord
from ragreel.text import SIMPLIFIED, convert_chinese, is_cjk_wide

log = logging.getLogger(__name__)

WHISPER_RATE = 16000
WINDOW_S = 28.0  # Whisper hears 30 s at a time; a window of whole sentences stays under that
EDGE_S = 0.1  # audio kept around a window so its first and last words are heard whole
STRAY_S = 0.5
MIN_LATIN_MATCH = 3  # letters in a row that must agree (one Chinese character is enough)  # a heard word this far outside its sentence was matched to the wrong place


def word_units(text: str) -> list[str]:
    """``text`` as the units a subtitle highlights: each Chinese character, each Latin word or number.

    Punctuation stays with the unit before it (an opening bracket or quote with the one after),
    so the units, joined without spaces, are the text without its spaces.
    """
    units: list[str] = []
    opening = ""
    for token in text.split():
        latin_open = False  # the last unit is a Latin run of this token that may go on
        for char in token:
            category = unicodedata.category(char)
            if category in ("Ps", "Pi", "Sc"):
                opening += char
                latin_open = False
            elif category.startswith("P") or category.startswith("S") and not char.isalnum():
                if units and not opening:
                    units[-1] += char
                else:
                    opening += char
            elif is_cjk_wide(char):
                units.append(opening + char)
                opening, latin_open = "", False
            elif latin_open and not opening:
                units[-1] += char
            else:
                units.append(opening + char)
                opening, latin_open = "", True
        latin_open = False
    if opening:
        if units:
            units[-1] += opening
        else:
            units.append(opening)
    return units


def _comparable(text: str) -> str:
    """Letters and digits only, lower case, one Chinese script: what two spellings share."""
    text = convert_chinese(unicodedata.normalize("NFKC", text), SIMPLIFIED).lower()
    return "".join(char for char in text if char.isalnum())


def even_words(sentence: TimedSentence) -> list[TimedWord]:
    """The sentence's words sharing its time in proportion to their length."""
    units = word_units(sentence.text)
    spans = sentence.shared([max(1, len(_comparable(unit))) for unit in units])
    return [
        TimedWord(text=unit, start=start, end=end) for unit, (start, end) in zip(units, spans, strict=True)
    ]


def place_words(sentence: TimedSentence, heard: Sequence[tuple[float, float] | None]) -> list[TimedWord]:
    """The sentence's words with the times heard for them (``None`` where none was).

    A word without a time is placed between its neighbours by length; times are kept inside the
    sentence and in order, the first word starts with the sentence and the last ends with it.
    """
    units = word_units(sentence.text)
    if not units:
        return []
    times = [
        None if t is None or t[1] < sentence.start - STRAY_S or t[0] > sentence.end + STRAY_S else t
        for t in heard
    ]
    starts: list[float | None] = [
        None if t is None else min(max(t[0], sentence.start), sentence.end) for t in times
    ]
    starts[0] = sentence.start
    index = 0
    while index < len(units):
        if starts[index] is not None:
            index += 1
            continue
        gap_end = index
        while gap_end < len(units) and starts[gap_end] is None:
            gap_end += 1
        left = starts[index - 1]  # index >= 1: the first word always has its start
        right = starts[gap_end] if gap_end < len(units) else sentence.end
        weights = [max(1, len(_comparable(unit))) for unit in units[index - 1 : gap_end]]
        total, elapsed = sum(weights), 0
        for offset, weight in enumerate(weights[:-1]):
            elapsed += weight
            starts[index + offset] = left + (right - left) * elapsed / total
        index = gap_end
    for index in range(1, len(starts)):
        starts[index] = max(starts[index], starts[index - 1])
    ends = [*starts[1:], sentence.end]
    return [
        TimedWord(text=unit, start=round(start, 3), end=round(end, 3))
        for unit, start, end in zip(units, starts, ends, strict=True)
    ]


def match_heard(
    units: Sequence[str], heard: Sequence[tuple[str, float, float]]
) -> list[tuple[float, float] | None]:
    """For each unit, the span of the heard words its characters were matched to (or ``None``).

    ``heard`` is Whisper's words as (text, start, end); a heard word's time is shared among its
    characters, so a number Whisper splits ("1" ",000") still lines up with one unit "1,000".
    """
    comparable = [_comparable(unit) for unit in units]
    ours = [number for number, chars in enumerate(comparable) for _ in chars]  # unit of each character
    our_text = "".join(comparable)
    their_times: list[tuple[float, float]] = []
    their_chars: list[str] = []
    for text, start, end in heard:
        chars = _comparable(text)
        step = (end - start) / max(1, len(chars))
        their_times += [(start + step * i, start + step * (i + 1)) for i in range(len(chars))]
        their_chars.append(chars)
    their_text = "".join(their_chars)
    spans: list[tuple[float, float] | None] = [None] * len(units)
    matcher = difflib.SequenceMatcher(None, our_text, their_text, autojunk=False)
    for block in matcher.get_matching_blocks():
        if block.size < MIN_LATIN_MATCH and our_text[block.a : block.a + block.size].isascii():
            continue  # two or three letters in common is chance, not the same word
        for offset in range(block.size):
            unit = ours[block.a + offset]
            start, end = their_times[block.b + offset]
            known = spans[unit]
            spans[unit] = (start, end) if known is None else (min(known[0], start), max(known[1], end))
    return spans


def windows(sentences: Sequence[TimedSentence], limit_s: float = WINDOW_S) -> list[list[int]]:
    """Consecutive sentences grouped so that each group's audio lasts at most ``limit_s``."""
    groups: list[list[int]] = []
    for index, sentence in enumerate(sentences):
        if groups and sentence.end - sentences[groups[-1][0]].start <= limit_s:
            groups[-1].append(index)
        else:
            groups.append([index])
    return groups


class _Loudness:
    """Where the narration is silent, in 10 ms frames: Whisper lets a word begin where the one before
    it ended, so a word after a pause would light up during the pause; its start moves to its first
    sound."""

    FRAME_S = 0.01
    SILENT_DB = -35.0  # below the loudest frame
    PAUSE_FRAMES = 7  # about the closure of a stop consonant: a later start lands inside the word

    def __init__(self, audio: np.ndarray, rate: int):
        frame = round(rate * self.FRAME_S)
        frames = audio[: audio.size // frame * frame].reshape(-1, frame)
        self.rms = np.sqrt(np.mean(frames.astype(np.float64) ** 2, axis=1)) if frames.size else np.zeros(0)
        peak = float(self.rms.max()) if self.rms.size else 0.0
        self.threshold = max(peak * 10 ** (self.SILENT_DB / 20), 1e-5)

    def first_sound(self, start: float, end: float) -> float:
        """Where a word heard over [start, end) begins: after the last pause (a run of silence that
        starts in the first half of that span) when there is one, else at its first sound."""
        first, last = int(start / self.FRAME_S), min(self.rms.size, int(math.ceil(end / self.FRAME_S)))
        loud = self.rms[first:last] > self.threshold
        if not loud.any():
            return start
        begin = int(np.argmax(loud))
        quiet_since = None
        for index in range(begin, loud.size):
            if not loud[index]:
                quiet_since = index if quiet_since is None else quiet_since
            elif quiet_since is not None:
                if index - quiet_since >= self.PAUSE_FRAMES and quiet_since <= loud.size // 2:
                    begin = index
                quiet_since = None
        return (first + begin) * self.FRAME_S


def hear_words(
    samples: np.ndarray, rate: int, sentences: Sequence[TimedSentence], language: str, model
) -> list[TimedSentence]:
    """Each sentence with its words timed by ``model`` (a faster-whisper ``WhisperModel``)."""
    from ragreel.speech.timeline import resample
    from ragreel.speech.whisper import whisper_lock

    audio = resample(samples, rate, WHISPER_RATE)
    voiced = _Loudness(audio, WHISPER_RATE)
    timed: list[TimedSentence] = []
    for group in windows(sentences):
        members = [sentences[index] for index in group]
        offset = max(0.0, members[0].start - EDGE_S)
        window = audio[round(offset * WHISPER_RATE) : round((members[-1].end + EDGE_S) * WHISPER_RATE)]
        prompt = " ".join(sentence.text for sentence in members)
        with whisper_lock:
            segments, _ = model.transcribe(
                window,
                language=language,
                initial_prompt=prompt,
                word_timestamps=True,
                condition_on_previous_text=False,
                beam_size=1,
                temperature=0.0,
            )
            heard = [
                (word.word, offset + word.start, offset + word.end)
                for segment in segments
                for word in segment.words or ()
            ]
        units = [word_units(sentence.text) for sentence in members]
        spans = match_heard([unit for group_units in units for unit in group_units], heard)
        spans = [None if span is None else (voiced.first_sound(*span), span[1]) for span in spans]
        for sentence, sentence_units in zip(members, units, strict=True):
            own, spans = spans[: len(sentence_units)], spans[len(sentence_units) :]
            timed.append(sentence.model_copy(update={"words": place_words(sentence, own)}))
    return timed


def time_words(
    samples: np.ndarray, rate: int, sentences: Sequence[TimedSentence], language: str, settings
) -> list[TimedSentence]:
    """The sentences with their words timed: heard by Whisper base, or shared by length
    (``settings.word_timing == "even"``, or when Whisper cannot be loaded; that is logged)."""
    if settings.word_timing == "whisper":
        from ragreel.errors import DependencyMissing
        from ragreel.speech.whisper import load_whisper, whisper_base_folder

        started = time.perf_counter()
        try:
            model = load_whisper(str(whisper_base_folder(settings.model_cache_dir)))
        except DependencyMissing as exc:
            log.warning("word timing shared by length: %s (%s)", exc, exc.hint)
        else:
            timed = hear_words(samples, rate, sentences, language, model)
            log.info(
                "timed %d words from the audio with Whisper base in %.1f s",
                sum(len(sentence.words) for sentence in timed),
                time.perf_counter() - started,
            )
            return timed
    return [sentence.model_copy(update={"words": even_words(sentence)}) for sentence in sentences]
