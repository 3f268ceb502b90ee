"""SQLite era, end to end, across a session's life: uploaded from OpenClaw's database while historical,
then deleted by OpenClaw itself (through its gateway), which publishes a ``.jsonl.deleted….zst`` export of
the same bytes. Those bytes are not sent again; the export is moved into the archive under its own name."""

from __future__ import annotations

import json

import zstandard

from tests.e2e.conftest import assert_database_untouched, database_files
from tools.openclaw.fixture import OpenClaw, default_config
from tools.stacks.sandbox import API_KEY


def test_a_session_uploaded_from_the_database_then_deleted_by_openclaw_is_not_sent_twice(
    sandbox, nexus, migrated, tmp_path
):
    agent = migrated["agent"]
    sessions = agent / "sessions"
    sid = migrated["recovered"][0]

    first = sandbox.run_dag({"settle_minutes": 0})
    assert first.state == "success", first.output[-3000:]
    uploaded = (sessions / "archive" / f"{sid}.jsonl").read_bytes()
    sent_before = len(nexus.accepted())

    oc = OpenClaw.installed()
    with oc.gateway(
        state_dir=sandbox.state_dir, config=default_config(sandbox.state_dir), scratch=tmp_path / "gw"
    ) as gw:
        result = gw.run_json(
            [
                "sessions",
                "delete",
                f"agent:main:recovered:{sid}",
                "--yes",
                "--agent",
                "main",
                "--json",
                "--url",
                gw.url,
                "--token",
                gw.token,
            ],
            timeout=600,
        )
    assert result.get("ok"), json.dumps(result)[:2000]
    [export] = [
        p
        for p in sessions.iterdir()
        if p.name.startswith(f"{sid}.jsonl.deleted.") and p.name.endswith(".zst")
    ]
    exported = zstandard.ZstdDecompressor().stream_reader(export.read_bytes()).read()
    assert exported == uploaded, "OpenClaw's own export holds exactly the bytes this package sent"
    packed = export.read_bytes()
    db_before = database_files(agent)

    second = sandbox.run_dag({"settle_minutes": 0})
    third = sandbox.run_dag({"settle_minutes": 0})

    assert second.state == "success", second.output[-3000:]
    assert len(nexus.accepted()) == sent_before, "the same bytes are never sent twice"
    assert second.job_result["message"] == (
        "Uploaded 0 sessions across 0 agents; "
        "1 already uploaded with the same bytes, archived without resending"
    )
    assert not export.exists()
    assert (sessions / "archive" / export.name).read_bytes() == packed, (
        "OpenClaw's export, kept as it wrote it"
    )
    assert (sessions / "archive" / f"{sid}.jsonl").read_bytes() == uploaded
    assert not (sessions / "archive" / f"{sid}+1.jsonl").exists()
    assert third.job_result["itemsProcessed"] == 0 and "already uploaded" not in third.job_result["message"]
    assert_database_untouched(db_before, database_files(agent))
    assert sandbox.leaks(API_KEY, first.output, second.output, third.output) == []
