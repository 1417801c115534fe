"""The evaluation of alert rules (conversations.alert_evaluation): what fires, when, and what
each notification records. Real PostgreSQL, a fixed clock; the deliveries themselves (SMTP,
webhooks) are in tests/test_alert_delivery.py.

Conversations are written through the ingest service, so the figures a rule reads are the
dashboard's (rollups and raw edges).
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine

from conversations import alert_evaluation, alerts, services
from conversations.alert_evaluation import evaluate_alerts
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Period
from conversations.models import AlertDelivery, AlertEvent, AlertRule
from conversations.services import ConversationIn
from tests.conftest import T0

pytestmark = pytest.mark.django_db

_sessions = itertools.count()
HOUR = timedelta(hours=1)
WEEK = timedelta(hours=168)


def add(total: int, resolved: int, *, end, span=timedelta(minutes=50), csat=None, **fields) -> None:
    """`total` conversations ending in [end − span, end), `resolved` of them by the AI."""
    step = span / max(total, 1)
    items = [
        ConversationIn(
            session_id=f"alert-{next(_sessions)}",
            timestamp=end - span + index * step,
            turns=3,
            resolved_by_ai=index < resolved,
            topics=tuple(fields.get("topics", ("billing",))),
            avg_response_ms=900.0,
            response_count=2,
            channel=fields.get("channel", "web"),
            bot_version=fields.get("bot_version", "2.5.0"),
            csat=csat,
            csat_given=csat is not None,
        )
        for index in range(total)
    ]
    services.conversations_ingest(items=items)


def rule(**values) -> AlertRule:
    defaults = {
        "name": "AI resolution",
        "metric": "ai_resolution_rate",
        "condition": "below",
        "threshold": Decimal("60"),
        "window_minutes": 60,
        "min_sample_size": 30,
        "emails": ["lead@example.com"],
        "webhooks": [],
    }
    return alerts.alert_rule_create(values={**defaults, **values}).rule


def at(moment):
    return time_machine.travel(moment, tick=False)


def events(**filters) -> list[AlertEvent]:
    return list(AlertEvent.objects.filter(**filters).order_by("at", "state"))


# --- below / above ----------------------------------------------------------------------------


def test_a_threshold_rule_fires_once_stays_quiet_while_firing_and_resolves_once():
    watched = rule()
    add(100, 40, end=T0)  # 40% in the hour before T0
    with at(T0):
        first = evaluate_alerts()
    [fired] = first.events
    assert (fired.state, fired.value, fired.threshold, fired.sample_size) == (
        "firing",
        Decimal("40.0"),
        60,
        100,
    )
    assert (fired.window_start, fired.window_end) == (T0 - HOUR, T0)
    assert first.delivered == 1  # the locmem backend
    watched.refresh_from_db()
    assert (watched.state, watched.state_changed_at, watched.last_notified_at) == ("firing", T0, T0)

    add(100, 45, end=T0 + 10 * timedelta(minutes=1), span=timedelta(minutes=9))
    with at(T0 + timedelta(minutes=10)):
        assert evaluate_alerts().events == []  # still below: no second notification

    add(200, 190, end=T0 + 2 * HOUR)
    with at(T0 + 2 * HOUR):
        [resolved] = evaluate_alerts().events
    assert (resolved.state, resolved.value) == ("resolved", Decimal("95.0"))
    watched.refresh_from_db()
    assert (watched.state, watched.last_notified_at, watched.condition_since) == ("ok", None, None)
    assert [event.state for event in events()] == ["firing", "resolved"]
    assert AlertDelivery.objects.filter(status="delivered").count() == 2


def test_threshold_comparisons_are_strict():
    rule(threshold=Decimal("40.0"))
    rule(name="above", condition="above", threshold=Decimal("40.0"))
    add(100, 40, end=T0)
    with at(T0):
        assert evaluate_alerts().events == []  # 40.0 is neither below nor above 40.0


def test_the_window_ends_delay_minutes_before_now_and_is_read_like_the_dashboard():
    rule(
        delay_minutes=30,
        window_minutes=120,
        metric="total_conversations",
        condition="above",
        threshold=Decimal("49"),
    )
    add(50, 50, end=T0 - timedelta(minutes=30), span=timedelta(minutes=100))
    add(500, 500, end=T0, span=timedelta(minutes=29))  # inside the delay: not yet counted
    with at(T0 + timedelta(seconds=42)):  # the pass judges whole minutes
        [fired] = evaluate_alerts().events
    window = Period(start=T0 - timedelta(minutes=150), end=T0 - timedelta(minutes=30))
    assert (fired.window_start, fired.window_end) == (window.start, window.end)
    assert fired.value == selectors.window_totals(period=window, filters=Filters()).conversations == 50


def test_under_min_sample_size_a_rule_never_fires_and_a_firing_one_stays_firing():
    watched = rule(min_sample_size=50)
    add(49, 0, end=T0)
    with at(T0):
        assert evaluate_alerts().events == []
    add(60, 0, end=T0 + 2 * HOUR)
    with at(T0 + 2 * HOUR):
        [fired] = evaluate_alerts().events
    assert fired.state == "firing"
    add(10, 10, end=T0 + 4 * HOUR)  # 100%, but 10 conversations: cannot be judged
    with at(T0 + 4 * HOUR):
        assert evaluate_alerts().events == []
    watched.refresh_from_db()
    assert watched.state == "firing"
    with at(T0 + 6 * HOUR):  # no conversations at all: no value either
        assert evaluate_alerts().events == []
    watched.refresh_from_db()
    assert watched.state == "firing"


def test_csat_rules_count_ratings_as_their_sample():
    rule(metric="avg_csat", threshold=Decimal("3.5"), min_sample_size=20)
    add(100, 100, end=T0, csat=None)
    add(19, 19, end=T0, csat=2)
    with at(T0):
        assert evaluate_alerts().events == []  # 119 conversations but 19 ratings
    add(1, 1, end=T0, csat=2)
    with at(T0):
        [fired] = evaluate_alerts().events
    assert (fired.value, fired.sample_size) == (Decimal("2.00"), 20)


def test_for_minutes_the_condition_must_hold_that_long_without_a_break():
    watched = rule(for_minutes=5, window_minutes=15)
    for minute in range(12):
        add(40, 10, end=T0 + timedelta(minutes=minute), span=timedelta(minutes=1))
    fired_at = []
    for minute in range(8):
        with at(T0 + timedelta(minutes=minute)):
            fired_at += [minute for _ in evaluate_alerts().events]
    assert fired_at == [5]  # held since minute 0
    watched.refresh_from_db()
    assert watched.condition_since == T0


def test_for_minutes_starts_over_when_the_condition_breaks():
    watched = rule(for_minutes=10, window_minutes=15, min_sample_size=1)
    add(40, 10, end=T0)
    with at(T0):
        evaluate_alerts()
    watched.refresh_from_db()
    assert watched.condition_since == T0
    add(400, 400, end=T0 + timedelta(minutes=5), span=timedelta(minutes=4))
    with at(T0 + timedelta(minutes=5)):
        evaluate_alerts()
    watched.refresh_from_db()
    assert (watched.state, watched.condition_since) == ("ok", None)


def test_renotify_minutes_reminds_while_firing_and_never_more_often():
    rule(renotify_minutes=60, window_minutes=180)
    add(300, 30, end=T0, span=3 * HOUR - timedelta(minutes=1))
    moments = [T0 + timedelta(minutes=minutes) for minutes in (0, 30, 59, 60, 61, 119, 120)]
    for moment in moments:
        with at(moment):
            evaluate_alerts()
    assert [(event.at - T0, event.reminder) for event in events()] == [
        (timedelta(0), False),
        (timedelta(minutes=60), True),
        (timedelta(minutes=120), True),
    ]


def test_without_renotify_a_firing_rule_notifies_once():
    rule(window_minutes=180)
    add(300, 30, end=T0, span=3 * HOUR - timedelta(minutes=1))
    for minutes in range(0, 100, 7):
        with at(T0 + timedelta(minutes=minutes)):
            evaluate_alerts()
    assert len(events()) == 1


def test_editing_a_firing_rule_resets_it_to_ok_without_a_notification_and_disabled_rules_sleep():
    watched = rule()
    add(100, 10, end=T0)
    with at(T0):
        evaluate_alerts()
    alerts.alert_rule_update(rule_id=watched.pk, values={"name": "Renamed", "enabled": False})
    watched.refresh_from_db()
    assert (watched.state, watched.condition_since, watched.last_notified_at) == ("ok", None, None)
    with at(T0):
        assert evaluate_alerts().rules == 0
    assert len(events()) == 1  # the first firing only: no "resolved" for an edit
    alerts.alert_rule_update(rule_id=watched.pk, values={"enabled": True})
    with at(T0):
        [fired_again] = evaluate_alerts().events
    assert (fired_again.rule_name, fired_again.state) == ("Renamed", "firing")


def test_deleting_a_rule_keeps_its_events():
    watched = rule()
    add(100, 10, end=T0)
    with at(T0):
        evaluate_alerts()
    alerts.alert_rule_delete(rule_id=watched.pk)
    [kept] = events()
    assert (kept.rule_id, kept.rule_name) == (None, "AI resolution")


def test_filters_narrow_the_traffic_a_rule_reads():
    rule(channel="sms", topic="Refund Request")  # normalized like a topic filter
    add(100, 10, end=T0, channel="web", topics=("refund request",))
    add(100, 90, end=T0, channel="sms", topics=("billing",))
    with at(T0):
        assert evaluate_alerts().events == []
    add(50, 5, end=T0, channel="sms", topics=("refund request",))
    with at(T0):
        [fired] = evaluate_alerts().events
    assert (fired.value, fired.sample_size) == (Decimal("10.0"), 50)
    assert fired.filters == {"channel": "sms", "topic": "refund request"}


# --- drop / rise against the baseline weeks -------------------------------------------------------


def weekly_history(weeks: int, *, total: int, resolved: int, end=T0, **fields) -> None:
    """The same hour of each earlier week, from its first minute: a week counts as baseline
    only when the history covers all of its window."""
    for week in range(1, weeks + 1):
        add(total, resolved, end=end - week * WEEK, span=HOUR, **fields)


def drop_rule(**values) -> AlertRule:
    return rule(
        **{"name": "Drop", "condition": "drop", "threshold": None, "min_change": Decimal("10"), **values}
    )


def test_a_significant_drop_against_four_pooled_weeks_fires():
    drop_rule()
    weekly_history(5, total=200, resolved=160)  # 80% the same hour of each earlier week
    add(200, 120, end=T0)  # 60% now
    with at(T0):
        [fired] = evaluate_alerts().events
    assert (fired.baseline, fired.baseline_weeks, fired.change, fired.value) == (
        Decimal("80.0"),
        4,  # at most 4 weeks, though 5 are stored
        Decimal("-20.00"),
        Decimal("60.0"),
    )
    assert fired.p_value < 1e-6


def test_a_drop_smaller_than_min_change_or_not_significant_does_not_fire():
    drop_rule(name="big", min_change=Decimal("25"))
    drop_rule(name="noisy", min_change=Decimal("5"), min_sample_size=10)
    weekly_history(4, total=200, resolved=160)
    add(200, 120, end=T0)  # −20 points: under "big"'s 25; "noisy" is certain
    with at(T0):
        assert [event.rule_name for event in evaluate_alerts().events] == ["noisy"]


def test_an_insignificant_drop_of_the_size_asked_does_not_fire():
    drop_rule(min_sample_size=10)
    weekly_history(4, total=20, resolved=16)  # 80% of 20 a week
    add(10, 6, end=T0)  # 60% of 10: −20 points, but p ≈ 0.1
    with at(T0):
        assert evaluate_alerts().events == []
    # The same −20 points on 2,000 conversations: p far below 0.01.
    add(1990, 1194, end=T0, span=timedelta(minutes=40))
    with at(T0):
        [fired] = evaluate_alerts().events
    assert fired.change == Decimal("-20.00")


def test_a_rise_rule_ignores_a_drop():
    rule(name="Rise", condition="rise", threshold=None, min_change=Decimal("10"), metric="abandonment_rate")
    drop_rule()
    weekly_history(4, total=200, resolved=160)
    add(200, 120, end=T0)
    with at(T0):
        assert [event.rule_name for event in evaluate_alerts().events] == ["Drop"]


def test_fewer_baseline_weeks_when_the_history_is_shorter_and_none_never_fires():
    drop_rule()
    add(200, 120, end=T0)
    with at(T0):
        assert evaluate_alerts().events == []  # no earlier week stored: never fires
    weekly_history(2, total=200, resolved=160)
    with at(T0):
        [fired] = evaluate_alerts().events
    assert fired.baseline_weeks == 2


def test_a_bot_versions_history_starts_when_it_was_first_seen():
    drop_rule(bot_version="3.0.0")
    weekly_history(4, total=200, resolved=160, bot_version="2.5.0")
    add(200, 120, end=T0, bot_version="3.0.0")  # first seen in this hour: no week before it
    with at(T0):
        assert evaluate_alerts().events == []


def test_a_count_rise_is_in_percent_of_the_weeks_mean_and_tested_as_poisson_rates():
    rule(
        name="Escalations up",
        metric="escalated_conversations",
        condition="rise",
        threshold=None,
        min_change=Decimal("50"),
        min_sample_size=0,
    )
    weekly_history(4, total=100, resolved=80)  # 20 escalations each week
    add(100, 60, end=T0)  # 40 now: +100%
    with at(T0):
        [fired] = evaluate_alerts().events
    assert (fired.value, fired.baseline, fired.change) == (Decimal("40"), Decimal("20.00"), Decimal("100.0"))
    assert fired.p_value < 0.01


def test_a_count_drop_to_nothing_fires_when_the_volume_was_real():
    rule(
        name="Traffic gone",
        metric="total_conversations",
        condition="drop",
        threshold=None,
        min_change=Decimal("90"),
        min_sample_size=0,
    )
    weekly_history(4, total=50, resolved=40)
    with at(T0):
        [fired] = evaluate_alerts().events
    assert (fired.value, fired.baseline, fired.change, fired.sample_size) == (
        Decimal("0"),
        Decimal("50.00"),
        Decimal("-100.0"),
        0,
    )


def test_durable_resolution_rules_read_a_window_old_enough_to_be_settled(settings):
    settings.REPEAT_CONTACT_DAYS = 7
    watched = rule(metric="repeat_contact.durable_resolution_rate", window_minutes=60, min_sample_size=1)
    with at(T0):
        evaluate_alerts()
    watched.refresh_from_db()
    window = alert_evaluation.rule_window(watched, now=T0)
    assert (window.start, window.end) == (T0 - timedelta(days=7) - HOUR, T0 - timedelta(days=7))


# --- Two evaluators ------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_two_evaluators_at_the_same_moment_notify_once(django_db_blocker):
    from concurrent.futures import ThreadPoolExecutor

    from django.db import connection

    rule(emails=["a@example.com", "b@example.com"])
    add(100, 10, end=T0)

    def one_pass(_):
        try:
            with at(T0):
                return evaluate_alerts()
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one_pass, range(2)))
    assert sorted(len(result.events) for result in results) == [0, 1]
    assert sum(result.delivered for result in results) == 2  # one per address, sent once
    assert AlertEvent.objects.count() == 1
    assert list(AlertDelivery.objects.values_list("status", "attempts")) == [("delivered", 1)] * 2


def test_baseline_weeks_are_168_hour_steps_wholly_inside_the_history():
    window = Period(start=T0 - HOUR, end=T0)
    weeks = alert_evaluation.baseline_windows(window, history_start=T0 - 3 * WEEK - HOUR)
    assert [(period.start, period.end) for period in weeks] == [
        (T0 - k * WEEK - HOUR, T0 - k * WEEK) for k in (1, 2, 3)
    ]
    # A minute short of the third week's start: two weeks.
    assert (
        len(
            alert_evaluation.baseline_windows(
                window, history_start=T0 - 3 * WEEK - HOUR + timedelta(minutes=1)
            )
        )
        == 2
    )
    assert alert_evaluation.baseline_windows(window, history_start=None) == []
    assert len(alert_evaluation.baseline_windows(window, history_start=T0 - 10 * WEEK)) == 4


def test_the_admin_lists_events_with_their_deliveries_read_only(admin_client):
    rule(webhooks=["https://hooks.example.com/a"])
    add(100, 10, end=T0)
    with at(T0):
        alert_evaluation.judge_rules(now=T0)  # recorded, not yet sent
    [event] = events()
    listing = admin_client.get("/admin/conversations/alertevent/")
    assert listing.status_code == 200
    assert "AI resolution" in listing.text and "firing" in listing.text
    page = admin_client.get(f"/admin/conversations/alertevent/{event.pk}/change/")
    assert page.status_code == 200
    for shown in ("lead@example.com", "https://hooks.example.com/a", "pending"):
        assert shown in page.text
    assert admin_client.get("/admin/conversations/alertevent/add/").status_code == 403
    assert 'name="_save"' not in page.text  # nothing to edit


def test_a_rule_name_with_line_breaks_makes_a_one_line_subject(mailoutbox):
    rule(name="Refunds\r\nBcc: someone@example.com")
    add(100, 10, end=T0)
    with at(T0):
        assert evaluate_alerts().delivered == 1
    [message] = mailoutbox
    assert message.subject == "[Support Analytics] FIRING: Refunds Bcc: someone@example.com"
    assert message.bcc == [] and message.to == ["lead@example.com"]


def test_a_rule_that_cannot_be_evaluated_is_logged_and_left_as_it_was_while_the_others_are_judged(
    monkeypatch, caplog
):
    broken = rule(name="Broken", channel="sms")
    working = rule(name="Working")
    add(100, 10, end=T0)
    real_read = selectors.windows_totals

    def failing_for_sms(*, periods, filters):
        if filters.channel == "sms":
            raise RuntimeError("a read that fails")
        return real_read(periods=periods, filters=filters)

    monkeypatch.setattr(selectors, "windows_totals", failing_for_sms)
    with at(T0):
        result = evaluate_alerts()
    assert ([event.rule_name for event in result.events], result.errors) == (["Working"], 1)
    assert "Alert rule" in caplog.text and "Broken" in caplog.text
    broken.refresh_from_db()
    working.refresh_from_db()
    assert (broken.state, broken.last_evaluated_at) == ("ok", None)
    assert (working.state, working.last_evaluated_at) == ("firing", T0)
