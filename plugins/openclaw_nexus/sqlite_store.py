"""OpenClaw 2026.8+ (SQLite era): an agent's sessions in ``agents/<id>/agent/openclaw-agent.sqlite``.
Airflow-free.

Read the way OpenClaw's own read-only readers do: a ``mode=ro`` URI, ``PRAGMA query_only``, a busy
timeout, and short read transactions. Nothing here writes, migrates, checkpoints, vacuums or copies the
database; each transcript is exported to a staging file of ours in one transaction, and every slow step
(HTTP) works from that file.

*Live* follows OpenClaw's maintenance (``readReferencedSessionIds``) where it speaks of use: a session
id is live while an unarchived ``session_nodes`` row references it as its session (``current_session_id``,
the entry's ``sessionId``) or as a compaction checkpoint (a copy of live history, not a session of its
own), its window is running, or an input is queued for it. Maintenance also protects the ids an entry
keeps as lineage (``previousSessionId`` after a rollover, a cron run's ``usageFamilySessionIds``) from
eviction; those sessions take no more events, so they count as completed here, as rolled over. Every
window that is not live is *completed*: rolled over, a finished cron run or sub-agent, or its node
archived. A checkpoint keeps a window live, not an export OpenClaw published at a session's end: a
session that only checkpoints name and that has no window any more has ended (OpenClaw 2026.7's
``sessions.reset`` carries the entry's checkpoints, naming the reset session, over to the next one, and a
migration keeps them), so its ``.reset.``/``.deleted.`` file is sent (``end_export_live_ids``). A
session deleted or pruned by OpenClaw has no window any more; its export is the ``.jsonl.deleted…`` file
OpenClaw publishes in ``sessions/`` (read by ``files``), and the ``session_transcript_archives`` row is
read only when that file is gone and nothing of the session was archived by us.

A transcript is OpenClaw's own export form: the session's ``transcript_events`` rows by ``seq``, each
``event_json`` (or ``event_zstd`` decompressed) followed by ``\\n``. Cold sessions are read from their
``session_transcript_cold_archives`` record file (``sessions/cold/<sha256>.jsonl.zst`` or the row's blob).
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from openclaw_nexus import archive, conversations, zst
from openclaw_nexus.discovery import (
    ARCHIVE_DIR,
    AgentScan,
    ArchiveIndex,
    Window,
    agents_folder,
    agents_root,
    sessions_dir_of,
    sort_sessions,
    within,
)
from openclaw_nexus.files import ActiveSet, open_file, record_file_archived, scan_files
from openclaw_nexus.names import parse_transcript_name
from openclaw_nexus.staging import Transcript, prepare_staging, staging_name
from openclaw_nexus.transcript import TranscriptError

DATABASE = Path("agent") / "openclaw-agent.sqlite"
# Agent schemas this package reads: 19 is OpenClaw 2026.8.1 (the first stable SQLite release), 23 is
# 2026.9.6, the release its tests run. A newer schema is refused until it has been tested.
OLDEST_SCHEMA = 19
NEWEST_TESTED_SCHEMA = 23
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0
# ``file`` of a session read from the database (the JobResult's and the logs' name for it).
FILE_PREFIX = "openclaw-agent.sqlite#"
COLD_DIR = "cold"
_COLD_NAME_LEN = len("0" * 64 + ".jsonl.zst")
_WRITE_CHUNK = 1 << 20


class StoreError(Exception):
    """The agent's database cannot be read as it is: locked, corrupt, or of an unknown schema."""


class SessionNotCompleted(StoreError):
    """The session is live again, or gone, since discovery: it is not exported."""


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


def database_of(agent_dir: Path) -> Path:
    return agent_dir / DATABASE


def session_file(session_id: str) -> str:
    return f"{FILE_PREFIX}{session_id}"


@contextmanager
def connect(path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> Iterator[sqlite3.Connection]:
    """A read-only connection; ``StoreError`` names the file when it cannot be opened or read."""
    _refuse_foreign_side_files(path)
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open read-only: {exc}") from None
    with closing(connection):
        connection.text_factory = bytes  # the stored bytes, exactly; UTF-8 is checked by the upload
        try:
            connection.execute("PRAGMA query_only = ON")
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            yield connection
        except sqlite3.OperationalError as exc:
            raise StoreError(_explain(path, exc, busy_timeout)) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise StoreError(f"{path}: {exc}; nothing of this agent is read") from None


def _refuse_foreign_side_files(path: Path) -> None:
    """A WAL database whose ``-wal``/``-shm`` are absent gets them created by any reader, read-only or
    not. SQLite gives them the database's owner when it runs as root; as another user they would be
    ours, and OpenClaw could no longer open its own database. Refuse that case instead."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
        owner = path.stat().st_uid
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
    in_wal_mode = len(header) == 20 and header[18] == 2
    absent = [side for side in ("-wal", "-shm") if not Path(f"{path}{side}").exists()]
    if in_wal_mode and absent and os.geteuid() not in (0, owner):
        raise StoreError(
            f"{path}: its {' and '.join(absent)} file is absent (OpenClaw closed it) and this worker runs "
            f"as uid {os.geteuid()}, not the database owner's uid {owner}: reading would create it owned by "
            "this worker and lock OpenClaw out; run the file tasks as OpenClaw's user"
        )


def _explain(path: Path, exc: sqlite3.Error, busy_timeout: float) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"{path}: locked by another writer for more than {busy_timeout:g} s ({text}); try a later run"
    return f"{path}: {text}"


@contextmanager
def read_transaction(connection: sqlite3.Connection, timings: list[float] | None = None) -> Iterator[None]:
    """One short deferred read transaction (one consistent snapshot); its length goes to ``timings``."""
    started = time.monotonic()
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")  # a read-only transaction: ending it releases the WAL snapshot
        if timings is not None:
            timings.append(time.monotonic() - started)


def check_schema(connection: sqlite3.Connection, path: Path) -> int:
    """The agent schema version; ``StoreError`` unless it is one this package has been tested with."""
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    meta = None
    if _has_table(connection, "schema_meta"):
        meta = connection.execute(
            "SELECT schema_version FROM schema_meta WHERE role = 'agent' ORDER BY updated_at DESC LIMIT 1"
        ).fetchone()
    if meta is not None and not version:
        version = meta[0]
    if not version or not _has_table(connection, "session_windows"):
        raise StoreError(f"{path} is not an OpenClaw agent database (no agent schema version)")
    if version > NEWEST_TESTED_SCHEMA:
        raise StoreError(
            f"{path} has agent schema {version}, newer than the newest this package was tested with "
            f"({NEWEST_TESTED_SCHEMA}, OpenClaw 2026.9.6): nothing of this agent is read until it is"
        )
    if version < OLDEST_SCHEMA:
        raise StoreError(
            f"{path} has agent schema {version}, older than OpenClaw 2026.8.1's ({OLDEST_SCHEMA})"
        )
    return version


def _has_table(connection: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (name,)).fetchone() is not None


# Session ids an unarchived node uses, read from ``entry_json`` the way OpenClaw's maintenance reads them
# (lineage ids, ``previousSessionId`` and ``usageFamilySessionIds``, are not use: see the module docs),
# each with 1 when a compaction checkpoint names it, else 0.
_ENTRY_REFERENCES = """
SELECT current_session_id, 0 FROM live
UNION SELECT json_extract(entry_json, '$.sessionId'), 0 FROM live WHERE json_valid(entry_json)
UNION SELECT json_extract(point.value, '$.sessionId'), 1 FROM live,
    json_each(live.entry_json, '$.compactionCheckpoints') AS point
    WHERE json_valid(live.entry_json) AND json_type(live.entry_json, '$.compactionCheckpoints') = 'array'
UNION SELECT json_extract(point.value, '$.preCompaction.sessionId'), 1 FROM live,
    json_each(live.entry_json, '$.compactionCheckpoints') AS point
    WHERE json_valid(live.entry_json) AND json_type(live.entry_json, '$.compactionCheckpoints') = 'array'
UNION SELECT json_extract(point.value, '$.postCompaction.sessionId'), 1 FROM live,
    json_each(live.entry_json, '$.compactionCheckpoints') AS point
    WHERE json_valid(live.entry_json) AND json_type(live.entry_json, '$.compactionCheckpoints') = 'array'
UNION SELECT session_windows.session_id, 0 FROM session_windows JOIN live USING (session_key)
    WHERE NOT json_valid(live.entry_json)
"""


def live_session_ids(connection: sqlite3.Connection, only: str | None = None) -> set[str]:
    """Session ids OpenClaw still uses (see the module docs); ``only`` narrows the nodes read to the ones
    that may mention that id, for the check right before an export."""
    return set(_references(connection, only))


def _references(connection: sqlite3.Connection, only: str | None = None) -> dict[str, bool]:
    """The live session ids, each with True when only compaction checkpoints name it."""
    live = "SELECT session_key, current_session_id, entry_json FROM session_nodes WHERE archived_at IS NULL"
    params: tuple = ()
    if only is not None:
        live += " AND (current_session_id = ? OR instr(entry_json, ?) > 0)"
        params = (only, only)
    query = f"WITH live AS ({live}) {_ENTRY_REFERENCES}"
    # A running window or a queued input: for one id, looked up by key (session_windows has no index
    # on status, and this check runs inside every export's read transaction).
    narrow = " AND session_id = ?" if only is not None else ""
    query += f" UNION SELECT session_id, 0 FROM session_windows WHERE status = 'running'{narrow}"
    params += (only,) if only is not None else ()
    if _has_table(connection, "session_pending_inputs"):
        query += f" UNION SELECT session_id, 0 FROM session_pending_inputs WHERE state = 'queued'{narrow}"
        params += (only,) if only is not None else ()
    found: dict[str, bool] = {}
    for value, checkpoint in connection.execute(query, params):
        sid = _text(value).strip() if value is not None else ""
        if sid:
            found[sid] = found.get(sid, True) and bool(checkpoint)
    return found


def end_export_live_ids(
    connection: sqlite3.Connection, references: dict[str, bool] | None = None
) -> set[str]:
    """The live set OpenClaw's own end-of-session exports are held against (its ``.reset.``/``.deleted.``
    files, its stored deletion exports): the live set without the ids that only compaction checkpoints
    name and that have no window any more. A checkpoint keeps a window (history in this database) live;
    a session it names whose transcript is only such an export has ended, as after OpenClaw 2026.7's
    ``sessions.reset``, which carries the entry's checkpoints over to the next session."""
    references = _references(connection) if references is None else references
    named = [sid for sid, only_checkpoints in references.items() if only_checkpoints]
    windows: set[str] = set()
    if named:
        rows = connection.execute(
            "SELECT session_id FROM session_windows WHERE session_id IN (SELECT value FROM json_each(?))",
            (json.dumps(named),),
        )
        windows = {_text(row[0]) for row in rows}
    return {sid for sid, only_checkpoints in references.items() if not only_checkpoints or sid in windows}


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)


@dataclass
class DatabaseScan:
    """What one read of the database says about the agent's sessions."""

    schema: int
    live: set[str]
    # session id → (session key, last change in ns, archived node?) for every window that is not live
    completed: dict[str, tuple[str, int, bool]]
    # session id → (archive_name, created_at ns) of deletion/reset exports kept in the database
    exports: dict[str, list[tuple[str, int]]]
    skipped: Counter
    # session id → (session key, last change in ns) of the live windows that have reset events
    live_windows: dict[str, tuple[str, int]] = field(default_factory=dict)
    # session id → how many reset events it has, for every window that has any
    reset_counts: dict[str, int] = field(default_factory=dict)
    # session id → its reset events in transcript order, (their ids, their created_at in ns): the
    # conversation boundaries; read for every window with resets but those ``known`` to be all sent
    resets: dict[str, tuple[list[str], list[int]]] = field(default_factory=dict)
    # the live set OpenClaw's end-of-session exports are held against (``end_export_live_ids``)
    export_live: set[str] = field(default_factory=set)


# How many reset events each window has, from OpenClaw's index alone (idx_agent_transcript_event_sequence
# (session_id, event_type, seq) covers it: no table row is read). CROSS JOIN keeps the windows outside: a
# plain JOIN lets SQLite scan every event identity of the agent instead.
_RESET_COUNTS = """
SELECT w.session_id, count(*) FROM session_windows AS w
CROSS JOIN transcript_event_identities AS i ON i.session_id = w.session_id AND i.event_type = 'reset'
GROUP BY w.session_id
"""
# The reset events themselves, one row per session: the same lookups, plus each row's id and time (a
# million reset rows cost Python a second as rows, a fraction as strings). SQLite leaves group_concat's
# order unspecified before 3.44: the seqs come along, and a session whose seqs are out of order, or whose
# ids contain the separator, is read again row by row.
_SEP = "\x1f"
_RESETS_GROUPED = f"""
SELECT session_id, group_concat(event_id, '{_SEP}'), group_concat(created_ns, '{_SEP}'),
  group_concat(seq, '{_SEP}') FROM (
    SELECT i.session_id, i.event_id, i.created_at * 1000000 AS created_ns, i.seq FROM session_windows AS w
    CROSS JOIN transcript_event_identities AS i ON i.session_id = w.session_id AND i.event_type = 'reset'
    ORDER BY w.session_id, i.seq
  ) GROUP BY session_id
"""
_RESETS_OF = """
SELECT event_id, created_at * 1000000 FROM transcript_event_identities
WHERE session_id = ? AND event_type = 'reset' ORDER BY seq
"""


def _resets_of(connection: sqlite3.Connection, session_id: object) -> tuple[list[str], list[int]]:
    rows = connection.execute(_RESETS_OF, (session_id,)).fetchall()
    return [_text(event_id) for event_id, _ in rows], [int(ns) for _, ns in rows]


def _reset_events(
    connection: sqlite3.Connection, wanted: set[str], of: int
) -> dict[str, tuple[list[str], list[int]]]:
    """Session id → its reset events in transcript order (ids, created_at in ns), for the wanted ones
    (of ``of`` sessions with resets): all in one query when many are wanted, else one lookup each."""
    resets: dict[str, tuple[list[str], list[int]]] = {}
    if len(wanted) * 4 < of:
        for sid in wanted:
            resets[sid] = _resets_of(connection, sid)
        return resets
    sep = _SEP.encode()
    for session_id, ids, created, seqs in connection.execute(_RESETS_GROUPED):
        sid = _text(session_id)
        if sid not in wanted:
            continue
        tokens = _text(ids).split(_SEP)
        times = list(map(int, (created if isinstance(created, bytes) else str(created).encode()).split(sep)))
        order = list(map(int, (seqs if isinstance(seqs, bytes) else str(seqs).encode()).split(sep)))
        if len(tokens) == len(times) == len(order) and order == sorted(order):
            resets[sid] = (tokens, times)
        else:
            resets[sid] = _resets_of(connection, session_id)
    return resets


def scan_database(
    path: Path,
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS,
    known: Callable[[str, int, int], bool] | None = None,
) -> DatabaseScan:
    """Read the live set, the windows, their reset events and the stored exports, in one read transaction.

    ``known(session_id, finished_conversations, last_change_ns)``: True for a session whose reset events
    need not be read (``ArchiveIndex.all_sent``: every finished conversation of it, in this state, is
    archived)."""
    with connect(path, busy_timeout) as connection, read_transaction(connection):
        schema = check_schema(connection, path)
        references = _references(connection)
        live = set(references)
        export_live = end_export_live_ids(connection, references)
        counts: dict[str, int] = {}
        if _has_column(connection, "transcript_event_identities", "event_type"):
            counts = {_text(sid): int(n) for sid, n in connection.execute(_RESET_COUNTS)}
        completed: dict[str, tuple[str, int, bool]] = {}
        live_windows: dict[str, tuple[str, int]] = {}
        skipped: Counter = Counter()
        wanted: set[str] = set()
        rows = connection.execute(
            "SELECT w.session_id, w.session_key, max(w.updated_at, coalesce(w.transcript_updated_at, 0)),"
            " n.archived_at IS NOT NULL FROM session_windows AS w JOIN session_nodes AS n USING (session_key)"
        )
        for session_id, session_key, changed_ms, archived in rows:
            sid = _text(session_id)
            changed_ns = int(changed_ms) * 1_000_000
            if sid in live:
                skipped["live"] += 1
                if sid in counts:
                    live_windows[sid] = (_text(session_key), changed_ns)
            else:
                completed[sid] = (_text(session_key), changed_ns, bool(archived))
            # finished conversations: all but the last while the window is live
            if sid in counts and not (known and known(sid, counts[sid] + (sid not in live), changed_ns)):
                wanted.add(sid)
        resets = _reset_events(connection, wanted, len(counts)) if wanted else {}
        exports: dict[str, list[tuple[str, int]]] = {}
        if _has_table(connection, "session_transcript_archives"):
            for session_id, name, created_ms in connection.execute(
                "SELECT session_id, archive_name, created_at FROM session_transcript_archives"
            ):
                exports.setdefault(_text(session_id), []).append((_text(name), int(created_ms) * 1_000_000))
    return DatabaseScan(schema, live, completed, exports, skipped, live_windows, counts, resets, export_live)


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

    def __init__(self, out):
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
    compressed = _has_column(connection, "transcript_events", "event_zstd")
    columns = "seq, event_json, event_zstd, event_utf8_bytes" if compressed else "seq, event_json, NULL, NULL"
    query = f"SELECT {columns} FROM transcript_events WHERE session_id = ?"
    params: list = [session_id]
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


def _has_column(connection: sqlite3.Connection, table: str, column: str) -> bool:
    return any(_text(row[1]) == column for row in connection.execute(f"PRAGMA table_info({table})"))


def _write_cold(connection: sqlite3.Connection, path: Path, session_id: str, writer: _Writer) -> None:
    """A cold session: its payload is a zstd file of JSON records; the ``event`` ones, by seq, are it."""
    if not _has_table(connection, "session_transcript_cold_archives"):
        return
    row = connection.execute(
        "SELECT archive_name, archive_sha256, archive_bytes, storage, archive_blob"
        " FROM session_transcript_cold_archives WHERE session_id = ?",
        (session_id,),
    ).fetchone()
    if row is None:
        return
    name, sha256, size, storage, blob = (_text(row[0]), _text(row[1]), row[2], _text(row[3]), row[4])
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
    encoding, blob, sha256, created_ms = _text(row[0]), bytes(row[1]), _text(row[2]), row[3]
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

    def _export_conversations(self, scan: AgentScan, item: dict) -> list[dict]:
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

    def open_transcript(self, session: dict) -> Transcript:
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

    def _cut(self, whole: Transcript, session: dict) -> Transcript:
        """One conversation of a decompressed deletion export, staged on its own (the whole is removed)."""
        start, end = session["part"]
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

    def record_archived(self, session: dict, receipt: dict) -> archive.ArchiveOutcome:
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

    def _record_copy(self, session: dict, receipt: dict) -> archive.ArchiveOutcome:
        staged, duplicate = receipt["staged"], receipt.get("duplicateOf")
        if duplicate:
            (self.sessions_dir / staged).unlink(missing_ok=True)
            # The copy with these bytes now stands for the session as it is: later runs see it as done.
            os.utime(self.sessions_dir / duplicate, ns=(receipt["mtimeNs"], receipt["mtimeNs"]))
            return archive.ArchiveOutcome(duplicate, already_done=True)
        return archive.archive_transcript(
            self.sessions_dir,
            staged,
            conversations.stem(session["sessionId"], session.get("conversation")),
            size=receipt["size"],
            mtime_ns=receipt["mtimeNs"],
            sha256=receipt["sha256"],
        )


def _db_session(agent_id: str, session_id: str, file: str, mtime_ns: int, kind: str) -> dict:
    return {
        "agentId": agent_id,
        "sessionId": session_id,
        "file": file,
        "size": None,
        "mtimeNs": mtime_ns,
        "kind": kind,
        "store": "sqlite",
    }
