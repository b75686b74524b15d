"""Question in, narrated and subtitled video out: retrieve -> generate -> speak -> render.

    python -m flows.generate "What water temperature should I use for oolong tea?"
    python -m flows.generate "高山烏龍茶要種在多高的地方？" --aspect portrait
    python -m flows.generate "..." --no-video      # answer and sources only, for review
    python -m flows.generate "..." --json          # the result object as JSON on stdout

Each stage is a Prefect task with retries (exponential backoff with jitter, never for
permanent errors such as a bad question or a rejected API key), a timeout, and a cache keyed
on its inputs, its code and the settings that shape its output: asking again is served
from cache, and changing a render setting re-renders without re-asking the LLM or
re-speaking. A cached result whose files have gone is recomputed.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import importlib.util
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import INPUTS, TASK_SOURCE
from prefect.tasks import exponential_backoff

from ragreel.errors import RagreelError, is_retryable
from ragreel.schemas import Answer, Narration, Passage, RenderedVideo, Source, VideoResult
from ragreel.settings import Aspect, Settings, get_settings
from ragreel.text import detect_language
from tasks.answer import answer_question, normalise_language
from tasks.render import render_video
from tasks.retrieve import knowledge_base_version, retrieve_passages, validate_question
from tasks.speak import narrate

STAGES = ("retrieve", "generate", "speak", "render")


def _retry_unless_permanent(task, task_run, state) -> bool:
    """Retry transient faults; a permanent error (bad input, rejected key) fails at once."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the state's own exception, re-raised to inspect it
        return is_retryable(exc)
    return False


STAGE_TASK = dict(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_unless_permanent,
    cache_policy=INPUTS + TASK_SOURCE,
    persist_result=True,
)


# --- the stages, as cached tasks --------------------------------------------------------------
# Every input that changes a stage's output is a parameter, so that it is part of the cache key;
# the "*_signature" parameters carry the settings that the stage function reads itself.

@task(name="retrieve", timeout_seconds=300, **STAGE_TASK)
def retrieve_stage(question: str, top_k: int, kb_version: str) -> list[Passage]:
    return retrieve_passages(question, top_k)


@task(name="generate", timeout_seconds=900, **STAGE_TASK)
def generate_stage(question: str, passages: list[Passage], language: str, llm_signature: str) -> Answer:
    return answer_question(question, passages, language)


@task(name="speak", timeout_seconds=1800, **STAGE_TASK)
def speak_stage(text: str, language: str, voice: str, voice_signature: str, wav_path: str) -> Narration:
    return narrate(text, language, Path(wav_path), voice=voice)


@task(name="render", timeout_seconds=1800, **STAGE_TASK)
def render_stage(narration: Narration, question: str, sources: list[Source], out_dir: str, language: str,
                 stem: str, aspect: Aspect, render_signature: str) -> RenderedVideo:
    settings = get_settings(aspect=aspect)
    return render_video(narration, question, sources, Path(out_dir), language, stem=stem, settings=settings)


# --- what goes into cache keys ----------------------------------------------------------------

def _short_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False).encode()).hexdigest()[:8]


@functools.cache
def code_version(*modules: str) -> str:
    """A hash of the source of the modules (and packages) a stage runs: new code, new cache key.

    Prefect's TASK_SOURCE covers only the task function itself, not the stage code it calls.
    """
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        files = (sorted(Path(spec.origin).parent.rglob("*.py")) if spec.submodule_search_locations
                 else [Path(spec.origin)])
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def _file_signature(path: Path | None) -> str:
    if path is None:
        return ""
    path = Path(path).expanduser()
    return f"{path}:{path.stat().st_mtime_ns}" if path.exists() else str(path)


def llm_signature(settings: Settings) -> str:
    from ragreel.llm.client import describe_backend

    backend, model, server = describe_backend(settings)
    # A local server's port changes from process to process; it is the same model.
    where = "" if backend == "local" else server
    return "|".join([code_version("tasks.answer", "ragreel.llm"), backend, model, where,
                     _file_signature(settings.llm_local_model),
                     str(settings.answer_min_seconds), str(settings.answer_max_seconds),
                     str(settings.min_relevance)])


def voice_signature(settings: Settings, language: str, voice: str) -> str:
    chosen = voice if voice != "auto" else (settings.voice_zh if language == "zh" else settings.voice_en)
    return "|".join([code_version("tasks.speak", "ragreel.speech"), chosen, str(settings.bark_model),
                     _file_signature(settings.piper_voice),
                     str(settings.sample_rate), str(settings.sentence_pause_s)])


def render_signature(settings: Settings) -> str:
    return "|".join([code_version("tasks.render", "ragreel.video"), settings.aspect, str(settings.fps),
                     _file_signature(settings.background_image),
                     _file_signature(settings.font_path), str(settings.title_seconds),
                     str(settings.sources_seconds)])


# --- helpers ----------------------------------------------------------------------------------

def output_folder(question: str, language: str, settings: Settings) -> Path:
    """RAGREEL_HOME/videos/<slug>-<hash>: readable, and distinct for distinct questions."""
    slug = re.sub(r"[^\w]+", "-", question.lower()).strip("-")[:48].strip("-") or "question"
    return settings.videos_dir / f"{slug}-{_short_hash(question, language)}"


def result_storage(settings: Settings) -> str:
    """The Prefect storage block (slug) for stage results, from RAGREEL_RESULTS_STORAGE (see README).

    A folder or fsspec URL is saved as a block named after it, since Prefect wants result
    storage persisted server-side, where every worker finds it.
    """
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    value = settings.results_storage or str(settings.home / "results")
    if "://" in value:
        block, kind = RemoteFileSystem(basepath=value), "remote-file-system"
    elif value.startswith(("/", ".", "~")) or value.count("/") != 1:
        value = str(Path(value).expanduser().resolve())
        block, kind = LocalFileSystem(basepath=value), "local-file-system"
    else:
        return value  # already a block slug, such as "s3-bucket/ragreel-results"
    name = f"ragreel-results-{_short_hash(value)}"
    block.save(name, overwrite=True)
    return f"{kind}/{name}"


def _run_stage(stage_task, name: str, storage, outputs: Callable[[Any], list[str]] | None,
               *args) -> tuple[Any, bool]:
    """Run a stage task; returns (result, came_from_cache). A cache hit whose files are gone reruns.

    Errors come out as RagreelError naming the stage, so that the CLI's one-line reason does.
    """
    stage_task = stage_task.with_options(task_run_name=name, result_storage=storage)
    state = stage_task(*args, return_state=True)
    try:
        result = state.result()
    except RagreelError:
        raise
    except Exception as exc:
        raise RagreelError(f"{type(exc).__name__}: {exc}", stage=stage_task.name) from exc
    cached = state.name == "Cached"
    if cached and outputs and not all(Path(p).exists() for p in outputs(result)):
        get_run_logger().warning("%s: cached result's files are gone; computing it again", name)
        result = stage_task.with_options(refresh_cache=True)(*args)
        cached = False
    return result, cached


def public_link(path: str, settings: Settings) -> str:
    """An http(s) link when RAGREEL_PUBLIC_URL serves RAGREEL_HOME, else a file:// link."""
    absolute = Path(path).resolve()
    if settings.public_url:
        try:
            relative = absolute.relative_to(settings.home.resolve())
            return f"{settings.public_url.rstrip('/')}/{quote(relative.as_posix())}"
        except ValueError:
            pass
    return absolute.as_uri()


def _answer_markdown(answer: Answer, passages: list[Passage]) -> str:
    lines = [f"# {answer.question}", "", answer.text, "",
             f"*Answered by {answer.backend}:{answer.model}*", ""]
    if answer.citations:
        lines += ["## Sources", ""]
        for c in answer.citations:
            where = c.source + (f" › {c.heading}" if c.heading else "")
            quoted = "\n".join(f"> {line}" for line in c.text.splitlines() if line.strip())
            lines += [f"**[{c.number}] {c.title}** ({where})", "", quoted, ""]
    elif not answer.covered:
        lines += [f"_The knowledge base does not cover this question ({len(passages)} passages retrieved)._"]
    return "\n".join(lines)


def _write_result(result: VideoResult, folder: Path) -> None:
    """result.json beside the video: what a batch on another host reads back."""
    tmp = folder / "result.json.tmp"
    tmp.write_text(result.model_dump_json(indent=2), encoding="utf-8")
    tmp.replace(folder / "result.json")


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    question = " ".join(str(flow_run.parameters.get("question", "")).split())
    return f"video: {question[:60]}{'…' if len(question) > 60 else ''}"


# --- the flow -------------------------------------------------------------------------------

@flow(name="generate-video", flow_run_name=_flow_run_name, persist_result=True)
def generate_video(
    question: str,
    language: str | None = None,
    top_k: int | None = None,
    voice: str = "auto",
    aspect: Aspect | None = None,
    output_dir: str | None = None,
    video: bool = True,
    title: str | None = None,
) -> VideoResult:
    """Answer ``question`` from the knowledge base and turn the answer into a narrated video.

    ``language`` ('en' or 'zh') defaults to the question's; ``voice`` is auto, bark, piper,
    kokoro or espeak; ``aspect`` landscape, portrait or square; ``video=False`` stops after the
    answer; ``title`` replaces the question on the title card. Outputs, with a ``result.json``,
    go to ``output_dir`` or ``RAGREEL_HOME/videos/<slug>-<hash>/``.
    """
    logger = get_run_logger()
    started = time.perf_counter()
    settings = get_settings(**({"aspect": aspect} if aspect else {}))
    question = validate_question(question, settings)
    language = normalise_language(language) if language else detect_language(question)
    top_k = top_k or settings.top_k
    folder = Path(output_dir) if output_dir else output_folder(question, language, settings)
    folder.mkdir(parents=True, exist_ok=True)
    stages = STAGES if video else STAGES[:2]
    progress = create_progress_artifact(0.0, description=f"Stages done of {len(stages)}")
    cached: list[str] = []

    def done(stage: str, was_cached: bool) -> None:
        if was_cached:
            cached.append(stage)
        number = stages.index(stage) + 1
        update_progress_artifact(progress, 100.0 * number / len(stages))
        logger.info("Stage %d/%d %s done%s", number, len(stages), stage, " (from cache)" if was_cached else "")

    short = question[:40]
    storage = result_storage(settings)
    passages, hit = _run_stage(retrieve_stage, f"retrieve passages for {short!r}", storage, None, question, top_k,
                               f"{knowledge_base_version(settings)}|{code_version('tasks.retrieve', 'ragreel.kb')}")
    done("retrieve", hit)
    create_table_artifact(
        [{"rank": p.rank, "score": p.score, "source": p.source, "title": p.title, "heading": p.heading,
          "text": p.text[:300]} for p in passages],
        key="retrieved-passages", description=f"Passages retrieved for: {question[:100]}",
    )

    answer, hit = _run_stage(generate_stage, f"answer {short!r} in {language}", storage, None,
                             question, passages, language, llm_signature(settings))
    done("generate", hit)
    create_markdown_artifact(_answer_markdown(answer, passages), key="answer",
                             description=f"Answer and sources for: {question[:100]}")
    result = VideoResult(
        question=question, language=language, answer=answer.text, covered=answer.covered,
        sources=answer.citations, passages=passages, llm=f"{answer.backend}:{answer.model}",
        output_dir=str(folder), cached_stages=cached,
    )
    if not video:
        result.seconds = round(time.perf_counter() - started, 2)
        _write_result(result, folder)
        return result

    wav_path = folder / f"narration-{_short_hash(voice_signature(settings, language, voice), answer.text)}.wav"
    narration, hit = _run_stage(speak_stage, f"speak {len(answer.text)} characters in {language}", storage,
                                lambda n: [n.wav_path], answer.text, language, voice,
                                voice_signature(settings, language, voice), str(wav_path))
    done("speak", hit)

    sources = list({(c.title, c.source): Source(title=c.title, source=c.source) for c in answer.citations}.values())
    stem = "video" if settings.aspect == "landscape" else f"video-{settings.aspect}"
    rendered, hit = _run_stage(
        render_stage, f"render {settings.aspect} video", storage,
        lambda r: [r.mp4_path, r.srt_path, r.thumbnail_path],
        narration, title or question, sources, str(folder), language, stem, settings.aspect,
        render_signature(settings),
    )
    done("render", hit)
    link = public_link(rendered.mp4_path, settings)
    create_link_artifact(link, link_text=Path(rendered.mp4_path).name, key="video",
                         description=f"Video for: {question[:100]}"
                         + ("" if settings.public_url else " (set RAGREEL_PUBLIC_URL for an http link)"))
    result = result.model_copy(update=dict(
        voice=narration.voice, mp4_path=rendered.mp4_path, wav_path=rendered.wav_path,
        srt_path=rendered.srt_path, thumbnail_path=rendered.thumbnail_path,
        narration_seconds=round(narration.duration, 2), video_seconds=round(rendered.duration, 2),
        cached_stages=list(cached), seconds=round(time.perf_counter() - started, 2),
    ))
    logger.info("Video ready: %s (%.1fs, voice %s, %s)", rendered.mp4_path, rendered.duration,
                narration.voice, result.llm)
    _write_result(result, folder)
    return result


# --- command line -------------------------------------------------------------------------------

def _print_result(result: VideoResult) -> None:
    print(f"\n{result.question}\n\n{result.answer}\n")
    if result.sources:
        print("Sources:")
        for c in result.sources:
            print(f"  [{c.number}] {c.title} ({c.source}{' > ' + c.heading if c.heading else ''})")
    print(f"\nAnswered by {result.llm}" + (f"; narrated by {result.voice}" if result.voice else ""))
    if result.cached_stages:
        print(f"From cache: {', '.join(result.cached_stages)}")
    if result.mp4_path:
        print(f"\nVideo: {result.mp4_path} ({result.video_seconds:.1f}s)")
        print(f"Subtitles: {result.srt_path}\nThumbnail: {result.thumbnail_path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m flows.generate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("question", help="the question to answer (English or Chinese)")
    parser.add_argument("--language", choices=["en", "zh"], help="answer language (default: the question's)")
    parser.add_argument("--top-k", type=int, help="passages to retrieve (default RAGREEL_TOP_K)")
    parser.add_argument("--voice", default="auto", choices=["auto", "bark", "piper", "kokoro", "espeak"],
                        help="narration voice (default: RAGREEL_VOICE_EN / RAGREEL_VOICE_ZH)")
    parser.add_argument("--aspect", choices=["landscape", "portrait", "square"],
                        help="video shape (default RAGREEL_ASPECT, landscape 1280x720)")
    parser.add_argument("--output-dir", help="where to write the files (default RAGREEL_HOME/videos/...)")
    parser.add_argument("--no-video", action="store_true", help="stop after the answer: print answer and sources")
    parser.add_argument("--json", action="store_true", help="print the result object as JSON, nothing else")
    args = parser.parse_args(argv)
    try:
        result = generate_video(
            args.question, language=args.language, top_k=args.top_k, voice=args.voice, aspect=args.aspect,
            output_dir=args.output_dir, video=not args.no_video,
        )
    except RagreelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the CLI's job is a one-line reason, not a traceback
        print(f"error: [generate-video] {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(result.model_dump_json(indent=2))
    else:
        _print_result(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
