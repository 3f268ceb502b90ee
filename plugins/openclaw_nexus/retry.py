"""When to retry an upload, and how long to wait: the tenacity policy the upload operator hands to
``HttpOperator(retry_args=...)``. Airflow-free.

Transient: connection errors, timeouts, 408, 429 and 5xx except 501. Waits grow exponentially with
jitter up to a cap, and a ``Retry-After`` header (seconds or HTTP date) is honoured up to its own cap.
Everything else (other 4xx, 501) is permanent for this attempt and returned at once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
import tenacity

PERMANENT_5XX = {501}


def is_transient_status(status: int) -> bool:
    return status in (408, 429) or (500 <= status <= 599 and status not in PERMANENT_5XX)


def is_transient_exception(exc: BaseException) -> bool:
    return isinstance(exc, (requests.ConnectionError, requests.Timeout))


def retry_after_seconds(response: requests.Response | None) -> float | None:
    """The server's ``Retry-After`` in seconds, or None when absent or unreadable."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class BackoffHonouringRetryAfter(tenacity.wait.wait_base):
    """Capped exponential backoff with jitter, unless the server said how long to wait."""

    def __init__(self, initial: float, cap: float, retry_after_cap: float):
        self.initial, self.cap, self.retry_after_cap = initial, cap, retry_after_cap

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        if outcome is not None and not outcome.failed:
            told = retry_after_seconds(outcome.result())
            if told is not None:
                return min(told, self.retry_after_cap)
        ceiling: float = min(self.cap, self.initial * 2 ** (retry_state.attempt_number - 1))
        # "Equal jitter": at least half the backoff, so retries never bunch up at zero.
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def _give_back_last_outcome(retry_state: tenacity.RetryCallState) -> Any:
    """After the last attempt, return the last response (or raise its exception) to the caller."""
    outcome = retry_state.outcome
    assert outcome is not None, "tenacity calls retry_error_callback after an attempt, with its outcome"
    return outcome.result()


def retry_args(
    *,
    attempts: int = 5,
    initial_wait: float = 1.0,
    max_wait: float = 30.0,
    retry_after_cap: float = 120.0,
    before_sleep: Callable[[tenacity.RetryCallState], None] | None = None,
) -> dict[str, Any]:
    """Arguments for ``tenacity.Retrying``, as ``HttpOperator(retry_args=...)`` takes them."""
    return {
        "stop": tenacity.stop_after_attempt(attempts),
        "wait": BackoffHonouringRetryAfter(initial_wait, max_wait, retry_after_cap),
        "retry": tenacity.retry_if_exception(is_transient_exception)
        | tenacity.retry_if_result(lambda response: is_transient_status(response.status_code)),
        "retry_error_callback": _give_back_last_outcome,
        "before_sleep": before_sleep,
    }
