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
    """The pages as a WebVTT document (``<track>`` in a browser), the same cues as :func:`compose_srt`.

    Where the words are timed, each word after a cue's first carries its start as a WebVTT
    timestamp tag, so a player can light the words as they are said (``::cue(:past)``).
    """
    from srt import timedelta_to_srt_timestamp

    def stamp(seconds: float) -> str:
        return timedelta_to_srt_timestamp(timedelta(seconds=round(offset + seconds, 3))).replace(",", ".")

    blocks = [
        f"{stamp(page.start)} --> {stamp(page.end)}\n{_vtt_text(page, stamp)}"
        for page in pages
        if page.end > page.start
    ]
    return "WEBVTT\n\n" + "".join(block + "\n\n" for block in blocks)


def _vtt_text(page: SubtitlePage, stamp) -> str:
    """A page's lines, escaped for WebVTT, with a timestamp tag before each timed word but the first."""
    starts: dict[tuple[int, int], float] = {(word.line, word.begin): word.start for word in page.words[1:]}
    lines = []
    for number, line in enumerate(page.lines):
        pieces, column = [], 0
        for (line_number, begin), start in sorted(starts.items()):
            if line_number == number and begin >= column:
                pieces += [_escape(line[column:begin]), f"<{stamp(start)}>"]
                column = begin
        lines.append("".join([*pieces, _escape(line[column:])]))
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


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
