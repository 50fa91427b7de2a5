"""Pings in the dashboards: pings, bid rate and ping-to-post conversion per source."""

from __future__ import annotations

from reporting.filters import report_query
from reporting.rollup import rollup_refresh
from reporting.selectors import report_sources
from tests.staff import staff_user


def test_the_sources_figures_count_pings_their_bid_rate_and_their_conversion_to_posts(
    seller, market, client
):
    market.contract(ping="bid=12.50")
    posted, _ = (seller.ping().json()["ping_id"] for _ in range(2))
    seller.ping({"zip_code": "10001", "email": "mary@example.com"})  # refused: counts as a ping
    market.vertical.contracts.update(status="paused")
    seller.ping()  # no bid
    assert seller.post(posted).status_code == 202

    rollup_refresh()

    row = next(r for r in report_sources(report_query({})) if r["source_id"] == market.source.pk)
    assert (row["pings"], row["ping_bid_rate"], row["ping_to_post"]) == (4, 0.5, 0.5)
    client.force_login(staff_user("Sales"))
    page = client.get("/dashboard/sources/").content.decode()
    assert "Ping → post" in page
    assert "<td>4</td>" in page
