"""``python -m tools.bench latency --fleet celery``: completion → Nexus latency of a two-host fleet, each host
watched by its own ``session_upload_<host>__watch`` (no triggerer watcher), side by side with the hourly cron.

Two hosts on this machine, each its own state dir and Celery worker (queue ``openclaw-<host>``, concurrency
2), plus a default-queue worker; PostgreSQL + Redis; the package's settings as shipped (hourly cron, watch
polling every 10 s and recycled every 10 minutes, files settle 60 s, database completions 0 s), every DAG
unpaused at its first parse. Per host: ``AGENTS`` agents whose databases OpenClaw 2026.9.6's doctor wrote
(``make_state`` then ``doctor --session-sqlite import``: two live sessions each), and one JSONL-era agent
``j1`` written the way OpenClaw ≤ 2026.7 writes one (``LiveJsonlAgent``). Throughout, each host's first
agent's main session gets a turn every 2 s (a transaction through Node's SQLite, as OpenClaw's writer makes
it) and ``j1``'s live transcript one line.

Completions at random (Poisson) times over ``--minutes``, on a host picked at random: a database
completion (an agent's telegram session archived, ``archived_at`` set as ``openclaw sessions archive``
does: final at commit) or a JSONL transcript leaving ``sessions.json`` (settles 60 s). Clock: OpenClaw's
commit (``archived_at``; the moment the entry left the index) to the stand-in's ``receivedAt`` of the
request whose transcript is byte-exact (the rows by ``seq``; the file). Then ``--idle-minutes`` of live
appends only: upload runs started (want 0), watch runs per host, worker slots the watch tasks hold.
"""

from __future__ import annotations

import contextlib
import json
import random
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from tools.bench.latency import (
    CRON,
    Completion,
    NodeWriter,
    _stats,
    _wait_all,
    iso_epoch,
    loadavg,
    log,
    now_ms,
    percentile,
    query,
    rows,
)
from tools.demo.sample_state import LiveJsonlAgent, make_state
from tools.openclaw.fixture import OpenClaw, agent_database
from tools.stacks.airflow_stack import AirflowStack, _descendants
from tools.stacks.celery_stack import (
    celery_stack,
    deployment_env,
    ensure_services,
    postgres_database,
    worker_command,
    worker_env,
)
from tools.stacks.edge_stack import EdgeWorker, edge_stack
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin

HOSTS = ("a", "b")
AGENTS = 12  # database agents per host: each has one session to archive
RATE_PER_MINUTE = 3.0
FILE_SHARE = 0.2
APPEND_EVERY = 2.0
DB_P95_GOAL = 60.0


def dag_id(host: str) -> str:
    return f"session_upload_{host}"


def watch_id(host: str) -> str:
    return f"session_upload_{host}__watch"


@dataclass
class Host:
    name: str
    state: Path
    agents: list[str]
    jsonl: LiveJsonlAgent
    archivable: list[str] = field(default_factory=list)  # agents whose telegram session is not archived yet
    live_files: int = 0


@dataclass
class FleetResult:
    transport: str
    completions: list[Completion]
    idle_minutes: float
    idle_upload_runs: dict[str, int]
    idle_watch_runs: dict[str, int]
    watch_slots: dict[str, int]  # the most watch task instances seen running at once, per host
    worker_rss_mib: dict[str, float]
    load: str
    errors: list[str]


def _host(root: Path, name: str, oc: OpenClaw) -> Host:
    state = root / f"host-{name}" / "openclaw"
    agents = [f"{name}db{i}" for i in range(AGENTS)]
    make_state(state, agents, completed=0, seed=ord(name))
    oc.run(["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=state)
    sessions = state / "agents" / "j1" / "sessions"
    sessions.mkdir(parents=True)
    jsonl = LiveJsonlAgent(sessions)
    jsonl.start("agent:j1:main")
    return Host(name, state, agents, jsonl, archivable=list(agents))


def _archive(writer: NodeWriter, host: Host, rng: random.Random) -> Completion:
    agent = host.archivable.pop(rng.randrange(len(host.archivable)))
    key = f"agent:{agent}:telegram:direct:42"
    database = agent_database(host.state, agent)
    (sid,) = query(database, "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (key,))[0]
    stamp = now_ms()
    writer.run(
        database,
        (
            "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = ?",
            [stamp, stamp, key],
        ),
    )
    return Completion("database", agent, sid, stamp / 1000, rows(database, sid), "poisson")


def _file(host: Host) -> Completion:
    host.live_files += 1
    key = f"agent:j1:chat-{host.live_files}"
    host.jsonl.start(key)
    host.jsonl.append(key)
    sid, ended = host.jsonl.end(key)
    data = (host.jsonl.sessions / f"{sid}.jsonl").read_bytes()
    return Completion("file", "j1", sid, ended, data, "poisson")


def _rss_mib(pid: int) -> float:
    total = 0
    for p in [pid, *_descendants([pid])]:
        try:
            with open(f"/proc/{p}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def run_fleet(transport: str, minutes: float, idle_minutes: float, seed: int, root: Path) -> FleetResult:
    if transport not in ("celery", "edge"):
        raise SystemExit(f"latency --fleet {transport}: celery or edge")
    rng = random.Random(seed)
    oc = OpenClaw.installed()
    started = time.monotonic()
    hosts = {name: _host(root, name, oc) for name in HOSTS}
    log(
        f"fleet: two hosts of {AGENTS} database agents + j1 built by OpenClaw"
        f" ({time.monotonic() - started:.0f} s)"
    )
    writer = NodeWriter(oc.node)
    stop = threading.Event()
    errors: list[str] = []

    def live() -> None:
        mains = {}
        for host in hosts.values():
            database = agent_database(host.state, host.agents[0])
            (sid,) = query(
                database,
                "SELECT current_session_id FROM session_nodes WHERE session_key = ?",
                (f"agent:{host.agents[0]}:main",),
            )[0]
            mains[host.name] = (database, sid)
        while not stop.wait(APPEND_EVERY):
            try:
                for host in hosts.values():
                    writer.append_turn(*mains[host.name])
                    host.jsonl.append("agent:j1:main")
            except Exception as exc:
                errors.append(f"live: {type(exc).__name__}: {exc}")

    thread = threading.Thread(target=live, daemon=True)
    thread.start()
    completions: list[Completion] = []
    try:
        with (
            NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus,
            _fleet_stack(transport, root, hosts, nexus.url) as stack,
        ):
            for name in HOSTS:
                stack.wait_for(f"{watch_id(name)} to watch", partial(_watching, stack, name), 240)
            log(f"fleet: stack up and both hosts watching ({time.monotonic() - started:.0f} s)")
            slots: Counter = Counter()
            t1 = time.time()
            offsets = []
            t = rng.expovariate(RATE_PER_MINUTE / 60)
            while t < minutes * 60:
                offsets.append(t)
                t += rng.expovariate(RATE_PER_MINUTE / 60)
            for offset in offsets:
                while (delay := t1 + offset - time.time()) > 0:
                    time.sleep(min(delay, 5))
                host = hosts[rng.choice(HOSTS)]
                try:
                    if rng.random() < FILE_SHARE or not host.archivable:
                        completions.append(_file(host))
                    else:
                        completions.append(_archive(writer, host, rng))
                except Exception as exc:
                    errors.append(f"completion: {type(exc).__name__}: {exc}")
                _count_slots(stack, slots)
            log(f"fleet: {len(completions)} completions in {(time.time() - t1) / 60:.1f} min; waiting")
            _wait_all(nexus, completions, 300)
            stack.wait_for(
                "no upload run queued or running",
                lambda: all(
                    r["state"] in ("success", "failed")
                    for name in HOSTS
                    for r in stack.dag_runs(dag_id(name))
                ),
                600,
            )
            t2 = time.time()
            log(f"fleet: idle {idle_minutes} min of live appends")
            deadline = time.monotonic() + idle_minutes * 60
            while time.monotonic() < deadline:
                _count_slots(stack, slots)
                time.sleep(min(20, max(0.0, deadline - time.monotonic())))
            idle_uploads = {name: _queued_since(stack, dag_id(name), t2) for name in HOSTS}
            idle_watches = {name: _queued_since(stack, watch_id(name), t2) for name in HOSTS}
            rss = {
                name: _rss_mib(stack.processes[name].pid)
                for name in stack.processes
                if name.startswith("worker")
            }
            load = loadavg()
    finally:
        stop.set()
        thread.join(30)
        writer.close()
    return FleetResult(
        transport,
        completions,
        idle_minutes,
        idle_uploads,
        idle_watches,
        {name: slots[name] for name in HOSTS},
        rss,
        load,
        errors,
    )


@contextlib.contextmanager
def _fleet_stack(
    transport: str, root: Path, hosts: dict[str, Host], nexus_url: str
) -> Iterator[AirflowStack]:
    """The fleet's Airflow, every DAG unpaused at its first parse, the cron hourly as shipped: Celery
    (PostgreSQL + Redis, a worker per host plus a default-queue one) or Edge (the central site on the
    embedded default, an Edge worker per host with no metadata DB)."""
    edge = transport == "edge"
    fleet = json.dumps([{"host": name, **({"executor": "EdgeExecutor"} if edge else {})} for name in HOSTS])
    deployment = {
        **deployment_env(SESSION_UPLOAD_FLEET=fleet),
        "SESSION_UPLOAD_SCHEDULE": "0 * * * *",  # as shipped: hourly
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }
    if edge:
        workers = {
            f"worker-{name}": EdgeWorker(
                queue=f"openclaw-{name}",
                hostname=f"host-{name}",
                env=worker_env(host.state, nexus_url, API_KEY),
            )
            for name, host in hosts.items()
        }
        with edge_stack(root / "airflow", deployment, workers, ready_dag_id=dag_id("b")) as stack:
            yield stack
        return
    ensure_services()
    with postgres_database("session_upload_fleet_bench") as database:
        celery_workers = {
            f"worker-{name}": (
                worker_command([f"openclaw-{name}"], f"worker-{name}"),
                worker_env(host.state, nexus_url, API_KEY),
            )
            for name, host in hosts.items()
        }
        celery_workers["worker-default"] = (worker_command(["default"], "worker-default"), {})
        with celery_stack(
            root / "airflow",
            deployment,
            database,
            workers=celery_workers,
            ready_dag_id=dag_id("b"),
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        ) as stack:
            yield stack


def _watching(stack: AirflowStack, host: str) -> bool:
    return any(r["state"] == "running" for r in stack.dag_runs(watch_id(host)))


def _count_slots(stack: AirflowStack, slots: Counter) -> None:
    """The most watch task instances seen running at once per host (a worker slot each)."""
    for name in HOSTS:
        running = 0
        for run in stack.dag_runs(watch_id(name), state="running"):
            running += sum(
                ti["state"] == "running" for ti in stack.task_instances(run["dag_run_id"], watch_id(name))
            )
        slots[name] = max(slots[name], running)


def _queued_since(stack: AirflowStack, dag: str, since: float) -> int:
    return sum(1 for r in stack.dag_runs(dag) if r.get("queued_at") and iso_epoch(r["queued_at"]) >= since)


def report(result: FleetResult, table: Callable[[str, list[str], Sequence[Sequence[object]]], None]) -> None:
    body = []
    for kind, cron in (("database", CRON["database"]), ("file", CRON["files"])):
        lat = [c.latency for c in result.completions if c.kind == kind and c.latency is not None]
        body.append([kind, f"{len(lat)}: {_stats(lat)}", " / ".join(f"{x / 60:.0f} min" for x in cron)])
    table(
        f"Fleet ({result.transport}, two hosts, each watched by its watch DAG): completion → Nexus, "
        "n: p50 / p95 / max",
        ["kind", f"fleet ({result.transport})", "hourly cron (computed)"],
        body,
    )
    missing = [c for c in result.completions if c.received is None]
    idle_hours = result.idle_minutes / 60
    table(
        "Fleet: what it holds",
        [
            "host",
            "upload runs while idle",
            "watch runs per idle hour",
            "watch slots held (max seen)",
            "worker RSS",
        ],
        [
            [
                name,
                result.idle_upload_runs[name],
                f"{result.idle_watch_runs[name] / idle_hours:.1f}" if idle_hours else "-",
                result.watch_slots[name],
                f"{result.worker_rss_mib.get(f'worker-{name}', 0):.0f} MiB",
            ]
            for name in HOSTS
        ],
    )
    db = [c.latency for c in result.completions if c.kind == "database" and c.latency is not None]
    met = "met" if db and percentile(db, 0.95) <= DB_P95_GOAL else "NOT met"
    print(
        f"database p95 ≤ {DB_P95_GOAL:.0f} s: {met}; "
        f"{len(result.completions) - len(missing)} of {len(result.completions)} byte-exact at Nexus; "
        f"load {result.load}; errors: {'; '.join(result.errors[:3]) or 'none'}",
        flush=True,
    )


def bench_fleet(
    transport: str,
    minutes: float,
    idle_minutes: float,
    table: Callable[[str, list[str], Sequence[Sequence[object]]], None],
    seed: int = 20,
    root: Path | None = None,
) -> FleetResult:
    root = root or Path(tempfile.mkdtemp(prefix="bench-fleet-"))
    print(f"Load average at the start: {loadavg()}; work dir {root}", flush=True)
    result = run_fleet(transport, minutes, idle_minutes, seed, root)
    report(result, table)
    return result
