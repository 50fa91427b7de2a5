"""Generate a reproducible reporting data set in a bench database, fast (INSERT ... SELECT).

    manage.py generate_report_data --leads 1000000 --seed 1 [--days 90]

PostgreSQL only, and only in a database whose name contains "bench": it truncates the leads
(and with them auctions, attempts, sales and returns). `--allow-any-database` lifts the name
check for the test suite, whose test database is thrown away. Every value is a hash of the lead's
number and the seed, so one seed gives one data set; times are laid out over the `--days`
before the current hour, so the dashboards' presets find data. Then it builds the rollups.
"""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from buyers.models import Buyer, CapPeriod, Contract, ContractCap, PriceModel
from leads.models import Source, Vertical
from reporting import store
from reporting.models import DirtyHour, RollupState
from reporting.rollup import ROLLUP_MODELS, floor_hour, rollup_rebuild
from routing.models import ContractHealth, HealthStatus

VERTICALS = ("bench-auto", "bench-solar", "bench-mortgage")
BIG_TABLES = ("leads_lead", "routing_sale", "routing_auction", "routing_attempt")
SOURCES = 20
BUYERS = 15

# Every column is named: most of the model's defaults are Python's, not the table's. The
# consumer hashes are leads.consumer_hashes.consumer_hash's, in SQL (every generated lead has an
# email and a phone).
# Status by the first hash (per mille): 6 % invalid, 4 % duplicate, 1 % suppressed, 53 % sold
# (a tenth of which are returned), 30 % unsold, 6 % failed. Every lead but the invalid ones has a
# score, sold leads scoring higher on the whole (30-100 against 0-80), and the tier of the
# default bounds (Hot 80, Warm 60, Qualified 40).
LEADS_SQL = """
INSERT INTO leads_lead (
    id, vertical_id, source_id, api_key_id, status, reason, is_test, sub_id, data, extra,
    raw_body, errors, consent, remote_ip, ping_id, duplicate_of_id, email, phone, zip_code, state,
    email_sha256, phone_sha256, received_at, sold_at, sale_price, payout, score, tier,
    score_breakdown, updated_at
)
SELECT
    md5(%(seed)s || ':' || g)::uuid,
    v.id,
    s.id,
    NULL,
    st.status,
    CASE WHEN st.status = 'invalid' THEN 'Invalid phone.' ELSE '' END,
    h.h2 %% 200 = 7,
    CASE WHEN h.h2 %% 20 = 3 THEN '' ELSE 'sub-' || (h.h2 %% 50) END,
    '{}'::jsonb,
    '{}'::jsonb,
    '',
    '{}'::jsonb,
    CASE WHEN h.h2 %% 33 = 5 THEN '{}'::jsonb ELSE '{"tcpa_text": "I agree"}'::jsonb END,
    NULL,
    '',
    NULL,
    c.email,
    c.phone,
    '60601',
    'IL',
    encode(sha256(convert_to(c.email, 'UTF8')), 'hex'),
    encode(sha256(convert_to(c.phone, 'UTF8')), 'hex'),
    t.received_at,
    CASE WHEN st.status IN ('sold', 'returned')
        THEN t.received_at + make_interval(secs => 1 + h.h3 %% 120) END,
    CASE WHEN st.status IN ('sold', 'returned') THEN 10 + (h.h3 %% 4000) / 100.0 END,
    CASE WHEN st.status IN ('sold', 'returned') THEN 8.00 END,
    sc.score,
    CASE WHEN sc.score IS NULL THEN ''
         WHEN sc.score >= 80 THEN 'hot'
         WHEN sc.score >= 60 THEN 'warm'
         WHEN sc.score >= 40 THEN 'qualified'
         ELSE 'cold' END,
    '{}'::jsonb,
    t.received_at + interval '5 minutes'
FROM generate_series(1, %(leads)s) AS g
CROSS JOIN LATERAL (
    SELECT
        abs(hashtextextended(g::text, %(seed)s * 100 + 1)) AS h1,
        abs(hashtextextended(g::text, %(seed)s * 100 + 2)) AS h2,
        abs(hashtextextended(g::text, %(seed)s * 100 + 3)) AS h3,
        abs(hashtextextended(g::text, %(seed)s * 100 + 4)) AS h4,
        abs(hashtextextended(g::text, %(seed)s * 100 + 5)) AS h5
) AS h
CROSS JOIN LATERAL (
    SELECT
        'c' || g || '@example.com' AS email,
        '+1312555' || lpad((g %% 10000)::text, 4, '0') AS phone
) AS c
CROSS JOIN LATERAL (
    SELECT %(anchor)s::timestamptz
        - make_interval(secs => (g::float8 * %(span)s / %(leads)s) + h.h4 %% 60) AS received_at
) AS t
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN h.h1 %% 1000 < 60 THEN 'invalid'
        WHEN h.h1 %% 1000 < 100 THEN 'duplicate'
        WHEN h.h1 %% 1000 < 110 THEN 'suppressed'
        WHEN h.h1 %% 1000 < 587 THEN 'sold'
        WHEN h.h1 %% 1000 < 640 THEN 'returned'
        WHEN h.h1 %% 1000 < 940 THEN 'unsold'
        ELSE 'failed'
    END AS status
) AS st
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN st.status = 'invalid' THEN NULL
        WHEN st.status IN ('sold', 'returned') THEN 30 + h.h5 %% 71
        ELSE h.h5 %% 81
    END AS score
) AS sc
JOIN bench_verticals v ON v.n = h.h2 %% %(verticals)s
JOIN bench_sources s ON s.n = h.h4 %% %(sources)s
"""

# A lead's contracts are the k-th after the one its hash picks; the 0th is the one it sold to.
# These statements run without parameters: % is the modulo operator.
SALES_SQL = """
INSERT INTO routing_sale (
    lead_id, contract_id, buyer_id, auction_id, status, price, payout, buyer_reference, sold_at,
    returned_at, return_reason
)
SELECT l.id, c.id, c.buyer_id, NULL,
    CASE WHEN l.status = 'returned' THEN 'returned' ELSE 'sold' END,
    l.sale_price, l.payout, '', l.sold_at,
    CASE WHEN l.status = 'returned' THEN l.sold_at + interval '2 days' END,
    CASE WHEN l.status = 'returned' THEN 'bad_phone' ELSE '' END
FROM leads_lead l
JOIN bench_vcount vc ON vc.vertical_id = l.vertical_id
JOIN bench_contracts c ON c.vertical_id = l.vertical_id
    AND c.n = abs(hashtextextended(l.id::text, 5)) % vc.k
WHERE l.status IN ('sold', 'returned')
"""

RETURNS_SQL = """
INSERT INTO reporting_salereturn (sale_id, reason, note, payout_reversed, returned_by, created_at)
SELECT s.id, 'bad_phone', '', src.payout_reversed_on_return, 'bench', s.returned_at
FROM routing_sale s
JOIN leads_lead l ON l.id = s.lead_id
JOIN leads_source src ON src.id = l.source_id
WHERE s.status = 'returned'
"""

AUCTIONS_SQL = """
INSERT INTO routing_auction (
    lead_id, status, started_at, finished_at, eligible_count, explanation, note
)
SELECT id,
    CASE WHEN status IN ('sold', 'returned') THEN 'sold'
         WHEN status = 'failed' THEN 'failed' ELSE 'unsold' END,
    received_at, received_at + interval '1 second', 3, '[]'::jsonb, ''
FROM leads_lead
WHERE status NOT IN ('invalid', 'duplicate', 'suppressed')
"""

# Attempts name every column: the model's defaults are Python's, not the table's.
INSERT_ATTEMPTS = """
INSERT INTO routing_attempt (
    auction_id, lead_id, contract_id, kind, created_at, url, method, request_headers,
    request_body, response_status, response_body, latency_ms, outcome, price, reason,
    buyer_reference, error, captures
)"""

# Three pings per routed lead: 60 % bids, 30 % declines, 10 % timeouts (the contract it sold to
# always bid).
PINGS_SQL = (
    INSERT_ATTEMPTS
    + """
SELECT a.id, l.id, c.id, 'ping', a.started_at + interval '200 milliseconds',
    'http://127.0.0.1:9100/ping', 'POST', '{}'::jsonb, '', 200, '',
    CASE WHEN o.outcome = 'timeout' THEN 1500 ELSE 20 + hh.h % 280 END,
    o.outcome,
    CASE WHEN o.outcome = 'bid' THEN 10 + (hh.h % 4000) / 100.0 END,
    '', '', '', '{}'::jsonb
FROM routing_auction a
JOIN leads_lead l ON l.id = a.lead_id
JOIN bench_vcount vc ON vc.vertical_id = l.vertical_id
CROSS JOIN generate_series(0, 2) AS p(nth)
JOIN bench_contracts c ON c.vertical_id = l.vertical_id
    AND c.n = (abs(hashtextextended(l.id::text, 5)) + p.nth) % vc.k
CROSS JOIN LATERAL (SELECT abs(hashtextextended(l.id::text || p.nth, 7)) AS h) hh
CROSS JOIN LATERAL (
    SELECT CASE
        WHEN p.nth = 0 AND l.status IN ('sold', 'returned') THEN 'bid'
        WHEN hh.h % 10 < 6 THEN 'bid'
        WHEN hh.h % 10 < 9 THEN 'declined'
        ELSE 'timeout'
    END AS outcome
) o
"""
)

# One post per routed lead: accepted where it sold, rejected (with a reason) where it did not.
POSTS_SQL = (
    INSERT_ATTEMPTS
    + """
SELECT a.id, l.id, c.id, 'post', a.started_at + interval '600 milliseconds',
    'http://127.0.0.1:9100/post', 'POST', '{}'::jsonb, '', 200, '',
    100 + abs(hashtextextended(l.id::text, 9)) % 400,
    CASE WHEN l.status IN ('sold', 'returned') THEN 'accepted' ELSE 'rejected' END,
    l.sale_price,
    CASE WHEN l.status IN ('sold', 'returned') THEN ''
         ELSE (ARRAY['Duplicate lead', 'Out of area', 'Lead too old', 'Invalid phone'])
             [1 + abs(hashtextextended(l.id::text, 11)) % 4] END,
    '', '', '{}'::jsonb
FROM routing_auction a
JOIN leads_lead l ON l.id = a.lead_id
JOIN bench_vcount vc ON vc.vertical_id = l.vertical_id
JOIN bench_contracts c ON c.vertical_id = l.vertical_id
    AND c.n = abs(hashtextextended(l.id::text, 5)) % vc.k
"""
)


def refuse_unless_bench_database(*, any_name: bool = False) -> None:
    name = connection.settings_dict.get("NAME") or ""
    if not store.bulk_load_supported():
        raise CommandError("The reporting data set is generated in PostgreSQL only.")
    if "bench" not in name and not any_name:
        raise CommandError(
            f"Refusing database {name!r}: its name must contain 'bench' (its leads are truncated)."
        )


class Command(BaseCommand):
    help = "Generate a reproducible reporting data set (leads, auctions, attempts, sales)."

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=1_000_000)
        parser.add_argument("--seed", type=int, default=1)
        parser.add_argument("--days", type=int, default=90, help="Span the leads arrive over.")
        parser.add_argument(
            "--allow-any-database",
            action="store_true",
            help="Skip the 'bench' name check: for the test suite's own throwaway database only.",
        )

    def step(self, label: str, sql: str, params: dict | None = None) -> None:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.rowcount
        elapsed = time.perf_counter() - started
        self.stdout.write(f"  {label:<28} {rows:>10,} rows  {elapsed:7.1f} s")

    def setup_parties(self) -> None:
        verticals = [
            Vertical.objects.get_or_create(slug=slug, defaults={"name": slug.title()})[0]
            for slug in VERTICALS
        ]
        for n in range(SOURCES):
            Source.objects.get_or_create(
                name=f"Bench source {n:02d}",
                defaults={
                    "payout_amount": Decimal("8.00"),
                    "payout_reversed_on_return": n % 4 != 0,
                },
            )
        for n in range(BUYERS):
            buyer = Buyer.objects.get_or_create(company=f"Bench buyer {n:02d}")[0]
            for vertical in verticals:
                contract, created = Contract.objects.get_or_create(
                    buyer=buyer,
                    vertical=vertical,
                    name=f"bench {n:02d} {vertical.slug}",
                    defaults={"price_model": PriceModel.PING_POST, "max_return_rate": None},
                )
                if created and n % 3 == 0:
                    ContractCap.objects.create(
                        contract=contract, period=CapPeriod.DAY, max_leads=500
                    )
                if created and n % 7 == 3:
                    ContractHealth.objects.create(
                        contract=contract, status=HealthStatus.OPEN, reason="bench"
                    )

    def prepare_bulk_load(self) -> list[tuple[str, str]]:
        """Skip what a bulk load need not pay for; return the dropped indexes' definitions."""
        with connection.cursor() as cursor:
            cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
            superuser = bool(cursor.fetchone()[0])
        # The rows are consistent by construction: skip the foreign key triggers where the role
        # may (a superuser); else check each row as it goes in, since millions of deferred
        # checks queued for COMMIT take longer still.
        if superuser:
            self.step("no foreign key triggers", "SET LOCAL session_replication_role = replica")
        else:
            self.step("immediate constraints", "SET CONSTRAINTS ALL IMMEDIATE")
        # Building an index once over a million rows is far cheaper than keeping it current
        # through a million inserts: drop the plain indexes now, create them again after.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = ANY(%s)"
                " AND indexname NOT IN (SELECT conname FROM pg_constraint)",
                [list(BIG_TABLES)],
            )
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
        self.stdout.write(f"  dropped {len(indexes)} indexes")
        return indexes

    def handle(self, *args, **options):
        refuse_unless_bench_database(any_name=options["allow_any_database"])
        leads, seed, days = options["leads"], options["seed"], options["days"]
        if leads < 1 or days < 1:
            raise CommandError("--leads and --days must be positive.")
        started = time.perf_counter()
        anchor = floor_hour(timezone.now()) + timedelta(minutes=59)
        self.stdout.write(f"Generating {leads:,} leads over {days} days (seed {seed})")
        # A bulk load's statements run for minutes, far past the bound the platform's own
        # queries get (DATABASE_STATEMENT_TIMEOUT_MS); this connection only.
        self.step("no statement timeout", "SET statement_timeout = 0")
        with transaction.atomic():
            self.setup_parties()
            self.step("truncate", "TRUNCATE leads_lead CASCADE")
            indexes = self.prepare_bulk_load()
            for model in (*ROLLUP_MODELS, DirtyHour):
                self.step(f"truncate {model._meta.model_name}", f"TRUNCATE {model._meta.db_table}")
            self.step(
                "contracts",
                "CREATE TEMP TABLE bench_contracts ON COMMIT DROP AS SELECT id, vertical_id,"
                " buyer_id, row_number() OVER (PARTITION BY vertical_id ORDER BY id) - 1 AS n"
                " FROM buyers_contract WHERE name LIKE 'bench %'",
            )
            self.step(
                "contract counts",
                "CREATE TEMP TABLE bench_vcount ON COMMIT DROP AS SELECT vertical_id,"
                " count(*) AS k FROM bench_contracts GROUP BY vertical_id",
            )
            self.step(
                "sources",
                "CREATE TEMP TABLE bench_sources ON COMMIT DROP AS SELECT id,"
                " row_number() OVER (ORDER BY id) - 1 AS n FROM leads_source"
                " WHERE name LIKE 'Bench source %'",
            )
            self.step(
                "verticals",
                "CREATE TEMP TABLE bench_verticals ON COMMIT DROP AS SELECT id,"
                " row_number() OVER (ORDER BY id) - 1 AS n FROM leads_vertical"
                " WHERE slug LIKE 'bench-%'",
            )
            params = {
                "seed": seed,
                "leads": leads,
                "anchor": anchor,
                "span": days * 86400,
                "verticals": len(VERTICALS),
                "sources": SOURCES,
            }
            self.step("leads", LEADS_SQL, params)
            self.step("sales", SALES_SQL)
            self.step("returns", RETURNS_SQL)
            self.step("auctions", AUCTIONS_SQL)
            self.step("pings", PINGS_SQL)
            self.step("posts", POSTS_SQL)
            indexed = time.perf_counter()
            for _, definition in indexes:
                with connection.cursor() as cursor:
                    cursor.execute(definition)
            self.stdout.write(
                f"  {'create ' + str(len(indexes)) + ' indexes':<28} {'':>10}       "
                f"{time.perf_counter() - indexed:7.1f} s"
            )
        self.step("analyze", "ANALYZE")
        generated = time.perf_counter() - started
        self.stdout.write(f"Generated in {generated:.1f} s; building the rollups")
        rolled = time.perf_counter()
        end = anchor + timedelta(hours=1)
        moment = floor_hour(anchor - timedelta(days=days + 1))
        while moment < end:
            rollup_rebuild(start=moment, end=min(moment + timedelta(days=7), end))
            moment += timedelta(days=7)
        now = timezone.now()
        RollupState.objects.update_or_create(
            pk=1, defaults={"watermark": now, "last_run_at": now, "last_run_hours": 0}
        )
        self.step("analyze rollups", "ANALYZE")
        self.stdout.write(
            f"Rollups built in {time.perf_counter() - rolled:.1f} s; "
            f"total {time.perf_counter() - started:.1f} s"
        )
