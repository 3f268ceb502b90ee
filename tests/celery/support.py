"""Helpers of the Celery tests: what the stand-in received, what is on disk, and what each Celery worker
executed (from its log)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tools.standins.nexus import NexusStandin

FILE_TASKS = {"find_agents", "discover", "deliver.upload", "deliver.archive"}
DEFAULT_QUEUE_TASKS = {"select", "job_result"}
# What the Celery provider logs in the worker for every task it runs.
EXECUTED_RE = re.compile(
    r"Executing workload in Celery: .*?task_id='(?P<task_id>[^']+)', dag_id='(?P<dag_id>[^']+)', "
    r"run_id='(?P<run_id>[^']+)', try_number=\d+, dag_version_id=[^,]+, map_index=(?P<map_index>-?\d+)"
)


def sessions_of(state_dir: Path, agent: str) -> Path:
    return state_dir / "agents" / agent / "sessions"


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def received(nexus: NexusStandin) -> dict[tuple[str, str], bytes]:
    """(agentId, sessionId) -> transcript bytes of every accepted upload; fails on a repeat or a request
    that was not accepted, or on a body that is not the JSON contract."""
    got: dict[tuple[str, str], bytes] = {}
    for record in nexus.requests():
        assert record["status"] == 201, record
        assert record["query"] == {"code": "***"}, "the key goes as ?code= and nowhere else"
        payload = json.loads(nexus.body(record["n"]))
        assert set(payload) == {"agentId", "sessionId", "transcript"}
        key = (payload["agentId"], payload["sessionId"])
        assert key not in got, f"{key} uploaded twice"
        got[key] = payload["transcript"].encode("utf-8")
    return got


def executed(worker_log: Path) -> list[tuple[str, str, str, int]]:
    """(dag_id, run_id, task_id, map_index) of every task a Celery worker ran, from its log."""
    return [
        (m["dag_id"], m["run_id"], m["task_id"], int(m["map_index"]))
        for m in EXECUTED_RE.finditer(worker_log.read_text(errors="replace"))
    ]
