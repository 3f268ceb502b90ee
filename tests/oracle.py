"""Expectations built independently of the package: the conversations of a session as the README defines
them, split with the json library, line by line."""

from __future__ import annotations

import json


def conversations_of(export: bytes) -> dict[str, bytes]:
    """A session's conversations from OpenClaw's export of it (or its rows read by a test): split before
    each reset event, the session header line repeated; conversation 0 named ``0``, the others by the
    opening reset event's id, in order."""
    lines = export.splitlines(keepends=True)
    header = lines[0] if json.loads(lines[0]).get("type") == "session" else b""
    out: dict[str, bytes] = {}
    name, current = "0", []
    for line in lines:
        event = json.loads(line)
        if event.get("type") == "reset" and current:
            out[name] = b"".join(current)
            name, current = event["id"], [header]
        current.append(line)
    out[name] = b"".join(current)
    return out
