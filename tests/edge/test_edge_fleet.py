"""A fleet on Airflow's Edge executor, on one machine: the central site (api-server, scheduler, dag-processor;
embedded SQLite; executors LocalExecutor then EdgeExecutor, the Edge API on) and two ``airflow edge worker``
processes, each started as on a host of its own (``tools/stacks/edge_stack.py``: its own AIRFLOW_HOME, a
metadata database URL that points at nothing, the central site's URLs, the shared signing secret, the host's
state dir and the Connection). ``SESSION_UPLOAD_FLEET`` names ``"executor": "EdgeExecutor"`` for both
hosts, so each host's file tasks and its watch go to its own Edge worker (queue ``openclaw-<host>``);
``select`` and ``job_result`` run on the central site.

First a manual run of each host's upload DAG (upload + archive + JobResult), then each host's watch DAG:
OpenClaw chatting on both hosts starts no upload run, a session archived in host a's database (written by
OpenClaw 2026.9.6's doctor) reaches Nexus through host a's DAGs only, and one that completes while host a's
Edge worker is down is sent once when it is back. Where each task ran comes from the
central site's record of Edge jobs (which worker took each one) and the task instances' executor and queue.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.celery.support import FILE_TASKS, received
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
from tools.stacks.celery_stack import deployment_env, worker_env
from tools.stacks.edge_stack import NO_DATABASE, EdgeStack, EdgeWorker, edge_stack, forged_admin_token
from tools.stacks.sandbox import API_KEY
from tools.standins.nexus import NexusStandin

FLEET = json.dumps([{"host": host, "executor": "EdgeExecutor"} for host in HOSTS])
DATABASE_BOUND = 120.0  # against gross regressions (one sample); the goal is the benchmark's
IDLE_SECONDS = 60.0


@dataclass
class EdgeFleet:
    stack: EdgeStack
    nexus: NexusStandin
    hosts: dict[str, Host]
    received: dict[tuple[str, str], bytes]
    jobs: list[dict]  # the central site's Edge jobs after the manual runs
    chatting: Chatting

    def runs_since(self, dag: str, moment: float) -> list[dict]:
        return [r for r in self.stack.dag_runs(dag) if r["queued_at"] and epoch(r["queued_at"]) > moment]

    def jobs_of(self, dag: str, run_id: str) -> dict[tuple[str, int], str]:
        """(task_id, map_index) -> the Edge worker that took the job, from the central site's records."""
        found = self.stack.api("GET", f"/edge_worker/ui/jobs?dag_id_pattern={dag}").json()["jobs"]
        return {(j["task_id"], j["map_index"]): j["edge_worker"] for j in found if j["run_id"] == run_id}


@pytest.fixture(scope="module")
def edge_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EdgeFleet]:
    root = tmp_path_factory.mktemp("edge-fleet")
    hosts = make_hosts(root)
    # Host a also has agents db and db2: databases OpenClaw's doctor wrote (live sessions, nothing completed).
    add_database_agents(hosts["a"], ["db", "db2"], root / "db-agent", seed=44)
    started = time.monotonic()
    with NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus:
        workers = {
            f"edge-{name}": EdgeWorker(
                queue=f"openclaw-{name}",
                hostname=f"host-{name}",
                env=worker_env(host.state_dir, nexus.url, API_KEY),  # as a Celery host worker's
            )
            for name, host in hosts.items()
        }
        stack = edge_stack(
            root / "airflow",
            deployment_env(SESSION_UPLOAD_FLEET=FLEET, SESSION_UPLOAD_WATCH_MINUTES="1"),
            workers,
            ready_dag_id=dag_id("b"),
        )
        with stack:
            stack.wait_for(
                "both Edge workers online",
                lambda: (
                    set(stack.edge_worker_states()) == {"host-a", "host-b"}
                    and "starting" not in stack.edge_worker_states().values()
                ),
                120,
            )
            up = time.monotonic() - started
            for name in hosts:
                stack.wait_until_ready(60, dag_id(name))
                stack.set_paused(False, dag_id(name))
            run_ids = {name: stack.trigger(dag_id=dag_id(name)) for name in hosts}
            for name, host in hosts.items():
                host.run = stack.wait_for_run(run_ids[name], dag_id(name), timeout=360)
                host.task_instances = stack.task_instances(run_ids[name], dag_id(name))
                host.job_result = stack.xcom(run_ids[name], "job_result", dag_id=dag_id(name))
                host.snapshot_after()
            got = received(nexus)
            jobs = stack.api("GET", "/edge_worker/ui/jobs").json()["jobs"]
            print(
                f"\nEdge fleet: stack and workers up {up:.0f}s,"
                f" both runs {time.monotonic() - started - up:.0f}s"
            )
            chatting = start_chatting(hosts["a"], hosts["b"], "db")
            try:
                yield EdgeFleet(stack, nexus, hosts, got, jobs, chatting)
            finally:
                chatting.stop()


def test_each_hosts_run_is_green_with_its_jobresult(edge_fleet):
    for host in edge_fleet.hosts.values():
        assert host.run["state"] == "success", edge_fleet.stack.tail("scheduler")
        assert {ti["state"] for ti in host.task_instances} == {"success"}
        assert host.job_result["success"] is True and host.job_result["errors"] == []
        assert host.job_result["message"] == MESSAGES[host.name]
        assert host.job_result["itemsProcessed"] == sum(len(host.made[a]["completed"]) for a in host.agents)


def test_file_tasks_ran_on_their_hosts_edge_worker_and_the_rest_centrally(edge_fleet):
    """The task instances' executor and queue, and which Edge worker took each job (the central site's
    record): every file task of host <h> on EdgeExecutor, queue openclaw-<h>, worker host-<h>; select and
    job_result on the local executor, never an Edge job."""
    for name, host in edge_fleet.hosts.items():
        run_id = host.run["dag_run_id"]
        took = {
            (j["task_id"], j["map_index"]): j["edge_worker"]
            for j in edge_fleet.jobs
            if j["dag_id"] == dag_id(name) and j["run_id"] == run_id
        }
        for ti in host.task_instances:
            key = (ti["task_id"], ti["map_index"])
            if ti["task_id"] in FILE_TASKS:
                assert (ti["executor"], ti["queue"]) == ("EdgeExecutor", f"openclaw-{name}"), ti
                assert took.get(key) == f"host-{name}", (key, took)
            else:
                assert ti["executor"] in (None, "LocalExecutor"), ti
                assert key not in took


def test_each_hosts_sessions_reached_nexus_and_were_archived_in_its_own_state_dir(edge_fleet):
    expected: dict[tuple[str, str], bytes] = {}
    for host in edge_fleet.hosts.values():
        for agent in host.agents:
            for item in host.made[agent]["completed"]:
                expected[(agent, item["sessionId"])] = host.before[agent][item["file"]]
                assert item["file"] not in host.after[agent]
                assert (
                    host.after[agent][f"archive/{item['sessionId']}.jsonl"]
                    == host.before[agent][item["file"]]
                )
            for untouched in host.made[agent]["active"] + host.made[agent]["untouchable"]:
                assert host.after[agent][untouched] == host.before[agent][untouched]
    assert edge_fleet.received == expected


def test_edge_workers_run_without_a_metadata_database(edge_fleet):
    """Each Edge worker's database URL points at a closed port (everything above ran without one), and its
    own home holds no database file."""
    stack = edge_fleet.stack
    for name in stack.edge_workers:
        assert stack.worker_env(name)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == NO_DATABASE
        assert not list(stack.worker_home(name).rglob("*.db")), name


def test_live_appends_start_no_upload_run_and_a_database_completion_goes_through_its_hosts_watch(edge_fleet):
    """Both watch DAGs unpaused: IDLE_SECONDS of OpenClaw chatting on both hosts start no upload run; then a
    session archived in host a's database reaches Nexus within DATABASE_BOUND (printed) through one
    asset-triggered run of session_upload_a, its watch and upload done by host a's Edge worker; host b runs
    nothing."""
    stack = edge_fleet.stack
    for name in HOSTS:
        stack.set_paused(False, watch_id(name))
    for name in HOSTS:
        stack.wait_for(
            f"{watch_id(name)} to run",
            lambda name=name: any(r["state"] == "running" for r in stack.dag_runs(watch_id(name))),
            180,
        )
    since = time.time()
    time.sleep(IDLE_SECONDS)
    assert edge_fleet.chatting.errors == []
    for name in HOSTS:
        assert edge_fleet.runs_since(dag_id(name), since) == [], f"an upload run started on host {name}"

    since = time.time()
    sid, committed = archive_telegram(edge_fleet.chatting.writer, "db")
    expected = rows(database(edge_fleet.hosts["a"].state_dir, "db"), sid)
    got = stack.wait_for(
        "the archived session at Nexus", lambda: accepted_at(edge_fleet.nexus, "db", sid), DATABASE_BOUND + 60
    )
    print(f"\nfleet (Edge), host a: database completion (archived_at) -> Nexus: {got - committed:.1f}s")
    assert got - committed <= DATABASE_BOUND
    stack.wait_for(
        "session_upload_a to be idle",
        lambda: all(r["state"] in ("success", "failed") for r in stack.dag_runs(dag_id("a"))),
        240,
    )
    (run,) = edge_fleet.runs_since(dag_id("a"), since)
    assert (run["run_type"], run["state"], run["note"]) == (
        "asset_triggered",
        "success",
        "Uploaded 1 session across 1 agent",
    )
    assert edge_fleet.runs_since(dag_id("b"), since) == []
    path = f"/api/v2/dags/{dag_id('a')}/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
    (event,) = stack.api("GET", path).json()["asset_events"]
    assert (event["uri"], event["source_dag_id"]) == ("openclaw://completions/a", watch_id("a"))
    took = edge_fleet.jobs_of(dag_id("a"), run["dag_run_id"])
    assert took[("deliver.upload", 0)] == "host-a" and set(took.values()) == {"host-a"}, took
    assert edge_fleet.jobs_of(watch_id("a"), event["source_run_id"]) == {("watch", -1): "host-a"}
    (record,) = [r for r in edge_fleet.nexus.requests() if r["sessionId"] == sid]
    assert json.loads(edge_fleet.nexus.body(record["n"]))["transcript"].encode() == expected
    received(edge_fleet.nexus)  # every accepted upload once


def test_a_completion_while_the_hosts_edge_worker_is_down_is_delivered_once_it_returns(edge_fleet):
    """Host a's Edge worker stops (SIGTERM) and a session completes in host a's database meanwhile: nothing
    reaches Nexus while it is down; once it is back, its next watch signals the completion, one run uploads
    it, nothing is sent twice."""
    stack = edge_fleet.stack
    stack.stop_worker("edge-a", timeout=150)
    since = time.time()
    sid, committed = archive_telegram(edge_fleet.chatting.writer, "db2")
    time.sleep(30)
    assert accepted_at(edge_fleet.nexus, "db2", sid) is None, "delivered while host a's Edge worker was down"
    assert edge_fleet.runs_since(dag_id("a"), since) == []
    stack.launch_worker("edge-a")
    got = stack.wait_for("the session at Nexus", lambda: accepted_at(edge_fleet.nexus, "db2", sid), 360)
    print(f"\nfleet (Edge), host a's worker down 30 s: completion -> Nexus {got - committed:.1f}s")
    stack.wait_for(
        "session_upload_a to be idle",
        lambda: all(r["state"] in ("success", "failed") for r in stack.dag_runs(dag_id("a"))),
        240,
    )
    runs = edge_fleet.runs_since(dag_id("a"), since)
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], runs
    received(edge_fleet.nexus)  # every accepted upload once


def test_the_api_key_is_nowhere(edge_fleet):
    outputs = [json.dumps([(h.run, h.task_instances, h.job_result) for h in edge_fleet.hosts.values()])]
    assert edge_fleet.stack.leaks(API_KEY, *outputs) == []


def test_the_rest_api_refuses_an_admin_token_minted_with_the_edge_hosts_secret(edge_fleet):
    """The central site signs Airflow's own tokens with its private key (``[api_auth] jwt_private_key_path``),
    so the shared secret the Edge workers hold signs Edge API requests only: an admin token minted with it is
    refused by the REST API (without the key, the same token was accepted: 200, README), while the workers
    above ran every task."""
    stack = edge_fleet.stack
    assert stack.settings["AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH"]
    forged = forged_admin_token(stack.jwt_secret, stack.username)
    response = stack._http.get(
        f"{stack.url}/api/v2/dags", headers={"Authorization": f"Bearer {forged}"}, timeout=30
    )
    assert response.status_code in (401, 403), response.text[:300]
    assert stack.api("GET", "/api/v2/dags", check=False).status_code == 200, "the user's own token works"
    assert "JWT_PRIVATE_KEY_PATH" not in " ".join(stack.worker_env("edge-a")), "edge hosts never hold the key"
