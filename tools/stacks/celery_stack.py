"""docker-compose.yaml's topology without Docker: Airflow on PostgreSQL with the CeleryExecutor, Redis as the
broker, and one or more ``airflow celery worker`` processes, all on this machine (for tests/celery).

The component commands are ``COMPONENTS``, the one source both this module and docker-compose.yaml use
(tests/integrity/test_compose.py asserts that every compose service runs exactly these arguments). The
api-server takes its host and port from ``AIRFLOW__API__HOST``/``AIRFLOW__API__PORT`` (AirflowStack sets
them), so its command needs no flags and stays the compose one. As in compose, only workers get the
OpenClaw state dir and the Nexus Connection (``worker_env()``, per worker: a fleet worker has its own
state dir), and the triggerer gets the state dir of the default worker (it is where the completion
watcher runs; it never uploads, so it gets no key); every component gets ``deployment_env()``.

Isolation, so that test sessions (and other users of the same PostgreSQL and Redis) never see each other:

- PostgreSQL: one fresh database per stack (``postgres_database()``: ``createdb``, ``dropdb --force`` at
  the end); it is the metadata DB and the Celery result backend.
- Redis: database ``REDIS_DB``, every key under a prefix of its own (kombu's ``global_keyprefix``), so a
  worker of one stack never takes another stack's task. Keys are deleted when the stack stops (what
  they hold is kept first, so that ``leaks()`` still searches it), and leftovers of stacks whose process
  is gone are deleted when the next one starts (never a FLUSHDB: another session may be using the same
  database right now).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import secrets
import subprocess
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import redis

from tools.stacks.airflow_stack import DAG_ID, AirflowStack, free_port
from tools.stacks.sandbox import ROOT, nexus_connection

# The `airflow` arguments of each component, exactly as docker-compose.yaml's services run them.
COMPONENTS: dict[str, list[str]] = {
    "api-server": ["api-server"],
    "scheduler": ["scheduler"],
    "dag-processor": ["dag-processor"],
    # --skip-serve-logs: no log server subprocess and no port 8794 (see tools/airflow_stack.COMPONENTS).
    "triggerer": ["triggerer", "--skip-serve-logs"],
    "celery-worker": ["celery", "worker"],
}
# docker-compose service -> component.
COMPOSE_SERVICES: dict[str, str] = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "celery-worker",
}
WORKER = COMPONENTS["celery-worker"]

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# This project's Redis database for Celery tests (database 0 is left to whoever else uses this Redis).
REDIS_DB = 9
KEY_PREFIX_RE = re.compile(r"^su-(\d+)-[0-9a-f]+\.")


def worker_command(queues: list[str] | None = None, hostname: str | None = None) -> list[str]:
    """``celery worker`` plus the options a fleet worker adds: its queues and a node name of its own."""
    args = list(WORKER)
    if queues:
        args += ["--queues", ",".join(queues)]
    if hostname:
        args += ["--celery-hostname", hostname]
    return args


def pg_url(database: str, scheme: str = "postgresql+psycopg2") -> str:
    return f"{scheme}://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}"


def celery_settings(database: str, key_prefix: str, redis_db: int = REDIS_DB) -> dict[str, str]:
    """The AIRFLOW__ settings of the Celery topology (what docker-compose.yaml sets, pointed at this
    machine), tuned for two shared cores."""
    return {
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": pg_url(database),
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{redis_db}",
        "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + pg_url(database),
        # Every broker key of this stack under its own prefix (see the module docstring).
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__GLOBAL_KEYPREFIX": key_prefix,
        "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "3600",
        # A few task processes per worker is all two cores can use; 16 (the default) only costs memory.
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": "3",
        # Publishing a task to Redis on a busy machine can take longer than the 1 s default.
        "AIRFLOW__CELERY__OPERATION_TIMEOUT": "15",
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__DAG_PROCESSOR__PARSING_PROCESSES": "1",
        "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        # Few connections per process: several stacks may share this PostgreSQL (max_connections 100).
        "AIRFLOW__DATABASE__SQL_ALCHEMY_POOL_SIZE": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_MAX_OVERFLOW": "4",
    }


def deployment_env(**extra: str) -> dict[str, str]:
    """The package's deployment settings for every component: its retry policy with short waits, and a
    yearly schedule, so no scheduled run comes in the middle of a test (the current yearly interval ends
    in the future; catchup is off)."""
    return {
        "SESSION_UPLOAD_SCHEDULE": "0 0 1 1 *",
        "SESSION_UPLOAD_RETRY_DELAY_SECONDS": "1",
        "SESSION_UPLOAD_BACKOFF_INITIAL_SECONDS": "0.05",
        "SESSION_UPLOAD_BACKOFF_MAX_SECONDS": "0.2",
        "SESSION_UPLOAD_READ_TIMEOUT_SECONDS": "20",
        **extra,
    }


def worker_env(state_dir: Path, nexus_url: str, api_key: str) -> dict[str, str]:
    """What only a worker gets, as in docker-compose.yaml: the OpenClaw state dir and the Nexus Connection
    (the API key is its password). No other component needs either."""
    return {
        "OPENCLAW_STATE_DIR": str(state_dir),
        "AIRFLOW_CONN_NEXUS_DEFAULT": nexus_connection(nexus_url, api_key),
    }


def ensure_services() -> None:
    """PostgreSQL and Redis up (started if down): scripts/services.sh, the same script CI runs."""
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "services.sh")], capture_output=True, text=True, timeout=180
    )
    if done.returncode != 0:
        raise RuntimeError(f"scripts/services.sh failed ({done.returncode}):\n{done.stdout}{done.stderr}")


def _pg(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [tool, "-h", PG_HOST, "-p", str(PG_PORT), "-U", PG_USER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=check,
    )


@contextmanager
def postgres_database(prefix: str = "session_upload") -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one stack; dropped (connections and all) afterwards."""
    name = f"{prefix}_{os.getpid()}_{secrets.token_hex(4)}"
    _pg("createdb", name)
    try:
        yield name
    finally:
        _pg("dropdb", "--force", "--if-exists", name, check=False)


def new_key_prefix() -> str:
    return f"su-{os.getpid()}-{secrets.token_hex(4)}."


def redis_client(redis_db: int = REDIS_DB) -> redis.Redis:
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=redis_db)


def delete_keys(prefix: str, redis_db: int = REDIS_DB) -> int:
    client = redis_client(redis_db)
    keys = list(client.scan_iter(match=f"{prefix}*", count=500))
    return client.delete(*keys) if keys else 0


def key_contents(client: redis.Redis, key: bytes) -> bytes:
    """Everything one key holds, as bytes a search can read: a string's value, the members of a list, set
    or sorted set, a hash's fields and values, a stream's entries; plus the body of each kombu message
    among them, decoded (kombu's Redis transport stores bodies base64-encoded). Not ``DUMP``: it
    LZF-compresses a value, and a string repeated inside it becomes a back-reference."""
    kind = client.type(key)
    # redis_client() leaves decode_responses off, so every reply is bytes; redis-py annotates its replies
    # bytes | str (and zrange's with the withscores shapes too) whatever the client's settings: the casts.
    parts: list[bytes] = []
    if kind == b"string":
        parts = [cast(bytes | None, client.get(key)) or b""]
    elif kind == b"list":
        parts = cast(list[bytes], client.lrange(key, 0, -1))
    elif kind == b"set":
        parts = sorted(cast(set[bytes], client.smembers(key)))
    elif kind == b"zset":
        parts = cast(list[bytes], client.zrange(key, 0, -1))
    elif kind == b"hash":
        parts = [part for item in cast(dict[bytes, bytes], client.hgetall(key)).items() for part in item]
    elif kind == b"stream":
        entries = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(key))
        parts = [part for _, entry in entries for item in entry.items() for part in item]
    return b"\n".join([*parts, *(body for part in parts for body in _kombu_bodies(part))])


def _kombu_bodies(value: bytes) -> list[bytes]:
    """The decoded bodies of the kombu messages in a JSON value (a queued message, or an unacked
    ``[message, exchange, routing_key]``)."""
    try:
        tree = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return []
    bodies, todo = [], [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, list):
            todo += node
        elif isinstance(node, dict):
            todo += node.values()
            encoding = (node.get("properties") or {}).get("body_encoding")
            if encoding == "base64" and isinstance(node.get("body"), str):
                try:
                    bodies.append(base64.b64decode(node["body"]))
                except (binascii.Error, ValueError):
                    bodies.append(node["body"].encode())
    return bodies


def redis_contents(prefix: str, redis_db: int = REDIS_DB) -> dict[bytes, bytes]:
    """key -> ``key_contents()`` of every key under the prefix."""
    client = redis_client(redis_db)
    return {key: key_contents(client, key) for key in client.scan_iter(match=f"{prefix}*", count=500)}


def delete_stale_keys(redis_db: int = REDIS_DB) -> int:
    """Delete the keys of stacks whose test process is gone (a session killed before its cleanup)."""
    client = redis_client(redis_db)
    stale = []
    for key in client.scan_iter(match="su-*", count=500):
        found = KEY_PREFIX_RE.match(key.decode(errors="replace"))
        if found and not Path(f"/proc/{found.group(1)}").exists():
            stale.append(key)
    return client.delete(*stale) if stale else 0


@dataclass
class CeleryStack(AirflowStack):
    """An AirflowStack on PostgreSQL + Redis with Celery workers.

    ``component_env`` adds environment variables to one component only (a fleet worker's own
    ``OPENCLAW_STATE_DIR``); ``ready_dag_id`` is the DAG whose parsing means "ready" (with a fleet there
    is no ``session_upload``, only ``session_upload_<host>``).
    """

    database: str = ""
    key_prefix: str = ""
    redis_db: int = REDIS_DB
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    ready_dag_id: str = DAG_ID
    # What this stack's Redis keys held when it stopped (key -> key_contents()), for leaks().
    redis_left: dict[bytes, bytes] = field(default_factory=dict, init=False)
    _launching: str | None = field(default=None, init=False)

    def process_env(self) -> dict[str, str]:
        env = super().process_env()
        if self._launching is not None:
            env.update(self.component_env.get(self._launching, {}))
        return env

    def _launch(self, name: str, args: list[str]) -> None:
        # AirflowStack._launch starts the component with self.process_env(): say which one it is.
        self._launching = name
        try:
            super()._launch(name, args)
        finally:
            self._launching = None

    def wait_until_ready(self, timeout: float = 180, dag_id: str | None = None) -> None:
        super().wait_until_ready(timeout, dag_id or self.ready_dag_id)

    def start(self, timeout: float = 240) -> CeleryStack:
        delete_stale_keys(self.redis_db)
        delete_keys(self.key_prefix, self.redis_db)
        super().start(timeout)
        return self

    def stop(self, grace: float = 30) -> None:
        try:
            super().stop(grace)
        finally:
            self.redis_left.update(redis_contents(self.key_prefix, self.redis_db))
            delete_keys(self.key_prefix, self.redis_db)

    def dump_database(self) -> Path:
        """``pg_dump`` of the metadata DB into the home, so ``leaks()`` searches it too."""
        target = self.home / "metadata-db.sql"
        done = _pg("pg_dump", "--no-owner", self.database, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"pg_dump {self.database} failed: {done.stderr[-2000:]}")
        target.write_text(done.stdout)
        return target

    def leaks(self, secret: str, *outputs: str) -> list[str]:
        """Every place the secret shows up: the outputs, every file under the home (component and task
        logs), the PostgreSQL metadata DB (dumped into the home) and this stack's Redis keys: those there
        now and, after ``stop()`` deleted them, what they held when it stopped (``redis_left``)."""
        self.dump_database()
        found = super().leaks(secret, *outputs)
        needle = secret.encode()
        held = {**self.redis_left, **redis_contents(self.key_prefix, self.redis_db)}
        for key, contents in sorted(held.items()):
            if needle in key or needle in contents:
                found.append(f"redis key {key.decode(errors='replace')}")
        return found


def celery_stack(
    home: Path,
    env: Mapping[str, str],
    database: str,
    workers: Mapping[str, tuple[list[str], Mapping[str, str]]] | None = None,
    ready_dag_id: str = DAG_ID,
    triggerer_env: Mapping[str, str] | None = None,
    **settings: str,
) -> CeleryStack:
    """A CeleryStack running every COMPONENT; ``workers`` replaces the one ``celery worker`` with named
    workers: ``{"worker-a": (worker_command([...], "worker-a"), {"OPENCLAW_STATE_DIR": ...})}``.

    The triggerer gets ``triggerer_env``; by default, as in docker-compose.yaml, the ``OPENCLAW_STATE_DIR``
    of the default worker (``celery-worker``) if it has one, and never the Nexus Connection.
    Each worker gets a free port for the log server it starts (8793 by default, which several workers on
    one machine cannot share; the triggerer starts none); nothing else differs between components.
    """
    key_prefix = new_key_prefix()
    workers = workers or {"celery-worker": (list(WORKER), {})}
    components: dict[str, list[str]] = {n: a for n, a in COMPONENTS.items() if n != "celery-worker"}
    if triggerer_env is None:
        default_worker = dict(workers.get("celery-worker", ([], {}))[1])
        triggerer_env = {k: v for k, v in default_worker.items() if k == "OPENCLAW_STATE_DIR"}
    component_env: dict[str, dict[str, str]] = {"triggerer": dict(triggerer_env)}
    for name, (args, extra) in workers.items():
        components[name] = list(args)
        component_env[name] = {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()), **extra}
    return CeleryStack(
        home,
        env=dict(env),
        settings={**celery_settings(database, key_prefix), **settings},
        components=components,
        database=database,
        key_prefix=key_prefix,
        component_env=component_env,
        ready_dag_id=ready_dag_id,
    )
