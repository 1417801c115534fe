"""Data retention: delete the conversations that ended before a cutoff, a batch at a time.

Each batch is one short transaction through `services.conversations_delete`, which takes the
conversations' contributions out of the rollups in the same statement, so every figure stays
exact while a purge runs, and a purge of years of data never holds its locks for long nor
keeps more than one batch of session ids in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time

from django.db import transaction

from conversations import rollups, services
from conversations.models import Conversation, ConversationRollup, Span, TopicRollup

# Every session id of a batch holds one advisory lock (the writers' lock in services) until
# the batch commits. PostgreSQL's shared lock table has room for about 12,000 locks with the
# default max_locks_per_transaction = 64 and max_connections = 100, shared with ingestion
# (up to 1,000 per request): batches of 1,000, the API's own batch limit, leave it room.
DEFAULT_BATCH_SIZE = 1_000


@dataclass(frozen=True)
class PurgedBatch:
    conversations: int
    rollup_rows: int  # rollup rows left all zero by the batch, deleted with it


def expired(*, cutoff: datetime):
    """The conversations that ended before `cutoff` (a conversation exactly at it stays)."""
    return Conversation.objects.filter(timestamp__lt=cutoff)


def _oldest(*, cutoff: datetime, limit: int) -> list[tuple[str, datetime]]:
    """(session id, timestamp) of the oldest conversations that ended before `cutoff`."""
    # Uses index: conversation_timestamp_idx (oldest first, so a batch's conversations
    # share few hours and days of rollup rows).
    return list(expired(cutoff=cutoff).order_by("timestamp").values_list("session_id", "timestamp")[:limit])


def _delete_empty_rollups(*, first: datetime, last: datetime) -> int:
    """Delete the rollup rows of the quarter hours, hours and days in [first, last] that count
    nothing now.

    Reads treat a missing row as zeros, so this changes no figure; it keeps purged periods
    from leaving their rows behind forever (rollups grow with time and with every topic,
    channel and version, not with the number of conversations). A writer adding to such a
    row at the same moment is safe either way: PostgreSQL re-checks the condition on the
    row it waited for, and an upsert after the delete inserts the row again.
    """
    day_start = datetime.combine(first.astimezone(UTC).date(), time(), tzinfo=UTC)
    empty = dict.fromkeys(rollups.METRICS, 0) | {f"{rollups.HISTOGRAM}__contained_by": [0]}
    deleted = 0
    for model in (ConversationRollup, TopicRollup):
        # Uses index: the rollup key (span, start, ...), one range of starts per span.
        rows = model.objects.filter(span__in=Span.values, start__gte=day_start, start__lte=last)
        deleted += rows.filter(**empty).delete()[0]
    return deleted


def purge_batch(*, cutoff: datetime, limit: int = DEFAULT_BATCH_SIZE) -> PurgedBatch | None:
    """Delete up to `limit` of the oldest conversations that ended before `cutoff`, in one
    transaction; None when there are none left."""
    # The deltas first, so that the rollup rows count them and those this batch empties read
    # all zero and go (if a server is folding right now, some stay: rows left at zero later,
    # which change no figure). In a transaction of its own: inside the batch's, it would hold
    # today's rollup rows before the session locks, against every other writer's order.
    rollups.fold()
    with transaction.atomic():
        oldest = _oldest(cutoff=cutoff, limit=limit)
        if not oldest:
            return None
        # A session re-posted since the read above may now end after the cutoff: the service
        # checks `ended_before` again under the writers' locks and leaves it.
        deleted = services.conversations_delete(
            session_ids=[session_id for session_id, _ in oldest], ended_before=cutoff
        )
        if not deleted:
            return PurgedBatch(conversations=0, rollup_rows=0)
        # The deleted conversations lie within these times (a re-posted one is not deleted).
        timestamps = [timestamp for _, timestamp in oldest]
        emptied = _delete_empty_rollups(first=min(timestamps), last=max(timestamps))
    return PurgedBatch(conversations=deleted, rollup_rows=emptied)
