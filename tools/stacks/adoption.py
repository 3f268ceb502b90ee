"""Venvs for trying the distribution the way a user would: built from the checkout, installed into another
Airflow than the project's locked one (tests/adoption).

The lowest supported Airflow is resolved with uv at that release's date (``--exclude-newer``): Airflow's
own constraints files live on GitHub, which these machines cannot reach, and an unconstrained resolution
of an old Airflow picks today's pydantic/structlog, which it predates (3.2.0 fails with pydantic 2.14).
The release date gives what its constraints would have held, near enough, from PyPI alone.

Venvs are cached under ``$SESSION_UPLOAD_CACHE`` (default ``~/.cache/session-upload``), keyed by what
went into them (Python, pins, resolution date, the wheel's sha256), so a run that changed nothing reuses
them and a changed wheel or pin builds a new one (those of the same kind unused for a day are removed).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The lowest releases the package works with (README, "Add it to your Airflow"; pyproject's ranges).
LOWEST_AIRFLOW = "3.1.0"
LOWEST_HTTP_PROVIDER = "5.0.0"
# apache-airflow 3.1.0 was uploaded to PyPI on 2025-09-25: resolve its dependencies as of the next day.
LOWEST_AIRFLOW_RESOLVED_AT = "2025-09-26T00:00:00Z"
# The newest: the Airflow the project's venv is locked to (pyproject's constraint-dependencies), uploaded to
# PyPI on 2026-09-17; a fresh venv of it is resolved as of the next day, like the lowest.
NEWEST_AIRFLOW = "3.3.2"
NEWEST_AIRFLOW_RESOLVED_AT = "2026-09-18T00:00:00Z"
# Test tools for running tests/integrity inside that venv (never part of the distribution).
TEST_TOOLS = ("pytest>=8", "pytest-timeout>=2.3", "pyyaml>=6", "jsonschema>=4.20")


def cache_dir() -> Path:
    return Path(os.environ.get("SESSION_UPLOAD_CACHE") or Path.home() / ".cache" / "session-upload")


def uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path.home() / ".local" / "bin"))
    if not found:
        raise RuntimeError("uv not found: bash scripts/setup.sh installs it")
    return found


def run(command: Sequence[str | Path], **kwargs) -> subprocess.CompletedProcess:
    """Run a command; on failure, raise with its output (the reason a venv could not be built)."""
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(map(str, command))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return done


def build_distributions(out: Path) -> tuple[Path, Path]:
    """``uv build`` of the checkout: the sdist, and the wheel built from that sdist (as a user gets them)."""
    run([uv(), "build", "--out-dir", out, ROOT], cwd=ROOT)
    (sdist,) = out.glob("session_upload-*.tar.gz")
    (wheel,) = out.glob("session_upload-*.whl")
    return sdist, wheel


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def cached_venv(
    kind: str, requirements: Sequence[str | Path], resolved_at: str | None, seed: bool = False
) -> Path:
    """A venv holding ``requirements`` (resolved by uv as of ``resolved_at``), built once per distinct input.

    Local files (the wheel) count by their sha256. ``seed`` adds pip, for steps a user runs with pip.
    """
    key_parts = {
        "python": sys.version.split()[0],
        "requirements": [f"{r.name}@{sha256(r)}" if isinstance(r, Path) else r for r in requirements],
        "resolved_at": resolved_at,
        "seed": seed,
    }
    key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:16]
    venvs = cache_dir() / "airflow-venvs"
    venv = venvs / f"{kind}-{key}"
    done = venv / ".session-upload-complete"
    with _locked(venvs / f".{kind}.lock"):
        if done.exists():
            done.touch()  # in use: kept by the pruning below
            return venv
        # Another wheel's or pin's venv, unused for a day (a concurrent run of another checkout may still
        # be using a recent one).
        for old in venvs.glob(f"{kind}-*"):
            marker = old / ".session-upload-complete"
            if not marker.exists() or time.time() - marker.stat().st_mtime > 86400:
                shutil.rmtree(old, ignore_errors=True)
        run(
            [
                uv(),
                "venv",
                "--quiet",
                "--no-config",
                "--python",
                sys.executable,
                *(["--seed"] if seed else []),
                venv,
            ]
        )
        install(venv, requirements, resolved_at)
        done.write_text(json.dumps(key_parts, indent=1))
    return venv


def install(venv: Path, requirements: Sequence[str | Path], resolved_at: str | None) -> None:
    # --no-config: not this project's [tool.uv] (its constraint pins the locked Airflow).
    python = venv / "bin" / "python"
    command: list[str | Path] = [uv(), "pip", "install", "--quiet", "--no-config", "--python", python]
    if resolved_at:
        command += ["--exclude-newer", resolved_at]
    run([*command, *requirements])


def versions(venv: Path) -> dict[str, str]:
    """Every distribution installed in the venv: normalized name → version."""
    code = (
        "import json, importlib.metadata as m; print(json.dumps("
        "{d.metadata['Name'].lower().replace('_', '-'): d.version for d in m.distributions()}))"
    )
    return json.loads(run([venv / "bin" / "python", "-c", code]).stdout)
