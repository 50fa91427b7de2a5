"""Gunicorn as `./dev run` starts it (`-c python:config.gunicorn`), on a real socket: its access log
holds no admin search term (a consumer's e-mail or phone) and no API key, in the request line,
the referrer or a header."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.config.probe import ROOT
from tests.faults.harness import free_port

GUNICORN = Path(sys.executable).with_name("gunicorn")
EMAIL = "mary.major@example.com"
KEY = "lsk_" + "Q2xv3HkF" * 5


def test_the_access_log_masks_search_terms_and_keys(tmp_path):
    port = free_port()
    log = tmp_path / "access.log"
    env = {
        **os.environ,
        "ENV_FILE": "",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "SECURE_SSL_REDIRECT": "0",
        "TRUSTED_PROXIES": "",
    }
    env.pop("CELERY_BROKER_URL", None)
    server = subprocess.Popen(  # noqa: S603 - our own gunicorn
        [
            str(GUNICORN),
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--access-logfile",
            str(log),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/admin/login/", timeout=10)
                break
            except requests.RequestException:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        session = requests.Session()
        session.get(f"{base}/admin/leads/lead/", params={"q": EMAIL}, timeout=10)
        session.get(
            f"{base}/admin/login/",
            params={"next": f"/admin/leads/lead/?q={EMAIL}"},
            headers={"Referer": f"{base}/admin/leads/lead/?q={EMAIL}&p=2"},
            timeout=10,
        )
        session.get(f"{base}/api/v1/leads/", params={"key": KEY}, timeout=10)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    text = log.read_text()
    assert text.count("\n") >= 4, text
    assert "mary" not in text.lower()
    assert "%40example" not in text
    assert KEY not in text
    assert "/admin/leads/lead/?q=[masked]" in text
    assert "lsk_[masked]" in text


def test_gunicorn_takes_the_trusted_proxies_django_takes(monkeypatch):
    """`10.0.0.1/8` (host bits set) is a network to Django; gunicorn's own check refuses it
    unless it is written in its normal form."""
    import importlib

    from gunicorn.config import Config

    import config.gunicorn

    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.1/8, 192.168.1.7,fd00::/64")
    module = importlib.reload(config.gunicorn)
    try:
        gunicorn_config = Config()
        gunicorn_config.set("forwarded_allow_ips", module.forwarded_allow_ips)
        assert gunicorn_config.forwarded_allow_ips == [
            "10.0.0.0/8",
            "192.168.1.7/32",
            "fd00::/64",
        ]
    finally:
        monkeypatch.delenv("TRUSTED_PROXIES")
        importlib.reload(config.gunicorn)
