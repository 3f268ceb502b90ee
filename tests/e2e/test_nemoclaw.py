"""End-to-end on NemoClaw's sandbox layout: ``/sandbox/.openclaw/agents`` is a symlink to
``/sandbox/.openclaw-data/agents`` (NemoClaw's Dockerfile: config read-only, state writable)."""

from __future__ import annotations

import json

from tests.e2e.test_dag_runs import assert_received_exactly, snapshot_tree
from tools.demo.sample_state import make_state
from tools.stacks.sandbox import API_KEY, new_sandbox


def test_the_job_runs_on_nemoclaw_sandbox_layout_and_still_refuses_escapes(template_home, tmp_path, nexus):
    sandbox_root = tmp_path / "sandbox"
    data = sandbox_root / ".openclaw-data"
    made = make_state(data, ["main"], completed=3)
    state_dir = sandbox_root / ".openclaw"
    state_dir.mkdir()
    (state_dir / "openclaw.json").write_text("{}")  # NemoClaw's read-only config lives beside the link
    (state_dir / "agents").symlink_to(data / "agents", target_is_directory=True)
    # An agent folder inside the sandbox's state that points elsewhere is still an escape.
    outside = tmp_path / "outside"
    make_state(outside, ["stray"], completed=2, seed=3)
    (data / "agents" / "stray").symlink_to(outside / "agents" / "stray", target_is_directory=True)
    sessions = data / "agents" / "main" / "sessions"
    before = snapshot_tree(sessions)
    outside_before = snapshot_tree(outside)

    sandbox = new_sandbox(template_home, tmp_path / "airflow", state_dir, nexus.url)
    run = sandbox.run_dag()

    expected = {("main", c["sessionId"]): before[c["file"]] for c in made["main"]["completed"]}
    assert_received_exactly(nexus, expected)
    after = snapshot_tree(sessions)
    for item in made["main"]["completed"]:
        assert item["file"] not in after
        assert after[f"archive/{item['sessionId']}.jsonl"] == before[item["file"]]
    for name in made["main"]["active"] + made["main"]["untouchable"]:
        assert after[name] == before[name]
    assert snapshot_tree(outside) == outside_before
    assert (state_dir / "agents").is_symlink(), "the operator's link is left as it was"

    result = run.job_result
    assert result["itemsProcessed"] == 3 and result["message"] == "Uploaded 3 sessions across 1 agent"
    assert [(e["agentId"], e["stage"]) for e in result["errors"]] == [("stray", "discover")]
    assert "resolves outside the state dir's agents/ folder" in result["errors"][0]["reason"]
    assert run.labels("discover") == {"main": "success"}
    assert sandbox.leaks(API_KEY, run.output, json.dumps(result)) == []
