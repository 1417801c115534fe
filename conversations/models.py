from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, URLValidator
from django.db import models
from django.db.models import Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Lower
from rest_framework_api_key.models import AbstractAPIKey

from conversations import alert_rules
from conversations.analytics import figures
from conversations.analytics.figures import CSAT_SCORES

MAX_TURNS = 10_000
MAX_RESPONSES = 10_000
# A posted timestamp may be at most this far ahead of the server's clock.
FUTURE_TOLERANCE = timedelta(minutes=5)
# Times outside these years are refused: nothing real lies there, and date arithmetic near
# year 1 or 9999 (a previous period, a time-zone shift) would overflow.
MIN_YEAR, MAX_YEAR = 1900, 9000
MAX_RESPONSE_MS = 86_400_000  # a day: anything slower is a broken clock, not a response time
MAX_TOPICS = 20
TOPIC_MAX_LENGTH = 100
SESSION_ID_MAX_LENGTH = 255
LABEL_MAX_LENGTH = 64
REASON_MAX_LENGTH = 100  # an escalation reason, normalized like a topic
CUSTOMER_ID_MAX_LENGTH = 255
ANNOTATION_TITLE_MAX_LENGTH = 200
EXTERNAL_ID_MAX_LENGTH = 255  # the sender's own id of an annotation (a release hook's run id)


class Outcome(models.TextChoices):
    """How a conversation ended, as the bot reports it (optional; "" when not reported)."""

    CONFIRMED = "confirmed", "confirmed (the bot resolved it and the customer said so)"
    ASSUMED = "assumed", "assumed (the bot answered; the customer left without asking for a human)"
    ESCALATED = "escalated", "escalated (a human took over)"
    ABANDONED = "abandoned", "abandoned (the customer left unresolved, no human involved)"


# The outcomes that mean `resolved_by_ai` true; the others mean false.
RESOLVED_OUTCOMES = frozenset({Outcome.CONFIRMED.value, Outcome.ASSUMED.value})


class Topic(models.Model):
    """A question topic, stored once under its normalized name (see `normalize_topic`)."""

    name = models.CharField(max_length=TOPIC_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            # The btree behind this constraint also serves lookups by name (topic filter).
            models.UniqueConstraint(fields=["name"], name="topic_name_unique"),
            models.CheckConstraint(condition=~Q(name=""), name="topic_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ConversationQuerySet(models.QuerySet):
    def in_window(
        self, start: datetime, end: datetime, *, include_start: bool = True
    ) -> ConversationQuerySet:
        """Conversations that ended in [start, end), or (start, end) with include_start=False.

        The tutorial's `?hours=N` keeps entries strictly newer than the cutoff, so that
        window excludes its start.
        """
        lower = "timestamp__gte" if include_start else "timestamp__gt"
        return self.filter(**{lower: start, "timestamp__lt": end})

    def for_channel(self, channel: str | None) -> ConversationQuerySet:
        return self if channel is None else self.filter(channel=channel)

    def for_bot_version(self, bot_version: str | None) -> ConversationQuerySet:
        return self if bot_version is None else self.filter(bot_version=bot_version)

    def with_escalation_reason(self, reason: str | None) -> ConversationQuerySet:
        return self if reason is None else self.filter(escalation_reason=reason)

    def with_topic(self, topic: str | None) -> ConversationQuerySet:
        if topic is None:
            return self
        # Uses index: conversation_topic_ids_idx (GIN, `@>`). An unknown name gives {NULL},
        # which no array contains (where {} would be contained in every one).
        topic_id = RawSQL(
            f"ARRAY[(SELECT id FROM {Topic._meta.db_table} WHERE name = %s)]",
            [topic],
            output_field=ArrayField(models.BigIntegerField()),
        )
        return self.filter(topic_ids__contains=topic_id)

    def with_topic_names(self) -> ConversationQuerySet:
        """Annotates `topic_names`: the names of each conversation's topics, sorted (one
        subquery per row: for pages of conversations, not whole windows)."""
        return self.annotate(
            topic_names=RawSQL(
                f"ARRAY(SELECT t.name FROM {Topic._meta.db_table} t"
                # COLLATE "C": code point order, as Python's sorted() gives the API's POST reply
                f' WHERE t.id = ANY({Conversation._meta.db_table}.topic_ids) ORDER BY t.name COLLATE "C")',
                [],
                output_field=ArrayField(models.CharField()),
            )
        )


class Conversation(models.Model):
    """One finished conversation between a customer and the support bot."""

    # Collation "C": ids are opaque, compared byte by byte. Under the database's default
    # (e.g. C.UTF-8 or en_US.UTF-8) every comparison in the unique index goes through the C
    # library's locale-aware strcoll, which made looking up and inserting a batch's ids the
    # largest part of ingesting it (docs/benchmarks.md, "Collation C for session ids").
    session_id = models.CharField(max_length=SESSION_ID_MAX_LENGTH, db_collation="C")
    timestamp = models.DateTimeField(help_text="When the conversation ended (UTC).")
    turns = models.IntegerField()
    resolved_by_ai = models.BooleanField(
        help_text="True when the bot resolved it without a human taking over."
    )
    avg_response_ms = models.FloatField(
        null=True,
        blank=True,
        help_text="Mean bot response time in this conversation, in milliseconds.",
    )
    response_count = models.IntegerField(
        null=True,
        blank=True,
        help_text="How many responses avg_response_ms averages (empty when not reported).",
    )
    response_ms_bucket = models.SmallIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="Bucket of avg_response_ms in the response-time histogram.",
    )
    csat = models.SmallIntegerField(
        null=True, blank=True, help_text="Customer satisfaction, 1 (worst) to 5 (best)."
    )
    channel = models.CharField(max_length=LABEL_MAX_LENGTH, blank=True, default="")
    bot_version = models.CharField(max_length=LABEL_MAX_LENGTH, blank=True, default="")
    ai_cost = models.DecimalField(
        max_digits=12,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="What the bot itself cost for this conversation; empty means the default AI cost applies.",
    )
    # The ids of its topics, sorted, each once. In the row rather than in a link table: a
    # conversation is written once per post, and its topics with it, so a write is one row
    # (a link table cost an insert and two foreign-key checks per topic, the largest part of
    # an import), and reading the topics of a window's raw edge rows needs no join (at 10M
    # conversations that join was most of the worst-case read). Topics are never deleted
    # (TopicAdmin), so an id here always names one.
    topic_ids = ArrayField(models.BigIntegerField(), default=list, blank=True, editable=False)
    outcome = models.CharField(
        max_length=10,
        choices=Outcome.choices,
        blank=True,
        default="",
        db_default="",
        help_text="How it ended, as the bot reported it; empty when not reported.",
    )
    escalation_reason = models.CharField(
        max_length=REASON_MAX_LENGTH,
        blank=True,
        default="",
        db_default="",
        help_text="Why the AI did not resolve it (normalized like a topic); empty when not reported.",
    )
    # HMAC-SHA256 of the bot's customer id (conversations.customers): never the id itself.
    customer_hash = models.BinaryField(null=True, blank=True, editable=False)
    # Whether the same customer has another conversation that ended after this one and at most
    # REPEAT_CONTACT_DAYS after it. Kept by every write of the customer's conversations, in
    # the same statement (services); rebuilt by `rebuild_rollups`.
    followed_up = models.BooleanField(default=False, db_default=False, editable=False)
    received_at = models.DateTimeField(help_text="When this version of the conversation was received.")

    objects = ConversationQuerySet.as_manager()

    class Meta:
        ordering = ["-timestamp"]
        constraints = [
            # The idempotency key. Its btree also serves lookups by session id (admin search
            # by exact id, the CSAT endpoint, upserts' ON CONFLICT).
            models.UniqueConstraint(fields=["session_id"], name="conversation_session_id_unique"),
            models.CheckConstraint(condition=~Q(session_id=""), name="conversation_session_id_not_empty"),
            models.CheckConstraint(
                condition=Q(turns__gte=0, turns__lte=MAX_TURNS),
                name="conversation_turns_range",
            ),
            models.CheckConstraint(
                condition=Q(csat__isnull=True) | Q(csat__gte=min(CSAT_SCORES), csat__lte=max(CSAT_SCORES)),
                name="conversation_csat_range",
            ),
            models.CheckConstraint(
                condition=Q(avg_response_ms__isnull=True)
                | Q(avg_response_ms__gte=0, avg_response_ms__lte=MAX_RESPONSE_MS),
                name="conversation_avg_response_ms_range",
            ),
            models.CheckConstraint(
                condition=Q(response_count__isnull=True)
                | Q(response_count__gte=0, response_count__lte=MAX_RESPONSES),
                name="conversation_response_count_range",
            ),
            models.CheckConstraint(
                condition=Q(ai_cost__isnull=True) | Q(ai_cost__gte=0),
                name="conversation_ai_cost_non_negative",
            ),
            models.CheckConstraint(
                condition=Q(outcome="")
                | Q(outcome__in=sorted(RESOLVED_OUTCOMES), resolved_by_ai=True)
                | Q(outcome__in=sorted(set(Outcome.values) - RESOLVED_OUTCOMES), resolved_by_ai=False),
                name="conversation_outcome_matches_resolved",
            ),
            models.CheckConstraint(
                condition=Q(escalation_reason="") | Q(resolved_by_ai=False),
                name="conversation_escalation_reason_unresolved_only",
            ),
            models.CheckConstraint(
                condition=Q(followed_up=False) | Q(customer_hash__isnull=False),
                name="conversation_followed_up_has_customer",
            ),
        ]
        indexes = [
            # Uses index: every analytics window (`in_window`) and the admin's default
            # newest-first ordering.
            models.Index(fields=["timestamp"], name="conversation_timestamp_idx"),
            # Uses index: the topic filter (`with_topic`: the admin's and the raw full scan's).
            GinIndex(fields=["topic_ids"], name="conversation_topic_ids_idx"),
            # Uses index: a customer's conversations near a time (the follow-ups a write
            # changes, services) and the admin's search by customer id.
            models.Index(
                fields=["customer_hash", "timestamp"],
                name="conversation_customer_idx",
                condition=Q(customer_hash__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.session_id


class AnnotationKind(models.TextChoices):
    RELEASE = "release", "release"
    KNOWLEDGE_BASE = "knowledge_base", "knowledge base update"
    INCIDENT = "incident", "incident"
    OTHER = "other", "other"


class AnnotationQuerySet(models.QuerySet):
    def in_window(self, start: datetime, end: datetime) -> AnnotationQuerySet:
        """Annotations of [start, end)."""
        return self.filter(timestamp__gte=start, timestamp__lt=end)

    def for_channel(self, channel: str | None) -> AnnotationQuerySet:
        """Those that apply to the channel's traffic: scoped to it, or to no channel."""
        return self if channel is None else self.filter(channel__in=["", channel])

    def for_bot_version(self, bot_version: str | None) -> AnnotationQuerySet:
        """Those that apply to the version's traffic: scoped to it, or to no version."""
        return self if bot_version is None else self.filter(bot_version__in=["", bot_version])


class Annotation(models.Model):
    """A moment worth marking on the charts (a release, a knowledge-base update, an incident),
    for all traffic or scoped to one channel or bot version.

    Staff add them in the admin; the bot's release process posts them (`POST /api/annotations/`,
    idempotent by `external_id`); the first conversation of a new bot version makes a release
    annotation by itself (`BotVersion`, services).
    """

    timestamp = models.DateTimeField(help_text="The moment (UTC).")
    title = models.CharField(max_length=ANNOTATION_TITLE_MAX_LENGTH)
    kind = models.CharField(max_length=20, choices=AnnotationKind.choices)
    # Empty means unscoped (all channels, all versions); otherwise a label as the conversations
    # store it (trimmed, at most LABEL_MAX_LENGTH: ingest_rules.Label).
    channel = models.CharField(
        max_length=LABEL_MAX_LENGTH, blank=True, default="", help_text="Empty: every channel."
    )
    bot_version = models.CharField(
        max_length=LABEL_MAX_LENGTH, blank=True, default="", help_text="Empty: every bot version."
    )
    external_id = models.CharField(
        max_length=EXTERNAL_ID_MAX_LENGTH,
        blank=True,
        default="",
        help_text="The sender's own id: a second post with the same one returns this annotation. "
        "Empty: none.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = AnnotationQuerySet.as_manager()

    class Meta:
        ordering = ["timestamp", "id"]
        constraints = [
            # The idempotency key of POST /api/annotations/, when the sender gives one. Its
            # btree also serves the lookup of the stored annotation on a repeated post.
            models.UniqueConstraint(
                fields=["external_id"],
                condition=~Q(external_id=""),
                name="annotation_external_id_unique",
                violation_error_message="An annotation with this external id exists already.",
            ),
            models.CheckConstraint(condition=~Q(title=""), name="annotation_title_not_empty"),
            models.CheckConstraint(condition=Q(kind__in=AnnotationKind.values), name="annotation_kind_valid"),
        ]
        indexes = [
            # Uses index: the annotations of a window, in time order (`selectors.annotations_in`:
            # GET /api/annotations/?start&end and the dashboard's charts) and the admin's
            # date hierarchy.
            models.Index(fields=["timestamp"], name="annotation_timestamp_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.timestamp:%Y-%m-%d %H:%M} {self.title}"


class BotVersion(models.Model):
    """Every bot version the conversations have named, and when it was first seen.

    The record that makes a version's release annotation exactly once (services,
    `_record_releases`): the ingest inserts a batch's versions here with ON CONFLICT DO NOTHING
    and annotates exactly the rows that insert returns, in the transaction that writes the
    conversations. The unique index settles concurrent writers (the second waits for the
    first to commit, then inserts nothing); a rolled-back batch leaves no row and no
    annotation. Kept apart from the annotation itself so that its time never moves (a later
    post with an earlier timestamp inserts nothing) and so that an annotation staff delete
    stays deleted. Versions are never removed from here.
    """

    version = models.CharField(max_length=LABEL_MAX_LENGTH)
    first_seen = models.DateTimeField(
        help_text="The earliest timestamp of the version in the batch that first named it."
    )

    class Meta:
        ordering = ["first_seen"]
        constraints = [
            # Also the conflict target of the ingest's insert.
            models.UniqueConstraint(fields=["version"], name="bot_version_version_unique"),
            # A conversation without a bot version is not a release.
            models.CheckConstraint(condition=~Q(version=""), name="bot_version_not_empty"),
        ]

    def __str__(self) -> str:
        return self.version


class Span(models.TextChoices):
    # Quarter hours bound the raw rows a read takes at a window's edges, and make up the days
    # of time zones half an hour off UTC (conversations.analytics.planner, rollups.SPREAD).
    QUARTER = "q", "quarter hour"
    HOUR = "h", "hour"
    DAY = "d", "day"


class RollupMetrics(models.Model):
    """Additive sums over the conversations of one span (a UTC quarter hour, hour or day)
    and one key: one column per figure of the registry (conversations.analytics.figures,
    added below the class), and the response-time histogram.

    Every column adds up, so a window's figures are the sum of its rows (plus or minus the
    raw conversations of its partial first and last quarter hours or hours); a replaced
    conversation or a late CSAT subtracts its old contribution and adds the new one. Costs
    that depend on the editable cost settings are not stored: `ai_cost_missing` counts the
    conversations that take the default AI cost when the numbers are read.
    """

    class Meta:
        abstract = True


# Before the concrete rollups below copy the abstract model's fields.
for _figure in figures.FIGURES:
    RollupMetrics.add_to_class(_figure.name, _figure.column())
RollupMetrics.add_to_class(figures.HISTOGRAM, figures.histogram_column())


class ConversationRollup(RollupMetrics):
    """Per span, per channel × bot version or for all of them (both NULL: what an unfiltered
    window reads, one row per quarter hour, hour or day), and per escalation reason or for all
    reasons (NULL) (rollups.SPREAD)."""

    span = models.CharField(max_length=1, choices=Span.choices)
    start = models.DateTimeField(help_text="Start of the UTC quarter hour, hour or day.")
    channel = models.CharField(max_length=LABEL_MAX_LENGTH, null=True)  # noqa: DJ001 - NULL means "all"
    bot_version = models.CharField(max_length=LABEL_MAX_LENGTH, null=True)  # noqa: DJ001
    escalation_reason = models.CharField(max_length=REASON_MAX_LENGTH, null=True)  # noqa: DJ001

    class Meta:
        constraints = [
            # Also the index of every windowed read: span, then a range of starts. NULLS NOT
            # DISTINCT: one "all channels" row per span, which upserts find on conflict.
            models.UniqueConstraint(
                fields=["span", "start", "channel", "bot_version", "escalation_reason"],
                name="conversation_rollup_key",
                nulls_distinct=False,
            ),
        ]
        indexes = [
            # Uses index: every unfiltered window read (summary, series, dashboard), which
            # reads only the "all channels and versions" rows; a range scan of the key index
            # above walks through every channel × version row of those starts too
            # (docs/benchmarks.md, "Partial indexes for unfiltered reads").
            models.Index(
                fields=["span", "start"],
                name="conversation_rollup_all_idx",
                condition=models.Q(
                    channel__isnull=True, bot_version__isnull=True, escalation_reason__isnull=True
                ),
            ),
            # Uses index: the escalation reasons of a window without a channel or version
            # filter (every summary), and a window filtered by reason alone: the rows per
            # reason for all channels and versions.
            models.Index(
                fields=["span", "start"],
                name="conversation_rollup_reason_idx",
                condition=models.Q(
                    channel__isnull=True, bot_version__isnull=True, escalation_reason__isnull=False
                ),
            ),
            # Uses index: a window filtered by bot version (the compare of two versions), which
            # sums its per-channel rows; the key index walks every version's rows of the starts
            # (docs/benchmarks.md, "Indexes for a bot version's rows").
            models.Index(
                fields=["span", "bot_version", "start"],
                name="conv_rollup_version_idx",
                condition=models.Q(bot_version__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.span} {self.start:%Y-%m-%d %H:%M} {self.channel}/{self.bot_version}"


class TopicRollup(RollupMetrics):
    """Per span and topic, as ConversationRollup (quarter hours: for all channels, versions and
    reasons only)."""

    span = models.CharField(max_length=1, choices=Span.choices)
    start = models.DateTimeField(help_text="Start of the UTC quarter hour, hour or day.")
    topic = models.ForeignKey(Topic, on_delete=models.CASCADE, db_index=False)
    channel = models.CharField(max_length=LABEL_MAX_LENGTH, null=True)  # noqa: DJ001 - NULL means "all"
    bot_version = models.CharField(max_length=LABEL_MAX_LENGTH, null=True)  # noqa: DJ001
    escalation_reason = models.CharField(max_length=REASON_MAX_LENGTH, null=True)  # noqa: DJ001

    class Meta:
        constraints = [
            # Uses index: top topics and the topics table over a window (span, start range).
            models.UniqueConstraint(
                fields=["span", "start", "topic", "channel", "bot_version", "escalation_reason"],
                name="topic_rollup_key",
                nulls_distinct=False,
            ),
            models.CheckConstraint(
                # Per topic, quarter hours are kept for all channels and versions only.
                condition=~models.Q(span=Span.QUARTER)
                | models.Q(channel=None, bot_version=None, escalation_reason=None),
                name="topic_rollup_quarter_all_only",
            ),
            models.CheckConstraint(
                # Per topic, a reason's rows are kept per channel × version only (rollups.SPREAD).
                condition=models.Q(escalation_reason=None) | models.Q(channel__isnull=False),
                name="topic_rollup_reason_per_channel",
            ),
        ]
        indexes = [
            # Uses index: a summary or series filtered by one topic.
            models.Index(fields=["topic", "span", "start"], name="topic_rollup_topic_idx"),
            # Uses index: the topic counts of an unfiltered window (summary, dashboard), from
            # the "all channels and versions" rows only. Through the key index, a read walked
            # every topic × channel × version entry of those days
            # (docs/benchmarks.md, "Partial indexes for unfiltered reads").
            models.Index(
                fields=["span", "start"],
                name="topic_rollup_all_idx",
                condition=models.Q(
                    channel__isnull=True, bot_version__isnull=True, escalation_reason__isnull=True
                ),
            ),
            # Uses index: the topics of a window filtered by bot version (the compare of two
            # versions): its per-channel rows, without the rows per reason, which are most of
            # the key index's entries (docs/benchmarks.md, "Indexes for a bot version's rows").
            models.Index(
                fields=["span", "bot_version", "start"],
                name="topic_rollup_version_idx",
                condition=models.Q(bot_version__isnull=False, escalation_reason__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.span} {self.start:%Y-%m-%d %H:%M} topic {self.topic_id} {self.channel}/{self.bot_version}"
        )


class RollupDelta(models.Model):
    """A change to the rollups not folded into them yet (conversations.rollups).

    A write of a few conversations (a single POST, a late CSAT) appends their contributions
    here, the old ones taken out (sign −1) and the new ones put in (+1), in the statement that
    writes the conversations, instead of updating the rollup rows itself: every such write
    updated the current hour's rows, which every other writer was waiting to update too.
    `rollups.fold` moves what is here into the rollups, many writes at a time, and reads add
    what is not folded yet, so every figure stays exact. Append-only until folded: no writer
    waits for another here.
    """

    sign = models.SmallIntegerField()
    timestamp = models.DateTimeField()
    channel = models.CharField(max_length=LABEL_MAX_LENGTH)
    bot_version = models.CharField(max_length=LABEL_MAX_LENGTH)
    resolved_by_ai = models.BooleanField()
    turns = models.IntegerField()
    csat = models.SmallIntegerField(null=True)
    ai_cost = models.DecimalField(max_digits=12, decimal_places=6, null=True)
    avg_response_ms = models.FloatField(null=True)
    response_ms_bucket = models.SmallIntegerField(null=True)
    topic_ids = ArrayField(models.BigIntegerField())
    outcome = models.CharField(max_length=10, default="")
    escalation_reason = models.CharField(max_length=REASON_MAX_LENGTH, default="")
    customer_hash = models.BinaryField(null=True)
    followed_up = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"{self.sign:+d} at {self.timestamp:%Y-%m-%d %H:%M}"


class CostSettings(models.Model):
    """The cost assumptions behind "money saved"; one row, edited by staff in the admin."""

    SINGLETON_ID = 1

    human_cost_per_conversation = models.DecimalField(
        max_digits=10,
        decimal_places=2,
        default=Decimal("5.00"),
        help_text="What one conversation costs when a human handles it.",
    )
    ai_cost_per_conversation = models.DecimalField(
        max_digits=10,
        decimal_places=4,
        default=Decimal("0.05"),
        help_text="What the bot costs per conversation when the bot does not report its own cost (ai_cost).",
    )
    currency = models.CharField(max_length=3, default="USD", help_text="ISO 4217 code, e.g. USD, EUR.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "cost settings"
        verbose_name_plural = "cost settings"
        constraints = [
            models.CheckConstraint(condition=Q(id=1), name="cost_settings_singleton"),
            models.CheckConstraint(
                condition=Q(human_cost_per_conversation__gte=0, ai_cost_per_conversation__gte=0),
                name="cost_settings_non_negative",
            ),
        ]

    def __str__(self) -> str:
        return "Cost settings"

    @classmethod
    def load(cls) -> CostSettings:
        settings, _ = cls.objects.get_or_create(id=cls.SINGLETON_ID)
        return settings


class ApiKey(AbstractAPIKey):
    """A hashed, revocable key for the bot (ingest) or a reporting client (read)."""

    class Scope(models.TextChoices):
        INGEST = "ingest", "Ingest conversations"
        READ = "read", "Read analytics"
        ALL = "all", "Ingest and read"

    scope = models.CharField(max_length=10, choices=Scope.choices, default=Scope.INGEST)

    class Meta(AbstractAPIKey.Meta):
        verbose_name = "API key"
        verbose_name_plural = "API keys"

    def allows(self, scope: str) -> bool:
        return self.scope in (scope, self.Scope.ALL)


class RateLimitCounter(models.Model):
    """Requests counted in the current fixed window, per scope and API key (or staff user).

    Written by conversations.throttling in one upsert per request; one row per caller and
    scope, reused window after window, so the table stays as small as the number of keys.
    The table is UNLOGGED (migration 0007): the counts are not data worth a WAL flush per
    request, and after a crash they simply start again.
    """

    key = models.CharField(max_length=200, primary_key=True)  # "ingest:key:<prefix>"
    window_start = models.DateTimeField()
    count = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.key}: {self.count} since {self.window_start:%Y-%m-%d %H:%M:%S}"


def normalize_topic(raw: str) -> str:
    """Trim, collapse inner whitespace, lowercase: " Billing  Issues" -> "billing issues".

    Every topic name is stored this way, and every topic filter is normalized the same
    way before it is compared.
    """
    return " ".join(raw.split()).lower()


class AlertRule(models.Model):
    """A rule that watches one figure of the summary (issue 18): below/above a threshold, or a
    significant drop/rise of at least `min_change` against a baseline. Managed over REST
    (`/api/alert-rules/`) and in the admin, written by the services (`alert_rule_*`).

    What a rule may say is defined once in conversations.alert_rules; conversations.alert_evaluation
    judges it every minute and keeps `state` and the times below.
    """

    name = models.CharField(max_length=alert_rules.NAME_MAX_LENGTH)
    metric = models.CharField(
        max_length=64, choices=alert_rules.METRIC_CHOICES, help_text="The figure's path in the summary."
    )
    condition = models.CharField(max_length=10, choices=alert_rules.Condition.choices)
    threshold = models.DecimalField(
        max_digits=alert_rules.NUMBER_MAX_DIGITS,
        decimal_places=alert_rules.NUMBER_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="below/above only: compared strictly, in the metric's unit.",
    )
    min_change = models.DecimalField(
        max_digits=alert_rules.NUMBER_MAX_DIGITS,
        decimal_places=alert_rules.NUMBER_DECIMAL_PLACES,
        null=True,
        blank=True,
        help_text="drop/rise only: points for rates, the unit for means, percent for counts.",
    )
    window_minutes = models.PositiveIntegerField(
        validators=[
            MinValueValidator(alert_rules.WINDOW_MINUTES[0]),
            MaxValueValidator(alert_rules.WINDOW_MINUTES[1]),
        ]
    )
    min_sample_size = models.PositiveIntegerField(
        default=alert_rules.DEFAULT_MIN_SAMPLE_SIZE,
        validators=[MaxValueValidator(alert_rules.MAX_MIN_SAMPLE_SIZE)],
        help_text="Under this many conversations in the window the rule never fires.",
    )
    for_minutes = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(alert_rules.MAX_FOR_MINUTES)]
    )
    renotify_minutes = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(alert_rules.MAX_RENOTIFY_MINUTES)],
        help_text="0: no reminders while firing.",
    )
    delay_minutes = models.PositiveIntegerField(
        default=0, validators=[MaxValueValidator(alert_rules.MAX_DELAY_MINUTES)]
    )
    # Filters: empty means every value; otherwise a label as the conversations store it
    # (channel, bot version: trimmed) or normalized like a topic (topic, escalation reason).
    channel = models.CharField(max_length=LABEL_MAX_LENGTH, blank=True, default="")
    bot_version = models.CharField(max_length=LABEL_MAX_LENGTH, blank=True, default="")
    topic = models.CharField(max_length=TOPIC_MAX_LENGTH, blank=True, default="")
    escalation_reason = models.CharField(max_length=REASON_MAX_LENGTH, blank=True, default="")
    emails = ArrayField(
        models.EmailField(max_length=alert_rules.EMAIL_MAX_LENGTH),
        blank=True,
        default=list,
        size=alert_rules.MAX_EMAILS,
    )
    webhooks = ArrayField(
        # A CharField with the validator, not a URLField: its form field would add a scheme to
        # "hooks.example.com" where the API refuses it.
        models.CharField(
            max_length=alert_rules.URL_MAX_LENGTH,
            validators=[URLValidator(schemes=alert_rules.WEBHOOK_SCHEMES)],
        ),
        blank=True,
        default=list,
        size=alert_rules.MAX_WEBHOOKS,
    )
    # Stored in clear, not hashed: the evaluation must sign each webhook call with it
    # (HMAC-SHA256), so it has to be readable. Made when the rule first gets webhooks and shown
    # once, in the answer of the request that made it.
    webhook_secret = models.CharField(max_length=64, blank=True, default="")
    enabled = models.BooleanField(default=True)
    state = models.CharField(
        max_length=10, choices=alert_rules.AlertState.choices, default=alert_rules.AlertState.OK
    )
    state_changed_at = models.DateTimeField(null=True, blank=True)
    # Since when the condition has held without a break (for_minutes counts from here); None
    # while it does not hold. Kept by the evaluation, cleared by an edit.
    condition_since = models.DateTimeField(null=True, blank=True)
    # The last notification of this firing (renotify_minutes counts from here).
    last_notified_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Uses index: the dashboard's banner (the firing rules), on every dashboard page.
            models.Index(fields=["state"], name="alert_rule_firing_idx", condition=Q(state="firing")),
        ]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="alert_rule_name_not_empty"),
            models.CheckConstraint(
                condition=Q(metric__in=list(alert_rules.ALERT_METRICS)), name="alert_rule_metric_valid"
            ),
            models.CheckConstraint(
                condition=Q(condition__in=alert_rules.Condition.values), name="alert_rule_condition_valid"
            ),
            models.CheckConstraint(
                condition=alert_rules.threshold_check(), name="alert_rule_threshold_or_min_change"
            ),
            models.CheckConstraint(
                condition=Q(window_minutes__range=alert_rules.WINDOW_MINUTES),
                name="alert_rule_window_minutes_range",
            ),
            models.CheckConstraint(
                condition=Q(for_minutes__lte=alert_rules.MAX_FOR_MINUTES)
                & Q(renotify_minutes__lte=alert_rules.MAX_RENOTIFY_MINUTES)
                & Q(delay_minutes__lte=alert_rules.MAX_DELAY_MINUTES)
                & Q(min_sample_size__lte=alert_rules.MAX_MIN_SAMPLE_SIZE),
                name="alert_rule_durations_range",
            ),
            models.CheckConstraint(
                condition=Q(state__in=alert_rules.AlertState.values), name="alert_rule_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        errors = alert_rules.condition_errors(
            metric=self.metric, condition=self.condition, threshold=self.threshold, min_change=self.min_change
        )
        if errors:
            raise ValidationError(errors)


class AlertEvent(models.Model):
    """One notification of a rule (issue 18): it started firing, it resolved, or a reminder
    that it still fires (`renotify_minutes`). Kept for good, like an audit log: the admin shows
    them and the digests list those of their period. Its id is the webhook's `event_id`, one
    per event, so that a receiver can drop a retried duplicate.

    The rule's name, metric and filters are copied in: an event still reads right after its rule
    was edited or deleted.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    rule = models.ForeignKey(AlertRule, on_delete=models.SET_NULL, null=True, related_name="events")
    rule_name = models.CharField(max_length=alert_rules.NAME_MAX_LENGTH)
    at = models.DateTimeField(help_text="When the evaluation saw it.")
    state = models.CharField(max_length=10, choices=alert_rules.EventState.choices)
    reminder = models.BooleanField(default=False, help_text="Still firing, renotify_minutes later.")
    metric = models.CharField(max_length=64)
    condition = models.CharField(max_length=10, choices=alert_rules.Condition.choices)
    value = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    threshold = models.DecimalField(
        max_digits=alert_rules.NUMBER_MAX_DIGITS,
        decimal_places=alert_rules.NUMBER_DECIMAL_PLACES,
        null=True,
        blank=True,
    )
    min_change = models.DecimalField(
        max_digits=alert_rules.NUMBER_MAX_DIGITS,
        decimal_places=alert_rules.NUMBER_DECIMAL_PLACES,
        null=True,
        blank=True,
    )
    # drop/rise: the baseline's value (the same window 1 to 4 weeks earlier, pooled), how many
    # weeks it pooled, the change against it and the one-sided test's p-value.
    baseline = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    baseline_weeks = models.PositiveSmallIntegerField(null=True, blank=True)
    change = models.DecimalField(max_digits=20, decimal_places=2, null=True, blank=True)
    p_value = models.FloatField(null=True, blank=True)
    sample_size = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    filters = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at"]
        indexes = [
            # Uses index: the digests' alerts of a period, the admin's list (newest first).
            models.Index(fields=["at"], name="alert_event_at_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(state__in=alert_rules.EventState.values), name="alert_event_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.rule_name}: {self.state} at {self.at:%Y-%m-%d %H:%M} UTC"


class AlertDelivery(models.Model):
    """One notification of an event to one recipient (an email address or a webhook URL): an
    outbox row, written with the event in the evaluation's transaction and sent after it, so
    that a slow or dead receiver never holds up the evaluation, and a failure is recorded.

    A webhook's body and signature are fixed when the row is written: a retry sends the same
    bytes, and a rule deleted meanwhile (its secret with it) does not stop the delivery.
    """

    event = models.ForeignKey(AlertEvent, on_delete=models.CASCADE, related_name="deliveries")
    kind = models.CharField(max_length=10, choices=alert_rules.DeliveryKind.choices)
    target = models.CharField(max_length=alert_rules.URL_MAX_LENGTH)
    body = models.TextField(blank=True, default="", help_text="Webhooks: the JSON body as sent.")
    signature = models.CharField(max_length=80, blank=True, default="")
    status = models.CharField(
        max_length=10, choices=alert_rules.DeliveryStatus.choices, default=alert_rules.DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # A sender holds the row until then (a lease): another evaluator leaves it alone, and a
    # sender that died lets it go.
    claimed_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # Uses index: the pass's claim of the deliveries still to send.
            models.Index(fields=["id"], name="alert_delivery_pending_idx", condition=Q(status="pending")),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=alert_rules.DeliveryKind.values), name="alert_delivery_kind_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=alert_rules.DeliveryStatus.values), name="alert_delivery_status_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.target}: {self.status}"


class DigestFrequency(models.TextChoices):
    DAILY = "daily", "daily (the day before)"
    WEEKLY = "weekly", "weekly (the week before, Monday to Sunday)"


class DigestSubscription(models.Model):
    """Someone who gets the digest email (issue 18): the day's or the week's figures, changes,
    topics, knowledge gaps and alerts, kept by staff in the admin (conversations.digests)."""

    email = models.EmailField()
    frequency = models.CharField(max_length=10, choices=DigestFrequency.choices)
    active = models.BooleanField(default=True, help_text="Inactive: kept, but sent nothing.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["email", "frequency"]
        # No index for the send's "active subscriptions of a frequency": a table of a few
        # dozen rows is read whole.
        constraints = [
            # Lead@Example.com and lead@example.com are one inbox: two rows would send it twice.
            models.UniqueConstraint(
                Lower("email"),
                "frequency",
                name="digest_subscription_email_frequency_unique",
                violation_error_message="This address already gets this digest.",
            ),
            models.CheckConstraint(
                condition=Q(frequency__in=DigestFrequency.values), name="digest_subscription_frequency_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.frequency})"


class DigestSent(models.Model):
    """A digest sent: one row per subscription and period, written in the transaction that sends
    it (conversations.digests), so that a second run, or one running at the same moment, sends
    nothing more, and a failed send leaves no row (a later run tries again)."""

    # Uses index: digest_sent_once_per_period (its first column) for the subscription's rows.
    subscription = models.ForeignKey(
        DigestSubscription, on_delete=models.CASCADE, related_name="sent", db_index=False
    )
    period_start = models.DateField(help_text="The first day of the period covered (ANALYTICS_TIME_ZONE).")
    sent_at = models.DateTimeField()

    class Meta:
        ordering = ["-period_start", "subscription_id"]
        verbose_name = "digest sent"
        verbose_name_plural = "digests sent"
        constraints = [
            models.UniqueConstraint(
                fields=["subscription", "period_start"], name="digest_sent_once_per_period"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription} for {self.period_start:%Y-%m-%d}"
