#!/usr/bin/env bash
# Start one ragreel worker (run this on every machine that should render videos).
# Every worker needs the project installed at the path the deployment records, and
# RAGREEL_HOME on storage that the batch host reads too (see README).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PREFECT:-.venv/bin/prefect}" worker start --pool "${RAGREEL_WORK_POOL:-ragreel}" "$@"
