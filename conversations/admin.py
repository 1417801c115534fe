from django.contrib import admin
from django.db.models import Count, Prefetch
from django.shortcuts import redirect
from rest_framework_api_key.admin import APIKeyModelAdmin

from conversations import services
from conversations.models import ApiKey, Conversation, CostSettings, Topic


class ConversationTopicInline(admin.TabularInline):
    model = Conversation.topics.through
    extra = 0
    verbose_name = "topic"
    verbose_name_plural = "topics"

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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
        ("topics", admin.RelatedOnlyFieldListFilter),
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
    exclude = ["topics"]
    inlines = [ConversationTopicInline]

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
        # One extra query for all topics of the page, not one per row.
        return (
            super()
            .get_queryset(request)
            .prefetch_related(Prefetch("topics", queryset=Topic.objects.only("name").order_by("name")))
        )

    @admin.display(description="topics")
    def topic_names(self, conversation: Conversation) -> str:
        return ", ".join(topic.name for topic in conversation.topics.all())


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
        # Its conversations' links and its rollups hang on it: deleting would rewrite history.
        return False

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(conversation_count=Count("conversationtopic"))

    @admin.display(description="conversations", ordering="conversation_count")
    def conversation_count(self, topic: Topic) -> int:
        return topic.conversation_count


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
