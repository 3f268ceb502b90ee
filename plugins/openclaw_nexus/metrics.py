"""The package's metrics, sent through Airflow's own metrics layer (``Stats``: StatsD, Datadog's StatsD or
OpenTelemetry, as the deployment's ``[metrics]`` section configures). Airflow glue.

Every name starts with ``session_upload.`` (Airflow puts its ``statsd_prefix`` before it). Names hold no
path, session id or key; the agent id travels only as the tag ``agent_id``, which plain StatsD drops (so a
counter sums over agents there). A metric that cannot be sent is logged and dropped: metrics never fail a
task. The arithmetic (``lag``, ``backlog``, ``tags_carried``) is plain functions of plain values.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import timedelta
from typing import Any

from openclaw_nexus import compat

log = logging.getLogger(__name__)

PREFIX = "session_upload"
UPLOADED = f"{PREFIX}.uploaded"  # counter: items Nexus confirmed with a 2xx
BYTES = f"{PREFIX}.bytes"  # counter: transcript bytes of those items
LAG = f"{PREFIX}.lag"  # timer: OpenClaw's completion (the item's mtimeNs) to Nexus's 2xx
ALREADY_SENT = f"{PREFIX}.already_sent"  # counter: Nexus already had these bytes: not sent again
ERRORS = f"{PREFIX}.errors"  # counters ERRORS.<stage>
STAGES = ("discover", "upload", "archive")
BACKLOG = f"{PREFIX}.backlog"  # gauge: completed items found and not archived, all agents
AGENT_BACKLOG = f"{PREFIX}.agent_backlog"  # gauge, tagged agent_id: only where tags are carried
WATCHER_EVENTS = f"{PREFIX}.watcher.events"  # counter: asset events the completion watcher fired
AGENT_TAG = "agent_id"


def lag(mtime_ns: int | None, now_ns: int) -> timedelta | None:
    """From an item's completion (``mtimeNs``, the last change discovery saw) to ``now_ns``; never below
    zero (a clock step backwards), None when the item has no time."""
    if mtime_ns is None:
        return None
    return timedelta(microseconds=max(0, now_ns - int(mtime_ns)) / 1000)


def backlog(
    scans: Iterable[Mapping[str, Any]], done: Iterable[Mapping[str, Any]]
) -> tuple[int, dict[str, int]]:
    """Completed items not yet archived: what the run's scans found minus what it archived, in all and per
    scanned agent (never below zero). ``scans``: ``discover``'s results (``agentId``, ``sessions``);
    ``done``: the archive receipts (``agentId``), an item archived without a resend included."""
    found = {scan["agentId"]: len(scan.get("sessions") or ()) for scan in scans}
    archived = Counter(receipt["agentId"] for receipt in done)
    per_agent = {agent: max(0, count - archived[agent]) for agent, count in sorted(found.items())}
    return sum(per_agent.values()), per_agent


def tags_carried(flag: Callable[[str], bool]) -> bool:
    """Whether the metrics backend Airflow picks keeps tags, from ``[metrics]`` flags (``flag(name)``),
    in Airflow's own order: Datadog (with its metrics tags on), else StatsD (tags only in InfluxDB's
    form), else OpenTelemetry (attributes); no backend, no tags."""
    if flag("statsd_datadog_enabled"):
        return flag("statsd_datadog_metrics_tags")
    if flag("statsd_on"):
        return flag("statsd_influxdb_enabled")
    return flag("otel_on")


def _flag(name: str) -> bool:
    return bool(compat.conf.getboolean("metrics", name, fallback=name == "statsd_datadog_metrics_tags"))


def _send(kind: str, name: str, *args: Any, tags: dict[str, str] | None = None) -> None:
    """``Stats.<kind>(name, *args, tags=...)``; a failure is logged, never raised."""
    try:
        getattr(compat.Stats, kind)(name, *args, tags=tags or None)
    except Exception:
        log.warning("metric %s not sent", name, exc_info=True)


def _agent(agent_id: str | None) -> dict[str, str] | None:
    return {AGENT_TAG: agent_id} if agent_id else None


def uploaded(session: Mapping[str, Any], size: int, now_ns: int | None = None) -> None:
    """One item Nexus confirmed with a 2xx: ``uploaded``, its transcript ``bytes``, its ``lag``."""
    tags = _agent(session.get("agentId"))
    _send("incr", UPLOADED, 1, tags=tags)
    _send("incr", BYTES, size, tags=tags)
    waited = lag(session.get("mtimeNs"), time.time_ns() if now_ns is None else now_ns)
    if waited is not None:
        _send("timing", LAG, waited, tags=tags)


def already_sent(session: Mapping[str, Any]) -> None:
    """One item whose exact bytes Nexus already had (an archived copy says so): not sent again."""
    _send("incr", ALREADY_SENT, 1, tags=_agent(session.get("agentId")))


def errors(stage: str, count: int = 1, agent_id: str | None = None) -> None:
    """``count`` errors at ``stage`` (``discover``, ``upload``, ``archive``); nothing for 0."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {STAGES}")
    if count:
        _send("incr", f"{ERRORS}.{stage}", count, tags=_agent(agent_id))


def set_backlog(scans: Iterable[Mapping[str, Any]], done: Iterable[Mapping[str, Any]]) -> int:
    """Set the ``backlog`` gauge (and, where the backend keeps tags, ``agent_backlog`` per scanned agent);
    return the total."""
    total, per_agent = backlog(scans, done)
    _send("gauge", BACKLOG, total)
    try:
        tagged = tags_carried(_flag)
    except Exception:
        log.warning("[metrics] not readable: no per-agent backlog", exc_info=True)
        tagged = False
    if tagged:
        for agent_id, count in per_agent.items():
            _send("gauge", AGENT_BACKLOG, count, tags=_agent(agent_id))
    return total


def watcher_event() -> None:
    """One asset event the completion watcher fired."""
    _send("incr", WATCHER_EVENTS, 1)
