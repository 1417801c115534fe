"""`make bench-client`: what the bot-side client (client/, supportanalytics_client) costs a bot.

    .venv/bin/python benchmarks/client_bench.py [--calls 100000] [--conversations 50000] [--quick]

1. `log_conversation` with the server down (nothing listens at its URL), timed call by call
   with perf_counter_ns: from 1 thread, and from 4 threads at once (each call's own time,
   waiting for the others included). Median, p99, p99.9, the slowest. Target: p99 ≤ 100 µs.
2. End to end: the app served by gunicorn (2 workers × 4 threads, bench.start_server) on a
   throwaway database; one thread logs N conversations as fast as it can while the sender
   sends them; the time from the first call until `flush()` finds the spool empty, and the
   count the database then holds. Target: ≥ 5,000 conversations/s. The calls' own times while
   the sender works are reported beside it.

Results are printed and put at the top of docs/benchmarks.md (not with --quick), with the
machine and its load average, since other work on a shared machine shows in the tails.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR / "benchmarks"))
sys.path.insert(0, str(BASE_DIR / "client" / "src"))

import bench  # noqa: E402
from throwaway_server import ThrowawayServer  # noqa: E402

from supportanalytics_client import AnalyticsTracker  # noqa: E402

LATENCY_TARGET_US = 100
THROUGHPUT_TARGET = 5_000
WARMUP = 2_000


def conversation(number: int) -> tuple[tuple, dict]:
    """A tutorial call plus the fields a bot that knows more sends."""
    arguments = (
        f"bench-{number}",
        1 + number % 12,
        number % 3 != 0,
        ["billing", "refund"] if number % 2 else ["login"],
        [820 + number % 400, 1140.5, 610],
    )
    fields = {"channel": "web", "bot_version": "2.5.0", "customer_id": f"crm-{number % 5000}"}
    if number % 4 == 0:
        fields["csat"] = 1 + number % 5
    return arguments, fields


def time_calls(tracker: AnalyticsTracker, first: int, count: int, into: list[int], rate: float = 0) -> None:
    """Time `count` calls; at `rate` calls a second if given (a bot between conversations),
    else back to back (4 threads back to back keep the one interpreter lock busy: a call that
    the interpreter interrupts to run another thread, every 5 ms, waits for the others'
    turns; that shows in the p99.9)."""
    clock = time.perf_counter_ns
    log = tracker.log_conversation
    calls = [conversation(number) for number in range(first, first + count)]
    next_call = time.perf_counter()
    for arguments, fields in calls:
        if rate:
            next_call += 1 / rate
            pause = next_call - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        started = clock()
        log(*arguments, **fields)
        into.append(clock() - started)


def latency(
    tracker: AnalyticsTracker, *, threads: int, calls: int, offset: int, rate: float = 0
) -> list[int]:
    """Each call's time in ns, `calls` in all, from `threads` threads started together."""
    timings: list[list[int]] = [[] for _ in range(threads)]
    per_thread = calls // threads
    workers = [
        threading.Thread(
            target=time_calls, args=(tracker, offset + n * per_thread, per_thread, timings[n], rate)
        )
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [timing for thread in timings for timing in thread]


def summary(timings_ns: list[int]) -> dict[str, float]:
    ordered = sorted(timings_ns)

    def at(fraction: float) -> float:
        return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))] / 1000

    return {"median": at(0.5), "p99": at(0.99), "p999": at(0.999), "max": ordered[-1] / 1000}


def latency_row(name: str, timings: list[int]) -> tuple[str, ...]:
    s = summary(timings)
    return (
        name, f"{s['median']:.1f} µs", f"{s['p99']:.1f} µs", f"{s['p999']:.0f} / {s['max']:,.0f} µs",
        f"p99 ≤ {LATENCY_TARGET_US} µs", "yes" if s["p99"] <= LATENCY_TARGET_US else "NO",
    )  # fmt: skip


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class TutorialTracker:
    """The tutorial's tracker's log_conversation (shared/seed), for the same harness: what a bot
    pays today (a JSON line appended to a file, no checks, nothing synced)."""

    def __init__(self, path: Path):
        self.log_file = path

    def log_conversation(self, session_id, turns, resolved_by_ai, topics, response_times, csat=None, **_):
        entry = {
            "timestamp": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "session_id": session_id,
            "turns": turns,
            "resolved_by_ai": resolved_by_ai,
            "topics": topics,
            "avg_response_ms": sum(response_times) / max(len(response_times), 1),
            "csat": csat,
        }
        with open(self.log_file, "a") as f:
            f.write(json.dumps(entry) + "\n")


# A busy bot: 500 conversations a second per thread, 2,000 from 4 threads.
PACED_RATE = 500
# (threads, calls per second per thread; 0: back to back)
RUNS = [(1, 0), (4, 0), (1, PACED_RATE), (4, PACED_RATE)]


def server_down_latency(calls: int, paced_calls: int, spool_dir: Path) -> list[tuple[str, ...]]:
    closed_port = bench.free_port()  # nothing listens there: every attempt is refused
    rows = []
    for threads, rate in RUNS:
        name = f"down-{threads}-{rate}.sqlite3"
        tracker = AnalyticsTracker(f"http://127.0.0.1:{closed_port}", "bench", spool_dir / name)
        latency(tracker, threads=threads, calls=WARMUP, offset=10_000_000)  # connections, caches
        timings = latency(tracker, threads=threads, calls=paced_calls if rate else calls, offset=0, rate=rate)
        pace = f"each {rate}/s" if rate else "back to back"
        rows.append(latency_row(f"log_conversation, server down, {threads} thread(s), {pace}", timings))
        print(f"  {rows[-1][0]}: median {rows[-1][1]}, p99 {rows[-1][2]} (load {load()})", flush=True)
        tracker.close(timeout=0)
        tutorial = TutorialTracker(spool_dir / f"tutorial-{threads}-{rate}.jsonl")
        latency(tutorial, threads=threads, calls=WARMUP, offset=10_000_000)
        timings = latency(
            tutorial, threads=threads, calls=paced_calls if rate else calls, offset=0, rate=rate
        )
        rows.append(
            latency_row(f"(the tutorial's tracker, same run: {threads} thread(s), {pace})", timings)[:4]
        )
    return rows


def end_to_end(conversations: int, spool_dir: Path) -> list[tuple[str, ...]]:
    server = ThrowawayServer("supportanalytics_client_bench")
    try:
        key = server.create_key("ingest")
        server.start()
        tracker = AnalyticsTracker(server.base_url, key, spool_dir / "up.sqlite3")
        timings: list[int] = []
        started = time.perf_counter()
        time_calls(tracker, 0, conversations, timings)
        logged = time.perf_counter() - started
        waiting = tracker.flush(600)
        elapsed = time.perf_counter() - started
        tracker.close(timeout=0)
        (stored,) = server.rows(
            "SELECT count(*) FROM conversations_conversation WHERE session_id LIKE %s", ("bench-%",)
        )[0]
    finally:
        server.close()
    rate = stored / elapsed
    print(f"  end to end: {stored:,} stored in {elapsed:.2f} s ({rate:,.0f}/s; logging took {logged:.2f} s, "
          f"{waiting} left)", flush=True)  # fmt: skip
    return [
        (f"end to end: {conversations:,} logged → stored (1 thread)", f"{rate:,.0f} conv/s",
         f"{stored:,} stored in {elapsed:.1f} s", f"logging {logged:.1f} s",
         f"≥ {THROUGHPUT_TARGET:,} conv/s", "yes" if rate >= THROUGHPUT_TARGET and waiting == 0 else "NO"),
        latency_row("log_conversation while the sender sends (1 thread)", timings),
    ]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000, help="timed calls per back-to-back run")
    parser.add_argument("--paced-calls", type=int, default=20_000, help="timed calls per paced run")
    parser.add_argument("--conversations", type=int, default=50_000, help="conversations end to end")
    parser.add_argument("--output", type=Path, default=BASE_DIR / "docs" / "benchmarks.md")
    parser.add_argument("--quick", action="store_true", help="small runs, no results file (smoke test)")
    args = parser.parse_args()
    if args.quick:
        args.calls, args.paced_calls, args.conversations = 4_000, 1_000, 3_000
    logging.basicConfig(level=logging.ERROR)  # the refused connections of the first part are expected
    gc.collect()
    load_before = load()
    with tempfile.TemporaryDirectory(prefix="client-bench-") as spool_dir:
        rows = server_down_latency(args.calls, args.paced_calls, Path(spool_dir))
        rows += end_to_end(args.conversations, Path(spool_dir))
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = ["| measure | median | p99 | p99.9 / slowest | target | met |", "|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(row + ("", "")[: 6 - len(row)]) + " |" for row in rows]
    section = (
        f"## Client (`make bench-client`) — {stamp}\n\n"
        f"Machine: {bench.machine()}; load average {load_before} before, {load()} after. "
        f"Latency: {args.calls:,} timed calls per back-to-back run, {args.paced_calls:,} per paced run "
        f"({PACED_RATE} calls/s per thread), after {WARMUP:,} warm-up calls, a new spool each, the "
        f"sender backing off a refused connection. End to end: gunicorn {bench.WORKERS} workers × "
        f"{bench.THREADS} threads on a throwaway database; time from the first call until flush() "
        "returned 0. (For the end-to-end row the columns are: rate, what was stored, the logging "
        "time.)\n\n" + "\n".join(table) + "\n"
    )
    print("\n" + section)
    if not args.quick:
        bench.add_to_results(args.output, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
