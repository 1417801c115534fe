"""CPU time of one single-conversation POST inside one process, without HTTP or concurrency.

    .venv/bin/python benchmarks/post_cpu.py [--size 1000000] [--posts 2000] [--profile FILE]

Calls the WSGI application directly, as gunicorn would, with the body the bench's clients
post, one request after the other, and prints the process CPU time per request: the Python
side of a POST (middleware, DRF, validation, psycopg), steadier than a rate measured over
HTTP with every process sharing the 2 cores. `--profile` writes a cProfile of a second round
(CPU-time clock) for `python -m pstats`. Uses the bench database of --size (make bench loads
it) and removes what it posted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime

import bench


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--profile", help="write a cProfile of another round of --posts here")
    args = parser.parse_args()

    url = bench.database_urls(args.size)[1]
    os.environ.update(bench.server_environment(url))  # the settings the bench's server runs with
    bench.setup_django(url)
    from django.core.wsgi import get_wsgi_application

    application = get_wsgi_application()
    key = bench.api_key()
    now = datetime.now(UTC).replace(tzinfo=None).isoformat()
    run = f"{bench.INGEST_PREFIX}{uuid.uuid4().hex[:8]}"

    def post(number: int) -> None:
        body = json.dumps(
            {"session_id": f"{run}-{number}", "turns": 3, "resolved_by_ai": True, "topics": ["topic 01"],
             "avg_response_ms": 400, "csat": 1, "channel": "web", "bot_version": "2.5.0", "timestamp": now}
        ).encode()  # fmt: skip
        environ = {
            "REQUEST_METHOD": "POST", "PATH_INFO": "/api/conversations/", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "80", "HTTP_HOST": "127.0.0.1", "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1", "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr, "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": "application/json",
            "HTTP_AUTHORIZATION": f"Bearer {key}",
        }  # fmt: skip
        statuses = []
        response = application(environ, lambda status, headers, *_: statuses.append(status))
        b"".join(response)
        response.close()
        if not statuses[0].startswith(("200", "201")):
            raise RuntimeError(f"POST: {statuses[0]}")

    try:
        for number in range(200):  # warm-up: connections, prepared statements
            post(number)
        started, wall = time.process_time(), time.perf_counter()
        for number in range(200, 200 + args.posts):
            post(number)
        cpu_ms = (time.process_time() - started) / args.posts * 1000
        wall_ms = (time.perf_counter() - wall) / args.posts * 1000
        print(f"{args.posts:,} POSTs: {cpu_ms:.2f} ms of CPU each ({wall_ms:.2f} ms of wall time)")
        if args.profile:
            profile = cProfile.Profile(time.process_time)
            profile.enable()
            for number in range(200 + args.posts, 200 + 2 * args.posts):
                post(number)
            profile.disable()
            profile.dump_stats(args.profile)
            print(f"profile written to {args.profile}")
    finally:
        bench.remove_unloaded()
    return 0


if __name__ == "__main__":
    sys.exit(main())
