"""openclaw_nexus.agent_check on JSONL-era state dirs (``tools.demo.sample_state``), real files: which agents
a run scans, what its record remembers, and that nothing ``discover`` would take is ever skipped.

The check's clock is moved a minute ahead where a test wants the record trusted (files written by the test
itself are seconds old, and stamps that recent are rescanned on purpose: ``RACY_SECONDS``)."""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

import pytest

from openclaw_nexus import agent_check, discovery, runs, stores
from openclaw_nexus.agent_check import check_agents, record_path
from tests.delivery import deliver
from tests.unit.test_detector import main_session, sessions, touch_index
from tools.demo.sample_state import make_state


def later() -> float:
    """A clock a minute ahead: what the test just wrote is old enough to trust."""
    return time.time() + 60


def listed(state: Path) -> list[str]:
    return discovery.list_agents(state)[0]


def check(state: Path, **kwargs) -> agent_check.Check:
    kwargs.setdefault("clock", later)
    return check_agents(state, listed(state), **kwargs)


def with_work(state: Path, window: discovery.Window) -> set[str]:
    """The agents ``discover`` takes something from (or reports an error for) under ``window``."""
    found = set()
    for agent in listed(state):
        scan = stores.scan_agent(state, agent, window)
        if scan.sessions or scan.errors:
            found.add(agent)
    return found


def manual(settle: float = 0.0) -> discovery.Window:
    return discovery.Window(now=time.time(), settle_seconds=settle)


IDLE = [f"idle-{n:02d}" for n in range(40)]


def test_an_agent_with_a_completion_among_many_idle_ones_is_found_and_the_idle_ones_are_skipped(tmp_path):
    make_state(tmp_path, IDLE, completed=0)
    made = make_state(tmp_path, ["busy"], completed=2, seed=3)

    first = check(tmp_path)
    assert first.agents == ["busy"]
    assert first.new == 41 and sorted(first.scanned) == sorted([*IDLE, "busy"]), "no record: all in full"
    assert sorted(first.skipped) == IDLE
    second = check(tmp_path)
    assert second.agents == ["busy"] and second.new == second.changed == 0
    assert len(second.scanned) == second.swept == agent_check.sweep_size(41), "only the sweep is scanned"
    assert "busy" not in second.scanned, "an agent with something to send is kept without a rescan"

    # A session of one idle agent ends: its entry leaves sessions.json.
    sid = main_session(tmp_path, "idle-17")
    touch_index(tmp_path, "idle-17", drop=sid)
    third = check(tmp_path)
    assert third.agents == ["busy", "idle-17"] and third.changed == 1
    assert with_work(tmp_path, manual()) == {"busy", "idle-17"}

    # Delivered: the archive folder changed, the next check rescans both and skips them.
    for agent in ("busy", "idle-17"):
        for item in stores.scan_agent(tmp_path, agent, manual()).sessions:
            deliver(tmp_path, item)
    fourth = check(tmp_path)
    assert fourth.agents == [] and fourth.changed == 2 and len(fourth.skipped) == 41
    assert made["busy"]["completed"], "the busy agent did have sessions"


def test_no_record_or_one_that_cannot_be_read_scans_every_agent_in_full(tmp_path, caplog):
    make_state(tmp_path, IDLE[:6], completed=0)
    check(tmp_path)
    path = record_path(tmp_path)
    good = path.read_bytes()
    assert json.loads(good)["version"] == agent_check.RECORD_VERSION
    assert oct(path.stat().st_mode & 0o777) == "0o600"

    damaged = {
        "truncated": lambda: path.write_bytes(good[: len(good) // 2]),
        "another version": lambda: path.write_text(json.dumps({"version": 99, "agents": {}})),
        "not an object": lambda: path.write_text("[]"),
        "a symlink": lambda: (path.unlink(), path.symlink_to(tmp_path / "elsewhere.json")),
    }
    (tmp_path / "elsewhere.json").write_bytes(good)
    for what, damage in damaged.items():
        damage()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=agent_check.log.name):
            again = check(tmp_path)
        assert again.new == 6 and len(again.scanned) == 6, what
        assert again.problem and "every agent is scanned in full" in caplog.text, what
        assert not path.is_symlink() and json.loads(path.read_bytes())["version"] == 1, "written afresh"

    # One entry that is not one of ours: that agent alone is scanned again.
    record = json.loads(path.read_bytes())
    record["agents"]["idle-03"]["stamps"] = "garbage"
    path.write_text(json.dumps(record))
    partly = check(tmp_path)
    assert partly.new == 1 and "idle-03" in partly.scanned and partly.problem is None


def test_a_record_that_cannot_be_written_leaves_the_run_correct_and_is_logged(tmp_path, caplog):
    make_state(tmp_path, IDLE[:3], completed=0)
    make_state(tmp_path, ["busy"], completed=1, seed=3)
    record_path(tmp_path).mkdir()  # os.replace cannot put a file there
    with caplog.at_level(logging.WARNING, logger=agent_check.log.name):
        first = check(tmp_path)
        second = check(tmp_path)
    assert first.agents == second.agents == ["busy"]
    assert second.new == 4, "nothing was remembered: every agent scanned in full again"
    assert "cannot write" in (second.problem or "") and "the next run scans every agent" in caplog.text
    assert sorted(p.name for p in (tmp_path / "agents").iterdir()) == [
        agent_check.RECORD_NAME,
        "busy",
        *IDLE[:3],
    ], "nothing else was left in the agents folder"


def test_rewriting_the_record_leaves_the_agents_folder_as_it_was(tmp_path):
    """The record is rewritten in place: the agents folder's stamp (which the watcher's detector compares
    to know when to list the agents again) moves when the record is first made, never after."""
    make_state(tmp_path, IDLE[:3], completed=0)
    check(tmp_path)
    folder = tmp_path / "agents"
    before = (folder.stat().st_mtime_ns, folder.stat().st_size, folder.stat().st_ino)
    inode = record_path(tmp_path).stat().st_ino
    for _ in range(3):
        check(tmp_path)
    assert (folder.stat().st_mtime_ns, folder.stat().st_size, folder.stat().st_ino) == before
    assert record_path(tmp_path).stat().st_ino == inode


def test_a_completion_during_the_checks_own_scan_goes_with_the_next_run(tmp_path, monkeypatch):
    """The record keeps the stamps taken before the scan: a session that ends after the scan read the
    agent (so the scan found nothing) changes them, and the next check scans the agent again."""
    make_state(tmp_path, IDLE[:5], completed=0)
    real_scan = stores.scan_agent
    sid = main_session(tmp_path, "idle-02")

    def scan_then_complete(state_dir, agent, window, **kwargs):
        scan = real_scan(state_dir, agent, window, **kwargs)
        if agent == "idle-02":
            touch_index(tmp_path, "idle-02", drop=sid)  # OpenClaw ends the session right after our read
        return scan

    monkeypatch.setattr(stores, "scan_agent", scan_then_complete)
    first = check(tmp_path)
    monkeypatch.setattr(stores, "scan_agent", real_scan)
    assert first.agents == [] and "idle-02" in first.skipped, "the scan saw it before it ended"
    assert with_work(tmp_path, manual()) == {"idle-02"}, "discover of this run would have taken it"
    assert check(tmp_path).agents == ["idle-02"], "the next run does"


def test_a_completion_between_the_check_and_discover_goes_with_the_next_run(tmp_path):
    make_state(tmp_path, IDLE[:5], completed=0)
    check(tmp_path)
    assert check(tmp_path).agents == []
    # After this run's check, before its discover: a session ends (its last turn an hour ago, settled).
    sid = main_session(tmp_path, "idle-04")
    touch_index(tmp_path, "idle-04", drop=sid)
    nxt = check(tmp_path)
    assert nxt.agents == ["idle-04"] and nxt.changed == 1
    items = stores.scan_agent(tmp_path, "idle-04", manual(settle=60)).sessions
    assert sorted(item["file"] for item in items) == [f"{sid}-topic-7.jsonl", f"{sid}.jsonl"]


def test_a_change_that_leaves_the_stamps_equal_is_rescanned_while_recent_and_found_by_the_sweep(tmp_path):
    """A change within one timestamp tick, with no change of size, leaves a file's stamp equal. Stamps
    taken within RACY_SECONDS of such a change are not trusted; older ones are, and the sweep finds what
    they hide within one round."""
    make_state(tmp_path, IDLE[:12], completed=0)

    def end_unseen(agent: str) -> str:
        """End the main session with every stamp left as it was (same size, mtime and inode): its entry
        gives way to another of the same length. Returns the ended session's id."""
        index = sessions(tmp_path, agent) / "sessions.json"
        before = index.stat()
        entries = json.loads(index.read_text())
        entry = entries.pop(f"agent:{agent}:main")
        sid, other = entry["sessionId"], "0" * len(entry["sessionId"])
        entries[f"agent:{agent}:gone"] = {
            **entry,
            "sessionId": other,
            "sessionFile": entry["sessionFile"].replace(sid, other),
        }
        body = json.dumps(entries, indent=2).encode()
        assert len(body) == before.st_size
        with index.open("r+b") as handle:  # in place: the inode stays
            handle.write(body)
        os.utime(index, ns=(before.st_atime_ns, before.st_mtime_ns))
        return sid

    # Stamps taken a second after the last change (the state was just written): rescanned, found at once.
    newest = max(p.stat().st_mtime for p in (tmp_path / "agents").rglob("*"))
    check(tmp_path, clock=lambda: newest + 1.0)
    sid = end_unseen("idle-05")
    recent = check(tmp_path, clock=lambda: newest + 1.0)
    assert "idle-05" in recent.agents and recent.recent == 12 and recent.changed == 0

    # Old stamps: trusted until the sweep reaches the agent, within ceil(agents / sweep size) runs.
    check(tmp_path)
    end_unseen("idle-09")
    per_run = agent_check.sweep_size(12)
    found_at = None
    for n in range(math.ceil(12 / per_run)):
        run = check(tmp_path)
        assert run.changed == 0
        if "idle-09" in run.agents:
            found_at = n
            break
    assert found_at is not None, "the sweep reached the agent within one round"
    assert sid in {item["sessionId"] for item in stores.scan_agent(tmp_path, "idle-05", manual()).sessions}


def test_the_sweep_reaches_every_idle_agent_within_one_round(tmp_path):
    names = [f"agent-{n:02d}" for n in range(30)]
    make_state(tmp_path, names, completed=0)
    check(tmp_path, sweep_round=4, sweep_min=2)
    per_run = agent_check.sweep_size(30, round_runs=4, minimum=2)
    assert per_run == 8
    seen: list[set[str]] = []
    for _ in range(8):
        run = check(tmp_path, sweep_round=4, sweep_min=2)
        assert run.swept == per_run and set(run.scanned) <= set(names)
        seen.append(set(run.scanned))
    for start in range(len(seen) - 3):
        assert set().union(*seen[start : start + 4]) == set(names), "every agent within 4 runs"


@pytest.mark.parametrize("run_type", ["scheduled", "backfill"])
def test_a_data_interval_keeps_the_agents_with_something_in_it_and_never_fewer_than_discover(
    tmp_path, run_type
):
    """Scheduled runs take what is older than their interval's end, backfills only their interval: an
    agent whose every completion is outside it is not scanned by that run, and stays in the record."""
    make_state(tmp_path, IDLE[:4], completed=0)
    make_state(tmp_path, ["early", "late"], completed=1, seed=5)
    now = time.time()
    for agent, age in (("early", 3 * 3600), ("late", 600)):
        for path in sessions(tmp_path, agent).glob("*.jsonl*"):
            if not path.name.startswith("sessions.json"):
                os.utime(path, (now - age, now - age))
    if run_type == "scheduled":
        window = discovery.Window(now=now, settle_seconds=60, before=now - 3600)
    else:
        window = discovery.Window(now=now, settle_seconds=60, not_before=now - 1200, before=now - 300)
    run = check(tmp_path, not_before=window.not_before, before=window.before)
    expected = {"scheduled": ["early"], "backfill": ["late"]}[run_type]
    assert run.agents == expected and run.outside == 1
    assert with_work(tmp_path, window) == set(expected)
    assert check(tmp_path).agents == ["early", "late"], "an unbounded run takes both"


def test_the_agents_param_and_a_replay_skip_the_check_and_leave_the_record_alone(tmp_path, monkeypatch):
    make_state(tmp_path / "state", IDLE[:3], completed=0)
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "state"))
    ti = FakeTaskInstance()
    assert runs.find_agents(None, ti, manual()) == []
    assert ti.pushed["check"]["skipped"] == 3 and ti.pushed["check"]["by"] == "the check"
    path = record_path(tmp_path / "state")
    stamp = path.stat().st_mtime_ns
    assert runs.find_agents(["idle-01"], ti, manual()) == ["idle-01"]
    assert ti.pushed["check"] == {"agents": 1, "scanned": 1, "skipped": 0, "by": "the agents Param: no check"}
    assert runs.find_agents(None, ti, manual(), include_archived=True) == IDLE[:3]
    assert ti.pushed["check"]["by"] == "include_archived (replay): no check"
    assert path.stat().st_mtime_ns == stamp


def test_a_check_that_fails_scans_every_agent(tmp_path, monkeypatch, caplog):
    make_state(tmp_path / "state", IDLE[:3], completed=0)
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path / "state"))

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in the check")

    monkeypatch.setattr(agent_check, "check_agents", broken)
    ti = FakeTaskInstance()
    with caplog.at_level(logging.ERROR, logger=runs.log.name):
        assert runs.find_agents(None, ti, manual()) == IDLE[:3]
    assert "the check failed: every agent is scanned" in caplog.text and "a bug in the check" in caplog.text
    assert ti.pushed["check"]["scanned"] == 3


def test_an_agent_whose_scan_raises_or_reports_errors_is_kept(tmp_path, monkeypatch):
    make_state(tmp_path, IDLE[:4], completed=0)
    # idle-01 gets a completed transcript and a broken index: its scan reports an error (a completed
    # file cannot be told from a live one), and discover reports it too.
    make_state(tmp_path, ["idle-01"], completed=1, seed=8)
    (sessions(tmp_path, "idle-01") / "sessions.json").write_text('{"agent:idle-01:main": {"sessionId": "ab')
    real_scan = stores.scan_agent

    def scan_agent(state_dir, agent, window, **kwargs):
        if agent == "idle-03":
            raise PermissionError(13, "Permission denied")
        return real_scan(state_dir, agent, window, **kwargs)

    monkeypatch.setattr(stores, "scan_agent", scan_agent)
    for new in (4, 2):
        run = check(tmp_path)
        assert run.agents == ["idle-01", "idle-03"] and sorted(run.failed) == ["idle-01", "idle-03"]
        assert run.new == new, "nothing is remembered of an agent whose scan failed"
    monkeypatch.setattr(stores, "scan_agent", real_scan)
    assert with_work(tmp_path, manual()) == {"idle-01"}, "discover reports the broken index"


class FakeTaskInstance:
    """What find_agents calls on a task instance: it pushes XComs."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value
