"""Jobs are Prefect flow runs: the API keeps no state of its own.

A video job is a run of the ``ragreel-generate`` deployment and a batch job a run of
``ragreel-batch``, created with ``run_deployment(..., timeout=0)`` and picked up by any worker of
the pool, so the job id is the flow-run id and the same run is in the Prefect UI. Progress is read
back from Prefect (the run's state and its stage task runs); results from the ``result.json`` and
manifest the flows write under RAGREEL_HOME, which the API and the workers share.

Everything here is synchronous (Prefect's sync client): the app calls it from worker threads.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx

from ragreel.errors import RagreelError
from ragreel.settings import Settings

# Prefect's state types, as the API reports them.
STATUS = {
    "SCHEDULED": "scheduled",
    "PENDING": "scheduled",
    "PAUSED": "scheduled",
    "RUNNING": "running",
    "CANCELLING": "cancelling",
    "COMPLETED": "completed",
    "FAILED": "failed",
    "CRASHED": "failed",
    "CANCELLED": "cancelled",
}
FINAL = {"completed", "failed", "cancelled"}
ACTIVE_STATE_TYPES = ["SCHEDULED", "PENDING", "PAUSED", "RUNNING", "CANCELLING"]
API_TAG = "ragreel-api"
# A stage task run's name begins with what it does ("answer ...", "render landscape video").
STAGE_OF_RUN_NAME = {"retrieve": "retrieve", "answer": "generate", "speak": "speak", "render": "render"}
ERROR_STAGE = re.compile(r"\[([a-z][\w-]*)\] (.+)", re.DOTALL)


class PrefectUnavailable(RagreelError):
    """The Prefect server cannot be reached, or the deployment or pool the API needs is missing."""

    stage = "api"


def client_tag(address: str) -> str:
    """A tag naming the client a run was created for, without its address in the clear."""
    return "api-client:" + hashlib.sha256(address.encode()).hexdigest()[:12]


@contextmanager
def prefect_client() -> Iterator[Any]:
    """Prefect's sync client; a server that cannot be reached is PrefectUnavailable (503)."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            yield client
    except (httpx.TransportError, OSError) as exc:
        raise PrefectUnavailable(
            f"the Prefect server cannot be reached ({type(exc).__name__})",
            hint="start it (make up) or point PREFECT_API_URL at it",
        ) from None


def submit(deployment: str, parameters: dict[str, Any], tags: list[str]) -> UUID:
    """A new run of ``deployment`` for the pool's workers; returns its id at once."""
    from prefect.deployments import run_deployment
    from prefect.exceptions import ObjectNotFound

    try:
        flow_run = run_deployment(deployment, parameters=parameters, timeout=0, tags=tags)
    except ObjectNotFound:
        raise PrefectUnavailable(
            f"the deployment {deployment} does not exist on the Prefect server",
            hint="deploy it with deployments/deploy.sh (make up does)",
        ) from None
    except httpx.TransportError as exc:
        raise PrefectUnavailable(f"the Prefect server cannot be reached ({type(exc).__name__})") from None
    return flow_run.id


def active_count(deployment_id: UUID, tag: str) -> int:
    """Unfinished runs of the deployment created for the client ``tag``."""
    from prefect.client.schemas.filters import (
        FlowRunFilter,
        FlowRunFilterDeploymentId,
        FlowRunFilterState,
        FlowRunFilterStateType,
        FlowRunFilterTags,
    )

    flow_runs = FlowRunFilter(
        deployment_id=FlowRunFilterDeploymentId(any_=[deployment_id]),
        tags=FlowRunFilterTags(all_=[tag]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE_STATE_TYPES)),
    )
    with prefect_client() as client:
        return client.count_flow_runs(flow_run_filter=flow_runs)


def deployment_id(deployment: str) -> UUID:
    from prefect.exceptions import ObjectNotFound

    with prefect_client() as client:
        try:
            return client.read_deployment_by_name(deployment).id
        except ObjectNotFound:
            raise PrefectUnavailable(
                f"the deployment {deployment} does not exist on the Prefect server",
                hint="deploy it with deployments/deploy.sh (make up does)",
            ) from None


def flow_run(run_id: UUID, deployment: str) -> Any | None:
    """The run, if it exists and is a run of ``deployment``."""
    from prefect.exceptions import ObjectNotFound

    with prefect_client() as client:
        try:
            run = client.read_flow_run(run_id)
        except ObjectNotFound:
            return None
        if run.deployment_id is None:
            return None
        return run if run.deployment_id == client.read_deployment_by_name(deployment).id else None


def recent_runs(deployment: str, limit: int) -> list[Any]:
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterDeploymentId
    from prefect.client.schemas.sorting import FlowRunSort

    with prefect_client() as client:
        deployment_uuid = client.read_deployment_by_name(deployment).id
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(any_=[deployment_uuid])),
            sort=FlowRunSort.EXPECTED_START_TIME_DESC,
            limit=limit,
        )


def child_runs(parent_id: UUID) -> list[Any]:
    """The generate runs a batch run started (its rows)."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterParentFlowRunId

    with prefect_client() as client:
        return client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent_id]))
        )


def stage_states(run_id: UUID) -> dict[str, str]:
    """Each stage the run has reached, with the API status of its task run."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.client.schemas.sorting import TaskRunSort

    with prefect_client() as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])),
            sort=TaskRunSort.EXPECTED_START_TIME_ASC,
        )
    stages: dict[str, str] = {}
    for task_run in task_runs:
        stage = STAGE_OF_RUN_NAME.get(task_run.name.split(" ", 1)[0])
        if stage and task_run.state is not None:
            # A retried or refreshed stage has several task runs: the latest tells.
            stages[stage] = (
                "completed" if task_run.state.is_completed() else STATUS[task_run.state.type.value]
            )
    return stages


def cancel(run_id: UUID, state_type: str) -> None:
    """Stop the run.

    A queued run (no process yet) is set Cancelled, and no worker takes it. A starting or running
    one is set Cancelling and its worker stops the process. Asked again while it is still
    Cancelling, it is set Cancelled: a process that saw Cancelling while it started exits
    without a final state of its own, and one still importing stops as it begins
    (``ragreel.flow_runs.cancelled_before_start``) rather than answer over the cancel.
    """
    from prefect.states import Cancelled, Cancelling

    message = "cancelled through the ragreel API"
    with prefect_client() as client:
        if state_type in ("PENDING", "RUNNING"):
            client.set_flow_run_state(run_id, Cancelling(message=message))
        else:
            client.set_flow_run_state(run_id, Cancelled(message=message), force=True)


def failure(state: Any, stages: dict[str, str]) -> dict[str, str]:
    """The failing stage and its message, from the failed stage task and the run's state message."""
    message = (state.message or state.name or "failed").strip()
    message = re.sub(r"^Flow run encountered an exception\. ", "", message)
    stage = next((name for name, status in stages.items() if status == "failed"), None)
    found = ERROR_STAGE.search(message)
    if found:
        stage = stage or found.group(1)
        message = found.group(2)
    return {"stage": stage or "generate-video", "message": message}


def pool_health(settings: Settings) -> dict[str, Any]:
    """The Prefect server, the work pool and how many of its workers are online."""
    from prefect.exceptions import ObjectNotFound

    report: dict[str, Any] = {"prefect": "down", "pool": settings.work_pool, "workers_online": 0}
    try:
        with prefect_client() as client:
            if client.api_healthcheck() is not None:  # it returns the error rather than raising it
                return report
            report["prefect"] = "up"
            try:
                client.read_work_pool(settings.work_pool)
            except ObjectNotFound:
                report["pool_status"] = "missing"
                return report
            workers = client.read_workers_for_work_pool(settings.work_pool)
            report["workers_online"] = sum(1 for w in workers if str(w.status).upper().endswith("ONLINE"))
            report["pool_status"] = "ready" if report["workers_online"] else "no worker"
    except PrefectUnavailable:
        pass
    return report


def read_json_file(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None
