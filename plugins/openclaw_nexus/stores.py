"""One interface over OpenClaw's session stores, for discovery, upload and archive. Airflow-free.

Each store is one class (``jsonl_store.JsonlStore``; ``sqlite_store.SqliteStore``, on ``sqlite_db``,
``sqlite_live`` and ``sqlite_export``; both built on ``files`` for transcript files) implementing
``store_protocol.Store``, which answers three questions for one agent:

- ``find(window)``: its completed sessions (an ``AgentScan``);
- ``open_transcript(session)``: the bytes to send, as a file (``staging.Transcript``), checked to be
  still completed; a database session or a ``.zst`` export is written to a staging file first, in one
  short read;
- ``record_archived(session, receipt)``: make the archive copy in ``sessions/archive/``.

``store_for`` picks the store from what is on disk, and ``scan_agent`` asks it; the DAG and the upload
never ask which era. A third store is one more module and one more line in ``store_for``.

This is the top of the store modules: it imports the stores, and none of them imports it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openclaw_nexus import archive, conversations, discovery
from openclaw_nexus.discovery import AgentScan, Session, Window
from openclaw_nexus.jsonl_store import JsonlStore
from openclaw_nexus.sqlite_db import database_of
from openclaw_nexus.sqlite_store import SqliteStore
from openclaw_nexus.staging import Transcript
from openclaw_nexus.store_protocol import Store
from openclaw_nexus.transcript import TranscriptError, snapshot


def store_for(state_dir: Path, agent_id: str, *, jsonl_by_copy: bool = False) -> Store:
    """SQLite era as soon as ``agent/openclaw-agent.sqlite`` exists (the database is then the authority,
    natively or after OpenClaw's migration); the JSONL era otherwise, its files archived by copy when
    ``jsonl_by_copy`` (else moved). Which one a session takes travels with it (``files.ARCHIVE_BY``)."""
    database = database_of(discovery.agents_root(state_dir) / agent_id)
    if database.exists() or database.is_symlink():
        return SqliteStore(state_dir, agent_id)
    return JsonlStore(state_dir, agent_id, by_copy=jsonl_by_copy)


def scan_agent(
    state_dir: Path,
    agent_id: str,
    window: Window,
    *,
    include_archived: bool = False,
    jsonl_by_copy: bool = False,
) -> AgentScan:
    """Classify every session of one agent and return its completed sessions, oldest first.

    The agent's era, and so its store, is decided from what is on disk (``stores.store_for``). Which
    sessions are completed does not depend on ``jsonl_by_copy``, only how they will be archived: the
    watcher and the check scan without it.
    """
    store = store_for(state_dir, agent_id, jsonl_by_copy=jsonl_by_copy)
    return store.find(window, include_archived=include_archived)


def open_transcript(state_dir: Path, session: Session) -> Transcript:
    """The transcript of a discovered session. Raises ``TranscriptError`` (permanent for this run) or
    ``sqlite_db.StoreError`` (the database cannot be read now: locked, or corrupt)."""
    return store_for(state_dir, session["agentId"]).open_transcript(session)


def record_archived(state_dir: Path, session: Session, receipt: dict[str, Any]) -> archive.ArchiveOutcome:
    """Archive one uploaded session; safe to retry."""
    return store_for(state_dir, session["agentId"]).record_archived(session, receipt)


def already_sent(state_dir: Path, session: Session, *, size: int, sha256: str) -> str | None:
    """``archive/<id>[+N].jsonl`` when a copy of exactly these bytes is archived: they were sent."""
    if session.get("kind") == "replay":
        return None  # a replay re-sends on purpose
    folder = discovery.sessions_dir_of(state_dir, session["agentId"])
    if (folder / discovery.ARCHIVE_DIR).is_symlink():
        return None  # never read (or later re-stamp) through a symlinked archive folder
    name = conversations.stem(session["sessionId"], session.get("conversation"))
    return archive.find_copy(folder, name, size=size, sha256=sha256)


def check_unchanged(session: Session, transcript: Transcript, sent: str) -> None:
    """Raise ``TranscriptError`` when OpenClaw's file changed while it was being sent."""
    if transcript.source is None:
        return
    try:
        now = snapshot(transcript.source)
    except FileNotFoundError:
        now = None
    if now != transcript.before:
        raise TranscriptError(
            f"{session['file']} changed while it was uploaded; {sent}the file is left in place"
        )


def discard(transcript: Transcript) -> None:
    """Remove a staging copy that will not be archived (the upload failed)."""
    if transcript.staged is not None:
        transcript.path.unlink(missing_ok=True)
