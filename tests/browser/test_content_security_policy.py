"""Under the Content-Security-Policy the staff pages still work in a real browser: the admin's
scripts, the dashboards' styles, the posting instructions' buttons and Swagger UI, with not one
violation reported."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.buyers.factories import ContractFactory
from tests.leads.factories import SourceFactory
from tests.staff import staff_user

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def test_the_staff_pages_work_under_the_policy_without_a_violation(ui):
    page = ui.page
    violations: list[str] = []
    page.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    contract = ContractFactory()
    source = SourceFactory(name="Acme Media")
    staff_user("Admin", "ada")

    ui.log_in("ada")  # the login form, through django-axes' backend
    response = ui.go(reverse("admin:buyers_contract_change", args=[contract.pk]))
    assert "script-src 'self'" in response.headers["content-security-policy"]
    # The admin's own scripts ran: inlines.js adds an "Add another" link to each inline.
    assert page.locator(".add-row a").count() > 0
    ui.shot("contract-page")

    ui.go(reverse("admin:leads_source_instructions", args=[source.pk]))
    # The inline style sheet carries the response's nonce (the browser hides it from the DOM's
    # attribute, but not from the property).
    assert page.evaluate("() => document.querySelector('style').nonce")
    page.click("#copy-link")
    assert page.inner_text("#copy-link") == "Copied"  # the inline script, by its nonce
    ui.shot("posting-instructions")

    ui.go("/dashboard/")
    # The dashboard's inline style sheet applied: the page is laid out by it, not unstyled.
    assert page.evaluate("() => document.styleSheets.length") >= 1
    assert page.evaluate("() => document.styleSheets[0].cssRules.length") > 0
    ui.shot("dashboard")

    ui.go("/api/docs/")
    page.wait_for_selector(".swagger-ui .info .title")
    ui.shot("swagger-ui")

    assert violations == []
