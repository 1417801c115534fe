"""Reads. Every number in the analytics API (and the dashboard) comes from one of these."""

from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import reduce
from zoneinfo import ZoneInfo

from django.db.models import Case, Count, Q, QuerySet, Sum, Value, When
from django.db.models.functions import TruncDay, TruncHour, TruncWeek
from django.utils import timezone

from conversations.metrics import (
    CostBreakdown,
    Totals,
    difference,
    percent,
    raw_aggregates,
    relative_change,
    rollup_aggregates,
)
from conversations.models import (
    FUTURE_TOLERANCE,
    Conversation,
    ConversationRollup,
    ConversationTopic,
    CostSettings,
    Span,
    TopicRollup,
)

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
    """The raw conversations of a window (tests and the partial hours of a window)."""
    return _filtered(
        Conversation.objects.in_window(period.start, period.end, include_start=period.include_start), filters
    )


def _filtered(conversations: QuerySet[Conversation], filters: Filters) -> QuerySet[Conversation]:
    return (
        conversations.for_channel(filters.channel)
        .for_bot_version(filters.bot_version)
        .with_topic(filters.topic)
    )


# --- Reading a window from the rollups --------------------------------------------------------
#
# A window [start, end) is cut into: the raw conversations of its partial first and last
# hours; hourly rollup rows up to the first and from the last UTC midnight; daily rollup
# rows in between. So a query reads at most 2 partial hours of raw rows, 2 × 23 hourly
# rows and one daily row per day (each per channel × bot version, or per topic), whatever
# the number of conversations stored: its cost follows the window's length, not the table.

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Time zones whose offset is always a whole number of hours (the buckets of a time series
# can then be built from UTC hours).
_UTC_NAMES = {"UTC", "Etc/UTC", "Etc/GMT", "GMT", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu"}


@dataclass(frozen=True)
class _Plan:
    """How a window is read: rollup rows (hours, days), plus raw rows, minus raw rows."""

    raw: tuple[Period, ...] = ()
    minus: tuple[Period, ...] = ()
    hours: tuple[tuple[datetime, datetime], ...] = ()
    days: tuple[tuple[datetime, datetime], ...] = ()

    def rollup_q(self) -> Q | None:
        parts = [Q(span=Span.HOUR, start__gte=a, start__lt=b) for a, b in self.hours]
        parts += [Q(span=Span.DAY, start__gte=a, start__lt=b) for a, b in self.days]
        return reduce(operator.or_, parts) if parts else None


def _periods_q(periods: tuple[Period, ...], prefix: str = "") -> Q | None:
    parts = [
        Q(**{f"{prefix}timestamp__{'gte' if part.include_start else 'gt'}": part.start})
        & Q(**{f"{prefix}timestamp__lt": part.end})
        for part in periods
    ]
    return reduce(operator.or_, parts) if parts else None


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def _floor(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(UTC)
    if step == DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


# A partial hour is read from raw rows when it is at most this long; a longer one as its whole
# hour's rollup minus the raw rows of the rest of that hour. Either way at most half an hour
# of raw rows per edge. A window that ends now always takes the second way: the rest of its
# last hour is in the future, where only the few conversations posted with a timestamp up to
# 5 minutes ahead can be, so the busiest hour, the current one, is never read row by row.
EDGE = timedelta(minutes=30)
MICROSECOND = timedelta(microseconds=1)  # PostgreSQL's timestamp resolution


def _plan(period: Period, *, use_days: bool = True, all_raw: bool = False) -> _Plan:
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    if start >= end:
        return _Plan()
    first_hour, last_hour = _floor(start, HOUR), _floor(end, HOUR)
    if all_raw or (first_hour == last_hour and end != last_hour):
        return _Plan(raw=(period,))
    raw, minus = [], []
    if start == first_hour and period.include_start:
        region_start = start
    elif first_hour + HOUR - start <= EDGE:
        raw.append(Period(start, first_hour + HOUR, period.include_start))
        region_start = first_hour + HOUR
    else:
        # Rows of that hour before the window; with an excluded start, the start too.
        minus.append(Period(first_hour, start if period.include_start else start + MICROSECOND))
        region_start = first_hour
    if end == last_hour:
        region_end = end
    elif end - last_hour <= EDGE and end < timezone.now() - FUTURE_TOLERANCE:
        raw.append(Period(last_hour, end))
        region_end = last_hour
    else:
        minus.append(Period(end, last_hour + HOUR))
        region_end = last_hour + HOUR
    hours, days = [], []
    first_day, last_day = _ceil(region_start, DAY), _floor(region_end, DAY)
    if use_days and first_day < last_day:
        hours = [(region_start, first_day), (last_day, region_end)]
        days = [(first_day, last_day)]
    elif region_start < region_end:
        hours = [(region_start, region_end)]
    return _Plan(
        raw=tuple(raw), minus=tuple(minus), hours=tuple((a, b) for a, b in hours if a < b), days=tuple(days)
    )


def _rollups(filters: Filters, plan: _Plan, *, per_topic: bool = False) -> QuerySet | None:
    """The rollup rows of a plan: per topic when asked or filtering by topic, else per
    channel × bot version. Without a channel or version filter, the "all" rows (NULL, NULL):
    one row per hour or day (per topic)."""
    q = plan.rollup_q()
    if q is None:
        return None
    if per_topic or filters.topic:
        rows = TopicRollup.objects.filter(q)
        if filters.topic:
            rows = rows.filter(topic__name=filters.topic)
    else:
        rows = ConversationRollup.objects.filter(q)
    if filters.channel is None and filters.bot_version is None:
        return rows.filter(channel__isnull=True, bot_version__isnull=True)
    rows = rows.filter(channel__isnull=False)
    if filters.channel is not None:
        rows = rows.filter(channel=filters.channel)
    if filters.bot_version is not None:
        rows = rows.filter(bot_version=filters.bot_version)
    return rows


def _raw(filters: Filters, plan: _Plan) -> QuerySet[Conversation] | None:
    """The raw conversations at a window's edges, each annotated with its `sign`: +1 for rows
    added to the rollup rows, −1 for rows taken from them. One query serves both."""
    plus, minus = _periods_q(plan.raw), _periods_q(plan.minus)
    if plus is None and minus is None:
        return None
    sign = Value(1) if minus is None else Case(When(minus, then=Value(-1)), default=Value(1))
    edges = Conversation.objects.filter(reduce(operator.or_, [q for q in (plus, minus) if q is not None]))
    return _filtered(edges, filters).annotate(sign=sign).order_by()


def _raw_links(filters: Filters, plan: _Plan) -> QuerySet[ConversationTopic] | None:
    """The topic links of those conversations, with the same `sign`."""
    if (raw := _raw(filters, plan)) is None:
        return None
    minus = _periods_q(plan.minus, prefix="conversation__")
    sign = Value(1) if minus is None else Case(When(minus, then=Value(-1)), default=Value(1))
    links = ConversationTopic.objects.filter(conversation__in=raw.values("id")).annotate(sign=sign)
    return links.filter(topic__name=filters.topic) if filters.topic else links


def window_totals(*, period: Period, filters: Filters) -> Totals:
    """The additive figures of a window (rollup rows ± raw rows at its edges)."""
    plan = _plan(period)
    totals = Totals()
    if (rows := _rollups(filters, plan)) is not None:
        totals += Totals.from_row(rows.aggregate(**rollup_aggregates()))
    if (raw := _raw(filters, plan)) is not None:
        for row in raw.values("sign").annotate(**raw_aggregates()):
            totals += Totals.from_row(row).signed(row["sign"])
    return totals


def _topic_counts(*, period: Period, filters: Filters) -> dict[str, int]:
    plan = _plan(period)
    counts: dict[str, int] = defaultdict(int)
    if (rows := _rollups(filters, plan, per_topic=True)) is not None:
        for row in rows.values("topic__name").annotate(n=Sum("conversations")):
            counts[row["topic__name"]] += row["n"]
    if (links := _raw_links(filters, plan)) is not None:
        for row in links.values("sign", "topic__name").annotate(n=Count("conversation_id")):
            counts[row["topic__name"]] += row["sign"] * row["n"]
    return counts


def top_topics(
    *, period: Period, filters: Filters, limit: int = TOP_TOPICS_LIMIT, totals: Totals | None = None
) -> list[tuple[str, int]]:
    """Up to `limit` (topic, conversations) pairs, most conversations first, ties by name.

    With a topic filter, only that topic: the rollups count topics one by one, not which
    topics occur together.
    """
    if filters.topic:
        totals = totals or window_totals(period=period, filters=filters)
        return [(filters.topic, totals.conversations)] if totals.conversations else []
    unfiltered_topics = Filters(channel=filters.channel, bot_version=filters.bot_version)
    counts = _topic_counts(period=period, filters=unfiltered_topics)
    ranked = sorted(((name, n) for name, n in counts.items() if n > 0), key=lambda pair: (-pair[1], pair[0]))
    return ranked[:limit]


def summary(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    with_top_topics: bool = True,
) -> Summary:
    """The whole window at once: the tutorial's summary keys and everything added to them."""
    cost_settings = cost_settings or CostSettings.load()
    totals = window_totals(period=period, filters=filters)
    return Summary(
        period=period,
        filters=filters,
        totals=totals,
        cost=totals.cost(cost_settings),
        top_topics=top_topics(period=period, filters=filters, totals=totals)
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

    `total` (the window's conversation count, for each topic's share) saves queries when
    the caller already knows it. With a topic filter, only that topic.
    """
    cost_settings = cost_settings or CostSettings.load()
    if total is None:
        total = window_totals(period=period, filters=filters).conversations
    if total == 0:
        return []
    plan = _plan(period)
    by_topic: dict[int, tuple[str, Totals]] = {}

    def merge(rows, sign: int = 1) -> None:
        for row in rows:
            name, totals = by_topic.get(row["topic_id"], (row["topic__name"], Totals()))
            by_topic[row["topic_id"]] = (name, totals + Totals.from_row(row).signed(sign))

    if (rows := _rollups(filters, plan, per_topic=True)) is not None:
        # The topics table shows no percentile: no histograms to sum.
        merge(rows.values("topic_id", "topic__name").annotate(**rollup_aggregates(with_histogram=False)))
    if (links := _raw_links(filters, plan)) is not None:
        for row in links.values("sign", "topic_id", "topic__name").annotate(
            **raw_aggregates(prefix="conversation__", with_histogram=False)
        ):
            merge([row], row["sign"])
    result = [
        TopicStats(
            topic_id=topic_id,
            topic=name,
            totals=totals,
            share=percent(totals.conversations, total),
            escalation_cost=totals.escalation_cost(cost_settings),
        )
        for topic_id, (name, totals) in by_topic.items()
        if totals.conversations > 0
    ]
    return sorted(result, key=lambda topic: (-topic.totals.conversations, topic.topic))


_TRUNC = {Granularity.HOUR: TruncHour, Granularity.DAY: TruncDay, Granularity.WEEK: TruncWeek}


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


def _whole_hour_offsets(tz: ZoneInfo, period: Period) -> bool:
    return all(
        (tz.utcoffset(moment.replace(tzinfo=None)) or timedelta(0)) % HOUR == timedelta(0)
        for moment in (period.start.astimezone(UTC), period.end.astimezone(UTC))
    )


def timeseries(
    *,
    period: Period,
    filters: Filters,
    granularity: str,
    tz: ZoneInfo,
    cost_settings: CostSettings | None = None,
) -> list[Bucket]:
    """Per-bucket totals over the window, one entry for every bucket, empty ones as zeros.

    Day and week buckets in UTC read daily rollups; in another time zone they are made of
    hourly ones. In a zone whose offset is not a whole number of hours (India, Nepal, ...)
    a local day does not start on a UTC hour, so that series is read from the raw rows.
    """
    cost_settings = cost_settings or CostSettings.load()
    bucket_tz = UTC if granularity == Granularity.HOUR else tz
    plan = _plan(
        period,
        use_days=granularity != Granularity.HOUR and str(tz) in _UTC_NAMES,
        all_raw=not _whole_hour_offsets(tz, period),
    )
    trunc = _TRUNC[granularity]
    by_start: dict[datetime, Totals] = defaultdict(Totals)
    # Keyed in UTC: Python never finds two datetimes in different zones equal during a
    # repeated (DST fall-back) hour, so the display-zone bucket would miss its row.
    if (rows := _rollups(filters, plan)) is not None:
        grouped = rows.annotate(bucket=trunc("start", tzinfo=bucket_tz)).values("bucket")
        for row in grouped.annotate(**rollup_aggregates()).order_by("bucket"):
            by_start[row["bucket"].astimezone(UTC)] += Totals.from_row(row)
    if (raw := _raw(filters, plan)) is not None:
        grouped = raw.annotate(bucket=trunc("timestamp", tzinfo=bucket_tz)).values("sign", "bucket")
        for row in grouped.annotate(**raw_aggregates()):
            by_start[row["bucket"].astimezone(UTC)] += Totals.from_row(row).signed(row["sign"])
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
    # The filter menus offer what occurs in the period (from the rollups: cheap).
    plan = _plan(period)
    menus = (
        ConversationRollup.objects.filter(plan.rollup_q(), channel__isnull=False) if plan.rollup_q() else None
    )
    channels = set(menus.values_list("channel", flat=True).distinct()) if menus is not None else set()
    versions = set(menus.values_list("bot_version", flat=True).distinct()) if menus is not None else set()
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
        channels=sorted((channels | {filters.channel or ""}) - {""}),
        bot_versions=sorted((versions | {filters.bot_version or ""}) - {""}),
    )
