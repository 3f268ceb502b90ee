"""openclaw_nexus.agent_check against the stores ``discover`` reads, on state dirs OpenClaw wrote itself:
the "mixed" fixture of OpenClaw 2026.9.6 (a native, a chat, a migrated and a JSONL agent), the JSONL-era
agent OpenClaw 2026.7.35 wrote (``tools/openclaw/legacy.py``), the compaction checkpoint 2026.7.35 wrote and
2026.9.6 migrated (``tools/openclaw/checkpoint.py``), the agent OpenClaw 2026.9.6's doctor migrated
(``migrated_template`` in tests/conftest.py), and the project's generator's JSONL agents.

The oracle is ``discover``'s rule, ``stores.scan_agent``, under the windows runs use (manual, scheduled,
backfill, settle times): every agent it takes something from, or reports an error for, must be one the
check keeps, as built, with part of it delivered, and with all of it delivered (when the check must skip
every agent). Delivering is what the DAG does after Nexus confirmed an item (``tests.delivery``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from openclaw_nexus import agent_check, discovery, runs, stores
from openclaw_nexus.agent_check import check_agents
from tests.delivery import deliver
from tests.openclaw.test_conversations_store import append_turn
from tests.openclaw.test_sqlite_store import main_sid, openclaw_write
from tools.demo.sample_state import make_state
from tools.openclaw.checkpoint import checkpoint_state
from tools.openclaw.fixture import missing_pieces, openclaw_state
from tools.openclaw.legacy import legacy_state

HOUR = 3600.0
FAR = 4102444800.0  # 2100: everything has settled, no lock is fresh


def later() -> float:
    """The check's clock a minute ahead: files this test just wrote are old enough for their stamps to be
    trusted (stamps taken within RACY_SECONDS of a change are rescanned on purpose)."""
    return time.time() + 60


def listed(state: Path) -> list[str]:
    return discovery.list_agents(state)[0]


def with_work(state: Path, window: discovery.Window) -> set[str]:
    """The agents ``discover`` takes something from, or reports an error for, under ``window``."""
    found = set()
    for agent in listed(state):
        scan = stores.scan_agent(state, agent, window)
        if scan.sessions or scan.errors:
            found.add(agent)
    return found


def windows() -> dict[str, discovery.Window]:
    now = time.time()
    return {
        "manual, files settle 60 s": discovery.Window(now, settle_seconds=60),
        "manual, no settle time": discovery.Window(now, settle_seconds=0),
        "scheduled, the last full hour": discovery.Window(now, settle_seconds=60, before=now // HOUR * HOUR),
        "backfill, a week up to a day ago": discovery.Window(
            now, settle_seconds=60, not_before=now - 7 * 24 * HOUR, before=now - 24 * HOUR
        ),
        "backfill, the last six hours": discovery.Window(
            now, settle_seconds=60, not_before=now - 6 * HOUR, before=now
        ),
        "2100": discovery.Window(FAR, settle_seconds=0),
    }


def assert_superset(state: Path) -> agent_check.Check:
    """Every window's agents with work are kept by a check run with that window's interval; an unbounded
    check keeps no agent that has nothing at all (nothing even in 2100). Returns the unbounded check."""
    for name, window in windows().items():
        run = check_agents(
            state, listed(state), not_before=window.not_before, before=window.before, clock=later
        )
        missed = with_work(state, window) - set(run.agents)
        assert not missed, f"{name}: the check skipped {sorted(missed)}, which discover would take from"
    unbounded = check_agents(state, listed(state), clock=later)
    assert set(unbounded.agents) <= with_work(state, windows()["2100"])
    return unbounded


def deliver_all(state: Path, agents: list[str]) -> int:
    delivered = 0
    for agent in agents:
        for item in stores.scan_agent(state, agent, discovery.Window(FAR, settle_seconds=0)).sessions:
            deliver(state, item)
            delivered += 1
    return delivered


def fixture_state(name: str, tmp_path: Path, template: Path) -> Path:
    """A fresh copy of one of the state dirs, built once (OpenClaw's builds are cached)."""
    if name == "generator":
        make_state(tmp_path / "state", ["main", "research", "ops"], completed=4)
        make_state(tmp_path / "state", ["quiet"], completed=0, seed=3)
        return tmp_path / "state"
    if name == "migrated":
        shutil.copytree(template, tmp_path / "state", symlinks=True)
        return tmp_path / "state"
    build = {"mixed": lambda: openclaw_state("mixed", tmp_path), "legacy": lambda: legacy_state(tmp_path)}
    build["checkpoint"] = lambda: checkpoint_state(tmp_path)
    try:
        manifest = build[name]()
    except Exception as exc:  # the test fails with the reason: OpenClaw could not build the state
        pytest.fail(f"OpenClaw could not build the {name} state: {exc!r}", pytrace=False)
    missing = missing_pieces(manifest)
    if missing:
        pytest.fail(f"the {name} state lacks: {json.dumps(missing)}", pytrace=False)
    return tmp_path / "state"


@pytest.mark.parametrize("name", ["mixed", "legacy", "checkpoint", "migrated", "generator"])
def test_the_check_keeps_every_agent_discover_takes_from_as_built_partly_and_wholly_delivered(
    name, tmp_path, migrated_template
):
    state = fixture_state(name, tmp_path, migrated_template[0])
    agents = listed(state)
    busy = with_work(state, windows()["manual, no settle time"])
    assert busy, f"the {name} state has completed sessions to find"

    built = assert_superset(state)
    assert set(built.agents) == busy, "an unbounded run scans exactly the agents with something to send"

    assert deliver_all(state, sorted(busy)[::2]) > 0
    partly = assert_superset(state)
    assert set(partly.agents) == with_work(state, windows()["2100"])

    deliver_all(state, agents)
    assert with_work(state, windows()["2100"]) == set(), "everything was delivered"
    done = assert_superset(state)
    assert done.agents == [] and sorted(done.skipped) == agents, "every agent is skipped once delivered"
    again = check_agents(state, agents, clock=later)
    assert again.agents == [] and again.changed == again.new == 0, "and stays skipped while unchanged"


@pytest.fixture
def idle_fleet(state: Path) -> Path:
    """OpenClaw's migrated agent with everything delivered (``main``), and 30 copies of it (idle SQLite-era
    agents), beside 10 idle JSONL-era agents of the generator."""
    deliver_all(state, ["main"])
    for n in range(30):
        shutil.copytree(state / "agents" / "main", state / "agents" / f"db-{n:02d}", symlinks=True)
    make_state(state, [f"files-{n:02d}" for n in range(10)], completed=0, seed=4)
    return state


def test_a_completion_among_many_idle_agents_of_both_eras_is_found_and_the_rest_skipped(idle_fleet):
    state = idle_fleet
    agents = listed(state)
    assert len(agents) == 41
    first = check_agents(state, agents, clock=later)
    assert first.agents == [] and len(first.scanned) == 41, "no record: every agent scanned in full"

    # OpenClaw closes a conversation in main's live session (/new: a reset event, then a message).
    now_ms = int(time.time() * 1000)
    append_turn(state, main_sid(state), "0c0ffee1", "/new", now_ms - 5000)
    closed = check_agents(state, agents, clock=later)
    assert closed.agents == ["main"] and closed.changed == 1
    assert with_work(state, windows()["manual, files settle 60 s"]) == {"main"}

    # A JSONL agent's session ends too; then both are delivered and skipped again.
    index = state / "agents" / "files-03" / "sessions" / "sessions.json"
    entries = json.loads(index.read_text())
    entries.pop("agent:files-03:main")
    index.write_text(json.dumps(entries))
    both = check_agents(state, agents, clock=later)
    assert both.agents == ["files-03", "main"]
    deliver_all(state, ["main", "files-03"])
    assert check_agents(state, agents, clock=later).agents == []


def test_an_archive_committed_after_the_check_goes_with_the_next_run(idle_fleet):
    state = idle_fleet
    agents = listed(state)
    check_agents(state, agents, clock=later)
    assert check_agents(state, agents, clock=later).agents == []
    # After this run's check, before its discover: OpenClaw archives main's chat.
    now_ms = int(time.time() * 1000)
    openclaw_write(
        state,
        (
            "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = 'agent:main:main'",
            [now_ms, now_ms],
        ),
    )
    nxt = check_agents(state, agents, clock=later)
    assert nxt.agents == ["main"]
    window = discovery.Window(time.time(), settle_seconds=60)
    assert main_sid(state) in {
        item["sessionId"] for item in stores.scan_agent(state, "main", window).sessions
    }


def test_a_corrupt_or_locked_database_is_kept_and_its_error_reaches_discover(idle_fleet, monkeypatch):
    state = idle_fleet
    agents = listed(state)
    check_agents(state, agents, clock=later)
    corrupt = state / "agents" / "db-05" / "agent" / "openclaw-agent.sqlite"
    with corrupt.open("r+b") as handle:  # keep SQLite's header, break the pages after it
        handle.seek(100)
        handle.write(b"\xa5" * 8000)
    run = check_agents(state, agents, clock=later)
    assert run.agents == ["db-05"] and run.failed == ["db-05"]
    [error] = stores.scan_agent(state, "db-05", windows()["manual, files settle 60 s"]).errors
    assert "malformed" in error["reason"] or "not a database" in error["reason"]

    # A database the check must open (here: no record, so every agent) held by a writer past the busy
    # timeout: kept, and discover reports the lock. Through the find_agents task's own function.
    agent_check.record_path(state).unlink()
    locked = state / "agents" / "db-11" / "agent" / "openclaw-agent.sqlite"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys\n"
            "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
            "db.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
            "db.execute('ROLLBACK')\n",
            str(locked),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(state))
    ti = PushedXComs()
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        kept = runs.find_agents(None, ti, windows()["manual, files settle 60 s"])
        errors = stores.scan_agent(state, "db-11", windows()["manual, files settle 60 s"]).errors
    finally:
        holder.communicate("", timeout=30)
    assert kept == ["db-05", "db-11"]
    assert ti.pushed["check"]["failed"] == 2 and ti.pushed["check"]["skipped"] == 39
    assert [e["file"] for e in errors] == ["agent/openclaw-agent.sqlite"]
    assert "locked by another writer" in errors[0]["reason"]


class PushedXComs:
    """What find_agents calls on a task instance: it pushes XComs."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value
