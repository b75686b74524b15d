"""Small result models that stages pass to each other (and Prefect caches).

They carry paths, ids and text, never clients, models or bytes, so that Prefect can hash
task inputs and persist results.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BaseModel, Field, ValidationError, ValidationInfo, field_validator

from ragreel.errors import InputError
from ragreel.text import detect_language, has_kana, strip_control

# --- vocabularies: each defined once, used by settings, CLIs, batch validation, voices, layout ---

Language = Literal["en", "zh"]  # Chinese is written in Traditional characters
LANGUAGES: tuple[Language, ...] = get_args(Language)
VoiceKind = Literal["auto", "bark", "piper", "kokoro", "espeak"]
VOICE_KINDS: tuple[VoiceKind, ...] = get_args(VoiceKind)
Aspect = Literal["landscape", "portrait", "square"]
ASPECTS: tuple[Aspect, ...] = get_args(Aspect)
Theme = Literal["dark", "light"]  # the video's colours (ragreel.video.frames.PALETTES)
THEMES: tuple[Theme, ...] = get_args(Theme)
MAX_TOP_K = 50
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K)]  # passages retrieved per question
DEFAULT_MAX_QUESTION_CHARS = 2000
Stage = Literal["retrieve", "generate", "speak", "render"]  # the generate flow's stages, in order
STAGES: tuple[Stage, ...] = get_args(Stage)
# The deployments prefect.yaml declares (flow name/deployment name), which the batch and the API run.
GENERATE_DEPLOYMENT = "generate-video/ragreel-generate"
BATCH_DEPLOYMENT = "batch-videos/ragreel-batch"


def parse_language(tag: str, stage: str = "ragreel") -> Language:
    """'en' or 'zh' from a language tag: 'en-US', 'zh-TW', 'zh-Hant', 'zh_tw', 'cmn'."""
    primary = str(tag).strip().lower().replace("_", "-").split("-", 1)[0]
    if primary == "cmn":
        primary = "zh"
    if primary in LANGUAGES:
        return primary
    raise InputError(
        f"language {tag!r} is not supported: ragreel speaks English (en) and Chinese (zh)",
        stage=stage,
        hint="pass 'en' or 'zh', or leave it out to follow the question",
    )


def parse_voice(text: str) -> tuple[VoiceKind, str | None]:
    """``kind[:variant]`` (``auto``, ``kokoro:jf_alpha``, ``piper:/voices/x.onnx``) as (kind, variant)."""
    kind, _, variant = str(text).strip().partition(":")
    kind = kind.strip().lower()
    if kind not in VOICE_KINDS:
        raise InputError(
            f"unknown voice {text!r}",
            stage="speak",
            hint=f"use one of {', '.join(VOICE_KINDS)}, optionally with a variant, e.g. kokoro:jf_alpha",
        )
    return kind, variant.strip() or None


def _checked_voice(text: str) -> str:
    try:
        kind, variant = parse_voice(text)
    except InputError as exc:
        raise ValueError(f"{exc.message} ({exc.hint})") from None
    return f"{kind}:{variant}" if variant else kind


VoiceSpec = Annotated[str, AfterValidator(_checked_voice)]


def check_question(
    question: Any, max_chars: int = DEFAULT_MAX_QUESTION_CHARS, stage: str = "retrieve"
) -> str:
    """The question stripped, or an InputError that says what is wrong with it."""
    if isinstance(question, str) and any("\ud800" <= ch <= "\udfff" for ch in question):
        raise InputError(
            "the question holds bytes that are not valid UTF-8 text",
            stage=stage,
            hint="save or type the question as UTF-8",
        )
    if isinstance(question, str):
        question = strip_control(question)
    if not isinstance(question, str) or not question.strip():
        raise InputError("the question is empty", stage=stage, hint="ask a question in words")
    question = question.strip()
    if not any(ch.isalnum() for ch in question):
        # Emoji or punctuation alone: nothing to search for, and embeddings place it anywhere.
        raise InputError(
            "the question has no words, only symbols or emoji", stage=stage, hint="ask a question in words"
        )
    if len(question) > max_chars:
        raise InputError(
            f"the question is {len(question):,} characters long; the limit is {max_chars:,}",
            stage=stage,
            hint="shorten it, or raise RAGREEL_MAX_QUESTION_CHARS",
        )
    return question


# --- what the generate flow is asked ------------------------------------------------------------

# The stage that an invalid parameter belongs to, for the error that names it.
_PARAMETER_STAGE = {
    "question": "retrieve",
    "top_k": "retrieve",
    "language": "generate",
    "voice": "speak",
    "aspect": "render",
    "title": "render",
    "script": "generate",
}


def error_message(error: dict) -> str:
    """A pydantic error in words, with where inside the value it is (``script: scenes.0.evidence: ...``)."""
    message = error["msg"].removeprefix("Value error, ")
    inner = ".".join(str(part) for part in error["loc"][1:])
    return f"{inner}: {message}" if inner else message


SceneOrigin = Literal["model", "revised", "extractive", "edited"]


class Evidence(BaseModel):
    """What a scene rests on: a sentence exactly as one of the answer's sources has it."""

    passage: int = Field(ge=1, description="The [n] of the source in the answer's citations.")
    quote: str = Field(min_length=1, description="The passage's own words, sentence by sentence.")


class Scene(BaseModel):
    """One step of the answer: a few narrated sentences, their on-screen headline and evidence.

    ``narration`` is what the subtitle shows, identifiers and code as written; the voice reads a
    spoken form of it (see ragreel.speech.prepare). ``origin`` says how the scene passed the
    evidence check: as the model wrote it, rewritten once on being told what was wrong, replaced
    by its quoted evidence (extractive), or given by a person (an edited script).
    """

    narration: str = Field(min_length=1)
    key_point: str = ""
    evidence: list[Evidence] = Field(min_length=1)
    origin: SceneOrigin = "model"


class Script(BaseModel):
    """Scenes in order: what ``--script`` takes and what a review manifest carries per row."""

    scenes: list[Scene] = Field(min_length=1)


class VideoRequest(BaseModel):
    """The generate flow's parameters, checked once at its entrance (and per row of a batch).

    Validate with ``context={"max_question_chars": n}`` to apply a limit other than the default.
    """

    question: str
    language: Language | None = None
    top_k: TopK | None = None
    voice: VoiceSpec = "auto"
    aspect: Aspect | None = None
    title: str | None = None
    script: Script | None = Field(
        None, description="A reviewed script to render instead of asking the model (JSON text or object)."
    )

    @field_validator("question", mode="before")
    @classmethod
    def _question(cls, value: Any, info: ValidationInfo) -> str:
        limit = (info.context or {}).get("max_question_chars", DEFAULT_MAX_QUESTION_CHARS)
        try:
            return check_question(" ".join(value.split()) if isinstance(value, str) else value, limit)
        except InputError as exc:
            raise ValueError(exc.message) from None

    @field_validator("language", mode="before")
    @classmethod
    def _language(cls, value: Any) -> Language | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        try:
            return parse_language(value)
        except InputError as exc:
            raise ValueError(f"{value!r} is not one of {', '.join(LANGUAGES)}") from exc

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: Any) -> str | None:
        return " ".join(value.split()) or None if isinstance(value, str) else value

    @field_validator("script", mode="before")
    @classmethod
    def _script(cls, value: Any) -> Any:
        # A spreadsheet cell or a form field holds the script as JSON text; a result.json works too.
        if isinstance(value, str):
            if not value.strip():
                return None
            try:
                return json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"the script is not valid JSON ({exc.msg} at character {exc.pos})") from None
        return value

    def answer_language(self) -> Language:
        """The language asked for, else the question's; Japanese is refused rather than answered in Chinese."""
        if self.language:
            return self.language
        if has_kana(self.question):
            raise InputError(
                "the question looks Japanese; ragreel answers in English or Chinese",
                stage="generate",
                hint="ask in English or Chinese, or pass --language zh (or en) to answer it anyway",
            )
        return detect_language(self.question)

    @classmethod
    def checked(cls, max_question_chars: int = DEFAULT_MAX_QUESTION_CHARS, **parameters: Any) -> VideoRequest:
        """Validated parameters, or an InputError naming the parameter, its stage and the problem."""
        parameters["question"] = check_question(
            parameters.get("question"), max_question_chars
        )  # with its hint
        try:
            return cls.model_validate(parameters, context={"max_question_chars": max_question_chars})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = str(error["loc"][0]) if error["loc"] else "parameters"
            message = error_message(error)
            raise InputError(
                message if field == "question" else f"{field}: {message}",
                stage=_PARAMETER_STAGE.get(field, "generate-video"),
            ) from None


class Picture(BaseModel):
    """A picture from a source document, kept in the knowledge base's folder at ingest."""

    file: str = Field(description="Path inside the knowledge-base folder, e.g. 'pictures/3f2a….png'.")
    caption: str = ""
    width: int
    height: int


class SourceMedia(BaseModel):
    """What a passage can show on a slide besides its text: its PDF page and its pictures."""

    page: int = Field(0, description="1-based page of a PDF source; 0 for other documents.")
    pdf: str = Field("", description="A PDF source's copy inside the knowledge-base folder, for its page.")
    pictures: list[Picture] = Field(default_factory=list, description="Pictures the passage's text shows.")


class Passage(SourceMedia):
    """One retrieved chunk of the knowledge base."""

    chunk_id: str
    source: str = Field(description="File path relative to the ingested root.")
    title: str
    heading: str = Field("", description="Heading path inside the document, e.g. 'Brewing > Water'.")
    text: str
    language: Language
    score: float = Field(description="Fused relevance score; higher is better.")
    similarity: float | None = Field(
        None, description="Cosine between the question's and the passage's vectors (-1..1)."
    )
    rank: int = Field(description="1-based position in the result list.")


class Citation(SourceMedia):
    """A passage the answer cites as [number]."""

    number: int
    source: str
    title: str
    heading: str = ""
    text: str


class Answer(BaseModel):
    question: str
    language: Language
    text: str = Field(description="The scenes' narration joined, with [n] citation markers.")
    citations: list[Citation] = Field(default_factory=list)
    scenes: list[Scene] = Field(default_factory=list)
    checks: list[str] = Field(
        default_factory=list, description="What the evidence check found and did, scene by scene."
    )
    covered: bool = Field(True, description="False when the knowledge base has nothing relevant.")
    backend: str = Field(
        description="'openai' (a configured server), 'local' (built-in llama.cpp) or 'script' (an edited script)."
    )
    model: str
    server: str = Field(description="Base URL of the server that answered (never a key).")


class TimedWord(BaseModel):
    """One word (English) or character (Chinese) of a subtitle and when the narration says it."""

    text: str = Field(description="As the subtitle shows it, with any punctuation that follows it.")
    start: float
    end: float


class TimedSentence(BaseModel):
    text: str = Field(description="Exactly as the subtitle shows it.")
    start: float
    end: float
    words: list[TimedWord] = Field(
        default_factory=list,
        description="The sentence's words in order, timed from the audio; joined they are its text.",
    )

    def shared(self, weights: list[int]) -> list[tuple[float, float]]:
        """The sentence's time cut into consecutive spans in proportion to ``weights``."""
        total, elapsed, spans = max(1, sum(weights)), 0, []
        span = max(0.0, self.end - self.start)
        for weight in weights:
            start = self.start + span * elapsed / total
            elapsed += weight
            spans.append((start, self.start + span * elapsed / total))
        return spans


class Narration(BaseModel):
    wav_path: str
    sample_rate: int
    duration: float
    language: Language
    voice: str = Field(description="Which voice spoke, e.g. 'piper:joe-us' or 'kokoro:jf_gongitsune'.")
    sentences: list[TimedSentence]


class Source(BaseModel):
    """A document listed on the closing card."""

    title: str
    source: str


class Slide(BaseModel):
    """What the picture shows while one scene is narrated: its headline and the sentence it rests on,
    with the document (and section) that sentence comes from."""

    key_point: str = ""
    narration: str = Field(min_length=1)
    quote: str = ""
    before: str = Field("", description="The passage's sentence before the quote, shown dimmed.")
    after: str = Field("", description="The passage's sentence after the quote, shown dimmed.")
    quote_title: str = ""
    quote_heading: str = ""
    page_pdf: str = Field("", description="A PDF whose page region shows the quote instead of text.")
    page: int = Field(0, description="The 1-based page of ``page_pdf`` the quote is on.")
    picture: str = Field("", description="A picture from the cited passage, shown beside the quote.")
    picture_caption: str = ""


class RenderedVideo(BaseModel):
    mp4_path: str
    srt_path: str
    vtt_path: str
    thumbnail_path: str
    wav_path: str
    duration: float
    width: int
    height: int
    fps: int


class VideoResult(BaseModel):
    """What one run of the generate flow produced."""

    question: str
    language: Language
    answer: str
    covered: bool
    scenes: list[Scene] = Field(default_factory=list)
    checks: list[str] = Field(default_factory=list)
    sources: list[Citation] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    llm: str = Field(description="backend:model that answered, e.g. 'local:qwen2.5-coder-1.5b-instruct'.")
    voice: str | None = None
    output_dir: str
    mp4_path: str | None = None
    wav_path: str | None = None
    srt_path: str | None = None
    vtt_path: str | None = None
    thumbnail_path: str | None = None
    narration_seconds: float | None = None
    video_seconds: float | None = None
    cached_stages: list[str] = Field(default_factory=list, description="Stages served from Prefect's cache.")
    seconds: float = Field(0.0, description="Wall time of the run.")
