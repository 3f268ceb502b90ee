"""The DAG the way Airflow users run it: under the scheduler, triggered through the REST API, one failed
session retried with Clear, and backfills over a past window (see docs/running.md)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

from tests.stack.conftest import SCHEDULED_AGENT, snapshot_tree
from tools.demo.sample_state import HOUR

DAG = "/api/v2/dags/session_upload"


def test_scheduled_run_uploads_and_archives_what_is_older_than_its_interval_end(live):
    done = live.scheduled
    run, agent = done["run"], done["agent"]

    assert run["run_type"] == "scheduled"
    assert run["state"] == "success", live.stack.tail("scheduler")
    start = datetime.fromisoformat(run["data_interval_start"])
    end = datetime.fromisoformat(run["data_interval_end"])
    queued = datetime.fromisoformat(run["queued_at"])
    assert end - start == timedelta(hours=1)
    # catchup=False: the latest complete interval when it was unpaused, and nothing older.
    assert end <= queued < end + timedelta(hours=1)
    assert all(datetime.fromisoformat(r["logical_date"]) >= start for r in done["runs"])
    assert all(item["mtime"] < end.timestamp() for item in agent.completed)

    # Nexus got each transcript once, byte for byte; each is now archive/<sessionId>.jsonl, unchanged.
    assert [r["status"] for r in done["received"]] == [201] * len(agent.completed)
    got = {r["sessionId"]: r["transcript"] for r in done["received"]}
    assert got == {item["sessionId"]: item["bytes"] for item in agent.completed}
    for item in agent.completed:
        assert item["file"] not in done["after"]
        content, mtime_ns = done["after"][f"archive/{item['sessionId']}.jsonl"]
        assert content == item["bytes"] and mtime_ns == done["before"][item["file"]][1]
    for name in agent.active + agent.untouchable:
        assert done["after"][name] == done["before"][name], f"{name} was touched"

    assert done["job_result"] == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 3 sessions across 1 agent",
        "itemsProcessed": 3,
        "errors": [],
    }
    # The scheduler's listener (openclaw_nexus.run_notes) gave the run its JobResult message as its note.
    assert run["note"] == "Uploaded 3 sessions across 1 agent"
    labels = {ti["rendered_map_index"] for ti in done["tasks"]["deliver.upload"].values()}
    assert labels == {f"{SCHEDULED_AGENT}/{item['sessionId']}" for item in agent.completed}
    live.assert_no_leak()


def test_rest_trigger_dry_run_then_one_agent(live):
    stack = live.stack
    one = live.make_agent("rest-one", 3)
    other = live.make_agent("rest-other", 2)
    before = snapshot_tree(live.state_dir / "agents")

    # As the trigger form or any REST client sends it: a manual run has no logical date in Airflow 3.
    dry = stack.trigger({"agents": ["rest-one"], "dry_run": True, "settle_minutes": 5})
    run = stack.wait_for_run(dry)
    assert run["state"] == "success" and run["run_type"] == "manual"
    assert run["logical_date"] is None
    assert stack.xcom(dry, "job_result") == {
        "jobId": "session_upload",
        "success": True,
        "message": "Dry run: would upload 3 sessions across 1 agent",
        "itemsProcessed": 0,
        "errors": [],
    }
    assert live.received("rest-one") == [] and live.received("rest-other") == []
    assert snapshot_tree(live.state_dir / "agents") == before, "a dry run moves nothing"
    tasks = live.task_states(dry)
    assert {ti["rendered_map_index"] for ti in tasks["discover"].values()} == {"rest-one"}
    assert "deliver.upload" not in tasks or all(
        ti["state"] == "skipped" for ti in tasks["deliver.upload"].values()
    )

    real = stack.trigger({"agents": ["rest-one"], "settle_minutes": 5})
    run = stack.wait_for_run(real)
    assert run["state"] == "success", stack.tail("scheduler")
    assert live.accepted("rest-one") == {item["sessionId"]: item["bytes"] for item in one.completed}
    assert live.received("rest-other") == [], "only the requested agent"
    assert set(one.archived()) == {f"{item['sessionId']}.jsonl" for item in one.completed}
    assert other.archived() == {}
    assert snapshot_tree(other.sessions_dir) == {
        name[len("rest-other/sessions/") :]: value
        for name, value in before.items()
        if name.startswith("rest-other/sessions/")
    }
    result = stack.xcom(real, "job_result")
    assert result["message"] == "Uploaded 3 sessions across 1 agent" and result["success"] is True
    live.assert_no_leak()


def test_clear_one_failed_session_reruns_only_it_and_what_follows(live):
    stack, nexus = live.stack, live.nexus
    agent = live.make_agent("retry-agent", 4)
    rejected = agent.completed[1]
    nexus.set_faults(
        [
            {
                "match": {"sessionId": rejected["sessionId"]},
                "times": None,
                "action": {"status": 400, "body": '{"error": "schema v3 unsupported"}'},
            }
        ]
    )
    run_id = stack.trigger({"agents": ["retry-agent"], "settle_minutes": 5})
    run = stack.wait_for_run(run_id)
    assert run["state"] == "failed"
    first = live.task_states(run_id)
    label = f"retry-agent/{rejected['sessionId']}"
    index = next(i for i, ti in first["deliver.upload"].items() if ti["rendered_map_index"] == label)
    assert first["deliver.upload"][index]["state"] == "failed"
    assert first["deliver.archive"][index]["state"] == "upstream_failed"
    assert first["job_result"][-1]["state"] == "failed"
    errors = stack.xcom(run_id, "job_result")["errors"]
    assert [(e["sessionId"], e["stage"]) for e in errors] == [(rejected["sessionId"], "upload")]
    assert "HTTP 400" in errors[0]["reason"]
    assert run["note"] == "Uploaded 3 sessions across 1 agent", "a red run's note: its JobResult message"

    # Nexus is fixed; in the UI: the failed mapped instance → Clear → with "Downstream". The UI sends:
    nexus.clear_faults()
    body = {
        "dry_run": False,
        "task_ids": [["deliver.upload", index]],
        "dag_run_id": run_id,
        "include_upstream": False,
        "include_downstream": True,
        "include_future": False,
        "include_past": False,
        "only_failed": False,
        "reset_dag_runs": True,
    }
    cleared = stack.api("POST", f"{DAG}/clearTaskInstances", body).json()["task_instances"]
    assert sorted((ti["task_id"], ti["map_index"]) for ti in cleared) == sorted(
        [("deliver.upload", index), ("deliver.archive", index), ("job_result", -1)]
    )
    run = stack.wait_for(
        "the cleared run to finish",
        lambda: (r := stack.dag_run(run_id))["state"] in ("success", "failed") and r,
    )
    assert run["state"] == "success", stack.tail("scheduler")
    assert run["note"] == "Uploaded 4 sessions across 1 agent", "the note follows the run's latest JobResult"

    after = live.task_states(run_id)
    rerun = {("deliver.upload", index), ("deliver.archive", index), ("job_result", -1)}
    for task_id, instances in first.items():
        for map_index, ti in instances.items():
            now = after[task_id][map_index]
            if (task_id, map_index) in rerun:
                assert now["state"] == "success"
                assert now["try_number"] == ti["try_number"] + 1, (task_id, map_index)
            else:
                assert (now["state"], now["try_number"]) == (ti["state"], ti["try_number"]), (
                    task_id,
                    map_index,
                )

    # Each session reached Nexus once; the rejected one after its 400, and nothing twice.
    statuses = [(r["sessionId"], r["status"]) for r in live.received("retry-agent")]
    assert statuses.count((rejected["sessionId"], 400)) == 1
    assert live.accepted("retry-agent") == {item["sessionId"]: item["bytes"] for item in agent.completed}
    assert len(statuses) == len(agent.completed) + 1
    assert set(agent.archived()) == {f"{item['sessionId']}.jsonl" for item in agent.completed}
    assert stack.xcom(run_id, "job_result") == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 4 sessions across 1 agent",
        "itemsProcessed": 4,
        "errors": [],
    }
    live.assert_no_leak()


def _backfill_run(stack, logical_date: datetime) -> dict | None:
    """The backfill run of that logical date; its run id carries the run_after (the interval end)."""
    runs = stack.dag_runs(run_type="backfill")
    return next((r for r in runs if datetime.fromisoformat(r["logical_date"]) == logical_date), None)


def test_backfill_takes_only_its_window_and_replays_archived_without_moving(live):
    stack = live.stack
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    window_start = hour - timedelta(hours=3)
    start, end = window_start.timestamp(), (window_start + timedelta(hours=1)).timestamp()
    agent = live.make_agent("backfill-agent", 4, newest_mtime=start + 600)
    inside = agent.completed[:2]
    before_window, after_window = agent.completed[2], agent.completed[3]
    agent.set_mtime(inside[0], start)  # the interval is [start, end): its first second is in
    agent.set_mtime(inside[1], end - 60)
    agent.set_mtime(before_window, start - 1)
    agent.set_mtime(after_window, end)  # ... and its end is not
    # An archived transcript from an earlier hour: a replay of this window must not re-send it.
    old = agent.sessions_dir / "archive" / "0ld0ld00-0000-4000-8000-000000000000.jsonl"
    old.parent.mkdir()
    old.write_text('{"type":"session","id":"0ld0ld00-0000-4000-8000-000000000000"}\n')
    os.utime(old, (start - 2 * HOUR, start - 2 * HOUR))
    before = snapshot_tree(agent.sessions_dir)

    # The CLI, as an operator would: one hourly run, logical date = interval start (both ends inclusive).
    conf = {"agents": ["backfill-agent"], "settle_minutes": 5}
    created = stack.airflow(
        "backfill",
        "create",
        "--dag-id",
        "session_upload",
        "--from-date",
        window_start.isoformat(),
        "--to-date",
        window_start.isoformat(),
        "--max-active-runs",
        "1",
        "--dag-run-conf",
        json.dumps(conf),
    )
    (backfill,) = stack.api("GET", "/api/v2/backfills?dag_id=session_upload").json()["backfills"]
    assert (backfill["dag_run_conf"], backfill["max_active_runs"]) == (conf, 1)
    run = stack.wait_for("the backfill run", lambda: _backfill_run(stack, window_start))
    run = stack.wait_for_run(run["dag_run_id"])
    assert run["state"] == "success" and run["run_type"] == "backfill", stack.tail("scheduler")
    assert datetime.fromisoformat(run["data_interval_start"]).timestamp() == start
    assert datetime.fromisoformat(run["data_interval_end"]).timestamp() == end

    after = snapshot_tree(agent.sessions_dir)
    assert live.accepted("backfill-agent") == {item["sessionId"]: item["bytes"] for item in inside}
    for item in inside:
        assert item["file"] not in after
        assert after[f"archive/{item['sessionId']}.jsonl"] == before[item["file"]]
    for item in (before_window, after_window):
        assert after[item["file"]] == before[item["file"]], "outside the window: untouched"
    result = stack.xcom(run["dag_run_id"], "job_result")
    assert result["message"] == "Uploaded 2 sessions across 1 agent" and result["success"] is True

    # Replay: the same window again, with include_archived, through the REST API. The completed run
    # is cleared and re-run with the new conf (reprocess_behavior "completed"). Airflow allows one
    # unfinished backfill per DAG, and the scheduler marks a backfill finished every 30 s: wait for that.
    stack.wait_for(
        "the backfill to be marked complete",
        lambda: stack.api("GET", f"/api/v2/backfills/{backfill['id']}").json()["completed_at"],
    )
    sent_before = len(live.received("backfill-agent"))
    body = {
        "dag_id": "session_upload",
        "from_date": window_start.isoformat(),
        "to_date": window_start.isoformat(),
        "max_active_runs": 1,
        "reprocess_behavior": "completed",
        "dag_run_conf": {**conf, "include_archived": True},
    }
    replay = stack.api("POST", "/api/v2/backfills", body).json()
    assert replay["reprocess_behavior"] == "completed"
    assert stack.dag_run(run["dag_run_id"])["state"] == "queued", "cleared by the request itself"
    run = stack.wait_for_run(run["dag_run_id"])
    assert run["state"] == "success" and run["conf"]["include_archived"] is True, stack.tail("scheduler")

    again = live.received("backfill-agent")[sent_before:]
    assert sorted(r["sessionId"] for r in again) == sorted(item["sessionId"] for item in inside)
    assert {r["sessionId"]: r["transcript"] for r in again} == {i["sessionId"]: i["bytes"] for i in inside}
    assert all(r["status"] == 200 and r["duplicate"] for r in again), "same Idempotency-Key as before"
    assert snapshot_tree(agent.sessions_dir) == after, "a replay moves nothing, not even an mtime"
    result = stack.xcom(run["dag_run_id"], "job_result")
    assert result["success"] is True and result["itemsProcessed"] == 2, result
    live.assert_no_leak(created.stdout, created.stderr)
