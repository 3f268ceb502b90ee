"""openclaw_nexus.stores: a .zst export is staged decompressed, archived with its original; the same
bytes are recognised as already sent; a failed upload leaves no staging file behind."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import zstandard

from openclaw_nexus import stores
from openclaw_nexus.archive import ArchiveError, find_copy, move_as_is
from openclaw_nexus.staging import Transcript
from openclaw_nexus.transcript import TranscriptError

SID = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
NAME = f"{SID}.jsonl.deleted.2026-11-20T10-00-00.000Z.0123456789abcdef0123456789abcdef.zst"
CONTENT = b'{"type":"session","id":"0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"}\n{"text":"h\xc3\xa9"}\n'


@pytest.fixture
def state(tmp_path) -> Path:
    (tmp_path / "agents" / "main" / "sessions").mkdir(parents=True)
    return tmp_path


def sessions(state: Path) -> Path:
    return state / "agents" / "main" / "sessions"


def zst_export(state: Path, content: bytes = CONTENT) -> dict:
    # A stream frame without a content size, as OpenClaw's archive exports are.
    packed = zstandard.ZstdCompressor(level=1, write_content_size=False).compress(content)
    path = sessions(state) / NAME
    path.write_bytes(packed)
    os.utime(path, ns=(1_700_000_000_000_000_000, 1_700_000_000_000_000_000))
    info = path.stat()
    return {
        "agentId": "main",
        "sessionId": SID,
        "file": NAME,
        "size": info.st_size,
        "mtimeNs": info.st_mtime_ns,
        "kind": "deleted",
        "store": "jsonl",
    }


def receipt_for(transcript: Transcript, session: dict, duplicate: str | None = None) -> dict:
    data = transcript.path.read_bytes()
    return {
        **session,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
        "staged": transcript.staged,
        "duplicateOf": duplicate,
    }


def test_zst_export_is_staged_decompressed_owner_only_with_the_exports_mtime(state):
    session = zst_export(state)
    (sessions(state) / "sessions.json").write_text("{}")
    transcript = stores.open_transcript(state, session)
    assert transcript.path.read_bytes() == CONTENT
    assert transcript.staged.startswith("archive/.staging/") and transcript.path.parent.name == ".staging"
    assert oct(transcript.path.stat().st_mode & 0o777) == "0o600"
    assert oct((sessions(state) / "archive").stat().st_mode & 0o777) == "0o700"
    assert transcript.path.stat().st_mtime_ns == session["mtimeNs"]
    assert transcript.source == sessions(state) / NAME


def test_zst_export_archived_as_its_content_and_moved_under_its_own_name(state):
    session = zst_export(state)
    (sessions(state) / "sessions.json").write_text("{}")
    packed = (sessions(state) / NAME).read_bytes()
    transcript = stores.open_transcript(state, session)
    receipt = receipt_for(transcript, session)
    outcome = stores.record_archived(state, session, receipt)
    archive = sessions(state) / "archive"
    assert outcome.archived_as == f"archive/{SID}.jsonl"
    assert (archive / f"{SID}.jsonl").read_bytes() == CONTENT
    assert (archive / NAME).read_bytes() == packed
    assert not (sessions(state) / NAME).exists()
    assert list((archive / ".staging").iterdir()) == []
    # Retried after it all happened: nothing more to do, nothing lost.
    again = stores.record_archived(state, session, receipt)
    assert again.archived_as == f"archive/{SID}.jsonl" and again.already_done


def test_same_bytes_are_found_as_already_sent_and_not_archived_twice(state):
    archive = sessions(state) / "archive"
    archive.mkdir()
    (archive / f"{SID}.jsonl").write_bytes(CONTENT)
    (sessions(state) / "sessions.json").write_text("{}")
    session = zst_export(state)
    transcript = stores.open_transcript(state, session)
    sha = hashlib.sha256(CONTENT).hexdigest()
    duplicate = stores.already_sent(state, session, size=len(CONTENT), sha256=sha)
    assert duplicate == f"archive/{SID}.jsonl"
    assert stores.already_sent(state, {**session, "kind": "replay"}, size=len(CONTENT), sha256=sha) is None
    assert find_copy(sessions(state), SID, size=len(CONTENT), sha256="0" * 64) is None
    outcome = stores.record_archived(state, session, receipt_for(transcript, session, duplicate))
    assert outcome.archived_as == f"archive/{SID}.jsonl" and outcome.already_done
    assert sorted(p.name for p in archive.iterdir() if p.is_file()) == sorted([f"{SID}.jsonl", NAME])


def test_discard_removes_the_staging_copy(state):
    session = zst_export(state)
    (sessions(state) / "sessions.json").write_text("{}")
    transcript = stores.open_transcript(state, session)
    stores.discard(transcript)
    assert not transcript.path.exists()
    assert (sessions(state) / NAME).exists()


def test_a_zst_file_that_is_no_zstd_is_an_error_naming_it(state):
    session = zst_export(state)
    path = sessions(state) / NAME
    path.write_bytes(b"not zstd at all")
    os.utime(path, ns=(session["mtimeNs"], session["mtimeNs"]))
    (sessions(state) / "sessions.json").write_text("{}")
    session["size"] = path.stat().st_size
    with pytest.raises(TranscriptError, match=f"{NAME} is not a readable zstd export"):
        stores.open_transcript(state, session)
    assert list((sessions(state) / "archive" / ".staging").iterdir()) == []


def test_active_again_in_the_index_is_refused(state):
    session = zst_export(state)
    (sessions(state) / "sessions.json").write_text(json.dumps({"agent:main:main": {"sessionId": SID}}))
    with pytest.raises(TranscriptError, match="is an active session again"):
        stores.open_transcript(state, session)


def test_a_symlinked_archive_folder_gets_no_staging_file(state, tmp_path):
    session = zst_export(state)
    (sessions(state) / "sessions.json").write_text("{}")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (sessions(state) / "archive").symlink_to(elsewhere, target_is_directory=True)
    with pytest.raises(TranscriptError, match="is a symlink: not followed, nothing staged"):
        stores.open_transcript(state, session)
    assert list(elsewhere.iterdir()) == []


def test_move_as_is_never_overwrites(state):
    folder = sessions(state)
    (folder / "archive").mkdir()
    (folder / NAME).write_bytes(b"new")
    (folder / "archive" / NAME).write_bytes(b"old")
    with pytest.raises(ArchiveError, match="already exists"):
        move_as_is(folder, NAME)
    assert (folder / NAME).read_bytes() == b"new"
    assert (folder / "archive" / NAME).read_bytes() == b"old"
