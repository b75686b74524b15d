"""What the generate-video stages share as Prefect tasks.

Each stage module (``tasks/retrieve.py``, ``tasks/answer.py``, ``tasks/speak.py``,
``tasks/render.py``) declares its task with :func:`stage_task`, giving its own cache key: a
function of the settings it reads (and of its inputs, where a setting only matters for some of
them). The task then has

* retries with exponential backoff and jitter, never for a :class:`~ragreel.errors.PermanentError`
  (bad input, a rejected key), and a timeout;
* a cache keyed on its inputs, its task source, the source of the stage code it runs and that
  settings key (``INPUTS + TASK_SOURCE + CacheKeyFnPolicy``), so asking again is served from
  cache and changing a render setting re-renders without re-asking the LLM;
* its run name computed from its inputs by a function, never a format template, so braces in a
  question are just text.

Called inside a :class:`StageRun` (the generate flow opens one), a stage also stores its results
where ``RAGREEL_RESULTS_STORAGE`` says (default: ``<store>/results`` with RAGREEL_STORE, so every
worker shares one cache), reports progress, records whether it came from cache, and computes a
cached result again when the files it names (local files, or objects on the store) are gone.
"""

from __future__ import annotations

import contextvars
import errno
import functools
import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Generic, ParamSpec, TypeVar

from prefect import Task, get_run_logger, task
from prefect.cache_policies import INPUTS, TASK_SOURCE, CacheKeyFnPolicy, Inputs
from prefect.tasks import exponential_backoff

from ragreel.errors import PermanentError, RagreelError, is_retryable
from ragreel.settings import Settings, get_settings

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

SettingsKey = Callable[[Settings, dict[str, Any]], str]


# --- cache keys -------------------------------------------------------------------------------


def short_hash(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, default=str, ensure_ascii=False).encode()).hexdigest()[:8]


@functools.cache
def code_version(*modules: str) -> str:
    """A hash of the source of the modules (and packages) a stage runs: new code, new cache key.

    Prefect's TASK_SOURCE covers only the task function itself, not the stage code it calls.
    """
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            files = sorted(Path(spec.origin).parent.rglob("*.py"))
        else:
            files = [Path(spec.origin)]
        for file in files:
            digest.update(file.read_bytes())
    return digest.hexdigest()[:12]


def file_signature(path: Path | None) -> str:
    """A file setting as a key part: its path and modification time (a replaced file is new)."""
    if path is None:
        return ""
    path = Path(path).expanduser()
    return f"{path}:{path.stat().st_mtime_ns}" if path.exists() else str(path)


def _settings_policy(settings_key: SettingsKey) -> CacheKeyFnPolicy:
    def key(context, parameters: dict[str, Any]) -> str:
        return settings_key(get_settings(), parameters)

    return CacheKeyFnPolicy(cache_key_fn=key)


# --- retries ----------------------------------------------------------------------------------


def retry_unless_permanent(task, task_run, state) -> bool:
    """Retry transient faults; a permanent error (bad input, rejected key) fails at once."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - the state's own exception, re-raised to inspect it
        return is_retryable(exc)
    return False


# --- one run through the stages ----------------------------------------------------------------

_current_run: contextvars.ContextVar[StageRun | None] = contextvars.ContextVar(
    "ragreel_stage_run", default=None
)


def result_storage(settings: Settings) -> str:
    """The Prefect storage block (slug) for stage results, from RAGREEL_RESULTS_STORAGE (see README).

    A folder or fsspec URL is saved as a block named after it, since Prefect wants result
    storage persisted server-side, where every worker finds it.
    """
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    from ragreel.result_store import ObjectStoreResults

    # With a store, results live beside the outputs they name: every worker reads the same cache.
    default = f"{settings.store}/results" if settings.store else str(settings.home / "results")
    value = settings.results_storage or default
    if value.startswith("s3://"):
        block = ObjectStoreResults(basepath=value.rstrip("/"))
        kind = ObjectStoreResults.get_block_type_slug()
    elif "://" in value:
        block, kind = RemoteFileSystem(basepath=value), "remote-file-system"
    elif value.startswith(("/", ".", "~")) or value.count("/") != 1:
        value = str(Path(value).expanduser().resolve())
        block, kind = LocalFileSystem(basepath=value), "local-file-system"
    else:
        return value  # already a block slug, such as "s3-bucket/ragreel-results"
    name = f"ragreel-results-{short_hash(value)}"
    block.save(name, overwrite=True)
    return f"{kind}/{name}"


class StageRun:
    """One flow run's pass through the stages: where results go, progress, and what came from cache.

    Use as a context manager around the stage calls; rows of a batch each have their own, as each
    runs in its own copy of the context.
    """

    def __init__(self, stages: Sequence[str], settings: Settings):
        from prefect.artifacts import create_progress_artifact

        self.stages = list(stages)
        self.storage = result_storage(settings)
        self.cached: list[str] = []
        self._progress = create_progress_artifact(0.0, description=f"Stages done of {len(self.stages)}")
        self._token: contextvars.Token | None = None

    def __enter__(self) -> StageRun:
        self._token = _current_run.set(self)
        return self

    def __exit__(self, *exc_info) -> None:
        _current_run.reset(self._token)

    def done(self, stage: str, cached: bool) -> None:
        from prefect.artifacts import update_progress_artifact

        if cached:
            self.cached.append(stage)
        number = self.stages.index(stage) + 1 if stage in self.stages else len(self.stages)
        update_progress_artifact(self._progress, 100.0 * number / len(self.stages))
        get_run_logger().info(
            "Stage %d/%d %s done%s", number, len(self.stages), stage, " (from cache)" if cached else ""
        )


class Stage(Generic[P, R]):
    """A generate-video stage: a Prefect task, called like the function it wraps.

    ``outputs`` names the files a result points at; a cached result whose files are gone is
    computed again. Errors come out as RagreelError naming the stage, so the CLI's one-line
    reason does.
    """

    def __init__(self, task: Task[P, R], outputs: Callable[[R], list[str]] | None = None):
        self.task = task
        self.name = task.name
        self.outputs = outputs

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _current_run.get()
        runnable = self.task.with_options(result_storage=run.storage) if run else self.task
        state = runnable(*args, return_state=True, **kwargs)
        try:
            result = state.result()
        except RagreelError:
            raise
        except Exception as exc:
            raise RagreelError(f"{type(exc).__name__}: {exc}", stage=self.name) from exc
        cached = state.name == "Cached"
        if cached and self.outputs and not self._outputs_present(result):
            get_run_logger().warning("%s: the cached result's files are gone; computing it again", self.name)
            result = runnable.with_options(refresh_cache=True)(*args, **kwargs)
            cached = False
        if run:
            run.done(self.name, cached)
        return result

    def _outputs_present(self, result: R) -> bool:
        """Whether every file the result names is still there (an object, for an s3:// URL)."""
        from ragreel.outputs import is_present

        settings = get_settings()
        return all(is_present(path, settings) for path in self.outputs(result))


# A full disk, a quota or file-size limit, a read-only or forbidden folder: retrying in seconds won't help.
UNWRITABLE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}


def _is_folder(value: object) -> bool:
    try:
        return isinstance(value, str) and len(value) < 4096 and Path(value).is_dir()
    except OSError:  # text that is not a path at all (too long a name, say)
        return False


def unwritable_error(exc: OSError, stage: str, folder: str | None = None) -> PermanentError:
    """A write that the storage refused, as an error naming the path (or the stage's output folder,
    when the OS names none) and what to do."""
    from ragreel.files import is_temporary

    where = exc.filename
    if where and is_temporary(where):  # a user knows the folder, not our temporary name in it
        where = f"in {Path(where).parent}"
    where = where or (f"in {folder}" if folder else "an output file")
    return PermanentError(
        f"cannot write {where}: {exc.strerror or exc}",
        stage=stage,
        hint="free some space or point RAGREEL_HOME (or --output-dir) at a writable disk; "
        "files from earlier runs were left as they were",
    )


def stage_task(
    *,
    name: str,
    timeout_seconds: float,
    settings_key: SettingsKey,
    run_name: Callable[[dict[str, Any]], str],
    outputs: Callable[[Any], list[str]] | None = None,
    keyed_elsewhere: Sequence[str] = (),
) -> Callable[[Callable[P, R]], Stage[P, R]]:
    """Declare a stage task: see the module docstring for what it gets.

    ``keyed_elsewhere`` names inputs left out of the inputs' hash because ``settings_key`` keys
    them itself (as a portable form of a path that differs from host to host).
    """

    def task_run_name() -> str:
        from prefect.runtime import task_run

        return run_name(task_run.parameters)

    def decorate(function: Callable[P, R]) -> Stage[P, R]:
        @functools.wraps(function)  # TASK_SOURCE and parameter names still come from ``function``
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return function(*args, **kwargs)
            except OSError as exc:
                if exc.errno in UNWRITABLE:
                    folders = [v for v in [*args, *kwargs.values()] if _is_folder(v)]
                    raise unwritable_error(exc, name, folders[0] if folders else None) from None
                raise

        inputs = Inputs(exclude=list(keyed_elsewhere)) if keyed_elsewhere else INPUTS
        stage = task(
            guarded,
            name=name,
            task_run_name=task_run_name,
            timeout_seconds=timeout_seconds,
            retries=2,
            retry_delay_seconds=exponential_backoff(backoff_factor=2),
            retry_jitter_factor=0.5,
            retry_condition_fn=retry_unless_permanent,
            cache_policy=inputs + TASK_SOURCE + _settings_policy(settings_key),
            persist_result=True,
        )
        return Stage(stage, outputs)

    return decorate


def one_line(text: str, limit: int = 40) -> str:
    """User text shortened for a run name: one line, at most ``limit`` characters."""
    text = " ".join("".join(ch if ch.isprintable() else " " for ch in str(text)).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
