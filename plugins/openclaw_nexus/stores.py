"""One interface over OpenClaw's two session stores, for the upload and archive steps. Airflow-free.

A discovered session names its store (``"jsonl"``: a file in ``sessions/``; ``"sqlite"``: the agent's
database). For either, the steps ask the same three things:

- ``open_transcript``: the bytes to send, as a file. A file read in place (JSONL era) is checked to be
  unchanged; a database session or a ``.zst`` export is written to a staging file of ours,
  ``sessions/archive/.staging/…`` (mode 0600), in one short read, so no transaction or decompressor
  stays open across the HTTP request.
- ``already_sent``: an archived copy with exactly these bytes, so the same bytes are never sent twice.
- ``record_archived``: make the archive copy — move the file (JSONL era, as before), or link the staging
  file to ``archive/<id>[+N].jsonl`` (its mtime is the session's last change, which is how discovery knows
  the session is done). A ``.zst`` export itself is moved into ``archive/`` under its own name.

Discovery (``discovery.scan_agent``) is the finder for both stores.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from openclaw_nexus import archive, discovery, sqlite_store
from openclaw_nexus.names import parse_transcript_name
from openclaw_nexus.transcript import Snapshot, TranscriptError, snapshot

STAGING_DIR = f"{discovery.ARCHIVE_DIR}/.staging"


@dataclass(frozen=True)
class Transcript:
    """The bytes to send for one session."""

    path: Path
    staged: str | None  # relative to ``sessions/``: our staging copy, else None (the file itself)
    source: Path | None = None  # the OpenClaw file it comes from, which must not change while it is sent
    before: Snapshot | None = None  # that file as discovery saw it
    read_seconds: float | None = None  # the database read transaction that exported it


def sessions_dir(state_dir: Path, session: dict) -> Path:
    return discovery.sessions_dir_of(state_dir, session["agentId"])


def open_transcript(
    state_dir: Path, session: dict, *, busy_timeout: float = sqlite_store.DEFAULT_BUSY_TIMEOUT_SECONDS
) -> Transcript:
    """The transcript of a discovered session, checked to be still completed and unchanged.

    Raises ``TranscriptError`` (permanent for this run) or ``sqlite_store.StoreError`` (the database
    could not be read now: locked, or corrupt).
    """
    folder = sessions_dir(state_dir, session)
    if session.get("store") == "sqlite":
        database = sqlite_store.database_of(discovery.agents_root(state_dir) / session["agentId"])
        staged = _staging_name(session)
        _refuse_symlinked_archive(folder)
        try:
            exported = sqlite_store.export_transcript(
                database,
                session["sessionId"],
                folder / staged,
                source="export" if session.get("archiveName") else "window",
                archive_name=session.get("archiveName"),
                busy_timeout=busy_timeout,
            )
        except sqlite_store.SessionNotCompleted as exc:
            raise TranscriptError(str(exc)) from None
        return Transcript(folder / staged, staged, read_seconds=exported.read_seconds)

    path = discovery.resolve_transcript(state_dir, session)
    if session.get("kind") != "replay":
        _refuse_if_active(state_dir, session, path, busy_timeout)
    try:
        before = snapshot(path)
    except FileNotFoundError:
        raise TranscriptError(
            f"{session['file']} is gone since discovery (renamed or removed by OpenClaw?); "
            "a later run picks it up under its new name"
        ) from None
    if (before.size, before.mtime_ns) != (session["size"], session["mtimeNs"]):
        raise TranscriptError(f"{session['file']} changed since discovery; left for a later run")
    parsed = parse_transcript_name(path.name)
    if parsed is None or not parsed.compressed:
        return Transcript(path, None, path, before)
    staged = _staging_name(session)
    _refuse_symlinked_archive(folder)
    try:
        sqlite_store.decompress_file(path, folder / staged)
    except sqlite_store.StoreError as exc:
        raise TranscriptError(str(exc)) from None
    return Transcript(folder / staged, staged, path, before)


def check_unchanged(session: dict, transcript: Transcript, sent: str) -> None:
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


def already_sent(state_dir: Path, session: dict, *, size: int, sha256: str) -> str | None:
    """``archive/<id>[+N].jsonl`` when a copy of exactly these bytes is archived (they were sent)."""
    if session.get("kind") == "replay":
        return None  # a replay re-sends on purpose
    return archive.find_copy(sessions_dir(state_dir, session), session["sessionId"], size=size, sha256=sha256)


def discard(transcript: Transcript) -> None:
    """Remove a staging copy that will not be archived (the upload failed)."""
    if transcript.staged is not None:
        transcript.path.unlink(missing_ok=True)


def record_archived(state_dir: Path, session: dict, receipt: dict) -> archive.ArchiveOutcome:
    """Archive one uploaded session (see the module docs); safe to retry."""
    folder = sessions_dir(state_dir, session)
    staged = receipt.get("staged")
    duplicate = receipt.get("duplicateOf")
    if staged and duplicate:
        (folder / staged).unlink(missing_ok=True)
        if session.get("store") == "sqlite":
            # The copy now stands for the session as it is: later runs see it as done.
            os.utime(folder / duplicate, ns=(receipt["mtimeNs"], receipt["mtimeNs"]))
        outcome = archive.ArchiveOutcome(duplicate, already_done=True)
    else:
        outcome = archive.archive_transcript(
            folder,
            staged or session["file"],
            session["sessionId"],
            size=receipt["size"],
            mtime_ns=receipt["mtimeNs"],
            sha256=receipt["sha256"],
        )
    if staged and session.get("store") != "sqlite":  # a .zst export: OpenClaw's file follows its copy
        archive.move_as_is(folder, session["file"])
    return outcome


def _staging_name(session: dict) -> str:
    tag = hashlib.sha256(session["file"].encode()).hexdigest()[:16]
    return f"{STAGING_DIR}/{session['sessionId']}.{tag}.jsonl"


def _refuse_symlinked_archive(folder: Path) -> None:
    """Staging happens inside ``archive/`` (so archiving is a link): never through a symlink, and the
    folders it creates are its owner's only, as transcripts hold users' secrets."""
    archive_dir = folder / discovery.ARCHIVE_DIR
    if archive_dir.is_symlink():
        raise TranscriptError(f"{archive_dir} is a symlink: not followed, nothing staged")
    folder.mkdir(exist_ok=True)  # a native SQLite-era agent may have no sessions/ folder yet
    archive_dir.mkdir(mode=0o700, exist_ok=True)
    (folder / STAGING_DIR).mkdir(mode=0o700, exist_ok=True)


def _refuse_if_active(state_dir: Path, session: dict, path: Path, busy_timeout: float) -> None:
    """Discovery ran earlier: check again that OpenClaw has not taken the session up meanwhile."""
    database = sqlite_store.database_of(discovery.agents_root(state_dir) / session["agentId"])
    if database.exists():
        with sqlite_store.connect(database, busy_timeout) as connection:
            active = sqlite_store.live_session_ids(connection, only=session["sessionId"])
        if session["sessionId"] in active:
            raise TranscriptError(f"{session['file']} is an active session again; not uploaded")
        return
    try:
        index = discovery.read_active_set(sessions_dir(state_dir, session))
    except discovery.SessionIndexError as exc:
        raise TranscriptError(f"not uploaded: {exc}") from None
    if index.contains(session["sessionId"], path.name):
        raise TranscriptError(f"{session['file']} is an active session again; not uploaded")
