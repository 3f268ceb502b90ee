#!/usr/bin/env bash
# Debian packages the test suite needs beyond .venv: chromium, driven by Playwright in
# tests/stack/test_ui_browser.py (Playwright's own browser download is never used). Idempotent.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y chromium
/usr/bin/chromium --version
