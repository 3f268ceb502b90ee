"""A real browser (Debian's chromium, driven by Playwright) logs into the Airflow UI, triggers the DAG
through its Params form and finds the mapped uploads under readable names (`<agent>/<sessionId>`).
Screenshots go to artifacts/ui/ (git-ignored)."""

from __future__ import annotations

import os
import shutil
import urllib.parse
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("SESSION_UPLOAD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "ui"
AGENT = "ui-agent"


@pytest.fixture
def page():
    from playwright import sync_api

    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing: run scripts/ci-deps.sh (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs it: a missing browser there is a broken setup, not a skip
        pytest.skip(message)
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def test_trigger_from_the_params_form_and_see_named_mapped_uploads(live, page):
    stack = live.stack
    agent = live.make_agent(AGENT, 3)
    labels = {f"{AGENT}/{item['sessionId']}" for item in agent.completed}

    # Log in (SimpleAuthManager's form), then the DAG page.
    page.goto(f"{stack.url}/dags/session_upload")
    page.wait_for_url("**/auth/login**")
    page.fill("input[name=username]", stack.username)
    page.fill("input[name=password]", stack.password)
    page.screenshot(path=ARTIFACTS / "01-login.png")
    page.click("button[type=submit]")
    page.wait_for_url("**/dags/session_upload")
    page.get_by_text("deliver", exact=False).first.wait_for()
    page.screenshot(path=ARTIFACTS / "02-dag.png")

    # Trigger → the Params form: one agent, the package's 5-minute settle time; the rest as it comes.
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for()
    dialog.locator("textarea[name=element_agents]").fill(AGENT)
    settle = dialog.locator("[id='number-input:element_settle_minutes:inc']").locator("xpath=../..")
    settle.locator("input[role=spinbutton]").fill("5")
    settle.locator("input[role=spinbutton]").press("Tab")
    page.screenshot(path=ARTIFACTS / "03-trigger-form.png", full_page=True)
    with page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/dagRuns")) as sent:
        dialog.get_by_test_id("trigger-dag-submit").click()
    conf = sent.value.post_data_json["conf"]
    assert conf == {
        "agents": [AGENT],
        "settle_minutes": 5,
        "max_sessions": 500,
        "dry_run": False,
        "include_archived": False,
    }
    page.wait_for_url("**/dags/session_upload/runs/**")
    run_id = urllib.parse.unquote(page.url.rstrip("/").rsplit("/runs/", 1)[1])
    run = stack.wait_for_run(run_id)
    assert run["state"] == "success", stack.tail("scheduler")
    assert run["run_type"] == "manual" and run["triggering_user_name"] == stack.username

    # The run page lists every task instance, the mapped ones under their rendered names.
    page.reload()
    for label in labels:
        page.get_by_text(label, exact=True).first.wait_for()
    page.screenshot(path=ARTIFACTS / "04-run-task-instances.png", full_page=True)

    # The grid: expand the task group, click this run's deliver.upload cell → its mapped instances,
    # one row per session, named <agent>/<sessionId>.
    page.goto(f"{stack.url}/dags/session_upload")
    page.get_by_role("button", name="Expand all task groups").click()
    page.get_by_test_id("deliver.upload").wait_for()
    assert page.get_by_test_id("deliver.upload").inner_text().startswith("upload")
    page.screenshot(path=ARTIFACTS / "05-grid-expanded.png")
    page.get_by_test_id(f"grid-{run_id}-deliver.upload").click()
    page.wait_for_url("**/tasks/deliver.upload/mapped")
    for label in labels:
        page.get_by_role("link", name=label, exact=True).wait_for()
    page.screenshot(path=ARTIFACTS / "06-mapped-uploads.png")
    shown = page.locator("table").inner_text()
    assert all(label in shown for label in labels) and shown.count("Success") == len(labels)

    assert live.accepted(AGENT) == {item["sessionId"]: item["bytes"] for item in agent.completed}
    assert set(agent.archived()) == {f"{item['sessionId']}.jsonl" for item in agent.completed}
    live.assert_no_leak()
