"""The Nexus stand-in's fault-table helpers: the ``receivedAt`` timestamp and the ``on_request`` hook."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import requests

from tools.standins.nexus import NexusStandin

API_KEY = "nxk-unit-faults-5e1a7c3b90-SECRET"


def post(server: NexusStandin, session: str, *, timeout: float = 10) -> requests.Response:
    body = json.dumps({"agentId": "main", "sessionId": session, "transcript": "x\n"}).encode()
    return requests.post(
        f"{server.url}/api/sessions",
        params={"code": API_KEY},
        data=body,
        headers={"Content-Type": "application/json", "X-Session-Id": session},
        timeout=timeout,
    )


def test_received_at_is_when_the_request_arrived_and_is_in_the_records_file(tmp_path: Path):
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as server:
        before = time.time()
        post(server, "s-1")
        time.sleep(0.3)
        post(server, "s-2")
        after = time.time()
        first, second = server.requests()
        lines = [json.loads(line) for line in server.requests_file.read_text().splitlines()]

    assert before <= first["receivedAt"] < second["receivedAt"] <= after
    assert second["receivedAt"] - first["receivedAt"] >= 0.3
    assert [line["receivedAt"] for line in lines] == [first["receivedAt"], second["receivedAt"]]


def test_received_at_is_taken_before_a_delay_fault(tmp_path: Path):
    delay = 1.0
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as server:
        server.set_faults([{"match": {}, "times": 1, "action": {"delay": delay}}])
        sent = time.time()
        post(server, "s-1")
        answered = time.time()
        [record] = server.requests()

    # The whole delay lies between the timestamp and the answer: true however slow the machine is, and
    # false if the timestamp were taken after the delay (the answer follows it within milliseconds).
    assert sent <= record["receivedAt"] <= answered - delay, "the timestamp is the arrival, not the answer"


def test_on_request_sees_every_upload_after_its_body_and_before_its_answer(tmp_path: Path):
    seen: list[dict] = []
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus", on_request=seen.append) as server:
        server.set_faults([{"match": {"sessionId": "s-2"}, "times": 1, "action": {"status": 503}}])
        assert post(server, "s-1").status_code == 201
        assert post(server, "s-2").status_code == 503
        with pytest.raises(requests.ConnectionError):
            server.set_faults([{"match": {"sessionId": "s-3"}, "times": 1, "action": {"reset": True}}])
            post(server, "s-3")

    assert [(r["n"], r["sessionId"], r["fault"], r["status"]) for r in seen] == [
        (1, "s-1", None, None),
        (2, "s-2", "status:503", None),
        (3, "s-3", "reset", None),
    ]
    assert all(r["bodyBytes"] > 0 and r["bodySha256"] for r in seen), "called once the body was read"


def test_on_request_runs_before_the_answer_so_a_test_can_change_the_disk_first(tmp_path: Path):
    marker = tmp_path / "marker"

    def hook(record: dict) -> None:
        time.sleep(0.2)
        marker.write_text(record["sessionId"])

    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus", on_request=hook) as server:
        response = post(server, "s-1")
        assert marker.read_text() == "s-1", "the hook had finished when the client got its answer"

    assert response.status_code == 201


def test_a_failing_hook_is_reported_and_the_request_still_answered(tmp_path: Path, capfd):
    def hook(record: dict) -> None:
        raise RuntimeError(f"boom on {record['sessionId']}")

    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus", on_request=hook) as server:
        response = post(server, "s-1")
        errors = list(server.hook_errors)

    assert response.status_code == 201
    assert len(errors) == 1 and "RuntimeError: boom on s-1" in errors[0]
    assert "on_request hook failed" in capfd.readouterr().err


def test_reset_cuts_a_body_under_1_mib_short_too(tmp_path: Path):
    transcript = "z" * 400_000
    body = json.dumps({"agentId": "main", "sessionId": "s-1", "transcript": transcript}).encode()
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as server:
        server.set_faults([{"match": {"sessionId": "s-1"}, "times": 1, "action": {"reset": True}}])
        with pytest.raises(requests.ConnectionError):
            requests.post(
                f"{server.url}/api/sessions",
                params={"code": API_KEY},
                data=body,
                headers={"Content-Type": "application/json", "X-Session-Id": "s-1"},
                timeout=10,
            )
        [record] = server.requests()

    assert record["fault"] == "reset"
    assert 64 << 10 <= record["bodyBytes"] < len(body), "cut mid-body"
