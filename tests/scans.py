"""Full scans per topic: the reference that the rollup reads are compared with."""

from django.db.models import Aggregate, Func, IntegerField, QuerySet, Sum

from conversations.models import Conversation, Topic


def per_topic(
    raw: QuerySet, aggregates: dict[str, Aggregate], *, topic: str | None = None
) -> dict[str, dict]:
    """For each topic (or only `topic`) that some conversation of `raw` has, the aggregates
    over those conversations (one full scan per topic, through the ORM's array lookup)."""
    topics = Topic.objects.all() if topic is None else Topic.objects.filter(name=topic)
    found = {}
    for each in topics:
        having = raw.filter(topic_ids__contains=[each.id])
        if having.exists():
            found[each.name] = having.aggregate(**aggregates)
    return found


def topic_names(conversation) -> list[str]:
    """The names of a stored conversation's topics, sorted."""
    return sorted(Topic.objects.filter(id__in=conversation.topic_ids).values_list("name", flat=True))


def topic_links() -> int:
    """How many (conversation, topic) pairs are stored."""
    cardinality = Func("topic_ids", function="cardinality", output_field=IntegerField())
    return Conversation.objects.aggregate(n=Sum(cardinality))["n"] or 0
