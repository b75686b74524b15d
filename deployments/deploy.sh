#!/usr/bin/env bash
# Create the ragreel work pool (a `process` pool) if it is missing, then deploy both flows
# from prefect.yaml. Needs PREFECT_API_URL (a local `prefect server start`, or Prefect Cloud).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFECT=${PREFECT:-.venv/bin/prefect}
POOL=${RAGREEL_WORK_POOL:-ragreel}

if ! "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1; then
  "$PREFECT" work-pool create "$POOL" --type process
fi
"$PREFECT" --no-prompt deploy --all
echo "Deployed. Start a worker with: $PREFECT worker start --pool $POOL"
