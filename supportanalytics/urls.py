from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.shortcuts import redirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from conversations import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard", permanent=False)),
    # Browsers ask for /favicon.ico on their own (the admin declares no icon).
    # (static() at request time: in production it needs collectstatic's manifest.)
    path("favicon.ico", lambda request: redirect(static("favicon.svg"), permanent=True)),
    path("dashboard/", views.dashboard_view, name="dashboard"),
    path("dashboard/compare/", views.compare_view, name="dashboard-compare"),
    path("dashboard/annotations/<int:annotation_id>/", views.annotation_view, name="dashboard-annotation"),
    path("dashboard/topics.csv", views.topics_csv_view, name="dashboard-topics-csv"),
    path("dashboard/timeseries.csv", views.timeseries_csv_view, name="dashboard-timeseries-csv"),
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/", include("conversations.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]

# A database error outside any view (e.g. a middleware saving the session) answers 503, not 500.
# (/healthz is answered by supportanalytics.health.HealthCheckMiddleware, not by a route.)
handler500 = "supportanalytics.outage.server_error"
# An unknown path under /api/ answers JSON in the API's error shape; elsewhere Django's page.
handler404 = "conversations.errors.not_found"

admin.site.site_header = "Support Analytics"
admin.site.site_title = "Support Analytics admin"
admin.site.index_title = "Conversations, topics, API keys and cost settings"
admin.site.site_url = "/dashboard/"
