"""A source's posting instructions: who may see the page, the shared link, and the proof that
matters: the example printed on the page, sent with a real key through the URL router, is
accepted, and the answers printed are the API's."""

from __future__ import annotations

import html
import json
import re
import shlex
import time
from decimal import Decimal
from itertools import cycle
from urllib.parse import quote, urlsplit

import pytest
from defusedxml.ElementTree import fromstring as xml_fromstring
from django.contrib import auth
from django.core import signing
from django.test import Client

from exchange.api.views import EXAMPLE_PING_ID
from exchange.models import InboundPing
from leads.instructions import (
    EARLIER_LEAD_ID,
    EXAMPLE_LEAD_ID,
    KEY_PLACEHOLDER,
    LINK_SALT,
    example_document,
    example_request,
    instructions_token,
    ping_example_document,
    refused_changes,
)
from leads.intake import FieldSpec, normalise_value
from leads.models import FieldType, KeyLocation, Lead, PostingFormat, Source, Vertical
from leads.samples import sample_value
from leads.selectors import posting_profile
from tests.leads.factories import PostingProfileFactory, SourceFactory, api_key_for
from tests.staff import CALLERS, client_as, staff_user

FORMATS = [
    PostingFormat.ENVELOPE,
    PostingFormat.FLAT_JSON,
    PostingFormat.FORM,
    PostingFormat.QUERY,
    PostingFormat.XML,
]
# Every format with every place its key may go (a GET seller sends no Bearer key), each answered
# in one of the three answer formats in turn.
PLACES = [
    (fmt, where)
    for fmt in FORMATS
    for where in KeyLocation.values
    if not (fmt == PostingFormat.QUERY and where == KeyLocation.BEARER)
]
CASES = [(*place, answer) for place, answer in zip(PLACES, cycle(["json", "xml", "text"]))]
EXAMPLE_RE = re.compile(r'<pre class="example" data-vertical="([^"]+)">(.*?)</pre>', re.S)
ANSWER_RE = re.compile(r'<pre class="answer-example" data-answer="([^"]+)">(.*?)</pre>', re.S)


def instructed_source(fmt: str, where: str, answer: str = "json") -> tuple[Source, str]:
    """A source of every demo vertical posting as told, with aliases and a value map."""
    flat = fmt != PostingFormat.ENVELOPE
    aliases = {"Zip": "zip_code", "Owner": "homeowner"}
    if flat:
        aliases.update(SubID="sub_id", Test="test", IP="ip_address")
    source = SourceFactory(verticals=list(Vertical.objects.all()), payout_amount="5.00")
    PostingProfileFactory(
        source=source,
        format=fmt,
        key_location=where,
        key_name={"header": "X-Lead-Key", "parameter": "api_key"}.get(where, ""),
        aliases=aliases,
        value_maps={"homeowner": {"Y": True, "N": False}},
        answer_format=answer,
    )
    return source, api_key_for(source)


def page_of(source: Source, client: Client | None = None) -> str:
    if client is None:
        client = Client()
        client.force_login(staff_user("Ops", username=f"ops-for-{source.pk}"))
    response = client.get(f"/admin/leads/source/{source.pk}/instructions/")
    assert response.status_code == 200
    return response.content.decode()


def printed_examples(page: str) -> dict[str, str]:
    return {slug: html.unescape(text) for slug, text in EXAMPLE_RE.findall(page)}


def printed_answers(page: str) -> dict[str, str]:
    """Each printed answer as its body: the lines after the status line and headers."""
    answers = {}
    for title, text in ANSWER_RE.findall(page):
        _, _, body = html.unescape(text).partition("\n\n")
        answers[title] = body
    return answers


def curl_sent(client: Client, command: str, *, key: str, **headers: str):
    """Send what a printed curl command sends (the options the page prints), with the key."""
    words = shlex.split(command.replace("\\\n", " "))
    assert words[0] == "curl"
    words = [word.replace(KEY_PLACEHOLDER, key) for word in words[1:]]
    method, url, sent, parameters, body = "POST", "", dict(headers), [], ""
    options = iter(words)
    for word in options:
        if word == "-si":
            continue
        if word == "-G":
            method = "GET"
        elif word == "-X":
            method = next(options)
        elif word == "-H":
            name, _, value = next(options).partition(": ")
            sent[name] = value
        elif word == "--data-urlencode":
            name, _, content = next(options).partition("=")
            parameters.append(f"{name}={quote(content, safe='')}")
        elif word == "--data-binary":
            body = next(options)
        else:
            url = word
    parts = urlsplit(url)
    path = f"{parts.path}?{parts.query}" if parts.query else parts.path
    if method == "GET":
        return client.get(f"{path}?{'&'.join(parameters)}", headers=sent)
    content_type = sent.pop("Content-Type")
    data = "&".join(parameters) if parameters else body
    return client.post(path, data=data, content_type=content_type, headers=sent)


def with_ids(printed: str, *ids: tuple[object, object]) -> str:
    for example, real in ids:
        printed = printed.replace(str(example), str(real))
    return printed


@pytest.mark.parametrize(("fmt", "where", "answer"), CASES)
def test_the_printed_example_of_every_vertical_is_accepted_and_answered_as_printed(
    demo, fmt, where, answer
):
    source, key = instructed_source(fmt, where, answer)
    page = page_of(source)
    examples = printed_examples(page)
    answers = printed_answers(page)
    client = Client()

    sent = {slug: curl_sent(client, command, key=key) for slug, command in examples.items()}

    assert set(examples) == set(Vertical.objects.values_list("slug", flat=True))
    assert KEY_PLACEHOLDER in page
    for slug, response in sent.items():
        assert response.status_code == 202, (slug, response.content)
    first = sorted(examples)[0]  # the verticals are listed by slug; answers follow the first
    lead = Lead.objects.get(source=source, vertical__slug=first)
    assert lead.is_test
    assert lead.sub_id == "example"
    assert sent[first].content.decode() == with_ids(answers["accepted"], (EXAMPLE_LEAD_ID, lead.pk))

    again = curl_sent(client, examples[first], key=key)

    duplicate = Lead.objects.filter(source=source).latest("received_at")
    assert again.status_code == 409
    assert again.content.decode() == with_ids(
        answers["duplicate"], (EXAMPLE_LEAD_ID, duplicate.pk), (EARLIER_LEAD_ID, lead.pk)
    )


@pytest.mark.parametrize(("fmt", "where", "answer"), CASES[::2])
def test_the_refused_answer_printed_is_the_apis_for_the_lead_the_page_describes(
    demo, fmt, where, answer
):
    source, key = instructed_source(fmt, where, answer)
    answers = printed_answers(page_of(source))
    vertical = Vertical.objects.order_by("slug").first()
    fields = list(vertical.fields.order_by("position", "id"))
    profile = posting_profile(source=source)
    document = example_document(vertical, fields, profile, **refused_changes(fields, profile))
    request = example_request(document, profile, url="http://testserver/api/v1/leads/")

    response = curl_sent(Client(), request.curl(), key=key)

    refused = Lead.objects.get(source=source)
    assert response.status_code == 400
    assert response.content.decode() == with_ids(answers["refused"], (EXAMPLE_LEAD_ID, refused.pk))
    assert "Zip" in answers["refused"]  # named as the seller sends it


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("eager_celery")
def test_the_sold_answer_printed_has_the_apis_members_in_its_order(
    demo, buyer_contract, admin_client
):
    source, key = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER, "text")
    Source.objects.filter(pk=source.pk).update(sees_buyer_price=False)
    source.verticals.set([buyer_contract.vertical])
    # A superuser: the staff groups of the data migration are gone in a transactional test.
    page = page_of(source, admin_client)
    command = printed_examples(page)[buyer_contract.vertical.slug]

    response = curl_sent(Client(), command, key=key, Prefer="wait=5")

    assert response.status_code == 201, response.content
    lines = response.content.decode().splitlines()
    printed = printed_answers(page)["sold"].splitlines()
    assert dict(line.split("=", 1) for line in lines)["status"] == "sold"
    assert [line.split("=", 1)[0] for line in lines] == [p.split("=", 1)[0] for p in printed]
    assert "payout=5.00" in printed


def test_staff_who_may_view_sources_see_the_page_and_its_shareable_link(demo):
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    client = Client()
    client.force_login(staff_user("Ops"))

    change = client.get(f"/admin/leads/source/{source.pk}/change/")
    page = client.get(f"/admin/leads/source/{source.pk}/instructions/")

    assert f"/admin/leads/source/{source.pk}/instructions/" in change.content.decode()
    assert page.status_code == 200
    link = re.search(r'id="share-link" type="text" readonly value="([^"]+)"', page.content.decode())
    assert link is not None
    assert link.group(1).startswith("http://testserver/posting-instructions/")


def test_an_anonymous_visitor_or_staff_without_the_view_permission_does_not_see_it(demo):
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    url = f"/admin/leads/source/{source.pk}/instructions/"
    outsider = Client()
    outsider.force_login(staff_user(None))

    anonymous = Client().get(url)
    refused = outsider.get(url)

    assert anonymous.status_code == 302
    assert anonymous["Location"].startswith("/admin/login/")
    assert refused.status_code == 403
    assert source.name not in refused.content.decode()


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "buyer key"])
def test_each_caller_sees_the_staff_page_only_with_the_permission_to_view_sources(demo, caller):
    source, key = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    client = client_as(caller, partner_key=key)
    user = auth.get_user(client)

    response = client.get(f"/admin/leads/source/{source.pk}/instructions/")

    if not user.is_authenticated:  # a key is no session
        assert response.status_code == 302
    elif user.has_perm("leads.view_source"):
        assert response.status_code == 200
        assert "curl" in response.content.decode()
    else:
        assert response.status_code == 403
        assert source.name not in response.content.decode()


def test_the_signed_link_shows_the_page_without_a_login_and_no_secret(demo):
    source, key = instructed_source(PostingFormat.QUERY, KeyLocation.PARAMETER)
    staff_page = page_of(source)
    link = re.search(r'readonly value="([^"]+)"', staff_page).group(1)

    response = Client().get(urlsplit(link).path)

    body = response.content.decode()
    assert response.status_code == 200
    assert source.name in body
    assert printed_examples(body) == printed_examples(staff_page)
    assert key not in body
    assert key[:12] not in body  # not even the key's prefix
    assert 'id="share-link"' not in body  # the staff toolbar is staff's


def test_a_tampered_link_is_a_404_page_never_the_page(demo):
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    other, _ = instructed_source(PostingFormat.XML, KeyLocation.HEADER)
    token = instructions_token(source)
    value, _, signature = token.rpartition(":")
    other_value = instructions_token(other).rpartition(":")[0]
    forged = signing.dumps(other.pk, salt="another-salt")

    answers = [
        Client().get(f"/posting-instructions/{t}/")
        for t in (f"{value}:{signature[:-1]}x", f"{other_value}:{signature}", forged, "nonsense")
    ]

    for response in answers:
        assert response.status_code == 404
        assert "not valid" in response.content.decode()
        assert source.name not in response.content.decode()
        assert "curl" not in response.content.decode()


def token_made_ago(source: Source, seconds: int) -> str:
    """A genuine token for the source, as if staff had copied the link `seconds` ago."""

    class Then(signing.TimestampSigner):
        def timestamp(self) -> str:
            return signing.b62_encode(int(time.time()) - seconds)

    return Then(salt=LINK_SALT).sign_object(source.pk)


def test_an_expired_link_is_a_410_page(demo, settings):
    settings.POSTING_INSTRUCTIONS_LINK_DAYS = 7
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    week = 7 * 24 * 3600

    fresh = Client().get(f"/posting-instructions/{token_made_ago(source, week - 60)}/")
    expired = Client().get(f"/posting-instructions/{token_made_ago(source, week + 60)}/")

    assert fresh.status_code == 200
    assert expired.status_code == 410
    assert "expired" in expired.content.decode()
    assert "curl" not in expired.content.decode()


def test_a_link_to_a_deleted_source_is_a_404_page(demo):
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)
    token = signing.dumps(source.pk, salt=LINK_SALT)
    Source.objects.filter(pk=source.pk).delete()

    response = Client().get(f"/posting-instructions/{token}/")

    assert response.status_code == 404


def test_the_page_prints_without_its_staff_toolbar(demo):
    source, _ = instructed_source(PostingFormat.FORM, KeyLocation.PARAMETER)

    page = page_of(source)

    assert "@media print" in page
    assert re.search(r"\.no-print \{ display: none !important; \}", page)
    assert 'class="toolbar no-print"' in page
    assert "admin/css" not in page  # no admin chrome, on paper or on screen


@pytest.mark.parametrize("field_type", FieldType.values)
@pytest.mark.parametrize(
    "limits",
    [{}, {"max_length": 3}, {"min_value": "1.5", "max_value": "1.9"}, {"min_value": "1990"}],
)
def test_every_sample_value_passes_intakes_validation_for_its_type(field_type, limits):
    numeric = field_type in (FieldType.INTEGER, FieldType.DECIMAL)
    if ("min_value" in limits and not numeric) or (
        limits.get("max_value") == "1.9" and field_type == FieldType.INTEGER
    ):
        pytest.skip("no such field: a range is numeric; no integer lies in 1.5-1.9")
    if field_type == FieldType.EMAIL and "max_length" in limits:
        pytest.skip("no e-mail address is that short")
    spec = FieldSpec(
        name="anything",
        field_type=field_type,
        choices=("gold", "silver") if field_type == FieldType.CHOICE else (),
        **{k: v if k == "max_length" else Decimal(v) for k, v in limits.items()},
    )

    normalise_value(spec, sample_value(spec))


PING_EXAMPLE_RE = re.compile(r'<pre class="ping-example" data-vertical="([^"]+)">(.*?)</pre>', re.S)
PING_ANSWER_RE = re.compile(
    r'<pre class="ping-answer-example" data-answer="([^"]+)">(.*?)</pre>', re.S
)


def members(body: str, answer: str) -> list[str]:
    """An answer's member names in order, whatever its format."""
    if answer == "json":
        return list(json.loads(body))
    if answer == "text":
        return [line.partition("=")[0] for line in body.splitlines()]
    return [child.tag for child in xml_fromstring(body)]


@pytest.mark.parametrize(("fmt", "where", "answer"), CASES)
def test_the_printed_ping_of_every_vertical_is_answered_as_printed(demo, fmt, where, answer):
    source, key = instructed_source(fmt, where, answer)
    page = page_of(source)
    pings = {slug: html.unescape(text) for slug, text in PING_EXAMPLE_RE.findall(page)}
    printed = {}
    for title, text in PING_ANSWER_RE.findall(page):
        printed[title] = html.unescape(text).partition("\n\n")[2]
    client = Client()

    sent = {slug: curl_sent(client, command, key=key) for slug, command in pings.items()}

    pinged_verticals = Vertical.objects.filter(fields__in_ping=True, fields__is_pii=False)
    assert set(pings) == set(pinged_verticals.values_list("slug", flat=True))
    assert set(printed) == {"ping-bid", "ping-no-bid", "ping-refused"}
    for slug, response in sent.items():
        assert response.status_code == 200, (slug, response.content)
        body = response.content.decode()
        kind = "ping-no-bid" if "no_bid" in body else "ping-bid"
        assert members(body, answer) == members(printed[kind], answer), slug
        ping = InboundPing.objects.get(source=source, vertical__slug=slug)
        assert (ping.is_test, ping.status in ("bid", "no_bid")) == (True, True)
    assert "payout" in members(printed["ping-bid"], answer)
    assert "price" not in members(printed["ping-bid"], answer)


@pytest.mark.parametrize(("fmt", "where", "answer"), CASES[::3])
def test_the_refused_ping_printed_is_the_apis_for_a_ping_carrying_personal_data(
    demo, fmt, where, answer
):
    source, key = instructed_source(fmt, where, answer)
    page = page_of(source)
    printed = {t: html.unescape(x).partition("\n\n")[2] for t, x in PING_ANSWER_RE.findall(page)}
    vertical = Vertical.objects.filter(fields__in_ping=True).order_by("slug").first()
    profile = posting_profile(source=source)
    document = ping_example_document(vertical, vertical.fields.all(), profile)
    leaked = vertical.fields.filter(is_pii=True).order_by("position", "id").first()
    name = profile.aliases and next(
        (alias for alias, ours in profile.aliases.items() if ours == leaked.name), leaked.name
    )
    value = sample_value(leaked)
    if profile.is_flat:
        document[name or leaked.name] = value if fmt == PostingFormat.FLAT_JSON else str(value)
    else:
        document["fields"][name or leaked.name] = value
    request = example_request(document, profile, url="http://testserver/api/v1/pings/")

    response = curl_sent(Client(), request.curl(), key=key)

    assert response.status_code == 400
    ping = InboundPing.objects.get(source=source)
    expected = printed["ping-refused"].replace(str(EXAMPLE_PING_ID), str(ping.pk))
    assert response.content.decode() == expected
