from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from tools.stacks.sandbox import API_KEY, migrate, new_sandbox
from tools.standins.nexus import NexusStandin

DATABASE = Path("agent") / "openclaw-agent.sqlite"


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One `airflow db migrate` per test session; each test gets a copy of its DB."""
    home = tmp_path_factory.mktemp("airflow-template")
    migrate(home)
    return home


@pytest.fixture
def nexus(tmp_path: Path):
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as server:
        yield server


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "openclaw"


@pytest.fixture
def sandbox(template_home: Path, tmp_path: Path, state_dir: Path, nexus):
    return new_sandbox(template_home, tmp_path / "airflow", state_dir, nexus.url)


@pytest.fixture
def migrated(migrated_template, state_dir) -> dict:
    """A fresh copy of the migrated state dir (``migrated_template``, tests/conftest.py; no OpenClaw process
    has it open), and what it holds."""
    template, made = migrated_template
    shutil.copytree(template, state_dir, symlinks=True)
    agent = state_dir / "agents" / "main"
    with closing(sqlite3.connect(f"file:{agent / DATABASE}?mode=ro", uri=True)) as db:
        recovered = [
            sid
            for (sid,) in db.execute(
                "SELECT current_session_id FROM session_nodes WHERE archived_at IS NOT NULL ORDER BY 1"
            )
        ]
        live = [
            sid
            for (sid,) in db.execute("SELECT current_session_id FROM session_nodes WHERE archived_at IS NULL")
        ]
    leftovers = sorted(p.name for p in (agent / "sessions").iterdir() if ".jsonl.reset." in p.name)
    return {"agent": agent, "recovered": recovered, "live": live, "leftovers": leftovers, "made": made}


def database_files(agent: Path) -> dict[str, bytes]:
    """The agent database's files (``openclaw-agent.sqlite`` and its ``-wal``/``-shm``), as bytes."""
    return {p.name: p.read_bytes() for p in sorted((agent / "agent").glob("openclaw-agent.sqlite*"))}


def assert_database_untouched(before: dict[str, bytes], after: dict[str, bytes]) -> None:
    """OpenClaw's database files are byte-identical. When OpenClaw had closed it (a clean shutdown removes
    ``-wal`` and ``-shm``), SQLite recreates those two on any read, OpenClaw's own included: an empty
    ``-wal`` and a fresh ``-shm`` may appear, nothing else."""
    assert {name: after.get(name) for name in before} == before, "a file of OpenClaw's database changed"
    created = set(after) - set(before)
    assert created <= {"openclaw-agent.sqlite-wal", "openclaw-agent.sqlite-shm"}, created
    assert not after.get("openclaw-agent.sqlite-wal"), "nothing was written through a WAL"
