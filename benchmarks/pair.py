"""Two checkouts of the code measured side by side on one bench database, alternately.

    .venv/bin/python benchmarks/pair.py --old ../wt-old [--size 1000000] [--rounds 30]
        [--ingest-runs 3] [--import-lines 200000] [--import-runs 3]

A change's cost is a few percent; two `make bench` runs minutes apart differ by more on a shared
machine (see ratio.py). So this serves this checkout ("new") and `--old` (another worktree, with
its own .venv, e.g. `git worktree add --detach ../wt-old <commit>` then `make venv-dev` there)
at once, with gunicorn as bench.py does, on the database `make bench` loaded (not loaded here).
Both checkouts must have the same migrations: they share the database.

- Reads (bench.READS and the worst-edge windows): each asked of one server then the other,
  alternating which goes first; a round asks every read, `--rounds` rounds after bench.WARMUP;
  medians and new/old.
- Ingestion (arrays of 1,000 from 2 clients, single POSTs from 8, as bench.py): runs in the order
  old, new, new, old, ... on the same database, vacuumed and checkpointed before each run;
  medians. The posted conversations are removed after each kind.
- import_jsonl of `--import-lines` lines into an empty database by each checkout's manage.py,
  in the same order; medians.

Prints a markdown table; the notes around it are for the person who ran it to write.
"""

from __future__ import annotations

import argparse
import statistics
from datetime import UTC, datetime
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import bench


def timed_get(connection: HTTPConnection, path: str, headers: dict[str, str]) -> float:
    started = bench.time.perf_counter()
    connection.request("GET", path, headers=headers)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{path}: HTTP {response.status}")
    return (bench.time.perf_counter() - started) * 1000


def alternate(runs: int) -> list[int]:
    """0 (old) and 1 (new) in the order 0 1 1 0 0 1 1 0 ..., `runs` of each: a drift of the
    machine in one direction falls on both alike."""
    return [(0, 1, 1, 0)[i % 4] for i in range(2 * runs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", type=Path, required=True, help="the other checkout (with its .venv)")
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=bench.READ_REPEATS)
    parser.add_argument("--ingest-runs", type=int, default=bench.INGEST_RUNS)
    parser.add_argument("--import-lines", type=int, default=200_000)
    parser.add_argument("--import-runs", type=int, default=3)
    parser.add_argument("--skip", nargs="*", default=[], choices=["reads", "ingest", "import"])
    args = parser.parse_args()
    trees = [args.old.resolve(), bench.BASE_DIR]

    admin_url, url = bench.database_urls(args.size)
    bench.setup_django(url)  # the same secret key for both servers: the staff session is valid in both
    bench.remove_unloaded()
    bench.settle(url)
    session, key = bench.staff_session(), bench.api_key()
    from django.db import connections as database_connections

    database_connections.close_all()  # the servers and the clients are other processes
    rows: list[str] = []

    def row(
        name: str, old: float, new: float, unit: str, target: str, met: bool, *, higher_is_better: bool
    ) -> None:
        ratio = new / old
        within = ratio >= 0.95 if higher_is_better else ratio <= 1.15
        rows.append(
            f"| {name} | {old:,.1f} {unit} | {new:,.1f} {unit} | {ratio:.2f} | {target} | "
            f"{'yes' if met else 'NO'} | {'yes' if within else 'NO'} |"
        )
        print(rows[-1], flush=True)

    servers, connections, ports = [], [], []
    try:
        for tree in trees:
            ports.append(bench.free_port())
            servers.append(bench.start_server(url, ports[-1], base_dir=tree))
            connections.append(HTTPConnection("127.0.0.1", ports[-1], timeout=60))
        if "reads" not in args.skip:
            reads = bench.READS + bench.worst_edge_reads(datetime.now(UTC))
            timings = {name: ([], []) for name, _ in reads}
            # A round asks every read once of each server, so that a burst of the machine's
            # other load falls on all reads and both servers alike, not on one read's block.
            for round_ in range(bench.WARMUP + args.rounds):
                for number, (name, path) in enumerate(reads):
                    headers = (
                        {"Cookie": f"sessionid={session}"}
                        if path.startswith("/dashboard")
                        else {"Authorization": f"Bearer {key}"}
                    )
                    for index in (0, 1) if (round_ + number) % 2 == 0 else (1, 0):
                        elapsed = timed_get(connections[index], path, headers)
                        if round_ >= bench.WARMUP:
                            timings[name][index].append(elapsed)
            for name, _ in reads:
                old, new = (statistics.median(values) for values in timings[name])
                target = bench.target_ms(name)
                row(name, old, new, "ms", f"≤ {target} ms", new <= target, higher_is_better=False)
        if "ingest" not in args.skip:
            for name, clients, batch, unit, target in (
                ("ingest arrays of 1,000 (2 clients)", 2, 1000, "conv/s", bench.INGEST_ARRAYS_TARGET),
                ("ingest single POSTs (8 clients)", 8, 1, "req/s", bench.INGEST_SINGLES_TARGET),
            ):
                rates: list[list[float]] = [[], []]
                for index in alternate(args.ingest_runs):
                    bench.settle(url)
                    rates[index].append(bench.ingest_rate(ports[index], key, clients=clients, batch=batch))
                    print(f"  {name}, {('old', 'new')[index]}: {rates[index][-1]:,.0f} {unit}", flush=True)
                bench.remove_unloaded()
                old, new = (statistics.median(values) for values in rates)
                runs = " / ".join(", ".join(f"{rate:,.0f}" for rate in values) for values in rates)
                row(f"{name}; runs {runs}", old, new, unit, f"≥ {target:,} {unit}", new >= target,
                    higher_is_better=True)  # fmt: skip
    finally:
        bench.stop_servers(servers, connections)
        bench.remove_unloaded()
        bench.settle(url)
    if "import" not in args.skip:
        import_url = urlunsplit(urlsplit(url)._replace(path="/supportanalytics_bench_import"))
        seconds: list[list[float]] = [[], []]
        for index in alternate(args.import_runs):
            took = bench.time_import(args.import_lines, admin_url, import_url, base_dir=trees[index])
            seconds[index].append(took)
            print(f"  import_jsonl, {('old', 'new')[index]}: {seconds[index][-1]:.1f} s", flush=True)
        old, new = (statistics.median(values) for values in seconds)
        runs = " / ".join(", ".join(f"{value:.1f}" for value in values) for values in seconds)
        target = 60 * args.import_lines / 1_000_000
        # Less time is better: the ratio printed is new/old time, within 5% when ≤ 1.05.
        rows.append(
            f"| import_jsonl {args.import_lines:,} lines; runs {runs} | {old:.1f} s | {new:.1f} s | "
            f"{new / old:.2f} | < {target:.0f} s | {'yes' if new < target else 'NO'} | "
            f"{'yes' if new / old <= 1 / 0.95 else 'NO'} |"
        )
        print(rows[-1], flush=True)

    print(
        f"\nMachine: {bench.machine()}. Old: {trees[0]}, new: {trees[1]}; database of {args.size:,}.\n\n"
        "| measure | old | new | new/old | target | met | within issue 15 |\n|---|---|---|---|---|---|---|\n"
        + "\n".join(rows)
    )
    return 0


if __name__ == "__main__":
    bench.sys.exit(main())
