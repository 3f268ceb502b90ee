"""Runs that completions start: the embedded default with its triggerer, the package's watcher
and the settings as shipped (files settle 60 s, database completions 0 s), the DAG unpaused on a yearly
cron, so that every run here is one the watcher started. Its own stack and state dir (the shared stack of
this folder runs with the watcher off, so no event-driven run takes another test's sessions).

One state dir: ``db``, an agent database OpenClaw 2026.9.6 wrote (its doctor migrating a JSONL-era
agent), and ``files``, a JSONL-era agent; both have live sessions that a writer thread appends to every
2 s the way OpenClaw does (a transcript line and the index's ``updatedAt``; an event row and the window's
``updated_at``) for the whole module. Measured: completion → Nexus latency, printed; asserted with a
generous bound. ``max_sessions`` is 2, for the backlog.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from tests.openclaw.test_sqlite_store import OPENCLAW_WRITE
from tests.stack.conftest import stack_env
from tools.demo.sample_state import LiveJsonlAgent, make_agent, make_state
from tools.openclaw.fixture import OpenClaw
from tools.stacks.airflow_stack import AirflowStack
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin

COMPLETIONS = "openclaw://completions"
MAX_SESSIONS = 2
APPEND_EVERY = 2.0
# Bounds asserted (the goals are p95 ≤ 60 s for database completions, ≤ 120 s for files, max
# ≤ 180 s; one sample each here, on a machine other tests share, so the bounds are generous).
DATABASE_BOUND = 120.0
FILE_BOUND = 180.0
IDLE_SECONDS = 60.0


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def database(state_dir: Path, agent: str) -> Path:
    return state_dir / "agents" / agent / "agent" / "openclaw-agent.sqlite"


def now_ms() -> int:
    return int(time.time() * 1000)


class Writer:
    """OpenClaw's writes, as its writer makes them: SQL in one write transaction through Node's SQLite
    (OpenClaw's CHECK constraints need a newer SQLite than Python's), JSONL lines appended in place."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.node = OpenClaw.installed().node
        self.lock = threading.Lock()  # one writer at a time, as OpenClaw's own write lock

    def sql(self, agent: str, *statements: tuple[str, list]) -> None:
        script = json.dumps([[sql, params] for sql, params in statements])
        with self.lock:
            subprocess.run(
                [str(self.node), "-e", OPENCLAW_WRITE, str(database(self.state_dir, agent)), script],
                check=True,
                timeout=60,
            )

    def query(self, agent: str, sql: str, params: tuple = ()) -> list[tuple]:
        import sqlite3

        uri = f"file:{database(self.state_dir, agent)}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True)) as db:
            return db.execute(sql, params).fetchall()

    def append_event(self, agent: str, session_id: str) -> None:
        (seq,) = self.query(
            agent,
            "SELECT coalesce(max(seq), 0) + 1 FROM transcript_events WHERE session_id = ?",
            (session_id,),
        )[0]
        event = json.dumps({"type": "message", "id": uuid.uuid4().hex[:8], "message": {"role": "user"}})
        stamp = now_ms()
        self.sql(
            agent,
            (
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)",
                [session_id, seq, event, stamp],
            ),
            (
                "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
                [stamp, stamp, session_id],
            ),
        )

    def archive_node(self, agent: str, session_key: str) -> int:
        """Archive a session as ``openclaw sessions archive`` does (sets ``archived_at``): its commit time."""
        stamp = now_ms()
        self.sql(
            agent,
            (
                "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = ?",
                [stamp, stamp, session_key],
            ),
        )
        return stamp


@dataclass
class Watched:
    stack: AirflowStack
    nexus: NexusStandin
    state_dir: Path
    writer: Writer
    files: LiveJsonlAgent
    db_main: str  # the live main session of the database agent
    appending: set[str] = field(default_factory=set)  # JSONL session keys the live writer appends to
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def runs(self) -> list[dict]:
        return sorted(self.stack.dag_runs(), key=lambda run: run["queued_at"] or "")

    def idle(self, timeout: float = 300) -> list[dict]:
        """Wait until no run is queued or running; every run so far, oldest first."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.runs()
            if all(run["state"] in ("success", "failed") for run in runs):
                return runs
            assert time.monotonic() < deadline, f"runs still active after {timeout:.0f}s: {runs}"
            time.sleep(1)

    def accepted_at(self, agent: str, session_id: str) -> float | None:
        for record in self.nexus.requests():
            if (record["agentId"], record["sessionId"], record["status"]) == (agent, session_id, 201):
                return record["receivedAt"]  # epoch seconds
        return None

    def triggerer_log(self) -> str:
        return (self.stack.log_dir / "triggerer.log").read_text(errors="replace")

    def asset_id(self) -> int:
        assets = self.stack.api("GET", "/api/v2/assets?limit=100").json()["assets"]
        return next(a["id"] for a in assets if a["uri"].rstrip("/") == COMPLETIONS)

    def asset_events(self) -> list[dict]:
        path = f"/api/v2/assets/events?asset_id={self.asset_id()}&limit=100"
        return self.stack.api("GET", path).json()["asset_events"]

    def health(self) -> dict:
        response = self.stack.api("GET", f"/api/v2/assets/{self.asset_id()}/state-store/watcher", check=False)
        if not response.ok:
            return {}
        body = response.json()
        value = body.get("value", body)
        return json.loads(value) if isinstance(value, str) else value

    def live_writes(self) -> None:
        """OpenClaw's live traffic: a turn in every appended JSONL session and in the database's main
        session, every APPEND_EVERY seconds, until the module ends."""
        while not self.stop.wait(APPEND_EVERY):
            try:
                for key in sorted(self.appending):
                    self.files.append(key)
                self.writer.append_event("db", self.db_main)
            except Exception as exc:  # reported by the tests, never silently
                self.errors.append(f"{type(exc).__name__}: {exc}")


def _database_agent(state_dir: Path) -> None:
    """Agent ``db``: two live sessions in a database OpenClaw's doctor wrote (nothing completed)."""
    make_state(state_dir, ["db"], completed=0)
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=state_dir
    )


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watched]:
    root = tmp_path_factory.mktemp("completions")
    state_dir = root / "openclaw"
    _database_agent(state_dir)
    files = LiveJsonlAgent(state_dir / "agents" / "files" / "sessions")
    files.sessions.mkdir(parents=True)
    files.start("agent:files:main")
    files.start("agent:files:chat")
    window = discovery.Window(time.time())
    for agent in ("db", "files"):
        assert stores.scan_agent(state_dir, agent, window).sessions == [], "nothing completed at the start"
    writer = Writer(state_dir)
    (db_main,) = writer.query(
        "db", "SELECT current_session_id FROM session_nodes WHERE session_key = ?", ("agent:db:main",)
    )[0]

    with NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus:
        env = stack_env(state_dir, nexus.url)
        del env["SESSION_UPLOAD_SETTLE_MINUTES"]  # the shipped settle times
        env.update(
            SESSION_UPLOAD_WATCH="1",
            # Yearly: the current interval ends in the future, so no cron run comes.
            SESSION_UPLOAD_SCHEDULE="0 0 1 1 *",
            SESSION_UPLOAD_MAX_SESSIONS=str(MAX_SESSIONS),
            # Unpaused from its first parse: the watcher is registered with it (a paused DAG has none).
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
        )
        started = time.monotonic()
        with AirflowStack(root / "airflow", env=env) as stack:
            state = Watched(
                stack, nexus, state_dir, writer, files, db_main, {"agent:files:main", "agent:files:chat"}
            )
            stack.wait_for(
                "the watcher to start", lambda: "watcher started" in state.triggerer_log(), timeout=180
            )
            print(f"\nstack with the watcher up in {time.monotonic() - started:.1f}s, home {stack.home}")
            thread = threading.Thread(target=state.live_writes, daemon=True)
            thread.start()
            try:
                yield state
            finally:
                state.stop.set()
                thread.join(30)
        assert stack.leaks(API_KEY) == [], f"API key found under {stack.home}"


def test_live_appends_start_no_run_while_the_watcher_polls(watched):
    """OpenClaw only chatting, in both eras: IDLE_SECONDS without an asset event or a run, while the
    watcher's health (its asset state store) shows it polling."""
    before = watched.health()
    time.sleep(IDLE_SECONDS)
    after = watched.health()
    assert watched.errors == []
    assert watched.runs() == [], "a run started while sessions were only live"
    assert watched.asset_events() == []
    assert after.get("started") and after.get("lastPoll") and after.get("pending") == 0, after
    assert after.get("lastEvent") is None
    assert "watcher event" not in watched.triggerer_log()
    appended = watched.writer.query(
        "db", "SELECT count(*) FROM transcript_events WHERE session_id = ?", (watched.db_main,)
    )
    print(
        f"\nidle {IDLE_SECONDS:.0f}s, live appends every {APPEND_EVERY:.0f}s ({appended[0][0]} rows in the"
        f" database's main session): 0 runs, 0 events; watcher health before {before}, after {after}"
    )


def test_a_completion_committed_in_the_database_reaches_nexus_within_a_minute(watched):
    """A session archived in OpenClaw's database (final at commit: no settle time): the watcher signals
    it, an asset-triggered run uploads it. Clock: OpenClaw's ``archived_at`` to the stand-in's receipt."""
    key = "agent:db:telegram:direct:42"
    (sid,) = watched.writer.query(
        "db", "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (key,)
    )[0]
    committed = watched.writer.archive_node("db", key) / 1000

    got = watched.stack.wait_for(
        "the archived session at Nexus", lambda: watched.accepted_at("db", sid), timeout=DATABASE_BOUND + 60
    )
    latency = got - committed
    print(f"\ndatabase completion (archived_at) -> Nexus: {latency:.1f}s")
    assert latency <= DATABASE_BOUND

    runs = watched.idle()
    assert len(runs) == 1, runs
    (run,) = runs
    assert run["run_type"] == "asset_triggered" and run["state"] == "success", run
    assert run["note"] == "Uploaded 1 session across 1 agent"
    events = watched.stack.api(
        "GET", f"/api/v2/dags/session_upload/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    ).json()["asset_events"]
    assert events and {e["uri"].rstrip("/") for e in events} == {COMPLETIONS}
    assert events[0]["extra"]["from_trigger"] is True
    assert events[0]["extra"]["payload"] == {"completions": 1, "agents": ["db"]}


def test_a_transcript_file_reaches_nexus_once_it_has_settled(watched):
    """A JSONL-era session ends (its entry leaves sessions.json) right after its last append: it waits the
    files' settle time (60 s: OpenClaw appends transcripts in place), then an asset-triggered run takes it.
    Meanwhile the other live sessions go on appending, and no run starts."""
    runs_before = len(watched.runs())
    watched.appending.discard("agent:files:chat")
    time.sleep(0.1)  # a turn in flight finishes
    watched.files.append("agent:files:chat")  # its last turn
    sid, _ = watched.files.end("agent:files:chat")
    ended = time.time()
    last_write = (watched.files.sessions / f"{sid}.jsonl").stat().st_mtime

    got = watched.stack.wait_for(
        "the ended transcript at Nexus", lambda: watched.accepted_at("files", sid), timeout=FILE_BOUND + 60
    )
    latency = got - ended
    print(f"\nfile completion (left sessions.json) -> Nexus: {latency:.1f}s (settle 60 s)")
    assert got >= last_write + 60, "uploaded before its settle time"
    assert latency <= FILE_BOUND
    runs = watched.idle()[runs_before:]
    assert [r["run_type"] for r in runs] == ["asset_triggered"], runs
    assert epoch(runs[0]["queued_at"]) >= last_write + 60, "no run started while it settled"
    assert (watched.files.sessions / "archive" / f"{sid}.jsonl").is_file()


def test_a_backlog_beyond_max_sessions_drains_run_after_run_and_a_rejected_session_does_not_loop(watched):
    """Three completed sessions appear at once, max_sessions is 2, and Nexus rejects the oldest for good:
    the runs follow each other without the cron until both others are delivered, then stop (the rejected
    one is retried by the run after the last delivery, then left to the cron)."""
    runs_before = len(watched.runs())
    staging = watched.state_dir.parent / "backlog-staging"
    made = make_agent(staging / "sessions", "backlog", 3, random.Random(5), time.time())
    rejected, *good = made["completed"]  # oldest first: every run selects the rejected one
    watched.nexus.set_faults(
        [
            {
                "match": {"sessionId": rejected["sessionId"]},
                "times": None,
                "action": {"status": 400, "body": '{"error": "schema"}'},
            }
        ]
    )
    appeared = time.time()
    os.rename(staging, watched.state_dir / "agents" / "backlog")  # the whole agent appears at once

    watched.stack.wait_for(
        "both good sessions at Nexus",
        lambda: all(watched.accepted_at("backlog", item["sessionId"]) for item in good),
        timeout=360,
    )
    drained = max(watched.accepted_at("backlog", item["sessionId"]) for item in good) - appeared
    watched.idle()
    time.sleep(45)  # quiet: the rejected one alone starts nothing
    runs = watched.idle()[runs_before:]
    print(
        f"\nbacklog of 2 (+1 rejected) at max_sessions={MAX_SESSIONS}: delivered {drained:.0f}s after they"
        f" appeared, {len(runs)} runs in all, then none for 45 s"
    )
    assert all(r["run_type"] == "asset_triggered" for r in runs), runs
    assert 3 <= len(runs) <= 4, [(r["dag_run_id"], r["note"]) for r in runs]
    rejections = [r for r in watched.nexus.requests() if r["sessionId"] == rejected["sessionId"]]
    assert [r["status"] for r in rejections] == [400] * len(runs), "selected, and rejected, by every run"
    assert [r["state"] for r in runs] == ["failed"] * len(runs)
    notes = [r["note"] for r in runs]
    assert notes[0] == "Uploaded 1 session across 1 agent; 1 more left for later runs", notes
    assert sum(note.startswith("Uploaded 1 session across 1 agent") for note in notes) == 2, notes
    assert notes[-1] == "Uploaded 0 sessions across 0 agents", "the last run: the rejected one alone"
    for item in good:
        assert [r["status"] for r in watched.nexus.requests() if r["sessionId"] == item["sessionId"]] == [201]
    watched.nexus.clear_faults()
