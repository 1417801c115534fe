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


@checks.register()
def figure_names_are_their_own(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """A figure, a cut-off figure and a metric each need a name of their own: Totals has one
    attribute per name, and a figure named like a metric (or a method) would silently replace
    it. A figure's `scale` must fit its column, or each rollup row would round it."""
    from conversations.analytics import figures, metrics

    errors = []
    taken = {name for name, metric in metrics.METRICS.items() if metric.compute is not None}
    taken |= {name for name in dir(metrics._TotalsMethods) if not name.startswith("_")}
    taken |= {figures.HISTOGRAM, "cut_offs"}
    for name in [*figures.NAMES, *(cut_off.name for cut_off in figures.CUTOFFS)]:
        if name in taken:
            errors.append(
                checks.Error(
                    f"The figure name {name!r} is taken by a metric or a method of Totals.",
                    id="conversations.E002",
                )
            )
        taken.add(name)
    for figure in figures.FIGURES:
        places = getattr(figure.column(), "decimal_places", 0) or 0
        if figure.scale is not None and -figure.scale.as_tuple().exponent > places:
            errors.append(
                checks.Error(
                    f"The figure {figure.name!r} is scaled finer than its column keeps.",
                    id="conversations.E003",
                )
            )
    return errors
