"""openclaw_nexus.detector on a SQLite-era agent (OpenClaw 2026.9.6's own database, changed the way its
writer would) next to JSONL-era agents: what a poll signals and what it scans."""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from openclaw_nexus.detector import Detector, key_of
from tests.delivery import deliver
from tests.openclaw.test_sqlite_store import database, main_sid, openclaw_write, query
from tools.demo.sample_state import make_state


class Frozen:
    """A timer that never moves: scans take no time, so the duty bound never holds a scan back."""

    def __call__(self) -> float:
        return 0.0


def watch(state: Path, **settings) -> Detector:
    return Detector(state, settle_seconds=0, clock=time.time, timer=Frozen(), **settings)


def pending(state: Path, agent: str) -> list[tuple]:
    scan = stores.scan_agent(state, agent, discovery.Window(time.time(), settle_seconds=0))
    return [key_of(item) for item in scan.sessions]


def now_ms() -> int:
    return int(time.time() * 1000)


def completed_by_openclaw(state: Path) -> set[tuple]:
    """The main agent's completions as OpenClaw's doctor left them, read here with sqlite3 read-only (not
    by the package): the session of each node it archived (the transcript no index listed becomes
    ``agent:main:recovered:<sid>``) and each ``.reset.`` file it left in ``sessions/``; every window is its
    node's current one, so no session was superseded."""
    with closing(sqlite3.connect(f"file:{database(state)}?mode=ro", uri=True)) as db:
        archived = {
            sid
            for (sid,) in db.execute(
                "SELECT current_session_id FROM session_nodes WHERE archived_at IS NOT NULL"
            )
        }
        (superseded,) = db.execute(
            "SELECT count(*) FROM session_windows"
            " WHERE session_id NOT IN (SELECT current_session_id FROM session_nodes)"
        ).fetchone()
    assert archived and superseded == 0, (archived, superseded)
    resets = {path.name for path in (state / "agents" / "main" / "sessions").glob("*.jsonl.reset.*")}
    return {("main", f"openclaw-agent.sqlite#{sid}", None) for sid in archived} | {
        ("main", name, None) for name in resets
    }


@pytest.mark.parametrize("closed", [False, True], ids=["open", "closed-cleanly"])
def test_every_pending_completion_is_signalled_once_and_reading_the_database_changes_nothing(state, closed):
    """The first poll signals, once each, exactly the completions the generator wrote for the JSONL agents
    (its own record) and those OpenClaw's doctor left in the main agent (read from its database here); the
    next polls, which sweep the JSONL agents and never scan the unchanged database, signal nothing."""
    made = make_state(state, ["a1", "a2", "a3"], completed=2, seed=11)
    expected = completed_by_openclaw(state) | {
        (agent, done["file"], None) for agent in ("a1", "a2", "a3") for done in made[agent]["completed"]
    }
    if closed:  # OpenClaw closed its database cleanly: no -wal, no -shm (a read creates them again)
        for suffix in ("-wal", "-shm"):
            database(state).with_name(database(state).name + suffix).unlink(missing_ok=True)
    detector = watch(state, sweep_per_poll=1)
    first = detector.poll()
    assert {agent for agent, _, _ in expected} == {"a1", "a2", "a3", "main"}, expected
    assert sorted(first.new) == sorted(expected) and len(set(first.new)) == len(first.new)
    assert first.scanned == ["a1", "a2", "a3", "main"] and first.errors == []
    for _ in range(2):  # the sweep took a1 at the first poll, then takes a2 and a3: main is never due
        poll = detector.poll()
        assert poll.new == [] and poll.changed == [], "our own read-only scan changed what a poll sees"
        assert poll.scanned == poll.swept and "main" not in poll.scanned


def test_a_live_session_growing_signals_nothing(state):
    detector = watch(state, sweep_per_poll=0)
    detector.poll()
    sid = main_sid(state)
    (seq,) = query(state, "SELECT max(seq) + 1 FROM transcript_events WHERE session_id = ?", (sid,))[0]
    event = json.dumps({"type": "message", "id": "live", "message": {"role": "user", "content": "more"}})
    openclaw_write(
        state,
        (
            "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)",
            [sid, seq, event, now_ms()],
        ),
        (
            "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
            [now_ms(), now_ms(), sid],
        ),
    )
    poll = detector.poll()
    assert poll.changed == ["main"] and poll.scanned == ["main"]
    assert poll.new == []


def test_a_session_completing_signals_exactly_it_and_what_the_dag_archived_is_forgotten(state):
    detector = watch(state, sweep_per_poll=0)
    before = detector.poll().new
    sid = main_sid(state)
    openclaw_write(
        state,
        (
            "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = 'agent:main:main'",
            [now_ms(), now_ms()],
        ),
    )
    completed = detector.poll()
    assert completed.changed == ["main"]
    assert completed.new == [("main", f"openclaw-agent.sqlite#{sid}", None)]
    assert detector.pending == len(before) + 1

    scan = stores.scan_agent(state, "main", discovery.Window(time.time(), settle_seconds=0))
    for session in scan.sessions:
        deliver(state, session)
    assert pending(state, "main") == []
    archived = detector.poll()
    assert archived.changed == ["main"] and archived.new == [] and detector.pending == 0


def test_a_completion_committed_in_the_database_is_signalled_at_once_with_the_shipped_settle_times(state):
    """Files settle a minute; a completion OpenClaw committed (here: a node archived now) is final at commit:
    the first poll after it signals it, and the DAG's window admits it at once too."""
    detector = Detector(state, clock=time.time, timer=Frozen(), sweep_per_poll=0)
    assert (detector.settle_seconds, detector.db_settle_seconds) == (60.0, 0.0)
    detector.poll()
    sid = main_sid(state)
    openclaw_write(
        state,
        (
            "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = 'agent:main:main'",
            [now_ms(), now_ms()],
        ),
    )
    key = ("main", f"openclaw-agent.sqlite#{sid}", None)
    assert detector.poll().new == [key]

    shipped = discovery.Window(time.time(), settle_seconds=60, db_settle_seconds=0)
    assert key in [key_of(s) for s in stores.scan_agent(state, "main", shipped).sessions]
    # The database's settle time is what holds it back, not the files'.
    held = discovery.Window(time.time(), settle_seconds=0, db_settle_seconds=3600)
    scan = stores.scan_agent(state, "main", held)
    assert key not in [key_of(s) for s in scan.sessions] and scan.skipped["settling"] >= 1
