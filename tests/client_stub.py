"""A scripted stand-in for the server, for the client's protocol tests (tests/test_client_*.py):
it records every request and answers what the test says, by default what the real server
answers to a valid request. The real server is in tests/test_client_live.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float  # time.monotonic() when it arrived
    status: int = 0  # what the stub answered

    @property
    def is_batch(self) -> bool:
        return self.path == "/api/conversations/" and isinstance(self.body, list)

    @property
    def csat_session(self) -> str | None:
        prefix, suffix = "/api/conversations/", "/csat/"
        if self.path.startswith(prefix) and self.path.endswith(suffix):
            return unquote(self.path[len(prefix) : -len(suffix)])
        return None


Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body


def accept(request: Request) -> Reply:
    if request.is_batch:
        return 200, {}, {"created": len(request.body), "updated": 0}
    return 200, {}, {"csat": request.body.get("csat") if isinstance(request.body, dict) else None}


@dataclass
class StubServer:
    answer: Callable[[Request], Reply] = accept
    requests: list[Request] = field(default_factory=list)

    def __post_init__(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                self._handle()

            def do_POST(self):
                self._handle()

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                request = Request(
                    self.command,
                    self.path,
                    {name.lower(): value for name, value in self.headers.items()},
                    json.loads(raw) if raw else None,
                    time.monotonic(),
                )
                with stub._lock:
                    stub.requests.append(request)
                status, headers, body = stub.answer(request)
                request.status = status
                payload = json.dumps(body).encode()
                self.send_response(status)
                for name, value in {"Content-Type": "application/json", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format, *args):  # quiet
                pass

        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- What arrived ----------------------------------------------------------------------------

    def batches(self, *, stored_only: bool = True) -> list[Request]:
        """The array posts (not the empty probes); only those answered 2xx if stored_only."""
        with self._lock:
            requests = list(self.requests)
        return [r for r in requests if r.is_batch and r.body and (not stored_only or 200 <= r.status < 300)]

    def conversations(self) -> list[dict]:
        """Every conversation the stub answered 2xx for, in the order they arrived."""
        return [item for request in self.batches() for item in request.body]


def wait_for(condition: Callable[[], bool], *, seconds: float = 60, what: str = "it") -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {seconds} s for {what}")
        time.sleep(0.02)
