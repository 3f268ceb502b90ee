"""tests/celery: PostgreSQL and Redis must be up on this machine; scripts/services.sh starts them if not
(the same script .ci/run can call), once per test session."""

from __future__ import annotations

import pytest

from tools.stacks.celery_stack import ensure_services


@pytest.fixture(scope="session", autouse=True)
def services() -> None:
    """PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379, started if they are down."""
    ensure_services()
