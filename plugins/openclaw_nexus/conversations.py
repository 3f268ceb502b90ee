"""Conversations inside one OpenClaw session (SQLite era). Airflow-free.

On OpenClaw's chat path a session keeps its ``sessionId`` for good: ``/new``, ``/reset`` and an idle or
daily expiry each append one reset event (``{"type":"reset","id":"<8 hex>",...,"reason":...}``) to the
same session. The unit sent to Nexus is the *conversation*: conversation 0 runs from the session's
first row up to (not including) its first reset event; conversation k from the k-th reset event up to
(not including) the next one. A conversation is named by the id of the reset event that opens it, and
conversation 0 by ``0``; a session that never reset is one conversation, sent and named as a whole
session (``<id>.jsonl``), exactly as before conversations existed.

Each conversation is sent as a transcript that parses on its own: the session's header row (``{"type":
"session",...}``, its first row), then the conversation's rows, each byte-exact as OpenClaw's export
writes them. Conversation 0 starts with the header already, so the conversations of a session, as
sent, rebuild OpenClaw's own export of it byte for byte: conversation 0, then each later conversation
without its first line.

The SQLite store finds boundaries in OpenClaw's index (``transcript_event_identities``); ``survey`` and
``write_part`` split a transcript that is only bytes (a deletion export, whose rows are gone).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO, TypeGuard

from openclaw_nexus.names import CONVERSATION_TOKEN_RE

FIRST = "0"  # the token of conversation 0, the stretch before the first reset event
_RESET_MARK = b'"type":"reset"'


def stem(session_id: str, conversation: str | None) -> str:
    """The archive copy's name without ``[+N].jsonl``, and the idempotency key's subject: ``<id>`` for a
    whole session, ``<id>@<conversation>`` for one conversation."""
    return session_id if conversation is None else f"{session_id}@{conversation}"


def is_token(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and CONVERSATION_TOKEN_RE.fullmatch(value) is not None


def reset_id(line: bytes) -> str | None:
    """The id of a reset event (one transcript line), or None when the line is not one."""
    if _RESET_MARK not in line:  # OpenClaw writes compact JSON: a cheap test before parsing
        return None
    try:
        event = json.loads(line)
    except ValueError:
        return None
    token = event.get("id") if isinstance(event, dict) and event.get("type") == "reset" else None
    return token if is_token(token) else None


def is_header(line: bytes) -> bool:
    try:
        event = json.loads(line)
    except ValueError:
        return False
    return isinstance(event, dict) and event.get("type") == "session"


@dataclass(frozen=True)
class Part:
    """One conversation of a transcript held as bytes (a deletion export): its token, its byte range in
    the transcript, and the size and sha256 of what is sent for it (header included)."""

    conversation: str
    start: int
    end: int
    size: int
    sha256: str


def survey(lines: Iterable[bytes]) -> tuple[bytes, list[Part]]:
    """The header line (``b""`` when the first line is not a session header) and the conversations of a
    whole transcript, read once as lines. A transcript without reset events is one part, token ``0``."""
    header = b""
    parts: list[Part] = []
    token, start, offset = FIRST, 0, 0
    digest, size = hashlib.sha256(), 0
    for line in lines:
        if offset == 0 and is_header(line):
            header = line
        opened = reset_id(line) if offset else None
        if opened is not None:
            parts.append(Part(token, start, offset, size, digest.hexdigest()))
            token, start = opened, offset
            digest, size = hashlib.sha256(header), len(header)
        digest.update(line)
        size += len(line)
        offset += len(line)
    parts.append(Part(token, start, offset, size, digest.hexdigest()))
    return header, parts


def write_part(lines: Iterable[bytes], header: bytes, part: Part, out: BinaryIO) -> None:
    """Write what is sent for ``part`` (the header unless the part starts with it, then its lines)."""
    if part.start > 0:
        out.write(header)
    offset = 0
    for line in lines:
        if offset >= part.end:
            return
        if offset >= part.start:
            out.write(line)
        offset += len(line)
