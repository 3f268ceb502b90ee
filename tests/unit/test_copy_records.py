"""The record of each archive copy (``archive/.copies/``): what a host restored from OpenClaw's backup, which
leaves the copies out, still knows was sent. A copy that is missing but recorded counts as sent, with the
recorded size, mtime and sha256; a copy with no record does not; a record is written before its copy and
only by the archive step, which runs for bytes Nexus confirmed.

OpenClaw's rule, from its ``docs/cli/backup.md`` and ``isVolatileBackupPath`` (2026.9.6): under
``agents/<id>/sessions/**`` it skips every name whose extension is ``.jsonl`` or ``.log`` (any case), and
anywhere under the state dir every name matching ``.+\\.(sock$|pid$|tmp(\\.|$))``. ``backed_up`` below
spells that rule out on its own; the end-to-end test (``tests/e2e/test_backup_restore.py``) has OpenClaw
itself back up and restore.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
from pathlib import Path

import pytest

from openclaw_nexus import archive as archive_module
from openclaw_nexus import discovery, stores
from openclaw_nexus.archive import ArchiveError, archive_transcript, find_copy, holds_version, restamp
from openclaw_nexus.discovery import ArchiveIndex, Window

SID = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
CONTENT = b'{"type":"session","id":"0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"}\n{"text":"h\xc3\xa9"}\n'
MTIME = 1_779_000_000_123_456_789
_TRANSIENT = re.compile(r".+\.(?:sock$|pid$|tmp(?:\.|$))", re.IGNORECASE)


def backed_up(relative: str) -> bool:
    """Whether OpenClaw's backup keeps this file of an agent's ``sessions/`` folder (its rule, above)."""
    name = relative.rsplit("/", 1)[-1]
    extension = os.path.splitext(name)[1].lower()
    return extension not in {".jsonl", ".log"} and not _TRANSIENT.fullmatch(name)


def restore_as_openclaw_backup_would(sessions: Path) -> list[str]:
    """Remove every file of ``sessions/`` that OpenClaw's backup leaves out; the names removed."""
    removed = []
    for path in sorted(sessions.rglob("*")):
        relative = str(path.relative_to(sessions))
        if path.is_file() and not backed_up(relative):
            path.unlink()
            removed.append(relative)
    return removed


@pytest.fixture
def sessions(tmp_path) -> Path:
    path = tmp_path / "agents" / "main" / "sessions"
    path.mkdir(parents=True)
    return path


def write(path: Path, content: bytes = CONTENT, mtime_ns: int = MTIME) -> dict:
    """A transcript, and what the upload would have confirmed about it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    os.utime(path, ns=(mtime_ns, mtime_ns))
    return {"size": len(content), "mtime_ns": mtime_ns, "sha256": hashlib.sha256(content).hexdigest()}


def records(sessions: Path) -> dict[str, dict]:
    folder = sessions / "archive" / ".copies"
    if not folder.exists():
        return {}
    return {p.name: json.loads(p.read_bytes()) for p in sorted(folder.iterdir())}


def test_archiving_records_the_copy_with_its_size_mtime_and_sha256_in_a_file_openclaws_backup_keeps(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)

    assert records(sessions) == {
        f"{SID}.json": {
            "copy": f"{SID}.jsonl",
            "size": len(CONTENT),
            "mtimeNs": MTIME,
            "sha256": hashlib.sha256(CONTENT).hexdigest(),
        }
    }
    record = sessions / "archive" / ".copies" / f"{SID}.json"
    assert backed_up(str(record.relative_to(sessions)))
    assert not backed_up(f"archive/{SID}.jsonl"), "guards the rule: OpenClaw's backup leaves copies out"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700
    copy = sessions / "archive" / f"{SID}.jsonl"
    assert record.stat().st_mtime_ns == copy.stat().st_mtime_ns == MTIME
    assert sorted(p.name for p in record.parent.iterdir()) == [f"{SID}.json"], "no partial file left"


@pytest.mark.parametrize(
    ("session_id", "conversation", "n"),
    [
        ("a.tmp.b", None, 0),  # OpenClaw's backup skips names with ".tmp." anywhere
        ("x.log", None, 3),
        ("chat.jsonl", "0", 0),
        (SID, "b6b9b41d", 2),
    ],
)
def test_every_copy_name_gets_a_record_name_the_backup_keeps_and_reads_back(
    sessions, session_id, conversation, n
):
    stem = session_id if conversation is None else f"{session_id}@{conversation}"
    for k in range(n):  # earlier versions, each archived in turn
        seen = write(sessions / f"v{k}", f"version {k}\n".encode(), MTIME + k)
        archive_transcript(sessions, f"v{k}", stem, **seen)
    seen = write(sessions / "last", CONTENT, MTIME + 99)
    outcome = archive_transcript(sessions, "last", stem, **seen)
    copy = f"{stem}.jsonl" if n == 0 else f"{stem}+{n}.jsonl"
    assert outcome.archived_as == f"archive/{copy}"
    names = [p.name for p in (sessions / "archive" / ".copies").iterdir()]
    assert len(names) == n + 1 and all(backed_up(f"archive/.copies/{name}") for name in names)

    restore_as_openclaw_backup_would(sessions)

    index = ArchiveIndex(sessions)
    assert index.mtimes(stem) == [MTIME + k for k in range(n)] + [MTIME + 99]
    assert index.has(stem)
    assert copy in index.names_of(session_id)


def test_a_missing_copy_with_its_record_counts_as_sent_and_without_it_does_not(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert restore_as_openclaw_backup_would(sessions) == [f"archive/{SID}.jsonl"]

    index = ArchiveIndex(sessions)
    assert index.has(SID) and index.mtimes(SID) == [MTIME]
    assert index.names_of(SID) == [f"{SID}.jsonl"] and index.session_mtimes(SID) == {MTIME}
    assert find_copy(sessions, SID, size=seen["size"], sha256=seen["sha256"]) == f"archive/{SID}.jsonl"
    assert find_copy(sessions, SID, size=seen["size"], sha256="0" * 64) is None
    assert holds_version(sessions, SID, size=seen["size"], mtime_ns=MTIME)
    assert not holds_version(sessions, SID, size=seen["size"], mtime_ns=MTIME + 1)

    (sessions / "archive" / ".copies" / f"{SID}.json").unlink()
    index = ArchiveIndex(sessions)
    assert not index.has(SID) and index.mtimes(SID) == [] and index.names_of(SID) == []
    assert index.session_mtimes(SID) == set()
    assert find_copy(sessions, SID, size=seen["size"], sha256=seen["sha256"]) is None
    assert not holds_version(sessions, SID, size=seen["size"], mtime_ns=MTIME)


GOOD = {"copy": f"{SID}.jsonl", "size": 3, "mtimeNs": 1, "sha256": "a" * 64}


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not json",
        json.dumps(GOOD | {"copy": "someone-else.jsonl"}).encode(),
        json.dumps(GOOD | {"size": "3"}).encode(),
        json.dumps(GOOD | {"mtimeNs": True}).encode(),
        json.dumps(GOOD | {"mtimeNs": -1}).encode(),
        json.dumps(GOOD | {"sha256": "short"}).encode(),
        json.dumps([GOOD]).encode(),
    ],
)
def test_a_record_that_cannot_be_trusted_is_no_record(sessions, content):
    folder = sessions / "archive" / ".copies"
    folder.mkdir(parents=True)
    (folder / f"{SID}.json").write_bytes(json.dumps(GOOD).encode())
    assert ArchiveIndex(sessions).mtimes(SID) == [1], "guards the cases below: this record is trusted"
    (folder / f"{SID}.json").write_bytes(content)
    index = ArchiveIndex(sessions)
    assert index.mtimes(SID) == [] and index.record(f"{SID}.jsonl") is None
    assert find_copy(sessions, SID, size=3, sha256="a" * 64) is None


def test_a_symlinked_records_folder_is_not_followed(sessions, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{SID}.json").write_text(
        json.dumps({"copy": f"{SID}.jsonl", "size": 3, "mtimeNs": MTIME, "sha256": "a" * 64})
    )
    (sessions / "archive").mkdir()
    (sessions / "archive" / ".copies").symlink_to(elsewhere)
    assert ArchiveIndex(sessions).mtimes(SID) == []
    assert find_copy(sessions, SID, size=3, sha256="a" * 64) is None
    seen = write(sessions / f"{SID}.jsonl")
    with pytest.raises(ArchiveError, match="is a symlink: not followed"):
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert (sessions / f"{SID}.jsonl").read_bytes() == CONTENT
    assert sorted(p.name for p in (sessions / "archive").iterdir()) == [".copies"]


def test_a_new_version_after_a_restore_never_takes_the_name_of_a_recorded_copy(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    restore_as_openclaw_backup_would(sessions)

    later = CONTENT + b'{"text":"more"}\n'
    seen = write(sessions / f"{SID}.jsonl", later, MTIME + 5)
    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)

    assert outcome.archived_as == f"archive/{SID}+1.jsonl" and not outcome.already_done
    assert (sessions / "archive" / f"{SID}+1.jsonl").read_bytes() == later
    assert not (sessions / "archive" / f"{SID}.jsonl").exists()
    assert [r["copy"] for r in records(sessions).values()] == [f"{SID}+1.jsonl", f"{SID}.jsonl"]
    assert ArchiveIndex(sessions).mtimes(SID) == [MTIME, MTIME + 5]


def test_a_failed_link_leaves_no_record_and_the_file_in_place(sessions, monkeypatch):
    seen = write(sessions / f"{SID}.jsonl")

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(archive_module.os, "link", disk_full)
    with pytest.raises(ArchiveError, match="No space left on device"):
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert (sessions / f"{SID}.jsonl").read_bytes() == CONTENT
    assert records(sessions) == {}
    assert ArchiveIndex(sessions).mtimes(SID) == []


def test_the_record_is_durable_before_the_copy_is_linked(sessions, monkeypatch):
    seen = write(sessions / f"{SID}.jsonl")
    seen_at_link = []
    real_link = os.link

    def link(source, target, **kwargs):
        seen_at_link.append(records(sessions))
        return real_link(source, target, **kwargs)

    monkeypatch.setattr(archive_module.os, "link", link)
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert [list(r) for r in seen_at_link] == [[f"{SID}.json"]]


def test_a_retry_after_a_crash_between_record_and_link_makes_the_recorded_copy(sessions, monkeypatch):
    seen = write(sessions / f"{SID}.jsonl")

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies: nothing of the attempt is undone

    monkeypatch.setattr(archive_module.os, "link", crash)
    with pytest.raises(KeyboardInterrupt):
        archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    monkeypatch.undo()
    assert list(records(sessions)) == [f"{SID}.json"] and (sessions / f"{SID}.jsonl").exists()

    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)

    assert outcome.archived_as == f"archive/{SID}.jsonl"
    assert (sessions / "archive" / f"{SID}.jsonl").read_bytes() == CONTENT
    assert not (sessions / f"{SID}.jsonl").exists() and list(records(sessions)) == [f"{SID}.json"]


def test_a_copy_linked_before_records_existed_gets_one_when_a_retry_finishes_its_move(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    (sessions / "archive").mkdir()
    os.link(sessions / f"{SID}.jsonl", sessions / "archive" / f"{SID}.jsonl")
    outcome = archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    assert outcome.already_done and records(sessions)[f"{SID}.json"]["mtimeNs"] == MTIME


def test_restamp_moves_the_record_and_the_copy_and_a_missing_copy_keeps_just_its_record(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    copy = sessions / "archive" / f"{SID}.jsonl"

    restamp(sessions, f"archive/{SID}.jsonl", size=seen["size"], mtime_ns=MTIME + 7, sha256=seen["sha256"])
    assert copy.stat().st_mtime_ns == MTIME + 7 and records(sessions)[f"{SID}.json"]["mtimeNs"] == MTIME + 7

    copy.unlink()
    restamp(sessions, f"archive/{SID}.jsonl", size=seen["size"], mtime_ns=MTIME + 9, sha256=seen["sha256"])
    assert not copy.exists()
    assert ArchiveIndex(sessions).mtimes(SID) == [MTIME + 9]
    record = sessions / "archive" / ".copies" / f"{SID}.json"
    assert record.stat().st_mtime_ns == MTIME + 9 and stat.S_IMODE(record.stat().st_mode) == 0o600


def test_the_archive_index_lists_the_records_once_and_reads_only_those_of_missing_copies(
    sessions, monkeypatch
):
    for n, sid in enumerate(["s1", "s2", "s3"]):
        seen = write(sessions / f"{sid}.jsonl", f"{sid}\n".encode(), MTIME + n)
        archive_transcript(sessions, f"{sid}.jsonl", sid, **seen)
    (sessions / "archive" / "s2.jsonl").unlink()
    listed, read = [], []
    real_scandir, real_read = os.scandir, discovery.read_record_at

    def scandir(path):
        listed.append(Path(path).name)
        return real_scandir(path)

    def read_record(path, name):
        read.append(name)
        return real_read(path, name)

    monkeypatch.setattr("openclaw_nexus.discovery.os.scandir", scandir)
    monkeypatch.setattr("openclaw_nexus.discovery.read_record_at", read_record)
    index = ArchiveIndex(sessions)
    assert [index.mtimes(sid) for sid in ["s1", "s2", "s3", "s4"]] == [[MTIME], [MTIME + 1], [MTIME + 2], []]
    assert index.session_mtimes("s2") == {MTIME + 1} and index.names_of("s4") == []
    assert listed == [".copies"], "listed once"
    assert read == ["s2.jsonl"], "only the record of the copy that is not there is read, once"


def test_a_copy_made_before_records_existed_is_recorded_by_the_first_scan_that_looks_it_up(
    sessions, monkeypatch
):
    (sessions / "archive").mkdir()
    write(sessions / "archive" / f"{SID}.jsonl")  # archived by a release that wrote no records
    write(sessions / "archive" / "other.jsonl")  # not looked up below
    listed, opened = [], []
    real_listdir = os.listdir

    def listdir(path):
        listed.append(Path(path).name)
        return real_listdir(path)

    monkeypatch.setattr("openclaw_nexus.discovery.os.listdir", listdir)
    monkeypatch.setattr("openclaw_nexus.discovery.os.scandir", lambda path: pytest.fail(f"listed {path}"))
    monkeypatch.setattr("openclaw_nexus.archive.file_sha256", lambda path: opened.append(path))
    index = ArchiveIndex(sessions)
    assert index.mtimes(SID) == [MTIME] and index.mtimes("other") == [MTIME]
    assert listed == ["archive"] and opened == []
    monkeypatch.undo()

    assert records(sessions) == {
        f"{SID}.json": {"copy": f"{SID}.jsonl", "size": len(CONTENT), "mtimeNs": MTIME, "sha256": None},
        "other.json": {"copy": "other.jsonl", "size": len(CONTENT), "mtimeNs": MTIME, "sha256": None},
    }
    record = sessions / "archive" / ".copies" / f"{SID}.json"
    assert stat.S_IMODE(record.stat().st_mode) == 0o600 and record.stat().st_mtime_ns == MTIME
    assert stat.S_IMODE(record.parent.stat().st_mode) == 0o700

    restore_as_openclaw_backup_would(sessions)
    assert ArchiveIndex(sessions).mtimes(SID) == [MTIME], "what it held, by its mtime, survives"
    # Its bytes were never read: a match by content needs the copy.
    assert find_copy(sessions, SID, size=len(CONTENT), sha256=hashlib.sha256(CONTENT).hexdigest()) is None


def test_old_copies_are_recorded_a_bounded_number_per_scan(sessions, monkeypatch):
    (sessions / "archive").mkdir()
    for n in range(3):
        write(sessions / "archive" / f"s{n}.jsonl")
    monkeypatch.setattr(discovery, "_OLD_COPIES_PER_SCAN", 2)
    index = ArchiveIndex(sessions)
    assert [index.mtimes(f"s{n}") for n in range(3)] == [[MTIME]] * 3
    assert sorted(records(sessions)) == ["s0.json", "s1.json"]
    index = ArchiveIndex(sessions)
    assert [index.mtimes(f"s{n}") for n in range(3)] == [[MTIME]] * 3
    assert sorted(records(sessions)) == ["s0.json", "s1.json", "s2.json"]


def test_a_scan_never_replaces_a_record_that_is_there(sessions):
    seen = write(sessions / f"{SID}.jsonl")
    archive_transcript(sessions, f"{SID}.jsonl", SID, **seen)
    before = records(sessions)
    (sessions / "archive" / ".copies" / f"{SID}.json").unlink()
    index = ArchiveIndex(sessions)
    assert index.mtimes("nothing") == []  # the records are listed now: the copy has none
    write(sessions / "archive" / ".copies" / f"{SID}.json", b"{}", MTIME)  # one appears meanwhile
    assert index.mtimes(SID) == [MTIME]
    assert records(sessions) == {f"{SID}.json": {}}, "left as it was"
    (sessions / "archive" / ".copies" / f"{SID}.json").unlink()
    assert ArchiveIndex(sessions).mtimes(SID) == [MTIME] and records(sessions) == {
        f"{SID}.json": {**before[f"{SID}.json"], "sha256": None}
    }


# JSONL era: a session OpenClaw archived keeps its file; its copy stands for the file as it was sent.
LIVE = "1c8a4d0f-6b32-4e9f-a021-3d4c5b6e7f80"


def test_jsonl_archived_chat_whose_copy_is_gone_is_not_sent_again_while_its_file_is_unchanged(tmp_path):
    sessions = tmp_path / "agents" / "main" / "sessions"
    sessions.mkdir(parents=True)
    index = {
        "agent:main:shelved": {"sessionId": SID, "updatedAt": 1, "archivedAt": 1_779_000_000_000},
        "agent:main:live": {"sessionId": LIVE, "updatedAt": 1},
    }
    (sessions / "sessions.json").write_text(json.dumps(index))
    shelved = sessions / f"{SID}.jsonl"
    write(shelved, CONTENT, MTIME)
    window = Window(now=MTIME / 1e9 + 3600, settle_seconds=60)
    [item] = stores.scan_agent(tmp_path, "main", window).sessions
    transcript = stores.open_transcript(tmp_path, item)
    data = transcript.path.read_bytes()
    receipt = {
        **item,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
        "staged": transcript.staged,
        "duplicateOf": None,
    }
    stores.record_archived(tmp_path, item, receipt)
    (sessions / "archive" / f"{SID}.jsonl").unlink()  # what OpenClaw's backup leaves out
    assert stores.scan_agent(tmp_path, "main", window).sessions == []

    (sessions / "archive" / ".copies" / f"{SID}.json").unlink()
    assert [s["sessionId"] for s in stores.scan_agent(tmp_path, "main", window).sessions] == [SID]
