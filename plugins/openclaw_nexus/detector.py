"""Noticing completions soon after they happen, cheaply: which agents to scan now, and what is new since
the last look. Airflow-free; ``watcher`` runs it in the triggerer.

A poll ``stat``s a few files per agent (its database and ``-wal``, ``sessions/``, ``sessions.json``,
``sessions/archive/``): a fraction of a millisecond where a scan costs milliseconds (measured: 45 ms for
1,000 agents against 2.7 s to scan them all). Only an agent whose files changed is scanned, with the very
rule the DAG's ``discover`` applies (``stores.scan_agent``), so the detector never disagrees with a run
about what is completed. A stat can miss a change (the same size within one timestamp tick, a lock that
went stale), so a slow round-robin sweep rescans a few agents every poll anyway; a completion that is
still settling is rescanned when its settle time is over. A busy, huge agent is rescanned at most once per
``scan time / duty``, so watching it costs at most that share of one core.

It remembers what it signalled per agent, and forgets what no longer shows up in the agent's scan (the
DAG archived it), so memory follows what is pending, not history. A new detector knows nothing and
signals everything pending at its first poll: that heals events lost with a triggerer restart, a paused
DAG, or a crash between a signal and its run. Once a run has archived completions and stopped, whatever
is still pending is signalled again (``Poll.again``): a backlog larger than one run's ``max_sessions``
drains run after run; a completion no run can deliver does not start runs by itself.
"""

from __future__ import annotations

import bisect
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openclaw_nexus import discovery, stores
from openclaw_nexus.discovery import AgentScan, Window
from openclaw_nexus.names import INDEX_FILE
from openclaw_nexus.sqlite_db import database_of

log = logging.getLogger(__name__)

# One completion: a session, or one conversation of it (the JobResult's key for an item).
Key = tuple[str, str, str | None]
# One file's (st_mtime_ns, st_size, st_ino); None when it does not exist, ("error", errno) when unreadable.
Stamp = tuple[int, int, int] | tuple[str, int] | None


def _order(key: Key) -> tuple[str, str, str]:
    return key[0], key[1], key[2] or ""


def key_of(item: dict[str, Any]) -> Key:
    """A completion's identity: agent, file, conversation (as ``result`` keys an item)."""
    return item["agentId"], item["file"], item.get("conversation")


def stamp(path: Path) -> Stamp:
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return ("error", exc.errno or 0)
    return (info.st_mtime_ns, info.st_size, info.st_ino)


def fingerprint(state_dir: Path, agent_id: str) -> tuple[Stamp, ...]:
    """What a poll compares: the stamps of what OpenClaw changes when an agent's sessions change (its
    database and ``-wal``; ``sessions/`` and ``sessions.json``), and of our ``sessions/archive/``.

    An empty ``-wal`` counts as none: it holds nothing, and any reader (our scan included) creates one
    after OpenClaw closed its database cleanly."""
    database = database_of(discovery.agents_root(state_dir) / agent_id)
    sessions = discovery.sessions_dir_of(state_dir, agent_id)
    wal = stamp(database.with_name(database.name + "-wal"))
    if wal is not None and wal[0] != "error" and wal[1] == 0:
        wal = None
    return (
        stamp(database),
        wal,
        stamp(sessions),
        stamp(sessions / INDEX_FILE),
        stamp(sessions / discovery.ARCHIVE_DIR),
    )


@dataclass(frozen=True)
class _SettleWatch(Window):
    """The DAG's window, noting when what it turns away as still settling is due (to rescan it then)."""

    settling: list[float] = field(default_factory=list, compare=False)

    def admits(self, mtime: float, *, committed: bool = False) -> str | None:
        reason = super().admits(mtime, committed=committed)
        if reason == "settling":
            self.settling.append(mtime + self.settle_for(committed=committed))
        return reason


@dataclass
class Poll:
    """What one poll did. ``new``: completions not signalled before, oldest first per agent."""

    new: list[Key] = field(default_factory=list)
    # Signalled before and still pending, signalled again: a run archived completions and stopped, and
    # these are left (a backlog beyond max_sessions drains in consecutive runs, without the cron).
    again: list[Key] = field(default_factory=list)
    scanned: list[str] = field(default_factory=list)  # agents scanned this poll
    changed: list[str] = field(default_factory=list)  # agents whose files changed since their last scan
    swept: list[str] = field(default_factory=list)  # agents due for the round-robin sweep
    deferred: list[str] = field(default_factory=list)  # due, but held back by the duty bound
    errors: list[str] = field(
        default_factory=list
    )  # agents whose scan raised or reported errors; "*": listing
    archived: int = 0  # signalled completions no longer in their agent's scan (a run archived them)
    seconds: float = 0.0

    @property
    def agents(self) -> list[str]:
        """The agents with new completions or completions signalled again, sorted."""
        return sorted({agent for agent, _, _ in self.new + self.again})

    @property
    def signals(self) -> list[Key]:
        """What this poll signals: the new completions, then those signalled again."""
        return self.new + self.again


@dataclass
class _Agent:
    """What the detector remembers of one agent."""

    # As seen just before its last successful scan: a scan that raised leaves it, so it is retried.
    fingerprint: tuple[Stamp, ...] | None = None
    signalled: set[Key] = field(default_factory=set)  # signalled and still in its latest scan
    started: float | None = None  # timer reading when its last scan started
    seconds: float = 0.0  # how long its last scan took
    due: float | None = None  # clock time a settling completion is admitted
    problem: str | None = None  # the last error logged, so a lasting one is logged once


class Detector:
    """Finds completions under one state dir, poll after poll.

    ``settle_seconds`` and ``db_settle_seconds`` are the DAG's settle times (``discovery.Window``: a
    completion is signalled once a run would take it);
    ``sweep_per_poll`` agents are rescanned each poll whether or not their files changed (0: no sweep);
    ``duty`` bounds the share of time spent rescanning one agent (0.2: a 1 s scan at most every 5 s).
    ``clock`` (epoch seconds: the window's now, compared with file mtimes) and ``timer`` (monotonic
    seconds: scan times and the duty bound) are injectable.
    """

    def __init__(
        self,
        state_dir: Path | str,
        *,
        settle_seconds: float = 60.0,
        db_settle_seconds: float = 0.0,
        sweep_per_poll: int = 4,
        duty: float = 0.2,
        clock: Callable[[], float] = time.time,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not 0 < duty <= 1:
            raise ValueError(f"duty must be in (0, 1], not {duty}")
        if sweep_per_poll < 0:
            raise ValueError(f"sweep_per_poll must be 0 or more, not {sweep_per_poll}")
        self.state_dir = Path(state_dir)
        self.settle_seconds = float(settle_seconds)
        self.db_settle_seconds = float(db_settle_seconds)
        self.sweep_per_poll = sweep_per_poll
        self.duty = duty
        self._clock = clock
        self._timer = timer
        self._agents: dict[str, _Agent] = {}
        self._names: list[str] = []  # sorted
        self._root: Stamp = None  # the agents folder's stamp when last listed
        self._relist = True  # list at the first poll
        self._cursor: str | None = None  # the last agent swept
        self._listing_problem: str | None = None
        self._archiving = False  # signalled completions left their scans (archived) in a recent poll

    @property
    def pending(self) -> int:
        """Completions signalled and not yet archived (as of each agent's latest scan)."""
        return sum(len(agent.signalled) for agent in self._agents.values())

    @property
    def agents(self) -> list[str]:
        return list(self._names)

    def signalled(self) -> list[Key]:
        """Every completion signalled and still pending (as of each agent's latest scan), sorted."""
        return sorted((key for agent in self._agents.values() for key in agent.signalled), key=_order)

    def remember(self, keys: Iterable[Key]) -> None:
        """Take completions an earlier detector signalled as signalled here: while they are pending they
        are not new (a fleet's watch runs one detector per task, and hands what it signalled to the next).
        Those no longer pending at the first scan count as archived, as if this detector had seen it."""
        for key in keys:
            self._agents.setdefault(key[0], _Agent()).signalled.add(key)

    def poll(self) -> Poll:
        """Look once; never raises for one agent's sake (its error is logged and in ``Poll.errors``)."""
        started = self._timer()
        poll = Poll()
        self._list_agents(poll)
        poll.swept = self._sweep()
        swept = set(poll.swept)
        for name in self._names:
            agent = self._agents.get(name)
            now_print = fingerprint(self.state_dir, name)
            if agent is None:
                agent = self._agents[name] = _Agent()
            changed = now_print != agent.fingerprint
            if changed:
                poll.changed.append(name)
            now = self._clock()
            settled = agent.due is not None and now >= agent.due
            if not (changed or settled or name in swept):
                continue
            if agent.started is not None and self._timer() < agent.started + agent.seconds / self.duty:
                if changed or settled:
                    poll.deferred.append(name)
                continue
            self._scan(name, agent, now_print, poll)
        self._after_archiving(poll)
        poll.seconds = self._timer() - started
        return poll

    def _after_archiving(self, poll: Poll) -> None:
        """Signal the pending completions again once a run has archived some and stopped archiving.

        The run an event starts takes at most ``max_sessions``; what it leaves was signalled already, so
        nothing new would start the next run before the cron. So: while polls see signalled completions
        leave their scans (archived by a run), wait; at the first poll that sees none leave, signal every
        completion still pending once more. Each time needs completions to have been archived since the
        last, so it cannot repeat by itself: a session that fails every run is never archived, and after
        the run that fails it nothing is signalled again.
        """
        if poll.archived:
            self._archiving = True
            return
        if not self._archiving:
            return
        self._archiving = False
        signalled = set(poll.new)
        poll.again = [
            key
            for name in self._names
            if (agent := self._agents.get(name)) is not None
            for key in sorted(agent.signalled, key=_order)
            if key not in signalled
        ]

    def _list_agents(self, poll: Poll) -> None:
        """Relist the agents when the agents folder changed (a folder added, removed, renamed), and once
        per sweep round."""
        root = stamp(discovery.agents_root(self.state_dir))
        if not self._relist and root == self._root:
            return
        try:
            names, errors = discovery.list_agents(self.state_dir)
        except OSError as exc:  # the agents folder changed while it was listed: keep the last list
            names = self._names
            errors = [
                {"agentId": "*", "reason": f"cannot list {discovery.agents_root(self.state_dir)}: {exc}"}
            ]
        else:
            self._root, self._relist = root, False
        problem = "; ".join(f"{e['agentId']}: {e['reason']}" for e in errors) or None
        if problem != self._listing_problem:
            if problem:
                log.error("listing agents under %s: %s", self.state_dir, problem)
            self._listing_problem = problem
        poll.errors.extend(e["agentId"] for e in errors)
        self._names = names
        for gone in self._agents.keys() - set(names):
            del self._agents[gone]

    def _sweep(self) -> list[str]:
        """The next ``sweep_per_poll`` agents after the last one swept, wrapping around."""
        names = self._names
        if not names or not self.sweep_per_poll:
            return []
        count = min(self.sweep_per_poll, len(names))
        start = 0 if self._cursor is None else bisect.bisect_right(names, self._cursor)
        picked = [names[(start + n) % len(names)] for n in range(count)]
        if start + count >= len(names):
            self._relist = True  # a round is complete: list the agents afresh, in case a change was missed
        self._cursor = picked[-1]
        return picked

    def _scan(self, name: str, agent: _Agent, seen: tuple[Stamp, ...], poll: Poll) -> None:
        window = _SettleWatch(
            now=self._clock(), settle_seconds=self.settle_seconds, db_settle_seconds=self.db_settle_seconds
        )
        agent.started = self._timer()
        poll.scanned.append(name)
        try:
            scan = stores.scan_agent(self.state_dir, name, window)
        except Exception as exc:
            agent.seconds = self._timer() - agent.started
            poll.errors.append(name)
            self._report(name, agent, f"scan failed: {type(exc).__name__}: {exc}", exc)
            return
        agent.seconds = self._timer() - agent.started
        agent.fingerprint = seen
        agent.due = min(window.settling) if window.settling else None
        new, gone = self._remember(agent, scan)
        poll.new.extend(new)
        poll.archived += gone
        if scan.errors:
            poll.errors.append(name)
        problem = "; ".join(f"{e['file'] or '-'}: {e['reason']}" for e in scan.errors) or None
        self._report(name, agent, problem)

    @staticmethod
    def _remember(agent: _Agent, scan: AgentScan) -> tuple[list[Key], int]:
        """Keep the keys of this scan (forgetting what it no longer lists); return the unsignalled ones
        and how many signalled ones it no longer lists."""
        keys = [key_of(item) for item in scan.sessions]
        new = [key for key in dict.fromkeys(keys) if key not in agent.signalled]
        gone = len(agent.signalled - set(keys))
        agent.signalled = set(keys)
        return new, gone

    @staticmethod
    def _report(name: str, agent: _Agent, problem: str | None, exc: Exception | None = None) -> None:
        """Log an agent's error when it first appears or changes; a lasting one only at debug level."""
        if problem == agent.problem:
            if problem:
                log.debug("agent %s: still %s", name, problem)
            return
        if problem:
            log.error("agent %s: %s", name, problem, exc_info=exc)
        elif agent.problem:
            log.info("agent %s: scans again without errors", name)
        agent.problem = problem
