"""Conversations inside one session (SQLite era), through the store the DAG uses, in the cases OpenClaw is
not run for: on an agent database written by OpenClaw 2026.9.6 (its doctor migrates a JSONL-era agent from
the project's generator), reset events and messages are appended by hand with Node's SQLite the way
OpenClaw's chat path appends them (``append_turn``), at moments OpenClaw's own client would only reach with
a gateway running inside the test: between discovery and the export, or after a session was recorded as
all sent. The cases OpenClaw produces itself (a live chat's conversations, a completed one, truncation by
``openclaw sessions compact --max-lines`` and deletion, before or after anything was sent) are in
``test_conversations_rewrite.py``, on state OpenClaw wrote throughout.

The expected bytes are the session's rows read here with Python's sqlite3 (``rows_transcript``) and split
at reset events by parsing each line with the json library, not with the package's code."""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from openclaw_nexus import sqlite_store
from tests.openclaw.test_sqlite_store import (
    WINDOW,
    archived_sid,
    database,
    main_sid,
    openclaw_write,
    query,
)
from tests.oracle import conversations_of
from tools.openclaw.fixture import read_only, rows_transcript


def rows(state: Path, sid: str) -> list[tuple[int, str, int]]:
    return query(
        state,
        "SELECT seq, event_json, created_at FROM transcript_events WHERE session_id = ? ORDER BY seq",
        (sid,),
    )


def append_turn(state: Path, sid: str, reset_id: str | None, text: str, at_ms: int) -> None:
    """What ``/new`` (or an idle expiry before a message) appends: a reset event, then a user message;
    without ``reset_id`` just the message. Same transaction, as OpenClaw writes them."""
    last_seq, last_json, _ = rows(state, sid)[-1]
    parent = json.loads(last_json).get("id")
    events = []
    if reset_id:
        events.append(
            {"type": "reset", "id": reset_id, "parentId": parent, "timestamp": iso(at_ms), "reason": "new"}
        )
        parent = reset_id
    message_id = hashlib.sha256(f"{sid}{text}".encode()).hexdigest()[:8]
    events.append(
        {
            "type": "message",
            "id": message_id,
            "parentId": parent,
            "timestamp": iso(at_ms + 1),
            "message": {"role": "user", "content": [{"type": "text", "text": text}]},
        }
    )
    statements = []
    for n, event in enumerate(events):
        seq = last_seq + 1 + n
        compact = json.dumps(event, separators=(",", ":"))
        statements += [
            (
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)",
                [sid, seq, compact, at_ms + n],
            ),
            (
                "INSERT INTO transcript_event_identities"
                " (session_id, event_id, seq, event_type, parent_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [sid, event["id"], seq, event["type"], event["parentId"], at_ms + n],
            ),
        ]
    statements.append(
        (
            "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
            [at_ms + 1, at_ms + 1, sid],
        )
    )
    openclaw_write(state, *statements)


def iso(ms: int) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def split(state: Path, sid: str) -> dict[str, bytes]:
    """The session's conversations as the README defines them, from its rows read here."""
    with read_only(database(state)) as db:
        return conversations_of(rows_transcript(db, sid))


def upload_and_archive(state: Path, store: sqlite_store.SqliteStore, item: dict) -> bytes:
    """What the DAG's upload and archive do for one item, without HTTP: export, then record the copy."""
    transcript = store.open_transcript(item)
    data = transcript.path.read_bytes()
    info = transcript.path.stat()
    receipt = {
        "staged": transcript.staged,
        "size": info.st_size,
        "mtimeNs": info.st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    store.record_archived(item, receipt)
    return data


def archive_dir(state: Path) -> Path:
    return state / "agents" / "main" / "sessions" / "archive"


T0 = 1_900_000_000_000  # ms, after everything the doctor imported


def test_a_reset_appended_after_discovery_changes_nothing_already_finished(state):
    """State: the main session of an agent database OpenClaw 2026.9.6's doctor wrote; hand-made: a reset
    event appended before discovery, and another between discovery and the export (a moment OpenClaw's
    client reaches only with a gateway running inside the test). Asserts: the item discovered before the
    second reset exports conversation ``0`` as it was, byte for byte the rows read here; the next scan
    offers the conversation the second reset closed, byte for byte."""
    sid = main_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    store = sqlite_store.SqliteStore(state, "main")
    (item,) = [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    expected = split(state, sid)["0"]
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)  # lands between discovery and the export
    assert upload_and_archive(state, store, item) == expected
    (later,) = [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert later["conversation"] == "b6b9b41d"
    assert upload_and_archive(state, store, later) == split(state, sid)["b6b9b41d"]


def test_a_session_found_all_sent_is_recorded_by_its_state_and_a_change_reopens_the_check(state):
    """State: the archived (recovered) session of an agent database OpenClaw 2026.9.6's doctor wrote;
    hand-made: two reset events appended, the copies' mtimes moved, and later one more message appended
    after the session was recorded as all sent (OpenClaw's own rewrite of a recorded chat is in
    ``test_conversations_rewrite.py``). Asserts: after its conversations are archived, the next scan
    records the session in ``archive/.all-sent`` under its count of finished conversations and its last
    change (0600 in a 0700 folder); later scans take it as done from that name alone (they no longer look
    at the copies), until the session changes: then only the conversation that changed is offered."""
    sid = archived_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 10)
    store = sqlite_store.SqliteStore(state, "main")
    expected = split(state, sid)
    for item in [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]:
        assert upload_and_archive(state, store, item) == expected[item["conversation"]]
    marks = archive_dir(state) / ".all-sent"
    assert not marks.exists(), "recorded by a scan that finds them archived, not by the archive step"

    scan = store.find(WINDOW)
    assert not [s for s in scan.sessions if s["sessionId"] == sid]
    [(changed_ms,)] = query(
        state,
        "SELECT max(updated_at, coalesce(transcript_updated_at, 0)) FROM session_windows"
        " WHERE session_id = ?",
        (sid,),
    )
    assert sorted(p.name for p in marks.iterdir()) == [f"{sid}+3+{changed_ms * 1_000_000}"]
    assert stat.S_IMODE(marks.stat().st_mode) == 0o700
    assert stat.S_IMODE((marks / f"{sid}+3+{changed_ms * 1_000_000}").stat().st_mode) == 0o600

    # Taken by name: with the copies' mtimes moved away from the closing times, still done...
    copies = sorted(archive_dir(state).glob(f"{sid}@*.jsonl"))
    assert len(copies) == 3
    for copy in copies:
        os.utime(copy, ns=(1, 1))
    assert not [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert store.find(WINDOW).conversations == scan.conversations
    # ...and without the record, the copies decide again: none holds its closing time now.
    (marks / f"{sid}+3+{changed_ms * 1_000_000}").unlink()
    offered = sorted(s["conversation"] for s in store.find(WINDOW).sessions if s["sessionId"] == sid)
    assert offered == ["0", "0c0ffee1", "b6b9b41d"]

    # Copies restored and recorded again; then OpenClaw appends to the session: its last change moves, the
    # record no longer matches, and only the conversation that changed is offered.
    for item in [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]:
        os.utime(archive_dir(state) / f"{sid}@{item['conversation']}.jsonl", ns=(item["mtimeNs"],) * 2)
    assert not [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert len(list(marks.iterdir())) == 1
    append_turn(state, sid, None, "one more message", T0 + 20)
    offered = [s["conversation"] for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert offered == ["0c0ffee1"]
