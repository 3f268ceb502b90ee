"""Transcript files in ``agents/<id>/sessions/``, as both eras leave them. Airflow-free.

A transcript file is *completed* when its session id and its file name are not in the agent's active set,
it is older than the settle time, no fresh ``.lock`` guards it, and its modification time falls in the
run's window. The active set is the store's: ``sessions.json`` in the JSONL era (``jsonl_store``), the
database's live sessions for a SQLite-era agent's leftover ``.reset.``/``.deleted.`` exports
(``sqlite_store``). A file is sent as its bytes (a ``.zst`` export decompressed into a staging file), and
archived by moving it into ``archive/``.

Kept in place, archived by copy: the transcript of a session OpenClaw archived (JSONL era: its
``sessions.json`` entry carries ``archivedAt``) is finished, but OpenClaw keeps it where it is, for a
restore (kind ``archived``); and, when the deployment archives the JSONL era by copy
(``SESSION_UPLOAD_JSONL_ARCHIVE=copy``: such a session carries ``archiveBy: copy``), every transcript
file, which OpenClaw's usage report and memory search read from ``sessions/`` until its own retention
removes it. Such a file is sent from a staging copy, that copy becomes ``archive/<id>[+N].jsonl`` with
the file's mtime, and the file is never moved.

Whatever the setting, a file is taken as sent when a copy (not the file itself through a hard link), or
the record of one, has its size and mtime: an OpenClaw rename (``<id>.jsonl`` to ``.reset.<ts>`` or
``.deleted.<ts>``) keeps both, so a renamed file is not sent again either. A file whose content changed
after its copy (another size or mtime) is sent again as a new version, ``archive/<id>+N.jsonl``, beside
the earlier copy; one that ``sessions.json`` lists again is an active session, never sent.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from openclaw_nexus import archive, zst
from openclaw_nexus.copy_records import ARCHIVED_NAME_RE
from openclaw_nexus.discovery import (
    ARCHIVE_DIR,
    AgentScan,
    Session,
    Window,
    resolve_transcript,
    sort_sessions,
)
from openclaw_nexus.names import INDEX_FILE, parse_transcript_name
from openclaw_nexus.staging import Transcript, prepare_staging, staging_name
from openclaw_nexus.transcript import Snapshot, TranscriptError, snapshot

# OpenClaw treats a transcript lock older than this as stale (its own rule).
LOCK_STALE_SECONDS = 30 * 60
# A discovered session whose file stays with OpenClaw: its staging copy becomes the archive copy.
ARCHIVE_BY = "archiveBy"
BY_COPY = "copy"
_HEADER_READ_LIMIT = 64 * 1024
_COPY_CHUNK = 1 << 20


class SessionIndexError(Exception):
    """The agent's active set is unknown (``jsonl_store``: its ``sessions.json`` cannot be trusted)."""


@dataclass(frozen=True)
class ActiveSet:
    """The sessions OpenClaw still uses: never uploaded, never moved."""

    session_ids: frozenset[str]
    file_names: frozenset[str]
    # Sessions OpenClaw archived (JSONL era: an entry with ``archivedAt``): finished, but their files stay.
    archived_ids: frozenset[str] = frozenset()
    archived_files: frozenset[str] = frozenset()

    def contains(self, session_id: str, file_name: str) -> bool:
        return session_id in self.session_ids or file_name in self.file_names

    def archived(self, session_id: str, file_name: str) -> bool:
        """An archived entry's transcript that no active entry names (an active one always wins)."""
        if self.contains(session_id, file_name):
            return False
        return session_id in self.archived_ids or file_name in self.archived_files


def read_header_id(path: Path) -> str | None:
    """The ``id`` of the transcript's ``{"type":"session"}`` header line, or None when it has none."""
    with path.open("rb") as handle:
        first = handle.readline(_HEADER_READ_LIMIT)
    try:
        header = json.loads(first)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if isinstance(header, dict) and header.get("type") == "session" and "id" in header:
        return str(header["id"])
    return None


def lock_is_fresh(lock_path: Path, now: float) -> bool:
    """True when ``<name>.lock`` exists and is younger than OpenClaw's 30-minute staleness rule.

    The age comes from the lock's ``createdAt`` (ISO 8601 or epoch milliseconds), else its mtime.
    """
    try:
        created = lock_path.stat().st_mtime
    except FileNotFoundError:
        return False
    try:
        stamp = json.loads(lock_path.read_bytes()).get("createdAt")
        if isinstance(stamp, (int, float)):
            # OpenClaw writes epoch milliseconds; a value this small can only be seconds.
            created = stamp / 1000.0 if stamp > 1e11 else float(stamp)
        elif isinstance(stamp, str):
            created = datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
    except (OSError, ValueError, AttributeError, TypeError):
        pass  # an unreadable lock still counts, aged by its mtime
    return now - created < LOCK_STALE_SECONDS


def kept_in_place(session: Session) -> bool:
    """Whether the session's file stays with OpenClaw (sent from a copy, which is archived): an archived
    entry's transcript, or any file when the JSONL era is archived by copy."""
    return session.get("kind") == "archived" or session.get(ARCHIVE_BY) == BY_COPY


def open_file(state_dir: Path, session: Session, active_set: Callable[[], ActiveSet]) -> Transcript:
    """A file transcript, checked to be still completed (against ``active_set``) and unchanged since
    discovery; a ``.zst`` export is decompressed into a staging file."""
    path = resolve_transcript(state_dir, session)
    if session.get("kind") != "replay":
        try:
            active = active_set()
        except SessionIndexError as exc:
            raise TranscriptError(f"not uploaded: {exc}") from None
        if active.contains(session["sessionId"], path.name):
            raise TranscriptError(f"{session['file']} is an active session again; not uploaded")
        if session.get("kind") == "archived" and not active.archived(session["sessionId"], path.name):
            raise TranscriptError(
                f"{session['file']} is no longer an archived entry of {INDEX_FILE}; left for a later run"
            )
    try:
        before = snapshot(path)
    except FileNotFoundError:
        raise TranscriptError(
            f"{session['file']} is gone since discovery (renamed or removed by OpenClaw?); "
            "a later run picks it up under its new name"
        ) from None
    if (before.size, before.mtime_ns) != (session["size"], session["mtimeNs"]):
        raise TranscriptError(f"{session['file']} changed since discovery; left for a later run")
    if kept_in_place(session):
        return _stage_copy(path, session, before)
    parsed = parse_transcript_name(path.name)
    if parsed is None or not parsed.compressed:
        return Transcript(path, None, path, before)
    folder = path.parent
    staged = staging_name(session)
    prepare_staging(folder)
    try:
        zst.decompress_file(path, folder / staged)
    except zst.ZstError as exc:
        raise TranscriptError(str(exc)) from None
    return Transcript(folder / staged, staged, path, before)


def _stage_copy(path: Path, session: Session, before: Snapshot) -> Transcript:
    """A copy of a transcript kept in place (``kept_in_place``) in the staging folder (0600, the file's
    mtime), checked to be the file discovery saw: OpenClaw's file stays where it is."""
    folder = path.parent
    staged = staging_name(session)
    prepare_staging(folder)
    partial = folder / f"{staged}.part"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, path.open("rb") as source:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
            out.flush()
            os.fsync(out.fileno())
        os.utime(partial, ns=(before.mtime_ns, before.mtime_ns))
        if snapshot(path) != before or partial.stat().st_size != before.size:
            raise TranscriptError(f"{session['file']} changed while it was copied; left for a later run")
        os.replace(partial, folder / staged)
    except FileNotFoundError:
        raise TranscriptError(f"{session['file']} is gone since discovery; not uploaded") from None
    finally:
        partial.unlink(missing_ok=True)
    return Transcript(folder / staged, staged, path, before)


def record_file_archived(
    sessions_dir: Path, session: Session, receipt: dict[str, Any]
) -> archive.ArchiveOutcome:
    """Move the file into ``archive/<id>[+N].jsonl``; a ``.zst`` export's decompressed copy goes there
    instead, and the export itself follows under its own name. A file kept in place (``kept_in_place``)
    stays where it is: its staging copy becomes the archive copy, never overwriting an earlier one."""
    staged = receipt.get("staged")
    keep = kept_in_place(session)
    if staged and receipt.get("duplicateOf"):
        (sessions_dir / staged).unlink(missing_ok=True)
        if keep:  # the copy with these bytes now stands for the file as it is: later scans skip it
            archive.restamp(
                sessions_dir,
                receipt["duplicateOf"],
                size=receipt["size"],
                mtime_ns=receipt["mtimeNs"],
                sha256=receipt["sha256"],
            )
        outcome = archive.ArchiveOutcome(receipt["duplicateOf"], already_done=True)
    else:
        outcome = archive.archive_transcript(
            sessions_dir,
            staged or session["file"],
            session["sessionId"],
            size=receipt["size"],
            mtime_ns=receipt["mtimeNs"],
            sha256=receipt["sha256"],
        )
    if staged and not keep:
        archive.move_as_is(sessions_dir, session["file"])
    return outcome


def scan_files(
    scan: AgentScan,
    sessions_dir: Path,
    window: Window,
    include_archived: bool,
    active_set: Callable[[], ActiveSet],
    *,
    leftovers_only: bool = False,
    by_copy: bool = False,
) -> None:
    """Classify the transcript files of ``sessions/`` against the active set ``active_set`` returns.

    ``leftovers_only``: beside a database only OpenClaw's ``.reset.``/``.deleted.`` exports are sessions
    of their own; a plain ``<id>.jsonl`` there was imported (or is for OpenClaw to import) and is skipped.
    ``by_copy``: every transcript file found (but ``.zst`` exports) is archived by copy and stays.
    """
    candidates = []
    with os.scandir(sessions_dir) as entries:
        names = {entry.name: entry for entry in entries}
    for name, entry in names.items():
        parsed = parse_transcript_name(name)
        if parsed is None:
            scan.skipped["not_transcript"] += 1
            continue
        if leftovers_only and not parsed.archived_by_openclaw:
            scan.skipped["jsonl_beside_database"] += 1
            continue
        if entry.is_symlink():
            scan.skipped["symlink"] += 1
            continue
        candidates.append((name, parsed, entry))
    if not candidates and not include_archived:
        return

    try:
        active = active_set()
    except SessionIndexError as exc:
        scan.error(f"agent skipped: {exc}", file=INDEX_FILE)
        return

    for name, parsed, entry in candidates:
        if active.contains(parsed.session_id, name):
            scan.skipped["active"] += 1
            continue
        # OpenClaw archived it and keeps it here (a plain transcript name; its own .reset/.deleted files
        # are retired whatever the entry says).
        kept = parsed.kind == "live" and active.archived(parsed.session_id, name)
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # renamed or removed by OpenClaw since the listing
            scan.skipped["vanished"] += 1
            continue
        if not stat.S_ISREG(info.st_mode):
            scan.skipped["not_regular_file"] += 1
            continue
        reason = window.admits(info.st_mtime, committed=parsed.whole)
        if reason:
            scan.skipped[reason] += 1
            continue
        if f"{name}.lock" in names and lock_is_fresh(sessions_dir / f"{name}.lock", window.now):
            scan.skipped["locked"] += 1
            continue
        if not parsed.compressed and _copied(sessions_dir, parsed.session_id, info):
            scan.skipped["already_archived"] += 1
            continue
        if not parsed.compressed:
            try:
                header_id = read_header_id(sessions_dir / name)
            except OSError as exc:
                scan.error(
                    f"cannot read transcript: {exc.strerror or exc}", file=name, session_id=parsed.session_id
                )
                continue
            if header_id is not None and header_id != parsed.session_id:
                scan.error(
                    f"header id {header_id!r} does not match the file name's session id; left in place",
                    file=name,
                    session_id=parsed.session_id,
                )
                continue
        kind = "archived" if kept else parsed.kind
        session = _session(scan.agent_id, parsed.session_id, name, info, kind)
        if by_copy and not parsed.compressed:
            session[ARCHIVE_BY] = BY_COPY
        scan.sessions.append(session)

    if include_archived:
        _add_archived(scan, sessions_dir, active, window)
    sort_sessions(scan)


def _copied(sessions_dir: Path, session_id: str, info: os.stat_result) -> bool:
    """Whether a copy ``archive/<id>[+N].jsonl`` (or its record) has this file's size and mtime: it was
    sent as it is (the copy of a file kept in place, under this name or before OpenClaw renamed it)."""
    return archive.holds_version(
        sessions_dir,
        session_id,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        other_than=(info.st_dev, info.st_ino),
    )


def _add_archived(scan: AgentScan, sessions_dir: Path, active: ActiveSet, window: Window) -> None:
    """Replays: transcripts this package archived before, re-sent and left where they are."""
    archive = sessions_dir / ARCHIVE_DIR
    if not archive.is_dir() or archive.is_symlink():
        return
    with os.scandir(archive) as entries:
        for entry in entries:
            match = ARCHIVED_NAME_RE.fullmatch(entry.name)
            if not match or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            if active.contains(match.group("id"), entry.name) or window.admits(info.st_mtime):
                continue
            scan.sessions.append(
                _session(scan.agent_id, match.group("id"), f"{ARCHIVE_DIR}/{entry.name}", info, "replay")
            )


def _session(agent_id: str, session_id: str, file: str, info: os.stat_result, kind: str) -> Session:
    return {
        "agentId": agent_id,
        "sessionId": session_id,
        "file": file,
        "size": info.st_size,
        "mtimeNs": info.st_mtime_ns,
        "kind": kind,
        "store": "jsonl",
    }
