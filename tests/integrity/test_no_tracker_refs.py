"""The repository speaks to its reader: no file in it names an item of the project's issue tracker (an issue
or a point of one, by number), which a reader of the repository cannot open. Asserts that no tracked text file
but this one (which holds the pattern and its examples) matches."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRACKER = re.compile(r"\b(issue|task) ?#?\d+\b|\bpoint \d+\b|What-to-build|\bfinding \d+\b", re.IGNORECASE)
TEXT = (".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".mjs", ".cfg", ".txt", "Dockerfile", "run")


def tracked_text_files() -> list[Path]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    here = Path(__file__).resolve()
    return [ROOT / name for name in listed.splitlines() if name.endswith(TEXT) and ROOT / name != here]


def test_the_pattern_catches_a_tracker_reference():
    assert TRACKER.search("Guards (issue 14, point 8): DAG/floor")
    assert TRACKER.search("see Issue #3")
    assert not TRACKER.search("the issues a user reports; 1 point of failure")


def test_no_tracked_file_names_a_tracker_item():
    files = tracked_text_files()
    assert len(files) > 50, "git ls-files listed too little: the check would pass on nothing"
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in files
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if TRACKER.search(line)
    ]
    assert not found, "tracker references:\n" + "\n".join(found)
