"""Nexus over HTTP: a hook that sends the API key as ``?code=`` and an operator that uploads one session.

Built on providers-http: ``NexusHook`` is an ``HttpHook`` whose Connection password is the API key
(never basic auth), and ``SessionUploadOperator`` is an ``HttpOperator`` that streams one transcript
from disk with the operator's own ``retry_args`` machinery. Neither lets the key into a log line,
an exception text, a rendered field or an XCom.
"""

from __future__ import annotations

import resource
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import requests
import tenacity
from airflow.providers.http.hooks.http import HttpHook
from airflow.providers.http.operators.http import HttpOperator
from airflow.sdk.log import mask_secret

from openclaw_nexus import conversations, metrics, stores
from openclaw_nexus.compat import AirflowException, AirflowFailException
from openclaw_nexus.config import DEFAULT_CONN_ID, state_dir
from openclaw_nexus.redact import excerpt, scrub
from openclaw_nexus.retry import is_transient_status, retry_args
from openclaw_nexus.staging import Transcript
from openclaw_nexus.transcript import TranscriptBody, TranscriptError, idempotency_key, snapshot

ENDPOINT = "/api/sessions"


class NexusConfigError(AirflowFailException):
    """The Nexus Connection cannot be used as it is (for example, it has no API key)."""


class NexusHook(HttpHook):
    """``HttpHook`` for Nexus: the Connection's password is the API key, sent as the ``code`` query parameter.

    Exceptions from ``requests`` carry the full URL; this hook re-raises them with the key scrubbed.
    """

    hook_name = "Nexus"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api_key: str | None = None

    def _configure_session_from_auth(self, session: requests.Session, connection: Any) -> requests.Session:
        if not connection.password:
            raise NexusConfigError(
                f"Connection {self.http_conn_id!r} has no password: set the Nexus API key as its password"
            )
        self.api_key = connection.password
        mask_secret(self.api_key)
        session.auth = None
        session.params = {"code": self.api_key}
        return session

    def run_and_check(
        self,
        session: requests.Session,
        prepped_request: requests.PreparedRequest,
        extra_options: dict[str, Any],
    ) -> requests.Response:
        """Send the request and return the response whatever its status (the operator judges it)."""
        assert prepped_request.url is not None, "HttpHook.run prepares every request with its URL"
        settings = session.merge_environment_settings(
            prepped_request.url,
            proxies=session.proxies,
            stream=session.stream,
            verify=session.verify,
            cert=session.cert,
        )
        try:
            return session.send(
                prepped_request, timeout=extra_options.get("timeout"), allow_redirects=False, **settings
            )
        except requests.RequestException as exc:
            # Same type, so the retry policy still sees a ConnectionError or a Timeout.
            failure = type(exc)(scrub(str(exc), [self.api_key]))
        raise failure  # outside the except block: no chained original text in any traceback


class SessionUploadOperator(HttpOperator):
    """Upload one completed session's transcript to Nexus: ``POST /api/sessions?code=<key>``.

    ``session`` is one item discovery produced (``agentId``, ``sessionId``, ``file``, ``size``,
    ``mtimeNs``). The file is read here, never through XCom, streamed as the JSON body, and checked
    against what discovery saw before and after the request. Returns a small receipt (no response body).
    On failure it pushes an ``error`` XCom that ``job_result`` reports.
    """

    template_fields: Sequence[str] = (*HttpOperator.template_fields, "session")
    ui_color = "#cdeaf7"

    def __init__(
        self,
        *,
        session: Any,
        http_conn_id: str = DEFAULT_CONN_ID,
        connect_timeout: float = 10.0,
        read_timeout: float = 300.0,
        http_attempts: int = 5,
        backoff_initial: float = 1.0,
        backoff_max: float = 30.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(endpoint=ENDPOINT, method="POST", http_conn_id=http_conn_id, **kwargs)
        self.session = session
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.http_attempts = http_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self._hook: NexusHook | None = None

    @property
    def hook(self) -> NexusHook:
        if self._hook is None:
            self._hook = NexusHook(method=self.method, http_conn_id=self.http_conn_id)
        return self._hook

    def execute(self, context: Any) -> dict[str, Any]:
        session = self.session
        try:
            return self._upload(context, session)
        except Exception as exc:  # every failure is reported, then re-raised without the key
            permanent = isinstance(exc, AirflowFailException) or (
                isinstance(exc, (TranscriptError, OSError, ValueError))
                and not isinstance(exc, requests.RequestException)  # requests' errors are OSErrors too
            )
            reason = scrub(str(exc) or type(exc).__name__, [self.hook.api_key])
        metrics.errors("upload", agent_id=session.get("agentId"))
        context["ti"].xcom_push(key="error", value=_error(session, "upload", reason))
        if permanent:
            raise AirflowFailException(reason)
        raise AirflowException(reason)

    def _upload(self, context: Any, session: dict[str, Any]) -> dict[str, Any]:
        root = state_dir()
        transcript = stores.open_transcript(root, session)
        try:
            return self._send(context, session, transcript, root)
        except BaseException:
            stores.discard(transcript)
            raise

    def _send(
        self, context: Any, session: dict[str, Any], transcript: Transcript, root: Path
    ) -> dict[str, Any]:
        label = f"{session['agentId']}/{session['sessionId']}"
        peak_before = _peak_rss_mib()
        body = TranscriptBody(transcript.path, session["agentId"], session["sessionId"])
        receipt = {
            "agentId": session["agentId"],
            "sessionId": session["sessionId"],
            "file": session["file"],
            "conversation": session.get("conversation"),
            "kind": session.get("kind"),
            "store": session.get("store"),
            "size": body.size,
            "mtimeNs": snapshot(transcript.path).mtime_ns,
            "sha256": body.sha256,
            "staged": transcript.staged,
            "duplicateOf": stores.already_sent(root, session, size=body.size, sha256=body.sha256),
            "readSeconds": transcript.read_seconds,
            "status": None,
        }
        if transcript.read_seconds is not None:
            self.log.info("Read %s from OpenClaw's database in %.3f s", label, transcript.read_seconds)
        if receipt["duplicateOf"]:
            self.log.info(
                "%s: these %d bytes (sha256 %s) were uploaded before, as %s: not sent again",
                label,
                body.size,
                body.sha256,
                receipt["duplicateOf"],
            )
            metrics.already_sent(session)
            return receipt
        self.log.info("Uploading %s: %s, %d bytes, sha256 %s", label, session["file"], body.size, body.sha256)
        # HttpOperator annotates data as dict | str; it hands it to requests, which streams a file-like body.
        self.data = body  # type: ignore[assignment]
        self.headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": idempotency_key(
                conversations.stem(session["sessionId"], session.get("conversation")), body.sha256
            ),
            "X-Agent-Id": session["agentId"],
            "X-Session-Id": session["sessionId"],
        }
        self.extra_options = {"timeout": (self.connect_timeout, self.read_timeout)}
        self.retry_args = retry_args(
            attempts=self.http_attempts,
            initial_wait=self.backoff_initial,
            max_wait=self.backoff_max,
            before_sleep=self._log_retry,
        )
        self.response_filter = _the_response
        try:
            response: requests.Response = super().execute(context)
        except (requests.ConnectionError, requests.Timeout) as exc:  # already scrubbed by the hook
            raise AirflowException(
                f"Nexus did not answer {label} after {self.http_attempts} attempts: "
                f"{type(exc).__name__}: {exc}"
            ) from None

        if response.ok:  # Nexus holds these bytes, whatever the check below finds
            metrics.uploaded(session, body.size)
        held = (
            f"Nexus holds the earlier {body.size} bytes (sha256 {body.sha256[:12]}…), " if response.ok else ""
        )
        stores.check_unchanged(session, transcript, held)
        if not response.ok:
            detail = f"Nexus answered HTTP {response.status_code} for {label}: {excerpt(response.text)}"
            if is_transient_status(response.status_code):
                raise AirflowException(detail + f" (after {self.http_attempts} attempts)")
            raise AirflowFailException(detail + " (permanent: not retried)")
        self.log.info("Nexus accepted %s: HTTP %d", label, response.status_code)
        # The body is streamed: the process's high-water mark should not grow with the transcript.
        self.log.info(
            "Peak RSS after uploading %s (%d bytes): %d MiB (%d MiB before it)",
            label,
            body.size,
            _peak_rss_mib(),
            peak_before,
        )
        return {**receipt, "status": response.status_code}

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        outcome = retry_state.outcome
        assert outcome is not None, "tenacity calls before_sleep after an attempt, with its outcome"
        if outcome.failed:
            what = scrub(f"{type(outcome.exception()).__name__}: {outcome.exception()}", [self.hook.api_key])
        else:
            what = f"HTTP {outcome.result().status_code}"
        wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
        self.log.warning(
            "Nexus attempt %d/%d for %s/%s failed (%s); retrying in %.1f s",
            retry_state.attempt_number,
            self.http_attempts,
            self.session["agentId"],
            self.session["sessionId"],
            what,
            wait,
        )


def _peak_rss_mib() -> int:
    """This process's peak resident set size so far, in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _the_response(response: requests.Response) -> requests.Response:
    """``response_filter`` that hands the response back, so its text is never pushed to XCom."""
    return response


def _error(session: dict[str, Any], stage: str, reason: str) -> dict[str, Any]:
    return {
        "agentId": session.get("agentId"),
        "sessionId": session.get("sessionId"),
        "file": session.get("file"),
        **({"conversation": session["conversation"]} if session.get("conversation") is not None else {}),
        "stage": stage,
        "reason": reason,
    }
