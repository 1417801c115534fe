import math
import random
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from conversations import rollups, services
from conversations.customers import customer_hash
from conversations.models import Conversation
from conversations.services import ConversationIn

# (topic, weight in the mix, how often the bot resolves it alone)
TOPICS = [
    ("order status", 18, 0.88),
    ("password reset", 12, 0.92),
    ("billing", 14, 0.66),
    ("refund request", 10, 0.41),
    ("shipping delay", 9, 0.58),
    ("returns", 8, 0.63),
    ("account access", 7, 0.71),
    ("subscription change", 6, 0.69),
    ("payment failed", 5, 0.47),
    ("product availability", 5, 0.83),
    ("discount code", 4, 0.79),
    ("warranty claim", 3, 0.29),
    ("technical issue", 3, 0.36),
    ("invoice copy", 2, 0.9),
    ("data deletion", 1, 0.22),
]
CHANNELS = [("web", 60), ("email", 18), ("mobile", 16), ("sms", 6)]
# Newer bot versions resolve a little more; they roll out over the period.
BOT_VERSIONS = [("2.3.0", -0.04), ("2.4.0", 0.0), ("2.5.0", 0.05)]
# Ratings 1..5: happy when the bot resolved it, mixed when a human had to take over.
CSAT_WEIGHTS = {True: [3, 4, 10, 33, 50], False: [14, 18, 28, 24, 16]}
CSAT_RESPONSE_RATE = 0.3
BATCH_SIZE = 1_000
# Honest resolution: only the newer bot versions report how a conversation ended, so the
# outcome coverage is partial, as it is while a bot is being upgraded.
VERSIONS_REPORTING_OUTCOMES = {"2.4.0", "2.5.0"}
ESCALATION_REASONS = [
    ("customer asked for a human", 30),
    ("policy exception", 22),
    ("missing information", 18),
    ("bot misunderstood", 16),
    ("identity verification", 9),
    ("angry customer", 5),
]
CUSTOMER_ID_RATE = 0.75
# Conversations per customer over the period, at random moments: some come back within the
# repeat-contact window, most do not.
CONVERSATIONS_PER_CUSTOMER = 2.5


def _hour_weight(hour: int) -> float:
    """Busier in the (UTC) working day, quiet at night."""
    return 0.25 + math.exp(-((hour - 14) ** 2) / 18)


class Command(BaseCommand):
    help = "Load realistic synthetic conversations (topic mix, per-topic resolution, sparse CSAT)."

    def add_arguments(self, parser):
        parser.add_argument("--conversations", type=int, default=5_000)
        parser.add_argument("--days", type=int, default=30)
        parser.add_argument(
            "--seed",
            type=int,
            default=1,
            help="Same seed, same data: re-running replaces it.",
        )
        parser.add_argument(
            "--only-if-empty",
            action="store_true",
            help="Do nothing when conversations are already stored (used by make run).",
        )

    def handle(self, *args, conversations: int, days: int, seed: int, only_if_empty: bool, **options):
        if conversations < 0 or days < 1:
            raise CommandError("--conversations must be >= 0 and --days >= 1")
        if only_if_empty and Conversation.objects.exists():
            self.stdout.write("Conversations already stored: no demo data loaded.")
            return
        rng = random.Random(seed)
        now = timezone.now()
        hours = list(range(days * 24))
        weights = [_hour_weight((now - timedelta(hours=hour)).hour) for hour in hours]
        created = updated = 0
        customers = max(1, round(conversations * CUSTOMER_ID_RATE / CONVERSATIONS_PER_CUSTOMER))
        batch: list[ConversationIn] = []
        for index in range(conversations):
            batch.append(
                self._conversation(
                    rng,
                    now=now,
                    days=days,
                    hours=hours,
                    weights=weights,
                    index=index,
                    seed=seed,
                    customers=customers,
                )
            )
            if len(batch) == BATCH_SIZE or index == conversations - 1:
                result = services.conversations_ingest(items=batch)
                created, updated = created + result.created, updated + result.updated
                batch = []
        rollups.fold()  # a last batch of up to 10 leaves its rollup changes as deltas
        self.stdout.write(
            f"Demo data: {created:,} conversations created, {updated:,} replaced, over {days} days."
        )

    @staticmethod
    def _conversation(rng, *, now, days, hours, weights, index, seed, customers) -> ConversationIn:
        hours_ago = rng.choices(hours, weights)[0]
        timestamp = now - timedelta(hours=hours_ago, seconds=rng.uniform(0, 3600))
        age = hours_ago / (days * 24)  # 0 = now, 1 = oldest
        version, version_bonus = BOT_VERSIONS[0 if age > 0.66 else 1 if age > 0.33 else 2]
        names = [name for name, _, _ in TOPICS]
        topic_weights = [weight for _, weight, _ in TOPICS]
        topics = set(rng.choices(names, topic_weights, k=rng.choice([1, 1, 1, 2, 2, 3])))
        rate = min({n: r for n, _, r in TOPICS}[name] for name in topics) + version_bonus
        resolved = rng.random() < rate
        turns = rng.randint(2, 8) if resolved else rng.randint(4, 16)
        csat = (
            rng.choices([1, 2, 3, 4, 5], CSAT_WEIGHTS[resolved])[0]
            if rng.random() < CSAT_RESPONSE_RATE
            else None
        )
        responses = max(1, turns // 2)
        reports_cost = rng.random() < 0.6
        # Its own generator: the fields above stay what they were for each seed.
        honest = random.Random(f"{seed}-{index}")
        outcome, reason, customer = "", "", None
        if version in VERSIONS_REPORTING_OUTCOMES:
            if resolved:
                outcome = "confirmed" if (csat or 0) >= 4 or honest.random() < 0.35 else "assumed"
            else:
                outcome = "abandoned" if honest.random() < 0.25 else "escalated"
        if not resolved and honest.random() < 0.85:
            reason = honest.choices([r for r, _ in ESCALATION_REASONS], [w for _, w in ESCALATION_REASONS])[0]
        if honest.random() < CUSTOMER_ID_RATE:
            customer = honest.randrange(customers)
        return ConversationIn(
            session_id=f"demo-{seed}-{index:08d}",
            timestamp=timestamp,
            turns=turns,
            resolved_by_ai=resolved,
            topics=tuple(sorted(topics)),
            avg_response_ms=round(rng.lognormvariate(math.log(900), 0.45), 1),
            response_count=responses,
            channel=rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0],
            bot_version=version,
            ai_cost=Decimal(str(round(rng.uniform(0.01, 0.12), 4))) if reports_cost else None,
            csat=csat,
            csat_given=True,
            outcome=outcome,
            escalation_reason=reason,
            customer_hash=None if customer is None else customer_hash(f"demo-customer-{customer}"),
            customer_given=True,
        )
