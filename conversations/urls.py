from django.urls import path, re_path

from conversations import alert_apis, analytics_apis, annotation_apis, apis

app_name = "conversations"

urlpatterns = [
    path("conversations/", apis.ConversationIngestApi.as_view(), name="ingest"),
    # Session ids are the bot's own strings and may contain "/": match up to "/csat/".
    re_path(
        r"^conversations/(?P<session_id>.+)/csat/?$",
        apis.ConversationCsatApi.as_view(),
        name="csat",
    ),
    # The tutorial's path has no trailing slash; both spellings answer, no redirect.
    re_path(r"^analytics/?$", analytics_apis.AnalyticsSummaryApi.as_view(), name="analytics-summary"),
    path("analytics/topics/", analytics_apis.AnalyticsTopicsApi.as_view(), name="analytics-topics"),
    path("analytics/compare/", analytics_apis.AnalyticsCompareApi.as_view(), name="analytics-compare"),
    path(
        "analytics/timeseries/",
        analytics_apis.AnalyticsTimeseriesApi.as_view(),
        name="analytics-timeseries",
    ),
    path("annotations/", annotation_apis.AnnotationListCreateApi.as_view(), name="annotations"),
    path(
        "annotations/<int:annotation_id>/impact/",
        annotation_apis.AnnotationImpactApi.as_view(),
        name="annotation-impact",
    ),
    path("alert-rules/", alert_apis.AlertRuleListCreateApi.as_view(), name="alert-rules"),
    path("alert-rules/<int:rule_id>/", alert_apis.AlertRuleDetailApi.as_view(), name="alert-rule"),
]
