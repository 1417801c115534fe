from django.apps import AppConfig
from django.db.backends.signals import connection_created


def _configure_session(sender, connection, **kwargs) -> None:
    """Per-connection PostgreSQL settings.

    JIT off: our statements are short (milliseconds), but the planner cannot see how many
    rows an `unnest()` of a parameter array gives, over-estimates, and then spends far longer
    compiling a statement (hundreds of ms for an ingestion batch) than running it. A SET here,
    not a startup `options=-c jit=off`, because connection poolers such as PgBouncer refuse
    startup options.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET jit = off")


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"
    verbose_name = "Support conversations"

    def ready(self) -> None:
        connection_created.connect(_configure_session, dispatch_uid="conversations.configure_session")
