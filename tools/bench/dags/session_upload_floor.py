"""Airflow's floor for the benchmark: the session_upload DAG's mapped shape with tasks that do nothing.

Same tasks, same mapping (agents → sessions → [upload → archive] task group → all_done reducer), same
number of task instances; every task only passes small dicts along, one XCom each, as session_upload's
tasks do (a ``-> dict`` task would infer ``multiple_outputs`` and push one more XCom per key). Loaded
only by `tools/bench e2e`.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task, task_group


@task
def find_agents(params: dict) -> list[str]:
    """The agent names, as find_agents would list them."""
    return [f"agent-{n:02d}" for n in range(params["agents"])]


@task(multiple_outputs=False, map_index_template="{{ task.op_kwargs['agent_id'] }}")
def discover(agent_id: str, params: dict) -> dict:
    """This agent's share of the sessions, as discover would return them."""
    per_agent = params["sessions"] // params["agents"]
    return {"agentId": agent_id, "sessions": [{"agentId": agent_id, "n": n} for n in range(per_agent)]}


@task
def select(scans: list[dict]) -> list[dict]:
    """Flatten, as select does."""
    return [s for scan in scans for s in scan["sessions"]]


@task(
    multiple_outputs=False,
    map_index_template="{{ task.op_kwargs['session']['agentId'] }}/{{ task.op_kwargs['session']['n'] }}",
)
def upload(session: dict) -> dict:
    """Nothing: the floor."""
    return session


@task(multiple_outputs=False)
def archive(session: dict, receipt: dict) -> dict:
    """Nothing: the floor."""
    return receipt


@task_group
def deliver(session: dict) -> None:
    """The same [upload → archive] mapped task group."""
    # Airflow's task stubs type a call with the function's own parameters: an XComArg standing for a
    # value is an arg-type error to them.
    archive(session=session, receipt=upload(session=session))  # type: ignore[arg-type]


@task(trigger_rule="all_done")
def job_result() -> None:
    """Nothing: the floor."""


@dag(
    dag_id="session_upload_floor",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["benchmark"],
    params={"agents": Param(10, type="integer"), "sessions": Param(1000, type="integer")},
)
def session_upload_floor():
    """A no-op DAG of session_upload's shape: what Airflow itself costs per run."""
    # Airflow's task stubs know neither the arguments a call fills from the context (find_agents'
    # params: call-arg, and misc: the note on Task.__call__ that comes with it) nor XComArgs standing for
    # values (select's scans: arg-type).
    agents = find_agents()  # type: ignore[call-arg, misc]
    sessions = select(discover.expand(agent_id=agents))  # type: ignore[arg-type]
    deliver.expand(session=sessions) >> job_result()


session_upload_floor()
