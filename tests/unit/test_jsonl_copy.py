"""JSONL era archived by copy (``SESSION_UPLOAD_JSONL_ARCHIVE=copy``): a completed transcript is sent from a
staging copy, that copy becomes ``archive/<id>[+N].jsonl`` (0600, the file's mtime, with its record) and
OpenClaw's file stays where it is, byte for byte, until OpenClaw's own retention removes it. A file whose copy
holds its size and mtime is never sent again, also after OpenClaw renames it (``.reset.<ts>``,
``.deleted.<ts>``: a ``renameSync``, which keeps both). The pure store, no Airflow, no HTTP.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from openclaw_nexus import stores
from openclaw_nexus.config import Settings
from openclaw_nexus.copy_records import read_record
from openclaw_nexus.discovery import Window
from openclaw_nexus.files import ARCHIVE_BY, BY_COPY
from openclaw_nexus.transcript import TranscriptError

NOW = 1_780_000_000
WINDOW = Window(now=NOW, settle_seconds=60)
DONE = "2d9b5e1f-7c43-4f0a-b132-4e5d6c7f8091"
LIVE = "3eac6f20-8d54-4a1b-c243-5f6e7d809102"
CONTENT = (
    b'{"type":"session","version":3,"id":"2d9b5e1f-7c43-4f0a-b132-4e5d6c7f8091"}\n'
    b'{"type":"message","message":{"role":"user","content":"caf\xc3\xa9 \xe2\x9c\x93"}}\n'
)
RESET = f"{DONE}.jsonl.reset.2026-02-02T20-29-47.344Z"
DELETED = f"{DONE}.jsonl.deleted.2026-02-02T20-29-47.344Z"


def sessions(state: Path) -> Path:
    return state / "agents" / "main" / "sessions"


def archive(state: Path) -> Path:
    return sessions(state) / "archive"


def write_index(state: Path, *sids: str) -> None:
    index = {f"agent:main:{n}": {"sessionId": sid, "updatedAt": 1} for n, sid in enumerate(sids)}
    (sessions(state) / "sessions.json").write_text(json.dumps(index))


def write(state: Path, name: str, content: bytes, age: float) -> Path:
    path = sessions(state) / name
    path.write_bytes(content)
    ns = int((NOW - age) * 1e9)
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def state(tmp_path) -> Path:
    """One completed transcript (an idle rollover: no longer in ``sessions.json``), one active one."""
    sessions(tmp_path).mkdir(parents=True)
    write_index(tmp_path, LIVE)
    write(tmp_path, f"{DONE}.jsonl", CONTENT, age=3600)
    write(tmp_path, f"{LIVE}.jsonl", b'{"type":"session","id":"' + LIVE.encode() + b'"}\n', age=3600)
    return tmp_path


def scan(state: Path, *, by_copy: bool = True):
    return stores.scan_agent(state, "main", WINDOW, jsonl_by_copy=by_copy)


def deliver(state: Path, item: dict, *, duplicate: str | None = None) -> tuple[bytes, object]:
    """What upload + archive do once Nexus confirmed: the bytes sent and the archive outcome."""
    transcript = stores.open_transcript(state, item)
    data = transcript.path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    receipt = {
        **item,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": sha,
        "staged": transcript.staged,
        "duplicateOf": stores.already_sent(state, item, size=len(data), sha256=sha),
    }
    assert receipt["duplicateOf"] == duplicate
    stores.check_unchanged(item, transcript, "")
    return data, stores.record_archived(state, item, receipt)


def fingerprint(path: Path) -> tuple:
    info = path.stat()
    return path.read_bytes(), info.st_mtime_ns, info.st_ino, stat.S_IMODE(info.st_mode)


def test_copy_is_the_bytes_sent_0600_with_the_files_mtime_and_the_file_stays_untouched(state):
    original = sessions(state) / f"{DONE}.jsonl"
    before = fingerprint(original)
    [item] = scan(state).sessions
    assert (item["file"], item["kind"], item[ARCHIVE_BY]) == (f"{DONE}.jsonl", "live", BY_COPY)

    data, outcome = deliver(state, item)

    assert data == CONTENT
    assert (outcome.archived_as, outcome.already_done) == (f"archive/{DONE}.jsonl", False)
    copy = archive(state) / f"{DONE}.jsonl"
    assert copy.read_bytes() == CONTENT and copy.stat().st_ino != original.stat().st_ino
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive(state).stat().st_mode) == 0o700
    assert copy.stat().st_mtime_ns == before[1]
    assert fingerprint(original) == before, "OpenClaw's file changed (bytes, mtime, inode or mode)"
    record = read_record(archive(state), f"{DONE}.jsonl")
    assert record is not None
    assert (record.size, record.mtime_ns, record.sha256) == (
        len(CONTENT),
        before[1],
        hashlib.sha256(CONTENT).hexdigest(),
    )
    assert list((archive(state) / ".staging").iterdir()) == [], "the staging copy became the copy"


def test_the_next_scan_sends_nothing_whatever_the_setting(state):
    [item] = scan(state).sessions
    deliver(state, item)
    again = scan(state)
    assert again.sessions == [] and again.skipped["already_archived"] == 1
    # The watcher and the check scan without the setting: they see the same nothing to send.
    assert scan(state, by_copy=False).sessions == []


@pytest.mark.parametrize("renamed", [RESET, DELETED])
def test_not_sent_again_after_openclaw_renames_the_file(state, renamed):
    [item] = scan(state).sessions
    deliver(state, item)
    before = fingerprint(sessions(state) / f"{DONE}.jsonl")
    # OpenClaw 2026.7.35's archiveFileOnDisk: a renameSync of the same file (size and mtime kept).
    os.rename(sessions(state) / f"{DONE}.jsonl", sessions(state) / renamed)

    again = scan(state)

    assert again.sessions == [] and again.skipped["already_archived"] == 1
    assert fingerprint(sessions(state) / renamed) == before
    assert sorted(p.name for p in archive(state).glob("*.jsonl")) == [f"{DONE}.jsonl"]


def test_a_file_that_changed_after_its_copy_is_sent_again_as_a_new_copy_never_overwriting(state):
    """An unlisted file that grew (an append whose handle OpenClaw opened before the session ended) is not
    what was sent: its new bytes go to Nexus and become ``<id>+1.jsonl``; the first copy stays as it was."""
    [item] = scan(state).sessions
    deliver(state, item)
    first = fingerprint(archive(state) / f"{DONE}.jsonl")
    grown = CONTENT + b'{"type":"message","message":{"role":"assistant","content":"late"}}\n'
    write(state, f"{DONE}.jsonl", grown, age=1800)
    os.rename(sessions(state) / f"{DONE}.jsonl", sessions(state) / RESET)

    [item] = scan(state).sessions
    assert (item["file"], item["kind"], item[ARCHIVE_BY]) == (RESET, "reset", BY_COPY)
    data, outcome = deliver(state, item)

    assert data == grown and outcome.archived_as == f"archive/{DONE}+1.jsonl"
    assert fingerprint(archive(state) / f"{DONE}.jsonl") == first
    second = archive(state) / f"{DONE}+1.jsonl"
    assert second.read_bytes() == grown and stat.S_IMODE(second.stat().st_mode) == 0o600
    assert (sessions(state) / RESET).read_bytes() == grown
    assert scan(state).sessions == []


def test_a_name_taken_by_another_file_is_never_overwritten(state):
    older = b'{"type":"session","id":"an older transcript"}\n'
    archive(state).mkdir(mode=0o700)
    (archive(state) / f"{DONE}.jsonl").write_bytes(older)
    [item] = scan(state).sessions
    _, outcome = deliver(state, item)
    assert outcome.archived_as == f"archive/{DONE}+1.jsonl"
    assert (archive(state) / f"{DONE}.jsonl").read_bytes() == older
    assert (archive(state) / f"{DONE}+1.jsonl").read_bytes() == CONTENT
    assert (sessions(state) / f"{DONE}.jsonl").read_bytes() == CONTENT


def test_listed_again_in_sessions_json_it_is_an_active_session_not_sent(state):
    [item] = scan(state).sessions
    deliver(state, item)
    write_index(state, LIVE, DONE)
    write(state, f"{DONE}.jsonl", CONTENT + b"{}\n", age=1800)
    again = scan(state)
    assert again.sessions == [] and again.skipped["active"] == 2


def test_listed_again_between_discovery_and_upload_it_is_not_sent(state):
    [item] = scan(state).sessions
    write_index(state, LIVE, DONE)
    with pytest.raises(TranscriptError, match="active session again"):
        stores.open_transcript(state, item)
    assert not (archive(state) / f"{DONE}.jsonl").exists()


def test_the_same_bytes_under_a_new_mtime_are_not_sent_and_the_copy_stands_for_the_file(state):
    [item] = scan(state).sessions
    deliver(state, item)
    write(state, f"{DONE}.jsonl", CONTENT, age=1800)  # rewritten as it was: same bytes, another mtime
    [item] = scan(state).sessions
    _, outcome = deliver(state, item, duplicate=f"archive/{DONE}.jsonl")
    assert outcome.archived_as == f"archive/{DONE}.jsonl" and outcome.already_done
    assert sorted(p.name for p in archive(state).glob("*.jsonl")) == [f"{DONE}.jsonl"]
    assert scan(state).sessions == []


def test_a_file_whose_copy_survives_only_as_its_record_is_not_sent_again(state):
    """A host restored from ``openclaw backup create``: the copies (``*.jsonl``) are left out, the records and
    OpenClaw's ``.reset.`` file (not ``*.jsonl``) come back."""
    [item] = scan(state).sessions
    deliver(state, item)
    os.rename(sessions(state) / f"{DONE}.jsonl", sessions(state) / RESET)
    (archive(state) / f"{DONE}.jsonl").unlink()
    assert scan(state).sessions == []


def test_move_stays_the_default(state):
    [item] = stores.scan_agent(state, "main", WINDOW).sessions
    assert ARCHIVE_BY not in item
    _, outcome = deliver(state, item)
    assert outcome.archived_as == f"archive/{DONE}.jsonl"
    assert not (sessions(state) / f"{DONE}.jsonl").exists()
    assert (archive(state) / f"{DONE}.jsonl").read_bytes() == CONTENT


def test_a_hard_link_to_the_file_itself_is_no_copy(state):
    """A move interrupted between its link and its unlink: the next run finds the file and finishes it."""
    archive(state).mkdir(mode=0o700)
    os.link(sessions(state) / f"{DONE}.jsonl", archive(state) / f"{DONE}.jsonl")
    [item] = stores.scan_agent(state, "main", WINDOW).sessions
    _, outcome = deliver(state, item, duplicate=f"archive/{DONE}.jsonl")
    assert outcome.archived_as == f"archive/{DONE}.jsonl"
    assert not (sessions(state) / f"{DONE}.jsonl").exists()


@pytest.mark.parametrize(
    ("value", "mode"), [("", "move"), ("move", "move"), ("copy", "copy"), (" Copy", "copy")]
)
def test_the_setting_from_the_environment(monkeypatch, value, mode):
    monkeypatch.setenv("SESSION_UPLOAD_JSONL_ARCHIVE", value)
    assert Settings.from_env().jsonl_archive == mode


def test_an_invalid_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv("SESSION_UPLOAD_JSONL_ARCHIVE", "link")
    with pytest.raises(ValueError, match=r"SESSION_UPLOAD_JSONL_ARCHIVE must be move or copy, not 'link'"):
        Settings.from_env()
