"""A real S3-compatible server on 127.0.0.1 for the object store tests: moto in server mode.

It runs as a subprocess on a free port, with a bucket made at start, and is stopped by its own
process id (SIGTERM, SIGKILL after a timeout). Its S3 is in memory: nothing outlives it.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.prefect_server import free_port, log_tail

# Test credentials: moto accepts any, and the tests look for these strings where they must not be.
ACCESS_KEY_ID = "AKIATESTRAGREEL0001"
SECRET_ACCESS_KEY = "s3cr3t-Ragreel-Test-Key-9f8e7d6c5b4a"
REGION = "us-east-1"


@dataclass
class S3Server:
    bucket: str = "bucket"
    port: int = 0
    popen: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def environment(self) -> dict[str, str]:
        """The AWS variables that point boto3 and LanceDB at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        }

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=REGION,
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def keys(self, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def start(self, timeout: float = 60.0) -> S3Server:
        self.port = free_port()
        self.log_path = Path(tempfile.mkdtemp(prefix="ragreel-moto-")) / "moto.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.popen.poll() is not None:
                raise AssertionError(f"moto exited with {self.popen.returncode}:\n{log_tail(self.log_path)}")
            try:
                if httpx.get(f"{self.endpoint_url}/moto-api/", timeout=2).status_code < 500:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise AssertionError(f"moto did not answer in {timeout:.0f}s:\n{log_tail(self.log_path)}")
            time.sleep(0.2)
        self.client().create_bucket(Bucket=self.bucket)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait(10)

    def __enter__(self) -> S3Server:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
