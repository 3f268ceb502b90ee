"""OpenClaw 2026.8+ (SQLite era): one transcript of an agent's database exported to a staging file of
ours (``export_transcript``). Airflow-free.

A transcript is OpenClaw's own export form: the session's ``transcript_events`` rows by ``seq``, each
``event_json`` (or ``event_zstd`` decompressed) followed by ``\\n``. Cold sessions are read from their
``session_transcript_cold_archives`` record file (``sessions/cold/<sha256>.jsonl.zst`` or the row's blob);
a deleted session from its ``session_transcript_archives`` row, as OpenClaw stored it; one conversation
of a session (see ``conversations``) from the session's header row and the rows between two reset events.

Each export is one read transaction that first checks the session is still completed (or the
conversation finished), so every slow step after it (HTTP) works from the file, not from OpenClaw's
snapshot.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import zstandard

from openclaw_nexus import archive, conversations, zst
from openclaw_nexus.sqlite_db import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    SessionNotCompleted,
    StoreError,
    as_text,
    check_schema,
    connect,
    has_column,
    has_table,
    read_transaction,
)
from openclaw_nexus.sqlite_live import live_session_ids

COLD_DIR = "cold"
_COLD_NAME_LEN = len("0" * 64 + ".jsonl.zst")
_WRITE_CHUNK = 1 << 20


@dataclass(frozen=True)
class Exported:
    """A transcript exported to a staging file: what it holds, and how long the read transaction took."""

    path: Path
    size: int
    mtime_ns: int
    events: int
    read_seconds: float

    @property
    def sha256(self) -> str:
        """Hashed on request only: the upload measures and hashes the staged file itself."""
        return archive.file_sha256(self.path)


def export_transcript(
    path: Path,
    session_id: str,
    dest: Path,
    *,
    source: str = "window",
    archive_name: str | None = None,
    conversation: str | None = None,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
) -> Exported:
    """Write one completed session's transcript, or one finished conversation of a session, to ``dest``
    (mode 0600, its mtime the last change of what it holds: the session's, or the conversation's closing
    reset), reading it in one read transaction that first checks it is still completed or finished.

    ``source`` is ``window`` (its rows, or its cold archive) or ``export`` (a ``session_transcript_archives``
    row named ``archive_name``). ``conversation``: ``0`` or the id of the reset event that opens it (see
    ``conversations``). Raises ``SessionNotCompleted`` or ``StoreError``; ``dest`` is then absent.
    """
    timings: list[float] = []
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            writer = _Writer(out)
            with connect(path, busy_timeout) as connection, read_transaction(connection, timings):
                check_schema(connection, path)
                if source == "export":
                    mtime_ns = _write_stored_export(connection, path, session_id, archive_name, writer)
                elif conversation is not None:
                    mtime_ns = _write_conversation(connection, path, session_id, conversation, writer)
                else:
                    mtime_ns = _write_window(connection, path, session_id, writer)
            writer.flush()  # the transaction has ended: the rest need not hold OpenClaw's snapshot
            os.fsync(out.fileno())
        os.utime(partial, ns=(mtime_ns, mtime_ns))
        os.replace(partial, dest)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Exported(dest, writer.size, mtime_ns, writer.events, timings[0])


class _Writer:
    """Buffered writes of ``event + \\n`` lines, counted on the way."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.size = 0
        self.events = 0
        self._buffer: list[bytes] = []
        self._buffered = 0

    def event(self, data: bytes) -> None:
        self.write(data)
        self.write(b"\n")
        self.events += 1

    def write(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        self.size += len(data)
        if self._buffered >= _WRITE_CHUNK:
            self.flush()

    def flush(self) -> None:
        self.out.write(b"".join(self._buffer))
        self._buffer.clear()
        self._buffered = 0


def _write_window(connection: sqlite3.Connection, path: Path, session_id: str, writer: _Writer) -> int:
    changed_ms = _completed_window(connection, path, session_id)
    _write_rows(connection, path, session_id, writer)
    if writer.events == 0:
        _write_cold(connection, path, session_id, writer)
    return changed_ms * 1_000_000


def _completed_window(connection: sqlite3.Connection, path: Path, session_id: str) -> int:
    """The window's last change (ms); ``SessionNotCompleted`` when it is gone or live."""
    window = connection.execute(
        "SELECT max(updated_at, coalesce(transcript_updated_at, 0)) FROM session_windows"
        " WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if window is None:
        raise SessionNotCompleted(
            f"session {session_id} is no longer in {path} (deleted since discovery?); "
            "a later run takes OpenClaw's deletion export instead"
        )
    if session_id in live_session_ids(connection, only=session_id):
        raise SessionNotCompleted(f"session {session_id} is live again in {path}; not uploaded")
    return int(window[0])


def _write_conversation(
    connection: sqlite3.Connection, path: Path, session_id: str, conversation: str, writer: _Writer
) -> int:
    """The session's header row, then the conversation's rows: from its opening reset event (or the
    session's start, for ``0``) up to the next reset event. Without a next one the conversation is the
    session's last, finished only when the session is completed. Boundaries are looked up by event id:
    OpenClaw may renumber ``seq`` when it rewrites a transcript."""
    what = f"conversation {conversation} of session {session_id}"
    first = connection.execute(
        "SELECT min(seq) FROM transcript_events WHERE session_id = ?", (session_id,)
    ).fetchone()[0]
    if first is None:
        raise SessionNotCompleted(f"{what} has no rows in {path} (deleted, or moved to cold storage)")
    if conversation == conversations.FIRST:
        start = first
    else:
        opening = connection.execute(
            "SELECT seq FROM transcript_event_identities WHERE session_id = ? AND event_id = ?"
            " AND event_type = 'reset'",
            (session_id, conversation),
        ).fetchone()
        if opening is None:
            raise SessionNotCompleted(
                f"{what}: its reset event is no longer in {path} (OpenClaw truncated the transcript?); "
                "a later run reads the session again"
            )
        start = opening[0]
    closing = connection.execute(
        "SELECT seq, created_at FROM transcript_event_identities WHERE session_id = ?"
        " AND event_type = 'reset' AND seq > ? ORDER BY seq LIMIT 1",
        (session_id, start),
    ).fetchone()
    if closing is None:
        try:
            changed_ms = _completed_window(connection, path, session_id)
        except SessionNotCompleted as exc:
            raise SessionNotCompleted(f"{what} is still open: {exc}") from None
        end, closed_ms = None, changed_ms
    else:
        end, closed_ms = closing
    if start > first:
        _write_rows(connection, path, session_id, writer, first, first + 1, header=True)
    _write_rows(connection, path, session_id, writer, start, end)
    return int(closed_ms) * 1_000_000


def _write_rows(
    connection: sqlite3.Connection,
    path: Path,
    session_id: str,
    writer: _Writer,
    start: int | None = None,
    end: int | None = None,
    *,
    header: bool = False,
) -> None:
    """Rows ``start <= seq < end`` (all when unbounded), by seq; ``header``: only a session header row."""
    compressed = has_column(connection, "transcript_events", "event_zstd")
    columns = "seq, event_json, event_zstd, event_utf8_bytes" if compressed else "seq, event_json, NULL, NULL"
    query = f"SELECT {columns} FROM transcript_events WHERE session_id = ?"
    params: list[str | int] = [session_id]
    if start is not None:
        query += " AND seq >= ?"
        params.append(start)
    if end is not None:
        query += " AND seq < ?"
        params.append(end)
    decompressor = zstandard.ZstdDecompressor()
    for seq, text, packed, length in connection.execute(query + " ORDER BY seq", params):
        if text is None:
            try:
                text = decompressor.decompress(packed, max_output_size=length or 0)
            except zstandard.ZstdError as exc:
                raise StoreError(
                    f"{path}: event {seq} of session {session_id} does not decompress: {exc}"
                ) from None
            if len(text) != length:
                raise StoreError(
                    f"{path}: event {seq} of session {session_id} decompresses to {len(text)} bytes, "
                    f"not the {length} recorded"
                )
        if header and not conversations.is_header(text):
            return  # no session header to repeat: the conversation is sent as its rows alone
        writer.event(text)


def _write_cold(connection: sqlite3.Connection, path: Path, session_id: str, writer: _Writer) -> None:
    """A cold session: its payload is a zstd file of JSON records; the ``event`` ones, by seq, are it."""
    if not has_table(connection, "session_transcript_cold_archives"):
        return
    row = connection.execute(
        "SELECT archive_name, archive_sha256, archive_bytes, storage, archive_blob"
        " FROM session_transcript_cold_archives WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if row is None:
        return
    name, sha256, size, storage, blob = (as_text(row[0]), as_text(row[1]), row[2], as_text(row[3]), row[4])
    if storage == "sqlite":
        packed = bytes(blob)
    else:
        if len(name) != _COLD_NAME_LEN or "/" in name or not name.endswith(".jsonl.zst"):
            raise StoreError(f"{path}: cold archive name {name!r} of session {session_id} is not OpenClaw's")
        cold = path.parent.parent / "sessions" / COLD_DIR / name
        try:
            packed = cold.read_bytes()
        except OSError as exc:
            raise StoreError(f"cold archive {cold} of session {session_id}: {exc.strerror or exc}") from None
    if len(packed) != size or hashlib.sha256(packed).hexdigest() != sha256:
        raise StoreError(f"cold archive {name} of session {session_id} fails its recorded sha256")
    events = []
    for line in _unzstd(packed, f"cold archive of session {session_id}").splitlines():
        record = json.loads(line)
        if record.get("kind") == "event":
            events.append((record["row"]["seq"], record["row"]["event_json"]))
    for _, text in sorted(events):
        writer.event(text.encode("utf-8", "surrogatepass"))


def _write_stored_export(
    connection: sqlite3.Connection, path: Path, session_id: str, archive_name: str | None, writer: _Writer
) -> int:
    row = connection.execute(
        "SELECT encoding, archive_blob, archive_sha256, created_at FROM session_transcript_archives"
        " WHERE session_id = ? AND archive_name = ?",
        (session_id, archive_name),
    ).fetchone()
    if row is None:
        raise SessionNotCompleted(f"export {archive_name} of session {session_id} is no longer in {path}")
    encoding, blob, sha256, created_ms = as_text(row[0]), bytes(row[1]), as_text(row[2]), row[3]
    if hashlib.sha256(blob).hexdigest() != sha256:
        raise StoreError(f"{path}: stored export {archive_name} fails its recorded sha256")
    content = _unzstd(blob, f"stored export {archive_name}") if encoding == "zstd" else blob
    writer.write(content)  # OpenClaw's own export bytes, as they are
    writer.events = content.count(b"\n")
    return int(created_ms) * 1_000_000


def _unzstd(packed: bytes, what: str) -> bytes:
    try:
        return zst.decompress_stream(packed)
    except zst.ZstError as exc:
        raise StoreError(f"{what} does not decompress: {exc}") from None
