"""Django settings of the local SPID/CIE OIDC Federation: a Trust Anchor and an
OpenID Provider (spid-cie-oidc 1.6.3) in one process. Everything that varies per
run comes from the environment, set by run.py:

  FEDH_PORT       the loopback port (the TA is http://127.0.0.1:PORT/,
                  the OP http://127.0.0.1:PORT/oidc/op/)
  FEDH_STATE      a directory for the SQLite database and the log file
  FEDH_LENIENT_LOCALHOST  "1" to let RP URLs on http://localhost pass the OP's
                  request schemas (see README, "localhost"); default off
"""
import os
import secrets

import aiohttp

PORT = int(os.environ["FEDH_PORT"])
STATE_DIR = os.environ["FEDH_STATE"]
HOST = "127.0.0.1"

TA_ENTITY_ID = f"http://{HOST}:{PORT}/"
OP_ENTITY_ID = f"http://{HOST}:{PORT}/oidc/op/"

SECRET_KEY = os.environ.get("FEDH_SECRET_KEY") or secrets.token_urlsafe(48)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
APPEND_SLASH = False

# distinct cookie names, so that a relying party on the same host (another port:
# cookies do not isolate ports) never overwrites the OP's session
SESSION_COOKIE_NAME = "fedop_sessionid"
CSRF_COOKIE_NAME = "fedop_csrftoken"

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
    "spid_cie_oidc.authority",
    "spid_cie_oidc.provider",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "fedharness.urls"
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
WSGI_APPLICATION = "fedharness.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.path.join(STATE_DIR, "federation.sqlite3"),
        "OPTIONS": {"timeout": 30},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "/static/"

# --- spid-cie-oidc -----------------------------------------------------------
OIDCFED_DEFAULT_TRUST_ANCHOR = TA_ENTITY_ID
OIDCFED_TRUST_ANCHORS = [TA_ENTITY_ID]
OIDCFED_PROVIDER_PROFILE = "spid"
OIDCFED_REQUIRED_TRUST_MARKS = [
    i for i in os.environ.get("FEDH_REQUIRED_TRUST_MARKS", "").split(",") if i
]
OIDCFED_PROVIDER_SALT = "fedharness"

# the OP's outgoing HTTP client (aiohttp). "ssl": True only matters for https
# URLs; plain http on loopback works with it (verified, README).
HTTPC_TIMEOUT = 8
HTTPC_PARAMS = {
    "connection": {"ssl": True},
    "session": {"timeout": aiohttp.ClientTimeout(total=HTTPC_TIMEOUT)},
}

if os.environ.get("FEDH_LENIENT_LOCALHOST") == "1":
    from fedharness.lenient import LENIENT_PROVIDER_PROFILES

    OIDCFED_PROVIDER_PROFILES = LENIENT_PROVIDER_PROFILES

LOGIN_URL = "/oidc/op/authorization"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"},
    },
    "handlers": {
        "file": {
            "class": "logging.FileHandler",
            "filename": os.path.join(STATE_DIR, "federation.log"),
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
