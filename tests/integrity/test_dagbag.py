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


def parse(monkeypatch=None, **env: str):
    """A fresh DagBag of the DAG file, with the settings in ``env`` (set through ``monkeypatch``)."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    DagBag, _ = airflow_core()
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    return bag


def serialized_timetable(dag) -> dict:
    """The DAG's timetable as the scheduler and triggerer read it: serialized with the DAG."""
    _, DagSerialization = airflow_core()
    return DagSerialization.to_dict(dag)["dag"]["timetable"]


def watchers(dag) -> list[dict]:
    """Every asset watcher in the DAG's serialized schedule (name, trigger classpath and kwargs)."""
    found: list[dict] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            found.extend(node.get("watchers") or [])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(serialized_timetable(dag))
    return found


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
    assert type(dag.timetable).__name__ == "AssetOrTimeSchedule", "the cron or'ed with completions"
    assert type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable", "backfills need intervals"
    leaves = [t.task_id for t in dag.tasks if not t.downstream_list]
    assert leaves == ["job_result"]


def outlet_aliases(dag) -> list[str]:
    return [o.name for o in dag.get_task("job_result").outlets if type(o).__name__ == "AssetAlias"]


def test_job_result_emits_through_the_session_upload_alias(dag):
    assert outlet_aliases(dag) == ["session_upload__uploads"]
    assert [o.name for o in dag.get_task("job_result").inlets] == ["nexus://sessions"]


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
    if compat.SDK_1_2:
        schedule = airflow.sdk.AssetOrTimeSchedule
    else:
        from airflow.timetables.assets import AssetOrTimeSchedule as schedule

        assert not hasattr(airflow.sdk, "AssetOrTimeSchedule")
    assert compat.CronDataIntervalTimetable is timetable
    assert compat.AssetOrTimeSchedule is schedule
    assert (compat.AirflowException, compat.AirflowFailException) == (AirflowException, AirflowFailException)
    assert type(dag.timetable) is schedule and type(dag.timetable.timetable) is timetable
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
    """No task has ``multiple_outputs`` (which a ``-> dict`` task infers: one XCom write per key besides
    ``return_value``, each a metadata-DB write; job_result reads ``return_value`` only)."""
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


SHIPPED_TRIGGER_KWARGS = {
    "state_dir": None,  # $OPENCLAW_STATE_DIR, read in the triggerer
    "poll_seconds": 10.0,
    "batch_seconds": 3.0,
    "settle_seconds": 60.0,
    "db_settle_seconds": 0.0,
    "sweep_per_poll": 4,
    "duty": 0.2,
}


def test_runs_start_on_the_hourly_cron_or_on_completions_through_the_watched_asset(dag):
    """AssetOrTimeSchedule: the cron keeps its data intervals; the asset is the watcher's, not the one the
    DAG emits; its one watcher runs CompletionTrigger with primitive kwargs, the shipped settle times."""
    from openclaw_nexus.watcher import CompletionTrigger

    condition = dag.timetable.asset_condition
    assert condition.uri.rstrip("/") == "openclaw://completions"
    assert condition.uri.rstrip("/") != "nexus://sessions", "a DAG scheduled on its own outlet would loop"
    (watcher,) = condition.watchers
    assert watcher.name == "openclaw_completions"
    assert isinstance(watcher.trigger, CompletionTrigger)
    assert watcher.trigger.serialize() == ("openclaw_nexus.watcher.CompletionTrigger", SHIPPED_TRIGGER_KWARGS)
    assert json.loads(json.dumps(SHIPPED_TRIGGER_KWARGS)) == SHIPPED_TRIGGER_KWARGS, "primitive kwargs only"
    # The DAG's discovery gets the same database settle time as the trigger (files: the Param).
    assert dag.get_task("discover").partial_kwargs["op_kwargs"]["db_settle_seconds"] == 0.0
    assert dag.params["settle_minutes"] * 60.0 == SHIPPED_TRIGGER_KWARGS["settle_seconds"]
    # The docs (the UI's Docs tab) say why a run started and where the UI shows it.
    why = dag.doc_md.split("#### Why a run started", 1)[1]
    assert all(word in why for word in ("Asset Triggered", "Scheduled", "Source Asset Events", "Run Type"))


def test_the_schedule_survives_serialization_with_the_crons_data_intervals_and_the_watcher(dag):
    """What the scheduler reads: the serialized DAG, deserialized. Cron runs keep hourly data intervals
    (backfills mean what they meant); the watcher travels with its trigger's classpath and kwargs."""
    import pendulum
    from airflow.timetables.base import DataInterval, TimeRestriction

    _, DagSerialization = airflow_core()
    encoded = DagSerialization.to_dict(dag)
    timetable = encoded["dag"]["timetable"]
    assert timetable["__type"] == "airflow.timetables.assets.AssetOrTimeSchedule"
    assert timetable["__var"]["timetable"]["__var"]["expression"] == "0 * * * *"
    assert watchers(dag) == [
        {
            "name": "openclaw_completions",
            "trigger": {
                "classpath": "openclaw_nexus.watcher.CompletionTrigger",
                "kwargs": SHIPPED_TRIGGER_KWARGS,
            },
        }
    ]
    restored = DagSerialization.from_dict(json.loads(json.dumps(encoded))).timetable  # as stored
    assert type(restored).__name__ == "AssetOrTimeSchedule"
    hour = DataInterval(
        pendulum.datetime(2026, 3, 1, 5, tz="UTC"), pendulum.datetime(2026, 3, 1, 6, tz="UTC")
    )
    info = restored.next_dagrun_info(
        last_automated_data_interval=hour,
        restriction=TimeRestriction(earliest=None, latest=None, catchup=True),
    )
    assert (info.data_interval.start, info.data_interval.end) == (hour.end, hour.end.add(hours=1))
    assert info.run_after == hour.end.add(hours=1)


def test_every_parse_gives_the_watcher_the_same_trigger_so_the_running_one_is_kept(monkeypatch):
    """The triggerer keys a trigger by (classpath, kwargs): a re-parse with other kwargs would replace the
    running watcher and lose what it remembers. Two parses, as the dag-processor does them, agree."""
    from airflow.triggers.base import BaseEventTrigger

    first, second = (watchers(parse().dags["session_upload"]) for _ in range(2))
    assert first == second and len(first) == 1
    (one,), (two,) = first, second
    assert BaseEventTrigger.hash(
        one["trigger"]["classpath"], one["trigger"]["kwargs"]
    ) == BaseEventTrigger.hash(two["trigger"]["classpath"], two["trigger"]["kwargs"])


def test_the_settle_times_reach_the_trigger_and_the_dag_alike(monkeypatch):
    dag = parse(monkeypatch, SESSION_UPLOAD_SETTLE_MINUTES="3", SESSION_UPLOAD_DB_SETTLE_SECONDS="2.5").dags[
        "session_upload"
    ]
    (watcher,) = watchers(dag)
    assert (
        watcher["trigger"]["kwargs"]["settle_seconds"],
        watcher["trigger"]["kwargs"]["db_settle_seconds"],
    ) == (
        180.0,
        2.5,
    )
    assert dag.params["settle_minutes"] == 3
    assert dag.get_task("discover").partial_kwargs["op_kwargs"]["db_settle_seconds"] == 2.5


def test_with_the_watcher_off_the_dag_runs_on_the_plain_cron(monkeypatch):
    """With SESSION_UPLOAD_WATCH=0 (deployments without a triggerer) the timetable is a plain
    ``CronDataIntervalTimetable``, not one on an asset too, and the DAG has no asset watcher."""
    from openclaw_nexus import compat

    dag = parse(monkeypatch, SESSION_UPLOAD_WATCH="0").dags["session_upload"]
    assert type(dag.timetable) is compat.CronDataIntervalTimetable
    assert watchers(dag) == []


def test_a_fleet_builds_two_dags_per_host_with_file_tasks_on_its_queue(monkeypatch):
    """Per host: ``session_upload_<host>``, its file tasks on the host's queue, on the cron or its host's
    completions asset (no watcher: a watcher cannot be pinned to a host), and its ``__watch`` DAG,
    continuous, its one task on the host's queue, emitting that asset through an alias of its own."""
    DagBag, _ = airflow_core()
    monkeypatch.setenv("SESSION_UPLOAD_FLEET", '[{"host": "box-1"}, {"host": "box-2", "queue": "q2"}]')
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == [
        "session_upload_box-1",
        "session_upload_box-1__watch",
        "session_upload_box-2",
        "session_upload_box-2__watch",
    ]
    file_tasks = {"find_agents", "discover", "deliver.upload", "deliver.archive"}
    for host, queue in [("box-1", "openclaw-box-1"), ("box-2", "q2")]:
        dag_id = f"session_upload_{host}"
        dag = bag.dags[dag_id]
        queues = {task.task_id: task.queue for task in dag.tasks}
        assert {queues[t] for t in file_tasks} == {queue}, queues
        assert queues["job_result"] != queue
        assert type(dag.timetable).__name__ == "AssetOrTimeSchedule"
        assert type(dag.timetable.timetable).__name__ == "CronDataIntervalTimetable"
        assert dag.timetable.asset_condition.uri == f"openclaw://completions/{host}"
        assert watchers(dag) == []
        # Its own alias: two DAGs' first events through one shared alias collided on the alias-asset link.
        assert outlet_aliases(dag) == [f"{dag_id}__uploads"]

        watch = bag.dags[f"{dag_id}__watch"]
        assert watch.max_active_runs == 1 and type(watch.timetable).__name__ == "ContinuousTimetable"
        assert [(t.task_id, t.queue, t.retries) for t in watch.tasks] == [("watch", queue, 0)]
        (outlet,) = watch.get_task("watch").outlets
        assert (type(outlet).__name__, outlet.name) == ("AssetAlias", f"{dag_id}__watch__completions")
        assert f"host:{host}" in watch.tags and watch.doc_md and "<host>" not in watch.doc_md


def test_a_fleet_without_the_watch_has_no_watch_dags_and_runs_on_the_cron(monkeypatch):
    bag = parse(monkeypatch, SESSION_UPLOAD_FLEET='[{"host": "box-1"}]', SESSION_UPLOAD_WATCH="0")
    assert bag.dag_ids == ["session_upload_box-1"]
    assert type(bag.dags["session_upload_box-1"].timetable).__name__ == "CronDataIntervalTimetable"


def test_a_fleet_host_on_the_edge_executor_has_its_file_tasks_and_watch_sent_there(monkeypatch):
    """``"executor": "EdgeExecutor"``: the host's file tasks and its watch carry that executor and the host's
    queue (an Edge worker started with ``-q openclaw-<host>`` takes them); select and job_result stay on the
    default executor; a host without one stays on the default (Celery) too."""
    bag = parse(
        monkeypatch,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor,airflow.providers.edge3.executors.EdgeExecutor",
        SESSION_UPLOAD_FLEET='[{"host": "edge-1", "executor": "EdgeExecutor"}, {"host": "celery-1"}]',
    )
    file_tasks = {"find_agents", "discover", "deliver.upload", "deliver.archive"}
    edge = bag.dags["session_upload_edge-1"]
    pins = {t.task_id: (t.executor, t.queue) for t in edge.tasks}
    assert {pins[t] for t in file_tasks} == {("EdgeExecutor", "openclaw-edge-1")}, pins
    assert pins["select"][0] is None and pins["job_result"][0] is None
    (watch,) = bag.dags["session_upload_edge-1__watch"].tasks
    assert (watch.executor, watch.queue) == ("EdgeExecutor", "openclaw-edge-1")
    celery = bag.dags["session_upload_celery-1"]
    assert {t.executor for t in celery.tasks} == {None}
