"""README, "Add it to your Airflow", tried as a new user would: a fresh venv holding only Airflow, at the
lowest supported release and at the newest (the locked one), then the section's steps as written (install
with pip, the DAG file, the Connection and OPENCLAW_STATE_DIR, one `airflow dags test`, and the Dockerfile's
RUN line, in a plain venv since there is no Docker engine), then the run must have uploaded to the Nexus
stand-in and archived, and no package the venv had may have changed version."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from packaging.version import Version

from openclaw_nexus import __version__
from tests.e2e.test_dag_runs import assert_received_exactly, sessions_of, snapshot_tree
from tools.demo.sample_state import make_state
from tools.stacks import adoption
from tools.stacks.sandbox import API_KEY, ROOT, AirflowSandbox, migrate

SECTION = "## Add it to your Airflow"


def readme_blocks() -> list[tuple[str, str]]:
    """(language, text) of every fenced block in the section, in order."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index(f"\n{SECTION}\n")
    end = readme.find("\n## ", start + len(SECTION) + 2)
    return re.findall(r"^```(\w+)\n(.*?)^```$", readme[start : end if end > 0 else None], re.M | re.S)


def commands(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


RELEASES = {
    adoption.LOWEST_AIRFLOW: adoption.LOWEST_AIRFLOW_RESOLVED_AT,
    adoption.NEWEST_AIRFLOW: adoption.NEWEST_AIRFLOW_RESOLVED_AT,
}


def test_the_newest_release_tried_is_the_locked_one():
    locked = re.search(r'"apache-airflow==([^"]+)"', (ROOT / "pyproject.toml").read_text())
    assert locked and locked.group(1) == adoption.NEWEST_AIRFLOW


@pytest.fixture(params=sorted(RELEASES, key=Version))
def fresh_venv(request, tmp_path: Path) -> Path:
    """A venv with pip and only Airflow (resolved as of its release day, as its constraints would)."""
    venv = tmp_path / "venv"
    adoption.run([adoption.uv(), "venv", "--quiet", "--no-config", "--seed", "--python", "python3.11", venv])
    adoption.install(venv, [f"apache-airflow=={request.param}"], RELEASES[request.param])
    return venv


@pytest.fixture
def fresh_home(fresh_venv: Path, lowest_template: Path, tmp_path: Path) -> Path:
    """The user's Airflow home: a metadata DB migrated by the venv's Airflow, empty DAGs and plugins."""
    home = tmp_path / "airflow"
    if adoption.versions(fresh_venv)["apache-airflow"] == adoption.LOWEST_AIRFLOW:
        (home / "dags").mkdir(parents=True)
        shutil.copy(lowest_template / "airflow.db", home / "airflow.db")  # migrated by the same release
    else:
        migrate(home, fresh_venv / "bin")
        (home / "dags").mkdir()
    (home / "plugins").mkdir()
    return home


def newest_admissible_http(venv: Path, installed: Path) -> str:
    """The providers-http an independent resolver (uv, not pip) picks when everything installed stays."""
    wanted = venv.parent / "wanted.in"
    wanted.write_text("apache-airflow-providers-http>=5.0.0\n")
    python = venv / "bin" / "python"
    done = adoption.run(
        [
            adoption.uv(),
            "pip",
            "compile",
            "--no-config",
            "--quiet",
            "--no-header",
            "--python",
            python,
            "--constraint",
            installed,
            wanted,
        ]
    )
    (pin,) = re.findall(r"^apache-airflow-providers-http==(\S+)", done.stdout, re.M)
    return pin


def test_readme_steps_on_a_fresh_airflow_upload_a_session(fresh_venv, dists, fresh_home, nexus, tmp_path):
    sdist, wheel = dists
    blocks = readme_blocks()
    assert [lang for lang, _ in blocks] == ["bash", "python", "bash", "bash", "dockerfile"], blocks
    (_, install), (_, dag_file), (_, exports), (_, try_it), (_, dockerfile) = blocks
    shell_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHONPATH", "VIRTUAL_ENV"))
    }
    shell_env["PATH"] = f"{fresh_venv / 'bin'}{os.pathsep}{shell_env['PATH']}"
    pinned = f"session-upload=={__version__}"

    def shell(line: str, dist: Path, **extra: str) -> None:
        # The package is not on PyPI: a built distribution stands in for the name (`pip install <file>`).
        assert pinned in line, f"the README installs {pinned}: {line}"
        done = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", line.replace(pinned, str(dist))],
            env=shell_env | extra,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, f"{line}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    user_home = fresh_home
    # 1. Install: pip into the existing Airflow; nothing already there changes version.
    before = adoption.versions(fresh_venv)
    assert before["apache-airflow"] in RELEASES
    assert "session-upload" not in before and "apache-airflow-providers-http" not in before
    freeze, line = commands(install)
    assert freeze == "pip list --format=freeze > airflow-as-installed.txt", freeze
    assert line.startswith("pip install ") and line.endswith(" --constraint airflow-as-installed.txt"), line
    subprocess.run(["bash", "-euo", "pipefail", "-c", freeze], env=shell_env, cwd=tmp_path, check=True)
    shell(line, sdist)  # pip builds the wheel from the sdist itself
    installed = adoption.versions(fresh_venv)
    assert installed["apache-airflow-providers-http"] == newest_admissible_http(
        fresh_venv, tmp_path / "airflow-as-installed.txt"
    )
    # The Dockerfile's RUN line, on the image's AIRFLOW_VERSION, in the same Airflow: changes nothing more.
    (base, run) = commands(dockerfile)
    assert re.fullmatch(r"FROM apache/airflow:3\.\d+\.\d+", base)
    assert run.startswith("RUN pip install --no-cache-dir ")
    shell(run.removeprefix("RUN "), wheel, AIRFLOW_VERSION=before["apache-airflow"])
    after = adoption.versions(fresh_venv)
    changed = {
        name: (version, after.get(name)) for name, version in before.items() if after.get(name) != version
    }
    # Nothing the user had moves: not Airflow, not its providers, not their dependencies.
    assert changed == {}, changed
    assert after["session-upload"] == __version__
    assert "apache-airflow-providers-http" in after

    # 2. The DAG file, exactly as printed, alone in the DAGs folder; the plugins folder stays empty.
    assert dag_file == (ROOT / "dags" / "session_upload_dag.py").read_text()
    (user_home / "dags" / "session_upload_dag.py").write_text(dag_file)

    # 3. The Connection and the state dir: the README's variables, pointed at the stand-in and a state dir.
    exported = dict(shlex.split(line.removeprefix("export "))[0].split("=", 1) for line in commands(exports))
    assert set(exported) == {"AIRFLOW_CONN_NEXUS_DEFAULT", "OPENCLAW_STATE_DIR"}
    connection = json.loads(exported["AIRFLOW_CONN_NEXUS_DEFAULT"])
    assert connection["conn_type"] == "http" and set(connection) == {
        "conn_type",
        "host",
        "port",
        "schema",
        "password",
    }
    host, port = nexus.url.removeprefix("http://").split(":")
    connection.update(host=host, port=int(port), schema="http", password=API_KEY)
    state_dir = tmp_path / "openclaw"
    made = make_state(state_dir, ["main"], completed=2)
    before_files = snapshot_tree(sessions_of(state_dir, "main"))
    sandbox = AirflowSandbox(
        user_home,
        state_dir,
        nexus.url,
        fast_retries=False,
        bin_dir=fresh_venv / "bin",
        dags=user_home / "dags",
        plugins=user_home / "plugins",
    )
    env = sandbox.env() | {
        "AIRFLOW_CONN_NEXUS_DEFAULT": json.dumps(connection),
        "OPENCLAW_STATE_DIR": str(state_dir),
    }

    # 4. One run, as the README says.
    (line,) = commands(try_it)
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", line],
        env=env,
        cwd=user_home,
        capture_output=True,
        text=True,
        timeout=600,
    )
    outcome = sandbox.outcome(done.returncode, done.stdout + done.stderr)

    assert done.returncode == 0 and outcome.state == "success", outcome.output[-5000:]
    assert_received_exactly(
        nexus, {("main", item["sessionId"]): before_files[item["file"]] for item in made["main"]["completed"]}
    )
    after_files = snapshot_tree(sessions_of(state_dir, "main"))
    for item in made["main"]["completed"]:
        assert item["file"] not in after_files
        assert after_files[f"archive/{item['sessionId']}.jsonl"] == before_files[item["file"]]
    assert outcome.job_result["message"] == "Uploaded 2 sessions across 1 agent"
    assert outcome.note == "Uploaded 2 sessions across 1 agent", "the run's note, from the installed plugin"
    assert outcome.job_result["success"] is True
    assert set(outcome.states("deliver.archive").values()) == {"success"}
    assert sandbox.leaks(API_KEY, outcome.output) == []
