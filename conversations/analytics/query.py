"""What a read asks for: a window, filters and a bucket size, parsed once from a request (an
API serializer, the dashboard's form) and handed to the selectors."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.db.models import QuerySet

from conversations.models import Conversation


@dataclass(frozen=True)
class Period:
    """A window of conversation end times: [start, end), or (start, end) when not include_start."""

    start: datetime
    end: datetime
    include_start: bool = True

    @classmethod
    def last_hours(cls, hours: int, *, now: datetime) -> Period:
        """The last `hours` hours before `now`, as the tutorial's `?hours=N` counts them: entries
        strictly newer than the cutoff, so the window excludes its start."""
        return cls(start=now - timedelta(hours=hours), end=now, include_start=False)

    @classmethod
    def whole_days(cls, first: date, last: date, *, tz: ZoneInfo, now: datetime) -> Period:
        """The days `first` to `last` in `tz` (a day is 23 or 25 hours long on a DST change), cut
        at `now`: a range that includes today ends now (a day so far against a whole day before
        would show a fake drop). The dashboard's custom range and the digests' periods."""
        start = datetime.combine(first, time.min, tzinfo=tz)
        end = min(datetime.combine(last + timedelta(days=1), time.min, tzinfo=tz), now)
        return cls(start=start, end=max(end, start))

    def clipped(self, end: datetime) -> Period:
        """The part of this period before `end` (empty when it starts at or after it)."""
        return Period(
            start=self.start, end=max(self.start, min(self.end, end)), include_start=self.include_start
        )

    def previous(self) -> Period:
        """The period of the same length that ends where this one starts."""
        return Period(
            start=self.start - (self.end - self.start), end=self.start, include_start=self.include_start
        )


@dataclass(frozen=True)
class Filters:
    channel: str | None = None
    topic: str | None = None  # normalized (models.normalize_topic)
    bot_version: str | None = None
    escalation_reason: str | None = None  # normalized (models.normalize_topic)


class Granularity(enum.StrEnum):
    """The bucket size of a time series; the values are PostgreSQL's date_trunc names."""

    HOUR = "hour"
    DAY = "day"
    WEEK = "week"

    @property
    def nominal_length(self) -> timedelta:
        """Its length without DST changes (for limits on the number of buckets)."""
        return {Granularity.HOUR: timedelta(hours=1), Granularity.DAY: timedelta(days=1)}.get(
            self, timedelta(days=7)
        )


def conversations_in(*, period: Period, filters: Filters) -> QuerySet[Conversation]:
    """The raw conversations of a window, as a QuerySet (a full scan: what the tests compare
    the rollup reads with)."""
    return (
        Conversation.objects.in_window(period.start, period.end, include_start=period.include_start)
        .for_channel(filters.channel)
        .for_bot_version(filters.bot_version)
        .with_topic(filters.topic)
        .with_escalation_reason(filters.escalation_reason)
    )
