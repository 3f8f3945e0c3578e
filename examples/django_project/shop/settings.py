"""The smallest settings a Django project with views and a management command needs (no database)."""

from __future__ import annotations

import os

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "only-for-this-example")
DEBUG = False
ALLOWED_HOSTS = ["localhost", "127.0.0.1", "testserver"]
INSTALLED_APPS = ["shop"]  # for its management command, run_timers
ROOT_URLCONF = "shop.urls"
MIDDLEWARE: list[str] = []
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379")
