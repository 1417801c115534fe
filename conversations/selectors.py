"""Reads. Every number in the analytics API (and the dashboard) comes from one of these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from django.db.models import Count, F, QuerySet
from django.db.models.functions import TruncDay, TruncHour, TruncWeek

from conversations.metrics import CostBreakdown, Totals, aggregates, difference, percent, relative_change
from conversations.models import Conversation, ConversationTopic, CostSettings

TOP_TOPICS_LIMIT = 10


@dataclass(frozen=True)
class Period:
    """A window of conversation end times: [start, end), or (start, end) when not include_start."""

    start: datetime
    end: datetime
    include_start: bool = True


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    topic: str | None = None  # normalized
    bot_version: str | None = None


class Granularity:
    HOUR = "hour"
    DAY = "day"
    WEEK = "week"
    CHOICES = (HOUR, DAY, WEEK)


@dataclass(frozen=True)
class Summary:
    period: Period
    filters: Filters
    totals: Totals
    cost: CostBreakdown
    top_topics: list[tuple[str, int]]


@dataclass(frozen=True)
class TopicStats:
    topic_id: int
    topic: str
    totals: Totals
    share: Decimal | None  # 100 × this topic's conversations / all conversations in the window
    escalation_cost: Decimal


@dataclass(frozen=True)
class Bucket:
    start: datetime
    totals: Totals
    cost: CostBreakdown
    cumulative_savings: Decimal  # savings of this bucket and every one before it in the window


def conversations_in(*, period: Period, filters: Filters) -> QuerySet[Conversation]:
    return (
        Conversation.objects.in_window(period.start, period.end, include_start=period.include_start)
        .for_channel(filters.channel)
        .for_bot_version(filters.bot_version)
        .with_topic(filters.topic)
    )


def top_topics(*, period: Period, filters: Filters, limit: int = TOP_TOPICS_LIMIT) -> list[tuple[str, int]]:
    """Up to `limit` (topic, conversations) pairs, most conversations first, ties by name."""
    rows = (
        ConversationTopic.objects.filter(conversation__in=conversations_in(period=period, filters=filters))
        .values("topic__name")
        .annotate(conversations=Count("conversation_id"))
        .order_by("-conversations", "topic__name")[:limit]
    )
    return [(row["topic__name"], row["conversations"]) for row in rows]


def summary(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    with_top_topics: bool = True,
) -> Summary:
    """The whole window at once: the tutorial's summary keys and everything added to them."""
    cost_settings = cost_settings or CostSettings.load()
    row = conversations_in(period=period, filters=filters).aggregate(
        **aggregates(default_ai_cost=cost_settings.ai_cost_per_conversation)
    )
    totals = Totals.from_row(row)
    return Summary(
        period=period,
        filters=filters,
        totals=totals,
        cost=totals.cost(cost_settings),
        top_topics=top_topics(period=period, filters=filters)
        if with_top_topics and totals.conversations
        else [],
    )


def topic_breakdown(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    total: int | None = None,
) -> list[TopicStats]:
    """Every topic with conversations in the window, most conversations first, ties by name.

    `total` (the window's conversation count, for each topic's share) saves a query when
    the caller already knows it.
    """
    cost_settings = cost_settings or CostSettings.load()
    conversations = conversations_in(period=period, filters=filters)
    if total is None:
        total = conversations.count()
    if total == 0:
        return []
    rows = (
        ConversationTopic.objects.filter(conversation__in=conversations)
        .values("topic_id", topic_name=F("topic__name"))
        .annotate(
            **aggregates(
                default_ai_cost=cost_settings.ai_cost_per_conversation,
                prefix="conversation__",
            )
        )
        .order_by("-conversations", "topic_name")
    )
    result = []
    for row in rows:
        totals = Totals.from_row(row)
        result.append(
            TopicStats(
                topic_id=row["topic_id"],
                topic=row["topic_name"],
                totals=totals,
                share=percent(totals.conversations, total),
                escalation_cost=totals.escalation_cost(cost_settings),
            )
        )
    return result


_TRUNC = {
    Granularity.HOUR: TruncHour,
    Granularity.DAY: TruncDay,
    Granularity.WEEK: TruncWeek,
}


def bucket_starts(*, start: datetime, end: datetime, granularity: str, tz: ZoneInfo) -> list[datetime]:
    """The start of every bucket that overlaps [start, end), in `tz`, empty ones included.

    Days and weeks are calendar days in `tz` (23 or 25 hours long on DST changes), so
    buckets step in local wall-clock time and are normalized after each step.
    (Zulip's analytics/lib/time_utils.py::time_range does the same.)
    """
    if start >= end:
        return []
    if granularity == Granularity.HOUR:
        # Hours are UTC hours (shown in `tz`): exact across DST changes, where a local
        # hour repeats or goes missing. Same as the SQL side (TruncHour in UTC).
        current = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
        buckets = []
        while current < end:
            buckets.append(current.astimezone(tz))
            current += timedelta(hours=1)
        return buckets
    local = start.astimezone(tz)
    first = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if granularity == Granularity.WEEK:
        first -= timedelta(days=first.weekday())  # Monday, as PostgreSQL's date_trunc('week')
    step = timedelta(days=7 if granularity == Granularity.WEEK else 1)
    buckets, day = [], first.replace(tzinfo=None)
    while True:
        bucket = day.replace(tzinfo=tz)
        if bucket >= end:
            return buckets
        buckets.append(bucket)
        day += step


def timeseries(
    *,
    period: Period,
    filters: Filters,
    granularity: str,
    tz: ZoneInfo,
    cost_settings: CostSettings | None = None,
) -> list[Bucket]:
    """Per-bucket totals over the window, one entry for every bucket, empty ones as zeros."""
    cost_settings = cost_settings or CostSettings.load()
    rows = (
        conversations_in(period=period, filters=filters)
        .annotate(
            bucket=_TRUNC[granularity]("timestamp", tzinfo=UTC if granularity == Granularity.HOUR else tz)
        )
        .values("bucket")
        .annotate(**aggregates(default_ai_cost=cost_settings.ai_cost_per_conversation))
        .order_by("bucket")
    )
    # Keyed in UTC: Python never finds two datetimes in different zones equal during a
    # repeated (DST fall-back) hour, so the display-zone bucket would miss its row.
    by_start = {row["bucket"].astimezone(UTC): Totals.from_row(row) for row in rows}
    buckets, running = [], Decimal(0)
    for bucket_start in bucket_starts(start=period.start, end=period.end, granularity=granularity, tz=tz):
        totals = by_start.get(bucket_start.astimezone(UTC), Totals())
        cost = totals.cost(cost_settings)
        running += cost.savings
        buckets.append(Bucket(start=bucket_start, totals=totals, cost=cost, cumulative_savings=running))
    return buckets


KNOWLEDGE_GAPS_LIMIT = 5


@dataclass(frozen=True)
class TopicTrend:
    stats: TopicStats
    previous_conversations: int
    change: Decimal | None  # % change in conversations; None when the topic is new
    rate_change: Decimal | None  # change of its AI resolution rate, percentage points


@dataclass(frozen=True)
class Dashboard:
    """Everything the staff dashboard shows, for one period and the one before it."""

    period: Period
    previous_period: Period
    filters: Filters
    granularity: str
    tz: ZoneInfo
    current: Summary
    previous: Summary
    buckets: list[Bucket]
    topics: list[TopicStats]
    previous_topics: dict[int, TopicStats]
    has_any_data: bool
    channels: list[str]
    bot_versions: list[str]

    @property
    def topic_trends(self) -> list[TopicTrend]:
        """Every topic of the period beside its figures in the previous period."""
        trends = []
        for topic in self.topics:
            before = self.previous_topics.get(topic.topic_id)
            previous_count = before.totals.conversations if before else 0
            trends.append(
                TopicTrend(
                    stats=topic,
                    previous_conversations=previous_count,
                    change=relative_change(topic.totals.conversations, previous_count),
                    rate_change=difference(
                        topic.totals.ai_resolution_rate, before.totals.ai_resolution_rate if before else None
                    ),
                )
            )
        return trends

    @property
    def knowledge_gaps(self) -> list[TopicStats]:
        """The topics whose escalations cost most: what to document next."""
        escalated = [topic for topic in self.topics if topic.totals.escalated]
        return sorted(escalated, key=lambda topic: (-topic.escalation_cost, topic.topic))[
            :KNOWLEDGE_GAPS_LIMIT
        ]


def previous_period(period: Period) -> Period:
    """The period of the same length that ends where `period` starts."""
    return Period(
        start=period.start - (period.end - period.start), end=period.start, include_start=period.include_start
    )


def dashboard(*, period: Period, filters: Filters, granularity: str, tz: ZoneInfo) -> Dashboard:
    """The dashboard's numbers: the same selectors as the API, in a fixed number of queries."""
    cost_settings = CostSettings.load()
    before = previous_period(period)
    current = summary(period=period, filters=filters, cost_settings=cost_settings)
    previous = summary(period=before, filters=filters, cost_settings=cost_settings, with_top_topics=False)
    unfiltered = conversations_in(period=period, filters=Filters())
    return Dashboard(
        period=period,
        previous_period=before,
        filters=filters,
        granularity=granularity,
        tz=tz,
        current=current,
        previous=previous,
        buckets=timeseries(
            period=period, filters=filters, granularity=granularity, tz=tz, cost_settings=cost_settings
        ),
        topics=topic_breakdown(
            period=period, filters=filters, cost_settings=cost_settings, total=current.totals.conversations
        ),
        previous_topics={
            topic.topic_id: topic
            for topic in topic_breakdown(
                period=before,
                filters=filters,
                cost_settings=cost_settings,
                total=previous.totals.conversations,
            )
        },
        has_any_data=bool(current.totals.conversations) or Conversation.objects.exists(),
        # The filter menus offer what occurs in the period (bounded by the timestamp index).
        channels=sorted(
            set(unfiltered.exclude(channel="").order_by().values_list("channel", flat=True).distinct())
            | ({filters.channel} if filters.channel else set())
        ),
        bot_versions=sorted(
            set(
                unfiltered.exclude(bot_version="").order_by().values_list("bot_version", flat=True).distinct()
            )
            | ({filters.bot_version} if filters.bot_version else set())
        ),
    )
