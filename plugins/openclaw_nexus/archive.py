"""Move an uploaded transcript into ``sessions/archive/``, or link a staging copy of it there (the file
itself then stays with OpenClaw). Airflow-free.

The move is a hard link to the archive name (fails instead of overwriting) followed by an unlink of
the source, so it is atomic on one filesystem, never overwrites, and can be retried: a retry that
finds the move done, or half done, finishes it or does nothing.

Each copy has a record in ``archive/.copies/`` (``copy_records.COPIES_DIR``: its size, mtime and sha256),
written and made durable before the copy is linked, and again before the copy's mtime moves
(``restamp``): OpenClaw's backup keeps the records but not the copies, and a run on a restored host
reads the record of a copy that is not there. Records are only written here, for bytes Nexus confirmed.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from openclaw_nexus.copy_records import (
    COPIES_DIR,
    CopyRecord,
    fsync_dir,
    read_record,
    record_name,
    records_dir,
    store_record,
)
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
    """The name (``archive/<id>[+N].jsonl``) of an archived copy holding exactly these bytes, if any (for
    a copy that is not there, its record says what it held)."""
    archive = sessions_dir / ARCHIVE_DIR
    for name in _existing_archive_names(archive, session_id):
        candidate = archive / name
        try:
            same = candidate.stat().st_size == size and file_sha256(candidate) == sha256
        except FileNotFoundError:
            record = read_record(archive, name)
            same = record is not None and (record.size, record.sha256) == (size, sha256)
        if same:
            return f"{ARCHIVE_DIR}/{name}"
    return None


def holds_version(
    sessions_dir: Path,
    session_id: str,
    *,
    size: int,
    mtime_ns: int,
    other_than: tuple[int, int] | None = None,
) -> bool:
    """Whether a copy ``archive/<id>[+N].jsonl`` (or the record of one that is not there) has this size
    and mtime: the file was sent as it is. ``other_than`` (the file's device and inode): a hard link to
    the file itself is no copy (a move interrupted between its link and its unlink, finished by the next
    run)."""
    archive = sessions_dir / ARCHIVE_DIR
    if archive.is_symlink():
        return False
    for name in _existing_archive_names(archive, session_id):
        try:
            copy = os.lstat(archive / name)
        except FileNotFoundError:
            record = read_record(archive, name)
            if record is not None and (record.size, record.mtime_ns) == (size, mtime_ns):
                return True
            continue
        if (
            stat.S_ISREG(copy.st_mode)
            and (copy.st_size, copy.st_mtime_ns) == (size, mtime_ns)
            and (copy.st_dev, copy.st_ino) != other_than
        ):
            return True
    return False


def restamp(sessions_dir: Path, copy: str, *, size: int, mtime_ns: int, sha256: str) -> None:
    """Give the copy ``copy`` (``archive/<name>``, holding exactly these bytes) the mtime ``mtime_ns``: it
    now stands for the session as it is. Its record first, so the record is never behind the copy; a
    copy that is not there (only its record survived a restore) keeps just the record."""
    name = copy.removeprefix(f"{ARCHIVE_DIR}/")
    archive = sessions_dir / ARCHIVE_DIR
    write_record(archive, name, CopyRecord(size, mtime_ns, sha256))
    with contextlib.suppress(FileNotFoundError):
        os.utime(archive / name, ns=(mtime_ns, mtime_ns))


def write_record(archive: Path, copy_name: str, record: CopyRecord) -> None:
    """Write (or replace) the record of ``archive/<copy_name>``, durably. Raises ``ArchiveError``."""
    try:
        store_record(records_dir(archive), copy_name, record)
    except OSError as exc:
        where = archive / COPIES_DIR
        raise ArchiveError(f"cannot record {copy_name} in {where}: {exc.strerror or exc}") from None


def _drop_record(archive: Path, copy_name: str, record: CopyRecord) -> None:
    """Remove a record written for a copy this attempt did not make (only while it still says ours)."""
    if read_record(archive, copy_name) == record:
        (archive / COPIES_DIR / record_name(copy_name)).unlink(missing_ok=True)


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
    fsync_dir(target.parent)
    fsync_dir(sessions_dir)
    return f"{ARCHIVE_DIR}/{file_name}"


def _taken(archive: Path, name: str) -> bool:
    """A copy by that name is there, or its record is (the copy was made and is gone: a restore)."""
    return os.path.lexists(archive / name) or os.path.lexists(archive / COPIES_DIR / record_name(name))


def _existing_archive_names(archive: Path, session_id: str) -> Iterator[str]:
    n = 0
    while _taken(archive, archive_name(session_id, n)):
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
    record = CopyRecord(size, mtime_ns, sha256)
    for name in _existing_archive_names(archive, session_id):
        target = archive / name
        try:
            same = os.path.samefile(target, source)
        except FileNotFoundError:  # only its record is there
            # A retry after a crash between the record and the copy: the record is this very file's.
            if read_record(archive, name) == record and _place(source, target):
                break
            continue
        if same:  # a retry after a crash between link and unlink: the archive entry is this very file
            if read_record(archive, name) is None:
                write_record(archive, name, record)  # linked by a release that wrote no records
            source.unlink()
            fsync_dir(sessions_dir)
            return ArchiveOutcome(f"{ARCHIVE_DIR}/{name}", already_done=True)
    else:
        n = 0
        while True:
            target = archive / archive_name(session_id, n)
            n += 1
            if _taken(archive, target.name):
                continue
            try:  # the record before the copy: a copy always has its record
                write_record(archive, target.name, record)
            except ArchiveError as exc:
                raise ArchiveError(f"cannot archive {source} as {target}: {exc}") from None
            try:
                placed = _place(source, target)
            except ArchiveError:
                _drop_record(archive, target.name, record)
                raise
            if placed:
                break
            _drop_record(archive, target.name, record)  # taken meanwhile, by a copy not made here
    try:
        source.unlink(missing_ok=True)  # gone already after a rename
    except OSError as exc:
        raise ArchiveError(f"archived {source} as {target} but cannot remove it: {exc.strerror}") from None
    fsync_dir(archive)
    fsync_dir(sessions_dir)
    return ArchiveOutcome(f"{ARCHIVE_DIR}/{target.name}", already_done=False)


def _place(source: Path, target: Path) -> bool:
    """Make ``target`` the source file, never overwriting: a hard link (the source is then still there),
    or a rename where this filesystem cannot hard-link. False when ``target`` exists; ``ArchiveError``
    when nothing could be placed."""
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in _NO_LINK_ERRNOS:
            raise ArchiveError(f"cannot archive {source} as {target}: {exc.strerror or exc}") from None
        if target.exists():
            return False
        _rename(source, target)
    return True


def _rename(source: Path, target: Path) -> None:
    try:
        os.rename(source, target)
    except OSError as exc:
        raise ArchiveError(f"cannot archive {source} as {target}: {exc.strerror or exc}") from None
