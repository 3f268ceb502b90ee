"""Run a real Airflow (api-server, scheduler, dag-processor, triggerer) on loopback, for tests and for
trying the DAG under a scheduler and the UI.

    python tools/stacks/airflow_stack.py [--home DIR] [--state-dir DIR] [--port 0]   # Ctrl-C stops it

Each component is the ordinary ``airflow <component>`` command in its own process group, on a throwaway
AIRFLOW_HOME, with the project's dags/ and plugins/ folders, the Nexus Connection from
``AIRFLOW_CONN_NEXUS_DEFAULT`` and ``OPENCLAW_STATE_DIR``. The metadata DB and executor come from a dict
of ``AIRFLOW__…`` settings: by default ``EMBEDDED_SQLITE`` (SQLite + LocalExecutor, tuned so that a
few hundred mapped tasks on two cores never hit ``database is locked``); pass another dict (PostgreSQL,
Celery) and extra components (``{"celery-worker": ["celery", "worker"]}``) to run the same tests there.

Logs stay under ``<home>/stack-logs/<component>.log`` (the processes' output) and ``<home>/logs/``
(Airflow's task and component logs) after ``stop()``.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

if __package__ in (None, ""):  # run as a script: make `tools` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tools.stacks.sandbox import BIN, base_env, compile_plugins, find_secret

DAG_ID = "session_upload"
USERNAME = "admin"
PASSWORD = "admin"  # the tests' own user; a throwaway stack on loopback only

# The embedded default: SQLite + LocalExecutor, tuned for a small machine. Every value is a plain
# AIRFLOW__SECTION__KEY environment variable; "{AIRFLOW_HOME}" is replaced by the stack's home.
# (Airflow itself already opens SQLite in WAL mode: readers never block the writer.) docs/running.md
# explains each value and when to move to PostgreSQL instead.
EMBEDDED_SQLITE: dict[str, str] = {
    # Wait up to 60 s for a write lock instead of failing after Python's default 5 s.
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:///{AIRFLOW_HOME}/airflow.db?timeout=60",
    "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
    # Few concurrent tasks: each one talks to the api-server, which writes to the one SQLite file. 8 keeps
    # 2 cores busy (4 left them waiting on scheduler round trips, 16 was no faster); Airflow's 32 and 16,
    # with the 5 s lock timeout, ended in "database is locked" and a dead scheduler at 200 sessions.
    "AIRFLOW__CORE__PARALLELISM": "8",
    "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "8",
    # LocalExecutor workers come from a forkserver that has already imported the task runner, the
    # HTTP provider and the two libraries the SQLite era reads with, so a task process no longer spends
    # ~0.4 s CPU importing them (libraries only: the DAG's own code is still read fresh by every task).
    "AIRFLOW__SCHEDULER__MP_START_METHOD": "forkserver",
    "AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD": (
        "airflow.sdk.execution_time.task_runner,airflow.sdk.execution_time.supervisor,"
        "airflow.dag_processing.dagbag,airflow.providers.http.operators.http,sqlite3,zstandard"
    ),
    # One parser process, and no re-parse storm while tasks run.
    "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
    "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
    "AIRFLOW__API__WORKERS": "1",
    # A task's calls to the Execution API may wait for the DB lock: let them, instead of timing out at
    # 5 s and retrying a state change the server already made.
    "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "90",
    # No [triggerer] setting: its loop writes to the SQLite file about once a second (Trigger.clean_unused,
    # hard-coded 1 s; no option changes it) plus a heartbeat every job_heartbeat_sec (5 s), each a short
    # transaction that waits for the lock under the same 60 s timeout above. A longer heartbeat would save
    # little and leave less margin under the 30 s health threshold; capacity (1,000 triggers) is moot for
    # one watcher. Measured: the 200-session run (tests/stack/test_embedded_scale.py) with the triggerer
    # up logged no "database is locked" in any component.
}

# The commands of each component; "{port}" is the api-server's port. The triggerer is where the
# package's completion watcher (openclaw_nexus.watcher) runs once the DAG's schedule has one, so like the
# tasks it needs OPENCLAW_STATE_DIR (every component gets the same environment here). --skip-serve-logs:
# no log server subprocess (about 95 MB) and no port 8794 bound on all interfaces. It serves only the logs
# of deferred tasks (this DAG has none; a watcher logs to the triggerer's own output, stack-logs/), and
# those the api-server also reads from the shared <home>/logs folder.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server", "--host", "127.0.0.1", "--port", "{port}"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    "triggerer": ["triggerer", "--skip-serve-logs"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc; None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return int(fields[1]), int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def _descendants(pids: Iterable[int]) -> dict[int, int]:
    """Every live process below the given ones, pid -> start time (so a pid reused later by some other
    process is never mistaken for one of these)."""
    children: dict[int, list[tuple[int, int]]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := _stat(entry)) is not None:
            children.setdefault(info[0], []).append((int(entry), info[1]))
    found: dict[int, int] = {}
    todo = list(pids)
    while todo:
        for child, started in children.get(todo.pop(), []):
            if child not in found:
                found[child] = started
                todo.append(child)
    return found


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the harness process dies, even by SIGKILL, so a killed
    test run never leaves Airflow running (Linux prctl PR_SET_PDEATHSIG)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)


class StackError(RuntimeError):
    """The stack did not start, or a wait timed out; the message says where to look."""


@dataclass
class AirflowStack:
    """A running Airflow on loopback. ``with AirflowStack(home, env=...) as stack: stack.api("GET", ...)``.

    ``env`` is added to the processes' environment (the Nexus Connection, OPENCLAW_STATE_DIR,
    SESSION_UPLOAD_*); ``settings`` are the AIRFLOW__ settings (default ``EMBEDDED_SQLITE``);
    ``components`` maps a name to its ``airflow`` arguments.
    """

    home: Path
    env: dict[str, str] = field(default_factory=dict)
    settings: Mapping[str, str] = field(default_factory=lambda: dict(EMBEDDED_SQLITE))
    components: Mapping[str, list[str]] = field(default_factory=lambda: dict(COMPONENTS))
    port: int = 0
    username: str = USERNAME
    password: str = PASSWORD
    prepare_db: Callable[[AirflowStack], None] | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict, init=False)
    _token: str | None = field(default=None, init=False)
    _http: requests.Session = field(default_factory=requests.Session, init=False)

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.home / "stack-logs"

    def process_env(self) -> dict[str, str]:
        """The environment of every component and CLI call."""
        env = base_env(self.home)
        env.update({k: v.replace("{AIRFLOW_HOME}", str(self.home)) for k, v in self.settings.items()})
        env.update(
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API__BASE_URL=self.url,
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__CORE__AUTH_MANAGER=(
                "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
            ),
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{self.username}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.home / "passwords.json"),
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.home / "logs"),
            PYTHONUNBUFFERED="1",
        )
        # The api-server and the stand-in are on loopback: a proxy from the environment must not catch them.
        for name in ("NO_PROXY", "no_proxy"):
            env[name] = ",".join(filter(None, [env.get(name), "127.0.0.1,localhost"]))
        env.update(self.env)
        return env

    def airflow(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command against this stack's DB and config; its output is logged."""
        done = subprocess.run(
            [str(BIN / "airflow"), *args],
            env=self.process_env(),
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / "cli.log").open("a") as log:
            log.write(f"$ airflow {' '.join(args)}\n-> {done.returncode}\n{done.stdout}{done.stderr}\n")
        if check and done.returncode != 0:
            raise StackError(f"airflow {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return done

    def start(self, timeout: float = 240) -> AirflowStack:
        """Migrate the DB, start every component, and wait until the API answers and the DAG is parsed."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(exist_ok=True)
        if not self.port:
            self.port = free_port()
        (self.home / "passwords.json").write_text(json.dumps({self.username: self.password}) + "\n")
        self._http.trust_env = False  # loopback: never through a proxy from the environment
        started = time.monotonic()
        compile_plugins()
        self.airflow("db", "migrate", timeout=timeout)
        if self.prepare_db is not None:
            self.prepare_db(self)
        try:
            for name, args in self.components.items():
                self._launch(name, [a.replace("{port}", str(self.port)) for a in args])
            self.wait_until_ready(timeout - (time.monotonic() - started))
        except BaseException:
            self.stop()
            raise
        return self

    def _launch(self, name: str, args: list[str]) -> None:
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *args],
                env=self.process_env(),
                cwd=self.home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() signals the whole group
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with {process.returncode}; "
                    f"see {self.log_dir / (name + '.log')}:\n{self.tail(name)}"
                )

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def wait_until_ready(self, timeout: float = 180, dag_id: str = DAG_ID) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                health = self._http.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                ready = health.get("scheduler", {}).get("status") == "healthy"
                ready = ready and self.api("GET", f"/api/v2/dags/{dag_id}", check=False).status_code == 200
            except (requests.RequestException, ValueError):
                ready = False
            if ready:
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"Airflow not ready within {timeout:.0f}s (DAG {dag_id} parsed, scheduler healthy); "
                    f"logs in {self.log_dir}"
                )
            time.sleep(1)

    def stop(self, grace: float = 30) -> None:
        """SIGTERM each component's process group (and anything it spawned), then SIGKILL what is left."""
        procs = list(self.processes.values())
        if not procs:
            return
        spawned = _descendants(p.pid for p in procs if p.poll() is None)
        for process in reversed(procs):
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for process in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        for process in procs:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
        for pid, started in spawned.items():
            info = _stat(pid)
            if info is not None and info[1] == started:  # still that very process
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
        for process in procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(10)
        self.processes.clear()
        self._http.close()

    def __enter__(self) -> AirflowStack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- the REST API ----------------------------------------------------------------------------

    def token(self, refresh: bool = False) -> str:
        """A JWT from SimpleAuthManager's ``POST /auth/token``."""
        if self._token is None or refresh:
            response = self._http.post(
                f"{self.url}/auth/token",
                json={"username": self.username, "password": self.password},
                timeout=30,
            )
            if response.status_code != 201:
                raise StackError(f"POST /auth/token answered {response.status_code}: {response.text[:500]}")
            self._token = response.json()["access_token"]
        return self._token

    def api(
        self, method: str, path: str, json_body: Any = None, *, check: bool = True, timeout: float = 60
    ) -> requests.Response:
        """Call the REST API with a bearer token; ``check`` raises on any non-2xx answer."""
        response = None
        for attempt in range(2):
            response = self._http.request(
                method,
                self.url + path,
                json=json_body,
                headers={"Authorization": f"Bearer {self.token(refresh=attempt > 0)}"},
                timeout=timeout,
            )
            if response.status_code != 401:
                break
        assert response is not None
        if check and not response.ok:
            raise StackError(f"{method} {path} answered {response.status_code}: {response.text[:2000]}")
        return response

    def set_paused(self, paused: bool, dag_id: str = DAG_ID) -> None:
        self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": paused})

    def trigger(self, conf: dict | None = None, dag_id: str = DAG_ID, **body: Any) -> str:
        """``POST /api/v2/dags/{dag_id}/dagRuns``, a manual run (``logical_date`` null): its run_id."""
        payload = {"logical_date": None, "conf": conf or {}, **body}
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", payload).json()["dag_run_id"]

    def dag_run(self, run_id: str, dag_id: str = DAG_ID) -> dict:
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}").json()

    def dag_runs(self, dag_id: str = DAG_ID, **query: str) -> list[dict]:
        params = "&".join(f"{k}={v}" for k, v in {"limit": "100", **query}.items())
        return self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?{params}").json()["dag_runs"]

    def wait_for_run(
        self,
        run_id: str,
        dag_id: str = DAG_ID,
        timeout: float = 300,
        states: tuple[str, ...] = ("success", "failed"),
    ) -> dict:
        """Poll the run until it reaches one of ``states``; raises with the components' log tails if not."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            run = self.dag_run(run_id, dag_id)
            if run["state"] in states:
                return run
            if time.monotonic() > deadline:
                raise StackError(
                    f"run {run_id} still {run['state']} after {timeout:.0f}s; scheduler log:\n"
                    + self.tail("scheduler")
                )
            time.sleep(1)

    def wait_for(self, what: str, predicate: Callable[[], Any], timeout: float = 300) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise StackError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(1)

    def task_instances(self, run_id: str, dag_id: str = DAG_ID) -> list[dict]:
        """Every task instance of the run (all pages), mapped ones included."""
        items: list[dict] = []
        while True:
            page = self.api(
                "GET",
                f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100&offset={len(items)}",
            ).json()
            items += page["task_instances"]
            if not page["task_instances"] or len(items) >= page["total_entries"]:
                return items

    def xcom(
        self, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1, dag_id: str = DAG_ID
    ) -> Any:
        path = (
            f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}"
            f"?map_index={map_index}&deserialize=true"
        )
        value = self.api("GET", path).json()["value"]
        return json.loads(value) if isinstance(value, str) else value

    # -- afterwards ------------------------------------------------------------------------------

    def leaks(self, secret: str, *outputs: str) -> list[str]:
        """Every place the secret shows up: the given outputs and any file under the home (component
        and task logs, the SQLite DB and its WAL)."""
        return find_secret(secret, self.home, outputs)


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Run Airflow (embedded SQLite) with the project's DAG.")
    parser.add_argument("--home", type=Path, default=Path(".demo/stack"))
    parser.add_argument(
        "--state-dir", type=Path, default=None, help="OPENCLAW_STATE_DIR for the tasks and the triggerer"
    )
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    env = {}
    if args.state_dir is not None:
        env["OPENCLAW_STATE_DIR"] = str(args.state_dir.resolve())
    if os.environ.get("AIRFLOW_CONN_NEXUS_DEFAULT"):
        env["AIRFLOW_CONN_NEXUS_DEFAULT"] = os.environ["AIRFLOW_CONN_NEXUS_DEFAULT"]
    stack = AirflowStack(args.home.resolve(), env=env, port=args.port)
    stack.password = secrets.token_urlsafe(12)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, interrupt)
    with stack:
        print(f"Airflow UI: {stack.url}  (user {stack.username}, password {stack.password})", flush=True)
        print(f"Logs: {stack.log_dir}; Ctrl-C stops everything", flush=True)
        try:
            while True:
                stack.check_alive()
                time.sleep(2)
        except KeyboardInterrupt:
            print("stopping ...", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
