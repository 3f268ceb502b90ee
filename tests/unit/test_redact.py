"""openclaw_nexus.redact: the API key never leaves in a text."""

from __future__ import annotations

import pytest

from openclaw_nexus.redact import MASK, excerpt, scrub

KEY = "s3cr3t-K3y_9"
CONNECTION_ERROR = (
    "HTTPConnectionPool(host='127.0.0.1', port=1): Max retries exceeded with url: "
    "/api/sessions?code={key} (Caused by NewConnectionError('<urllib3.connection.HTTPConnection "
    "object at 0x7f3a2c1e4d90>: Failed to establish a new connection: [Errno 111] Connection refused'))"
)


def test_mask():
    assert MASK == "***"


def test_requests_connection_error_text():
    text = CONNECTION_ERROR.format(key=KEY)
    assert scrub(text) == CONNECTION_ERROR.format(key="***")
    assert KEY not in scrub(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"/api/sessions?code={KEY}", "/api/sessions?code=***"),
        (f"/api/sessions?x=1&code={KEY}&y=2", "/api/sessions?x=1&code=***&y=2"),
        (f"/api/sessions?code={KEY}#frag", "/api/sessions?code=***#frag"),
        (f"url='http://h:8080/api/sessions?CODE={KEY}'", "url='http://h:8080/api/sessions?CODE=***'"),
        (f'"http://h/api?a=b;code={KEY}"', '"http://h/api?a=b;code=***"'),
        (f"a ?code={KEY} b &code=other c", "a ?code=*** b &code=*** c"),
        ("/api?code=", "/api?code=***"),
        # Not the key parameter: left alone.
        (f"/api?barcode={KEY}", f"/api?barcode={KEY}"),
        (f"zipcode={KEY}", f"zipcode={KEY}"),
        ("HTTP 503 from Nexus: Service Unavailable", "HTTP 503 from Nexus: Service Unavailable"),
        ("", ""),
    ],
)
def test_code_parameter_is_masked(text, expected):
    assert scrub(text) == expected


def test_literal_secrets_are_masked():
    text = f"Authorization failed for key {KEY} (header x-functions-key: {KEY}); user=alice"
    assert scrub(text, [KEY]) == "Authorization failed for key *** (header x-functions-key: ***); user=alice"


def test_empty_and_missing_secrets_are_ignored():
    text = "nothing secret here: code-review ok"
    assert scrub(text, [None, ""]) == text


def test_both_at_once():
    text = CONNECTION_ERROR.format(key=KEY) + f" | body echoed {KEY}"
    assert scrub(text, [KEY]) == CONNECTION_ERROR.format(key="***") + " | body echoed ***"


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("short", 300, "short"),
        ("  many\n\nlines\tand   spaces  ", 300, "many lines and spaces"),
        ("x" * 300, 300, "x" * 300),
        ("x" * 301, 300, "x" * 299 + "…"),
        ("abcdefghij", 5, "abcd…"),
    ],
)
def test_excerpt(text, limit, expected):
    assert excerpt(text, limit) == expected
    assert len(excerpt(text, limit)) <= limit


def test_excerpt_default_limit_is_300():
    assert len(excerpt("y" * 1000)) == 300
