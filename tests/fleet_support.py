"""What the two fleet tests share (tests/celery/test_fleet.py, tests/edge/test_edge_fleet.py): the same two
hosts, their DAG ids, OpenClaw chatting on both while the watches poll, and reading Nexus's receipts.

Host ``a`` has agents ``main`` and ``alpha`` (2 completed sessions each), host ``b`` agent ``main`` (3): both
have a ``main``, with different sessions, so a task that ran on the wrong host would show."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from tests.celery.support import sessions_of, snapshot_tree
from tests.openclaw_writer import Writer
from tools.demo.sample_state import LiveJsonlAgent, make_state
from tools.openclaw.fixture import OpenClaw
from tools.standins.nexus import NexusStandin

# host -> (agents, completed sessions per agent, seed)
HOSTS = {"a": (["main", "alpha"], 2, 11), "b": (["main"], 3, 22)}
MESSAGES = {"a": "Uploaded 4 sessions across 2 agents", "b": "Uploaded 3 sessions across 1 agent"}
APPEND_EVERY = 2.0


def dag_id(host: str) -> str:
    return f"session_upload_{host}"


def watch_id(host: str) -> str:
    return f"session_upload_{host}__watch"


def epoch(value: str) -> float:
    """An API timestamp (ISO 8601) in epoch seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class Host:
    name: str
    agents: list[str]
    state_dir: Path
    made: dict
    before: dict[str, dict[str, bytes]]
    after: dict[str, dict[str, bytes]] = field(default_factory=dict)
    run: dict | None = None
    task_instances: list[dict] = field(default_factory=list)
    job_result: dict | None = None

    def expected(self) -> dict[tuple[str, str], bytes]:
        """(agentId, sessionId) -> transcript bytes of every completed session on this host."""
        return {
            (agent, item["sessionId"]): self.before[agent][item["file"]]
            for agent in self.agents
            for item in self.made[agent]["completed"]
        }

    def snapshot_after(self) -> None:
        self.after = {agent: snapshot_tree(sessions_of(self.state_dir, agent)) for agent in self.agents}


def make_hosts(root: Path) -> dict[str, Host]:
    """Both hosts' state dirs under ``root`` (the generator's JSONL-era agents), and what they hold."""
    hosts = {}
    for name, (agents, completed, seed) in HOSTS.items():
        state_dir = root / f"host-{name}" / "openclaw"
        made = make_state(state_dir, agents, completed=completed, seed=seed)
        before = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in agents}
        hosts[name] = Host(name, agents, state_dir, made, before)
    return hosts


def add_database_agents(host: Host, agents: list[str], scratch: Path, seed: int) -> None:
    """Give ``host`` agents whose databases OpenClaw 2026.9.6's doctor wrote (each two live sessions,
    ``agent:<id>:main`` and ``agent:<id>:telegram:direct:42``, nothing completed): migrated in ``scratch``,
    then each agent's folder moved into the host's state dir in one rename."""
    make_state(scratch, agents, completed=0, seed=seed)
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=scratch
    )
    for agent in agents:
        os.rename(scratch / "agents" / agent, host.state_dir / "agents" / agent)


def archive_telegram(writer: Writer, agent: str) -> tuple[str, float]:
    """Archive the database agent's telegram session as ``openclaw sessions archive`` does (final at
    commit): the session's id and the commit time (epoch s)."""
    key = f"agent:{agent}:telegram:direct:42"
    (sid,) = writer.query(
        agent, "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (key,)
    )[0]
    return sid, writer.archive_node(agent, key) / 1000


def accepted_at(nexus: NexusStandin, agent: str, session_id: str) -> float | None:
    """When Nexus accepted the session (the stand-in's ``receivedAt``), or None."""
    for record in nexus.requests():
        if (record["agentId"], record["sessionId"], record["status"]) == (agent, session_id, 201):
            return record["receivedAt"]
    return None


@dataclass
class Chatting:
    """OpenClaw chatting on both hosts: a turn in host a's database session ``db_main`` of agent ``agent``
    (through ``writer``) and one in host b's live JSONL session, every APPEND_EVERY seconds, from
    ``start()`` to ``stop()``. A failed write is kept in ``errors`` for the tests to assert on."""

    writer: Writer
    agent: str
    db_main: str
    jsonl: LiveJsonlAgent
    jsonl_key: str
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        while not self._stop.wait(APPEND_EVERY):
            try:
                self.writer.append_event(self.agent, self.db_main)
                self.jsonl.append(self.jsonl_key)
            except Exception as exc:  # reported by the tests, never silently
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def start(self) -> Chatting:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(30)


def start_chatting(host_a: Host, host_b: Host, agent: str) -> Chatting:
    """Host b gains a JSONL-era agent ``live`` with one live session; ``agent``'s main session on host a
    (a database agent already there) and that session get a turn every APPEND_EVERY seconds from now on."""
    live = LiveJsonlAgent(sessions_of(host_b.state_dir, "live"))
    live.sessions.mkdir(parents=True)
    live.start("agent:live:main")
    writer = Writer(host_a.state_dir)
    (db_main,) = writer.query(
        agent, "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (f"agent:{agent}:main",)
    )[0]
    return Chatting(writer, agent, db_main, live, "agent:live:main").start()
