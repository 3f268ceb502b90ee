"""What the DAG does for one discovered item once Nexus confirmed it, without HTTP: export it through the
stores and record its archive copy. For tests of discovery that need items to become archived."""

from __future__ import annotations

import hashlib
from pathlib import Path

from openclaw_nexus import stores


def deliver(state: Path, session: dict) -> None:
    """Archive one discovered item as the DAG's archive task would after a confirmed upload."""
    transcript = stores.open_transcript(state, session)
    data = transcript.path.read_bytes()
    receipt = {
        **session,
        "size": len(data),
        "mtimeNs": transcript.path.stat().st_mtime_ns,
        "sha256": hashlib.sha256(data).hexdigest(),
        "staged": transcript.staged,
        "duplicateOf": None,
    }
    stores.record_archived(state, session, receipt)
