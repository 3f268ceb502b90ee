"""openclaw_nexus.result: the JobResult of one run."""

from __future__ import annotations

from openclaw_nexus.result import JOB_ID, build_job_result

KEYS = {"jobId", "success", "message", "itemsProcessed", "errors"}


def session(agent: str, sid: str, kind: str = "live") -> dict:
    return {
        "agentId": agent,
        "sessionId": sid,
        "file": f"{sid}.jsonl",
        "size": 10,
        "mtimeNs": 1,
        "kind": kind,
    }


def receipt(s: dict) -> dict:
    return {**s, "sha256": "ab" * 32, "status": 201, "archivedAs": f"archive/{s['sessionId']}.jsonl"}


def error(s: dict, stage: str = "upload", reason: str = "Nexus answered HTTP 400") -> dict:
    return {
        "agentId": s["agentId"],
        "sessionId": s["sessionId"],
        "file": s["file"],
        "stage": stage,
        "reason": reason,
    }


A1, A2, B1, C1 = session("a", "a1"), session("a", "a2"), session("b", "b1"), session("c", "c1")


def build(**kwargs) -> dict:
    args = {"agent_errors": [], "selected": [], "done": [], "task_errors": []} | kwargs
    return build_job_result(**args)


def test_all_uploaded():
    job = build(selected=[A1, A2, B1], done=[receipt(A1), receipt(A2), receipt(B1)])
    assert job == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 3 sessions across 2 agents",
        "itemsProcessed": 3,
        "errors": [],
    }
    assert JOB_ID == "session_upload"
    assert list(job) == ["jobId", "success", "message", "itemsProcessed", "errors"]


def test_nothing_to_do():
    assert build() == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 0 sessions across 0 agents",
        "itemsProcessed": 0,
        "errors": [],
    }


def test_a_task_error_fails_the_run_and_is_reported_once():
    failure = error(B1, "archive", "cannot archive b1.jsonl")
    job = build(selected=[A1, B1], done=[receipt(A1)], task_errors=[failure])
    assert set(job) == KEYS
    assert job["success"] is False
    assert job["message"] == "Uploaded 1 session across 1 agent"
    assert job["itemsProcessed"] == 1
    assert job["errors"] == [failure]


def test_agent_errors_fail_the_run_and_come_first():
    discover = {
        "agentId": "c",
        "sessionId": None,
        "file": "sessions.json",
        "stage": "discover",
        "reason": "x",
    }
    upload = error(B1)
    job = build(agent_errors=[discover], selected=[A1, B1], done=[receipt(A1)], task_errors=[upload])
    assert job["success"] is False
    assert job["errors"] == [discover, upload]
    assert job["itemsProcessed"] == 1


def test_a_selected_session_without_outcome_gets_an_error():
    job = build(selected=[A1, B1, C1], done=[receipt(A1)], task_errors=[error(B1)])
    assert job["success"] is False
    assert job["itemsProcessed"] == 1
    assert job["message"] == "Uploaded 1 session across 1 agent"
    assert job["errors"] == [
        error(B1),
        {
            "agentId": "c",
            "sessionId": "c1",
            "file": "c1.jsonl",
            "stage": "upload",
            "reason": "no outcome recorded (task did not run to completion)",
        },
    ]


def test_receipts_for_sessions_not_selected_do_not_count():
    job = build(selected=[A1], done=[receipt(A1), receipt(B1)])
    assert job["itemsProcessed"] == 1
    assert job["message"] == "Uploaded 1 session across 1 agent"


def test_replays_count_as_processed():
    replay = {**session("a", "a9", "replay"), "file": "archive/a9.jsonl"}
    job = build(selected=[replay, B1], done=[receipt(replay), receipt(B1)])
    assert job["message"] == "Uploaded 2 sessions across 2 agents"
    assert job["success"] is True


def test_deferred_suffix():
    job = build(selected=[A1], done=[receipt(A1)], deferred=7)
    assert job["message"] == "Uploaded 1 session across 1 agent; 7 more left for later runs"
    assert job["success"] is True
    assert job["itemsProcessed"] == 1


def test_one_session_or_one_agent_is_singular_none_is_plural():
    assert build(selected=[A1], done=[receipt(A1)])["message"] == "Uploaded 1 session across 1 agent"
    assert build(selected=[A1, A2], done=[receipt(A1), receipt(A2)])["message"] == (
        "Uploaded 2 sessions across 1 agent"
    )
    assert build(selected=[A1, B1], done=[receipt(A1), receipt(B1)])["message"] == (
        "Uploaded 2 sessions across 2 agents"
    )
    assert build()["message"] == "Uploaded 0 sessions across 0 agents"
    assert build(selected=[A1], dry_run=True)["message"] == "Dry run: would upload 1 session across 1 agent"
    assert build(selected=[A1, A2], dry_run=True)["message"] == (
        "Dry run: would upload 2 sessions across 1 agent"
    )
    assert build(dry_run=True)["message"] == "Dry run: would upload 0 sessions across 0 agents"
    # Nothing uploaded, one already there: 0 stays plural; the suffix keeps its own words.
    duplicate = {**receipt(A1), "status": None, "duplicateOf": "archive/a1.jsonl"}
    assert build(selected=[A1], done=[duplicate], deferred=1)["message"] == (
        "Uploaded 0 sessions across 0 agents; 1 already uploaded with the same bytes, archived without "
        "resending; 1 more left for later runs"
    )


def test_dry_run():
    job = build(selected=[A1, A2, B1], dry_run=True)
    assert job == {
        "jobId": "session_upload",
        "success": True,
        "message": "Dry run: would upload 3 sessions across 2 agents",
        "itemsProcessed": 0,
        "errors": [],
    }


def test_dry_run_with_deferred_and_discovery_errors():
    discover = {"agentId": "c", "sessionId": None, "file": None, "stage": "discover", "reason": "SQLite"}
    job = build(agent_errors=[discover], selected=[A1], dry_run=True, deferred=2)
    assert job["message"] == "Dry run: would upload 1 session across 1 agent; 2 more left for later runs"
    assert job["success"] is False
    assert job["errors"] == [discover]


def test_iterables_are_accepted():
    job = build(
        agent_errors=iter([]),
        selected=(s for s in [A1, B1]),
        done=(receipt(s) for s in [A1, B1]),
        task_errors=iter([]),
    )
    assert job["itemsProcessed"] == 2
    assert job["success"] is True


def test_bytes_nexus_already_had_are_archived_but_not_counted_as_uploads():
    duplicate = {**receipt(A2), "status": None, "duplicateOf": "archive/a2.jsonl"}
    job = build(selected=[A1, A2, B1], done=[receipt(A1), duplicate, receipt(B1)])
    assert job == {
        "jobId": JOB_ID,
        "success": True,
        "message": "Uploaded 2 sessions across 2 agents; "
        "1 already uploaded with the same bytes, archived without resending",
        "itemsProcessed": 2,
        "errors": [],
    }
