"""An annotation's impact (issue 17): the 7 days before its moment against the 7 days after,
cut at now, the moment itself after; all traffic, or the annotation's channel."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conversations import services
from conversations.analytics import selectors
from conversations.analytics.query import Filters, Period, conversations_in
from conversations.models import Annotation
from tests.conftest import T0
from tests.factories import conversation_in
from tests.test_annotations import answer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("frozen_now")]

DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)
MOMENT = T0 - 3 * DAY  # after: [MOMENT, T0), cut at now


def impact_url(annotation: Annotation) -> str:
    return f"/api/annotations/{annotation.id}/impact/"


@pytest.fixture
def traffic():
    """Conversations on both sides of MOMENT and on the edges of its two weeks."""
    services.conversations_ingest(
        items=[
            conversation_in("too-early", MOMENT - 7 * DAY - TICK, channel="web"),
            conversation_in("first-before", MOMENT - 7 * DAY, channel="web", resolved=False),
            conversation_in("last-before", MOMENT - TICK, channel="email", topics=("billing",)),
            conversation_in("at-the-moment", MOMENT, channel="web", topics=("billing",)),
            conversation_in("after", MOMENT + DAY, channel="email", resolved=False, topics=("refund",)),
            conversation_in("new-version", MOMENT + 2 * DAY, channel="web", bot_version="2.0"),
            conversation_in("at-now", T0, channel="web"),
        ]
    )


def note(*, at=MOMENT, **fields) -> Annotation:
    return Annotation.objects.create(timestamp=at, title="Refund flow changed", kind="release", **fields)


def compared(read_client, before: Period, after: Period, **filters) -> dict:
    """What /api/analytics/compare/ answers for these two windows."""
    response = read_client.get(
        "/api/analytics/compare/",
        {
            "a_start": before.start.isoformat(),
            "a_end": before.end.isoformat(),
            "b_start": after.start.isoformat(),
            "b_end": after.end.isoformat(),
            **filters,
        },
    )
    assert response.status_code == 200
    return response.json()


def window(period: Period) -> dict:
    return {
        "start": period.start.isoformat().replace("+00:00", "Z"),
        "end": period.end.isoformat().replace("+00:00", "Z"),
        "start_inclusive": True,
    }


def test_the_week_before_against_the_days_after_with_the_moment_after(read_client, traffic):
    annotation = note()

    body = read_client.get(impact_url(annotation)).json()

    before = Period(start=MOMENT - 7 * DAY, end=MOMENT)
    after = Period(start=MOMENT, end=T0)  # 3 days so far: cut at now
    assert (body["a"]["window"], body["b"]["window"]) == (window(before), window(after))
    # first-before and last-before; at-the-moment, after and new-version (at-now is not before now).
    assert (body["a"]["total_conversations"], body["b"]["total_conversations"]) == (2, 3)
    assert (body["a"]["ai_resolution_rate"], body["b"]["ai_resolution_rate"]) == (50.0, 66.7)
    for arm, period in (("a", before), ("b", after)):
        raw = conversations_in(period=period, filters=Filters())
        assert sorted(raw.values_list("session_id", flat=True)) == sorted(
            {"a": ["first-before", "last-before"], "b": ["after", "at-the-moment", "new-version"]}[arm]
        )
    # The whole answer: the compare API's for the same two windows, and the annotation.
    assert body == {"annotation": answer(annotation), **compared(read_client, before, after)}


def test_a_channel_scoped_annotation_compares_that_channel_only(read_client, traffic):
    annotation = note(channel="web")

    body = read_client.get(impact_url(annotation)).json()

    before, after = Period(start=MOMENT - 7 * DAY, end=MOMENT), Period(start=MOMENT, end=T0)
    assert body["filters"] == {
        "channel": "web",
        "topic": None,
        "bot_version": None,
        "escalation_reason": None,
    }
    assert (body["a"]["total_conversations"], body["b"]["total_conversations"]) == (1, 2)
    assert body == {"annotation": answer(annotation), **compared(read_client, before, after, channel="web")}


def test_a_version_scoped_annotation_still_compares_all_traffic(read_client, traffic):
    annotation = note(bot_version="2.0")

    body = read_client.get(impact_url(annotation)).json()

    assert body["filters"]["bot_version"] is None
    assert (body["a"]["total_conversations"], body["b"]["total_conversations"]) == (2, 3)


def test_an_old_annotation_has_a_whole_week_after(read_client):
    moment = T0 - 30 * DAY
    annotation = note(at=moment)

    body = read_client.get(impact_url(annotation)).json()

    assert body["b"]["window"] == window(Period(start=moment, end=moment + 7 * DAY))
    assert body["a"]["total_conversations"] == body["b"]["total_conversations"] == 0


def test_the_selector_answers_the_arms_the_api_shows(traffic):
    annotation = note(channel="email")

    comparison = selectors.annotation_impact(annotation=annotation, now=T0)

    assert (comparison.a.period, comparison.b.period) == selectors.impact_periods(moment=MOMENT, now=T0)
    assert comparison.a.filters == comparison.b.filters == Filters(channel="email")
    assert (comparison.a.totals.conversations, comparison.b.totals.conversations) == (1, 1)


@pytest.mark.parametrize("moment", [T0, T0 + timedelta(minutes=1)])
def test_a_moment_not_in_the_past_yet_has_nothing_after_it_to_compare(read_client, moment):
    annotation = note(at=moment)

    response = read_client.get(impact_url(annotation))

    assert response.status_code == 409
    assert response.json() == {
        "detail": f"The annotation's moment ({moment.isoformat()}) is not in the past yet: "
        "there is no traffic after it to compare."
    }
    with pytest.raises(selectors.NothingAfterYet):
        selectors.annotation_impact(annotation=annotation, now=T0)


def test_a_moment_just_past_has_an_after_arm_of_that_length(read_client):
    annotation = note(at=T0 - TICK)

    body = read_client.get(impact_url(annotation)).json()

    assert body["b"]["window"] == window(Period(start=T0 - TICK, end=T0))


@pytest.mark.parametrize("annotation_id", ["999999", str(2**63), str(10**30)])
def test_an_unknown_annotation_is_a_404_in_the_api_shape(read_client, annotation_id):
    response = read_client.get(f"/api/annotations/{annotation_id}/impact/")

    assert response.status_code == 404
    assert response.json() == {"detail": f"No annotation with id {annotation_id}."}
