"""Fixes the fault table (docs/faults.md) found: a growing transcript never overruns Content-Length, and
an archive folder that is a symlink is not followed."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from openclaw_nexus.archive import ArchiveError, archive_transcript
from openclaw_nexus.transcript import TranscriptBody, TranscriptChanged


def test_a_transcript_that_grows_while_sent_never_yields_more_than_content_length(tmp_path: Path):
    path = tmp_path / "s-1.jsonl"
    path.write_bytes(b'{"line": 1}\n' * 1000)
    body = TranscriptBody(path, "main", "s-1", chunk_bytes=4096)
    sent = bytearray()
    pieces = iter(body)
    sent += next(pieces)  # the head
    sent += next(pieces)  # the first chunk
    with path.open("ab") as handle:
        handle.write(b'{"line": "appended"}\n' * 100)

    with pytest.raises(TranscriptChanged):
        for piece in pieces:
            sent += piece
    assert len(sent) < len(body), "stopped short: the server sees a truncated body, not a longer one"


def test_archive_folder_that_is_a_symlink_is_not_followed(tmp_path: Path):
    sessions, outside = tmp_path / "sessions", tmp_path / "outside"
    sessions.mkdir()
    outside.mkdir()
    (sessions / "archive").symlink_to(outside)
    source = sessions / "s-1.jsonl"
    source.write_bytes(b"{}\n")
    info = source.stat()

    with pytest.raises(ArchiveError, match="is a symlink: not followed"):
        archive_transcript(
            sessions,
            "s-1.jsonl",
            "s-1",
            size=info.st_size,
            mtime_ns=info.st_mtime_ns,
            sha256=hashlib.sha256(b"{}\n").hexdigest(),
        )
    assert source.read_bytes() == b"{}\n"
    assert list(outside.iterdir()) == []
