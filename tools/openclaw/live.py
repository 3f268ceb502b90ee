"""A *live* OpenClaw 2026.9.6 state, produced by its gateway while a turn is in flight (not cached: a
held turn is a running process).

    with held_state(workdir, while_held) as live:   # the gateway stops when the block ends
        live.produced, live.held, live.exports ...

One agent, ``live``, through one gateway (offline: the model is :class:`HoldingStandIn`, the loopback
stand-in of :mod:`tools.standins.model` that holds back its answer to a prompt containing ``HOLD-REPLY``
until released). Everything is written by OpenClaw's own chat client (``GatewayChatClient``, driven by
``tools/openclaw/chat.mjs``, as in :mod:`tools.openclaw.fixture`), on the chat path (``chat.send``):

- ``agent:live:done``: two turns, ``/compact`` (OpenClaw 2026.9.6 appends a ``compaction`` event to the
  same session, same window), a turn, then archived (``openclaw sessions archive``): a completed session;
- ``agent:live:busy``: a turn, ``/new`` (a reset event: the first conversation is finished), a turn, then
  a prompt the model holds (its run is in flight: OpenClaw marks the window ``status = 'running'``), and,
  from a second client connection, a message sent while that run is in flight (OpenClaw accepts it into
  ``session_pending_inputs`` with ``state = 'queued'``).

While the turn is held, ``while_held(state_dir)`` is called (the scan under test runs there) and OpenClaw's
own rows are read read-only into ``live.held`` (``windowStatus``, ``pendingInputs``, the busy node's
``currentSessionId``). Then the model is released, both sends must end, and OpenClaw deletes both sessions
through the gateway (``openclaw sessions delete``): its ``<sid>.jsonl.deleted.<ts>.<32 hex>.zst`` exports,
decompressed, are ``live.exports[sid]`` — the oracle for the bytes (OpenClaw's own export, not a reader of
ours). ``live.produced`` says ``yes…`` or ``no: <what was found>`` for ``compaction``, ``running``,
``queued``, ``reset``, ``archived``, ``exports``; a test fails with that reason when a piece it needs is
missing.

**What OpenClaw 2026.9.6 cannot produce: a compaction checkpoint.** Its ``compactionCheckpoints`` entry
field is retired: ``RETIRED_SESSION_SLOT_KEYS`` (``dist/session-entry-slot-keys-*.mjs``) lists it,
``stripPrivateSessionEntryFields`` (``dist/session-accessor.sqlite-transcript-write-*.mjs``) deletes it
from every public projection, and the only readers left are ``readLegacyCompactionHistory``
(``dist/legacy-compaction-history-*.mjs``: "Preserve token metrics saved by pre-removal builds") and the
maintenance reference projection (``readReferencedSessionIds``, ``dist/session-accessor.sqlite-lifecycle-
state-*.mjs``). No 2026.9.6 code path writes it: compaction (``/compact``, ``sessions.compact``, automatic)
appends a ``{"type":"compaction",…}`` event inside the open session. Checkpoints exist in an agent
database only when a pre-removal release wrote them into ``sessions.json`` and 2026.9.6 imported it:
:func:`tools.openclaw.checkpoint.checkpoint_state` builds exactly that (OpenClaw 2026.7.35's
``sessions.compact`` and ``sessions.reset``, then 2026.9.6's doctor; cached).

A running window or a queued input, as OpenClaw's gateway produces them, always belongs to the node's
current session: archiving and deleting first drain the session's runs (``prepareSessionLifecycleDrain``
in ``dist/sessions-mutations-*.mjs`` answers "Session … is still active; retry the archive."), and a reset
aborts the run (``abortEmbeddedAgentRun`` in ``dist/session-reset-service-*.mjs``).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tools.openclaw.fixture import (
    HEARTBEAT_OFF,
    OpenClaw,
    _ChatClient,
    _deleted_exports,
    _model_config,
    agent_database,
    read_only,
    zst_bytes,
)
from tools.standins.model import INTERNAL_CONTEXT, MODEL_ID, StandIn, _Handler, _text

AGENT = "live"
K_DONE = f"agent:{AGENT}:done"
K_BUSY = f"agent:{AGENT}:busy"
HOLD_MARKER = "HOLD-REPLY"
PIECES = ("compaction", "reset", "archived", "running", "queued", "exports")


class _HoldingHandler(_Handler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        server: HoldingStandIn = self.server  # type: ignore[assignment]
        if server.holds(raw):
            server.held.set()
            server.release.wait(timeout=server.hold_timeout)
        self.rfile = io.BytesIO(raw)
        super().do_POST()


class HoldingStandIn(StandIn):
    """The model stand-in; the first request whose last user prompt contains ``HOLD-REPLY`` is answered
    only after :attr:`release` is set (at most ``hold_timeout`` seconds). :attr:`held` is set once that
    request has arrived."""

    def __init__(self, hold_timeout: float = 600) -> None:
        super().__init__()
        self.RequestHandlerClass = _HoldingHandler
        self.held = threading.Event()
        self.release = threading.Event()
        self.hold_timeout = hold_timeout
        self._holding = False

    def holds(self, raw: bytes) -> bool:
        try:
            messages = json.loads(raw or b"{}").get("messages") or []
        except ValueError:
            return False
        users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
        prompts = [u for u in users if not u.lstrip().startswith(INTERNAL_CONTEXT)]
        with self.lock:
            if self._holding or not prompts or HOLD_MARKER not in prompts[-1]:
                return False
            self._holding = True
            return True


@dataclass
class LiveState:
    state_dir: Path
    produced: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, str] = field(default_factory=dict)  # key → sessionId
    held: dict[str, Any] = field(default_factory=dict)  # OpenClaw's rows while the turn was held
    exports: dict[str, bytes] = field(default_factory=dict)  # sessionId → OpenClaw's deletion export
    answers: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    scan: Any = None  # what while_held returned

    def missing(self, *pieces: str) -> list[str]:
        return [
            f"{p}: {self.produced.get(p, 'no: not attempted')}"
            for p in pieces
            if not self.produced.get(p, "").startswith("yes")
        ]


def _config(base_url: str) -> dict:
    return {
        "models": _model_config(base_url),
        "agents": {
            "defaults": {"model": {"primary": f"standin/{MODEL_ID}"}, "heartbeat": HEARTBEAT_OFF},
            "entries": {AGENT: {}},
        },
        "cron": {"enabled": False},
        "plugins": {"entries": {"memory-core": {"config": {"dreaming": {"enabled": False}}}}},
        "skills": {"workshop": {"autonomous": {"mode": "off"}}},
    }


def _rows(database: Path, sql: str, params: tuple = ()) -> list[tuple]:
    with read_only(database) as db:
        return db.execute(sql, params).fetchall()


def _current(database: Path, key: str) -> str | None:
    rows = _rows(database, "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (key,))
    return rows[0][0] if rows else None


def _event_types(database: Path, sid: str) -> list[str]:
    rows = _rows(
        database,
        "SELECT event_type FROM transcript_event_identities WHERE session_id = ? ORDER BY seq",
        (sid,),
    )
    return [r[0] for r in rows]


def _held_rows(database: Path, sid: str) -> dict[str, Any]:
    status = _rows(database, "SELECT status FROM session_windows WHERE session_id = ?", (sid,))
    pending = _rows(
        database,
        "SELECT state, session_key, message_json FROM session_pending_inputs"
        " WHERE session_id = ? ORDER BY seq",
        (sid,),
    )
    return {
        "windowStatus": status[0][0] if status else None,
        "pendingInputs": [{"state": s, "sessionKey": k, "message": m} for s, k, m in pending],
        "currentSessionId": _current(database, K_BUSY),
    }


@contextlib.contextmanager
def held_state(
    workdir: Path,
    while_held: Callable[[Path], Any] | None = None,
    oc: OpenClaw | None = None,
    hold_seconds: float = 120,
) -> Iterator[LiveState]:
    """Build the live state in ``workdir/state`` (see the module docs); ``while_held(state_dir)`` runs while
    the turn is held and its result is ``live.scan``. Yields once OpenClaw's exports are in; the state dir
    is kept until the block ends."""
    oc = oc or OpenClaw.installed()
    started = time.monotonic()
    workdir = Path(workdir)
    state = workdir / "state"
    state.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="oc-live-"))
    live = LiveState(state)
    database = agent_database(state, AGENT)

    def mark(what: str) -> None:
        live.timings[what] = round(time.monotonic() - started, 1)
        print(f"[openclaw live] {live.timings[what]:6.1f} s  {what}", file=sys.stderr, flush=True)

    server = HoldingStandIn(hold_timeout=hold_seconds + 60).start()
    try:
        with oc.gateway(state, _config(server.base_url), scratch / "gateway") as gw:
            mark("gateway ready")
            client = _ChatClient(gw)
            try:
                _build(client, live, database, server, while_held, hold_seconds, mark)
            finally:
                server.release.set()
                client.close()
        yield live
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)


def _build(
    client: _ChatClient,
    live: LiveState,
    database: Path,
    server: HoldingStandIn,
    while_held: Callable[[Path], Any] | None,
    hold_seconds: float,
    mark: Callable[[str], None],
) -> None:
    # A completed session: turns, /compact, a turn, archived (sessions.patch, as `openclaw sessions archive`).
    for message in ("Done, first turn.", "Done, second turn."):
        client.chat(K_DONE, message)
    done = _current(database, K_DONE) or ""
    live.sessions[K_DONE] = done
    before = _event_types(database, done)
    live.answers["compact"] = client.chat(K_DONE, "/compact")
    after = _event_types(database, done)
    compactions = after.count("compaction") - before.count("compaction")
    live.produced["compaction"] = (
        f"yes: {compactions} compaction event appended to the same session"
        if compactions > 0 and _current(database, K_DONE) == done
        else f"no: /compact answered {json.dumps(live.answers['compact'])[:400]}; "
        f"event types now {after[-6:]}, current session {_current(database, K_DONE)}"
    )
    client.chat(K_DONE, "Done, a turn after the compaction.")
    client.rpc(
        "sessions.patch", {"key": K_DONE, "agentId": AGENT, "expectedSessionId": done, "archived": True}
    )
    archived = _rows(database, "SELECT archived_at FROM session_nodes WHERE session_key = ?", (K_DONE,))
    live.produced["archived"] = (
        "yes" if archived and archived[0][0] is not None else f"no: node row {archived}"
    )
    mark("done: turns, /compact, archived")

    # A live session: a finished conversation (closed by /new), an open one with a turn in flight, and a
    # message sent while it runs.
    for message in ("Busy, first conversation.", "/new", "Busy, second conversation."):
        client.chat(K_BUSY, message)
    busy = _current(database, K_BUSY) or ""
    live.sessions[K_BUSY] = busy
    resets = _event_types(database, busy).count("reset")
    live.produced["reset"] = "yes" if resets == 1 else f"no: {resets} reset events in {busy}"
    timeout = hold_seconds + 120
    held = client.submit(K_BUSY, f"Busy, {HOLD_MARKER}: answer when released.", timeout)
    if not server.held.wait(60):
        raise RuntimeError(f"the held prompt never reached the model: {held(1)}")
    queued = client.submit(K_BUSY, "Busy, sent while the turn runs.", timeout)

    def settled() -> bool:
        rows = _held_rows(database, busy)
        return rows["windowStatus"] == "running" and any(
            p["state"] == "queued" for p in rows["pendingInputs"]
        )

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:
        time.sleep(0.2)
    live.held = _held_rows(database, busy)
    live.produced["running"] = (
        "yes"
        if live.held["windowStatus"] == "running"
        else f"no: window status {live.held['windowStatus']!r}"
    )
    live.produced["queued"] = (
        "yes"
        if any(p["state"] == "queued" for p in live.held["pendingInputs"])
        else f"no: pending inputs {live.held['pendingInputs']}"
    )
    mark("busy: a turn held, a message sent while it runs")
    try:
        if while_held is not None:
            live.scan = while_held(live.state_dir)
        live.held["after"] = _held_rows(database, busy)  # still held when the scan ended
        mark("scanned while held")
    finally:
        server.release.set()
    live.answers["held"] = held(timeout + 30)
    live.answers["queued"] = queued(timeout + 30)
    mark("released; both sends ended")

    # OpenClaw's own exports of both (sessions.delete, as `openclaw sessions delete`).
    sessions_dir = live.state_dir / "agents" / AGENT / "sessions"
    listed = {p.name for p in sessions_dir.glob("*")} if sessions_dir.is_dir() else set()
    for key, sid, archived_only in ((K_DONE, done, True), (K_BUSY, busy, False)):
        params = {"key": key, "agentId": AGENT, "expectedSessionId": sid, "deleteTranscript": True}
        result = client.rpc("sessions.delete", params | ({"archivedOnly": True} if archived_only else {}))
        if not result.get("deleted"):
            raise RuntimeError(f"sessions.delete {key}: {json.dumps(result)[:1000]}")
    exports = _deleted_exports(sessions_dir, listed)
    live.exports = {sid: zst_bytes(path) for sid, path in exports.items()}
    live.produced["exports"] = (
        "yes"
        if {done, busy} <= set(live.exports)
        else f"no: exports of {sorted(exports)}, wanted {done}, {busy}"
    )
    mark("deleted through the gateway: OpenClaw's exports")
