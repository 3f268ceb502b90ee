"""OpenClaw 2026.8+ (SQLite era): read-only access to an agent's database,
``agents/<id>/agent/openclaw-agent.sqlite``. Airflow-free.

Owns how the database is opened and read, and nothing of what it means: the file's place (``DATABASE``),
the schemas this package reads, the busy timeout, the errors every SQLite module raises (``StoreError``,
``SessionNotCompleted``), and the refusal to create side files another user would own.

Read the way OpenClaw's own read-only readers do: a ``mode=ro`` URI, ``PRAGMA query_only``, a busy
timeout, and short read transactions. Nothing here writes, migrates, checkpoints, vacuums or copies the
database. The live set and the scan are ``sqlite_live``'s, the transcript exports ``sqlite_export``'s,
the agent's store ``sqlite_store``'s.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

DATABASE = Path("agent") / "openclaw-agent.sqlite"
# Agent schemas this package reads: 19 is OpenClaw 2026.8.1 (the first stable SQLite release), 23 is
# 2026.9.6, the release its tests run. A newer schema is refused until it has been tested.
OLDEST_SCHEMA = 19
NEWEST_TESTED_SCHEMA = 23
DEFAULT_BUSY_TIMEOUT_SECONDS = 5.0


class StoreError(Exception):
    """The agent's database cannot be read as it is: locked, corrupt, or of an unknown schema."""


class SessionNotCompleted(StoreError):
    """The session is live again, or gone, since discovery: it is not exported."""


def database_of(agent_dir: Path) -> Path:
    return agent_dir / DATABASE


@contextmanager
def connect(path: Path, busy_timeout: float = DEFAULT_BUSY_TIMEOUT_SECONDS) -> Iterator[sqlite3.Connection]:
    """A read-only connection; ``StoreError`` names the file when it cannot be opened or read."""
    _refuse_foreign_side_files(path)
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    try:
        connection = sqlite3.connect(uri, uri=True, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open read-only: {exc}") from None
    with closing(connection):
        connection.text_factory = bytes  # the stored bytes, exactly; UTF-8 is checked by the upload
        try:
            connection.execute("PRAGMA query_only = ON")
            connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            yield connection
        except sqlite3.OperationalError as exc:
            raise StoreError(_explain(path, exc, busy_timeout)) from None
        except sqlite3.DatabaseError as exc:  # "file is not a database", "database disk image is malformed"
            raise StoreError(f"{path}: {exc}; nothing of this agent is read") from None


def _refuse_foreign_side_files(path: Path) -> None:
    """A WAL database whose ``-wal``/``-shm`` are absent gets them created by any reader, read-only or
    not. SQLite gives them the database's owner when it runs as root; as another user they would be
    ours, and OpenClaw could no longer open its own database. Refuse that case instead."""
    try:
        with path.open("rb") as handle:
            header = handle.read(20)
        owner = path.stat().st_uid
    except OSError as exc:
        raise StoreError(f"{path}: cannot read: {exc.strerror or exc}") from None
    in_wal_mode = len(header) == 20 and header[18] == 2
    absent = [side for side in ("-wal", "-shm") if not Path(f"{path}{side}").exists()]
    if in_wal_mode and absent and os.geteuid() not in (0, owner):
        raise StoreError(
            f"{path}: its {' and '.join(absent)} file is absent (OpenClaw closed it) and this worker runs "
            f"as uid {os.geteuid()}, not the database owner's uid {owner}: reading would create it owned by "
            "this worker and lock OpenClaw out; run the file tasks as OpenClaw's user"
        )


def _explain(path: Path, exc: sqlite3.Error, busy_timeout: float) -> str:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return f"{path}: locked by another writer for more than {busy_timeout:g} s ({text}); try a later run"
    return f"{path}: {text}"


@contextmanager
def read_transaction(connection: sqlite3.Connection, timings: list[float] | None = None) -> Iterator[None]:
    """One short deferred read transaction (one consistent snapshot); its length goes to ``timings``."""
    started = time.monotonic()
    connection.execute("BEGIN")
    try:
        yield
    finally:
        connection.execute("COMMIT")  # a read-only transaction: ending it releases the WAL snapshot
        if timings is not None:
            timings.append(time.monotonic() - started)


def check_schema(connection: sqlite3.Connection, path: Path) -> int:
    """The agent schema version; ``StoreError`` unless it is one this package has been tested with."""
    version: int = connection.execute("PRAGMA user_version").fetchone()[0]
    meta = None
    if has_table(connection, "schema_meta"):
        meta = connection.execute(
            "SELECT schema_version FROM schema_meta WHERE role = 'agent' ORDER BY updated_at DESC LIMIT 1"
        ).fetchone()
    if meta is not None and not version:
        version = meta[0]
    if not version or not has_table(connection, "session_windows"):
        raise StoreError(f"{path} is not an OpenClaw agent database (no agent schema version)")
    if version > NEWEST_TESTED_SCHEMA:
        raise StoreError(
            f"{path} has agent schema {version}, newer than the newest this package was tested with "
            f"({NEWEST_TESTED_SCHEMA}, OpenClaw 2026.9.6): nothing of this agent is read until it is"
        )
    if version < OLDEST_SCHEMA:
        raise StoreError(
            f"{path} has agent schema {version}, older than OpenClaw 2026.8.1's ({OLDEST_SCHEMA})"
        )
    return version


def has_table(connection: sqlite3.Connection, name: str) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return connection.execute(query, (name,)).fetchone() is not None


def has_column(connection: sqlite3.Connection, table: str, column: str) -> bool:
    return any(as_text(row[1]) == column for row in connection.execute(f"PRAGMA table_info({table})"))


def as_text(value: bytes | str) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else str(value)
