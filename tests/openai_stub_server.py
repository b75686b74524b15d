"""A small OpenAI-protocol HTTP server for the tests: real HTTP on 127.0.0.1, deterministic replies.

It serves ``GET /v1/models`` and ``POST /v1/chat/completions`` (plain and streamed), records every
request it receives, and injects faults on demand: queue them with :meth:`StubServer.fail_next`
and the next requests get them in order, one each.

Faults: ``"429"``, ``"500"``, ``"503"``, ``"timeout"`` (sleeps longer than the client waits),
``"slow"`` (sleeps as long, then answers),
``"drop"`` (closes the connection without a response), ``"401"`` (echoes the presented key in the
message, as real servers partly do), ``"404"`` (unknown model), ``"400-context"`` (prompt longer
than the model's context), ``"429-quota"`` (out of quota: retrying cannot help), ``"html"`` (a 200
with a proxy's HTML page instead of JSON), ``"400-format"`` (refuses a request that asks for a
``response_format``, as servers without constrained decoding do).

The default reply is :func:`grounded_script`: a script narrating the first sentences of the first
passage in the request as they are, so that every evidence check passes.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = str | Callable[[dict[str, Any]], str]


def passages_in(body: dict[str, Any]) -> list[str]:
    """The texts of the ``<passage>`` blocks in a chat request's user message, in order."""
    user = [m["content"] for m in body.get("messages", []) if m["role"] == "user"][0]
    return [m.strip() for m in re.findall(r"<passage [^>]*>\n(.*?)\n</passage>", user, re.DOTALL)]


def script_reply(*scenes: tuple[int, str, str], key_point: str = "Key point") -> str:
    """A script as the model writes it, from (passage number, quote, narration) triples."""
    return json.dumps(
        {
            "scenes": [
                {"passage": n, "quote": q, "key_point": key_point, "narration": t} for n, q, t in scenes
            ]
        },
        ensure_ascii=False,
    )


def is_translation(body: dict[str, Any]) -> bool:
    """A request to translate a question for search (RAGREEL_CROSS_LINGUAL), not for a script."""
    return "translate search questions" in body.get("messages", [{}])[0].get("content", "")


def question_to_translate(body: dict[str, Any]) -> str:
    user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
    return re.fullmatch(r"<question>(.*)</question>", user, re.DOTALL).group(1)


def grounded_script(body: dict[str, Any], sentences: int = 3) -> str:
    """Scenes that narrate the first ``sentences`` sentences of passage 1 word for word; a request
    to translate a question gets the question back (which retrieval does not take as a translation)."""
    from ragreel.text import split_sentences

    if is_translation(body):
        return question_to_translate(body)
    first = split_sentences(passages_in(body)[0])[:sentences]
    return script_reply(*[(1, s, s) for s in first])


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None
    fault: str | None = None


@dataclass
class StubServer:
    """Start with :meth:`start` (or as a context manager); ``url`` is the OpenAI base URL (…/v1)."""

    api_key: str | None = None
    models: tuple[str, ...] = ("stub-model",)
    reply: Reply = grounded_script
    timeout_sleep_s: float = 3.0
    requests: list[RecordedRequest] = field(default_factory=list)
    _faults: deque[str] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- control ------------------------------------------------------------------------
    def start(self) -> StubServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="openai-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the stub first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def fail_next(self, *faults: str) -> None:
        with self._lock:
            self._faults.extend(faults)

    def script_requests(self) -> list[RecordedRequest]:
        """Chat requests for a script (not a question's translation for search)."""
        return [r for r in self.chat_requests() if not (r.body and is_translation(r.body))]

    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    # --- internals ------------------------------------------------------------------------
    def _take_fault(self) -> str | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _reply_text(self, body: dict[str, Any]) -> str:
        return self.reply(body) if callable(self.reply) else self.reply


def _make_handler(stub: StubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature of the base class
            pass  # keep test output clean

        # --- helpers ----------------------------------------------------------------------
        def _send_json(
            self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
        ) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _send_error(self, status: int, message: str, code: str | None = None, **headers: str) -> None:
            error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
            self._send_json(status, {"error": error}, headers)

        def _record(self, body: dict[str, Any] | None, fault: str | None) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with stub._lock:
                stub.requests.append(RecordedRequest(self.command, self.path, headers, body, fault))

        def _presented_key(self) -> str:
            auth = self.headers.get("Authorization", "")
            return auth.removeprefix("Bearer ").strip()

        def _authorised(self) -> bool:
            return stub.api_key is None or self._presented_key() == stub.api_key

        def _reject_key(self) -> None:
            self._send_error(401, f"Incorrect API key provided: {self._presented_key()}.", "invalid_api_key")

        # --- routes -----------------------------------------------------------------------
        def do_GET(self) -> None:
            self._record(None, None)
            if not self.path.rstrip("/").endswith("/models"):
                self._send_error(404, f"No route {self.path}")
                return
            if not self._authorised():
                self._reject_key()
                return
            data = [{"id": name, "object": "model", "created": 0, "owned_by": "stub"} for name in stub.models]
            self._send_json(200, {"object": "list", "data": data})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw or b"{}")
            except json.JSONDecodeError:
                body = {"_raw": raw.decode(errors="replace")}
            fault = stub._take_fault()
            self._record(body, fault)

            if fault == "drop":
                # Close the socket without a byte of response: the client sees a dropped connection.
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if fault == "timeout":
                time.sleep(stub.timeout_sleep_s)
                self.close_connection = True
                return
            if fault == "slow":  # answers, but only after timeout_sleep_s
                time.sleep(stub.timeout_sleep_s)
            if fault == "html":
                page = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            if fault == "401" or not self._authorised():
                self._reject_key()
                return
            if fault in ("429", "500", "503"):
                status = int(fault)
                # A short Retry-After keeps the tests fast while exercising the client's backoff path.
                self._send_error(status, f"stub fault {status}", None, **{"retry-after-ms": "20"})
                return
            if fault == "429-quota":
                self._send_error(
                    429, "You exceeded your current quota.", "insufficient_quota", **{"retry-after-ms": "20"}
                )
                return
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send_error(404, f"No route {self.path}")
                return
            model = body.get("model")
            if fault == "404" or model not in stub.models:
                self._send_error(404, f"The model `{model}` does not exist.", "model_not_found")
                return
            if fault == "400-context":
                self._send_error(
                    400,
                    "This model's maximum context length is 4096 tokens. However, your messages "
                    "resulted in 9000 tokens. Please reduce the length of the messages.",
                    "context_length_exceeded",
                )
                return

            if fault == "400-format" and "response_format" in body:
                self._send_error(400, "response_format is not supported by this server", None)
                return

            text = stub._reply_text(body)
            if body.get("stream"):
                self._stream(model, text)
            else:
                self._send_json(200, _completion(model, text))

        def _stream(self, model: str, text: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.close_connection = True
            self.end_headers()
            pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
            for piece in pieces:
                chunk = {
                    "id": "chatcmpl-stub",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": model,
                    "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}],
                }
                self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            final = {
                "id": "chatcmpl-stub",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self.wfile.write(f"data: {json.dumps(final)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()

    return Handler


def _completion(model: str, text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": len(text.split()), "total_tokens": 10},
    }
