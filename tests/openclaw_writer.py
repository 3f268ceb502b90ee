"""OpenClaw's own writes to an agent database, for tests that need a session to complete (or a live one to
grow) while a stack watches: SQL in one write transaction through Node's SQLite, as OpenClaw's writer makes
it (its CHECK constraints need a newer SQLite than Python's)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import threading
import time
import uuid
from contextlib import closing
from pathlib import Path

from tests.openclaw.test_sqlite_store import OPENCLAW_WRITE
from tools.openclaw.fixture import OpenClaw


def database(state_dir: Path, agent: str) -> Path:
    return state_dir / "agents" / agent / "agent" / "openclaw-agent.sqlite"


def now_ms() -> int:
    return int(time.time() * 1000)


class Writer:
    """OpenClaw's writes, as its writer makes them: SQL in one write transaction through Node's SQLite
    (OpenClaw's CHECK constraints need a newer SQLite than Python's), JSONL lines appended in place."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.node = OpenClaw.installed().node
        self.lock = threading.Lock()  # one writer at a time, as OpenClaw's own write lock

    def sql(self, agent: str, *statements: tuple[str, list]) -> None:
        script = json.dumps([[sql, params] for sql, params in statements])
        with self.lock:
            subprocess.run(
                [str(self.node), "-e", OPENCLAW_WRITE, str(database(self.state_dir, agent)), script],
                check=True,
                timeout=60,
            )

    def query(self, agent: str, sql: str, params: tuple = ()) -> list[tuple]:
        uri = f"file:{database(self.state_dir, agent)}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            return db.execute(sql, params).fetchall()

    def append_event(self, agent: str, session_id: str) -> None:
        (seq,) = self.query(
            agent,
            "SELECT coalesce(max(seq), 0) + 1 FROM transcript_events WHERE session_id = ?",
            (session_id,),
        )[0]
        event = json.dumps({"type": "message", "id": uuid.uuid4().hex[:8], "message": {"role": "user"}})
        stamp = now_ms()
        self.sql(
            agent,
            (
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)",
                [session_id, seq, event, stamp],
            ),
            (
                "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
                [stamp, stamp, session_id],
            ),
        )

    def archive_node(self, agent: str, session_key: str) -> int:
        """Archive a session as ``openclaw sessions archive`` does (sets ``archived_at``): its commit time."""
        stamp = now_ms()
        self.sql(
            agent,
            (
                "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = ?",
                [stamp, stamp, session_key],
            ),
        )
        return stamp
