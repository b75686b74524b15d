"""A question translated for search: how retrieval finds passages written in another language.

multilingual-e5-small places an English question and the Chinese passage that answers it further
apart than two texts in one language, and full-text search cannot match across languages at all:
"the classical Chinese tale of a fisherman" finds nothing in 桃花源記 by its words. Asked in the
passage's language, the same question ranks it first (``python -m bench.retrieval_eval``).

:func:`translate_question` asks the configured LLM for one short translation. It never fails the
caller: a server that is down, slow or answers with something other than a translation in the
target language gives ``None``, with the reason logged, and retrieval goes on with the question
as it was asked.
"""

from __future__ import annotations

import logging

from ragreel.errors import RagreelError
from ragreel.llm.client import complete_chat
from ragreel.llm.prompt import neutralise_delimiters
from ragreel.schemas import Language
from ragreel.settings import Settings
from ragreel.text import detect_language

log = logging.getLogger(__name__)

# Longer questions carry enough words of their own; translating them would cost more than it finds.
MAX_TRANSLATED_CHARS = 500
# A translation is one short request: no retries, and a limit well under an answer's.
TRANSLATION_TIMEOUT_S = 60.0

_LANGUAGE_NAMES = {"en": "English", "zh": "Traditional Chinese as written in Taiwan"}
_SYSTEM = (
    "You translate search questions. Translate the question between <question> tags into {language}. "
    "Do not answer it. Keep names, code, commands, file names and numbers exactly as they are. "
    "Reply with the translated question only."
)
# One worked example per direction: a 1.5B model otherwise sometimes answers instead of translating.
_EXAMPLES = {
    "zh": (
        "How many days of annual leave does an employee get after one year?",
        "員工工作滿一年後有幾天特休？",
    ),
    "en": ("颱風的陸上警報什麼時候發布？", "When is a typhoon land warning issued?"),
}


def translation_messages(question: str, target: Language) -> list[dict[str, str]]:
    example_question, example_translation = _EXAMPLES[target]
    return [
        {"role": "system", "content": _SYSTEM.format(language=_LANGUAGE_NAMES[target])},
        {"role": "user", "content": f"<question>{example_question}</question>"},
        {"role": "assistant", "content": example_translation},
        {"role": "user", "content": f"<question>{neutralise_delimiters(question)}</question>"},
    ]


def translate_question(question: str, target: Language, settings: Settings) -> str | None:
    """``question`` in the ``target`` language, or None (with the reason logged) when there is none."""
    if len(question) > MAX_TRANSLATED_CHARS:
        log.info("Not translating a question of %d characters for search", len(question))
        return None
    quick = settings.model_copy(
        update={"llm_max_retries": 0, "llm_timeout_s": min(settings.llm_timeout_s, TRANSLATION_TIMEOUT_S)}
    )
    try:
        reply = complete_chat(
            translation_messages(question, target),
            max_tokens=60 + len(question),
            temperature=0.0,
            settings=quick,
            timeout_s=quick.llm_timeout_s,  # no time added for the local model's token limit
        )
    except RagreelError as exc:
        log.warning("Searching without a translation of the question: %s", exc.message)
        return None
    translation = usable_translation(reply.text, question, target)
    if translation is None:
        log.info("The LLM gave no usable %s translation of %r (%r)", target, question[:60], reply.text[:80])
    else:
        log.info("Also searching for %r", translation)
    return translation


def usable_translation(text: str, question: str, target: Language) -> str | None:
    """The reply's first line when it reads as a question in ``target``, not the question itself, and
    not a long answer."""
    lines = [line.strip() for line in text.replace("<question>", "").replace("</question>", "").splitlines()]
    first = next((line for line in lines if line), "").strip("\"'“”「」")
    if not first or first == question.strip() or len(first) > 3 * len(question) + 60:
        return None
    return first if detect_language(first) == target else None
