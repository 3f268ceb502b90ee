"""A compaction checkpoint written by OpenClaw 2026.7.35 and migrated by OpenClaw 2026.9.6, cached.

    from tools.openclaw.checkpoint import checkpoint_state
    manifest = checkpoint_state(dest_dir)   # dest_dir/state, dest_dir/manifest.json

OpenClaw 2026.9.6 writes no compaction checkpoint (see :mod:`tools.openclaw.live`: the entry field is
retired); an agent database holds one only when an older release wrote it into ``sessions.json`` and
2026.9.6 imported it. So OpenClaw 2026.7.35 (JSONL era, :class:`tools.openclaw.legacy.LegacyOpenClaw`,
``openclaw agent`` turns through its gateway against ``tools/standins/model.py``) writes one on
``agent:main:work``: two turns in session S1, ``sessions.compact`` (its ``persistSessionCompactionCheckpoint``
stores ``compactionCheckpoints`` in the entry, ``sessionId``, ``preCompaction.sessionId`` and
``postCompaction.sessionId`` all S1: "Capture the stable pre-compaction identity without duplicating the
transcript", ``dist/run-session-target-*.js``), then ``sessions.reset``: S1's transcript becomes
``<S1>.jsonl.reset.<ts>`` and the entry of the new session S2 carries the checkpoint over
(``compactionCheckpoints: currentEntry?.compactionCheckpoints`` in ``dist/session-reset-service-*.js``); a
turn runs in S2. The gateway stops and OpenClaw 2026.9.6's ``doctor --fix --non-interactive`` migrates the
agent (2026.7.35's global ``state/openclaw.sqlite`` needs its schema migration too, which ``doctor
--session-sqlite import`` refuses): the entry, checkpoint included, becomes ``session_nodes.entry_json``
(current session S2) and the ``.reset.`` file stays in ``sessions/`` as 2026.7.35 wrote it.

The manifest: ``first`` (S1), ``second`` (S2), ``resetFile`` with its ``resetSha256`` and ``resetBytes``
(read before the migration), and ``produced``: ``yes`` or ``no: <what was found>`` for ``checkpoint``,
``reset``, ``carried`` and ``migrated``. Cached under ``<cache>/fixtures/checkpoint-…-<hash of this module
and the stand-in>`` (the manifest records the build's ``buildSeconds``); a build that lacks a piece is
not cached.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tools.openclaw.fixture import (
    NODE_VERSION,
    OPENCLAW_VERSION,
    OpenClaw,
    agent_database,
    cached_build,
    copy_build,
    read_only,
)
from tools.openclaw.legacy import LegacyOpenClaw, _call, _turn, gateway_config
from tools.standins.model import StandIn

CHECKPOINT_AGENT = "main"
K_WORK = f"agent:{CHECKPOINT_AGENT}:work"
CHECKPOINT_PIECES = ("checkpoint", "reset", "carried", "migrated")


def _checkpoint_key() -> str:
    digest = hashlib.sha256()
    tools = Path(__file__).resolve().parents[1]
    for name in ("openclaw/checkpoint.py", "standins/model.py"):
        digest.update((tools / name).read_bytes())
    return (
        f"checkpoint-openclaw-2026.7.35-to-{OPENCLAW_VERSION}-node-{NODE_VERSION}-{digest.hexdigest()[:16]}"
    )


def _entry(state: Path, key: str) -> dict:
    index = state / "agents" / CHECKPOINT_AGENT / "sessions" / "sessions.json"
    return json.loads(index.read_text()).get(key, {}) if index.exists() else {}


def _named_by_checkpoints(entry: dict) -> set[str]:
    ids = set()
    for point in entry.get("compactionCheckpoints") or []:
        ids |= {point.get("sessionId"), (point.get("preCompaction") or {}).get("sessionId")}
        ids.add((point.get("postCompaction") or {}).get("sessionId"))
    return ids - {None}


def _build_checkpoint(dest: Path) -> dict:
    """OpenClaw 2026.7.35 (JSONL era) writes a compaction checkpoint (``sessions.compact`` on
    ``agent:main:work``: ``compactionCheckpoints`` in its ``sessions.json`` entry, naming the compacted
    session S1), then ``sessions.reset`` starts S2 and renames S1's transcript ``<S1>.jsonl.reset.<ts>``,
    the new entry carrying the checkpoint over (``compactionCheckpoints:
    currentEntry?.compactionCheckpoints`` in its ``dist/session-reset-service-*.js``); a turn runs in S2.
    Then OpenClaw 2026.9.6's ``doctor --fix --non-interactive`` migrates the agent: the entry, checkpoint
    included, becomes ``session_nodes.entry_json`` (current session S2) and the ``.reset.`` file stays in
    ``sessions/`` (not imported)."""
    state = dest / "state"
    state.mkdir(parents=True)
    sessions = state / "agents" / CHECKPOINT_AGENT / "sessions"
    scratch = Path(tempfile.mkdtemp(prefix="oc-checkpoint-"))
    produced: dict[str, str] = {}
    made: dict[str, Any] = {}
    try:
        server = StandIn().start()
        try:
            config = gateway_config(server.base_url)
            with LegacyOpenClaw.installed().gateway(state, config, scratch / "gateway") as gw:
                first = _turn(gw, K_WORK, "Work, first turn.")
                _turn(gw, K_WORK, "Work, second turn.")
                made["compact"] = _call(gw, "sessions.compact", {"key": K_WORK})
                named = _named_by_checkpoints(_entry(state, K_WORK))
                produced["checkpoint"] = (
                    f"yes: compactionCheckpoints name {first}"
                    if first in named
                    else f"no: sessions.compact answered {json.dumps(made['compact'])[:300]}; "
                    f"checkpoints name {named}"
                )
                _call(gw, "sessions.reset", {"key": K_WORK})
                second = _turn(gw, K_WORK, "Work, after the reset.")
                entry = _entry(state, K_WORK)
                resets = sorted(p.name for p in sessions.glob(f"{first}.jsonl.reset.*"))
                produced["reset"] = (
                    f"yes: {resets[0]}"
                    if len(resets) == 1 and second != first and entry.get("sessionId") == second
                    else f"no: reset files {resets}, sessions {first} then {second}, "
                    f"entry {entry.get('sessionId')}"
                )
                produced["carried"] = (
                    "yes"
                    if first in _named_by_checkpoints(entry)
                    else f"no: after the reset the entry's checkpoints name {_named_by_checkpoints(entry)}"
                )
        finally:
            server.stop()
        reset_files = sorted(sessions.glob(f"{first}.jsonl.reset.*"))
        before = {p.name: p.read_bytes() for p in reset_files}
        OpenClaw.installed().run(["doctor", "--fix", "--non-interactive"], state_dir=state, timeout=600)
        with read_only(agent_database(state, CHECKPOINT_AGENT)) as db:
            row = db.execute(
                "SELECT current_session_id, entry_json FROM session_nodes WHERE session_key = ?", (K_WORK,)
            ).fetchone()
        after = {p.name: p.read_bytes() for p in sessions.glob(f"{first}.jsonl.reset.*")}
        migrated_names = _named_by_checkpoints(json.loads(row[1])) if row else set()
        produced["migrated"] = (
            "yes: the node's entry_json keeps the checkpoint, the .reset. file stays as OpenClaw wrote it"
            if row and row[0] == second and first in migrated_names and after == before and before
            else f"no: node {row and row[0]}, checkpoints name {migrated_names}, reset files {sorted(after)}"
        )
        name, data = next(iter(before.items()), ("", b""))
        made.update(
            {
                "first": first,
                "second": second,
                "resetFile": name,
                "resetSha256": hashlib.sha256(data).hexdigest(),
                "resetBytes": len(data),
            }
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    made["produced"] = produced
    return made


def checkpoint_state(dest_dir: Path) -> dict:
    """Copy the checkpoint state (built once, then cached under ``<cache>/fixtures``,
    :func:`tools.openclaw.fixture.cached_build`) into ``dest_dir``: ``dest_dir/state`` and
    ``dest_dir/manifest.json``; returns the manifest. A build that lacks a piece (``manifest["produced"]``)
    is not cached: the tests fail with its reason, the next process builds again."""
    fixtures = OpenClaw.installed().cache / "fixtures"
    return copy_build(cached_build(fixtures, _checkpoint_key(), "checkpoint", _build_checkpoint), dest_dir)
