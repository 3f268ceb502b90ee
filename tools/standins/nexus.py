"""A stand-in for the Nexus analytics API: a small, real HTTP server for demos and tests.

It serves ``POST /api/sessions?code=<apiKey>`` the way Nexus does, records every request it handles
(one JSON line each in ``<record_dir>/requests.jsonl``, raw bodies in ``<record_dir>/bodies/<n>.body``)
so tests can assert on exactly what arrived, and fails on demand (an HTTP status, a connection reset,
a hang, a delay) through ``/_control/faults`` or :meth:`NexusStandin.set_faults`. Each record carries
``receivedAt`` (epoch seconds when the request's headers arrived), so tests can measure retry gaps.
In-process users may also pass ``on_request``: a callback run for every upload request once its body
has been read (or cut short by a reset), before the answer goes out; tests use it to change the disk
at a known point of a run.

Stdlib only. It binds to loopback only, because the ``/_control/*`` endpoints take no key. The API key
is never written anywhere: not in responses, logs or records (the ``code`` parameter is recorded as
``***``).

    python tools/standins/nexus.py --port 0 --port-file port.txt --api-key-env NEXUS_KEY --record-dir rec
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import hmac
import ipaddress
import json
import os
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

UPLOAD_PATH = "/api/sessions"
REQUIRED_FIELDS = ("agentId", "sessionId", "transcript")
CHUNK_BYTES = 1 << 20  # bodies are read, hashed and written in pieces of at most this size
RESET_AFTER_BYTES = 64 << 10  # a "reset" fault reads this much of the body before dropping the connection
DEFAULT_MAX_PARSE_BYTES = 64 << 20  # larger bodies are recorded and hashed but not parsed as JSON
CONTROL_BODY_LIMIT = 1 << 20
MAX_LINE = 65536  # longest chunk-size or trailer line accepted
ROUTES: dict[str, set[str]] = {
    UPLOAD_PATH: {"POST"},
    "/_control/requests": {"GET"},
    "/_control/faults": {"GET", "POST", "DELETE"},
    "/_control/reset": {"POST"},
}
FAULT_KINDS = ("status", "reset", "hang", "delay")


class BadBody(Exception):
    """The body's framing is broken (bad Content-Length or chunk, or it ended early): 400 and close."""


def validate_upload(data: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """Parse an upload body: ``(payload, None)`` if it is valid, else ``(None, short reason)``."""
    try:
        payload = json.loads(data)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None, "body is not valid JSON"
    if not isinstance(payload, dict):
        return None, "body must be a JSON object"
    for field in REQUIRED_FIELDS:
        if field not in payload:
            return None, f"missing field {field!r}"
        if not isinstance(payload[field], str):
            return None, f"field {field!r} must be a string"
    return payload, None


def normalize_rule(rule: Any) -> dict[str, Any]:
    """Check one fault rule and return a private copy of it; raises ValueError on a malformed rule."""
    if not isinstance(rule, dict):
        raise ValueError("a rule must be a JSON object")
    if set(rule) - {"match", "times", "action"}:
        raise ValueError('a rule has only "match", "times" and "action"')
    match = rule.get("match") or {}
    if not isinstance(match, dict) or set(match) - {"sessionId"}:
        raise ValueError('"match" must be {} or {"sessionId": "..."}')
    if "sessionId" in match and not isinstance(match["sessionId"], str):
        raise ValueError('"match.sessionId" must be a string')
    times = rule.get("times")
    if times is not None and (isinstance(times, bool) or not isinstance(times, int) or times < 0):
        raise ValueError('"times" must be a non-negative integer or null')
    action = rule.get("action")
    if not isinstance(action, dict):
        raise ValueError('"action" must be a JSON object')
    kinds = [kind for kind in FAULT_KINDS if kind in action]
    if len(kinds) != 1:
        raise ValueError('"action" must have exactly one of "status", "reset", "hang", "delay"')
    kind = kinds[0]
    if kind == "status":
        status = action["status"]
        if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
            raise ValueError('"status" must be an HTTP status code')
        if set(action) - {"status", "body", "retryAfter"}:
            raise ValueError('a status action has only "status", "body" and "retryAfter"')
        if action.get("body") is not None and not isinstance(action["body"], str):
            raise ValueError('"body" must be a string')
        retry_after = action.get("retryAfter")
        if isinstance(retry_after, bool) or not isinstance(retry_after, str | int | None):
            raise ValueError('"retryAfter" must be a string or an integer')
    elif kind == "reset":
        if action != {"reset": True}:
            raise ValueError('a reset action is exactly {"reset": true}')
    else:
        seconds = action[kind]
        if set(action) != {kind} or isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValueError(f'a {kind} action is exactly {{"{kind}": seconds}}')
        if seconds < 0:
            raise ValueError(f'"{kind}" must not be negative')
    return {"match": dict(match), "times": times, "action": dict(action)}


def fault_name(action: dict[str, Any]) -> str:
    """The name a fault is recorded under: ``status:503``, ``reset``, ``hang`` or ``delay``."""
    if "status" in action:
        return f"status:{action['status']}"
    return next(kind for kind in FAULT_KINDS if kind in action)


class _BodySink:
    """Takes the body piece by piece: hashes and counts it, writes it to a file if asked, and keeps it
    in memory only while it is small enough to be parsed."""

    def __init__(self, path: Path | None, keep_up_to: int) -> None:
        self.sha256 = hashlib.sha256()
        self.size = 0
        self.buffer: bytearray | None = bytearray()
        self.keep_up_to = keep_up_to
        self.file = path.open("wb") if path is not None else None  # closed in close()

    def add(self, piece: bytes) -> None:
        self.sha256.update(piece)
        self.size += len(piece)
        if self.file is not None:
            self.file.write(piece)
        if self.buffer is not None:
            if self.size <= self.keep_up_to:
                self.buffer += piece
            else:
                self.buffer = None  # too large to parse: stop holding it

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True  # a hung or idle keep-alive connection never blocks stop()
    standin: NexusStandin

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (or was made to): nothing worth a traceback
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every response carries Content-Length
    server_version = "NexusStandin/1"
    sys_version = ""
    timeout = 300  # a client that stalls mid-body for this long is dropped
    server: _Server

    # -- plumbing --------------------------------------------------------------------------------

    @property
    def standin(self) -> NexusStandin:
        return self.server.standin

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # the default line holds the request line, and so the key; _log writes our own line

    def log_message(self, format: str, *args: Any) -> None:
        sys.stderr.write((format % args) + "\n")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The stock messages can quote the request line (and so the key): send only the status phrase.
        self.close_connection = True
        self._reply(code, {"error": self.responses.get(code, ("error",))[0].lower()})
        self._log(code)

    def _log(self, outcome: int | str, detail: str = "") -> None:
        path = urlsplit(getattr(self, "path", "") or "").path or "-"  # never the query string
        self.log_message("%s %s -> %s%s", getattr(self, "command", None) or "-", path, outcome, detail)

    def _reply(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        """Send a whole response; a client that is already gone is not an error."""
        if isinstance(body, str):
            data = body.encode("utf-8")
            content_type = "application/json" if _is_json(data) else "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(body).encode("utf-8"), "application/json"
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _abort(self) -> None:
        """Drop the connection with a TCP reset and no response (SO_LINGER 0, then close)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Marks the socket closed; the real close (sending RST) happens when finish() closes rfile.
        self.connection.close()

    # -- request bodies --------------------------------------------------------------------------

    def _body_pieces(self, piece_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        """The request body, de-chunked if need be, in pieces of at most ``piece_bytes``."""
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise BadBody("unsupported Transfer-Encoding")
            yield from self._chunked_pieces(piece_bytes)
            return
        length = (self.headers.get("Content-Length") or "0").strip()
        if not (length.isascii() and length.isdigit()):
            raise BadBody("bad Content-Length")
        yield from self._exactly(int(length), piece_bytes)

    def _chunked_pieces(self, piece_bytes: int) -> Iterator[bytes]:
        while True:
            line = self.rfile.readline(MAX_LINE + 1)
            if not line.endswith(b"\n"):
                raise BadBody("bad chunk size line")
            size_text = line.split(b";", 1)[0].strip()  # drop chunk extensions
            if not size_text or size_text.strip(b"0123456789abcdefABCDEF"):
                raise BadBody("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                while True:  # trailers, up to the blank line that ends the body
                    line = self.rfile.readline(MAX_LINE + 1)
                    if not line.endswith(b"\n"):
                        raise BadBody("bad chunked trailer")
                    if line in (b"\r\n", b"\n"):
                        return
            yield from self._exactly(size, piece_bytes)
            if self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise BadBody("chunk not followed by CRLF")

    def _exactly(self, size: int, piece_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
        remaining = size
        while remaining:
            piece = self.rfile.read(min(remaining, piece_bytes))
            if not piece:
                raise BadBody("body ended early")
            remaining -= len(piece)
            yield piece

    def _drain(self) -> None:
        """Read and discard the body, so the connection can carry the next request."""
        try:
            for _ in self._body_pieces():
                pass
        except BadBody:
            self.close_connection = True

    def _small_body(self, limit: int) -> bytes:
        data = bytearray()
        for piece in self._body_pieces():
            data += piece
            if len(data) > limit:
                raise BadBody("body too large")
        return bytes(data)

    # -- routing ---------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        allowed = ROUTES.get(parts.path)
        if allowed is None:
            self._drain()
            self._reply(404, {"error": "not found"})
            self._log(404)
        elif self.command not in allowed:
            self._drain()
            self._reply(405, {"error": "method not allowed"}, {"Allow": ", ".join(sorted(allowed))})
            self._log(405)
        elif parts.path == UPLOAD_PATH:
            self._upload(parse_qsl(parts.query, keep_blank_values=True))
        else:
            self._control(parts.path)

    def _control(self, path: str) -> None:
        standin = self.standin
        status: int = 200
        if self.command == "POST" and path == "/_control/faults":
            try:
                payload = json.loads(self._small_body(CONTROL_BODY_LIMIT))
                if not isinstance(payload, dict) or not isinstance(payload.get("rules"), list):
                    raise ValueError('expected {"rules": [...]}')
                standin.set_faults(payload["rules"])
                reply: Any = {"status": "ok", "rules": len(payload["rules"])}
            except BadBody as exc:
                self.close_connection = True
                status, reply = 400, {"error": str(exc)}
            except ValueError as exc:
                status, reply = 400, {"error": str(exc)}
        else:
            self._drain()
            if path == "/_control/requests":
                reply = standin.requests()
            elif path == "/_control/reset":
                standin.reset()
                reply = {"status": "reset"}
            elif self.command == "DELETE":
                standin.clear_faults()
                reply = {"status": "cleared"}
            else:
                reply = {"rules": standin.faults()}
        self._reply(status, reply)
        self._log(status)

    # -- the upload endpoint ---------------------------------------------------------------------

    def _upload(self, query: list[tuple[str, str]]) -> None:
        standin = self.standin
        codes = [value for name, value in query if name == "code"]
        if len(codes) != 1 or not hmac.compare_digest(codes[0].encode(), standin.api_key.encode()):
            self._drain()
            self._log(401)
            self._reply(401, {"error": "invalid api key"})
            return

        received_at = time.time()
        n = standin._next_n()
        header_session = self.headers.get("X-Session-Id")
        record: dict[str, Any] = {
            "n": n,
            "receivedAt": received_at,
            "status": None,
            "agentId": self.headers.get("X-Agent-Id"),
            "sessionId": header_session,
            "idempotencyKey": self.headers.get("Idempotency-Key"),
            "bodyFile": f"{n}.body" if standin.store_bodies else None,
            "bodySha256": None,
            "bodyBytes": 0,
            "duplicate": False,
            "fault": None,
            "contentType": self.headers.get("Content-Type"),
            "query": {name: "***" if name == "code" else value for name, value in query},
            "chunked": "Transfer-Encoding" in self.headers,
        }

        # With the session id in a header, faults are matched before the body is read (so a reset
        # can cut the body short); without it, after, on the sessionId parsed from the body.
        action = standin._take_fault(header_session) if header_session is not None else None
        if action is not None and "delay" in action:
            standin._pause(action["delay"])

        body_path = standin.record_dir / "bodies" / f"{n}.body" if standin.store_bodies else None
        sink = _BodySink(body_path, standin.max_parse_bytes)
        error = None
        try:
            # A reset reads in small pieces, so it cuts the body after RESET_AFTER_BYTES, not after 1 MiB.
            resetting = action is not None and "reset" in action
            for piece in self._body_pieces(RESET_AFTER_BYTES if resetting else CHUNK_BYTES):
                sink.add(piece)
                if action is not None and "reset" in action and sink.size >= RESET_AFTER_BYTES:
                    break
        except BadBody as exc:
            error = str(exc)
            self.close_connection = True  # the framing is lost: the connection cannot be reused
        finally:
            sink.close()
        record["bodySha256"] = sink.sha256.hexdigest()
        record["bodyBytes"] = sink.size

        if error is None and sink.buffer is not None:
            payload, error = validate_upload(bytes(sink.buffer))
            if payload is not None:
                record["agentId"], record["sessionId"] = payload["agentId"], payload["sessionId"]
        # else: too large to parse, so agentId/sessionId stay as the X-Agent-Id/X-Session-Id headers said

        if header_session is None:
            action = standin._take_fault(record["sessionId"])
            if action is not None and "delay" in action:
                standin._pause(action["delay"])

        if action is not None:
            record["fault"] = fault_name(action)
        standin._call_hook(record)
        if action is not None and "reset" in action:
            standin._record(record)
            ids = f"{record['agentId']}/{record['sessionId']}"
            self._log("reset", f" ({ids}, {sink.size} bytes) [fault reset]")
            self._abort()
            return

        headers: dict[str, str] = {}
        if action is not None and "status" in action:
            status = action["status"]
            reply: Any = action.get("body")
            if reply is None:
                reply = {"error": f"injected fault: HTTP {status}"}
            if action.get("retryAfter") is not None:
                headers["Retry-After"] = str(action["retryAfter"])
        elif error is not None:
            status, reply = 400, {"error": error}
        else:
            original = standin._accept(n, record["idempotencyKey"])
            if original is None:
                status, reply = 201, {"status": "created", "id": str(n)}
            else:
                status, reply = 200, {"status": "duplicate", "id": str(original)}
                record["duplicate"] = True
        record["status"] = status
        standin._record(record)  # before any hang, so the record is there when the client times out
        # Logged before answering: once a client has its answer, the line is already written.
        fault = f" [fault {record['fault']}]" if record["fault"] else ""
        self._log(status, f" ({record['agentId']}/{record['sessionId']}, {sink.size} bytes){fault}")

        if action is not None and "hang" in action:
            standin._pause(action["hang"])
        self._reply(status, reply, headers)


def _is_json(data: bytes) -> bool:
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


class NexusStandin:
    """The stand-in server: ``with NexusStandin(api_key=..., record_dir=...) as server: server.url``.

    ``store_bodies=False`` keeps only each body's sha256 and length (for very large bodies);
    bodies above ``max_parse_bytes`` are recorded but not validated as JSON. ``on_request(record)`` is
    called for every upload request with a valid key after its body was read and its fault chosen,
    before it is answered (``record["status"]`` is still None); an exception it raises is written to
    stderr and kept in ``hook_errors``, and the request is answered as if there were no hook.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str = "",
        record_dir: str | os.PathLike[str] | None = None,
        store_bodies: bool = True,
        max_parse_bytes: int = DEFAULT_MAX_PARSE_BYTES,
        on_request: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        if not api_key:
            raise ValueError("api_key is required")
        if host == "localhost":
            host = "127.0.0.1"
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ValueError("binds to loopback only: the control endpoints have no key")
        self.host = host
        self.api_key = api_key
        self.record_dir = Path(record_dir if record_dir is not None else tempfile.mkdtemp(prefix="nexus-"))
        self.store_bodies = store_bodies
        self.max_parse_bytes = max_parse_bytes
        self.on_request = on_request
        self.hook_errors: list[str] = []
        self._wanted_port = port
        self._port: int | None = None
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._records: list[dict[str, Any]] = []
        self._rules: list[dict[str, Any]] = []
        self._idempotency: dict[str, int] = {}
        self._counter = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> NexusStandin:
        """Bind and serve in a background thread; the record dir starts out empty."""
        if self._httpd is not None:
            raise RuntimeError("already started")
        self.record_dir.mkdir(parents=True, exist_ok=True)
        self.reset()
        self._stopping.clear()
        httpd = _Server((self.host, self._wanted_port), _Handler)
        httpd.standin = self
        self._httpd, self._port = httpd, httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="nexus-standin", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; hangs and delays in progress are cut short."""
        if self._httpd is None:
            return
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> NexusStandin:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- what was received -----------------------------------------------------------------------

    @property
    def requests_file(self) -> Path:
        return self.record_dir / "requests.jsonl"

    def requests(self) -> list[dict[str, Any]]:
        """Every recorded request (valid key: accepted, failed by a fault, or 400), in order of n."""
        with self._lock:
            return sorted(copy.deepcopy(self._records), key=lambda record: record["n"])

    def accepted(self) -> list[dict[str, Any]]:
        """The recorded requests answered 201 (first deliveries, not duplicates)."""
        return [record for record in self.requests() if record["status"] == 201]

    def body(self, n: int) -> bytes:
        """The raw body bytes of request n, exactly as received (de-chunked)."""
        if not self.store_bodies:
            raise LookupError("bodies are not stored (store_bodies=False): see bodySha256 and bodyBytes")
        return (self.record_dir / "bodies" / f"{n}.body").read_bytes()

    def reset(self) -> None:
        """Forget all records, bodies, idempotency keys and faults."""
        with self._lock:
            self._records.clear()
            self._rules.clear()
            self._idempotency.clear()
            self._counter = 0
            bodies = self.record_dir / "bodies"
            bodies.mkdir(parents=True, exist_ok=True)
            for old in bodies.glob("*.body"):
                old.unlink()
            self.requests_file.write_text("")

    # -- faults ----------------------------------------------------------------------------------

    def set_faults(self, rules: list[dict[str, Any]]) -> None:
        """Replace the fault rules (see the module docstring); ValueError if one is malformed."""
        if not isinstance(rules, list):
            raise ValueError("rules must be a list")
        checked = [normalize_rule(rule) for rule in rules]
        with self._lock:
            self._rules = checked

    def clear_faults(self) -> None:
        with self._lock:
            self._rules = []

    def faults(self) -> list[dict[str, Any]]:
        """The current rules, with ``times`` counted down to what is left."""
        with self._lock:
            return copy.deepcopy(self._rules)

    # -- used by the handler ---------------------------------------------------------------------

    def _next_n(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def _take_fault(self, session_id: str | None) -> dict[str, Any] | None:
        """The action of the first live rule matching session_id, counting its ``times`` down."""
        with self._lock:
            for rule in self._rules:
                if rule["times"] == 0:
                    continue
                wanted = rule["match"].get("sessionId")
                if wanted is not None and wanted != session_id:
                    continue
                if rule["times"] is not None:
                    rule["times"] -= 1
                return copy.deepcopy(rule["action"])
        return None

    def _accept(self, n: int, idempotency_key: str | None) -> int | None:
        """Register an accepted request; returns the original n if the idempotency key was seen."""
        with self._lock:
            if idempotency_key is not None:
                if idempotency_key in self._idempotency:
                    return self._idempotency[idempotency_key]
                self._idempotency[idempotency_key] = n
        return None

    def _call_hook(self, record: dict[str, Any]) -> None:
        hook = self.on_request
        if hook is None:
            return
        try:
            hook(copy.deepcopy(record))
        except Exception:
            text = traceback.format_exc()
            with self._lock:
                self.hook_errors.append(text)
            sys.stderr.write(f"nexus stand-in: on_request hook failed:\n{text}")

    def _record(self, record: dict[str, Any]) -> None:
        line = json.dumps(record) + "\n"
        with self._lock:
            self._records.append(record)
            with self.requests_file.open("a", encoding="utf-8") as handle:
                handle.write(line)

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)  # stop() wakes it


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Serve the Nexus stand-in on 127.0.0.1 until SIGTERM or SIGINT."
    )
    parser.add_argument("--port", type=int, default=8081, help="0 picks a free port (see --port-file)")
    key = parser.add_mutually_exclusive_group(required=True)
    key.add_argument("--api-key-env", metavar="NAME", help="read the API key from this environment variable")
    key.add_argument("--api-key", help="the API key (visible in ps: prefer --api-key-env)")
    parser.add_argument("--record-dir", type=Path, required=True, help="where requests.jsonl and bodies/ go")
    parser.add_argument("--no-store-bodies", action="store_true", help="keep only each body's hash and size")
    parser.add_argument("--max-parse-bytes", type=int, default=DEFAULT_MAX_PARSE_BYTES)
    parser.add_argument("--port-file", type=Path, help="write the bound port here once listening")
    args = parser.parse_args(argv)

    api_key = args.api_key if args.api_key is not None else os.environ.get(args.api_key_env, "")
    if not api_key:
        parser.error("the API key is empty" + (f" (is ${args.api_key_env} set?)" if args.api_key_env else ""))

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    standin = NexusStandin(
        port=args.port,
        api_key=api_key,
        record_dir=args.record_dir,
        store_bodies=not args.no_store_bodies,
        max_parse_bytes=args.max_parse_bytes,
    )
    with standin:
        if args.port_file is not None:
            partial = args.port_file.with_name(args.port_file.name + ".tmp")
            partial.write_text(f"{standin.port}\n")
            partial.replace(args.port_file)  # atomic, so a reader never sees a half-written port
        print(f"nexus stand-in listening on {standin.url}", flush=True)
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
