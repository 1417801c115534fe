"""Full scans: the reference that the rollup reads are compared with."""

from datetime import datetime

from django.db.models import Aggregate, Count, Func, IntegerField, Q, QuerySet, Sum
from django.utils import timezone

from conversations.analytics.figures import BY_NAME, CUTOFFS, repeat_contact_window
from conversations.analytics.metrics import Totals, full_scan_aggregates
from conversations.analytics.query import Filters, Period, conversations_in
from conversations.analytics.selectors import Bucket
from conversations.models import Conversation, Topic


def full_scan(period: Period, filters: Filters, *, now: datetime | None = None) -> Totals:
    """A window's figures recounted from the raw conversations (ORM aggregates); its cut-off
    figures (figures.CUTOFFS) from those that ended at least their age before `now` (default:
    the clock's now)."""
    raw = conversations_in(period=period, filters=filters)
    return totals_of(raw.aggregate(**full_scan_aggregates_with_cut_offs(now or timezone.now())))


def full_scan_aggregates_with_cut_offs(now: datetime, *, with_histogram: bool = True) -> dict[str, Aggregate]:
    """`full_scan_aggregates`, and each cut-off figure as `cut_off_<name>` (`totals_of` reads them)."""
    aggregates = full_scan_aggregates(with_histogram=with_histogram)
    for cut_off in CUTOFFS:
        aggregates[f"cut_off_{cut_off.name}"] = _cut_off_aggregate(BY_NAME[cut_off.of], now - cut_off.age())
    return aggregates


def totals_of(row: dict) -> Totals:
    """A Totals of a row of `full_scan_aggregates_with_cut_offs`."""
    return Totals.from_row(row).with_cut_offs(
        {cut_off.name: row[f"cut_off_{cut_off.name}"] or 0 for cut_off in CUTOFFS}
    )


def assert_follow_ups_exact() -> None:
    """Every stored conversation is followed up exactly when another of its customer's ended
    after it and at most the repeat-contact window after it (worked out here, in Python)."""
    window = repeat_contact_window()
    rows = list(Conversation.objects.values_list("session_id", "customer_hash", "timestamp", "followed_up"))
    times: dict[bytes, list[datetime]] = {}
    for _, customer, timestamp, _ in rows:
        if customer is not None:
            times.setdefault(bytes(customer), []).append(timestamp)
    for session_id, customer, timestamp, followed_up in rows:
        expected = customer is not None and any(
            timestamp < other <= timestamp + window for other in times[bytes(customer)]
        )
        assert followed_up == expected, (session_id, timestamp, followed_up)


def _cut_off_aggregate(figure, latest: datetime) -> Aggregate:
    """The figure over the conversations that ended at or before `latest`."""
    where = Q(timestamp__lte=latest) & (figure.where or Q())
    total = Count("id", filter=where) if figure.value is None else Sum(figure.value, filter=where)
    return total if figure.scale is None else total * figure.scale


def assert_buckets_equal_full_scans(
    buckets: list[Bucket], period: Period, filters: Filters, *context
) -> None:
    """Each bucket of a time series of `period` equals a full scan of its part of the window."""
    for index, bucket in enumerate(buckets):
        bucket_end = buckets[index + 1].start if index + 1 < len(buckets) else period.end
        part = Period(
            start=max(bucket.start, period.start),
            end=min(bucket_end, period.end),
            include_start=period.include_start if bucket.start <= period.start else True,
        )
        assert bucket.totals == full_scan(part, filters), (bucket.start, filters, *context)


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
