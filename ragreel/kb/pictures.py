"""Pictures and PDFs kept in the knowledge-base folder at ingest, so slides can show them.

Files are named by the hash of their bytes (``pictures/``, ``documents/``): the same picture in
two documents is kept once, a changed picture gets a new name (and with it new cache keys
downstream), and a worker that shares the knowledge base needs nothing else to draw a slide.
Only pictures inside the ingested folder are kept, so a document cannot put any other file of
the machine into a video.
"""

from __future__ import annotations

import hashlib
import io
import logging
from pathlib import Path

from ragreel.files import atomic_path, is_temporary
from ragreel.kb.loaders import Picture as FoundPicture
from ragreel.schemas import Picture

log = logging.getLogger(__name__)

PICTURES_DIR = "pictures"
DOCUMENTS_DIR = "documents"
MAX_SIDE = 1920  # larger pictures are scaled down: no frame shows more
MAX_PIXELS = 50_000_000  # refuse decompression bombs before decoding them


def keep_picture(kb_dir: Path, root: Path, found: FoundPicture) -> Picture | None:
    """Copy a picture into the knowledge base as PNG or JPEG; None (logged) if it can't be."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if found.path is not None:
        if not found.path.resolve().is_relative_to(root.resolve()):
            log.warning("skipped picture %s: it is outside the ingested folder %s", found.path, root)
            return None
        data = found.path.read_bytes()
    else:
        data = found.data or b""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                log.warning("skipped a %dx%d picture (over %d pixels)", image.width, image.height, MAX_PIXELS)
                return None
            is_photo = image.format == "JPEG"
            image = ImageOps.exif_transpose(image)
            if image.mode in ("RGBA", "LA", "P"):  # transparency shown on white, as a page would
                rgba = image.convert("RGBA")
                image = Image.new("RGB", rgba.size, (255, 255, 255))
                image.paste(rgba, mask=rgba.getchannel("A"))
            image = image.convert("RGB")
            image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, ValueError) as exc:
        log.warning("skipped a picture that is not a readable image (%s): %s", found.path or "in a PDF", exc)
        return None
    suffix, kind = (".jpg", "JPEG") if is_photo else (".png", "PNG")
    name = f"{PICTURES_DIR}/{hashlib.sha256(data).hexdigest()[:16]}{suffix}"
    target = kb_dir / name
    if not target.exists():
        with atomic_path(target) as temporary:
            image.save(temporary, kind, **({"quality": 90} if is_photo else {"optimize": True}))
    return Picture(file=name, caption=found.caption, width=image.width, height=image.height)


def keep_pdf(kb_dir: Path, data: bytes, digest: str) -> str:
    """Copy a PDF into the knowledge base, for slides that show its pages; its path there."""
    name = f"{DOCUMENTS_DIR}/{digest}.pdf"
    target = kb_dir / name
    if not target.exists():
        with atomic_path(target) as temporary:
            temporary.write_bytes(data)
    return name


def remove_unreferenced(kb_dir: Path, referenced: set[str]) -> int:
    """Delete kept files no chunk refers to any more (their documents changed or went away)."""
    removed = 0
    for folder in (PICTURES_DIR, DOCUMENTS_DIR):
        for path in sorted((kb_dir / folder).glob("*")):
            if path.is_file() and not is_temporary(path) and f"{folder}/{path.name}" not in referenced:
                path.unlink(missing_ok=True)
                removed += 1
    if removed:
        log.info("removed %d pictures and documents no chunk refers to", removed)
    return removed
