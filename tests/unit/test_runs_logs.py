"""What the find_agents and select tasks log, counted in the singular for one ("1 agent", "1 session")."""

from __future__ import annotations

import logging

from openclaw_nexus import runs
from tools.demo.sample_state import make_state


class TaskInstance:
    """Only what these two functions call on a task instance: they push XComs."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


def test_one_agent_and_one_session_are_counted_in_the_singular(tmp_path, monkeypatch, caplog):
    made = make_state(tmp_path / "openclaw", ["main"], completed=1)
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "openclaw"))
    caplog.set_level(logging.INFO, logger=runs.log.name)
    ti = TaskInstance()
    assert runs.find_agents(None, ti) == ["main"]
    item = {"agentId": "main", "file": made["main"]["completed"][0]["file"], "mtimeNs": 1}
    assert runs.select([{"sessions": [item]}], 10, ti, dry_run=False) == [item]
    assert ti.pushed["selected"] == [item] and ti.pushed["deferred"] == 0
    messages = [r.getMessage() for r in caplog.records]
    assert f"Scanning 1 agent under {tmp_path / 'openclaw'}: main" in messages, messages
    assert "1 session selected, 0 left for later runs" in messages, messages
    assert not any("1 agents" in m or "1 sessions" in m for m in messages), messages
