"""Smoke test of the SQLite-era benchmarks (tools/bench) at a tiny scale: the databases OpenClaw
writes are scaled in SQL, discovered, exported and uploaded, so the figures the benchmarks print come
from code that works. Needs OpenClaw (tools/openclaw/fixture installs it once, cached)."""

from __future__ import annotations

import ast
import json
import re

import pytest

from openclaw_nexus import sqlite_db, sqlite_export, sqlite_live
from openclaw_nexus.discovery import Window, list_agents
from openclaw_nexus.stores import scan_agent
from tools.bench import cli as bench
from tools.openclaw.fixture import OpenClaw
from tools.standins.nexus import NexusStandin


@pytest.fixture(scope="module", autouse=True)
def openclaw():
    return OpenClaw.installed()  # CI installs it (npm); a failure here is a failure, not a skip


def table_rows(out: str) -> dict[str, list[str]]:
    """The benchmark's Markdown table rows: first cell -> the other cells."""
    rows = {}
    for line in out.splitlines():
        if line.startswith("| ") and not line.startswith("| what "):
            cells = [cell.strip() for cell in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


def scan_result(cell: str) -> tuple[int, dict[str, int]]:
    """'N items[, conversations {...}], skipped {...}' -> (N, skipped)."""
    found = re.fullmatch(r"([0-9,]+) items(?:, conversations \{.*\})?, skipped (\{.*\})", cell)
    assert found, cell
    return int(found.group(1).replace(",", "")), ast.literal_eval(found.group(2))


def row(rows: dict[str, list[str]], prefix: str) -> list[str]:
    [cells] = [cells for what, cells in rows.items() if what.startswith(prefix)]
    return cells


def test_sqlite_discovery_prints_both_eras_and_conversations(capsys):
    bench.main(
        [
            "sqlite-discovery",
            "--db-sessions",
            "300",
            "--files",
            "300",
            "--exports",
            "10",
            "--conversations",
            "3",
        ]
    )
    out = capsys.readouterr().out
    assert "| JSONL: scan_agent, 300 files |" in out
    assert "| SQLite, no resets (300 windows, " in out
    assert "| SQLite, 3 conversations each (300 windows, " in out
    # Without resets every item is a session. With them, each completed clone has 3 finished
    # conversations; each of the 6 live chats' current window has its last conversation open and the 2
    # before it finished.
    plain = re.search(
        r"SQLite, no resets: scan_agent, nothing archived yet \(first run\) \| [0-9.]+ \| [0-9,]+ \| "
        r"([0-9,]+) items, skipped",
        out,
    )
    convs = re.search(
        r"SQLite, 3 conversations each: scan_agent, nothing archived yet \(first run\) \| [0-9.]+ \| "
        r"[0-9,]+ \| ([0-9,]+) items, conversations \{'finished': (\d+), 'open': (\d+)\}",
        out,
    )
    assert plain and convs, out
    sessions = int(plain.group(1).replace(",", ""))
    items, finished, still_open = (int(g.replace(",", "")) for g in convs.groups())
    assert 250 < sessions < 300
    assert still_open == 6
    assert (finished - 2 * still_open) % 3 == 0 and finished > 2.9 * sessions, out
    assert finished - 10 < items <= finished + 10, "nearly every finished conversation is an item"

    rows = table_rows(out)
    # JSONL: every one of the 300 files (and sessions.json) is an item or skipped with a reason, once; the
    # index's 6 sessions (one file in 50) are the active ones.
    jsonl_items, jsonl_skipped = scan_result(row(rows, "JSONL: scan_agent, 300 files")[2])
    assert jsonl_items > 0 and jsonl_skipped["active"] == 6, (jsonl_items, jsonl_skipped)
    assert jsonl_items + sum(jsonl_skipped.values()) == 300 + 1, (jsonl_items, jsonl_skipped)
    for label, each in (("SQLite, no resets", 1), ("SQLite, 3 conversations each", 3)):
        first, _ = scan_result(row(rows, f"{label}: scan_agent, nothing archived yet")[2])
        after_what = next(w for w in rows if w.startswith(f"{label}: scan_agent, first after "))
        copies = int(re.search(r"first after ([0-9,]+) sessions", after_what).group(1).replace(",", ""))
        after = scan_result(rows[after_what][2])
        steady = scan_result(row(rows, f"{label}: scan_agent, steady state")[2])
        # 95 % of the completed sessions have archive copies: the scans after them skip those sessions
        # (every conversation of each) and offer the rest; the steady-state scan (taken by the name
        # recorded in archive/.all-sent) finds exactly what the exact check found.
        assert copies >= 0.95 * (sessions - 10), (label, copies, sessions)
        assert after == steady, (label, after, steady)
        assert steady[1].get("already_archived", 0) >= copies, (label, steady)
        assert 0 < steady[0] < first - 0.9 * copies * each, (label, first, steady)
    exports = [cells[0] for what, cells in rows.items() if ", 10 items: " in what]
    assert len(exports) == 4, rows
    for cell in exports:  # "max X s, p99 Y s, median Z s (n=10)": ten exports measured each
        found = re.fullmatch(r"max ([0-9.]+) s, p99 ([0-9.]+) s, median ([0-9.]+) s \(n=10\)", cell)
        assert found, cell
        most, p99, median = (float(g) for g in found.groups())
        assert most >= p99 >= median > 0, cell


def test_big_session_is_stored_as_openclaw_does_and_exports_whole(tmp_path):
    state = bench.openclaw_template(tmp_path / "state", ["main"])
    made = bench.big_session(state, "main", 3 * bench.MB, "bench-big")
    assert made["compressed"] > 0 and made["events"] > made["compressed"]  # short events stay text
    assert made["stored"] < made["size"]
    database = sqlite_db.database_of(state / "agents" / "main")
    assert "bench-big" in sqlite_live.scan_database(database).completed
    exported = sqlite_export.export_transcript(database, "bench-big", tmp_path / "out.jsonl")
    assert (exported.size, exported.events) == (made["size"], made["events"])
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert json.loads(lines[0])["id"] == "bench-big"
    assert all(json.loads(line)["type"] == "message" for line in lines[1:])


def test_sqlite_state_goes_through_the_plain_loop_once(tmp_path):
    state = tmp_path / "state"
    bench._bench_sqlite_state(state, sessions=20, agents=2, tag=1)
    window = Window(now=4102444800.0, settle_seconds=0)
    assert sum(len(scan_agent(state, a, window).sessions) for a in list_agents(state)[0]) == 20
    with NexusStandin(api_key="k", record_dir=tmp_path / "nexus", store_bodies=False) as nexus:
        uploaded, reads = bench._plain_loop(state, nexus.url, "k")
    assert uploaded == 20 and len(reads) == 20
    assert sum(len(scan_agent(state, a, window).sessions) for a in list_agents(state)[0]) == 0


def test_jsonl_state_goes_through_the_same_plain_loop_once(tmp_path):
    state = tmp_path / "state"
    bench._bench_state(state, sessions=6, agents=2, prefix="loop")
    window = Window(now=4102444800.0, settle_seconds=0)
    with NexusStandin(api_key="k", record_dir=tmp_path / "nexus", store_bodies=False) as nexus:
        uploaded, reads = bench._plain_loop(state, nexus.url, "k")
    assert uploaded == 6 and reads == []
    assert sorted(p.name for p in state.glob("agents/agent-00/sessions/archive/*.jsonl")) == [
        f"loop-00-{n:05d}.jsonl" for n in range(3)
    ]
    assert sum(len(scan_agent(state, a, window).sessions) for a in list_agents(state)[0]) == 0


def test_sqlite_conversation_items_go_through_the_plain_loop_once(tmp_path):
    state = tmp_path / "state"
    items = bench._bench_sqlite_state(state, sessions=20, agents=2, tag=1, conversations=3)
    window = Window(now=4102444800.0, settle_seconds=0)
    found = [s for a in list_agents(state)[0] for s in scan_agent(state, a, window).sessions]
    assert len(found) == items and 20 <= items <= 26
    assert sum(1 for s in found if s.get("conversation") is not None) == items - 2  # 2 template sessions
    with NexusStandin(api_key="k", record_dir=tmp_path / "nexus", store_bodies=False) as nexus:
        uploaded, reads = bench._plain_loop(state, nexus.url, "k")
        keys = {r["idempotencyKey"] for r in nexus.accepted()}
    assert uploaded == items and len(reads) == items and len(keys) == items
    assert sum(len(scan_agent(state, a, window).sessions) for a in list_agents(state)[0]) == 0
