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
# Two workers (pytest-xdist): the tests that start Airflow stacks run one after another on one of them
# (tests/conftest.py groups them), the rest of the suite on both. `-n 0` runs everything in one process.
exec pytest -n 2 --durations=30 "$@"
