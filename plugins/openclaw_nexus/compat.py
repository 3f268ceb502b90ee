"""What differs between the Airflow releases this package supports: the one module that decides it.

Airflow 3.2.0 (Task SDK 1.2.0) added ``airflow.sdk.CronDataIntervalTimetable``,
``airflow.sdk.AssetOrTimeSchedule`` and ``airflow.sdk.exceptions.AirflowFailException``, and made
``retry_exponential_backoff`` a multiplier (before, a bool: ``True`` doubled each wait; since, ``True``
counts as 1.0: no growth at all). On 3.2.0 and later the names below are the ``airflow.sdk`` objects,
nothing else; before, they come from Airflow core (``airflow.timetables.interval``,
``airflow.timetables.assets``, ``airflow.exceptions``), where 3.1 keeps them (3.1's
``airflow.sdk.exceptions.AirflowException`` is core's class too).

Core's timetable names its first parameter ``cron``, the SDK's ``expression``: pass it positionally.

Metrics: ``Stats`` (Airflow's metrics layer, StatsD or OpenTelemetry as ``[metrics]`` configures) and the
``conf`` its settings are read from. Airflow 3.3 has them as ``airflow.sdk.observability.stats.Stats`` and
``airflow.sdk.configuration.conf``; there ``airflow.stats`` is a shim whose import warns. 3.1 has neither
SDK module and keeps ``airflow.stats.Stats`` (configured from ``[metrics]`` at first use) and
``airflow.configuration.conf``. Each is taken from the first of those places that exists, the order
Airflow's own providers use (``providers.common.compat``).

Every other name the package takes from ``airflow.sdk`` (``Asset``, ``AssetAlias``, ``AssetWatcher``,
``Param``, ``dag``, ``task``, ``task_group``, ``get_current_context``, ``airflow.sdk.log.mask_secret``;
the watcher's ``airflow.triggers.base.BaseEventTrigger`` from core) is in the same place on every
supported release (3.1.0 and later) and is imported from there directly.
"""

from __future__ import annotations

from airflow.sdk import __version__ as _task_sdk_version
from packaging.version import Version

# Task SDK 1.2.0 shipped with Airflow 3.2.0.
SDK_1_2 = Version(_task_sdk_version).release >= (1, 2)

if SDK_1_2:
    from airflow.sdk import AssetOrTimeSchedule, CronDataIntervalTimetable
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
else:
    from airflow.exceptions import AirflowException, AirflowFailException
    from airflow.timetables.assets import AssetOrTimeSchedule
    from airflow.timetables.interval import CronDataIntervalTimetable

try:
    from airflow.sdk.observability.stats import Stats
except ImportError:  # Airflow 3.1
    from airflow.stats import Stats
try:
    from airflow.sdk.configuration import conf
except ImportError:  # Airflow 3.1
    from airflow.configuration import conf

# The task retry waits double each try (retry_delay · 2^(try-1), capped by max_retry_delay) on both.
EXPONENTIAL_BACKOFF: float | bool = 2.0 if SDK_1_2 else True

__all__ = [
    "EXPONENTIAL_BACKOFF",
    "SDK_1_2",
    "AirflowException",
    "AirflowFailException",
    "AssetOrTimeSchedule",
    "CronDataIntervalTimetable",
    "Stats",
    "conf",
]
