"""A fleet host's completion signal: one bounded watch, run as a task on the host's own worker. Airflow-free;
``runs.watch`` runs it for the ``session_upload_<host>__watch`` DAG.

Airflow cannot pin an asset watcher to one host of a fleet (watcher triggers get no triggerer queue), so each
host watches itself with what it already runs, its worker: a task that polls the host's state dir with the
single-host watcher's ``Detector`` (the rule ``discover`` applies, the same settle times) and ends as soon as
completions have settled there, so that the task's asset event starts the host's upload DAG. It also ends
after ``max_seconds`` with nothing to signal, which recycles the worker slot and picks up a redeploy; the
watch DAG (``@continuous``) starts the next watch at once.

Each watch is a new task with a new detector, and a new detector signals everything pending. So that a
completion is signalled once, a watch starts from what the previous one left pending (``remembered``: the
previous watch's XCom) and hands on what is pending when it ends. A completion archived in between counts
as archived, exactly as the long-lived watcher counts it: once a run has archived completions and stopped,
what is still pending is signalled again (a backlog beyond ``max_sessions``), never on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from openclaw_nexus.detector import Detector, Key


@dataclass
class Watched:
    """What one watch did. ``signals``: the completions it signals (none when it ran out of time);
    ``pending``: every completion signalled and not yet archived, for the next watch."""

    signals: list[Key] = field(default_factory=list)
    pending: list[Key] = field(default_factory=list)
    polls: int = 0
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)  # agents whose scans failed ("*": the listing)

    @property
    def agents(self) -> list[str]:
        return sorted({agent for agent, _, _ in self.signals})

    def event(self) -> dict[str, Any]:
        """The asset event's extra: counts and agent ids, never a path (as the single-host watcher's)."""
        return {"completions": len(self.signals), "agents": self.agents}

    def handover(self) -> dict[str, Any]:
        """What the task returns (its XCom), and the next watch starts from (``keys_from``)."""
        return {
            "completions": len(self.signals),
            "agents": self.agents,
            "pending": [list(key) for key in self.pending],
            "polls": self.polls,
            "seconds": round(self.seconds, 3),
            "errors": sorted(set(self.errors)),
        }


def keys_from(handover: Any) -> list[Key]:
    """The pending completions a previous watch handed over (its XCom); none from anything else (the first
    watch, a watch killed before it returned, or a value written by another version)."""
    if not isinstance(handover, dict) or not isinstance(handover.get("pending"), list):
        return []
    keys: list[Key] = []
    for item in handover["pending"]:
        if (
            isinstance(item, list)
            and len(item) == 3
            and isinstance(item[0], str)
            and isinstance(item[1], str)
            and (item[2] is None or isinstance(item[2], str))
        ):
            keys.append((item[0], item[1], item[2]))
    return keys


def watch(
    detector: Detector,
    *,
    remembered: Iterable[Key] = (),
    poll_seconds: float = 10.0,
    batch_seconds: float = 3.0,
    max_seconds: float = 600.0,
    timer: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Watched:
    """Poll ``detector`` every ``poll_seconds`` until a poll signals completions (then gather what completes
    within ``batch_seconds`` more, as the single-host watcher batches) or ``max_seconds`` have passed."""
    if poll_seconds <= 0 or batch_seconds < 0 or max_seconds < 0:
        raise ValueError("poll_seconds must be above 0; batch_seconds and max_seconds 0 or more")
    started = timer()
    detector.remember(remembered)
    done = Watched()

    def look() -> None:
        poll = detector.poll()
        done.polls += 1
        done.errors += poll.errors
        done.signals += poll.signals

    look()
    while not done.signals and (left := started + max_seconds - timer()) > 0:
        sleep(min(left, poll_seconds))
        look()
    if done.signals:
        deadline = timer() + batch_seconds
        while (left := deadline - timer()) > 0:
            sleep(min(left, poll_seconds))
            look()
    done.pending = detector.signalled()
    done.seconds = timer() - started
    return done
