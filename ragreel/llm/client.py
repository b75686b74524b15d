"""Which LLM server answers, and one chat call through the ``openai`` client with errors mapped.

Backends, from the settings:

- ``OPENAI_API_KEY`` set: that key against ``OPENAI_BASE_URL`` (default OpenAI itself) with
  ``RAGREEL_LLM_MODEL`` (default ``gpt-4o-mini`` on OpenAI; on another server its first listed model).
- only ``OPENAI_BASE_URL`` set: a keyless OpenAI-compatible server (vLLM, Ollama, llama.cpp).
- nothing set: the built-in local model (:mod:`ragreel.llm.local_server`), through the same code.

Transient faults (429, 5xx, timeouts, dropped connections) are retried by the openai client itself
(``RAGREEL_LLM_MAX_RETRIES`` times, exponential backoff from 0.5 s, honouring Retry-After) and
then raised as :class:`TransientError`; permanent ones (bad key, unknown model, a prompt longer
than the model's context, no quota) raise :class:`PermanentError` at once. The API key never
appears in a message: every text that leaves this module goes through :func:`redact`.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

from ragreel.errors import DependencyMissing, PermanentError, RagreelError, ServerTimeout, TransientError
from ragreel.settings import Settings, get_settings

logger = logging.getLogger(__name__)

STAGE = "generate"
OPENAI_URL = "https://api.openai.com/v1"
OPENAI_DEFAULT_MODEL = "gpt-4o-mini"
# Keyless servers (vLLM, Ollama, llama.cpp) ignore the key but the client insists on one.
NO_KEY = "sk-no-key-required"
# The local model samples with a fixed seed, so the same question and passages give the same answer
# (remote servers keep their own sampling: not all of them accept a seed).
LOCAL_SEED = 7
# The built-in model runs on this machine's CPU, where a reply that runs to its token limit (a small
# model repeating itself) takes longer than RAGREEL_LLM_TIMEOUT_S: measured 1,065 tokens in 100 s
# after 35 s of prompt on 2 busy cores. Its requests get the time to write max_tokens at this rate
# on top of the timeout, so such a reply ends cut off (and its finished scenes are kept) instead of
# timing out; with the fixed seed, each retry would only have written the same reply again.
LOCAL_SLOWEST_TOKENS_PER_S = 5.0

Backend = Literal["openai", "local"]


@dataclass(frozen=True)
class Endpoint:
    """Where requests go. ``model`` None means: ask the server which model it serves."""

    backend: Backend
    base_url: str
    model: str | None
    api_key: str = field(repr=False)


@dataclass(frozen=True)
class ChatReply:
    text: str
    finish_reason: str | None
    backend: Backend
    model: str
    server: str
    completion_tokens: int | None
    seconds: float


# user:password@ in a URL (a proxy's credentials, say): shown as ***@.
_URL_CREDENTIALS = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)


def redact(text: str, *secrets: str | None) -> str:
    """``text`` with the given secrets, credentials inside URLs and anything shaped like an API key
    masked."""
    for secret in secrets:
        if secret and len(secret) >= 4 and secret != NO_KEY:
            text = text.replace(secret, "***")
    text = _URL_CREDENTIALS.sub(r"\1***@", text)
    text = re.sub(r"\b(Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{8,}", r"\1 ***", text)  # echoed auth headers
    return re.sub(r"\b(sk-(?:proj-|ant-)?)[A-Za-z0-9_\-*]{6,}", r"\1***", text)


def _configured_server(settings: Settings) -> Endpoint | None:
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    base_url = (settings.openai_base_url or "").strip().rstrip("/") or None
    if not key and not base_url:
        return None
    base_url = base_url or OPENAI_URL
    model = settings.llm_model or (OPENAI_DEFAULT_MODEL if base_url == OPENAI_URL else None)
    return Endpoint("openai", base_url, model, key or NO_KEY)


def describe_backend(settings: Settings | None = None) -> tuple[Backend, str, str]:
    """(backend, model, server URL) as configured, without starting or calling anything.

    The server URL of a local server that is not running yet is ''.
    """
    from ragreel.llm import local_server

    settings = settings or get_settings()
    configured = _configured_server(settings)
    if configured is not None:
        return "openai", configured.model or "", redact(configured.base_url)
    running = local_server.running_local_server()
    if running is not None:
        return "local", running.model, running.base_url
    if settings.llm_local_model is not None:
        return "local", settings.llm_local_model.stem, ""
    return "local", local_server.QWEN_1_5B.alias, ""


def resolve_endpoint(settings: Settings | None = None) -> Endpoint:
    """The server to call, starting the built-in local one when nothing else is configured."""
    from ragreel.llm import local_server

    settings = settings or get_settings()
    configured = _configured_server(settings)
    if configured is not None:
        if configured.model is None:
            configured = Endpoint(
                configured.backend,
                configured.base_url,
                _served_model(configured, settings),
                configured.api_key,
            )
        return configured
    server = local_server.ensure_local_server(settings)
    return Endpoint("local", server.base_url, server.model, NO_KEY)


_clients: dict[tuple, object] = {}
_clients_lock = threading.Lock()
_served_models: dict[str, str] = {}


class RedactingFilter(logging.Filter):
    """Masks secrets in the records of the HTTP libraries, which log request URLs as they are."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = redact(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_redacting_filter = RedactingFilter()


def openai_client(endpoint: Endpoint, settings: Settings | None = None):
    """An ``openai.OpenAI`` client for the endpoint, made once per process and reused."""
    settings = settings or get_settings()
    for name in ("httpx", "httpx2", "httpcore", "httpcore2", "openai._base_client"):
        if _redacting_filter not in logging.getLogger(name).filters:
            logging.getLogger(name).addFilter(_redacting_filter)
    try:
        import openai
    except ImportError:
        raise DependencyMissing(
            "the openai package is not installed", stage=STAGE, hint="pip install openai==3.57.0"
        ) from None
    cache_key = (endpoint.base_url, endpoint.api_key, settings.llm_timeout_s, settings.llm_max_retries)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = openai.OpenAI(
                api_key=endpoint.api_key,
                base_url=endpoint.base_url,
                timeout=settings.llm_timeout_s,
                max_retries=settings.llm_max_retries,
            )
            _clients[cache_key] = client
        return client


def _served_model(endpoint: Endpoint, settings: Settings) -> str:
    """The first model a server lists, for servers that serve one (vLLM, llama.cpp)."""
    if endpoint.base_url in _served_models:
        return _served_models[endpoint.base_url]
    client = openai_client(endpoint, settings)
    try:
        names = [model.id for model in client.models.list()]
    except Exception as exc:  # noqa: BLE001 - every failure is mapped to a ragreel error
        raise map_error(exc, endpoint) from None
    if not names:
        raise PermanentError(
            f"the LLM server at {redact(endpoint.base_url)} lists no models",
            stage=STAGE,
            hint="set RAGREEL_LLM_MODEL to the model name the server expects",
        )
    logger.info(
        "LLM server %s serves %s; using %s (set RAGREEL_LLM_MODEL to choose)",
        redact(endpoint.base_url),
        ", ".join(names[:5]),
        names[0],
    )
    _served_models[endpoint.base_url] = names[0]
    return names[0]


_CONTEXT_WORDS = re.compile(
    r"context[ _]length|context window|maximum context|too many tokens|exceed|too long|n_ctx", re.IGNORECASE
)


def _server_message(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return str(getattr(exc, "message", "") or exc)


def map_error(exc: Exception, endpoint: Endpoint) -> RagreelError:
    """A ragreel error for an openai exception: stage, server, what to do; the key masked."""
    import openai

    server = redact(endpoint.base_url)
    model = endpoint.model or "(server default)"
    detail = redact(_server_message(exc), endpoint.api_key)[:300]

    def permanent(message: str, hint: str) -> PermanentError:
        return PermanentError(
            redact(message, endpoint.api_key), stage=STAGE, hint=redact(hint, endpoint.api_key)
        )

    def transient(message: str, hint: str) -> TransientError:
        return TransientError(
            redact(message, endpoint.api_key), stage=STAGE, hint=redact(hint, endpoint.api_key)
        )

    if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
        return permanent(
            f"the LLM server at {server} refused the API key ({exc.status_code}: {detail})",
            "check OPENAI_API_KEY (and OPENAI_BASE_URL) for this server",
        )
    if isinstance(exc, openai.NotFoundError):
        return permanent(
            f"the LLM server at {server} has no model {model!r} ({detail})",
            f"set RAGREEL_LLM_MODEL to a model the server lists at {server}/models",
        )
    if isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError):
        if exc.code == "context_length_exceeded" or _CONTEXT_WORDS.search(detail):
            return permanent(
                f"the prompt is longer than model {model!r} at {server} accepts ({detail})",
                "lower RAGREEL_TOP_K or the chunk size, or use a model with a longer context",
            )
        return permanent(
            f"the LLM server at {server} rejected the request ({detail})",
            "check RAGREEL_LLM_MODEL and the server's logs",
        )
    if isinstance(exc, openai.RateLimitError):
        if exc.code == "insufficient_quota" or "quota" in detail.lower():
            return permanent(
                f"the account behind the API key for {server} is out of quota ({detail})",
                "add credit or use another key or server",
            )
        return transient(
            f"the LLM server at {server} is rate limiting ({detail})",
            "wait a minute or lower RAGREEL_BATCH_CONCURRENCY",
        )
    if isinstance(exc, openai.APITimeoutError):
        return ServerTimeout(
            f"the LLM server at {server} did not answer within RAGREEL_LLM_TIMEOUT_S (for the "
            "built-in model, plus the time to write its token limit), on any of its "
            "RAGREEL_LLM_MAX_RETRIES retries",
            stage=STAGE,
            hint="check that the server is not overloaded or hung, or raise RAGREEL_LLM_TIMEOUT_S",
        )
    if isinstance(exc, openai.APIConnectionError):
        return transient(
            f"could not reach the LLM server at {server}",
            "check that the server runs and OPENAI_BASE_URL is right",
        )
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code >= 500 or exc.status_code in (408, 409):
            return transient(
                f"the LLM server at {server} failed ({exc.status_code}: {detail})", "try again later"
            )
        return permanent(
            f"the LLM server at {server} answered {exc.status_code} ({detail})",
            "check the LLM settings and the server's logs",
        )
    return transient(
        f"the call to the LLM server at {server} failed: {type(exc).__name__}: "
        f"{redact(str(exc), endpoint.api_key)[:300]}",
        "try again",
    )


def _refuses_format(exc: Exception) -> bool:
    import openai

    return isinstance(exc, openai.BadRequestError | openai.UnprocessableEntityError) and bool(
        _FORMAT_REFUSED.search(_server_message(exc))
    )


def _local_server_note(endpoint: Endpoint, error: RagreelError) -> RagreelError:
    """When the local server died, say so (the next call starts a new one)."""
    if endpoint.backend != "local":
        return error
    from ragreel.llm import local_server

    report = local_server.server_exit_report()
    if report is None:
        return error
    return TransientError(
        f"{error.message}; {report}", stage=STAGE, hint="retrying starts a new local server"
    )


def _sampling_extras(endpoint: Endpoint) -> dict:
    return {"seed": LOCAL_SEED} if endpoint.backend == "local" else {}


def request_timeout(endpoint: Endpoint, settings: Settings, max_tokens: int) -> float:
    """Seconds one request may take: RAGREEL_LLM_TIMEOUT_S, and for the built-in local model the
    time to write ``max_tokens`` on a slow CPU on top (see :data:`LOCAL_SLOWEST_TOKENS_PER_S`)."""
    if endpoint.backend != "local":
        return settings.llm_timeout_s
    return settings.llm_timeout_s + max_tokens / LOCAL_SLOWEST_TOKENS_PER_S


def response_format(endpoint: Endpoint, schema: dict) -> dict:
    """Constrained decoding to ``schema``: llama-cpp-python's form for the local server, OpenAI's
    structured outputs (which vLLM, Ollama and llama.cpp's own server also accept) otherwise."""
    if endpoint.backend == "local":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_schema", "json_schema": {"name": "script", "schema": schema, "strict": True}}


_FORMAT_REFUSED = re.compile(
    r"response_format|json_schema|json_object|structured|grammar|schema", re.IGNORECASE
)


def complete_chat(
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float = 0.2,
    settings: Settings | None = None,
    endpoint: Endpoint | None = None,
    json_schema: dict | None = None,
    timeout_s: float | None = None,
) -> ChatReply:
    """One chat completion on the configured backend (the local one started if needed).

    With ``json_schema`` the server is asked to constrain its reply to it; a server that refuses
    the request for that reason is asked again without it (the caller validates the reply anyway).
    ``timeout_s`` replaces :func:`request_timeout` for a request that must stay short.
    """
    settings = settings or get_settings()
    endpoint = endpoint or resolve_endpoint(settings)
    client = openai_client(endpoint, settings)
    started = time.monotonic()
    extras = _sampling_extras(endpoint)
    if json_schema is not None:
        extras["response_format"] = response_format(endpoint, json_schema)
    extras["timeout"] = (
        timeout_s if timeout_s is not None else request_timeout(endpoint, settings, max_tokens)
    )

    def create():
        return client.chat.completions.create(
            model=endpoint.model, messages=messages, max_tokens=max_tokens, temperature=temperature, **extras
        )

    try:
        try:
            response = create()
        except Exception as exc:  # noqa: BLE001 - mapped below
            if "response_format" not in extras or not _refuses_format(exc):
                raise
            logger.warning(
                "The LLM server at %s does not take a JSON schema (%s); asking without one",
                redact(endpoint.base_url),
                redact(_server_message(exc), endpoint.api_key)[:120],
            )
            del extras["response_format"]
            response = create()
    except Exception as exc:  # noqa: BLE001 - every failure is mapped to a ragreel error
        raise _local_server_note(endpoint, map_error(exc, endpoint)) from None
    seconds = time.monotonic() - started
    if not hasattr(response, "choices"):
        # A proxy's HTML page or another non-OpenAI reply: retrying will not change what the URL serves.
        raise PermanentError(
            f"the server at {redact(endpoint.base_url)} did not answer in the OpenAI format "
            f"(it sent {redact(str(response), endpoint.api_key)[:80]!r})",
            stage=STAGE,
            hint="point OPENAI_BASE_URL at an OpenAI-compatible API, usually ending in /v1",
        )
    if not response.choices:
        raise TransientError(
            f"the LLM server at {redact(endpoint.base_url)} returned no choices",
            stage=STAGE,
            hint="try again",
        )
    choice = response.choices[0]
    usage = response.usage
    logger.info(
        "%s model %s answered in %.1f s (%s tokens, finish: %s)",
        endpoint.backend,
        endpoint.model,
        seconds,
        usage.completion_tokens if usage else "?",
        choice.finish_reason,
    )
    return ChatReply(
        text=redact(choice.message.content or "", endpoint.api_key),
        finish_reason=choice.finish_reason,
        backend=endpoint.backend,
        model=endpoint.model or response.model,
        server=redact(endpoint.base_url),
        completion_tokens=usage.completion_tokens if usage else None,
        seconds=seconds,
    )


def stream_chat(
    messages: list[dict[str, str]],
    *,
    max_tokens: int,
    temperature: float = 0.2,
    settings: Settings | None = None,
    endpoint: Endpoint | None = None,
    json_schema: dict | None = None,
) -> Iterator[str]:
    """The reply as it is generated, piece by piece (llama.cpp sends one token per piece); with
    ``json_schema``, constrained to it as :func:`complete_chat` asks."""
    settings = settings or get_settings()
    endpoint = endpoint or resolve_endpoint(settings)
    client = openai_client(endpoint, settings)
    extras = _sampling_extras(endpoint)
    if json_schema is not None:
        extras["response_format"] = response_format(endpoint, json_schema)
    try:
        stream = client.chat.completions.create(
            model=endpoint.model,
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            **extras,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
    except Exception as exc:  # noqa: BLE001 - every failure is mapped to a ragreel error
        raise _local_server_note(endpoint, map_error(exc, endpoint)) from None
