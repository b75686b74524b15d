"""A contact sheet of videos: frames at evenly spaced times, side by side, one PNG to look at.

    python -m bench.contact_sheet VIDEO.mp4 [VIDEO.mp4 ...] --out sheet.png [--frames 8]

Each video is one row: its frames from the title card to the sources card, scaled to a common
height. For looking at what a viewer sees (slides, quotes, subtitles) without playing the video.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def frames_at(path: Path, count: int):
    """``count`` frames of ``path`` at evenly spaced times (the first frame of each slice)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        duration = (
            float(stream.duration * stream.time_base) if stream.duration else float(container.duration) / 1e6
        )
        wanted = [duration * (i + 0.5) / count for i in range(count)]
        found = []
        for frame in container.decode(video=0):
            if frame.time is not None and frame.time >= wanted[len(found)]:
                found.append(frame.to_image())
                if len(found) == count:
                    break
    return found


def contact_sheet(videos: list[Path], out: Path, count: int = 8, height: int = 240) -> Path:
    from PIL import Image

    rows = []
    for video in videos:
        images = frames_at(video, count)
        rows.append([image.resize((round(image.width * height / image.height), height)) for image in images])
    gap = 6
    width = max(sum(image.width + gap for image in row) for row in rows)
    sheet = Image.new("RGB", (width, len(rows) * (height + gap)), (96, 96, 96))
    for number, row in enumerate(rows):
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
    args = parser.parse_args(argv)
    print(contact_sheet(args.videos, args.out, args.frames))
    return 0


if __name__ == "__main__":
    sys.exit(main())
