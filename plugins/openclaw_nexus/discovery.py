"""Find completed OpenClaw sessions on disk, per agent and era. Airflow-free.

JSONL era (no database): a transcript is *completed* when its session id and its file are not in the
agent's active set (``sessions/sessions.json``), it is older than the settle time, no fresh ``.lock``
guards it, and its modification time falls in the run's window.

SQLite era (``agent/openclaw-agent.sqlite``, native or migrated): the database says which sessions are
live (``sqlite_store``); every other window is completed once quiet for the settle time, unless a copy in
``sessions/archive/`` carries its last-change time (then it was uploaded as it is now). OpenClaw's
leftover ``.reset.``/``.deleted.`` files in ``sessions/`` are classified as in the JSONL era, against the
database's live set; ``sessions.json`` is not needed. Anything doubtful is left alone and reported.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from openclaw_nexus import sqlite_store
from openclaw_nexus.names import INDEX_FILE, SESSION_ID_RE, is_valid_session_id, parse_transcript_name

AGENTS_DIR = "agents"
SESSIONS_DIR = "sessions"
ARCHIVE_DIR = "archive"
# OpenClaw treats a transcript lock older than this as stale (its own rule).
LOCK_STALE_SECONDS = 30 * 60
_HEADER_READ_LIMIT = 64 * 1024
_ARCHIVED_NAME_RE = re.compile(rf"(?P<id>{SESSION_ID_RE.pattern})(?:\+\d+)?\.jsonl", re.IGNORECASE)


class SessionIndexError(Exception):
    """``sessions.json`` cannot be trusted, so the agent's active set is unknown."""


@dataclass(frozen=True)
class ActiveSet:
    """The sessions OpenClaw still uses: never uploaded, never moved."""

    session_ids: frozenset[str]
    file_names: frozenset[str]

    def contains(self, session_id: str, file_name: str) -> bool:
        return session_id in self.session_ids or file_name in self.file_names


@dataclass(frozen=True)
class Window:
    """Which transcripts a run may take, by modification time (epoch seconds)."""

    now: float
    settle_seconds: float = 300.0
    not_before: float | None = None  # inclusive; set for backfill runs
    before: float | None = None  # exclusive; the run's data interval end

    def admits(self, mtime: float) -> str | None:
        """None when the mtime is in the window, else the reason it is not."""
        if mtime > self.now - self.settle_seconds:
            return "settling"
        if self.before is not None and mtime >= self.before:
            return "after_window"
        if self.not_before is not None and mtime < self.not_before:
            return "before_window"
        return None


@dataclass
class AgentScan:
    """What discovery found for one agent; ``to_dict`` is what travels through XCom."""

    agent_id: str
    era: str = "jsonl"  # "jsonl" (sessions.json and files) or "sqlite" (OpenClaw 2026.8+ database)
    sessions: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    skipped: Counter = field(default_factory=Counter)
    live: int | None = None  # sessions OpenClaw still uses (SQLite era)
    schema: int | None = None  # the database's agent schema (SQLite era)

    def error(self, reason: str, *, file: str | None = None, session_id: str | None = None) -> None:
        self.errors.append(
            {
                "agentId": self.agent_id,
                "sessionId": session_id,
                "file": file,
                "stage": "discover",
                "reason": reason,
            }
        )

    def to_dict(self) -> dict:
        return {
            "agentId": self.agent_id,
            "era": self.era,
            "schema": self.schema,
            "liveSessions": self.live,
            "sessions": self.sessions,
            "errors": self.errors,
            "skipped": dict(sorted(self.skipped.items())),
        }


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


def _within(path: Path, root: Path) -> bool:
    """True when ``path`` resolves inside ``root`` (symlinks followed)."""
    try:
        return path.resolve(strict=True).is_relative_to(root.resolve(strict=True))
    except OSError:
        return False


def agents_root(state_dir: Path) -> Path:
    """``<state dir>/agents``. When that is itself a symlink (NemoClaw's sandbox links it to
    ``/sandbox/.openclaw-data/agents``), it is the operator's configuration: it is followed once, and
    every escape rule below it (agent folders, ``sessions/``, transcripts, ``archive/``) applies under
    where it resolves."""
    return state_dir / AGENTS_DIR


def _agents(path: Path) -> str:
    """How an error names the agents folder: with where it resolves when that is elsewhere."""
    root = path if path.name == AGENTS_DIR else agents_root(path)
    resolved = root.resolve()
    return f"{AGENTS_DIR}/ folder" if resolved == root.absolute() else f"{AGENTS_DIR}/ folder ({resolved})"


def sessions_dir_of(state_dir: Path, agent_id: str) -> Path:
    return agents_root(state_dir) / agent_id / SESSIONS_DIR


def list_agents(state_dir: Path, requested: Iterable[str] | None = None) -> tuple[list[str], list[dict]]:
    """The agents to scan (every folder under ``agents/`` when none are requested), and errors.

    Names that are not plain folder names (``..``, slashes) and folders that resolve outside the
    agents folder (see ``agents_root``) are refused with an error naming the agent.
    """
    root = agents_root(state_dir)
    errors: list[dict] = []

    def refuse(agent_id: str, reason: str) -> None:
        errors.append(
            {"agentId": agent_id, "sessionId": None, "file": None, "stage": "discover", "reason": reason}
        )

    if not root.is_dir():
        refuse("*", f"state dir {state_dir} has no {AGENTS_DIR}/ folder (check OPENCLAW_STATE_DIR)")
        return [], errors
    if requested:
        names = sorted(set(requested))
    else:  # every agent folder; hidden entries (.git, .DS_Store) and plain files are not agents
        names = sorted(e.name for e in os.scandir(root) if not e.name.startswith(".") and e.is_dir())
    agents = []
    for name in names:
        if not SESSION_ID_RE.fullmatch(name) or name in {".", ".."} or ".." in name:
            refuse(name, f"agent name {name!r} is not a plain folder name")
        elif not (root / name).is_dir():
            if requested:
                refuse(name, f"agent {name!r} has no folder under {root}")
        elif not _within(root / name, root):
            where = _agents(root)
            refuse(name, f"agent folder {root / name} resolves outside the state dir's {where}: not followed")
        else:
            agents.append(name)
    return agents, errors


def scan_agent(
    state_dir: Path,
    agent_id: str,
    window: Window,
    *,
    include_archived: bool = False,
    busy_timeout: float = sqlite_store.DEFAULT_BUSY_TIMEOUT_SECONDS,
) -> AgentScan:
    """Classify every session of one agent and return its completed sessions, oldest first.

    The agent's era is decided from what is on disk: with ``agent/openclaw-agent.sqlite`` the database is
    the authority (OpenClaw 2026.8+, native or migrated); otherwise ``sessions/`` and its index are.
    """
    agent_dir = agents_root(state_dir) / agent_id
    database = sqlite_store.database_of(agent_dir)
    if database.exists() or database.is_symlink():
        return _scan_sqlite_agent(state_dir, agent_id, window, include_archived, busy_timeout)
    scan = AgentScan(agent_id)
    sessions_dir = sessions_dir_of(state_dir, agent_id)
    if not sessions_dir.is_dir():
        return scan
    if not _within(sessions_dir, agents_root(state_dir)):
        scan.error(f"{sessions_dir} resolves outside the state dir's {_agents(state_dir)}: not followed")
        return scan
    _scan_files(scan, sessions_dir, window, include_archived, lambda: read_active_set(sessions_dir))
    return scan


def _scan_files(
    scan: AgentScan,
    sessions_dir: Path,
    window: Window,
    include_archived: bool,
    active_set: Callable[[], ActiveSet],
    *,
    leftovers_only: bool = False,
) -> None:
    """Classify the transcript files of ``sessions/`` against the active set ``active_set`` returns.

    ``leftovers_only``: beside a database only OpenClaw's ``.reset.``/``.deleted.`` exports are sessions
    of their own; a plain ``<id>.jsonl`` there was imported (or is for OpenClaw to import) and is skipped.
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
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:  # renamed or removed by OpenClaw since the listing
            scan.skipped["vanished"] += 1
            continue
        if not stat.S_ISREG(info.st_mode):
            scan.skipped["not_regular_file"] += 1
            continue
        reason = window.admits(info.st_mtime)
        if reason:
            scan.skipped[reason] += 1
            continue
        if f"{name}.lock" in names and lock_is_fresh(sessions_dir / f"{name}.lock", window.now):
            scan.skipped["locked"] += 1
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
        scan.sessions.append(_session(scan.agent_id, parsed.session_id, name, info, parsed.kind))

    if include_archived:
        _add_archived(scan, sessions_dir, active, window)
    _sort(scan)


def _sort(scan: AgentScan) -> None:
    scan.sessions.sort(key=lambda s: (s["mtimeNs"], s["file"]))


def _scan_sqlite_agent(
    state_dir: Path, agent_id: str, window: Window, include_archived: bool, busy_timeout: float
) -> AgentScan:
    """SQLite era: the database's completed sessions, plus OpenClaw's leftover export files."""
    scan = AgentScan(agent_id, era="sqlite")
    agent_dir = agents_root(state_dir) / agent_id
    database = sqlite_store.database_of(agent_dir)
    if database.is_symlink() or not _within(database, agent_dir):
        scan.error(f"{database} is a symlink: not followed", file=str(sqlite_store.DATABASE))
        return scan
    try:
        found = sqlite_store.scan_database(database, busy_timeout)
    except sqlite_store.StoreError as exc:
        scan.error(f"agent skipped: {exc}", file=str(sqlite_store.DATABASE))
        return scan
    scan.schema = found.schema
    scan.live = found.skipped["live"]
    sessions_dir = sessions_dir_of(state_dir, agent_id)
    active = ActiveSet(frozenset(found.live), frozenset())
    exported_names = {name: sid for sid, rows in found.exports.items() for name, _ in rows}
    if sessions_dir.is_dir():
        if not _within(sessions_dir, agents_root(state_dir)):
            scan.error(f"{sessions_dir} resolves outside the state dir's {_agents(state_dir)}: not followed")
            return scan
        _scan_files(scan, sessions_dir, window, include_archived, lambda: active, leftovers_only=True)
        for session in scan.sessions:  # OpenClaw shortens ids over 96 bytes in export names: its row knows
            session["sessionId"] = exported_names.get(session["file"], session["sessionId"])
    copies = archived_copies(sessions_dir)
    for session_id, (session_key, mtime_ns, archived) in found.completed.items():
        if mtime_ns in copies.get(session_id, ()):
            scan.skipped["already_archived"] += 1
            continue
        reason = window.admits(mtime_ns / 1e9)
        if reason:
            scan.skipped[reason] += 1
            continue
        kind = "archived" if archived else "historical"
        session = _db_session(agent_id, session_id, sqlite_store.session_file(session_id), mtime_ns, kind)
        scan.sessions.append({**session, "sessionKey": session_key})
    for session_id, rows in found.exports.items():
        if session_id in found.live or session_id in found.completed or session_id in copies:
            continue
        for name, created_ns in rows:
            if (sessions_dir / name).exists() or (sessions_dir / ARCHIVE_DIR / name).exists():
                continue  # its file is (or was) read as a file
            if window.admits(created_ns / 1e9):
                continue
            file = sqlite_store.session_file(name)
            session = _db_session(agent_id, session_id, file, created_ns, "deleted")
            scan.sessions.append({**session, "archiveName": name})
    _sort(scan)
    return scan


def archived_copies(sessions_dir: Path) -> dict[str, set[int]]:
    """Session id → the mtimes (ns) of its copies in ``archive/``: the record of what was uploaded."""
    archive = sessions_dir / ARCHIVE_DIR
    copies: dict[str, set[int]] = {}
    if not archive.is_dir() or archive.is_symlink():
        return copies
    with os.scandir(archive) as entries:
        for entry in entries:
            match = _ARCHIVED_NAME_RE.fullmatch(entry.name)
            if match and entry.is_file(follow_symlinks=False):
                copies.setdefault(match.group("id"), set()).add(entry.stat(follow_symlinks=False).st_mtime_ns)
    return copies


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


def _add_archived(scan: AgentScan, sessions_dir: Path, active: ActiveSet, window: Window) -> None:
    """Replays: transcripts this package archived before, re-sent and left where they are."""
    archive = sessions_dir / ARCHIVE_DIR
    if not archive.is_dir() or archive.is_symlink():
        return
    with os.scandir(archive) as entries:
        for entry in entries:
            match = _ARCHIVED_NAME_RE.fullmatch(entry.name)
            if not match or entry.is_symlink() or not entry.is_file(follow_symlinks=False):
                continue
            info = entry.stat(follow_symlinks=False)
            if active.contains(match.group("id"), entry.name) or window.admits(info.st_mtime):
                continue
            scan.sessions.append(
                _session(scan.agent_id, match.group("id"), f"{ARCHIVE_DIR}/{entry.name}", info, "replay")
            )


def _session(agent_id: str, session_id: str, file: str, info: os.stat_result, kind: str) -> dict:
    return {
        "agentId": agent_id,
        "sessionId": session_id,
        "file": file,
        "size": info.st_size,
        "mtimeNs": info.st_mtime_ns,
        "kind": kind,
        "store": "jsonl",
    }


def select_sessions(scans: Iterable[dict], limit: int) -> tuple[list[dict], int]:
    """Every agent's completed sessions, oldest first across agents, capped at ``limit``.

    Returns the selection and how many were left for a later run.
    """
    pending = sorted(
        (s for scan in scans for s in scan["sessions"]),
        key=lambda s: (s["mtimeNs"], s["agentId"], s["file"]),
    )
    return pending[:limit], max(0, len(pending) - limit)


def resolve_transcript(state_dir: Path, session: dict) -> Path:
    """The on-disk path of a discovered session, refusing anything that escapes its agent folder."""
    agent_id, file = session["agentId"], session["file"]
    parts = file.split("/")
    plain = all(part and part not in {".", ".."} for part in parts)
    if (
        not SESSION_ID_RE.fullmatch(agent_id)
        or ".." in agent_id
        or not plain
        or len(parts) > 2
        or (len(parts) == 2 and parts[0] != ARCHIVE_DIR)
    ):
        raise ValueError(f"refusing transcript path {agent_id}/{file}: not a plain file of the agent")
    return sessions_dir_of(state_dir, agent_id) / file
