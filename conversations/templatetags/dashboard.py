from django import template

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
