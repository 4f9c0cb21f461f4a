"""A small real Django site for the end-to-end tests: no database, DEBUG off."""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
SECRET_KEY = "fcgi-wsgi-demo-site-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
# Apps with models, as a real project has: the recipe's django.cgi must cope with them.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django.contrib.sessions", "demo_site"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
ROOT_URLCONF = "demo_site.urls"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "OPTIONS": {"context_processors": ["django.template.context_processors.csrf"]},
    }
]
# The users (django.contrib.auth), for the login page and the authorizer (authorizer.py): SQLite
# in a folder of its own, which the web server's user must be able to write (a login records its
# time). `manage.py migrate` creates it.
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR.parent / "var" / "db.sqlite3"}}
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/whoami/"
USE_TZ = True
# Uploads above 2.5 MB spool to temporary files: memory stays flat.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
# Failing requests are logged to stderr, which the web server puts in its error log.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR"}},
}
# The server's access records come to the logger fcgi_wsgi.access when it has a handler: routed
# here like Django's own, to the file DEMO_ACCESS_LOG names (if set).
if os.environ.get("DEMO_ACCESS_LOG"):
    LOGGING["handlers"]["access"] = {"class": "logging.FileHandler", "filename": os.environ["DEMO_ACCESS_LOG"]}
    LOGGING["loggers"]["fcgi_wsgi.access"] = {"handlers": ["access"], "level": "INFO", "propagate": False}
