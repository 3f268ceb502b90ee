"""What every store shares when finding completed sessions: the state dir's layout and its escape rules,
the run's time window, one agent's scan result, and the selection across agents. Airflow-free.

Which sessions are completed is each store's business (``jsonl_store``, ``sqlite_store``, built on
``files``); ``stores.scan_agent`` asks the agent's store. Anything doubtful is left alone and reported.
It sits at the bottom of the package, on ``names`` and ``copy_records`` (archive copies' names, records).
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openclaw_nexus.copy_records import (
    ARCHIVED_NAME_RE,
    COPIES_DIR,
    CopyRecord,
    copy_of_record,
    read_record_at,
    record_name,
    records_dir,
    store_record,
)
from openclaw_nexus.names import SESSION_ID_RE

# A discovered session as it travels between tasks (XCom is JSON): ``agentId``, ``sessionId``, ``file``,
# ``size``, ``mtimeNs``, ``kind``, and what its store adds (``store``, ``sessionKey``, ``conversation``,
# ``archiveName``, ``part``, ``parts``).
Session = dict[str, Any]

AGENTS_DIR = "agents"
SESSIONS_DIR = "sessions"
ARCHIVE_DIR = "archive"
# In ``archive/``: one empty file per session (SQLite era, with reset events) whose every finished
# conversation a scan found archived, named ``<id>+<finished conversations>+<last change ns>``: the state
# it vouches for. A new message or reset moves the last change, completion adds the last conversation:
# a stale file never matches. A later scan takes such a session as done without reading its reset events
# or its copies' mtimes.
ALL_SENT_DIR = ".all-sent"
# How many copies made before records existed one scan of one agent records (about 0.2 ms each).
_OLD_COPIES_PER_SCAN = 10_000


@dataclass(frozen=True)
class Window:
    """Which transcripts a run may take, by modification time (epoch seconds).

    Two settle times: ``settle_seconds`` for files OpenClaw may still be writing (a JSONL-era transcript
    is appended in place, with no fsync and no rename), ``db_settle_seconds`` for what is final when it
    appears: a completion committed in OpenClaw's database, and the exports it publishes whole (written
    to a temporary file, fsynced, then linked or renamed into place). Each store says which applies.
    """

    now: float
    settle_seconds: float = 60.0
    not_before: float | None = None  # inclusive; set for backfill runs
    before: float | None = None  # exclusive; the run's data interval end
    db_settle_seconds: float = 0.0

    def admits(self, mtime: float, *, committed: bool = False) -> str | None:
        """None when the mtime is in the window, else the reason it is not. ``committed``: the time of
        something final when it appeared (``db_settle_seconds`` applies), else of a file that may still
        be written to (``settle_seconds``)."""
        if mtime > self.now - self.settle_for(committed=committed):
            return "settling"
        if self.before is not None and mtime >= self.before:
            return "after_window"
        if self.not_before is not None and mtime < self.not_before:
            return "before_window"
        return None

    def settle_for(self, *, committed: bool) -> float:
        return self.db_settle_seconds if committed else self.settle_seconds


@dataclass
class AgentScan:
    """What discovery found for one agent; ``to_dict`` is what travels through XCom."""

    agent_id: str
    era: str = "jsonl"  # "jsonl" (sessions.json and files) or "sqlite" (OpenClaw 2026.8+ database)
    sessions: list[Session] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    live: int | None = None  # sessions OpenClaw still uses (SQLite era)
    schema: int | None = None  # the database's agent schema (SQLite era)
    # SQLite era: conversations of sessions with reset events, "finished" (sent now or before) and "open"
    conversations: Counter[str] = field(default_factory=Counter)

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

    def to_dict(self) -> dict[str, Any]:
        return {
            "agentId": self.agent_id,
            "era": self.era,
            "schema": self.schema,
            "liveSessions": self.live,
            "conversations": None
            if self.era == "jsonl"
            else {"finished": self.conversations["finished"], "open": self.conversations["open"]},
            "sessions": self.sessions,
            "errors": self.errors,
            "skipped": dict(sorted(self.skipped.items())),
        }


def within(path: Path, root: Path) -> bool:
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


def agents_folder(path: Path) -> str:
    """How an error names the agents folder: with where it resolves when that is elsewhere."""
    root = path if path.name == AGENTS_DIR else agents_root(path)
    resolved = root.resolve()
    return f"{AGENTS_DIR}/ folder" if resolved == root.absolute() else f"{AGENTS_DIR}/ folder ({resolved})"


def sessions_dir_of(state_dir: Path, agent_id: str) -> Path:
    return agents_root(state_dir) / agent_id / SESSIONS_DIR


def list_agents(
    state_dir: Path, requested: Iterable[str] | None = None
) -> tuple[list[str], list[dict[str, Any]]]:
    """The agents to scan (every folder under ``agents/`` when none are requested), and errors.

    Names that are not plain folder names (``..``, slashes) and folders that resolve outside the
    agents folder (see ``agents_root``) are refused with an error naming the agent.
    """
    root = agents_root(state_dir)
    errors: list[dict[str, Any]] = []

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
        elif not within(root / name, root):
            where = agents_folder(root)
            refuse(name, f"agent folder {root / name} resolves outside the state dir's {where}: not followed")
        else:
            agents.append(name)
    return agents, errors


def sort_sessions(scan: AgentScan) -> None:
    scan.sessions.sort(key=lambda s: (s["mtimeNs"], s["file"]))


class ArchiveIndex:
    """What one agent's ``archive/`` holds: the record of what was uploaded.

    Listed once, names only; a copy is ``stat``ed when a lookup names it. A copy's mtime is the last change
    of what it holds: a session (``<id>[+N].jsonl``), or a conversation (``<id>@<conversation>[+N].jsonl``,
    mtime = the reset that closed it, or the session's last change for its last conversation). With
    100,000 sessions of 10 conversations, a ``stat`` of every copy took longer than a whole discovery may:
    a session whose every conversation was found archived is recorded once (``ALL_SENT_DIR``) and then
    answered by name. A copy that is not there (a host restored from OpenClaw's backup, which leaves the
    copies out) is answered by its record (``COPIES_DIR``): that folder is listed once, on the first
    lookup of a name that is not a copy, and a record is read when a lookup names its copy.
    """

    def __init__(self, sessions_dir: Path | None) -> None:
        folder = sessions_dir / ARCHIVE_DIR if sessions_dir is not None else None
        self._usable = folder is not None and folder.is_dir() and not folder.is_symlink()
        self._folder = folder
        self._prefix = f"{folder}{os.sep}"
        self._names = set(os.listdir(folder)) if self._usable else set()
        marks = folder / ALL_SENT_DIR if folder is not None else None
        listable = (
            marks is not None and ALL_SENT_DIR in self._names and marks.is_dir() and not marks.is_symlink()
        )
        self._all_sent = set(os.listdir(marks)) if listable else set()
        self._by_session: dict[str, list[str]] | None = None
        self._recorded: set[str] | None = None  # copies with a record, listed on first need
        self._records: dict[str, CopyRecord | None] = {}
        self._records_prefix = f"{self._prefix}{COPIES_DIR}{os.sep}"
        self._to_record = _OLD_COPIES_PER_SCAN

    def _records_listed(self) -> set[str]:
        if self._recorded is None:
            self._recorded = set()
            folder = self._folder / COPIES_DIR if self._folder is not None else None
            if (
                folder is not None
                and COPIES_DIR in self._names
                and not folder.is_symlink()
                and folder.is_dir()
            ):
                with os.scandir(folder) as entries:
                    self._recorded = {copy for e in entries if (copy := copy_of_record(e.name)) is not None}
        return self._recorded

    def _known(self, name: str) -> bool:
        """A copy by that name is there, or its record is."""
        return name in self._names or name in self._records_listed()

    def record(self, name: str) -> CopyRecord | None:
        """The record of copy ``name`` (read once), or None."""
        if name not in self._records:
            path = self._records_prefix + record_name(name)
            # Listed: the folder is no symlink (each record is opened without following one).
            self._records[name] = read_record_at(path, name) if name in self._records_listed() else None
        return self._records[name]

    def has(self, stem: str) -> bool:
        """Whether ``<stem>.jsonl`` is there or recorded (by name; the first copy of a stem always has that
        name)."""
        return self._known(f"{stem}.jsonl")

    def _mtime(self, name: str) -> int | None:
        if name in self._names:
            try:
                st = os.lstat(self._prefix + name)
            except FileNotFoundError:
                pass  # gone since the listing: its record answers
            except OSError:
                return None
            else:
                if not stat.S_ISREG(st.st_mode):
                    return None
                if name not in self._records_listed():
                    self._record_old_copy(name, st)
                return st.st_mtime_ns
        record = self.record(name)
        return record.mtime_ns if record is not None else None

    def _record_old_copy(self, name: str, st: os.stat_result) -> None:
        """Give a copy made before records existed its record (best effort: the copy still answers; a
        bounded number per scan, so the first scans after an upgrade stay cheap)."""
        if not self._usable or self._folder is None or self._to_record <= 0:
            return
        self._to_record -= 1
        record = CopyRecord(st.st_size, st.st_mtime_ns, None)
        try:
            store_record(records_dir(self._folder), name, record, replace=False, durable=False)
        except OSError:
            self._to_record = 0  # a folder it cannot write to: not tried again in this scan
            return
        self._records_listed().add(name)

    def mtimes(self, stem: str) -> list[int]:
        """The mtimes of ``<stem>.jsonl``, ``<stem>+1.jsonl``, ... (regular files only, or the record of a
        copy that is not there; the versions are numbered from 1 up, each name the first free one, and
        copies are never removed)."""
        name = f"{stem}.jsonl"
        found, n = [], 0
        while self._known(name):
            if (mtime := self._mtime(name)) is not None:
                found.append(mtime)
            n += 1
            name = f"{stem}+{n}.jsonl"
        return found

    def names_of(self, session_id: str) -> list[str]:
        """Every copy of one session, whole or conversation, there or recorded (one pass over the names, on
        first use)."""
        if self._by_session is None:
            self._by_session = {}
            for name in self._names | self._records_listed():
                if ARCHIVED_NAME_RE.fullmatch(name):
                    sid = name[: -len(".jsonl")].partition("+")[0].partition("@")[0]
                    self._by_session.setdefault(sid, []).append(name)
        return self._by_session.get(session_id, [])

    def session_mtimes(self, session_id: str) -> set[int]:
        """The mtimes of every copy of one session."""
        return {mtime for name in self.names_of(session_id) if (mtime := self._mtime(name)) is not None}

    def all_sent(self, session_id: str, finished: int, last_change_ns: int) -> bool:
        """Whether a scan found every finished conversation of the session archived, in this state."""
        return f"{session_id}+{finished}+{last_change_ns}" in self._all_sent

    def record_all_sent(self, session_id: str, finished: int, last_change_ns: int) -> None:
        """Record that every finished conversation of the session is archived (``ALL_SENT_DIR``). Best
        effort: without the record the next scan checks the copies again."""
        name = f"{session_id}+{finished}+{last_change_ns}"
        if self._folder is None or not self._usable or name in self._all_sent:
            return
        if not SESSION_ID_RE.fullmatch(session_id):
            return
        marks = self._folder / ALL_SENT_DIR
        try:
            if not marks.is_symlink():
                marks.mkdir(mode=0o700, exist_ok=True)
            if marks.is_symlink():
                return
            os.close(os.open(marks / name, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        except OSError:
            return
        self._all_sent.add(name)


def select_sessions(scans: Iterable[dict[str, Any]], limit: int) -> tuple[list[Session], int]:
    """Every agent's completed sessions, oldest first across agents, capped at ``limit``.

    Returns the selection and how many were left for a later run.
    """
    pending = sorted(
        (s for scan in scans for s in scan["sessions"]),
        key=lambda s: (s["mtimeNs"], s["agentId"], s["file"]),
    )
    return pending[:limit], max(0, len(pending) - limit)


def resolve_transcript(state_dir: Path, session: Session) -> Path:
    """The on-disk path of a discovered session, refusing anything that escapes its agent folder."""
    agent_id: str = session["agentId"]
    file: str = session["file"]
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
