from datetime import timedelta

import factory

from conversations import services
from conversations.customers import customer_hash
from conversations.models import Conversation, Topic
from conversations.services import ConversationIn
from tests.conftest import T0


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"topic {n}")


class ConversationFactory(factory.django.DjangoModelFactory):
    """A stored conversation, written through the real ingestion service (so the rollups
    that analytics read are kept as in production). Timestamps default to fixed offsets
    before T0, never random ones; `topics` is a list of names."""

    class Meta:
        model = Conversation

    session_id = factory.Sequence(lambda n: f"session-{n:06d}")
    timestamp = factory.LazyFunction(lambda: T0 - timedelta(hours=1))
    turns = 4
    resolved_by_ai = True
    avg_response_ms = 800.0
    response_count = 2
    csat = None
    channel = "web"
    bot_version = "1.0"
    ai_cost = None
    topics = ()
    outcome = ""
    escalation_reason = ""
    customer_id = None  # hashed on the way in, as the API does

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        item = ConversationIn(
            session_id=kwargs["session_id"],
            timestamp=kwargs["timestamp"],
            turns=kwargs["turns"],
            resolved_by_ai=kwargs["resolved_by_ai"],
            topics=tuple(kwargs["topics"]),
            avg_response_ms=kwargs["avg_response_ms"],
            response_count=kwargs["response_count"],
            channel=kwargs["channel"],
            bot_version=kwargs["bot_version"],
            ai_cost=kwargs["ai_cost"],
            csat=kwargs["csat"],
            csat_given=True,
            outcome=kwargs["outcome"],
            escalation_reason=kwargs["escalation_reason"],
            customer_hash=None if kwargs["customer_id"] is None else customer_hash(kwargs["customer_id"]),
            customer_given=True,
        )
        services.conversations_ingest(items=[item])
        return model_class.objects.get(session_id=item.session_id)


def conversation_in(
    session_id: str, at, *, customer: str | None = None, resolved: bool = True, turns: int = 1, **fields
) -> ConversationIn:
    """A ConversationIn for `services.conversations_ingest`, with the customer id hashed as the
    API hashes it (`customer` None: none) and the outcome, reason or any other field as given."""
    return ConversationIn(
        session_id=session_id,
        timestamp=at,
        turns=turns,
        resolved_by_ai=resolved,
        customer_hash=None if customer is None else customer_hash(customer),
        customer_given=True,
        **fields,
    )
