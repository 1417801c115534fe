"""The staff dashboard and its CSV exports (server-rendered; the API: apis.py, analytics_apis.py)."""

from __future__ import annotations

import bisect
import csv
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import wraps
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from conversations import alert_banner, charts, formatting
from conversations.analytics import selectors, tables
from conversations.analytics.metrics import METRICS
from conversations.analytics.query import Granularity
from conversations.analytics.selectors import Dashboard, TopicStats, TopicTrend
from conversations.analytics.tables import VOLUME_PATH
from conversations.changes import Delta, change_delta, judged
from conversations.compare_page import compare_page
from conversations.forms import (
    COMPARE_KINDS,
    RANGES,
    TOPIC_SORTS,
    CompareForm,
    CompareQuery,
    DashboardForm,
    DashboardQuery,
)
from conversations.models import Annotation, Outcome

# Below this many conversations (or ratings) a rate is shown with its sample size and a
# warning: a rate over 12 conversations is not a trend.
SMALL_SAMPLE = 30
TARGET_BAND = (60, 70)  # the tutorial's recommended AI resolution range, in %
TOP_TOPICS_CHART = 10
# The axis of a line chart of rates.
PERCENT_AXIS = {"low": 0, "high": 100, "unit": "%", "format_value": formatting.rate}


def staff_required(view):
    """Anonymous: to the login page. Logged in but not staff: 403."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.user.is_staff:
            raise PermissionDenied("The dashboard is for staff.")
        return view(request, *args, **kwargs)

    return wrapper


# --- KPI cards ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kpi:
    key: str
    label: str
    display: str
    previous_display: str
    delta: Delta
    sample: int
    small_sample: bool
    detail: str = ""


def kpis(dash: Dashboard) -> list[Kpi]:
    now, before = dash.current.totals, dash.previous.totals
    currency = dash.current.cost.currency

    def money(value):
        return formatting.money(value, currency)

    def one_decimal(value):
        return formatting.number(value, 1)

    # key, label, (current, previous), display, kind of change, higher is, sample, detail,
    # the figure's path in Dashboard.changes (None: no test)
    specs = [
        ("conversations", "Conversations", (now.conversations, before.conversations),
         formatting.number, "relative", "neutral", now.conversations, "", VOLUME_PATH),
        ("ai_resolution_rate", "AI resolution rate", (now.ai_resolution_rate, before.ai_resolution_rate),
         formatting.rate, "points", "good", now.conversations,
         f"{now.ai_resolved:,} resolved · {now.escalated:,} escalated · target 60–70%", "ai_resolution_rate"),
        ("csat", "CSAT (4–5 ratings)", (now.csat_score, before.csat_score),
         formatting.rate, "points", "good", now.csat_responses,
         f"mean {formatting.number(now.avg_csat, 2)} of 5 · "
         f"{formatting.rate(now.csat_response_rate)} responded", "csat.score"),
        ("savings", "Estimated savings", (dash.current.cost.savings, dash.previous.cost.savings),
         money, "money", "good", now.conversations,
         f"vs {money(dash.current.cost.human_only_cost)} human-only", None),
        ("avg_turns", "Average turns", (now.avg_turns, before.avg_turns),
         one_decimal, "absolute", "bad", now.conversations, "", "avg_turns"),
        ("p95_response_ms", "p95 response time", (now.p95_response_ms, before.p95_response_ms),
         formatting.milliseconds, "relative", "bad", now.conversations,
         f"mean {formatting.milliseconds(now.avg_response_ms)}", None),
    ]  # fmt: skip
    cards = []
    for key, label, (current, previous), display, kind, higher_is, sample, detail, path in specs:
        test = dash.changes[path] if path else None
        cards.append(
            Kpi(
                key=key,
                label=label,
                display=display(current),
                previous_display=display(previous),
                delta=change_delta(
                    current, previous, kind=kind, higher_is=higher_is, currency=currency, test=test
                ),
                sample=sample,
                small_sample=0 < sample < SMALL_SAMPLE,
                detail=detail,
            )
        )
    return cards


# --- Topics table -------------------------------------------------------------------------


@dataclass(frozen=True)
class TopicRow:
    trend: TopicTrend
    drilldown_url: str
    # The topic's tests against the previous period (Dashboard.topic_changes): its volume
    # ("conversations") and rate changes, adjusted across the topics. Empty: not tested.
    changes: dict = field(default_factory=dict)

    @property
    def change_delta(self) -> Delta | None:
        """The volume change as news: coloured only when significant after the adjustment."""
        test = self.changes.get("conversations")
        if test is None or self.trend.change is None:
            return None
        return judged(formatting.signed(self.trend.change, "%"), test, higher_is="neutral")

    @property
    def rate_delta(self) -> Delta | None:
        test = self.changes.get("ai_resolution_rate")
        if test is None or self.trend.rate_change is None:
            return None
        return judged(formatting.signed(self.trend.rate_change, " pp"), test, higher_is="good", unit=" pp")

    @property
    def topic(self) -> TopicStats:
        return self.trend.stats

    def sort_key(self, field: str):
        totals = self.topic.totals
        values = {
            "topic": self.topic.topic,
            "conversations": totals.conversations,
            "share": self.topic.share,
            "ai_resolution_rate": totals.ai_resolution_rate,
            "escalations": totals.escalated,
            "avg_csat": totals.avg_csat,
            "repeat_contact_rate": totals.repeat_contact_rate,
            "change": self.trend.change,
        }
        value = values[field]
        # None sorts last in either direction.
        return (value is None, value if value is not None else 0)


def _drilldown_window(query: DashboardQuery) -> str:
    """The admin changelist filters of the dashboard's range (the same for every topic)."""
    params = {
        "timestamp__gte": query.period.start.isoformat(),
        "timestamp__lt": query.period.end.isoformat(),
    }
    if query.filters.channel:
        params["channel__exact"] = query.filters.channel
    if query.filters.bot_version:
        params["bot_version__exact"] = query.filters.bot_version
    if query.filters.escalation_reason:
        # The field lookup: it applies whatever admin.EscalationReasonFilter offers.
        params["escalation_reason__exact"] = query.filters.escalation_reason
    return urlencode(params)


def topic_rows(
    trends: list[TopicTrend], query: DashboardQuery, changes: dict[str, dict] | None = None
) -> list[TopicRow]:
    """The topics table, sorted as the query asks (the page and its CSV export), each row with
    its tests when `changes` (Dashboard.topic_changes) is given."""
    changelist = reverse("admin:conversations_conversation_changelist")
    window = _drilldown_window(query)
    changes = changes or {}
    rows = [
        TopicRow(
            trend,
            f"{changelist}?{urlencode({'topic': trend.stats.topic_id})}&{window}",
            changes.get(trend.stats.topic, {}),
        )
        for trend in trends
    ]
    field = query.sort.removeprefix("-")
    descending = query.sort.startswith("-")
    keyed = [(row.sort_key(field), row) for row in rows]
    known = [(value, row) for (unknown, value), row in keyed if not unknown]
    known.sort(key=lambda pair: pair[1].topic.topic)  # stable tie-break by name
    known.sort(key=lambda pair: pair[0], reverse=descending)
    return [row for _, row in known] + [row for (unknown, _), row in keyed if unknown]


# --- Charts -------------------------------------------------------------------------------


def _bucket_label(bucket, granularity: str) -> str:
    if granularity == Granularity.HOUR:
        return (
            bucket.start.strftime("%b %d %H:%M") if bucket.start.hour == 0 else bucket.start.strftime("%H:%M")
        )
    return bucket.start.strftime("%b %d")


def bucket_end(start: datetime, *, granularity: str, tz: ZoneInfo) -> datetime:
    """Where the bucket starting at `start` ends when nothing cuts it short.

    Stepped as selectors.bucket_starts steps: hours are UTC hours, days and weeks step in
    local wall-clock time (a day is 23 or 25 hours long on a DST change).
    """
    if granularity == Granularity.HOUR:
        return start.astimezone(UTC) + timedelta(hours=1)
    step = timedelta(days=7 if granularity == Granularity.WEEK else 1)
    return (start.astimezone(tz).replace(tzinfo=None) + step).replace(tzinfo=tz)


def last_bucket_in_progress(dash: Dashboard) -> bool:
    """The period ends before its last bucket does (today so far, this hour so far): that
    bucket is drawn as partial, or it would read as a drop."""
    if not dash.buckets:
        return False
    return bucket_end(dash.buckets[-1].start, granularity=dash.granularity, tz=dash.tz) > dash.period.end


@dataclass(frozen=True)
class SeriesAxis:
    labels: list[str]
    per: str  # "hour" or "day"
    in_progress: str  # `per` when the last bucket is unfinished, else ""


def series_axis(dash: Dashboard) -> SeriesAxis:
    """The buckets' labels, and how the time-series charts name and mark them."""
    per = "hour" if dash.granularity == Granularity.HOUR else "day"
    return SeriesAxis(
        labels=[_bucket_label(bucket, dash.granularity) for bucket in dash.buckets],
        per=per,
        in_progress=per if last_bucket_in_progress(dash) else "",
    )


def _rate_uncertainty(dash: Dashboard, name: str, samples: list[int], noun: str = "conversations") -> dict:
    """A rate chart's 95% band (each bucket's Wilson interval, as the API's `<rate>_ci95`) and
    its faint buckets: those whose rate divides fewer than SMALL_SAMPLE (conversations, or
    ratings for CSAT)."""
    interval = METRICS[name].interval
    return {
        "intervals": [interval(bucket.totals) for bucket in dash.buckets],
        "samples": samples,
        "faint_below": SMALL_SAMPLE,
        "sample_noun": noun,
    }


@dataclass(frozen=True)
class AnnotationMark:
    number: int
    annotation: Annotation
    when: str  # its time in the dashboard's time zone
    impact_url: str
    position: float  # on the charts' time axis, in buckets from the first one's start

    @property
    def label(self) -> str:
        scope = " · ".join(
            part
            for part in (
                self.annotation.channel and f"channel {self.annotation.channel}",
                self.annotation.bot_version and f"bot {self.annotation.bot_version}",
            )
            if part
        )
        kind = self.annotation.get_kind_display()
        return f"{self.when} · {kind}{f' ({scope})' if scope else ''}: {self.annotation.title}"


def annotation_marks(dash: Dashboard) -> list[AnnotationMark]:
    """The annotations of the period that apply to its filters (unscoped, or scoped to the
    channel or version filtered), numbered in time order as the charts mark them."""
    found = selectors.annotations_in(
        start=dash.period.start,
        end=dash.period.end,
        channel=dash.filters.channel,
        bot_version=dash.filters.bot_version,
    )
    return [
        AnnotationMark(
            number=number,
            annotation=annotation,
            when=f"{annotation.timestamp.astimezone(dash.tz):%b %-d, %H:%M}",
            impact_url=reverse("dashboard-annotation", args=[annotation.pk]),
            position=_bucket_position(annotation.timestamp, dash) if dash.buckets else 0.0,
        )
        for number, annotation in enumerate(found, start=1)
    ]


def _bucket_position(moment: datetime, dash: Dashboard) -> float:
    """Where a moment falls on the time axis, in buckets from the first one's start."""
    starts = [bucket.start for bucket in dash.buckets]
    index = max(0, bisect.bisect_right(starts, moment) - 1)
    start = starts[index]
    end = bucket_end(start, granularity=dash.granularity, tz=dash.tz)
    return index + (moment - start) / (end - start)


def build_charts(dash: Dashboard, marks: list[AnnotationMark] = ()) -> list[charts.Chart]:
    axis = series_axis(dash)
    labels, per, in_progress = axis.labels, axis.per, axis.in_progress
    currency = dash.current.cost.currency
    symbol = formatting.CURRENCY_SYMBOLS.get(currency, "")
    totals = dash.current.totals
    built = [
        charts.stacked_bars(
            slug="volume",
            title=f"Conversations per {per}",
            description="AI-resolved conversations stacked under escalated ones.",
            labels=labels,
            series=[
                ("AI-resolved", "series-resolved", [b.totals.ai_resolved for b in dash.buckets]),
                ("Escalated", "series-escalated", [b.totals.escalated for b in dash.buckets]),
            ],
            in_progress=in_progress,
        ),
        charts.line(
            slug="resolution",
            title="AI resolution rate",
            description=(
                f"Share of conversations the bot resolved, per {per}, with its 95% interval; the "
                f"green band is the 60–70% target; {per}s with under {SMALL_SAMPLE} conversations are faint."
            ),
            labels=labels,
            values=[b.totals.ai_resolution_rate for b in dash.buckets],
            band=TARGET_BAND,
            band_label="Target 60–70%",
            value_header="AI resolution rate",
            **PERCENT_AXIS,
            in_progress=in_progress,
            **_rate_uncertainty(dash, "ai_resolution_rate", [b.totals.conversations for b in dash.buckets]),
        ),
        charts.line(
            slug="csat",
            title="CSAT over time",
            description=(
                f"Share of 4 and 5 ratings, per {per}, with its 95% interval; gaps where nobody "
                f"rated; {per}s with under {SMALL_SAMPLE} ratings are faint."
            ),
            labels=labels,
            values=[b.totals.csat_score for b in dash.buckets],
            value_header="CSAT (4–5)",
            **PERCENT_AXIS,
            in_progress=in_progress,
            **_rate_uncertainty(
                dash, "csat_score", [b.totals.csat_responses for b in dash.buckets], "ratings"
            ),
        ),
        charts.line(
            slug="savings",
            title="Cumulative savings",
            description="Money saved against human-only support, added up over the range.",
            labels=labels,
            values=[bucket.cumulative_savings for bucket in dash.buckets],
            unit=symbol,
            value_header=f"Savings ({currency})",
            format_value=lambda value: formatting.money(value, currency),
            in_progress=in_progress,
        ),
        charts.horizontal_bars(
            slug="csat-distribution",
            title="CSAT ratings",
            description="How many conversations got each rating, 5 (best) to 1.",
            items=[(f"{score} ★", totals.csat_distribution[score]) for score in (5, 4, 3, 2, 1)],
            css_class="series-csat",
            value_header="Ratings",
        ),
        charts.horizontal_bars(
            slug="topics",
            title="Top topics",
            description="The most common question topics in the range.",
            items=[(topic.topic, topic.totals.conversations) for topic in dash.topics[:TOP_TOPICS_CHART]],
            css_class="series-topic",
            value_header="Conversations",
        ),
    ]
    return [_marked(chart, dash, marks) if chart.slug in SERIES_CHARTS else chart for chart in built]


# The charts over time, which mark the annotations.
SERIES_CHARTS = {"volume", "resolution", "csat", "savings", "outcomes"}


# --- "Is it really resolved?" (issue 16) ------------------------------------------------


@dataclass(frozen=True)
class Definition:
    """A term and its definition: a metric's doc (metrics.METRICS), never a second copy."""

    term: str
    paragraphs: list[list[tuple[str, bool]]]  # formatting.doc_paragraphs


def definitions(*names: str) -> list[Definition]:
    """The first one is the figure itself (no term); the others the terms it is built on."""
    return [
        Definition("" if index == 0 else name.replace("_", " "), formatting.doc_paragraphs(METRICS[name].doc))
        for index, name in enumerate(names)
    ]


@dataclass(frozen=True)
class ResolutionRate:
    key: str
    label: str
    display: str
    previous_display: str
    delta: Delta
    detail: str
    definitions: list[Definition]
    sample: int
    sample_noun: str  # what `sample` counts ("conversation", "settled conversation")
    missing: str = ""  # why there is no figure (nothing reported): shown instead of it
    coverage_note: str = ""  # the part of the traffic it speaks for, when only a part

    @property
    def small_sample(self) -> bool:
        return 0 < self.sample < SMALL_SAMPLE


@dataclass(frozen=True)
class EscalationReason:
    reason: str
    conversations: int
    cost: Decimal
    filter_query: str  # the dashboard's query string filtered by this reason
    current: bool  # the reason the page is filtered by


@dataclass(frozen=True)
class Coverage:
    """How much of the traffic reports a field (`outcome`, `customer_id`): none, part or all."""

    reported: int
    conversations: int
    rate: Decimal | None

    @property
    def none(self) -> bool:
        # By the counts, not the rate: 1 of 100,000 rounds to 0.0% but is not nothing.
        return self.reported == 0

    @property
    def partial(self) -> bool:
        return 0 < self.reported < self.conversations


@dataclass(frozen=True)
class HonestResolution:
    rates: list[ResolutionRate]
    outcomes: Coverage
    customer_ids: Coverage
    outcome_chart: charts.Chart | None  # None when no conversation reports an outcome
    reasons: list[EscalationReason]  # the most common first, at most `reasons_limit`
    reasons_limit: int
    escalated: int
    without_reason: int | None  # escalations without a reason, when every reason is listed
    human_cost: Decimal  # per conversation: what an escalation costs
    repeat_contact_days: int
    settled: int
    settled_ai_resolved: int
    followed_up: int
    outcome_values: list[tuple[str, str]]  # models.Outcome (value, what it means)
    unfiltered_query: str  # the dashboard's query string without the escalation reason filter
    repeat_contact_definitions: list[Definition]
    knowledge_gap_definitions: list[Definition]


def _resolution_rates(dash: Dashboard, *, outcomes: Coverage, customer_ids: Coverage) -> list[ResolutionRate]:
    now, before = dash.current.totals, dash.previous.totals
    currency = dash.current.cost.currency
    days = now.repeat_contact_window_days
    no_outcomes, durable_missing = formatting.honest_rates_missing(now)
    outcome_note = (
        f"Outcomes reported for {formatting.rate(outcomes.rate)} of conversations" if outcomes.partial else ""
    )
    customer_id_note = (
        f"Customer ids sent for {formatting.rate(customer_ids.rate)} of conversations"
        if customer_ids.partial
        else ""
    )
    # key, label, higher is, sample, sample noun, detail, missing, coverage note, the terms it is built on
    specs = [
        ("ai_resolution_rate", "AI resolution rate (headline)", "good", now.conversations, "conversation",
         f"{now.ai_resolved:,} of {now.conversations:,} conversations, as the bot reports resolved_by_ai",
         "", "", ()),
        ("confirmed_resolution_rate", "Confirmed resolution", "good", now.conversations, "conversation",
         f"{now.outcome_confirmed:,} of {now.conversations:,} conversations: the customer said so",
         no_outcomes, outcome_note, ("outcome_coverage",)),
        ("assumed_resolution_rate", "Assumed resolution", "neutral", now.conversations, "conversation",
         f"{now.outcome_assumed:,} of {now.conversations:,} conversations: the customer left without "
         "asking for a human", no_outcomes, outcome_note, ("outcome_coverage",)),
        ("durable_resolution_rate", f"Durable resolution ({days} days)", "good", now.settled,
         "settled conversation",
         f"{now.followed_up:,} of {now.settled_ai_resolved:,} settled AI resolutions came back "
         f"(repeat contact {formatting.rate(now.repeat_contact_rate)}) · {now.settled:,} settled",
         durable_missing, customer_id_note,
         ("settled", "followed_up", "repeat_contact_rate", "customer_id_coverage")),
    ]  # fmt: skip
    rates = []
    for key, label, higher_is, sample, noun, detail, missing, coverage_note, terms in specs:
        current, previous = getattr(now, key), getattr(before, key)
        # Its test in the changes, found by its path in the summary ("repeat_contact.durable_...").
        test = dash.changes[METRICS[key].summary[0]]
        delta = change_delta(
            current, previous, kind="points", higher_is=higher_is, currency=currency, test=test
        )
        rates.append(
            ResolutionRate(
                key=key,
                label=label,
                display=formatting.DASH if missing else formatting.rate(current),
                previous_display=formatting.rate(previous),
                delta=delta,
                detail=detail,
                definitions=definitions(key, *terms),
                sample=0 if missing else sample,
                sample_noun=noun,
                missing=missing,
                coverage_note=coverage_note,
            )
        )
    return rates


def _marked(chart: charts.Chart, dash: Dashboard, marks: list[AnnotationMark]) -> charts.Chart:
    if marks and dash.buckets:
        markers = [(mark.position, mark.label, mark.impact_url) for mark in marks]
        charts.add_markers(chart, markers, buckets=len(dash.buckets))
    return chart


def outcome_chart(dash: Dashboard) -> charts.Chart:
    axis = series_axis(dash)
    buckets = dash.buckets
    return charts.stacked_bars(
        slug="outcomes",
        title=f"How conversations ended, per {axis.per}",
        description=(
            "Conversations by the outcome the bot reported, stacked: confirmed and assumed "
            "(the bot resolved them), escalated, abandoned, and those without an outcome."
        ),
        labels=axis.labels,
        series=[
            ("Confirmed", "series-confirmed", [b.totals.outcome_confirmed for b in buckets]),
            ("Assumed", "series-assumed", [b.totals.outcome_assumed for b in buckets]),
            ("Escalated", "series-escalated", [b.totals.outcome_escalated for b in buckets]),
            ("Abandoned", "series-abandoned", [b.totals.outcome_abandoned for b in buckets]),
            ("Unreported", "series-unreported", [b.totals.outcome_unreported for b in buckets]),
        ],
        in_progress=axis.in_progress,
    )


def _outcome_meaning(value: str, label: str) -> str:
    """models.Outcome's label without the value it starts with: "confirmed (the bot resolved
    it ...)" -> "the bot resolved it ..."."""
    rest = label.removeprefix(value).strip()
    return rest[1:-1] if rest.startswith("(") and rest.endswith(")") else label


def honest_resolution(
    dash: Dashboard, request: HttpRequest, marks: list[AnnotationMark] = ()
) -> HonestResolution:
    totals = dash.current.totals
    outcomes = Coverage(
        reported=totals.outcomes_reported,
        conversations=totals.conversations,
        rate=totals.outcome_coverage,
    )
    customer_ids = Coverage(
        reported=totals.with_customer_id, conversations=totals.conversations, rate=totals.customer_id_coverage
    )
    return HonestResolution(
        rates=_resolution_rates(dash, outcomes=outcomes, customer_ids=customer_ids),
        outcomes=outcomes,
        customer_ids=customer_ids,
        outcome_chart=None if outcomes.none else _marked(outcome_chart(dash), dash, marks),
        reasons=[
            EscalationReason(
                reason=stats.reason,
                conversations=stats.conversations,
                cost=stats.escalation_cost,
                filter_query=_query_string(request, escalation_reason=stats.reason),
                current=stats.reason == dash.filters.escalation_reason,
            )
            for stats in dash.escalation_reason_costs
        ],
        reasons_limit=selectors.TOP_REASONS_LIMIT,
        escalated=totals.escalated,
        without_reason=dash.escalations_without_reason,
        human_cost=dash.current.cost.human_cost_per_conversation,
        repeat_contact_days=totals.repeat_contact_window_days,
        settled=totals.settled,
        settled_ai_resolved=totals.settled_ai_resolved,
        followed_up=totals.followed_up,
        outcome_values=[(value, _outcome_meaning(value, label)) for value, label in Outcome.choices],
        unfiltered_query=_query_string(request, escalation_reason=None),
        repeat_contact_definitions=definitions("repeat_contact_rate", "settled", "followed_up"),
        knowledge_gap_definitions=definitions("knowledge_gap_cost", "followed_up"),
    )


# --- Views --------------------------------------------------------------------------------


def _query_string(request: HttpRequest, **changes) -> str:
    params: QueryDict = request.GET.copy()
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params.urlencode()


def _parse(request: HttpRequest) -> tuple[DashboardForm, DashboardQuery | None]:
    form = DashboardForm(request.GET)
    return form, (form.to_query() if form.is_valid() else None)


def _load(query: DashboardQuery) -> Dashboard:
    return selectors.dashboard(
        period=query.period, filters=query.filters, granularity=query.granularity, tz=query.tz
    )


@require_GET
@staff_required
def dashboard_view(request: HttpRequest) -> HttpResponse:
    form, query = _parse(request)
    if query is None:
        context = {"form": form, "ranges": RANGES, "alert_banner": alert_banner.banner()}
        return render(request, "dashboard/index.html", context, status=400)
    dash = _load(query)
    sort_field = query.sort.removeprefix("-")
    marks = annotation_marks(dash)
    context = {
        "form": form,
        "query": query,
        "alert_banner": alert_banner.banner(tz=query.tz),
        "dash": dash,
        "kpis": kpis(dash),
        "charts": build_charts(dash, marks),
        "annotations": marks,
        "topic_rows": topic_rows(dash.topic_trends, query, dash.topic_changes),
        "honest": honest_resolution(dash, request, marks),
        "knowledge_gaps": dash.knowledge_gaps,
        "currency": dash.current.cost.currency,
        "small_sample": SMALL_SAMPLE,
        "range_links": [
            (key, label, _query_string(request, range=key, start=None, end=None))
            for key, label in RANGES.items()
            if key != "custom"
        ],
        "sort_links": {
            field: _query_string(request, sort=field if query.sort == f"-{field}" else f"-{field}")
            for field in TOPIC_SORTS
        },
        "sort_field": sort_field,
        "sort_descending": query.sort.startswith("-"),
        "export_query": _query_string(request, sort=None),
        "api_docs_url": request.build_absolute_uri(reverse("api-docs")),
        "ingest_url": request.build_absolute_uri(reverse("conversations:ingest")),
    }
    return render(request, "dashboard/index.html", context)


def _period_label(period, tz: ZoneInfo) -> str:
    """Its whole days: "Mar 9, 2026 – Mar 10, 2026"."""
    last_day = (period.end - timedelta(microseconds=1)).astimezone(tz)
    return f"{period.start.astimezone(tz):%b %-d, %Y} – {last_day:%b %-d, %Y}"


def _arm_label(kind: str, period, filters, tz: ZoneInfo) -> str:
    if kind == "bot_version":
        return f"Version {filters.bot_version}"
    if kind == "channel":
        return f"Channel {filters.channel}"
    return _period_label(period, tz)


@require_GET
@staff_required
def compare_view(request: HttpRequest) -> HttpResponse:
    """Two bot versions, channels or periods side by side: every figure with its 95% interval,
    the change b − a with its test, and the topics whose change is significant first."""
    form = CompareForm(request.GET)
    context = {"form": form, "ranges": RANGES, "kinds": COMPARE_KINDS, "alert_banner": alert_banner.banner()}
    if not form.is_valid():
        return render(request, "dashboard/compare.html", context, status=400)
    data = form.cleaned_data
    query = form.to_query()
    compared: CompareQuery | None = form.to_compare() if form.complete else None
    menu_period = query.period
    if compared and compared.kind == "period":
        menu_period = replace(
            query.period,
            start=min(compared.a[0].start, compared.b[0].start),
            end=max(compared.a[0].end, compared.b[0].end),
        )
    channels, versions, _ = selectors.filter_menus(period=menu_period)
    kind = data["kind"]
    page = None
    if compared:
        comparison = selectors.compare(a=compared.a, b=compared.b)
        page = compare_page(
            comparison,
            a_label=_arm_label(kind, *compared.a, query.tz),
            b_label=_arm_label(kind, *compared.b, query.tz),
        )
    arm_menu = versions if kind == "bot_version" else channels
    context.update(
        {
            "query": query,
            "kind": kind,
            "page": page,
            "arm_choices": selectors.menu_options(arm_menu, data.get("a"), data.get("b")),
            "channels": selectors.menu_options(channels, query.filters.channel),
            "bot_versions": selectors.menu_options(versions, query.filters.bot_version),
            "kind_links": [
                (key, label, _query_string(request, kind=key, a=None, b=None))
                for key, label in COMPARE_KINDS.items()
            ],
            "small_sample": SMALL_SAMPLE,
        }
    )
    return render(request, "dashboard/compare.html", context)


@require_GET
@staff_required
def annotation_view(request: HttpRequest, annotation_id: int) -> HttpResponse:
    """An annotation's impact: its traffic (its channel's, when scoped to one) in the 7 days
    before its moment against the 7 days after it (or up to now), as the Compare page shows two
    arms (selectors.annotation_impact, the same as GET /api/annotations/<id>/impact/)."""
    annotation = get_object_or_404(Annotation, pk=annotation_id)
    tz = ZoneInfo(settings.ANALYTICS_TIME_ZONE)
    now = timezone.now()
    context = {
        "annotation": annotation,
        "small_sample": SMALL_SAMPLE,
        "when": annotation.timestamp.astimezone(tz),
        "alert_banner": alert_banner.banner(tz=tz),
    }
    try:
        comparison = selectors.annotation_impact(annotation=annotation, now=now)
    except selectors.NothingAfterYet:
        return render(request, "dashboard/annotation.html", context)
    before, after = comparison.a.period, comparison.b.period
    context["page"] = compare_page(
        comparison,
        a_label=f"7 days before ({_period_label(before, tz)})",
        b_label=(
            f"7 days after ({_period_label(after, tz)})"
            if after.end - after.start >= selectors.IMPACT_WINDOW
            else f"After, so far ({_period_label(after, tz)})"
        ),
    )
    context["dashboard_query"] = urlencode(
        {
            "range": "custom",
            "start": f"{before.start.astimezone(tz):%Y-%m-%d}",
            "end": f"{(after.end - timedelta(microseconds=1)).astimezone(tz):%Y-%m-%d}",
            **({"channel": annotation.channel} if annotation.channel else {}),
        }
    )
    return render(request, "dashboard/annotation.html", context)


# Spreadsheets run a cell that starts with one of these as a formula (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralize(text: str) -> str:
    """Text from the bot (topic names) goes into a spreadsheet as text, never as a formula."""
    return f"'{text}" if text.startswith(FORMULA_PREFIXES) else text


def _csv_response(filename: str, header: list[str], rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    writer = csv.writer(response)
    writer.writerow(header)
    writer.writerows(["" if value is None else value for value in row] for row in rows)
    return response


def _export_name(query: DashboardQuery, kind: str) -> str:
    start = query.period.start.astimezone(query.tz).strftime("%Y%m%d-%H%M")
    end = query.period.end.astimezone(query.tz).strftime("%Y%m%d-%H%M")
    return f"support-{kind}-{start}-{end}.csv"


# The comparison with the previous period that the topics export adds to its metrics.
_TOPIC_TREND_COLUMNS = {
    "previous_conversations": lambda row: row.trend.previous_conversations,
    "change_pct": lambda row: row.trend.change,
    "ai_resolution_rate_change_pp": lambda row: row.trend.rate_change,
}


def _export(request: HttpRequest, kind: str, table) -> HttpResponse:
    """A CSV export of the dashboard's range: `table(query)` gives its header and rows."""
    form, query = _parse(request)
    if query is None:
        return HttpResponse(f"Invalid range: {form.errors.as_text()}", status=400, content_type="text/plain")
    header, rows = table(query)
    return _csv_response(_export_name(query, kind), header, rows)


def _topics_table(query: DashboardQuery) -> tuple[list[str], list[list]]:
    trends = selectors.topic_trends(period=query.period, filters=query.filters)
    metric_names = tables.TOPICS_EXPORT_METRICS
    return (
        [
            "topic",
            *tables.export_header(metric_names, tables.Answer.TOPICS),
            *_TOPIC_TREND_COLUMNS,
            *tables.export_header(tables.TOPICS_EXPORT_ADDED, tables.Answer.TOPICS),
        ],
        [
            [
                neutralize(row.topic.topic),
                *tables.export_values(row.topic, metric_names),
                *(value(row) for value in _TOPIC_TREND_COLUMNS.values()),
                *tables.export_values(row.topic, tables.TOPICS_EXPORT_ADDED),
            ]
            for row in topic_rows(trends, query)
        ],
    )


def _timeseries_table(query: DashboardQuery) -> tuple[list[str], list[list]]:
    buckets = selectors.timeseries(
        period=query.period, filters=query.filters, granularity=query.granularity, tz=query.tz
    )
    metric_names = tables.SERIES_EXPORT_METRICS
    return (
        ["bucket_start", *tables.export_header(metric_names, tables.Answer.SERIES)],
        [[bucket.start.isoformat(), *tables.export_values(bucket, metric_names)] for bucket in buckets],
    )


@require_GET
@staff_required
def topics_csv_view(request: HttpRequest) -> HttpResponse:
    return _export(request, "topics", _topics_table)


@require_GET
@staff_required
def timeseries_csv_view(request: HttpRequest) -> HttpResponse:
    return _export(request, "timeseries", _timeseries_table)
