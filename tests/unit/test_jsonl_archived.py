"""JSONL era: a session OpenClaw archived (its ``sessions.json`` entry carries ``archivedAt``, its
transcript stays in place) is finished: sent once from a copy, never moved, sent again only when its
file changed (restored, continued, archived again). The pure store, no Airflow, no HTTP.

What OpenClaw 2026.7.35 does, as run by ``tools/openclaw/legacy.py``: ``sessions.patch {archived: true}``
adds ``archivedAt`` (epoch ms) to the entry and leaves ``<sid>.jsonl`` byte for byte; ``{archived: false}``
removes the field, and the next turn appends to the same file under the same ``sessionId``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pytest

from openclaw_nexus import stores
from openclaw_nexus.discovery import Window
from openclaw_nexus.files import ActiveSet
from openclaw_nexus.jsonl_store import read_active_set
from openclaw_nexus.transcript import TranscriptError

NOW = 1_780_000_000
WINDOW = Window(now=NOW, settle_seconds=60)
SHELF = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
LIVE = "1c8a4d0f-6b32-4e9f-a021-3d4c5b6e7f80"
STAMP = 1_779_990_000_000  # archivedAt, epoch ms
CONTENT = (
    b'{"type":"session","version":3,"id":"0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"}\n'
    b'{"type":"message","message":{"role":"user","content":"caf\xc3\xa9 \xe2\x9c\x93"}}\n'
)


def sessions(state: Path) -> Path:
    return state / "agents" / "main" / "sessions"


def entry(sid: str, *, archived: object = None, file: str | None = None) -> dict:
    made = {"sessionId": sid, "updatedAt": 1, "sessionFile": f"/home/u/.openclaw/agents/main/sessions/{file}"}
    if file is None:
        del made["sessionFile"]
    if archived is not None:
        made["archivedAt"] = archived
    return made


def write_index(state: Path, index: dict) -> None:
    (sessions(state) / "sessions.json").write_text(json.dumps(index))


def write(state: Path, name: str, content: bytes, age: float) -> Path:
    path = sessions(state) / name
    path.write_bytes(content)
    ns = int((NOW - age) * 1e9)
    os.utime(path, ns=(ns, ns))
    return path


@pytest.fixture
def state(tmp_path) -> Path:
    sessions(tmp_path).mkdir(parents=True)
    write_index(
        tmp_path,
        {
            "agent:main:shelved": entry(SHELF, archived=STAMP, file=f"{SHELF}.jsonl"),
            "agent:main:live": entry(LIVE, file=f"{LIVE}.jsonl"),
        },
    )
    write(tmp_path, f"{SHELF}.jsonl", CONTENT, age=3600)
    write(tmp_path, f"{LIVE}.jsonl", b'{"type":"session","id":"' + LIVE.encode() + b'"}\n', age=3600)
    return tmp_path


def scan(state: Path, window: Window = WINDOW):
    return stores.scan_agent(state, "main", window)


def deliver(state: Path, item: dict, *, duplicate: str | None = None) -> tuple[bytes, dict, object]:
    """What upload + archive do once Nexus confirmed: the bytes sent, the receipt, the archive outcome."""
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
    return data, receipt, stores.record_archived(state, item, receipt)


def test_archived_entries_are_read_apart_from_the_active_ones(state):
    write_index(
        state,
        {
            "a": entry(SHELF, archived=STAMP, file=f"{SHELF}-topic-7.jsonl"),
            "b": entry(LIVE),
            "c": entry("c-null", archived=None) | {"archivedAt": None},  # not OpenClaw's: active
            "d": entry("d-text", archived="2026-01-01"),
            "e": entry("e-bool", archived=True),
            "f": entry("f-zero", archived=0),
        },
    )
    active = read_active_set(sessions(state))
    assert active == ActiveSet(
        session_ids=frozenset({LIVE, "c-null", "d-text", "e-bool"}),
        file_names=frozenset(),
        archived_ids=frozenset({SHELF, "f-zero"}),
        archived_files=frozenset({f"{SHELF}-topic-7.jsonl"}),
    )
    assert active.archived(SHELF, f"{SHELF}.jsonl") and active.archived("zzz", f"{SHELF}-topic-7.jsonl")
    assert not active.archived(LIVE, f"{LIVE}.jsonl") and not active.contains(SHELF, f"{SHELF}.jsonl")


def test_an_active_entry_naming_the_same_session_wins(state):
    write_index(
        state,
        {"old": entry(SHELF, archived=STAMP), "new": entry(LIVE, file=f"{SHELF}.jsonl")},
    )
    found = scan(state)
    assert found.sessions == [] and found.skipped["active"] == 2


def test_the_archived_transcript_is_a_finished_session_the_live_one_is_not(state):
    found = scan(state)
    info = (sessions(state) / f"{SHELF}.jsonl").stat()
    assert found.sessions == [
        {
            "agentId": "main",
            "sessionId": SHELF,
            "file": f"{SHELF}.jsonl",
            "size": info.st_size,
            "mtimeNs": info.st_mtime_ns,
            "kind": "archived",
            "store": "jsonl",
        }
    ]
    assert found.skipped["active"] == 1 and not found.errors


def test_the_settle_time_and_a_fresh_lock_hold_it_back(state):
    write(state, f"{SHELF}.jsonl", CONTENT, age=30)
    assert scan(state).sessions == [] and scan(state).skipped["settling"] == 1
    write(state, f"{SHELF}.jsonl", CONTENT, age=3600)
    lock = sessions(state) / f"{SHELF}.jsonl.lock"
    lock.write_text(json.dumps({"createdAt": (NOW - 60) * 1000}))
    assert scan(state).skipped["locked"] == 1 and scan(state).sessions == []


def test_sent_from_a_copy_the_file_stays_and_a_later_scan_skips_it(state):
    source = sessions(state) / f"{SHELF}.jsonl"
    before = (source.read_bytes(), source.stat().st_mtime_ns, stat.S_IMODE(source.stat().st_mode))
    [item] = scan(state).sessions
    sent, receipt, outcome = deliver(state, item)
    assert sent == CONTENT
    assert outcome.archived_as == f"archive/{SHELF}.jsonl" and not outcome.already_done
    copy = sessions(state) / "archive" / f"{SHELF}.jsonl"
    assert copy.read_bytes() == CONTENT and copy.stat().st_mtime_ns == before[1]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600
    # OpenClaw's file: where it was, same bytes, mtime and mode; no staging file left.
    assert (source.read_bytes(), source.stat().st_mtime_ns, stat.S_IMODE(source.stat().st_mode)) == before
    assert list((sessions(state) / "archive" / ".staging").iterdir()) == []
    again = scan(state)
    assert again.sessions == [] and again.skipped["already_archived"] == 1
    # A retried archive step finds it done and moves nothing.
    retried = stores.record_archived(state, item, receipt)
    assert retried.already_done and source.read_bytes() == CONTENT
    assert sorted(p.name for p in copy.parent.iterdir() if p.is_file()) == [f"{SHELF}.jsonl"]


def test_restored_continued_and_archived_again_is_a_new_version(state):
    [item] = scan(state).sessions
    deliver(state, item)
    # Restored (the entry loses archivedAt): active, never sent, never moved.
    live = {"agent:main:live": entry(LIVE, file=f"{LIVE}.jsonl")}
    write_index(state, {"agent:main:shelved": entry(SHELF, file=f"{SHELF}.jsonl")} | live)
    more = CONTENT + b'{"type":"message","message":{"role":"user","content":"back"}}\n'
    write(state, f"{SHELF}.jsonl", more, age=600)
    restored = scan(state)
    assert restored.sessions == [] and restored.skipped["active"] == 2
    # Archived again: the changed file is sent again and archived beside the first copy.
    write_index(state, {"agent:main:shelved": entry(SHELF, archived=STAMP + 1, file=f"{SHELF}.jsonl")} | live)
    [item] = scan(state).sessions
    sent, _, outcome = deliver(state, item)
    assert sent == more and outcome.archived_as == f"archive/{SHELF}+1.jsonl"
    archive = sessions(state) / "archive"
    assert (archive / f"{SHELF}.jsonl").read_bytes() == CONTENT
    assert (archive / f"{SHELF}+1.jsonl").read_bytes() == more
    assert (sessions(state) / f"{SHELF}.jsonl").read_bytes() == more
    assert scan(state).sessions == []


def test_restored_and_archived_again_unchanged_is_not_sent_again(state):
    [item] = scan(state).sessions
    deliver(state, item)
    assert scan(state).sessions == []
    # The same bytes with a new mtime (touched): found as sent, the copy re-stamped, then skipped.
    write(state, f"{SHELF}.jsonl", CONTENT, age=1800)
    [item] = scan(state).sessions
    _, _, outcome = deliver(state, item, duplicate=f"archive/{SHELF}.jsonl")
    assert outcome.already_done and outcome.archived_as == f"archive/{SHELF}.jsonl"
    archive = sessions(state) / "archive"
    assert sorted(p.name for p in archive.iterdir() if p.is_file()) == [f"{SHELF}.jsonl"]
    assert (sessions(state) / f"{SHELF}.jsonl").exists()
    assert scan(state).sessions == [] and scan(state).skipped["already_archived"] == 1


@pytest.mark.parametrize(
    ("index", "reason"),
    [
        ({"agent:main:shelved": entry(SHELF, file=f"{SHELF}.jsonl")}, "is an active session again"),
        ({"agent:main:live": entry(LIVE)}, "is no longer an archived entry of sessions.json"),
    ],
)
def test_restored_or_dropped_between_discovery_and_upload_is_not_sent(state, index, reason):
    [item] = scan(state).sessions
    write_index(state, index)
    with pytest.raises(TranscriptError, match=reason):
        stores.open_transcript(state, item)
    assert (sessions(state) / f"{SHELF}.jsonl").read_bytes() == CONTENT
    assert not (sessions(state) / "archive" / f"{SHELF}.jsonl").exists()


def test_changed_since_discovery_is_not_sent(state):
    [item] = scan(state).sessions
    write(state, f"{SHELF}.jsonl", CONTENT + b"{}\n", age=3000)
    with pytest.raises(TranscriptError, match="changed since discovery"):
        stores.open_transcript(state, item)


def test_openclaws_own_reset_file_of_that_session_is_moved_as_usual(state):
    name = f"{SHELF}.jsonl.reset.2026-02-02T20-29-47.344Z"
    write(state, name, CONTENT, age=3600)
    kinds = {s["file"]: s["kind"] for s in scan(state).sessions}
    assert kinds == {f"{SHELF}.jsonl": "archived", name: "reset"}


def test_deleted_by_openclaw_after_it_was_sent_is_not_sent_again(state):
    """OpenClaw's rename keeps the file's size and mtime: its copy answers for the new name too, so the
    ``.deleted.`` file is neither sent nor archived again (no second copy); OpenClaw's retention removes
    it."""
    [item] = scan(state).sessions
    deliver(state, item)
    # sessions.delete: the entry leaves sessions.json, the file becomes <sid>.jsonl.deleted.<ts>.
    write_index(state, {"agent:main:live": entry(LIVE, file=f"{LIVE}.jsonl")})
    name = f"{SHELF}.jsonl.deleted.2026-02-02T20-29-47.344Z"
    (sessions(state) / f"{SHELF}.jsonl").rename(sessions(state) / name)
    found = scan(state)
    assert found.sessions == [] and found.skipped["already_archived"] == 1
    archive = sessions(state) / "archive"
    assert sorted(p.name for p in archive.glob(f"{SHELF}*")) == [f"{SHELF}.jsonl"]
    assert (archive / f"{SHELF}.jsonl").read_bytes() == (sessions(state) / name).read_bytes() == CONTENT
