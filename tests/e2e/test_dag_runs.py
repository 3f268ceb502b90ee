"""End-to-end: the real DAG under `airflow dags test`, real HTTP to the Nexus stand-in, real files."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tools.demo.sample_state import make_state
from tools.stacks.sandbox import API_KEY

NOTE_AUTHOR = "session_upload"  # dag_run_note.user_id of the notes openclaw_nexus.run_notes writes

ARCHIVE = "archive"


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def sessions_of(state_dir: Path, agent: str) -> Path:
    return state_dir / "agents" / agent / "sessions"


def assert_received_exactly(nexus, expected: dict[tuple[str, str], bytes]) -> None:
    """Nexus got each expected transcript once, byte for byte, as the JSON contract says."""
    got = {}
    for record in nexus.accepted():
        body = nexus.body(record["n"])
        payload = json.loads(body)
        assert set(payload) == {"agentId", "sessionId", "transcript"}
        assert record["contentType"].startswith("application/json")
        key = (payload["agentId"], payload["sessionId"])
        assert key not in got, f"{key} uploaded twice"
        got[key] = payload["transcript"].encode("utf-8")
    assert got == expected


def xcoms_of(sandbox, run_id: str, task_id: str) -> list[tuple[str, int]]:
    """(key, map_index) of every XCom the task pushed in the run."""
    with sandbox.db() as db:
        return db.execute(
            "select key, map_index from xcom where run_id = ? and task_id = ?", (run_id, task_id)
        ).fetchall()


def test_mixed_run_uploads_archives_and_reports_every_failure(sandbox, nexus, state_dir):
    made = make_state(state_dir, ["main", "research"], completed=4)
    # An agent whose index is truncated: nothing of it may be uploaded or moved.
    broken = make_state(state_dir, ["broken"], completed=2, seed=99)["broken"]
    (sessions_of(state_dir, "broken") / "sessions.json").write_text('{"agent:broken:main": {"sessionId": "ab')
    rejected = made["main"]["completed"][1]
    nexus.set_faults(
        [
            {
                "match": {"sessionId": rejected["sessionId"]},
                "times": None,
                "action": {"status": 400, "body": '{"error": "transcript rejected: schema v3 unsupported"}'},
            }
        ]
    )
    before = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in ["main", "research", "broken"]}

    run = sandbox.run_dag()

    expected = {
        (agent, item["sessionId"]): before[agent][item["file"]]
        for agent in ["main", "research"]
        for item in made[agent]["completed"]
        if item is not rejected
    }
    assert_received_exactly(nexus, expected)
    rejected_requests = [r for r in nexus.requests() if r["sessionId"] == rejected["sessionId"]]
    assert [r["status"] for r in rejected_requests] == [400], "a permanent 4xx must not be retried"

    # On disk: every accepted transcript moved to archive/<sessionId>.jsonl unchanged, the rest untouched.
    for agent in ["main", "research"]:
        after = snapshot_tree(sessions_of(state_dir, agent))
        for item in made[agent]["completed"]:
            archived = f"{ARCHIVE}/{item['sessionId']}.jsonl"
            if item is rejected:
                assert after[item["file"]] == before[agent][item["file"]]
                assert archived not in after
            else:
                assert item["file"] not in after
                assert after[archived] == before[agent][item["file"]]
        for name in made[agent]["active"] + made[agent]["untouchable"]:
            assert after[name] == before[agent][name], f"{agent}/{name} was touched"
    assert snapshot_tree(sessions_of(state_dir, "broken")) == before["broken"]
    assert not any(r["agentId"] == "broken" for r in nexus.requests())

    # The JobResult: counts, and one error per failure naming agent, session/file and reason.
    result = run.job_result
    assert result is not None, run.output[-3000:]
    assert result["jobId"] == "session_upload"
    assert result["success"] is False
    assert result["itemsProcessed"] == 7
    assert result["message"] == "Uploaded 7 sessions across 2 agents"
    by_agent = {(e["agentId"], e["stage"]): e for e in result["errors"]}
    assert len(result["errors"]) == 2, result["errors"]
    upload_error = by_agent[("main", "upload")]
    assert upload_error["sessionId"] == rejected["sessionId"]
    assert upload_error["file"] == rejected["file"]
    assert "HTTP 400" in upload_error["reason"] and "schema v3 unsupported" in upload_error["reason"]
    index_error = by_agent[("broken", "discover")]
    assert index_error["file"] == "sessions.json" and "not valid JSON" in index_error["reason"]
    assert broken["completed"]  # the broken agent did have sessions to lose

    # Task states: only the rejected session's upload failed and only its archive waited; the run is red.
    label = f"main/{rejected['sessionId']}"
    index = next(i for i, (_, name) in run.tasks["deliver.upload"].items() if name == label)
    uploads, archives = run.states("deliver.upload"), run.states("deliver.archive")
    assert uploads.pop(index) == "failed"
    assert archives.pop(index) == "upstream_failed", "it never ran, so it has no rendered name"
    assert set(uploads.values()) == {"success"} and len(uploads) == 7
    assert set(archives.values()) == {"success"} and len(archives) == 7
    assert set(run.labels("deliver.archive")) == set(run.labels("deliver.upload")) - {label} | {None}
    assert run.states("discover") == {0: "success", 1: "success", 2: "success"}
    assert run.states("job_result") == {-1: "failed"}
    assert run.state == "failed"
    # A red run still has the JobResult as job_result's return value (pushed before it raised), once;
    # the run's note is its message.
    assert xcoms_of(sandbox, run.run_id, "job_result") == [("return_value", -1)]
    assert (run.note, run.note_author) == ("Uploaded 7 sessions across 2 agents", NOTE_AUTHOR)
    assert sandbox.asset_events() == [], "a red run announces nothing"

    # The key was in every request (the stand-in records only requests that carry it; without it a request
    # gets 401 and no record): 7 accepted + the rejected one, one request each. And only in the query
    # string: not in a body, nor in a header the stand-in records (it writes the query's `code` masked).
    assert len(nexus.requests()) == 8
    assert API_KEY not in nexus.requests_file.read_text()
    assert [r["n"] for r in nexus.requests() if API_KEY.encode() in nexus.body(r["n"])] == []
    assert sandbox.leaks(API_KEY, run.output) == []


def test_clean_run_is_green_announces_the_asset_and_a_rerun_finds_nothing(sandbox, nexus, state_dir):
    made = make_state(state_dir, ["main"], completed=3)
    first = sandbox.run_dag()

    assert first.state == "success", first.output[-3000:]
    assert first.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 3 sessions across 1 agent",
        "itemsProcessed": 3,
        "errors": [],
    }
    assert len(nexus.accepted()) == 3
    assert sandbox.asset_events() == [{"uploaded": 3}]
    # The task returns the JobResult: Airflow pushes it (one XCom, no key per field) and logs it; the run's
    # note, shown in Browse → Dag Runs, is its message.
    assert xcoms_of(sandbox, first.run_id, "job_result") == [("return_value", -1)]
    assert (
        "Done. Returned value was: {'jobId': 'session_upload', 'success': True, "
        "'message': 'Uploaded 3 sessions across 1 agent'" in first.output
    ), first.output[-3000:]
    assert "Returned value was: None" not in first.output
    assert (first.note, first.note_author) == ("Uploaded 3 sessions across 1 agent", NOTE_AUTHOR)
    archive = sessions_of(state_dir, "main") / ARCHIVE
    assert sorted(p.name for p in archive.iterdir()) == [
        ".copies",
        *sorted(f"{c['sessionId']}.jsonl" for c in made["main"]["completed"]),
    ]
    assert sorted(p.name for p in (archive / ".copies").iterdir()) == sorted(
        f"{c['sessionId']}.json" for c in made["main"]["completed"]
    ), "each copy has its record, which OpenClaw's backup keeps"

    second = sandbox.run_dag()
    assert second.state == "success"
    # The check found main's archive changed, scanned it in full and found nothing left: discover maps
    # over no agent (Airflow marks the unexpanded task skipped), and the run still selects and reports.
    assert second.states("discover") in ({}, {-1: "skipped"}), second.tasks
    assert second.states("select") == {-1: "success"}
    check = check_xcom(sandbox, second.run_id)
    assert (check["agents"], check["scanned"], check["skipped"], check["changed"]) == (1, 0, 1, 1)
    assert second.job_result["itemsProcessed"] == 0
    assert second.job_result["message"] == "Uploaded 0 sessions across 0 agents"
    assert second.note == "Uploaded 0 sessions across 0 agents"
    assert len(nexus.accepted()) == 3, "nothing is uploaded twice"
    assert len(sandbox.asset_events()) == 1, "a run that uploaded nothing announces nothing"
    assert sandbox.leaks(API_KEY, first.output, second.output) == []


def check_xcom(sandbox, run_id: str) -> dict:
    """What find_agents' check decided in the run (its ``check`` XCom)."""
    with sandbox.db() as db:
        (value,) = db.execute(
            "select value from xcom where run_id = ? and task_id = 'find_agents' and key = 'check'", (run_id,)
        ).fetchone()
    return json.loads(value)


def test_discover_is_mapped_over_the_agents_with_something_to_send_each_named_in_the_ui(
    sandbox, nexus, state_dir
):
    """Among idle agents of a generated state dir, one run maps discover over the two agents with
    completed sessions and the one whose index is broken (its error must reach the JobResult), each
    instance labelled by its agent; the idle ones are counted as skipped."""
    made = make_state(state_dir, ["alpha", "beta"], completed=2)
    make_state(state_dir, [f"idle-{n}" for n in range(5)], completed=0, seed=5)
    broken = sessions_of(state_dir, "idle-3") / "sessions.json"
    make_state(state_dir, ["idle-3"], completed=1, seed=6)
    broken.write_text('{"agent:idle-3:main": {"sessionId": "ab')

    run = sandbox.run_dag()

    assert run.labels("discover") == {"alpha": "success", "beta": "success", "idle-3": "success"}
    assert sorted(run.states("discover")) == [0, 1, 2]
    check = check_xcom(sandbox, run.run_id)
    assert (check["agents"], check["scanned"], check["skipped"], check["failed"]) == (7, 3, 4, 1)
    assert check["by"] == "the check" and check["new"] == 7, "no record yet: every agent scanned in full"
    assert "this run scans 3 of 7 agents, 4 skipped as having nothing to send" in run.output
    assert {(r["agentId"], r["sessionId"]) for r in nexus.accepted()} == {
        (agent, item["sessionId"]) for agent in ("alpha", "beta") for item in made[agent]["completed"]
    }
    assert [(e["agentId"], e["stage"], e["file"]) for e in run.job_result["errors"]] == [
        ("idle-3", "discover", "sessions.json")
    ]
    assert run.job_result["message"] == "Uploaded 4 sessions across 2 agents"


def test_dry_run_for_one_agent_sends_and_moves_nothing(sandbox, nexus, state_dir):
    make_state(state_dir, ["main", "research"], completed=2)
    before = snapshot_tree(state_dir)

    run = sandbox.run_dag(conf={"dry_run": True, "agents": ["research"]})

    assert run.state == "success", run.output[-3000:]
    assert nexus.requests() == []
    assert snapshot_tree(state_dir) == before
    assert run.job_result["message"] == "Dry run: would upload 2 sessions across 1 agent"
    assert run.note == "Dry run: would upload 2 sessions across 1 agent"
    assert run.job_result["itemsProcessed"] == 0
    assert run.states("discover") == {0: "success"}
    assert run.labels("discover") == {"research": "success"}


def notify_run_finished(sandbox, run_id: str) -> subprocess.CompletedProcess:
    """What Airflow does when a run finishes, without finishing it again: load the run through Airflow's
    ORM and call the dag-run listeners its plugins registered (the package's, from its entry point)."""
    code = (
        "from sqlalchemy import select\n"
        "from airflow.models.dagrun import DagRun\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as session:\n"
        f"    run = session.scalars(select(DagRun).where(DagRun.run_id == {run_id!r})).one()\n"
        "    run.notify_dagrun_state_changed(msg='success')\n"
    )
    done = subprocess.run(
        [sandbox.bin_dir / "python", "-c", code],
        env=sandbox.env(),
        cwd=sandbox.home,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_note_someone_wrote_stays_and_the_listeners_own_is_brought_up_to_date(sandbox, nexus, state_dir):
    make_state(state_dir, ["main"], completed=1)
    run = sandbox.run_dag()
    assert run.state == "success", run.output[-3000:]
    message = "Uploaded 1 session across 1 agent"
    assert (run.note, run.note_author) == (message, NOTE_AUTHOR)

    def set_note(content: str, user_id: str | None) -> None:
        with sandbox.db() as db:
            db.execute(
                "update dag_run_note set content = ?, user_id = ?"
                " where dag_run_id = (select id from dag_run where run_id = ?)",
                (content, user_id, run.run_id),
            )

    def note() -> tuple[str, str | None] | None:
        with sandbox.db() as db:
            return db.execute(
                "select n.content, n.user_id from dag_run_note n join dag_run r on r.id = n.dag_run_id"
                " where r.run_id = ?",
                (run.run_id,),
            ).fetchone()

    # The listener's own note (a Clear that finishes the run again): the JobResult's message again.
    set_note("Uploaded 9 sessions across 9 agents", NOTE_AUTHOR)
    notify_run_finished(sandbox, run.run_id)
    assert note() == (message, NOTE_AUTHOR)

    # A person's note (the UI, the REST API) is theirs: left as it is.
    set_note("checked by alice: Nexus had an outage", "alice")
    done = notify_run_finished(sandbox, run.run_id)
    assert note() == ("checked by alice: Nexus had an outage", "alice")
    assert "left the note alice wrote" in done.stdout + done.stderr

    # No note: the message.
    with sandbox.db() as db:
        db.execute("delete from dag_run_note")
    notify_run_finished(sandbox, run.run_id)
    assert note() == (message, NOTE_AUTHOR)
