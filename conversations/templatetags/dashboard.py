from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

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


# The shapes and data tables of a chart are many small elements; built here with
# format_html (every label escaped) they render in a fraction of a template loop's time.


@register.simple_tag
def chart_shapes(chart) -> SafeString:
    right = chart.width - 12
    parts = [
        format_html_join(
            "",
            '<line class="grid" x1="48" x2="{}" y1="{}" y2="{}"/>',
            ((right, y, y) for y in chart.gridlines),
        ),
        format_html_join(
            "",
            '<rect class="{}" x="{}" y="{}" width="{}" height="{}"><title>{}</title></rect>',
            ((r.css_class, r.x, r.y, r.width, r.height, r.label) for r in chart.rects),
        ),
        format_html_join("", '<path class="{}" d="{}"/>', ((p.css_class, p.d) for p in chart.paths)),
        format_html_join(
            "",
            '<circle class="{}" cx="{}" cy="{}" r="2.5"><title>{}</title></circle>',
            ((d.css_class, d.x, d.y, d.label) for d in chart.dots),
        ),
        format_html_join(
            "",
            '<text class="{}" x="{}" y="{}" text-anchor="{}">{}</text>',
            ((t.css_class, t.x, t.y, t.anchor, t.text) for t in chart.texts),
        ),
    ]
    return format_html("{}" * len(parts), *parts)


@register.simple_tag
def chart_table_rows(chart) -> SafeString:
    return format_html_join(
        "",
        "<tr>{}</tr>",
        (
            (
                format_html(
                    '<th scope="row">{}</th>{}',
                    row[0],
                    format_html_join("", "<td>{}</td>", ((cell,) for cell in row[1:])),
                ),
            )
            for row in chart.table_rows
        ),
    )
