"""The management commands: create_api_token, seed_demo, ensure_staff_user."""

import re
import stat
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Min, Q
from rest_framework.test import APIClient

from conversations.models import ApiKey, Conversation, Topic
from tests.conftest import T0
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

CONVERSATION = {
    "session_id": "token-check-1",
    "timestamp": "2026-03-14T11:00:00Z",
    "turns": 3,
    "resolved_by_ai": True,
}


def run(command: str, *args: str) -> str:
    stdout = StringIO()
    call_command(command, *args, stdout=stdout, no_color=True)
    return stdout.getvalue()


def bearer_client(key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return client


# --- create_api_token -------------------------------------------------------------------


def test_create_api_token_prints_the_key_alone_on_the_last_line():
    lines = run("create_api_token", "support-bot", "--scope", "ingest").splitlines()

    key = lines[-1]
    api_key = ApiKey.objects.get()
    assert re.fullmatch(r"[A-Za-z0-9]+\.[A-Za-z0-9]+", key)
    assert key.startswith(f"{api_key.prefix}.")
    assert (api_key.name, api_key.scope, api_key.revoked) == ("support-bot", "ingest", False)
    assert ApiKey.objects.get_from_key(key) == api_key


@pytest.mark.usefixtures("frozen_now")
@pytest.mark.parametrize(
    ("scope", "ingest_status", "read_status"),
    [("ingest", 201, 403), ("read", 403, 200), ("all", 201, 200)],
)
def test_create_api_token_scope_decides_what_the_key_may_do(scope, ingest_status, read_status):
    key = run("create_api_token", f"{scope}-client", "--scope", scope).splitlines()[-1]
    client = bearer_client(key)

    ingest = client.post("/api/conversations/", CONVERSATION, format="json")
    read = client.get("/api/analytics")

    assert (ingest.status_code, read.status_code) == (ingest_status, read_status)
    assert Conversation.objects.filter(session_id="token-check-1").exists() == (ingest_status == 201)


def test_create_api_token_defaults_to_the_ingest_scope():
    run("create_api_token", "support-bot")

    assert ApiKey.objects.get().scope == "ingest"


def test_create_api_token_stores_only_a_hash_of_the_key():
    key = run("create_api_token", "support-bot", "--scope", "all").splitlines()[-1]

    row = ApiKey.objects.values().get()
    columns_holding_the_key = [column for column, value in row.items() if key in str(value)]
    assert columns_holding_the_key == []
    assert row["hashed_key"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["support-bot", "--scope", "admin"], "invalid choice: 'admin'"),
        (["  "], "NAME must be 1 to 50 characters."),
        (["x" * 51], "NAME must be 1 to 50 characters."),
    ],
)
def test_create_api_token_refuses_bad_arguments(args, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        run("create_api_token", *args)

    assert ApiKey.objects.count() == 0


# --- seed_demo ----------------------------------------------------------------------------


@pytest.mark.usefixtures("frozen_now")
def test_seed_demo_creates_exactly_n_varied_conversations_within_the_last_days():
    output = run("seed_demo", "--conversations", "200", "--days", "3")

    assert output == "Demo data: 200 conversations created, 0 replaced, over 3 days.\n"
    stats = Conversation.objects.aggregate(
        conversations=Count("id"),
        oldest=Min("timestamp"),
        newest=Max("timestamp"),
        resolved=Count("id", filter=Q(resolved_by_ai=True)),
        escalated=Count("id", filter=Q(resolved_by_ai=False)),
        with_csat=Count("id", filter=Q(csat__isnull=False)),
        without_csat=Count("id", filter=Q(csat__isnull=True)),
    )
    assert stats["conversations"] == 200
    assert T0 - timedelta(days=3) <= stats["oldest"] <= stats["newest"] <= T0
    assert stats["resolved"] > 0
    assert stats["escalated"] > 0
    assert stats["with_csat"] > 0
    assert stats["without_csat"] > 0
    used = {topic_id for ids in Conversation.objects.values_list("topic_ids", flat=True) for topic_id in ids}
    assert Topic.objects.filter(id__in=used).count() >= 5


@pytest.mark.usefixtures("frozen_now")
def test_seed_demo_twice_with_the_same_seed_replaces_the_same_data():
    run("seed_demo", "--conversations", "50", "--days", "2", "--seed", "7")
    fields = ["session_id", "timestamp", "turns", "resolved_by_ai", "csat", "channel", "ai_cost"]
    first = list(Conversation.objects.order_by("session_id").values_list(*fields))

    output = run("seed_demo", "--conversations", "50", "--days", "2", "--seed", "7")

    assert output == "Demo data: 0 conversations created, 50 replaced, over 2 days.\n"
    assert list(Conversation.objects.order_by("session_id").values_list(*fields)) == first


@pytest.mark.usefixtures("frozen_now")
def test_seed_demo_only_if_empty_leaves_existing_data_alone():
    existing = ConversationFactory(session_id="real-1")

    output = run("seed_demo", "--only-if-empty", "--conversations", "20", "--days", "2")

    assert output == "Conversations already stored: no demo data loaded.\n"
    assert list(Conversation.objects.values_list("pk", flat=True)) == [existing.pk]


@pytest.mark.usefixtures("frozen_now")
def test_seed_demo_only_if_empty_loads_into_an_empty_database():
    output = run("seed_demo", "--only-if-empty", "--conversations", "20", "--days", "2")

    assert output == "Demo data: 20 conversations created, 0 replaced, over 2 days.\n"
    assert Conversation.objects.count() == 20


def test_seed_demo_refuses_a_window_shorter_than_a_day():
    with pytest.raises(CommandError, match="--days >= 1"):
        run("seed_demo", "--conversations", "10", "--days", "0")

    assert Conversation.objects.count() == 0


# --- ensure_staff_user --------------------------------------------------------------------


@pytest.fixture
def base_dir(settings, tmp_path):
    """Keep the command's var/staff-login.txt out of the real checkout."""
    settings.BASE_DIR = tmp_path
    return tmp_path


def test_ensure_staff_user_creates_an_admin_whose_printed_password_works(base_dir, django_user_model):
    output = run("ensure_staff_user")

    match = re.search(r"username: admin  password: (\S+)", output)
    assert match, output
    password = match.group(1)
    user = django_user_model.objects.get()
    assert (user.username, user.is_active, user.is_staff, user.is_superuser) == ("admin", True, True, True)
    assert authenticate(username="admin", password=password) == user
    credentials = base_dir / "var" / "staff-login.txt"
    assert credentials.read_text() == f"username: admin\npassword: {password}\n"
    assert stat.S_IMODE(credentials.stat().st_mode) == 0o600


def test_ensure_staff_user_twice_creates_nothing_and_prints_no_password(base_dir, django_user_model):
    first = run("ensure_staff_user")
    password = re.search(r"password: (\S+)", first).group(1)

    second = run("ensure_staff_user")

    credentials = base_dir / "var" / "staff-login.txt"
    assert second == f"Staff login exists (password in {credentials}).\n"
    assert password not in second
    assert django_user_model.objects.count() == 1
    assert authenticate(username="admin", password=password) is not None


def test_ensure_staff_user_keeps_an_existing_staff_login(base_dir, staff_user, django_user_model):
    output = run("ensure_staff_user")

    assert output == "Staff login exists.\n"
    assert list(django_user_model.objects.values_list("username", flat=True)) == ["lead"]
    assert not (base_dir / "var" / "staff-login.txt").exists()
