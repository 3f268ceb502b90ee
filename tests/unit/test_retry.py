"""openclaw_nexus.retry: which failures are retried, and how long each wait is (no network, no sleeping)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import requests
import tenacity

from openclaw_nexus import retry as retry_module
from openclaw_nexus.retry import (
    is_transient_exception,
    is_transient_status,
    retry_after_seconds,
    retry_args,
)


def response(status: int, retry_after: str | None = None) -> requests.Response:
    built = requests.Response()
    built.status_code = status
    built._content = b"{}"
    if retry_after is not None:
        built.headers["Retry-After"] = retry_after
    return built


class Server:
    """A fake call: hands out the given responses, raising the exceptions among them."""

    def __init__(self, *outcomes):
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self):
        outcome = self.outcomes[self.calls]
        self.calls += 1
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def run(server: Server, **kwargs) -> tuple[object, list[float]]:
    waits: list[float] = []
    retrying = tenacity.Retrying(**retry_args(**kwargs), sleep=waits.append)
    return retrying(server), waits


@pytest.mark.parametrize(
    ("status", "transient"),
    [
        (408, True),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (504, True),
        (599, True),
        (200, False),
        (201, False),
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (409, False),
        (413, False),
        (422, False),
        (501, False),
        (600, False),
    ],
)
def test_is_transient_status(status, transient):
    assert is_transient_status(status) is transient


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (requests.ConnectionError("refused"), True),
        (requests.ConnectTimeout("slow"), True),
        (requests.ReadTimeout("slow"), True),
        (requests.HTTPError("500"), False),
        (ValueError("bad"), False),
        (OSError("disk"), False),
    ],
)
def test_is_transient_exception(exc, transient):
    assert is_transient_exception(exc) is transient


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("2", 2.0), ("0", 0.0), (" 120 ", 120.0), ("garbage", None), ("1.5", None), ("-3", None), ("", None)],
)
def test_retry_after_seconds(header, seconds):
    assert retry_after_seconds(response(429, header)) == seconds


def test_retry_after_missing():
    assert retry_after_seconds(response(429)) is None
    assert retry_after_seconds(None) is None


@pytest.mark.parametrize("header", ["\xb2", "\xb3", "\u0663"])  # latin-1 superscripts, an Arabic digit
def test_retry_after_non_ascii_digits_are_unreadable_not_a_crash(header):
    assert retry_after_seconds(response(503, header)) is None


def http_date_in(seconds: int) -> tuple[str, datetime]:
    """An HTTP-date that many seconds from now, and the instant it names (HTTP-dates have whole seconds)."""
    when = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return format_datetime(when, usegmt=True), when


def until(when: datetime, start: datetime, end: datetime) -> tuple[float, float]:
    """The least and the most seconds from an instant between start and end to when."""
    return (when - end).total_seconds(), (when - start).total_seconds()


def test_retry_after_http_date():
    header, when = http_date_in(90)
    start = datetime.now(UTC)
    seconds = retry_after_seconds(response(503, header))
    least, most = until(when, start, datetime.now(UTC))
    assert least <= seconds <= most, "the seconds from the call to that date, however slow the machine"


def test_retry_after_http_date_in_the_past_is_zero():
    assert retry_after_seconds(response(503, "Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0


def test_retry_after_is_honoured_exactly():
    server = Server(response(429, "3"), response(200))
    result, waits = run(server)
    assert result.status_code == 200
    assert waits == [3.0]
    assert server.calls == 2


def test_retry_after_is_capped():
    result, waits = run(Server(response(503, "500"), response(200)), retry_after_cap=120.0)
    assert result.status_code == 200
    assert waits == [120.0]


def test_retry_after_http_date_drives_the_wait():
    header, when = http_date_in(40)
    start = datetime.now(UTC)
    _, waits = run(Server(response(503, header), response(200)))
    least, most = until(when, start, datetime.now(UTC))
    assert len(waits) == 1
    assert least <= waits[0] <= most, "the date's distance, not the backoff (at most 1 s at attempt 1)"


def test_exponential_backoff_with_jitter_stays_in_bounds():
    for _ in range(50):
        server = Server(response(503), response(502), response(504), response(500), response(200))
        result, waits = run(server, attempts=5, initial_wait=1.0, max_wait=30.0)
        assert result.status_code == 200
        assert len(waits) == 4
        for n, wait in enumerate(waits, start=1):
            ceiling = 1.0 * 2 ** (n - 1)
            assert ceiling / 2 <= wait <= ceiling, (n, wait)


@pytest.mark.parametrize(
    ("uniform", "expected"),
    [
        # "Equal jitter": half the backoff, plus up to the other half; the cap applies to the backoff.
        (lambda a, b: a, [1.0, 2.0, 3.0, 3.0]),
        (lambda a, b: b, [2.0, 4.0, 6.0, 6.0]),
    ],
)
def test_exponential_backoff_bounds_and_cap(monkeypatch, uniform, expected):
    monkeypatch.setattr(retry_module.random, "uniform", uniform)
    server = Server(response(503), response(502), response(500), response(504), response(200))
    _, waits = run(server, attempts=5, initial_wait=2.0, max_wait=6.0)
    assert waits == expected


def test_permanent_status_is_returned_at_once():
    server = Server(response(400), response(200))
    result, waits = run(server)
    assert result.status_code == 400
    assert waits == []
    assert server.calls == 1


@pytest.mark.parametrize("status", [401, 403, 404, 413, 501, 200])
def test_no_retry_for_non_transient_statuses(status):
    server = Server(response(status), response(200))
    result, waits = run(server)
    assert result.status_code == status
    assert (waits, server.calls) == ([], 1)


def test_connection_error_is_retried(monkeypatch):
    monkeypatch.setattr(retry_module.random, "uniform", lambda a, b: b)
    server = Server(requests.ConnectionError("refused"), requests.ReadTimeout("slow"), response(200))
    result, waits = run(server, initial_wait=1.0)
    assert result.status_code == 200
    assert waits == [1.0, 2.0]
    assert server.calls == 3


def test_exhausted_on_503_returns_the_last_response():
    last = response(503)
    server = Server(response(503), response(503), last, response(200))
    result, waits = run(server, attempts=3)
    assert result is last
    assert server.calls == 3
    assert len(waits) == 2


def test_exhausted_on_connection_error_raises_it():
    final = requests.ConnectionError("refused, third time")
    server = Server(requests.ConnectionError("1"), requests.ConnectionError("2"), final, response(200))
    with pytest.raises(requests.ConnectionError) as caught:
        run(server, attempts=3)
    assert caught.value is final
    assert server.calls == 3


def test_non_transient_exception_is_raised_at_once():
    server = Server(ValueError("bad body"), response(200))
    with pytest.raises(ValueError, match="bad body"):
        run(server)
    assert server.calls == 1


def test_before_sleep_is_called_before_each_wait():
    seen = []
    server = Server(response(429, "1"), response(503, "2"), response(200))
    waits: list[float] = []
    retrying = tenacity.Retrying(
        **retry_args(before_sleep=lambda state: seen.append(state.attempt_number)), sleep=waits.append
    )
    assert retrying(server).status_code == 200
    assert seen == [1, 2]
    assert waits == [1.0, 2.0]


def test_retry_args_keys():
    assert set(retry_args()) == {"stop", "wait", "retry", "retry_error_callback", "before_sleep"}
