"""The completion watcher's faults: the triggerer SIGKILLed, the DAG paused, two
triggerers on one metadata DB. ("A session that fails permanently does not make runs loop" is in
``test_completions.py``.)

All three on the watcher stack of this folder (``watcher_stack``, tests/stack/conftest.py), after
``test_completions.py``: the embedded default with its triggerer, the watcher and the settle times as
shipped, the DAG unpaused on a yearly cron, so every run is one the watcher started and nothing reaches
Nexus by the cron. The scenarios run in file order, each on its own agent of that stack's state dir
(``crash``, ``paused``, ``ha``): agent databases OpenClaw 2026.9.6's doctor wrote (from the generator's
JSONL agents), whose live sessions the tests archive the way ``openclaw sessions archive`` does
(``archived_at``, one write transaction through Node's SQLite: ``tests.openclaw_writer.Writer``). Each counts
the runs, events and requests since it began. A database completion needs no settle time, so each
scenario's wait is Airflow's, not the settle's. They come last on that stack: they kill its triggerer and
start a second one.

What Airflow 3.3.2 does, read in ``airflow/jobs/triggerer_job_runner.py`` (``load_triggers``) and
``airflow/models/trigger.py`` (``assign_unassigned``, ``get_sorted_triggers``, ``ids_for_triggerer``):
every triggerer, about once a second, claims triggers whose ``triggerer_id`` is empty or names a job that
is not alive (no heartbeat within ``triggerer_health_check_threshold``, 30 s), up to its capacity, asset
triggers last and at most ``max_trigger_to_select_per_loop`` a loop, then runs exactly the triggers
assigned to its own job id (and cancels any it ran that are now assigned elsewhere). So a watcher runs in
ONE triggerer at a time: a killed triggerer's watcher waits until its job's heartbeat is 30 s old, then the
next triggerer to load claims it and starts it afresh (a new ``Detector``, whose first poll signals every
completion still pending); a second healthy triggerer never takes over a watcher a live one holds. (On
SQLite the row lock is a no-op: two triggerers claiming the same dead trigger in the same second could both
start it until the next load, about a second; the DAG's idempotency keys and archive make even that a
duplicate Nexus answers 200, never a second upload. It does not happen here: the second triggerer joins
while the first is alive.)
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.openclaw_writer import Writer
from tests.stack.conftest import WatcherStack, epoch
from tools.stacks.airflow_stack import COMPONENTS, AirflowStack
from tools.standins.nexus import NexusStandin

WATCHER_CLASSPATH = "openclaw_nexus.watcher.CompletionTrigger"
KEYS = ("main", "telegram:direct:42")  # each generated agent's two live sessions
# The goal: everything arrives within restart + 60 s. Asserted with room for a machine other tests share.
RESTART_BOUND = 120.0
# The watcher comes back at the first parse after unpausing (min_file_process_interval 60 s), then polls.
UNPAUSE_BOUND = 180.0
HA_BOUND = 120.0


@dataclass
class Faults:
    watcher: WatcherStack
    writer: Writer

    @property
    def stack(self) -> AirflowStack:
        return self.watcher.stack

    @property
    def nexus(self) -> NexusStandin:
        return self.watcher.nexus

    @property
    def state_dir(self) -> Path:
        return self.watcher.state_dir

    # -- OpenClaw ---------------------------------------------------------------------------------

    def session_ids(self, agent: str) -> dict[str, str]:
        """session key -> the id of its current window."""
        rows = self.writer.query(agent, "SELECT session_key, current_session_id FROM session_nodes")
        return dict(rows)

    def archive(self, agent: str, *keys: str) -> float:
        """Archive these sessions in ONE commit, as ``openclaw sessions archive`` does; its time (epoch s)."""
        stamp = int(time.time() * 1000)
        self.writer.sql(
            agent,
            *[
                (
                    "UPDATE session_nodes SET archived_at = ?, updated_at = ? WHERE session_key = ?",
                    [stamp, stamp, f"agent:{agent}:{key}"],
                )
                for key in keys
            ],
        )
        return stamp / 1000

    def archived_copies(self, agent: str) -> list[str]:
        """The agent's archived copies (``archive/.staging`` is the package's, for uploads in flight)."""
        folder = self.state_dir / "agents" / agent / "sessions" / "archive"
        return sorted(p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))

    # -- Nexus ------------------------------------------------------------------------------------

    def requests(self, agent: str) -> list[dict]:
        return [r for r in self.nexus.requests() if r["agentId"] == agent]

    def accepted_at(self, agent: str, session_ids: list[str]) -> list[float] | None:
        """Every session's first 201 (epoch s), once all of them have one."""
        got = {r["sessionId"]: r["receivedAt"] for r in self.requests(agent) if r["status"] == 201}
        return [got[sid] for sid in session_ids] if all(sid in got for sid in session_ids) else None

    def assert_once(self, agent: str, session_ids: list[str]) -> None:
        """Nexus got each session exactly once (one request, 201, never a duplicate of an idempotency key)
        and the package archived each once (``<id>.jsonl``, no ``<id>+1.jsonl``)."""
        records = self.requests(agent)
        assert sorted(r["sessionId"] for r in records) == sorted(session_ids), records
        assert [(r["status"], r["duplicate"]) for r in records] == [(201, False)] * len(session_ids), records
        keys = [r["idempotencyKey"] for r in records]
        assert len(set(keys)) == len(keys) and all(keys), keys
        assert self.archived_copies(agent) == sorted(f"{sid}.jsonl" for sid in session_ids)

    # -- Airflow ----------------------------------------------------------------------------------

    def runs_since(self, moment: float) -> list[dict]:
        return self.watcher.runs_since(moment)

    def idle(self, timeout: float = 300) -> None:
        self.watcher.idle(timeout)

    def asset_events_since(self, moment: float) -> list[dict]:
        return self.watcher.asset_events_since(moment)

    def metadata(self, sql: str, params: tuple = ()) -> list[tuple]:
        """A read-only look at the metadata DB (SQLite in WAL mode: a reader never blocks Airflow)."""
        uri = f"file:{self.stack.home / 'airflow.db'}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=60)) as db:
            return db.execute(sql, params).fetchall()

    def watcher_triggers(self) -> list[tuple[int, int | None]]:
        """(trigger id, triggerer job id) of every watcher trigger row."""
        return self.metadata(
            "SELECT id, triggerer_id FROM trigger WHERE classpath = ? ORDER BY id", (WATCHER_CLASSPATH,)
        )

    def triggerer_jobs(self) -> list[int]:
        """Ids of the TriggererJobs that are running (not ended) and heartbeated within 30 s."""
        rows = self.metadata(
            "SELECT id, latest_heartbeat FROM job WHERE job_type = 'TriggererJob' AND state = 'running'"
            " AND end_date IS NULL"
        )
        fresh = time.time() - 30
        return sorted(i for i, beat in rows if beat and epoch(beat) > fresh)

    def log(self, component: str) -> str:
        return self.watcher.log(component)

    def kill(self, component: str) -> None:
        """SIGKILL the component's whole process group (the triggerer and its trigger runner), as the OOM
        killer or a lost host would: no clean shutdown, its job row left 'running'."""
        process = self.stack.processes[component]
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)

    def launch(self, component: str) -> None:
        """Start a triggerer the way the stack starts its own (same command, environment, home, logs)."""
        self.stack._launch(component, list(COMPONENTS["triggerer"]))


@pytest.fixture(scope="module")
def faults(watcher_stack: WatcherStack) -> Faults:
    """The watcher stack, its agents ``crash``, ``paused`` and ``ha`` (two live sessions each, in
    databases OpenClaw's doctor wrote) and a writer for them."""
    return Faults(watcher_stack, Writer(watcher_stack.state_dir))


def test_a_killed_triggerer_loses_nothing_once_it_is_restarted(faults):
    """One session archived and the triggerer SIGKILLed straight after the commit (before the watcher's
    next poll, or between its poll and the event's commit); a second archived while it is down. Restarted
    as the stack starts it: its watcher is re-created once the dead job's heartbeat is 30 s old, its first
    poll signals both, and both reach Nexus once each, within restart + 60 s (asserted: RESTART_BOUND)."""
    ids = faults.session_ids("crash")
    sids = [ids[f"agent:crash:{key}"] for key in KEYS]
    ((_, old_job),) = faults.watcher_triggers()
    starts = faults.log("triggerer").count("watcher started")

    faults.archive("crash", KEYS[0])
    faults.kill("triggerer")
    killed = time.time()
    faults.archive("crash", KEYS[1])  # while no triggerer runs
    time.sleep(3)
    assert faults.requests("crash") == [], "nothing can start a run while the triggerer is down"
    faults.launch("triggerer")
    restarted = time.time()

    got = faults.stack.wait_for(
        "both sessions at Nexus", lambda: faults.accepted_at("crash", sids), timeout=RESTART_BOUND + 60
    )
    back = faults.log("triggerer").count("watcher started")
    print(
        f"\ntriggerer SIGKILLed, restarted {restarted - killed:.1f}s later: sessions at Nexus"
        f" {max(got) - restarted:.1f}s after the restart (each: {[round(t - restarted, 1) for t in got]})"
    )
    assert max(got) - restarted <= RESTART_BOUND
    faults.idle()
    faults.assert_once("crash", sids)
    runs = faults.runs_since(killed)
    assert runs and all(r["run_type"] == "asset_triggered" and r["state"] == "success" for r in runs), runs
    assert back == starts + 1, "the watcher started again, in the new triggerer"
    ((_, new_job),) = faults.watcher_triggers()
    assert new_job != old_job and new_job in faults.triggerer_jobs(), (old_job, new_job)


def test_a_paused_dag_moves_nothing_and_catches_up_once_unpaused(faults):
    """Paused: a session archived at once (the watcher may still signal it: an asset event, no run) and
    one after Airflow removed the watcher (at the next parse) start no run and reach Nexus not at all.
    Unpaused: the watcher is back at the next parse, its first poll signals both, and both arrive once."""
    ids = faults.session_ids("paused")
    sids = [ids[f"agent:paused:{key}"] for key in KEYS]
    faults.stack.set_paused(True)
    paused = time.time()
    faults.archive("paused", KEYS[0])
    faults.stack.wait_for("the watcher removed", lambda: not faults.watcher_triggers(), timeout=150)
    removed = time.time()
    faults.archive("paused", KEYS[1])
    # Unpaused, a database completion reaches Nexus in 12-15 s (test_completions.py): hold 40 s after the
    # first commit, and at least 15 s after the second (a watcher signals within a poll and a batch, 13 s).
    time.sleep(max(15.0, paused + 40 - time.time()))
    assert faults.runs_since(paused) == [], "a run started while the DAG was paused"
    assert faults.requests("paused") == []
    faults.stack.set_paused(False)
    unpaused = time.time()

    got = faults.stack.wait_for(
        "both sessions at Nexus", lambda: faults.accepted_at("paused", sids), timeout=UNPAUSE_BOUND + 60
    )
    print(
        f"\npaused: watcher removed {removed - paused:.1f}s after pausing, no run for"
        f" {unpaused - paused:.1f}s; sessions at Nexus {max(got) - unpaused:.1f}s after unpausing"
    )
    assert max(got) - unpaused <= UNPAUSE_BOUND
    faults.idle()
    faults.assert_once("paused", sids)
    runs = faults.runs_since(paused)
    assert all(epoch(r["queued_at"]) >= unpaused for r in runs), runs
    assert runs and all(r["run_type"] == "asset_triggered" and r["state"] == "success" for r in runs), runs
    assert len(faults.watcher_triggers()) == 1


def test_two_triggerers_upload_each_completion_once(faults):
    """A second triggerer on the same metadata DB (HA): the watcher stays with the triggerer that holds it
    (the other never starts it), so two sessions archived in one commit make ONE asset event and ONE run,
    and each reaches Nexus once and is archived once."""
    ids = faults.session_ids("ha")
    sids = [ids[f"agent:ha:{key}"] for key in KEYS]
    ((trigger, holder),) = faults.watcher_triggers()
    faults.launch("triggerer-2")
    faults.stack.wait_for("two live triggerer jobs", lambda: len(faults.triggerer_jobs()) == 2, timeout=120)
    (second,) = set(faults.triggerer_jobs()) - {holder}
    time.sleep(5)  # the second one's first loads: it claims nothing a live triggerer holds

    committed = faults.archive("ha", *KEYS)
    got = faults.stack.wait_for(
        "both sessions at Nexus", lambda: faults.accepted_at("ha", sids), timeout=HA_BOUND + 60
    )
    faults.idle()
    time.sleep(20)  # a second watcher's event, if any, would have started a run by now
    faults.idle()
    runs = faults.runs_since(committed)
    events = faults.asset_events_since(committed)
    print(
        f"\ntwo triggerers (jobs {holder} holding the watcher, {second}): sessions at Nexus"
        f" {max(got) - committed:.1f}s after the commit; {len(events)} asset event, {len(runs)} run"
    )
    assert max(got) - committed <= HA_BOUND
    faults.assert_once("ha", sids)
    assert len(events) == 1, events
    assert events[0]["extra"]["payload"] == {"completions": 2, "agents": ["ha"]}
    assert [(r["run_type"], r["state"]) for r in runs] == [("asset_triggered", "success")], runs
    assert faults.watcher_triggers() == [(trigger, holder)], "the watcher stayed where it was"
    assert "watcher started" not in faults.log("triggerer-2")
    assert sorted(faults.triggerer_jobs()) == sorted([holder, second])
