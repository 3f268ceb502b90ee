"""Shared test setup: the project root on sys.path (for tools/), and a throwaway AIRFLOW_HOME for any
test that imports Airflow in-process, so no test ever touches the developer's own Airflow. Also the one
agent OpenClaw's doctor migrated that several folders copy, and each folder's wall time at the end."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

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

# After sys.path holds the project root; neither imports Airflow.
from tools.demo.sample_state import make_state  # noqa: E402
from tools.openclaw.fixture import OpenClaw  # noqa: E402


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A JSONL-era agent ``main`` (3 completed sessions) migrated by OpenClaw 2026.9.6's own
    ``openclaw doctor --session-sqlite import``, built once per test session, and what ``make_state``
    made of it. Read-only: tests copy the state dir (tests/openclaw's ``state``, tests/e2e's ``migrated``)."""
    root = tmp_path_factory.mktemp("migrated") / "state"
    made = make_state(root, ["main"], completed=3)
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=root
    )
    assert not (root / "agents" / "main" / "sessions" / "sessions.json").exists(), "not migrated"
    return root, made["main"]


# Folders whose tests start Airflow stacks: under pytest-xdist (scripts/test.sh runs three workers) they are
# one unit of work, so one worker runs them one after another in collection order (never two stacks at
# once; tests/stack's own order and its watcher stack's early stop hold). tests/adoption (venvs of other
# Airflow releases, ``airflow dags test``, no stack) is a second unit, on another worker, so that the stacks'
# unit, the longest, does not wait for it; the other workers take the rest of the suite test by test. (xdist
# 3.8's own ``xdist_group`` mark has no effect under pytest 9: its worker hook renames ``item._nodeid``, and
# pytest 9's ``nodeid`` is read from ``_id``.)
UNITS = {
    "tests/stack/": "airflow-stacks",
    "tests/celery/": "airflow-stacks",
    "tests/edge/": "airflow-stacks",
    "tests/adoption/": "other-airflows",
}


# optionalhook: tests/adoption runs tests/integrity in venvs without pytest-xdist.
@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadScopeScheduling  # only called under xdist; other venvs lack it

    class StacksInOneUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return next((unit for folder, unit in UNITS.items() if nodeid.startswith(folder)), nodeid)

    return StacksInOneUnit(config, log)


# Wall time per folder: first setup start to last teardown end of the tests under tests/<folder>.
_spans: dict[str, list[float]] = {}


def _folder(nodeid: str) -> str:
    parts = nodeid.split("::")[0].split("/")
    return "/".join(parts[:2]) if len(parts) > 2 else "/".join(parts[:-1]) or "."


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    span = _spans.setdefault(_folder(report.nodeid), [report.start, report.stop])
    span[0], span[1] = min(span[0], report.start), max(span[1], report.stop)


def pytest_terminal_summary(terminalreporter) -> None:
    if not _spans:
        return
    terminalreporter.write_sep("=", "wall time per folder (first setup start to last teardown end)")
    width = max(len(folder) for folder in _spans)
    for folder, (start, stop) in sorted(_spans.items(), key=lambda item: item[1][0]):
        terminalreporter.write_line(f"{folder:<{width}}  {stop - start:8.1f} s")
    total = max(stop for _, stop in _spans.values()) - min(start for start, _ in _spans.values())
    terminalreporter.write_line(f"{'total':<{width}}  {total:8.1f} s")
