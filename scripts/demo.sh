#!/usr/bin/env bash
# Set up and run the demo: sample OpenClaw sessions → Nexus stand-in → archive, on an embedded SQLite Airflow.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m tools.demo "$@"
