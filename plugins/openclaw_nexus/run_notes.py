"""Each session_upload run's note is its JobResult message, so Browse → Dag Runs reads at a glance.

A task cannot set its run's note: the Task SDK and its Execution API read a run's note but have no way to
write one (Airflow 3.1 to 3.3; apache/airflow#64890 asks for it). The scheduler can. Airflow calls
dag-run listeners when a run turns success or failed, inside the transaction that records it (the
scheduler; ``airflow dags test``; the api-server when someone marks a run), with the run's ORM object. The
listener here reads the run's JobResult (the ``job_result`` task's ``return_value`` XCom, which a red run
has too) through that object's session and writes its ``message`` as the note, in the same transaction
(``airflow dags test`` hands over a detached object: there, in a short session of its own).

It is the Airflow plugin ``session_upload``, registered by the distribution's ``airflow.plugins`` entry
point: installing the package is all it takes, on Airflow 3.1.0 as on 3.3. A note someone wrote (the UI,
the REST API, a trigger with a note) is left as it is; a note this listener wrote (``user_id``
``session_upload``) is replaced when the run finishes again (after a Clear). Runs of other DAGs, and runs
whose ``job_result`` never ran, are left alone. It never raises into the scheduler: a failure is
logged.
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Any, ClassVar

from airflow.listeners import hookimpl
from airflow.plugins_manager import AirflowPlugin

from openclaw_nexus.config import DAG_ID
from openclaw_nexus.result import JOB_ID

log = logging.getLogger(__name__)

JOB_RESULT_TASK = "job_result"
# The note's user_id: marks a note as this listener's, so a person's note is never overwritten.
NOTE_AUTHOR = "session_upload"
# dag_run_note.content is String(1000).
NOTE_MAX = 1000


def is_session_upload(dag_id: str) -> bool:
    """``session_upload``, or a fleet's ``session_upload_<host>``."""
    return dag_id == DAG_ID or dag_id.startswith(f"{DAG_ID}_")


def job_result_of(dag_run_id: int, session: Any) -> dict[str, Any] | None:
    """The run's JobResult (the job_result task's return value), or None if it has none."""
    from airflow.models.xcom import XComModel
    from sqlalchemy import select

    row = session.scalars(
        select(XComModel).where(
            XComModel.dag_run_id == dag_run_id,
            XComModel.task_id == JOB_RESULT_TASK,
            XComModel.map_index == -1,
            XComModel.key == "return_value",
        )
    ).first()
    if row is None:
        return None
    value = XComModel.deserialize_value(row)
    if isinstance(value, dict) and value.get("jobId") == JOB_ID and isinstance(value.get("message"), str):
        return value
    return None


def set_run_note(dag_run: Any) -> str | None:
    """Write the run's JobResult message as its note; return the note written, or None."""
    from sqlalchemy import inspect
    from sqlalchemy.orm import object_session

    if not is_session_upload(dag_run.dag_id):
        return None
    session = object_session(dag_run)
    if session is not None:
        # The scheduler's run, in its session: one read, and the note goes into its transaction. (No
        # savepoint: the scheduler refuses any commit in its session, a savepoint's release included.)
        return _write_note(dag_run, job_result_of(dag_run.id, session))
    # A run outside any session: `airflow dags test` hands over its run object detached, its note not
    # loaded (DagRun.update_state merges the object back into its session afterwards; an unloaded note
    # is left out of that merge). The note is written in a session of our own, committed at once.
    if "dag_run_note" not in inspect(dag_run).unloaded:
        log.warning(
            "run %s of %s: a detached run object with its note loaded; no run note",
            dag_run.run_id,
            dag_run.dag_id,
        )
        return None
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session(scoped=False) as own:
        run = own.get(DagRun, dag_run.id)
        return _write_note(run, job_result_of(dag_run.id, own))


def _write_note(dag_run: Any, job: dict[str, Any] | None) -> str | None:
    if job is None:
        log.info("run %s of %s has no JobResult: no note", dag_run.run_id, dag_run.dag_id)
        return None
    message: str = job["message"][:NOTE_MAX]
    note = dag_run.dag_run_note
    if note is None:
        dag_run.note = (message, NOTE_AUTHOR)
    elif note.user_id == NOTE_AUTHOR:
        note.content = message
    else:
        log.info(
            "run %s of %s: left the note %s wrote (the JobResult says: %s)",
            dag_run.run_id,
            dag_run.dag_id,
            note.user_id or "someone",
            message,
        )
        return None
    log.info("run %s of %s: note set to the JobResult message: %s", dag_run.run_id, dag_run.dag_id, message)
    return message


class RunNotes:
    """The dag-run listener: a finished session_upload run gets its JobResult message as its note."""

    @hookimpl
    def on_dag_run_success(self, dag_run: Any, msg: str) -> None:
        self._note(dag_run)

    @hookimpl
    def on_dag_run_failed(self, dag_run: Any, msg: str) -> None:
        self._note(dag_run)

    @staticmethod
    def _note(dag_run: Any) -> None:
        try:
            set_run_note(dag_run)
        except Exception:
            log.exception("run %s of %s: could not set the run note", dag_run.run_id, dag_run.dag_id)


class SessionUploadPlugin(AirflowPlugin):
    """Registered by the distribution's ``airflow.plugins`` entry point (pyproject.toml)."""

    name = "session_upload"
    # AirflowPlugin annotates listeners as an instance attribute; Airflow reads it from the class (ClassVar,
    # as ruff's RUF012 asks for a mutable class attribute).
    listeners: ClassVar[list[ModuleType | object]] = [RunNotes()]  # type: ignore[misc]
