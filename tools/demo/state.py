"""What the demo's OpenClaw state dir holds, read from the state itself (never written: the database is
opened read-only, like OpenClaw's own reader). Used by the demo (to name what it shows), by
``python -m tools.demo.rebuild`` (the manifest) and by ``tests/e2e/test_demo.py`` (the copy kept in the
repository against a fresh build).

:func:`describe` lists, per agent, its era and every session: its key, its state (``live``, ``archived``,
``superseded``, ``deleted``, ``ended``), where its transcript is (the database, OpenClaw's deletion export, a
file) and its conversations, each with the reason of the reset event that opens it and of what closes it
(the next reset event's reason, or how the session ended; ``None``: still open). :func:`shape` keeps of that
only what does not change from one build to the next (no ids, timestamps or paths).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import zstandard

DATA = Path(__file__).resolve().parent / "data"  # the repository's copy: data/state, data/manifest.json
DATABASE = Path("agent") / "openclaw-agent.sqlite"
_UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
_STAMP = r"\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}Z"
# JSONL era: <sid>.jsonl, <sid>.jsonl.reset.<ts>, <sid>.jsonl.deleted.<ts>; SQLite era's deletion export:
# <sid>.jsonl.deleted.<ts>.<32 hex>.zst.
_TRANSCRIPT = re.compile(
    rf"(?P<sid>{_UUID})\.jsonl(?:\.(?P<end>reset|deleted)\.{_STAMP}(?P<generation>\.[0-9a-f]{{32}}\.zst)?)?"
)


def _lines(data: bytes) -> list[dict]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def conversations(events: list[dict], end: str | None) -> list[dict]:
    """A session's events split at its reset events: per conversation the reason of the reset that opens
    it (None for the first), what closes it (the next reset's reason, else ``end``: None while the
    session is live), its token (the opening reset's id, ``0`` for the first) and its message rows."""
    found: list[dict[str, Any]] = [{"token": "0", "opens": None, "closes": None, "messages": 0}]
    for event in events:
        if event.get("type") == "reset":
            found[-1]["closes"] = event.get("reason")
            found.append(
                {"token": event.get("id"), "opens": event.get("reason"), "closes": None, "messages": 0}
            )
        elif event.get("type") == "message":
            found[-1]["messages"] += 1
    found[-1]["closes"] = end
    return found


def _rows(db: sqlite3.Connection, session_id: str) -> list[dict]:
    events = []
    for text, blob in db.execute(
        "SELECT event_json, event_zstd FROM transcript_events WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ):
        if text is None:
            text = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True).read().decode()
        events.append(json.loads(text))
    return events


def _sqlite_agent(agent_dir: Path) -> dict:
    database = agent_dir / DATABASE
    sessions: list[dict] = []
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        schema = connection.execute("PRAGMA user_version").fetchone()[0]
        nodes = connection.execute(
            "SELECT session_key, current_session_id, archived_at FROM session_nodes ORDER BY session_key"
        ).fetchall()
        for key, current, archived_at in nodes:
            windows = connection.execute(
                "SELECT session_id FROM session_windows WHERE session_key = ? ORDER BY created_at, rowid",
                (key,),
            ).fetchall()
            for (sid,) in windows:
                if sid != current:
                    state = "superseded"
                elif archived_at is not None:
                    state = "archived"
                else:
                    state = "live"
                sessions.append(
                    {
                        "key": key,
                        "sessionId": sid,
                        "state": state,
                        "source": "database",
                        "conversations": conversations(
                            _rows(connection, sid), None if state == "live" else state
                        ),
                    }
                )
        exports = {
            name: (sid, key, reason)
            for sid, key, reason, name in connection.execute(
                "SELECT session_id, session_key, reason, archive_name FROM session_transcript_archives"
            )
        }
    finally:
        connection.close()
    folder = agent_dir / "sessions"
    for path in sorted(folder.glob("*.jsonl.deleted.*.zst")) if folder.is_dir() else []:
        sid, key, reason = exports.get(path.name, (path.name.split(".")[0], None, None))
        with path.open("rb") as handle:
            data = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()
        sessions.append(
            {
                "key": key,
                "sessionId": sid,
                "state": "deleted",
                "source": "deletion export",
                "file": path.name,
                "archiveRow": reason,
                "conversations": conversations(_lines(data), "deleted"),
            }
        )
    return {"era": "sqlite", "schema": schema, "sessions": sessions, "files": _files(folder)}


def _jsonl_agent(agent_dir: Path) -> dict:
    folder = agent_dir / "sessions"
    index_path = folder / "sessions.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {}
    by_id = {entry.get("sessionId"): (key, entry) for key, entry in index.items()}
    sessions = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        match = _TRANSCRIPT.fullmatch(path.name)
        if match is None:
            continue
        sid = match["sid"]
        key, entry = by_id.get(sid, (None, None))
        if match["end"]:
            state = match["end"]  # reset or deleted: OpenClaw renamed the transcript
        elif entry is None:
            state = "ended"  # no entry names it any more (an idle rollover started a new session)
        elif "archivedAt" in entry:
            state = "archived"
        else:
            state = "live"
        sessions.append(
            {
                "key": key,
                "sessionId": sid,
                "state": state,
                "source": "file",
                "file": path.name,
                "conversations": conversations(_lines(path.read_bytes()), None if state == "live" else state),
            }
        )
    return {"era": "jsonl", "schema": None, "sessions": sessions, "files": _files(folder)}


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def describe(state_dir: Path) -> dict:
    """Every agent of ``state_dir``: its era (``sqlite`` when ``agent/openclaw-agent.sqlite`` exists, as the
    package decides), its sessions and the names of the files in its ``sessions/`` folder."""
    agents = Path(state_dir) / "agents"
    return {
        agent.name: (_sqlite_agent(agent) if (agent / DATABASE).exists() else _jsonl_agent(agent))
        for agent in sorted(agents.iterdir())
        if agent.is_dir()
    }


def describe_copy(state_dir: Path) -> dict:
    """:func:`describe` of a throwaway copy: a read-only open of a database in WAL mode still creates its
    ``-wal`` and ``-shm`` files, which must not appear in the repository's copy or in a cached build."""
    with tempfile.TemporaryDirectory(prefix="demo-state-") as scratch:
        copy = Path(scratch) / "state"
        shutil.copytree(state_dir, copy, symlinks=True)
        return describe(copy)


def _general(name: str) -> str:
    name = re.sub(_UUID, "<id>", name)
    name = re.sub(_STAMP, "<ts>", name)
    return re.sub(r"\.[0-9a-f]{32}\.", ".<generation>.", name)


def shape(description: dict) -> dict:
    """What two builds of the state must share: per agent its era and schema, its sessions (key with ids
    generalised, state, source, the conversations' opening and closing reasons and message rows) and its
    files' name forms; no ids, timestamps or paths."""
    out = {}
    for agent, entry in description.items():
        sessions = [
            {
                "key": _general(s["key"]) if s["key"] else None,
                "state": s["state"],
                "source": s["source"],
                "file": _general(s["file"]) if s.get("file") else None,
                "conversations": [[c["opens"], c["closes"], c["messages"]] for c in s["conversations"]],
            }
            for s in entry["sessions"]
        ]
        out[agent] = {
            "era": entry["era"],
            "schema": entry["schema"],
            "sessions": sorted(sessions, key=lambda s: json.dumps(s, sort_keys=True)),
            "files": sorted({_general(name) for name in entry["files"]}),
        }
    return out


# What the demo state must hold: per agent, the (state, conversations' (opens, closes)) of its sessions.
WANTED: dict[str, dict[str, list]] = {
    "chat": {
        "agent:chat:main": [("live", [(None, "new"), ("new", "reset"), ("reset", None)])],
        "agent:chat:talk": [("archived", [(None, "new"), ("new", "archived")])],
        "agent:chat:gone": [("deleted", [(None, "deleted")])],
        "agent:chat:cron:<id>": [("superseded", [(None, "superseded")]), ("live", [(None, None)])],
    },
    "main": {
        "agent:main:main": [("live", [(None, None)])],
        "agent:main:work": [("live", [(None, None)])],
        "agent:main:shelved": [("archived", [(None, "archived")])],
        "ended": [
            ("deleted", [(None, "deleted")]),
            ("ended", [(None, "ended")]),
            ("reset", [(None, "reset")]),
        ],
    },
}


def missing(description: dict, eras: dict[str, str]) -> dict[str, str]:
    """For each agent, ``yes`` when its era and sessions are what :data:`WANTED` says, else ``no: …``.
    A JSONL-era transcript that OpenClaw renamed or dropped from ``sessions.json`` has no key: those are
    listed under ``ended``."""
    produced = {}
    for agent, era in eras.items():
        entry = description.get(agent)
        if entry is None or entry["era"] != era:
            produced[agent] = f"no: agent {agent} is {entry and entry['era']}, wanted {era}"
            continue
        found: dict[str, list] = {}
        for s in entry["sessions"]:
            key = _general(s["key"]) if s["key"] else "ended"
            found.setdefault(key, []).append(
                (s["state"], [(c["opens"], c["closes"]) for c in s["conversations"]])
            )
        found = {k: sorted(v, key=repr) for k, v in found.items()}  # repr: None and str do not compare
        wanted = {k: sorted(v, key=repr) for k, v in WANTED[agent].items()}
        produced[agent] = "yes" if found == wanted else f"no: found {found}, wanted {wanted}"
    return produced


def file_times(state_dir: Path) -> dict[str, float]:
    """Each file's modification time (epoch seconds) by its path under ``state_dir``."""
    state_dir = Path(state_dir)
    return {
        str(p.relative_to(state_dir)): p.stat().st_mtime for p in sorted(state_dir.rglob("*")) if p.is_file()
    }


def file_modes(state_dir: Path) -> dict[str, str]:
    """Each file's permission bits (octal) by its path under ``state_dir``."""
    state_dir = Path(state_dir)
    return {
        str(p.relative_to(state_dir)): oct(p.stat().st_mode & 0o777)
        for p in sorted(state_dir.rglob("*"))
        if p.is_file()
    }


def set_file_modes(state_dir: Path, modes: dict[str, str]) -> None:
    """Give each file of ``modes`` those permission bits (OpenClaw's own; git keeps only 644 and 755)."""
    for name, mode in modes.items():
        path = Path(state_dir) / name
        if path.is_file():
            os.chmod(path, int(mode, 8))


def set_file_times(state_dir: Path, times: dict[str, float]) -> None:
    """Give each file of ``times`` that modification time (what OpenClaw left it; git keeps no mtimes)."""
    for name, mtime in times.items():
        path = Path(state_dir) / name
        if path.is_file():
            os.utime(path, (mtime, mtime))
