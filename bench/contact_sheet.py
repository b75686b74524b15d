"""A contact sheet of videos: frames at evenly spaced times, side by side, one PNG to look at.

    python -m bench.contact_sheet VIDEO.mp4 [VIDEO.mp4 ...] --out sheet.png [--frames 8] [--columns 4]

Each video is a block of rows: its frames from the title card to the sources card, scaled to a common
height. For looking at what a viewer sees (slides, quotes, subtitles) without playing the video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def frames_at(path: Path, count: int, times: list[float] | None = None):
    """``count`` frames of ``path`` at evenly spaced times (the first frame of each slice), or the
    frames shown at ``times`` (seconds, ascending)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = (
            float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6
        )
        wanted = list(times) if times else [duration * (i + 0.5) / count for i in range(count)]
        count = len(wanted)
        found = []
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= wanted[len(found)]:
                found.append(frame.to_image())
                if len(found) == count:
                    break
    return found


def contact_sheet(
    videos: list[Path],
    out: Path,
    count: int = 8,
    height: int = 240,
    columns: int = 4,
    times: list[list[float]] | None = None,
) -> Path:
    """One block per video, ``count`` frames (or those at ``times[n]`` for video n) in rows of
    ``columns``, each scaled to ``height``."""
    from PIL import Image

    tiles = []  # one row of tiles per line of the sheet
    for number, video in enumerate(videos):
        shown = frames_at(video, count, times[number] if times else None)
        images = [i.resize((round(i.width * height / i.height), height)) for i in shown]
        tiles += [images[start : start + columns] for start in range(0, len(images), columns)]
    gap = 6
    width = max(sum(image.width + gap for image in row) for row in tiles)
    sheet = Image.new("RGB", (width, len(tiles) * (height + gap)), (96, 96, 96))
    for number, row in enumerate(tiles):
        x = 0
        for image in row:
            sheet.paste(image, (x, number * (height + gap)))
            x += image.width + gap
    sheet.save(out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.contact_sheet", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("videos", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("contact-sheet.png"))
    parser.add_argument("--frames", type=int, default=8, help="frames per video (default 8)")
    parser.add_argument("--columns", type=int, default=4, help="frames per row (default 4)")
    parser.add_argument(
        "--height", type=int, default=240, help="height of each frame in pixels (default 240)"
    )
    args = parser.parse_args(argv)
    print(contact_sheet(args.videos, args.out, args.frames, args.height, args.columns))
    return 0


if __name__ == "__main__":
    sys.exit(main())
