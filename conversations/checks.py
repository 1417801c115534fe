"""System checks (`manage.py check`, and before every command that serves or migrates)."""

from __future__ import annotations

from django.core import checks


@checks.register()
def figures_travel_with_rollup_changes(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Every Conversation column a figure reads must also be a RollupDelta column: a single
    write's rollup changes wait there until folded (conversations.rollups)."""
    from conversations.analytics import figures
    from conversations.models import RollupDelta

    stored = {field.column for field in RollupDelta._meta.concrete_fields}
    return [
        checks.Error(
            f"RollupDelta has no column {column!r}, which a figure reads.",
            hint="Add the field to RollupDelta (as on Conversation, nullable) with the figure's migration.",
            obj=RollupDelta,
            id="conversations.E001",
        )
        for column in figures.change_columns()
        if column not in stored
    ]
