"""Gunicorn's settings: `gunicorn -c python:config.gunicorn config.wsgi` (`./dev run` does).

Its access log goes through the same masking as Django's logs (`config/log_filters.py`): API keys
and admin search terms (a consumer's e-mail or phone in `?q=`) never reach it, in the request
line, the query string, the referrer or any header. Gunicorn trusts forwarded headers
(`X-Forwarded-Proto`) only from the proxies Django trusts (`TRUSTED_PROXIES`).
"""

from __future__ import annotations

import os
from typing import Any

from gunicorn.glogging import Logger

from config.log_filters import mask_keys
from config.proxies import proxy_networks

# The same variable, read by the same function, as config/settings.py's TRUSTED_PROXIES; as
# networks in their normal form (gunicorn refuses `10.0.0.1/8`, which Django takes).
forwarded_allow_ips = ",".join(
    str(network) for network in proxy_networks(os.environ.get("TRUSTED_PROXIES", "").split(","))
)


class AccessLogger(Logger):
    """Gunicorn's logger, whose access log atoms are masked before they are formatted."""

    def atoms(self, resp: Any, req: Any, environ: Any, request_time: Any) -> dict[str, Any]:
        atoms = super().atoms(resp, req, environ, request_time)
        return {
            name: mask_keys(value) if isinstance(value, str) else value
            for name, value in atoms.items()
        }


logger_class = AccessLogger
