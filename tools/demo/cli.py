"""The demo: a sample OpenClaw state dir, the Nexus stand-in, and one run of the real DAG on an
embedded SQLite Airflow. Prints the JobResult, the task states and where the archive is.

    python -m tools.demo [--dir .demo] [--agents main,research] [--completed 3]
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
from pathlib import Path

from tools.demo.sample_state import make_state
from tools.stacks.sandbox import AirflowSandbox, migrate
from tools.standins.nexus import NexusStandin


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run session_upload once against a sample state dir.")
    parser.add_argument("--dir", type=Path, default=Path(".demo"), help="where the demo writes (wiped first)")
    parser.add_argument("--agents", default="main,research")
    parser.add_argument("--completed", type=int, default=3, help="completed sessions per agent")
    args = parser.parse_args(argv)

    root = args.dir.resolve()
    shutil.rmtree(root, ignore_errors=True)
    state_dir, home = root / "openclaw", root / "airflow"
    made = make_state(state_dir, args.agents.split(","), args.completed)
    print(f"1. Sample OpenClaw state dir: {state_dir}")
    for agent, files in made.items():
        print(f"   {agent}: {len(files['completed'])} completed, {len(files['active'])} active transcripts")
    print("2. Migrating the embedded SQLite Airflow metadata DB ...")
    migrate(home)
    api_key = secrets.token_urlsafe(16)  # lives only in the Connection given to Airflow
    with NexusStandin(api_key=api_key, record_dir=root / "nexus") as nexus:
        print(f"3. Nexus stand-in listening on {nexus.url}; running `airflow dags test session_upload` ...")
        sandbox = AirflowSandbox(home, state_dir, nexus.url, api_key=api_key, fast_retries=False)
        run = sandbox.run_dag()
        received = len(nexus.accepted())
    print(f"\nRun {run.run_id}: {run.state}")
    for task_id in ["find_agents", "discover", "select", "deliver.upload", "deliver.archive", "job_result"]:
        for index, (state, label) in sorted(run.tasks.get(task_id, {}).items()):
            print(f"   {task_id:<16} {label or ('' if index < 0 else index)!s:<48} {state}")
    print("\nJobResult (the job_result task's XCom):")
    print(json.dumps(run.job_result, indent=2))
    print(f"\nNexus received {received} transcripts (recorded in {root / 'nexus'})")
    for agent in made:
        print(f"Archive of {agent}: {state_dir / 'agents' / agent / 'sessions' / 'archive'}")
    print(f"Full Airflow output: {home}")
    return 0 if run.state == "success" else 1


if __name__ == "__main__":
    raise SystemExit(main())
