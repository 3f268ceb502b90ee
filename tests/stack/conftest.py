"""Two running Airflows (api-server, scheduler, dag-processor, triggerer; embedded SQLite +
LocalExecutor), each with its own Nexus stand-in and OpenClaw state dir.

``live``, for this folder's tests but the watcher's: the DAG on its cron with the completion watcher off,
so runs come from the cron and the tests' triggers only. Tests use their own agents, so they never see
each other's sessions. Scheduled runs come by themselves once the DAG is unpaused (hourly, and once for
the latest interval at unpause). So that one firing at an hour boundary mid-session never takes another
test's sessions, the stack's default settle time is 10 hours (``SESSION_UPLOAD_SETTLE_MINUTES=600``): a
scheduled run only takes transcripts older than that, and only the scheduled-run scenario has any. Every
other run passes its own ``settle_minutes`` in its conf.

``watcher_stack``, for ``test_completions.py`` and ``test_watcher_faults.py``: the watcher and the
settle times as shipped, the DAG unpaused on a yearly cron, so every run there is one the watcher started.
Each scenario has agents of its own (``WATCHER_AGENTS``: databases OpenClaw 2026.9.6's doctor wrote, two
live sessions each, nothing completed; ``test_completions.py`` adds a JSONL-era agent and one that appears
with a backlog). Each test asserts on the runs, asset events and requests since it began; between tests
Nexus answers normally again, no run is left running and no completion is left pending (the watcher
signals every pending completion again once a run archived something, so a leftover would start runs in
the next test). These tests run first in this folder, in file order (``pytest_collection_modifyitems``:
the fault scenarios, which kill and add triggerers, come last), and the stack stops after the last of them
(``pytest_runtest_teardown``), before ``live`` starts: never two stacks at once on the machine's cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from tools.demo.sample_state import HOUR, make_agent, make_state
from tools.openclaw.fixture import OpenClaw
from tools.stacks.airflow_stack import AirflowStack
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin
from tools.standins.statsd import StatsdListener

SCHEDULED_SETTLE_MINUTES = 600
SCHEDULED_AGENT = "sched-agent"
COMPLETIONS = "openclaw://completions"
# The watcher stack's agents: one per scenario (test_completions.py: db; test_watcher_faults.py: the rest).
WATCHER_AGENTS = ("db", "crash", "paused", "ha")
MAX_SESSIONS = 2  # the watcher stack's per-run cap, for test_completions.py's backlog


def snapshot_tree(root: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under root: its bytes and mtime (ns)."""
    return {
        str(p.relative_to(root)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat()


def epoch(iso: str) -> float:
    """Epoch seconds of an ISO time (the metadata DB's naive times are UTC)."""
    moment = datetime.fromisoformat(iso)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


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
        # would take sessions another test is about to check (the watcher's tests have a stack of their
        # own: watcher_env).
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


@pytest.fixture(scope="package")
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


def watcher_env(state_dir: Path, nexus_url: str, statsd: StatsdListener) -> dict[str, str]:
    """The watcher stack's environment: the watcher on, the settle times as shipped, no cron run, and
    Airflow's metrics (StatsD) sent to ``statsd``."""
    env = stack_env(state_dir, nexus_url)
    env.update(statsd.env())
    del env["SESSION_UPLOAD_SETTLE_MINUTES"]  # the shipped settle times
    env.update(
        SESSION_UPLOAD_WATCH="1",
        # Yearly: the current interval ends in the future, so no cron run comes.
        SESSION_UPLOAD_SCHEDULE="0 0 1 1 *",
        SESSION_UPLOAD_MAX_SESSIONS=str(MAX_SESSIONS),
        # Unpaused from its first parse: the watcher is registered with it (a paused DAG has none).
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
    )
    return env


@dataclass
class WatcherStack:
    """The running stack with the watcher, its stand-in and its state dir (``root`` holds all three), and
    the StatsD listener its metrics go to."""

    stack: AirflowStack
    nexus: NexusStandin
    state_dir: Path
    root: Path
    statsd: StatsdListener

    def log(self, component: str) -> str:
        """A component's output (``stack-logs/<component>.log``), empty if it has none yet."""
        path = self.stack.log_dir / f"{component}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def runs(self) -> list[dict]:
        """Every run, oldest first."""
        return sorted(self.stack.dag_runs(), key=lambda run: run["queued_at"] or "")

    def runs_since(self, moment: float) -> list[dict]:
        """The runs queued at or after ``moment`` (epoch s), oldest first."""
        return [run for run in self.runs() if run["queued_at"] and epoch(run["queued_at"]) >= moment]

    def idle(self, timeout: float = 300) -> list[dict]:
        """Wait until no run is queued or running; every run so far, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            self.stack.check_alive()
            runs = self.runs()
            if all(run["state"] in ("success", "failed") for run in runs):
                return runs
            assert time.monotonic() < deadline, f"runs still active after {timeout:.0f}s: {runs}"
            time.sleep(1)

    def asset_id(self) -> int:
        assets = self.stack.api("GET", "/api/v2/assets?limit=100").json()["assets"]
        return next(a["id"] for a in assets if a["uri"].rstrip("/") == COMPLETIONS)

    def asset_events_since(self, moment: float) -> list[dict]:
        """The watched asset's events at or after ``moment`` (epoch s), oldest first."""
        path = f"/api/v2/assets/events?asset_id={self.asset_id()}&limit=100"
        events = self.stack.api("GET", path).json()["asset_events"]
        return sorted((e for e in events if epoch(e["timestamp"]) >= moment), key=lambda e: e["timestamp"])

    def pending(self) -> dict[str, list[str]]:
        """Per agent, the sessions a run would take now (every agent's scan, as the DAG's ``discover``)."""
        window = discovery.Window(time.time())
        names, _ = discovery.list_agents(self.state_dir)
        scans = {name: stores.scan_agent(self.state_dir, name, window).sessions for name in names}
        return {name: [s["sessionId"] for s in sessions] for name, sessions in scans.items() if sessions}

    def remove_agent(self, agent: str) -> None:
        """Take an agent's folder out of the state dir, in one rename (as if OpenClaw deleted the agent)."""
        removed = self.root / "removed"
        removed.mkdir(exist_ok=True)
        os.rename(self.state_dir / "agents" / agent, removed / agent)


_watcher_stacks: list[contextlib.ExitStack] = []  # the running one, for stopping it early


@pytest.fixture(scope="package")
def watcher_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WatcherStack]:
    root = tmp_path_factory.mktemp("watcher")
    state_dir = root / "openclaw"
    make_state(state_dir, list(WATCHER_AGENTS), completed=0)
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=state_dir
    )
    window = discovery.Window(time.time())
    for agent in WATCHER_AGENTS:
        assert stores.scan_agent(state_dir, agent, window).sessions == [], f"{agent}: completed at the start"
    with contextlib.ExitStack() as exits:
        _watcher_stacks.append(exits)
        nexus = exits.enter_context(NexusStandin(api_key=API_KEY, record_dir=root / "nexus"))
        statsd = exits.enter_context(StatsdListener())
        stack = AirflowStack(root / "airflow", env=watcher_env(state_dir, nexus.url, statsd))
        # Runs once the stack has stopped (every log flushed): the key is in none of them, nor in the DB.
        exits.callback(lambda: _assert_no_leak(stack))
        started = time.monotonic()
        exits.enter_context(stack)
        watcher = WatcherStack(stack, nexus, state_dir, root, statsd)
        stack.wait_for("the watcher to start", lambda: "watcher started" in watcher.log("triggerer"), 180)
        print(f"\nstack with the watcher up in {time.monotonic() - started:.1f}s, home {stack.home}")
        yield watcher


def _assert_no_leak(stack: AirflowStack) -> None:
    assert stack.leaks(API_KEY) == [], f"API key found under {stack.home}"


@pytest.fixture(autouse=True)
def _between_watcher_tests(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test on the watcher stack: Nexus answers normally again, no run is left running, and
    no completion is left pending."""
    if "watcher_stack" not in request.fixturenames:
        yield
        return
    watcher: WatcherStack = request.getfixturevalue("watcher_stack")
    yield
    watcher.nexus.clear_faults()
    watcher.idle()
    assert watcher.pending() == {}, "left pending: the watcher would signal these in the next test"


def _on_watcher_stack(item: pytest.Item) -> bool:
    return "watcher_stack" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """This folder's tests on the watcher stack first (in file order), then the others."""
    here = Path(__file__).parent
    slots = [n for n, item in enumerate(items) if item.path.is_relative_to(here)]
    ours = sorted((items[n] for n in slots), key=lambda item: not _on_watcher_stack(item))
    for n, item in zip(slots, ours, strict=True):
        items[n] = item


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Stop the watcher stack after the last test that uses it, not at the end of the folder."""
    if not _watcher_stacks or not _on_watcher_stack(item):
        return
    items = item.session.items
    if not any(_on_watcher_stack(later) for later in items[items.index(item) + 1 :]):
        _watcher_stacks.pop().close()
