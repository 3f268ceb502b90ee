"""DAG integrity: parses with no import errors, keeps the contract users rely on, needs no secrets."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def airflow_core():
    """(DagBag, the DAG serializer) where Airflow core keeps them: since 3.2.0, or before (tests/adoption)."""
    try:
        from airflow.dag_processing.dagbag import DagBag
        from airflow.serialization.serialized_objects import DagSerialization
    except ImportError:  # Airflow < 3.2.0
        from airflow.models.dagbag import DagBag
        from airflow.serialization.serialized_objects import SerializedDAG as DagSerialization
    return DagBag, DagSerialization


@pytest.fixture(scope="module")
def dagbag():
    DagBag, _ = airflow_core()
    return DagBag(dag_folder=str(ROOT / "dags"))


@pytest.fixture(scope="module")
def dag(dagbag):
    return dagbag.dags["session_upload"]


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert list(dagbag.dag_ids) == ["session_upload"]


def test_contract_ids_tags_docs_and_schedule(dag):
    assert dag.dag_id == "session_upload"
    assert set(dag.task_ids) == {
        "find_agents",
        "discover",
        "select",
        "deliver.upload",
        "deliver.archive",
        "job_result",
    }
    assert dag.tags and {"openclaw", "nexus"} <= set(dag.tags)
    assert dag.doc_md and "### session_upload" in dag.doc_md
    assert dag.max_active_runs == 1
    assert dag.catchup is False
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable", "backfills need real data intervals"
    leaves = [t.task_id for t in dag.tasks if not t.downstream_list]
    assert leaves == ["job_result"]


def test_compat_gives_the_sdk_names_from_3_2_and_core_names_before(dag):
    """openclaw_nexus.compat: on Airflow 3.2+ exactly the airflow.sdk objects; on 3.1 (tests/adoption)
    core's. Either way the task retry waits double (3.2 made the setting a multiplier)."""
    import airflow.sdk

    from openclaw_nexus import compat

    if compat.SDK_1_2:
        from airflow.sdk.exceptions import AirflowException, AirflowFailException

        timetable = airflow.sdk.CronDataIntervalTimetable
        assert compat.EXPONENTIAL_BACKOFF == 2.0
    else:
        from airflow.exceptions import AirflowException, AirflowFailException
        from airflow.timetables.interval import CronDataIntervalTimetable as timetable

        assert not hasattr(airflow.sdk, "CronDataIntervalTimetable")
        assert compat.EXPONENTIAL_BACKOFF is True
    assert compat.CronDataIntervalTimetable is timetable
    assert (compat.AirflowException, compat.AirflowFailException) == (AirflowException, AirflowFailException)
    assert type(dag.timetable) is timetable
    assert {t.retry_exponential_backoff for t in dag.tasks} == {compat.EXPONENTIAL_BACKOFF}


def test_the_package_version_is_visible_in_the_docs_and_tags(dag):
    """A user sees which session-upload runs: the DAG docs end with it, one tag carries it."""
    import openclaw_nexus

    assert dag.doc_md.rstrip().endswith(f"Package: `session-upload {openclaw_nexus.__version__}`.")
    assert f"session-upload:{openclaw_nexus.__version__}" in dag.tags


def test_every_task_has_a_docstring_and_retries(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        doc = getattr(task, "doc_md", None) or getattr(task, "doc", None) or (task.__doc__ or "")
        assert doc.strip(), f"{task.task_id} has no docstring"


def test_job_result_runs_whatever_happened_and_mapped_tasks_are_named(dag):
    assert dag.get_task("job_result").trigger_rule == "all_done"
    assert "agentId" in dag.get_task("deliver.upload").map_index_template
    assert "sessionId" in dag.get_task("deliver.archive").map_index_template
    assert "deliver.upload" in dag.get_task("deliver.archive").upstream_task_ids


def test_every_task_pushes_one_return_value_not_one_xcom_per_key(dag):
    """A ``-> dict`` task infers ``multiple_outputs``: one XCom write per key besides return_value, which
    on the embedded default cost ~1.1 s per archive task (job_result reads return_value only)."""
    assert [t.task_id for t in dag.tasks if getattr(t, "multiple_outputs", False)] == []


def test_params_are_documented_with_safe_defaults(dag):
    params = dag.params
    assert set(params.keys()) == {"agents", "settle_minutes", "max_sessions", "dry_run", "include_archived"}
    for name in params:
        assert params.get_param(name).description, name
    assert params["agents"] == []
    assert params["dry_run"] is False
    assert params["include_archived"] is False
    assert 0 < params["settle_minutes"] <= 60
    assert params["max_sessions"] <= 1000 < 1024, "stays below [core] max_map_length"
    assert params.get_param("max_sessions").schema["maximum"] <= 1000


def test_serialized_dag_carries_no_connection_details(monkeypatch):
    DagBag, DagSerialization = airflow_core()
    key = "parse-time-key-must-not-appear"
    monkeypatch.setenv(
        "AIRFLOW_CONN_NEXUS_DEFAULT",
        f'{{"conn_type": "http", "host": "127.0.0.1", "port": 1, "password": "{key}"}}',
    )
    dag = DagBag(dag_folder=str(ROOT / "dags")).dags["session_upload"]
    text = str(DagSerialization.to_dict(dag))
    assert "nexus_default" in text  # the Connection is referenced by id only
    assert key not in text and "password" not in text


def _loaded_top_level_modules(plugins: Path) -> str:
    code = (
        "import sys; from airflow import plugins_manager; plugins_manager.ensure_plugins_loaded(); "
        "print(sorted(m for m in ('archive', 'discovery', 'nexus', 'runs', 'result') if m in sys.modules))"
    )
    env = {**os.environ, "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_plugin_loader_does_not_run_package_modules_as_top_level_modules(tmp_path):
    assert _loaded_top_level_modules(ROOT / "plugins") == "[]"
    # Control: the same package without plugins/.airflowignore is executed module by module.
    bare = tmp_path / "plugins"
    shutil.copytree(ROOT / "plugins", bare, ignore=shutil.ignore_patterns(".airflowignore", "__pycache__"))
    assert _loaded_top_level_modules(bare) == "['archive', 'discovery', 'nexus', 'result', 'runs']"


def test_the_distribution_registers_the_run_note_listener_as_an_airflow_plugin(tmp_path):
    """Installed, the package's ``airflow.plugins`` entry point registers the plugin ``session_upload`` (the
    dag-run listener that sets run notes, openclaw_nexus.run_notes) in every Airflow component, the scheduler
    included, with nothing in the plugins folder: here an empty one, as in a user's deployment."""
    (tmp_path / "plugins").mkdir()
    env = os.environ | {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(tmp_path / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    done = subprocess.run(
        [Path(sys.executable).parent / "airflow", "plugins", "--output", "json"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ours = [plugin for plugin in json.loads(done.stdout) if plugin["name"] == "session_upload"]
    assert len(ours) == 1, done.stdout
    assert ours[0]["listeners"] == ["openclaw_nexus.run_notes.RunNotes"]
    assert ours[0]["source"].startswith("session-upload=="), ours[0]["source"]


def test_a_fleet_builds_one_dag_per_host_with_file_tasks_on_its_queue(monkeypatch):
    DagBag, _ = airflow_core()
    monkeypatch.setenv("SESSION_UPLOAD_FLEET", '[{"host": "box-1"}, {"host": "box-2", "queue": "q2"}]')
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == ["session_upload_box-1", "session_upload_box-2"]
    file_tasks = {"find_agents", "discover", "deliver.upload", "deliver.archive"}
    for dag_id, queue in [("session_upload_box-1", "openclaw-box-1"), ("session_upload_box-2", "q2")]:
        dag = bag.dags[dag_id]
        queues = {task.task_id: task.queue for task in dag.tasks}
        assert {queues[t] for t in file_tasks} == {queue}, queues
        assert queues["job_result"] != queue
