"""Encoding: stills and a narration WAV into an H.264/AAC MP4 through moviepy's ffmpeg writer.

Why not ``VideoClip.write_videofile``: moviepy 2.2.1 always pipes RGB frames (``-pix_fmt
rgb24``; its ``pixel_format`` argument is ignored), so ffmpeg converts every one of the
1,800 frames of a 60 s video to YUV although only a dozen differ. Measured on 2 shared
cores, that conversion cost about as much as the H.264 encoding itself: 1.6-2.2x the time
of an ffmpeg concat render of the same frames. Here each distinct frame is converted to
yuv420p once (with Pillow), and moviepy's :class:`FFMPEG_VideoWriter` (its bundled
imageio-ffmpeg, its pipe and error reporting) is fed those bytes; the audio is delayed past
the title card and padded to the video's length by ffmpeg's own filters, so no temporary
audio file is written.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ragreel.errors import InputError, PermanentError
from ragreel.files import temporary_name
from ragreel.video.frames import Still

logger = logging.getLogger(__name__)

AUDIO_RATE = 48000
AUDIO_BITRATE = "128k"
# Text on a still: a low CRF keeps glyph edges clean; static frames cost almost nothing.
VIDEO_CRF = 20
# A moving picture is redrawn every this many frames (12.5 a second at 25 fps): a slow zoom
# looks as smooth, and each redraw costs a conversion and real encoding work.
MOTION_STEP = 2


# --- atomic outputs ---------------------------------------------------------------------


class AtomicOutputs:
    """Files written under temporary names in their final folder, renamed only on success.

    Use as a context manager: :meth:`temp` hands out a temporary path for a final one; on a
    clean exit every temporary file is renamed (in the order asked for, so the last one,
    the MP4, appears last); on an exception all of them are removed and nothing exists
    under a final name. A process killed outright leaves only dot-prefixed ``.part`` files.
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    # A render still writing its .part files is younger than this; older ones are a killed render's.
    STALE_AFTER_S = 3600

    def temp(self, final: Path) -> Path:
        self._sweep_stale(final)
        temporary = temporary_name(final)
        self._pending.append((temporary, final))
        return temporary

    def _sweep_stale(self, final: Path) -> None:
        """Remove what an earlier, killed render left beside ``final``."""
        cutoff = time.time() - self.STALE_AFTER_S
        for leftover in final.parent.glob(f".{final.stem}.*.part{final.suffix}"):
            with contextlib.suppress(FileNotFoundError):
                if leftover.stat().st_mtime < cutoff:
                    leftover.unlink()
                    logger.info("removed %s, left by an interrupted render", leftover.name)

    def __enter__(self) -> AtomicOutputs:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            for temporary, final in self._pending:
                os.replace(temporary, final)
        else:
            for temporary, _ in self._pending:
                with contextlib.suppress(FileNotFoundError):
                    temporary.unlink()
        self._pending.clear()


# --- audio ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    frames: int

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate


def probe_audio(path: Path) -> AudioInfo:
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (RuntimeError, OSError) as exc:  # soundfile raises LibsndfileError (a RuntimeError)
        raise InputError(
            f"cannot read narration audio {path}: {exc}",
            stage="render",
            hint="the speech stage should have written a WAV here; rerun it",
        ) from exc
    return AudioInfo(path=path, sample_rate=int(info.samplerate), frames=int(info.frames))


# --- frames ---------------------------------------------------------------------------------


# RGB -> Y'CbCr, BT.709 with limited (TV) range, as Pillow's 3x4 conversion matrix.
_LUMA, _CHROMA = 219.0 / 255.0, 224.0 / 255.0
_BT709_MATRIX = (
    0.2126 * _LUMA, 0.7152 * _LUMA, 0.0722 * _LUMA, 16.0,
    -0.1146 * _CHROMA, -0.3854 * _CHROMA, 0.5 * _CHROMA, 128.0,
    0.5 * _CHROMA, -0.4542 * _CHROMA, -0.0458 * _CHROMA, 128.0,
)  # fmt: skip


class EncodedFrame:
    """Raw frame bytes in the shape moviepy's ``write_frame`` takes (it calls ``tobytes()``),
    without the copy a numpy array would make for each of the frames that repeat it."""

    __slots__ = ("data",)

    def __init__(self, data: bytes):
        self.data = data

    def tobytes(self) -> bytes:
        return self.data


def rgb_to_yuv420p(image) -> EncodedFrame:
    """An RGB Pillow image as planar yuv420p bytes, the layout x264 encodes.

    BT.709 limited range, as the output is tagged, so players show the colours as drawn
    (ffmpeg's own conversion would use BT.601, which HD players do not assume). Chroma is
    the 2x2 box average. Done in Pillow's C loops: about 15 ms for a 1280x720 frame.
    """
    from PIL import Image

    width, height = image.size
    ycbcr = image.convert("RGB").convert("RGB", matrix=_BT709_MATRIX)
    luma, blue_diff, red_diff = ycbcr.split()
    half = (width // 2, height // 2)
    planes = [
        luma.tobytes(),
        blue_diff.resize(half, Image.Resampling.BOX).tobytes(),
        red_diff.resize(half, Image.Resampling.BOX).tobytes(),
    ]
    return EncodedFrame(b"".join(planes))


def splice_yuv420p(
    frame: EncodedFrame, size: tuple[int, int], patch, corner: tuple[int, int]
) -> EncodedFrame:
    """``frame`` with the RGB image ``patch`` converted and written in at ``corner``.

    Converting only the part that moves costs a fraction of a whole frame's conversion (a
    picture on a portrait slide is a sixth of its pixels). Corner and size must be even, so
    the half-resolution colour planes line up and the result equals converting the whole.
    """
    import numpy as np

    width, height = size
    x, y = corner
    patch_width, patch_height = patch.size
    if x % 2 or y % 2 or patch_width % 2 or patch_height % 2:
        raise ValueError(f"a spliced patch needs even corner and size, not {patch.size} at {corner}")
    data = np.frombuffer(frame.data, dtype=np.uint8).copy()
    piece = np.frombuffer(rgb_to_yuv420p(patch).data, dtype=np.uint8)
    offset = piece_offset = 0
    for scale in (1, 2, 2):  # Y at full size, then Cb and Cr at half
        w, h, pw, ph = width // scale, height // scale, patch_width // scale, patch_height // scale
        plane = data[offset : offset + w * h].reshape(h, w)
        plane[y // scale : y // scale + ph, x // scale : x // scale + pw] = piece[
            piece_offset : piece_offset + pw * ph
        ].reshape(ph, pw)
        offset, piece_offset = offset + w * h, piece_offset + pw * ph
    return EncodedFrame(data.tobytes())


# --- progress -------------------------------------------------------------------------------


@functools.cache
def _progress_logger_class():
    from proglog import ProgressBarLogger

    class LogProgress(ProgressBarLogger):
        """A proglog logger (what moviepy reports through) that writes progress as log lines.

        Logs every ``step`` percent of each bar, and moviepy's messages at debug level.
        """

        def __init__(self, label: str, step: int = 10):
            # logged_bars=False: proglog would otherwise keep a string per frame in memory.
            super().__init__(logged_bars=False, min_time_interval=0.2)
            self.label = label
            self.step = step
            self._next_percent: dict[str, int] = {}
            self._started = time.monotonic()

        def callback(self, **changes):
            message = changes.get("message")
            if message:
                logger.debug("%s: %s", self.label, str(message).strip())

        def bars_callback(self, bar, attr, value, old_value=None):
            if attr != "index":
                return
            total = self.bars[bar].get("total") or 0
            if total <= 0:
                return
            percent = min(100, math.floor(100 * value / total))
            if percent >= self._next_percent.get(bar, 0):
                elapsed = time.monotonic() - self._started
                logger.info("%s: %s %d/%d (%d%%, %.1f s)", self.label, bar, value, total, percent, elapsed)
                self._next_percent[bar] = (percent // self.step + 1) * self.step

    return LogProgress


def progress_logger(label: str, step: int = 10):
    """A ``proglog.ProgressBarLogger`` that turns progress into ``logging`` lines."""
    return _progress_logger_class()(label, step)


# --- the writer ---------------------------------------------------------------------------


@functools.cache
def _writer_class():
    from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter

    class Yuv420Writer(FFMPEG_VideoWriter):
        """moviepy's ffmpeg writer, fed yuv420p frames instead of RGB.

        Its constructor hard-codes an rgb24 input (and, for libx264, a yuva420p output that
        ffmpeg then replaces), so this one builds the command itself; writing frames and
        reporting ffmpeg's errors are moviepy's. Closing checks ffmpeg's exit status, which
        moviepy's ``close`` ignores, and an exception kills ffmpeg instead of letting it
        finish a file nobody wants.
        """

        def __init__(self, filename: str, command: list[str]):
            self.filename = filename
            self.codec = "libx264"
            self.audio_codec = "aac"
            self.ext = "mp4"
            self.logfile = subprocess.PIPE
            self.proc = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )

        def close(self):
            if not self.proc:
                return
            proc, self.proc = self.proc, None
            proc.stdin.close()
            errors = proc.stderr.read().decode(errors="replace").strip()
            proc.stderr.close()
            if proc.wait() != 0:
                raise PermanentError(
                    f"ffmpeg failed (exit {proc.returncode}) writing {self.filename}: {errors[-2000:]}",
                    stage="render",
                    hint="check free disk space in the output folder and that the narration WAV is valid",
                )

        def __exit__(self, exc_type, exc_value, traceback):
            if exc_type is not None and self.proc:
                self.proc.kill()
                self.proc.wait()
                self.proc.stdin.close()
                self.proc.stderr.close()
                self.proc = None
                return
            self.close()

    return Yuv420Writer


def ffmpeg_exe() -> str:
    """The ffmpeg that moviepy uses (imageio-ffmpeg's bundled one unless FFMPEG_BINARY is set)."""
    from moviepy.config import FFMPEG_BINARY

    return FFMPEG_BINARY


def video_output_args(fps: int, preset: str = "veryfast") -> list[str]:
    """H.264 options shared with the benchmark's ffmpeg baseline."""
    return [
        "-c:v", "libx264", "-preset", preset, "-tune", "stillimage", "-crf", str(VIDEO_CRF),
        "-pix_fmt", "yuv420p", "-r", str(fps),
        "-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709", "-color_range", "tv",
    ]  # fmt: skip


def audio_output_args(delay_seconds: float, total_seconds: float) -> list[str]:
    """AAC that starts after ``delay_seconds`` and is padded with silence to ``total_seconds``.

    The resampling to 48 kHz comes first in the filter chain on purpose: with ffmpeg 9.0's
    automatically appended resampler (``-ar``), ``apad`` stopped early and the audio came
    out seconds short of ``whole_len``.
    """
    delay = round(delay_seconds * AUDIO_RATE)
    total = round(total_seconds * AUDIO_RATE)
    return [
        "-af", f"aresample={AUDIO_RATE},adelay=delays={delay}S:all=1,apad=whole_len={total}",
        "-c:a", "aac", "-b:a", AUDIO_BITRATE,
    ]  # fmt: skip


def encode_stills(
    stills: Sequence[Still],
    *,
    size: tuple[int, int],
    fps: int,
    audio: AudioInfo,
    audio_delay: float,
    out_path: Path,
    preset: str = "veryfast",
    progress=None,
    label: str | None = None,
) -> None:
    """Write ``stills`` (consecutive, from frame 0) with ``audio`` as an MP4 at ``out_path``.

    Each still is drawn and converted once, then its bytes are repeated for its frames; a still
    with motion is redrawn every :data:`MOTION_STEP` frames. Only one frame is in memory at a
    time, so memory does not grow with the video's length.
    """
    width, height = size
    expected = 0
    for still in stills:
        if still.start != expected or still.end <= still.start:
            raise ValueError(f"stills must tile the video: {still.name} spans {still.start}-{still.end}")
        expected = still.end
    total_frames = expected
    if total_frames <= 0:
        raise InputError("nothing to encode: the video has no frames", stage="render")
    total_seconds = total_frames / fps
    command = [
        ffmpeg_exe(), "-y", "-loglevel", "error",
        "-f", "rawvideo", "-pix_fmt", "yuv420p", "-s", f"{width}x{height}", "-r", str(fps),
        "-color_range", "tv", "-colorspace", "bt709", "-i", "-",
        "-i", str(audio.path),
        "-map", "0:v:0", "-map", "1:a:0",
        *video_output_args(fps, preset),
        *audio_output_args(audio_delay, total_seconds),
        "-t", f"{total_seconds:.6f}", "-movflags", "+faststart", "-f", "mp4", str(out_path),
    ]  # fmt: skip
    progress = progress if progress is not None else progress_logger(f"encode {label or out_path.name}")
    frame_numbers = iter(progress.iter_bar(frame_index=range(total_frames)))
    started = time.monotonic()
    try:
        with _writer_class()(str(out_path), command) as writer:
            for still in stills:
                drawn = frame = rgb_to_yuv420p(still.draw())
                for number in range(still.start, still.end):
                    if still.animate is not None and (number - still.start) % MOTION_STEP == 0:
                        moving = still.animate(number)
                        frame = drawn if moving is None else splice_yuv420p(drawn, size, *moving)
                    next(frame_numbers)
                    writer.write_frame(frame)
    except OSError as exc:  # moviepy's write_frame reports a dead ffmpeg with its stderr
        raise PermanentError(
            f"ffmpeg stopped while writing {label or out_path.name}: {exc}",
            stage="render",
            hint="check free disk space in the output folder and that the narration WAV is valid",
        ) from exc
    # Exhaust the bar so the logger reports 100%.
    for _ in frame_numbers:
        pass
    logger.info(
        "encoded %s: %d frames (%d distinct), %.2f s of video in %.1f s",
        label or out_path.name, total_frames, len(stills), total_seconds, time.monotonic() - started,
    )  # fmt: skip
