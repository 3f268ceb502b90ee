"""The Nexus stand-in (tools/standins/nexus.py): what it records, how it rejects, and each fault it
injects."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tools.standins.nexus import NexusStandin

ROOT = Path(__file__).resolve().parents[2]
# Distinctive, so a leak anywhere is found by a plain substring search.
API_KEY = "nxk-unit-7d2e9a41c0-SECRET"
WRONG_KEY = "nxk-wrong-3b8f6c2d1e-GUESS"
JSON = {"Content-Type": "application/json"}


def upload_body(agent: str = "main", session: str = "s-1", transcript: str | None = None) -> bytes:
    if transcript is None:
        transcript = '{"role": "user", "text": "héllo ✓"}\n{"role": "assistant", "text": "a\\"b"}\n'
    return json.dumps({"agentId": agent, "sessionId": session, "transcript": transcript}).encode("utf-8")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NexusStandin]:
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus") as standin:
        yield standin


def post(server: NexusStandin, body: bytes, *, key: str = API_KEY, headers: dict | None = None, **kwargs):
    return requests.post(
        f"{server.url}/api/sessions",
        params={"code": key},
        data=body,
        headers={**JSON, **(headers or {})},
        timeout=kwargs.pop("timeout", 10),
        **kwargs,
    )


def test_accepted_upload_is_recorded_byte_for_byte(server):
    body = upload_body()

    response = post(server, body, headers={"Idempotency-Key": "k-1"})

    assert response.status_code == 201
    assert response.json() == {"status": "created", "id": "1"}
    assert response.headers["Content-Length"] == str(len(response.content))
    [record] = server.requests()
    assert record == {
        "n": 1,
        "receivedAt": pytest.approx(time.time(), abs=60),
        "status": 201,
        "agentId": "main",
        "sessionId": "s-1",
        "idempotencyKey": "k-1",
        "bodyFile": "1.body",
        "bodySha256": hashlib.sha256(body).hexdigest(),
        "bodyBytes": len(body),
        "duplicate": False,
        "fault": None,
        "contentType": "application/json",
        "query": {"code": "***"},
        "chunked": False,
    }
    assert server.body(1) == body
    assert (server.record_dir / "bodies" / "1.body").read_bytes() == body
    lines = server.requests_file.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [record]
    assert server.accepted() == [record]
    assert requests.get(f"{server.url}/_control/requests", timeout=10).json() == [record]


def test_wrong_or_missing_key_is_401_and_the_key_is_written_nowhere(server, capfd):
    body = upload_body()

    wrong = post(server, body, key=WRONG_KEY)
    missing = requests.post(f"{server.url}/api/sessions", data=body, headers=JSON, timeout=10)
    right = post(server, body)

    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid api key"}
    assert missing.status_code == 401 and missing.json() == {"error": "invalid api key"}
    assert right.status_code == 201
    assert WRONG_KEY not in wrong.text
    assert [r["status"] for r in server.requests()] == [201], "a request without a valid key is not recorded"
    stderr = capfd.readouterr().err
    assert "POST /api/sessions -> 401" in stderr and "POST /api/sessions -> 201 (main/s-1," in stderr
    written = server.requests_file.read_text() + stderr
    assert API_KEY not in written
    assert WRONG_KEY not in written


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'{"agentId": "main", "sessionId": "s-1", "transcript": "x"', "body is not valid JSON"),
        (b"\xff\xfe not utf-8", "body is not valid JSON"),
        (b'["agentId", "sessionId", "transcript"]', "body must be a JSON object"),
        (b'{"agentId": "main", "transcript": "x"}', "missing field 'sessionId'"),
        (b'{"agentId": "main", "sessionId": 7, "transcript": "x"}', "field 'sessionId' must be a string"),
    ],
)
def test_invalid_body_is_400_and_recorded(server, body, error):
    response = post(server, body)

    assert response.status_code == 400
    assert response.json() == {"error": error}
    [record] = server.requests()
    assert record["status"] == 400
    assert server.body(record["n"]) == body
    assert server.accepted() == []


def test_chunked_body_is_accepted_and_recorded_byte_for_byte(server):
    body = upload_body(transcript="line of transcript ✓\n" * 150_000)  # a few MiB: several reads
    pieces = [body[:1], body[1:70_000], body[70_000:2_500_000], body[2_500_000:]]

    response = post(server, iter(pieces))  # an iterator body makes requests send it chunked

    assert response.status_code == 201
    [record] = server.accepted()
    assert record["chunked"] is True
    assert record["bodyBytes"] == len(body)
    assert server.body(record["n"]) == body


def test_same_idempotency_key_is_a_duplicate(server):
    body = upload_body()

    first = post(server, body, headers={"Idempotency-Key": "s-1:abc"})
    second = post(server, body, headers={"Idempotency-Key": "s-1:abc"})
    other = post(server, body, headers={"Idempotency-Key": "s-1:def"})

    assert (first.status_code, first.json()) == (201, {"status": "created", "id": "1"})
    assert (second.status_code, second.json()) == (200, {"status": "duplicate", "id": "1"})
    assert (other.status_code, other.json()) == (201, {"status": "created", "id": "3"})
    assert [(r["status"], r["duplicate"]) for r in server.requests()] == [
        (201, False),
        (200, True),
        (201, False),
    ]
    assert [r["n"] for r in server.accepted()] == [1, 3]


def test_status_fault_sends_retry_after_and_counts_down_then_succeeds(server):
    server.set_faults(
        [{"match": {"sessionId": "s-1"}, "times": 2, "action": {"status": 503, "retryAfter": "2"}}]
    )

    first = post(server, upload_body(session="s-1"), headers={"X-Session-Id": "s-1"})
    unmatched = post(server, upload_body(session="s-2"), headers={"X-Session-Id": "s-2"})
    second = post(server, upload_body(session="s-1"))  # no header: matched on the body's sessionId
    third = post(server, upload_body(session="s-1"), headers={"X-Session-Id": "s-1"})

    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert first.json() == {"error": "injected fault: HTTP 503"}
    assert unmatched.status_code == 201 and "Retry-After" not in unmatched.headers
    assert second.status_code == 503 and second.headers["Retry-After"] == "2"
    assert third.status_code == 201
    records = server.requests()
    assert [(r["sessionId"], r["status"], r["fault"]) for r in records] == [
        ("s-1", 503, "status:503"),
        ("s-2", 201, None),
        ("s-1", 503, "status:503"),
        ("s-1", 201, None),
    ]
    assert server.body(1) == upload_body(session="s-1"), "a failed request's body is recorded too"
    assert server.faults()[0]["times"] == 0


def test_faults_over_http_with_a_custom_body(server):
    rules = [
        {"match": {}, "times": None, "action": {"status": 400, "body": '{"error": "schema v3 unsupported"}'}}
    ]

    assert (
        requests.post(f"{server.url}/_control/faults", json={"rules": rules}, timeout=10).status_code == 200
    )
    assert requests.get(f"{server.url}/_control/faults", timeout=10).json() == {"rules": rules}
    rejected = [post(server, upload_body(session=f"s-{i}")) for i in range(3)]
    assert requests.delete(f"{server.url}/_control/faults", timeout=10).status_code == 200
    accepted = post(server, upload_body(session="s-9"))

    assert [r.status_code for r in rejected] == [400, 400, 400]
    assert rejected[0].json() == {"error": "schema v3 unsupported"}
    assert accepted.status_code == 201
    bad = requests.post(f"{server.url}/_control/faults", json={"rules": [{"action": {}}]}, timeout=10)
    assert bad.status_code == 400


def test_reset_fault_drops_the_connection_then_the_retry_succeeds(server):
    server.set_faults([{"match": {"sessionId": "big"}, "times": 1, "action": {"reset": True}}])
    body = upload_body(session="big", transcript="x" * (3 << 20))

    with pytest.raises(requests.ConnectionError):
        post(server, body, headers={"X-Session-Id": "big"})
    retry = post(server, body, headers={"X-Session-Id": "big"})

    assert retry.status_code == 201
    reset, accepted = server.requests()
    assert (reset["status"], reset["fault"]) == (None, "reset")
    assert 0 < reset["bodyBytes"] < len(body), "only the start of the body was read"
    assert server.body(reset["n"]) == body[: reset["bodyBytes"]]
    assert (accepted["status"], accepted["fault"]) == (201, None)


def test_reset_fault_on_a_small_body_matched_after_reading_it(server):
    server.set_faults([{"match": {"sessionId": "s-1"}, "times": None, "action": {"reset": True}}])

    with pytest.raises(requests.ConnectionError):
        post(server, upload_body(session="s-1"))
    assert post(server, upload_body(session="s-2")).status_code == 201
    assert [r["fault"] for r in server.requests()] == ["reset", None]


def test_hang_fault_makes_the_client_time_out(server):
    # A long hang (stop() ends it): the client's 0.5 s read timeout fires long before the answer would
    # come, so the bound below is generous on a loaded machine and still fails if the hang is not a hang
    # (requests would then not raise) or the client waited for the answer (30 s).
    server.set_faults([{"match": {}, "times": 1, "action": {"hang": 30}}])

    started = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        post(server, upload_body(), timeout=0.5)
    assert time.monotonic() - started < 15

    [record] = server.requests()
    assert record["fault"] == "hang"
    assert record["status"] == 201, "the upload was taken; only the answer was late"
    assert post(server, upload_body(), timeout=5).status_code == 201


def test_delay_fault_is_slow_but_succeeds(server):
    server.set_faults([{"match": {}, "times": 1, "action": {"delay": 0.3}}])

    started = time.monotonic()
    response = post(server, upload_body())

    assert response.status_code == 201
    assert time.monotonic() - started >= 0.3
    assert server.requests()[0]["fault"] == "delay"


def test_store_bodies_false_keeps_only_hash_and_size(tmp_path):
    body = upload_body(transcript="y" * 100_000)
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus", store_bodies=False) as server:
        assert post(server, body).status_code == 201
        [record] = server.accepted()
        with pytest.raises(LookupError):
            server.body(1)

    assert record["bodySha256"] == hashlib.sha256(body).hexdigest()
    assert record["bodyBytes"] == len(body)
    assert record["bodyFile"] is None
    assert list((tmp_path / "nexus" / "bodies").iterdir()) == []


def test_body_above_max_parse_bytes_is_not_parsed_and_ids_come_from_headers(tmp_path):
    body = b'{"agentId": "not parsed' + b"z" * 5000
    with NexusStandin(api_key=API_KEY, record_dir=tmp_path / "nexus", max_parse_bytes=1024) as server:
        response = post(server, body, headers={"X-Agent-Id": "main", "X-Session-Id": "s-big"})
        [record] = server.requests()

    assert response.status_code == 201
    assert (record["agentId"], record["sessionId"]) == ("main", "s-big")
    assert record["bodyBytes"] == len(body)


def test_unknown_path_is_404_other_methods_405_and_reset_clears(server):
    assert requests.get(f"{server.url}/api/other", timeout=10).status_code == 404
    response = requests.get(f"{server.url}/api/sessions", params={"code": API_KEY}, timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert requests.put(f"{server.url}/_control/requests", timeout=10).status_code == 405
    assert post(server, upload_body()).status_code == 201
    server.set_faults([{"match": {}, "times": None, "action": {"status": 500}}])

    assert requests.post(f"{server.url}/_control/reset", timeout=10).status_code == 200

    assert server.requests() == [] and server.faults() == []
    assert server.requests_file.read_text() == ""
    assert post(server, upload_body()).json() == {"status": "created", "id": "1"}


def test_keep_alive_serves_several_requests_on_one_connection(server):
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    statuses, sockets = [], []
    for session in ["s-1", "s-2"]:
        connection.request(
            "POST", f"/api/sessions?code={API_KEY}", body=upload_body(session=session), headers=JSON
        )
        response = connection.getresponse()
        response.read()
        statuses.append(response.status)
        sockets.append(connection.sock)
    connection.close()

    assert statuses == [201, 201]
    assert sockets[0] is sockets[1] is not None


def test_cli_serves_on_a_free_port_and_stops_on_sigterm(tmp_path):
    port_file, record_dir = tmp_path / "port", tmp_path / "nexus"
    env = {**os.environ, "NEXUS_STANDIN_TEST_KEY": API_KEY}
    command = [sys.executable, str(ROOT / "tools" / "standins" / "nexus.py"), "--port", "0"]
    command += ["--api-key-env", "NEXUS_STANDIN_TEST_KEY", "--record-dir", str(record_dir)]
    command += ["--port-file", str(port_file), "--no-store-bodies"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        port = int(port_file.read_text())
        url = f"http://127.0.0.1:{port}"
        response = requests.post(
            f"{url}/api/sessions", params={"code": API_KEY}, data=upload_body(), timeout=10
        )
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=15)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert response.status_code == 201
    assert process.returncode == 0
    assert stdout == f"nexus stand-in listening on {url}\n"
    assert "POST /api/sessions -> 201 (main/s-1" in stderr
    assert API_KEY not in stdout + stderr + (record_dir / "requests.jsonl").read_text()
    [record] = [json.loads(line) for line in (record_dir / "requests.jsonl").read_text().splitlines()]
    assert record["bodySha256"] == hashlib.sha256(upload_body()).hexdigest()
    assert list((record_dir / "bodies").iterdir()) == []
