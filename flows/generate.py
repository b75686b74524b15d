"""Question in, narrated and subtitled video out: retrieve -> generate -> speak -> render.

    python -m flows.generate "What water temperature should I use for oolong tea?"
    python -m flows.generate "高山烏龍茶要種在多高的地方？" --aspect portrait
    python -m flows.generate "..." --no-video      # answer and sources only, for review
    python -m flows.generate "..." --script reviewed.json   # render a reviewed script, no model asked
    python -m flows.generate "..." --json          # the result object as JSON on stdout

Each stage is a Prefect task declared in its own module under ``tasks/`` (see
``tasks/stage.py``): retries with backoff that skip permanent errors such as a bad question or a
rejected API key, a timeout, and a cache keyed on its inputs, its code and the settings that
shape its output. Asking again is served from cache; changing a render setting re-renders
without re-asking the LLM or re-speaking; a cached result whose files have gone is recomputed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path
from urllib.parse import quote

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.states import Cancelled, State

from ragreel.cli import run_command
from ragreel.flow_runs import cancelled_before_start
from ragreel.kb.store import KnowledgeBase
from ragreel.outputs import link_seconds, publish_text, run_location, scratch_folder, share_link
from ragreel.prefect_server import temporary_prefect_server
from ragreel.schemas import (
    ASPECTS,
    LANGUAGES,
    STAGES,
    VOICE_KINDS,
    Answer,
    Aspect,
    Passage,
    Script,
    Source,
    VideoRequest,
    VideoResult,
)
from ragreel.settings import Settings, get_settings
from ragreel.storage import is_url
from tasks.answer import generate_stage
from tasks.render import render_stage, slides_for
from tasks.retrieve import retrieve_stage
from tasks.speak import speak_stage
from tasks.stage import StageRun, one_line, short_hash

# --- the flow -------------------------------------------------------------------------------


def _flow_run_name() -> str:
    from prefect.runtime import flow_run

    return f"video: {one_line(flow_run.parameters.get('question', ''), 60)}"


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
    script: Script | None = None,
) -> VideoResult | State:
    """Answer ``question`` from the knowledge base and turn the answer into a narrated video.

    ``language`` ('en' or 'zh') defaults to the question's; ``voice`` is auto, bark, piper,
    kokoro or espeak; ``aspect`` landscape, portrait or square; ``video=False`` stops after the
    answer; ``title`` replaces the question on the title card; ``script`` (scenes, as in a
    ``result.json``) is rendered instead of asking the model, once its evidence checks out against
    the retrieved passages. Outputs, with a ``result.json``, go to ``output_dir`` (a folder, or with
    RAGREEL_STORE an s3:// URL) or ``RAGREEL_HOME/videos/<slug>-<hash>/`` (``<store>/videos/...``
    with a store, where the result then names the objects' URLs).
    """
    if cancelled_before_start():
        return Cancelled(message="Cancelled before its process started: nothing was run.")
    started = time.perf_counter()
    settings = get_settings()
    request = VideoRequest.checked(
        settings.max_question_chars,
        question=question,
        language=language,
        top_k=top_k,
        voice=voice,
        aspect=aspect,
        title=title,
        script=script,
    )
    question = request.question
    language = request.answer_language()
    aspect = request.aspect or settings.aspect
    location = output_dir or output_location(question, language, settings)
    folder = scratch_folder(location, settings)  # the location itself, unless it is on the store

    with StageRun(STAGES if video else STAGES[:2], settings) as run:
        passages = retrieve_stage(question, request.top_k or settings.top_k)
        folder.mkdir(parents=True, exist_ok=True)  # only once there is something to write
        _passages_artifact(question, passages)

        answer = generate_stage(question, passages, language, request.script)
        _answer_artifact(answer, passages)
        result = VideoResult(
            question=question,
            language=language,
            answer=answer.text,
            covered=answer.covered,
            scenes=answer.scenes,
            checks=answer.checks,
            sources=answer.citations,
            passages=passages,
            llm=f"{answer.backend}:{answer.model}",
            output_dir=location,
        )
        if video:
            narration = speak_stage(answer.text, language, request.voice, location)
            rendered = render_stage(
                narration,
                request.title or question,
                _sources_card(answer),
                location,
                language,
                aspect,
                slides_for(answer),
            )
            _video_artifact(rendered.mp4_path, question, settings)
            if settings.public_url or settings.store:  # a browser can load the picture: show it on top
                _answer_artifact(
                    answer,
                    passages,
                    preview=(
                        public_link(rendered.thumbnail_path, settings),
                        public_link(rendered.mp4_path, settings),
                    ),
                )
            result = result.model_copy(
                update=dict(
                    voice=narration.voice,
                    mp4_path=rendered.mp4_path,
                    wav_path=rendered.wav_path,
                    srt_path=rendered.srt_path,
                    vtt_path=rendered.vtt_path,
                    thumbnail_path=rendered.thumbnail_path,
                    narration_seconds=round(narration.duration, 2),
                    video_seconds=round(rendered.duration, 2),
                )
            )
            get_run_logger().info(
                "Video ready: %s (%.1fs, voice %s, %s)",
                rendered.mp4_path,
                rendered.duration,
                narration.voice,
                result.llm,
            )

    result.cached_stages = list(run.cached)
    result.seconds = round(time.perf_counter() - started, 2)
    _write_result(result, location, settings)
    return result


# --- helpers ----------------------------------------------------------------------------------


def output_folder(question: str, language: str, settings: Settings) -> Path:
    """RAGREEL_HOME/videos/<slug>-<hash>: readable, and distinct for distinct questions."""
    return settings.videos_dir / _folder_name(question, language)


def output_location(question: str, language: str, settings: Settings) -> str:
    """Where a question's outputs go by default: <store>/videos/<slug>-<hash> with RAGREEL_STORE,
    else :func:`output_folder`."""
    return run_location(f"videos/{_folder_name(question, language)}", settings)


def _folder_name(question: str, language: str) -> str:
    slug = re.sub(r"[^\w]+", "-", question.lower()).strip("-")[:48].strip("-") or "question"
    return f"{slug}-{short_hash(question, language)}"


def _sources_card(answer: Answer) -> list[Source]:
    """The documents the answer cites, each once, in citation order."""
    unique = {(c.title, c.source): Source(title=c.title, source=c.source) for c in answer.citations}
    return list(unique.values())


def _passages_artifact(question: str, passages: list[Passage]) -> None:
    create_table_artifact(
        [
            {
                "rank": p.rank,
                "score": p.score,
                "source": p.source,
                "title": p.title,
                "heading": p.heading,
                "text": p.text[:300],
            }
            for p in passages
        ],
        key="retrieved-passages",
        description=f"Passages retrieved for: {question[:100]}",
    )


def _video_artifact(mp4_path: str, question: str, settings: Settings) -> None:
    link = public_link(mp4_path, settings)
    create_link_artifact(
        link,
        link_text=Path(mp4_path).name,
        key="video",
        description=f"Video for: {question[:100]}"
        + ("" if settings.public_url or is_url(mp4_path) else " (set RAGREEL_PUBLIC_URL for an http link)"),
    )


def public_link(path: str, settings: Settings) -> str:
    """A presigned HTTPS link for an object on the store; an http(s) link when RAGREEL_PUBLIC_URL
    serves RAGREEL_HOME; else a file:// link."""
    if is_url(path):
        return share_link(path, settings)
    absolute = Path(path).resolve()
    if settings.public_url:
        try:
            relative = absolute.relative_to(settings.home.resolve())
            return f"{settings.public_url.rstrip('/')}/{quote(relative.as_posix())}"
        except ValueError:
            pass
    return absolute.as_uri()


def _answer_artifact(answer: Answer, passages: list[Passage], preview: tuple[str, str] | None = None) -> None:
    create_markdown_artifact(
        _answer_markdown(answer, passages, preview),
        key="answer",
        description=f"Answer and sources for: {answer.question[:100]}",
    )


def _answer_markdown(answer: Answer, passages: list[Passage], preview: tuple[str, str] | None = None) -> str:
    """The answer, its scenes and sources; ``preview`` (thumbnail URL, video URL) puts the picture on top."""
    lines = [f"# {answer.question}", ""]
    if preview:
        lines += [f"[![thumbnail]({preview[0]})]({preview[1]})", ""]
    lines += [
        answer.text,
        "",
        f"*Answered by {answer.backend}:{answer.model}*",
        "",
    ]
    if answer.scenes:
        lines += [
            "## Scenes",
            "",
            "| # | key point | narration | evidence | check |",
            "|---|---|---|---|---|",
        ]
        for number, scene in enumerate(answer.scenes, start=1):
            evidence = " ".join(f"[{e.passage}] “{e.quote}”" for e in scene.evidence)
            cells = [str(number), scene.key_point, scene.narration, evidence, scene.origin]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        lines += ["", *[f"- {check}" for check in answer.checks], ""]
    if answer.citations:
        lines += ["## Sources", ""]
        for c in answer.citations:
            where = c.source + (f" › {c.heading}" if c.heading else "")
            quoted = "\n".join(f"> {line}" for line in c.text.splitlines() if line.strip())
            lines += [f"**[{c.number}] {c.title}** ({where})", "", quoted, ""]
    elif not answer.covered:
        lines += [f"_The knowledge base does not cover this question ({len(passages)} passages retrieved)._"]
    return "\n".join(lines)


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _write_result(result: VideoResult, location: str, settings: Settings) -> None:
    """result.json beside the video (on the store with one): what a batch on another host reads back."""
    publish_text("result.json", result.model_dump_json(indent=2), location, settings)


# --- command line -------------------------------------------------------------------------------


def _print_result(result: VideoResult, settings: Settings) -> None:
    print(f"\n{result.question}\n\n{result.answer}\n")
    if result.scenes:
        origins = [s.origin for s in result.scenes]
        counts = ", ".join(f"{origins.count(o)} {o}" for o in dict.fromkeys(origins))
        print(f"Scenes: {len(origins)} ({counts}); each checked against the sentence it quotes")
    if result.sources:
        print("Sources:")
        for c in result.sources:
            print(f"  [{c.number}] {c.title} ({c.source}{' > ' + c.heading if c.heading else ''})")
    print(f"\nAnswered by {result.llm}" + (f"; narrated by {result.voice}" if result.voice else ""))
    if result.cached_stages:
        print(f"From cache: {', '.join(result.cached_stages)}")
    if result.mp4_path:
        # Objects on the store are shown as links that open without credentials (for a while).
        shown = {
            name: share_link(path, settings) if is_url(path) else path
            for name, path in result.model_dump(
                include={"mp4_path", "srt_path", "vtt_path", "thumbnail_path"}
            ).items()
        }
        print(f"\nVideo: {shown['mp4_path']} ({result.video_seconds:.1f}s)")
        print(f"Subtitles: {shown['srt_path']} and {shown['vtt_path']}\nThumbnail: {shown['thumbnail_path']}")
        if is_url(result.mp4_path):
            print(f"(links valid for {link_seconds(settings) // 3600} hours)")


def read_script(path: str) -> dict:
    """The JSON object in a script file (a reviewed result.json or ``{"scenes": [...]}``)."""
    from ragreel.errors import InputError
    from ragreel.text import UndecodableText, decode_bytes

    try:
        text = decode_bytes(Path(path).read_bytes())
        data = json.loads(text)
    except OSError as exc:
        raise InputError(f"cannot read the script {path}: {exc.strerror}", stage="generate") from None
    except (UndecodableText, json.JSONDecodeError) as exc:
        raise InputError(
            f"the script {path} is not JSON text ({exc})",
            stage="generate",
            hint='give a result.json or a file like {"scenes": [{"narration": ..., "evidence": [...]}]}',
        ) from None
    if not isinstance(data, dict):
        raise InputError(f"the script {path} is not a JSON object with 'scenes'", stage="generate")
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m flows.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question", help="the question to answer (English or Chinese)")
    parser.add_argument("--language", choices=LANGUAGES, help="answer language (default: the question's)")
    parser.add_argument("--top-k", type=int, help="passages to retrieve (default RAGREEL_TOP_K)")
    parser.add_argument(
        "--voice",
        default="auto",
        choices=VOICE_KINDS,
        help="narration voice (default: RAGREEL_VOICE_EN / RAGREEL_VOICE_ZH)",
    )
    parser.add_argument(
        "--aspect", choices=ASPECTS, help="video shape (default RAGREEL_ASPECT, landscape 1280x720)"
    )
    parser.add_argument("--output-dir", help="where to write the files (default RAGREEL_HOME/videos/...)")
    parser.add_argument(
        "--no-video", action="store_true", help="stop after the answer: print answer and sources"
    )
    parser.add_argument(
        "--script",
        metavar="FILE",
        help='render this reviewed script (JSON: a result.json or {"scenes": [...]}) instead of asking the model',
    )
    parser.add_argument("--json", action="store_true", help="print the result object as JSON, nothing else")
    args = parser.parse_args(argv)

    def generate() -> int:
        # Input that can be checked is refused before a flow (and a temporary Prefect server) starts.
        settings = get_settings()
        script = read_script(args.script) if args.script else None
        VideoRequest.checked(
            settings.max_question_chars,
            question=args.question,
            language=args.language,
            top_k=args.top_k,
            voice=args.voice,
            aspect=args.aspect,
            script=script,
        ).answer_language()
        KnowledgeBase(settings).check()  # missing, or built with another model: said now
        with temporary_prefect_server():
            result = generate_video(
                args.question,
                language=args.language,
                top_k=args.top_k,
                voice=args.voice,
                aspect=args.aspect,
                output_dir=args.output_dir,
                video=not args.no_video,
                script=script,
            )
        if args.json:
            print(result.model_dump_json(indent=2))
        else:
            _print_result(result, settings)
        return 0

    return run_command(generate, "generate-video")


if __name__ == "__main__":
    sys.exit(main())
