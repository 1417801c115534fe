"""`make bench-floor`: what the stack costs a single POST before our write, layer by layer.

    .venv/bin/python benchmarks/floor.py [--size 1000000] [--rounds 3]

Serves the app with the bench's gunicorn (2 workers) and settings, plus the views of
benchmarks/floor/urls.py, which answer the same body the bench posts after stopping at each
layer: Django's middleware only; with one INSERT; DRF; DRF with the API-key authentication;
and its throttle; and one INSERT. 8 client processes post single objects to each in turn,
the real ingest endpoint last, round after round (so a noisy minute hits every row alike).
Prints the median rate of each. Uses the bench database of --size (make bench loads it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import bench

ENDPOINTS = [
    ("Django view, no database", "/floor/django/"),
    ("Django view, 1 INSERT", "/floor/django-insert/"),
    ("DRF view", "/floor/drf/"),
    ("DRF + API key", "/floor/drf-key/"),
    ("DRF + API key + throttle", "/floor/drf-key-throttle/"),
    ("DRF + API key + throttle + 1 INSERT", "/floor/drf-key-throttle-insert/"),
    ("POST /api/conversations/ (the product)", "/api/conversations/"),
]
CLIENTS = 8


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=6.0, help="per endpoint and round")
    args = parser.parse_args()
    bench.INGEST_SECONDS = args.seconds

    _, url = bench.database_urls(args.size)
    bench.setup_django(url)
    from django.db import connection, connections
    from floor.urls import SCRATCH_TABLE

    key = bench.api_key()
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {SCRATCH_TABLE} (id bigserial PRIMARY KEY, body text)")
    connections.close_all()
    os.environ["PYTHONPATH"] = str(Path(__file__).resolve().parent)
    os.environ["DJANGO_SETTINGS_MODULE"] = "floor.settings"
    port = bench.free_port()
    server = bench.start_server(url, port)
    rates: dict[str, list[float]] = {name: [] for name, _ in ENDPOINTS}
    try:
        for _, path in ENDPOINTS:  # warm-up
            bench.ingest_rate(port, key, clients=CLIENTS, batch=1, path=path)
        for round_ in range(1, args.rounds + 1):
            for name, path in ENDPOINTS:
                rates[name].append(bench.ingest_rate(port, key, clients=CLIENTS, batch=1, path=path))
            print(f"round {round_}: " + ", ".join(f"{rates[n][-1]:.0f}" for n, _ in ENDPOINTS), flush=True)
    finally:
        bench.stop_servers([server])
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {SCRATCH_TABLE}")
        bench.remove_unloaded()
    print(
        f"\nSingle POSTs, {CLIENTS} clients, {bench.WORKERS} gunicorn workers x {bench.THREADS} threads, "
        f"medians of {args.rounds} rounds of {args.seconds:.0f} s ({bench.machine()}):\n"
    )
    print("| endpoint | requests/s | ms per request (1 / rate) |\n|---|---|---|")
    for name, _ in ENDPOINTS:
        rate = statistics.median(rates[name])
        print(f"| {name} | {rate:.0f} | {1000 / rate:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
