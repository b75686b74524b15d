"""Errors that say which stage failed and what to do next.

Retry policy rests on one distinction: a :class:`PermanentError` (bad input, a missing
knowledge base, a rejected API key) fails at once; anything else may be retried.
"""

from __future__ import annotations


class RagreelError(Exception):
    """Base class: ``stage`` names the pipeline stage, ``hint`` says what to do next."""

    stage: str = "ragreel"

    def __init__(self, message: str, *, stage: str | None = None, hint: str | None = None):
        self.message = message
        if stage:
            self.stage = stage
        self.hint = hint
        super().__init__(self.__str__())

    def __str__(self) -> str:
        text = f"[{self.stage}] {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class PermanentError(RagreelError):
    """Retrying cannot help: the input, configuration or server said no."""


class TransientError(RagreelError):
    """A fault that may pass (timeouts, 429, 5xx, dropped connections): worth retrying."""


class ServerTimeout(TransientError):
    """A server did not answer in time, through every retry of its client: running the stage again
    would wait as long once more, so the stage is not retried (the total wait stays bounded)."""


class InputError(PermanentError):
    """The caller's input is unusable (empty or oversized question, malformed file)."""


class KnowledgeBaseError(PermanentError):
    """The knowledge base is missing, empty, or was built with another embedding model."""

    stage = "retrieve"


class DependencyMissing(PermanentError):
    """An optional dependency or model file is not installed; the hint says how to get it."""


def is_retryable(exc: BaseException) -> bool:
    """Retry condition for Prefect tasks: everything except permanent errors and exhausted timeouts."""
    return not isinstance(exc, PermanentError | ServerTimeout)
