"""A database trigger that refuses any change of a lead's status the transition table does not
allow (leads.models.LEAD_TRANSITIONS), whichever code path writes it: the ORM, a service or the
routing engine's own SQL. The suite installs it once, so every test that moves a lead proves its
path takes its from-states from the table."""

from __future__ import annotations

from django.db.backends.base.base import BaseDatabaseWrapper

from leads.models import LEAD_TRANSITIONS, Lead

GUARD = "lead_status_guard"


def allowed_pairs() -> list[tuple[str, str]]:
    return sorted(
        (str(src), str(to)) for to, sources in LEAD_TRANSITIONS.items() for src in sources
    )


def guard_install(connection: BaseDatabaseWrapper) -> None:
    """Install the trigger on the lead table of this connection's database."""
    table = connection.ops.quote_name(Lead._meta.db_table)
    pairs = allowed_pairs()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            values = ", ".join(["(%s, %s)"] * len(pairs))
            allowed = cursor.mogrify(values, [v for pair in pairs for v in pair])
            cursor.execute(
                f"""
                CREATE OR REPLACE FUNCTION {GUARD}() RETURNS trigger AS $$
                BEGIN
                  IF NEW.status IS DISTINCT FROM OLD.status
                     AND (OLD.status, NEW.status) NOT IN ({allowed}) THEN
                    RAISE EXCEPTION 'lead % moved from % to %: not in LEAD_TRANSITIONS',
                      OLD.id, OLD.status, NEW.status;
                  END IF;
                  RETURN NEW;
                END $$ LANGUAGE plpgsql
                """
            )
            cursor.execute(f"DROP TRIGGER IF EXISTS {GUARD} ON {table}")
            cursor.execute(
                f"CREATE TRIGGER {GUARD} BEFORE UPDATE OF status ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {GUARD}()"
            )
        else:
            allowed = ", ".join(f"'{src}>{to}'" for src, to in pairs)
            cursor.execute(f"DROP TRIGGER IF EXISTS {GUARD}")
            cursor.execute(
                f"CREATE TRIGGER {GUARD} BEFORE UPDATE OF status ON {table} "
                f"WHEN NEW.status <> OLD.status AND OLD.status || '>' || NEW.status "
                f"NOT IN ({allowed}) "
                f"BEGIN SELECT RAISE(ABORT, 'lead status change not in LEAD_TRANSITIONS'); END"
            )
