"""A chat agent's state before and after OpenClaw 2026.9.6 rewrites it (truncation, deletion), cached.

    from tools.openclaw.rewrite import apply_rewrite, rewrite_state
    manifest = rewrite_state(dest_dir)            # dest_dir/state: OpenClaw's state before its rewrite
    ...                                           # the package reads it, archives what it sent
    apply_rewrite(dest_dir / "state")             # OpenClaw's files become its state after the rewrite;
                                                  # every agent's sessions/archive/ stays as it was
    manifest = rewrite_state(dest_dir, "after")   # or start from the rewritten state: nothing sent yet

One agent, ``conv``, through one gateway against the model stand-in (``tools/standins/model.py``), every
message sent by OpenClaw's own chat client (``GatewayChatClient``, the TUI's, driven by
``tools/openclaw/chat.mjs``) on the chat path, where ``/new`` appends a reset event to the same session:

- ``agent:conv:talk``: a turn; ``/new``; two turns (the second one's text holds ``kept tail``); ``/new``; a
  turn with a >= 1 KiB answer (stored as ``event_zstd``): conversations ``0`` and two more, the last open;
- ``agent:conv:gone``: a turn; ``/new``; a turn with a compressed answer: two conversations, the last open;
- ``agent:conv:done``: a turn; ``/new``; a turn; then archived (``openclaw sessions archive``): completed.

The gateway stops (a clean shutdown), the build reads what the chats hold (the first read after OpenClaw
closed its database sets up the ``-shm`` file, as any reader's would) and copies the state dir: that copy
is the *before* state. A second gateway on the same state dir then rewrites it:

- ``openclaw sessions compact agent:conv:talk --max-lines N`` (the ``sessions.compact`` RPC with
  ``maxLines``), N = 1 + the rows from the ``kept tail`` message to the end: OpenClaw keeps the header and
  those rows and deletes the rest, the first reset event included (no copy anywhere), renumbers ``seq``
  from 1 and makes the first survivor a root (``parentId`` null). What was conversation one's tail now
  leads the session, before the second reset event;
- ``/new`` on ``talk``: a third reset event, so the conversation the second one opened is finished;
- ``openclaw sessions delete agent:conv:gone agent:conv:done``: both sessions leave the database; OpenClaw
  writes each as ``sessions/<sid>.jsonl.deleted.<ts>.<32 hex>.zst`` and a ``session_transcript_archives``
  row.

What the stopped gateway leaves, read once more, is the *after* state. OpenClaw never reads
``sessions/archive/`` (its maintenance, disk budget, ``sessions cleanup``, doctor and cold storage list
the top level of ``sessions/`` only, as its shipped 2026.9.6 code reads), so what it writes in its rewrite
does not depend on what a reader archived in between: a test reads the before state, archives what it sent
there, and :func:`apply_rewrite` puts OpenClaw's after state around that archive, as if OpenClaw had
rewritten the chat right then. So the slow part, two gateways on 2 cores (about 6 minutes cold on a loaded
machine), runs once and is cached, and a test pays a copy (about a second).

The manifest: per session (``talk``, ``gone``, ``done``) its key, ``sessionId``, its reset events before
and after (event id, reason, seq, ``created_at`` as OpenClaw stored them), the seqs of compressed rows; for
``gone`` and ``done`` the name of OpenClaw's export; ``truncation`` (N, OpenClaw's answer, the first kept
event's id, the vanished reset ids); and ``produced``: ``yes…`` or ``no: <what the build found>`` for
``resets``, ``compressed``, ``archived``, ``truncated``, ``closed``, ``deleted``. A build that lacks a piece
is not cached (:func:`tools.openclaw.fixture.cached_build`) and the tests that need it fail with its
reason. Cached under ``<cache>/fixtures/rewrite-openclaw-<v>-node-<v>-<hash of this module, the stand-in
and the chat driver>``; like ``tools/openclaw/checkpoint.py`` it leaves out the fixture module whose helpers
it calls (the gateway, the CLI's ``sessions archive|delete``), which changes often for the "mixed" build:
a change there that changes what this build writes needs a change here too.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tools.openclaw.fixture import (
    HEARTBEAT_OFF,
    NODE_VERSION,
    OPENCLAW_VERSION,
    OpenClaw,
    _ChatClient,
    _current_session_id,
    _deleted_exports,
    _lifecycle,
    _model_config,
    _reset_events,
    _zstd_seqs,
    agent_database,
    cached_build,
    read_only,
)
from tools.standins.model import LONG_MARKER, MODEL_ID, StandIn

AGENT = "conv"
K_TALK = f"agent:{AGENT}:talk"
K_GONE = f"agent:{AGENT}:gone"
K_DONE = f"agent:{AGENT}:done"
KEPT_TAIL = "kept tail"  # in the message the truncation keeps first
PIECES = ("resets", "compressed", "archived", "truncated", "closed", "deleted")
PHASES = ("before", "after")

SCRIPT = {
    K_TALK: [
        "Talk, first conversation.",
        "/new",
        "Talk, second conversation, first turn.",
        f"Talk, second conversation, the {KEPT_TAIL}.",
        "/new",
        f"Talk, third conversation: {LONG_MARKER} please.",
    ],
    K_GONE: ["Gone, first conversation.", "/new", f"Gone, second conversation: {LONG_MARKER} please."],
    K_DONE: ["Done, first conversation.", "/new", "Done, second conversation."],
}


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


def _rows(database: Path, session_id: str) -> list[tuple[int, str | None]]:
    """(seq, event_json) of the session's rows, by seq (compressed rows: None)."""
    with read_only(database) as db:
        return db.execute(
            "SELECT seq, event_json FROM transcript_events WHERE session_id = ? ORDER BY seq", (session_id,)
        ).fetchall()


def _kept_tail(database: Path, session_id: str) -> tuple[int, str, int]:
    """The ``kept tail`` user message: (its seq, its event id, how many rows from it to the end)."""
    rows = _rows(database, session_id)
    for seq, text in rows:
        if not text:
            continue
        event = json.loads(text)
        message = event.get("message") or {}
        if event.get("type") == "message" and message.get("role") == "user" and KEPT_TAIL in text:
            return seq, event["id"], sum(1 for s, _ in rows if s >= seq)
    raise RuntimeError(f"no user message holding {KEPT_TAIL!r} in {session_id}")


def _session(database: Path, key: str) -> dict[str, Any]:
    sid = _current_session_id(database, key)
    if sid is None:
        return {"key": key, "sessionId": None, "resets": [], "zstdSeqs": []}
    return {
        "key": key,
        "sessionId": sid,
        "resets": _reset_events(database, sid),
        "zstdSeqs": _zstd_seqs(database, sid),
    }


def _write_chats(gw: Any) -> None:
    """The three chats through OpenClaw's chat client; ``done`` archived."""
    chat = _ChatClient(gw)
    try:
        for key, messages in SCRIPT.items():
            for message in messages:
                chat.send(key, message)
    finally:
        chat.close()
    _lifecycle(gw, "archive", AGENT, [K_DONE])


def _read_chats(database: Path, made: dict, produced: dict[str, str]) -> None:
    """What the chats hold, read once OpenClaw closed its database."""
    for name, key in (("talk", K_TALK), ("gone", K_GONE), ("done", K_DONE)):
        made[name] = _session(database, key)
    reasons = {name: [r["reason"] for r in made[name]["resets"]] for name in ("talk", "gone", "done")}
    planned = {"talk": ["new", "new"], "gone": ["new"], "done": ["new"]}
    produced["resets"] = "yes" if reasons == planned else f"no: reset reasons {reasons}, planned {planned}"
    talk, gone = made["talk"], made["gone"]
    inside = {
        "talk": [z for z in talk["zstdSeqs"] if talk["resets"] and z > talk["resets"][-1]["seq"]],
        "gone": [z for z in gone["zstdSeqs"] if gone["resets"] and z > gone["resets"][-1]["seq"]],
    }
    produced["compressed"] = (
        f"yes: seqs {inside}"
        if all(inside.values())
        else f"no: compressed rows after the last reset {inside}"
    )
    with read_only(database) as db:
        row = db.execute("SELECT archived_at FROM session_nodes WHERE session_key = ?", (K_DONE,)).fetchone()
    produced["archived"] = "yes" if row and row[0] is not None else f"no: node row {row}"


def _truncate(gw: Any, database: Path, made: dict, produced: dict[str, str]) -> None:
    """``openclaw sessions compact agent:conv:talk --max-lines N``, checked against OpenClaw's rows."""
    talk = made["talk"]
    sid = talk["sessionId"]
    before_rows = _rows(database, sid)
    seq, first_id, count = _kept_tail(database, sid)
    max_lines = count + 1  # the header, then the rows from the kept tail on
    compact = ["sessions", "compact", K_TALK, "--agent", AGENT, "--max-lines", str(max_lines), "--json"]
    answer = gw.run_json([*compact, "--url", gw.url, "--token", gw.token], timeout=600)
    truncated = _session(database, K_TALK)
    after_rows = _rows(database, sid)
    vanished = [r["id"] for r in talk["resets"] if r["seq"] < seq]
    kept_ids = [r["id"] for r in truncated["resets"]]
    first = json.loads(after_rows[1][1]) if len(after_rows) > 1 and after_rows[1][1] else {}
    checks = {
        "answer": answer.get("ok") is True
        and answer.get("compacted") is True
        and answer.get("kept") == max_lines,
        "same session": truncated["sessionId"] == sid,
        "rows kept": [s for s, _ in after_rows] == list(range(max_lines)),
        "header kept": after_rows[0] == before_rows[0],
        "first kept is a root": first.get("id") == first_id and first.get("parentId", "absent") is None,
        "first reset gone": bool(vanished) and not set(vanished) & set(kept_ids),
        "later reset kept": kept_ids == [r["id"] for r in talk["resets"] if r["seq"] > seq],
    }
    failed = [name for name, ok in checks.items() if not ok]
    produced["truncated"] = (
        f"yes: kept {max_lines} lines from seq {seq}; reset {vanished} deleted, {kept_ids} kept"
        if not failed
        else f"no: {failed}; answer {json.dumps(answer)[:300]}, seqs {[s for s, _ in after_rows]}"
    )
    made["truncation"] = {
        "maxLines": max_lines,
        "answer": answer,
        "firstKeptEventId": first_id,
        "firstKeptSeqBefore": seq,
        "vanishedResets": vanished,
        "keptResets": kept_ids,
    }


def _close_and_delete(gw: Any) -> None:
    """``/new`` on ``talk``; ``gone`` and ``done`` deleted (``openclaw sessions delete``)."""
    chat = _ChatClient(gw)
    try:
        chat.send(K_TALK, "/new")
    finally:
        chat.close()
    _lifecycle(gw, "delete", AGENT, [K_GONE, K_DONE])


def _read_rewrite(
    database: Path, sessions_dir: Path, listed: set[str], made: dict, produced: dict[str, str]
) -> None:
    """What the rewrite left, read once OpenClaw closed its database."""
    talk = made["talk"]
    closed = _session(database, K_TALK)
    produced["closed"] = (
        "yes"
        if closed["sessionId"] == talk["sessionId"]
        and [r["id"] for r in closed["resets"]][:-1] == made["truncation"]["keptResets"]
        and [r["reason"] for r in closed["resets"]][-1:] == ["new"]
        else f"no: resets after /new {closed['resets']}"
    )
    made["talk"] = {
        **talk,
        "resetsBefore": talk["resets"],
        "resets": closed["resets"],
        "zstdSeqs": closed["zstdSeqs"],
    }
    exports = _deleted_exports(sessions_dir, listed) if sessions_dir.is_dir() else {}
    with read_only(database) as db:
        rows = {
            sid: name
            for sid, name in db.execute("SELECT session_id, archive_name FROM session_transcript_archives")
        }
        nodes = {key for (key,) in db.execute("SELECT session_key FROM session_nodes")}
    wanted = {made[name]["sessionId"]: name for name in ("gone", "done")}
    for sid, name in wanted.items():
        made[name]["export"] = exports[sid].name if sid in exports else None
    produced["deleted"] = (
        "yes"
        if set(wanted) <= set(exports)
        and all(rows.get(sid) == exports[sid].name for sid in wanted)
        and not nodes & {K_GONE, K_DONE}
        else f"no: exports {sorted(p.name for p in exports.values())}, archive rows {rows}, "
        f"nodes {sorted(nodes)}"
    )


def _build_rewrite(dest: Path) -> dict:
    """Build ``dest/before/state`` and ``dest/after/state`` (see the module docs); returns the manifest."""
    oc = OpenClaw.installed()
    started = time.monotonic()
    log: list[str] = []

    def note(message: str) -> None:
        log.append(f"{time.monotonic() - started:6.1f} s  {message}")
        print(f"[openclaw rewrite] {log[-1]}", file=sys.stderr, flush=True)

    state = dest / "state"
    state.mkdir(parents=True)
    database = agent_database(state, AGENT)
    sessions_dir = state / "agents" / AGENT / "sessions"
    scratch = Path(tempfile.mkdtemp(prefix="oc-rewrite-"))
    made: dict[str, Any] = {}
    produced: dict[str, str] = {}
    server = StandIn().start()
    try:
        config = _config(server.base_url)
        with oc.gateway(state, config, scratch / "gateway") as gw:
            note("gateway ready")
            _write_chats(gw)
            note("talk, gone, done written; done archived")
        _read_chats(database, made, produced)
        shutil.copytree(state, dest / "before" / "state", symlinks=True)
        note("gateway stopped; before state read and copied")
        listed = {p.name for p in sessions_dir.iterdir()} if sessions_dir.is_dir() else set()
        with oc.gateway(state, config, scratch / "gateway-again") as gw:
            note("gateway ready again")
            _truncate(gw, database, made, produced)
            _close_and_delete(gw)
            note("talk truncated and closed by /new; gone and done deleted")
        _read_rewrite(database, sessions_dir, listed, made, produced)
        (dest / "after").mkdir()
        state.rename(dest / "after" / "state")
        note("gateway stopped; after state read and kept")
    finally:
        server.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "fixture": "rewrite",
        "openclaw": OPENCLAW_VERSION,
        "node": NODE_VERSION,
        "agent": AGENT,
        "sessions": {name: made.get(name, {}) for name in ("talk", "gone", "done")},
        "truncation": made.get("truncation", {}),
        "produced": produced,
        "buildLog": log,
    }


def _rewrite_key() -> str:
    digest = hashlib.sha256()
    tools = Path(__file__).resolve().parents[1]
    for name in ("openclaw/rewrite.py", "openclaw/chat.mjs", "standins/model.py"):
        digest.update((tools / name).read_bytes())
    return f"rewrite-openclaw-{OPENCLAW_VERSION}-node-{NODE_VERSION}-{digest.hexdigest()[:16]}"


def _built() -> Path:
    fixtures = OpenClaw.installed().cache / "fixtures"
    return cached_build(fixtures, _rewrite_key(), "rewrite", _build_rewrite)


def rewrite_state(dest_dir: Path, phase: str = "before") -> dict:
    """Copy OpenClaw's state ``before`` or ``after`` its rewrite (built once, then cached) into
    ``dest_dir/state``, and the manifest into ``dest_dir/manifest.json``; returns the manifest. A build
    that lacks a piece (``manifest["produced"]``) is not cached: the tests fail with its reason."""
    if phase not in PHASES:
        raise ValueError(f"phase {phase!r}: one of {PHASES}")
    built = _built()
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built / phase / "state", dest_dir / "state", symlinks=True)
    shutil.copy2(built / "manifest.json", dest_dir / "manifest.json")
    return json.loads((dest_dir / "manifest.json").read_text())


def apply_rewrite(state_dir: Path) -> None:
    """Make ``state_dir`` (a copy of the before state) OpenClaw's state after its rewrite, keeping what a
    reader wrote there: every agent's ``sessions/archive/`` is set aside, everything else is removed (the
    database with its ``-wal``/``-shm``, OpenClaw's files), the after state is copied in, and the archive
    folders are put back. Run it only while no process has the state dir's database open."""
    state_dir = Path(state_dir)
    built = _built()
    with tempfile.TemporaryDirectory(prefix="oc-rewrite-keep-", dir=state_dir.parent) as keep:
        kept = {}
        for archive in sorted(state_dir.glob("agents/*/sessions/archive")):
            agent = archive.parent.parent.name
            kept[agent] = Path(keep) / agent
            archive.rename(kept[agent])
        for child in list(state_dir.iterdir()):
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        shutil.copytree(built / "after" / "state", state_dir, symlinks=True, dirs_exist_ok=True)
        for agent, folder in kept.items():
            target = state_dir / "agents" / agent / "sessions" / "archive"
            if target.exists():
                raise RuntimeError(f"OpenClaw's after state has {target}: it never writes there")
            target.parent.mkdir(parents=True, exist_ok=True)
            folder.rename(target)
