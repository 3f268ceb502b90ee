"""Conversations inside one session (SQLite era) under two rows of the fault table that the whole-session path
already covers, through the store interface the DAG uses (``stores.scan_agent``,
``stores.open_transcript``, ``stores.already_sent``, ``stores.record_archived``), on an agent database
written by OpenClaw 2026.9.6 (its doctor migrates a JSONL-era agent). Reset events are appended with Node's
SQLite as OpenClaw's chat path appends them; the in-place edit of a row is a rewrite the test plays (the
rewrites OPENCLAW.md records are append-only compaction and truncation); the faults are made as
``tests/e2e/test_sqlite_faults.py`` makes them (a Python writer holding an exclusive lock, the pages after
SQLite's header overwritten, ``PRAGMA user_version = 24``):

- the database locked past the busy timeout, corrupt, or of an agent schema newer than 23, while a session
  has finished conversations: the same error the session-level path gives (naming the agent's database),
  nothing staged, no archive copy, OpenClaw's database files byte-identical;
- a conversation whose bytes changed after it was uploaded: a new version, archived as
  ``<sessionId>@<conversation>+1.jsonl`` next to the first copy; the unchanged conversations are not
  offered again. A conversation is versioned by its closing time (the reset that closed it, or for the
  last one the session's last change): the rows of a conversation closed by a reset are final in
  OpenClaw, so the changes there are to a completed session's last conversation, and to a conversation
  sent as that and closed by a reset later (unarchived, continued, reset).

The expected bytes are the session's rows read here with Python's sqlite3 and split at reset events with
the json library (``tests.oracle``), not with the package's code.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from openclaw_nexus import sqlite_db, stores
from openclaw_nexus.staging import STAGING_DIR
from tests.e2e.conftest import assert_database_untouched, database_files
from tests.e2e.test_dag_runs import snapshot_tree
from tests.openclaw.test_conversations_store import T0, append_turn, archive_dir, rows, split
from tests.openclaw.test_sqlite_store import WINDOW, archived_sid, database, main_sid, openclaw_write

AGENT = "main"
DATABASE = str(sqlite_db.DATABASE)  # the ``file`` a discovery error names: agent/openclaw-agent.sqlite
FAULTS = ["locked", "corrupt", "future_schema"]

# The test plays a writer of OpenClaw's that holds its database past the busy timeout (as the e2e fault
# test does): exclusive locking mode, so no WAL reader gets in either. Its transaction is rolled back.
LOCK_HOLDER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA locking_mode=EXCLUSIVE")
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()
db.execute("ROLLBACK")
db.close()
"""


def agent_dir(state: Path) -> Path:
    return state / "agents" / AGENT


@contextmanager
def locked(state: Path) -> Iterator[None]:
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(database(state))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = holder.stdout.readline().strip()
        if line != "locked":
            holder.kill()
            raise AssertionError(f"the test's writer could not lock the database: {holder.stderr.read()}")
        yield
    finally:
        if holder.poll() is None:
            holder.communicate("", timeout=30)


@contextmanager
def fault(state: Path, kind: str) -> Iterator[None]:
    """The database as the fault leaves it, for the duration of the block."""
    if kind == "locked":
        with locked(state):
            yield
        return
    if kind == "corrupt":
        with database(state).open("r+b") as handle:  # keep SQLite's header, break the pages after it
            handle.seek(100)
            handle.write(b"\xa5" * 8000)
    else:
        with closing(sqlite3.connect(database(state))) as db:  # the test plays a future OpenClaw
            db.execute("PRAGMA user_version = 24")
    yield


def expected_reason(state: Path, kind: str, reason: str) -> None:
    """The session-level path's error texts (``tests/e2e/test_sqlite_faults.py``), each naming the file."""
    path = database(state)
    if kind == "locked":
        assert reason == (
            f"{path}: locked by another writer for more than 5 s (database is locked); try a later run"
        )
    elif kind == "corrupt":
        assert reason in (
            f"{path}: database disk image is malformed; nothing of this agent is read",
            f"{path}: file is not a database; nothing of this agent is read",
        )
    else:
        assert reason == (
            f"{path} has agent schema 24, newer than the newest this package was tested with "
            "(23, OpenClaw 2026.9.6): nothing of this agent is read until it is"
        )


def chat_with_resets(state: Path) -> str:
    """The agent's main session (live) as a chat that was reset twice: conversations ``0`` and
    ``b6b9b41d`` finished, ``0c0ffee1`` open."""
    sid = main_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "second conversation", T0 + 10)
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)
    return sid


def items_of(scan, sid: str) -> list[dict]:
    return [s for s in scan.sessions if s["sessionId"] == sid]


def agent_files(state: Path) -> dict[str, bytes]:
    """Every file of the agent folder but the database's (``assert_database_untouched`` checks those)."""
    return {
        name: data for name, data in snapshot_tree(agent_dir(state)).items() if not name.startswith(DATABASE)
    }


@pytest.mark.parametrize("kind", FAULTS)
def test_a_database_fault_at_discovery_offers_no_conversation_and_names_the_file(state, kind):
    sid = chat_with_resets(state)
    healthy = stores.scan_agent(state, AGENT, WINDOW)
    assert [s["conversation"] for s in items_of(healthy, sid)] == ["0", "b6b9b41d"], (
        "the fixture has no finished conversations to refuse"
    )

    with fault(state, kind):
        files_before = agent_files(state)
        db_before = database_files(agent_dir(state))
        scan = stores.scan_agent(state, AGENT, WINDOW).to_dict()
        db_after = database_files(agent_dir(state))

    [error] = scan["errors"]
    assert (error["agentId"], error["stage"], error["file"], error["sessionId"]) == (
        AGENT,
        "discover",
        DATABASE,
        None,
    )
    assert error["reason"].startswith("agent skipped: ")
    expected_reason(state, kind, error["reason"].removeprefix("agent skipped: "))
    assert scan["sessions"] == [], "nothing of the agent is offered, conversations included"
    assert scan["conversations"] == {"finished": 0, "open": 0}
    assert scan["era"] == "sqlite" and scan["schema"] is None
    assert agent_files(state) == files_before, "nothing staged, archived or moved"
    assert not archive_dir(state).exists()
    assert_database_untouched(db_before, db_after)


@pytest.mark.parametrize("kind", FAULTS)
def test_a_database_fault_at_export_stages_nothing_for_a_conversation_as_for_a_whole_session(state, kind):
    sid = chat_with_resets(state)
    whole_sid = archived_sid(state)  # completed, never reset: the session-level path
    scan = stores.scan_agent(state, AGENT, WINDOW)
    conversation_items = items_of(scan, sid)
    [whole] = items_of(scan, whole_sid)
    assert [s["conversation"] for s in conversation_items] == ["0", "b6b9b41d"]
    assert whole.get("conversation") is None and whole["store"] == "sqlite"

    with fault(state, kind):
        files_before = agent_files(state)
        db_before = database_files(agent_dir(state))
        reasons = {}
        for item in [*conversation_items, whole]:
            with pytest.raises(sqlite_db.StoreError) as raised:
                stores.open_transcript(state, item)
            reasons[item.get("conversation")] = str(raised.value)
        db_after = database_files(agent_dir(state))

    expected_reason(state, kind, reasons[None])
    assert reasons == {"0": reasons[None], "b6b9b41d": reasons[None], None: reasons[None]}, (
        "a conversation gets the session-level error"
    )
    staging = agent_dir(state) / "sessions" / STAGING_DIR
    assert sorted(p.name for p in staging.iterdir()) == [], "nothing staged (no .part either)"
    assert sorted(p.name for p in archive_dir(state).iterdir()) == [".staging"], "no archive copy"
    assert agent_files(state) == files_before
    assert_database_untouched(db_before, db_after)


def send(state: Path, item: dict) -> tuple[bytes, str | None, str]:
    """What the upload and archive tasks do for one item, without HTTP: export it, look for a copy of the
    same bytes (``duplicateOf``, as the upload does before sending), record the archive copy. Returns the
    bytes, the duplicate's name (None: they would be sent) and the copy's name."""
    transcript = stores.open_transcript(state, item)
    data = transcript.path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    receipt = {
        "staged": transcript.staged,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": sha256,
        "duplicateOf": stores.already_sent(state, item, size=len(data), sha256=sha256),
    }
    outcome = stores.record_archived(state, item, receipt)
    return data, receipt["duplicateOf"], outcome.archived_as


def rewrite_row(state: Path, sid: str, text: str, at_ms: int) -> None:
    """OpenClaw rewrites one row of the session in place (its content edited), in one transaction that
    stamps the window and moves the transcript's rewrite watermark, as its rewrites do."""
    [(seq, event_json)] = [(seq, j) for seq, j, _ in rows(state, sid) if f'"text":"{text}"' in j]
    event = json.loads(event_json)
    event["message"]["content"][0]["text"] = f"{text} (edited)"
    openclaw_write(
        state,
        (
            "UPDATE transcript_events SET event_json = ? WHERE session_id = ? AND seq = ?",
            [json.dumps(event, separators=(",", ":")), sid, seq],
        ),
        (
            "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
            [at_ms, at_ms, sid],
        ),
        (
            "UPDATE transcript_rewrite_watermarks SET generation = ?, updated_at = ? WHERE session_id = ?",
            [hashlib.sha256(f"{sid}{at_ms}".encode()).hexdigest()[:32], at_ms, sid],
        ),
    )


def set_archived(state: Path, sid: str, at_ms: int | None) -> None:
    """Archive the session's node (``at_ms``) or unarchive it (None), as ``sessions.patch {archived}`` does:
    the node's ``archived_at`` and its entry's ``archivedAt``."""
    entry = (
        "json_set(entry_json, '$.archivedAt', ?)"
        if at_ms is not None
        else "json_remove(entry_json, '$.archivedAt')"
    )
    openclaw_write(
        state,
        (
            f"UPDATE session_nodes SET archived_at = ?, entry_json = {entry}, updated_at = ?"
            " WHERE current_session_id = ?",
            [at_ms, *([at_ms] if at_ms is not None else []), at_ms or T0 + 35, sid],
        ),
    )


def offered(state: Path, sid: str) -> list[str]:
    return [s["conversation"] for s in items_of(stores.scan_agent(state, AGENT, WINDOW), sid)]


def copies_of(state: Path, sid: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in archive_dir(state).glob(f"{sid}*")}


def send_all(state: Path, sid: str, expected: dict[str, bytes]) -> None:
    """Send and archive every item offered for the session; each must be exactly ``expected`` and new."""
    for item in items_of(stores.scan_agent(state, AGENT, WINDOW), sid):
        data, duplicate, name = send(state, item)
        assert (data, duplicate) == (expected[item["conversation"]], None), item["conversation"]
        assert stat.S_IMODE((state / "agents" / AGENT / "sessions" / name).stat().st_mode) == 0o600


def test_a_completed_sessions_last_conversation_changed_after_its_upload_is_a_new_version(state):
    """OpenClaw changes a completed session after its last conversation was sent (the window's last change
    moves): that conversation is offered again and archived as ``+1`` beside the first copy; the
    conversations closed by a reset stay done."""
    sid = archived_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "second conversation", T0 + 10)
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)
    append_turn(state, sid, None, "third conversation", T0 + 30)
    before = split(state, sid)
    assert offered(state, sid) == ["0", "b6b9b41d", "0c0ffee1"]
    send_all(state, sid, before)
    first_copies = copies_of(state, sid)
    assert first_copies == {f"{sid}@{c}.jsonl": before[c] for c in before}
    assert offered(state, sid) == [], "all sent: nothing offered"

    rewrite_row(state, sid, "third conversation", T0 + 40)
    after = split(state, sid)
    assert after["0c0ffee1"] != before["0c0ffee1"] and b"(edited)" in after["0c0ffee1"]
    db_before = database_files(agent_dir(state))
    assert offered(state, sid) == ["0c0ffee1"], "the changed conversation again, no other"
    send_all(state, sid, after)
    assert copies_of(state, sid) == {**first_copies, f"{sid}@0c0ffee1+1.jsonl": after["0c0ffee1"]}
    assert offered(state, sid) == [], "the new version is done too"
    assert_database_untouched(db_before, database_files(agent_dir(state)))


def test_a_conversation_sent_as_the_last_one_that_grows_after_an_unarchive_is_a_new_version(state):
    """The one way a conversation closed by a reset can differ from what was sent: it was sent as the
    last conversation of an archived session, which was then unarchived, continued and reset. Its copy
    carries the old closing time (the session's last change then), not the new reset's: it is offered
    again with the rows added since, as ``+1``; the new last conversation waits until the session
    completes again; the earlier conversations are never offered again."""
    sid = archived_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "second conversation", T0 + 10)
    before = split(state, sid)
    assert offered(state, sid) == ["0", "b6b9b41d"]
    send_all(state, sid, before)
    first_copies = copies_of(state, sid)
    assert offered(state, sid) == []

    set_archived(state, sid, None)  # unarchived: live again
    append_turn(state, sid, None, "more of the second conversation", T0 + 40)
    assert offered(state, sid) == [], "a live session's last conversation is open"
    append_turn(state, sid, "feedface", "/reset", T0 + 50)
    append_turn(state, sid, None, "third conversation", T0 + 60)
    grown = split(state, sid)
    assert grown["b6b9b41d"].startswith(before["b6b9b41d"]) and grown["b6b9b41d"] != before["b6b9b41d"]
    assert grown["0"] == before["0"]
    assert offered(state, sid) == ["b6b9b41d"], "closed by the new reset, grown since it was sent"
    send_all(state, sid, grown)
    assert copies_of(state, sid) == {**first_copies, f"{sid}@b6b9b41d+1.jsonl": grown["b6b9b41d"]}
    assert offered(state, sid) == [], "the open conversation is not sent while the session is live"

    set_archived(state, sid, T0 + 70)
    assert offered(state, sid) == ["feedface"]
    send_all(state, sid, grown)
    assert copies_of(state, sid) == {
        **first_copies,
        f"{sid}@b6b9b41d+1.jsonl": grown["b6b9b41d"],
        f"{sid}@feedface.jsonl": grown["feedface"],
    }
    assert offered(state, sid) == []
