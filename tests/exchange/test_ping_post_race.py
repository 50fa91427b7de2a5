"""Two posts of one ping at once, on both backends: one takes the ping up, the other gets its
answer again (or a 409), never a 500."""

from __future__ import annotations

import pytest
from django.test import Client

from exchange.models import InboundPing
from leads.models import Lead
from tests.exchange.conftest import Seller
from tests.threads import Go, all_at_once

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.mark.parametrize("count", [2, 6])
def test_posts_of_one_ping_at_once_take_it_up_once_and_never_answer_500(seller, market, count):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]

    def post(n: int, go: Go):
        racer = Seller(Client(), seller.key, seller.vertical)
        go()
        return racer.post(ping_id, number=n + 1)

    answers = all_at_once(count, post, who="a post")

    assert [a.status_code for a in answers] == [202] * count, [a.content for a in answers]
    first = next(a for a in answers if not a.has_header("Idempotent-Replayed"))
    assert all(a.content == first.content for a in answers)
    ping = InboundPing.objects.get(pk=ping_id)
    assert str(ping.lead_id) == first.json()["id"]
    assert Lead.objects.filter(ping_id=ping_id, status="accepted").count() <= 1


def test_posts_spelling_one_ping_id_differently_at_once_get_one_answer(seller, market):
    market.contract(ping="bid=12.50")
    ping_id = seller.ping().json()["ping_id"]
    spellings = [ping_id, ping_id.upper(), ping_id.replace("-", ""), f"{{{ping_id}}}"]

    def post(n: int, go: Go):
        racer = Seller(Client(), seller.key, seller.vertical)
        go()
        return racer.post(spellings[n], number=n + 1)

    answers = all_at_once(len(spellings), post, who="a post")

    assert [a.status_code for a in answers] == [202] * len(spellings)
    assert len({a.content for a in answers}) == 1
    assert sum(not a.has_header("Idempotent-Replayed") for a in answers) == 1
