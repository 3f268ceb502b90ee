"""openclaw_nexus.watcher: the real ``CompletionTrigger`` (Airflow's ``BaseEventTrigger``), its ``run()``
driven by asyncio as the triggerer drives it, on tmp state dirs. The asset state store is Airflow's own
accessor; only the channel to the triggerer's supervisor, which a test has no process for, is a stand-in."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from airflow.sdk import Asset, AssetWatcher
from airflow.sdk.execution_time import task_runner
from airflow.sdk.execution_time.comms import SetAssetStateStoreByName
from airflow.sdk.execution_time.context import AssetStateStoreAccessors
from airflow.serialization.decoders import smart_decode_trigger_kwargs
from airflow.serialization.encoders import encode_trigger
from airflow.triggers.base import BaseEventTrigger, TriggerEvent
from structlog.testing import capture_logs

from openclaw_nexus import discovery, stores, watcher
from openclaw_nexus.detector import Detector
from openclaw_nexus.watcher import CompletionTrigger
from tools.demo.sample_state import make_state

FAST = {"poll_seconds": 0.05, "batch_seconds": 1.0, "settle_seconds": 0, "sweep_per_poll": 1}


class Watching:
    """``run()`` consumed in a task, as the triggerer does; cancelled (never ended) on exit."""

    def __init__(self, trigger: CompletionTrigger) -> None:
        self.trigger = trigger
        self.events: list[TriggerEvent] = []
        self._task: asyncio.Task | None = None

    async def __aenter__(self) -> Watching:
        async def consume() -> None:
            async for event in self.trigger.run():
                self.events.append(event)

        self._task = asyncio.create_task(consume())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def running(self) -> bool:
        """``run()`` neither returned nor raised."""
        return self._task is not None and not self._task.done()

    async def until(self, count: int, timeout: float = 60.0) -> list[dict]:
        """The payloads, once ``count`` events came (``timeout``: a guard on the real clock, failing)."""
        await wait_for(lambda: len(self.events) >= count or not self.running, f"{count} events", timeout)
        assert self.running, "run() ended"
        return [event.payload for event in self.events]


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    """Wait until ``condition()`` holds; fail, naming ``what``, if it has not after ``timeout`` seconds of
    the real clock (a guard against a hang, never what a test asserts)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        await asyncio.sleep(0.01)


class Polls:
    """The detector's polls, counted (``Detector.poll`` wrapped), so that a test waits for a number of
    polls, not for a time. ``seen`` records ``probe()`` as each poll starts (what the trigger had done by
    the end of the poll before); ``then(signals)`` runs after each poll, in its thread; ``step`` moves the
    event loop's clock (on which the trigger measures its health interval) forward by that many seconds at
    each poll, once :meth:`clock` installed it, so that an interval is a number of polls."""

    def __init__(self, monkeypatch, probe: Callable[[], object] = lambda: None, step: float = 0.0) -> None:
        self.started = 0
        self.seen: list[object] = []
        self.then: Callable[[list], None] = lambda signals: None
        self.step = step
        self.moved = 0.0
        real = Detector.poll

        def poll(detector: Detector):
            self.seen.append(probe())
            self.started += 1
            self.moved += self.step
            result = real(detector)
            self.then(result.signals)
            return result

        monkeypatch.setattr(Detector, "poll", poll)

    def clock(self) -> None:
        """The running loop's clock: its own plus the steps taken so far."""
        loop = asyncio.get_running_loop()
        own = loop.time
        loop.time = lambda: own() + self.moved  # type: ignore[method-assign]

    async def until(self, count: int) -> None:
        """Until poll number ``count`` has started: every poll before it ended and was acted on."""
        await wait_for(lambda: self.started >= count, f"poll {count}")


class Supervisor:
    """Stands in for the triggerer's channel to its supervisor (``task_runner.SUPERVISOR_COMMS``, which
    the triggerer sets in its trigger runner): it records what Airflow's accessor sends."""

    def __init__(self) -> None:
        self.sent: list = []

    async def asend(self, message):
        self.sent.append(message)


def said(logs: list[dict], text: str) -> list[dict]:
    """The captured log entries whose message contains ``text`` (structlog formats ``%s`` arguments in
    place, or keeps them as ``positional_args`` when so configured)."""

    def message(entry: dict) -> str:
        args = entry.get("positional_args")
        return entry["event"] % tuple(args) if args else entry["event"]

    return [{**entry, "message": message(entry)} for entry in logs if text in message(entry)]


def sessions(state: Path, agent: str) -> Path:
    return discovery.sessions_dir_of(state, agent)


def end_main_session(state: Path, agent: str) -> None:
    """OpenClaw drops the agent's main session from its index: its transcript and topic file complete."""
    path = sessions(state, agent) / "sessions.json"
    index = json.loads(path.read_text())
    del index[f"agent:{agent}:main"]
    path.with_name("sessions.json.tmp").write_text(json.dumps(index))
    path.with_name("sessions.json.tmp").replace(path)


def test_one_event_for_each_batch_of_completions_and_none_while_idle(tmp_path, monkeypatch):
    """The first poll's completions make one event; 30 idle polls make none; a completion in ``b`` that
    comes while the batch opened by one in ``a`` is still open (ended right after the poll that signalled
    ``a``) joins that batch: one event for both; 30 more idle polls make none."""
    make_state(tmp_path, ["a", "b", "c"], completed=2)
    trigger = CompletionTrigger(str(tmp_path), **FAST)
    polls = Polls(monkeypatch)

    def end_b_once_a_is_signalled(signals: list) -> None:
        if any(agent == "a" for agent, _, _ in signals):
            polls.then = lambda signals: None
            end_main_session(tmp_path, "b")

    async def scenario() -> list[dict]:
        async with Watching(trigger) as watching:
            await watching.until(1)  # the first poll: everything pending
            await polls.until(polls.started + 30)
            assert len(watching.events) == 1, "an idle state dir raised an event"
            polls.then = end_b_once_a_is_signalled
            end_main_session(tmp_path, "a")
            await watching.until(2)
            await polls.until(polls.started + 30)
            return await watching.until(2)

    payloads = asyncio.run(scenario())
    assert payloads == [
        {"completions": 6, "agents": ["a", "b", "c"]},
        {"completions": 4, "agents": ["a", "b"]},  # b ended while a's batch was open: one event
    ]


def test_the_state_dir_defaults_to_openclaw_state_dir_read_in_the_triggerer(tmp_path, monkeypatch):
    make_state(tmp_path, ["main"], completed=1)
    trigger = CompletionTrigger(**FAST)
    monkeypatch.setenv("OPENCLAW_STATE_DIR", str(tmp_path))  # after the parse, as on a triggerer

    async def scenario() -> list[dict]:
        async with Watching(trigger) as watching:
            return await watching.until(1)

    assert asyncio.run(scenario()) == [{"completions": 1, "agents": ["main"]}]


def test_the_watcher_survives_a_scan_that_raises_and_a_poll_that_raises(tmp_path, monkeypatch):
    make_state(tmp_path, ["a", "c"], completed=2)
    real_scan, real_poll = stores.scan_agent, Detector.poll
    broken = {"c"}
    polls = []

    def scan_agent(state_dir, agent, window, **kwargs):
        if agent in broken:
            raise PermissionError(13, "Permission denied")
        return real_scan(state_dir, agent, window, **kwargs)

    def poll(self):
        polls.append(1)
        if len(polls) in (3, 4):
            raise RuntimeError("the detector itself failed")
        return real_poll(self)

    monkeypatch.setattr(stores, "scan_agent", scan_agent)
    monkeypatch.setattr(Detector, "poll", poll)
    trigger = CompletionTrigger(str(tmp_path), **{**FAST, "batch_seconds": 0.0})

    async def scenario() -> list[dict]:
        async with Watching(trigger) as watching:
            await watching.until(1)
            await wait_for(lambda: len(polls) >= 5, "poll 5")  # polls 3 and 4 raised, c's scan still raises
            broken.clear()
            return await watching.until(2)

    with capture_logs() as logs:
        payloads = asyncio.run(scenario())
    assert payloads == [{"completions": 2, "agents": ["a"]}, {"completions": 2, "agents": ["c"]}]
    failures = said(logs, "RuntimeError: the detector itself failed")
    assert len(failures) == 1 and failures[0]["log_level"] == "warning", "a lasting failure is logged once"
    assert len(said(logs, "poll works again")) == 1


def watched_asset(trigger: CompletionTrigger, monkeypatch) -> Supervisor:
    """Give the trigger its asset state store as the triggerer does for a watcher of one asset
    (``triggerer_job_runner``, Airflow 3.3); returns what stands in for the supervisor."""
    supervisor = Supervisor()
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    trigger.asset_state_store = AssetStateStoreAccessors(
        inlets=[Asset(name="openclaw_sessions", uri="openclaw://sessions")]
    )
    return supervisor


def test_health_goes_to_the_asset_state_store_on_each_event_not_on_each_poll(tmp_path, monkeypatch):
    """One write for the first event, none over 30 idle polls (the periodic write is out of reach), one for
    the next event."""
    make_state(tmp_path, ["a", "b"], completed=1)
    monkeypatch.setattr(watcher, "HEALTH_EVERY_SECONDS", 1e9)
    trigger = CompletionTrigger(str(tmp_path), **{**FAST, "batch_seconds": 0.0})
    supervisor = watched_asset(trigger, monkeypatch)
    polls = Polls(monkeypatch)

    async def scenario() -> list[int]:
        async with Watching(trigger) as watching:
            await watching.until(1)
            await polls.until(polls.started + 1)  # the event's iteration ended
            writes = [len(supervisor.sent)]
            await polls.until(polls.started + 30)
            writes.append(len(supervisor.sent))
            end_main_session(tmp_path, "a")
            await watching.until(2)
            await polls.until(polls.started + 1)
            return [*writes, len(supervisor.sent)]

    assert asyncio.run(scenario()) == [1, 1, 2]
    assert all(isinstance(m, SetAssetStateStoreByName) for m in supervisor.sent)
    assert {(m.name, m.key) for m in supervisor.sent} == {("openclaw_sessions", "watcher")}
    first, last = supervisor.sent[0].value, supervisor.sent[-1].value
    assert set(first) == {"started", "lastPoll", "lastEvent", "pending"}
    assert first["pending"] == 2 and first["lastEvent"] is not None
    assert last["pending"] == 4 and last["lastEvent"] >= first["lastEvent"]
    assert last["started"] == first["started"] and last["lastPoll"] >= first["lastPoll"]


def test_while_idle_health_is_written_once_an_interval(tmp_path, monkeypatch):
    """Idle, health is written at the first poll, then once ``HEALTH_EVERY_SECONDS`` of the loop's clock
    have passed since the last write. Each poll moves that clock a quarter interval (and the real time
    between polls adds far less than another quarter), so an interval is four polls: writes after polls
    1, 5, 9, 13, whatever the machine's speed. Counted as each poll starts."""
    make_state(tmp_path, ["a"], completed=0)
    monkeypatch.setattr(watcher, "HEALTH_EVERY_SECONDS", 4000.0)
    trigger = CompletionTrigger(str(tmp_path), **FAST)
    supervisor = watched_asset(trigger, monkeypatch)
    polls = Polls(monkeypatch, probe=lambda: len(supervisor.sent), step=1000.0)

    async def scenario() -> None:
        polls.clock()
        async with Watching(trigger) as watching:
            await polls.until(15)
            assert watching.running and watching.events == []

    asyncio.run(scenario())
    # Writes done before each poll started: none before the first, one after it, one more every 4 polls.
    assert polls.seen[:15] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4]
    assert supervisor.sent[-1].value["pending"] == 0 and supervisor.sent[-1].value["lastEvent"] is None


def test_without_an_asset_state_store_it_says_so_once(tmp_path, monkeypatch):
    make_state(tmp_path, ["a"], completed=1)
    monkeypatch.setattr(watcher, "HEALTH_EVERY_SECONDS", 100.0)
    trigger = CompletionTrigger(str(tmp_path), **FAST)
    del trigger.asset_state_store  # as on Airflow before 3.3, whose BaseEventTrigger has none
    polls = Polls(monkeypatch, step=100.0)  # an interval at every poll: a health write each time

    async def scenario() -> None:
        polls.clock()
        async with Watching(trigger) as watching:
            await watching.until(1)
            await polls.until(polls.started + 8)

    with capture_logs() as logs:
        asyncio.run(scenario())
    missing = said(logs, "no asset state store")
    assert len(missing) == 1 and missing[0]["log_level"] == "info"
    assert len(said(logs, "watcher started")) == 1
    assert [entry["message"] for entry in said(logs, "watcher event")] == [
        "watcher event: 1 completions from a"
    ]


def test_serialize_round_trips_to_the_same_trigger():
    trigger = CompletionTrigger(
        "/srv/openclaw",
        poll_seconds=2,
        batch_seconds=1,
        settle_seconds=60,
        sweep_per_poll=3,
        duty=0.5,
        db_settle_seconds=5,
    )
    assert isinstance(trigger, BaseEventTrigger)
    classpath, kwargs = trigger.serialize()
    assert classpath == "openclaw_nexus.watcher.CompletionTrigger"
    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is CompletionTrigger  # as the triggerer loads it
    assert kwargs == {
        "state_dir": "/srv/openclaw",
        "poll_seconds": 2.0,
        "batch_seconds": 1.0,
        "settle_seconds": 60.0,
        "db_settle_seconds": 5.0,
        "sweep_per_poll": 3,
        "duty": 0.5,
    }
    again = CompletionTrigger(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert BaseEventTrigger.hash(*again.serialize()) == BaseEventTrigger.hash(classpath, kwargs)
    assert json.loads(json.dumps(kwargs)) == kwargs, "primitive kwargs only"
    # The way it travels: encoded with the DAG, decoded in the triggerer (Airflow 3.3's own functions).
    encoded = encode_trigger(trigger)
    decoded = {key: smart_decode_trigger_kwargs(value) for key, value in encoded["kwargs"].items()}
    assert encoded["classpath"] == classpath and CompletionTrigger(**decoded).serialize() == (
        classpath,
        kwargs,
    )
    assert Asset("openclaw_sessions", watchers=[AssetWatcher(name="completions", trigger=trigger)])

    default = CompletionTrigger()
    assert default.serialize()[1]["state_dir"] is None
    assert CompletionTrigger(**default.serialize()[1]).serialize() == default.serialize()


@pytest.mark.parametrize(
    "bad",
    [
        {"poll_seconds": 0},
        {"batch_seconds": -1},
        {"settle_seconds": -1},
        {"db_settle_seconds": -1},
        {"sweep_per_poll": -1},
        {"duty": 0},
    ],
)
def test_a_trigger_that_could_not_work_fails_at_parse_time(bad):
    with pytest.raises(ValueError):
        CompletionTrigger(**bad)
