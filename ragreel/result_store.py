"""Prefect's cached stage results on the object store, so a cache hit on one worker is one on all.

Prefect's own RemoteFileSystem needs s3fs, whose aiobotocore pins an older botocore than the
boto3 ragreel uses; this block talks to the store through :mod:`ragreel.storage` instead. The
block saved on the Prefect server holds only the ``s3://`` base URL: each process reads the
endpoint and credentials from its own environment when it reads or writes, so no secret is ever
stored in Prefect's database.
"""

from __future__ import annotations

# Internal, but how Prefect's own file systems offer both a sync and an async method (pinned prefect).
from prefect._internal.compatibility.async_dispatch import async_dispatch
from prefect.filesystems import WritableFileSystem
from pydantic import Field


class ObjectStoreResults(WritableFileSystem):
    """Result storage under an ``s3://bucket/prefix`` URL of an S3-compatible store."""

    _block_type_name = "Ragreel Object Store Results"
    _description = "Prefect results on RAGREEL_STORE; credentials come from each worker's AWS_* variables."

    basepath: str = Field(description="s3://bucket/prefix under which results are kept.")

    def _url(self, path: str) -> str:
        return f"{self.basepath.rstrip('/')}/{path.lstrip('/')}"

    async def aread_path(self, path: str) -> bytes:
        from anyio import to_thread

        return await to_thread.run_sync(self._read, path)

    @async_dispatch(aread_path)
    def read_path(self, path: str) -> bytes:
        return self._read(path)

    async def awrite_path(self, path: str, content: bytes) -> str:
        from anyio import to_thread

        return await to_thread.run_sync(self._write, path, content)

    @async_dispatch(awrite_path)
    def write_path(self, path: str, content: bytes) -> str:
        return self._write(path, content)

    def _read(self, path: str) -> bytes:
        from ragreel import storage

        data = storage.read_bytes(self._url(path))
        if data is None:  # Prefect reads a failed read as "no cached result"
            raise ValueError(f"no result at {self._url(path)}")
        return data

    def _write(self, path: str, content: bytes) -> str:
        from ragreel import storage

        storage.write_bytes(self._url(path), content)
        return self._url(path)
