"""One settings module, read from the environment (django-environ).

Embedded default (no env): SQLite + Celery's server-less filesystem transport under var/.
Set DATABASE_URL / CELERY_BROKER_URL to use PostgreSQL / Redis.
"""

import re
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DEBUG = env.bool("DJANGO_DEBUG", default=False)
# No production secret is shipped: outside DEBUG a missing key is an error.
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="dev-insecure-key" if DEBUG else "")
if not SECRET_KEY:
    raise RuntimeError("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG is off")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

VAR_DIR = Path(env.str("SPARKDECK_VAR_DIR", default=str(BASE_DIR / "var")))
DATA_ROOT = Path(env.str("SPARKDECK_DATA_ROOT", default=str(VAR_DIR / "data")))
ARTIFACT_ROOT = Path(env.str("SPARKDECK_ARTIFACT_ROOT", default=str(VAR_DIR / "artifacts")))
# Pretrained weights for the transfer-learning template (nothing is downloaded at run time).
WEIGHTS_DIR = Path(env.str("SPARKDECK_WEIGHTS_DIR", default=str(VAR_DIR / "weights")))
# Where executors POST metrics; must be reachable from the Spark executors.
PUBLIC_URL = env.str("SPARKDECK_PUBLIC_URL", default="http://127.0.0.1:8000").rstrip("/")
# `make run`'s Spark History Server: its port, and the event log directory its local cluster's runs
# write to and it reads (seed_demo records both on the `local` cluster).
HISTORY_PORT = env.int("SPARKDECK_HISTORY_PORT", default=18080)
EVENT_LOG_DIR = Path(env.str("SPARKDECK_EVENT_LOG_DIR", default=str(VAR_DIR / "spark-events")))
# Python that runs the driver and the executors (the project's venv by default).
SPARK_PYTHON = env.str("SPARKDECK_SPARK_PYTHON", default=str(BASE_DIR / ".venv" / "bin" / "python"))


def _positive_int(name: str, default: int | None) -> int | None:
    """A positive integer from the environment; anything else set there ("", "abc", "1.5", "0") stops startup."""
    if name not in env:
        return default
    text = env.str(name).strip()
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise ImproperlyConfigured(f"{name} must be a positive integer, not {text!r}")
    return value


# Upload size (dataset files together, a model file): SPARKDECK_MAX_UPLOAD_MB, or the older _BYTES.
if "SPARKDECK_MAX_UPLOAD_MB" in env and "SPARKDECK_MAX_UPLOAD_BYTES" in env:
    raise ImproperlyConfigured("set SPARKDECK_MAX_UPLOAD_MB or SPARKDECK_MAX_UPLOAD_BYTES, not both")
if "SPARKDECK_MAX_UPLOAD_BYTES" in env:
    MAX_UPLOAD_BYTES = _positive_int("SPARKDECK_MAX_UPLOAD_BYTES", None)
else:
    MAX_UPLOAD_BYTES = _positive_int("SPARKDECK_MAX_UPLOAD_MB", 512) * 2**20
# Dataset conversion limits (webapp/datasets/services.limits()); unset = the ingest default.
MAX_CLASSES = _positive_int("SPARKDECK_MAX_CLASSES", None)
MAX_IMAGES = _positive_int("SPARKDECK_MAX_IMAGES", None)  # images in a ZIP of images
MAX_PIXELS = _positive_int("SPARKDECK_MAX_PIXELS", None)  # pixels of one image in a ZIP
MAX_VALUES = _positive_int("SPARKDECK_MAX_VALUES", None)  # rows × features of one dataset (bounds its Parquet)
RECONCILE_SECONDS = env.float("SPARKDECK_RECONCILE_SECONDS", default=2.0)
# A run claimed (SUBMITTED) that launched nothing this long after its claim lost its worker: it is sent again.
LOST_SUBMISSION_SECONDS = _positive_int("SPARKDECK_LOST_SUBMISSION_SECONDS", 60)
# A driver's host that has not answered for this long is shown as not answering; after the grace,
# its runs are failed with that reason (workers/supervision.py).
DRIVER_SILENT_SECONDS = _positive_int("SPARKDECK_DRIVER_SILENT_SECONDS", 30)
DRIVER_HOST_GRACE_SECONDS = _positive_int("SPARKDECK_DRIVER_HOST_GRACE_SECONDS", 300)
# Standalone runs' JVMs map Spark's classes from archives learned from earlier runs (workers/jvm_cds.py).
JVM_CLASS_ARCHIVES = env.bool("SPARKDECK_JVM_CLASS_ARCHIVES", default=True)
# The web server's processes and threads per process (webapp/gunicorn.conf.py; docs/architecture.md).
WEB_WORKERS = _positive_int("SPARKDECK_WEB_WORKERS", 2)
WEB_THREADS = _positive_int("SPARKDECK_WEB_THREADS", 4)
# Executor resources are sampled from the Spark UI of every RUNNING run this often (docs/monitoring.md).
SPARKDECK_SAMPLE_SECONDS = _positive_int("SPARKDECK_SAMPLE_SECONDS", 5)
# The watchdog (webapp/runs/watchdog.py, docs/watchdog.md) fails a run this long after diagnosing it stuck.
SPARKDECK_STUCK_GRACE_SECONDS = _positive_int("SPARKDECK_STUCK_GRACE_SECONDS", 30)
# A conversion still CONVERTING after this long lost its worker (killed, restarted): it is failed.
CONVERSION_TIMEOUT_SECONDS = _positive_int("SPARKDECK_CONVERSION_TIMEOUT_SECONDS", 4 * 3600)
# An UPLOADED dataset whose conversion was queued this long ago and never started is queued again.
CONVERSION_REQUEUE_SECONDS = _positive_int("SPARKDECK_CONVERSION_REQUEUE_SECONDS", 300)

# --- HTTPS: secure by default, so `manage.py check --deploy` passes with DJANGO_DEBUG off ---------
# Cookies only over HTTPS, HSTS and the http → https redirect are on unless SPARKDECK_INSECURE_HTTP=1,
# which `make run`, the tests and docker-compose.yml set: they serve plain http (on loopback or a
# private network), where secure cookies would make login impossible. A deployment that forgets the
# variable fails closed (login needs HTTPS) instead of sending session cookies in clear.
INSECURE_HTTP = env.bool("SPARKDECK_INSECURE_HTTP", default=False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = not INSECURE_HTTP
# Off when the TLS proxy in front redirects itself.
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not INSECURE_HTTP)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load balancers probe over plain http
SECURE_HSTS_SECONDS = 0 if INSECURE_HTTP else env.int("DJANGO_SECURE_HSTS_SECONDS", default=365 * 24 * 3600)
if SECURE_HSTS_SECONDS < 0:
    raise ImproperlyConfigured("DJANGO_SECURE_HSTS_SECONDS must be 0 (off) or a positive number of seconds")
# Both bind every host under the domain (preload: for months, through the browsers' lists), so they
# are the operator's explicit choice; left off, their deploy-check reminders are silenced here.
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SILENCED_SYSTEM_CHECKS = [
    *([] if SECURE_HSTS_INCLUDE_SUBDOMAINS else ["security.W005"]),
    *([] if SECURE_HSTS_PRELOAD else ["security.W021"]),
]
# Behind a TLS-terminating proxy: the header it sets to "https" (e.g. X-Forwarded-Proto). Opt-in: only
# when the proxy always sets (or strips) it, else a client could claim HTTPS itself.
_proxy_header = env.str("DJANGO_SECURE_PROXY_SSL_HEADER", default="").strip()
if _proxy_header:
    _meta = _proxy_header.upper().replace("-", "_")
    _meta = _meta if _meta.startswith("HTTP_") else f"HTTP_{_meta}"
    if not _meta[5:] or not all(c.isascii() and (c.isalnum() or c == "_") for c in _meta):
        raise ImproperlyConfigured(f"DJANGO_SECURE_PROXY_SSL_HEADER is not a header name: {_proxy_header!r}")
    SECURE_PROXY_SSL_HEADER = (_meta, "https")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "webapp.accounts",
    "webapp.clusters",
    "webapp.catalog",
    "webapp.datasets",
    "webapp.modelfiles",
    "webapp.runs",
    "webapp.sweeps",
    "webapp.registry",
    "webapp.history",
    "webapp.ops",
    "webapp.api",
    "webapp.notifications",
    "webapp.monitoring",
    "axes",  # login lockout (the login-throttling region below)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "webapp.accounts.middleware.LoginRequiredMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a lockout into the 429 page
]

ROOT_URLCONF = "webapp.urls"
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
            ]
        },
    }
]
WSGI_APPLICATION = "webapp.wsgi.application"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'sparkdeck.sqlite3'}")}
# Persistent connections (one per web thread / worker process, closed after a minute idle): a new
# PostgreSQL connection per request (a forked backend, authentication, `SET TIME ZONE`) was a large
# share of a page's time under load (docs/performance.md). Checked before reuse, so a restarted
# database costs no failed request. `?conn_max_age=N` in DATABASE_URL overrides it (0: per request).
DATABASES["default"].setdefault("CONN_MAX_AGE", 60)
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    # Web and worker write concurrently; wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
# --- login throttling (django-axes: failed logins per username and client address, in the database) ---
# The login form and admin's: after SPARKDECK_LOGIN_FAILURE_LIMIT wrong passwords for one username from
# one address, that pair is refused (429, even with the right password) for the cool-off; others are
# not affected, and a successful login clears the count. The address is REMOTE_ADDR: behind a proxy
# all clients share it, and the per-username count still holds.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = _positive_int("SPARKDECK_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=_positive_int("SPARKDECK_LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# /api/token/ (making or rotating an API key) per user: DRF's throttle, a rate like "10/hour".
API_TOKEN_RATE = env.str("SPARKDECK_API_TOKEN_RATE", default="10/hour")
if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", API_TOKEN_RATE):
    raise ImproperlyConfigured(f"SPARKDECK_API_TOKEN_RATE must look like 10/hour, not {API_TOKEN_RATE!r}")

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static", ("vendor/chartjs", BASE_DIR / "node_modules" / "chart.js" / "dist")]
WHITENOISE_USE_FINDERS = DEBUG

DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads stream to a temp file

# Celery: Redis when CELERY_BROKER_URL is set, else the server-less filesystem transport.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _q = VAR_DIR / "celery-queue"
    for _d in (_q, VAR_DIR / "celery-processed", VAR_DIR / "celery-control"):
        _d.mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_q),
        "data_folder_out": str(_q),
        "processed_folder": str(VAR_DIR / "celery-processed"),
        "control_folder": str(VAR_DIR / "celery-control"),  # kombu's default is ./control
        "store_processed": False,
        # kombu's default of 1 s is up to a second on every task, run submission included.
        "polling_interval": 0.2,
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
# Queues (docs/architecture.md): run control, dataset/model-file ingest and notifications apart, so a
# long conversion never delays a reconcile; host.<node> (workers.supervision.host_queue) for the
# operations on one host's driver processes. Unrouted tasks go to `control`.
CELERY_TASK_DEFAULT_QUEUE = "control"
CELERY_TASK_ROUTES = {
    "webapp.datasets.tasks.*": {"queue": "ingest"},
    "webapp.modelfiles.tasks.*": {"queue": "ingest"},
    "webapp.notifications.tasks.*": {"queue": "notify"},
}
# At-least-once (Celery's reliability guidance): every task is idempotent (a compare-and-set claim or a
# re-read of the truth), so it is acknowledged only once done and redelivered if its worker dies.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # a busy worker holds no queued task another could run
# Time limits for everything but the conversion (whose own limit is CONVERSION_TIMEOUT_SECONDS).
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # An unacknowledged task is handed out again after this; above the longest task (a conversion),
    # so a slow task is never run twice at once. A killed worker's tasks come back after it, and the
    # periodic sweeps (lost submissions, lost conversions) recover them sooner.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": CONVERSION_TIMEOUT_SECONDS + 600}

# E-mail (run notifications, webapp/notifications): the console backend unless configured.
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = _positive_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("set EMAIL_USE_TLS or EMAIL_USE_SSL, not both")
EMAIL_TIMEOUT = _positive_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Sparkdeck <sparkdeck@localhost>")
# Webhooks: private/loopback hosts are refused unless this is set (tests, trusted intranets).
WEBHOOK_ALLOW_PRIVATE = env.bool("SPARKDECK_WEBHOOK_ALLOW_PRIVATE", default=False)
WEBHOOK_TIMEOUT_SECONDS = _positive_int("SPARKDECK_WEBHOOK_TIMEOUT_SECONDS", 5)
# CA certificates webhook HTTPS is verified against (proxy and CA variables of the environment are
# ignored for webhooks); empty: certifi's bundle.
WEBHOOK_CA_BUNDLE = env.str("SPARKDECK_WEBHOOK_CA_BUNDLE", default="")
# A notification is tried at most this many times; retries wait base × 2^(n-1) seconds, capped.
NOTIFY_MAX_ATTEMPTS = _positive_int("SPARKDECK_NOTIFY_MAX_ATTEMPTS", 5)
NOTIFY_RETRY_BASE_SECONDS = _positive_int("SPARKDECK_NOTIFY_RETRY_BASE_SECONDS", 30)
NOTIFY_RETRY_MAX_SECONDS = _positive_int("SPARKDECK_NOTIFY_RETRY_MAX_SECONDS", 600)

# The REST API (webapp/api, docs/api.md): token or session auth, JSON only, login required by default.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "webapp.api.authentication.ApiTokenAuthentication",  # first: anonymous requests get 401
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "webapp.api.parsers.JSONParser",  # DRF's, with a bound on nesting
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "webapp.api.errors.handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Sparkdeck API",
    "DESCRIPTION": "Runs, sweeps, metrics, logs, predictions, artifacts and datasets of your teams. See docs/api.md.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served from static files (drf-spectacular-sidecar), no CDN
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies as their own components: a FileField is binary there, not a URL.
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "webapp.api.schema.document_errors",  # the error statuses every operation can answer
    ],
    # The registry's version numbers in paths (webapp/registry/converters.py): integers, as bounded there.
    "PATH_CONVERTER_OVERRIDES": {"modelversion": {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}},
    "ENUM_NAME_OVERRIDES": {
        "RunStatusEnum": "webapp.runs.states.Status",
        "DatasetStatusEnum": "webapp.datasets.states.Status",
        "SweepStatusEnum": "webapp.sweeps.states.SweepStatus",
        "TrialStatusEnum": "webapp.sweeps.states.TrialState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("SPARKDECK_LOG_LEVEL", default="INFO")},
}
