"""
### session_upload: completed OpenClaw sessions → Nexus → archive

Finds **completed** OpenClaw agent sessions under `$OPENCLAW_STATE_DIR/agents/<agentId>/`, uploads
each transcript to Nexus (`POST /api/sessions?code=…`, Connection `nexus_default`), archives each
confirmed upload as `sessions/archive/<sessionId>.jsonl`, and reports a **JobResult** as the
`job_result` task's XCom. Each agent's OpenClaw era is read from disk:

- **JSONL era** (OpenClaw ≤ 2026.7): transcripts in `sessions/` that `sessions.json` does not list,
  settled, unlocked; sent as the file's bytes and moved into the archive (or, with
  `$SESSION_UPLOAD_JSONL_ARCHIVE=copy`, copied there and left to OpenClaw; the `discover` log says which).
- **SQLite era** (OpenClaw 2026.8+, `agent/openclaw-agent.sqlite`, native or migrated): sessions no live
  entry uses any more (rolled over, archived, finished cron runs, deleted, cold), read **read-only** in
  one short transaction each and sent in OpenClaw's own export form; OpenClaw's rows are never touched.
  Live sessions are never sent; the discover log counts them.

- `find_agents`: the agents to scan, in one task: those the check finds may have something to send
  (an agent whose files are unchanged since a full scan found nothing to send is skipped; its log and
  its `check` XCom say how many were scanned and skipped), or those the Param `agents` names.
- `discover` (mapped over those agents, named by agent): finds the agent's completed sessions in its
  store; returns them and errors.
- `select`: orders every agent's sessions oldest first and caps them at `max_sessions`.
- `deliver.upload` → `deliver.archive` (mapped per session, named `<agent>/<session>`): streams one
  transcript to Nexus, then archives it; a failed upload blocks only its own archive.
- `job_result`: reduces everything into the JobResult (its return value), emits the asset
  `nexus://sessions` when it uploaded anything, and **fails when any error was reported**, so the run is
  red. The run's note is the JobResult's message (Browse → Dag Runs).

#### Why a run started
- **Completions** (run type *Asset Triggered*): the watcher in Airflow's triggerer saw sessions complete
  and updated the asset `openclaw://completions`; the run's **Source Asset Events** (the run's details)
  say how many and for which agents (`extra.payload`). Events that arrive during a run start one run
  after it. The run still checks every agent: it takes whatever is completed, not what the event named.
  A backlog larger than `max_sessions` is signalled again once a run has archived its share, so the
  next run follows without waiting for the cron.
- **The cron** (run type *Scheduled*, hourly by default): the safety net, when the triggerer is down or
  the watcher is off (`$SESSION_UPLOAD_WATCH=0`), and what backfills follow: a scheduled run takes what
  changed before its data interval end.
- *Manual* and *Backfill*: a person (trigger form, REST API, `airflow backfill create`).

The Dag Runs list shows each run's **Run Type** and its note (the JobResult message).

Params: `agents`, `settle_minutes`, `max_sessions`, `dry_run`, `include_archived` (see the trigger form).
`settle_minutes` applies to transcript files OpenClaw appends in place (JSONL era) and may still be
writing; completions committed in OpenClaw's database, and the `.zst` exports it publishes whole, are
final when they appear and need no settle time.
A backfill run takes the sessions whose last change (file mtime, or the database window's last change)
falls in its data interval.
With a fleet (`$SESSION_UPLOAD_FLEET`) there is one such DAG per host, `session_upload_<host>`, whose
file tasks run on that host's queue. Airflow cannot pin a watcher to one host, so each host watches itself:
`session_upload_<host>__watch` runs continuously on the host's queue and updates the asset
`openclaw://completions/<host>`, on which (or the cron) `session_upload_<host>` runs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pendulum
from airflow.sdk import (
    DAG,
    Asset,
    AssetAlias,
    AssetWatcher,
    Param,
    dag,
    get_current_context,
    task,
    task_group,
)

from openclaw_nexus import __version__, runs
from openclaw_nexus.compat import (
    EXPONENTIAL_BACKOFF,
    AirflowFailException,
    AssetOrTimeSchedule,
    CronDataIntervalTimetable,
)
from openclaw_nexus.config import JSONL_ARCHIVE_MOVE, MAX_SESSIONS_CEILING, Settings, fleet
from openclaw_nexus.nexus import SessionUploadOperator
from openclaw_nexus.watcher import CompletionTrigger

WATCH_DOC_MD = """
### session_upload_<host>__watch: one fleet host's completion signal

Runs all the time (`@continuous`, one run at a time): its one task, `watch`, runs on the host's queue, so on
the host's own worker, and polls the host's OpenClaw state dir with the single-host watcher's detector (the
rule `discover` applies, the same settle times). It ends as soon as completions have settled there, updating
the asset `openclaw://completions/<host>` (extra: how many, which agents), which starts the host's
`session_upload_<host>`; with nothing to signal it ends after `$SESSION_UPLOAD_WATCH_MINUTES` (10), and the
next run takes over. Each completion is signalled once: a watch starts from what the previous one left
pending (its XCom). Pausing this DAG leaves the host on the cron.
"""

NEXUS_SESSIONS = Asset("nexus://sessions")
# What the watcher updates when sessions complete; the DAG is scheduled on it (never on what it emits).
COMPLETIONS_URI = "openclaw://completions"
WATCHER_NAME = "openclaw_completions"


def completions_uri(host: str | None) -> str:
    """The asset a DAG's completions arrive on: the watcher's, or a fleet host's own."""
    return COMPLETIONS_URI if host is None else f"{COMPLETIONS_URI}/{host}"


def watch_dag_id(dag_id: str) -> str:
    return f"{dag_id}__watch"


def uploads_alias(dag_id: str) -> AssetAlias:
    """The alias ``job_result`` emits ``nexus://sessions`` through: one per DAG (``session_upload__uploads``).
    Airflow links an alias to its asset at the alias's first event, with no guard against a concurrent
    first event: two fleet DAGs sharing one alias collided on that link's primary key (IntegrityError) and
    one green run went red (seen in CI). A DAG runs one job_result at a time (``max_active_runs=1``)."""
    return AssetAlias(f"{dag_id}__uploads")


# Mapped task labels, read from ``ti.task``: the task rendered for this try. Before Airflow 3.1.3 the
# context's ``task`` is the unrendered one, whose task-group arguments are still placeholders (rendering
# the label failed after the upload, and the retry sent it again).
SESSION_LABEL = "{{ ti.task.session['agentId'] }}/{{ ti.task.session['sessionId'] }}"
ARCHIVE_LABEL = (
    "{{ ti.task.op_kwargs['session']['agentId'] }}/{{ ti.task.op_kwargs['session']['sessionId'] }}"
)
# What runs, visible in the UI: the DAG docs end with the package version, and one tag carries it.
VERSION_TAG = f"session-upload:{__version__}"
DOC_MD = f"{__doc__.rstrip()}\n\nPackage: `session-upload {__version__}`.\n"


@task
def find_agents(
    params: dict[str, Any],
    ti: Any = None,
    dag_run: Any = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
) -> list[str]:
    """List the agents that may have something to send (the check: their files changed since a full scan
    found nothing, or that scan found something), or those the `agents` Param names."""
    window = runs.window_for(dag_run, data_interval_start, data_interval_end, params["settle_minutes"])
    return runs.find_agents(params["agents"], ti, window, include_archived=params["include_archived"])


# multiple_outputs=False: what Airflow inferred before the ``-> dict`` annotation (one XCom per scan).
@task(multiple_outputs=False, map_index_template="{{ task.op_kwargs['agent_id'] }}")
def discover(
    agent_id: str,
    db_settle_seconds: float,
    params: dict[str, Any],
    jsonl_archive: str = JSONL_ARCHIVE_MOVE,
    ti: Any = None,
    dag_run: Any = None,
    data_interval_start: datetime | None = None,
    data_interval_end: datetime | None = None,
) -> dict[str, Any]:
    """Find one agent's completed sessions in its store (files or database); return them, oldest first."""
    window = runs.window_for(
        dag_run, data_interval_start, data_interval_end, params["settle_minutes"], db_settle_seconds
    )
    return runs.discover(
        agent_id, window, include_archived=params["include_archived"], ti=ti, jsonl_archive=jsonl_archive
    )


# none_failed: when the check finds no agent with something to send, discover maps over nothing and is
# skipped; the run still selects nothing and reports its JobResult.
@task(trigger_rule="none_failed")
def select(
    scans: list[dict[str, Any]] | None, params: dict[str, Any], ti: Any = None
) -> list[dict[str, Any]]:
    """Take every agent's sessions oldest first, capped at `max_sessions`; none to deliver on a dry run."""
    return runs.select(scans, params["max_sessions"], ti, dry_run=params["dry_run"])


# One XCom, the receipt (job_result reads return_value only). A ``-> dict`` task would otherwise infer
# multiple_outputs and push one more XCom per key: 16 writes per session, ~1.1 s of each archive task.
@task(multiple_outputs=False, map_index_template=ARCHIVE_LABEL)
def archive(session: dict[str, Any], receipt: dict[str, Any]) -> dict[str, Any]:
    """Archive the uploaded bytes as `sessions/archive/<sessionId>.jsonl`: never overwrites, retry-safe."""
    return runs.archive(session, receipt, get_current_context()["ti"])


# ``nexus://sessions`` is emitted through the DAG's alias (only when something was uploaded); naming it as
# an inlet too makes Airflow register the asset when it parses the DAG. An asset known only through an alias
# is created at its first event, and two DAGs of a fleet emitting that first event at once collided on
# its unique index (IntegrityError): one job_result was failed after a green run. The DAG adds the outlet.
@task(trigger_rule="all_done", inlets=[NEXUS_SESSIONS], multiple_outputs=False)
def job_result() -> dict[str, Any]:
    """Reduce the run into the JobResult (its return value), announce new uploads, and fail if anything
    failed."""
    context = get_current_context()
    result = runs.job_result(context["ti"], dry_run=context["params"]["dry_run"])
    if result["success"] and result["itemsProcessed"] and not context["params"]["dry_run"]:
        context["outlet_events"][uploads_alias(context["dag"].dag_id)].add(
            NEXUS_SESSIONS, extra={"uploaded": result["itemsProcessed"]}
        )
    if not result["success"]:
        # A raising task returns nothing: push the JobResult as the return value first, so a red run has it
        # too (and the run's note, which the listener takes from it).
        context["ti"].xcom_push(key="return_value", value=result)
        raise AirflowFailException(f"{result['message']}, {len(result['errors'])} errors: see the JobResult")
    return result


def schedule_for(
    settings: Settings, host: str | None = None
) -> CronDataIntervalTimetable | AssetOrTimeSchedule:
    """The hourly cron (its data intervals: backfills keep their meaning), or'ed, when ``settings.watch``,
    with the completions asset: on one host the watcher's, which runs in the triggerer; for a fleet host the
    asset its watch DAG updates. Only objects are built here. The trigger's kwargs are plain numbers from
    the settings, the same at every parse, so a re-parse leaves the running trigger (and what it remembers)
    alone."""
    cron = CronDataIntervalTimetable(settings.schedule, timezone="UTC")
    if not settings.watch:
        return cron
    if host is not None:
        return AssetOrTimeSchedule(timetable=cron, assets=Asset(completions_uri(host)))
    trigger = CompletionTrigger(
        poll_seconds=settings.watch_poll_seconds,
        settle_seconds=settings.settle_seconds,
        db_settle_seconds=settings.db_settle_seconds,
    )
    completions = Asset(COMPLETIONS_URI, watchers=[AssetWatcher(name=WATCHER_NAME, trigger=trigger)])
    return AssetOrTimeSchedule(timetable=cron, assets=completions)


def pinned(queue: str | None, executor: str | None) -> dict[str, str]:
    """The task arguments that send a fleet host's tasks to that host's worker: its queue and, when the host
    is reached through another executor than the default (``EdgeExecutor``), that executor."""
    return {
        **({"queue": queue} if queue else {}),
        **({"executor": executor} if executor else {}),
    }


def build_watch(dag_id: str, host: str, queue: str, executor: str | None = None) -> DAG:
    """A fleet host's watch DAG: ``watch`` on the host's worker, again and again (``@continuous``)."""
    settings = Settings.from_env()
    signal = AssetAlias(f"{watch_dag_id(dag_id)}__completions")

    # Outlet through an alias: an outlet asset would get an event at every success, a watch that ran out
    # of time included; the alias carries one only when completions were signalled.
    @task(task_id=runs.WATCH_TASK, outlets=[signal], multiple_outputs=False, queue=queue, executor=executor)
    def watch() -> dict[str, Any]:
        """Poll this host's state dir until completions settle (then signal them) or the watch's time is up;
        return what is still pending for the next watch."""
        context = get_current_context()
        done = runs.watch(context["ti"], settings)
        if done.signals:
            context["outlet_events"][signal].add(Asset(completions_uri(host)), extra=done.event())
        return done.handover()

    @dag(
        dag_id=watch_dag_id(dag_id),
        schedule="@continuous",
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["openclaw", "watch", VERSION_TAG, f"host:{host}"],
        doc_md=f"{WATCH_DOC_MD.replace('<host>', host)}\nPackage: `session-upload {__version__}`.\n",
        # A failed watch is followed by the next continuous run at once: no retries.
        default_args={"retries": 0},
    )
    def session_upload_watch() -> None:
        watch()

    return session_upload_watch()


def build_session_upload(
    dag_id: str, queue: str | None = None, host: str | None = None, executor: str | None = None
) -> DAG:
    """One session_upload DAG; with a fleet, one per host, its file tasks pinned to the host's queue, run
    by the host's watch DAG (``build_watch``) or the cron."""
    pin = pinned(queue, executor)
    settings = Settings.from_env()

    @task_group
    def deliver(session: dict[str, Any]) -> None:
        """Upload one session, then archive it: each archive waits only for its own upload."""
        receipt = SessionUploadOperator(
            task_id="upload",
            session=session,
            map_index_template=SESSION_LABEL,
            connect_timeout=settings.connect_timeout_seconds,
            read_timeout=settings.read_timeout_seconds,
            http_attempts=settings.http_attempts,
            backoff_initial=settings.backoff_initial_seconds,
            backoff_max=settings.backoff_max_seconds,
            **pin,
        )
        archive.override(**pin)(session=session, receipt=receipt.output)  # type: ignore[arg-type]

    @dag(
        dag_id=dag_id,
        schedule=schedule_for(settings, host),
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=["openclaw", "nexus", "sessions", VERSION_TAG, *([f"host:{host}"] if host else [])],
        doc_md=DOC_MD,
        default_args={
            "retries": settings.task_retries,
            "retry_delay": timedelta(seconds=settings.retry_delay_seconds),
            "retry_exponential_backoff": EXPONENTIAL_BACKOFF,
            "max_retry_delay": timedelta(minutes=10),
        },
        params={
            "agents": Param(
                [],
                type="array",
                items={"type": "string"},
                title="Agents",
                description="Agent ids to scan, one per line (no check). Empty: every agent under agents/ "
                "that may have something to send (find_agents checks them all).",
            ),
            "settle_minutes": Param(
                settings.settle_minutes,
                type="integer",
                minimum=0,
                title="Settle time (minutes)",
                description="A transcript file OpenClaw appends in place (JSONL era) counts only when it "
                "was last modified at least this long ago. Completions in OpenClaw's database and its .zst "
                "exports are final when they appear: no settle time.",
            ),
            "max_sessions": Param(
                settings.max_sessions,
                type="integer",
                minimum=1,
                maximum=MAX_SESSIONS_CEILING,
                title="Max sessions per run",
                description="Oldest first; the rest wait for later runs (stays below [core] max_map_length).",
            ),
            "dry_run": Param(
                False,
                type="boolean",
                title="Dry run",
                description="Discover and report what would be uploaded; send nothing, move nothing.",
            ),
            "include_archived": Param(
                False,
                type="boolean",
                title="Include archived (replay)",
                description="Also re-send transcripts already in sessions/archive/ from the run's window, "
                "without moving them (replay into Nexus after a loss there).",
            ),
        },
    )
    def session_upload() -> None:
        # Airflow's task stubs type a call with the function's own parameters: they know neither the
        # arguments it fills from the context (params, ti) nor XComArgs standing for values (misc: the
        # note on Task.__call__ that comes with that error).
        agents = find_agents.override(**pin)()  # type: ignore[call-arg, misc]
        # The watcher's settle time, from the same settings; how JSONL-era files are archived: a choice about
        # what OpenClaw keeps on disk, the deployment's (no Param: a trigger should not switch it per run).
        settle = {"db_settle_seconds": settings.db_settle_seconds, "jsonl_archive": settings.jsonl_archive}
        scans = discover.override(**pin).partial(**settle).expand(agent_id=agents)
        sessions = select(scans)  # type: ignore[call-arg, arg-type, misc]
        deliver.expand(session=sessions) >> job_result.override(outlets=[uploads_alias(dag_id)])()

    return session_upload()


def build_dags() -> list[DAG]:
    """Every DAG of this deployment: ``session_upload``, or with ``$SESSION_UPLOAD_FLEET`` two per host
    (``session_upload_<host>`` and, unless ``$SESSION_UPLOAD_WATCH=0``, its ``__watch``).

    Call it at the top level of a file in the DAGs folder (``dags/session_upload_dag.py``): Airflow
    registers the DAGs built while it imports that file as that file's DAGs.
    """
    dags = []
    watched = Settings.from_env().watch
    for target in fleet():
        dags.append(build_session_upload(target.dag_id, target.queue, target.host, target.executor))
        if watched and target.host is not None and target.queue is not None:
            dags.append(build_watch(target.dag_id, target.host, target.queue, target.executor))
    return dags
