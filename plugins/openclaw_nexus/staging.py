"""The bytes to send for one session, and the staging folder for the ones that are not a file as they
are (an export from OpenClaw's database, a decompressed ``.zst`` export). Airflow-free.

Staging files live in ``sessions/archive/.staging/`` (owner-only), on the archive's filesystem, so
archiving one is a hard link; no database transaction or decompressor stays open across the HTTP request.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from openclaw_nexus.discovery import ARCHIVE_DIR, Session
from openclaw_nexus.transcript import Snapshot, TranscriptError

STAGING_DIR = f"{ARCHIVE_DIR}/.staging"


@dataclass(frozen=True)
class Transcript:
    """The bytes to send for one session."""

    path: Path
    staged: str | None  # relative to ``sessions/``: our staging copy, else None (the file itself)
    source: Path | None = None  # the OpenClaw file it comes from, which must not change while it is sent
    before: Snapshot | None = None  # that file as discovery saw it
    read_seconds: float | None = None  # the database read transaction that exported it


def staging_name(session: Session) -> str:
    """One staging name per item: a session, or one conversation of it."""
    item = (
        session["file"]
        if session.get("conversation") is None
        else f"{session['file']}@{session['conversation']}"
    )
    tag = hashlib.sha256(item.encode()).hexdigest()[:16]
    return f"{STAGING_DIR}/{session['sessionId']}.{tag}.jsonl"


def prepare_staging(sessions_dir: Path) -> None:
    """Create the staging folder, owner-only (transcripts hold users' secrets); never through a symlink."""
    archive_dir = sessions_dir / ARCHIVE_DIR
    if archive_dir.is_symlink():
        raise TranscriptError(f"{archive_dir} is a symlink: not followed, nothing staged")
    sessions_dir.mkdir(exist_ok=True)  # a native SQLite-era agent may have no sessions/ folder yet
    archive_dir.mkdir(mode=0o700, exist_ok=True)
    (sessions_dir / STAGING_DIR).mkdir(mode=0o700, exist_ok=True)
