"""What a session store answers for one agent (``Store``), below the stores that implement it
(``jsonl_store.JsonlStore``, ``sqlite_store.SqliteStore``) and the dispatcher that picks one
(``stores.store_for``). Airflow-free.

Its own module rather than ``discovery``: it names ``archive.ArchiveOutcome`` and ``staging.Transcript``,
and both of those import ``discovery``.
"""

from __future__ import annotations

from typing import Any, Protocol

from openclaw_nexus import archive
from openclaw_nexus.discovery import AgentScan, Session, Window
from openclaw_nexus.staging import Transcript


class Store(Protocol):
    era: str

    def find(self, window: Window, *, include_archived: bool = False) -> AgentScan: ...

    def open_transcript(self, session: Session) -> Transcript: ...

    def record_archived(self, session: Session, receipt: dict[str, Any]) -> archive.ArchiveOutcome: ...
