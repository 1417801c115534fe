"""The dashboard's query string, parsed once into a Period, Filters and a bucket size."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django import forms
from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.urls import reverse
from django.utils import timezone

from conversations.analytics.query import Filters, Granularity, Period
from conversations.models import LABEL_MAX_LENGTH, REASON_MAX_LENGTH, normalize_topic

RANGES = {
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
    "90d": "Last 90 days",
    "custom": "Custom",
}
DEFAULT_RANGE = "7d"
MAX_CUSTOM_DAYS = 366
# Hourly buckets up to two days, daily beyond.
HOURLY_UP_TO = timedelta(days=2)

TOPIC_SORTS = {
    "topic": "Topic",
    "conversations": "Conversations",
    "share": "Share",
    "ai_resolution_rate": "AI resolution",
    "escalations": "Escalations",
    "avg_csat": "CSAT",
    "repeat_contact_rate": "Repeat contact",
    "change": "Change",
}
DEFAULT_SORT = "-conversations"


@dataclass(frozen=True)
class DashboardQuery:
    range: str
    period: Period
    filters: Filters
    granularity: str
    tz: ZoneInfo
    sort: str
    start_date: object  # date | None, for the custom-range inputs
    end_date: object


# Date arithmetic (the previous period, a day after the end) must stay far from year 1 and 9999.
EARLIEST_DAY, LATEST_DAY = date(1900, 1, 1), date(9000, 12, 31)
_DAY_LIMITS = [MinValueValidator(EARLIEST_DAY), MaxValueValidator(LATEST_DAY)]


class DashboardForm(forms.Form):
    range = forms.ChoiceField(choices=list(RANGES.items()), required=False)
    start = forms.DateField(required=False, label="From", validators=_DAY_LIMITS)
    end = forms.DateField(required=False, label="To", validators=_DAY_LIMITS)
    channel = forms.CharField(required=False, max_length=LABEL_MAX_LENGTH)
    bot_version = forms.CharField(required=False, max_length=LABEL_MAX_LENGTH)
    # Normalized like the API's ?escalation_reason= (and as reasons are stored): "  No DOCS" is
    # "no docs"; blank is no filter.
    escalation_reason = forms.CharField(required=False, max_length=1000)
    sort = forms.ChoiceField(
        required=False,
        choices=[(key, key) for name in TOPIC_SORTS for key in (name, f"-{name}")],
    )

    def clean_escalation_reason(self) -> str:
        reason = normalize_topic(self.cleaned_data["escalation_reason"])
        if len(reason) > REASON_MAX_LENGTH:
            # No stored reason is longer: a 400 naming the field, not an empty page.
            raise forms.ValidationError(
                f"An escalation reason has at most {REASON_MAX_LENGTH} characters (after normalizing)."
            )
        return reason

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        data["range"] = data.get("range") or DEFAULT_RANGE
        if data["range"] == "custom":
            if not data.get("start"):
                self.add_error("start", "Choose the first day of the custom range.")
            if not data.get("end"):
                self.add_error("end", "Choose the last day of the custom range.")
            if data.get("start") and data.get("end"):
                if data["end"] < data["start"]:
                    self.add_error("end", "The last day must not be before the first.")
                elif (data["end"] - data["start"]).days >= MAX_CUSTOM_DAYS:
                    self.add_error("end", f"A custom range may span at most {MAX_CUSTOM_DAYS} days.")
        return data

    def to_query(self, *, now: datetime | None = None) -> DashboardQuery:
        """Only after is_valid()."""
        data = self.cleaned_data
        tz = ZoneInfo(settings.ANALYTICS_TIME_ZONE)
        now = now or timezone.now()
        today = now.astimezone(tz).date()
        choice = data["range"]
        if choice == "24h":
            period = Period.last_hours(24, now=now)  # exactly the API's ?hours=24
        elif choice == "custom":
            period = Period.whole_days(data["start"], data["end"], tz=tz, now=now)
        else:
            # Whole days in the staff's time zone, today (so far) included.
            days = int(choice.removesuffix("d"))
            period = Period(
                start=datetime.combine(today - timedelta(days=days - 1), time.min, tzinfo=tz), end=now
            )
        start, end = period.start, period.end
        return DashboardQuery(
            range=choice,
            period=period,
            filters=Filters(
                channel=data.get("channel") or None,
                bot_version=data.get("bot_version") or None,
                escalation_reason=data.get("escalation_reason") or None,
            ),
            granularity=Granularity.HOUR if end - start <= HOURLY_UP_TO else Granularity.DAY,
            tz=tz,
            sort=data.get("sort") or DEFAULT_SORT,
            start_date=data.get("start") or start.astimezone(tz).date(),
            end_date=data.get("end") or (end - timedelta(microseconds=1)).astimezone(tz).date(),
        )


# The Compare page (/dashboard/compare/): two arms side by side.
COMPARE_KINDS = {
    "bot_version": "Two bot versions",
    "channel": "Two channels",
    "period": "Two periods",
}
DEFAULT_COMPARE_KIND = "bot_version"


@dataclass(frozen=True)
class CompareQuery:
    kind: str
    a: tuple[Period, Filters]
    b: tuple[Period, Filters]
    dashboard: DashboardQuery  # the range and filters the version or channel arms share


class CompareForm(DashboardForm):
    """Two bot versions or two channels over the dashboard's range and filters, or two periods
    (whole days in ANALYTICS_TIME_ZONE) over its filters. Nothing chosen yet is not an error:
    the page then shows the form alone (`complete` is False)."""

    kind = forms.ChoiceField(choices=list(COMPARE_KINDS.items()), required=False)
    a = forms.CharField(required=False, max_length=LABEL_MAX_LENGTH, label="A")
    b = forms.CharField(required=False, max_length=LABEL_MAX_LENGTH, label="B")
    a_start = forms.DateField(required=False, label="A from", validators=_DAY_LIMITS)
    a_end = forms.DateField(required=False, label="A to", validators=_DAY_LIMITS)
    b_start = forms.DateField(required=False, label="B from", validators=_DAY_LIMITS)
    b_end = forms.DateField(required=False, label="B to", validators=_DAY_LIMITS)

    PERIOD_FIELDS = ("a_start", "a_end", "b_start", "b_end")

    @property
    def complete(self) -> bool:
        """Both arms chosen (only after is_valid())."""
        return self.cleaned_data.get("complete", False)

    def clean(self):
        data = super().clean()
        kind = data["kind"] = data.get("kind") or DEFAULT_COMPARE_KIND
        names = self.PERIOD_FIELDS if kind == "period" else ("a", "b")
        given = [name for name in names if data.get(name)]
        data["complete"] = bool(given) and not self.errors
        if not given:
            return data
        for name in names:
            if not data.get(name):
                self.add_error(name, "Choose both arms: this one is missing.")
        if kind == "period":
            for side in ("a", "b"):
                start, end = data.get(f"{side}_start"), data.get(f"{side}_end")
                if start and end and end < start:
                    self.add_error(f"{side}_end", "The last day must not be before the first.")
                elif start and end and (end - start).days >= MAX_CUSTOM_DAYS:
                    self.add_error(f"{side}_end", f"A period may span at most {MAX_CUSTOM_DAYS} days.")
        data["complete"] = not self.errors
        return data

    def to_compare(self, *, now: datetime | None = None) -> CompareQuery:
        """Only after is_valid() and when complete."""
        data = self.cleaned_data
        now = now or timezone.now()
        query = self.to_query(now=now)
        kind = data["kind"]
        if kind == "period":
            arms = []
            for side in ("a", "b"):
                period = Period.whole_days(data[f"{side}_start"], data[f"{side}_end"], tz=query.tz, now=now)
                arms.append((period, query.filters))
            a, b = arms
        else:
            # The arms set the version (or channel): a filter of the same kind would leave one empty.
            a, b = ((query.period, replace(query.filters, **{kind: data[side]})) for side in ("a", "b"))
        return CompareQuery(kind=kind, a=a, b=b, dashboard=query)


def days_covering(*, start: datetime, end: datetime, tz: ZoneInfo) -> tuple[date, date]:
    """The dashboard's custom range (whole local days in `tz`, both inclusive) that covers the
    window [start, end): the local day of its start and of its last moment."""
    last = max(start, end - timedelta(microseconds=1))
    return start.astimezone(tz).date(), last.astimezone(tz).date()


def dashboard_url_covering(*, start: datetime, end: datetime, filters: Filters) -> str:
    """The dashboard's path and query for the whole local days that cover [start, end), with
    the filters the dashboard has (channel, bot version, escalation reason): the link of an
    alert (its window) and of a digest (its period). DashboardForm reads it back."""
    first, last = days_covering(start=start, end=end, tz=ZoneInfo(settings.ANALYTICS_TIME_ZONE))
    query = {
        "range": "custom",
        "start": first.isoformat(),
        "end": last.isoformat(),
        "channel": filters.channel,
        "bot_version": filters.bot_version,
        "escalation_reason": filters.escalation_reason,
    }
    return f"{reverse('dashboard')}?{urlencode({key: value for key, value in query.items() if value})}"
