"""The embedded default's triggerer (tools.stacks.airflow_stack.COMPONENTS:
``airflow triggerer --skip-serve-logs``), which will run the package's completion watcher: alive in the
metadata DB and heartbeating, started with the same environment as the other components (the OpenClaw state
dir, the Nexus Connection, the tuned SQLite URL), without a log server, its output in the stack's logs folder.
Its cost is measured from /proc and printed."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path

from tools.stacks.airflow_stack import _descendants


def _tree(pid: int) -> list[int]:
    """The component's own process and every process below it."""
    return [pid, *_descendants([pid])]


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _listening(pids: list[int]) -> set[int]:
    """The TCP ports (IPv4 and IPv6) on which any of these processes has a listening socket."""
    inodes = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        for fd in fd_dir.iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed meanwhile
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: TCP_LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def _health(stack) -> dict:
    return stack._http.get(f"{stack.url}/api/v2/monitor/health", timeout=30).json()["triggerer"]


def test_triggerer_is_alive_and_heartbeating(live):
    """`airflow jobs check` against the stack's home finds exactly one alive TriggererJob (`--limit 0`:
    every running one counted), and the api-server sees its heartbeat move."""
    stack = live.stack
    assert "triggerer" in stack.processes and stack.processes["triggerer"].poll() is None
    done = stack.airflow("jobs", "check", "--job-type", "TriggererJob", "--limit", "0", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Found one alive job." in done.stdout

    first = _health(stack)
    assert first["status"] == "healthy", first
    beat = datetime.fromisoformat(first["latest_triggerer_heartbeat"])
    assert (datetime.now(UTC) - beat).total_seconds() < 30, first  # [triggerer] health threshold
    # It heartbeats every [triggerer] job_heartbeat_sec (5 s): a later heartbeat within 20 s.
    moved = stack.wait_for(
        "a newer triggerer heartbeat",
        lambda: (
            (h := _health(stack))["latest_triggerer_heartbeat"] != first["latest_triggerer_heartbeat"] and h
        ),
        timeout=20,
    )
    assert datetime.fromisoformat(moved["latest_triggerer_heartbeat"]) > beat


def test_triggerer_has_the_environment_of_the_tasks(live):
    """Every process of the triggerer (its supervisor and the trigger runner) sees the state dir and the
    Connection the tasks see, and the same metadata DB URL (with the 60 s lock timeout) as the scheduler."""
    stack = live.stack
    scheduler = _environ(stack.processes["scheduler"].pid)
    pids = _tree(stack.processes["triggerer"].pid)
    assert len(pids) >= 2, "the triggerer starts its trigger runner as a subprocess"
    for pid in pids:
        env = _environ(pid)
        assert env["OPENCLAW_STATE_DIR"] == str(live.state_dir), pid
        same_connection = env.get("AIRFLOW_CONN_NEXUS_DEFAULT") == stack.env["AIRFLOW_CONN_NEXUS_DEFAULT"]
        assert same_connection, f"process {pid}: not the Connection the tasks get"  # never print the key
        db_url = env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert db_url == scheduler["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] and db_url.endswith("?timeout=60")


def test_triggerer_serves_no_logs_and_logs_to_the_stack_logs_folder(live):
    """`--skip-serve-logs`: no process of the triggerer listens on any port (the api-server's listening
    socket shows the check sees sockets at all); its output is in <home>/stack-logs/triggerer.log."""
    stack = live.stack
    assert stack.port in _listening(_tree(stack.processes["api-server"].pid))
    assert _listening(_tree(stack.processes["triggerer"].pid)) == set()
    assert list(stack.processes["triggerer"].args[1:]) == ["triggerer", "--skip-serve-logs"]
    log = (stack.log_dir / "triggerer.log").read_text(errors="replace")
    assert "Starting the triggerer" in log, log[-3000:]
    assert "database is locked" not in log


def _cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total


def _memory_kb(pids: list[int]) -> tuple[int, int]:
    """(RSS, PSS) in kB, summed over the processes, from /proc/<pid>/smaps_rollup."""
    rss = pss = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss += int(line.split()[1])
            elif line.startswith("Pss:"):
                pss += int(line.split()[1])
    return rss, pss


def test_triggerer_cost(live):
    """What the triggerer costs with the watcher polling and nothing to signal, printed; the figure for the
    README comes from ``tools/bench latency``'s idle phase. The bounds only catch a gross regression on
    a shared machine: a busy loop takes a whole core (CPU 100 %), a log server or a leak hundreds of MB."""
    pids = _tree(live.stack.processes["triggerer"].pid)
    rss, pss = _memory_kb(pids)
    ticks, started = _cpu_ticks(pids), time.monotonic()
    time.sleep(10)
    cpu = (_cpu_ticks(pids) - ticks) / os.sysconf("SC_CLK_TCK") / (time.monotonic() - started)
    print(f"\ntriggerer: {len(pids)} processes, RSS {rss >> 10} MB, PSS {pss >> 10} MB, CPU {cpu:.1%} (10 s)")
    assert pss < 400 * 1024
    assert cpu < 0.5, "CPU time of the triggerer's processes per wall second: a busy loop reads about 1.0"
