"""Microseconds per item the ingest rules take to turn a body into ConversationIns, no database.

    .venv/bin/python benchmarks/ingest_rules_cpu.py [--items 1000] [--rounds 15]

Validates one array of tutorial-style items (as the tracker writes them, a third with channel,
bot version and cost) with `ingest_rules.conversations_from_body`, the API's and import_jsonl's
path, and prints the median of the rounds (each the best of 5).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import timeit
from datetime import UTC, datetime
from pathlib import Path

TOPICS = ["billing", "refund", "shipping", "login", "Password Reset", "returns", "api"]


def tutorial_items(count: int) -> list[dict]:
    rng = random.Random(1)
    items = []
    for i in range(count):
        item = {
            "timestamp": f"2026-03-{1 + i % 13:02d}T{i % 24:02d}:15:30.123456",
            "session_id": f"sess-{i:06d}",
            "turns": rng.randint(1, 12),
            "resolved_by_ai": rng.random() < 0.65,
            "topics": rng.sample(TOPICS, rng.randint(1, 3)),
            "csat": rng.choice([None, 1, 2, 3, 4, 5]),
        }
        if i % 2:
            item["avg_response_ms"] = round(rng.uniform(200, 3000), 1)
        else:
            item["response_times"] = [rng.randint(200, 3000) for _ in range(rng.randint(1, 6))]
        if i % 3 == 0:
            item |= {"channel": "web", "bot_version": "2.1.0", "ai_cost": 0.05}
        items.append(item)
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "supportanalytics.settings")
    import django

    django.setup()
    from conversations.ingest_rules import conversations_from_body

    body, received_at = tutorial_items(args.items), datetime(2026, 3, 14, 12, tzinfo=UTC)
    assert len(conversations_from_body(body, received_at=received_at)) == args.items
    rounds = [
        min(timeit.repeat(lambda: conversations_from_body(body, received_at=received_at), number=1, repeat=5))
        for _ in range(args.rounds)
    ]
    print(f"{statistics.median(rounds) / args.items * 1e6:.2f} µs per item (median of {args.rounds} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
