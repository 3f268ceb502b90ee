"""One run of the real DAG over a state dir written by OpenClaw 2026.9.6 itself (``tools/openclaw/fixture``):
a native SQLite-era agent (real agent turns against a loopback model, idle rollovers, archived, deleted,
zstd-compressed and cold sessions), a chat agent driven through OpenClaw's chat path (``/new``, ``/reset``,
idle and daily expiry inside one session; one chat archived, one deleted, the main chat still open), an
agent migrated from the JSONL era by OpenClaw's doctor, and a JSONL-era agent, side by side. What reaches
Nexus is compared byte for byte with OpenClaw's own exports, split into conversations here with the json
library for the chat agent. The manifest says, per session, where its expected bytes came from; the test
asserts it is an export OpenClaw wrote (``copy: <export>`` made by deleting it in a copy, ``state: <export>``
in the state itself), or for the two exceptions what the manifest says they are: the chat agent's main
session, which OpenClaw never exports (its rows), and the JSONL files (their bytes as written)."""

from __future__ import annotations

import json

from tests.e2e.conftest import assert_database_untouched, database_files
from tests.oracle import conversations_of
from tools.openclaw.fixture import openclaw_state, sessions_listing
from tools.stacks.sandbox import API_KEY, new_sandbox


def received(nexus) -> dict[tuple[str, str], bytes]:
    """(agent, what was sent) → bytes; what was sent is the idempotency key's subject: ``<sessionId>`` for
    a whole session, ``<sessionId>@<conversation>`` for one conversation."""
    got: dict[tuple[str, str], bytes] = {}
    for record in nexus.accepted():
        payload = json.loads(nexus.body(record["n"]))
        subject = record["idempotencyKey"].rpartition(":")[0]
        assert subject.partition("@")[0] == payload["sessionId"], record["idempotencyKey"]
        key = (payload["agentId"], subject)
        assert key not in got, f"{key} uploaded twice"
        got[key] = payload["transcript"].encode()
    return got


# Where an expected transcript may come from (the manifest's "expectedFrom"): an export OpenClaw wrote.
OPENCLAW_EXPORT = ("copy: ", "state: ")


def stable(listing: dict) -> str:
    """OpenClaw's listing without the fields it computes from the clock."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in {"ageMs", "age", "now", "generatedAt"}}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(listing), sort_keys=True)


def test_one_run_over_native_migrated_and_jsonl_agents_is_byte_exact_and_leaves_openclaw_as_it_was(
    template_home, tmp_path, nexus
):
    fixture = tmp_path / "fixture"
    manifest = openclaw_state("mixed", fixture)
    state = fixture / "state"
    agents = manifest["agents"]
    databases = {name: fixture / info["database"] for name, info in agents.items() if info.get("database")}
    expected: dict[tuple[str, str], bytes] = {}
    chat = agents["chat"]
    assert all(v == "yes" or v.startswith("yes:") for v in chat["produced"].values()), chat["produced"]
    chat_ids = set()
    open_conversations = set()
    for session in chat["sessions"]:
        sid = session["sessionId"]
        chat_ids.add(sid)
        source = session.get("expectedFrom") or ""
        if session["key"] == "agent:chat:main":  # OpenClaw refuses to delete or archive an agent's main
            assert source.startswith("rows: "), (session["key"], source)
        else:
            assert source.startswith(OPENCLAW_EXPORT), f"{session['key']}: expected bytes from {source!r}"
        parts = conversations_of((fixture / session["expected"]).read_bytes())
        assert list(parts)[1:] == [r["id"] for r in session["resets"]], session["key"]
        if session["state"] == "live":  # the open conversation stays with OpenClaw
            open_conversations.add(("chat", f"{sid}@{list(parts)[-1]}"))
            parts.popitem()
        expected.update({("chat", f"{sid}@{name}"): data for name, data in parts.items()})
    for name, info in agents.items():
        for entry in info["completed"]:
            if name == "chat" and entry["sessionId"] in chat_ids:
                continue  # sent as conversations (above)
            # The oracle per session: OpenClaw's export of it; files (JSONL era, the migrated agent's
            # leftovers) are their own transcript. No export is a failure, never a switch to another source.
            what = f"{name}/{entry['sessionId']} ({entry['how']}, {entry['source']})"
            assert entry.get("expected"), f"{what}: OpenClaw wrote no export of it: {entry.get('why')}"
            if entry["source"] == "file":
                assert "expectedFrom" not in entry and entry.get("file"), what
            else:
                assert entry["expectedFrom"].startswith(OPENCLAW_EXPORT), f"{what}: {entry['expectedFrom']}"
            expected[(name, entry["sessionId"])] = (fixture / entry["expected"]).read_bytes()
    live = {
        (name, item["sessionId"] if isinstance(item, dict) else item)
        for name, info in agents.items()
        for item in info["live"]
    }
    assert {info["era"] for info in agents.values()} == {"sqlite", "migrated", "jsonl"}
    db_before = {name: database_files(path.parent.parent) for name, path in databases.items()}
    listing_before = sessions_listing(state)

    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
    first = sandbox.run_dag({"settle_minutes": 0})
    second = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success", first.output[-4000:]
    got = received(nexus)
    assert set(got) == set(expected), (sorted(set(got) - set(expected)), sorted(set(expected) - set(got)))
    for key, data in expected.items():
        assert got[key] == data, f"{key}: not OpenClaw's export form, byte for byte"
    assert not live & {(agent, subject.partition("@")[0]) for agent, subject in got if "@" not in subject}, (
        "a live session was uploaded"
    )
    assert not open_conversations & set(got), "an open conversation was uploaded"
    assert first.job_result["message"] == f"Uploaded {len(expected)} sessions across 4 agents"
    assert second.job_result["itemsProcessed"] == 0 and second.state == "success"
    for name, path in databases.items():
        assert_database_untouched(db_before[name], database_files(path.parent.parent))
    assert stable(sessions_listing(state)) == stable(listing_before), "OpenClaw sees its sessions as before"
    for name in agents:
        archive = state / "agents" / name / "sessions" / "archive"
        for agent, subject in expected:
            if agent == name:
                copy = archive / f"{subject}.jsonl"
                assert copy.read_bytes() == expected[(name, subject)]
                if "@" in subject:  # a copy this package wrote (a moved file keeps OpenClaw's mode)
                    assert copy.stat().st_mode & 0o077 == 0, f"{copy} is readable by others"
    for name, info in agents.items():
        if info["era"] == "jsonl":
            assert f"agent {name} (JSONL files): " in first.output
        else:
            count = len(info["live"])
            assert f"agent {name} (SQLite database, agent schema 23): " in first.output
            assert f"{count} live sessions left to OpenClaw" in first.output
    finished = sum(1 for agent, subject in expected if agent == "chat" and "@" in subject)
    assert f"conversations in sessions with resets: {finished} finished (sent now or before), 1 open" in (
        first.output
    )
    assert sandbox.leaks(API_KEY, first.output, second.output) == []
