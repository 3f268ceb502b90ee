"""Which agents a run scans: the ones that may have something to send. Airflow-free; the DAG's
``find_agents`` runs it in one task, and ``discover`` is mapped over the agents it keeps.

A run used to map ``discover`` over every agent, and a task instance costs Airflow about 0.3 s, so a
state dir of 1,000 idle agents cost a run 1,000 task instances. The check costs one task:

- It ``stat``s the files of each agent that the watcher's detector compares (``detector.fingerprint``:
  the database and its ``-wal``, ``sessions/``, ``sessions.json``, ``sessions/archive/``), and compares
  them with a record of ours that outlives the task (``RECORD_NAME``, a dot-file in the agents folder:
  OpenClaw's agent listings take only folders, ``discovery.list_agents`` skips dot entries, and no
  ``sessions/`` folder is touched). Per agent the record holds those stamps, taken just before the
  agent's last full scan, and what that scan found to send (nothing, or the oldest and newest time of
  what it found).
- An agent whose stamps changed, that the record does not know, whose recorded stamps were too recent to
  trust (a change within the same timestamp tick can leave them equal, ``RACY_SECONDS``), or that is due
  in the round-robin sweep (the agents whose last full scan is oldest, ``sweep_size`` of them: a ``stat``
  can miss a change), is scanned in full, with the very rule ``discover`` applies:
  ``stores.scan_agent``, under ``EVERY_TIME``, a window that admits every time.
- An agent is skipped only when its stamps are unchanged since a full scan found nothing to send. One
  whose scan raised or reported an error (a locked, corrupt or unreadable database, a broken
  ``sessions.json``) is kept, so its error reaches the JobResult through ``discover``. No record, or one
  that cannot be read, means every agent is scanned in full.

Why the check takes a superset of what ``discover`` takes, for any run's window: every store admits an
item when the rules about its files say it is completed and the run's window does not turn it away
(``Window.admits``: settle time, data interval; ``files.lock_is_fresh``: a fresh ``.lock``). Those are the
only places the window enters, and each only turns items away; ``EVERY_TIME`` turns none away (nothing
settles at the end of time, and no lock is fresh then). So for the same files, a scan under
``EVERY_TIME`` finds everything a scan under any window finds, and what the record says of an agent
holds while its files keep the stamps it was taken with. An agent is skipped for a run whose window has
a data interval (scheduled runs, backfills) only when every time the record holds for it falls outside
that interval; a window's interval bounds do not move with the clock, and what ``discover`` takes from
an agent lies between its oldest and newest time. What completes after the check (between the check and
``discover``, or during the check's own scan) changes a stamp taken before that scan: the next run's
check scans the agent again.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import stat
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openclaw_nexus import discovery, stores
from openclaw_nexus.detector import Stamp, fingerprint

log = logging.getLogger(__name__)

# In the agents folder (where it resolves): dot-named, a file, so never taken for an agent.
RECORD_NAME = ".session-upload-check.json"
RECORD_VERSION = 1
_RECORD_MAX_BYTES = 64 << 20
# Admits every time: a scan under it finds whatever a scan under any run's window finds.
EVERY_TIME = discovery.Window(now=math.inf, settle_seconds=0.0, db_settle_seconds=0.0)
# Stamps whose newest mtime is this close to when they were taken are not trusted: a change right after
# the stamp, within the same timestamp tick and without a change of size, would leave them equal.
RACY_SECONDS = 2.0
# The sweep rescans the agents whose last full scan is oldest: every agent at least once every
# SWEEP_ROUND runs (a day of hourly runs), and at least SWEEP_MIN agents a run.
SWEEP_ROUND = 24
SWEEP_MIN = 4
# Times compared with a data interval get this much slack (file mtimes are floats of nanoseconds).
_BOUND_SLACK_SECONDS = 1.0

# A fingerprint as the record holds it: each stamp a list (JSON has no tuples), or None.
JsonStamps = list[list[int | str] | None]


def record_path(state_dir: Path) -> Path:
    return discovery.agents_root(state_dir) / RECORD_NAME


def sweep_size(agents: int, *, round_runs: int = SWEEP_ROUND, minimum: int = SWEEP_MIN) -> int:
    """How many agents one run sweeps: all of them within ``round_runs`` runs, at least ``minimum``."""
    return min(agents, max(minimum, math.ceil(agents / round_runs)))


@dataclass(frozen=True)
class Entry:
    """What the record says of one agent: its stamps (``detector.fingerprint``, as JSON) just before its
    last full scan, when they were taken (clock seconds), and the oldest and newest time (ns) of what that
    scan found to send (None: nothing)."""

    stamps: JsonStamps
    at: float
    pending: tuple[int, int] | None

    def to_json(self) -> dict[str, Any]:
        return {"stamps": self.stamps, "at": self.at, "pending": list(self.pending) if self.pending else None}

    @classmethod
    def from_json(cls, value: object) -> Entry | None:
        """The entry, or None when it is not one this version wrote."""
        if not isinstance(value, dict):
            return None
        stamps, at, pending = value.get("stamps"), value.get("at"), value.get("pending")
        if not isinstance(stamps, list) or not all(_is_stamp(s) for s in stamps):
            return None
        if not isinstance(at, (int, float)) or isinstance(at, bool) or not math.isfinite(at):
            return None
        if pending is None:
            return cls(stamps, float(at), None)
        if isinstance(pending, list) and len(pending) == 2 and all(_is_int(n) for n in pending):
            return cls(stamps, float(at), (pending[0], pending[1]))
        return None

    def trusted(self, racy_seconds: float) -> bool:
        """Whether equal stamps mean unchanged files: none was unreadable, and the newest mtime among
        them is older than ``racy_seconds`` before they were taken."""
        for one in self.stamps:
            if one is None:
                continue
            if one[0] == "error":
                return False
            if int(one[0]) / 1e9 >= self.at - racy_seconds:
                return False
        return True

    def overlaps(self, not_before: float | None, before: float | None) -> bool:
        """Whether what the scan found may fall in the data interval ``[not_before, before)``."""
        if self.pending is None:
            return False
        oldest, newest = self.pending[0] / 1e9, self.pending[1] / 1e9
        if before is not None and oldest >= before + _BOUND_SLACK_SECONDS:
            return False
        return not (not_before is not None and newest < not_before - _BOUND_SLACK_SECONDS)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_stamp(value: object) -> bool:
    if value is None:
        return True
    if not isinstance(value, list):
        return False
    if len(value) == 3:
        return all(_is_int(n) for n in value)
    return len(value) == 2 and value[0] == "error" and _is_int(value[1])


def json_stamps(stamps: Iterable[Stamp]) -> JsonStamps:
    """A fingerprint as the record keeps it (and as it compares): lists, not tuples."""
    found: JsonStamps = []
    for one in stamps:
        found.append(None if one is None else [*one])
    return found


@dataclass
class Check:
    """What the check decided for one run."""

    agents: list[str] = field(default_factory=list)  # to scan: discover is mapped over these
    listed: int = 0  # agents under agents/ (those list_agents accepts)
    skipped: list[str] = field(default_factory=list)  # nothing to send since their last full scan
    scanned: list[str] = field(default_factory=list)  # scanned in full by the check itself
    new: int = 0  # of those: not in the record (or none could be read)
    changed: int = 0  # stamps changed
    recent: int = 0  # stamps too recent to trust, or one unreadable
    swept: int = 0  # due in the round-robin sweep
    failed: list[str] = field(default_factory=list)  # scans that raised or reported errors: kept
    outside: int = 0  # something to send, none of it in the run's data interval: not scanned this run
    seconds: float = 0.0
    record: str = ""  # the record's path
    problem: str | None = None  # why the record could not be read or written, if it could not

    def summary(self) -> dict[str, Any]:
        """What the ``check`` XCom holds: counts, not names (a fleet may hold thousands of agents)."""
        return {
            "agents": self.listed,
            "scanned": len(self.agents),
            "skipped": len(self.skipped),
            "checkedInFull": len(self.scanned),
            "new": self.new,
            "changed": self.changed,
            "recent": self.recent,
            "swept": self.swept,
            "failed": len(self.failed),
            "outsideInterval": self.outside,
            "seconds": round(self.seconds, 3),
            "record": self.record,
            "recordProblem": self.problem,
        }


def load_record(path: Path) -> tuple[dict[str, Entry], str | None]:
    """The record's entries, and why it could not be read (None: it was, or there is none yet)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}, None
    except OSError as exc:  # a symlink (ELOOP) is refused too: the record is a file of ours
        return {}, f"cannot open {path}: {exc.strerror or exc}"
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > _RECORD_MAX_BYTES:
            return {}, f"{path} is not a regular file under {_RECORD_MAX_BYTES >> 20} MiB"
        data = json.loads(os.read(fd, info.st_size + 1))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, f"cannot read {path}: {exc}"
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("version") != RECORD_VERSION:
        return {}, f"{path} is not a version {RECORD_VERSION} record"
    agents = data.get("agents")
    if not isinstance(agents, dict):
        return {}, f"{path} has no agents"
    entries = {}
    for name, value in agents.items():
        entry = Entry.from_json(value)
        if isinstance(name, str) and entry is not None:
            entries[name] = entry
    return entries, None


def save_record(path: Path, entries: dict[str, Entry]) -> None:
    """Write the record, owner-only, over the old one in place. Not a new file renamed over it: a name
    added to the agents folder moves the folder's stamp, and the watcher's detector then lists every
    agent again at its next poll. A reader that meets a half-written record (or two runs' writes
    interleaved) cannot parse it, and scans every agent in full. Raises OSError."""
    body = json.dumps(
        {"version": RECORD_VERSION, "agents": {name: entries[name].to_json() for name in sorted(entries)}},
        separators=(",", ":"),
    ).encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        path.unlink()  # a symlink where the record belongs: replaced by a file of ours
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, f"{path} is not a regular file")
        os.fchmod(fd, 0o600)
        handle.write(body)
        handle.flush()
        os.ftruncate(fd, len(body))


def _pending(scan: discovery.AgentScan) -> tuple[int, int] | None:
    times = [int(item["mtimeNs"]) for item in scan.sessions]
    return (min(times), max(times)) if times else None


def check_agents(
    state_dir: Path,
    agents: list[str],
    *,
    not_before: float | None = None,
    before: float | None = None,
    clock: Callable[[], float] = time.time,
    racy_seconds: float = RACY_SECONDS,
    sweep_round: int = SWEEP_ROUND,
    sweep_min: int = SWEEP_MIN,
) -> Check:
    """Decide which of ``agents`` (as ``discovery.list_agents`` accepted them) to scan in a run whose
    window has the data interval ``[not_before, before)`` (None: unbounded), and update the record.

    Never raises for one agent's sake: an agent whose scan raised is kept, and logged. A record that
    cannot be written is logged; the next run then scans every agent in full again."""
    started = time.perf_counter()
    path = record_path(state_dir)
    check = Check(listed=len(agents), record=str(path))
    if not agents:  # nothing to check (an empty or missing agents folder): the record stays as it is
        return check
    known, check.problem = load_record(path)
    if check.problem:
        log.warning("the check's record: %s; every agent is scanned in full", check.problem)
    stamps: dict[str, tuple[JsonStamps, float]] = {}
    due: set[str] = set()
    reusable: list[str] = []
    for name in agents:
        now_print = json_stamps(fingerprint(state_dir, name))
        stamps[name] = (now_print, clock())
        entry = known.get(name)
        if entry is None:
            check.new += 1
            due.add(name)
        elif entry.stamps != now_print:
            check.changed += 1
            due.add(name)
        elif not entry.trusted(racy_seconds):
            check.recent += 1
            due.add(name)
        else:
            reusable.append(name)
    # Only agents the record would skip are swept: the others go to discover anyway.
    idle = [name for name in reusable if known[name].pending is None]
    room = sweep_size(len(agents), round_runs=sweep_round, minimum=sweep_min)
    swept = sorted(idle, key=lambda name: (known[name].at, name))[:room]
    check.swept = len(swept)
    due.update(swept)

    entries: dict[str, Entry] = {}
    for name in agents:
        if name in due:
            entry = _scan(state_dir, name, stamps[name], check)
            if entry is None:  # raised or reported errors: kept, so discover reports them
                check.failed.append(name)
                check.agents.append(name)
                continue
        else:
            entry = known[name]
        entries[name] = entry
        if entry.overlaps(not_before, before):
            check.agents.append(name)
        elif entry.pending is not None:
            check.outside += 1
        else:
            check.skipped.append(name)
    try:
        save_record(path, entries)
    except OSError as exc:
        check.problem = f"cannot write {path}: {exc.strerror or exc}"
        log.warning("the check's record: %s; the next run scans every agent in full", check.problem)
    check.seconds = time.perf_counter() - started
    return check


def _scan(state_dir: Path, name: str, stamped: tuple[JsonStamps, float], check: Check) -> Entry | None:
    """Scan one agent in full; its record entry, or None when the scan raised or reported errors."""
    check.scanned.append(name)
    try:
        scan = stores.scan_agent(state_dir, name, EVERY_TIME)
    except Exception as exc:
        log.warning(
            "agent %s: the check's scan failed (%s: %s); kept for discover", name, type(exc).__name__, exc
        )
        return None
    if scan.errors:
        log.info("agent %s: its scan reported %d errors; kept for discover", name, len(scan.errors))
        return None
    return Entry(stamped[0], stamped[1], _pending(scan))
