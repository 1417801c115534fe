"""Writes. Every change to conversations goes through here, inside one transaction."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from conversations import histogram, rollups
from conversations.models import Conversation, ConversationTopic, Topic

# Columns a re-post replaces. `csat` is handled apart: see `conversations_ingest`.
_REPLACED_FIELDS = [
    "timestamp",
    "turns",
    "resolved_by_ai",
    "avg_response_ms",
    "response_count",
    "channel",
    "bot_version",
    "ai_cost",
    "received_at",
]


@dataclass(frozen=True)
class ConversationIn:
    """A validated, normalized conversation (see `ConversationIngestApi.InputSerializer`)."""

    session_id: str
    timestamp: datetime
    turns: int
    resolved_by_ai: bool
    topics: tuple[str, ...] = ()
    avg_response_ms: float | None = None
    response_count: int | None = None
    channel: str = ""
    bot_version: str = ""
    ai_cost: Decimal | None = None
    # csat_given tells "no csat field" (keep the stored score) from "csat": null (clear it).
    csat: int | None = None
    csat_given: bool = False


@dataclass
class IngestResult:
    created: int = 0
    updated: int = 0
    # The stored conversations, each with `topic_names` (what the API answers, no re-read).
    conversations: dict[str, Conversation] = field(default_factory=dict)


def _last_per_session(items: Iterable[ConversationIn]) -> list[ConversationIn]:
    """The last item for each session id, sorted by session id.

    One INSERT ... ON CONFLICT may not touch a row twice, and concurrent batches that lock
    rows in different orders can deadlock; sorting by the key avoids both.
    """
    latest: dict[str, ConversationIn] = {}
    for item in items:
        latest[item.session_id] = item
    return [latest[key] for key in sorted(latest)]


def _topic_ids(names: set[str]) -> dict[str, int]:
    if not names:
        return {}
    Topic.objects.bulk_create([Topic(name=name) for name in sorted(names)], ignore_conflicts=True)
    return dict(Topic.objects.filter(name__in=names).values_list("name", "id"))


# Advisory-lock namespace of this app ("SA"), so our locks never meet another app's.
_SESSION_LOCK_CLASS = 0x5341


def _session_lock_key(session_id: str) -> int:
    return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=4).digest(), "big", signed=True)


def _lock_sessions(session_ids: Iterable[str]) -> None:
    """Serialize every writer of these session ids until the transaction ends.

    Row locks cannot do this for a session that does not exist yet: two requests posting
    the same new session would both miss it, both insert (one then updating the other's
    row), and leave both sets of topic links. Advisory locks on a hash of the id, taken in
    sorted order (so two batches never wait on each other in a cycle), close that gap. A
    hash collision only makes two unrelated sessions wait for each other.
    """
    keys = sorted({_session_lock_key(session_id) for session_id in session_ids})
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s, key) FROM unnest(%s::integer[]) AS key",
            [_SESSION_LOCK_CLASS, keys],
        )


def conversations_ingest(*, items: Sequence[ConversationIn]) -> IngestResult:
    """Store conversations, replacing any with the same session id (idempotent).

    A re-post replaces every field of the stored conversation, except that an item
    without a `csat` field keeps the stored score: surveys arrive after the conversation,
    and a retried post must not wipe a score set in the meantime.
    """
    batch = _last_per_session(items)
    result = IngestResult()
    if not batch:
        return result
    received_at = timezone.now()
    session_ids = [item.session_id for item in batch]
    by_session = {item.session_id: item for item in batch}

    with transaction.atomic():
        _lock_sessions(session_ids)
        old = _snapshots(Conversation.objects.filter(session_id__in=session_ids))
        existing = set(old)
        topic_ids = _topic_ids({name for item in batch for name in item.topics})
        stored = Conversation.objects.bulk_create(
            [
                Conversation(
                    session_id=item.session_id,
                    timestamp=item.timestamp,
                    turns=item.turns,
                    resolved_by_ai=item.resolved_by_ai,
                    avg_response_ms=item.avg_response_ms,
                    response_ms_bucket=histogram.bucket_of(item.avg_response_ms),
                    response_count=item.response_count,
                    csat=item.csat,  # a new row without a csat field gets none
                    channel=item.channel,
                    bot_version=item.bot_version,
                    ai_cost=item.ai_cost,
                    received_at=received_at,
                )
                for item in batch
            ],
            update_conflicts=True,
            unique_fields=["session_id"],
            update_fields=[*_REPLACED_FIELDS, "response_ms_bucket"],
        )
        conversation_ids = {conversation.session_id: conversation.pk for conversation in stored}
        rescored = [
            Conversation(pk=conversation_ids[item.session_id], csat=item.csat)
            for item in batch
            if item.csat_given and item.session_id in existing
        ]
        if rescored:
            Conversation.objects.bulk_update(rescored, ["csat"])
        if existing:
            ConversationTopic.objects.filter(
                conversation_id__in=[conversation_ids[key] for key in sorted(existing)]
            ).delete()
        ConversationTopic.objects.bulk_create(
            [
                ConversationTopic(conversation_id=conversation_ids[item.session_id], topic_id=topic_ids[name])
                for item in batch
                for name in item.topics
            ]
        )

        deltas = rollups.Deltas()
        deltas.remove_all(old.values())
        deltas.add_all(
            rollups.Snapshot(
                timestamp=item.timestamp,
                channel=item.channel,
                bot_version=item.bot_version,
                resolved_by_ai=item.resolved_by_ai,
                turns=item.turns,
                csat=item.csat
                if item.csat_given or item.session_id not in old
                else old[item.session_id].csat,
                ai_cost=item.ai_cost,
                avg_response_ms=item.avg_response_ms,
                response_ms_bucket=histogram.bucket_of(item.avg_response_ms),
                topic_ids=tuple(sorted(topic_ids[name] for name in item.topics)),
            )
            for item in batch
        )
        # Last, so the shared rows (everyone writes the current hour) stay locked only
        # until the commit that follows.
        deltas.apply()

    for conversation in stored:
        if conversation.session_id in existing and not by_session[conversation.session_id].csat_given:
            conversation.csat = old[conversation.session_id].csat  # the stored score was kept
        conversation.topic_names = sorted(by_session[conversation.session_id].topics)
        result.conversations[conversation.session_id] = conversation
    result.created = len(session_ids) - len(existing)
    result.updated = len(existing)
    return result


def conversation_set_csat(*, session_id: str, csat: int | None) -> Conversation:
    """Set (or clear, with None) the CSAT of a stored conversation.

    Raises Conversation.DoesNotExist for an unknown session id.
    """
    with transaction.atomic():
        _lock_sessions([session_id])
        conversation = Conversation.objects.select_for_update().get(session_id=session_id)
        before = _snapshots(Conversation.objects.filter(pk=conversation.pk))[session_id]
        conversation.csat = csat
        conversation.save(update_fields=["csat"])
        deltas = rollups.Deltas()
        deltas.add(before, -1)
        deltas.add(replace(before, csat=csat), +1)
        deltas.apply()
    return conversation


def conversations_delete(*, session_ids: Sequence[str]) -> int:
    """Delete conversations and take their contributions out of the rollups; returns how many."""
    with transaction.atomic():
        _lock_sessions(session_ids)
        old = _snapshots(Conversation.objects.filter(session_id__in=session_ids))
        Conversation.objects.filter(session_id__in=list(old)).delete()
        deltas = rollups.Deltas()
        deltas.remove_all(old.values())
        deltas.apply()
    return len(old)


def _snapshots(conversations: QuerySet[Conversation]) -> dict[str, rollups.Snapshot]:
    """What these stored conversations contribute to the rollups, by session id."""
    rows = list(
        conversations.values(
            "id",
            "session_id",
            "timestamp",
            "channel",
            "bot_version",
            "resolved_by_ai",
            "turns",
            "csat",
            "ai_cost",
            "avg_response_ms",
            "response_ms_bucket",
        )
    )
    topics: dict[int, list[int]] = defaultdict(list)
    if rows:
        links = ConversationTopic.objects.filter(conversation_id__in=[row["id"] for row in rows])
        for conversation_id, topic_id in links.values_list("conversation_id", "topic_id"):
            topics[conversation_id].append(topic_id)
    return {
        row["session_id"]: rollups.Snapshot(
            timestamp=row["timestamp"],
            channel=row["channel"],
            bot_version=row["bot_version"],
            resolved_by_ai=row["resolved_by_ai"],
            turns=row["turns"],
            csat=row["csat"],
            ai_cost=row["ai_cost"],
            avg_response_ms=row["avg_response_ms"],
            response_ms_bucket=row["response_ms_bucket"],
            topic_ids=tuple(sorted(topics[row["id"]])),
        )
        for row in rows
    }
