"""openclaw_nexus.transcript: the streamed body carries the file's bytes exactly, as one JSON string."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from openclaw_nexus.transcript import (
    CHUNK_BYTES,
    Snapshot,
    TranscriptBody,
    TranscriptChanged,
    TranscriptError,
    idempotency_key,
    snapshot,
)

SID = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
EMOJI = "😀"  # 4 bytes in UTF-8

NASTY = (
    '{"type": "session", "id": "'
    + SID
    + '"}\n'
    + 'quote " backslash \\ slash / tab \t cr \r\n'
    + "controls "
    + "".join(chr(c) for c in range(0x20))
    + " del \x7f\n"
    + "non-ASCII: héllo wörld ✓ 日本語 \u2028 \u2029 \ufeff\n"
    + f"emoji: {EMOJI}a{EMOJI}ab{EMOJI}abc{EMOJI}abcd{EMOJI}abcde{EMOJI}abcdef{EMOJI}🎉🧪\n"
    + 'json-looking: {"k": "v\\"w", "n": "\\u0041"}\n'
).encode()


def body_bytes(body: TranscriptBody) -> bytes:
    return b"".join(body)


def write(tmp_path: Path, content: bytes, name: str = f"{SID}.jsonl") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def emoji_split_at(content: bytes, chunk_bytes: int) -> bool:
    """True when some 4-byte character straddles a chunk boundary."""
    at = 0
    for char in content.decode():
        width = len(char.encode())
        if width == 4 and at // chunk_bytes != (at + width - 1) // chunk_bytes:
            return True
        at += width
    return False


@pytest.mark.parametrize("chunk_bytes", [1, 3, 7, 64, CHUNK_BYTES])
def test_body_carries_the_bytes_exactly(tmp_path, chunk_bytes):
    if chunk_bytes in (3, 7):
        assert emoji_split_at(NASTY, chunk_bytes)
    body = TranscriptBody(write(tmp_path, NASTY), "main", SID, chunk_bytes=chunk_bytes)
    raw = body_bytes(body)
    decoded = json.loads(raw)
    assert decoded == {"agentId": "main", "sessionId": SID, "transcript": NASTY.decode()}
    assert decoded["transcript"].encode() == NASTY
    assert len(body) == len(raw)
    assert body.size == len(NASTY)
    assert body.sha256 == hashlib.sha256(NASTY).hexdigest()


def test_body_is_strict_json_with_escaped_controls(tmp_path):
    raw = body_bytes(TranscriptBody(write(tmp_path, b'a\x00b\x1fc"d\\e\n'), "main", SID, chunk_bytes=2))
    assert raw == (b'{"agentId": "main", "sessionId": "' + SID.encode() + b'", "transcript": '
                   b'"a\\u0000b\\u001fc\\"d\\\\e\\n"}')  # fmt: skip
    json.loads(raw, strict=True)


@pytest.mark.parametrize("chunk_bytes", [3, 7])
def test_iterating_twice_sends_the_same_bytes(tmp_path, chunk_bytes):
    body = TranscriptBody(write(tmp_path, NASTY), "main", SID, chunk_bytes=chunk_bytes)
    first = list(body)
    second = list(body)
    assert first == second
    assert first[0].startswith(b'{"agentId": "main"')
    assert first[-1] == b'"}'
    assert len(first) > 3  # really streamed in pieces


def test_same_body_whatever_the_chunk_size(tmp_path):
    path = write(tmp_path, NASTY)
    bodies = {body_bytes(TranscriptBody(path, "main", SID, chunk_bytes=n)) for n in (1, 2, 3, 5, 7, 4096)}
    assert len(bodies) == 1


def test_empty_file(tmp_path):
    body = TranscriptBody(write(tmp_path, b""), "main", SID, chunk_bytes=3)
    raw = body_bytes(body)
    assert raw == b'{"agentId": "main", "sessionId": "' + SID.encode() + b'", "transcript": ""}'
    assert json.loads(raw)["transcript"] == ""
    assert len(body) == len(raw)
    assert body.size == 0
    assert body.sha256 == hashlib.sha256(b"").hexdigest()


@pytest.mark.parametrize(
    ("content", "chunk_bytes", "offset"),
    [
        (b"abc\xffdef", 1024, 3),
        (b"abc\xffdef", 3, 3),
        (b"\x80", 7, 0),
        (b"ok \xc3\xa9 then \xc3(", 7, 11),  # a lead byte followed by a non-continuation byte
        (b"a\xe2\x9cb", 2, 1),  # the broken sequence starts in one chunk and fails in the next
        (b"0123456789" * 3 + b"\xed\xa0\x80", 7, 30),  # an encoded surrogate
        (b"truncated at the end \xf0\x9f\x98", 4, 21),  # incomplete emoji at end of file
        ("é".encode() * 5 + b"\xc0\xaf", 3, 10),  # overlong encoding
    ],
)
def test_invalid_utf8_names_the_file_and_the_byte(tmp_path, content, chunk_bytes, offset):
    with pytest.raises(TranscriptError) as caught:
        TranscriptBody(write(tmp_path, content, "bad.jsonl"), "main", SID, chunk_bytes=chunk_bytes)
    assert not isinstance(caught.value, TranscriptChanged)
    assert f"bad.jsonl is not valid UTF-8 (at byte {offset})" in str(caught.value)
    with pytest.raises(UnicodeDecodeError) as whole:  # the same offset a one-shot decode reports
        content.decode()
    assert whole.value.start == offset


def test_appended_file_is_not_sent(tmp_path):
    path = write(tmp_path, NASTY)
    body = TranscriptBody(path, "main", SID, chunk_bytes=7)
    with path.open("ab") as handle:
        handle.write(b'{"more": 1}\n')
    sent = []
    with pytest.raises(TranscriptChanged, match=rf"{SID}\.jsonl changed while it was being sent"):
        for piece in body:
            sent.append(piece)
    assert sent[-1] != b'"}'  # the closing quote never goes out, so the JSON stays unterminated


def test_rewritten_file_of_the_same_size_is_not_sent(tmp_path):
    path = write(tmp_path, b"aaaa\n")
    body = TranscriptBody(path, "main", SID)
    path.write_bytes(b"bbbb\n")
    with pytest.raises(TranscriptChanged):
        body_bytes(body)


def test_truncated_file_is_not_sent(tmp_path):
    path = write(tmp_path, NASTY)
    body = TranscriptBody(path, "main", SID, chunk_bytes=3)
    path.write_bytes(NASTY[:10])
    with pytest.raises(TranscriptChanged):
        body_bytes(body)


def test_idempotency_key(tmp_path):
    one = TranscriptBody(write(tmp_path, NASTY, "one.jsonl"), "main", SID)
    same = TranscriptBody(write(tmp_path, NASTY, "same.jsonl"), "other-agent", SID, chunk_bytes=3)
    other = TranscriptBody(write(tmp_path, NASTY + b"\n", "other.jsonl"), "main", SID)
    key = idempotency_key(SID, one.sha256)
    assert key == f"{SID}:{hashlib.sha256(NASTY).hexdigest()}"
    assert idempotency_key(SID, same.sha256) == key
    assert idempotency_key(SID, other.sha256) != key
    assert idempotency_key("another-session", one.sha256) != key


def test_snapshot(tmp_path):
    path = write(tmp_path, b"12345")
    info = path.stat()
    assert snapshot(path) == Snapshot(size=5, mtime_ns=info.st_mtime_ns)
