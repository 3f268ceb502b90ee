"""The byte-level split of a transcript into conversations (deletion exports), against expectations built
with the json library line by line, not with the package's own helpers."""

from __future__ import annotations

import hashlib
import io
import json

import pytest

from openclaw_nexus import conversations
from openclaw_nexus.copy_records import ARCHIVED_NAME_RE


def line(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"


HEADER = line({"type": "session", "version": 3, "id": "s1", "timestamp": "2026-11-30T06:00:00.000Z"})
A = [line({"type": "message", "id": f"a{i}", "message": {"role": "user", "content": "hé"}}) for i in range(2)]
R1 = line({"type": "reset", "id": "b6b9b41d", "parentId": "a1", "reason": "new"})
B = [line({"type": "message", "id": "b0", "message": {"role": "user", "content": '"type":"reset" quoted'}})]
R2 = line({"type": "reset", "id": "0c0ffee1", "parentId": "b0", "reason": "idle", "firstKeptEntryId": "b0"})
C = [line({"type": "message", "id": "c0", "message": {"role": "assistant", "content": "x" * 5000}})]
EXPORT = HEADER + b"".join(A) + R1 + b"".join(B) + R2 + b"".join(C)


def sent(part: conversations.Part) -> bytes:
    out = io.BytesIO()
    conversations.write_part(EXPORT.splitlines(keepends=True), HEADER, part, out)
    return out.getvalue()


def test_an_export_splits_at_its_reset_events_with_the_header_repeated():
    header, parts = conversations.survey(EXPORT.splitlines(keepends=True))
    assert header == HEADER
    assert [p.conversation for p in parts] == ["0", "b6b9b41d", "0c0ffee1"]
    expected = [HEADER + b"".join(A), HEADER + R1 + b"".join(B), HEADER + R2 + b"".join(C)]
    assert [sent(p) for p in parts] == expected
    assert [(p.size, p.sha256) for p in parts] == [(len(e), hashlib.sha256(e).hexdigest()) for e in expected]
    # The property the README states: conversation 0, then the others without their first line, is the export.
    rebuilt = expected[0] + b"".join(e.split(b"\n", 1)[1] for e in expected[1:])
    assert rebuilt == EXPORT


def test_a_transcript_without_resets_is_one_part_the_whole():
    data = HEADER + b"".join(A)
    header, parts = conversations.survey(data.splitlines(keepends=True))
    assert header == HEADER and len(parts) == 1
    assert (parts[0].conversation, parts[0].start, parts[0].end) == ("0", 0, len(data))
    assert parts[0].sha256 == hashlib.sha256(data).hexdigest()


def test_only_a_real_reset_event_splits():
    # A message quoting '"type":"reset"' and a reset without a usable id are rows, not boundaries.
    odd = line({"type": "reset", "id": "has space", "reason": "new"})
    data = HEADER + b"".join(B) + odd
    _, parts = conversations.survey(data.splitlines(keepends=True))
    assert len(parts) == 1


def test_without_a_session_header_nothing_is_prepended():
    data = b"".join(A) + R1 + b"".join(B)
    header, parts = conversations.survey(data.splitlines(keepends=True))
    assert header == b""
    out = io.BytesIO()
    conversations.write_part(data.splitlines(keepends=True), header, parts[1], out)
    assert out.getvalue() == R1 + b"".join(B)


@pytest.mark.parametrize(
    ("name", "session", "conversation"),
    [
        ("s1.jsonl", "s1", None),
        ("s1+2.jsonl", "s1", None),
        ("s1@0.jsonl", "s1", "0"),
        ("s1@b6b9b41d+1.jsonl", "s1", "b6b9b41d"),
    ],
)
def test_archive_names_carry_the_conversation(name, session, conversation):
    match = ARCHIVED_NAME_RE.fullmatch(name)
    assert match and match.group("id") == session and match.group("conversation") == conversation
    stem = name.removesuffix(".jsonl").partition("+")[0]
    assert conversations.stem(session, conversation) == stem
