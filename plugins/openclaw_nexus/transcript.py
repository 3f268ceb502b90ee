"""The upload body, streamed from disk. Airflow-free.

Nexus takes ``{"agentId", "sessionId", "transcript"}`` where ``transcript`` is the file's content as a
JSON string, exactly. The body is produced chunk by chunk from the file, so memory stays bounded
whatever the transcript's size; a first pass over the file checks it is UTF-8, hashes it and
measures the body so the request carries a Content-Length.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

CHUNK_BYTES = 1 << 20


class TranscriptError(Exception):
    """The transcript cannot be sent as it is on disk; it is left where it is."""


class TranscriptChanged(TranscriptError):
    """The file changed while it was being sent (appended to or replaced)."""


@dataclass(frozen=True)
class Snapshot:
    size: int
    mtime_ns: int


def snapshot(path: Path) -> Snapshot:
    info = os.stat(path)
    return Snapshot(info.st_size, info.st_mtime_ns)


def idempotency_key(session_id: str, sha256: str) -> str:
    """Same session and same content give the same key, so Nexus can drop a re-sent duplicate."""
    return f"{session_id}:{sha256}"


class TranscriptBody:
    """An iterable, sized request body: ``len()`` gives Content-Length, each ``iter()`` reads afresh.

    Every iteration re-reads the file from its start, so a retried request sends the same bytes.
    """

    def __init__(self, path: Path, agent_id: str, session_id: str, *, chunk_bytes: int = CHUNK_BYTES):
        self.path = path
        self.chunk_bytes = chunk_bytes
        self._head = (
            '{"agentId": '
            + json.dumps(agent_id)
            + ', "sessionId": '
            + json.dumps(session_id)
            + ', "transcript": "'
        ).encode()
        self._tail = b'"}'
        self.sha256, self.size, self._length = self._measure()

    def _measure(self) -> tuple[str, int, int]:
        digest = hashlib.sha256()
        size = 0
        length = len(self._head) + len(self._tail)
        for raw, escaped in self._chunks():
            digest.update(raw)
            size += len(raw)
            length += len(escaped)
        return digest.hexdigest(), size, length

    def _chunks(self) -> Iterator[tuple[bytes, bytes]]:
        decoder = codecs.getincrementaldecoder("utf-8")("strict")
        offset = 0
        with self.path.open("rb") as handle:
            while True:
                raw = handle.read(self.chunk_bytes)
                pending = len(decoder.getstate()[0])
                try:
                    text = decoder.decode(raw, final=not raw)
                except UnicodeDecodeError as exc:
                    raise TranscriptError(
                        f"{self.path.name} is not valid UTF-8 (at byte {offset - pending + exc.start}); "
                        "a JSON string cannot carry it unchanged, so it is not sent"
                    ) from None
                offset += len(raw)
                # json.dumps escapes per character, so chunk boundaries cannot split an escape.
                yield raw, json.dumps(text, ensure_ascii=False)[1:-1].encode()
                if not raw:
                    return

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        sent = 0
        length = len(self._head) + len(self._tail)
        digest = hashlib.sha256()
        for raw, escaped in self._chunks():
            digest.update(raw)
            sent += len(raw)
            length += len(escaped)
            if length > self._length:
                # The file grew: stop before sending more than Content-Length, which the server would
                # read as the start of another request.
                raise TranscriptChanged(f"{self.path.name} changed while it was being sent")
            if escaped:
                yield escaped
        if (sent, digest.hexdigest()) != (self.size, self.sha256):
            # Content-Length would lie and Nexus would store other bytes than we archive: stop here.
            raise TranscriptChanged(f"{self.path.name} changed while it was being sent")
        yield self._tail
