"""Settings are read from the environment once, at import: test them in fresh interpreters."""

from __future__ import annotations

import subprocess

import pytest

from tests.config.probe import ROOT, probed, python_run

PROBE = """
import json
import django
from django.conf import settings
django.setup()
db = settings.DATABASES["default"]
print(json.dumps({
    "engine": db["ENGINE"], "name": str(db["NAME"]), "host": db.get("HOST", ""),
    "eager": settings.CELERY_TASK_ALWAYS_EAGER, "broker": settings.CELERY_BROKER_URL,
    "debug": settings.DEBUG, "hosts": settings.ALLOWED_HOSTS, "tz": settings.TIME_ZONE,
    "ssl_redirect": settings.SECURE_SSL_REDIRECT,
    "proxy_header": settings.SECURE_PROXY_SSL_HEADER,
    "proxies": [str(n) for n in settings.TRUSTED_PROXY_NETWORKS],
}))
"""
CONFIG_VARS = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "SECURE_SSL_REDIRECT",
    "FIELD_ENCRYPTION_KEY",
    "TRUSTED_PROXIES",
)


def run_settings(**overrides: str) -> subprocess.CompletedProcess[str]:
    return python_run("-c", PROBE, unset=CONFIG_VARS, **overrides)


def settings_with(**overrides: str) -> dict:
    return probed(run_settings(**overrides))


def test_it_defaults_to_an_embedded_sqlite_file_and_in_process_tasks():
    values = settings_with(SECRET_KEY="x" * 50)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["name"] == str(ROOT / "leadswitch.sqlite3")
    assert values["eager"] is True
    assert values["tz"] == "UTC"
    assert values["debug"] is False


def test_it_uses_postgresql_and_a_broker_when_they_are_configured():
    values = settings_with(
        SECRET_KEY="x" * 50,
        DATABASE_URL="postgres://leads:pw@db.internal:5432/leadswitch",
        CELERY_BROKER_URL="redis://127.0.0.1:6379/3",
    )
    assert values["engine"] == "django.db.backends.postgresql"
    assert (values["name"], values["host"]) == ("leadswitch", "db.internal")
    assert values["eager"] is False
    assert values["broker"] == "redis://127.0.0.1:6379/3"


def test_it_reads_allowed_hosts_as_a_list():
    values = settings_with(SECRET_KEY="x" * 50, ALLOWED_HOSTS="leads.example.com,api.example.com")
    assert values["hosts"] == ["leads.example.com", "api.example.com"]


def test_it_runs_without_a_secret_key_only_in_debug():
    assert settings_with(DEBUG="1")["debug"] is True
    result = run_settings()
    assert result.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in result.stderr


def test_migrations_are_checked_without_a_secret_key_and_nothing_else_runs_keyless():
    checked = python_run("manage.py", "makemigrations", "--check", "--dry-run", unset=CONFIG_VARS)
    assert checked.returncode == 0, checked.stderr
    assert "No changes detected" in checked.stdout
    refused = python_run("manage.py", "check", unset=CONFIG_VARS)
    assert refused.returncode != 0
    assert "SECRET_KEY is required when DEBUG is off" in refused.stderr


def test_it_is_strict_about_https_outside_debug():
    assert settings_with(SECRET_KEY="x" * 50)["ssl_redirect"] is True
    assert settings_with(DEBUG="1")["ssl_redirect"] is False


def test_it_trusts_x_forwarded_proto_only_when_proxies_are_configured():
    assert settings_with(SECRET_KEY="x" * 50)["proxy_header"] is None
    values = settings_with(SECRET_KEY="x" * 50, TRUSTED_PROXIES="10.0.0.5,fd00::/64")
    assert values["proxy_header"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert values["proxies"] == ["10.0.0.5/32", "fd00::/64"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("DEBUG", "maybe", "DEBUG must be a boolean"),
        ("LOG_LEVEL", "LOUD", "LOG_LEVEL must be"),
        ("LOG_FORMAT", "xml", "LOG_FORMAT must be json or text"),
        ("SECURE_HSTS_SECONDS", "-5", "SECURE_HSTS_SECONDS must be at least 0"),
        ("TRUSTED_PROXIES", "10.0.0.300", "TRUSTED_PROXIES: '10.0.0.300' does not appear"),
        ("LOGIN_FAILURE_LIMIT", "0", "LOGIN_FAILURE_LIMIT must be at least 1"),
    ],
)
def test_it_refuses_a_bad_value_at_start_up(name, value, message):
    result = run_settings(SECRET_KEY="x" * 50, **{name: value})
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert message in result.stderr


def test_it_reads_a_dotenv_file_without_overriding_the_environment(tmp_path):
    dotenv = tmp_path / "local.env"
    dotenv.write_text("DEBUG=1\nALLOWED_HOSTS=from-file.example\n")
    values = settings_with(ENV_FILE=str(dotenv), ALLOWED_HOSTS="from-env.example")
    assert values["debug"] is True
    assert values["hosts"] == ["from-env.example"]


# CI runs the deploy checks before any database exists: generating the API schema (a check)
# must not need one.
NO_DATABASE = {"DATABASE_URL": "postgres://leads@127.0.0.1:1/absent"}


BEHIND_A_PROXY = {"TRUSTED_PROXIES": "10.0.0.0/8"}


@pytest.mark.parametrize(
    "database",
    [{}, NO_DATABASE, BEHIND_A_PROXY],
    ids=["default", "no database", "behind a trusted proxy"],
)
def test_it_reports_nothing_for_check_deploy_with_production_settings(database):
    result = python_run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level=WARNING",
        unset=CONFIG_VARS,
        timeout=120,
        SECRET_KEY="p" * 30 + "-Zq8#x" * 6,
        ALLOWED_HOSTS="leads.example.com",
        **database,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout
