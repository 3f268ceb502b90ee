"""A fleet on one machine: SESSION_UPLOAD_FLEET with hosts a and b gives the DAGs session_upload_a and
session_upload_b, whose file tasks (find_agents, discover, deliver.upload, deliver.archive) are pinned to
the Celery queues openclaw-a / openclaw-b. Three workers, each with its own node name:

- worker-a: `celery worker --queues openclaw-a`, OPENCLAW_STATE_DIR = host a's state dir
- worker-b: `celery worker --queues openclaw-b`, OPENCLAW_STATE_DIR = host b's state dir
- worker-default: `celery worker --queues default` (select, job_result), with neither a state dir nor
  the Nexus Connection

Both hosts have an agent `main` (different sessions), so a task that ran on the wrong worker would show.
Each host's sessions must be uploaded and archived by its own worker, in its own state dir, only.

First, manual runs of both upload DAGs (the watch DAGs still paused). Then each host's watch DAG,
`session_upload_<host>__watch`, is unpaused (its watch ends after a minute here, so watches recycle during
the tests): OpenClaw appends live on both hosts (a database written by OpenClaw 2026.9.6's doctor on host a,
a JSONL-era agent on host b), a session completes in host a's database, and host a's worker goes down and
comes back around a second completion. The last test searches everything for the API key.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.celery.support import (
    DEFAULT_QUEUE_TASKS,
    FILE_TASKS,
    executed,
    received,
)
from tests.fleet_support import (
    HOSTS,
    MESSAGES,
    Chatting,
    Host,
    accepted_at,
    add_database_agents,
    archive_telegram,
    dag_id,
    epoch,
    make_hosts,
    start_chatting,
    watch_id,
)
from tests.openclaw_writer import database
from tools.bench.latency import rows
from tools.stacks.celery_stack import (
    CeleryStack,
    celery_stack,
    deployment_env,
    postgres_database,
    worker_command,
    worker_env,
)
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin

FLEET = json.dumps([{"host": host} for host in HOSTS])
# Bounds asserted against gross regressions only (one sample on a shared machine); the fleet's latency goal
# (p95 <= 60 s for database completions) is the benchmark's.
DATABASE_BOUND = 120.0
IDLE_SECONDS = 60.0
DB_AGENTS = ["db", "db2", "db3"]  # host a's database agents: one completion scenario each


@dataclass
class Fleet:
    stack: CeleryStack
    hosts: dict[str, Host]
    received: dict[tuple[str, str], bytes]
    launched: dict[str, list[str]]
    dag_ids: list[str]
    nowhere: Path
    assets_before_runs: set[str]
    nexus: NexusStandin
    agent_dirs: dict[str, set[str]] = field(default_factory=dict)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """The stack, once both hosts' manual runs are done; it stays up for the watch tests."""
    root = tmp_path_factory.mktemp("celery-fleet")
    hosts = make_hosts(root)
    nowhere = root / "no-state-dir-here"  # worker-default's state dir: must never be created
    started = time.monotonic()
    with (
        NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus,
        postgres_database("session_upload_fleet") as database,
    ):
        # Each host worker: its own state dir (and the Connection). worker-default: neither.
        workers = {
            f"worker-{name}": (
                worker_command([f"openclaw-{name}"], f"worker-{name}"),
                worker_env(host.state_dir, nexus.url, API_KEY),
            )
            for name, host in hosts.items()
        }
        workers["worker-default"] = (
            worker_command(["default"], "worker-default"),
            {"OPENCLAW_STATE_DIR": str(nowhere)},
        )
        stack = celery_stack(
            root / "airflow",
            deployment_env(SESSION_UPLOAD_FLEET=FLEET, SESSION_UPLOAD_WATCH_MINUTES="1"),
            database,
            workers=workers,
            ready_dag_id=dag_id("b"),
            AIRFLOW__CELERY__WORKER_CONCURRENCY="2",
        )
        with stack:
            up = time.monotonic() - started
            launched = {name: list(process.args[1:]) for name, process in stack.processes.items()}
            dag_ids = [dag["dag_id"] for dag in stack.api("GET", "/api/v2/dags").json()["dags"]]
            for host in hosts.values():
                stack.wait_until_ready(60, dag_id(host.name))
                stack.set_paused(False, dag_id(host.name))
            assets_before_runs = {a["name"] for a in stack.api("GET", "/api/v2/assets").json()["assets"]}
            run_ids = {name: stack.trigger(dag_id=dag_id(name)) for name in hosts}
            for name, host in hosts.items():
                host.run = stack.wait_for_run(run_ids[name], dag_id(name), timeout=360)
                host.task_instances = stack.task_instances(run_ids[name], dag_id(name))
                host.job_result = stack.xcom(run_ids[name], "job_result", dag_id=dag_id(name))
            ran = time.monotonic() - started - up
            got = received(nexus)
            for host in hosts.values():
                host.snapshot_after()
            agent_dirs = {
                name: {p.name for p in (host.state_dir / "agents").iterdir() if p.is_dir()}
                for name, host in hosts.items()
            }
            print(f"\nFleet: stack up {up:.0f}s, both runs {ran:.0f}s; home {stack.home}")
            yield Fleet(stack, hosts, got, launched, dag_ids, nowhere, assets_before_runs, nexus, agent_dirs)


def test_the_emitted_asset_is_registered_before_any_run(fleet):
    """The asset ``nexus://sessions`` is in the metadata DB before any run starts (both hosts' job_result
    emit it at the same moment: had the first event to create it, the two would collide on its unique
    index and one green run would turn red)."""
    assert "nexus://sessions" in fleet.assets_before_runs, fleet.assets_before_runs


def test_one_dag_per_host_and_both_runs_green(fleet):
    for host in fleet.hosts.values():
        assert host.run["state"] == "success", fleet.stack.tail("scheduler")
        assert {ti["state"] for ti in host.task_instances} == {"success"}
        count = len(host.expected())
        assert host.job_result["success"] is True
        assert host.job_result["itemsProcessed"] == count
        assert host.job_result["message"] == MESSAGES[host.name]
        assert host.run["note"] == MESSAGES[host.name], "each host's run note: its JobResult message"
    assert sorted(fleet.dag_ids) == sorted(
        [dag_id(name) for name in HOSTS] + [watch_id(name) for name in HOSTS]
    ), "no plain session_upload DAG"


def test_workers_have_their_own_queue_node_name_and_state_dir(fleet):
    """What each worker process was started with: the per-host queue and a distinct --celery-hostname
    (its banner names it); and the state dir its tasks used: its host's OPENCLAW_STATE_DIR."""
    args = {name: args for name, args in fleet.launched.items() if name.startswith("worker")}
    assert args == {
        "worker-a": ["celery", "worker", "--queues", "openclaw-a", "--celery-hostname", "worker-a"],
        "worker-b": ["celery", "worker", "--queues", "openclaw-b", "--celery-hostname", "worker-b"],
        "worker-default": ["celery", "worker", "--queues", "default", "--celery-hostname", "worker-default"],
    }
    for name, host in fleet.hosts.items():
        other = next(h for h in fleet.hosts.values() if h is not host)
        run_dir = fleet.stack.home / "logs" / f"dag_id={dag_id(name)}" / f"run_id={host.run['dag_run_id']}"
        find_agents_log = (run_dir / "task_id=find_agents" / "attempt=1.log").read_text()
        assert str(host.state_dir) in find_agents_log
        assert str(other.state_dir) not in find_agents_log
    assert not fleet.nowhere.exists(), "no task outside the host workers touched a state dir"
    for name in args:
        banner = (fleet.stack.log_dir / f"{name}.log").read_text(errors="replace")
        assert f"celery@{name}" in banner


def test_file_tasks_ran_on_their_hosts_queue(fleet):
    """The task instances' `queue` (REST): file tasks on openclaw-<host>, select/job_result on default."""
    for name, host in fleet.hosts.items():
        queues = {(ti["task_id"], ti["queue"]) for ti in host.task_instances}
        assert queues == {(task, f"openclaw-{name}") for task in FILE_TASKS} | {
            (task, "default") for task in DEFAULT_QUEUE_TASKS
        }


def test_each_worker_ran_only_its_own_hosts_tasks(fleet):
    """From each worker's own log: worker-<host> ran exactly its host's file task instances, and
    worker-default exactly the select/job_result instances of both DAGs."""
    for name, host in fleet.hosts.items():
        ran = executed(fleet.stack.log_dir / f"worker-{name}.log")
        expected = [
            (dag_id(name), host.run["dag_run_id"], ti["task_id"], ti["map_index"])
            for ti in host.task_instances
            if ti["task_id"] in FILE_TASKS
        ]
        assert sorted(ran) == sorted(expected)
    ran = executed(fleet.stack.log_dir / "worker-default.log")
    assert sorted(ran) == sorted(
        (dag_id(name), host.run["dag_run_id"], ti["task_id"], ti["map_index"])
        for name, host in fleet.hosts.items()
        for ti in host.task_instances
        if ti["task_id"] in DEFAULT_QUEUE_TASKS
    )


def test_each_hosts_sessions_uploaded_from_its_own_state_dir(fleet):
    """Nexus got every host's sessions byte for byte, and each DAG uploaded exactly its host's ones."""
    everything: dict[tuple[str, str], bytes] = {}
    for host in fleet.hosts.values():
        expected = host.expected()
        assert not set(expected) & set(everything), "sample sessions must differ between hosts"
        everything.update(expected)
        uploaded = {
            tuple(ti["rendered_map_index"].split("/"))
            for ti in host.task_instances
            if ti["task_id"] == "deliver.upload"
        }
        assert uploaded == set(expected)
    assert fleet.received == everything
    assert {agent for agent, _ in fleet.received} == {"main", "alpha"}


def test_each_hosts_sessions_archived_in_its_own_state_dir_only(fleet):
    for host in fleet.hosts.values():
        for agent in host.agents:
            before, after = host.before[agent], host.after[agent]
            archived = {name for name in after if name.startswith("archive/")}
            mine = host.made[agent]["completed"]
            assert archived == {f"archive/{item['sessionId']}.jsonl" for item in mine} | {
                f"archive/.copies/{item['sessionId']}.json" for item in mine
            }, "each copy, and its record, which OpenClaw's backup keeps"
            for item in mine:
                assert item["file"] not in after
                assert after[f"archive/{item['sessionId']}.jsonl"] == before[item["file"]]
            for name in host.made[agent]["active"] + host.made[agent]["untouchable"]:
                assert after[name] == before[name], f"{host.name}:{agent}/{name} was touched"
    # Nothing of one host appeared in the other's state dir.
    assert fleet.agent_dirs == {"a": {"main", "alpha"}, "b": {"main"}}


# -- each host's watch DAG -------------------------------------------------------------------------------


@dataclass
class Watching:
    fleet: Fleet
    chatting: Chatting
    unpaused: float = 0.0

    @property
    def stack(self) -> CeleryStack:
        return self.fleet.stack

    @property
    def errors(self) -> list[str]:
        return self.chatting.errors

    def runs_since(self, host: str, moment: float, dag: str | None = None) -> list[dict]:
        """Runs of the host's upload DAG (or ``dag``) queued after ``moment`` (epoch s)."""
        runs = self.stack.dag_runs(dag or dag_id(host))
        return [r for r in runs if r["queued_at"] and epoch(r["queued_at"]) > moment]

    def accepted_at(self, agent: str, session_id: str) -> float | None:
        return accepted_at(self.fleet.nexus, agent, session_id)

    def idle(self, host: str, timeout: float = 240) -> list[dict]:
        """Wait until no run of the host's upload DAG is queued or running; its runs."""

        def settled() -> list[dict] | None:
            runs = self.stack.dag_runs(dag_id(host))
            return None if any(r["state"] in ("queued", "running") for r in runs) else runs

        return self.stack.wait_for(f"{dag_id(host)} to be idle", settled, timeout)

    def complete(self, agent: str) -> tuple[str, float]:
        return archive_telegram(self.chatting.writer, agent)


@pytest.fixture(scope="module")
def watching(fleet: Fleet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Watching]:
    """Host a gains agents ``db``, ``db2`` and ``db3`` (databases OpenClaw 2026.9.6's doctor wrote; one
    completion scenario each), host b a JSONL-era agent ``live``; OpenClaw chats on both from now on
    (``db``'s main session, ``live``'s). Then both watch DAGs are unpaused and each host's first watch is
    running."""
    add_database_agents(fleet.hosts["a"], DB_AGENTS, tmp_path_factory.mktemp("db-agents"), seed=33)
    chatting = start_chatting(fleet.hosts["a"], fleet.hosts["b"], "db")
    state = Watching(fleet, chatting)
    try:
        state.unpaused = time.time()
        for host in HOSTS:
            fleet.stack.set_paused(False, watch_id(host))
        for host in HOSTS:
            fleet.stack.wait_for(
                f"{watch_id(host)}'s watch to run",
                lambda host=host: any(r["state"] == "running" for r in fleet.stack.dag_runs(watch_id(host))),
                180,
            )
        yield state
    finally:
        chatting.stop()


def test_live_appends_on_both_hosts_start_no_upload_run(watching):
    """IDLE_SECONDS of OpenClaw chatting on both hosts, while their watches poll and recycle (a watch ends
    after a minute here): no upload run on either host, no completions asset event."""
    since = time.time()
    time.sleep(IDLE_SECONDS)
    assert watching.errors == []
    for host in HOSTS:
        assert watching.runs_since(host, since) == [], f"an upload run started on host {host}"
        watches = watching.runs_since(host, watching.unpaused - 5, watch_id(host))
        assert watches and all(r["state"] in ("running", "success", "queued") for r in watches), watches
    events = watching.stack.api("GET", "/api/v2/assets/events?limit=100").json()["asset_events"]
    assert [e for e in events if e["uri"].startswith("openclaw://completions/")] == []
    print(f"\nidle {IDLE_SECONDS:.0f}s with live appends on both hosts: 0 upload runs")


def test_a_database_completion_on_one_host_reaches_nexus_through_its_watch(watching):
    """A session archived in host a's database: host a's watch signals it, session_upload_a uploads it, well
    within the cron (DATABASE_BOUND; the latency is printed); host b runs nothing. Where each task ran: the
    watch and the upload on host a's queue, by worker-a."""
    stack = watching.stack
    since = time.time()
    sid, committed = watching.complete("db")
    expected = rows(database(watching.chatting.writer.state_dir, "db"), sid)
    got = stack.wait_for(
        "the archived session at Nexus", lambda: watching.accepted_at("db", sid), DATABASE_BOUND + 60
    )
    latency = got - committed
    print(f"\nfleet (Celery), host a: database completion (archived_at) -> Nexus: {latency:.1f}s")
    assert latency <= DATABASE_BOUND

    watching.idle("a")
    (run,) = watching.runs_since("a", since)
    assert run["run_type"] == "asset_triggered" and run["state"] == "success", run
    assert run["note"] == "Uploaded 1 session across 1 agent"
    path = f"/api/v2/dags/{dag_id('a')}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    (event,) = stack.api("GET", path).json()["asset_events"]
    assert event["uri"] == "openclaw://completions/a"
    assert event["source_dag_id"] == watch_id("a")
    assert event["extra"]["completions"] == 1 and event["extra"]["agents"] == ["db"]
    assert watching.runs_since("b", since) == [], "host b's upload DAG ran"

    tis = stack.task_instances(run["dag_run_id"], dag_id("a"))
    uploads = [ti for ti in tis if ti["task_id"] == "deliver.upload"]
    assert [(ti["rendered_map_index"], ti["queue"]) for ti in uploads] == [(f"db/{sid}", "openclaw-a")]
    source = stack.task_instances(event["source_run_id"], watch_id("a"))
    assert [(ti["task_id"], ti["queue"], ti["state"]) for ti in source] == [
        ("watch", "openclaw-a", "success")
    ]
    ran = executed(stack.log_dir / "worker-a.log")
    assert (watch_id("a"), event["source_run_id"], "watch", -1) in ran
    payload = [r for r in watching.fleet.nexus.requests() if r["sessionId"] == sid]
    assert len(payload) == 1
    assert json.loads(watching.fleet.nexus.body(payload[0]["n"]))["transcript"].encode() == expected


def test_a_completion_while_the_hosts_worker_is_down_is_delivered_once_it_returns(watching):
    """Host a's worker stops (warm shutdown: its watch finishes first); a session completes meanwhile: nothing
    reaches Nexus while the worker is down, and once it is back its next watch signals the completion
    (it was never signalled), one run uploads it, and nothing is sent twice."""
    stack = watching.stack
    worker = stack.processes.pop("worker-a")
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(150)
    since = time.time()
    sid, committed = watching.complete("db2")
    time.sleep(30)
    assert watching.accepted_at("db2", sid) is None, "delivered while host a's worker was down"
    assert watching.runs_since("a", since) == []
    stack._launch("worker-a", list(watching.fleet.launched["worker-a"]))  # as the stack started it
    got = stack.wait_for("the session at Nexus", lambda: watching.accepted_at("db2", sid), 300)
    print(f"\nfleet (Celery), host a's worker down 30 s: completion -> Nexus {got - committed:.1f}s")
    watching.idle("a")
    runs = watching.runs_since("a", since)
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], runs
    received(watching.fleet.nexus)  # every accepted upload once


def running_watch(stack: CeleryStack, host: str) -> dict | None:
    """The host's watch task instance while it runs (REST), else None."""
    for run in stack.dag_runs(watch_id(host), state="running"):
        for ti in stack.task_instances(run["dag_run_id"], watch_id(host)):
            if ti["state"] == "running":
                return ti
    return None


def task_process(ti_id: str) -> int | None:
    """The pid of the process running the task instance: Airflow's task runner titles it
    ``airflow worker -- <ti id>``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if title.startswith("airflow worker -- ") and ti_id in title:
                return int(entry.name)
    return None


def test_a_watch_killed_mid_poll_is_followed_by_the_next_one_and_nothing_is_lost(watching):
    """The process running host a's watch task is SIGKILLed mid-poll (the OOM killer, a lost host): that
    task instance fails, the next continuous run watches, and a session completed afterwards is sent once."""
    stack = watching.stack
    ti = stack.wait_for("host a's watch to run", lambda: running_watch(stack, "a"), 180)
    pid = stack.wait_for("its task process", lambda: task_process(ti["id"]), 60)
    os.kill(pid, signal.SIGKILL)
    killed_run = ti["dag_run_id"]
    stack.wait_for(
        "the killed watch's run to end",
        lambda: stack.dag_run(killed_run, watch_id("a"))["state"] in ("failed", "success"),
        180,
    )
    (after,) = stack.task_instances(killed_run, watch_id("a"))
    assert after["state"] == "failed", after
    stack.wait_for("the next watch", lambda: (t := running_watch(stack, "a")) and t["id"] != ti["id"], 180)
    since = time.time()
    sid, committed = watching.complete("db3")
    got = stack.wait_for(
        "the session at Nexus", lambda: watching.accepted_at("db3", sid), DATABASE_BOUND + 60
    )
    print(f"\nfleet (Celery), after a killed watch: completion -> Nexus {got - committed:.1f}s")
    watching.idle("a")
    assert [r["state"] for r in watching.runs_since("a", since)] == ["success"]
    received(watching.fleet.nexus)  # every accepted upload once


def test_the_api_key_is_nowhere(fleet, watching):
    outputs = [json.dumps([(h.run, h.task_instances, h.job_result) for h in fleet.hosts.values()])]
    assert fleet.stack.leaks(API_KEY, *outputs) == []
