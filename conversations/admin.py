from django.contrib import admin
from django.contrib.admin.options import IncorrectLookupParameters
from django.db.models import BigIntegerField
from django.db.models.expressions import RawSQL
from django.shortcuts import redirect
from rest_framework_api_key.admin import APIKeyModelAdmin
from rest_framework_api_key.models import APIKey

from conversations import rollups, services
from conversations.models import ApiKey, Conversation, CostSettings, Span, Topic


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


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = [
        "timestamp",
        "session_id",
        "resolved_by_ai",
        "csat",
        "turns",
        "topic_names",
        "channel",
    ]
    list_display_links = ["timestamp", "session_id"]
    list_filter = [
        "resolved_by_ai",
        "csat",
        "channel",
        "bot_version",
        TopicFilter,
        "timestamp",
    ]
    # "=" is an exact match: it uses the unique index on session_id, where icontains
    # would scan the table.
    search_fields = ["=session_id"]
    search_help_text = "Exact session id"
    date_hierarchy = None  # its year/month queries scan the table; the date filter does the job
    ordering = ["-timestamp"]
    list_per_page = 50
    show_full_result_count = False
    exclude = ["topic_ids"]
    readonly_fields = ["topic_names"]

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
            " AND r.channel IS NULL AND r.bot_version IS NULL",
            [Span.DAY.value],
            output_field=BigIntegerField(),
        )
        return super().get_queryset(request).annotate(conversation_count=total)

    @admin.display(description="conversations", ordering="conversation_count")
    def conversation_count(self, topic: Topic) -> int:
        return topic.conversation_count


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
