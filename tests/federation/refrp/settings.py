"""Django settings of the reference relying party (spid-cie-oidc 1.6.3's own
spid_cie_oidc.relying_party app), used only by check_with_reference_rp.py to prove
the harness with a relying party that is not varco. Set by refrp_run.py:

  REFRP_HOST, REFRP_PORT   its entity ID is http://HOST:PORT/
  REFRP_STATE              directory for its SQLite database and log
  REFRP_TA, REFRP_OP       the harness' Trust Anchor and OP entity IDs
"""
import os
import secrets

import aiohttp

HOST = os.environ.get("REFRP_HOST", "127.0.0.1")
PORT = int(os.environ["REFRP_PORT"])
STATE_DIR = os.environ["REFRP_STATE"]
RP_ENTITY_ID = f"http://{HOST}:{PORT}/"
TA = os.environ["REFRP_TA"]
OP = os.environ["REFRP_OP"]

SECRET_KEY = secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
APPEND_SLASH = False
SESSION_COOKIE_NAME = "refrp_sessionid"
CSRF_COOKIE_NAME = "refrp_csrftoken"

AUTH_USER_MODEL = "spid_cie_oidc_accounts.User"
INSTALLED_APPS = [
    "spid_cie_oidc.accounts",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "bootstrap_italia_template",
    "spid_cie_oidc.entity",
    "spid_cie_oidc.relying_party",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
ROOT_URLCONF = "refrp.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(STATE_DIR, "refrp.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"

OIDCFED_DEFAULT_TRUST_ANCHOR = TA
OIDCFED_TRUST_ANCHORS = [TA]
OIDCFED_IDENTITY_PROVIDERS = {"spid": {OP: TA}, "cie": {}}
OIDCFED_REQUIRED_TRUST_MARKS = []
RP_DEFAULT_PROVIDER_PROFILES = "spid"
HTTPC_TIMEOUT = 8
HTTPC_PARAMS = {
    "connection": {"ssl": True},
    "session": {"timeout": aiohttp.ClientTimeout(total=HTTPC_TIMEOUT)},
}
LOGIN_REDIRECT_URL = "/oidc/rp/echo_attributes"
LOGOUT_REDIRECT_URL = "/oidc/rp/landing"
LOGIN_URL = "/oidc/rp/landing"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"default": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.path.join(STATE_DIR, "refrp.log"),
            "formatter": "default",
        },
    },
    "root": {"handlers": ["file"], "level": "INFO"},
    "loggers": {
        "django": {"handlers": ["file"], "level": "INFO", "propagate": False},
        "django.server": {"handlers": ["file"], "level": "INFO", "propagate": False},
        "spid_cie_oidc": {"handlers": ["file"], "level": "DEBUG", "propagate": False},
    },
}
