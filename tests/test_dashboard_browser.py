"""The staff dashboard in a real browser: login, KPIs, range selector, charts, the topic drill-down
into the admin, and full-page screenshots at a desktop and a phone width.

Playwright's sync API drives Debian's Chromium (`make browser` installs it) against pytest-django's
live_server. Without /usr/bin/chromium the test is skipped, except when CI is set: there it fails,
so CI never passes by skipping it.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from tests.factories import ConversationFactory

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # a virtualenv from before requirements-dev.txt had it; `make test` installs it
    sync_playwright = None

pytestmark = pytest.mark.browser


@pytest.fixture(autouse=True)
def allow_orm_beside_playwright(monkeypatch):
    """Playwright's sync API keeps an asyncio loop running in the test thread; without this
    Django refuses ORM calls made there (SynchronousOnlyOperation), fixtures' teardown included.
    Autouse: set up before and torn down after every other fixture of the test."""
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


CHROMIUM = Path("/usr/bin/chromium")
# No sandbox: CI runs as root. The rest keeps Chromium from calling home on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP_TIMEOUT_MS = 5_000
NAVIGATION_TIMEOUT_MS = 10_000
LAUNCH_TIMEOUT_MS = 30_000
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
SCREENSHOT_DIR = settings.BASE_DIR / "var" / "screenshots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

STAFF_USERNAME = "lead"
STAFF_PASSWORD = "browser-test-pw-5139"
KPIS = ["conversations", "ai_resolution_rate", "csat", "savings", "avg_turns", "p95_response_ms"]
RANGES = ["24h", "7d", "30d", "90d"]
ADMIN_CONVERSATIONS_PATH = "/admin/conversations/conversation/"

# (session_id, hours before now, topics, resolved_by_ai, csat). Hours are far from every range
# edge: 1-50 hours ago, plus one conversation per topic 12 days ago, outside the 7-day range.
SEED = [
    ("billing-1", 1, ["billing"], True, 5),
    ("billing-2", 3, ["billing"], True, 4),
    ("billing-3", 8, ["billing", "refund"], False, 2),
    ("billing-4", 30, ["billing"], True, None),
    ("billing-5", 50, ["billing"], False, 1),
    ("refund-1", 2, ["refund"], False, 3),
    ("refund-2", 26, ["refund"], True, 5),
    ("shipping-1", 5, ["shipping"], True, None),
    ("shipping-2", 45, ["shipping"], True, 4),
    ("password-1", 12, ["password reset"], False, None),
    ("old-billing", 288, ["billing"], True, 5),
    ("old-refund", 288, ["refund"], False, 1),
    ("old-shipping", 288, ["shipping"], True, None),
    ("old-password", 288, ["password reset"], True, 3),
]
TOPICS = ["billing", "refund", "shipping", "password reset"]
SEVEN_DAYS_IN_HOURS = 7 * 24


def in_last_7_days(topic: str | None = None) -> set[str]:
    return {
        session_id
        for session_id, hours_ago, topics, _, _ in SEED
        if hours_ago < SEVEN_DAYS_IN_HOURS and (topic is None or topic in topics)
    }


def require_browser(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser test, not skip it", pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture
def dashboard_data(transactional_db, django_user_model):
    """A staff superuser (the drill-down opens the admin) and conversations relative to now.

    transactional_db: live_server answers from another thread, so the data must be committed.
    """
    django_user_model.objects.create_superuser(
        username=STAFF_USERNAME, email="lead@example.com", password=STAFF_PASSWORD
    )
    now = timezone.now()
    for index, (session_id, hours_ago, topics, resolved_by_ai, csat) in enumerate(SEED):
        ConversationFactory(
            session_id=session_id,
            timestamp=now - timedelta(hours=hours_ago),
            topics=topics,
            resolved_by_ai=resolved_by_ai,
            csat=csat,
            turns=2 + index % 5,
            avg_response_ms=400.0 + 150 * index,
        )


def watch_for_problems(page: Page, *, origin: str) -> list[str]:
    """Collect console errors, uncaught page errors and requests that leave the app (CDNs)."""
    problems: list[str] = []

    def on_console(message) -> None:
        url = message.location.get("url", "")
        # The browser asks for /favicon.ico on its own for pages without an icon (the admin's).
        if message.type == "error" and urlsplit(url).path != "/favicon.ico":
            problems.append(f"console error: {message.text} ({url or page.url})")

    def on_request(request) -> None:
        if not request.url.startswith((f"{origin}/", "data:", "blob:", "about:")):
            problems.append(f"request outside the app: {request.url} (from {page.url})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(f"page error: {error} ({page.url})"))
    page.on("request", on_request)
    return problems


def url_path(url: str) -> str:
    return urlsplit(url).path


def query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def save_screenshot(page: Page, viewport: dict[str, int]) -> Path:
    page.set_viewport_size(viewport)
    path = SCREENSHOT_DIR / f"dashboard-{viewport['width']}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)  # a file left by an earlier run must not pass for this one
    page.screenshot(path=path, full_page=True)
    image = path.read_bytes()
    assert image.startswith(PNG_SIGNATURE), f"{path} is not a PNG"
    assert len(image) > 1_000, f"{path} is only {len(image)} bytes"
    return path


@pytest.mark.usefixtures("dashboard_data")
def test_dashboard_in_a_browser(live_server, chromium):
    context = chromium.new_context(viewport=DESKTOP, base_url=live_server.url)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    page = context.new_page()
    problems = watch_for_problems(page, origin=live_server.url)

    # Anonymous: the dashboard sends us to the product's login page, which sends us back.
    page.goto("/dashboard/")
    assert url_path(page.url) == "/accounts/login/", f"/dashboard/ should ask for a login, got {page.url}"
    assert query(page.url).get("next") == ["/dashboard/"], page.url
    page.locator("input[name=username]").fill(STAFF_USERNAME)
    page.locator("input[name=password]").fill(STAFF_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: url_path(url) == "/dashboard/")

    page.goto("/")
    assert url_path(page.url) == "/dashboard/", f"/ should redirect to the dashboard, got {page.url}"

    for kpi in KPIS:
        card = page.locator(f'[data-kpi="{kpi}"]')
        expect(card, f"KPI card {kpi}").to_have_count(1)
        # Every KPI has a value for this data (there are CSAT scores and response times).
        expect(card.locator(".kpi-value"), f"value of KPI {kpi}").to_have_text(re.compile(r"\d"))

    page.locator('a[data-range="7d"]').click()
    page.wait_for_url(lambda url: query(url).get("range") == ["7d"])
    for range_name in RANGES:
        link = page.locator(f'a[data-range="{range_name}"]')
        expect(link, f"range link {range_name}").to_have_count(1)
        if range_name == "7d":
            expect(link).to_have_attribute("aria-current", "page")
        else:
            expect(link).not_to_have_attribute("aria-current", "page")
    conversations_shown = page.locator('[data-kpi="conversations"] .kpi-value').inner_text()
    assert re.sub(r"\D", "", conversations_shown) == str(len(in_last_7_days())), conversations_shown

    expect(page.locator("figure.chart svg").first, "a chart").to_be_visible()
    # Today is still running: said in words beside the chart, and its bar hatched when it has one.
    note = page.locator("#chart-volume .partial-note")
    expect(note, "the in-progress note").to_be_visible()
    expect(note).to_have_text("Latest day is still in progress (hatched bar: so far).")
    # "Is it really resolved?": a rate's definition is one click away (a <details>), and a bot
    # that sends no outcomes gets told how to send them.
    panel = page.locator("#honest")
    expect(panel.locator('[data-rate="ai_resolution_rate"] .rate-value')).to_have_text(re.compile(r"\d"))
    definition = panel.locator('[data-rate="confirmed_resolution_rate"] details.definition')
    expect(definition.locator("p").first).to_be_hidden()
    definition.locator("summary").click()
    expect(definition.locator("p").first).to_be_visible()
    expect(definition.locator("p").first).to_contain_text("outcome confirmed")
    expect(panel.locator('[data-howto="outcome"]')).to_be_visible()
    chart_shot = SCREENSHOT_DIR / "chart-volume.png"
    chart_shot.unlink(missing_ok=True)
    page.locator("#chart-volume").screenshot(path=chart_shot)

    save_screenshot(page, DESKTOP)
    save_screenshot(page, PHONE)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    # What sticks out, when something does (scrolling boxes clip their own content).
    wide = page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
        "innerWidth + 1 && !e.parentElement.closest('.table-scroll, pre')).slice(0, 8)"
        ".map(e => `${e.tagName}.${e.className} ${Math.round(e.getBoundingClientRect().right)}`)"
    )
    assert scroll_width <= PHONE["width"] + 1, f"the page is {scroll_width}px wide on a 390px phone: {wide}"
    page.set_viewport_size(DESKTOP)

    # Drill-down: the first topic's link opens the admin list of its conversations in the range.
    rows = page.locator("table#topics tbody tr")
    expect(rows).to_have_count(len(TOPICS))
    first_row = rows.first
    row_text = first_row.inner_text()
    named = [topic for topic in TOPICS if re.search(rf"\b{re.escape(topic)}\b", row_text, re.IGNORECASE)]
    assert len(named) == 1, f"the first topic row should name one topic: {row_text!r}"
    drilldown = first_row.locator("a[data-drilldown]")
    expect(drilldown).to_have_count(1)
    href = drilldown.evaluate("link => link.href")
    assert url_path(href) == ADMIN_CONVERSATIONS_PATH and urlsplit(href).query, href
    drilldown.click()
    page.wait_for_url(lambda url: url_path(url) == ADMIN_CONVERSATIONS_PATH)
    # The admin answers a filter it does not allow by redirecting to ?e=1 with every conversation.
    assert "e" not in query(page.url), f"the admin refused the drill-down filter: {href}"
    expect(page.locator("#result_list")).to_be_visible()
    listed = set(page.locator("#result_list tbody a").all_inner_texts()) & {row[0] for row in SEED}
    assert listed == in_last_7_days(named[0]), f"drill-down {href} for {named[0]!r}"
    expect(page.locator("#result_list tbody tr")).to_have_count(len(listed))

    context.close()
    assert problems == []


@pytest.fixture
def release_data(transactional_db, django_user_model):
    """Two bot versions over the last 7 days, 2.0 released about 3 days ago: refunds resolve far
    more often under 2.0, billing the same. Answers 2.0's release annotation."""
    from conversations.models import Annotation, AnnotationKind

    django_user_model.objects.create_superuser(
        username=STAFF_USERNAME, email="lead@example.com", password=STAFF_PASSWORD
    )
    now = timezone.now()
    for index in range(160):
        new = index % 2 == 1
        refund = index % 4 < 2
        hours_ago = 1 + (index * 37) % (3 * 24 - 2) if new else 3 * 24 + 8 + (index * 29) % (4 * 24 - 10)
        ConversationFactory(
            session_id=f"release-{index}",
            timestamp=now - timedelta(hours=hours_ago),
            bot_version="2.0" if new else "1.0",
            topics=["refund"] if refund else ["billing"],
            resolved_by_ai=(index % 10 < 9)
            if (refund and new)
            else (index % 10 < 4 if refund else index % 10 < 6),
            csat=1 + index % 5,
            turns=2 + index % 5,
        )
    # The first conversation of each version made its release annotation (services).
    return Annotation.objects.get(bot_version="2.0", kind=AnnotationKind.RELEASE)


def log_in(page: Page) -> None:
    page.goto("/accounts/login/")
    page.locator("input[name=username]").fill(STAFF_USERNAME)
    page.locator("input[name=password]").fill(STAFF_PASSWORD)
    page.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: url_path(url) == "/dashboard/")


# The data first: set up after live_server, transactional_db leaves a connection to the test
# database open, which then cannot be dropped at the end of the session.
def test_compare_page_and_annotation_markers_in_a_browser(release_data, live_server, chromium):
    context = chromium.new_context(viewport=DESKTOP, base_url=live_server.url)
    context.set_default_timeout(STEP_TIMEOUT_MS)
    context.set_default_navigation_timeout(NAVIGATION_TIMEOUT_MS)
    page = context.new_page()
    problems = watch_for_problems(page, origin=live_server.url)
    log_in(page)

    # The release is a numbered marker on every time-series chart, listed under the charts.
    page.goto("/dashboard/?range=7d")
    # Two releases in the range: 1.0's (its first conversation, 7 days ago) and 2.0's.
    expect(page.locator("#chart-resolution a.marker")).to_have_count(2)
    expect(page.locator("#chart-volume a.marker")).to_have_count(2)
    marker = page.locator('#chart-resolution a.marker[data-annotation="2"]')
    expect(marker.locator("title")).to_have_text(re.compile(r"Bot version 2\.0 released"))
    listed = page.locator("#annotations li")
    expect(listed).to_have_count(2)
    expect(listed.nth(1)).to_contain_text("Bot version 2.0 released")
    shot = SCREENSHOT_DIR / "chart-resolution-annotated.png"
    shot.unlink(missing_ok=True)
    page.locator("#chart-resolution").screenshot(path=shot)
    assert shot.read_bytes().startswith(PNG_SIGNATURE)

    # Its impact: the 7 days before against the days after, the comparison's figures.
    marker.click()
    page.wait_for_url(lambda url: url_path(url) == f"/dashboard/annotations/{release_data.pk}/")
    expect(page.locator("h1")).to_contain_text("Bot version 2.0 released")
    expect(page.locator('#figures tr[data-figure="ai_resolution_rate"]')).to_be_visible()

    # The Compare page: pick the two versions, read the verdicts.
    page.goto("/dashboard/compare/")
    expect(page.locator('a[data-kind="bot_version"]')).to_have_attribute("aria-current", "page")
    page.locator("select[name=a]").select_option("1.0")
    page.locator("select[name=b]").select_option("2.0")
    page.locator("form[aria-label=Arms] button[type=submit]").click()
    page.wait_for_url(lambda url: query(url).get("b") == ["2.0"])
    rate = page.locator('#figures tr[data-figure="ai_resolution_rate"]')
    expect(rate.locator("[data-significant=true]")).to_have_count(1)
    expect(rate.locator(".trend-good")).to_contain_text("▲")
    topics = page.locator("#compare-topics tbody tr")
    expect(topics.first).to_have_attribute("data-topic", "refund")
    expect(topics.first).to_have_attribute("data-significant", "true")
    expect(topics.nth(1)).to_have_attribute("data-significant", "false")
    # The p-value is on hover.
    assert "p " in (rate.locator("[data-significant=true]").get_attribute("title") or "")
    path = SCREENSHOT_DIR / "compare.png"
    path.unlink(missing_ok=True)
    page.screenshot(path=path, full_page=True)
    assert path.read_bytes().startswith(PNG_SIGNATURE)
    page.set_viewport_size(PHONE)
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= PHONE["width"] + 1, f"the compare page is {scroll_width}px wide on a phone"

    context.close()
    assert problems == []
