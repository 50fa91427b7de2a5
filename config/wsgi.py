"""WSGI entry point: `gunicorn config.wsgi`."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

from config.warm import warm_up

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()
# gunicorn imports this module in each worker it forks, before the worker's first request.
warm_up(web=True)
