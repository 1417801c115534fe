from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db import connection
from django.db.models import BigIntegerField, Max
from django.db.models.expressions import RawSQL
from django.http import HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from conversations import alerts, customers, rollups, services
from conversations.models import (
    CUSTOMER_ID_MAX_LENGTH,
    AlertDelivery,
    AlertEvent,
    AlertRule,
    Annotation,
    ApiKey,
    Conversation,
    CostSettings,
    DigestSent,
    DigestSubscription,
    Span,
    Topic,
)


class TopicFilter(admin.SimpleListFilter):
    """Conversations with a topic (`?topic=<id>`: the dashboard's topic rows link here)."""

    title = "topic"
    parameter_name = "topic"

    def lookups(self, request, model_admin):
        return Topic.objects.values_list("id", "name")

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        # ASCII digits only (str.isdigit() also takes "²", which int() refuses), and within
        # bigint (a longer number fails in PostgreSQL): else the admin's "bad lookup" page.
        value = self.value()
        if not (value.isascii() and value.isdigit() and 0 < int(value) < 2**63):
            raise IncorrectLookupParameters(f"Not a topic id: {value!r}")
        # Uses index: conversation_topic_ids_idx (GIN, `@>`).
        return queryset.filter(topic_ids__contains=[int(value)])


class EscalationReasonFilter(admin.SimpleListFilter):
    """Conversations escalated for a reason (`?escalation_reason=<name>`)."""

    title = "escalation reason"
    parameter_name = "escalation_reason"

    def lookups(self, request, model_admin):
        # The reasons of the daily rollup rows, unfolded deltas included (one row per day and
        # reason, not a scan of the conversations); and the one asked for, so that it applies.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT DISTINCT r.escalation_reason FROM {rollups.LIVE_CONVERSATION_ROLLUPS} r"
                " WHERE r.span = %s AND r.channel IS NULL AND r.escalation_reason IS NOT NULL",
                [Span.DAY.value],
            )
            reasons = {reason for (reason,) in cursor.fetchall()}
        if self.value():
            reasons.add(self.value())
        return [(reason, reason) for reason in sorted(reasons)]

    def queryset(self, request, queryset):
        return queryset if self.value() is None else queryset.filter(escalation_reason=self.value())


class CustomerFilter(admin.SimpleListFilter):
    """With or without a customer id; `?customer=<hash in hex>`: one customer's conversations
    (what a search for a customer id leads to: the page never shows the id itself)."""

    title = "customer id"
    parameter_name = "customer"

    def lookups(self, request, model_admin):
        return [("yes", "With a customer id"), ("no", "Without")]

    def queryset(self, request, queryset):
        value = self.value()
        if value is None:
            return queryset
        if value in ("yes", "no"):
            return queryset.filter(customer_hash__isnull=value == "no")
        try:
            hashed = bytes.fromhex(value)
        except ValueError:
            raise IncorrectLookupParameters("Not a customer.") from None
        # Uses index: conversation_customer_idx (customer_hash, timestamp).
        return queryset.filter(customer_hash=hashed)


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "timestamp",
        "session_id",
        "resolved_by_ai",
        "outcome",
        "csat",
        "turns",
        "topic_names",
        "channel",
        "customer",
    ]
    list_display_links = ["timestamp", "session_id"]
    list_filter = [
        "resolved_by_ai",
        "outcome",
        EscalationReasonFilter,
        CustomerFilter,
        "followed_up",
        "csat",
        "channel",
        "bot_version",
        TopicFilter,
        "timestamp",
    ]
    # "=" is an exact match: it uses the unique index on session_id, where icontains
    # would scan the table. A customer id is hashed first (`changelist_view`).
    search_fields = ["=session_id"]
    search_help_text = "Exact session id, or a customer id (hashed before the lookup, never shown)"
    date_hierarchy = None  # its year/month queries scan the table; the date filter does the job
    ordering = ["-timestamp"]
    list_per_page = 50
    show_full_result_count = False
    exclude = ["topic_ids"]
    readonly_fields = ["topic_names", "customer", "followed_up"]

    def changelist_view(self, request, extra_context=None):
        # A search for a customer id becomes that customer's filter: the id is hashed here and
        # leaves the URL, so no page shows it (nor the search box echoes it back).
        term = request.GET.get("q", "").strip()
        if term and len(term) <= CUSTOMER_ID_MAX_LENGTH and "\x00" not in term:
            hashed = customers.customer_hash(term)
            # Uses index: conversation_customer_idx.
            if Conversation.objects.filter(customer_hash=hashed).exists():
                query = request.GET.copy()
                del query["q"]
                query[CustomerFilter.parameter_name] = hashed.hex()
                return HttpResponseRedirect(f"{request.path}?{query.urlencode()}")
        return super().changelist_view(request, extra_context)

    # Conversations are the bot's record: admins browse, search and delete them, but every
    # change goes through the services, which keep the rollups (and so every number) right.
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj: Conversation) -> None:
        services.conversations_delete(session_ids=[obj.session_id])

    def delete_queryset(self, request, queryset) -> None:
        services.conversations_delete(session_ids=list(queryset.values_list("session_id", flat=True)))

    def get_queryset(self, request):
        # The topic names come with the rows (a subquery per row of the page).
        return super().get_queryset(request).with_topic_names()

    @admin.display(description="topics")
    def topic_names(self, conversation: Conversation) -> str:
        return ", ".join(conversation.topic_names)

    @admin.display(description="customer")
    def customer(self, conversation: Conversation) -> str:
        """The first characters of the customer id's keyed hash: enough to tell customers
        apart on the page; the id itself is never stored."""
        if conversation.customer_hash is None:
            return ""
        changelist = reverse("admin:conversations_conversation_changelist")
        hashed = bytes(conversation.customer_hash).hex()
        return format_html('<a href="{}?customer={}">{}</a>', changelist, hashed, customers.short(hashed))


@admin.register(Topic)
class TopicAdmin(admin.ModelAdmin):
    list_display = ["name", "conversation_count", "created_at"]
    search_fields = ["name"]
    ordering = ["name"]
    # Topics come from the bot, normalized on the way in; a name typed here would skip that
    # (a "Billing" beside "billing" that no topic filter could match).
    readonly_fields = ["name", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        # Conversations name it by id and its rollups hang on it: deleting would rewrite history.
        return False

    def get_queryset(self, request):
        # The stored conversations with the topic: the sum of its daily rollup rows over all
        # channels and versions, unfolded deltas included (rollups.LIVE_TOPIC_ROLLUPS, as the
        # selectors read them), which equals a count of the raw rows (the rollups are kept
        # exact) at the cost of one row per day, not one per conversation.
        # Uses index: topic_rollup_topic_idx (topic, span, start).
        total = RawSQL(
            f"SELECT coalesce(sum(r.conversations), 0) FROM {rollups.LIVE_TOPIC_ROLLUPS} r"
            f" WHERE r.topic_id = {Topic._meta.db_table}.id AND r.span = %s"
            " AND r.channel IS NULL AND r.bot_version IS NULL AND r.escalation_reason IS NULL",
            [Span.DAY.value],
            output_field=BigIntegerField(),
        )
        return super().get_queryset(request).annotate(conversation_count=total)

    @admin.display(description="conversations", ordering="conversation_count")
    def conversation_count(self, topic: Topic) -> int:
        return topic.conversation_count


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    """Staff add and edit annotations here; the release hook posts them, and a new bot version
    makes its own (models.BotVersion: one deleted here does not come back)."""

    list_display = ["timestamp", "title", "kind", "channel", "bot_version", "external_id"]
    list_display_links = ["timestamp", "title"]
    list_filter = ["kind"]
    search_fields = ["title", "bot_version", "external_id"]
    search_help_text = "Title, bot version or external id (any part of it)"
    # Annotations are few (releases, incidents): the year/month queries are cheap here.
    date_hierarchy = "timestamp"
    ordering = ["-timestamp", "-id"]
    readonly_fields = ["created_at"]

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "external_id":
            kwargs["strip"] = False  # an opaque id, kept as sent (as the API keeps it)
        return super().formfield_for_dbfield(db_field, request, **kwargs)


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    """Staff manage alert rules here as over the API: saves go through the same services
    (filters normalized, a webhook secret made, a change resets the state to ok)."""

    list_display = ["name", "metric", "condition", "enabled", "state", "state_changed_at"]
    list_filter = ["enabled", "state", "metric", "condition"]
    search_fields = ["name"]
    search_help_text = "Name (any part of it)"
    ordering = ["id"]
    exclude = ["webhook_secret"]
    readonly_fields = [
        "webhook_secret_hint",
        "state",
        "state_changed_at",
        "condition_since",
        "last_notified_at",
        "last_evaluated_at",
        "created_at",
        "updated_at",
    ]

    @admin.display(description="webhook secret")
    def webhook_secret_hint(self, rule: AlertRule) -> str:
        # Its start only, to tell secrets apart: the whole secret is shown once, in the API's
        # answer that made it, and the admin's pages are no place to copy it from.
        return f"{rule.webhook_secret[:6]}…" if rule.webhook_secret else "-"

    def save_model(self, request, obj: AlertRule, form, change: bool) -> None:
        values = {name: getattr(obj, name) for name in alerts.EDITABLE_FIELDS}
        if change:
            saved = alerts.alert_rule_update(rule_id=obj.pk, values=values)
        else:
            saved = alerts.alert_rule_create(values=values)
        obj.pk = saved.rule.pk
        obj.webhook_secret, obj.state, obj.state_changed_at = (
            saved.rule.webhook_secret,
            saved.rule.state,
            saved.rule.state_changed_at,
        )


# The package's own admin registers its APIKey model, whose table nothing uses (our keys are
# ApiKey): without this the admin index lists "API keys" twice. The app stays installed, as
# AbstractAPIKey's module defines that model.
admin.site.unregister(APIKey)


@admin.register(ApiKey)
class ApiKeyAdmin(APIKeyModelAdmin):
    list_display = [*APIKeyModelAdmin.list_display, "scope"]
    list_filter = [*APIKeyModelAdmin.list_filter, "scope"]


@admin.register(CostSettings)
class CostSettingsAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "human_cost_per_conversation",
        "ai_cost_per_conversation",
        "currency",
        "updated_at",
    ]

    def has_add_permission(self, request) -> bool:
        return not CostSettings.objects.exists()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def changelist_view(self, request, extra_context=None):
        # There is exactly one row: open it directly.
        settings = CostSettings.load()
        return redirect("admin:conversations_costsettings_change", settings.pk)


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    fields = ["kind", "target", "status", "attempts", "last_error", "delivered_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    """Every notification of every rule, read-only: what the evaluation saw and whom it told."""

    list_display = [
        "at",
        "rule_name",
        "state",
        "reminder",
        "metric",
        "value",
        "threshold",
        "baseline",
        "sample_size",
    ]
    list_filter = ["state", "reminder", "metric"]
    search_fields = ["rule_name"]
    search_help_text = "Rule name (any part of it)"
    date_hierarchy = "at"
    inlines = [AlertDeliveryInline]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in AlertEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DigestSubscription)
class DigestSubscriptionAdmin(admin.ModelAdmin):
    """Who gets the daily or weekly digest (conversations.digests); each row links to the
    digests it was sent."""

    list_display = ["email", "frequency", "active", "last_period_sent", "created_at"]
    list_filter = ["frequency", "active"]
    search_fields = ["email"]
    search_help_text = "Email address (any part of it)"
    readonly_fields = ["created_at", "digests_sent"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(last_period=Max("sent__period_start"))

    @admin.display(description="last period sent", ordering="last_period")
    def last_period_sent(self, subscription: DigestSubscription):
        return subscription.last_period or "-"

    @admin.display(description="digests sent")
    def digests_sent(self, subscription: DigestSubscription) -> str:
        if subscription.pk is None:
            return "-"
        url = reverse("admin:conversations_digestsent_changelist")
        count = subscription.sent.count()
        return format_html('<a href="{}?subscription__id__exact={}">{} sent</a>', url, subscription.pk, count)


@admin.register(DigestSent)
class DigestSentAdmin(admin.ModelAdmin):
    """Every digest sent, read-only: one row per subscription and period (a failed send leaves
    none, so that a later run sends it)."""

    list_display = ["period_start", "subscription", "frequency", "sent_at"]
    list_filter = ["subscription__frequency", "subscription"]
    list_select_related = ["subscription"]
    search_fields = ["subscription__email"]
    search_help_text = "Email address (any part of it)"
    date_hierarchy = "period_start"

    @admin.display(description="frequency", ordering="subscription__frequency")
    def frequency(self, sent: DigestSent) -> str:
        return sent.subscription.frequency

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in DigestSent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
