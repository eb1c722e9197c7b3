"""Settings, read from the environment (and an optional .env file) with an embedded default.

Embedded default: SQLite under VAR_DIR, Redis on 127.0.0.1:6379, secrets generated once into VAR_DIR.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from icewarp_admin.local_secrets import new_django_secret_key, new_fernet_key, read_or_create

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

VAR_DIR = Path(env("VAR_DIR", default=str(BASE_DIR / "var"))).resolve()
DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="") or read_or_create(
    VAR_DIR / "secret_key", generate=new_django_secret_key
)
# Comma-separated Fernet keys: the first encrypts, all decrypt (rotation: prepend the new key,
# run `manage.py rotate_secrets`, then drop the old one).
SECRETS_ENCRYPTION_KEYS = env.list("SECRETS_ENCRYPTION_KEYS", default=[]) or [
    read_or_create(VAR_DIR / "secrets.key", generate=new_fernet_key)
]
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Where mailboxes (Maildir) live, and IceWarp's config folder (keytabs under _keytabs/).
MAIL_ROOT = Path(env("MAIL_ROOT", default=str(VAR_DIR / "mail"))).resolve()
CONFIG_DIR = Path(env("CONFIG_DIR", default=str(VAR_DIR / "config"))).resolve()
# Who owns the mailbox folders (the mail server reads them as this user; Dovecot refuses root): a user name
# (its primary group), user:group, or uid:gid. Empty: the owner of MAIL_ROOT.
MAIL_OWNER = env("MAIL_OWNER", default="")

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "axes",
    "csp",
    "icewarp_admin.mailserver",
    "icewarp_admin.selfservice",
    "directory_sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "icewarp_admin.selfservice.sessions.MailUserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, as axes asks: it turns a lockout flagged during the console's sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "icewarp_admin.urls"
WSGI_APPLICATION = "icewarp_admin.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "builtins": ["template_partials.templatetags.partials"],
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# DATABASE_URL, or PostgreSQL's parts one by one (POSTGRES_HOST, the compose file's way): a password with
# URL-special characters (@ : / # %) then needs no quoting. It is read as is: django-environ would take a
# leading $ for a reference to another variable.
if env("DATABASE_URL", default="") or not env("POSTGRES_HOST", default=""):
    DATABASES = {
        "default": env.db_url_config(
            env("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'console.sqlite3'}"
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": env("POSTGRES_HOST"),
            "PORT": env.int("POSTGRES_PORT", default=5432),
            "NAME": env("POSTGRES_DB"),
            "USER": env("POSTGRES_USER"),
            "PASSWORD": env.ENVIRON.get("POSTGRES_PASSWORD", ""),
        }
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server, the worker and beat share one file: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock up front instead of failing half-way with "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Only Django's authenticate() goes through these, and only the console's staff login (/login/) calls it:
# mail users sign in to /me/ through directory_sync.auth, which has its own throttle (auth/throttle.py).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
# Staff sign-in throttling (django-axes): this many failures for one user name, or from one address, lock
# that name or address until CONSOLE_SIGN_IN_LOCKOUT_SECONDS after the last failure (a failure while locked
# starts the wait again). Administrators lift lockouts under System → Sign-in lockouts.
AXES_FAILURE_LIMIT = env.int("CONSOLE_SIGN_IN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(seconds=env.int("CONSOLE_SIGN_IN_LOCKOUT_SECONDS", default=15 * 60))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_LOCKOUT_CALLABLE = "icewarp_admin.mailserver.lockout_views.locked_out"
AXES_CLIENT_STR_CALLABLE = "icewarp_admin.request_logging.sign_in_client"
# Passwords are never logged or stored (axes masks the password field whatever this says); the user name and
# address are what an administrator needs to see in the failure log lines.
AXES_SENSITIVE_PARAMETERS: list[str] = []

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "mailserver:domain_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env("TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

SESSION_COOKIE_HTTPONLY = True
# Secure cookies unless DEBUG; a plain-HTTP demo on localhost says SESSION_COOKIE_SECURE=0.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=SESSION_COOKIE_SECURE)
X_FRAME_OPTIONS = "DENY"
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# Container health checks ask over plain http from inside; a redirect to https would fail them.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)
# Behind a TLS-terminating proxy: the header it sets and its value, as Django names them, e.g.
# SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO,https (the proxy must overwrite what clients send).
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2 or not _proxy_ssl_header[0].startswith("HTTP_"):
        raise ImproperlyConfigured(
            f"SECURE_PROXY_SSL_HEADER={','.join(_proxy_ssl_header)!r} must be a header and a value, "
            "e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])
# Nothing inline and nothing evaluated: scripts and styles come from static/ only (htmx is told not to inject
# its indicator <style> nor to eval, see templates/base.html).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# The mail users' self-service pages (/me/) keep their own session cookie, scoped to /me/: a mail user's
# session never opens a console page, a console session never signs anyone in as a mail user.
SELF_SERVICE_SESSION_COOKIE_NAME = "mailuser_session"
SELF_SERVICE_SESSION_AGE_SECONDS = env.int("SELF_SERVICE_SESSION_AGE_SECONDS", default=8 * 3600)

# Wrong passwords of mail users are refused without asking the directory once an account has this many
# failures (since its last success) within the window, or a client address this many: below OpenLDAP
# ppolicy's and Active Directory's lockout thresholds (often 5), so that guessing through us never locks the
# person out of the directory (see the README).
SIGN_IN_FAILURES_PER_ACCOUNT = env.int("SIGN_IN_FAILURES_PER_ACCOUNT", default=3)
SIGN_IN_FAILURES_PER_CLIENT = env.int("SIGN_IN_FAILURES_PER_CLIENT", default=20)
SIGN_IN_FAILURE_WINDOW_SECONDS = env.int("SIGN_IN_FAILURE_WINDOW_SECONDS", default=30 * 60)

# Alert e-mails (System → Alerts) go out through Django's mail settings (the test runner swaps in its locmem
# backend). The timeouts keep a dead mail server or webhook from holding a worker, or the test button, long.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.ENVIRON.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="directory-sync-console@localhost")
ALERT_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERT_WEBHOOK_TIMEOUT_SECONDS", default=5.0)

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
# Exactly one beat process runs this (see the README): every tick starts the syncs that are due; the interval
# itself is IceWarp's C_Accounts_Global_ActiveDirectorySyncInterval, read at each tick.
SYNC_TICK_SECONDS = env.float("SYNC_TICK_SECONDS", default=60.0)
# A running job beats every SYNC_HEARTBEAT_SECONDS; silent for SYNC_ABANDONED_AFTER_SECONDS, it has lost its
# worker, and the reaper, every SYNC_REAP_SECONDS, fails it: ABANDONED to ABANDONED + REAP s after its last
# beat.
SYNC_HEARTBEAT_SECONDS = env.float("SYNC_HEARTBEAT_SECONDS", default=15.0)
SYNC_ABANDONED_AFTER_SECONDS = env.float("SYNC_ABANDONED_AFTER_SECONDS", default=120.0)
SYNC_REAP_SECONDS = env.float("SYNC_REAP_SECONDS", default=10.0)
if SYNC_ABANDONED_AFTER_SECONDS < 2 * SYNC_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured(
        f"SYNC_ABANDONED_AFTER_SECONDS={SYNC_ABANDONED_AFTER_SECONDS:g} would take live runs for dead ones: "
        f"make it at least twice SYNC_HEARTBEAT_SECONDS={SYNC_HEARTBEAT_SECONDS:g}"
    )
CELERY_BEAT_SCHEDULE = {
    "directory-sync-tick": {"task": "directory_sync.schedule_tick", "schedule": SYNC_TICK_SECONDS},
    "directory-sync-reap": {"task": "directory_sync.reap_abandoned", "schedule": SYNC_REAP_SECONDS},
}
# The tick and the reaper have a queue of their own: a worker slot that takes nothing else (the compose file's
# scheduler service) runs them while every sync slot is busy. Other tasks go to the default queue, "celery";
# every worker consumes both (--queues celery,schedule), so a deployment without that slot still ticks.
CELERY_TASK_ROUTES = {
    "directory_sync.schedule_tick": {"queue": "schedule"},
    "directory_sync.reap_abandoned": {"queue": "schedule"},
}
# Redis hands a task whose worker died before acknowledging it to another worker after this long (kombu's
# default: an hour, so a killed tick came back long after its minute). It applies to every task: a sync that
# runs longer is delivered once more, and claim() makes that delivery do nothing.
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.int("BROKER_VISIBILITY_TIMEOUT_SECONDS", default=120)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS,
    # How often workers look for such tasks (kombu's default: every 100 s), so they come back soon after it.
    "unacked_restore_interval": max(1, min(10, BROKER_VISIBILITY_TIMEOUT_SECONDS // 10)),
    "unacked_restore_throttle": 1,
}
# Connecting, TLS and the bind are given up on after this (or after the domain's timeout, when shorter).
DIRECTORY_BIND_TIMEOUT_SECONDS = env.float("DIRECTORY_BIND_TIMEOUT_SECONDS", default=5.0)

# /metrics names every synchronized domain: it answers only a scraper that sends this bearer token (unset:
# /metrics is off).
METRICS_TOKEN = env("METRICS_TOKEN", default="")

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
# text for people reading a terminal (the demo, the tests, a developer); json for a log collector (the compose
# file): one object a line, with the sync's run id, domain and phase as fields (icewarp_admin/logging.py).
LOG_FORMAT = env("LOG_FORMAT", default="text")
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: write text or json")
if LOG_FORMAT == "json":
    import logging

    logging.captureWarnings(True)  # Python's warnings as JSON lines too, not as bare text
# Celery workers and beat log through LOGGING too, instead of installing their own text handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "icewarp_admin.logging.JsonLogFormatter"},
    },
    # A refused request (4xx) is one line (method, path, user, reason); a 500 keeps its traceback.
    "filters": {"refusals_on_one_line": {"()": "icewarp_admin.request_logging.RefusalsOnOneLine"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
            "filters": ["refusals_on_one_line"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        # axes' warnings are one line per failed sign-in and one per lockout; its info lines are chatter.
        "axes": {"level": "WARNING"},
    },
}

# Accounts list page size; large enough to scan, small enough to render fast at 100,000 accounts.
ACCOUNTS_PAGE_SIZE = 50
