import html

from django import template
from django.utils.safestring import SafeString, mark_safe

from conversations import formatting

register = template.Library()

register.filter("rate", formatting.rate)
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
# marked safe once. format_html per element cost more than the rest of the page together.


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
