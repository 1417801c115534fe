"""Alert notifications end to end: a real SMTP server (aiosmtpd) and a real local HTTP receiver.

The issue's "done means": a drop injected into demo-like data fires exactly one email and one
signed webhook; recovery resolves once; a receiver that is down is retried and recorded; two
concurrent evaluators send one notification.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from aiosmtpd.controller import Controller
from django.core.management import call_command
from django.db import connection

from conversations import alert_evaluation, alerts, formatting
from conversations.alert_evaluation import evaluate_alerts
from conversations.models import AlertDelivery, AlertEvent
from tests.conftest import T0
from tests.test_alert_evaluation import add

HOUR = timedelta(hours=1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"


@pytest.fixture
def smtp(settings):
    """A real SMTP server on localhost; Django's SMTP backend pointed at it."""
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", controller.port, False
    settings.DEFAULT_FROM_EMAIL = "alerts@example.com"
    yield inbox
    controller.stop()


class Receiver:
    """A local HTTP server that records every POST and answers each with the next status of
    `statuses` (then 200), after `delay` seconds."""

    def __init__(self, statuses=(), delay: float = 0) -> None:
        self.requests: list[tuple[Message, bytes]] = []
        self.statuses, self.delay = list(statuses), delay
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.headers, body))  # case-insensitive, as HTTP's
                time.sleep(receiver.delay)
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers():
    made = []

    def make(**options) -> Receiver:
        made.append(Receiver(**options))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def quick_retries(monkeypatch):
    monkeypatch.setattr(alert_evaluation, "RETRY_DELAYS", (0.01, 0.02, 0.04))


def verified(secret: str, headers: Message, body: bytes) -> dict:
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["X-SupportAnalytics-Signature"], expected)
    assert headers["Content-Type"] == "application/json"
    return json.loads(body)


def evaluate_at(moment, evaluators: int = 1):
    """`evaluators` passes at the same moment, each on its own thread and connection."""

    def one_pass(_):
        try:
            with time_machine.travel(moment, tick=False):
                return evaluate_alerts()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=evaluators) as pool:
        return list(pool.map(one_pass, range(evaluators)))


@pytest.mark.django_db(transaction=True)
def test_a_drop_in_demo_data_fires_one_email_and_one_signed_webhook_and_recovery_resolves_once(
    smtp, receivers
):
    hook = receivers()
    with time_machine.travel(T0, tick=False):
        call_command("seed_demo", conversations=20_000, days=35, seed=7, stdout=io.StringIO())
    saved = alerts.alert_rule_create(
        values={
            "name": "Resolution dropped",
            "metric": "ai_resolution_rate",
            "condition": "drop",
            "min_change": Decimal("10"),
            "window_minutes": 360,
            "min_sample_size": 30,
            "emails": ["lead@example.com"],
            "webhooks": [hook.url],
        }
    )
    quiet = alerts.alert_rule_create(
        values={
            "name": "CSAT collapsed",
            "metric": "avg_csat",
            "condition": "below",
            "threshold": Decimal("1.5"),
            "window_minutes": 360,
            "emails": ["lead@example.com"],
        }
    )
    [before] = evaluate_at(T0)
    assert (before.rules, before.events) == (2, [])  # the demo's ordinary hours fire nothing

    add(200, 50, end=T0 + HOUR, span=3 * HOUR)  # a release breaks the bot: 25% resolved
    results = evaluate_at(T0 + HOUR, evaluators=2)
    assert sorted(len(result.events) for result in results) == [0, 1]
    assert len(smtp.messages) == 1 and len(hook.requests) == 1

    [(recipients, email)] = smtp.messages
    assert recipients == ["lead@example.com"]
    assert email["Subject"] == "[Support Analytics] FIRING: Resolution dropped"
    text = email.get_body(preferencelist=("plain",)).get_content()
    html = email.get_body(preferencelist=("html",)).get_content()
    event = AlertEvent.objects.get()
    for part in (text, html):
        assert f"ai_resolution_rate = {formatting.rate(event.value)}" in part
        assert f"baseline {formatting.rate(event.baseline)}" in part
        assert f"{event.sample_size} conversations in the window" in part
        assert (
            "/dashboard/?range=custom&amp;start=2026-03-14" in part
            or "/dashboard/?range=custom&start=2026-03-14" in part
        )

    headers, body = hook.requests[0]
    payload = verified(saved.new_webhook_secret, headers, body)
    assert payload == {
        "event_id": str(event.id),
        "rule": {"id": saved.rule.id, "name": "Resolution dropped"},
        "state": "firing",
        "metric": "ai_resolution_rate",
        "value": float(event.value),
        "threshold": None,
        "baseline": float(event.baseline),
        "sample_size": event.sample_size,
        "window": {"start": "2026-03-14T07:00:00Z", "end": "2026-03-14T13:00:00Z"},
        "filters": {},
        "dashboard_url": "http://127.0.0.1:8000/dashboard/?range=custom&start=2026-03-14&end=2026-03-14",
        "text": payload["text"],
    }
    assert payload["text"].startswith("FIRING: Resolution dropped: ai_resolution_rate = ")
    assert event.baseline_weeks == 4 and event.change <= -10 and event.p_value < 0.01

    [later] = evaluate_at(T0 + HOUR + timedelta(minutes=5))
    assert later.events == [] and len(smtp.messages) == 1 and len(hook.requests) == 1

    add(300, 240, end=T0 + 8 * HOUR, span=6 * HOUR)  # fixed: back to 80%
    [recovered] = evaluate_at(T0 + 8 * HOUR)
    assert [event.state for event in recovered.events] == ["resolved"]
    assert [email["Subject"] for _, email in smtp.messages] == [
        "[Support Analytics] FIRING: Resolution dropped",
        "[Support Analytics] RESOLVED: Resolution dropped",
    ]
    resolved = verified(saved.new_webhook_secret, *hook.requests[1])
    assert (resolved["state"], resolved["event_id"]) == ("resolved", str(recovered.events[0].id))
    [after] = evaluate_at(T0 + 8 * HOUR + timedelta(minutes=1))
    assert after.events == [] and len(smtp.messages) == 2 and len(hook.requests) == 2
    assert AlertEvent.objects.filter(rule=quiet.rule).count() == 0


@pytest.mark.django_db
def test_a_receiver_that_is_down_is_retried_and_recorded_and_the_others_still_get_theirs(
    smtp, receivers, quick_retries
):
    working = receivers()
    flaky = receivers(statuses=(503, 500))
    gone = receivers(statuses=(410,))
    dead_url = f"http://127.0.0.1:{free_port()}/nobody-listens"
    alerts.alert_rule_create(
        values={
            "name": "Volume",
            "metric": "total_conversations",
            "condition": "above",
            "threshold": Decimal("10"),
            "window_minutes": 60,
            "emails": ["lead@example.com"],
            "webhooks": [dead_url, flaky.url, working.url, gone.url],
        }
    )
    add(40, 40, end=T0)
    result = _evaluate(T0)
    assert (result.delivered, result.failed) == (3, 2)
    deliveries = {delivery.target: delivery for delivery in AlertDelivery.objects.all()}
    dead = deliveries[dead_url]
    assert (dead.status, dead.attempts, dead.delivered_at) == ("failed", 4, None)  # 1 + 3 retries
    assert "Connection refused" in dead.last_error
    assert (deliveries[flaky.url].status, deliveries[flaky.url].attempts) == ("delivered", 3)
    assert (deliveries[working.url].status, deliveries[working.url].attempts) == ("delivered", 1)
    # A 410 will not go away by retrying: failed at once, with the answer recorded.
    assert (deliveries[gone.url].status, deliveries[gone.url].attempts) == ("failed", 1)
    assert deliveries[gone.url].last_error == "HTTP 410 Gone"
    assert deliveries["lead@example.com"].status == "delivered" and len(smtp.messages) == 1
    # The same bytes on every attempt: a receiver can drop a retried duplicate by event_id.
    assert len({body for _, body in flaky.requests}) == 1 and len(flaky.requests) == 3
    # A later pass does not send the failed ones again.
    assert _evaluate(T0 + timedelta(minutes=1)).failed == 0


@pytest.mark.django_db
def test_a_slow_receiver_times_out_without_holding_up_the_other_deliveries(
    receivers, quick_retries, monkeypatch
):
    monkeypatch.setattr(alert_evaluation, "WEBHOOK_TIMEOUT", 0.3)
    slow = receivers(delay=1.0)
    fast = receivers()
    alerts.alert_rule_create(
        values={
            "name": "Volume",
            "metric": "total_conversations",
            "condition": "above",
            "threshold": Decimal("10"),
            "window_minutes": 60,
            "webhooks": [slow.url, fast.url],
        }
    )
    add(40, 40, end=T0)
    result = _evaluate(T0)
    assert (result.delivered, result.failed) == (1, 1)
    slow_delivery = AlertDelivery.objects.get(target=slow.url)
    assert (slow_delivery.status, slow_delivery.attempts) == ("failed", 4)
    assert "timed out" in slow_delivery.last_error
    assert len(fast.requests) == 1


@pytest.mark.django_db
def test_deliveries_claimed_by_another_sender_are_left_alone_until_their_lease_ends(receivers):
    hook = receivers()
    alerts.alert_rule_create(
        values={
            "name": "Volume",
            "metric": "total_conversations",
            "condition": "above",
            "threshold": Decimal("10"),
            "window_minutes": 60,
            "webhooks": [hook.url],
        }
    )
    add(40, 40, end=T0)
    with time_machine.travel(T0, tick=False):
        alert_evaluation.judge_rules(now=T0)
        # Another sender claimed it (and, say, died while sending).
        AlertDelivery.objects.update(claimed_until=T0 + alert_evaluation.LEASE)
        assert alert_evaluation.deliver_pending().delivered == 0
    with time_machine.travel(T0 + alert_evaluation.LEASE + timedelta(seconds=1), tick=False):
        assert alert_evaluation.deliver_pending().delivered == 1
    assert len(hook.requests) == 1


def _evaluate(moment):
    with time_machine.travel(moment, tick=False):
        return evaluate_alerts()
