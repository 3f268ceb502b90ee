"""Deployment settings: where OpenClaw's state lives, which Connection is Nexus, and the defaults a
deployment may override through environment variables. Airflow-free and cheap: the DAG file reads
these at parse time, so nothing here touches the disk or the network.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEFAULT_CONN_ID = "nexus_default"
STATE_DIR_ENV = "OPENCLAW_STATE_DIR"
DEFAULT_STATE_DIR = "~/.openclaw"
# Airflow's [core] max_map_length is 1024: one run never maps more sessions than this.
MAX_SESSIONS_CEILING = 1000
# How a JSONL-era transcript is archived once Nexus confirmed it (``Settings.jsonl_archive``).
JSONL_ARCHIVE_MOVE = "move"
JSONL_ARCHIVE_COPY = "copy"


def state_dir() -> Path:
    """``$OPENCLAW_STATE_DIR``, default ``~/.openclaw``, read when a task runs."""
    return Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR).expanduser()


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SESSION_UPLOAD_{name}") or default


def _flag(value: str) -> bool:
    """``1``/``true``/``yes``/``on`` or ``0``/``false``/``no``/``off`` (any case)."""
    word = value.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"not a yes/no value: {value!r} (use 1 or 0)")


@dataclass(frozen=True)
class Settings:
    """Per-deployment defaults, each from ``SESSION_UPLOAD_<NAME>`` when set.

    Settle times: ``settle_minutes`` (the DAG's Param of that name) for transcript files OpenClaw appends
    in place (JSONL era) and may still be writing; ``db_settle_seconds`` for completions committed in
    OpenClaw's database and the exports it publishes whole (``.zst`` or generation-named files), which
    are final when they appear. ``watch``: start runs on completions (the asset watcher, which needs a
    triggerer) besides the cron; off (``0``), the DAG runs on the cron alone. ``jsonl_archive``: a
    JSONL-era transcript, once Nexus has it, is moved into ``sessions/archive/`` (``move``) or copied
    there and left to OpenClaw (``copy``), whose usage report and memory search read ``sessions/`` only.
    ``watch_poll_seconds``: how often the watcher (and a fleet host's watch task) looks; ``watch_minutes``:
    how long a fleet host's watch task polls with nothing to signal before it ends and the next begins.
    """

    schedule: str = "0 * * * *"
    settle_minutes: int = 1
    db_settle_seconds: float = 0.0
    watch: bool = True
    max_sessions: int = 500
    task_retries: int = 2
    retry_delay_seconds: float = 60.0
    http_attempts: int = 5
    backoff_initial_seconds: float = 1.0
    backoff_max_seconds: float = 30.0
    connect_timeout_seconds: float = 10.0
    read_timeout_seconds: float = 300.0
    jsonl_archive: str = JSONL_ARCHIVE_MOVE
    watch_poll_seconds: float = 10.0
    watch_minutes: float = 10.0

    @classmethod
    def from_env(cls) -> Settings:
        """Settings with every field overridable by ``SESSION_UPLOAD_<FIELD NAME IN CAPITALS>``."""
        values: dict[str, Any] = {}
        for name, field in cls.__dataclass_fields__.items():
            default: Any = field.default  # every field has one
            convert = _flag if isinstance(default, bool) else type(default)
            values[name] = convert(_env(name.upper(), str(default)))
        settings = cls(**values)
        if not 1 <= settings.max_sessions <= MAX_SESSIONS_CEILING:
            raise ValueError(f"SESSION_UPLOAD_MAX_SESSIONS must be 1..{MAX_SESSIONS_CEILING}")
        if settings.watch_poll_seconds <= 0 or settings.watch_minutes <= 0:
            raise ValueError("SESSION_UPLOAD_WATCH_POLL_SECONDS and _WATCH_MINUTES must be above 0")
        if settings.settle_minutes < 0 or settings.db_settle_seconds < 0:
            raise ValueError("SESSION_UPLOAD_SETTLE_MINUTES and _DB_SETTLE_SECONDS must be 0 or more")
        archive_by = settings.jsonl_archive.strip().lower()
        if archive_by not in {JSONL_ARCHIVE_MOVE, JSONL_ARCHIVE_COPY}:
            raise ValueError(
                f"SESSION_UPLOAD_JSONL_ARCHIVE must be {JSONL_ARCHIVE_MOVE} or {JSONL_ARCHIVE_COPY}, "
                f"not {settings.jsonl_archive!r}"
            )
        return replace(settings, jsonl_archive=archive_by)

    @property
    def settle_seconds(self) -> float:
        """The files' settle time in seconds, as the detector and discovery take it."""
        return self.settle_minutes * 60.0


FLEET_ENV = "SESSION_UPLOAD_FLEET"
FLEET_EXECUTOR_ENV = "SESSION_UPLOAD_FLEET_EXECUTOR"
DAG_ID = "session_upload"
_HOST_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
# An executor's name as Airflow's [core] executor list knows it: a class name or alias, or a dotted path.
_EXECUTOR_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


@dataclass(frozen=True)
class Target:
    """One DAG to build: the default ``session_upload``, or one per host of a fleet (``executor``: the
    executor the host's tasks go through; None: the deployment's default, Celery in a fleet)."""

    dag_id: str
    queue: str | None = None
    host: str | None = None
    executor: str | None = None


def fleet() -> list[Target]:
    """The DAGs to build, from ``$SESSION_UPLOAD_FLEET`` (JSON: ``[{"host": "box-1", "queue": "q",
    "executor": "EdgeExecutor"}, ...]``; ``queue`` and ``executor`` optional).

    Unset: one DAG, ``session_upload``, on the default queue. Set: one DAG ``session_upload_<host>`` per
    host, whose file tasks run on that host's queue (default ``openclaw-<host>``): a Celery worker started
    with ``airflow celery worker --queues <queue>``, or, with ``"executor": "EdgeExecutor"`` (or
    ``$SESSION_UPLOAD_FLEET_EXECUTOR`` for every host without one), an Edge worker started with
    ``airflow edge worker -q <queue>``; either has the host's ``OPENCLAW_STATE_DIR``.
    """
    raw = os.environ.get(FLEET_ENV, "").strip()
    if not raw:
        return [Target(DAG_ID)]
    default_executor = os.environ.get(FLEET_EXECUTOR_ENV, "").strip() or None
    targets = []
    for entry in json.loads(raw):
        host = entry["host"]
        if not _HOST_RE.fullmatch(host):
            raise ValueError(f"{FLEET_ENV}: host name {host!r} must match {_HOST_RE.pattern}")
        executor = entry.get("executor") or default_executor
        if executor is not None and not (isinstance(executor, str) and _EXECUTOR_RE.fullmatch(executor)):
            raise ValueError(
                f"{FLEET_ENV} (or {FLEET_EXECUTOR_ENV}): host {host!r}: executor {executor!r} must be an "
                "executor's name from [core] executor, e.g. EdgeExecutor"
            )
        queue = entry.get("queue") or f"openclaw-{host}"
        targets.append(Target(f"{DAG_ID}_{host}", queue, host, executor))
    return targets
