"""The demo's state dir kept in the repository (tools/demo/data) is what OpenClaw builds today.

``python -m tools.demo.rebuild`` writes it with OpenClaw 2026.9.6 (agent ``chat``, SQLite era, through its
gateway and chat path) and 2026.7.35 (agent ``main``, JSONL era, ``tools/openclaw/legacy.py``). Here a fresh
build (cached by ``tools.openclaw.fixture.cached_build`` under the build's own key) is compared with the
kept copy: the same agents and eras, the same sessions in the same states, the same reset events closing
the same conversations, the same transcript forms (file-name patterns), read from each state dir itself;
ids, timestamps and paths differ from build to build and are left out. The kept copy must also be small
and whole: its database closed by OpenClaw (no WAL left beside it), nothing of the gateway's own files.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from tools.demo.rebuild import built_state
from tools.demo.state import DATA, WANTED, describe_copy, missing, shape
from tools.openclaw.fixture import missing_pieces

KEPT = DATA / "state"


@pytest.fixture(scope="module")
def fresh():
    """A build made now by OpenClaw (or the cached one of this exact code and these releases); a build
    that lacks a piece fails the test with the manifest's reason."""
    built = built_state()
    lacking = missing_pieces(json.loads((built / "manifest.json").read_text()))
    assert not lacking, f"OpenClaw did not produce every piece: {lacking}"
    return built


def test_the_kept_state_has_the_shape_of_a_fresh_build(fresh):
    assert shape(describe_copy(KEPT)) == shape(describe_copy(fresh / "state"))


def test_the_kept_state_holds_every_piece_the_demo_shows():
    """Each era, and per session the state and the reasons that open and close its conversations, as
    written in ``WANTED`` (a chat with /new and /reset whose last conversation is open; archived, deleted,
    cron)."""
    described = describe_copy(KEPT)
    assert set(described) == set(WANTED)
    assert missing(described, {"chat": "sqlite", "main": "jsonl"}) == {"chat": "yes", "main": "yes"}
    assert described["chat"]["schema"] == 23


def test_the_manifest_describes_the_kept_state():
    """The manifest written with the copy still matches it (the copy was not edited by hand), and names
    a modification time and OpenClaw's mode for every file (git keeps neither; the demo restores them)."""
    manifest = json.loads((DATA / "manifest.json").read_text())
    assert shape(manifest["description"]) == shape(describe_copy(KEPT))
    files = {str(p.relative_to(KEPT)) for p in KEPT.rglob("*") if p.is_file()}
    assert set(manifest["fileTimes"]) == set(manifest["fileModes"]) == files
    database = "agents/chat/agent/openclaw-agent.sqlite"
    assert manifest["fileModes"][database] == "0o600"  # as OpenClaw 2026.9.6 creates its database


def test_the_kept_state_is_small_and_closed_by_openclaw():
    """Only agents/ is kept; the database is OpenClaw's file as it left it on a clean shutdown (no -wal or
    -shm beside it, readable on its own), and the whole copy stays under 1.5 MB on disk (the database is
    mostly the empty pages of OpenClaw's schema; git stores it compressed)."""
    assert sorted(p.name for p in KEPT.iterdir()) == ["agents"]
    database = KEPT / "agents" / "chat" / "agent" / "openclaw-agent.sqlite"
    assert not database.with_name(database.name + "-wal").exists()
    assert not database.with_name(database.name + "-shm").exists()
    connection = sqlite3.connect(f"file:{database}?mode=ro&immutable=1", uri=True)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("SELECT count(*) FROM session_nodes").fetchone()[0] == 3
    finally:
        connection.close()
    size = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert size < 1_500_000, size
