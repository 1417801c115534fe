"""Database constraints (held by PostgreSQL even when Python validation is skipped) and QuerySet methods."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connection, connections, transaction

from conversations.apps import SESSION_SETTINGS
from conversations.models import Conversation, CostSettings, Topic
from tests.conftest import T0
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db


# --- Constraints --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "constraint"),
    [
        ({"csat": 0}, "conversation_csat_range"),
        ({"csat": 6}, "conversation_csat_range"),
        ({"turns": -1}, "conversation_turns_range"),
        ({"turns": 10_001}, "conversation_turns_range"),
        ({"avg_response_ms": -0.5}, "conversation_avg_response_ms_range"),
        ({"avg_response_ms": 86_400_000.5}, "conversation_avg_response_ms_range"),
        ({"response_count": -1}, "conversation_response_count_range"),
        ({"response_count": 10_001}, "conversation_response_count_range"),
        ({"ai_cost": Decimal("-0.000001")}, "conversation_ai_cost_non_negative"),
        ({"session_id": ""}, "conversation_session_id_not_empty"),
    ],
)
def test_conversation_check_constraints_refuse_bad_values(fields, constraint):
    # objects.create() skips full_clean(): only the database stands in the way.
    with pytest.raises(IntegrityError, match=constraint), transaction.atomic():
        ConversationFactory(**fields)

    assert Conversation.objects.count() == 0


def test_conversation_constraints_also_hold_for_updates():
    conversation = ConversationFactory(csat=4)

    with pytest.raises(IntegrityError, match="conversation_csat_range"), transaction.atomic():
        Conversation.objects.filter(pk=conversation.pk).update(csat=6)

    conversation.refresh_from_db()
    assert conversation.csat == 4


@pytest.mark.parametrize(
    "fields",
    [
        {"csat": 1},
        {"csat": 5},
        {"csat": None},
        {"turns": 0},
        {"turns": 10_000},
        {"avg_response_ms": 0.0, "response_count": 0},
        {"avg_response_ms": 86_400_000.0, "response_count": 10_000},
        {"avg_response_ms": None, "response_count": None},
        {"ai_cost": Decimal("0")},
    ],
)
def test_conversation_constraints_accept_the_edge_values(fields):
    conversation = ConversationFactory(**fields)

    stored = Conversation.objects.values(*fields).get(pk=conversation.pk)
    assert stored == fields


def test_duplicate_session_id_is_refused():
    first = ConversationFactory(session_id="abc-1")

    # The factory writes through the ingestion service, which replaces; a plain INSERT
    # of the same id must hit the database's unique constraint.
    with pytest.raises(IntegrityError, match="conversation_session_id_unique"), transaction.atomic():
        Conversation.objects.create(
            session_id="abc-1",
            timestamp=first.timestamp,
            turns=1,
            resolved_by_ai=True,
            received_at=first.timestamp,
        )

    assert Conversation.objects.filter(session_id="abc-1").count() == 1


def test_duplicate_topic_name_is_refused():
    Topic.objects.create(name="billing")

    with pytest.raises(IntegrityError, match="topic_name_unique"), transaction.atomic():
        Topic.objects.create(name="billing")

    assert Topic.objects.count() == 1


def test_empty_topic_name_is_refused():
    with pytest.raises(IntegrityError, match="topic_name_not_empty"), transaction.atomic():
        Topic.objects.create(name="")

    assert Topic.objects.count() == 0


def test_a_second_cost_settings_row_is_refused():
    CostSettings.load()

    with pytest.raises(IntegrityError, match="cost_settings_singleton"), transaction.atomic():
        CostSettings.objects.create(id=2)

    assert list(CostSettings.objects.values_list("pk", flat=True)) == [CostSettings.SINGLETON_ID]


@pytest.mark.parametrize(
    "fields",
    [{"human_cost_per_conversation": Decimal("-0.01")}, {"ai_cost_per_conversation": Decimal("-0.0001")}],
)
def test_negative_costs_are_refused(fields):
    with pytest.raises(IntegrityError, match="cost_settings_non_negative"), transaction.atomic():
        CostSettings.objects.create(id=CostSettings.SINGLETON_ID, **fields)

    assert CostSettings.objects.count() == 0


def test_cost_settings_load_creates_the_single_row_once():
    first = CostSettings.load()
    second = CostSettings.load()

    assert first.pk == second.pk == CostSettings.SINGLETON_ID
    assert (second.human_cost_per_conversation, second.ai_cost_per_conversation, second.currency) == (
        Decimal("5.00"),
        Decimal("0.0500"),
        "USD",
    )
    assert CostSettings.objects.count() == 1


# --- ConversationQuerySet -----------------------------------------------------------------

START = T0 - timedelta(days=1)
END = T0


@pytest.fixture
def around_the_window():
    """One conversation at each edge of [START, END), and one inside."""
    offsets = {
        "before-start": START - timedelta(microseconds=1),
        "at-start": START,
        "inside": START + timedelta(hours=12),
        "just-before-end": END - timedelta(microseconds=1),
        "at-end": END,
    }
    for session_id, timestamp in offsets.items():
        ConversationFactory(session_id=session_id, timestamp=timestamp)


def session_ids(queryset) -> set[str]:
    return set(queryset.values_list("session_id", flat=True))


@pytest.mark.usefixtures("around_the_window")
def test_in_window_includes_the_start_and_excludes_the_end():
    assert session_ids(Conversation.objects.in_window(START, END)) == {
        "at-start",
        "inside",
        "just-before-end",
    }


@pytest.mark.usefixtures("around_the_window")
def test_in_window_without_start_excludes_both_edges():
    assert session_ids(Conversation.objects.in_window(START, END, include_start=False)) == {
        "inside",
        "just-before-end",
    }


@pytest.mark.usefixtures("around_the_window")
def test_in_window_of_zero_length_is_empty():
    assert session_ids(Conversation.objects.in_window(START, START)) == set()


def test_for_channel_filters_by_exact_channel_and_none_means_all():
    ConversationFactory(session_id="web-1", channel="web")
    ConversationFactory(session_id="email-1", channel="email")
    ConversationFactory(session_id="no-channel", channel="")

    assert session_ids(Conversation.objects.for_channel("web")) == {"web-1"}
    assert session_ids(Conversation.objects.for_channel("")) == {"no-channel"}
    assert session_ids(Conversation.objects.for_channel("Web")) == set()
    assert session_ids(Conversation.objects.for_channel(None)) == {"web-1", "email-1", "no-channel"}


def test_with_topic_filters_by_topic_once_per_conversation_and_none_means_all():
    ConversationFactory(session_id="billing-only", topics=["billing"])
    ConversationFactory(session_id="billing-and-refund", topics=["billing", "refund"])
    ConversationFactory(session_id="no-topics")

    billing = Conversation.objects.with_topic("billing")
    assert session_ids(billing) == {"billing-only", "billing-and-refund"}
    assert billing.count() == 2  # no row twice for a conversation with several topics
    assert session_ids(Conversation.objects.with_topic("refund")) == {"billing-and-refund"}
    assert session_ids(Conversation.objects.with_topic("shipping")) == set()
    assert session_ids(Conversation.objects.with_topic(None)) == {
        "billing-only",
        "billing-and-refund",
        "no-topics",
    }


@pytest.mark.usefixtures("around_the_window")
def test_queryset_methods_chain():
    ConversationFactory(session_id="inside-email", timestamp=START + timedelta(hours=1), channel="email")

    chained = Conversation.objects.in_window(START, END).for_channel("email").with_topic(None)

    assert session_ids(chained) == {"inside-email"}


# --- Connection settings -------------------------------------------------------------------


def test_every_connection_gets_the_session_settings():
    # A fresh connection, as a new worker opens one: JIT off, generic plans for the
    # prepared ingestion statements, no parallel workers (conversations/apps.py).
    fresh = connections.create_connection(DEFAULT_DB_ALIAS)
    try:
        with fresh.cursor() as cursor:
            for name, value in SESSION_SETTINGS.items():
                cursor.execute(f"SHOW {name}")
                assert cursor.fetchone() == (value,), name
    finally:
        fresh.close()


def test_small_ingestion_batches_use_a_prepared_generic_plan():
    for number in range(3):
        ConversationFactory(session_id=f"prepared-{number}")

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%conversations_conversation AS t%"],
        )
        [(generic, custom)] = cursor.fetchall()
    assert generic >= 3
    assert custom == 0


def test_a_figure_reading_a_column_rollup_deltas_lack_is_a_system_error(monkeypatch):
    from django.db.models import Q

    from conversations import checks
    from conversations.analytics import figures

    assert checks.figures_travel_with_rollup_changes(None) == []
    extra = figures.Figure("by_session", "test only", figures._integer, where=Q(session_id="x"))
    monkeypatch.setattr(figures, "FIGURES", (*figures.FIGURES, extra))

    [error] = checks.figures_travel_with_rollup_changes(None)
    assert error.id == "conversations.E001" and "'session_id'" in error.msg


def test_figure_names_that_would_shadow_a_metric_are_system_errors(monkeypatch):
    from datetime import timedelta
    from decimal import Decimal

    from django.db.models import F

    from conversations import checks
    from conversations.analytics import figures

    assert checks.figure_names_are_their_own(None) == []
    shadowing = figures.Figure("escalated", "test only", figures._integer)
    too_fine = figures.Figure("x_sum", "test only", figures._integer, value=F("turns"), scale=Decimal("0.5"))
    cut_off = figures.CutOff("avg_csat", "test only", "conversations", lambda: timedelta(days=1))
    monkeypatch.setattr(figures, "FIGURES", (*figures.FIGURES, shadowing, too_fine))
    monkeypatch.setattr(figures, "NAMES", (*figures.NAMES, "escalated", "x_sum"))
    monkeypatch.setattr(figures, "CUTOFFS", (cut_off,))

    errors = checks.figure_names_are_their_own(None)
    assert [(error.id, error.msg.split("'")[1]) for error in errors] == [
        ("conversations.E002", "escalated"),
        ("conversations.E002", "avg_csat"),
        ("conversations.E003", "x_sum"),
    ]
