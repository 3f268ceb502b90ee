"""openclaw_nexus.detector on JSONL-era state dirs (``tools.demo.sample_state``): what a poll signals, what
it scans, and what it costs. Time is an injected clock that moves only when a test moves it."""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import time
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from openclaw_nexus.detector import Detector
from tests.delivery import deliver
from tools.demo.sample_state import make_state, transcript_lines


class Clock:
    """Epoch seconds (file mtimes are compared with it), moved by hand; the detector's clock and timer
    both, so a scan takes no time unless a test says so."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def watch(state: Path, *, clock: Clock, **settings) -> Detector:
    return Detector(state, clock=clock, timer=clock, **settings)


def sessions(state: Path, agent: str) -> Path:
    return discovery.sessions_dir_of(state, agent)


def completed_keys(made: dict, agents: list[str] | None = None) -> list[tuple]:
    return [(agent, item["file"], None) for agent in agents or made for item in made[agent]["completed"]]


def write_index(state: Path, agent: str, index: dict) -> None:
    """Replace ``sessions.json`` atomically: a temporary file renamed over it."""
    path = sessions(state, agent) / "sessions.json"
    temporary = path.with_name("sessions.json.tmp")
    temporary.write_text(json.dumps(index, indent=2))
    os.replace(temporary, path)


def touch_index(state: Path, agent: str, drop: str | None = None) -> None:
    """What OpenClaw does on a turn (bump ``updatedAt``), or when a session ends (drop its entry)."""
    index = json.loads((sessions(state, agent) / "sessions.json").read_text())
    index = {key: entry for key, entry in index.items() if entry["sessionId"] != drop}
    for entry in index.values():
        entry["updatedAt"] += 1
    write_index(state, agent, index)


def main_session(state: Path, agent: str) -> str:
    index = json.loads((sessions(state, agent) / "sessions.json").read_text())
    return index[f"agent:{agent}:main"]["sessionId"]


def append_turn(path: Path) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"type": "message", "message": {"role": "user", "content": "more"}}) + "\n")


def test_the_first_poll_signals_every_pending_completion_once_and_then_only_the_sweep_is_scanned(tmp_path):
    made = make_state(tmp_path, ["a", "b", "c"], completed=3)
    detector = watch(tmp_path, sweep_per_poll=1, clock=Clock())

    first = detector.poll()
    assert sorted(first.new) == sorted(completed_keys(made))
    assert len(first.new) == 9 and len(set(first.new)) == 9
    assert first.scanned == ["a", "b", "c"] and first.errors == []
    assert first.agents == ["a", "b", "c"]
    assert detector.pending == 9

    second = detector.poll()
    assert second.new == [] and second.changed == []
    assert second.scanned == second.swept and len(second.swept) == 1

    # A new detector (a triggerer restart) knows nothing: it signals everything still pending.
    again = watch(tmp_path, sweep_per_poll=1, clock=Clock()).poll()
    assert sorted(again.new) == sorted(completed_keys(made))


def test_a_live_session_growing_signals_nothing(tmp_path):
    made = make_state(tmp_path, ["a"], completed=2)
    detector = watch(tmp_path, sweep_per_poll=0, clock=Clock())
    detector.poll()

    for name in made["a"]["active"]:
        append_turn(sessions(tmp_path, "a") / name)
    touch_index(tmp_path, "a")
    poll = detector.poll()
    assert poll.changed == ["a"] and poll.scanned == ["a"], "the index changed: the agent is scanned"
    assert poll.new == []
    assert detector.poll().scanned == [], "nothing changed since: no scan (the sweep is off)"


def test_a_completed_session_is_signalled_once_it_has_settled_and_only_it(tmp_path):
    make_state(tmp_path, ["a", "b"], completed=2)
    clock = Clock()
    detector = watch(tmp_path, settle_seconds=300, sweep_per_poll=0, clock=clock)
    detector.poll()

    sid = main_session(tmp_path, "a")
    append_turn(sessions(tmp_path, "a") / f"{sid}.jsonl")  # its last turn, now
    touch_index(tmp_path, "a", drop=sid)  # the session ends: its entry leaves the index
    ended = detector.poll()
    # Its topic file was last written an hour ago: settled already. The transcript itself is settling.
    assert ended.scanned == ["a"] and ended.new == [("a", f"{sid}-topic-7.jsonl", None)]

    clock.advance(200)
    assert detector.poll().scanned == [], "still settling and nothing changed: no scan"
    clock.advance(150)  # past the transcript's mtime + settle
    settled = detector.poll()
    assert settled.scanned == ["a"], "rescanned when its settle time is over, without any file change"
    assert settled.new == [("a", f"{sid}.jsonl", None)]
    assert detector.poll().new == []


def test_what_the_dag_archived_is_forgotten(tmp_path):
    make_state(tmp_path, ["a"], completed=2)
    detector = watch(tmp_path, sweep_per_poll=0, clock=Clock())
    assert len(detector.poll().new) == 2 and detector.pending == 2

    scan = stores.scan_agent(tmp_path, "a", discovery.Window(time.time()))
    first = scan.sessions[0]
    deliver(tmp_path, first)
    archived = sessions(tmp_path, "a") / "archive" / f"{first['sessionId']}.jsonl"
    assert archived.exists()

    after = detector.poll()
    assert after.changed == ["a"] and after.new == [] and detector.pending == 1

    # Forgotten, not just hidden: the same file completed again (restored by hand, another mtime) is
    # signalled again. (Restored with its copy's mtime too, it would be taken as sent: a copy holds it.)
    restored = sessions(tmp_path, "a") / first["file"]
    shutil.copy(archived, restored)
    older = archived.stat().st_mtime_ns - 1_000_000_000
    os.utime(restored, ns=(older, older))
    assert detector.poll().new == [("a", first["file"], None)]


def test_an_agent_that_cannot_be_scanned_is_logged_once_retried_and_stops_no_other(
    tmp_path, monkeypatch, caplog
):
    made = make_state(tmp_path, ["a", "broken", "c"], completed=2)
    index = sessions(tmp_path, "broken") / "sessions.json"
    good_index = json.loads(index.read_text())
    index.write_text('{"agent:broken:main": {"sessionId": "ab')
    real_scan = stores.scan_agent
    failing = {"c"}

    def scan_agent(state_dir, agent, window, **kwargs):
        if agent in failing:
            raise PermissionError(13, "Permission denied", str(sessions(state_dir, agent)))
        return real_scan(state_dir, agent, window, **kwargs)

    monkeypatch.setattr(stores, "scan_agent", scan_agent)
    detector = watch(tmp_path, sweep_per_poll=0, clock=Clock())
    with caplog.at_level(logging.INFO, logger="openclaw_nexus.detector"):
        first = detector.poll()
    assert first.new == completed_keys(made, ["a"])
    assert first.errors == ["broken", "c"]
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2
    assert "agent broken" in errors[0] and "sessions.json is not valid JSON" in errors[0]
    assert errors[1].startswith("agent c: scan failed: PermissionError")

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="openclaw_nexus.detector"):
        retried = detector.poll()
    assert retried.scanned == ["c"] and retried.errors == ["c"], "a scan that raised is retried next poll"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a lasting error is logged once"

    failing.clear()
    healed = detector.poll()
    assert healed.scanned == ["c"] and healed.new == completed_keys(made, ["c"]) and healed.errors == []
    write_index(tmp_path, "broken", good_index)
    fixed = detector.poll()
    assert fixed.scanned == ["broken"] and fixed.new == completed_keys(made, ["broken"])


def test_the_sweep_reaches_every_agent_within_ceil_agents_over_per_poll_polls(tmp_path):
    names = [f"agent{n}" for n in range(7)]
    make_state(tmp_path, names, completed=1)
    detector = watch(tmp_path, sweep_per_poll=3, clock=Clock())
    detector.poll()
    rounds = math.ceil(len(names) / 3)
    scanned = []
    for _ in range(10):
        poll = detector.poll()
        assert sorted(poll.scanned) == sorted(poll.swept) and len(poll.swept) == 3 and poll.new == []
        scanned.append(set(poll.scanned))
    for start in range(len(scanned) - rounds + 1):
        assert set().union(*scanned[start : start + rounds]) == set(names)
        assert set().union(*scanned[start : start + rounds - 1]) != set(names)


def test_the_sweep_finds_what_no_stat_shows_a_lock_gone_stale(tmp_path):
    names = ["a", "b", "c", "d", "e"]
    made = make_state(tmp_path, names, completed=1)
    clock = Clock()
    item = made["c"]["completed"][0]["file"]
    lock = sessions(tmp_path, "c") / f"{item}.lock"
    lock.write_text(json.dumps({"pid": 1, "createdAt": int(clock.now * 1000)}))
    detector = watch(tmp_path, sweep_per_poll=2, clock=clock)
    first = detector.poll()
    assert ("c", item, None) not in first.new, "locked by OpenClaw: not completed yet"

    clock.advance(31 * 60)  # OpenClaw's 30-minute staleness rule: the lock no longer counts; no file changed
    found = []
    for _ in range(math.ceil(len(names) / 2)):
        poll = detector.poll()
        assert poll.changed == []
        found += poll.new
    assert found == [("c", item, None)]


def test_a_new_agent_folder_is_picked_up_and_a_removed_one_forgotten(tmp_path):
    make_state(tmp_path, ["a"], completed=1)
    detector = watch(tmp_path, sweep_per_poll=0, clock=Clock())
    detector.poll()
    late = make_state(tmp_path, ["late"], completed=2, seed=3)
    poll = detector.poll()
    assert poll.changed == ["late"] and poll.scanned == ["late"]
    assert poll.new == completed_keys(late)
    assert detector.agents == ["a", "late"] and detector.pending == 3

    shutil.rmtree(tmp_path / "agents" / "late")
    assert detector.poll().scanned == [] and detector.agents == ["a"] and detector.pending == 1


def test_a_state_dir_without_agents_is_reported_once_and_watched_until_they_appear(tmp_path, caplog):
    detector = watch(tmp_path, clock=Clock())
    with caplog.at_level(logging.ERROR, logger="openclaw_nexus.detector"):
        assert detector.poll().errors == ["*"]
        assert detector.poll().scanned == []
    assert len(caplog.records) == 1 and "has no agents/ folder" in caplog.records[0].getMessage()
    made = make_state(tmp_path, ["a"], completed=1)
    poll = detector.poll()
    assert poll.errors == [] and poll.new == completed_keys(made)


def test_an_agent_folder_no_stat_shows_is_found_within_one_sweep_round(tmp_path):
    names = ["a", "b", "c", "d", "e"]
    make_state(tmp_path, names, completed=1)
    detector = watch(tmp_path, sweep_per_poll=2, clock=Clock())
    detector.poll()
    root = tmp_path / "agents"
    before = root.stat()
    late = make_state(tmp_path, ["late"], completed=1, seed=3)
    os.utime(root, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if within one timestamp tick
    assert (root.stat().st_mtime_ns, root.stat().st_size) == (before.st_mtime_ns, before.st_size)
    found = []
    for _ in range(math.ceil(len(names) / 2) + 1):  # a round, then the listing it asks for
        found += detector.poll().new
    assert found == completed_keys(late)


@pytest.mark.parametrize(("duty", "gap"), [(0.2, 5.0), (0.25, 4.0)])
def test_a_busy_agent_is_rescanned_at_most_once_per_scan_time_over_duty(tmp_path, monkeypatch, duty, gap):
    make_state(tmp_path, ["big", "small"], completed=1)
    clock = Clock()
    cost = {"big": 1.0, "small": 0.0}
    starts: dict[str, list[float]] = {"big": [], "small": []}
    real_scan = stores.scan_agent

    def scan_agent(state_dir, agent, window, **kwargs):
        starts[agent].append(clock.now)
        clock.advance(cost[agent])  # the scan takes this long
        return real_scan(state_dir, agent, window, **kwargs)

    monkeypatch.setattr(stores, "scan_agent", scan_agent)
    detector = watch(tmp_path, duty=duty, sweep_per_poll=0, clock=clock)
    detector.poll()
    deferred = 0
    for _ in range(20):
        clock.advance(1.0)
        for agent in ("big", "small"):
            touch_index(tmp_path, agent)  # both busy: their files change before every poll
        poll = detector.poll()
        assert "small" in poll.scanned, "a cheap agent is rescanned at every change"
        assert poll.changed == ["big", "small"]
        if "big" not in poll.scanned:
            assert poll.deferred == ["big"]
            deferred += 1
    gaps = [later - earlier for earlier, later in zip(starts["big"], starts["big"][1:], strict=False)]
    assert gaps and all(g == pytest.approx(gap) for g in gaps), gaps
    assert len(starts["small"]) == 21 and deferred > 0


def test_a_scan_that_raises_is_retried_even_when_its_files_do_not_change(tmp_path, monkeypatch):
    made = make_state(tmp_path, ["a"], completed=1)
    real_scan = stores.scan_agent
    calls = []

    def scan_agent(state_dir, agent, window, **kwargs):
        calls.append(agent)
        if len(calls) == 1:
            raise OSError(5, "Input/output error")
        return real_scan(state_dir, agent, window, **kwargs)

    monkeypatch.setattr(stores, "scan_agent", scan_agent)
    detector = watch(tmp_path, sweep_per_poll=0, clock=Clock())
    assert detector.poll().errors == ["a"]
    assert detector.poll().new == completed_keys(made)
    assert detector.poll().scanned == []


def test_a_transcript_of_a_new_completed_session_is_signalled(tmp_path):
    make_state(tmp_path, ["a"], completed=1)
    clock = Clock()
    detector = watch(tmp_path, settle_seconds=300, sweep_per_poll=0, clock=clock)
    detector.poll()
    sid = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
    path = sessions(tmp_path, "a") / f"{sid}.jsonl"
    path.write_text(transcript_lines(sid, random.Random(1)))
    hour_ago = clock.now - 3600
    os.utime(path, (hour_ago, hour_ago))
    assert detector.poll().new == [("a", path.name, None)]


def run_once(state: Path, max_sessions: int, failing: frozenset[str] = frozenset()) -> list[dict]:
    """What one DAG run does to the state dir: scan every agent, take the oldest ``max_sessions``, archive
    each one Nexus accepted (``failing``: session ids Nexus rejects for good, never archived)."""
    window = discovery.Window(time.time(), settle_seconds=0)
    scans = [stores.scan_agent(state, agent, window).to_dict() for agent in discovery.list_agents(state)[0]]
    selected, _ = discovery.select_sessions(scans, max_sessions)
    for session in selected:
        if session["sessionId"] not in failing:
            deliver(state, session)
    return selected


def test_a_backlog_beyond_one_run_is_signalled_again_after_each_run_until_it_is_drained(tmp_path):
    made = make_state(tmp_path, ["a", "b"], completed=3)
    detector = watch(tmp_path, settle_seconds=0, sweep_per_poll=1, clock=Clock())
    assert len(detector.poll().signals) == 6

    left = set(completed_keys(made))
    for expected_left in (4, 2, 0):
        taken = run_once(tmp_path, 2)
        left -= {(s["agentId"], s["file"], None) for s in taken}
        during = detector.poll()  # the run archives: the poll sees signalled completions leave
        assert during.archived == 2 and during.signals == [], "nothing signalled while a run archives"
        after = detector.poll()  # the first poll that sees none leave: the run has stopped archiving
        assert len(left) == expected_left
        assert sorted(after.again) == sorted(left) and after.new == []
        assert after.agents == sorted({agent for agent, _, _ in left})
        assert detector.poll().signals == [], "signalled again once per run that archived"
    assert detector.pending == 0


def test_a_session_that_fails_every_run_does_not_make_runs_loop(tmp_path):
    made = make_state(tmp_path, ["a"], completed=3)
    oldest = made["a"]["completed"][0]  # make_agent dates them oldest first: every run selects it
    rejected = ("a", oldest["file"], None)
    detector = watch(tmp_path, settle_seconds=0, sweep_per_poll=1, clock=Clock())
    assert len(detector.poll().signals) == 3

    # Run 1 takes the rejected session and the next; it archives that one: the other two are signalled.
    taken = run_once(tmp_path, 2, frozenset({oldest["sessionId"]}))
    assert taken[0]["file"] == oldest["file"]
    detector.poll()
    assert sorted(detector.poll().again) == sorted([rejected, ("a", made["a"]["completed"][2]["file"], None)])
    # Run 2 takes the rejected one and the last; after it only the rejected one is left: signalled once.
    run_once(tmp_path, 2, frozenset({oldest["sessionId"]}))
    detector.poll()
    assert detector.poll().again == [rejected]
    # Run 3, and any later one, fails it again and archives nothing: nothing is signalled again by itself.
    for _ in range(3):
        run_once(tmp_path, 2, frozenset({oldest["sessionId"]}))
        for _ in range(5):
            assert detector.poll().signals == []
    assert detector.pending == 1
