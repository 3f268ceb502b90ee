"""One real Airflow (api-server, scheduler, dag-processor; embedded SQLite + LocalExecutor) for the whole
test session, with the Nexus stand-in and one OpenClaw state dir. Tests use their own agents, so they
never see each other's sessions.

Scheduled runs come by themselves once the DAG is unpaused (hourly, and once for the latest interval at
unpause). So that one firing at an hour boundary mid-session never takes another test's sessions, the
stack's default settle time is 10 hours (``SESSION_UPLOAD_SETTLE_MINUTES=600``): a scheduled run only
takes transcripts older than that, and only the scheduled-run scenario has any. Every other run passes
its own ``settle_minutes`` in its conf.
"""

from __future__ import annotations

import json
import os
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tools.demo.sample_state import HOUR, make_agent
from tools.stacks.airflow_stack import AirflowStack
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin

SCHEDULED_SETTLE_MINUTES = 600
SCHEDULED_AGENT = "sched-agent"


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: its bytes and mtime (ns)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


@dataclass
class Agent:
    """One agent's sessions folder as made: completed transcripts (file, sessionId, bytes, mtime)."""

    agent_id: str
    sessions_dir: Path
    completed: list[dict]
    active: list[str]
    untouchable: list[str]

    def set_mtime(self, item: dict, mtime: float) -> None:
        os.utime(self.sessions_dir / item["file"], (mtime, mtime))
        item["mtime"] = mtime

    def archived(self) -> dict[str, bytes]:
        archive = self.sessions_dir / "archive"
        if not archive.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in archive.iterdir() if p.is_file()}


@dataclass
class Live:
    """The running stack, the stand-in and the state dir, plus what the first scheduled run did."""

    stack: AirflowStack
    nexus: NexusStandin
    state_dir: Path
    scheduled: dict = field(default_factory=dict)
    seed: int = 0

    def make_agent(self, agent_id: str, completed: int, newest_mtime: float | None = None) -> Agent:
        """An agent with ``completed`` transcripts (every OpenClaw file-name form), active sessions and
        side files; the newest completed transcript has ``newest_mtime`` (default an hour ago)."""
        self.seed += 1
        newest = newest_mtime if newest_mtime is not None else time.time() - HOUR
        sessions = self.state_dir / "agents" / agent_id / "sessions"
        # make_agent dates completed transcripts `now - 1h - 60 s * (completed - n)`.
        made = make_agent(sessions, agent_id, completed, random.Random(self.seed), newest + HOUR + 60)
        items = []
        for item in made["completed"]:
            path = sessions / item["file"]
            items.append({**item, "bytes": path.read_bytes(), "mtime": path.stat().st_mtime})
        return Agent(agent_id, sessions, items, made["active"], made["untouchable"])

    def received(self, agent_id: str) -> list[dict]:
        """What the stand-in recorded for this agent, in order: status, sessionId, transcript bytes."""
        out = []
        for record in self.nexus.requests():
            if record["agentId"] != agent_id:
                continue
            payload = json.loads(self.nexus.body(record["n"]))
            assert set(payload) == {"agentId", "sessionId", "transcript"}
            assert record["query"] == {"code": "***"}, "the key goes as ?code= and nowhere else"
            out.append(
                {
                    "status": record["status"],
                    "duplicate": record["duplicate"],
                    "sessionId": payload["sessionId"],
                    "transcript": payload["transcript"].encode("utf-8"),
                }
            )
        return out

    def accepted(self, agent_id: str) -> dict[str, bytes]:
        """sessionId -> transcript bytes of the agent's first deliveries (HTTP 201); fails on a repeat."""
        got: dict[str, bytes] = {}
        for record in self.received(agent_id):
            if record["status"] == 201:
                assert record["sessionId"] not in got, f"{agent_id}/{record['sessionId']} accepted twice"
                got[record["sessionId"]] = record["transcript"]
        return got

    def task_states(self, run_id: str) -> dict[str, dict[int, dict]]:
        """task_id -> map_index -> the task instance (state, try_number, rendered_map_index, …)."""
        out: dict[str, dict[int, dict]] = {}
        for ti in self.stack.task_instances(run_id):
            out.setdefault(ti["task_id"], {})[ti["map_index"]] = ti
        return out

    def assert_no_leak(self, *outputs: str) -> None:
        assert self.stack.leaks(API_KEY, *outputs) == []


def stack_env(state_dir: Path, nexus_url: str) -> dict[str, str]:
    host, port = nexus_url.removeprefix("http://").split(":")
    return {
        "OPENCLAW_STATE_DIR": str(state_dir),
        "AIRFLOW_CONN_NEXUS_DEFAULT": json.dumps(
            {"conn_type": "http", "host": host, "port": int(port), "schema": "http", "password": API_KEY}
        ),
        "SESSION_UPLOAD_SETTLE_MINUTES": str(SCHEDULED_SETTLE_MINUTES),
        # Runs here come from the cron and the tests' triggers only: a run the completion watcher started
        # would take sessions another test is about to check (test_completions.py has a stack of its own).
        "SESSION_UPLOAD_WATCH": "0",
        # The retry policy is the package's; only the waits are short.
        "SESSION_UPLOAD_RETRY_DELAY_SECONDS": "1",
        "SESSION_UPLOAD_BACKOFF_INITIAL_SECONDS": "0.05",
        "SESSION_UPLOAD_BACKOFF_MAX_SECONDS": "0.2",
        "SESSION_UPLOAD_READ_TIMEOUT_SECONDS": "20",
    }


def _first_scheduled_run(live: Live) -> dict:
    """Seed transcripts older than the settle time, unpause the DAG and let the scheduler run it:
    with catchup=False it creates one run, for the latest complete hourly interval."""
    stack = live.stack
    agent = live.make_agent(SCHEDULED_AGENT, 3, newest_mtime=time.time() - 11 * HOUR)
    before = snapshot_tree(agent.sessions_dir)
    stack.set_paused(False)
    runs = stack.wait_for(
        "the first scheduled run", lambda: stack.dag_runs(run_type="scheduled"), timeout=180
    )
    runs.sort(key=lambda r: r["logical_date"])
    run = stack.wait_for_run(runs[0]["dag_run_id"], timeout=300)
    return {
        "agent": agent,
        "before": before,
        "after": snapshot_tree(agent.sessions_dir),
        "run": run,
        "runs": runs,
        "received": live.received(SCHEDULED_AGENT),
        "job_result": stack.xcom(run["dag_run_id"], "job_result"),
        "tasks": live.task_states(run["dag_run_id"]),
    }


@pytest.fixture(scope="session")
def live(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("stack")
    state_dir = root / "openclaw"
    (state_dir / "agents").mkdir(parents=True)
    with NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus:
        stack = AirflowStack(root / "airflow", env=stack_env(state_dir, nexus.url))
        started = time.monotonic()
        with stack:
            print(
                f"\nAirflow stack up in {time.monotonic() - started:.1f}s at {stack.url}, home {stack.home}"
            )
            state = Live(stack, nexus, state_dir)
            state.scheduled = _first_scheduled_run(state)
            yield state
        # Stopped: every log is flushed. The key must be in none of them, nor in the metadata DB.
        assert stack.leaks(API_KEY) == [], f"API key found under {stack.home}"
