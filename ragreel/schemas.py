"""Small result models that stages pass to each other (and Prefect caches).

They carry paths, ids and text, never clients, models or bytes, so that Prefect can hash
task inputs and persist results.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

Language = str  # "en" or "zh" (Chinese is written in Traditional characters)


class Passage(BaseModel):
    """One retrieved chunk of the knowledge base."""

    chunk_id: str
    source: str = Field(description="File path relative to the ingested root.")
    title: str
    heading: str = Field("", description="Heading path inside the document, e.g. 'Brewing > Water'.")
    text: str
    language: Language
    score: float = Field(description="Fused relevance score; higher is better.")
    rank: int = Field(description="1-based position in the result list.")


class Citation(BaseModel):
    """A passage the answer cites as [number]."""

    number: int
    source: str
    title: str
    heading: str = ""
    text: str


class Answer(BaseModel):
    question: str
    language: Language
    text: str = Field(description="The answer as it will be spoken, with [n] citation markers.")
    citations: list[Citation] = Field(default_factory=list)
    covered: bool = Field(True, description="False when the knowledge base has nothing relevant.")
    backend: str = Field(description="'openai' (a configured server) or 'local' (built-in llama.cpp).")
    model: str
    server: str = Field(description="Base URL of the server that answered (never a key).")


class TimedSentence(BaseModel):
    text: str = Field(description="Exactly as the subtitle shows it.")
    start: float
    end: float


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


class RenderedVideo(BaseModel):
    mp4_path: str
    srt_path: str
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
    sources: list[Citation] = Field(default_factory=list)
    passages: list[Passage] = Field(default_factory=list)
    llm: str = Field(description="backend:model that answered, e.g. 'local:qwen2.5-coder-1.5b-instruct'.")
    voice: str | None = None
    output_dir: str
    mp4_path: str | None = None
    wav_path: str | None = None
    srt_path: str | None = None
    thumbnail_path: str | None = None
    narration_seconds: float | None = None
    video_seconds: float | None = None
    cached_stages: list[str] = Field(default_factory=list, description="Stages served from Prefect's cache.")
    seconds: float = Field(0.0, description="Wall time of the run.")
