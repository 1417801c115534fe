"""A smoke run of the benchmark (`benchmarks/bench.py --quick` on a few thousand conversations):
it loads its database, serves the app with gunicorn, reads, ingests, imports and prints its
table. The times are not checked (they are `make bench`'s to report, on a quiet machine); that
every measure runs end to end against the current code is."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
SIZE = 3_000


def _bench_module():
    spec = importlib.util.spec_from_file_location("bench", BASE_DIR / "benchmarks" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench():
    module = _bench_module()
    yield module
    admin_url, url = module.database_urls(SIZE)
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def test_a_quick_run_measures_everything_and_prints_its_table(bench, tmp_path):
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--size", str(SIZE), "--import-lines", str(SIZE), "--quick",
         "--output", str(output)],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip

    assert run.returncode == 0, run.stderr[-3000:]
    table = run.stdout[run.stdout.index(f"## {SIZE:,} conversations") :]
    reads = [name for name, _ in bench.READS + bench.worst_edge_reads(bench.datetime.now(bench.UTC))]
    for name in reads:
        assert re.search(
            rf"\| {re.escape(name)} \| \d+\.\d ms \| \d+\.\d ms \| ≤ \d+ ms \| (yes|NO) \|", table
        ), name
    assert re.search(r"\| ingest arrays of 1,000 \(2 clients\) \| [\d,]+ conv/s \|", table)
    assert re.search(r"\| ingest single POSTs \(8 clients\) \| [\d,]+ req/s \|", table)
    assert re.search(rf"\| import_jsonl {SIZE:,} lines \(empty database\) \| \d+\.\d s \|", table)
    assert re.search(r"\| worker memory after the reads \| \d+ MB / \d+ MB \|", table)
    # What the ingestion runs posted is taken out again, and --quick writes no results file.
    removed = int(re.search(r"removed the ([\d,]+) conversations", run.stdout)[1].replace(",", ""))
    assert removed > 0
    assert not output.exists()
