"""The digest email's HTML in a real browser: rendered into a file as it is sent, opened in
Debian's Chromium through Playwright at a desktop and a phone width: its key texts are visible,
nothing sticks out at 390 px, it asks for nothing outside itself, and its screenshot is the
README's (docs/digest.png).

Skipped, as tests/test_dashboard_browser.py is, without /usr/bin/chromium or playwright, except
when CI is set: there it fails.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
import time_machine
from django.conf import settings

from conversations import digests, services
from conversations.models import AlertEvent, Outcome
from tests.factories import conversation_in
from tests.test_dashboard_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DESKTOP,
    LAUNCH_TIMEOUT_MS,
    PHONE,
    PNG_SIGNATURE,
    SCREENSHOT_DIR,
    STEP_TIMEOUT_MS,
    require_browser,
    sync_playwright,
)

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips (or fails under CI) and says why
    expect = None

pytestmark = pytest.mark.browser

NOW = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)  # the daily digest of Tuesday 1 December
DAY = date(2026, 12, 1)
README_SCREENSHOT = settings.BASE_DIR / "docs" / "digest.png"
# topic: (conversations the day before, AI-resolved), (conversations on the day, AI-resolved).
# Refund requests and order status resolve far more often on the day; the rest moves by chance.
TOPICS = {
    "refund request": ((40, 10), (60, 50)),
    "billing": ((60, 42), (58, 41)),
    "order status": ((50, 30), (64, 52)),
    "password reset": ((30, 25), (22, 18)),
    "shipping delay": ((20, 9), (28, 12)),
}
ALERTS = [
    (datetime(2026, 12, 1, 9, 12, tzinfo=UTC), "Refund resolution fell", "firing", "31.50"),
    (datetime(2026, 12, 1, 15, 40, tzinfo=UTC), "Refund resolution fell", "resolved", "68.20"),
]


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an asyncio loop running in the test thread (see
    tests/test_dashboard_browser.py): the database fixtures' teardown runs beside it."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


def _store_day(day: date, side: int) -> None:
    items = []
    start = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(minutes=20)
    for topic, days in TOPICS.items():
        count, resolved = days[side]
        for index in range(count):
            ai_resolved = index < resolved
            outcome = (
                (Outcome.CONFIRMED if index % 2 else Outcome.ASSUMED)
                if ai_resolved
                else (Outcome.ESCALATED if index % 4 else Outcome.ABANDONED)
            )
            items.append(
                {
                    "topics": (topic,),
                    "resolved": ai_resolved,
                    "outcome": outcome.value,
                    "escalation_reason": "refund over limit" if outcome == Outcome.ESCALATED else "",
                    # Every third rated, three in five of them 4-5, on both days.
                    "csat": (5 if index % 5 < 3 else 2) if index % 3 == 0 else None,
                    "csat_given": True,
                    "turns": 2 + index % 5,
                }
            )
    minutes = (23 * 60) // len(items)
    services.conversations_ingest(
        items=[
            conversation_in(f"{day}-{index}", start + timedelta(minutes=minutes * index), **fields)
            for index, fields in enumerate(items)
        ]
    )


@pytest.fixture
def digest_file(db, tmp_path):
    """The daily digest of DAY as its HTML part is sent, in a file."""
    _store_day(DAY - timedelta(days=1), 0)
    _store_day(DAY, 1)
    for at, name, state, value in ALERTS:
        AlertEvent.objects.create(
            rule_name=name,
            at=at,
            state=state,
            metric="ai_resolution_rate",
            condition="drop",
            min_change=Decimal("10"),
            value=Decimal(value),
            sample_size=44,
            window_start=at - timedelta(hours=6),
            window_end=at,
        )
    with time_machine.travel(NOW, tick=False):
        covered = digests.covered_period(frequency="daily", now=NOW)
        email = digests.render_digest(digests.digest_contents(digest_period=covered))
    path = tmp_path / "digest.html"
    path.write_text(email.html, encoding="utf-8")
    return path


@pytest.fixture
def chromium():
    if sync_playwright is None:
        require_browser("the playwright package is missing: pip install -r requirements-dev.txt")
    if not CHROMIUM.exists():
        require_browser(f"{CHROMIUM} is missing: `make browser` (as root) installs Debian's chromium")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        try:
            yield browser
        finally:
            browser.close()


def overflowing(page) -> tuple[int, list[str]]:
    """The page's width, and what sticks out of the viewport, when something does."""
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
        "innerWidth + 1).slice(0, 8)"
        ".map(e => `${e.tagName} ${Math.round(e.getBoundingClientRect().right)}`)"
    )
    return page.evaluate("document.documentElement.scrollWidth"), wide


# The file first: its fixture reads the database, which must not happen beside Playwright's loop.
def test_the_digest_email_in_a_browser(digest_file, chromium):
    context = chromium.new_context(viewport=DESKTOP)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    page = context.new_page()
    outside: list[str] = []
    page.on("request", lambda request: outside.append(request.url))
    page.goto(digest_file.as_uri())

    expect(page.locator("h1")).to_have_text("Tue 1 Dec 2026")
    expect(page.locator("[data-kpi]")).to_have_count(8)
    for kpi in ("conversations", "ai_resolution_rate", "escalations", "csat", "savings"):
        expect(page.locator(f'[data-kpi="{kpi}"] [data-value]'), kpi).to_be_visible()
    rate = page.locator('[data-kpi="ai_resolution_rate"] [data-change]')
    expect(rate).to_contain_text("▲")
    expect(rate).to_contain_text("significant: better")
    expect(page.locator('[data-kpi="csat"] [data-change]')).to_contain_text("no significant change")
    topics = page.locator("[data-topic]")
    expect(topics.first).to_have_attribute("data-topic", "refund request")
    expect(topics.first).to_have_attribute("data-significant", "true")
    expect(page.locator("[data-gap]").first).to_be_visible()
    alerts = page.locator("[data-alert]")
    expect(alerts).to_have_count(2)
    expect(alerts.first).to_contain_text("Tue 1 Dec 09:12 · Refund resolution fell · firing · 31.5%")
    link = page.locator("a[data-dashboard]")
    expect(link).to_be_visible()
    expect(link).to_have_attribute(
        "href", f"{settings.SITE_URL}/dashboard/?range=custom&start=2026-12-01&end=2026-12-01"
    )

    # The README's picture: the email itself, as a desktop client shows it.
    README_SCREENSHOT.unlink(missing_ok=True)
    page.locator("body > table table").first.screenshot(path=README_SCREENSHOT)
    assert README_SCREENSHOT.read_bytes().startswith(PNG_SIGNATURE)

    page.set_viewport_size(PHONE)
    expect(page.locator('[data-kpi="ai_resolution_rate"] [data-change]')).to_be_visible()
    expect(link).to_be_visible()
    width, wide = overflowing(page)
    assert width <= PHONE["width"] + 1, f"the digest is {width}px wide on a 390px phone: {wide}"
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    phone_shot = SCREENSHOT_DIR / "digest-390.png"
    phone_shot.unlink(missing_ok=True)
    page.screenshot(path=phone_shot, full_page=True)
    assert phone_shot.read_bytes().startswith(PNG_SIGNATURE)

    context.close()
    # Nothing but the file itself: no stylesheet, image or font to fetch.
    assert outside == [digest_file.as_uri()], f"the digest asks for things outside itself: {outside}"
