#!/usr/bin/env bash
# Create .venv with the locked dependencies (uv.lock). Safe to run again: it only syncs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.local/bin:$PATH"  # where a user install of uv (below, or an earlier run) lives
if ! command -v uv >/dev/null 2>&1; then
  echo "setup: installing uv (the package manager that reads uv.lock)" >&2
  python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
fi
# Compile bytecode now: Airflow starts every task in a fresh process (forkserver runs with -B), which
# would otherwise compile the same provider modules from source on every task.
uv sync --frozen --quiet --compile-bytecode
# The package itself is installed editable (its source stays in plugins/), which uv does not compile.
.venv/bin/python -m compileall -q plugins >/dev/null
