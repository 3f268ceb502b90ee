"""A fleet on one machine: SESSION_UPLOAD_FLEET with hosts a and b gives the DAGs session_upload_a and
session_upload_b, whose file tasks (find_agents, discover, deliver.upload, deliver.archive) are pinned to
the Celery queues openclaw-a / openclaw-b. Three workers, each with its own node name:

- worker-a: `celery worker --queues openclaw-a`, OPENCLAW_STATE_DIR = host a's state dir
- worker-b: `celery worker --queues openclaw-b`, OPENCLAW_STATE_DIR = host b's state dir
- worker-default: `celery worker --queues default` (select, job_result), with neither a state dir nor
  the Nexus Connection

Both hosts have an agent `main` (different sessions), so a task that ran on the wrong worker would show.
Each host's sessions must be uploaded and archived by its own worker, in its own state dir, only.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.celery.support import (
    DEFAULT_QUEUE_TASKS,
    FILE_TASKS,
    executed,
    received,
    sessions_of,
    snapshot_tree,
)
from tools.demo.sample_state import make_state
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

# host -> (agents, completed sessions per agent, seed): both hosts have an agent "main".
HOSTS = {"a": (["main", "alpha"], 2, 11), "b": (["main"], 3, 22)}
MESSAGES = {"a": "Uploaded 4 sessions across 2 agents", "b": "Uploaded 3 sessions across 1 agent"}
FLEET = json.dumps([{"host": host} for host in HOSTS])


def dag_id(host: str) -> str:
    return f"session_upload_{host}"


@dataclass
class Host:
    name: str
    agents: list[str]
    state_dir: Path
    made: dict
    before: dict[str, dict[str, bytes]]
    after: dict[str, dict[str, bytes]] | None = None
    run: dict | None = None
    task_instances: list[dict] | None = None
    job_result: dict | None = None

    def expected(self) -> dict[tuple[str, str], bytes]:
        """(agentId, sessionId) -> transcript bytes of every completed session on this host."""
        return {
            (agent, item["sessionId"]): self.before[agent][item["file"]]
            for agent in self.agents
            for item in self.made[agent]["completed"]
        }


@dataclass
class Fleet:
    stack: CeleryStack
    hosts: dict[str, Host]
    received: dict[tuple[str, str], bytes]
    launched: dict[str, list[str]]
    dag_ids: list[str]
    nowhere: Path
    leaks: list[str]
    assets_before_runs: set[str]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Fleet:
    root = tmp_path_factory.mktemp("celery-fleet")
    hosts: dict[str, Host] = {}
    for name, (agents, completed, seed) in HOSTS.items():
        state_dir = root / f"host-{name}" / "openclaw"
        made = make_state(state_dir, agents, completed=completed, seed=seed)
        before = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in agents}
        hosts[name] = Host(name, agents, state_dir, made, before)
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
            deployment_env(SESSION_UPLOAD_FLEET=FLEET),
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
            host.after = {agent: snapshot_tree(sessions_of(host.state_dir, agent)) for agent in host.agents}
        outputs = [json.dumps([(h.run, h.task_instances, h.job_result) for h in hosts.values()])]
        leaks = stack.leaks(API_KEY, *outputs)
    print(
        f"\nFleet: stack up {up:.0f}s, both runs {ran:.0f}s, total {time.monotonic() - started:.0f}s; "
        f"home {stack.home}"
    )
    return Fleet(stack, hosts, got, launched, dag_ids, nowhere, leaks, assets_before_runs)


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
    assert sorted(fleet.dag_ids) == [dag_id(name) for name in HOSTS], "no plain session_upload DAG"


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
    a, b = fleet.hosts["a"], fleet.hosts["b"]
    assert not (b.state_dir / "agents" / "alpha").exists()
    assert {p.name for p in (a.state_dir / "agents").iterdir() if p.is_dir()} == {"main", "alpha"}
    assert {p.name for p in (b.state_dir / "agents").iterdir() if p.is_dir()} == {"main"}


def test_the_api_key_is_nowhere(fleet):
    assert fleet.leaks == []
