"""openclaw_nexus.config: deployment defaults from the environment, and the fleet's DAG targets."""

from __future__ import annotations

import json

import pytest

from openclaw_nexus.config import Settings, Target, fleet, state_dir


def test_defaults_without_environment(monkeypatch):
    monkeypatch.delenv("SESSION_UPLOAD_MAX_SESSIONS", raising=False)
    settings = Settings.from_env()
    assert settings == Settings()
    assert settings.schedule == "0 * * * *" and settings.max_sessions == 500
    # Files OpenClaw appends in place settle a minute; database commits and whole exports not at all.
    assert (settings.settle_minutes, settings.settle_seconds, settings.db_settle_seconds) == (1, 60.0, 0.0)
    assert settings.watch is True


@pytest.mark.parametrize(
    ("value", "watch"),
    [("0", False), ("false", False), ("off", False), ("No", False), ("1", True), ("true", True), ("", True)],
)
def test_the_watcher_can_be_turned_off(monkeypatch, value, watch):
    monkeypatch.setenv("SESSION_UPLOAD_WATCH", value)
    assert Settings.from_env().watch is watch


def test_a_watch_value_that_is_not_yes_or_no_is_refused(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_WATCH", "sometimes")
    with pytest.raises(ValueError, match="not a yes/no value"):
        Settings.from_env()


def test_settle_times_from_the_environment_in_their_units(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_SETTLE_MINUTES", "3")
    monkeypatch.setenv("SESSION_UPLOAD_DB_SETTLE_SECONDS", "2.5")
    settings = Settings.from_env()
    assert (settings.settle_seconds, settings.db_settle_seconds) == (180.0, 2.5)
    monkeypatch.setenv("SESSION_UPLOAD_DB_SETTLE_SECONDS", "-1")
    with pytest.raises(ValueError, match="0 or more"):
        Settings.from_env()


def test_every_setting_is_overridable(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_MAX_SESSIONS", "40")
    monkeypatch.setenv("SESSION_UPLOAD_READ_TIMEOUT_SECONDS", "2.5")
    monkeypatch.setenv("SESSION_UPLOAD_SCHEDULE", "*/10 * * * *")
    settings = Settings.from_env()
    assert (settings.max_sessions, settings.read_timeout_seconds, settings.schedule) == (
        40,
        2.5,
        "*/10 * * * *",
    )


@pytest.mark.parametrize("value", ["0", "1001"])
def test_max_sessions_stays_below_max_map_length(monkeypatch, value):
    monkeypatch.setenv("SESSION_UPLOAD_MAX_SESSIONS", value)
    with pytest.raises(ValueError, match=r"SESSION_UPLOAD_MAX_SESSIONS must be 1\.\.1000"):
        Settings.from_env()


def test_state_dir_from_environment_or_home(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path))
    assert state_dir() == tmp_path
    monkeypatch.delenv("OPENCLAW_STATE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".openclaw"


def test_no_fleet_is_one_dag_on_the_default_queue(monkeypatch):
    monkeypatch.delenv("SESSION_UPLOAD_FLEET", raising=False)
    assert fleet() == [Target("session_upload")]


def test_a_fleet_is_one_dag_per_host_pinned_to_its_queue(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_FLEET", '[{"host": "box-1"}, {"host": "gpu.2", "queue": "gpu-q"}]')
    assert fleet() == [
        Target("session_upload_box-1", "openclaw-box-1", "box-1"),
        Target("session_upload_gpu.2", "gpu-q", "gpu.2"),
    ]


def test_a_fleet_host_name_must_be_plain(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_FLEET", '[{"host": "../etc"}]')
    with pytest.raises(ValueError, match=r"host name '\.\./etc'"):
        fleet()


def test_a_fleet_host_may_name_its_executor_or_take_the_deployments(monkeypatch):
    monkeypatch.setenv(
        "SESSION_UPLOAD_FLEET",
        json.dumps(
            [
                {"host": "box-1", "executor": "EdgeExecutor"},
                {"host": "box-2"},
                {"host": "box-3", "executor": ""},
            ]
        ),
    )
    monkeypatch.delenv("SESSION_UPLOAD_FLEET_EXECUTOR", raising=False)
    assert [t.executor for t in fleet()] == ["EdgeExecutor", None, None]
    monkeypatch.setenv("SESSION_UPLOAD_FLEET_EXECUTOR", "airflow.providers.edge3.executors.EdgeExecutor")
    assert [t.executor for t in fleet()] == [
        "EdgeExecutor",
        "airflow.providers.edge3.executors.EdgeExecutor",
        "airflow.providers.edge3.executors.EdgeExecutor",
    ]


@pytest.mark.parametrize("executor", ["Edge Executor", "1Edge", "x;rm", 7, "a..b"])
def test_an_executor_name_that_is_no_name_is_refused_naming_the_host(monkeypatch, executor):
    monkeypatch.setenv("SESSION_UPLOAD_FLEET", json.dumps([{"host": "box-1", "executor": executor}]))
    with pytest.raises(ValueError, match=r"host 'box-1': executor"):
        fleet()
