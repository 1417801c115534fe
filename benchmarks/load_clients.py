"""The bench's load clients: timed GETs, and ingestion from separate processes (the clients
share the server's 2 cores, so they are kept cheap). Used by bench.py, floor.py and pair.py."""

from __future__ import annotations

import json
import multiprocessing
import socket
import time
import uuid
from datetime import UTC, datetime
from http.client import HTTPConnection


def time_reads(port: int, path: str, headers: dict, repeats: int, *, warmup: int) -> list[float]:
    """Milliseconds of `repeats` GETs of `path` on one kept-alive connection, after `warmup`."""
    connection = HTTPConnection("127.0.0.1", port, timeout=60)
    timings = []
    for index in range(warmup + repeats):
        started = time.perf_counter()
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}")
        if index >= warmup:
            timings.append((time.perf_counter() - started) * 1000)
    connection.close()
    return timings


class _Client:
    """A minimal HTTP/1.1 keep-alive client for the ingestion runs.

    The clients share the server's 2 cores, so their CPU comes out of the server's share.
    `http.client` parses every response's headers with the `email` package, a noticeable
    share of the machine at single-POST rates (docs/benchmarks.md, "Bench HTTP client"). This
    one sends the same requests and reads the status, the headers and the body by hand.
    """

    def __init__(self, port: int, headers: dict[str, str]):
        self.port, self.sock = port, None
        self._connect()
        headers = {"Host": "127.0.0.1", **headers}
        self.head = "".join(f"{name}: {value}\r\n" for name, value in headers.items())

    def post(self, path: str, body: bytes) -> int:
        request = f"POST {path} HTTP/1.1\r\n{self.head}Content-Length: {len(body)}\r\n\r\n".encode() + body
        self.sock.sendall(request)
        status_line = self.rfile.readline()
        if not status_line:  # the server closed the kept-alive connection: once more, anew
            self._connect()
            self.sock.sendall(request)
            status_line = self.rfile.readline()
        status = int(status_line.split(b" ", 2)[1])
        length, chunked, close = 0, False, False
        while (line := self.rfile.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value
            elif name == b"connection":
                close = value == b"close"
        if chunked:
            while size := int(self.rfile.readline().split(b";")[0], 16):
                self.rfile.read(size + 2)
            self.rfile.readline()
        else:
            self.rfile.read(length)
        if close:
            self._connect()
        return status

    def _connect(self) -> None:
        if self.sock is not None:
            self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.sock.makefile("rb")

    def close(self) -> None:
        self.rfile.close()
        self.sock.close()


def honest_fields(i: int, customers: str = "customer") -> dict:
    """The fields of issue 16 on conversation number `i` of a stream: an outcome on every one
    (agreeing with `resolved_by_ai`: false when i % 3 == 0), a reason on most escalations, and a
    customer id on 80% (ids starting `customers`), most customers coming back two or three
    conversations later."""
    resolved = i % 3 != 0
    outcome = ("confirmed", "assumed")[i % 2] if resolved else "abandoned" if i % 4 == 0 else "escalated"
    fields: dict = {"outcome": outcome}
    if not resolved and i % 10:
        fields["escalation_reason"] = f"reason {1 + i % 8}"
    if i % 5:
        fields["customer_id"] = f"{customers}-{i // 3}" if i % 7 else f"{customers}-{i * 7919 % 100_003}"
    return fields


def _ingest_client(args) -> int:
    port, key, batch, seconds, prefix, path = args
    client = _Client(port, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    stored, number, deadline = 0, 0, time.monotonic() + seconds
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    while time.monotonic() < deadline:
        items = [
            {
                "session_id": f"{prefix}-{number}-{i}",
                "turns": 3 + i % 9,
                "resolved_by_ai": (number * batch + i) % 3 != 0,  # as honest_fields says
                "topics": [f"topic {1 + i % 20:02d}"],
                "avg_response_ms": 400 + i % 1000,
                "csat": None if i % 4 else 1 + i % 5,
                "channel": "web",
                "bot_version": "2.5.0",
                "timestamp": now,
                # Each client its own customers: one customer is rarely in two bot processes at once.
                **honest_fields(number * batch + i, customers=prefix),
            }
            for i in range(batch)
        ]
        status = client.post(path, json.dumps(items if batch > 1 else items[0]).encode())
        if status not in (200, 201):
            raise RuntimeError(f"ingest: HTTP {status}")
        stored += batch
        number += 1
    client.close()
    return stored


def ingest_rate(
    port: int, key: str, *, clients: int, batch: int, path: str, seconds: float, prefix: str
) -> float:
    """Conversations stored per second by `clients` processes posting batches of `batch` (a
    single object when 1) to `path` for `seconds`, with session ids starting `prefix`."""
    run = prefix + uuid.uuid4().hex[:8]
    with multiprocessing.Pool(clients) as pool:
        started = time.monotonic()
        counts = pool.map(
            _ingest_client,
            [(port, key, batch, seconds, f"{run}-{client}", path) for client in range(clients)],
        )
        elapsed = time.monotonic() - started
    return sum(counts) / elapsed
