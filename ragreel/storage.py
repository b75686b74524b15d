"""Talking to the object store behind RAGREEL_STORE (S3 or any S3-compatible server).

Endpoint, region and credentials are the standard AWS variables (read into :class:`Settings`);
unset ones fall back to boto3's and LanceDB's own lookups (instance roles, ``~/.aws``). LanceDB
reaches the store with its own client, configured by :func:`lancedb_storage_options`; everything
else (the knowledge base's metadata, kept pictures, finished videos, Prefect's cached results) goes through the
boto3 helpers here. Secrets are masked by :func:`redact` in every message this module writes, and
clients are cached under a hash of the configuration, never under the secrets themselves.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from pathlib import Path
from typing import Any

from ragreel.errors import InputError, PermanentError, TransientError
from ragreel.files import atomic_path
from ragreel.settings import Settings, get_settings

log = logging.getLogger(__name__)

STAGE = "storage"
# Answers that no retry changes: the bucket, the key or the credentials are wrong.
PERMANENT_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "InvalidBucketName",
    "NoSuchBucket",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
}


def is_url(value: str | Path | None) -> bool:
    """Whether ``value`` names an object on a store (``s3://...``) rather than a local path."""
    return isinstance(value, str) and value.startswith("s3://")


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ("bucket", "some/key")."""
    match = re.fullmatch(r"s3://([^/]+)/?(.*)", url)
    if not match:
        raise InputError("expected an s3://bucket/key URL", stage=STAGE)
    return match.group(1), match.group(2)


def _secrets(settings: Settings) -> list[str]:
    return [
        secret.get_secret_value()
        for secret in (settings.aws_secret_access_key, settings.aws_session_token)
        if secret is not None
    ]


def redact(text: str, settings: Settings) -> str:
    """``text`` with the secret key and session token masked, and the query of presigned URLs (which
    carries a signature) cut off."""
    for secret in _secrets(settings):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    return re.sub(r"(https?://\S+?)\?\S*(X-Amz-Signature|Signature=)\S*", r"\1?***", text)


def fingerprint(settings: Settings) -> str:
    """A short hash of the endpoint, region and credentials: a cache key that holds no secret."""
    parts = [
        settings.aws_endpoint_url,
        settings.aws_region,
        settings.aws_access_key_id,
        *_secrets(settings),
    ]
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


def lancedb_storage_options(settings: Settings) -> dict[str, str]:
    """LanceDB's ``storage_options`` for the configured store; only what is set, so that an unset
    value leaves LanceDB its own lookup (environment, instance role)."""
    options = {
        "aws_endpoint": settings.aws_endpoint_url,
        "aws_region": settings.aws_region,
        "aws_access_key_id": settings.aws_access_key_id,
        "aws_secret_access_key": _secret(settings.aws_secret_access_key),
        "aws_session_token": _secret(settings.aws_session_token),
    }
    options = {key: value for key, value in options.items() if value}
    if (settings.aws_endpoint_url or "").startswith("http://"):
        options["allow_http"] = "true"  # a plain-HTTP endpoint (a local MinIO) is refused without it
    return options


def _secret(value) -> str | None:
    return value.get_secret_value() if value is not None else None


_clients: dict[str, Any] = {}  # fingerprint -> boto3 S3 client (thread-safe, slow to build)


def _client(settings: Settings):
    key = fingerprint(settings)
    if key not in _clients:
        import boto3
        from botocore.config import Config

        _clients[key] = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.aws_endpoint_url,
            region_name=settings.aws_region,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=_secret(settings.aws_secret_access_key),
            aws_session_token=_secret(settings.aws_session_token),
            # Path-style addressing works with every S3-compatible server; AWS accepts it too. SigV4
            # for presigned links as well: every region takes it, and it bounds their life (7 days).
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                retries={"max_attempts": 5, "mode": "standard"},
            ),
        )
    return _clients[key]


def _failure(exc: Exception, doing: str, url: str, settings: Settings) -> PermanentError | TransientError:
    """The boto3 error as a ragreel error: permanent when the bucket or credentials are wrong."""
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    message = redact(f"cannot {doing} {url}: {exc}", settings)
    if not isinstance(exc, ClientError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__  # boto3's transfers wrap the server's answer (S3UploadFailedError)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return PermanentError(message, stage=STAGE, hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
    if isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in PERMANENT_CODES:
        return PermanentError(message, stage=STAGE, hint="check RAGREEL_STORE and the AWS_* variables")
    return TransientError(message, stage=STAGE)


def _call(settings: Settings, doing: str, url: str, operation):
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return operation(_client(settings))
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise _failure(exc, doing, url, settings) from None


def _is_missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in {
        "404",
        "NoSuchKey",
        "NotFound",
    }


# --- the helpers ------------------------------------------------------------------------------------


def upload_file(local: Path | str, url: str, settings: Settings | None = None) -> None:
    """Copy a local file to ``url`` (an object appears whole or not at all)."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    _call(settings, "upload to", url, lambda s3: s3.upload_file(str(local), bucket, key))


def download_file(url: str, local: Path | str, settings: Settings | None = None) -> Path:
    """Copy the object at ``url`` to ``local``, which appears only when whole."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    with atomic_path(local) as temporary:
        _call(settings, "download", url, lambda s3: s3.download_file(bucket, key, str(temporary)))
    return Path(local)


def exists(url: str, settings: Settings | None = None) -> bool:
    """Whether ``url`` is an object, or a folder with objects under it (a LanceDB table)."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        _client(settings).head_object(Bucket=bucket, Key=key)
        return True
    except ClientError as exc:
        if not _is_missing(exc):
            raise _failure(exc, "look up", url, settings) from None
    except BotoCoreError as exc:
        raise _failure(exc, "look up", url, settings) from None
    listed = _call(
        settings,
        "list",
        url,
        lambda s3: s3.list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/", MaxKeys=1),
    )
    return listed.get("KeyCount", 0) > 0


def modified(url: str, settings: Settings | None = None) -> float | None:
    """When the object at ``url`` was last written (a POSIX timestamp), or None when it is not there."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _client(settings).head_object(Bucket=bucket, Key=key)["LastModified"].timestamp()
    except (BotoCoreError, ClientError) as exc:
        if _is_missing(exc):
            return None
        raise _failure(exc, "look up", url, settings) from None


def presigned_url(url: str, seconds: int, settings: Settings | None = None) -> str:
    """A URL that lets anyone download ``url`` for ``seconds`` without credentials."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    return _call(
        settings,
        "sign",
        url,
        lambda s3: s3.generate_presigned_url(
            "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(seconds)
        ),
    )


def read_bytes(url: str, settings: Settings | None = None) -> bytes | None:
    """The bytes at ``url``, or None when there is no such object."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return _client(settings).get_object(Bucket=bucket, Key=key)["Body"].read()
    except (BotoCoreError, ClientError) as exc:
        if _is_missing(exc):
            return None
        raise _failure(exc, "read", url, settings) from None


def write_bytes(url: str, data: bytes, settings: Settings | None = None) -> None:
    """Store ``data`` at ``url`` (a PUT replaces an object whole)."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    _call(settings, "write", url, lambda s3: s3.put_object(Bucket=bucket, Key=key, Body=data))


def read_text(url: str, settings: Settings | None = None) -> str | None:
    """The UTF-8 text at ``url``, or None when there is no such object."""
    data = read_bytes(url, settings)
    return data.decode("utf-8") if data is not None else None


def write_text(url: str, text: str, settings: Settings | None = None) -> None:
    """Store UTF-8 text at ``url`` (a PUT replaces an object whole)."""
    write_bytes(url, text.encode("utf-8"), settings)


def list_files(url: str, settings: Settings | None = None) -> list[str]:
    """The URLs of every object under the folder ``url``, sorted."""
    settings = settings or get_settings()
    bucket, key = split_url(url)
    prefix = key.rstrip("/") + "/" if key else ""
    pages = _call(
        settings,
        "list",
        url,
        lambda s3: list(s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)),
    )
    return sorted(f"s3://{bucket}/{item['Key']}" for page in pages for item in page.get("Contents", []))


def delete_file(url: str, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    bucket, key = split_url(url)
    _call(settings, "delete", url, lambda s3: s3.delete_object(Bucket=bucket, Key=key))
