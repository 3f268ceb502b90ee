"""Shared test setup: the project root on sys.path (for tools/), and a throwaway AIRFLOW_HOME for any
test that imports Airflow in-process, so no test ever touches the developer's own Airflow."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# tests/adoption runs tests/integrity in a venv where the distribution is installed from its wheel: there
# the checkout's plugins/ stays off sys.path (and out of Airflow's plugins folder), so the installed copy
# is the one tested.
INSTALLED = os.environ.get("SESSION_UPLOAD_TEST_INSTALLED") == "1"
sys.path[:0] = [str(ROOT)] if INSTALLED else [str(ROOT), str(ROOT / "plugins")]

# Before anything imports airflow: its config is read once, at import.
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="session-upload-airflow-home-")
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = (
    tempfile.mkdtemp(prefix="session-upload-no-plugins-") if INSTALLED else str(ROOT / "plugins")
)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
for name in [n for n in os.environ if n.startswith(("AIRFLOW_CONN_", "SESSION_UPLOAD_", "OPENCLAW_"))]:
    del os.environ[name]
