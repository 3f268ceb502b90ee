"""Benchmarks: figures side by side, measured in one run on this machine. Not part of the test suite.

    python tools/bench.py import                 DAG file import cost beyond `import airflow.sdk`
    python tools/bench.py discovery [--files N]  classify N files in one sessions folder
    python tools/bench.py memory [--sizes MB,..] peak RSS of an upload run per transcript size vs idle
    python tools/bench.py e2e [--sessions N --agents M]   the DAG vs Airflow's floor vs the plain loop
    python tools/bench.py all

Each section prints a Markdown table (what the README's benchmark section shows).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]

from tools.sandbox import BIN, migrate, new_sandbox  # noqa: E402

MB = 1 << 20
DAG_FILE = ROOT / "dags" / "session_upload_dag.py"


def table(title: str, header: list[str], rows: list[list[object]]) -> None:
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


def _timed(fn: Callable[[], object], repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def bench_discovery(files: int) -> None:
    from openclaw_nexus.discovery import Window, scan_agent
    from openclaw_nexus.names import parse_transcript_name

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


def _dags_test_peak_rss(sandbox) -> tuple[int, float, str]:
    """Run `airflow dags test` and return (peak RSS in bytes of it and its children, seconds, state)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [str(BIN / "airflow"), "dags", "test", "session_upload"],
        env=sandbox.env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=sandbox.home,
    )
    _, _, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    outcome = sandbox._outcome(0, "")
    return usage.ru_maxrss * 1024, seconds, outcome.state


def bench_memory(sizes_mb: list[int]) -> None:
    from tools.nexus_standin import NexusStandin

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


def _bench_state(root: Path, sessions: int, agents: int, prefix: str) -> None:
    """``sessions`` completed transcripts (a few KB each) spread over ``agents`` agents, an hour old."""
    from tools.make_sample_state import transcript_lines

    old = time.time() - 3600
    rng = __import__("random").Random(5)
    for a in range(agents):
        folder = root / "agents" / f"agent-{a:02d}" / "sessions"
        folder.mkdir(parents=True)
        (folder / "sessions.json").write_text("{}")
        for n in range(sessions // agents):
            sid = f"{prefix}-{a:02d}-{n:05d}"
            path = folder / f"{sid}.jsonl"
            path.write_text(transcript_lines(sid, rng, turns=4), encoding="utf-8")
            os.utime(path, (old + n, old + n))


def _plain_loop(state: Path, nexus_url: str, api_key: str) -> int:
    """The seed's design: one sequential process, the same discovery, upload body and archive move."""
    import requests

    from openclaw_nexus.archive import archive_transcript
    from openclaw_nexus.discovery import Window, list_agents, scan_agent, sessions_dir_of
    from openclaw_nexus.transcript import TranscriptBody, idempotency_key

    window = Window(now=time.time(), settle_seconds=0)
    done = 0
    with requests.Session() as http:
        for agent in list_agents(state)[0]:
            for s in scan_agent(state, agent, window).sessions:
                folder = sessions_dir_of(state, agent)
                body = TranscriptBody(folder / s["file"], agent, s["sessionId"])
                response = http.post(
                    f"{nexus_url}/api/sessions",
                    params={"code": api_key},
                    data=body,
                    headers={
                        "Content-Type": "application/json",
                        "Idempotency-Key": idempotency_key(s["sessionId"], body.sha256),
                    },
                    timeout=(10, 300),
                )
                response.raise_for_status()
                archive_transcript(
                    folder,
                    s["file"],
                    s["sessionId"],
                    size=s["size"],
                    mtime_ns=s["mtimeNs"],
                    sha256=body.sha256,
                )
                done += 1
    return done


def _timed_run(stack, dag_id: str, conf: dict, timeout: float) -> tuple[float, str]:
    start = time.perf_counter()
    run_id = stack.trigger(conf, dag_id=dag_id)
    run = stack.wait_for_run(run_id, dag_id=dag_id, timeout=timeout)
    return time.perf_counter() - start, run["state"]


def bench_e2e(sessions: int, agents: int) -> None:
    from tools.airflow_stack import AirflowStack
    from tools.nexus_standin import NexusStandin

    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    dags = work / "dags"
    dags.mkdir()
    (dags / DAG_FILE.name).symlink_to(DAG_FILE)
    (dags / "session_upload_floor.py").symlink_to(ROOT / "tools" / "bench_dags" / "session_upload_floor.py")
    api_key = "bench-" + os.urandom(8).hex()
    rows = []
    with NexusStandin(api_key=api_key, record_dir=work / "nexus", store_bodies=False) as nexus:
        loop_state = work / "loop-state"
        _bench_state(loop_state, sessions, agents, "loop")
        start = time.perf_counter()
        uploaded = _plain_loop(loop_state, nexus.url, api_key)
        loop_s = time.perf_counter() - start

        dag_state = work / "dag-state"
        _bench_state(dag_state, sessions, agents, "dag")
        env = {
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            # Yearly from 2026-01-01: unpausing creates no scheduled run to compete with the measured ones.
            "SESSION_UPLOAD_SCHEDULE": "0 0 1 1 *",
            "OPENCLAW_STATE_DIR": str(dag_state),
            "AIRFLOW_CONN_NEXUS_DEFAULT": json.dumps(
                {
                    "conn_type": "http",
                    "host": "127.0.0.1",
                    "port": nexus.port,
                    "schema": "http",
                    "password": api_key,
                }
            ),
        }
        with AirflowStack(work / "airflow", env=env) as stack:
            stack.wait_for(
                "the floor DAG to be parsed",
                lambda: stack.api("GET", "/api/v2/dags/session_upload_floor", check=False).ok,
            )
            for dag_id in ("session_upload_floor", "session_upload"):
                stack.set_paused(False, dag_id=dag_id)
            timeout = 60 + sessions * 10
            floor_s, floor_state = _timed_run(
                stack, "session_upload_floor", {"agents": agents, "sessions": sessions}, timeout
            )
            dag_s, dag_state_name = _timed_run(
                stack, "session_upload", {"max_sessions": min(sessions, 1000), "settle_minutes": 0}, timeout
            )
        archived = sum(1 for _ in dag_state.glob("agents/*/sessions/archive/*.jsonl"))
    per_min = lambda seconds: f"{sessions / seconds * 60:,.0f}"  # noqa: E731
    rows.append(["plain loop (one process)", f"{loop_s:.1f}", per_min(loop_s), f"{uploaded} uploaded"])
    rows.append(["Airflow floor (no-op DAG, same shape)", f"{floor_s:.1f}", per_min(floor_s), floor_state])
    rows.append(
        ["session_upload DAG", f"{dag_s:.1f}", per_min(dag_s), f"{dag_state_name}, {archived} archived"]
    )
    table(
        f"End to end: {sessions} sessions across {agents} agents, embedded SQLite + LocalExecutor",
        ["variant", "wall seconds", "sessions/min", "outcome"],
        rows,
    )
    print(f"\nDAG/floor = {dag_s / floor_s:.2f} (target ≤ 1.15); DAG/loop = {dag_s / loop_s:.1f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="session_upload benchmarks")
    parser.add_argument("what", choices=["import", "discovery", "memory", "e2e", "all"])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--sizes", default="10,100,500", help="transcript sizes in MB for `memory`")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--agents", type=int, default=10)
    args = parser.parse_args(argv)
    print(f"Machine: {machine()}")
    if args.what in ("import", "all"):
        bench_import(args.repeat)
    if args.what in ("discovery", "all"):
        bench_discovery(args.files)
    if args.what in ("memory", "all"):
        bench_memory([int(s) for s in args.sizes.split(",")])
    if args.what in ("e2e", "all"):
        bench_e2e(args.sessions, args.agents)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
