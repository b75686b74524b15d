# Sourced by up.sh and down.sh: where the local stack lives and how its parts find each other.
# Every variable can be set beforehand; these are the defaults.
PROJECT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export RAGREEL_PROJECT=$PROJECT
export RAGREEL_STACK_BIN=${RAGREEL_STACK_BIN:-$PROJECT/.venv/bin}
export RAGREEL_HOME=$(cd "$PROJECT" && realpath -m "${RAGREEL_HOME:-.ragreel}")
export RAGREEL_STACK_DIR=${RAGREEL_STACK_DIR:-$RAGREEL_HOME/stack}
export RAGREEL_STACK_PREFECT_PORT=${RAGREEL_PREFECT_PORT:-4200}
export RAGREEL_API_HOST=${RAGREEL_API_HOST:-127.0.0.1}
export RAGREEL_API_PORT=${RAGREEL_API_PORT:-8000}
export RAGREEL_WORK_POOL=${RAGREEL_WORK_POOL:-ragreel}
export RAGREEL_STACK_WORKER=${RAGREEL_STACK_WORKER:-$(hostname)-worker}
export RAGREEL_STACK_WORKER_LIMIT=${RAGREEL_WORKER_LIMIT:-2}
export PREFECT_HOME=${PREFECT_HOME:-$RAGREEL_STACK_DIR/prefect}
export PREFECT_API_URL=http://127.0.0.1:$RAGREEL_STACK_PREFECT_PORT/api
export PREFECT_UI_API_URL=$PREFECT_API_URL  # the UI on a port other than 4200 must be told
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
if [ -n "${RAGREEL_DATABASE_URL:-}" ]; then
  export PREFECT_API_DATABASE_CONNECTION_URL=$RAGREEL_DATABASE_URL  # PostgreSQL instead of SQLite
fi
# Artifacts in the Prefect UI link to the API's file URLs (clickable videos, visible thumbnails).
API_URL=http://$RAGREEL_API_HOST:$RAGREEL_API_PORT
[ "$RAGREEL_API_HOST" = 0.0.0.0 ] && API_URL=http://127.0.0.1:$RAGREEL_API_PORT
export RAGREEL_PUBLIC_URL=${RAGREEL_PUBLIC_URL:-$API_URL/files}
# Every process of the stack (flow runs that workers start in sessions of their own included)
# carries this, so down.sh finds whatever outlived supervisord.
export RAGREEL_STACK_ID=$RAGREEL_STACK_DIR
SUPERVISOR_CONF=$PROJECT/deployments/supervisord.conf
supervisorctl() { "$RAGREEL_STACK_BIN/supervisorctl" -c "$SUPERVISOR_CONF" "$@"; }
stack_running() { [ -S "$RAGREEL_STACK_DIR/supervisor.sock" ] && supervisorctl pid >/dev/null 2>&1; }
