"""Browser tests: Playwright drives Debian's Chromium against a live server of the project.

Chromium is the system's (`apt-get install chromium`, which `.ci/run` does when it is missing);
Playwright's own browser download is never used. Without Chromium these tests are skipped, saying
so. Every step is screenshotted into test-artifacts/browser/ (or $TEST_ARTIFACTS_DIR/browser/).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.db import connections
from pytest_django.live_server_helper import LiveServer

# The demo's vertical and a contract that always buys, on the simulator (as the leads tests).
from tests.leads.conftest import buyer_contract, demo, partner, simulator  # noqa: F401
from tests.live import live_server
from tests.staff import PASSWORD

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = (
    Path(os.environ.get("TEST_ARTIFACTS_DIR") or Path(django_settings.BASE_DIR) / "test-artifacts")
    / "browser"
)

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the dev extras install it
    sync_playwright = None


def _skip_reason() -> str:
    if sync_playwright is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)"
    return ""


@pytest.fixture
def _live_settings(settings, eager_celery) -> None:
    """Plain HTTP on 127.0.0.1, cookies without TLS, routing inline in the server's thread."""
    settings.SECURE_SSL_REDIRECT = False
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.ALLOWED_HOSTS = ["localhost", "127.0.0.1"]


@pytest.fixture
def live_app(transactional_db, _live_settings) -> Iterator[LiveServer]:
    """The project served on 127.0.0.1 for one test, started after the settings above."""
    with live_server() as server:
        yield server


@pytest.fixture
def page(live_app, request, monkeypatch) -> Iterator[Page]:
    """A fresh headless Chromium page; the browser lives for one test only.

    Playwright's sync API keeps an event loop running in this thread while it is started, which
    Django takes for async code: the test's own ORM calls between browser steps are plain
    synchronous code all the same, and the loop is gone once the test ends.
    """
    reason = _skip_reason()
    if reason and os.environ.get("REQUIRE_BROWSER_TESTS"):
        pytest.fail(f"browser tests are required here, but {reason}")
    if reason:
        pytest.skip(reason)
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            # Containers run tests as root, where Chromium's sandbox cannot start.
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        opened = context.new_page()
        yield opened
        if getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed:
            shot(opened, request.node.name, "failure")
        browser.close()
        # Under Playwright's loop, Django keeps the test's connections per context, not per
        # thread: close the ones this test opened, or PostgreSQL's test database stays in use.
        connections.close_all()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.when == "call":
        item.rep_call = report
    return report


def shot(page: Page, test_name: str, step: str) -> Path:
    """Save a full-page screenshot of this step as a test artifact."""
    folder = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", test_name)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{len(list(folder.glob('*.png'))) + 1:02d}-{step}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@dataclass
class Console:
    """The browser on the live server: go to a path, log in as a user, screenshot a step."""

    page: Page
    url: str
    test_name: str

    def go(self, path: str):
        return self.page.goto(f"{self.url}{path}")

    def log_in(self, username: str) -> None:
        self.go("/admin/login/?next=/admin/")
        self.page.fill("#id_username", username)
        self.page.fill("#id_password", PASSWORD)
        self.page.click("input[type=submit]")
        self.page.wait_for_url(f"{self.url}/admin/")

    def shot(self, step: str) -> Path:
        return shot(self.page, self.test_name, step)


@pytest.fixture
def ui(page: Page, live_app: LiveServer, request) -> Console:
    shutil.rmtree(ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name), True)
    return Console(page=page, url=live_app.url, test_name=request.node.name)
