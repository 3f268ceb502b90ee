"""The SQLite store on a host restored from OpenClaw's backup, which leaves every ``*.jsonl`` of
``sessions/`` out, the archive copies included, and keeps their records (``archive/.copies/``).

State: an agent database OpenClaw 2026.9.6's doctor wrote (a migrated JSONL-era agent: a live main session,
an archived recovered one, a ``.reset.`` leftover); hand-made: reset events and messages appended to the
main session as OpenClaw's chat path appends them. The restore is the files OpenClaw's backup skips
removed (``tests/unit/test_copy_records.py`` spells its rule out; ``tests/e2e/test_backup_restore.py`` has
OpenClaw itself back up and restore). The expected bytes are the rows read here and split at reset events
with the json library.
"""

from __future__ import annotations

import shutil

from openclaw_nexus import sqlite_store
from tests.openclaw.test_conversations_store import T0, append_turn, archive_dir, split, upload_and_archive
from tests.openclaw.test_sqlite_store import WINDOW, archived_sid, main_sid
from tests.unit.test_copy_records import restore_as_openclaw_backup_would


def subjects(store: sqlite_store.SqliteStore) -> dict[str, dict]:
    """What a scan offers: ``<sessionId>@<conversation>``, or the item's file for a whole session → the
    item."""
    found = {}
    for item in store.find(WINDOW).sessions:
        conversation = item.get("conversation")
        found[item["file"] if conversation is None else f"{item['sessionId']}@{conversation}"] = item
    return found


def test_what_was_sent_before_a_restore_is_not_offered_again_and_what_finishes_after_it_is(state):
    live, shelved = main_sid(state), archived_sid(state)
    append_turn(state, live, "b6b9b41d", "/new", T0)  # the main chat's conversation 0 is finished
    store = sqlite_store.SqliteStore(state, "main")
    first = subjects(store)
    assert {f"{live}@0", sqlite_store.session_file(shelved)} <= set(first), sorted(first)
    sent = {name: upload_and_archive(state, store, item) for name, item in first.items()}
    assert sent[f"{live}@0"] == split(state, live)["0"]
    assert subjects(store) == {}
    # The open conversation grows: the session's last change moves, so no .all-sent name vouches for it
    # and the next scan looks at its conversations' copies again.
    append_turn(state, live, None, "one more message in the open conversation", T0 + 20)
    saved = state.parent / "saved-archive"
    shutil.copytree(archive_dir(state), saved)

    removed = restore_as_openclaw_backup_would(state / "agents" / "main" / "sessions")

    assert sorted(removed) == sorted(f"archive/{p.name}" for p in saved.glob("*.jsonl")), removed
    assert len(removed) == len(sent), "every copy was left out by the backup"
    # Without the records the same restored host would send it all again (a copy of it: a scan that
    # finds every conversation done records the session in .all-sent).
    bare = state.parent / "without-records"
    shutil.copytree(state, bare)
    shutil.rmtree(archive_dir(bare) / ".copies")
    resent = set(subjects(sqlite_store.SqliteStore(bare, "main")))
    assert resent == {f"{live}@0", sqlite_store.session_file(shelved)}, sorted(resent)
    assert subjects(store) == {}, "nothing sent before the restore is offered again"

    append_turn(state, live, "0c0ffee1", "/reset", T0 + 40)  # finished after the restore: offered
    after = subjects(store)
    assert list(after) == [f"{live}@b6b9b41d"]
    assert upload_and_archive(state, store, after[f"{live}@b6b9b41d"]) == split(state, live)["b6b9b41d"]
    assert subjects(store) == {}
