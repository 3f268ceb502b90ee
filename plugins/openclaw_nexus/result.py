"""Reduce one run's outcomes into the JobResult. Airflow-free.

``{"jobId": "session_upload", "success", "message": "Uploaded N sessions across M agents",
"itemsProcessed": N, "errors": [...]}``: N counts uploads that were archived (or, for replays,
re-sent), M the agents they belong to, each in the singular for 1 (``Uploaded 1 session across 1
agent``); every session that was selected but has neither an archive receipt nor an error gets one, so
nothing disappears from the report. A session whose exact bytes Nexus already had (``duplicateOf``) was
archived without being sent: the message says how many.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

JOB_ID = "session_upload"


def count(number: int, noun: str) -> str:
    """``1 session``, ``0 sessions``, ``2 sessions``."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _key(item: dict[str, Any]) -> tuple[str, str, str | None]:
    """One item: a session, or one conversation of it (the conversations of a deletion export share
    its file)."""
    return item["agentId"], item["file"], item.get("conversation")


def build_job_result(
    *,
    agent_errors: Iterable[dict[str, Any]],
    selected: Iterable[dict[str, Any]],
    done: Iterable[dict[str, Any]],
    task_errors: Iterable[dict[str, Any]],
    dry_run: bool = False,
    deferred: int = 0,
) -> dict[str, Any]:
    """The JobResult for one run.

    :param agent_errors: errors from listing and scanning agents (stage ``discover``)
    :param selected: the sessions this run took on
    :param done: receipts of sessions uploaded and archived (or replayed)
    :param task_errors: errors pushed by upload and archive tasks
    :param dry_run: nothing was sent; the message says what would have been
    :param deferred: sessions left for later runs by the per-run cap (not an error)
    """
    selected = list(selected)
    errors = list(agent_errors)
    done_keys = {_key(receipt) for receipt in done}
    failed_keys = set()
    for error in task_errors:
        errors.append(error)
        failed_keys.add(_key(error))
    if not dry_run:
        for session in selected:
            if _key(session) not in done_keys and _key(session) not in failed_keys:
                errors.append(
                    {
                        "agentId": session["agentId"],
                        "sessionId": session["sessionId"],
                        "file": session["file"],
                        "stage": "upload",
                        "reason": "no outcome recorded (task did not run to completion)",
                    }
                )
    not_resent = {_key(receipt) for receipt in done if receipt.get("duplicateOf")}
    uploaded = [s for s in selected if _key(s) in done_keys and _key(s) not in not_resent]
    agents = {s["agentId"] for s in uploaded}
    if dry_run:
        would = {s["agentId"] for s in selected}
        message = (
            f"Dry run: would upload {count(len(selected), 'session')} across {count(len(would), 'agent')}"
        )
    else:
        message = f"Uploaded {count(len(uploaded), 'session')} across {count(len(agents), 'agent')}"
        if not_resent:
            message += f"; {len(not_resent)} already uploaded with the same bytes, archived without resending"
    if deferred:
        message += f"; {deferred} more left for later runs"
    return {
        "jobId": JOB_ID,
        "success": not errors,
        "message": message,
        "itemsProcessed": len(uploaded),
        "errors": errors,
    }
