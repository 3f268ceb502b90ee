"""openclaw_nexus.archive: the move into sessions/archive/ never overwrites, never loses, can be retried."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from openclaw_nexus import archive as archive_module
from openclaw_nexus.archive import ArchiveError, ArchiveOutcome, archive_name, archive_transcript, file_sha256
from tests.privileges import modes_apply_prefix

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"

SID = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
CONTENT = b'{"type": "session", "id": "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"}\n{"text": "h\xc3\xa9"}\n'


@pytest.fixture
def sessions(tmp_path) -> Path:
    path = tmp_path / "agents" / "main" / "sessions"
    path.mkdir(parents=True)
    return path


def write(path: Path, content: bytes = CONTENT) -> dict:
    """Write a transcript and return what the upload would have confirmed about it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    info = path.stat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "sha256": hashlib.sha256(content).hexdigest()}


def listing(folder: Path) -> dict[str, bytes]:
    """The archive copies (the package's dot-folders, such as the records in ``.copies/``, left out)."""
    if not folder.exists():
        return {}
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if not p.name.startswith(".")}


def test_archive_name():
    assert archive_name(SID, 0) == f"{SID}.jsonl"
    assert archive_name(SID, 1) == f"{SID}+1.jsonl"
    assert archive_name(SID, 12) == f"{SID}+12.jsonl"


def test_file_sha256(tmp_path):
    path = tmp_path / "f"
    data = os.urandom(3 * (1 << 20) + 5)  # more than one hashing chunk
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_moves_the_transcript_into_the_archive(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert outcome == ArchiveOutcome(archived_as=f"archive/{SID}.jsonl", already_done=False)
    assert not (sessions / f"{SID}.jsonl").exists()
    assert listing(sessions / "archive") == {f"{SID}.jsonl": CONTENT}
    assert sorted(p.name for p in sessions.iterdir()) == ["archive"]


@pytest.mark.parametrize(
    "file_name",
    [
        f"{SID}-topic-42.jsonl",
        f"2026-07-01T09-00-00-123Z_{SID}.jsonl",
        f"{SID}.jsonl.reset.2026-02-02T20-29-47.344Z",
    ],
)
def test_archive_name_is_the_session_id_whatever_the_file_was_called(sessions, file_name):
    seen = write(sessions / file_name)
    outcome = archive_transcript(sessions, file_name, SID, **seen)
    assert outcome.archived_as == f"archive/{SID}.jsonl"
    assert listing(sessions / "archive") == {f"{SID}.jsonl": CONTENT}
    assert not (sessions / file_name).exists()


def test_collisions_keep_both_copies(sessions):
    earlier = b'{"earlier": true}\n'
    write(sessions / "archive" / f"{SID}.jsonl", earlier)

    seen = write(sessions / f"{SID}.jsonl")
    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert outcome == ArchiveOutcome(f"archive/{SID}+1.jsonl", already_done=False)

    later = b'{"later": true}\n'
    seen = write(sessions / f"{SID}-topic-7.jsonl", later)
    outcome = archive_transcript(sessions, f"{SID}-topic-7.jsonl", SID, **seen)
    assert outcome == ArchiveOutcome(f"archive/{SID}+2.jsonl", already_done=False)

    assert listing(sessions / "archive") == {
        f"{SID}.jsonl": earlier,
        f"{SID}+1.jsonl": CONTENT,
        f"{SID}+2.jsonl": later,
    }
    assert sorted(p.name for p in sessions.iterdir()) == ["archive"]


def test_retry_after_the_move_is_a_no_op(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    first = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    before = listing(sessions / "archive")
    again = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert first == ArchiveOutcome(f"archive/{SID}.jsonl", already_done=False)
    assert again == ArchiveOutcome(f"archive/{SID}.jsonl", already_done=True)
    assert listing(sessions / "archive") == before == {f"{SID}.jsonl": CONTENT}
    assert not (sessions / f"{SID}.jsonl").exists()


def test_retry_after_a_move_into_a_collision_finds_its_own_copy(sessions):
    write(sessions / "archive" / f"{SID}.jsonl", b"other\n")
    seen = write(sessions / f"{SID}.jsonl")
    assert archive_transcript(sessions, f"{SID}.jsonl", SID, **seen).archived_as == f"archive/{SID}+1.jsonl"
    again = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert again == ArchiveOutcome(f"archive/{SID}+1.jsonl", already_done=True)
    assert listing(sessions / "archive") == {f"{SID}.jsonl": b"other\n", f"{SID}+1.jsonl": CONTENT}


@pytest.mark.parametrize("existing", [0, 2])
def test_crash_between_link_and_unlink_is_finished(sessions, existing):
    for n in range(existing):
        write(sessions / "archive" / archive_name(SID, n), f"older {n}\n".encode())
    seen = write(sessions / f"{SID}.jsonl")
    (sessions / "archive").mkdir(exist_ok=True)
    os.link(sessions / f"{SID}.jsonl", sessions / "archive" / archive_name(SID, existing))

    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)

    assert outcome == ArchiveOutcome(f"archive/{archive_name(SID, existing)}", already_done=True)
    assert not (sessions / f"{SID}.jsonl").exists()
    archived = listing(sessions / "archive")
    assert len(archived) == existing + 1
    assert archived[archive_name(SID, existing)] == CONTENT
    assert (sessions / "archive" / archive_name(SID, existing)).stat().st_nlink == 1


def test_source_gone_without_a_matching_copy_is_an_error(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    (sessions / f"{SID}.jsonl").unlink()
    with pytest.raises(ArchiveError) as caught:
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    message = str(caught.value)
    assert f"{sessions / (SID + '.jsonl')} is gone and no archived copy matches" in message
    assert seen["sha256"][:12] in message
    assert not (sessions / "archive").exists()
    assert list(sessions.iterdir()) == []


def test_source_gone_and_only_other_content_archived_is_an_error(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    (sessions / f"{SID}.jsonl").unlink()
    write(sessions / "archive" / f"{SID}.jsonl", CONTENT[:-1] + b"X")  # same size, other bytes
    write(sessions / "archive" / f"{SID}+1.jsonl", b"short\n")
    with pytest.raises(ArchiveError, match="is gone and no archived copy matches"):
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert listing(sessions / "archive") == {
        f"{SID}.jsonl": CONTENT[:-1] + b"X",
        f"{SID}+1.jsonl": b"short\n",
    }


def test_file_appended_to_after_upload_is_left(sessions):
    path = sessions / f"{SID}.jsonl"
    seen = write(path)
    with path.open("ab") as handle:
        handle.write(b'{"text": "more"}\n')
    with pytest.raises(ArchiveError) as caught:
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    now, uploaded = len(CONTENT) + 17, len(CONTENT)
    assert (
        str(caught.value)
        == f"{path} changed after its upload ({now} bytes now, {uploaded} uploaded): left in place"
    )
    assert path.read_bytes() == CONTENT + b'{"text": "more"}\n'
    assert not (sessions / "archive").exists()


def test_file_touched_after_upload_is_left(sessions):
    path = sessions / f"{SID}.jsonl"
    seen = write(path)
    os.utime(path, ns=(seen["mtime_ns"] + 1_000_000, seen["mtime_ns"] + 1_000_000))
    with pytest.raises(ArchiveError, match="changed after its upload"):
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert path.read_bytes() == CONTENT
    assert not (sessions / "archive").exists()


def test_archive_dir_not_writable(sessions):
    """Run as a user that file modes apply to (as root: without CAP_DAC_OVERRIDE, tests/privileges.py)."""
    path = sessions / f"{SID}.jsonl"
    seen = write(path)
    archive_dir = sessions / "archive"
    archive_dir.mkdir()
    archive_dir.chmod(0o500)
    code = (
        "import json, sys; from pathlib import Path\n"
        "from openclaw_nexus.archive import ArchiveError, archive_transcript\n"
        "sessions, sid, seen = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])\n"
        "try:\n"
        "    archive_transcript(Path(sessions), sid + '.jsonl', sid, **seen)\n"
        "except ArchiveError as exc:\n"
        "    print(json.dumps(str(exc)))\n"
        "else:\n"
        "    print(json.dumps(None))\n"
    )
    try:
        done = subprocess.run(
            [*modes_apply_prefix(), sys.executable, "-c", code, str(sessions), SID, json.dumps(seen)],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(PLUGINS)},
            timeout=60,
        )
    finally:
        archive_dir.chmod(0o700)
    assert done.returncode == 0, done.stderr
    error = json.loads(done.stdout)
    assert error is not None, "archived into a folder it may not write"
    assert str(archive_dir / f"{SID}.jsonl") in error and "cannot archive" in error
    assert "Permission denied" in error
    assert path.read_bytes() == CONTENT
    assert list(archive_dir.iterdir()) == []


def test_archive_path_taken_by_a_file(sessions):
    path = sessions / f"{SID}.jsonl"
    seen = write(path)
    (sessions / "archive").write_bytes(b"not a folder")
    with pytest.raises(ArchiveError) as caught:
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert str(caught.value).startswith(f"cannot create {sessions / 'archive'}: ")
    assert path.read_bytes() == CONTENT
    assert (sessions / "archive").read_bytes() == b"not a folder"


@pytest.mark.parametrize("link_errno", [errno.EPERM, errno.EXDEV, errno.ENOTSUP])
def test_falls_back_to_rename_where_hard_links_are_impossible(sessions, monkeypatch, link_errno):
    write(sessions / "archive" / f"{SID}.jsonl", b"other\n")
    seen = write(sessions / f"{SID}.jsonl")

    def no_links(*args, **kwargs):
        raise OSError(link_errno, os.strerror(link_errno))

    monkeypatch.setattr(archive_module.os, "link", no_links)
    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert outcome == ArchiveOutcome(f"archive/{SID}+1.jsonl", already_done=False)
    assert listing(sessions / "archive") == {f"{SID}.jsonl": b"other\n", f"{SID}+1.jsonl": CONTENT}
    assert not (sessions / f"{SID}.jsonl").exists()


def test_other_link_failures_are_errors(sessions, monkeypatch):
    path = sessions / f"{SID}.jsonl"
    seen = write(path)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_module.os, "link", disk_full)
    with pytest.raises(ArchiveError) as caught:
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert str(caught.value) == (
        f"cannot archive {path} as {sessions / 'archive' / (SID + '.jsonl')}: No space left on device"
    )
    assert path.read_bytes() == CONTENT
