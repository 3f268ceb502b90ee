"""Move an uploaded transcript into ``sessions/archive/``. Airflow-free.

The move is a hard link to the archive name (fails instead of overwriting) followed by an unlink of
the source, so it is atomic on one filesystem, never overwrites, and can be retried: a retry that
finds the move done, or half done, finishes it or does nothing.
"""

from __future__ import annotations

import errno
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from openclaw_nexus.discovery import ARCHIVE_DIR

_HASH_CHUNK = 1 << 20
# Link failures that mean "this filesystem cannot hard-link", not "something is wrong".
_NO_LINK_ERRNOS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK}


class ArchiveError(Exception):
    """The transcript could not be archived; it is left where it was."""


@dataclass(frozen=True)
class ArchiveOutcome:
    archived_as: str  # path relative to the sessions folder, e.g. "archive/<id>.jsonl"
    already_done: bool


def archive_name(session_id: str, n: int) -> str:
    """``<id>.jsonl`` first, then ``<id>+1.jsonl``, ``<id>+2.jsonl``... (``+`` is never in an id)."""
    return f"{session_id}.jsonl" if n == 0 else f"{session_id}+{n}.jsonl"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def find_copy(sessions_dir: Path, session_id: str, *, size: int, sha256: str) -> str | None:
    """The name (``archive/<id>[+N].jsonl``) of an archived copy holding exactly these bytes, if any."""
    archive = sessions_dir / ARCHIVE_DIR
    for name in _existing_archive_names(archive, session_id):
        candidate = archive / name
        if candidate.stat().st_size == size and file_sha256(candidate) == sha256:
            return f"{ARCHIVE_DIR}/{name}"
    return None


def move_as_is(sessions_dir: Path, file_name: str) -> str:
    """Move one of OpenClaw's export files into ``archive/`` under its own name (never overwriting)."""
    source = sessions_dir / file_name
    target = sessions_dir / ARCHIVE_DIR / file_name
    if not source.exists():
        if target.exists():
            return f"{ARCHIVE_DIR}/{file_name}"  # a retry: done before
        raise ArchiveError(f"{source} is gone and {target} does not exist")
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        if not os.path.samefile(source, target):
            raise ArchiveError(f"{target} already exists: {file_name} left in place") from None
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise ArchiveError(f"cannot move {source} to {target}: {exc.strerror or exc}") from None
        if target.exists():
            raise ArchiveError(f"{target} already exists: {file_name} left in place") from None
        _rename(source, target)
    else:
        source.unlink()
    _fsync_dir(target.parent)
    _fsync_dir(sessions_dir)
    return f"{ARCHIVE_DIR}/{file_name}"


def _existing_archive_names(archive: Path, session_id: str):
    n = 0
    while (archive / archive_name(session_id, n)).exists():
        yield archive_name(session_id, n)
        n += 1


def archive_transcript(
    sessions_dir: Path,
    file_name: str,
    session_id: str,
    *,
    size: int,
    mtime_ns: int,
    sha256: str,
) -> ArchiveOutcome:
    """Move ``sessions_dir/file_name`` to ``sessions_dir/archive/<session_id>.jsonl`` (or a free ``+N`` name).

    ``size``, ``mtime_ns`` and ``sha256`` describe the content Nexus confirmed: a file that changed
    since is refused, and a file already gone counts as archived only if an archived copy matches.
    """
    source = sessions_dir / file_name
    archive = sessions_dir / ARCHIVE_DIR
    try:
        info = source.stat()
    except FileNotFoundError:
        copy = find_copy(sessions_dir, session_id, size=size, sha256=sha256)
        if copy is not None:
            return ArchiveOutcome(copy, already_done=True)
        raise ArchiveError(
            f"{source} is gone and no archived copy matches the uploaded content (sha256 {sha256[:12]}…)"
        ) from None
    if (info.st_size, info.st_mtime_ns) != (size, mtime_ns):
        raise ArchiveError(
            f"{source} changed after its upload ({info.st_size} bytes now, {size} uploaded): left in place"
        )

    if archive.is_symlink():  # it may point anywhere, outside the state dir too
        raise ArchiveError(f"{archive} is a symlink: not followed, {file_name} left in place")
    try:
        archive.mkdir(mode=0o700, exist_ok=True)  # transcripts hold users' secrets
    except OSError as exc:
        raise ArchiveError(f"cannot create {archive}: {exc.strerror or exc}") from None
    for name in _existing_archive_names(archive, session_id):
        # A retry after a crash between link and unlink: the archive entry is this very file.
        if os.path.samefile(archive / name, source):
            source.unlink()
            _fsync_dir(sessions_dir)
            return ArchiveOutcome(f"{ARCHIVE_DIR}/{name}", already_done=True)

    n = 0
    while True:
        target = archive / archive_name(session_id, n)
        try:
            os.link(source, target, follow_symlinks=False)
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            if exc.errno not in _NO_LINK_ERRNOS:
                raise ArchiveError(f"cannot archive {source} as {target}: {exc.strerror or exc}") from None
            if target.exists():
                n += 1
                continue
            _rename(source, target)
            break
        try:
            source.unlink()
        except OSError as exc:
            raise ArchiveError(
                f"archived {source} as {target} but cannot remove it: {exc.strerror}"
            ) from None
        break
    _fsync_dir(archive)
    _fsync_dir(sessions_dir)
    return ArchiveOutcome(f"{ARCHIVE_DIR}/{target.name}", already_done=False)


def _rename(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        raise ArchiveError(f"cannot archive {source} as {target}: {exc.strerror or exc}") from None


def _fsync_dir(path: Path) -> None:
    """Make the rename durable; best effort where directories cannot be opened."""
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
