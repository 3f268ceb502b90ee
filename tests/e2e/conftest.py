from __future__ import annotations

from pathlib import Path

import pytest

from tools.nexus_standin import NexusStandin
from tools.sandbox import API_KEY, migrate, new_sandbox


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
