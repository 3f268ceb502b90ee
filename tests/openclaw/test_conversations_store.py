"""Conversations inside one session (SQLite era), through the store the DAG uses, on an agent database
written by OpenClaw 2026.9.6 (its doctor migrates a JSONL-era agent) and then changed the way OpenClaw's
chat path changes it, with Node's SQLite: reset events appended (``/new``, idle expiry...), and the
truncation ``sessions.compact`` with ``maxLines`` performs (rows deleted, ``seq`` renumbered from 1).

The expected bytes are the session's rows read here with Python's sqlite3 (``rows_transcript``) and split
at reset events by parsing each line with the json library, not with the package's code."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
from pathlib import Path

from openclaw_nexus import sqlite_store
from tests.e2e.conftest import assert_database_untouched, database_files
from tests.openclaw.test_sqlite_store import (
    OPENCLAW_WRITE,
    WINDOW,
    archived_sid,
    database,
    main_sid,
    openclaw_write,
    query,
)
from tests.oracle import conversations_of
from tools.openclaw.fixture import OpenClaw, read_only, rows_transcript


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


def truncate(state: Path, sid: str, keep_from_seq: int) -> None:
    """``sessions.compact`` with ``maxLines``: keep the header (seq 0) and rows from ``keep_from_seq``,
    delete the rest (reset events included), renumber the survivors from 1, first survivor's parent null."""
    survivors = [seq for seq, _, _ in rows(state, sid) if seq >= keep_from_seq]
    statements = [
        (
            "DELETE FROM transcript_event_identities WHERE session_id = ? AND seq > 0 AND seq < ?",
            [sid, keep_from_seq],
        ),
        ("DELETE FROM transcript_events WHERE session_id = ? AND seq > 0 AND seq < ?", [sid, keep_from_seq]),
    ]
    for new, old in enumerate(survivors, start=1):
        statements += [
            ("UPDATE transcript_events SET seq = ? WHERE session_id = ? AND seq = ?", [new, sid, old]),
            (
                "UPDATE transcript_event_identities SET seq = ? WHERE session_id = ? AND seq = ?",
                [new, sid, old],
            ),
        ]
    first_json = next(j for seq, j, _ in rows(state, sid) if seq == survivors[0])
    first = json.loads(first_json)
    first["parentId"] = None
    statements.append(
        (
            "UPDATE transcript_events SET event_json = ? WHERE session_id = ? AND seq = ?",
            [json.dumps(first, separators=(",", ":")), sid, 1],
        )
    )
    # OpenClaw rebuilds its projections of the renumbered rows; this reader reads none of them.
    script = OPENCLAW_WRITE.replace(
        'db.exec("BEGIN IMMEDIATE");', 'db.exec("PRAGMA foreign_keys = OFF");\ndb.exec("BEGIN IMMEDIATE");'
    )
    assert script != OPENCLAW_WRITE
    subprocess.run(
        [str(OpenClaw.installed().node), "-e", script, str(database(state)), json.dumps(statements)],
        check=True,
        timeout=60,
    )


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


def test_a_live_chat_sends_its_finished_conversations_once_and_never_the_open_one(state):
    sid = main_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "second conversation", T0 + 10)
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)
    before = database_files(state / "agents" / "main")
    store = sqlite_store.SqliteStore(state, "main")

    scan = store.find(WINDOW)
    items = [s for s in scan.sessions if s["sessionId"] == sid]
    assert [s["conversation"] for s in items] == ["0", "b6b9b41d"]
    assert [s["mtimeNs"] for s in items] == [T0 * 10**6, (T0 + 20) * 10**6]  # their closing resets
    assert scan.to_dict()["conversations"] == {"finished": 2, "open": 1}
    expected = split(state, sid)
    assert list(expected) == ["0", "b6b9b41d", "0c0ffee1"]
    for item in items:
        assert upload_and_archive(state, store, item) == expected[item["conversation"]]
    for name, closing in ((f"{sid}@0.jsonl", T0), (f"{sid}@b6b9b41d.jsonl", T0 + 20)):
        copy = archive_dir(state) / name
        assert copy.read_bytes() == expected[name.split("@")[1].removesuffix(".jsonl")]
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_mtime_ns == closing * 10**6
    # The conversations, as sent, rebuild the session's rows byte for byte (the open one read here).
    with read_only(database(state)) as db:
        whole = rows_transcript(db, sid)
    parts = [expected["0"]] + [expected[t].split(b"\n", 1)[1] for t in ("b6b9b41d", "0c0ffee1")]
    assert b"".join(parts) == whole

    again = store.find(WINDOW)
    assert not [s for s in again.sessions if s["sessionId"] == sid]
    assert again.skipped["already_archived"] >= 2
    assert_database_untouched(before, database_files(state / "agents" / "main"))


def test_a_reset_appended_after_discovery_changes_nothing_already_finished(state):
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


def test_truncation_after_upload_resends_nothing_and_loses_nothing(state):
    sid = main_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "kept tail of conversation one", T0 + 10)
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)
    store = sqlite_store.SqliteStore(state, "main")
    for item in [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]:
        upload_and_archive(state, store, item)
    sent_before = sorted(p.name for p in archive_dir(state).iterdir() if p.name.startswith(sid))
    tail = next(seq for seq, j, _ in rows(state, sid) if "kept tail" in j)
    truncate(state, sid, tail)  # conversation one's reset is gone; its tail now leads the session

    scan = store.find(WINDOW)
    assert not [s for s in scan.sessions if s["sessionId"] == sid], "the truncated tail was sent again"
    append_turn(state, sid, "5eed5eed", "/new", T0 + 30)
    (item,) = [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert item["conversation"] == "0c0ffee1"
    assert upload_and_archive(state, store, item) == split(state, sid)["0c0ffee1"]
    names = sorted(p.name for p in archive_dir(state).iterdir() if p.name.startswith(sid))
    assert names == sorted([*sent_before, f"{sid}@0c0ffee1.jsonl"])


def test_a_conversation_truncated_before_it_was_sent_is_sent_from_what_remains(state):
    sid = main_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    append_turn(state, sid, None, "never sent before the truncation", T0 + 10)
    truncate(state, sid, next(seq for seq, j, _ in rows(state, sid) if "never sent" in j))
    append_turn(state, sid, "0c0ffee1", "/reset", T0 + 20)
    store = sqlite_store.SqliteStore(state, "main")
    (item,) = [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert item["conversation"] == "0"
    assert upload_and_archive(state, store, item) == split(state, sid)["0"]
    assert (archive_dir(state) / f"{sid}@0.jsonl").exists()


def test_a_completed_session_sends_every_conversation_and_one_archived_whole_before_stays_done(state):
    sid = archived_sid(state)
    append_turn(state, sid, "b6b9b41d", "/new", T0)
    store = sqlite_store.SqliteStore(state, "main")
    items = [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    assert [s["conversation"] for s in items] == ["0", "b6b9b41d"]
    # An earlier release archived the whole session: a copy named <id>.jsonl with the window's last change.
    archive_dir(state).mkdir(parents=True, exist_ok=True)
    whole = archive_dir(state) / f"{sid}.jsonl"
    whole.write_bytes(b"{}\n")
    os.utime(whole, ns=(items[-1]["mtimeNs"], items[-1]["mtimeNs"]))
    assert not [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]
    whole.unlink()
    expected = split(state, sid)
    for item in items:
        assert upload_and_archive(state, store, item) == expected[item["conversation"]]
    assert not [s for s in store.find(WINDOW).sessions if s["sessionId"] == sid]


def test_a_session_found_all_sent_is_recorded_by_its_state_and_a_change_reopens_the_check(state):
    """After its conversations are archived, the next scan records the session in ``archive/.all-sent``
    under its count of finished conversations and its last change; later scans take it as done from that
    name alone (they no longer look at the copies), until OpenClaw changes the session."""
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
