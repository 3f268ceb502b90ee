"""A real browser (Debian's chromium, driven by Playwright) logs into the Airflow UI, triggers the DAG
through its Params form and finds the mapped uploads under readable names (`<agent>/<sessionId>`).
Screenshots go to artifacts/ui/ (git-ignored).

Waiting: a step that needs the api-server waits on conditions, not on a fixed time: the URL it leads to,
then no request of the page in flight for half a second (every request the page made was answered),
then what the page shows; each wait is only guarded against a hang (``SERVER_GUARD``, as the stack's
``wait_for_run``). A stack's first answers can be slow (the UI bundle read from disk, each endpoint's
first query and the DAG's first load in the one api-server worker, on the SQLite file the scheduler
writes to); the browser's own work (a click, a fill) keeps Playwright's 30 s."""

from __future__ import annotations

import os
import shutil
import time
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
SERVER_GUARD = 300_000  # ms: a hang guard on waits for the api-server, as the stack's wait_for_run (300 s)
QUIET_SECONDS = 0.5  # no request in flight this long: the page has every answer it asked for


class Requests:
    """The page's requests in flight (from Playwright's ``request`` event to ``requestfinished`` or
    ``requestfailed``). Playwright's ``networkidle`` load state is reached once per navigation, so it
    cannot tell when the requests of a click inside the single-page UI have been answered; this can."""

    def __init__(self, page) -> None:
        self.page = page
        self.in_flight: set = set()
        page.on("request", lambda request: self.in_flight.add(request))
        page.on("requestfinished", lambda request: self.in_flight.discard(request))
        page.on("requestfailed", lambda request: self.in_flight.discard(request))

    def answered(self, step: str) -> None:
        """Until no request has been in flight for QUIET_SECONDS, however long the api-server takes (up to
        SERVER_GUARD: a hang); prints how long it took (a figure, never asserted)."""
        started = time.monotonic()
        quiet_since: float | None = None
        while True:
            self.page.wait_for_timeout(50)  # Playwright delivers the page's events while it waits
            now = time.monotonic()
            if self.in_flight:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET_SECONDS:
                break
            unanswered = sorted(r.url for r in self.in_flight)[:5]
            assert now - started < SERVER_GUARD / 1000, (
                f"{step}: unanswered after {SERVER_GUARD} ms: {unanswered}"
            )
        print(f"[ui] {step}: every request answered after {quiet_since - started:.1f} s", flush=True)


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


@pytest.fixture
def requests(page) -> Requests:
    return Requests(page)


def test_trigger_from_the_params_form_and_see_named_mapped_uploads(live, page, requests):
    from playwright.sync_api import expect

    stack = live.stack
    agent = live.make_agent(AGENT, 3)
    labels = {f"{AGENT}/{item['sessionId']}" for item in agent.completed}

    # Log in (SimpleAuthManager's form), then the DAG page.
    page.goto(f"{stack.url}/dags/session_upload", timeout=SERVER_GUARD)
    page.wait_for_url("**/auth/login**", timeout=SERVER_GUARD)
    requests.answered("login page")
    page.fill("input[name=username]", stack.username)
    page.fill("input[name=password]", stack.password)
    page.screenshot(path=ARTIFACTS / "01-login.png")
    page.click("button[type=submit]")
    page.wait_for_url("**/dags/session_upload", timeout=SERVER_GUARD)
    requests.answered("DAG page")
    page.get_by_text("deliver", exact=False).first.wait_for(timeout=SERVER_GUARD)
    page.screenshot(path=ARTIFACTS / "02-dag.png")

    # Trigger → the Params form: one agent, the package's 5-minute settle time; the rest as it comes.
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Run Parameters").wait_for(timeout=SERVER_GUARD)
    agents = dialog.locator("textarea[name=element_agents]")
    agents.wait_for(timeout=SERVER_GUARD)  # a field of the DAG's Params: the form is built from them
    requests.answered("trigger form")  # nothing left to arrive that would rebuild it
    agents.fill(AGENT)
    settle = dialog.locator("[id='number-input:element_settle_minutes:inc']").locator("xpath=../..")
    settle.locator("input[role=spinbutton]").fill("5")
    settle.locator("input[role=spinbutton]").press("Tab")
    expect(agents).to_have_value(AGENT)  # what was typed stayed: the form did not reset under it
    expect(settle.locator("input[role=spinbutton]")).to_have_value("5")
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
    page.wait_for_url("**/dags/session_upload/runs/**", timeout=SERVER_GUARD)
    run_id = urllib.parse.unquote(page.url.rstrip("/").rsplit("/runs/", 1)[1])
    run = stack.wait_for_run(run_id)
    assert run["state"] == "success", stack.tail("scheduler")
    assert run["run_type"] == "manual" and run["triggering_user_name"] == stack.username

    # The run page lists every task instance, the mapped ones under their rendered names.
    page.reload(timeout=SERVER_GUARD)
    requests.answered("run page")
    for label in labels:
        page.get_by_text(label, exact=True).first.wait_for(timeout=SERVER_GUARD)
    page.screenshot(path=ARTIFACTS / "04-run-task-instances.png", full_page=True)

    # The grid: expand the task group, click this run's deliver.upload cell → its mapped instances,
    # one row per session, named <agent>/<sessionId>.
    page.goto(f"{stack.url}/dags/session_upload", timeout=SERVER_GUARD)
    requests.answered("grid")
    page.get_by_role("button", name="Expand all task groups").click(timeout=SERVER_GUARD)
    page.get_by_test_id("deliver.upload").wait_for(timeout=SERVER_GUARD)
    assert page.get_by_test_id("deliver.upload").inner_text().startswith("upload")
    page.screenshot(path=ARTIFACTS / "05-grid-expanded.png")
    page.get_by_test_id(f"grid-{run_id}-deliver.upload").click(timeout=SERVER_GUARD)
    page.wait_for_url("**/tasks/deliver.upload/mapped", timeout=SERVER_GUARD)
    requests.answered("mapped uploads")
    for label in labels:
        page.get_by_role("link", name=label, exact=True).wait_for(timeout=SERVER_GUARD)
    page.screenshot(path=ARTIFACTS / "06-mapped-uploads.png")
    shown = page.locator("table").inner_text()
    assert all(label in shown for label in labels) and shown.count("Success") == len(labels)

    assert live.accepted(AGENT) == {item["sessionId"]: item["bytes"] for item in agent.completed}
    assert set(agent.archived()) == {f"{item['sessionId']}.jsonl" for item in agent.completed}
    live.assert_no_leak()
