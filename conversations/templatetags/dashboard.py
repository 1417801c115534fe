import html

from django import template
from django.utils.safestring import SafeString, mark_safe

from conversations import charts, formatting
from conversations.forms import TOPIC_SORTS

register = template.Library()

register.filter("rate", formatting.rate)

MARKER_TOP = 8  # an annotation marker's numbered circle, at the top of the plot
register.filter("milliseconds", formatting.milliseconds)


@register.filter
def number(value, places=0):
    return formatting.number(value, int(places))


@register.filter
def money(value, currency="USD"):
    return formatting.money(value, currency)


@register.filter
def get_item(mapping, key):
    return mapping.get(key, "")


@register.filter
def signed_percent(value):
    return formatting.DASH if value is None else formatting.signed(value, "%")


@register.filter
def signed_points(value):
    return formatting.DASH if value is None else formatting.signed(value, " pp")


# The shapes and data tables of a chart are many small elements (hundreds for 90 days): built
# here as plain strings, every value escaped with html.escape (what Django's escape does), and
# marked safe once: format_html per element was the slowest part of the page
# (docs/benchmarks.md, "Dashboard HTML as strings").


def _elements(template: str, rows) -> str:
    return "".join(template.format(*map(_escape, row)) for row in rows)


def _escape(value) -> str:
    return html.escape(str(value))


@register.simple_tag
def chart_shapes(chart) -> SafeString:
    right = chart.width - 12
    return mark_safe(  # every value escaped
        _elements(
            '<line class="grid" x1="48" x2="{}" y1="{}" y2="{}"/>', ((right, y, y) for y in chart.gridlines)
        )
        + _elements(
            '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
            ((r.css_class, r.x, r.y, r.width, r.height, r.label) for r in chart.rects),
        )
        + _elements('<path class="{}" d="{}"/>', ((p.css_class, p.d) for p in chart.paths))
        + _elements(
            '<circle class="{}" cx="{}" cy="{}" r="2.5"><title>{}</title></circle>',
            ((d.css_class, d.x, d.y, d.label) for d in chart.dots),
        )
        + _elements(
            '<text class="{}" x="{}" y="{}" text-anchor="{}">{}</text>',
            ((t.css_class, t.x, t.y, t.anchor, t.text) for t in chart.texts),
        )
        + _elements(
            '<a class="marker" href="{}" data-annotation="{}"><title>{}</title>'
            '<line x1="{}" x2="{}" y1="{}" y2="{}"/><circle cx="{}" cy="{}" r="7"/>'
            '<text x="{}" y="{}" text-anchor="middle">{}</text></a>',
            (
                (
                    m.url,
                    m.number,
                    m.label,
                    m.x,
                    m.x,
                    MARKER_TOP + 8,
                    charts.HEIGHT - charts.BOTTOM,
                    m.x,
                    MARKER_TOP,
                    m.x,
                    MARKER_TOP + 3.5,
                    m.number,
                )
                for m in chart.markers
            ),
        )
    )


@register.simple_tag
def chart_table_rows(chart) -> SafeString:
    return mark_safe(  # every cell escaped
        "".join(
            f'<tr><th scope="row">{_escape(row[0])}</th>'
            + "".join(f"<td>{_escape(cell)}</td>" for cell in row[1:])
            + "</tr>"
            for row in chart.table_rows
        )
    )


@register.simple_tag
def topic_table_rows(rows) -> SafeString:
    """The body of the topics table: one row per topic (views.TopicRow), built as the charts
    are: a template loop was too slow (docs/benchmarks.md, "Dashboard HTML as strings")."""
    if not rows:
        return mark_safe(f'<tr><td colspan="{len(TOPIC_SORTS)}">No topics in this range.</td></tr>')
    return mark_safe("".join(_topic_row(row) for row in rows))  # every value escaped


def _muted_note(text: str) -> str:
    return f' <span class="muted small">({_escape(text)})</span>'


def _repeat_contact_cell(totals) -> str:
    """The topic's repeat-contact rate with the counts it divides (settled conversations only)."""
    if not totals.settled_ai_resolved:
        return f'<td title="No settled AI-resolved conversation with a customer id">{formatting.DASH}</td>'
    title = (
        f"{totals.followed_up:,} of {totals.settled_ai_resolved:,} settled AI-resolved conversations "
        f"followed up within {totals.repeat_contact_window_days} days"
    )
    return (
        f'<td title="{_escape(title)}">{_escape(formatting.rate(totals.repeat_contact_rate))}'
        f"{_muted_note(f'{totals.followed_up:,} of {totals.settled_ai_resolved:,}')}</td>"
    )


def _delta_span(delta, *, note: bool = False, verdict: bool = False) -> str:
    """A change (changes.Delta): coloured with its arrow when significant, else grey; the test
    on hover and for screen readers; `verdict` also shows "no significant change" in words."""
    arrow = f'<span aria-hidden="true">{_escape(delta.arrow)}</span> ' if delta.arrow else ""
    text = f"({delta.text})" if note else delta.text
    said = ""
    if verdict and delta.trend in ("flat", "untested"):
        said = f' <span class="verdict">{_escape(delta.verdict)}</span>'
    spoken = (
        f'<span class="sr-only"> {_escape(delta.verdict)}: {_escape(delta.hover)}</span>'
        if delta.hover
        else ""
    )
    return (
        f' <span class="small trend-{_escape(delta.trend)}" title="{_escape(delta.hover)}" data-significant="'
        f'{"true" if delta.significant else "false"}">{arrow}{_escape(text)}{said}{spoken}</span>'
    )


@register.simple_tag
def delta(change, verdict=False) -> SafeString:
    return mark_safe(_delta_span(change, verdict=verdict))  # every value escaped


def _topic_row(row) -> str:
    topic, trend, totals = row.topic, row.trend, row.topic.totals
    if row.rate_delta is not None:
        rate_change = _delta_span(row.rate_delta, note=True)
    elif trend.rate_change is not None:
        rate_change = _muted_note(formatting.signed(trend.rate_change, " pp"))
    else:
        rate_change = ""
    ratings = _muted_note(str(totals.csat_responses)) if totals.csat_responses else ""
    if trend.change is None:
        change = '<span class="muted">new</span>'
    elif row.change_delta is not None:
        change = _delta_span(row.change_delta)
    else:
        change = _escape(formatting.signed(trend.change, "%"))
    return (
        f'<tr><th scope="row"><a data-drilldown href="{_escape(row.drilldown_url)}">'
        f"{_escape(topic.topic)}</a></th>"
        f"<td>{_escape(formatting.number(totals.conversations))}</td>"
        f"<td>{_escape(formatting.rate(topic.share))}</td>"
        f"<td>{_escape(formatting.rate(totals.ai_resolution_rate))}{rate_change}</td>"
        f"<td>{_escape(formatting.number(totals.escalated))}</td>"
        f"<td>{_escape(formatting.number(totals.avg_csat, 2))}{ratings}</td>"
        f"{_repeat_contact_cell(totals)}"
        f"<td>{change}</td></tr>"
    )
