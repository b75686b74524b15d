"""Retrieval: the top-k passages for a question, by hybrid vector + full-text search."""

from __future__ import annotations

import logging

from ragreel.errors import InputError
from ragreel.kb.embedding import embed, vocabulary_coverage
from ragreel.kb.store import KnowledgeBase, SearchMode
from ragreel.schemas import Passage
from ragreel.settings import Settings, get_settings

log = logging.getLogger(__name__)


def validate_question(question: str, settings: Settings | None = None) -> str:
    """The question stripped, or an InputError that says what is wrong with it."""
    settings = settings or get_settings()
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty", stage="retrieve", hint="ask a question in words")
    question = question.strip()
    if len(question) > settings.max_question_chars:
        raise InputError(
            f"the question is {len(question):,} characters long; the limit is {settings.max_question_chars:,}",
            stage="retrieve", hint="shorten it, or raise RAGREEL_MAX_QUESTION_CHARS",
        )
    return question


def knowledge_base_version(settings: Settings | None = None) -> str:
    """The version later caches key on; raises a clear error when there is no knowledge base."""
    return KnowledgeBase(settings or get_settings()).version()


def retrieve_passages(question: str, top_k: int | None = None, settings: Settings | None = None,
                      mode: SearchMode = "hybrid") -> list[Passage]:
    """The ``top_k`` passages that best answer ``question``, best first."""
    settings = settings or get_settings()
    question = validate_question(question, settings)
    top_k = top_k or settings.top_k
    if top_k < 1:
        raise InputError(f"top_k must be at least 1, not {top_k}", stage="retrieve")
    kb = KnowledgeBase(settings)
    kb.table()  # a missing knowledge base fails before the embedding model loads
    [vector] = embed([question], settings.embedding_model)
    # An English-only model turns most of a Chinese question into [UNK]: trust its vector less.
    vector_weight = 0.5 * vocabulary_coverage(question, settings.embedding_model)
    passages = kb.search(question, vector, top_k, mode, vector_weight)
    log.info("Retrieved %d passages for %r: %s", len(passages), question[:60],
             ", ".join(f"{p.source} ({p.score:.3f})" for p in passages))
    return passages
