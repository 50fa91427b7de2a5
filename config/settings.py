"""Leadswitch settings: one module, configured by environment variables.

Every variable is documented in README.md and .env.example. A bad value fails at start-up with
ImproperlyConfigured; a production secret has no default.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.proxies import proxy_networks

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# A local .env file is a convenience for development (`./dev run` writes one with DEBUG=1); real
# deployments set the environment. Variables already set win. ENV_FILE= (empty) reads none.
ENV_FILE = os.environ.get("ENV_FILE", str(BASE_DIR / ".env"))
if ENV_FILE and Path(ENV_FILE).is_file():
    env.read_env(ENV_FILE)


def _env_bool(name: str, *, default: bool) -> bool:
    """Read a boolean strictly: a typo must not silently mean False."""
    raw = env.str(name, default="")
    if raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), not {raw!r}")


def _env_int(name: str, *, default: int, minimum: int = 0) -> int:
    raw = env.str(name, default="")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    return value


DEBUG = _env_bool("DEBUG", default=False)

# Commands that read only the code's models and migrations: they sign and decrypt nothing, so
# a checkout can run them (`makemigrations --check` in a hook) without the deployment's key.
_KEYLESS_COMMANDS = frozenset({"makemigrations", "showmigrations"})

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG and sys.argv[1:2] and sys.argv[1] in _KEYLESS_COMMANDS:
        SECRET_KEY = secrets.token_urlsafe(50)  # for this process only: nothing is signed
    elif not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is required when DEBUG is off: set it to a long random string "
            "(python -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    else:
        SECRET_KEY = "django-insecure-leadswitch-development-key-do-not-use-in-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Buyer credentials are stored encrypted (Fernet). By default the key is derived from SECRET_KEY;
# set FIELD_ENCRYPTION_KEY explicitly so that SECRET_KEY can be rotated without losing them.
FIELD_ENCRYPTION_KEY = (
    env.str("FIELD_ENCRYPTION_KEY", default="")
    or base64.urlsafe_b64encode(
        hashlib.sha256(f"leadswitch-field-encryption:{SECRET_KEY}".encode()).digest()
    ).decode()
)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "simple_history",
    "axes",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "leads",
    "buyers",
    "notifications",
    "routing",
    "teams",
    "exchange",
    "reporting",
    "privacy",
    "marketplace",
    # Development tools, not the product: `manage.py simulate_buyers` serves fake buyers and
    # `manage.py load_demo` a demo marketplace pointed at them.
    "simulator",
]

MIDDLEWARE = [
    # Before all: load balancers' probes carry a node's address over plain HTTP (config/views.py).
    "config.views.HealthMiddleware",
    # First: forwarded headers from anyone but a trusted proxy are gone before anything reads them.
    "config.proxies.TrustedProxyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Who made a change: every history record of an admin save names its user.
    "simple_history.middleware.HistoryRequestMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it answers a locked-out login.
    "axes.middleware.AxesMiddleware",
]

# django-axes counts failed logins (admin, dashboards) and locks out the address or user name.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
# simple_history's own revert saves the old row as it was, unvalidated and without its parts: off.
# A contract is reverted with its parts, validated, from its history page (buyers.services).
SIMPLE_HISTORY_REVERT_DISABLED = True

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
                "csp.context_processors.nonce",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

# Unset DATABASE_URL means the embedded default: a SQLite file next to manage.py.
DATABASES = {
    # An empty DATABASE_URL means unset, as an empty CELERY_BROKER_URL does.
    "default": env.db_url_config(
        env.str("DATABASE_URL", default="") or f"sqlite:///{BASE_DIR / 'leadswitch.sqlite3'}"
    ),
}
# A streaming replica (optional): the dashboards, the reporting API and the CSV exports read from
# it, where they ask for it (config/db_router.py); nothing else does, and nothing migrates it.
# Empty means unset. In tests it stands for the default test database (Django's test mirror).
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = env.db_url_config(DATABASE_REPLICA_URL)
    if DATABASES["replica"]["ENGINE"] != DATABASES["default"]["ENGINE"]:
        raise ImproperlyConfigured(
            "DATABASE_REPLICA_URL must be a replica of DATABASE_URL, on the same database engine"
        )
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["config.db_router.ReplicaRouter"]
# Seconds a process reads reports from the primary after the replica failed to answer.
DATABASE_REPLICA_RETRY_SECONDS = _env_int("DATABASE_REPLICA_RETRY_SECONDS", default=30)

if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # A runaway query or a lock nobody releases fails as an error within these bounds, instead
    # of holding a web thread past gunicorn's 30 s or a task past its soft time limit. Row and
    # advisory locks are held for milliseconds here; 0 turns a bound off (a long migration).
    DATABASE_STATEMENT_TIMEOUT_MS = _env_int("DATABASE_STATEMENT_TIMEOUT_MS", default=20_000)
    DATABASE_LOCK_TIMEOUT_MS = _env_int("DATABASE_LOCK_TIMEOUT_MS", default=10_000)
    for _database in DATABASES.values():  # the primary and its replica alike
        _database["CONN_MAX_AGE"] = _env_int("CONN_MAX_AGE", default=60)
        _database["CONN_HEALTH_CHECKS"] = True
        # A server that does not answer (a lost host, a dropped packet) fails a connection
        # within this bound instead of the minutes TCP would wait, holding a web thread or a
        # probe.
        _options = _database.setdefault("OPTIONS", {})
        _options.setdefault(
            "connect_timeout", _env_int("DATABASE_CONNECT_TIMEOUT", default=5, minimum=1)
        )
        _options["options"] = " ".join(
            part
            for part in (
                _options.get("options", ""),
                f"-c statement_timeout={DATABASE_STATEMENT_TIMEOUT_MS}",
                f"-c lock_timeout={DATABASE_LOCK_TIMEOUT_MS}",
            )
            if part
        )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web server, the simulator-driven worker and the shell read while one writes.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# A contract page posts every cap, window, rule, criterion and mapping at once.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 5000

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- Security: strict unless DEBUG; each can be relaxed explicitly behind a TLS proxy. ---
# The proxies (addresses or CIDR networks) whose X-Forwarded-Proto / -For are believed; from
# anyone else those headers are dropped (config/proxies.py). Empty: no proxy is trusted.
TRUSTED_PROXIES = env.list("TRUSTED_PROXIES", default=[])
try:
    TRUSTED_PROXY_NETWORKS = proxy_networks(TRUSTED_PROXIES)
except ValueError as _exc:
    raise ImproperlyConfigured(f"TRUSTED_PROXIES: {_exc}") from None
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_SSL_REDIRECT = _env_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = _env_bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = _env_bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = _env_int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Failed logins: this many from one address, or for one user name, lock it out for the cool-off
# (429); a successful login resets the count. `manage.py axes_reset` unlocks everyone at once.
AXES_FAILURE_LIMIT = _env_int("LOGIN_FAILURE_LIMIT", default=5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=_env_int("LOGIN_LOCKOUT_MINUTES", default=15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
# Each failure is kept too (who, from where, when), for the admin to read.
AXES_ENABLE_ACCESS_FAILURE_LOG = True
# No start-up banner on every command; failures are still logged with what locked them.
AXES_VERBOSE = False
# The client behind a trusted proxy, never an address a client wrote itself.
AXES_CLIENT_IP_CALLABLE = "config.proxies.client_ip"

# Content-Security-Policy (django-csp): scripts and style sheets only from this site, or inline
# with the response's nonce; style attributes stay allowed (the admin writes some).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, NONCE],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# --- Celery. Unset CELERY_BROKER_URL: tasks run in-process, eagerly (the embedded default). ---
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
# In-process, a task that fails is logged and left to the sweepers, as a worker would leave it:
# the request that enqueued it (a partner's POST) gets the same answer as with a broker.
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# State lives in PostgreSQL, not in task results.
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
# Redis hands an unacknowledged task to another worker after this: it must exceed the hard time
# limit. RabbitMQ needs none: it redelivers a task when the connection that held it closes.
REDIS_VISIBILITY_TIMEOUT_S = 600
# The broker's options follow the URL's scheme ("RabbitMQ or Redis as the broker" in README.md).
_broker_scheme, _sep, _ = CELERY_BROKER_URL.partition("://")
BROKER_KIND = {
    "redis": "redis",
    "rediss": "redis",
    "amqp": "rabbitmq",
    "amqps": "rabbitmq",
    "pyamqp": "rabbitmq",
}.get(_broker_scheme if _sep else "", "")
if CELERY_BROKER_URL and not BROKER_KIND:
    # Only the scheme is shown: the rest of the URL may hold a password.
    raise ImproperlyConfigured(
        "CELERY_BROKER_URL must start with redis://, rediss://, amqp:// or amqps://, not "
        + (f"{_broker_scheme}://" if _sep else "a URL without a scheme")
    )
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, object] = {}
if BROKER_KIND == "redis":
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": REDIS_VISIBILITY_TIMEOUT_S}
if BROKER_KIND == "rabbitmq":
    # Publisher confirms: a publish returns once RabbitMQ has the message (on disk, for a quorum
    # queue on a majority of nodes), so intake's 202 never stands on a message the broker lost.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
    # Quorum queues: replicated, durable, and they count deliveries. Every queue the app declares
    # is one: the default, and any other a worker is started on (`-Q`). Workers see them and use
    # per-consumer QoS, as quorum queues have no global QoS (worker_detect_quorum_queues).
    CELERY_TASK_DEFAULT_QUEUE_TYPE = "quorum"
    CELERY_TASK_CREATE_MISSING_QUEUE_TYPE = "quorum"
    CELERY_WORKER_DETECT_QUORUM_QUEUES = True
    # A retry with a countdown waits on the broker (Celery's native delayed delivery: a ladder
    # of quorum queues with message TTLs), not unacknowledged in a worker; it reaches only queues
    # bound to a topic exchange.
    CELERY_TASK_DEFAULT_EXCHANGE_TYPE = "topic"
    CELERY_TASK_CREATE_MISSING_QUEUE_EXCHANGE_TYPE = "topic"
    CELERY_BROKER_NATIVE_DELAYED_DELIVERY_QUEUE_TYPE = "quorum"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
# Without a broker there is no Celery beat: dashboards and reports bring the rollups up to date
# as they are read (at most once a minute).
ROLLUPS_REFRESH_ON_READ = _env_bool("ROLLUPS_REFRESH_ON_READ", default=not CELERY_BROKER_URL)
# Intake publishes once, without Celery's retry loop: if the broker is down the lead is already
# stored and the sweeper below re-enqueues it, so a partner is never kept waiting on the broker.
CELERY_TASK_PUBLISH_RETRY = False
# Celery closes Django's connections after every task unless told to reuse them; reconnecting
# cost routing a fifth of its throughput here. Tasks drop an unusable connection themselves.
CELERY_DB_REUSE_MAX = _env_int("CELERY_DB_REUSE_MAX", default=500, minimum=0)
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# How often beat runs the sweepers that bring leads to a final state after a fault: waiting leads
# every N seconds, lost routing runs every 2N, missing postbacks every 4N.
SWEEP_EVERY_SECONDS = _env_int("SWEEP_EVERY_SECONDS", default=15, minimum=1)
CELERY_BEAT_SCHEDULE = {
    "re-enqueue leads left waiting for routing": {
        "task": "leads.tasks.sweep_waiting_leads",
        "schedule": float(SWEEP_EVERY_SECONDS),
    },
    "resume routing runs whose worker was lost": {
        "task": "routing.tasks.sweep_stuck_leads",
        "schedule": 2.0 * SWEEP_EVERY_SECONDS,
    },
    "queue postbacks that were never queued": {
        "task": "leads.tasks.sweep_missing_postbacks",
        "schedule": 4.0 * SWEEP_EVERY_SECONDS,
    },
    "purge idempotency records past their 24 hours": {
        "task": "leads.tasks.purge_idempotency_records",
        "schedule": 3600.0,
    },
    "purge raw request bodies past their retention": {
        "task": "leads.tasks.purge_raw_bodies",
        "schedule": 24 * 3600.0,
    },
    "roll up the hours of leads changed since the last run": {
        "task": "reporting.tasks.refresh_rollups",
        "schedule": 60.0,
    },
    "notify ops of sources whose error or duplicate rate is high": {
        "task": "routing.tasks.notify_source_rates",
        "schedule": 300.0,
    },
    "tell held-back notification repeats and requeue lost notifications": {
        "task": "routing.tasks.sweep_notifications",
        "schedule": 60.0,
    },
    "assign queued team leads to members whose hours opened": {
        "task": "routing.tasks.assign_queued_team_leads",
        "schedule": 60.0,
    },
    "reassign team leads nobody claimed in time": {
        "task": "routing.tasks.reassign_unclaimed_team_leads",
        "schedule": 60.0,
    },
    "requeue team notifications whose task was lost": {
        "task": "routing.tasks.requeue_team_notifications",
        "schedule": 300.0,
    },
}

# --- Cache: shared counters (throttling) and locks. Redis when there is one. ---
CACHE_URL = env.str("CACHE_URL", default="") or (
    CELERY_BROKER_URL if BROKER_KIND == "redis" else ""
)
if BROKER_KIND == "rabbitmq" and not CACHE_URL and not DEBUG:
    # Web and worker processes share throttles, the periodic tasks' locks, round-robin counters
    # and `Prefer: wait` wake-ups through Redis; in process memory each would keep its own.
    raise ImproperlyConfigured(
        "With RabbitMQ as the broker, set CACHE_URL to a Redis (e.g. redis://127.0.0.1:6379/1): "
        "the processes share throttles, locks and Prefer: wait through it"
    )
if CACHE_URL:
    CACHES = {"default": {**environ.Env.cache_url_config(CACHE_URL), "KEY_PREFIX": "ls"}}
    if CACHES["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache":
        CACHES["default"]["BACKEND"] = "config.cache.RedisCache"  # one client per pool
        # A Redis that is down or unreachable must fail a call fast, not hang a request.
        CACHES["default"]["OPTIONS"] = {"socket_connect_timeout": 1, "socket_timeout": 2}
else:
    # One process's memory: throttles count per web worker. Fine for the embedded default only.
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- API ---
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["leads.api.auth.SourceKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["leads.api.auth.IsActiveSource"],
    "DEFAULT_THROTTLE_CLASSES": ["leads.api.auth.SourceRateThrottle"],
    "EXCEPTION_HANDLER": "config.problems.exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Leadswitch API",
    "DESCRIPTION": "Partner lead intake and reporting for Leadswitch lead distribution.",
    "VERSION": "1.0.0",
    "OAS_VERSION": "3.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Lead scoring's tiers, named once for every schema that shows a lead's or a report's tier.
    "ENUM_NAME_OVERRIDES": {
        "TierEnum": "leads.scoring.Tier",
        "ReportTierEnum": "reporting.api.serializers.REPORT_TIERS",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "leads.api.schema.describe_vertical_fields",
        "exchange.api.schema.ping_body_is_strict",
    ],
}

# --- E-mail (buyers with e-mail delivery). EMAIL_URL as django-environ reads it. ---
_email = env.email_url("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Leadswitch <leads@localhost>")

# --- Intake ---
INTAKE_MAX_BODY_BYTES = _env_int("INTAKE_MAX_BODY_BYTES", default=64 * 1024, minimum=1024)
# Prefer: wait=N is honoured up to this many seconds.
INTAKE_MAX_WAIT_SECONDS = _env_int("INTAKE_MAX_WAIT_SECONDS", default=10, minimum=0)
# A source's posting instructions shared by link (leads/instructions.py) show without signing in
# for this many days after staff copied the link; then the link answers 410.
POSTING_INSTRUCTIONS_LINK_DAYS = _env_int("POSTING_INSTRUCTIONS_LINK_DAYS", default=30, minimum=1)
IDEMPOTENCY_KEY_HOURS = 24
# Inbound pings (exchange/): the longest a ping's price is held, whatever its bids' validity.
PING_MAX_VALID_SECONDS = _env_int("PING_MAX_VALID_SECONDS", default=120, minimum=1)
# A lead still waiting for routing this long after it was stored is enqueued again.
ROUTING_SWEEP_AFTER_SECONDS = _env_int("ROUTING_SWEEP_AFTER_SECONDS", default=30, minimum=1)
# A routing run older than this is taken to have lost its worker (it must exceed the task's hard
# time limit, so that a live run is never taken over) and is resumed by another.
ROUTING_STALE_SECONDS = _env_int("ROUTING_STALE_SECONDS", default=120, minimum=1)
# Suppression entries are HMAC-SHA256 hashes under this key (derived from SECRET_KEY by default;
# set it explicitly so that SECRET_KEY can be rotated without re-uploading every list).
SUPPRESSION_HASH_KEY = (
    env.str("SUPPRESSION_HASH_KEY", default="")
    or hashlib.sha256(f"leadswitch-suppression:{SECRET_KEY}".encode()).hexdigest()
)
# Raw request bodies of leads (and the bodies of their pings, posts and postbacks) are emptied
# this many days after the lead came in (daily, from beat); 0 keeps them forever.
RAW_BODY_RETENTION_DAYS = _env_int("RAW_BODY_RETENTION_DAYS", default=90, minimum=0)

# --- Reporting ---
# A change committed up to this long after its timestamp was taken is still rolled up: the
# rollup looks again this far behind its last run.
ROLLUP_LOOKBACK_SECONDS = _env_int("ROLLUP_LOOKBACK_SECONDS", default=300, minimum=0)
# At most this many hours are rebuilt per run; the rest wait for the next (no overlap).
ROLLUP_MAX_HOURS_PER_RUN = _env_int("ROLLUP_MAX_HOURS_PER_RUN", default=500, minimum=1)

# --- Leadswitch ---
# Where load_demo points the demo buyers' endpoints (`manage.py simulate_buyers` serves it).
SIMULATOR_URL = env.str("SIMULATOR_URL", default="http://127.0.0.1:9100").rstrip("/")
# Where staff reach this platform: notifications (e-mail, Slack) link to its admin pages here.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
if not SITE_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"SITE_URL must start with http:// or https://, not {SITE_URL!r}")

# Buyer endpoints and postback URLs may only reach public addresses (outbound/guard.py), except
# in these networks: e.g. 127.0.0.1/32 for the buyer simulator in development.
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
for _network in OUTBOUND_ALLOWED_NETWORKS:
    try:
        ipaddress.ip_network(_network, strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"OUTBOUND_ALLOWED_NETWORKS: {_exc}") from None

# Compiled contract rules are kept per process while the vertical is unchanged (admin saves mark
# it changed), and at most this many seconds, which bounds changes made outside the admin.
ELIGIBILITY_RULES_TTL = _env_int("ELIGIBILITY_RULES_TTL", default=60)
# How often a worker asks whether a vertical changed (a small aggregate query): at most once per
# this many milliseconds per vertical, so an admin change reaches routing this much later.
ELIGIBILITY_VERSION_RECHECK_MS = _env_int("ELIGIBILITY_VERSION_RECHECK_MS", default=1000)

# --- Logging: JSON lines by default, plain text for humans with LOG_FORMAT=text. ---
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}"
    )
LOG_FORMAT = env.str("LOG_FORMAT", default="json").lower()
if LOG_FORMAT not in {"json", "text"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
        "text": {"format": "%(asctime)s %(levelname)-7s %(name)s: %(message)s"},
    },
    # A source may send its API key in a query string, staff a consumer's e-mail in an admin
    # search: no record prints either (config/log_filters).
    "filters": {"mask_api_keys": {"()": "config.log_filters.MaskApiKeys"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["mask_api_keys"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # On the loggers too, so that every handler (Django's mail to admins, a test's capture)
        # gets the masked record.
        "django.request": {"filters": ["mask_api_keys"]},
        "django.server": {"filters": ["mask_api_keys"]},
    },
}
