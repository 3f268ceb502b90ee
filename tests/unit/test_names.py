"""openclaw_nexus.names: which file names are transcripts, and which session each belongs to."""

from __future__ import annotations

import pytest

from openclaw_nexus.names import TranscriptName, is_valid_session_id, parse_transcript_name

UUID = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
TS = "2026-02-02T20-29-47.344Z"
FORK_TS = "2026-07-01T09-00-00-123Z"
GEN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (f"{UUID}.jsonl", TranscriptName(UUID, "live")),
        (f"{UUID}-topic-42.jsonl", TranscriptName(UUID, "live", topic="42")),
        (f"{UUID}-topic--100123.jsonl", TranscriptName(UUID, "live", topic="-100123")),
        (f"{FORK_TS}_{UUID}.jsonl", TranscriptName(UUID, "live", fork=FORK_TS)),
        (f"{UUID}.jsonl.reset.{TS}", TranscriptName(UUID, "reset")),
        (f"{UUID}.jsonl.reset.{TS}.2", TranscriptName(UUID, "reset")),
        (f"{UUID}.jsonl.deleted.{TS}", TranscriptName(UUID, "deleted")),
        (f"{UUID}.jsonl.deleted.{TS}.1", TranscriptName(UUID, "deleted")),
        (f"{UUID}-topic-42.jsonl.reset.{TS}", TranscriptName(UUID, "reset", topic="42")),
        (f"{UUID}-topic-42.jsonl.deleted.{TS}.3", TranscriptName(UUID, "deleted", topic="42")),
        (f"{FORK_TS}_{UUID}.jsonl.reset.{TS}", TranscriptName(UUID, "reset", fork=FORK_TS)),
        (f"{FORK_TS}_{UUID}.jsonl.deleted.{TS}.7", TranscriptName(UUID, "deleted", fork=FORK_TS)),
        # Timestamps without milliseconds, and with a dash before them, are OpenClaw's too.
        (f"{UUID}.jsonl.reset.2026-02-02T20-29-47Z", TranscriptName(UUID, "reset")),
        (f"{UUID}.jsonl.deleted.2026-02-02T20-29-47-344Z", TranscriptName(UUID, "deleted")),
        # SQLite era (OpenClaw 2026.8+): a 32-hex generation, and zstd-compressed exports; either marks
        # an export OpenClaw published whole (a temporary file fsynced, then linked or renamed into place).
        (
            f"{UUID}.jsonl.deleted.{TS}.{GEN}.zst",
            TranscriptName(UUID, "deleted", compressed=True, whole=True),
        ),
        (f"{UUID}.jsonl.deleted.{TS}.{GEN}", TranscriptName(UUID, "deleted", whole=True)),
        (f"{UUID}.jsonl.reset.{TS}.zst", TranscriptName(UUID, "reset", compressed=True, whole=True)),
    ],
)
def test_transcript_forms(name, expected):
    parsed = parse_transcript_name(name)
    assert parsed == expected
    assert parsed.archived_by_openclaw is (expected.kind != "live")


@pytest.mark.parametrize(
    "name",
    [
        f"{UUID}.jsonl",
        f"{UUID}-topic-42.jsonl",
        f"{UUID}.jsonl.reset.{TS}",
        f"{UUID}.jsonl.deleted.{TS}.2",
        f"{UUID}-topic-9.jsonl.deleted.{TS}",
    ],
)
def test_uuid_id_is_the_first_36_characters(name):
    assert parse_transcript_name(name).session_id == name[:36] == UUID


def test_fork_id_is_the_uuid_after_the_timestamp_prefix():
    # The seed spec's "first 36 characters" would give the fork's timestamp here, not the session.
    name = f"{FORK_TS}_{UUID}.jsonl"
    assert parse_transcript_name(name).session_id == UUID
    assert name[:36] != UUID


@pytest.mark.parametrize(
    ("name", "session_id"),
    [
        ("main.jsonl", "main"),
        ("a.jsonl", "a"),
        ("7.jsonl", "7"),
        ("Agent.Session_1-x.jsonl", "Agent.Session_1-x"),
        ("ABC-def.jsonl", "ABC-def"),
        ("chat_2026.01.jsonl", "chat_2026.01"),
        ("x" * 128 + ".jsonl", "x" * 128),
        ("MyChat-topic-5.jsonl.reset." + TS, "MyChat"),
        # The index's name is reserved, but an id that merely starts like it is not.
        ("sessions.jsonl", "sessions"),
    ],
)
def test_non_uuid_ids(name, session_id):
    assert parse_transcript_name(name).session_id == session_id


@pytest.mark.parametrize(
    "name",
    [
        "x" * 129 + ".jsonl",
        "-abc.jsonl",
        "_abc.jsonl",
        ".hidden.jsonl",
        "a b.jsonl",
        "a:b.jsonl",
        "a+1.jsonl",
        "é.jsonl",
        ".jsonl",
        f"{UUID}-topic-.jsonl",
    ],
)
def test_invalid_ids_are_not_transcripts(name):
    assert parse_transcript_name(name) is None


@pytest.mark.parametrize(
    "name",
    [
        f"{UUID}.jsonl.lock",
        f"{UUID}.jsonl.bak.{TS}",
        f"{UUID}.jsonl.bak-1",
        f"{UUID}.compact.{UUID}.tmp",
        f"{UUID}.checkpoint.{UUID}.jsonl",
        f"{UUID}.corrupt-2026-01-01.jsonl",
        f"{UUID}.trajectory.jsonl",
        f"{UUID}.trajectory-path.json",
        f"{UUID}.trajectory.jsonl.deleted.{TS}",
        f"{UUID}.trajectory.jsonl.reset.{TS}.2",
        f"{UUID}.checkpoint.{UUID}.jsonl.deleted.{TS}",
        f"{UUID}.jsonl.reset.{TS}.lock",
        f"{UUID}.jsonl.reset.not-a-timestamp",
        f"{UUID}.jsonl.deleted.{TS}.{GEN}.zst.tmp",
        f"{UUID}.jsonl.deleted.{TS}.{GEN[:31]}",
        f"{UUID}.trajectory.jsonl.deleted.{TS}.{GEN}.zst",
        f"{UUID}.jsonl.zst",
        f"{'0' * 64}.jsonl.zst",  # a cold archive (sessions/cold/): records, not a transcript
        f"{UUID}.json",
        f"{UUID}.JSONL",
        "sessions.json",
        "sessions.json.tmp",
        "sessions.json.lock",
        f"sessions.json.bak.{TS}",
        "notes.txt",
        ".hidden.jsonl",
        f"archive/{UUID}.jsonl",
        "",
    ],
)
def test_side_files_are_not_transcripts(name):
    assert parse_transcript_name(name) is None


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (UUID, True),
        ("main", True),
        ("A" * 128, True),
        ("A" * 129, False),
        ("", False),
        ("..", False),
        ("a/b", False),
        (None, False),
        (42, False),
    ],
)
def test_is_valid_session_id(value, valid):
    assert is_valid_session_id(value) is valid
