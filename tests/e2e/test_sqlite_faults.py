"""SQLite era, end to end: the real DAG over an agent migrated by OpenClaw 2026.9.6's own doctor, and
what happens when its database is locked, corrupt, of an unknown schema, or changes during an upload.

The test plays OpenClaw's writer where OpenClaw has no command for it (holding a lock, a future schema,
appending an event); the package itself only ever reads.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from tests.e2e.conftest import DATABASE, assert_database_untouched, database_files
from tests.e2e.test_dag_runs import snapshot_tree
from tools.demo.sample_state import make_state
from tools.openclaw.fixture import OpenClaw
from tools.stacks.sandbox import API_KEY

APPEND_EVENT = """
const { DatabaseSync } = require("node:sqlite");
const [path, sid, event] = process.argv.slice(1);
const db = new DatabaseSync(path);
const now = Date.now();
db.exec("BEGIN IMMEDIATE");
const { seq } = db.prepare("SELECT max(seq) + 1 AS seq FROM transcript_events WHERE session_id = ?").get(sid);
db.prepare(
  "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_utf8_bytes)"
  + " VALUES (?, ?, ?, ?, ?)"
).run(sid, seq, event, now, Buffer.byteLength(event));
db.prepare(
  "UPDATE session_windows SET transcript_updated_at = ?, updated_at = ? WHERE session_id = ?"
).run(now, now, sid);
db.exec("COMMIT");
db.close();
"""


def rows_export(database: Path, session_id: str) -> bytes:
    """OpenClaw's export form, read here independently of the package (no compressed rows in this state)."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        db.text_factory = bytes
        rows = db.execute(
            "SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ? ORDER BY seq",
            (session_id,),
        ).fetchall()
    assert rows and all(packed is None for _, packed in rows)
    return b"".join(text + b"\n" for text, _ in rows)


def received(nexus) -> dict[tuple[str, str], list[bytes]]:
    got: dict[tuple[str, str], list[bytes]] = {}
    for record in nexus.accepted():
        payload = json.loads(nexus.body(record["n"]))
        got.setdefault((payload["agentId"], payload["sessionId"]), []).append(payload["transcript"].encode())
    return got


def test_migrated_agent_uploads_database_sessions_and_leftover_files_and_never_writes_openclaws_db(
    sandbox, nexus, migrated
):
    agent = migrated["agent"]
    database = agent / DATABASE
    expected = {("main", sid): [rows_export(database, sid)] for sid in migrated["recovered"]}
    sessions = agent / "sessions"
    for name in migrated["leftovers"]:
        expected[("main", name.split(".jsonl")[0])] = [(sessions / name).read_bytes()]
    import_archive = snapshot_tree(agent / "session-sqlite-import-archive")
    db_before = database_files(agent)
    assert migrated["recovered"] and migrated["leftovers"] and migrated["live"]

    first = sandbox.run_dag({"settle_minutes": 0})
    second = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success", first.output[-3000:]
    assert received(nexus) == expected, "each completed session once, byte for byte; no live session"
    assert not set(migrated["live"]) & {sid for _, sid in received(nexus)}
    assert first.job_result["message"] == f"Uploaded {len(expected)} sessions across 1 agent"
    assert second.job_result["itemsProcessed"] == 0 and second.state == "success"
    assert database_files(agent) == db_before, "OpenClaw's database files are byte-identical"
    assert snapshot_tree(agent / "session-sqlite-import-archive") == import_archive
    archive = sessions / "archive"
    for (_, sid), [data] in expected.items():
        copy = archive / f"{sid}.jsonl"
        assert copy.read_bytes() == data
    for sid in migrated["recovered"]:
        assert oct((archive / f"{sid}.jsonl").stat().st_mode & 0o777) == "0o600"
    assert not any(sessions.glob("*.jsonl.reset.*")), "leftovers moved to the archive"
    assert list((archive / ".staging").iterdir()) == []
    assert f"{len(migrated['live'])} live sessions left to OpenClaw" in first.output
    assert sandbox.leaks(API_KEY, first.output, second.output) == []


def test_database_locked_by_a_writer_is_an_error_for_that_agent_only(sandbox, nexus, migrated, state_dir):
    make_state(state_dir, ["jsonl"], completed=2, seed=11)
    agent = migrated["agent"]
    before = snapshot_tree(agent / "sessions")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "db.execute('ROLLBACK')\n",
            str(agent / DATABASE),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        run = sandbox.run_dag({"settle_minutes": 0})
    finally:
        holder.communicate("", timeout=30)

    errors = run.job_result["errors"]
    assert [(e["agentId"], e["stage"], e["file"]) for e in errors] == [("main", "discover", str(DATABASE))]
    assert "locked by another writer for more than 5 s" in errors[0]["reason"]
    assert str(agent / DATABASE) in errors[0]["reason"]
    assert {r["agentId"] for r in nexus.accepted()} == {"jsonl"}, "the other agent goes on"
    assert run.job_result["message"] == "Uploaded 2 sessions across 1 agent"
    assert snapshot_tree(agent / "sessions") == before, "nothing of the locked agent moved"
    assert run.state == "failed"


@pytest.mark.parametrize("damage", ["corrupt", "future_schema"])
def test_corrupt_or_newer_database_is_refused_and_nothing_of_the_agent_moves(
    sandbox, nexus, migrated, damage
):
    agent = migrated["agent"]
    database = agent / DATABASE
    if damage == "corrupt":
        with database.open("r+b") as handle:  # keep SQLite's header, break the pages after it
            handle.seek(100)
            handle.write(b"\xa5" * 8000)
    else:
        with closing(sqlite3.connect(database)) as db:  # the test plays a future OpenClaw
            db.execute("PRAGMA user_version = 24")
    before = snapshot_tree(agent)
    db_before = database_files(agent)

    run = sandbox.run_dag({"settle_minutes": 0})

    assert nexus.requests() == []
    after = snapshot_tree(agent)
    assert {name: after.get(name) for name in before} == before, "not a byte changed, leftovers included"
    # Our writes above closed the database, so SQLite removed its -wal/-shm: see assert_database_untouched.
    assert_database_untouched(db_before, database_files(agent))
    assert set(after) - set(before) <= {f"{DATABASE}-wal", f"{DATABASE}-shm"}
    [error] = run.job_result["errors"]
    assert (error["agentId"], error["stage"], error["file"]) == ("main", "discover", str(DATABASE))
    assert str(database) in error["reason"]
    if damage == "corrupt":
        assert "malformed" in error["reason"] or "not a database" in error["reason"]
    else:
        assert "agent schema 24, newer than the newest this package was tested with (23" in error["reason"]
    assert run.state == "failed"


def test_a_row_added_while_uploading_is_sent_as_a_new_version_by_the_next_run(sandbox, nexus, migrated):
    agent = migrated["agent"]
    database = agent / DATABASE
    sid = migrated["recovered"][0]
    original = rows_export(database, sid)
    added = b'{"type":"message","id":"late","message":{"role":"user","content":"one more thing"}}'

    def openclaw_appends(record: dict) -> None:
        if record.get("sessionId") != sid or getattr(openclaw_appends, "done", False):
            return
        openclaw_appends.done = True
        # The test plays OpenClaw's writer, with Node's SQLite (OpenClaw's CHECK constraints need a newer
        # SQLite than Python's): one transaction appending an event and stamping the window.
        node = OpenClaw.installed().node
        subprocess.run(
            [str(node), "-e", APPEND_EVENT, str(database), sid, added.decode()], check=True, timeout=60
        )

    nexus.on_request = openclaw_appends
    first = sandbox.run_dag({"settle_minutes": 0})
    nexus.on_request = None
    second = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success" and second.state == "success", first.output[-3000:]
    versions = received(nexus)[("main", sid)]
    assert versions == [original, original + added + b"\n"], "the snapshot, then the new version"
    keys = [r["idempotencyKey"] for r in nexus.accepted() if r["sessionId"] == sid]
    assert len(set(keys)) == 2
    archive = agent / "sessions" / "archive"
    assert (archive / f"{sid}.jsonl").read_bytes() == original
    assert (archive / f"{sid}+1.jsonl").read_bytes() == original + added + b"\n"
    assert second.job_result["itemsProcessed"] == 1
