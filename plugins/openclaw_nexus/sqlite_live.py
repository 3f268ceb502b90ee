"""OpenClaw 2026.8+ (SQLite era): which sessions of an agent's database are live, and one read of the
database that finds the rest (``scan_database``). Airflow-free.

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

The scan also reads each window's reset events (the boundaries of its conversations, see
``conversations``) and the stored deletion exports, in the same read transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from openclaw_nexus.sqlite_db import (
    DEFAULT_BUSY_TIMEOUT_SECONDS,
    as_text,
    check_schema,
    connect,
    has_column,
    has_table,
    read_transaction,
)

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
    params: tuple[str, ...] = ()
    if only is not None:
        live += " AND (current_session_id = ? OR instr(entry_json, ?) > 0)"
        params = (only, only)
    query = f"WITH live AS ({live}) {_ENTRY_REFERENCES}"
    # A running window or a queued input: for one id, looked up by key (session_windows has no index
    # on status, and this check runs inside every export's read transaction).
    narrow = " AND session_id = ?" if only is not None else ""
    query += f" UNION SELECT session_id, 0 FROM session_windows WHERE status = 'running'{narrow}"
    params += (only,) if only is not None else ()
    if has_table(connection, "session_pending_inputs"):
        query += f" UNION SELECT session_id, 0 FROM session_pending_inputs WHERE state = 'queued'{narrow}"
        params += (only,) if only is not None else ()
    found: dict[str, bool] = {}
    for value, checkpoint in connection.execute(query, params):
        sid = as_text(value).strip() if value is not None else ""
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
        windows = {as_text(row[0]) for row in rows}
    return {sid for sid, only_checkpoints in references.items() if not only_checkpoints or sid in windows}


@dataclass
class DatabaseScan:
    """What one read of the database says about the agent's sessions."""

    schema: int
    live: set[str]
    # session id → (session key, last change in ns, archived node?) for every window that is not live
    completed: dict[str, tuple[str, int, bool]]
    # session id → (archive_name, created_at ns) of deletion/reset exports kept in the database
    exports: dict[str, list[tuple[str, int]]]
    skipped: Counter[str]
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
    return [as_text(event_id) for event_id, _ in rows], [int(ns) for _, ns in rows]


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
        sid = as_text(session_id)
        if sid not in wanted:
            continue
        tokens = as_text(ids).split(_SEP)
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
        if has_column(connection, "transcript_event_identities", "event_type"):
            counts = {as_text(sid): int(n) for sid, n in connection.execute(_RESET_COUNTS)}
        completed: dict[str, tuple[str, int, bool]] = {}
        live_windows: dict[str, tuple[str, int]] = {}
        skipped: Counter[str] = Counter()
        wanted: set[str] = set()
        rows = connection.execute(
            "SELECT w.session_id, w.session_key, max(w.updated_at, coalesce(w.transcript_updated_at, 0)),"
            " n.archived_at IS NOT NULL FROM session_windows AS w JOIN session_nodes AS n USING (session_key)"
        )
        for session_id, session_key, changed_ms, archived in rows:
            sid = as_text(session_id)
            changed_ns = int(changed_ms) * 1_000_000
            if sid in live:
                skipped["live"] += 1
                if sid in counts:
                    live_windows[sid] = (as_text(session_key), changed_ns)
            else:
                completed[sid] = (as_text(session_key), changed_ns, bool(archived))
            # finished conversations: all but the last while the window is live
            if sid in counts and not (known and known(sid, counts[sid] + (sid not in live), changed_ns)):
                wanted.add(sid)
        resets = _reset_events(connection, wanted, len(counts)) if wanted else {}
        exports: dict[str, list[tuple[str, int]]] = {}
        if has_table(connection, "session_transcript_archives"):
            for session_id, name, created_ms in connection.execute(
                "SELECT session_id, archive_name, created_at FROM session_transcript_archives"
            ):
                exports.setdefault(as_text(session_id), []).append(
                    (as_text(name), int(created_ms) * 1_000_000)
                )
    return DatabaseScan(schema, live, completed, exports, skipped, live_windows, counts, resets, export_live)
