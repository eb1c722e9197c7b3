"""Settings, read from the environment (and an optional .env file) with an embedded default.

Embedded default: SQLite under VAR_DIR, Redis on 127.0.0.1:6379, secrets generated once into VAR_DIR.
"""

from pathlib import Path

import environ

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
    "icewarp_admin.mailserver",
    "icewarp_admin.selfservice",
    "directory_sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "icewarp_admin.selfservice.sessions.MailUserSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
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

DATABASES = {
    "default": env.db_url_config(
        env("DATABASE_URL", default="") or f"sqlite:///{VAR_DIR / 'console.sqlite3'}"
    )
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
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
X_FRAME_OPTIONS = "DENY"
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
CELERY_BEAT_SCHEDULE = {
    "directory-sync-tick": {"task": "directory_sync.schedule_tick", "schedule": SYNC_TICK_SECONDS},
}
# A running sync beats every SYNC_HEARTBEAT_SECONDS; silent that long, it has lost its worker.
SYNC_HEARTBEAT_SECONDS = env.float("SYNC_HEARTBEAT_SECONDS", default=15.0)
SYNC_ABANDONED_AFTER_SECONDS = env.int("SYNC_ABANDONED_AFTER_SECONDS", default=120)

LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False}},
}

# Accounts list page size; large enough to scan, small enough to render fast at 100,000 accounts.
ACCOUNTS_PAGE_SIZE = 50
