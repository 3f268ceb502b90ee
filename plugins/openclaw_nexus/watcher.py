"""The asset watcher's trigger: it tells Airflow, within seconds, that OpenClaw sessions completed, so a
run can start at once instead of at the next cron tick. Airflow glue over ``detector``.

``CompletionTrigger`` runs in the triggerer, forever: every ``poll_seconds`` it asks a ``Detector`` (in a
thread: the work is blocking file and SQLite reads) what completed since the last look, waits
``batch_seconds`` more to gather what completes at about the same time, and yields one small event
(``{"completions": 3, "agents": ["main"]}``) for the whole batch: never a transcript, a path or a secret.
The run an event starts scans for its work itself (the DAG's ``discover``); the event says only that
there is some. A trigger that returns or raises is replaced at the next DAG parse, so ``run`` does
neither: every failure is logged, and polling goes on.

Its state lives in memory; a triggerer restart starts a fresh detector, whose first poll signals every
completion still pending, so nothing waits for the cron run after a restart. Health: "watcher started"
and each event in the triggerer's log; on Airflow 3.3+ also ``{"started", "lastPoll", "lastEvent",
"pending"}`` under the key ``watcher`` in the watched asset's state store (a metadata-DB write, so at
start, on each event, and otherwise at most once a minute; a trigger shared by several assets has no
single store, and says so in the log).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from openclaw_nexus import config, metrics
from openclaw_nexus.detector import Detector, Key, Poll

# What the triggerer imports (from the installed distribution), however this module was loaded here.
CLASSPATH = "openclaw_nexus.watcher.CompletionTrigger"
HEALTH_KEY = "watcher"
HEALTH_EVERY_SECONDS = 60.0


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class CompletionTrigger(BaseEventTrigger):
    """Fires when OpenClaw sessions under ``state_dir`` complete (None: ``$OPENCLAW_STATE_DIR``, read in
    the triggerer). ``settle_seconds`` (files) and ``db_settle_seconds`` (database commits) must be the
    DAG's settle times, so that the run an event starts takes what the event announced; ``sweep_per_poll``
    and ``duty``: see ``detector.Detector``."""

    def __init__(
        self,
        state_dir: str | None = None,
        poll_seconds: float = 10.0,
        batch_seconds: float = 3.0,
        settle_seconds: float = 60.0,
        sweep_per_poll: int = 4,
        duty: float = 0.2,
        db_settle_seconds: float = 0.0,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's BaseTrigger.__init__ is unannotated
        if poll_seconds <= 0 or batch_seconds < 0 or settle_seconds < 0 or db_settle_seconds < 0:
            raise ValueError("poll_seconds must be above 0; batch_seconds and the settle times 0 or more")
        if sweep_per_poll < 0 or not 0 < duty <= 1:
            raise ValueError("sweep_per_poll must be 0 or more and duty in (0, 1]")
        self.state_dir = None if state_dir is None else str(state_dir)
        self.poll_seconds = float(poll_seconds)
        self.batch_seconds = float(batch_seconds)
        self.settle_seconds = float(settle_seconds)
        self.db_settle_seconds = float(db_settle_seconds)
        self.sweep_per_poll = int(sweep_per_poll)
        self.duty = float(duty)
        self._detector: Detector | None = None
        self._troubles: dict[str, str | None] = {}  # what went wrong last, by what ("poll", "store")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            CLASSPATH,
            {
                "state_dir": self.state_dir,
                "poll_seconds": self.poll_seconds,
                "batch_seconds": self.batch_seconds,
                "settle_seconds": self.settle_seconds,
                "db_settle_seconds": self.db_settle_seconds,
                "sweep_per_poll": self.sweep_per_poll,
                "duty": self.duty,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll forever; one ``TriggerEvent`` per batch of completions. Never returns, never raises."""
        loop = asyncio.get_running_loop()
        health: dict[str, Any] = {"started": _now(), "lastPoll": None, "lastEvent": None, "pending": 0}
        written: float | None = None
        self.log.info(
            "watcher started: %s, polling every %s s, batching %s s, settle %s s (files), %s s (database)",
            self.state_dir or f"${config.STATE_DIR_ENV}",
            self.poll_seconds,
            self.batch_seconds,
            self.settle_seconds,
            self.db_settle_seconds,
        )
        while True:
            batch = await self._poll(health)
            if batch:
                deadline = loop.time() + self.batch_seconds
                while (left := deadline - loop.time()) > 0:
                    await asyncio.sleep(min(left, self.poll_seconds))
                    batch += await self._poll(health)
                agents = sorted({agent for agent, _, _ in batch})
                self.log.info("watcher event: %d completions from %s", len(batch), ", ".join(agents))
                health["lastEvent"] = _now()
                metrics.watcher_event()
                yield TriggerEvent({"completions": len(batch), "agents": agents})
            if batch or written is None or loop.time() - written >= HEALTH_EVERY_SECONDS:
                await self._write_health(health)
                written = loop.time()
            await asyncio.sleep(self.poll_seconds)

    async def _poll(self, health: dict[str, Any]) -> list[Key]:
        """One poll in a thread; what it signalled, or nothing when it failed (logged once per reason)."""
        try:
            if self._detector is None:
                self._detector = Detector(
                    self.state_dir or config.state_dir(),
                    settle_seconds=self.settle_seconds,
                    db_settle_seconds=self.db_settle_seconds,
                    sweep_per_poll=self.sweep_per_poll,
                    duty=self.duty,
                )
                self.log.info("watcher: watching %s", self._detector.state_dir)
            poll: Poll = await asyncio.to_thread(self._detector.poll)
        except Exception as exc:
            self._trouble("poll", f"{type(exc).__name__}: {exc}", exc)
            return []
        self._trouble("poll", None)
        health["lastPoll"] = _now()
        health["pending"] = self._detector.pending
        if poll.again:
            self.log.info(
                "watcher: a run archived completions and stopped; %d still pending, signalled again",
                len(poll.again),
            )
        return poll.signals

    async def _write_health(self, health: dict[str, Any]) -> None:
        """``health`` into the asset state store (Airflow 3.3+), when the triggerer gave this trigger one."""
        store = getattr(self, "asset_state_store", None)
        if store is None:
            self._trouble(
                "store",
                "no asset state store (Airflow 3.3+ gives watchers one): health only in this log",
                quiet=True,
            )
            return
        try:
            await store.aset(HEALTH_KEY, dict(health))
        except Exception as exc:  # e.g. one trigger watching several assets: no single store to write
            self._trouble(
                "store", f"health not written to the asset state store: {type(exc).__name__}: {exc}"
            )
        else:
            self._trouble("store", None)

    def _trouble(
        self, what: str, problem: str | None, exc: Exception | None = None, *, quiet: bool = False
    ) -> None:
        """Log a problem when it starts or changes, and when it ends; a lasting one once (``quiet``: as
        information, not a warning)."""
        if problem == self._troubles.get(what):
            return
        if problem is not None and quiet:
            self.log.info("watcher: %s: %s", what, problem)
        elif problem is not None:
            self.log.warning(
                "watcher: %s: %s%s", what, problem, "; polling on" if what == "poll" else "", exc_info=exc
            )
        else:
            self.log.info("watcher: %s works again", what)
        self._troubles[what] = problem
