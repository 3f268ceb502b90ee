"""The distribution as a user gets it: built from the checkout (sdist, then the wheel from the sdist), and
installed into an Airflow at the lowest supported release, in venvs cached by tools/adoption."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tools.stacks import adoption
from tools.stacks.sandbox import API_KEY, migrate
from tools.standins.nexus import NexusStandin


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(sdist, wheel) of the checkout."""
    return adoption.build_distributions(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def wheel(dists) -> Path:
    return dists[1]


@pytest.fixture(scope="session")
def lowest_venv(wheel: Path) -> Path:
    """Airflow and providers-http at the lowest supported releases, the wheel, and the test tools. Airflow
    with its ``statsd`` extra, as a deployment that sends its metrics to StatsD installs it."""
    return adoption.cached_venv(
        "lowest",
        [
            f"apache-airflow[statsd]=={adoption.LOWEST_AIRFLOW}",
            f"apache-airflow-providers-http=={adoption.LOWEST_HTTP_PROVIDER}",
            wheel,
            *adoption.TEST_TOOLS,
        ],
        adoption.LOWEST_AIRFLOW_RESOLVED_AT,
    )


@pytest.fixture(scope="session")
def lowest_template(lowest_venv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A metadata DB migrated by the lowest Airflow, copied into each test's AIRFLOW_HOME."""
    home = tmp_path_factory.mktemp("airflow-lowest-template")
    migrate(home, lowest_venv / "bin")
    return home


@pytest.fixture
def user_home(lowest_template: Path, tmp_path: Path) -> Path:
    """An existing Airflow's home: its migrated DB, empty plugins and DAGs folders (nothing of ours)."""
    home = tmp_path / "airflow"
    (home / "dags").mkdir(parents=True)
    (home / "plugins").mkdir()
    shutil.copy(lowest_template / "airflow.db", home / "airflow.db")
    return home


@pytest.fixture
def nexus(tmp_path: Path):
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as server:
        yield server
