"""docker-compose.yaml's topology without Docker: Airflow on PostgreSQL with the CeleryExecutor, Redis as
the broker, one `airflow celery worker` and a triggerer, each started with exactly the command of its
compose service, and (as in compose) only the worker has the Nexus Connection, only the worker and the
triggerer the OpenClaw state dir; one full manual run of `session_upload` against the Nexus stand-in.

One stack per module: the run happens once (in the fixture), each test checks one part of its outcome.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.celery.support import executed, received, sessions_of, snapshot_tree
from tools.demo.sample_state import make_state
from tools.stacks.airflow_stack import DAG_ID
from tools.stacks.celery_stack import (
    COMPONENTS,
    WORKER,
    CeleryStack,
    celery_stack,
    deployment_env,
    postgres_database,
    worker_env,
)
from tools.stacks.sandbox import API_KEY, BIN
from tools.standins.nexus import NexusStandin

AGENTS = ["main", "research"]
# The components whose start environment /proc/<pid>/environ still shows (the api-server and the Celery
# worker set a process title over it).
ENVIRON_READABLE = ("triggerer", "scheduler", "dag-processor")
COMPLETED = 3


@dataclass
class Outcome:
    stack: CeleryStack
    made: dict
    before: dict[str, dict[str, bytes]]
    after: dict[str, dict[str, bytes]]
    received: dict[tuple[str, str], bytes]
    run: dict
    task_instances: list[dict]
    job_result: dict
    launched: dict[str, list[str]]
    environ: dict[str, dict[str, str]]
    triggerer_check: str
    leaks: list[str]
    timings: dict[str, float]


@pytest.fixture(scope="module")
def outcome(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    root = tmp_path_factory.mktemp("celery-run")
    state_dir = root / "openclaw"
    made = make_state(state_dir, AGENTS, completed=COMPLETED)
    before = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in AGENTS}
    timings: dict[str, float] = {}
    started = time.monotonic()
    with (
        NexusStandin(api_key=API_KEY, record_dir=root / "nexus") as nexus,
        postgres_database("session_upload_celery") as database,
    ):
        # As in docker-compose.yaml: the Connection (the key) goes to the worker only, the state dir to the
        # worker and (celery_stack's default: the default worker's) to the triggerer.
        workers = {"celery-worker": (list(WORKER), worker_env(state_dir, nexus.url, API_KEY))}
        stack = celery_stack(root / "airflow", deployment_env(), database, workers=workers)
        with stack:
            timings["stack up"] = time.monotonic() - started
            launched = {name: list(process.args) for name, process in stack.processes.items()}
            environ = {name: _environ(stack.processes[name].pid) for name in ENVIRON_READABLE}
            stack.set_paused(False)
            run_id = stack.trigger()
            run = stack.wait_for_run(run_id, timeout=360)
            timings["run"] = time.monotonic() - started - timings["stack up"]
            task_instances = stack.task_instances(run_id)
            job_result = stack.xcom(run_id, "job_result")
            check = stack.airflow("jobs", "check", "--job-type", "TriggererJob", "--limit", "0", check=False)
            triggerer_check = f"{check.returncode} {check.stdout}{check.stderr}"
        got = received(nexus)
        after = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in AGENTS}
        # Stopped: every log is flushed. Search them, the PostgreSQL DB and the Redis keys for the key.
        outputs = [
            json.dumps(run),
            json.dumps(task_instances),
            json.dumps(job_result),
            nexus.requests_file.read_text(),
        ]
        leaks = stack.leaks(API_KEY, *outputs)
    timings["total"] = time.monotonic() - started
    print(f"\nCelery run: {', '.join(f'{k} {v:.0f}s' for k, v in timings.items())}; home {stack.home}")
    return Outcome(
        stack,
        made,
        before,
        after,
        got,
        run,
        task_instances,
        job_result,
        launched,
        environ,
        triggerer_check,
        leaks,
        timings,
    )


def _environ(pid: int) -> dict[str, str]:
    """The environment a component process was started with (/proc/<pid>/environ); the Connection's value
    (the key) masked, so that no assertion message can print it."""
    raw = Path(f"/proc/{pid}/environ").read_bytes().decode(errors="replace")
    env = dict(item.split("=", 1) for item in raw.split("\0") if "=" in item)
    if "AIRFLOW_CONN_NEXUS_DEFAULT" in env:
        env["AIRFLOW_CONN_NEXUS_DEFAULT"] = "***"
    return env


def test_each_component_ran_its_compose_command(outcome):
    """The same `airflow …` arguments as docker-compose.yaml (tests/integrity/test_compose.py checks
    the compose side against the same COMPONENTS)."""
    assert outcome.launched == {name: [str(BIN / "airflow"), *args] for name, args in COMPONENTS.items()}


def test_state_dir_and_key_reach_only_the_components_that_need_them(outcome):
    """As in docker-compose.yaml: the triggerer (the completion watcher's host) was started with the
    worker's state dir and no key; the scheduler and dag-processor with neither (worker_env() gave the
    worker both). The triggerer is alive."""
    state_dir = str(outcome.stack.home.parent / "openclaw")  # the fixture's, in the worker's worker_env()
    for name in ENVIRON_READABLE:
        env = outcome.environ[name]
        assert env.get("AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor", f"{name}: environ not readable"
        assert "AIRFLOW_CONN_NEXUS_DEFAULT" not in env, name
        assert env.get("OPENCLAW_STATE_DIR") == (state_dir if name == "triggerer" else None), name
    assert outcome.triggerer_check.startswith("0 ") and "Found one alive job." in outcome.triggerer_check


def test_run_is_green_and_every_task_instance_succeeded(outcome):
    assert outcome.run["state"] == "success", outcome.stack.tail("scheduler")
    states = {(ti["task_id"], ti["map_index"]): ti["state"] for ti in outcome.task_instances}
    assert set(states.values()) == {"success"}, states
    count = len(AGENTS) * COMPLETED
    assert sorted(states) == sorted(
        [("find_agents", -1), ("select", -1), ("job_result", -1)]
        + [("discover", i) for i in range(len(AGENTS))]
        + [(task, i) for task in ("deliver.upload", "deliver.archive") for i in range(count)]
    )


def test_every_task_ran_through_the_celery_worker(outcome):
    """The executor is Celery, and the worker's own log names each task instance it executed."""
    assert {ti["executor"] for ti in outcome.task_instances} <= {None, "CeleryExecutor"}
    assert {ti["queue"] for ti in outcome.task_instances} == {"default"}
    ran = executed(outcome.stack.log_dir / "celery-worker.log")
    run_id = outcome.run["dag_run_id"]
    assert sorted(ran) == sorted(
        (DAG_ID, run_id, ti["task_id"], ti["map_index"]) for ti in outcome.task_instances
    )


def test_nexus_received_each_completed_transcript_byte_for_byte(outcome):
    expected = {
        (agent, item["sessionId"]): outcome.before[agent][item["file"]]
        for agent in AGENTS
        for item in outcome.made[agent]["completed"]
    }
    assert outcome.received == expected


def test_uploaded_files_are_archived_and_nothing_else_moved(outcome):
    for agent in AGENTS:
        before, after = outcome.before[agent], outcome.after[agent]
        for item in outcome.made[agent]["completed"]:
            assert item["file"] not in after
            assert after[f"archive/{item['sessionId']}.jsonl"] == before[item["file"]]
        for name in outcome.made[agent]["active"] + outcome.made[agent]["untouchable"]:
            assert after[name] == before[name], f"{agent}/{name} was touched"
        records = {name for name in after if name.startswith("archive/.copies/")}
        assert records == {
            f"archive/.copies/{item['sessionId']}.json" for item in outcome.made[agent]["completed"]
        }, "each copy has its record, which OpenClaw's backup keeps"
        assert len(after) - len(records) == len(before), sorted(set(after) ^ set(before))


def test_job_result(outcome):
    count = len(AGENTS) * COMPLETED
    assert outcome.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": f"Uploaded {count} sessions across {len(AGENTS)} agents",
        "itemsProcessed": count,
        "errors": [],
    }


def test_the_api_key_is_nowhere(outcome):
    """Not in any component or task log, the CLI output, the API answers, the stand-in's records, the
    PostgreSQL metadata DB (pg_dump) nor the Redis broker keys."""
    assert outcome.leaks == []
    assert (outcome.stack.home / "metadata-db.sql").stat().st_size > 0
    task_logs = list(Path(outcome.stack.home / "logs").rglob("*.log"))
    assert len(task_logs) >= len(outcome.task_instances), "the search covered the task logs"
