"""Joining sentence clips into one narration and timing each sentence from the audio itself.

Pure functions over numpy arrays (float32, mono, -1..1): resample to one rate, trim silence,
level the loudness of clips from different voices, join with pauses, and write a 16-bit WAV
atomically. Each sentence's start and end come from sample counts, so the subtitles follow the
audio exactly.
"""

from __future__ import annotations

import math
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ragreel.files import atomic_path
from ragreel.schemas import TimedSentence


@dataclass
class Clip:
    """One subtitle's audio: ``text`` is what the subtitle shows, ``pause_after`` the silence after it."""

    text: str
    samples: np.ndarray
    pause_after: float = 0.0


def as_float_mono(samples: np.ndarray) -> np.ndarray:
    """Any voice's output (int16 or float, mono or channels-last) as float32 mono in -1..1."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    samples = np.atleast_1d(np.squeeze(samples.astype(np.float32, copy=False)))
    if samples.ndim > 1:
        samples = samples.mean(axis=int(np.argmin(samples.shape)))
    return np.nan_to_num(samples, nan=0.0, posinf=0.0, neginf=0.0)


def resample(samples: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
    """Band-limited resampling (soxr when installed, else scipy's polyphase filter)."""
    if source_rate == target_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    try:
        import soxr
    except ImportError:
        from scipy.signal import resample_poly

        divisor = math.gcd(source_rate, target_rate)
        out = resample_poly(samples, target_rate // divisor, source_rate // divisor)
    else:
        out = soxr.resample(samples, source_rate, target_rate)
    return np.asarray(out, dtype=np.float32)


def trim_silence(
    samples: np.ndarray, rate: int, threshold_db: float = -40.0, margin_s: float = 0.02
) -> np.ndarray:
    """Cut leading and trailing silence: 10 ms frames quieter than ``threshold_db`` below the clip's peak.

    ``margin_s`` of the silence is kept on each side so that soft onsets and releases survive.
    A clip with no sound at all is returned unchanged (the caller decides what that means).
    """
    frame = max(1, rate // 100)
    if samples.size < frame:
        return samples
    peak = float(np.max(np.abs(samples)))
    if peak <= 1e-4:
        return samples
    threshold = max(peak * 10 ** (threshold_db / 20), 1e-4)
    frames = samples[: samples.size // frame * frame].reshape(-1, frame)
    loud = np.flatnonzero(np.sqrt(np.mean(frames**2, axis=1)) > threshold)
    if loud.size == 0:
        return samples
    margin = int(margin_s * rate)
    start = max(0, loud[0] * frame - margin)
    end = min(samples.size, (loud[-1] + 1) * frame + margin)
    return samples[start:end]


def level(samples: np.ndarray, target_dbfs: float = -20.0, peak_limit: float = 0.95) -> np.ndarray:
    """Scale a clip to a common loudness (RMS of its voiced frames) without letting peaks clip."""
    if samples.size == 0:
        return samples
    frame = 240
    usable = samples[: samples.size // frame * frame]
    if usable.size == 0:
        usable = samples
    frames = usable.reshape(-1, min(frame, usable.size))
    rms = np.sqrt(np.mean(frames**2, axis=1))
    voiced = rms[rms > rms.max() * 0.1] if rms.max() > 0 else rms
    loudness = float(np.sqrt(np.mean(voiced**2))) if voiced.size else 0.0
    peak = float(np.max(np.abs(samples)))
    if loudness <= 1e-5 or peak <= 1e-5:
        return samples
    gain = min(10 ** (target_dbfs / 20) / loudness, peak_limit / peak)
    return (samples * gain).astype(np.float32)


def silence(seconds: float, rate: int) -> np.ndarray:
    return np.zeros(max(0, round(seconds * rate)), dtype=np.float32)


def concatenate(parts: list[np.ndarray], rate: int, gap_s: float) -> np.ndarray:
    """Join clips with ``gap_s`` of silence between them (none before the first or after the last)."""
    pieces: list[np.ndarray] = []
    for index, part in enumerate(parts):
        if index:
            pieces.append(silence(gap_s, rate))
        pieces.append(part.astype(np.float32, copy=False))
    return np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)


def assemble(clips: list[Clip], rate: int) -> tuple[np.ndarray, list[TimedSentence]]:
    """Join subtitle clips with their pauses; time each from the sample counts.

    The first subtitle starts at 0, each one ends where its audio ends, the next starts after the
    pause, and the last ends at the end of the audio (no trailing pause).
    """
    pieces: list[np.ndarray] = []
    timeline: list[TimedSentence] = []
    offset = 0
    for index, clip in enumerate(clips):
        start = offset
        pieces.append(clip.samples.astype(np.float32, copy=False))
        offset += clip.samples.size
        timeline.append(TimedSentence(text=clip.text, start=start / rate, end=offset / rate))
        if index < len(clips) - 1:
            pause = silence(clip.pause_after, rate)
            pieces.append(pause)
            offset += pause.size
    audio = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    return audio, timeline


def to_pcm16(samples: np.ndarray) -> np.ndarray:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Mono 16-bit WAV, written under a temporary name beside ``path`` and renamed into place.

    A reader never sees half a file, and a failed write leaves any earlier WAV at ``path`` intact.
    """
    with atomic_path(path) as temporary, wave.open(str(temporary), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(samples).tobytes())
