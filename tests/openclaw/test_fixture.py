"""The OpenClaw fixture (tools/openclaw/fixture.py) checked against the databases OpenClaw 2026.9.6 wrote,
read with Python's sqlite3 read-only: the manifest's claims (era, schema, live and completed sessions) and
its expected transcripts, cross-checked with the rows (``event_json`` / decoded ``event_zstd`` + ``\\n``)
and with OpenClaw's own ``sessions --json`` listing.

The first run installs OpenClaw from npm and builds the fixture; later runs copy the cache.
Skipped only when OpenClaw cannot be installed because the npm registry is unreachable, and never in CI
(``CI=true``), where that is a failure."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest
import zstandard

from tools.openclaw import fixture as fx
from tools.standins.model import LONG_MARKER

SQLITE_AGENTS = ["native", "legacy", "chat"]


def _npm_reachable() -> bool:
    npm = shutil.which("npm")
    if npm is None:
        return False
    try:
        return subprocess.run([npm, "ping"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[Path, dict]:
    dest = tmp_path_factory.mktemp("openclaw-fixture")
    try:
        manifest = fx.openclaw_state("mixed", dest)
    except fx.FixtureUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes") or _npm_reachable():
            raise
        pytest.skip(
            f"OpenClaw {fx.OPENCLAW_VERSION} cannot be installed, the npm registry is unreachable: {exc}"
        )
    return dest, manifest


def connect(dest: Path, agent_manifest: dict) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{dest / agent_manifest['database']}?mode=ro", uri=True, timeout=5)


def rows_bytes(db: sqlite3.Connection, session_id: str) -> bytes:
    """Independent of the fixture's own reader: rows by seq, event_json or event_zstd decoded, + \\n."""
    out = b""
    for text, blob, size in db.execute(
        "SELECT event_json, event_zstd, event_utf8_bytes FROM transcript_events"
        " WHERE session_id = ? ORDER BY seq",
        (session_id,),
    ):
        if text is not None:
            event = text.encode("utf-8")
        else:
            event = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
            assert len(event) == size
        out += event + b"\n"
    return out


def cold_bytes(path: Path) -> bytes:
    """A cold archive's payload: JSONL records; the events are the ``kind: "event"`` ones by ``row.seq``."""
    with open(path, "rb") as handle:
        payload = zstandard.ZstdDecompressor().stream_reader(handle, read_across_frames=True).read()
    records = [json.loads(line) for line in payload.splitlines() if line.strip()]
    events = sorted((r["row"] for r in records if r.get("kind") == "event"), key=lambda row: row["seq"])
    return b"".join(row["event_json"].encode("utf-8") + b"\n" for row in events)


def completed(manifest: dict, agent: str, how: str) -> list[dict]:
    return [c for c in manifest["agents"][agent]["completed"] if c["how"] == how]


def test_manifest_is_written_next_to_the_state_dir(mixed):
    dest, manifest = mixed
    assert json.loads((dest / "manifest.json").read_text()) == manifest
    assert not (dest / "state" / "manifest.json").exists()
    assert manifest["openclaw"] == "2026.9.6"
    assert {a: m["era"] for a, m in manifest["agents"].items()} == {
        "native": "sqlite",
        "legacy": "migrated",
        "chat": "sqlite",
        "jsonl": "jsonl",
    }


def test_the_build_produced_cold_storage_and_the_cron_runs(mixed):
    """The manifest records what OpenClaw's workers did when asked (the cold-storage sweep, the cron job);
    a build without them is not the fixture the other tests describe (and is not cached)."""
    _, manifest = mixed
    produced = manifest["produced"]
    assert str(produced.get("cold", "")).startswith("yes"), (
        f"cold storage not produced: {produced.get('cold')!r}"
    )
    assert str(produced.get("cron", "")).startswith("yes"), (
        f"cron runs not produced: {produced.get('cron')!r}"
    )


@pytest.mark.parametrize("agent", SQLITE_AGENTS)
def test_sqlite_agents_are_schema_23_and_no_openclaw_process_left_a_journal(mixed, agent):
    dest, manifest = mixed
    with closing(connect(dest, manifest["agents"][agent])) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 23
        meta = db.execute(
            "SELECT schema_version, app_version FROM schema_meta WHERE meta_key = 'primary'"
        ).fetchone()
        assert meta == (23, "2026.9.6")
        assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"


def test_plain_jsonl_agent_has_no_database(mixed):
    dest, manifest = mixed
    agent = manifest["agents"]["jsonl"]
    assert not (dest / "state" / "agents" / "jsonl" / "agent").exists()
    index = json.loads((dest / agent["index"]).read_text())
    assert {e["sessionId"] for e in index.values()} == {s["sessionId"] for s in agent["live"]}
    for entry in agent["completed"]:
        assert entry["sessionId"] not in {e["sessionId"] for e in index.values()}
        assert (dest / entry["file"]).read_bytes() == (dest / entry["expected"]).read_bytes()


@pytest.mark.parametrize("agent", SQLITE_AGENTS)
def test_live_sessions_are_unarchived_current_windows(mixed, agent):
    dest, manifest = mixed
    live = manifest["agents"][agent]["live"]
    assert live
    with closing(connect(dest, manifest["agents"][agent])) as db:
        nodes = {
            k: (c, a)
            for k, c, a in db.execute(
                "SELECT session_key, current_session_id, archived_at FROM session_nodes"
            )
        }
        for session in live:
            assert nodes[session["key"]] == (session["sessionId"], None)
        unarchived = {k for k, (_, archived) in nodes.items() if archived is None}
        assert unarchived == {s["key"] for s in live}


def test_native_agent_has_every_lifecycle_state(mixed):
    _, manifest = mixed
    native = manifest["agents"]["native"]
    hows = {c["how"] for c in native["completed"]}
    assert {"idle-rollover", "archived", "deleted"} <= hows
    assert "agent:native:main" in {s["key"] for s in native["live"]}
    assert any(c["zstdRows"] for c in completed(manifest, "native", "idle-rollover"))
    assert manifest["produced"].get("cold", "").startswith("yes"), manifest["produced"]
    assert any(c["cold"] for c in native["completed"])
    assert any(s["cold"] for s in native["live"])
    assert manifest["produced"].get("cron", "").startswith("yes"), manifest["produced"]
    # Ours, run twice.
    job = manifest["produced"]["cron"].split("job ", 1)[1]
    (superseded,) = [c for c in completed(manifest, "native", "cron-superseded") if job in c["key"]]
    assert superseded["key"] == f"agent:native:cron:{job}"
    assert superseded["key"] in {s["key"] for s in native["live"]}


def test_archived_and_superseded_sessions_are_completed_in_the_database(mixed):
    dest, manifest = mixed
    for agent in SQLITE_AGENTS:
        with closing(connect(dest, manifest["agents"][agent])) as db:
            for entry in manifest["agents"][agent]["completed"]:
                if entry["how"] in ("archived", "recovered"):
                    key, current, archived = db.execute(
                        "SELECT session_key, current_session_id, archived_at FROM session_nodes"
                        " WHERE session_key = ?",
                        (entry["key"],),
                    ).fetchone()
                    assert archived is not None and current == entry["sessionId"]
                    reason = json.loads(
                        db.execute(
                            "SELECT entry_json FROM session_nodes WHERE session_key = ?", (key,)
                        ).fetchone()[0]
                    ).get("archiveReason")
                    assert reason or entry["how"] == "recovered"
                elif entry["how"] in ("idle-rollover", "cron-superseded"):
                    (window_key,) = db.execute(
                        "SELECT session_key FROM session_windows WHERE session_id = ?", (entry["sessionId"],)
                    ).fetchone()
                    (current,) = db.execute(
                        "SELECT current_session_id FROM session_nodes WHERE session_key = ?", (window_key,)
                    ).fetchone()
                    assert current != entry["sessionId"]
                    if entry["how"] == "cron-superseded":
                        continue  # a cron run's new window does not point back to the previous run
                    newer = db.execute(
                        "SELECT count(*) FROM session_windows"
                        " WHERE session_id = ? AND previous_session_id = ?",
                        (current, entry["sessionId"]),
                    ).fetchone()[0]
                    assert newer == 1


def test_deleted_session_has_its_archive_row_and_no_rows_left(mixed):
    dest, manifest = mixed
    (deleted,) = completed(manifest, "native", "deleted")
    path = dest / deleted["file"]
    name = path.name
    assert name.startswith(f"{deleted['sessionId']}.jsonl.deleted.") and name.endswith(".zst")
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with closing(connect(dest, manifest["agents"]["native"])) as db:
        assert (
            db.execute(
                "SELECT count(*) FROM session_windows WHERE session_id = ?", (deleted["sessionId"],)
            ).fetchone()[0]
            == 0
        )
        assert (
            db.execute(
                "SELECT count(*) FROM transcript_events WHERE session_id = ?", (deleted["sessionId"],)
            ).fetchone()[0]
            == 0
        )
        reason, encoding, blob, sha = db.execute(
            "SELECT reason, encoding, archive_blob, archive_sha256 FROM session_transcript_archives"
            " WHERE archive_name = ?",
            (name,),
        ).fetchone()
    assert (reason, encoding) == ("deleted", "zstd")
    expected = (dest / deleted["expected"]).read_bytes()
    with zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True) as reader:
        assert reader.read() == expected
    assert sha in (hashlib.sha256(blob).hexdigest(), hashlib.sha256(expected).hexdigest())


def test_expected_bytes_equal_the_rows_of_every_hot_completed_session(mixed):
    """Two definitions, two sources: OpenClaw's deletion export (made in a copy) == our read of the rows."""
    dest, manifest = mixed
    checked = 0
    for agent in SQLITE_AGENTS:
        with closing(connect(dest, manifest["agents"][agent])) as db:
            for entry in manifest["agents"][agent]["completed"]:
                if entry["source"] != "database":
                    continue
                expected = (dest / entry["expected"]).read_bytes()
                assert hashlib.sha256(expected).hexdigest() == entry["sha256"]
                assert rows_bytes(db, entry["sessionId"]) == expected, entry
                checked += 1
    assert checked >= 4


def test_compressed_rows_decode_into_the_expected_bytes(mixed):
    dest, manifest = mixed
    (rolled,) = completed(manifest, "native", "idle-rollover")
    with closing(connect(dest, manifest["agents"]["native"])) as db:
        (zstd_rows,) = db.execute(
            "SELECT count(*) FROM transcript_events WHERE session_id = ? AND event_zstd IS NOT NULL",
            (rolled["sessionId"],),
        ).fetchone()
    assert zstd_rows == rolled["zstdRows"] >= 1
    assert b"Long stand-in reply" in (dest / rolled["expected"]).read_bytes()


def test_cold_sessions_expected_bytes_equal_their_cold_archive(mixed):
    dest, manifest = mixed
    assert manifest["produced"].get("cold", "").startswith("yes"), (
        f"OpenClaw did not move a transcript to cold storage in this build: {manifest['produced']}"
    )
    cold = [c for c in manifest["agents"]["native"]["completed"] if c["cold"]]
    assert cold
    for entry in cold:
        with closing(connect(dest, manifest["agents"]["native"])) as db:
            name, storage, sha = db.execute(
                "SELECT archive_name, storage, archive_sha256 FROM session_transcript_cold_archives"
                " WHERE session_id = ?",
                (entry["sessionId"],),
            ).fetchone()
            rows = db.execute(
                "SELECT count(*) FROM transcript_events WHERE session_id = ?", (entry["sessionId"],)
            ).fetchone()[0]
        assert storage == "file" and rows == 0
        path = dest / entry["coldFile"]
        assert path.name == name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
        assert cold_bytes(path) == (dest / entry["expected"]).read_bytes()


def test_migration_kept_the_original_bytes_and_left_the_reset_file(mixed):
    dest, manifest = mixed
    legacy = manifest["agents"]["legacy"]
    (recovered,) = completed(manifest, "legacy", "recovered")
    assert recovered["key"] == f"agent:legacy:recovered:{recovered['sessionId']}"
    assert recovered["matchesOriginalFile"] is True
    (reset,) = completed(manifest, "legacy", "reset-file")
    assert (dest / reset["file"]).exists() and ".jsonl.reset." in reset["file"]
    assert any(name.endswith(".imported-" + name.rsplit("-", 1)[-1]) for name in legacy["importArchive"])
    assert any(name.startswith("legacy-store.sessions.json.imported-") for name in legacy["importArchive"])
    assert not (dest / "state" / "agents" / "legacy" / "sessions" / "sessions.json").exists()


def test_openclaw_lists_the_live_and_archived_sessions(mixed):
    dest, manifest = mixed
    listing = fx.sessions_listing(dest / "state")
    keys = {s["key"] for s in listing["sessions"]}
    for agent in SQLITE_AGENTS:
        assert {s["key"] for s in manifest["agents"][agent]["live"]} <= keys


def test_a_second_copy_comes_from_the_cache_and_is_identical(mixed, tmp_path):
    """The build was complete, so it was cached: a second copy is the cached build (not a new one)."""
    dest, manifest = mixed
    cached = fx.OpenClaw.installed().cache / "fixtures" / fx.fixture_key("mixed")
    assert fx.missing_pieces(manifest) == {}, fx.missing_pieces(manifest)
    assert fx.built_fixture("mixed") == cached and (cached / "manifest.json").exists()
    again = fx.openclaw_state("mixed", tmp_path / "again")
    assert again == manifest == json.loads((cached / "manifest.json").read_text())
    for entry in manifest["agents"]["native"]["completed"]:
        assert (tmp_path / "again" / entry["expected"]).read_bytes() == (
            dest / entry["expected"]
        ).read_bytes()


# -- the chat agent: conversations inside one session, written through OpenClaw's chat path ---------------
HEX8 = re.compile(r"[0-9a-f]{8}")


def chat_sessions(manifest: dict) -> dict[str, dict]:
    return {s["key"]: s for s in manifest["agents"]["chat"]["sessions"]}


def reset_lines(data: bytes) -> list[dict]:
    """The reset events of a transcript (one JSON event a line), parsed with the json library."""
    events = [json.loads(line) for line in data.splitlines()]
    return [e for e in events if e.get("type") == "reset"]


def test_chat_agent_produced_every_planned_piece(mixed):
    _, manifest = mixed
    produced = manifest["agents"]["chat"]["produced"]
    assert set(produced) == {"new", "reset", "idle", "daily", "compressedInsideConversation"}
    missing = {piece: why for piece, why in produced.items() if not why.startswith("yes")}
    assert not missing, f"the chat agent lacks what it was built for: {missing}"


def test_chat_sessions_hold_their_planned_resets_in_order(mixed):
    _, manifest = mixed
    sessions = chat_sessions(manifest)
    assert list(sessions) == ["agent:chat:main", "agent:chat:talk", "agent:chat:gone"]
    plans = {
        "agent:chat:main": (["new", "idle", "reset", "daily"], "live"),
        "agent:chat:talk": (["new", "reset"], "archived"),
        "agent:chat:gone": (["new"], "deleted"),
    }
    for key, (reasons, state) in plans.items():
        session = sessions[key]
        assert session["sessionId"], f"{key} was not written: {session}"
        assert session["state"] == state, f"{key}: {session['state']}, built to be {state}"
        assert [r["reason"] for r in session["resets"]] == reasons, (key, session["resets"])
        ids = [r["id"] for r in session["resets"]]
        assert all(HEX8.fullmatch(i) for i in ids), ids
        assert len(set(ids)) == len(ids), ids
        assert [r["eventId"] for r in session["resets"]] == ids
        seqs = [r["seq"] for r in session["resets"]]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    every_id = [r["id"] for s in sessions.values() for r in s["resets"]]
    assert len(set(every_id)) == len(every_id), every_id


def test_chat_reset_rows_are_indexed_as_resets(mixed):
    """Each reset event is a ``transcript_events`` row whose ``transcript_event_identities`` row says
    ``event_type = 'reset'`` with the event's id and seq; nothing else there is a reset."""
    dest, manifest = mixed
    chat = manifest["agents"]["chat"]
    with closing(connect(dest, chat)) as db:
        for session in chat["sessions"]:
            if session["state"] == "deleted":
                continue
            sid = session["sessionId"]
            indexed = db.execute(
                "SELECT event_id, seq, created_at FROM transcript_event_identities"
                " WHERE session_id = ? AND event_type = 'reset' ORDER BY seq",
                (sid,),
            ).fetchall()
            assert indexed == [(r["id"], r["seq"], r["createdAt"]) for r in session["resets"]], session["key"]
            for reset in session["resets"]:
                text, created_at = db.execute(
                    "SELECT event_json, created_at FROM transcript_events WHERE session_id = ? AND seq = ?",
                    (sid, reset["seq"]),
                ).fetchone()
                event = json.loads(text)
                assert (event["type"], event["id"], event["reason"]) == (
                    "reset",
                    reset["id"],
                    reset["reason"],
                )
                assert created_at == reset["createdAt"] == reset["eventCreatedAt"]
            in_rows = [
                json.loads(text)["id"]
                for (text,) in db.execute(
                    "SELECT event_json FROM transcript_events WHERE session_id = ? AND event_json IS NOT NULL"
                    " AND json_extract(event_json, '$.type') = 'reset' ORDER BY seq",
                    (sid,),
                )
            ]
            assert in_rows == [r["id"] for r in session["resets"]], session["key"]


# What the fixture asks OpenClaw to do on each chat session (tools/openclaw/fixture.py, _chat_agent_phase),
# stated here: the messages it sends through ``chat.send``, in order, and where it moves the gateway's clock
# past an expiry (IDLE: past ``idleMinutes``; DAILY: past the daily reset hour), so that the next message
# starts a new conversation.
IDLE, DAILY = object(), object()
CHAT_SENT = {
    "agent:chat:main": [
        "Hello chat main, first turn.",
        "Second turn of the first conversation.",
        "/new",
        "First turn after /new.",
        IDLE,
        "Back after the idle window.",
        "/reset",
        f"After /reset, a long answer: {LONG_MARKER} please.",
        DAILY,
        "The next day's first message.",
        "The open conversation goes on.",
    ],
    "agent:chat:talk": [
        "Talk, first conversation.",
        "/new",
        f"Talk, second one: {LONG_MARKER} please.",
        "/reset",
        "Talk, third conversation.",
    ],
    "agent:chat:gone": ["Gone, first conversation.", "/new", "Gone, second conversation."],
}


def outline_of_what_was_sent(sent: list) -> list[tuple[str, str]]:
    """The transcript OpenClaw's chat path makes of ``sent``, in outline: a ``/new`` or ``/reset`` is a
    ``reset`` event (reason ``new`` / ``reset``), the command itself, and OpenClaw's confirmation; an
    expiry is a ``reset`` event (``idle`` / ``daily``) before the next message; any other message is the
    user's message and the model stand-in's reply to it (``stand-in reply N to: <message>``, or ``Long
    stand-in reply N`` for a message asking for one)."""
    outline: list[tuple[str, str]] = []
    for item in sent:
        if item is IDLE or item is DAILY:
            outline.append(("reset", "idle" if item is IDLE else "daily"))
        elif item in ("/new", "/reset"):
            outline += [("reset", item[1:]), ("user", item), ("assistant", "confirmed")]
        else:
            reply = "long reply" if LONG_MARKER in item else f"reply to: {item}"
            outline += [("user", item), ("assistant", reply)]
    return outline


def outline_of_transcript(data: bytes) -> list[tuple[str, str]]:
    """The same outline read from a transcript (one JSON event a line, parsed with the json library): its
    ``reset`` events and its user and assistant messages, each reply by its form."""
    outline: list[tuple[str, str]] = []
    for line in data.splitlines():
        event = json.loads(line)
        if event.get("type") == "reset":
            outline.append(("reset", event["reason"]))
        elif event.get("type") == "message" and event["message"]["role"] == "user":
            outline.append(("user", event["message"]["content"]))
        elif event.get("type") == "message" and event["message"]["role"] == "assistant":
            content = event["message"]["content"]
            text = content if isinstance(content, str) else "".join(b.get("text", "") for b in content)
            reply = re.fullmatch(r"stand-in reply \d+ to: (.*)", text, flags=re.S)
            if text.startswith("\u2705"):
                outline.append(("assistant", "confirmed"))
            elif text.startswith("Long stand-in reply "):
                outline.append(("assistant", "long reply"))
            else:
                outline.append(("assistant", f"reply to: {reply.group(1)}" if reply else text))
    return outline


def test_chat_transcripts_hold_what_the_fixture_sent_and_the_resets_it_caused(mixed):
    """Each chat session's expected transcript (OpenClaw's deletion export for ``talk`` and ``gone``, its
    rows for ``main``, which OpenClaw never exports) holds, in order, exactly the messages the fixture
    sent, each answered, and a reset event where each ``/new``, ``/reset`` and clock move past an expiry
    put one: the expectation is what the fixture asked OpenClaw to do, not anything read back."""
    dest, manifest = mixed
    sessions = chat_sessions(manifest)
    for key, sent in CHAT_SENT.items():
        data = (dest / sessions[key]["expected"]).read_bytes()
        assert outline_of_transcript(data) == outline_of_what_was_sent(sent), key


def test_chat_expected_transcripts_hold_the_same_resets(mixed):
    """The whole-session expected bytes carry the reset events the manifest lists, in order, each on the
    line its ``seq`` names; where they are OpenClaw's deletion export (``talk``, made in a copy), they are
    also the session's rows read here (``main``'s expected bytes are its rows: what they hold is checked
    against what the fixture sent, above)."""
    dest, manifest = mixed
    chat = manifest["agents"]["chat"]
    with closing(connect(dest, chat)) as db:
        for session in chat["sessions"]:
            assert session.get("expected"), f"{session['key']} has no expected transcript: {session}"
            data = (dest / session["expected"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == session["sha256"]
            found = reset_lines(data)
            assert [(e["id"], e["reason"]) for e in found] == [
                (r["id"], r["reason"]) for r in session["resets"]
            ], session["key"]
            lines = data.splitlines()
            for reset in session["resets"]:
                assert json.loads(lines[reset["seq"]])["id"] == reset["id"], "line index is the seq"
            if session["expectedFrom"].startswith("copy:"):
                assert rows_bytes(db, session["sessionId"]) == data, session["key"]


def test_chat_main_session_never_changed_its_session_id(mixed):
    dest, manifest = mixed
    main = chat_sessions(manifest)["agent:chat:main"]
    sid = main["sessionId"]
    assert main["sessionIdAtStart"] == main["sessionIdAtEnd"] == sid, (
        f"the main session's id changed: {main['sessionIdAtStart']} at its first turn,"
        f" {main['sessionIdAtEnd']} at its last, {sid} now"
    )
    assert main["windows"] == [sid], f"more than one window: {main['windows']}"
    assert "agent:chat:main" in {s["key"] for s in manifest["agents"]["chat"]["live"]}
    with closing(connect(dest, manifest["agents"]["chat"])) as db:
        windows = db.execute(
            "SELECT session_id, previous_session_id FROM session_windows WHERE session_key = ?",
            ("agent:chat:main",),
        ).fetchall()
        assert windows == [(sid, None)], "one window: the resets did not open a new session"
        assert db.execute(
            "SELECT current_session_id, archived_at FROM session_nodes WHERE session_key = ?",
            ("agent:chat:main",),
        ).fetchone() == (sid, None)
        (header,) = db.execute(
            "SELECT event_json FROM transcript_events WHERE session_id = ? AND seq = 0", (sid,)
        ).fetchone()
    assert json.loads(header)["id"] == sid
    first_reset = main["resets"][0]["seq"] if main["resets"] else None
    assert first_reset is not None and first_reset > 1, "the first conversation has rows before /new"
    # The last conversation is open: turns follow the last reset.
    lines = (dest / main["expected"]).read_bytes().splitlines()
    after = [json.loads(line) for line in lines[main["resets"][-1]["seq"] + 1 :]]
    assert sum(1 for e in after if e.get("type") == "message" and e["message"]["role"] == "user") == 2


def test_chat_compressed_row_lies_inside_a_closed_conversation(mixed):
    dest, manifest = mixed
    main = chat_sessions(manifest)["agent:chat:main"]
    seqs = [r["seq"] for r in main["resets"]]
    inside = [z for z in main["zstdSeqs"] if any(a < z < b for a, b in itertools.pairwise(seqs))]
    assert inside, f"no compressed row between two resets: zstd {main['zstdSeqs']}, resets {seqs}"
    reasons = {r["seq"]: r["reason"] for r in main["resets"]}
    with closing(connect(dest, manifest["agents"]["chat"])) as db:
        for seq in inside:
            text, blob, size = db.execute(
                "SELECT event_json, event_zstd, event_utf8_bytes FROM transcript_events"
                " WHERE session_id = ? AND seq = ?",
                (main["sessionId"], seq),
            ).fetchone()
            assert text is None and blob is not None and size >= 1024
            event = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
            assert len(event) == size and b"Long stand-in reply" in event
            before = max(s for s in seqs if s < seq)
            assert reasons[before] == "reset", "the long answer follows /reset"


def test_chat_talk_is_archived_and_gone_is_deleted_with_its_export(mixed):
    dest, manifest = mixed
    chat = manifest["agents"]["chat"]
    sessions = chat_sessions(manifest)
    talk, gone = sessions["agent:chat:talk"], sessions["agent:chat:gone"]
    (archived,) = [c for c in chat["completed"] if c["key"] == "agent:chat:talk"]
    assert archived["how"] == "archived" and archived["sessionId"] == talk["sessionId"]
    assert archived["zstdRows"] >= 1, "talk's second conversation holds a compressed answer"
    (deleted,) = completed(manifest, "chat", "deleted")
    assert deleted["sessionId"] == gone["sessionId"] and deleted["key"] == "agent:chat:gone"
    path = dest / deleted["file"]
    assert path.name.startswith(f"{gone['sessionId']}.jsonl.deleted.") and path.name.endswith(".zst")
    assert re.search(r"\.[0-9a-f]{32}\.zst$", path.name), path.name
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    expected = (dest / gone["expected"]).read_bytes()
    assert fx.zst_bytes(path) == expected
    with closing(connect(dest, chat)) as db:
        (archived_at, entry) = db.execute(
            "SELECT archived_at, entry_json FROM session_nodes WHERE session_key = ?", ("agent:chat:talk",)
        ).fetchone()
        assert archived_at is not None and json.loads(entry).get("archiveReason")
        for table in ("session_windows", "transcript_events", "transcript_event_identities"):
            count = db.execute(f"SELECT count(*) FROM {table} WHERE session_id = ?", (gone["sessionId"],))
            assert count.fetchone()[0] == 0, table
        node = db.execute("SELECT 1 FROM session_nodes WHERE session_key = ?", ("agent:chat:gone",))
        assert node.fetchone() is None, "the deleted session's node is gone"
        reason, encoding, blob = db.execute(
            "SELECT reason, encoding, archive_blob FROM session_transcript_archives WHERE archive_name = ?",
            (path.name,),
        ).fetchone()
    assert (reason, encoding) == ("deleted", "zstd")
    with zstandard.ZstdDecompressor().stream_reader(blob, read_across_frames=True) as reader:
        assert reader.read() == expected
