"""The lowest supported Airflow (tools/adoption.LOWEST_AIRFLOW) with the lowest providers-http, the package
installed from the wheel: the DAG integrity tests, and one `airflow dags test` run against the stand-in
from a DAGs folder that holds only the user's DAG file (no plugins/ copy), its metrics sent to a StatsD
listener as Airflow 3.1's own ``airflow.stats`` sends them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from openclaw_nexus import __version__, metrics
from tests.e2e.test_dag_runs import assert_received_exactly, sessions_of, snapshot_tree
from tools.demo.sample_state import make_state
from tools.stacks import adoption
from tools.stacks.sandbox import API_KEY, ROOT, AirflowSandbox
from tools.standins.statsd import StatsdListener, counter, gauges, timings


def test_the_venv_has_the_lowest_releases_and_the_package_from_the_wheel(lowest_venv, dists, tmp_path):
    assert [d.name for d in dists] == [
        f"session_upload-{__version__}.tar.gz",
        f"session_upload-{__version__}-py3-none-any.whl",
    ]
    code = (
        "import json, airflow, openclaw_nexus; from importlib.metadata import version; "
        "print(json.dumps([airflow.__version__, version('apache-airflow-providers-http'), "
        "openclaw_nexus.__file__, openclaw_nexus.__version__]))"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"AIRFLOW_HOME": str(tmp_path)}
    done = subprocess.run(
        [lowest_venv / "bin" / "python", "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    airflow_version, http_version, package_file, package_version = json.loads(done.stdout.splitlines()[-1])
    assert (airflow_version, http_version) == (adoption.LOWEST_AIRFLOW, adoption.LOWEST_HTTP_PROVIDER)
    assert Path(package_file).is_relative_to(lowest_venv), "the installed copy, not the checkout's plugins/"
    assert package_version == __version__


def test_dag_integrity_on_the_lowest_airflow(lowest_venv):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"SESSION_UPLOAD_TEST_INSTALLED": "1"}
    done = subprocess.run(
        [
            lowest_venv / "bin" / "python",
            "-m",
            "pytest",
            "tests/integrity/test_dagbag.py",
            "-p",
            "no:cacheprovider",
            "-q",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    expected = len(re.findall(r"^def test_", (ROOT / "tests/integrity/test_dagbag.py").read_text(), re.M))
    assert re.search(rf"\b{expected} passed\b", output), output[-2000:]
    assert "skipped" not in output and "failed" not in output


def test_one_run_on_the_lowest_airflow_uploads_archives_and_reports(lowest_venv, user_home, nexus, tmp_path):
    """Byte for byte at Nexus, archived, the JobResult, labels, note, asset event, version tag, no key
    anywhere; and the package's metrics at a StatsD listener: ``uploaded`` == itemsProcessed, ``bytes`` ==
    the transcript bytes Nexus got, one ``lag`` each, ``backlog`` 0."""
    shutil.copy(ROOT / "dags" / "session_upload_dag.py", user_home / "dags")
    state_dir = tmp_path / "openclaw"
    made = make_state(state_dir, ["main", "research"], completed=1)
    before = {agent: snapshot_tree(sessions_of(state_dir, agent)) for agent in made}
    sandbox = AirflowSandbox(
        user_home,
        state_dir,
        nexus.url,
        bin_dir=lowest_venv / "bin",
        dags=user_home / "dags",
        plugins=user_home / "plugins",
    )

    with StatsdListener() as statsd:
        sandbox.extra_env.update(statsd.env())
        run = sandbox.run_dag()
        statsd.settle()
        got = statsd.metrics()

    assert run.state == "success", run.output[-5000:]
    assert_received_exactly(
        nexus,
        {
            (agent, item["sessionId"]): before[agent][item["file"]]
            for agent in made
            for item in made[agent]["completed"]
        },
    )
    for agent in made:
        after = snapshot_tree(sessions_of(state_dir, agent))
        for item in made[agent]["completed"]:
            assert item["file"] not in after
            assert after[f"archive/{item['sessionId']}.jsonl"] == before[agent][item["file"]]
        for name in made[agent]["active"] + made[agent]["untouchable"]:
            assert after[name] == before[agent][name], f"{agent}/{name} was touched"
    assert run.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 2 sessions across 2 agents",
        "itemsProcessed": 2,
        "errors": [],
    }
    labels = {f"{agent}/{item['sessionId']}" for agent in made for item in made[agent]["completed"]}
    assert run.labels("deliver.upload") == dict.fromkeys(labels, "success")
    assert run.labels("deliver.archive") == dict.fromkeys(labels, "success")
    assert run.labels("discover") == {"main": "success", "research": "success"}
    assert run.states("job_result") == {-1: "success"}
    # The run's note is its message: set by the listener the wheel's entry point registers (nothing in the
    # plugins folder).
    assert (run.note, run.note_author) == ("Uploaded 2 sessions across 2 agents", "session_upload")
    assert sandbox.asset_events() == [{"uploaded": 2}], "job_result's asset alias event"
    with sandbox.db() as db:
        tags = {name for (name,) in db.execute("select name from dag_tag where dag_id = 'session_upload'")}
    assert f"session-upload:{__version__}" in tags, "the version a user runs is visible"
    assert all(r["query"].get("code") == "***" for r in nexus.requests())
    assert sandbox.leaks(API_KEY, run.output) == []
    sent = sum(len(json.loads(nexus.body(r["n"]))["transcript"].encode()) for r in nexus.accepted())
    assert counter(got, metrics.UPLOADED) == run.job_result["itemsProcessed"] == 2
    assert counter(got, metrics.BYTES) == sent
    assert len(timings(got, metrics.LAG)) == 2
    assert gauges(got, metrics.BACKLOG) == [((), 0)]
