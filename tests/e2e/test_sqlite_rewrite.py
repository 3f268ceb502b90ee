"""The real DAG over chats that OpenClaw 2026.9.6 rewrote: truncated by ``openclaw sessions compact
--max-lines`` and deleted by ``openclaw sessions delete``, after the DAG had sent some of their
conversations, or before it ever ran.

Every row and file of OpenClaw's state is OpenClaw's own (``tools/openclaw/rewrite.py``, cached): its chat
client writes ``agent:conv:talk`` (conversations ``0``, A, B; B open), ``agent:conv:gone`` (``0``, A; A
open) and ``agent:conv:done`` (``0``, A; archived by ``openclaw sessions archive``). Then OpenClaw
truncates ``talk`` to its header and A's last turn on (A's reset event deleted, ``seq`` renumbered),
closes B with ``/new`` and deletes ``gone`` and ``done`` into ``.jsonl.deleted.….zst`` exports. The DAG
runs on the state before that rewrite, then on OpenClaw's state after it with the DAG's own
``sessions/archive/`` kept (``apply_rewrite``: OpenClaw never reads that folder, so its rewrite is the
same whenever it happens), or only on the state after it.

The oracle is OpenClaw's: its rows, read here read-only, and its ``.zst`` exports, split at reset events
with the json library (``tests.oracle``). Asserted: what the stand-in received, byte for byte; the
archive on disk; the JobResult; OpenClaw's database files untouched by every run.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.conftest import assert_database_untouched, database_files
from tests.oracle import conversations_of
from tools.openclaw.fixture import agent_database, read_only, rows_transcript, zst_bytes
from tools.openclaw.rewrite import AGENT, apply_rewrite, rewrite_state
from tools.stacks.sandbox import API_KEY, new_sandbox


def need(manifest: dict, *pieces: str) -> None:
    missing = {p: manifest["produced"].get(p, "no: not attempted") for p in pieces}
    missing = {p: why for p, why in missing.items() if not why.startswith("yes")}
    assert not missing, f"OpenClaw did not produce what this test needs: {missing}"


def agent_dir(state: Path) -> Path:
    return state / "agents" / AGENT


def archive_dir(state: Path) -> Path:
    return agent_dir(state) / "sessions" / "archive"


def rows_of(state: Path, sid: str) -> bytes:
    with read_only(agent_database(state, AGENT)) as db:
        return rows_transcript(db, sid)


def named(sid: str, parts: dict[str, bytes], *, live: bool = False) -> dict[str, bytes]:
    """``<sessionId>@<conversation>`` → bytes, without a live session's open last conversation."""
    names = list(parts)[:-1] if live else list(parts)
    return {f"{sid}@{token}": parts[token] for token in names}


def received_since(nexus, start: int) -> dict[str, bytes]:
    """What the stand-in accepted from request ``start`` on: the idempotency key's subject → the
    transcript bytes; each subject once."""
    got: dict[str, bytes] = {}
    for record in nexus.accepted()[start:]:
        payload = json.loads(nexus.body(record["n"]))
        name = record["idempotencyKey"].rpartition(":")[0]
        assert payload["agentId"] == AGENT and name.partition("@")[0] == payload["sessionId"], name
        assert name not in got, f"{name} sent twice in one run"
        got[name] = payload["transcript"].encode()
    return got


def copies(state: Path) -> dict[str, bytes]:
    """The archive's files, by name; each readable by its owner only (OpenClaw's exports are 0600 too)."""
    files = [p for p in sorted(archive_dir(state).iterdir()) if p.is_file()]
    assert [p.name for p in files if p.stat().st_mode & 0o077] == [], "an archive file others can read"
    return {p.name: p.read_bytes() for p in files}


def test_chats_openclaw_truncates_and_deletes_after_the_dag_sent_them(template_home, tmp_path, nexus):
    """Run 1 on OpenClaw's state before its rewrite: ``talk``'s ``0`` and A, ``gone``'s ``0``, ``done``'s
    ``0`` and A, each byte for byte OpenClaw's rows split at its reset events. OpenClaw then truncates
    ``talk``, closes B and deletes ``gone`` and ``done``. Run 2 sends only ``talk``'s B (A's tail, kept
    by the truncation before B's reset, is not sent again) and ``gone``'s A cut from OpenClaw's export;
    ``done``'s export, every conversation already archived, is archived without a resend; both exports
    move into ``archive/`` under their own names with OpenClaw's bytes. Run 3 sends nothing."""
    fixture = tmp_path / "fixture"
    manifest = rewrite_state(fixture)
    need(manifest, "resets", "archived", "truncated", "closed", "deleted")
    state = fixture / "state"
    talk, gone, done = (manifest["sessions"][n]["sessionId"] for n in ("talk", "gone", "done"))
    first_run = {
        **named(talk, conversations_of(rows_of(state, talk)), live=True),
        **named(gone, conversations_of(rows_of(state, gone)), live=True),
        **named(done, conversations_of(rows_of(state, done))),
    }
    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
    db_before = database_files(agent_dir(state))

    first = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success", first.output[-4000:]
    assert received_since(nexus, 0) == first_run
    assert first.job_result["message"] == f"Uploaded {len(first_run)} sessions across 1 agent"
    assert first.job_result["itemsProcessed"] == len(first_run) and first.job_result["errors"] == []
    assert copies(state) == {f"{name}.jsonl": data for name, data in first_run.items()}
    assert_database_untouched(db_before, database_files(agent_dir(state)))
    sent_first = len(nexus.accepted())
    copies_first = copies(state)

    apply_rewrite(state)

    b = list(conversations_of(rows_of(state, talk)))[1]
    exports = {
        sid: agent_dir(state) / "sessions" / manifest["sessions"][n]["export"]
        for n, sid in (("gone", gone), ("done", done))
    }
    packed = {sid: path.read_bytes() for sid, path in exports.items()}
    gone_parts = conversations_of(zst_bytes(exports[gone]))
    done_parts = conversations_of(zst_bytes(exports[done]))
    assert named(done, done_parts).items() <= first_run.items(), "done's export holds what run 1 sent"
    a_gone = list(gone_parts)[-1]
    second_run = {
        f"{talk}@{b}": conversations_of(rows_of(state, talk))[b],
        f"{gone}@{a_gone}": gone_parts[a_gone],
    }
    db_before = database_files(agent_dir(state))

    second = sandbox.run_dag({"settle_minutes": 0})

    assert second.state == "success", second.output[-4000:]
    assert received_since(nexus, sent_first) == second_run
    assert second.job_result["message"] == (
        "Uploaded 2 sessions across 1 agent; "
        "1 already uploaded with the same bytes, archived without resending"
    )
    assert second.job_result["itemsProcessed"] == 2 and second.job_result["errors"] == []
    expected_copies = {
        **copies_first,
        **{f"{name}.jsonl": data for name, data in second_run.items()},
        **{path.name: packed[sid] for sid, path in exports.items()},
    }
    assert copies(state) == expected_copies, (
        "each conversation archived once, each export as OpenClaw wrote it"
    )
    assert not [p for p in exports.values() if p.exists()]
    assert_database_untouched(db_before, database_files(agent_dir(state)))

    third = sandbox.run_dag({"settle_minutes": 0})

    assert third.state == "success", third.output[-4000:]
    assert len(nexus.accepted()) == sent_first + len(second_run)
    assert third.job_result["itemsProcessed"] == 0 and "already uploaded" not in third.job_result["message"]
    assert copies(state) == expected_copies
    assert sandbox.leaks(API_KEY, first.output, second.output, third.output) == []


def test_chats_openclaw_truncated_and_deleted_before_the_dag_ran(template_home, tmp_path, nexus):
    """One run on OpenClaw's state after its rewrite, nothing sent before: ``talk``'s stretch before B's
    reset (A's tail, now its conversation ``0``) and B, byte for byte OpenClaw's rows after the
    truncation, C (open) not; every conversation of ``gone``'s and ``done``'s exports, byte for byte as
    split from them; both exports archived as OpenClaw wrote them. A second run sends nothing."""
    fixture = tmp_path / "fixture"
    manifest = rewrite_state(fixture, "after")
    need(manifest, "truncated", "closed", "deleted")
    state = fixture / "state"
    talk, gone, done = (manifest["sessions"][n]["sessionId"] for n in ("talk", "gone", "done"))
    exports = {
        sid: agent_dir(state) / "sessions" / manifest["sessions"][n]["export"]
        for n, sid in (("gone", gone), ("done", done))
    }
    packed = {sid: path.read_bytes() for sid, path in exports.items()}
    expected = {
        **named(talk, conversations_of(rows_of(state, talk)), live=True),
        **named(gone, conversations_of(zst_bytes(exports[gone]))),
        **named(done, conversations_of(zst_bytes(exports[done]))),
    }
    assert f"{talk}@0" in expected and len(expected) == 6, sorted(expected)
    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
    db_before = database_files(agent_dir(state))

    first = sandbox.run_dag({"settle_minutes": 0})
    second = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success", first.output[-4000:]
    assert received_since(nexus, 0) == expected
    assert first.job_result["message"] == f"Uploaded {len(expected)} sessions across 1 agent"
    assert first.job_result["errors"] == []
    assert copies(state) == {
        **{f"{name}.jsonl": data for name, data in expected.items()},
        **{path.name: packed[sid] for sid, path in exports.items()},
    }
    for gone_reset in manifest["truncation"]["vanishedResets"]:
        assert not [name for name in copies(state) if gone_reset in name]
    assert second.state == "success" and second.job_result["itemsProcessed"] == 0
    assert len(nexus.accepted()) == len(expected)
    assert_database_untouched(db_before, database_files(agent_dir(state)))
    assert sandbox.leaks(API_KEY, first.output, second.output) == []
