"""Generate a small OpenClaw state dir (JSONL era) for the demo and the tests.

    python tools/demo/sample_state.py DIR [--agents main,research] [--completed 3] [--seed 7]

Per agent: active sessions listed in ``sessions.json`` (with ``sessionFile``), completed transcripts
in every form OpenClaw writes (plain, topic, fork, ``.reset.<ts>``, ``.deleted.<ts>``), and the side
files that must never be touched (locks, backups, checkpoints, trajectories, index backups).
Completed transcripts get an mtime an hour in the past so the default settle time admits them.
Prints a JSON summary of what it made.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
import uuid
from pathlib import Path

HOUR = 3600


def transcript_lines(session_id: str, rng: random.Random, turns: int = 3) -> str:
    """A transcript: a session header, then user/assistant messages with some non-ASCII text."""
    header = {
        "type": "session",
        "version": 3,
        "id": session_id,
        "timestamp": "2026-07-01T09:00:00.000Z",
        "cwd": "/home/claw",
    }
    lines = [json.dumps(header)]
    for turn in range(turns):
        lines.append(
            json.dumps(
                {
                    "type": "message",
                    "id": f"m{turn}u",
                    "message": {"role": "user", "content": f'question {turn}: café ✓ "quoted"'},
                },
                ensure_ascii=False,
            )
        )
        lines.append(
            json.dumps(
                {
                    "type": "message",
                    "id": f"m{turn}a",
                    "message": {"role": "assistant", "content": f"answer {rng.random():.6f}\t\\ 日本"},
                },
                ensure_ascii=False,
            )
        )
    return "\n".join(lines) + "\n"


class LiveJsonlAgent:
    """A JSONL-era agent's live sessions, written as OpenClaw <= 2026.7 writes them while agents chat: one
    transcript per session appended in place, ``sessions.json`` replaced atomically on every turn. Safe
    to drive from several threads."""

    def __init__(self, sessions: Path) -> None:
        self.sessions = sessions
        self.live: dict[str, str] = {}  # session key -> session id
        self.lock = threading.Lock()

    def _write_index(self) -> None:
        index = {
            key: {
                "sessionId": sid,
                "updatedAt": int(time.time() * 1000),
                "sessionFile": str(self.sessions / f"{sid}.jsonl"),
            }
            for key, sid in self.live.items()
        }
        temporary = self.sessions / "sessions.json.tmp"
        temporary.write_text(json.dumps(index, indent=2))
        os.replace(temporary, self.sessions / "sessions.json")  # OpenClaw replaces its index atomically

    def start(self, key: str) -> str:
        """A new session under ``key``: its transcript and its index entry. Its id."""
        with self.lock:
            sid = str(uuid.uuid4())
            (self.sessions / f"{sid}.jsonl").write_text(transcript_lines(sid, random.Random(sid)))
            self.live[key] = sid
            self._write_index()
            return sid

    def append(self, key: str) -> None:
        """A turn: one line appended in place; the entry's ``updatedAt`` moves."""
        with self.lock:
            line = {"type": "message", "message": {"role": "user", "content": f"turn at {time.time():.3f}"}}
            with (self.sessions / f"{self.live[key]}.jsonl").open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
            self._write_index()

    def end(self, key: str) -> tuple[str, float]:
        """The session ends: its entry leaves the index (its transcript stays where it is). Its id and that
        moment (epoch s)."""
        with self.lock:
            sid = self.live.pop(key)
            self._write_index()
            return sid, time.time()


def _write(path: Path, content: str, mtime: float) -> None:
    path.write_text(content, encoding="utf-8")
    os.utime(path, (mtime, mtime))


def make_agent(sessions: Path, agent_id: str, completed: int, rng: random.Random, now: float) -> dict:
    """One agent's sessions folder; returns what it holds: completed and active files."""
    sessions.mkdir(parents=True, exist_ok=True)
    old = now - HOUR
    made: dict[str, list] = {"completed": [], "active": [], "untouchable": []}

    index = {}
    for n, key in enumerate([f"agent:{agent_id}:main", f"agent:{agent_id}:telegram:direct:42"]):
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        path = sessions / f"{sid}.jsonl"
        _write(path, transcript_lines(sid, rng), old - n)
        index[key] = {
            "sessionId": sid,
            "updatedAt": int(now * 1000),
            "sessionFile": str(path),
            "chatType": "direct",
            "inputTokens": 12,
        }
        made["active"].append(path.name)
        # A topic file of an active session is active too.
        topic = sessions / f"{sid}-topic-7.jsonl"
        _write(topic, transcript_lines(sid, rng), old)
        made["active"].append(topic.name)
    (sessions / "sessions.json").write_text(json.dumps(index, indent=2))

    forms = [
        "{id}.jsonl",
        "{id}.jsonl.reset.2026-02-02T20-29-47.344Z",
        "{id}-topic-12.jsonl",
        "2026-07-01T09-00-00-123Z_{id}.jsonl",
        "{id}.jsonl.deleted.2026-03-01T10-00-00.000Z",
    ]
    for n in range(completed):
        sid = str(uuid.UUID(int=rng.getrandbits(128)))
        name = forms[n % len(forms)].format(id=sid)
        _write(sessions / name, transcript_lines(sid, rng, turns=2 + n % 3), old - 60 * (completed - n))
        made["completed"].append({"file": name, "sessionId": sid})

    some = made["completed"][0]["sessionId"] if made["completed"] else "0" * 8
    for name in [
        f"{some}.trajectory.jsonl",
        f"{some}.trajectory-path.json",
        f"{some}.checkpoint.{uuid.UUID(int=rng.getrandbits(128))}.jsonl",
        "sessions.json.bak.2026-01-01T00-00-00.000Z",
        f"{some}.jsonl.bak-1",
        "notes.txt",
    ]:
        _write(sessions / name, "{}\n", old)
        made["untouchable"].append(name)
    return made


def make_state(root: Path, agents: list[str], completed: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    now = time.time()
    summary = {}
    for agent_id in agents:
        summary[agent_id] = make_agent(root / "agents" / agent_id / "sessions", agent_id, completed, rng, now)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--agents", default="main,research")
    parser.add_argument("--completed", type=int, default=3, help="completed sessions per agent")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    summary = make_state(args.state_dir, args.agents.split(","), args.completed, args.seed)
    json.dump(summary, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
