"""The answer stage: a question and retrieved passages in, a short spoken answer with citations out.

``answer_question`` is the entry point. It asks the configured OpenAI-compatible server (or the
built-in local model, see :mod:`ragreel.llm.client`) for an answer grounded in the numbered passages,
then makes the reply fit to be narrated: plain sentences in the question's language (Traditional
characters for Chinese), citations that point at real passages, no longer than
``RAGREEL_ANSWER_MAX_SECONDS`` of speech. With no passage at or above ``RAGREEL_MIN_RELEVANCE``
no model is called and the answer says that the knowledge base doesn't cover the question.

``generate_stage`` is the Prefect task the generate flow calls, cached on its inputs and on the
model and answer settings.
"""

from __future__ import annotations

import logging
import time

from ragreel.errors import InputError, TransientError
from ragreel.llm.client import ChatReply, complete_chat, describe_backend, resolve_endpoint
from ragreel.llm.prompt import (
    CleanAnswer,
    LengthTarget,
    build_messages,
    clean_answer,
    not_covered_message,
    spoken_seconds,
)
from ragreel.schemas import Answer, Citation, Language, Passage, parse_language
from ragreel.settings import Settings, get_settings
from ragreel.text import detect_language
from tasks.stage import code_version, file_signature, one_line, stage_task

log = logging.getLogger(__name__)

STAGE = "generate"

_RETRY_INSTRUCTION = {
    "en": "Your previous reply was not usable. Answer again in English only, in plain sentences, "
    "citing the passages as [1], [2].",
    "zh": "上一個回答不能用。請重新回答，只用繁體中文，寫成完整的句子，並用 [1]、[2] 標出引用的資料。",
}


_EXPAND_INSTRUCTION = {
    "en": "That is too short for the narration. Write the answer again in about {low} to {high} words, "
    "with more of what the passages say, still citing them as [1], [2].",
    "zh": "這樣太短了。請根據資料重新回答，寫成大約 {low} 到 {high} 個字，多說明資料裡的細節，"
    "並用 [1]、[2] 標出引用的資料。",
}
# Below this share of the minimum narration length, an answer is worth one request for more.
_TOO_SHORT = 0.5


def _usable(cleaned: CleanAnswer, language: str) -> bool:
    return bool(cleaned.text.strip()) and detect_language(cleaned.text) == language


def answer_question(
    question: str,
    passages: list[Passage],
    language: Language | str | None = None,
    settings: Settings | None = None,
) -> Answer:
    """Answer ``question`` from ``passages`` (best first), in ``language`` (default: the question's).

    Raises InputError for an empty question or an unsupported language, PermanentError when the
    LLM server refuses for good (bad key, unknown model, prompt too long) and TransientError when
    it fails in a way worth retrying.
    """
    settings = settings or get_settings()
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty", stage=STAGE, hint="ask a question in words")
    question = question.strip()
    language = parse_language(language, stage=STAGE) if language else detect_language(question)

    relevant = [p for p in passages if p.score >= settings.min_relevance]
    if not relevant:
        backend, model, server = describe_backend(settings)
        log.info(
            "No passage scores %.3f or more for %r: answering that the knowledge base doesn't cover it",
            settings.min_relevance,
            question[:60],
        )
        return Answer(
            question=question,
            language=language,
            text=not_covered_message(language),
            citations=[],
            covered=False,
            backend=backend,
            model=model,
            server=server,
        )

    target = LengthTarget(language, settings.answer_min_seconds, settings.answer_max_seconds)
    messages = build_messages(question, relevant, language, target)
    started = time.monotonic()
    endpoint = resolve_endpoint(settings)

    def ask(chat: list[dict[str, str]], temperature: float) -> tuple[ChatReply, CleanAnswer]:
        reply = complete_chat(
            chat, max_tokens=target.max_tokens, temperature=temperature, settings=settings, endpoint=endpoint
        )
        cleaned = clean_answer(
            reply.text,
            relevant,
            language,
            settings.answer_max_seconds,
            truncated=reply.finish_reason == "length",
        )
        return reply, cleaned

    reply, cleaned = ask(messages, temperature=0.2)
    if not _usable(cleaned, language):
        # Small models slip into another language or answer with nothing speakable: ask once more.
        log.warning(
            "The %s answer was empty or not in %s (%r); asking again",
            endpoint.model,
            language,
            reply.text[:80],
        )
        retry = [
            *messages,
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": _RETRY_INSTRUCTION[language]},
        ]
        reply, cleaned = ask(retry, temperature=0.0)
        if not _usable(cleaned, language):
            raise TransientError(
                f"model {endpoint.model} at {endpoint.base_url} gave no usable {language} answer twice",
                stage=STAGE,
                hint="try again, or configure a stronger model (RAGREEL_LLM_MODEL)",
            )

    if spoken_seconds(cleaned.text, language) < _TOO_SHORT * settings.answer_min_seconds:
        # Small models often answer in one sentence whatever the prompt says: ask once for more.
        low, high = target.ask_range
        log.info(
            "The answer is about %.0f s spoken, under half of RAGREEL_ANSWER_MIN_SECONDS; asking for more",
            spoken_seconds(cleaned.text, language),
        )
        expand = [
            *messages,
            {"role": "assistant", "content": reply.text},
            {"role": "user", "content": _EXPAND_INSTRUCTION[language].format(low=low, high=high)},
        ]
        longer_reply, longer = ask(expand, temperature=0.2)
        if _usable(longer, language) and len(longer.text) > len(cleaned.text):
            reply, cleaned = longer_reply, longer

    citations = [
        Citation(
            number=number,
            source=relevant[index - 1].source,
            title=relevant[index - 1].title,
            heading=relevant[index - 1].heading,
            text=relevant[index - 1].text,
        )
        for number, index in enumerate(cleaned.cited, start=1)
    ]
    log.info(
        "Answered in %s (%d characters, about %.0f s spoken, %d citations) by %s model %s in %.1f s",
        language,
        len(cleaned.text),
        spoken_seconds(cleaned.text, language),
        len(citations),
        reply.backend,
        reply.model,
        time.monotonic() - started,
    )
    return Answer(
        question=question,
        language=language,
        text=cleaned.text,
        citations=citations,
        covered=True,
        backend=reply.backend,
        model=reply.model,
        server=reply.server,
    )


def generate_cache_key(settings: Settings, parameters: dict) -> str:
    backend, model, server = describe_backend(settings)
    # A local server's port changes from process to process; it is the same model.
    where = "" if backend == "local" else server
    return "|".join(
        [
            code_version("tasks.answer", "ragreel.llm"),
            backend,
            model,
            where,
            file_signature(settings.llm_local_model),
            str(settings.answer_min_seconds),
            str(settings.answer_max_seconds),
            str(settings.min_relevance),
        ]
    )


@stage_task(
    name="generate",
    timeout_seconds=900,
    settings_key=generate_cache_key,
    run_name=lambda p: f"answer {one_line(p['question'])!r} in {p['language']}",
)
def generate_stage(question: str, passages: list[Passage], language: Language) -> Answer:
    return answer_question(question, passages, language)
