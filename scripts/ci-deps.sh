#!/usr/bin/env bash
# Debian packages the test suite needs beyond .venv: chromium, driven by Playwright in
# tests/stack/test_ui_browser.py (Playwright's own browser download is never used), and faketime, whose
# libfaketime moves the OpenClaw gateway's clock when tools/openclaw/fixture.py builds SQLite-era state
# (idle rollovers, cold storage). Idempotent.
set -euo pipefail
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ] || missing+=(faketime)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${missing[@]}"
/usr/bin/chromium --version
