"""What a flow run asks Prefect about itself before it does any work."""

from __future__ import annotations

STOPPED = {"CANCELLING", "CANCELLED"}


def cancelled_before_start() -> bool:
    """Whether this deployment run was cancelled after it was scheduled but before it got going.

    A worker starts a run's process, and the API (``ragreel.api.jobs.cancel``) may cancel the run
    while that process is still importing: the run is then Cancelling or, asked twice, Cancelled.
    Prefect's server lets a Cancelled run go to Running (that is how a run is retried by hand), so
    a process that was slow to start would run the whole question and finish Completed over the
    user's cancel. The flow asks this first and stops instead. A run scheduled again after a
    cancel (a retry from the UI) counts from that new schedule.
    """
    from prefect import get_client
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    flow_run = context.flow_run if context else None
    if flow_run is None or flow_run.deployment_id is None:  # run in this process: nobody can cancel it early
        return False
    with get_client(sync_client=True) as client:
        history = sorted(client.read_flow_run_states(flow_run.id), key=lambda state: state.timestamp)
    stopped = False
    for state in history:
        if state.type.value == "SCHEDULED":
            stopped = False
        elif state.type.value in STOPPED:
            stopped = True
    return stopped
