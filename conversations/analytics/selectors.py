"""The public reads. Every number in the analytics API, the dashboard and the CSV exports comes
from one of these functions: plain results, never HTTP objects."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from django.utils import timezone

from conversations.analytics import planner, reads, statistics
from conversations.analytics.metrics import (
    METRICS,
    Answer,
    CostBreakdown,
    Totals,
    change_body,
    difference,
    human_time_cost,
    percent,
    relative_change,
    volume_body,
    volume_change,
)
from conversations.analytics.query import Filters, Granularity, Period
from conversations.analytics.reads import TopicFigures
from conversations.analytics.tables import TOPIC_METRICS, VOLUME_PATH
from conversations.models import Annotation, Conversation, CostSettings

TOP_TOPICS_LIMIT = 10
TOP_REASONS_LIMIT = 10
KNOWLEDGE_GAPS_LIMIT = 5


@dataclass(frozen=True)
class Summary:
    period: Period
    filters: Filters
    totals: Totals
    cost: CostBreakdown
    top_topics: list[tuple[str, int]]
    # Up to 10 (escalation reason, conversations), most first, ties by name.
    escalation_reasons: list[tuple[str, int]] = field(default_factory=list)


@dataclass(frozen=True)
class TopicStats:
    topic_id: int
    topic: str
    totals: Totals
    share: Decimal | None  # 100 × this topic's conversations / all conversations in the window
    escalation_cost: Decimal
    knowledge_gap_cost: Decimal  # (escalations + follow-ups) × human cost
    window_conversations: int = 0  # all conversations in the window: what `share` divides by

    @property
    def share_parts(self) -> tuple[int, int]:
        """`share` as (part, whole): this topic's conversations of the window's."""
        return self.totals.conversations, self.window_conversations


@dataclass(frozen=True)
class ReasonStats:
    reason: str
    conversations: int
    escalation_cost: Decimal  # conversations × human cost per conversation


@dataclass(frozen=True)
class Bucket:
    start: datetime
    totals: Totals
    cost: CostBreakdown
    cumulative_savings: Decimal  # savings of this bucket and every one before it in the window


def _read_window(
    period: Period,
    filters: Filters,
    *,
    totals: bool = True,
    topics: TopicFigures | None = None,
    reasons: bool = False,
) -> reads.WindowFigures:
    [figures] = reads.read(
        [period],
        filters,
        **_window_plans(filters, topics=topics is not None, reasons=reasons),
        totals=totals,
        topics=topics,
        reasons=reasons,
    )
    return figures


def _window_plans(filters: Filters, *, topics: bool, reasons: bool = False) -> dict:
    """How `reads.read` plans the windows of a read of totals (and topics, and escalation
    reasons), as of now."""
    now = timezone.now()
    return {
        "plan": lambda window: planner.window_plan(window, filters, topics=topics, reasons=reasons, now=now),
        "now": now,
    }


def window_totals(*, period: Period, filters: Filters) -> Totals:
    """The additive figures of a window (rollup rows ± raw rows at its edges)."""
    return _read_window(period, filters).totals


def windows_totals(*, periods: Sequence[Period], filters: Filters) -> list[Totals]:
    """The additive figures of several windows under the same filters, in one statement (an
    alert rule's window and its baseline weeks)."""
    figures = reads.read(list(periods), filters, **_window_plans(filters, topics=False))
    return [window.totals for window in figures]


def _ranked(by_topic: dict[int, tuple[str, Totals]], limit: int) -> list[tuple[str, int]]:
    counts = ((name, totals.conversations) for name, totals in by_topic.values())
    return _top(counts, limit)


def _top(counts, limit: int) -> list[tuple[str, int]]:
    """The (name, count) pairs with a count, most first, ties by name (code point order)."""
    return sorted(((name, n) for name, n in counts if n > 0), key=lambda pair: (-pair[1], pair[0]))[:limit]


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
    return _ranked(_read_window(period, filters, totals=False, topics=TopicFigures.COUNTS).topics, limit)


def summary(
    *,
    period: Period,
    filters: Filters,
    cost_settings: CostSettings | None = None,
    with_top_topics: bool = True,
) -> Summary:
    """The whole window at once: the tutorial's summary keys and everything added to them.

    One read: the totals, the top topics and the escalation reasons together (with a topic
    filter, the top topics are that topic's count: the totals).
    """
    cost_settings = cost_settings or CostSettings.load()
    read_topics = with_top_topics and not filters.topic
    figures = _read_window(period, filters, topics=TopicFigures.COUNTS if read_topics else None, reasons=True)
    if read_topics:
        top = _ranked(figures.topics, TOP_TOPICS_LIMIT)
    elif with_top_topics:
        top = top_topics(period=period, filters=filters, totals=figures.totals)
    else:
        top = []
    return _summary_of(period, filters, figures, top=top, cost_settings=cost_settings)


def _summary_of(
    period: Period,
    filters: Filters,
    figures: reads.WindowFigures,
    *,
    top: list[tuple[str, int]],
    cost_settings: CostSettings,
) -> Summary:
    """The Summary of a window read (its totals and escalation reasons) with its top topics."""
    return Summary(
        period=period,
        filters=filters,
        totals=figures.totals,
        cost=figures.totals.cost(cost_settings),
        top_topics=top,
        escalation_reasons=_top(figures.reasons.items(), TOP_REASONS_LIMIT),
    )


# Comparisons (issue 17): the changes of every rate and mean (metrics.rate, metrics.mean), keyed
# by their paths in the summary, and of the conversations' volume.
_COMPARED = tuple((path, metric) for metric in METRICS.values() if metric.compare for path in metric.summary)
# The topics' figures compared: every rate and mean of the topics answer, by its name there.
_TOPIC_COMPARED = tuple(
    (METRICS[name].name_in(Answer.TOPICS), METRICS[name]) for name in TOPIC_METRICS if METRICS[name].compare
)
# Conversations needed per arm to see these changes of the AI resolution rate (points).
SAMPLE_SIZE_CHANGES = (2, 5)


@dataclass(frozen=True)
class TopicComparison:
    topic: str
    a: TopicStats | None  # None: no conversation of the topic in arm a
    b: TopicStats | None
    changes: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Comparison:
    """Arm b against arm a: both summaries, the changes of their figures (b − a), and with two
    arms of `compare`, each topic's and the sample size per arm."""

    a: Summary
    b: Summary
    changes: dict[str, dict[str, Any]]
    topics: list[TopicComparison] = field(default_factory=list)
    sample_size_per_arm: dict[str, int | None] = field(default_factory=dict)


def compare_with_previous(*, period: Period, filters: Filters) -> Comparison:
    """The window (b) against the one of equal length just before it (a, `Period.previous`),
    each summary as `summary` answers it, both read at once."""
    cost_settings = CostSettings.load()
    before = period.previous()
    read_topics = not filters.topic
    plans = _window_plans(filters, topics=read_topics, reasons=True)
    topics = TopicFigures.COUNTS if read_topics else None
    now, then = reads.read([period, before], filters, **plans, topics=topics, reasons=True)
    summaries = []
    for window, figures in ((before, then), (period, now)):
        if read_topics:
            top = _ranked(figures.topics, TOP_TOPICS_LIMIT)
        else:
            top = [(filters.topic, figures.totals.conversations)] if figures.totals.conversations else []
        summaries.append(_summary_of(window, filters, figures, top=top, cost_settings=cost_settings))
    a, b = summaries
    return Comparison(a=a, b=b, changes=_summary_changes(a, b))


def compare(*, a: tuple[Period, Filters], b: tuple[Period, Filters]) -> Comparison:
    """Two arms (window and filters each: two bot versions, channels or windows): their
    summaries and topics, one read each, with every change and its test. Each topic's p-values
    are adjusted across the topics by Benjamini–Hochberg (`q_value`; `significant` means
    q < 0.05: with 50 topics, two "significant" changes at p < 0.05 are what chance gives)."""
    cost_settings = CostSettings.load()
    arms = []
    read_a, read_b = reads.both(
        *(
            functools.partial(_read_window, period, filters, topics=TopicFigures.ALL, reasons=True)
            for period, filters in (a, b)
        )
    )
    for (period, filters), figures in ((a, read_a), (b, read_b)):
        topics = _topic_stats(figures.topics, total=figures.totals.conversations, cost_settings=cost_settings)
        # The top topics are the topics table's first rows (with a topic filter, that topic).
        top = [(topic.topic, topic.totals.conversations) for topic in topics[:TOP_TOPICS_LIMIT]]
        arms.append((_summary_of(period, filters, figures, top=top, cost_settings=cost_settings), topics))
    (summary_a, topics_a), (summary_b, topics_b) = arms
    return Comparison(
        a=summary_a,
        b=summary_b,
        changes=_summary_changes(summary_a, summary_b),
        topics=_topic_changes(topics_a, topics_b, lengths=_lengths(summary_a, summary_b)),
        sample_size_per_arm=_sample_sizes(summary_a.totals),
    )


def _lengths(a: Summary, b: Summary) -> dict[str, timedelta]:
    return {"length_a": a.period.end - a.period.start, "length_b": b.period.end - b.period.start}


def _summary_changes(a: Summary, b: Summary) -> dict[str, dict[str, Any]]:
    volume = volume_change(a.totals, b.totals, **_lengths(a, b))
    changes = {VOLUME_PATH: volume_body(a.totals, b.totals, volume)}
    for path, metric in _COMPARED:
        changes[path] = change_body(metric, metric.compare(a.totals, b.totals))
    return changes


def _topic_changes(
    a_topics: list[TopicStats], b_topics: list[TopicStats], *, lengths: dict[str, timedelta]
) -> list[TopicComparison]:
    """Each topic of either arm, most conversations (both arms) first, ties by name."""
    by_topic: dict[str, list[TopicStats | None]] = {}
    for side, topics in enumerate((a_topics, b_topics)):
        for topic in topics:
            by_topic.setdefault(topic.topic, [None, None])[side] = topic
    names = sorted(
        by_topic, key=lambda name: (-sum(t.totals.conversations for t in by_topic[name] if t), name)
    )
    empty = Totals()
    pairs = [tuple(topic.totals if topic else empty for topic in by_topic[name]) for name in names]
    # Raw comparisons first: Benjamini–Hochberg adjusts the p-values as computed, not as written.
    found = {"conversations": [volume_change(a, b, **lengths) for a, b in pairs]}
    for key, metric in _TOPIC_COMPARED:
        found[key] = [metric.compare(a, b) for a, b in pairs]
    q_values = {
        key: statistics.benjamini_hochberg([item.p_value for item in items]) for key, items in found.items()
    }
    result = []
    for index, (name, (totals_a, totals_b)) in enumerate(zip(names, pairs, strict=True)):
        changes = {"conversations": volume_body(totals_a, totals_b, found["conversations"][index])}
        for key, metric in _TOPIC_COMPARED:
            changes[key] = change_body(metric, found[key][index])
        for key, change in changes.items():
            change["q_value"] = statistics.round_p_value(q_values[key][index])
            change["significant"] = statistics.is_significant(q_values[key][index])
        topic_a, topic_b = by_topic[name]
        result.append(TopicComparison(topic=name, a=topic_a, b=topic_b, changes=changes))
    return result


def _sample_sizes(a_totals: Totals) -> dict[str, int | None]:
    """Conversations per arm needed to detect a change of 2 and 5 points in the AI resolution
    rate from arm a's, at 80% power and α = 0.05 (analytics.statistics.sample_size_per_arm)."""
    baseline = a_totals.ai_resolved / a_totals.conversations if a_totals.conversations else None
    return {
        str(points): statistics.sample_size_per_arm(baseline=baseline, change=points / 100)
        for points in SAMPLE_SIZE_CHANGES
    }


def _topic_stats(
    by_topic: dict[int, tuple[str, Totals]], *, total: int, cost_settings: CostSettings
) -> list[TopicStats]:
    result = [
        TopicStats(
            topic_id=topic_id,
            topic=name,
            totals=totals,
            share=percent(totals.conversations, total),
            escalation_cost=totals.escalation_cost(cost_settings),
            knowledge_gap_cost=totals.knowledge_gap_cost(cost_settings),
            window_conversations=total,
        )
        for topic_id, (name, totals) in by_topic.items()
        if totals.conversations > 0
    ]
    return sorted(result, key=lambda topic: (-topic.totals.conversations, topic.topic))


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
    if total == 0:
        return []
    figures = _read_window(period, filters, totals=total is None, topics=TopicFigures.ALL)
    if total is None:
        total = figures.totals.conversations
    return _topic_stats(figures.topics, total=total, cost_settings=cost_settings)


def bucket_starts(
    *, start: datetime, end: datetime, granularity: Granularity, tz: ZoneInfo
) -> list[datetime]:
    """The start of every bucket that overlaps [start, end), in `tz`, empty ones included.

    Days and weeks are calendar days in `tz` (23 or 25 hours long on DST changes), so
    buckets step in local wall-clock time and are normalized after each step.
    (Zulip's analytics/lib/time_utils.py::time_range does the same.)
    """
    if start >= end:
        return []
    if granularity == Granularity.HOUR:
        # Hours are UTC hours (shown in `tz`): exact across DST changes, where a local
        # hour repeats or goes missing. Same as the SQL side (date_trunc in UTC).
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
    granularity: Granularity,
    tz: ZoneInfo,
    cost_settings: CostSettings | None = None,
) -> list[Bucket]:
    """Per-bucket totals over the window, one entry for every bucket, empty ones as zeros
    (see planner.series_plan for the rows each kind of series reads)."""
    cost_settings = cost_settings or CostSettings.load()
    bucket_tz = UTC if granularity == Granularity.HOUR else tz
    now = timezone.now()
    [figures] = reads.read(
        [period],
        filters,
        plan=lambda window: planner.series_plan(
            window, filters, granularity=granularity, tz=bucket_tz, now=now
        ),
        now=now,
        series=(granularity, bucket_tz),
    )
    buckets, running = [], Decimal(0)
    for bucket_start in bucket_starts(start=period.start, end=period.end, granularity=granularity, tz=tz):
        totals = figures.series.get(bucket_start.astimezone(UTC), Totals())
        cost = totals.cost(cost_settings)
        running += cost.savings
        buckets.append(Bucket(start=bucket_start, totals=totals, cost=cost, cumulative_savings=running))
    return buckets


def change(
    current: int | Decimal | None, previous: int | Decimal | None, *, relative: bool
) -> Decimal | None:
    """A figure against the period before: `relative`, the % change (counts, times); else the
    difference (rates in percentage points, money). None when either is unknown."""
    return relative_change(current, previous) if relative else difference(current, previous)


@dataclass(frozen=True)
class TopicTrend:
    stats: TopicStats
    previous_conversations: int
    change: Decimal | None  # % change in conversations; None when the topic is new
    rate_change: Decimal | None  # change of its AI resolution rate, percentage points


def topic_trends(*, period: Period, filters: Filters) -> list[TopicTrend]:
    """Every topic of the period beside its figures in the period before (what the topics
    CSV export prints), in one read."""
    cost_settings = CostSettings.load()
    now, then = reads.read(
        [period, period.previous()], filters, **_window_plans(filters, topics=True), topics=TopicFigures.ALL
    )
    return _trends(
        _topic_stats(now.topics, total=now.totals.conversations, cost_settings=cost_settings),
        {
            topic.topic_id: topic
            for topic in _topic_stats(
                then.topics, total=then.totals.conversations, cost_settings=cost_settings
            )
        },
    )


def _trends(topics: list[TopicStats], previous: dict[int, TopicStats]) -> list[TopicTrend]:
    trends = []
    for topic in topics:
        before = previous.get(topic.topic_id)
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


@dataclass(frozen=True)
class Dashboard:
    """Everything the staff dashboard shows, for one period and the one before it."""

    period: Period
    previous_period: Period
    filters: Filters
    granularity: Granularity
    tz: ZoneInfo
    current: Summary
    previous: Summary
    buckets: list[Bucket]
    topics: list[TopicStats]
    previous_topics: dict[int, TopicStats]
    has_any_data: bool
    channels: list[str]
    bot_versions: list[str]
    escalation_reasons: list[str] = field(default_factory=list)  # the filter menu

    @property
    def topic_trends(self) -> list[TopicTrend]:
        """Every topic of the period beside its figures in the previous period."""
        return _trends(self.topics, self.previous_topics)

    @cached_property
    def changes(self) -> dict[str, dict[str, Any]]:
        """Every rate's, mean's and the volume's change against the previous period (as
        `compare_with_previous` answers them: a = the period before, b = this one)."""
        return _summary_changes(self.previous, self.current)

    @cached_property
    def topic_changes(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Each topic's changes against the previous period, by topic name, the p-values
        adjusted across the topics (Benjamini–Hochberg, as `compare` does)."""
        compared = _topic_changes(
            list(self.previous_topics.values()), self.topics, lengths=_lengths(self.previous, self.current)
        )
        return {topic.topic: topic.changes for topic in compared}

    @property
    def escalation_reason_costs(self) -> list[ReasonStats]:
        """The period's escalation reasons (most first, at most TOP_REASONS_LIMIT) with what
        their escalations cost in human time."""
        per_conversation = self.current.cost.human_cost_per_conversation
        return [
            ReasonStats(
                reason=reason, conversations=count, escalation_cost=human_time_cost(count, per_conversation)
            )
            for reason, count in self.current.escalation_reasons
        ]

    @property
    def escalations_without_reason(self) -> int | None:
        """The period's escalations that gave no reason (only escalated conversations carry
        one); None when the reasons listed are not all of them (TOP_REASONS_LIMIT)."""
        reasons = self.current.escalation_reasons
        if len(reasons) >= TOP_REASONS_LIMIT:
            return None
        return self.current.totals.escalated - sum(count for _, count in reasons)

    @property
    def knowledge_gaps(self) -> list[TopicStats]:
        """The topics whose gaps cost most (escalations, and AI "resolutions" whose customer
        came back: `knowledge_gap_cost`): what to document next."""
        costly = [topic for topic in self.topics if topic.totals.escalated or topic.totals.followed_up]
        return sorted(costly, key=lambda topic: (-topic.knowledge_gap_cost, topic.topic))[
            :KNOWLEDGE_GAPS_LIMIT
        ]


def menu_options(values: set[str], *chosen: str | None) -> list[str]:
    """A filter menu's options: the values seen, and those chosen even when none was seen."""
    return sorted((values | {value or "" for value in chosen}) - {""})


def filter_menus(*, period: Period, now: datetime | None = None) -> tuple[set[str], set[str], set[str]]:
    """The channels, bot versions and escalation reasons of the window's conversations (the
    dashboard's filter menus)."""
    return reads.filter_menus(planner.plan(period, now=now or timezone.now()))


def dashboard(*, period: Period, filters: Filters, granularity: Granularity, tz: ZoneInfo) -> Dashboard:
    """The dashboard's numbers: the same reads as the API's selectors, each made once for
    the period and the one before it together, in a fixed number of queries."""
    cost_settings = CostSettings.load()
    before = period.previous()
    plans = _window_plans(filters, topics=True, reasons=True)
    # Both periods' totals, topics and escalation reasons in one read.
    now, then = reads.read([period, before], filters, **plans, topics=TopicFigures.ALL, reasons=True)
    totals, previous_totals = now.totals, then.totals
    topics = _topic_stats(now.topics, total=totals.conversations, cost_settings=cost_settings)
    previous_topics = _topic_stats(
        then.topics, total=previous_totals.conversations, cost_settings=cost_settings
    )
    # The top topics are the first rows of the topics table (with a topic filter, that topic).
    top = [(topic.topic, topic.totals.conversations) for topic in topics[:TOP_TOPICS_LIMIT]]
    channels, versions, reasons = filter_menus(period=period, now=plans["now"])
    return Dashboard(
        period=period,
        previous_period=before,
        filters=filters,
        granularity=granularity,
        tz=tz,
        current=_summary_of(period, filters, now, top=top, cost_settings=cost_settings),
        previous=_summary_of(before, filters, then, top=[], cost_settings=cost_settings),
        buckets=timeseries(
            period=period, filters=filters, granularity=granularity, tz=tz, cost_settings=cost_settings
        ),
        topics=topics,
        previous_topics={topic.topic_id: topic for topic in previous_topics},
        has_any_data=bool(totals.conversations) or Conversation.objects.exists(),
        channels=menu_options(channels, filters.channel),
        bot_versions=menu_options(versions, filters.bot_version),
        escalation_reasons=menu_options(reasons, filters.escalation_reason),
    )


# Annotations (issue 17).
ANNOTATIONS_LIMIT = 1_000
IMPACT_WINDOW = timedelta(days=7)


def annotations_in(
    *,
    start: datetime,
    end: datetime,
    channel: str | None = None,
    bot_version: str | None = None,
    limit: int = ANNOTATIONS_LIMIT,
) -> list[Annotation]:
    """The annotations of [start, end) that apply to the channel's and bot version's traffic
    (scoped to it or unscoped; None: any), in time order, ties by id. At most `limit`: the
    latest of the window."""
    # Uses index: annotation_timestamp_idx (a backward range scan, stopped at the limit).
    latest = (
        Annotation.objects.in_window(start, end)
        .for_channel(channel)
        .for_bot_version(bot_version)
        .order_by("-timestamp", "-id")[:limit]
    )
    return sorted(latest, key=lambda annotation: (annotation.timestamp, annotation.id))


class NothingAfterYet(Exception):
    """An annotation's moment is not before now: no traffic after it to compare yet."""


def impact_periods(*, moment: datetime, now: datetime) -> tuple[Period, Period]:
    """Before: [moment − 7 days, moment); after: [moment, moment + 7 days), cut at now. The
    moment itself belongs to after (a conversation at the very time of a release ran on it)."""
    before = Period(start=moment - IMPACT_WINDOW, end=moment, include_start=True)
    after = Period(start=moment, end=moment + IMPACT_WINDOW, include_start=True).clipped(now)
    return before, after


def annotation_impact(*, annotation: Annotation, now: datetime) -> Comparison:
    """All traffic (or the annotation's channel's, when it is scoped to one; never filtered
    by its bot version: a release is judged by the traffic it changed, the new version's and
    the old's together) in the 7 days before its moment (a) against the 7 days after it,
    up to now (b), as `compare` answers two arms. A shorter after arm is weighed by its length
    in the volume's test. Raises NothingAfterYet when the moment is not before now."""
    if annotation.timestamp >= now:
        raise NothingAfterYet(f"{annotation.timestamp.isoformat()} is not before {now.isoformat()}.")
    before, after = impact_periods(moment=annotation.timestamp, now=now)
    filters = Filters(channel=annotation.channel or None)
    return compare(a=(before, filters), b=(after, filters))
