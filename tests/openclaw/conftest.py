"""Fixtures shared by the store tests: a fresh copy per test of the agent database OpenClaw 2026.9.6 itself
wrote (its doctor migrating a JSONL-era agent; ``migrated_template`` in tests/conftest.py, built once per
test session)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def state(migrated_template, tmp_path) -> Path:
    template, _ = migrated_template
    root = tmp_path / "state"
    shutil.copytree(template, root, symlinks=True)
    return root
