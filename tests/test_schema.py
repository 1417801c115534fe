import re

import pytest
import yaml
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_schema_is_valid_openapi_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    # --fail-on-warn turns any drf-spectacular warning (e.g. clashing component names) into an error.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    schema = yaml.safe_load(target.read_text())
    assert schema["openapi"].startswith("3.")
    operations = {op["operationId"] for path in schema["paths"].values() for op in path.values()}
    assert operations == {
        "conversations_ingest",
        "conversations_set_csat",
        "analytics_summary",
        "analytics_topics",
        "analytics_timeseries",
        "analytics_compare",
        "annotations_create",
        "annotations_list",
        "annotations_impact",
        "alert_rules_list",
        "alert_rules_create",
        "alert_rules_retrieve",
        "alert_rules_update",
        "alert_rules_partial_update",
        "alert_rules_destroy",
    }


def test_schema_lists_the_metrics_an_alert_rule_can_watch(client):
    from conversations.alert_rules import ALERT_METRICS

    schema = yaml.safe_load(client.get("/api/schema/").content)
    for component in ("AlertRuleInputRequest", "PatchedAlertRuleInputRequest", "AlertRule"):
        metric = schema["components"]["schemas"][component]["properties"]["metric"]
        ref = metric["$ref"] if "$ref" in metric else metric["allOf"][0]["$ref"]
        enum = schema["components"]["schemas"][ref.rpartition("/")[2]]["enum"]
        assert (
            enum
            == [
                "ai_resolution_rate",
                "avg_csat",
                "csat.score",
                "total_conversations",
                "escalated_conversations",
                "response_time.p95_ms",
                "confirmed_resolution_rate",
                "abandonment_rate",
                "repeat_contact.durable_resolution_rate",
            ]
            == list(ALERT_METRICS)
        )


def test_schema_documents_the_added_metrics(client):
    schema = yaml.safe_load(client.get("/api/schema/").content)
    summary = schema["components"]["schemas"]["AnalyticsSummary"]["properties"]
    tutorial_keys = {"total_conversations", "ai_resolution_rate", "avg_csat", "top_topics", "avg_turns"}
    assert tutorial_keys | {
        "estimated_savings",
        "escalated_conversations",
        "csat",
        "response_time",
        "cost",
    } <= set(summary)
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key from `manage.py create_api_token` (scope ingest, read or all).",
    }


def test_docs_page_loads_every_asset_from_the_project(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(asset.endswith("swagger-ui-bundle.js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), f"external asset {asset}"
        assert client.get(asset).status_code == 200, asset
