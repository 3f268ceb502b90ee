"""The live rules of ``sqlite_live`` on states OpenClaw produced through its gateway, offline.

``tools/openclaw/live.py``, OpenClaw 2026.9.6: a turn held in flight by the model stand-in (OpenClaw
marks its window ``status = 'running'``), a message sent while it runs (OpenClaw keeps it in
``session_pending_inputs``, ``state = 'queued'``), and a completed session compacted by ``/compact`` and
archived. The package's discovery and exports run while the turn is held, inside the fixture's lifetime.
The expected bytes are OpenClaw's own deletion exports of both sessions (taken through the gateway after
the turn was released), split at reset events with the json library (``tests.oracle``): never the
package's reader.

``tools/openclaw/checkpoint.py``: OpenClaw 2026.9.6 writes no compaction checkpoint (it retired
``compactionCheckpoints``; its compaction appends an event to the open session), so one is written by
OpenClaw 2026.7.35, carried over by its ``sessions.reset`` to the next session, and migrated by 2026.9.6's
doctor. The expected bytes are the ``.reset.`` file as 2026.7.35 wrote it.

OpenClaw's gateway leaves a running window or a queued input on no session but its node's current one
(archive, delete and reset drain or abort the run first; the code is quoted in ``tools/openclaw/live.py``).
So on this state the in-flight session is also its node's current session: these tests show that
OpenClaw's in-flight state stays out of the upload and everything finished still goes, not which single
rule keeps it out; ``test_sqlite_store.py`` isolates each rule on hand-written rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from openclaw_nexus import discovery, sqlite_db, sqlite_export, sqlite_live, stores
from tests.oracle import conversations_of
from tools.openclaw.checkpoint import CHECKPOINT_AGENT, CHECKPOINT_PIECES, K_WORK, checkpoint_state
from tools.openclaw.fixture import agent_database, read_only
from tools.openclaw.live import AGENT, K_BUSY, K_DONE, held_state

WINDOW = discovery.Window(now=4102444800.0, settle_seconds=0)  # 2100: everything has settled
QUEUED_TEXT = "Busy, sent while the turn runs."


def scan_while_held(state: Path) -> dict:
    """What the package makes of the state while the turn is held: discovery, each offered item exported
    as the DAG exports it, its live set, and its answer to exports of the in-flight session."""
    found = stores.scan_agent(state, AGENT, WINDOW)
    offered = []
    for session in found.sessions:
        transcript = stores.open_transcript(state, session)
        offered.append({**session, "bytes": transcript.path.read_bytes()})
        stores.discard(transcript)
    database = agent_database(state, AGENT)
    with read_only(database) as db:  # which session is in flight, and its open conversation: OpenClaw's rows
        busy = db.execute(
            "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (K_BUSY,)
        ).fetchone()[0]
        opening = db.execute(
            "SELECT event_id FROM transcript_event_identities WHERE session_id = ? AND event_type = 'reset'"
            " ORDER BY seq DESC LIMIT 1",
            (busy,),
        ).fetchone()
    with sqlite_db.connect(database) as connection, sqlite_db.read_transaction(connection):
        live_ids = sqlite_live.live_session_ids(connection)
    refused = {}
    attempts = {"whole": {}, "open conversation": {"conversation": opening[0] if opening else "missing"}}
    for what, kwargs in attempts.items():
        dest = state.parent / f"refused-{what.replace(' ', '-')}.jsonl"
        try:
            sqlite_export.export_transcript(database, busy, dest, **kwargs)
            refused[what] = None
        except sqlite_db.SessionNotCompleted as exc:
            refused[what] = str(exc)
        refused[f"{what} left a file"] = dest.exists()
    return {
        "scan": found.to_dict(),
        "offered": offered,
        "live": live_ids,
        "refused": refused,
        "busy": busy,
    }


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    with held_state(tmp_path_factory.mktemp("live"), scan_while_held) as state:
        yield state


def need(live, *pieces: str) -> None:
    missing = live.missing(*pieces)
    if missing:
        pytest.fail("OpenClaw did not produce what this test needs: " + "; ".join(missing))


def offered(live) -> dict[tuple[str, str | None], dict]:
    return {(item["sessionId"], item.get("conversation")): item for item in live.scan["offered"]}


def test_openclaw_wrote_a_running_window_and_a_queued_input_while_the_turn_was_held(live):
    need(live, "running", "queued")
    busy = live.sessions[K_BUSY]
    assert live.scan["busy"] == busy == live.held["currentSessionId"]
    for rows in (live.held, live.held["after"]):  # before and after the package's scan: still in flight
        assert rows["windowStatus"] == "running"
        queued = [p for p in rows["pendingInputs"] if p["state"] == "queued"]
        assert [json.loads(p["message"])["content"] for p in queued] == [QUEUED_TEXT]
    # Once released, OpenClaw ran the queued input into the same session.
    assert live.answers["held"].get("ok") and live.answers["queued"].get("ok"), live.answers
    need(live, "exports")
    users = [
        json.loads(line)["message"].get("content")
        for line in live.exports[busy].splitlines()
        if json.loads(line).get("type") == "message" and json.loads(line)["message"].get("role") == "user"
    ]
    assert any(QUEUED_TEXT in json.dumps(content) for content in users), users


def test_the_session_in_flight_is_live_and_neither_it_nor_its_open_conversation_is_offered(live):
    need(live, "running", "queued", "reset")
    busy = live.sessions[K_BUSY]
    assert busy in live.scan["live"]
    assert live.sessions[K_DONE] not in live.scan["live"]
    mine = [key for key in offered(live) if key[0] == busy]
    assert mine == [(busy, "0")], "only the conversation /new closed"
    assert live.scan["scan"]["conversations"] == {"finished": 1, "open": 1}
    assert "is live again" in live.scan["refused"]["whole"]
    assert "is still open" in live.scan["refused"]["open conversation"]
    assert not live.scan["refused"]["whole left a file"]
    assert not live.scan["refused"]["open conversation left a file"]


def test_the_finished_conversation_of_the_session_in_flight_is_offered_byte_exact(live):
    need(live, "running", "reset", "exports")
    busy = live.sessions[K_BUSY]
    expected = conversations_of(live.exports[busy])
    assert len(expected) == 2, "OpenClaw's export: one reset event, two conversations"
    assert offered(live)[busy, "0"]["bytes"] == expected["0"]


def test_the_compacted_archived_session_is_offered_whole_byte_exact(live):
    need(live, "compaction", "archived", "exports")
    done = live.sessions[K_DONE]
    item = offered(live)[done, None]
    assert item["kind"] == "archived"
    assert item["bytes"] == live.exports[done]
    types = [json.loads(line).get("type") for line in live.exports[done].splitlines()]
    assert "compaction" in types and "reset" not in types


def test_nothing_else_is_offered(live):
    need(live, "running", "archived")
    assert set(offered(live)) == {(live.sessions[K_DONE], None), (live.sessions[K_BUSY], "0")}
    assert not live.scan["scan"]["errors"]


# -- a compaction checkpoint OpenClaw 2026.7.35 wrote, migrated by 2026.9.6 ----------------------------------
@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("checkpoint")
    manifest = checkpoint_state(dest)
    missing = [f"{p}: {manifest['produced'].get(p, 'no: not attempted')}" for p in CHECKPOINT_PIECES]
    missing = [m for m in missing if not m.split(": ", 1)[1].startswith("yes")]
    if missing:
        pytest.fail("OpenClaw did not produce what this test needs: " + "; ".join(missing))
    return dest / "state", manifest


def test_a_checkpoint_openclaw_wrote_names_a_session_the_live_set_keeps(checkpoint):
    state, made = checkpoint
    database = agent_database(state, CHECKPOINT_AGENT)
    with read_only(database) as db:  # OpenClaw's rows: S2 is current, S1 has no window (only its file)
        current = db.execute(
            "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (K_WORK,)
        ).fetchone()[0]
        windows = {row[0] for row in db.execute("SELECT session_id FROM session_windows")}
    assert current == made["second"] and made["first"] not in windows
    with sqlite_db.connect(database) as connection, sqlite_db.read_transaction(connection):
        assert {made["first"], made["second"]} <= sqlite_live.live_session_ids(connection)


def test_the_reset_transcript_a_carried_over_checkpoint_names_is_sent_byte_exact(checkpoint):
    """Before the fix the checkpoint kept S1 in the live set its ``.reset.`` file was checked against, so
    the transcript OpenClaw had reset was skipped as active on every run, for good."""
    state, made = checkpoint
    found = stores.scan_agent(state, CHECKPOINT_AGENT, WINDOW)
    assert [item["file"] for item in found.sessions] == [made["resetFile"]], found.to_dict()
    assert not found.skipped.get("active"), found.to_dict()
    transcript = stores.open_transcript(state, found.sessions[0])
    data = transcript.path.read_bytes()
    stores.discard(transcript)
    assert hashlib.sha256(data).hexdigest() == made["resetSha256"]  # the bytes OpenClaw 2026.7.35 wrote
    assert len(data) == made["resetBytes"]
