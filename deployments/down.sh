#!/usr/bin/env bash
# `make down`: stop the stack that `make up` started, and anything it left behind (flow runs that
# a worker started in sessions of their own), so that nothing of it keeps running.
set -euo pipefail
source "$(dirname "$0")/stack-env.sh"

# This script (and make, or a shell that sourced stack-env.sh) may carry the id too: never itself.
export -n RAGREEL_STACK_ID
SELF=" $$ "
pid=$$
while [ "$pid" -gt 1 ]; do
  pid=$(awk '{print $4}' "/proc/$pid/stat" 2>/dev/null || echo 1)
  SELF+="$pid "
done

stack_pids() {  # processes whose environment carries this stack's id
  local proc
  for proc in /proc/[0-9]*; do
    case "$SELF $BASHPID " in *" ${proc#/proc/} "*) continue ;; esac
    if { tr '\0' '\n' <"$proc/environ"; } 2>/dev/null | grep -qxF "RAGREEL_STACK_ID=$RAGREEL_STACK_ID"; then
      echo "${proc#/proc/}"
    fi
  done
}

if stack_running; then
  supervisorctl shutdown >/dev/null || true
fi
pidfile=$RAGREEL_STACK_DIR/supervisord.pid
for _ in $(seq 60); do
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null || break
  sleep 0.5
done
for signal in TERM KILL; do
  pids=$(stack_pids)
  [ -z "$pids" ] && break
  # shellcheck disable=SC2086 # one pid a word
  kill -s "$signal" $pids 2>/dev/null || true
  for _ in $(seq 20); do
    [ -z "$(stack_pids)" ] && break
    sleep 0.5
  done
done
rm -f "$RAGREEL_STACK_DIR/supervisor.sock"
if [ -n "$(stack_pids)" ]; then
  echo "down: some processes of the stack are still running: $(stack_pids | tr '\n' ' ')" >&2
  exit 1
fi
echo "ragreel stack stopped."
