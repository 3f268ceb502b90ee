"""The real DAG on a host restored from OpenClaw's own backup: nothing Nexus already has is sent again,
nothing unsent is lost.

``openclaw backup create`` leaves out every ``*.jsonl`` and ``*.log`` under ``agents/<id>/sessions/**``
(its ``docs/cli/backup.md``; the JSON result lists each as ``volatile``): the archive copies in
``sessions/archive/`` are not in the backup, their records (``archive/.copies/*.json``) and the ``.all-sent``
marks are. Each test runs the DAG on state OpenClaw wrote, has OpenClaw back it up, restores it into a fresh
folder the way that release's docs say, runs ``openclaw doctor`` on it (the documented step before OpenClaw
is started on restored state), then runs the DAG again on the restored state dir, against the same Nexus
stand-in. Restoring: OpenClaw 2026.9.6 has ``openclaw backup restore ARCHIVE --target FRESH`` (the state dir
is ``FRESH/<archive path of the state asset>``); 2026.7.35 has no restore command, and its
``docs/install/migrating.md`` restores a state archive with ``tar -xzf``, which is what the JSONL-era test
does with its ``backup create`` archive.

The oracle is what the stand-in received, request by request, byte for byte: the second run's requests are
exactly the items that were not sent before the backup, with OpenClaw's bytes (its exports, its rows split
at reset events with the json library, its files), and none of them is an item of the first run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from openclaw_nexus import stores
from openclaw_nexus.discovery import Window
from tests.e2e.conftest import database_files
from tests.oracle import conversations_of
from tools.openclaw.fixture import (
    OpenClaw,
    agent_database,
    openclaw_state,
    read_only,
    rows_transcript,
    zst_bytes,
)
from tools.openclaw.legacy import AGENT as LEGACY_AGENT
from tools.openclaw.legacy import K_WORK, OPENCLAW_VERSION, LegacyOpenClaw, gateway_config, legacy_state
from tools.openclaw.rewrite import AGENT as CHAT_AGENT
from tools.openclaw.rewrite import apply_rewrite, rewrite_state
from tools.stacks.sandbox import API_KEY, new_sandbox
from tools.standins.model import StandIn

SETTLED = {"settle_minutes": 0}


def requests_since(nexus, start: int) -> dict[tuple[str, str], bytes]:
    """Every request from ``start`` on (accepted or dropped as a duplicate): (agent, the idempotency
    key's subject, ``<sessionId>`` or ``<sessionId>@<conversation>``) → the transcript bytes; each once."""
    got: dict[tuple[str, str], bytes] = {}
    for record in nexus.requests()[start:]:
        payload = json.loads(nexus.body(record["n"]))
        subject = record["idempotencyKey"].rpartition(":")[0]
        assert subject.partition("@")[0] == payload["sessionId"], record["idempotencyKey"]
        key = (payload["agentId"], subject)
        assert key not in got, f"{key} sent twice"
        assert record["status"] == 201, record
        got[key] = payload["transcript"].encode()
    return got


def copies_in(state: Path) -> list[Path]:
    return sorted(state.glob("agents/*/sessions/archive/*.jsonl"))


def records_in(state: Path) -> list[str]:
    return sorted(str(p.relative_to(state)) for p in state.glob("agents/*/sessions/archive/.copies/*.json"))


def backup(oc: OpenClaw, state: Path, out: Path) -> dict:
    """``openclaw backup create`` of ``state`` (OpenClaw stopped); its JSON result."""
    out.mkdir(parents=True)
    result = oc.run_json(
        ["backup", "create", "--output", str(out), "--no-include-workspace", "--json"], state, timeout=900
    )
    assert Path(result["archivePath"]).is_file(), result
    return result


def state_asset(result: dict) -> str:
    [asset] = [a for a in result["assets"] if a["kind"] == "state"]
    return asset["archivePath"]


def restore(oc: OpenClaw, live_state: Path, result: dict, target: Path) -> Path:
    """``openclaw backup restore`` into the fresh folder ``target``; the restored state dir."""
    done = oc.run_json(
        ["backup", "restore", result["archivePath"], "--target", str(target), "--json"],
        live_state,
        timeout=900,
    )
    assert done.get("ok") is True, done
    return target / state_asset(result)


def database_content(agent: Path) -> dict[str, bytes]:
    """The agent database and its write-ahead log, as bytes (an absent log as empty: SQLite creates an
    empty one when any reader, OpenClaw's own included, opens a database OpenClaw had closed). Not its
    ``-shm``: SQLite's shared-memory index, where every reader takes its read marks; ``openclaw doctor``
    may leave one behind on the restored state."""
    files = database_files(agent)
    return {"database": files["openclaw-agent.sqlite"], "wal": files.get("openclaw-agent.sqlite-wal", b"")}


def doctor(oc: OpenClaw, state: Path, **kwargs) -> None:
    """``openclaw doctor``, run on restored state before OpenClaw is started on it."""
    done = oc.run(["doctor", "--non-interactive"], state, check=False, timeout=900, **kwargs)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])


def test_a_sqlite_era_host_restored_from_openclaws_backup_sends_nothing_twice_and_loses_nothing(
    template_home, tmp_path, nexus
):
    """State: ``tools/openclaw/fixture``'s ``mixed`` dir, written by OpenClaw 2026.9.6 (native and chat
    agents in the SQLite era: whole sessions, conversations split at reset events, deletion exports, cold
    transcripts; a migrated agent; a JSONL-era agent). The first run sends every agent but the migrated
    one, whose sessions are the unsent ones when the backup is made. After OpenClaw's backup and restore,
    the second run sends exactly the migrated agent's sessions, byte for byte its exports and file, and no
    request for anything of the first run; a third run sends nothing. On the restored host the same
    scan without the records would offer the native agent's sessions again."""
    fixture = tmp_path / "fixture"
    manifest = openclaw_state("mixed", fixture)
    state = fixture / "state"
    held = "legacy"
    unsent = {
        (held, entry["sessionId"]): (fixture / entry["expected"]).read_bytes()
        for entry in manifest["agents"][held]["completed"]
    }
    assert unsent and all(unsent.values())
    others = sorted(set(manifest["agents"]) - {held})
    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)

    first = sandbox.run_dag({**SETTLED, "agents": others})

    assert first.state == "success", first.output[-4000:]
    sent = requests_since(nexus, 0)
    assert {agent for agent, _ in sent} == set(others)
    assert any("@" in subject for _, subject in sent), "conversations were sent"
    copies = copies_in(state)
    assert len(copies) == len(sent) and len(records_in(state)) == len(sent)

    oc = OpenClaw.installed()
    result = backup(oc, state, tmp_path / "backups")
    volatile = {s["sourcePath"] for s in result["skipped"] if s["reason"] == "volatile"}
    assert {str(p) for p in copies} <= volatile, "OpenClaw's backup leaves every archive copy out"
    restored = restore(oc, state, result, tmp_path / "restored")
    doctor(oc, restored)
    assert copies_in(restored) == [], "no archive copy came back"
    assert records_in(restored) == records_in(state), "every record came back"
    # Without the records, the restored host would offer the native agent's sessions of the first run
    # again: all but the deleted one, whose OpenClaw export the first run moved into archive/ under its own
    # name (a .zst the backup keeps).
    bare = tmp_path / "without-records"
    shutil.copytree(restored, bare, symlinks=True)
    for folder in bare.glob("agents/*/sessions/archive/.copies"):
        shutil.rmtree(folder)
    window = Window(now=time.time(), settle_seconds=0)
    offered = {("native", s["sessionId"]) for s in stores.scan_agent(bare, "native", window).sessions}
    exported = {p.name.partition(".jsonl.")[0] for p in bare.glob("agents/native/sessions/archive/*.zst")}
    assert exported and offered == {key for key in sent if key[0] == "native" and key[1] not in exported}
    databases = {name: database_content(restored / "agents" / name) for name in ("native", "chat", held)}
    again = new_sandbox(template_home, tmp_path / "airflow-restored", restored, nexus.url)
    start = len(nexus.requests())

    second = again.run_dag(SETTLED)

    assert second.state == "success", second.output[-4000:]
    got = requests_since(nexus, start)
    assert not set(got) & set(sent), "a session Nexus had was sent again"
    assert got == unsent, "exactly the sessions unsent at the backup, byte for byte OpenClaw's"
    assert second.job_result["message"] == f"Uploaded {len(unsent)} sessions across 1 agent"
    assert second.job_result["errors"] == []
    for name, before in databases.items():
        assert database_content(restored / "agents" / name) == before, f"{name}: OpenClaw's database changed"

    third = again.run_dag(SETTLED)

    assert third.state == "success" and third.job_result["itemsProcessed"] == 0, third.output[-3000:]
    assert len(nexus.requests()) == start + len(unsent)
    assert sandbox.leaks(API_KEY, first.output) == [] and again.leaks(API_KEY, second.output) == []


def rows_of(state: Path, sid: str) -> bytes:
    with read_only(agent_database(state, CHAT_AGENT)) as db:
        return rows_transcript(db, sid)


def named(sid: str, parts: dict[str, bytes], *, live: bool = False) -> dict[tuple[str, str], bytes]:
    """(agent, ``<sessionId>@<conversation>``) → bytes, without a live session's open conversation."""
    names = list(parts)[:-1] if live else list(parts)
    return {(CHAT_AGENT, f"{sid}@{token}"): parts[token] for token in names}


def test_chats_openclaw_changed_after_the_first_run_are_sent_from_a_restored_host_and_nothing_twice(
    template_home, tmp_path, nexus
):
    """State: ``tools/openclaw/rewrite``, written by OpenClaw 2026.9.6's chat client: ``talk``
    (conversations ``0``, A, B open), ``gone`` (``0``, A open), ``done`` (``0``, A; archived). The first
    run sends ``talk``'s ``0`` and A, ``gone``'s ``0``, ``done``'s ``0`` and A. OpenClaw then truncates
    ``talk`` (A's reset event deleted), closes B with ``/new`` and deletes ``gone`` and ``done`` into
    ``.zst`` exports: B and ``gone``'s A finished after the first run. OpenClaw backs that state up and
    restores it. The second run, on the restored host whose copies are gone, sends exactly B and
    ``gone``'s A (OpenClaw's rows and export, split here), takes ``done``'s export, every conversation
    of it recorded as sent, as already uploaded without a request; a third run sends nothing."""
    fixture = tmp_path / "fixture"
    manifest = rewrite_state(fixture)
    missing = {p: w for p, w in manifest["produced"].items() if not w.startswith("yes")}
    assert not missing, f"OpenClaw did not produce what this test needs: {missing}"
    state = fixture / "state"
    talk, gone, done = (manifest["sessions"][n]["sessionId"] for n in ("talk", "gone", "done"))
    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)

    first = sandbox.run_dag(SETTLED)

    assert first.state == "success", first.output[-4000:]
    sent = requests_since(nexus, 0)
    assert sent == {
        **named(talk, conversations_of(rows_of(state, talk)), live=True),
        **named(gone, conversations_of(rows_of(state, gone)), live=True),
        **named(done, conversations_of(rows_of(state, done))),
    }

    apply_rewrite(state)  # OpenClaw's state after its rewrite, the DAG's archive/ kept

    b = list(conversations_of(rows_of(state, talk)))[1]
    exports = {
        n: state / "agents" / CHAT_AGENT / "sessions" / manifest["sessions"][n]["export"]
        for n in ("gone", "done")
    }
    gone_parts = conversations_of(zst_bytes(exports["gone"]))
    unsent = {
        (CHAT_AGENT, f"{talk}@{b}"): conversations_of(rows_of(state, talk))[b],
        (CHAT_AGENT, f"{gone}@{list(gone_parts)[-1]}"): list(gone_parts.values())[-1],
    }
    assert named(done, conversations_of(zst_bytes(exports["done"]))).items() <= sent.items()
    oc = OpenClaw.installed()
    result = backup(oc, state, tmp_path / "backups")
    volatile = {s["sourcePath"] for s in result["skipped"] if s["reason"] == "volatile"}
    assert {str(p) for p in copies_in(state)} <= volatile
    restored = restore(oc, state, result, tmp_path / "restored")
    doctor(oc, restored)
    assert copies_in(restored) == [] and records_in(restored) == records_in(state)
    assert {p.name for p in exports.values()} <= {p.name for p in restored.glob("agents/*/sessions/*.zst")}
    db_before = database_content(restored / "agents" / CHAT_AGENT)
    again = new_sandbox(template_home, tmp_path / "airflow-restored", restored, nexus.url)
    start = len(nexus.requests())

    second = again.run_dag(SETTLED)

    assert second.state == "success", second.output[-4000:]
    got = requests_since(nexus, start)
    assert not set(got) & set(sent), "a conversation Nexus had was sent again"
    assert got == unsent
    assert second.job_result["message"] == (
        "Uploaded 2 sessions across 1 agent; "
        "1 already uploaded with the same bytes, archived without resending"
    )
    archive = restored / "agents" / CHAT_AGENT / "sessions" / "archive"
    assert {p.name: p.read_bytes() for p in archive.glob("*.jsonl")} == {
        f"{subject}.jsonl": data for (_, subject), data in unsent.items()
    }, "the new conversations archived; the copies the backup left out stay recorded only"
    assert sorted(p.name for p in archive.glob("*.zst")) == sorted(p.name for p in exports.values())
    assert database_content(restored / "agents" / CHAT_AGENT) == db_before, "OpenClaw's database changed"

    third = again.run_dag(SETTLED)

    assert third.state == "success" and third.job_result["itemsProcessed"] == 0, third.output[-3000:]
    assert "already uploaded" not in third.job_result["message"]
    assert len(nexus.requests()) == start + len(unsent)
    assert (
        sandbox.leaks(API_KEY, first.output) == [] and again.leaks(API_KEY, second.output, third.output) == []
    )


def test_a_jsonl_era_host_restored_from_openclaw_2026_7_backup_sends_its_reset_file_and_nothing_twice(
    template_home, tmp_path, nexus
):
    """State: ``tools/openclaw/legacy``, written by OpenClaw 2026.7.35 (the JSONL era). The first run sends
    its reset, deleted and idle transcripts (moved into the archive) and its archived chat (copied, the
    file stays). Then OpenClaw 2026.7.35's gateway resets ``agent:main:work`` (``sessions.reset``: its
    transcript becomes ``<sid>.jsonl.reset.<ts>``): finished after the first run. OpenClaw 2026.7.35's
    ``backup create`` archives the state and ``tar -xzf`` restores it (that release has no restore
    command). What comes back: ``sessions.json``, the new ``.reset.`` file and the records; no
    ``*.jsonl`` at all (the live transcripts, the archived chat's file, the copies). The second run sends
    exactly that ``.reset.`` file, byte for byte as OpenClaw wrote it, and nothing of the first run."""
    fixture = tmp_path / "fixture"
    try:
        legacy_state(fixture)
    except Exception as exc:  # the test fails with the reason: OpenClaw 2026.7.35 could not build it
        pytest.fail(
            f"OpenClaw {OPENCLAW_VERSION} could not build the JSONL-era state: {exc!r}", pytrace=False
        )
    state = fixture / "state"
    sessions = state / "agents" / LEGACY_AGENT / "sessions"
    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)

    first = sandbox.run_dag(SETTLED)

    assert first.state == "success", first.output[-4000:]
    sent = requests_since(nexus, 0)
    assert len(sent) == 4 and first.job_result["errors"] == []

    oc = LegacyOpenClaw.installed()
    before = {p.name for p in sessions.iterdir()}
    server = StandIn().start()
    try:
        with oc.gateway(state, gateway_config(server.base_url), tmp_path / "gateway") as gw:
            params = json.dumps({"key": K_WORK})
            reset = gw.run_json(
                ["gateway", "call", "sessions.reset", "--params", params, "--json"], timeout=300
            )
    finally:
        server.stop()
    assert reset.get("ok") is True, reset
    [new] = [sessions / n for n in {p.name for p in sessions.iterdir()} - before if ".jsonl.reset." in n]
    work = new.name.partition(".jsonl.reset.")[0]
    assert (LEGACY_AGENT, work) not in sent
    unsent = {(LEGACY_AGENT, work): new.read_bytes()}

    result = backup(oc, state, tmp_path / "backups")
    assert result["skippedVolatileCount"] >= len(copies_in(state)) + 1
    target = tmp_path / "restored"
    target.mkdir()
    subprocess.run(["tar", "-xzf", result["archivePath"], "-C", str(target)], check=True, timeout=300)
    restored = target / state_asset(result)
    doctor(oc, restored, config={"cron": {"enabled": False}})
    came_back = restored / "agents" / LEGACY_AGENT / "sessions"
    assert not list(came_back.rglob("*.jsonl")), "OpenClaw's backup keeps no *.jsonl of sessions/"
    assert (came_back / new.name).read_bytes() == unsent[(LEGACY_AGENT, work)]
    assert (came_back / "sessions.json").read_bytes() == (sessions / "sessions.json").read_bytes()
    assert records_in(restored) == records_in(state) and len(records_in(state)) == len(sent)
    again = new_sandbox(template_home, tmp_path / "airflow-restored", restored, nexus.url)
    start = len(nexus.requests())

    second = again.run_dag(SETTLED)

    assert second.state == "success", second.output[-4000:]
    got = requests_since(nexus, start)
    assert not set(got) & set(sent)
    assert got == unsent
    assert second.job_result["message"] == "Uploaded 1 session across 1 agent"
    assert (came_back / "archive" / f"{work}.jsonl").read_bytes() == unsent[(LEGACY_AGENT, work)]
    assert again.leaks(API_KEY, second.output) == []
