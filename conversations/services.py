"""Writes. Every change to conversations goes through here, inside one transaction."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

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
    created_session_ids: set[str] = field(default_factory=set)


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

    with transaction.atomic():
        # Lock the rows we are about to replace, in key order; tells created from updated.
        existing = set(
            Conversation.objects.select_for_update()
            .filter(session_id__in=session_ids)
            .order_by("session_id")
            .values_list("session_id", flat=True)
        )
        topic_ids = _topic_ids({name for item in batch for name in item.topics})

        rows = {
            True: [],  # items that carry a csat field
            False: [],  # items that do not: the stored csat stays
        }
        for item in batch:
            rows[item.csat_given].append(
                Conversation(
                    session_id=item.session_id,
                    timestamp=item.timestamp,
                    turns=item.turns,
                    resolved_by_ai=item.resolved_by_ai,
                    avg_response_ms=item.avg_response_ms,
                    response_count=item.response_count,
                    csat=item.csat,
                    channel=item.channel,
                    bot_version=item.bot_version,
                    ai_cost=item.ai_cost,
                    received_at=received_at,
                )
            )
        stored: list[Conversation] = []
        for csat_given, conversations in rows.items():
            if conversations:
                stored += Conversation.objects.bulk_create(
                    conversations,
                    update_conflicts=True,
                    unique_fields=["session_id"],
                    update_fields=_REPLACED_FIELDS + (["csat"] if csat_given else []),
                )

        conversation_ids = {conversation.session_id: conversation.pk for conversation in stored}
        if existing:
            ConversationTopic.objects.filter(
                conversation_id__in=[conversation_ids[key] for key in existing]
            ).delete()
        ConversationTopic.objects.bulk_create(
            [
                ConversationTopic(
                    conversation_id=conversation_ids[item.session_id],
                    topic_id=topic_ids[name],
                )
                for item in batch
                for name in item.topics
            ]
        )

    result.created_session_ids = set(session_ids) - existing
    result.created = len(result.created_session_ids)
    result.updated = len(existing)
    return result


def conversation_set_csat(*, session_id: str, csat: int | None) -> Conversation:
    """Set (or clear, with None) the CSAT of a stored conversation.

    Raises Conversation.DoesNotExist for an unknown session id.
    """
    with transaction.atomic():
        conversation = Conversation.objects.select_for_update().get(session_id=session_id)
        conversation.csat = csat
        conversation.save(update_fields=["csat"])
    return conversation
