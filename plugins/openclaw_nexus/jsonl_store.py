"""OpenClaw's JSONL era (releases up to 2026.7.x): sessions as files in ``agents/<id>/sessions/``, the
active ones listed in ``sessions.json``. Airflow-free.

An entry OpenClaw archived (``sessions.patch {archived: true}``, the Control UI's archive) stays in
``sessions.json`` with ``archivedAt`` (epoch ms) and its transcript stays in place, unchanged: OpenClaw
2026.7.35 refuses new turns on it until it is restored (``archived: false`` removes the field, and the
chat continues in the same file). Such a session is finished, as in the SQLite era (``archived_at``, which
OpenClaw's own import fills from ``archivedAt``): it is read into the archived part of the active set, sent
from a copy, and its file is never moved (``files``).

Every other completed transcript is moved into ``sessions/archive/`` once Nexus has it, or, when the
deployment archives by copy (``by_copy``, from ``SESSION_UPLOAD_JSONL_ARCHIVE=copy``), copied there and left
in place for OpenClaw, whose usage report and memory search read ``sessions/`` only and whose own retention
removes its ``.reset.``/``.deleted.`` files.

The files are classified, sent and archived by ``files`` (which also serves a SQLite-era agent's leftover
exports); this module reads ``sessions.json`` into the active set they are checked against.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from openclaw_nexus import archive
from openclaw_nexus.discovery import (
    AgentScan,
    Session,
    Window,
    agents_folder,
    agents_root,
    sessions_dir_of,
    within,
)
from openclaw_nexus.files import (
    ActiveSet,
    SessionIndexError,
    open_file,
    record_file_archived,
    scan_files,
)
from openclaw_nexus.names import INDEX_FILE, is_valid_session_id
from openclaw_nexus.staging import Transcript


def is_archived_entry(entry: dict[str, Any]) -> bool:
    """``archivedAt`` is a number: OpenClaw archived the entry (its ``sessions.patch`` writes epoch ms, and
    its SQLite import keeps only a finite number as ``archived_at``). Anything else counts as active."""
    stamp = entry.get("archivedAt")
    return isinstance(stamp, (int, float)) and not isinstance(stamp, bool) and math.isfinite(stamp)


def read_active_set(sessions_dir: Path) -> ActiveSet:
    """Read ``sessions.json``: every entry's ``sessionId`` and the file named by its ``sessionFile``;
    those of entries with ``archivedAt`` (``is_archived_entry``) make the archived part.

    Raises ``SessionIndexError`` with a reason when the index is missing, empty, not JSON, not an object,
    or has an entry without a valid ``sessionId``: then nothing of the agent may be touched.
    """
    index = sessions_dir / INDEX_FILE
    try:
        raw = index.read_bytes()
    except FileNotFoundError:
        raise SessionIndexError(f"{index} is missing, so its active sessions are unknown") from None
    except OSError as exc:
        raise SessionIndexError(f"{index} cannot be read: {exc.strerror or exc}") from None
    if not raw.strip():
        raise SessionIndexError(f"{index} is empty")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionIndexError(f"{index} is not valid JSON (truncated?): {exc}") from None
    if not isinstance(data, dict):
        raise SessionIndexError(f"{index} is not a JSON object keyed by session key ({type(data).__name__})")
    ids: set[str] = set()
    files: set[str] = set()
    archived_ids: set[str] = set()
    archived_files: set[str] = set()
    for key, entry in data.items():
        session_id = entry.get("sessionId") if isinstance(entry, dict) else None
        if not is_valid_session_id(session_id):
            raise SessionIndexError(f"{index}: entry {key!r} has no valid sessionId")
        archived = is_archived_entry(entry)
        (archived_ids if archived else ids).add(session_id)
        session_file = entry.get("sessionFile")
        if isinstance(session_file, str) and session_file:
            (archived_files if archived else files).add(os.path.basename(session_file))
    return ActiveSet(frozenset(ids), frozenset(files), frozenset(archived_ids), frozenset(archived_files))


class JsonlStore:
    """An agent without a database: ``sessions.json`` is its active set, its files are its sessions.
    ``by_copy``: its completed files are archived by copy and stay with OpenClaw (else they are moved)."""

    era = "jsonl"

    def __init__(self, state_dir: Path, agent_id: str, *, by_copy: bool = False):
        self.state_dir = state_dir
        self.agent_id = agent_id
        self.sessions_dir = sessions_dir_of(state_dir, agent_id)
        self.by_copy = by_copy

    def find(self, window: Window, *, include_archived: bool = False) -> AgentScan:
        scan = AgentScan(self.agent_id)
        if not self.sessions_dir.is_dir():
            return scan
        if not within(self.sessions_dir, agents_root(self.state_dir)):
            where = agents_folder(self.state_dir)
            scan.error(f"{self.sessions_dir} resolves outside the state dir's {where}: not followed")
            return scan
        scan_files(scan, self.sessions_dir, window, include_archived, self.active_set, by_copy=self.by_copy)
        return scan

    def active_set(self) -> ActiveSet:
        return read_active_set(self.sessions_dir)

    def open_transcript(self, session: Session) -> Transcript:
        return open_file(self.state_dir, session, self.active_set)

    def record_archived(self, session: Session, receipt: dict[str, Any]) -> archive.ArchiveOutcome:
        return record_file_archived(self.sessions_dir, session, receipt)
