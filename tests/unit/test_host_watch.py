"""openclaw_nexus.host_watch: a fleet host's bounded watch, on JSONL-era state dirs
(``tools.demo.sample_state``). Time is an injected clock that moves only when the watch sleeps (or a test
moves it); each watch gets a new ``Detector``, as each watch task does, and starts from what the previous
one handed over."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from openclaw_nexus import discovery, stores
from openclaw_nexus.detector import Detector
from openclaw_nexus.host_watch import keys_from, watch
from tests.delivery import deliver
from tests.unit.test_detector import append_turn, completed_keys, main_session, sessions, touch_index
from tools.demo.sample_state import make_state


class Clock:
    """Epoch seconds, moved by the watch's sleeps; records each sleep."""

    def __init__(self) -> None:
        self.now = time.time()
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def run_watch(state: Path, clock: Clock, handover: dict | None = None, **kwargs):
    """One watch task: a new detector over ``state``, seeded from the previous watch's XCom."""
    detector = Detector(state, settle_seconds=60.0, sweep_per_poll=0, clock=clock, timer=clock)
    settings = {"poll_seconds": 10.0, "batch_seconds": 3.0, "max_seconds": 600.0, **kwargs}
    done = watch(detector, remembered=keys_from(handover), timer=clock, sleep=clock.sleep, **settings)
    # What goes through XCom: JSON, read back as the next task would.
    return done, json.loads(json.dumps(done.handover()))


def test_the_first_watch_signals_what_is_pending_at_once_and_hands_it_over(tmp_path):
    made = make_state(tmp_path, ["a", "b"], completed=2)
    clock = Clock()
    done, handover = run_watch(tmp_path, clock)
    assert sorted(done.signals) == sorted(completed_keys(made))
    assert done.event() == {"completions": 4, "agents": ["a", "b"]}
    assert clock.slept == [3.0], "one batch wait after the first poll, no poll wait"
    assert done.polls == 2
    assert sorted(keys_from(handover)) == sorted(completed_keys(made))
    assert handover["completions"] == 4 and handover["errors"] == []
    assert all(not str(part).startswith("/") for key in handover["pending"] for part in key if part)


def test_the_next_watch_does_not_signal_what_the_previous_one_did_and_ends_after_its_time(tmp_path):
    """A completion still pending (its upload run queued) is not signalled again by the next watch: it polls
    until its time is up and signals nothing; what is pending is handed on unchanged."""
    made = make_state(tmp_path, ["a"], completed=2)
    clock = Clock()
    _, handover = run_watch(tmp_path, clock)
    clock.slept.clear()
    done, after = run_watch(tmp_path, clock, handover, max_seconds=60.0)
    assert done.signals == []
    assert done.polls == 7 and clock.slept == [10.0] * 6, "a poll every 10 s for 60 s"
    assert sorted(keys_from(after)) == sorted(completed_keys(made))
    assert done.event() == {"completions": 0, "agents": []}


def test_without_the_handover_the_next_watch_signals_everything_pending_again(tmp_path):
    """What a handover prevents (the oracle for the test above): a watch killed before it returned left no
    XCom, and the next one signals every pending completion again, losing nothing."""
    made = make_state(tmp_path, ["a"], completed=2)
    run_watch(tmp_path, Clock())
    done, _ = run_watch(tmp_path, Clock(), None, max_seconds=0.0)
    assert sorted(done.signals) == sorted(completed_keys(made))


def test_a_new_completion_is_signalled_by_a_watch_that_started_from_a_handover(tmp_path):
    """A session ends (its entry leaves the index) after a watch handed over: the next watch signals its
    files, and only them; the transcript it appended to last waits for its settle time (60 s)."""
    make_state(tmp_path, ["a", "b"], completed=1)
    clock = Clock()
    _, handover = run_watch(tmp_path, clock)
    sid = main_session(tmp_path, "b")
    append_turn(sessions(tmp_path, "b") / f"{sid}.jsonl")
    touch_index(tmp_path, "b", drop=sid)
    # Its topic file was last written an hour ago: settled already; the transcript is settling.
    done, handover = run_watch(tmp_path, clock, handover)
    assert done.signals == [("b", f"{sid}-topic-7.jsonl", None)]
    assert done.event() == {"completions": 1, "agents": ["b"]}
    clock.slept.clear()
    done, after = run_watch(tmp_path, clock, handover)
    assert done.signals == [("b", f"{sid}.jsonl", None)], "signalled once it has settled, and only it"
    assert 60.0 <= sum(clock.slept) <= 60.0 + 10.0 + 3.0, clock.slept
    assert {("b", f"{sid}.jsonl", None), ("b", f"{sid}-topic-7.jsonl", None)} <= set(keys_from(after))
    assert len(keys_from(after)) == 4


def test_archived_completions_leave_the_handover_and_a_backlog_is_signalled_again(tmp_path):
    """A run archived part of what was signalled (its max_sessions) between two watches: the next watch sees
    them gone, then signals what is left once more, so the backlog drains without waiting for the cron."""
    make_state(tmp_path, ["a"], completed=4)
    clock = Clock()
    _, handover = run_watch(tmp_path, clock)
    scan = stores.scan_agent(tmp_path, "a", discovery.Window(clock()))
    for session in scan.sessions[:2]:
        deliver(tmp_path, session)
    left = sorted((s["agentId"], s["file"], None) for s in scan.sessions[2:])
    done, after = run_watch(tmp_path, clock, handover)
    assert sorted(done.signals) == left
    assert sorted(keys_from(after)) == left


def test_everything_archived_signals_nothing_and_hands_over_nothing(tmp_path):
    make_state(tmp_path, ["a"], completed=2)
    clock = Clock()
    _, handover = run_watch(tmp_path, clock)
    for session in stores.scan_agent(tmp_path, "a", discovery.Window(clock())).sessions:
        deliver(tmp_path, session)
    done, after = run_watch(tmp_path, clock, handover, max_seconds=30.0)
    assert done.signals == [] and after["pending"] == []


def test_an_agent_whose_scan_fails_is_named_and_the_others_still_signal(tmp_path):
    made = make_state(tmp_path, ["a", "b"], completed=1)
    (sessions(tmp_path, "b") / "sessions.json").write_text("{not json")
    done, handover = run_watch(tmp_path, Clock())
    assert done.signals == completed_keys(made, ["a"])
    assert handover["errors"] == ["b"]


@pytest.mark.parametrize(
    "handover",
    [None, [], {"pending": "x"}, {"pending": [["a", "f"]]}, {"pending": [[1, "f", None]]}, {"other": 1}],
)
def test_a_handover_from_anything_else_is_no_handover(handover):
    assert keys_from(handover) == []


def test_keys_from_reads_back_what_a_watch_hands_over():
    assert keys_from({"pending": [["a", "x.jsonl", None], ["b", "y.jsonl", "c1"]]}) == [
        ("a", "x.jsonl", None),
        ("b", "y.jsonl", "c1"),
    ]


@pytest.mark.parametrize("bad", [{"poll_seconds": 0}, {"batch_seconds": -1}, {"max_seconds": -1}])
def test_nonsense_timing_is_refused(tmp_path, bad):
    with pytest.raises(ValueError):
        run_watch(tmp_path, Clock(), **bad)
