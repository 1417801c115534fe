"""How numbers read on the dashboard. The CSV exports carry the same (rounded) values."""

from __future__ import annotations

import inspect
import re
from decimal import Decimal

from conversations.analytics.metrics import Unit

CURRENCY_SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "INR": "₹"}
DASH = "—"


def number(value: int | Decimal | float | None, places: int = 0) -> str:
    if value is None:
        return DASH
    return f"{value:,.{places}f}"


def rate(value: Decimal | None) -> str:
    """A percentage with one decimal: 62.5 -> "62.5%"."""
    return DASH if value is None else f"{value:.1f}%"


def money(value: Decimal | None, currency: str) -> str:
    if value is None:
        return DASH
    symbol = CURRENCY_SYMBOLS.get(currency)
    sign = "−" if value < 0 else ""
    amount = f"{abs(value):,.2f}"
    return f"{sign}{symbol}{amount}" if symbol else f"{sign}{amount} {currency}"


def milliseconds(value: Decimal | None) -> str:
    if value is None:
        return DASH
    return f"{value / 1000:,.2f} s" if value >= 1000 else f"{value:,.0f} ms"


def in_unit(value: int | Decimal | None, unit: Unit) -> str:
    """A metric's value as the dashboard writes its unit: "52.3%", "1,204", "3.75", "812 ms"."""
    if unit is Unit.PERCENT:
        return rate(value)
    if unit is Unit.MILLISECONDS:
        return milliseconds(value)
    return number(value, unit.decimal_places)


def signed(value: Decimal | float, unit: str = "", places: int = 1) -> str:
    """+3.2 pp / −12.0% (a real minus sign, so it is not read as a hyphen)."""
    sign = "+" if value > 0 else "−" if value < 0 else "±"
    return f"{sign}{abs(value):,.{places}f}{unit}"


def p_value(value: float | None, name: str = "p") -> str:
    """A p-value (or q-value) as the page writes it: "p = 0.031", "p = 0.00012", "p < 0.0001"."""
    if value is None:
        return "no test possible"
    if value < 0.0001:
        return f"{name} < 0.0001"
    shown = f"{value:.2g}" if value < 0.01 else f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{name} = {shown}"


def honest_rates_missing(totals) -> tuple[str, str]:
    """Why the outcome rates and the durable resolution rate of a Totals have no figure, as
    sentences ("" where they have one): (outcomes, durable). The dashboard and the digests."""
    no_outcomes = "" if totals.outcomes_reported else "No outcomes reported"
    if not totals.with_customer_id:
        not_durable = "No customer ids sent"
    elif not totals.settled:
        days = totals.repeat_contact_window_days
        not_durable = f"Nothing settled yet: no conversation here ended {days} or more days ago"
    else:
        not_durable = ""
    return no_outcomes, not_durable


def doc_paragraphs(doc: str) -> list[list[tuple[str, bool]]]:
    """A metric's documentation (metrics.METRICS[name].doc) for the page: its paragraphs, each
    as (text, is_code) parts, `code` being what the docs write between backticks (a field name,
    an outcome). The template escapes every part."""
    paragraphs = []
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        parts = re.split(r"`([^`]*)`", " ".join(paragraph.split()))
        paragraphs.append([(part, index % 2 == 1) for index, part in enumerate(parts) if part])
    return [paragraph for paragraph in paragraphs if paragraph]
