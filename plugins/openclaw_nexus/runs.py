"""What each task of the DAG does, between Airflow's context and the pure modules.

The DAG file only wires; these functions take plain values (and, where a task must report through
XCom, its task instance) and call discovery, archive and result.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import datetime
from typing import Any

from openclaw_nexus import agent_check, discovery, host_watch, metrics, result, stores
from openclaw_nexus.archive import ArchiveError
from openclaw_nexus.compat import AirflowFailException
from openclaw_nexus.config import JSONL_ARCHIVE_COPY, JSONL_ARCHIVE_MOVE, Settings, state_dir
from openclaw_nexus.detector import Detector
from openclaw_nexus.files import kept_in_place

log = logging.getLogger(__name__)

FIND_AGENTS_TASK = "find_agents"
DISCOVER_TASK = "discover"
UPLOAD_TASK = "deliver.upload"
ARCHIVE_TASK = "deliver.archive"
WATCH_TASK = "watch"


def find_agents(
    requested: list[str] | None,
    ti: Any,
    window: discovery.Window | None = None,
    *,
    include_archived: bool = False,
) -> list[str]:
    """The agents to scan: those the check (``agent_check``) finds may have something to send in the
    run's ``window``, or every agent named by the ``agents`` Param, or every agent for a replay
    (``include_archived``: the check does not look into ``archive/``). Refused names are pushed as the
    ``errors`` XCom, what the check decided as the ``check`` XCom."""
    agents, errors = discovery.list_agents(state_dir(), requested or None)
    for error in errors:
        log.error("agent %s: %s", error["agentId"], error["reason"])
    metrics.errors("discover", len(errors))  # untagged: a refused name is no agent id
    ti.xcom_push(key="errors", value=errors)
    listed = len(agents)
    summary: dict[str, Any] = {"agents": listed, "scanned": listed, "skipped": 0}
    if requested:
        summary["by"] = "the agents Param: no check"
    elif include_archived:
        summary["by"] = "include_archived (replay): no check"
    else:
        try:
            check = agent_check.check_agents(
                state_dir(),
                agents,
                not_before=window.not_before if window else None,
                before=window.before if window else None,
            )
        except Exception:  # the check is an optimisation: without it, every agent is scanned
            log.exception("the check failed: every agent is scanned")
            summary["by"] = "every agent: the check failed (see the log)"
        else:
            agents = check.agents
            summary = {**check.summary(), "by": "the check"}
            log.info(
                "The check: %s of %s may have something to send; %s skipped, nothing to send since their "
                "last full scan%s; %s scanned in full (%d new, %d changed, %d recently changed, %d swept, "
                "%d with errors) in %.2f s; record %s%s",
                result.count(len(agents), "agent"),
                listed,
                result.count(len(check.skipped), "agent"),
                f"; {check.outside} with something to send outside the run's data interval"
                if check.outside
                else "",
                result.count(len(check.scanned), "agent"),
                check.new,
                check.changed,
                check.recent,
                check.swept,
                len(check.failed),
                check.seconds,
                check.record,
                f" ({check.problem})" if check.problem else "",
            )
    ti.xcom_push(key="check", value=summary)
    log.info(
        "Scanning %s under %s: %s",
        result.count(len(agents), "agent"),
        state_dir(),
        ", ".join(agents) or "none",
    )
    return agents


def check_line(check: dict[str, Any] | None) -> str:
    """How the discover and job_result logs name what the check decided (its ``check`` XCom)."""
    if not check:
        return ""
    return (
        f"this run scans {check['scanned']} of {result.count(check['agents'], 'agent')}, "
        f"{check['skipped']} skipped as having nothing to send ({check.get('by', 'the check')})"
    )


def window_for(
    dag_run: Any,
    interval_start: datetime | None,
    interval_end: datetime | None,
    settle_minutes: int,
    db_settle_seconds: float = 0.0,
) -> discovery.Window:
    """Scheduled runs take what is older than their data interval end; backfills only their interval;
    manual and asset-triggered runs everything settled up to now. ``settle_minutes`` applies to files
    OpenClaw may still be writing, ``db_settle_seconds`` to what its database committed (``Window``)."""
    run_type = str(getattr(dag_run, "run_type", "") or "").lower()
    window = discovery.Window(
        now=datetime.now().timestamp(),
        settle_seconds=settle_minutes * 60.0,
        db_settle_seconds=db_settle_seconds,
    )
    if run_type.endswith("backfill") and interval_start and interval_end:
        return replace(window, not_before=interval_start.timestamp(), before=interval_end.timestamp())
    if run_type.endswith("scheduled") and interval_end:
        return replace(window, before=interval_end.timestamp())
    return window


def discover(
    agent_id: str,
    window: discovery.Window,
    *,
    include_archived: bool,
    ti: Any = None,
    jsonl_archive: str = JSONL_ARCHIVE_MOVE,
) -> dict[str, Any]:
    """One agent's scan (its XCom); ``jsonl_archive`` (``move`` or ``copy``, the deployment's
    ``SESSION_UPLOAD_JSONL_ARCHIVE``) says how its JSONL-era files will be archived."""
    scan = stores.scan_agent(
        state_dir(),
        agent_id,
        window,
        include_archived=include_archived,
        jsonl_by_copy=jsonl_archive == JSONL_ARCHIVE_COPY,
    )
    for error in scan.errors:
        log.error("agent %s, %s: %s", agent_id, error["file"] or "-", error["reason"])
    metrics.errors("discover", len(scan.errors), agent_id)
    by_copy = ", archived by copy" if jsonl_archive == JSONL_ARCHIVE_COPY else ""
    era = f"JSONL files{by_copy}" if scan.era == "jsonl" else f"SQLite database, agent schema {scan.schema}"
    log.info(
        "agent %s (%s): %d to upload%s%s; skipped %s",
        agent_id,
        era,
        len(scan.sessions),
        "" if scan.live is None else f", {scan.live} live sessions left to OpenClaw",
        ""
        if scan.era == "jsonl"
        else f"; conversations in sessions with resets: {scan.conversations['finished']} finished"
        f" (sent now or before), {scan.conversations['open']} open (never sent while open)",
        dict(scan.skipped) or "nothing",
    )
    if ti is not None and (line := check_line(ti.xcom_pull(task_ids=FIND_AGENTS_TASK, key="check"))):
        log.info("Agents: %s", line)
    return scan.to_dict()


def select(
    scans: list[dict[str, Any]] | None, max_sessions: int, ti: Any, *, dry_run: bool
) -> list[discovery.Session]:
    """The sessions to deliver; the whole selection and the count left over go to XCom for the JobResult.
    ``scans`` is None or empty when the check found no agent with something to send."""
    selected, deferred = discovery.select_sessions(scans or [], max_sessions)
    log.info(
        "%s selected, %d left for later runs%s",
        result.count(len(selected), "session"),
        deferred,
        " (dry run: none delivered)" if dry_run else "",
    )
    ti.xcom_push(key="selected", value=selected)
    ti.xcom_push(key="deferred", value=deferred)
    return [] if dry_run else selected


def archive(session: discovery.Session, receipt: dict[str, Any], ti: Any) -> dict[str, Any]:
    """Archive one uploaded transcript; replays stay where they are."""
    done = {**receipt, "archivedAs": session["file"], "alreadyArchived": True}
    if session.get("kind") == "replay":
        log.info(
            "%s/%s was a replay of %s: left in place",
            session["agentId"],
            session["sessionId"],
            session["file"],
        )
        return done
    try:
        outcome = stores.record_archived(state_dir(), session, receipt)
    except (ArchiveError, OSError) as exc:
        reason = str(exc)
        metrics.errors("archive", agent_id=session["agentId"])
        ti.xcom_push(
            key="error",
            value={
                "agentId": session["agentId"],
                "sessionId": session["sessionId"],
                "file": session["file"],
                **(
                    {"conversation": session["conversation"]}
                    if session.get("conversation") is not None
                    else {}
                ),
                "stage": "archive",
                "reason": reason,
            },
        )
        raise AirflowFailException(reason) from None
    log.info(
        "%s %s %s%s",
        session["file"],
        "copied (left with OpenClaw) as" if kept_in_place(session) else "archived as",
        outcome.archived_as,
        " (already done)" if outcome.already_done else "",
    )
    return {**receipt, "archivedAs": outcome.archived_as, "alreadyArchived": outcome.already_done}


def _pull_all(ti: Any, task_id: str, key: str = "return_value") -> list[Any]:
    values = ti.xcom_pull(task_ids=[task_id], key=key) or []
    return [value for value in values if value is not None]


def job_result(ti: Any, *, dry_run: bool) -> dict[str, Any]:
    """Build the JobResult from every task's XComs and log it (the task returns it: its return value)."""
    agents = ti.xcom_pull(task_ids=FIND_AGENTS_TASK)
    plan = ti.xcom_pull(task_ids="select", key="selected")
    deferred = ti.xcom_pull(task_ids="select", key="deferred") or 0
    scans = _pull_all(ti, DISCOVER_TASK)
    agent_errors = list(ti.xcom_pull(task_ids=FIND_AGENTS_TASK, key="errors") or [])
    if line := check_line(ti.xcom_pull(task_ids=FIND_AGENTS_TASK, key="check")):
        log.info("Agents: %s", line)
    if agents is None:
        agent_errors.append(_stage_error("find_agents", "listing agents failed; see the find_agents log"))
    scanned = {scan["agentId"] for scan in scans}
    unscanned = [agent_id for agent_id in agents or [] if agent_id not in scanned]
    # select waits for every discover (none_failed): when one did not complete, nothing was selected, and
    # that discover's error says so; select adds no error of its own for what it never ran.
    consequence = "; select waits for every agent's discover: nothing was delivered" if plan is None else ""
    for agent_id in unscanned:
        agent_errors.append(
            {
                "agentId": agent_id,
                "sessionId": None,
                "file": None,
                "stage": "discover",
                "reason": f"discovery did not complete (see the discover log){consequence}",
            }
        )
    for scan in scans:
        agent_errors.extend(scan["errors"])
    if agents is not None and plan is None and not unscanned:
        agent_errors.append(_stage_error("select", "selecting sessions failed; see the select log"))
    done = _pull_all(ti, ARCHIVE_TASK)
    backlog = metrics.set_backlog(scans, done)
    log.info("Backlog: %s found by the scans and not archived", result.count(backlog, "completed item"))
    job = result.build_job_result(
        agent_errors=agent_errors,
        selected=plan or [],
        done=done,
        task_errors=_pull_all(ti, UPLOAD_TASK, "error") + _pull_all(ti, ARCHIVE_TASK, "error"),
        dry_run=dry_run,
        deferred=deferred,
    )
    log.info("JobResult: %s", json.dumps(job, indent=2))
    return job


def _stage_error(stage: str, reason: str) -> dict[str, Any]:
    return {"agentId": None, "sessionId": None, "file": None, "stage": stage, "reason": reason}


def watch(ti: Any, settings: Settings) -> host_watch.Watched:
    """A fleet host's watch (``host_watch``) over this worker's state dir, with the DAG's settle times;
    it starts from what the previous watch handed over (its XCom) and logs what it saw."""
    # The latest earlier watch's XCom: one map index (-1) asks for one value, the newest by logical date;
    # without it Airflow returns every earlier run's value, in no particular order.
    previous = ti.xcom_pull(task_ids=WATCH_TASK, map_indexes=-1, include_prior_dates=True)
    remembered = host_watch.keys_from(previous)
    detector = Detector(
        state_dir(), settle_seconds=settings.settle_seconds, db_settle_seconds=settings.db_settle_seconds
    )
    log.info(
        "watching %s: polling every %s s for at most %s min; %d completions signalled before and pending",
        detector.state_dir,
        settings.watch_poll_seconds,
        settings.watch_minutes,
        len(remembered),
    )
    done = host_watch.watch(
        detector,
        remembered=remembered,
        poll_seconds=settings.watch_poll_seconds,
        max_seconds=settings.watch_minutes * 60.0,
    )
    if done.errors:
        log.error(
            "scans failed for: %s (the upload DAG's discover reports why)",
            ", ".join(sorted(set(done.errors))),
        )
    if done.signals:
        metrics.watcher_event()
        log.info("watch event: %d completions from %s", len(done.signals), ", ".join(done.agents))
    else:
        log.info(
            "nothing completed in %.0f s (%d polls); the next watch takes over", done.seconds, done.polls
        )
    return done
