"""tools.stacks.celery_stack's search for the key in Redis (``CeleryStack.leaks()``, which
test_celery_run.py and test_fleet.py call after their stack stopped): it searches what the stack's keys
held when ``stop()`` deleted them, kombu's base64 message bodies decoded, and no other stack's keys.

No Airflow is started: the keys are planted under the stack's prefix as kombu's Redis transport writes
them (a queued message in a list, an unacked ``[message, exchange, routing_key]`` in a hash, a binding in a
set), in Redis database ``REDIS_DB`` as a running stack's are.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from tools.stacks.celery_stack import celery_stack, new_key_prefix, postgres_database, redis_client

SECRET = "nxk-celery-leak-scan-6f1e0c2b9a-SECRET"


def message(body: dict) -> dict:
    """A kombu message as its Redis transport stores it (JSON-encoded): the body JSON, base64-encoded."""
    return {
        "body": base64.b64encode(json.dumps(body).encode()).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "execute_workload"},
        "properties": {"body_encoding": "base64", "delivery_tag": "t-1", "priority": 0},
    }


def test_the_key_in_what_the_stacks_redis_keys_held_is_found_after_stop_deleted_them(tmp_path: Path):
    client = redis_client()
    other = f"{new_key_prefix()}default"  # another stack's key, holding the secret: not this stack's leak
    with postgres_database("session_upload_leakscan") as database:
        stack = celery_stack(tmp_path / "airflow", {}, database)
        stack.home.mkdir(parents=True)
        prefix = stack.key_prefix
        # A string in which the key follows its own first half: Redis's DUMP (the scan before) stores
        # the second occurrence LZF-compressed, as a back-reference, so the key is not in the dump's bytes.
        client.set(f"{prefix}plain", json.dumps({"hint": SECRET[:20], "pad": "y" * 50, "value": SECRET}))
        client.hset(f"{prefix}unacked", "t-1", json.dumps([message({"conn": SECRET}), "", "default"]))
        client.rpush(f"{prefix}default", json.dumps(message({"workload": "no secret here"})))
        client.sadd(f"{prefix}_kombu.binding.default", "default\x06\x16\x06\x16default")
        client.set(other, SECRET)
        try:
            assert SECRET.encode() not in (client.dump(f"{prefix}plain") or b""), "the DUMP case is not made"
            stack.stop()
            left = sorted(client.scan_iter(match=f"{prefix}*"))
            found = stack.leaks(SECRET)
        finally:
            client.delete(other)
    assert left == [], "stop() deletes the stack's keys"
    assert found == [f"redis key {prefix}plain", f"redis key {prefix}unacked"]


def test_a_stack_whose_redis_keys_never_held_the_key_reports_none(tmp_path: Path):
    client = redis_client()
    with postgres_database("session_upload_leakscan") as database:
        stack = celery_stack(tmp_path / "airflow", {}, database)
        stack.home.mkdir(parents=True)
        client.rpush(f"{stack.key_prefix}default", json.dumps(message({"workload": "no secret here"})))
        stack.stop()
        found = stack.leaks(SECRET)
    assert found == []
    assert list(stack.redis_left) == [f"{stack.key_prefix}default".encode()], "what the scan searched"
