"""Retrieval: the top-k passages for a question, by hybrid vector + full-text search.

Where the knowledge base holds passages in a language other than the question's, the question is
also searched translated into it (one short LLM request, :mod:`ragreel.llm.translate`) and the two
rankings are fused: an English question finds the Chinese passage that answers it, and back.

``retrieve_passages`` is the stage's function; ``retrieve_stage`` is the Prefect task the generate
flow calls, cached on the question, ``top_k``, the knowledge base's version, the embedding model and
the LLM that translates.
"""

from __future__ import annotations

import logging

from ragreel.errors import InputError, RagreelError
from ragreel.kb.embedding import get_embedder
from ragreel.kb.store import KnowledgeBase, SearchMode
from ragreel.schemas import MAX_TOP_K, Passage, check_question
from ragreel.settings import Settings, get_settings
from ragreel.text import detect_language
from tasks.stage import code_version, one_line, stage_task

log = logging.getLogger(__name__)

# Where a translation's best passage goes: second, after the question's own best, so that a passage in
# another language is read without pushing out the one the question's own words found first.
TRANSLATION_PLACE = 2


def knowledge_base_version(settings: Settings | None = None) -> str:
    """The version later caches key on; raises a clear error when there is no knowledge base."""
    return KnowledgeBase(settings or get_settings()).version()


def retrieve_passages(
    question: str,
    top_k: int | None = None,
    settings: Settings | None = None,
    mode: SearchMode = "hybrid",
    cross_lingual: bool | None = None,
) -> list[Passage]:
    """The ``top_k`` passages that best answer ``question``, best first.

    ``cross_lingual`` (default RAGREEL_CROSS_LINGUAL): also search with the question translated into
    the knowledge base's other languages.
    """
    settings = settings or get_settings()
    question = check_question(question, settings.max_question_chars)
    top_k = settings.top_k if top_k is None else top_k
    if not 1 <= top_k <= MAX_TOP_K:
        raise InputError(f"top_k must be a whole number from 1 to {MAX_TOP_K}, not {top_k}", stage="retrieve")
    kb = KnowledgeBase(settings)
    table = kb.table()  # a missing knowledge base fails before the embedding model loads
    language = detect_language(question)
    queries = [(question, language)]
    # A translation's passage takes the second place: a single passage is the question's own best.
    if (settings.cross_lingual if cross_lingual is None else cross_lingual) and top_k >= TRANSLATION_PLACE:
        queries += translations(question, language, kb.languages(), settings)
    embedder = get_embedder(settings.embedding_model)
    vectors = embedder.queries([text for text, _ in queries])
    rankings = []
    for (text, _), vector in zip(queries, vectors, strict=True):
        # An English-only model turns most of a Chinese question into [UNK]: trust its vector less.
        vector_weight = settings.hybrid_vector_weight * embedder.vocabulary_coverage(text)
        depth = top_k if not rankings else 1  # of a translation's ranking, only its best is used
        rankings.append(kb.search(text, vector, depth, mode, vector_weight, table=table))
    passages = rankings[0]
    for (_, other), translated in zip(queries[1:], rankings[1:], strict=True):
        # A translation's cosines sit on its own language's scale: shifted onto the question's by the
        # difference of the measured floors, they say how relevant its passage is to the question.
        shift = settings.relevance_floor(language) - settings.relevance_floor(other)
        passages = with_translations_best(passages, translated, shift)
    log.info(
        "Retrieved %d passages for %r: %s",
        len(passages),
        question[:60],
        ", ".join(f"{p.source} ({p.score:.3f})" for p in passages),
    )
    return passages


def translations(
    question: str, language: str, kb_languages: list[str], settings: Settings
) -> list[tuple[str, str]]:
    """(translation, language) for each language of the knowledge base other than the question's."""
    from ragreel.llm.translate import translate_question

    found = []
    for other in kb_languages:
        if other != language and (text := translate_question(question, other, settings)):
            found.append((text, other))
    return found


def with_translations_best(passages: list[Passage], translated: list[Passage], shift: float) -> list[Passage]:
    """``passages`` with the translation's best passage in TRANSLATION_PLACE, where it is at least as
    close to the question (its cosine to the translation plus ``shift``) as the passage it goes ahead of.

    Its similarity, what RAGREEL_MIN_RELEVANCE is compared with, is shifted down where ``shift`` is
    negative but never up: measured with ``python -m bench.coverage_eval``, shifting up let the English
    translations of off-topic Chinese questions pass as covered (refused at the 0.82 floor: 0.35 of
    them without the translation, 0.15 with the shift up).

    Measured with ``python -m bench.retrieval_eval`` (97 questions): this finds every cross-lingual
    question's document in the top 3 without moving any other's first passage. Fusing the two rankings
    by reciprocal rank instead (weights 0.3-1, k 1-60) either left cross-lingual documents at ranks 4-6
    or cost 2-5 first places.
    """
    place = TRANSLATION_PLACE - 1
    if not translated or len(passages) <= place:
        return passages
    best = translated[0]
    if any(p.chunk_id == best.chunk_id for p in passages[: place + 1]):
        return passages
    if best.similarity is not None and best.similarity + shift < (passages[place].similarity or 0.0):
        return passages
    similarity = None if best.similarity is None else round(best.similarity + min(shift, 0.0), 6)
    others = [p for p in passages if p.chunk_id != best.chunk_id]
    # Scores of two searches do not compare: it takes the score of the passage it goes ahead of.
    inserted = best.model_copy(update={"similarity": similarity, "score": others[place].score})
    ranked = [*others[:place], inserted, *others[place:]][: len(passages)]
    return [p.model_copy(update={"rank": rank}) for rank, p in enumerate(ranked, start=1)]


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
            translator(settings),
        ]
    )


def translator(settings: Settings) -> str:
    """Which model translates questions for search ("" when none does): its translations are part of
    what retrieval found."""
    from ragreel.llm.client import describe_backend

    if not settings.cross_lingual:
        return ""
    backend, model, server = describe_backend(settings)
    # A local server's port changes from process to process; it is the same model.
    return f"{backend}:{model}:{'' if backend == 'local' else server}"


@stage_task(
    name="retrieve",
    timeout_seconds=300,
    settings_key=retrieve_cache_key,
    run_name=lambda p: f"retrieve passages for {one_line(p['question'])!r}",
)
def retrieve_stage(question: str, top_k: int) -> list[Passage]:
    return retrieve_passages(question, top_k)
