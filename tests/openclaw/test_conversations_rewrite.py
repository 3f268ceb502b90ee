"""Conversations of chats that OpenClaw 2026.9.6 wrote and then rewrote, through the store interface the
DAG uses (``stores.scan_agent``, ``stores.open_transcript``, ``stores.already_sent``,
``stores.record_archived``).

Every row of the state is OpenClaw's: ``tools/openclaw/rewrite.py`` (cached) has OpenClaw 2026.9.6's own
chat client write three chats on the chat path (``/new`` appends reset events to one session), archive one
(``openclaw sessions archive``), then truncate one (``openclaw sessions compact --max-lines``), close its
open conversation with ``/new``, and delete the other two (``openclaw sessions delete``: their ``.zst``
exports). A test reads the state before that rewrite, or after it, or reads the first, archives what it
sent, and then continues on OpenClaw's state after the rewrite with its own archive folder kept
(``apply_rewrite``; OpenClaw never reads ``sessions/archive/``). Nothing here is written by hand.

The oracle is OpenClaw's: the session's rows read here read-only (``rows_transcript``) or the ``.zst``
export OpenClaw wrote, split at reset events with the json library (``tests.oracle``); never the
package's export code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import stat
from pathlib import Path

import pytest

from openclaw_nexus import stores
from tests.e2e.conftest import assert_database_untouched, database_files
from tests.openclaw.test_sqlite_store import WINDOW
from tests.oracle import conversations_of
from tools.openclaw.fixture import agent_database, read_only, rows_transcript, zst_bytes
from tools.openclaw.rewrite import AGENT, apply_rewrite, rewrite_state


def need(manifest: dict, *pieces: str) -> None:
    """Fail with OpenClaw's side of the story when the build lacks a piece the test needs."""
    missing = {p: manifest["produced"].get(p, "no: not attempted") for p in pieces}
    missing = {p: why for p, why in missing.items() if not why.startswith("yes")}
    assert not missing, f"OpenClaw did not produce what this test needs: {missing}"


def sessions_dir(state: Path) -> Path:
    return state / "agents" / AGENT / "sessions"


def archive_dir(state: Path) -> Path:
    return sessions_dir(state) / "archive"


def rows_of(state: Path, sid: str) -> bytes:
    """OpenClaw's rows of the session, read-only: ``event_json`` or decoded ``event_zstd``, each + ``\\n``."""
    with read_only(agent_database(state, AGENT)) as db:
        return rows_transcript(db, sid)


def closings(state: Path, sid: str) -> dict[str, int]:
    """Reset event id → its ``created_at`` in ns, from OpenClaw's ``transcript_event_identities``."""
    with read_only(agent_database(state, AGENT)) as db:
        rows = db.execute(
            "SELECT event_id, created_at FROM transcript_event_identities"
            " WHERE session_id = ? AND event_type = 'reset'",
            (sid,),
        ).fetchall()
    return {event_id: created * 1_000_000 for event_id, created in rows}


def subject(item: dict) -> str:
    return f"{item['sessionId']}@{item['conversation']}"


def offered(state: Path) -> dict[str, dict]:
    scan = stores.scan_agent(state, AGENT, WINDOW)
    assert scan.errors == [], scan.errors
    return {subject(item): item for item in scan.sessions}


def deliver(state: Path, item: dict) -> tuple[bytes, str | None]:
    """What the DAG does for one item once Nexus confirmed it (or found its bytes archived): export it,
    look for a copy of those bytes, archive. Returns the bytes and the copy that already held them."""
    transcript = stores.open_transcript(state, item)
    data = transcript.path.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    duplicate = stores.already_sent(state, item, size=len(data), sha256=sha256)
    receipt = {
        **item,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": sha256,
        "staged": transcript.staged,
        "duplicateOf": duplicate,
    }
    stores.record_archived(state, item, receipt)
    return data, duplicate


def deliver_all(state: Path, items: dict[str, dict]) -> dict[str, tuple[bytes, str | None]]:
    return {name: deliver(state, item) for name, item in sorted(items.items())}


def finished(export: bytes, live: bool) -> dict[str, bytes]:
    """The conversations of a transcript, split here; a live session's last one is open."""
    parts = conversations_of(export)
    if live:
        parts.popitem()
    return parts


def named(sid: str, parts: dict[str, bytes]) -> dict[str, bytes]:
    return {f"{sid}@{token}": data for token, data in parts.items()}


def copies(state: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(archive_dir(state).iterdir()) if p.is_file()}


@pytest.fixture
def before(tmp_path) -> tuple[Path, dict]:
    """OpenClaw's state before its rewrite (a fresh copy) and the build's manifest."""
    manifest = rewrite_state(tmp_path / "openclaw")
    return tmp_path / "openclaw" / "state", manifest


@pytest.fixture
def after(tmp_path) -> tuple[Path, dict]:
    """OpenClaw's state after its rewrite, nothing sent yet (a fresh copy) and the build's manifest."""
    manifest = rewrite_state(tmp_path / "openclaw", "after")
    return tmp_path / "openclaw" / "state", manifest


def sent_before_the_rewrite(state: Path, manifest: dict) -> dict[str, bytes]:
    """Discover and archive everything finished in the before state; the bytes sent, each checked
    against OpenClaw's rows. A second scan then finds nothing (and records the sessions as all sent)."""
    ids = {name: s["sessionId"] for name, s in manifest["sessions"].items()}
    expected = {
        **named(ids["talk"], finished(rows_of(state, ids["talk"]), live=True)),
        **named(ids["gone"], finished(rows_of(state, ids["gone"]), live=True)),
        **named(ids["done"], finished(rows_of(state, ids["done"]), live=False)),
    }
    sent = deliver_all(state, offered(state))
    assert set(sent) == set(expected)
    for name, (data, duplicate) in sent.items():
        assert data == expected[name], f"{name}: not OpenClaw's rows, byte for byte"
        assert duplicate is None
    assert offered(state) == {}
    return expected


def test_a_live_chat_sends_its_finished_conversations_once_and_never_the_open_one(before):
    """State: OpenClaw 2026.9.6's chat path (``agent:conv:talk``: a turn, ``/new``, two turns, ``/new``, a
    turn with a compressed answer; live). Asserts: conversations ``0`` and the one the first ``/new``
    opened are offered and archived as OpenClaw's rows split at its reset events, each copy 0600 with its
    closing reset's ``created_at`` as mtime; the open one is not offered; the sent conversations and the
    open one, read here, rebuild OpenClaw's rows byte for byte; a second scan offers nothing; OpenClaw's
    database files are untouched."""
    state, manifest = before
    need(manifest, "resets", "compressed")
    sid = manifest["sessions"]["talk"]["sessionId"]
    rows = rows_of(state, sid)
    db_before = database_files(sessions_dir(state).parent)
    parts = conversations_of(rows)
    tokens = list(parts)
    assert len(tokens) == 3, tokens
    items = {name: item for name, item in offered(state).items() if item["sessionId"] == sid}
    assert sorted(items) == sorted(f"{sid}@{t}" for t in tokens[:2]), "the open conversation is offered"
    reset_times = closings(state, sid)
    for token, closing in itertools.pairwise(tokens):
        item = items[f"{sid}@{token}"]
        assert item["mtimeNs"] == reset_times[closing], "closed by the next reset event"
        data, duplicate = deliver(state, item)
        assert (data, duplicate) == (parts[token], None)
        copy = archive_dir(state) / f"{sid}@{token}.jsonl"
        assert copy.read_bytes() == parts[token]
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_mtime_ns == reset_times[closing]
    rebuilt = parts[tokens[0]] + b"".join(parts[t].split(b"\n", 1)[1] for t in tokens[1:])
    assert rebuilt == rows
    assert not [n for n in offered(state) if n.startswith(sid)]
    assert_database_untouched(db_before, database_files(sessions_dir(state).parent))


def test_a_completed_chat_sends_every_conversation_and_one_archived_whole_before_stays_done(before):
    """State: OpenClaw 2026.9.6's chat path (``agent:conv:done``: a turn, ``/new``, a turn), archived by
    ``openclaw sessions archive``: completed. Hand-made: a copy ``<sessionId>.jsonl`` stamped with the
    window's last change, as an earlier release of this package archived a whole session. Asserts: with
    that copy nothing of the session is offered; without it both conversations are, the last closed by
    the window's last change, and each is archived as OpenClaw's rows split at its reset event."""
    state, manifest = before
    need(manifest, "resets", "archived")
    sid = manifest["sessions"]["done"]["sessionId"]
    parts = conversations_of(rows_of(state, sid))
    with read_only(agent_database(state, AGENT)) as db:
        [(changed_ms,)] = db.execute(
            "SELECT max(updated_at, coalesce(transcript_updated_at, 0)) FROM session_windows"
            " WHERE session_id = ?",
            (sid,),
        ).fetchall()
    items = {name: item for name, item in offered(state).items() if item["sessionId"] == sid}
    assert sorted(items) == sorted(f"{sid}@{t}" for t in parts)
    assert items[f"{sid}@{list(parts)[-1]}"]["mtimeNs"] == changed_ms * 1_000_000
    archive_dir(state).mkdir(parents=True, exist_ok=True)
    whole = archive_dir(state) / f"{sid}.jsonl"
    whole.write_bytes(b"{}\n")
    whole.chmod(0o600)
    os.utime(whole, ns=(changed_ms * 1_000_000,) * 2)
    assert not [n for n in offered(state) if n.startswith(sid)]
    whole.unlink()
    for name, item in sorted(items.items()):
        assert deliver(state, item) == (parts[item["conversation"]], None), name
    assert not [n for n in offered(state) if n.startswith(sid)]


def test_a_chat_openclaw_truncates_after_its_conversations_were_sent_is_not_sent_again(before):
    """State: OpenClaw 2026.9.6 writes ``agent:conv:talk`` on the chat path (conversations ``0``, A and B,
    B open); its conversations ``0`` and A are archived here; then OpenClaw truncates the chat
    (``openclaw sessions compact --max-lines``: the header and A's last turn on are kept, ``0``, A's first
    turn and A's reset event are deleted, ``seq`` renumbered) and ``/new`` closes B. Asserts: the stretch
    before B's reset, A's tail, is not offered again (its closing time is A's copy's), only B is, byte for
    byte OpenClaw's rows after the rewrite, and C (opened by the last ``/new``) is not; every event of
    A's tail is in A's copy (nothing of A is lost); no copy is made twice; the record of ``talk`` as all
    sent, made before the rewrite, does not hide B."""
    state, manifest = before
    need(manifest, "resets", "truncated", "closed")
    sid = manifest["sessions"]["talk"]["sessionId"]
    first, a, b = conversations_of(rows_of(state, sid))
    sent = sent_before_the_rewrite(state, manifest)
    assert {f"{sid}@{first}", f"{sid}@{a}"} <= set(sent) and f"{sid}@{b}" not in sent
    assert list((archive_dir(state) / ".all-sent").glob(f"{sid}+*")), "talk is recorded as all sent"
    before_copies = copies(state)

    apply_rewrite(state)

    now = conversations_of(rows_of(state, sid))
    assert manifest["truncation"]["vanishedResets"] == [a], "OpenClaw deleted A's reset event"
    tokens = list(now)
    assert tokens[:2] == ["0", b] and len(tokens) == 3, tokens
    c = tokens[2]
    items = {name: item for name, item in offered(state).items() if item["sessionId"] == sid}
    assert sorted(items) == [f"{sid}@{b}"], "only B: A's tail was sent as A, C is open"
    assert items[f"{sid}@{b}"]["mtimeNs"] == closings(state, sid)[c]
    assert deliver(state, items[f"{sid}@{b}"]) == (now[b], None)

    tail = [json.loads(line) for line in now["0"].splitlines()[1:]]
    sent_a = {event["id"]: event for event in map(json.loads, sent[f"{sid}@{a}"].splitlines())}
    assert tail and all(event["id"] in sent_a for event in tail), "an event of A's tail was never sent"
    assert tail[0]["id"] == manifest["truncation"]["firstKeptEventId"] and tail[0]["parentId"] is None
    assert {**tail[0], "parentId": sent_a[tail[0]["id"]]["parentId"]} == sent_a[tail[0]["id"]], (
        "OpenClaw changed more than the first kept event's parent"
    )
    assert all(event == sent_a[event["id"]] for event in tail[1:])
    after_copies = copies(state)
    assert {n: d for n, d in after_copies.items() if n in before_copies} == before_copies
    assert sorted(set(after_copies) - set(before_copies)) == [f"{sid}@{b}.jsonl"]
    assert not [n for n in offered(state) if n.startswith(sid)]


def test_a_chat_openclaw_truncated_before_anything_was_sent_is_sent_from_what_it_kept(after):
    """State: OpenClaw 2026.9.6 writes ``agent:conv:talk`` (conversations ``0``, A, B), truncates it with
    ``openclaw sessions compact --max-lines`` (A's reset event and everything before A's last turn
    deleted) and closes B with ``/new``; nothing was sent before. Asserts: the stretch before B's reset
    (A's tail, now conversation ``0``) and B are offered and archived byte for byte as OpenClaw's rows
    after the truncation; C, open, is not; nothing names the deleted reset event."""
    state, manifest = after
    need(manifest, "truncated", "closed")
    sid = manifest["sessions"]["talk"]["sessionId"]
    now = conversations_of(rows_of(state, sid))
    tokens = list(now)
    items = {name: item for name, item in offered(state).items() if item["sessionId"] == sid}
    assert sorted(items) == sorted(f"{sid}@{t}" for t in tokens[:2])
    for name, item in sorted(items.items()):
        assert deliver(state, item) == (now[item["conversation"]], None), name
    for gone in manifest["truncation"]["vanishedResets"]:
        assert not list(archive_dir(state).glob(f"*{gone}*"))
    assert sorted(p.name for p in archive_dir(state).glob(f"{sid}@*")) == sorted(
        f"{sid}@{t}.jsonl" for t in tokens[:2]
    )
    assert not [n for n in offered(state) if n.startswith(sid)], "C is open"


def test_chats_openclaw_deletes_after_their_conversations_were_sent_send_only_the_rest(before):
    """State: OpenClaw 2026.9.6 writes ``agent:conv:gone`` (conversations ``0`` and A, A open) and
    ``agent:conv:done`` (``0`` and A, archived: both finished); what is finished is archived here; then
    OpenClaw deletes both (``openclaw sessions delete``: each becomes a ``.jsonl.deleted.….zst`` export).
    Asserts: of ``gone``'s export only A is offered (``0`` is found archived by its bytes) and sent, byte
    for byte A as split from OpenClaw's export; of ``done``'s export, every conversation archived, its last
    one is offered, found already sent (no resend) and the export is archived; each export moves into
    ``archive/`` under its own name with OpenClaw's bytes, next to unchanged conversation copies; a next
    scan offers nothing."""
    state, manifest = before
    need(manifest, "resets", "archived", "deleted")
    gone, done = (manifest["sessions"][n] for n in ("gone", "done"))
    sent = sent_before_the_rewrite(state, manifest)
    before_copies = copies(state)

    apply_rewrite(state)

    exports = {s["sessionId"]: sessions_dir(state) / s["export"] for s in (gone, done)}
    packed = {sid: path.read_bytes() for sid, path in exports.items()}
    gone_parts = conversations_of(zst_bytes(exports[gone["sessionId"]]))
    done_parts = conversations_of(zst_bytes(exports[done["sessionId"]]))
    first_gone, a_gone = list(gone_parts)
    assert named(gone["sessionId"], {first_gone: gone_parts[first_gone]}).items() <= sent.items()
    assert named(done["sessionId"], done_parts) == {
        k: v for k, v in sent.items() if k.startswith(done["sessionId"])
    }
    items = {name: item for name, item in offered(state).items() if item["sessionId"] in exports}
    last_done = list(done_parts)[-1]
    assert sorted(items) == sorted([f"{gone['sessionId']}@{a_gone}", f"{done['sessionId']}@{last_done}"])

    data, duplicate = deliver(state, items[f"{gone['sessionId']}@{a_gone}"])
    assert (data, duplicate) == (gone_parts[a_gone], None), "gone's open conversation, from OpenClaw's export"
    data, duplicate = deliver(state, items[f"{done['sessionId']}@{last_done}"])
    assert data == done_parts[last_done]
    assert duplicate == f"archive/{done['sessionId']}@{last_done}.jsonl", "found sent: not sent again"

    for sid, path in exports.items():
        assert not path.exists()
        moved = archive_dir(state) / path.name
        assert moved.read_bytes() == packed[sid], "OpenClaw's export, as it wrote it"
    after_copies = copies(state)
    assert {n: d for n, d in after_copies.items() if n in before_copies} == before_copies
    assert sorted(set(after_copies) - set(before_copies)) == sorted(
        [f"{gone['sessionId']}@{a_gone}.jsonl", *(p.name for p in exports.values())]
    )
    assert not [n for n in offered(state) if n.split("@")[0] in exports]


def test_chats_openclaw_deleted_before_anything_was_sent_are_sent_from_their_exports(after):
    """State: OpenClaw 2026.9.6 writes ``agent:conv:gone`` and ``agent:conv:done`` (two conversations
    each; ``done`` archived) and deletes both (``openclaw sessions delete``); nothing was sent before.
    Asserts: every conversation of both exports is offered and archived as split from OpenClaw's export
    (whose bytes are the session's rows before the deletion: the next test); each export is archived
    under its own name, as OpenClaw wrote it, once all its conversations are; only ``talk``'s
    conversations are left to offer."""
    state, manifest = after
    need(manifest, "deleted")
    for name in ("gone", "done"):
        session = manifest["sessions"][name]
        sid, export = session["sessionId"], sessions_dir(state) / session["export"]
        packed = export.read_bytes()
        parts = conversations_of(zst_bytes(export))
        assert [r["id"] for r in session["resets"]] == list(parts)[1:]
        items = {n: item for n, item in offered(state).items() if item["sessionId"] == sid}
        assert sorted(items) == sorted(f"{sid}@{t}" for t in parts)
        for item_name, item in sorted(items.items()):
            assert deliver(state, item) == (parts[item["conversation"]], None), item_name
        assert not export.exists() and (archive_dir(state) / export.name).read_bytes() == packed
    talk = manifest["sessions"]["talk"]["sessionId"]
    assert {item["sessionId"] for item in offered(state).values()} == {talk}, "only talk's are left"


def test_openclaws_exports_hold_the_rows_the_deleted_chats_had(tmp_path):
    """State: OpenClaw 2026.9.6's, before and after it deleted ``agent:conv:gone`` and ``agent:conv:done``.
    Asserts: each ``.zst`` export, decompressed, is the session's rows before the deletion, byte for byte
    (read here read-only): a conversation sent from the database and the same one cut from the export
    are the same bytes, which is what finds a conversation of an export already sent."""
    manifest = rewrite_state(tmp_path / "before")
    rewrite_state(tmp_path / "after", "after")
    need(manifest, "deleted")
    for name in ("gone", "done"):
        session = manifest["sessions"][name]
        export = sessions_dir(tmp_path / "after" / "state") / session["export"]
        assert zst_bytes(export) == rows_of(tmp_path / "before" / "state", session["sessionId"]), name
