"""What the benchmark scripts share: a PostgreSQL database to work in (and the check that it is
one they may empty), a free port on 127.0.0.1, and percentiles. Each script puts the repository
root on sys.path and imports this as `bench.common`."""

from __future__ import annotations

import socket


def bench_database_require(url: str) -> None:
    """Stop unless `url` is a PostgreSQL database named for benchmarks: they empty its leads."""
    if not url.startswith(("postgres://", "postgresql://")):
        raise SystemExit(f"DATABASE_URL must point at PostgreSQL, not {url!r}")
    if "bench" not in url.rsplit("/", 1)[-1]:
        raise SystemExit(
            "DATABASE_URL's database name must contain 'bench': this script truncates its leads"
        )


def database_create(url: str, *, suffix: str = "", replace: bool = False) -> str:
    """Create the PostgreSQL database `url` names (with `suffix` added to its name) on its server,
    unless it exists; `replace` drops an existing one first. Return the database's name."""
    import environ
    import psycopg
    from psycopg import sql

    config = environ.Env.db_url_config(url)
    name = config["NAME"] + suffix
    params = {
        "host": config["HOST"] or None,
        "port": config["PORT"] or None,
        "user": config["USER"] or None,
        "password": config["PASSWORD"] or None,
    }
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if replace:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return name


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
