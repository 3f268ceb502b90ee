"""Fixtures shared by the store tests: an agent database written by OpenClaw 2026.9.6 itself (its doctor
migrates a JSONL-era agent), built once per test session, and a fresh copy of it per test."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.demo.sample_state import make_state
from tools.openclaw.fixture import OpenClaw


@pytest.fixture(scope="session")
def template(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store") / "state"
    make_state(root, ["main"], completed=3)
    OpenClaw.installed().run(
        ["doctor", "--session-sqlite", "import", "--session-sqlite-all-agents"], state_dir=root
    )
    return root


@pytest.fixture
def state(template, tmp_path) -> Path:
    root = tmp_path / "state"
    shutil.copytree(template, root, symlinks=True)
    return root
