"""Files that appear under their final name only when whole.

Everything ragreel writes for someone else to read (videos, narration, manifests, results,
assembled models) is written under a temporary name in the same folder and renamed into place,
so a reader never sees half a file, a failed write leaves the earlier file intact, and a killed
process leaves only a dot-prefixed ``.part`` file. Temporary names are unique per writer, so two
writers of one file at once never write into each other's temporary file.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_name(final: Path) -> Path:
    """A unique, hidden temporary path beside ``final``: ``.<stem>.<random>.part<suffix>``."""
    return final.with_name(f".{final.stem}.{uuid.uuid4().hex[:8]}.part{final.suffix}")


def is_temporary(path: Path | str) -> bool:
    """Whether ``path`` is a name :func:`temporary_name` makes (not one to show a user)."""
    return re.fullmatch(r"\..*\.[0-9a-f]{8}\.part.*", Path(path).name) is not None


@contextlib.contextmanager
def atomic_path(final: Path | str, mode: int = 0o644) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``final``, on error removed.

    ``mode`` is applied before the rename (readable by a static file server by default).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_name(final)
    try:
        yield temporary
        os.chmod(temporary, mode)
        os.replace(temporary, final)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path | str, text: str) -> Path:
    """Write UTF-8 text to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_bytes_atomic(path: Path | str, data: bytes) -> Path:
    """Write bytes to ``path`` atomically; returns the path."""
    with atomic_path(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)
