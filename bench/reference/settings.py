"""The product's settings, with the reference view as the only URL."""

from __future__ import annotations

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.reference.urls"
WSGI_APPLICATION = "bench.reference.wsgi.application"
