"""The JobResult says what happened once: a task that did not run because of an earlier failure adds no
error of its own, and each error names its cause. ``runs.job_result`` reads the run's XComs as Airflow's
task instance hands them over (a task id string gives one value, a list gives every map index's)."""

from __future__ import annotations

from typing import Any

from openclaw_nexus import runs


class RunXComs:
    """The XComs of one run, by (task id, key), as ``job_result`` pulls them."""

    def __init__(self, pushed: dict[tuple[str, str], Any], mapped: dict[tuple[str, str], list[Any]]) -> None:
        self.pushed = pushed
        self.mapped = mapped

    def xcom_pull(self, task_ids: str | list[str], key: str = "return_value") -> Any:
        if isinstance(task_ids, list):
            return [value for task_id in task_ids for value in self.mapped.get((task_id, key), [])]
        return self.pushed.get((task_ids, key))


def scan(agent_id: str, sessions: list[dict] | None = None, errors: list[dict] | None = None) -> dict:
    return {"agentId": agent_id, "sessions": sessions or [], "errors": errors or []}


def test_a_state_dir_without_agents_reports_that_alone():
    missing = {"agentId": "*", "sessionId": None, "file": None, "stage": "discover", "reason": "no agents/"}
    ti = RunXComs(
        {
            ("find_agents", "return_value"): [],
            ("find_agents", "errors"): [missing],
            ("select", "selected"): [],  # discover mapped over nothing and was skipped; select still ran
        },
        {},
    )
    job = runs.job_result(ti, dry_run=False)
    assert job["errors"] == [missing]
    assert job["message"] == "Uploaded 0 sessions across 0 agents" and job["success"] is False


def test_a_discover_that_did_not_complete_is_the_one_error_and_says_nothing_was_delivered():
    ti = RunXComs(
        {("find_agents", "return_value"): ["a", "b"], ("find_agents", "errors"): []},
        {("discover", "return_value"): [scan("a", sessions=[{"agentId": "a", "file": "x.jsonl"}])]},
    )  # b's discover failed, so select was upstream_failed: it pushed no selection
    job = runs.job_result(ti, dry_run=False)
    assert [(e["agentId"], e["stage"]) for e in job["errors"]] == [("b", "discover")], job["errors"]
    assert job["errors"][0]["reason"] == (
        "discovery did not complete (see the discover log); "
        "select waits for every agent's discover: nothing was delivered"
    )


def test_select_failing_on_its_own_is_reported_as_select():
    ti = RunXComs(
        {("find_agents", "return_value"): ["a"], ("find_agents", "errors"): []},
        {("discover", "return_value"): [scan("a")]},
    )
    job = runs.job_result(ti, dry_run=False)
    assert [(e["stage"], e["reason"]) for e in job["errors"]] == [
        ("select", "selecting sessions failed; see the select log")
    ]
