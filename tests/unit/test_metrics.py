"""The metrics module's arithmetic (lag, backlog, which backends keep tags), the StatsD line parser the
end-to-end tests read datagrams with, and that a failing metrics backend never fails the caller."""

from __future__ import annotations

import logging
import subprocess
import sys
from datetime import timedelta

import pytest

from openclaw_nexus import compat, metrics
from tools.standins.statsd import Metric, counter, gauges, parse, timings


def test_lag_is_the_time_from_the_items_last_change_to_now():
    assert metrics.lag(1_000_000_000, 3_500_000_000) == timedelta(seconds=2.5)
    assert metrics.lag(5_000, 5_000) == timedelta(0)


def test_lag_is_never_negative_and_absent_without_a_time():
    assert metrics.lag(9_000_000_000, 1_000_000_000) == timedelta(0), "a clock stepped back"
    assert metrics.lag(None, 1) is None


def scan(agent: str, count: int) -> dict:
    return {"agentId": agent, "sessions": [{"sessionId": f"{agent}-{n}"} for n in range(count)], "errors": []}


def test_backlog_is_what_the_scans_found_minus_what_was_archived_per_agent_and_in_all():
    scans = [scan("main", 5), scan("research", 2), scan("idle", 0)]
    done = [{"agentId": "main"}] * 3 + [{"agentId": "research"}] * 2
    assert metrics.backlog(scans, done) == (2, {"idle": 0, "main": 2, "research": 0})


def test_backlog_with_nexus_down_is_everything_found_and_after_a_good_run_zero():
    scans = [scan("main", 4), scan("research", 1)]
    assert metrics.backlog(scans, []) == (5, {"main": 4, "research": 1})
    assert metrics.backlog(scans, [{"agentId": "main"}] * 4 + [{"agentId": "research"}]) == (
        0,
        {"main": 0, "research": 0},
    )


def test_backlog_never_goes_below_zero_and_ignores_agents_not_scanned():
    done = [{"agentId": "main"}] * 3 + [{"agentId": "elsewhere"}]
    assert metrics.backlog([scan("main", 1)], done) == (0, {"main": 0})
    assert metrics.backlog([], []) == (0, {})


@pytest.mark.parametrize(
    ("flags", "carried"),
    [
        (set(), False),
        ({"statsd_on"}, False),
        ({"statsd_on", "statsd_influxdb_enabled"}, True),
        ({"statsd_datadog_enabled", "statsd_datadog_metrics_tags"}, True),
        ({"statsd_datadog_enabled"}, False),
        ({"otel_on"}, True),
        ({"statsd_on", "otel_on"}, False),  # Airflow picks StatsD first: plain names
        ({"statsd_datadog_enabled", "statsd_datadog_metrics_tags", "statsd_on"}, True),
    ],
)
def test_tags_are_carried_only_by_the_backend_airflow_picks_when_it_keeps_them(flags, carried):
    assert metrics.tags_carried(lambda name: name in flags) is carried


class Broken:
    """A metrics backend that fails every call."""

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise OSError(f"{name}: the metrics backend is gone")

        return fail


def test_a_failing_metrics_backend_is_logged_and_never_raised(monkeypatch, caplog):
    monkeypatch.setattr(compat, "Stats", Broken())
    with caplog.at_level(logging.WARNING, logger=metrics.__name__):
        metrics.uploaded({"agentId": "main", "mtimeNs": 1}, 10)
        metrics.already_sent({"agentId": "main"})
        metrics.errors("upload", agent_id="main")
        assert metrics.set_backlog([scan("main", 2)], []) == 2
        metrics.watcher_event()
    sent = [record.getMessage() for record in caplog.records]
    assert sent == [
        f"metric {name} not sent"
        for name in (
            metrics.UPLOADED,
            metrics.BYTES,
            metrics.LAG,
            metrics.ALREADY_SENT,
            f"{metrics.ERRORS}.upload",
            metrics.BACKLOG,
            metrics.WATCHER_EVENTS,
        )
    ]


class Recorder:
    """A metrics backend that records its calls (the package's side of ``Stats`` only)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, kind):
        return lambda *args, tags=None: self.calls.append((kind, *args, tags))


def test_what_each_function_sends_names_and_tags_and_nothing_for_no_errors(monkeypatch):
    recorder = Recorder()
    monkeypatch.setattr(compat, "Stats", recorder)
    metrics.uploaded({"agentId": "main", "mtimeNs": 1_000_000_000}, 42, now_ns=3_000_000_000)
    metrics.errors("discover", 0)
    metrics.errors("discover", 2, "main")
    metrics.errors("archive")
    with pytest.raises(ValueError, match="unknown stage"):
        metrics.errors("elsewhere")
    main = {"agent_id": "main"}
    assert recorder.calls == [
        ("incr", metrics.UPLOADED, 1, main),
        ("incr", metrics.BYTES, 42, main),
        ("timing", metrics.LAG, timedelta(seconds=2), main),
        ("incr", f"{metrics.ERRORS}.discover", 2, main),
        ("incr", f"{metrics.ERRORS}.archive", 1, None),
    ]
    names = [metrics.UPLOADED, metrics.BYTES, metrics.LAG, metrics.ALREADY_SENT, metrics.BACKLOG]
    names += [
        metrics.AGENT_BACKLOG,
        metrics.WATCHER_EVENTS,
        *(f"{metrics.ERRORS}.{s}" for s in metrics.STAGES),
    ]
    assert all(name.startswith("session_upload.") and "/" not in name for name in names)


def test_on_this_airflow_stats_comes_from_the_sdk_without_the_deprecated_shim():
    """Airflow 3.3 warns on importing ``airflow.stats``: compat must not import it there."""
    code = (
        "import sys, openclaw_nexus.metrics as m; "
        "print(m.compat.Stats.__module__, 'airflow.stats' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    module, shim = done.stdout.split()
    assert module.startswith("airflow.sdk.") and shim == "False", done.stdout


def test_the_statsd_parser_reads_counters_gauges_timers_and_both_tag_forms():
    datagram = "\n".join(
        [
            "airflow.session_upload.uploaded:1|c",
            "airflow.session_upload.uploaded:2|c|#agent_id:main",
            "airflow.session_upload.backlog:3|g",
            "airflow.session_upload.agent_backlog,agent_id=main:2|g",
            "airflow.session_upload.lag:1500.5|ms",
        ]
    )
    got = parse(datagram)
    assert got[1] == Metric("session_upload.uploaded", 2.0, "c", ("agent_id:main",))
    assert counter(got, "session_upload.uploaded") == 3
    assert gauges(got, "session_upload.backlog") == [((), 3.0)]
    assert gauges(got, "session_upload.agent_backlog") == [(("agent_id:main",), 2.0)]
    assert timings(got, "session_upload.lag") == [1500.5]
    with pytest.raises(ValueError, match="not a StatsD line"):
        parse("garbage")
