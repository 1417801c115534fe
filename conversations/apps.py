from django.apps import AppConfig
from django.core.signals import request_finished
from django.db.backends.signals import connection_created

# Per-connection PostgreSQL settings (see `_configure_session`).
SESSION_SETTINGS = {
    "jit": "off",
    "plan_cache_mode": "force_generic_plan",
    "max_parallel_workers_per_gather": "0",
}


def _configure_session(sender, connection, **kwargs) -> None:
    """Settings for every new connection, for statements that run in milliseconds.

    JIT off: the planner cannot see how many rows an `unnest()` of a parameter array gives,
    over-estimates, and then spends far longer compiling a statement than running it
    (docs/benchmarks.md, "JIT off").

    Generic plans for prepared statements: the only ones are the ingestion statements of
    conversations.services (Django's own queries are never prepared). PostgreSQL would
    otherwise plan them afresh on every run (its generic plan's estimate for an `unnest()`
    of ten rows looks dearer than a custom plan for one), and planning them costs more than
    running them for one conversation.

    No parallel workers: starting them cost more than a read of the rollups itself
    (docs/benchmarks.md, "Parallel Append").

    A SET here rather than startup `options=-c ...`: connection poolers such as PgBouncer
    refuse startup options.
    """
    if connection.vendor == "postgresql":
        calls = ", ".join(["set_config(%s, %s, false)"] * len(SESSION_SETTINGS))
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT {calls}", [part for item in SESSION_SETTINGS.items() for part in item])


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"
    verbose_name = "Support conversations"

    def ready(self) -> None:
        connection_created.connect(_configure_session, dispatch_uid="conversations.configure_session")
        from conversations import checks, rollups, schema  # noqa: F401 - checks and schema register themselves

        # Small writes' rollup changes are folded in after responses (RollupDelta).
        request_finished.connect(rollups.fold_if_due, dispatch_uid="conversations.fold_rollup_deltas")
