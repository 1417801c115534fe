"""`make bench-ratio`: the analytics reads at two sizes, interleaved, and the ratio of their medians.

    .venv/bin/python benchmarks/ratio.py [--small 1000000] [--large 10000000] [--rounds 30]

Issue 4 asks the reads at 10,000,000 conversations to take at most 1.5 × their time at
1,000,000. `make bench` measures each size in its own run, minutes apart, on a machine whose
speed drifts more than that (docs/benchmarks.md, "Read ratio side by side"): the ratio of two
such runs measures the drift as much as the data. This serves both bench databases at once
(each loaded by `make bench` of its size, which this does not do) and asks every read of one
and then of the other, round after round, alternating which goes first, so that both medians
come from the same minutes. Appends its table to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from http.client import HTTPConnection

import bench

RATIO_TARGET = 1.5


def read_key(url: str) -> str:
    """A read key in that database (its last line of output is the key)."""
    run = subprocess.run(
        [sys.executable, "manage.py", "create_api_token", "bench-ratio", "--scope", "read"],
        cwd=bench.BASE_DIR, env={**bench.os.environ, "DATABASE_URL": url},
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return run.stdout.strip().splitlines()[-1]


def timed_get(connection: HTTPConnection, path: str, key: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path, headers={"Authorization": f"Bearer {key}"})
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1_000_000)
    parser.add_argument("--large", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=bench.READ_REPEATS)
    args = parser.parse_args()

    sizes = [args.small, args.large]
    urls = [bench.database_urls(size)[1] for size in sizes]
    bench.setup_django(urls[0])  # the environment the servers and commands need
    servers, connections, keys = [], [], []
    try:
        for url in urls:
            bench.settle(url)
            keys.append(read_key(url))
            port = bench.free_port()
            servers.append(bench.start_server(url, port))
            connections.append(HTTPConnection("127.0.0.1", port, timeout=60))
        reads = [(name, path) for name, path in bench.READS if name.startswith("analytics")]
        reads += bench.worst_edge_reads(datetime.now(UTC))
        rows = []
        for name, path in reads:
            timings: list[list[float]] = [[], []]
            for round_ in range(bench.WARMUP + args.rounds):
                order = (0, 1) if round_ % 2 == 0 else (1, 0)
                for index in order:
                    elapsed = timed_get(connections[index], path, keys[index])
                    if round_ >= bench.WARMUP:
                        timings[index].append(elapsed)
            small, large = (statistics.median(values) for values in timings)
            ratio = large / small
            # The targets are for windows of all channels and versions.
            if "channel=" in path:
                target, met = "none (filtered)", ""
            else:
                target, met = f"≤ {RATIO_TARGET}", "yes" if ratio <= RATIO_TARGET else "NO"
            rows.append(f"| {name} | {small:.1f} ms | {large:.1f} ms | {ratio:.2f} | {target} | {met} |")
            print(f"  {name}: {small:.1f} ms / {large:.1f} ms = {ratio:.2f}", flush=True)
    finally:
        bench.stop_servers(servers, connections)

    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"## Read time at {args.large:,} / at {args.small:,} conversations — {stamp}\n\n"
        f"Machine: {bench.machine()}. Both databases served at once (gunicorn, {bench.WORKERS} "
        f"workers each), each read asked of one then the other, {args.rounds} rounds after "
        f"{bench.WARMUP} of warm-up; medians.\n\n"
        f"| read | {args.small:,} | {args.large:,} | ratio | target | met |\n|---|---|---|---|---|---|\n"
        + "\n".join(rows)
        + "\n"
    )
    print("\n" + section)
    bench.add_to_results(bench.BASE_DIR / "docs" / "benchmarks.md", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
