"""Benchmarks: figures side by side, measured in one run on this machine. Not part of the test suite.

    python -m tools.bench import                 DAG file import cost beyond `import airflow.sdk`
    python -m tools.bench discovery [--files N]  classify N files in one sessions folder
    python -m tools.bench memory [--sizes MB,..] peak RSS of an upload run per transcript size vs idle
    python -m tools.bench e2e [--sessions N --agents M]   the DAG vs Airflow's floor vs the plain loop
    python -m tools.bench sqlite-discovery [--db-sessions N --files N --exports N]
                                                 SQLite era: scan an agent database of N sessions beside
                                                 the JSONL era's N files; read transactions of exports
    python -m tools.bench sqlite-memory [--sizes MB,..]   peak RSS: a JSONL file vs SQLite zstd rows
    python -m tools.bench sqlite-e2e [--sessions N --agents M]   e2e with SQLite-era sessions
    python -m tools.bench run-size [--sizes-sessions 100,300,500,1000 --backlogs 1000,3000]
                                                 floor and DAG per run size (watcher attached); the
                                                 time to drain a backlog in runs of each size
    python -m tools.bench latency [--stacks embedded,celery --minutes 15 --idle-minutes 10]
    python -m tools.bench latency --fleet celery [--minutes 15 --idle-minutes 10]
                                                 completion -> Nexus latency of the real DAG with
                                                 its watcher, per kind, beside today's cron
                                                 (tools/bench/latency.py)
    python -m tools.bench agents [--agents 10,100,1000 --check-agents 10000]
                                                 runs by type when most agents are idle, the check's
                                                 time, completion -> Nexus with the watcher
                                                 (tools/bench/agents.py)
    python -m tools.bench all                    (every section but latency and agents)

Each section prints a Markdown table (what the README's benchmark section shows).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from tools.stacks.sandbox import migrate, new_sandbox, nexus_connection, run_measuring_rss  # noqa: E402

T = TypeVar("T")
MB = 1 << 20
DAG_FILE = ROOT / "dags" / "session_upload_dag.py"
# The no-op DAG of the same shape: Airflow's floor.
FLOOR_DAG_FILE = Path(__file__).with_name("dags") / "session_upload_floor.py"


def table(title: str, header: list[str], rows: Sequence[Sequence[object]]) -> None:
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
    sys.stdout.flush()


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB, Python {platform.python_version()}"


# --- 2. DAG file import cost ---------------------------------------------------------------------

_IMPORT_PROBE = """
import json, runpy, sys, time
t0 = time.perf_counter()
import airflow.sdk
t1 = time.perf_counter()
{extra}
t2 = time.perf_counter()
print(json.dumps([t1 - t0, t2 - t1]))
"""


def _fresh_interpreter(extra: str, home: Path) -> tuple[float, float]:
    env = {**os.environ, "AIRFLOW_HOME": str(home), "PYTHONPATH": str(ROOT / "plugins")}
    out = subprocess.run(
        [sys.executable, "-c", _IMPORT_PROBE.format(extra=extra)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    sdk, rest = json.loads(out.strip().splitlines()[-1])
    return sdk, rest


def bench_import(repeat: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="bench-import-"))
    probes = {
        "the DAG file (dags/session_upload_dag.py)": f"runpy.run_path({str(DAG_FILE)!r})",
        "of which: providers-http's HttpOperator (required)": "import airflow.providers.http.operators.http",
        "of which: our package without the operator": "import openclaw_nexus.runs, openclaw_nexus.config",
    }
    rows = []
    for label, code in probes.items():
        runs = [_fresh_interpreter(code, home) for _ in range(repeat)]
        sdk = statistics.median(r[0] for r in runs)
        extra = statistics.median(r[1] for r in runs)
        rows.append([label, f"{extra:.3f}", f"{sdk:.3f}"])
    table(
        f"DAG file import cost, fresh interpreter (median of {repeat}; target ≤ 0.3 s beyond airflow.sdk)",
        ["what is imported", "seconds beyond `import airflow.sdk`", "`import airflow.sdk` itself"],
        rows,
    )


# --- 4. Discovery --------------------------------------------------------------------------------


def _make_big_folder(sessions: Path, files: int) -> int:
    """``files`` files in one sessions folder, in the proportions of a busy agent; returns completed count."""
    from uuid import UUID

    sessions.mkdir(parents=True)
    old = time.time() - 7200
    active = {}
    completed = 0
    forms = [
        "{id}.jsonl",
        "{id}.jsonl.reset.2026-02-02T20-29-47.344Z",
        "{id}-topic-3.jsonl",
        "{id}.trajectory.jsonl",
        "{id}.jsonl.bak-1",
        "{id}.checkpoint.{id}.jsonl",
        "2026-07-01T09-00-00-123Z_{id}.jsonl",
        "{id}.jsonl.deleted.2026-03-01T10-00-00.000Z",
        "{id}.trajectory-path.json",
        "{id}.jsonl.lock",
    ]
    for n in range(files):
        sid = str(UUID(int=n + 1))
        name = forms[n % len(forms)].format(id=sid)
        path = sessions / name
        path.write_bytes(b'{"type":"session","id":"' + sid.encode() + b'"}\n{"type":"message"}\n')
        os.utime(path, (old, old))
        if n % 50 == 0:
            active[f"agent:main:k{n}"] = {"sessionId": sid}
    (sessions / "sessions.json").write_text(json.dumps(active))
    return completed


def _timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_discovery(files: int) -> None:
    from openclaw_nexus.discovery import Window
    from openclaw_nexus.names import parse_transcript_name
    from openclaw_nexus.stores import scan_agent

    root = Path(tempfile.mkdtemp(prefix="bench-discovery-"))
    sessions = root / "agents" / "main" / "sessions"
    _make_big_folder(sessions, files)
    names = os.listdir(sessions)
    window = Window(now=time.time(), settle_seconds=300)
    parse_s, _ = _timed(lambda: [parse_transcript_name(n) for n in names])
    scan_s, scan = _timed(lambda: scan_agent(root, "main", window))
    table(
        f"Discovery of one sessions folder with {files:,} files (best of 3; target ≤ 2 s)",
        ["step", "seconds", "files/s", "result"],
        [
            ["classify names (parse_transcript_name)", f"{parse_s:.3f}", f"{files / parse_s:,.0f}", ""],
            [
                "full scan_agent (index, names, stat, locks, header check)",
                f"{scan_s:.3f}",
                f"{files / scan_s:,.0f}",
                f"{len(scan.sessions):,} completed, skipped {dict(scan.skipped)}",
            ],
        ],
    )


# --- 3. Upload memory ----------------------------------------------------------------------------


def _write_transcript(path: Path, size: int, session_id: str) -> None:
    line = json.dumps({"type": "message", "text": "naïve café ✓ " * 60}, ensure_ascii=False).encode() + b"\n"
    block = line * max(1, MB // len(line))
    with path.open("wb") as out:
        out.write(b'{"type":"session","id":"' + session_id.encode() + b'"}\n')
        written = 0
        while written < size:
            out.write(block)
            written += len(block)
    old = time.time() - 3600
    os.utime(path, (old, old))


def _dags_test_peak_rss(sandbox, output: Path | None = None) -> tuple[int, float, str]:
    """Run `airflow dags test` and return (peak RSS in bytes of it and its children, seconds, state);
    its output goes to ``output`` when given."""
    start = time.perf_counter()
    with open(output or os.devnull, "wb") as sink:
        _, _, peak = run_measuring_rss(
            sandbox.command(), env=sandbox.env(), cwd=sandbox.home, stdout=sink, stderr=subprocess.STDOUT
        )
    seconds = time.perf_counter() - start
    outcome = sandbox._outcome(0, "")
    return peak, seconds, outcome.state


def bench_memory(sizes_mb: list[int]) -> None:
    from tools.standins.nexus import NexusStandin

    work = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    template = work / "template"
    migrate(template)
    rows = []
    with NexusStandin(api_key="bench-key", record_dir=work / "nexus", store_bodies=False) as nexus:
        baseline = None
        for size_mb in [0, *sizes_mb]:
            state = work / f"state-{size_mb}"
            sessions = state / "agents" / "main" / "sessions"
            sessions.mkdir(parents=True)
            (sessions / "sessions.json").write_text("{}")
            sid = f"bench-{size_mb}mb"
            _write_transcript(sessions / f"{sid}.jsonl", max(size_mb * MB, 1), sid)
            sandbox = new_sandbox(template, work / f"airflow-{size_mb}", state, nexus.url)
            sandbox.api_key = "bench-key"
            peak, seconds, state_name = _dags_test_peak_rss(sandbox)
            baseline = peak if baseline is None else baseline
            label = "idle (1 KB transcript)" if size_mb == 0 else f"{size_mb} MB"
            rows.append(
                [label, f"{peak / MB:.0f}", f"{(peak - baseline) / MB:+.0f}", f"{seconds:.1f}", state_name]
            )
            (sessions / "archive" / f"{sid}.jsonl").unlink(missing_ok=True)
    table(
        "Peak RSS of an `airflow dags test` run uploading one transcript (target: flat, ≤ 80 MB above idle)",
        ["transcript", "peak RSS (MB)", "above idle (MB)", "run seconds", "run state"],
        rows,
    )


# --- 1. End to end: the DAG vs Airflow's floor vs the plain loop ---------------------------------


def _bench_state(root: Path, sessions: int, agents: int, prefix: str, age: float = 3600) -> None:
    """``sessions`` completed transcripts (a few KB each) spread over ``agents`` agents, ``age`` seconds
    old; added beside what the agents' folders already hold."""
    from tools.demo.sample_state import transcript_lines

    old = time.time() - age
    rng = __import__("random").Random(5)
    for a in range(agents):
        folder = root / "agents" / f"agent-{a:02d}" / "sessions"
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "sessions.json").exists():
            (folder / "sessions.json").write_text("{}")
        for n in range(sessions // agents):
            sid = f"{prefix}-{a:02d}-{n:05d}"
            path = folder / f"{sid}.jsonl"
            path.write_text(transcript_lines(sid, rng, turns=4), encoding="utf-8")
            os.utime(path, (old + n, old + n))


def _timed_run(stack, dag_id: str, conf: dict, timeout: float, unpause: bool = False) -> tuple[float, str]:
    start = time.perf_counter()
    run_id = stack.trigger(conf, dag_id=dag_id)
    if unpause:  # a paused DAG's manual run waits in the queue: this starts it
        stack.set_paused(False, dag_id=dag_id)
    run = stack.wait_for_run(run_id, dag_id=dag_id, timeout=timeout)
    return time.perf_counter() - start, run["state"]


def _watcher_runs(stack, dag_id: str = "session_upload") -> list[dict]:
    """The runs the watcher started (run type asset_triggered), oldest first."""
    runs = [r for r in stack.dag_runs(dag_id) if r["run_type"] == "asset_triggered"]
    return sorted(runs, key=lambda r: r.get("start_date") or r.get("queued_at") or "")


def _lock_errors(stack) -> dict[str, int]:
    """'database is locked' lines per component log of the stack."""
    return {
        name: (stack.log_dir / f"{name}.log").read_text(errors="replace").count("database is locked")
        for name in stack.processes
    }


def bench_e2e(sessions: int, agents: int, era: str = "jsonl", conversations: int = 1) -> None:
    from tools.stacks.airflow_stack import AirflowStack
    from tools.standins.nexus import NexusStandin

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / DAG_FILE.name).symlink_to(DAG_FILE)
    (dags / "session_upload_floor.py").symlink_to(
        ROOT / "tools" / "bench" / "dags" / "session_upload_floor.py"
    )
    api_key = "bench-" + os.urandom(8).hex()
    rows = []
    with NexusStandin(api_key=api_key, record_dir=work / "nexus", store_bodies=False) as nexus:
        loop_state, dag_state = work / "loop-state", work / "dag-state"
        if era == "sqlite":
            items = _bench_sqlite_state(loop_state, sessions, agents, tag=1, conversations=conversations)
            _bench_sqlite_state(dag_state, sessions, agents, tag=2, conversations=conversations)
            print(f"{items} items per state ({conversations} conversations per session)", flush=True)
        else:
            _bench_state(loop_state, sessions, agents, "loop")
            _bench_state(dag_state, sessions, agents, "dag")
        start = time.perf_counter()
        uploaded, loop_reads = _plain_loop(loop_state, nexus.url, api_key)
        loop_s = time.perf_counter() - start
        print(f"plain loop: {uploaded} uploaded in {loop_s:.1f} s", flush=True)  # before the long part
        if loop_reads:
            print(f"Read transaction per session, plain loop: {_percentiles(loop_reads)}", flush=True)

        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            # Yearly from 2026-01-01: unpausing creates no scheduled run to compete with the measured ones.
            "SESSION_UPLOAD_SCHEDULE": "0 0 1 1 *",
            "OPENCLAW_STATE_DIR": str(dag_state),
            "AIRFLOW_CONN_NEXUS_DEFAULT": nexus_connection(nexus.url, api_key),
        }
        with AirflowStack(work / "airflow", env=env) as stack:
            stack.wait_for(
                "the floor DAG to be parsed",
                lambda: stack.api("GET", "/api/v2/dags/session_upload_floor", check=False).ok,
            )
            # session_upload stays paused until its timed run is triggered: the watcher (in the triggerer,
            # which runs throughout) is attached only to an unpaused DAG, and attached while the sessions are
            # pending it would start a run of its own during the floor's. Unpaused with its timed run queued,
            # the DAG runs that one first (max_active_runs=1); the watcher attaches at the next parse and
            # signals what is still pending, which starts at most one run after the measured one.
            stack.set_paused(False, dag_id="session_upload_floor")
            timeout = 60 + sessions * 10
            floor_s, floor_state = _timed_run(
                stack, "session_upload_floor", {"agents": agents, "sessions": sessions}, timeout
            )
            dag_s, dag_state_name = _timed_run(
                stack,
                "session_upload",
                {"max_sessions": min(sessions, 1000), "settle_minutes": 0},
                timeout,
                unpause=True,
            )
            dag_reads = _reads_logged(stack.home / "logs")
            attached = "watcher started" in (stack.log_dir / "triggerer.log").read_text(errors="replace")
            after = [f"{r['state']}" for r in _watcher_runs(stack)]
            locks = _lock_errors(stack)
        archived = sum(1 for _ in dag_state.glob("agents/*/sessions/archive/*.jsonl"))
    per_min = lambda seconds: f"{sessions / seconds * 60:,.0f}"  # noqa: E731
    rows.append(["plain loop (one process)", f"{loop_s:.1f}", per_min(loop_s), f"{uploaded} uploaded"])
    rows.append(["Airflow floor (no-op DAG, same shape)", f"{floor_s:.1f}", per_min(floor_s), floor_state])
    rows.append(
        ["session_upload DAG", f"{dag_s:.1f}", per_min(dag_s), f"{dag_state_name}, {archived} archived"]
    )
    what = "SQLite-era sessions (OpenClaw's database)" if era == "sqlite" else "sessions"
    if era == "sqlite" and conversations > 1:
        what = f"SQLite-era conversations ({conversations} per session, OpenClaw's database)"
    table(
        f"End to end: {sessions} {what} across {agents} agents, embedded SQLite + LocalExecutor",
        ["variant", "wall seconds", "sessions/min", "outcome"],
        rows,
    )
    print(f"\nDAG/floor = {dag_s / floor_s:.2f} (target ≤ 1.15); DAG/loop = {dag_s / loop_s:.1f}")
    print(
        f"Triggerer running; watcher attached during the DAG run: {'yes' if attached else 'NO'}; "
        f"the watcher's own runs after it: {len(after)} {after}; "
        f"'database is locked' lines: {sum(locks.values())} {locks}"
    )
    if era == "sqlite":
        print(f"Read transaction per session, DAG run (from the upload logs): {_percentiles(dag_reads)}")


# --- 1b. Run size: Airflow's cost per task instance against the number of sessions per run ----------
#
# Floor and DAG side by side at each size, on one embedded stack with the triggerer running and the
# package's watcher attached to session_upload throughout. The stack's file settle time is one day
# (SESSION_UPLOAD_SETTLE_MINUTES=1440), so the watcher polls as shipped (every 10 s; it rescans each agent
# whose files a run changes) but never signals the measured sessions (an hour old); the measured runs are
# manual, with settle_minutes 0 and max_sessions the size. The watcher's own runs are measured first, on a
# backlog two days old: they drain it in consecutive runs of the stack's max_sessions, which gives the gap
# between one run's end and the next one's start.


def _iso_seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _run_seconds(run: dict) -> float:
    """A run's own duration, start to end, as Airflow recorded it."""
    return _iso_seconds(run["end_date"]) - _iso_seconds(run["start_date"])


def run_seconds_at(chunk: int, measured: dict[int, float]) -> float:
    """A run's seconds at ``chunk`` sessions, piecewise linear through the measured (size -> seconds);
    outside them, the line through the two nearest sizes (one size alone: proportional)."""
    sizes = sorted(measured)
    if chunk in measured:
        return measured[chunk]
    if len(sizes) == 1:
        return measured[sizes[0]] * chunk / sizes[0]
    if chunk < sizes[0]:
        lo, hi = sizes[0], sizes[1]
    elif chunk > sizes[-1]:
        lo, hi = sizes[-2], sizes[-1]
    else:
        hi = next(size for size in sizes if size > chunk)
        lo = max(size for size in sizes if size < chunk)
    slope = (measured[hi] - measured[lo]) / (hi - lo)
    return max(0.0, measured[lo] + slope * (chunk - lo))


def drain_seconds(backlog: int, size: int, measured: dict[int, float], gap: float) -> tuple[int, float]:
    """Runs and seconds to deliver ``backlog`` sessions in consecutive runs of at most ``size`` each: the
    full runs, the last partial one, and the gap between consecutive runs (the first run's start is the
    same for every size and is left out)."""
    if backlog <= 0:
        return 0, 0.0
    full, rest = divmod(backlog, size)
    runs = full + (1 if rest else 0)
    seconds = full * run_seconds_at(size, measured) + (run_seconds_at(rest, measured) if rest else 0.0)
    return runs, seconds + (runs - 1) * gap


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _ti_count(stack, dag_id: str, run_id: str) -> int:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=1"
    return stack.api("GET", path).json()["total_entries"]


def bench_run_size(
    sizes: list[int], agents: int, backlogs: list[int], drain_sessions: int, drain_max: int
) -> None:
    from tools.stacks.airflow_stack import AirflowStack
    from tools.standins.nexus import NexusStandin

    work = Path(tempfile.mkdtemp(prefix="bench-size-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / DAG_FILE.name).symlink_to(DAG_FILE)
    (dags / "session_upload_floor.py").symlink_to(
        ROOT / "tools" / "bench" / "dags" / "session_upload_floor.py"
    )
    state = work / "dag-state"
    _bench_state(state, 0, agents, "none")  # the agents' folders, empty
    archived = lambda: sum(1 for _ in state.glob("agents/*/sessions/archive/*.jsonl"))  # noqa: E731
    api_key = "bench-" + os.urandom(8).hex()
    print(f"Run size: sizes {sizes}, {agents} agents; load average at start {_load()}", flush=True)
    rows, ratios, dag_at = [], {}, {}
    with NexusStandin(api_key=api_key, record_dir=work / "nexus", store_bodies=False) as nexus:
        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "SESSION_UPLOAD_SCHEDULE": "0 0 1 1 *",  # yearly: no scheduled run
            "SESSION_UPLOAD_SETTLE_MINUTES": "1440",  # the watcher never signals the measured sessions
            "SESSION_UPLOAD_MAX_SESSIONS": str(drain_max),  # the watcher's runs, in the drain phase
            "OPENCLAW_STATE_DIR": str(state),
            "AIRFLOW_CONN_NEXUS_DEFAULT": nexus_connection(nexus.url, api_key),
        }
        with AirflowStack(work / "airflow", env=env) as stack:
            stack.wait_for(
                "the floor DAG to be parsed",
                lambda: stack.api("GET", "/api/v2/dags/session_upload_floor", check=False).ok,
            )
            for dag_id in ("session_upload_floor", "session_upload"):
                stack.set_paused(False, dag_id=dag_id)
            triggerer_log = stack.log_dir / "triggerer.log"
            stack.wait_for(
                "the watcher to start in the triggerer",
                lambda: "watcher started" in triggerer_log.read_text(errors="replace"),
                timeout=600,
            )
            print(f"watcher attached; load {_load()}", flush=True)

            # The watcher's own runs: a backlog it sees settled, drained in runs of drain_max.
            gaps, drain_runs = [], []
            if drain_sessions:
                _bench_state(state, drain_sessions, agents, "drain", age=2 * 86400)

                def drained() -> bool:
                    ended = all(r["state"] in ("success", "failed") for r in _watcher_runs(stack))
                    return archived() >= drain_sessions and ended

                stack.wait_for("the watcher's runs to drain the backlog", drained, drain_sessions * 10 + 600)
                time.sleep(30)  # an event raised during the last run would start one more (empty) run
                stack.wait_for("the watcher's last run", drained, 600)
                drain_runs = [r for r in _watcher_runs(stack) if r.get("end_date")]
                for prev, nxt in itertools.pairwise(drain_runs):
                    gaps.append(_iso_seconds(nxt["start_date"]) - _iso_seconds(prev["end_date"]))
                table(
                    f"The watcher's own runs: a backlog of {drain_sessions} sessions, max_sessions "
                    f"{drain_max} (load average after: {_load()})",
                    ["run", "state", "run seconds", "gap before it (s)"],
                    [
                        [n + 1, r["state"], f"{_run_seconds(r):.1f}", f"{gaps[n - 1]:.1f}" if n else "-"]
                        for n, r in enumerate(drain_runs)
                    ],
                )
            gap = statistics.median(gaps) if gaps else 15.0
            print(f"gap between consecutive runs: median {gap:.1f} s of {gaps}", flush=True)

            for size in sizes:
                timeout = 120 + size * 10
                before = archived()
                floor_s, floor_state = _timed_run(
                    stack, "session_upload_floor", {"agents": agents, "sessions": size}, timeout
                )
                floor_run = max(stack.dag_runs("session_upload_floor"), key=lambda r: r["start_date"] or "")
                load_floor = _load()
                _bench_state(state, size, agents, f"s{size}")
                dag_s, dag_state = _timed_run(
                    stack, "session_upload", {"max_sessions": size, "settle_minutes": 0}, timeout
                )
                dag_run = max(
                    (r for r in stack.dag_runs("session_upload") if r["run_type"] == "manual"),
                    key=lambda r: r["start_date"] or "",
                )
                tis = _ti_count(stack, "session_upload", dag_run["dag_run_id"])
                floor_tis = _ti_count(stack, "session_upload_floor", floor_run["dag_run_id"])
                f_run, d_run = _run_seconds(floor_run), _run_seconds(dag_run)
                dag_at[size] = d_run
                ratios[size] = d_run / f_run
                row = [
                    size,
                    f"{f_run:.1f} ({floor_state})",
                    f"{d_run:.1f} ({dag_state}, {archived() - before} archived)",
                    f"{tis} / {floor_tis}",
                    f"{f_run / floor_tis:.3f}",
                    f"{d_run / tis:.3f}",
                    f"**{ratios[size]:.2f}**",
                    f"{size / d_run * 60:,.0f}",
                    f"{load_floor} / {_load()}",
                ]
                rows.append(row)
                print(
                    f"size {size}: "
                    + " | ".join(str(c) for c in row)
                    + f" (wall {floor_s:.1f} / {dag_s:.1f})",
                    flush=True,
                )
            locks = _lock_errors(stack)
            late = [r["state"] for r in _watcher_runs(stack)][len(drain_runs) :]
    table(
        f"Run size: floor and DAG side by side, {agents} agents, embedded SQLite + LocalExecutor, triggerer "
        "running, watcher attached",
        [
            "sessions per run",
            "floor run s",
            "DAG run s",
            "task instances (DAG / floor)",
            "floor s per TI",
            "DAG s per TI",
            "DAG/floor",
            "DAG sessions/min",
            "load avg 1/5/15 (floor / DAG)",
        ],
        rows,
    )
    for guard in (300, 1000):
        if guard in ratios:
            ok = "meets" if ratios[guard] <= 1.15 else "MISSES"
            print(f"Guard: DAG/floor at {guard} sessions = {ratios[guard]:.2f}, {ok} ≤ 1.15")
    print(f"'database is locked' lines in the stack's logs: {sum(locks.values())} {locks}")
    print(f"Watcher runs during the measured part (should be none): {len(late)} {late}")
    if dag_at:
        drain_rows = []
        for backlog in backlogs:
            best = min(dag_at, key=lambda s: drain_seconds(backlog, s, dag_at, gap)[1])
            for size in sorted(dag_at):
                runs, seconds = drain_seconds(backlog, size, dag_at, gap)
                mark = " (fastest)" if size == best else ""
                drain_rows.append(
                    [
                        f"{backlog:,}",
                        size,
                        runs,
                        f"{seconds / 60:.1f}{mark}",
                        f"{backlog / seconds * 60:,.0f}",
                    ]
                )
        table(
            f"Draining a backlog in consecutive runs (measured DAG run seconds per size, gap {gap:.1f} s)",
            ["backlog", "max_sessions", "runs", "minutes to drain", "sessions/min"],
            drain_rows,
        )


# --- 5. SQLite era (OpenClaw 2026.8+): discovery, upload memory, read transactions ------------------
#
# Every agent database starts as one OpenClaw itself wrote (its doctor migrates a JSONL-era sample) and is
# then scaled in SQL with Node's SQLite, the engine OpenClaw writes with: OpenClaw's CHECK constraints use
# ``octet_length``, newer than Python's SQLite, so Python cannot insert rows that pass them.

# Clones one completed (archived) session of the database: ``spec.sessions`` new windows with new ids and
# the prototype's events (and event identities), in one write transaction. The first
# ``live_nodes * per_node`` are chats that rolled over: per unarchived node, ``per_node - 1`` superseded
# windows and the current one (its entry also names its previous window, which keeps that one live too).
# The rest are archived nodes of one window each. Every ``settling_every``-th window changed just now.
_SCALE_JS = r"""
const { DatabaseSync } = require("node:sqlite");
const db = new DatabaseSync(process.argv[1]);
const spec = JSON.parse(process.argv[2]);
const run = (sql, params = {}) => {
  const used = Object.fromEntries(Object.entries(params).filter(([k]) => sql.includes(":" + k)));
  return db.prepare(sql).run(used);
};
db.exec("PRAGMA busy_timeout = 5000");
db.exec("BEGIN IMMEDIATE");
const proto = db.prepare(
  "SELECT w.session_id AS sid FROM session_windows AS w JOIN session_nodes AS n USING (session_key)" +
  " WHERE n.archived_at IS NOT NULL ORDER BY w.session_id LIMIT 1").get().sid;
const p = { ...spec, proto, grouped: spec.live_nodes * spec.per_node, settling: spec.settling_every || -1 };
// The rows each clone gets: the prototype's own, and with ``spec.conversations`` > 1 that many conversations,
// as OpenClaw's /new writes them: conversation k > 0 is a reset event (type "reset", 8-hex id, an identity
// row with event_type 'reset') and the prototype's first two messages. Reset times are old, like the windows.
db.exec("CREATE TEMP TABLE pe (seq INTEGER, event_json TEXT, created_at INTEGER, event_zstd BLOB," +
  " event_utf8_bytes INTEGER, navigation_json TEXT)");
db.exec("CREATE TEMP TABLE pi (event_id TEXT, seq INTEGER, event_type TEXT, parent_id TEXT," +
  " message_idempotency_key TEXT, created_at INTEGER)");
run(`INSERT INTO temp.pe SELECT seq, event_json, created_at, event_zstd, event_utf8_bytes, navigation_json
  FROM transcript_events WHERE session_id = :proto`, p);
run(`INSERT INTO temp.pi SELECT event_id, seq, event_type, parent_id, message_idempotency_key, created_at
  FROM transcript_event_identities WHERE session_id = :proto`, p);
const conversations = spec.conversations || 1;
const first = db.prepare("SELECT max(seq) + 1 AS n FROM temp.pe").get().n;
for (let c = 1; c < conversations; c++) {
  const base = first + (c - 1) * 3;
  const rid = (0xc0ffee00 + c).toString(16);
  const at = spec.old_ms - (conversations - c) * 1000;
  const reset = JSON.stringify({ type: "reset", id: rid, parentId: null,
    timestamp: new Date(at).toISOString(), reason: "new" });
  db.prepare("INSERT INTO temp.pe VALUES (?, ?, ?, NULL, NULL, NULL)").run(base, reset, at);
  db.prepare("INSERT INTO temp.pi VALUES (?, ?, 'reset', NULL, NULL, ?)").run(rid, base, at);
  run(`INSERT INTO temp.pe SELECT :base + seq, event_json, :at, event_zstd, event_utf8_bytes, navigation_json
    FROM transcript_events WHERE session_id = :proto AND seq BETWEEN 1 AND 2`, { ...p, base, at });
  run(`INSERT INTO temp.pi SELECT event_id || '.' || :c, :base + seq, event_type, parent_id,
    message_idempotency_key, :at FROM transcript_event_identities WHERE session_id = :proto AND seq BETWEEN 1
    AND 2`, { ...p, base, at, c });
}
db.exec("CREATE TEMP TABLE plan (i INTEGER PRIMARY KEY, sid TEXT, key TEXT, prev TEXT, grouped INTEGER," +
  " pos INTEGER, at INTEGER)");
run(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i + 1 < :sessions)
  INSERT INTO temp.plan SELECT i, printf('%08x-0000-4000-8000-%012x', :tag, i),
    CASE WHEN i < :grouped THEN printf('agent:%s:bench-chat-%d', :agent, i / :per_node)
         ELSE printf('agent:%s:bench-archived-%d', :agent, i) END,
    CASE WHEN i < :grouped AND i % :per_node > 0 THEN printf('%08x-0000-4000-8000-%012x', :tag, i - 1) END,
    i < :grouped, CASE WHEN i < :grouped THEN i % :per_node END,
    CASE WHEN i % :settling = :settling - 1 THEN :now_ms ELSE :old_ms + i END
  FROM c`, p);
run(`INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, status, created_at,
    created_via, archived_at)
  SELECT key, sid, json_object('sessionId', sid, 'updatedAt', at, 'archivedAt', at, 'archiveReason',
    'age-retention', 'chatType', 'direct', 'delivery', json_object('kind', 'none')), at, 'done', at - 60000,
    'channel', at FROM temp.plan WHERE NOT grouped`, p);
run(`INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, status, created_at,
    created_via)
  SELECT key, sid, json_object('sessionId', sid, 'previousSessionId', prev, 'updatedAt', at, 'chatType',
    'direct', 'delivery', json_object('kind', 'none')), at, 'done', at - 60000, 'channel'
  FROM temp.plan WHERE grouped AND pos = :per_node - 1`, p);
run(`INSERT INTO session_windows (session_id, session_key, previous_session_id, created_at, updated_at,
    transcript_updated_at, started_at, ended_at, status, chat_type)
  SELECT sid, key, prev, at - 60000, at, at - 1000, at - 60000, at - 1000, 'done', 'direct' FROM temp.plan`);
run(`INSERT INTO transcript_events (session_id, seq, event_json, created_at, event_zstd, event_utf8_bytes,
    navigation_json)
  SELECT plan.sid, e.seq, replace(e.event_json, :proto, plan.sid), e.created_at, e.event_zstd,
    e.event_utf8_bytes, e.navigation_json
  FROM temp.plan AS plan, temp.pe AS e ORDER BY plan.sid, e.seq`, p);
run(`INSERT INTO transcript_event_identities (session_id, event_id, seq, event_type, parent_id,
    message_idempotency_key, created_at)
  SELECT plan.sid, replace(i.event_id, :proto, plan.sid), i.seq, i.event_type, i.parent_id,
    i.message_idempotency_key, i.created_at
  FROM temp.plan AS plan, temp.pi AS i`, p);
db.exec("COMMIT");
db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
const count = (sql) => db.prepare(sql).get().n;
console.log(JSON.stringify({
  proto,
  windows: count("SELECT count(*) AS n FROM session_windows"),
  events: count("SELECT count(*) AS n FROM transcript_events"),
}));
db.close();
"""

# One archived session of ``spec.size`` bytes (its export form), written the way OpenClaw stores events:
# UTF-8 events of 1 KiB to 4 MiB without ``\u`` escapes or NUL are zstd level 1 compressed when that saves
# at least 64 bytes and 10 %; compressed rows carry ``event_utf8_bytes`` and a navigation projection. Event
# sizes: 60 % short messages (stored as text), 30 % 2 to 64 KiB, 10 % 0.25 to 3 MiB tool outputs, cut from a
# pool of word-like text (compresses about as well as prose).
_BIG_SESSION_JS = r"""
const { DatabaseSync } = require("node:sqlite");
const zlib = require("node:zlib");
const db = new DatabaseSync(process.argv[1]);
const spec = JSON.parse(process.argv[2]);
const NAV = JSON.stringify({ version: 1, report: { kind: "leaf" }, navigation: {}, reset: {}, model: {},
  modelBytes: 0, modelWithoutCheckpointBytes: 0, withoutCustomDataBytes: 0 });
let seed = 7;
const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
const letters = "abcdefghijklmnopqrstuvwxyz";
const words = Array.from({ length: 5000 }, () => {
  let w = "";
  for (let k = 2 + Math.floor(rand() * 9); k > 0; k--) w += letters[Math.floor(rand() * 26)];
  return w;
});
const extras = ["café", "✓", "日本語", "naïve", '"quoted"', "\n", "{", "}", "=>", "42", "3.14", "x_1"];
const parts = [];
for (let n = 0; n < 1500000; n++) parts.push(rand() < 0.08 ? extras[Math.floor(rand() * extras.length)]
  : words[Math.floor(Math.pow(rand(), 2) * words.length)]);
const pool = parts.join(" ");
const { sid, key, at } = spec;
db.exec("PRAGMA busy_timeout = 5000");
db.exec("BEGIN IMMEDIATE");
db.prepare(`INSERT INTO session_nodes (session_key, current_session_id, entry_json, updated_at, status,
    created_at, created_via, archived_at) VALUES (?, ?, ?, ?, 'done', ?, 'channel', ?)`).run(key, sid,
  JSON.stringify({ sessionId: sid, updatedAt: at, archivedAt: at, archiveReason: "manual",
    delivery: { kind: "none" } }), at, at - 3600000, at);
db.prepare(`INSERT INTO session_windows (session_id, session_key, created_at, updated_at,
    transcript_updated_at, status) VALUES (?, ?, ?, ?, ?, 'done')`).run(sid, key, at - 3600000, at, at);
const insert = db.prepare(`INSERT INTO transcript_events (session_id, seq, event_json, created_at,
    event_zstd, event_utf8_bytes, navigation_json) VALUES (?, ?, ?, ?, ?, ?, ?)`);
const level = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } };
let seq = 0, size = 0, compressed = 0, stored = 0;
const store = (text) => {
  const utf8 = Buffer.from(text, "utf8");
  let packed = null;
  if (utf8.length >= 1024 && utf8.length <= 4194304 && !text.includes("\\u") && !text.includes("\0")) {
    const z = zlib.zstdCompressSync(utf8, level);
    if (utf8.length - z.length >= 64 && z.length <= utf8.length * 0.9) packed = z;
  }
  if (packed) {
    insert.run(sid, seq, null, at, packed, utf8.length, NAV);
    compressed++;
    stored += packed.length;
  } else {
    insert.run(sid, seq, text, at, null, null, null);
    stored += utf8.length;
  }
  seq++;
  size += utf8.length + 1;
};
store(JSON.stringify({ type: "session", version: 3, id: sid, timestamp: new Date(at - 3600000).toISOString(),
  cwd: "/home/claw" }));
while (size < spec.size) {
  const r = rand();
  const length = Math.floor(r < 0.6 ? 200 + rand() * 700 : r < 0.9 ? 2048 + rand() * 63488
    : 262144 + rand() * 2883584);
  const start = Math.floor(rand() * (pool.length - length));
  store(JSON.stringify({ type: "message", id: `b${seq}`, parentId: `b${seq - 1}`,
    timestamp: new Date(at - 3600000 + seq).toISOString(),
    message: { role: r < 0.6 ? "user" : "toolResult", content: [{ type: "text",
      text: pool.slice(start, start + length) }] } }));
}
db.exec("COMMIT");
db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
console.log(JSON.stringify({ events: seq, size, compressed, stored }));
db.close();
"""

_READ_LOG_RE = re.compile(r"Read (\S+) from OpenClaw's database in ([0-9.]+) s")


def openclaw_template(dest: Path, agents: list[str], *, completed: int = 3, seed: int = 7) -> Path:
    """A state dir whose agent databases OpenClaw itself wrote: the JSONL-era sample migrated by its own
    doctor. The one place the benchmarks get OpenClaw from (tools/openclaw/fixture installs and runs it)."""
    from tools.demo.sample_state import make_state
    from tools.openclaw.fixture import OpenClaw

    make_state(dest, agents, completed, seed=seed)
    # An empty config: the doctor finds the agents on disk (a config listing several agents would also
    # need agents.ownership="explicit").
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=dest, config={}
    )
    return dest


def _node_sqlite(database: Path, script: str, spec: dict, timeout: float = 3600) -> dict:
    """Run ``script`` on ``database`` with OpenClaw's Node (its SQLite), return the JSON it prints."""
    from tools.openclaw.fixture import OpenClaw

    done = subprocess.run(
        [str(OpenClaw.installed().node), "-e", script, str(database), json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"node failed on {database}:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _database(state: Path, agent: str) -> Path:
    from openclaw_nexus import sqlite_db

    return sqlite_db.database_of(state / "agents" / agent)


def scale_agent(
    state: Path,
    agent: str,
    sessions: int,
    *,
    tag: int = 1,
    live_nodes: int = 0,
    per_node: int = 10,
    settling_every: int = 0,
    age_seconds: float = 86400,
    conversations: int = 1,
) -> dict:
    """Add ``sessions`` windows to the agent's database by cloning its archived session (see _SCALE_JS),
    each with ``conversations`` conversations (``conversations - 1`` reset events)."""
    now_ms = int(time.time() * 1000)
    spec = {
        "sessions": sessions,
        "tag": tag,
        "agent": agent,
        "live_nodes": min(live_nodes, sessions // per_node),
        "per_node": per_node,
        "settling_every": settling_every,
        "now_ms": now_ms,
        "old_ms": now_ms - int(age_seconds * 1000),
        "conversations": conversations,
    }
    return _node_sqlite(_database(state, agent), _SCALE_JS, spec)


def big_session(state: Path, agent: str, size: int, session_id: str) -> dict:
    """Add one archived session of ``size`` bytes with OpenClaw's zstd rows (see _BIG_SESSION_JS)."""
    at = int((time.time() - 3600) * 1000)
    spec = {"size": size, "sid": session_id, "key": f"agent:{agent}:bench:{session_id}", "at": at}
    return _node_sqlite(_database(state, agent), _BIG_SESSION_JS, spec)


def _percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    median = statistics.median(ordered)
    return f"max {ordered[-1]:.4f} s, p99 {p99:.4f} s, median {median:.4f} s (n={len(ordered)})"


def _reads_logged(root: Path) -> list[float]:
    """Every "Read <agent>/<session> from OpenClaw's database in X s" the upload tasks logged under root."""
    reads = []
    for path in [root] if root.is_file() else root.rglob("*"):
        if path.is_file():
            reads += [float(m.group(2)) for m in _READ_LOG_RE.finditer(path.read_text(errors="replace"))]
    return reads


def _archive_copies(state: Path, agent: str, found, share: float) -> int:
    """Archive copies, as the upload makes them, for ``share`` of the completed sessions: one per session
    (mtime = its last change), or for a session with reset events one per conversation (mtime = the reset
    that closed it, the last one's the session's last change). Returns the number of sessions covered."""
    from openclaw_nexus import conversations

    archive = state / "agents" / agent / "sessions" / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    made = 0
    for n, (session_id, (_, mtime_ns, _)) in enumerate(sorted(found.completed.items())):
        if n % 100 >= share * 100:
            continue
        ids, created = found.resets.get(session_id, ([], []))
        copies = [(session_id, mtime_ns)]
        if ids:
            tokens = [conversations.FIRST, *ids]
            closings = [*created, mtime_ns]
            copies = [(conversations.stem(session_id, c), at) for c, at in zip(tokens, closings, strict=True)]
        for stem, at in copies:
            path = archive / f"{stem}.jsonl"
            path.write_bytes(b'{"type":"session"}\n')
            os.utime(path, ns=(at, at))
        made += 1
    return made


def _discovery_rows(state: Path, window, label: str, build_s: float, grown: dict) -> tuple[list, object]:
    """Discovery figures of one scaled agent database: alone, first run, steady state (95 % archived)."""
    from openclaw_nexus import sqlite_live, stores

    database = _database(state, "main")
    db_s, found = _timed(lambda: sqlite_live.scan_database(database))
    first_s, first = _timed(lambda: stores.scan_agent(state, "main", window))
    copies = _archive_copies(state, "main", found, 0.95)
    # The first scan after the uploads checks every copy's mtime and records the sessions found all sent
    # (archive/.all-sent); the scans after it (steady state) read neither their reset events nor copies.
    after_s, after = _timed(lambda: stores.scan_agent(state, "main", window), repeat=1)
    steady_s, steady = _timed(lambda: stores.scan_agent(state, "main", window))
    size_mb = sum(p.stat().st_size for p in database.parent.glob("openclaw-agent.sqlite*")) / MB
    windows = grown["windows"]

    def result(scan) -> str:
        convs = scan.conversations
        counted = f", conversations {dict(convs)}" if convs else ""
        return f"{len(scan.sessions):,} items{counted}, skipped {dict(scan.skipped)}"

    built = f"{windows:,} windows, {grown['events']:,} event rows, {size_mb:.0f} MB, built {build_s:.0f} s"
    head = f"{label} ({built})"
    rows = [
        [
            f"{head}: scan_database alone (one read transaction)",
            f"{db_s:.3f}",
            f"{windows / db_s:,.0f}",
            f"{len(found.completed):,} completed, {len(found.live):,} live ids, "
            f"{sum(len(ids) for ids, _ in found.resets.values()):,} reset events",
        ],
        [
            f"{label}: scan_agent, nothing archived yet (first run)",
            f"{first_s:.3f}",
            f"{windows / first_s:,.0f}",
            result(first),
        ],
        [
            f"{label}: scan_agent, first after {copies:,} sessions were archived (one run)",
            f"{after_s:.3f}",
            f"{windows / after_s:,.0f}",
            result(after),
        ],
        [
            f"{label}: scan_agent, steady state ({copies:,} sessions have archive copies)",
            f"{steady_s:.3f}",
            f"{windows / steady_s:,.0f}",
            result(steady),
        ],
    ]
    return rows, first


def _scaled_state(work: Path, name: str, sessions: int, conversations_each: int) -> tuple[Path, float, dict]:
    from openclaw_nexus import sqlite_live

    state = openclaw_template(work / name, ["main"])
    existing = sqlite_live.scan_database(_database(state, "main"))
    start = time.perf_counter()
    grown = scale_agent(
        state,
        "main",
        max(0, sessions - len(existing.completed) - len(existing.live)),
        live_nodes=max(1, sessions // 50),
        per_node=10,
        settling_every=100,
        conversations=conversations_each,
    )
    return state, time.perf_counter() - start, grown


def _export_rows(state: Path, scan, exports: int, what: str) -> list[list[str]]:
    from openclaw_nexus import stores

    picked = scan.sessions[:: max(1, len(scan.sessions) // max(1, exports))][:exports]
    reads, walls = [], []
    for session in picked:
        start = time.perf_counter()
        transcript = stores.open_transcript(state, session)
        walls.append(time.perf_counter() - start)
        if transcript.read_seconds is None:
            raise RuntimeError(f"{session} was not read from OpenClaw's database (no read_seconds)")
        reads.append(transcript.read_seconds)
        stores.discard(transcript)
    return [
        [f"{what}: read transaction (Exported.read_seconds)", _percentiles(reads)],
        [f"{what}: whole export (connect, schema check, live re-check, write, fsync)", _percentiles(walls)],
    ]


def bench_sqlite_discovery(sessions: int, files: int, exports: int, conversations_each: int = 10) -> None:
    """Discovery over an agent database of ``sessions`` windows that never reset (as before conversations),
    side by side with one whose sessions have ``conversations_each`` conversations each, and the JSONL
    era's ``files`` files; then the read transaction of exporting ``exports`` items of each."""
    from openclaw_nexus import stores
    from openclaw_nexus.discovery import Window

    work = Path(tempfile.mkdtemp(prefix="bench-sqlite-discovery-"))
    window = Window(now=time.time(), settle_seconds=300)
    jsonl_root = work / "jsonl"
    _make_big_folder(jsonl_root / "agents" / "main" / "sessions", files)
    jsonl_s, jsonl = _timed(lambda: stores.scan_agent(jsonl_root, "main", window))
    rows = [
        [
            f"JSONL: scan_agent, {files:,} files",
            f"{jsonl_s:.3f}",
            f"{files / jsonl_s:,.0f}",
            f"{len(jsonl.sessions):,} items, skipped {dict(jsonl.skipped)}",
        ]
    ]
    export_rows = []
    variants = [("SQLite, no resets", 1)]
    if conversations_each > 1:
        variants.append((f"SQLite, {conversations_each} conversations each", conversations_each))
    for n, (label, each) in enumerate(variants):
        state, build_s, grown = _scaled_state(work, f"state-{n}", sessions, each)
        found_rows, first = _discovery_rows(state, window, label, build_s, grown)
        rows += found_rows
        export_rows += _export_rows(state, first, exports, f"{label}, {exports:,} items")
        shutil.rmtree(state, ignore_errors=True)
    table(
        f"Discovery of one agent, JSONL era vs SQLite era, {sessions:,} sessions (best of 3; target ≤ 2 s)",
        ["what", "seconds", "sessions/s", "result"],
        rows,
    )
    table(
        "Exports: one read transaction per item (a session, or one conversation)",
        ["what", "seconds"],
        export_rows,
    )
    shutil.rmtree(work, ignore_errors=True)


def bench_sqlite_memory(sizes_mb: list[int]) -> None:
    """Peak RSS of an upload run: one transcript of each size, as a JSONL file and as zstd rows in
    OpenClaw's database, side by side, each against its own era's idle run."""
    from tools.standins.nexus import NexusStandin

    work = Path(tempfile.mkdtemp(prefix="bench-sqlite-memory-"))
    airflow_template = work / "airflow-template"
    migrate(airflow_template)
    oc_template = openclaw_template(work / "openclaw-template", ["main"])
    rows = []
    with NexusStandin(api_key="bench-key", record_dir=work / "nexus", store_bodies=False) as nexus:
        for era in ("jsonl", "sqlite"):
            baseline = None
            for size_mb in [0, *sizes_mb]:
                state = work / f"state-{era}-{size_mb}"
                sid = f"bench-{era}-{size_mb}mb"
                detail = ""
                if era == "jsonl":
                    sessions = state / "agents" / "main" / "sessions"
                    sessions.mkdir(parents=True)
                    (sessions / "sessions.json").write_text("{}")
                    _write_transcript(sessions / f"{sid}.jsonl", max(size_mb * MB, 1), sid)
                else:
                    shutil.copytree(oc_template, state, symlinks=True)
                    made = big_session(state, "main", max(size_mb * MB, MB), sid)
                    detail = (
                        f"{made['events']:,} events, {made['compressed']:,} zstd rows, "
                        f"{made['stored'] / MB:.0f} MB stored; "
                    )
                sandbox = new_sandbox(airflow_template, work / f"airflow-{era}-{size_mb}", state, nexus.url)
                sandbox.api_key = "bench-key"
                output = work / f"dags-test-{era}-{size_mb}.log"
                peak, seconds, state_name = _dags_test_peak_rss(sandbox, output)
                baseline = peak if baseline is None else baseline
                reads = _reads_logged(output)
                read = f"{max(reads):.3f}" if reads else "n/a"
                what = f"{era}: " + ("idle (1 MB transcript)" if size_mb == 0 else f"{size_mb} MB")
                rows.append(
                    [
                        what,
                        f"{peak / MB:.0f}",
                        f"{(peak - baseline) / MB:+.0f}",
                        f"{seconds:.1f}",
                        read,
                        f"{detail}{state_name}",
                    ]
                )
                shutil.rmtree(state, ignore_errors=True)
    table(
        "Peak RSS of an `airflow dags test` run uploading one transcript, JSONL file vs SQLite zstd rows "
        "(target ≤ 80 MB above idle)",
        ["transcript", "peak RSS (MB)", "above idle (MB)", "run seconds", "longest read (s)", "run state"],
        rows,
    )


def _bench_sqlite_state(root: Path, sessions: int, agents: int, tag: int, conversations: int = 1) -> int:
    """About ``sessions`` items across ``agents`` agents, in databases OpenClaw wrote: completed SQLite-era
    sessions, or with ``conversations`` > 1 the finished conversations of completed sessions that reset
    ``conversations - 1`` times. Returns the number of items."""
    from openclaw_nexus.discovery import Window
    from openclaw_nexus.stores import scan_agent

    names = [f"agent-{a:02d}" for a in range(agents)]
    openclaw_template(root, names, completed=1, seed=tag)
    window = Window(now=time.time() + 3600, settle_seconds=0)
    for a, agent in enumerate(names):
        missing = max(0, sessions // agents - len(scan_agent(root, agent, window).sessions))
        windows = -(-missing // conversations)
        scale_agent(root, agent, windows, tag=tag * 256 + a, age_seconds=3600, conversations=conversations)
    return sum(len(scan_agent(root, agent, window).sessions) for agent in names)


def _plain_loop(state: Path, nexus_url: str, api_key: str) -> tuple[int, list[float]]:
    """The seed's design, one sequential process, through the same store interface as the DAG (both
    eras): discovery, export (SQLite era), upload body, archive. Returns the count and the SQLite read
    transactions' lengths."""
    import requests

    from openclaw_nexus import conversations, stores
    from openclaw_nexus.discovery import Window, list_agents
    from openclaw_nexus.transcript import TranscriptBody, idempotency_key

    window = Window(now=time.time(), settle_seconds=0)
    done, reads = 0, []
    with requests.Session() as http:
        for agent in list_agents(state)[0]:
            for s in stores.scan_agent(state, agent, window).sessions:
                transcript = stores.open_transcript(state, s)
                if transcript.read_seconds is not None:
                    reads.append(transcript.read_seconds)
                body = TranscriptBody(transcript.path, agent, s["sessionId"])
                subject = conversations.stem(s["sessionId"], s.get("conversation"))
                response = http.post(
                    f"{nexus_url}/api/sessions",
                    params={"code": api_key},
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": idempotency_key(subject, body.sha256),
                    },
                    timeout=(10, 300),
                )
                response.raise_for_status()
                receipt = {
                    "staged": transcript.staged,
                    "duplicateOf": None,
                    "size": body.size,
                    "mtimeNs": transcript.path.stat().st_mtime_ns,
                    "sha256": body.sha256,
                }
                stores.record_archived(state, s, receipt)
                done += 1
    return done, reads


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="session_upload benchmarks")
    parser.add_argument(
        "what",
        choices=[
            "import",
            "discovery",
            "memory",
            "e2e",
            "sqlite-discovery",
            "sqlite-memory",
            "sqlite-e2e",
            "run-size",
            "latency",
            "agents",
            "all",
        ],
    )
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--sizes", default="10,100,500", help="transcript sizes in MB for `memory`")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument(
        "--agents",
        default="10",
        help="agents (`e2e`, `run-size`), or agent counts for `agents` (10,100,1000)",
    )
    parser.add_argument("--db-sessions", type=int, default=100_000, help="sessions in the agent database")
    parser.add_argument("--exports", type=int, default=1000, help="sessions exported by `sqlite-discovery`")
    parser.add_argument(
        "--conversations",
        type=int,
        default=10,
        help="conversations per session (reset events + 1) in `sqlite-discovery`'s second database and "
        "`sqlite-e2e`'s items (1: sessions that never reset)",
    )
    parser.add_argument(
        "--sizes-sessions", default="100,300,500,1000", help="`run-size`: sessions per run, each measured"
    )
    parser.add_argument(
        "--backlogs", default="1000,3000", help="`run-size`: backlogs whose drain time is derived per size"
    )
    parser.add_argument(
        "--drain-sessions", type=int, default=300, help="`run-size`: the backlog the watcher's runs drain"
    )
    parser.add_argument("--drain-max", type=int, default=100, help="`run-size`: max_sessions of those runs")
    parser.add_argument("--stacks", default="embedded,celery", help="`latency`: embedded, celery or both")
    parser.add_argument("--minutes", type=float, default=15, help="`latency`: Poisson completions, minutes")
    parser.add_argument("--idle-minutes", type=float, default=10, help="`latency`: live appends only")
    parser.add_argument(
        "--fleet",
        default="",
        help="`latency`: a two-host fleet, each host on its watch DAG, through this transport (celery)",
    )
    parser.add_argument(
        "--check-agents",
        default="",
        help="`agents`: agent counts for the check alone (no Airflow), e.g. 10000",
    )
    parser.add_argument("--completions", type=int, default=8, help="`agents`: conversations closed per count")
    parser.add_argument(
        "--files-ending", type=int, default=2, help="`agents`: JSONL sessions ending per count"
    )
    parser.add_argument("--gap", type=float, default=20, help="`agents`: seconds between completions")
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}")
    if args.what == "latency" and args.fleet:
        from tools.bench.fleet import bench_fleet

        bench_fleet(args.fleet, args.minutes, args.idle_minutes, table)
    elif args.what == "latency":
        from tools.bench.latency import bench_latency

        bench_latency(args.stacks.split(","), args.minutes, args.idle_minutes, table)
    if args.what == "agents":  # not in `all`: a stack per agent count
        from tools.bench.agents import bench_agents

        check_counts = [int(n) for n in args.check_agents.split(",") if n]
        counts = [int(n) for n in args.agents.split(",") if n]
        bench_agents(counts, check_counts, args.completions, args.files_ending, args.gap, table)
    if args.what in ("import", "all"):
        bench_import(args.repeat)
    if args.what in ("discovery", "all"):
        bench_discovery(args.files)
    if args.what in ("memory", "all"):
        bench_memory([int(s) for s in args.sizes.split(",")])
    if args.what in ("e2e", "all"):
        bench_e2e(args.sessions, int(args.agents))
    if args.what in ("sqlite-discovery", "all"):
        bench_sqlite_discovery(args.db_sessions, args.files, args.exports, args.conversations)
    if args.what in ("sqlite-memory", "all"):
        bench_sqlite_memory([int(s) for s in args.sizes.split(",")])
    if args.what in ("sqlite-e2e", "all"):
        bench_e2e(args.sessions, int(args.agents), era="sqlite", conversations=args.conversations)
    if args.what == "run-size":  # not in `all`: about an hour
        sizes = [int(n) for n in args.sizes_sessions.split(",")]
        backlogs = [int(n) for n in args.backlogs.split(",")]
        bench_run_size(sizes, int(args.agents), backlogs, args.drain_sessions, args.drain_max)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
