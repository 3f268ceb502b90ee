"""File modes in tests that run as root: root ignores them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so a
test of a permission error runs its subject in a child process without those capabilities, through
``setpriv``. As another user nothing is needed. Where neither works, the test fails with the reason: a
permission test that cannot deny anything must not pass or skip.

A test whose subject runs as another user (``setpriv --reuid``) cannot use the checkout: it may sit in a
folder only its owner can enter (a clone under ``/root`` or ``mktemp -d``), and so may the interpreter the
venv points to (pyenv's or uv's, under ``~``). ``worker_python`` puts what such a child runs, the
interpreter with its standard library, the venv and the package, into a folder every user can read.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--"]


def modes_apply_prefix() -> list[str]:
    """The command prefix under which file modes apply to a child process (empty unless root)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.fail("running as root without setpriv (util-linux): file modes cannot be made to apply")
    done = subprocess.run([*WITHOUT_DAC_OVERRIDE, "true"], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"running as root and setpriv cannot drop CAP_DAC_OVERRIDE here: {done.stderr.strip()}")
    return WITHOUT_DAC_OVERRIDE


@dataclass(frozen=True)
class WorkerPython:
    """The suite's interpreter, venv and package under ``root``, readable by any user.

    ``python`` and ``bin_dir`` are the copied venv's; ``dags`` and ``plugins`` copies of the checkout's
    folders (the venv's editable install points at ``plugins``); ``env`` what a child needs on top of its
    environment (``LD_LIBRARY_PATH`` when the interpreter loads a shared libpython, whose own search path
    names the original folder)."""

    root: Path
    python: Path
    bin_dir: Path
    dags: Path
    plugins: Path
    env: dict[str, str]


def worker_python(root: Path, prefix: list[str]) -> WorkerPython:
    """Copy what the running interpreter needs into ``root`` (created here, mode 0755; its parents must
    let others through, as ``/tmp`` does) and check, as the child ``prefix`` runs, that the copy is the
    same Python and imports the package from ``root``.

    Files are hard-linked where they are already world-readable and on the same file system (a few
    seconds for the whole venv), else copied; a file that is changed here (``pyvenv.cfg``, the venv's
    scripts and ``.pth`` files that name the checkout) is always a new file, never the linked one."""
    root.mkdir()
    root.chmod(0o755)
    base = root / "python"
    venv = root / "venv"
    real = Path(os.path.realpath(sys.executable))  # the binary the venv's python runs
    stdlib = Path(os.__file__).parent  # lib/python3.X, lib-dynload inside it
    (base / "bin").mkdir(parents=True)
    _link_or_copy(real, base / "bin" / real.name)
    # Not the base's own packages (the venv's are the suite's), nor the standard library's test suite.
    ignore = shutil.ignore_patterns("site-packages", "dist-packages", "test")
    _copy_tree(stdlib, base / "lib" / stdlib.name, ignore)
    env = {}
    libpython = _loaded_libpython()
    if libpython is not None:
        _link_or_copy(libpython, base / "lib" / libpython.name)
        env["LD_LIBRARY_PATH"] = str(base / "lib")

    _copy_tree(Path(sys.prefix), venv, None)
    (venv / "pyvenv.cfg").unlink()
    lines = (Path(sys.prefix) / "pyvenv.cfg").read_text().splitlines()
    home = [f"home = {base / 'bin'}" if line.startswith("home ") else line for line in lines]
    (venv / "pyvenv.cfg").write_text("\n".join(home) + "\n")
    for path in (venv / "bin").iterdir():
        if path.is_symlink() and Path(os.path.realpath(Path(sys.prefix) / "bin" / path.name)) == real:
            if os.path.isabs(os.readlink(path)):
                path.unlink()
                path.symlink_to(base / "bin" / real.name)
        elif path.is_file() and _is_script(path):
            _rewrite(path, {sys.prefix: str(venv)})
    for pth in venv.glob("lib/python*/site-packages/*.pth"):
        _rewrite(pth, {str(ROOT): str(root)})
    for folder in ("dags", "plugins"):
        _copy_tree(ROOT / folder, root / folder, None)
    worker = WorkerPython(root, venv / "bin" / "python", venv / "bin", root / "dags", root / "plugins", env)
    _check(worker, prefix)
    return worker


def _loaded_libpython() -> Path | None:
    """The shared libpython this interpreter runs on, from its own memory map (None: linked in)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and Path(fields[5]).name.startswith("libpython"):
            return Path(fields[5])
    return None


def _link_or_copy(source: Path | str, target: Path | str) -> None:
    mode = os.stat(source).st_mode
    if mode & 0o004 and (mode & 0o001 or not mode & 0o100):  # the link shares the mode: readable as is
        try:
            os.link(source, target)
            return
        except OSError:  # another file system
            pass
    shutil.copy2(source, target)
    os.chmod(target, mode | 0o444 | (0o111 if mode & 0o100 else 0))


def _copy_tree(source: Path, target: Path, ignore) -> None:
    shutil.copytree(source, target, symlinks=True, ignore=ignore, copy_function=_link_or_copy)
    for folder in [target, *(p for p in target.rglob("*") if p.is_dir() and not p.is_symlink())]:
        folder.chmod(folder.stat().st_mode | 0o755)  # a new folder: others may list and enter it


def _is_script(path: Path) -> bool:
    """A script naming its interpreter (``#!``), not a binary."""
    with path.open("rb") as handle:
        return handle.read(2) == b"#!"


def _rewrite(path: Path, replace: dict[str, str]) -> None:
    """Replace text in a copied file as a new file (the copy may be a hard link to the original)."""
    data = path.read_bytes()
    if not any(old.encode() in data for old in replace):
        return
    for old, new in replace.items():
        data = data.replace(old.encode(), new.encode())
    mode = path.stat().st_mode
    path.unlink()
    path.write_bytes(data)
    path.chmod(mode | 0o444)


CHECK = """
import json, sys
import openclaw_nexus
print(json.dumps([sys.version, sys.base_prefix, openclaw_nexus.__file__]))
"""


def _check(worker: WorkerPython, prefix: list[str]) -> None:
    """Fails with the reason unless the child runs this Python and imports the package from the copy."""
    done = subprocess.run(
        [*prefix, str(worker.python), "-c", CHECK],
        env={**os.environ, **worker.env},
        cwd=worker.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        pytest.fail(
            f"the copied interpreter does not run as {prefix} (can it enter every folder above"
            f" {worker.root}?): {done.stderr.strip()}"
        )
    version, base_prefix, package = json.loads(done.stdout.splitlines()[-1])
    if version != sys.version or not Path(package).is_relative_to(worker.plugins):
        pytest.fail(
            f"the child runs Python {version} from {base_prefix} with the package at {package}, not"
            f" Python {sys.version} with the package under {worker.plugins}"
        )
