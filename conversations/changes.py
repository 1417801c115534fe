"""How a change reads on the page: coloured news only when its test says it is significant."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from conversations import formatting
from conversations.analytics import selectors


@dataclass(frozen=True)
class Delta:
    """A figure's change against the previous period as the page shows it: coloured (▲ good
    news in blue, ▼ bad news in orange) only when the change is significant (p < 0.05);
    otherwise grey, "no significant change", with the p-value on hover."""

    text: str  # "+3.1 pp", "−12.0%", "no comparison"
    # "good", "bad", "changed" (significant, neither good nor bad: volume), "flat" (not
    # significant), "untested" (p95 and money have no test) or "none" (nothing to compare)
    trend: str
    arrow: str = ""  # ▲ or ▼ for a significant change
    verdict: str = ""  # what screen readers hear before the text: "better", "no significant change"
    hover: str = ""  # the p-value and the interval of the difference

    @property
    def significant(self) -> bool:
        return self.trend in ("good", "bad", "changed")


NO_TEST = "Not tested: p95 response times and money have no significance test"


def judged(text: str, test: dict, *, higher_is: str, unit: str = "") -> Delta:
    """A change with its test (a `changes` entry): news only when `significant`, its direction
    from the test's own difference (a rounded 0.0 may still be significant). A topic's entry
    carries its q-value (adjusted across the topics), which is what `significant` follows."""
    if test["p_value"] is None:
        hover = "No test possible here: too few values, or none that differ"
        return Delta(text, "flat", verdict="no significant change", hover=hover)
    tested = formatting.p_value(test["p_value"])
    if test.get("q_value") is not None:
        tested += f"; adjusted across the topics, {formatting.p_value(test['q_value'], 'q')}"
    found = test.get("difference", test.get("relative_change"))
    if not test["significant"] or not found:
        return Delta(text, "flat", verdict="no significant change", hover=f"No significant change ({tested})")
    hover = f"Significant change ({tested})"
    if test.get("difference_ci95"):
        low, high = (formatting.signed(bound, unit) for bound in test["difference_ci95"])
        hover += f"; 95% interval of the difference: {low} to {high}"
    arrow = "▲" if found > 0 else "▼"
    if higher_is == "neutral":
        return Delta(text, "changed", arrow, "up" if found > 0 else "down", hover)
    good = (found > 0) == (higher_is == "good")
    return Delta(text, "good" if good else "bad", arrow, "better" if good else "worse", hover)


def change_delta(
    current: int | Decimal | None,
    previous: int | Decimal | None,
    *,
    kind: str,
    higher_is: str,
    currency: str = "",
    test: dict | None,
) -> Delta:
    """The change against the previous period (selectors.change) and, from `test` (its entry in
    Dashboard.changes or a comparison's changes, None for a figure without a test), whether it
    is news. The dashboard's cards and the digests.

    kind: "relative" (% change, for counts and times), "points" (percentage points, for
    rates), "money" or "absolute".
    """
    if current is None or previous is None:
        return Delta("no comparison", "none")
    if kind == "relative":
        found = selectors.change(current, previous, relative=True)
        if found is None:  # nothing before
            return Delta("new" if current else "±0", "none")
        text = formatting.signed(found, "%")
    else:
        found = selectors.change(current, previous, relative=False)
        if kind == "money":
            text = ("+" if found > 0 else "±" if found == 0 else "") + formatting.money(found, currency)
        else:
            text = formatting.signed(found, " pp" if kind == "points" else "")
    if test is None:
        return Delta(text, "untested", verdict="not tested", hover=NO_TEST)
    return judged(text, test, higher_is=higher_is, unit=" pp" if kind == "points" else "")
