"""The package's metrics, end to end: the real DAG under `airflow dags test` with Airflow's `[metrics]`
pointed at a real StatsD listener (a UDP socket on loopback, `tools/standins/statsd.py`); the datagrams
are parsed and held to the JobResult, to what the Nexus stand-in received and to what is on disk.

Three runs over one state dir: a run capped by `max_sessions` (a backlog is left), a run with Nexus down
and more sessions completed (the backlog grows, the upload errors count every failed try), a run with
Nexus back and one transcript that Nexus already holds (the backlog drains to 0; `already_sent` counts it,
`uploaded` does not). The second run sends tags the InfluxDB way, so the per-agent backlog shows.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import time
from pathlib import Path

from openclaw_nexus import metrics
from tests.e2e.test_faults import closed_port, tries
from tools.demo.sample_state import make_state, transcript_lines
from tools.stacks.sandbox import API_KEY, new_sandbox
from tools.standins.nexus import NexusStandin
from tools.standins.statsd import Metric, StatsdListener, counter, gauges, timings

UPLOAD = "deliver.upload"
AGENTS = ["main", "research"]
OURS = metrics.PREFIX + "."


def ours(received: list[Metric]) -> list[Metric]:
    return [m for m in received if m.name.startswith(OURS)]


def received_bytes(nexus: NexusStandin, start: int = 0) -> tuple[int, int]:
    """(count, transcript bytes) of the requests Nexus answered with a 2xx, from request ``start`` on."""
    sent = [r for r in nexus.requests()[start:] if 200 <= r["status"] < 300]
    return len(sent), sum(len(json.loads(nexus.body(r["n"]))["transcript"].encode()) for r in sent)


def pending(state: Path, completed: dict[str, list[str]]) -> dict[str, set[str]]:
    """Per agent, the completed transcripts still in ``sessions/`` (not archived): the real backlog."""
    return {
        agent: {name for name in names if (state / "agents" / agent / "sessions" / name).exists()}
        for agent, names in completed.items()
    }


def test_metrics_follow_the_job_results_nexus_and_the_disk_across_a_cap_an_outage_and_a_recovery(
    template_home, tmp_path
):
    """Run 1 (cap 3): ``uploaded`` == itemsProcessed == the 2xx Nexus answered, ``bytes`` == the transcript
    bytes it received, one ``lag`` per upload equal to the wait since each file's mtime, ``backlog`` ==
    found - archived == the completed files left on disk. Run 2 (Nexus down, 2 more sessions): ``backlog``
    grows by them, per agent too (InfluxDB tags), ``errors.upload`` == the failed upload tries. Run 3
    (Nexus up, one archived transcript put back): ``backlog`` 0, ``uploaded`` == itemsProcessed,
    ``already_sent`` 1, disjoint from ``uploaded``. Under plain StatsD no per-agent series is sent."""
    state = tmp_path / "openclaw"
    made = make_state(state, AGENTS, completed=3)
    completed = {agent: [item["file"] for item in made[agent]["completed"]] for agent in AGENTS}
    # Distinct ages, ten minutes apart, so each upload's lag is matched to its own file; the agents
    # alternate, so the capped first run leaves something on both.
    now = time.time()
    mtimes: dict[str, float] = {}
    pairs = [(agent, made[agent]["completed"][n]) for n in range(3) for agent in AGENTS]
    for k, (agent, item) in enumerate(pairs):
        path = state / "agents" / agent / "sessions" / item["file"]
        mtime = now - 3600 - 600 * k
        os.utime(path, (mtime, mtime))
        mtimes[item["sessionId"]] = mtime
    found_first = sum(len(made[a]["completed"]) for a in AGENTS)

    with StatsdListener() as statsd, NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as nexus:
        sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url, **statsd.env())

        # Run 1: Nexus up, capped.
        mark = statsd.mark()
        started = time.time()
        first = sandbox.run_dag({"max_sessions": 3})
        ended = time.time()
        statsd.settle()
        got = statsd.since(mark)
        assert first.state == "success", first.output[-3000:]
        assert first.job_result["itemsProcessed"] == 3
        assert any(m.name == "ti.finish" for m in got), "Airflow's own task metrics arrive too"
        count, sent_bytes = received_bytes(nexus)
        assert counter(got, metrics.UPLOADED) == count == 3
        assert counter(got, metrics.BYTES) == sent_bytes > 0
        lags = sorted(timings(got, metrics.LAG))
        waits = sorted(mtimes[r["sessionId"]] for r in nexus.accepted())
        assert len(lags) == 3
        for lag_ms, mtime in zip(lags, reversed(waits), strict=True):  # the oldest file waited longest
            assert (started - mtime) * 1000 - 5 <= lag_ms <= (ended - mtime) * 1000 + 5
        left = pending(state, completed)
        assert {agent: len(names) for agent, names in left.items()} == {"main": 2, "research": 1}
        assert gauges(got, metrics.BACKLOG) == [((), found_first - 3)]
        assert counter(got, metrics.ALREADY_SENT) == 0
        assert {m.name for m in ours(got)} == {metrics.UPLOADED, metrics.BYTES, metrics.LAG, metrics.BACKLOG}

    # Run 2: two more sessions complete on main; Nexus is down; tags sent the InfluxDB way.
    sessions = state / "agents" / "main" / "sessions"
    for n, sid in enumerate(["9a0e0000-0000-4000-8000-00000000000a", "9a0e0000-0000-4000-8000-00000000000b"]):
        (sessions / f"{sid}.jsonl").write_text(transcript_lines(sid, random.Random(n)))
        os.utime(sessions / f"{sid}.jsonl", (now - 1800 - 60 * n, now - 1800 - 60 * n))
        completed["main"].append(f"{sid}.jsonl")
    with StatsdListener() as statsd:
        sandbox.nexus_url = f"http://127.0.0.1:{closed_port()}"
        sandbox.extra_env.update(
            statsd.env(),
            AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED="True",
            SESSION_UPLOAD_HTTP_ATTEMPTS="2",
            SESSION_UPLOAD_TASK_RETRIES="1",
        )
        down = sandbox.run_dag()
        statsd.settle()
        got = statsd.metrics()
    assert down.state == "failed"
    backlog_second = found_first - 3 + 2
    assert {e["stage"] for e in down.job_result["errors"]} == {"upload"}
    assert len(down.job_result["errors"]) == backlog_second
    assert gauges(got, metrics.BACKLOG) == [((), backlog_second)]
    left = pending(state, completed)
    assert {agent: len(names) for agent, names in left.items()} == {"main": 4, "research": 1}
    assert {tags: value for tags, value in gauges(got, metrics.AGENT_BACKLOG)} == {
        (f"agent_id:{agent}",): len(left[agent]) for agent in AGENTS
    }
    failed_tries = sum(tries(sandbox, down, UPLOAD).values())
    assert failed_tries == 2 * backlog_second, "each upload tried twice (one Airflow retry)"
    assert counter(got, f"{metrics.ERRORS}.upload") == failed_tries
    by_agent = {agent: 0.0 for agent in AGENTS}
    for m in got:
        if m.name == f"{metrics.ERRORS}.upload":
            by_agent[dict(t.split(":", 1) for t in m.tags)["agent_id"]] += m.value
    assert by_agent == {agent: 2 * len(left[agent]) for agent in AGENTS}
    assert counter(got, metrics.UPLOADED) == counter(got, metrics.BYTES) == 0 and not timings(
        got, metrics.LAG
    )

    # Run 3: Nexus back; one transcript archived by run 1 is put back (as a restore from a backup would).
    archived = next(
        p for a in AGENTS for p in (state / "agents" / a / "sessions" / "archive").glob("*.jsonl")
    )
    restored = archived.parent.parent / archived.name
    shutil.copyfile(archived, restored)
    os.utime(restored, (now - 7200, now - 7200))
    with StatsdListener() as statsd, NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus-3") as nexus:
        sandbox.nexus_url = nexus.url
        for name in ("AIRFLOW__METRICS__STATSD_INFLUXDB_ENABLED", "SESSION_UPLOAD_TASK_RETRIES"):
            sandbox.extra_env.pop(name)
        sandbox.extra_env.update(statsd.env())
        up = sandbox.run_dag()
        statsd.settle()
        got = statsd.metrics()
        count, sent_bytes = received_bytes(nexus)
    assert up.state == "success", up.output[-3000:]
    assert up.job_result["itemsProcessed"] == backlog_second
    assert "1 already uploaded with the same bytes" in up.job_result["message"]
    assert counter(got, metrics.UPLOADED) == count == backlog_second
    assert counter(got, metrics.ALREADY_SENT) == 1
    assert counter(got, metrics.BYTES) == sent_bytes
    assert len(timings(got, metrics.LAG)) == backlog_second
    assert gauges(got, metrics.BACKLOG) == [((), 0)]
    assert pending(state, completed) == {agent: set() for agent in AGENTS}
    assert not gauges(got, metrics.AGENT_BACKLOG), "plain StatsD: the total only"
    assert not [m for m in ours(got) if m.name.startswith(metrics.ERRORS)]
