"""Cap arithmetic: the period a moment falls in, counted in the buyer's time zone (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from buyers.models import CapPeriod
from buyers.schedule import offset_change

# "All time" is one period that starts before any lead.
TOTAL_START = datetime(2000, 1, 1, tzinfo=UTC)
TOTAL_END = datetime(9999, 1, 1, tzinfo=UTC)

PERIOD_WORDS: dict[str, str] = {
    CapPeriod.HOUR: "hourly",
    CapPeriod.DAY: "daily",
    CapPeriod.WEEK: "weekly",
    CapPeriod.MONTH: "monthly",
    CapPeriod.TOTAL: "all-time",
}


def _local_midnight(day: datetime, tz: ZoneInfo) -> datetime:
    """Return the first instant of a local calendar day, in UTC.

    A few zones skip midnight on DST day (e.g. America/Havana); the first instant is then the
    first one that exists, which a round trip through UTC finds.
    """
    naive = datetime(day.year, day.month, day.day)  # noqa: DTZ001 - a wall time, zoned below
    candidate = naive.replace(tzinfo=tz).astimezone(UTC)
    # A non-existent local midnight maps past the true start: step back while still that day.
    earlier = candidate - timedelta(hours=1)
    if earlier.astimezone(tz).date() == naive.date():
        return earlier
    return candidate


def _hour_bounds(now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the local clock hour around `now`, cut short where the clock changes inside it.

    Counting back the local minutes from `now` (in UTC) keeps a repeated fall-back hour distinct
    and handles half-hour offsets (India) and half-hour DST shifts (Lord Howe) alike.
    """
    now = now.astimezone(UTC)
    local = now.astimezone(tz)
    into = timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    start, end = now - into, now - into + timedelta(hours=1)
    if _offset(start.astimezone(tz)) != _offset(local):
        start = offset_change(tz, start, now, _offset(start.astimezone(tz)))
    if _offset(end.astimezone(tz)) != _offset(local):
        end = offset_change(tz, now, end, _offset(local))
    return start, end


def period_bounds(period: str, now: datetime, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """Return the [start, end) of the period that `now` falls in, as UTC datetimes."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if period == CapPeriod.TOTAL:
        return TOTAL_START, TOTAL_END
    if period == CapPeriod.HOUR:
        return _hour_bounds(now, tz)
    local = now.astimezone(tz)
    if period == CapPeriod.DAY:
        first = local
        following = local + timedelta(days=1)
    elif period == CapPeriod.WEEK:
        first = local - timedelta(days=local.weekday())
        following = first + timedelta(days=7)
    elif period == CapPeriod.MONTH:
        first = local.replace(day=1)
        following = (first + timedelta(days=32)).replace(day=1)
    else:
        raise ValueError(f"unknown cap period {period!r}")
    return _local_midnight(first, tz), _local_midnight(following, tz)


@dataclass(frozen=True)
class CapLimitSpec:
    """A cap as the engine sees it: who it counts, per which period, and its limits."""

    scope: str  # "contract" or "buyer"
    owner_id: int
    period: str
    max_leads: int | None
    max_budget: Decimal | None


@dataclass(frozen=True)
class CapUsage:
    """A cap and what has been bought against it in the current period."""

    limit: CapLimitSpec
    period_start: datetime
    period_end: datetime
    leads: int
    spend: Decimal

    @property
    def leads_left(self) -> int | None:
        if self.limit.max_leads is None:
            return None
        return max(0, self.limit.max_leads - self.leads)

    @property
    def budget_left(self) -> Decimal | None:
        if self.limit.max_budget is None:
            return None
        return max(Decimal("0"), self.limit.max_budget - self.spend)

    def blocks(self, price: Decimal) -> bool:
        """Return whether one more lead at `price` would exceed this cap."""
        if self.limit.max_leads is not None and self.leads + 1 > self.limit.max_leads:
            return True
        return self.limit.max_budget is not None and self.spend + price > self.limit.max_budget

    def describe(self) -> str:
        """Say what is reached in plain words: 'daily cap 50/50 reached'."""
        who = "buyer's " if self.limit.scope == "buyer" else ""
        word = PERIOD_WORDS.get(self.limit.period, self.limit.period)
        if self.limit.max_leads is not None and self.leads >= self.limit.max_leads:
            return f"{who}{word} cap {self.leads}/{self.limit.max_leads} reached"
        return (
            f"{who}{word} budget ${self.spend:,.2f} of ${self.limit.max_budget:,.2f} "
            f"spent, ${self.budget_left:,.2f} left"
        )


def _offset(moment: datetime) -> timedelta:
    """The UTC offset of an aware local time (zoneinfo always gives one)."""
    return moment.utcoffset() or timedelta(0)
