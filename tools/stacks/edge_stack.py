"""A fleet whose hosts speak only HTTP: the central site (api-server, scheduler, dag-processor on the embedded
SQLite default, executors ``LocalExecutor`` then Airflow's ``EdgeExecutor``, the Edge API on) and one
``airflow edge worker`` per host, all on this machine (for tests/edge and ``bench latency --fleet edge``).

Each Edge worker is started as on a host of its own: its own ``AIRFLOW_HOME`` (config, logs), a metadata
database URL that points at nothing (it must never need one: a task that tried would fail), only the
central site's URLs (``[edge] api_url`` for its jobs, ``[core] execution_api_server_url`` for its tasks)
and the secret it signs its requests with (``[api_auth] jwt_secret``, shared with the central site), plus
what a fleet worker needs: the host's ``OPENCLAW_STATE_DIR``, the Nexus Connection and the deployment's
``SESSION_UPLOAD_*`` settings (the DAG file is parsed on the worker too). Nothing else of the central
site's environment reaches it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tools.stacks.airflow_stack import (
    COMPONENTS,
    DAG_ID,
    EMBEDDED_SQLITE,
    AirflowStack,
    _die_with_parent,
)
from tools.stacks.sandbox import BIN, base_env

EDGE_EXECUTOR = "airflow.providers.edge3.executors.EdgeExecutor"
# Where an Edge worker's database URL points: nowhere (a closed port). Its driver must be importable.
NO_DATABASE = "postgresql+psycopg2://nobody@127.0.0.1:9/no_metadata_db_on_edge_hosts"


def edge_settings(jwt_secret: str, private_key: Path | None = None) -> dict[str, str]:
    """The central site: the embedded default, the Edge executor after the local one, the Edge API on, the
    secret edge workers sign with; Edge workers poll for jobs every 2 s and heartbeat every 10 s.

    ``private_key``: Airflow's own tokens (the REST API's and the tasks' Execution API tokens) are signed
    with this key instead of the shared secret, which then serves the Edge API alone: a token an edge host
    can mint with the secret is refused by the REST API (tests/edge checks both)."""
    return {
        **EMBEDDED_SQLITE,
        "AIRFLOW__CORE__EXECUTOR": f"LocalExecutor,{EDGE_EXECUTOR}",
        "AIRFLOW__EDGE__API_ENABLED": "True",
        "AIRFLOW__API_AUTH__JWT_SECRET": jwt_secret,
        "AIRFLOW__EDGE__JOB_POLL_INTERVAL": "2",
        "AIRFLOW__EDGE__HEARTBEAT_INTERVAL": "10",
        **({"AIRFLOW__API_AUTH__JWT_PRIVATE_KEY_PATH": str(private_key)} if private_key else {}),
    }


def write_private_key(path: Path) -> Path:
    """A new Ed25519 key, PEM, readable by its owner only: what ``[api_auth] jwt_private_key_path`` reads."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_bytes(pem)
    return path


def forged_admin_token(jwt_secret: str, username: str = "admin") -> str:
    """What anyone holding an edge host's secret can mint: an admin's REST API token (SimpleAuthManager's
    claims and audience) signed with the shared secret, as Airflow signs its own without a private key."""
    from airflow.api_fastapi.auth.tokens import JWTGenerator

    generator = JWTGenerator(
        secret_key=jwt_secret, valid_for=300, audience="apache-airflow", algorithm="HS512"
    )
    return generator.generate({"sub": username, "role": "admin", "teams": []})


@dataclass(frozen=True)
class EdgeWorker:
    """One host's Edge worker: the queue it takes, the name it reports, what only this host has."""

    queue: str
    hostname: str
    env: Mapping[str, str]  # OPENCLAW_STATE_DIR, the Nexus Connection
    concurrency: int = 2


@dataclass
class EdgeStack(AirflowStack):
    """An AirflowStack with ``edge_workers`` (name -> EdgeWorker), each launched with only a host's
    environment (``worker_env``); ``deployment`` (SESSION_UPLOAD_*) goes to every process."""

    edge_workers: Mapping[str, EdgeWorker] = field(default_factory=dict)
    deployment: Mapping[str, str] = field(default_factory=dict)
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    ready_dag_id: str = DAG_ID
    private_key: bool = True  # Airflow's own tokens signed with a key of the central site's (edge_settings)

    def __post_init__(self) -> None:
        key = write_private_key(self.home / "jwt-private-key.pem") if self.private_key else None
        self.settings = {**self.settings, **edge_settings(self.jwt_secret, key)}
        self.env = {**self.deployment, **self.env}

    def worker_home(self, name: str) -> Path:
        return self.home / "edge-hosts" / name

    def worker_env(self, name: str) -> dict[str, str]:
        """What the host's Edge worker gets: nothing of the central site but its URLs and the secret."""
        worker = self.edge_workers[name]
        home = self.worker_home(name)
        env = base_env(home)
        env.update(
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=NO_DATABASE,
            AIRFLOW__CORE__EXECUTOR=f"LocalExecutor,{EDGE_EXECUTOR}",
            AIRFLOW__EDGE__API_URL=f"{self.url}/edge_worker/v1/rpcapi",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=self.jwt_secret,
            AIRFLOW__EDGE__JOB_POLL_INTERVAL="2",
            AIRFLOW__EDGE__HEARTBEAT_INTERVAL="10",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(home / "logs"),
            PYTHONUNBUFFERED="1",
        )
        for variable in ("NO_PROXY", "no_proxy"):
            env[variable] = ",".join(filter(None, [env.get(variable), "127.0.0.1,localhost"]))
        env.update(self.deployment)
        env.update(worker.env)
        return env

    def worker_command(self, name: str) -> list[str]:
        worker = self.edge_workers[name]
        return [
            "edge",
            "worker",
            "--queues",
            worker.queue,
            "--edge-hostname",
            worker.hostname,
            "--concurrency",
            str(worker.concurrency),
        ]

    def launch_worker(self, name: str) -> None:
        """Start (or restart) one host's Edge worker, in its own process group, logging to stack-logs."""
        home = self.worker_home(name)
        home.mkdir(parents=True, exist_ok=True)
        log = (self.log_dir / f"{name}.log").open("ab")
        try:
            self.processes[name] = subprocess.Popen(
                [str(BIN / "airflow"), *self.worker_command(name)],
                env=self.worker_env(name),
                cwd=home,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()

    def stop_worker(self, name: str, timeout: float = 120) -> None:
        """SIGTERM one Edge worker (it drains: running jobs end first) and wait for it."""
        process = self.processes.pop(name)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)

    def wait_until_ready(self, timeout: float = 180, dag_id: str | None = None) -> None:
        super().wait_until_ready(timeout, dag_id or self.ready_dag_id)

    def start(self, timeout: float = 240) -> EdgeStack:
        super().start(timeout)
        try:
            for name in self.edge_workers:
                self.launch_worker(name)
        except BaseException:
            self.stop()
            raise
        return self

    def edge_worker_states(self) -> dict[str, str]:
        """Each Edge worker the central site knows: its name -> state (REST of the edge3 plugin)."""
        response = self.api("GET", "/edge_worker/ui/worker", check=False)
        if not response.ok:
            return {}
        return {w["worker_name"]: w["state"] for w in response.json().get("workers", [])}


def edge_stack(
    home: Path,
    deployment: Mapping[str, str],
    workers: Mapping[str, EdgeWorker],
    ready_dag_id: str = DAG_ID,
    env: Mapping[str, str] | None = None,
    private_key: bool = True,
) -> EdgeStack:
    """The central site (api-server, scheduler, dag-processor: no triggerer, a fleet has no watcher) and
    one Edge worker per entry of ``workers``."""
    components = {name: args for name, args in COMPONENTS.items() if name != "triggerer"}
    return EdgeStack(
        home,
        env=dict(env or {}),
        components=components,
        edge_workers=dict(workers),
        deployment=dict(deployment),
        ready_dag_id=ready_dag_id,
        private_key=private_key,
    )
