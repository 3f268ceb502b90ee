#!/usr/bin/env bash
# Set up and run the demo: OpenClaw state written by OpenClaw itself (tools/demo/data: a SQLite-era agent of
# OpenClaw 2026.9.6, a JSONL-era agent of 2026.7.35) → one DAG run on an embedded SQLite Airflow → the Nexus
# stand-in → archive. Needs no Node: `python -m tools.demo.rebuild` (Node and OpenClaw) rebuilds the state.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m tools.demo "$@"
