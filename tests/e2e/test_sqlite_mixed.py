"""One run of the real DAG over a state dir written by OpenClaw 2026.9.6 itself (``tools/openclaw_fixture``):
a native SQLite-era agent (real agent turns against a loopback model, idle rollovers, archived, deleted,
zstd-compressed and cold sessions), an agent migrated from the JSONL era by OpenClaw's doctor, and a
JSONL-era agent, side by side. What reaches Nexus is compared byte for byte with OpenClaw's own exports."""

from __future__ import annotations

import json

from tests.e2e.conftest import assert_database_untouched, database_files
from tools.openclaw_fixture import openclaw_state, read_only, rows_transcript, sessions_listing
from tools.sandbox import API_KEY, new_sandbox


def received(nexus) -> dict[tuple[str, str], bytes]:
    got: dict[tuple[str, str], bytes] = {}
    for record in nexus.accepted():
        payload = json.loads(nexus.body(record["n"]))
        key = (payload["agentId"], payload["sessionId"])
        assert key not in got, f"{key} uploaded twice"
        got[key] = payload["transcript"].encode()
    return got


def stable(listing: dict) -> str:
    """OpenClaw's listing without the fields it computes from the clock."""

    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in {"ageMs", "age", "now", "generatedAt"}}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value

    return json.dumps(strip(listing), sort_keys=True)


def test_one_run_over_native_migrated_and_jsonl_agents_is_byte_exact_and_leaves_openclaw_as_it_was(
    template_home, tmp_path, nexus
):
    fixture = tmp_path / "fixture"
    manifest = openclaw_state("mixed", fixture)
    state = fixture / "state"
    agents = manifest["agents"]
    databases = {name: fixture / info["database"] for name, info in agents.items() if info.get("database")}
    expected: dict[tuple[str, str], bytes] = {}
    for name, info in agents.items():
        for entry in info["completed"]:
            if entry.get("expected"):
                data = (fixture / entry["expected"]).read_bytes()
            else:  # no OpenClaw export of it: its rows, read here without the package
                with read_only(databases[name]) as db:
                    data = rows_transcript(db, entry["sessionId"])
            expected[(name, entry["sessionId"])] = data
    live = {
        (name, item["sessionId"] if isinstance(item, dict) else item)
        for name, info in agents.items()
        for item in info["live"]
    }
    assert {info["era"] for info in agents.values()} == {"sqlite", "migrated", "jsonl"}
    db_before = {name: database_files(path.parent.parent) for name, path in databases.items()}
    listing_before = sessions_listing(state)

    sandbox = new_sandbox(template_home, tmp_path / "airflow", state, nexus.url)
    first = sandbox.run_dag({"settle_minutes": 0})
    second = sandbox.run_dag({"settle_minutes": 0})

    assert first.state == "success", first.output[-4000:]
    got = received(nexus)
    assert set(got) == set(expected), (sorted(set(got) - set(expected)), sorted(set(expected) - set(got)))
    for key, data in expected.items():
        assert got[key] == data, f"{key}: not OpenClaw's export form, byte for byte"
    assert not live & set(got), "a live session was uploaded"
    assert first.job_result["message"] == f"Uploaded {len(expected)} sessions across 3 agents"
    assert second.job_result["itemsProcessed"] == 0 and second.state == "success"
    for name, path in databases.items():
        assert_database_untouched(db_before[name], database_files(path.parent.parent))
    assert stable(sessions_listing(state)) == stable(listing_before), "OpenClaw sees its sessions as before"
    for name, info in agents.items():
        archive = state / "agents" / name / "sessions" / "archive"
        for entry in info["completed"]:
            copy = archive / f"{entry['sessionId']}.jsonl"
            assert copy.read_bytes() == expected[(name, entry["sessionId"])]
    for name, info in agents.items():
        if info["era"] == "jsonl":
            assert f"agent {name} (JSONL files): " in first.output
        else:
            count = len(info["live"])
            assert f"agent {name} (SQLite database, agent schema 23): " in first.output
            assert f"{count} live sessions left to OpenClaw" in first.output
    assert sandbox.leaks(API_KEY, first.output, second.output) == []
