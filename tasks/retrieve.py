"""Retrieval: the top-k passages for a question, by hybrid vector + full-text search.

``retrieve_passages`` is the stage's function; ``retrieve_stage`` is the Prefect task the generate
flow calls, cached on the question, ``top_k``, the knowledge base's version and the embedding model.
"""

from __future__ import annotations

import logging

from ragreel.errors import InputError, RagreelError
from ragreel.kb.embedding import get_embedder
from ragreel.kb.store import KnowledgeBase, SearchMode
from ragreel.schemas import MAX_TOP_K, Passage, check_question
from ragreel.settings import Settings, get_settings
from tasks.stage import code_version, one_line, stage_task

log = logging.getLogger(__name__)


def knowledge_base_version(settings: Settings | None = None) -> str:
    """The version later caches key on; raises a clear error when there is no knowledge base."""
    return KnowledgeBase(settings or get_settings()).version()


def retrieve_passages(
    question: str, top_k: int | None = None, settings: Settings | None = None, mode: SearchMode = "hybrid"
) -> list[Passage]:
    """The ``top_k`` passages that best answer ``question``, best first."""
    settings = settings or get_settings()
    question = check_question(question, settings.max_question_chars)
    top_k = settings.top_k if top_k is None else top_k
    if not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k}", stage="retrieve")
    kb = KnowledgeBase(settings)
    table = kb.table()  # a missing knowledge base fails before the embedding model loads
    embedder = get_embedder(settings.embedding_model)
    [vector] = embedder.queries([question])
    # An English-only model turns most of a Chinese question into [UNK]: trust its vector less.
    vector_weight = settings.hybrid_vector_weight * embedder.vocabulary_coverage(question)
    passages = kb.search(question, vector, top_k, mode, vector_weight, table=table)
    log.info(
        "Retrieved %d passages for %r: %s",
        len(passages),
        question[:60],
        ", ".join(f"{p.source} ({p.score:.3f})" for p in passages),
    )
    return passages


def retrieve_cache_key(settings: Settings, parameters: dict) -> str:
    try:
        version = knowledge_base_version(settings)
    except RagreelError:
        version = "missing"  # the task itself fails with the reason: a key is no place to raise
    return "|".join(
        [
            code_version("tasks.retrieve", "ragreel.kb"),
            version,
            settings.embedding_model,
            str(settings.hybrid_vector_weight),
        ]
    )


@stage_task(
    name="retrieve",
    timeout_seconds=300,
    settings_key=retrieve_cache_key,
    run_name=lambda p: f"retrieve passages for {one_line(p['question'])!r}",
)
def retrieve_stage(question: str, top_k: int) -> list[Passage]:
    return retrieve_passages(question, top_k)
