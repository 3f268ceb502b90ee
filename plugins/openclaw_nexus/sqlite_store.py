"""OpenClaw 2026.8+ (SQLite era): the store of an agent with ``agent/openclaw-agent.sqlite``
(``SqliteStore``). Airflow-free.

Owns what the store answers (``store_protocol.Store``): which sessions are completed and not yet archived
(``find``, from ``sqlite_live.scan_database`` and OpenClaw's leftover export files read by ``files``),
their conversations and which of them are archived already, a session's transcript staged for upload
(``open_transcript``, through ``sqlite_export``, or one conversation cut from a deletion export), and
the archive copy once Nexus has it (``record_archived``). OpenClaw's rows stay as they are: the database
is only read (``sqlite_db``), and a session's copy in ``sessions/archive/`` is how later runs know it is
done.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from openclaw_nexus import archive, conversations, zst
from openclaw_nexus.discovery import (
    ARCHIVE_DIR,
    AgentScan,
    ArchiveIndex,
    Session,
    Window,
    agents_folder,
    agents_root,
    sessions_dir_of,
    sort_sessions,
    within,
)
from openclaw_nexus.files import ActiveSet, open_file, record_file_archived, scan_files
from openclaw_nexus.names import parse_transcript_name
from openclaw_nexus.sqlite_db import (
    DATABASE,
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SessionNotCompleted,
    StoreError,
    connect,
    database_of,
    read_transaction,
)
from openclaw_nexus.sqlite_export import export_transcript
from openclaw_nexus.sqlite_live import DatabaseScan, end_export_live_ids, scan_database
from openclaw_nexus.staging import Transcript, prepare_staging, staging_name
from openclaw_nexus.transcript import TranscriptError

# ``file`` of a session read from the database (the JobResult's and the logs' name for it).
FILE_PREFIX = "openclaw-agent.sqlite#"


def session_file(session_id: str) -> str:
    return f"{FILE_PREFIX}{session_id}"


class SqliteStore:
    """An agent with ``agent/openclaw-agent.sqlite``: the database is the authority, natively or after
    OpenClaw's migration; OpenClaw's leftover export files in ``sessions/`` are read as files against
    the database's live set."""

    era = "sqlite"

    def __init__(self, state_dir: Path, agent_id: str, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS):
        self.state_dir = state_dir
        self.agent_id = agent_id
        self.agent_dir = agents_root(state_dir) / agent_id
        self.database = database_of(self.agent_dir)
        self.sessions_dir = sessions_dir_of(state_dir, agent_id)
        self.busy_timeout = busy_timeout

    def find(self, window: Window, *, include_archived: bool = False) -> AgentScan:
        """The database's completed sessions, plus OpenClaw's leftover export files."""
        scan = AgentScan(self.agent_id, era="sqlite")
        if self.database.is_symlink() or not within(self.database, self.agent_dir):
            scan.error(f"{self.database} is a symlink: not followed", file=str(DATABASE))
            return scan
        sessions_dir = self.sessions_dir
        inside = not sessions_dir.is_dir() or within(sessions_dir, agents_root(self.state_dir))
        copies = ArchiveIndex(sessions_dir if inside else None)
        try:
            found = scan_database(self.database, self.busy_timeout, known=copies.all_sent)
        except StoreError as exc:
            scan.error(f"agent skipped: {exc}", file=str(DATABASE))
            return scan
        scan.schema = found.schema
        scan.live = found.skipped["live"]
        exported_names = {name: sid for sid, rows in found.exports.items() for name, _ in rows}
        if sessions_dir.is_dir():
            if not inside:
                where = agents_folder(self.state_dir)
                scan.error(f"{sessions_dir} resolves outside the state dir's {where}: not followed")
                return scan
            live = ActiveSet(frozenset(found.export_live), frozenset())
            scan_files(scan, sessions_dir, window, include_archived, lambda: live, leftovers_only=True)
            for session in scan.sessions:  # OpenClaw shortens ids over 96 bytes in export names
                session["sessionId"] = exported_names.get(session["file"], session["sessionId"])
            scan.sessions = [
                part for item in scan.sessions for part in self._export_conversations(scan, item)
            ]
        for session_id, (session_key, mtime_ns, archived) in found.completed.items():
            kind = "archived" if archived else "historical"
            if session_id in found.reset_counts:
                self._add_conversations(scan, window, found, copies, session_id, session_key, mtime_ns, kind)
                continue
            if mtime_ns in copies.mtimes(session_id):
                scan.skipped["already_archived"] += 1
                continue
            reason = window.admits(mtime_ns / 1e9, committed=True)
            if reason:
                scan.skipped[reason] += 1
                continue
            session = _db_session(self.agent_id, session_id, session_file(session_id), mtime_ns, kind)
            scan.sessions.append({**session, "sessionKey": session_key})
        for session_id, (session_key, changed_ns) in found.live_windows.items():
            self._add_conversations(
                scan, window, found, copies, session_id, session_key, None, "conversation", changed_ns
            )
        for session_id, rows in found.exports.items():
            if (
                session_id in found.export_live
                or session_id in found.completed
                or copies.names_of(session_id)
            ):
                continue
            for name, created_ns in rows:
                if (sessions_dir / name).exists() or (sessions_dir / ARCHIVE_DIR / name).exists():
                    continue  # its file is (or was) read as a file
                if window.admits(created_ns / 1e9, committed=True):
                    continue
                session = _db_session(self.agent_id, session_id, session_file(name), created_ns, "deleted")
                scan.sessions.append({**session, "archiveName": name})
        sort_sessions(scan)
        return scan

    def _add_conversations(
        self,
        scan: AgentScan,
        window: Window,
        found: DatabaseScan,
        copies: ArchiveIndex,
        session_id: str,
        session_key: str,
        completed_ns: int | None,
        kind: str,
        live_change_ns: int | None = None,
    ) -> None:
        """The finished conversations of a session that has reset events, not yet archived.

        Conversation k is finished by the reset event that follows it (its rows no longer change; its
        copy's mtime is that reset's ``created_at``); the last one when the session is completed
        (``completed_ns``, the window's last change, else None: it is open). A copy of the whole session
        with the window's last change (archived whole by an earlier release) stands for all of them.
        A conversation is done when its own copy, or a whole copy, carries its closing time; the first
        one also when any copy of the session does: after OpenClaw truncates a transcript, the stretch
        before the first remaining reset is the tail of a conversation already sent under its vanished
        reset's id, with the same closing time. A session found with every finished conversation done is
        recorded (``ArchiveIndex.record_all_sent``) under its count of finished conversations and its last
        change: until either moves, later scans take it as done without reading its reset events or
        copies.
        """
        finished = found.reset_counts[session_id] + (completed_ns is not None)
        last_change = completed_ns if completed_ns is not None else live_change_ns
        scan.conversations["finished"] += finished
        scan.conversations["open"] += completed_ns is None
        if session_id not in found.resets:  # known: all sent in this very state
            scan.skipped["already_archived"] += finished
            return
        whole = copies.mtimes(session_id)
        ids, created = found.resets[session_id]
        if completed_ns is not None and completed_ns in whole:
            scan.skipped["already_archived"] += len(ids) + 1
            return
        openings = [conversations.FIRST, *ids]
        closings = [*created, completed_ns]
        done = 0
        for conversation, closed_ns in zip(openings, closings, strict=True):
            if closed_ns is None:
                continue
            stem = conversations.stem(session_id, conversation)
            if (
                closed_ns in whole
                or closed_ns in copies.mtimes(stem)
                or (
                    conversation == conversations.FIRST
                    and (whole or any(copies.has(conversations.stem(session_id, c)) for c in openings))
                    and closed_ns in copies.session_mtimes(session_id)
                )
            ):
                scan.skipped["already_archived"] += 1
                done += 1
                continue
            reason = window.admits(closed_ns / 1e9, committed=True)
            if reason:
                scan.skipped[reason] += 1
                continue
            file = session_file(stem)
            session = _db_session(self.agent_id, session_id, file, closed_ns, kind)
            scan.sessions.append({**session, "sessionKey": session_key, "conversation": conversation})
        if done == finished and last_change is not None:
            copies.record_all_sent(session_id, finished, last_change)

    def _export_conversations(self, scan: AgentScan, item: Session) -> list[Session]:
        """A deletion export of a session with reset events, as its conversations not yet archived (found
        by content: the export is all that is left of the session). With none left, its last one: its
        upload finds the copy, and archiving it moves the export into ``archive/`` without a resend."""
        path = self.sessions_dir / item["file"]
        parsed = parse_transcript_name(path.name)
        if item.get("kind") != "deleted" or parsed is None or not parsed.compressed:
            return [item]
        try:
            with zst.lines(path) as lines:
                _, parts = conversations.survey(lines)
        except (OSError, zst.ZstError) as exc:
            scan.error(f"cannot read export: {exc}", file=item["file"], session_id=item["sessionId"])
            return []
        if len(parts) == 1:
            return [item]  # a session that never reset: one transcript, as a whole
        scan.conversations["finished"] += len(parts)
        summary = [[part.conversation, part.size, part.sha256] for part in parts]
        todo = []
        for part in parts:
            name = conversations.stem(item["sessionId"], part.conversation)
            if archive.find_copy(self.sessions_dir, name, size=part.size, sha256=part.sha256):
                scan.skipped["already_archived"] += 1
                continue
            todo.append(part)
        return [
            {**item, "conversation": part.conversation, "part": [part.start, part.end], "parts": summary}
            for part in todo or parts[-1:]
        ]

    def live_set(self) -> ActiveSet:
        """The live set OpenClaw's export files are checked against again right before they are sent."""
        with connect(self.database, self.busy_timeout) as connection, read_transaction(connection):
            return ActiveSet(frozenset(end_export_live_ids(connection)), frozenset())

    def open_transcript(self, session: Session) -> Transcript:
        """Export a database session to a staging file in one read transaction (leftover files: as files)."""
        if session.get("store") != "sqlite":
            transcript = open_file(self.state_dir, session, self.live_set)
            return transcript if session.get("conversation") is None else self._cut(transcript, session)
        staged = staging_name(session)
        prepare_staging(self.sessions_dir)
        try:
            exported = export_transcript(
                self.database,
                session["sessionId"],
                self.sessions_dir / staged,
                source="export" if session.get("archiveName") else "window",
                archive_name=session.get("archiveName"),
                conversation=session.get("conversation"),
                busy_timeout=self.busy_timeout,
            )
        except SessionNotCompleted as exc:
            raise TranscriptError(str(exc)) from None
        return Transcript(self.sessions_dir / staged, staged, read_seconds=exported.read_seconds)

    def _cut(self, whole: Transcript, session: Session) -> Transcript:
        """One conversation of a decompressed deletion export, staged on its own (the whole is removed)."""
        start, end = session["part"]
        if whole.staged is None:  # never removed below: it is OpenClaw's own file
            raise TranscriptError(f"{session['file']}: a conversation is cut only from a staged export")
        staged = whole.staged.removesuffix(".jsonl") + ".conversation.jsonl"
        try:
            with whole.path.open("rb") as source:
                header = source.readline()
                if not conversations.is_header(header):
                    header = b""
                source.seek(0)
                fd = os.open(self.sessions_dir / staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "wb") as out:
                    part = conversations.Part(session["conversation"], start, end, 0, "")
                    conversations.write_part(source, header, part, out)
        finally:
            whole.path.unlink(missing_ok=True)
        return Transcript(self.sessions_dir / staged, staged, whole.source, whole.before)

    def record_archived(self, session: Session, receipt: dict[str, Any]) -> archive.ArchiveOutcome:
        """Link the staging file to ``archive/<id>[+N].jsonl`` (a conversation: ``<id>@<conversation>``);
        its mtime (the last change of what it holds) is how later runs know it is done. OpenClaw's rows
        stay as they are."""
        if session.get("store") != "sqlite":
            if session.get("conversation") is None:
                return record_file_archived(self.sessions_dir, session, receipt)
            outcome = self._record_copy(session, receipt)
            if all(
                archive.find_copy(
                    self.sessions_dir, conversations.stem(session["sessionId"], c), size=n, sha256=h
                )
                for c, n, h in session["parts"]
            ):  # every conversation of the export is archived: the export follows, under its own name
                archive.move_as_is(self.sessions_dir, session["file"])
            return outcome
        return self._record_copy(session, receipt)

    def _record_copy(self, session: Session, receipt: dict[str, Any]) -> archive.ArchiveOutcome:
        staged, duplicate = receipt["staged"], receipt.get("duplicateOf")
        if duplicate:
            (self.sessions_dir / staged).unlink(missing_ok=True)
            # The copy with these bytes now stands for the session as it is: later runs see it as done.
            archive.restamp(
                self.sessions_dir,
                duplicate,
                size=receipt["size"],
                mtime_ns=receipt["mtimeNs"],
                sha256=receipt["sha256"],
            )
            return archive.ArchiveOutcome(duplicate, already_done=True)
        return archive.archive_transcript(
            self.sessions_dir,
            staged,
            conversations.stem(session["sessionId"], session.get("conversation")),
            size=receipt["size"],
            mtime_ns=receipt["mtimeNs"],
            sha256=receipt["sha256"],
        )


def _db_session(agent_id: str, session_id: str, file: str, mtime_ns: int, kind: str) -> Session:
    return {
        "agentId": agent_id,
        "sessionId": session_id,
        "file": file,
        "size": None,
        "mtimeNs": mtime_ns,
        "kind": kind,
        "store": "sqlite",
    }
