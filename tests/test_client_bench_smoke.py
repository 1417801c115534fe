"""A smoke run of the client's benchmark (`benchmarks/client_bench.py --quick`): it times
log_conversation with the server down and runs conversations end to end through gunicorn on a
throwaway database. The times are not checked (`make bench-client` reports them on a quiet
machine); that every measure runs, and that everything logged end to end was stored, is."""

import re
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def test_a_quick_run_measures_everything_and_prints_its_table(tmp_path):
    output = tmp_path / "benchmarks.md"
    run = subprocess.run(
        [sys.executable, "benchmarks/client_bench.py", "--quick", "--output", str(output)],
        cwd=BASE_DIR, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    table = run.stdout[run.stdout.index("## Client (`make bench-client`)") :]
    for threads in (1, 4):
        for pace in ("back to back", "each 500/s"):
            name = re.escape(f"log_conversation, server down, {threads} thread(s), {pace}")
            assert re.search(rf"\| {name} \| [\d.]+ µs \| [\d.]+ µs \|", table), name
    assert re.search(
        r"\| end to end: 3,000 logged → stored \(1 thread\) \| [\d,]+ conv/s \| 3,000 stored", table
    )
    assert not output.exists()  # --quick writes no results file
