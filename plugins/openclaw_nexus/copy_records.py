"""Archive copies' names and records: the record of each copy keeps what OpenClaw's backup leaves out.
Airflow-free.

A copy is ``<id>.jsonl`` or ``<id>@<conversation>.jsonl``, ``+N`` for a later version (``ARCHIVED_NAME_RE``).
Its record is one small JSON file in ``sessions/archive/.copies/``: what later runs read from the copy (its
size, mtime in ns, sha256), so that a host restored from ``openclaw backup create`` (which skips every
``*.jsonl`` and ``*.log`` under ``sessions/``) still knows what was sent. Naming, reading and durably
writing a record live here; ``discovery.ArchiveIndex`` reads records, ``archive`` writes them. It imports
no other module of the package but ``names``.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard

from openclaw_nexus.names import CONVERSATION_TOKEN_RE, SESSION_ID_RE

# An archive copy: ``<id>.jsonl`` (a whole session) or ``<id>@<conversation>.jsonl`` (one conversation of
# a SQLite-era session, see ``conversations``), then ``+N`` for a later version. ``@`` and ``+`` never
# occur in an id.
ARCHIVED_NAME_RE = re.compile(
    rf"(?P<id>{SESSION_ID_RE.pattern})(?:@(?P<conversation>{CONVERSATION_TOKEN_RE.pattern}))?(?:\+\d+)?\.jsonl",
    re.IGNORECASE,
)
# In ``archive/``: the record of each copy, ``<copy name without .jsonl>.json`` (dots as ``,``), holding
# what later runs read from the copy: its size, mtime (ns) and sha256. OpenClaw's backup (``openclaw backup
# create``) leaves out every ``*.jsonl`` and ``*.log`` under ``sessions/``, so a host restored from it has
# these records but none of the copies; a copy that is missing is answered by its record. Written before
# the copy is linked and again before its mtime moves (``archive``), never for bytes Nexus did not confirm;
# a copy made by a release before records existed gets one (without its sha256: the copy is not read) the
# first time a scan looks it up.
COPIES_DIR = ".copies"
_RECORD_SUFFIX = ".json"
_RECORD_LIMIT = 4096


@dataclass(frozen=True)
class CopyRecord:
    """What an archive copy holds, as recorded beside it."""

    size: int
    mtime_ns: int
    sha256: str | None  # None: recorded by a scan from the copy's stat alone

    def to_bytes(self, copy_name: str) -> bytes:
        data = {"copy": copy_name, "size": self.size, "mtimeNs": self.mtime_ns, "sha256": self.sha256}
        return (json.dumps(data, separators=(",", ":")) + "\n").encode()


def record_name(copy_name: str) -> str:
    """The record's file name: never ``*.jsonl`` or ``*.log``, and no ``.tmp.`` (OpenClaw's backup skips
    those), so the copy's dots become ``,`` (a character no session id or conversation token has)."""
    return copy_name.removesuffix(".jsonl").replace(".", ",") + _RECORD_SUFFIX


def copy_of_record(name: str) -> str | None:
    """The copy a record file names, or None when the name is not a record's."""
    if not name.endswith(_RECORD_SUFFIX) or "." in name[: -len(_RECORD_SUFFIX)]:
        return None
    copy = name[: -len(_RECORD_SUFFIX)].replace(",", ".") + ".jsonl"
    return copy if ARCHIVED_NAME_RE.fullmatch(copy) else None


def read_record(archive_dir: Path, copy_name: str) -> CopyRecord | None:
    """The record of ``archive_dir/<copy_name>``; None when there is none or it cannot be trusted (then the
    copy counts as never made)."""
    folder = archive_dir / COPIES_DIR
    if folder.is_symlink():
        return None
    return read_record_at(str(folder / record_name(copy_name)), copy_name)


def read_record_at(path: str, copy_name: str) -> CopyRecord | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = json.loads(os.read(fd, _RECORD_LIMIT))
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not isinstance(data, dict) or data.get("copy") != copy_name:
        return None
    size, mtime_ns, sha256 = data.get("size"), data.get("mtimeNs"), data.get("sha256")
    if not _is_count(size) or not _is_count(mtime_ns):
        return None
    if sha256 is not None and (not isinstance(sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", sha256)):
        return None
    return CopyRecord(size, mtime_ns, sha256)


def records_dir(archive_dir: Path) -> Path:
    """``archive_dir/.copies``, created 0700 if needed; ``OSError`` when it is a symlink."""
    folder = archive_dir / COPIES_DIR
    if not folder.is_symlink():
        folder.mkdir(mode=0o700, exist_ok=True)
    if folder.is_symlink():
        raise OSError(f"{folder} is a symlink: not followed")
    return folder


def store_record(
    folder: Path, copy_name: str, record: CopyRecord, *, replace: bool = True, durable: bool = True
) -> bool:
    """Write the record of a copy into ``folder`` (``records_dir``): 0600, its own mtime the copy's,
    published whole (written aside, then renamed or linked into place). ``replace=False`` leaves a record
    that is there (returns False); ``durable`` fsyncs it and its folder. Raises ``OSError``."""
    target = folder / record_name(copy_name)
    partial = folder / f"{target.name}.part"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(record.to_bytes(copy_name))
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.utime(partial, ns=(record.mtime_ns, record.mtime_ns))
        if replace:
            os.replace(partial, target)
        else:
            try:
                os.link(partial, target, follow_symlinks=False)
            except FileExistsError:
                return False
    finally:
        partial.unlink(missing_ok=True)
    if durable:
        fsync_dir(folder)
    return True


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable; best effort where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
