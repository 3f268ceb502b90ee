"""``python -m tools.bench agents``: what a run costs when most agents are idle, per agent count, now that
``find_agents`` checks which agents have something to send (``openclaw_nexus.agent_check``).

Per agent count N (``--agents 10,100,1000``), a fresh state dir: N/2 SQLite-era agents, copies of one idle
agent whose database OpenClaw 2026.9.6 wrote (its doctor migrating the generator's JSONL agent, then scaled
with the project's ``scale_agent``: cloned sessions, some chats rolled over; everything completed already
delivered, so only live sessions are left), and N/2 JSONL-era agents of the generator with live sessions
only. Then the real DAG on the embedded default with its triggerer and watcher, settings as shipped but
the cron at one minute of the hour a few minutes ahead:

1. the first run (the unpause's scheduled run): no record yet, every agent scanned in full by the check;
2. a manual run (REST) over idle agents;
3. the scheduled (cron) run at that minute, over idle agents;
4. completions with the watcher on: ``--completions`` conversations closed one at a time in SQLite-era
   agents (a reset event and a message in the agent's live main session, one write transaction through
   Node's SQLite, as OpenClaw's ``/new`` writes them; sent as that conversation), and ``--files`` JSONL
   sessions ending (a last turn appended, then the entry leaves ``sessions.json``; files settle 60 s).

Per run: queued → done and start → end as Airflow recorded them, task instances, and the check's own time
(its ``check`` XCom). Per completion: OpenClaw's commit (the reset row's ``created_at``; the moment the
entry left ``sessions.json``) → the stand-in's receipt of exactly those bytes. Before the stack, the
watcher's ``Detector.poll`` on the same state dir: the first poll, an unchanged poll, the poll after the
check first wrote its record (a name added to the agents folder: the detector lists the agents again), and
polls after later checks (the record rewritten in place).

``--check-agents 10000``: the check alone (no Airflow) on a state dir built the same way: the first check
(no record), an unchanged one, and one after a conversation closed in one agent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

Table = Callable[[str, list[str], list[list[object]]], None]
TEMPLATE_SESSIONS = 40  # cloned into the template agent: its history (all delivered before copying)
DB_P95_GOAL, FILE_P95_GOAL, RUN_GOAL, CHECK_GOAL_1000, CHECK_GOAL_10000 = 60.0, 120.0, 30.0, 3.0, 20.0


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _log(message: str) -> None:
    print(f"[agents {time.strftime('%H:%M:%S')}] {message}", flush=True)


def _iso(stamp: str | None) -> float | None:
    if not stamp:
        return None
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def idle_template(work: Path) -> Path:
    """One idle SQLite-era agent (``agents/main``) whose database OpenClaw wrote, with history: what
    ``discover`` finds in it delivered as the DAG would (archive copies), live sessions left."""
    from openclaw_nexus import discovery, stores
    from tools.bench.cli import openclaw_template, scale_agent

    state = openclaw_template(work / "template", ["main"])
    scale_agent(state, "main", TEMPLATE_SESSIONS, live_nodes=2, per_node=10, age_seconds=86400)
    window = discovery.Window(now=time.time() + 86400, settle_seconds=0)
    for item in stores.scan_agent(state, "main", window).sessions:
        _deliver(state, item)
    left = stores.scan_agent(state, "main", window)
    if left.sessions or left.errors:
        raise RuntimeError(f"the template agent is not idle: {left.to_dict()}")
    return state


def _deliver(state: Path, item: dict) -> None:
    """What the DAG does once Nexus confirmed an item: export it and record its archive copy."""
    from openclaw_nexus import stores

    transcript = stores.open_transcript(state, item)
    data = transcript.path.read_bytes()
    receipt = {
        "staged": transcript.staged,
        "duplicateOf": None,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    stores.record_archived(state, item, receipt)


def build_state(root: Path, template: Path, agents: int) -> tuple[list[str], list[str]]:
    """``agents`` idle agents under ``root``: SQLite-era copies of the template agent (``db-…``) and the
    generator's JSONL-era agents with live sessions only (``files-…``). Their names, per era."""
    from tools.demo.sample_state import make_state

    databases = [f"db-{n:05d}" for n in range(agents - agents // 2)]
    files = [f"files-{n:05d}" for n in range(agents // 2)]
    (root / "agents").mkdir(parents=True, exist_ok=True)
    for name in databases:
        shutil.copytree(template / "agents" / "main", root / "agents" / name, symlinks=True)
    make_state(root, files, completed=0, seed=agents)
    return databases, files


# -- completions, written the way OpenClaw writes them ------------------------------------------------


def _main_session(database: Path) -> tuple[str, int, str | None]:
    """The live main session of an agent database: its id, last seq and last event id."""
    from tools.openclaw.fixture import read_only

    with read_only(database) as db:
        (sid,) = db.execute(
            "SELECT current_session_id FROM session_nodes WHERE archived_at IS NULL AND session_key LIKE"
            " '%:main' ORDER BY session_key LIMIT 1"
        ).fetchone()
        seq, text = db.execute(
            "SELECT seq, event_json FROM transcript_events WHERE session_id = ? ORDER BY seq DESC LIMIT 1",
            (sid,),
        ).fetchone()
    return sid, seq, (json.loads(text).get("id") if text else None)


def close_conversation(writer: Any, state: Path, agent: str) -> tuple[str, float, bytes]:
    """A turn in the agent's live main session, then ``/new``: the reset event and the user's message, in
    one transaction. (The turn names the agent: the copies share their template's rows, and identical
    bytes would be one idempotency key.) Returns the subject Nexus is sent (``<sid>@0``), the commit time
    (the reset's ``created_at``) and the bytes the finished conversation holds (its rows before the reset,
    OpenClaw's export form)."""
    from tools.bench.latency import rows

    database = state / "agents" / agent / "agent" / "openclaw-agent.sqlite"
    sid, seq, parent = _main_session(database)
    at_ms = int(time.time() * 1000)
    reset_id = os.urandom(4).hex()
    turn_id = os.urandom(4).hex()
    events: list[dict[str, Any]] = [
        {
            "type": "message",
            "id": turn_id,
            "parentId": parent,
            "timestamp": _ts(at_ms - 1),
            "message": {"role": "user", "content": [{"type": "text", "text": f"{agent}: last words"}]},
        },
        {"type": "reset", "id": reset_id, "parentId": turn_id, "timestamp": _ts(at_ms), "reason": "new"},
        {
            "type": "message",
            "id": os.urandom(4).hex(),
            "parentId": reset_id,
            "timestamp": _ts(at_ms + 1),
            "message": {"role": "user", "content": [{"type": "text", "text": "/new"}]},
        },
    ]
    statements: list[tuple[str, list]] = []
    for n, event in enumerate(events):
        compact = json.dumps(event, separators=(",", ":"))
        statements += [
            (
                "INSERT INTO transcript_events (session_id, seq, event_json, created_at) VALUES (?, ?, ?, ?)",
                [sid, seq + 1 + n, compact, at_ms - 1 + n],
            ),
            (
                "INSERT INTO transcript_event_identities"
                " (session_id, event_id, seq, event_type, parent_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                [sid, event["id"], seq + 1 + n, event["type"], event["parentId"], at_ms - 1 + n],
            ),
        ]
    statements.append(
        (
            "UPDATE session_windows SET updated_at = ?, transcript_updated_at = ? WHERE session_id = ?",
            [at_ms + 1, at_ms + 1, sid],
        )
    )
    writer.run(database, *statements)
    return f"{sid}@0", at_ms / 1000, rows(database, sid, below_seq=seq + 2)


def _ts(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def end_file_session(state: Path, agent: str) -> tuple[str, float, bytes]:
    """A JSONL-era session's last turn appended in place, then its entry leaves ``sessions.json`` (replaced
    atomically, as OpenClaw does). Returns its subject (the session id), that moment, the file's bytes."""
    sessions = state / "agents" / agent / "sessions"
    index = json.loads((sessions / "sessions.json").read_text())
    key = f"agent:{agent}:main"
    sid = index[key]["sessionId"]
    path = sessions / f"{sid}.jsonl"
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "message", "message": {"role": "user", "content": "bye"}}) + "\n")
    del index[key]
    temporary = sessions / "sessions.json.tmp"
    temporary.write_text(json.dumps(index, indent=2))
    os.replace(temporary, sessions / "sessions.json")
    return sid, time.time(), path.read_bytes()


@dataclass
class Completion:
    kind: str  # "conversation" or "file"
    agent: str
    subject: str
    committed: float
    expected: bytes
    received: float | None = None

    @property
    def latency(self) -> float | None:
        return None if self.received is None else self.received - self.committed


def _match(nexus: Any, completions: list[Completion]) -> None:
    """Each completion's first 201 whose subject and transcript bytes are exactly what OpenClaw holds."""
    for record in nexus.accepted():
        subject = (record.get("idempotencyKey") or "").rpartition(":")[0]
        for c in completions:
            if c.received is None and (record["agentId"], subject) == (c.agent, c.subject):
                body = json.loads(nexus.body(record["n"]))["transcript"].encode("utf-8")
                if body == c.expected:
                    c.received = record["receivedAt"]


def _wait_received(nexus: Any, completions: list[Completion], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _match(nexus, completions)
        if all(c.received is not None for c in completions):
            return
        time.sleep(1)


# -- measuring -------------------------------------------------------------------------------------------


@dataclass
class RunFigures:
    what: str
    run_type: str
    state: str
    queued_to_done: float | None
    start_to_end: float | None
    task_instances: int
    check: dict = field(default_factory=dict)


def _figures(stack: Any, run: dict, what: str) -> RunFigures:
    from tools.bench.cli import _ti_count

    queued, start, end = _iso(run.get("queued_at")), _iso(run.get("start_date")), _iso(run.get("end_date"))
    try:
        check = stack.xcom(run["dag_run_id"], "find_agents", key="check") or {}
    except Exception:  # a run whose find_agents failed has none
        check = {}
    return RunFigures(
        what,
        run["run_type"],
        run["state"],
        end - queued if end and queued else None,
        end - start if end and start else None,
        _ti_count(stack, "session_upload", run["dag_run_id"]),
        check,
    )


def _ended(stack: Any) -> list[dict]:
    return sorted(
        (r for r in stack.dag_runs() if r["state"] in ("success", "failed")),
        key=lambda r: r.get("queued_at") or "",
    )


def watcher_poll_costs(state: Path, agents: list[str]) -> dict[str, float]:
    """``Detector.poll`` on the state dir, as the watcher polls (a sweep of 4 agents a poll): the first poll
    (scans every agent), an unchanged poll, the poll after the check first wrote its record (a name added
    to the agents folder: the detector lists the agents again, once), and a poll after each later check
    (the record rewritten in place). Medians of 5 where repeated."""
    from openclaw_nexus import agent_check
    from openclaw_nexus.detector import Detector

    def timed() -> float:
        start = time.perf_counter()
        detector.poll()
        return time.perf_counter() - start

    agent_check.record_path(state).unlink(missing_ok=True)
    detector = Detector(state)
    first = timed()
    unchanged = statistics.median(timed() for _ in range(5))
    agent_check.check_agents(state, agents)
    created = timed()
    after_checks = []
    for _ in range(5):
        agent_check.check_agents(state, agents)
        after_checks.append(timed())
    return {
        "first": first,
        "unchanged": unchanged,
        "after the record was created": created,
        "after a check": statistics.median(after_checks),
    }


def _schedule_minute(ahead: timedelta) -> tuple[str, datetime]:
    at = (datetime.now(UTC) + ahead).replace(second=0, microsecond=0) + timedelta(minutes=1)
    return f"{at.minute} * * * *", at


@dataclass
class CountResult:
    agents: int
    runs: list[RunFigures]
    completions: list[Completion]
    poll: dict[str, float]
    load: dict[str, str]
    errors: list[str]


def run_count(
    agents: int, template: Path, work: Path, completions: int, files: int, gap: float
) -> CountResult:
    from openclaw_nexus.discovery import list_agents
    from tools.bench.latency import NodeWriter
    from tools.openclaw.fixture import OpenClaw
    from tools.stacks.airflow_stack import AirflowStack
    from tools.stacks.sandbox import API_KEY, nexus_connection
    from tools.standins.nexus import NexusStandin

    root = work / f"agents-{agents}"
    state = root / "state"
    started = time.monotonic()
    databases, jsonl = build_state(state, template, agents)
    _log(f"{agents} agents built in {time.monotonic() - started:.0f} s; load {_load()}")
    poll = watcher_poll_costs(state, list_agents(state)[0])
    (state / "agents" / ".session-upload-check.json").unlink()  # the stack's first run starts without one
    load = {"start": _load()}
    errors: list[str] = []
    runs: list[RunFigures] = []
    made: list[Completion] = []
    with NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus:
        cron, cron_at = _schedule_minute(timedelta(minutes=4 if agents < 1000 else 6))
        env = {
            "OPENCLAW_STATE_DIR": str(state),
            "AIRFLOW_CONN_NEXUS_DEFAULT": nexus_connection(nexus.url, API_KEY),
            "SESSION_UPLOAD_SCHEDULE": cron,
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        }
        with AirflowStack(root / "airflow", env=env) as stack:
            # 1. The unpause's scheduled run: the first, without a record.
            stack.wait_for("the first run to end", lambda: _ended(stack), timeout=1800)
            runs.append(_figures(stack, _ended(stack)[0], "first run (no record: every agent in full)"))
            stack.wait_for(
                "the watcher to start",
                lambda: "watcher started" in (stack.log_dir / "triggerer.log").read_text(errors="replace"),
                timeout=600,
            )
            _log(f"first run done: {runs[-1]}; load {_load()}")
            # 2. A manual run over idle agents.
            run_id = stack.trigger({})
            runs.append(_figures(stack, stack.wait_for_run(run_id, timeout=1800), "manual (REST), all idle"))
            _log(f"manual run done: {runs[-1]}")
            load["idle runs"] = _load()
            # 3. The cron run at its minute, over idle agents.
            wait = (cron_at - datetime.now(UTC)).total_seconds()
            _log(f"waiting {wait:.0f} s for the scheduled run at {cron_at:%H:%M} UTC")

            def cron_run() -> dict | None:
                for run in _ended(stack):
                    if (
                        run["run_type"] == "scheduled"
                        and _iso(run.get("data_interval_end")) == cron_at.timestamp()
                    ):
                        return run
                return None

            run = stack.wait_for("the scheduled run", cron_run, timeout=wait + 1800)
            runs.append(_figures(stack, run, "scheduled (cron), all idle"))
            _log(f"cron run done: {runs[-1]}")
            # 4. Completions with the watcher on, one at a time.
            writer = NodeWriter(OpenClaw.installed().node)
            try:
                before = {r["dag_run_id"] for r in stack.dag_runs()}
                picks = databases[:: max(1, len(databases) // max(1, completions))][:completions]
                for n, agent in enumerate(picks):
                    subject, committed, expected = close_conversation(writer, state, agent)
                    made.append(Completion("conversation", agent, subject, committed, expected))
                    _wait_received(nexus, made[-1:], 300)
                    _log(f"conversation {n + 1}/{len(picks)} in {agent}: {made[-1].latency}")
                    time.sleep(gap)
                for agent in jsonl[:files]:
                    subject, committed, expected = end_file_session(state, agent)
                    made.append(Completion("file", agent, subject, committed, expected))
                    _wait_received(nexus, made[-1:], 400)
                    _log(f"file session in {agent}: {made[-1].latency}")
                    time.sleep(gap)
            finally:
                writer.close()
            stack.wait_for(
                "no run queued or running",
                lambda: all(r["state"] in ("success", "failed") for r in stack.dag_runs()),
                timeout=900,
            )
            for run in _ended(stack):
                if run["dag_run_id"] not in before:
                    runs.append(_figures(stack, run, "watcher-started, one completion"))
            load["completions"] = _load()
            errors += [f"{name}: 'database is locked'" for name, n in _lock_counts(stack).items() if n]
    _match(nexus, made)
    shutil.rmtree(state, ignore_errors=True)
    return CountResult(agents, runs, made, poll, load, errors)


def _lock_counts(stack: Any) -> dict[str, int]:
    return {
        name: (stack.log_dir / f"{name}.log").read_text(errors="replace").count("database is locked")
        for name in stack.processes
    }


def check_only(agents: int, template: Path, work: Path) -> list[list[object]]:
    """The check alone on ``agents`` agents: first (no record), unchanged, one conversation closed."""
    from openclaw_nexus import agent_check
    from openclaw_nexus.detector import fingerprint
    from openclaw_nexus.discovery import list_agents
    from tools.bench.latency import NodeWriter
    from tools.openclaw.fixture import OpenClaw

    state = work / f"check-{agents}"
    started = time.monotonic()
    databases, _ = build_state(state, template, agents)
    _log(f"check-only: {agents} agents built in {time.monotonic() - started:.0f} s; load {_load()}")
    rows: list[list[object]] = []

    def measure(what: str) -> agent_check.Check:
        start = time.perf_counter()
        names = list_agents(state)[0]
        listing = time.perf_counter() - start
        result = agent_check.check_agents(state, names)
        total = time.perf_counter() - start
        rows.append(
            [
                f"{agents:,}",
                what,
                f"{total:.2f}",
                f"{listing:.2f}",
                f"{len(result.agents)} kept, {len(result.skipped)} skipped, "
                f"{len(result.scanned)} scanned in full ({result.new} new, {result.changed} changed, "
                f"{result.recent} recent, {result.swept} swept)",
                _load(),
            ]
        )
        return result

    time.sleep(3)  # as in a deployment, the files are older than RACY_SECONDS when the check runs
    measure("first check (no record: every agent scanned in full)")
    measure("unchanged (record trusted, the sweep only)")
    names = list_agents(state)[0]
    start = time.perf_counter()
    for name in names:
        fingerprint(state, name)
    stats = time.perf_counter() - start
    writer = NodeWriter(OpenClaw.installed().node)
    try:
        close_conversation(writer, state, databases[len(databases) // 2])
    finally:
        writer.close()
    kept = measure("one conversation closed in one agent")
    rows.append(
        [f"{agents:,}", "of which: the stamps of every agent (stat only)", f"{stats:.2f}", "", "", ""]
    )
    if len(kept.agents) != 1:
        rows.append([f"{agents:,}", f"UNEXPECTED: kept {kept.agents[:5]}", "", "", "", ""])
    shutil.rmtree(state, ignore_errors=True)
    return rows


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, -(-int(q * 100) * len(ordered) // 100) - 1)]


def report(results: list[CountResult], checks: list[list[object]], table: Table, commit: str) -> None:
    rows: list[list[object]] = []
    for r in results:
        for f in r.runs:
            check = f.check
            rows.append(
                [
                    f"{r.agents:,}",
                    f.what,
                    f.state,
                    f"{f.queued_to_done:.1f}" if f.queued_to_done is not None else "-",
                    f"{f.start_to_end:.1f}" if f.start_to_end is not None else "-",
                    f.task_instances,
                    f"{check.get('seconds', '-')}",
                    " / ".join(str(check.get(k, "-")) for k in ("scanned", "skipped", "checkedInFull")),
                ]
            )
    table(
        f"Runs by type, embedded default with triggerer and watcher (commit {commit})",
        [
            "agents",
            "run",
            "state",
            "queued → done (s)",
            "start → end (s)",
            "task instances",
            "check (s)",
            "discover mapped / skipped / scanned in full by the check",
        ],
        rows,
    )
    lat_rows: list[list[object]] = []
    for r in results:
        for kind, goal in (("conversation", DB_P95_GOAL), ("file", FILE_P95_GOAL)):
            got = [c.latency for c in r.completions if c.kind == kind and c.latency is not None]
            missing = sum(1 for c in r.completions if c.kind == kind and c.latency is None)
            if not got and not missing:
                continue
            watcher = [
                f.queued_to_done
                for f in r.runs
                if f.run_type == "asset_triggered" and f.queued_to_done is not None
            ]
            lat_rows.append(
                [
                    f"{r.agents:,}",
                    kind,
                    f"{len(got)} ({missing} missing)",
                    f"{statistics.median(got):.1f} / {_pct(got, 0.95):.1f} / {max(got):.1f}" if got else "-",
                    f"p95 ≤ {goal:.0f} s",
                    f"{statistics.median(watcher):.1f} / {max(watcher):.1f}" if watcher else "-",
                ]
            )
    table(
        "Completion → Nexus with the watcher on (OpenClaw's commit → the stand-in's receipt of those bytes)",
        [
            "agents",
            "completion",
            "n",
            "latency p50 / p95 / max (s)",
            "goal",
            "watcher-started runs queued → done, p50 / max (s)",
        ],
        lat_rows,
    )
    table(
        "The watcher's Detector.poll on the same state dir (before the stack; medians of 5)",
        [
            "agents",
            "first poll (s)",
            "unchanged poll (s)",
            "poll after the record was created (once: agents listed again) (s)",
            "poll after each later check (s)",
        ],
        [
            [
                f"{r.agents:,}",
                f"{r.poll['first']:.3f}",
                f"{r.poll['unchanged']:.4f}",
                f"{r.poll['after the record was created']:.4f}",
                f"{r.poll['after a check']:.4f}",
            ]
            for r in results
        ],
    )
    if checks:
        table(
            "The check alone (find_agents' work without Airflow), half SQLite-era, half JSONL-era agents",
            ["agents", "what", "seconds", "of which listing", "result", "load"],
            checks,
        )
    table(
        "Load average (1/5/15 min) per phase",
        ["agents", "load", "'database is locked'"],
        [
            [f"{r.agents:,}", "; ".join(f"{k} {v}" for k, v in r.load.items()), r.errors or "none"]
            for r in results
        ],
    )


def bench_agents(
    counts: list[int],
    check_counts: list[int],
    completions: int,
    files: int,
    gap: float,
    table: Table,
) -> None:
    import subprocess

    work = Path(tempfile.mkdtemp(prefix="bench-agents-"))
    root = Path(__file__).resolve().parents[2]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()
    _log(f"work dir {work}, commit {commit}, load {_load()}")
    started = time.monotonic()
    template = idle_template(work)
    _log(f"idle template agent built in {time.monotonic() - started:.0f} s")
    results = [run_count(n, template, work, completions, files, gap) for n in counts]
    checks = [row for n in check_counts for row in check_only(n, template, work)]
    report(results, checks, table, commit)
    shutil.rmtree(work, ignore_errors=True)
