"""OpenClaw session file names: which files are transcripts, and which session each belongs to.

Airflow-free. OpenClaw (JSONL era, releases up to 2026.7.x) writes, per agent, in ``sessions/``:

- ``<id>.jsonl``                          the transcript
- ``<id>-topic-<threadId>.jsonl``         a Telegram topic's transcript
- ``<ISO-with-dashes>_<id>.jsonl``        a fork (``2026-07-01T09-00-00-123Z_<id>.jsonl``)
- ``<transcript name>.reset.<ts>[.N]``    a transcript archived by a reset or roll-over
- ``<transcript name>.deleted.<ts>[.N]``  a transcript archived by a delete or prune

OpenClaw 2026.8+ (SQLite era) still publishes deletion and budget-cleanup exports there:
``<id>.jsonl.deleted.<ts>[.<32 hex generation>][.zst]``, zstd-compressed where its runtime has zstd.

and side files that are never transcripts: ``.lock``, ``.bak.<ts>`` / ``.bak-*`` backups,
``.compact.<uuid>.tmp``, ``<id>.checkpoint.<uuid>.jsonl``, ``.corrupt-*.jsonl``,
``<id>.trajectory.jsonl``, ``<id>.trajectory-path.json`` (and their ``.deleted.*`` forms), and
``sessions.json`` with its ``.tmp`` / ``.lock`` / ``.bak.*`` files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeGuard

# OpenClaw accepts UUIDs and any id of this shape (case-insensitive).
SESSION_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,127}", re.IGNORECASE)
# What names one conversation of a session in an archive copy's name and the idempotency key: the id
# of the reset event that opens it (OpenClaw's 8 hex), or ``0`` for the stretch before the first reset.
CONVERSATION_TOKEN_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}", re.IGNORECASE)

# OpenClaw's file-name timestamps: ISO 8601 with ':' turned into '-' (milliseconds after '.' or '-').
_TS = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:[.-]\d{1,9})?Z"
# JSONL era: an optional ``.N`` counter; SQLite era: an optional 32-hex generation, then ``.zst``.
_ARCHIVED_SUFFIX_RE = re.compile(
    rf"\.(?P<kind>reset|deleted)\.(?P<ts>{_TS})(?:\.\d+|\.(?P<generation>[0-9a-f]{{32}}))?(?P<zst>\.zst)?$"
)
_FORK_PREFIX_RE = re.compile(rf"^(?P<ts>{_TS})_")
_TOPIC_MARKER = "-topic-"

# Markers of side files whose stem would otherwise look like a session id (ids may contain dots).
_SIDE_FILE_STEM_RE = re.compile(
    r"(\.checkpoint\.|\.corrupt-|\.bak[.-]|\.compact\.|\.trajectory$|\.trajectory-path$|\.tmp$|\.lock$)",
    re.IGNORECASE,
)

TRANSCRIPT_SUFFIX = ".jsonl"
INDEX_FILE = "sessions.json"


@dataclass(frozen=True)
class TranscriptName:
    """What a transcript's file name says: its session id and the form it has."""

    session_id: str
    kind: str  # "live", "reset" or "deleted"
    topic: str | None = None
    fork: str | None = None
    compressed: bool = False  # a ``.zst`` export: its content is the zstd-decompressed bytes
    # Published whole by OpenClaw 2026.8+ (``.zst`` or a generation in the name): written to a temporary
    # file, fsynced, then linked or renamed into place, so complete when it appears. (A JSONL-era
    # transcript, and the ``.reset``/``.deleted`` name it is renamed to, is appended in place.)
    whole: bool = False

    @property
    def archived_by_openclaw(self) -> bool:
        """True for ``.reset.<ts>`` / ``.deleted.<ts>`` files: OpenClaw itself retired them."""
        return self.kind != "live"


def parse_transcript_name(name: str) -> TranscriptName | None:
    """Return the session a transcript file belongs to, or None when the file is not a transcript.

    For UUID ids this equals the seed spec's "first 36 characters of the name" on ``<id>.jsonl``,
    topics and OpenClaw's own ``.reset`` / ``.deleted`` archives; a fork's id follows its timestamp.
    """
    if "/" in name or name == INDEX_FILE or name.startswith(INDEX_FILE + "."):
        return None
    kind = "live"
    base = name
    compressed = whole = False
    archived = _ARCHIVED_SUFFIX_RE.search(name)
    if archived:
        kind = archived.group("kind")
        base = name[: archived.start()]
        compressed = archived.group("zst") is not None
        whole = compressed or archived.group("generation") is not None
    if not base.endswith(TRANSCRIPT_SUFFIX):
        return None
    stem = base[: -len(TRANSCRIPT_SUFFIX)]
    if _SIDE_FILE_STEM_RE.search(stem):
        return None
    fork = None
    fork_match = _FORK_PREFIX_RE.match(stem)
    if fork_match:
        fork = fork_match.group("ts")
        stem = stem[fork_match.end() :]
    topic = None
    topic_at = stem.find(_TOPIC_MARKER)
    if topic_at > 0:
        topic = stem[topic_at + len(_TOPIC_MARKER) :]
        stem = stem[:topic_at]
        if not topic:
            return None
    if not SESSION_ID_RE.fullmatch(stem):
        return None
    return TranscriptName(
        session_id=stem, kind=kind, topic=topic, fork=fork, compressed=compressed, whole=whole
    )


def is_valid_session_id(value: object) -> TypeGuard[str]:
    """True when ``value`` is a session id OpenClaw could have written."""
    return isinstance(value, str) and SESSION_ID_RE.fullmatch(value) is not None
