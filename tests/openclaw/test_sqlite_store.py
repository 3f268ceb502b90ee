"""openclaw_nexus.sqlite_store against an agent database written by OpenClaw 2026.9.6 itself (its doctor
migrates a JSONL-era agent), then changed the way OpenClaw's writer would, with Node's SQLite and Node's
zstd (OpenClaw's CHECK constraints need a newer SQLite than Python's): what is live, what is completed,
and the bytes an export holds."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import zstandard

from openclaw_nexus import discovery, sqlite_db, sqlite_export, sqlite_live, sqlite_store, stores
from tools.openclaw.fixture import OpenClaw

# Runs SQL statements (argv[2], a JSON list of [sql, params]) in one write transaction; a parameter
# {"zstd": "text"} becomes that text compressed by Node's zstd, as OpenClaw stores large events, and
# {"bytes": [...]} a blob.
OPENCLAW_WRITE = """
const { DatabaseSync } = require("node:sqlite");
const zlib = require("node:zlib");
const db = new DatabaseSync(process.argv[1]);
const value = (p) => {
  if (p && typeof p === "object" && "zstd" in p) return zlib.zstdCompressSync(Buffer.from(p.zstd));
  if (p && typeof p === "object" && "bytes" in p) return Buffer.from(p.bytes);
  return p;
};
db.exec("BEGIN IMMEDIATE");
for (const [sql, params] of JSON.parse(process.argv[2])) db.prepare(sql).run(...params.map(value));
db.exec("COMMIT");
db.close();
"""
# The shape OpenClaw's CHECK requires of a compressed row's navigation projection.
NAVIGATION = json.dumps(
    {
        "version": 1,
        "report": {"kind": "leaf"},
        "navigation": {},
        "reset": {},
        "model": {},
        "modelBytes": 0,
        "modelWithoutCheckpointBytes": 0,
        "withoutCustomDataBytes": 0,
    }
)
WINDOW = discovery.Window(now=4102444800.0, settle_seconds=0)  # 2100: everything has settled


def database(state: Path) -> Path:
    return state / "agents" / "main" / sqlite_db.DATABASE


def openclaw_write(state: Path, *statements: tuple[str, list]) -> None:
    node = OpenClaw.installed().node
    script = json.dumps([[sql, params] for sql, params in statements])
    subprocess.run([str(node), "-e", OPENCLAW_WRITE, str(database(state)), script], check=True, timeout=60)


def query(state: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with closing(sqlite3.connect(f"file:{database(state)}?mode=ro", uri=True)) as db:
        return db.execute(sql, params).fetchall()


def nodes(state: Path) -> dict[str, tuple[str, int | None]]:
    rows = query(state, "SELECT session_key, current_session_id, archived_at FROM session_nodes")
    return {key: (sid, archived) for key, sid, archived in rows}


def archived_sid(state: Path) -> str:
    return next(sid for sid, archived in nodes(state).values() if archived is not None)


def main_sid(state: Path) -> str:
    return nodes(state)["agent:main:main"][0]


def completed(state: Path) -> set[str]:
    return set(sqlite_live.scan_database(database(state)).completed)


def test_openclaws_migration_leaves_the_recovered_session_completed_and_the_indexed_ones_live(state):
    found = sqlite_live.scan_database(database(state))
    assert found.schema == 23
    live = {sid for sid, archived in nodes(state).values() if archived is None}
    assert found.live == live and len(live) == 2
    assert set(found.completed) == {archived_sid(state)}
    assert found.completed[archived_sid(state)][2] is True  # an archived node


def set_main_entry(state: Path, **fields) -> None:
    entry = json.loads(
        query(state, "SELECT entry_json FROM session_nodes WHERE session_key = 'agent:main:main'")[0][0]
    )
    openclaw_write(
        state,
        (
            "UPDATE session_nodes SET entry_json = ? WHERE session_key = 'agent:main:main'",
            [json.dumps({**entry, **fields})],
        ),
    )


def test_a_compaction_checkpoint_of_a_live_entry_is_not_a_completed_session(state):
    sid = archived_sid(state)
    set_main_entry(
        state,
        compactionCheckpoints=[{"preCompaction": {"sessionId": sid}, "postCompaction": {"sessionId": "x"}}],
    )
    assert sid not in completed(state)
    with pytest.raises(sqlite_db.SessionNotCompleted, match="is live again"):
        sqlite_export.export_transcript(database(state), sid, state / "out.jsonl")
    assert not (state / "out.jsonl").exists()


@pytest.mark.parametrize("lineage", ["previousSessionId", "usageFamilySessionIds"])
def test_a_session_a_live_entry_keeps_only_as_lineage_is_completed(state, lineage):
    # After an idle rollover OpenClaw keeps the old id as previousSessionId: that session takes no more
    # events (the node writes to its new current id), so it is completed.
    sid = archived_sid(state)
    set_main_entry(state, **{lineage: sid if lineage == "previousSessionId" else [sid]})
    assert sid in completed(state)


def test_a_running_window_or_a_queued_input_keeps_a_session_live(state):
    sid = archived_sid(state)
    openclaw_write(state, ("UPDATE session_windows SET status = 'running' WHERE session_id = ?", [sid]))
    assert sid not in completed(state)
    openclaw_write(state, ("UPDATE session_windows SET status = 'done' WHERE session_id = ?", [sid]))
    assert sid in completed(state), "status describes the last run, not the session's end"


def test_an_unreadable_live_entry_keeps_all_its_windows_live(state):
    sid = main_sid(state)
    openclaw_write(
        state,
        (
            "UPDATE session_nodes SET entry_json = '{not json', current_session_id = 'other'"
            " WHERE session_key = ?",
            ["agent:main:main"],
        ),
    )
    assert sid not in completed(state)


def test_archiving_completes_a_session_and_unarchiving_makes_it_live_again(state):
    sid = main_sid(state)
    openclaw_write(
        state, ("UPDATE session_nodes SET archived_at = 1 WHERE session_key = 'agent:main:main'", [])
    )
    assert sid in completed(state)
    openclaw_write(
        state, ("UPDATE session_nodes SET archived_at = NULL WHERE session_key = 'agent:main:main'", [])
    )
    assert sid not in completed(state)


def test_export_decompresses_zstd_rows_and_checks_their_length(state):
    sid = archived_sid(state)
    big = json.dumps(
        {"type": "message", "id": "z", "message": {"content": "é" + "x" * 3000}}, ensure_ascii=False
    )
    size = len(big.encode())
    (seq,) = query(state, "SELECT max(seq) + 1 FROM transcript_events WHERE session_id = ?", (sid,))[0]
    openclaw_write(
        state,
        (
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd,"
            " event_utf8_bytes, navigation_json) VALUES (?, ?, NULL, 1, ?, ?, ?)",
            [sid, seq, {"zstd": big}, size, NAVIGATION],
        ),
    )
    rows = query(state, "SELECT event_json FROM transcript_events WHERE session_id = ? ORDER BY seq", (sid,))
    expected = b"".join(text.encode() + b"\n" for (text,) in rows[:-1]) + big.encode() + b"\n"
    exported = sqlite_export.export_transcript(database(state), sid, state / "out.jsonl")
    assert (state / "out.jsonl").read_bytes() == expected
    assert exported.size == len(expected) and exported.sha256 == hashlib.sha256(expected).hexdigest()
    assert exported.events == len(rows)
    assert oct((state / "out.jsonl").stat().st_mode & 0o777) == "0o600"

    openclaw_write(
        state, ("UPDATE transcript_events SET event_utf8_bytes = ? WHERE event_zstd IS NOT NULL", [size + 1])
    )
    with pytest.raises(
        sqlite_db.StoreError, match=f"decompresses to {size} bytes, not the {size + 1} recorded"
    ):
        sqlite_export.export_transcript(database(state), sid, state / "bad.jsonl")
    assert not (state / "bad.jsonl").exists()


def test_a_stored_export_whose_file_is_gone_is_discovered_and_exported_from_its_row(state):
    sid = "5a7d1e0c-0000-4000-8000-00000000dead"
    content = b'{"type":"session","id":"5a7d1e0c-0000-4000-8000-00000000dead"}\n{"type":"message"}\n'
    name = f"{sid}.jsonl.deleted.2026-11-01T00-00-00.000Z.0123456789abcdef0123456789abcdef.zst"
    blob = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(content)
    openclaw_write(
        state,
        (
            "INSERT INTO session_transcript_archives (session_id, generation, session_key, reason, encoding,"
            " archive_blob, archive_sha256, archive_name, created_at, published_at) VALUES"
            " (?, ?, 'agent:main:gone', 'deleted', 'zstd', ?, ?, ?, 1000, 1000)",
            [
                sid,
                "0123456789abcdef0123456789abcdef",
                {"bytes": list(blob)},
                hashlib.sha256(blob).hexdigest(),
                name,
            ],
        ),
    )
    scan = stores.scan_agent(state, "main", WINDOW)
    [session] = [s for s in scan.sessions if s["sessionId"] == sid]
    assert session["archiveName"] == name and session["kind"] == "deleted"
    sqlite_export.export_transcript(
        database(state), sid, state / "out.jsonl", source="export", archive_name=name
    )
    assert (state / "out.jsonl").read_bytes() == content


def test_a_checkpoint_holds_back_a_window_but_not_the_end_export_of_a_session_without_one(state):
    # OpenClaw 2026.7's sessions.reset carries checkpoints naming the reset session over to the next one:
    # that session has no window, only its .reset. file, which must still be sent (test_live_rules.py
    # on the state OpenClaw wrote); a checkpoint naming a window keeps it live for files as for windows.
    windowed, gone = archived_sid(state), "0d5e7c1a-5b2e-4c3f-9a8d-7e6f5a4b3c2d"
    set_main_entry(
        state,
        compactionCheckpoints=[
            {"sessionId": gone, "preCompaction": {"sessionId": gone}, "postCompaction": {"sessionId": gone}},
            {"preCompaction": {"sessionId": windowed}, "postCompaction": {"sessionId": main_sid(state)}},
        ],
    )
    found = sqlite_live.scan_database(database(state))
    assert {gone, windowed} <= found.live
    assert windowed in found.export_live and gone not in found.export_live
    assert main_sid(state) in found.export_live
    store = sqlite_store.SqliteStore(state, "main")
    assert store.live_set().contains(windowed, f"{windowed}.jsonl.deleted.x")
    assert not store.live_set().contains(gone, f"{gone}.jsonl.reset.x")
