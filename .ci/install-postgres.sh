#!/usr/bin/env bash
# Make sure PostgreSQL's server programs (initdb, pg_ctl) are installed, for the test that runs
# the deployment round trip against a PostgreSQL-backed Prefect server. The test creates its own
# throwaway cluster on a free 127.0.0.1 port, so no system cluster is created or started here.
# Idempotent and quiet: does nothing when initdb is already there. Debian/Ubuntu (apt) only;
# elsewhere install PostgreSQL yourself and set RAGREEL_PG_BIN, or set RAGREEL_SKIP_POSTGRES=1.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || command -v initdb >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-postgres: no apt-get here; install PostgreSQL (initdb, pg_ctl) yourself," \
       "set RAGREEL_PG_BIN to its bin folder, or set RAGREEL_SKIP_POSTGRES=1" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-postgres: needs root (or passwordless sudo) to run apt-get install postgresql" >&2
    exit 1
  fi
fi
echo "install-postgres: installing Debian postgresql (for the PostgreSQL round-trip test)..."
# No 'main' cluster: the test makes its own, and nothing should listen on 5432 behind our back.
$SUDO mkdir -p /etc/postgresql-common/createcluster.d
echo "create_main_cluster = false" | $SUDO tee /etc/postgresql-common/createcluster.d/ragreel.conf >/dev/null
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null
