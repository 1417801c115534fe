from datetime import timedelta

import factory

from conversations.models import Conversation, Topic
from tests.conftest import T0


class TopicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Topic
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"topic {n}")


class ConversationFactory(factory.django.DjangoModelFactory):
    """A stored conversation; timestamps default to fixed offsets before T0, never random."""

    class Meta:
        model = Conversation
        skip_postgeneration_save = True

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
    received_at = factory.SelfAttribute("timestamp")

    @factory.post_generation
    def topics(self, create, names, **kwargs):
        if create and names:
            self.topics.set([TopicFactory(name=name) for name in names])
