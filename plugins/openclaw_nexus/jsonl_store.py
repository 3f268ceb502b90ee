"""OpenClaw's JSONL era (releases up to 2026.7.x): sessions as files in ``agents/<id>/sessions/``, the
active ones listed in ``sessions.json``. Airflow-free.

The files are classified, sent and archived by ``files`` (which also serves a SQLite-era agent's leftover
exports); this module reads ``sessions.json`` into the active set they are checked against.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from openclaw_nexus import archive
from openclaw_nexus.discovery import AgentScan, Window, agents_folder, agents_root, sessions_dir_of, within
from openclaw_nexus.files import (
    ActiveSet,
    SessionIndexError,
    open_file,
    record_file_archived,
    scan_files,
)
from openclaw_nexus.names import INDEX_FILE, is_valid_session_id
from openclaw_nexus.staging import Transcript


def read_active_set(sessions_dir: Path) -> ActiveSet:
    """Read ``sessions.json``: every entry's ``sessionId`` and the file named by its ``sessionFile``.

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
    for key, entry in data.items():
        session_id = entry.get("sessionId") if isinstance(entry, dict) else None
        if not is_valid_session_id(session_id):
            raise SessionIndexError(f"{index}: entry {key!r} has no valid sessionId")
        ids.add(session_id)
        session_file = entry.get("sessionFile")
        if isinstance(session_file, str) and session_file:
            files.add(os.path.basename(session_file))
    return ActiveSet(frozenset(ids), frozenset(files))


class JsonlStore:
    """An agent without a database: ``sessions.json`` is its active set, its files are its sessions."""

    era = "jsonl"

    def __init__(self, state_dir: Path, agent_id: str):
        self.state_dir = state_dir
        self.agent_id = agent_id
        self.sessions_dir = sessions_dir_of(state_dir, agent_id)

    def find(self, window: Window, *, include_archived: bool = False) -> AgentScan:
        scan = AgentScan(self.agent_id)
        if not self.sessions_dir.is_dir():
            return scan
        if not within(self.sessions_dir, agents_root(self.state_dir)):
            where = agents_folder(self.state_dir)
            scan.error(f"{self.sessions_dir} resolves outside the state dir's {where}: not followed")
            return scan
        scan_files(scan, self.sessions_dir, window, include_archived, self.active_set)
        return scan

    def active_set(self) -> ActiveSet:
        return read_active_set(self.sessions_dir)

    def open_transcript(self, session: dict) -> Transcript:
        return open_file(self.state_dir, session, self.active_set)

    def record_archived(self, session: dict, receipt: dict) -> archive.ArchiveOutcome:
        return record_file_archived(self.sessions_dir, session, receipt)
