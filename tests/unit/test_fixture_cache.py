"""The OpenClaw fixture cache keeps only complete builds: a build whose manifest says a piece was
not produced is used by the process that built it (its tests fail with the manifest's reason) and built
again by the next one, never served from the cache."""

from __future__ import annotations

import json
import shutil

import pytest

from tools.openclaw import fixture as openclaw_fixture
from tools.openclaw.fixture import OpenClaw, built_fixture, fixture_key, missing_pieces


def test_missing_pieces_reads_every_produced_entry():
    assert missing_pieces({"produced": {"cold": "yes", "cron": "yes: job x"}}) == {}
    manifest = {
        "produced": {"cold": "no: 1 of 2 windows went cold in 150 s", "cron": "yes: job x"},
        "agents": {"chat": {"produced": {"idle": "yes", "daily": "no: no reset row"}}, "main": {}},
    }
    assert missing_pieces(manifest) == {
        "cold": "no: 1 of 2 windows went cold in 150 s",
        "chat.daily": "no: no reset row",
    }


@pytest.fixture
def fake_builder(monkeypatch):
    """A builder registered under a test name; it produces everything but cold storage on its first call."""
    calls = []

    def build(folder, oc, log):
        calls.append(folder)
        (folder / "state").mkdir()
        cold = "no: 0 of 2 windows went cold in 150 s" if len(calls) == 1 else "yes"
        return {"produced": {"cold": cold, "cron": "yes: job j"}}

    monkeypatch.setitem(openclaw_fixture.BUILDERS, "test-incomplete", build)
    oc = OpenClaw.installed()  # CI installs it; nothing of OpenClaw runs here
    final = oc.cache / "fixtures" / fixture_key("test-incomplete")
    yield calls, final
    shutil.rmtree(final, ignore_errors=True)
    for left in final.parent.glob(f".{final.name}.*"):
        shutil.rmtree(left, ignore_errors=True)
    openclaw_fixture._INCOMPLETE.clear()


def test_an_incomplete_build_is_used_once_and_built_again_not_cached(fake_builder):
    calls, final = fake_builder
    first = built_fixture("test-incomplete")
    assert first != final and not final.exists(), "an incomplete build must not land in the cache"
    assert json.loads((first / "manifest.json").read_text())["produced"]["cold"].startswith("no:")
    assert built_fixture("test-incomplete") == first and len(calls) == 1, "same process: the same build"

    openclaw_fixture._INCOMPLETE.clear()  # as a new process
    second = built_fixture("test-incomplete")
    assert len(calls) == 2 and second == final, "built again; complete this time, so cached"
    assert missing_pieces(json.loads((final / "manifest.json").read_text())) == {}
    assert not first.exists(), "the incomplete build is cleared by the next build"
    assert built_fixture("test-incomplete") == final and len(calls) == 2
