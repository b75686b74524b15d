"""The answer stage: a question and retrieved passages in, a checked script of scenes out.

``answer_question`` is the entry point. It asks the configured OpenAI-compatible server (or the
built-in local model, see :mod:`ragreel.llm.client`) for a script (:mod:`ragreel.llm.script`):
scenes, each with its narration, an on-screen key point and a sentence quoted from a passage.
Every scene is checked against its evidence (:mod:`ragreel.llm.evidence`); a failing scene is
asked for again once with the reasons, then narrated as its own quoted evidence (extractive, so
right by construction) or dropped. What was checked and replaced is logged and kept in
``Answer.checks``. With no passage at or above ``RAGREEL_MIN_RELEVANCE`` no model is called and
the answer says that the knowledge base doesn't cover the question. A script given by a person
(``script=``, from ``--script`` or a review manifest) is checked the same way and no model is asked.

``generate_stage`` is the Prefect task the generate flow calls, cached on its inputs and on the
model and answer settings.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

from ragreel.errors import InputError, TransientError
from ragreel.llm.client import ChatReply, Endpoint, complete_chat, describe_backend, redact, resolve_endpoint
from ragreel.llm.evidence import (
    SceneCheck,
    best_sentences,
    candidate_sentences,
    check_scene,
    extractive_scene,
    normalise,
    numbers_in,
    question_parts,
    readable,
    repeats,
    says,
    sentence_scenes,
    unsupported,
    with_its_section,
    word_share,
)
from ragreel.llm.prompt import LengthTarget, not_covered_message, spoken_seconds
from ragreel.llm.script import parse_script, revision_message, script_messages, script_schema
from ragreel.schemas import (
    Answer,
    Citation,
    Evidence,
    Language,
    Passage,
    Scene,
    Script,
    SourceMedia,
    parse_language,
)
from ragreel.settings import Settings, get_settings
from ragreel.text import detect_language
from tasks.stage import code_version, file_signature, one_line, stage_task

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

STAGE = "generate"
# Below this share of RAGREEL_ANSWER_MIN_SECONDS, a script is topped up with passage sentences.
_TOO_SHORT = 0.5
MAX_TOP_UP = 2
# Passage sentences closest to the question that the script must say (or get added): a small model
# often writes true scenes around the answer and leaves out the sentence that holds it. The best one,
# and the next only within ANSWER_MARGIN of its score. Measured with `python -m bench.answer_eval
# --sentences` (share of questions answered by these sentences alone), margins 0.01 / 0.03 / 0.06 / none:
# en 0.32 / 0.39 / 0.43 / 0.43, zh 0.37 / 0.47 / 0.47 / 0.49. The second sentence often holds what the
# first lacks; 0.06 keeps most of that and still leaves out a sentence that is only about the same
# thing ("How hot for oolong?": where high-mountain oolong grows). With the best sentence for each part
# of a question that asks two things too, en 0.388 -> 0.449, zh 0.438 -> 0.438 (the whole set).
ANSWER_SENTENCES = 2
ANSWER_MARGIN = 0.06
# Weight of the question's own words beside the embedding cosine when ranking sentences (e5's cosines
# sit in a narrow band, so a small weight matters): best of 0, 0.05, 0.1, 0.2 on the evaluation set.
WORD_WEIGHT = 0.05
# How much closer than the relevance floor (RAGREEL_MIN_RELEVANCE) a sentence must be to the question to
# be added as an answer sentence. Measured on the evaluation set's top two answer sentences with e5
# (one-off, cross-lingual search on): none with a key fact sat below floor + 0.034 (en 0.814, zh 0.850),
# and the English sentences padding answers to cross-lingual questions (Alice in Wonderland for a
# question about 桃花源記) sat below floor + 0.01.
ANSWER_SENTENCE_MARGIN = 0.02

_JSON_ONLY = {
    "en": "That reply was not the JSON script. Reply with JSON only, in the shape asked for, in English.",
    "zh": "這個回覆不是 JSON 腳本。請只回覆要求格式的 JSON，旁白用繁體中文。",
}


def answer_question(
    question: str,
    passages: list[Passage],
    language: Language | str | None = None,
    settings: Settings | None = None,
    script: Script | None = None,
) -> Answer:
    """Answer ``question`` from ``passages`` (best first), in ``language`` (default: the question's).

    With ``script`` no model is asked: its scenes are checked against ``passages`` and an
    InputError names the first scene that fails. Raises InputError for an empty question or an
    unsupported language, PermanentError when the LLM server refuses for good (bad key, unknown
    model, prompt too long) and TransientError when it fails in a way worth retrying.
    """
    settings = settings or get_settings()
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty", stage=STAGE, hint="ask a question in words")
    question = question.strip()
    language = parse_language(language, stage=STAGE) if language else detect_language(question)
    backend, model, server = describe_backend(settings)
    if script is not None:  # written (or reviewed) by a person: no model answered
        scenes, checks = _checked_edit(script, question, passages, language)
        return _assemble(question, language, scenes, checks, passages, "script", "edited", "")

    floor = settings.relevance_floor(language)
    relevant = [p for p in passages if relevance(p) >= floor]
    if not relevant:
        log.info(
            "No passage scores %.3f or more for %r: answering that the knowledge base doesn't cover it",
            floor,
            question[:60],
        )
        return Answer(
            question=question,
            language=language,
            text=not_covered_message(language),
            covered=False,
            backend=backend,
            model=model,
            server=server,
        )

    started = time.monotonic()
    endpoint = resolve_endpoint(settings)
    target = LengthTarget(language, settings.answer_min_seconds, settings.answer_max_seconds)
    writer = _ScriptWriter(endpoint, settings, script_messages(question, relevant, language, target), target)
    scenes, checks = writer.write(question, relevant, language)
    scenes = _each_said_once(scenes, checks)
    scenes = _with_answer_sentences(scenes, question, relevant, language, settings, checks)
    scenes = _topped_up(scenes, question, relevant, language, settings, checks)
    scenes = _within_length(scenes, language, settings.answer_max_seconds, checks)
    answer = _assemble(
        question, language, scenes, checks, relevant, writer.backend, writer.model, writer.server
    )
    origins = [s.origin for s in answer.scenes]
    log.info(
        "Answered in %s: %d scenes (%d as written, %d rewritten, %d extractive), about %.0f s spoken, "
        "%d sources, by %s model %s in %.1f s",
        language,
        len(origins),
        origins.count("model"),
        origins.count("revised"),
        origins.count("extractive"),
        spoken_seconds(answer.text, language),
        len(answer.citations),
        writer.backend,
        writer.model,
        time.monotonic() - started,
    )
    return answer


def relevance(passage: Passage) -> float:
    """What RAGREEL_MIN_RELEVANCE is compared with: the cosine to the question where retrieval
    measured it (fused scores only rank), else the score."""
    return passage.similarity if passage.similarity is not None else passage.score


def script_max_tokens(target: LengthTarget) -> int:
    """The token limit of a script request: quotes and narration both count, plus the JSON around them."""
    return 2 * target.max_tokens + 160


class _ScriptWriter:
    """The conversation with the model for one answer: the script, and at most one more request for
    a reply that was not a script or for the scenes that failed their check."""

    def __init__(self, endpoint: Endpoint, settings: Settings, messages: list[dict], target: LengthTarget):
        self.endpoint, self.settings, self.messages = endpoint, settings, messages
        self.max_tokens = script_max_tokens(target)
        self.backend, self.model, self.server = (
            endpoint.backend,
            endpoint.model or "",
            redact(endpoint.base_url),
        )

    def ask(self, chat: list[dict], temperature: float) -> ChatReply:
        reply = complete_chat(
            chat,
            max_tokens=self.max_tokens,
            temperature=temperature,
            settings=self.settings,
            endpoint=self.endpoint,
            json_schema=script_schema(),
        )
        self.backend, self.model, self.server = reply.backend, reply.model, reply.server
        return reply

    def write(self, question: str, passages: list[Passage], language: str) -> tuple[list[Scene], list[str]]:
        checks: list[str] = []
        reply = self.ask(self.messages, temperature=0.2)
        drafts = parse_script(reply.text, language)
        if drafts is None:
            log.warning("The %s reply was not a script (%r); asking again", self.model, reply.text[:80])
            chat = [*self.messages, _said(reply), {"role": "user", "content": _JSON_ONLY[language]}]
            reply = self.ask(chat, temperature=0.0)
            drafts = parse_script(reply.text, language)
        if drafts is None:
            checks.append("the model gave no readable script twice: the passages' own sentences are narrated")
            return self.from_passages(question, passages, language), checks

        results = [check_scene(d, passages, question, language, first=i == 0) for i, d in enumerate(drafts)]
        failing = [i for i, r in enumerate(results) if not r.passed]
        revised: list[Scene] = []
        if failing:
            for i in failing:
                log.info("Scene %d failed its check: %s", i + 1, "; ".join(results[i].reasons))
            chat = [
                *self.messages,
                _said(reply),
                revision_message([(i + 1, results[i].reasons) for i in failing], language),
            ]
            revised = parse_script(self.ask(chat, temperature=0.2).text, language) or []
        scenes = []
        for position, result in enumerate(results, start=1):
            if result.passed:
                scenes.append(result.scene)
                checks.append(f"scene {position}: passed")
                continue
            index = failing.index(position - 1)
            second = (
                check_scene(revised[index], passages, question, language, first=position == 1)
                if index < len(revised)
                else None
            )
            scenes.append(_after_revision(position, result, second, passages, language, checks))
        kept = [s for s in scenes if s is not None]
        if not kept:
            checks.append("no scene survived its check: the passages' own sentences are narrated")
            kept = self.from_passages(question, passages, language)
        return kept, checks

    def from_passages(self, question: str, passages: list[Passage], language: str) -> list[Scene]:
        scenes = best_sentences(question, passages, language)
        if not scenes:
            raise TransientError(
                f"model {self.model} at {self.server} gave no usable script, and no passage sentence "
                f"in {language} shares words with the question",
                stage=STAGE,
                hint="try again, or configure a stronger model (RAGREEL_LLM_MODEL)",
            )
        return scenes


def _after_revision(
    position: int,
    first: SceneCheck,
    second: SceneCheck | None,
    passages: list[Passage],
    language: str,
    checks: list[str],
) -> Scene | None:
    """What a scene that failed its check becomes: its rewrite if that passes; else a version that
    is right but leaves something out, unless it drops facts its quote can say instead; else its
    quoted evidence narrated (extractive); else nothing."""
    reasons = "; ".join(first.reasons)
    if second is not None and second.passed:
        checks.append(f"scene {position}: rewritten ({reasons})")
        return second.scene.model_copy(update={"origin": "revised"})
    extractive = extractive_scene(first.scene, passages, language)
    if second is not None:
        extractive = extractive or extractive_scene(second.scene, passages, language)
    still = "; ".join(second.reasons) if second is not None else "no rewrite came back"
    sound = next((c for c in (second, first) if c is not None and c.sound), None)
    if sound is not None and (extractive is None or not sound.left_out):
        checks.append(f"scene {position}: kept, though {'; '.join(sound.reasons)}")
        log.info("Scene %d kept as it is right: %s", position, "; ".join(sound.reasons))
        return sound.scene.model_copy(update={"origin": "revised" if sound is second else "model"})
    if extractive is None:
        checks.append(f"scene {position}: dropped ({reasons}; then {still})")
        log.warning("Scene %d dropped: %s; then %s", position, reasons, still)
    else:
        checks.append(f"scene {position}: replaced by its quoted evidence ({reasons}; then {still})")
        log.warning("Scene %d narrated from its quote: %s; then %s", position, reasons, still)
    return extractive


def _said(reply: ChatReply) -> dict[str, str]:
    return {"role": "assistant", "content": reply.text}


def _checked_edit(
    script: Script, question: str, passages: list[Passage], language: str
) -> tuple[list[Scene], list[str]]:
    """A person's script, checked like the model's: the first failing scene is an InputError."""
    if not passages:
        raise InputError(
            "an edited script needs the passages it quotes, and retrieval found none",
            stage=STAGE,
            hint="check that the knowledge base is the one the script was written from",
        )
    scenes = []
    for position, scene in enumerate(script.scenes, start=1):
        result = check_scene(scene, passages, question, language)
        if not result.sound:  # a person may leave out what they choose
            raise InputError(
                f"scene {position} of the script: {'; '.join(result.problems)}",
                stage=STAGE,
                hint="quote sentences of the retrieved passages word for word, and narrate only what "
                "they say (every number in a narration must be in its quote)",
            )
        scenes.append(result.scene.model_copy(update={"origin": "edited"}))
    return scenes, [f"scene {n}: edited by hand, passed" for n in range(1, len(scenes) + 1)]


def _topped_up(
    scenes: list[Scene],
    question: str,
    passages: list[Passage],
    language: str,
    settings: Settings,
    checks: list[str],
) -> list[Scene]:
    """A script far under RAGREEL_ANSWER_MIN_SECONDS gets the passage sentences that share most with
    the question and are not yet quoted (small models write one short scene when asked for three):
    extractive, so right by construction, and no further request. Only sentences as close to the
    question as an answer sentence must be (see :data:`ANSWER_SENTENCE_MARGIN`): a short answer is
    better than one padded from a passage beside the point."""
    min_seconds = settings.answer_min_seconds
    spoken = sum(spoken_seconds(s.narration, language) for s in scenes)
    if spoken >= _TOO_SHORT * min_seconds:
        return scenes
    quoted = " ".join(e.quote for s in scenes for e in s.evidence)
    # What the cited passages say next to the quotes first, then what shares most with the question.
    cited = dict.fromkeys(e.passage for s in scenes for e in s.evidence)
    candidates = [s for n in cited for s in sentence_scenes(passages, n, language)]
    candidates += best_sentences(question, passages, language, count=6)
    extra = [s for s in candidates if s.narration not in quoted]
    if extra:
        cosines = _cosines_to([question], [s.narration for s in extra], settings)[0]
        floor = settings.relevance_floor(language) + ANSWER_SENTENCE_MARGIN
        extra = [s for s, cosine in zip(extra, cosines, strict=True) if cosine >= floor]
    added: list[Scene] = []
    for scene in extra[:MAX_TOP_UP]:
        if spoken >= _TOO_SHORT * min_seconds:
            break
        added.append(scene)
        spoken += spoken_seconds(scene.narration, language)
    if added:
        checks.append(f"{len(added)} scene(s) added from the passages' own sentences: the script was short")
    return scenes + added


def answer_sentences(
    question: str, passages: list[Passage], language: str, settings: Settings
) -> list[Scene]:
    """The passage sentences most likely to hold the answer (see :data:`ANSWER_SENTENCES`), as
    extractive scenes: ranked by the embedding model's cosine to the question, plus a little for
    the question's own words; none further from the question than ANSWER_SENTENCE_MARGIN above the
    relevance floor. A question that asks two things ("How many bits…, and how do I create one…?")
    also gets the best sentence for each (see :func:`question_parts`): the best for the whole
    question often answers only one of them."""
    import numpy as np

    candidates = candidate_sentences(passages, language)
    if not candidates:
        return []
    asked = [question, *question_parts(question)]
    read = [with_its_section(sentence, passages[number - 1]) for number, sentence in candidates]
    cosines = _cosines_to(asked, read, settings)
    floor = settings.relevance_floor(language) + ANSWER_SENTENCE_MARGIN
    best: list[int] = []
    for number, (text, part_cosines) in enumerate(zip(asked, cosines, strict=True)):
        words = np.asarray([word_share(text, sentence) for sentence in read])
        scores = part_cosines + WORD_WEIGHT * words / max(words.max(), 1e-9)
        order = np.argsort(-scores, kind="stable")[: ANSWER_SENTENCES if number == 0 else 1]
        best += [
            int(i)
            for i in order
            # A short part ("how many years?") is close to many sentences: each must be close to the
            # whole question too.
            if scores[i] >= scores[order[0]] - ANSWER_MARGIN
            and min(part_cosines[i], cosines[0][i]) >= floor
            and i not in best
        ]
    return [
        Scene(
            narration=readable(candidates[i][1]),
            evidence=[Evidence(passage=candidates[i][0], quote=candidates[i][1])],
            origin="extractive",
        )
        for i in best
    ]


def _cosines_to(questions: list[str], sentences: list[str], settings: Settings) -> np.ndarray:
    """The embedding model's cosine of each sentence (columns) to each question (rows)."""
    import numpy as np

    from ragreel.kb.embedding import get_embedder

    embedder = get_embedder(settings.embedding_model)
    asked = np.asarray(embedder.queries(questions))
    return asked @ np.asarray(embedder.documents(sentences)).T


def _with_answer_sentences(
    scenes: list[Scene],
    question: str,
    passages: list[Passage],
    language: str,
    settings: Settings,
    checks: list[str],
) -> list[Scene]:
    """The scenes with, after the first, each answer sentence (see :func:`answer_sentences`) whose
    numbers, terms or words no scene says yet: extractive, so right by construction. A sentence a
    scene quotes counts as said when that scene says some of it (see :func:`_says_some_of`)."""
    said = " ".join(scene.narration for scene in scenes)
    quoted = {
        normalise(e.quote)
        for scene in scenes
        for e in scene.evidence
        if _says_some_of(scene.narration, e.quote)
    }
    added = []
    for scene in answer_sentences(question, passages, language, settings):
        quote = scene.evidence[0].quote
        if (
            normalise(quote) in quoted
            or says(said, quote)
            or any(repeats(scene.narration, s.narration) for s in scenes)
        ):
            continue
        added.append(scene)
        said += " " + scene.narration
        checks.append(f"answer sentence added, no scene said it: {scene.narration!r}")
    return scenes[:1] + added + scenes[1:]


def _says_some_of(narration: str, quote: str) -> bool:
    """Whether a scene's narration says something of a quote it rests on: one of its numbers, which
    its check allows ("特休最多加到 30 天" on "…加至三十日為止"), or :data:`MIN_SUPPORT` of the quote's
    words (Chinese: its characters, see :func:`unsupported`). A small model often quotes the answer
    sentence and narrates another ("The multisort function takes…" on "…then sort again using
    grade"): that quote is not said."""
    return bool(numbers_in(narration) & numbers_in(quote, lenient=True)) or not unsupported(quote, narration)


def _each_said_once(scenes: list[Scene], checks: list[str]) -> list[Scene]:
    """The scenes without those that only repeat an earlier one in other words (small models
    often state the answer twice); the video would show the same slide twice."""
    kept: list[Scene] = []
    for scene in scenes:
        if any(repeats(scene.narration, earlier.narration) for earlier in kept):
            checks.append(f"scene left out, it repeats an earlier one: {scene.narration!r}")
            continue
        kept.append(scene)
    return kept


def _within_length(scenes: list[Scene], language: str, max_seconds: float, checks: list[str]) -> list[Scene]:
    """Whole scenes from the start while they fit in ``max_seconds`` of speech (at least the first)."""
    kept: list[Scene] = []
    total = 0.0
    for scene in scenes:
        seconds = spoken_seconds(scene.narration, language)
        if kept and total + seconds > max_seconds:
            checks.append(f"{len(scenes) - len(kept)} scene(s) left out: over RAGREEL_ANSWER_MAX_SECONDS")
            break
        kept.append(scene)
        total += seconds
    return kept


def _assemble(
    question: str,
    language: str,
    scenes: list[Scene],
    checks: list[str],
    passages: list[Passage],
    backend: str,
    model: str,
    server: str,
) -> Answer:
    """The answer from its scenes: sources numbered [1], [2] in order of first use, each scene's
    evidence pointing at them, and the narration joined with its markers as ``text``."""
    order: list[int] = []
    for scene in scenes:
        for item in scene.evidence:
            if item.passage not in order:
                order.append(item.passage)
    number = {passage: n for n, passage in enumerate(order, start=1)}
    numbered = []
    spoken = []
    for scene in scenes:
        evidence = [Evidence(passage=number[e.passage], quote=e.quote) for e in scene.evidence]
        narration = scene.narration.replace("`", "")
        numbered.append(scene.model_copy(update={"narration": narration, "evidence": evidence}))
        spoken.append(_with_markers(narration, sorted({e.passage for e in evidence}), language))
    citations = [
        Citation(
            number=n,
            source=passages[p - 1].source,
            title=passages[p - 1].title,
            heading=passages[p - 1].heading,
            text=passages[p - 1].text,
            **passages[p - 1].model_dump(include=set(SourceMedia.model_fields)),
        )
        for p, n in number.items()
    ]
    return Answer(
        question=question,
        language=language,
        text=(" " if language == "en" else "").join(spoken),
        citations=citations,
        scenes=numbered,
        checks=checks,
        covered=True,
        backend=backend,
        model=model,
        server=server,
    )


def _with_markers(narration: str, numbers: list[int], language: str) -> str:
    """``narration`` with [n] markers before its final end mark."""
    markers = "".join(f"[{n}]" for n in numbers)
    match = re.search(r"([.!?。！？…]['\"”’」』)]*)$", narration)
    body, end = (narration[: match.start()], match.group(1)) if match else (narration, "")
    if not end:
        end = "。" if language == "zh" else "."
    return f"{body.rstrip()}{' ' if language == 'en' else ''}{markers}{end}"


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
            str(
                settings.min_relevance
            ),  # unset: the floor follows the embedding model, which the passages carry
        ]
    )


@stage_task(
    name="generate",
    timeout_seconds=900,
    settings_key=generate_cache_key,
    run_name=lambda p: f"answer {one_line(p['question'])!r} in {p['language']}",
)
def generate_stage(
    question: str, passages: list[Passage], language: Language, script: Script | None = None
) -> Answer:
    return answer_question(question, passages, language, script=script)
