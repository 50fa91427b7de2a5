"""The admin's defences: failed logins locked out (django-axes), a Content-Security-Policy
(django-csp), forwarded headers believed only from trusted proxies, admin search terms kept out
of the logs, and no confirming of a consumer behind a masked value by Sales."""

from __future__ import annotations

import ipaddress
import logging
import re

import pytest
from django.test import Client
from django.urls import reverse

from config.log_filters import mask_keys
from leads.models import Lead
from tests.leads.factories import LeadFactory, SourceFactory, VerticalFieldFactory
from tests.routing.factories import AttemptFactory, AuctionFactory
from tests.staff import PASSWORD, staff_user

pytestmark = pytest.mark.django_db

LOGIN = reverse("admin:login")
LEADS = reverse("admin:leads_lead_changelist")
EMAIL = "mary.major@example.com"
PHONE = "+13125550142"
PROXY = "10.0.0.5"


@pytest.fixture(autouse=True)
def _plain_http(settings):
    settings.SECURE_SSL_REDIRECT = False


def log_in(client: Client, username: str, password: str, **extra) -> int:
    """Post the admin's login form; return the status (302: signed in, 200: refused)."""
    return client.post(
        f"{LOGIN}?next=/admin/", {"username": username, "password": password}, **extra
    ).status_code


def trust(settings, *proxies: str) -> None:
    settings.TRUSTED_PROXIES = list(proxies)
    settings.TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(p) for p in proxies]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")


# --- Failed logins: django-axes ------------------------------------------------------------


def test_five_wrong_passwords_lock_the_login_out_even_for_the_right_one(settings):
    staff_user("Ops", "olga")
    client = Client()

    assert [log_in(client, "olga", "wrong") for _ in range(settings.AXES_FAILURE_LIMIT - 1)] == [
        200
    ] * (settings.AXES_FAILURE_LIMIT - 1)
    assert log_in(client, "olga", "wrong") == 429
    assert log_in(client, "olga", PASSWORD) == 429
    assert log_in(Client(), "olga", PASSWORD, REMOTE_ADDR="198.51.100.9") == 429  # the user name
    assert "_auth_user_id" not in client.session


def test_a_successful_login_resets_the_count(settings):
    staff_user("Ops", "olga")
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        log_in(client, "olga", "wrong")

    assert log_in(client, "olga", PASSWORD) == 302
    assert log_in(Client(), "olga", "wrong") == 200  # counting starts again


def test_guessing_other_user_names_from_one_address_is_locked_out_too(settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        status = log_in(Client(), f"guess-{n}", "wrong", REMOTE_ADDR="203.0.113.50")
    assert status == 429
    staff_user("Ops", "olga")
    assert log_in(Client(), "olga", PASSWORD, REMOTE_ADDR="203.0.113.50") == 429
    assert log_in(Client(), "olga", PASSWORD, REMOTE_ADDR="203.0.113.51") == 302


def test_a_forged_x_forwarded_for_does_not_dodge_the_lockout(settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        status = log_in(
            Client(),
            f"guess-{n}",
            "wrong",
            REMOTE_ADDR="203.0.113.50",
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}",
        )
    assert status == 429


def test_behind_a_trusted_proxy_the_client_it_names_is_counted(settings):
    trust(settings, PROXY)
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(
            Client(),
            f"guess-{n}",
            "wrong",
            REMOTE_ADDR=PROXY,
            HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.50",
        )
    staff_user("Ops", "olga")

    # The client the proxy saw is locked out; another client behind the same proxy is not.
    via = {"REMOTE_ADDR": PROXY}
    assert log_in(Client(), "olga", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.50", **via) == 429
    assert log_in(Client(), "olga", PASSWORD, HTTP_X_FORWARDED_FOR="203.0.113.51", **via) == 302


# --- X-Forwarded-Proto: only from a trusted proxy ---------------------------------------------


@pytest.mark.parametrize(
    ("peer", "redirected"),
    [("203.0.113.7", True), (PROXY, False)],
    ids=["anyone else", "the trusted proxy"],
)
def test_x_forwarded_proto_is_believed_only_from_a_trusted_proxy(settings, peer, redirected):
    settings.SECURE_SSL_REDIRECT = True
    trust(settings, "10.0.0.0/29")

    response = Client().get("/admin/login/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO="https")

    if redirected:  # taken for the plain HTTP it was: sent to HTTPS
        assert response.status_code == 301
        assert response["Location"] == "https://testserver/admin/login/"
    else:
        assert response.status_code == 200
        assert response.wsgi_request.is_secure()


def test_without_trusted_proxies_nobody_is_believed(settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.TRUSTED_PROXY_NETWORKS = []

    response = Client().get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 301


# --- Content-Security-Policy ----------------------------------------------------------------


NONCE_RE = re.compile(r"'nonce-([^']+)'")


@pytest.mark.parametrize(
    "path",
    ["/admin/", "/dashboard/", "instructions", "/api/problems/", "/api/docs/"],
)
def test_every_staff_page_has_the_policy_and_its_inline_code_the_nonce(path):
    client = Client()
    client.force_login(staff_user("Admin"))
    if path == "instructions":
        path = reverse("admin:leads_source_instructions", args=[SourceFactory().pk])

    response = client.get(path)

    assert response.status_code == 200
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy
    assert "object-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    html = response.content.decode()
    inline = re.findall(r"<(script|style)(?![^>]*\bsrc=)([^>]*)>", html)
    nonce = NONCE_RE.search(policy)
    for _tag, attributes in inline:
        if 'type="application/json"' in attributes:
            continue  # data, not code
        assert nonce is not None, policy
        assert f'nonce="{nonce.group(1)}"' in attributes, (path, attributes)
    assert "onclick=" not in html


def test_swagger_uis_start_up_script_comes_from_its_own_url():
    html = Client().get("/api/docs/").content.decode()
    (script_url,) = re.findall(r'<script src="(/api/docs/\?[^"]*script[^"]*)"', html)

    response = Client().get(script_url.replace("&amp;", "&"))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in response.content.decode()


# --- Sales cannot confirm a consumer behind a mask ---------------------------------------------


@pytest.fixture
def lead() -> Lead:
    lead = LeadFactory(
        email=EMAIL,
        phone=PHONE,
        zip_code="60601",
        sub_id="spring",
        data={"email": EMAIL, "phone": PHONE, "date_of_birth": "1985-03-14", "zip_code": "60601"},
    )
    VerticalFieldFactory(vertical=lead.vertical, name="date_of_birth", is_pii=True)
    return lead


def found(role: str, term: str) -> int:
    client = Client()
    client.force_login(staff_user(role, f"{role.lower()}-searcher"))
    response = client.get(LEADS, {"q": term})
    assert response.status_code == 200
    return response.context["cl"].result_count


@pytest.mark.parametrize("term", [EMAIL, EMAIL.upper(), PHONE, "(312) 555-0142", "3125550142"])
def test_sales_find_no_lead_by_an_exact_e_mail_or_phone_where_ops_do(lead, term):
    assert found("Sales", term) == 0
    assert found("Ops", term) == 1


@pytest.mark.parametrize("term", ["60601", "spring", "lead id"])
def test_sales_still_find_leads_by_id_zip_and_sub_id(lead, term):
    assert found("Sales", str(lead.pk) if term == "lead id" else term) == 1


def test_sales_cannot_filter_the_lead_list_by_e_mail_either(lead):
    client = Client()
    client.force_login(staff_user("Sales"))

    for lookup in ("email", "phone", "email__startswith", "data__email"):
        response = client.get(LEADS, {lookup: EMAIL if "email" in lookup else PHONE})
        # Django's admin refuses a lookup that is no list filter; the list stays unfiltered.
        assert response.status_code == 400, lookup
        assert EMAIL not in response.content.decode()
    # Ops may: they see the consumer anyway.
    client.force_login(staff_user("Ops"))
    assert client.get(LEADS, {"email": EMAIL}).context["cl"].result_count == 1


# --- A date of birth is masked whole for Sales ----------------------------------------------


def test_sales_see_a_date_of_birth_masked_whole_on_the_lead_and_its_post(lead):
    auction = AuctionFactory(lead=lead)
    post = AttemptFactory(
        auction=auction,
        kind="post",
        request_body='{"DOB": "03/14/1985", "BirthDate": "19850314", "dob": "1985-03-14"}',
    )
    sales, ops = Client(), Client()
    sales.force_login(staff_user("Sales"))
    ops.force_login(staff_user("Ops"))

    for url in (
        reverse("admin:leads_lead_change", args=[lead.pk]),
        reverse("admin:routing_attempt_change", args=[post.pk]),
    ):
        masked = sales.get(url).content.decode()
        for spelling in ("1985-03-14", "03/14/1985", "19850314", "1985", "03-14", "0314"):
            assert spelling not in masked, (url, spelling)
        assert (
            "1985-03-14" in ops.get(url).content.decode()
            or "03/14/1985" in ops.get(url).content.decode()
        )


# --- Admin search terms stay out of the logs --------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        f"GET /admin/leads/lead/?q={EMAIL} HTTP/1.1",
        "GET /admin/leads/lead/?q=mary.major%40example.com&status=sold HTTP/1.1",
        "/admin/leads/lead/7/change/?_changelist_filters=status%3Dsold%26q%3D%2B13125550142",
        "/admin/login/?next=/admin/leads/lead/%3Fq%3Dmary.major%2540example.com",
        "q=3125550142",
    ],
)
def test_a_search_term_is_masked_in_every_form_a_url_carries_it(text):
    masked = mask_keys(text)

    assert "[masked]" in masked
    for secret in ("mary", "3125550142", "13125550142"):
        assert secret not in masked.lower()


def test_djangos_request_log_never_prints_the_search_term(caplog, lead):
    caplog.set_level(logging.DEBUG)
    client = Client()
    client.force_login(staff_user("Ops"))

    # A 404 under a search's query string: Django logs it with the request, whose repr is the
    # full path.
    response = client.get("/dashboard/no-such-report/", {"q": EMAIL})
    client.get("/api/v1/reports/summary/", {"q": PHONE})  # a 401 from the API

    assert response.status_code == 404
    records = [r for r in caplog.records if r.name == "django.request"]
    assert records
    for record in records:
        text = logging.Formatter("%(message)s %(request)s").format(record)
        assert EMAIL not in text
        assert "3125550142" not in text
        assert "q=[masked]" in text


@pytest.mark.parametrize(("role", "status"), [("Admin", 200), ("Ops", 403), ("Sales", 403)])
def test_only_admins_see_and_lift_lockouts(settings, role, status):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        log_in(Client(), "olga", "wrong", REMOTE_ADDR="203.0.113.50")
    client = Client()
    client.force_login(staff_user(role))

    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == status
