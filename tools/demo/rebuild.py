"""Rebuild the demo's OpenClaw state dir (``tools/demo/data/``) with OpenClaw itself.

    python -m tools.demo.rebuild          # build (cached), then replace tools/demo/data/ with it

Needs Node and OpenClaw, which :mod:`tools.openclaw.fixture` installs under the cache
(``~/.cache/session-upload``); the demo itself needs neither: it runs on the copy kept in the repository.

**Agent ``chat``, SQLite era, written by OpenClaw 2026.9.6** through its gateway (the model is the loopback
stand-in of :mod:`tools.standins.model`; no heartbeat, no dreaming, no skill review; the default
``session.reset``, none). Everything on the chat path (``chat.send`` from OpenClaw's own chat client, the
TUI's, through :class:`tools.openclaw.fixture._ChatClient`):

- ``agent:chat:main`` (the agent's main session, which OpenClaw never archives or deletes): a turn,
  ``/new``, a turn, ``/reset``, a turn. One live session, three conversations separated by two reset
  events; the last conversation is open.
- ``agent:chat:talk``: a turn, ``/new``, a turn, then archived (``openclaw sessions archive``): two
  conversations, the second closed by the archive.
- ``agent:chat:gone``: a turn, then deleted (``openclaw sessions delete``): its rows go, OpenClaw keeps
  ``sessions/<sid>.jsonl.deleted.<ts>.<32 hex>.zst`` and a ``session_transcript_archives`` row.
- an isolated cron job (``openclaw automations create … --session isolated``) run twice: its node
  ``agent:chat:cron:<uuid>`` moves to a new session on each run, so the first run's session is
  superseded and the second is the node's live one.

The gateway is stopped with SIGTERM, which checkpoints and closes the database: the ``.sqlite`` file is
then complete on its own and is kept as OpenClaw left it (its empty ``-wal``/``-shm`` are not kept).

**Agent ``main``, JSONL era, written by OpenClaw 2026.7.35**: the agent folder of
:mod:`tools.openclaw.legacy` (its own cached build): a ``.reset.`` transcript, a ``.deleted.`` one, one that
an idle rollover left, one archived in place (``archivedAt`` in ``sessions.json``), two live sessions in
``sessions.json``, and OpenClaw's side files (``.trajectory-path.json``, ``skills-prompts/``) but not its run
traces (``<sid>.trajectory.jsonl``, about 200 KB each, which nothing here reads).

Only the ``agents/`` folder of each state dir is kept (not the gateway's device identity, logs or global
database). ``manifest.json`` beside it records how it was made, :func:`tools.demo.state.describe` of it
(what ``tests/openclaw/test_demo_state.py`` compares against a fresh build), and each file's modification
time and mode as OpenClaw left them (git keeps neither; the demo restores both).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.demo.state import DATA, describe_copy, file_modes, file_times, missing
from tools.openclaw import legacy
from tools.openclaw.fixture import (
    HEARTBEAT_OFF,
    NODE_VERSION,
    OPENCLAW_VERSION,
    Gateway,
    OpenClaw,
    OpenClawError,
    _ChatClient,
    _lifecycle,
    _model_config,
    cached_build,
)
from tools.standins.model import MODEL_ID, StandIn

NAME = "demo"
SQLITE_AGENT = "chat"
JSONL_AGENT = legacy.AGENT  # "main": its session keys say so
K_MAIN = f"agent:{SQLITE_AGENT}:main"
K_TALK = f"agent:{SQLITE_AGENT}:talk"
K_GONE = f"agent:{SQLITE_AGENT}:gone"
# What the chat path writes, message by message ("/new" and "/reset" each append a reset event).
CHATS = {
    K_MAIN: [
        "Hello! First conversation.",
        "/new",
        "A second conversation.",
        "/reset",
        "A third one, still open.",
    ],
    K_TALK: ["A chat to archive: its first conversation.", "/new", "Its second conversation."],
    K_GONE: ["A chat that will be deleted."],
}


def _cron_runs(gw: Gateway, agent: str, runs: int = 2) -> str:
    """An isolated cron job on ``agent``, run ``runs`` times through OpenClaw's own scheduler command
    (``automations run --wait``: each run is its own session). ``yes: …`` or ``no: <why>``."""
    try:
        created = gw.run_json(
            [
                "automations",
                "create",
                "0 7 * * *",
                "Morning check-in: say hello.",
                "--name",
                "demo-cron",
                "--agent",
                agent,
                "--session",
                "isolated",
                "--no-deliver",
                "--json",
            ],
            timeout=300,
        )
        job = created.get("id") or (created.get("job") or {}).get("id")
        if not job:
            return f"no: automations create answered {json.dumps(created)[:300]}"
        for _ in range(runs):
            gw.run(["automations", "run", job, "--wait", "--wait-timeout", "5m", "--json"], timeout=400)
        return f"yes: job {job} run {runs} times"
    except (OpenClawError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"no: {str(exc)[:500]}"


def _sqlite_agent(state: Path, oc: OpenClaw, note: Any) -> dict[str, str]:
    """The ``chat`` agent through one 2026.9.6 gateway; what OpenClaw was asked for and said."""
    scratch = Path(tempfile.mkdtemp(prefix="oc-demo-build-"))
    produced: dict[str, str] = {}
    try:
        server = StandIn().start()
        try:
            config = {
                "models": _model_config(server.base_url),
                "agents": {
                    "defaults": {"model": {"primary": f"standin/{MODEL_ID}"}, "heartbeat": HEARTBEAT_OFF},
                    "entries": {SQLITE_AGENT: {}},
                },
                # Dreaming (memory-core's scheduled job) and the weekly skill review each add sessions of
                # their own; the demo shows only what the chats and the one cron job wrote.
                "plugins": {"entries": {"memory-core": {"config": {"dreaming": {"enabled": False}}}}},
                "skills": {"workshop": {"autonomous": {"mode": "off"}}},
            }
            with oc.gateway(state, config, scratch / "gateway") as gw:
                note("gateway of 2026.9.6 ready")
                chat = _ChatClient(gw)
                try:
                    for key, messages in CHATS.items():
                        for message in messages:
                            chat.send(key, message)
                        note(f"{key}: {len(messages)} messages on the chat path")
                finally:
                    chat.close()
                _lifecycle(gw, "archive", SQLITE_AGENT, [K_TALK])
                _lifecycle(gw, "delete", SQLITE_AGENT, [K_GONE])
                note("talk archived, gone deleted")
                produced["cron"] = _cron_runs(gw, SQLITE_AGENT)
                note(f"cron: {produced['cron']}")
        finally:
            server.stop()
        note("gateway stopped (SIGTERM: the database is checkpointed and closed)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return produced


def _build(dest: Path, oc: OpenClaw, log: list[str]) -> dict:
    """Build the demo state into the empty folder ``dest``: ``dest/state/agents/{chat,main}`` and the
    manifest (returned)."""
    started = time.monotonic()

    def note(message: str) -> None:
        log.append(f"{time.monotonic() - started:6.1f} s  {message}")
        print(f"[demo state] {log[-1]}", file=sys.stderr, flush=True)

    built = dest / "build"
    produced = _sqlite_agent(built, oc, note)
    agents = dest / "state" / "agents"
    agents.mkdir(parents=True)
    shutil.copytree(built / "agents" / SQLITE_AGENT, agents / SQLITE_AGENT, symlinks=True)
    shutil.rmtree(built)
    database = agents / SQLITE_AGENT / "agent" / "openclaw-agent.sqlite"
    for side in ("-wal", "-shm"):  # after a clean close: empty or gone; a non-empty WAL would be data
        extra = database.with_name(database.name + side)
        if extra.exists():
            if side == "-wal" and extra.stat().st_size:
                produced["checkpointed"] = f"no: {extra.name} holds {extra.stat().st_size} bytes"
            extra.unlink()
    produced.setdefault("checkpointed", "yes")

    jsonl = legacy.built_fixture()
    shutil.copytree(jsonl / "state" / "agents" / JSONL_AGENT, agents / JSONL_AGENT, symlinks=True)
    for trace in (agents / JSONL_AGENT / "sessions").glob("*.trajectory.jsonl"):
        trace.unlink()  # OpenClaw's run traces: 1.2 MB the package never reads (its side files stay)
    legacy_manifest = json.loads((jsonl / "manifest.json").read_text())
    note(f"JSONL-era agent {JSONL_AGENT} copied from OpenClaw {legacy.OPENCLAW_VERSION}'s build")

    description = describe_copy(dest / "state")
    produced.update(missing(description, {SQLITE_AGENT: "sqlite", JSONL_AGENT: "jsonl"}))
    return {
        "fixture": NAME,
        "written": {
            SQLITE_AGENT: f"OpenClaw {OPENCLAW_VERSION} (SQLite era), its gateway and chat path",
            JSONL_AGENT: f"OpenClaw {legacy.OPENCLAW_VERSION} (JSONL era), tools/openclaw/legacy.py",
        },
        "node": NODE_VERSION,
        "rebuild": "python -m tools.demo.rebuild",
        "produced": produced,
        "jsonlKeys": {
            item["sessionId"]: item["key"]
            for item in legacy_manifest["completed"] + legacy_manifest["archived"]
        },
        "description": description,
        "fileTimes": file_times(dest / "state"),
        "fileModes": file_modes(dest / "state"),
        "buildLog": list(log),
    }


def _source_hash() -> str:
    digest = hashlib.sha256()
    tools = Path(__file__).resolve().parents[1]
    for name in ("demo/rebuild.py", "openclaw/fixture.py", "openclaw/chat.mjs", "standins/model.py"):
        digest.update((tools / name).read_bytes())
    return digest.hexdigest()[:16]


def fixture_key() -> str:
    """Cache key: the pinned versions, this module and what it runs, and the JSONL-era build's own key."""
    return f"{NAME}-openclaw-{OPENCLAW_VERSION}-node-{NODE_VERSION}-{_source_hash()}-{legacy.fixture_key()}"


def built_state(cache: Path | None = None) -> Path:
    """The cached build (``state/`` and ``manifest.json``), building it first if needed
    (:func:`tools.openclaw.fixture.cached_build`: a build that lacks a piece is not cached)."""
    oc = OpenClaw.installed(cache)

    def build(folder: Path) -> dict:
        log: list[str] = []
        return _build(folder, oc, log)

    return cached_build(oc.cache / "fixtures", fixture_key(), NAME, build)


def install(built: Path, data: Path = DATA) -> None:
    """Replace ``data`` (the repository's copy) with the build: ``state/`` and ``manifest.json``."""
    staging = Path(tempfile.mkdtemp(prefix=".data.", dir=data.parent))
    try:
        shutil.copytree(built / "state", staging / "state", symlinks=True)
        shutil.copy2(built / "manifest.json", staging / "manifest.json")
        for path in (staging / "state").rglob("*"):  # what git keeps: no group/other write bits
            os.chmod(path, 0o755 if path.is_dir() else 0o644)
        if data.exists():
            shutil.rmtree(data)
        staging.rename(data)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DATA, help="where the state goes (replaced)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    built = built_state()
    manifest = json.loads((built / "manifest.json").read_text())
    bad = {k: v for k, v in manifest["produced"].items() if not str(v).startswith("yes")}
    if bad:
        print(f"the build lacks pieces: {json.dumps(bad, indent=2)}", file=sys.stderr)
        return 1
    install(built, args.dest)
    size = sum(p.stat().st_size for p in args.dest.rglob("*") if p.is_file())
    print(f"{args.dest}: {size / 1024:.0f} KiB, built in {time.monotonic() - started:.1f} s ({built})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
