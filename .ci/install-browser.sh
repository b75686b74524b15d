#!/usr/bin/env bash
# Make sure a browser is installed for the test that drives the web page: Debian's chromium,
# which Playwright's Python package drives through executable_path (`playwright install` would
# download a browser of its own). fonts-noto-cjk lets the page's Chinese show in screenshots.
# Idempotent and quiet: does nothing when /usr/bin/chromium is there. Debian/Ubuntu (apt) only;
# elsewhere set RAGREEL_CHROMIUM to a Chromium binary, or RAGREEL_SKIP_BROWSER=1.
set -euo pipefail

if [ -x "${RAGREEL_CHROMIUM:-/usr/bin/chromium}" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "install-browser: no apt-get here; set RAGREEL_CHROMIUM or RAGREEL_SKIP_BROWSER=1" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
  else
    echo "install-browser: needs root (or passwordless sudo) to run apt-get install chromium" >&2
    exit 1
  fi
fi
echo "install-browser: installing Debian chromium (for the web page test)..."
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-noto-cjk >/dev/null
test -x /usr/bin/chromium
