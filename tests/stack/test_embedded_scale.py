"""The embedded default (SQLite + LocalExecutor, tools.stacks.airflow_stack.EMBEDDED_SQLITE) carries a run of
200 completed sessions (407 task instances) to a green end on 2 cores, with its triggerer writing to the
same SQLite file about every second. With Airflow's own defaults the scheduler died of `database is
locked` at this size (see docs/running.md). No task is retried (no spurious retries from lock waits) and
Nexus gets exactly one request per session.

The run's duration is a measured figure, printed, not asserted: the timeout is a generous bound (900 s)
so that a loaded machine does not fail the test; docs/running.md records the measured times."""

from __future__ import annotations

import time

SESSIONS_PER_AGENT = 50
AGENTS = [f"scale-{n}" for n in range(4)]


def test_two_hundred_sessions_complete_on_the_embedded_default(live):
    stack = live.stack
    made = {agent_id: live.make_agent(agent_id, SESSIONS_PER_AGENT) for agent_id in AGENTS}

    started = time.monotonic()
    run_id = stack.trigger({"agents": AGENTS, "settle_minutes": 5})
    run = stack.wait_for_run(run_id, timeout=900)
    elapsed = time.monotonic() - started
    print(f"\n200 sessions: run {run['state']} in {elapsed:.0f}s")

    assert run["state"] == "success", stack.tail("scheduler")
    for agent_id, agent in made.items():
        assert live.accepted(agent_id) == {item["sessionId"]: item["bytes"] for item in agent.completed}
        assert set(agent.archived()) == {f"{item['sessionId']}.jsonl" for item in agent.completed}
        assert not any((agent.sessions_dir / item["file"]).exists() for item in agent.completed)
    assert stack.xcom(run_id, "job_result") == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 200 sessions across 4 agents",
        "itemsProcessed": 200,
        "errors": [],
    }
    instances = stack.task_instances(run_id)
    states = {}
    for ti in instances:
        states.setdefault(ti["task_id"], []).append(ti["state"])
    assert {task: len(s) for task, s in states.items()} == {
        "find_agents": 1,
        "discover": 4,
        "select": 1,
        "deliver.upload": 200,
        "deliver.archive": 200,
        "job_result": 1,
    }
    assert {state for s in states.values() for state in s} == {"success"}
    retried = {(ti["task_id"], ti["map_index"]): ti["try_number"] for ti in instances if ti["try_number"] > 1}
    assert retried == {}, "no task instance needed a second try"
    requests = sum(len(live.received(agent_id)) for agent_id in AGENTS)
    assert requests == 200, "one request per session: no upload was retried inside its task either"
    assert set(stack.processes) == {"api-server", "scheduler", "dag-processor", "triggerer"}
    for log in stack.processes:
        assert "database is locked" not in (stack.log_dir / f"{log}.log").read_text(errors="replace")
    live.assert_no_leak()
