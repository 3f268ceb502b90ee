#!/usr/bin/env bash
# Set up and run the whole test suite: lint, type check, unit tests, DAG integrity, end-to-end runs of the real DAG.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k archive`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$HOME/.local/bin:$PATH"
ruff check .
ruff format --check .
# The type checker, configured in pyproject.toml ([tool.mypy]): the package strict, tools/ checked.
mypy
exec pytest "$@"
