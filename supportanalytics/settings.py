"""Settings for Support Analytics.

One settings module; everything that differs between machines comes from environment
variables (see `.env.example`). Without ``DATABASE_URL`` the project uses its private
PostgreSQL cluster (`supportanalytics/localdb.py`).
"""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from supportanalytics import localdb

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


# "Local mode": no DATABASE_URL, so the private cluster in this checkout is used
# (make run, make test, manage.py on a developer's machine). Production sets
# DATABASE_URL and must then also set a secret key and its host names.
LOCAL_MODE = not os.environ.get("DATABASE_URL")

DEBUG = env_bool("DJANGO_DEBUG", False)


def _key(variable: str, file_name: str) -> str:
    """A key from the environment; in local mode, else a random one kept in var/ (git-ignored),
    so that it survives restarts. Production refuses to start without it (cookiecutter-django's
    production.py)."""
    if value := os.environ.get(variable, ""):
        return value
    if not LOCAL_MODE:
        raise ImproperlyConfigured(f"{variable} must be set when DATABASE_URL is set (see .env.example).")
    path = localdb.var_dir() / file_name
    if not path.exists():
        import secrets

        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _key("DJANGO_SECRET_KEY", "secret_key")
# The key of the HMAC-SHA256 under which customer ids are stored (conversations.customers):
# the raw id never is. Lose or change it and no later conversation of a customer matches an
# earlier one: it belongs in the backups (README, "Is it really resolved?").
CUSTOMER_ID_HASH_KEY = _key("CUSTOMER_ID_HASH_KEY", "customer_id_hash_key")

ALLOWED_HOSTS = env_list(
    "DJANGO_ALLOWED_HOSTS",
    ["localhost", "127.0.0.1", "[::1]", "testserver"] if LOCAL_MODE else [],
)
if not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "DJANGO_ALLOWED_HOSTS must be set when DATABASE_URL is set (see .env.example)."
    )
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

# HTTPS only in production (`manage.py check --deploy` finds nothing to report); local mode
# keeps serving plain http://127.0.0.1. /healthz is answered before the redirect and the host
# check (supportanalytics.health), so a load balancer may probe it over plain HTTP by IP.
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", not LOCAL_MODE)
if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False):
    # Behind a TLS-terminating proxy the app sees plain HTTP: trust the proxy's word that the
    # client used HTTPS, or every request would be redirected again. Only set this when the
    # proxy sets the header itself (overwriting any the client sent).
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Browsers then refuse plain HTTP for this host (and its subdomains) for a year; 0 turns it off.
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_SECURE_HSTS_SECONDS") or (0 if LOCAL_MODE else 31_536_000))
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_PRELOAD = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not LOCAL_MODE

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    # The scheduler (conversations/tasks.py): its tables come with `manage.py migrate`, its
    # worker is `manage.py procrastinate worker`, its jobs are listed in the admin.
    "procrastinate.contrib.django",
    "conversations",
    "axes",  # failed-login lockout (after our apps: its admin pages come last)
]

MIDDLEWARE = [
    # Outermost: times and logs every request, with its X-Request-ID (supportanalytics.request_logging).
    "supportanalytics.request_logging.RequestLogMiddleware",
    # Then: /healthz skips the HTTPS redirect and the ALLOWED_HOSTS check (see its docstring).
    "supportanalytics.health.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Turns axes' lockout of a login attempt into the lockout page (429).
    "axes.middleware.AxesMiddleware",
    # Last, so its process_exception sees a view's database error first: 503, not 500.
    "supportanalytics.outage.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "supportanalytics.urls"
WSGI_APPLICATION = "supportanalytics.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL") or localdb.database_url(),
        conn_max_age=int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        conn_health_checks=True,
    )
}
# Django's backend, with the health check skipped for a connection that was used within the
# last half second (supportanalytics/postgresql/base.py).
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["ENGINE"] = "supportanalytics.postgresql"

# Django turns psycopg's prepared statements off, for transaction-mode poolers. Its own
# queries bind client-side and never prepare either way; allowing them lets the ingestion
# statements, which take longer to plan than to run, ask for it (conversations.services).
# Behind a transaction-mode PgBouncer older than 1.21, set DATABASE_PREPARED_STATEMENTS=0.
# While PostgreSQL is unreachable a request must fail fast (503, supportanalytics.outage)
# rather than hang: connect_timeout bounds a new connection (libpq counts at least 2 s);
# tcp_user_timeout (milliseconds, TCP only) drops an open connection whose server stopped
# acknowledging what we send, instead of waiting out the kernel's ~15 minutes of retries.
# A long query on a healthy server is not affected (its request was acknowledged).
DATABASES["default"].setdefault("OPTIONS", {}).setdefault(
    "connect_timeout", int(os.environ.get("DATABASE_CONNECT_TIMEOUT", "5"))
)
DATABASES["default"]["OPTIONS"].setdefault("tcp_user_timeout", 10_000)

if os.environ.get("DATABASE_PREPARED_STATEMENTS", "1") != "0":
    DATABASES["default"].setdefault("OPTIONS", {})["prepare_threshold"] = 1_000_000

if os.environ.get("DJANGO_TEST_DATABASE_NAME"):
    # Lets two test runs share one cluster without dropping each other's test database.
    DATABASES["default"]["TEST"] = {"NAME": os.environ["DJANGO_TEST_DATABASE_NAME"]}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django's database cache, table created by conversations/migrations/0006_cache_table.py, so
# that anything cached is shared by every worker and server (per-process memory would give
# each gunicorn worker its own copy). Nothing caches at the moment: the API throttle, its
# first user, now counts in a table of its own (conversations.throttling).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "django_cache",
    }
}

AUTHENTICATION_BACKENDS = [
    # First: refuses a locked-out username+IP before the password is even checked.
    "supportanalytics.login_attempts.LoginAttemptsBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Failed staff logins (/accounts/login/ and /admin/login/), counted per username and IP
# together, so one attacker cannot lock a colleague out from elsewhere. Behind a proxy the IP
# is the proxy's (REMOTE_ADDR), which makes it per username. A success resets the count.
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_LOCKOUT_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
# No start-up banner on every manage.py command (`check --deploy` prints nothing but its result).
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
# Stored timestamps are always UTC; ANALYTICS_TIME_ZONE decides where a "day" starts in
# the time series (and, later, on the dashboard).
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
ANALYTICS_TIME_ZONE = os.environ.get("ANALYTICS_TIME_ZONE", "UTC")

# A conversation is "followed up" when the same customer has another one that ended at most
# this many days after it, and "settled" once it ended at least this many days ago
# (conversations.analytics.figures). Changing it takes `manage.py rebuild_rollups`.
_repeat_days = os.environ.get("REPEAT_CONTACT_DAYS", "7").strip()
REPEAT_CONTACT_DAYS = int(_repeat_days) if _repeat_days.isdigit() else 0
if not 1 <= REPEAT_CONTACT_DAYS <= 90:
    raise ImproperlyConfigured("REPEAT_CONTACT_DAYS must be a whole number of days from 1 to 90.")

# Alerts and digests (issue 18). Emails go through Django's SMTP backend, configured from the
# environment; without EMAIL_HOST in local mode they are printed to the console instead, so
# `make run` works without a mail server.
EMAIL_HOST = os.environ.get("EMAIL_HOST", "")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25") or "25")
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "0").strip().lower() in ("1", "true", "yes", "on")
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Support Analytics <alerts@localhost>")
EMAIL_BACKEND = (
    "django.core.mail.backends.console.EmailBackend"
    if LOCAL_MODE and not EMAIL_HOST
    else "django.core.mail.backends.smtp.EmailBackend"
)
# The worker (`manage.py procrastinate worker`) connects with DATABASES["default"]'s parameters
# (the private cluster's unix socket in local mode). A successful job is deleted when it
# finishes: the evaluation alone runs 1,440 times a day, and what is worth keeping of a pass
# is in AlertEvent and AlertDelivery. Failed jobs stay, listed in the admin.
PROCRASTINATE_WORKER_DEFAULTS = {"delete_jobs": "successful"}

# The address the dashboard is reached at, for the links in emails and webhooks (no request
# to take it from there).
SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # Production: hashed, compressed files (after collectstatic) served by WhiteNoise, no
    # separate web server needed. Local mode serves straight from the app folders.
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if LOCAL_MODE
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = LOCAL_MODE
if LOCAL_MODE:
    localdb.var_dir()
    STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise warns when it is missing

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # First, so that a missing key answers 401 with `WWW-Authenticate: Bearer`.
        "conversations.auth.BearerApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_PARSER_CLASSES": ["conversations.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "conversations.negotiation.FastContentNegotiation",
    "EXCEPTION_HANDLER": "conversations.errors.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Money and rates are Decimals inside; the tutorial's clients expect JSON numbers.
    "COERCE_DECIMAL_TO_STRING": False,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # Per API key (staff sessions per user), counted in PostgreSQL: see
    # conversations/throttling.py. A request is one POST, whether it holds 1 or 1,000
    # conversations. Ingest: twice the single-POST target of a 2-core server (300/s;
    # docs/benchmarks.md, "Ingest throttle rate"), so a bot never meets it, while a runaway
    # loop on a larger deployment does; per second, so Retry-After is 1 s. Read: reports and
    # scripts fetch a few dozen summaries at a time; per minute, so such bursts pass.
    "DEFAULT_THROTTLE_CLASSES": ["conversations.throttling.ApiKeyRateThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "ingest": os.environ.get("API_THROTTLE_INGEST_RATE") or "600/second",
        "read": os.environ.get("API_THROTTLE_READ_RATE") or "1200/minute",
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Support Analytics API",
    "DESCRIPTION": (
        "Ingest finished AI-support conversations and read how well the bot is doing. "
        "Authenticate with `Authorization: Bearer <key>`; create keys with "
        "`python manage.py create_api_token NAME --scope ingest|read|all`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI's files come from drf-spectacular-sidecar, served by the project.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
}

# Bodies above this answer 413 (JSON, from conversations.parsers). A full batch of 1,000
# ordinary conversations is a few hundred kB.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# One JSON object per line in production (log collectors parse it), plain text locally;
# LOG_FORMAT=json or LOG_FORMAT=text chooses. Every line carries the request's id.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("text" if LOCAL_MODE else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "supportanalytics.request_logging.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "supportanalytics.request_logging.JsonFormatter"},
        "text": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "filters": ["request_id"],
            "formatter": "json" if LOG_FORMAT == "json" else "text",
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Not six lines on every manage.py command (the scheduler's tasks registered, in
        # conversations/tasks.py); the worker's own logs (each job started, finished or
        # failed: procrastinate.worker) stay at the root's level.
        "procrastinate.blueprints": {"level": "WARNING"},
        "procrastinate.periodic": {"level": "WARNING"},
    },
}
