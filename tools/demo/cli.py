"""The demo: OpenClaw state written by OpenClaw itself, the Nexus stand-in, and one run of the real DAG on an
embedded SQLite Airflow. Prints, per agent, its era, what reached Nexus (each conversation with what closed
it, whole sessions with how they ended) and what stayed with OpenClaw, and why.

    python -m tools.demo [--dir .demo]

The state is the copy kept in ``tools/demo/data/state`` (rebuilt with OpenClaw by ``python -m
tools.demo.rebuild``; no Node is needed to run the demo): agent ``chat`` written by OpenClaw 2026.9.6 (SQLite
era: a chat with ``/new`` and ``/reset`` whose last conversation is open, an archived chat, a deleted one,
an isolated cron job run twice), agent ``main`` written by OpenClaw 2026.7.35 (JSONL era). Git keeps no
modification times or modes: each file gets back those OpenClaw left it (the manifest beside the state
records them). Nothing is moved to "now": a manual run takes everything settled up to now
(``runs.window_for``), and every time in the state, file or database row, is the build's, in the past:
the JSONL era's settle time (a minute by default) has long passed, and what the SQLite era committed is
final when it appears. File times and database times stay on one clock, as on a real host.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import shutil
import textwrap
from pathlib import Path

from tools.demo.state import DATA, describe, set_file_modes, set_file_times
from tools.stacks.sandbox import AirflowSandbox, migrate
from tools.standins.nexus import NexusStandin

CLOSED_BY = {
    "new": "closed by /new",
    "reset": "closed by /reset",
    "idle": "closed by an idle expiry",
    "daily": "closed by a daily expiry",
    "archived": "closed when the session was archived",
    "deleted": "closed when the session was deleted",
    "superseded": "closed when a new session took its key",
}
ENDED = {  # a whole session (one conversation), by its state
    "archived": "archived",
    "deleted": "deleted",
    "superseded": "superseded by a new session under its key",
    "reset": "reset",
    "ended": "ended",
}
ERA = {"jsonl": "JSONL era", "sqlite": "SQLite era"}


def _run_xcoms(sandbox: AirflowSandbox, run_id: str) -> dict[tuple[str, str], list]:
    """Every XCom of the run: (task_id, key) -> values by map index."""
    found: dict[tuple[str, str], list] = {}
    with sandbox.db() as db:
        for task_id, key, value in db.execute(
            "select task_id, key, value from xcom where run_id = ? order by map_index",
            (run_id,),
        ):
            found.setdefault((task_id, key), []).append(json.loads(value) if value else None)
    return found


def _how(session: dict, conversation: dict | None, count: int, key_kind: str) -> str:
    """How a sent item is described: a conversation and what closed it, or a whole session's end."""
    if conversation is not None and count > 1:
        position = f"conversation {conversation['index'] + 1} of {count}"
        return f"{position}, {CLOSED_BY.get(conversation['closes'], conversation['closes'])}"
    state = session["state"]
    if state == "superseded" and key_kind == "cron":
        return "whole session, ended by the cron job's next run"
    if session["source"] == "file" and state == "ended":
        return "whole session, ended by an idle rollover"
    if session["source"] == "file" and state in ("reset", "deleted"):
        return f"whole session, {state} (renamed .jsonl.{state}.<time>)"
    if session["source"] == "file" and state == "archived":
        return "whole session, archived (archivedAt in sessions.json)"
    if session["source"] == "deletion export":
        return "whole session, deleted (OpenClaw's deletion export .zst)"
    return f"whole session, {ENDED.get(state, state)}"


def _key_label(session: dict, keys: dict[str, str]) -> str:
    key = session["key"] or keys.get(session["sessionId"]) or "(no key)"
    return (
        key if ":cron:" not in key else key.split(":cron:")[0] + ":cron:" + key.split(":cron:")[1][:8] + "…"
    )


def discover_lines(output: str) -> dict[str, str]:
    """The discover task's summary line per agent, from the run's output (``agent <id> (<store>): …``)."""
    found = {}
    for match in re.finditer(r"\] (agent (\S+) \(.+?\): .+?) \[openclaw_nexus", output):
        found[match.group(2)] = match.group(1)
    return found


def report(
    state: dict,
    scans: dict[str, dict],
    receipts: list[dict],
    keys: dict[str, str],
    logged: dict[str, str],
    closed: dict[tuple[str, str, str | None], int],
) -> list[str]:
    """The demo's account of one run: per agent its era (the discover task's XCom) and the discover log's
    line, what reached Nexus (the archive receipts, in the order discovery found them closed: ``closed``,
    each item's last change in ns), and what stayed with OpenClaw."""
    lines: list[str] = []
    for agent, entry in state.items():
        scan = scans.get(agent, {})
        lines.append(
            f"Agent {agent}: {ERA.get(str(scan.get('era')), 'era unknown: its discover task failed')}"
        )
        said = f"  discover log: {logged.get(agent, '(no line)')}"
        lines += textwrap.wrap(said, width=110, subsequent_indent="    ", break_on_hyphens=False)
        sent = [r for r in receipts if r["agentId"] == agent]
        lines.append(f"  Reached Nexus ({len(sent)}), in the order they were closed:")
        shown: list[tuple[int, str]] = []
        for session in entry["sessions"]:
            parts = session["conversations"]
            for index, conversation in enumerate(parts):
                token = conversation["token"] if len(parts) > 1 else None
                for receipt in sent:
                    if receipt["sessionId"] != session["sessionId"] or receipt.get("conversation") != token:
                        continue
                    if session["source"] != "database" and receipt["file"] != session.get("file"):
                        continue
                    kind = "cron" if session["key"] and ":cron:" in session["key"] else ""
                    how = _how(session, {**conversation, "index": index}, len(parts), kind)
                    shown.append(
                        (
                            closed.get((agent, receipt["file"], receipt.get("conversation")), 0),
                            f"    {_key_label(session, keys):<26} {how:<58} {receipt['size']:>5} bytes"
                            f"  sha256 {receipt['sha256'][:12]}",
                        )
                    )
        lines += [line for _, line in sorted(shown)]
        lines.append("  Stayed with OpenClaw:")
        live = [s for s in entry["sessions"] if s["state"] == "live"]
        for session in sorted(live, key=lambda s: (":cron:" in (s["key"] or ""), s["key"] or "")):
            parts = session["conversations"]
            label = _key_label(session, keys)
            if len(parts) > 1:
                why = f"conversation {len(parts)} of {len(parts)}: open"
                why += "; sent once a /new, /reset or the session's end closes it"
            elif session["source"] == "file":
                why = "live session: sessions.json lists it, OpenClaw appends to its file"
            elif ":cron:" in (session["key"] or ""):
                why = "live session: the cron job's current run"
            else:
                why = "live session: its key's current session, OpenClaw still writes to it"
            lines.append(f"    {label:<26} {why}")
        lines.append("")
    return lines


def _shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it (``.demo/...``), else as it is."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def prepare_state(dest: Path, data: Path = DATA) -> dict:
    """Copy the kept state into ``dest`` with its files' ages restored; the manifest."""
    shutil.copytree(data / "state", dest, symlinks=True)
    manifest = json.loads((data / "manifest.json").read_text())
    set_file_times(dest, manifest["fileTimes"])
    set_file_modes(dest, manifest["fileModes"])
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run session_upload once against OpenClaw state written by OpenClaw."
    )
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo writes (wiped first)")
    args = parser.parse_args(argv)

    root = args.dir.resolve()
    shutil.rmtree(root, ignore_errors=True)
    state_dir, home = root / "openclaw", root / "airflow"
    manifest = prepare_state(state_dir)
    state = describe(state_dir)
    print(f"1. OpenClaw state dir {_shown(state_dir)}, copied from tools/demo/data/state:")
    for agent, written in manifest["written"].items():
        print(f"   {agent}: written by {written}")
    print(f"2. Migrating the embedded SQLite Airflow metadata DB under {_shown(home)} ...")
    migrate(home)
    api_key = secrets.token_urlsafe(16)  # lives only in the Connection given to Airflow
    with NexusStandin(api_key=api_key, record_dir=root / "nexus") as nexus:
        print(f"3. Nexus stand-in listening on {nexus.url}; running `airflow dags test session_upload` ...")
        sandbox = AirflowSandbox(home, state_dir, nexus.url, api_key=api_key, fast_retries=False)
        run = sandbox.run_dag()
        received = len(nexus.accepted())
    xcoms = _run_xcoms(sandbox, run.run_id)
    scans = {scan["agentId"]: scan for scan in xcoms.get(("discover", "return_value"), []) if scan}
    receipts = [r for r in xcoms.get(("deliver.archive", "return_value"), []) if r]
    selected = (xcoms.get(("select", "selected")) or [[]])[0] or []
    closed = {(s["agentId"], s["file"], s.get("conversation")): s["mtimeNs"] for s in selected}
    print(f"\nRun {run.run_id}: {run.state}. JobResult: {(run.job_result or {}).get('message')}\n")
    keys = manifest.get("jsonlKeys", {})
    for line in report(state, scans, receipts, keys, discover_lines(run.output), closed):
        print(line)
    errors = (run.job_result or {}).get("errors") or []
    if errors:
        print(f"Errors ({len(errors)}):")
        for error in errors:
            print(f"   {json.dumps(error)}")
    print(f"Nexus received {received} transcripts (recorded in {_shown(root / 'nexus')})")
    print(f"Archive copies: {_shown(state_dir / 'agents' / '<agent>' / 'sessions' / 'archive')}")
    print(f"Airflow (metadata DB, logs, the run's output): {_shown(home)}")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
