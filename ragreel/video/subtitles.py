"""Subtitles from the same pages the video shows: SubRip (via the ``srt`` library) and WebVTT for
web players (the same cues, with a header and dots before the milliseconds). Pure writers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

from ragreel.video.layout import SubtitlePage


def compose_srt(pages: Sequence[SubtitlePage], offset: float = 0.0) -> str:
    """The pages as an ``.srt`` document, times shifted by ``offset`` seconds (the title card).

    Cues keep the narration's own times (a pause between sentences is a gap between cues)
    and the line breaks the video uses. Pages of zero length are left out.
    """
    import srt

    return srt.compose(_cues(pages, offset), reindex=False)


def compose_vtt(pages: Sequence[SubtitlePage], offset: float = 0.0) -> str:
    """The pages as a WebVTT document (``<track>`` in a browser), the same cues as :func:`compose_srt`."""
    from srt import timedelta_to_srt_timestamp

    def stamp(moment: timedelta) -> str:
        return timedelta_to_srt_timestamp(moment).replace(",", ".")

    blocks = [f"{stamp(cue.start)} --> {stamp(cue.end)}\n{cue.content}" for cue in _cues(pages, offset)]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def _cues(pages: Sequence[SubtitlePage], offset: float):
    import srt

    return [
        srt.Subtitle(
            index=number,
            start=timedelta(seconds=round(offset + page.start, 3)),
            end=timedelta(seconds=round(offset + page.end, 3)),
            content=page.text,
        )
        for number, page in enumerate((page for page in pages if page.end > page.start), start=1)
    ]
