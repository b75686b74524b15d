"""Where a run's finished files go, and the links that people get to them.

Without RAGREEL_STORE a run's folder is a local folder and nothing here changes a path. With a
store, a run's folder is an object URL (``<store>/videos/<name>``, ``<store>/batches/<name>``):
stages work in a local scratch copy of it, the same relative path under RAGREEL_HOME, and
:func:`publish` uploads each file only once it is complete on disk (ragreel writes every file
under a temporary name and renames it into place), so nothing half-written ever appears under a
final key. Results then name the objects' ``s3://`` URLs, which hold no secret; people get
presigned HTTPS links from :func:`share_link`, with RAGREEL_LINK_SECONDS to live.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ragreel import storage
from ragreel.errors import InputError
from ragreel.files import is_temporary
from ragreel.settings import Settings

log = logging.getLogger(__name__)

# S3 refuses presigned URLs that live longer than seven days (SigV4).
MAX_LINK_SECONDS = 7 * 24 * 3600


def run_location(relative: str, settings: Settings) -> str:
    """Where a run's folder ``relative`` to the outputs' root lives: on the store, or under RAGREEL_HOME."""
    return f"{settings.store}/{relative}" if settings.store else str(settings.home / relative)


def scratch_folder(location: str, settings: Settings) -> Path:
    """The local folder a run at ``location`` writes its files in before they are published."""
    if not storage.is_url(location):
        return Path(location)
    if not settings.store:
        raise InputError(
            f"{location} is on an object store, but RAGREEL_STORE is not set",
            stage="outputs",
            hint="set RAGREEL_STORE (and the AWS_* variables), or give a local folder",
        )
    if location == settings.store or location.startswith(settings.store + "/"):
        relative = location.removeprefix(settings.store).strip("/")
        return settings.home / relative
    bucket, key = storage.split_url(location)
    return settings.home / "scratch" / bucket / key


def publish(local: Path | str, location: str, settings: Settings) -> str:
    """Upload the finished file ``local`` into the folder ``location``; its URL, or, for a local
    folder, the path unchanged."""
    local = Path(local)
    if not storage.is_url(location):
        return str(local)
    if is_temporary(local) or not local.is_file():
        # Only whole files are published: a temporary name is one still being written.
        raise ValueError(f"{local.name} is not a finished file")
    url = f"{location.rstrip('/')}/{local.name}"
    storage.upload_file(local, url, settings)
    return url


def publish_text(name: str, text: str, location: str, settings: Settings) -> str:
    """Write ``text`` as ``name`` in the run's scratch folder, publish it, and return where it is."""
    from ragreel.files import write_text_atomic

    local = write_text_atomic(scratch_folder(location, settings) / name, text)
    return publish(local, location, settings)


def is_present(path_or_url: str, settings: Settings) -> bool:
    """Whether a file a result names is still there: on the store for a URL, on disk otherwise."""
    if storage.is_url(path_or_url):
        return storage.exists(path_or_url, settings)
    return Path(path_or_url).exists()


def local_copy(path_or_url: str, settings: Settings, fresh: bool = False) -> Path:
    """A local path of the file: itself, or this host's copy of an object (fetched when missing,
    or every time with ``fresh``, for an object that may have changed since)."""
    if not storage.is_url(path_or_url):
        return Path(path_or_url)
    folder, _, name = path_or_url.rpartition("/")
    local = scratch_folder(folder, settings) / name
    if fresh or not local.is_file():
        storage.download_file(path_or_url, local, settings)
    return local


def modified(path_or_url: str, settings: Settings) -> float | None:
    """When a result file was last written (a POSIX timestamp), or None when it is not there."""
    if storage.is_url(path_or_url):
        return storage.modified(path_or_url, settings)
    try:
        return Path(path_or_url).stat().st_mtime
    except OSError:
        return None


def read_bytes(path_or_url: str, settings: Settings) -> bytes | None:
    """The bytes of a result file, or None when it is not there."""
    if storage.is_url(path_or_url):
        return storage.read_bytes(path_or_url, settings)
    try:
        return Path(path_or_url).read_bytes()
    except FileNotFoundError:
        return None


def read_text(path_or_url: str, settings: Settings) -> str | None:
    """The UTF-8 text of a result file, or None when it is not there."""
    data = read_bytes(path_or_url, settings)
    return data.decode("utf-8") if data is not None else None


def link_seconds(settings: Settings) -> int:
    return min(settings.link_seconds, MAX_LINK_SECONDS)


def share_link(url: str, settings: Settings) -> str:
    """A presigned HTTPS link to the object at ``url`` that anyone may open while it lasts."""
    return storage.presigned_url(url, link_seconds(settings), settings)
