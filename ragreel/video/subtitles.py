"""SubRip subtitles from the same pages the video shows (a pure writer, via the ``srt`` library)."""

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

    cues = [
        srt.Subtitle(
            index=number,
            start=timedelta(seconds=round(offset + page.start, 3)),
            end=timedelta(seconds=round(offset + page.end, 3)),
            content=page.text,
        )
        for number, page in enumerate((page for page in pages if page.end > page.start), start=1)
    ]
    return srt.compose(cues, reindex=False)
