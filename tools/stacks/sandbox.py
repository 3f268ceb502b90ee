"""Run the real DAG with `airflow dags test` on a throwaway SQLite Airflow, and read back what happened.

Nothing of Airflow is mocked: each sandbox is its own AIRFLOW_HOME holding a copy of a migrated
metadata DB, the DAG and plugins folders are the project's own, and Nexus is the bundled stand-in
reached over loopback HTTP.
"""

from __future__ import annotations

import compileall
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# Distinctive, so a leak anywhere is found by a plain substring search.
API_KEY = "nxk-e2e-4f1c9b7e2d-SECRET"  # tests and demo only


def nexus_connection(nexus_url: str, api_key: str) -> str:
    """``AIRFLOW_CONN_NEXUS_DEFAULT`` for the stand-in at ``nexus_url`` (``http://127.0.0.1:PORT``): an
    HTTP Connection whose password is the API key."""
    host, port = nexus_url.removeprefix("http://").split(":")
    return json.dumps(
        {"conn_type": "http", "host": host, "port": int(port), "schema": "http", "password": api_key}
    )


def base_env(
    home: Path, bin_dir: Path = BIN, dags: Path = ROOT / "dags", plugins: Path = ROOT / "plugins"
) -> dict[str, str]:
    """A clean environment for Airflow commands: the developer's own AIRFLOW_* settings never leak in.

    By default the project's own venv, ``dags/`` and ``plugins/``; tests/adoption passes another venv's
    ``bin`` and a DAGs folder holding only the user's DAG file, with an empty plugins folder.
    """
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "SESSION_UPLOAD_", "OPENCLAW_"))
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(dags),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(plugins),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__UNIT_TEST_MODE="False",
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def compile_plugins(plugins: Path = ROOT / "plugins") -> None:
    """Write the package's bytecode next to its source. Airflow's task processes run with ``-B``: they
    read ``__pycache__`` but never write it, so without this every task compiles the package from source
    (measured: 38 ms instead of 15 ms per task process). A stale file is simply recompiled in memory."""
    compileall.compile_dir(plugins, quiet=1)


def migrate(home: Path, bin_dir: Path = BIN) -> None:
    home.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [bin_dir / "airflow", "db", "migrate"], env=base_env(home, bin_dir), check=True, capture_output=True
    )


@dataclass
class DagRunOutcome:
    returncode: int
    output: str
    run_id: str
    state: str
    tasks: dict[str, dict[int, tuple[str, str | None]]] = field(default_factory=dict)
    job_result: dict | None = None
    # The run's note (Browse → Dag Runs), and who wrote it (dag_run_note.user_id).
    note: str | None = None
    note_author: str | None = None

    def states(self, task_id: str) -> dict[int, str]:
        return {index: state for index, (state, _) in self.tasks.get(task_id, {}).items()}

    def labels(self, task_id: str) -> dict[str | None, str]:
        """Rendered map index (``agent/session``; None for a task instance without one) → state."""
        return {label: state for state, label in self.tasks.get(task_id, {}).values()}


@dataclass
class AirflowSandbox:
    home: Path
    state_dir: Path
    nexus_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    api_key: str = API_KEY
    fast_retries: bool = True
    # Put before the airflow command, e.g. ["setpriv", "--reuid=65534", ...] to run it as another user.
    command_prefix: list[str] = field(default_factory=list)
    # Another venv's bin (its airflow) and folders, as in base_env.
    bin_dir: Path = BIN
    dags: Path = ROOT / "dags"
    plugins: Path = ROOT / "plugins"

    def env(self) -> dict[str, str]:
        env = base_env(self.home, self.bin_dir, self.dags, self.plugins)
        env.update(
            OPENCLAW_STATE_DIR=str(self.state_dir),
            AIRFLOW_CONN_NEXUS_DEFAULT=nexus_connection(self.nexus_url, self.api_key),
        )
        if self.fast_retries:
            # The policy is the same, only the waits are short.
            env.update(
                SESSION_UPLOAD_RETRY_DELAY_SECONDS="1",
                SESSION_UPLOAD_BACKOFF_INITIAL_SECONDS="0.05",
                SESSION_UPLOAD_BACKOFF_MAX_SECONDS="0.2",
                SESSION_UPLOAD_READ_TIMEOUT_SECONDS="20",
            )
        env.update(self.extra_env)
        return env

    def command(self, conf: dict | None = None) -> list[str]:
        """The ``airflow dags test`` command line (run it with ``env()`` and ``cwd=home``)."""
        command = [*self.command_prefix, str(self.bin_dir / "airflow"), "dags", "test", "session_upload"]
        if conf is not None:
            command += ["--conf", json.dumps(conf)]
        return command

    def run_dag(self, conf: dict | None = None, timeout: float = 600) -> DagRunOutcome:
        done = subprocess.run(
            self.command(conf), env=self.env(), capture_output=True, text=True, timeout=timeout, cwd=self.home
        )
        output = done.stdout + done.stderr
        (self.home / f"dags-test-{self.run_count()}.log").write_text(output)
        return self._outcome(done.returncode, output)

    def run_dag_measuring_rss(
        self, conf: dict | None = None, timeout: float = 600
    ) -> tuple[DagRunOutcome, int, int]:
        """As ``run_dag``, and also the airflow process's pid and the peak RSS in bytes of it and its
        waited-for descendants, measured from outside (``run_measuring_rss``)."""
        out, err = self.home / "dags-test.stdout", self.home / "dags-test.stderr"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            returncode, pid, peak = run_measuring_rss(
                self.command(conf),
                env=self.env(),
                cwd=self.home,
                stdout=stdout,
                stderr=stderr,
                timeout=timeout,
            )
        output = out.read_text() + err.read_text()
        out.unlink()
        err.unlink()
        (self.home / f"dags-test-{self.run_count()}.log").write_text(output)
        return self._outcome(returncode, output), pid, peak

    def outcome(self, returncode: int, output: str) -> DagRunOutcome:
        """What the latest dag run did, for a run started some other way than ``run_dag``."""
        return self._outcome(returncode, output)

    def run_count(self) -> int:
        with self.db() as db:
            return db.execute("select count(*) from dag_run").fetchone()[0]

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.home / "airflow.db")

    def _outcome(self, returncode: int, output: str) -> DagRunOutcome:
        with self.db() as db:
            row = db.execute("select run_id, state from dag_run order by id desc limit 1").fetchone()
            assert row, f"no dag run was created:\n{output[-3000:]}"
            run_id, state = row
            tasks: dict[str, dict[int, tuple[str, str | None]]] = {}
            for task_id, index, ti_state, label in db.execute(
                "select task_id, map_index, state, rendered_map_index from task_instance where run_id = ?",
                (run_id,),
            ):
                tasks.setdefault(task_id, {})[index] = (ti_state, label)
            value = db.execute(
                "select value from xcom where run_id = ? and task_id = 'job_result' and key = 'return_value'",
                (run_id,),
            ).fetchone()
            note = db.execute(
                "select n.content, n.user_id from dag_run_note n join dag_run r on r.id = n.dag_run_id"
                " where r.run_id = ?",
                (run_id,),
            ).fetchone()
        return DagRunOutcome(
            returncode, output, run_id, state, tasks, json.loads(value[0]) if value else None, *(note or ())
        )

    def asset_events(self, uri: str = "nexus://sessions") -> list[dict]:
        with self.db() as db:
            rows = db.execute(
                "select e.extra from asset_event e join asset a on a.id = e.asset_id where a.uri like ?",
                (uri + "%",),
            ).fetchall()
        return [json.loads(extra) if extra else {} for (extra,) in rows]

    def leaks(self, secret: str, *outputs: str) -> list[str]:
        """Every place the secret shows up: outputs, any file under AIRFLOW_HOME (logs, the metadata DB)."""
        return find_secret(secret, self.home, outputs)


def run_measuring_rss(
    command: list[str], *, env: dict[str, str], cwd: Path, stdout, stderr, timeout: float | None = None
) -> tuple[int, int, int]:
    """Run ``command`` and return (exit code, pid, peak RSS in bytes), the peak measured from outside it.

    The peak is ``ru_maxrss`` from ``wait4`` on the child: Linux returns the larger of the child's own
    high-water mark and its ``cmaxrss``, into which every reaped process's own and children's peaks are
    folded (kernel/exit.c), so it covers the child and every descendant that was waited for, at any
    depth. It is one process's high-water mark, the largest, not a sum over the tree: an orphaned
    descendant reparented to init, or one never reaped, is not counted. ``timeout`` kills the child.
    """
    proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=stdout, stderr=stderr)
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill) if timeout is not None else None
    if timer is not None:
        timer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if timer is not None:
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if timeout is not None and timed_out.is_set():  # only the timer sets it
        raise subprocess.TimeoutExpired(command, timeout)
    return proc.returncode, proc.pid, usage.ru_maxrss * 1024


def find_secret(secret: str, home: Path, outputs: tuple[str, ...] = ()) -> list[str]:
    """The outputs (by index) and the files under ``home`` (relative paths) that contain ``secret``."""
    found = [f"output #{n}" for n, text in enumerate(outputs) if secret in text]
    needle = secret.encode()
    for path in home.rglob("*"):
        try:
            if path.is_file() and needle in path.read_bytes():
                found.append(str(path.relative_to(home)))
        except OSError:  # a log file rotated away while we looked
            continue
    return found


def new_sandbox(
    template_home: Path, home: Path, state_dir: Path, nexus_url: str, **extra_env: str
) -> AirflowSandbox:
    """A fresh AIRFLOW_HOME holding a copy of the migrated template DB."""
    home.mkdir(parents=True)
    shutil.copy(template_home / "airflow.db", home / "airflow.db")
    return AirflowSandbox(home, state_dir, nexus_url, dict(extra_env))
