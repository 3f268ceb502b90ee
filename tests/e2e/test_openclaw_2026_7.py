"""End-to-end on a JSONL-era agent written by OpenClaw 2026.7.35 itself (``tools/openclaw/legacy.py``).

The state: one agent whose ``sessions/`` OpenClaw filled through ``openclaw agent`` turns against the model
stand-in: a transcript renamed by ``sessions.reset`` (``<sid>.jsonl.reset.<ts>``), one renamed by
``sessions.delete`` (``<sid>.jsonl.deleted.<ts>``), one left in place by an idle rollover (no longer in
``sessions.json``), one archived by ``sessions.patch {archived: true}`` (its entry stays in
``sessions.json`` with ``archivedAt``, its transcript stays in place), two active sessions, OpenClaw's
``sessions.json`` and its side files. The oracle is each completed or archived file's bytes as OpenClaw
wrote them (read before the run, and checked against the sha256 the build recorded); nothing here writes a
transcript.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from tools.openclaw.fixture import OpenClaw, agent_database, missing_pieces
from tools.openclaw.legacy import (
    AGENT,
    K_SHELF,
    K_WORK,
    OPENCLAW_VERSION,
    LegacyOpenClaw,
    gateway_config,
    legacy_state,
)
from tools.standins.model import StandIn

ARCHIVE = "archive"


def snapshot_tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def legacy(tmp_path: Path, state_dir: Path) -> dict:
    """The cached 2026.7.35 build copied so that its state dir is the sandbox's; fails (never skips) when
    it cannot be built or lacks a piece, with the reason."""
    try:
        manifest = legacy_state(tmp_path / "legacy")
    except Exception as exc:  # the test fails with the reason: OpenClaw 2026.7.35 could not build it
        pytest.fail(
            f"OpenClaw {OPENCLAW_VERSION} could not build the JSONL-era state: {exc!r}", pytrace=False
        )
    missing = missing_pieces(manifest)
    if missing:
        pytest.fail(f"the OpenClaw {OPENCLAW_VERSION} state lacks: {json.dumps(missing)}", pytrace=False)
    shutil.copytree(tmp_path / "legacy" / "state", state_dir, symlinks=True, dirs_exist_ok=True)
    return manifest


def accepted_transcripts(nexus) -> dict[tuple[str, str], bytes]:
    """What Nexus accepted, by (agentId, sessionId): each body exactly the contract's three keys, each session
    accepted once."""
    got: dict[tuple[str, str], bytes] = {}
    for record in nexus.accepted():
        payload = json.loads(nexus.body(record["n"]))
        assert set(payload) == {"agentId", "sessionId", "transcript"}
        key = (payload["agentId"], payload["sessionId"])
        assert key not in got, f"{key} uploaded twice"
        got[key] = payload["transcript"].encode("utf-8")
    return got


def test_completed_transcripts_written_by_openclaw_2026_7_are_sent_byte_exact_and_archived(
    sandbox, nexus, state_dir, legacy
):
    sessions = state_dir / "agents" / AGENT / "sessions"
    completed, archived, active = legacy["completed"], legacy["archived"], legacy["active"]
    assert sorted(c["how"] for c in completed) == ["deleted", "idle", "reset"]
    assert len(archived) == 1 and len(active) == 2
    shelved = archived[0]
    before = snapshot_tree(sessions)
    modes = {c["file"]: stat.S_IMODE((sessions / c["file"]).stat().st_mode) for c in completed}
    shelved_mtime = (sessions / shelved["file"]).stat().st_mtime_ns
    assert hashlib.sha256(before["sessions.json"]).hexdigest() == legacy["index"]["sha256"]
    # The oracle: the files as OpenClaw wrote them (the copy is the build's bytes).
    expected = {(AGENT, c["sessionId"]): before[c["file"]] for c in completed + archived}
    for c in completed + archived:
        assert hashlib.sha256(before[c["file"]]).hexdigest() == c["sha256"], c["file"]
    index = json.loads(before["sessions.json"])
    assert {e["sessionId"] for e in index.values()} == {a["sessionId"] for a in active + archived}
    assert [e["sessionId"] for e in index.values() if "archivedAt" in e] == [shelved["sessionId"]]
    assert not {c["sessionId"] for c in completed} & {e["sessionId"] for e in index.values()}

    run = sandbox.run_dag({"settle_minutes": 0})

    assert run.state == "success", run.output[-3000:]
    assert run.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 4 sessions across 1 agent",
        "itemsProcessed": 4,
        "errors": [],
    }
    assert accepted_transcripts(nexus) == expected
    sent_before = nexus.requests()
    sent = {r["sessionId"] for r in sent_before}
    assert not sent & {a["sessionId"] for a in active}, "an active session was sent"

    # On disk: each completed file moved to archive/<sessionId>.jsonl, unchanged; the archived session's
    # transcript stays where OpenClaw keeps it (a restore continues it), its copy is archive/<sid>.jsonl
    # (0600, the file's mtime); nothing else of OpenClaw's (sessions.json, the active transcripts,
    # trajectories, skills-prompts/) changed.
    after = snapshot_tree(sessions)
    moved = {c["file"]: f"{ARCHIVE}/{c['sessionId']}.jsonl" for c in completed}
    copied = {shelved["file"]: f"{ARCHIVE}/{shelved['sessionId']}.jsonl"}
    assert {n: b for n, b in after.items() if not n.startswith(f"{ARCHIVE}/")} == {
        n: b for n, b in before.items() if n not in moved
    }
    copies = {n: b for n, b in after.items() if n.startswith(f"{ARCHIVE}/") and "/." not in n}
    assert copies == {target: before[source] for source, target in (moved | copied).items()}
    assert sorted(n for n in after if n.startswith(f"{ARCHIVE}/.")) == sorted(
        f"{ARCHIVE}/.copies/{c['sessionId']}.json" for c in completed + archived
    ), "each copy has its record, which OpenClaw's backup keeps"
    copy = sessions / copied[shelved["file"]]
    assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_mtime_ns == shelved_mtime
    assert (sessions / shelved["file"]).stat().st_mtime_ns == shelved_mtime
    # A move: the copy keeps the mode OpenClaw gave the file (2026.7.35 writes agent-path transcripts
    # 0644, the one sessions.reset starts 0600), and no one but the owner can write it.
    for source, target in moved.items():
        mode = stat.S_IMODE((sessions / target).stat().st_mode)
        assert mode == modes[source] and not mode & 0o022, (target, oct(mode), oct(modes[source]))
    assert after["sessions.json"] == before["sessions.json"]
    for a in active:
        assert after[a["file"]] == before[a["file"]]

    # Exactly once: the next run finds the archived session's copy and sends nothing.
    accepted = len(nexus.accepted())
    again = sandbox.run_dag({"settle_minutes": 0})
    assert again.state == "success", again.output[-3000:]
    assert again.job_result["itemsProcessed"] == 0 and again.job_result["errors"] == []
    assert len(nexus.accepted()) == accepted and len(nexus.requests()) == len(sent_before)
    assert snapshot_tree(sessions) == after


def test_an_archived_chat_sent_in_the_jsonl_era_is_not_sent_again_after_openclaws_own_upgrade(
    sandbox, nexus, state_dir, legacy
):
    """OpenClaw 2026.9.6's upgrade (``openclaw doctor --fix``: on a 2026.7.35 state dir its
    ``--session-sqlite import`` refuses until the shared state database is migrated, and ``--fix`` imports
    the sessions itself) turns the archived entry into an archived node whose export is the file's bytes:
    the next run finds them already uploaded and sends nothing."""
    sessions = state_dir / "agents" / AGENT / "sessions"
    shelved = legacy["archived"][0]
    sid = shelved["sessionId"]
    first = sandbox.run_dag({"settle_minutes": 0})
    assert first.state == "success", first.output[-3000:]
    assert first.job_result["itemsProcessed"] == 4 and first.job_result["errors"] == []
    copy = sessions / ARCHIVE / f"{sid}.jsonl"
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == shelved["sha256"]
    requests = len(nexus.requests())

    done = OpenClaw.installed().run(
        ["doctor", "--fix", "--non-interactive", "--yes"], state_dir=state_dir, check=False, timeout=900
    )
    database = agent_database(state_dir, AGENT)
    assert database.exists(), f"doctor --fix did not import ({done.returncode}): {done.stderr[-2000:]}"
    assert not (sessions / "sessions.json").exists() and not (sessions / shelved["file"]).exists()
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        nodes = db.execute(
            "SELECT session_key, archived_at FROM session_nodes WHERE current_session_id = ?", (sid,)
        ).fetchall()
    assert nodes == [(shelved["key"], shelved["archivedAt"])]

    second = sandbox.run_dag({"settle_minutes": 0})
    assert second.state == "success", second.output[-3000:]
    assert second.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 0 sessions across 0 agents; 1 already uploaded with the same bytes, "
        "archived without resending",
        "itemsProcessed": 0,
        "errors": [],
    }
    assert len(nexus.requests()) == requests
    assert [p.name for p in (sessions / ARCHIVE).glob(f"{sid}*")] == [f"{sid}.jsonl"]
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == shelved["sha256"]
    # The copy now carries the database's time for that session: a third run has nothing to do.
    third = sandbox.run_dag({"settle_minutes": 0})
    assert third.state == "success", third.output[-3000:]
    assert third.job_result["message"] == "Uploaded 0 sessions across 0 agents"
    assert len(nexus.requests()) == requests


def test_archived_by_copy_openclaw_2026_7_keeps_its_files_and_nothing_is_sent_twice(
    sandbox, nexus, state_dir, legacy, tmp_path
):
    """``SESSION_UPLOAD_JSONL_ARCHIVE=copy`` on the state OpenClaw 2026.7.35 wrote: the first run sends the
    reset, deleted and idle transcripts and the archived chat byte for byte, and copies each to
    ``archive/<sid>.jsonl`` (0600, the file's mtime, with its record); every file of OpenClaw's stays as it
    was (bytes and mtime). The second run sends nothing. Then OpenClaw 2026.7.35's gateway deletes the
    archived chat (``sessions.delete``: its copied file becomes ``<sid>.jsonl.deleted.<ts>``) and resets
    ``agent:main:work`` (its live transcript becomes ``.reset.<ts>``): the third run sends exactly that
    reset file, nothing of the first run, and makes no second copy of the renamed one."""
    sandbox.extra_env["SESSION_UPLOAD_JSONL_ARCHIVE"] = "copy"
    sessions = state_dir / "agents" / AGENT / "sessions"
    completed, archived = legacy["completed"], legacy["archived"]
    [shelved] = archived
    before = snapshot_tree(sessions)
    mtimes = {c["file"]: (sessions / c["file"]).stat().st_mtime_ns for c in completed + archived}
    expected = {(AGENT, c["sessionId"]): before[c["file"]] for c in completed + archived}
    for c in completed + archived:
        assert hashlib.sha256(before[c["file"]]).hexdigest() == c["sha256"], c["file"]

    run = sandbox.run_dag({"settle_minutes": 0})

    assert run.state == "success", run.output[-3000:]
    assert run.job_result == {
        "jobId": "session_upload",
        "success": True,
        "message": "Uploaded 4 sessions across 1 agent",
        "itemsProcessed": 4,
        "errors": [],
    }
    assert "(JSONL files, archived by copy)" in run.output
    got = accepted_transcripts(nexus)
    assert got == expected
    after = snapshot_tree(sessions)
    assert {n: b for n, b in after.items() if not n.startswith(f"{ARCHIVE}/")} == before, (
        "every file of OpenClaw's stays as it was"
    )
    for name, mtime in mtimes.items():
        assert (sessions / name).stat().st_mtime_ns == mtime, name
    copies = {n: b for n, b in after.items() if n.startswith(f"{ARCHIVE}/") and "/." not in n}
    assert copies == {f"{ARCHIVE}/{c['sessionId']}.jsonl": before[c["file"]] for c in completed + archived}
    for c in completed + archived:
        copy = sessions / ARCHIVE / f"{c['sessionId']}.jsonl"
        assert stat.S_IMODE(copy.stat().st_mode) == 0o600 and copy.stat().st_mtime_ns == mtimes[c["file"]]
    assert stat.S_IMODE((sessions / ARCHIVE).stat().st_mode) == 0o700
    assert sorted(n for n in after if n.startswith(f"{ARCHIVE}/.")) == sorted(
        f"{ARCHIVE}/.copies/{c['sessionId']}.json" for c in completed + archived
    )

    requests = len(nexus.requests())
    again = sandbox.run_dag({"settle_minutes": 0})
    assert again.state == "success", again.output[-3000:]
    assert again.job_result["message"] == "Uploaded 0 sessions across 0 agents"
    assert len(nexus.requests()) == requests, "the second run sent something"
    assert snapshot_tree(sessions) == after

    names = {p.name for p in sessions.iterdir()}
    server = StandIn().start()
    try:
        with LegacyOpenClaw.installed().gateway(
            state_dir, gateway_config(server.base_url), tmp_path / "gateway"
        ) as gw:
            for method, key in (("sessions.delete", K_SHELF), ("sessions.reset", K_WORK)):
                params = json.dumps({"key": key})
                answer = gw.run_json(["gateway", "call", method, "--params", params, "--json"], timeout=300)
                assert answer.get("ok") is True, (method, answer)
    finally:
        server.stop()
    new = {p.name for p in sessions.iterdir()} - names
    [deleted] = [n for n in new if n.startswith(f"{shelved['file']}.deleted.")]
    assert not (sessions / shelved["file"]).exists()
    assert (sessions / deleted).read_bytes() == before[shelved["file"]], "OpenClaw's rename kept the bytes"
    assert (sessions / deleted).stat().st_mtime_ns == mtimes[shelved["file"]], "and the mtime"
    [reset] = [sessions / n for n in new if ".jsonl.reset." in n]
    work = reset.name.partition(".jsonl.reset.")[0]
    assert (AGENT, work) not in got

    third = sandbox.run_dag({"settle_minutes": 0})

    assert third.state == "success", third.output[-3000:]
    assert third.job_result["message"] == "Uploaded 1 session across 1 agent"
    sent = [json.loads(nexus.body(r["n"])) for r in nexus.accepted()[len(got) :]]
    assert [(p["agentId"], p["sessionId"], p["transcript"].encode()) for p in sent] == [
        (AGENT, work, reset.read_bytes())
    ]
    assert len(nexus.requests()) == requests + 1
    archive = sessions / ARCHIVE
    assert sorted(p.name for p in archive.glob("*.jsonl")) == sorted(
        f"{sid}.jsonl" for sid in [c["sessionId"] for c in completed + archived] + [work]
    ), "no second copy of the renamed file"
    assert (archive / f"{work}.jsonl").read_bytes() == reset.read_bytes()
    for c in completed:
        assert (sessions / c["file"]).read_bytes() == before[c["file"]], c["file"]
    assert (sessions / deleted).read_bytes() == before[shelved["file"]]
    assert reset.exists(), "the reset file stays with OpenClaw too"
