"""The fault table (docs/faults.md), end to end: the real DAG under `airflow dags test`, real HTTP to the
Nexus stand-in with injected faults, real files. Each test names its row.

Most rows share one pair of runs (``shared``): many sessions, each matched by its session id (the
``X-Session-Id`` header) to a different stand-in fault rule, then a second run with the faults gone that
shows what the first left behind is delivered. Rows that need a whole run of their own (Nexus down,
SIGKILL, permissions, 1 GB, 5,000 sessions) have one. Every run is searched for the API key.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from openclaw_nexus import agent_check
from tests.privileges import modes_apply_prefix
from tools.demo.sample_state import make_state
from tools.stacks.sandbox import API_KEY, AirflowSandbox, DagRunOutcome, new_sandbox
from tools.standins.nexus import NexusStandin

UPLOAD, ARCHIVE = "deliver.upload", "deliver.archive"

# The shared runs' retry settings: few attempts, short waits, a short read timeout for the hangs.
ATTEMPTS, TRIES = 4, 2
READ_TIMEOUT = 2.0
BACKOFF_INITIAL, BACKOFF_MAX = 0.2, 1.6
RETRY_AFTER = 2
CAP = 10  # max_sessions for the 5,000-session runs

# Session ids of agent "main" in the shared runs, one per fault.
S429 = "f-429-retry-after"
S5XX = "f-5xx-then-ok"
PERMANENT = (501, 400, 401, 403, 413)
RESET_OK, RESET_FOREVER = "f-reset-then-ok", "f-reset-forever"
HANG_OK, HANG_FOREVER = "f-timeout-then-ok", "f-timeout-forever"
APPEND_BEFORE, APPEND_DURING = "f-appended-after-discovery", "f-appended-between-attempts"
RENAMED, REMOVED = "f-renamed-by-openclaw", "f-removed"
TAKEN = "f-archive-name-taken"
BAD_UTF8 = "f-invalid-utf8"
LINKED = "f-symlink-out"
CONTROL = ("f-control-1", "f-control-2")
RENAMED_TO = f"{RENAMED}.jsonl.deleted.2026-07-01T10-00-00.000Z"

INDEX_VARIANTS = {  # agent -> (sessions.json content or None for missing, the reason the JobResult gives)
    "idx-missing": (None, "is missing"),
    "idx-empty": (b"", "is empty"),
    "idx-truncated": (b'{"agent:idx-truncated:main": {"sessionId": "act', "not valid JSON (truncated?)"),
    "idx-list": (b'[{"sessionId": "idx-list-active"}]', "is not a JSON object"),
    "idx-no-session-id": (
        b'{"agent:x:main": {"sessionId": "idx-no-session-id-active"}, "agent:x:cron": {"updatedAt": 1}}',
        "has no valid sessionId",
    ),
}
BAD_AGENT_NAMES = ("..", "../../outside", "main/../../outside")


def perm_id(status: int) -> str:
    return f"f-permanent-{status}"


def perm_body(status: int) -> str:
    return json.dumps({"error": f"nexus refuses this upload: reason-{status}-xyzzy"})


# -- helpers -------------------------------------------------------------------------------------------


def transcript(session_id: str, *, turns: int = 3, pad_to: int = 0) -> bytes:
    """A transcript with a session header, non-ASCII, quotes, backslashes and tabs (JSON escapes)."""
    lines = [json.dumps({"type": "session", "version": 3, "id": session_id, "cwd": "/home/claw"})]
    for turn in range(turns):
        text = f'turn {turn}: café ✓ "quoted" \\ back\tslash 日本'
        lines.append(json.dumps({"type": "message", "message": {"role": "user", "content": text}}))
    data = ("\n".join(lines) + "\n").encode()
    filler = json.dumps({"type": "message", "message": {"role": "assistant", "content": "ü" * 500}}) + "\n"
    while len(data) < pad_to:
        data += filler.encode()
    return data


def put(path: Path, content: bytes, age_seconds: float = 3600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    mtime = time.time() - age_seconds
    os.utime(path, (mtime, mtime))
    return path


def tree(root: Path) -> dict[str, object]:
    """Every file (its bytes) and symlink (``-> target``) under root, not following symlinks."""
    found: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = f"-> {os.readlink(path)}"
            elif name in files:
                found[key] = path.read_bytes()
    return found


def of(records: list[dict], session_id: str) -> list[dict]:
    return [r for r in records if r["sessionId"] == session_id]


def errors_of(run: DagRunOutcome, agent: str | None, session_id: str | None = None) -> list[dict]:
    assert run.job_result is not None, run.output[-3000:]
    return [
        e
        for e in run.job_result["errors"]
        if e["agentId"] == agent and (session_id is None or e["sessionId"] == session_id)
    ]


def the_error(run: DagRunOutcome, agent: str | None, session_id: str | None = None) -> dict:
    found = errors_of(run, agent, session_id)
    assert len(found) == 1, (agent, session_id, run.job_result["errors"])
    return found[0]


def tries(sandbox: AirflowSandbox, run: DagRunOutcome, task_id: str) -> dict[str, int]:
    """Rendered map index (``agent/session``) → how many times the task ran."""
    with sandbox.db() as db:
        rows = db.execute(
            "select rendered_map_index, try_number from task_instance where run_id = ? and task_id = ?",
            (run.run_id, task_id),
        ).fetchall()
    return {label: number for label, number in rows}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def transcript_sent(nexus: NexusStandin, record: dict) -> bytes:
    return json.loads(nexus.body(record["n"]))["transcript"].encode()


def archived_but_not_in_nexus(nexus: NexusStandin, state_dir: Path, planted: set[str] = frozenset()):
    """(archived files checked, those whose content Nexus never accepted (201) under their idempotency
    key, byte for byte). Nexus de-duplicates on that key, so this is "never archived with content
    Nexus did not get"."""
    accepted = {r["idempotencyKey"]: r for r in nexus.accepted()}
    checked, missing = 0, []
    for path in sorted(state_dir.glob("agents/*/sessions/archive/*.jsonl")):
        relative = str(path.relative_to(state_dir))
        if relative in planted:
            continue
        session_id = path.name.removesuffix(".jsonl").split("+")[0]
        content = path.read_bytes()
        record = accepted.get(f"{session_id}:{sha256(content)}")
        if record is None or (nexus.store_bodies and transcript_sent(nexus, record) != content):
            missing.append(relative)
        checked += 1
    return checked, missing


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- the shared runs -------------------------------------------------------------------------------------


@dataclass
class Shared:
    sandbox: AirflowSandbox
    nexus: NexusStandin
    state: Path
    outside: Path
    originals: dict[tuple[str, str], bytes]  # (agent, session id) -> transcript as first written
    planted: set[str]
    bad_utf8_offset: int
    first: DagRunOutcome | None = None
    second: DagRunOutcome | None = None
    after_first: dict[str, object] = field(default_factory=dict)
    after_second: dict[str, object] = field(default_factory=dict)
    outside_before: dict[str, object] = field(default_factory=dict)
    outside_after: dict[str, object] = field(default_factory=dict)
    records_first: list[dict] = field(default_factory=list)
    records_second: list[dict] = field(default_factory=list)
    tries_first: dict[str, int] = field(default_factory=dict)
    hook_log: list[str] = field(default_factory=list)
    archive_check_first: tuple[int, list[str]] = (0, [])

    def main(self, name: str) -> str:
        return f"agents/main/sessions/{name}"


def _build_shared_state(root: Path) -> tuple[Path, Path, dict, set[str], int]:
    state, outside = root / "openclaw", root / "outside"
    main = state / "agents" / "main" / "sessions"
    originals: dict[tuple[str, str], bytes] = {}
    ids = [
        S429,
        S5XX,
        *(perm_id(s) for s in PERMANENT),
        RESET_OK,
        RESET_FOREVER,
        HANG_OK,
        HANG_FOREVER,
        APPEND_BEFORE,
        APPEND_DURING,
        RENAMED,
        REMOVED,
        TAKEN,
        *CONTROL,
    ]
    for n, session_id in enumerate(ids):
        # Over 64 KiB, so the stand-in's reset really cuts the body short.
        content = transcript(session_id, pad_to=300_000 if session_id == RESET_OK else 0)
        put(main / f"{session_id}.jsonl", content, age_seconds=7200 - n * 60)
        originals[("main", session_id)] = content
    # A session OpenClaw still uses, to prove active ones are left alone throughout.
    put(main / "f-active.jsonl", transcript("f-active"))
    (main / "sessions.json").write_text(
        json.dumps(
            {"agent:main:main": {"sessionId": "f-active", "sessionFile": str(main / "f-active.jsonl")}}
        )
    )
    # An older transcript already holds the archive name of TAKEN.
    put(main / "archive" / f"{TAKEN}.jsonl", b'{"type": "session", "id": "an older transcript"}\n')
    planted = {f"agents/main/sessions/archive/{TAKEN}.jsonl"}

    head = transcript(BAD_UTF8, turns=1)
    bad = head + b'{"type": "message", "text": "ok so far \xff\xfe not UTF-8"}\n'
    put(main / f"{BAD_UTF8}.jsonl", bad)
    bad_offset = len(head) + len(b'{"type": "message", "text": "ok so far ')

    # Symlinks out of the state dir: a transcript, an agent folder, a sessions folder, an archive folder.
    put(outside / "linked.jsonl", transcript(LINKED))
    (main / f"{LINKED}.jsonl").symlink_to(outside / "linked.jsonl")
    put(outside / "agent-x" / "sessions" / "outsider-1.jsonl", transcript("outsider-1"))
    (outside / "agent-x" / "sessions" / "sessions.json").write_text("{}")
    (state / "agents" / "escape-agent").symlink_to(outside / "agent-x")
    put(outside / "sessions-y" / "outsider-2.jsonl", transcript("outsider-2"))
    (outside / "sessions-y" / "sessions.json").write_text("{}")
    (state / "agents" / "escape-sessions").mkdir()
    (state / "agents" / "escape-sessions" / "sessions").symlink_to(outside / "sessions-y")
    (outside / "archive-z").mkdir()
    escape_archive = state / "agents" / "escape-archive" / "sessions"
    put(escape_archive / "f-archive-symlink.jsonl", transcript("f-archive-symlink"))
    (escape_archive / "sessions.json").write_text("{}")
    (escape_archive / "archive").symlink_to(outside / "archive-z")
    originals[("escape-archive", "f-archive-symlink")] = transcript("f-archive-symlink")

    # sessions.json variants: each agent has a completed and an (intended) active transcript.
    for agent, (index, _) in INDEX_VARIANTS.items():
        sessions = state / "agents" / agent / "sessions"
        put(sessions / f"{agent}-done.jsonl", transcript(f"{agent}-done"))
        put(sessions / f"{agent}-active.jsonl", transcript(f"{agent}-active"))
        if index is not None:
            (sessions / "sessions.json").write_bytes(index)
    # `{}` is a valid index with nothing active: every settled transcript is completed.
    empty_index = state / "agents" / "idx-empty-object" / "sessions"
    for n in (1, 2):
        put(empty_index / f"idx-empty-object-{n}.jsonl", transcript(f"idx-empty-object-{n}"))
        originals[("idx-empty-object", f"idx-empty-object-{n}")] = transcript(f"idx-empty-object-{n}")
    (empty_index / "sessions.json").write_text("{}")
    return state, outside, originals, planted, bad_offset


@pytest.fixture(scope="module")
def shared(template_home: Path, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("faults-shared")
    state, outside, originals, planted, bad_offset = _build_shared_state(root)
    main = state / "agents" / "main" / "sessions"
    seen: Counter = Counter()
    hook_log: list[str] = []

    def between_steps(record: dict) -> None:
        """Change the disk at a known point: after a request's body arrived, before it is answered."""
        session_id = record["sessionId"]
        seen[session_id] += 1
        # The last attempt of the first task try: the second try starts from a changed disk.
        if session_id == APPEND_BEFORE and seen[session_id] == ATTEMPTS:
            with (main / f"{APPEND_BEFORE}.jsonl").open("ab") as handle:
                handle.write(b'{"type": "message", "text": "appended after discovery"}\n')
            hook_log.append(f"appended to {APPEND_BEFORE}")
        elif session_id == RENAMED and seen[session_id] == ATTEMPTS:
            (main / f"{RENAMED}.jsonl").rename(main / RENAMED_TO)
            hook_log.append(f"renamed {RENAMED}")
        elif session_id == REMOVED and seen[session_id] == ATTEMPTS:
            (main / f"{REMOVED}.jsonl").unlink()
            hook_log.append(f"removed {REMOVED}")
        # The first attempt: the retry, within the same task try, reads a longer file.
        elif session_id == APPEND_DURING and seen[session_id] == 1:
            with (main / f"{APPEND_DURING}.jsonl").open("ab") as handle:
                handle.write(b'{"type": "message", "text": "appended between attempts"}\n')
            hook_log.append(f"appended to {APPEND_DURING}")

    rules = [
        {"match": {"sessionId": S429}, "times": 1, "action": {"status": 429, "retryAfter": RETRY_AFTER}},
        *(
            {"match": {"sessionId": S5XX}, "times": 1, "action": {"status": status}}
            for status in (500, 502, 503)
        ),
        *(
            {
                "match": {"sessionId": perm_id(status)},
                "times": None,
                "action": {"status": status, "body": perm_body(status)},
            }
            for status in PERMANENT
        ),
        {"match": {"sessionId": RESET_OK}, "times": 2, "action": {"reset": True}},
        {"match": {"sessionId": RESET_FOREVER}, "times": None, "action": {"reset": True}},
        {"match": {"sessionId": HANG_OK}, "times": 1, "action": {"hang": 60}},
        {"match": {"sessionId": HANG_FOREVER}, "times": None, "action": {"hang": 60}},
        {"match": {"sessionId": APPEND_BEFORE}, "times": ATTEMPTS, "action": {"reset": True}},
        {"match": {"sessionId": RENAMED}, "times": ATTEMPTS, "action": {"reset": True}},
        {"match": {"sessionId": REMOVED}, "times": ATTEMPTS, "action": {"reset": True}},
        {"match": {"sessionId": APPEND_DURING}, "times": 1, "action": {"status": 503}},
    ]
    with NexusStandin(api_key=API_KEY, record_dir=root / "nexus", on_request=between_steps) as nexus:
        sandbox = new_sandbox(
            template_home,
            root / "airflow",
            state,
            nexus.url,
            SESSION_UPLOAD_HTTP_ATTEMPTS=str(ATTEMPTS),
            SESSION_UPLOAD_TASK_RETRIES=str(TRIES - 1),
            SESSION_UPLOAD_READ_TIMEOUT_SECONDS=str(READ_TIMEOUT),
            SESSION_UPLOAD_BACKOFF_INITIAL_SECONDS=str(BACKOFF_INITIAL),
            SESSION_UPLOAD_BACKOFF_MAX_SECONDS=str(BACKOFF_MAX),
        )
        box = Shared(sandbox, nexus, state, outside, originals, planted, bad_offset, hook_log=hook_log)
        box.outside_before = tree(outside)
        nexus.set_faults(rules)
        agents = ["main", *INDEX_VARIANTS, "idx-empty-object", "escape-agent", "escape-sessions"]
        box.first = sandbox.run_dag(conf={"agents": [*agents, "escape-archive", *BAD_AGENT_NAMES]})
        box.records_first = nexus.requests()
        box.after_first = tree(state)
        box.tries_first = tries(sandbox, box.first, UPLOAD)
        box.archive_check_first = archived_but_not_in_nexus(nexus, state, planted)

        # The next run, Nexus healthy again: every agent (the default), appended files settled at once.
        nexus.clear_faults()
        box.second = sandbox.run_dag(conf={"settle_minutes": 0})
        box.records_second = nexus.requests()[len(box.records_first) :]
        box.after_second = tree(state)
        box.outside_after = tree(outside)
        yield box


# -- rows: HTTP answers --------------------------------------------------------------------------------


def test_429_with_retry_after_waits_as_told_uploads_once_and_archives(shared):
    first, second = of(shared.records_first, S429)

    assert (first["status"], second["status"]) == (429, 201)
    assert second["receivedAt"] - first["receivedAt"] >= RETRY_AFTER, "waited as Retry-After told"
    assert first["idempotencyKey"] == second["idempotencyKey"]
    assert f"main/{S429} failed (HTTP 429); retrying in {RETRY_AFTER:.1f} s" in shared.first.output
    assert shared.after_first[shared.main(f"archive/{S429}.jsonl")] == shared.originals[("main", S429)]
    assert shared.main(f"{S429}.jsonl") not in shared.after_first
    assert shared.first.labels(UPLOAD)[f"main/{S429}"] == "success"
    assert shared.tries_first[f"main/{S429}"] == 1
    assert of(shared.records_second, S429) == []


def test_5xx_for_a_while_is_retried_with_growing_backoff_then_uploaded_once(shared):
    records = of(shared.records_first, S5XX)

    assert [r["status"] for r in records] == [500, 502, 503, 201]
    stamps = [r["receivedAt"] for r in records]
    gaps = [later - earlier for earlier, later in itertools.pairwise(stamps)]
    # Equal jitter: wait n lies in [b/2, b] for b = initial * 2**(n-1), capped. A gap is that wait plus the
    # client's own time between requests, which a loaded machine stretches: so each gap is at least its
    # wait's minimum (growing: 0.1, 0.2, 0.4 s), and at most a generous bound above its maximum. The exact
    # waits, their growth and the cap are tests/unit/test_retry.py's (no sleeping, no clock).
    for n, gap in enumerate(gaps, start=1):
        ceiling = min(BACKOFF_MAX, BACKOFF_INITIAL * 2 ** (n - 1))
        assert ceiling / 2 <= gap <= ceiling + 10.0, (n, gaps)
    assert len({r["idempotencyKey"] for r in records}) == 1
    assert shared.after_first[shared.main(f"archive/{S5XX}.jsonl")] == shared.originals[("main", S5XX)]
    assert shared.tries_first[f"main/{S5XX}"] == 1


@pytest.mark.parametrize("status", PERMANENT)
def test_permanent_status_is_not_retried_and_the_file_stays(shared, status):
    session_id = perm_id(status)
    file = shared.main(f"{session_id}.jsonl")

    assert [r["status"] for r in of(shared.records_first, session_id)] == [status], "one request, no loop"
    assert shared.tries_first[f"main/{session_id}"] == 1, "AirflowFailException: no task retry either"
    error = the_error(shared.first, "main", session_id)
    assert error["stage"] == "upload" and error["file"] == f"{session_id}.jsonl"
    assert f"HTTP {status}" in error["reason"]
    assert f"reason-{status}-xyzzy" in error["reason"], "a body excerpt"
    assert "permanent: not retried" in error["reason"]
    assert shared.after_first[file] == shared.originals[("main", session_id)]
    assert shared.main(f"archive/{session_id}.jsonl") not in shared.after_first
    assert shared.first.labels(UPLOAD)[f"main/{session_id}"] == "failed"
    # Next run, Nexus accepts it: delivered then.
    assert [r["status"] for r in of(shared.records_second, session_id)] == [201]
    assert (
        shared.after_second[shared.main(f"archive/{session_id}.jsonl")]
        == shared.originals[("main", session_id)]
    )


# -- rows: the connection ----------------------------------------------------------------------------


def test_connection_reset_mid_body_is_retried_then_uploaded_once(shared):
    records = of(shared.records_first, RESET_OK)
    body_bytes = len(json.dumps({"x": shared.originals[("main", RESET_OK)].decode()}))

    assert [(r["fault"], r["status"]) for r in records] == [("reset", None), ("reset", None), (None, 201)]
    assert all(0 < r["bodyBytes"] < body_bytes for r in records[:2]), "cut mid-body"
    assert records[0]["idempotencyKey"] and len({r["idempotencyKey"] for r in records}) == 1, "one key"
    assert transcript_sent(shared.nexus, records[2]) == shared.originals[("main", RESET_OK)]
    assert (
        shared.after_first[shared.main(f"archive/{RESET_OK}.jsonl")] == shared.originals[("main", RESET_OK)]
    )
    assert shared.tries_first[f"main/{RESET_OK}"] == 1


def test_connection_reset_every_time_is_bounded_and_the_file_stays(shared):
    records = of(shared.records_first, RESET_FOREVER)

    assert len(records) == ATTEMPTS * TRIES, "attempts per try x task tries, no more"
    assert {r["fault"] for r in records} == {"reset"}
    assert shared.tries_first[f"main/{RESET_FOREVER}"] == TRIES
    error = the_error(shared.first, "main", RESET_FOREVER)
    assert error["stage"] == "upload"
    assert (
        f"Nexus did not answer main/{RESET_FOREVER} after {ATTEMPTS} attempts: ConnectionError"
        in (error["reason"])
    )
    assert "Connection reset by peer" in error["reason"]
    assert (
        shared.after_first[shared.main(f"{RESET_FOREVER}.jsonl")] == shared.originals[("main", RESET_FOREVER)]
    )
    assert shared.main(f"archive/{RESET_FOREVER}.jsonl") not in shared.after_first
    assert [r["status"] for r in of(shared.records_second, RESET_FOREVER)] == [201]


def test_response_that_never_comes_times_out_is_retried_and_nexus_drops_the_duplicate(shared):
    hung, retried = of(shared.records_first, HANG_OK)

    assert (hung["fault"], hung["status"]) == ("hang", 201), "Nexus took it; only the answer never came"
    assert (retried["status"], retried["duplicate"]) == (200, True)
    assert (
        hung["idempotencyKey"]
        == retried["idempotencyKey"]
        == (f"{HANG_OK}:{sha256(shared.originals[('main', HANG_OK)])}")
    )
    assert retried["receivedAt"] - hung["receivedAt"] >= READ_TIMEOUT, "the explicit read timeout"
    assert shared.after_first[shared.main(f"archive/{HANG_OK}.jsonl")] == shared.originals[("main", HANG_OK)]


def test_response_that_never_comes_at_all_is_bounded_and_the_file_stays(shared):
    records = of(shared.records_first, HANG_FOREVER)

    assert len(records) == ATTEMPTS * TRIES
    assert {r["fault"] for r in records} == {"hang"}
    error = the_error(shared.first, "main", HANG_FOREVER)
    assert f"did not answer main/{HANG_FOREVER} after {ATTEMPTS} attempts: ReadTimeout" in error["reason"]
    assert f"read timeout={READ_TIMEOUT}" in error["reason"], error
    assert shared.tries_first[f"main/{HANG_FOREVER}"] == TRIES
    assert (
        shared.after_first[shared.main(f"{HANG_FOREVER}.jsonl")] == shared.originals[("main", HANG_FOREVER)]
    )
    # Nexus did hold it: the next run's upload is the duplicate it drops, and then the file is archived.
    [again] = of(shared.records_second, HANG_FOREVER)
    assert (again["status"], again["duplicate"]) == (200, True)
    assert shared.main(f"archive/{HANG_FOREVER}.jsonl") in shared.after_second


# -- rows: the disk ------------------------------------------------------------------------------------


def test_archive_name_already_taken_keeps_both_files(shared):
    older = b'{"type": "session", "id": "an older transcript"}\n'

    assert shared.after_first[shared.main(f"archive/{TAKEN}.jsonl")] == older
    assert shared.after_first[shared.main(f"archive/{TAKEN}+1.jsonl")] == shared.originals[("main", TAKEN)]
    assert shared.main(f"{TAKEN}.jsonl") not in shared.after_first


def test_transcript_appended_after_discovery_fails_that_session_and_stays(shared):
    file = shared.main(f"{APPEND_BEFORE}.jsonl")
    original = shared.originals[("main", APPEND_BEFORE)]

    assert f"appended to {APPEND_BEFORE}" in shared.hook_log
    assert [r["fault"] for r in of(shared.records_first, APPEND_BEFORE)] == ["reset"] * ATTEMPTS
    assert shared.tries_first[f"main/{APPEND_BEFORE}"] == 2, "the second try found the file changed"
    error = the_error(shared.first, "main", APPEND_BEFORE)
    assert "changed since discovery" in error["reason"], error
    assert shared.after_first[file].startswith(original) and len(shared.after_first[file]) > len(original)
    assert shared.main(f"archive/{APPEND_BEFORE}.jsonl") not in shared.after_first
    # The next run sends the whole file, and archives exactly that.
    [sent] = of(shared.records_second, APPEND_BEFORE)
    assert transcript_sent(shared.nexus, sent) == shared.after_first[file]
    assert shared.after_second[shared.main(f"archive/{APPEND_BEFORE}.jsonl")] == shared.after_first[file]


def test_transcript_appended_between_attempts_fails_that_session_and_stays(shared):
    file = shared.main(f"{APPEND_DURING}.jsonl")
    records = of(shared.records_first, APPEND_DURING)

    assert f"appended to {APPEND_DURING}" in shared.hook_log
    assert [r["status"] for r in records] == [503, 400], "the retry never reached Nexus whole"
    assert records[1]["bodyBytes"] < records[0]["bodyBytes"], "cut short, never past Content-Length"
    error = the_error(shared.first, "main", APPEND_DURING)
    assert "changed while" in error["reason"], error
    assert shared.tries_first[f"main/{APPEND_DURING}"] == 1
    assert shared.main(f"archive/{APPEND_DURING}.jsonl") not in shared.after_first
    [sent] = of(shared.records_second, APPEND_DURING)
    assert transcript_sent(shared.nexus, sent) == shared.after_first[file]
    assert shared.after_second[shared.main(f"archive/{APPEND_DURING}.jsonl")] == shared.after_first[file]


def test_transcript_renamed_by_openclaw_after_discovery_is_an_error_then_picked_up(shared):
    assert f"renamed {RENAMED}" in shared.hook_log
    error = the_error(shared.first, "main", RENAMED)
    assert "is gone since discovery" in error["reason"] and "picks it up" in error["reason"], error
    assert shared.after_first[shared.main(RENAMED_TO)] == shared.originals[("main", RENAMED)]
    # Picked up under its new name by the next run, archived under its session id.
    assert [r["status"] for r in of(shared.records_second, RENAMED)] == [201]
    assert shared.after_second[shared.main(f"archive/{RENAMED}.jsonl")] == shared.originals[("main", RENAMED)]
    assert shared.main(RENAMED_TO) not in shared.after_second
    assert errors_of(shared.second, "main", RENAMED) == []


def test_transcript_removed_after_discovery_is_an_error_and_nothing_crashes(shared):
    assert f"removed {REMOVED}" in shared.hook_log
    error = the_error(shared.first, "main", REMOVED)
    assert "is gone since discovery" in error["reason"], error
    assert not any(k.endswith(f"{REMOVED}.jsonl") for k in shared.after_first)
    assert of(shared.records_second, REMOVED) == [] and errors_of(shared.second, "main", REMOVED) == []
    # Its neighbours went through, in the same run.
    for session_id in CONTROL:
        assert shared.first.labels(ARCHIVE)[f"main/{session_id}"] == "success"


@pytest.mark.parametrize("agent", sorted(INDEX_VARIANTS))
def test_untrustworthy_sessions_json_skips_the_agent_and_touches_nothing(shared, agent):
    reason = INDEX_VARIANTS[agent][1]
    error = the_error(shared.first, agent)

    assert error["stage"] == "discover" and error["file"] == "sessions.json"
    assert error["reason"].startswith("agent skipped:") and reason in error["reason"], error
    prefix = f"agents/{agent}/"
    before = {k: v for k, v in shared.after_first.items() if k.startswith(prefix)}
    assert sorted(before) == sorted(
        f"{prefix}sessions/{name}"
        for name in [f"{agent}-done.jsonl", f"{agent}-active.jsonl"]
        + ([] if INDEX_VARIANTS[agent][0] is None else ["sessions.json"])
    )
    assert {k: v for k, v in shared.after_second.items() if k.startswith(prefix)} == before
    assert not [r for r in shared.nexus.requests() if r["agentId"] == agent], "nothing of it is sent"


def test_empty_object_index_means_every_settled_transcript_is_completed(shared):
    for n in (1, 2):
        session_id = f"idx-empty-object-{n}"
        assert [r["status"] for r in of(shared.records_first, session_id)] == [201]
        archived = f"agents/idx-empty-object/sessions/archive/{session_id}.jsonl"
        assert shared.after_first[archived] == shared.originals[("idx-empty-object", session_id)]
    assert errors_of(shared.first, "idx-empty-object") == []


def test_active_session_is_never_sent_or_moved(shared):
    assert of(shared.nexus.requests(), "f-active") == []
    assert shared.after_second[shared.main("f-active.jsonl")] == transcript("f-active")


def test_invalid_utf8_is_refused_with_file_and_offset_and_nothing_is_sent(shared):
    for run, after in [(shared.first, shared.after_first), (shared.second, shared.after_second)]:
        error = the_error(run, "main", BAD_UTF8)
        assert error["stage"] == "upload" and error["file"] == f"{BAD_UTF8}.jsonl"
        assert f"{BAD_UTF8}.jsonl is not valid UTF-8 (at byte {shared.bad_utf8_offset})" in error["reason"]
        assert b"\xff\xfe" in after[shared.main(f"{BAD_UTF8}.jsonl")], "left exactly as it is"
    assert of(shared.nexus.requests(), BAD_UTF8) == [], "not a byte of it sent"
    assert shared.tries_first[f"main/{BAD_UTF8}"] == 1


def test_symlinks_and_dotdot_names_are_not_followed_out_of_the_state_dir(shared):
    assert shared.outside_after == shared.outside_before, "nothing outside was moved or written"
    sent = {r["sessionId"] for r in shared.nexus.requests()}
    assert not {LINKED, "outsider-1", "outsider-2"} & sent, "nothing outside was sent"
    assert shared.after_second[shared.main(f"{LINKED}.jsonl")] == f"-> {shared.outside / 'linked.jsonl'}"
    assert "resolves outside the state dir" in the_error(shared.first, "escape-agent")["reason"]
    assert "resolves outside the state dir" in the_error(shared.first, "escape-sessions")["reason"]
    assert "resolves outside the state dir" in the_error(shared.second, "escape-agent")["reason"]
    for name in BAD_AGENT_NAMES:
        assert "is not a plain folder name" in the_error(shared.first, name)["reason"]
    # An archive folder that is a symlink out: uploaded, but not moved there.
    error = the_error(shared.first, "escape-archive", "f-archive-symlink")
    assert error["stage"] == "archive" and "symlink" in error["reason"], error
    kept = "agents/escape-archive/sessions/f-archive-symlink.jsonl"
    assert shared.after_second[kept] == shared.originals[("escape-archive", "f-archive-symlink")]


# -- the runs as a whole --------------------------------------------------------------------------------


def test_shared_runs_report_every_failure_archive_only_what_nexus_got_and_leak_no_key(shared):
    first, second = shared.first, shared.second
    assert first.state == "failed" and first.job_result["success"] is False
    delivered = {S429, S5XX, RESET_OK, HANG_OK, TAKEN, *CONTROL}
    assert first.job_result["itemsProcessed"] == len(delivered) + 2  # + idx-empty-object's two
    failed = {perm_id(s) for s in PERMANENT} | {RESET_FOREVER, HANG_FOREVER, APPEND_BEFORE, APPEND_DURING}
    failed |= {RENAMED, REMOVED, BAD_UTF8}
    labels = first.labels(UPLOAD)
    assert {label for label, state in labels.items() if state == "failed"} == {f"main/{s}" for s in failed}
    assert first.labels(ARCHIVE)["escape-archive/f-archive-symlink"] == "failed"
    # The second run delivers everything the first left that can be delivered.
    assert second.job_result["itemsProcessed"] == len(failed - {REMOVED, BAD_UTF8})
    assert {(e["agentId"], e["sessionId"]) for e in second.job_result["errors"]} == {
        ("main", BAD_UTF8),
        ("escape-archive", "f-archive-symlink"),
        ("escape-agent", None),
        ("escape-sessions", None),
        *((agent, None) for agent in INDEX_VARIANTS),
    }
    # Nothing lost: every transcript of main is archived, or is the one that cannot be sent.
    left = {k for k in shared.after_second if k.startswith("agents/main/sessions/") and "/archive/" not in k}
    assert left == {shared.main(n) for n in ["sessions.json", "f-active.jsonl", f"{BAD_UTF8}.jsonl"]} | {
        shared.main(f"{LINKED}.jsonl")
    }
    # Never archived with content Nexus did not get, after either run.
    checked_first, missing_first = shared.archive_check_first
    checked_second, missing_second = archived_but_not_in_nexus(shared.nexus, shared.state, shared.planted)
    assert (missing_first, missing_second) == ([], [])
    assert checked_first == first.job_result["itemsProcessed"]
    assert checked_second == checked_first + second.job_result["itemsProcessed"]
    assert shared.nexus.hook_errors == []
    assert all(r["query"] == {"code": "***"} for r in shared.nexus.requests())
    assert API_KEY not in shared.nexus.requests_file.read_text()
    assert shared.sandbox.leaks(API_KEY, first.output, second.output) == []


# -- rows with a run of their own ----------------------------------------------------------------------


def completed_files(made: dict, agent: str = "main") -> dict[str, str]:
    """Session id -> file name of make_state's completed transcripts."""
    return {item["sessionId"]: item["file"] for item in made[agent]["completed"]}


def test_nexus_down_for_the_whole_run_fails_every_session_moves_nothing_then_next_run_uploads_all(
    template_home, tmp_path
):
    state = tmp_path / "openclaw"
    files = completed_files(make_state(state, ["main"], completed=3))
    before = tree(state)
    sandbox = new_sandbox(
        template_home,
        tmp_path / "airflow",
        state,
        f"http://127.0.0.1:{closed_port()}",
        SESSION_UPLOAD_HTTP_ATTEMPTS="2",
        SESSION_UPLOAD_TASK_RETRIES="1",
    )

    down = sandbox.run_dag()

    assert down.state == "failed"
    after = tree(state)
    # The one file the run adds: find_agents' record of what it scanned (agents/.session-upload-check.json).
    assert after.pop(f"agents/{agent_check.RECORD_NAME}", None) is not None, "the check's record is written"
    assert after == before, "nothing moved"
    assert down.job_result["itemsProcessed"] == 0
    assert {e["sessionId"] for e in down.job_result["errors"]} == set(files)
    for error in down.job_result["errors"]:
        assert error["stage"] == "upload" and error["file"] == files[error["sessionId"]]
        assert (
            f"did not answer main/{error['sessionId']} after 2 attempts: ConnectionError" in error["reason"]
        )
        assert "Connection refused" in error["reason"], error
    assert set(tries(sandbox, down, UPLOAD).values()) == {2}, "retried by Airflow, within bounds"
    for session_id in files:  # 2 attempts per try: one wait each, in each of the 2 tries
        assert down.output.count(f"Nexus attempt 1/2 for main/{session_id} failed (ConnectionError") == 2
    assert set(down.states(ARCHIVE).values()) == {"upstream_failed"}

    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as nexus:
        sandbox.nexus_url = nexus.url
        up = sandbox.run_dag()
        accepted = nexus.accepted()

    assert up.state == "success", up.output[-3000:]
    assert up.job_result["itemsProcessed"] == 3 and up.job_result["errors"] == []
    assert sorted(r["sessionId"] for r in accepted) == sorted(files)
    for session_id, name in files.items():
        assert (
            tree(state)[f"agents/main/sessions/archive/{session_id}.jsonl"]
            == before[f"agents/main/sessions/{name}"]
        )
    assert sandbox.leaks(API_KEY, down.output, up.output) == []


def test_worker_killed_during_an_upload_then_rerun_loses_nothing_and_duplicates_at_most_once(
    template_home, tmp_path
):
    state = tmp_path / "openclaw"
    files = completed_files(make_state(state, ["main"], completed=3))
    sessions = state / "agents" / "main" / "sessions"
    originals = {sid: (sessions / name).read_bytes() for sid, name in files.items()}
    victim = sorted(files)[0]
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as nexus:
        nexus.set_faults([{"match": {"sessionId": victim}, "times": 1, "action": {"hang": 300}}])
        sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
        killed_log = tmp_path / "killed-run.log"
        with killed_log.open("w") as log:
            process = subprocess.Popen(
                sandbox.command(),
                env=sandbox.env(),
                cwd=sandbox.home,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill all of it
            )
        try:
            deadline = time.monotonic() + 240
            while not of(nexus.requests(), victim):  # recorded when its body arrived: in flight now
                assert process.poll() is None, killed_log.read_text()[-3000:]
                assert time.monotonic() < deadline, "the upload never started"
                time.sleep(0.1)
        finally:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        assert process.returncode == -signal.SIGKILL
        assert (sessions / files[victim]).read_bytes() == originals[victim], "not archived: unconfirmed"

        nexus.clear_faults()
        rerun = sandbox.run_dag()
        records = nexus.requests()

    assert rerun.state == "success", rerun.output[-3000:]
    archive = sessions / "archive"
    assert sorted(p.name for p in archive.iterdir()) == [".copies", *sorted(f"{sid}.jsonl" for sid in files)]
    for session_id, content in originals.items():
        assert (archive / f"{session_id}.jsonl").read_bytes() == content, "nothing lost"
        assert not (sessions / files[session_id]).exists()
        mine = of(records, session_id)
        key = f"{session_id}:{sha256(content)}"
        assert {r["idempotencyKey"] for r in mine} == {key}
        assert [r["status"] for r in mine] in ([201], [201, 200]), "at most one duplicate"
    hung, again = of(records, victim)
    assert (hung["status"], hung["fault"]) == (201, "hang")
    assert (again["status"], again["duplicate"]) == (200, True), "Nexus dropped it by its key"
    assert sandbox.leaks(API_KEY, killed_log.read_text(), rerun.output) == []


def test_permission_denied_reading_a_transcript_or_writing_the_archive_fails_only_that_session(
    template_home, tmp_path
):
    """A transcript of mode 000 is an error at discovery (``cannot read transcript: Permission denied``)
    and never reaches Nexus; an agent whose ``archive/`` is read-only gets an error at the archive step,
    its transcript stays in place unchanged and nothing is written to ``archive/``; the run fails, and the
    other two sessions are uploaded and archived (``itemsProcessed`` 2, two errors). Root ignores file
    modes, so as root this run drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (tests/privileges.py)."""
    prefix = modes_apply_prefix()
    state = tmp_path / "openclaw"
    main = state / "agents" / "main" / "sessions"
    for n, session_id in enumerate(["perm-ok-1", "perm-ok-2", "perm-unreadable"]):
        put(main / f"{session_id}.jsonl", transcript(session_id), age_seconds=7200 - n)
    (main / "sessions.json").write_text("{}")
    (main / "perm-unreadable.jsonl").chmod(0o000)
    locked = state / "agents" / "locked" / "sessions"
    put(locked / "perm-archive-denied.jsonl", transcript("perm-archive-denied"))
    (locked / "sessions.json").write_text("{}")
    (locked / "archive").mkdir()
    (locked / "archive").chmod(0o555)
    try:
        with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as nexus:
            sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
            sandbox.command_prefix = prefix
            run = sandbox.run_dag()
            records = nexus.requests()
    finally:
        (main / "perm-unreadable.jsonl").chmod(0o644)
        (locked / "archive").chmod(0o755)

    assert run.state == "failed"
    unreadable = the_error(run, "main", "perm-unreadable")
    assert unreadable["stage"] == "discover" and unreadable["file"] == "perm-unreadable.jsonl"
    assert "cannot read transcript: Permission denied" in unreadable["reason"]
    assert of(records, "perm-unreadable") == []
    denied = the_error(run, "locked", "perm-archive-denied")
    assert denied["stage"] == "archive" and "Permission denied" in denied["reason"], denied
    assert (locked / "perm-archive-denied.jsonl").read_bytes() == transcript("perm-archive-denied")
    assert list((locked / "archive").iterdir()) == []
    # The others continued: uploaded and archived.
    assert run.job_result["itemsProcessed"] == 2 and len(run.job_result["errors"]) == 2
    for session_id in ["perm-ok-1", "perm-ok-2"]:
        assert (main / "archive" / f"{session_id}.jsonl").read_bytes() == transcript(session_id)
    assert sandbox.leaks(API_KEY, run.output) == []


MIB = 1 << 20
# A transcript holding every kind of character a JSON string treats apart: the control characters (the
# short escapes \b \t \n \f \r and the \u00XX ones), quote and backslash; then what json.dumps with
# ensure_ascii=False leaves as it is: "/", DEL, UTF-8 of two, three and four bytes, U+2028/U+2029, a BOM,
# the highest code point.
EVERY_KIND = "".join(map(chr, range(0x20))) + '"\\/\x7f aé日\u2028\u2029\ufeff😀\U0010ffff'


def _mib_of_jsonl() -> bytes:
    """About 1 MiB of whole JSONL lines, with text that JSON must escape and multi-byte characters."""
    line = json.dumps(
        {"type": "message", "message": {"role": "assistant", "content": 'ça va ✓ "q" \\ \t 日本語 ' * 40}},
        ensure_ascii=False,
    ).encode()
    return (line + b"\n") * (MIB // (len(line) + 1))


def json_body(agent_id: str, session_id: str, transcript_parts: Iterable[str]) -> Iterator[bytes]:
    """The upload body as the contract defines it, made by the json library alone (not the package):
    ``json.dumps({"agentId": …, "sessionId": …, "transcript": "".join(transcript_parts)},
    ensure_ascii=False)`` in UTF-8, the default separators and this key order being what the package sends.
    Yielded piece by piece, so a 1 GiB transcript is never one string: json.dumps escapes a string code
    point by code point, so the dumps of the parts, concatenated, are the dumps of the whole
    (``test_json_body_is_json_dumps_of_the_whole_body`` checks it)."""
    opening = json.dumps({"agentId": agent_id, "sessionId": session_id, "transcript": ""}, ensure_ascii=False)
    assert opening.endswith(', "transcript": ""}'), opening
    yield opening[:-2].encode()  # up to the transcript's opening quote
    last, escaped = None, b""
    for part in transcript_parts:
        if part is not last:  # the 1 GiB test passes one 1 MiB part over and over: dump it once
            last, escaped = part, json.dumps(part, ensure_ascii=False)[1:-1].encode()
        yield escaped
    yield b'"}'


def test_json_body_is_json_dumps_of_the_whole_body():
    """The 1 GiB test's oracle against json.dumps of the whole body, for a transcript holding every kind
    of character JSON escapes, cut into three parts at every pair of places."""
    body = {"agentId": "big", "sessionId": "big-1gb", "transcript": EVERY_KIND}
    whole = json.dumps(body, ensure_ascii=False).encode()
    assert json.loads(whole) == body
    escapes = [b"\\u0000", b"\\u001f", b"\\b", b"\\t", b"\\n", b"\\f", b"\\r", b'\\"', b"\\\\"]
    kept = ["/", "\x7f", "é", "日", "\u2028", "\ufeff", "😀", "\U0010ffff"]  # as UTF-8, like the package
    assert all(escape in whole for escape in escapes) and all(c.encode() in whole for c in kept), whole
    for start, end in itertools.combinations_with_replacement(range(len(EVERY_KIND) + 1), 2):
        parts = [EVERY_KIND[:start], EVERY_KIND[start:end], EVERY_KIND[end:]]
        assert b"".join(json_body("big", "big-1gb", parts)) == whole, (start, end)


def sender_to(port: int) -> tuple[int, int]:
    """The process at the client end of the TCP connection to the stand-in's ``port`` and its peak RSS so
    far (VmHWM, bytes), read from /proc. Called from the stand-in's ``on_request`` hook, while it holds
    the request: the body is all sent, the sender waits for the answer."""
    sockets = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[2].endswith(f":{port:04X}") and fields[3] == "01":  # rem_address, st ESTABLISHED
            sockets.add(f"socket:[{fields[9]}]")
    senders = set()
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if {os.readlink(fd) for fd in fds.iterdir()} & sockets:
                senders.add(int(fds.parent.name))
        except OSError:  # gone meanwhile, or not ours
            continue
    assert len(senders) == 1, (port, sockets, senders)
    [pid] = senders
    status = dict(line.partition(":")[::2] for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return pid, int(status["VmHWM"].split()[0]) * 1024


def test_a_1_gb_transcript_is_uploaded_with_bounded_memory(template_home, tmp_path):
    """Memory is measured from outside the package: the peak RSS of the `airflow dags test` process and
    the descendants it waited for (``ru_maxrss`` from ``wait4``, tools/sandbox.run_measuring_rss), for a
    run uploading a 1 KB transcript, then for the one uploading 1 GiB. `dags test` runs the task inside
    that process (Airflow 3's InProcessTestSupervisor); the stand-in's hook checks it: the process at the
    other end of the upload's connection is the measured one, so the figure is that of the process that
    held the body. What Nexus must receive comes from the json library (``json_body``)."""
    session_id, small = "big-1gb", "small-1kb"
    sessions = tmp_path / "openclaw" / "agents" / "big" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_text("{}")
    put(sessions / f"{small}.jsonl", transcript(small))
    header = json.dumps({"type": "session", "version": 3, "id": session_id}).encode() + b"\n"
    block = _mib_of_jsonl()
    blocks = -(-(1 << 30) // len(block))  # at least 1 GiB
    path = sessions / f"{session_id}.jsonl"
    senders: dict[str, tuple[int, int]] = {}

    def note_sender(record: dict) -> None:
        senders[record["sessionId"]] = sender_to(nexus.port)

    try:
        with NexusStandin(
            api_key=API_KEY, record_dir=tmp_path / "nexus", store_bodies=False, on_request=note_sender
        ) as nexus:
            sandbox = new_sandbox(
                template_home,
                tmp_path / "airflow",
                tmp_path / "openclaw",
                nexus.url,
                SESSION_UPLOAD_READ_TIMEOUT_SECONDS="120",
            )
            idle, idle_pid, idle_peak = sandbox.run_dag_measuring_rss()

            content_hash = hashlib.sha256(header)
            with path.open("wb") as handle:
                handle.write(header)
                for _ in range(blocks):
                    handle.write(block)
                    content_hash.update(block)
            size = path.stat().st_size
            assert size >= 1 << 30
            old = time.time() - 3600
            os.utime(path, (old, old))
            inode = path.stat().st_ino
            # What Nexus must receive: the contract's JSON body of this transcript, by the json library.
            body_hash, body_size = hashlib.sha256(), 0
            for piece in json_body("big", session_id, [header.decode(), *[block.decode()] * blocks]):
                body_hash.update(piece)
                body_size += len(piece)

            started = time.monotonic()
            run, pid, peak = sandbox.run_dag_measuring_rss()
            seconds = time.monotonic() - started
            records = {r["sessionId"]: r for r in nexus.requests()}
            hook_errors = nexus.hook_errors

        assert idle.state == "success", idle.output[-3000:]
        assert run.state == "success", run.output[-3000:]
        assert sorted(records) == sorted([small, session_id]) and records[small]["status"] == 201
        record = records[session_id]
        assert (record["status"], record["bodyBytes"]) == (201, body_size)
        assert record["bodySha256"] == body_hash.hexdigest(), "byte for byte"
        assert record["idempotencyKey"] == f"{session_id}:{content_hash.hexdigest()}"
        archived = sessions / "archive" / f"{session_id}.jsonl"
        assert archived.stat().st_ino == inode and not path.exists(), "moved, not copied"

        assert hook_errors == []
        assert (senders[small][0], senders[session_id][0]) == (idle_pid, pid), (
            "the body was not sent by the measured `airflow dags test` process: Airflow runs the task "
            "elsewhere now, and the tree's peak is the largest process's, which may hide the sender's growth"
        )
        assert peak >= senders[session_id][1], "ru_maxrss covers the sender's high-water mark"
        print(
            f"\n1 GiB upload: peak RSS {peak // MIB} MiB (idle run {idle_peak // MIB} MiB; "
            f"{senders[session_id][1] // MIB} MiB once the body was sent), run {seconds:.0f} s"
        )
        assert peak < 300 * MIB and peak - idle_peak < 64 * MIB, (peak // MIB, idle_peak // MIB)
        assert sandbox.leaks(API_KEY, idle.output, run.output) == []
    finally:
        shutil.rmtree(sessions, ignore_errors=True)


def test_5000_completed_sessions_on_one_agent_take_at_most_the_cap_per_run(template_home, tmp_path):
    state = tmp_path / "openclaw"
    sessions = state / "agents" / "bulk" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_text("{}")
    old = time.time() - 7200
    ids = [f"bulk-{n:05d}" for n in range(5000)]
    for n, session_id in enumerate(ids):  # oldest first: bulk-00000
        path = sessions / f"{session_id}.jsonl"
        path.write_bytes(transcript(session_id, turns=1))
        os.utime(path, (old + n, old + n))

    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as nexus:
        sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
        dry = sandbox.run_dag(conf={"dry_run": True})
        assert nexus.requests() == []
        first = sandbox.run_dag(conf={"max_sessions": CAP})
        after_first = sorted(r["sessionId"] for r in nexus.accepted())
        second = sandbox.run_dag(conf={"max_sessions": CAP})
        after_second = sorted(r["sessionId"] for r in nexus.accepted())

    assert dry.state == "success", dry.output[-3000:]
    assert (
        dry.job_result["message"]
        == "Dry run: would upload 500 sessions across 1 agent; 4500 more left for later runs"
    )
    assert "max_map_length" not in dry.output
    assert first.state == "success", first.output[-3000:]
    assert (
        first.job_result["message"]
        == f"Uploaded {CAP} sessions across 1 agent; {5000 - CAP} more left for later runs"
    )
    assert after_first == ids[:CAP], "the oldest first"
    assert second.job_result["message"] == (
        f"Uploaded {CAP} sessions across 1 agent; {5000 - 2 * CAP} more left for later runs"
    )
    assert after_second == ids[: 2 * CAP], "the next ones, each once"
    archived = sorted(p.name for p in (sessions / "archive").glob("*.jsonl"))
    assert archived == [f"{s}.jsonl" for s in ids[: 2 * CAP]]
    assert len(list(sessions.glob("*.jsonl"))) == 5000 - 2 * CAP
    assert sandbox.leaks(API_KEY, dry.output, first.output, second.output) == []
