"""OpenClaw's agent database read by a worker that is not its owner, after OpenClaw closed it.

A clean close removes the database's ``-wal`` and ``-shm``, and any later reader, read-only or not,
creates them again: owned by the worker, OpenClaw could no longer open its own database. The store
refuses that case (``sqlite_db._refuse_foreign_side_files``). Here the refusal is reached for real:
the database is left as OpenClaw running as root closed it (Node's SQLite, OpenClaw's driver) and the
DAG, or the upload's export, runs as another user through ``setpriv``. That user may write everywhere
else in the state dir, so a file it created, staged or archived would show. The worker runs the suite's
interpreter, venv and package from a copy it can read (``tests.privileges.worker_python``): the checkout
may sit in a folder only root can enter.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from tests.e2e.conftest import DATABASE, database_files
from tests.e2e.test_dag_runs import snapshot_tree
from tests.privileges import WorkerPython, worker_python
from tools.demo.sample_state import make_state
from tools.openclaw.fixture import OpenClaw
from tools.stacks.sandbox import API_KEY, new_sandbox
from tools.standins.nexus import NexusStandin

WORKER = 65534  # nobody: not the database's owner (root, who ran OpenClaw)
SIDE_FILES = ("openclaw-agent.sqlite-wal", "openclaw-agent.sqlite-shm")
CLOSE_AS_OPENCLAW = """
const { DatabaseSync } = require("node:sqlite");
const db = new DatabaseSync(process.argv[1]);
db.prepare("SELECT count(*) FROM sqlite_master").get();
db.close();
"""
# Runs the upload's export of one discovered session (argv[2], JSON) and prints what it raised.
EXPORT_AS_WORKER = """
import json, sys
from pathlib import Path
from openclaw_nexus import stores
try:
    stores.open_transcript(Path(sys.argv[1]), json.loads(sys.argv[2]))
except Exception as exc:
    print(json.dumps([type(exc).__name__, str(exc)]))
else:
    print(json.dumps(None))
"""


def as_worker() -> list[str]:
    """The command prefix that runs a child as WORKER; fails (never skips) where that cannot be done."""
    if os.geteuid() != 0:
        pytest.fail(
            "needs root (as CI runs): only root can make OpenClaw's database another user's than the "
            "worker's, which is what this refusal is about"
        )
    if shutil.which("setpriv") is None:
        pytest.fail("running as root without setpriv (util-linux): cannot run the worker as another user")
    return ["setpriv", f"--reuid={WORKER}", f"--regid={WORKER}", "--clear-groups", "--"]


@pytest.fixture(scope="module")
def worker() -> Iterator[WorkerPython]:
    """The suite's Python, venv and package where WORKER can read them, once for this module."""
    prefix = as_worker()
    root = Path(tempfile.mkdtemp(prefix="sqlite-owner-python-"))
    root.chmod(0o711)
    try:
        yield worker_python(root / "copy", prefix)
    finally:
        shutil.rmtree(root)


@pytest.fixture
def shared_root() -> Iterator[Path]:
    """A folder the worker can reach (pytest's own tmp folders are root's, mode 700)."""
    root = Path(tempfile.mkdtemp(prefix="sqlite-owner-"))
    root.chmod(0o711)
    try:
        yield root
    finally:
        shutil.rmtree(root)


def copy_of_the_migrated_state(migrated_template, state: Path) -> Path:
    """A copy of the agent migrated by OpenClaw's doctor (its database still has ``-wal``/``-shm``, as
    while OpenClaw runs); the database's path."""
    template, _ = migrated_template
    shutil.copytree(template, state, symlinks=True)
    return state / "agents" / "main" / DATABASE


def close_as_openclaw_and_hand_over(state: Path, database: Path) -> None:
    """OpenClaw's driver closes the database (the last connection: ``-wal``/``-shm`` are removed); then
    everything of the state dir but the database is handed to the worker."""
    subprocess.run([str(OpenClaw.installed().node), "-e", CLOSE_AS_OPENCLAW, str(database)], check=True)
    with database.open("rb") as handle:
        header = handle.read(20)
    assert header[18] == 2, "OpenClaw's database is not in WAL mode: the refusal does not apply"
    assert sorted(database_files(database.parents[1])) == ["openclaw-agent.sqlite"], "not closed"
    for path in [state, *state.rglob("*")]:
        os.chown(path, WORKER, WORKER, follow_symlinks=False)
    os.chown(database, 0, 0)
    database.chmod(0o644)  # readable by the worker, as a shared group would make it


def assert_refusal(reason: str, database: Path) -> None:
    assert reason.startswith(f"{database}: its -wal and -shm file is absent (OpenClaw closed it)"), reason
    assert f"runs as uid {WORKER}, not the database owner's uid 0" in reason, reason
    assert "run the file tasks as OpenClaw's user" in reason, reason


def test_a_closed_database_of_another_user_is_refused_by_discovery_and_nothing_is_read_or_created(
    template_home, migrated_template, shared_root, worker
):
    prefix = as_worker()
    state = shared_root / "openclaw"
    database = copy_of_the_migrated_state(migrated_template, state)
    # A JSONL-era agent beside it, which the same worker uploads and archives.
    jsonl = {
        item["sessionId"] for item in make_state(state, ["jsonl"], completed=2, seed=11)["jsonl"]["completed"]
    }
    close_as_openclaw_and_hand_over(state, database)
    agent = database.parents[1]
    before = snapshot_tree(agent)

    with NexusStandin(api_key=API_KEY, record_dir=shared_root / "nexus") as nexus:
        sandbox = new_sandbox(template_home, shared_root / "airflow", state, nexus.url)
        for path in [sandbox.home, *sandbox.home.rglob("*")]:
            os.chown(path, WORKER, WORKER)
        sandbox.command_prefix = prefix
        sandbox.bin_dir, sandbox.dags, sandbox.plugins = worker.bin_dir, worker.dags, worker.plugins
        sandbox.extra_env.update(worker.env)
        run = sandbox.run_dag({"settle_minutes": 0})
        records = nexus.requests()

    errors = run.job_result["errors"]
    assert [(e["agentId"], e["stage"], e["file"]) for e in errors] == [("main", "discover", str(DATABASE))], (
        errors,
        database_files(agent).keys(),
    )
    [error] = errors
    assert_refusal(error["reason"].removeprefix("agent skipped: "), database)
    assert sorted(database_files(agent)) == ["openclaw-agent.sqlite"], (
        "the worker created OpenClaw's -wal/-shm"
    )
    assert snapshot_tree(agent) == before, "nothing of the agent was read out, staged or archived"
    assert not (agent / "sessions" / "archive").exists()
    assert [r for r in records if r["agentId"] == "main"] == []
    # The same worker could write here: the other agent's sessions were uploaded and archived, by it.
    assert sorted(r["sessionId"] for r in records if r["status"] == 201) == sorted(jsonl)
    archived = list((state / "agents" / "jsonl" / "sessions" / "archive").glob("*.jsonl"))
    assert len(archived) == len(jsonl) and {p.stat().st_uid for p in archived} == {WORKER}
    assert run.state == "failed"
    assert sandbox.leaks(API_KEY, run.output) == []


def test_a_database_closed_after_discovery_is_refused_by_the_upload_and_nothing_is_staged(
    migrated_template, shared_root, worker
):
    """Discovery ran while OpenClaw had the database open; OpenClaw then closed it, and the upload's
    export, as another user, refuses it."""
    prefix = as_worker()
    state = shared_root / "openclaw"
    database = copy_of_the_migrated_state(migrated_template, state)
    future = discovery.Window(now=4102444800.0, settle_seconds=0)  # 2100: everything has settled
    sessions = [s for s in stores.scan_agent(state, "main", future).sessions if s["store"] == "sqlite"]
    assert sessions, "the migrated agent has no completed database session to export"
    close_as_openclaw_and_hand_over(state, database)
    agent = database.parents[1]
    before = snapshot_tree(agent)

    done = subprocess.run(
        [*prefix, str(worker.python), "-c", EXPORT_AS_WORKER, str(state), json.dumps(sessions[0])],
        env={**os.environ, **worker.env},
        cwd=shared_root,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)
    assert outcome is not None, (
        f"exported as the worker; OpenClaw's files now: {sorted(database_files(agent))}"
    )
    kind, reason = outcome
    assert kind == "StoreError"
    assert_refusal(reason, database)
    assert sorted(database_files(agent)) == ["openclaw-agent.sqlite"], (
        "the worker created OpenClaw's -wal/-shm"
    )
    assert snapshot_tree(agent) == before, "nothing was staged"
