"""A tiny OpenAI-compatible model stand-in on loopback, so OpenClaw can run real agent turns offline.

    python -m tools.standins.model [--port 0]      # prints "listening on http://127.0.0.1:PORT/v1"

Serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (streamed as server-sent events when the
request says ``"stream": true``, else one JSON body). It never calls tools: every answer is a plain
assistant text, derived deterministically from the last user message:

- a message containing ``LONG-REPLY`` gets an answer of about 2 KiB of plain ASCII (no quotes, no
  backslashes, no control characters), so the event OpenClaw stores for it has no ``\\u`` escapes and is
  large enough (>= 1 KiB) to be stored zstd-compressed (``transcript_events.event_zstd``);
- any other message gets ``stand-in reply N to: <the first 60 characters>`` (of the message itself: the
  envelope OpenClaw's chat path puts around it, ``Conversation info: ...`` and a JSON block, is skipped).

Only ever binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

MODEL_ID = "standin-1"
LONG_MARKER = "LONG-REPLY"
INTERNAL_CONTEXT = "<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>"
CHAT_ENVELOPE = "Conversation info:"
_WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]


def long_reply(n: int) -> str:
    """About 2 KiB of ASCII words: nothing JSON.stringify escapes."""
    words = [_WORDS[(n + i) % len(_WORDS)] for i in range(300)]
    return f"Long stand-in reply {n}: " + " ".join(words) + "."


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def answer_for(messages: list[dict], n: int) -> str:
    """The answer to the last user prompt (OpenClaw appends its internal-context block as a separate
    user message after the prompt: that one is skipped)."""
    users = [_text(m.get("content")) for m in messages if m.get("role") == "user"]
    prompts = [u for u in users if not u.lstrip().startswith(INTERNAL_CONTEXT)]
    last = prompts[-1] if prompts else ""
    if LONG_MARKER in last:
        return long_reply(n)
    text = re.sub(r"^\s*\[[^\]]*\]\s*", "", last)  # drop OpenClaw's "[Mon 2026-11-23 09:26 UTC] "
    if text.startswith(CHAT_ENVELOPE):
        # The chat path (chat.send) wraps the message: "Conversation info: ⟦openclaw:ctx⟧", a ```json
        # block, a blank line, the message. Echoing the envelope would make OpenClaw suppress the reply.
        fences = [i for i, line in enumerate(text.splitlines()) if line.startswith("```")]
        text = "\n".join(text.splitlines()[fences[1] + 1 :]) if len(fences) >= 2 else ""
    lines = [line for line in text.splitlines() if line.strip()]
    head = lines[0].strip()[:60] if lines else ""
    return f"stand-in reply {n} to: {head}"


class StandIn(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.counter = itertools.count(1)
        self.requests: list[dict] = []
        self.lock = threading.Lock()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that drops its keep-alive connection is normal; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def start(self) -> Self:
        threading.Thread(target=self.serve_forever, name="model-standin", daemon=True).start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: StandIn
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _json(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._json(
                200, {"object": "list", "data": [{"id": MODEL_ID, "object": "model", "owned_by": "x"}]}
            )
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            request = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "bad json"}})
            return
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._json(404, {"error": {"message": f"no route {self.path}"}})
            return
        with self.server.lock:
            n = next(self.server.counter)
            self.server.requests.append(request)
        text = answer_for(request.get("messages") or [], n)
        model = request.get("model") or MODEL_ID
        created = int(time.time())
        ident = f"chatcmpl-standin-{n}"
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(text) // 4)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not request.get("stream"):
            self._json(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        base = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model}
        chunks = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
            {**base, "choices": [{"index": 0, "delta": {"content": text}}]},
            {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
            {**base, "choices": [], "usage": usage},
        ]
        for chunk in chunks:
            self.wfile.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    server = StandIn(args.port)
    print(f"listening on {server.base_url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
