#!/usr/bin/env bash
# `make up`: a Prefect server, the work pool and deployments, one worker and the API with its web
# page, on 127.0.0.1, under supervisord (which restarts a crashed process and keeps the logs in
# $RAGREEL_STACK_DIR/logs). Ingests the sample knowledge base first if there is none.
# Stop everything with `make down`.
set -Eeuo pipefail  # -E: the ERR trap below also fires inside functions
source "$(dirname "$0")/stack-env.sh"
cd "$PROJECT"

wait_for() {  # URL, what, seconds
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null "$1" 2>/dev/null; do
    if ((SECONDS > deadline)); then
      echo "up: $2 did not answer at $1 within $3 s; its log ends:" >&2
      tail -n 30 "$RAGREEL_STACK_DIR/logs/$4.log" >&2 || true
      return 1
    fi
    sleep 1
  done
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if stack_running; then
  if curl -fsS -o /dev/null "$API_URL/healthz" 2>/dev/null; then
    echo "ragreel is already up: $API_URL/ (make down stops it)"
    exit 0
  fi
  echo "up: a stack from an earlier make up is half running; stopping it first..."
  env -u RAGREEL_STACK_ID bash deployments/down.sh
fi
for port in "$RAGREEL_STACK_PREFECT_PORT:RAGREEL_PREFECT_PORT" "$RAGREEL_API_PORT:RAGREEL_API_PORT"; do
  if port_taken "${port%%:*}"; then
    echo "up: port ${port%%:*} is in use by another program; choose another with ${port#*:}=..." >&2
    exit 1
  fi
done
mkdir -p "$RAGREEL_STACK_DIR/logs"
echo "Starting the Prefect server on 127.0.0.1:$RAGREEL_STACK_PREFECT_PORT (state in $PREFECT_HOME)..."
"$RAGREEL_STACK_BIN/supervisord" -c "$SUPERVISOR_CONF"
# From here on, a failed step stops what was started instead of leaving half a stack.
trap 'echo "up: failed; stopping what was started (logs in $RAGREEL_STACK_DIR/logs)" >&2; env -u RAGREEL_STACK_ID bash deployments/down.sh >&2' ERR
wait_for "$PREFECT_API_URL/health" "the Prefect server" 180 prefect-server

echo "Creating the work pool $RAGREEL_WORK_POOL and the deployments..."
if ! PREFECT="$RAGREEL_STACK_BIN/prefect" bash deployments/deploy.sh >"$RAGREEL_STACK_DIR/logs/deploy.log" 2>&1; then
  echo "up: deployments/deploy.sh failed; its log:" >&2
  tail -n 30 "$RAGREEL_STACK_DIR/logs/deploy.log" >&2
  false  # the ERR trap stops the stack
fi
if [ ! -d "$RAGREEL_HOME/kb" ]; then
  echo "No knowledge base in $RAGREEL_HOME yet: ingesting the sample one (data/kb)..."
  "$RAGREEL_STACK_BIN/python" -m flows.ingest data/kb
fi

echo "Starting a worker and the API..."
supervisorctl start worker api >/dev/null
wait_for "$API_URL/healthz" "the API (with a worker online)" 180 api

cat <<DONE

ragreel is up.
  Web page and API   $API_URL/   (OpenAPI docs: $API_URL/docs)
  Prefect UI         http://127.0.0.1:$RAGREEL_STACK_PREFECT_PORT/
  Logs               $RAGREEL_STACK_DIR/logs/
Stop it with: make down
DONE
