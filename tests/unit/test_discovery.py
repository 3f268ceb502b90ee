"""openclaw_nexus.discovery on real state dirs under tmp_path: what is completed, what is left alone."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from openclaw_nexus import files as file_store
from openclaw_nexus.discovery import Window, list_agents, resolve_transcript, select_sessions
from openclaw_nexus.files import ActiveSet, SessionIndexError
from openclaw_nexus.jsonl_store import read_active_set
from openclaw_nexus.stores import scan_agent

NOW = 1_780_000_000  # epoch seconds; every mtime below is set relative to it
WINDOW = Window(now=NOW, settle_seconds=300)
A = "0b7f3c9e-5a21-4d8e-9f10-2c3b4a5d6e7f"
B = "1c8a4d0f-6b32-4e9f-a021-3d4c5b6e7f80"
C = "2d9b5e1a-7c43-4fa0-b132-4e5d6c7f8091"
TS = "2026-02-02T20-29-47.344Z"


def mtime_ns(age: float) -> int:
    return int((NOW - age) * 1_000_000_000)


def set_age(path: Path, age: float) -> None:
    os.utime(path, ns=(mtime_ns(age), mtime_ns(age)), follow_symlinks=False)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class State:
    """An OpenClaw state dir: ``<root>/agents/<agent>/sessions/``."""

    def __init__(self, root: Path):
        self.root = root

    def sessions(self, agent: str = "main") -> Path:
        return self.root / "agents" / agent / "sessions"

    def agent(self, agent: str = "main", index: dict | bytes | None = None) -> Path:
        """Create the agent's sessions folder with ``index`` as sessions.json (None: no sessions.json)."""
        sessions = self.sessions(agent)
        sessions.mkdir(parents=True, exist_ok=True)
        if index is not None:
            raw = index if isinstance(index, bytes) else json.dumps(index).encode()
            (sessions / "sessions.json").write_bytes(raw)
        return sessions

    def transcript(
        self,
        name: str,
        *,
        agent: str = "main",
        age: float = 3600,
        content: bytes | None = None,
        header_id: str | None = None,
    ) -> Path:
        """A transcript ``age`` seconds old; by default its header carries ``header_id`` (or none)."""
        if content is None:
            lines = [{"type": "message", "role": "user", "text": "hi"}]
            if header_id is not None:
                lines.insert(0, {"type": "session", "id": header_id, "version": 3})
            content = "".join(json.dumps(line) + "\n" for line in lines).encode()
        path = self.sessions(agent) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        set_age(path, age)
        return path


@pytest.fixture
def state(tmp_path) -> State:
    return State(tmp_path / "state")


def files(scan) -> list[str]:
    return [s["file"] for s in scan.sessions]


# --- read_active_set -------------------------------------------------------------------------------


def test_read_active_set_ids_and_session_file_basenames(state):
    sessions = state.agent(
        index={
            "agent:main:main": {"sessionId": A, "updatedAt": 1},
            "agent:main:telegram:group:7": {
                "sessionId": B,
                "sessionFile": f"/home/u/.openclaw/agents/main/sessions/{B}-topic-7.jsonl",
            },
            "agent:main:other": {"sessionId": "custom.id_1", "sessionFile": ""},
            "agent:main:relative": {"sessionId": C, "sessionFile": f"{C}.jsonl"},
        }
    )
    active = read_active_set(sessions)
    assert active == ActiveSet(
        session_ids=frozenset({A, B, "custom.id_1", C}),
        file_names=frozenset({f"{B}-topic-7.jsonl", f"{C}.jsonl"}),
    )
    assert active.contains(A, "whatever.jsonl")
    assert active.contains("zzz", f"{B}-topic-7.jsonl")
    assert not active.contains("zzz", "zzz.jsonl")


def test_read_active_set_empty_object_is_no_active_sessions(state):
    assert read_active_set(state.agent(index={})) == ActiveSet(frozenset(), frozenset())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "is missing, so its active sessions are unknown"),
        (b"", "is empty"),
        (b"  \n", "is empty"),
        (b'{"agent:main:main": {"sessionId": "abc", "upd', "is not valid JSON (truncated?)"),
        (b"\xff\xfe{}", "is not valid JSON (truncated?)"),
        (b"[]", "is not a JSON object keyed by session key (list)"),
        (b'"text"', "is not a JSON object keyed by session key (str)"),
        (b'{"k": {"sessionFile": "x.jsonl"}}', "entry 'k' has no valid sessionId"),
        (b'{"k": "abc"}', "entry 'k' has no valid sessionId"),
        (b'{"k": null}', "entry 'k' has no valid sessionId"),
        (b'{"k": {"sessionId": "../x"}}', "entry 'k' has no valid sessionId"),
        (b'{"k": {"sessionId": 7}}', "entry 'k' has no valid sessionId"),
    ],
)
def test_read_active_set_refuses_an_untrustworthy_index(state, raw, reason):
    sessions = state.agent(index=raw)
    with pytest.raises(SessionIndexError) as caught:
        read_active_set(sessions)
    assert str(sessions / "sessions.json") in str(caught.value)
    assert reason in str(caught.value)


# --- Window ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "reason"),
    [(0, "settling"), (299.5, "settling"), (300, None), (301, None), (10**6, None), (-5, "settling")],
)
def test_window_settle_time(age, reason):
    assert Window(now=NOW, settle_seconds=300).admits(NOW - age) == reason


def test_window_before_is_exclusive_and_not_before_inclusive():
    window = Window(now=NOW, settle_seconds=0, not_before=100.0, before=200.0)
    assert window.admits(99.999) == "before_window"
    assert window.admits(100.0) is None
    assert window.admits(199.999) is None
    assert window.admits(200.0) == "after_window"


@pytest.mark.parametrize(
    ("age", "file", "committed"),
    [
        (0, "settling", "settling"),
        (4.9, "settling", "settling"),
        (5, "settling", None),
        (59.9, "settling", None),
        (60, None, None),
        (-1, "settling", "settling"),  # from the future (a clock step): nothing is final yet
    ],
)
def test_window_settles_files_and_committed_completions_each_their_own_time(age, file, committed):
    window = Window(now=NOW, settle_seconds=60, db_settle_seconds=5)
    assert window.admits(NOW - age) == file
    assert window.admits(NOW - age, committed=True) == committed


def test_window_defaults_a_minute_for_files_and_nothing_for_committed_completions():
    window = Window(now=NOW)
    assert (window.settle_seconds, window.db_settle_seconds) == (60.0, 0.0)
    assert window.admits(NOW - 1) == "settling" and window.admits(NOW - 1, committed=True) is None
    assert window.admits(NOW, committed=True) is None, "committed at this very moment: taken"


def test_window_bounds_apply_to_committed_completions_too():
    window = Window(now=NOW, settle_seconds=300, not_before=NOW - 5000, before=NOW - 2000)
    assert window.admits(NOW - 5001, committed=True) == "before_window"
    assert window.admits(NOW - 3000, committed=True) is None
    assert window.admits(NOW - 2000, committed=True) == "after_window"


def test_window_for_gives_every_run_type_both_settle_times():
    from types import SimpleNamespace

    from openclaw_nexus.runs import window_for

    start, end = datetime.fromtimestamp(NOW - 7200, UTC), datetime.fromtimestamp(NOW - 3600, UTC)
    for run_type, bounds in [
        ("asset_triggered", (None, None)),
        ("manual", (None, None)),
        ("scheduled", (None, NOW - 3600)),
        ("backfill", (NOW - 7200, NOW - 3600)),
    ]:
        window = window_for(SimpleNamespace(run_type=run_type), start, end, 2, 1.5)
        assert (window.settle_seconds, window.db_settle_seconds) == (120.0, 1.5), run_type
        assert (window.not_before, window.before) == bounds, run_type


# --- scan_agent ------------------------------------------------------------------------------------


def test_scan_returns_a_completed_session_with_exact_fields(state):
    state.agent(index={})
    path = state.transcript(f"{A}.jsonl", header_id=A)
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.to_dict() == {
        "agentId": "main",
        "sessions": [
            {
                "agentId": "main",
                "sessionId": A,
                "file": f"{A}.jsonl",
                "size": path.stat().st_size,
                "mtimeNs": mtime_ns(3600),
                "kind": "live",
                "store": "jsonl",
            }
        ],
        "era": "jsonl",
        "schema": None,
        "liveSessions": None,
        "conversations": None,  # a SQLite-era count
        "errors": [],
        "skipped": {"not_transcript": 1},  # sessions.json
    }


def test_scan_kinds_of_topics_forks_and_openclaw_archives(state):
    state.agent(index={})
    fork = f"2026-07-01T09-00-00-123Z_{A}.jsonl"
    state.transcript(fork, age=4000, header_id=A)
    state.transcript(f"{B}-topic-9.jsonl.reset.{TS}", age=3000)
    state.transcript(f"{C}.jsonl.deleted.{TS}.2", age=2000)
    scan = scan_agent(state.root, "main", WINDOW)
    assert [(s["file"], s["sessionId"], s["kind"]) for s in scan.sessions] == [
        (fork, A, "live"),
        (f"{B}-topic-9.jsonl.reset.{TS}", B, "reset"),
        (f"{C}.jsonl.deleted.{TS}.2", C, "deleted"),
    ]


def test_active_sessions_by_id_and_by_session_file_are_never_returned(state):
    state.agent(
        index={
            "agent:main:main": {"sessionId": A},
            "agent:main:topic": {"sessionId": "renamed", "sessionFile": f"/x/sessions/{B}-topic-3.jsonl"},
        }
    )
    state.transcript(f"{A}.jsonl", header_id=A)
    state.transcript(f"{A}-topic-1.jsonl")
    state.transcript(f"{B}-topic-3.jsonl")
    state.transcript(f"{C}.jsonl")
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == [f"{C}.jsonl"]
    assert scan.skipped == {"active": 3, "not_transcript": 1}
    assert scan.errors == []


def test_only_files_openclaw_appends_in_place_wait_for_the_settle_time(state):
    """JSONL-era transcripts are appended in place (no fsync, no rename; a ``.reset``/``.deleted`` name
    is a rename of one): they settle. OpenClaw 2026.8+ publishes its ``.zst`` and generation-named
    exports whole (a temporary file, fsynced, then linked or renamed): the committed settle time."""
    gen = "0123456789abcdef0123456789abcdef"
    state.agent(index={})
    appended = [f"{A}.jsonl", f"{B}.jsonl.deleted.{TS}", f"{C}.jsonl.reset.{TS}.2"]
    whole = [
        f"{A}.jsonl.deleted.{TS}.{gen}.zst",
        f"{B}.jsonl.deleted.{TS}.{gen}",
        f"{C}.jsonl.reset.{TS}.zst",
    ]
    for name in appended + whole:
        state.transcript(name, age=10, header_id=name.partition(".")[0])
    scan = scan_agent(state.root, "main", Window(now=NOW, settle_seconds=60, db_settle_seconds=0))
    assert files(scan) == sorted(whole)
    assert scan.skipped["settling"] == 3
    later = scan_agent(state.root, "main", Window(now=NOW + 45, settle_seconds=60, db_settle_seconds=0))
    assert files(later) == sorted(whole), "10 + 45 s: still under a minute"
    settled = scan_agent(state.root, "main", Window(now=NOW + 51, settle_seconds=60, db_settle_seconds=0))
    assert files(settled) == sorted(appended + whole)


def test_fresh_files_are_left_to_settle(state):
    state.agent(index={})
    state.transcript(f"{A}.jsonl", age=10)
    state.transcript(f"{B}.jsonl", age=299)
    state.transcript(f"{C}.jsonl", age=301)
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == [f"{C}.jsonl"]
    assert scan.skipped["settling"] == 2


def test_scan_honours_the_window(state):
    state.agent(index={})
    ages = {"too-old": 6000, "first": 5000, "middle": 3000, "edge": 2000, "too-new": 1000}
    for name, age in ages.items():
        state.transcript(f"{name}.jsonl", age=age)
    window = Window(now=NOW, settle_seconds=300, not_before=NOW - 5000, before=NOW - 2000)
    scan = scan_agent(state.root, "main", window)
    assert files(scan) == ["first.jsonl", "middle.jsonl"]
    assert scan.skipped == {"before_window": 1, "after_window": 2, "not_transcript": 1}


def test_session_dicts_are_sorted_oldest_first_then_by_file(state):
    state.agent(index={})
    state.transcript("m.jsonl", age=2000)
    state.transcript("z.jsonl", age=9000)
    state.transcript("b.jsonl", age=2000)
    state.transcript("a.jsonl", age=500)
    assert files(scan_agent(state.root, "main", WINDOW)) == ["z.jsonl", "b.jsonl", "m.jsonl", "a.jsonl"]


@pytest.mark.parametrize(
    ("lock", "lock_age", "locked"),
    [
        pytest.param({"pid": 1, "createdAt": iso(NOW - 60)}, 7200, True, id="iso-fresh"),
        pytest.param({"pid": 1, "createdAt": iso(NOW - 29 * 60)}, 7200, True, id="iso-29min"),
        pytest.param({"pid": 1, "createdAt": iso(NOW - 31 * 60)}, 10, False, id="iso-stale"),
        pytest.param({"pid": 1, "createdAt": (NOW - 60) * 1000}, 7200, True, id="epoch-ms-fresh"),
        pytest.param({"pid": 1, "createdAt": (NOW - 31 * 60) * 1000}, 10, False, id="epoch-ms-stale"),
        pytest.param({"pid": 1, "createdAt": NOW - 60}, 7200, True, id="epoch-seconds-fresh"),
        pytest.param({"pid": 1, "createdAt": NOW - 31 * 60}, 10, False, id="epoch-seconds-stale"),
        pytest.param(b"not json", 60, True, id="garbage-fresh-mtime"),
        pytest.param(b"not json", 31 * 60, False, id="garbage-stale-mtime"),
        pytest.param({"pid": 1}, 60, True, id="no-createdAt-fresh-mtime"),
        pytest.param({"createdAt": "yesterday"}, 31 * 60, False, id="bad-iso-stale-mtime"),
        pytest.param(b"", 60, True, id="empty-fresh-mtime"),
    ],
)
def test_transcript_lock(state, lock, lock_age, locked):
    sessions = state.agent(index={})
    state.transcript(f"{A}.jsonl", age=7200)
    lock_path = sessions / f"{A}.jsonl.lock"
    lock_path.write_bytes(lock if isinstance(lock, bytes) else json.dumps(lock).encode())
    set_age(lock_path, lock_age)
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == ([] if locked else [f"{A}.jsonl"])
    assert scan.skipped.get("locked", 0) == (1 if locked else 0)
    assert scan.skipped["not_transcript"] == 2  # sessions.json and the lock


def test_a_lock_guards_only_its_own_transcript(state):
    sessions = state.agent(index={})
    state.transcript(f"{A}.jsonl")
    state.transcript(f"{B}.jsonl")
    (sessions / f"{A}.jsonl.lock").write_text(json.dumps({"createdAt": iso(NOW)}))
    assert files(scan_agent(state.root, "main", WINDOW)) == [f"{B}.jsonl"]


def test_header_id_mismatch_is_an_error_and_the_file_is_left(state):
    state.agent(index={})
    state.transcript(f"{A}.jsonl", header_id="someone-else")
    state.transcript(f"{B}.jsonl", header_id=B)
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == [f"{B}.jsonl"]
    assert scan.errors == [
        {
            "agentId": "main",
            "sessionId": A,
            "file": f"{A}.jsonl",
            "stage": "discover",
            "reason": "header id 'someone-else' does not match the file name's session id; left in place",
        }
    ]
    assert (state.sessions() / f"{A}.jsonl").exists()


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b'{"type": "message", "id": "other"}\n',
        b"not json at all\n",
        b'{"type": "session"}\n',
        b"[1, 2]\n",
    ],
)
def test_transcripts_without_a_session_header_are_fine(state, content):
    state.agent(index={})
    state.transcript(f"{A}.jsonl", content=content)
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == [f"{A}.jsonl"]
    assert scan.errors == []


@pytest.mark.parametrize("index", [None, b"", b'{"agent:main:main": {"sessionId": "ab', b"[]"])
def test_untrustworthy_index_skips_the_whole_agent(state, index):
    sessions = state.agent(index=index)
    state.transcript(f"{A}.jsonl")
    state.transcript(f"{B}.jsonl")
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.sessions == []
    assert len(scan.errors) == 1
    error = scan.errors[0]
    assert error["file"] == "sessions.json"
    assert error["agentId"] == "main"
    assert error["stage"] == "discover"
    assert error["reason"].startswith(f"agent skipped: {sessions / 'sessions.json'}")


def test_an_untrustworthy_index_without_transcripts_is_not_read(state):
    state.agent(index=b"garbage")
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.to_dict() == {
        "agentId": "main",
        "era": "jsonl",
        "schema": None,
        "liveSessions": None,
        "conversations": None,
        "sessions": [],
        "errors": [],
        "skipped": {"not_transcript": 1},
    }


def test_agent_without_a_sessions_folder_is_nothing(state):
    (state.root / "agents" / "main").mkdir(parents=True)
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.to_dict() == {
        "agentId": "main",
        "era": "jsonl",
        "schema": None,
        "liveSessions": None,
        "conversations": None,
        "sessions": [],
        "errors": [],
        "skipped": {},
    }


@pytest.mark.parametrize("with_sessions_dir", [False, True])
def test_corrupt_sqlite_store_is_an_error_naming_it(state, with_sessions_dir):
    store = state.root / "agents" / "main" / "agent" / "openclaw-agent.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"SQLite format 3\x00" + b"\xff" * 100)
    if with_sessions_dir:
        state.agent(index={})
        state.transcript(f"{A}.jsonl.reset.2026-02-02T20-29-47.344Z")
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.era == "sqlite"
    assert scan.sessions == []
    assert len(scan.errors) == 1
    assert scan.errors[0]["reason"].startswith("agent skipped: ")
    assert str(store) in scan.errors[0]["reason"]
    assert scan.errors[0]["agentId"] == "main"


def test_empty_file_as_sqlite_store_wins_over_transcripts_and_is_an_error(state):
    # With a database file present the database is the authority: one that is no agent database
    # stops the agent rather than falling back to files OpenClaw no longer reads.
    state.agent(index={})
    state.transcript(f"{A}.jsonl")
    store = state.root / "agents" / "main" / "agent" / "openclaw-agent.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"")
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.sessions == []
    assert [e["reason"] for e in scan.errors] == [
        f"agent skipped: {store} is not an OpenClaw agent database (no agent schema version)"
    ]


def test_symlinked_transcript_is_not_followed(state, tmp_path):
    sessions = state.agent(index={})
    outside = tmp_path / "outside" / f"{A}.jsonl"
    outside.parent.mkdir()
    outside.write_text(json.dumps({"type": "session", "id": A}) + "\n")
    set_age(outside, 3600)
    (sessions / f"{A}.jsonl").symlink_to(outside)
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.sessions == []
    assert scan.errors == []
    assert scan.skipped == {"symlink": 1, "not_transcript": 1}


def test_a_directory_named_like_a_transcript_is_skipped(state):
    sessions = state.agent(index={})
    (sessions / f"{A}.jsonl").mkdir()
    set_age(sessions / f"{A}.jsonl", 3600)
    scan = scan_agent(state.root, "main", WINDOW)
    assert scan.sessions == []
    assert scan.skipped["not_regular_file"] == 1


def test_a_transcript_renamed_during_the_scan_is_skipped_not_fatal(state, monkeypatch):
    sessions = state.agent(index={})
    state.transcript(f"{A}.jsonl")
    state.transcript(f"{B}.jsonl")
    real_scandir = os.scandir

    class ScandirThenRename:
        """Lists the folder, then OpenClaw renames A (a reset) before discovery gets to stat it."""

        def __init__(self, path):
            self.inner = real_scandir(path)
            self.path = Path(path)

        def __enter__(self):
            entries = list(self.inner)
            if self.path == sessions:
                (sessions / f"{A}.jsonl").rename(sessions / f"{A}.jsonl.reset.{TS}")
            return iter(entries)

        def __exit__(self, *exc):
            self.inner.close()

    monkeypatch.setattr(file_store.os, "scandir", ScandirThenRename)
    scan = scan_agent(state.root, "main", WINDOW)
    assert files(scan) == [f"{B}.jsonl"]
    assert scan.skipped["vanished"] == 1
    assert scan.errors == []


def test_archived_transcripts_are_replays_only_when_asked(state):
    sessions = state.agent(index={"agent:main:main": {"sessionId": C}})
    state.transcript(f"{B}.jsonl", age=1000)
    state.transcript(f"archive/{A}.jsonl", age=5000)
    state.transcript(f"archive/{A}+1.jsonl", age=4000)
    state.transcript(f"archive/{C}.jsonl", age=4000)  # active again: not replayed
    state.transcript(f"archive/{B}.jsonl", age=100)  # too fresh
    state.transcript("archive/notes.txt", age=4000)
    (sessions / "archive" / f"{B}+1.jsonl").symlink_to(sessions / f"{B}.jsonl")

    assert files(scan_agent(state.root, "main", WINDOW)) == [f"{B}.jsonl"]

    scan = scan_agent(state.root, "main", WINDOW, include_archived=True)
    assert [(s["file"], s["sessionId"], s["kind"], s["mtimeNs"]) for s in scan.sessions] == [
        (f"archive/{A}.jsonl", A, "replay", mtime_ns(5000)),
        (f"archive/{A}+1.jsonl", A, "replay", mtime_ns(4000)),
        (f"{B}.jsonl", B, "live", mtime_ns(1000)),
    ]
    assert scan.errors == []


def test_a_symlinked_archive_folder_is_not_replayed(state, tmp_path):
    state.agent(index={})
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / f"{A}.jsonl").write_text("{}\n")
    set_age(elsewhere / f"{A}.jsonl", 5000)
    (state.sessions() / "archive").symlink_to(elsewhere)
    assert files(scan_agent(state.root, "main", WINDOW, include_archived=True)) == []


def test_replays_without_live_transcripts(state):
    state.agent(index={})
    state.transcript(f"archive/{A}.jsonl", age=5000)
    scan = scan_agent(state.root, "main", WINDOW, include_archived=True)
    assert files(scan) == [f"archive/{A}.jsonl"]


# --- list_agents -----------------------------------------------------------------------------------


def make_agents(state: State, *names: str) -> None:
    for name in names:
        (state.root / "agents" / name).mkdir(parents=True)


def test_list_all_agent_folders(state):
    make_agents(state, "zeta", "main", "Ops.bot_2")
    (state.root / "agents" / "README").write_text("not an agent")
    (state.root / "agents" / ".git").mkdir()
    (state.root / "agents" / ".DS_Store").write_text("")
    assert list_agents(state.root) == (["Ops.bot_2", "main", "zeta"], [])
    assert list_agents(state.root, []) == (["Ops.bot_2", "main", "zeta"], [])


def test_list_requested_agents(state):
    make_agents(state, "zeta", "main", "ops")
    assert list_agents(state.root, ["zeta", "main", "zeta"]) == (["main", "zeta"], [])


def test_requested_missing_agent_is_an_error(state):
    make_agents(state, "main")
    agents, errors = list_agents(state.root, ["main", "ghost"])
    assert agents == ["main"]
    assert errors == [
        {
            "agentId": "ghost",
            "sessionId": None,
            "file": None,
            "stage": "discover",
            "reason": f"agent 'ghost' has no folder under {state.root / 'agents'}",
        }
    ]


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../main", "main/..", "a..b", ""])
def test_unsafe_agent_names_are_refused(state, name):
    make_agents(state, "main", "a")
    (state.root / "agents" / "a" / "b").mkdir()
    agents, errors = list_agents(state.root, [name, "main"])
    assert agents == ["main"]
    assert len(errors) == 1
    assert errors[0]["agentId"] == name
    assert errors[0]["reason"] == f"agent name {name!r} is not a plain folder name"


def test_agent_folder_symlinked_outside_the_state_dir_is_refused(state, tmp_path):
    make_agents(state, "main")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "sessions").mkdir(parents=True)
    (state.root / "agents" / "evil").symlink_to(elsewhere, target_is_directory=True)
    for requested in (None, ["evil", "main"]):
        agents, errors = list_agents(state.root, requested)
        assert agents == ["main"]
        assert [(e["agentId"], e["stage"]) for e in errors] == [("evil", "discover")]
        assert "resolves outside the state dir" in errors[0]["reason"]
        assert str(state.root / "agents" / "evil") in errors[0]["reason"]


def test_state_dir_without_agents_folder(state):
    state.root.mkdir()
    agents, errors = list_agents(state.root)
    assert agents == []
    assert len(errors) == 1
    assert errors[0]["agentId"] == "*"
    assert f"state dir {state.root} has no agents/ folder" in errors[0]["reason"]


# --- select_sessions and resolve_transcript --------------------------------------------------------


def session(agent: str, file: str, mtime: int) -> dict:
    return {
        "agentId": agent,
        "sessionId": file[:-6],
        "file": file,
        "size": 1,
        "mtimeNs": mtime,
        "kind": "live",
    }


SCANS = [
    {"agentId": "b", "sessions": [session("b", "b2.jsonl", 10), session("b", "b1.jsonl", 30)], "errors": []},
    {"agentId": "a", "sessions": [session("a", "a1.jsonl", 10), session("a", "a2.jsonl", 20)], "errors": []},
    {"agentId": "c", "sessions": [], "errors": []},
]


@pytest.mark.parametrize(
    ("limit", "expected", "deferred"),
    [
        (10, [("a", "a1.jsonl"), ("b", "b2.jsonl"), ("a", "a2.jsonl"), ("b", "b1.jsonl")], 0),
        (4, [("a", "a1.jsonl"), ("b", "b2.jsonl"), ("a", "a2.jsonl"), ("b", "b1.jsonl")], 0),
        (3, [("a", "a1.jsonl"), ("b", "b2.jsonl"), ("a", "a2.jsonl")], 1),
        (1, [("a", "a1.jsonl")], 3),
        (0, [], 4),
    ],
)
def test_select_sessions_oldest_first_across_agents_with_a_cap(limit, expected, deferred):
    selected, left = select_sessions(SCANS, limit)
    assert [(s["agentId"], s["file"]) for s in selected] == expected
    assert left == deferred


@pytest.mark.parametrize(
    ("agent", "file"),
    [
        ("main", "../x"),
        ("main", "../../../etc/passwd"),
        ("main", "a/b/c"),
        ("main", "archive/../x"),
        ("main", "other/x"),
        ("main", "./x"),
        ("main", ""),
        ("main", "archive/"),
        ("main", "/etc/passwd"),
        ("..", "x.jsonl"),
        ("a/b", "x.jsonl"),
        ("a..b", "x.jsonl"),
    ],
)
def test_resolve_transcript_refuses_escapes(tmp_path, agent, file):
    with pytest.raises(ValueError, match="refusing transcript path"):
        resolve_transcript(tmp_path, {"agentId": agent, "file": file})


@pytest.mark.parametrize("file", [f"{A}.jsonl", f"archive/{A}+1.jsonl"])
def test_resolve_transcript(tmp_path, file):
    path = resolve_transcript(tmp_path, {"agentId": "main", "file": file})
    assert path == tmp_path / "agents" / "main" / "sessions" / file


def nemoclaw_sandbox(tmp_path: Path) -> Path:
    """NemoClaw's sandbox: ``/sandbox/.openclaw/agents`` links to ``/sandbox/.openclaw-data/agents``."""
    sandbox = tmp_path / "sandbox"
    data_agents = sandbox / ".openclaw-data" / "agents"
    (data_agents / "main" / "sessions").mkdir(parents=True)
    (sandbox / ".openclaw").mkdir()
    (sandbox / ".openclaw" / "agents").symlink_to(data_agents, target_is_directory=True)
    return sandbox / ".openclaw"


def test_nemoclaw_agents_link_is_followed_once(tmp_path):
    root = nemoclaw_sandbox(tmp_path)
    sessions = root / "agents" / "main" / "sessions"
    (sessions / "sessions.json").write_text("{}")
    (sessions / f"{A}.jsonl").write_text(json.dumps({"type": "session", "id": A}) + "\n")
    set_age(sessions / f"{A}.jsonl", 3600)
    agents, errors = list_agents(root)
    assert (agents, errors) == (["main"], [])
    scan = scan_agent(root, "main", WINDOW)
    assert (files(scan), scan.errors) == ([f"{A}.jsonl"], [])


def test_nemoclaw_escape_rules_apply_below_the_resolved_agents_folder(tmp_path):
    root = nemoclaw_sandbox(tmp_path)
    data_agents = tmp_path / "sandbox" / ".openclaw-data" / "agents"
    # Inside the state dir, but outside where agents/ resolves: still an escape.
    (root / "elsewhere" / "sessions").mkdir(parents=True)
    (data_agents / "escape-agent").symlink_to(root / "elsewhere", target_is_directory=True)
    (data_agents / "escape-sessions").mkdir()
    (data_agents / "escape-sessions" / "sessions").symlink_to(tmp_path, target_is_directory=True)
    agents, errors = list_agents(root)
    assert agents == ["escape-sessions", "main"]
    assert [e["agentId"] for e in errors] == ["escape-agent"]
    assert "resolves outside the state dir's agents/ folder (" in errors[0]["reason"]
    assert str(data_agents) in errors[0]["reason"]
    scan = scan_agent(root, "escape-sessions", WINDOW)
    assert scan.sessions == []
    assert "resolves outside the state dir's agents/ folder" in scan.errors[0]["reason"]
