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
# Three workers (pytest-xdist) on the machine's 2 cores, which one or two leave partly idle (waits on
# stacks, subprocess start-ups): the tests that start Airflow stacks run one after another on one worker
# (tests/conftest.py makes them one unit of work), the rest on the others. `-n 0`: everything in one process.
exec pytest -n 3 --durations=30 "$@"
