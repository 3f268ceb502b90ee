"""The demo end to end, as the README's first command runs it (``python -m tools.demo``, after
``scripts/demo.sh`` set up the venv): on the state dir kept in tools/demo/data (written by OpenClaw 2026.9.6
and 2026.7.35), one real DAG run against the Nexus stand-in. Its printed account is held to what reached
the stand-in, body by body, and to the chats OpenClaw was driven through when the state was built
(``tools/demo/rebuild.py``): which conversations were sent and what closed each, which whole sessions were
sent and how they ended, and what stayed with OpenClaw.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tools.demo.state import DATA
from tools.stacks.sandbox import ROOT

SENT = re.compile(r"^    (\S+)\s+(.+?)\s+(\d+) bytes  sha256 ([0-9a-f]{12})$")
# What each agent's sent lines say, as (key, account): the chats of tools/demo/rebuild.py (main: a turn,
# /new, a turn, /reset, a turn; talk: a turn, /new, a turn, archived; gone: a turn, deleted; a cron job run
# twice) and the JSONL-era agent of tools/openclaw/legacy.py (main reset, gone deleted, work rolled over
# when idle, shelved archived).
WANT_SENT = {
    "chat": Counter(
        {
            ("agent:chat:main", "conversation 1 of 3, closed by /new"): 1,
            ("agent:chat:main", "conversation 2 of 3, closed by /reset"): 1,
            ("agent:chat:talk", "conversation 1 of 2, closed by /new"): 1,
            ("agent:chat:talk", "conversation 2 of 2, closed when the session was archived"): 1,
            (
                "agent:chat:gone",
                "whole session, deleted (OpenClaw's deletion export .zst)",
            ): 1,
            ("agent:chat:cron:…", "whole session, ended by the cron job's next run"): 1,
        }
    ),
    "main": Counter(
        {
            ("agent:main:main", "whole session, reset (renamed .jsonl.reset.<time>)"): 1,
            ("agent:main:gone", "whole session, deleted (renamed .jsonl.deleted.<time>)"): 1,
            ("agent:main:work", "whole session, ended by an idle rollover"): 1,
            (
                "agent:main:shelved",
                "whole session, archived (archivedAt in sessions.json)",
            ): 1,
        }
    ),
}
WANT_STAYED = {
    "chat": [("agent:chat:main", "conversation 3 of 3: open"), ("agent:chat:cron:…", "live session")],
    "main": [("agent:main:main", "live session"), ("agent:main:work", "live session")],
}


def parse(output: str) -> dict[str, dict]:
    """Per agent: its era, its sent lines (key, account, size, sha256 prefix) and its stayed lines."""
    agents: dict[str, dict] = {}
    agent = part = None
    for line in output.splitlines():
        header = re.match(r"^Agent (\S+): (JSONL era|SQLite era)$", line)
        if header:
            agent = header.group(1)
            agents[agent] = {"era": header.group(2), "said": None, "sent": [], "stayed": []}
            continue
        if agent is None:
            continue
        if line.startswith("  discover log: "):
            agents[agent]["said"] = line.removeprefix("  discover log: ")
            part = "said"
        elif part == "said" and line.startswith("    "):
            agents[agent]["said"] += " " + line.strip()  # the log line, wrapped
        elif line.startswith("  Reached Nexus"):
            part = "sent"
        elif line.startswith("  Stayed with OpenClaw"):
            part = "stayed"
        elif part == "sent" and (found := SENT.match(line)):
            key, how, size, sha = found.groups()
            key = re.sub(r":cron:[0-9a-f]{8}…$", ":cron:…", key)
            agents[agent]["sent"].append((key, how, int(size), sha))
        elif part == "stayed" and line.startswith("    "):
            key, how = line.strip().split(maxsplit=1)
            agents[agent]["stayed"].append((re.sub(r":cron:[0-9a-f]{8}…$", ":cron:…", key), how))
        elif not line.strip():
            agent = part = None
    return agents


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    kept = {str(p.relative_to(DATA)): p.read_bytes() for p in DATA.rglob("*") if p.is_file()}
    done = subprocess.run(
        [sys.executable, "-m", "tools.demo", "--dir", str(root)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    after = {str(p.relative_to(DATA)): p.read_bytes() for p in DATA.rglob("*") if p.is_file()}
    assert after == kept, "the demo changed the state kept in the repository"
    bodies = []
    for line in (root / "nexus" / "requests.jsonl").read_text().splitlines():
        record = json.loads(line)
        if record["status"] == 201:
            payload = json.loads((root / "nexus" / "bodies" / record["bodyFile"]).read_bytes())
            bodies.append(payload)
    return root, done.stdout, parse(done.stdout), bodies


def test_each_agent_is_shown_in_its_era(demo):
    _, output, agents, _ = demo
    assert {agent: entry["era"] for agent, entry in agents.items()} == {
        "chat": "SQLite era",
        "main": "JSONL era",
    }
    # The discover task's own line for each agent is shown beside it (its wording is the package's).
    assert agents["chat"]["said"].startswith("agent chat (") and "23" in agents["chat"]["said"]
    assert agents["main"]["said"].startswith("agent main (")
    assert "JobResult: Uploaded 10 sessions across 2 agents" in output


def test_what_reached_nexus_is_each_closed_conversation_and_each_ended_session(demo):
    _, _, agents, _ = demo
    for agent, want in WANT_SENT.items():
        assert Counter((key, how) for key, how, _, _ in agents[agent]["sent"]) == want, agent


def test_every_line_sent_is_one_transcript_the_standin_accepted(demo):
    """Each sent line names the size and sha256 of exactly one transcript Nexus accepted from that agent,
    and every accepted transcript has its line."""
    _, _, agents, bodies = demo
    received = Counter(
        (
            body["agentId"],
            len(body["transcript"].encode()),
            hashlib.sha256(body["transcript"].encode()).hexdigest()[:12],
        )
        for body in bodies
    )
    printed = Counter(
        (agent, size, sha) for agent, entry in agents.items() for _, _, size, sha in entry["sent"]
    )
    assert printed == received
    assert sum(received.values()) == 10


def _body(demo, agent: str, key: str, how: str) -> list[dict]:
    """The transcript the stand-in received for one sent line, as its events."""
    _, _, agents, bodies = demo
    ((size, sha),) = [(s, h) for k, w, s, h in agents[agent]["sent"] if (k, w) == (key, how)]
    for body in bodies:
        data = body["transcript"].encode()
        if body["agentId"] == agent and hashlib.sha256(data).hexdigest()[:12] == sha and len(data) == size:
            return [json.loads(line) for line in data.splitlines()]
    raise AssertionError(f"no body for {agent} {key} {how}")


def _texts(events: list[dict]) -> str:
    return json.dumps([e.get("message") for e in events if e.get("type") == "message"], ensure_ascii=False)


def test_the_conversations_sent_hold_what_was_said_in_them_and_the_open_one_was_not_sent(demo):
    """Conversation 1 of the chat holds its first message and no reset event; conversation 2 starts with
    the session header and the /new reset event and holds the second message; the third message, in the
    open conversation, reached Nexus in no transcript."""
    first = _body(demo, "chat", "agent:chat:main", "conversation 1 of 3, closed by /new")
    second = _body(demo, "chat", "agent:chat:main", "conversation 2 of 3, closed by /reset")
    assert first[0]["type"] == second[0]["type"] == "session" and first[0]["id"] == second[0]["id"]
    assert not [e for e in first if e.get("type") == "reset"]
    assert "Hello! First conversation." in _texts(first)
    assert second[1]["type"] == "reset" and second[1]["reason"] == "new"
    assert [e["reason"] for e in second if e.get("type") == "reset"] == ["new"]
    assert "A second conversation." in _texts(second) and "Hello!" not in _texts(second)
    archived = _body(
        demo, "chat", "agent:chat:talk", "conversation 2 of 2, closed when the session was archived"
    )
    assert archived[1]["reason"] == "new" and "Its second conversation." in _texts(archived)
    _, _, _, bodies = demo
    assert not [b for b in bodies if "A third one, still open." in b["transcript"]]


def test_what_stayed_with_openclaw_and_why(demo):
    _, _, agents, _ = demo
    for agent, want in WANT_STAYED.items():
        stayed = agents[agent]["stayed"]
        assert len(stayed) == len(want), (agent, stayed)
        for (key, how), (want_key, want_how) in zip(sorted(stayed), sorted(want), strict=True):
            assert key == want_key and how.startswith(want_how), (agent, key, how)


def test_openclaws_database_is_unchanged_and_each_sent_item_has_its_archive_copy(demo):
    root, _, agents, _ = demo
    state = root / "openclaw" / "agents"
    database = Path("agents") / "chat" / "agent" / "openclaw-agent.sqlite"
    assert (root / "openclaw" / database).read_bytes() == (DATA / "state" / database).read_bytes()
    for agent, entry in agents.items():
        copies = [p for p in (state / agent / "sessions" / "archive").glob("*.jsonl")]
        assert len(copies) == len(entry["sent"]), agent
    # Read from OpenClaw's database, written by the package: owner-only. (A JSONL-era transcript is moved
    # into the archive as the file OpenClaw wrote, with OpenClaw's mode.)
    copies = (state / "chat" / "sessions" / "archive").glob("*.jsonl")
    assert {p.stat().st_mode & 0o777 for p in copies} == {0o600}
